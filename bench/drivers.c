/*
 * drivers.c: the workloads whose shape is the same for every C peer,
 * written once against bench_peer_t.
 *
 * Peers with futures wait on them; peers without (glib, libuv, limit) run
 * their native fire-and-forget form: each job writes its value into its
 * bench_job_t and counts a latch down (or the peer's own drain, such as
 * uv_run, waits for the completions). Every pool is created, warmed up
 * and destroyed per repetition, outside the timed section.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPS (bench_cfg.reps)

/* ---- helpers ---- */

static void drain(const bench_peer_t *p, void *pool, bench_latch_t *l) {
  if (p->drain != NULL)
    p->drain(pool);
  else
    bench_latch_wait(l, INFINITY);
}

/* A pool whose threads have started and run a few jobs. */
static void *pool_new(const bench_peer_t *p) {
  enum { WARM = 64 };
  void *pool = p->create(bench_cfg.workers);
  if (pool == NULL)
    bench_die("cannot create a pool");
  bench_job_t warm[WARM];
  bench_latch_t l;
  bench_latch_init(&l);
  bench_jobs_init(warm, WARM, bench_empty_fn, NULL, &l);
  bench_latch_arm(&l, WARM);
  for (int i = 0; i < WARM; i++)
    p->submit(pool, &warm[i], NULL);
  drain(p, pool, &l);
  bench_latch_fini(&l);
  return pool;
}

static void wait_result(const bench_peer_t *p, void *fut, intptr_t *value) {
  if (p->result(fut, INFINITY, value) != 0)
    bench_die("a job failed");
}

static intptr_t index_fn(bench_job_t *j) { return (intptr_t)j->arg; }

static intptr_t start_fn(bench_job_t *j) {
  (void)j;
  return (intptr_t)bench_now_ns();
}

/* "1e4" for 10^4, else the number. */
static const char *size_label(long n, char *buf, size_t size) {
  int e = 0;
  long k = n;
  while (k >= 10 && k % 10 == 0) {
    k /= 10;
    e++;
  }
  if (k == 1)
    snprintf(buf, size, "1e%d", e);
  else
    snprintf(buf, size, "%ld", n);
  return buf;
}

static void report_sized(const char *workload, const char *impl,
                         const char *metric, long n, double *v, int reps) {
  char label[24], name[64];
  snprintf(name, sizeof(name), "%s_%s", metric,
           size_label(n, label, sizeof(label)));
  bench_report(workload, impl, name, v, reps);
}

/* ---- gates: keep workers busy until opened ---- */

struct gate {
  bench_latch_t started, open, finished;
  bench_job_t jobs[BENCH_MAX_WORKERS];
  void *futs[BENCH_MAX_WORKERS];
  int count;
};

static struct gate gate;

static intptr_t gate_fn(bench_job_t *j) {
  struct gate *g = j->arg;
  bench_latch_done(&g->started);
  bench_latch_wait(&g->open, INFINITY);
  return 0;
}

/* Occupy count workers of pool with jobs blocked until gate_open. */
static void gate_close(const bench_peer_t *p, void *pool, int count) {
  static bool ready;
  if (!ready) {
    bench_latch_init(&gate.started);
    bench_latch_init(&gate.open);
    bench_latch_init(&gate.finished);
    ready = true;
  }
  gate.count = count;
  bench_latch_arm(&gate.started, count);
  bench_latch_arm(&gate.open, 1);
  bench_latch_arm(&gate.finished, count);
  bench_jobs_init(gate.jobs, count, gate_fn, &gate,
                  p->futures ? NULL : &gate.finished);
  for (int k = 0; k < count; k++)
    p->submit(pool, &gate.jobs[k], p->futures ? &gate.futs[k] : NULL);
  bench_latch_wait(&gate.started, INFINITY);
}

static void gate_open(const bench_peer_t *p) {
  bench_latch_done(&gate.open);
  for (int k = 0; k < gate.count && p->futures; k++) {
    intptr_t v;
    wait_result(p, gate.futs[k], &v);
    p->release(gate.futs[k]);
  }
  if (!p->futures)
    bench_latch_wait(&gate.finished, INFINITY);
}

/* ---- throughput ---- */

/* Submit n empty jobs without futures, then wait for all of them. */
static void burst(const bench_peer_t *p, void *pool, bench_job_t *jobs,
                  long n, bench_latch_t *l) {
  bench_jobs_init(jobs, n, bench_empty_fn, NULL, l);
  bench_latch_arm(l, n);
  for (long i = 0; i < n; i++)
    p->submit(pool, &jobs[i], NULL);
  drain(p, pool, l);
}

void bench_throughput(const bench_peer_t *p) {
  const char *w = "throughput";
  long n = bench_cfg.jobs;
  bench_job_t *jobs = bench_xmalloc((size_t)n * sizeof(*jobs));
  double rate[BENCH_MAX_REPS], cpu[BENCH_MAX_REPS];
  bench_latch_t l;
  bench_latch_init(&l);
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++) {
    void *pool = pool_new(p);
    bench_jobs_init(jobs, n, bench_empty_fn, NULL, &l); /* page it in */
    double t0 = bench_now(), c0 = bench_cpu();
    burst(p, pool, jobs, n, &l);
    rate[r] = (double)n / (bench_now() - t0);
    cpu[r] = (bench_cpu() - c0) / (double)n * 1e9;
    p->destroy(pool);
  }
  bench_report(w, p->impl, "jobs_per_s", rate, REPS);
  bench_report(w, p->impl, "cpu_ns_per_job", cpu, REPS);
  bench_block_end();
  bench_latch_fini(&l);
  free(jobs);
}

/* ---- futures and scaling ---- */

/* n jobs returning their index: submit all, wait for all, read every
 * value, release. Returns the wall time; *cpu gets the CPU time. */
static double futures_once(const bench_peer_t *p, long n, bench_job_t *jobs,
                           void **futs, double *cpu) {
  bench_latch_t l;
  bench_latch_init(&l);
  void *pool = pool_new(p);
  bench_jobs_init(jobs, n, index_fn, NULL, p->futures ? NULL : &l);
  for (long i = 0; i < n; i++)
    jobs[i].arg = (void *)(intptr_t)i;
  bench_latch_arm(&l, n);
  double t0 = bench_now(), c0 = bench_cpu();
  intptr_t sum = 0;
  if (p->futures) {
    for (long i = 0; i < n; i++)
      p->submit(pool, &jobs[i], &futs[i]);
    for (long i = 0; i < n; i++) {
      intptr_t v;
      wait_result(p, futs[i], &v);
      sum += v;
      p->release(futs[i]);
    }
  } else {
    for (long i = 0; i < n; i++)
      p->submit(pool, &jobs[i], NULL);
    drain(p, pool, &l);
    for (long i = 0; i < n; i++)
      sum += jobs[i].value;
  }
  double wall = bench_now() - t0;
  *cpu = bench_cpu() - c0;
  if (sum != (intptr_t)n * (n - 1) / 2)
    bench_die("futures: wrong sum of results");
  p->destroy(pool);
  bench_latch_fini(&l);
  return wall;
}

void bench_futures(const bench_peer_t *p) {
  const char *w = "futures";
  long n = bench_cfg.jobs;
  bench_job_t *jobs = bench_xmalloc((size_t)n * sizeof(*jobs));
  void **futs = bench_xmalloc((size_t)n * sizeof(*futs));
  double rate[BENCH_MAX_REPS], cpu[BENCH_MAX_REPS];
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++) {
    rate[r] = (double)n / futures_once(p, n, jobs, futs, &cpu[r]);
    cpu[r] = cpu[r] / (double)n * 1e9;
  }
  bench_report(w, p->impl, "jobs_per_s", rate, REPS);
  bench_report(w, p->impl, "cpu_ns_per_job", cpu, REPS);
  bench_block_end();
  free(jobs);
  free(futs);
}

/* How many runs of n jobs a scaling round holds: as many jobs as the
 * futures workload has (10^6; --quick 10^5), or one run. */
static long runs_per_round(long n) {
  return n < bench_cfg.jobs ? bench_cfg.jobs / n : 1;
}

/* The sizes are measured in REPS rounds, each of which runs every size:
 * the large ones once, the small ones runs_per_round times. The figure is
 * a ratio of sizes, and a virtual machine's speed drifts from one second
 * to the next: sizes measured one after the other would each see another
 * part of the drift, while interleaved they see the same. A run of 10^4 jobs lasts about a millisecond, so that
 * one preemption moves it by tens of percent: its median needs the many
 * samples, which cost no more time than one run of 10^6. */
void bench_scaling(const bench_peer_t *p) {
  enum { MIN_EXP = 4, MAX_SIZES = 8 };
  const char *w = "scaling";
  int max = p == &bench_peer_cfutures ? bench_cfg.scaling_max_exp
                                      : bench_cfg.scaling_peer_exp;
  int nsizes = max - MIN_EXP + 1;
  long size[MAX_SIZES], nmax = 1;
  double *ns[MAX_SIZES];
  int count[MAX_SIZES] = {0};
  for (int k = 0; k < nsizes; k++) {
    size[k] = nmax = k == 0 ? 10000 : nmax * 10;
    ns[k] = bench_xmalloc((size_t)(runs_per_round(size[k]) * REPS) *
                          sizeof(double));
  }
  bench_job_t *jobs = bench_xmalloc((size_t)nmax * sizeof(*jobs));
  void **futs = bench_xmalloc((size_t)nmax * sizeof(*futs));
  double cpu;
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++)
    for (int k = 0; k < nsizes; k++)
      for (long i = 0; i < runs_per_round(size[k]); i++)
        ns[k][count[k]++] = futures_once(p, size[k], jobs, futs, &cpu) /
                            (double)size[k] * 1e9;
  for (int k = 0; k < nsizes; k++) {
    report_sized(w, p->impl, "ns_per_op", size[k], ns[k], count[k]);
    free(ns[k]);
  }
  bench_block_end();
  free(jobs);
  free(futs);
}

/* ---- one job at a time: roundtrip, latency_gap ---- */

/* Submit j alone and wait until it completed; returns its value. */
static intptr_t run_one(const bench_peer_t *p, void *pool, bench_job_t *j,
                        bench_latch_t *l) {
  intptr_t v;
  if (p->futures) {
    void *f;
    j->done = NULL;
    p->submit(pool, j, &f);
    wait_result(p, f, &v);
    p->release(f);
    return v;
  }
  j->done = l;
  bench_latch_arm(l, 1);
  p->submit(pool, j, NULL);
  drain(p, pool, l);
  return j->value;
}

/* count jobs one at a time, gap seconds apart; lat (sorted) gets each
 * one's submit-to-result time in us, or submit-to-start if start. */
static void one_at_a_time(const bench_peer_t *p, void *pool, long count,
                          double gap, bool start, double *lat) {
  bench_latch_t l;
  bench_latch_init(&l);
  bench_job_t j = {start ? start_fn : bench_empty_fn, NULL, 0, NULL, 0};
  for (long i = 0; i < count; i++) {
    int64_t t0 = bench_now_ns();
    intptr_t v = run_one(p, pool, &j, &l);
    lat[i] = (double)((start ? (int64_t)v : bench_now_ns()) - t0) / 1e3;
    if (gap > 0)
      bench_sleep(gap);
  }
  bench_sort(lat, count);
  bench_latch_fini(&l);
}

void bench_roundtrip(const bench_peer_t *p) {
  const char *w = "roundtrip";
  long n = bench_cfg.rounds;
  double *lat = bench_xmalloc((size_t)n * sizeof(*lat));
  double p50[BENCH_MAX_REPS], p99[BENCH_MAX_REPS], cpu[BENCH_MAX_REPS];
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++) {
    void *pool = pool_new(p);
    double c0 = bench_cpu();
    one_at_a_time(p, pool, n, 0, false, lat);
    cpu[r] = (bench_cpu() - c0) / (double)n * 1e9;
    p50[r] = bench_percentile(lat, n, 50);
    p99[r] = bench_percentile(lat, n, 99);
    p->destroy(pool);
  }
  bench_report(w, p->impl, "p50_us", p50, REPS);
  bench_report(w, p->impl, "p99_us", p99, REPS);
  bench_report(w, p->impl, "cpu_ns_per_job", cpu, REPS);
  bench_block_end();
  free(lat);
}

void bench_latency_gap(const bench_peer_t *p) {
  static const double gaps[3] = {0, 50e-6, 1e-3};
  static const char *const names[3] = {"gap0", "gap50us", "gap1ms"};
  const char *w = "latency_gap";
  long max = 0;
  for (int g = 0; g < 3; g++)
    if (bench_cfg.gap_samples[g] > max)
      max = bench_cfg.gap_samples[g];
  double *lat = bench_xmalloc((size_t)max * sizeof(*lat));
  bench_block_begin(w, p);
  for (int g = 0; g < 3; g++) {
    long n = bench_cfg.gap_samples[g];
    double p50[BENCH_MAX_REPS], p99[BENCH_MAX_REPS];
    for (int r = 0; r < REPS; r++) {
      void *pool = pool_new(p);
      one_at_a_time(p, pool, n, gaps[g], true, lat);
      p50[r] = bench_percentile(lat, n, 50);
      p99[r] = bench_percentile(lat, n, 99);
      p->destroy(pool);
    }
    char metric[32];
    snprintf(metric, sizeof(metric), "p50_us_%s", names[g]);
    bench_report(w, p->impl, metric, p50, REPS);
    snprintf(metric, sizeof(metric), "p99_us_%s", names[g]);
    bench_report(w, p->impl, metric, p99, REPS);
  }
  bench_block_end();
  free(lat);
}

/* ---- idle_cpu ---- */

/* The window starts as soon as the burst's last job has finished: CPU that
 * a pool spends after that (spinning, say) counts. It is read from each
 * thread's CPU clock (bench_cpu_snapshot), so that the burst's own CPU,
 * not yet charged to a worker still running when the window opens, does
 * not count as idle CPU. */

void bench_idle_cpu(const bench_peer_t *p) {
  const char *w = "idle_cpu";
  long n = bench_cfg.idle_burst;
  double window = bench_cfg.idle_window;
  bench_job_t *jobs = bench_xmalloc((size_t)n * sizeof(*jobs));
  bench_cpu_snapshot_t *before = bench_xmalloc(sizeof(*before));
  double pct[BENCH_MAX_REPS];
  bench_latch_t l;
  bench_latch_init(&l);
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++) {
    void *pool = pool_new(p);
    burst(p, pool, jobs, n, &l);
    bench_cpu_snapshot(before);
    bench_sleep(window);
    pct[r] = bench_cpu_since(before) / window * 100;
    p->destroy(pool);
  }
  bench_report(w, p->impl, "cpu_pct", pct, REPS);
  bench_block_end();
  bench_latch_fini(&l);
  free(before);
  free(jobs);
}

/* ---- bridge ---- */

double bench_last_delivery;

void bench_delivered(long *delivered) {
  (*delivered)++;
  bench_last_delivery = bench_now();
}

void bench_bridge(const bench_peer_t *p) {
  const char *w = "bridge";
  const bench_bridge_ops_t *ops = p->bridge;
  if (ops == NULL) {
    bench_skip(w, p->impl, "no event loop to deliver completions to");
    return;
  }
  long rounds = bench_cfg.bridge_rounds, jobs = bench_cfg.bridge_jobs;
  double *lat = bench_xmalloc((size_t)rounds * sizeof(*lat));
  double p50[BENCH_MAX_REPS], p99[BENCH_MAX_REPS], rate[BENCH_MAX_REPS],
      batch[BENCH_MAX_REPS];
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++) {
    long delivered = 0;
    void *b = ops->open(&delivered);
    for (long i = 0; i < rounds; i++) {
      double t0 = bench_now();
      ops->submit(b);
      while (delivered <= i)
        ops->run_once(b);
      lat[i] = (bench_last_delivery - t0) * 1e6;
    }
    bench_sort(lat, rounds);
    p50[r] = bench_percentile(lat, rounds, 50);
    p99[r] = bench_percentile(lat, rounds, 99);
    delivered = 0;
    long submitted = 0, wakeups = 0;
    double t0 = bench_now();
    while (delivered < jobs) {
      for (; submitted < jobs &&
             submitted - delivered < bench_cfg.bridge_inflight;
           submitted++)
        ops->submit(b);
      ops->run_once(b);
      wakeups++;
    }
    rate[r] = (double)jobs / (bench_now() - t0);
    batch[r] = (double)jobs / (double)wakeups;
    ops->close(b);
  }
  bench_report(w, p->impl, "p50_us", p50, REPS);
  bench_report(w, p->impl, "p99_us", p99, REPS);
  bench_report(w, p->impl, "jobs_per_s", rate, REPS);
  bench_report(w, p->impl, "completions_per_wakeup", batch, REPS);
  bench_block_end();
  free(lat);
}

/* ---- fanout ---- */

static struct {
  const bench_peer_t *p;
  void *pool;
  bench_job_t *jobs; /* node i has children 2i+1 and 2i+2 */
  void **futs;
  bench_latch_t *latches; /* peers without futures: node i's children */
  int depth;
  double deadline; /* give up waiting then; INFINITY for peers that help */
} fo;

static int depth_of(long i) {
  int d = 0;
  for (unsigned long k = (unsigned long)i + 1; k > 1; k >>= 1)
    d++;
  return d;
}

/* A node: submit both children and wait for them; 1 if the whole subtree
 * completed, 0 if a wait gave up at the deadline. */
static intptr_t fanout_fn(bench_job_t *j) {
  long i = j - fo.jobs;
  if (depth_of(i) == fo.depth)
    return 1;
  if (bench_now() > fo.deadline)
    return 0; /* deadlocked and unwinding: do not fan out any more */
  long c = 2 * i + 1;
  bool ok = true;
  if (fo.p->futures) {
    for (int k = 0; k < 2; k++)
      fo.p->submit(fo.pool, &fo.jobs[c + k], &fo.futs[c + k]);
    for (int k = 0; k < 2; k++) {
      intptr_t v = 0;
      double left = fmax(0, fo.deadline - bench_now());
      ok = fo.p->result(fo.futs[c + k], left, &v) == 0 && v == 1 && ok;
      fo.p->release(fo.futs[c + k]);
    }
    return ok;
  }
  bench_latch_arm(&fo.latches[i], 2);
  for (int k = 0; k < 2; k++) {
    fo.jobs[c + k].done = &fo.latches[i];
    fo.p->submit(fo.pool, &fo.jobs[c + k], NULL);
  }
  return bench_latch_wait(&fo.latches[i], fo.deadline) &&
         fo.jobs[c].value == 1 && fo.jobs[c + 1].value == 1;
}

/* Run the tree once; returns true if the root completed in time. */
static bool fanout_once(double limit, double *wall) {
  const bench_peer_t *p = fo.p;
  fo.pool = pool_new(p);
  bench_jobs_init(fo.jobs, (2L << fo.depth) - 1, fanout_fn, NULL, NULL);
  bench_latch_t root;
  bench_latch_init(&root);
  void *rootf = NULL;
  intptr_t v = 0;
  double t0 = bench_now();
  fo.deadline = p->helps ? INFINITY : t0 + limit;
  bool ok;
  if (p->futures) {
    p->submit(fo.pool, &fo.jobs[0], &rootf);
    ok = p->result(rootf, limit, &v) == 0 && v == 1;
  } else {
    bench_latch_arm(&root, 1);
    fo.jobs[0].done = &root;
    p->submit(fo.pool, &fo.jobs[0], NULL);
    ok = bench_latch_wait(&root, t0 + limit) && fo.jobs[0].value == 1;
  }
  *wall = bench_now() - t0;
  if (!ok && p->helps)
    bench_die("fanout: deadlock in a pool that should not deadlock");
  /* A deadlocked tree unwinds now: every wait has passed its deadline. */
  if (p->futures) {
    (void)p->result(rootf, INFINITY, &v);
    p->release(rootf);
  } else {
    bench_latch_wait(&root, INFINITY);
  }
  p->destroy(fo.pool);
  bench_latch_fini(&root);
  return ok;
}

void bench_fanout(const bench_peer_t *p) {
  const char *w = "fanout";
  if (!p->nested) {
    bench_skip(w, p->impl, "jobs cannot submit to their own pool");
    return;
  }
  long nodes = (2L << bench_cfg.fanout_depth) - 1;
  fo.p = p;
  fo.depth = bench_cfg.fanout_depth;
  fo.jobs = bench_xmalloc((size_t)nodes * sizeof(*fo.jobs));
  fo.futs = bench_xmalloc((size_t)nodes * sizeof(*fo.futs));
  fo.latches = bench_xmalloc((size_t)nodes * sizeof(*fo.latches));
  for (long i = 0; i < nodes; i++)
    bench_latch_init(&fo.latches[i]);
  /* A pool that helps is given a minute before it counts as deadlocked. */
  double limit = p->helps ? 60 : bench_cfg.fanout_limit;
  double rate[BENCH_MAX_REPS], wall = 0;
  int n = 0;
  bool completed = true;
  bench_block_begin(w, p);
  for (int r = 0; r < REPS && completed; r++) {
    completed = fanout_once(limit, &wall);
    if (completed)
      rate[n++] = (double)nodes / wall;
  }
  bench_report3(w, p->impl, "completed", completed, completed, completed);
  if (completed)
    bench_report(w, p->impl, "jobs_per_s", rate, n);
  else
    bench_note("deadlock: all %d workers wait for children queued behind "
               "them (no result in %.1f s; then unwound)",
               bench_cfg.workers, limit);
  bench_block_end();
  for (long i = 0; i < nodes; i++)
    bench_latch_fini(&fo.latches[i]);
  free(fo.jobs);
  free(fo.futs);
  free(fo.latches);
}

/* ---- as_completed ---- */

void bench_as_completed(const bench_peer_t *p) {
  const char *w = "as_completed";
  const bench_ac_ops_t *ops = p->as_completed;
  if (ops == NULL) {
    bench_skip(w, p->impl, "no completion-order consumption");
    return;
  }
  enum { WARM = 64, BATCHES = 10 };
  /* The small size runs in BATCHES batches, one after the other: as many
   * completions as the large size, so both figures are equally steady. */
  long n = bench_cfg.ac_jobs, sizes[2] = {n / BATCHES, n};
  bench_job_t *jobs = bench_xmalloc((size_t)n * sizeof(*jobs));
  bench_job_t warm[WARM];
  double ns[BENCH_MAX_REPS], ms[BENCH_MAX_REPS];
  bench_block_begin(w, p);
  for (int s = 0; s < 2; s++) {
    long batch = sizes[s];
    for (int r = 0; r < REPS; r++) {
      void *ctx = ops->open();
      bench_jobs_init(warm, WARM, bench_empty_fn, NULL, NULL);
      ops->run(ctx, warm, WARM);
      bench_jobs_init(jobs, n, bench_spin_fn, NULL, NULL);
      for (long i = 0; i < n; i++)
        jobs[i].arg = (void *)(intptr_t)(i * 7919 % 21); /* 0-20 us */
      double t0 = bench_now(), c0 = bench_thread_cpu();
      for (long b = 0; b < n; b += batch)
        ops->run(ctx, jobs + b, batch);
      ns[r] = (bench_thread_cpu() - c0) / (double)n * 1e9;
      ms[r] = (bench_now() - t0) * 1e3;
      ops->close(ctx);
    }
    report_sized(w, p->impl, "ns_per_op", batch, ns, REPS);
    if (s == 1)
      report_sized(w, p->impl, "ms", n, ms, REPS);
  }
  bench_note("ns_per_op_<size>: CPU of the submitting and consuming thread "
             "per job, consuming batches of <size> (%ld jobs in all)",
             n);
  bench_block_end();
  free(jobs);
}

/* ---- timeout ---- */

void bench_timeout(const bench_peer_t *p) {
  const char *w = "timeout";
  if (!p->futures && p->wait_timeout == NULL) {
    bench_skip(w, p->impl, "no wait with a timeout");
    return;
  }
  long all = p == &bench_peer_cfutures ? bench_cfg.timeouts
                                       : bench_cfg.peer_timeouts;
  long n = all / REPS;
  if (n < 1)
    n = 1;
  const double timeout = 1e-3;
  double *over = bench_xmalloc((size_t)n * sizeof(*over));
  double p50[BENCH_MAX_REPS], p99[BENCH_MAX_REPS];
  long early = 0;
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++) {
    void *pool = pool_new(p);
    gate_close(p, pool, 1); /* a job that does not finish before the end */
    for (long k = 0; k < n; k++) {
      double t0 = bench_now();
      intptr_t v;
      if (p->futures) {
        if (p->result(gate.futs[0], timeout, &v) != 1)
          bench_die("timeout: result() did not time out");
      } else {
        p->wait_timeout(pool, timeout);
      }
      double dt = bench_now() - t0;
      early += dt < timeout;
      over[k] = (dt - timeout) * 1e6;
    }
    bench_sort(over, n);
    p50[r] = bench_percentile(over, n, 50);
    p99[r] = bench_percentile(over, n, 99);
    gate_open(p);
    p->destroy(pool);
  }
  bench_report(w, p->impl, "p50_us", p50, REPS);
  bench_report(w, p->impl, "p99_us", p99, REPS);
  bench_report3(w, p->impl, "early", (double)early, (double)early,
                (double)early);
  bench_note("overshoot past the 1 ms timeout; early: returns before it, "
             "over all %ld waits",
             n * REPS);
  bench_block_end();
  free(over);
}

/* ---- cancel ---- */

/* Once the gate is open: wait until each of the n jobs completed (ran or
 * was cancelled), release them, and count the lost ones: never completed,
 * or ran although cancel said it was cancelled. */
static long settle(const bench_peer_t *p, void *pool, bench_job_t *jobs,
                   void **futs, long n, const bool *cancelled) {
  if (p->drain != NULL)
    p->drain(pool);
  double deadline = bench_now() + 10;
  long lost = 0;
  for (long i = 0; i < n; i++) {
    int o = jobs[i].outcome;
    if (p->futures) {
      intptr_t v;
      (void)p->result(futs[i], fmax(0, deadline - bench_now()), &v);
      if (p->outcome != NULL)
        o = p->outcome(futs[i], &jobs[i]);
      p->release(futs[i]);
    }
    lost += o == BENCH_PENDING ||
            (cancelled != NULL && cancelled[i] && jobs[i].outcome == BENCH_RAN);
  }
  return lost;
}

/* Queue n empty jobs behind busy workers. */
static void *queue_behind_gate(const bench_peer_t *p, bench_job_t *jobs,
                               void **futs, long n, bool handles) {
  void *pool = pool_new(p);
  gate_close(p, pool, bench_cfg.workers);
  bench_jobs_init(jobs, n, bench_empty_fn, NULL, NULL);
  for (long i = 0; i < n; i++)
    p->submit(pool, &jobs[i], handles ? &futs[i] : NULL);
  return pool;
}

void bench_cancel(const bench_peer_t *p) {
  const char *w = "cancel";
  if (p->cancel == NULL && p->shutdown_cancel == NULL) {
    bench_skip(w, p->impl, "no way to cancel queued jobs");
    return;
  }
  long n = bench_cfg.cancels;
  bench_job_t *jobs = bench_xmalloc((size_t)n * sizeof(*jobs));
  void **futs = bench_xmalloc((size_t)n * sizeof(*futs));
  bool *cancelled = bench_xmalloc((size_t)n * sizeof(*cancelled));
  double v[BENCH_MAX_REPS];
  long lost = 0;
  bench_block_begin(w, p);
  if (p->cancel != NULL) {
    for (int r = 0; r < REPS; r++) {
      void *pool = queue_behind_gate(p, jobs, futs, n, true);
      double t0 = bench_now();
      for (long i = 0; i < n; i++)
        cancelled[i] = p->cancel(futs[i]) == 1;
      v[r] = (bench_now() - t0) / (double)n * 1e9;
      gate_open(p);
      lost += settle(p, pool, jobs, futs, n, cancelled);
      p->destroy(pool);
    }
    bench_report(w, p->impl, "ns_per_op", v, REPS);
  }
  if (p->shutdown_cancel != NULL) {
    for (int r = 0; r < REPS; r++) {
      void *pool = queue_behind_gate(p, jobs, futs, n, p->futures);
      double t0 = bench_now();
      p->shutdown_cancel(pool);
      v[r] = (bench_now() - t0) * 1e3;
      gate_open(p);
      lost += settle(p, pool, jobs, futs, n, NULL);
      p->destroy(pool);
    }
    bench_report(w, p->impl, "ms", v, REPS);
  }
  bench_report3(w, p->impl, "lost", (double)lost, (double)lost,
                (double)lost);
  if (p->cancel == NULL)
    bench_note("no per-job cancel: ns_per_op not measured");
  if (p->shutdown_cancel == NULL)
    bench_note("no shutdown that cancels the queue: ms not measured");
  bench_note("lost: over all repetitions of both parts");
  bench_block_end();
  free(jobs);
  free(futs);
  free(cancelled);
}

/* ---- memory ---- */

void bench_memory(const bench_peer_t *p) {
  const char *w = "memory";
  if (!p->queue) {
    bench_skip(w, p->impl, "no queue that holds pending jobs");
    return;
  }
  long n = bench_cfg.mem_futures;
  bench_job_t *jobs = bench_xmalloc((size_t)n * sizeof(*jobs));
  void **futs = bench_xmalloc((size_t)n * sizeof(*futs));
  double bytes[BENCH_MAX_REPS];
  bench_latch_t l;
  bench_latch_init(&l);
  bench_block_begin(w, p);
  for (int r = 0; r < REPS; r++) {
    void *pool = pool_new(p);
    gate_close(p, pool, bench_cfg.workers);
    bench_jobs_init(jobs, n, bench_empty_fn, NULL, p->futures ? NULL : &l);
    bench_latch_arm(&l, n);
    for (long i = 0; i < n; i++)
      futs[i] = jobs; /* touch the array before the baseline */
    bench_trim();
    double rss0 = bench_rss();
    for (long i = 0; i < n; i++)
      p->submit(pool, &jobs[i], p->futures ? &futs[i] : NULL);
    bytes[r] = (bench_rss() - rss0) / (double)n;
    for (long i = 0; i < n && p->cancel != NULL && p->futures; i++)
      (void)p->cancel(futs[i]); /* faster than running them */
    gate_open(p);
    if (p->futures)
      (void)settle(p, pool, jobs, futs, n, NULL);
    else
      drain(p, pool, &l);
    p->destroy(pool);
  }
  bench_report(w, p->impl, "bytes_per_future", bytes, REPS);
  bench_block_end();
  bench_latch_fini(&l);
  free(jobs);
  free(futs);
}
