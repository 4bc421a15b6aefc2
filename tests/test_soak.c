/*
 * Soak test (issue 6): a bounded, seeded random mix of everything the
 * library does, from several threads at once, with exact accounting.
 *
 * Four producer threads run CF_SOAK_OPS operations between them (default
 * 1,000,000), each drawn at random from a weighted table: submits (values
 * and arguments with destructors, failing jobs, jobs that cooperate with
 * cancellation, jobs and done callbacks that submit more work), cancels,
 * result and exception with small timeouts (0, or 0.1 to 1 ms), cf_wait
 * with a random return_when, as_completed over random subsets, map with a
 * buffersize, done callbacks, standalone futures completed by hand, bridge
 * deliveries (cf_bridge_then, cf_bridge_run_in_executor,
 * cf_bridge_call_threadsafe, cf_then_cancel) to the loop thread, tasks on a
 * cf_loop that await pool futures and get cancelled or time out, and pool
 * rotations: a fresh pool replaces the current one, which is shut down
 * (with or without cancel_futures, waiting or not, from a producer or from
 * the loop thread) and destroyed once nobody uses it any more.
 *
 * The loop runs on its own thread. A cf_bridge of the test is one of its
 * readers (its fd), so bridge deliveries are dispatched by the loop thread.
 *
 * Accounting: every object with a destructor (values, arguments, task
 * results), every done-callback registration, every tracked future
 * (through a "sentinel" done callback registered at creation), every
 * bridge delivery and bridge call, every loop call and every task (through
 * its done callback) owns a one-byte slot in a ledger that its destructor
 * or callback bumps; a second bump is reported at once. At the end every
 * slot must read exactly 1, and the live-object counter (up when a value
 * or argument is made, down in its destructor) must be 0.
 *
 * Lifetimes: pools, the loop and the bridge are used through "guards"
 * (a user count plus a closed flag, sequentially consistent), so that a
 * pool is destroyed, and the bridge and the loop closed, only when no
 * thread is inside a call on them.
 *
 * Reproducing: the seed is printed as a TAP comment; CF_SOAK_SEED=N
 * replays each producer's sequence of choices (the interleaving of the
 * threads is the scheduler's, so a failure may need a few runs).
 *
 * Threads other than the test thread never assert: they count anomalies
 * (printing the first few to stderr) and the test thread asserts at the
 * end. No sleeps: the only waits are library calls with small timeouts,
 * loop timers inside the loop, and yields while a guard's users leave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfutures.h"
#include "cfutures/loop.h"
#include "helpers.h"

#define SK_PRODUCERS 4
#define SK_DEFAULT_OPS 1000000L
#define SK_RING 256      /* futures the producers pick from */
#define SK_RUNNING 64    /* standalone futures running, before completion */
#define SK_SUBSET 6      /* futures per wait / as_completed */
#define SK_MAX_DEPTH 2   /* submits from jobs and callbacks, nested */
#define SK_MAX_NEST 3    /* callbacks running inside callbacks, per thread */
#define SK_MAX_TASKS 512 /* tasks alive at once (each has a stack mapping) */
#define SK_NONE SIZE_MAX

#define SK_ASSERT_RC(expr, want)                                               \
  do {                                                                         \
    int sk_rc_ = (expr);                                                       \
    int sk_want_ = (want);                                                     \
    if (sk_rc_ != sk_want_)                                                    \
      fail_msg("%s: got %s (%d), want %s (%d)", #expr, cf_err_name(sk_rc_),    \
               sk_rc_, cf_err_name(sk_want_), sk_want_);                       \
  } while (0)

/* ---- ledgers --------------------------------------------------------- */

enum {
  L_FUT,   /* tracked future: its sentinel done callback */
  L_CB,    /* done-callback registration */
  L_ARG,   /* job argument destructor */
  L_VAL,   /* value destructor (job results, task results, set_result) */
  L_THEN,  /* bridge delivery callback */
  L_BCALL, /* cf_bridge_call_threadsafe call */
  L_LCALL, /* cf_loop_call_soon_threadsafe call */
  L_TASK,  /* task done callback */
  L_COUNT
};

static const char *const sk_ledger_name[L_COUNT] = {"future sentinel callback",
                                                    "done callback",
                                                    "argument destructor",
                                                    "value destructor",
                                                    "bridge delivery",
                                                    "bridge call",
                                                    "loop call",
                                                    "task done callback"};

typedef struct sk_ledger {
  _Atomic unsigned char *c;
  size_t cap;
  atomic_size_t used;
  atomic_long full; /* slots refused because the ledger was full */
} sk_ledger_t;

/* ---- statistics -------------------------------------------------------- */

/* Producer operations first (their weights are in sk_ops below), then
 * events that happen as a consequence. */
enum {
  OP_SUBMIT,
  OP_SUBMIT_DETACHED,
  OP_STANDALONE_NEW,
  OP_STANDALONE_DONE,
  OP_CANCEL,
  OP_RESULT,
  OP_EXCEPTION,
  OP_CALLBACK,
  OP_WAIT,
  OP_AS_COMPLETED,
  OP_MAP,
  OP_BRIDGE_THEN,
  OP_BRIDGE_RUN,
  OP_BRIDGE_CALL,
  OP_TASK,
  OP_LOOP_CALL,
  OP_ROTATE,
  OP_ROTATE_LOOP,
  OP_COUNT,
  EV_JOB_RAN = OP_COUNT,
  EV_SUBMIT_REJECTED,
  EV_NESTED_SUBMIT,
  EV_CANCEL_OK,
  EV_RESULT_TIMEOUT,
  EV_WAIT_TIMEOUT,
  EV_MAP_TIMEOUT,
  EV_THEN_CANCEL,
  EV_TASK,
  EV_TASK_CANCEL,
  EV_TASK_TIMEOUT,
  EV_TASK_CANCELLED,
  EV_TASK_SKIPPED,
  EV_POOL,
  EV_POOL_CANCEL,
  EV_POOL_DESTROY,
  EV_CALLBACK_RAN,
  EV_COUNT
};

static const char *const sk_stat_name[EV_COUNT] = {
    "submit (tracked future)",
    "submit (no future kept)",
    "standalone future created",
    "standalone future completed",
    "cancel",
    "result (small timeout)",
    "exception (small timeout)",
    "add done callback",
    "cf_wait",
    "as_completed",
    "map",
    "bridge then",
    "bridge run_in_executor",
    "bridge call_threadsafe",
    "loop task",
    "loop call_soon_threadsafe",
    "pool rotation (producer)",
    "pool rotation (loop thread)",
    "jobs run",
    "submits rejected (pool shut down)",
    "submits from jobs and callbacks",
    "cancels that cancelled",
    "results timed out",
    "waits timed out",
    "maps timed out",
    "deliveries cancelled (cf_then_cancel)",
    "tasks started",
    "task cancels (cf_lfuture_cancel)",
    "task wait_for / timeout scopes expired",
    "tasks ended cancelled",
    "tasks not started (512 alive)",
    "pools created",
    "pool shutdowns with cancel_futures",
    "pools destroyed",
    "done callbacks run",
};

/* Relative weights of the producer operations. */
static const unsigned sk_weight[OP_COUNT] = {
    [OP_SUBMIT] = 2000,
    [OP_SUBMIT_DETACHED] = 500,
    [OP_STANDALONE_NEW] = 450,
    [OP_STANDALONE_DONE] = 450,
    [OP_CANCEL] = 800,
    [OP_RESULT] = 1000,
    [OP_EXCEPTION] = 300,
    [OP_CALLBACK] = 800,
    [OP_WAIT] = 600,
    [OP_AS_COMPLETED] = 500,
    [OP_MAP] = 250,
    [OP_BRIDGE_THEN] = 600,
    [OP_BRIDGE_RUN] = 500,
    [OP_BRIDGE_CALL] = 350,
    [OP_TASK] = 600,
    [OP_LOOP_CALL] = 200,
    [OP_ROTATE] = 3,
    [OP_ROTATE_LOOP] = 2,
};

/* ---- the shared state -------------------------------------------------- */

/* A pool, used by whoever holds it (users > 0); destroyed by one thread
 * (claimed) once retired and unused. Slots are never freed before the
 * end, so a thread may look at a retired slot safely. */
typedef struct sk_slot {
  cf_executor_t *ex;
  atomic_int users;
  atomic_int retired;
  atomic_int claimed;
} sk_slot_t;

/* A user count and a closed flag for the loop and the bridge. */
typedef struct sk_guard {
  atomic_int users;
  atomic_int closed;
} sk_guard_t;

static struct sk_ctx {
  uint64_t seed;
  long ops;
  atomic_long live;
  atomic_int bad;
  sk_ledger_t led[L_COUNT];
  atomic_long stat[EV_COUNT];
  unsigned weight_total;

  pthread_mutex_t ring_mu;
  cf_future_t *ring[SK_RING];
  unsigned char ring_sa[SK_RING]; /* 1: standalone future */
  size_t ring_next;

  /* Standalone futures set running: a well-behaved producer completes
   * what it started, so each is completed when it leaves this ring. */
  pthread_mutex_t run_mu;
  cf_future_t *running[SK_RUNNING];
  size_t run_next;

  pthread_mutex_t rot_mu;
  sk_slot_t *slots;
  size_t slots_cap;
  atomic_size_t nslots;
  atomic_size_t current;
  atomic_int pools_closed;

  cf_loop_t *loop;
  cf_bridge_t *bridge;
  sk_guard_t loop_guard, bridge_guard;
  sem_t loop_ready;
  int loop_start_rc;

  atomic_int tasks_alive; /* sk_task_t allocated and not freed */

  /* Where each tracked future came from, by L_FUT ledger index (bit 0:
   * standalone; bit 1: put in the ring; above: its depth), so that a
   * sentinel that never ran names its kind. */
  _Atomic unsigned char *fut_origin;

  /* Loop thread only. */
  int tasks_live;
  int timers_live;
  int finish_stage;
} sk;

static atomic_uint sk_rng_counter;

static void sk_bad(const char *what, long v) {
  if (atomic_fetch_add(&sk.bad, 1) < 10) {
    fprintf(stderr, "# soak anomaly: %s (%ld %s)\n", what, v,
            cf_err_name((int)v));
    fflush(stderr);
  }
}

static void sk_stat(int which) { atomic_fetch_add(&sk.stat[which], 1); }

static double sk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- random numbers: xorshift64*, one state per thread ------------------ */

static _Thread_local uint64_t sk_rng;

static uint64_t sk_mix(uint64_t x) { /* splitmix64 */
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static void sk_seed_thread(uint64_t s) { sk_rng = sk_mix(s) | 1u; }

static uint64_t sk_next(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t sk_rand(void) {
  if (sk_rng == 0) /* a worker or the loop thread: seeded on first use */
    sk_seed_thread(sk.seed ^ (0xD1B54A32D192ED03ull *
                              (1000u + atomic_fetch_add(&sk_rng_counter, 1))));
  return (uint32_t)(sk_next(&sk_rng) >> 32);
}

static bool sk_chance(unsigned n) { return sk_rand() % n == 0; }

/* 0 (60%) or 0.1 to 1 ms. */
static double sk_small_timeout(void) {
  if (sk_rand() % 10 < 6)
    return 0.0;
  return 0.0001 + (double)(sk_rand() % 901) * 1e-6;
}

/* ---- ledgers ------------------------------------------------------------ */

static size_t sk_take(int l) {
  sk_ledger_t *led = &sk.led[l];
  size_t i = atomic_fetch_add(&led->used, 1);
  if (i >= led->cap) {
    atomic_fetch_add(&led->full, 1);
    return SK_NONE;
  }
  return i;
}

static void sk_hit(int l, size_t i) {
  if (i == SK_NONE || i >= sk.led[l].cap) {
    sk_bad("ledger index out of range", l);
    return;
  }
  if (atomic_fetch_add(&sk.led[l].c[i], 1) != 0)
    sk_bad(sk_ledger_name[l], -1000 - l); /* ran twice */
}

/* Callback data: a ledger index, a depth and an action in one pointer. */
static void *sk_pack(size_t idx, int depth, int action) {
  return (void *)(uintptr_t)(((uintptr_t)idx << 8) | ((uintptr_t)depth << 4) |
                             (uintptr_t)action);
}
static size_t sk_idx(void *p) { return (size_t)((uintptr_t)p >> 8); }
static int sk_depth(void *p) { return (int)(((uintptr_t)p >> 4) & 15u); }
static int sk_action(void *p) { return (int)((uintptr_t)p & 15u); }

/* ---- objects with destructors ------------------------------------------- */

typedef struct sk_obj {
  int ledger;
  size_t idx;
} sk_obj_t;

static void sk_obj_free(void *p) {
  sk_obj_t *o = p;
  sk_hit(o->ledger, o->idx);
  atomic_fetch_sub(&sk.live, 1);
  free(o);
}

/* A value with a destructor, or NULL when the ledger is full. */
static void *sk_val_new(void) {
  size_t i = sk_take(L_VAL);
  if (i == SK_NONE)
    return NULL;
  sk_obj_t *o = malloc(sizeof(*o));
  if (o == NULL) {
    sk_bad("malloc value", 0);
    sk_hit(L_VAL, i);
    return NULL;
  }
  o->ledger = L_VAL;
  o->idx = i;
  atomic_fetch_add(&sk.live, 1);
  return o;
}

enum {
  JK_NULL,    /* return NULL */
  JK_VALUE,   /* return a value */
  JK_REPLACE, /* return a value, then replace it */
  JK_FAIL,    /* fail with a message */
  JK_VALFAIL, /* set a value, then fail: the value dies at once */
  JK_COOP,    /* honour a cancellation request */
  JK_SPAWN,   /* submit another job */
  JK_SELF,    /* result() on its own future: CF_EDEADLK */
  JK_KINDS
};

typedef struct sk_arg {
  sk_obj_t base; /* first: sk_obj_free frees it */
  int kind;
  int depth;
  unsigned spin;
  atomic_int ran;
} sk_arg_t;

static sk_arg_t *sk_arg_new(int kind, int depth) {
  size_t i = sk_take(L_ARG);
  if (i == SK_NONE)
    return NULL;
  sk_arg_t *a = malloc(sizeof(*a));
  if (a == NULL) {
    sk_bad("malloc arg", 0);
    sk_hit(L_ARG, i);
    return NULL;
  }
  a->base.ledger = L_ARG;
  a->base.idx = i;
  a->kind = kind;
  a->depth = depth;
  a->spin = sk_rand() % 300;
  atomic_init(&a->ran, 0);
  atomic_fetch_add(&sk.live, 1);
  return a;
}

static int sk_rand_kind(void) { return (int)(sk_rand() % JK_KINDS); }

/* ---- guards ------------------------------------------------------------- */

static bool sk_enter(sk_guard_t *g) {
  atomic_fetch_add(&g->users, 1);
  if (atomic_load(&g->closed)) {
    atomic_fetch_sub(&g->users, 1);
    return false;
  }
  return true;
}

static void sk_exit(sk_guard_t *g) { atomic_fetch_sub(&g->users, 1); }

/* Close g and wait for its users (each is inside one non-blocking call). */
static void sk_close_guard(sk_guard_t *g) {
  atomic_store(&g->closed, 1);
  while (atomic_load(&g->users) != 0)
    sched_yield();
}

/* ---- pools -------------------------------------------------------------- */

/* The current pool, held until sk_pool_exit; NULL once pools are closed. */
static sk_slot_t *sk_pool_enter(void) {
  for (;;) {
    if (atomic_load(&sk.pools_closed))
      return NULL;
    size_t i = atomic_load(&sk.current);
    sk_slot_t *s = &sk.slots[i];
    atomic_fetch_add(&s->users, 1);
    if (atomic_load(&sk.current) == i && !atomic_load(&sk.pools_closed))
      return s;
    atomic_fetch_sub(&s->users, 1);
  }
}

static void sk_pool_exit(sk_slot_t *s) {
  if (s != NULL)
    atomic_fetch_sub(&s->users, 1);
}

static cf_executor_t *sk_pool_new(void) {
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 1 + (int)(sk_rand() % 3);
  opts.thread_name_prefix = "soak";
  cf_executor_t *ex = NULL;
  int rc = cf_executor_create(&ex, &opts);
  if (rc != 0) {
    sk_bad("executor_create", rc);
    return NULL;
  }
  sk_stat(EV_POOL);
  return ex;
}

static void sk_destroy_slot(sk_slot_t *s) {
  int rc = cf_executor_destroy(s->ex);
  if (rc != 0)
    sk_bad("executor_destroy", rc);
  sk_stat(EV_POOL_DESTROY);
}

/* Destroy the retired pools nobody uses; never blocks on other users. */
static void sk_reap(void) {
  size_t n = atomic_load(&sk.nslots);
  for (size_t i = 0; i < n; i++) {
    sk_slot_t *s = &sk.slots[i];
    if (!atomic_load(&s->retired) || atomic_load(&s->claimed) ||
        atomic_load(&s->users) != 0)
      continue;
    int expected = 0;
    if (atomic_compare_exchange_strong(&s->claimed, &expected, 1))
      sk_destroy_slot(s);
  }
}

/* Make a fresh pool current, shut the old one down, reap. Called by
 * producers and by the loop thread, never by a pool worker. */
static void sk_rotate(void) {
  pthread_mutex_lock(&sk.rot_mu);
  size_t n = atomic_load(&sk.nslots);
  if (atomic_load(&sk.pools_closed) || n >= sk.slots_cap) {
    pthread_mutex_unlock(&sk.rot_mu);
    return;
  }
  cf_executor_t *ex = sk_pool_new();
  if (ex == NULL) {
    pthread_mutex_unlock(&sk.rot_mu);
    return;
  }
  sk.slots[n].ex = ex;
  atomic_store(&sk.nslots, n + 1);
  sk_slot_t *old = &sk.slots[atomic_load(&sk.current)];
  atomic_fetch_add(&old->users, 1); /* ours until it is shut down */
  atomic_store(&sk.current, n);
  pthread_mutex_unlock(&sk.rot_mu);

  bool cancel = sk_chance(2), wait = sk_chance(3);
  if (cancel)
    sk_stat(EV_POOL_CANCEL);
  int rc = cf_executor_shutdown(old->ex, wait, cancel);
  if (rc != 0)
    sk_bad("executor_shutdown", rc);
  atomic_store(&old->retired, 1);
  atomic_fetch_sub(&old->users, 1);
  sk_reap();
}

/* ---- the ring of futures that operations pick from ---------------------- */

/* Takes over the caller's reference; drops the one it evicts. */
static void sk_ring_put(cf_future_t *f, int standalone) {
  pthread_mutex_lock(&sk.ring_mu);
  size_t i = sk.ring_next++ % SK_RING;
  cf_future_t *old = sk.ring[i];
  sk.ring[i] = f;
  sk.ring_sa[i] = (unsigned char)standalone;
  pthread_mutex_unlock(&sk.ring_mu);
  cf_future_release(old); /* may cancel a standalone one: callbacks run */
}

/* A new reference to a random future of the ring, or NULL. */
static cf_future_t *sk_ring_pick(int *standalone) {
  size_t i = sk_rand() % SK_RING;
  pthread_mutex_lock(&sk.ring_mu);
  cf_future_t *f = cf_future_retain(sk.ring[i]);
  if (standalone != NULL)
    *standalone = sk.ring_sa[i];
  pthread_mutex_unlock(&sk.ring_mu);
  return f;
}

/* Complete a standalone future that a producer set running, if nobody
 * did; takes over the reference. */
static void sk_running_done(cf_future_t *f) {
  if (f == NULL)
    return;
  int rc = cf_future_set_exception(f, 3, "completed by its producer");
  if (rc != 0 && rc != CF_EINVALID_STATE)
    sk_bad("set_exception on a running future", rc);
  cf_future_release(f);
}

/* f (borrowed) was set running by this thread. */
static void sk_running_add(cf_future_t *f) {
  cf_future_retain(f);
  pthread_mutex_lock(&sk.run_mu);
  size_t i = sk.run_next++ % SK_RUNNING;
  cf_future_t *old = sk.running[i];
  sk.running[i] = f;
  pthread_mutex_unlock(&sk.run_mu);
  sk_running_done(old);
}

/* ---- done callbacks ----------------------------------------------------- */

enum {
  CB_COUNT,  /* only count */
  CB_SUBMIT, /* submit another job (bounded depth) */
  CB_CANCEL, /* cancel a random future */
  CB_RESULT, /* read the done future's outcome */
  CB_NESTED, /* add a callback to the same (done) future: runs at once */
  CB_BRIDGE, /* deliver the future to the loop thread */
  CB_TASK,   /* start a task that awaits the future */
  CB_KINDS
};

static _Thread_local int sk_nest; /* callbacks running in this thread */

static void sk_track(cf_future_t *f, int standalone, int depth, bool ring);
static int sk_submit(int kind, int depth, cf_future_t **out);
static void sk_deliver(cf_future_t *f, bool cancel);
static void sk_task_post(int kind, cf_future_t *pf);

enum { TK_RUN, TK_AWAIT, TK_WAIT_FOR, TK_SLEEP, TK_CHILD, TK_KINDS };

static void sk_check_outcome(cf_future_t *f, const char *where) {
  int code = -1;
  const char *msg = NULL;
  int rc = cf_future_exception(f, 0, &code, &msg);
  if (rc == 0) {
    if (code != 0 && code != 7 && code != 8 && code != 3)
      sk_bad(where, code);
    if ((code == 7 || code == 3) && msg == NULL)
      sk_bad("failure without its message", code);
    void *v = NULL;
    int r2 = cf_future_result(f, 0, &v);
    if (r2 != (code == 0 ? 0 : CF_EFAILED))
      sk_bad(where, r2);
  } else if (rc != CF_ECANCELLED) {
    sk_bad(where, rc);
  }
}

static void sk_sentinel(cf_future_t *f, void *data) {
  sk_hit(L_FUT, sk_idx(data));
  int st = cf_future_state(f);
  if (st != CF_STATE_FINISHED && st != CF_STATE_CANCELLED &&
      st != CF_STATE_CANCELLED_AND_NOTIFIED)
    sk_bad("sentinel saw a future not done", st);
  sk_check_outcome(f, "sentinel outcome");
}

static void sk_register(cf_future_t *f, int action, int depth);

static void sk_cb(cf_future_t *f, void *data) {
  sk_hit(L_CB, sk_idx(data));
  sk_stat(EV_CALLBACK_RAN);
  if (!cf_future_done(f))
    sk_bad("callback on a future not done", cf_future_state(f));
  int action = sk_action(data), depth = sk_depth(data);
  sk_nest++;
  if (sk_nest > SK_MAX_NEST && action != CB_RESULT)
    action = CB_COUNT;
  switch (action) {
  case CB_SUBMIT:
    if (depth < SK_MAX_DEPTH) {
      cf_future_t *g = NULL;
      if (sk_submit(sk_rand_kind(), depth + 1, &g) == 0) {
        sk_stat(EV_NESTED_SUBMIT);
        sk_track(g, 0, depth + 1, false);
      }
    }
    break;
  case CB_CANCEL: {
    cf_future_t *g = sk_ring_pick(NULL);
    if (g != NULL) {
      int rc = cf_future_cancel(g);
      if (rc != 0 && rc != 1)
        sk_bad("cancel in callback", rc);
      cf_future_release(g);
    }
    break;
  }
  case CB_RESULT:
    sk_check_outcome(f, "outcome in callback");
    break;
  case CB_NESTED:
    if (depth < SK_MAX_DEPTH)
      sk_register(f, (int)(sk_rand() % CB_KINDS), depth + 1);
    break;
  case CB_BRIDGE:
    sk_deliver(f, sk_chance(4));
    break;
  case CB_TASK:
    sk_task_post(sk_chance(2) ? TK_AWAIT : TK_WAIT_FOR, cf_future_retain(f));
    break;
  default:
    break;
  }
  sk_nest--;
}

static void sk_register(cf_future_t *f, int action, int depth) {
  size_t i = sk_take(L_CB);
  if (i == SK_NONE)
    return;
  int rc = cf_future_add_done_callback(f, sk_cb, sk_pack(i, depth, action));
  if (rc != 0) {
    sk_bad("add_done_callback", rc);
    sk_hit(L_CB, i);
  }
}

/* Take over the caller's reference to f: a sentinel callback, 0 to 2
 * random callbacks, then into the ring (or released at once: from
 * callbacks, so that an eviction never runs deep chains of callbacks). */
static void sk_track(cf_future_t *f, int standalone, int depth, bool ring) {
  size_t i = sk_take(L_FUT);
  if (i != SK_NONE) {
    atomic_store(&sk.fut_origin[i],
                 (unsigned char)((standalone ? 1 : 0) | (ring ? 2 : 0) |
                                 (depth << 2)));
    int rc = cf_future_add_done_callback(f, sk_sentinel, sk_pack(i, 0, 0));
    if (rc != 0) {
      sk_bad("add sentinel", rc);
      sk_hit(L_FUT, i);
    }
  }
  int extra = (int)(sk_rand() % 3);
  for (int k = 0; k < extra; k++)
    sk_register(f, (int)(sk_rand() % CB_KINDS), depth);
  if (ring)
    sk_ring_put(f, standalone);
  else
    cf_future_release(f);
}

/* ---- jobs and submit ---------------------------------------------------- */

static void sk_job_value(cf_job_t *job) {
  void *v = sk_val_new();
  cf_job_return(job, v, v != NULL ? sk_obj_free : NULL);
}

static int sk_job(void *arg, cf_job_t *job) {
  sk_arg_t *a = arg;
  if (atomic_fetch_add(&a->ran, 1) != 0)
    sk_bad("job ran twice", 0);
  sk_stat(EV_JOB_RAN);
  for (volatile unsigned i = 0; i < a->spin; i++) {
  }
  switch (a->kind) {
  case JK_NULL:
    return 0;
  case JK_VALUE:
    sk_job_value(job);
    return 0;
  case JK_REPLACE:
    sk_job_value(job);
    sk_job_value(job);
    return 0;
  case JK_FAIL:
    return cf_job_fail(job, 7, "soak job %d failed", 7);
  case JK_VALFAIL:
    sk_job_value(job);
    return cf_job_fail(job, 8, NULL);
  case JK_COOP:
    if (cf_job_cancel_requested(job))
      return CF_ECANCELLED;
    sk_job_value(job);
    return 0;
  case JK_SPAWN:
    if (a->depth < SK_MAX_DEPTH) {
      cf_future_t *g = NULL;
      if (sk_submit(sk_rand_kind(), a->depth + 1, &g) == 0) {
        sk_stat(EV_NESTED_SUBMIT);
        sk_track(g, 0, a->depth + 1, true);
      }
    }
    return 0;
  case JK_SELF: {
    cf_future_t *self = cf_job_future(job);
    int rc = cf_future_result(self, 0, NULL);
    if (rc != CF_EDEADLK)
      sk_bad("result on its own future from inside the job", rc);
    if (!cf_future_running(self))
      sk_bad("own future not running", cf_future_state(self));
    return 0;
  }
  default:
    sk_bad("bad job kind", a->kind);
    return 1;
  }
}

/* Submit a job to the current pool; 0 with *out (if not NULL) set, or the
 * error (the argument is then destroyed here; CF_ESHUTDOWN is expected,
 * everything else is an anomaly). CF_ENOMEM when the ledger is full. */
static int sk_submit(int kind, int depth, cf_future_t **out) {
  if (out != NULL)
    *out = NULL;
  sk_arg_t *a = sk_arg_new(kind, depth);
  if (a == NULL)
    return CF_ENOMEM;
  sk_slot_t *s = sk_pool_enter();
  int rc = s != NULL ? cf_executor_submit(s->ex, sk_job, a, sk_obj_free, out)
                     : CF_ESHUTDOWN;
  sk_pool_exit(s);
  if (rc != 0) {
    if (rc != CF_ESHUTDOWN)
      sk_bad("submit", rc);
    if (out != NULL && *out != NULL)
      sk_bad("failed submit set *out", rc);
    sk_stat(EV_SUBMIT_REJECTED);
    sk_obj_free(a); /* still ours */
  } else if (out != NULL && *out == NULL) {
    sk_bad("submit gave no future", 0);
    rc = CF_EINVAL;
  }
  return rc;
}

/* ---- bridge deliveries ----------------------------------------------------
 */

typedef struct sk_then {
  size_t rec;  /* L_THEN */
  size_t crec; /* L_BCALL of the cancel request, or SK_NONE */
  _Atomic(cf_then_t *) t;
  atomic_int refs;
  bool called; /* loop thread only */
} sk_then_t;

static void sk_then_unref(sk_then_t *d) {
  if (atomic_fetch_sub(&d->refs, 1) == 1)
    free(d);
}

static void sk_then_cb(cf_future_t *f, int status, void *data) {
  sk_then_t *d = data;
  d->called = true;
  sk_hit(L_THEN, d->rec);
  if (status == 0) {
    if (cf_future_result(f, 0, NULL) != 0)
      sk_bad("delivery with status 0 of a future that did not succeed",
             cf_future_state(f));
  } else if (status == CF_EFAILED) {
    if (cf_future_result(f, 0, NULL) != CF_EFAILED)
      sk_bad("delivery with CF_EFAILED of a future that did not fail",
             cf_future_state(f));
  } else if (status != CF_ECANCELLED) {
    sk_bad("delivery status", status);
  }
  sk_then_unref(d);
}

/* A bridge call: cancel a delivery if its callback has not run yet. */
static void sk_then_cancel_call(void *arg) {
  sk_then_t *d = arg;
  sk_hit(L_BCALL, d->crec);
  if (!d->called) {
    int rc = cf_then_cancel(atomic_load(&d->t));
    if (rc == 1)
      sk_stat(EV_THEN_CANCEL);
    else if (rc != 0)
      sk_bad("then_cancel", rc);
  }
  sk_then_unref(d);
}

static sk_then_t *sk_then_new(bool *cancel) {
  size_t rec = sk_take(L_THEN);
  if (rec == SK_NONE)
    return NULL;
  sk_then_t *d = malloc(sizeof(*d));
  if (d == NULL) {
    sk_bad("malloc delivery", 0);
    sk_hit(L_THEN, rec);
    return NULL;
  }
  d->rec = rec;
  d->crec = *cancel ? sk_take(L_BCALL) : SK_NONE;
  *cancel = d->crec != SK_NONE;
  atomic_init(&d->t, NULL);
  atomic_init(&d->refs, *cancel ? 2 : 1);
  d->called = false;
  return d;
}

/* The delivery failed to start: account for it and free it. */
static void sk_then_drop(sk_then_t *d) {
  sk_hit(L_THEN, d->rec);
  if (d->crec != SK_NONE)
    sk_hit(L_BCALL, d->crec);
  free(d);
}

/* Inside the bridge guard, after a successful then(): ask the loop thread
 * to cancel the delivery, if wanted. */
static void sk_then_started(sk_then_t *d, cf_then_t *t, bool cancel) {
  if (!cancel)
    return;               /* d may be gone already: its callback may have run */
  atomic_store(&d->t, t); /* the cancel request's reference keeps d */
  int rc = cf_bridge_call_threadsafe(sk.bridge, sk_then_cancel_call, d);
  if (rc != 0) {
    sk_bad("call_threadsafe (cancel request)", rc);
    sk_hit(L_BCALL, d->crec);
    sk_then_unref(d);
  }
}

/* Deliver f (borrowed) to the loop thread; sometimes cancel the delivery
 * from there. */
static void sk_deliver(cf_future_t *f, bool cancel) {
  sk_then_t *d = sk_then_new(&cancel);
  if (d == NULL)
    return;
  if (!sk_enter(&sk.bridge_guard)) {
    sk_then_drop(d);
    return;
  }
  cf_then_t *t = NULL;
  int rc = cf_bridge_then(sk.bridge, f, sk_then_cb, d, &t);
  if (rc != 0) {
    sk_bad("bridge_then", rc);
    sk_then_drop(d);
  } else {
    sk_then_started(d, t, cancel);
  }
  sk_exit(&sk.bridge_guard);
}

static void sk_bridge_run(void) {
  bool cancel = sk_chance(4);
  sk_then_t *d = sk_then_new(&cancel);
  if (d == NULL)
    return;
  sk_arg_t *a = sk_arg_new(sk_rand_kind(), 0);
  if (a == NULL) {
    sk_then_drop(d);
    return;
  }
  sk_slot_t *s = sk_pool_enter();
  if (s == NULL || !sk_enter(&sk.bridge_guard)) {
    sk_pool_exit(s);
    sk_obj_free(a);
    sk_then_drop(d);
    return;
  }
  cf_then_t *t = NULL;
  int rc = cf_bridge_run_in_executor(sk.bridge, s->ex, sk_job, a, sk_obj_free,
                                     sk_then_cb, d, &t);
  if (rc == 0) {
    sk_then_started(d, t, cancel);
  } else if (rc == CF_ESHUTDOWN) {
    /* The pool's (the bridge is open): the job never runs, arg is ours. */
    sk_stat(EV_SUBMIT_REJECTED);
    sk_obj_free(a);
    sk_then_drop(d);
  } else {
    sk_bad("bridge_run_in_executor", rc);
    sk_then_drop(d);
  }
  sk_exit(&sk.bridge_guard);
  sk_pool_exit(s);
}

static void sk_bcall_cb(void *arg) { sk_hit(L_BCALL, sk_idx(arg)); }

static void sk_bridge_call(void) {
  size_t i = sk_take(L_BCALL);
  if (i == SK_NONE)
    return;
  if (!sk_enter(&sk.bridge_guard)) {
    sk_hit(L_BCALL, i);
    return;
  }
  int rc = cf_bridge_call_threadsafe(sk.bridge, sk_bcall_cb, sk_pack(i, 0, 0));
  if (rc != 0) {
    sk_bad("bridge_call_threadsafe", rc);
    sk_hit(L_BCALL, i);
  }
  sk_exit(&sk.bridge_guard);
}

/* Reader of the bridge's fd, on the loop thread. */
static void sk_dispatch(void *arg) {
  (void)arg;
  int rc = cf_bridge_dispatch(sk.bridge);
  if (rc < 0)
    sk_bad("bridge_dispatch", rc);
}

/* ---- tasks ----------------------------------------------------------------
 */

typedef struct sk_task {
  int kind;
  int refs;        /* loop thread: the task's own, plus a pending timer */
  size_t rec;      /* L_TASK */
  size_t lrec;     /* L_LCALL of the spawn request, SK_NONE if none */
  cf_future_t *pf; /* the pool or standalone future to await, or NULL */
  cf_lfuture_t *task;
  cf_handle_t *timer; /* the canceller, until it runs or is cancelled */
  double t1;          /* a small delay or timeout, > 0 */
  uint32_t r;         /* random bits chosen by the spawner */
  bool done;
} sk_task_t;

static void sk_task_unref(sk_task_t *st) {
  if (--st->refs > 0)
    return;
  cf_lfuture_release(st->task);
  cf_future_release(st->pf);
  free(st);
  atomic_fetch_sub(&sk.tasks_alive, 1);
}

static sk_task_t *sk_task_new(int kind, cf_future_t *pf) {
  sk_task_t *st = calloc(1, sizeof(*st));
  if (st == NULL) {
    sk_bad("malloc task", 0);
    cf_future_release(pf);
    return NULL;
  }
  atomic_fetch_add(&sk.tasks_alive, 1);
  st->kind = kind;
  st->pf = pf;
  st->r = sk_rand();
  st->t1 = 0.0001 + (double)(sk_rand() % 1500) * 1e-6;
  st->rec = SK_NONE;
  st->lrec = SK_NONE;
  return st;
}

/* After a CF_ECANCELLED from an await: end cancelled at once, after a
 * cleanup await, or swallow the cancellation. */
static int sk_task_cancelled(cf_lfuture_t *self, sk_task_t *st) {
  switch ((st->r >> 8) % 3) {
  case 0:
    return CF_ECANCELLED;
  case 1: {
    int rc = cf_sleep(0);
    if (rc != 0 && rc != CF_ECANCELLED)
      sk_bad("cleanup sleep", rc);
    return CF_ECANCELLED;
  }
  default:
    cf_task_uncancel(self);
    return 0;
  }
}

static void sk_task_start(sk_task_t *st);

static int sk_task_run(sk_task_t *st) {
  sk_arg_t *a = sk_arg_new(sk_rand_kind(), SK_MAX_DEPTH);
  if (a == NULL)
    return 0;
  sk_slot_t *s = (st->r & 16u) ? sk_pool_enter() : NULL;
  cf_future_t *done = NULL;
  int rc = cf_run_in_executor(s != NULL ? s->ex : NULL, sk_job, a, sk_obj_free,
                              &done);
  sk_pool_exit(s);
  if (rc == CF_ESHUTDOWN) { /* the submit failed: arg is ours */
    sk_stat(EV_SUBMIT_REJECTED);
    sk_obj_free(a);
    return 0;
  }
  if (rc == 0 || rc == CF_EFAILED) {
    if (done == NULL || !cf_future_done(done))
      sk_bad("run_in_executor: no done future", rc);
    else if (cf_future_result(done, 0, NULL) != rc)
      sk_bad("run_in_executor: outcome differs from the future's", rc);
    cf_future_release(done);
    return 0;
  }
  if (rc != CF_ECANCELLED)
    sk_bad("run_in_executor", rc);
  return rc;
}

static int sk_task_await(sk_task_t *st) {
  void *v = NULL;
  if (st->r & 32u) {
    cf_timeout_t *scope = NULL;
    int rc = cf_timeout_enter(st->t1, &scope);
    if (rc != 0) {
      sk_bad("timeout_enter", rc);
      return 0;
    }
    rc = cf_timeout_exit(scope, cf_await_future(st->pf, &v));
    if (rc == CF_ETIMEDOUT) {
      sk_stat(EV_TASK_TIMEOUT);
      return 0;
    }
    if (rc != 0 && rc != CF_EFAILED && rc != CF_ECANCELLED)
      sk_bad("await in a timeout scope", rc);
    return rc == CF_ECANCELLED ? rc : 0;
  }
  int rc = cf_await_future(st->pf, &v);
  if (rc != 0 && rc != CF_EFAILED && rc != CF_ECANCELLED)
    sk_bad("await_future", rc);
  if (rc != CF_ECANCELLED && !cf_future_done(st->pf))
    sk_bad("await_future returned before the future was done", rc);
  return rc == CF_ECANCELLED ? rc : 0;
}

static int sk_task_wait_for(sk_task_t *st) {
  cf_lfuture_t *lf = NULL;
  int rc = cf_lfuture_wrap(sk.loop, st->pf, &lf);
  if (rc != 0) {
    sk_bad("lfuture_wrap", rc);
    return 0;
  }
  void *v = NULL;
  rc = cf_wait_for(lf, (st->r & 64u) ? 0.0 : st->t1, &v);
  if (rc == CF_ETIMEDOUT) {
    sk_stat(EV_TASK_TIMEOUT);
    if (!cf_lfuture_done(lf))
      sk_bad("wait_for timed out but left its future pending", 0);
    rc = 0;
  } else if (rc != 0 && rc != CF_EFAILED && rc != CF_ECANCELLED) {
    sk_bad("wait_for", rc);
  }
  cf_lfuture_release(lf);
  return rc == CF_ECANCELLED ? rc : 0;
}

static int sk_task_sleep(cf_lfuture_t *self, sk_task_t *st) {
  int rc = cf_sleep(st->t1 * (double)(st->r % 3));
  if (rc != 0) {
    if (rc != CF_ECANCELLED)
      sk_bad("sleep", rc);
    return rc;
  }
  void *v = sk_val_new();
  cf_task_return(self, v, v != NULL ? sk_obj_free : NULL);
  if (st->r & 128u) { /* replace it: the first one is destroyed now */
    v = sk_val_new();
    cf_task_return(self, v, v != NULL ? sk_obj_free : NULL);
  }
  if (st->r & 256u) /* fail: the value is dropped */
    return cf_task_fail(self, 9, "soak task %u", st->r & 0xffu);
  return 0;
}

static int sk_task_child(sk_task_t *st) {
  sk_task_t *child = sk_task_new(TK_SLEEP, NULL);
  if (child == NULL)
    return 0;
  child->t1 = st->t1 * 1.5;
  sk_task_start(child);
  if (child->rec == SK_NONE)
    return 0; /* not started (and freed) */
  cf_lfuture_t *c = cf_lfuture_retain(child->task);
  void *v = NULL;
  int rc = cf_wait_for(c, (st->r & 64u) ? 0.0 : st->t1, &v);
  if (rc == CF_ETIMEDOUT) {
    sk_stat(EV_TASK_TIMEOUT);
    if (!cf_lfuture_done(c))
      sk_bad("wait_for on a task timed out but the task is not done", 0);
    rc = 0;
  } else if (rc != 0 && rc != CF_EFAILED && rc != CF_ECANCELLED) {
    sk_bad("wait_for on a task", rc);
  }
  cf_lfuture_release(c);
  return rc == CF_ECANCELLED ? rc : 0;
}

static int sk_task_body(cf_lfuture_t *self, void *arg) {
  sk_task_t *st = arg;
  int rc;
  switch (st->kind) {
  case TK_RUN:
    rc = sk_task_run(st);
    break;
  case TK_AWAIT:
    rc = sk_task_await(st);
    break;
  case TK_WAIT_FOR:
    rc = sk_task_wait_for(st);
    break;
  case TK_SLEEP:
    return sk_task_sleep(self, st); /* 0, 9 or CF_ECANCELLED as is */
  case TK_CHILD:
    rc = sk_task_child(st);
    break;
  default:
    sk_bad("bad task kind", st->kind);
    return 0;
  }
  /* CF_ECANCELLED with no request pending: what was awaited was cancelled,
   * not this task. */
  if (rc == CF_ECANCELLED && cf_task_cancelling(self) > 0)
    return sk_task_cancelled(self, st);
  if (st->r & 512u) {
    void *v = sk_val_new();
    cf_task_return(self, v, v != NULL ? sk_obj_free : NULL);
  }
  return 0;
}

static void sk_task_done(cf_lfuture_t *f, void *data) {
  sk_task_t *st = data;
  sk_hit(L_TASK, st->rec);
  st->done = true;
  sk.tasks_live--;
  void *v = NULL;
  int rc = cf_lfuture_result(f, &v);
  if (rc == CF_ECANCELLED) {
    sk_stat(EV_TASK_CANCELLED);
  } else if (rc == CF_EFAILED) {
    int code = 0;
    const char *msg = NULL;
    if (cf_lfuture_exception(f, &code, &msg) != 0 || code != 9 || msg == NULL)
      sk_bad("task failure code", code);
  } else if (rc != 0) {
    sk_bad("task outcome", rc);
  }
  if (st->timer != NULL) {
    int c = cf_handle_cancel(st->timer);
    if (c != 1)
      sk_bad("cancel of a pending timer", c);
    st->timer = NULL;
    sk.timers_live--;
    st->refs--; /* the timer's (ours below is the last but one at least) */
  }
  sk_task_unref(st);
}

static void sk_task_cancel_timer(void *arg) {
  sk_task_t *st = arg;
  st->timer = NULL;
  sk.timers_live--;
  if (!st->done) {
    int rc = cf_lfuture_cancel(st->task);
    if (rc == 1)
      sk_stat(EV_TASK_CANCEL);
    else if (rc != 0 || !cf_lfuture_done(st->task))
      sk_bad("task cancel from a timer", rc);
  }
  sk_task_unref(st);
}

/* Loop thread: create the task, its done callback and perhaps a
 * canceller. On failure st is freed (st->rec stays SK_NONE). */
static void sk_task_start(sk_task_t *st) {
  size_t rec = sk_take(L_TASK);
  if (rec == SK_NONE) {
    st->refs = 1;
    sk_task_unref(st);
    return;
  }
  st->refs = 1;
  int rc = cf_task_create(sk.loop, sk_task_body, st, &st->task);
  if (rc != 0) {
    sk_bad("task_create", rc);
    sk_hit(L_TASK, rec);
    sk_task_unref(st);
    return;
  }
  st->rec = rec;
  sk_stat(EV_TASK);
  sk.tasks_live++;
  rc = cf_lfuture_add_done_callback(st->task, sk_task_done, st);
  if (rc != 0) {
    sk_bad("lfuture_add_done_callback", rc); /* st leaks: reported */
    return;
  }
  switch ((st->r >> 12) % 8) {
  case 0: /* before its first step: the body never runs */
    rc = cf_lfuture_cancel(st->task);
    if (rc != 1)
      sk_bad("cancel of a new task", rc);
    else
      sk_stat(EV_TASK_CANCEL);
    break;
  case 1:
  case 2:
  case 3:
    rc = cf_loop_call_later(sk.loop, st->t1 * (double)((st->r >> 16) % 3),
                            sk_task_cancel_timer, st, &st->timer);
    if (rc != 0) {
      sk_bad("call_later", rc);
      st->timer = NULL;
    } else {
      st->refs++;
      sk.timers_live++;
    }
    break;
  default:
    break;
  }
}

static void sk_spawn_cb(void *arg) {
  sk_task_t *st = arg;
  sk_hit(L_LCALL, st->lrec);
  sk_task_start(st);
}

/* From any thread: start a task of `kind` on the loop (pf: a reference
 * taken over, or NULL). */
static void sk_task_post(int kind, cf_future_t *pf) {
  /* Back-pressure: producers can post tasks faster than a slow (e.g.
   * instrumented) loop thread runs them, and each live task holds a stack
   * mapping. */
  if (atomic_load(&sk.tasks_alive) >= SK_MAX_TASKS) {
    sk_stat(EV_TASK_SKIPPED);
    cf_future_release(pf);
    return;
  }
  size_t lrec = sk_take(L_LCALL);
  if (lrec == SK_NONE) {
    cf_future_release(pf);
    return;
  }
  sk_task_t *st = sk_task_new(kind, pf);
  if (st == NULL) {
    sk_hit(L_LCALL, lrec);
    return;
  }
  st->lrec = lrec;
  int rc = CF_ESHUTDOWN;
  if (sk_enter(&sk.loop_guard)) {
    rc = cf_loop_call_soon_threadsafe(sk.loop, sk_spawn_cb, st);
    sk_exit(&sk.loop_guard);
    if (rc != 0)
      sk_bad("loop_call_soon_threadsafe", rc);
  }
  if (rc != 0) {
    sk_hit(L_LCALL, lrec);
    st->refs = 1;
    sk_task_unref(st);
  }
}

/* ---- plain loop calls and rotation from the loop ---------------------------
 */

static void sk_lcall_cb(void *arg) { sk_hit(L_LCALL, sk_idx(arg)); }

static void sk_lrotate_cb(void *arg) {
  sk_hit(L_LCALL, sk_idx(arg));
  sk_rotate();
}

static void sk_loop_post(cf_loop_fn fn) {
  size_t i = sk_take(L_LCALL);
  if (i == SK_NONE)
    return;
  int rc = CF_ESHUTDOWN;
  if (sk_enter(&sk.loop_guard)) {
    rc = cf_loop_call_soon_threadsafe(sk.loop, fn, sk_pack(i, 0, 0));
    sk_exit(&sk.loop_guard);
    if (rc != 0)
      sk_bad("loop_call_soon_threadsafe", rc);
  }
  if (rc != 0)
    sk_hit(L_LCALL, i);
}

/* ---- the loop thread ---------------------------------------------------- */

/* The end, in stages, on the loop thread once the producers are done and
 * the pools destroyed: wait for tasks and timers; close the loop guard and
 * let every call posted before run (FIFO); wait for tasks again; close the
 * bridge and stop. */
static void sk_finish_cb(void *arg) {
  (void)arg;
  if (sk.tasks_live > 0 || sk.timers_live > 0) {
    int rc = cf_loop_call_later(sk.loop, 0.001, sk_finish_cb, NULL, NULL);
    if (rc != 0) {
      sk_bad("call_later (finish)", rc);
      cf_loop_stop(sk.loop);
    }
    return;
  }
  if (sk.finish_stage == 0) {
    sk.finish_stage = 1;
    sk_close_guard(&sk.loop_guard);
    int rc = cf_loop_call_soon_threadsafe(sk.loop, sk_finish_cb, NULL);
    if (rc != 0) {
      sk_bad("call_soon_threadsafe (finish)", rc);
      cf_loop_stop(sk.loop);
    }
    return;
  }
  sk.finish_stage = 2;
  sk_close_guard(&sk.bridge_guard);
  if (cf_loop_remove_reader(sk.loop, cf_bridge_fd(sk.bridge)) != 1)
    sk_bad("remove_reader", 0);
  cf_bridge_destroy(sk.bridge); /* what is left runs now, cancelled */
  sk.bridge = NULL;
  cf_loop_stop(sk.loop);
}

static void *sk_loop_main(void *arg) {
  (void)arg;
  cf_loop_options_t opts;
  cf_loop_options_init(&opts);
  int rc = cf_loop_create(&sk.loop, &opts);
  if (rc == 0) {
    rc = cf_bridge_create(&sk.bridge);
    if (rc == 0)
      rc = cf_loop_add_reader(sk.loop, cf_bridge_fd(sk.bridge), sk_dispatch,
                              NULL);
  }
  sk.loop_start_rc = rc;
  sem_post(&sk.loop_ready);
  if (rc == 0) {
    rc = cf_loop_run_forever(sk.loop);
    if (rc != 0)
      sk_bad("loop_run_forever", rc);
    if (sk.finish_stage != 2)
      sk_bad("loop stopped before the end", sk.finish_stage);
  }
  if (sk.bridge != NULL)
    cf_bridge_destroy(sk.bridge);
  sk.bridge = NULL;
  rc = cf_loop_close(sk.loop);
  if (rc != 0)
    sk_bad("loop_close", rc);
  sk.loop = NULL;
  return NULL;
}

/* ---- producer operations ----------------------------------------------------
 */

static void op_submit(void) {
  cf_future_t *f = NULL;
  if (sk_submit(sk_rand_kind(), 0, &f) != 0)
    return;
  sk_track(f, 0, 0, true);
}

static void op_submit_detached(void) {
  (void)sk_submit(sk_rand_kind(), 0, NULL);
}

static void op_standalone_new(void) {
  cf_future_t *f = NULL;
  int rc = cf_future_create(&f);
  if (rc != 0) {
    sk_bad("future_create", rc);
    return;
  }
  if (sk_chance(8)) {
    rc = cf_future_set_running_or_notify_cancel(f);
    if (rc != 1)
      sk_bad("set_running_or_notify_cancel on a new future", rc);
    else
      sk_running_add(f);
  }
  sk_track(f, 1, 0, true);
}

static void op_standalone_done(void) {
  cf_future_t *f = NULL;
  for (int tries = 0; tries < 4 && f == NULL; tries++) {
    int sa = 0;
    f = sk_ring_pick(&sa);
    if (f != NULL && !sa) {
      cf_future_release(f);
      f = NULL;
    }
  }
  if (f == NULL)
    return;
  int rc;
  switch (sk_rand() % 5) {
  case 0: {
    void *v = sk_val_new();
    rc = cf_future_set_result(f, v, v != NULL ? sk_obj_free : NULL);
    if (rc == CF_EINVALID_STATE) {
      if (!cf_future_done(f))
        sk_bad("set_result refused on a future not done", 0);
      if (v != NULL)
        sk_obj_free(v); /* still ours */
    } else if (rc != 0) {
      sk_bad("set_result", rc);
    }
    break;
  }
  case 1:
    rc = cf_future_set_result(f, NULL, NULL);
    if (rc != 0 && rc != CF_EINVALID_STATE)
      sk_bad("set_result(NULL)", rc);
    break;
  case 2:
    rc = cf_future_set_exception(f, 3, "standalone failure");
    if (rc != 0 && rc != CF_EINVALID_STATE)
      sk_bad("set_exception", rc);
    break;
  case 3:
    rc = cf_future_cancel(f);
    if (rc != 0 && rc != 1)
      sk_bad("cancel standalone", rc);
    break;
  default:
    rc = cf_future_set_running_or_notify_cancel(f);
    if (rc == 1)
      sk_running_add(f);
    else if (rc != 0 && rc != CF_EINVALID_STATE)
      sk_bad("set_running_or_notify_cancel", rc);
  }
  cf_future_release(f);
}

static void op_cancel(void) {
  cf_future_t *f = sk_ring_pick(NULL);
  if (f == NULL)
    return;
  int rc = cf_future_cancel(f);
  if (rc == 1) {
    sk_stat(EV_CANCEL_OK);
    if (!cf_future_cancelled(f))
      sk_bad("cancel returned 1 but not cancelled", 0);
  } else if (rc != 0) {
    sk_bad("cancel", rc);
  }
  cf_future_release(f);
}

static void op_result(bool exception) {
  cf_future_t *f = sk_ring_pick(NULL);
  if (f == NULL)
    return;
  double timeout = sk_small_timeout();
  double t0 = sk_now();
  int rc, code = -1;
  const char *msg = NULL;
  void *v = NULL;
  if (exception) {
    rc = cf_future_exception(f, timeout, &code, &msg);
    if (rc == 0 && code != 0 && code != 3 && code != 7 && code != 8)
      sk_bad("exception code", code);
  } else {
    rc = cf_future_result(f, timeout, &v);
  }
  if (rc == CF_ETIMEDOUT) {
    sk_stat(EV_RESULT_TIMEOUT);
    if (sk_now() - t0 + 1e-9 < timeout)
      sk_bad("result timed out before its deadline", rc);
  } else if (rc == 0 || rc == CF_EFAILED || rc == CF_ECANCELLED) {
    if (!cf_future_done(f))
      sk_bad("result returned on a future not done", rc);
    if (exception && rc == CF_EFAILED)
      sk_bad("exception returned CF_EFAILED", rc);
  } else {
    sk_bad(exception ? "exception" : "result", rc);
  }
  cf_future_release(f);
}

static void op_callback(void) {
  cf_future_t *f = sk_ring_pick(NULL);
  if (f == NULL)
    return;
  sk_register(f, (int)(sk_rand() % CB_KINDS), 0);
  cf_future_release(f);
}

static int sk_in(cf_future_t *const *arr, size_t n, const cf_future_t *f) {
  for (size_t i = 0; i < n; i++)
    if (arr[i] == f)
      return 1;
  return 0;
}

/* A random subset of the ring (duplicates possible); *unique gets the
 * number of distinct futures. */
static size_t sk_subset(cf_future_t **fs, size_t *unique) {
  size_t n = 1 + sk_rand() % SK_SUBSET, k = 0;
  *unique = 0;
  for (size_t i = 0; i < n; i++) {
    cf_future_t *f;
    if (k > 0 && sk_chance(5))
      f = cf_future_retain(fs[sk_rand() % k]);
    else
      f = sk_ring_pick(NULL);
    if (f == NULL)
      continue;
    if (!sk_in(fs, k, f))
      (*unique)++;
    fs[k++] = f;
  }
  return k;
}

static void op_wait(void) {
  cf_future_t *fs[SK_SUBSET];
  size_t unique;
  size_t n = sk_subset(fs, &unique);
  if (n == 0)
    return;
  int mode = 1 + (int)(sk_rand() % 3);
  double timeout = sk_small_timeout();
  cf_future_t *done[SK_SUBSET], *not_done[SK_SUBSET];
  size_t nd = 999, nn = 999;
  double t0 = sk_now();
  int rc = cf_wait(fs, n, timeout, mode, done, &nd, not_done, &nn);
  double elapsed = sk_now() - t0;
  if (rc != 0) {
    sk_bad("wait", rc);
  } else {
    if (nd + nn != unique)
      sk_bad("wait partition size", (long)(nd + nn));
    for (size_t i = 0; i < nd; i++)
      if (!sk_in(fs, n, done[i]) || !cf_future_done(done[i]))
        sk_bad("wait: bad done entry", 0);
    for (size_t i = 0; i < nn; i++)
      if (!sk_in(fs, n, not_done[i]) || sk_in(done, nd, not_done[i]))
        sk_bad("wait: bad not_done entry", 0);
    /* Returned before the deadline: the condition held. */
    bool early = elapsed + 1e-9 < timeout;
    if (nn > 0) {
      bool failed = false;
      for (size_t i = 0; i < nd; i++)
        if (cf_future_result(done[i], 0, NULL) == CF_EFAILED)
          failed = true;
      bool held = (mode == CF_FIRST_COMPLETED && nd > 0) ||
                  (mode == CF_FIRST_EXCEPTION && failed);
      if (early && !held)
        sk_bad("wait returned early without its condition", mode);
      if (!held)
        sk_stat(EV_WAIT_TIMEOUT);
    }
  }
  for (size_t i = 0; i < n; i++)
    cf_future_release(fs[i]);
}

static void op_as_completed(void) {
  cf_future_t *fs[SK_SUBSET];
  size_t unique;
  size_t n = sk_subset(fs, &unique);
  if (n == 0)
    return;
  double timeout = sk_small_timeout();
  cf_as_completed_t *it = NULL;
  int rc = cf_as_completed_create(fs, n, timeout, &it);
  bool dropped = sk_chance(2); /* the iterator holds its own references */
  if (dropped)
    for (size_t i = 0; i < n; i++)
      cf_future_release(fs[i]);
  if (rc != 0) {
    sk_bad("as_completed_create", rc);
  } else {
    size_t stop_after = sk_chance(4) ? sk_rand() % (unique + 1) : SK_SUBSET;
    size_t yielded = 0;
    cf_future_t *seen[SK_SUBSET];
    while (yielded < stop_after) {
      cf_future_t *f = NULL;
      rc = cf_as_completed_next(it, &f);
      if (rc == CF_EOF) {
        if (yielded != unique)
          sk_bad("as_completed: CF_EOF early", (long)yielded);
        break;
      }
      if (rc == CF_ETIMEDOUT) {
        if (cf_as_completed_remaining(it) != (int)(unique - yielded))
          sk_bad("as_completed remaining", cf_as_completed_remaining(it));
        break;
      }
      if (rc != 0) {
        sk_bad("as_completed_next", rc);
        break;
      }
      if (yielded >= SK_SUBSET || !cf_future_done(f) ||
          sk_in(seen, yielded, f) || (!dropped && !sk_in(fs, n, f))) {
        sk_bad("as_completed yielded a bad future", 0);
        break;
      }
      seen[yielded++] = f;
    }
    cf_as_completed_destroy(it);
  }
  if (!dropped)
    for (size_t i = 0; i < n; i++)
      cf_future_release(fs[i]);
}

typedef struct sk_src {
  int left;
  bool fail; /* end with an input error instead */
} sk_src_t;

static int sk_map_input(void *source, void **arg) {
  sk_src_t *s = source;
  if (s->left <= 0)
    return s->fail ? CF_EFAILED : 0;
  s->left--;
  sk_arg_t *a = sk_arg_new(sk_rand_kind(), SK_MAX_DEPTH);
  if (a == NULL)
    return 0;
  *arg = a;
  return 1;
}

static void op_map(void) {
  sk_src_t src = {.left = (int)(sk_rand() % 8), .fail = sk_chance(10)};
  size_t buffersize = sk_rand() % 4;
  double timeout = sk_chance(3) ? 0.0 : 0.0005 + (sk_rand() % 4500) * 1e-6;
  size_t stop_after = sk_chance(4) ? sk_rand() % 6 : SIZE_MAX;
  sk_slot_t *s = sk_pool_enter(); /* map submits as it goes */
  if (s == NULL)
    return;
  cf_map_t *m = NULL;
  int rc = cf_executor_map(s->ex, sk_job, sk_map_input, &src, sk_obj_free,
                           timeout, buffersize, &m);
  if (rc != 0) {
    if (rc != CF_ESHUTDOWN && !(src.fail && rc == CF_EFAILED))
      sk_bad("executor_map", rc);
    sk_pool_exit(s);
    return;
  }
  int last = 0;
  for (size_t got = 0; got < stop_after; got++) {
    cf_future_t *f = NULL;
    rc = cf_map_next(m, &f);
    if (last != 0 && rc != CF_EOF) {
      sk_bad("map went on after an error", rc);
      break;
    }
    if (rc == CF_EOF)
      break;
    if (rc == 0) {
      if (f == NULL || !cf_future_done(f))
        sk_bad("map yielded a future not done", 0);
      else
        sk_check_outcome(f, "map outcome");
      continue;
    }
    if (rc == CF_ETIMEDOUT)
      sk_stat(EV_MAP_TIMEOUT);
    else if (rc != CF_ESHUTDOWN && !(src.fail && rc == CF_EFAILED))
      sk_bad("map_next", rc);
    last = rc;
  }
  cf_map_destroy(m);
  sk_pool_exit(s);
}

static void op_bridge_then(void) {
  cf_future_t *f = sk_ring_pick(NULL);
  if (f == NULL)
    return;
  sk_deliver(f, sk_chance(4));
  cf_future_release(f);
}

/* A task: on a fresh pool future, on one from the ring, or on its own. */
static void op_task(void) {
  int kind = (int)(sk_rand() % TK_KINDS);
  cf_future_t *pf = NULL;
  if (kind == TK_AWAIT || kind == TK_WAIT_FOR) {
    int sa = 0;
    if (sk_chance(2)) {
      if (sk_submit(sk_rand_kind(), 0, &pf) != 0)
        return;
      sk_track(cf_future_retain(pf), 0, 0, true);
    } else {
      pf = sk_ring_pick(&sa);
      if (pf == NULL)
        return;
      /* A standalone future may never complete: only under a timeout. */
      if (sa)
        kind = TK_WAIT_FOR;
    }
  }
  sk_task_post(kind, pf);
}

static void sk_op(void) {
  unsigned r = sk_rand() % sk.weight_total;
  int op = 0;
  while (r >= sk_weight[op]) {
    r -= sk_weight[op];
    op++;
  }
  sk_stat(op);
  switch (op) {
  case OP_SUBMIT:
    op_submit();
    break;
  case OP_SUBMIT_DETACHED:
    op_submit_detached();
    break;
  case OP_STANDALONE_NEW:
    op_standalone_new();
    break;
  case OP_STANDALONE_DONE:
    op_standalone_done();
    break;
  case OP_CANCEL:
    op_cancel();
    break;
  case OP_RESULT:
    op_result(false);
    break;
  case OP_EXCEPTION:
    op_result(true);
    break;
  case OP_CALLBACK:
    op_callback();
    break;
  case OP_WAIT:
    op_wait();
    break;
  case OP_AS_COMPLETED:
    op_as_completed();
    break;
  case OP_MAP:
    op_map();
    break;
  case OP_BRIDGE_THEN:
    op_bridge_then();
    break;
  case OP_BRIDGE_RUN:
    sk_bridge_run();
    break;
  case OP_BRIDGE_CALL:
    sk_bridge_call();
    break;
  case OP_TASK:
    op_task();
    break;
  case OP_LOOP_CALL:
    sk_loop_post(sk_lcall_cb);
    break;
  case OP_ROTATE:
    sk_rotate();
    break;
  case OP_ROTATE_LOOP:
    sk_loop_post(sk_lrotate_cb);
    break;
  default:
    sk_bad("bad op", op);
  }
}

typedef struct sk_producer {
  int index;
  long ops;
  pthread_t tid;
} sk_producer_t;

/* Each operation draws its own seed from the producer's stream, so the
 * sequence of operations and their parameters depends on the seed only,
 * not on outcomes (a refused submit draws fewer numbers) or on callbacks
 * that happen to run inline in this thread. */
static void *sk_producer_main(void *arg) {
  sk_producer_t *p = arg;
  uint64_t stream =
      sk_mix(sk.seed * 0x100000001B3ull + (uint64_t)p->index + 1u) | 1u;
  for (long i = 0; i < p->ops; i++) {
    sk_seed_thread(sk_next(&stream));
    sk_op();
  }
  return NULL;
}

/* ---- setup and the end ------------------------------------------------------
 */

static void sk_init(long ops, uint64_t seed) {
  memset(&sk, 0, sizeof(sk));
  sk.seed = seed;
  sk.ops = ops;
  size_t cap = (size_t)ops * 2 + 4096;
  for (int l = 0; l < L_COUNT; l++) {
    sk.led[l].c = calloc(cap, 1);
    assert_non_null(sk.led[l].c);
    sk.led[l].cap = cap;
  }
  for (int op = 0; op < OP_COUNT; op++)
    sk.weight_total += sk_weight[op];
  sk.fut_origin = calloc(cap, 1);
  assert_non_null(sk.fut_origin);
  sk.slots_cap = (size_t)ops / 500 + 64;
  sk.slots = calloc(sk.slots_cap, sizeof(*sk.slots));
  assert_non_null(sk.slots);
  assert_int_equal(pthread_mutex_init(&sk.ring_mu, NULL), 0);
  assert_int_equal(pthread_mutex_init(&sk.run_mu, NULL), 0);
  assert_int_equal(pthread_mutex_init(&sk.rot_mu, NULL), 0);
  assert_int_equal(sem_init(&sk.loop_ready, 0, 0), 0);
}

static void sk_fini(void) {
  for (int l = 0; l < L_COUNT; l++)
    free((void *)sk.led[l].c);
  free((void *)sk.fut_origin);
  free(sk.slots);
  pthread_mutex_destroy(&sk.ring_mu);
  pthread_mutex_destroy(&sk.run_mu);
  pthread_mutex_destroy(&sk.rot_mu);
  sem_destroy(&sk.loop_ready);
}

/* Test thread, producers done: close every pool and destroy it once its
 * users (a task awaiting in run_in_executor, a rotation in progress on the
 * loop thread) have left. */
static void sk_close_pools(void) {
  pthread_mutex_lock(&sk.rot_mu);
  atomic_store(&sk.pools_closed, 1);
  pthread_mutex_unlock(&sk.rot_mu);
  size_t n = atomic_load(&sk.nslots);
  for (size_t i = 0; i < n; i++) {
    sk_slot_t *s = &sk.slots[i];
    while (atomic_load(&s->users) != 0)
      sched_yield();
    int expected = 0;
    if (!atomic_compare_exchange_strong(&s->claimed, &expected, 1))
      continue; /* a reaper has it */
    if (!atomic_load(&s->retired)) {
      int rc = cf_executor_shutdown(s->ex, false, sk_chance(2));
      if (rc != 0)
        sk_bad("final shutdown", rc);
    }
    sk_destroy_slot(s);
  }
  /* Wait for reapers still inside cf_executor_destroy. */
  while ((size_t)atomic_load(&sk.stat[EV_POOL_DESTROY]) != n)
    sched_yield();
}

static void sk_print_stats(double secs) {
  print_message("# soak: %ld operations by %d producer threads in %.1f s\n",
                sk.ops, SK_PRODUCERS, secs);
  for (int i = 0; i < EV_COUNT; i++)
    print_message("#   %-40s %ld\n", sk_stat_name[i], atomic_load(&sk.stat[i]));
  for (int l = 0; l < L_COUNT; l++) {
    size_t used = atomic_load(&sk.led[l].used);
    print_message("#   ledger %-33s %zu checked%s\n", sk_ledger_name[l],
                  used < sk.led[l].cap ? used : sk.led[l].cap,
                  atomic_load(&sk.led[l].full) ? " (full: some skipped)" : "");
  }
  fflush(stdout);
}

static void test_soak(void **state) {
  (void)state;
  long ops = SK_DEFAULT_OPS;
  const char *env = getenv("CF_SOAK_OPS");
  if (env != NULL && atol(env) > 0)
    ops = atol(env);
  env = getenv("CF_SOAK_SEED");
  uint64_t seed = env != NULL && *env != '\0'
                      ? (uint64_t)strtoull(env, NULL, 0)
                      : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
  print_message("# soak seed %llu (replay with CF_SOAK_SEED=%llu), %ld "
                "operations (CF_SOAK_OPS)\n",
                (unsigned long long)seed, (unsigned long long)seed, ops);
  fflush(stdout);

  sk_init(ops, seed);
  sk_seed_thread(seed);
  sk.slots[0].ex = sk_pool_new();
  assert_non_null(sk.slots[0].ex);
  atomic_store(&sk.nslots, 1);

  pthread_t loop_tid;
  assert_int_equal(pthread_create(&loop_tid, NULL, sk_loop_main, NULL), 0);
  while (sem_wait(&sk.loop_ready) != 0) {
  }
  SK_ASSERT_RC(sk.loop_start_rc, 0);

  double t0 = sk_now();
  sk_producer_t prod[SK_PRODUCERS];
  for (int i = 0; i < SK_PRODUCERS; i++) {
    prod[i] = (sk_producer_t){.index = i,
                              .ops = ops / SK_PRODUCERS +
                                     (i < ops % SK_PRODUCERS ? 1 : 0)};
    assert_int_equal(
        pthread_create(&prod[i].tid, NULL, sk_producer_main, &prod[i]), 0);
  }
  for (int i = 0; i < SK_PRODUCERS; i++)
    assert_int_equal(pthread_join(prod[i].tid, NULL), 0);

  /* The producers complete the standalone futures they set running. */
  for (size_t i = 0; i < SK_RUNNING; i++) {
    pthread_mutex_lock(&sk.run_mu);
    cf_future_t *f = sk.running[i];
    sk.running[i] = NULL;
    pthread_mutex_unlock(&sk.run_mu);
    sk_running_done(f);
  }

  /* Every pool shut down and destroyed: every pool future is done. */
  sk_close_pools();
  cf_future_t *ring[SK_RING];
  unsigned char ring_sa[SK_RING];
  pthread_mutex_lock(&sk.ring_mu); /* loop-thread callbacks may pick */
  for (size_t i = 0; i < SK_RING; i++) {
    ring[i] = sk.ring[i];
    ring_sa[i] = sk.ring_sa[i];
    sk.ring[i] = NULL;
  }
  pthread_mutex_unlock(&sk.ring_mu);
  for (size_t i = 0; i < SK_RING; i++)
    if (ring[i] != NULL && !ring_sa[i] && !cf_future_done(ring[i]))
      fail_msg("pool future %zu not done after its pool was destroyed", i);
  /* Drop the ring: standalone futures still pending end cancelled. */
  for (size_t i = 0; i < SK_RING; i++)
    cf_future_release(ring[i]);

  /* Let the loop finish its tasks, close the bridge and stop. */
  assert_true(sk_enter(&sk.loop_guard));
  SK_ASSERT_RC(cf_loop_call_soon_threadsafe(sk.loop, sk_finish_cb, NULL), 0);
  sk_exit(&sk.loop_guard);
  assert_int_equal(pthread_join(loop_tid, NULL), 0);
  double secs = sk_now() - t0;

  sk_print_stats(secs);
  if (atomic_load(&sk.bad) != 0)
    fail_msg("%d anomalies (see stderr); seed %llu", atomic_load(&sk.bad),
             (unsigned long long)seed);
  for (int l = 0; l < L_COUNT; l++) {
    size_t used = atomic_load(&sk.led[l].used);
    if (used > sk.led[l].cap)
      used = sk.led[l].cap;
    for (size_t i = 0; i < used; i++) {
      unsigned c = atomic_load(&sk.led[l].c[i]);
      if (c != 1 && l == L_FUT) {
        unsigned o = atomic_load(&sk.fut_origin[i]);
        fail_msg("%s %zu ran %u times (want 1): a %s future, depth %u, %s; "
                 "seed %llu",
                 sk_ledger_name[l], i, c, o & 1 ? "standalone" : "pool",
                 o >> 2, o & 2 ? "put in the ring" : "released at once",
                 (unsigned long long)seed);
      }
      if (c != 1)
        fail_msg("%s %zu ran %u times (want 1); seed %llu", sk_ledger_name[l],
                 i, c, (unsigned long long)seed);
    }
  }
  if (atomic_load(&sk.live) != 0)
    fail_msg("%ld objects still alive; seed %llu", atomic_load(&sk.live),
             (unsigned long long)seed);
  assert_int_equal(sk.tasks_live, 0);
  assert_int_equal(atomic_load(&sk.tasks_alive), 0);
  assert_int_equal(sk.timers_live, 0);
  sk_fini();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_soak),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
