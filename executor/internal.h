/*
 * Private declarations shared by the core's sources. Never installed.
 */
#ifndef CF_INTERNAL_H
#define CF_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfutures.h"
#include "fault.h"
#include "runq.h"
#include "sync.h"

/* The state word of a future: a cf_state_t in the low bits, plus flags:
 * someone parks on the word in cf_future_result(); a cancel was requested
 * while it ran; a waiting worker runs it inline. */
#define CF__STATE_MASK 0x7u
#define CF__STATE_SLEEPERS 0x8u
#define CF__STATE_CANCEL_REQUESTED 0x10u /* cancel() seen while running */
#define CF__STATE_INLINE 0x20u /* run by a waiting worker, not by the queue */

static inline bool cf__state_done(uint32_t s) {
  return (s & CF__STATE_MASK) >= CF_STATE_CANCELLED;
}

/* A done callback beyond the first, kept in reverse registration order. */
struct cf__callback {
  cf_done_fn fn;
  void *data;
  struct cf__callback *next;
};

struct cf__waiter;

/* One future's membership in one waiter (cf_wait, cf_as_completed). It is
 * linked into the future's list, under the future's lock, until the future
 * completes (which unlinks it and notifies the waiter, still under that
 * lock) or the waiter removes it. */
struct cf__wnode {
  struct cf__wnode *prev, *next; /* in the future's waiter list */
  struct cf__wnode *done_next;   /* in the waiter's completion lists */
  cf_future_t *future;
  struct cf__waiter *waiter;
  bool installed; /* was linked once: removal must take the future's lock */
  bool linked;
};

struct cf_future {
  _Atomic uint32_t state; /* cf_state_t | CF__STATE_* flags */
  cf__lock_t lock;        /* guards the outcome fields, callbacks, waiters */
  _Atomic uint32_t refs;
  int code; /* 0: value; otherwise the failure code */
  void *value;
  cf_free_fn value_dtor;
  char *message;
  cf_done_fn cb_fn; /* the first done callback, inline */
  void *cb_data;
  struct cf__callback *cb_more;
  struct cf__wnode *waiters;
  /* Executor futures: the job, its pool, its place in the run queue, and
   * a link for lists taken off the queue (and the free lists). */
  struct cf_executor *owner;
  struct cf__qlink qlink;
  cf_future_t *next;
  cf_job_fn fn;
  void *arg;
  cf_free_fn arg_dtor;
};

struct cf_job {
  cf_future_t *future;
  void *value;
  cf_free_fn value_dtor;
  char *message;
};

/* Replace the message in *slot by one formatted from fmt (fmt NULL
 * clears it; out of memory drops it): cf_job_fail and cf_task_fail. */
void cf__message_set(char **slot, const char *fmt, va_list ap);

/* Memory for futures, from per-thread free lists (future_cache.c):
 * zeroed, or NULL on ENOMEM; and back to the lists. */
cf_future_t *cf__future_alloc(void);
void cf__future_dealloc(cf_future_t *f);

/* Allocate a PENDING future with one reference. NULL on ENOMEM. */
cf_future_t *cf__future_new(void);

/* PENDING -> RUNNING, lock-free: true on success, false if f is not
 * pending (then a CANCELLED future becomes CANCELLED_AND_NOTIFIED). */
bool cf__future_start(cf_future_t *f);

/* Complete f, taking ownership of value+dtor, or of message (malloc'd).
 * CF_EINVALID_STATE if f is already done; ownership then stays with the
 * caller. Wakes waiters and runs callbacks in the calling thread. */
int cf__future_finish(cf_future_t *f, int code, void *value,
                      cf_free_fn value_dtor, char *message);

/* RUNNING -> CANCELLED, for a job that honoured a cancel request; wakes
 * waiters and runs callbacks. False if f was not running. */
bool cf__future_cancel_running(cf_future_t *f);

/* Wait until f is done or the deadline passes: 0 or CF_ETIMEDOUT. A
 * worker of f's pool waiting without a limit runs f itself if still
 * queued (cf__executor_help). */
int cf__future_wait(cf_future_t *f, const cf__deadline_t *d);

/* True if f finished with a failure (f must be done). */
bool cf__future_failed(const cf_future_t *f);

/* The future whose job runs on this thread, or NULL. */
extern _Thread_local cf_future_t *cf__current_job;

/* The pool whose worker this thread is, or NULL. */
extern _Thread_local struct cf_executor *cf__current_executor;

/* PENDING -> RUNNING for a worker that runs f itself: true if claimed. */
bool cf__future_claim(cf_future_t *f);

/* A worker of f's pool is about to wait for f without a time limit: if f
 * is still queued, run it here rather than wait for a worker that may
 * never come (every worker may be waiting like this one). */
void cf__executor_help(cf_future_t *f);

/* Waiters: the shared mechanism of cf_wait and cf_as_completed. */
typedef enum {
  CF__WAIT_FIRST_COMPLETED = CF_FIRST_COMPLETED,
  CF__WAIT_FIRST_EXCEPTION = CF_FIRST_EXCEPTION,
  CF__WAIT_ALL_COMPLETED = CF_ALL_COMPLETED,
  CF__WAIT_AS_COMPLETED = 4
} cf__wait_kind_t;

struct cf__waiter {
  cf__event_t event;
  cf__wait_kind_t kind;
  _Atomic size_t pending;  /* installed nodes not yet completed */
  _Atomic bool failed;     /* some future finished with a failure */
  _Atomic(struct cf__wnode *) completed; /* as_completed: LIFO of nodes */
  struct cf__wnode *nodes; /* one per distinct future */
  size_t n;
};

/* Collapse duplicates of fs[0..n) into a new array (input order kept).
 * Checks for NULL entries: CF_EINVAL. *out is NULL when n == 0. */
int cf__dedup(cf_future_t *const *fs, size_t n, cf_future_t ***out,
              size_t *nout);

/* Create the waiter's nodes for fs[0..n) and link them to the futures that
 * are not done; nodes of done futures are reported to on_done(node, ctx) in
 * input order. CF_ENOMEM. */
int cf__waiter_install(struct cf__waiter *w, cf__wait_kind_t kind,
                       cf_future_t *const *fs, size_t n,
                       void (*on_done)(struct cf__wnode *, void *), void *ctx);

/* Unlink every node still linked; free the nodes. */
void cf__waiter_remove(struct cf__waiter *w);

/* Called by a completing future with its lock held. */
void cf__waiter_notify(struct cf__wnode *node, bool failed);

/* Bridge deliveries in two steps, so that callers can allocate before
 * they submit: a new delivery (NULL: out of memory), then tied to its
 * future (CF_ESHUTDOWN if the bridge closed meanwhile: t is freed). */
cf_then_t *cf__then_new(cf_bridge_t *b, cf_then_fn fn, void *data);
int cf__then_start(cf_then_t *t, cf_future_t *f);
bool cf__bridge_closed(cf_bridge_t *b);

/* The CPUs this thread may run on (its affinity mask, as CPython 3.13's
 * os.process_cpu_count(); else the online CPUs), at least 1. Spinning
 * needs two: on one, a spinner holds the CPU the awaited work needs. */
int cf__usable_cpus(void);

/* The fork generation: bumped in the child by a pthread_atfork handler. */
extern _Atomic unsigned cf__fork_generation;
void cf__fork_init(void);

#endif /* CF_INTERNAL_H */
