/*
 * cf_executor: the thread pool of SEMANTICS.md section 2.
 *
 * DESIGN
 * - Queue: executor/runq.h. Submitters push lock-free; workers pop under
 *   the queue's consumer lock. The queue owns one reference to each queued
 *   future. A future cancelled while queued stays in the queue; the worker
 *   that pops it sees that it cannot start it and drops it (lazy skipping).
 *   Shutdown and a broken pool close the queue, atomically with respect to
 *   every push, so that no submit can succeed after them.
 * - Thread starts, in submit, never more than max_workers: `available`
 *   counts idle-worker tokens. A submit takes one if there is one (an idle
 *   worker will run its job), or else starts a thread; a worker gives one
 *   back after each job, before that job's future completes, so that a
 *   submit following result() reuses it. Until the pool is `full` this
 *   runs under ex->mu, push included; once max_workers threads run, no
 *   start can follow, and submit and the workers skip it all.
 * - Wake policy: a worker that runs out of work spins on the queue (at
 *   most one worker at a time), then parks on its own futex word in a LIFO
 *   stack. The spin adapts, as the kernel's haltpoll does for idle vCPUs:
 *   when it missed and the worker was woken before the ceiling (the option
 *   idle_spin_us) by one lone job, the next spin lasts 1.5 times that idle
 *   period, so that a steady rhythm of jobs is caught without a wake-up;
 *   after a longer one it drops back to 40 us, so an idle pool costs no
 *   CPU (see adapt_spin). A submit wakes the most recently parked
 *   worker, only if no worker is spinning; a worker that takes a job and
 *   sees more queued wakes the next one, so a burst ramps up every worker.
 *   Submit (push, then read nparked) and a parking worker (count itself in
 *   nparked, then look at the queue) use sequentially consistent
 *   operations, so one of them always sees the other: no lost wake-up.
 * - Locks: ex->mu (thread starts) before the queue's lock; ex->idle_lock
 *   and the queue's lock are leaves. ex->join_mu is taken only by joiners.
 *   No user code runs with any of them held.
 * - Shutdown: closes the queue (taking and cancelling its jobs with
 *   cancel_futures) and wakes every parked worker; workers exit once the
 *   queue is closed and empty. wait joins every thread; from a worker of
 *   the same pool it is refused with CF_EDEADLK.
 * - A failing initializer marks the pool broken and closes the queue;
 *   every future in it that is still pending fails with CF_EBROKEN.
 * - fork: a pool records the fork generation at creation; in a child
 *   process (generation bumped by a pthread_atfork handler) it refuses
 *   every call with CF_EFORKED instead of waiting for threads that do not
 *   exist there.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct worker {
  cf_executor_t *ex;
  pthread_t tid;
  _Atomic uint32_t wake;    /* parked on while 0; set to 1 by a waker */
  int64_t spin_ns;          /* this worker's idle spin, adapted */
  int64_t learn_ns;         /* a short idle period to judge, or 0 */
  struct worker *next_idle; /* in ex->idle */
  struct worker *next_all;  /* in ex->all */
  bool joined;
  int index;
};

struct cf_executor {
  cf__runq_t queue;
  char workers_only[CF__CACHE_LINE];
  /* The wake policy (see DESIGN): read by every submit, written rarely. */
  _Atomic int nparked;   /* workers in ex->idle */
  _Atomic int nspinning; /* workers watching the queue before parking */
  cf__lock_t idle_lock;  /* guards idle */
  struct worker *idle;   /* parked, most recent first */
  char read_mostly[CF__CACHE_LINE];
  /* Thread starts: ex->mu, until the pool is full. */
  _Atomic bool full;      /* max_workers threads started: no more starts */
  _Atomic long available; /* idle-worker tokens */
  pthread_mutex_t mu;
  int nthreads;           /* started or being started */
  int next_index;         /* thread numbers are never reused */
  int spawning;           /* pthread_create calls in flight */
  pthread_cond_t spawned;
  struct worker *all;
  int max_workers;
  int64_t spin_max_ns; /* the option idle_spin_us */
  _Atomic bool broken;
  unsigned fork_generation;
  cf_init_fn initializer;
  void *initializer_arg;
  pthread_mutex_t join_mu;
  char prefix[16];
};

/* The idle spin (see DESIGN): its default ceiling, its floor, and the
 * largest ceiling an option may ask for, in nanoseconds. */
#define SPIN_MAX_DEFAULT_NS 2000000L
#define SPIN_MIN_NS 40000L
#define SPIN_MAX_LIMIT_US 1000000

_Thread_local cf_executor_t *cf__current_executor;

_Atomic unsigned cf__fork_generation;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_child(void) {
  atomic_fetch_add(&cf__fork_generation, 1);
}

static void fork_register(void) { pthread_atfork(NULL, NULL, fork_child); }

void cf__fork_init(void) { pthread_once(&fork_once, fork_register); }

static bool forked(const cf_executor_t *ex) {
  return ex->fork_generation != atomic_load(&cf__fork_generation);
}

/* ---- jobs ---- */

void cf_job_return(cf_job_t *job, void *value, cf_free_fn dtor) {
  if (job == NULL)
    return;
  if (job->value_dtor != NULL && job->value != value)
    job->value_dtor(job->value);
  job->value = value;
  job->value_dtor = dtor;
}

int cf_job_fail(cf_job_t *job, int code, const char *fmt, ...) {
  if (job == NULL)
    return code;
  va_list ap;
  va_start(ap, fmt);
  cf__message_set(&job->message, fmt, ap);
  va_end(ap);
  return code;
}

cf_future_t *cf_job_future(cf_job_t *job) {
  return job == NULL ? NULL : job->future;
}

int cf_job_cancel_requested(cf_job_t *job) {
  return job != NULL &&
         (atomic_load_explicit(&job->future->state, memory_order_relaxed) &
          CF__STATE_CANCEL_REQUESTED) != 0;
}

/* ---- the pool ---- */

int cf__usable_cpus(void) {
#ifdef CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
#endif
  long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* > 1024 CPUs, or no mask */
  return cpus > 1 ? (int)cpus : 1;
}

void cf_executor_options_init(cf_executor_options_t *opts) {
  if (opts == NULL)
    return;
  int cpus = cf__usable_cpus();
  memset(opts, 0, sizeof(*opts));
  opts->max_workers = cpus + 4 < 32 ? cpus + 4 : 32;
  opts->idle_spin_us = (int)(SPIN_MAX_DEFAULT_NS / 1000);
}

int cf_executor_create(cf_executor_t **out, const cf_executor_options_t *opts) {
  static _Atomic unsigned pool_counter;
  cf_executor_options_t defaults;
  if (opts == NULL) {
    cf_executor_options_init(&defaults);
    opts = &defaults;
  }
  if (out == NULL || opts->max_workers <= 0 || opts->idle_spin_us < 0 ||
      opts->idle_spin_us > SPIN_MAX_LIMIT_US)
    return CF_EINVAL;
  cf_executor_t *ex = cf__calloc(1, sizeof(*ex));
  if (ex == NULL)
    return CF_ENOMEM;
  cf__fork_init();
  if (pthread_mutex_init(&ex->mu, NULL) != 0) {
    free(ex);
    return CF_ENOMEM;
  }
  if (pthread_mutex_init(&ex->join_mu, NULL) != 0) {
    pthread_mutex_destroy(&ex->mu);
    free(ex);
    return CF_ENOMEM;
  }
  if (pthread_cond_init(&ex->spawned, NULL) != 0) {
    pthread_mutex_destroy(&ex->join_mu);
    pthread_mutex_destroy(&ex->mu);
    free(ex);
    return CF_ENOMEM;
  }
  cf__runq_init(&ex->queue);
  ex->max_workers = opts->max_workers;
  /* On one CPU an idle worker's spin would hold the CPU the submitter
   * needs: a round trip pinned to one CPU took 5.2-5.5 us with it, 2.0-2.1
   * without. */
  ex->spin_max_ns = cf__usable_cpus() > 1 ? opts->idle_spin_us * 1000L : 0;
  ex->initializer = opts->initializer;
  ex->initializer_arg = opts->initializer_arg;
  ex->fork_generation = atomic_load(&cf__fork_generation);
  if (opts->thread_name_prefix != NULL && opts->thread_name_prefix[0] != '\0')
    snprintf(ex->prefix, sizeof(ex->prefix), "%s", opts->thread_name_prefix);
  else
    snprintf(ex->prefix, sizeof(ex->prefix), "cfpool-%u",
             atomic_fetch_add(&pool_counter, 1));
  *out = ex;
  return 0;
}

/* Run the arg destructor and drop the queue's reference. */
static void drop_item(cf_future_t *f) {
  if (f->arg_dtor != NULL)
    f->arg_dtor(f->arg);
  cf_future_release(f);
}

/* A worker is about to become idle again: give back its token (see
 * DESIGN), unless the pool is full and no longer counts them. */
static void give_token(cf_executor_t *ex) {
  if (!atomic_load_explicit(&ex->full, memory_order_relaxed))
    atomic_fetch_add(&ex->available, 1);
}

/* Run the job of a started future and complete it. ex is NULL for a job
 * run by a waiting worker; otherwise the worker's token goes back before
 * the future completes: see DESIGN. */
static void run_job(cf_future_t *f, cf_executor_t *ex) {
  cf_job_t job = {f, NULL, NULL, NULL};
  cf_future_t *outer = cf__current_job; /* a job helped from inside one */
  cf__current_job = f;
  int rc = f->fn(f->arg, &job);
  cf__current_job = outer;
  if (f->arg_dtor != NULL)
    f->arg_dtor(f->arg);
  if (ex != NULL)
    give_token(ex);
  if (rc == 0) {
    free(job.message);
    if (cf__future_finish(f, 0, job.value, job.value_dtor, NULL) != 0 &&
        job.value_dtor != NULL)
      job.value_dtor(job.value); /* someone else completed it */
  } else {
    if (job.value_dtor != NULL)
      job.value_dtor(job.value);
    if (rc == CF_ECANCELLED && cf_job_cancel_requested(&job) &&
        cf__future_cancel_running(f))
      free(job.message); /* it honoured the request: it ends cancelled */
    else if (cf__future_finish(f, rc, NULL, NULL, job.message) != 0)
      free(job.message);
  }
}

static void run_item(cf_executor_t *ex, cf_future_t *f) {
  if (cf__future_start(f)) {
    run_job(f, ex);
    cf_future_release(f);
    return;
  }
  /* Cancelled while queued, or run already by a worker that waited for
   * it (which ran the argument's destructor too). */
  if (atomic_load(&f->state) & CF__STATE_INLINE)
    cf_future_release(f);
  else
    drop_item(f);
  give_token(ex);
}

void cf__executor_help(cf_future_t *f) {
  if (cf__future_claim(f))
    run_job(f, NULL); /* the queue still holds its reference */
}

/* A future taken off the queue that no worker will run: end it as
 * cancelled (code 0) or failed with code, if it is still pending, and drop
 * it. A job that a waiting worker claimed (and runs inline) is left to
 * that worker, which also runs its arg destructor. */
static void drop_queued(cf_future_t *f, int code) {
  bool ours = code == 0 ? cf_future_cancel(f) == 1 : cf__future_start(f);
  if (ours && code != 0) {
    char *message = cf__strdup(cf_strerror(code));
    if (cf__future_finish(f, code, NULL, NULL, message) != 0)
      free(message);
  }
  if (!ours && (atomic_load(&f->state) & CF__STATE_INLINE)) {
    cf_future_release(f);
    return;
  }
  cf__future_start(f); /* a cancelled one: CANCELLED -> notified */
  drop_item(f);
}

static void drop_all_queued(cf_future_t *list, int code) {
  while (list != NULL) {
    cf_future_t *next = list->next;
    drop_queued(list, code);
    list = next;
  }
}

/* ---- parking and waking workers ---- */

/* Wake the most recently parked worker, if any. */
static void wake_one(cf_executor_t *ex) {
  cf__lock(&ex->idle_lock);
  struct worker *w = ex->idle;
  if (w != NULL) {
    ex->idle = w->next_idle;
    atomic_fetch_sub(&ex->nparked, 1);
    atomic_store_explicit(&w->wake, 1, memory_order_release);
  }
  cf__unlock(&ex->idle_lock);
  if (w != NULL) /* w lives until destroy, which joins first */
    cf__unpark(&w->wake, 1);
}

/* Wake every parked worker (shutdown, a broken pool: rare). The wake-ups
 * are sent under the lock: a worker woken early could otherwise park
 * again and relink itself while this walks the stack. */
static void wake_all(cf_executor_t *ex) {
  cf__lock(&ex->idle_lock);
  for (struct worker *w = ex->idle; w != NULL; w = w->next_idle) {
    atomic_fetch_sub(&ex->nparked, 1);
    atomic_store_explicit(&w->wake, 1, memory_order_release);
    cf__unpark(&w->wake, 1);
  }
  ex->idle = NULL;
  cf__unlock(&ex->idle_lock);
}

/* A job was queued: wake a worker if one is parked and none is spinning
 * (a spinning one takes the job, and wakes the next if more follow). The
 * loads are sequentially consistent, after the push: see DESIGN. */
static void wake_for_job(cf_executor_t *ex) {
  if (atomic_load(&ex->nparked) > 0 && atomic_load(&ex->nspinning) == 0)
    wake_one(ex);
}

/* What an idle worker's spin came to. */
typedef enum { SPIN_NONE, SPIN_CAUGHT, SPIN_MISSED } spin_t;

/* Before parking, watch the queue for up to w->spin_ns: work that arrives
 * meanwhile costs no wake-up. One worker at a time: the others do not spin
 * (SPIN_NONE). SPIN_CAUGHT if work arrived (or the queue closed). */
static spin_t spin_for_work(cf_executor_t *ex, struct worker *w,
                            int64_t start) {
  int expected = 0;
  if (w->spin_ns == 0 ||
      !atomic_compare_exchange_strong(&ex->nspinning, &expected, 1))
    return SPIN_NONE;
  int64_t until = start + w->spin_ns;
  bool busy = false;
  for (unsigned i = 1; !busy; i++) {
    cf__cpu_relax();
    busy = cf__runq_busy(&ex->queue);
    if (i % 64 == 0 && cf__now_ns() >= until)
      break;
  }
  atomic_store(&ex->nspinning, 0);
  return busy ? SPIN_CAUGHT : SPIN_MISSED;
}

/* Set w's spin after an idle period of idle_ns that it spun through in
 * vain, then slept: a short period (below the ceiling) that ended with one
 * lone job (the worker's first pop left the queue empty) is a rhythm, and
 * the next spin lasts 1.5 times as long to catch the next job like it
 * without a wake-up; a long period sets it back to the minimum. A short
 * period that ended with several jobs queued teaches nothing: a stream
 * that stalled (its submitter descheduled, say) is no rhythm, and learning
 * from it would make the pool spin long after the stream ends. Nor does a
 * worker that did not spin (another one did) or that caught its work. */
static void adapt_spin(cf_executor_t *ex, struct worker *w,
                       int64_t idle_ns) {
  int64_t min = SPIN_MIN_NS < ex->spin_max_ns ? SPIN_MIN_NS : ex->spin_max_ns;
  int64_t want = idle_ns + idle_ns / 2;
  if (idle_ns > ex->spin_max_ns || want < min)
    w->spin_ns = min;
  else
    w->spin_ns = want < ex->spin_max_ns ? want : ex->spin_max_ns;
}

/* Park w until a submit or shutdown wakes it. */
static void park(cf_executor_t *ex, struct worker *w) {
  cf__lock(&ex->idle_lock);
  atomic_store_explicit(&w->wake, 0, memory_order_relaxed);
  w->next_idle = ex->idle;
  ex->idle = w;
  atomic_fetch_add(&ex->nparked, 1);
  cf__unlock(&ex->idle_lock);
  if (cf__runq_busy(&ex->queue)) {
    /* Work came after all: leave the stack, unless a waker took us off
     * it already (its wake-up is then just spurious). */
    cf__lock(&ex->idle_lock);
    if (atomic_load_explicit(&w->wake, memory_order_relaxed) == 0) {
      struct worker **link = &ex->idle;
      while (*link != w)
        link = &(*link)->next_idle;
      *link = w->next_idle;
      atomic_fetch_sub(&ex->nparked, 1);
    }
    cf__unlock(&ex->idle_lock);
    return;
  }
  static const cf__deadline_t forever = {CF__DL_FOREVER, {0, 0}};
  while (atomic_load_explicit(&w->wake, memory_order_acquire) == 0)
    cf__park(&w->wake, 0, &forever);
}

/* Wait for work: spin, then park. After a missed spin, a long idle
 * period resets the spin at once; a short one is left in w->learn_ns for
 * the next pop to judge (adapt_spin). */
static void wait_for_work(cf_executor_t *ex, struct worker *w) {
  int64_t idle_since = cf__now_ns();
  w->learn_ns = 0;
  spin_t spun = spin_for_work(ex, w, idle_since);
  if (spun == SPIN_CAUGHT)
    return;
  park(ex, w);
  if (spun != SPIN_MISSED)
    return;
  int64_t idle_ns = cf__now_ns() - idle_since;
  if (idle_ns > ex->spin_max_ns)
    adapt_spin(ex, w, idle_ns);
  else
    w->learn_ns = idle_ns;
}

/* ---- workers ---- */

/* The initializer failed: no more submits; fail what is queued (cancelled
 * ones stay cancelled). */
static void break_pool(cf_executor_t *ex) {
  atomic_store(&ex->broken, true);
  cf_future_t *queued = cf__runq_take(&ex->queue, true);
  wake_all(ex);
  drop_all_queued(queued, CF_EBROKEN);
}

static void name_thread(const cf_executor_t *ex, int index) {
  char suffix[16], name[16];
  int slen = snprintf(suffix, sizeof(suffix), "_%d", index);
  size_t plen = strlen(ex->prefix);
  if (plen > (size_t)(15 - slen))
    plen = (size_t)(15 - slen); /* cut the prefix, keep "_<n>" */
  memcpy(name, ex->prefix, plen);
  memcpy(name + plen, suffix, (size_t)slen + 1);
  pthread_setname_np(pthread_self(), name);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  cf_executor_t *ex = w->ex;
  name_thread(ex, w->index);
  cf__current_executor = ex;
  if (ex->initializer != NULL && ex->initializer(ex->initializer_arg) != 0) {
    break_pool(ex);
    return NULL;
  }
  for (;;) {
    cf_future_t *f = cf__runq_pop(&ex->queue);
#ifdef CF_FAULT_INJECTION
    if (f == NULL && cf__fault_idle_hook != NULL)
      cf__fault_idle_hook();
#endif
    if (f == NULL && cf__runq_closed(&ex->queue)) {
      /* A job pushed after that empty pop and before the close is still
       * queued. Only an empty pop after the close was seen proves the
       * queue empty for good: no push succeeds after the close. */
      f = cf__runq_pop(&ex->queue);
      if (f == NULL)
        break;
    }
    if (f != NULL) {
      if (w->learn_ns != 0) { /* the first pop after a short idle period */
        if (!cf__runq_busy(&ex->queue))
          adapt_spin(ex, w, w->learn_ns);
        w->learn_ns = 0;
      }
      /* More queued and a worker parked: ramp up. (nparked first: the
       * queue's lines are busy with pushes, that one is read-mostly.) */
      if (atomic_load(&ex->nparked) > 0 && cf__runq_busy(&ex->queue))
        wake_for_job(ex);
      run_item(ex, f);
      continue;
    }
    wait_for_work(ex, w);
  }
  return NULL;
}

/* Start worker number `index` (reserved by the caller under ex->mu).
 * Returns 0 or CF_EAGAIN; on failure the reservation is undone. */
static int spawn(cf_executor_t *ex, int index) {
  struct worker *w = cf__calloc(1, sizeof(*w));
  int err = ENOMEM;
  if (w != NULL) {
    w->ex = ex;
    w->index = index;
    adapt_spin(ex, w, 0);
    err = cf__pthread_create(&w->tid, NULL, worker_main, w);
  }
  pthread_mutex_lock(&ex->mu);
  if (err == 0) {
    w->next_all = ex->all;
    ex->all = w;
  } else {
    free(w);
    ex->nthreads--;
  }
  if (--ex->spawning == 0) {
    pthread_cond_broadcast(&ex->spawned);
    if (ex->nthreads == ex->max_workers)
      atomic_store(&ex->full, true);
  }
  pthread_mutex_unlock(&ex->mu);
  return err == 0 ? 0 : CF_EAGAIN;
}

/* A thread start failed. With no thread at all, the queued jobs would wait
 * for ever: take them all back. Returns true if f was among them (the
 * caller then reports CF_EAGAIN and keeps arg). The others were queued by
 * concurrent submits that counted on a thread being started (ours, or
 * another that failed too): their futures fail with CF_EAGAIN. The last
 * start to fail always finds no thread, so no job stays queued without
 * one; a start still in flight leaves the queue to its own outcome. */
static bool unqueue_orphans(cf_executor_t *ex, cf_future_t *f) {
  pthread_mutex_lock(&ex->mu);
  cf_future_t *orphans =
      ex->nthreads == 0 ? cf__runq_take(&ex->queue, false) : NULL;
  pthread_mutex_unlock(&ex->mu);
  bool mine = false;
  while (orphans != NULL) {
    cf_future_t *next = orphans->next;
    if (orphans == f)
      mine = true;
    else
      drop_queued(orphans, CF_EAGAIN);
    orphans = next;
  }
  return mine;
}

static int refused(const cf_executor_t *ex) {
  return atomic_load(&ex->broken) ? CF_EBROKEN : CF_ESHUTDOWN;
}

/* Queue f in a pool that may still start threads: take an idle-worker
 * token, or start a thread (see DESIGN). */
static int submit_starting(cf_executor_t *ex, cf_future_t *f) {
  pthread_mutex_lock(&ex->mu);
  if (!cf__runq_push(&ex->queue, f)) {
    pthread_mutex_unlock(&ex->mu);
    return refused(ex);
  }
  long tokens = atomic_load(&ex->available);
  while (tokens > 0 &&
         !atomic_compare_exchange_weak(&ex->available, &tokens, tokens - 1))
    ;
  int index = -1;
  if (tokens <= 0 && ex->nthreads < ex->max_workers) {
    index = ex->next_index++;
    ex->nthreads++;
    ex->spawning++;
  }
  pthread_mutex_unlock(&ex->mu);
  if (index < 0)
    wake_for_job(ex);
  else if (spawn(ex, index) != 0 && unqueue_orphans(ex, f))
    return CF_EAGAIN;
  return 0;
}

int cf_executor_submit(cf_executor_t *ex, cf_job_fn fn, void *arg,
                       cf_free_fn arg_dtor, cf_future_t **out) {
  if (ex == NULL || fn == NULL)
    return CF_EINVAL;
  if (forked(ex))
    return CF_EFORKED;
  cf_future_t *f = cf__future_new();
  if (f == NULL)
    return CF_ENOMEM;
  f->owner = ex;
  f->fn = fn;
  f->arg = arg;
  f->arg_dtor = arg_dtor;
  if (out != NULL)
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed);

  int rc = 0;
  if (!atomic_load_explicit(&ex->full, memory_order_acquire))
    rc = submit_starting(ex, f);
  else if (cf__runq_push(&ex->queue, f))
    wake_for_job(ex);
  else
    rc = refused(ex);
  if (rc != 0) {
    cf__future_dealloc(f); /* never seen by anyone: the caller keeps arg */
    return rc;
  }
  if (out != NULL)
    *out = f;
  return 0;
}

static void join_all(cf_executor_t *ex) {
  pthread_mutex_lock(&ex->join_mu);
  pthread_mutex_lock(&ex->mu);
  while (ex->spawning > 0)
    pthread_cond_wait(&ex->spawned, &ex->mu);
  struct worker *w = ex->all;
  pthread_mutex_unlock(&ex->mu);
  for (; w != NULL; w = w->next_all) {
    if (!w->joined) {
      pthread_join(w->tid, NULL);
      w->joined = true;
    }
  }
  pthread_mutex_unlock(&ex->join_mu);
}

int cf_executor_shutdown(cf_executor_t *ex, bool wait, bool cancel_futures) {
  if (ex == NULL)
    return CF_EINVAL;
  if (forked(ex))
    return CF_EFORKED;
  if (wait && cf__current_executor == ex)
    return CF_EDEADLK;
  cf_future_t *drained = NULL;
  if (cancel_futures)
    drained = cf__runq_take(&ex->queue, true);
  else
    cf__runq_close(&ex->queue);
  wake_all(ex);
  drop_all_queued(drained, 0);
  if (wait)
    join_all(ex);
  return 0;
}

int cf_executor_destroy(cf_executor_t *ex) {
  if (ex == NULL)
    return 0;
  if (forked(ex))
    return CF_EFORKED;
  if (cf__current_executor == ex)
    return CF_EDEADLK;
  int rc = cf_executor_shutdown(ex, true, false);
  if (rc != 0)
    return rc;
  struct worker *w = ex->all;
  while (w != NULL) {
    struct worker *next = w->next_all;
    free(w);
    w = next;
  }
  pthread_cond_destroy(&ex->spawned);
  pthread_mutex_destroy(&ex->join_mu);
  pthread_mutex_destroy(&ex->mu);
  free(ex);
  return 0;
}

int cf_executor_thread_count(const cf_executor_t *ex) {
  if (ex == NULL)
    return CF_EINVAL;
  if (forked(ex)) /* its mutex may have been held by a thread now gone */
    return CF_EFORKED;
  pthread_mutex_lock((pthread_mutex_t *)&ex->mu);
  int n = ex->nthreads;
  pthread_mutex_unlock((pthread_mutex_t *)&ex->mu);
  return n;
}
