/*
 * cf_wait: partition, duplicates, the three return_when conditions,
 * timeouts, argument errors, and futures cancelled while queued (done at
 * once, unlike CPython: gh-92001, gh-109934).
 *
 * Schedules are made deterministic with gates (tests/helpers.h): a job that
 * must not finish yet blocks on its gate. Where a third party has to act
 * while the test thread is inside cf_wait, a helper thread does it and is
 * joined afterwards; the asserted outcome holds whichever runs first.
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

#define TW_ASSERT_RC(expr, want)                                          \
  do {                                                                    \
    int tw_rc_ = (expr);                                                  \
    int tw_want_ = (want);                                                \
    if (tw_rc_ != tw_want_)                                               \
      fail_msg("%s: got %s (%d), want %s (%d)", #expr,                    \
               cf_err_name(tw_rc_), tw_rc_, cf_err_name(tw_want_),        \
               tw_want_);                                                 \
  } while (0)

#define TW_MAXF 16

/* Slack for "not before the deadline" checks: rounding of a double
 * timeout to nanoseconds, not a timing threshold. */
#define TW_SLACK 1e-6

static double tw_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static cf_executor_t *tw_pool(int workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  cf_executor_t *ex = NULL;
  TW_ASSERT_RC(cf_executor_create(&ex, &opts), 0);
  assert_non_null(ex);
  return ex;
}

static cf_future_t *tw_submit(cf_executor_t *ex, cf_job_fn fn, void *arg) {
  cf_future_t *f = NULL;
  TW_ASSERT_RC(cf_executor_submit(ex, fn, arg, NULL, &f), 0);
  assert_non_null(f);
  return f;
}

static cf_future_t *tw_future(void) {
  cf_future_t *f = NULL;
  TW_ASSERT_RC(cf_future_create(&f), 0);
  assert_non_null(f);
  return f;
}

static int tw_contains(cf_future_t *const *arr, size_t n,
                       const cf_future_t *f) {
  for (size_t i = 0; i < n; i++)
    if (arr[i] == f)
      return 1;
  return 0;
}

/* Run cf_wait with arrays of TW_MAXF entries, pre-filled with garbage so
 * that the counts are known to be written. */
typedef struct tw_result {
  cf_future_t *done[TW_MAXF];
  cf_future_t *not_done[TW_MAXF];
  size_t ndone;
  size_t nnot_done;
} tw_result_t;

static int tw_wait(cf_future_t *const *fs, size_t n, double timeout,
                   int return_when, tw_result_t *r) {
  assert_true(n <= TW_MAXF);
  memset(r, 0, sizeof(*r));
  r->ndone = 999;
  r->nnot_done = 999;
  return cf_wait(fs, n, timeout, return_when, r->done, &r->ndone,
                 r->not_done, &r->nnot_done);
}

/* ---- helper threads ------------------------------------------------ */

/* Open gates one after the other, in array order. */
typedef struct tw_opener {
  gate_t *gates[TW_MAXF];
  int n;
} tw_opener_t;

static void *tw_open_gates(void *arg) {
  tw_opener_t *o = arg;
  for (int i = 0; i < o->n; i++)
    gate_open(o->gates[i], 1);
  return NULL;
}

/* Complete standalone futures: action 'r' result, 'e' exception, 'c'
 * cancel, in array order. Records return codes for the test thread. */
typedef struct tw_completer {
  cf_future_t *fs[TW_MAXF];
  char action[TW_MAXF];
  int n;
  int rc[TW_MAXF];
} tw_completer_t;

static void *tw_complete(void *arg) {
  tw_completer_t *c = arg;
  for (int i = 0; i < c->n; i++) {
    switch (c->action[i]) {
    case 'r':
      c->rc[i] = cf_future_set_result(c->fs[i], (void *)(intptr_t)(i + 1),
                                      NULL);
      break;
    case 'e':
      c->rc[i] = cf_future_set_exception(c->fs[i], 40 + i, "boom");
      break;
    case 'c':
      c->rc[i] = cf_future_cancel(c->fs[i]);
      break;
    default:
      c->rc[i] = -1000;
    }
  }
  return NULL;
}

typedef struct tw_shutdowner {
  cf_executor_t *ex;
  int rc;
} tw_shutdowner_t;

static void *tw_shutdown_cancel(void *arg) {
  tw_shutdowner_t *s = arg;
  s->rc = cf_executor_shutdown(s->ex, false, true);
  return NULL;
}

/* ---- tests --------------------------------------------------------- */

static void test_empty_list(void **state) {
  (void)state;
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(NULL, 0, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 0);
  assert_int_equal(r.nnot_done, 0);

  /* Non-NULL array with n == 0, every return_when, must not block. */
  cf_future_t *dummy[1] = {NULL};
  int modes[] = {CF_FIRST_COMPLETED, CF_FIRST_EXCEPTION, CF_ALL_COMPLETED};
  for (size_t i = 0; i < 3; i++) {
    TW_ASSERT_RC(tw_wait(dummy, 0, CF_FOREVER, modes[i], &r), 0);
    assert_int_equal(r.ndone, 0);
    assert_int_equal(r.nnot_done, 0);
  }
}

static void test_duplicates_collapse(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  TW_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);

  cf_future_t *fs[] = {a, a, b, a, b};
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(fs, 5, 0, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.done[0], a);
  assert_ptr_equal(r.not_done[0], b);

  /* All duplicates of done futures: returns at once, each once. */
  TW_ASSERT_RC(cf_future_set_result(b, NULL, NULL), 0);
  TW_ASSERT_RC(tw_wait(fs, 5, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 2);
  assert_int_equal(r.nnot_done, 0);
  assert_true(tw_contains(r.done, r.ndone, a));
  assert_true(tw_contains(r.done, r.ndone, b));

  cf_future_release(a);
  cf_future_release(b);
}

static void test_first_completed_waits_for_one(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(3);
  gate_t g[3];
  cf_future_t *f[3];
  for (int i = 0; i < 3; i++) {
    gate_init(&g[i]);
    f[i] = tw_submit(ex, gated_job, &g[i]);
  }
  for (int i = 0; i < 3; i++)
    gate_wait_started(&g[i]);

  tw_opener_t op = {.gates = {&g[1]}, .n = 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_open_gates, &op), 0);
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(f, 3, CF_FOREVER, CF_FIRST_COMPLETED, &r), 0);
  assert_int_equal(pthread_join(th, NULL), 0);

  /* f[0] and f[2] are still blocked on their gates. */
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], f[1]);
  assert_int_equal(r.nnot_done, 2);
  assert_true(tw_contains(r.not_done, 2, f[0]));
  assert_true(tw_contains(r.not_done, 2, f[2]));
  assert_true(cf_future_running(f[0]));
  assert_true(cf_future_running(f[2]));

  gate_open(&g[0], 1);
  gate_open(&g[2], 1);
  for (int i = 0; i < 3; i++) {
    void *v = NULL;
    TW_ASSERT_RC(wait_result(f[i], &v), 0);
    assert_ptr_equal(v, &g[i]);
    cf_future_release(f[i]);
  }
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  for (int i = 0; i < 3; i++)
    gate_fini(&g[i]);
}

static void test_first_completed_already_done(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *c = tw_future();
  TW_ASSERT_RC(cf_future_set_result(b, NULL, NULL), 0);

  cf_future_t *fs[] = {a, b, c};
  tw_result_t r;
  /* b is done: CF_FOREVER must not block. */
  TW_ASSERT_RC(tw_wait(fs, 3, CF_FOREVER, CF_FIRST_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], b);
  assert_int_equal(r.nnot_done, 2);
  assert_true(tw_contains(r.not_done, 2, a));
  assert_true(tw_contains(r.not_done, 2, c));

  /* A failure counts as a completion as well. */
  TW_ASSERT_RC(cf_future_set_exception(c, 3, NULL), 0);
  cf_future_t *fs2[] = {a, c};
  TW_ASSERT_RC(tw_wait(fs2, 2, CF_FOREVER, CF_FIRST_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], c);
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.not_done[0], a);

  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(c);
}

static void test_first_completed_standalone_other_thread(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *dups[] = {a, b, b, a};

  tw_completer_t c = {.fs = {b}, .action = {'r'}, .n = 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_complete, &c), 0);
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(dups, 4, CF_FOREVER, CF_FIRST_COMPLETED, &r), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  TW_ASSERT_RC(c.rc[0], 0);

  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], b);
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.not_done[0], a);

  cf_future_release(a);
  cf_future_release(b);
}

static void test_first_exception_stops_at_failure(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(3);
  gate_t g0, g2;
  gate_init(&g0);
  gate_init(&g2);
  cf_future_t *f[3];
  f[0] = tw_submit(ex, gated_job, &g0);
  f[1] = tw_submit(ex, failing_job, (void *)(intptr_t)7);
  f[2] = tw_submit(ex, gated_job, &g2);

  tw_result_t r;
  TW_ASSERT_RC(tw_wait(f, 3, CF_FOREVER, CF_FIRST_EXCEPTION, &r), 0);
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], f[1]);
  assert_int_equal(r.nnot_done, 2);
  assert_true(tw_contains(r.not_done, 2, f[0]));
  assert_true(tw_contains(r.not_done, 2, f[2]));

  int code = 0;
  const char *msg = NULL;
  TW_ASSERT_RC(cf_future_exception(f[1], 0, &code, &msg), 0);
  assert_int_equal(code, 7);
  assert_non_null(msg);
  assert_string_equal(msg, "failed with 7");

  gate_open(&g0, 1);
  gate_open(&g2, 1);
  for (int i = 0; i < 3; i++)
    cf_future_release(f[i]);
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
  gate_fini(&g2);
}

static void test_first_exception_already_failed(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *c = tw_future();
  TW_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);
  TW_ASSERT_RC(cf_future_set_exception(b, 3, "x"), 0);

  cf_future_t *fs[] = {a, b, c};
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(fs, 3, CF_FOREVER, CF_FIRST_EXCEPTION, &r), 0);
  assert_int_equal(r.ndone, 2);
  assert_true(tw_contains(r.done, 2, a));
  assert_true(tw_contains(r.done, 2, b));
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.not_done[0], c);

  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(c);
}

/* A cancellation is a completion, not an exception: FIRST_EXCEPTION with a
 * cancelled and a pending future runs to its deadline. */
static void test_first_exception_ignores_cancel(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *ok = tw_future();
  TW_ASSERT_RC(cf_future_cancel(a), 1);
  TW_ASSERT_RC(cf_future_set_result(ok, NULL, NULL), 0);

  cf_future_t *fs[] = {a, ok, b};
  const double timeout = 0.05;
  tw_result_t r;
  double t0 = tw_now();
  TW_ASSERT_RC(tw_wait(fs, 3, timeout, CF_FIRST_EXCEPTION, &r), 0);
  double t1 = tw_now();
  assert_true(t1 - t0 >= timeout - TW_SLACK);
  assert_int_equal(r.ndone, 2);
  assert_true(tw_contains(r.done, 2, a));
  assert_true(tw_contains(r.done, 2, ok));
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.not_done[0], b);

  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(ok);
}

/* FIRST_EXCEPTION with no failure waits for all; a cancellation during the
 * wait does not end it. One worker runs f0 (gated); f1, f2 are queued; a
 * helper cancels f1, then lets f0 and thus f2 finish. */
static void test_first_exception_no_failure_waits_all(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f[3];
  f[0] = tw_submit(ex, gated_job, &g0);
  gate_wait_started(&g0);
  f[1] = tw_submit(ex, echo_job, (void *)(intptr_t)1);
  f[2] = tw_submit(ex, echo_job, (void *)(intptr_t)2);

  tw_completer_t c = {.fs = {f[1]}, .action = {'c'}, .n = 1};
  pthread_t th1, th2;
  assert_int_equal(pthread_create(&th1, NULL, tw_complete, &c), 0);
  tw_opener_t op = {.gates = {&g0}, .n = 1};
  /* The opener starts after the cancel so that f1 cannot run first. */
  assert_int_equal(pthread_join(th1, NULL), 0);
  TW_ASSERT_RC(c.rc[0], 1);
  assert_int_equal(pthread_create(&th2, NULL, tw_open_gates, &op), 0);

  tw_result_t r;
  TW_ASSERT_RC(tw_wait(f, 3, CF_FOREVER, CF_FIRST_EXCEPTION, &r), 0);
  assert_int_equal(pthread_join(th2, NULL), 0);
  assert_int_equal(r.ndone, 3);
  assert_int_equal(r.nnot_done, 0);
  assert_true(cf_future_cancelled(f[1]));
  void *v = NULL;
  TW_ASSERT_RC(cf_future_result(f[2], 0, &v), 0);
  assert_ptr_equal(v, (void *)(intptr_t)2);

  for (int i = 0; i < 3; i++)
    cf_future_release(f[i]);
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

/* Same, with the cancellation racing with the wait: whichever comes first,
 * a cancel never ends a FIRST_EXCEPTION wait while futures are pending. */
static void test_first_exception_cancel_during_wait(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *c = tw_future();
  tw_completer_t comp = {
      .fs = {a, b, c}, .action = {'c', 'r', 'r'}, .n = 3};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_complete, &comp), 0);
  cf_future_t *fs[] = {a, b, c};
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(fs, 3, CF_FOREVER, CF_FIRST_EXCEPTION, &r), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  TW_ASSERT_RC(comp.rc[0], 1);
  TW_ASSERT_RC(comp.rc[1], 0);
  TW_ASSERT_RC(comp.rc[2], 0);
  assert_int_equal(r.ndone, 3);
  assert_int_equal(r.nnot_done, 0);
  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(c);
}

/* FIRST_EXCEPTION after only successes: not done before the deadline. */
static void test_first_exception_success_is_not_enough(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  TW_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);
  cf_future_t *fs[] = {a, b};
  const double timeout = 0.03;
  tw_result_t r;
  double t0 = tw_now();
  TW_ASSERT_RC(tw_wait(fs, 2, timeout, CF_FIRST_EXCEPTION, &r), 0);
  assert_true(tw_now() - t0 >= timeout - TW_SLACK);
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], a);
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.not_done[0], b);
  cf_future_release(a);
  cf_future_release(b);
}

static void test_all_completed(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(2);
  gate_t g0, g1;
  gate_init(&g0);
  gate_init(&g1);
  cf_future_t *f[5];
  f[0] = tw_submit(ex, gated_job, &g0);
  f[1] = tw_submit(ex, gated_job, &g1);
  f[2] = tw_submit(ex, failing_job, (void *)(intptr_t)9);
  f[3] = tw_submit(ex, echo_job, (void *)(intptr_t)3);
  f[4] = tw_submit(ex, echo_job, (void *)(intptr_t)4);
  /* Both workers are blocked, so f[4] is still queued: cancel it. */
  gate_wait_started(&g0);
  gate_wait_started(&g1);
  TW_ASSERT_RC(cf_future_cancel(f[4]), 1);

  tw_opener_t op = {.gates = {&g1, &g0}, .n = 2};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_open_gates, &op), 0);
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(f, 5, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(pthread_join(th, NULL), 0);

  assert_int_equal(r.ndone, 5);
  assert_int_equal(r.nnot_done, 0);
  for (int i = 0; i < 5; i++) {
    assert_true(tw_contains(r.done, 5, f[i]));
    assert_true(cf_future_done(f[i]));
  }
  TW_ASSERT_RC(cf_future_result(f[2], 0, NULL), CF_EFAILED);
  TW_ASSERT_RC(cf_future_result(f[4], 0, NULL), CF_ECANCELLED);

  for (int i = 0; i < 5; i++)
    cf_future_release(f[i]);
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
  gate_fini(&g1);
}

static void test_timeout_is_not_an_error(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *c = tw_future();
  TW_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);

  cf_future_t *fs[] = {b, a, c};
  const double timeout = 0.05;
  tw_result_t r;
  double t0 = tw_now();
  TW_ASSERT_RC(tw_wait(fs, 3, timeout, CF_ALL_COMPLETED, &r), 0);
  assert_true(tw_now() - t0 >= timeout - TW_SLACK);
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], a);
  assert_int_equal(r.nnot_done, 2);
  assert_true(tw_contains(r.not_done, 2, b));
  assert_true(tw_contains(r.not_done, 2, c));

  /* FIRST_COMPLETED with nothing done: empty done set after the timeout. */
  cf_future_t *fs2[] = {b, c};
  t0 = tw_now();
  TW_ASSERT_RC(tw_wait(fs2, 2, 0.02, CF_FIRST_COMPLETED, &r), 0);
  assert_true(tw_now() - t0 >= 0.02 - TW_SLACK);
  assert_int_equal(r.ndone, 0);
  assert_int_equal(r.nnot_done, 2);

  cf_future_release(a);
  cf_future_release(b);
  cf_future_release(c);
}

static void test_timeout_zero_polls(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  TW_ASSERT_RC(cf_future_set_exception(a, 1, "x"), 0);
  cf_future_t *fs[] = {a, b};
  double timeouts[] = {0.0, -1.0, -INFINITY};
  int modes[] = {CF_FIRST_COMPLETED, CF_FIRST_EXCEPTION, CF_ALL_COMPLETED};
  tw_result_t r;
  for (size_t t = 0; t < 3; t++) {
    for (size_t m = 0; m < 3; m++) {
      TW_ASSERT_RC(tw_wait(fs, 2, timeouts[t], modes[m], &r), 0);
      assert_int_equal(r.ndone, 1);
      assert_ptr_equal(r.done[0], a);
      assert_int_equal(r.nnot_done, 1);
      assert_ptr_equal(r.not_done[0], b);
    }
  }
  /* Nothing done at all: polls and returns an empty done set. */
  cf_future_t *fs2[] = {b};
  TW_ASSERT_RC(tw_wait(fs2, 1, 0, CF_FIRST_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 0);
  assert_int_equal(r.nnot_done, 1);
  cf_future_release(a);
  cf_future_release(b);
}

static void test_invalid_arguments(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *fs[] = {a};
  cf_future_t *with_null[] = {a, NULL};
  tw_result_t r;

  TW_ASSERT_RC(tw_wait(fs, 1, NAN, CF_ALL_COMPLETED, &r), CF_EINVAL);
  TW_ASSERT_RC(tw_wait(fs, 1, -NAN, CF_FIRST_COMPLETED, &r), CF_EINVAL);
  /* a is pending, so even CPython's lazy check would see these. */
  TW_ASSERT_RC(tw_wait(fs, 1, 0, 0, &r), CF_EINVAL);
  TW_ASSERT_RC(tw_wait(fs, 1, 0, 4, &r), CF_EINVAL);
  TW_ASSERT_RC(tw_wait(fs, 1, 0, -1, &r), CF_EINVAL);
  TW_ASSERT_RC(tw_wait(fs, 1, CF_FOREVER, 42, &r), CF_EINVAL);
  TW_ASSERT_RC(tw_wait(with_null, 2, 0, CF_ALL_COMPLETED, &r), CF_EINVAL);
  TW_ASSERT_RC(tw_wait(with_null, 2, CF_FOREVER, CF_FIRST_COMPLETED, &r),
               CF_EINVAL);
  TW_ASSERT_RC(tw_wait(NULL, 1, 0, CF_ALL_COMPLETED, &r), CF_EINVAL);
  TW_ASSERT_RC(tw_wait(NULL, 3, CF_FOREVER, CF_ALL_COMPLETED, &r), CF_EINVAL);

  /* A failed call left nothing behind: a completes normally, and a later
   * wait works. */
  TW_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);
  TW_ASSERT_RC(tw_wait(fs, 1, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 1);
  cf_future_release(a);
}

/* gh-92001 / gh-109934: a future cancelled while queued is done for wait
 * at once, although no worker has dequeued it. */
static void test_cancelled_queued_counts_as_done(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f0 = tw_submit(ex, gated_job, &g0);
  gate_wait_started(&g0);
  cf_future_t *f1 = tw_submit(ex, echo_job, NULL);
  cf_future_t *f2 = tw_submit(ex, echo_job, NULL);
  TW_ASSERT_RC(cf_future_cancel(f1), 1);
  assert_int_equal(cf_future_state(f1), CF_STATE_CANCELLED);

  cf_future_t *fs[] = {f2, f1};
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(fs, 2, CF_FOREVER, CF_FIRST_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], f1);
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.not_done[0], f2);

  TW_ASSERT_RC(tw_wait(fs, 2, 0, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], f1);

  /* Only the cancelled one: ALL_COMPLETED with no time limit returns. */
  TW_ASSERT_RC(tw_wait(&f1, 1, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.nnot_done, 0);

  gate_open(&g0, 1);
  TW_ASSERT_RC(wait_result(f2, NULL), 0);
  TW_ASSERT_RC(wait_result(f1, NULL), CF_ECANCELLED);
  cf_future_release(f0);
  cf_future_release(f1);
  cf_future_release(f2);
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

/* A cancel of a queued future from another thread wakes a waiter. */
static void test_cancel_during_wait_wakes(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f0 = tw_submit(ex, gated_job, &g0);
  gate_wait_started(&g0);
  cf_future_t *f1 = tw_submit(ex, echo_job, NULL);
  cf_future_t *f2 = tw_submit(ex, echo_job, NULL);

  tw_completer_t c = {.fs = {f2}, .action = {'c'}, .n = 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_complete, &c), 0);
  cf_future_t *fs[] = {f1, f2};
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(fs, 2, CF_FOREVER, CF_FIRST_COMPLETED, &r), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  TW_ASSERT_RC(c.rc[0], 1);
  /* The only worker is blocked: f1 cannot have finished. */
  assert_int_equal(r.ndone, 1);
  assert_ptr_equal(r.done[0], f2);
  assert_int_equal(r.nnot_done, 1);
  assert_ptr_equal(r.not_done[0], f1);

  gate_open(&g0, 1);
  cf_future_release(f0);
  cf_future_release(f1);
  cf_future_release(f2);
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

/* gh-109934: futures cancelled by shutdown(cancel_futures) are done. */
static void test_shutdown_cancel_futures_before_wait(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f0 = tw_submit(ex, gated_job, &g0);
  gate_wait_started(&g0);
  cf_future_t *f[3];
  for (int i = 0; i < 3; i++)
    f[i] = tw_submit(ex, echo_job, NULL);
  TW_ASSERT_RC(cf_executor_shutdown(ex, false, true), 0);

  tw_result_t r;
  TW_ASSERT_RC(tw_wait(f, 3, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 3);
  assert_int_equal(r.nnot_done, 0);
  for (int i = 0; i < 3; i++)
    assert_true(cf_future_cancelled(f[i]));

  /* f0 was running: not cancelled, still not done. */
  TW_ASSERT_RC(tw_wait(&f0, 1, 0, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(r.ndone, 0);
  assert_int_equal(r.nnot_done, 1);

  gate_open(&g0, 1);
  TW_ASSERT_RC(wait_result(f0, NULL), 0);
  cf_future_release(f0);
  for (int i = 0; i < 3; i++)
    cf_future_release(f[i]);
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

static void test_shutdown_cancel_futures_during_wait(void **state) {
  (void)state;
  cf_executor_t *ex = tw_pool(1);
  gate_t g0;
  gate_init(&g0);
  cf_future_t *f0 = tw_submit(ex, gated_job, &g0);
  gate_wait_started(&g0);
  cf_future_t *f[4];
  for (int i = 0; i < 4; i++)
    f[i] = tw_submit(ex, echo_job, NULL);

  tw_shutdowner_t s = {.ex = ex, .rc = -1000};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_shutdown_cancel, &s), 0);
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(f, 4, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  TW_ASSERT_RC(s.rc, 0);
  assert_int_equal(r.ndone, 4);
  assert_int_equal(r.nnot_done, 0);
  for (int i = 0; i < 4; i++)
    assert_true(cf_future_cancelled(f[i]));

  gate_open(&g0, 1);
  cf_future_release(f0);
  for (int i = 0; i < 4; i++)
    cf_future_release(f[i]);
  TW_ASSERT_RC(cf_executor_destroy(ex), 0);
  gate_fini(&g0);
}

static void test_standalone_completed_by_other_thread(void **state) {
  (void)state;
  cf_future_t *f[3];
  for (int i = 0; i < 3; i++)
    f[i] = tw_future();
  tw_completer_t c = {
      .fs = {f[2], f[0], f[1]}, .action = {'r', 'e', 'c'}, .n = 3};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_complete, &c), 0);
  tw_result_t r;
  TW_ASSERT_RC(tw_wait(f, 3, CF_FOREVER, CF_ALL_COMPLETED, &r), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  TW_ASSERT_RC(c.rc[0], 0);
  TW_ASSERT_RC(c.rc[1], 0);
  TW_ASSERT_RC(c.rc[2], 1);
  assert_int_equal(r.ndone, 3);
  assert_int_equal(r.nnot_done, 0);

  void *v = NULL;
  TW_ASSERT_RC(cf_future_result(f[2], 0, &v), 0);
  assert_ptr_equal(v, (void *)(intptr_t)1);
  int code = 0;
  TW_ASSERT_RC(cf_future_exception(f[0], 0, &code, NULL), 0);
  assert_int_equal(code, 41);
  TW_ASSERT_RC(cf_future_result(f[1], 0, NULL), CF_ECANCELLED);
  for (int i = 0; i < 3; i++)
    cf_future_release(f[i]);
}

/* Many futures completed in a shuffled order, with every kind of outcome. */
typedef struct tw_many {
  cf_future_t **fs;
  size_t n;
  unsigned seed;
  atomic_int bad;
} tw_many_t;

static void *tw_complete_many(void *arg) {
  tw_many_t *m = arg;
  size_t *order = malloc(m->n * sizeof(*order));
  if (order == NULL) {
    atomic_fetch_add(&m->bad, 1);
    return NULL;
  }
  for (size_t i = 0; i < m->n; i++)
    order[i] = i;
  for (size_t i = m->n; i > 1; i--) {
    size_t j = (size_t)rand_r(&m->seed) % i;
    size_t t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
  for (size_t i = 0; i < m->n; i++) {
    cf_future_t *f = m->fs[order[i]];
    int rc;
    switch (order[i] % 3) {
    case 0:
      rc = cf_future_set_result(f, NULL, NULL);
      break;
    case 1:
      rc = cf_future_set_exception(f, 5, NULL);
      break;
    default:
      rc = cf_future_cancel(f) == 1 ? 0 : -1;
    }
    if (rc != 0)
      atomic_fetch_add(&m->bad, 1);
  }
  free(order);
  return NULL;
}

static void test_many_completed_in_random_order(void **state) {
  (void)state;
  enum { N = 300 };
  cf_future_t *fs[N];
  cf_future_t **done = calloc(N, sizeof(*done));
  cf_future_t **not_done = calloc(N, sizeof(*not_done));
  assert_non_null(done);
  assert_non_null(not_done);
  for (size_t i = 0; i < N; i++)
    fs[i] = tw_future();

  tw_many_t m = {.fs = fs, .n = N, .seed = 12345u};
  atomic_init(&m.bad, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tw_complete_many, &m), 0);
  size_t nd = 999, nn = 999;
  TW_ASSERT_RC(cf_wait(fs, N, CF_FOREVER, CF_ALL_COMPLETED, done, &nd,
                       not_done, &nn),
               0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(atomic_load(&m.bad), 0);
  assert_int_equal(nd, N);
  assert_int_equal(nn, 0);
  for (size_t i = 0; i < N; i++) {
    assert_true(tw_contains(done, nd, fs[i]));
    cf_future_release(fs[i]);
  }
  free(done);
  free(not_done);
}

/* A timed-out wait removes itself: completing the futures afterwards must
 * not touch the finished wait (valgrind / ASan catch a dangling waiter). */
static void test_timed_out_wait_leaves_nothing_behind(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *fs[] = {a, b};
  tw_result_t r;
  int modes[] = {CF_FIRST_COMPLETED, CF_FIRST_EXCEPTION, CF_ALL_COMPLETED};
  for (size_t m = 0; m < 3; m++) {
    TW_ASSERT_RC(tw_wait(fs, 2, 0.001, modes[m], &r), 0);
    assert_int_equal(r.nnot_done, 2);
  }
  atomic_int hits;
  atomic_init(&hits, 0);
  TW_ASSERT_RC(cf_future_add_done_callback(a, count_done, &hits), 0);
  TW_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);
  TW_ASSERT_RC(cf_future_set_exception(b, 2, NULL), 0);
  assert_int_equal(atomic_load(&hits), 1);
  /* The same futures can be waited on again. */
  TW_ASSERT_RC(tw_wait(fs, 2, CF_FOREVER, CF_FIRST_EXCEPTION, &r), 0);
  assert_int_equal(r.ndone, 2);
  cf_future_release(a);
  cf_future_release(b);
}

/* Several threads wait on the same future at once; one completion wakes
 * them all. */
typedef struct tw_waiter {
  cf_future_t **fs;
  size_t n;
  int mode;
  int rc;
  size_t ndone;
  size_t nnot_done;
} tw_waiter_t;

static void *tw_wait_thread(void *arg) {
  tw_waiter_t *w = arg;
  cf_future_t *done[4];
  cf_future_t *not_done[4];
  w->rc = cf_wait(w->fs, w->n, CF_FOREVER, w->mode, done, &w->ndone,
                  not_done, &w->nnot_done);
  return NULL;
}

static void test_concurrent_waiters(void **state) {
  (void)state;
  enum { T = 4 };
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  cf_future_t *fs[] = {a, b};
  int modes[T] = {CF_FIRST_COMPLETED, CF_FIRST_EXCEPTION, CF_ALL_COMPLETED,
                  CF_FIRST_COMPLETED};
  tw_waiter_t w[T];
  pthread_t th[T];
  for (int i = 0; i < T; i++) {
    w[i] = (tw_waiter_t){.fs = fs, .n = 2, .mode = modes[i], .rc = -1000};
    assert_int_equal(pthread_create(&th[i], NULL, tw_wait_thread, &w[i]), 0);
  }
  /* A failure ends FIRST_COMPLETED and FIRST_EXCEPTION; a result on b
   * ends ALL_COMPLETED. */
  TW_ASSERT_RC(cf_future_set_exception(a, 8, "bad"), 0);
  TW_ASSERT_RC(cf_future_set_result(b, NULL, NULL), 0);
  for (int i = 0; i < T; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    TW_ASSERT_RC(w[i].rc, 0);
    assert_int_equal(w[i].ndone + w[i].nnot_done, 2);
    assert_true(w[i].ndone >= 1);
  }
  assert_int_equal(w[2].ndone, 2);
  cf_future_release(a);
  cf_future_release(b);
}

static void test_null_output_arrays(void **state) {
  (void)state;
  cf_future_t *a = tw_future();
  cf_future_t *b = tw_future();
  TW_ASSERT_RC(cf_future_set_result(a, NULL, NULL), 0);
  cf_future_t *fs[] = {a, b, a};
  cf_future_t *arr[3];
  size_t n = 999;

  /* Everything NULL: only the waiting. */
  TW_ASSERT_RC(cf_wait(fs, 3, 0, CF_ALL_COMPLETED, NULL, NULL, NULL, NULL),
               0);
  TW_ASSERT_RC(
      cf_wait(fs, 3, CF_FOREVER, CF_FIRST_COMPLETED, NULL, NULL, NULL, NULL),
      0);

  /* Only not_done. */
  TW_ASSERT_RC(cf_wait(fs, 3, 0, CF_ALL_COMPLETED, NULL, NULL, arr, &n), 0);
  assert_int_equal(n, 1);
  assert_ptr_equal(arr[0], b);

  /* Only done. */
  n = 999;
  TW_ASSERT_RC(cf_wait(fs, 3, 0, CF_ALL_COMPLETED, arr, &n, NULL, NULL), 0);
  assert_int_equal(n, 1);
  assert_ptr_equal(arr[0], a);

  cf_future_release(a);
  cf_future_release(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_list),
      cmocka_unit_test(test_duplicates_collapse),
      cmocka_unit_test(test_first_completed_waits_for_one),
      cmocka_unit_test(test_first_completed_already_done),
      cmocka_unit_test(test_first_completed_standalone_other_thread),
      cmocka_unit_test(test_first_exception_stops_at_failure),
      cmocka_unit_test(test_first_exception_already_failed),
      cmocka_unit_test(test_first_exception_ignores_cancel),
      cmocka_unit_test(test_first_exception_no_failure_waits_all),
      cmocka_unit_test(test_first_exception_cancel_during_wait),
      cmocka_unit_test(test_first_exception_success_is_not_enough),
      cmocka_unit_test(test_all_completed),
      cmocka_unit_test(test_timeout_is_not_an_error),
      cmocka_unit_test(test_timeout_zero_polls),
      cmocka_unit_test(test_invalid_arguments),
      cmocka_unit_test(test_cancelled_queued_counts_as_done),
      cmocka_unit_test(test_cancel_during_wait_wakes),
      cmocka_unit_test(test_shutdown_cancel_futures_before_wait),
      cmocka_unit_test(test_shutdown_cancel_futures_during_wait),
      cmocka_unit_test(test_standalone_completed_by_other_thread),
      cmocka_unit_test(test_many_completed_in_random_order),
      cmocka_unit_test(test_timed_out_wait_leaves_nothing_behind),
      cmocka_unit_test(test_concurrent_waiters),
      cmocka_unit_test(test_null_output_arrays),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
