/*
 * Tests of cf_executor: creation and options, lazy thread start and idle
 * reuse, thread names, submit, cancel, shutdown modes, initializers, calls
 * from inside workers and job results (SEMANTICS.md section 2).
 *
 * Jobs never assert: they record into atomics and the test thread asserts
 * after it has waited for them. Schedules are made deterministic with the
 * gates of helpers.h, never with sleeps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_getname_np */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cfutures.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* Local helpers                                                      */
/* ------------------------------------------------------------------ */

/* A job argument that records what happened to it. When gate is set the
 * job blocks on it first. */
typedef struct probe {
  gate_t *gate;
  int index;
  atomic_int ran;              /* times the job body ran */
  atomic_int freed;            /* times the arg destructor ran */
  atomic_int freed_after_run;  /* destructor saw ran == 1 */
} probe_t;

/* The order in which probe jobs ran (FIFO test). */
static atomic_int order_pos;
static int order[256];

static int probe_job(void *arg, cf_job_t *job) {
  probe_t *p = arg;
  if (p->gate != NULL) {
    sem_post(&p->gate->started);
    while (sem_wait(&p->gate->open) != 0) {
    }
  }
  int pos = atomic_fetch_add(&order_pos, 1);
  if (pos >= 0 && pos < (int)(sizeof order / sizeof order[0]))
    order[pos] = p->index;
  atomic_fetch_add(&p->ran, 1);
  cf_job_return(job, (void *)(intptr_t)p->index, NULL);
  return 0;
}

static void probe_free(void *arg) {
  probe_t *p = arg;
  if (atomic_load(&p->ran) == 1)
    atomic_fetch_add(&p->freed_after_run, 1);
  atomic_fetch_add(&p->freed, 1);
}

static void probes_init(probe_t *ps, int n, gate_t *gate) {
  for (int i = 0; i < n; i++) {
    ps[i].gate = gate;
    ps[i].index = i;
    atomic_init(&ps[i].ran, 0);
    atomic_init(&ps[i].freed, 0);
    atomic_init(&ps[i].freed_after_run, 0);
  }
}

static cf_executor_t *make_pool(int max_workers, const char *prefix) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = max_workers;
  opts.thread_name_prefix = prefix;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  assert_non_null(ex);
  return ex;
}

/* Submit gated_job(g) and return its future. */
static cf_future_t *submit_gated(cf_executor_t *ex, gate_t *g) {
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_job, g, NULL, &f), 0);
  assert_non_null(f);
  return f;
}

static int setup(void **state) {
  (void)state;
  atomic_store(&counter_hits, 0);
  atomic_store(&order_pos, 0);
  memset(order, 0, sizeof order);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Options and creation                                               */
/* ------------------------------------------------------------------ */

static void test_options_defaults(void **state) {
  (void)state;
  cf_executor_options_t opts;
  memset(&opts, 0x5a, sizeof opts);
  cf_executor_options_init(&opts);
  int cpus = usable_cpus();
  assert_true(cpus >= 1);
  assert_int_equal(opts.max_workers, cpus + 4 < 32 ? cpus + 4 : 32);
  assert_true(opts.thread_name_prefix == NULL ||
              opts.thread_name_prefix[0] == '\0');
  assert_null(opts.initializer);
  assert_null(opts.initializer_arg);
}

/* Usable CPUs follow the calling thread's affinity, as Python 3.13's
 * os.process_cpu_count() does: limited to one, the default is 1 + 4. */
static void test_options_default_follows_affinity(void **state) {
  (void)state;
  cpu_set_t saved;
  assert_int_equal(pin_thread_to_one_cpu(&saved), 0);
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  assert_int_equal(unpin_thread(&saved), 0);
  assert_int_equal(opts.max_workers, 5);
}

static void test_create_invalid_max_workers(void **state) {
  (void)state;
  const int bad[] = {0, -1, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cf_executor_options_t opts;
    cf_executor_options_init(&opts);
    opts.max_workers = bad[i];
    cf_executor_t *ex = (cf_executor_t *)&opts; /* sentinel */
    assert_int_equal(cf_executor_create(&ex, &opts), CF_EINVAL);
    assert_ptr_equal(ex, (cf_executor_t *)&opts);
  }
}

static void test_create_null_out(void **state) {
  (void)state;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  assert_int_equal(cf_executor_create(NULL, &opts), CF_EINVAL);
  assert_int_equal(cf_executor_create(NULL, NULL), CF_EINVAL);
}

static void test_create_null_opts_is_default(void **state) {
  (void)state;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, NULL), 0);
  assert_non_null(ex);
  assert_int_equal(cf_executor_thread_count(ex), 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, (void *)7, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(wait_result(f, &v), 0);
  assert_ptr_equal(v, (void *)7);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_null_args(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "nullargs");
  cf_future_t *sentinel = (cf_future_t *)&ex;
  cf_future_t *f = sentinel;
  atomic_store(&counter_hits, 0);
  assert_int_equal(cf_executor_submit(NULL, echo_job, NULL, count_free, &f),
                   CF_EINVAL);
  assert_ptr_equal(f, sentinel);
  assert_int_equal(cf_executor_submit(ex, NULL, NULL, count_free, &f),
                   CF_EINVAL);
  assert_ptr_equal(f, sentinel);
  assert_int_equal(atomic_load(&counter_hits), 0); /* caller keeps arg */
  assert_int_equal(cf_executor_shutdown(NULL, true, false), CF_EINVAL);
  assert_int_equal(cf_executor_shutdown(NULL, false, true), CF_EINVAL);
  assert_int_equal(cf_executor_thread_count(NULL), CF_EINVAL);
  assert_int_equal(cf_executor_thread_count(ex), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_destroy_null(void **state) {
  (void)state;
  assert_int_equal(cf_executor_destroy(NULL), 0);
}

/* ------------------------------------------------------------------ */
/* Threads                                                            */
/* ------------------------------------------------------------------ */

static void test_no_thread_before_submit(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(4, NULL);
  assert_int_equal(cf_executor_thread_count(ex), 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(cf_executor_thread_count(ex), 1);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_shutdown_without_submit_starts_no_thread(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(4, NULL);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_executor_thread_count(ex), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* SEMANTICS 2.3 test_idle_thread_reuse. */
static void test_idle_thread_reuse(void **state) {
  (void)state;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, NULL), 0);
  for (int i = 0; i < 3; i++) {
    cf_future_t *f = NULL;
    assert_int_equal(
        cf_executor_submit(ex, echo_job, (void *)(intptr_t)i, NULL, &f), 0);
    void *v = NULL;
    assert_int_equal(wait_result(f, &v), 0);
    assert_ptr_equal(v, (void *)(intptr_t)i);
    cf_future_release(f);
  }
  assert_int_equal(cf_executor_thread_count(ex), 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* SEMANTICS 2.3 test_saturation: 15 * max blocking jobs -> max threads. */
static void test_saturation(void **state) {
  (void)state;
  enum { MAX = 4, N = 15 * MAX };
  cf_executor_t *ex = make_pool(MAX, "sat");
  gate_t g;
  gate_init(&g);
  cf_future_t *fs[N];
  for (int i = 0; i < N; i++)
    fs[i] = submit_gated(ex, &g);
  for (int i = 0; i < MAX; i++)
    gate_wait_started(&g);
  assert_int_equal(cf_executor_thread_count(ex), MAX);
  gate_open(&g, N);
  for (int i = 0; i < N; i++) {
    void *v = NULL;
    assert_int_equal(wait_result(fs[i], &v), 0);
    assert_ptr_equal(v, &g);
    cf_future_release(fs[i]);
  }
  assert_int_equal(cf_executor_thread_count(ex), MAX);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* Idle workers (spinning or parked) are all woken by a burst: MAX jobs
 * that block until the test has seen MAX of them running can only all
 * start if every worker was woken. Many rounds, so that the burst finds
 * workers in every idle state (a hang here is a lost wake-up). */
static void test_burst_wakes_every_idle_worker(void **state) {
  (void)state;
  enum { MAX = 4, ROUNDS = 300 };
  cf_executor_t *ex = make_pool(MAX, "burst");
  gate_t g;
  gate_init(&g);
  for (int r = 0; r < ROUNDS; r++) {
    cf_future_t *fs[MAX];
    for (int i = 0; i < MAX; i++)
      fs[i] = submit_gated(ex, &g);
    for (int i = 0; i < MAX; i++)
      gate_wait_started(&g);
    gate_open(&g, MAX);
    for (int i = 0; i < MAX; i++) {
      assert_int_equal(wait_result(fs[i], NULL), 0);
      cf_future_release(fs[i]);
    }
  }
  assert_int_equal(cf_executor_thread_count(ex), MAX);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* SEMANTICS 2.3 test_threads_terminate: 3 blocking jobs on 5 workers. */
static void test_threads_only_as_needed(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(5, "need");
  gate_t g;
  gate_init(&g);
  cf_future_t *fs[3];
  for (int i = 0; i < 3; i++)
    fs[i] = submit_gated(ex, &g);
  for (int i = 0; i < 3; i++)
    gate_wait_started(&g);
  assert_int_equal(cf_executor_thread_count(ex), 3);
  gate_open(&g, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(wait_result(fs[i], NULL), 0);
    cf_future_release(fs[i]);
  }
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_executor_thread_count(ex), 3);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* A gated job that records its thread's name. */
typedef struct name_probe {
  gate_t *gate;
  char name[32];
  int rc;
} name_probe_t;

static int name_job(void *arg, cf_job_t *job) {
  (void)job;
  name_probe_t *p = arg;
  p->rc = pthread_getname_np(pthread_self(), p->name, sizeof p->name);
  if (p->gate != NULL) {
    sem_post(&p->gate->started);
    while (sem_wait(&p->gate->open) != 0) {
    }
  }
  return 0;
}

/* Run n name jobs at once on a pool of n workers (all gated, so each one
 * runs on its own thread) and fill ps. */
static void collect_names(const char *prefix, name_probe_t *ps, int n) {
  cf_executor_t *ex = make_pool(n, prefix);
  gate_t g;
  gate_init(&g);
  cf_future_t *fs[8];
  assert_true(n <= 8);
  for (int i = 0; i < n; i++) {
    ps[i].gate = &g;
    ps[i].rc = -1;
    ps[i].name[0] = '\0';
    assert_int_equal(cf_executor_submit(ex, name_job, &ps[i], NULL, &fs[i]),
                     0);
  }
  for (int i = 0; i < n; i++)
    gate_wait_started(&g);
  gate_open(&g, n);
  for (int i = 0; i < n; i++) {
    assert_int_equal(wait_result(fs[i], NULL), 0);
    cf_future_release(fs[i]);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* name is "<something>_<n>" with n in [0, max); returns n. */
static int name_suffix(const char *name, int max) {
  const char *us = strrchr(name, '_');
  assert_non_null(us);
  char *end = NULL;
  long n = strtol(us + 1, &end, 10);
  assert_true(end != us + 1);
  assert_int_equal(*end, '\0');
  assert_in_range(n, 0, max - 1);
  return (int)n;
}

static void assert_distinct_suffixes(name_probe_t *ps, int n) {
  int seen[8] = {0};
  for (int i = 0; i < n; i++) {
    int k = name_suffix(ps[i].name, n);
    assert_int_equal(seen[k], 0);
    seen[k] = 1;
  }
}

static void test_thread_names_prefix(void **state) {
  (void)state;
  enum { N = 3 };
  name_probe_t ps[N];
  collect_names("SpecialPool", ps, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(ps[i].rc, 0);
    assert_int_equal(strncmp(ps[i].name, "SpecialPool_", 12), 0);
    assert_int_equal(strlen(ps[i].name), 13);
  }
  assert_distinct_suffixes(ps, N);
}

static void test_thread_names_long_prefix(void **state) {
  (void)state;
  enum { N = 3 };
  const char *prefix = "abcdefghijklmnopqrstuvwxyz";
  name_probe_t ps[N];
  collect_names(prefix, ps, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(ps[i].rc, 0);
    size_t len = strlen(ps[i].name);
    assert_int_equal(len, 15);
    int k = name_suffix(ps[i].name, N);
    char suffix[8];
    snprintf(suffix, sizeof suffix, "_%d", k);
    size_t sl = strlen(suffix);
    assert_string_equal(ps[i].name + len - sl, suffix);
    assert_int_equal(memcmp(ps[i].name, prefix, len - sl), 0);
  }
  assert_distinct_suffixes(ps, N);
}

/* "cfpool-<N>_<n>"; returns N. */
static int default_pool_number(const char *name, int max) {
  assert_int_equal(strncmp(name, "cfpool-", 7), 0);
  char *end = NULL;
  long pool = strtol(name + 7, &end, 10);
  assert_true(end != name + 7);
  assert_int_equal(*end, '_');
  assert_true(pool >= 0);
  char *end2 = NULL;
  long n = strtol(end + 1, &end2, 10);
  assert_true(end2 != end + 1);
  assert_int_equal(*end2, '\0');
  assert_in_range(n, 0, max - 1);
  return (int)pool;
}

static void test_thread_names_default(void **state) {
  (void)state;
  enum { N = 2 };
  name_probe_t a[N], b[N];
  collect_names(NULL, a, N);
  collect_names("", b, N);
  int pa = -1, pb = -1;
  for (int i = 0; i < N; i++) {
    assert_int_equal(a[i].rc, 0);
    assert_int_equal(b[i].rc, 0);
    int x = default_pool_number(a[i].name, N);
    int y = default_pool_number(b[i].name, N);
    if (i == 0) {
      pa = x;
      pb = y;
    }
    assert_int_equal(x, pa); /* one pool, one number */
    assert_int_equal(y, pb);
  }
  assert_int_not_equal(pa, pb); /* a number per pool */
  assert_distinct_suffixes(a, N);
  assert_distinct_suffixes(b, N);
}

/* ------------------------------------------------------------------ */
/* Submit                                                             */
/* ------------------------------------------------------------------ */

static void test_fifo_single_worker(void **state) {
  (void)state;
  enum { N = 100 };
  cf_executor_t *ex = make_pool(1, "fifo");
  gate_t g;
  gate_init(&g);
  probe_t first;
  probes_init(&first, 1, &g);
  first.index = -1;
  assert_int_equal(cf_executor_submit(ex, probe_job, &first, NULL, NULL), 0);
  gate_wait_started(&g);
  probe_t ps[N];
  probes_init(ps, N, NULL);
  for (int i = 0; i < N; i++)
    assert_int_equal(cf_executor_submit(ex, probe_job, &ps[i], NULL, NULL), 0);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(atomic_load(&order_pos), N + 1);
  assert_int_equal(order[0], -1);
  for (int i = 0; i < N; i++)
    assert_int_equal(order[i + 1], i);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* Submitters racing one another and the worker (the queue empties and
 * fills again all along): each submitter's jobs start in its own order,
 * and every job runs once. The worker records, the test thread asserts. */
enum { RACE_SUBMITTERS = 4, RACE_JOBS = 20000 };

struct race {
  cf_executor_t *ex;
  atomic_int next[RACE_SUBMITTERS]; /* the sequence each one expects next */
  atomic_int out_of_order;
  atomic_int ran;
  atomic_int submit_failed;
};

struct race_job {
  struct race *race;
  int submitter, seq;
};

static struct race_job race_jobs[RACE_SUBMITTERS][RACE_JOBS];

static int race_job(void *arg, cf_job_t *job) {
  (void)job;
  struct race_job *j = arg;
  struct race *r = j->race;
  if (atomic_load(&r->next[j->submitter]) != j->seq)
    atomic_fetch_add(&r->out_of_order, 1);
  atomic_store(&r->next[j->submitter], j->seq + 1);
  atomic_fetch_add(&r->ran, 1);
  return 0;
}

static void *race_submitter(void *arg) {
  struct race_job *jobs = arg;
  for (int i = 0; i < RACE_JOBS; i++)
    if (cf_executor_submit(jobs[i].race->ex, race_job, &jobs[i], NULL,
                           NULL) != 0)
      atomic_fetch_add(&jobs[i].race->submit_failed, 1);
  return NULL;
}

static void test_fifo_per_submitter_racing(void **state) {
  (void)state;
  for (int round = 0; round < 5; round++) {
    struct race r = {0};
    r.ex = make_pool(1, "race");
    pthread_t tids[RACE_SUBMITTERS];
    for (int t = 0; t < RACE_SUBMITTERS; t++) {
      for (int i = 0; i < RACE_JOBS; i++)
        race_jobs[t][i] = (struct race_job){&r, t, i};
      assert_int_equal(
          pthread_create(&tids[t], NULL, race_submitter, race_jobs[t]), 0);
    }
    for (int t = 0; t < RACE_SUBMITTERS; t++)
      assert_int_equal(pthread_join(tids[t], NULL), 0);
    assert_int_equal(cf_executor_destroy(r.ex), 0);
    assert_int_equal(atomic_load(&r.submit_failed), 0);
    assert_int_equal(atomic_load(&r.out_of_order), 0);
    assert_int_equal(atomic_load(&r.ran), RACE_SUBMITTERS * RACE_JOBS);
    for (int t = 0; t < RACE_SUBMITTERS; t++)
      assert_int_equal(atomic_load(&r.next[t]), RACE_JOBS);
  }
}

static void test_submit_returns_value(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "val");
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, (void *)42, NULL, &f), 0);
  assert_non_null(f);
  void *v = NULL;
  assert_int_equal(wait_result(f, &v), 0);
  assert_ptr_equal(v, (void *)42);
  assert_true(cf_future_done(f));
  assert_false(cf_future_cancelled(f));
  assert_int_equal(cf_future_state(f), CF_STATE_FINISHED);
  int code = -1;
  const char *msg = "x";
  assert_int_equal(cf_future_exception(f, 0, &code, &msg), 0);
  assert_int_equal(code, 0);
  assert_null(msg);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_running_state_while_gated(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "run");
  gate_t g;
  gate_init(&g);
  cf_future_t *f = submit_gated(ex, &g);
  cf_future_t *q = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, &q), 0);
  gate_wait_started(&g);
  assert_true(cf_future_running(f));
  assert_int_equal(cf_future_state(f), CF_STATE_RUNNING);
  assert_false(cf_future_done(f));
  assert_int_equal(cf_future_state(q), CF_STATE_PENDING);
  assert_int_equal(cf_future_result(f, 0, NULL), CF_ETIMEDOUT);
  gate_open(&g, 1);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(wait_result(q, NULL), 0);
  cf_future_release(f);
  cf_future_release(q);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

static void test_fire_and_forget(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "ff");
  probe_t p;
  probes_init(&p, 1, NULL);
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, probe_free, NULL), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(atomic_load(&p.ran), 1);
  assert_int_equal(atomic_load(&p.freed), 1);
  assert_int_equal(atomic_load(&p.freed_after_run), 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_arg_dtor_once_after_run(void **state) {
  (void)state;
  enum { N = 20 };
  cf_executor_t *ex = make_pool(3, "dtor");
  probe_t ps[N];
  probes_init(ps, N, NULL);
  cf_future_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(
        cf_executor_submit(ex, probe_job, &ps[i], probe_free, &fs[i]), 0);
  for (int i = 0; i < N; i++) {
    void *v = NULL;
    assert_int_equal(wait_result(fs[i], &v), 0);
    assert_ptr_equal(v, (void *)(intptr_t)i);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&ps[i].ran), 1);
    assert_int_equal(atomic_load(&ps[i].freed), 1);
    assert_int_equal(atomic_load(&ps[i].freed_after_run), 1);
    cf_future_release(fs[i]);
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&ps[i].freed), 1);
}

static void test_cancel_queued_job(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "cq");
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = submit_gated(ex, &g);
  gate_wait_started(&g);
  probe_t p;
  probes_init(&p, 1, NULL);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, probe_free, &f), 0);
  atomic_int cb = 0;
  assert_int_equal(cf_future_add_done_callback(f, count_done, &cb), 0);
  assert_int_equal(cf_future_cancel(f), 1);
  /* cancelled at once: callbacks ran, result and wait see it done */
  assert_int_equal(atomic_load(&cb), 1);
  assert_true(cf_future_cancelled(f));
  assert_true(cf_future_done(f));
  assert_int_equal(cf_future_result(f, 0, NULL), CF_ECANCELLED);
  assert_int_equal(cf_future_result(f, CF_FOREVER, NULL), CF_ECANCELLED);
  cf_future_t *done[1], *not_done[1];
  size_t nd = 9, nnd = 9;
  assert_int_equal(
      cf_wait(&f, 1, 0, CF_ALL_COMPLETED, done, &nd, not_done, &nnd), 0);
  assert_int_equal(nd, 1);
  assert_int_equal(nnd, 0);
  assert_ptr_equal(done[0], f);
  assert_int_equal(cf_future_cancel(f), 1); /* again: still 1 */
  assert_int_equal(atomic_load(&cb), 1);
  gate_open(&g, 1);
  assert_int_equal(wait_result(blocker, NULL), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.freed), 1);
  assert_true(cf_future_cancelled(f));
  cf_future_release(f);
  cf_future_release(blocker);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

static void test_cancel_running_job(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "cr");
  gate_t g;
  gate_init(&g);
  cf_future_t *f = submit_gated(ex, &g);
  gate_wait_started(&g);
  assert_int_equal(cf_future_cancel(f), 0);
  assert_false(cf_future_cancelled(f));
  assert_true(cf_future_running(f));
  gate_open(&g, 1);
  void *v = NULL;
  assert_int_equal(wait_result(f, &v), 0);
  assert_ptr_equal(v, &g);
  assert_int_equal(cf_future_cancel(f), 0); /* finished */
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                           */
/* ------------------------------------------------------------------ */

static void test_submit_after_shutdown(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "sas");
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  probe_t p;
  probes_init(&p, 1, NULL);
  cf_future_t *sentinel = (cf_future_t *)&p;
  cf_future_t *f = sentinel;
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, probe_free, &f),
                   CF_ESHUTDOWN);
  assert_ptr_equal(f, sentinel);
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, probe_free, NULL),
                   CF_ESHUTDOWN);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.freed), 0); /* the caller still owns it */
}

static void test_shutdown_idempotent(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "idem");
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, (void *)1, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(cf_executor_shutdown(ex, false, false), 0);
  assert_int_equal(cf_executor_shutdown(ex, false, true), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, true), 0);
  assert_int_equal(cf_executor_thread_count(ex), 1);
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, NULL),
                   CF_ESHUTDOWN);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_shutdown_nowait_queued_still_run(void **state) {
  (void)state;
  enum { N = 10 };
  cf_executor_t *ex = make_pool(1, "nowait");
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = submit_gated(ex, &g);
  gate_wait_started(&g);
  probe_t ps[N];
  probes_init(ps, N, NULL);
  cf_future_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(
        cf_executor_submit(ex, probe_job, &ps[i], probe_free, &fs[i]), 0);
  /* Returns while the worker is still blocked in the gate. */
  assert_int_equal(cf_executor_shutdown(ex, false, false), 0);
  assert_true(cf_future_running(blocker));
  for (int i = 0; i < N; i++) {
    assert_false(cf_future_cancelled(fs[i]));
    assert_int_equal(atomic_load(&ps[i].ran), 0);
  }
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, NULL),
                   CF_ESHUTDOWN);
  gate_open(&g, 1);
  for (int i = 0; i < N; i++) {
    void *v = NULL;
    assert_int_equal(wait_result(fs[i], &v), 0);
    assert_ptr_equal(v, (void *)(intptr_t)i);
  }
  assert_int_equal(wait_result(blocker, NULL), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&ps[i].ran), 1);
    assert_int_equal(atomic_load(&ps[i].freed), 1);
    cf_future_release(fs[i]);
  }
  cf_future_release(blocker);
  gate_fini(&g);
}

static void test_shutdown_wait_waits_for_queued(void **state) {
  (void)state;
  enum { N = 50 };
  cf_executor_t *ex = make_pool(1, "wait");
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = submit_gated(ex, &g);
  gate_wait_started(&g);
  probe_t ps[N];
  probes_init(ps, N, NULL);
  cf_future_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(
        cf_executor_submit(ex, probe_job, &ps[i], probe_free, &fs[i]), 0);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  /* Everything ran before shutdown returned: no result() call needed. */
  assert_true(cf_future_done(blocker));
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&ps[i].ran), 1);
    assert_int_equal(atomic_load(&ps[i].freed), 1);
    assert_true(cf_future_done(fs[i]));
    assert_int_equal(cf_future_result(fs[i], 0, NULL), 0);
    cf_future_release(fs[i]);
  }
  cf_future_release(blocker);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* A done callback that records the thread it ran in. */
typedef struct cb_probe {
  pthread_t thread;
  atomic_int calls;
  atomic_int state; /* cf_future_state seen inside */
} cb_probe_t;

static void record_thread_cb(cf_future_t *f, void *data) {
  cb_probe_t *c = data;
  c->thread = pthread_self();
  atomic_store(&c->state, cf_future_state(f));
  atomic_fetch_add(&c->calls, 1);
}

static void test_shutdown_cancel_futures(void **state) {
  (void)state;
  enum { W = 2, Q = 5 };
  cf_executor_t *ex = make_pool(W, "cancelf");
  gate_t g;
  gate_init(&g);
  probe_t run[W];
  probes_init(run, W, &g);
  cf_future_t *rf[W];
  for (int i = 0; i < W; i++)
    assert_int_equal(
        cf_executor_submit(ex, probe_job, &run[i], probe_free, &rf[i]), 0);
  for (int i = 0; i < W; i++)
    gate_wait_started(&g);
  probe_t q[Q];
  probes_init(q, Q, NULL);
  cf_future_t *qf[Q];
  cb_probe_t cbs[Q];
  for (int i = 0; i < Q; i++) {
    assert_int_equal(
        cf_executor_submit(ex, probe_job, &q[i], probe_free, &qf[i]), 0);
    atomic_init(&cbs[i].calls, 0);
    atomic_init(&cbs[i].state, -1);
    assert_int_equal(cf_future_add_done_callback(qf[i], record_thread_cb,
                                                 &cbs[i]),
                     0);
  }
  assert_int_equal(cf_executor_shutdown(ex, false, true), 0);
  /* Queued ones are cancelled, and their callbacks ran here. */
  pthread_t self = pthread_self();
  for (int i = 0; i < Q; i++) {
    assert_true(cf_future_cancelled(qf[i]));
    assert_int_equal(atomic_load(&cbs[i].calls), 1);
    assert_true(pthread_equal(cbs[i].thread, self));
    int st = atomic_load(&cbs[i].state);
    assert_true(st == CF_STATE_CANCELLED || st == CF_STATE_CANCELLED_AND_NOTIFIED);
    assert_int_equal(cf_future_result(qf[i], 0, NULL), CF_ECANCELLED);
  }
  /* ... and done for wait at once (SEMANTICS "differs" 1). */
  cf_future_t *done[Q];
  size_t nd = 0, nnd = 9;
  assert_int_equal(cf_wait(qf, Q, 0, CF_ALL_COMPLETED, done, &nd, NULL, &nnd),
                   0);
  assert_int_equal(nd, Q);
  assert_int_equal(nnd, 0);
  /* Running ones are not cancelled and complete normally. */
  for (int i = 0; i < W; i++) {
    assert_false(cf_future_cancelled(rf[i]));
    assert_true(cf_future_running(rf[i]));
  }
  gate_open(&g, W);
  for (int i = 0; i < W; i++) {
    void *v = NULL;
    assert_int_equal(wait_result(rf[i], &v), 0);
    assert_ptr_equal(v, (void *)(intptr_t)i);
  }
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  for (int i = 0; i < W; i++) {
    assert_int_equal(atomic_load(&run[i].ran), 1);
    assert_int_equal(atomic_load(&run[i].freed), 1);
    cf_future_release(rf[i]);
  }
  for (int i = 0; i < Q; i++) {
    assert_int_equal(atomic_load(&q[i].ran), 0);
    assert_int_equal(atomic_load(&q[i].freed), 1);
    assert_int_equal(atomic_load(&cbs[i].calls), 1);
    cf_future_release(qf[i]);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* ------------------------------------------------------------------ */
/* Initializer                                                        */
/* ------------------------------------------------------------------ */

typedef struct init_probe {
  atomic_int calls;
  atomic_int bad_arg;
  atomic_int on_caller_thread;
  pthread_t caller;
  gate_t *gate; /* optional: block in the initializer */
  int result;   /* what the initializer returns */
} init_probe_t;

static int init_fn(void *arg) {
  init_probe_t *p = arg;
  if (p == NULL)
    return 1;
  atomic_fetch_add(&p->calls, 1);
  if (pthread_equal(pthread_self(), p->caller))
    atomic_fetch_add(&p->on_caller_thread, 1);
  if (p->gate != NULL) {
    sem_post(&p->gate->started);
    while (sem_wait(&p->gate->open) != 0) {
    }
  }
  return p->result;
}

/* The job checks that the initializer ran on its thread before it. */
static _Thread_local int tls_inited;

static int init_tls_fn(void *arg) {
  init_probe_t *p = arg;
  tls_inited++;
  return init_fn(p);
}

static int tls_check_job(void *arg, cf_job_t *job) {
  gate_t *g = arg;
  cf_job_return(job, (void *)(intptr_t)tls_inited, NULL);
  sem_post(&g->started);
  while (sem_wait(&g->open) != 0) {
  }
  return 0;
}

static void test_initializer_per_worker(void **state) {
  (void)state;
  enum { W = 3 };
  init_probe_t ip;
  memset(&ip, 0, sizeof ip);
  atomic_init(&ip.calls, 0);
  atomic_init(&ip.bad_arg, 0);
  atomic_init(&ip.on_caller_thread, 0);
  ip.caller = pthread_self();
  ip.result = 0;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = W;
  opts.thread_name_prefix = "init";
  opts.initializer = init_tls_fn;
  opts.initializer_arg = &ip;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  assert_int_equal(atomic_load(&ip.calls), 0); /* no thread yet */
  gate_t g;
  gate_init(&g);
  cf_future_t *fs[2 * W];
  for (int i = 0; i < 2 * W; i++)
    assert_int_equal(cf_executor_submit(ex, tls_check_job, &g, NULL, &fs[i]),
                     0);
  for (int i = 0; i < W; i++)
    gate_wait_started(&g);
  assert_int_equal(cf_executor_thread_count(ex), W);
  gate_open(&g, 2 * W);
  for (int i = 0; i < 2 * W; i++) {
    void *v = NULL;
    assert_int_equal(wait_result(fs[i], &v), 0);
    assert_ptr_equal(v, (void *)1); /* exactly once on the job's thread */
    cf_future_release(fs[i]);
  }
  for (int i = W; i < 2 * W; i++)
    gate_wait_started(&g);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&ip.calls), W);
  assert_int_equal(atomic_load(&ip.on_caller_thread), 0);
  assert_int_equal(tls_inited, 0); /* never on the test thread */
  gate_fini(&g);
}

static void test_initializer_failure_breaks_pool(void **state) {
  (void)state;
  gate_t ig;
  gate_init(&ig);
  init_probe_t ip;
  memset(&ip, 0, sizeof ip);
  atomic_init(&ip.calls, 0);
  atomic_init(&ip.on_caller_thread, 0);
  ip.caller = pthread_self();
  ip.gate = &ig;
  ip.result = 1;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;
  opts.thread_name_prefix = "broken";
  opts.initializer = init_fn;
  opts.initializer_arg = &ip;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);

  enum { N = 4 };
  probe_t ps[N];
  probes_init(ps, N, NULL);
  cf_future_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(
        cf_executor_submit(ex, probe_job, &ps[i], probe_free, &fs[i]), 0);
  gate_wait_started(&ig); /* the worker sits in its initializer */
  /* Cancel one queued future in the middle before the break. */
  assert_int_equal(cf_future_cancel(fs[1]), 1);
  gate_open(&ig, 1); /* the initializer now fails */

  for (int i = 0; i < N; i++) {
    if (i == 1)
      continue;
    assert_int_equal(wait_result(fs[i], NULL), CF_EFAILED);
    int code = 0;
    assert_int_equal(cf_future_exception(fs[i], 0, &code, NULL), 0);
    assert_int_equal(code, CF_EBROKEN);
    assert_false(cf_future_cancelled(fs[i]));
  }
  assert_true(cf_future_cancelled(fs[1]));
  assert_int_equal(cf_future_result(fs[1], 0, NULL), CF_ECANCELLED);

  probe_t late;
  probes_init(&late, 1, NULL);
  cf_future_t *sentinel = (cf_future_t *)&late;
  cf_future_t *lf = sentinel;
  assert_int_equal(cf_executor_submit(ex, probe_job, &late, probe_free, &lf),
                   CF_EBROKEN);
  assert_ptr_equal(lf, sentinel);
  assert_int_equal(cf_executor_destroy(ex), 0);

  assert_int_equal(atomic_load(&ip.calls), 1);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&ps[i].ran), 0);
    assert_int_equal(atomic_load(&ps[i].freed), 1);
    cf_future_release(fs[i]);
  }
  assert_int_equal(atomic_load(&late.freed), 0);
  gate_fini(&ig);
}

/* SEMANTICS 2.2: the broken check comes before the shutdown check. */
static void test_broken_reported_before_shutdown(void **state) {
  (void)state;
  init_probe_t ip;
  memset(&ip, 0, sizeof ip);
  atomic_init(&ip.calls, 0);
  ip.caller = pthread_self();
  ip.result = -3;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;
  opts.initializer = init_fn;
  opts.initializer_arg = &ip;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), CF_EFAILED);
  int code = 0;
  assert_int_equal(cf_future_exception(f, 0, &code, NULL), 0);
  assert_int_equal(code, CF_EBROKEN);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, NULL),
                   CF_EBROKEN);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------ */
/* Calls from inside workers                                          */
/* ------------------------------------------------------------------ */

typedef struct self_call {
  cf_executor_t *ex;
  gate_t *gate; /* optional: wait here first */
  bool wait;
  bool cancel;
  atomic_int rc_shutdown;
  atomic_int rc_destroy;
  atomic_int rc_submit;
} self_call_t;

static void self_call_init(self_call_t *s, cf_executor_t *ex, gate_t *g) {
  s->ex = ex;
  s->gate = g;
  s->wait = false;
  s->cancel = false;
  atomic_init(&s->rc_shutdown, 1);
  atomic_init(&s->rc_destroy, 1);
  atomic_init(&s->rc_submit, 1);
}

static int shutdown_self_job(void *arg, cf_job_t *job) {
  (void)job;
  self_call_t *s = arg;
  if (s->gate != NULL) {
    sem_post(&s->gate->started);
    while (sem_wait(&s->gate->open) != 0) {
    }
  }
  atomic_store(&s->rc_shutdown, cf_executor_shutdown(s->ex, s->wait, s->cancel));
  return 0;
}

static int destroy_self_job(void *arg, cf_job_t *job) {
  (void)job;
  self_call_t *s = arg;
  atomic_store(&s->rc_destroy, cf_executor_destroy(s->ex));
  return 0;
}

static void test_shutdown_wait_from_worker_deadlk(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "selfwait");
  gate_t g;
  gate_init(&g);
  self_call_t s;
  self_call_init(&s, ex, &g);
  s.wait = true;
  s.cancel = true;
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, shutdown_self_job, &s, NULL, &f), 0);
  gate_wait_started(&g);
  probe_t q;
  probes_init(&q, 1, NULL);
  cf_future_t *qf = NULL;
  assert_int_equal(cf_executor_submit(ex, probe_job, &q, NULL, &qf), 0);
  gate_open(&g, 1);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&s.rc_shutdown), CF_EDEADLK);
  /* Nothing changed: the queued job was not cancelled, submit works. */
  void *v = (void *)1;
  assert_int_equal(wait_result(qf, &v), 0);
  assert_ptr_equal(v, (void *)0);
  assert_int_equal(atomic_load(&q.ran), 1);
  cf_future_t *later = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, (void *)5, NULL, &later),
                   0);
  assert_int_equal(wait_result(later, &v), 0);
  assert_ptr_equal(v, (void *)5);
  cf_future_release(later);
  cf_future_release(qf);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

static void test_destroy_from_worker_deadlk(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "selfdestroy");
  self_call_t s;
  self_call_init(&s, ex, NULL);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, destroy_self_job, &s, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&s.rc_destroy), CF_EDEADLK);
  cf_future_t *later = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, (void *)3, NULL, &later),
                   0);
  void *v = NULL;
  assert_int_equal(wait_result(later, &v), 0);
  assert_ptr_equal(v, (void *)3);
  cf_future_release(later);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_shutdown_nowait_from_worker(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "selfnowait");
  gate_t g;
  gate_init(&g);
  self_call_t s;
  self_call_init(&s, ex, &g);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, shutdown_self_job, &s, NULL, &f), 0);
  gate_wait_started(&g);
  probe_t q;
  probes_init(&q, 1, NULL);
  cf_future_t *qf = NULL;
  assert_int_equal(cf_executor_submit(ex, probe_job, &q, probe_free, &qf), 0);
  gate_open(&g, 1);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&s.rc_shutdown), 0);
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, NULL),
                   CF_ESHUTDOWN);
  /* The job queued before the shutdown still runs. */
  assert_int_equal(wait_result(qf, NULL), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&q.ran), 1);
  assert_int_equal(atomic_load(&q.freed), 1);
  cf_future_release(qf);
  cf_future_release(f);
  gate_fini(&g);
}

static void test_shutdown_cancel_from_worker(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "selfcancel");
  gate_t g;
  gate_init(&g);
  self_call_t s;
  self_call_init(&s, ex, &g);
  s.cancel = true;
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, shutdown_self_job, &s, NULL, &f), 0);
  gate_wait_started(&g);
  probe_t q;
  probes_init(&q, 1, NULL);
  cf_future_t *qf = NULL;
  assert_int_equal(cf_executor_submit(ex, probe_job, &q, probe_free, &qf), 0);
  cb_probe_t cb;
  atomic_init(&cb.calls, 0);
  atomic_init(&cb.state, -1);
  assert_int_equal(cf_future_add_done_callback(qf, record_thread_cb, &cb), 0);
  gate_open(&g, 1);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&s.rc_shutdown), 0);
  assert_int_equal(wait_result(qf, NULL), CF_ECANCELLED);
  /* The callback ran in the worker that called shutdown, before the job
   * finished: so it is not the test thread. */
  assert_int_equal(atomic_load(&cb.calls), 1);
  assert_false(pthread_equal(cb.thread, pthread_self()));
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&q.ran), 0);
  assert_int_equal(atomic_load(&q.freed), 1);
  cf_future_release(qf);
  cf_future_release(f);
  gate_fini(&g);
}

/* ------------------------------------------------------------------ */
/* Destroy                                                            */
/* ------------------------------------------------------------------ */

static void test_destroy_without_shutdown_waits(void **state) {
  (void)state;
  enum { N = 20 };
  cf_executor_t *ex = make_pool(1, "destroy");
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = submit_gated(ex, &g);
  gate_wait_started(&g);
  probe_t ps[N];
  probes_init(ps, N, NULL);
  cf_future_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(
        cf_executor_submit(ex, probe_job, &ps[i], probe_free, &fs[i]), 0);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
  /* Futures held by the caller stay valid after destroy. */
  assert_int_equal(cf_future_result(blocker, 0, NULL), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&ps[i].ran), 1);
    assert_int_equal(atomic_load(&ps[i].freed), 1);
    void *v = NULL;
    assert_int_equal(cf_future_result(fs[i], 0, &v), 0);
    assert_ptr_equal(v, (void *)(intptr_t)i);
    char buf[128];
    assert_true(cf_future_repr(fs[i], buf, sizeof buf) > 0);
    cf_future_release(fs[i]);
  }
  cf_future_release(blocker);
  gate_fini(&g);
}

/* ------------------------------------------------------------------ */
/* Callbacks submitting work                                          */
/* ------------------------------------------------------------------ */

typedef struct chain {
  cf_executor_t *ex;
  int depth;          /* callbacks left to chain */
  atomic_int ran;     /* jobs run */
  atomic_int errors;  /* failed submits or callbacks */
  sem_t finished;     /* posted by the last callback */
} chain_t;

static int chain_job(void *arg, cf_job_t *job) {
  (void)job;
  chain_t *c = arg;
  atomic_fetch_add(&c->ran, 1);
  return 0;
}

static void chain_cb(cf_future_t *f, void *data) {
  chain_t *c = data;
  if (cf_future_result(f, 0, NULL) != 0)
    atomic_fetch_add(&c->errors, 1);
  if (c->depth == 0) {
    sem_post(&c->finished);
    return;
  }
  c->depth--; /* one callback at a time: the chain is sequential */
  cf_future_t *next = NULL;
  if (cf_executor_submit(c->ex, chain_job, c, NULL, &next) != 0) {
    atomic_fetch_add(&c->errors, 1);
    sem_post(&c->finished);
    return;
  }
  if (cf_future_add_done_callback(next, chain_cb, c) != 0) {
    atomic_fetch_add(&c->errors, 1);
    sem_post(&c->finished);
  }
  cf_future_release(next);
}

static void test_done_callback_submits(void **state) {
  (void)state;
  enum { DEPTH = 50 };
  cf_executor_t *ex = make_pool(2, "chain");
  chain_t c;
  c.ex = ex;
  c.depth = DEPTH;
  atomic_init(&c.ran, 0);
  atomic_init(&c.errors, 0);
  sem_init(&c.finished, 0, 0);
  gate_t g;
  gate_init(&g);
  /* The first callback is registered while the job is still gated, so it
   * and all later ones run on workers. */
  cf_future_t *f = submit_gated(ex, &g);
  gate_wait_started(&g);
  assert_int_equal(cf_future_add_done_callback(f, chain_cb, &c), 0);
  gate_open(&g, 1);
  while (sem_wait(&c.finished) != 0) {
  }
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(atomic_load(&c.errors), 0);
  assert_int_equal(atomic_load(&c.ran), DEPTH);
  assert_true(cf_executor_thread_count(ex) <= 2);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
  sem_destroy(&c.finished);
  gate_fini(&g);
}

/* A job that submits to its own pool and waits for the inner job. */
typedef struct nested {
  cf_executor_t *ex;
  atomic_int rc_submit;
  atomic_int rc_result;
} nested_t;

static int nested_job(void *arg, cf_job_t *job) {
  nested_t *n = arg;
  cf_future_t *inner = NULL;
  int rc = cf_executor_submit(n->ex, echo_job, (void *)99, NULL, &inner);
  atomic_store(&n->rc_submit, rc);
  if (rc != 0)
    return 1;
  void *v = NULL;
  rc = cf_future_result(inner, CF_FOREVER, &v);
  atomic_store(&n->rc_result, rc);
  cf_job_return(job, v, NULL);
  cf_future_release(inner);
  return 0;
}

static void test_job_submits_and_waits(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "nested");
  nested_t n;
  n.ex = ex;
  atomic_init(&n.rc_submit, 1);
  atomic_init(&n.rc_result, 1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, nested_job, &n, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(wait_result(f, &v), 0);
  assert_ptr_equal(v, (void *)99);
  assert_int_equal(atomic_load(&n.rc_submit), 0);
  assert_int_equal(atomic_load(&n.rc_result), 0);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------ */
/* Many jobs, failures, job API                                       */
/* ------------------------------------------------------------------ */

static atomic_long sum_seen;

static int sum_job(void *arg, cf_job_t *job) {
  long x = (long)(intptr_t)arg;
  atomic_fetch_add(&sum_seen, x);
  cf_job_return(job, (void *)(intptr_t)(2 * x), NULL);
  return 0;
}

static void test_many_jobs(void **state) {
  (void)state;
  enum { N = 10000 };
  atomic_store(&sum_seen, 0);
  cf_executor_t *ex = make_pool(4, "many");
  cf_future_t **fs = calloc(N, sizeof *fs);
  assert_non_null(fs);
  for (int i = 0; i < N; i++)
    assert_int_equal(
        cf_executor_submit(ex, sum_job, (void *)(intptr_t)(i + 1), NULL, &fs[i]),
        0);
  long total = 0;
  for (int i = 0; i < N; i++) {
    void *v = NULL;
    assert_int_equal(wait_result(fs[i], &v), 0);
    assert_ptr_equal(v, (void *)(intptr_t)(2 * (i + 1)));
    total += (long)(intptr_t)v;
    cf_future_release(fs[i]);
  }
  free(fs);
  const long expect = (long)N * (N + 1) / 2;
  assert_int_equal(atomic_load(&sum_seen), expect);
  assert_int_equal(total, 2 * expect);
  assert_true(cf_executor_thread_count(ex) >= 1);
  assert_true(cf_executor_thread_count(ex) <= 4);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_job_failure_codes_and_messages(void **state) {
  (void)state;
  const int codes[] = {42, -1, 1, CF_ETIMEDOUT, CF_ECANCELLED, INT_MIN,
                       INT_MAX};
  enum { N = sizeof codes / sizeof codes[0] };
  cf_executor_t *ex = make_pool(3, "fail");
  cf_future_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(cf_executor_submit(ex, failing_job,
                                        (void *)(intptr_t)codes[i], NULL,
                                        &fs[i]),
                     0);
  for (int i = 0; i < N; i++) {
    void *v = (void *)1;
    assert_int_equal(wait_result(fs[i], &v), CF_EFAILED);
    int code = 0;
    const char *msg = NULL;
    assert_int_equal(cf_future_exception(fs[i], 0, &code, &msg), 0);
    assert_int_equal(code, codes[i]);
    char expect[64];
    snprintf(expect, sizeof expect, "failed with %d", codes[i]);
    assert_non_null(msg);
    assert_string_equal(msg, expect);
    assert_false(cf_future_cancelled(fs[i]));
    assert_int_equal(cf_future_state(fs[i]), CF_STATE_FINISHED);
    /* The outcome is stable. */
    assert_int_equal(cf_future_result(fs[i], 0, NULL), CF_EFAILED);
    cf_future_release(fs[i]);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static int bare_fail_job(void *arg, cf_job_t *job) {
  (void)job;
  return (int)(intptr_t)arg;
}

static int null_fmt_fail_job(void *arg, cf_job_t *job) {
  return cf_job_fail(job, (int)(intptr_t)arg, NULL);
}

static void test_job_fail_without_message(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "nomsg");
  cf_future_t *a = NULL, *b = NULL;
  assert_int_equal(cf_executor_submit(ex, bare_fail_job, (void *)7, NULL, &a),
                   0);
  assert_int_equal(
      cf_executor_submit(ex, null_fmt_fail_job, (void *)8, NULL, &b), 0);
  int code = 0;
  const char *msg = "x";
  assert_int_equal(cf_future_exception(a, CF_FOREVER, &code, &msg), 0);
  assert_int_equal(code, 7);
  assert_null(msg);
  msg = "x";
  assert_int_equal(cf_future_exception(b, CF_FOREVER, &code, &msg), 0);
  assert_int_equal(code, 8);
  assert_null(msg);
  assert_int_equal(cf_future_result(a, 0, NULL), CF_EFAILED);
  assert_int_equal(cf_future_result(b, 0, NULL), CF_EFAILED);
  cf_future_release(a);
  cf_future_release(b);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* cf_job_fail with a NULL format clears an earlier message. */
static int fail_then_clear_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)cf_job_fail(job, 1, "first %s", "message");
  return cf_job_fail(job, 2, NULL);
}

/* A job that recorded a failure but returns 0 succeeds; the message is
 * dropped. */
static int fail_then_succeed_job(void *arg, cf_job_t *job) {
  (void)cf_job_fail(job, 3, "never seen");
  cf_job_return(job, arg, NULL);
  return 0;
}

static void test_job_fail_message_cleared_or_dropped(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2, "clear");
  cf_future_t *a = NULL, *b = NULL;
  assert_int_equal(
      cf_executor_submit(ex, fail_then_clear_job, NULL, NULL, &a), 0);
  assert_int_equal(
      cf_executor_submit(ex, fail_then_succeed_job, (void *)11, NULL, &b), 0);
  int code = 0;
  const char *msg = "x";
  assert_int_equal(cf_future_exception(a, CF_FOREVER, &code, &msg), 0);
  assert_int_equal(code, 2);
  assert_null(msg);
  void *v = NULL;
  assert_int_equal(wait_result(b, &v), 0);
  assert_ptr_equal(v, (void *)11);
  msg = "x";
  code = -1;
  assert_int_equal(cf_future_exception(b, 0, &code, &msg), 0);
  assert_int_equal(code, 0);
  assert_null(msg);
  cf_future_release(a);
  cf_future_release(b);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* Records cf_job_future and the result of waiting on it from inside. */
typedef struct self_future {
  _Atomic(cf_future_t *) seen;
  atomic_int rc_result;
} self_future_t;

static int self_future_job(void *arg, cf_job_t *job) {
  self_future_t *s = arg;
  cf_future_t *f = cf_job_future(job);
  atomic_store(&s->seen, f);
  atomic_store(&s->rc_result, cf_future_result(f, CF_FOREVER, NULL));
  return 0;
}

static void test_job_future_is_own_future(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "self");
  self_future_t s;
  atomic_init(&s.seen, NULL);
  atomic_init(&s.rc_result, 1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, self_future_job, &s, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_ptr_equal(atomic_load(&s.seen), f);
  /* result() on its own future from inside the job would deadlock. */
  assert_int_equal(atomic_load(&s.rc_result), CF_EDEADLK);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* Value destructors: count per value. */
static atomic_int value_a_freed, value_b_freed;
static int value_a, value_b;

static void free_value(void *p) {
  if (p == &value_a)
    atomic_fetch_add(&value_a_freed, 1);
  else if (p == &value_b)
    atomic_fetch_add(&value_b_freed, 1);
}

static int return_twice_job(void *arg, cf_job_t *job) {
  atomic_int *a_freed_inside = arg;
  cf_job_return(job, &value_a, free_value);
  cf_job_return(job, &value_b, free_value);
  /* the replaced value was destroyed at once */
  atomic_store(a_freed_inside, atomic_load(&value_a_freed));
  return 0;
}

static int return_then_fail_job(void *arg, cf_job_t *job) {
  (void)arg;
  cf_job_return(job, &value_a, free_value);
  return 5;
}

static void test_job_return_value_dtor(void **state) {
  (void)state;
  atomic_store(&value_a_freed, 0);
  atomic_store(&value_b_freed, 0);
  cf_executor_t *ex = make_pool(1, "vdtor");
  atomic_int a_inside = -1;
  cf_future_t *f = NULL;
  assert_int_equal(
      cf_executor_submit(ex, return_twice_job, &a_inside, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(wait_result(f, &v), 0);
  assert_ptr_equal(v, &value_b);
  assert_int_equal(atomic_load(&a_inside), 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
  /* We still hold f: its value is alive. */
  assert_int_equal(atomic_load(&value_b_freed), 0);
  assert_int_equal(atomic_load(&value_a_freed), 1);
  cf_future_t *extra = cf_future_retain(f);
  assert_ptr_equal(extra, f);
  cf_future_release(f);
  assert_int_equal(atomic_load(&value_b_freed), 0);
  cf_future_release(extra);
  assert_int_equal(atomic_load(&value_b_freed), 1);
  assert_int_equal(atomic_load(&value_a_freed), 1);
}

static void test_job_return_then_fail(void **state) {
  (void)state;
  atomic_store(&value_a_freed, 0);
  cf_executor_t *ex = make_pool(1, "rfail");
  cf_future_t *f = NULL;
  assert_int_equal(
      cf_executor_submit(ex, return_then_fail_job, NULL, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(wait_result(f, &v), CF_EFAILED);
  int code = 0;
  assert_int_equal(cf_future_exception(f, 0, &code, NULL), 0);
  assert_int_equal(code, 5);
  assert_int_equal(cf_executor_destroy(ex), 0);
  /* The failed job's value was destroyed, though we still hold f. */
  assert_int_equal(atomic_load(&value_a_freed), 1);
  cf_future_release(f);
  assert_int_equal(atomic_load(&value_a_freed), 1);
}

/* ------------------------------------------------------------------ */
/* Waiting from inside a worker (SEMANTICS "differs" 7)                */
/* ------------------------------------------------------------------ */

/* A job that submits two children to its own pool and waits for both,
 * down to a depth: with fewer workers than waiting parents, CPython
 * deadlocks; a worker that waits for a queued job of its own pool runs
 * it itself. Records how many jobs ran. */
typedef struct fan {
  cf_executor_t *ex;
  int depth;
  atomic_int *ran;
} fan_t;

static int fan_job(void *arg, cf_job_t *job) {
  fan_t *me = arg;
  atomic_fetch_add(me->ran, 1);
  if (me->depth == 0)
    return 0;
  fan_t kids[2];
  cf_future_t *f[2] = {NULL, NULL};
  int rc = 0;
  for (int i = 0; i < 2; i++) {
    kids[i] = (fan_t){me->ex, me->depth - 1, me->ran};
    if (cf_executor_submit(me->ex, fan_job, &kids[i], NULL, &f[i]) != 0)
      rc = 1;
  }
  for (int i = 0; i < 2; i++) {
    if (f[i] != NULL && cf_future_result(f[i], CF_FOREVER, NULL) != 0)
      rc = 2;
    cf_future_release(f[i]);
  }
  (void)job;
  return rc;
}

static void test_worker_waiting_on_own_pool_helps(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "fan");
  atomic_int ran;
  atomic_init(&ran, 0);
  fan_t root = {ex, 6, &ran};
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, fan_job, &root, NULL, &f), 0);
  assert_int_equal(cf_future_result(f, CF_FOREVER, NULL), 0);
  assert_int_equal(atomic_load(&ran), (1 << 7) - 1); /* 2^(depth+1) - 1 */
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* The same from a done callback run by the pool's only worker: it waits
 * for a job queued behind it, which the worker then runs itself. */
typedef struct waiter_cb {
  cf_executor_t *ex;
  cf_future_t *queued;
  atomic_int rc;
} waiter_cb_t;

static void wait_in_callback(cf_future_t *f, void *data) {
  (void)f;
  waiter_cb_t *w = data;
  void *v = NULL;
  int rc = cf_future_result(w->queued, CF_FOREVER, &v);
  atomic_store(&w->rc, rc == 0 && v == (void *)w ? 1 : -1);
}

static void test_done_callback_waiting_on_own_pool(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "cbwait");
  gate_t g;
  gate_init(&g);
  waiter_cb_t w = {ex, NULL, 0};
  cf_future_t *first = submit_gated(ex, &g);
  assert_int_equal(cf_executor_submit(ex, echo_job, &w, NULL, &w.queued), 0);
  assert_int_equal(cf_future_add_done_callback(first, wait_in_callback, &w), 0);
  gate_wait_started(&g);
  gate_open(&g, 1); /* first ends in the worker, which runs the callback */
  assert_int_equal(cf_future_result(w.queued, CF_FOREVER, NULL), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(atomic_load(&w.rc), 1);
  cf_future_release(first);
  cf_future_release(w.queued);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* Submit an echo job to the job's own 1-worker pool and wait for it with
 * a short timeout: nobody can run it before this job ends. */
typedef struct timed {
  cf_executor_t *ex;
  cf_future_t **inner;
  atomic_int *rc;
} timed_t;

static int timed_wait_job(void *arg, cf_job_t *job) {
  (void)job;
  timed_t *t = arg;
  if (cf_executor_submit(t->ex, echo_job, NULL, NULL, t->inner) != 0)
    return 1;
  atomic_store(t->rc, cf_future_result(*t->inner, 0.01, NULL));
  return 0;
}

/* A finite timeout waits as usual (the worker does not take the job). */
static void test_worker_timed_wait_does_not_help(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1, "timed");
  cf_future_t *inner = NULL;
  atomic_int rc;
  atomic_init(&rc, 0);
  timed_t t = {ex, &inner, &rc};
  cf_future_t *outer = NULL;
  assert_int_equal(
      cf_executor_submit(ex, timed_wait_job, &t, NULL, &outer), 0);
  assert_int_equal(cf_future_result(outer, CF_FOREVER, NULL), 0);
  assert_int_equal(atomic_load(&rc), CF_ETIMEDOUT);
  assert_int_equal(cf_future_result(inner, CF_FOREVER, NULL), 0);
  cf_future_release(outer);
  cf_future_release(inner);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* shutdown(cancel_futures) while a waiting worker runs a queued job inline:
 * the drain leaves that job to the worker (it is running, not queued), so
 * its argument is destroyed once, after the job, and it finishes. */
static sem_t inline_entered, inline_go;
static cf_future_t *inline_child;

static int inline_child_job(void *arg, cf_job_t *job) {
  (void)job;
  sem_post(&inline_entered);
  while (sem_wait(&inline_go) != 0) {
  }
  *(int *)arg = 1; /* the argument must still be alive here */
  return 0;
}

static int inline_parent_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  return cf_future_result(inline_child, CF_FOREVER, NULL) == 0 ? 0 : 1;
}

static void free_counted(void *p) {
  atomic_fetch_add(&counter_hits, 1);
  free(p);
}

static void test_shutdown_cancel_spares_inline_job(void **state) {
  (void)state;
  atomic_store(&counter_hits, 0);
  sem_init(&inline_entered, 0, 0);
  sem_init(&inline_go, 0, 0);
  cf_executor_t *ex = make_pool(1, "inl");
  gate_t g;
  gate_init(&g);
  cf_future_t *hold = submit_gated(ex, &g); /* parent queues behind it */
  cf_future_t *parent = NULL;
  int *arg = malloc(sizeof(*arg));
  assert_non_null(arg);
  assert_int_equal(cf_executor_submit(ex, inline_parent_job, NULL, NULL, &parent), 0);
  assert_int_equal(cf_executor_submit(ex, inline_child_job, arg, free_counted,
                                      &inline_child), 0);
  gate_wait_started(&g);
  gate_open(&g, 1);
  while (sem_wait(&inline_entered) != 0) { /* the worker runs it inline */
  }
  assert_int_equal(cf_executor_shutdown(ex, false, true), 0);
  assert_int_equal(cf_future_cancelled(inline_child), 0);
  sem_post(&inline_go);
  assert_int_equal(cf_future_result(parent, CF_FOREVER, NULL), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(cf_future_state(inline_child), CF_STATE_FINISHED);
  assert_int_equal(atomic_load(&counter_hits), 1);
  cf_future_release(hold);
  cf_future_release(parent);
  cf_future_release(inline_child);
  gate_fini(&g);
  sem_destroy(&inline_entered);
  sem_destroy(&inline_go);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_options_defaults, setup),
      cmocka_unit_test_setup(test_options_default_follows_affinity, setup),
      cmocka_unit_test_setup(test_create_invalid_max_workers, setup),
      cmocka_unit_test_setup(test_create_null_out, setup),
      cmocka_unit_test_setup(test_create_null_opts_is_default, setup),
      cmocka_unit_test_setup(test_null_args, setup),
      cmocka_unit_test_setup(test_destroy_null, setup),
      cmocka_unit_test_setup(test_no_thread_before_submit, setup),
      cmocka_unit_test_setup(test_shutdown_without_submit_starts_no_thread,
                             setup),
      cmocka_unit_test_setup(test_idle_thread_reuse, setup),
      cmocka_unit_test_setup(test_saturation, setup),
      cmocka_unit_test_setup(test_burst_wakes_every_idle_worker, setup),
      cmocka_unit_test_setup(test_threads_only_as_needed, setup),
      cmocka_unit_test_setup(test_thread_names_prefix, setup),
      cmocka_unit_test_setup(test_thread_names_long_prefix, setup),
      cmocka_unit_test_setup(test_thread_names_default, setup),
      cmocka_unit_test_setup(test_fifo_single_worker, setup),
      cmocka_unit_test_setup(test_fifo_per_submitter_racing, setup),
      cmocka_unit_test_setup(test_submit_returns_value, setup),
      cmocka_unit_test_setup(test_running_state_while_gated, setup),
      cmocka_unit_test_setup(test_fire_and_forget, setup),
      cmocka_unit_test_setup(test_arg_dtor_once_after_run, setup),
      cmocka_unit_test_setup(test_cancel_queued_job, setup),
      cmocka_unit_test_setup(test_cancel_running_job, setup),
      cmocka_unit_test_setup(test_submit_after_shutdown, setup),
      cmocka_unit_test_setup(test_shutdown_idempotent, setup),
      cmocka_unit_test_setup(test_shutdown_nowait_queued_still_run, setup),
      cmocka_unit_test_setup(test_shutdown_wait_waits_for_queued, setup),
      cmocka_unit_test_setup(test_shutdown_cancel_futures, setup),
      cmocka_unit_test_setup(test_initializer_per_worker, setup),
      cmocka_unit_test_setup(test_initializer_failure_breaks_pool, setup),
      cmocka_unit_test_setup(test_broken_reported_before_shutdown, setup),
      cmocka_unit_test_setup(test_shutdown_wait_from_worker_deadlk, setup),
      cmocka_unit_test_setup(test_destroy_from_worker_deadlk, setup),
      cmocka_unit_test_setup(test_shutdown_nowait_from_worker, setup),
      cmocka_unit_test_setup(test_shutdown_cancel_from_worker, setup),
      cmocka_unit_test_setup(test_destroy_without_shutdown_waits, setup),
      cmocka_unit_test_setup(test_done_callback_submits, setup),
      cmocka_unit_test_setup(test_job_submits_and_waits, setup),
      cmocka_unit_test_setup(test_many_jobs, setup),
      cmocka_unit_test_setup(test_job_failure_codes_and_messages, setup),
      cmocka_unit_test_setup(test_job_fail_without_message, setup),
      cmocka_unit_test_setup(test_job_fail_message_cleared_or_dropped, setup),
      cmocka_unit_test_setup(test_job_future_is_own_future, setup),
      cmocka_unit_test_setup(test_job_return_value_dtor, setup),
      cmocka_unit_test_setup(test_job_return_then_fail, setup),
      cmocka_unit_test_setup(test_worker_waiting_on_own_pool_helps, setup),
      cmocka_unit_test_setup(test_done_callback_waiting_on_own_pool, setup),
      cmocka_unit_test_setup(test_worker_timed_wait_does_not_help, setup),
      cmocka_unit_test_setup(test_shutdown_cancel_spares_inline_job, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
