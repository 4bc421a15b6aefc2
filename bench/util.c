/*
 * util.c: timing, memory, the latch and the job helpers of bench.h.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

bench_cfg_t bench_cfg;

bool bench_selected(const char *list, const char *name) {
  if (list == NULL)
    return true;
  size_t len = strlen(name);
  for (const char *p = list; *p != '\0';) {
    const char *end = strchr(p, ',');
    size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
    if (n == len && strncmp(p, name, n) == 0)
      return true;
    p += n + (end != NULL);
  }
  return false;
}

/* ---- timing ---- */

static double ts_seconds(const struct timespec *ts) {
  return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts_seconds(&ts);
}

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double rusage_cpu(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Children count once waited for: the fresh processes of memory. */
double bench_cpu(void) {
  return rusage_cpu(RUSAGE_SELF) + rusage_cpu(RUSAGE_CHILDREN);
}

void bench_cpu_snapshot(bench_cpu_snapshot_t *s) {
  s->n = 0;
  DIR *d = opendir("/proc/self/task");
  if (d == NULL)
    bench_die("cannot read /proc/self/task");
  struct dirent *e;
  while ((e = readdir(d)) != NULL && s->n < BENCH_MAX_THREADS) {
    long tid = strtol(e->d_name, NULL, 10);
    if (tid <= 0)
      continue;
    /* The kernel's per-thread CPU clock id, as pthread_getcpuclockid()
     * makes it: ~tid in the high bits, then CPUCLOCK_PERTHREAD_MASK (4) |
     * CPUCLOCK_SCHED (2). */
    clockid_t clock = (clockid_t)((~(unsigned)tid << 3) | 6u);
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
      continue; /* it just exited */
    s->tid[s->n] = tid;
    s->cpu[s->n++] = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
  }
  closedir(d);
}

double bench_cpu_since(const bench_cpu_snapshot_t *s) {
  bench_cpu_snapshot_t *now = bench_xmalloc(sizeof(*now));
  bench_cpu_snapshot(now);
  double sum = 0;
  for (int i = 0; i < now->n; i++) {
    double before = 0;
    for (int j = 0; j < s->n; j++)
      if (s->tid[j] == now->tid[i])
        before = s->cpu[j];
    sum += now->cpu[i] - before;
  }
  free(now);
  return sum;
}

double bench_machine_cpu(void) {
  unsigned long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL)
    return NAN;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                 &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n != 8)
    return NAN;
  /* user nice system idle iowait irq softirq steal: all but idle, iowait */
  unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

double bench_thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts_seconds(&ts);
}

double bench_rss(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

void bench_trim(void) { malloc_trim(0); }

void bench_spin_us(double us) {
  double end = bench_now() + us / 1e6;
  while (bench_now() < end)
    ;
}

void bench_sleep(double s) {
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

void bench_die(const char *what) {
  fprintf(stderr, "cfutures-bench: %s\n", what);
  exit(1);
}

void *bench_xmalloc(size_t size) {
  void *p = calloc(1, size);
  if (p == NULL)
    bench_die("out of memory");
  return p;
}

/* ---- latch ---- */

void bench_latch_init(bench_latch_t *l) {
  pthread_condattr_t attr;
  atomic_init(&l->left, 0);
  pthread_mutex_init(&l->mu, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cv, &attr);
  pthread_condattr_destroy(&attr);
}

void bench_latch_fini(bench_latch_t *l) {
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
}

void bench_latch_arm(bench_latch_t *l, long count) {
  atomic_store(&l->left, count);
}

/* The last count-down and the waiter's check both happen under the mutex:
 * a waiter that sees 0 has the mutex after the last signaller released
 * it, so it may destroy the latch at once. */
void bench_latch_done(bench_latch_t *l) {
  long v = atomic_load(&l->left);
  while (v > 1)
    if (atomic_compare_exchange_weak(&l->left, &v, v - 1))
      return;
  pthread_mutex_lock(&l->mu);
  atomic_store(&l->left, 0);
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

bool bench_latch_wait(bench_latch_t *l, double deadline) {
  struct timespec ts = {(time_t)deadline,
                        (long)((deadline - floor(deadline)) * 1e9)};
  pthread_mutex_lock(&l->mu);
  int err = 0;
  while (atomic_load(&l->left) != 0 && err == 0) {
    if (isinf(deadline))
      pthread_cond_wait(&l->cv, &l->mu);
    else
      err = pthread_cond_timedwait(&l->cv, &l->mu, &ts);
  }
  bool zero = atomic_load(&l->left) == 0;
  pthread_mutex_unlock(&l->mu);
  return zero;
}

/* ---- jobs ---- */

void bench_jobs_init(bench_job_t *jobs, long n, bench_fn fn, void *arg,
                     bench_latch_t *done) {
  for (long i = 0; i < n; i++)
    jobs[i] = (bench_job_t){fn, arg, 0, done, BENCH_PENDING};
}

intptr_t bench_empty_fn(bench_job_t *j) {
  (void)j;
  return 0;
}

intptr_t bench_spin_fn(bench_job_t *j) {
  bench_spin_us((double)(intptr_t)j->arg);
  return 0;
}
