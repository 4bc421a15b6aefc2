/*
 * Tests of the loop's tasks (include/cfutures/loop.h, SEMANTICS.md 4.4 and
 * 4.5): asyncio.Task cancellation, wait_for as in 3.12+ and asyncio.timeout
 * scopes, pool futures awaited from tasks, sleep, gather, shield, many
 * tasks at once, loop close, task stacks.
 *
 * The test thread is the loop thread. Task bodies run on it too, so they
 * record what they saw into plain variables that the test asserts on once
 * the loop has returned; task bodies never call cmocka asserts (an assert
 * longjmps, which must not cross a coroutine stack). Jobs on pool workers
 * record into atomics and are driven by semaphores, never by sleeps.
 * cf_sleep inside a task is a loop timer, which is what is under test; no
 * test asserts that anything was fast, only the order of events, return
 * codes, and that a timeout did not fire before its deadline.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfutures.h"
#include "cfutures/loop.h"
#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif

/* A sleep that only a cancellation ends. */
#define LONG_S 100.0
/* A timeout that must expire (its inner never completes by itself). */
#define SHORT_S 0.02
/* Not yet run / not yet returned: a value no call returns. */
#define UNSET 12345

/* ------------------------------------------------------------------ */
/* Local helpers                                                      */
/* ------------------------------------------------------------------ */

/* The order of events, recorded by task bodies (loop thread only). */
static int evlog[64];
static int nev;

static void rec(int e) {
  if (nev < (int)(sizeof(evlog) / sizeof(evlog[0])))
    evlog[nev++] = e;
}

static atomic_int job_runs;

static int setup(void **state) {
  (void)state;
  memset(evlog, 0, sizeof(evlog));
  nev = 0;
  atomic_store(&counter_hits, 0);
  atomic_store(&job_runs, 0);
  return 0;
}

static void sem_take(sem_t *s) {
  while (sem_wait(s) != 0 && errno == EINTR) {
  }
}

static cf_loop_t *loop_new(void) {
  cf_loop_t *loop = NULL;
  assert_int_equal(cf_loop_create(&loop, NULL), 0);
  assert_non_null(loop);
  return loop;
}

static void loop_free(cf_loop_t *loop) {
  assert_int_equal(cf_loop_close(loop), 0);
}

static cf_lfuture_t *spawn(cf_loop_t *loop, cf_coro_fn fn, void *arg) {
  cf_lfuture_t *t = NULL;
  assert_int_equal(cf_task_create(loop, fn, arg, &t), 0);
  assert_non_null(t);
  return t;
}

static cf_executor_t *pool_new(int workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  return ex;
}

/* Job: count that it ran, return arg. */
static int record_job(void *arg, cf_job_t *job) {
  atomic_fetch_add(&job_runs, 1);
  cf_job_return(job, arg, NULL);
  return 0;
}

/* A task that ends at once with arg as its value. */
static int value_body(cf_lfuture_t *self, void *arg) {
  cf_task_return(self, arg, NULL);
  return 0;
}

/* A task that cancels the task in arg and records cancel()'s answer. */
struct canceller {
  cf_lfuture_t *target;
  int rc;
};

static int canceller_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct canceller *c = arg;
  c->rc = cf_lfuture_cancel(c->target);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Task.cancel (SEMANTICS 4.5)                                        */
/* ------------------------------------------------------------------ */

/* Sleeps LONG_S; on a cancellation cleans up (awaiting cleanup_delay, then
 * a yield) and returns end_rc; end_rc 0 returns &value. */
struct sleeper {
  int body_ran;
  int sleep_rc;
  int cleanup_rc;
  int cleanup_rc2;
  int deliveries;
  int cancelled_in_cleanup;
  int done_in_cleanup;
  double cleanup_delay;
  int end_rc;
  int value;
};

static void sleeper_init(struct sleeper *s, int end_rc) {
  memset(s, 0, sizeof(*s));
  s->sleep_rc = s->cleanup_rc = s->cleanup_rc2 = UNSET;
  s->end_rc = end_rc;
}

static int sleeper_body(cf_lfuture_t *self, void *arg) {
  struct sleeper *s = arg;
  s->body_ran = 1;
  rec(1);
  s->sleep_rc = cf_sleep(LONG_S);
  if (s->sleep_rc == CF_ECANCELLED)
    s->deliveries++;
  rec(2);
  s->cleanup_rc = cf_sleep(s->cleanup_delay);
  if (s->cleanup_rc == CF_ECANCELLED)
    s->deliveries++;
  s->cleanup_rc2 = cf_sleep(0);
  if (s->cleanup_rc2 == CF_ECANCELLED)
    s->deliveries++;
  s->cancelled_in_cleanup = cf_lfuture_cancelled(self);
  s->done_in_cleanup = cf_lfuture_done(self);
  rec(3);
  if (s->end_rc == 0)
    cf_task_return(self, &s->value, NULL);
  return s->end_rc;
}

/* Every cancel() on a task not done returns 1 and bumps cancelling(). */
static void test_cancel_pending_returns_1_and_counts(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_task_cancelling(t), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0); /* first step: sleeps */
  assert_int_equal(s.body_ran, 1);
  assert_int_equal(s.sleep_rc, UNSET);
  for (int i = 1; i <= 3; i++) {
    assert_int_equal(cf_lfuture_cancel(t), 1);
    assert_int_equal(cf_task_cancelling(t), i);
  }
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(cf_task_cancelling(t), 3);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* cancel() on a done task returns 0 and changes nothing. */
static void test_cancel_done_returns_0(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int v = 5;
  cf_lfuture_t *t = spawn(loop, value_body, &v);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(cf_lfuture_cancel(t), 0);
  assert_int_equal(cf_task_cancelling(t), 0);
  assert_int_equal(cf_lfuture_cancelled(t), 0);
  void *out = NULL;
  assert_int_equal(cf_lfuture_result(t, &out), 0);
  assert_ptr_equal(out, &v);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* Two requests while suspended: delivered once, at the await where the
 * task sleeps; the cleanup's awaits succeed. */
static void test_cancel_delivered_once_at_suspended_await(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(s.cleanup_rc, 0);
  assert_int_equal(s.cleanup_rc2, 0);
  assert_int_equal(s.deliveries, 1);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* A running task that cancels itself sees CF_ECANCELLED at its next
 * await (a yield), once; the await after that succeeds. */
struct self_cancel {
  int cancel_rc;
  int cancelling;
  int cancelled_now;
  int rc1, rc2;
  int end_rc;
};

static int self_cancel_body(cf_lfuture_t *self, void *arg) {
  struct self_cancel *s = arg;
  s->cancel_rc = cf_lfuture_cancel(self);
  s->cancelling = cf_task_cancelling(self);
  s->cancelled_now = cf_lfuture_cancelled(self);
  s->rc1 = cf_sleep(0);
  s->rc2 = cf_sleep(0);
  return s->end_rc;
}

static void test_cancel_running_task_at_next_await(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct self_cancel s = {UNSET, UNSET, UNSET, UNSET, UNSET, CF_ECANCELLED};
  cf_lfuture_t *t = spawn(loop, self_cancel_body, &s);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(s.cancel_rc, 1);
  assert_int_equal(s.cancelling, 1);
  assert_int_equal(s.cancelled_now, 0);
  assert_int_equal(s.rc1, CF_ECANCELLED);
  assert_int_equal(s.rc2, 0);
  assert_int_equal(cf_lfuture_cancelled(t), 1);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* The cleanup may await for real (a timer, then a yield) and runs to its
 * end before the task ends. */
static void test_cancel_cleanup_may_await(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  s.cleanup_delay = 0.001;
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(s.cleanup_rc, 0);
  assert_int_equal(s.cleanup_rc2, 0);
  assert_int_equal(nev, 3);
  assert_int_equal(evlog[2], 3); /* the cleanup reached its end */
  cf_lfuture_release(t);
  loop_free(loop);
}

/* Re-raising: the task ends cancelled, and so does every await of it. */
struct awaiter {
  cf_lfuture_t *target;
  int rc;
  void *value;
};

static int awaiter_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct awaiter *a = arg;
  a->rc = cf_await(a->target, &a->value);
  return a->rc == CF_ECANCELLED ? CF_ECANCELLED : 0;
}

static void test_cancel_reraise_ends_cancelled(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(cf_lfuture_done(t), 1);
  assert_int_equal(cf_lfuture_cancelled(t), 1);
  assert_int_equal(cf_lfuture_result(t, NULL), CF_ECANCELLED);
  int code = UNSET;
  assert_int_equal(cf_lfuture_exception(t, &code, NULL), CF_ECANCELLED);
  /* A later await of it reports the cancellation. */
  struct awaiter a = {t, UNSET, NULL};
  cf_lfuture_t *w = spawn(loop, awaiter_body, &a);
  assert_int_equal(cf_loop_run_until_complete(loop, w), CF_ECANCELLED);
  assert_int_equal(a.rc, CF_ECANCELLED);
  assert_int_equal(cf_task_cancelling(w), 0); /* w itself was not */
  cf_lfuture_release(w);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* Suppressing: the task ends with its value, not cancelled; cancelling()
 * stays 1 until uncancel(). */
static void test_cancel_suppressed_ends_with_value(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, 0);
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  void *out = NULL;
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(cf_lfuture_result(t, &out), 0);
  assert_ptr_equal(out, &s.value);
  assert_int_equal(cf_lfuture_cancelled(t), 0);
  assert_int_equal(cf_task_cancelling(t), 1);
  assert_int_equal(cf_task_uncancel(t), 0);
  assert_int_equal(cf_task_cancelling(t), 0);
  assert_int_equal(cf_task_uncancel(t), 0); /* never below 0 */
  cf_lfuture_release(t);
  loop_free(loop);
}

/* uncancel() after two requests: 2 -> 1 -> 0. */
static void test_uncancel_decrements(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, 0);
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(cf_task_cancelling(t), 2);
  assert_int_equal(cf_task_uncancel(t), 1);
  assert_int_equal(cf_task_uncancel(t), 0);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* A task cancelled before its first step never runs its body. */
static void test_cancel_before_first_step_body_never_runs(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, 0);
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_task_cancelling(t), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(s.body_ran, 0);
  assert_int_equal(nev, 0);
  assert_int_equal(cf_lfuture_cancelled(t), 1);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* cancelled() is 0 right after cancel() and while the cleanup runs; 1 only
 * once the task has ended. */
static void test_cancelled_only_once_ended(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  cf_lfuture_t *t = spawn(loop, sleeper_body, &s);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_lfuture_cancelled(t), 0);
  assert_int_equal(cf_lfuture_done(t), 0);
  assert_int_equal(cf_lfuture_result(t, NULL), CF_EINVALID_STATE);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(s.cancelled_in_cleanup, 0);
  assert_int_equal(s.done_in_cleanup, 0);
  assert_int_equal(cf_lfuture_cancelled(t), 1);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* test_cancel_at_end: cancelled after its last await, the body returns 0
 * with a value: the task still ends cancelled (task.c: must_cancel at the
 * end wins) and its value is destroyed at once. */
struct cancel_at_end {
  int rc1;
  int cancel_rc;
  int value;
};

static int cancel_at_end_body(cf_lfuture_t *self, void *arg) {
  struct cancel_at_end *s = arg;
  s->rc1 = cf_sleep(0); /* the last await */
  s->cancel_rc = cf_lfuture_cancel(self);
  cf_task_return(self, &s->value, count_free);
  return 0;
}

static void test_cancel_at_end(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct cancel_at_end s = {UNSET, UNSET, 12};
  cf_lfuture_t *t = spawn(loop, cancel_at_end_body, &s);
  assert_int_equal(cf_lfuture_cancelled(t), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(s.rc1, 0);
  assert_int_equal(s.cancel_rc, 1);
  assert_int_equal(cf_lfuture_done(t), 1);
  assert_int_equal(cf_lfuture_cancelled(t), 1);
  assert_int_equal(cf_lfuture_cancel(t), 0);
  cf_lfuture_release(t);
  assert_int_equal(atomic_load(&counter_hits), 1); /* value dropped once */
  loop_free(loop);
}

/* Cancelling a task that awaits another task cancels the inner one: the
 * inner sees CF_ECANCELLED at its await. */
static void test_cancel_propagates_to_awaited_task(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  cf_lfuture_t *inner = spawn(loop, sleeper_body, &s);
  struct awaiter a = {inner, UNSET, NULL};
  cf_lfuture_t *outer = spawn(loop, awaiter_body, &a);
  assert_int_equal(cf_loop_run_once(loop, 0), 0); /* both suspended */
  assert_int_equal(cf_lfuture_cancel(outer), 1);
  assert_int_equal(cf_task_cancelling(inner), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(s.deliveries, 1);
  assert_int_equal(cf_lfuture_cancelled(inner), 1);
  assert_int_equal(a.rc, CF_ECANCELLED);
  assert_int_equal(cf_lfuture_cancelled(outer), 1);
  /* the inner ended before the outer resumed */
  assert_int_equal(nev, 3);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* Awaiting a loop future that is already cancelled: CF_ECANCELLED, and the
 * awaiting task itself is not cancelled. */
static void test_await_cancelled_future(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_int_equal(cf_lfuture_cancel(f), 1);
  struct awaiter a = {f, UNSET, NULL};
  cf_lfuture_t *t = spawn(loop, awaiter_body, &a);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(a.rc, CF_ECANCELLED);
  assert_int_equal(cf_task_cancelling(t), 0);
  cf_lfuture_release(t);
  cf_lfuture_release(f);
  loop_free(loop);
}

/* A loop future cancelled while a task awaits it: CF_ECANCELLED. */
static void test_await_future_cancelled_while_waiting(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  struct awaiter a = {f, UNSET, NULL};
  cf_lfuture_t *t = spawn(loop, awaiter_body, &a);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(a.rc, UNSET);
  assert_int_equal(cf_lfuture_cancel(f), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(a.rc, CF_ECANCELLED);
  cf_lfuture_release(t);
  cf_lfuture_release(f);
  loop_free(loop);
}

/* Awaiting a loop future that fails, and one that gets a value. */
static void test_await_future_value_and_failure(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *ok = NULL, *bad = NULL;
  assert_int_equal(cf_lfuture_create(loop, &ok), 0);
  assert_int_equal(cf_lfuture_create(loop, &bad), 0);
  struct awaiter a1 = {ok, UNSET, NULL}, a2 = {bad, UNSET, NULL};
  cf_lfuture_t *t1 = spawn(loop, awaiter_body, &a1);
  cf_lfuture_t *t2 = spawn(loop, awaiter_body, &a2);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  int v = 3;
  assert_int_equal(cf_lfuture_set_result(ok, &v, count_free), 0);
  assert_int_equal(cf_lfuture_set_exception(bad, 42, "bad"), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, t1), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, t2), 0);
  assert_int_equal(a1.rc, 0);
  assert_ptr_equal(a1.value, &v);
  assert_int_equal(a2.rc, CF_EFAILED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_lfuture_exception(bad, &code, &msg), 0);
  assert_int_equal(code, 42);
  assert_string_equal(msg, "bad");
  cf_lfuture_release(t1);
  cf_lfuture_release(t2);
  cf_lfuture_release(bad);
  assert_int_equal(atomic_load(&counter_hits), 0);
  cf_lfuture_release(ok);
  assert_int_equal(atomic_load(&counter_hits), 1);
  loop_free(loop);
}

/* Awaiting outside a task: CF_EINVALID_STATE from every await call. */
static void test_await_outside_task(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_null(cf_current_task());
  assert_int_equal(cf_await(f, NULL), CF_EINVALID_STATE);
  assert_int_equal(cf_sleep(0), CF_EINVALID_STATE);
  assert_int_equal(cf_wait_for(f, 1.0, NULL), CF_EINVALID_STATE);
  cf_timeout_t *scope = NULL;
  assert_int_equal(cf_timeout_enter(1.0, &scope), CF_EINVALID_STATE);
  assert_null(scope);
  cf_executor_t *ex = pool_new(1);
  cf_future_t *pf = NULL;
  assert_int_equal(cf_executor_submit(ex, echo_job, NULL, NULL, &pf), 0);
  assert_int_equal(cf_await_future(pf, NULL), CF_EINVALID_STATE);
  int arg = 0;
  cf_future_t *done = NULL;
  assert_int_equal(cf_run_in_executor(ex, record_job, &arg, count_free, &done),
                   CF_EINVALID_STATE);
  assert_null(done);
  assert_int_equal(wait_result(pf, NULL), 0);
  cf_future_release(pf);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&job_runs), 0); /* never submitted */
  assert_int_equal(atomic_load(&counter_hits), 0); /* arg stays ours */
  assert_int_equal(cf_lfuture_done(f), 0);
  cf_lfuture_release(f);
  loop_free(loop);
}

/* A task awaiting itself: CF_EINVALID_STATE (await and wait_for). */
struct self_await {
  int rc_await;
  int rc_wait_for;
  cf_lfuture_t *current;
};

static int self_await_body(cf_lfuture_t *self, void *arg) {
  struct self_await *s = arg;
  s->current = cf_current_task();
  s->rc_await = cf_await(self, NULL);
  s->rc_wait_for = cf_wait_for(self, LONG_S, NULL);
  return 0;
}

static void test_await_self(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct self_await s = {UNSET, UNSET, NULL};
  cf_lfuture_t *t = spawn(loop, self_await_body, &s);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_ptr_equal(s.current, t);
  assert_int_equal(s.rc_await, CF_EINVALID_STATE);
  assert_int_equal(s.rc_wait_for, CF_EINVALID_STATE);
  assert_int_equal(cf_task_cancelling(t), 0);
  assert_null(cf_current_task());
  cf_lfuture_release(t);
  loop_free(loop);
}

/* A body returning another code: the task fails with it. */
static int fail_body(cf_lfuture_t *self, void *arg) {
  (void)arg;
  cf_task_return(self, &job_runs, count_free); /* dropped: it fails */
  return 42;
}

static void test_task_failure_code(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *t = spawn(loop, fail_body, NULL);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_EFAILED);
  int code = 0;
  assert_int_equal(cf_lfuture_exception(t, &code, NULL), 0);
  assert_int_equal(code, 42);
  assert_int_equal(cf_lfuture_cancelled(t), 0);
  cf_lfuture_release(t);
  assert_int_equal(atomic_load(&counter_hits), 1); /* value dropped once */
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* wait_for (3.12+) and timeout scopes (SEMANTICS 4.4)                */
/* ------------------------------------------------------------------ */

/* Calls cf_wait_for(target, timeout) and records the outcome and time. */
struct wf {
  cf_lfuture_t *target;
  double timeout;
  int rc;
  void *value;
  double t0, t1;
  int cancelling_after;
};

static int wf_body(cf_lfuture_t *self, void *arg) {
  struct wf *w = arg;
  w->t0 = cf_loop_time(NULL);
  w->rc = cf_wait_for(w->target, w->timeout, &w->value);
  w->t1 = cf_loop_time(NULL);
  w->cancelling_after = cf_task_cancelling(self);
  rec(10);
  return w->rc == CF_ECANCELLED ? CF_ECANCELLED : 0;
}

static void wf_init(struct wf *w, cf_lfuture_t *target, double timeout) {
  memset(w, 0, sizeof(*w));
  w->target = target;
  w->timeout = timeout;
  w->rc = UNSET;
  w->cancelling_after = UNSET;
}

/* An inner task that sleeps 0 once, then ends with arg. */
static int quick_body(cf_lfuture_t *self, void *arg) {
  int rc = cf_sleep(0);
  if (rc != 0)
    return rc;
  cf_task_return(self, arg, NULL);
  return 0;
}

static void test_wait_for_result_in_time(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int v = 9;
  cf_lfuture_t *inner = spawn(loop, quick_body, &v);
  struct wf w;
  wf_init(&w, inner, LONG_S);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), 0);
  assert_int_equal(w.rc, 0);
  assert_ptr_equal(w.value, &v);
  assert_int_equal(w.cancelling_after, 0);
  assert_int_equal(cf_lfuture_cancelled(inner), 0);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* On timeout the inner is cancelled and awaited: its cleanup (which awaits
 * a timer) ends before wait_for returns CF_ETIMEDOUT, not before the
 * deadline; the scope's cancellation is taken back. */
static void test_wait_for_timeout_cancels_and_awaits_inner(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  s.cleanup_delay = 0.005;
  cf_lfuture_t *inner = spawn(loop, sleeper_body, &s);
  struct wf w;
  wf_init(&w, inner, SHORT_S);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), 0);
  assert_int_equal(w.rc, CF_ETIMEDOUT);
  assert_true(w.t1 - w.t0 >= SHORT_S);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(s.cleanup_rc, 0);
  assert_int_equal(s.cleanup_rc2, 0);
  /* order: inner start, inner cancelled, inner cleanup end, outer after */
  assert_int_equal(nev, 4);
  assert_int_equal(evlog[0], 1);
  assert_int_equal(evlog[1], 2);
  assert_int_equal(evlog[2], 3);
  assert_int_equal(evlog[3], 10);
  assert_int_equal(cf_lfuture_cancelled(inner), 1);
  assert_int_equal(w.cancelling_after, 0);
  assert_int_equal(cf_lfuture_cancelled(outer), 0);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* The inner swallows the cancellation and returns a value: wait_for
 * returns that value with 0. */
static void test_wait_for_inner_suppresses_returns_value(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, 0);
  cf_lfuture_t *inner = spawn(loop, sleeper_body, &s);
  struct wf w;
  wf_init(&w, inner, SHORT_S);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), 0);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(w.rc, 0);
  assert_ptr_equal(w.value, &s.value);
  assert_int_equal(cf_lfuture_cancelled(inner), 0);
  assert_int_equal(w.cancelling_after, 0);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* The inner's cleanup fails with another code: that failure is returned
 * (CF_EFAILED, the code readable from the inner). */
static void test_wait_for_inner_cleanup_fails(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, 42);
  cf_lfuture_t *inner = spawn(loop, sleeper_body, &s);
  struct wf w;
  wf_init(&w, inner, SHORT_S);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), 0);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(w.rc, CF_EFAILED);
  int code = 0;
  assert_int_equal(cf_lfuture_exception(inner, &code, NULL), 0);
  assert_int_equal(code, 42);
  assert_int_equal(w.cancelling_after, 0);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* Cancelling the outer task while it is in wait_for cancels the inner;
 * the outer sees CF_ECANCELLED, not CF_ETIMEDOUT. */
static void test_wait_for_outer_cancelled(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  cf_lfuture_t *inner = spawn(loop, sleeper_body, &s);
  struct wf w;
  wf_init(&w, inner, LONG_S);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  struct canceller c = {outer, UNSET};
  cf_lfuture_t *ct = spawn(loop, canceller_body, &c); /* after both waited */
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  assert_int_equal(c.rc, 1);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(cf_lfuture_cancelled(inner), 1);
  assert_int_equal(w.rc, CF_ECANCELLED);
  assert_int_equal(w.cancelling_after, 1);
  assert_int_equal(cf_lfuture_cancelled(outer), 1);
  cf_lfuture_release(ct);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* gh-86296: the inner completes in the same iteration as the outer gets
 * cancelled (after the inner's done callbacks woke the outer, before the
 * outer's step): the cancellation is not swallowed. */
struct gated_inner {
  cf_lfuture_t *gate;
  int value;
};

static int gated_inner_body(cf_lfuture_t *self, void *arg) {
  struct gated_inner *g = arg;
  int rc = cf_await(g->gate, NULL);
  if (rc != 0)
    return rc;
  cf_task_return(self, &g->value, NULL);
  return 0;
}

struct wf_then {
  struct wf w;
  int sleep_rc;
  int reached_end;
};

static int wf_then_sleep_body(cf_lfuture_t *self, void *arg) {
  struct wf_then *x = arg;
  int rc = wf_body(self, &x->w);
  if (rc != 0)
    return rc;
  x->sleep_rc = cf_sleep(0);
  if (x->sleep_rc != 0)
    return x->sleep_rc;
  x->reached_end = 1;
  return 0;
}

static int cancel_cb_rc;

static void cancel_cb(cf_lfuture_t *f, void *data) {
  cancel_cb_rc = cf_lfuture_done(f) ? cf_lfuture_cancel(data) : -100;
}

static void test_wait_for_gh86296_cancel_not_swallowed(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct gated_inner g = {NULL, 77};
  assert_int_equal(cf_lfuture_create(loop, &g.gate), 0);
  cf_lfuture_t *inner = spawn(loop, gated_inner_body, &g);
  struct wf_then x;
  wf_init(&x.w, inner, LONG_S);
  x.sleep_rc = UNSET;
  x.reached_end = 0;
  cf_lfuture_t *outer = spawn(loop, wf_then_sleep_body, &x);
  /* Registered before the outer's wake-up: it runs when the inner is done
   * and the outer has not resumed yet. */
  cancel_cb_rc = UNSET;
  assert_int_equal(cf_lfuture_add_done_callback(inner, cancel_cb, outer), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0); /* both suspended */
  assert_int_equal(x.w.rc, UNSET);
  assert_int_equal(cf_lfuture_set_result(g.gate, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  assert_int_equal(cancel_cb_rc, 1);
  void *v = NULL;
  assert_int_equal(cf_lfuture_result(inner, &v), 0); /* inner completed */
  assert_ptr_equal(v, &g.value);
  assert_int_equal(x.w.rc, CF_ECANCELLED);
  assert_int_equal(x.reached_end, 0);
  assert_int_equal(x.sleep_rc, UNSET);
  assert_int_equal(cf_lfuture_cancelled(outer), 1);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  cf_lfuture_release(g.gate);
  loop_free(loop);
}

/* The timeout expires and the outer is also cancelled by someone else (the
 * inner's cleanup cancels it): the cancellation is not turned into a
 * timeout. */
struct cleanup_cancels {
  cf_lfuture_t *outer;
  int sleep_rc;
  int cancel_rc;
};

static int cleanup_cancels_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct cleanup_cancels *c = arg;
  c->sleep_rc = cf_sleep(LONG_S);
  c->cancel_rc = cf_lfuture_cancel(c->outer);
  return CF_ECANCELLED;
}

static void test_wait_for_timeout_and_outer_cancel(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct cleanup_cancels c = {NULL, UNSET, UNSET};
  cf_lfuture_t *inner = spawn(loop, cleanup_cancels_body, &c);
  struct wf w;
  wf_init(&w, inner, SHORT_S);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  c.outer = outer;
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  assert_int_equal(c.sleep_rc, CF_ECANCELLED);
  assert_int_equal(c.cancel_rc, 1);
  assert_int_equal(w.rc, CF_ECANCELLED);
  assert_true(w.t1 - w.t0 >= SHORT_S);
  assert_int_equal(w.cancelling_after, 1); /* the other request stays */
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* timeout 0 (and negative) on a done awaitable returns its result. */
static void test_wait_for_zero_on_done(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  int v = 4;
  assert_int_equal(cf_lfuture_set_result(f, &v, NULL), 0);
  struct wf w0, wneg;
  wf_init(&w0, f, 0);
  wf_init(&wneg, f, -1.0);
  cf_lfuture_t *t0 = spawn(loop, wf_body, &w0);
  cf_lfuture_t *t1 = spawn(loop, wf_body, &wneg);
  assert_int_equal(cf_loop_run_until_complete(loop, t0), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, t1), 0);
  assert_int_equal(w0.rc, 0);
  assert_ptr_equal(w0.value, &v);
  assert_int_equal(wneg.rc, 0);
  assert_ptr_equal(wneg.value, &v);
  cf_lfuture_release(t0);
  cf_lfuture_release(t1);
  cf_lfuture_release(f);
  loop_free(loop);
}

/* timeout 0 on a pending (running) task: it is cancelled and awaited (its
 * cleanup ends first), then CF_ETIMEDOUT. */
static void test_wait_for_zero_on_pending(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s;
  sleeper_init(&s, CF_ECANCELLED);
  s.cleanup_delay = 0.001;
  cf_lfuture_t *inner = spawn(loop, sleeper_body, &s);
  struct wf w;
  wf_init(&w, inner, 0);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), 0);
  assert_int_equal(w.rc, CF_ETIMEDOUT);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(nev, 4);
  assert_int_equal(evlog[2], 3); /* cleanup ended ... */
  assert_int_equal(evlog[3], 10); /* ... before wait_for returned */
  assert_int_equal(cf_lfuture_cancelled(inner), 1);
  assert_int_equal(w.cancelling_after, 0);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* timeout 0 on a task that has not started: its body never runs. */
struct wf_spawn {
  struct wf w;
  struct sleeper s;
  cf_loop_t *loop;
  cf_lfuture_t *inner;
};

static int wf_spawn_body(cf_lfuture_t *self, void *arg) {
  struct wf_spawn *x = arg;
  if (cf_task_create(x->loop, sleeper_body, &x->s, &x->inner) != 0)
    return 99;
  x->w.target = x->inner;
  return wf_body(self, &x->w);
}

static void test_wait_for_zero_not_started_never_runs(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct wf_spawn x;
  memset(&x, 0, sizeof(x));
  x.loop = loop;
  sleeper_init(&x.s, 0);
  wf_init(&x.w, NULL, 0);
  cf_lfuture_t *outer = spawn(loop, wf_spawn_body, &x);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), 0);
  assert_int_equal(x.w.rc, CF_ETIMEDOUT);
  assert_int_equal(x.s.body_ran, 0);
  assert_non_null(x.inner);
  assert_int_equal(cf_lfuture_cancelled(x.inner), 1);
  cf_lfuture_release(x.inner);
  cf_lfuture_release(outer);
  loop_free(loop);
}

/* A plain loop future that never completes: cancelled, CF_ETIMEDOUT. */
static void test_wait_for_plain_future_timeout(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  struct wf w;
  wf_init(&w, f, SHORT_S);
  cf_lfuture_t *t = spawn(loop, wf_body, &w);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(w.rc, CF_ETIMEDOUT);
  assert_true(w.t1 - w.t0 >= SHORT_S);
  assert_int_equal(cf_lfuture_cancelled(f), 1);
  cf_lfuture_release(t);
  cf_lfuture_release(f);
  loop_free(loop);
}

/* NaN: CF_EINVAL, and the awaitable is left alone. */
static void test_wait_for_nan(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  struct wf w;
  wf_init(&w, f, NAN);
  cf_lfuture_t *t = spawn(loop, wf_body, &w);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(w.rc, CF_EINVAL);
  assert_int_equal(cf_lfuture_done(f), 0);
  cf_lfuture_release(t);
  cf_lfuture_release(f);
  loop_free(loop);
}

/* Nested scopes: the inner expires -> CF_ETIMEDOUT for the inner scope
 * only; the outer scope's body goes on and exits with its own code. */
struct scopes {
  double outer_delay, inner_delay;
  int enter1, enter2;
  int sleep_rc;
  int exit_inner;
  int after_rc;
  int exit_outer;
  int cancelling_after;
};

static int scopes_body(cf_lfuture_t *self, void *arg) {
  struct scopes *s = arg;
  cf_timeout_t *outer = NULL, *inner = NULL;
  s->enter1 = cf_timeout_enter(s->outer_delay, &outer);
  if (s->enter1 != 0)
    return 0;
  s->enter2 = cf_timeout_enter(s->inner_delay, &inner);
  if (s->enter2 != 0) {
    cf_timeout_exit(outer, 0);
    return 0;
  }
  s->sleep_rc = cf_sleep(LONG_S);
  s->exit_inner = cf_timeout_exit(inner, s->sleep_rc);
  s->after_rc = s->exit_inner == CF_ECANCELLED ? CF_ECANCELLED : cf_sleep(0);
  s->exit_outer = cf_timeout_exit(outer, s->after_rc);
  s->cancelling_after = cf_task_cancelling(self);
  return 0;
}

static void test_timeout_nested_inner_expires(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct scopes s = {LONG_S, SHORT_S, UNSET, UNSET, UNSET,
                     UNSET,  UNSET,   UNSET, UNSET};
  cf_lfuture_t *t = spawn(loop, scopes_body, &s);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(s.enter1, 0);
  assert_int_equal(s.enter2, 0);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(s.exit_inner, CF_ETIMEDOUT);
  assert_int_equal(s.after_rc, 0); /* the outer scope goes on */
  assert_int_equal(s.exit_outer, 0);
  assert_int_equal(s.cancelling_after, 0);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* Nested scopes, the outer expires: the inner scope lets the cancellation
 * through (CF_ECANCELLED), the outer turns it into CF_ETIMEDOUT. */
static void test_timeout_nested_outer_expires(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct scopes s = {SHORT_S, LONG_S, UNSET, UNSET, UNSET,
                     UNSET,   UNSET,  UNSET, UNSET};
  cf_lfuture_t *t = spawn(loop, scopes_body, &s);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(s.sleep_rc, CF_ECANCELLED);
  assert_int_equal(s.exit_inner, CF_ECANCELLED);
  assert_int_equal(s.after_rc, CF_ECANCELLED);
  assert_int_equal(s.exit_outer, CF_ETIMEDOUT);
  assert_int_equal(s.cancelling_after, 0);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Pool futures awaited from tasks                                    */
/* ------------------------------------------------------------------ */

/* Submits fn(arg) to ex inside the task and awaits it. */
struct pool_await {
  cf_executor_t *ex;
  cf_job_fn fn;
  void *arg;
  cf_future_t *pf; /* also kept for the test */
  int rc;
  void *value;
};

static int pool_await_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct pool_await *p = arg;
  if (p->pf == NULL &&
      cf_executor_submit(p->ex, p->fn, p->arg, NULL, &p->pf) != 0)
    return 99;
  p->rc = cf_await_future(p->pf, &p->value);
  rec(20);
  return p->rc == CF_ECANCELLED ? CF_ECANCELLED : 0;
}

static void test_await_future_value(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(2);
  struct pool_await p = {ex, echo_job, (void *)(intptr_t)7, NULL, UNSET, NULL};
  cf_lfuture_t *t = spawn(loop, pool_await_body, &p);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(p.rc, 0);
  assert_int_equal((intptr_t)p.value, 7);
  cf_lfuture_release(t);
  cf_future_release(p.pf);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_await_future_failure(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(2);
  struct pool_await p = {ex, failing_job, (void *)(intptr_t)42, NULL, UNSET,
                         NULL};
  cf_lfuture_t *t = spawn(loop, pool_await_body, &p);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(p.rc, CF_EFAILED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_future_exception(p.pf, 0, &code, &msg), 0);
  assert_int_equal(code, 42);
  assert_string_equal(msg, "failed with 42");
  cf_lfuture_release(t);
  cf_future_release(p.pf);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* cf_run_in_executor from a task; ex NULL uses the loop's executor. */
struct rie {
  cf_executor_t *ex;
  cf_job_fn fn;
  void *arg;
  cf_free_fn arg_dtor;
  int rc;
  cf_future_t *done;
  int self_is_current;
};

static int rie_body(cf_lfuture_t *self, void *arg) {
  struct rie *r = arg;
  r->rc = cf_run_in_executor(r->ex, r->fn, r->arg, r->arg_dtor, &r->done);
  r->self_is_current = cf_current_task() == self;
  rec(30);
  return r->rc == CF_ECANCELLED ? CF_ECANCELLED : 0;
}

static void test_run_in_executor_value(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(2);
  static int arg = 8;
  struct rie r = {ex, echo_job, &arg, count_free, UNSET, NULL, 0};
  cf_lfuture_t *t = spawn(loop, rie_body, &r);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.self_is_current, 1);
  assert_non_null(r.done);
  void *v = NULL;
  assert_int_equal(cf_future_result(r.done, 0, &v), 0);
  assert_ptr_equal(v, &arg);
  cf_future_release(r.done);
  cf_lfuture_release(t);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&counter_hits), 1); /* arg_dtor once */
}

static void test_run_in_executor_failure(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(2);
  struct rie r = {ex, failing_job, (void *)(intptr_t)43, NULL, UNSET, NULL, 0};
  cf_lfuture_t *t = spawn(loop, rie_body, &r);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(r.rc, CF_EFAILED);
  assert_non_null(r.done);
  int code = 0;
  assert_int_equal(cf_future_exception(r.done, 0, &code, NULL), 0);
  assert_int_equal(code, 43);
  cf_future_release(r.done);
  cf_lfuture_release(t);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

static void test_run_in_executor_loop_executor(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct rie r = {NULL, record_job, (void *)(intptr_t)5, NULL, UNSET, NULL, 0};
  cf_lfuture_t *t = spawn(loop, rie_body, &r);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(r.rc, 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(r.done, 0, &v), 0);
  assert_int_equal((intptr_t)v, 5);
  assert_int_equal(atomic_load(&job_runs), 1);
  cf_future_release(r.done);
  cf_lfuture_release(t);
  loop_free(loop); /* destroys the executor it made */
}

/* Task cancelled while its pool job is queued behind a gated job on a
 * 1-worker pool: the pool future is cancelled and the job never runs. */
static void test_task_cancel_pool_job_queued(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_job, &g, NULL, &blocker), 0);
  gate_wait_started(&g);
  struct pool_await p = {ex, record_job, NULL, NULL, UNSET, NULL};
  assert_int_equal(cf_executor_submit(ex, record_job, NULL, NULL, &p.pf), 0);
  cf_lfuture_t *t = spawn(loop, pool_await_body, &p);
  assert_int_equal(cf_loop_run_once(loop, 0), 0); /* awaiting pf */
  assert_int_equal(p.rc, UNSET);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(p.rc, CF_ECANCELLED);
  assert_int_equal(cf_future_cancelled(p.pf), 1); /* before the gate opens */
  gate_open(&g, 1);
  assert_int_equal(wait_result(blocker, NULL), 0);
  assert_int_equal(cf_executor_destroy(ex), 0); /* all queued work done */
  assert_int_equal(atomic_load(&job_runs), 0);
  assert_int_equal(wait_result(p.pf, NULL), CF_ECANCELLED);
  cf_future_release(p.pf);
  cf_future_release(blocker);
  cf_lfuture_release(t);
  loop_free(loop);
  gate_fini(&g);
}

/* The same through cf_run_in_executor: the job never runs, its argument
 * destructor runs once, *done is not set. */
static void test_task_cancel_run_in_executor_queued(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_job, &g, NULL, &blocker), 0);
  gate_wait_started(&g);
  static int arg;
  struct rie r = {ex, record_job, &arg, count_free, UNSET, NULL, 0};
  cf_lfuture_t *t = spawn(loop, rie_body, &r);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(r.rc, CF_ECANCELLED);
  assert_null(r.done);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&job_runs), 0);
  assert_int_equal(atomic_load(&counter_hits), 1);
  cf_future_release(blocker);
  cf_lfuture_release(t);
  loop_free(loop);
  gate_fini(&g);
}

/* Task cancelled while its pool job runs: the job finishes (not pre-empted)
 * and its value's destructor runs exactly once, after the last reference
 * is dropped. */
static int gated_value_job(void *arg, cf_job_t *job) {
  gate_t *g = arg;
  sem_post(&g->started);
  sem_take(&g->open);
  atomic_fetch_add(&job_runs, 1);
  cf_job_return(job, arg, count_free);
  return 0;
}

static void test_task_cancel_pool_job_running(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  gate_t g;
  gate_init(&g);
  struct pool_await p = {ex, gated_value_job, &g, NULL, UNSET, NULL};
  assert_int_equal(cf_executor_submit(ex, gated_value_job, &g, NULL, &p.pf),
                   0);
  gate_wait_started(&g); /* running */
  cf_lfuture_t *t = spawn(loop, pool_await_body, &p);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  assert_int_equal(cf_future_cancelled(p.pf), 0); /* running: not cancelled */
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(p.rc, CF_ECANCELLED);
  gate_open(&g, 1);
  void *v = NULL;
  assert_int_equal(wait_result(p.pf, &v), 0); /* it finished */
  assert_ptr_equal(v, &g);
  assert_int_equal(atomic_load(&job_runs), 1);
  assert_int_equal(atomic_load(&counter_hits), 0); /* we still hold pf */
  cf_lfuture_release(t);
  cf_future_release(p.pf);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&counter_hits), 1);
  gate_fini(&g);
}

/* cf_loop_close while a task awaits a running pool job: the task ends
 * cancelled, the job finishes later and its value is dropped once. */
static void test_loop_close_with_running_pool_job(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  gate_t g;
  gate_init(&g);
  struct pool_await p = {ex, gated_value_job, &g, NULL, UNSET, NULL};
  assert_int_equal(cf_executor_submit(ex, gated_value_job, &g, NULL, &p.pf),
                   0);
  gate_wait_started(&g);
  assert_int_equal(cf_task_create(loop, pool_await_body, &p, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0); /* awaiting pf */
  loop_free(loop);
  assert_int_equal(p.rc, CF_ECANCELLED);
  assert_int_equal(cf_future_running(p.pf), 1);
  gate_open(&g, 1);
  assert_int_equal(wait_result(p.pf, NULL), 0);
  cf_future_release(p.pf);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&job_runs), 1);
  assert_int_equal(atomic_load(&counter_hits), 1);
  gate_fini(&g);
}

/* A job that polls cf_job_cancel_requested, one poll per post of `poll`;
 * it posts `polled` after each poll that saw 0. */
struct coop {
  sem_t started, poll, polled;
  atomic_int polls_zero;
  atomic_int saw_request;
};

static void coop_init(struct coop *c) {
  sem_init(&c->started, 0, 0);
  sem_init(&c->poll, 0, 0);
  sem_init(&c->polled, 0, 0);
  atomic_store(&c->polls_zero, 0);
  atomic_store(&c->saw_request, 0);
}

static void coop_fini(struct coop *c) {
  sem_destroy(&c->started);
  sem_destroy(&c->poll);
  sem_destroy(&c->polled);
}

static int coop_job(void *arg, cf_job_t *job) {
  struct coop *c = arg;
  sem_post(&c->started);
  for (;;) {
    sem_take(&c->poll);
    if (cf_job_cancel_requested(job)) {
      atomic_store(&c->saw_request, 1);
      return CF_ECANCELLED;
    }
    atomic_fetch_add(&c->polls_zero, 1);
    sem_post(&c->polled);
  }
}

/* Start coop_job and let it poll twice (seeing no request). */
static cf_future_t *coop_start(cf_executor_t *ex, struct coop *c) {
  cf_future_t *pf = NULL;
  assert_int_equal(cf_executor_submit(ex, coop_job, c, NULL, &pf), 0);
  sem_take(&c->started);
  for (int i = 0; i < 2; i++) {
    sem_post(&c->poll);
    sem_take(&c->polled);
  }
  assert_int_equal(atomic_load(&c->polls_zero), 2);
  return pf;
}

static void test_cooperative_cancel_on_task_cancel(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  struct coop c;
  coop_init(&c);
  struct pool_await p = {ex, coop_job, &c, NULL, UNSET, NULL};
  p.pf = coop_start(ex, &c);
  cf_lfuture_t *t = spawn(loop, pool_await_body, &p);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(cf_lfuture_cancel(t), 1);
  sem_post(&c.poll); /* the next poll sees the request */
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(p.rc, CF_ECANCELLED);
  assert_int_equal(wait_result(p.pf, NULL), CF_ECANCELLED);
  assert_int_equal(cf_future_cancelled(p.pf), 1);
  assert_int_equal(atomic_load(&c.saw_request), 1);
  assert_int_equal(atomic_load(&c.polls_zero), 2);
  cf_future_release(p.pf);
  cf_lfuture_release(t);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
  coop_fini(&c);
}

/* The same driven by a wait_for timeout on a wrapper of the pool future:
 * CF_ETIMEDOUT, then the job's next poll sees the request. */
struct coop_wf {
  cf_loop_t *loop;
  cf_future_t *pf;
  struct coop *c;
  int rc;
  double t0, t1;
};

static int coop_wf_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct coop_wf *x = arg;
  cf_lfuture_t *w = NULL;
  if (cf_lfuture_wrap(x->loop, x->pf, &w) != 0)
    return 99;
  x->t0 = cf_loop_time(x->loop);
  x->rc = cf_wait_for(w, SHORT_S, NULL);
  x->t1 = cf_loop_time(x->loop);
  cf_lfuture_release(w);
  sem_post(&x->c->poll);
  return 0;
}

static void test_cooperative_cancel_on_timeout(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  struct coop c;
  coop_init(&c);
  struct coop_wf x = {loop, NULL, &c, UNSET, 0, 0};
  x.pf = coop_start(ex, &c);
  cf_lfuture_t *t = spawn(loop, coop_wf_body, &x);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(x.rc, CF_ETIMEDOUT);
  assert_true(x.t1 - x.t0 >= SHORT_S);
  assert_int_equal(wait_result(x.pf, NULL), CF_ECANCELLED);
  assert_int_equal(cf_future_cancelled(x.pf), 1);
  assert_int_equal(atomic_load(&c.saw_request), 1);
  cf_future_release(x.pf);
  cf_lfuture_release(t);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
  coop_fini(&c);
}

/* wait_for on a wrapper of a queued pool future: CF_ETIMEDOUT, the pool
 * future is cancelled and its job never runs. */
struct wrap_wf {
  cf_loop_t *loop;
  cf_future_t *pf;
  double timeout;
  int rc;
  void *value;
  double t0, t1;
};

static int wrap_wf_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct wrap_wf *x = arg;
  cf_lfuture_t *w = NULL;
  if (cf_lfuture_wrap(x->loop, x->pf, &w) != 0)
    return 99;
  x->t0 = cf_loop_time(x->loop);
  x->rc = cf_wait_for(w, x->timeout, &x->value);
  x->t1 = cf_loop_time(x->loop);
  cf_lfuture_release(w);
  return 0;
}

static void test_wait_for_pool_wrapper_timeout(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_job, &g, NULL, &blocker), 0);
  gate_wait_started(&g);
  struct wrap_wf x = {loop, NULL, SHORT_S, UNSET, NULL, 0, 0};
  assert_int_equal(cf_executor_submit(ex, record_job, NULL, NULL, &x.pf), 0);
  cf_lfuture_t *t = spawn(loop, wrap_wf_body, &x);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(x.rc, CF_ETIMEDOUT);
  assert_true(x.t1 - x.t0 >= SHORT_S);
  assert_int_equal(cf_future_cancelled(x.pf), 1);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&job_runs), 0);
  cf_future_release(x.pf);
  cf_future_release(blocker);
  cf_lfuture_release(t);
  loop_free(loop);
  gate_fini(&g);
}

static void test_wait_for_pool_wrapper_in_time(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = pool_new(1);
  struct wrap_wf x = {loop, NULL, LONG_S, UNSET, NULL, 0, 0};
  assert_int_equal(
      cf_executor_submit(ex, echo_job, (void *)(intptr_t)11, NULL, &x.pf), 0);
  cf_lfuture_t *t = spawn(loop, wrap_wf_body, &x);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(x.rc, 0);
  assert_int_equal((intptr_t)x.value, 11);
  cf_future_release(x.pf);
  cf_lfuture_release(t);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------ */
/* Sleep, gather, shield                                              */
/* ------------------------------------------------------------------ */

static int yield_a_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  int *rcs = arg;
  rec(1);
  rcs[0] = cf_sleep(0);
  rec(3);
  rcs[1] = cf_sleep(0);
  rec(5);
  return 0;
}

static int yield_b_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  int *rcs = arg;
  rec(2);
  rcs[2] = cf_sleep(0);
  rec(4);
  return 0;
}

/* cf_sleep(0) yields: the other ready task runs in between. */
static void test_sleep_zero_yields(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int rcs[3] = {UNSET, UNSET, UNSET};
  cf_lfuture_t *a = spawn(loop, yield_a_body, rcs);
  cf_lfuture_t *b = spawn(loop, yield_b_body, rcs);
  assert_int_equal(cf_loop_run_until_complete(loop, a), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, b), 0);
  assert_int_equal(rcs[0], 0);
  assert_int_equal(rcs[1], 0);
  assert_int_equal(rcs[2], 0);
  assert_int_equal(nev, 5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(evlog[i], i + 1);
  cf_lfuture_release(a);
  cf_lfuture_release(b);
  loop_free(loop);
}

/* A timed sleep is not shorter than asked (loop clock). */
struct timed_sleep {
  double t0, t1;
  int rc;
};

static int timed_sleep_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct timed_sleep *s = arg;
  s->t0 = cf_loop_time(NULL);
  s->rc = cf_sleep(0.01);
  s->t1 = cf_loop_time(NULL);
  return 0;
}

static void test_sleep_not_before_deadline(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct timed_sleep s = {0, 0, UNSET};
  cf_lfuture_t *t = spawn(loop, timed_sleep_body, &s);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(s.rc, 0);
  assert_true(s.t1 - s.t0 >= 0.01);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* A child for gather: yields i times, ends with i + 1. */
static int gather_child_body(cf_lfuture_t *self, void *arg) {
  intptr_t i = (intptr_t)arg;
  for (intptr_t k = 0; k < i; k++) {
    int rc = cf_sleep(0);
    if (rc != 0)
      return rc;
  }
  cf_task_return(self, (void *)(i + 1), NULL);
  return 0;
}

struct gather3 {
  cf_loop_t *loop;
  int rc;
  intptr_t sum;
  int all_done;
};

static int gather3_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct gather3 *g = arg;
  cf_lfuture_t *kids[3] = {NULL, NULL, NULL};
  int rc = 0;
  for (intptr_t i = 0; i < 3 && rc == 0; i++)
    rc = cf_task_create(g->loop, gather_child_body, (void *)(2 - i),
                        &kids[i]);
  cf_lfuture_t *all = NULL;
  if (rc == 0)
    rc = cf_gather(g->loop, kids, 3, &all);
  if (rc == 0) {
    g->rc = cf_await(all, NULL);
    g->all_done = 1;
    for (int i = 0; i < 3; i++) {
      void *v = NULL;
      g->all_done &= cf_lfuture_done(kids[i]);
      if (cf_lfuture_result(kids[i], &v) == 0)
        g->sum += (intptr_t)v;
    }
  }
  cf_lfuture_release(all);
  for (int i = 0; i < 3; i++)
    cf_lfuture_release(kids[i]);
  return rc;
}

static void test_gather_three_tasks_in_task(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct gather3 g = {loop, UNSET, 0, 0};
  cf_lfuture_t *t = spawn(loop, gather3_body, &g);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.all_done, 1);
  assert_int_equal(g.sum, 1 + 2 + 3);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* Cancelling a task that awaits gather(children) cancels every child. */
struct gather_waiter {
  cf_loop_t *loop;
  cf_lfuture_t *kids[2];
  int rc;
};

static int gather_waiter_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct gather_waiter *g = arg;
  cf_lfuture_t *all = NULL;
  int rc = cf_gather(g->loop, g->kids, 2, &all);
  if (rc != 0)
    return rc;
  g->rc = cf_await(all, NULL);
  cf_lfuture_release(all);
  return g->rc;
}

static void test_cancel_task_awaiting_gather_cancels_children(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct sleeper s1, s2;
  sleeper_init(&s1, CF_ECANCELLED);
  sleeper_init(&s2, CF_ECANCELLED);
  struct gather_waiter g = {loop, {NULL, NULL}, UNSET};
  g.kids[0] = spawn(loop, sleeper_body, &s1);
  g.kids[1] = spawn(loop, sleeper_body, &s2);
  cf_lfuture_t *outer = spawn(loop, gather_waiter_body, &g);
  struct canceller c = {outer, UNSET};
  cf_lfuture_t *ct = spawn(loop, canceller_body, &c);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  assert_int_equal(c.rc, 1);
  assert_int_equal(g.rc, CF_ECANCELLED);
  assert_int_equal(cf_loop_run_until_complete(loop, g.kids[0]), CF_ECANCELLED);
  assert_int_equal(cf_loop_run_until_complete(loop, g.kids[1]), CF_ECANCELLED);
  assert_int_equal(s1.sleep_rc, CF_ECANCELLED);
  assert_int_equal(s2.sleep_rc, CF_ECANCELLED);
  cf_lfuture_release(ct);
  cf_lfuture_release(outer);
  cf_lfuture_release(g.kids[0]);
  cf_lfuture_release(g.kids[1]);
  loop_free(loop);
}

/* shield: the outer task is cancelled while awaiting shield(inner); the
 * inner goes on and completes with its value. */
struct shielder {
  cf_lfuture_t *inner;
  int shield_rc;
  int rc;
};

static int shielder_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct shielder *s = arg;
  cf_lfuture_t *sh = NULL;
  s->shield_rc = cf_shield(s->inner, &sh);
  if (s->shield_rc != 0)
    return 0;
  s->rc = cf_await(sh, NULL);
  cf_lfuture_release(sh);
  return s->rc;
}

static void test_shield_outer_cancelled_inner_completes(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct gated_inner gi = {NULL, 55};
  assert_int_equal(cf_lfuture_create(loop, &gi.gate), 0);
  cf_lfuture_t *inner = spawn(loop, gated_inner_body, &gi);
  struct shielder s = {inner, UNSET, UNSET};
  cf_lfuture_t *outer = spawn(loop, shielder_body, &s);
  struct canceller c = {outer, UNSET};
  cf_lfuture_t *ct = spawn(loop, canceller_body, &c);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  assert_int_equal(c.rc, 1);
  assert_int_equal(s.shield_rc, 0);
  assert_int_equal(s.rc, CF_ECANCELLED);
  assert_int_equal(cf_lfuture_done(inner), 0); /* goes on */
  assert_int_equal(cf_task_cancelling(inner), 0);
  assert_int_equal(cf_lfuture_set_result(gi.gate, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, inner), 0);
  void *v = NULL;
  assert_int_equal(cf_lfuture_result(inner, &v), 0);
  assert_ptr_equal(v, &gi.value);
  cf_lfuture_release(ct);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  cf_lfuture_release(gi.gate);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Many tasks, loop close, stacks                                     */
/* ------------------------------------------------------------------ */

/* ThreadSanitizer gives every task a fiber with its own ~1 MiB trace
 * mapping; with gcc 12 it runs out of address space between 5,000 and
 * 8,000 live fibers, so that build runs fewer tasks at once. */
#ifdef TEST_TSAN
#define MANY_TASKS 2000
#else
#define MANY_TASKS 10000
#endif

struct many {
  cf_executor_t *ex;
  intptr_t sum;
  int ok;
};

static struct many many_state;

static int many_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  cf_future_t *done = NULL;
  int rc = cf_run_in_executor(many_state.ex, echo_job, arg, NULL, &done);
  if (rc != 0)
    return rc;
  void *v = NULL;
  rc = cf_future_result(done, 0, &v);
  cf_future_release(done);
  if (rc != 0)
    return rc;
  many_state.sum += (intptr_t)v;
  many_state.ok++;
  return 0;
}

/* 10,000 tasks at once, each awaiting a trivial pool job (4 workers). */
static void test_many_tasks_await_pool(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  memset(&many_state, 0, sizeof(many_state));
  many_state.ex = pool_new(4);
  cf_lfuture_t **ts = calloc(MANY_TASKS, sizeof(*ts));
  assert_non_null(ts);
  for (intptr_t i = 0; i < MANY_TASKS; i++)
    ts[i] = spawn(loop, many_body, (void *)i);
  cf_lfuture_t *all = NULL;
  assert_int_equal(cf_gather(loop, ts, MANY_TASKS, &all), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, all), 0);
  assert_int_equal(many_state.ok, MANY_TASKS);
  assert_int_equal(many_state.sum,
                   (intptr_t)MANY_TASKS * (MANY_TASKS - 1) / 2);
  int failed = 0;
  for (int i = 0; i < MANY_TASKS; i++) {
    failed += cf_lfuture_result(ts[i], NULL) != 0;
    cf_lfuture_release(ts[i]);
  }
  assert_int_equal(failed, 0);
  cf_lfuture_release(all);
  free(ts);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(many_state.ex), 0);
}

/* cf_loop_close cancels every task still sleeping; each one's cleanup
 * (which awaits) runs to its end before close returns. */
#define CLOSE_TASKS 200

struct closing {
  int started, cancelled, cleaned, ended;
};

static struct closing closing_state;

static int closing_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  closing_state.started++;
  int rc = cf_sleep(LONG_S);
  if (rc == CF_ECANCELLED) {
    closing_state.cancelled++;
    if (cf_sleep(0) == 0 && cf_sleep(0.001) == 0)
      closing_state.cleaned++;
  }
  closing_state.ended++;
  return CF_ECANCELLED;
}

static int kick_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  return cf_sleep(0); /* the others take their first step meanwhile */
}

static void test_loop_close_cancels_sleeping_tasks(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  memset(&closing_state, 0, sizeof(closing_state));
  for (int i = 0; i < CLOSE_TASKS; i++)
    assert_int_equal(cf_task_create(loop, closing_body, NULL, NULL), 0);
  cf_lfuture_t *k = spawn(loop, kick_body, NULL);
  assert_int_equal(cf_loop_run_until_complete(loop, k), 0);
  cf_lfuture_release(k);
  assert_int_equal(closing_state.started, CLOSE_TASKS);
  assert_int_equal(closing_state.ended, 0);
  loop_free(loop);
  assert_int_equal(closing_state.cancelled, CLOSE_TASKS);
  assert_int_equal(closing_state.cleaned, CLOSE_TASKS);
  assert_int_equal(closing_state.ended, CLOSE_TASKS);
}

/* A task cancelled by cf_loop_close cannot start a new task from its
 * cleanup: CF_ESHUTDOWN (task.c; loop.h does not list it). */
struct late_create {
  cf_loop_t *loop;
  int sleep_rc;
  int create_rc;
  int close_rc;
};

static int late_create_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct late_create *l = arg;
  l->sleep_rc = cf_sleep(LONG_S);
  cf_lfuture_t *t = NULL;
  l->create_rc = cf_task_create(l->loop, value_body, NULL, &t);
  if (l->create_rc == 0)
    cf_lfuture_release(t);
  l->close_rc = cf_loop_close(l->loop); /* not from a task */
  return CF_ECANCELLED;
}

static void test_task_create_while_closing(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct late_create l = {loop, UNSET, UNSET, UNSET};
  assert_int_equal(cf_task_create(loop, late_create_body, &l, NULL), 0);
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  assert_int_equal(l.sleep_rc, UNSET);
  loop_free(loop);
  assert_int_equal(l.sleep_rc, CF_ECANCELLED);
  assert_int_equal(l.create_rc, CF_ESHUTDOWN);
  assert_int_equal(l.close_rc, CF_EINVALID_STATE);
}

/* Deep recursion on a task's stack (default 256 KiB): ~100 frames of
 * ~1 KiB each, with a switch away (a yield) at the deepest point. */
#define DEPTH 100

static char *volatile stack_top;
static volatile size_t stack_used;

static __attribute__((noinline)) int deep(int depth) {
  volatile char buf[1024];
  for (size_t i = 0; i < sizeof(buf); i += 32)
    buf[i] = (char)depth;
  buf[sizeof(buf) - 1] = (char)depth;
  if (depth == DEPTH)
    stack_top = (char *)buf;
  int r;
  if (depth == 0) {
    stack_used = (size_t)(stack_top - (char *)buf);
    r = cf_sleep(0) == 0 ? 1 : -100000;
  } else {
    r = deep(depth - 1);
  }
  /* the frame survived the switch and the deeper frames */
  for (size_t i = 0; i < sizeof(buf); i += 32)
    if (buf[i] != (char)depth)
      return -100000;
  return r + 1;
}

static int deep_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  *(int *)arg = deep(DEPTH);
  return 0;
}

static void test_deep_recursion_on_task_stack(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int r = 0, r2 = 0;
  cf_lfuture_t *t = spawn(loop, deep_body, &r);
  cf_lfuture_t *t2 = spawn(loop, deep_body, &r2); /* interleaves at depth 0 */
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, t2), 0);
  assert_int_equal(r, DEPTH + 2);
  assert_int_equal(r2, DEPTH + 2);
#ifndef TEST_ASAN /* ASan may move frames to its fake stack */
  assert_true(stack_used >= 90 * 1024);
#endif
  cf_lfuture_release(t);
  cf_lfuture_release(t2);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Bad arguments                                                      */
/* ------------------------------------------------------------------ */

struct nulls {
  int await_rc, await_future_rc, wait_for_rc, enter_rc, enter_nan_rc;
  int sleep_nan_rc, rie_rc, shield_rc, gather_rc, run_rc, close_rc;
  cf_loop_t *loop;
};

static int nulls_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct nulls *n = arg;
  cf_timeout_t *scope = NULL;
  n->await_rc = cf_await(NULL, NULL);
  n->await_future_rc = cf_await_future(NULL, NULL);
  n->wait_for_rc = cf_wait_for(NULL, 1.0, NULL);
  n->enter_rc = cf_timeout_enter(1.0, NULL);
  n->enter_nan_rc = cf_timeout_enter(NAN, &scope);
  n->sleep_nan_rc = cf_sleep(NAN);
  n->rie_rc = cf_run_in_executor(NULL, NULL, NULL, NULL, NULL);
  cf_lfuture_t *out = NULL;
  n->shield_rc = cf_shield(NULL, &out);
  n->gather_rc = cf_gather(n->loop, NULL, 1, &out);
  n->run_rc = cf_loop_run_until_complete(n->loop, self);
  n->close_rc = cf_loop_close(n->loop);
  cf_task_return(NULL, NULL, NULL); /* ignored */
  return 0;
}

static int noop_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

static void test_null_arguments(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *t = NULL;
  assert_int_equal(cf_task_create(NULL, noop_body, NULL, &t), CF_EINVAL);
  assert_int_equal(cf_task_create(loop, NULL, NULL, &t), CF_EINVAL);
  assert_null(t);
  assert_int_equal(cf_lfuture_cancel(NULL), CF_EINVAL);
  assert_int_equal(cf_task_cancelling(NULL), CF_EINVAL);
  assert_int_equal(cf_task_uncancel(NULL), CF_EINVAL);
  assert_int_equal(cf_timeout_exit(NULL, 0), CF_EINVAL);
  assert_int_equal(cf_await(NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_sleep(NAN), CF_EINVAL);
  cf_lfuture_t *plain = NULL;
  assert_int_equal(cf_lfuture_create(loop, &plain), 0);
  assert_int_equal(cf_task_cancelling(plain), CF_EINVAL); /* not a task */
  assert_int_equal(cf_task_uncancel(plain), CF_EINVAL);
  cf_lfuture_release(plain);
  struct nulls n;
  memset(&n, 0, sizeof(n));
  n.loop = loop;
  cf_lfuture_t *nt = spawn(loop, nulls_body, &n);
  assert_int_equal(cf_loop_run_until_complete(loop, nt), 0);
  assert_int_equal(n.await_rc, CF_EINVAL);
  assert_int_equal(n.await_future_rc, CF_EINVAL);
  assert_int_equal(n.wait_for_rc, CF_EINVAL);
  assert_int_equal(n.enter_rc, CF_EINVAL);
  assert_int_equal(n.enter_nan_rc, CF_EINVAL);
  assert_int_equal(n.sleep_nan_rc, CF_EINVAL);
  assert_int_equal(n.rie_rc, CF_EINVAL);
  assert_int_equal(n.shield_rc, CF_EINVAL);
  assert_int_equal(n.gather_rc, CF_EINVAL);
  assert_int_equal(n.run_rc, CF_EINVALID_STATE);
  assert_int_equal(n.close_rc, CF_EINVALID_STATE);
  cf_lfuture_release(nt);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Regressions: bugs these tests found in wait_for(…, 0) and await.    */
/* ------------------------------------------------------------------ */

/* wait_for(inner, 0) while the calling task is cancelled: asyncio's
 * _cancel_and_wait lets the CancelledError out at once (the inner goes on
 * with its cleanup); the caller must see CF_ECANCELLED, never a timeout.
 * It used to re-await a cancelled shield in a loop and spin. */
struct slow_cleanup {
  cf_lfuture_t *gate;
  int sleep_rc;
};

static int slow_cleanup_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct slow_cleanup *x = arg;
  x->sleep_rc = cf_sleep(LONG_S);
  (void)cf_await(x->gate, NULL);
  rec(40);
  return CF_ECANCELLED;
}

static void test_bug_wait_for_zero_outer_cancelled(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct slow_cleanup x = {NULL, UNSET};
  assert_int_equal(cf_lfuture_create(loop, &x.gate), 0);
  cf_lfuture_t *inner = spawn(loop, slow_cleanup_body, &x);
  struct wf w;
  wf_init(&w, inner, 0);
  cf_lfuture_t *outer = spawn(loop, wf_body, &w);
  struct canceller c = {outer, UNSET};
  cf_lfuture_t *ct = spawn(loop, canceller_body, &c);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  assert_int_equal(w.rc, CF_ECANCELLED);
  assert_int_equal(cf_lfuture_done(inner), 0); /* still cleaning up */
  assert_int_equal(cf_lfuture_set_result(x.gate, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, inner), CF_ECANCELLED);
  cf_lfuture_release(ct);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  cf_lfuture_release(x.gate);
  loop_free(loop);
}

/* cf_wait_for(self, 0) must be CF_EINVALID_STATE like cf_await(self) and
 * cf_wait_for(self, t > 0); it used to cancel the task itself and spin. */
static int wait_for_self_zero_body(cf_lfuture_t *self, void *arg) {
  *(int *)arg = cf_wait_for(self, 0, NULL);
  return 0;
}

static void test_bug_wait_for_self_zero(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int rc = UNSET;
  cf_lfuture_t *t = spawn(loop, wait_for_self_zero_body, &rc);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(rc, CF_EINVALID_STATE);
  assert_int_equal(cf_task_cancelling(t), 0);
  cf_lfuture_release(t);
  loop_free(loop);
}

/* A task with a cancellation pending awaits a pending future: asyncio's
 * __step cancels the awaited future (loop.h: "then f, if still pending,
 * was cancelled too, as asyncio does"); task.c returns CF_ECANCELLED
 * without touching it. */
struct pending_cancel_await {
  cf_lfuture_t *f;
  int rc;
};

static int pending_cancel_await_body(cf_lfuture_t *self, void *arg) {
  struct pending_cancel_await *x = arg;
  (void)cf_lfuture_cancel(self);
  x->rc = cf_await(x->f, NULL);
  return x->rc;
}

static void test_bug_await_with_pending_cancel_cancels_future(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  struct pending_cancel_await x = {NULL, UNSET};
  assert_int_equal(cf_lfuture_create(loop, &x.f), 0);
  cf_lfuture_t *t = spawn(loop, pending_cancel_await_body, &x);
  assert_int_equal(cf_loop_run_until_complete(loop, t), CF_ECANCELLED);
  assert_int_equal(x.rc, CF_ECANCELLED);
  assert_int_equal(cf_lfuture_cancelled(x.f), 1);
  cf_lfuture_release(t);
  cf_lfuture_release(x.f);
  loop_free(loop);
}

/* cf_run_in_executor refused by a pool already shut down: the task gets
 * CF_ESHUTDOWN, keeps going, and ends; nothing the refused call left
 * behind touches the task afterwards (it used to, after the task was
 * freed). */
typedef struct refused {
  cf_executor_t *ex;
  int rc;
} refused_t;

static int refused_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  refused_t *r = arg;
  r->rc = cf_run_in_executor(r->ex, echo_job, NULL, NULL, NULL);
  return 0;
}

static void test_run_in_executor_refused_then_task_ends(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, NULL), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  refused_t r = {ex, 99};
  cf_lfuture_t *t = NULL;
  assert_int_equal(cf_task_create(loop, refused_body, &r, &t), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, t), 0);
  assert_int_equal(r.rc, CF_ESHUTDOWN);
  cf_lfuture_release(t);
  assert_int_equal(cf_loop_run_once(loop, 0), 0); /* leftovers run here */
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
  loop_free(loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* Task.cancel */
      cmocka_unit_test_setup(test_cancel_pending_returns_1_and_counts, setup),
      cmocka_unit_test_setup(test_cancel_done_returns_0, setup),
      cmocka_unit_test_setup(test_cancel_delivered_once_at_suspended_await,
                             setup),
      cmocka_unit_test_setup(test_cancel_running_task_at_next_await, setup),
      cmocka_unit_test_setup(test_cancel_cleanup_may_await, setup),
      cmocka_unit_test_setup(test_cancel_reraise_ends_cancelled, setup),
      cmocka_unit_test_setup(test_cancel_suppressed_ends_with_value, setup),
      cmocka_unit_test_setup(test_uncancel_decrements, setup),
      cmocka_unit_test_setup(test_cancel_before_first_step_body_never_runs,
                             setup),
      cmocka_unit_test_setup(test_cancelled_only_once_ended, setup),
      cmocka_unit_test_setup(test_cancel_at_end, setup),
      cmocka_unit_test_setup(test_cancel_propagates_to_awaited_task, setup),
      cmocka_unit_test_setup(test_await_cancelled_future, setup),
      cmocka_unit_test_setup(test_await_future_cancelled_while_waiting, setup),
      cmocka_unit_test_setup(test_await_future_value_and_failure, setup),
      cmocka_unit_test_setup(test_await_outside_task, setup),
      cmocka_unit_test_setup(test_await_self, setup),
      cmocka_unit_test_setup(test_task_failure_code, setup),
      /* wait_for and timeout scopes */
      cmocka_unit_test_setup(test_wait_for_result_in_time, setup),
      cmocka_unit_test_setup(test_wait_for_timeout_cancels_and_awaits_inner,
                             setup),
      cmocka_unit_test_setup(test_wait_for_inner_suppresses_returns_value,
                             setup),
      cmocka_unit_test_setup(test_wait_for_inner_cleanup_fails, setup),
      cmocka_unit_test_setup(test_wait_for_outer_cancelled, setup),
      cmocka_unit_test_setup(test_wait_for_gh86296_cancel_not_swallowed,
                             setup),
      cmocka_unit_test_setup(test_wait_for_timeout_and_outer_cancel, setup),
      cmocka_unit_test_setup(test_wait_for_zero_on_done, setup),
      cmocka_unit_test_setup(test_wait_for_zero_on_pending, setup),
      cmocka_unit_test_setup(test_wait_for_zero_not_started_never_runs, setup),
      cmocka_unit_test_setup(test_wait_for_plain_future_timeout, setup),
      cmocka_unit_test_setup(test_wait_for_nan, setup),
      cmocka_unit_test_setup(test_timeout_nested_inner_expires, setup),
      cmocka_unit_test_setup(test_timeout_nested_outer_expires, setup),
      /* pool futures */
      cmocka_unit_test_setup(test_await_future_value, setup),
      cmocka_unit_test_setup(test_await_future_failure, setup),
      cmocka_unit_test_setup(test_run_in_executor_value, setup),
      cmocka_unit_test_setup(test_run_in_executor_failure, setup),
      cmocka_unit_test_setup(test_run_in_executor_loop_executor, setup),
      cmocka_unit_test_setup(test_task_cancel_pool_job_queued, setup),
      cmocka_unit_test_setup(test_task_cancel_run_in_executor_queued, setup),
      cmocka_unit_test_setup(test_task_cancel_pool_job_running, setup),
      cmocka_unit_test_setup(test_cooperative_cancel_on_task_cancel, setup),
      cmocka_unit_test_setup(test_cooperative_cancel_on_timeout, setup),
      cmocka_unit_test_setup(test_loop_close_with_running_pool_job, setup),
      cmocka_unit_test_setup(test_wait_for_pool_wrapper_timeout, setup),
      cmocka_unit_test_setup(test_wait_for_pool_wrapper_in_time, setup),
      /* sleep, gather, shield */
      cmocka_unit_test_setup(test_sleep_zero_yields, setup),
      cmocka_unit_test_setup(test_sleep_not_before_deadline, setup),
      cmocka_unit_test_setup(test_gather_three_tasks_in_task, setup),
      cmocka_unit_test_setup(test_cancel_task_awaiting_gather_cancels_children,
                             setup),
      cmocka_unit_test_setup(test_shield_outer_cancelled_inner_completes,
                             setup),
      /* many tasks, close, stacks, arguments */
      cmocka_unit_test_setup(test_many_tasks_await_pool, setup),
      cmocka_unit_test_setup(test_loop_close_cancels_sleeping_tasks, setup),
      cmocka_unit_test_setup(test_task_create_while_closing, setup),
      cmocka_unit_test_setup(test_deep_recursion_on_task_stack, setup),
      cmocka_unit_test_setup(test_null_arguments, setup),
      cmocka_unit_test_setup(test_run_in_executor_refused_then_task_ends,
                             setup),
      cmocka_unit_test_setup(test_bug_wait_for_zero_outer_cancelled, setup),
      cmocka_unit_test_setup(test_bug_wait_for_self_zero, setup),
      cmocka_unit_test_setup(test_bug_await_with_pending_cancel_cancels_future,
                             setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
