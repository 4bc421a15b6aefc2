/*
 * submit_result.c: submit jobs to a pool and collect their results.
 *
 * The Python this mirrors:
 *
 *     with ThreadPoolExecutor(max_workers=2) as ex:
 *         f = ex.submit(slow_sum, 1000)
 *         try:
 *             f.result(timeout=0.05)
 *         except TimeoutError:
 *             print("not yet")
 *         print(f.result())
 *         g = ex.submit(open_config, "/nonexistent/cfutures.conf")
 *         print(g.exception())
 *
 * Shows: a job that returns a heap value with its destructor, a result()
 * whose timeout expires, a result() that succeeds, and a job that fails
 * with a code and a message (cf_job_fail) read back with
 * cf_future_exception().
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

static void print_repr(const char *label, const cf_future_t *f) {
  char buf[128];
  int n = cf_future_repr(f, buf, sizeof buf); /* truncates, like snprintf */
  if (n < 0)
    expect(n, 0, "cf_future_repr");
  printf("%s: %s\n", label, buf);
}

/* sum_job's argument. The job waits for `go` before it works: the
 * semaphore stands for something slow, such as a reply from a server. */
struct sum_args {
  sem_t go;
  long n;
};

/* Sum 1..n into a heap value that the future owns: `free` runs once, when
 * the future's last reference is released. */
static int sum_job(void *arg, cf_job_t *job) {
  struct sum_args *a = arg;
  wait_sem(&a->go);
  long *total = malloc(sizeof *total);
  if (total == NULL)
    return cf_job_fail(job, ENOMEM, "out of memory");
  *total = 0;
  for (long i = 1; i <= a->n; i++)
    *total += i;
  cf_job_return(job, total, free);
  return 0;
}

/* A job that fails: its code (here an errno value) and message are kept by
 * the future, like the exception a Python job raises. */
static int open_config_job(void *arg, cf_job_t *job) {
  const char *path = arg;
  FILE *fp = fopen(path, "r");
  if (fp == NULL)
    return cf_job_fail(job, errno, "cannot open %s", path);
  fclose(fp);
  return 0;
}

int main(void) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 2;
  opts.thread_name_prefix = "example";

  cf_executor_t *ex = NULL;
  expect(cf_executor_create(&ex, &opts), 0, "cf_executor_create");

  /* 1. A result() that times out, then one that succeeds. */
  struct sum_args args = {.n = 1000};
  init_sem(&args.go);
  cf_future_t *f = NULL;
  expect(cf_executor_submit(ex, sum_job, &args, NULL, &f), 0, "submit sum");

  void *value = NULL;
  int rc = cf_future_result(f, 0.05, &value);
  expect(rc, CF_ETIMEDOUT, "result(f, 0.05)");
  printf("result(timeout=0.05): %s (%s)\n", cf_err_name(rc), cf_strerror(rc));
  print_repr("  while waiting", f);

  post_sem(&args.go);
  expect(cf_future_result(f, CF_FOREVER, &value), 0, "result(f, forever)");
  printf("result(): sum of 1..%ld = %ld\n", args.n, *(long *)value);
  print_repr("  after", f);

  /* 2. A job that fails with a code and a message. */
  cf_future_t *g = NULL;
  expect(cf_executor_submit(ex, open_config_job,
                            (void *)"/nonexistent/cfutures.conf", NULL, &g),
         0, "submit open_config");
  rc = cf_future_result(g, CF_FOREVER, NULL);
  expect(rc, CF_EFAILED, "result(g)");
  printf("result(): %s (%s)\n", cf_err_name(rc), cf_strerror(rc));

  int code = 0;
  const char *message = NULL;
  expect(cf_future_exception(g, CF_FOREVER, &code, &message), 0,
         "exception(g)");
  printf("exception(): code %d, message \"%s\"\n", code,
         message != NULL ? message : "(none)");
  print_repr("  after", g);

  /* A job that succeeded has no failure: code 0, no message. */
  expect(cf_future_exception(f, 0, &code, &message), 0, "exception(f)");
  printf("exception() of the sum: code %d, message %s\n", code,
         message != NULL ? message : "(none)");

  /* Futures stay valid after the pool is gone; release them when done.
   * Releasing f frees its value (the long) through `free`. */
  expect(cf_executor_destroy(ex), 0, "cf_executor_destroy");
  cf_future_release(f);
  cf_future_release(g);
  sem_destroy(&args.go);
  return EXIT_SUCCESS;
}
