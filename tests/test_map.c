/*
 * Tests of cf_executor_map / cf_map_next / cf_map_destroy (SEMANTICS.md 2.8
 * and "Where cfutures differs" 4): input order, per-position failures, the
 * timeout counted from the call, the buffersize window, cancellation of
 * everything not started, input and submit errors.
 *
 * Jobs never assert: they record into atomics and the test thread asserts
 * after it has waited for them. Gates from helpers.h make schedules
 * deterministic; no sleeps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, CLOCK_MONOTONIC */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cfutures.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* Local helpers                                                      */
/* ------------------------------------------------------------------ */

/* A map argument that records what happened to it. */
typedef struct item {
  gate_t *gate;     /* optional: block here first */
  sem_t *finished;  /* optional: posted when the job body is done */
  int value;        /* returned as (void *)value */
  int fail;         /* non-zero: fail with this code instead */
  atomic_int ran;
  atomic_int freed;
  atomic_int finish_seq;
} item_t;

static atomic_int finish_counter;

static int item_job(void *arg, cf_job_t *job) {
  item_t *it = arg;
  if (it->gate != NULL) {
    sem_post(&it->gate->started);
    while (sem_wait(&it->gate->open) != 0) {
    }
  }
  atomic_fetch_add(&it->ran, 1);
  atomic_store(&it->finish_seq, atomic_fetch_add(&finish_counter, 1));
  if (it->finished != NULL)
    sem_post(it->finished);
  if (it->fail != 0)
    return cf_job_fail(job, it->fail, "item %d failed", it->value);
  cf_job_return(job, (void *)(intptr_t)it->value, NULL);
  return 0;
}

static void item_free(void *arg) {
  item_t *it = arg;
  atomic_fetch_add(&it->freed, 1);
}

static void items_init(item_t *its, int n) {
  for (int i = 0; i < n; i++) {
    its[i].gate = NULL;
    its[i].finished = NULL;
    its[i].value = i;
    its[i].fail = 0;
    atomic_init(&its[i].ran, 0);
    atomic_init(&its[i].freed, 0);
    atomic_init(&its[i].finish_seq, -1);
  }
}

/* An input over an array of items, ending with end_code (0 or < 0).
 * Called only on the test thread, so plain fields are fine. */
typedef struct source {
  item_t *items;
  int n;
  int next;
  int end_code;
  int calls;
  int calls_after_end;
  cf_executor_t *shutdown_ex; /* optional: shut it down ... */
  int shutdown_at;            /* ... when yielding this index */
} source_t;

static void source_init(source_t *s, item_t *items, int n, int end_code) {
  memset(s, 0, sizeof *s);
  s->items = items;
  s->n = n;
  s->end_code = end_code;
  s->shutdown_at = -1;
}

static int array_input(void *src, void **arg) {
  source_t *s = src;
  s->calls++;
  if (s->next >= s->n) {
    if (s->next > s->n)
      s->calls_after_end++;
    s->next = s->n + 1;
    return s->end_code;
  }
  if (s->shutdown_ex != NULL && s->next == s->shutdown_at)
    (void)cf_executor_shutdown(s->shutdown_ex, false, false);
  *arg = &s->items[s->next++];
  return 1;
}

/* An endless input of 0, 1, 2, ...; tracks how far ahead of the consumer
 * it was pulled. */
typedef struct endless {
  long calls;
  long consumed;
  long max_ahead;
} endless_t;

static int endless_input(void *src, void **arg) {
  endless_t *e = src;
  *arg = (void *)(intptr_t)e->calls;
  e->calls++;
  long ahead = e->calls - e->consumed;
  if (ahead > e->max_ahead)
    e->max_ahead = ahead;
  return 1;
}

/* An input of count integers 0..count-1. */
typedef struct counting {
  long next;
  long count;
} counting_t;

static int counting_input(void *src, void **arg) {
  counting_t *c = src;
  if (c->next >= c->count)
    return 0;
  *arg = (void *)(intptr_t)c->next++;
  return 1;
}

static cf_executor_t *make_pool(int max_workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = max_workers;
  opts.thread_name_prefix = "maptest";
  cf_executor_t *ex = NULL;
  assert_int_equal(cf_executor_create(&ex, &opts), 0);
  assert_non_null(ex);
  return ex;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Next result must be value v at this position. */
static void next_is_value(cf_map_t *m, intptr_t v) {
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), 0);
  assert_non_null(f);
  assert_true(cf_future_done(f));
  void *got = NULL;
  assert_int_equal(cf_future_result(f, 0, &got), 0);
  assert_ptr_equal(got, (void *)v);
}

static int setup(void **state) {
  (void)state;
  atomic_store(&counter_hits, 0);
  atomic_store(&finish_counter, 0);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

/* Later jobs finish first; results still come in input order. */
static void test_map_input_order(void **state) {
  (void)state;
  enum { N = 4 };
  cf_executor_t *ex = make_pool(N);
  item_t its[N];
  items_init(its, N);
  gate_t gates[N];
  sem_t finished;
  sem_init(&finished, 0, 0);
  for (int i = 0; i < N; i++) {
    gate_init(&gates[i]);
    its[i].gate = &gates[i];
    its[i].finished = &finished;
  }
  source_t src;
  source_init(&src, its, N, 0);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, 0, &m),
                   0);
  assert_non_null(m);
  for (int i = 0; i < N; i++)
    gate_wait_started(&gates[i]); /* all four run at once */
  for (int i = N - 1; i >= 0; i--) {
    gate_open(&gates[i], 1);
    while (sem_wait(&finished) != 0) {
    }
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&its[i].finish_seq), N - 1 - i);
  for (int i = 0; i < N; i++)
    next_is_value(m, i);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  cf_map_destroy(m);
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&its[i].ran), 1);
    assert_int_equal(atomic_load(&its[i].freed), 1);
    gate_fini(&gates[i]);
  }
  sem_destroy(&finished);
}

static void test_map_empty_input(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(2);
  source_t src;
  source_init(&src, NULL, 0, 0);
  for (size_t bs = 0; bs <= 2; bs += 2) {
    cf_map_t *m = NULL;
    assert_int_equal(cf_executor_map(ex, item_job, array_input, &src,
                                     item_free, CF_FOREVER, bs, &m),
                     0);
    cf_future_t *f = NULL;
    assert_int_equal(cf_map_next(m, &f), CF_EOF);
    assert_int_equal(cf_map_next(m, &f), CF_EOF);
    cf_map_destroy(m);
    src.next = 0;
  }
  assert_int_equal(src.calls_after_end, 0);
  assert_int_equal(cf_executor_thread_count(ex), 0); /* nothing submitted */
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* SEMANTICS "differs" 4: a failure is reported at its position and the
 * iteration goes on. A job failing with the code CF_ETIMEDOUT is a job
 * failure like any other, not a map timeout (gh-155852). */
static void test_map_failures_continue(void **state) {
  (void)state;
  enum { N = 10 };
  cf_executor_t *ex = make_pool(3);
  item_t its[N];
  items_init(its, N);
  for (int i = 1; i < N; i += 2)
    its[i].fail = 100 + i;
  its[N - 1].fail = CF_ETIMEDOUT;
  source_t src;
  source_init(&src, its, N, 0);
  for (size_t bs = 0; bs <= 3; bs += 3) {
    src.next = 0;
    cf_map_t *m = NULL;
    assert_int_equal(cf_executor_map(ex, item_job, array_input, &src,
                                     item_free, 60.0, bs, &m),
                     0);
    for (int i = 0; i < N; i++) {
      cf_future_t *f = NULL;
      assert_int_equal(cf_map_next(m, &f), 0);
      if (its[i].fail == 0) {
        void *v = NULL;
        assert_int_equal(cf_future_result(f, 0, &v), 0);
        assert_ptr_equal(v, (void *)(intptr_t)i);
      } else {
        assert_int_equal(cf_future_result(f, 0, NULL), CF_EFAILED);
        int code = 0;
        const char *msg = NULL;
        assert_int_equal(cf_future_exception(f, 0, &code, &msg), 0);
        assert_int_equal(code, its[i].fail);
        char expect[64];
        snprintf(expect, sizeof expect, "item %d failed", i);
        assert_non_null(msg);
        assert_string_equal(msg, expect);
      }
    }
    cf_future_t *f = NULL;
    assert_int_equal(cf_map_next(m, &f), CF_EOF);
    cf_map_destroy(m);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&its[i].ran), 2);
    assert_int_equal(atomic_load(&its[i].freed), 2);
  }
}

/* The timeout counts from the cf_executor_map call; when it passes,
 * everything not started is cancelled and the iteration ends. */
static void test_map_timeout_cancels_rest(void **state) {
  (void)state;
  enum { N = 6 };
  const double timeout = 0.2;
  cf_executor_t *ex = make_pool(1);
  item_t its[N];
  items_init(its, N);
  gate_t g;
  gate_init(&g);
  its[0].gate = &g;
  source_t src;
  source_init(&src, its, N, 0);
  cf_map_t *m = NULL;
  int64_t t0 = now_ns();
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   timeout, 0, &m),
                   0);
  gate_wait_started(&g);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), CF_ETIMEDOUT);
  int64_t elapsed = now_ns() - t0;
  /* not before the deadline (1 us of slack for the double conversion) */
  assert_true(elapsed >= (int64_t)(timeout * 1e9) - 1000);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  /* The gated job is still running; let it finish after the timeout. */
  assert_int_equal(atomic_load(&its[0].ran), 0);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  cf_map_destroy(m);
  assert_int_equal(atomic_load(&its[0].ran), 1);
  assert_int_equal(atomic_load(&its[0].freed), 1);
  for (int i = 1; i < N; i++) {
    assert_int_equal(atomic_load(&its[i].ran), 0); /* cancelled */
    assert_int_equal(atomic_load(&its[i].freed), 1);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* Same with a buffersize window and the map destroyed before the gated job
 * completes. */
static void test_map_timeout_with_buffersize(void **state) {
  (void)state;
  enum { N = 10, BS = 3 };
  cf_executor_t *ex = make_pool(1);
  item_t its[N];
  items_init(its, N);
  gate_t g;
  gate_init(&g);
  its[0].gate = &g;
  source_t src;
  source_init(&src, its, N, 0);
  cf_map_t *m = NULL;
  int64_t t0 = now_ns();
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   0.1, BS, &m),
                   0);
  gate_wait_started(&g);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), CF_ETIMEDOUT);
  assert_true(now_ns() - t0 >= 100000000 - 1000);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  /* BS pulled by the call, one more by cf_map_next before it waited */
  int pulled = src.calls;
  assert_int_equal(pulled, BS + 1);
  cf_map_destroy(m);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(src.calls, pulled); /* no more input after the end */
  assert_int_equal(atomic_load(&its[0].ran), 1);
  for (int i = 0; i < N; i++) {
    if (i > 0)
      assert_int_equal(atomic_load(&its[i].ran), 0);
    /* pulled ones were dropped exactly once, the others never taken */
    assert_int_equal(atomic_load(&its[i].freed), i < pulled ? 1 : 0);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* Timeout 0 polls: a position that is not done is a timeout at once. */
static void test_map_timeout_zero_polls(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1);
  item_t its[2];
  items_init(its, 2);
  gate_t g;
  gate_init(&g);
  its[0].gate = &g;
  source_t src;
  source_init(&src, its, 2, 0);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   0, 0, &m),
                   0);
  gate_wait_started(&g);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), CF_ETIMEDOUT);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  gate_open(&g, 1);
  cf_map_destroy(m);
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&its[0].ran), 1);
  assert_int_equal(atomic_load(&its[1].ran), 0);
  assert_int_equal(atomic_load(&its[0].freed), 1);
  assert_int_equal(atomic_load(&its[1].freed), 1);
  gate_fini(&g);
}

/* buffersize n: exactly n pulled before the first next; an endless input
 * works and never runs more than n + 1 ahead of the consumer. */
static void test_map_buffersize_endless(void **state) {
  (void)state;
  enum { BS = 5, CONSUME = 100 };
  cf_executor_t *ex = make_pool(4);
  endless_t e = {0, 0, 0};
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, echo_job, endless_input, &e, NULL,
                                   CF_FOREVER, BS, &m),
                   0);
  assert_int_equal(e.calls, BS);
  for (long k = 0; k < CONSUME; k++) {
    next_is_value(m, (intptr_t)k);
    /* one more pulled by each cf_map_next, before it waited */
    assert_int_equal(e.calls, BS + k + 1);
    e.consumed++;
  }
  assert_int_equal(e.max_ahead, BS + 1);
  long calls = e.calls;
  cf_map_destroy(m);
  assert_int_equal(e.calls, calls); /* destroy pulls nothing */
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* A window that is never consumed takes exactly buffersize items. */
static void test_map_buffersize_unconsumed(void **state) {
  (void)state;
  enum { N = 10, BS = 3 };
  cf_executor_t *ex = make_pool(2);
  item_t its[N];
  items_init(its, N);
  source_t src;
  source_init(&src, its, N, 0);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, BS, &m),
                   0);
  assert_int_equal(src.calls, BS);
  cf_map_destroy(m);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(src.calls, BS);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&its[i].freed), i < BS ? 1 : 0);
    if (i >= BS)
      assert_int_equal(atomic_load(&its[i].ran), 0);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* cf_map_destroy before consuming cancels everything not started. */
static void test_map_destroy_cancels_not_started(void **state) {
  (void)state;
  enum { N = 6 };
  cf_executor_t *ex = make_pool(1);
  item_t its[N];
  items_init(its, N);
  gate_t g;
  gate_init(&g);
  its[0].gate = &g;
  source_t src;
  source_init(&src, its, N, 0);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, 0, &m),
                   0);
  gate_wait_started(&g);
  cf_map_destroy(m);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  assert_int_equal(atomic_load(&its[0].ran), 1);
  for (int i = 0; i < N; i++) {
    if (i > 0)
      assert_int_equal(atomic_load(&its[i].ran), 0);
    assert_int_equal(atomic_load(&its[i].freed), 1);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* Destroy half way: consumed positions stay done, the rest is cancelled. */
static void test_map_destroy_after_partial_consume(void **state) {
  (void)state;
  enum { N = 8 };
  cf_executor_t *ex = make_pool(1);
  item_t its[N];
  items_init(its, N);
  gate_t g;
  gate_init(&g);
  its[2].gate = &g;
  source_t src;
  source_init(&src, its, N, 0);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, 0, &m),
                   0);
  next_is_value(m, 0);
  next_is_value(m, 1);
  gate_wait_started(&g);
  cf_map_destroy(m);
  gate_open(&g, 1);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&its[i].ran), i <= 2 ? 1 : 0);
    assert_int_equal(atomic_load(&its[i].freed), 1);
  }
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* An input error met while iterating is returned at its position, after
 * every earlier result, then CF_EOF. */
static void test_map_input_error_at_position(void **state) {
  (void)state;
  enum { N = 5, BS = 2 };
  cf_executor_t *ex = make_pool(2);
  item_t its[N];
  items_init(its, N);
  source_t src;
  source_init(&src, its, N, -42);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, BS, &m),
                   0);
  for (int i = 0; i < N; i++)
    next_is_value(m, i);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), -42);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_int_equal(src.calls_after_end, 0); /* input not called again */
  cf_map_destroy(m);
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&its[i].ran), 1);
    assert_int_equal(atomic_load(&its[i].freed), 1);
  }
}

/* Without a window the whole input is read by cf_executor_map itself, so
 * an input error is that call's error. */
static void test_map_input_error_eager(void **state) {
  (void)state;
  enum { N = 3 };
  cf_executor_t *ex = make_pool(2);
  item_t its[N];
  items_init(its, N);
  source_t src;
  source_init(&src, its, N, -42);
  cf_map_t *sentinel = (cf_map_t *)&src;
  cf_map_t *m = sentinel;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, 0, &m),
                   -42);
  assert_ptr_equal(m, sentinel);
  assert_int_equal(src.calls_after_end, 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&its[i].freed), 1); /* run or dropped */
}

static void test_map_after_shutdown(void **state) {
  (void)state;
  enum { N = 3 };
  cf_executor_t *ex = make_pool(2);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  item_t its[N];
  items_init(its, N);
  source_t src;
  source_init(&src, its, N, 0);
  for (size_t bs = 0; bs <= 2; bs += 2) {
    cf_map_t *sentinel = (cf_map_t *)&src;
    cf_map_t *m = sentinel;
    assert_int_equal(cf_executor_map(ex, item_job, array_input, &src,
                                     item_free, CF_FOREVER, bs, &m),
                     CF_ESHUTDOWN);
    assert_ptr_equal(m, sentinel);
    src.next = 0;
  }
  assert_int_equal(cf_executor_thread_count(ex), 0);
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&its[i].ran), 0);
}

/* A submit that fails half way (the pool was shut down by the input)
 * fails the call and leaves nothing queued. */
static void test_map_submit_error_nothing_queued(void **state) {
  (void)state;
  enum { N = 5 };
  cf_executor_t *ex = make_pool(1);
  gate_t g;
  gate_init(&g);
  cf_future_t *blocker = NULL;
  assert_int_equal(cf_executor_submit(ex, gated_job, &g, NULL, &blocker), 0);
  gate_wait_started(&g);
  item_t its[N];
  items_init(its, N);
  source_t src;
  source_init(&src, its, N, 0);
  src.shutdown_ex = ex;
  src.shutdown_at = 2; /* items 0 and 1 are queued behind the blocker */
  cf_map_t *sentinel = (cf_map_t *)&src;
  cf_map_t *m = sentinel;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, 0, &m),
                   CF_ESHUTDOWN);
  assert_ptr_equal(m, sentinel);
  gate_open(&g, 1);
  assert_int_equal(wait_result(blocker, NULL), 0);
  assert_int_equal(cf_executor_shutdown(ex, true, false), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&its[i].ran), 0);
  assert_int_equal(atomic_load(&its[0].freed), 1);
  assert_int_equal(atomic_load(&its[1].freed), 1);
  /* The map owns what it pulled: the argument whose submit failed too. */
  assert_int_equal(atomic_load(&its[2].freed), 1);
  for (int i = 3; i < N; i++)
    assert_int_equal(atomic_load(&its[i].freed), 0); /* never pulled */
  assert_true(src.calls <= 3);
  cf_future_release(blocker);
  assert_int_equal(cf_executor_destroy(ex), 0);
  gate_fini(&g);
}

/* With a window, a submit that fails while iterating (the input shut the
 * pool down) is returned at its position, after every earlier result; the
 * map still destroys the argument it could not submit. */
static void test_map_submit_error_at_position(void **state) {
  (void)state;
  enum { N = 6, BS = 2, AT = 3 };
  cf_executor_t *ex = make_pool(2);
  item_t its[N];
  items_init(its, N);
  source_t src;
  source_init(&src, its, N, 0);
  src.shutdown_ex = ex;
  src.shutdown_at = AT;
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, item_free,
                                   CF_FOREVER, BS, &m),
                   0);
  for (int i = 0; i < AT; i++)
    next_is_value(m, i);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(m, &f), CF_ESHUTDOWN);
  assert_int_equal(cf_map_next(m, &f), CF_EOF);
  assert_int_equal(src.calls, AT + 1); /* nothing pulled after the error */
  cf_map_destroy(m);
  assert_int_equal(cf_executor_destroy(ex), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&its[i].ran), i < AT ? 1 : 0);
    assert_int_equal(atomic_load(&its[i].freed), i <= AT ? 1 : 0);
  }
}

static void test_map_null_args(void **state) {
  (void)state;
  cf_executor_t *ex = make_pool(1);
  source_t src;
  source_init(&src, NULL, 0, 0);
  cf_map_t *m = NULL;
  assert_int_equal(cf_executor_map(NULL, item_job, array_input, &src, NULL,
                                   CF_FOREVER, 0, &m),
                   CF_EINVAL);
  assert_int_equal(cf_executor_map(ex, NULL, array_input, &src, NULL,
                                   CF_FOREVER, 0, &m),
                   CF_EINVAL);
  assert_int_equal(
      cf_executor_map(ex, item_job, NULL, &src, NULL, CF_FOREVER, 0, &m),
      CF_EINVAL);
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, NULL,
                                   CF_FOREVER, 0, NULL),
                   CF_EINVAL);
  assert_int_equal(
      cf_executor_map(ex, item_job, array_input, &src, NULL, NAN, 0, &m),
      CF_EINVAL);
  assert_null(m);
  assert_int_equal(src.calls, 0);
  cf_future_t *f = NULL;
  assert_int_equal(cf_map_next(NULL, &f), CF_EINVAL);
  assert_int_equal(cf_executor_map(ex, item_job, array_input, &src, NULL,
                                   CF_FOREVER, 0, &m),
                   0);
  assert_int_equal(cf_map_next(m, NULL), CF_EINVAL);
  cf_map_destroy(m);
  cf_map_destroy(NULL);
  assert_int_equal(cf_executor_destroy(ex), 0);
}

/* Many results, in order, each argument destroyed once. */
static void test_map_many(void **state) {
  (void)state;
  enum { N = 1000 };
  cf_executor_t *ex = make_pool(4);
  const size_t sizes[] = {0, 1, 7, 2 * N};
  const size_t nsizes = sizeof sizes / sizeof sizes[0];
  for (size_t s = 0; s < nsizes; s++) {
    counting_t c = {0, N};
    cf_map_t *m = NULL;
    assert_int_equal(cf_executor_map(ex, echo_job, counting_input, &c,
                                     count_free, CF_FOREVER, sizes[s], &m),
                     0);
    for (int i = 0; i < N; i++)
      next_is_value(m, i);
    cf_future_t *f = NULL;
    assert_int_equal(cf_map_next(m, &f), CF_EOF);
    assert_int_equal(cf_map_next(m, &f), CF_EOF);
    cf_map_destroy(m);
    assert_int_equal(c.next, N);
  }
  /* Argument destructors run after each job: count them once the pool
   * has drained. */
  assert_int_equal(cf_executor_destroy(ex), 0);
  assert_int_equal(atomic_load(&counter_hits), (int)nsizes * N);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_map_input_order, setup),
      cmocka_unit_test_setup(test_map_empty_input, setup),
      cmocka_unit_test_setup(test_map_failures_continue, setup),
      cmocka_unit_test_setup(test_map_timeout_cancels_rest, setup),
      cmocka_unit_test_setup(test_map_timeout_with_buffersize, setup),
      cmocka_unit_test_setup(test_map_timeout_zero_polls, setup),
      cmocka_unit_test_setup(test_map_buffersize_endless, setup),
      cmocka_unit_test_setup(test_map_buffersize_unconsumed, setup),
      cmocka_unit_test_setup(test_map_destroy_cancels_not_started, setup),
      cmocka_unit_test_setup(test_map_destroy_after_partial_consume, setup),
      cmocka_unit_test_setup(test_map_input_error_at_position, setup),
      cmocka_unit_test_setup(test_map_input_error_eager, setup),
      cmocka_unit_test_setup(test_map_after_shutdown, setup),
      cmocka_unit_test_setup(test_map_submit_error_nothing_queued, setup),
      cmocka_unit_test_setup(test_map_submit_error_at_position, setup),
      cmocka_unit_test_setup(test_map_null_args, setup),
      cmocka_unit_test_setup(test_map_many, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
