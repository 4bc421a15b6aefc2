/*
 * cf_executor: the thread pool of SEMANTICS.md section 2.
 *
 * DESIGN
 * - Queue: a FIFO of futures linked through future->next, guarded by
 *   ex->mu. The queue owns one reference to each queued future. A future
 *   cancelled while queued stays in the queue; the worker that dequeues it
 *   sees that it cannot start it and drops it (lazy skipping).
 * - Workers start lazily, in submit, and never more than max_workers.
 *   `available` counts the workers that will take a queued job without
 *   being created: parked ones, starting ones, and ones that have finished
 *   a job body and are about to come back (they count from before their
 *   future completes, so a submit that follows result() reuses them).
 *   submit starts a thread only if queued > available.
 * - Wake policy: parked workers sit on a LIFO stack; submit pops the most
 *   recently parked one and signals its own condition variable, so one
 *   submit wakes at most one worker and a warm worker is preferred.
 * - Lock order: ex->mu, then a future's lock (cancel of drained items
 *   happens after ex->mu is released, so in practice they never nest).
 *   ex->join_mu is taken only by joiners, never with ex->mu held across a
 *   join. No user code runs with ex->mu held.
 * - Shutdown: sets `shutdown` (submit refuses), optionally takes the whole
 *   queue and cancels it, wakes every parked worker; workers exit when
 *   the queue is empty. wait joins every thread; from a worker of the
 *   same pool it is refused with CF_EDEADLK.
 * - A failing initializer marks the pool broken and takes the queue; every
 *   future in it that is still pending fails with CF_EBROKEN.
 * - fork: a pool records the fork generation at creation; in a child
 *   process (generation bumped by a pthread_atfork handler) it refuses
 *   every call with CF_EFORKED instead of waiting for threads that do not
 *   exist there.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct worker {
  cf_executor_t *ex;
  pthread_t tid;
  pthread_cond_t wake;
  struct worker *next_idle; /* in ex->idle */
  struct worker *next_all;  /* in ex->all */
  bool signaled;
  bool joined;
  int index;
};

struct cf_executor {
  pthread_mutex_t mu;
  cf_future_t *head, *tail;
  size_t queued;
  _Atomic size_t queued_hint; /* `queued`, readable without the lock */
  _Atomic long available;
  int nthreads;     /* started or being started */
  int next_index;   /* thread numbers are never reused */
  int spawning;     /* pthread_create calls in flight */
  pthread_cond_t spawned;
  struct worker *idle; /* parked, most recent first */
  struct worker *all;
  int max_workers;
  bool shutdown;
  bool broken;
  unsigned fork_generation;
  cf_init_fn initializer;
  void *initializer_arg;
  pthread_mutex_t join_mu;
  char prefix[16];
};

/* How long an idle worker watches the queue before it parks. */
#define SPIN_ROUNDS 2000

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

void cf_executor_options_init(cf_executor_options_t *opts) {
  if (opts == NULL)
    return;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1)
    cpus = 1;
  memset(opts, 0, sizeof(*opts));
  opts->max_workers = cpus + 4 < 32 ? (int)cpus + 4 : 32;
}

int cf_executor_create(cf_executor_t **out, const cf_executor_options_t *opts) {
  static _Atomic unsigned pool_counter;
  cf_executor_options_t defaults;
  if (opts == NULL) {
    cf_executor_options_init(&defaults);
    opts = &defaults;
  }
  if (out == NULL || opts->max_workers <= 0)
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
  ex->max_workers = opts->max_workers;
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

/* Run the job of a started future and complete it. `available` (NULL
 * for a job run by a waiting worker) is bumped before the future
 * completes: see DESIGN. */
static void run_job(cf_future_t *f, _Atomic long *available) {
  cf_job_t job = {f, NULL, NULL, NULL};
  cf_future_t *outer = cf__current_job; /* a job helped from inside one */
  cf__current_job = f;
  int rc = f->fn(f->arg, &job);
  cf__current_job = outer;
  if (f->arg_dtor != NULL)
    f->arg_dtor(f->arg);
  if (available != NULL)
    atomic_fetch_add(available, 1);
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
    run_job(f, &ex->available);
    cf_future_release(f);
    return;
  }
  /* Cancelled while queued, or run already by a worker that waited for
   * it (which ran the argument's destructor too). */
  if (atomic_load(&f->state) & CF__STATE_INLINE)
    cf_future_release(f);
  else
    drop_item(f);
  atomic_fetch_add(&ex->available, 1);
}

void cf__executor_help(cf_future_t *f) {
  if (cf__future_claim(f))
    run_job(f, NULL); /* the queue still holds its reference */
}

/* Empty the queue and return what it held. Called with ex->mu held. */
static cf_future_t *take_queue(cf_executor_t *ex) {
  cf_future_t *list = ex->head;
  ex->head = ex->tail = NULL;
  ex->queued = 0;
  atomic_store_explicit(&ex->queued_hint, 0, memory_order_relaxed);
  return list;
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

/* The initializer failed: no more submits; fail what is queued (cancelled
 * ones stay cancelled). */
static void break_pool(cf_executor_t *ex) {
  pthread_mutex_lock(&ex->mu);
  ex->broken = true;
  cf_future_t *f = take_queue(ex);
  atomic_fetch_sub(&ex->available, 1);
  pthread_mutex_unlock(&ex->mu);
  while (f != NULL) {
    cf_future_t *next = f->next;
    drop_queued(f, CF_EBROKEN);
    f = next;
  }
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

/* Before parking, watch the queue briefly without the lock: a producer
 * that submits in a steady stream then never pays for a wake-up. Called
 * and returns with ex->mu held; true if work arrived. Bounded, so an idle
 * pool parks within microseconds and then costs no CPU. */
static bool spin_for_work(cf_executor_t *ex) {
  pthread_mutex_unlock(&ex->mu);
  bool found = false;
  for (int i = 0; i < SPIN_ROUNDS && !found; i++) {
    cf__cpu_relax();
    found = atomic_load_explicit(&ex->queued_hint, memory_order_relaxed) > 0;
  }
  pthread_mutex_lock(&ex->mu);
  return ex->head != NULL;
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
  pthread_mutex_lock(&ex->mu);
  for (;;) {
    cf_future_t *f = ex->head;
    if (f != NULL) {
      ex->head = f->next;
      if (ex->head == NULL)
        ex->tail = NULL;
      atomic_store_explicit(&ex->queued_hint, --ex->queued,
                            memory_order_relaxed);
      atomic_fetch_sub(&ex->available, 1);
      pthread_mutex_unlock(&ex->mu);
      run_item(ex, f);
      pthread_mutex_lock(&ex->mu);
      continue;
    }
    if (ex->shutdown)
      break;
    if (spin_for_work(ex))
      continue;
    if (ex->shutdown) /* it may have come while we spun unlocked */
      break;
    w->signaled = false;
    w->next_idle = ex->idle;
    ex->idle = w;
    while (!w->signaled)
      pthread_cond_wait(&w->wake, &ex->mu);
  }
  atomic_fetch_sub(&ex->available, 1);
  pthread_mutex_unlock(&ex->mu);
  return NULL;
}

/* Start worker number `index` (reserved by the caller under ex->mu).
 * Returns 0 or CF_EAGAIN; on failure the reservation is undone. */
static int spawn(cf_executor_t *ex, int index) {
  struct worker *w = cf__calloc(1, sizeof(*w));
  int err = w == NULL ? ENOMEM : pthread_cond_init(&w->wake, NULL);
  if (err == 0) {
    w->ex = ex;
    w->index = index;
    err = cf__pthread_create(&w->tid, NULL, worker_main, w);
    if (err != 0)
      pthread_cond_destroy(&w->wake);
  }
  pthread_mutex_lock(&ex->mu);
  if (err == 0) {
    w->next_all = ex->all;
    ex->all = w;
  } else {
    free(w);
    ex->nthreads--;
    atomic_fetch_sub(&ex->available, 1);
  }
  if (--ex->spawning == 0)
    pthread_cond_broadcast(&ex->spawned);
  pthread_mutex_unlock(&ex->mu);
  return err == 0 ? 0 : CF_EAGAIN;
}

/* A thread start failed. With no thread at all, the queued jobs would wait
 * for ever: take them all back. Returns true if f was among them (the
 * caller then reports CF_EAGAIN and keeps arg). The others were handed out
 * by concurrent submits that counted on a thread being started (ours, or
 * another that failed too): their futures fail with CF_EAGAIN. The last
 * start to fail always finds no thread, so no job stays queued without
 * one; a start still in flight leaves the queue to its own outcome. */
static bool unqueue_orphans(cf_executor_t *ex, cf_future_t *f) {
  pthread_mutex_lock(&ex->mu);
  cf_future_t *orphans = ex->nthreads == 0 ? take_queue(ex) : NULL;
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

  pthread_mutex_lock(&ex->mu);
  int rc = ex->broken ? CF_EBROKEN : ex->shutdown ? CF_ESHUTDOWN : 0;
  if (rc != 0) {
    pthread_mutex_unlock(&ex->mu);
    free(f);
    return rc;
  }
  if (ex->tail != NULL)
    ex->tail->next = f;
  else
    ex->head = f;
  ex->tail = f;
  atomic_store_explicit(&ex->queued_hint, ++ex->queued, memory_order_relaxed);
  struct worker *wake = ex->idle;
  int index = -1;
  if (wake != NULL) {
    ex->idle = wake->next_idle;
    wake->signaled = true;
  } else if ((long)ex->queued > atomic_load(&ex->available) &&
             ex->nthreads < ex->max_workers) {
    index = ex->next_index++;
    ex->nthreads++;
    ex->spawning++;
    atomic_fetch_add(&ex->available, 1);
  }
  pthread_mutex_unlock(&ex->mu);

  if (wake != NULL)
    pthread_cond_signal(&wake->wake);
  if (index >= 0 && spawn(ex, index) != 0 && unqueue_orphans(ex, f)) {
    free(f); /* never seen by anyone: the caller keeps arg */
    return CF_EAGAIN;
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
  pthread_mutex_lock(&ex->mu);
  ex->shutdown = true;
  cf_future_t *drained = cancel_futures ? take_queue(ex) : NULL;
  for (struct worker *w = ex->idle; w != NULL; w = w->next_idle) {
    w->signaled = true;
    pthread_cond_signal(&w->wake);
  }
  ex->idle = NULL;
  pthread_mutex_unlock(&ex->mu);
  while (drained != NULL) {
    cf_future_t *next = drained->next;
    drop_queued(drained, 0);
    drained = next;
  }
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
    pthread_cond_destroy(&w->wake);
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
