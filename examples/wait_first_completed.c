/*
 * wait_first_completed.c: block until the first of several jobs is done.
 *
 * The Python this mirrors:
 *
 *     fs = [ex.submit(slow, "slow-1"), ex.submit(quick),
 *           ex.submit(slow, "slow-2")]
 *     done, not_done = wait(fs, return_when=FIRST_COMPLETED)
 *     done, not_done = wait(fs, timeout=0.05)        # a timeout is no error
 *     done, not_done = wait(fs)                      # ALL_COMPLETED
 *
 * cf_wait() fills two caller arrays instead of returning two sets. The
 * "slow" jobs wait on a semaphore that stands for a slow server, so what
 * finishes first is the same on every run.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfutures.h"
#include "example_util.h"

#define NJOBS 3

static sem_t server_reply; /* posted once per slow job allowed to finish */

static int slow_job(void *arg, cf_job_t *job) {
  wait_sem(&server_reply);
  cf_job_return(job, arg, NULL); /* arg is a static string */
  return 0;
}

/* Real (small) work: count the primes below 10000. */
static int quick_job(void *arg, cf_job_t *job) {
  (void)arg;
  long *count = malloc(sizeof *count);
  if (count == NULL)
    return cf_job_fail(job, ENOMEM, "out of memory");
  *count = 0;
  for (long n = 2; n < 10000; n++) {
    long d = 2;
    while (d * d <= n && n % d != 0)
      d++;
    if (d * d > n)
      (*count)++;
  }
  cf_job_return(job, count, free);
  return 0;
}

static const char *names[NJOBS] = {"slow-1", "quick", "slow-2"};
static cf_future_t *fs[NJOBS];

static const char *name_of(const cf_future_t *f) {
  for (int i = 0; i < NJOBS; i++)
    if (fs[i] == f)
      return names[i];
  return "?";
}

static void print_sets(const char *title, cf_future_t **done, size_t ndone,
                       cf_future_t **not_done, size_t nnot_done) {
  printf("%s\n  done:    ", title);
  for (size_t i = 0; i < ndone; i++)
    printf(" %s", name_of(done[i]));
  printf("\n  not done:");
  for (size_t i = 0; i < nnot_done; i++)
    printf(" %s", name_of(not_done[i]));
  printf("\n");
}

int main(void) {
  init_sem(&server_reply);

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = NJOBS;
  cf_executor_t *ex = NULL;
  expect(cf_executor_create(&ex, &opts), 0, "cf_executor_create");

  expect(cf_executor_submit(ex, slow_job, (void *)names[0], NULL, &fs[0]), 0,
         "submit slow-1");
  expect(cf_executor_submit(ex, quick_job, NULL, NULL, &fs[1]), 0,
         "submit quick");
  expect(cf_executor_submit(ex, slow_job, (void *)names[2], NULL, &fs[2]), 0,
         "submit slow-2");

  cf_future_t *done[NJOBS], *not_done[NJOBS];
  size_t ndone = 0, nnot_done = 0;

  /* 1. FIRST_COMPLETED: returns as soon as one future is done. */
  expect(cf_wait(fs, NJOBS, CF_FOREVER, CF_FIRST_COMPLETED, done, &ndone,
                 not_done, &nnot_done),
         0, "wait FIRST_COMPLETED");
  print_sets("wait(FIRST_COMPLETED):", done, ndone, not_done, nnot_done);
  if (ndone != 1 || done[0] != fs[1]) {
    fprintf(stderr, "unexpected: only the quick job can be done\n");
    return EXIT_FAILURE;
  }
  void *value = NULL;
  expect(cf_future_result(fs[1], 0, &value), 0, "result(quick)");
  printf("  quick found %ld primes below 10000\n", *(long *)value);

  /* 2. ALL_COMPLETED with a timeout: a timeout is not an error, the sets
   * just say what was done when it expired. */
  expect(cf_wait(fs, NJOBS, 0.05, CF_ALL_COMPLETED, done, &ndone, not_done,
                 &nnot_done),
         0, "wait ALL_COMPLETED, 0.05 s");
  print_sets("wait(ALL_COMPLETED, timeout=0.05):", done, ndone, not_done,
             nnot_done);

  /* 3. Let the slow jobs finish and wait for all of them. */
  post_sem(&server_reply);
  post_sem(&server_reply);
  expect(cf_wait(fs, NJOBS, CF_FOREVER, CF_ALL_COMPLETED, done, &ndone,
                 not_done, &nnot_done),
         0, "wait ALL_COMPLETED");
  print_sets("wait(ALL_COMPLETED):", done, ndone, not_done, nnot_done);
  if (ndone != NJOBS || nnot_done != 0) {
    fprintf(stderr, "unexpected: not everything is done\n");
    return EXIT_FAILURE;
  }

  expect(cf_executor_destroy(ex), 0, "cf_executor_destroy");
  for (int i = 0; i < NJOBS; i++)
    cf_future_release(fs[i]);
  sem_destroy(&server_reply);
  return EXIT_SUCCESS;
}
