/*
 * The run queue of a pool: submitters push without a lock, workers take
 * jobs in FIFO order under a small consumer lock.
 *
 * It is an intrusive multi-producer queue after Dmitry Vyukov's: a push
 * swaps the new job into `back` (one compare-and-swap) and then links it
 * behind the job that was there before; the consumer walks the links from
 * `front`. Nothing is reversed or walked twice, so each job's memory is
 * touched by the worker that runs it, once. A stub link stands in when the
 * queue runs empty (a worker taking the last job swaps it into `back`), so
 * that a job taken off the queue is never referenced by it again. A push that has swapped but not yet linked holds up the
 * jobs behind it for those few instructions: a worker that meets one waits
 * for the link. Closing sets a bit in `back`: every later push fails,
 * atomically with the close, so no job slips in after shutdown.
 */
#ifndef CF_RUNQ_H
#define CF_RUNQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sync.h"

typedef struct cf_future cf_future_t;

/* A job's place in the queue (a member of the future). */
struct cf__qlink {
  _Atomic(struct cf__qlink *) next;
};

/* Fields that different threads write are kept this far apart, so that
 * they never share a cache line (malloc aligns only to 16). */
#define CF__CACHE_LINE 64

typedef struct cf__runq {
  _Atomic uintptr_t back; /* the newest link, | 1 once closed */
  char submitters_only[CF__CACHE_LINE];
  cf__lock_t lock;                   /* the consumers': guards front */
  _Atomic(struct cf__qlink *) front; /* the oldest link, or the stub */
  char consumers_only[CF__CACHE_LINE];
  struct cf__qlink stub; /* written by both, only when the queue empties
                            or fills again */
} cf__runq_t;

/* An empty, open queue. */
void cf__runq_init(cf__runq_t *q);

/* Queue f; false if the queue is closed (f untouched). Lock-free. */
bool cf__runq_push(cf__runq_t *q, cf_future_t *f);

/* Take the oldest job, or NULL if there is none. */
cf_future_t *cf__runq_pop(cf__runq_t *q);

/* True while a worker should not park: a job is queued (or being taken),
 * or the queue is closed. Reads without the lock (sequentially consistent
 * loads). */
bool cf__runq_busy(cf__runq_t *q);

/* True once the queue is closed. */
bool cf__runq_closed(cf__runq_t *q);

/* Close the queue; what it holds stays for the workers. Idempotent. */
void cf__runq_close(cf__runq_t *q);

/* Take every queued job (a FIFO list through ->next), closing the queue
 * if close is set. */
cf_future_t *cf__runq_take(cf__runq_t *q, bool close);

#endif /* CF_RUNQ_H */
