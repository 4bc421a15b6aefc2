/*
 * Tests of cf_bridge (SEMANTICS.md section 4): pool futures delivered to an
 * event loop thread through one coalesced wake-up, with plain epoll as the
 * loop. The test thread is the loop thread: it calls epoll_wait and
 * cf_bridge_dispatch, and every delivery callback runs on it.
 *
 * Jobs, producers and wake-up functions never assert: they record into
 * atomics and the test thread asserts after it has waited for them.
 * Schedules are made deterministic with gates and semaphores, never with
 * sleeps. The few timed waits (epoll_wait and sem_timedwait of 10 s or more)
 * only turn a lost wake-up into a failure instead of a hang; no test asserts
 * that anything was fast.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfutures.h"
#include "helpers.h"

/* How long the loop waits for a wake-up that must come (a hang guard). */
#define WAIT_MS 10000
/* How long the test thread waits for a semaphore that must be posted. */
#define SEM_GUARD_S 60

/* ------------------------------------------------------------------ */
/* Local helpers                                                      */
/* ------------------------------------------------------------------ */

static pthread_t loop_thread;

static int setup(void **state) {
  (void)state;
  loop_thread = pthread_self();
  atomic_store(&counter_hits, 0);
  return 0;
}

/* The fds that cf_bridge_create() opens: an eventfd, or both ends of a
 * pipe in a build configured --with-bridge-wakeup=pipe (configure defines
 * CF_BRIDGE_PIPE for the tests as for the library). */
#ifdef CF_BRIDGE_PIPE
#define BRIDGE_FDS 2
#else
#define BRIDGE_FDS 1
#endif

/* The number of open file descriptors of this process (the directory
 * stream's own fd included, the same in every count). */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

#ifdef CF_BRIDGE_PIPE
/* The other end of the pipe fd: the one other open fd on its inode, or
 * -1. The bridge does not hand out its write end; this finds it. */
static int pipe_peer(int fd) {
  struct stat want, st;
  assert_int_equal(fstat(fd, &want), 0);
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int peer = -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int other = atoi(e->d_name);
    if (e->d_name[0] != '.' && other != fd && fstat(other, &st) == 0 &&
        st.st_dev == want.st_dev && st.st_ino == want.st_ino)
      peer = other;
  }
  closedir(d);
  return peer;
}
#endif

/* sem_wait with a hang guard; returns 0 or -1 when the guard expired. */
static int sem_wait_guarded(sem_t *s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += SEM_GUARD_S;
  int rc;
  do
    rc = sem_timedwait(s, &ts);
  while (rc != 0 && errno == EINTR);
  return rc;
}

/* An epoll loop watching one bridge fd. */
typedef struct loop {
  cf_bridge_t *b;
  int fd;
  int ep;
} loop_t;

static void loop_open(loop_t *l) {
  assert_int_equal(cf_bridge_create(&l->b), 0);
  l->fd = cf_bridge_fd(l->b);
  assert_true(l->fd >= 0);
  l->ep = epoll_create1(EPOLL_CLOEXEC);
  assert_true(l->ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l->fd};
  assert_int_equal(epoll_ctl(l->ep, EPOLL_CTL_ADD, l->fd, &ev), 0);
}

/* epoll_wait for the bridge fd: 1 readable, 0 timed out. */
static int loop_poll(loop_t *l, int ms) {
  struct epoll_event ev;
  int n;
  do
    n = epoll_wait(l->ep, &ev, 1, ms);
  while (n < 0 && errno == EINTR);
  return n;
}

/* One loop iteration that must be woken: returns what dispatch ran. */
static int loop_turn(loop_t *l) {
  assert_int_equal(loop_poll(l, WAIT_MS), 1);
  int n = cf_bridge_dispatch(l->b);
  assert_true(n >= 0);
  return n;
}

/* Turn the loop until *count reaches target. */
static void loop_run_until(loop_t *l, const int *count, int target) {
  while (*count < target)
    loop_turn(l);
}

static void loop_close(loop_t *l) {
  assert_int_equal(close(l->ep), 0);
  cf_bridge_destroy(l->b);
}

static cf_executor_t *make_pool(int max_workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = max_workers;
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  return ex;
}

/* Result values with a destructor that counts. */
static atomic_int values_freed;

static void value_free(void *p) {
  free(p);
  atomic_fetch_add(&values_freed, 1);
}

/* A job argument that records what happened to it. With a gate, the job
 * blocks on it first; with fail_code, it fails; else it returns a fresh
 * int holding `value`, freed by value_free. */
typedef struct probe {
  gate_t *gate;
  int value;
  int fail_code;
  atomic_int ran;
  atomic_int arg_freed;
} probe_t;

static void probe_init(probe_t *p, gate_t *gate, int value, int fail_code) {
  p->gate = gate;
  p->value = value;
  p->fail_code = fail_code;
  atomic_init(&p->ran, 0);
  atomic_init(&p->arg_freed, 0);
}

static int probe_job(void *arg, cf_job_t *job) {
  probe_t *p = arg;
  if (p->gate != NULL) {
    sem_post(&p->gate->started);
    while (sem_wait(&p->gate->open) != 0) {
    }
  }
  atomic_fetch_add(&p->ran, 1);
  if (p->fail_code != 0)
    return cf_job_fail(job, p->fail_code, "probe %d failed", p->value);
  int *v = malloc(sizeof(*v));
  if (v == NULL)
    return cf_job_fail(job, 12, "out of memory");
  *v = p->value;
  cf_job_return(job, v, value_free);
  return 0;
}

static void probe_arg_free(void *arg) {
  atomic_fetch_add(&((probe_t *)arg)->arg_freed, 1);
}

/* What a delivery callback saw. Only the loop thread touches it. */
typedef struct rec {
  int calls;
  int status;
  int state;  /* f's state when the callback ran */
  void *ptr;  /* f's value when status is 0 */
  int code;   /* f's failure code when status is CF_EFAILED */
  bool on_loop;
  cf_future_t *f; /* retained at the first call */
  int order;      /* position in the global order, see order_next */
} rec_t;

static int order_next;

static void rec_init(rec_t *r) {
  memset(r, 0, sizeof(*r));
  r->status = 1; /* no CF_E* code and not 0 */
  r->state = -1;
  r->order = -1;
}

static void rec_cb(cf_future_t *f, int status, void *data) {
  rec_t *r = data;
  if (++r->calls != 1)
    return;
  r->status = status;
  r->state = cf_future_state(f);
  r->on_loop = pthread_equal(pthread_self(), loop_thread) != 0;
  r->f = cf_future_retain(f);
  r->order = order_next++;
  if (status == 0 && cf_future_result(f, 0, &r->ptr) != 0)
    r->ptr = (void *)&r->ptr; /* flags a mismatch */
  if (status == CF_EFAILED && cf_future_exception(f, 0, &r->code, NULL) != 0)
    r->code = -1;
}

static void rec_fini(rec_t *r) {
  cf_future_release(r->f);
  r->f = NULL;
}

/* The int behind a probe's value. */
static int rec_int(const rec_t *r) {
  assert_non_null(r->ptr);
  return *(const int *)r->ptr;
}

/* A helper thread that cancels one future (cancel from another thread). */
typedef struct canceller {
  pthread_t tid;
  cf_future_t *f;
  int rc;
} canceller_t;

static void *canceller_main(void *arg) {
  canceller_t *c = arg;
  c->rc = cf_future_cancel(c->f);
  return NULL;
}

static int cancel_in_thread(cf_future_t *f) {
  canceller_t c = {.f = f, .rc = 99};
  assert_int_equal(pthread_create(&c.tid, NULL, canceller_main, &c), 0);
  assert_int_equal(pthread_join(c.tid, NULL), 0);
  return c.rc;
}

/* A helper thread that completes futures with set_result. */
typedef struct completer {
  pthread_t tid;
  cf_future_t **fs;
  int n;
  atomic_int failures;
} completer_t;

static void *completer_main(void *arg) {
  completer_t *c = arg;
  for (int i = 0; i < c->n; i++)
    if (cf_future_set_result(c->fs[i], (void *)(intptr_t)(i + 1), NULL) != 0)
      atomic_fetch_add(&c->failures, 1);
  return NULL;
}

static void complete_in_thread(cf_future_t **fs, int n) {
  completer_t c = {.fs = fs, .n = n};
  atomic_init(&c.failures, 0);
  assert_int_equal(pthread_create(&c.tid, NULL, completer_main, &c), 0);
  assert_int_equal(pthread_join(c.tid, NULL), 0);
  assert_int_equal(atomic_load(&c.failures), 0);
}

/* A plain counting delivery callback (loop thread only). */
typedef struct tally {
  int calls;
  int ok;
  int failed;
  int cancelled;
  int off_loop;
} tally_t;

static void tally_cb(cf_future_t *f, int status, void *data) {
  (void)f;
  tally_t *t = data;
  t->calls++;
  if (status == 0)
    t->ok++;
  else if (status == CF_EFAILED)
    t->failed++;
  else if (status == CF_ECANCELLED)
    t->cancelled++;
  if (!pthread_equal(pthread_self(), loop_thread))
    t->off_loop++;
}

static void count_call(void *arg) { (*(int *)arg)++; }

/* ------------------------------------------------------------------ */
/* Arguments                                                          */
/* ------------------------------------------------------------------ */

static void test_bad_arguments(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  cf_future_t *f;
  assert_int_equal(cf_future_create(&f), 0);
  tally_t tl = {0};
  int calls = 0;
  probe_t p;
  probe_init(&p, NULL, 1, 0);
  static char sentinel;
  cf_then_t *const untouched = (cf_then_t *)(void *)&sentinel;
  cf_then_t *t = untouched; /* must stay untouched */

  assert_int_equal(cf_bridge_create(NULL), CF_EINVAL);
  cf_bridge_t *wb = NULL;
  assert_int_equal(cf_bridge_create_with_wakeup(NULL, count_call, &calls,
                                                NULL), CF_EINVAL);
  assert_int_equal(cf_bridge_create_with_wakeup(&wb, NULL, &calls, NULL),
                   CF_EINVAL);
  assert_null(wb);
  assert_int_equal(cf_bridge_fd(NULL), CF_EINVAL);
  assert_int_equal(cf_bridge_dispatch(NULL), CF_EINVAL);
  assert_int_equal(cf_bridge_prepare(NULL), CF_EINVAL);
  assert_int_equal(cf_bridge_set_spin_us(NULL, 10), CF_EINVAL);
  assert_int_equal(cf_bridge_set_spin_us(l.b, -1), CF_EINVAL);
  assert_int_equal(cf_bridge_set_spin_us(l.b, 1000001), CF_EINVAL);

  assert_int_equal(cf_bridge_then(NULL, f, tally_cb, &tl, &t), CF_EINVAL);
  assert_int_equal(cf_bridge_then(l.b, NULL, tally_cb, &tl, &t), CF_EINVAL);
  assert_int_equal(cf_bridge_then(l.b, f, NULL, &tl, &t), CF_EINVAL);
  assert_ptr_equal(t, untouched);
  assert_int_equal(cf_then_cancel(NULL), CF_EINVAL);

  assert_int_equal(cf_bridge_run_in_executor(NULL, ex, probe_job, &p,
                                             probe_arg_free, tally_cb, &tl,
                                             &t), CF_EINVAL);
  assert_int_equal(cf_bridge_run_in_executor(l.b, NULL, probe_job, &p,
                                             probe_arg_free, tally_cb, &tl,
                                             &t), CF_EINVAL);
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, NULL, &p,
                                             probe_arg_free, tally_cb, &tl,
                                             &t), CF_EINVAL);
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &p,
                                             probe_arg_free, NULL, &tl, &t),
                   CF_EINVAL);
  assert_ptr_equal(t, untouched);

  assert_int_equal(cf_bridge_call_threadsafe(NULL, count_call, &calls),
                   CF_EINVAL);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, NULL, &calls), CF_EINVAL);
  cf_bridge_destroy(NULL); /* a no-op */

  /* None of the refused calls queued anything or ran anything. */
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.arg_freed), 0); /* the caller kept arg */
  assert_int_equal(tl.calls, 0);
  assert_int_equal(calls, 0);
  assert_int_equal(cf_future_state(f), CF_STATE_PENDING);
  cf_future_release(f);
  loop_close(&l);
}

static void noop_wakeup(void *data) { (void)data; }

static void test_fd_of_wakeup_bridge_is_einval(void **state) {
  (void)state;
  cf_bridge_t *wb;
  assert_int_equal(cf_bridge_create_with_wakeup(&wb, noop_wakeup, NULL, NULL),
                   0);
  assert_int_equal(cf_bridge_fd(wb), CF_EINVAL);
  assert_int_equal(cf_bridge_dispatch(wb), 0);
  cf_bridge_destroy(wb);

  /* A bridge with an fd: a valid, non-blocking, close-on-exec fd, of the
   * kind configure chose. A pipe's write end has the same flags. */
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create(&b), 0);
  int fd = cf_bridge_fd(b);
  assert_true(fd >= 0);
  assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  assert_true((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
#ifdef CF_BRIDGE_PIPE
  assert_true(S_ISFIFO(st.st_mode));
  int w = pipe_peer(fd);
  assert_true(w >= 0);
  assert_true((fcntl(w, F_GETFD) & FD_CLOEXEC) != 0);
  assert_true((fcntl(w, F_GETFL) & O_NONBLOCK) != 0);
#else
  assert_false(S_ISFIFO(st.st_mode));
#endif
  cf_bridge_destroy(b);
}

/* run_in_executor refused by the pool: the job never runs, the caller
 * keeps arg, nothing is delivered. */
static void test_run_in_executor_submit_error(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  probe_t p;
  probe_init(&p, NULL, 1, 0);
  tally_t tl = {0};
  cf_then_t *t = NULL;
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &p,
                                             probe_arg_free, tally_cb, &tl,
                                             &t),
                   CF_ESHUTDOWN);
  assert_null(t);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.arg_freed), 0);
  assert_int_equal(tl.calls, 0);
  loop_close(&l);
}

/* ------------------------------------------------------------------ */
/* Delivery                                                           */
/* ------------------------------------------------------------------ */

/* A value, a failure and a cancellation, each delivered once on the loop
 * thread with its status. */
static void test_status_value_failure_cancel(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(2);
  probe_t pv, pf;
  probe_init(&pv, NULL, 41, 0);
  probe_init(&pf, NULL, 42, 7);
  rec_t rv, rf, rc;
  rec_init(&rv);
  rec_init(&rf);
  rec_init(&rc);
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &pv,
                                             probe_arg_free, rec_cb, &rv,
                                             NULL), 0);
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &pf,
                                             probe_arg_free, rec_cb, &rf,
                                             NULL), 0);
  cf_future_t *fc;
  assert_int_equal(cf_future_create(&fc), 0);
  assert_int_equal(cf_bridge_then(l.b, fc, rec_cb, &rc, NULL), 0);
  assert_int_equal(cf_future_cancel(fc), 1);
  cf_future_release(fc); /* the bridge holds its own reference */

  while (rv.calls + rf.calls + rc.calls < 3)
    loop_turn(&l);
  assert_int_equal(cf_executor_destroy(ex), 0);

  assert_int_equal(rv.calls, 1);
  assert_int_equal(rv.status, 0);
  assert_true(rv.on_loop);
  assert_int_equal(rv.state, CF_STATE_FINISHED);
  assert_int_equal(rec_int(&rv), 41);
  assert_int_equal(rf.calls, 1);
  assert_int_equal(rf.status, CF_EFAILED);
  assert_true(rf.on_loop);
  assert_int_equal(rf.code, 7);
  assert_int_equal(rc.calls, 1);
  assert_int_equal(rc.status, CF_ECANCELLED);
  assert_true(rc.on_loop);
  assert_int_equal(rc.state, CF_STATE_CANCELLED);
  assert_int_equal(atomic_load(&pv.arg_freed), 1);
  assert_int_equal(atomic_load(&pf.arg_freed), 1);

  /* Nothing else is delivered. */
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  atomic_store(&values_freed, 0);
  rec_fini(&rv);
  assert_int_equal(atomic_load(&values_freed), 1);
  rec_fini(&rf);
  rec_fini(&rc);
  loop_close(&l);
}

/* asyncio futures never call back synchronously: cf_bridge_then on a done
 * future, completing or cancelling on the loop thread itself, all wait for
 * the next dispatch. */
static void test_never_synchronous(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  rec_t rd, rs, rx;
  rec_init(&rd);
  rec_init(&rs);
  rec_init(&rx);
  cf_future_t *done, *set, *cancel;
  assert_int_equal(cf_future_create(&done), 0);
  assert_int_equal(cf_future_create(&set), 0);
  assert_int_equal(cf_future_create(&cancel), 0);
  int value = 5;
  assert_int_equal(cf_future_set_result(done, &value, NULL), 0);

  assert_int_equal(cf_bridge_then(l.b, done, rec_cb, &rd, NULL), 0);
  assert_int_equal(rd.calls, 0);
  assert_int_equal(cf_bridge_then(l.b, set, rec_cb, &rs, NULL), 0);
  assert_int_equal(cf_bridge_then(l.b, cancel, rec_cb, &rx, NULL), 0);
  assert_int_equal(cf_future_set_result(set, &value, NULL), 0);
  assert_int_equal(cf_future_cancel(cancel), 1);
  assert_int_equal(rd.calls + rs.calls + rx.calls, 0);
  assert_int_equal(cf_future_done(set), 1); /* the source is done already */

  assert_int_equal(loop_poll(&l, 0), 1); /* the fd says: dispatch me */
  assert_int_equal(rd.calls + rs.calls + rx.calls, 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 3);
  assert_int_equal(rd.calls, 1);
  assert_int_equal(rs.calls, 1);
  assert_int_equal(rx.calls, 1);
  assert_int_equal(rd.status, 0);
  assert_ptr_equal(rd.ptr, &value);
  assert_int_equal(rs.status, 0);
  assert_int_equal(rx.status, CF_ECANCELLED);
  assert_int_equal(loop_poll(&l, 0), 0);

  rec_fini(&rd);
  rec_fini(&rs);
  rec_fini(&rx);
  cf_future_release(done);
  cf_future_release(set);
  cf_future_release(cancel);
  loop_close(&l);
}

/* Deliveries and calls run in the order they arrived. */
static int order_log[16];
static int order_pos;

static void log_call(void *arg) { order_log[order_pos++] = (int)(intptr_t)arg; }

static void log_then(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  order_log[order_pos++] = (int)(intptr_t)data;
}

static void test_arrival_order(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  order_pos = 0;
  cf_future_t *f1, *f2;
  assert_int_equal(cf_future_create(&f1), 0);
  assert_int_equal(cf_future_create(&f2), 0);
  /* Registered in the opposite order of completion. */
  assert_int_equal(cf_bridge_then(l.b, f2, log_then, (void *)4, NULL), 0);
  assert_int_equal(cf_bridge_then(l.b, f1, log_then, (void *)2, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, log_call, (void *)1), 0);
  assert_int_equal(cf_future_set_result(f1, NULL, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, log_call, (void *)3), 0);
  assert_int_equal(cf_future_set_result(f2, NULL, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, log_call, (void *)5), 0);
  assert_int_equal(order_pos, 0);
  assert_int_equal(loop_turn(&l), 5);
  assert_int_equal(order_pos, 5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(order_log[i], i + 1);
  cf_future_release(f1);
  cf_future_release(f2);
  loop_close(&l);
}

/* Several deliveries of one future: each once, in registration order. */
static void test_several_thens_on_one_future(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  order_next = 0;
  cf_future_t *f;
  assert_int_equal(cf_future_create(&f), 0);
  rec_t r[3];
  for (int i = 0; i < 3; i++) {
    rec_init(&r[i]);
    assert_int_equal(cf_bridge_then(l.b, f, rec_cb, &r[i], NULL), 0);
  }
  cf_future_t *fs[1] = {f};
  complete_in_thread(fs, 1);
  assert_int_equal(loop_turn(&l), 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].order, i);
    assert_int_equal(r[i].status, 0);
    assert_ptr_equal(r[i].ptr, (void *)1);
    assert_true(r[i].on_loop);
    rec_fini(&r[i]);
  }
  cf_future_release(f);
  loop_close(&l);
}

/* A dispatch with nothing queued is harmless and returns 0. */
static void test_spurious_dispatch(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  int calls = 0;
  assert_int_equal(cf_bridge_call_threadsafe(l.b, count_call, &calls), 0);
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(calls, 1);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(calls, 1);
  loop_close(&l);
}

/* ------------------------------------------------------------------ */
/* Throughput and coalescing                                          */
/* ------------------------------------------------------------------ */

#define BIG_N 200000
#define BIG_WINDOW 1000

static sem_t big_window_done;

/* Returns i + 1; the first window announces that its body ran. */
static int big_job(void *arg, cf_job_t *job) {
  intptr_t i = (intptr_t)arg;
  cf_job_return(job, (void *)(i + 1), NULL);
  if (i < BIG_WINDOW)
    sem_post(&big_window_done);
  return 0;
}

typedef struct big {
  long long sum;
  int inflight;
  int delivered;
  int bad;
  unsigned char *seen;
} big_t;

static void big_cb(cf_future_t *f, int status, void *data) {
  big_t *s = data;
  s->delivered++;
  s->inflight--;
  void *v = NULL;
  if (status != 0 || cf_future_result(f, 0, &v) != 0 ||
      !pthread_equal(pthread_self(), loop_thread)) {
    s->bad++;
    return;
  }
  intptr_t i = (intptr_t)v - 1;
  if (i < 0 || i >= BIG_N) {
    s->bad++;
    return;
  }
  s->seen[i]++;
  s->sum += (intptr_t)v;
}

static void test_many_futures_windowed(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(2);
  big_t s = {0};
  s.seen = calloc(BIG_N, 1);
  assert_non_null(s.seen);
  assert_int_equal(sem_init(&big_window_done, 0, 0), 0);

  intptr_t next = 0;
  for (; next < BIG_WINDOW; next++, s.inflight++)
    assert_int_equal(cf_bridge_run_in_executor(l.b, ex, big_job, (void *)next,
                                               NULL, big_cb, &s, NULL), 0);
  /* Let the first window run before the loop looks at the fd. A worker
   * completes each future (pushing its delivery) before it takes its next
   * job, so once every body of the window ran, all but at most the last
   * one of each worker are queued behind a single wake-up. */
  for (int i = 0; i < BIG_WINDOW; i++)
    assert_int_equal(sem_wait_guarded(&big_window_done), 0);

  long wakeups = 0;
  long completions = 0;
  int first = -1;
  while (s.delivered < BIG_N) {
    int n = loop_turn(&l);
    wakeups++;
    completions += n;
    if (first < 0)
      first = n;
    for (; s.inflight < BIG_WINDOW && next < BIG_N; next++, s.inflight++)
      assert_int_equal(cf_bridge_run_in_executor(l.b, ex, big_job,
                                                 (void *)next, NULL, big_cb,
                                                 &s, NULL), 0);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0); /* nothing left over */

  assert_int_equal(s.bad, 0);
  assert_int_equal(s.delivered, BIG_N);
  assert_int_equal(s.inflight, 0);
  assert_true(completions == BIG_N);
  assert_true(s.sum == (long long)BIG_N * (BIG_N + 1) / 2);
  for (int i = 0; i < BIG_N; i++)
    if (s.seen[i] != 1)
      fail_msg("future %d delivered %d times", i, s.seen[i]);
  assert_true(first >= BIG_WINDOW - 2); /* the window shared one wake-up */
  assert_true(wakeups < completions);   /* coalescing happened */
  print_message("# %d completions, %ld wake-ups\n", BIG_N, wakeups);

  sem_destroy(&big_window_done);
  free(s.seen);
  loop_close(&l);
}

/* ------------------------------------------------------------------ */
/* Bursty producers                                                   */
/* ------------------------------------------------------------------ */

#define BURST_PRODUCERS 3
#define BURSTS 25
#define BURST_SIZE 40

typedef struct burst_prod {
  pthread_t tid;
  cf_bridge_t *b;
  tally_t *tally;
  sem_t go;        /* posted by the loop: start the next burst */
  sem_t *finished; /* posted by the producer after its burst */
  atomic_int errors;
} burst_prod_t;

/* Each burst: BURST_SIZE standalone futures, delivered through the bridge
 * from this thread and completed here (every fifth one fails). */
static void *burst_main(void *arg) {
  burst_prod_t *p = arg;
  for (int burst = 0; burst < BURSTS; burst++) {
    while (sem_wait(&p->go) != 0) {
    }
    for (int k = 0; k < BURST_SIZE; k++) {
      cf_future_t *f;
      if (cf_future_create(&f) != 0) {
        atomic_fetch_add(&p->errors, 1);
        continue;
      }
      if (cf_bridge_then(p->b, f, tally_cb, p->tally, NULL) != 0)
        atomic_fetch_add(&p->errors, 1);
      int rc = k % 5 == 4 ? cf_future_set_exception(f, 3, "burst")
                          : cf_future_set_result(f, NULL, NULL);
      if (rc != 0)
        atomic_fetch_add(&p->errors, 1);
      cf_future_release(f);
    }
    if (p->finished != NULL)
      sem_post(p->finished);
  }
  return NULL;
}

static void bursts_start(burst_prod_t *ps, cf_bridge_t *b, tally_t *tl,
                         sem_t *finished) {
  for (int i = 0; i < BURST_PRODUCERS; i++) {
    ps[i].b = b;
    ps[i].tally = tl;
    ps[i].finished = finished;
    atomic_init(&ps[i].errors, 0);
    assert_int_equal(sem_init(&ps[i].go, 0, 0), 0);
    assert_int_equal(pthread_create(&ps[i].tid, NULL, burst_main, &ps[i]),
                     0);
  }
}

static void bursts_join(burst_prod_t *ps) {
  for (int i = 0; i < BURST_PRODUCERS; i++) {
    assert_int_equal(pthread_join(ps[i].tid, NULL), 0);
    assert_int_equal(atomic_load(&ps[i].errors), 0);
    sem_destroy(&ps[i].go);
  }
}

/* The loop stays away while a burst is produced, so the bridge is idle
 * between bursts; after the last completion of a burst one wake-up comes
 * and one dispatch delivers the whole burst. */
static void test_bursts_with_idle_gaps(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  tally_t tl = {0};
  sem_t finished;
  assert_int_equal(sem_init(&finished, 0, 0), 0);
  burst_prod_t ps[BURST_PRODUCERS];
  bursts_start(ps, l.b, &tl, &finished);

  const int per_burst = BURST_PRODUCERS * BURST_SIZE;
  for (int burst = 0; burst < BURSTS; burst++) {
    assert_int_equal(loop_poll(&l, 0), 0); /* idle */
    for (int i = 0; i < BURST_PRODUCERS; i++)
      sem_post(&ps[i].go);
    for (int i = 0; i < BURST_PRODUCERS; i++)
      assert_int_equal(sem_wait_guarded(&finished), 0);
    int before = tl.calls;
    assert_int_equal(loop_poll(&l, WAIT_MS), 1);
    assert_int_equal(cf_bridge_dispatch(l.b), per_burst);
    assert_int_equal(tl.calls - before, per_burst);
  }
  bursts_join(ps);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(tl.calls, BURSTS * per_burst);
  assert_int_equal(tl.failed, BURSTS * per_burst / 5);
  assert_int_equal(tl.ok, tl.calls - tl.failed);
  assert_int_equal(tl.off_loop, 0);
  sem_destroy(&finished);
  loop_close(&l);
}

/* The loop dispatches while the producers push: a wake-up is never lost
 * (a lost one would leave epoll_wait waiting with deliveries queued). */
static void test_bursts_while_dispatching(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  tally_t tl = {0};
  burst_prod_t ps[BURST_PRODUCERS];
  bursts_start(ps, l.b, &tl, NULL);
  const int per_burst = BURST_PRODUCERS * BURST_SIZE;
  for (int burst = 0; burst < BURSTS; burst++) {
    for (int i = 0; i < BURST_PRODUCERS; i++)
      sem_post(&ps[i].go);
    loop_run_until(&l, &tl.calls, (burst + 1) * per_burst);
    assert_int_equal(tl.calls, (burst + 1) * per_burst);
  }
  bursts_join(ps);
  /* At most a spurious wake-up is left. */
  if (loop_poll(&l, 0) == 1)
    assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(tl.calls, BURSTS * per_burst);
  assert_int_equal(tl.failed, BURSTS * per_burst / 5);
  assert_int_equal(tl.off_loop, 0);
  loop_close(&l);
}

/* ------------------------------------------------------------------ */
/* Cancellation matrix (SEMANTICS.md 4.2, resulting semantics)        */
/* ------------------------------------------------------------------ */

/* A 1-worker pool whose worker is held in a gated job. */
typedef struct held_pool {
  cf_executor_t *ex;
  gate_t gate;
} held_pool_t;

static void held_pool_open(held_pool_t *h) {
  h->ex = make_pool(1);
  gate_init(&h->gate);
  assert_int_equal(cf_executor_submit(h->ex, gated_job, &h->gate, NULL, NULL),
                   0);
  gate_wait_started(&h->gate);
}

/* Release the worker and join it: every job has finished afterwards. */
static void held_pool_close(held_pool_t *h) {
  gate_open(&h->gate, 1);
  assert_int_equal(cf_executor_destroy(h->ex), 0);
  gate_fini(&h->gate);
}

/* Queued x cancel from the loop: the pool future is cancelled at once,
 * the job never runs, the callback runs once at the next dispatch. */
static void test_cancel_queued_from_loop(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  held_pool_t h;
  held_pool_open(&h);
  probe_t p;
  probe_init(&p, NULL, 1, 0);
  rec_t r;
  rec_init(&r);
  cf_then_t *t = NULL;
  assert_int_equal(cf_bridge_run_in_executor(l.b, h.ex, probe_job, &p,
                                             probe_arg_free, rec_cb, &r, &t),
                   0);
  assert_non_null(t);
  assert_int_equal(cf_then_cancel(t), 1);
  assert_int_equal(cf_then_cancel(t), 0);
  assert_int_equal(r.calls, 0); /* not synchronously */
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_int_equal(r.state, CF_STATE_CANCELLED); /* W1 */
  assert_true(r.on_loop);

  held_pool_close(&h);
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.arg_freed), 1);
  /* The worker skipped it, as CPython's does. */
  assert_int_equal(cf_future_state(r.f), CF_STATE_CANCELLED_AND_NOTIFIED);
  assert_int_equal(cf_future_result(r.f, 0, NULL), CF_ECANCELLED);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(r.calls, 1);
  rec_fini(&r);
  loop_close(&l);
}

/* Queued x cancel from another thread: cancelled there, delivered as
 * cancelled on the loop thread at the next dispatch (W3: not before). */
static void test_cancel_queued_from_thread(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  held_pool_t h;
  held_pool_open(&h);
  probe_t p;
  probe_init(&p, NULL, 1, 0);
  cf_future_t *f;
  assert_int_equal(cf_executor_submit(h.ex, probe_job, &p, probe_arg_free,
                                      &f), 0);
  rec_t r;
  rec_init(&r);
  cf_then_t *t = NULL;
  assert_int_equal(cf_bridge_then(l.b, f, rec_cb, &r, &t), 0);
  assert_int_equal(cancel_in_thread(f), 1);
  assert_int_equal(cf_future_cancelled(f), 1);
  assert_int_equal(r.calls, 0);
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_true(r.on_loop);
  assert_ptr_equal(r.f, f);

  held_pool_close(&h);
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.arg_freed), 1);
  assert_int_equal(cf_future_state(f), CF_STATE_CANCELLED_AND_NOTIFIED);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(r.calls, 1);
  rec_fini(&r);
  cf_future_release(f);
  loop_close(&l);
}

/* Queued, its cancellation (shutdown with cancel_futures) already queued
 * for the loop, then cancelled from the loop: one callback, cancelled. */
static void test_cancel_queued_completion_pending(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  held_pool_t h;
  held_pool_open(&h);
  probe_t p;
  probe_init(&p, NULL, 1, 0);
  rec_t r;
  rec_init(&r);
  cf_then_t *t = NULL;
  assert_int_equal(cf_bridge_run_in_executor(l.b, h.ex, probe_job, &p,
                                             probe_arg_free, rec_cb, &r, &t),
                   0);
  assert_int_equal(cf_executor_shutdown(h.ex, false, true), 0);
  assert_int_equal(r.calls, 0); /* W3: not synchronous */
  assert_int_equal(loop_poll(&l, 0), 1); /* the completion is queued */
  assert_int_equal(cf_then_cancel(t), 1);
  assert_int_equal(cf_then_cancel(t), 0);
  assert_int_equal(r.calls, 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_true(cf_future_cancelled(r.f));

  held_pool_close(&h);
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.arg_freed), 1);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(r.calls, 1);
  rec_fini(&r);
  loop_close(&l);
}

/* Running x cancel from the loop: the pool future cannot be cancelled
 * (W2); the delivery is: the callback runs once with CF_ECANCELLED while
 * the job still runs; the job finishes, its result is dropped and its
 * destructor runs once when the last reference goes. */
static void test_cancel_running_from_loop(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  probe_t p;
  probe_init(&p, &g, 17, 0);
  rec_t r;
  rec_init(&r);
  cf_then_t *t = NULL;
  atomic_store(&values_freed, 0);
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &p,
                                             probe_arg_free, rec_cb, &r, &t),
                   0);
  gate_wait_started(&g);
  assert_int_equal(cf_then_cancel(t), 1);
  assert_int_equal(cf_then_cancel(t), 0);
  assert_int_equal(r.calls, 0);
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_int_equal(r.state, CF_STATE_RUNNING);
  assert_int_equal(cf_future_running(r.f), 1);

  gate_open(&g, 1);
  void *v = NULL;
  assert_int_equal(cf_future_result(r.f, CF_FOREVER, &v), 0);
  assert_int_equal(*(int *)v, 17); /* the concurrent future kept it */
  assert_int_equal(cf_future_state(r.f), CF_STATE_FINISHED);
  assert_int_equal(cf_executor_destroy(ex), 0);
  /* The late completion is dropped: no second callback, no wake-up. */
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(r.calls, 1);
  assert_int_equal(atomic_load(&p.ran), 1);
  assert_int_equal(atomic_load(&p.arg_freed), 1);
  assert_int_equal(atomic_load(&values_freed), 0); /* we hold r.f */
  rec_fini(&r);
  assert_int_equal(atomic_load(&values_freed), 1);
  gate_fini(&g);
  loop_close(&l);
}

/* Running x cancel from another thread: cancel() says 0, nothing is
 * delivered until the job finishes, then its value arrives. */
static void test_cancel_running_from_thread(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  probe_t p;
  probe_init(&p, &g, 23, 0);
  cf_future_t *f;
  atomic_store(&values_freed, 0);
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, probe_arg_free, &f),
                   0);
  rec_t r;
  rec_init(&r);
  assert_int_equal(cf_bridge_then(l.b, f, rec_cb, &r, NULL), 0);
  gate_wait_started(&g);
  assert_int_equal(cancel_in_thread(f), 0);
  assert_int_equal(cf_future_state(f), CF_STATE_RUNNING);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(r.calls, 0);

  gate_open(&g, 1);
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
  assert_int_equal(rec_int(&r), 23);
  assert_int_equal(r.state, CF_STATE_FINISHED);
  assert_true(r.on_loop);
  assert_int_equal(cf_executor_destroy(ex), 0);
  cf_future_release(f);
  assert_int_equal(atomic_load(&values_freed), 0);
  rec_fini(&r);
  assert_int_equal(atomic_load(&values_freed), 1);
  gate_fini(&g);
  loop_close(&l);
}

/* Running until its completion is queued, then cancelled from the loop
 * before dispatch: the queued result is dropped (CF_ECANCELLED), the
 * concurrent future keeps it (FINISHED), the value is freed once. */
static void test_cancel_running_completion_pending(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  probe_t p;
  probe_init(&p, &g, 29, 0);
  rec_t r;
  rec_init(&r);
  cf_then_t *t = NULL;
  atomic_store(&values_freed, 0);
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &p,
                                             probe_arg_free, rec_cb, &r, &t),
                   0);
  gate_wait_started(&g);
  gate_open(&g, 1);
  assert_int_equal(loop_poll(&l, WAIT_MS), 1); /* completion queued */
  assert_int_equal(r.calls, 0);
  assert_int_equal(cf_then_cancel(t), 1);
  assert_int_equal(cf_then_cancel(t), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_int_equal(r.state, CF_STATE_FINISHED);
  assert_int_equal(cf_future_cancelled(r.f), 0);
  void *v = NULL;
  assert_int_equal(cf_future_result(r.f, 0, &v), 0);
  assert_int_equal(*(int *)v, 29);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(r.calls, 1);
  assert_int_equal(atomic_load(&values_freed), 0);
  rec_fini(&r);
  assert_int_equal(atomic_load(&values_freed), 1);
  gate_fini(&g);
  loop_close(&l);
}

/* Already finished x cancel from the loop (asyncio test_wrap_future_cancel2):
 * the delivery is cancelled, the concurrent future keeps its result. */
static void test_cancel_done_from_loop(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  probe_t p;
  probe_init(&p, NULL, 31, 0);
  cf_future_t *f;
  atomic_store(&values_freed, 0);
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, probe_arg_free, &f),
                   0);
  assert_int_equal(cf_executor_destroy(ex), 0); /* f finished */
  assert_int_equal(cf_future_state(f), CF_STATE_FINISHED);
  rec_t r;
  rec_init(&r);
  cf_then_t *t = NULL;
  assert_int_equal(cf_bridge_then(l.b, f, rec_cb, &r, &t), 0);
  assert_int_equal(cf_then_cancel(t), 1);
  assert_int_equal(cf_then_cancel(t), 0);
  assert_int_equal(r.calls, 0);
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_int_equal(cf_future_state(f), CF_STATE_FINISHED);
  void *v = NULL;
  assert_int_equal(cf_future_result(f, 0, &v), 0);
  assert_int_equal(*(int *)v, 31);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  cf_future_release(f);
  assert_int_equal(atomic_load(&values_freed), 0);
  rec_fini(&r);
  assert_int_equal(atomic_load(&values_freed), 1);
  loop_close(&l);
}

/* Already failed x cancel from another thread: cancel() says 0 and the
 * failure is delivered as CF_EFAILED. */
static void test_cancel_done_from_thread(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  probe_t p;
  probe_init(&p, NULL, 37, 9);
  cf_future_t *f;
  assert_int_equal(cf_executor_submit(ex, probe_job, &p, probe_arg_free, &f),
                   0);
  assert_int_equal(cf_future_exception(f, CF_FOREVER, NULL, NULL), 0);
  rec_t r;
  rec_init(&r);
  assert_int_equal(cf_bridge_then(l.b, f, rec_cb, &r, NULL), 0);
  assert_int_equal(cancel_in_thread(f), 0);
  assert_int_equal(r.calls, 0);
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_EFAILED);
  assert_int_equal(r.code, 9);
  assert_int_equal(cf_future_state(f), CF_STATE_FINISHED);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&p.ran), 1);
  rec_fini(&r);
  cf_future_release(f);
  loop_close(&l);
}

/* Finished on a worker while the delivery waits in the queue, a cancel
 * from another thread (refused) and then one from the loop: the loop's
 * wins, one callback with CF_ECANCELLED, the failure stays on f. */
static void test_cancel_done_completion_pending(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  probe_t p;
  probe_init(&p, &g, 41, 11);
  rec_t r;
  rec_init(&r);
  cf_then_t *t = NULL;
  assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &p,
                                             probe_arg_free, rec_cb, &r, &t),
                   0);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_destroy(ex), 0); /* finished and queued */
  assert_int_equal(loop_poll(&l, 0), 1);
  assert_int_equal(r.calls, 0);
  assert_int_equal(cf_then_cancel(t), 1);
  assert_int_equal(cf_then_cancel(t), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_int_equal(r.state, CF_STATE_FINISHED);
  int code = 0;
  assert_int_equal(cf_future_exception(r.f, 0, &code, NULL), 0);
  assert_int_equal(code, 11);
  assert_int_equal(cancel_in_thread(r.f), 0);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(r.calls, 1);
  rec_fini(&r);
  gate_fini(&g);
  loop_close(&l);
}

/* Cancelling a delivery from inside callbacks: its own (already running:
 * 0) and a later one of the same batch (1, delivered cancelled, once). */
typedef struct cancel_ctx {
  cf_then_t *self;
  cf_then_t *other;
  int rc_self;
  int rc_other;
  int calls;
} cancel_ctx_t;

static void cancel_other_cb(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  cancel_ctx_t *c = data;
  c->calls++;
  c->rc_self = cf_then_cancel(c->self);
  c->rc_other = cf_then_cancel(c->other);
}

static void test_cancel_from_callback(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_future_t *fa, *fb;
  assert_int_equal(cf_future_create(&fa), 0);
  assert_int_equal(cf_future_create(&fb), 0);
  cancel_ctx_t c = {.rc_self = 99, .rc_other = 99};
  rec_t rb;
  rec_init(&rb);
  assert_int_equal(cf_bridge_then(l.b, fa, cancel_other_cb, &c, &c.self), 0);
  assert_int_equal(cf_bridge_then(l.b, fb, rec_cb, &rb, &c.other), 0);
  assert_int_equal(cf_future_set_result(fa, NULL, NULL), 0);
  assert_int_equal(cf_future_set_result(fb, (void *)&rb, NULL), 0);
  loop_turn(&l);
  if (rb.calls == 0) /* it may wait for the next dispatch */
    loop_turn(&l);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.rc_self, 0);
  assert_int_equal(c.rc_other, 1);
  assert_int_equal(rb.calls, 1);
  assert_int_equal(rb.status, CF_ECANCELLED);
  assert_int_equal(cf_future_state(fb), CF_STATE_FINISHED);
  assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(rb.calls, 1);
  rec_fini(&rb);
  cf_future_release(fa);
  cf_future_release(fb);
  loop_close(&l);
}

/* ------------------------------------------------------------------ */
/* call_threadsafe                                                    */
/* ------------------------------------------------------------------ */

#define CALL_PRODUCERS 4
#define CALLS_EACH 2000

typedef struct call_item {
  int producer;
  int seq;
} call_item_t;

static call_item_t call_items[CALL_PRODUCERS][CALLS_EACH];
static int call_ran[CALL_PRODUCERS][CALLS_EACH];
static int call_last[CALL_PRODUCERS];
static int call_out_of_order;
static int call_off_loop;
static int call_total;

static void record_call(void *arg) {
  call_item_t *it = arg;
  call_ran[it->producer][it->seq]++;
  if (it->seq != call_last[it->producer] + 1)
    call_out_of_order++;
  call_last[it->producer] = it->seq;
  if (!pthread_equal(pthread_self(), loop_thread))
    call_off_loop++;
  call_total++;
}

typedef struct call_prod {
  pthread_t tid;
  cf_bridge_t *b;
  int index;
  sem_t *go;
  atomic_int errors;
} call_prod_t;

static void *call_prod_main(void *arg) {
  call_prod_t *p = arg;
  while (sem_wait(p->go) != 0) {
  }
  for (int s = 0; s < CALLS_EACH; s++)
    if (cf_bridge_call_threadsafe(p->b, record_call,
                                  &call_items[p->index][s]) != 0)
      atomic_fetch_add(&p->errors, 1);
  return NULL;
}

static void test_call_threadsafe_many_threads(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  memset(call_ran, 0, sizeof(call_ran));
  call_out_of_order = call_off_loop = call_total = 0;
  sem_t go;
  assert_int_equal(sem_init(&go, 0, 0), 0);
  call_prod_t ps[CALL_PRODUCERS];
  for (int i = 0; i < CALL_PRODUCERS; i++) {
    call_last[i] = -1;
    for (int s = 0; s < CALLS_EACH; s++)
      call_items[i][s] = (call_item_t){i, s};
    ps[i].b = l.b;
    ps[i].index = i;
    ps[i].go = &go;
    atomic_init(&ps[i].errors, 0);
    assert_int_equal(pthread_create(&ps[i].tid, NULL, call_prod_main, &ps[i]),
                     0);
  }
  for (int i = 0; i < CALL_PRODUCERS; i++)
    sem_post(&go);
  loop_run_until(&l, &call_total, CALL_PRODUCERS * CALLS_EACH);
  for (int i = 0; i < CALL_PRODUCERS; i++) {
    assert_int_equal(pthread_join(ps[i].tid, NULL), 0);
    assert_int_equal(atomic_load(&ps[i].errors), 0);
  }
  if (loop_poll(&l, 0) == 1)
    assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(call_total, CALL_PRODUCERS * CALLS_EACH);
  assert_int_equal(call_out_of_order, 0);
  assert_int_equal(call_off_loop, 0);
  for (int i = 0; i < CALL_PRODUCERS; i++)
    for (int s = 0; s < CALLS_EACH; s++)
      assert_int_equal(call_ran[i][s], 1);
  sem_destroy(&go);
  loop_close(&l);
}

/* ------------------------------------------------------------------ */
/* Destroy                                                            */
/* ------------------------------------------------------------------ */

/* Destroyed with jobs running, jobs queued, a completion queued, a call
 * queued and a standalone future nobody completes. */
static void test_destroy_with_work_in_flight(void **state) {
  (void)state;
  const int fds_before = count_fds();
  loop_t l;
  loop_open(&l);
  cf_executor_t *ex = make_pool(2);
  gate_t g;
  gate_init(&g);
  atomic_store(&values_freed, 0);
  enum { JOBS = 4 };
  probe_t p[JOBS];
  rec_t r[JOBS];
  for (int i = 0; i < JOBS; i++) {
    probe_init(&p[i], &g, 100 + i, 0);
    rec_init(&r[i]);
    assert_int_equal(cf_bridge_run_in_executor(l.b, ex, probe_job, &p[i],
                                               probe_arg_free, rec_cb, &r[i],
                                               NULL), 0);
  }
  gate_wait_started(&g);
  gate_wait_started(&g); /* jobs 0 and 1 run, 2 and 3 are queued */
  cf_future_t *done, *never;
  assert_int_equal(cf_future_create(&done), 0);
  assert_int_equal(cf_future_create(&never), 0);
  rec_t rdone, rnever;
  rec_init(&rdone);
  rec_init(&rnever);
  assert_int_equal(cf_bridge_then(l.b, done, rec_cb, &rdone, NULL), 0);
  assert_int_equal(cf_bridge_then(l.b, never, rec_cb, &rnever, NULL), 0);
  assert_int_equal(cf_future_set_result(done, NULL, NULL), 0);
  int calls = 0;
  assert_int_equal(cf_bridge_call_threadsafe(l.b, count_call, &calls), 0);

  assert_int_equal(close(l.ep), 0);
  cf_bridge_destroy(l.b);
  /* Every callback ran, now, cancelled; the call ran. */
  for (int i = 0; i < JOBS; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].status, CF_ECANCELLED);
    assert_true(r[i].on_loop);
  }
  assert_int_equal(rdone.calls, 1);
  assert_int_equal(rdone.status, CF_ECANCELLED);
  assert_int_equal(rnever.calls, 1);
  assert_int_equal(rnever.status, CF_ECANCELLED);
  assert_int_equal(calls, 1);
  assert_int_equal(cf_future_state(r[0].f), CF_STATE_RUNNING);
  assert_int_equal(cf_future_state(r[1].f), CF_STATE_RUNNING);
  assert_int_equal(cf_future_cancelled(r[2].f), 1);
  assert_int_equal(cf_future_cancelled(r[3].f), 1);
  assert_int_equal(cf_future_cancelled(never), 1);
  assert_int_equal(cf_future_state(done), CF_STATE_FINISHED);
  /* Running jobs still hold the bridge: its fds stay open for them. */
  assert_int_equal(count_fds(), fds_before + BRIDGE_FDS);

  gate_open(&g, JOBS);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&p[0].ran), 1);
  assert_int_equal(atomic_load(&p[1].ran), 1);
  assert_int_equal(atomic_load(&p[2].ran), 0);
  assert_int_equal(atomic_load(&p[3].ran), 0);
  for (int i = 0; i < JOBS; i++)
    assert_int_equal(atomic_load(&p[i].arg_freed), 1);
  assert_int_equal(cf_future_state(r[0].f), CF_STATE_FINISHED);
  assert_int_equal(cf_future_state(r[1].f), CF_STATE_FINISHED);
  assert_int_equal(count_fds(), fds_before); /* closed after the last */
  assert_int_equal(atomic_load(&values_freed), 0); /* we hold r[i].f */
  for (int i = 0; i < JOBS; i++)
    rec_fini(&r[i]);
  assert_int_equal(atomic_load(&values_freed), 2);
  rec_fini(&rdone);
  rec_fini(&rnever);
  cf_future_release(done);
  cf_future_release(never);
  assert_int_equal(calls, 1);
  assert_int_equal(atomic_load(&values_freed), 2);
  gate_fini(&g);
}

/* Callbacks run by cf_bridge_destroy (a delivery and a queued call) try to
 * queue more: CF_ESHUTDOWN, and what they tried never runs. */
typedef struct shut_ctx {
  cf_bridge_t *b;
  cf_executor_t *ex;
  cf_future_t *done;
  probe_t *probe;
  tally_t late;
  int late_calls;
  int rc_then, rc_call, rc_run;
  int rc_then2, rc_call2;
  int ran;
} shut_ctx_t;

static void shut_then_cb(cf_future_t *f, int status, void *data) {
  (void)f;
  shut_ctx_t *c = data;
  c->ran++;
  if (status != CF_ECANCELLED)
    c->ran += 100;
  c->rc_then = cf_bridge_then(c->b, c->done, tally_cb, &c->late, NULL);
  c->rc_call = cf_bridge_call_threadsafe(c->b, count_call, &c->late_calls);
  c->rc_run = cf_bridge_run_in_executor(c->b, c->ex, probe_job, c->probe,
                                        probe_arg_free, tally_cb, &c->late,
                                        NULL);
}

static void shut_call(void *arg) {
  shut_ctx_t *c = arg;
  c->ran++;
  c->rc_then2 = cf_bridge_then(c->b, c->done, tally_cb, &c->late, NULL);
  c->rc_call2 = cf_bridge_call_threadsafe(c->b, count_call, &c->late_calls);
}

static void test_destroy_callbacks_get_eshutdown(void **state) {
  (void)state;
  const int fds_before = count_fds();
  loop_t l;
  loop_open(&l);
  held_pool_t h;
  held_pool_open(&h);
  probe_t p;
  probe_init(&p, NULL, 1, 0);
  shut_ctx_t c = {.b = l.b, .ex = h.ex, .probe = &p};
  c.rc_then = c.rc_call = c.rc_run = c.rc_then2 = c.rc_call2 = 99;
  assert_int_equal(cf_future_create(&c.done), 0);
  assert_int_equal(cf_future_set_result(c.done, NULL, NULL), 0);
  cf_future_t *pending;
  assert_int_equal(cf_future_create(&pending), 0);
  assert_int_equal(cf_bridge_then(l.b, pending, shut_then_cb, &c, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, shut_call, &c), 0);
  assert_int_equal(close(l.ep), 0);
  cf_bridge_destroy(l.b);

  assert_int_equal(c.ran, 2);
  assert_int_equal(c.rc_then, CF_ESHUTDOWN);
  assert_int_equal(c.rc_call, CF_ESHUTDOWN);
  assert_int_equal(c.rc_run, CF_ESHUTDOWN);
  assert_int_equal(c.rc_then2, CF_ESHUTDOWN);
  assert_int_equal(c.rc_call2, CF_ESHUTDOWN);
  held_pool_close(&h);
  /* The refused run_in_executor: refused before submitting, so the job
   * never ran and its argument stayed the caller's. */
  assert_int_equal(atomic_load(&p.ran), 0);
  assert_int_equal(atomic_load(&p.arg_freed), 0);
  assert_int_equal(c.late.calls, 0);
  assert_int_equal(c.late_calls, 0);
  assert_int_equal(cf_future_cancelled(pending), 1);
  cf_future_release(pending);
  cf_future_release(c.done);
  assert_int_equal(count_fds(), fds_before);
}

/* cf_bridge_destroy called from a delivery callback inside dispatch, with
 * more of the same batch behind it: each callback runs exactly once. */
typedef struct selfdestroy {
  cf_bridge_t *b;
  int calls;
} selfdestroy_t;

static void selfdestroy_cb(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  selfdestroy_t *s = data;
  s->calls++;
  cf_bridge_destroy(s->b);
}

static void test_destroy_from_callback(void **state) {
  (void)state;
  const int fds_before = count_fds();
  loop_t l;
  loop_open(&l);
  cf_future_t *fa, *fb, *fc;
  assert_int_equal(cf_future_create(&fa), 0);
  assert_int_equal(cf_future_create(&fb), 0);
  assert_int_equal(cf_future_create(&fc), 0);
  selfdestroy_t s = {.b = l.b};
  rec_t rb, rc;
  rec_init(&rb);
  rec_init(&rc);
  int calls = 0;
  assert_int_equal(cf_bridge_then(l.b, fa, selfdestroy_cb, &s, NULL), 0);
  assert_int_equal(cf_bridge_then(l.b, fb, rec_cb, &rb, NULL), 0);
  assert_int_equal(cf_bridge_then(l.b, fc, rec_cb, &rc, NULL), 0);
  assert_int_equal(cf_future_set_result(fa, NULL, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, count_call, &calls), 0);
  assert_int_equal(cf_future_set_result(fb, NULL, NULL), 0);
  /* fc is never completed. */
  assert_int_equal(loop_poll(&l, WAIT_MS), 1);
  assert_int_equal(close(l.ep), 0);
  assert_true(cf_bridge_dispatch(l.b) >= 1);
  /* l.b is gone now. */
  assert_int_equal(s.calls, 1);
  assert_int_equal(rb.calls, 1);
  assert_int_equal(rb.status, CF_ECANCELLED);
  assert_int_equal(rc.calls, 1);
  assert_int_equal(rc.status, CF_ECANCELLED);
  assert_int_equal(cf_future_cancelled(fc), 1);
  assert_int_equal(calls, 1);
  rec_fini(&rb);
  rec_fini(&rc);
  cf_future_release(fa);
  cf_future_release(fb);
  cf_future_release(fc);
  assert_int_equal(count_fds(), fds_before);
}

/* cf_bridge_destroy from a callback while a call_threadsafe of the same
 * batch is still waiting: "calls queued with call_threadsafe run now",
 * i.e. before destroy returns (after it, the bridge may be freed, so a
 * call that still used it, e.g. to get its CF_ESHUTDOWN, would touch freed
 * memory). The call here does not touch the bridge. */
typedef struct batch_destroy {
  cf_bridge_t *b;
  bool destroy_returned;
  int call_ran;
  int call_ran_after_destroy;
} batch_destroy_t;

static void batch_destroy_cb(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  batch_destroy_t *s = data;
  cf_bridge_destroy(s->b);
  s->destroy_returned = true;
}

static void batch_destroy_call(void *arg) {
  batch_destroy_t *s = arg;
  s->call_ran++;
  if (s->destroy_returned)
    s->call_ran_after_destroy++;
}

static void test_destroy_from_callback_runs_queued_calls(void **state) {
  (void)state;
  const int fds_before = count_fds();
  loop_t l;
  loop_open(&l);
  cf_future_t *f;
  assert_int_equal(cf_future_create(&f), 0);
  batch_destroy_t s = {.b = l.b};
  assert_int_equal(cf_bridge_then(l.b, f, batch_destroy_cb, &s, NULL), 0);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, batch_destroy_call, &s), 0);
  assert_int_equal(loop_poll(&l, WAIT_MS), 1);
  assert_int_equal(close(l.ep), 0);
  assert_true(cf_bridge_dispatch(l.b) >= 1);
  /* l.b is gone now. */
  cf_future_release(f);
  assert_int_equal(count_fds(), fds_before);
  assert_true(s.destroy_returned);
  assert_int_equal(s.call_ran, 1);
  assert_int_equal(s.call_ran_after_destroy, 0);
}

/* ------------------------------------------------------------------ */
/* Resources                                                          */
/* ------------------------------------------------------------------ */

/* n outstanding deliveries, half of them completed and queued: returns
 * the number of open fds with all of them in flight. */
static int fds_with_outstanding(loop_t *l, int n) {
  cf_future_t **fs = calloc((size_t)n, sizeof(*fs));
  assert_non_null(fs);
  tally_t tl = {0};
  for (int i = 0; i < n; i++) {
    assert_int_equal(cf_future_create(&fs[i]), 0);
    assert_int_equal(cf_bridge_then(l->b, fs[i], tally_cb, &tl, NULL), 0);
  }
  complete_in_thread(fs, n / 2);
  int fds = count_fds();
  assert_int_equal(tl.calls, 0);
  assert_int_equal(loop_turn(l), n / 2);
  complete_in_thread(fs + n / 2, n - n / 2);
  assert_int_equal(loop_turn(l), n - n / 2);
  assert_int_equal(tl.calls, n);
  assert_int_equal(tl.ok, n);
  for (int i = 0; i < n; i++)
    cf_future_release(fs[i]);
  free(fs);
  return fds;
}

static void test_fd_count_independent_of_futures(void **state) {
  (void)state;
  const int fds_before = count_fds();
  loop_t l;
  loop_open(&l);
  const int fds_open = count_fds();
  assert_int_equal(fds_open, fds_before + BRIDGE_FDS + 1); /* and epoll */
  assert_int_equal(fds_with_outstanding(&l, 10), fds_open);
  assert_int_equal(fds_with_outstanding(&l, 10000), fds_open);
  assert_int_equal(count_fds(), fds_open);
  loop_close(&l);
  assert_int_equal(count_fds(), fds_before);
}

#define DRAIN_JOBS 10000
#define DRAIN_WINDOW 4

/* Returns its index + 1. */
static int index_job(void *arg, cf_job_t *job) {
  cf_job_return(job, (void *)((intptr_t)arg + 1), NULL);
  return 0;
}

typedef struct drain {
  int delivered;
  int bad;
  unsigned char seen[DRAIN_JOBS];
} drain_t;

static void drain_cb(cf_future_t *f, int status, void *data) {
  drain_t *d = data;
  d->delivered++;
  void *v = NULL;
  intptr_t i = -1;
  if (status == 0 && cf_future_result(f, 0, &v) == 0)
    i = (intptr_t)v - 1;
  if (i < 0 || i >= DRAIN_JOBS ||
      !pthread_equal(pthread_self(), loop_thread)) {
    d->bad++;
    return;
  }
  d->seen[i]++;
}

/* poll(2) for the bridge fd: 1 readable, 0 timed out. */
static int poll_bridge(cf_bridge_t *b, int ms) {
  struct pollfd p = {.fd = cf_bridge_fd(b), .events = POLLIN};
  int n;
  do
    n = poll(&p, 1, ms);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Many completions from a 2-worker pool, the fd watched with poll(2):
 * every callback runs once, and dispatch leaves the fd empty (a pipe is
 * read until a short read, an eventfd once). With at most DRAIN_WINDOW
 * jobs in flight, no dispatch can deliver more, so the fd goes through at
 * least DRAIN_JOBS / DRAIN_WINDOW signal-and-drain rounds. The empty fd is
 * checked once the workers are joined, as only then no signal can still be
 * on its way: a worker may write its wake-up after the loop has taken its
 * delivery. */
static void test_wakeup_fd_drained(void **state) {
  (void)state;
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create(&b), 0);
  cf_executor_t *ex = make_pool(2);
  drain_t *d = calloc(1, sizeof(*d));
  assert_non_null(d);
  intptr_t next = 0;
  long wakeups = 0;
  while (d->delivered < DRAIN_JOBS) {
    for (; next < DRAIN_JOBS && next - d->delivered < DRAIN_WINDOW; next++)
      assert_int_equal(cf_bridge_run_in_executor(b, ex, index_job,
                                                 (void *)next, NULL, drain_cb,
                                                 d, NULL), 0);
    assert_int_equal(poll_bridge(b, WAIT_MS), 1);
    assert_true(cf_bridge_dispatch(b) >= 0);
    wakeups++;
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(cf_bridge_dispatch(b), 0);
  assert_int_equal(poll_bridge(b, 0), 0);

  assert_int_equal(d->bad, 0);
  assert_int_equal(d->delivered, DRAIN_JOBS);
  assert_true(wakeups >= DRAIN_JOBS / DRAIN_WINDOW);
  for (int i = 0; i < DRAIN_JOBS; i++)
    if (d->seen[i] != 1)
      fail_msg("job %d delivered %d times", i, d->seen[i]);
  print_message("# %d completions, %ld wake-ups\n", DRAIN_JOBS, wakeups);
  free(d);
  cf_bridge_destroy(b);
}

/* ------------------------------------------------------------------ */
/* Bridges with a wake-up function                                    */
/* ------------------------------------------------------------------ */

typedef struct wake_ctx {
  atomic_int calls;
  atomic_int dtor_calls;
  int efd; /* -1, or an eventfd the wake-up writes to */
  atomic_int write_errors;
} wake_ctx_t;

static void wake_ctx_init(wake_ctx_t *w, int efd) {
  atomic_init(&w->calls, 0);
  atomic_init(&w->dtor_calls, 0);
  atomic_init(&w->write_errors, 0);
  w->efd = efd;
}

static void wake_fn(void *data) {
  wake_ctx_t *w = data;
  atomic_fetch_add(&w->calls, 1);
  if (w->efd >= 0) {
    uint64_t one = 1;
    if (write(w->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
      atomic_fetch_add(&w->write_errors, 1);
  }
}

static void wake_dtor(void *data) {
  atomic_fetch_add(&((wake_ctx_t *)data)->dtor_calls, 1);
}

/* One wake-up per empty -> non-empty flip, whatever the number of
 * completions; data_dtor once, at the final free. */
static void test_wakeup_once_per_flip(void **state) {
  (void)state;
  wake_ctx_t w;
  wake_ctx_init(&w, -1);
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create_with_wakeup(&b, wake_fn, &w, wake_dtor),
                   0);
  enum { N = 1000 };
  cf_future_t *fs[N];
  tally_t tl = {0};
  for (int i = 0; i < N; i++) {
    assert_int_equal(cf_future_create(&fs[i]), 0);
    assert_int_equal(cf_bridge_then(b, fs[i], tally_cb, &tl, NULL), 0);
  }
  assert_int_equal(atomic_load(&w.calls), 0);
  complete_in_thread(fs, N);
  assert_int_equal(atomic_load(&w.calls), 1);
  assert_int_equal(tl.calls, 0);
  assert_int_equal(cf_bridge_dispatch(b), N);
  assert_int_equal(tl.calls, N);
  assert_int_equal(tl.off_loop, 0);
  assert_int_equal(atomic_load(&w.calls), 1);

  /* A dispatch with nothing queued flips nothing. */
  assert_int_equal(cf_bridge_dispatch(b), 0);
  assert_int_equal(atomic_load(&w.calls), 1);
  /* The next flip: a call and a delivery, one wake-up. */
  int calls = 0;
  assert_int_equal(cf_bridge_call_threadsafe(b, count_call, &calls), 0);
  assert_int_equal(atomic_load(&w.calls), 2);
  cf_future_t *late;
  assert_int_equal(cf_future_create(&late), 0);
  assert_int_equal(cf_future_set_result(late, NULL, NULL), 0);
  assert_int_equal(cf_bridge_then(b, late, tally_cb, &tl, NULL), 0);
  assert_int_equal(atomic_load(&w.calls), 2);
  assert_int_equal(cf_bridge_dispatch(b), 2);
  assert_int_equal(calls, 1);
  assert_int_equal(tl.calls, N + 1);

  for (int i = 0; i < N; i++)
    cf_future_release(fs[i]);
  cf_future_release(late);
  assert_int_equal(atomic_load(&w.dtor_calls), 0);
  cf_bridge_destroy(b);
  assert_int_equal(atomic_load(&w.dtor_calls), 1);
  assert_int_equal(atomic_load(&w.calls), 2);
}

/* Destroyed with a job running: data_dtor waits for its completion. */
static void test_wakeup_dtor_after_in_flight(void **state) {
  (void)state;
  wake_ctx_t w;
  wake_ctx_init(&w, -1);
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create_with_wakeup(&b, wake_fn, &w, wake_dtor),
                   0);
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  probe_t p;
  probe_init(&p, &g, 5, 0);
  rec_t r;
  rec_init(&r);
  atomic_store(&values_freed, 0);
  assert_int_equal(cf_bridge_run_in_executor(b, ex, probe_job, &p,
                                             probe_arg_free, rec_cb, &r,
                                             NULL), 0);
  gate_wait_started(&g);
  cf_bridge_destroy(b);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, CF_ECANCELLED);
  assert_int_equal(atomic_load(&w.dtor_calls), 0); /* still in flight */
  gate_open(&g, 1);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&w.dtor_calls), 1);
  assert_int_equal(atomic_load(&w.calls), 0); /* the push was refused */
  assert_int_equal(atomic_load(&p.ran), 1);
  rec_fini(&r);
  assert_int_equal(atomic_load(&values_freed), 1);
  gate_fini(&g);
}

/* A loop with its own wake-up object (an eventfd of ours in epoll). */
typedef struct chain_sum {
  int delivered;
  long long sum;
  int bad;
} chain_sum_t;

static void sum_cb(cf_future_t *f, int status, void *data) {
  chain_sum_t *s = data;
  void *v = NULL;
  s->delivered++;
  if (status != 0 || cf_future_result(f, 0, &v) != 0 ||
      !pthread_equal(pthread_self(), loop_thread))
    s->bad++;
  else
    s->sum += (intptr_t)v;
}

static void test_wakeup_drives_own_loop(void **state) {
  (void)state;
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  assert_true(efd >= 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  assert_true(ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
  assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev), 0);
  wake_ctx_t w;
  wake_ctx_init(&w, efd);
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create_with_wakeup(&b, wake_fn, &w, wake_dtor),
                   0);
  cf_executor_t *ex = make_pool(2);
  enum { N = 1000 };
  chain_sum_t s = {0};
  for (intptr_t i = 1; i <= N; i++)
    assert_int_equal(cf_bridge_run_in_executor(b, ex, echo_job, (void *)i,
                                               NULL, sum_cb, &s, NULL), 0);
  long turns = 0;
  while (s.delivered < N) {
    struct epoll_event got;
    int n;
    do
      n = epoll_wait(ep, &got, 1, WAIT_MS);
    while (n < 0 && errno == EINTR);
    assert_int_equal(n, 1);
    uint64_t cnt;
    assert_int_equal(read(efd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
    assert_true(cf_bridge_dispatch(b) >= 0);
    turns++;
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(s.bad, 0);
  assert_true(s.sum == (long long)N * (N + 1) / 2);
  assert_int_equal(atomic_load(&w.write_errors), 0);
  assert_true(atomic_load(&w.calls) <= N);
  assert_true(turns <= atomic_load(&w.calls));
  cf_bridge_destroy(b);
  assert_int_equal(atomic_load(&w.dtor_calls), 1);
  close(ep);
  close(efd);
}

/* ------------------------------------------------------------------ */
/* Spinning before the loop blocks: cf_bridge_prepare                  */
/* ------------------------------------------------------------------ */

/* Nothing in flight: 0. A queued call or a completed delivery: 1, and
 * then the fd is readable at once. A delivery in flight and not done: 0
 * once the spin gives up (here: spinning is off). */
static void test_prepare_reports_signalled_work(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  assert_int_equal(cf_bridge_prepare(l.b), 0);
  int calls = 0;
  assert_int_equal(cf_bridge_call_threadsafe(l.b, count_call, &calls), 0);
  assert_int_equal(cf_bridge_prepare(l.b), 1);
  assert_int_equal(loop_poll(&l, 0), 1);
  assert_int_equal(cf_bridge_dispatch(l.b), 1);
  assert_int_equal(calls, 1);

  assert_int_equal(cf_bridge_set_spin_us(l.b, 0), 0);
  cf_future_t *f;
  assert_int_equal(cf_future_create(&f), 0);
  tally_t tl = {0};
  assert_int_equal(cf_bridge_then(l.b, f, tally_cb, &tl, NULL), 0);
  assert_int_equal(cf_bridge_prepare(l.b), 0);
  assert_int_equal(loop_poll(&l, 0), 0);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), 0);
  assert_int_equal(cf_bridge_prepare(l.b), 1);
  assert_int_equal(loop_poll(&l, 0), 1);
  assert_int_equal(cf_bridge_dispatch(l.b), 1);
  assert_int_equal(tl.calls, 1);
  assert_int_equal(tl.ok, 1);
  assert_int_equal(cf_bridge_prepare(l.b), 0); /* delivered: none in flight */
  cf_future_release(f);
  loop_close(&l);
}

/* Call prepare until it returns non-zero (the job held at no gate must
 * finish: a hang guard of SEM_GUARD_S seconds turns a bug into a failure). */
static int prepare_until_signalled(cf_bridge_t *b) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc;
  do {
    rc = cf_bridge_prepare(b);
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while (rc == 0 && t.tv_sec - t0.tv_sec < SEM_GUARD_S);
  return rc;
}

/* A pool job held at a gate: prepare gives up (returns 0) rather than
 * spin for ever. Once the job is let go, prepare returns 1, caught by a
 * spin or not, and then the signal is out: the fd is readable (a loop that
 * polls now does not block), or the wake-up function has run, once. The
 * delivery runs once. */
static void check_prepare_waits_for_a_finishing_job(bool wakeup_function) {
  loop_t l = {0};
  wake_ctx_t w;
  wake_ctx_init(&w, -1);
  cf_bridge_t *b;
  if (wakeup_function) {
    assert_int_equal(cf_bridge_create_with_wakeup(&b, wake_fn, &w, NULL), 0);
  } else {
    loop_open(&l);
    b = l.b;
  }
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  probe_t p;
  probe_init(&p, &g, 7, 0);
  rec_t r;
  rec_init(&r);
  assert_int_equal(cf_bridge_run_in_executor(b, ex, probe_job, &p,
                                             probe_arg_free, rec_cb, &r,
                                             NULL), 0);
  gate_wait_started(&g);
  assert_int_equal(cf_bridge_prepare(b), 0);
  assert_int_equal(cf_bridge_prepare(b), 0);
  assert_int_equal(wakeup_function ? atomic_load(&w.calls) : loop_poll(&l, 0),
                   0);
  gate_open(&g, 1);
  assert_int_equal(prepare_until_signalled(b), 1);
  assert_int_equal(wakeup_function ? atomic_load(&w.calls) : loop_poll(&l, 0),
                   1);
  assert_int_equal(cf_bridge_dispatch(b), 1);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
  assert_int_equal(rec_int(&r), 7);
  assert_int_equal(cf_bridge_prepare(b), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  rec_fini(&r);
  gate_fini(&g);
  if (wakeup_function)
    cf_bridge_destroy(b);
  else
    loop_close(&l);
}

static void test_prepare_waits_for_a_finishing_job(void **state) {
  (void)state;
  check_prepare_waits_for_a_finishing_job(false);
}

static void test_prepare_with_wakeup_function(void **state) {
  (void)state;
  check_prepare_waits_for_a_finishing_job(true);
}

/* A wake-up function that holds its producer until the test lets go. */
typedef struct held_wakeup {
  sem_t entered, release;
  atomic_int calls;
} held_wakeup_t;

static void held_wakeup_fn(void *data) {
  held_wakeup_t *h = data;
  atomic_fetch_add(&h->calls, 1);
  sem_post(&h->entered);
  while (sem_wait(&h->release) != 0) {
  }
}

static void *set_result_main(void *arg) {
  (void)cf_future_set_result(arg, NULL, NULL);
  return NULL;
}

/* A producer caught between taking the wake-up and finishing it (here:
 * inside the wake-up function): prepare answers 0, since a loop that
 * polled now could find nothing; once the signal is out, 1. */
static void test_prepare_not_ready_while_signal_is_sent(void **state) {
  (void)state;
  held_wakeup_t h;
  sem_init(&h.entered, 0, 0);
  sem_init(&h.release, 0, 0);
  atomic_init(&h.calls, 0);
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create_with_wakeup(&b, held_wakeup_fn, &h, NULL),
                   0);
  cf_future_t *f;
  assert_int_equal(cf_future_create(&f), 0);
  tally_t tl = {0};
  assert_int_equal(cf_bridge_then(b, f, tally_cb, &tl, NULL), 0);
  pthread_t producer;
  assert_int_equal(pthread_create(&producer, NULL, set_result_main, f), 0);
  assert_int_equal(sem_wait_guarded(&h.entered), 0);
  assert_int_equal(cf_bridge_prepare(b), 0);
  assert_int_equal(cf_bridge_prepare(b), 0);
  sem_post(&h.release);
  assert_int_equal(pthread_join(producer, NULL), 0);
  assert_int_equal(cf_bridge_prepare(b), 1);
  assert_int_equal(atomic_load(&h.calls), 1);
  assert_int_equal(cf_bridge_dispatch(b), 1);
  assert_int_equal(tl.calls, 1);
  assert_int_equal(tl.ok, 1);
  cf_future_release(f);
  cf_bridge_destroy(b);
  sem_destroy(&h.entered);
  sem_destroy(&h.release);
}

/* ------------------------------------------------------------------ */
/* fork                                                               */
/* ------------------------------------------------------------------ */

static void test_fork_child_refuses(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  cf_future_t *f, *g;
  assert_int_equal(cf_future_create(&f), 0);
  assert_int_equal(cf_future_create(&g), 0);
  tally_t tl = {0};
  int calls = 0;
  assert_int_equal(cf_bridge_then(l.b, f, tally_cb, &tl, NULL), 0);
  assert_int_equal(cf_future_set_result(f, NULL, NULL), 0); /* queued */

  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int code = 0;
    if (cf_bridge_dispatch(l.b) != CF_EFORKED)
      code |= 1;
    if (cf_bridge_then(l.b, g, tally_cb, &tl, NULL) != CF_EFORKED)
      code |= 2;
    if (cf_bridge_call_threadsafe(l.b, count_call, &calls) != CF_EFORKED)
      code |= 4;
    if (tl.calls != 0 || calls != 0)
      code |= 8;
    if (cf_bridge_prepare(l.b) != CF_EFORKED)
      code |= 16;
    _exit(code);
  }
  int status = 0;
  pid_t w;
  do
    w = waitpid(pid, &status, 0);
  while (w < 0 && errno == EINTR);
  assert_int_equal(w, pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  /* The parent's bridge still works. */
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(tl.calls, 1);
  assert_int_equal(cf_bridge_then(l.b, g, tally_cb, &tl, NULL), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, count_call, &calls), 0);
  assert_int_equal(cf_future_set_result(g, NULL, NULL), 0);
  assert_int_equal(loop_turn(&l), 2);
  assert_int_equal(tl.calls, 2);
  assert_int_equal(tl.ok, 2);
  assert_int_equal(calls, 1);
  cf_future_release(f);
  cf_future_release(g);
  loop_close(&l);
}

/* ------------------------------------------------------------------ */
/* Re-entrancy                                                        */
/* ------------------------------------------------------------------ */

typedef struct nest {
  cf_bridge_t *b;
  cf_future_t *fb;
  char log[16];
  int pos;
  int nested1, nested2;
} nest_t;

static void nest_a(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  nest_t *n = data;
  n->log[n->pos++] = 'A';
  if (cf_future_set_result(n->fb, NULL, NULL) != 0)
    n->log[n->pos++] = '!';
  n->nested1 = cf_bridge_dispatch(n->b); /* runs C (taken first), then B */
  n->nested2 = cf_bridge_dispatch(n->b); /* nothing new */
  n->log[n->pos++] = 'a';
}

static void nest_b(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  nest_t *n = data;
  n->log[n->pos++] = 'B';
}

static void nest_c(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  nest_t *n = data;
  n->log[n->pos++] = 'C';
}

static void test_nested_dispatch(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  nest_t n = {.b = l.b, .nested1 = 99, .nested2 = 99};
  cf_future_t *fa, *fc;
  assert_int_equal(cf_future_create(&fa), 0);
  assert_int_equal(cf_future_create(&n.fb), 0);
  assert_int_equal(cf_future_create(&fc), 0);
  assert_int_equal(cf_bridge_then(l.b, fa, nest_a, &n, NULL), 0);
  assert_int_equal(cf_bridge_then(l.b, n.fb, nest_b, &n, NULL), 0);
  assert_int_equal(cf_bridge_then(l.b, fc, nest_c, &n, NULL), 0);
  assert_int_equal(cf_future_set_result(fa, NULL, NULL), 0);
  assert_int_equal(cf_future_set_result(fc, NULL, NULL), 0);
  /* A nested dispatch goes on with the outer batch, in arrival order: C
   * arrived before B, and the outer dispatch itself ran only A. */
  assert_int_equal(loop_turn(&l), 1);
  assert_int_equal(n.nested1, 2);
  assert_int_equal(n.nested2, 0);
  n.log[n.pos] = '\0';
  assert_string_equal(n.log, "ACBa");
  /* B's push after the outer drain may leave one spurious wake-up. */
  if (loop_poll(&l, 0) == 1)
    assert_int_equal(cf_bridge_dispatch(l.b), 0);
  assert_int_equal(loop_poll(&l, 0), 0);
  cf_future_release(fa);
  cf_future_release(n.fb);
  cf_future_release(fc);
  loop_close(&l);
}

/* A call queued by a callback runs in the same dispatch, after the batch
 * that queued it (never inside it), and leaves no wake-up behind: it found
 * the wake-up of its batch still pending, which the dispatch then drained. */
typedef struct requeue {
  cf_bridge_t *b;
  char log[8];
  int pos;
} requeue_t;

static void requeue_later(void *arg) {
  requeue_t *r = arg;
  r->log[r->pos++] = 'B';
}

static void requeue_first(void *arg) {
  requeue_t *r = arg;
  r->log[r->pos++] = 'A';
  assert_int_equal(cf_bridge_call_threadsafe(r->b, requeue_later, r), 0);
  r->log[r->pos++] = 'a';
}

static void requeue_second(void *arg) {
  requeue_t *r = arg;
  r->log[r->pos++] = 'C';
}

static void test_call_from_callback_runs_after_its_batch(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  requeue_t r = {.b = l.b};
  assert_int_equal(cf_bridge_call_threadsafe(l.b, requeue_first, &r), 0);
  assert_int_equal(cf_bridge_call_threadsafe(l.b, requeue_second, &r), 0);
  assert_int_equal(loop_turn(&l), 3);
  r.log[r.pos] = '\0';
  assert_string_equal(r.log, "AaCB");
  assert_int_equal(loop_poll(&l, 0), 0);
  loop_close(&l);
}

/* Chained work: each callback submits the next step from the loop. */
#define CHAIN_STEPS 200

typedef struct chain {
  cf_bridge_t *b;
  cf_executor_t *ex;
  cf_future_t *done; /* an already finished future */
  int steps;
  int last;
  int errors;
  int then_calls;
  int then_sync;
} chain_t;

static int inc_job(void *arg, cf_job_t *job) {
  cf_job_return(job, (void *)((intptr_t)arg + 1), NULL);
  return 0;
}

static void chain_then_cb(cf_future_t *f, int status, void *data) {
  (void)f;
  chain_t *c = data;
  if (status != 0)
    c->errors++;
  c->then_calls++;
}

static void chain_cb(cf_future_t *f, int status, void *data) {
  chain_t *c = data;
  void *v = NULL;
  c->steps++;
  if (status != 0 || cf_future_result(f, 0, &v) != 0 ||
      !pthread_equal(pthread_self(), loop_thread)) {
    c->errors++;
    return;
  }
  c->last = (int)(intptr_t)v;
  if (c->last >= CHAIN_STEPS)
    return;
  if (cf_bridge_run_in_executor(c->b, c->ex, inc_job, v, NULL, chain_cb, c,
                                NULL) != 0)
    c->errors++;
  int before = c->then_calls;
  if (cf_bridge_then(c->b, c->done, chain_then_cb, c, NULL) != 0)
    c->errors++;
  if (c->then_calls != before)
    c->then_sync++;
}

static void test_chained_work_from_callbacks(void **state) {
  (void)state;
  loop_t l;
  loop_open(&l);
  chain_t c = {.b = l.b, .ex = make_pool(2)};
  assert_int_equal(cf_future_create(&c.done), 0);
  assert_int_equal(cf_future_set_result(c.done, NULL, NULL), 0);
  assert_int_equal(cf_bridge_run_in_executor(l.b, c.ex, inc_job, (void *)0,
                                             NULL, chain_cb, &c, NULL), 0);
  while (c.last < CHAIN_STEPS && c.errors == 0)
    loop_turn(&l);
  /* The last then of the chain may still be queued. */
  while (c.then_calls < CHAIN_STEPS - 1)
    loop_turn(&l);
  assert_int_equal(c.errors, 0);
  assert_int_equal(c.steps, CHAIN_STEPS);
  assert_int_equal(c.last, CHAIN_STEPS);
  assert_int_equal(c.then_calls, CHAIN_STEPS - 1);
  assert_int_equal(c.then_sync, 0);
  assert_int_equal(cf_executor_destroy(c.ex), 0);
  cf_future_release(c.done);
  loop_close(&l);
}

/* A producer abandons a running future that a (cancelled) delivery
 * followed: once the delivery ran, the bridge holds the future no more,
 * so the producer's last release cancels it and its done callback runs
 * (the delivery and the future used to keep each other alive). */
static void count_done_cb(cf_future_t *f, void *data) {
  (void)f;
  (*(int *)data)++;
}

static void count_then_cb(cf_future_t *f, int status, void *data) {
  (void)f;
  int *seen = data;
  seen[0]++;
  seen[1] = status;
}

static void test_abandoned_running_future_is_freed(void **state) {
  (void)state;
  cf_bridge_t *b;
  cf_future_t *f;
  int done = 0, seen[2] = {0, 0};
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(cf_future_create(&f), 0);
  assert_int_equal(cf_future_add_done_callback(f, count_done_cb, &done), 0);
  assert_int_equal(cf_future_set_running_or_notify_cancel(f), 1);
  assert_int_equal(cf_bridge_then(b, f, count_then_cb, seen, NULL), 0);
  cf_bridge_destroy(b);
  assert_int_equal(seen[0], 1);
  assert_int_equal(seen[1], CF_ECANCELLED);
  assert_int_equal(done, 0);
  cf_future_release(f); /* the last reference: f is cancelled, then freed */
  assert_int_equal(done, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_bad_arguments, setup),
      cmocka_unit_test_setup(test_fd_of_wakeup_bridge_is_einval, setup),
      cmocka_unit_test_setup(test_run_in_executor_submit_error, setup),
      cmocka_unit_test_setup(test_status_value_failure_cancel, setup),
      cmocka_unit_test_setup(test_never_synchronous, setup),
      cmocka_unit_test_setup(test_arrival_order, setup),
      cmocka_unit_test_setup(test_several_thens_on_one_future, setup),
      cmocka_unit_test_setup(test_spurious_dispatch, setup),
      cmocka_unit_test_setup(test_many_futures_windowed, setup),
      cmocka_unit_test_setup(test_bursts_with_idle_gaps, setup),
      cmocka_unit_test_setup(test_bursts_while_dispatching, setup),
      cmocka_unit_test_setup(test_cancel_queued_from_loop, setup),
      cmocka_unit_test_setup(test_cancel_queued_from_thread, setup),
      cmocka_unit_test_setup(test_cancel_queued_completion_pending, setup),
      cmocka_unit_test_setup(test_cancel_running_from_loop, setup),
      cmocka_unit_test_setup(test_cancel_running_from_thread, setup),
      cmocka_unit_test_setup(test_cancel_running_completion_pending, setup),
      cmocka_unit_test_setup(test_cancel_done_from_loop, setup),
      cmocka_unit_test_setup(test_cancel_done_from_thread, setup),
      cmocka_unit_test_setup(test_cancel_done_completion_pending, setup),
      cmocka_unit_test_setup(test_cancel_from_callback, setup),
      cmocka_unit_test_setup(test_call_threadsafe_many_threads, setup),
      cmocka_unit_test_setup(test_destroy_with_work_in_flight, setup),
      cmocka_unit_test_setup(test_destroy_callbacks_get_eshutdown, setup),
      cmocka_unit_test_setup(test_destroy_from_callback, setup),
      cmocka_unit_test_setup(test_destroy_from_callback_runs_queued_calls,
                             setup),
      cmocka_unit_test_setup(test_fd_count_independent_of_futures, setup),
      cmocka_unit_test_setup(test_wakeup_fd_drained, setup),
      cmocka_unit_test_setup(test_wakeup_once_per_flip, setup),
      cmocka_unit_test_setup(test_wakeup_dtor_after_in_flight, setup),
      cmocka_unit_test_setup(test_wakeup_drives_own_loop, setup),
      cmocka_unit_test_setup(test_prepare_reports_signalled_work, setup),
      cmocka_unit_test_setup(test_prepare_waits_for_a_finishing_job, setup),
      cmocka_unit_test_setup(test_prepare_with_wakeup_function, setup),
      cmocka_unit_test_setup(test_prepare_not_ready_while_signal_is_sent,
                             setup),
      cmocka_unit_test_setup(test_fork_child_refuses, setup),
      cmocka_unit_test_setup(test_nested_dispatch, setup),
      cmocka_unit_test_setup(test_call_from_callback_runs_after_its_batch,
                             setup),
      cmocka_unit_test_setup(test_abandoned_running_future_is_freed, setup),
      cmocka_unit_test_setup(test_chained_work_from_callbacks, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
