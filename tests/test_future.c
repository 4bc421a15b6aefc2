/*
 * cf_future: the method x state table of SEMANTICS.md 1.3, done callbacks
 * (1.5), result lifetime, repr, NULL arguments, and the job API
 * (cf_job_return, cf_job_fail, cf_job_future) on executor futures.
 *
 * Standalone futures (cf_future_create) are driven into each state with the
 * producer calls. Executor rows use a 1-worker pool whose worker is held in a
 * job by a gate, so the job is RUNNING and anything queued behind it stays
 * PENDING. Callbacks and other threads only record; the test thread asserts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CLOCK_MONOTONIC, syscall(SYS_gettid) */
#endif

/* cmocka.h needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cfutures.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* Local helpers                                                      */
/* ------------------------------------------------------------------ */

#define RACE_ROUNDS 200
#define POLL_TIMEOUT 0.05 /* seconds; a finite timeout that must expire */

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sem_wait_nointr(sem_t *s) {
  while (sem_wait(s) != 0) {
  }
}

/* Destructors that count their calls and remember the last pointer. */
static atomic_int dtor_calls;
static atomic_int dtor2_calls;
static void *_Atomic dtor_last;

static void dtor_count(void *p) {
  atomic_store(&dtor_last, p);
  atomic_fetch_add(&dtor_calls, 1);
}

static void dtor2_count(void *p) {
  (void)p;
  atomic_fetch_add(&dtor2_calls, 1);
}

static void dtor_free_count(void *p) {
  atomic_store(&dtor_last, p);
  free(p);
  atomic_fetch_add(&dtor_calls, 1);
}

static int reset_counters(void **state) {
  (void)state;
  atomic_store(&dtor_calls, 0);
  atomic_store(&dtor2_calls, 0);
  atomic_store(&dtor_last, NULL);
  atomic_store(&counter_hits, 0);
  return 0;
}

/* A callback recorder: each call appends (id, thread, future). */
#define REC_MAX 64

typedef struct rec {
  atomic_int n;
  int order[REC_MAX];
  pthread_t thread[REC_MAX];
  cf_future_t *seen[REC_MAX];
  sem_t calls; /* posted once per call */
} rec_t;

typedef struct cb_arg {
  rec_t *rec;
  int id;
} cb_arg_t;

static void rec_init(rec_t *r) {
  memset(r, 0, sizeof *r);
  atomic_init(&r->n, 0);
  sem_init(&r->calls, 0, 0);
}

static void rec_fini(rec_t *r) { sem_destroy(&r->calls); }

static int rec_count(rec_t *r) { return atomic_load(&r->n); }

/* Wait until k more callbacks have been recorded. */
static void rec_wait(rec_t *r, int k) {
  for (int i = 0; i < k; i++)
    sem_wait_nointr(&r->calls);
}

static void rec_cb(cf_future_t *f, void *data) {
  cb_arg_t *a = data;
  int i = atomic_fetch_add(&a->rec->n, 1);
  if (i < REC_MAX) {
    a->rec->order[i] = a->id;
    a->rec->thread[i] = pthread_self();
    a->rec->seen[i] = f;
  }
  sem_post(&a->rec->calls);
}

/* Register callbacks ids 0..n-1 (args must outlive the future's callbacks). */
static void add_recorded(cf_future_t *f, rec_t *r, cb_arg_t *args, int n) {
  for (int i = 0; i < n; i++) {
    args[i].rec = r;
    args[i].id = i;
    assert_int_equal(cf_future_add_done_callback(f, rec_cb, &args[i]), 0);
  }
}

/* Every recorded call ran in thread t, on future f, in order 0..n-1. */
static void assert_recorded(rec_t *r, int n, pthread_t t, cf_future_t *f) {
  assert_int_equal(rec_count(r), n);
  for (int i = 0; i < n; i++) {
    assert_int_equal(r->order[i], i);
    assert_true(pthread_equal(r->thread[i], t));
    assert_ptr_equal(r->seen[i], f);
  }
}

static void assert_state(const cf_future_t *f, int state, int cancelled,
                         int running, int done) {
  assert_int_equal(cf_future_state(f), state);
  assert_int_equal(cf_future_cancelled(f), cancelled);
  assert_int_equal(cf_future_running(f), running);
  assert_int_equal(cf_future_done(f), done);
}

/* Standalone futures in each state. */
static cf_future_t *new_pending(void) {
  cf_future_t *f = NULL;
  assert_int_equal(cf_future_create(&f), 0);
  assert_non_null(f);
  return f;
}

static cf_future_t *new_running(void) {
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 1);
  return f;
}

static cf_future_t *new_cancelled(void) {
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_cancel(f), 1);
  return f;
}

static cf_future_t *new_notified(void) {
  cf_future_t *f = new_cancelled();
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 0);
  return f;
}

static cf_future_t *new_finished(void *value, cf_free_fn dtor) {
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_set_result(f, value, dtor), 0);
  return f;
}

static cf_future_t *new_failed(int code, const char *message) {
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_set_exception(f, code, message), 0);
  return f;
}

static cf_executor_t *new_pool(int workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  assert_non_null(ex);
  return ex;
}

/* A thread blocked in cf_future_result or cf_future_exception. */
typedef struct blocker {
  cf_future_t *f;
  double timeout;
  int use_exception;
  sem_t ready;
  int rc;
  void *value;
  int code;
  const char *message;
  pthread_t tid;
  long kernel_tid; /* Linux only: to watch the thread go to sleep */
} blocker_t;

static void *blocker_main(void *p) {
  blocker_t *b = p;
#ifdef __linux__
  b->kernel_tid = (long)syscall(SYS_gettid);
#endif
  sem_post(&b->ready);
  if (b->use_exception)
    b->rc = cf_future_exception(b->f, b->timeout, &b->code, &b->message);
  else
    b->rc = cf_future_result(b->f, b->timeout, &b->value);
  return NULL;
}

/* The blocker is about to call in. The outcome must be the same whether or
 * not it is already waiting, but to exercise the wake-up path we watch, on
 * Linux, for the thread to go to sleep in the kernel (state S), which it
 * only does once it is parked on the future. If it exits instead (a wrong
 * immediate return), stop watching; the test's asserts will catch it.
 * Elsewhere this is a no-op. Not a timing assumption: it polls a state. */
static void wait_until_asleep(long tid) {
#ifdef __linux__
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
  for (;;) {
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
      return; /* no /proc, or the thread is gone */
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* "tid (comm) S ..." */
    if (p == NULL || p[1] != ' ' || p[2] != 'R')
      return; /* sleeping, or a state we do not wait out */
    sched_yield();
  }
#else
  (void)tid;
#endif
}

static void blocker_start(blocker_t *b, cf_future_t *f, double timeout,
                          int use_exception) {
  memset(b, 0, sizeof *b);
  b->f = f;
  b->timeout = timeout;
  b->use_exception = use_exception;
  b->rc = 12345;
  b->code = 12345;
  sem_init(&b->ready, 0, 0);
  assert_int_equal(pthread_create(&b->tid, NULL, blocker_main, b), 0);
  sem_wait_nointr(&b->ready);
  wait_until_asleep(b->kernel_tid);
}

static void blocker_join(blocker_t *b) {
  assert_int_equal(pthread_join(b->tid, NULL), 0);
  sem_destroy(&b->ready);
}

/* A thread that performs one producer action on a future. */
enum { ACT_SET_RESULT, ACT_SET_EXCEPTION, ACT_CANCEL };

typedef struct actor {
  cf_future_t *f;
  int action;
  void *value;
  int rc;
  pthread_t tid;
} actor_t;

static void *actor_main(void *p) {
  actor_t *a = p;
  switch (a->action) {
  case ACT_SET_RESULT:
    a->rc = cf_future_set_result(a->f, a->value, NULL);
    break;
  case ACT_SET_EXCEPTION:
    a->rc = cf_future_set_exception(a->f, 77, "from actor");
    break;
  default:
    a->rc = cf_future_cancel(a->f);
    break;
  }
  return NULL;
}

static void actor_start(actor_t *a, cf_future_t *f, int action, void *value) {
  memset(a, 0, sizeof *a);
  a->f = f;
  a->action = action;
  a->value = value;
  assert_int_equal(pthread_create(&a->tid, NULL, actor_main, a), 0);
}

static void actor_join(actor_t *a) {
  assert_int_equal(pthread_join(a->tid, NULL), 0);
}

static int marker_a, marker_b, marker_c;

/* ------------------------------------------------------------------ */
/* cancelled() / running() / done() / state in each state             */
/* ------------------------------------------------------------------ */

static void test_queries_pending(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  assert_state(f, CF_STATE_PENDING, 0, 0, 0);
  cf_future_release(f);
}

static void test_queries_running(void **state) {
  (void)state;
  cf_future_t *f = new_running();
  assert_state(f, CF_STATE_RUNNING, 0, 1, 0);
  cf_future_release(f);
}

static void test_queries_cancelled(void **state) {
  (void)state;
  cf_future_t *f = new_cancelled();
  assert_state(f, CF_STATE_CANCELLED, 1, 0, 1);
  cf_future_release(f);
}

static void test_queries_notified(void **state) {
  (void)state;
  cf_future_t *f = new_notified();
  assert_state(f, CF_STATE_CANCELLED_AND_NOTIFIED, 1, 0, 1);
  cf_future_release(f);
}

static void test_queries_finished(void **state) {
  (void)state;
  cf_future_t *f = new_finished(&marker_a, NULL);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  cf_future_release(f);
  f = new_failed(5, "boom");
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  cf_future_release(f);
}

/* ------------------------------------------------------------------ */
/* cancel() in each state                                             */
/* ------------------------------------------------------------------ */

static void test_cancel_pending(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[3];
  rec_init(&r);
  cf_future_t *f = new_pending();
  add_recorded(f, &r, args, 3);
  assert_int_equal(rec_count(&r), 0);

  assert_int_equal(cf_future_cancel(f), 1);
  /* Callbacks ran in this thread, in order, before cancel returned. */
  assert_recorded(&r, 3, pthread_self(), f);
  assert_state(f, CF_STATE_CANCELLED, 1, 0, 1);

  /* Cancelling again: true, no side effects. */
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(rec_count(&r), 3);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED);
  cf_future_release(f);
  rec_fini(&r);
}

static void test_cancel_running(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[2];
  rec_init(&r);
  cf_future_t *f = new_running();
  add_recorded(f, &r, args, 2);

  assert_int_equal(cf_future_cancel(f), 0);
  assert_state(f, CF_STATE_RUNNING, 0, 1, 0);
  assert_int_equal(rec_count(&r), 0);

  /* Still completable, and the callbacks run once then. */
  assert_int_equal(cf_future_set_result(f, &marker_a, NULL), 0);
  assert_recorded(&r, 2, pthread_self(), f);
  cf_future_release(f);
  rec_fini(&r);
}

static void test_cancel_notified(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[2];
  rec_init(&r);
  cf_future_t *f = new_pending();
  add_recorded(f, &r, args, 2);
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(rec_count(&r), 2);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 0);
  assert_int_equal(rec_count(&r), 2);

  assert_int_equal(cf_future_cancel(f), 1);
  assert_state(f, CF_STATE_CANCELLED_AND_NOTIFIED, 1, 0, 1);
  assert_int_equal(rec_count(&r), 2);
  cf_future_release(f);
  rec_fini(&r);
}

static void test_cancel_finished(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[1];
  rec_init(&r);
  cf_future_t *f = new_pending();
  add_recorded(f, &r, args, 1);
  assert_int_equal(cf_future_set_result(f, &marker_a, NULL), 0);
  assert_int_equal(rec_count(&r), 1);

  assert_int_equal(cf_future_cancel(f), 0);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_ptr_equal(v, &marker_a);
  assert_int_equal(rec_count(&r), 1);
  cf_future_release(f);

  f = new_failed(3, "x");
  assert_int_equal(cf_future_cancel(f), 0);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  assert_int_equal(cf_future_result(f, 0, NULL), CF_EFAILED);
  cf_future_release(f);
  rec_fini(&r);
}

/* ------------------------------------------------------------------ */
/* result() / exception() in each state                               */
/* ------------------------------------------------------------------ */

static void assert_polls_time_out(cf_future_t *f) {
  const double polls[] = {0.0, -0.0, -1.0, -1e-9, -1e9, -(double)INFINITY};
  for (size_t i = 0; i < sizeof polls / sizeof polls[0]; i++) {
    void *v = &marker_c;
    int code = 99;
    const char *msg = "untouched";
    assert_int_equal(cf_future_result(f, polls[i], &v), CF_ETIMEDOUT);
    assert_int_equal(cf_future_result(f, polls[i], NULL), CF_ETIMEDOUT);
    assert_int_equal(cf_future_exception(f, polls[i], &code, &msg),
                     CF_ETIMEDOUT);
    assert_int_equal(cf_future_exception(f, polls[i], NULL, NULL),
                     CF_ETIMEDOUT);
  }
}

static void test_result_pending_polls(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  assert_polls_time_out(f);
  assert_state(f, CF_STATE_PENDING, 0, 0, 0);
  cf_future_release(f);
}

static void test_result_running_polls(void **state) {
  (void)state;
  cf_future_t *f = new_running();
  assert_polls_time_out(f);
  assert_state(f, CF_STATE_RUNNING, 0, 1, 0);
  cf_future_release(f);
}

static void test_result_nan_timeout(void **state) {
  (void)state;
  cf_future_t *fs[2] = {new_pending(), new_running()};
  for (int i = 0; i < 2; i++) {
    void *v = NULL;
    int code = 0;
    const char *msg = NULL;
    assert_int_equal(cf_future_result(fs[i], (double)NAN, &v), CF_EINVAL);
    assert_int_equal(cf_future_result(fs[i], -(double)NAN, NULL), CF_EINVAL);
    assert_int_equal(cf_future_exception(fs[i], (double)NAN, &code, &msg),
                     CF_EINVAL);
    assert_int_equal(cf_future_done(fs[i]), 0);
    cf_future_release(fs[i]);
  }
}

static void test_result_finite_timeout_pending(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  const int64_t want = (int64_t)(POLL_TIMEOUT * 1e9);
  int64_t t0 = mono_ns();
  assert_int_equal(cf_future_result(f, POLL_TIMEOUT, NULL), CF_ETIMEDOUT);
  int64_t t1 = mono_ns();
  assert_true(t1 - t0 >= want);

  t0 = mono_ns();
  assert_int_equal(cf_future_exception(f, POLL_TIMEOUT, NULL, NULL),
                   CF_ETIMEDOUT);
  t1 = mono_ns();
  assert_true(t1 - t0 >= want);
  assert_state(f, CF_STATE_PENDING, 0, 0, 0);
  cf_future_release(f);
}

static void test_result_finite_timeout_running(void **state) {
  (void)state;
  cf_future_t *f = new_running();
  const int64_t want = (int64_t)(POLL_TIMEOUT * 1e9);
  int64_t t0 = mono_ns();
  void *v = NULL;
  assert_int_equal(cf_future_result(f, POLL_TIMEOUT, &v), CF_ETIMEDOUT);
  int64_t t1 = mono_ns();
  assert_true(t1 - t0 >= want);
  assert_state(f, CF_STATE_RUNNING, 0, 1, 0);
  cf_future_release(f);
}

static void assert_cancelled_outcome(cf_future_t *f) {
  const double timeouts[] = {0.0, -1.0, 1.0, CF_FOREVER};
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    void *v = NULL;
    int code = 0;
    const char *msg = NULL;
    assert_int_equal(cf_future_result(f, timeouts[i], &v), CF_ECANCELLED);
    assert_int_equal(cf_future_result(f, timeouts[i], NULL), CF_ECANCELLED);
    assert_int_equal(cf_future_exception(f, timeouts[i], &code, &msg),
                     CF_ECANCELLED);
    assert_int_equal(cf_future_exception(f, timeouts[i], NULL, NULL),
                     CF_ECANCELLED);
  }
}

static void test_result_cancelled(void **state) {
  (void)state;
  cf_future_t *f = new_cancelled();
  assert_cancelled_outcome(f);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED);
  cf_future_release(f);
}

static void test_result_notified(void **state) {
  (void)state;
  cf_future_t *f = new_notified();
  assert_cancelled_outcome(f);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED_AND_NOTIFIED);
  cf_future_release(f);
}

static void test_result_finished_value(void **state) {
  (void)state;
  cf_future_t *f = new_finished(&marker_a, NULL);
  const double timeouts[] = {0.0, -1.0, 1.0, CF_FOREVER};
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    void *v = NULL;
    assert_int_equal(cf_future_result(f, timeouts[i], &v), 0);
    assert_ptr_equal(v, &marker_a);
    assert_int_equal(cf_future_result(f, timeouts[i], NULL), 0);

    int code = 99;
    const char *msg = "not null";
    assert_int_equal(cf_future_exception(f, timeouts[i], &code, &msg), 0);
    assert_int_equal(code, 0);
    assert_null(msg);
    assert_int_equal(cf_future_exception(f, timeouts[i], NULL, NULL), 0);
    assert_int_equal(cf_future_exception(f, timeouts[i], &code, NULL), 0);
    assert_int_equal(cf_future_exception(f, timeouts[i], NULL, &msg), 0);
  }
  cf_future_release(f);
}

static void test_result_finished_null_value(void **state) {
  (void)state;
  cf_future_t *f = new_finished(NULL, NULL);
  void *v = &marker_c;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_null(v);
  int code = 99;
  assert_int_equal(cf_future_exception(f, 0, &code, NULL), 0);
  assert_int_equal(code, 0);
  cf_future_release(f);
}

static void test_result_finished_failure(void **state) {
  (void)state;
  cf_future_t *f = new_failed(42, "the answer");
  const double timeouts[] = {0.0, -1.0, 1.0, CF_FOREVER};
  const char *first = NULL;
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    void *v = NULL;
    assert_int_equal(cf_future_result(f, timeouts[i], &v), CF_EFAILED);
    assert_int_equal(cf_future_result(f, timeouts[i], NULL), CF_EFAILED);

    int code = 0;
    const char *msg = NULL;
    assert_int_equal(cf_future_exception(f, timeouts[i], &code, &msg), 0);
    assert_int_equal(code, 42);
    assert_non_null(msg);
    assert_string_equal(msg, "the answer");
    /* The same stored message every time (owned by the future). */
    if (first == NULL)
      first = msg;
    assert_ptr_equal(msg, first);
    assert_int_equal(cf_future_exception(f, timeouts[i], NULL, NULL), 0);
  }
  cf_future_release(f);
}

static void test_exception_message_copied(void **state) {
  (void)state;
  char buf[32];
  strcpy(buf, "original message");
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_set_exception(f, -7, buf), 0);
  memset(buf, 'X', sizeof buf - 1);
  buf[sizeof buf - 1] = '\0';

  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_future_exception(f, 0, &code, &msg), 0);
  assert_int_equal(code, -7);
  assert_non_null(msg);
  assert_ptr_not_equal(msg, buf);
  assert_string_equal(msg, "original message");
  cf_future_release(f);
}

static void test_exception_null_message(void **state) {
  (void)state;
  cf_future_t *f = new_failed(8, NULL);
  int code = 0;
  const char *msg = "not null";
  assert_int_equal(cf_future_exception(f, 0, &code, &msg), 0);
  assert_int_equal(code, 8);
  assert_null(msg);
  assert_int_equal(cf_future_result(f, 0, NULL), CF_EFAILED);
  cf_future_release(f);
}

/* A failure code that equals a CF_E* value is still the job's failure. */
static void test_failure_code_like_library_error(void **state) {
  (void)state;
  cf_future_t *f = new_failed(CF_ECANCELLED, "looks cancelled");
  assert_int_equal(cf_future_result(f, 0, NULL), CF_EFAILED);
  assert_int_equal(cf_future_cancelled(f), 0);
  int code = 0;
  assert_int_equal(cf_future_exception(f, 0, &code, NULL), 0);
  assert_int_equal(code, CF_ECANCELLED);
  cf_future_release(f);
}

/* ------------------------------------------------------------------ */
/* result() blocked in another thread                                 */
/* ------------------------------------------------------------------ */

static void test_blocked_result_woken_by_cancel(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  blocker_t br, be;
  blocker_start(&br, f, CF_FOREVER, 0);
  blocker_start(&be, f, 3600.0, 1);
  assert_int_equal(cf_future_cancel(f), 1);
  blocker_join(&br);
  blocker_join(&be);
  assert_int_equal(br.rc, CF_ECANCELLED);
  assert_int_equal(be.rc, CF_ECANCELLED);
  cf_future_release(f);
}

static void test_blocked_result_woken_by_set_result(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  blocker_t b1, b2, b3;
  blocker_start(&b1, f, CF_FOREVER, 0);
  blocker_start(&b2, f, 3600.0, 0);
  blocker_start(&b3, f, CF_FOREVER, 1);
  assert_int_equal(cf_future_set_result(f, &marker_b, NULL), 0);
  blocker_join(&b1);
  blocker_join(&b2);
  blocker_join(&b3);
  assert_int_equal(b1.rc, 0);
  assert_ptr_equal(b1.value, &marker_b);
  assert_int_equal(b2.rc, 0);
  assert_ptr_equal(b2.value, &marker_b);
  assert_int_equal(b3.rc, 0);
  assert_int_equal(b3.code, 0);
  assert_null(b3.message);
  cf_future_release(f);
}

static void test_blocked_running_woken_by_set_exception(void **state) {
  (void)state;
  cf_future_t *f = new_running();
  blocker_t br, be;
  blocker_start(&br, f, CF_FOREVER, 0);
  blocker_start(&be, f, CF_FOREVER, 1);
  assert_int_equal(cf_future_set_exception(f, 13, "unlucky"), 0);
  blocker_join(&br);
  blocker_join(&be);
  assert_int_equal(br.rc, CF_EFAILED);
  assert_int_equal(be.rc, 0);
  assert_int_equal(be.code, 13);
  assert_non_null(be.message);
  assert_string_equal(be.message, "unlucky");
  cf_future_release(f);
}

/* ------------------------------------------------------------------ */
/* add_done_callback in each state                                    */
/* ------------------------------------------------------------------ */

static void test_callback_pending_deferred(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[3];
  rec_init(&r);
  cf_future_t *f = new_pending();
  add_recorded(f, &r, args, 3);
  assert_int_equal(rec_count(&r), 0);
  assert_int_equal(cf_future_set_result(f, &marker_a, NULL), 0);
  assert_recorded(&r, 3, pthread_self(), f);
  cf_future_release(f);
  rec_fini(&r);
}

static void test_callback_running_deferred(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[3];
  rec_init(&r);
  cf_future_t *f = new_running();
  add_recorded(f, &r, args, 3);
  assert_int_equal(rec_count(&r), 0);
  assert_int_equal(cf_future_set_exception(f, 2, "two"), 0);
  assert_recorded(&r, 3, pthread_self(), f);
  cf_future_release(f);
  rec_fini(&r);
}

/* On a done future the callback runs now, in the caller, once. */
static void assert_callback_immediate(cf_future_t *f) {
  rec_t r;
  cb_arg_t args[2];
  rec_init(&r);
  args[0].rec = &r;
  args[0].id = 0;
  assert_int_equal(cf_future_add_done_callback(f, rec_cb, &args[0]), 0);
  assert_recorded(&r, 1, pthread_self(), f);
  args[1].rec = &r;
  args[1].id = 1;
  assert_int_equal(cf_future_add_done_callback(f, rec_cb, &args[1]), 0);
  assert_recorded(&r, 2, pthread_self(), f);
  rec_fini(&r);
}

static void test_callback_cancelled_immediate(void **state) {
  (void)state;
  cf_future_t *f = new_cancelled();
  assert_callback_immediate(f);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED);
  cf_future_release(f);
}

static void test_callback_notified_immediate(void **state) {
  (void)state;
  cf_future_t *f = new_notified();
  assert_callback_immediate(f);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED_AND_NOTIFIED);
  cf_future_release(f);
}

static void test_callback_finished_immediate(void **state) {
  (void)state;
  cf_future_t *f = new_finished(&marker_a, NULL);
  assert_callback_immediate(f);
  cf_future_release(f);
  f = new_failed(4, "four");
  assert_callback_immediate(f);
  cf_future_release(f);
}

static void test_callback_registration_order_many(void **state) {
  (void)state;
  enum { N = 40 };
  rec_t r;
  cb_arg_t args[N];
  rec_init(&r);
  cf_future_t *f = new_pending();
  add_recorded(f, &r, args, N);
  assert_int_equal(cf_future_cancel(f), 1);
  assert_recorded(&r, N, pthread_self(), f);
  /* Nothing runs a second time. */
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 0);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), CF_EINVALID_STATE);
  assert_int_equal(rec_count(&r), N);
  cf_future_release(f);
  rec_fini(&r);
}

static void test_callback_runs_in_completing_thread(void **state) {
  (void)state;
  const int actions[] = {ACT_SET_RESULT, ACT_SET_EXCEPTION};
  for (int k = 0; k < 2; k++) {
    rec_t r;
    cb_arg_t args[2];
    rec_init(&r);
    cf_future_t *f = new_pending();
    add_recorded(f, &r, args, 2);
    actor_t a;
    actor_start(&a, f, actions[k], &marker_a);
    actor_join(&a);
    assert_int_equal(a.rc, 0);
    assert_recorded(&r, 2, a.tid, f);
    assert_false(pthread_equal(r.thread[0], pthread_self()));
    cf_future_release(f);
    rec_fini(&r);
  }
}

static void test_callback_runs_in_cancelling_thread(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[2];
  rec_init(&r);
  cf_future_t *f = new_pending();
  add_recorded(f, &r, args, 2);
  actor_t a;
  actor_start(&a, f, ACT_CANCEL, NULL);
  actor_join(&a);
  assert_int_equal(a.rc, 1);
  assert_recorded(&r, 2, a.tid, f);
  assert_int_equal(cf_future_cancelled(f), 1);
  cf_future_release(f);
  rec_fini(&r);
}

/* A callback that calls every method of its own future. Runs in the test
 * thread (the test completes the future), so plain fields are fine. */
typedef struct reent {
  int outer_runs;
  int inner_runs;
  int inner_runs_after_add;
  cf_future_t *inner_seen;
  int state;
  int done;
  int cancelled;
  int running;
  int rc_result;
  void *value;
  int rc_exception;
  int code;
  const char *message;
  int rc_cancel;
  int rc_set_result;
  int rc_set_exception;
  int rc_set_running;
  int rc_add;
  int rc_repr;
  char repr[128];
} reent_t;

static void reent_inner(cf_future_t *f, void *data) {
  reent_t *r = data;
  r->inner_runs++;
  r->inner_seen = f;
}

static void reent_outer(cf_future_t *f, void *data) {
  reent_t *r = data;
  r->outer_runs++;
  r->state = cf_future_state(f);
  r->done = cf_future_done(f);
  r->cancelled = cf_future_cancelled(f);
  r->running = cf_future_running(f);
  r->rc_result = cf_future_result(f, CF_FOREVER, &r->value);
  r->rc_exception = cf_future_exception(f, CF_FOREVER, &r->code, &r->message);
  r->rc_cancel = cf_future_cancel(f);
  r->rc_set_result = cf_future_set_result(f, &marker_c, dtor_count);
  r->rc_set_exception = cf_future_set_exception(f, 9, "late");
  r->rc_set_running = cf_future_set_running_or_notify_cancel(f);
  r->rc_add = cf_future_add_done_callback(f, reent_inner, r);
  r->inner_runs_after_add = r->inner_runs;
  r->rc_repr = cf_future_repr(f, r->repr, sizeof r->repr);
}

static void test_callback_reentrant_on_finish(void **state) {
  (void)state;
  reent_t r;
  memset(&r, 0, sizeof r);
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_add_done_callback(f, reent_outer, &r), 0);
  assert_int_equal(cf_future_set_result(f, &marker_a, NULL), 0);

  assert_int_equal(r.outer_runs, 1);
  assert_int_equal(r.state, CF_STATE_FINISHED);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.cancelled, 0);
  assert_int_equal(r.running, 0);
  assert_int_equal(r.rc_result, 0);
  assert_ptr_equal(r.value, &marker_a);
  assert_int_equal(r.rc_exception, 0);
  assert_int_equal(r.code, 0);
  assert_null(r.message);
  assert_int_equal(r.rc_cancel, 0);
  assert_int_equal(r.rc_set_result, CF_EINVALID_STATE);
  assert_int_equal(r.rc_set_exception, CF_EINVALID_STATE);
  assert_int_equal(r.rc_set_running, CF_EINVALID_STATE);
  assert_int_equal(r.rc_add, 0);
  /* The future was done, so the inner callback ran inside add. */
  assert_int_equal(r.inner_runs_after_add, 1);
  assert_int_equal(r.inner_runs, 1);
  assert_ptr_equal(r.inner_seen, f);
  assert_true(r.rc_repr > 0);
  assert_non_null(strstr(r.repr, "finished"));

  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_ptr_equal(v, &marker_a);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 0);
}

static void test_callback_reentrant_on_cancel(void **state) {
  (void)state;
  reent_t r;
  memset(&r, 0, sizeof r);
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_add_done_callback(f, reent_outer, &r), 0);
  assert_int_equal(cf_future_cancel(f), 1);

  assert_int_equal(r.outer_runs, 1);
  assert_int_equal(r.state, CF_STATE_CANCELLED);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.cancelled, 1);
  assert_int_equal(r.running, 0);
  assert_int_equal(r.rc_result, CF_ECANCELLED);
  assert_int_equal(r.rc_exception, CF_ECANCELLED);
  assert_int_equal(r.rc_cancel, 1);
  assert_int_equal(r.rc_set_result, CF_EINVALID_STATE);
  assert_int_equal(r.rc_set_exception, CF_EINVALID_STATE);
  /* The callback itself moved it to CANCELLED_AND_NOTIFIED. */
  assert_int_equal(r.rc_set_running, 0);
  assert_int_equal(r.rc_add, 0);
  assert_int_equal(r.inner_runs_after_add, 1);
  assert_int_equal(r.inner_runs, 1);
  assert_true(r.rc_repr > 0);
  assert_non_null(strstr(r.repr, "cancelled"));

  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED_AND_NOTIFIED);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 0);
}

/* add_done_callback racing with completion: the callback runs exactly once,
 * either inside add (caller thread) or in the completing thread. */
static void test_callback_races_completion(void **state) {
  (void)state;
  for (int i = 0; i < RACE_ROUNDS; i++) {
    atomic_int hits;
    atomic_init(&hits, 0);
    cf_future_t *f = new_pending();
    actor_t a;
    actor_start(&a, f, i % 2 ? ACT_SET_RESULT : ACT_CANCEL, &marker_a);
    assert_int_equal(cf_future_add_done_callback(f, count_done, &hits), 0);
    actor_join(&a);
    assert_int_equal(atomic_load(&hits), 1);
    assert_int_equal(cf_future_done(f), 1);
    cf_future_release(f);
  }
}

/* cancel racing with set_result: exactly one wins. */
static void test_cancel_races_set_result(void **state) {
  (void)state;
  int cancel_won = 0, result_won = 0;
  for (int i = 0; i < RACE_ROUNDS; i++) {
    atomic_int hits;
    atomic_init(&hits, 0);
    cf_future_t *f = new_pending();
    assert_int_equal(cf_future_add_done_callback(f, count_done, &hits), 0);
    actor_t a;
    actor_start(&a, f, ACT_SET_RESULT, &marker_a);
    int c = cf_future_cancel(f);
    actor_join(&a);
    if (c == 1) {
      cancel_won++;
      assert_int_equal(a.rc, CF_EINVALID_STATE);
      assert_int_equal(cf_future_result(f, 0, NULL), CF_ECANCELLED);
    } else {
      result_won++;
      assert_int_equal(c, 0);
      assert_int_equal(a.rc, 0);
      void *v = NULL;
      assert_int_equal(cf_future_result(f, 0, &v), 0);
      assert_ptr_equal(v, &marker_a);
    }
    assert_int_equal(atomic_load(&hits), 1);
    cf_future_release(f);
  }
  assert_int_equal(cancel_won + result_won, RACE_ROUNDS);
}

/* ------------------------------------------------------------------ */
/* set_running_or_notify_cancel in each state                         */
/* ------------------------------------------------------------------ */

static void test_set_running_pending(void **state) {
  (void)state;
  atomic_int hits;
  atomic_init(&hits, 0);
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_add_done_callback(f, count_done, &hits), 0);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 1);
  assert_state(f, CF_STATE_RUNNING, 0, 1, 0);
  assert_int_equal(atomic_load(&hits), 0);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), 0);
  assert_int_equal(atomic_load(&hits), 1);
  cf_future_release(f);
}

static void test_set_running_running(void **state) {
  (void)state;
  cf_future_t *f = new_running();
  assert_int_equal(cf_future_set_running_or_notify_cancel(f),
                   CF_EINVALID_STATE);
  assert_state(f, CF_STATE_RUNNING, 0, 1, 0);
  cf_future_release(f);
}

static void test_set_running_cancelled(void **state) {
  (void)state;
  atomic_int hits;
  atomic_init(&hits, 0);
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_add_done_callback(f, count_done, &hits), 0);
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(atomic_load(&hits), 1);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 0);
  assert_state(f, CF_STATE_CANCELLED_AND_NOTIFIED, 1, 0, 1);
  /* No callbacks re-run. */
  assert_int_equal(atomic_load(&hits), 1);
  cf_future_release(f);
}

static void test_set_running_notified(void **state) {
  (void)state;
  cf_future_t *f = new_notified();
  assert_int_equal(cf_future_set_running_or_notify_cancel(f),
                   CF_EINVALID_STATE);
  assert_state(f, CF_STATE_CANCELLED_AND_NOTIFIED, 1, 0, 1);
  cf_future_release(f);
}

static void test_set_running_finished(void **state) {
  (void)state;
  cf_future_t *f = new_finished(&marker_a, NULL);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f),
                   CF_EINVALID_STATE);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  cf_future_release(f);
  f = new_failed(1, NULL);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f),
                   CF_EINVALID_STATE);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  cf_future_release(f);
}

/* ------------------------------------------------------------------ */
/* set_result / set_exception in each state                           */
/* ------------------------------------------------------------------ */

static void test_set_result_pending(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_set_result(f, &marker_a, dtor_count), 0);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_ptr_equal(v, &marker_a);
  assert_int_equal(atomic_load(&dtor_calls), 0);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), &marker_a);
}

static void test_set_result_running(void **state) {
  (void)state;
  cf_future_t *f = new_running();
  assert_int_equal(cf_future_set_result(f, &marker_b, dtor_count), 0);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, CF_FOREVER, &v), 0);
  assert_ptr_equal(v, &marker_b);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), &marker_b);
}

static void test_set_exception_pending(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_set_exception(f, 21, "pending failure"), 0);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_future_exception(f, 0, &code, &msg), 0);
  assert_int_equal(code, 21);
  assert_string_equal(msg, "pending failure");
  cf_future_release(f);
}

static void test_set_exception_running(void **state) {
  (void)state;
  cf_future_t *f = new_running();
  assert_int_equal(cf_future_set_exception(f, -22, "running failure"), 0);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_future_exception(f, CF_FOREVER, &code, &msg), 0);
  assert_int_equal(code, -22);
  assert_string_equal(msg, "running failure");
  assert_int_equal(cf_future_result(f, CF_FOREVER, NULL), CF_EFAILED);
  cf_future_release(f);
}

/* On a done future: CF_EINVALID_STATE, nothing changes, the value stays the
 * caller's (its destructor is never run by the future). */
static void assert_set_rejected(cf_future_t *f, int state) {
  assert_int_equal(cf_future_set_result(f, &marker_c, dtor2_count),
                   CF_EINVALID_STATE);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), CF_EINVALID_STATE);
  assert_int_equal(cf_future_set_exception(f, 5, "late"), CF_EINVALID_STATE);
  assert_int_equal(cf_future_set_exception(f, 5, NULL), CF_EINVALID_STATE);
  assert_int_equal(cf_future_state(f), state);
  assert_int_equal(atomic_load(&dtor2_calls), 0);
}

static void test_set_on_cancelled(void **state) {
  (void)state;
  cf_future_t *f = new_cancelled();
  assert_set_rejected(f, CF_STATE_CANCELLED);
  assert_int_equal(cf_future_result(f, 0, NULL), CF_ECANCELLED);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor2_calls), 0);
}

static void test_set_on_notified(void **state) {
  (void)state;
  cf_future_t *f = new_notified();
  assert_set_rejected(f, CF_STATE_CANCELLED_AND_NOTIFIED);
  assert_int_equal(cf_future_result(f, 0, NULL), CF_ECANCELLED);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor2_calls), 0);
}

static void test_set_on_finished(void **state) {
  (void)state;
  rec_t r;
  cb_arg_t args[1];
  rec_init(&r);
  cf_future_t *f = new_pending();
  add_recorded(f, &r, args, 1);
  assert_int_equal(cf_future_set_result(f, &marker_a, dtor_count), 0);
  assert_set_rejected(f, CF_STATE_FINISHED);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_ptr_equal(v, &marker_a);
  assert_int_equal(rec_count(&r), 1);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), &marker_a);
  assert_int_equal(atomic_load(&dtor2_calls), 0);

  f = new_failed(6, "six");
  assert_set_rejected(f, CF_STATE_FINISHED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_future_exception(f, 0, &code, &msg), 0);
  assert_int_equal(code, 6);
  assert_string_equal(msg, "six");
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor2_calls), 0);
  rec_fini(&r);
}

static void test_set_exception_code_zero(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_set_exception(f, 0, "zero"), CF_EINVAL);
  assert_int_equal(cf_future_set_exception(f, 0, NULL), CF_EINVAL);
  assert_state(f, CF_STATE_PENDING, 0, 0, 0);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 1);
  assert_int_equal(cf_future_set_exception(f, 0, "zero"), CF_EINVAL);
  assert_state(f, CF_STATE_RUNNING, 0, 1, 0);
  cf_future_release(f);
}

/* ------------------------------------------------------------------ */
/* References and the result destructor                               */
/* ------------------------------------------------------------------ */

static void test_result_dtor_on_last_release(void **state) {
  (void)state;
  int *value = malloc(sizeof *value);
  assert_non_null(value);
  *value = 7;
  cf_future_t *f = new_pending();
  assert_ptr_equal(cf_future_retain(f), f);
  assert_ptr_equal(cf_future_retain(f), f);
  assert_int_equal(cf_future_set_result(f, value, dtor_free_count), 0);

  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_ptr_equal(v, value);
  assert_int_equal(*(int *)v, 7);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 0);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), value);
}

static void test_release_in_every_state(void **state) {
  (void)state;
  /* Dropping the last reference of an unfinished or cancelled future is
   * fine and runs no destructor (valgrind checks nothing leaks). */
  cf_future_release(new_pending());
  cf_future_release(new_running());
  cf_future_release(new_cancelled());
  cf_future_release(new_notified());
  cf_future_release(new_failed(1, "leak check"));
  cf_future_release(new_finished(&marker_a, NULL));
  assert_int_equal(atomic_load(&dtor_calls), 0);
}

static void test_retain_release_null(void **state) {
  (void)state;
  assert_null(cf_future_retain(NULL));
  cf_future_release(NULL);
}

/* A done callback may take its own reference and drop it later. */
static void retain_cb(cf_future_t *f, void *data) {
  *(cf_future_t **)data = cf_future_retain(f);
}

static void test_callback_retains_future(void **state) {
  (void)state;
  cf_future_t *kept = NULL;
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_add_done_callback(f, retain_cb, &kept), 0);
  assert_int_equal(cf_future_set_result(f, &marker_a, dtor_count), 0);
  assert_ptr_equal(kept, f);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(kept, 0, &v), 0);
  assert_ptr_equal(v, &marker_a);
  cf_future_release(kept);
  assert_int_equal(atomic_load(&dtor_calls), 1);
}

/* ------------------------------------------------------------------ */
/* repr and state names                                               */
/* ------------------------------------------------------------------ */

static void assert_repr(const cf_future_t *f, const char *state_text,
                        const char *must, const char *must_not1,
                        const char *must_not2) {
  char buf[256];
  int n = cf_future_repr(f, buf, sizeof buf);
  assert_true(n > 0);
  assert_true((size_t)n < sizeof buf);
  assert_int_equal((size_t)n, strlen(buf));
  assert_int_equal(buf[0], '<');
  assert_int_equal(buf[n - 1], '>');
  char want[64];
  snprintf(want, sizeof want, "state=%s", state_text);
  assert_non_null(strstr(buf, want));
  if (must != NULL)
    assert_non_null(strstr(buf, must));
  if (must_not1 != NULL)
    assert_null(strstr(buf, must_not1));
  if (must_not2 != NULL)
    assert_null(strstr(buf, must_not2));
}

static void test_repr_each_state(void **state) {
  (void)state;
  cf_future_t *f = new_pending();
  assert_repr(f, "pending", NULL, "returned", "raised");
  cf_future_release(f);

  f = new_running();
  assert_repr(f, "running", NULL, "returned", "raised");
  cf_future_release(f);

  f = new_cancelled();
  assert_repr(f, "cancelled", NULL, "returned", "raised");
  cf_future_release(f);

  f = new_notified();
  assert_repr(f, "cancelled", NULL, "returned", "raised");
  cf_future_release(f);

  f = new_finished(&marker_a, NULL);
  assert_repr(f, "finished", "returned", "raised", NULL);
  cf_future_release(f);

  f = new_finished(NULL, NULL);
  assert_repr(f, "finished", "returned", "raised", NULL);
  cf_future_release(f);

  f = new_failed(42, "x");
  assert_repr(f, "finished", "raised", "returned", NULL);
  assert_repr(f, "finished", "42", NULL, NULL);
  cf_future_release(f);
}

static void test_repr_buffer_semantics(void **state) {
  (void)state;
  cf_future_t *f = new_failed(12345, "msg");
  char full[256];
  int n = cf_future_repr(f, full, sizeof full);
  assert_true(n > 8);
  assert_int_equal((size_t)n, strlen(full));

  /* Like snprintf: the needed length whatever the buffer size. */
  assert_int_equal(cf_future_repr(f, NULL, 0), n);
  char small[6];
  memset(small, '#', sizeof small);
  assert_int_equal(cf_future_repr(f, small, sizeof small), n);
  assert_int_equal(small[sizeof small - 1], '\0');
  assert_memory_equal(small, full, sizeof small - 1);

  char one[1] = {'#'};
  assert_int_equal(cf_future_repr(f, one, 1), n);
  assert_int_equal(one[0], '\0');

  char exact[256];
  assert_int_equal(cf_future_repr(f, exact, (size_t)n + 1), n);
  assert_string_equal(exact, full);

  /* size 0 writes nothing. */
  char untouched[4] = {'#', '#', '#', '#'};
  assert_int_equal(cf_future_repr(f, untouched, 0), n);
  assert_int_equal(untouched[0], '#');

  assert_int_equal(cf_future_repr(f, NULL, 10), CF_EINVAL);
  assert_int_equal(cf_future_repr(NULL, full, sizeof full), CF_EINVAL);
  assert_int_equal(cf_future_repr(NULL, NULL, 0), CF_EINVAL);
  cf_future_release(f);
}

static void test_state_names(void **state) {
  (void)state;
  assert_string_equal(cf_state_name(CF_STATE_PENDING), "pending");
  assert_string_equal(cf_state_name(CF_STATE_RUNNING), "running");
  assert_string_equal(cf_state_name(CF_STATE_CANCELLED), "cancelled");
  assert_string_equal(cf_state_name(CF_STATE_CANCELLED_AND_NOTIFIED),
                      "cancelled");
  assert_string_equal(cf_state_name(CF_STATE_FINISHED), "finished");
  const int bad[] = {-1, 5, 6, 100, CF_EINVAL, -2147483647 - 1, 2147483647};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_non_null(cf_state_name(bad[i]));
    assert_string_equal(cf_state_name(bad[i]), "invalid");
  }
}

/* ------------------------------------------------------------------ */
/* NULL arguments                                                     */
/* ------------------------------------------------------------------ */

static void test_null_arguments(void **state) {
  (void)state;
  atomic_int hits;
  atomic_init(&hits, 0);
  void *v = &marker_c;
  int code = 0;
  const char *msg = NULL;
  char buf[16];

  assert_int_equal(cf_future_create(NULL), CF_EINVAL);
  assert_int_equal(cf_future_cancel(NULL), CF_EINVAL);
  assert_int_equal(cf_future_cancelled(NULL), 0);
  assert_int_equal(cf_future_running(NULL), 0);
  assert_int_equal(cf_future_done(NULL), 0);
  assert_int_equal(cf_future_state(NULL), CF_EINVAL);
  assert_int_equal(cf_future_repr(NULL, buf, sizeof buf), CF_EINVAL);
  assert_int_equal(cf_future_result(NULL, 0, &v), CF_EINVAL);
  assert_int_equal(cf_future_result(NULL, CF_FOREVER, NULL), CF_EINVAL);
  assert_int_equal(cf_future_exception(NULL, 0, &code, &msg), CF_EINVAL);
  assert_int_equal(cf_future_exception(NULL, CF_FOREVER, NULL, NULL),
                   CF_EINVAL);
  assert_int_equal(cf_future_add_done_callback(NULL, count_done, &hits),
                   CF_EINVAL);
  assert_int_equal(cf_future_set_running_or_notify_cancel(NULL), CF_EINVAL);
  assert_int_equal(cf_future_set_result(NULL, &marker_a, dtor_count),
                   CF_EINVAL);
  assert_int_equal(cf_future_set_exception(NULL, 1, "x"), CF_EINVAL);
  assert_null(cf_future_retain(NULL));
  cf_future_release(NULL);

  /* fn NULL on a real future: rejected, nothing registered. */
  cf_future_t *f = new_pending();
  assert_int_equal(cf_future_add_done_callback(f, NULL, &hits), CF_EINVAL);
  assert_int_equal(cf_future_repr(f, NULL, sizeof buf), CF_EINVAL);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), 0);
  assert_int_equal(cf_future_add_done_callback(f, NULL, &hits), CF_EINVAL);
  cf_future_release(f);

  assert_int_equal(atomic_load(&hits), 0);
  assert_int_equal(atomic_load(&dtor_calls), 0);
}

/* ------------------------------------------------------------------ */
/* Executor futures and the job API                                   */
/* ------------------------------------------------------------------ */

/* A gated job that records the thread it runs on and its own future. */
typedef struct probe {
  gate_t gate;
  int use_gate;
  atomic_int ran;
  pthread_t tid;
  cf_future_t *self;
  int state_inside;
  int running_inside;
} probe_t;

static void probe_init(probe_t *p, int use_gate) {
  memset(p, 0, sizeof *p);
  gate_init(&p->gate);
  p->use_gate = use_gate;
  atomic_init(&p->ran, 0);
}

static int probe_job(void *arg, cf_job_t *job) {
  probe_t *p = arg;
  p->tid = pthread_self();
  p->self = cf_job_future(job);
  p->state_inside = cf_future_state(p->self);
  p->running_inside = cf_future_running(p->self);
  atomic_store(&p->ran, 1);
  if (p->use_gate) {
    sem_post(&p->gate.started);
    sem_wait_nointr(&p->gate.open);
  }
  cf_job_return(job, arg, NULL);
  return 0;
}

static void test_exec_pending_and_running(void **state) {
  (void)state;
  cf_executor_t *ex = new_pool(1);
  probe_t a, b;
  probe_init(&a, 1);
  probe_init(&b, 0);
  cf_future_t *fa = NULL, *fb = NULL;
  assert_int_equal(cf_executor_submit(ex, probe_job, &a, NULL, &fa), 0);
  gate_wait_started(&a.gate);
  assert_int_equal(cf_executor_submit(ex, probe_job, &b, count_free, &fb), 0);

  /* The only worker is inside a: a RUNNING, b PENDING behind it. */
  assert_state(fa, CF_STATE_RUNNING, 0, 1, 0);
  assert_state(fb, CF_STATE_PENDING, 0, 0, 0);
  assert_int_equal(a.state_inside, CF_STATE_RUNNING);
  assert_int_equal(a.running_inside, 1);
  assert_ptr_equal(a.self, fa);
  assert_int_equal(cf_future_result(fa, 0, NULL), CF_ETIMEDOUT);
  assert_int_equal(cf_future_result(fb, 0, NULL), CF_ETIMEDOUT);

  rec_t r;
  cb_arg_t args[2];
  rec_init(&r);
  add_recorded(fb, &r, args, 2);

  assert_int_equal(cf_future_cancel(fa), 0);
  assert_int_equal(cf_future_cancel(fb), 1);
  assert_recorded(&r, 2, pthread_self(), fb);
  assert_int_equal(cf_future_cancelled(fb), 1);
  assert_int_equal(cf_future_done(fb), 1);
  assert_int_equal(cf_future_result(fb, CF_FOREVER, NULL), CF_ECANCELLED);
  assert_int_equal(cf_future_cancel(fb), 1);
  assert_int_equal(rec_count(&r), 2);

  gate_open(&a.gate, 1);
  void *v = NULL;
  assert_int_equal(cf_future_result(fa, CF_FOREVER, &v), 0);
  assert_ptr_equal(v, &a);
  assert_int_equal(cf_executor_destroy(ex), 0);

  /* The cancelled job never ran; its argument was destroyed once. */
  assert_int_equal(atomic_load(&b.ran), 0);
  assert_int_equal(atomic_load(&counter_hits), 1);
  assert_int_equal(cf_future_cancelled(fb), 1);
  assert_int_equal(rec_count(&r), 2);
  cf_future_release(fa);
  cf_future_release(fb);
  gate_fini(&a.gate);
  gate_fini(&b.gate);
  rec_fini(&r);
}

static void test_exec_running_finite_timeout(void **state) {
  (void)state;
  cf_executor_t *ex = new_pool(1);
  gate_t g;
  gate_init(&g);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_job, &g, NULL, &f), 0);
  gate_wait_started(&g);
  const int64_t want = (int64_t)(POLL_TIMEOUT * 1e9);
  int64_t t0 = mono_ns();
  assert_int_equal(cf_future_result(f, POLL_TIMEOUT, NULL), CF_ETIMEDOUT);
  int64_t t1 = mono_ns();
  assert_true(t1 - t0 >= want);
  assert_int_equal(cf_future_running(f), 1);

  blocker_t b;
  blocker_start(&b, f, CF_FOREVER, 0);
  gate_open(&g, 1);
  blocker_join(&b);
  assert_int_equal(b.rc, 0);
  assert_ptr_equal(b.value, &g);
  assert_int_equal(cf_executor_destroy(ex), 0);
  cf_future_release(f);
  gate_fini(&g);
}

static void test_exec_callback_in_worker_thread(void **state) {
  (void)state;
  cf_executor_t *ex = new_pool(1);
  probe_t p;
  probe_init(&p, 1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, NULL, &f), 0);
  gate_wait_started(&p.gate);

  rec_t r;
  cb_arg_t args[3];
  rec_init(&r);
  add_recorded(f, &r, args, 3);
  assert_int_equal(rec_count(&r), 0);
  gate_open(&p.gate, 1);
  rec_wait(&r, 3);
  assert_recorded(&r, 3, p.tid, f);
  assert_false(pthread_equal(p.tid, pthread_self()));

  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(rec_count(&r), 3);
  cf_future_release(f);
  gate_fini(&p.gate);
  rec_fini(&r);
}

static void test_exec_job_fail_with_message(void **state) {
  (void)state;
  cf_executor_t *ex = new_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(
      cf_executor_submit(ex, failing_job, (void *)(intptr_t)7, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, CF_FOREVER, &v), CF_EFAILED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_future_exception(f, 0, &code, &msg), 0);
  assert_int_equal(code, 7);
  assert_non_null(msg);
  assert_string_equal(msg, "failed with 7");
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  char buf[256];
  assert_true(cf_future_repr(f, buf, sizeof buf) > 0);
  assert_non_null(strstr(buf, "raised"));
  assert_int_equal(cf_executor_destroy(ex), 0);
  cf_future_release(f);
}

/* cf_job_fail with no format, and with a message longer than any small
 * internal buffer. */
static char long_text[2001];

static int fail_null_fmt_job(void *arg, cf_job_t *job) {
  (void)arg;
  return cf_job_fail(job, -31, NULL);
}

static int fail_long_job(void *arg, cf_job_t *job) {
  (void)arg;
  return cf_job_fail(job, 32, "<%s|%d>", long_text, 99);
}

static void test_exec_job_fail_null_and_long(void **state) {
  (void)state;
  memset(long_text, 'a', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = '\0';
  cf_executor_t *ex = new_pool(1);
  cf_future_t *f1 = NULL, *f2 = NULL;
  assert_int_equal(cf_executor_submit(ex, fail_null_fmt_job, NULL, NULL, &f1),
                   0);
  assert_int_equal(cf_executor_submit(ex, fail_long_job, NULL, NULL, &f2), 0);

  int code = 0;
  const char *msg = "not null";
  assert_int_equal(cf_future_result(f1, CF_FOREVER, NULL), CF_EFAILED);
  assert_int_equal(cf_future_exception(f1, 0, &code, &msg), 0);
  assert_int_equal(code, -31);
  assert_null(msg);

  assert_int_equal(cf_future_result(f2, CF_FOREVER, NULL), CF_EFAILED);
  assert_int_equal(cf_future_exception(f2, 0, &code, &msg), 0);
  assert_int_equal(code, 32);
  assert_non_null(msg);
  assert_int_equal(strlen(msg), strlen(long_text) + 5);
  assert_int_equal(msg[0], '<');
  assert_memory_equal(msg + 1, long_text, strlen(long_text));
  assert_string_equal(msg + 1 + strlen(long_text), "|99>");

  assert_int_equal(cf_executor_destroy(ex), 0);
  cf_future_release(f1);
  cf_future_release(f2);
}

static int return_code_job(void *arg, cf_job_t *job) {
  (void)job;
  return (int)(intptr_t)arg;
}

static void test_exec_job_plain_nonzero_return(void **state) {
  (void)state;
  cf_executor_t *ex = new_pool(2);
  const int codes[] = {5, -1, CF_EINVALID_STATE, 1 << 20};
  cf_future_t *fs[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(cf_executor_submit(ex, return_code_job,
                                        (void *)(intptr_t)codes[i], NULL,
                                        &fs[i]),
                     0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(cf_future_result(fs[i], CF_FOREVER, NULL), CF_EFAILED);
    int code = 0;
    const char *msg = "not null";
    assert_int_equal(cf_future_exception(fs[i], CF_FOREVER, &code, &msg), 0);
    assert_int_equal(code, codes[i]);
    assert_null(msg);
    assert_int_equal(cf_future_cancelled(fs[i]), 0);
  }
  /* Returning 0 without cf_job_return: finished with NULL. */
  cf_future_t *ok = NULL;
  assert_int_equal(cf_executor_submit(ex, return_code_job, NULL, NULL, &ok), 0);
  void *v = &marker_c;
  assert_int_equal(cf_future_result(ok, CF_FOREVER, &v), 0);
  assert_null(v);
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < 4; i++)
    cf_future_release(fs[i]);
  cf_future_release(ok);
}

/* A job that returns values with a destructor, optionally behind a gate,
 * optionally replacing a first value, optionally failing afterwards. */
typedef struct value_job_arg {
  gate_t gate;
  int use_gate;
  void *first; /* returned first, then replaced (if not NULL) */
  void *value;
  cf_free_fn dtor;
  int ret;
} value_job_arg_t;

static int value_job(void *arg, cf_job_t *job) {
  value_job_arg_t *a = arg;
  if (a->use_gate) {
    sem_post(&a->gate.started);
    sem_wait_nointr(&a->gate.open);
  }
  if (a->first != NULL)
    cf_job_return(job, a->first, a->dtor);
  cf_job_return(job, a->value, a->dtor);
  return a->ret;
}

static void value_arg_init(value_job_arg_t *a, void *value, cf_free_fn dtor,
                           int ret) {
  memset(a, 0, sizeof *a);
  gate_init(&a->gate);
  a->value = value;
  a->dtor = dtor;
  a->ret = ret;
}

static void test_exec_job_return_value_dtor(void **state) {
  (void)state;
  int *value = malloc(sizeof *value);
  assert_non_null(value);
  *value = 1234;
  value_job_arg_t a;
  value_arg_init(&a, value, dtor_free_count, 0);
  cf_executor_t *ex = new_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, value_job, &a, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, CF_FOREVER, &v), 0);
  assert_ptr_equal(v, value);
  assert_int_equal(*(int *)v, 1234);
  assert_int_equal(cf_executor_destroy(ex), 0);
  /* The pool is gone; our reference keeps the value alive. */
  assert_int_equal(atomic_load(&dtor_calls), 0);
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_int_equal(*(int *)v, 1234);
  cf_future_t *extra = cf_future_retain(f);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 0);
  cf_future_release(extra);
  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), value);
  gate_fini(&a.gate);
}

static void test_exec_job_return_replaced(void **state) {
  (void)state;
  value_job_arg_t a;
  value_arg_init(&a, &marker_b, dtor_count, 0);
  a.first = &marker_a;
  cf_executor_t *ex = new_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, value_job, &a, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, CF_FOREVER, &v), 0);
  assert_ptr_equal(v, &marker_b);
  assert_int_equal(cf_executor_destroy(ex), 0);
  /* The replaced value was destroyed, the kept one not yet. */
  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), &marker_a);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 2);
  assert_ptr_equal(atomic_load(&dtor_last), &marker_b);
  gate_fini(&a.gate);
}

static void test_exec_job_value_dtor_on_failure(void **state) {
  (void)state;
  value_job_arg_t a;
  value_arg_init(&a, &marker_a, dtor_count, 17);
  cf_executor_t *ex = new_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, value_job, &a, NULL, &f), 0);
  assert_int_equal(cf_future_result(f, CF_FOREVER, NULL), CF_EFAILED);
  int code = 0;
  assert_int_equal(cf_future_exception(f, 0, &code, NULL), 0);
  assert_int_equal(code, 17);
  assert_int_equal(cf_executor_destroy(ex), 0);
  /* The failed job's value was destroyed once, while f is still held. */
  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), &marker_a);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor_calls), 1);
  gate_fini(&a.gate);
}

/* Someone else completes the running job's future: the job's value cannot
 * be taken and is destroyed at once; the first completion stands. */
static void test_exec_job_value_when_completed_elsewhere(void **state) {
  (void)state;
  value_job_arg_t a;
  value_arg_init(&a, &marker_a, dtor_count, 0);
  a.use_gate = 1;
  cf_executor_t *ex = new_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, value_job, &a, NULL, &f), 0);
  gate_wait_started(&a.gate);

  rec_t r;
  cb_arg_t args[1];
  rec_init(&r);
  add_recorded(f, &r, args, 1);
  assert_int_equal(cf_future_set_result(f, &marker_b, dtor2_count), 0);
  assert_recorded(&r, 1, pthread_self(), f);
  gate_open(&a.gate, 1);
  assert_int_equal(cf_executor_destroy(ex), 0);

  assert_int_equal(atomic_load(&dtor_calls), 1);
  assert_ptr_equal(atomic_load(&dtor_last), &marker_a);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_ptr_equal(v, &marker_b);
  assert_int_equal(rec_count(&r), 1);
  assert_int_equal(atomic_load(&dtor2_calls), 0);
  cf_future_release(f);
  assert_int_equal(atomic_load(&dtor2_calls), 1);
  gate_fini(&a.gate);
  rec_fini(&r);
}

/* A job waiting on its own future would wait for ever: CF_EDEADLK. */
typedef struct self_wait {
  cf_future_t *self;
  int rc_result;
  int rc_exception;
  int state;
} self_wait_t;

static int self_wait_job(void *arg, cf_job_t *job) {
  self_wait_t *s = arg;
  s->self = cf_job_future(job);
  s->state = cf_future_state(s->self);
  void *v = NULL;
  s->rc_result = cf_future_result(s->self, CF_FOREVER, &v);
  s->rc_exception = cf_future_exception(s->self, CF_FOREVER, NULL, NULL);
  cf_job_return(job, s, NULL);
  return 0;
}

static void test_exec_deadlk_on_own_future(void **state) {
  (void)state;
  self_wait_t s;
  memset(&s, 0, sizeof s);
  cf_executor_t *ex = new_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, self_wait_job, &s, NULL, &f), 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, CF_FOREVER, &v), 0);
  assert_ptr_equal(v, &s);
  assert_ptr_equal(s.self, f);
  assert_int_equal(s.state, CF_STATE_RUNNING);
  assert_int_equal(s.rc_result, CF_EDEADLK);
  assert_int_equal(s.rc_exception, CF_EDEADLK);
  assert_int_equal(cf_executor_destroy(ex), 0);
  cf_future_release(f);
}

/* cf_job_future is the very future submit handed out, and the worker's
 * future stays valid after the pool is destroyed. */
static void test_exec_job_future_identity(void **state) {
  (void)state;
  probe_t p;
  probe_init(&p, 0);
  cf_executor_t *ex = new_pool(2);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_ptr_equal(p.self, f);
  assert_int_equal(p.state_inside, CF_STATE_RUNNING);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_state(f, CF_STATE_FINISHED, 0, 0, 1);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_ptr_equal(v, &p);
  cf_future_release(f);
  gate_fini(&p.gate);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* queries */
      cmocka_unit_test_setup(test_queries_pending, reset_counters),
      cmocka_unit_test_setup(test_queries_running, reset_counters),
      cmocka_unit_test_setup(test_queries_cancelled, reset_counters),
      cmocka_unit_test_setup(test_queries_notified, reset_counters),
      cmocka_unit_test_setup(test_queries_finished, reset_counters),
      /* cancel */
      cmocka_unit_test_setup(test_cancel_pending, reset_counters),
      cmocka_unit_test_setup(test_cancel_running, reset_counters),
      cmocka_unit_test_setup(test_cancel_notified, reset_counters),
      cmocka_unit_test_setup(test_cancel_finished, reset_counters),
      /* result / exception */
      cmocka_unit_test_setup(test_result_pending_polls, reset_counters),
      cmocka_unit_test_setup(test_result_running_polls, reset_counters),
      cmocka_unit_test_setup(test_result_nan_timeout, reset_counters),
      cmocka_unit_test_setup(test_result_finite_timeout_pending,
                             reset_counters),
      cmocka_unit_test_setup(test_result_finite_timeout_running,
                             reset_counters),
      cmocka_unit_test_setup(test_result_cancelled, reset_counters),
      cmocka_unit_test_setup(test_result_notified, reset_counters),
      cmocka_unit_test_setup(test_result_finished_value, reset_counters),
      cmocka_unit_test_setup(test_result_finished_null_value, reset_counters),
      cmocka_unit_test_setup(test_result_finished_failure, reset_counters),
      cmocka_unit_test_setup(test_exception_message_copied, reset_counters),
      cmocka_unit_test_setup(test_exception_null_message, reset_counters),
      cmocka_unit_test_setup(test_failure_code_like_library_error,
                             reset_counters),
      /* blocked waiters */
      cmocka_unit_test_setup(test_blocked_result_woken_by_cancel,
                             reset_counters),
      cmocka_unit_test_setup(test_blocked_result_woken_by_set_result,
                             reset_counters),
      cmocka_unit_test_setup(test_blocked_running_woken_by_set_exception,
                             reset_counters),
      /* done callbacks */
      cmocka_unit_test_setup(test_callback_pending_deferred, reset_counters),
      cmocka_unit_test_setup(test_callback_running_deferred, reset_counters),
      cmocka_unit_test_setup(test_callback_cancelled_immediate, reset_counters),
      cmocka_unit_test_setup(test_callback_notified_immediate, reset_counters),
      cmocka_unit_test_setup(test_callback_finished_immediate, reset_counters),
      cmocka_unit_test_setup(test_callback_registration_order_many,
                             reset_counters),
      cmocka_unit_test_setup(test_callback_runs_in_completing_thread,
                             reset_counters),
      cmocka_unit_test_setup(test_callback_runs_in_cancelling_thread,
                             reset_counters),
      cmocka_unit_test_setup(test_callback_reentrant_on_finish, reset_counters),
      cmocka_unit_test_setup(test_callback_reentrant_on_cancel, reset_counters),
      cmocka_unit_test_setup(test_callback_races_completion, reset_counters),
      cmocka_unit_test_setup(test_cancel_races_set_result, reset_counters),
      /* set_running_or_notify_cancel */
      cmocka_unit_test_setup(test_set_running_pending, reset_counters),
      cmocka_unit_test_setup(test_set_running_running, reset_counters),
      cmocka_unit_test_setup(test_set_running_cancelled, reset_counters),
      cmocka_unit_test_setup(test_set_running_notified, reset_counters),
      cmocka_unit_test_setup(test_set_running_finished, reset_counters),
      /* set_result / set_exception */
      cmocka_unit_test_setup(test_set_result_pending, reset_counters),
      cmocka_unit_test_setup(test_set_result_running, reset_counters),
      cmocka_unit_test_setup(test_set_exception_pending, reset_counters),
      cmocka_unit_test_setup(test_set_exception_running, reset_counters),
      cmocka_unit_test_setup(test_set_on_cancelled, reset_counters),
      cmocka_unit_test_setup(test_set_on_notified, reset_counters),
      cmocka_unit_test_setup(test_set_on_finished, reset_counters),
      cmocka_unit_test_setup(test_set_exception_code_zero, reset_counters),
      /* references */
      cmocka_unit_test_setup(test_result_dtor_on_last_release, reset_counters),
      cmocka_unit_test_setup(test_release_in_every_state, reset_counters),
      cmocka_unit_test_setup(test_retain_release_null, reset_counters),
      cmocka_unit_test_setup(test_callback_retains_future, reset_counters),
      /* repr */
      cmocka_unit_test_setup(test_repr_each_state, reset_counters),
      cmocka_unit_test_setup(test_repr_buffer_semantics, reset_counters),
      cmocka_unit_test_setup(test_state_names, reset_counters),
      cmocka_unit_test_setup(test_null_arguments, reset_counters),
      /* executor futures and jobs */
      cmocka_unit_test_setup(test_exec_pending_and_running, reset_counters),
      cmocka_unit_test_setup(test_exec_running_finite_timeout, reset_counters),
      cmocka_unit_test_setup(test_exec_callback_in_worker_thread,
                             reset_counters),
      cmocka_unit_test_setup(test_exec_job_fail_with_message, reset_counters),
      cmocka_unit_test_setup(test_exec_job_fail_null_and_long, reset_counters),
      cmocka_unit_test_setup(test_exec_job_plain_nonzero_return,
                             reset_counters),
      cmocka_unit_test_setup(test_exec_job_return_value_dtor, reset_counters),
      cmocka_unit_test_setup(test_exec_job_return_replaced, reset_counters),
      cmocka_unit_test_setup(test_exec_job_value_dtor_on_failure,
                             reset_counters),
      cmocka_unit_test_setup(test_exec_job_value_when_completed_elsewhere,
                             reset_counters),
      cmocka_unit_test_setup(test_exec_deadlk_on_own_future, reset_counters),
      cmocka_unit_test_setup(test_exec_job_future_identity, reset_counters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
