/*
 * Waiters: how cf_wait and cf_as_completed learn of completions.
 *
 * A waiter has one node per distinct future. Installing links each node
 * into its future's waiter list under that future's lock, unless the
 * future is already done; so "check done, then register" is atomic per
 * future and no lock ordering across futures is needed (CPython takes all
 * the locks at once, sorted by address). A completing future unlinks its
 * nodes and notifies each waiter under its own lock: O(1) per node.
 * Removal takes each installed node's future lock once, which also waits
 * out a notification in progress, so the waiter may be freed afterwards.
 */
#include "internal.h"

#include <stdlib.h>

int cf__dedup(cf_future_t *const *fs, size_t n, cf_future_t ***out,
              size_t *nout) {
  *out = NULL;
  *nout = 0;
  if (n == 0)
    return 0;
  size_t cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  cf_future_t **table = cf__calloc(cap, sizeof(*table));
  cf_future_t **unique = cf__malloc(n * sizeof(*unique));
  if (table == NULL || unique == NULL) {
    free(table);
    free(unique);
    return CF_ENOMEM;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    cf_future_t *f = fs[i];
    if (f == NULL) {
      free(table);
      free(unique);
      return CF_EINVAL;
    }
    size_t h = (size_t)(((uintptr_t)f >> 4) * 0x9E3779B97F4A7C15ull) & (cap - 1);
    while (table[h] != NULL && table[h] != f)
      h = (h + 1) & (cap - 1);
    if (table[h] == f)
      continue;
    table[h] = f;
    unique[m++] = f;
  }
  free(table);
  *out = unique;
  *nout = m;
  return 0;
}

int cf__waiter_install(struct cf__waiter *w, cf__wait_kind_t kind,
                       cf_future_t *const *fs, size_t n,
                       void (*on_done)(struct cf__wnode *, void *), void *ctx) {
  w->kind = kind;
  w->n = n;
  w->nodes = NULL;
  atomic_init(&w->event.seq, 0);
  atomic_init(&w->pending, 0);
  atomic_init(&w->failed, false);
  atomic_init(&w->completed, NULL);
  if (n == 0)
    return 0;
  w->nodes = cf__calloc(n, sizeof(*w->nodes));
  if (w->nodes == NULL)
    return CF_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    struct cf__wnode *node = &w->nodes[i];
    cf_future_t *f = fs[i];
    node->future = f;
    node->waiter = w;
    cf__lock(&f->lock);
    if (cf__state_done(atomic_load_explicit(&f->state, memory_order_relaxed))) {
      cf__unlock(&f->lock);
      if (cf__future_failed(f))
        atomic_store(&w->failed, true);
      if (on_done != NULL)
        on_done(node, ctx);
      continue;
    }
    node->next = f->waiters;
    if (f->waiters != NULL)
      f->waiters->prev = node;
    f->waiters = node;
    node->installed = true;
    node->linked = true;
    atomic_fetch_add(&w->pending, 1); /* before a completion can see it */
    cf__unlock(&f->lock);
  }
  return 0;
}

void cf__waiter_remove(struct cf__waiter *w) {
  for (size_t i = 0; i < w->n; i++) {
    struct cf__wnode *node = &w->nodes[i];
    if (!node->installed)
      continue;
    cf_future_t *f = node->future;
    cf__lock(&f->lock);
    if (node->linked) {
      if (node->prev != NULL)
        node->prev->next = node->next;
      else
        f->waiters = node->next;
      if (node->next != NULL)
        node->next->prev = node->prev;
      node->linked = false;
    }
    cf__unlock(&f->lock);
  }
  free(w->nodes);
  w->nodes = NULL;
  w->n = 0;
}

void cf__waiter_notify(struct cf__wnode *node, bool failed) {
  struct cf__waiter *w = node->waiter;
  if (failed)
    atomic_store(&w->failed, true);
  if (w->kind == CF__WAIT_AS_COMPLETED) {
    struct cf__wnode *head = atomic_load(&w->completed);
    do
      node->done_next = head;
    while (!atomic_compare_exchange_weak(&w->completed, &head, node));
  }
  size_t left = atomic_fetch_sub(&w->pending, 1) - 1;
  bool wake;
  switch (w->kind) {
  case CF__WAIT_ALL_COMPLETED:
    wake = left == 0;
    break;
  case CF__WAIT_FIRST_EXCEPTION:
    wake = failed || left == 0;
    break;
  default:
    wake = true;
    break;
  }
  if (wake)
    cf__event_signal(&w->event);
}
