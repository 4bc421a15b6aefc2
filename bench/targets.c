/*
 * targets.c: the targets of BENCH.md, checked against this run's medians.
 *
 * Each line shows the measured figure (a ratio where the target is one)
 * and "met", "MISSED", or "n/a" when a figure it needs was not measured
 * (a peer skipped, or the workload not selected).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>

static int met, missed, unknown;

static double get(const char *workload, const char *impl,
                  const char *metric) {
  return bench_lookup(workload, impl, metric);
}

/* Print one target: value must be <= limit (or >= limit if at_least). */
static void target(const char *workload, const char *what, double value,
                   bool at_least, double limit) {
  const char *verdict;
  if (!bench_selected(bench_cfg.only, workload))
    return;
  if (isnan(value)) {
    verdict = "n/a";
    unknown++;
  } else if (at_least ? value >= limit : value <= limit) {
    verdict = "met";
    met++;
  } else {
    verdict = "MISSED";
    missed++;
  }
  printf("   %-12s %-52s %12.4g %s %-8g %s\n", workload, what, value,
         at_least ? ">=" : "<=", limit, verdict);
}

/* The fastest of the thread-pool peers for a higher-is-better metric. */
static double fastest_peer(const char *workload, const char *metric,
                           const char **who) {
  static const char *const peers[] = {"glib", "libuv", "python",
                                      "handrolled"};
  double best = NAN;
  for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
    double v = get(workload, peers[i], metric);
    if (!isnan(v) && (isnan(best) || v > best)) {
      best = v;
      *who = peers[i];
    }
  }
  return best;
}

static void vs_fastest(const char *workload) {
  const char *who = "peers";
  double best = fastest_peer(workload, "jobs_per_s", &who);
  char what[96];
  snprintf(what, sizeof(what), "jobs_per_s / fastest peer's (%s)", who);
  target(workload, what, get(workload, "cfutures", "jobs_per_s") / best,
         true, 2);
}

static void vs(const char *workload, const char *peer, const char *metric,
               bool at_least, double limit) {
  char what[96];
  snprintf(what, sizeof(what), "%s / %s's", metric, peer);
  target(workload, what,
         get(workload, "cfutures", metric) / get(workload, peer, metric),
         at_least, limit);
}

static void own(const char *workload, const char *metric, bool at_least,
                double limit) {
  target(workload, metric, get(workload, "cfutures", metric), at_least,
         limit);
}

/* cost per job at the largest size over the cost at 10^4. */
static void scaling(void) {
  char metric[32], what[64];
  double largest = NAN;
  int exp = 0;
  for (int e = 5; e <= 9; e++) {
    snprintf(metric, sizeof(metric), "ns_per_op_1e%d", e);
    double v = get("scaling", "cfutures", metric);
    if (!isnan(v)) {
      largest = v;
      exp = e;
    }
  }
  snprintf(what, sizeof(what), "ns_per_op at 10^%d / at 10^4", exp);
  target("scaling", what,
         largest / get("scaling", "cfutures", "ns_per_op_1e4"), false, 1.3);
}

void bench_print_targets(void) {
  printf("\n== targets (BENCH.md), cfutures in this run\n");
  vs_fastest("throughput");
  vs_fastest("futures");
  vs("futures", "python", "jobs_per_s", true, 100);
  vs("roundtrip", "glib", "p50_us", false, 0.5);
  vs("roundtrip", "libuv", "p50_us", false, 0.5);
  own("idle_cpu", "cpu_pct", false, 0.1);
  own("latency_gap", "p99_us_gap0", false, 50);
  own("latency_gap", "p99_us_gap50us", false, 50);
  own("latency_gap", "p99_us_gap1ms", false, 50);
  vs("bridge", "libuv", "p50_us", false, 0.5);
  own("fanout", "completed", true, 1);
  own("fanout", "jobs_per_s", true, 1e6);
  target("as_completed", "ns_per_op at 10^4 / at 10^3 (O(1): <= 1.5)",
         get("as_completed", "cfutures", "ns_per_op_1e4") /
             get("as_completed", "cfutures", "ns_per_op_1e3"),
         false, 1.5);
  own("timeout", "p99_us", false, 200);
  own("timeout", "early", false, 0);
  own("cancel", "ns_per_op", false, 200);
  own("cancel", "ms", false, 20);
  own("cancel", "lost", false, 0);
  own("memory", "bytes_per_future", false, 128);
  scaling();
  own("tasks", "switch_ns", false, 50);
  own("tasks", "bytes_per_task", false, 16384);
  printf("   %d met, %d missed, %d not measured\n", met, missed, unknown);
}
