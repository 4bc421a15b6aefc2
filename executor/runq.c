/* The run queue of a pool: see runq.h. */
#include "internal.h"

#include <sched.h>
#include <stddef.h>

#define CLOSED_BIT ((uintptr_t)1)

static cf_future_t *future_of(struct cf__qlink *link) {
  return (cf_future_t *)(void *)((char *)link - offsetof(cf_future_t, qlink));
}

static struct cf__qlink *back_link(cf__runq_t *q) {
  return (struct cf__qlink *)(atomic_load(&q->back) & ~CLOSED_BIT);
}

void cf__runq_init(cf__runq_t *q) {
  atomic_init(&q->stub.next, NULL);
  atomic_init(&q->front, &q->stub);
  atomic_init(&q->back, (uintptr_t)&q->stub);
  q->lock = (cf__lock_t){0};
}

bool cf__runq_push(cf__runq_t *q, cf_future_t *f) {
  struct cf__qlink *link = &f->qlink;
  atomic_store_explicit(&link->next, NULL, memory_order_relaxed);
  uintptr_t back = atomic_load_explicit(&q->back, memory_order_relaxed);
  do
    if (back & CLOSED_BIT)
      return false;
  while (!atomic_compare_exchange_weak_explicit(&q->back, &back,
                                                (uintptr_t)link,
                                                memory_order_seq_cst,
                                                memory_order_relaxed));
  /* Linked from here on; until then the consumer waits at back. */
  atomic_store_explicit(&((struct cf__qlink *)back)->next, link,
                        memory_order_release);
  return true;
}

/* The link after `link`, which a push has swapped in and is about to
 * store: wait the few instructions (or, if that thread was preempted,
 * give it the processor). */
static struct cf__qlink *next_of(struct cf__qlink *link) {
  struct cf__qlink *next;
  for (unsigned i = 1;
       (next = atomic_load_explicit(&link->next, memory_order_acquire)) == NULL;
       i++) {
    if (i % 64 == 0)
      sched_yield();
    else
      cf__cpu_relax();
  }
  return next;
}

/* The next job is queued behind this one: start pulling its lines (the
 * producer wrote them, on another core) while this one runs, so that the
 * next pop and start do not stall on them. All of the future: it spans up
 * to three cache lines. A hint, harmless if another worker takes the job
 * (the queue's reference keeps it alive meanwhile). */
static void prefetch_future(const cf_future_t *f) {
#if defined(__GNUC__) || defined(__clang__)
  const char *p = (const char *)f;
  __builtin_prefetch(p, 1);
  __builtin_prefetch(p + 64, 1);
  __builtin_prefetch(p + sizeof(*f) - 1, 1);
#else
  (void)f;
#endif
}

/* Take the oldest job off the queue, or NULL if it is empty. Called with
 * q->lock held. */
static cf_future_t *take_front(cf__runq_t *q) {
  struct cf__qlink *front = atomic_load_explicit(&q->front, memory_order_relaxed);
  struct cf__qlink *next = atomic_load_explicit(&front->next, memory_order_acquire);
  if (front == &q->stub) {
    if (next == NULL) {
      if (back_link(q) == &q->stub)
        return NULL;
      next = next_of(front);
    }
    front = next; /* step over the stub */
    next = atomic_load_explicit(&front->next, memory_order_acquire);
  }
  if (next == NULL) {
    /* front is the newest, or a push is linking behind it. If it is the
     * newest, the stub takes its place and the queue is empty. */
    uintptr_t back = atomic_load_explicit(&q->back, memory_order_relaxed);
    while ((back & ~CLOSED_BIT) == (uintptr_t)front) { /* retry a close */
      atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
      if (atomic_compare_exchange_weak_explicit(
              &q->back, &back, (uintptr_t)&q->stub | (back & CLOSED_BIT),
              memory_order_seq_cst, memory_order_relaxed)) {
        atomic_store_explicit(&q->front, &q->stub, memory_order_relaxed);
        return future_of(front);
      }
    }
    next = next_of(front);
  }
  atomic_store_explicit(&q->front, next, memory_order_relaxed);
  prefetch_future(future_of(next));
  return future_of(front);
}

cf_future_t *cf__runq_pop(cf__runq_t *q) {
  cf__lock(&q->lock);
  cf_future_t *f = take_front(q);
  cf__unlock(&q->lock);
  return f;
}

bool cf__runq_busy(cf__runq_t *q) {
  uintptr_t back = atomic_load(&q->back);
  return back != (uintptr_t)&q->stub || atomic_load(&q->front) != &q->stub;
}

bool cf__runq_closed(cf__runq_t *q) {
  return atomic_load_explicit(&q->back, memory_order_acquire) & CLOSED_BIT;
}

void cf__runq_close(cf__runq_t *q) {
  atomic_fetch_or(&q->back, CLOSED_BIT);
}

cf_future_t *cf__runq_take(cf__runq_t *q, bool close) {
  cf__lock(&q->lock);
  if (close)
    cf__runq_close(q);
  cf_future_t *first = NULL, **link = &first, *f;
  while ((f = take_front(q)) != NULL) {
    *link = f;
    link = &f->next;
  }
  *link = NULL;
  cf__unlock(&q->lock);
  return first;
}
