/*
 * as_completed.c: handle results in the order jobs finish.
 *
 * The Python this mirrors:
 *
 *     fs = [ex.submit(fetch, url) for url in URLS]
 *     for f in as_completed(fs):
 *         print(f.result())
 *
 *     try:
 *         for f in as_completed([hung, cached], timeout=0.1):
 *             print(f.result())
 *     except TimeoutError as e:
 *         print(e)                  # "1 (of 2) futures unfinished"
 *
 * The iterator yields futures that are already done first, then the others
 * as they finish. Its timeout counts from cf_as_completed_create().
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfutures.h"
#include "example_util.h"

struct url {
  const char *name;
  long latency_ms; /* how long the pretend download takes */
};

/* A pretend download: sleep for the latency (standing for network I/O),
 * then return a heap string that the future frees. */
static int fetch_job(void *arg, cf_job_t *job) {
  const struct url *u = arg;
  struct timespec ts = {u->latency_ms / 1000,
                        (u->latency_ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  size_t size = strlen(u->name) + 32;
  char *page = malloc(size);
  if (page == NULL)
    return cf_job_fail(job, ENOMEM, "out of memory");
  snprintf(page, size, "%s after %ld ms", u->name, u->latency_ms);
  cf_job_return(job, page, free);
  return 0;
}

/* A server that never answers until the main thread lets it. */
static sem_t hung_server;

static int hung_job(void *arg, cf_job_t *job) {
  (void)arg;
  wait_sem(&hung_server);
  return cf_job_fail(job, ECONNRESET, "connection reset");
}

/* Print the outcome of a done future. */
static void print_outcome(cf_future_t *f) {
  void *value = NULL;
  int rc = cf_future_result(f, 0, &value);
  if (rc == 0) {
    printf("  %s\n", (const char *)value);
  } else if (rc == CF_EFAILED) {
    int code = 0;
    const char *message = NULL;
    expect(cf_future_exception(f, 0, &code, &message), 0, "exception");
    printf("  failed: code %d, %s\n", code, message ? message : "(none)");
  } else {
    printf("  %s\n", cf_strerror(rc));
  }
}

int main(void) {
  static const struct url urls[] = {
      {"http://a.example/", 60},
      {"http://b.example/", 10},
      {"http://c.example/", 30},
  };
  enum { NURLS = sizeof urls / sizeof urls[0] };

  init_sem(&hung_server);

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 4;
  cf_executor_t *ex = NULL;
  expect(cf_executor_create(&ex, &opts), 0, "cf_executor_create");

  /* 1. Three downloads plus one page that is already in a cache: a
   * standalone future completed before the iterator is created. */
  cf_future_t *fs[NURLS + 1];
  for (int i = 0; i < NURLS; i++)
    expect(cf_executor_submit(ex, fetch_job, (void *)&urls[i], NULL, &fs[i]), 0,
           "submit fetch");
  cf_future_t *cached = NULL;
  expect(cf_future_create(&cached), 0, "cf_future_create");
  expect(cf_future_set_result(cached, (void *)"http://cache.example/ (cached)",
                              NULL),
         0, "set_result");
  fs[NURLS] = cached;

  cf_as_completed_t *it = NULL;
  expect(cf_as_completed_create(fs, NURLS + 1, CF_FOREVER, &it), 0,
         "cf_as_completed_create");
  printf("as_completed (already done first, then completion order):\n");
  cf_future_t *f = NULL;
  int rc;
  while ((rc = cf_as_completed_next(it, &f)) == 0)
    print_outcome(f); /* f is borrowed from the iterator */
  expect(rc, CF_EOF, "cf_as_completed_next");
  cf_as_completed_destroy(it);

  /* 2. A timeout: one server hangs. The cached page still comes out, then
   * the iterator reports CF_ETIMEDOUT with one future left. */
  cf_future_t *hung = NULL;
  expect(cf_executor_submit(ex, hung_job, NULL, NULL, &hung), 0, "submit hung");
  cf_future_t *two[2] = {hung, cached};
  expect(cf_as_completed_create(two, 2, 0.1, &it), 0, "cf_as_completed_create");
  printf("as_completed with timeout=0.1:\n");
  while ((rc = cf_as_completed_next(it, &f)) == 0)
    print_outcome(f);
  expect(rc, CF_ETIMEDOUT, "cf_as_completed_next");
  int left = cf_as_completed_remaining(it);
  if (left < 0)
    expect(left, 0, "cf_as_completed_remaining");
  printf("  %s: %d (of 2) futures unfinished\n", cf_err_name(rc), left);
  cf_as_completed_destroy(it);

  /* Let the hung job end so the pool can shut down, and see how it ended. */
  post_sem(&hung_server);
  expect(cf_future_result(hung, CF_FOREVER, NULL), CF_EFAILED, "result(hung)");
  printf("the hung download, once released:\n");
  print_outcome(hung);

  expect(cf_executor_destroy(ex), 0, "cf_executor_destroy");
  for (int i = 0; i < NURLS + 1; i++)
    cf_future_release(fs[i]);
  cf_future_release(hung);
  sem_destroy(&hung_server);
  return EXIT_SUCCESS;
}
