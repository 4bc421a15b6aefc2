/*
 * cf_as_completed: pre-finished futures first in input order, then
 * completion order; duplicates once; the timeout counts from create
 * (gh-73919); cancelled queued futures, including those cancelled by
 * shutdown(cancel_futures), are yielded (gh-87893); the iterator owns a
 * reference to every future until it is destroyed.
 *
 * Completion order is made deterministic by completing standalone futures
 * from the test thread between two next calls, or by opening the gate of
 * one job at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfutures.h"
#include "helpers.h"

#define TAC_ASSERT_RC(expr, want)                                         \
  do {                                                                    \
    int tac_rc_ = (expr);                                                 \
    int tac_want_ = (want);                                               \
    if (tac_rc_ != tac_want_)                                             \
      fail_msg("%s: got %s (%d), want %s (%d)", #expr,                    \
               cf_err_name(tac_rc_), tac_rc_, cf_err_name(tac_want_),     \
               tac_want_);                                                \
  } while (0)

/* Slack for "not before the deadline" checks: rounding of a double
 * timeout to nanoseconds, not a timing threshold. */
#define TAC_SLACK 1e-6

static double tac_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static cf_executor_t *tac_pool(int workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  cf_executor_t *ex = NULL;
  TAC_ASSERT_RC(cf_executor_create(&ex, &opts), 0);
  assert_non_null(ex);
  return ex;
}

static cf_future_t *tac_submit(cf_executor_t *ex, cf_job_fn fn, void *arg) {
  cf_future_t *f = NULL;
  TAC_ASSERT_RC(cf_executor_submit(ex, fn, arg, NULL, &f), 0);
  assert_non_null(f);
  return f;
}

static cf_future_t *tac_future(void) {
  cf_future_t *f = NULL;
  TAC_ASSERT_RC(cf_future_create(&f), 0);
  assert_non_null(f);
  return f;
}

static cf_as_completed_t *tac_create(cf_future_t *const *fs, size_t n,
                                     double timeout) {
  cf_as_completed_t *it = NULL;
  TAC_ASSERT_RC(cf_as_completed_create(fs, n, timeout, &it), 0);
  assert_non_null(it);
  return it;
}

/* next must yield exactly `want`. */
static void tac_expect(cf_as_completed_t *it, cf_future_t *want) {
  cf_future_t *f = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(it, &f), 0);
  assert_ptr_equal(f, want);
  assert_true(cf_future_done(f));
}

static void tac_expect_eof(cf_as_completed_t *it) {
  cf_future_t *f = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(it, &f), CF_EOF);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 0);
}

static void test_empty(void **state) {
  (void)state;
  cf_as_completed_t *it = tac_create(NULL, 0, CF_FOREVER);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 0);
  tac_expect_eof(it);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);

  /* A zero timeout does not turn the end into a timeout. */
  cf_future_t *dummy[1] = {NULL};
  it = tac_create(dummy, 0, 0);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);
}

static void test_prefinished_first_in_input_order(void **state) {
  (void)state;
  cf_future_t *f[5];
  for (int i = 0; i < 5; i++)
    f[i] = tac_future();
  /* Finished before create, in the order 3, 1: yielded as 1, 3. */
  TAC_ASSERT_RC(cf_future_set_result(f[3], NULL, NULL), 0);
  TAC_ASSERT_RC(cf_future_set_exception(f[1], 4, "x"), 0);

  cf_as_completed_t *it = tac_create(f, 5, CF_FOREVER);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 5);
  tac_expect(it, f[1]);
  tac_expect(it, f[3]);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 3);

  /* Then completion order: 4, 0, 2. */
  TAC_ASSERT_RC(cf_future_set_result(f[4], NULL, NULL), 0);
  tac_expect(it, f[4]);
  TAC_ASSERT_RC(cf_future_cancel(f[0]), 1);
  tac_expect(it, f[0]);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 1);
  TAC_ASSERT_RC(cf_future_set_exception(f[2], 1, NULL), 0);
  tac_expect(it, f[2]);
  tac_expect_eof(it);
  tac_expect_eof(it);

  cf_as_completed_destroy(it);
  for (int i = 0; i < 5; i++)
    cf_future_release(f[i]);
}

/* Several futures finish between two next calls: yielded in the order
 * they finished. */
static void test_batch_in_completion_order(void **state) {
  (void)state;
  cf_future_t *f[4];
  for (int i = 0; i < 4; i++)
    f[i] = tac_future();
  cf_as_completed_t *it = tac_create(f, 4, CF_FOREVER);
  TAC_ASSERT_RC(cf_future_set_result(f[2], NULL, NULL), 0);
  TAC_ASSERT_RC(cf_future_set_result(f[0], NULL, NULL), 0);
  TAC_ASSERT_RC(cf_future_cancel(f[3]), 1);
  TAC_ASSERT_RC(cf_future_set_exception(f[1], 2, NULL), 0);
  tac_expect(it, f[2]);
  tac_expect(it, f[0]);
  tac_expect(it, f[3]);
  tac_expect(it, f[1]);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);
  for (int i = 0; i < 4; i++)
    cf_future_release(f[i]);
}

/* Pool jobs finish in the order their gates open. */
static void test_completion_order_with_gates(void **state) {
  (void)state;
  cf_executor_t *ex = tac_pool(3);
  gate_t g[3];
  cf_future_t *f[3];
  for (int i = 0; i < 3; i++) {
    gate_init(&g[i]);
    f[i] = tac_submit(ex, gated_job, &g[i]);
  }
  for (int i = 0; i < 3; i++)
    gate_wait_started(&g[i]);

  cf_as_completed_t *it = tac_create(f, 3, CF_FOREVER);
  const int order[3] = {2, 0, 1};
  for (int k = 0; k < 3; k++) {
    gate_open(&g[order[k]], 1);
    cf_future_t *got = NULL;
    TAC_ASSERT_RC(cf_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, f[order[k]]);
    void *v = NULL;
    TAC_ASSERT_RC(cf_future_result(got, 0, &v), 0);
    assert_ptr_equal(v, &g[order[k]]);
    TAC_ASSERT_RC(cf_as_completed_remaining(it), 2 - k);
  }
  tac_expect_eof(it);
  cf_as_completed_destroy(it);
  for (int i = 0; i < 3; i++)
    cf_future_release(f[i]);
  TAC_ASSERT_RC(cf_executor_destroy(ex), 0);
  for (int i = 0; i < 3; i++)
    gate_fini(&g[i]);
}

static void test_duplicates_yielded_once(void **state) {
  (void)state;
  cf_future_t *a = tac_future();
  cf_future_t *b = tac_future();
  cf_future_t *c = tac_future();
  TAC_ASSERT_RC(cf_future_set_result(c, NULL, NULL), 0);
  cf_future_t *fs[] = {a, c, a, b, c, a, b};
  cf_as_completed_t *it = tac_create(fs, 7, CF_FOREVER);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 3);
  tac_expect(it, c);
  TAC_ASSERT_RC(cf_future_set_result(b, NULL, NULL), 0);
  tac_expect(it, b);
  TAC_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);
  tac_expect(it, a);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);
  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(c);
}

/* The deadline is set by create (gh-73919): once it has passed, the first
 * next reports CF_ETIMEDOUT with every future still left. */
static void test_timeout_counts_from_create(void **state) {
  (void)state;
  cf_future_t *f[3];
  for (int i = 0; i < 3; i++)
    f[i] = tac_future();
  const double timeout = 0.05;
  double t0 = tac_now();
  cf_as_completed_t *it = tac_create(f, 3, timeout);
  /* Let the deadline pass without calling next: a spin on the monotonic
   * clock (not synchronisation; nothing else runs). */
  while (tac_now() - t0 < timeout + 0.01) {
  }
  double t1 = tac_now();
  cf_future_t *got = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  double t2 = tac_now();
  print_message("next after the deadline took %.6f s (timeout %.3f s)\n",
                t2 - t1, timeout);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 3);
  /* Still timed out. */
  TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 3);
  cf_as_completed_destroy(it);
  for (int i = 0; i < 3; i++)
    cf_future_release(f[i]);
}

/* A next that blocks returns CF_ETIMEDOUT, not before the deadline. */
static void test_timeout_blocks_until_deadline(void **state) {
  (void)state;
  cf_future_t *a = tac_future();
  cf_future_t *b = tac_future();
  TAC_ASSERT_RC(cf_future_set_result(b, NULL, NULL), 0);
  cf_future_t *fs[] = {a, b};
  const double timeout = 0.05;
  double t0 = tac_now();
  cf_as_completed_t *it = tac_create(fs, 2, timeout);
  tac_expect(it, b);
  cf_future_t *got = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  assert_true(tac_now() - t0 >= timeout - TAC_SLACK);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 1);
  cf_as_completed_destroy(it);
  cf_future_release(a);
  cf_future_release(b);
}

static void test_timeout_zero(void **state) {
  (void)state;
  cf_future_t *f[4];
  for (int i = 0; i < 4; i++)
    f[i] = tac_future();
  TAC_ASSERT_RC(cf_future_set_result(f[2], NULL, NULL), 0);
  TAC_ASSERT_RC(cf_future_cancel(f[0]), 1);

  double timeouts[] = {0.0, -2.5};
  for (size_t t = 0; t < 2; t++) {
    cf_as_completed_t *it = tac_create(f, 4, timeouts[t]);
    tac_expect(it, f[0]);
    tac_expect(it, f[2]);
    cf_future_t *got = NULL;
    TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
    TAC_ASSERT_RC(cf_as_completed_remaining(it), 2);
    cf_as_completed_destroy(it);
  }
  for (int i = 0; i < 4; i++)
    cf_future_release(f[i]);
}

/* After CF_ETIMEDOUT, a later next still yields what finished since. */
static void test_next_after_timeout_yields_late_finishers(void **state) {
  (void)state;
  cf_future_t *a = tac_future();
  cf_future_t *b = tac_future();
  cf_future_t *fs[] = {a, b};
  cf_as_completed_t *it = tac_create(fs, 2, 0);
  cf_future_t *got = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 2);

  TAC_ASSERT_RC(cf_future_set_result(b, (void *)(intptr_t)5, NULL), 0);
  tac_expect(it, b);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 1);
  TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 1);

  TAC_ASSERT_RC(cf_future_cancel(a), 1);
  tac_expect(it, a);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);
  cf_future_release(a);
  cf_future_release(b);
}

/* Same, with the future finished by a worker: once result() has returned,
 * the future is done, so a next past the deadline yields it instead of
 * CF_ETIMEDOUT. Repeated, since a gap between "done" becoming visible and
 * the iterator being told would show only sometimes. */
static void test_late_finisher_from_worker_after_timeout(void **state) {
  (void)state;
  enum { ROUNDS = 200 };
  cf_executor_t *ex = tac_pool(1);
  int failures = 0;
  for (int r = 0; r < ROUNDS; r++) {
    gate_t g;
    gate_init(&g);
    cf_future_t *f = tac_submit(ex, gated_job, &g);
    cf_as_completed_t *it = tac_create(&f, 1, 0);
    cf_future_t *got = NULL;
    TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
    gate_open(&g, 1);
    TAC_ASSERT_RC(wait_result(f, NULL), 0);
    int rc = cf_as_completed_next(it, &got);
    if (rc != 0 || got != f)
      failures++;
    cf_as_completed_destroy(it);
    cf_future_release(f);
    gate_fini(&g);
  }
  TAC_ASSERT_RC(cf_executor_destroy(ex), 0);
  if (failures != 0)
    fail_msg("%d of %d rounds: a future done by result() was not yielded "
             "after the deadline",
             failures, ROUNDS);
}

/* gh-87893: cancelled queued futures are yielded, before and after
 * create. */
static void test_cancelled_queued_are_yielded(void **state) {
  (void)state;
  cf_executor_t *ex = tac_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f0 = tac_submit(ex, gated_job, &g0);
  gate_wait_started(&g0);
  cf_future_t *f1 = tac_submit(ex, echo_job, NULL);
  cf_future_t *f2 = tac_submit(ex, echo_job, NULL);
  cf_future_t *f3 = tac_submit(ex, echo_job, NULL);
  TAC_ASSERT_RC(cf_future_cancel(f2), 1);

  cf_future_t *fs[] = {f1, f2, f3};
  cf_as_completed_t *it = tac_create(fs, 3, CF_FOREVER);
  tac_expect(it, f2);
  TAC_ASSERT_RC(cf_future_cancel(f3), 1);
  tac_expect(it, f3);
  TAC_ASSERT_RC(cf_future_cancel(f1), 1);
  tac_expect(it, f1);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);

  gate_open(&g0, 1);
  TAC_ASSERT_RC(wait_result(f0, NULL), 0);
  cf_future_release(f0);
  cf_future_release(f1);
  cf_future_release(f2);
  cf_future_release(f3);
  TAC_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

/* gh-87893: futures cancelled by shutdown(cancel_futures) are yielded. */
static void test_shutdown_cancel_futures_are_yielded(void **state) {
  (void)state;
  enum { N = 4 };
  cf_executor_t *ex = tac_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f0 = tac_submit(ex, gated_job, &g0);
  gate_wait_started(&g0);
  cf_future_t *f[N];
  for (int i = 0; i < N; i++)
    f[i] = tac_submit(ex, echo_job, NULL);

  cf_as_completed_t *it = tac_create(f, N, CF_FOREVER);
  TAC_ASSERT_RC(cf_executor_shutdown(ex, false, true), 0);
  int seen[N] = {0};
  for (int k = 0; k < N; k++) {
    cf_future_t *got = NULL;
    TAC_ASSERT_RC(cf_as_completed_next(it, &got), 0);
    assert_true(cf_future_cancelled(got));
    int idx = -1;
    for (int i = 0; i < N; i++)
      if (f[i] == got)
        idx = i;
    assert_true(idx >= 0);
    assert_int_equal(seen[idx], 0);
    seen[idx] = 1;
  }
  tac_expect_eof(it);
  cf_as_completed_destroy(it);

  /* f0 was running: still pending for as_completed with timeout 0. */
  it = tac_create(&f0, 1, 0);
  cf_future_t *got = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  gate_open(&g0, 1);
  TAC_ASSERT_RC(wait_result(f0, NULL), 0);
  tac_expect(it, f0);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);

  cf_future_release(f0);
  for (int i = 0; i < N; i++)
    cf_future_release(f[i]);
  TAC_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

/* Completion from another thread wakes a blocked next. */
typedef struct tac_completer {
  cf_future_t *fs[8];
  int n;
  int rc[8];
} tac_completer_t;

static void *tac_complete(void *arg) {
  tac_completer_t *c = arg;
  for (int i = 0; i < c->n; i++)
    c->rc[i] = cf_future_set_result(c->fs[i], (void *)(intptr_t)(i + 1),
                                    NULL);
  return NULL;
}

static void test_completed_from_other_thread(void **state) {
  (void)state;
  cf_future_t *f[3];
  for (int i = 0; i < 3; i++)
    f[i] = tac_future();
  cf_as_completed_t *it = tac_create(f, 3, CF_FOREVER);
  tac_completer_t c = {.fs = {f[1], f[2], f[0]}, .n = 3};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tac_complete, &c), 0);
  /* The completion order is 1, 2, 0 whatever the interleaving. */
  tac_expect(it, f[1]);
  tac_expect(it, f[2]);
  tac_expect(it, f[0]);
  tac_expect_eof(it);
  assert_int_equal(pthread_join(th, NULL), 0);
  for (int i = 0; i < 3; i++)
    TAC_ASSERT_RC(c.rc[i], 0);
  cf_as_completed_destroy(it);
  for (int i = 0; i < 3; i++)
    cf_future_release(f[i]);
}

/* Mixed outcomes from the pool: each is yielded with its own outcome. */
static void test_mixed_outcomes_from_pool(void **state) {
  (void)state;
  cf_executor_t *ex = tac_pool(2);
  gate_t g;
  gate_init(&g);
  cf_future_t *f[4];
  f[0] = tac_submit(ex, gated_job, &g);
  f[1] = tac_submit(ex, failing_job, (void *)(intptr_t)13);
  gate_wait_started(&g);
  TAC_ASSERT_RC(wait_result(f[1], NULL), CF_EFAILED);
  /* One worker is blocked in f[0], the other is free. */
  f[2] = tac_submit(ex, echo_job, (void *)(intptr_t)2);
  TAC_ASSERT_RC(wait_result(f[2], NULL), 0);
  f[3] = tac_future();

  cf_as_completed_t *it = tac_create(f, 4, CF_FOREVER);
  tac_expect(it, f[1]);
  tac_expect(it, f[2]);
  gate_open(&g, 1);
  tac_expect(it, f[0]);
  TAC_ASSERT_RC(cf_future_cancel(f[3]), 1);
  tac_expect(it, f[3]);
  tac_expect_eof(it);
  cf_as_completed_destroy(it);

  int code = 0;
  TAC_ASSERT_RC(cf_future_exception(f[1], 0, &code, NULL), 0);
  assert_int_equal(code, 13);
  for (int i = 0; i < 4; i++)
    cf_future_release(f[i]);
  TAC_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

static void test_invalid_arguments(void **state) {
  (void)state;
  cf_future_t *a = tac_future();
  cf_future_t *fs[] = {a};
  cf_future_t *with_null[] = {a, NULL};
  cf_as_completed_t *it = NULL;

  TAC_ASSERT_RC(cf_as_completed_create(fs, 1, NAN, &it), CF_EINVAL);
  TAC_ASSERT_RC(cf_as_completed_create(fs, 1, -NAN, &it), CF_EINVAL);
  TAC_ASSERT_RC(cf_as_completed_create(NULL, 1, 0, &it), CF_EINVAL);
  TAC_ASSERT_RC(cf_as_completed_create(with_null, 2, CF_FOREVER, &it),
                CF_EINVAL);
  TAC_ASSERT_RC(cf_as_completed_create(fs, 1, 0, NULL), CF_EINVAL);

  cf_future_t *got = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(NULL, &got), CF_EINVAL);
  TAC_ASSERT_RC(cf_as_completed_remaining(NULL), CF_EINVAL);
  cf_as_completed_destroy(NULL);

  /* Failed creates left no waiter on a. */
  TAC_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);
  cf_future_release(a);
}

/* The iterator keeps its own references: the caller may drop its own
 * before iterating. Destroying mid-iteration frees everything (valgrind
 * checks the rest). */
static atomic_int tac_live;

static void tac_value_free(void *p) {
  atomic_fetch_sub(&tac_live, 1);
  free(p);
}

static void *tac_value_new(void) {
  void *p = malloc(16);
  if (p != NULL)
    atomic_fetch_add(&tac_live, 1);
  return p;
}

static void test_iterator_owns_references(void **state) {
  (void)state;
  enum { N = 5 };
  atomic_store(&tac_live, 0);
  cf_future_t *f[N];
  void *vals[N];
  for (int i = 0; i < N; i++) {
    f[i] = tac_future();
    vals[i] = tac_value_new();
    assert_non_null(vals[i]);
  }
  TAC_ASSERT_RC(cf_future_set_result(f[0], vals[0], tac_value_free), 0);
  cf_as_completed_t *it = tac_create(f, N, CF_FOREVER);
  for (int i = 1; i < N; i++)
    TAC_ASSERT_RC(cf_future_set_result(f[i], vals[i], tac_value_free), 0);
  for (int i = 0; i < N; i++)
    cf_future_release(f[i]);
  /* The iterator's references keep the values alive. */
  assert_int_equal(atomic_load(&tac_live), N);
  for (int i = 0; i < N; i++) {
    cf_future_t *got = NULL;
    TAC_ASSERT_RC(cf_as_completed_next(it, &got), 0);
    void *v = NULL;
    TAC_ASSERT_RC(cf_future_result(got, 0, &v), 0);
    assert_ptr_equal(v, vals[i]);
  }
  tac_expect_eof(it);
  assert_int_equal(atomic_load(&tac_live), N);
  cf_as_completed_destroy(it);
  assert_int_equal(atomic_load(&tac_live), 0);
}

static void test_destroy_mid_iteration(void **state) {
  (void)state;
  enum { N = 4 };
  atomic_store(&tac_live, 0);
  cf_executor_t *ex = tac_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f[N];
  f[0] = tac_future();
  f[1] = tac_future();
  void *v1 = tac_value_new();
  assert_non_null(v1);
  TAC_ASSERT_RC(cf_future_set_result(f[1], v1, tac_value_free), 0);
  f[2] = tac_submit(ex, gated_job, &g0); /* running, blocked */
  gate_wait_started(&g0);
  f[3] = tac_submit(ex, echo_job, NULL); /* queued */

  cf_as_completed_t *it = tac_create(f, N, CF_FOREVER);
  tac_expect(it, f[1]);
  TAC_ASSERT_RC(cf_as_completed_remaining(it), 3);
  cf_as_completed_destroy(it);

  /* The futures still work after the iterator is gone, and completing
   * them does not reach into the freed iterator. */
  atomic_int hits;
  atomic_init(&hits, 0);
  TAC_ASSERT_RC(cf_future_add_done_callback(f[0], count_done, &hits), 0);
  TAC_ASSERT_RC(cf_future_set_result(f[0], NULL, NULL), 0);
  assert_int_equal(atomic_load(&hits), 1);
  TAC_ASSERT_RC(cf_future_cancel(f[3]), 1);
  gate_open(&g0, 1);
  TAC_ASSERT_RC(wait_result(f[2], NULL), 0);

  assert_int_equal(atomic_load(&tac_live), 1);
  for (int i = 0; i < N; i++)
    cf_future_release(f[i]);
  assert_int_equal(atomic_load(&tac_live), 0);

  /* Destroy right after create, and destroy after a timeout. */
  cf_future_t *p = tac_future();
  it = tac_create(&p, 1, CF_FOREVER);
  cf_as_completed_destroy(it);
  it = tac_create(&p, 1, 0);
  cf_future_t *got = NULL;
  TAC_ASSERT_RC(cf_as_completed_next(it, &got), CF_ETIMEDOUT);
  cf_as_completed_destroy(it);
  TAC_ASSERT_RC(cf_future_set_result(p, NULL, NULL), 0);
  cf_future_release(p);

  TAC_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

/* Many futures completed in a shuffled order by another thread: each is
 * yielded once, in completion order (recorded by the completer). */
typedef struct tac_many {
  cf_future_t **fs;
  size_t n;
  unsigned seed;
  cf_future_t **order; /* completion order, filled by the completer */
  atomic_int bad;
} tac_many_t;

static void *tac_complete_many(void *arg) {
  tac_many_t *m = arg;
  for (size_t i = 0; i < m->n; i++)
    m->order[i] = m->fs[i];
  for (size_t i = m->n; i > 1; i--) {
    size_t j = (size_t)rand_r(&m->seed) % i;
    cf_future_t *t = m->order[i - 1];
    m->order[i - 1] = m->order[j];
    m->order[j] = t;
  }
  for (size_t i = 0; i < m->n; i++) {
    int rc = (i % 2) ? cf_future_set_result(m->order[i], NULL, NULL)
                     : (cf_future_cancel(m->order[i]) == 1 ? 0 : -1);
    if (rc != 0)
      atomic_fetch_add(&m->bad, 1);
  }
  return NULL;
}

static void test_many_in_completion_order(void **state) {
  (void)state;
  enum { N = 200 };
  cf_future_t *fs[N];
  cf_future_t *order[N];
  for (size_t i = 0; i < N; i++)
    fs[i] = tac_future();
  cf_as_completed_t *it = tac_create(fs, N, CF_FOREVER);
  tac_many_t m = {.fs = fs, .n = N, .seed = 4242u, .order = order};
  atomic_init(&m.bad, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tac_complete_many, &m), 0);
  cf_future_t *got[N];
  for (size_t i = 0; i < N; i++)
    TAC_ASSERT_RC(cf_as_completed_next(it, &got[i]), 0);
  tac_expect_eof(it);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(atomic_load(&m.bad), 0);
  for (size_t i = 0; i < N; i++)
    assert_ptr_equal(got[i], order[i]);
  cf_as_completed_destroy(it);
  for (size_t i = 0; i < N; i++)
    cf_future_release(fs[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_prefinished_first_in_input_order),
      cmocka_unit_test(test_batch_in_completion_order),
      cmocka_unit_test(test_completion_order_with_gates),
      cmocka_unit_test(test_duplicates_yielded_once),
      cmocka_unit_test(test_timeout_counts_from_create),
      cmocka_unit_test(test_timeout_blocks_until_deadline),
      cmocka_unit_test(test_timeout_zero),
      cmocka_unit_test(test_next_after_timeout_yields_late_finishers),
      cmocka_unit_test(test_late_finisher_from_worker_after_timeout),
      cmocka_unit_test(test_cancelled_queued_are_yielded),
      cmocka_unit_test(test_shutdown_cancel_futures_are_yielded),
      cmocka_unit_test(test_completed_from_other_thread),
      cmocka_unit_test(test_mixed_outcomes_from_pool),
      cmocka_unit_test(test_invalid_arguments),
      cmocka_unit_test(test_iterator_owns_references),
      cmocka_unit_test(test_destroy_mid_iteration),
      cmocka_unit_test(test_many_in_completion_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
