/* The run queue of a pool: see runq.h. */
#include "internal.h"

/* The inbox of a closed queue. Compared, never dereferenced. */
static char closed_marker;
#define CLOSED ((cf_future_t *)(void *)&closed_marker)

bool cf__runq_push(cf__runq_t *q, cf_future_t *f) {
  cf_future_t *top = atomic_load_explicit(&q->inbox, memory_order_relaxed);
  do {
    if (top == CLOSED)
      return false;
    f->next = top;
  } while (!atomic_compare_exchange_weak_explicit(
      &q->inbox, &top, f, memory_order_seq_cst, memory_order_relaxed));
  return true;
}

/* Move the inbox to the tail of the FIFO, oldest first; with close, leave
 * the closed marker in its place. Called with q->lock held. */
static void drain_inbox(cf__runq_t *q, bool close) {
  cf_future_t *top = atomic_load_explicit(&q->inbox, memory_order_acquire);
  for (;;) {
    if (top == CLOSED || (top == NULL && !close))
      return;
    if (atomic_compare_exchange_weak_explicit(&q->inbox, &top,
                                              close ? CLOSED : NULL,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      break;
  }
  cf_future_t *first = NULL, *last = top;
  while (top != NULL) { /* newest first: reverse */
    cf_future_t *next = top->next;
    top->next = first;
    first = top;
    top = next;
  }
  if (first == NULL)
    return;
  if (q->tail != NULL)
    q->tail->next = first;
  else
    atomic_store_explicit(&q->head, first, memory_order_relaxed);
  q->tail = last;
}

cf_future_t *cf__runq_pop(cf__runq_t *q) {
  cf__lock(&q->lock);
  cf_future_t *f = atomic_load_explicit(&q->head, memory_order_relaxed);
  if (f == NULL) {
    drain_inbox(q, false);
    f = atomic_load_explicit(&q->head, memory_order_relaxed);
  }
  if (f != NULL) {
    atomic_store_explicit(&q->head, f->next, memory_order_relaxed);
    if (f->next == NULL)
      q->tail = NULL;
  }
  cf__unlock(&q->lock);
  return f;
}

bool cf__runq_busy(cf__runq_t *q) {
  return atomic_load(&q->inbox) != NULL || atomic_load(&q->head) != NULL;
}

bool cf__runq_closed(cf__runq_t *q) {
  return atomic_load_explicit(&q->inbox, memory_order_acquire) == CLOSED;
}

void cf__runq_close(cf__runq_t *q) {
  cf__lock(&q->lock);
  drain_inbox(q, true);
  cf__unlock(&q->lock);
}

cf_future_t *cf__runq_take(cf__runq_t *q, bool close) {
  cf__lock(&q->lock);
  drain_inbox(q, close);
  cf_future_t *list = atomic_load_explicit(&q->head, memory_order_relaxed);
  atomic_store_explicit(&q->head, NULL, memory_order_relaxed);
  q->tail = NULL;
  cf__unlock(&q->lock);
  return list;
}
