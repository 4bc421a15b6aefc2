/*
 * Tests of cf_loop and loop futures (include/cfutures/loop.h): callbacks,
 * timers, fd readers and writers, running and stopping, nesting in an outer
 * poll() loop, loop futures and the futures built from them (wrap, gather,
 * shield), and closing. Task cancellation semantics are in test_task.c.
 *
 * The test thread is the loop thread. Loop callbacks run on it, but they
 * still never assert: they record into the event log (or atomics) and the
 * test asserts after the step that ran them, usually one
 * cf_loop_run_once(loop, 0) at a time so that each iteration is checked on
 * its own. Pool jobs block on gates (helpers.h), never on sleeps. Timers
 * use short delays because timers are what is under test, but no test
 * asserts that anything was fast: only order, return codes and "not before
 * its time". Waits that must end are bounded by a generous hang guard.
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
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cfutures.h"
#include "cfutures/loop.h"
#include "helpers.h"

/* How long one blocking iteration may wait for something that must come
 * (a hang guard, never an assertion about speed). */
#define GUARD_S 10.0
/* The most iterations a test runs while waiting for a condition. */
#define MAX_TURNS 100000

/* ------------------------------------------------------------------ */
/* Local helpers                                                      */
/* ------------------------------------------------------------------ */

static pthread_t loop_thread;

/* The event log: callbacks append a tag; the test compares sequences. */
#define LOG_CAP 1024
static int ev_log[LOG_CAP];
static size_t ev_len;

static void log_tag(int tag) {
  if (ev_len < LOG_CAP)
    ev_log[ev_len++] = tag;
}

static int setup(void **state) {
  (void)state;
  loop_thread = pthread_self();
  atomic_store(&counter_hits, 0);
  ev_len = 0;
  return 0;
}

/* Assert the log holds exactly the n tags of want, then clear it; file
 * and line are the caller's, for the failure message. */
static void expect_log_at(const int *want, size_t n, const char *file,
                          int line) {
  if (ev_len != n) {
    print_error("log has %zu entries, expected %zu:", ev_len, n);
    for (size_t i = 0; i < ev_len; i++)
      print_error(" %d", ev_log[i]);
    print_error("\n");
  }
  _assert_int_equal(cast_to_largest_integral_type(ev_len),
                    cast_to_largest_integral_type(n), file, line);
  for (size_t i = 0; i < n; i++)
    _assert_int_equal(cast_to_largest_integral_type(ev_log[i]),
                      cast_to_largest_integral_type(want[i]), file, line);
  ev_len = 0;
}

#define EXPECT_LOG(...)                                                        \
  do {                                                                         \
    const int want_[] = {__VA_ARGS__};                                         \
    expect_log_at(want_, sizeof(want_) / sizeof(want_[0]), __FILE__,           \
                  __LINE__);                                                   \
  } while (0)
#define EXPECT_EMPTY_LOG() expect_log_at(NULL, 0, __FILE__, __LINE__)

/* A loop callback that logs its tag. */
static void rec(void *arg) { log_tag((int)(intptr_t)arg); }
#define TAG(n) ((void *)(intptr_t)(n))

static cf_loop_t *loop_new(void) {
  cf_loop_t *loop = NULL;
  assert_int_equal(cf_loop_create(&loop, NULL), 0);
  assert_non_null(loop);
  return loop;
}

static void loop_free(cf_loop_t *loop) {
  assert_int_equal(cf_loop_close(loop), 0);
}

/* One iteration that does not block. */
static void step(cf_loop_t *loop) {
  assert_int_equal(cf_loop_run_once(loop, 0), 0);
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static cf_executor_t *make_pool(int max_workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = max_workers;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  return ex;
}

static cf_lfuture_t *lf_new(cf_loop_t *loop) {
  cf_lfuture_t *f = NULL;
  assert_int_equal(cf_lfuture_create(loop, &f), 0);
  assert_non_null(f);
  return f;
}

static void stop_cb(void *arg) { cf_loop_stop(arg); }

/* A value with a destructor that counts (counter_hits) and frees. */
static void value_free(void *p) {
  free(p);
  atomic_fetch_add(&counter_hits, 1);
}

static int *new_value(int v) {
  int *p = malloc(sizeof(*p));
  assert_non_null(p);
  *p = v;
  return p;
}

/* A loop-future done callback that logs its tag and what it saw. */
typedef struct seen {
  int calls;
  int done;      /* cf_lfuture_done(f) inside the callback */
  int cancelled; /* cf_lfuture_cancelled(f) inside the callback */
  cf_lfuture_t *f;
  bool on_loop_thread;
} seen_t;

static void seen_cb(cf_lfuture_t *f, void *data) {
  seen_t *s = data;
  s->calls++;
  s->done = cf_lfuture_done(f);
  s->cancelled = cf_lfuture_cancelled(f);
  s->f = f;
  s->on_loop_thread = pthread_equal(pthread_self(), loop_thread);
}

static void tag_cb(cf_lfuture_t *f, void *data) {
  (void)f;
  log_tag((int)(intptr_t)data);
}

/* ------------------------------------------------------------------ */
/* Callbacks and timers                                               */
/* ------------------------------------------------------------------ */

static void test_call_soon_fifo(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  for (int i = 1; i <= 6; i++)
    assert_int_equal(cf_loop_call_soon(loop, rec, TAG(i), NULL), 0);
  EXPECT_EMPTY_LOG(); /* nothing runs inside call_soon */
  step(loop);
  EXPECT_LOG(1, 2, 3, 4, 5, 6);
  step(loop);
  EXPECT_EMPTY_LOG(); /* each ran once */
  loop_free(loop);
}

/* A callback that schedules tag+1 (and logs tag) until tag reaches 4. */
typedef struct chain {
  cf_loop_t *loop;
  int tag;
  int errors;
} chain_t;

static void chain_cb(void *arg) {
  chain_t *c = arg;
  log_tag(c->tag);
  if (++c->tag <= 4 && cf_loop_call_soon(c->loop, chain_cb, c, NULL) != 0)
    c->errors++;
}

static void test_call_soon_from_callback_next_iteration(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  chain_t c = {.loop = loop, .tag = 1};
  assert_int_equal(cf_loop_call_soon(loop, chain_cb, &c, NULL), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(100), NULL), 0);
  /* What a callback schedules waits for the next iteration, even behind
   * a callback that was already queued. */
  step(loop);
  EXPECT_LOG(1, 100);
  step(loop);
  EXPECT_LOG(2);
  step(loop);
  EXPECT_LOG(3);
  step(loop);
  EXPECT_LOG(4);
  step(loop);
  EXPECT_EMPTY_LOG();
  assert_int_equal(c.errors, 0);
  loop_free(loop);
}

typedef struct tprobe {
  cf_loop_t *loop;
  double when;   /* the loop time it was scheduled for */
  double ran_at; /* cf_loop_time inside the callback */
  double mono_at;
  int tag;
  int runs;
} tprobe_t;

static void tprobe_cb(void *arg) {
  tprobe_t *p = arg;
  p->ran_at = cf_loop_time(p->loop);
  p->mono_at = mono_now();
  p->runs++;
  log_tag(p->tag);
}

static void test_timers_order_by_due_time(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  /* call_at: by due time, ties in scheduling order. */
  static const double offs[] = {0.03, 0.01, 0.02, 0.01, 0.02, 0.0, 0.03};
  enum { N = sizeof(offs) / sizeof(offs[0]) };
  tprobe_t p[N];
  double base = cf_loop_time(loop) + 0.01;
  for (int i = 0; i < N; i++) {
    p[i] = (tprobe_t){.loop = loop, .when = base + offs[i], .tag = i};
    assert_int_equal(cf_loop_call_at(loop, p[i].when, tprobe_cb, &p[i], NULL),
                     0);
  }
  assert_int_equal(cf_loop_call_at(loop, base + 0.04, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  EXPECT_LOG(5, 1, 3, 2, 4, 0, 6);
  for (int i = 0; i < N; i++) {
    assert_int_equal(p[i].runs, 1);
    assert_true(p[i].ran_at >= p[i].when); /* never early */
  }

  /* call_later: equal delays keep their scheduling order (each due time
   * is at least the previous one; ties go by scheduling order). */
  tprobe_t q[4];
  for (int i = 0; i < 4; i++) {
    q[i] = (tprobe_t){.loop = loop, .tag = 10 + i};
    q[i].when = cf_loop_time(loop) + 0.01;
    assert_int_equal(cf_loop_call_later(loop, 0.01, tprobe_cb, &q[i], NULL), 0);
  }
  assert_int_equal(cf_loop_call_later(loop, 0.02, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  EXPECT_LOG(10, 11, 12, 13);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(q[i].runs, 1);
    assert_true(q[i].ran_at >= q[i].when);
  }
  loop_free(loop);
}

static void test_timer_never_early(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  /* cf_loop_time is CLOCK_MONOTONIC in seconds. */
  double m0 = mono_now();
  double lt = cf_loop_time(loop);
  double m1 = mono_now();
  assert_true(m0 <= lt && lt <= m1);

  /* A far timer does not fire in any number of non-blocking steps. */
  cf_handle_t *far = NULL;
  tprobe_t pf = {.loop = loop, .tag = 99};
  assert_int_equal(cf_loop_call_later(loop, 3600, tprobe_cb, &pf, &far), 0);
  for (int i = 0; i < 5; i++)
    step(loop);
  assert_int_equal(pf.runs, 0);
  double t = cf_loop_timeout(loop);
  assert_true(t > 0 && t <= 3600);

  /* A near timer, run with blocking iterations, fires not before its
   * time, whether measured by the loop or by CLOCK_MONOTONIC. */
  tprobe_t p = {.loop = loop, .tag = 1};
  double start = mono_now();
  p.when = cf_loop_time(loop) + 0.02;
  assert_int_equal(cf_loop_call_later(loop, 0.02, tprobe_cb, &p, NULL), 0);
  int turns = 0;
  while (p.runs == 0) {
    assert_true(turns++ < MAX_TURNS);
    assert_int_equal(cf_loop_run_once(loop, GUARD_S), 0);
  }
  assert_int_equal(p.runs, 1);
  assert_true(p.ran_at >= p.when);
  assert_true(p.mono_at >= start + 0.02);
  EXPECT_LOG(1);

  assert_int_equal(cf_handle_cancel(far), 1);
  assert_int_equal(pf.runs, 0);
  loop_free(loop);
}

typedef struct canceller {
  cf_handle_t *target;
  cf_handle_t *self;
  int rc_target;
  int rc_self;
} canceller_t;

static void cancel_other_cb(void *arg) {
  canceller_t *c = arg;
  c->rc_target = cf_handle_cancel(c->target);
  c->rc_self = cf_handle_cancel(c->self); /* running: not cancellable */
  log_tag(50);
}

static void test_handle_cancel(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();

  /* A call_soon callback cancelled before its turn never runs. The handle
   * is still valid right after the cancel (the loop has not reached it),
   * and a second cancel returns 0. */
  cf_handle_t *h1 = NULL, *h2 = NULL;
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(1), &h1), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(2), &h2), 0);
  assert_non_null(h1);
  assert_non_null(h2);
  assert_int_equal(cf_handle_cancel(h1), 1);
  assert_int_equal(cf_handle_cancel(h1), 0);
  step(loop);
  EXPECT_LOG(2);
  step(loop);
  EXPECT_EMPTY_LOG();

  /* A callback cancels one scheduled after it in the same iteration: that
   * one never runs; cancelling its own handle while it runs returns 0
   * (it has already been taken to run). */
  canceller_t c = {0};
  cf_handle_t *hb = NULL;
  assert_int_equal(cf_loop_call_soon(loop, cancel_other_cb, &c, &c.self), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(3), &hb), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(4), NULL), 0);
  c.target = hb;
  step(loop);
  EXPECT_LOG(50, 4);
  assert_int_equal(c.rc_target, 1);
  assert_int_equal(c.rc_self, 0);

  /* A cancelled timer never fires, the others do, in order. */
  cf_handle_t *ht = NULL;
  assert_int_equal(cf_loop_call_later(loop, 0.01, rec, TAG(5), &ht), 0);
  assert_int_equal(cf_loop_call_later(loop, 0.01, rec, TAG(6), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 0.02, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_handle_cancel(ht), 1);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  EXPECT_LOG(6);

  /* A timer cancelling itself while it runs: 0. */
  canceller_t d = {0};
  cf_handle_t *hx = NULL;
  assert_int_equal(cf_loop_call_later(loop, 0, rec, TAG(7), &hx), 0);
  d.target = hx; /* fires in the same iteration, after d */
  assert_int_equal(cf_loop_call_at(loop, cf_loop_time(loop) - 1,
                                   cancel_other_cb, &d, &d.self),
                   0);
  /* d was scheduled after hx with an earlier due time: it runs first. */
  step(loop);
  EXPECT_LOG(50);
  assert_int_equal(d.rc_target, 1);
  assert_int_equal(d.rc_self, 0);
  step(loop);
  EXPECT_EMPTY_LOG();
  loop_free(loop);
}

static void test_nan_and_negative_delay(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_handle_t *h = (cf_handle_t *)&h; /* must stay untouched */
  assert_int_equal(cf_loop_call_later(loop, NAN, rec, TAG(1), &h), CF_EINVAL);
  assert_int_equal(cf_loop_call_at(loop, NAN, rec, TAG(2), &h), CF_EINVAL);
  assert_ptr_equal(h, (cf_handle_t *)&h);
  step(loop);
  EXPECT_EMPTY_LOG();
  assert_true(isinf(cf_loop_timeout(loop))); /* nothing was scheduled */

  /* <= 0 runs in the next iteration, after the call_soon callbacks that
   * are ready then (asyncio: due timers join the ready queue's tail). */
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(3), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, -5, rec, TAG(4), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 0, rec, TAG(5), NULL), 0);
  assert_int_equal(
      cf_loop_call_at(loop, cf_loop_time(loop) - 100, rec, TAG(6), NULL), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(7), NULL), 0);
  assert_true(cf_loop_timeout(loop) == 0.0);
  step(loop);
  /* call_at(now - 100) is due first, then -5 and 0 in scheduling order. */
  EXPECT_LOG(3, 7, 6, 4, 5);
  step(loop);
  EXPECT_EMPTY_LOG();
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Readers and writers                                                */
/* ------------------------------------------------------------------ */

typedef struct fdprobe {
  cf_loop_t *loop;
  int fd;
  int reads;  /* reader calls */
  int writes; /* writer calls */
  int bytes;  /* bytes the reader drained */
  int tag;
  bool remove_self;       /* remove the watch from inside the callback */
  bool remove_writer_too; /* reader: also remove this fd's writer */
  int remove_rc;
  int remove_writer_rc;
  bool on_loop_thread;
} fdprobe_t;

static void reader_cb(void *arg) {
  fdprobe_t *p = arg;
  p->reads++;
  p->on_loop_thread = pthread_equal(pthread_self(), loop_thread);
  log_tag(p->tag);
  if (p->remove_self) {
    p->remove_rc = cf_loop_remove_reader(p->loop, p->fd);
    if (p->remove_writer_too)
      p->remove_writer_rc = cf_loop_remove_writer(p->loop, p->fd);
    return; /* leave the data unread: it must not matter any more */
  }
  char buf[64];
  ssize_t n = read(p->fd, buf, sizeof(buf));
  if (n > 0)
    p->bytes += (int)n;
}

static void writer_cb(void *arg) {
  fdprobe_t *p = arg;
  p->writes++;
  p->on_loop_thread = pthread_equal(pthread_self(), loop_thread);
  log_tag(p->tag);
  if (p->remove_self)
    p->remove_rc = cf_loop_remove_writer(p->loop, p->fd);
}

static void make_pipe(int fds[2]) {
  assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static void test_reader_runs_when_data_arrives(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int fds[2];
  make_pipe(fds);
  fdprobe_t p = {.loop = loop, .fd = fds[0], .tag = 1};
  assert_int_equal(cf_loop_add_reader(loop, fds[0], reader_cb, &p), 0);
  step(loop);
  assert_int_equal(p.reads, 0); /* nothing to read yet */

  assert_int_equal(write(fds[1], "abc", 3), 3);
  step(loop);
  assert_int_equal(p.reads, 1);
  assert_int_equal(p.bytes, 3);
  assert_true(p.on_loop_thread);
  step(loop);
  assert_int_equal(p.reads, 1); /* drained: not readable any more */

  /* A blocking iteration wakes for the data too. */
  assert_int_equal(write(fds[1], "de", 2), 2);
  assert_int_equal(cf_loop_run_once(loop, GUARD_S), 0);
  assert_int_equal(p.reads, 2);
  assert_int_equal(p.bytes, 5);

  assert_int_equal(cf_loop_remove_reader(loop, fds[0]), 1);
  assert_int_equal(cf_loop_remove_reader(loop, fds[0]), 0);
  assert_int_equal(write(fds[1], "f", 1), 1);
  step(loop);
  assert_int_equal(p.reads, 2); /* removed: never called again */
  /* An fd that was never watched, and one past anything the loop saw. */
  assert_int_equal(cf_loop_remove_reader(loop, fds[1]), 0);
  assert_int_equal(cf_loop_remove_writer(loop, 100000), 0);
  ev_len = 0;
  loop_free(loop);
  close(fds[0]);
  close(fds[1]);
}

static void test_writer_runs_when_writable(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  fdprobe_t w = {.loop = loop, .fd = sv[0], .tag = 2};
  assert_int_equal(cf_loop_add_writer(loop, sv[0], writer_cb, &w), 0);
  step(loop);
  assert_int_equal(w.writes, 1); /* an empty socket is writable */
  assert_true(w.on_loop_thread);
  step(loop);
  assert_int_equal(w.writes, 2); /* level-triggered: still writable */

  /* Reader and writer on the same fd are independent. */
  fdprobe_t r = {.loop = loop, .fd = sv[0], .tag = 1};
  assert_int_equal(cf_loop_add_reader(loop, sv[0], reader_cb, &r), 0);
  step(loop);
  assert_int_equal(r.reads, 0);
  assert_int_equal(w.writes, 3);
  assert_int_equal(write(sv[1], "x", 1), 1);
  step(loop);
  assert_int_equal(r.reads, 1);
  assert_int_equal(w.writes, 4);
  assert_int_equal(cf_loop_remove_writer(loop, sv[0]), 1);
  assert_int_equal(cf_loop_remove_writer(loop, sv[0]), 0);
  step(loop);
  assert_int_equal(w.writes, 4);
  assert_int_equal(write(sv[1], "y", 1), 1);
  step(loop);
  assert_int_equal(r.reads, 2); /* the reader still works */
  assert_int_equal(cf_loop_remove_reader(loop, sv[0]), 1);
  ev_len = 0;
  loop_free(loop);
  close(sv[0]);
  close(sv[1]);
}

static void test_replace_reader_and_writer(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  fdprobe_t a = {.loop = loop, .fd = sv[0], .tag = 1};
  fdprobe_t b = {.loop = loop, .fd = sv[0], .tag = 2};
  assert_int_equal(cf_loop_add_reader(loop, sv[0], reader_cb, &a), 0);
  assert_int_equal(cf_loop_add_reader(loop, sv[0], reader_cb, &b), 0);
  assert_int_equal(write(sv[1], "x", 1), 1);
  step(loop);
  assert_int_equal(a.reads, 0);
  assert_int_equal(b.reads, 1);
  EXPECT_LOG(2);

  fdprobe_t c = {.loop = loop, .fd = sv[0], .tag = 3};
  fdprobe_t d = {.loop = loop, .fd = sv[0], .tag = 4};
  assert_int_equal(cf_loop_add_writer(loop, sv[0], writer_cb, &c), 0);
  assert_int_equal(cf_loop_add_writer(loop, sv[0], writer_cb, &d), 0);
  step(loop);
  assert_int_equal(c.writes, 0);
  assert_int_equal(d.writes, 1);
  EXPECT_LOG(4);
  /* One remove takes the replacement: nothing is left behind. */
  assert_int_equal(cf_loop_remove_reader(loop, sv[0]), 1);
  assert_int_equal(cf_loop_remove_reader(loop, sv[0]), 0);
  assert_int_equal(cf_loop_remove_writer(loop, sv[0]), 1);
  assert_int_equal(cf_loop_remove_writer(loop, sv[0]), 0);
  assert_int_equal(write(sv[1], "y", 1), 1);
  step(loop);
  EXPECT_EMPTY_LOG();
  loop_free(loop);
  close(sv[0]);
  close(sv[1]);
}

static void test_remove_inside_own_callback(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

  /* A writer removes itself: called once. */
  fdprobe_t w = {.loop = loop, .fd = sv[1], .tag = 1, .remove_self = true};
  assert_int_equal(cf_loop_add_writer(loop, sv[1], writer_cb, &w), 0);
  step(loop);
  step(loop);
  assert_int_equal(w.writes, 1);
  assert_int_equal(w.remove_rc, 1);
  assert_int_equal(cf_loop_remove_writer(loop, sv[1]), 0);

  /* A reader removes itself and the writer of its fd, both ready in the
   * same iteration: the reader runs once, the writer never; the unread
   * data does not call the reader again. */
  fdprobe_t r = {.loop = loop,
                 .fd = sv[0],
                 .tag = 2,
                 .remove_self = true,
                 .remove_writer_too = true};
  fdprobe_t w2 = {.loop = loop, .fd = sv[0], .tag = 3};
  assert_int_equal(cf_loop_add_reader(loop, sv[0], reader_cb, &r), 0);
  assert_int_equal(cf_loop_add_writer(loop, sv[0], writer_cb, &w2), 0);
  assert_int_equal(write(sv[1], "x", 1), 1);
  step(loop);
  step(loop);
  assert_int_equal(r.reads, 1);
  assert_int_equal(r.remove_rc, 1);
  assert_int_equal(r.remove_writer_rc, 1);
  assert_int_equal(w2.writes, 0);
  EXPECT_LOG(1, 2);
  assert_int_equal(cf_loop_remove_reader(loop, sv[0]), 0);
  assert_int_equal(cf_loop_remove_writer(loop, sv[0]), 0);

  /* Watching again after removal works. */
  fdprobe_t r2 = {.loop = loop, .fd = sv[0], .tag = 4};
  assert_int_equal(cf_loop_add_reader(loop, sv[0], reader_cb, &r2), 0);
  step(loop);
  assert_int_equal(r2.reads, 1);
  assert_int_equal(r2.bytes, 1);
  assert_int_equal(cf_loop_remove_reader(loop, sv[0]), 1);
  ev_len = 0;
  loop_free(loop);
  close(sv[0]);
  close(sv[1]);
}

static void test_fd_that_cannot_be_watched(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  /* A regular file: epoll refuses it (CF_ESYSTEM, and nothing is left
   * registered); the poll(2) back end accepts it as always ready. */
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  int fd = fileno(tmp);
  fdprobe_t p = {.loop = loop, .fd = fd, .tag = 1};
  int rc = cf_loop_add_reader(loop, fd, reader_cb, &p);
  assert_true(rc == CF_ESYSTEM || rc == 0);
  if (rc == CF_ESYSTEM) {
    assert_int_equal(cf_loop_add_writer(loop, fd, writer_cb, &p), CF_ESYSTEM);
    assert_int_equal(cf_loop_remove_reader(loop, fd), 0);
    assert_int_equal(cf_loop_remove_writer(loop, fd), 0);
    step(loop);
    EXPECT_EMPTY_LOG();
  } else {
    step(loop);
    EXPECT_LOG(1);
    assert_int_equal(cf_loop_remove_reader(loop, fd), 1);
  }
  assert_int_equal(cf_loop_add_reader(loop, -1, reader_cb, &p), CF_EINVAL);
  assert_int_equal(cf_loop_add_writer(loop, -1, writer_cb, &p), CF_EINVAL);
  fclose(tmp);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Running and stopping                                               */
/* ------------------------------------------------------------------ */

typedef struct stopper {
  cf_loop_t *loop;
  int left;
} stopper_t;

/* Reschedule itself until left reaches 0, then stop the loop and queue
 * tag 200 (for the next iteration, which must not run in this run). */
static void countdown_cb(void *arg) {
  stopper_t *s = arg;
  log_tag(s->left);
  if (--s->left > 0) {
    if (cf_loop_call_soon(s->loop, countdown_cb, s, NULL) != 0)
      log_tag(-1);
    return;
  }
  cf_loop_stop(s->loop);
  if (cf_loop_call_soon(s->loop, rec, TAG(200), NULL) != 0)
    log_tag(-1);
}

static void test_run_forever_and_stop(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  stopper_t s = {.loop = loop, .left = 3};
  assert_int_equal(cf_loop_call_soon(loop, countdown_cb, &s, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  /* The iteration that called stop completed; its successor did not run. */
  EXPECT_LOG(3, 2, 1);

  /* Stop from a callback with another callback ready in the same
   * iteration: that one still runs before run_forever returns. */
  assert_int_equal(cf_loop_call_soon(loop, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(7), NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  EXPECT_LOG(200, 7); /* 200 was left over from the first run */

  /* A second run picks up where the first stopped, and stopping does not
   * stick: run_forever runs until the next stop. */
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(8), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 0.01, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  EXPECT_LOG(8);
  loop_free(loop);
}

/* asyncio: "If stop() is called before run_forever() is called, the loop
 * will poll the I/O selector once with a timeout of zero, run all callbacks
 * scheduled [...] and then exit." */
static void test_stop_before_run_forever(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  assert_int_equal(cf_loop_stop(loop), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(9), NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  EXPECT_LOG(9);
  loop_free(loop);
}

typedef struct completer {
  cf_lfuture_t *f;
  int how; /* 0: value, 1: failure, 2: cancel */
  void *value;
  int rc;
} completer_t;

static void complete_cb(void *arg) {
  completer_t *c = arg;
  switch (c->how) {
  case 0:
    c->rc = cf_lfuture_set_result(c->f, c->value, value_free);
    break;
  case 1:
    c->rc = cf_lfuture_set_exception(c->f, 42, "timer failed");
    break;
  default:
    c->rc = cf_lfuture_cancel(c->f);
    break;
  }
}

static void test_run_until_complete(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();

  /* A value, set by a timer callback. */
  cf_lfuture_t *f = lf_new(loop);
  int *v = new_value(5);
  completer_t c = {.f = f, .how = 0, .value = v, .rc = -100};
  assert_int_equal(cf_loop_call_later(loop, 0.01, complete_cb, &c, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, f), 0);
  assert_int_equal(c.rc, 0);
  assert_true(cf_lfuture_done(f));
  void *out = NULL;
  assert_int_equal(cf_lfuture_result(f, &out), 0);
  assert_ptr_equal(out, v);
  /* Done already: returns the outcome at once. */
  assert_int_equal(cf_loop_run_until_complete(loop, f), 0);
  cf_lfuture_release(f);
  assert_int_equal(atomic_load(&counter_hits), 1);

  /* A failure. */
  f = lf_new(loop);
  c = (completer_t){.f = f, .how = 1, .rc = -100};
  assert_int_equal(cf_loop_call_later(loop, 0.01, complete_cb, &c, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, f), CF_EFAILED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_lfuture_exception(f, &code, &msg), 0);
  assert_int_equal(code, 42);
  assert_string_equal(msg, "timer failed");
  cf_lfuture_release(f);

  /* A cancellation. */
  f = lf_new(loop);
  c = (completer_t){.f = f, .how = 2, .rc = -100};
  assert_int_equal(cf_loop_call_soon(loop, complete_cb, &c, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, f), CF_ECANCELLED);
  assert_int_equal(c.rc, 1);
  cf_lfuture_release(f);

  /* The loop is usable afterwards and was not left stopping. */
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(1), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 0.01, stop_cb, loop, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  EXPECT_LOG(1);
  loop_free(loop);
}

static void test_run_until_complete_other_loop(void **state) {
  (void)state;
  cf_loop_t *a = loop_new();
  cf_loop_t *b = loop_new();
  cf_lfuture_t *f = lf_new(b);
  assert_int_equal(cf_loop_run_until_complete(a, f), CF_EINVALID_STATE);
  assert_false(cf_lfuture_done(f));
  /* Nothing was registered on f by the refused call. */
  assert_int_equal(cf_lfuture_set_result(f, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(b, f), 0);
  assert_int_equal(cf_loop_run_until_complete(a, f), CF_EINVALID_STATE);
  cf_lfuture_release(f);
  loop_free(a);
  loop_free(b);
}

typedef struct reentry {
  cf_loop_t *loop;
  cf_lfuture_t *f;
  int run_forever, run_until, run_once, close, calls;
} reentry_t;

static void reenter_cb(void *arg) {
  reentry_t *r = arg;
  r->run_forever = cf_loop_run_forever(r->loop);
  r->run_until = cf_loop_run_until_complete(r->loop, r->f);
  r->run_once = cf_loop_run_once(r->loop, 0);
  r->close = cf_loop_close(r->loop);
  r->calls++;
  cf_loop_stop(r->loop);
}

static int reenter_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  reenter_cb(arg);
  return 0;
}

static void test_reentrant_run_refused(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = lf_new(loop);
  reentry_t r = {.loop = loop, .f = f};
  assert_int_equal(cf_loop_call_soon(loop, reenter_cb, &r, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.run_forever, CF_EINVALID_STATE);
  assert_int_equal(r.run_until, CF_EINVALID_STATE);
  assert_int_equal(r.run_once, CF_EINVALID_STATE);
  assert_int_equal(r.close, CF_EINVALID_STATE);
  assert_false(cf_lfuture_done(f)); /* the refused run left f alone */

  /* The same from a task. */
  reentry_t t = {.loop = loop, .f = f};
  cf_lfuture_t *task = NULL;
  assert_int_equal(cf_task_create(loop, reenter_body, &t, &task), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, task), 0);
  assert_int_equal(t.calls, 1);
  assert_int_equal(t.run_forever, CF_EINVALID_STATE);
  assert_int_equal(t.run_until, CF_EINVALID_STATE);
  assert_int_equal(t.run_once, CF_EINVALID_STATE);
  assert_int_equal(t.close, CF_EINVALID_STATE);
  cf_lfuture_release(task);
  /* The loop still runs normally (the task's stop() is consumed or
   * harmless). */
  assert_int_equal(cf_lfuture_set_result(f, NULL, NULL), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, f), 0);
  cf_lfuture_release(f);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* call_soon_threadsafe                                               */
/* ------------------------------------------------------------------ */

#define TS_THREADS 4
#define TS_CALLS 250

typedef struct ts_item {
  atomic_int hits;
} ts_item_t;

static ts_item_t ts_items[TS_THREADS * TS_CALLS];
static atomic_int ts_total;
static atomic_int ts_wrong_thread;
static atomic_int ts_errors;

typedef struct ts_thread {
  cf_loop_t *loop;
  int index;
} ts_thread_t;

static void ts_cb(void *arg) {
  ts_item_t *it = arg;
  atomic_fetch_add(&it->hits, 1);
  if (!pthread_equal(pthread_self(), loop_thread))
    atomic_fetch_add(&ts_wrong_thread, 1);
  atomic_fetch_add(&ts_total, 1);
}

static void *ts_main(void *arg) {
  ts_thread_t *t = arg;
  for (int i = 0; i < TS_CALLS; i++)
    if (cf_loop_call_soon_threadsafe(t->loop, ts_cb,
                                     &ts_items[t->index * TS_CALLS + i]) != 0)
      atomic_fetch_add(&ts_errors, 1);
  return NULL;
}

static void test_call_soon_threadsafe_many_threads(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  for (int i = 0; i < TS_THREADS * TS_CALLS; i++)
    atomic_store(&ts_items[i].hits, 0);
  atomic_store(&ts_total, 0);
  atomic_store(&ts_wrong_thread, 0);
  atomic_store(&ts_errors, 0);

  /* From the loop thread itself, before running. */
  ts_item_t mine = {0};
  assert_int_equal(cf_loop_call_soon_threadsafe(loop, ts_cb, &mine), 0);
  assert_int_equal(atomic_load(&mine.hits), 0); /* not synchronous */

  pthread_t th[TS_THREADS];
  ts_thread_t args[TS_THREADS];
  for (int i = 0; i < TS_THREADS; i++) {
    args[i] = (ts_thread_t){.loop = loop, .index = i};
    assert_int_equal(pthread_create(&th[i], NULL, ts_main, &args[i]), 0);
  }
  const int total = TS_THREADS * TS_CALLS + 1;
  int turns = 0;
  while (atomic_load(&ts_total) < total && atomic_load(&ts_errors) == 0) {
    assert_true(turns++ < MAX_TURNS);
    assert_int_equal(cf_loop_run_once(loop, GUARD_S), 0);
  }
  for (int i = 0; i < TS_THREADS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  step(loop);
  step(loop);
  assert_int_equal(atomic_load(&ts_errors), 0);
  assert_int_equal(atomic_load(&ts_total), total);
  assert_int_equal(atomic_load(&ts_wrong_thread), 0);
  assert_int_equal(atomic_load(&mine.hits), 1);
  for (int i = 0; i < TS_THREADS * TS_CALLS; i++)
    assert_int_equal(atomic_load(&ts_items[i].hits), 1);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Nesting in an outer poll() loop                                    */
/* ------------------------------------------------------------------ */

typedef struct nest {
  cf_loop_t *loop;
  cf_lfuture_t *by_thread, *by_timer, *by_reader;
  int pipe_w;
  int pipe_r;
  atomic_int thread_rc;
  int errors;
} nest_t;

static void nest_complete_thread(void *arg) {
  nest_t *n = arg;
  if (cf_lfuture_set_result(n->by_thread, TAG(1), NULL) != 0)
    n->errors++;
}

static void nest_complete_timer(void *arg) {
  nest_t *n = arg;
  if (cf_lfuture_set_result(n->by_timer, TAG(2), NULL) != 0)
    n->errors++;
}

static void nest_reader(void *arg) {
  nest_t *n = arg;
  char c;
  if (read(n->pipe_r, &c, 1) != 1 ||
      cf_lfuture_set_result(n->by_reader, TAG(3), NULL) != 0)
    n->errors++;
  if (cf_loop_remove_reader(n->loop, n->pipe_r) != 1)
    n->errors++;
}

/* The pipe is written first: with the poll(2) back end cf_loop_fd() is only
 * the bridge's fd, so the threadsafe call is what wakes the outer loop, and
 * the iteration it triggers then finds the pipe readable as well. */
static void *nest_thread(void *arg) {
  nest_t *n = arg;
  int rc = write(n->pipe_w, "x", 1) == 1 ? 0 : -1000;
  if (rc == 0)
    rc = cf_loop_call_soon_threadsafe(n->loop, nest_complete_thread, n);
  atomic_store(&n->thread_rc, rc);
  return NULL;
}

static void test_nested_in_outer_poll(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int fd = cf_loop_fd(loop);
  assert_true(fd >= 0);
  /* Nothing to do: no deadline. */
  assert_true(isinf(cf_loop_timeout(loop)));
  assert_true(cf_loop_timeout(loop) > 0);

  int fds[2];
  make_pipe(fds);
  nest_t n = {.loop = loop, .pipe_r = fds[0], .pipe_w = fds[1]};
  atomic_init(&n.thread_rc, -1);
  n.by_thread = lf_new(loop);
  n.by_timer = lf_new(loop);
  n.by_reader = lf_new(loop);
  assert_int_equal(cf_loop_add_reader(loop, fds[0], nest_reader, &n), 0);
  assert_int_equal(
      cf_loop_call_later(loop, 0.02, nest_complete_timer, &n, NULL), 0);
  double t = cf_loop_timeout(loop);
  assert_true(t > 0 && t <= 0.02);
  /* Ready callbacks: run now. */
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(9), NULL), 0);
  assert_true(cf_loop_timeout(loop) == 0.0);

  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, nest_thread, &n), 0);
  int turns = 0;
  while (!(cf_lfuture_done(n.by_thread) && cf_lfuture_done(n.by_timer) &&
           cf_lfuture_done(n.by_reader))) {
    assert_true(turns++ < MAX_TURNS);
    double to = cf_loop_timeout(loop);
    int ms = isinf(to) || to > GUARD_S ? (int)(GUARD_S * 1000)
                                       : (int)ceil(to * 1000.0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int pr;
    do
      pr = poll(&p, 1, ms);
    while (pr < 0 && errno == EINTR);
    assert_true(pr >= 0);
    /* Timed out with no deadline: a lost wake-up. */
    assert_false(pr == 0 && isinf(to));
    assert_int_equal(cf_loop_run_once(loop, 0), 0);
  }
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(atomic_load(&n.thread_rc), 0);
  assert_int_equal(n.errors, 0);
  void *v = NULL;
  assert_int_equal(cf_lfuture_result(n.by_thread, &v), 0);
  assert_ptr_equal(v, TAG(1));
  assert_int_equal(cf_lfuture_result(n.by_timer, &v), 0);
  assert_ptr_equal(v, TAG(2));
  assert_int_equal(cf_lfuture_result(n.by_reader, &v), 0);
  assert_ptr_equal(v, TAG(3));
  EXPECT_LOG(9);
  cf_lfuture_release(n.by_thread);
  cf_lfuture_release(n.by_timer);
  cf_lfuture_release(n.by_reader);
  loop_free(loop);
  close(fds[0]);
  close(fds[1]);
}

/* ------------------------------------------------------------------ */
/* Loop futures                                                       */
/* ------------------------------------------------------------------ */

typedef struct adder {
  cf_lfuture_t *f;
  int rc;
} adder_t;

/* A done callback that adds another callback (tag 30) to the same, done
 * future: that one must wait for a later iteration. */
static void add_more_cb(cf_lfuture_t *f, void *data) {
  adder_t *a = data;
  log_tag(20);
  a->rc = cf_lfuture_add_done_callback(f, tag_cb, TAG(30));
}

static void test_lfuture_callbacks_never_synchronous(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = lf_new(loop);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(f, tag_cb, TAG(1)), 0);
  assert_int_equal(cf_lfuture_add_done_callback(f, seen_cb, &s), 0);
  assert_int_equal(cf_lfuture_add_done_callback(f, tag_cb, TAG(2)), 0);
  assert_int_equal(cf_lfuture_add_done_callback(f, tag_cb, TAG(3)), 0);
  step(loop);
  EXPECT_EMPTY_LOG(); /* pending: nothing runs */

  assert_int_equal(cf_lfuture_set_result(f, TAG(77), NULL), 0);
  EXPECT_EMPTY_LOG(); /* not inside set_result */
  assert_int_equal(s.calls, 0);
  /* Added to a done future: not inside add_done_callback either. */
  assert_int_equal(cf_lfuture_add_done_callback(f, tag_cb, TAG(4)), 0);
  adder_t a = {.rc = -100};
  assert_int_equal(cf_lfuture_add_done_callback(f, add_more_cb, &a), 0);
  EXPECT_EMPTY_LOG();

  step(loop); /* registration order, all in the next iteration */
  EXPECT_LOG(1, 2, 3, 4, 20);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.done, 1);
  assert_ptr_equal(s.f, f);
  assert_true(s.on_loop_thread);
  assert_int_equal(a.rc, 0);
  step(loop); /* the one added by a callback */
  EXPECT_LOG(30);
  step(loop);
  EXPECT_EMPTY_LOG(); /* exactly once */
  assert_int_equal(s.calls, 1);
  cf_lfuture_release(f);

  /* The same through cancel and set_exception. */
  cf_lfuture_t *g = lf_new(loop);
  cf_lfuture_t *h = lf_new(loop);
  seen_t sg = {0}, sh = {0};
  assert_int_equal(cf_lfuture_add_done_callback(g, seen_cb, &sg), 0);
  assert_int_equal(cf_lfuture_add_done_callback(h, seen_cb, &sh), 0);
  assert_int_equal(cf_lfuture_cancel(g), 1);
  assert_int_equal(cf_lfuture_set_exception(h, 3, NULL), 0);
  assert_int_equal(sg.calls + sh.calls, 0);
  step(loop);
  assert_int_equal(sg.calls, 1);
  assert_int_equal(sg.cancelled, 1);
  assert_int_equal(sh.calls, 1);
  assert_int_equal(sh.cancelled, 0);
  assert_int_equal(sh.done, 1);
  step(loop);
  assert_int_equal(sg.calls + sh.calls, 2);
  cf_lfuture_release(g);
  cf_lfuture_release(h);
  loop_free(loop);
}

static int return_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

static void test_lfuture_state_rules(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  void *out = TAG(-1);
  int code = -100;
  const char *msg = "untouched";

  /* Pending. */
  cf_lfuture_t *f = lf_new(loop);
  assert_int_equal(cf_lfuture_done(f), 0);
  assert_int_equal(cf_lfuture_cancelled(f), 0);
  assert_int_equal(cf_lfuture_result(f, &out), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_exception(f, &code, &msg), CF_EINVALID_STATE);
  assert_ptr_equal(out, TAG(-1));
  assert_int_equal(cf_lfuture_set_exception(f, 0, "zero"), CF_EINVAL);
  assert_false(cf_lfuture_done(f));

  /* Finished with a value: every other completion is refused and the
   * refused value's destructor does not run. */
  int *v = new_value(1);
  int *v2 = new_value(2);
  assert_int_equal(cf_lfuture_set_result(f, v, value_free), 0);
  assert_int_equal(cf_lfuture_done(f), 1);
  assert_int_equal(cf_lfuture_cancelled(f), 0);
  assert_int_equal(cf_lfuture_set_result(f, v2, value_free), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_set_exception(f, 9, "late"), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_cancel(f), 0);
  assert_int_equal(atomic_load(&counter_hits), 0);
  assert_int_equal(cf_lfuture_result(f, &out), 0);
  assert_ptr_equal(out, v);
  assert_int_equal(cf_lfuture_result(f, NULL), 0);
  assert_int_equal(cf_lfuture_exception(f, &code, &msg), 0);
  assert_int_equal(code, 0);
  assert_null(msg);
  assert_int_equal(cf_lfuture_exception(f, NULL, NULL), 0);
  cf_lfuture_release(f);
  assert_int_equal(atomic_load(&counter_hits), 1); /* v, not v2 */
  value_free(v2);
  atomic_store(&counter_hits, 0);

  /* Failed: the message is copied. */
  f = lf_new(loop);
  char buf[16];
  strcpy(buf, "boom");
  assert_int_equal(cf_lfuture_set_exception(f, 42, buf), 0);
  strcpy(buf, "XXXX");
  v2 = new_value(3);
  assert_int_equal(cf_lfuture_set_result(f, v2, value_free), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_set_exception(f, 43, "again"), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_cancel(f), 0);
  assert_int_equal(cf_lfuture_result(f, &out), CF_EFAILED);
  assert_int_equal(cf_lfuture_exception(f, &code, &msg), 0);
  assert_int_equal(code, 42);
  assert_string_equal(msg, "boom");
  cf_lfuture_release(f);
  assert_int_equal(atomic_load(&counter_hits), 0);

  /* Failed without a message. */
  f = lf_new(loop);
  assert_int_equal(cf_lfuture_set_exception(f, -77, NULL), 0);
  msg = "untouched";
  assert_int_equal(cf_lfuture_exception(f, &code, &msg), 0);
  assert_int_equal(code, -77);
  assert_null(msg);
  cf_lfuture_release(f);

  /* Cancelled. */
  f = lf_new(loop);
  assert_int_equal(cf_lfuture_cancel(f), 1);
  assert_int_equal(cf_lfuture_cancel(f), 0);
  assert_int_equal(cf_lfuture_done(f), 1);
  assert_int_equal(cf_lfuture_cancelled(f), 1);
  assert_int_equal(cf_lfuture_set_result(f, v2, value_free), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_set_exception(f, 1, "x"), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_result(f, &out), CF_ECANCELLED);
  assert_int_equal(cf_lfuture_exception(f, &code, &msg), CF_ECANCELLED);
  cf_lfuture_release(f);
  assert_int_equal(atomic_load(&counter_hits), 0);
  value_free(v2);

  /* set_result/set_exception on a task: refused. */
  cf_lfuture_t *task = NULL;
  assert_int_equal(cf_task_create(loop, return_body, NULL, &task), 0);
  assert_int_equal(cf_lfuture_set_result(task, NULL, NULL), CF_EINVALID_STATE);
  assert_int_equal(cf_lfuture_set_exception(task, 1, NULL), CF_EINVALID_STATE);
  assert_int_equal(cf_loop_run_until_complete(loop, task), 0);
  assert_int_equal(cf_lfuture_set_result(task, NULL, NULL), CF_EINVALID_STATE);
  cf_lfuture_release(task);
  loop_free(loop);
}

static void test_lfuture_value_destructor_at_last_release(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = lf_new(loop);
  assert_ptr_equal(cf_lfuture_retain(f), f);
  assert_ptr_equal(cf_lfuture_retain(f), f);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(f, seen_cb, &s), 0);
  assert_int_equal(cf_lfuture_set_result(f, new_value(1), value_free), 0);
  cf_lfuture_release(f);
  step(loop); /* the callbacks' hold on f ends too */
  assert_int_equal(s.calls, 1);
  cf_lfuture_release(f);
  assert_int_equal(atomic_load(&counter_hits), 0);
  void *out = NULL;
  assert_int_equal(cf_lfuture_result(f, &out), 0);
  assert_int_equal(*(int *)out, 1);
  cf_lfuture_release(f);
  assert_int_equal(atomic_load(&counter_hits), 1);

  /* Released while its callbacks are still scheduled: the value lives
   * until they ran. */
  f = lf_new(loop);
  seen_t s2 = {0};
  assert_int_equal(cf_lfuture_add_done_callback(f, seen_cb, &s2), 0);
  assert_int_equal(cf_lfuture_set_result(f, new_value(2), value_free), 0);
  cf_lfuture_release(f);
  assert_int_equal(atomic_load(&counter_hits), 1);
  step(loop);
  assert_int_equal(s2.calls, 1);
  assert_int_equal(s2.done, 1);
  assert_int_equal(atomic_load(&counter_hits), 2);
  loop_free(loop);
}

static void test_lfuture_release_pending_cancels(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  /* With callbacks: they still run, once, and see it cancelled. */
  cf_lfuture_t *f = lf_new(loop);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(f, seen_cb, &s), 0);
  assert_int_equal(cf_lfuture_add_done_callback(f, tag_cb, TAG(1)), 0);
  cf_lfuture_release(f);
  assert_int_equal(s.calls, 0); /* not synchronously */
  step(loop);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.cancelled, 1);
  EXPECT_LOG(1);
  step(loop);
  assert_int_equal(s.calls, 1);

  /* Without callbacks: simply freed (valgrind checks). */
  f = lf_new(loop);
  cf_lfuture_release(f);
  step(loop);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Wrapped pool futures                                               */
/* ------------------------------------------------------------------ */

static int alloc_job(void *arg, cf_job_t *job) {
  cf_job_return(job, new_value((int)(intptr_t)arg), value_free);
  return 0;
}

static int flag_job(void *arg, cf_job_t *job) {
  (void)job;
  atomic_fetch_add((atomic_int *)arg, 1);
  return 0;
}

typedef struct gjob {
  gate_t gate;
  atomic_int cancel_seen;
  atomic_int finished;
} gjob_t;

/* Blocks on its gate, then returns a counted value. */
static int gated_alloc_job(void *arg, cf_job_t *job) {
  gjob_t *g = arg;
  sem_post(&g->gate.started);
  while (sem_wait(&g->gate.open) != 0) {
  }
  atomic_store(&g->cancel_seen, cf_job_cancel_requested(job));
  cf_job_return(job, new_value(7), value_free);
  atomic_store(&g->finished, 1);
  return 0;
}

static void test_wrap_value_and_source(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = make_pool(2);
  cf_future_t *pf = NULL;
  assert_int_equal(cf_executor_submit(ex, alloc_job, TAG(21), NULL, &pf), 0);
  cf_lfuture_t *w = NULL;
  assert_int_equal(cf_lfuture_wrap(loop, pf, &w), 0);
  assert_ptr_equal(cf_lfuture_source(w), pf);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(w, seen_cb, &s), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, w), 0);
  void *out = NULL, *pout = NULL;
  assert_int_equal(cf_lfuture_result(w, &out), 0);
  assert_int_equal(cf_future_result(pf, 0, &pout), 0);
  assert_ptr_equal(out, pout); /* the pool future's own value */
  assert_int_equal(*(int *)out, 21);
  step(loop);
  assert_int_equal(s.calls, 1);
  assert_true(s.on_loop_thread);

  /* Wrapping an already done pool future. */
  cf_lfuture_t *w2 = NULL;
  assert_int_equal(cf_lfuture_wrap(loop, pf, &w2), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, w2), 0);
  assert_int_equal(cf_lfuture_result(w2, &out), 0);
  assert_ptr_equal(out, pout);

  /* Plain futures have no source. */
  cf_lfuture_t *plain = lf_new(loop);
  assert_null(cf_lfuture_source(plain));
  cf_lfuture_release(plain);

  cf_lfuture_release(w);
  cf_lfuture_release(w2);
  assert_int_equal(atomic_load(&counter_hits), 0); /* pf still holds it */
  cf_future_release(pf);
  assert_int_equal(cf_executor_destroy(ex), 0);
  loop_free(loop);
  assert_int_equal(atomic_load(&counter_hits), 1);
}

static void test_wrap_failure(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = make_pool(1);
  cf_future_t *pf = NULL;
  assert_int_equal(
      cf_executor_submit(ex, failing_job, (void *)(intptr_t)42, NULL, &pf), 0);
  cf_lfuture_t *w = NULL;
  assert_int_equal(cf_lfuture_wrap(loop, pf, &w), 0);
  cf_future_release(pf); /* the wrapper holds its own reference */
  assert_int_equal(cf_loop_run_until_complete(loop, w), CF_EFAILED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_lfuture_exception(w, &code, &msg), 0);
  assert_int_equal(code, 42);
  assert_non_null(msg);
  assert_string_equal(msg, "failed with 42");
  assert_int_equal(cf_lfuture_result(w, NULL), CF_EFAILED);
  assert_non_null(cf_lfuture_source(w));
  assert_int_equal(cf_future_done(cf_lfuture_source(w)), 1);
  cf_lfuture_release(w);
  assert_int_equal(cf_executor_destroy(ex), 0);
  loop_free(loop);
}

static void test_wrap_cancel_while_queued(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_job, &g, NULL, &blocker), 0);
  gate_wait_started(&g); /* the only worker is busy */

  atomic_int ran = 0;
  cf_future_t *pf = NULL;
  assert_int_equal(cf_executor_submit(ex, flag_job, &ran, NULL, &pf), 0);
  cf_lfuture_t *w = NULL;
  assert_int_equal(cf_lfuture_wrap(loop, pf, &w), 0);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(w, seen_cb, &s), 0);

  assert_int_equal(cf_lfuture_cancel(w), 1);
  assert_int_equal(cf_lfuture_cancelled(w), 1);
  assert_int_equal(cf_future_cancelled(pf), 1); /* queued: cancelled too */
  assert_int_equal(cf_lfuture_cancel(w), 0);
  assert_int_equal(s.calls, 0);

  gate_open(&g, 1);
  assert_int_equal(wait_result(blocker, NULL), 0);
  assert_int_equal(cf_executor_destroy(ex), 0); /* all queued work done */
  assert_int_equal(atomic_load(&ran), 0);       /* the job never ran */
  assert_int_equal(cf_loop_run_until_complete(loop, w), CF_ECANCELLED);
  step(loop);
  step(loop);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.cancelled, 1);
  assert_int_equal(cf_lfuture_result(w, NULL), CF_ECANCELLED);
  cf_lfuture_release(w);
  cf_future_release(pf);
  cf_future_release(blocker);
  gate_fini(&g);
  loop_free(loop);
}

static void test_wrap_cancel_while_running(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_executor_t *ex = make_pool(1);
  gjob_t g;
  gate_init(&g.gate);
  atomic_init(&g.cancel_seen, -1);
  atomic_init(&g.finished, 0);
  cf_future_t *pf = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_alloc_job, &g, NULL, &pf), 0);
  gate_wait_started(&g.gate);
  cf_lfuture_t *w = NULL;
  assert_int_equal(cf_lfuture_wrap(loop, pf, &w), 0);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(w, seen_cb, &s), 0);

  assert_int_equal(cf_lfuture_cancel(w), 1);
  assert_int_equal(cf_lfuture_cancelled(w), 1); /* at once */
  assert_int_equal(cf_future_cancelled(pf), 0); /* running: not pre-empted */
  assert_int_equal(cf_future_running(pf), 1);

  gate_open(&g.gate, 1);
  void *pv = NULL;
  assert_int_equal(wait_result(pf, &pv), 0); /* the job finished */
  assert_int_equal(*(int *)pv, 7);
  assert_int_equal(atomic_load(&g.finished), 1);
  /* The job could see the request (cf_job_cancel_requested). */
  assert_int_equal(atomic_load(&g.cancel_seen), 1);

  /* The late result is dropped: w stays cancelled. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(cf_loop_run_once(loop, 0.01), 0);
  assert_int_equal(cf_lfuture_cancelled(w), 1);
  assert_int_equal(cf_lfuture_result(w, NULL), CF_ECANCELLED);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.cancelled, 1);
  cf_lfuture_release(w);
  assert_int_equal(atomic_load(&counter_hits), 0); /* we still hold pf */
  cf_future_release(pf);
  assert_int_equal(cf_executor_destroy(ex), 0);
  loop_free(loop);
  assert_int_equal(atomic_load(&counter_hits), 1); /* exactly once */
  gate_fini(&g.gate);
}

/* ------------------------------------------------------------------ */
/* gather and shield                                                  */
/* ------------------------------------------------------------------ */

static void test_gather_all_succeed(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *fs[3];
  for (int i = 0; i < 3; i++)
    fs[i] = lf_new(loop);
  assert_int_equal(cf_lfuture_set_result(fs[1], TAG(11), NULL), 0);
  cf_lfuture_t *g = NULL;
  assert_int_equal(cf_gather(loop, fs, 3, &g), 0);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(g, seen_cb, &s), 0);
  step(loop);
  assert_false(cf_lfuture_done(g));
  assert_int_equal(cf_lfuture_set_result(fs[2], TAG(12), NULL), 0);
  step(loop);
  assert_false(cf_lfuture_done(g));
  assert_int_equal(cf_lfuture_set_result(fs[0], TAG(10), NULL), 0);
  assert_false(cf_lfuture_done(g)); /* through callbacks, not at once */
  assert_int_equal(cf_loop_run_until_complete(loop, g), 0);
  void *out = TAG(-1);
  assert_int_equal(cf_lfuture_result(g, &out), 0);
  assert_null(out);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(cf_lfuture_result(fs[i], &out), 0);
    assert_ptr_equal(out, TAG(10 + i));
  }
  step(loop);
  assert_int_equal(s.calls, 1);
  cf_lfuture_release(g);
  for (int i = 0; i < 3; i++)
    cf_lfuture_release(fs[i]);
  loop_free(loop);
}

static void test_gather_first_failure(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *fs[3];
  for (int i = 0; i < 3; i++)
    fs[i] = lf_new(loop);
  cf_lfuture_t *g = NULL;
  assert_int_equal(cf_gather(loop, fs, 3, &g), 0);
  assert_int_equal(cf_lfuture_set_exception(fs[1], 7, "seven"), 0);
  step(loop);
  assert_true(cf_lfuture_done(g));
  assert_int_equal(cf_lfuture_result(g, NULL), CF_EFAILED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_lfuture_exception(g, &code, &msg), 0);
  assert_int_equal(code, 7);
  assert_string_equal(msg, "seven");
  /* The others keep going. */
  assert_false(cf_lfuture_done(fs[0]));
  assert_false(cf_lfuture_done(fs[2]));
  assert_int_equal(cf_lfuture_set_exception(fs[2], 8, "eight"), 0);
  assert_int_equal(cf_lfuture_set_result(fs[0], TAG(1), NULL), 0);
  step(loop);
  step(loop);
  assert_int_equal(cf_lfuture_exception(g, &code, &msg), 0);
  assert_int_equal(code, 7); /* still the first */
  assert_string_equal(msg, "seven");
  void *out = NULL;
  assert_int_equal(cf_lfuture_result(fs[0], &out), 0);
  assert_ptr_equal(out, TAG(1));
  cf_lfuture_release(g);
  for (int i = 0; i < 3; i++)
    cf_lfuture_release(fs[i]);

  /* A cancelled child ends the gather as cancelled. */
  cf_lfuture_t *a = lf_new(loop), *b = lf_new(loop);
  cf_lfuture_t *ab[2] = {a, b};
  assert_int_equal(cf_gather(loop, ab, 2, &g), 0);
  assert_int_equal(cf_lfuture_cancel(a), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, g), CF_ECANCELLED);
  assert_false(cf_lfuture_done(b));
  assert_int_equal(cf_lfuture_set_result(b, NULL, NULL), 0);
  step(loop);
  cf_lfuture_release(g);
  cf_lfuture_release(a);
  cf_lfuture_release(b);
  loop_free(loop);
}

typedef struct sleeper {
  int started;
  int sleep_rc;
  int cleanup;    /* set after the body's cleanup ran */
  int cleanup_rc; /* the await done during cleanup, if any */
  bool await_in_cleanup;
} sleeper_t;

static int sleeper_body(cf_lfuture_t *self, void *arg) {
  (void)self;
  sleeper_t *s = arg;
  s->started++;
  s->sleep_rc = cf_sleep(3600);
  if (s->await_in_cleanup)
    s->cleanup_rc = cf_sleep(0.01);
  s->cleanup++;
  return s->sleep_rc;
}

static void test_gather_cancel_cancels_children(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  sleeper_t sl = {.sleep_rc = -100};
  cf_lfuture_t *task = NULL;
  assert_int_equal(cf_task_create(loop, sleeper_body, &sl, &task), 0);
  step(loop); /* the task is now sleeping */
  assert_int_equal(sl.started, 1);
  cf_lfuture_t *fs[4] = {lf_new(loop), lf_new(loop), lf_new(loop), task};
  assert_int_equal(cf_lfuture_set_result(fs[2], TAG(2), NULL), 0);
  cf_lfuture_t *g = NULL;
  assert_int_equal(cf_gather(loop, fs, 4, &g), 0);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(g, seen_cb, &s), 0);

  /* As asyncio's gather: cancel() cancels the children not done yet and
   * the outer ends only once they report (python3 shows the same). */
  assert_int_equal(cf_lfuture_cancel(g), 1);
  assert_int_equal(cf_lfuture_cancelled(g), 0);
  assert_int_equal(cf_lfuture_cancelled(fs[0]), 1);
  assert_int_equal(cf_lfuture_cancelled(fs[1]), 1);
  assert_int_equal(cf_lfuture_cancelled(fs[2]), 0); /* was done already */
  assert_int_equal(cf_task_cancelling(task), 1);    /* a request */
  assert_int_equal(cf_lfuture_cancel(g), 1); /* the task takes another */
  assert_int_equal(cf_task_cancelling(task), 2);
  assert_int_equal(cf_loop_run_until_complete(loop, task), CF_ECANCELLED);
  assert_int_equal(sl.sleep_rc, CF_ECANCELLED);
  assert_int_equal(sl.cleanup, 1);
  step(loop);
  step(loop);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.cancelled, 1);
  assert_int_equal(cf_lfuture_cancelled(g), 1);
  void *out = NULL;
  assert_int_equal(cf_lfuture_result(fs[2], &out), 0);
  assert_ptr_equal(out, TAG(2));
  cf_lfuture_release(g);
  for (int i = 0; i < 4; i++)
    cf_lfuture_release(fs[i]);
  loop_free(loop);
}

static void test_gather_empty(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *g = NULL;
  assert_int_equal(cf_gather(loop, NULL, 0, &g), 0);
  assert_true(cf_lfuture_done(g));
  assert_int_equal(cf_lfuture_result(g, NULL), 0);
  seen_t s = {0};
  assert_int_equal(cf_lfuture_add_done_callback(g, seen_cb, &s), 0);
  assert_int_equal(s.calls, 0); /* even a done gather: next iteration */
  step(loop);
  assert_int_equal(s.calls, 1);
  assert_int_equal(cf_lfuture_cancel(g), 0);
  cf_lfuture_release(g);

  /* Refused: a NULL entry, or a future of another loop. */
  cf_loop_t *other = loop_new();
  cf_lfuture_t *mine = lf_new(loop), *theirs = lf_new(other);
  cf_lfuture_t *bad1[2] = {mine, NULL};
  cf_lfuture_t *bad2[2] = {mine, theirs};
  g = (cf_lfuture_t *)&g;
  assert_int_equal(cf_gather(loop, bad1, 2, &g), CF_EINVAL);
  assert_int_equal(cf_gather(loop, bad2, 2, &g), CF_EINVAL);
  assert_ptr_equal(g, (cf_lfuture_t *)&g);
  cf_lfuture_release(mine);
  cf_lfuture_release(theirs);
  step(loop);
  step(other);
  loop_free(other);
  loop_free(loop);
}

static void test_shield(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();

  /* Cancelling the outer leaves the inner alone. */
  cf_lfuture_t *inner = lf_new(loop);
  cf_lfuture_t *outer = NULL;
  assert_int_equal(cf_shield(inner, &outer), 0);
  assert_ptr_not_equal(outer, inner);
  assert_int_equal(cf_lfuture_cancel(outer), 1);
  assert_int_equal(cf_lfuture_cancelled(outer), 1);
  assert_false(cf_lfuture_done(inner));
  step(loop);
  assert_false(cf_lfuture_done(inner));
  int *v = new_value(4);
  assert_int_equal(cf_lfuture_set_result(inner, v, value_free), 0);
  step(loop);
  void *out = NULL;
  assert_int_equal(cf_lfuture_result(inner, &out), 0);
  assert_ptr_equal(out, v);
  assert_int_equal(cf_lfuture_cancelled(outer), 1);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  assert_int_equal(atomic_load(&counter_hits), 1);
  atomic_store(&counter_hits, 0);

  /* The inner's value is copied (the same pointer, still owned by the
   * inner: its destructor runs once). */
  inner = lf_new(loop);
  assert_int_equal(cf_shield(inner, &outer), 0);
  v = new_value(5);
  assert_int_equal(cf_lfuture_set_result(inner, v, value_free), 0);
  assert_false(cf_lfuture_done(outer)); /* through a callback */
  assert_int_equal(cf_loop_run_until_complete(loop, outer), 0);
  assert_int_equal(cf_lfuture_result(outer, &out), 0);
  assert_ptr_equal(out, v);
  cf_lfuture_release(inner); /* the outer keeps the value alive */
  assert_int_equal(atomic_load(&counter_hits), 0);
  assert_int_equal(*(int *)out, 5);
  cf_lfuture_release(outer);
  assert_int_equal(atomic_load(&counter_hits), 1);

  /* A failure is copied; so is a cancellation of the inner. */
  inner = lf_new(loop);
  assert_int_equal(cf_shield(inner, &outer), 0);
  assert_int_equal(cf_lfuture_set_exception(inner, 31, "inner failed"), 0);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_EFAILED);
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_lfuture_exception(outer, &code, &msg), 0);
  assert_int_equal(code, 31);
  assert_string_equal(msg, "inner failed");
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);

  inner = lf_new(loop);
  assert_int_equal(cf_shield(inner, &outer), 0);
  assert_int_equal(cf_lfuture_cancel(inner), 1);
  assert_int_equal(cf_loop_run_until_complete(loop, outer), CF_ECANCELLED);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  loop_free(loop);
}

/* Every user reference to a gather, a shield and the pending futures under
 * them is released and the loop closed: nothing may be left allocated
 * (checked by valgrind and LeakSanitizer; the plain build only checks that
 * nothing crashes). */
static void test_release_pending_gather_and_shield(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  cf_lfuture_t *f = lf_new(loop);
  cf_lfuture_t *g = NULL;
  assert_int_equal(cf_gather(loop, &f, 1, &g), 0);
  cf_lfuture_release(g);
  cf_lfuture_release(f);
  cf_lfuture_t *inner = lf_new(loop);
  cf_lfuture_t *outer = NULL;
  assert_int_equal(cf_shield(inner, &outer), 0);
  cf_lfuture_release(outer);
  cf_lfuture_release(inner);
  step(loop);
  step(loop);
  loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Closing                                                            */
/* ------------------------------------------------------------------ */

typedef struct closer {
  cf_loop_t *loop;
  int rc;
} closer_t;

static void close_cb(void *arg) {
  closer_t *c = arg;
  c->rc = cf_loop_close(c->loop);
  cf_loop_stop(c->loop);
}

static void test_close_while_running(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  closer_t c = {.loop = loop, .rc = -100};
  assert_int_equal(cf_loop_call_soon(loop, close_cb, &c, NULL), 0);
  assert_int_equal(cf_loop_run_forever(loop), 0);
  assert_int_equal(c.rc, CF_EINVALID_STATE);
  /* Nothing happened: the loop still works. */
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(1), NULL), 0);
  step(loop);
  EXPECT_LOG(1);
  assert_int_equal(cf_loop_close(NULL), 0);
  loop_free(loop);
}

static void test_close_drops_pending_callbacks(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  int fds[2];
  make_pipe(fds);
  fdprobe_t p = {.loop = loop, .fd = fds[0], .tag = 4};
  assert_int_equal(cf_loop_add_reader(loop, fds[0], reader_cb, &p), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  cf_handle_t *h = NULL;
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(1), &h), 0);
  assert_int_equal(cf_loop_call_soon(loop, rec, TAG(2), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 3600, rec, TAG(3), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 0, rec, TAG(5), NULL), 0);
  assert_int_equal(cf_loop_call_later(loop, 7200, rec, TAG(6), &h), 0);
  assert_int_equal(cf_handle_cancel(h), 1); /* cancelled, still queued */

  /* Done callbacks scheduled by a completion (holding the future) and a
   * future whose completion never comes. */
  cf_lfuture_t *f = lf_new(loop);
  assert_int_equal(cf_lfuture_add_done_callback(f, tag_cb, TAG(7)), 0);
  assert_int_equal(cf_lfuture_set_result(f, new_value(1), value_free), 0);
  cf_lfuture_release(f); /* the scheduled callbacks hold the last ref */
  cf_lfuture_t *pend = lf_new(loop);
  assert_int_equal(cf_lfuture_add_done_callback(pend, tag_cb, TAG(8)), 0);
  cf_lfuture_release(pend); /* cancelled: its callbacks are scheduled */
  assert_int_equal(atomic_load(&counter_hits), 0);

  assert_int_equal(cf_loop_close(loop), 0);
  EXPECT_EMPTY_LOG(); /* nothing ran, not even the ready ones */
  assert_int_equal(p.reads, 0);
  /* The dropped callbacks released f: its value was destroyed. */
  assert_int_equal(atomic_load(&counter_hits), 1);
  close(fds[0]);
  close(fds[1]);
}

static void test_close_drops_threadsafe_calls(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  assert_int_equal(cf_loop_call_soon_threadsafe(loop, rec, TAG(1)), 0);
  assert_int_equal(cf_loop_close(loop), 0);
  /* "callbacks still scheduled are dropped" (loop.h, cf_loop_close). */
  EXPECT_EMPTY_LOG();
}

static void test_close_cancels_live_tasks(void **state) {
  (void)state;
  cf_loop_t *loop = loop_new();
  sleeper_t a = {.sleep_rc = -100};
  sleeper_t b = {
      .sleep_rc = -100, .cleanup_rc = -100, .await_in_cleanup = true};
  sleeper_t never = {.sleep_rc = -100};
  assert_int_equal(cf_task_create(loop, sleeper_body, &a, NULL), 0);
  assert_int_equal(cf_task_create(loop, sleeper_body, &b, NULL), 0);
  step(loop); /* both are sleeping */
  assert_int_equal(a.started, 1);
  assert_int_equal(b.started, 1);
  /* One more that never took its first step. */
  assert_int_equal(cf_task_create(loop, sleeper_body, &never, NULL), 0);

  assert_int_equal(cf_loop_close(loop), 0);
  assert_int_equal(a.sleep_rc, CF_ECANCELLED);
  assert_int_equal(a.cleanup, 1);
  /* b's cleanup awaited again; close ran the loop until it ended. */
  assert_int_equal(b.sleep_rc, CF_ECANCELLED);
  assert_int_equal(b.cleanup_rc, 0);
  assert_int_equal(b.cleanup, 1);
  assert_int_equal(never.started, 0); /* cancelled before its first step */
}

/* ------------------------------------------------------------------ */
/* Bad arguments                                                      */
/* ------------------------------------------------------------------ */

static void nop_cb(void *arg) { (void)arg; }
static void nop_done(cf_lfuture_t *f, void *data) {
  (void)f;
  (void)data;
}

static void test_null_arguments(void **state) {
  (void)state;
  cf_loop_options_init(NULL); /* no crash */
  cf_loop_options_t opts;
  cf_loop_options_init(&opts);
  assert_true(opts.stack_size > 0);
  assert_null(opts.executor);

  assert_int_equal(cf_loop_create(NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_create(NULL, &opts), CF_EINVAL);
  cf_loop_t *loop = NULL;
  assert_int_equal(cf_loop_create(&loop, &opts), 0);
  assert_int_equal(cf_loop_close(NULL), 0);

  cf_handle_t *h = NULL;
  assert_int_equal(cf_loop_call_soon(NULL, nop_cb, NULL, &h), CF_EINVAL);
  assert_int_equal(cf_loop_call_soon(loop, NULL, NULL, &h), CF_EINVAL);
  assert_int_equal(cf_loop_call_later(NULL, 1, nop_cb, NULL, &h), CF_EINVAL);
  assert_int_equal(cf_loop_call_later(loop, 1, NULL, NULL, &h), CF_EINVAL);
  assert_int_equal(cf_loop_call_at(NULL, 1, nop_cb, NULL, &h), CF_EINVAL);
  assert_int_equal(cf_loop_call_at(loop, 1, NULL, NULL, &h), CF_EINVAL);
  assert_null(h);
  assert_int_equal(cf_loop_call_soon_threadsafe(NULL, nop_cb, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_call_soon_threadsafe(loop, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_handle_cancel(NULL), CF_EINVAL);

  assert_int_equal(cf_loop_add_reader(NULL, 0, nop_cb, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_add_reader(loop, 0, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_add_writer(NULL, 1, nop_cb, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_add_writer(loop, 1, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_loop_remove_reader(NULL, 0), CF_EINVAL);
  assert_int_equal(cf_loop_remove_writer(NULL, 1), CF_EINVAL);
  assert_int_equal(cf_loop_remove_reader(loop, -1), CF_EINVAL);
  assert_int_equal(cf_loop_remove_writer(loop, -1), CF_EINVAL);

  assert_int_equal(cf_loop_run_forever(NULL), CF_EINVAL);
  assert_int_equal(cf_loop_stop(NULL), CF_EINVAL);
  assert_int_equal(cf_loop_run_once(NULL, 0), CF_EINVAL);
  assert_int_equal(cf_loop_run_once(loop, NAN), CF_EINVAL);
  assert_int_equal(cf_loop_fd(NULL), CF_EINVAL);
  cf_lfuture_t *f = lf_new(loop);
  assert_int_equal(cf_loop_run_until_complete(NULL, f), CF_EINVAL);
  assert_int_equal(cf_loop_run_until_complete(loop, NULL), CF_EINVAL);

  cf_lfuture_t *out = NULL;
  assert_int_equal(cf_lfuture_create(NULL, &out), CF_EINVAL);
  assert_int_equal(cf_lfuture_create(loop, NULL), CF_EINVAL);
  assert_null(out);
  assert_null(cf_lfuture_retain(NULL));
  cf_lfuture_release(NULL); /* no-op */
  assert_int_equal(cf_lfuture_cancel(NULL), CF_EINVAL);
  assert_int_equal(cf_lfuture_done(NULL), 0);
  assert_int_equal(cf_lfuture_cancelled(NULL), 0);
  void *v = NULL;
  int code = 0;
  const char *msg = NULL;
  assert_int_equal(cf_lfuture_result(NULL, &v), CF_EINVAL);
  assert_int_equal(cf_lfuture_exception(NULL, &code, &msg), CF_EINVAL);
  assert_int_equal(cf_lfuture_set_result(NULL, NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_lfuture_set_exception(NULL, 1, "x"), CF_EINVAL);
  assert_int_equal(cf_lfuture_add_done_callback(NULL, nop_done, NULL),
                   CF_EINVAL);
  assert_int_equal(cf_lfuture_add_done_callback(f, NULL, NULL), CF_EINVAL);
  assert_null(cf_lfuture_source(NULL));

  cf_future_t *pf = NULL;
  assert_int_equal(cf_future_create(&pf), 0);
  assert_int_equal(cf_lfuture_wrap(NULL, pf, &out), CF_EINVAL);
  assert_int_equal(cf_lfuture_wrap(loop, NULL, &out), CF_EINVAL);
  assert_int_equal(cf_lfuture_wrap(loop, pf, NULL), CF_EINVAL);
  assert_null(out);

  cf_lfuture_t *fs[1] = {f};
  assert_int_equal(cf_gather(NULL, fs, 1, &out), CF_EINVAL);
  assert_int_equal(cf_gather(loop, NULL, 1, &out), CF_EINVAL);
  assert_int_equal(cf_gather(loop, fs, 1, NULL), CF_EINVAL);
  assert_int_equal(cf_shield(NULL, &out), CF_EINVAL);
  assert_int_equal(cf_shield(f, NULL), CF_EINVAL);
  assert_null(out);

  /* The refused calls left f pending and untouched. */
  assert_false(cf_lfuture_done(f));
  step(loop);
  assert_false(cf_lfuture_done(f));
  cf_lfuture_release(f);
  cf_future_release(pf);
  loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_call_soon_fifo, setup),
      cmocka_unit_test_setup(test_call_soon_from_callback_next_iteration,
                             setup),
      cmocka_unit_test_setup(test_timers_order_by_due_time, setup),
      cmocka_unit_test_setup(test_timer_never_early, setup),
      cmocka_unit_test_setup(test_handle_cancel, setup),
      cmocka_unit_test_setup(test_nan_and_negative_delay, setup),
      cmocka_unit_test_setup(test_reader_runs_when_data_arrives, setup),
      cmocka_unit_test_setup(test_writer_runs_when_writable, setup),
      cmocka_unit_test_setup(test_replace_reader_and_writer, setup),
      cmocka_unit_test_setup(test_remove_inside_own_callback, setup),
      cmocka_unit_test_setup(test_fd_that_cannot_be_watched, setup),
      cmocka_unit_test_setup(test_run_forever_and_stop, setup),
      cmocka_unit_test_setup(test_stop_before_run_forever, setup),
      cmocka_unit_test_setup(test_run_until_complete, setup),
      cmocka_unit_test_setup(test_run_until_complete_other_loop, setup),
      cmocka_unit_test_setup(test_reentrant_run_refused, setup),
      cmocka_unit_test_setup(test_call_soon_threadsafe_many_threads, setup),
      cmocka_unit_test_setup(test_nested_in_outer_poll, setup),
      cmocka_unit_test_setup(test_lfuture_callbacks_never_synchronous, setup),
      cmocka_unit_test_setup(test_lfuture_state_rules, setup),
      cmocka_unit_test_setup(test_lfuture_value_destructor_at_last_release,
                             setup),
      cmocka_unit_test_setup(test_lfuture_release_pending_cancels, setup),
      cmocka_unit_test_setup(test_wrap_value_and_source, setup),
      cmocka_unit_test_setup(test_wrap_failure, setup),
      cmocka_unit_test_setup(test_wrap_cancel_while_queued, setup),
      cmocka_unit_test_setup(test_wrap_cancel_while_running, setup),
      cmocka_unit_test_setup(test_gather_all_succeed, setup),
      cmocka_unit_test_setup(test_gather_first_failure, setup),
      cmocka_unit_test_setup(test_gather_cancel_cancels_children, setup),
      cmocka_unit_test_setup(test_gather_empty, setup),
      cmocka_unit_test_setup(test_shield, setup),
      cmocka_unit_test_setup(test_release_pending_gather_and_shield, setup),
      cmocka_unit_test_setup(test_close_while_running, setup),
      cmocka_unit_test_setup(test_close_drops_pending_callbacks, setup),
      cmocka_unit_test_setup(test_close_drops_threadsafe_calls, setup),
      cmocka_unit_test_setup(test_close_cancels_live_tasks, setup),
      cmocka_unit_test_setup(test_null_arguments, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
