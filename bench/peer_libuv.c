/*
 * peer_libuv.c: libuv's uv_queue_work, completion on the loop.
 *
 * libuv has one thread pool per process, sized by UV_THREADPOOL_SIZE when
 * it first starts: create() sets it to the worker count before the first
 * uv call. Each job is a malloc'ed uv_work_t (as libuv users write it);
 * its after-work callback runs on the loop thread, inside uv_run, which is
 * the drain. No futures: jobs write their value into their bench_job_t.
 * uv_cancel cancels a queued request; a 1 ms uv_timer is the native wait
 * with a timeout; jobs cannot be submitted from a worker (uv_queue_work
 * belongs to the loop thread), so there is no fanout.
 */
#include "bench.h"

#ifdef HAVE_LIBUV

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

struct upool {
  uv_loop_t loop;
  uv_timer_t timer; /* wait_timeout */
  bool fired;
};

struct ureq {
  uv_work_t req; /* first: the request is the handle */
  bench_job_t *job;
  long *counter; /* as_completed and bridge: deliveries, else NULL */
};

static void work(uv_work_t *req) {
  struct ureq *u = (struct ureq *)req;
  if (u->job == NULL)
    return; /* the bridge's empty job */
  bench_job_run(u->job);
  bench_job_finish(u->job);
}

static void after_work(uv_work_t *req, int status) {
  struct ureq *u = (struct ureq *)req;
  if (status == UV_ECANCELED && u->job != NULL)
    u->job->outcome = BENCH_CANCELLED;
  if (u->counter != NULL)
    bench_delivered(u->counter);
  free(u);
}

static void queue(uv_loop_t *loop, bench_job_t *j, long *counter,
                  void **handle) {
  struct ureq *u = malloc(sizeof(*u));
  if (u == NULL)
    bench_die("out of memory");
  u->job = j;
  u->counter = counter;
  if (uv_queue_work(loop, &u->req, work, after_work) != 0)
    bench_die("uv_queue_work");
  if (handle != NULL)
    *handle = u;
}

static void *create(int workers) {
  static bool sized;
  if (!sized) {
    char n[16];
    snprintf(n, sizeof(n), "%d", workers);
    setenv("UV_THREADPOOL_SIZE", n, 1);
    sized = true;
  }
  struct upool *p = bench_xmalloc(sizeof(*p));
  if (uv_loop_init(&p->loop) != 0 || uv_timer_init(&p->loop, &p->timer) != 0)
    bench_die("uv_loop_init");
  p->timer.data = p;
  return p;
}

static void drain(void *pool) {
  uv_run(&((struct upool *)pool)->loop, UV_RUN_DEFAULT);
}

static void destroy(void *pool) {
  struct upool *p = pool;
  uv_close((uv_handle_t *)&p->timer, NULL);
  drain(p);
  if (uv_loop_close(&p->loop) != 0)
    bench_die("uv_loop_close");
  free(p);
}

static void submit(void *pool, bench_job_t *j, void **fut) {
  queue(&((struct upool *)pool)->loop, j, NULL, fut);
}

static int cancel(void *fut) {
  return uv_cancel((uv_req_t *)&((struct ureq *)fut)->req) == 0;
}

/* uv_stop: a timer that runs at the start of a UV_RUN_ONCE iteration
 * would otherwise leave the poll with no timeout to wake it. */
static void timer_fired(uv_timer_t *t) {
  ((struct upool *)t->data)->fired = true;
  uv_stop(t->loop);
}

/* A one-shot timer on the loop (libuv timers count in milliseconds). */
static void wait_timeout(void *pool, double timeout) {
  struct upool *p = pool;
  p->fired = false;
  uv_update_time(&p->loop);
  if (uv_timer_start(&p->timer, timer_fired,
                     (uint64_t)(timeout * 1e3 + 0.5), 0) != 0)
    bench_die("uv_timer_start");
  while (!p->fired)
    uv_run(&p->loop, UV_RUN_ONCE);
}

/* ---- bridge: the loop itself ---- */

struct bridge {
  struct upool *pool;
  long *delivered;
};

static void *bridge_open(long *delivered) {
  struct bridge *b = bench_xmalloc(sizeof(*b));
  b->pool = create(bench_cfg.workers);
  b->delivered = delivered;
  return b;
}

static void bridge_submit(void *arg) {
  struct bridge *b = arg;
  queue(&b->pool->loop, NULL, b->delivered, NULL);
}

static void bridge_run_once(void *arg) {
  uv_run(&((struct bridge *)arg)->pool->loop, UV_RUN_ONCE);
}

static void bridge_close(void *arg) {
  struct bridge *b = arg;
  destroy(b->pool);
  free(b);
}

static const bench_bridge_ops_t bridge_ops = {bridge_open, bridge_submit,
                                              bridge_run_once, bridge_close};

/* ---- as_completed: after-work callbacks come in completion order ---- */

static void *ac_open(void) { return create(bench_cfg.workers); }

static void ac_run(void *pool, bench_job_t *jobs, long n) {
  struct upool *p = pool;
  long seen = 0;
  for (long i = 0; i < n; i++)
    queue(&p->loop, &jobs[i], &seen, NULL);
  drain(p);
  if (seen != n)
    bench_die("libuv as_completed: completions missing");
}

static const bench_ac_ops_t ac_ops = {ac_open, ac_run, destroy};

const bench_peer_t bench_peer_libuv = {
    .impl = "libuv",
    .form = "uv_queue_work, completion on the loop, fire-and-forget: no "
            "futures",
    .available = true,
    .queue = true,
    .create = create,
    .destroy = destroy,
    .submit = submit,
    .drain = drain,
    .cancel = cancel,
    .wait_timeout = wait_timeout,
    .bridge = &bridge_ops,
    .as_completed = &ac_ops,
};

#else /* !HAVE_LIBUV */

const bench_peer_t bench_peer_libuv = {
    .impl = "libuv",
    .form = "libuv not found by configure",
};

#endif
