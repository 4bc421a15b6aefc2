/*
 * peer_cfutures.c: cfutures as a bench_peer_t.
 *
 * Jobs run through one trampoline that calls the bench body and returns
 * its value through the future; submit without a future handle (out NULL)
 * is cfutures' fire-and-forget form, used by throughput. The bridge is an
 * epoll loop with a cf_bridge; as_completed uses cf_as_completed.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cfutures.h"

static void check(int rc, const char *what) {
  if (rc != 0) {
    fprintf(stderr, "cfutures-bench: %s: %s\n", what, cf_strerror(rc));
    exit(1);
  }
}

static int trampoline(void *arg, cf_job_t *job) {
  bench_job_t *j = arg;
  bench_job_run(j);
  cf_job_return(job, (void *)j->value, NULL);
  bench_job_finish(j);
  return 0;
}

static void *create(int workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  opts.thread_name_prefix = "bench";
  cf_executor_t *ex;
  check(cf_executor_create(&ex, &opts), "cf_executor_create");
  return ex;
}

static void destroy(void *pool) {
  check(cf_executor_destroy(pool), "cf_executor_destroy");
}

static void submit(void *pool, bench_job_t *j, void **fut) {
  check(cf_executor_submit(pool, trampoline, j, NULL, (cf_future_t **)fut),
        "cf_executor_submit");
}

static int result(void *fut, double timeout, intptr_t *value) {
  void *v = NULL;
  int rc = cf_future_result(fut, isinf(timeout) ? CF_FOREVER : timeout, &v);
  *value = (intptr_t)v;
  return rc == 0 ? 0 : rc == CF_ETIMEDOUT ? 1 : -1;
}

static void release(void *fut) { cf_future_release(fut); }

static int cancel(void *fut) { return cf_future_cancel(fut); }

static int outcome(void *fut, bench_job_t *j) {
  return cf_future_cancelled(fut) ? BENCH_CANCELLED : j->outcome;
}

static void shutdown_cancel(void *pool) {
  check(cf_executor_shutdown(pool, false, true), "cf_executor_shutdown");
}

/* ---- bridge: an epoll loop with a cf_bridge ---- */

struct bridge {
  cf_executor_t *ex;
  cf_bridge_t *bridge;
  int ep;
  long *delivered;
};

static int empty_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  return 0;
}

static void on_delivered(cf_future_t *f, int status, void *data) {
  (void)f;
  check(status, "bridge delivery");
  bench_delivered(((struct bridge *)data)->delivered);
}

static void *bridge_open(long *delivered) {
  struct bridge *b = bench_xmalloc(sizeof(*b));
  b->ex = create(bench_cfg.workers);
  b->delivered = delivered;
  check(cf_bridge_create(&b->bridge), "cf_bridge_create");
  b->ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  if (b->ep < 0 ||
      epoll_ctl(b->ep, EPOLL_CTL_ADD, cf_bridge_fd(b->bridge), &ev) != 0)
    bench_die("epoll");
  return b;
}

static void bridge_submit(void *arg) {
  struct bridge *b = arg;
  check(cf_bridge_run_in_executor(b->bridge, b->ex, empty_job, NULL, NULL,
                                  on_delivered, b, NULL),
        "cf_bridge_run_in_executor");
}

static void bridge_run_once(void *arg) {
  struct bridge *b = arg;
  struct epoll_event ev;
  int ready = cf_bridge_prepare(b->bridge); /* spin before blocking */
  int n = epoll_wait(b->ep, &ev, 1, ready > 0 ? 0 : 10000);
  if (n < 0 || (n == 0 && ready <= 0))
    bench_die("bridge: no completion within 10 s");
  int rc = cf_bridge_dispatch(b->bridge);
  if (rc < 0)
    check(rc, "cf_bridge_dispatch");
}

static void bridge_close(void *arg) {
  struct bridge *b = arg;
  close(b->ep);
  cf_bridge_destroy(b->bridge);
  destroy(b->ex);
  free(b);
}

static const bench_bridge_ops_t bridge_ops = {bridge_open, bridge_submit,
                                              bridge_run_once, bridge_close};

/* ---- as_completed ---- */

static void *ac_open(void) { return create(bench_cfg.workers); }

static void ac_run(void *ex, bench_job_t *jobs, long n) {
  cf_future_t **fs = bench_xmalloc((size_t)n * sizeof(*fs));
  for (long i = 0; i < n; i++)
    submit(ex, &jobs[i], (void **)&fs[i]);
  cf_as_completed_t *it;
  check(cf_as_completed_create(fs, (size_t)n, CF_FOREVER, &it),
        "cf_as_completed_create");
  cf_future_t *f;
  long seen = 0;
  while (cf_as_completed_next(it, &f) == 0)
    seen++;
  if (seen != n)
    bench_die("as_completed: futures missing");
  cf_as_completed_destroy(it);
  for (long i = 0; i < n; i++)
    cf_future_release(fs[i]);
  free(fs);
}

static const bench_ac_ops_t ac_ops = {ac_open, ac_run, destroy};

const bench_peer_t bench_peer_cfutures = {
    .impl = "cfutures",
    .form = "cf_executor, futures",
    .available = true,
    .queue = true,
    .futures = true,
    .nested = true,
    .helps = true,
    .create = create,
    .destroy = destroy,
    .submit = submit,
    .result = result,
    .release = release,
    .cancel = cancel,
    .outcome = outcome,
    .shutdown_cancel = shutdown_cancel,
    .bridge = &bridge_ops,
    .as_completed = &ac_ops,
};
