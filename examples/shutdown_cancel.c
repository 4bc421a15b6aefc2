/*
 * shutdown_cancel.c: shut a pool down and cancel the jobs still queued.
 *
 * The Python this mirrors:
 *
 *     ex = ThreadPoolExecutor(max_workers=2)
 *     fs = [ex.submit(task, i) for i in range(6)]   # 2 run, 4 wait
 *     ex.shutdown(wait=False, cancel_futures=True)  # the 4 are cancelled
 *     ex.submit(task, 6)                            # RuntimeError
 *     wait(fs)                                      # all 6 are done
 *
 * Running jobs finish; queued ones are cancelled and never run. Unlike
 * CPython, a future cancelled by shutdown counts as done for cf_wait()
 * and cf_as_completed() at once.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfutures.h"
#include "example_util.h"

#define NTASKS 6
#define NWORKERS 2

/* The first NWORKERS tasks wait in it: they hold the workers. */
static struct gate gate;

struct task {
  int id;
  atomic_int ran;
};

static int task_job(void *arg, cf_job_t *job) {
  struct task *t = arg;
  (void)job;
  atomic_store(&t->ran, 1);
  if (t->id < NWORKERS)
    gate_enter(&gate);
  return 0;
}

static int ignored_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  return 0;
}

static void count_callback(cf_future_t *f, void *data) {
  (void)f;
  atomic_fetch_add((atomic_int *)data, 1);
}

int main(void) {
  gate_init(&gate);

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = NWORKERS;
  cf_executor_t *ex = NULL;
  expect(cf_executor_create(&ex, &opts), 0, "cf_executor_create");

  static struct task tasks[NTASKS];
  cf_future_t *fs[NTASKS];
  atomic_int callbacks = 0;
  for (int i = 0; i < NTASKS; i++) {
    tasks[i].id = i;
    atomic_init(&tasks[i].ran, 0);
    expect(cf_executor_submit(ex, task_job, &tasks[i], NULL, &fs[i]), 0,
           "submit");
    expect(cf_future_add_done_callback(fs[i], count_callback, &callbacks), 0,
           "add_done_callback");
  }

  /* Wait until both workers are inside tasks 0 and 1: tasks 2-5 are queued. */
  for (int i = 0; i < NWORKERS; i++)
    gate_wait_started(&gate);

  /* Stop accepting work and cancel what is queued. Without wait, this
   * returns at once; the callbacks of the cancelled futures have run in
   * this thread by then. */
  expect(cf_executor_shutdown(ex, false, true), 0, "shutdown");
  printf("after shutdown(wait=false, cancel_futures=true): "
         "%d done callbacks ran\n",
         atomic_load(&callbacks));
  for (int i = 0; i < NTASKS; i++)
    printf("  task %d: %s\n", i, cf_state_name(cf_future_state(fs[i])));

  int rc = cf_executor_submit(ex, ignored_job, NULL, NULL, NULL);
  expect(rc, CF_ESHUTDOWN, "submit after shutdown");
  printf("submit after shutdown: %s (%s)\n", cf_err_name(rc), cf_strerror(rc));

  /* Cancelled futures count as done: with the two running tasks released,
   * waiting for everything returns. */
  gate_open(&gate, NWORKERS);
  cf_future_t *done[NTASKS], *not_done[NTASKS];
  size_t ndone = 0, nnot_done = 0;
  expect(cf_wait(fs, NTASKS, CF_FOREVER, CF_ALL_COMPLETED, done, &ndone,
                 not_done, &nnot_done),
         0, "cf_wait");
  printf("wait(all): %zu done, %zu not done\n", ndone, nnot_done);

  /* destroy waits for the workers to exit. */
  expect(cf_executor_destroy(ex), 0, "cf_executor_destroy");

  int nran = 0, ncancelled = 0;
  for (int i = 0; i < NTASKS; i++) {
    int ran = atomic_load(&tasks[i].ran);
    int cancelled = cf_future_cancelled(fs[i]);
    printf("  task %d: %s, %s\n", i, ran ? "ran" : "never ran",
           cancelled ? "cancelled" : cf_state_name(cf_future_state(fs[i])));
    nran += ran;
    ncancelled += cancelled;
    cf_future_release(fs[i]);
  }
  printf("%d ran, %d cancelled, %d done callbacks in all\n", nran, ncancelled,
         atomic_load(&callbacks));
  if (nran != NWORKERS || ncancelled != NTASKS - NWORKERS ||
      atomic_load(&callbacks) != NTASKS) {
    fprintf(stderr, "unexpected counts\n");
    return EXIT_FAILURE;
  }
  gate_fini(&gate);
  return EXIT_SUCCESS;
}
