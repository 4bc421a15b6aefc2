/*
 * cfutures-bench: the benchmark program (see BENCH.md for the full plan).
 *
 * Workloads measured so far, for cfutures only:
 *   throughput  N empty jobs with futures from one producer: submit all,
 *               wait for all, release all (jobs_per_s, wall and CPU time)
 *   roundtrip   submit one job, wait for its result, repeat (p50_us, p99_us)
 *   bridge      an epoll loop thread submits with cf_bridge_run_in_executor
 *               and gets the result callback back on the loop: one at a
 *               time (p50_us, p99_us), then N jobs with 1000 in flight
 *               (jobs_per_s, completions_per_wakeup)
 *   tasks       the raw coroutine switch (ns_per_op), a task yielding with
 *               cf_sleep(0) (ns_per_op), spawn and join of an empty task
 *               (ns_per_op), and RSS per suspended task with N tasks
 *               awaiting a sleep (bytes_per_task)
 * Every figure is the median of --reps runs, with min and max, and is
 * printed both as a table row and as "RESULT <workload> cfutures <metric>
 * <value>". Options: --quick (smaller sizes), --workers N (default 2),
 * --reps N (default 5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cfutures.h"
#include "cfutures/loop.h"
#include "coro.h" /* the raw switch, compiled into this program */

static int workers = 2;
static int reps = 5;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(const char *what, int rc) {
  fprintf(stderr, "cfutures-bench: %s: %s\n", what, cf_strerror(rc));
  exit(1);
}

static cf_executor_t *new_pool(void) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  opts.thread_name_prefix = "bench";
  cf_executor_t *ex;
  int rc = cf_executor_create(&ex, &opts);
  if (rc != 0)
    die("cf_executor_create", rc);
  return ex;
}

static int empty_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  return 0;
}

/* Report the median, min and max of v[0..n) under one metric name. */
static void report(const char *workload, const char *metric, double *v,
                   int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  printf("%-12s %-10s %-12s %14.1f  (min %.1f, max %.1f)\n", workload,
         "cfutures", metric, v[n / 2], v[0], v[n - 1]);
  printf("RESULT %s cfutures %s %.1f\n", workload, metric, v[n / 2]);
}

static void bench_throughput(long jobs) {
  cf_future_t **fs = malloc((size_t)jobs * sizeof(*fs));
  double *rate = malloc((size_t)reps * sizeof(*rate));
  double *cpu = malloc((size_t)reps * sizeof(*cpu));
  if (fs == NULL || rate == NULL || cpu == NULL)
    die("malloc", CF_ENOMEM);
  for (int r = 0; r < reps; r++) {
    cf_executor_t *ex = new_pool();
    double t0 = now_s(), c0 = cpu_s();
    for (long i = 0; i < jobs; i++) {
      int rc = cf_executor_submit(ex, empty_job, NULL, NULL, &fs[i]);
      if (rc != 0)
        die("cf_executor_submit", rc);
    }
    for (long i = 0; i < jobs; i++) {
      int rc = cf_future_result(fs[i], CF_FOREVER, NULL);
      if (rc != 0)
        die("cf_future_result", rc);
      cf_future_release(fs[i]);
    }
    double wall = now_s() - t0;
    cpu[r] = (cpu_s() - c0) / (double)jobs * 1e9;
    rate[r] = (double)jobs / wall;
    cf_executor_destroy(ex);
  }
  report("throughput", "jobs_per_s", rate, reps);
  report("throughput", "cpu_ns_per_job", cpu, reps);
  free(fs);
  free(rate);
  free(cpu);
}

static void bench_roundtrip(long rounds) {
  double *lat = malloc((size_t)rounds * sizeof(*lat));
  double *p50 = malloc((size_t)reps * sizeof(*p50));
  double *p99 = malloc((size_t)reps * sizeof(*p99));
  if (lat == NULL || p50 == NULL || p99 == NULL)
    die("malloc", CF_ENOMEM);
  for (int r = 0; r < reps; r++) {
    cf_executor_t *ex = new_pool();
    for (long i = 0; i < rounds; i++) {
      double t0 = now_s();
      cf_future_t *f;
      int rc = cf_executor_submit(ex, empty_job, NULL, NULL, &f);
      if (rc != 0 || (rc = cf_future_result(f, CF_FOREVER, NULL)) != 0)
        die("roundtrip", rc);
      lat[i] = (now_s() - t0) * 1e6;
      cf_future_release(f);
    }
    qsort(lat, (size_t)rounds, sizeof(*lat), cmp_double);
    p50[r] = lat[rounds / 2];
    p99[r] = lat[rounds * 99 / 100];
    cf_executor_destroy(ex);
  }
  report("roundtrip", "p50_us", p50, reps);
  report("roundtrip", "p99_us", p99, reps);
  free(lat);
  free(p50);
  free(p99);
}

struct loop_state {
  cf_bridge_t *bridge;
  cf_executor_t *ex;
  long delivered;
};

static void on_delivered(cf_future_t *f, int status, void *data) {
  (void)f;
  if (status != 0)
    die("bridge delivery", status);
  ((struct loop_state *)data)->delivered++;
}

/* Block in epoll until the bridge fd is readable, then dispatch. */
static void loop_once(int ep, struct loop_state *st) {
  struct epoll_event ev;
  int n = epoll_wait(ep, &ev, 1, 10000);
  if (n != 1)
    die("epoll_wait: no completion within 10 s", CF_ETIMEDOUT);
  int rc = cf_bridge_dispatch(st->bridge);
  if (rc < 0)
    die("cf_bridge_dispatch", rc);
}

static void bench_bridge(long rounds, long jobs) {
  double *lat = malloc((size_t)rounds * sizeof(*lat));
  double *p50 = malloc((size_t)reps * sizeof(*p50));
  double *p99 = malloc((size_t)reps * sizeof(*p99));
  double *rate = malloc((size_t)reps * sizeof(*rate));
  double *batch = malloc((size_t)reps * sizeof(*batch));
  if (!lat || !p50 || !p99 || !rate || !batch)
    die("malloc", CF_ENOMEM);
  for (int r = 0; r < reps; r++) {
    struct loop_state st = {NULL, new_pool(), 0};
    int rc = cf_bridge_create(&st.bridge);
    if (rc != 0)
      die("cf_bridge_create", rc);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (ep < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, cf_bridge_fd(st.bridge), &ev) != 0)
      die("epoll", CF_ESYSTEM);
    for (long i = 0; i < rounds; i++) {
      double t0 = now_s();
      rc = cf_bridge_run_in_executor(st.bridge, st.ex, empty_job, NULL, NULL,
                                     on_delivered, &st, NULL);
      if (rc != 0)
        die("cf_bridge_run_in_executor", rc);
      while (st.delivered <= i)
        loop_once(ep, &st);
      lat[i] = (now_s() - t0) * 1e6;
    }
    qsort(lat, (size_t)rounds, sizeof(*lat), cmp_double);
    p50[r] = lat[rounds / 2];
    p99[r] = lat[rounds * 99 / 100];
    st.delivered = 0;
    long submitted = 0, wakeups = 0;
    double t0 = now_s();
    while (st.delivered < jobs) {
      for (; submitted < jobs && submitted - st.delivered < 1000; submitted++) {
        rc = cf_bridge_run_in_executor(st.bridge, st.ex, empty_job, NULL, NULL,
                                       on_delivered, &st, NULL);
        if (rc != 0)
          die("cf_bridge_run_in_executor", rc);
      }
      loop_once(ep, &st);
      wakeups++;
    }
    rate[r] = (double)jobs / (now_s() - t0);
    batch[r] = (double)jobs / (double)wakeups;
    close(ep);
    cf_bridge_destroy(st.bridge);
    cf_executor_destroy(st.ex);
  }
  report("bridge", "p50_us", p50, reps);
  report("bridge", "p99_us", p99, reps);
  report("bridge", "jobs_per_s", rate, reps);
  report("bridge", "completions_per_wakeup", batch, reps);
  free(lat);
  free(p50);
  free(p99);
  free(rate);
  free(batch);
}

static cf__coro_t bench_main, bench_coro;

static void switch_back_forever(void *arg) {
  (void)arg;
  for (;;)
    cf__coro_switch(&bench_coro, &bench_main);
}

/* Resident set size in bytes, from /proc/self/statm. */
static double rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static int yield_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  long n = *(long *)arg;
  for (long i = 0; i < n; i++)
    if (cf_sleep(0) != 0)
      return CF_ECANCELLED;
  return 0;
}

static int empty_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

static int sleeping_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  return cf_sleep(*(double *)arg);
}

static cf_loop_t *new_loop(void) {
  cf_loop_t *loop;
  int rc = cf_loop_create(&loop, NULL);
  if (rc != 0)
    die("cf_loop_create", rc);
  return loop;
}

static void bench_tasks(long switches, long tasks) {
  double *sw = malloc((size_t)reps * sizeof(*sw));
  double *yield = malloc((size_t)reps * sizeof(*yield));
  double *spawn = malloc((size_t)reps * sizeof(*spawn));
  double *mem = malloc((size_t)reps * sizeof(*mem));
  void *stack = malloc(64 * 1024);
  if (!sw || !yield || !spawn || !mem || !stack)
    die("malloc", CF_ENOMEM);
  cf__coro_init_main(&bench_main);
  if (cf__coro_init(&bench_coro, stack, 64 * 1024, switch_back_forever,
                    NULL) != 0)
    die("cf__coro_init", CF_ENOMEM);
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    for (long i = 0; i < switches; i++)
      cf__coro_switch(&bench_main, &bench_coro);
    sw[r] = (now_s() - t0) / (2.0 * (double)switches) * 1e9;

    cf_loop_t *loop = new_loop();
    cf_lfuture_t *t;
    long n = switches / 10;
    t0 = now_s();
    if (cf_task_create(loop, yield_task, &n, &t) != 0 ||
        cf_loop_run_until_complete(loop, t) != 0)
      die("yield task", CF_EFAILED);
    yield[r] = (now_s() - t0) / (double)n * 1e9;
    cf_lfuture_release(t);

    long m = switches / 100;
    t0 = now_s();
    for (long i = 0; i < m; i++) {
      if (cf_task_create(loop, empty_task, NULL, &t) != 0 ||
          cf_loop_run_until_complete(loop, t) != 0)
        die("spawn task", CF_EFAILED);
      cf_lfuture_release(t);
    }
    spawn[r] = (now_s() - t0) / (double)m * 1e9;

    /* N tasks suspended in a sleep: first step them all, then measure. */
    double forever = 3600;
    double before = rss_bytes();
    for (long i = 0; i < tasks; i++)
      if (cf_task_create(loop, sleeping_task, &forever, NULL) != 0)
        die("cf_task_create", CF_ENOMEM);
    cf_loop_run_once(loop, 0);
    mem[r] = (rss_bytes() - before) / (double)tasks;
    cf_loop_close(loop); /* cancels them all */
  }
  cf__coro_fini(&bench_coro);
  free(stack);
  report("tasks", "switch_ns", sw, reps);
  report("tasks", "yield_ns", yield, reps);
  report("tasks", "spawn_join_ns", spawn, reps);
  report("tasks", "bytes_per_task", mem, reps);
  free(sw);
  free(yield);
  free(spawn);
  free(mem);
}

int main(int argc, char **argv) {
  long jobs = 1000000, rounds = 100000, bridge_jobs = 100000;
  long switches = 10000000, tasks = 100000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      jobs = 100000;
      rounds = 10000;
      bridge_jobs = 20000;
      switches = 1000000;
      tasks = 10000;
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      workers = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--quick] [--workers N] [--reps N]\n",
              argv[0]);
      return 2;
    }
  }
  if (workers < 1 || reps < 1) {
    fprintf(stderr, "cfutures-bench: --workers and --reps must be >= 1\n");
    return 2;
  }
  printf("cfutures %s, %d workers, median of %d runs\n", cf_version(), workers,
         reps);
  printf("%-12s %-10s %-12s %14s\n", "workload", "impl", "metric", "median");
  bench_throughput(jobs);
  bench_roundtrip(rounds);
  bench_bridge(rounds / 10, bridge_jobs);
  bench_tasks(switches, tasks);
  return 0;
}
