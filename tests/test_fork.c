/*
 * fork(): a process with live pools (threads started, jobs done) and
 * bridges forks. In the child a new pool can be created and used; the
 * parent's pools answer submit, map, shutdown and destroy with CF_EFORKED
 * and its bridges answer dispatch, then, call_threadsafe and
 * run_in_executor with CF_EFORKED, without hanging (the per-program time
 * limit of make check catches a hang). The parent is unaffected: its pools
 * and bridges keep working after the fork and are destroyed cleanly.
 *
 * The child never calls cmocka: it checks with CHILD_* macros, which on a
 * failure print the line and the values to stderr and _exit() with
 * CHILD_FAILED; success is exit status 0. The parent waits with waitpid()
 * and asserts the status. The child never returns from the function that
 * forked, so no cmocka or library frame of the parent runs in it.
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

#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cfutures.h"
#include "helpers.h"

#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif

#ifdef TEST_TSAN
/* ThreadSanitizer cannot follow a thread started in the child of a
 * multi-threaded process: glibc gives the new thread the stack (and so the
 * pthread_t) of one of the parent's threads, which TSan still counts as
 * alive, and it aborts ("dup thread with used id"). So under TSan the
 * child does everything except start threads: every CF_EFORKED check
 * runs, a new pool is created and destroyed but not submitted to. These
 * flags keep TSan from killing such a child (die_after_fork) and from
 * reporting the parent's threads, absent there, as leaked; TSAN_OPTIONS
 * still overrides them. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) {
  return "die_after_fork=0:report_thread_leaks=0";
}
#define CHILD_CAN_START_THREADS 0
#else
#define CHILD_CAN_START_THREADS 1
#endif

/* The exit status of a child whose check failed (valgrind's error exit
 * code, 1, stays distinct from it). */
#define CHILD_FAILED 42

/* ------------------------------------------------------------------ */
/* Child-side checks: no cmocka                                       */
/* ------------------------------------------------------------------ */

static void child_fail(int line, const char *what, long got, long want) {
  fprintf(stderr,
          "fork child: test_fork.c:%d: %s: got %ld (%s), want %ld (%s)\n", line,
          what, got, got < 0 ? cf_err_name((int)got) : "-", want,
          want < 0 ? cf_err_name((int)want) : "-");
  fflush(stderr);
  _exit(CHILD_FAILED);
}

#define CHILD_EQ(expr, want)                                                   \
  do {                                                                         \
    long got_ = (long)(expr);                                                  \
    if (got_ != (long)(want))                                                  \
      child_fail(__LINE__, #expr, got_, (long)(want));                         \
  } while (0)

#define CHILD_TRUE(expr) CHILD_EQ(!!(expr), 1)

/* Fork; the child runs fn(arg) and exits 0 if fn returns. The parent
 * waits for it and asserts that it exited with status 0. */
static void run_child(void (*fn)(void *), void *arg) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fn(arg);
    _exit(0);
  }
  int status = 0;
  pid_t got;
  while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  assert_int_equal(got, pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------------ */
/* The parent's world: live pools and bridges                         */
/* ------------------------------------------------------------------ */

struct world {
  cf_executor_t *pool;   /* threads started, jobs done */
  cf_executor_t *idle;   /* created, never used: no thread */
  cf_bridge_t *bridge;   /* an fd bridge that delivered once */
  cf_bridge_t *wbridge;  /* a wake-up bridge that delivered once */
  cf_future_t *finished; /* a done standalone future */
  /* Every future the parent made, held until the world is destroyed. A
   * worker drops its own reference only after the result is published,
   * so at a fork it may still hold one; in the child that worker is gone,
   * and a future only it pointed to would be a (harmless, but reported)
   * leak under valgrind. Held here, it stays reachable. */
  cf_future_t *keep[64];
  int nkeep;
  atomic_int delivered; /* then callbacks run (parent) */
  atomic_int calls;     /* call_threadsafe functions run (parent) */
  atomic_int wakeups;
};

/* One world per test; the child finds it here too. */
static struct world W;

static void count_wakeup(void *data) {
  atomic_fetch_add((atomic_int *)data, 1);
}

static void count_then(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  atomic_fetch_add((atomic_int *)data, 1);
}

static void count_call(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static void keep(cf_future_t *f) {
  assert_true(W.nkeep < (int)(sizeof(W.keep) / sizeof(W.keep[0])));
  W.keep[W.nkeep++] = f;
}

static cf_executor_t *make_pool(int n) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = n;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  return ex;
}

/* Dispatch b until *counter reaches target, blocking in poll() on the
 * bridge's fd between dispatches (no sleeping). */
static void dispatch_until(cf_bridge_t *b, atomic_int *counter, int target) {
  while (atomic_load(counter) < target) {
    struct pollfd p = {.fd = cf_bridge_fd(b), .events = POLLIN};
    int n = poll(&p, 1, -1);
    assert_true(n >= 0 || errno == EINTR);
    assert_true(cf_bridge_dispatch(b) >= 0);
  }
}

/* Submit n echo jobs to ex and check their results. */
static void use_pool(cf_executor_t *ex, int n) {
  for (int i = 0; i < n; i++) {
    cf_future_t *f = NULL;
    assert_int_equal(cf_executor_submit(ex, echo_job, &W, NULL, &f), 0);
    void *value = NULL;
    assert_int_equal(wait_result(f, &value), 0);
    assert_ptr_equal(value, &W);
    keep(f);
  }
}

/* Deliver a pool future and a call through both bridges, in the parent. */
static void use_bridges(void) {
  int base = atomic_load(&W.delivered);
  int calls = atomic_load(&W.calls);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(W.pool, echo_job, &W, NULL, &f), 0);
  assert_int_equal(cf_bridge_then(W.bridge, f, count_then, &W.delivered, NULL),
                   0);
  assert_int_equal(cf_bridge_call_threadsafe(W.bridge, count_call, &W.calls),
                   0);
  dispatch_until(W.bridge, &W.delivered, base + 1);
  dispatch_until(W.bridge, &W.calls, calls + 1);
  assert_int_equal(wait_result(f, NULL), 0);
  keep(f);
  /* The wake-up bridge: f is done, so the delivery is queued at once. */
  assert_int_equal(
      cf_bridge_then(W.wbridge, W.finished, count_then, &W.delivered, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(W.wbridge, count_call, &W.calls),
                   0);
  assert_int_equal(cf_bridge_dispatch(W.wbridge), 2);
  assert_int_equal(atomic_load(&W.delivered), base + 2);
  assert_int_equal(atomic_load(&W.calls), calls + 2);
  assert_true(atomic_load(&W.wakeups) > 0);
}

static void world_create(void) {
  memset(&W, 0, sizeof(W));
  W.pool = make_pool(2);
  W.idle = make_pool(2);
  assert_int_equal(cf_bridge_create(&W.bridge), 0);
  assert_int_equal(
      cf_bridge_create_with_wakeup(&W.wbridge, count_wakeup, &W.wakeups, NULL),
      0);
  assert_int_equal(cf_future_create(&W.finished), 0);
  assert_int_equal(cf_future_set_result(W.finished, &W, NULL), 0);
  use_pool(W.pool, 4);
  assert_true(cf_executor_thread_count(W.pool) >= 1);
  assert_int_equal(cf_executor_thread_count(W.idle), 0);
  use_bridges();
}

/* After the fork, in the parent: everything still works, then goes. */
static void world_check_and_destroy(void) {
  use_pool(W.pool, 3);
  use_pool(W.idle, 1);
  use_bridges();
  assert_int_equal(cf_executor_shutdown(W.pool, true, false), 0);
  assert_int_equal(cf_executor_destroy(W.pool), 0);
  assert_int_equal(cf_executor_destroy(W.idle), 0);
  cf_bridge_destroy(W.bridge);
  cf_bridge_destroy(W.wbridge);
  cf_future_release(W.finished);
  for (int i = 0; i < W.nkeep; i++)
    cf_future_release(W.keep[i]);
}

/* ------------------------------------------------------------------ */
/* What the child does                                                */
/* ------------------------------------------------------------------ */

static atomic_int child_hits;

static void child_count_free(void *ptr) {
  (void)ptr;
  atomic_fetch_add(&child_hits, 1);
}

static int one_item(void *source, void **arg) {
  int *left = source;
  if (*left == 0)
    return 0;
  (*left)--;
  *arg = &W;
  return 1;
}

/* A new pool in the child: submit, result, map, shutdown, destroy. */
static void child_new_pool(void) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 2;
  cf_executor_t *ex = NULL;
  CHILD_EQ(cf_executor_create(&ex, &opts), 0);
  if (!CHILD_CAN_START_THREADS) {
    CHILD_EQ(cf_executor_thread_count(ex), 0);
    CHILD_EQ(cf_executor_destroy(ex), 0);
    return;
  }
  for (int i = 0; i < 3; i++) {
    cf_future_t *f = NULL;
    CHILD_EQ(cf_executor_submit(ex, echo_job, &W, NULL, &f), 0);
    void *value = NULL;
    CHILD_EQ(cf_future_result(f, CF_FOREVER, &value), 0);
    CHILD_TRUE(value == &W);
    cf_future_release(f);
  }
  CHILD_TRUE(cf_executor_thread_count(ex) >= 1);
  int left = 2;
  cf_map_t *m = NULL;
  CHILD_EQ(
      cf_executor_map(ex, echo_job, one_item, &left, NULL, CF_FOREVER, 0, &m),
      0);
  cf_future_t *f = NULL;
  CHILD_EQ(cf_map_next(m, &f), 0);
  CHILD_EQ(cf_map_next(m, &f), 0);
  CHILD_EQ(cf_map_next(m, &f), CF_EOF);
  cf_map_destroy(m);
  CHILD_EQ(cf_executor_shutdown(ex, true, false), 0);
  CHILD_EQ(cf_executor_destroy(ex), 0);
}

/* A new bridge in the child delivers a future of a new pool. */
static void child_new_bridge(void) {
  if (!CHILD_CAN_START_THREADS)
    return;
  cf_executor_t *ex = NULL;
  CHILD_EQ(cf_executor_create(&ex, NULL), 0);
  cf_bridge_t *b = NULL;
  CHILD_EQ(cf_bridge_create(&b), 0);
  atomic_int delivered = 0;
  CHILD_EQ(cf_bridge_run_in_executor(b, ex, echo_job, &W, NULL, count_then,
                                     &delivered, NULL),
           0);
  while (atomic_load(&delivered) == 0) {
    struct pollfd p = {.fd = cf_bridge_fd(b), .events = POLLIN};
    CHILD_TRUE(poll(&p, 1, -1) >= 0 || errno == EINTR);
    CHILD_TRUE(cf_bridge_dispatch(b) >= 0);
  }
  cf_bridge_destroy(b);
  CHILD_EQ(cf_executor_destroy(ex), 0);
}

/* The parent's pool ex refuses everything with CF_EFORKED, at once. */
static void child_parent_pool_refuses(cf_executor_t *ex) {
  int v;
  cf_future_t *out = (cf_future_t *)&v;
  atomic_store(&child_hits, 0);
  CHILD_EQ(cf_executor_submit(ex, echo_job, &v, child_count_free, &out),
           CF_EFORKED);
  CHILD_TRUE(out == (cf_future_t *)&v);  /* untouched */
  CHILD_EQ(atomic_load(&child_hits), 0); /* the caller keeps arg */
  CHILD_EQ(cf_executor_submit(ex, echo_job, &v, NULL, NULL), CF_EFORKED);
  int left = 1;
  cf_map_t *m = (cf_map_t *)&v;
  CHILD_EQ(cf_executor_map(ex, echo_job, one_item, &left, child_count_free,
                           CF_FOREVER, 0, &m),
           CF_EFORKED);
  CHILD_TRUE(m == (cf_map_t *)&v);
  CHILD_EQ(atomic_load(&child_hits), 1); /* the map's pulled argument */
  CHILD_EQ(cf_executor_shutdown(ex, false, false), CF_EFORKED);
  CHILD_EQ(cf_executor_shutdown(ex, false, true), CF_EFORKED);
  CHILD_EQ(cf_executor_shutdown(ex, true, false), CF_EFORKED);
  CHILD_EQ(cf_executor_shutdown(ex, true, true), CF_EFORKED);
  CHILD_EQ(cf_executor_destroy(ex), CF_EFORKED);
  CHILD_EQ(cf_executor_destroy(ex), CF_EFORKED); /* still there: again */
  CHILD_EQ(cf_executor_submit(ex, echo_job, &v, NULL, NULL), CF_EFORKED);
}

/* The parent's bridge b refuses with CF_EFORKED; its fd is left alone. */
static void child_parent_bridge_refuses(cf_bridge_t *b) {
  atomic_int n = 0;
  cf_then_t *t = (cf_then_t *)&n;
  CHILD_EQ(cf_bridge_dispatch(b), CF_EFORKED);
  CHILD_EQ(cf_bridge_then(b, W.finished, count_then, &n, &t), CF_EFORKED);
  CHILD_TRUE(t == (cf_then_t *)&n);
  CHILD_EQ(cf_bridge_call_threadsafe(b, count_call, &n), CF_EFORKED);
  /* With the parent's pool the submit refuses; with a new pool the
   * delivery does (the job may run: the pool owns arg). */
  CHILD_EQ(cf_bridge_run_in_executor(b, W.pool, echo_job, &W, NULL, count_then,
                                     &n, NULL),
           CF_EFORKED);
  if (CHILD_CAN_START_THREADS) {
    cf_executor_t *ex = NULL;
    CHILD_EQ(cf_executor_create(&ex, NULL), 0);
    CHILD_EQ(cf_bridge_run_in_executor(b, ex, echo_job, &W, NULL, count_then,
                                       &n, NULL),
             CF_EFORKED);
    CHILD_EQ(cf_executor_destroy(ex), 0);
  }
  CHILD_EQ(cf_bridge_prepare(b), CF_EFORKED);
  CHILD_EQ(cf_bridge_dispatch(b), CF_EFORKED);
  CHILD_EQ(atomic_load(&n), 0); /* nothing was delivered or called */
}

static void child_uses_new_pool(void *arg) {
  (void)arg;
  child_new_pool();
  child_new_bridge();
}

static void child_parent_pools_refuse(void *arg) {
  (void)arg;
  child_parent_pool_refuses(W.pool);
  child_parent_pool_refuses(W.idle);
  child_new_pool(); /* and a new one still works after that */
}

static void child_parent_bridges_refuse(void *arg) {
  (void)arg;
  child_parent_bridge_refuses(W.bridge);
  child_parent_bridge_refuses(W.wbridge);
}

static void child_thread_count(void *arg) {
  (void)arg;
  CHILD_EQ(cf_executor_thread_count(W.pool), CF_EFORKED);
  CHILD_EQ(cf_executor_thread_count(W.idle), CF_EFORKED);
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

/* The child can create a pool and a bridge and use them. */
static void test_fork_child_creates_and_uses_pool(void **state) {
  (void)state;
  world_create();
  run_child(child_uses_new_pool, NULL);
  world_check_and_destroy();
}

/* In the child, the parent's pools (one with threads, one without) answer
 * submit, map, shutdown and destroy with CF_EFORKED and do not hang. */
static void test_fork_child_parent_pool_eforked(void **state) {
  (void)state;
  world_create();
  run_child(child_parent_pools_refuse, NULL);
  world_check_and_destroy();
}

/* In the child, the parent's bridges (fd and wake-up) answer dispatch,
 * then, call_threadsafe and run_in_executor with CF_EFORKED. */
static void test_fork_child_parent_bridge_eforked(void **state) {
  (void)state;
  world_create();
  run_child(child_parent_bridges_refuse, NULL);
  world_check_and_destroy();
}

/* cf_executor_create: "in a child process, a pool of the parent answers
 * every call with CF_EFORKED": cf_executor_thread_count too. */
static void test_fork_child_parent_pool_thread_count(void **state) {
  (void)state;
  world_create();
  run_child(child_thread_count, NULL);
  world_check_and_destroy();
}

/* Fork while the parent's jobs run (both workers held at gates, one job
 * queued) and a delivery is outstanding on its bridge: the child is
 * refused at once and can use a pool of its own; in the parent the jobs
 * finish, the delivery arrives, everything is destroyed cleanly. */
static void child_while_busy(void *arg) {
  (void)arg;
  child_parent_pool_refuses(W.pool);
  child_parent_bridge_refuses(W.bridge);
  child_new_pool();
}

static void test_fork_while_jobs_run(void **state) {
  (void)state;
  world_create();
  gate_t g;
  gate_init(&g);
  cf_future_t *running[2] = {NULL, NULL}, *queued = NULL;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(
        cf_executor_submit(W.pool, gated_job, &g, NULL, &running[i]), 0);
    gate_wait_started(&g);
  }
  assert_int_equal(cf_executor_submit(W.pool, echo_job, &W, NULL, &queued), 0);
  int base = atomic_load(&W.delivered);
  assert_int_equal(
      cf_bridge_then(W.bridge, queued, count_then, &W.delivered, NULL), 0);

  run_child(child_while_busy, NULL);

  assert_int_equal(cf_future_running(running[0]), 1);
  assert_int_equal(cf_future_running(running[1]), 1);
  assert_int_equal(cf_future_done(queued), 0);
  gate_open(&g, 2);
  for (int i = 0; i < 2; i++) {
    void *value = NULL;
    assert_int_equal(wait_result(running[i], &value), 0);
    assert_ptr_equal(value, &g);
    cf_future_release(running[i]);
  }
  void *value = NULL;
  assert_int_equal(wait_result(queued, &value), 0);
  assert_ptr_equal(value, &W);
  dispatch_until(W.bridge, &W.delivered, base + 1);
  cf_future_release(queued);
  world_check_and_destroy();
  gate_fini(&g);
}

/* A done callback forks, on the worker thread that completed the job.
 * That is sensible: callbacks run with no library lock held, and the
 * child never returns into the library's frames (it _exit()s from the
 * callback). The child, a copy of a worker of W.pool, is refused by that
 * pool and can use a new one. */
static atomic_int cb_pid;
static sem_t cb_forked;

static void fork_in_callback(cf_future_t *f, void *data) {
  (void)f;
  (void)data;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    int v;
    CHILD_EQ(cf_executor_submit(W.pool, echo_job, &v, NULL, NULL), CF_EFORKED);
    CHILD_EQ(cf_executor_shutdown(W.pool, false, false), CF_EFORKED);
    CHILD_EQ(cf_executor_shutdown(W.pool, true, false), CF_EFORKED);
    CHILD_EQ(cf_bridge_dispatch(W.bridge), CF_EFORKED);
    child_new_pool();
    _exit(0);
  }
  atomic_store(&cb_pid, (int)pid);
  sem_post(&cb_forked);
}

static void test_fork_from_done_callback(void **state) {
  (void)state;
  world_create();
  sem_init(&cb_forked, 0, 0);
  atomic_store(&cb_pid, 0);
  gate_t g;
  gate_init(&g);
  cf_future_t *f = NULL;
  assert_int_equal(cf_executor_submit(W.pool, gated_job, &g, NULL, &f), 0);
  gate_wait_started(&g);
  /* Registered while the job runs: the worker runs it on completion. */
  assert_int_equal(cf_future_add_done_callback(f, fork_in_callback, NULL), 0);
  gate_open(&g, 1);
  while (sem_wait(&cb_forked) != 0) {
  }
  pid_t pid = (pid_t)atomic_load(&cb_pid);
  assert_true(pid > 0);
  int status = 0;
  pid_t got;
  while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  assert_int_equal(got, pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(wait_result(f, NULL), 0);
  cf_future_release(f);
  world_check_and_destroy();
  gate_fini(&g);
  sem_destroy(&cb_forked);
}

/* A pool created in a child belongs to that child: in a grandchild it is
 * refused in turn, and the grandchild can make its own. */
static void grandchild(void *arg) {
  cf_executor_t *child_pool = arg;
  child_parent_pool_refuses(child_pool);
  child_parent_pool_refuses(W.pool);
  child_new_pool();
}

static void child_forks_again(void *arg) {
  (void)arg;
  cf_executor_t *ex = NULL;
  CHILD_EQ(cf_executor_create(&ex, NULL), 0);
  cf_future_t *f = NULL;
  if (CHILD_CAN_START_THREADS) {
    CHILD_EQ(cf_executor_submit(ex, echo_job, &W, NULL, &f), 0);
    CHILD_EQ(cf_future_result(f, CF_FOREVER, NULL), 0);
    cf_future_release(f);
  }
  fflush(stderr);
  pid_t pid = fork();
  CHILD_TRUE(pid >= 0);
  if (pid == 0) {
    grandchild(ex);
    _exit(0);
  }
  int status = 0;
  pid_t got;
  while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  CHILD_EQ(got, pid);
  CHILD_TRUE(WIFEXITED(status));
  CHILD_EQ(WEXITSTATUS(status), 0);
  /* The child's own pool is still the child's. */
  if (CHILD_CAN_START_THREADS) {
    CHILD_EQ(cf_executor_submit(ex, echo_job, &W, NULL, &f), 0);
    CHILD_EQ(cf_future_result(f, CF_FOREVER, NULL), 0);
    cf_future_release(f);
  }
  CHILD_EQ(cf_executor_destroy(ex), 0);
}

static void test_fork_twice(void **state) {
  (void)state;
  world_create();
  run_child(child_forks_again, NULL);
  world_check_and_destroy();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fork_child_creates_and_uses_pool),
      cmocka_unit_test(test_fork_child_parent_pool_eforked),
      cmocka_unit_test(test_fork_child_parent_bridge_eforked),
      cmocka_unit_test(test_fork_while_jobs_run),
      cmocka_unit_test(test_fork_from_done_callback),
      cmocka_unit_test(test_fork_twice),
      /* Last: the library differs from the header here (see the test),
       * and with CMOCKA_TEST_ABORT=1 a failure ends the program. */
      cmocka_unit_test(test_fork_child_parent_pool_thread_count),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
