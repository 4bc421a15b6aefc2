/*
 * Bad input: one test per row of docs/bad-input.md, which lists what every
 * public function of include/cfutures.h and include/cfutures/loop.h returns
 * for NULL, out-of-range and wrong-state arguments. A test is named after
 * its row (test_B17_...) and asserts exactly the result the row gives.
 *
 * Where the header says nothing about a case, the row gives the library's
 * behaviour and says so; where the library disagrees with the header, the
 * row (and its test) states the header's contract.
 *
 * The test thread is the loop thread in the loop rows; task bodies and
 * loop callbacks record into plain variables that the test asserts on
 * after the loop returned (an assert must not longjmp across a coroutine
 * stack). Jobs record into atomics and are held at gates, never by sleeps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* cmocka.h needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfutures.h"
#include "cfutures/loop.h"
#include "helpers.h"

/* A sleep that only a cancellation ends. */
#define LONG_S 100.0
/* Not yet recorded: a value no call returns. */
#define UNSET 12345

/* An out parameter that a failing call must leave alone. */
static char untouched_mark;
#define UNTOUCHED ((void *)&untouched_mark)

/* ------------------------------------------------------------------ */
/* Shared state and helpers                                           */
/* ------------------------------------------------------------------ */

/* Jobs (any thread). */
static atomic_int runs;  /* job bodies that ran */
static atomic_int rec_a; /* values jobs and callbacks saw */
static atomic_int rec_b;
static atomic_int rec_c;
static atomic_int rec_d;
static sem_t cb_done;        /* posted by callbacks that run on workers */
static char thread_name[32]; /* a worker's name, written before its job ends */

/* Loop thread only. */
static int evlog[16];
static int nev;
static int r[6]; /* return codes seen inside tasks and loop callbacks */
static cf_loop_t *g_loop;
static cf_loop_t *g_loop2;
static cf_lfuture_t *g_lf;
static cf_handle_t *g_handle;
static cf_then_t *g_then;
static cf_bridge_t *g_bridge;
static cf_executor_t *g_ex;
static cf_future_t *g_future;

static void rec(int e) {
  if (nev < (int)(sizeof(evlog) / sizeof(evlog[0])))
    evlog[nev++] = e;
}

static int setup(void **state) {
  (void)state;
  atomic_store(&runs, 0);
  atomic_store(&rec_a, UNSET);
  atomic_store(&rec_b, UNSET);
  atomic_store(&rec_c, UNSET);
  atomic_store(&rec_d, UNSET);
  atomic_store(&counter_hits, 0);
  sem_init(&cb_done, 0, 0);
  memset(thread_name, 0, sizeof(thread_name));
  memset(evlog, 0, sizeof(evlog));
  nev = 0;
  for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
    r[i] = UNSET;
  g_loop = g_loop2 = NULL;
  g_lf = NULL;
  g_handle = NULL;
  g_then = NULL;
  g_bridge = NULL;
  g_ex = NULL;
  g_future = NULL;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sem_destroy(&cb_done);
  return 0;
}

static void sem_wait_all(sem_t *s) {
  while (sem_wait(s) != 0) {
  }
}

/* A pool with n workers. */
static cf_executor_t *make_pool(int n) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = n;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  return ex;
}

/* A standalone future, finished with value. */
static cf_future_t *finished_future(void *value) {
  cf_future_t *f = NULL;
  assert_int_equal(cf_future_create(&f), 0);
  assert_int_equal(cf_future_set_result(f, value, NULL), 0);
  return f;
}

static cf_future_t *pending_future(void) {
  cf_future_t *f = NULL;
  assert_int_equal(cf_future_create(&f), 0);
  return f;
}

/* Job: count the run, return arg. */
static int count_job(void *arg, cf_job_t *job) {
  atomic_fetch_add(&runs, 1);
  cf_job_return(job, arg, NULL);
  return 0;
}

/* Occupy a one-worker pool: the job waits at g until opened. */
static cf_future_t *block_pool(cf_executor_t *ex, gate_t *g) {
  cf_future_t *f = NULL;
  gate_init(g);
  assert_int_equal(cf_executor_submit(ex, gated_job, g, NULL, &f), 0);
  gate_wait_started(g);
  return f;
}

static void unblock_pool(cf_future_t *f, gate_t *g) {
  gate_open(g, 1);
  assert_int_equal(wait_result(f, NULL), 0);
  cf_future_release(f);
}

/* A fresh loop in g_loop. */
static cf_loop_t *make_loop(void) {
  cf_loop_t *loop = NULL;
  assert_int_equal(cf_loop_create(&loop, NULL), 0);
  g_loop = loop;
  return loop;
}

/* Run body as a task of a fresh loop until it ends; close the loop.
 * Returns what cf_loop_run_until_complete returned. */
static int run_task(cf_coro_fn body, void *arg) {
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *t = NULL;
  assert_int_equal(cf_task_create(loop, body, arg, &t), 0);
  int rc = cf_loop_run_until_complete(loop, t);
  cf_lfuture_release(t);
  assert_int_equal(cf_loop_close(loop), 0);
  g_loop = NULL;
  return rc;
}

/* Loop callbacks. */
static void rec_cb(void *arg) { rec((int)(intptr_t)arg); }
static void stop_cb(void *arg) { (void)cf_loop_stop(arg); }
static void lf_rec_cb(cf_lfuture_t *f, void *data) {
  (void)f;
  rec((int)(intptr_t)data);
}
static void then_count(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)data;
  atomic_fetch_add(&runs, 1);
  atomic_store(&rec_a, status);
}
static void call_count(void *arg) {
  (void)arg;
  atomic_fetch_add(&runs, 1);
}
static void noop_wakeup(void *data) { (void)data; }

/* An argument source for cf_executor_map: items[0..n), then end, or
 * fail_code after fail_after items when fail_code != 0. */
struct source {
  void **items;
  size_t n, i;
  size_t fail_after;
  int fail_code;
  int pulls;
};

static int source_next(void *src, void **arg) {
  struct source *s = src;
  s->pulls++;
  if (s->fail_code != 0 && s->i == s->fail_after)
    return s->fail_code;
  if (s->i == s->n)
    return 0;
  *arg = s->items[s->i++];
  return 1;
}

/* ================================================================== */
/* cfutures.h: errors and version                                     */
/* ================================================================== */

/* B1. cf_version, (takes no argument): never fails: the static string
 * "MAJOR.MINOR.PATCH" of the CF_VERSION_* macros
 */
static void test_B1_version_no_argument(void **state) {
  (void)state;
  char expect[32];
  snprintf(expect, sizeof(expect), "%d.%d.%d", CF_VERSION_MAJOR,
           CF_VERSION_MINOR, CF_VERSION_PATCH);
  assert_non_null(cf_version());
  assert_string_equal(cf_version(), expect);
}

/* B2. cf_strerror, a value that is not a code (1, 42, -14, -1000, INT_MAX,
 * INT_MIN): "unknown error" (never NULL)
 */
static void test_B2_strerror_unknown_code(void **state) {
  (void)state;
  const int bad[] = {1, 42, -14, -1000, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_string_equal(cf_strerror(bad[i]), "unknown error");
}

/* B3. cf_err_name, a value that is not a code: "CF_UNKNOWN" (never NULL) */
static void test_B3_err_name_unknown_code(void **state) {
  (void)state;
  const int bad[] = {1, 42, -14, -1000, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_string_equal(cf_err_name(bad[i]), "CF_UNKNOWN");
}

/* ================================================================== */
/* cfutures.h: futures                                                */
/* ================================================================== */

/* B4. cf_future_create, out NULL: CF_EINVAL */
static void test_B4_future_create_null_out(void **state) {
  (void)state;
  assert_int_equal(cf_future_create(NULL), CF_EINVAL);
}

/* B5. cf_future_retain, f NULL: returns NULL (no-op) */
static void test_B5_future_retain_null(void **state) {
  (void)state;
  assert_null(cf_future_retain(NULL));
}

/* B6. cf_future_release, f NULL: no-op */
static void test_B6_future_release_null(void **state) {
  (void)state;
  cf_future_release(NULL);
}

/* B7. cf_future_cancel, f NULL: CF_EINVAL */
static void test_B7_future_cancel_null(void **state) {
  (void)state;
  assert_int_equal(cf_future_cancel(NULL), CF_EINVAL);
}

/* B8. cf_future_cancel, a finished future: 0; it stays finished with its
 * value, its done callbacks do not run again
 */
static void test_B8_future_cancel_finished(void **state) {
  (void)state;
  int v = 7;
  atomic_int hits = 0;
  cf_future_t *f = finished_future(&v);
  assert_int_equal(cf_future_add_done_callback(f, count_done, &hits), 0);
  assert_int_equal(cf_future_cancel(f), 0);
  assert_int_equal(cf_future_state(f), CF_STATE_FINISHED);
  void *value = NULL;
  assert_int_equal(cf_future_result(f, 0, &value), 0);
  assert_ptr_equal(value, &v);
  assert_int_equal(atomic_load(&hits), 1);
  cf_future_release(f);
}

/* A gated job that then records whether a cancel was requested. */
static int gated_probe_job(void *arg, cf_job_t *job) {
  gated_job(arg, job);
  atomic_store(&rec_a, cf_job_cancel_requested(job));
  return 0;
}

/* B9. cf_future_cancel, a running job's future: 0; the job keeps running,
 * cf_job_cancel_requested() then returns 1, its outcome stands
 */
static void test_B9_future_cancel_running(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_probe_job, &g, NULL, &f), 0);
  gate_wait_started(&g);
  assert_int_equal(cf_future_cancel(f), 0);
  assert_int_equal(cf_future_running(f), 1);
  gate_open(&g, 1);
  void *value = NULL;
  assert_int_equal(wait_result(f, &value), 0);
  assert_ptr_equal(value, &g);
  assert_int_equal(atomic_load(&rec_a), 1);
  assert_int_equal(cf_future_cancelled(f), 0);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* B10. cf_future_cancelled, f NULL: 0 */
static void test_B10_future_cancelled_null(void **state) {
  (void)state;
  assert_int_equal(cf_future_cancelled(NULL), 0);
}

/* B11. cf_future_running, f NULL: 0 */
static void test_B11_future_running_null(void **state) {
  (void)state;
  assert_int_equal(cf_future_running(NULL), 0);
}

/* B12. cf_future_done, f NULL: 0 */
static void test_B12_future_done_null(void **state) {
  (void)state;
  assert_int_equal(cf_future_done(NULL), 0);
}

/* B13. cf_future_state, f NULL: CF_EINVAL */
static void test_B13_future_state_null(void **state) {
  (void)state;
  assert_int_equal(cf_future_state(NULL), CF_EINVAL);
}

/* B14. cf_state_name, not a state (-1, 5, CF_EINVAL, INT_MAX): "invalid" */
static void test_B14_state_name_out_of_range(void **state) {
  (void)state;
  const int bad[] = {-1, 5, CF_EINVAL, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_string_equal(cf_state_name(bad[i]), "invalid");
}

/* B15. cf_future_repr, f NULL: CF_EINVAL */
static void test_B15_future_repr_null_future(void **state) {
  (void)state;
  char buf[64];
  assert_int_equal(cf_future_repr(NULL, buf, sizeof(buf)), CF_EINVAL);
}

/* B16. cf_future_repr, buf NULL with size > 0: CF_EINVAL */
static void test_B16_future_repr_null_buf_nonzero_size(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_repr(f, NULL, 16), CF_EINVAL);
  cf_future_release(f);
}

/* B17. cf_future_repr, buf NULL with size 0: the length the full text needs;
 * nothing written (as snprintf)
 */
static void test_B17_future_repr_null_buf_zero_size(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  char full[128];
  int n = cf_future_repr(f, full, sizeof(full));
  assert_true(n > 0 && (size_t)n < sizeof(full));
  assert_int_equal(cf_future_repr(f, NULL, 0), n);
  cf_future_release(f);
}

/* B18. cf_future_repr, size too small (1, 8): the full length; buf holds the
 * truncated text, NUL-terminated
 */
static void test_B18_future_repr_small_buffer(void **state) {
  (void)state;
  cf_future_t *f = finished_future(NULL);
  char full[128], small[8];
  int n = cf_future_repr(f, full, sizeof(full));
  assert_true(n > 8);
  memset(small, 'x', sizeof(small));
  assert_int_equal(cf_future_repr(f, small, 1), n);
  assert_int_equal(small[0], '\0');
  memset(small, 'x', sizeof(small));
  assert_int_equal(cf_future_repr(f, small, sizeof(small)), n);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  assert_memory_equal(small, full, sizeof(small) - 1);
  cf_future_release(f);
}

/* B19. cf_future_result, f NULL: CF_EINVAL */
static void test_B19_future_result_null(void **state) {
  (void)state;
  void *value = UNTOUCHED;
  assert_int_equal(cf_future_result(NULL, CF_FOREVER, &value), CF_EINVAL);
  assert_ptr_equal(value, UNTOUCHED);
}

/* B20. cf_future_result, NaN timeout (pending or done future): CF_EINVAL,
 * without waiting
 */
static void test_B20_future_result_nan_timeout(void **state) {
  (void)state;
  cf_future_t *p = pending_future();
  cf_future_t *d = finished_future(NULL);
  assert_int_equal(cf_future_result(p, NAN, NULL), CF_EINVAL);
  assert_int_equal(cf_future_result(d, NAN, NULL), CF_EINVAL);
  assert_int_equal(cf_future_result(d, -NAN, NULL), CF_EINVAL);
  cf_future_release(p);
  cf_future_release(d);
}

/* B21. cf_future_result, timeout 0: polls: CF_ETIMEDOUT on a pending future,
 * the outcome of a done one
 */
static void test_B21_future_result_zero_timeout(void **state) {
  (void)state;
  int v;
  cf_future_t *p = pending_future();
  cf_future_t *d = finished_future(&v);
  void *value = NULL;
  assert_int_equal(cf_future_result(p, 0, &value), CF_ETIMEDOUT);
  assert_int_equal(cf_future_result(d, 0, &value), 0);
  assert_ptr_equal(value, &v);
  cf_future_release(p);
  cf_future_release(d);
}

/* B22. cf_future_result, negative timeout (-1, -INFINITY): polls, as timeout
 * 0: CF_ETIMEDOUT on a pending future
 */
static void test_B22_future_result_negative_timeout(void **state) {
  (void)state;
  cf_future_t *p = pending_future();
  assert_int_equal(cf_future_result(p, -1.0, NULL), CF_ETIMEDOUT);
  assert_int_equal(cf_future_result(p, -INFINITY, NULL), CF_ETIMEDOUT);
  assert_int_equal(cf_future_result(p, -1e300, NULL), CF_ETIMEDOUT);
  cf_future_release(p);
}

/* B23. cf_future_result, value NULL: allowed: 0, the value is not stored */
static void test_B23_future_result_null_value(void **state) {
  (void)state;
  int v;
  cf_future_t *d = finished_future(&v);
  assert_int_equal(cf_future_result(d, CF_FOREVER, NULL), 0);
  cf_future_release(d);
}

/* B24. cf_future_result, a cancelled future: CF_ECANCELLED */
static void test_B24_future_result_cancelled(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_cancel(f), 1);
  void *value = UNTOUCHED;
  assert_int_equal(cf_future_result(f, CF_FOREVER, &value), CF_ECANCELLED);
  assert_ptr_equal(value, UNTOUCHED);
  cf_future_release(f);
}

/* A job that waits for its own future: with CF_FOREVER, 0 and 1 s. */
static int self_wait_job(void *arg, cf_job_t *job) {
  cf_future_t *self = cf_job_future(job);
  if (arg == NULL) {
    atomic_store(&rec_a, cf_future_result(self, CF_FOREVER, NULL));
    atomic_store(&rec_b, cf_future_result(self, 0, NULL));
    atomic_store(&rec_c, cf_future_result(self, 1.0, NULL));
  } else {
    int code;
    const char *message;
    atomic_store(&rec_a,
                 cf_future_exception(self, CF_FOREVER, &code, &message));
    atomic_store(&rec_b, cf_future_exception(self, 0, NULL, NULL));
    atomic_store(&rec_c, cf_future_exception(self, 1.0, NULL, NULL));
  }
  return 0;
}

/* B25. cf_future_result, from inside the job that completes f (any timeout):
 * CF_EDEADLK
 */
static void test_B25_future_result_own_job(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, self_wait_job, NULL, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&rec_a), CF_EDEADLK);
  assert_int_equal(atomic_load(&rec_b), CF_EDEADLK);
  assert_int_equal(atomic_load(&rec_c), CF_EDEADLK);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* A job that submits an echo of arg to its own pool (g_ex) and waits for
 * it without a time limit. */
static int wait_own_pool_job(void *arg, cf_job_t *job) {
  (void)job;
  cf_future_t *inner = NULL;
  int rc = cf_executor_submit(g_ex, count_job, arg, NULL, &inner);
  if (rc != 0) {
    atomic_store(&rec_a, rc);
    return rc;
  }
  void *value = NULL;
  atomic_store(&rec_a, cf_future_result(inner, CF_FOREVER, &value));
  atomic_store(&rec_b, value == arg);
  cf_future_release(inner);
  return 0;
}

/* B26. cf_future_result, CF_FOREVER from a job, on a still queued future of
 * the job's own pool (every worker busy): no deadlock: the waiting worker runs
 * f's job itself; 0 with its value
 */
static void test_B26_future_result_own_pool_queued_from_job(void **state) {
  (void)state;
  int v;
  g_ex = make_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(g_ex, wait_own_pool_job, &v, NULL, &f),
                   0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&rec_a), 0);
  assert_int_equal(atomic_load(&rec_b), 1);
  assert_int_equal(atomic_load(&runs), 1);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
}

/* A done callback (on the worker that completed the job) that waits for
 * new work of that worker's pool. */
static void wait_own_pool_cb(cf_future_t *f, void *data) {
  (void)f;
  wait_own_pool_job(data, NULL);
  sem_post(&cb_done);
}

/* B27. cf_future_result, CF_FOREVER from a done callback running on a worker,
 * on a queued future of that worker's pool: no deadlock: the worker runs the
 * job itself; 0 with its value
 */
static void test_B27_future_result_own_pool_queued_from_callback(void **state) {
  (void)state;
  int v;
  g_ex = make_pool(1);
  gate_t g;
  cf_future_t *f = block_pool(g_ex, &g);
  assert_int_equal(cf_future_add_done_callback(f, wait_own_pool_cb, &v), 0);
  gate_open(&g, 1);
  sem_wait_all(&cb_done);
  assert_int_equal(atomic_load(&rec_a), 0);
  assert_int_equal(atomic_load(&rec_b), 1);
  assert_int_equal(atomic_load(&runs), 1);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  gate_fini(&g);
}

/* B28. cf_future_exception, f NULL: CF_EINVAL */
static void test_B28_future_exception_null(void **state) {
  (void)state;
  int code = UNSET;
  assert_int_equal(cf_future_exception(NULL, CF_FOREVER, &code, NULL),
                   CF_EINVAL);
  assert_int_equal(code, UNSET);
}

/* B29. cf_future_exception, NaN timeout: CF_EINVAL */
static void test_B29_future_exception_nan_timeout(void **state) {
  (void)state;
  cf_future_t *p = pending_future();
  cf_future_t *d = finished_future(NULL);
  assert_int_equal(cf_future_exception(p, NAN, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_future_exception(d, NAN, NULL, NULL), CF_EINVAL);
  cf_future_release(p);
  cf_future_release(d);
}

/* B30. cf_future_exception, timeout 0: polls: CF_ETIMEDOUT on a pending
 * future; 0 and the outcome on a done one
 */
static void test_B30_future_exception_zero_timeout(void **state) {
  (void)state;
  cf_future_t *p = pending_future();
  cf_future_t *d = pending_future();
  assert_int_equal(cf_future_set_exception(d, 42, "boom"), 0);
  int code = 0;
  const char *message = NULL;
  assert_int_equal(cf_future_exception(p, 0, &code, &message), CF_ETIMEDOUT);
  assert_int_equal(cf_future_exception(d, 0, &code, &message), 0);
  assert_int_equal(code, 42);
  assert_string_equal(message, "boom");
  cf_future_release(p);
  cf_future_release(d);
}

/* B31. cf_future_exception, negative timeout: polls: CF_ETIMEDOUT on a pending
 * future
 */
static void test_B31_future_exception_negative_timeout(void **state) {
  (void)state;
  cf_future_t *p = pending_future();
  assert_int_equal(cf_future_exception(p, -1.0, NULL, NULL), CF_ETIMEDOUT);
  assert_int_equal(cf_future_exception(p, -INFINITY, NULL, NULL), CF_ETIMEDOUT);
  cf_future_release(p);
}

/* B32. cf_future_exception, code and message NULL: allowed: 0 */
static void test_B32_future_exception_null_outputs(void **state) {
  (void)state;
  cf_future_t *d = pending_future();
  assert_int_equal(cf_future_set_exception(d, 3, "x"), 0);
  assert_int_equal(cf_future_exception(d, CF_FOREVER, NULL, NULL), 0);
  cf_future_release(d);
}

/* B33. cf_future_exception, a cancelled future: CF_ECANCELLED */
static void test_B33_future_exception_cancelled(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_cancel(f), 1);
  int code = UNSET;
  assert_int_equal(cf_future_exception(f, CF_FOREVER, &code, NULL),
                   CF_ECANCELLED);
  assert_int_equal(code, UNSET);
  cf_future_release(f);
}

/* B34. cf_future_exception, from inside the job that completes f (any
 * timeout): CF_EDEADLK
 */
static void test_B34_future_exception_own_job(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, self_wait_job, ex, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&rec_a), CF_EDEADLK);
  assert_int_equal(atomic_load(&rec_b), CF_EDEADLK);
  assert_int_equal(atomic_load(&rec_c), CF_EDEADLK);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B35. cf_future_add_done_callback, f NULL: CF_EINVAL; fn is not called */
static void test_B35_future_add_done_callback_null_future(void **state) {
  (void)state;
  atomic_int hits = 0;
  assert_int_equal(cf_future_add_done_callback(NULL, count_done, &hits),
                   CF_EINVAL);
  assert_int_equal(atomic_load(&hits), 0);
}

/* B36. cf_future_add_done_callback, fn NULL: CF_EINVAL */
static void test_B36_future_add_done_callback_null_fn(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_add_done_callback(f, NULL, NULL), CF_EINVAL);
  cf_future_t *d = finished_future(NULL);
  assert_int_equal(cf_future_add_done_callback(d, NULL, NULL), CF_EINVAL);
  cf_future_release(f);
  cf_future_release(d);
}

/* B37. cf_future_add_done_callback, f already done: 0; fn has run, in the
 * caller, before the call returns
 */
static void test_B37_future_add_done_callback_done(void **state) {
  (void)state;
  atomic_int hits = 0;
  cf_future_t *d = finished_future(NULL);
  assert_int_equal(cf_future_add_done_callback(d, count_done, &hits), 0);
  assert_int_equal(atomic_load(&hits), 1);
  cf_future_release(d);
  assert_int_equal(atomic_load(&hits), 1);
}

/* B38. cf_future_set_running_or_notify_cancel, f NULL: CF_EINVAL */
static void test_B38_future_set_running_null(void **state) {
  (void)state;
  assert_int_equal(cf_future_set_running_or_notify_cancel(NULL), CF_EINVAL);
}

/* B39. cf_future_set_running_or_notify_cancel, a running future (second call):
 * CF_EINVALID_STATE; still running
 */
static void test_B39_future_set_running_twice(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 1);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f),
                   CF_EINVALID_STATE);
  assert_int_equal(cf_future_state(f), CF_STATE_RUNNING);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), 0);
  cf_future_release(f);
}

/* B40. cf_future_set_running_or_notify_cancel, a finished future:
 * CF_EINVALID_STATE; still finished
 */
static void test_B40_future_set_running_finished(void **state) {
  (void)state;
  cf_future_t *f = finished_future(NULL);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f),
                   CF_EINVALID_STATE);
  assert_int_equal(cf_future_state(f), CF_STATE_FINISHED);
  cf_future_release(f);
}

/* B41. cf_future_set_running_or_notify_cancel, a cancelled future (first
 * call): 0; it becomes CANCELLED_AND_NOTIFIED, no callback runs again
 */
static void test_B41_future_set_running_cancelled(void **state) {
  (void)state;
  atomic_int hits = 0;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_add_done_callback(f, count_done, &hits), 0);
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(atomic_load(&hits), 1);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 0);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED_AND_NOTIFIED);
  assert_int_equal(atomic_load(&hits), 1);
  cf_future_release(f);
}

/* B42. cf_future_set_running_or_notify_cancel, a cancelled future already
 * notified (second call): CF_EINVALID_STATE
 */
static void test_B42_future_set_running_notified(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 0);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f),
                   CF_EINVALID_STATE);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED_AND_NOTIFIED);
  cf_future_release(f);
}

/* B43. cf_future_set_result, f NULL: CF_EINVAL; dtor does not run */
static void test_B43_future_set_result_null(void **state) {
  (void)state;
  int v;
  assert_int_equal(cf_future_set_result(NULL, &v, count_free), CF_EINVAL);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B44. cf_future_set_result, called twice: the second returns
 * CF_EINVALID_STATE; the first value stays; the second stays the caller's (its
 * dtor does not run)
 */
static void test_B44_future_set_result_twice(void **state) {
  (void)state;
  int a, b;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_set_result(f, &a, count_free), 0);
  assert_int_equal(cf_future_set_result(f, &b, count_free), CF_EINVALID_STATE);
  assert_int_equal(atomic_load(&counter_hits), 0);
  void *value = NULL;
  assert_int_equal(cf_future_result(f, 0, &value), 0);
  assert_ptr_equal(value, &a);
  cf_future_release(f);
  assert_int_equal(atomic_load(&counter_hits), 1); /* a's, once */
}

/* B45. cf_future_set_result, a cancelled future: CF_EINVALID_STATE; still
 * cancelled; dtor does not run
 */
static void test_B45_future_set_result_cancelled(void **state) {
  (void)state;
  int a;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_cancel(f), 1);
  assert_int_equal(cf_future_set_result(f, &a, count_free), CF_EINVALID_STATE);
  assert_int_equal(cf_future_cancelled(f), 1);
  cf_future_release(f);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B46. cf_future_set_exception, f NULL: CF_EINVAL */
static void test_B46_future_set_exception_null(void **state) {
  (void)state;
  assert_int_equal(cf_future_set_exception(NULL, 1, "x"), CF_EINVAL);
}

/* B47. cf_future_set_exception, code 0: CF_EINVAL; f stays pending */
static void test_B47_future_set_exception_zero_code(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_set_exception(f, 0, "x"), CF_EINVAL);
  assert_int_equal(cf_future_state(f), CF_STATE_PENDING);
  cf_future_release(f);
}

/* B48. cf_future_set_exception, a finished future: CF_EINVALID_STATE; the
 * first outcome stays
 */
static void test_B48_future_set_exception_finished(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_set_exception(f, 5, "first"), 0);
  assert_int_equal(cf_future_set_exception(f, 6, "second"), CF_EINVALID_STATE);
  int code = 0;
  const char *message = NULL;
  assert_int_equal(cf_future_exception(f, 0, &code, &message), 0);
  assert_int_equal(code, 5);
  assert_string_equal(message, "first");
  cf_future_release(f);
}

/* B49. cf_future_set_exception, message NULL: allowed: 0; the failure has no
 * message (NULL)
 */
static void test_B49_future_set_exception_null_message(void **state) {
  (void)state;
  cf_future_t *f = pending_future();
  assert_int_equal(cf_future_set_exception(f, 9, NULL), 0);
  int code = 0;
  const char *message = UNTOUCHED;
  assert_int_equal(cf_future_exception(f, 0, &code, &message), 0);
  assert_int_equal(code, 9);
  assert_null(message);
  cf_future_release(f);
}

/* ================================================================== */
/* cfutures.h: jobs                                                   */
/* ================================================================== */

/* B50. cf_job_return, job NULL: no-op; dtor does not run [header silent:
 * library behaviour]
 */
static void test_B50_job_return_null(void **state) {
  (void)state;
  int v;
  cf_job_return(NULL, &v, count_free);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B51. cf_job_fail, job NULL: returns code; nothing is recorded [header
 * silent: library behaviour]
 */
static void test_B51_job_fail_null(void **state) {
  (void)state;
  assert_int_equal(cf_job_fail(NULL, 42, "bad %d", 1), 42);
  assert_int_equal(cf_job_fail(NULL, 0, NULL), 0);
}

static int fail_fmt_null_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)cf_job_fail(job, 5, "first %d", 1);
  return cf_job_fail(job, 7, NULL);
}

/* B52. cf_job_fail, fmt NULL: clears the recorded message and returns code:
 * the job fails without a message
 */
static void test_B52_job_fail_null_fmt(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, fail_fmt_null_job, NULL, NULL, &f),
                   0);
  assert_int_equal(wait_result(f, NULL), CF_EFAILED);
  int code = 0;
  const char *message = UNTOUCHED;
  assert_int_equal(cf_future_exception(f, 0, &code, &message), 0);
  assert_int_equal(code, 7);
  assert_null(message);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static int fail_then_succeed_job(void *arg, cf_job_t *job) {
  (void)cf_job_fail(job, 5, "not %s", "used");
  cf_job_return(job, arg, NULL);
  return 0;
}

/* B53. cf_job_fail, recorded, but the job returns 0: the job succeeds with its
 * value; the message is dropped
 */
static void test_B53_job_fail_then_return_zero(void **state) {
  (void)state;
  int v;
  cf_executor_t *ex = make_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, fail_then_succeed_job, &v, NULL, &f),
                   0);
  void *value = NULL;
  assert_int_equal(wait_result(f, &value), 0);
  assert_ptr_equal(value, &v);
  int code = UNSET;
  const char *message = UNTOUCHED;
  assert_int_equal(cf_future_exception(f, 0, &code, &message), 0);
  assert_int_equal(code, 0);
  assert_null(message);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B54. cf_job_future, job NULL: NULL [header silent: library behaviour] */
static void test_B54_job_future_null(void **state) {
  (void)state;
  assert_null(cf_job_future(NULL));
}

/* B55. cf_job_cancel_requested, job NULL: 0 [header silent: library behaviour]
 */
static void test_B55_job_cancel_requested_null(void **state) {
  (void)state;
  assert_int_equal(cf_job_cancel_requested(NULL), 0);
}

/* ================================================================== */
/* cfutures.h: executor                                               */
/* ================================================================== */

/* B56. cf_executor_options_init, opts NULL: no-op [header silent: library
 * behaviour]
 */
static void test_B56_executor_options_init_null(void **state) {
  (void)state;
  cf_executor_options_init(NULL);
}

/* B57. cf_executor_create, out NULL (with or without opts): CF_EINVAL */
static void test_B57_executor_create_null_out(void **state) {
  (void)state;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  assert_int_equal(cf_executor_create(NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_executor_create(NULL, &opts), CF_EINVAL);
}

/* B58. cf_executor_create, max_workers 0: CF_EINVAL */
static void test_B58_executor_create_zero_workers(void **state) {
  (void)state;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 0;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), CF_EINVAL);
}

/* B59. cf_executor_create, max_workers negative (-1, INT_MIN): CF_EINVAL */
static void test_B59_executor_create_negative_workers(void **state) {
  (void)state;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  cf_executor_t *ex = NULL;
  opts.max_workers = -1;
  assert_int_equal(cf_executor_create(&ex, &opts), CF_EINVAL);
  opts.max_workers = INT_MIN;
  assert_int_equal(cf_executor_create(&ex, &opts), CF_EINVAL);
}

/* B266. cf_executor_create, idle_spin_us negative (-1, INT_MIN) or above
 * 1000000 (1000001, INT_MAX): CF_EINVAL */
static void test_B266_executor_create_idle_spin_out_of_range(void **state) {
  (void)state;
  const int bad[] = {-1, INT_MIN, 1000001, INT_MAX};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cf_executor_options_t opts;
    cf_executor_options_init(&opts);
    opts.idle_spin_us = bad[i];
    cf_executor_t *ex = NULL;
    assert_int_equal(cf_executor_create(&ex, &opts), CF_EINVAL);
    assert_null(ex);
  }
}

/* B267. cf_executor_create, idle_spin_us 0 (never spin) and 1000000:
 * allowed: jobs run, and a job submitted after every worker went idle still
 * starts. Each round waits until the pool's only worker is back from its
 * job, so the next submit finds it idle (spinning, or parked with 0). */
static void test_B267_executor_create_idle_spin_bounds(void **state) {
  (void)state;
  const int ok[] = {0, 1000000};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    cf_executor_options_t opts;
    cf_executor_options_init(&opts);
    opts.max_workers = 1;
    opts.idle_spin_us = ok[i];
    cf_executor_t *ex = NULL;
    assert_int_equal(cf_executor_create(&ex, &opts), 0);
    for (int round = 0; round < 50; round++) {
      cf_future_t *f = NULL;
      assert_int_equal(
          cf_executor_submit(ex, echo_job, (void *)(intptr_t)(round + 1), NULL, &f),
          0);
      void *v = NULL;
      assert_int_equal(cf_future_result(f, CF_FOREVER, &v), 0);
      assert_ptr_equal(v, (void *)(intptr_t)(round + 1));
      cf_future_release(f);
    }
    assert_int_equal(cf_executor_thread_count(ex), 1);
    assert_int_equal(cf_executor_destroy(ex), 0);
  }
}

/* B60. cf_executor_create, opts NULL: allowed: a pool with the defaults (0) */
static void test_B60_executor_create_null_opts(void **state) {
  (void)state;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, NULL), 0);
  int v;
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, &v, NULL, &f), 0);
  void *value = NULL;
  assert_int_equal(wait_result(f, &value), 0);
  assert_ptr_equal(value, &v);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static int name_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  pthread_getname_np(pthread_self(), thread_name, sizeof(thread_name));
  return 0;
}

static void run_name_job(const char *prefix) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;
  opts.thread_name_prefix = prefix;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, name_job, NULL, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B61. cf_executor_create, thread_name_prefix longer than a thread name holds:
 * the prefix is cut so that "<prefix>_<n>" fits in 15 characters
 */
static void test_B61_executor_create_long_prefix(void **state) {
  (void)state;
  run_name_job("abcdefghijklmnopqrstuvwxyz");
  assert_string_equal(thread_name, "abcdefghijklm_0");
}

/* B62. cf_executor_create, thread_name_prefix "": as NULL: workers are named
 * "cfpool-N_<n>"
 */
static void test_B62_executor_create_empty_prefix(void **state) {
  (void)state;
  run_name_job("");
  assert_memory_equal(thread_name, "cfpool-", 7);
  size_t len = strlen(thread_name);
  assert_true(len >= 9 && len <= 15);
  assert_string_equal(thread_name + len - 2, "_0");
}

/* B63. cf_executor_submit, ex NULL: CF_EINVAL; the job never runs, *out
 * untouched, arg_dtor not run (the caller keeps arg)
 */
static void test_B63_executor_submit_null_pool(void **state) {
  (void)state;
  int v;
  cf_future_t *out = UNTOUCHED;
  assert_int_equal(cf_executor_submit(NULL, count_job, &v, count_free, &out),
                   CF_EINVAL);
  assert_ptr_equal(out, UNTOUCHED);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B64. cf_executor_submit, fn NULL: CF_EINVAL; *out untouched, arg_dtor not
 * run
 */
static void test_B64_executor_submit_null_fn(void **state) {
  (void)state;
  int v;
  cf_executor_t *ex = make_pool(1);
  cf_future_t *out = UNTOUCHED;
  assert_int_equal(cf_executor_submit(ex, NULL, &v, count_free, &out),
                   CF_EINVAL);
  assert_ptr_equal(out, UNTOUCHED);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B65. cf_executor_submit, after shutdown: CF_ESHUTDOWN; the job never runs,
 * *out untouched, arg_dtor not run
 */
static void test_B65_executor_submit_after_shutdown(void **state) {
  (void)state;
  int v;
  cf_executor_t *ex = make_pool(2);
  assert_int_equal(cf_executor_shutdown(ex, false, false), 0);
  cf_future_t *out = UNTOUCHED;
  assert_int_equal(cf_executor_submit(ex, count_job, &v, count_free, &out),
                   CF_ESHUTDOWN);
  assert_ptr_equal(out, UNTOUCHED);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_executor_submit(ex, count_job, &v, count_free, &out),
                   CF_ESHUTDOWN);
  assert_ptr_equal(out, UNTOUCHED);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

static int failing_init(void *arg) {
  (void)arg;
  return 1;
}

/* B66. cf_executor_submit, a broken pool (an initializer failed): CF_EBROKEN;
 * *out untouched, arg_dtor not run. Futures queued at the break fail with code
 * CF_EBROKEN
 */
static void test_B66_executor_submit_broken(void **state) {
  (void)state;
  int v;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;
  opts.initializer = failing_init;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, count_job, &v, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), CF_EFAILED);
  int code = 0;
  assert_int_equal(cf_future_exception(f, 0, &code, NULL), 0);
  assert_int_equal(code, CF_EBROKEN);
  cf_future_t *out = UNTOUCHED;
  assert_int_equal(cf_executor_submit(ex, count_job, &v, count_free, &out),
                   CF_EBROKEN);
  assert_ptr_equal(out, UNTOUCHED);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B67. cf_executor_submit, out NULL: allowed: 0; the job runs, arg_dtor runs
 * once
 */
static void test_B67_executor_submit_null_out(void **state) {
  (void)state;
  int v;
  cf_executor_t *ex = make_pool(1);
  assert_int_equal(cf_executor_submit(ex, count_job, &v, count_free, NULL), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&runs), 1);
  assert_int_equal(atomic_load(&counter_hits), 1);
}

/* B68. cf_executor_shutdown, ex NULL: CF_EINVAL */
static void test_B68_executor_shutdown_null(void **state) {
  (void)state;
  assert_int_equal(cf_executor_shutdown(NULL, true, true), CF_EINVAL);
  assert_int_equal(cf_executor_shutdown(NULL, false, false), CF_EINVAL);
}

/* A job that waits at the gate, then calls shutdown(wait, cancel) or
 * destroy on its own pool (g_ex) and tries a submit after it. */
struct own_pool_call {
  gate_t gate;
  int what; /* 0: shutdown(true, true); 1: shutdown(false, false); 2: destroy */
};

static int own_pool_call_job(void *arg, cf_job_t *job) {
  (void)job;
  struct own_pool_call *c = arg;
  sem_post(&c->gate.started);
  while (sem_wait(&c->gate.open) != 0) {
  }
  int rc = c->what == 0   ? cf_executor_shutdown(g_ex, true, true)
           : c->what == 1 ? cf_executor_shutdown(g_ex, false, false)
                          : cf_executor_destroy(g_ex);
  atomic_store(&rec_a, rc);
  cf_future_t *f = NULL;
  int v;
  rc = cf_executor_submit(g_ex, count_job, &v, NULL, &f);
  atomic_store(&rec_b, rc);
  if (rc == 0)
    cf_future_release(f);
  return 0;
}

/* B69. cf_executor_shutdown, wait true, from one of ex's own workers:
 * CF_EDEADLK; nothing changes: queued jobs still run (even with
 * cancel_futures), submit still works
 */
static void test_B69_executor_shutdown_wait_from_worker(void **state) {
  (void)state;
  int v;
  g_ex = make_pool(1);
  struct own_pool_call c = {.what = 0};
  gate_init(&c.gate);
  cf_future_t *f = NULL, *queued = NULL;
  assert_int_equal(cf_executor_submit(g_ex, own_pool_call_job, &c, NULL, &f),
                   0);
  gate_wait_started(&c.gate);
  assert_int_equal(cf_executor_submit(g_ex, count_job, &v, NULL, &queued), 0);
  gate_open(&c.gate, 1);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&rec_a), CF_EDEADLK);
  assert_int_equal(atomic_load(&rec_b), 0);
  void *value = NULL;
  assert_int_equal(wait_result(queued, &value), 0);
  assert_ptr_equal(value, &v);
  cf_future_release(f);
  cf_future_release(queued);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  assert_int_equal(atomic_load(&runs), 2);
  gate_fini(&c.gate);
}

/* B70. cf_executor_shutdown, wait false, from one of ex's own workers:
 * allowed: 0; the pool is shut down (later submits: CF_ESHUTDOWN)
 */
static void test_B70_executor_shutdown_nowait_from_worker(void **state) {
  (void)state;
  int v;
  g_ex = make_pool(1);
  struct own_pool_call c = {.what = 1};
  gate_init(&c.gate);
  gate_open(&c.gate, 1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(g_ex, own_pool_call_job, &c, NULL, &f),
                   0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&rec_a), 0);
  assert_int_equal(atomic_load(&rec_b), CF_ESHUTDOWN);
  cf_future_t *out = UNTOUCHED;
  assert_int_equal(cf_executor_submit(g_ex, count_job, &v, NULL, &out),
                   CF_ESHUTDOWN);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  gate_fini(&c.gate);
}

/* B71. cf_executor_shutdown, called again (any wait, cancel_futures):
 * idempotent: 0
 */
static void test_B71_executor_shutdown_twice(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2);
  assert_int_equal(cf_executor_shutdown(ex, false, true), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, true), 0);
  assert_int_equal(cf_executor_shutdown(ex, false, false), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B72. cf_executor_destroy, ex NULL: no-op, returns 0 */
static void test_B72_executor_destroy_null(void **state) {
  (void)state;
  assert_int_equal(cf_executor_destroy(NULL), 0);
}

/* B73. cf_executor_destroy, from one of ex's own workers: CF_EDEADLK; nothing
 * happens (the pool still accepts work)
 */
static void test_B73_executor_destroy_from_worker(void **state) {
  (void)state;
  int v;
  g_ex = make_pool(1);
  struct own_pool_call c = {.what = 2};
  gate_init(&c.gate);
  gate_open(&c.gate, 1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(g_ex, own_pool_call_job, &c, NULL, &f),
                   0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&rec_a), CF_EDEADLK);
  assert_int_equal(atomic_load(&rec_b), 0);
  cf_future_t *g = NULL;
  assert_int_equal(cf_executor_submit(g_ex, count_job, &v, NULL, &g), 0);
  assert_int_equal(wait_result(g, NULL), 0);
  cf_future_release(f);
  cf_future_release(g);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  assert_int_equal(atomic_load(&runs), 2);
  gate_fini(&c.gate);
}

/* B74. cf_executor_thread_count, ex NULL: CF_EINVAL */
static void test_B74_executor_thread_count_null(void **state) {
  (void)state;
  assert_int_equal(cf_executor_thread_count(NULL), CF_EINVAL);
}

/* ================================================================== */
/* cfutures.h: map                                                    */
/* ================================================================== */

/* B75. cf_executor_map, ex NULL: CF_EINVAL; the input is not read */
static void test_B75_executor_map_null_pool(void **state) {
  (void)state;
  int v;
  void *items[] = {&v};
  struct source s = {.items = items, .n = 1};
  cf_map_t *m = UNTOUCHED;
  assert_int_equal(cf_executor_map(NULL, count_job, source_next, &s, NULL,
                                   CF_FOREVER, 0, &m),
                   CF_EINVAL);
  assert_ptr_equal(m, UNTOUCHED);
  assert_int_equal(s.pulls, 0);
}

/* B76. cf_executor_map, fn NULL: CF_EINVAL; the input is not read */
static void test_B76_executor_map_null_fn(void **state) {
  (void)state;
  int v;
  void *items[] = {&v};
  struct source s = {.items = items, .n = 1};
  cf_executor_t *ex = make_pool(1);
  cf_map_t *m = UNTOUCHED;
  assert_int_equal(
      cf_executor_map(ex, NULL, source_next, &s, NULL, CF_FOREVER, 0, &m),
      CF_EINVAL);
  assert_ptr_equal(m, UNTOUCHED);
  assert_int_equal(s.pulls, 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B77. cf_executor_map, next_arg NULL: CF_EINVAL */
static void test_B77_executor_map_null_input(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1);
  cf_map_t *m = UNTOUCHED;
  assert_int_equal(
      cf_executor_map(ex, count_job, NULL, NULL, NULL, CF_FOREVER, 0, &m),
      CF_EINVAL);
  assert_ptr_equal(m, UNTOUCHED);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B78. cf_executor_map, out NULL: CF_EINVAL; the input is not read, nothing is
 * submitted
 */
static void test_B78_executor_map_null_out(void **state) {
  (void)state;
  int v;
  void *items[] = {&v};
  struct source s = {.items = items, .n = 1};
  cf_executor_t *ex = make_pool(1);
  assert_int_equal(cf_executor_map(ex, count_job, source_next, &s, NULL,
                                   CF_FOREVER, 0, NULL),
                   CF_EINVAL);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(s.pulls, 0);
  assert_int_equal(atomic_load(&runs), 0);
}

/* B79. cf_executor_map, NaN timeout: CF_EINVAL; the input is not read */
static void test_B79_executor_map_nan_timeout(void **state) {
  (void)state;
  int v;
  void *items[] = {&v};
  struct source s = {.items = items, .n = 1};
  cf_executor_t *ex = make_pool(1);
  cf_map_t *m = UNTOUCHED;
  assert_int_equal(
      cf_executor_map(ex, count_job, source_next, &s, NULL, NAN, 0, &m),
      CF_EINVAL);
  assert_ptr_equal(m, UNTOUCHED);
  assert_int_equal(s.pulls, 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* Map one argument with the given timeout while the only worker is
 * busy: the first cf_map_next times out, the job never runs. */
static void map_times_out(double timeout) {
  int v;
  void *items[] = {&v};
  struct source s = {.items = items, .n = 1};
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  cf_future_t *blocker = block_pool(ex, &g);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, count_job, source_next, &s, count_free,
                                   timeout, 0, &m),
                   0);
  cf_future_t *f = UNTOUCHED;
  assert_int_equal(cf_map_next(m, &f), CF_ETIMEDOUT);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_ptr_equal(f, UNTOUCHED);
  cf_map_destroy(m);
  unblock_pool(blocker, &g);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 1); /* dropped unrun */
  gate_fini(&g);
}

/* B80. cf_executor_map, timeout 0: allowed: 0; the deadline has passed, so a
 * cf_map_next that would wait returns CF_ETIMEDOUT (jobs not started are
 * cancelled), then CF_EOF
 */
static void test_B80_executor_map_zero_timeout(void **state) {
  (void)state;
  map_times_out(0);
}

/* B81. cf_executor_map, negative timeout: as timeout 0 */
static void test_B81_executor_map_negative_timeout(void **state) {
  (void)state;
  map_times_out(-1.0);
}

/* B82. cf_executor_map, the pool is shut down: CF_ESHUTDOWN; arg_dtor ran once
 * for the argument pulled; *out untouched
 */
static void test_B82_executor_map_after_shutdown(void **state) {
  (void)state;
  int v, w;
  void *items[] = {&v, &w};
  struct source s = {.items = items, .n = 2};
  cf_executor_t *ex = make_pool(1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  cf_map_t *m = UNTOUCHED;
  assert_int_equal(cf_executor_map(ex, count_job, source_next, &s, count_free,
                                   CF_FOREVER, 0, &m),
                   CF_ESHUTDOWN);
  assert_ptr_equal(m, UNTOUCHED);
  assert_int_equal(s.pulls, 1);
  assert_int_equal(atomic_load(&counter_hits), 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
}

/* B83. cf_executor_map, next_arg returns a negative code while the first
 * window fills: that code; the jobs submitted so far are cancelled (never run;
 * arg_dtor runs once each)
 */
static void test_B83_executor_map_input_error_first_window(void **state) {
  (void)state;
  int v, w;
  void *items[] = {&v, &w};
  struct source s = {.items = items, .n = 2, .fail_after = 1, .fail_code = -42};
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  cf_future_t *blocker = block_pool(ex, &g);
  cf_map_t *m = UNTOUCHED;
  assert_int_equal(cf_executor_map(ex, count_job, source_next, &s, count_free,
                                   CF_FOREVER, 0, &m),
                   -42);
  assert_ptr_equal(m, UNTOUCHED);
  unblock_pool(blocker, &g);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 1);
  gate_fini(&g);
}

/* B84. cf_map_next, m NULL: CF_EINVAL */
static void test_B84_map_next_null_map(void **state) {
  (void)state;
  cf_future_t *f = UNTOUCHED;
  assert_int_equal(cf_map_next(NULL, &f), CF_EINVAL);
  assert_ptr_equal(f, UNTOUCHED);
}

/* B85. cf_map_next, f NULL: CF_EINVAL; the iteration does not advance */
static void test_B85_map_next_null_out(void **state) {
  (void)state;
  int v;
  void *items[] = {&v};
  struct source s = {.items = items, .n = 1};
  cf_executor_t *ex = make_pool(1);
  cf_map_t *m = NULL;
  assert_int_equal(
      cf_executor_map(ex, count_job, source_next, &s, NULL, CF_FOREVER, 0, &m),
      0);
  assert_int_equal(cf_map_next(m, NULL), CF_EINVAL);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), 0);
  void *value = NULL;
  assert_int_equal(cf_future_result(f, 0, &value), 0);
  assert_ptr_equal(value, &v);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  cf_map_destroy(m);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B86. cf_map_next, called again after CF_EOF: CF_EOF again */
static void test_B86_map_next_after_eof(void **state) {
  (void)state;
  struct source s = {.n = 0};
  cf_executor_t *ex = make_pool(1);
  cf_map_t *m = NULL;
  assert_int_equal(
      cf_executor_map(ex, count_job, source_next, &s, NULL, CF_FOREVER, 0, &m),
      0);
  cf_future_t *f = UNTOUCHED;
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_ptr_equal(f, UNTOUCHED);
  cf_map_destroy(m);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* B87. cf_map_next, next_arg fails after the first window (buffersize > 0):
 * the earlier positions yield their results, then that code at its position,
 * then CF_EOF
 */
static void test_B87_map_next_input_error_later(void **state) {
  (void)state;
  int v, w;
  void *items[] = {&v, &w};
  struct source s = {.items = items, .n = 2, .fail_after = 1, .fail_code = -42};
  cf_executor_t *ex = make_pool(1);
  cf_map_t *m = NULL;
  assert_int_equal(
      cf_executor_map(ex, count_job, source_next, &s, NULL, CF_FOREVER, 1, &m),
      0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), 0);
  void *value = NULL;
  assert_int_equal(cf_future_result(f, 0, &value), 0);
  assert_ptr_equal(value, &v);
  assert_int_equal(cf_map_next(m, &f), -42);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  cf_map_destroy(m);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&runs), 1);
}

/* B88. cf_map_destroy, m NULL: no-op */
static void test_B88_map_destroy_null(void **state) {
  (void)state;
  cf_map_destroy(NULL);
}

/* ================================================================== */
/* cfutures.h: wait and as_completed                                  */
/* ================================================================== */

/* B89. cf_wait, fs NULL with n > 0: CF_EINVAL; the counts are untouched */
static void test_B89_wait_null_array(void **state) {
  (void)state;
  size_t nd = UNSET, nn = UNSET;
  assert_int_equal(
      cf_wait(NULL, 3, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd, NULL, &nn),
      CF_EINVAL);
  assert_int_equal(nd, UNSET);
  assert_int_equal(nn, UNSET);
}

/* B90. cf_wait, a NULL entry in fs: CF_EINVAL */
static void test_B90_wait_null_entry(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d, NULL};
  size_t nd = UNSET;
  assert_int_equal(
      cf_wait(fs, 2, CF_FOREVER, CF_ALL_COMPLETED, NULL, &nd, NULL, NULL),
      CF_EINVAL);
  assert_int_equal(nd, UNSET);
  cf_future_release(d);
}

/* B91. cf_wait, return_when not one of the three (0, 4, -1, INT_MAX):
 * CF_EINVAL
 */
static void test_B91_wait_bad_return_when(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d};
  const int bad[] = {0, 4, -1, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(cf_wait(fs, 1, 0, bad[i], NULL, NULL, NULL, NULL),
                     CF_EINVAL);
  cf_future_release(d);
}

/* B92. cf_wait, NaN timeout: CF_EINVAL */
static void test_B92_wait_nan_timeout(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d};
  assert_int_equal(
      cf_wait(fs, 1, NAN, CF_ALL_COMPLETED, NULL, NULL, NULL, NULL), CF_EINVAL);
  cf_future_release(d);
}

static void wait_polls(double timeout) {
  cf_future_t *p = pending_future();
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {p, d};
  cf_future_t *done[2] = {NULL, NULL}, *not_done[2] = {NULL, NULL};
  size_t nd = UNSET, nn = UNSET;
  assert_int_equal(
      cf_wait(fs, 2, timeout, CF_ALL_COMPLETED, done, &nd, not_done, &nn), 0);
  assert_int_equal(nd, 1);
  assert_int_equal(nn, 1);
  assert_ptr_equal(done[0], d);
  assert_ptr_equal(not_done[0], p);
  cf_future_release(p);
  cf_future_release(d);
}

/* B93. cf_wait, timeout 0: polls: 0 at once with the partition as it stands
 * (not an error)
 */
static void test_B93_wait_zero_timeout(void **state) {
  (void)state;
  wait_polls(0);
}

/* B94. cf_wait, negative timeout: as timeout 0 */
static void test_B94_wait_negative_timeout(void **state) {
  (void)state;
  wait_polls(-1.0);
}

/* B95. cf_wait, fs NULL with n 0: allowed: 0, both counts 0 */
static void test_B95_wait_empty(void **state) {
  (void)state;
  size_t nd = UNSET, nn = UNSET;
  assert_int_equal(
      cf_wait(NULL, 0, CF_FOREVER, CF_FIRST_COMPLETED, NULL, &nd, NULL, &nn),
      0);
  assert_int_equal(nd, 0);
  assert_int_equal(nn, 0);
}

/* B96. cf_wait, done, ndone, not_done, nnot_done NULL: allowed: 0, the
 * partition is skipped
 */
static void test_B96_wait_null_outputs(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d, d};
  assert_int_equal(
      cf_wait(fs, 2, CF_FOREVER, CF_FIRST_EXCEPTION, NULL, NULL, NULL, NULL),
      0);
  cf_future_release(d);
}

/* B97. cf_as_completed_create, out NULL: CF_EINVAL */
static void test_B97_as_completed_create_null_out(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d};
  assert_int_equal(cf_as_completed_create(fs, 1, CF_FOREVER, NULL), CF_EINVAL);
  cf_future_release(d);
}

/* B98. cf_as_completed_create, fs NULL with n > 0: CF_EINVAL; *out untouched
 */
static void test_B98_as_completed_create_null_array(void **state) {
  (void)state;
  cf_as_completed_t *it = UNTOUCHED;
  assert_int_equal(cf_as_completed_create(NULL, 2, CF_FOREVER, &it), CF_EINVAL);
  assert_ptr_equal(it, UNTOUCHED);
}

/* B99. cf_as_completed_create, a NULL entry in fs: CF_EINVAL; *out untouched
 */
static void test_B99_as_completed_create_null_entry(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {NULL, d};
  cf_as_completed_t *it = UNTOUCHED;
  assert_int_equal(cf_as_completed_create(fs, 2, CF_FOREVER, &it), CF_EINVAL);
  assert_ptr_equal(it, UNTOUCHED);
  cf_future_release(d);
}

/* B100. cf_as_completed_create, NaN timeout: CF_EINVAL; *out untouched */
static void test_B100_as_completed_create_nan_timeout(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d};
  cf_as_completed_t *it = UNTOUCHED;
  assert_int_equal(cf_as_completed_create(fs, 1, NAN, &it), CF_EINVAL);
  assert_ptr_equal(it, UNTOUCHED);
  cf_future_release(d);
}

static void as_completed_polls(double timeout) {
  cf_future_t *p = pending_future();
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {p, d};
  cf_as_completed_t *it = NULL;
  assert_int_equal(cf_as_completed_create(fs, 2, timeout, &it), 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_as_completed_next(it, &f), 0);
  assert_ptr_equal(f, d);
  assert_int_equal(cf_as_completed_next(it, &f), CF_ETIMEDOUT);
  assert_int_equal(cf_as_completed_remaining(it), 1);
  cf_as_completed_destroy(it);
  cf_future_release(p);
  cf_future_release(d);
}

/* B101. cf_as_completed_create, timeout 0: allowed: 0; futures already done
 * are yielded, then cf_as_completed_next returns CF_ETIMEDOUT
 */
static void test_B101_as_completed_create_zero_timeout(void **state) {
  (void)state;
  as_completed_polls(0);
}

/* B102. cf_as_completed_create, negative timeout: as timeout 0 */
static void test_B102_as_completed_create_negative_timeout(void **state) {
  (void)state;
  as_completed_polls(-1.0);
}

/* B103. cf_as_completed_create, fs NULL with n 0: allowed: 0; the first
 * cf_as_completed_next returns CF_EOF
 */
static void test_B103_as_completed_create_empty(void **state) {
  (void)state;
  cf_as_completed_t *it = NULL;
  assert_int_equal(cf_as_completed_create(NULL, 0, CF_FOREVER, &it), 0);
  cf_future_t *f = UNTOUCHED;
  assert_int_equal(cf_as_completed_next(it, &f), CF_EOF);
  assert_ptr_equal(f, UNTOUCHED);
  assert_int_equal(cf_as_completed_remaining(it), 0);
  cf_as_completed_destroy(it);
}

/* B104. cf_as_completed_next, it NULL: CF_EINVAL */
static void test_B104_as_completed_next_null_iterator(void **state) {
  (void)state;
  cf_future_t *f = UNTOUCHED;
  assert_int_equal(cf_as_completed_next(NULL, &f), CF_EINVAL);
  assert_ptr_equal(f, UNTOUCHED);
}

/* B105. cf_as_completed_next, f NULL: CF_EINVAL; nothing is yielded */
static void test_B105_as_completed_next_null_out(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d};
  cf_as_completed_t *it = NULL;
  assert_int_equal(cf_as_completed_create(fs, 1, CF_FOREVER, &it), 0);
  assert_int_equal(cf_as_completed_next(it, NULL), CF_EINVAL);
  assert_int_equal(cf_as_completed_remaining(it), 1);
  cf_as_completed_destroy(it);
  cf_future_release(d);
}

/* B106. cf_as_completed_next, every future yielded already: CF_EOF, again at
 * each call
 */
static void test_B106_as_completed_next_exhausted(void **state) {
  (void)state;
  cf_future_t *d = finished_future(NULL);
  cf_future_t *fs[] = {d, d};
  cf_as_completed_t *it = NULL;
  assert_int_equal(cf_as_completed_create(fs, 2, CF_FOREVER, &it), 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_as_completed_next(it, &f), 0);
  assert_int_equal(cf_as_completed_next(it, &f), CF_EOF);
  assert_int_equal(cf_as_completed_next(it, &f), CF_EOF);
  cf_as_completed_destroy(it);
  cf_future_release(d);
}

/* B107. cf_as_completed_remaining, it NULL: CF_EINVAL */
static void test_B107_as_completed_remaining_null(void **state) {
  (void)state;
  assert_int_equal(cf_as_completed_remaining(NULL), CF_EINVAL);
}

/* B108. cf_as_completed_destroy, it NULL: no-op */
static void test_B108_as_completed_destroy_null(void **state) {
  (void)state;
  cf_as_completed_destroy(NULL);
}

/* ================================================================== */
/* cfutures.h: bridge                                                 */
/* ================================================================== */

/* B109. cf_bridge_create, out NULL: CF_EINVAL */
static void test_B109_bridge_create_null_out(void **state) {
  (void)state;
  assert_int_equal(cf_bridge_create(NULL), CF_EINVAL);
}

/* B110. cf_bridge_create_with_wakeup, out NULL: CF_EINVAL */
static void test_B110_bridge_create_with_wakeup_null_out(void **state) {
  (void)state;
  assert_int_equal(cf_bridge_create_with_wakeup(NULL, noop_wakeup, NULL, NULL),
                   CF_EINVAL);
}

/* B111. cf_bridge_create_with_wakeup, wakeup NULL: CF_EINVAL; *out untouched
 */
static void test_B111_bridge_create_with_wakeup_null_fn(void **state) {
  (void)state;
  cf_bridge_t *b = UNTOUCHED;
  assert_int_equal(cf_bridge_create_with_wakeup(&b, NULL, NULL, NULL),
                   CF_EINVAL);
  assert_ptr_equal(b, UNTOUCHED);
}

/* B112. cf_bridge_fd, b NULL: CF_EINVAL */
static void test_B112_bridge_fd_null(void **state) {
  (void)state;
  assert_int_equal(cf_bridge_fd(NULL), CF_EINVAL);
}

/* B113. cf_bridge_fd, a bridge made with a wake-up function: CF_EINVAL */
static void test_B113_bridge_fd_wakeup_bridge(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create_with_wakeup(&b, noop_wakeup, NULL, NULL),
                   0);
  assert_int_equal(cf_bridge_fd(b), CF_EINVAL);
  cf_bridge_destroy(b);
}

/* B114. cf_bridge_dispatch, b NULL: CF_EINVAL */
static void test_B114_bridge_dispatch_null(void **state) {
  (void)state;
  assert_int_equal(cf_bridge_dispatch(NULL), CF_EINVAL);
}

/* B115. cf_bridge_dispatch, nothing queued (a spurious wake-up): 0 */
static void test_B115_bridge_dispatch_empty(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  cf_bridge_destroy(b);
}

/* B116. cf_bridge_then, b NULL: CF_EINVAL; *t untouched */
static void test_B116_bridge_then_null_bridge(void **state) {
  (void)state;
  cf_future_t *f = finished_future(NULL);
  cf_then_t *t = UNTOUCHED;
  assert_int_equal(cf_bridge_then(NULL, f, then_count, NULL, &t), CF_EINVAL);
  assert_ptr_equal(t, UNTOUCHED);
  cf_future_release(f);
  assert_int_equal(atomic_load(&runs), 0);
}

/* B117. cf_bridge_then, f NULL: CF_EINVAL */
static void test_B117_bridge_then_null_future(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  cf_then_t *t = UNTOUCHED;
  assert_int_equal(cf_bridge_then(b, NULL, then_count, NULL, &t), CF_EINVAL);
  assert_ptr_equal(t, UNTOUCHED);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  cf_bridge_destroy(b);
  assert_int_equal(atomic_load(&runs), 0);
}

/* B118. cf_bridge_then, fn NULL: CF_EINVAL */
static void test_B118_bridge_then_null_fn(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  cf_future_t *f = finished_future(NULL);
  assert_int_equal(cf_bridge_then(b, f, NULL, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  cf_bridge_destroy(b);
  cf_future_release(f);
}

/* What a call run by cf_bridge_destroy tries on its (closing) bridge. */
enum { TRY_THEN, TRY_CALL, TRY_RUN_IN_EXECUTOR };

static void try_during_destroy(void *arg) {
  int what = (int)(intptr_t)arg;
  if (what == TRY_THEN) {
    cf_then_t *t = UNTOUCHED;
    r[0] = cf_bridge_then(g_bridge, g_future, then_count, NULL, &t);
    r[1] = t == UNTOUCHED;
  } else if (what == TRY_CALL) {
    r[0] = cf_bridge_call_threadsafe(g_bridge, call_count, NULL);
  } else {
    static int v;
    r[0] = cf_bridge_run_in_executor(g_bridge, g_ex, count_job, &v, count_free,
                                     then_count, NULL, NULL);
  }
}

/* Queue try_during_destroy(what) on a new bridge and destroy it: destroy
 * runs the call while the bridge closes. */
static void destroy_running(int what) {
  assert_int_equal(cf_bridge_create(&g_bridge), 0);
  assert_int_equal(cf_bridge_call_threadsafe(g_bridge, try_during_destroy,
                                             (void *)(intptr_t)what),
                   0);
  cf_bridge_destroy(g_bridge);
  g_bridge = NULL;
}

/* B119. cf_bridge_then, the bridge is being destroyed (called from a callback
 * that destroy runs): CF_ESHUTDOWN; fn never runs, *t untouched
 */
static void test_B119_bridge_then_while_destroyed(void **state) {
  (void)state;
  g_future = pending_future();
  destroy_running(TRY_THEN);
  assert_int_equal(r[0], CF_ESHUTDOWN);
  assert_int_equal(r[1], 1);
  assert_int_equal(cf_future_set_result(g_future, NULL, NULL), 0);
  cf_future_release(g_future);
  assert_int_equal(atomic_load(&runs), 0);
}

/* B120. cf_then_cancel, t NULL: CF_EINVAL */
static void test_B120_then_cancel_null(void **state) {
  (void)state;
  assert_int_equal(cf_then_cancel(NULL), CF_EINVAL);
}

/* B121. cf_then_cancel, called a second time: 0; the callback runs once, with
 * CF_ECANCELLED
 */
static void test_B121_then_cancel_twice(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  cf_future_t *f = pending_future();
  cf_then_t *t = NULL;
  assert_int_equal(cf_bridge_then(b, f, then_count, NULL, &t), 0);
  assert_int_equal(cf_then_cancel(t), 1);
  assert_int_equal(cf_then_cancel(t), 0);
  assert_true(cf_bridge_dispatch(b) >= 1);
  assert_int_equal(atomic_load(&runs), 1);
  assert_int_equal(atomic_load(&rec_a), CF_ECANCELLED);
  cf_bridge_destroy(b);
  cf_future_release(f);
  assert_int_equal(atomic_load(&runs), 1);
}

static void then_cancel_self(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)data;
  r[0] = status;
  r[1] = cf_then_cancel(g_then);
}

/* B122. cf_then_cancel, its callback has started (called from inside it): 0 */
static void test_B122_then_cancel_from_own_callback(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  cf_future_t *f = finished_future(NULL);
  assert_int_equal(cf_bridge_then(b, f, then_cancel_self, NULL, &g_then), 0);
  assert_int_equal(cf_bridge_dispatch(b), 1);
  assert_int_equal(r[0], 0);
  assert_int_equal(r[1], 0);
  cf_bridge_destroy(b);
  cf_future_release(f);
}

/* cf_bridge_run_in_executor with one argument NULL: nothing is submitted
 * and the caller keeps arg. */
static void run_in_executor_null(int which) {
  int v;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  cf_executor_t *ex = make_pool(1);
  cf_then_t *t = UNTOUCHED;
  assert_int_equal(
      cf_bridge_run_in_executor(which == 0 ? NULL : b, which == 1 ? NULL : ex,
                                which == 2 ? NULL : count_job, &v, count_free,
                                which == 3 ? NULL : then_count, NULL, &t),
      CF_EINVAL);
  assert_ptr_equal(t, UNTOUCHED);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  cf_bridge_destroy(b);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B123. cf_bridge_run_in_executor, b NULL: CF_EINVAL; nothing is submitted,
 * the caller keeps arg (arg_dtor not run) [header silent: library behaviour]
 */
static void test_B123_bridge_run_in_executor_null_bridge(void **state) {
  (void)state;
  run_in_executor_null(0);
}

/* B124. cf_bridge_run_in_executor, ex NULL: CF_EINVAL; nothing is submitted,
 * the caller keeps arg
 */
static void test_B124_bridge_run_in_executor_null_pool(void **state) {
  (void)state;
  run_in_executor_null(1);
}

/* B125. cf_bridge_run_in_executor, fn NULL: CF_EINVAL; nothing is submitted,
 * the caller keeps arg
 */
static void test_B125_bridge_run_in_executor_null_fn(void **state) {
  (void)state;
  run_in_executor_null(2);
}

/* B126. cf_bridge_run_in_executor, cb NULL: CF_EINVAL; nothing is submitted,
 * the caller keeps arg (arg_dtor not run) [header silent: library behaviour]
 */
static void test_B126_bridge_run_in_executor_null_cb(void **state) {
  (void)state;
  run_in_executor_null(3);
}

/* B127. cf_bridge_run_in_executor, the pool is shut down: CF_ESHUTDOWN
 * (submit's error): the job never runs, the caller keeps arg, cb never runs
 */
static void test_B127_bridge_run_in_executor_pool_shut_down(void **state) {
  (void)state;
  int v;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  cf_executor_t *ex = make_pool(1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_bridge_run_in_executor(b, ex, count_job, &v, count_free,
                                             then_count, NULL, NULL),
                   CF_ESHUTDOWN);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  cf_bridge_destroy(b);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B128. cf_bridge_run_in_executor, the bridge is being destroyed:
 * CF_ESHUTDOWN before anything is submitted: the job never runs, the
 * caller keeps arg (arg_dtor not run); cb never runs
 */
static void test_B128_bridge_run_in_executor_while_destroyed(void **state) {
  (void)state;
  g_ex = make_pool(1);
  gate_t g;
  cf_future_t *blocker = block_pool(g_ex, &g);
  destroy_running(TRY_RUN_IN_EXECUTOR);
  assert_int_equal(r[0], CF_ESHUTDOWN);
  unblock_pool(blocker, &g);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
  gate_fini(&g);
}

/* B129. cf_bridge_call_threadsafe, b NULL: CF_EINVAL */
static void test_B129_bridge_call_threadsafe_null_bridge(void **state) {
  (void)state;
  assert_int_equal(cf_bridge_call_threadsafe(NULL, call_count, NULL),
                   CF_EINVAL);
  assert_int_equal(atomic_load(&runs), 0);
}

/* B130. cf_bridge_call_threadsafe, fn NULL: CF_EINVAL */
static void test_B130_bridge_call_threadsafe_null_fn(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(cf_bridge_call_threadsafe(b, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  cf_bridge_destroy(b);
}

/* B131. cf_bridge_call_threadsafe, the bridge is being destroyed:
 * CF_ESHUTDOWN; fn never runs
 */
static void test_B131_bridge_call_threadsafe_while_destroyed(void **state) {
  (void)state;
  destroy_running(TRY_CALL);
  assert_int_equal(r[0], CF_ESHUTDOWN);
  assert_int_equal(atomic_load(&runs), 0);
}

/* B132. cf_bridge_destroy, b NULL: no-op */
static void test_B132_bridge_destroy_null(void **state) {
  (void)state;
  cf_bridge_destroy(NULL);
}

/* ================================================================== */
/* loop.h: the loop                                                   */
/* ================================================================== */

/* B133. cf_loop_options_init, opts NULL: no-op [header silent: library
 * behaviour]
 */
static void test_B133_loop_options_init_null(void **state) {
  (void)state;
  cf_loop_options_init(NULL);
}

/* B134. cf_loop_create, out NULL: CF_EINVAL */
static void test_B134_loop_create_null_out(void **state) {
  (void)state;
  cf_loop_options_t opts;
  cf_loop_options_init(&opts);
  assert_int_equal(cf_loop_create(NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_create(NULL, &opts), CF_EINVAL);
}

/* B135. cf_loop_close, loop NULL: no-op, returns 0 */
static void test_B135_loop_close_null(void **state) {
  (void)state;
  assert_int_equal(cf_loop_close(NULL), 0);
}

/* A loop callback that tries, while the loop runs, the call numbered by
 * arg on g_loop, records its result in r[0] and stops the loop. */
enum { TRY_CLOSE, TRY_RUN_FOREVER, TRY_RUN_UNTIL_COMPLETE, TRY_RUN_ONCE };

static void try_while_running(void *arg) {
  switch ((int)(intptr_t)arg) {
  case TRY_CLOSE:
    r[0] = cf_loop_close(g_loop);
    break;
  case TRY_RUN_FOREVER:
    r[0] = cf_loop_run_forever(g_loop);
    break;
  case TRY_RUN_UNTIL_COMPLETE:
    r[0] = cf_loop_run_until_complete(g_loop, g_lf);
    break;
  default:
    r[0] = cf_loop_run_once(g_loop, 0);
    break;
  }
  (void)cf_loop_stop(g_loop);
}

/* Run try_while_running(what) in a fresh loop; then check that the loop
 * still works and close it. */
static void loop_try_while_running(int what) {
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_lfuture_create(loop, &g_lf), 0);
  assert_int_equal(
      cf_loop_call_soon(loop, try_while_running, (void *)(intptr_t)what, NULL),
      0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  /* Nothing happened: the loop still runs callbacks. */
  assert_int_equal(cf_loop_call_soon(loop, rec_cb, (void *)7, NULL), 0);
  assert_int_equal(cf_loop_call_soon(loop, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(nev, 1);
  assert_int_equal(evlog[0], 7);
  cf_lfuture_release(g_lf);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B136. cf_loop_close, while the loop runs (from one of its callbacks):
 * CF_EINVALID_STATE; nothing happens (the loop keeps working; a later close
 * returns 0)
 */
static void test_B136_loop_close_while_running(void **state) {
  (void)state;
  loop_try_while_running(TRY_CLOSE);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* Task bodies that try a loop call from inside a task. */
static int try_in_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  switch ((int)(intptr_t)arg) {
  case TRY_CLOSE:
    r[0] = cf_loop_close(g_loop);
    break;
  case TRY_RUN_FOREVER:
    r[0] = cf_loop_run_forever(g_loop);
    break;
  case TRY_RUN_UNTIL_COMPLETE:
    r[0] = cf_loop_run_until_complete(g_loop, self);
    break;
  default:
    r[0] = cf_loop_run_once(g_loop, 0);
    break;
  }
  return 0;
}

/* B137. cf_loop_close, from a task: CF_EINVALID_STATE; nothing happens */
static void test_B137_loop_close_from_task(void **state) {
  (void)state;
  assert_int_equal(run_task(try_in_task, (void *)(intptr_t)TRY_CLOSE), 0);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* B138. cf_loop_time, loop NULL: the CLOCK_MONOTONIC time anyway (the argument
 * is not used) [header silent: library behaviour]
 */
static void test_B138_loop_time_null(void **state) {
  (void)state;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  double t = cf_loop_time(NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  assert_true(t >= (double)a.tv_sec + (double)a.tv_nsec / 1e9 - 1e-6);
  assert_true(t <= (double)b.tv_sec + (double)b.tv_nsec / 1e9 + 1e-6);
}

/* B139. cf_loop_call_soon, loop NULL: CF_EINVAL */
static void test_B139_loop_call_soon_null_loop(void **state) {
  (void)state;
  cf_handle_t *h = UNTOUCHED;
  assert_int_equal(cf_loop_call_soon(NULL, rec_cb, NULL, &h), CF_EINVAL);
  assert_ptr_equal(h, UNTOUCHED);
}

/* B140. cf_loop_call_soon, fn NULL: CF_EINVAL */
static void test_B140_loop_call_soon_null_fn(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_handle_t *h = UNTOUCHED;
  assert_int_equal(cf_loop_call_soon(loop, NULL, NULL, &h), CF_EINVAL);
  assert_ptr_equal(h, UNTOUCHED);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B141. cf_loop_call_later, loop NULL: CF_EINVAL */
static void test_B141_loop_call_later_null_loop(void **state) {
  (void)state;
  assert_int_equal(cf_loop_call_later(NULL, 1.0, rec_cb, NULL, NULL),
                   CF_EINVAL);
}

/* B142. cf_loop_call_later, fn NULL: CF_EINVAL */
static void test_B142_loop_call_later_null_fn(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_later(loop, 1.0, NULL, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B143. cf_loop_call_later, NaN delay: CF_EINVAL; nothing is scheduled */
static void test_B143_loop_call_later_nan_delay(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_handle_t *h = UNTOUCHED;
  assert_int_equal(cf_loop_call_later(loop, NAN, rec_cb, (void *)1, &h),
                   CF_EINVAL);
  assert_ptr_equal(h, UNTOUCHED);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(nev, 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* Schedule A with call_later(delay) (or call_at(when)) before B with
 * call_soon, then a stopper after both: B runs first, then A. */
static void soon_before_timer(bool at, double t) {
  cf_loop_t *loop = make_loop();
  if (at)
    assert_int_equal(cf_loop_call_at(loop, t, rec_cb, (void *)1, NULL), 0);
  else
    assert_int_equal(cf_loop_call_later(loop, t, rec_cb, (void *)1, NULL), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec_cb, (void *)2, NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 0, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(nev, 2);
  assert_int_equal(evlog[0], 2);
  assert_int_equal(evlog[1], 1);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B144. cf_loop_call_later, delay 0: as soon as possible, after the call_soon
 * callbacks: runs in the next iteration, after those scheduled before it
 */
static void test_B144_loop_call_later_zero_delay(void **state) {
  (void)state;
  soon_before_timer(false, 0);
}

/* B145. cf_loop_call_later, negative delay: as delay 0 */
static void test_B145_loop_call_later_negative_delay(void **state) {
  (void)state;
  soon_before_timer(false, -5.0);
}

/* B146. cf_loop_call_at, loop NULL: CF_EINVAL */
static void test_B146_loop_call_at_null_loop(void **state) {
  (void)state;
  assert_int_equal(cf_loop_call_at(NULL, 1.0, rec_cb, NULL, NULL), CF_EINVAL);
}

/* B147. cf_loop_call_at, fn NULL: CF_EINVAL */
static void test_B147_loop_call_at_null_fn(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_at(loop, cf_loop_time(loop), NULL, NULL, NULL),
                   CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B148. cf_loop_call_at, NaN when: CF_EINVAL; nothing is scheduled */
static void test_B148_loop_call_at_nan_when(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_handle_t *h = UNTOUCHED;
  assert_int_equal(cf_loop_call_at(loop, NAN, rec_cb, (void *)1, &h),
                   CF_EINVAL);
  assert_ptr_equal(h, UNTOUCHED);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(nev, 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B149. cf_loop_call_at, when 0 (in the past): runs as soon as possible, after
 * the call_soon callbacks
 */
static void test_B149_loop_call_at_zero_when(void **state) {
  (void)state;
  soon_before_timer(true, 0);
}

/* B150. cf_loop_call_at, negative when (in the past): as when 0 */
static void test_B150_loop_call_at_negative_when(void **state) {
  (void)state;
  soon_before_timer(true, -1e9);
}

/* B151. cf_loop_call_soon_threadsafe, loop NULL: CF_EINVAL */
static void test_B151_loop_call_soon_threadsafe_null_loop(void **state) {
  (void)state;
  assert_int_equal(cf_loop_call_soon_threadsafe(NULL, rec_cb, NULL), CF_EINVAL);
}

/* B152. cf_loop_call_soon_threadsafe, fn NULL: CF_EINVAL */
static void test_B152_loop_call_soon_threadsafe_null_fn(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_soon_threadsafe(loop, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* A task that sleeps until cancelled, then tries call(s) on its closing
 * loop (g_loop) from its clean-up. */
enum { TRY_THREADSAFE, TRY_TASK_CREATE };

static int noop_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  rec(99);
  return 0;
}

static int cleanup_tries(cf_lfuture_t *self, void *arg) {
  (void)self;
  r[0] = cf_sleep(LONG_S);
  if ((int)(intptr_t)arg == TRY_THREADSAFE) {
    r[1] = cf_loop_call_soon_threadsafe(g_loop, rec_cb, (void *)5);
  } else {
    cf_lfuture_t *t = UNTOUCHED;
    r[1] = cf_task_create(g_loop, noop_body, NULL, &t);
    r[2] = t == UNTOUCHED;
  }
  return CF_ECANCELLED;
}

/* Start a cleanup_tries(what) task, let it reach its sleep, then close
 * the loop: the close cancels it, and its clean-up runs inside close. */
static void close_with_cleanup(int what) {
  cf_loop_t *loop = make_loop();
  assert_int_equal(
      cf_task_create(loop, cleanup_tries, (void *)(intptr_t)what, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(r[0], UNSET); /* suspended in its sleep */
  assert_int_equal(cf_loop_close(loop), 0);
  g_loop = NULL;
  assert_int_equal(r[0], CF_ECANCELLED);
}

/* B153. cf_loop_call_soon_threadsafe, the loop is closing (called from a
 * task's clean-up inside cf_loop_close): CF_ESHUTDOWN; fn never runs [header
 * contract; the library differs]
 */
static void test_B153_loop_call_soon_threadsafe_while_closing(void **state) {
  (void)state;
  close_with_cleanup(TRY_THREADSAFE);
  assert_int_equal(nev, 0); /* fn never ran */
  assert_int_equal(r[1], CF_ESHUTDOWN);
}

/* B154. cf_handle_cancel, h NULL: CF_EINVAL */
static void test_B154_handle_cancel_null(void **state) {
  (void)state;
  assert_int_equal(cf_handle_cancel(NULL), CF_EINVAL);
}

/* B155. cf_handle_cancel, a second time: 0; the callback never runs */
static void test_B155_handle_cancel_twice(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_handle_t *soon = NULL, *later = NULL;
  assert_int_equal(cf_loop_call_soon(loop, rec_cb, (void *)1, &soon), 0);
  assert_int_equal(cf_loop_call_later(loop, 0, rec_cb, (void *)2, &later), 0);
  assert_int_equal(cf_handle_cancel(soon), 1);
  assert_int_equal(cf_handle_cancel(soon), 0);
  assert_int_equal(cf_handle_cancel(later), 1);
  assert_int_equal(cf_handle_cancel(later), 0);
  assert_int_equal(cf_loop_call_later(loop, 0, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(nev, 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

static void cancel_own_handle(void *arg) {
  (void)arg;
  r[0] = cf_handle_cancel(g_handle);
  (void)cf_loop_stop(g_loop);
}

/* B156. cf_handle_cancel, its callback already runs (called from inside it): 0
 */
static void test_B156_handle_cancel_running(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_soon(loop, cancel_own_handle, NULL, &g_handle),
                   0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(r[0], 0);
  assert_int_equal(
      cf_loop_call_later(loop, 0, cancel_own_handle, NULL, &g_handle), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(r[0], 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* add/remove reader/writer on a fresh loop. */
static int fd_call(int which, cf_loop_t *loop, int fd, cf_loop_fn fn) {
  switch (which) {
  case 0:
    return cf_loop_add_reader(loop, fd, fn, NULL);
  case 1:
    return cf_loop_add_writer(loop, fd, fn, NULL);
  case 2:
    return cf_loop_remove_reader(loop, fd);
  default:
    return cf_loop_remove_writer(loop, fd);
  }
}

static void fd_null_loop(int which) {
  assert_int_equal(fd_call(which, NULL, 0, rec_cb), CF_EINVAL);
}

static void fd_negative(int which) {
  cf_loop_t *loop = make_loop();
  assert_int_equal(fd_call(which, loop, -1, rec_cb), CF_EINVAL);
  assert_int_equal(fd_call(which, loop, INT_MIN, rec_cb), CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
}

static void fd_null_fn(int which) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  cf_loop_t *loop = make_loop();
  assert_int_equal(fd_call(which, loop, fds[which], NULL), CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
  close(fds[0]);
  close(fds[1]);
}

static void fd_not_open(int which) {
  cf_loop_t *loop = make_loop(); /* first: its own fds are not reused */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  close(fds[0]);
  close(fds[1]);
  assert_int_equal(fd_call(which, loop, fds[which], rec_cb), CF_ESYSTEM);
  assert_int_equal(fd_call(which + 2, loop, fds[which], NULL), 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

static void fd_not_watched(int which) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  cf_loop_t *loop = make_loop();
  assert_int_equal(fd_call(which, loop, fds[0], NULL), 0); /* never added */
  assert_int_equal(fd_call(which, loop, 100000, NULL), 0); /* beyond table */
  /* watched the other way only */
  int other_add = which == 2 ? 1 : 0;
  assert_int_equal(fd_call(other_add, loop, fds[1], rec_cb), 0);
  assert_int_equal(fd_call(which, loop, fds[1], NULL), 0);
  assert_int_equal(fd_call(other_add + 2, loop, fds[1], NULL), 1);
  assert_int_equal(cf_loop_close(loop), 0);
  close(fds[0]);
  close(fds[1]);
}

/* B157. cf_loop_add_reader, loop NULL: CF_EINVAL */
static void test_B157_loop_add_reader_null_loop(void **state) {
  (void)state;
  fd_null_loop(0);
}

/* B158. cf_loop_add_reader, negative fd: CF_EINVAL */
static void test_B158_loop_add_reader_negative_fd(void **state) {
  (void)state;
  fd_negative(0);
}

/* B159. cf_loop_add_reader, fn NULL: CF_EINVAL */
static void test_B159_loop_add_reader_null_fn(void **state) {
  (void)state;
  fd_null_fn(0);
}

/* B160. cf_loop_add_reader, an fd that is not open: CF_ESYSTEM (the fd cannot
 * be watched); nothing is registered
 */
static void test_B160_loop_add_reader_closed_fd(void **state) {
  (void)state;
#if defined(__linux__)
  fd_not_open(0);
#else
  skip(); /* the poll back end learns of a bad fd only when it polls */
#endif
}

/* B161. cf_loop_add_reader, an fd that cannot be polled (a regular file):
 * CF_ESYSTEM
 */
static void test_B161_loop_add_reader_regular_file(void **state) {
  (void)state;
#if defined(__linux__)
  FILE *file = tmpfile();
  assert_non_null(file);
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_add_reader(loop, fileno(file), rec_cb, NULL),
                   CF_ESYSTEM);
  assert_int_equal(cf_loop_remove_reader(loop, fileno(file)), 0);
  assert_int_equal(cf_loop_close(loop), 0);
  fclose(file);
#else
  skip(); /* poll(2) accepts regular files */
#endif
}

/* B162. cf_loop_remove_reader, loop NULL: CF_EINVAL */
static void test_B162_loop_remove_reader_null_loop(void **state) {
  (void)state;
  fd_null_loop(2);
}

/* B163. cf_loop_remove_reader, negative fd: CF_EINVAL */
static void test_B163_loop_remove_reader_negative_fd(void **state) {
  (void)state;
  fd_negative(2);
}

/* B164. cf_loop_remove_reader, an fd with no reader (never added, beyond any
 * added, or watched for writing only): 0
 */
static void test_B164_loop_remove_reader_not_watched(void **state) {
  (void)state;
  fd_not_watched(2);
}

/* B165. cf_loop_add_writer, loop NULL: CF_EINVAL */
static void test_B165_loop_add_writer_null_loop(void **state) {
  (void)state;
  fd_null_loop(1);
}

/* B166. cf_loop_add_writer, negative fd: CF_EINVAL */
static void test_B166_loop_add_writer_negative_fd(void **state) {
  (void)state;
  fd_negative(1);
}

/* B167. cf_loop_add_writer, fn NULL: CF_EINVAL */
static void test_B167_loop_add_writer_null_fn(void **state) {
  (void)state;
  fd_null_fn(1);
}

/* B168. cf_loop_add_writer, an fd that is not open: CF_ESYSTEM; nothing is
 * registered
 */
static void test_B168_loop_add_writer_closed_fd(void **state) {
  (void)state;
#if defined(__linux__)
  fd_not_open(1);
#else
  skip();
#endif
}

/* B169. cf_loop_remove_writer, loop NULL: CF_EINVAL */
static void test_B169_loop_remove_writer_null_loop(void **state) {
  (void)state;
  fd_null_loop(3);
}

/* B170. cf_loop_remove_writer, negative fd: CF_EINVAL */
static void test_B170_loop_remove_writer_negative_fd(void **state) {
  (void)state;
  fd_negative(3);
}

/* B171. cf_loop_remove_writer, an fd with no writer (never added, beyond any
 * added, or watched for reading only): 0
 */
static void test_B171_loop_remove_writer_not_watched(void **state) {
  (void)state;
  fd_not_watched(3);
}

/* B172. cf_loop_run_forever, loop NULL: CF_EINVAL [header silent: library
 * behaviour]
 */
static void test_B172_loop_run_forever_null(void **state) {
  (void)state;
  assert_int_equal(cf_loop_run_forever(NULL), CF_EINVAL);
}

/* B173. cf_loop_run_forever, the loop already runs (from one of its
 * callbacks): CF_EINVALID_STATE; the outer run goes on
 */
static void test_B173_loop_run_forever_while_running(void **state) {
  (void)state;
  loop_try_while_running(TRY_RUN_FOREVER);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* B174. cf_loop_run_forever, from a task: CF_EINVALID_STATE */
static void test_B174_loop_run_forever_from_task(void **state) {
  (void)state;
  assert_int_equal(run_task(try_in_task, (void *)(intptr_t)TRY_RUN_FOREVER), 0);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* B175. cf_loop_stop, loop NULL: CF_EINVAL [header silent: library behaviour]
 */
static void test_B175_loop_stop_null(void **state) {
  (void)state;
  assert_int_equal(cf_loop_stop(NULL), CF_EINVAL);
}

static void schedule_next(void *arg) {
  rec(1);
  if (cf_loop_call_soon(arg, rec_cb, (void *)2, NULL) != 0)
    rec(-1);
}

/* B176. cf_loop_stop, before the loop runs: the next cf_loop_run_forever runs
 * one iteration (the callbacks ready then, not those they schedule) and
 * returns 0
 */
static void test_B176_loop_stop_before_run(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_soon(loop, schedule_next, loop, NULL), 0);
  assert_int_equal(cf_loop_stop(loop), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(nev, 1);
  assert_int_equal(evlog[0], 1);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(nev, 2);
  assert_int_equal(evlog[1], 2);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B177. cf_loop_run_until_complete, loop NULL: CF_EINVAL */
static void test_B177_loop_run_until_complete_null_loop(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_loop_run_until_complete(NULL, f), CF_EINVAL);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B178. cf_loop_run_until_complete, f NULL: CF_EINVAL */
static void test_B178_loop_run_until_complete_null_future(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_run_until_complete(loop, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B179. cf_loop_run_until_complete, f belongs to another loop:
 * CF_EINVALID_STATE; neither loop runs
 */
static void test_B179_loop_run_until_complete_other_loop(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_loop_t *other = NULL;
  assert_int_equal(cf_loop_create(&other, NULL), 0);
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(other, &f), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec_cb, (void *)1, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, f), CF_EINVALID_STATE);
  assert_int_equal(nev, 0);
  assert_int_equal(cf_lfuture_done(f), 0);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(other), 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B180. cf_loop_run_until_complete, the loop already runs (from one of its
 * callbacks): CF_EINVALID_STATE
 */
static void test_B180_loop_run_until_complete_while_running(void **state) {
  (void)state;
  loop_try_while_running(TRY_RUN_UNTIL_COMPLETE);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* B181. cf_loop_run_until_complete, from a task: CF_EINVALID_STATE */
static void test_B181_loop_run_until_complete_from_task(void **state) {
  (void)state;
  assert_int_equal(
      run_task(try_in_task, (void *)(intptr_t)TRY_RUN_UNTIL_COMPLETE), 0);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* B182. cf_loop_fd, loop NULL: CF_EINVAL [header silent: library behaviour] */
static void test_B182_loop_fd_null(void **state) {
  (void)state;
  assert_int_equal(cf_loop_fd(NULL), CF_EINVAL);
}

/* B183. cf_loop_timeout, loop NULL: CF_FOREVER [header silent: library
 * behaviour]
 */
static void test_B183_loop_timeout_null(void **state) {
  (void)state;
  assert_true(isinf(cf_loop_timeout(NULL)) && cf_loop_timeout(NULL) > 0);
}

/* B184. cf_loop_run_once, loop NULL: CF_EINVAL [header silent: library
 * behaviour]
 */
static void test_B184_loop_run_once_null(void **state) {
  (void)state;
  assert_int_equal(cf_loop_run_once(NULL, 0), CF_EINVAL);
}

/* B185. cf_loop_run_once, NaN timeout: CF_EINVAL; nothing runs */
static void test_B185_loop_run_once_nan_timeout(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_soon(loop, rec_cb, (void *)1, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, NAN), CF_EINVAL);
  assert_int_equal(nev, 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* One iteration with nothing to wait for but a far timer: it must not
 * block (a blocking run would wait an hour: the per-test time limit
 * reports it). */
static void run_once_polls(double timeout) {
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_later(loop, 3600.0, rec_cb, (void *)9, NULL),
                   0);
  assert_int_equal(cf_loop_call_soon(loop, rec_cb, (void *)1, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, timeout), 0);
  assert_int_equal(nev, 1);
  assert_int_equal(cf_loop_run_once(loop, timeout), 0); /* nothing ready */
  assert_int_equal(nev, 1);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B186. cf_loop_run_once, timeout 0: one iteration that does not block: runs
 * what is ready, returns 0
 */
static void test_B186_loop_run_once_zero_timeout(void **state) {
  (void)state;
  run_once_polls(0);
}

/* B187. cf_loop_run_once, negative timeout: as timeout 0 */
static void test_B187_loop_run_once_negative_timeout(void **state) {
  (void)state;
  run_once_polls(-1.0);
}

/* B188. cf_loop_run_once, the loop already runs (from one of its callbacks):
 * CF_EINVALID_STATE [header silent: library behaviour]
 */
static void test_B188_loop_run_once_while_running(void **state) {
  (void)state;
  loop_try_while_running(TRY_RUN_ONCE);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* B189. cf_loop_run_once, from a task: CF_EINVALID_STATE [header silent:
 * library behaviour]
 */
static void test_B189_loop_run_once_from_task(void **state) {
  (void)state;
  assert_int_equal(run_task(try_in_task, (void *)(intptr_t)TRY_RUN_ONCE), 0);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* ================================================================== */
/* loop.h: loop futures                                               */
/* ================================================================== */

/* B190. cf_lfuture_create, loop NULL: CF_EINVAL; *out untouched */
static void test_B190_lfuture_create_null_loop(void **state) {
  (void)state;
  cf_lfuture_t *f = UNTOUCHED;
  assert_int_equal(cf_lfuture_create(NULL, &f), CF_EINVAL);
  assert_ptr_equal(f, UNTOUCHED);
}

/* B191. cf_lfuture_create, out NULL: CF_EINVAL */
static void test_B191_lfuture_create_null_out(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_lfuture_create(loop, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B192. cf_lfuture_retain, f NULL: returns NULL (no-op) */
static void test_B192_lfuture_retain_null(void **state) {
  (void)state;
  assert_null(cf_lfuture_retain(NULL));
}

/* B193. cf_lfuture_release, f NULL: no-op */
static void test_B193_lfuture_release_null(void **state) {
  (void)state;
  cf_lfuture_release(NULL);
}

/* B194. cf_lfuture_cancel, f NULL: CF_EINVAL */
static void test_B194_lfuture_cancel_null(void **state) {
  (void)state;
  assert_int_equal(cf_lfuture_cancel(NULL), CF_EINVAL);
}

/* B195. cf_lfuture_cancel, a done future (finished or cancelled): 0; its
 * outcome stands
 */
static void test_B195_lfuture_cancel_done(void **state) {
  (void)state;
  int v;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL, *c = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_create(loop, &c), 0);
  assert_int_equal(cf_lfuture_set_result(f, &v, NULL), 0);
  assert_int_equal(cf_lfuture_cancel(c), 1);
  assert_int_equal(cf_lfuture_cancel(f), 0);
  assert_int_equal(cf_lfuture_cancel(c), 0);
  void *value = NULL;
  assert_int_equal(cf_lfuture_result(f, &value), 0);
  assert_ptr_equal(value, &v);
  assert_int_equal(cf_lfuture_cancelled(c), 1);
  cf_lfuture_release(f);
  cf_lfuture_release(c);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B196. cf_lfuture_done, f NULL: 0 */
static void test_B196_lfuture_done_null(void **state) {
  (void)state;
  assert_int_equal(cf_lfuture_done(NULL), 0);
}

/* B197. cf_lfuture_cancelled, f NULL: 0 */
static void test_B197_lfuture_cancelled_null(void **state) {
  (void)state;
  assert_int_equal(cf_lfuture_cancelled(NULL), 0);
}

/* B198. cf_lfuture_result, f NULL: CF_EINVAL */
static void test_B198_lfuture_result_null(void **state) {
  (void)state;
  void *value = UNTOUCHED;
  assert_int_equal(cf_lfuture_result(NULL, &value), CF_EINVAL);
  assert_ptr_equal(value, UNTOUCHED);
}

/* B199. cf_lfuture_result, a pending future: CF_EINVALID_STATE (never blocks)
 */
static void test_B199_lfuture_result_pending(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  void *value = UNTOUCHED;
  assert_int_equal(cf_lfuture_result(f, &value), CF_EINVALID_STATE);
  assert_ptr_equal(value, UNTOUCHED);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B200. cf_lfuture_result, a cancelled future: CF_ECANCELLED */
static void test_B200_lfuture_result_cancelled(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_cancel(f), 1);
  assert_int_equal(cf_lfuture_result(f, NULL), CF_ECANCELLED);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B201. cf_lfuture_result, a future of a closed loop (pending at the close):
 * CF_ECANCELLED; its done callbacks never ran
 */
static void test_B201_lfuture_result_loop_closed(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_add_done_callback(f, lf_rec_cb, (void *)4), 0);
  assert_int_equal(cf_loop_close(loop), 0);
  assert_int_equal(cf_lfuture_done(f), 1);
  assert_int_equal(cf_lfuture_cancelled(f), 1);
  assert_int_equal(cf_lfuture_result(f, NULL), CF_ECANCELLED);
  assert_int_equal(nev, 0);
  cf_lfuture_release(f);
}

/* B202. cf_lfuture_exception, f NULL: CF_EINVAL */
static void test_B202_lfuture_exception_null(void **state) {
  (void)state;
  int code = UNSET;
  assert_int_equal(cf_lfuture_exception(NULL, &code, NULL), CF_EINVAL);
  assert_int_equal(code, UNSET);
}

/* B203. cf_lfuture_exception, a pending future: CF_EINVALID_STATE */
static void test_B203_lfuture_exception_pending(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  int code = UNSET;
  assert_int_equal(cf_lfuture_exception(f, &code, NULL), CF_EINVALID_STATE);
  assert_int_equal(code, UNSET);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B204. cf_lfuture_exception, a cancelled future: CF_ECANCELLED */
static void test_B204_lfuture_exception_cancelled(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_cancel(f), 1);
  int code = UNSET;
  assert_int_equal(cf_lfuture_exception(f, &code, NULL), CF_ECANCELLED);
  assert_int_equal(code, UNSET);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B205. cf_lfuture_set_result, f NULL: CF_EINVAL; dtor does not run */
static void test_B205_lfuture_set_result_null(void **state) {
  (void)state;
  int v;
  assert_int_equal(cf_lfuture_set_result(NULL, &v, count_free), CF_EINVAL);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B206. cf_lfuture_set_result, a done future (called twice):
 * CF_EINVALID_STATE; the first value stays; the second stays the caller's
 * (dtor not run)
 */
static void test_B206_lfuture_set_result_done(void **state) {
  (void)state;
  int a, b;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL, *c = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_create(loop, &c), 0);
  assert_int_equal(cf_lfuture_set_result(f, &a, count_free), 0);
  assert_int_equal(cf_lfuture_set_result(f, &b, count_free), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_cancel(c), 1);
  assert_int_equal(cf_lfuture_set_result(c, &b, count_free), CF_EINVALID_STATE);
  assert_int_equal(atomic_load(&counter_hits), 0);
  void *value = NULL;
  assert_int_equal(cf_lfuture_result(f, &value), 0);
  assert_ptr_equal(value, &a);
  cf_lfuture_release(f);
  cf_lfuture_release(c);
  assert_int_equal(cf_loop_close(loop), 0);
  assert_int_equal(atomic_load(&counter_hits), 1); /* a's, once */
}

static int return_zero_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

/* B207. cf_lfuture_set_result, a task: CF_EINVALID_STATE; the task runs and
 * ends as its body says
 */
static void test_B207_lfuture_set_result_task(void **state) {
  (void)state;
  int v;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *t = NULL;
  assert_int_equal(cf_task_create(loop, return_zero_body, NULL, &t), 0);
  assert_int_equal(cf_lfuture_set_result(t, &v, count_free), CF_EINVALID_STATE);
  void *value = UNTOUCHED;
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(cf_lfuture_result(t, &value), 0);
  assert_null(value);
  cf_lfuture_release(t);
  assert_int_equal(cf_loop_close(loop), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B208. cf_lfuture_set_exception, f NULL: CF_EINVAL */
static void test_B208_lfuture_set_exception_null(void **state) {
  (void)state;
  assert_int_equal(cf_lfuture_set_exception(NULL, 1, "x"), CF_EINVAL);
}

/* B209. cf_lfuture_set_exception, code 0: CF_EINVAL; f stays pending */
static void test_B209_lfuture_set_exception_zero_code(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_set_exception(f, 0, "x"), CF_EINVAL);
  assert_int_equal(cf_lfuture_done(f), 0);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B210. cf_lfuture_set_exception, a done future: CF_EINVALID_STATE; the first
 * outcome stays
 */
static void test_B210_lfuture_set_exception_done(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_set_exception(f, 5, "first"), 0);
  assert_int_equal(cf_lfuture_set_exception(f, 6, "second"), CF_EINVALID_STATE);
  int code = 0;
  const char *message = NULL;
  assert_int_equal(cf_lfuture_exception(f, &code, &message), 0);
  assert_int_equal(code, 5);
  assert_string_equal(message, "first");
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B211. cf_lfuture_set_exception, a task: CF_EINVALID_STATE */
static void test_B211_lfuture_set_exception_task(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *t = NULL;
  assert_int_equal(cf_task_create(loop, return_zero_body, NULL, &t), 0);
  assert_int_equal(cf_lfuture_set_exception(t, 5, "x"), CF_EINVALID_STATE);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  cf_lfuture_release(t);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B212. cf_lfuture_add_done_callback, f NULL: CF_EINVAL */
static void test_B212_lfuture_add_done_callback_null_future(void **state) {
  (void)state;
  assert_int_equal(cf_lfuture_add_done_callback(NULL, lf_rec_cb, NULL),
                   CF_EINVAL);
}

/* B213. cf_lfuture_add_done_callback, fn NULL: CF_EINVAL */
static void test_B213_lfuture_add_done_callback_null_fn(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_add_done_callback(f, NULL, NULL), CF_EINVAL);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B214. cf_lfuture_add_done_callback, f already done: 0; fn is scheduled with
 * call_soon (it does not run inside the call)
 */
static void test_B214_lfuture_add_done_callback_done(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_set_result(f, NULL, NULL), 0);
  assert_int_equal(cf_lfuture_add_done_callback(f, lf_rec_cb, (void *)3), 0);
  assert_int_equal(nev, 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(nev, 1);
  assert_int_equal(evlog[0], 3);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B215. cf_lfuture_wrap, loop NULL: CF_EINVAL */
static void test_B215_lfuture_wrap_null_loop(void **state) {
  (void)state;
  cf_future_t *pf = finished_future(NULL);
  cf_lfuture_t *f = UNTOUCHED;
  assert_int_equal(cf_lfuture_wrap(NULL, pf, &f), CF_EINVAL);
  assert_ptr_equal(f, UNTOUCHED);
  cf_future_release(pf);
}

/* B216. cf_lfuture_wrap, pf NULL: CF_EINVAL */
static void test_B216_lfuture_wrap_null_future(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = UNTOUCHED;
  assert_int_equal(cf_lfuture_wrap(loop, NULL, &f), CF_EINVAL);
  assert_ptr_equal(f, UNTOUCHED);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B217. cf_lfuture_wrap, out NULL: CF_EINVAL */
static void test_B217_lfuture_wrap_null_out(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_future_t *pf = finished_future(NULL);
  assert_int_equal(cf_lfuture_wrap(loop, pf, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_close(loop), 0);
  cf_future_release(pf);
}

/* B218. cf_lfuture_source, f NULL: NULL */
static void test_B218_lfuture_source_null(void **state) {
  (void)state;
  assert_null(cf_lfuture_source(NULL));
}

/* B219. cf_lfuture_source, a loop future that is not a wrap (plain, task):
 * NULL
 */
static void test_B219_lfuture_source_not_wrap(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL, *t = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_task_create(loop, return_zero_body, NULL, &t), 0);
  assert_null(cf_lfuture_source(f));
  assert_null(cf_lfuture_source(t));
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  cf_lfuture_release(f);
  cf_lfuture_release(t);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* ================================================================== */
/* loop.h: tasks                                                      */
/* ================================================================== */

/* B220. cf_task_create, loop NULL: CF_EINVAL; *out untouched */
static void test_B220_task_create_null_loop(void **state) {
  (void)state;
  cf_lfuture_t *t = UNTOUCHED;
  assert_int_equal(cf_task_create(NULL, return_zero_body, NULL, &t), CF_EINVAL);
  assert_ptr_equal(t, UNTOUCHED);
}

/* B221. cf_task_create, fn NULL: CF_EINVAL; *out untouched */
static void test_B221_task_create_null_fn(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *t = UNTOUCHED;
  assert_int_equal(cf_task_create(loop, NULL, NULL, &t), CF_EINVAL);
  assert_ptr_equal(t, UNTOUCHED);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B222. cf_task_create, cf_loop_close has started (called from a task's clean-
 * up inside it): CF_ESHUTDOWN; *out untouched, the body never runs
 */
static void test_B222_task_create_while_closing(void **state) {
  (void)state;
  close_with_cleanup(TRY_TASK_CREATE);
  assert_int_equal(r[1], CF_ESHUTDOWN);
  assert_int_equal(r[2], 1);
  assert_int_equal(nev, 0);
}

/* B223. cf_task_create, out NULL: allowed: 0; the loop holds the task until it
 * ends
 */
static void test_B223_task_create_null_out(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_task_create(loop, noop_body, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(nev, 1);
  assert_int_equal(evlog[0], 99);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B224. cf_task_return, self NULL, or a loop future that is not a task: no-op;
 * dtor does not run [header silent: library behaviour]
 */
static void test_B224_task_return_not_task(void **state) {
  (void)state;
  int v;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  cf_task_return(NULL, &v, count_free);
  cf_task_return(f, &v, count_free);
  assert_int_equal(cf_lfuture_done(f), 0);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B225. cf_task_fail, self NULL, or a loop future that is not a task: returns
 * code; nothing is recorded [header silent: library behaviour]
 */
static void test_B225_task_fail_not_task(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_task_fail(NULL, 42, "bad %d", 1), 42);
  assert_int_equal(cf_task_fail(f, 43, "bad %d", 2), 43);
  assert_int_equal(cf_lfuture_done(f), 0);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B226. cf_task_cancelling, t NULL: CF_EINVAL */
static void test_B226_task_cancelling_null(void **state) {
  (void)state;
  assert_int_equal(cf_task_cancelling(NULL), CF_EINVAL);
}

/* B227. cf_task_cancelling, a loop future that is not a task: CF_EINVAL */
static void test_B227_task_cancelling_not_task(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_task_cancelling(f), CF_EINVAL);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B228. cf_task_uncancel, t NULL: CF_EINVAL */
static void test_B228_task_uncancel_null(void **state) {
  (void)state;
  assert_int_equal(cf_task_uncancel(NULL), CF_EINVAL);
}

/* B229. cf_task_uncancel, a loop future that is not a task: CF_EINVAL */
static void test_B229_task_uncancel_not_task(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_task_uncancel(f), CF_EINVAL);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B230. cf_task_uncancel, no cancellation pending (count 0): 0; the count
 * stays 0
 */
static void test_B230_task_uncancel_at_zero(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *t = NULL;
  assert_int_equal(cf_task_create(loop, return_zero_body, NULL, &t), 0);
  assert_int_equal(cf_task_uncancel(t), 0);
  assert_int_equal(cf_task_uncancel(t), 0);
  assert_int_equal(cf_task_cancelling(t), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  cf_lfuture_release(t);
  assert_int_equal(cf_loop_close(loop), 0);
}

static void current_task_cb(void *arg) {
  (void)arg;
  r[0] = cf_current_task() == NULL;
}

static int current_task_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  atomic_store(&rec_a, cf_current_task() == NULL);
  return 0;
}

/* B231. cf_current_task, outside a task (on the loop thread, in a callback, on
 * another thread): NULL
 */
static void test_B231_current_task_outside(void **state) {
  (void)state;
  assert_null(cf_current_task());
  cf_loop_t *loop = make_loop();
  assert_int_equal(cf_loop_call_soon(loop, current_task_cb, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(r[0], 1);
  assert_int_equal(cf_loop_close(loop), 0);
  cf_executor_t *ex = make_pool(1);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(ex, current_task_job, NULL, NULL, &f), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  assert_int_equal(atomic_load(&rec_a), 1);
  cf_future_release(f);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* ================================================================== */
/* loop.h: awaiting                                                   */
/* ================================================================== */

/* An await-family call made outside any task, on the loop thread, from a
 * loop callback: the what-th call of the list. */
enum {
  OUT_AWAIT,
  OUT_AWAIT_FUTURE,
  OUT_SLEEP,
  OUT_WAIT_FOR,
  OUT_TIMEOUT_ENTER,
  OUT_RUN_IN_EXECUTOR
};

static int await_outside(int what, cf_lfuture_t *lf, cf_future_t *pf) {
  void *value = UNTOUCHED;
  int rc;
  switch (what) {
  case OUT_AWAIT:
    rc = cf_await(lf, &value);
    break;
  case OUT_AWAIT_FUTURE:
    rc = cf_await_future(pf, &value);
    break;
  case OUT_SLEEP:
    rc = cf_sleep(0);
    break;
  case OUT_WAIT_FOR:
    rc = cf_wait_for(lf, 1.0, &value);
    break;
  case OUT_TIMEOUT_ENTER: {
    cf_timeout_t *scope = UNTOUCHED;
    rc = cf_timeout_enter(1.0, &scope);
    if (scope != UNTOUCHED)
      rc = UNSET;
    break;
  }
  default: {
    int v;
    cf_future_t *done = UNTOUCHED;
    rc = cf_run_in_executor(g_ex, count_job, &v, count_free, &done);
    if (done != UNTOUCHED)
      rc = UNSET;
    break;
  }
  }
  if (value != UNTOUCHED)
    rc = UNSET;
  return rc;
}

static void await_outside_cb(void *arg) {
  r[1] = await_outside((int)(intptr_t)arg, g_lf, g_future);
}

/* Try call `what` outside a task: from the test thread and from a loop
 * callback; both must give CF_EINVALID_STATE, with nothing scheduled. */
static void check_await_outside(int what) {
  cf_loop_t *loop = make_loop();
  g_ex = make_pool(1);
  assert_int_equal(cf_lfuture_create(loop, &g_lf), 0);
  g_future = pending_future();
  r[0] = await_outside(what, g_lf, g_future);
  assert_int_equal(
      cf_loop_call_soon(loop, await_outside_cb, (void *)(intptr_t)what, NULL),
      0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(r[0], CF_EINVALID_STATE);
  assert_int_equal(r[1], CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_done(g_lf), 0);
  assert_int_equal(cf_future_done(g_future), 0);
  cf_lfuture_release(g_lf);
  assert_int_equal(cf_loop_close(loop), 0);
  cf_future_release(g_future);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* Run body as a task; it records into r[]. */
static void check_in_task(cf_coro_fn body, void *arg) {
  assert_int_equal(run_task(body, arg), 0);
}

/* B232. cf_await, outside a task: CF_EINVALID_STATE; f is untouched (still
 * pending)
 */
static void test_B232_await_outside_task(void **state) {
  (void)state;
  check_await_outside(OUT_AWAIT);
}

static int await_null_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  void *value = UNTOUCHED;
  r[0] = cf_await(NULL, &value);
  r[1] = value == UNTOUCHED;
  r[2] = cf_await_future(NULL, &value);
  r[3] = value == UNTOUCHED;
  return 0;
}

/* B233. cf_await, f NULL: CF_EINVAL */
static void test_B233_await_null(void **state) {
  (void)state;
  check_in_task(await_null_body, NULL);
  assert_int_equal(r[0], CF_EINVAL);
  assert_int_equal(r[1], 1);
}

static int await_self_body(cf_lfuture_t *self, void *arg) {
  (void)arg;
  r[0] = cf_await(self, NULL);
  r[1] = cf_wait_for(self, 1.0, NULL);
  r[2] = cf_wait_for(self, 0, NULL);
  return 0;
}

/* B234. cf_await, f is the awaiting task itself: CF_EINVALID_STATE (asyncio:
 * "Task cannot await on itself") [header silent: library behaviour]
 */
static void test_B234_await_self(void **state) {
  (void)state;
  check_in_task(await_self_body, NULL);
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

static int await_other_loop_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  cf_lfuture_t *foreign = arg;
  r[0] = cf_await(foreign, NULL);
  r[1] = cf_wait_for(foreign, 1.0, NULL);
  return 0;
}

/* Run a task that awaits a pending future of a second loop. */
static void check_other_loop(void) {
  cf_loop_t *other = NULL;
  assert_int_equal(cf_loop_create(&other, NULL), 0);
  cf_lfuture_t *foreign = NULL;
  assert_int_equal(cf_lfuture_create(other, &foreign), 0);
  check_in_task(await_other_loop_body, foreign);
  assert_int_equal(cf_lfuture_done(foreign), 0);
  cf_lfuture_release(foreign);
  assert_int_equal(cf_loop_close(other), 0);
}

/* B235. cf_await, f belongs to another loop: CF_EINVALID_STATE; f untouched
 * [header silent: library behaviour]
 */
static void test_B235_await_other_loop(void **state) {
  (void)state;
  check_other_loop();
  assert_int_equal(r[0], CF_EINVALID_STATE);
}

/* B236. cf_await_future, outside a task: CF_EINVALID_STATE; pf untouched */
static void test_B236_await_future_outside_task(void **state) {
  (void)state;
  check_await_outside(OUT_AWAIT_FUTURE);
}

/* B237. cf_await_future, pf NULL: CF_EINVAL */
static void test_B237_await_future_null(void **state) {
  (void)state;
  check_in_task(await_null_body, NULL);
  assert_int_equal(r[2], CF_EINVAL);
  assert_int_equal(r[3], 1);
}

/* B238. cf_sleep, outside a task: CF_EINVALID_STATE */
static void test_B238_sleep_outside_task(void **state) {
  (void)state;
  check_await_outside(OUT_SLEEP);
}

static int sleep_nan_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  r[0] = cf_sleep(NAN);
  return 0;
}

/* B239. cf_sleep, NaN delay: CF_EINVAL */
static void test_B239_sleep_nan(void **state) {
  (void)state;
  check_in_task(sleep_nan_body, NULL);
  assert_int_equal(r[0], CF_EINVAL);
}

/* Task A records 1, sleeps `delay`, records 3; task B records 2. */
static int sleeper_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  rec(1);
  r[0] = cf_sleep(*(double *)arg);
  rec(3);
  return 0;
}

static int recorder_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  rec(2);
  return 0;
}

static void sleep_yields(double delay) {
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *a = NULL, *b = NULL;
  assert_int_equal(cf_task_create(loop, sleeper_body, &delay, &a), 0);
  assert_int_equal(cf_task_create(loop, recorder_body, NULL, &b), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, a), 0);
  assert_int_equal(r[0], 0);
  assert_int_equal(nev, 3);
  assert_int_equal(evlog[0], 1);
  assert_int_equal(evlog[1], 2);
  assert_int_equal(evlog[2], 3);
  cf_lfuture_release(a);
  cf_lfuture_release(b);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B240. cf_sleep, delay 0: yields once (tasks ready to run go first), then 0
 */
static void test_B240_sleep_zero(void **state) {
  (void)state;
  sleep_yields(0);
}

/* B241. cf_sleep, negative delay: as delay 0 */
static void test_B241_sleep_negative(void **state) {
  (void)state;
  sleep_yields(-1.0);
}

/* B242. cf_wait_for, outside a task: CF_EINVALID_STATE; f untouched */
static void test_B242_wait_for_outside_task(void **state) {
  (void)state;
  check_await_outside(OUT_WAIT_FOR);
}

static int wait_for_bad_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  cf_lfuture_t *f = NULL;
  if (cf_lfuture_create(g_loop, &f) != 0)
    return CF_ENOMEM;
  void *value = UNTOUCHED;
  r[0] = cf_wait_for(NULL, 1.0, &value);
  r[1] = cf_wait_for(f, NAN, &value);
  r[2] = value == UNTOUCHED;
  r[3] = cf_lfuture_done(f);
  cf_lfuture_release(f);
  return 0;
}

/* B243. cf_wait_for, f NULL: CF_EINVAL */
static void test_B243_wait_for_null(void **state) {
  (void)state;
  check_in_task(wait_for_bad_body, NULL);
  assert_int_equal(r[0], CF_EINVAL);
  assert_int_equal(r[2], 1);
}

/* B244. cf_wait_for, NaN timeout: CF_EINVAL; f untouched (still pending) */
static void test_B244_wait_for_nan(void **state) {
  (void)state;
  check_in_task(wait_for_bad_body, NULL);
  assert_int_equal(r[1], CF_EINVAL);
  assert_int_equal(r[3], 0);
}

static int wait_for_poll_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  double timeout = *(double *)arg;
  static int v;
  cf_lfuture_t *p = NULL, *d = NULL;
  if (cf_lfuture_create(g_loop, &p) != 0 || cf_lfuture_create(g_loop, &d) != 0)
    return CF_ENOMEM;
  (void)cf_lfuture_set_result(d, &v, NULL);
  void *value = NULL;
  r[0] = cf_wait_for(p, timeout, NULL);
  r[1] = cf_lfuture_cancelled(p);
  r[2] = cf_wait_for(d, timeout, &value);
  r[3] = value == &v;
  cf_lfuture_release(p);
  cf_lfuture_release(d);
  return 0;
}

static void wait_for_polls(double timeout) {
  check_in_task(wait_for_poll_body, &timeout);
  assert_int_equal(r[0], CF_ETIMEDOUT);
  assert_int_equal(r[1], 1);
  assert_int_equal(r[2], 0);
  assert_int_equal(r[3], 1);
}

/* B245. cf_wait_for, timeout 0: a done f gives its result (0 and its value); a
 * pending f is cancelled and awaited, then CF_ETIMEDOUT
 */
static void test_B245_wait_for_zero_timeout(void **state) {
  (void)state;
  wait_for_polls(0);
}

/* B246. cf_wait_for, negative timeout: as timeout 0 */
static void test_B246_wait_for_negative_timeout(void **state) {
  (void)state;
  wait_for_polls(-1.0);
}

/* B247. cf_wait_for, f is the awaiting task itself (any timeout):
 * CF_EINVALID_STATE [header silent: library behaviour]
 */
static void test_B247_wait_for_self(void **state) {
  (void)state;
  check_in_task(await_self_body, NULL);
  assert_int_equal(r[1], CF_EINVALID_STATE);
  assert_int_equal(r[2], CF_EINVALID_STATE);
}

/* B248. cf_wait_for, f belongs to another loop: CF_EINVALID_STATE; f untouched
 * [header silent: library behaviour]
 */
static void test_B248_wait_for_other_loop(void **state) {
  (void)state;
  check_other_loop();
  assert_int_equal(r[1], CF_EINVALID_STATE);
}

/* B249. cf_timeout_enter, outside a task: CF_EINVALID_STATE; *scope untouched
 */
static void test_B249_timeout_enter_outside_task(void **state) {
  (void)state;
  check_await_outside(OUT_TIMEOUT_ENTER);
}

static int timeout_bad_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  cf_timeout_t *scope = UNTOUCHED;
  r[0] = cf_timeout_enter(NAN, &scope);
  r[1] = scope == UNTOUCHED;
  r[2] = cf_timeout_enter(1.0, NULL);
  r[3] = cf_timeout_exit(NULL, 0);
  r[4] = cf_timeout_exit(NULL, CF_ECANCELLED);
  return 0;
}

/* B250. cf_timeout_enter, NaN delay: CF_EINVAL; *scope untouched */
static void test_B250_timeout_enter_nan(void **state) {
  (void)state;
  check_in_task(timeout_bad_body, NULL);
  assert_int_equal(r[0], CF_EINVAL);
  assert_int_equal(r[1], 1);
}

/* B251. cf_timeout_enter, scope NULL: CF_EINVAL */
static void test_B251_timeout_enter_null_scope(void **state) {
  (void)state;
  check_in_task(timeout_bad_body, NULL);
  assert_int_equal(r[2], CF_EINVAL);
}

static int timeout_poll_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  cf_timeout_t *scope = NULL;
  r[0] = cf_timeout_enter(*(double *)arg, &scope);
  if (r[0] != 0)
    return r[0];
  r[1] = cf_sleep(LONG_S);
  r[2] = cf_timeout_exit(scope, r[1]);
  return 0;
}

static void timeout_expired(double delay) {
  check_in_task(timeout_poll_body, &delay);
  assert_int_equal(r[0], 0);
  assert_int_equal(r[1], CF_ECANCELLED);
  assert_int_equal(r[2], CF_ETIMEDOUT);
}

/* B252. cf_timeout_enter, delay 0: 0; the deadline has passed: the scope's
 * next await returns CF_ECANCELLED and cf_timeout_exit turns it into
 * CF_ETIMEDOUT
 */
static void test_B252_timeout_enter_zero(void **state) {
  (void)state;
  timeout_expired(0);
}

/* B253. cf_timeout_enter, negative delay: as delay 0 */
static void test_B253_timeout_enter_negative(void **state) {
  (void)state;
  timeout_expired(-1.0);
}

/* B254. cf_timeout_exit, scope NULL: CF_EINVAL (whatever rc) */
static void test_B254_timeout_exit_null(void **state) {
  (void)state;
  check_in_task(timeout_bad_body, NULL);
  assert_int_equal(r[3], CF_EINVAL);
  assert_int_equal(r[4], CF_EINVAL);
}

/* cf_gather with a bad argument on a fresh loop. */
static void gather_bad(int which) {
  cf_loop_t *loop = make_loop();
  cf_loop_t *other = NULL;
  assert_int_equal(cf_loop_create(&other, NULL), 0);
  cf_lfuture_t *a = NULL, *foreign = NULL;
  assert_int_equal(cf_lfuture_create(loop, &a), 0);
  assert_int_equal(cf_lfuture_create(other, &foreign), 0);
  cf_lfuture_t *fs[2] = {a, which == 3 ? NULL : foreign};
  cf_lfuture_t *out = UNTOUCHED;
  int rc;
  switch (which) {
  case 0:
    rc = cf_gather(NULL, fs, 1, &out);
    break;
  case 1:
    rc = cf_gather(loop, fs, 1, NULL);
    break;
  case 2:
    rc = cf_gather(loop, NULL, 2, &out);
    break;
  default: /* 3: a NULL entry; 4: an entry of another loop */
    rc = cf_gather(loop, fs, 2, &out);
    break;
  }
  assert_int_equal(rc, CF_EINVAL);
  assert_ptr_equal(out, UNTOUCHED);
  /* No callback was added: a ends with no gather noticing. */
  assert_int_equal(cf_lfuture_cancel(a), 1);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  cf_lfuture_release(a);
  cf_lfuture_release(foreign);
  assert_int_equal(cf_loop_close(other), 0);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B255. cf_gather, loop NULL: CF_EINVAL */
static void test_B255_gather_null_loop(void **state) {
  (void)state;
  gather_bad(0);
}

/* B256. cf_gather, out NULL: CF_EINVAL */
static void test_B256_gather_null_out(void **state) {
  (void)state;
  gather_bad(1);
}

/* B257. cf_gather, fs NULL with n > 0: CF_EINVAL */
static void test_B257_gather_null_array(void **state) {
  (void)state;
  gather_bad(2);
}

/* B258. cf_gather, a NULL entry in fs: CF_EINVAL; no child is touched */
static void test_B258_gather_null_entry(void **state) {
  (void)state;
  gather_bad(3);
}

/* B259. cf_gather, an entry of another loop: CF_EINVAL; no child is touched */
static void test_B259_gather_other_loop(void **state) {
  (void)state;
  gather_bad(4);
}

/* B260. cf_gather, n 0 (fs may be NULL): allowed: 0; the future is done at
 * once, with result 0
 */
static void test_B260_gather_empty(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *g = NULL;
  assert_int_equal(cf_gather(loop, NULL, 0, &g), 0);
  assert_int_equal(cf_lfuture_done(g), 1);
  assert_int_equal(cf_lfuture_result(g, NULL), 0);
  cf_lfuture_release(g);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B261. cf_shield, f NULL: CF_EINVAL */
static void test_B261_shield_null_future(void **state) {
  (void)state;
  cf_lfuture_t *out = UNTOUCHED;
  assert_int_equal(cf_shield(NULL, &out), CF_EINVAL);
  assert_ptr_equal(out, UNTOUCHED);
}

/* B262. cf_shield, out NULL: CF_EINVAL */
static void test_B262_shield_null_out(void **state) {
  (void)state;
  cf_loop_t *loop = make_loop();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_shield(f, NULL), CF_EINVAL);
  assert_int_equal(cf_lfuture_set_result(f, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  cf_lfuture_release(f);
  assert_int_equal(cf_loop_close(loop), 0);
}

/* B263. cf_run_in_executor, outside a task: CF_EINVALID_STATE; nothing is
 * submitted, the caller keeps arg, *done untouched
 */
static void test_B263_run_in_executor_outside_task(void **state) {
  (void)state;
  check_await_outside(OUT_RUN_IN_EXECUTOR);
}

static int run_in_executor_bad_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  static int v;
  cf_future_t *done = UNTOUCHED;
  r[0] = cf_run_in_executor(g_ex, NULL, &v, count_free, &done);
  r[1] = done == UNTOUCHED;
  r[2] = cf_run_in_executor(g_ex, count_job, &v, count_free, &done);
  r[3] = done == UNTOUCHED;
  return 0;
}

/* B264. cf_run_in_executor, fn NULL: CF_EINVAL; the caller keeps arg, *done
 * untouched
 */
static void test_B264_run_in_executor_null_fn(void **state) {
  (void)state;
  g_ex = make_pool(1);
  assert_int_equal(cf_executor_shutdown(g_ex, true, false), 0);
  check_in_task(run_in_executor_bad_body, NULL);
  assert_int_equal(r[0], CF_EINVAL);
  assert_int_equal(r[1], 1);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B265. cf_run_in_executor, ex shut down: CF_ESHUTDOWN (submit's error): the
 * job never runs, the caller keeps arg, *done untouched
 */
static void test_B265_run_in_executor_pool_shut_down(void **state) {
  (void)state;
  g_ex = make_pool(1);
  assert_int_equal(cf_executor_shutdown(g_ex, true, false), 0);
  check_in_task(run_in_executor_bad_body, NULL);
  assert_int_equal(r[2], CF_ESHUTDOWN);
  assert_int_equal(r[3], 1);
  assert_int_equal(cf_executor_destroy(g_ex), 0);
  assert_int_equal(atomic_load(&runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
}

/* B266. cf_bridge_prepare, b NULL: CF_EINVAL */
static void test_B266_bridge_prepare_null(void **state) {
  (void)state;
  assert_int_equal(cf_bridge_prepare(NULL), CF_EINVAL);
}

/* B267. cf_bridge_prepare, nothing in flight: 0 at once (no spin); still 0
 * after a dispatch */
static void test_B267_bridge_prepare_nothing_in_flight(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(cf_bridge_prepare(b), 0);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  assert_int_equal(cf_bridge_prepare(b), 0);
  cf_bridge_destroy(b);
}

/* B268. cf_bridge_set_spin_us, b NULL: CF_EINVAL */
static void test_B268_bridge_set_spin_us_null(void **state) {
  (void)state;
  assert_int_equal(cf_bridge_set_spin_us(NULL, 50), CF_EINVAL);
}

/* B269. cf_bridge_set_spin_us, us negative or above 1000000: CF_EINVAL;
 * 0 and 1000000 are accepted */
static void test_B269_bridge_set_spin_us_out_of_range(void **state) {
  (void)state;
  cf_bridge_t *b = NULL;
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(cf_bridge_set_spin_us(b, -1), CF_EINVAL);
  assert_int_equal(cf_bridge_set_spin_us(b, INT_MIN), CF_EINVAL);
  assert_int_equal(cf_bridge_set_spin_us(b, 1000001), CF_EINVAL);
  assert_int_equal(cf_bridge_set_spin_us(b, INT_MAX), CF_EINVAL);
  assert_int_equal(cf_bridge_set_spin_us(b, 0), 0);
  assert_int_equal(cf_bridge_set_spin_us(b, 1000000), 0);
  cf_bridge_destroy(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_B1_version_no_argument, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B2_strerror_unknown_code, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B3_err_name_unknown_code, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B4_future_create_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B5_future_retain_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B6_future_release_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B7_future_cancel_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B8_future_cancel_finished, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B9_future_cancel_running, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B10_future_cancelled_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B11_future_running_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B12_future_done_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B13_future_state_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B14_state_name_out_of_range, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B15_future_repr_null_future, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B16_future_repr_null_buf_nonzero_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B17_future_repr_null_buf_zero_size,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B18_future_repr_small_buffer, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B19_future_result_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B20_future_result_nan_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B21_future_result_zero_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B22_future_result_negative_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B23_future_result_null_value, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B24_future_result_cancelled, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B25_future_result_own_job, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B26_future_result_own_pool_queued_from_job, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B27_future_result_own_pool_queued_from_callback, setup,
          teardown),
      cmocka_unit_test_setup_teardown(test_B28_future_exception_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B29_future_exception_nan_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B30_future_exception_zero_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B31_future_exception_negative_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B32_future_exception_null_outputs,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B33_future_exception_cancelled,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B34_future_exception_own_job, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B35_future_add_done_callback_null_future, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B36_future_add_done_callback_null_fn,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B37_future_add_done_callback_done,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B38_future_set_running_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B39_future_set_running_twice, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B40_future_set_running_finished,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B41_future_set_running_cancelled,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B42_future_set_running_notified,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B43_future_set_result_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B44_future_set_result_twice, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B45_future_set_result_cancelled,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B46_future_set_exception_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B47_future_set_exception_zero_code,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B48_future_set_exception_finished,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B49_future_set_exception_null_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B50_job_return_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B51_job_fail_null, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B52_job_fail_null_fmt, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B53_job_fail_then_return_zero, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B54_job_future_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B55_job_cancel_requested_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B56_executor_options_init_null,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B57_executor_create_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B58_executor_create_zero_workers,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B59_executor_create_negative_workers,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B266_executor_create_idle_spin_out_of_range,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B267_executor_create_idle_spin_bounds,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B60_executor_create_null_opts, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B61_executor_create_long_prefix,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B62_executor_create_empty_prefix,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B63_executor_submit_null_pool, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B64_executor_submit_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B65_executor_submit_after_shutdown,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B66_executor_submit_broken, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B67_executor_submit_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B68_executor_shutdown_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B69_executor_shutdown_wait_from_worker, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B70_executor_shutdown_nowait_from_worker, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B71_executor_shutdown_twice, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B72_executor_destroy_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B73_executor_destroy_from_worker,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B74_executor_thread_count_null,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B75_executor_map_null_pool, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B76_executor_map_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B77_executor_map_null_input, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B78_executor_map_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B79_executor_map_nan_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B80_executor_map_zero_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B81_executor_map_negative_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B82_executor_map_after_shutdown,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B83_executor_map_input_error_first_window, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B84_map_next_null_map, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B85_map_next_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B86_map_next_after_eof, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B87_map_next_input_error_later,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B88_map_destroy_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B89_wait_null_array, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B90_wait_null_entry, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B91_wait_bad_return_when, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B92_wait_nan_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B93_wait_zero_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B94_wait_negative_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B95_wait_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B96_wait_null_outputs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B97_as_completed_create_null_out,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B98_as_completed_create_null_array,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B99_as_completed_create_null_entry,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B100_as_completed_create_nan_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B101_as_completed_create_zero_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B102_as_completed_create_negative_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B103_as_completed_create_empty,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B104_as_completed_next_null_iterator,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B105_as_completed_next_null_out,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B106_as_completed_next_exhausted,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B107_as_completed_remaining_null,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B108_as_completed_destroy_null,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B109_bridge_create_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B110_bridge_create_with_wakeup_null_out, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B111_bridge_create_with_wakeup_null_fn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B112_bridge_fd_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B113_bridge_fd_wakeup_bridge, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B114_bridge_dispatch_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B115_bridge_dispatch_empty, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B116_bridge_then_null_bridge, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B117_bridge_then_null_future, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B118_bridge_then_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B119_bridge_then_while_destroyed,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B120_then_cancel_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B121_then_cancel_twice, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B122_then_cancel_from_own_callback,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B123_bridge_run_in_executor_null_bridge, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B124_bridge_run_in_executor_null_pool, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B125_bridge_run_in_executor_null_fn,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B126_bridge_run_in_executor_null_cb,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B127_bridge_run_in_executor_pool_shut_down, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B128_bridge_run_in_executor_while_destroyed, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B129_bridge_call_threadsafe_null_bridge, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B130_bridge_call_threadsafe_null_fn,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B131_bridge_call_threadsafe_while_destroyed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B132_bridge_destroy_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B133_loop_options_init_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B134_loop_create_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B135_loop_close_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B136_loop_close_while_running, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B137_loop_close_from_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B138_loop_time_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B139_loop_call_soon_null_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B140_loop_call_soon_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B141_loop_call_later_null_loop,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B142_loop_call_later_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B143_loop_call_later_nan_delay,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B144_loop_call_later_zero_delay,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B145_loop_call_later_negative_delay,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B146_loop_call_at_null_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B147_loop_call_at_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B148_loop_call_at_nan_when, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B149_loop_call_at_zero_when, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B150_loop_call_at_negative_when,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B151_loop_call_soon_threadsafe_null_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B152_loop_call_soon_threadsafe_null_fn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B154_handle_cancel_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B155_handle_cancel_twice, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B156_handle_cancel_running, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B157_loop_add_reader_null_loop,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B158_loop_add_reader_negative_fd,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B159_loop_add_reader_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B160_loop_add_reader_closed_fd,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B161_loop_add_reader_regular_file,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B162_loop_remove_reader_null_loop,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B163_loop_remove_reader_negative_fd,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B164_loop_remove_reader_not_watched,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B165_loop_add_writer_null_loop,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B166_loop_add_writer_negative_fd,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B167_loop_add_writer_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B168_loop_add_writer_closed_fd,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B169_loop_remove_writer_null_loop,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B170_loop_remove_writer_negative_fd,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B171_loop_remove_writer_not_watched,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B172_loop_run_forever_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B173_loop_run_forever_while_running,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B174_loop_run_forever_from_task,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B175_loop_stop_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B176_loop_stop_before_run, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B177_loop_run_until_complete_null_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B178_loop_run_until_complete_null_future, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B179_loop_run_until_complete_other_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B180_loop_run_until_complete_while_running, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B181_loop_run_until_complete_from_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B182_loop_fd_null, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B183_loop_timeout_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B184_loop_run_once_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B185_loop_run_once_nan_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B186_loop_run_once_zero_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B187_loop_run_once_negative_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B188_loop_run_once_while_running,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B189_loop_run_once_from_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B190_lfuture_create_null_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B191_lfuture_create_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B192_lfuture_retain_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B193_lfuture_release_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B194_lfuture_cancel_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B195_lfuture_cancel_done, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B196_lfuture_done_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B197_lfuture_cancelled_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B198_lfuture_result_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B199_lfuture_result_pending, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B200_lfuture_result_cancelled, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B201_lfuture_result_loop_closed,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B202_lfuture_exception_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B203_lfuture_exception_pending,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B204_lfuture_exception_cancelled,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B205_lfuture_set_result_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B206_lfuture_set_result_done, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B207_lfuture_set_result_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B208_lfuture_set_exception_null,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B209_lfuture_set_exception_zero_code,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B210_lfuture_set_exception_done,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B211_lfuture_set_exception_task,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B212_lfuture_add_done_callback_null_future, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_B213_lfuture_add_done_callback_null_fn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B214_lfuture_add_done_callback_done,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B215_lfuture_wrap_null_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B216_lfuture_wrap_null_future, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B217_lfuture_wrap_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B218_lfuture_source_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B219_lfuture_source_not_wrap, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B220_task_create_null_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B221_task_create_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B222_task_create_while_closing,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B223_task_create_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B224_task_return_not_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B225_task_fail_not_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B226_task_cancelling_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B227_task_cancelling_not_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B228_task_uncancel_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B229_task_uncancel_not_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B230_task_uncancel_at_zero, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B231_current_task_outside, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B232_await_outside_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B233_await_null, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B234_await_self, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B235_await_other_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B236_await_future_outside_task,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B237_await_future_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B238_sleep_outside_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B239_sleep_nan, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B240_sleep_zero, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B241_sleep_negative, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B242_wait_for_outside_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B243_wait_for_null, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B244_wait_for_nan, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B245_wait_for_zero_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B246_wait_for_negative_timeout,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B247_wait_for_self, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B248_wait_for_other_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B249_timeout_enter_outside_task,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B250_timeout_enter_nan, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B251_timeout_enter_null_scope, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B252_timeout_enter_zero, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B253_timeout_enter_negative, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B254_timeout_exit_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B255_gather_null_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B256_gather_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B257_gather_null_array, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B258_gather_null_entry, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B259_gather_other_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B260_gather_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B261_shield_null_future, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B262_shield_null_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B263_run_in_executor_outside_task,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B264_run_in_executor_null_fn, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_B265_run_in_executor_pool_shut_down,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_B266_bridge_prepare_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B267_bridge_prepare_nothing_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_B268_bridge_set_spin_us_null, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_B269_bridge_set_spin_us_out_of_range, setup, teardown),
      /* Rows where the library differs from the header run last: with
       * CMOCKA_TEST_ABORT=1 a failed assert ends the program, and the
       * other rows must still report. */
      cmocka_unit_test_setup_teardown(
          test_B153_loop_call_soon_threadsafe_while_closing, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
