/*
 * Bounded stress tests: deterministic in what they count, not in the
 * schedule. Several threads submit, cancel, wait, iterate, add done
 * callbacks (some of which submit more work) and complete standalone
 * futures, while one thread shuts the pool down midway. At the end every
 * future is done, every done callback ran exactly once, every result and
 * argument destructor ran exactly once, and no object is left alive.
 *
 * Random choices come from rand_r with a printed seed; set CF_STRESS_SEED
 * to replay one, and CF_STRESS_OPS to change the number of operations of
 * the mixed test (default 20000 in all).
 *
 * Threads other than the test thread never assert: they count anomalies
 * into ts.bad (and print the first few) and the test thread asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfutures.h"
#include "helpers.h"

#define TS_ASSERT_RC(expr, want)                                          \
  do {                                                                    \
    int ts_rc_ = (expr);                                                  \
    int ts_want_ = (want);                                                \
    if (ts_rc_ != ts_want_)                                               \
      fail_msg("%s: got %s (%d), want %s (%d)", #expr,                    \
               cf_err_name(ts_rc_), ts_rc_, cf_err_name(ts_want_),        \
               ts_want_);                                                 \
  } while (0)

#define TS_THREADS 4
#define TS_SUBSET 6

/* ---- bookkeeping ----------------------------------------------------- */

/* One record per job argument. */
typedef struct ts_argrec {
  atomic_int dtor_runs;
  atomic_int ran;
  atomic_int submitted;
} ts_argrec_t;

/* One record per done-callback registration. */
typedef struct ts_cbrec {
  atomic_int calls;
  atomic_int registered;
  atomic_int bad_state; /* callback saw a future that was not done */
  int action;
} ts_cbrec_t;

/* Values and arguments are heap objects; the destructor bumps the run
 * counter of the object's record and the live counter. */
typedef struct ts_obj {
  atomic_int *dtor_runs;
} ts_obj_t;

typedef struct ts_arg {
  ts_obj_t base; /* first: ts_obj_free frees either kind */
  ts_argrec_t *rec;
  int kind;
  unsigned spin;
} ts_arg_t;

typedef struct ts_entry {
  cf_future_t *f;
  int standalone;
  long arg; /* index into ts.args, -1 for standalone */
} ts_entry_t;

static struct ts_ctx {
  cf_executor_t *ex;
  unsigned seed;

  atomic_int live;
  atomic_int bad;

  ts_argrec_t *args;
  size_t args_cap;
  atomic_size_t args_used;

  atomic_int *vals; /* dtor runs, one per value */
  size_t vals_cap;
  atomic_size_t vals_used;

  ts_cbrec_t *cbs;
  size_t cbs_cap;
  atomic_size_t cbs_used;

  pthread_mutex_t reg_lock;
  ts_entry_t *reg;
  size_t reg_n;
  size_t reg_cap;
  size_t *sa; /* indices of standalone entries */
  size_t sa_n;

  atomic_uint tls_counter;
  atomic_int shutdown_done;
  atomic_int submits_ok;
} ts;

static void ts_bad(const char *what, int rc) {
  if (atomic_fetch_add(&ts.bad, 1) < 10)
    fprintf(stderr, "# stress anomaly: %s (rc %s = %d)\n", what,
            cf_err_name(rc), rc);
}

static _Thread_local unsigned ts_tls_seed;
static _Thread_local int ts_tls_seeded;

static void ts_seed_thread(unsigned seed) {
  ts_tls_seed = seed;
  ts_tls_seeded = 1;
}

static unsigned ts_rand(void) {
  if (!ts_tls_seeded) {
    unsigned k = atomic_fetch_add(&ts.tls_counter, 1);
    ts_seed_thread(ts.seed ^ (0x9E3779B9u * (k + 101u)));
  }
  return (unsigned)rand_r(&ts_tls_seed);
}

static void ts_ctx_init(size_t args, size_t vals, size_t cbs, size_t reg) {
  memset(&ts, 0, sizeof(ts));
  atomic_init(&ts.live, 0);
  atomic_init(&ts.bad, 0);
  atomic_init(&ts.args_used, 0);
  atomic_init(&ts.vals_used, 0);
  atomic_init(&ts.cbs_used, 0);
  atomic_init(&ts.tls_counter, 0);
  atomic_init(&ts.shutdown_done, 0);
  atomic_init(&ts.submits_ok, 0);
  ts.args_cap = args;
  ts.args = calloc(args ? args : 1, sizeof(*ts.args));
  ts.vals_cap = vals;
  ts.vals = calloc(vals, sizeof(*ts.vals));
  ts.cbs_cap = cbs;
  ts.cbs = calloc(cbs ? cbs : 1, sizeof(*ts.cbs));
  ts.reg_cap = reg;
  ts.reg = calloc(reg ? reg : 1, sizeof(*ts.reg));
  ts.sa = calloc(reg ? reg : 1, sizeof(*ts.sa));
  assert_non_null(ts.args);
  assert_non_null(ts.vals);
  assert_non_null(ts.cbs);
  assert_non_null(ts.reg);
  assert_non_null(ts.sa);
  assert_int_equal(pthread_mutex_init(&ts.reg_lock, NULL), 0);

  /* One seed per process, so that one number replays every test. */
  static unsigned base_seed;
  static int have_seed;
  if (!have_seed) {
    const char *env = getenv("CF_STRESS_SEED");
    base_seed = env ? (unsigned)strtoul(env, NULL, 0)
                    : (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    have_seed = 1;
    print_message("seed %u (replay with CF_STRESS_SEED=%u)\n", base_seed,
                  base_seed);
  }
  ts.seed = base_seed;
  ts_seed_thread(ts.seed);
}

static void ts_ctx_fini(void) {
  pthread_mutex_destroy(&ts.reg_lock);
  free(ts.args);
  free(ts.vals);
  free(ts.cbs);
  free(ts.reg);
  free(ts.sa);
}

static void ts_obj_free(void *p) {
  ts_obj_t *o = p;
  atomic_fetch_add(o->dtor_runs, 1);
  atomic_fetch_sub(&ts.live, 1);
  free(o);
}

/* A value with a record, or NULL when the ledger is full. */
static void *ts_val_new(void) {
  size_t i = atomic_fetch_add(&ts.vals_used, 1);
  if (i >= ts.vals_cap)
    return NULL;
  ts_obj_t *o = malloc(sizeof(*o));
  if (o == NULL) {
    ts_bad("malloc value", 0);
    return NULL;
  }
  o->dtor_runs = &ts.vals[i];
  atomic_fetch_add(&ts.live, 1);
  return o;
}

static ts_cbrec_t *ts_cb_new(int action) {
  size_t i = atomic_fetch_add(&ts.cbs_used, 1);
  if (i >= ts.cbs_cap)
    return NULL;
  ts.cbs[i].action = action;
  return &ts.cbs[i];
}

/* ---- registry of futures --------------------------------------------- */

/* Takes over the caller's reference. */
static void ts_reg_add(cf_future_t *f, int standalone, long arg) {
  pthread_mutex_lock(&ts.reg_lock);
  if (ts.reg_n < ts.reg_cap) {
    if (standalone)
      ts.sa[ts.sa_n++] = ts.reg_n;
    ts.reg[ts.reg_n++] = (ts_entry_t){.f = f, .standalone = standalone,
                                      .arg = arg};
    f = NULL;
  }
  pthread_mutex_unlock(&ts.reg_lock);
  if (f != NULL) {
    ts_bad("registry full", 0);
    cf_future_release(f);
  }
}

/* A new reference to a random future (NULL if none); *standalone says
 * whether it is a standalone future. */
static cf_future_t *ts_pick(int *standalone) {
  unsigned r = ts_rand();
  cf_future_t *f = NULL;
  pthread_mutex_lock(&ts.reg_lock);
  if (ts.reg_n > 0) {
    ts_entry_t *e = &ts.reg[r % ts.reg_n];
    f = cf_future_retain(e->f);
    if (standalone != NULL)
      *standalone = e->standalone;
  }
  pthread_mutex_unlock(&ts.reg_lock);
  return f;
}

static cf_future_t *ts_pick_standalone(void) {
  unsigned r = ts_rand();
  cf_future_t *f = NULL;
  pthread_mutex_lock(&ts.reg_lock);
  if (ts.sa_n > 0)
    f = cf_future_retain(ts.reg[ts.sa[r % ts.sa_n]].f);
  pthread_mutex_unlock(&ts.reg_lock);
  return f;
}

/* ---- jobs ---------------------------------------------------------- */

enum {
  TS_JOB_NULL,    /* return NULL */
  TS_JOB_VALUE,   /* return a value with a destructor */
  TS_JOB_REPLACE, /* return a value, then replace it by another */
  TS_JOB_FAIL,    /* fail with a message */
  TS_JOB_VALFAIL, /* set a value, then fail: the value dies at once */
  TS_JOB_SELF,    /* cancel and wait on its own future: 0 and EDEADLK */
  TS_JOB_KINDS
};

static int ts_job(void *arg, cf_job_t *job) {
  ts_arg_t *a = arg;
  if (atomic_fetch_add(&a->rec->ran, 1) != 0)
    ts_bad("job ran twice", 0);
  for (volatile unsigned i = 0; i < a->spin; i++) {
  }
  switch (a->kind) {
  case TS_JOB_NULL:
    return 0;
  case TS_JOB_VALUE: {
    void *v = ts_val_new();
    cf_job_return(job, v, v ? ts_obj_free : NULL);
    return 0;
  }
  case TS_JOB_REPLACE: {
    void *v = ts_val_new();
    cf_job_return(job, v, v ? ts_obj_free : NULL);
    v = ts_val_new();
    cf_job_return(job, v, v ? ts_obj_free : NULL);
    return 0;
  }
  case TS_JOB_FAIL:
    return cf_job_fail(job, 7, "job %d failed", 7);
  case TS_JOB_VALFAIL: {
    void *v = ts_val_new();
    cf_job_return(job, v, v ? ts_obj_free : NULL);
    return cf_job_fail(job, 8, NULL);
  }
  case TS_JOB_SELF: {
    cf_future_t *self = cf_job_future(job);
    int rc = cf_future_cancel(self);
    if (rc != 0)
      ts_bad("cancel of a running job's own future", rc);
    rc = cf_future_result(self, 0.001, NULL);
    if (rc != CF_EDEADLK)
      ts_bad("result from inside own job", rc);
    if (!cf_future_running(self))
      ts_bad("own future not running", 0);
    return 0;
  }
  default:
    ts_bad("bad job kind", a->kind);
    return 1;
  }
}

/* Submit one job and return the submit's result; registers its future
 * unless `detached`, and if keep is not NULL stores one more reference to
 * it there (NULL on failure). */
static int ts_submit(int kind, int detached, cf_future_t **keep) {
  if (keep != NULL)
    *keep = NULL;
  size_t i = atomic_fetch_add(&ts.args_used, 1);
  if (i >= ts.args_cap)
    return 1;
  ts_arg_t *a = malloc(sizeof(*a));
  if (a == NULL) {
    ts_bad("malloc arg", 0);
    return 1;
  }
  ts_argrec_t *rec = &ts.args[i]; /* a may be freed once submitted */
  a->rec = rec;
  a->base.dtor_runs = &rec->dtor_runs;
  a->kind = kind;
  a->spin = ts_rand() % 2000;
  atomic_fetch_add(&ts.live, 1);

  cf_future_t *f = NULL;
  int rc = cf_executor_submit(ts.ex, ts_job, a, ts_obj_free,
                              detached ? NULL : &f);
  if (rc == 0) {
    atomic_store(&rec->submitted, 1);
    atomic_fetch_add(&ts.submits_ok, 1);
    if (!detached) {
      if (f == NULL) {
        ts_bad("submit gave no future", 0);
      } else {
        if (keep != NULL)
          *keep = cf_future_retain(f);
        ts_reg_add(f, 0, (long)i);
      }
    }
    return 0;
  }
  if (rc != CF_ESHUTDOWN)
    ts_bad("submit", rc);
  if (f != NULL)
    ts_bad("failed submit touched *out", rc);
  ts_obj_free(a); /* still ours */
  return rc;
}

/* ---- done callbacks ------------------------------------------------ */

enum {
  TS_CB_COUNT,  /* only count */
  TS_CB_SUBMIT, /* submit another job */
  TS_CB_CANCEL, /* cancel a random future */
  TS_CB_RESULT, /* read the (done) future's outcome without waiting */
  TS_CB_NESTED, /* add another callback to the same (done) future */
  TS_CB_KINDS
};

static void ts_register(cf_future_t *f, int action);

static void ts_cb(cf_future_t *f, void *data) {
  ts_cbrec_t *c = data;
  atomic_fetch_add(&c->calls, 1);
  if (!cf_future_done(f))
    atomic_fetch_add(&c->bad_state, 1);
  switch (c->action) {
  case TS_CB_SUBMIT:
    ts_submit((int)(ts_rand() % TS_JOB_KINDS), 0, NULL);
    break;
  case TS_CB_CANCEL: {
    cf_future_t *g = ts_pick(NULL);
    if (g != NULL) {
      int rc = cf_future_cancel(g);
      if (rc != 0 && rc != 1)
        ts_bad("cancel in callback", rc);
      cf_future_release(g);
    }
    break;
  }
  case TS_CB_RESULT: {
    int rc = cf_future_result(f, 0, NULL);
    if (rc != 0 && rc != CF_EFAILED && rc != CF_ECANCELLED)
      ts_bad("result in callback", rc);
    break;
  }
  case TS_CB_NESTED:
    ts_register(f, TS_CB_COUNT);
    break;
  default:
    break;
  }
}

static void ts_register(cf_future_t *f, int action) {
  ts_cbrec_t *c = ts_cb_new(action);
  if (c == NULL)
    return;
  /* Mark first: an already done future runs the callback right away. */
  atomic_store(&c->registered, 1);
  int rc = cf_future_add_done_callback(f, ts_cb, c);
  if (rc != 0) {
    atomic_store(&c->registered, 0);
    ts_bad("add_done_callback", rc);
  }
}

/* ---- operations of the mixed test ------------------------------------ */

static double ts_small_timeout(void) {
  static const double t[] = {0.0, -1.0, 0.0001, 0.0005, 0.001};
  return t[ts_rand() % 5];
}

static int ts_valid_outcome(int rc) {
  return rc == 0 || rc == CF_EFAILED || rc == CF_ECANCELLED ||
         rc == CF_ETIMEDOUT;
}

static void ts_op_result(void) {
  int standalone = 0;
  cf_future_t *f = ts_pick(&standalone);
  if (f == NULL)
    return;
  double timeout = ts_small_timeout();
  if (!standalone && ts_rand() % 10 == 0)
    timeout = CF_FOREVER; /* pool futures always end */
  void *v = NULL;
  int rc = cf_future_result(f, timeout, &v);
  if (!ts_valid_outcome(rc) || (timeout == CF_FOREVER && rc == CF_ETIMEDOUT))
    ts_bad("result", rc);
  if (rc != CF_ETIMEDOUT && !cf_future_done(f))
    ts_bad("result returned on a future not done", rc);
  cf_future_release(f);
}

static void ts_op_exception(void) {
  cf_future_t *f = ts_pick(NULL);
  if (f == NULL)
    return;
  int code = -1;
  const char *msg = NULL;
  int rc = cf_future_exception(f, ts_small_timeout(), &code, &msg);
  if (rc == 0 && code != 0 && code != 7 && code != 8 && code != 3)
    ts_bad("exception code", code);
  if (rc != 0 && rc != CF_ECANCELLED && rc != CF_ETIMEDOUT)
    ts_bad("exception", rc);
  cf_future_release(f);
}

static int ts_in(cf_future_t *const *arr, size_t n, const cf_future_t *f) {
  for (size_t i = 0; i < n; i++)
    if (arr[i] == f)
      return 1;
  return 0;
}

/* A random subset (duplicates possible); returns its size and the number
 * of distinct futures; *pool_only when no standalone future is in it. */
static size_t ts_subset(cf_future_t **fs, size_t *unique, int *pool_only) {
  size_t n = 1 + ts_rand() % TS_SUBSET, k = 0;
  *pool_only = 1;
  *unique = 0;
  for (size_t i = 0; i < n; i++) {
    int standalone = 0;
    cf_future_t *f;
    if (k > 0 && ts_rand() % 5 == 0)
      f = cf_future_retain(fs[ts_rand() % k]); /* a duplicate */
    else
      f = ts_pick(&standalone);
    if (f == NULL)
      break;
    if (standalone)
      *pool_only = 0;
    if (!ts_in(fs, k, f))
      (*unique)++;
    fs[k++] = f;
  }
  return k;
}

static void ts_op_wait(void) {
  cf_future_t *fs[TS_SUBSET];
  size_t unique;
  int pool_only;
  size_t n = ts_subset(fs, &unique, &pool_only);
  if (n == 0)
    return;
  int mode = 1 + (int)(ts_rand() % 3);
  double timeout = ts_small_timeout();
  if (pool_only && ts_rand() % 8 == 0)
    timeout = CF_FOREVER;
  cf_future_t *done[TS_SUBSET], *not_done[TS_SUBSET];
  size_t nd = 999, nn = 999;
  int rc = cf_wait(fs, n, timeout, mode, done, &nd, not_done, &nn);
  if (rc != 0) {
    ts_bad("wait", rc);
  } else {
    if (nd + nn != unique)
      ts_bad("wait partition size", (int)(nd + nn));
    for (size_t i = 0; i < nd; i++)
      if (!ts_in(fs, n, done[i]) || !cf_future_done(done[i]))
        ts_bad("wait done entry", 0);
    for (size_t i = 0; i < nn; i++)
      if (!ts_in(fs, n, not_done[i]) || ts_in(done, nd, not_done[i]))
        ts_bad("wait not_done entry", 0);
    if (timeout == CF_FOREVER && mode == CF_ALL_COMPLETED && nn != 0)
      ts_bad("wait ALL_COMPLETED forever left futures", (int)nn);
    if (timeout == CF_FOREVER && nd == 0)
      ts_bad("wait forever returned nothing done", 0);
  }
  if (ts_rand() % 20 == 0) {
    rc = cf_wait(fs, n, 0, 99, NULL, NULL, NULL, NULL);
    if (rc != CF_EINVAL)
      ts_bad("wait with a bad return_when", rc);
  }
  for (size_t i = 0; i < n; i++)
    cf_future_release(fs[i]);
}

static void ts_op_as_completed(void) {
  cf_future_t *fs[TS_SUBSET];
  size_t unique;
  int pool_only;
  size_t n = ts_subset(fs, &unique, &pool_only);
  if (n == 0)
    return;
  double timeout = ts_small_timeout();
  if (pool_only && ts_rand() % 8 == 0)
    timeout = CF_FOREVER;
  cf_as_completed_t *it = NULL;
  int rc = cf_as_completed_create(fs, n, timeout, &it);
  /* The iterator holds its own references: drop ours early sometimes. */
  int dropped = ts_rand() % 2;
  if (dropped)
    for (size_t i = 0; i < n; i++)
      cf_future_release(fs[i]);
  if (rc != 0) {
    ts_bad("as_completed_create", rc);
  } else {
    size_t stop_after = ts_rand() % 4 == 0 ? ts_rand() % (unique + 1) : n;
    size_t yielded = 0;
    cf_future_t *seen[TS_SUBSET];
    for (;;) {
      if (yielded >= stop_after)
        break; /* destroy mid-iteration */
      cf_future_t *f = NULL;
      rc = cf_as_completed_next(it, &f);
      if (rc == CF_EOF) {
        if (yielded != unique)
          ts_bad("as_completed EOF early", (int)yielded);
        break;
      }
      if (rc == CF_ETIMEDOUT) {
        if (timeout == CF_FOREVER)
          ts_bad("as_completed forever timed out", rc);
        if (cf_as_completed_remaining(it) != (int)(unique - yielded))
          ts_bad("as_completed remaining", cf_as_completed_remaining(it));
        break;
      }
      if (rc != 0) {
        ts_bad("as_completed_next", rc);
        break;
      }
      if (!cf_future_done(f) || ts_in(seen, yielded, f) ||
          yielded >= TS_SUBSET) {
        ts_bad("as_completed yielded a bad future", 0);
        break;
      }
      if (!dropped && !ts_in(fs, n, f))
        ts_bad("as_completed yielded a stranger", 0);
      seen[yielded++] = f;
    }
    cf_as_completed_destroy(it);
  }
  if (!dropped)
    for (size_t i = 0; i < n; i++)
      cf_future_release(fs[i]);
}

static void ts_op_cancel(void) {
  cf_future_t *f = ts_pick(NULL);
  if (f == NULL)
    return;
  int rc = cf_future_cancel(f);
  if (rc != 0 && rc != 1)
    ts_bad("cancel", rc);
  if (rc == 1 && !cf_future_cancelled(f))
    ts_bad("cancel returned 1 but not cancelled", 0);
  cf_future_release(f);
}

static void ts_op_callback(void) {
  cf_future_t *f = ts_pick(NULL);
  if (f == NULL)
    return;
  ts_register(f, (int)(ts_rand() % TS_CB_KINDS));
  cf_future_release(f);
}

static void ts_op_standalone_create(void) {
  cf_future_t *f = NULL;
  int rc = cf_future_create(&f);
  if (rc != 0) {
    ts_bad("future_create", rc);
    return;
  }
  ts_reg_add(f, 1, -1);
}

static void ts_op_standalone_complete(void) {
  cf_future_t *f = ts_pick_standalone();
  if (f == NULL)
    return;
  int rc;
  switch (ts_rand() % 4) {
  case 0: {
    void *v = ts_val_new();
    rc = cf_future_set_result(f, v, v ? ts_obj_free : NULL);
    if (rc == CF_EINVALID_STATE) {
      if (v != NULL)
        ts_obj_free(v); /* still ours */
    } else if (rc != 0) {
      ts_bad("set_result", rc);
    }
    break;
  }
  case 1:
    rc = cf_future_set_exception(f, 3, "standalone");
    if (rc != 0 && rc != CF_EINVALID_STATE)
      ts_bad("set_exception", rc);
    break;
  case 2:
    rc = cf_future_cancel(f);
    if (rc != 0 && rc != 1)
      ts_bad("cancel standalone", rc);
    break;
  default:
    rc = cf_future_set_running_or_notify_cancel(f);
    if (rc != 1 && rc != 0 && rc != CF_EINVALID_STATE)
      ts_bad("set_running_or_notify_cancel", rc);
    break;
  }
  cf_future_release(f);
}

static void ts_op_query(void) {
  cf_future_t *f = ts_pick(NULL);
  if (f == NULL)
    return;
  char buf[128];
  int st = cf_future_state(f);
  if (st < CF_STATE_PENDING || st > CF_STATE_FINISHED)
    ts_bad("state", st);
  if (cf_future_repr(f, buf, sizeof(buf)) <= 0)
    ts_bad("repr", 0);
  cf_future_release(f);
}

typedef struct ts_thread {
  int index;
  int ops;
  pthread_t tid;
} ts_thread_t;

static void *ts_mixed_thread(void *arg) {
  ts_thread_t *t = arg;
  ts_seed_thread(ts.seed + 7919u * (unsigned)(t->index + 1));
  for (int op = 0; op < t->ops; op++) {
    if (t->index == 0 && op == t->ops / 2) {
      int rc = cf_executor_shutdown(ts.ex, false, true);
      if (rc != 0)
        ts_bad("shutdown", rc);
      atomic_store(&ts.shutdown_done, 1);
    }
    unsigned r = ts_rand() % 100;
    if (r < 28)
      ts_submit((int)(ts_rand() % TS_JOB_KINDS), ts_rand() % 20 == 0,
                NULL);
    else if (r < 38)
      ts_op_cancel();
    else if (r < 50)
      ts_op_result();
    else if (r < 54)
      ts_op_exception();
    else if (r < 62)
      ts_op_wait();
    else if (r < 68)
      ts_op_as_completed();
    else if (r < 82)
      ts_op_callback();
    else if (r < 87)
      ts_op_standalone_create();
    else if (r < 95)
      ts_op_standalone_complete();
    else
      ts_op_query();
  }
  return NULL;
}

/* Checks shared by the tests, run after every thread was joined and the
 * pool destroyed: futures, callbacks, destructors, live objects. */
static void ts_check_and_release_all(void) {
  size_t not_done = 0;
  for (size_t i = 0; i < ts.reg_n; i++) {
    ts_entry_t *e = &ts.reg[i];
    if (!cf_future_done(e->f)) {
      not_done++;
      continue;
    }
    if (e->arg >= 0) {
      ts_argrec_t *a = &ts.args[e->arg];
      int ran = atomic_load(&a->ran);
      if (cf_future_cancelled(e->f) && ran != 0)
        fail_msg("future %zu cancelled but its job ran %d times", i, ran);
      if (!cf_future_cancelled(e->f) && ran != 1)
        fail_msg("future %zu finished but its job ran %d times", i, ran);
    }
  }
  assert_int_equal(not_done, 0);

  size_t ncbs = atomic_load(&ts.cbs_used);
  if (ncbs > ts.cbs_cap)
    ncbs = ts.cbs_cap;
  for (size_t i = 0; i < ncbs; i++) {
    int reg = atomic_load(&ts.cbs[i].registered);
    int calls = atomic_load(&ts.cbs[i].calls);
    if (calls != reg)
      fail_msg("callback %zu (action %d) ran %d times, registered %d", i,
               ts.cbs[i].action, calls, reg);
    assert_int_equal(atomic_load(&ts.cbs[i].bad_state), 0);
  }

  for (size_t i = 0; i < ts.reg_n; i++)
    cf_future_release(ts.reg[i].f);
  ts.reg_n = 0;

  size_t nargs = atomic_load(&ts.args_used);
  if (nargs > ts.args_cap)
    nargs = ts.args_cap;
  for (size_t i = 0; i < nargs; i++) {
    int runs = atomic_load(&ts.args[i].dtor_runs);
    if (runs != 1)
      fail_msg("arg %zu: destructor ran %d times (submitted %d)", i, runs,
               atomic_load(&ts.args[i].submitted));
  }
  size_t nvals = atomic_load(&ts.vals_used);
  if (nvals > ts.vals_cap)
    nvals = ts.vals_cap;
  for (size_t i = 0; i < nvals; i++) {
    int runs = atomic_load(&ts.vals[i]);
    if (runs != 1)
      fail_msg("value %zu: destructor ran %d times", i, runs);
  }
  assert_int_equal(atomic_load(&ts.live), 0);
  print_message("checked %zu args, %zu values, %zu callbacks\n", nargs,
                nvals, ncbs);
}

static cf_executor_t *ts_pool(int workers) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = workers;
  cf_executor_t *ex = NULL;
  TS_ASSERT_RC(cf_executor_create(&ex, &opts), 0);
  assert_non_null(ex);
  return ex;
}

/* Complete every standalone future still pending or running. Done before
 * the pool is destroyed: their callbacks may submit (and get
 * CF_ESHUTDOWN). */
static void ts_finish_standalone(void) {
  pthread_mutex_lock(&ts.reg_lock); /* callbacks may still add entries */
  size_t n = ts.sa_n;
  pthread_mutex_unlock(&ts.reg_lock);
  for (size_t i = 0; i < n; i++) {
    cf_future_t *f = ts.reg[ts.sa[i]].f;
    if (cf_future_done(f))
      continue;
    if (cf_future_cancel(f) == 1)
      continue;
    TS_ASSERT_RC(cf_future_set_exception(f, 3, "end"), 0);
  }
}

static void test_stress_mixed(void **state) {
  (void)state;
  int total = 20000;
  const char *env = getenv("CF_STRESS_OPS");
  if (env != NULL && atoi(env) > 0)
    total = atoi(env);
  int per_thread = total / TS_THREADS;
  size_t cap = (size_t)total + 64;
  ts_ctx_init(cap, cap * 3, cap, cap * 2);
  ts.ex = ts_pool(4);

  ts_thread_t th[TS_THREADS];
  for (int i = 0; i < TS_THREADS; i++) {
    th[i] = (ts_thread_t){.index = i, .ops = per_thread};
    assert_int_equal(
        pthread_create(&th[i].tid, NULL, ts_mixed_thread, &th[i]), 0);
  }
  for (int i = 0; i < TS_THREADS; i++)
    assert_int_equal(pthread_join(th[i].tid, NULL), 0);
  assert_int_equal(atomic_load(&ts.shutdown_done), 1);

  ts_finish_standalone();
  TS_ASSERT_RC(cf_executor_destroy(ts.ex), 0);
  ts.ex = NULL;
  assert_int_equal(atomic_load(&ts.bad), 0);
  print_message("%zu futures, %d submits accepted\n", ts.reg_n,
                atomic_load(&ts.submits_ok));
  ts_check_and_release_all();
  ts_ctx_fini();
}

/* ---- cancel racing with the workers ---------------------------------- */

typedef struct ts_race {
  int index;
  int count;
  pthread_t tid;
} ts_race_t;

static void *ts_race_submitter(void *arg) {
  ts_race_t *t = arg;
  ts_seed_thread(ts.seed + 31u * (unsigned)(t->index + 1));
  for (int i = 0; i < t->count; i++) {
    cf_future_t *f = NULL;
    if (ts_submit(ts_rand() % 2 ? TS_JOB_VALUE : TS_JOB_REPLACE, 0, &f) !=
        0)
      ts_bad("submit in cancel race", 0);
    if (f != NULL) {
      ts_register(f, TS_CB_COUNT);
      cf_future_release(f);
    }
  }
  return NULL;
}

static void *ts_race_canceller(void *arg) {
  ts_race_t *t = arg;
  ts_seed_thread(ts.seed + 131u * (unsigned)(t->index + 1));
  for (int i = 0; i < t->count; i++)
    ts_op_cancel();
  return NULL;
}

static void test_stress_cancel_race(void **state) {
  (void)state;
  enum { PER_SUBMITTER = 1500, CANCELS = 3000 };
  ts_ctx_init(2 * PER_SUBMITTER + 16, 4 * PER_SUBMITTER + 16,
              2 * PER_SUBMITTER + 16, 2 * PER_SUBMITTER + 16);
  ts.ex = ts_pool(2);
  ts_race_t t[4] = {{.index = 0, .count = PER_SUBMITTER},
                    {.index = 1, .count = PER_SUBMITTER},
                    {.index = 2, .count = CANCELS},
                    {.index = 3, .count = CANCELS}};
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i].tid, NULL,
                                    i < 2 ? ts_race_submitter
                                          : ts_race_canceller,
                                    &t[i]),
                     0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_join(t[i].tid, NULL), 0);
  TS_ASSERT_RC(cf_executor_destroy(ts.ex), 0);
  ts.ex = NULL;
  assert_int_equal(atomic_load(&ts.bad), 0);
  assert_int_equal(ts.reg_n, 2 * PER_SUBMITTER);

  size_t cancelled = 0;
  for (size_t i = 0; i < ts.reg_n; i++) {
    cf_future_t *f = ts.reg[i].f;
    if (cf_future_cancelled(f)) {
      cancelled++;
      TS_ASSERT_RC(cf_future_result(f, 0, NULL), CF_ECANCELLED);
    } else {
      void *v = NULL;
      TS_ASSERT_RC(cf_future_result(f, 0, &v), 0);
      assert_non_null(v);
    }
  }
  print_message("%zu of %zu futures cancelled\n", cancelled, ts.reg_n);
  ts_check_and_release_all();
  ts_ctx_fini();
}

/* ---- submit racing with shutdown(cancel_futures) ---------------------- */

static void *ts_shutdown_submitter(void *arg) {
  ts_race_t *t = arg;
  ts_seed_thread(ts.seed + 53u * (unsigned)(t->index + 1));
  for (int i = 0; i < t->count; i++) {
    int after = atomic_load(&ts.shutdown_done);
    int rc = ts_submit((int)(ts_rand() % TS_JOB_KINDS), ts_rand() % 10 == 0,
                       NULL);
    /* A submit that starts after shutdown returned must fail. */
    if (after && rc != CF_ESHUTDOWN)
      ts_bad("submit after shutdown", rc);
  }
  return NULL;
}

static void *ts_shutdown_thread(void *arg) {
  ts_race_t *t = arg;
  /* Shut down once some work was accepted (a spin on a counter, not a
   * sleep), so that the queue is not empty. */
  while (atomic_load(&ts.submits_ok) < t->count)
    sched_yield();
  int rc = cf_executor_shutdown(ts.ex, false, true);
  if (rc != 0)
    ts_bad("shutdown", rc);
  atomic_store(&ts.shutdown_done, 1);
  /* Idempotent. */
  rc = cf_executor_shutdown(ts.ex, false, true);
  if (rc != 0)
    ts_bad("second shutdown", rc);
  return NULL;
}

static void test_stress_shutdown_race(void **state) {
  (void)state;
  enum { SUBMITTERS = 3, PER_SUBMITTER = 800 };
  ts_ctx_init(SUBMITTERS * PER_SUBMITTER + 16,
              2 * SUBMITTERS * PER_SUBMITTER + 16, 16,
              SUBMITTERS * PER_SUBMITTER + 16);
  ts.ex = ts_pool(2);
  ts_race_t t[SUBMITTERS + 1];
  for (int i = 0; i < SUBMITTERS; i++) {
    t[i] = (ts_race_t){.index = i, .count = PER_SUBMITTER};
    assert_int_equal(
        pthread_create(&t[i].tid, NULL, ts_shutdown_submitter, &t[i]), 0);
  }
  t[SUBMITTERS] = (ts_race_t){.index = SUBMITTERS, .count = 200};
  assert_int_equal(pthread_create(&t[SUBMITTERS].tid, NULL,
                                  ts_shutdown_thread, &t[SUBMITTERS]),
                   0);
  for (int i = 0; i <= SUBMITTERS; i++)
    assert_int_equal(pthread_join(t[i].tid, NULL), 0);
  assert_int_equal(atomic_load(&ts.shutdown_done), 1);

  /* Every accepted future ends without the pool being destroyed first:
   * cancelled ones at once, the others by the still running workers. */
  cf_future_t **fs = calloc(ts.reg_n + 1, sizeof(*fs));
  assert_non_null(fs);
  for (size_t i = 0; i < ts.reg_n; i++)
    fs[i] = ts.reg[i].f;
  cf_future_t **not_done = calloc(ts.reg_n + 1, sizeof(*not_done));
  assert_non_null(not_done);
  size_t nn = 999;
  TS_ASSERT_RC(cf_wait(fs, ts.reg_n, CF_FOREVER, CF_ALL_COMPLETED, NULL,
                       NULL, not_done, &nn),
               0);
  assert_int_equal(nn, 0);
  free(not_done);
  free(fs);

  /* After shutdown, submit fails with CF_ESHUTDOWN and leaves arg ours. */
  cf_future_t *f = NULL;
  TS_ASSERT_RC(cf_executor_submit(ts.ex, echo_job, NULL, count_free, &f),
               CF_ESHUTDOWN);
  assert_null(f);

  TS_ASSERT_RC(cf_executor_destroy(ts.ex), 0);
  ts.ex = NULL;
  assert_int_equal(atomic_load(&ts.bad), 0);
  print_message("%d of %d submits accepted\n", atomic_load(&ts.submits_ok),
                SUBMITTERS * PER_SUBMITTER);
  ts_check_and_release_all();
  ts_ctx_fini();
}

/* ---- standalone futures: producers and waiters ------------------------ */

enum { TS_SA_N = 600 };

typedef struct ts_sa_thread {
  int index;
  cf_future_t **fs;
  size_t n;
  pthread_t tid;
  int failures;
} ts_sa_thread_t;

/* Producer: complete its half of fs in a shuffled order. */
static void *ts_sa_producer(void *arg) {
  ts_sa_thread_t *t = arg;
  ts_seed_thread(ts.seed + 977u * (unsigned)(t->index + 1));
  size_t half = t->n / 2, lo = t->index ? half : 0,
         hi = t->index ? t->n : half;
  size_t m = hi - lo;
  size_t *order = malloc(m * sizeof(*order));
  if (order == NULL) {
    ts_bad("malloc", 0);
    return NULL;
  }
  for (size_t i = 0; i < m; i++)
    order[i] = lo + i;
  for (size_t i = m; i > 1; i--) {
    size_t j = ts_rand() % i, tmp = order[i - 1];
    order[i - 1] = order[j];
    order[j] = tmp;
  }
  for (size_t i = 0; i < m; i++) {
    cf_future_t *f = t->fs[order[i]];
    int rc;
    switch (ts_rand() % 3) {
    case 0: {
      void *v = ts_val_new();
      rc = cf_future_set_result(f, v, v ? ts_obj_free : NULL);
      if (rc != 0 && v != NULL)
        ts_obj_free(v);
      break;
    }
    case 1:
      rc = cf_future_set_exception(f, 3, "x");
      break;
    default:
      rc = cf_future_cancel(f) == 1 ? 0 : -1;
    }
    if (rc != 0)
      ts_bad("producer", rc);
  }
  free(order);
  return NULL;
}

static void *ts_sa_waiter(void *arg) {
  ts_sa_thread_t *t = arg;
  switch (t->index) {
  case 0: { /* wait ALL_COMPLETED */
    size_t nd = 0, nn = 999;
    cf_future_t **done = calloc(t->n, sizeof(*done));
    cf_future_t **not_done = calloc(t->n, sizeof(*not_done));
    if (done == NULL || not_done == NULL) {
      free(done);
      free(not_done);
      ts_bad("malloc", 0);
      break;
    }
    int rc = cf_wait(t->fs, t->n, CF_FOREVER, CF_ALL_COMPLETED, done, &nd,
                     not_done, &nn);
    if (rc != 0 || nd != t->n || nn != 0)
      t->failures++;
    free(done);
    free(not_done);
    break;
  }
  case 1: { /* as_completed: every future once */
    cf_as_completed_t *it = NULL;
    if (cf_as_completed_create(t->fs, t->n, CF_FOREVER, &it) != 0) {
      t->failures++;
      break;
    }
    size_t got = 0;
    cf_future_t *f = NULL;
    int rc;
    while ((rc = cf_as_completed_next(it, &f)) == 0) {
      if (!cf_future_done(f))
        t->failures++;
      got++;
    }
    if (rc != CF_EOF || got != t->n)
      t->failures++;
    cf_as_completed_destroy(it);
    break;
  }
  case 2: { /* FIRST_COMPLETED repeatedly over what is still not done */
    cf_future_t **left = malloc(t->n * sizeof(*left));
    cf_future_t **nd_arr = malloc(t->n * sizeof(*nd_arr));
    cf_future_t **d_arr = malloc(t->n * sizeof(*d_arr));
    if (left == NULL || nd_arr == NULL || d_arr == NULL) {
      free(left);
      free(nd_arr);
      free(d_arr);
      ts_bad("malloc", 0);
      break;
    }
    memcpy(left, t->fs, t->n * sizeof(*left));
    size_t nleft = t->n, rounds = 0;
    while (nleft > 0 && rounds <= t->n) {
      size_t nd = 0, nn = 0;
      int rc = cf_wait(left, nleft, CF_FOREVER, CF_FIRST_COMPLETED, d_arr,
                       &nd, nd_arr, &nn);
      if (rc != 0 || nd == 0 || nd + nn != nleft) {
        t->failures++;
        break;
      }
      memcpy(left, nd_arr, nn * sizeof(*left));
      nleft = nn;
      rounds++;
    }
    if (nleft != 0)
      t->failures++;
    free(left);
    free(nd_arr);
    free(d_arr);
    break;
  }
  default: /* result on each, in order */
    for (size_t i = 0; i < t->n; i++) {
      int rc = cf_future_result(t->fs[i], CF_FOREVER, NULL);
      if (rc != 0 && rc != CF_EFAILED && rc != CF_ECANCELLED)
        t->failures++;
    }
  }
  return NULL;
}

static void test_stress_standalone_waiters(void **state) {
  (void)state;
  ts_ctx_init(16, TS_SA_N + 16, 16, TS_SA_N + 16);
  cf_future_t *fs[TS_SA_N];
  for (size_t i = 0; i < TS_SA_N; i++) {
    TS_ASSERT_RC(cf_future_create(&fs[i]), 0);
    ts_reg_add(cf_future_retain(fs[i]), 1, -1);
  }
  ts_sa_thread_t w[4], p[2];
  for (int i = 0; i < 4; i++) {
    w[i] = (ts_sa_thread_t){.index = i, .fs = fs, .n = TS_SA_N};
    assert_int_equal(pthread_create(&w[i].tid, NULL, ts_sa_waiter, &w[i]),
                     0);
  }
  for (int i = 0; i < 2; i++) {
    p[i] = (ts_sa_thread_t){.index = i, .fs = fs, .n = TS_SA_N};
    assert_int_equal(
        pthread_create(&p[i].tid, NULL, ts_sa_producer, &p[i]), 0);
  }
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(p[i].tid, NULL), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(w[i].tid, NULL), 0);
    if (w[i].failures != 0)
      fail_msg("waiter %d saw %d failures", i, w[i].failures);
  }
  assert_int_equal(atomic_load(&ts.bad), 0);
  for (size_t i = 0; i < TS_SA_N; i++)
    cf_future_release(fs[i]);
  ts_check_and_release_all();
  ts_ctx_fini();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stress_mixed),
      cmocka_unit_test(test_stress_cancel_race),
      cmocka_unit_test(test_stress_shutdown_race),
      cmocka_unit_test(test_stress_standalone_waiters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
