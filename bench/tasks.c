/*
 * tasks.c: the coroutine tasks of cfutures/loop.h.
 *
 *   switch_ns       the raw stackful switch (one direction), compiled in
 *                   from executor/coro.c
 *   yield_ns        a task yielding to the loop with cf_sleep(0)
 *   spawn_join_ns   create an empty task and run the loop until it is done
 *   bytes_per_task  RSS per task suspended in a sleep, with cfg.tasks tasks
 *
 * Only cfutures has coroutines among the C peers; python runs asyncio.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

#include "cfutures.h"
#include "cfutures/loop.h"
#include "coro.h" /* internal: the raw switch */

static cf__coro_t bench_main, bench_coro;

static void switch_back_forever(void *arg) {
  (void)arg;
  for (;;)
    cf__coro_switch(&bench_coro, &bench_main);
}

static int yield_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  long n = *(long *)arg;
  for (long i = 0; i < n; i++)
    if (cf_sleep(0) != 0)
      return CF_ECANCELLED;
  return 0;
}

static int empty_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

static int sleeping_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  return cf_sleep(*(double *)arg);
}

static cf_loop_t *new_loop(void) {
  cf_loop_t *loop;
  if (cf_loop_create(&loop, NULL) != 0)
    bench_die("cf_loop_create");
  return loop;
}

/* Run a task to completion on loop. */
static void run_task(cf_loop_t *loop, cf_coro_fn fn, void *arg) {
  cf_lfuture_t *t;
  if (cf_task_create(loop, fn, arg, &t) != 0 ||
      cf_loop_run_until_complete(loop, t) != 0)
    bench_die("task failed");
  cf_lfuture_release(t);
}

void bench_tasks(const bench_peer_t *p) {
  const char *w = "tasks";
  if (p != &bench_peer_cfutures) {
    bench_skip(w, p->impl, "no coroutines");
    return;
  }
  long switches = bench_cfg.switches, tasks = bench_cfg.tasks;
  double sw[BENCH_MAX_REPS], yield[BENCH_MAX_REPS], spawn[BENCH_MAX_REPS],
      mem[BENCH_MAX_REPS];
  enum { STACK = 64 * 1024 };
  void *stack = bench_xmalloc(STACK);
  cf__coro_init_main(&bench_main);
  if (cf__coro_init(&bench_coro, stack, STACK, switch_back_forever, NULL) !=
      0)
    bench_die("cf__coro_init");
  bench_peer_t tasks_peer = *p; /* the block's note names the loop */
  tasks_peer.form = "cf_loop tasks: stackful coroutines";
  bench_block_begin(w, &tasks_peer);
  for (int r = 0; r < bench_cfg.reps; r++) {
    double t0 = bench_now();
    for (long i = 0; i < switches; i++)
      cf__coro_switch(&bench_main, &bench_coro);
    sw[r] = (bench_now() - t0) / (2.0 * (double)switches) * 1e9;

    cf_loop_t *loop = new_loop();
    long n = switches / 100;
    t0 = bench_now();
    run_task(loop, yield_task, &n);
    yield[r] = (bench_now() - t0) / (double)n * 1e9;

    long m = switches / 100;
    t0 = bench_now();
    for (long i = 0; i < m; i++)
      run_task(loop, empty_task, NULL);
    spawn[r] = (bench_now() - t0) / (double)m * 1e9;

    /* Tasks suspended in a sleep: step them all once, then measure. */
    double forever = 3600;
    bench_trim();
    double before = bench_rss();
    for (long i = 0; i < tasks; i++)
      if (cf_task_create(loop, sleeping_task, &forever, NULL) != 0)
        bench_die("cf_task_create");
    cf_loop_run_once(loop, 0);
    mem[r] = (bench_rss() - before) / (double)tasks;
    cf_loop_close(loop); /* cancels them all */
  }
  cf__coro_fini(&bench_coro);
  free(stack);
  bench_report(w, p->impl, "switch_ns", sw, bench_cfg.reps);
  bench_report(w, p->impl, "yield_ns", yield, bench_cfg.reps);
  bench_report(w, p->impl, "spawn_join_ns", spawn, bench_cfg.reps);
  bench_report(w, p->impl, "bytes_per_task", mem, bench_cfg.reps);
  bench_block_end();
}
