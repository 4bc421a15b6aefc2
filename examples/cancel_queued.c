/*
 * cancel_queued.c: cancel a job that is still waiting in the queue.
 *
 * The Python this mirrors:
 *
 *     with ThreadPoolExecutor(max_workers=1) as ex:
 *         busy = ex.submit(hold)            # keeps the only worker busy
 *         queued = ex.submit(write_report, "report.txt")
 *         busy.cancel()                     # False: it is running
 *         queued.cancel()                   # True: it never runs
 *
 * A running job cannot be cancelled; a queued one can, and then it never
 * runs. Its argument destructor still runs exactly once.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfutures.h"
#include "example_util.h"

/* Holds the only worker until the main thread opens the gate. */
static int hold_job(void *arg, cf_job_t *job) {
  (void)job;
  gate_enter(arg);
  return 0;
}

static atomic_int report_ran;
static atomic_int report_arg_freed;

/* The job we cancel. If it ever ran, report_ran would be 1. */
static int write_report_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  atomic_store(&report_ran, 1);
  return 0;
}

/* The argument destructor: runs once, whether the job ran or was dropped. */
static void free_report_arg(void *arg) {
  free(arg);
  atomic_fetch_add(&report_arg_freed, 1);
}

int main(void) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;

  cf_executor_t *ex = NULL;
  expect(cf_executor_create(&ex, &opts), 0, "cf_executor_create");

  struct gate gate;
  gate_init(&gate);

  /* Occupy the only worker, and wait until it is really inside the job. */
  cf_future_t *busy = NULL;
  expect(cf_executor_submit(ex, hold_job, &gate, NULL, &busy), 0,
         "submit hold");
  gate_wait_started(&gate);

  /* This one has to wait in the queue. On success the pool owns `name`
   * and frees it through free_report_arg. */
  char *name = malloc(sizeof "report.txt");
  if (name == NULL) {
    fprintf(stderr, "out of memory\n");
    return EXIT_FAILURE;
  }
  memcpy(name, "report.txt", sizeof "report.txt");
  cf_future_t *queued = NULL;
  int rc =
      cf_executor_submit(ex, write_report_job, name, free_report_arg, &queued);
  if (rc != 0) {
    free(name); /* a failed submit leaves the argument to the caller */
    expect(rc, 0, "submit write_report");
  }

  printf("busy:   %s\n", cf_state_name(cf_future_state(busy)));
  printf("queued: %s\n", cf_state_name(cf_future_state(queued)));

  expect(cf_future_cancel(busy), 0, "cancel(busy)");
  printf("cancel(busy)   -> 0 (it is running)\n");
  expect(cf_future_cancel(queued), 1, "cancel(queued)");
  printf("cancel(queued) -> 1\n");
  expect(cf_future_cancel(queued), 1, "cancel(queued) again");
  printf("cancel(queued) -> 1 again (already cancelled, nothing changes)\n");
  printf("queued: %s, cancelled() = %d, done() = %d\n",
         cf_state_name(cf_future_state(queued)), cf_future_cancelled(queued),
         cf_future_done(queued));

  rc = cf_future_result(queued, CF_FOREVER, NULL);
  expect(rc, CF_ECANCELLED, "result(queued)");
  printf("result(queued): %s (%s)\n", cf_err_name(rc), cf_strerror(rc));

  /* Let the busy job finish; destroy waits for the queue to drain, so if
   * the cancelled job were going to run, it would have run by now. */
  gate_open(&gate, 1);
  expect(cf_future_result(busy, CF_FOREVER, NULL), 0, "result(busy)");
  expect(cf_executor_destroy(ex), 0, "cf_executor_destroy");

  printf("after the pool drained: the cancelled job ran %d time(s), its "
         "argument was freed %d time(s)\n",
         atomic_load(&report_ran), atomic_load(&report_arg_freed));
  if (atomic_load(&report_ran) != 0 || atomic_load(&report_arg_freed) != 1) {
    fprintf(stderr, "unexpected: the cancelled job ran or leaked\n");
    return EXIT_FAILURE;
  }

  cf_future_release(busy);
  cf_future_release(queued);
  gate_fini(&gate);
  return EXIT_SUCCESS;
}
