/*
 * cf_as_completed: concurrent.futures.as_completed as an iterator.
 * Futures done at creation are queued first, in input order; later ones
 * arrive on the waiter's completion stack, taken in batches and reversed
 * into completion order. O(n) to set up, O(1) per completion.
 */
#include "internal.h"

#include <stdlib.h>

struct cf_as_completed {
  struct cf__waiter waiter;
  cf_future_t **futures; /* distinct, one reference each */
  size_t n;
  size_t yielded;
  struct cf__wnode *ready_head, *ready_tail;
  cf__deadline_t deadline;
};

static void append_ready(struct cf__wnode *node, void *ctx) {
  cf_as_completed_t *it = ctx;
  node->done_next = NULL;
  if (it->ready_tail != NULL)
    it->ready_tail->done_next = node;
  else
    it->ready_head = node;
  it->ready_tail = node;
}

/* Move the completions notified so far to the ready queue, in order. */
static void take_completed(cf_as_completed_t *it) {
  struct cf__wnode *lifo = atomic_exchange(&it->waiter.completed, NULL);
  struct cf__wnode *fifo = NULL;
  while (lifo != NULL) {
    struct cf__wnode *next = lifo->done_next;
    lifo->done_next = fifo;
    fifo = lifo;
    lifo = next;
  }
  while (fifo != NULL) {
    struct cf__wnode *next = fifo->done_next;
    append_ready(fifo, it);
    fifo = next;
  }
}

/* The timeout path: a future's state turns done just before its lock
 * holder notifies us, so the caller may already see a future done whose
 * notification is still in flight. Taking the lock of each such future
 * waits those out. O(n), on the rare path only. True if anything is now
 * ready to be yielded. */
static bool flush_notifications(cf_as_completed_t *it) {
  for (size_t i = 0; i < it->waiter.n; i++) {
    struct cf__wnode *node = &it->waiter.nodes[i];
    if (node->installed && cf_future_done(node->future)) {
      cf__lock(&node->future->lock);
      cf__unlock(&node->future->lock);
    }
  }
  return atomic_load(&it->waiter.completed) != NULL;
}

int cf_as_completed_create(cf_future_t *const *fs, size_t n, double timeout,
                           cf_as_completed_t **out) {
  cf__deadline_t deadline;
  if (out == NULL || (fs == NULL && n > 0) ||
      cf__deadline_init(&deadline, timeout) != 0)
    return CF_EINVAL;
  cf_as_completed_t *it = cf__calloc(1, sizeof(*it));
  if (it == NULL)
    return CF_ENOMEM;
  it->deadline = deadline;
  int rc = cf__dedup(fs, n, &it->futures, &it->n);
  if (rc == 0) {
    for (size_t i = 0; i < it->n; i++)
      cf_future_retain(it->futures[i]);
    rc = cf__waiter_install(&it->waiter, CF__WAIT_AS_COMPLETED, it->futures,
                            it->n, append_ready, it);
    if (rc != 0) {
      for (size_t i = 0; i < it->n; i++)
        cf_future_release(it->futures[i]);
    }
  }
  if (rc != 0) {
    free(it->futures);
    free(it);
    return rc;
  }
  *out = it;
  return 0;
}

int cf_as_completed_next(cf_as_completed_t *it, cf_future_t **f) {
  if (it == NULL || f == NULL)
    return CF_EINVAL;
  if (it->yielded == it->n)
    return CF_EOF;
  for (;;) {
    if (it->ready_head == NULL)
      take_completed(it);
    struct cf__wnode *node = it->ready_head;
    if (node != NULL) {
      it->ready_head = node->done_next;
      if (it->ready_head == NULL)
        it->ready_tail = NULL;
      it->yielded++;
      *f = node->future;
      return 0;
    }
    uint32_t seen = cf__event_seq(&it->waiter.event);
    if (atomic_load(&it->waiter.completed) != NULL)
      continue;
    if (cf__event_wait(&it->waiter.event, seen, &it->deadline) ==
            CF_ETIMEDOUT &&
        !flush_notifications(it))
      return CF_ETIMEDOUT;
  }
}

int cf_as_completed_remaining(const cf_as_completed_t *it) {
  if (it == NULL)
    return CF_EINVAL;
  return (int)(it->n - it->yielded);
}

void cf_as_completed_destroy(cf_as_completed_t *it) {
  if (it == NULL)
    return;
  cf__waiter_remove(&it->waiter);
  for (size_t i = 0; i < it->n; i++)
    cf_future_release(it->futures[i]);
  free(it->futures);
  free(it);
}
