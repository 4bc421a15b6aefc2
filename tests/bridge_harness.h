/*
 * The shared part of the event-loop adapter tests (test_bridge_uv.c,
 * test_bridge_event.c, test_bridge_glib.c). A test file wires its loop and
 * adapter into a harness_loop_t; the harness_case_* functions here run the
 * same cases on any of them.
 *
 * The standard cases come as cmocka test functions (harness_test_*) whose
 * initial state is the harness_loop_t: HARNESS_LOOP() builds that from a
 * test file's functions, HARNESS_STANDARD_TESTS() lists the cases for its
 * cmocka group.
 *
 * Threads: the harness_*_cb and harness_kick_* functions run on the loop
 * thread (inside cf_bridge_dispatch, reached through the adapter) and only
 * record into the harness; the harness_case_* functions run on the test
 * thread and assert once the loop has returned. The loop thread is the
 * test thread, except for a loop run in a thread of its own (GLib's
 * private context), whose join orders the records before the asserts.
 * Counters touched by workers or the producer thread are atomic.
 */
#ifndef CF_TEST_BRIDGE_HARNESS_H
#define CF_TEST_BRIDGE_HARNESS_H

#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfutures.h"
#include "helpers.h"

/* A loop's safety timer stops it after this many seconds; the case fails
 * (harness_run asserts) instead of hanging. */
#define HARNESS_LIMIT_SECONDS 30

struct harness;

/* A loop with the bridge's adapter in it, as a test file provides it. */
typedef struct harness_loop {
  /* The test file's loop state (h->ctx): ctx_size bytes, zeroed, or a
   * copy of ctx_init when that is not NULL. */
  size_t ctx_size;
  const void *ctx_init;
  /* Test thread: make the loop, attach h->bridge with the adapter, arm a
   * HARNESS_LIMIT_SECONDS timer that calls harness_timed_out(h). */
  void (*setup)(struct harness *h);
  /* Test thread: run the loop until quit is called; return after it. */
  void (*run)(struct harness *h);
  /* Loop thread: make run return. */
  void (*quit)(struct harness *h);
  /* Loop thread: detach the adapter, so that the bridge can be destroyed. */
  void (*detach)(struct harness *h);
  /* Test thread, after run: free the loop, and the adapter if attached. */
  void (*teardown)(struct harness *h);
  /* In a forked child (see harness_test_forked_child_stops): attach the
   * adapter to a new loop, run one iteration, return 0 if the adapter has
   * stopped watching the bridge. */
  int (*forked_child)(cf_bridge_t *bridge);
} harness_loop_t;

/* The harness_loop_t of a test file that names its functions loop_setup,
 * loop_run, loop_quit, loop_detach, loop_teardown and forked_child; its
 * loop state is a ctx_type, zeroed or copied from init (NULL or a const
 * ctx_type *). */
#define HARNESS_LOOP(ctx_type, init)                                        \
  {                                                                         \
    sizeof(ctx_type), (init), loop_setup, loop_run, loop_quit, loop_detach, \
        loop_teardown, forked_child                                         \
  }

/* A cmocka entry running test function fn on a harness_loop_t *. */
#define HARNESS_TEST(name, fn, loop) \
  { name, fn, NULL, NULL, (void *)(loop) }

/* The entries of the standard cases, named prefix + case. */
#define HARNESS_STANDARD_TESTS(prefix, loop)                                 \
  HARNESS_TEST(prefix "many_futures", harness_test_many_futures, loop),      \
      HARNESS_TEST(prefix "bursts", harness_test_bursts, loop),              \
      HARNESS_TEST(prefix "cancel_queued", harness_test_cancel_queued, loop), \
      HARNESS_TEST(prefix "teardown_in_flight",                              \
                   harness_test_teardown_in_flight, loop)

struct harness {
  const harness_loop_t *loop;
  void *ctx;           /* the test file's loop state */
  cf_executor_t *ex;
  cf_bridge_t *bridge; /* NULL once destroyed */
  int timed_out;       /* the safety timer fired */
  int closing;         /* the bridge is going: callbacks start nothing */
  int error;           /* the first failure a callback saw (0: none) */
  /* Deliveries, counted on the loop thread. */
  long total, window, submitted, delivered;
  long ok, failed, cancelled;
  unsigned long long sum;
  /* Bursts: the producer thread completes per_burst futures, then waits on
   * burst_done, which the loop posts once all of them were delivered. */
  int bursts, per_burst;
  int burst, in_burst; /* loop thread: the burst being delivered */
  long mixed;          /* deliveries from another burst than the current */
  long wrong_status;   /* failed when it should not have, or the reverse */
  sem_t burst_done;
  pthread_t producer;
  atomic_int producer_stop;
  atomic_int producer_error;
  /* Cancel and teardown. */
  gate_t gate;
  cf_then_t *victim;
  int cancel_rc[2];
  int victim_status, victim_cancelled, victim_state;
  int gate_status, gate_before_victim;
  atomic_int ran;        /* harness_count_job runs */
  atomic_int arg_freed;  /* harness_count_job argument destructor runs */
  atomic_int gated_ran;  /* harness_gated_value_job runs */
};

/* Record the first failure seen on the loop thread. */
static inline void harness_record(struct harness *h, int rc) {
  if (rc != 0 && h->error == 0)
    h->error = rc;
}

/* Loop thread: end the run, unless the bridge is being destroyed (its
 * callbacks then run from a teardown that has its own plan). */
static inline void harness_finish(struct harness *h) {
  if (!h->closing)
    h->loop->quit(h);
}

/* The safety timer's action, loop thread. */
static inline void harness_timed_out(struct harness *h) {
  h->timed_out = 1;
  h->loop->quit(h);
}

/* Test thread: executor with `workers` threads, bridge, loop. */
static inline void harness_begin(struct harness *h, const harness_loop_t *loop,
                                 int workers) {
  memset(h, 0, sizeof(*h));
  h->loop = loop;
  h->ctx = calloc(1, loop->ctx_size);
  assert_non_null(h->ctx);
  if (loop->ctx_init != NULL)
    memcpy(h->ctx, loop->ctx_init, loop->ctx_size);
  atomic_init(&h->producer_stop, 0);
  atomic_init(&h->producer_error, 0);
  atomic_init(&h->ran, 0);
  atomic_init(&h->arg_freed, 0);
  atomic_init(&h->gated_ran, 0);
  assert_int_equal(sem_init(&h->burst_done, 0, 0), 0);
  gate_init(&h->gate);
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  assert_int_equal(cf_executor_create(&h->ex, &opts), 0);
  assert_int_equal(cf_bridge_create(&h->bridge), 0);
  loop->setup(h);
}

/* Test thread: run the loop; it must have ended by itself. */
static inline void harness_run(struct harness *h) {
  h->loop->run(h);
  assert_false(h->timed_out);
}

/* Test thread: free the loop, the bridge (if a case has not) and the pool
 * (waiting for its jobs). */
static inline void harness_end(struct harness *h) {
  h->loop->teardown(h);
  h->closing = 1;
  cf_bridge_destroy(h->bridge);
  h->bridge = NULL;
  assert_int_equal(cf_executor_destroy(h->ex), 0);
  gate_fini(&h->gate);
  sem_destroy(&h->burst_done);
  free(h->ctx);
}

/* call_threadsafe function: end the run (loop thread). */
static inline void harness_quit_call(void *arg) {
  harness_finish(arg);
}

/* ------------------------------------------------------------------ */
/* Many futures through a window                                      */
/* ------------------------------------------------------------------ */

static inline void harness_many_cb(cf_future_t *f, int status, void *data);

/* Loop thread: submit until `window` jobs are in flight or `total` were
 * submitted. Job k (from 1) returns k. */
static inline void harness_submit_more(struct harness *h) {
  while (!h->closing && h->error == 0 && h->submitted < h->total &&
         h->submitted - h->delivered < h->window) {
    uintptr_t k = (uintptr_t)h->submitted + 1;
    int rc = cf_bridge_run_in_executor(h->bridge, h->ex, echo_job, (void *)k,
                                       NULL, harness_many_cb, h, NULL);
    if (rc != 0) {
      harness_record(h, rc);
      harness_finish(h);
      return;
    }
    h->submitted++;
  }
}

/* Delivery: add the value, submit the next job, end after the last. */
static inline void harness_many_cb(cf_future_t *f, int status, void *data) {
  struct harness *h = data;
  void *value = NULL;
  h->delivered++;
  if (status == 0 && cf_future_result(f, 0, &value) == 0) {
    h->ok++;
    h->sum += (uintptr_t)value;
  } else {
    harness_record(h, status != 0 ? status : CF_EINVALID_STATE);
  }
  harness_submit_more(h);
  if (h->delivered == h->total)
    harness_finish(h);
}

static inline void harness_kick_many(void *arg) {
  harness_submit_more(arg);
}

/* `total` jobs on `workers` threads, `window` in flight, each delivered
 * once through the adapter with its value; the run ends by itself. */
static inline void harness_case_many(const harness_loop_t *loop,
                                     long total, long window, int workers) {
  struct harness h;
  harness_begin(&h, loop, workers);
  h.total = total;
  h.window = window;
  assert_int_equal(cf_bridge_call_threadsafe(h.bridge, harness_kick_many, &h),
                   0);
  harness_run(&h);
  assert_int_equal(h.error, 0);
  assert_int_equal(h.submitted, total);
  assert_int_equal(h.delivered, total);
  assert_int_equal(h.ok, total);
  assert_true(h.sum ==
              (unsigned long long)total * (unsigned long long)(total + 1) / 2);
  harness_end(&h);
}

/* ------------------------------------------------------------------ */
/* Bursts from a producer thread                                      */
/* ------------------------------------------------------------------ */

/* Future k (from 1) of the producer fails with code k when k % 7 == 0 and
 * returns k otherwise. */
static inline int harness_burst_fails(long k) {
  return k % 7 == 0;
}

/* Delivery of a producer future: check it belongs to the current burst;
 * after a whole burst, let the producer make the next one. */
static inline void harness_burst_cb(cf_future_t *f, int status, void *data) {
  struct harness *h = data;
  void *value = NULL;
  int code = 0;
  long k;
  if (status == 0 && cf_future_result(f, 0, &value) == 0) {
    k = (long)(uintptr_t)value;
    h->ok++;
  } else if (status == CF_EFAILED &&
             cf_future_exception(f, 0, &code, NULL) == 0) {
    k = code;
    h->failed++;
  } else {
    harness_record(h, status != 0 ? status : CF_EINVALID_STATE);
    harness_finish(h);
    return;
  }
  h->delivered++;
  h->sum += (unsigned long long)k;
  if ((k - 1) / h->per_burst != h->burst)
    h->mixed++;
  if (harness_burst_fails(k) != (status == CF_EFAILED))
    h->wrong_status++;
  if (++h->in_burst < h->per_burst)
    return;
  h->in_burst = 0;
  if (++h->burst == h->bursts)
    harness_finish(h);
  else
    sem_post(&h->burst_done);
}

/* Complete one burst: register every future with the bridge first, then
 * complete them all back to back. Returns 0 or the first error. */
static inline int harness_burst(struct harness *h, cf_future_t **fs, int b) {
  int rc = 0, made = 0;
  for (; made < h->per_burst && rc == 0; made++) {
    rc = cf_future_create(&fs[made]);
    if (rc != 0)
      break;
    rc = cf_bridge_then(h->bridge, fs[made], harness_burst_cb, h, NULL);
  }
  for (int i = 0; i < made; i++) {
    long k = (long)b * h->per_burst + i + 1;
    int set = harness_burst_fails(k)
                  ? cf_future_set_exception(fs[i], (int)k, "burst")
                  : cf_future_set_result(fs[i], (void *)(uintptr_t)k, NULL);
    if (rc == 0)
      rc = set;
    cf_future_release(fs[i]);
  }
  return rc;
}

/* The producer thread: bursts, each after the loop said the previous one
 * was delivered. On an error it records it and ends the run. */
static inline void *harness_producer(void *arg) {
  struct harness *h = arg;
  cf_future_t **fs = calloc((size_t)h->per_burst, sizeof(*fs));
  int rc = fs == NULL ? CF_ENOMEM : 0;
  for (int b = 0; b < h->bursts && rc == 0; b++) {
    if (b > 0) {
      while (sem_wait(&h->burst_done) != 0) {
      }
      if (atomic_load(&h->producer_stop))
        break;
    }
    rc = harness_burst(h, fs, b);
  }
  free(fs);
  if (rc != 0) {
    atomic_store(&h->producer_error, rc);
    if (cf_bridge_call_threadsafe(h->bridge, harness_quit_call, h) != 0)
      atomic_store(&h->producer_error, CF_EINVALID_STATE);
  }
  return NULL;
}

/* A producer thread completes standalone futures in `bursts` bursts; the
 * loop goes idle between them (the next burst waits for the loop), and
 * every future of every burst arrives, in its burst, with its outcome. */
static inline void harness_case_bursts(const harness_loop_t *loop,
                                       int bursts, int per_burst) {
  struct harness h;
  harness_begin(&h, loop, 1);
  h.bursts = bursts;
  h.per_burst = per_burst;
  assert_int_equal(pthread_create(&h.producer, NULL, harness_producer, &h), 0);
  h.loop->run(&h);
  atomic_store(&h.producer_stop, 1); /* in case the run ended early */
  sem_post(&h.burst_done);
  assert_int_equal(pthread_join(h.producer, NULL), 0);
  assert_false(h.timed_out);
  assert_int_equal(atomic_load(&h.producer_error), 0);
  assert_int_equal(h.error, 0);
  long n = (long)bursts * per_burst;
  assert_int_equal(h.burst, bursts);
  assert_int_equal(h.delivered, n);
  assert_int_equal(h.failed, n / 7);
  assert_int_equal(h.ok, n - n / 7);
  assert_int_equal(h.mixed, 0);
  assert_int_equal(h.wrong_status, 0);
  assert_true(h.sum == (unsigned long long)n * (unsigned long long)(n + 1) / 2);
  harness_end(&h);
}

/* ------------------------------------------------------------------ */
/* Cancel a queued job from the loop                                  */
/* ------------------------------------------------------------------ */

/* Job: count the run. Its argument is the harness. */
static inline int harness_count_job(void *arg, cf_job_t *job) {
  struct harness *h = arg;
  (void)job;
  atomic_fetch_add(&h->ran, 1);
  return 0;
}

/* Argument destructor of harness_count_job: runs once, run or not. */
static inline void harness_count_arg_free(void *arg) {
  struct harness *h = arg;
  atomic_fetch_add(&h->arg_freed, 1);
}

static inline void harness_victim_cb(cf_future_t *f, int status, void *data) {
  struct harness *h = data;
  h->delivered++;
  h->victim_status = status;
  h->victim_cancelled = cf_future_cancelled(f);
  h->victim_state = cf_future_state(f);
  gate_open(&h->gate, 1); /* only now may the worker move on */
}

static inline void harness_gate_cb(cf_future_t *f, int status, void *data) {
  struct harness *h = data;
  void *value = NULL;
  h->delivered++;
  h->gate_status = status;
  if (status == 0 && (cf_future_result(f, 0, &value) != 0 ||
                      value != (void *)&h->gate))
    h->gate_status = CF_EINVALID_STATE;
  h->gate_before_victim = h->delivered == 1;
  if (h->delivered == 2)
    harness_finish(h);
}

/* Loop thread: the one worker blocks on the gate, the second job queues
 * behind it, and the loop cancels its delivery (twice: 1, then 0). */
static inline void harness_kick_cancel(void *arg) {
  struct harness *h = arg;
  int rc = cf_bridge_run_in_executor(h->bridge, h->ex, gated_job, &h->gate,
                                     NULL, harness_gate_cb, h, NULL);
  if (rc == 0)
    rc = cf_bridge_run_in_executor(h->bridge, h->ex, harness_count_job, h,
                                   harness_count_arg_free, harness_victim_cb,
                                   h, &h->victim);
  if (rc != 0) {
    harness_record(h, rc);
    harness_finish(h);
    return;
  }
  h->cancel_rc[0] = cf_then_cancel(h->victim);
  h->cancel_rc[1] = cf_then_cancel(h->victim);
}

/* On a one-worker pool kept busy by a gated job, cancelling the delivery
 * of a queued job from the loop cancels the job: the callback sees
 * CF_ECANCELLED at the next dispatch and the job never runs, not even once
 * the worker is free. */
static inline void harness_case_cancel_queued(const harness_loop_t *loop) {
  struct harness h;
  harness_begin(&h, loop, 1);
  assert_int_equal(
      cf_bridge_call_threadsafe(h.bridge, harness_kick_cancel, &h), 0);
  harness_run(&h);
  assert_int_equal(h.error, 0);
  assert_int_equal(h.cancel_rc[0], 1);
  assert_int_equal(h.cancel_rc[1], 0);
  assert_int_equal(h.delivered, 2);
  assert_int_equal(h.victim_status, CF_ECANCELLED);
  assert_int_equal(h.victim_cancelled, 1);
  assert_int_equal(h.victim_state, CF_STATE_CANCELLED);
  assert_int_equal(h.gate_status, 0);
  assert_false(h.gate_before_victim);
  harness_end(&h); /* joins the worker: it had every chance to run it */
  assert_int_equal(atomic_load(&h.ran), 0);
  assert_int_equal(atomic_load(&h.arg_freed), 1);
}

/* ------------------------------------------------------------------ */
/* Teardown with work in flight                                       */
/* ------------------------------------------------------------------ */

#define HARNESS_QUICK 50   /* delivered before the teardown */
#define HARNESS_GATED 2    /* running (one per worker) at the teardown */
#define HARNESS_QUEUED 100 /* queued behind them at the teardown */

/* Job: wait at the gate, then return a malloc'd value whose destructor
 * must run although nobody receives it (valgrind checks). */
static inline int harness_gated_value_job(void *arg, cf_job_t *job) {
  struct harness *h = arg;
  sem_post(&h->gate.started);
  while (sem_wait(&h->gate.open) != 0) {
  }
  atomic_fetch_add(&h->gated_ran, 1);
  void *value = malloc(64);
  if (value == NULL)
    return cf_job_fail(job, CF_ENOMEM, "out of memory");
  cf_job_return(job, value, free);
  return 0;
}

static inline void harness_teardown_cb(cf_future_t *f, int status, void *data);

/* Loop thread, inside a delivery callback: put work in flight, then detach
 * the adapter and destroy the bridge, then let the running jobs finish. */
static inline void harness_teardown_now(struct harness *h) {
  int rc = 0;
  for (int i = 0; i < HARNESS_GATED && rc == 0; i++)
    rc = cf_bridge_run_in_executor(h->bridge, h->ex, harness_gated_value_job,
                                   h, NULL, harness_teardown_cb, h, NULL);
  for (int i = 0; i < HARNESS_GATED && rc == 0; i++)
    gate_wait_started(&h->gate); /* both workers are now inside a job */
  for (int i = 0; i < HARNESS_QUEUED && rc == 0; i++) {
    rc = cf_bridge_run_in_executor(h->bridge, h->ex, harness_count_job, h,
                                   harness_count_arg_free,
                                   harness_teardown_cb, h, NULL);
  }
  harness_record(h, rc);
  h->loop->detach(h);
  h->closing = 1;
  cf_bridge_destroy(h->bridge); /* runs the pending callbacks, cancelled */
  h->bridge = NULL;
  gate_open(&h->gate, HARNESS_GATED); /* their results arrive to nobody */
  h->loop->quit(h);
}

static inline void harness_teardown_cb(cf_future_t *f, int status, void *data) {
  struct harness *h = data;
  (void)f;
  h->delivered++;
  if (status == 0)
    h->ok++;
  else if (status == CF_ECANCELLED)
    h->cancelled++;
  else
    harness_record(h, status);
  if (!h->closing && h->ok == HARNESS_QUICK)
    harness_teardown_now(h);
}

static inline void harness_kick_teardown(void *arg) {
  struct harness *h = arg;
  for (int i = 0; i < HARNESS_QUICK; i++) {
    int rc = cf_bridge_run_in_executor(h->bridge, h->ex, echo_job, NULL, NULL,
                                       harness_teardown_cb, h, NULL);
    if (rc != 0) {
      harness_record(h, rc);
      harness_finish(h);
      return;
    }
  }
}

/* Detach the adapter and destroy the bridge from a delivery callback while
 * two jobs run and a hundred are queued: every callback runs exactly once
 * (the in-flight ones with CF_ECANCELLED), the queued jobs never run, the
 * running ones finish into the void, the loop ends and nothing leaks. */
static inline void harness_case_teardown(const harness_loop_t *loop) {
  struct harness h;
  harness_begin(&h, loop, HARNESS_GATED);
  assert_int_equal(
      cf_bridge_call_threadsafe(h.bridge, harness_kick_teardown, &h), 0);
  harness_run(&h);
  assert_int_equal(h.error, 0);
  assert_null(h.bridge);
  assert_int_equal(h.ok, HARNESS_QUICK);
  assert_int_equal(h.cancelled, HARNESS_GATED + HARNESS_QUEUED);
  assert_int_equal(h.delivered, HARNESS_QUICK + HARNESS_GATED + HARNESS_QUEUED);
  harness_end(&h); /* waits for the gated jobs */
  assert_int_equal(atomic_load(&h.gated_ran), HARNESS_GATED);
  assert_int_equal(atomic_load(&h.ran), 0);
  assert_int_equal(atomic_load(&h.arg_freed), HARNESS_QUEUED);
}

/* ------------------------------------------------------------------ */
/* A forked child                                                     */
/* ------------------------------------------------------------------ */

static inline void harness_count_call(void *arg) { ++*(int *)arg; }

/* Fork with a bridge whose fd is readable; in the child, the loop's
 * forked_child attaches the adapter to a new loop, runs one iteration and
 * returns 0 if the adapter stopped watching (dispatch says CF_EFORKED
 * there: a watcher that went on would spin on the readable fd). The
 * child's status is asserted here; the child itself never calls cmocka.
 * A queued call makes the fd readable: only the bridge can write to it
 * (a pipe's write end is not cf_bridge_fd()). */
static inline void harness_case_forked(const harness_loop_t *loop) {
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create(&b), 0);
  int calls = 0;
  assert_int_equal(cf_bridge_call_threadsafe(b, harness_count_call, &calls),
                   0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(loop->forked_child(b));
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  /* The parent's bridge is fine: the call runs here, once. */
  assert_int_equal(cf_bridge_dispatch(b), 1);
  assert_int_equal(calls, 1);
  cf_bridge_destroy(b);
}

/* ------------------------------------------------------------------ */
/* The standard cases as cmocka tests; *state is the harness_loop_t   */
/* ------------------------------------------------------------------ */

/* 200,000 futures, 1,000 in flight, 2 workers. */
static inline void harness_test_many_futures(void **state) {
  harness_case_many(*state, 200000, 1000, 2);
}

/* 100 bursts of 500 futures. */
static inline void harness_test_bursts(void **state) {
  harness_case_bursts(*state, 100, 500);
}

static inline void harness_test_cancel_queued(void **state) {
  harness_case_cancel_queued(*state);
}

static inline void harness_test_teardown_in_flight(void **state) {
  harness_case_teardown(*state);
}

static inline void harness_test_forked_child_stops(void **state) {
  harness_case_forked(*state);
}

#endif /* CF_TEST_BRIDGE_HARNESS_H */
