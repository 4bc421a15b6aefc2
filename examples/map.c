/*
 * map.c: Executor.map with buffersize, and a position that fails.
 *
 * The Python this mirrors (CPython 3.14 buffersize, and the "each position
 * yields its own result or error" behaviour of CPython's main branch):
 *
 *     for r in ex.map(square, [1, 2, 3, 4, 5, 6], buffersize=2):
 *         print(r)                  # position 3 raises, the rest still come
 *
 *     for r in ex.map(square, itertools.count(1), buffersize=4):
 *         if r > 20: break          # an endless input works with buffersize
 *
 * The input is a function that hands out one argument per call; each
 * result comes as the done future of its position.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfutures.h"
#include "example_util.h"

/* The job: square a small integer carried in the pointer itself, so there
 * is nothing to allocate or free. 3 is refused, to show a failing job. */
static int square_job(void *arg, cf_job_t *job) {
  intptr_t n = (intptr_t)arg;
  if (n == 3)
    return cf_job_fail(job, EDOM, "square(%ld): 3 is not allowed", (long)n);
  cf_job_return(job, (void *)(n * n), NULL);
  return 0;
}

/* An input over an array; `pulled` counts the calls that gave an item. */
struct array_input {
  const intptr_t *items;
  size_t n, next;
  int pulled;
};

static int next_from_array(void *source, void **arg) {
  struct array_input *in = source;
  if (in->next == in->n)
    return 0; /* end of input */
  *arg = (void *)in->items[in->next++];
  in->pulled++;
  return 1;
}

/* An endless input: 1, 2, 3, ... */
static int next_count(void *source, void **arg) {
  struct array_input *in = source;
  *arg = (void *)(intptr_t)(++in->pulled);
  return 1;
}

/* Print one position of a map. f is borrowed from the map and done, so a
 * zero timeout never blocks. */
static void print_position(int pos, cf_future_t *f) {
  void *value = NULL;
  int rc = cf_future_result(f, 0, &value);
  if (rc == 0) {
    printf("  [%d] %ld\n", pos, (long)(intptr_t)value);
    return;
  }
  expect(rc, CF_EFAILED, "cf_future_result");
  int code = 0;
  const char *message = NULL;
  expect(cf_future_exception(f, 0, &code, &message), 0, "cf_future_exception");
  printf("  [%d] failed: code %d (%s)\n", pos, code, message);
}

int main(void) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 4;
  cf_executor_t *ex = NULL;
  expect(cf_executor_create(&ex, &opts), 0, "cf_executor_create");

  /* 1. A finite input with buffersize 2: at most 2 jobs are submitted
   * ahead of this loop; the failing position does not stop the others. */
  static const intptr_t numbers[] = {1, 2, 3, 4, 5, 6};
  struct array_input in = {numbers, sizeof numbers / sizeof numbers[0], 0, 0};
  cf_map_t *m = NULL;
  expect(cf_executor_map(ex, square_job, next_from_array, &in, NULL, CF_FOREVER,
                         2, &m),
         0, "cf_executor_map");
  printf("map(square, [1..6], buffersize=2):\n");
  cf_future_t *f = NULL;
  int rc, pos = 0;
  while ((rc = cf_map_next(m, &f)) == 0)
    print_position(pos++, f);
  expect(rc, CF_EOF, "cf_map_next");
  cf_map_destroy(m);

  /* 2. An endless input: stop once a square passes 20. Destroying the map
   * cancels the jobs submitted ahead that have not started. */
  struct array_input counter = {NULL, 0, 0, 0};
  expect(cf_executor_map(ex, square_job, next_count, &counter, NULL, CF_FOREVER,
                         4, &m),
         0, "cf_executor_map");
  printf("map(square, count(1), buffersize=4), until a square > 20:\n");
  for (pos = 0;; pos++) {
    expect(cf_map_next(m, &f), 0, "cf_map_next");
    print_position(pos, f);
    void *value = NULL;
    if (cf_future_result(f, 0, &value) == 0 && (intptr_t)value > 20)
      break;
  }
  cf_map_destroy(m);
  printf("  %d results used, %d arguments taken from the endless input\n",
         pos + 1, counter.pulled);

  expect(cf_executor_destroy(ex), 0, "cf_executor_destroy");
  return EXIT_SUCCESS;
}
