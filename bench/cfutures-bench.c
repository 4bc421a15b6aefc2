/*
 * cfutures-bench: cfutures against its peers, side by side in one run.
 *
 * ../shared/BENCH.md is the plan: every workload of its table runs for
 * cfutures and for each peer (glib, libuv, python, handrolled, limit);
 * a peer that is not available, or that cannot express a workload, gets
 * "RESULT <workload> <impl> skipped 0". Every figure is the median of
 * --reps repetitions (scaling's small sizes: more, see drivers.c) with
 * min and max. The table is printed as figures come in; the targets of
 * BENCH.md and the RESULT lines follow at the end.
 *
 * Files: bench.h (what is shared), util.c (timing, latch), report.c
 * (table, RESULT lines), drivers.c (the workloads, once for every C
 * peer), peer_*.c (the peers), tasks.c (coroutines), targets.c,
 * peer_python.c + peer_python.py (the python peer), child.c (figures
 * from a child process: the python script, or this program with --rows).
 */
#include "bench.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfutures.h"

static char self_exe[4096]; /* this program, for the fresh-process runs */

/* memory measures each repetition of a C peer in a fresh process of this
 * program (--rows --reps 1): allocator caches and free lists warmed by
 * earlier workloads or repetitions would otherwise hide the growth. */
static void memory_fresh(const bench_peer_t *p) {
  if (bench_cfg.rows || self_exe[0] == '\0' || !p->queue) {
    bench_memory(p);
    return;
  }
  char cmd[4400];
  snprintf(cmd, sizeof(cmd),
           "'%s' --rows --only memory --impl %s --workers %d --reps 1%s",
           self_exe, p->impl, bench_cfg.workers,
           bench_cfg.quick ? " --quick" : "");
  double v[BENCH_MAX_REPS];
  bench_block_begin("memory", p);
  for (int r = 0; r < bench_cfg.reps; r++)
    if (!bench_child_figure(cmd, "bytes_per_future", &v[r])) {
      bench_skip("memory", p->impl, "the fresh process failed");
      return;
    }
  bench_report("memory", p->impl, "bytes_per_future", v, bench_cfg.reps);
  bench_note("each repetition in a fresh process");
  bench_block_end();
}

struct workload {
  const char *name;
  const char *what; /* each {} is replaced by the next size */
  const long *size1, *size2;
  void (*run)(const bench_peer_t *p);
};

static const struct workload workloads[] = {
    {"throughput", "{} empty jobs from one producer, wait for all "
                   "(python: {})",
     &bench_cfg.jobs, &bench_cfg.py_jobs, bench_throughput},
    {"futures", "{} jobs returning an int: submit all, wait all, read "
                "every result, release (python: {})",
     &bench_cfg.jobs, &bench_cfg.py_jobs, bench_futures},
    {"roundtrip", "submit one job, wait for its result, {} times "
                  "(python: {})",
     &bench_cfg.rounds, &bench_cfg.py_rounds, bench_roundtrip},
    {"idle_cpu", "CPU of a pool while idle after a burst of {} jobs "
                 "(percent of one core)",
     &bench_cfg.idle_burst, NULL, bench_idle_cpu},
    {"latency_gap", "submit-to-start latency with idle gaps (nanosleep) of "
                    "0, 50 us, 1 ms ({} samples at gap 0)",
     &bench_cfg.gap_samples[0], NULL, bench_latency_gap},
    {"bridge", "a loop thread submits, the completion runs on the loop: "
               "{} round trips, then {} jobs with 1000 in flight",
     &bench_cfg.bridge_rounds, &bench_cfg.bridge_jobs, bench_bridge},
    {"fanout", "each job submits 2 children and waits for them, tree of "
               "depth {}, 2 workers",
     NULL, NULL, bench_fanout},
    {"as_completed", "{} jobs of 0-20 us consumed in completion order, "
                     "in one batch and in batches of a tenth",
     &bench_cfg.ac_jobs, NULL, bench_as_completed},
    {"timeout", "result(timeout = 1 ms) on a job that never finishes, {} "
                "times (peers: {})",
     &bench_cfg.timeouts, &bench_cfg.peer_timeouts, bench_timeout},
    {"cancel", "cancel {} queued futures behind busy workers; "
               "shutdown(cancel_futures) with as many queued",
     &bench_cfg.cancels, NULL, bench_cancel},
    {"memory", "RSS growth per pending future with {} queued "
               "(python: {})",
     &bench_cfg.mem_futures, &bench_cfg.py_mem_futures, memory_fresh},
    {"scaling", "the futures workload at 10^4 .. 10^k jobs: ns per job",
     NULL, NULL, bench_scaling},
    {"tasks", "coroutine switch, yield, spawn+join; RSS per task with {} "
              "suspended",
     &bench_cfg.tasks, NULL, bench_tasks},
};

/* The table's order; python runs between libuv and handrolled. */
static const bench_peer_t *const c_peers[] = {
    &bench_peer_cfutures, &bench_peer_glib, &bench_peer_libuv,
    &bench_peer_handrolled, &bench_peer_limit};

static void defaults(bench_cfg_t *c, bool quick) {
  *c = (bench_cfg_t){
      .workers = 2,
      .reps = 5,
      .quick = quick,
      .jobs = quick ? 100000 : 1000000,
      .py_jobs = quick ? 5000 : 20000,
      .rounds = quick ? 10000 : 100000,
      .py_rounds = quick ? 2000 : 10000,
      .idle_window = quick ? 0.2 : 1.0,
      .idle_burst = 10000,
      .gap_samples = {quick ? 2000 : 10000, quick ? 400 : 2000,
                      quick ? 100 : 600},
      .bridge_rounds = quick ? 2000 : 10000,
      .bridge_jobs = quick ? 20000 : 100000,
      .bridge_inflight = 1000,
      .fanout_depth = quick ? 14 : 16,
      .fanout_limit = quick ? 0.5 : 1.0,
      .ac_jobs = 10000,
      .timeouts = quick ? 500 : 10000,
      .peer_timeouts = quick ? 500 : 2000,
      .cancels = quick ? 20000 : 100000,
      .mem_futures = quick ? 100000 : 1000000,
      .py_mem_futures = quick ? 10000 : 50000,
      .scaling_max_exp = quick ? 6 : 7,
      .scaling_peer_exp = quick ? 5 : 6,
      .scaling_py_exp = 4,
      .switches = quick ? 1000000 : 10000000,
      .tasks = quick ? 10000 : 100000,
  };
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [--quick] [--workers N] [--reps N] [--only W,W...]\n"
          "          [--impl I,I...] [--python PATH] [--python-script PATH]\n"
          "          [--rows]   (figures as ROW lines, for a parent run)\n"
          "workloads:",
          argv0);
  for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
    fprintf(stderr, " %s", workloads[i].name);
  fprintf(stderr,
          "\nimpls: cfutures glib libuv python handrolled limit\n");
  exit(2);
}

static void parse(int argc, char **argv) {
  bool quick = false;
  for (int i = 1; i < argc; i++)
    quick = quick || strcmp(argv[i], "--quick") == 0;
  defaults(&bench_cfg, quick);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (strcmp(a, "--quick") == 0)
      continue;
    if (strcmp(a, "--rows") == 0) {
      bench_cfg.rows = true;
      continue;
    }
    if (!has_value)
      usage(argv[0]);
    const char *v = argv[++i];
    if (strcmp(a, "--workers") == 0)
      bench_cfg.workers = atoi(v);
    else if (strcmp(a, "--reps") == 0)
      bench_cfg.reps = atoi(v);
    else if (strcmp(a, "--only") == 0)
      bench_cfg.only = v;
    else if (strcmp(a, "--impl") == 0)
      bench_cfg.impls = v;
    else if (strcmp(a, "--python") == 0)
      bench_cfg.python = v;
    else if (strcmp(a, "--python-script") == 0)
      bench_cfg.python_script = v;
    else
      usage(argv[0]);
  }
  if (bench_cfg.workers < 1 || bench_cfg.workers > BENCH_MAX_WORKERS ||
      bench_cfg.reps < 1 || bench_cfg.reps > BENCH_MAX_REPS) {
    fprintf(stderr, "cfutures-bench: --workers 1..%d, --reps 1..%d\n",
            BENCH_MAX_WORKERS, BENCH_MAX_REPS);
    exit(2);
  }
}

/* Copy tmpl to out, replacing each {} by the next of the sizes. */
static void describe(const char *tmpl, const long *sizes, char *out,
                     size_t size) {
  size_t len = 0;
  for (const char *p = tmpl; *p != '\0' && len + 1 < size; p++) {
    if (p[0] == '{' && p[1] == '}') {
      int n = snprintf(out + len, size - len, "%ld", *sizes++);
      len = n < 0 ? len : len + (size_t)n < size ? len + (size_t)n : size - 1;
      p++;
    } else {
      out[len++] = *p;
    }
  }
  out[len] = '\0';
}

/* "2 CPUs, <model name>" from /proc/cpuinfo. */
static void print_machine(void) {
  char line[256], model[200] = "unknown CPU";
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "model name : %199[^\n]", model) == 1)
      break;
  if (f != NULL)
    fclose(f);
  printf("machine: %ld CPUs online, %s\n", sysconf(_SC_NPROCESSORS_ONLN),
         model);
}

/* A workload that does not finish in WATCHDOG seconds ends the run: a
 * benchmark must never hang `make bench`. */
enum { WATCHDOG = 600 };

static void watchdog(int sig) {
  (void)sig;
  static const char msg[] =
      "\ncfutures-bench: the workload above did not finish in 600 s\n";
  ssize_t rc = write(STDERR_FILENO, msg, sizeof(msg) - 1);
  (void)rc;
  _exit(1);
}

static void run_workload(const struct workload *w) {
  char what[256];
  alarm(WATCHDOG);
  long sizes[2] = {w->size1 != NULL ? *w->size1 : bench_cfg.fanout_depth,
                   w->size2 != NULL ? *w->size2 : 0};
  describe(w->what, sizes, what, sizeof(what));
  bench_section(w->name, what);
  for (size_t i = 0; i < sizeof(c_peers) / sizeof(c_peers[0]); i++) {
    const bench_peer_t *p = c_peers[i];
    if (p == &bench_peer_handrolled && bench_selected(bench_cfg.impls,
                                                      "python"))
      bench_python(w->name);
    if (!bench_selected(bench_cfg.impls, p->impl))
      continue;
    if (p->available)
      w->run(p);
    else
      bench_skip(w->name, p->impl, p->form);
  }
}

int main(int argc, char **argv) {
  parse(argc, argv);
  signal(SIGALRM, watchdog);
  ssize_t len = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
  self_exe[len > 0 ? len : 0] = '\0';
  double t0 = bench_now(), machine0 = bench_machine_cpu();
  if (!bench_cfg.rows)
    printf("cfutures %s: %d workers per pool, median of %d runs (min, "
           "max)%s\n",
           cf_version(), bench_cfg.workers, bench_cfg.reps,
           bench_cfg.quick ? ", quick sizes" : "");
  if (!bench_cfg.rows)
    print_machine();
  for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
    if (bench_selected(bench_cfg.only, workloads[i].name))
      run_workload(&workloads[i]);
  if (bench_cfg.rows)
    return 0;
  bench_print_targets();
  bench_print_results();
  double wall = bench_now() - t0;
  double others = (bench_machine_cpu() - machine0 - bench_cpu()) / wall;
  printf("\ncfutures-bench: %.0f s; other processes used %.2f cores on "
         "average (noise)\n",
         wall, others > 0 ? others : 0);
  return 0;
}
