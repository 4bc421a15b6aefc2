/*
 * peer_glib.c: GLib's GThreadPool (exclusive threads), fire-and-forget.
 *
 * GThreadPool has no futures: a job writes its value into its bench_job_t
 * and counts a latch down. Its native forms are used where they exist: a
 * GMainContext with g_main_context_invoke for the bridge, a GAsyncQueue
 * for completion order, g_cond_wait_until for a wait with a timeout, and
 * g_thread_pool_free(immediate) for a shutdown that drops the queue.
 * Without GLib (configure did not find it) the peer is not available.
 */
#include "bench.h"

#ifdef HAVE_GLIB

#include <glib.h>
#include <stdlib.h>

struct gpool {
  GThreadPool *tp;
  bool freed; /* by shutdown_cancel */
  GMutex mu;
  GCond cv;
};

static void run(gpointer data, gpointer user) {
  (void)user;
  bench_job_run(data);
  bench_job_finish(data);
}

static GThreadPool *new_pool(GFunc fn, gpointer user, int workers) {
  GError *err = NULL;
  GThreadPool *tp = g_thread_pool_new(fn, user, workers, TRUE, &err);
  if (tp == NULL)
    bench_die(err->message);
  return tp;
}

static void *create(int workers) {
  struct gpool *p = bench_xmalloc(sizeof(*p));
  p->tp = new_pool(run, p, workers);
  g_mutex_init(&p->mu);
  g_cond_init(&p->cv);
  return p;
}

static void destroy(void *pool) {
  struct gpool *p = pool;
  if (!p->freed)
    g_thread_pool_free(p->tp, FALSE, TRUE);
  g_mutex_clear(&p->mu);
  g_cond_clear(&p->cv);
  free(p);
}

static void push(GThreadPool *tp, gpointer data) {
  GError *err = NULL;
  if (!g_thread_pool_push(tp, data, &err))
    bench_die(err->message);
}

static void submit(void *pool, bench_job_t *j, void **fut) {
  (void)fut;
  push(((struct gpool *)pool)->tp, j);
}

static void shutdown_cancel(void *pool) {
  struct gpool *p = pool;
  g_thread_pool_free(p->tp, TRUE, FALSE);
  p->freed = true;
}

/* Wait on a GCond for a completion that never comes. */
static void wait_timeout(void *pool, double timeout) {
  struct gpool *p = pool;
  gint64 end = g_get_monotonic_time() + (gint64)(timeout * 1e6);
  g_mutex_lock(&p->mu);
  while (g_cond_wait_until(&p->cv, &p->mu, end))
    ;
  g_mutex_unlock(&p->mu);
}

/* ---- bridge: a GMainContext; workers deliver with g_main_context_invoke */

struct bridge {
  GMainContext *ctx;
  GThreadPool *tp;
  long *delivered;
};

static gboolean deliver(gpointer data) {
  bench_delivered(((struct bridge *)data)->delivered);
  return G_SOURCE_REMOVE;
}

static void bridge_run(gpointer data, gpointer user) {
  (void)data;
  struct bridge *b = user;
  g_main_context_invoke(b->ctx, deliver, b);
}

static void *bridge_open(long *delivered) {
  struct bridge *b = bench_xmalloc(sizeof(*b));
  b->ctx = g_main_context_new();
  b->delivered = delivered;
  b->tp = new_pool(bridge_run, b, bench_cfg.workers);
  return b;
}

static void bridge_submit(void *arg) {
  struct bridge *b = arg;
  push(b->tp, b);
}

static void bridge_run_once(void *arg) {
  g_main_context_iteration(((struct bridge *)arg)->ctx, TRUE);
}

static void bridge_close(void *arg) {
  struct bridge *b = arg;
  g_thread_pool_free(b->tp, FALSE, TRUE);
  while (g_main_context_iteration(b->ctx, FALSE))
    ;
  g_main_context_unref(b->ctx);
  free(b);
}

static const bench_bridge_ops_t bridge_ops = {bridge_open, bridge_submit,
                                              bridge_run_once, bridge_close};

/* ---- as_completed: jobs push themselves on a GAsyncQueue ---- */

static void run_and_queue(gpointer data, gpointer user) {
  bench_job_run(data);
  g_async_queue_push(user, data);
}

struct ac {
  GAsyncQueue *q;
  GThreadPool *tp;
};

static void *ac_open(void) {
  struct ac *a = bench_xmalloc(sizeof(*a));
  a->q = g_async_queue_new();
  a->tp = new_pool(run_and_queue, a->q, bench_cfg.workers);
  return a;
}

static void ac_run(void *ctx, bench_job_t *jobs, long n) {
  struct ac *a = ctx;
  for (long i = 0; i < n; i++)
    push(a->tp, &jobs[i]);
  for (long i = 0; i < n; i++)
    (void)g_async_queue_pop(a->q);
}

static void ac_close(void *ctx) {
  struct ac *a = ctx;
  g_thread_pool_free(a->tp, FALSE, TRUE);
  g_async_queue_unref(a->q);
  free(a);
}

static const bench_ac_ops_t ac_ops = {ac_open, ac_run, ac_close};

const bench_peer_t bench_peer_glib = {
    .impl = "glib",
    .form = "GThreadPool (exclusive), fire-and-forget: no futures",
    .available = true,
    .queue = true,
    .nested = true,
    .create = create,
    .destroy = destroy,
    .submit = submit,
    .shutdown_cancel = shutdown_cancel,
    .wait_timeout = wait_timeout,
    .bridge = &bridge_ops,
    .as_completed = &ac_ops,
};

#else /* !HAVE_GLIB */

const bench_peer_t bench_peer_glib = {
    .impl = "glib",
    .form = "GLib not found by configure",
};

#endif
