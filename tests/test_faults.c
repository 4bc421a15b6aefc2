/*
 * Fault injection (issue 6): the library built with CF_FAULT_INJECTION
 * (libcfutures-fault.la, see executor/fault.h) lets this test make the
 * n-th allocation, thread creation or fd creation fail.
 *
 * Each scenario is a function that drives the API through a realistic path
 * (pool, done callbacks, wait and as_completed, map, standalone futures,
 * bridge, loop and tasks) and cleans up whatever it managed to create,
 * returning normally whatever failed. For each scenario and class of
 * resource, a clean run counts the calls of that class (N); then for every
 * n in 1..N the scenario runs twice more: once with only the n-th call
 * failing, once with the n-th and every later call failing. Every run
 * checks that
 *   - each call returned 0 or an error code its contract documents, and
 *     only the codes that this class of failure can cause (CF_ENOMEM for
 *     allocations, CF_EAGAIN for threads, CF_ESYSTEM for fds);
 *   - every future a submit handed out ends (a queued job is never
 *     orphaned), and every done callback that was registered ran once;
 *   - afterwards no value, argument or wake-up datum is alive: each
 *     destructor ran exactly once (a live-object counter is back at 0);
 *   - nothing hangs: waits that the library guarantees to end use
 *     CF_FOREVER, the others a generous guard, and a watchdog names the
 *     scenario and failure point of a run that never ends.
 * Leaks of the library's own memory are for valgrind and ASan to see.
 * The number of failure points tried is printed as TAP comments.
 *
 * Worker threads and callbacks never assert: they record unexpected codes
 * under a mutex and the test thread asserts at the end of each test.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cfutures.h"
#include "cfutures/loop.h"
#include "helpers.h"

#define CF_FAULT_INJECTION 1 /* the control API of the fault library */
#include "fault.h"

/* A hang guard for one blocking step that must end (never an assertion
 * about speed), and for one whole scenario run (the watchdog). */
#define GUARD_S 30.0
#define RUN_GUARD_S 120.0

/* ------------------------------------------------------------------ */
/* Runs, reports and the live-object counter                          */
/* ------------------------------------------------------------------ */

enum fclass { F_ALLOC, F_THREAD, F_FD };
static const char *const class_names[] = {"allocation", "thread", "fd"};

/* The run in progress: read by workers while they report. */
static const char *run_scenario = "";
static enum fclass run_class;
static long run_point;   /* 0: the counting run */
static bool run_sticky;  /* the point and every later call fail */

static pthread_mutex_t report_mu = PTHREAD_MUTEX_INITIALIZER;
static long problems; /* unexpected codes and broken invariants */
#define MAX_PRINTED 40

static void problem(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void problem(const char *fmt, ...) {
  pthread_mutex_lock(&report_mu);
  if (++problems <= MAX_PRINTED) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    printf("# PROBLEM in scenario %s, %s failure point %ld%s: %s\n",
           run_scenario, class_names[run_class], run_point,
           run_sticky ? " and later" : "", what);
    fflush(stdout);
  }
  pthread_mutex_unlock(&report_mu);
}

/* Check that rc is want or one of the failures in ok[0..n); a failure
 * that this run's class of fault cannot cause is unexpected even if
 * listed. */
static void check_rc(int rc, int want, const char *what, const int *ok,
                     size_t n) {
  if (rc == want)
    return;
  bool listed = false;
  for (size_t i = 0; i < n; i++)
    listed |= ok[i] == rc;
  bool possible = (rc != CF_ENOMEM || run_class == F_ALLOC) &&
                  (rc != CF_EAGAIN || run_class != F_FD) &&
                  (rc != CF_ESYSTEM || run_class == F_FD);
  if (!listed || !possible)
    problem("%s returned %s, not %s", what, cf_err_name(rc),
            cf_err_name(want));
}

/* EXPECT(rc, "call", failures...): 0, or one of the failures listed
 * (write 0 alone for none). EXPECT_CODE: the code want, or a failure. */
#define EXPECT(rc, what, ...) EXPECT_CODE(rc, 0, what, __VA_ARGS__)
#define EXPECT_CODE(rc, want, what, ...)                                       \
  check_rc((rc), (want), (what), (const int[]){__VA_ARGS__},                   \
           sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static void expect_true(bool ok, const char *what) {
  if (!ok)
    problem("%s", what);
}

/* Objects with a destructor: values, arguments, wake-up data. */
static atomic_long live_objects;

static void *obj_new(int tag) {
  int *p = malloc(sizeof(*p)); /* the real malloc: never fails here */
  *p = tag;
  atomic_fetch_add(&live_objects, 1);
  return p;
}

static void obj_free(void *p) {
  if (p == NULL)
    return;
  atomic_fetch_sub(&live_objects, 1);
  free(p);
}

/* Done callbacks registered (rc 0) and run, per run. */
static atomic_long cb_registered, cb_ran;

static void cb_count(cf_future_t *f, void *data) {
  (void)f;
  (void)data;
  atomic_fetch_add(&cb_ran, 1);
}

static void add_counted_callback(cf_future_t *f) {
  int rc = cf_future_add_done_callback(f, cb_count, NULL);
  EXPECT(rc, "cf_future_add_done_callback", CF_ENOMEM);
  if (rc == 0)
    atomic_fetch_add(&cb_registered, 1);
}

/* Check that a future handed out by a submit has ended. */
static void expect_done(cf_future_t *f, const char *what) {
  if (f != NULL && !cf_future_done(f))
    problem("%s: a future never ended", what);
}

/* ---- the watchdog: names a run that hangs ---- */

static pthread_mutex_t dog_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dog_cv;
static pthread_t dog_thread;
static bool dog_stop;
static bool dog_running; /* a run is in progress */
static struct timespec dog_started;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run_guard_s(void) {
  const char *env = getenv("CF_FAULT_RUN_GUARD");
  double s = env != NULL ? atof(env) : 0;
  return s > 0 ? s : RUN_GUARD_S;
}

static void *dog_main(void *arg) {
  (void)arg;
  double guard = run_guard_s();
  pthread_mutex_lock(&dog_mu);
  while (!dog_stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 1;
    pthread_cond_timedwait(&dog_cv, &dog_mu, &until);
    if (dog_running &&
        mono_now() - ((double)dog_started.tv_sec +
                      (double)dog_started.tv_nsec / 1e9) > guard) {
      fprintf(stderr,
              "# HANG: scenario %s, %s failure point %ld%s has run for more "
              "than %.0f s\n",
              run_scenario, class_names[run_class], run_point,
              run_sticky ? " and later" : "", guard);
      printf("Bail out! hang in scenario %s, %s failure point %ld%s\n",
             run_scenario, class_names[run_class], run_point,
             run_sticky ? " and later" : "");
      fflush(stdout);
      abort();
    }
  }
  pthread_mutex_unlock(&dog_mu);
  return NULL;
}

static int group_setup(void **state) {
  (void)state;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&dog_cv, &attr);
  pthread_condattr_destroy(&attr);
  return pthread_create(&dog_thread, NULL, dog_main, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  pthread_mutex_lock(&dog_mu);
  dog_stop = true;
  pthread_cond_signal(&dog_cv);
  pthread_mutex_unlock(&dog_mu);
  pthread_join(dog_thread, NULL);
  pthread_cond_destroy(&dog_cv);
  return 0;
}

static void begin_run(const char *name, enum fclass c, long point,
                      bool sticky) {
  pthread_mutex_lock(&dog_mu);
  run_scenario = name;
  run_class = c;
  run_point = point;
  run_sticky = sticky;
  clock_gettime(CLOCK_MONOTONIC, &dog_started);
  dog_running = true;
  pthread_mutex_unlock(&dog_mu);
  atomic_store(&cb_registered, 0);
  atomic_store(&cb_ran, 0);
  cf__fault_reset();
  switch (c) {
  case F_ALLOC:
    (sticky ? cf__fault_fail_alloc_from : cf__fault_fail_alloc_at)(point);
    break;
  case F_THREAD:
    (sticky ? cf__fault_fail_thread_from : cf__fault_fail_thread_at)(point);
    break;
  case F_FD:
    (sticky ? cf__fault_fail_fd_from : cf__fault_fail_fd_at)(point);
    break;
  }
}

/* After a run: every destructor ran once, every callback ran once. */
static void end_run(void) {
  long live = atomic_exchange(&live_objects, 0);
  if (live != 0)
    problem("%ld objects %s", live > 0 ? live : -live,
            live > 0 ? "never destroyed" : "destroyed twice");
  long reg = atomic_load(&cb_registered), ran = atomic_load(&cb_ran);
  if (reg != ran)
    problem("%ld done callbacks registered, %ld ran", reg, ran);
  pthread_mutex_lock(&dog_mu);
  dog_running = false;
  pthread_mutex_unlock(&dog_mu);
}

static long class_count(enum fclass c) {
  return c == F_ALLOC    ? cf__fault_alloc_count()
         : c == F_THREAD ? cf__fault_thread_count()
                         : cf__fault_fd_count();
}

/* A scenario returns true if every step succeeded (the counting run must). */
typedef bool (*scenario_fn)(void);

/* Run fn clean, then with each failure point in turn: see the top. */
static void explore(const char *name, scenario_fn fn, enum fclass c) {
  long before = problems;
  begin_run(name, c, 0, false);
  bool complete = fn();
  long n = class_count(c);
  end_run();
  if (!complete)
    problem("the run without failures did not go all the way");
  long unreached = 0;
  const char *only = getenv("CF_FAULT_POINT"); /* debugging: one point */
  for (int sticky = 0; sticky <= 1; sticky++)
    for (long k = 1; k <= n; k++) {
      if (only != NULL && atol(only) != k)
        continue;
      begin_run(name, c, k, sticky);
      (void)fn();
      if (cf__fault_injected() == 0)
        unreached++; /* this run made fewer calls: timing differs */
      end_run();
    }
  cf__fault_reset();
  printf("# scenario %s: %ld %s failure points (each tried failing once and "
         "failing from there on; %ld runs did not reach theirs)\n",
         name, n, class_names[c], unreached);
  fflush(stdout);
  if (problems > MAX_PRINTED)
    printf("# (%ld problems in all, the first %d printed)\n", problems,
           MAX_PRINTED);
  assert_int_equal(problems - before, 0);
  assert_true(n > 0 || c != F_ALLOC);
}

/* ------------------------------------------------------------------ */
/* Jobs                                                               */
/* ------------------------------------------------------------------ */

/* A value with a destructor. */
static int value_job(void *arg, cf_job_t *job) {
  (void)arg;
  cf_job_return(job, obj_new(1), obj_free);
  return 0;
}

/* Sets a value, then fails with a formatted message (the value is
 * dropped through its destructor). */
static int fail_job(void *arg, cf_job_t *job) {
  (void)arg;
  cf_job_return(job, obj_new(2), obj_free);
  return cf_job_fail(job, 42, "job failed with %d", 42);
}

/* Blocks on the gate in arg, then returns a value. */
static int gate_job(void *arg, cf_job_t *job) {
  gate_t *g = arg;
  while (sem_wait(&g->open) != 0) {
  }
  cf_job_return(job, obj_new(3), obj_free);
  return 0;
}

/* Check the outcome of a done pool future of value_job or fail_job. */
static void check_outcome(cf_future_t *f, const char *what) {
  void *value = NULL;
  int rc = cf_future_result(f, CF_FOREVER, &value);
  EXPECT(rc, what, CF_EFAILED, CF_ECANCELLED);
  if (rc == CF_EFAILED) {
    int code = 0;
    const char *message = NULL;
    EXPECT(cf_future_exception(f, 0, &code, &message), "cf_future_exception",
           0);
    /* the message is gone if formatting it ran out of memory */
    if (code != 42 ||
        (message != NULL && strcmp(message, "job failed with 42") != 0))
      problem("%s: failure %d \"%s\"", what, code,
              message != NULL ? message : "(none)");
  }
}

static cf_executor_t *new_pool(int max_workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = max_workers;
  cf_executor_t *ex = NULL;
  int rc = cf_executor_create(&ex, &opts);
  EXPECT(rc, "cf_executor_create", CF_ENOMEM);
  return rc == 0 ? ex : NULL;
}

/* Submit with an argument that has a destructor; on failure the caller
 * keeps the argument (and frees it here). A CF_EAGAIN needs a pool with
 * no thread at all. */
static int submit_obj(cf_executor_t *ex, cf_job_fn fn, cf_future_t **out) {
  void *arg = obj_new(0);
  int rc = cf_executor_submit(ex, fn, arg, obj_free, out);
  EXPECT(rc, "cf_executor_submit", CF_ENOMEM, CF_EAGAIN);
  if (rc != 0) {
    obj_free(arg);
    if (out != NULL)
      *out = NULL;
  }
  if (rc == CF_EAGAIN && cf_executor_thread_count(ex) != 0)
    problem("submit returned CF_EAGAIN with %d threads in the pool",
            cf_executor_thread_count(ex));
  return rc;
}

static void destroy_pool(cf_executor_t *ex) {
  EXPECT(cf_executor_destroy(ex), "cf_executor_destroy", 0);
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                          */
/* ------------------------------------------------------------------ */

/* Pool: create, submit (two blocked jobs hold the workers while others
 * queue), cancel a queued job, results, shutdown, destroy. */
static bool sc_pool(void) {
  bool all_ok = true;
  cf_executor_t *ex = new_pool(2);
  if (ex == NULL)
    return false;
  gate_t gate;
  gate_init(&gate);
  cf_future_t *fs[6] = {NULL};
  cf_job_fn jobs[6] = {gate_job, gate_job, value_job,
                       fail_job, value_job, value_job};
  for (int i = 0; i < 6; i++) {
    int rc;
    if (jobs[i] == gate_job) {
      rc = cf_executor_submit(ex, gate_job, &gate, NULL, &fs[i]);
      EXPECT(rc, "cf_executor_submit", CF_ENOMEM, CF_EAGAIN);
      if (rc != 0)
        fs[i] = NULL;
    } else {
      rc = submit_obj(ex, jobs[i], &fs[i]);
    }
    all_ok &= rc == 0;
  }
  if (fs[5] != NULL) {
    int rc = cf_future_cancel(fs[5]); /* queued behind the gates, or run */
    if (rc != 0 && rc != 1)
      problem("cf_future_cancel returned %d", rc);
  }
  gate_open(&gate, 2);
  for (int i = 0; i < 5; i++)
    if (fs[i] != NULL)
      check_outcome(fs[i], "cf_future_result");
  EXPECT(cf_executor_shutdown(ex, true, false), "cf_executor_shutdown", 0);
  for (int i = 0; i < 6; i++) {
    expect_done(fs[i], "pool");
    cf_future_release(fs[i]);
  }
  destroy_pool(ex);
  gate_fini(&gate);
  return all_ok;
}

/* A pool whose initializer fails: the queued jobs fail with CF_EBROKEN
 * (a message is copied for each), later submits are refused. */
static int failing_init(void *arg) {
  (void)arg;
  return 1;
}

static bool sc_broken(void) {
  bool all_ok = true;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;
  opts.initializer = failing_init;
  cf_executor_t *ex = NULL;
  int rc = cf_executor_create(&ex, &opts);
  EXPECT(rc, "cf_executor_create", CF_ENOMEM);
  if (rc != 0)
    return false;
  cf_future_t *fs[3] = {NULL};
  for (int i = 0; i < 3; i++) {
    void *arg = obj_new(0);
    rc = cf_executor_submit(ex, value_job, arg, obj_free, &fs[i]);
    EXPECT(rc, "cf_executor_submit", CF_ENOMEM, CF_EAGAIN, CF_EBROKEN);
    all_ok &= rc == 0 || rc == CF_EBROKEN;
    if (rc != 0) {
      obj_free(arg);
      fs[i] = NULL;
    }
  }
  for (int i = 0; i < 3; i++) {
    if (fs[i] == NULL)
      continue;
    int code = 0;
    const char *message = NULL;
    rc = cf_future_exception(fs[i], CF_FOREVER, &code, &message);
    EXPECT(rc, "cf_future_exception", 0);
    /* the message is gone if copying it ran out of memory */
    if (rc == 0 && (code != CF_EBROKEN ||
                    (message != NULL &&
                     strcmp(message, cf_strerror(CF_EBROKEN)) != 0)))
      problem("a job of a broken pool ended with %d \"%s\"", code,
              message != NULL ? message : "(none)");
    cf_future_release(fs[i]);
  }
  destroy_pool(ex);
  return all_ok;
}

/* Done callbacks: several per future (the first is stored inline, the
 * others allocate), on pool futures and standalone ones, completed,
 * cancelled and released while pending; a callback that submits more
 * work from the worker that completed the future. */
struct resubmit {
  cf_executor_t *ex;
  cf_future_t *f;
  int rc;
  sem_t done;
};

static void cb_resubmit(cf_future_t *f, void *data) {
  (void)f;
  struct resubmit *r = data;
  void *arg = obj_new(0);
  r->rc = cf_executor_submit(r->ex, value_job, arg, obj_free, &r->f);
  if (r->rc != 0) {
    obj_free(arg);
    r->f = NULL;
  }
  atomic_fetch_add(&cb_ran, 1);
  sem_post(&r->done);
}

static bool sc_callbacks(void) {
  bool all_ok = true;
  cf_executor_t *ex = new_pool(2);
  if (ex == NULL)
    return false;
  struct resubmit r = {ex, NULL, 0, {{0}}};
  sem_init(&r.done, 0, 0);
  cf_future_t *a = NULL;
  all_ok &= submit_obj(ex, value_job, &a) == 0;
  bool resubmit_registered = false;
  if (a != NULL) {
    int rc = cf_future_add_done_callback(a, cb_resubmit, &r);
    EXPECT(rc, "cf_future_add_done_callback", CF_ENOMEM);
    if (rc == 0) {
      atomic_fetch_add(&cb_registered, 1);
      resubmit_registered = true;
    }
    add_counted_callback(a);
    add_counted_callback(a);
  }
  /* Standalone: completed with a failure, then one more callback runs at
   * once; another cancelled; another released while pending. */
  cf_future_t *s = NULL;
  int rc = cf_future_create(&s);
  EXPECT(rc, "cf_future_create", CF_ENOMEM);
  all_ok &= rc == 0;
  if (s != NULL) {
    add_counted_callback(s);
    add_counted_callback(s);
    add_counted_callback(s);
    rc = cf_future_set_exception(s, 7, "seven");
    EXPECT(rc, "cf_future_set_exception", CF_ENOMEM);
    if (rc != 0) { /* s stays unchanged: complete it otherwise */
      if (cf_future_state(s) != CF_STATE_PENDING)
        problem("set_exception failed but changed the state");
      EXPECT(cf_future_set_result(s, obj_new(4), obj_free),
             "cf_future_set_result", 0);
    }
    all_ok &= rc == 0;
    add_counted_callback(s);
    cf_future_release(s);
  }
  cf_future_t *c = NULL;
  rc = cf_future_create(&c);
  EXPECT(rc, "cf_future_create", CF_ENOMEM);
  all_ok &= rc == 0;
  if (c != NULL) {
    add_counted_callback(c);
    add_counted_callback(c);
    if (cf_future_cancel(c) != 1)
      problem("cf_future_cancel of a pending future did not return 1");
    cf_future_release(c);
  }
  cf_future_t *p = NULL;
  rc = cf_future_create(&p);
  EXPECT(rc, "cf_future_create", CF_ENOMEM);
  all_ok &= rc == 0;
  if (p != NULL) {
    add_counted_callback(p);
    add_counted_callback(p);
    cf_future_release(p); /* pending: cancelled, callbacks run */
  }
  if (a != NULL)
    check_outcome(a, "cf_future_result");
  if (resubmit_registered) { /* it runs: a finishes */
    while (sem_wait(&r.done) != 0) {
    }
    EXPECT(r.rc, "cf_executor_submit from a done callback", CF_ENOMEM,
           CF_EAGAIN);
    all_ok &= r.rc == 0;
    if (r.f != NULL) {
      check_outcome(r.f, "cf_future_result");
      cf_future_release(r.f);
    }
  }
  EXPECT(cf_executor_shutdown(ex, true, false), "cf_executor_shutdown", 0);
  expect_done(a, "callbacks");
  cf_future_release(a);
  destroy_pool(ex);
  sem_destroy(&r.done);
  return all_ok;
}

/* wait (FIRST_EXCEPTION, FIRST_COMPLETED, ALL_COMPLETED) and
 * as_completed over futures with a duplicate, one of them blocked until
 * the waiters are installed. Jobs are queued so that one worker is
 * enough for every wait before the gate opens. */
static bool sc_wait(void) {
  bool all_ok = true;
  cf_executor_t *ex = new_pool(2);
  if (ex == NULL)
    return false;
  gate_t gate;
  gate_init(&gate);
  cf_future_t *failing = NULL, *value = NULL, *gated = NULL;
  all_ok &= submit_obj(ex, fail_job, &failing) == 0;
  all_ok &= submit_obj(ex, value_job, &value) == 0;
  int rc = cf_executor_submit(ex, gate_job, &gate, NULL, &gated);
  EXPECT(rc, "cf_executor_submit", CF_ENOMEM, CF_EAGAIN);
  if (rc != 0)
    gated = NULL;
  all_ok &= rc == 0;
  cf_future_t *fs[4];
  size_t n = 0;
  if (gated != NULL)
    fs[n++] = gated;
  if (failing != NULL)
    fs[n++] = failing;
  if (value != NULL)
    fs[n++] = value;
  if (gated != NULL)
    fs[n++] = gated; /* a duplicate */
  cf_future_t *done[4], *not_done[4];
  size_t nd, nn;
  if (failing != NULL) {
    rc = cf_wait(fs, n, CF_FOREVER, CF_FIRST_EXCEPTION, done, &nd, not_done,
                 &nn);
    EXPECT(rc, "cf_wait(FIRST_EXCEPTION)", CF_ENOMEM);
    all_ok &= rc == 0;
  }
  if (value != NULL) {
    rc = cf_wait(fs, n, CF_FOREVER, CF_FIRST_COMPLETED, done, &nd, not_done,
                 &nn);
    EXPECT(rc, "cf_wait(FIRST_COMPLETED)", CF_ENOMEM);
    all_ok &= rc == 0;
    if (rc == 0 && nd == 0)
      problem("cf_wait(FIRST_COMPLETED) returned with nothing done");
  }
  cf_as_completed_t *it = NULL;
  rc = cf_as_completed_create(fs, n, CF_FOREVER, &it);
  EXPECT(rc, "cf_as_completed_create", CF_ENOMEM);
  all_ok &= rc == 0;
  gate_open(&gate, 1);
  rc = cf_wait(fs, n, CF_FOREVER, CF_ALL_COMPLETED, done, &nd, not_done, &nn);
  EXPECT(rc, "cf_wait(ALL_COMPLETED)", CF_ENOMEM);
  all_ok &= rc == 0;
  if (rc == 0 && nn != 0)
    problem("cf_wait(ALL_COMPLETED) left %zu not done", nn);
  if (it != NULL) {
    size_t distinct = n - (gated != NULL), yielded = 0;
    cf_future_t *f;
    while ((rc = cf_as_completed_next(it, &f)) == 0 && yielded <= distinct)
      yielded++;
    if (rc != CF_EOF || yielded != distinct)
      problem("as_completed yielded %zu of %zu, then %s", yielded, distinct,
              cf_err_name(rc));
    cf_as_completed_destroy(it);
  }
  EXPECT(cf_executor_shutdown(ex, true, false), "cf_executor_shutdown", 0);
  cf_future_t *mine[3] = {failing, value, gated};
  for (int i = 0; i < 3; i++) {
    expect_done(mine[i], "wait");
    cf_future_release(mine[i]);
  }
  destroy_pool(ex);
  gate_fini(&gate);
  return all_ok;
}

/* map: a windowed map iterated to the end, an unwindowed one dropped
 * after its first result. Position 3 fails. */
struct source {
  int next, n;
};

static int source_next(void *source, void **arg) {
  struct source *s = source;
  if (s->next >= s->n)
    return 0;
  *arg = obj_new(++s->next);
  return 1;
}

static int map_job(void *arg, cf_job_t *job) {
  int i = *(int *)arg;
  if (i == 3)
    return cf_job_fail(job, 42, "job failed with %d", 42);
  cf_job_return(job, obj_new(i), obj_free);
  return 0;
}

static bool sc_map(void) {
  bool all_ok = true;
  cf_executor_t *ex = new_pool(2);
  if (ex == NULL)
    return false;
  struct source src = {0, 6};
  cf_map_t *m = NULL;
  int rc = cf_executor_map(ex, map_job, source_next, &src, obj_free,
                           CF_FOREVER, 2, &m);
  EXPECT(rc, "cf_executor_map", CF_ENOMEM, CF_EAGAIN);
  all_ok &= rc == 0;
  if (m != NULL) {
    int positions = 0;
    cf_future_t *f;
    while ((rc = cf_map_next(m, &f)) != CF_EOF && positions <= 6) {
      positions++;
      if (rc == 0) {
        check_outcome(f, "cf_future_result of a map position");
      } else {
        EXPECT(rc, "cf_map_next", CF_ENOMEM, CF_EAGAIN);
        all_ok = false;
      }
    }
    if (rc != CF_EOF)
      problem("cf_map_next never returned CF_EOF");
    if (all_ok && positions != 6)
      problem("the map yielded %d positions, not 6", positions);
    cf_map_destroy(m);
  }
  struct source src2 = {0, 4};
  cf_map_t *m2 = NULL;
  rc = cf_executor_map(ex, map_job, source_next, &src2, obj_free, CF_FOREVER,
                       0, &m2);
  EXPECT(rc, "cf_executor_map", CF_ENOMEM, CF_EAGAIN);
  all_ok &= rc == 0;
  if (m2 != NULL) {
    cf_future_t *f;
    rc = cf_map_next(m2, &f);
    EXPECT(rc, "cf_map_next", 0);
    if (rc == 0)
      check_outcome(f, "cf_future_result of a map position");
    cf_map_destroy(m2); /* the rest is cancelled or runs */
  }
  destroy_pool(ex);
  return all_ok;
}

/* Standalone futures: set_exception with a message (copied), the result
 * path, notify-cancel, repr. */
static bool sc_standalone(void) {
  bool all_ok = true;
  cf_future_t *f = NULL;
  int rc = cf_future_create(&f);
  EXPECT(rc, "cf_future_create", CF_ENOMEM);
  if (rc != 0)
    return false;
  rc = cf_future_set_exception(f, 7, "seven");
  EXPECT(rc, "cf_future_set_exception", CF_ENOMEM);
  all_ok &= rc == 0;
  if (rc == 0) {
    int code = 0;
    const char *message = NULL;
    EXPECT(cf_future_exception(f, 0, &code, &message), "cf_future_exception",
           0);
    if (code != 7 || message == NULL || strcmp(message, "seven") != 0)
      problem("set_exception(7, \"seven\") reads back as %d \"%s\"", code,
              message != NULL ? message : "(none)");
  } else if (cf_future_state(f) != CF_STATE_PENDING) {
    problem("set_exception failed but changed the state");
  }
  char buf[128];
  if (cf_future_repr(f, buf, sizeof(buf)) <= 0)
    problem("cf_future_repr failed");
  cf_future_release(f);

  cf_future_t *g = NULL;
  rc = cf_future_create(&g);
  EXPECT(rc, "cf_future_create", CF_ENOMEM);
  all_ok &= rc == 0;
  if (g != NULL) {
    expect_true(cf_future_set_running_or_notify_cancel(g) == 1,
                "set_running_or_notify_cancel of a pending future");
    EXPECT(cf_future_set_result(g, obj_new(5), obj_free),
           "cf_future_set_result", 0);
    void *v = NULL;
    EXPECT(cf_future_result(g, 0, &v), "cf_future_result", 0);
    /* A second completion is refused, allocation or not. */
    rc = cf_future_set_exception(g, 8, "late");
    EXPECT_CODE(rc, CF_EINVALID_STATE, "cf_future_set_exception", CF_ENOMEM);
    cf_future_release(g);
  }

  cf_future_t *h = NULL;
  rc = cf_future_create(&h);
  EXPECT(rc, "cf_future_create", CF_ENOMEM);
  all_ok &= rc == 0;
  if (h != NULL) {
    expect_true(cf_future_cancel(h) == 1, "cancel of a pending future");
    expect_true(cf_future_set_running_or_notify_cancel(h) == 0,
                "set_running_or_notify_cancel of a cancelled future");
    cf_future_release(h);
  }
  return all_ok;
}

/* Several threads submit at once to a pool that has no thread yet, so
 * that thread starts are in flight together. When they fail, a submit
 * returns CF_EAGAIN, or its future ends anyway: when the pool has no
 * thread, every future handed out must be done already. */
#define RACERS 4
#define RACE_SUBMITS 100

struct racer {
  cf_executor_t *ex;
  cf_future_t *fs[RACE_SUBMITS];
  int rcs[RACE_SUBMITS];
  sem_t *go;
};

static void *racer_main(void *arg) {
  struct racer *r = arg;
  while (sem_wait(r->go) != 0) {
  }
  for (int i = 0; i < RACE_SUBMITS; i++) {
    void *obj = obj_new(0);
    r->rcs[i] = cf_executor_submit(r->ex, value_job, obj, obj_free, &r->fs[i]);
    if (r->rcs[i] != 0) {
      obj_free(obj);
      r->fs[i] = NULL;
    }
  }
  return NULL;
}

static bool sc_concurrent_submit(void) {
  bool all_ok = true;
  cf_executor_t *ex = new_pool(RACERS);
  if (ex == NULL)
    return false;
  sem_t go;
  sem_init(&go, 0, 0);
  struct racer racers[RACERS];
  pthread_t tids[RACERS];
  for (int i = 0; i < RACERS; i++) {
    racers[i].ex = ex;
    racers[i].go = &go;
    if (pthread_create(&tids[i], NULL, racer_main, &racers[i]) != 0)
      abort(); /* the test's own threads: not injected */
  }
  for (int i = 0; i < RACERS; i++)
    sem_post(&go);
  for (int i = 0; i < RACERS; i++)
    pthread_join(tids[i], NULL);
  bool no_thread = cf_executor_thread_count(ex) == 0;
  for (int i = 0; i < RACERS; i++)
    for (int j = 0; j < RACE_SUBMITS; j++) {
      int rc = racers[i].rcs[j];
      EXPECT(rc, "cf_executor_submit", CF_EAGAIN);
      all_ok &= rc == 0;
      cf_future_t *f = racers[i].fs[j];
      if (f == NULL)
        continue;
      if (no_thread && !cf_future_done(f)) {
        problem("a future was handed out by a pool that has no thread");
        cf_future_release(f); /* it never runs: the destroy frees it */
        continue;
      }
      void *v = NULL;
      rc = cf_future_result(f, CF_FOREVER, &v);
      EXPECT(rc, "cf_future_result", CF_EFAILED);
      if (rc == CF_EFAILED) {
        int code = 0;
        EXPECT(cf_future_exception(f, 0, &code, NULL), "cf_future_exception",
               0);
        if (code != CF_EAGAIN)
          problem("a job failed with %d, not CF_EAGAIN", code);
      }
      cf_future_release(f);
    }
  EXPECT(cf_executor_shutdown(ex, true, true), "cf_executor_shutdown", 0);
  destroy_pool(ex);
  sem_destroy(&go);
  return all_ok;
}

/* ---- the bridge ---- */

struct bridge_ctx {
  int delivered; /* then callbacks run (loop thread) */
  int calls;     /* call_threadsafe functions run */
  sem_t wake;    /* the wake-up function's */
};

static void on_then(cf_future_t *f, int status, void *data) {
  struct bridge_ctx *ctx = data;
  ctx->delivered++;
  if (status != 0 && status != CF_EFAILED && status != CF_ECANCELLED)
    problem("a delivery had status %s", cf_err_name(status));
  if (status == 0 && cf_future_result(f, 0, NULL) != 0)
    problem("a delivery with status 0 has no value");
}

static void on_call(void *arg) { ((struct bridge_ctx *)arg)->calls++; }

/* The wake-up function: data is the wake-up datum (an object with a
 * destructor, to check that it runs once), so the context is global. */
static struct bridge_ctx *wake_ctx;

static void on_wakeup(void *data) {
  (void)data;
  sem_post(&wake_ctx->wake);
}

/* Wait for the bridge to have something, with a hang guard. */
static bool bridge_wait(cf_bridge_t *b, struct bridge_ctx *ctx) {
  int fd = cf_bridge_fd(b);
  if (fd >= 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    do
      n = poll(&p, 1, (int)(GUARD_S * 1000));
    while (n < 0 && errno == EINTR);
    return n > 0;
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)GUARD_S;
  int rc;
  do
    rc = sem_timedwait(&ctx->wake, &until);
  while (rc != 0 && errno == EINTR);
  return rc == 0;
}

/* Deliveries (run_in_executor, then on a standalone future, a cancelled
 * one), call_threadsafe, dispatch until everything arrived, destroy. With
 * use_fd the bridge has its own fd (eventfd or pipe), else a wake-up
 * function. */
static bool bridge_scenario(bool use_fd) {
  bool all_ok = true;
  struct bridge_ctx ctx = {0, 0, {{0}}};
  sem_init(&ctx.wake, 0, 0);
  wake_ctx = &ctx;
  cf_bridge_t *b = NULL;
  int rc;
  if (use_fd) {
    rc = cf_bridge_create(&b);
    EXPECT(rc, "cf_bridge_create", CF_ENOMEM, CF_ESYSTEM);
    if (rc != 0 && run_class == F_FD && rc != CF_ESYSTEM)
      problem("cf_bridge_create without an fd returned %s", cf_err_name(rc));
  } else {
    void *datum = obj_new(6);
    rc = cf_bridge_create_with_wakeup(&b, on_wakeup, datum, obj_free);
    EXPECT(rc, "cf_bridge_create_with_wakeup", CF_ENOMEM);
    if (rc != 0)
      obj_free(datum);
  }
  if (rc != 0) {
    sem_destroy(&ctx.wake);
    return false;
  }
  cf_executor_t *ex = new_pool(2);
  all_ok &= ex != NULL;
  int expected = 0;
  gate_t gate;
  gate_init(&gate);
  if (ex != NULL) {
    /* Arguments without destructors: after a failed run_in_executor the
     * caller cannot tell whether the pool took the argument. */
    cf_job_fn jobs[2] = {value_job, fail_job};
    for (int i = 0; i < 2; i++) {
      rc = cf_bridge_run_in_executor(b, ex, jobs[i], NULL, NULL, on_then, &ctx,
                                     NULL);
      EXPECT(rc, "cf_bridge_run_in_executor", CF_ENOMEM, CF_EAGAIN);
      all_ok &= rc == 0;
      expected += rc == 0;
    }
    cf_then_t *t = NULL;
    rc = cf_bridge_run_in_executor(b, ex, gate_job, &gate, NULL, on_then, &ctx,
                                   &t);
    EXPECT(rc, "cf_bridge_run_in_executor", CF_ENOMEM, CF_EAGAIN);
    all_ok &= rc == 0;
    if (rc == 0) {
      expected++;
      if (cf_then_cancel(t) != 1)
        problem("cf_then_cancel of a fresh delivery did not return 1");
    }
  }
  gate_open(&gate, 1);
  cf_future_t *s = NULL;
  rc = cf_future_create(&s);
  EXPECT(rc, "cf_future_create", CF_ENOMEM);
  all_ok &= rc == 0;
  if (s != NULL) {
    rc = cf_bridge_then(b, s, on_then, &ctx, NULL);
    EXPECT(rc, "cf_bridge_then", CF_ENOMEM);
    all_ok &= rc == 0;
    expected += rc == 0;
    EXPECT(cf_future_set_result(s, obj_new(7), obj_free),
           "cf_future_set_result", 0);
    cf_future_release(s);
  }
  for (int i = 0; i < 2; i++) {
    rc = cf_bridge_call_threadsafe(b, on_call, &ctx);
    EXPECT(rc, "cf_bridge_call_threadsafe", CF_ENOMEM);
    all_ok &= rc == 0;
    expected += rc == 0;
  }
  while (ctx.delivered + ctx.calls < expected) {
    if (!bridge_wait(b, &ctx)) {
      problem("%d of %d deliveries never arrived",
              expected - ctx.delivered - ctx.calls, expected);
      break;
    }
    rc = cf_bridge_dispatch(b);
    if (rc < 0)
      problem("cf_bridge_dispatch returned %s", cf_err_name(rc));
  }
  cf_bridge_destroy(b);
  if (ex != NULL)
    destroy_pool(ex);
  gate_fini(&gate);
  sem_destroy(&ctx.wake);
  wake_ctx = NULL;
  return all_ok;
}

static bool sc_bridge_fd(void) { return bridge_scenario(true); }
static bool sc_bridge_wakeup(void) { return bridge_scenario(false); }

/* ---- the loop and tasks ---- */

static bool loop_all_ok;

/* Sleeps (a timer, then a plain yield), returns a value. */
static int t_value(cf_lfuture_t *self, void *arg) {
  (void)arg;
  int rc = cf_sleep(0.001);
  EXPECT(rc, "cf_sleep", CF_ENOMEM, CF_ECANCELLED);
  if (rc == 0) {
    rc = cf_sleep(0);
    EXPECT(rc, "cf_sleep(0)", CF_ENOMEM, CF_ECANCELLED);
  }
  if (rc != 0)
    return rc;
  cf_task_return(self, obj_new(8), obj_free);
  return 0;
}

/* Runs a job that returns a value and one that fails on the loop's own
 * executor, created on first use. */
static int t_executor(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  cf_future_t *done = NULL;
  /* CF_ECANCELLED: the main task ended early (its await failed) and
   * cf_loop_close cancelled this one. */
  int rc = cf_run_in_executor(NULL, value_job, NULL, NULL, &done);
  EXPECT(rc, "cf_run_in_executor", CF_ENOMEM, CF_EAGAIN, CF_ECANCELLED);
  if (done != NULL) {
    EXPECT(cf_future_result(done, 0, NULL), "cf_future_result", 0);
    cf_future_release(done);
    done = NULL;
  }
  if (rc != 0)
    return rc;
  rc = cf_run_in_executor(NULL, fail_job, NULL, NULL, &done);
  EXPECT_CODE(rc, CF_EFAILED, "cf_run_in_executor", CF_ENOMEM, CF_EAGAIN,
              CF_ECANCELLED);
  if (done != NULL) {
    check_outcome(done, "cf_future_result");
    cf_future_release(done);
  }
  return rc == CF_EFAILED ? 0 : rc;
}

/* Fails with a formatted message. */
static int t_fail(cf_lfuture_t *self, void *arg) {
  (void)arg;
  int rc = cf_sleep(0);
  EXPECT(rc, "cf_sleep(0)", CF_ENOMEM, CF_ECANCELLED);
  if (rc != 0)
    return rc;
  cf_task_return(self, obj_new(9), obj_free); /* dropped: it fails */
  return cf_task_fail(self, 9, "task failed with %d", 9);
}

/* Check an awaited outcome of t_fail (directly or through a shield). */
static void check_task_failure(cf_lfuture_t *f, int rc, const char *what) {
  EXPECT_CODE(rc, CF_EFAILED, what, CF_ENOMEM, CF_ECANCELLED);
  loop_all_ok &= rc == CF_EFAILED;
  if (rc != CF_EFAILED)
    return;
  int code = 0;
  const char *message = NULL;
  EXPECT(cf_lfuture_exception(f, &code, &message), "cf_lfuture_exception", 0);
  /* CF_ENOMEM: the task got no stack; a message may be lost to memory */
  if ((code != 9 && code != CF_ENOMEM) ||
      (code == 9 && message != NULL &&
       strcmp(message, "task failed with 9") != 0))
    problem("%s: failure %d \"%s\"", what, code,
            message != NULL ? message : "(none)");
}

/* Sleeps for ever: only a cancellation ends it. */
static int t_forever(cf_lfuture_t *self, void *arg) {
  (void)self;
  (void)arg;
  int rc = cf_sleep(3600);
  EXPECT_CODE(rc, CF_ECANCELLED, "cf_sleep(3600)", CF_ENOMEM);
  return rc;
}

static cf_lfuture_t *spawn_task(cf_loop_t *loop, cf_coro_fn fn) {
  cf_lfuture_t *t = NULL;
  int rc = cf_task_create(loop, fn, NULL, &t);
  EXPECT(rc, "cf_task_create", CF_ENOMEM);
  loop_all_ok &= rc == 0;
  return rc == 0 ? t : NULL;
}

static void note_await(int rc, const char *what) {
  EXPECT(rc, what, CF_EFAILED, CF_ECANCELLED, CF_ENOMEM);
  loop_all_ok &= rc == 0;
}

static int t_main(cf_lfuture_t *self, void *arg) {
  (void)self;
  cf_loop_t *loop = arg;
  /* gather over a sleeper and an executor user */
  cf_lfuture_t *a = spawn_task(loop, t_value);
  cf_lfuture_t *b = spawn_task(loop, t_executor);
  cf_lfuture_t *g = NULL;
  if (a != NULL && b != NULL) {
    cf_lfuture_t *both[2] = {a, b};
    int rc = cf_gather(loop, both, 2, &g);
    EXPECT(rc, "cf_gather", CF_ENOMEM);
    loop_all_ok &= rc == 0;
    if (rc == 0)
      note_await(cf_await(g, NULL), "cf_await(gather)");
  }
  /* shield over a task that fails: the outer copies the failure */
  cf_lfuture_t *c = spawn_task(loop, t_fail);
  cf_lfuture_t *s = NULL;
  if (c != NULL) {
    int rc = cf_shield(c, &s);
    EXPECT(rc, "cf_shield", CF_ENOMEM);
    loop_all_ok &= rc == 0;
    if (rc == 0)
      check_task_failure(s, cf_await(s, NULL), "cf_await(shield)");
  }
  /* a failing task awaited directly */
  cf_lfuture_t *h = spawn_task(loop, t_fail);
  if (h != NULL)
    check_task_failure(h, cf_await(h, NULL), "cf_await(task)");
  /* a plain loop future completed with a failure message */
  cf_lfuture_t *p = NULL;
  int prc = cf_lfuture_create(loop, &p);
  EXPECT(prc, "cf_lfuture_create", CF_ENOMEM);
  loop_all_ok &= prc == 0;
  if (p != NULL) {
    prc = cf_lfuture_set_exception(p, 4, "four");
    EXPECT(prc, "cf_lfuture_set_exception", CF_ENOMEM);
    loop_all_ok &= prc == 0;
    if (prc == 0) {
      int code = 0;
      const char *message = NULL;
      EXPECT_CODE(cf_await(p, NULL), CF_EFAILED, "cf_await(loop future)", 0);
      EXPECT(cf_lfuture_exception(p, &code, &message),
             "cf_lfuture_exception", 0);
      expect_true(code == 4 && message != NULL && strcmp(message, "four") == 0,
                  "set_exception(4, \"four\") reads back otherwise");
    } else { /* unchanged: complete it otherwise */
      expect_true(!cf_lfuture_done(p),
                  "cf_lfuture_set_exception failed but completed the future");
      EXPECT(cf_lfuture_set_result(p, obj_new(10), obj_free),
             "cf_lfuture_set_result", 0);
      EXPECT(cf_await(p, NULL), "cf_await(loop future)", 0);
    }
  }
  /* wait_for that times out: the task is cancelled and awaited */
  cf_lfuture_t *d = spawn_task(loop, t_forever);
  if (d != NULL) {
    int rc = cf_wait_for(d, 0.001, NULL);
    EXPECT_CODE(rc, CF_ETIMEDOUT, "cf_wait_for(timeout)", CF_ENOMEM,
                CF_EFAILED);
    loop_all_ok &= rc == CF_ETIMEDOUT;
    /* Ended, usually cancelled; but if its sleep failed in the iteration
     * where the timer fired, it failed and the timeout still wins, as
     * with asyncio.timeout (SEMANTICS.md 4.4). */
    if (rc == CF_ETIMEDOUT && !cf_lfuture_done(d))
      problem("wait_for timed out before the task ended");
  }
  /* wait_for in time, and an awaited pool future */
  cf_lfuture_t *e = spawn_task(loop, t_value);
  if (e != NULL) {
    void *v = NULL;
    note_await(cf_wait_for(e, 3600, &v), "cf_wait_for");
  }
  cf_lfuture_t *all[] = {a, b, g, c, s, h, p, d, e};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
    cf_lfuture_release(all[i]);
  return 0;
}

static void loop_call(void *arg) { (void)arg; }

static bool sc_loop(void) {
  loop_all_ok = true;
  cf_loop_t *loop = NULL;
  int rc = cf_loop_create(&loop, NULL);
  EXPECT(rc, "cf_loop_create", CF_ENOMEM, CF_ESYSTEM);
  if (rc != 0 && run_class == F_FD && rc != CF_ESYSTEM)
    problem("cf_loop_create without an fd returned %s", cf_err_name(rc));
  if (rc != 0)
    return false;
  rc = cf_loop_call_soon_threadsafe(loop, loop_call, NULL);
  EXPECT(rc, "cf_loop_call_soon_threadsafe", CF_ENOMEM);
  loop_all_ok &= rc == 0;
  rc = cf_loop_call_later(loop, 0.001, loop_call, NULL, NULL);
  EXPECT(rc, "cf_loop_call_later", CF_ENOMEM);
  loop_all_ok &= rc == 0;
  cf_lfuture_t *main_task = NULL;
  rc = cf_task_create(loop, t_main, loop, &main_task);
  EXPECT(rc, "cf_task_create", CF_ENOMEM);
  loop_all_ok &= rc == 0;
  if (main_task != NULL) {
    rc = cf_loop_run_until_complete(loop, main_task);
    /* CF_EFAILED: the main task got no stack. CF_ENOMEM: its done
     * callback could not be added (loop.h does not list it yet). */
    EXPECT(rc, "cf_loop_run_until_complete", CF_EFAILED, CF_ENOMEM);
    loop_all_ok &= rc == 0;
    cf_lfuture_release(main_task);
  }
  EXPECT(cf_loop_close(loop), "cf_loop_close", 0);
  return loop_all_ok;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

static void test_alloc_pool(void **state) {
  (void)state;
  explore("pool", sc_pool, F_ALLOC);
}

static void test_alloc_broken(void **state) {
  (void)state;
  explore("broken_pool", sc_broken, F_ALLOC);
}

static void test_alloc_callbacks(void **state) {
  (void)state;
  explore("callbacks", sc_callbacks, F_ALLOC);
}

static void test_alloc_wait(void **state) {
  (void)state;
  explore("wait", sc_wait, F_ALLOC);
}

static void test_alloc_map(void **state) {
  (void)state;
  explore("map", sc_map, F_ALLOC);
}

static void test_alloc_standalone(void **state) {
  (void)state;
  explore("standalone", sc_standalone, F_ALLOC);
}

static void test_alloc_bridge_fd(void **state) {
  (void)state;
  explore("bridge_fd", sc_bridge_fd, F_ALLOC);
}

static void test_alloc_bridge_wakeup(void **state) {
  (void)state;
  explore("bridge_wakeup", sc_bridge_wakeup, F_ALLOC);
}

static void test_alloc_loop(void **state) {
  (void)state;
  explore("loop", sc_loop, F_ALLOC);
}

static void test_thread_pool(void **state) {
  (void)state;
  explore("pool", sc_pool, F_THREAD);
}

static void test_thread_callbacks(void **state) {
  (void)state;
  explore("callbacks", sc_callbacks, F_THREAD);
}

static void test_thread_wait(void **state) {
  (void)state;
  explore("wait", sc_wait, F_THREAD);
}

static void test_thread_map(void **state) {
  (void)state;
  explore("map", sc_map, F_THREAD);
}

static void test_thread_concurrent_submit(void **state) {
  (void)state;
  explore("concurrent_submit", sc_concurrent_submit, F_THREAD);
}

static void test_thread_bridge(void **state) {
  (void)state;
  explore("bridge_fd", sc_bridge_fd, F_THREAD);
}

static void test_thread_loop(void **state) {
  (void)state;
  explore("loop", sc_loop, F_THREAD);
}

static void test_fd_bridge(void **state) {
  (void)state;
  explore("bridge_fd", sc_bridge_fd, F_FD);
}

static void test_fd_loop(void **state) {
  (void)state;
  explore("loop", sc_loop, F_FD);
}

/* ------------------------------------------------------------------ */
/* Schedule injection                                                 */
/* ------------------------------------------------------------------ */

/* A worker found the queue empty; before it looks whether the queue is
 * closed, a job is submitted and the pool shut down (wait = false, from
 * the worker itself: the hook runs there). The job was queued before the
 * close, so it must run; a worker that took "closed" for "empty" left it
 * queued for ever, its future pending. */
static struct {
  cf_executor_t *ex;
  atomic_int calls, ran;
  int submit_rc, shutdown_rc;
  cf_future_t *late;
  sem_t landed;
} window;

static int window_job(void *arg, cf_job_t *job) {
  (void)arg;
  (void)job;
  atomic_fetch_add(&window.ran, 1);
  return 0;
}

static void window_hook(void) {
  if (atomic_fetch_add(&window.calls, 1) != 0)
    return;
  window.submit_rc =
      cf_executor_submit(window.ex, window_job, NULL, NULL, &window.late);
  window.shutdown_rc = cf_executor_shutdown(window.ex, false, false);
  sem_post(&window.landed);
}

static void test_job_queued_just_before_close_runs(void **state) {
  (void)state;
  assert_int_equal(sem_init(&window.landed, 0, 0), 0);
  cf__fault_idle_hook = window_hook;
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1;
  opts.idle_spin_us = 0;
  assert_int_equal(cf_executor_create(&window.ex, &opts), 0);
  assert_int_equal(
      cf_executor_submit(window.ex, window_job, NULL, NULL, NULL), 0);
  while (sem_wait(&window.landed) != 0) {
  }
  assert_int_equal(cf_executor_destroy(window.ex), 0);
  cf__fault_idle_hook = NULL;
  assert_int_equal(window.submit_rc, 0);
  assert_int_equal(window.shutdown_rc, 0);
  assert_int_equal(atomic_load(&window.ran), 2);
  assert_int_equal(cf_future_state(window.late), CF_STATE_FINISHED);
  cf_future_release(window.late);
  sem_destroy(&window.landed);
}

/* ---- cf_bridge_prepare's adaptive spin, on a test clock ---- */

static struct {
  int64_t now;  /* the test clock, in ns: only the loop thread reads it */
  int64_t step; /* added at each read, so that a spin runs out */
  int64_t budgets[16];
  int nbudgets;
} sc;

static int64_t spin_clock(void) {
  int64_t t = sc.now;
  sc.now += sc.step;
  return t;
}

static void spin_record(int64_t budget_ns) {
  if (sc.nbudgets < 16)
    sc.budgets[sc.nbudgets] = budget_ns;
  sc.nbudgets++;
}

/* The test clock (from 1 s, 1 us per read) and the budget log, fresh. */
static void spin_hooks_install(void) {
  memset(&sc, 0, sizeof(sc));
  sc.now = 1000000000L;
  sc.step = 1000;
  cf__fault_clock_hook = spin_clock;
  cf__fault_spin_hook = spin_record;
}

static void spin_hooks_remove(void) {
  cf__fault_clock_hook = NULL;
  cf__fault_spin_hook = NULL;
}

static void count_delivery(cf_future_t *f, int status, void *data) {
  (void)f;
  (void)status;
  (*(int *)data)++;
}

/* Put a new pending delivery in flight on b; the caller completes it. */
static cf_future_t *in_flight(cf_bridge_t *b, int *delivered) {
  cf_future_t *f;
  assert_int_equal(cf_future_create(&f), 0);
  assert_int_equal(cf_bridge_then(b, f, count_delivery, delivered, NULL), 0);
  return f;
}

/* Complete f; the loop dispatches it `after` ns after the last spin began. */
static void deliver_after(cf_bridge_t *b, cf_future_t *f, int64_t missed_at,
                          int64_t after) {
  assert_int_equal(cf_future_set_result(f, NULL, NULL), 0);
  sc.now = missed_at + after;
  assert_int_equal(cf_bridge_dispatch(b), 1);
  cf_future_release(f);
}

/* Ceiling 100 us. The first spin has it all; each wait beyond the ceiling
 * with nothing delivered halves the budget, down to 0; a delivery 20 us
 * after a miss sets it to 30 us; one after 300 us halves it; one after
 * 90 us sets it to the ceiling (135 us, capped). set_spin_us starts over
 * from the new ceiling. With nothing in flight prepare does not spin. */
static void test_bridge_spin_adapts(void **state) {
  (void)state;
  spin_hooks_install();
  cf_bridge_t *b;
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(cf_bridge_set_spin_us(b, 100), 0);
  int delivered = 0;

  cf_future_t *f = in_flight(b, &delivered);
  static const int64_t halving[] = {100000, 50000, 25000, 12500, 6250,
                                    3125,   1562,  0,     0};
  int64_t missed_at = 0;
  for (int i = 0; i < 9; i++) {
    if (i > 0)
      sc.now += 200000; /* a wait beyond the ceiling, nothing delivered */
    missed_at = sc.now;
    assert_int_equal(cf_bridge_prepare(b), 0);
    assert_int_equal(sc.nbudgets, i + 1);
    assert_int_equal(sc.budgets[i], halving[i]);
  }
  deliver_after(b, f, missed_at, 20000);

  static const struct {
    int64_t after, budget;
  } learn[] = {{300000, 30000}, {90000, 15000}, {0, 100000}};
  for (int i = 0; i < 3; i++) {
    f = in_flight(b, &delivered);
    missed_at = sc.now;
    assert_int_equal(cf_bridge_prepare(b), 0);
    assert_int_equal(sc.nbudgets, 10 + i);
    assert_int_equal(sc.budgets[9 + i], learn[i].budget);
    if (learn[i].after > 0)
      deliver_after(b, f, missed_at, learn[i].after);
  }
  assert_int_equal(cf_bridge_set_spin_us(b, 0), 0);
  assert_int_equal(cf_bridge_prepare(b), 0);
  assert_int_equal(sc.budgets[12], 0);
  deliver_after(b, f, sc.now, 1000);
  assert_int_equal(delivered, 4);
  assert_int_equal(cf_bridge_prepare(b), 0); /* nothing in flight */
  assert_int_equal(sc.nbudgets, 13);
  cf_bridge_destroy(b);
  spin_hooks_remove();
}

/* A bridge created on a thread limited to one CPU never spins: the job it
 * would wait for needs that CPU (budget 0 whatever the ceiling). */
static void test_bridge_no_spin_on_one_cpu(void **state) {
  (void)state;
  spin_hooks_install();
  cpu_set_t saved;
  assert_int_equal(pin_thread_to_one_cpu(&saved), 0);
  cf_bridge_t *b;
  int rc = cf_bridge_create(&b);
  assert_int_equal(unpin_thread(&saved), 0);
  assert_int_equal(rc, 0);
  int delivered = 0;
  cf_future_t *f = in_flight(b, &delivered);
  assert_int_equal(cf_bridge_prepare(b), 0);
  assert_int_equal(sc.nbudgets, 1);
  assert_int_equal(sc.budgets[0], 0);
  deliver_after(b, f, sc.now, 1000);
  assert_int_equal(delivered, 1);
  cf_bridge_destroy(b);
  spin_hooks_remove();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_pool),
      cmocka_unit_test(test_alloc_broken),
      cmocka_unit_test(test_alloc_callbacks),
      cmocka_unit_test(test_alloc_wait),
      cmocka_unit_test(test_alloc_map),
      cmocka_unit_test(test_alloc_standalone),
      cmocka_unit_test(test_alloc_bridge_fd),
      cmocka_unit_test(test_alloc_bridge_wakeup),
      cmocka_unit_test(test_alloc_loop),
      cmocka_unit_test(test_thread_pool),
      cmocka_unit_test(test_thread_callbacks),
      cmocka_unit_test(test_thread_wait),
      cmocka_unit_test(test_thread_map),
      cmocka_unit_test(test_thread_concurrent_submit),
      cmocka_unit_test(test_thread_bridge),
      cmocka_unit_test(test_thread_loop),
      cmocka_unit_test(test_fd_bridge),
      cmocka_unit_test(test_fd_loop),
      cmocka_unit_test(test_job_queued_just_before_close_runs),
      cmocka_unit_test(test_bridge_spin_adapts),
      cmocka_unit_test(test_bridge_no_spin_on_one_cpu),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
