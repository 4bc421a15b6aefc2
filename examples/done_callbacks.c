/*
 * done_callbacks.c: where and when done callbacks run.
 *
 * The Python this mirrors:
 *
 *     f.add_done_callback(fn)   # runs later, in the thread that completes f
 *     queued.cancel()           # its callbacks run now, in this thread
 *     f.add_done_callback(fn)   # f already done: runs now, in this thread
 *
 * Callbacks run exactly once, in registration order, with no library lock
 * held, so a callback may call the library, even on its own future.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfutures.h"
#include "example_util.h"

static pthread_t main_thread;

static const char *which_thread(void) {
  return pthread_equal(pthread_self(), main_thread) ? "main thread"
                                                    : "worker thread";
}

/* A done callback: f is borrowed for the call. It reads the outcome with
 * a zero timeout, which never blocks because f is done. */
static void on_done(cf_future_t *f, void *data) {
  const char *label = data;
  void *value = NULL;
  int rc = cf_future_result(f, 0, &value);
  if (rc == 0)
    printf("  callback %s (in the %s): returned \"%s\"\n", label,
           which_thread(), value != NULL ? (const char *)value : "(null)");
  else
    printf("  callback %s (in the %s): %s\n", label, which_thread(),
           cf_strerror(rc));
}

/* Holds the only worker until the main thread opens the gate. */
static int hold_job(void *arg, cf_job_t *job) {
  gate_enter(arg);
  cf_job_return(job, (void *)"work done", NULL); /* static: no destructor */
  return 0;
}

static int never_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  return 0;
}

int main(void) {
  main_thread = pthread_self();

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;
  cf_executor_t *ex = NULL;
  expect(cf_executor_create(&ex, &opts), 0, "cf_executor_create");

  struct gate gate;
  gate_init(&gate);

  /* `work` keeps the only worker busy; `queued` waits behind it. */
  cf_future_t *work = NULL, *queued = NULL;
  expect(cf_executor_submit(ex, hold_job, &gate, NULL, &work), 0,
         "submit work");
  gate_wait_started(&gate);
  expect(cf_executor_submit(ex, never_job, NULL, NULL, &queued), 0,
         "submit queued");

  printf("registering callbacks A.1 and A.2 on the running job, "
         "B.1 on the queued one\n");
  expect(cf_future_add_done_callback(work, on_done, (void *)"A.1"), 0,
         "add A.1");
  expect(cf_future_add_done_callback(work, on_done, (void *)"A.2"), 0,
         "add A.2");
  expect(cf_future_add_done_callback(queued, on_done, (void *)"B.1"), 0,
         "add B.1");

  /* Cancelling runs the queued future's callbacks here, before returning. */
  printf("cancel(queued):\n");
  expect(cf_future_cancel(queued), 1, "cancel(queued)");

  /* Let the job finish. Its callbacks run in the worker, after result()
   * waiters are woken, so wait for the worker itself: shutdown(wait) returns
   * once every worker has exited, so A.1 and A.2 have run by then. */
  printf("releasing the job and shutting down:\n");
  gate_open(&gate, 1);
  expect(cf_executor_shutdown(ex, true, false), 0, "shutdown");

  /* On a done future, the callback runs at once, in the caller. */
  printf("registering A.3 on the finished job:\n");
  expect(cf_future_add_done_callback(work, on_done, (void *)"A.3"), 0,
         "add A.3");

  /* A standalone future is a promise: whoever completes it runs its
   * callbacks, here the main thread inside cf_future_set_result(). */
  cf_future_t *promise = NULL;
  expect(cf_future_create(&promise), 0, "cf_future_create");
  expect(cf_future_add_done_callback(promise, on_done, (void *)"P.1"), 0,
         "add P.1");
  printf("set_result(promise):\n");
  expect(cf_future_set_result(promise, (void *)"hello", NULL), 0, "set_result");
  /* A second completion is refused; the future keeps its first value. */
  expect(cf_future_set_result(promise, (void *)"again", NULL),
         CF_EINVALID_STATE, "set_result again");
  printf("set_result(promise) again: %s\n", cf_err_name(CF_EINVALID_STATE));

  cf_future_release(promise);
  cf_future_release(work);
  cf_future_release(queued);
  expect(cf_executor_destroy(ex), 0, "cf_executor_destroy");
  gate_fini(&gate);
  return EXIT_SUCCESS;
}
