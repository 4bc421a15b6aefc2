/*
 * The run queue of a pool: submitters push without a lock, workers take
 * jobs in FIFO order under a small consumer lock.
 *
 * Submitters push futures onto a lock-free stack, the inbox (one
 * compare-and-swap, linked through future->next). A worker that finds the
 * consumer side empty takes the whole inbox at once, reverses it and
 * appends it there, so submitters and workers share one word, not a lock.
 * Closing the queue swaps a marker into the inbox: every later push fails,
 * atomically with the close, so no job slips in after shutdown.
 */
#ifndef CF_RUNQ_H
#define CF_RUNQ_H

#include <stdatomic.h>
#include <stdbool.h>

#include "sync.h"

typedef struct cf_future cf_future_t;

/* Fields that different threads write are kept this far apart, so that
 * they never share a cache line (malloc aligns only to 16). */
#define CF__CACHE_LINE 64

typedef struct cf__runq {
  _Atomic(cf_future_t *) inbox; /* newest first, or the closed marker */
  char submitters_only[CF__CACHE_LINE];
  cf__lock_t lock;             /* the consumers': guards head and tail */
  _Atomic(cf_future_t *) head; /* oldest first; read unlocked as a hint */
  cf_future_t *tail;
} cf__runq_t;

/* Queue f; false if the queue is closed (f untouched). Lock-free. */
bool cf__runq_push(cf__runq_t *q, cf_future_t *f);

/* Take the oldest job, or NULL if there is none. */
cf_future_t *cf__runq_pop(cf__runq_t *q);

/* True while a worker should not park: a job is queued, or the queue is
 * closed. Reads without the lock (sequentially consistent loads). */
bool cf__runq_busy(cf__runq_t *q);

/* True once the queue is closed. */
bool cf__runq_closed(cf__runq_t *q);

/* Close the queue; what it holds stays for the workers. Idempotent. */
void cf__runq_close(cf__runq_t *q);

/* Take every queued job (a FIFO list through ->next), closing the queue
 * if close is set. */
cf_future_t *cf__runq_take(cf__runq_t *q, bool close);

#endif /* CF_RUNQ_H */
