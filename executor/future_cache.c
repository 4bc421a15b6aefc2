/*
 * Free lists of futures: most futures are freed by a thread other than
 * the one that made them (a worker drops the last reference of a
 * fire-and-forget job), and malloc pays for that with its arena locks.
 *
 * Each thread keeps the futures it frees on its own list. Every BATCH of
 * them goes, in one compare-and-swap, onto a shared stack, unless that
 * already holds SHARED_MAX (then they go back to malloc). A thread with no
 * free future of its own takes the whole shared stack in one exchange.
 * Push and take-all on a stack have no ABA problem. A thread's lists are
 * freed when it exits (a pthread key's destructor).
 *
 * Checkers keep their view: AddressSanitizer and memcheck see a cached
 * future as freed memory, all but its link, so a use after release is
 * still reported. The fault-injection build has no cache, so that every
 * future costs one counted allocation.
 */
#include "internal.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sanitizer.h"
#ifdef CF__ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

#ifndef CF_FAULT_INJECTION

#define BATCH 64        /* futures a thread gathers before handing them on */
#define SHARED_MAX 4096 /* futures the shared stack keeps at most */

struct cache {
  cf_future_t *reuse; /* taken from the shared stack */
  cf_future_t *freed; /* freed by this thread, fewer than BATCH */
  cf_future_t *freed_last;
  unsigned nfreed;
  bool registered; /* the exit destructor knows this thread's lists */
};

static _Thread_local struct cache cache;
static _Atomic(cf_future_t *) shared;
static _Atomic long shared_count; /* approximate: for the cap only */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void region_hide(void *p, size_t n) {
#ifdef CF__ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#endif
#ifdef HAVE_VALGRIND_MEMCHECK_H
  VALGRIND_MAKE_MEM_NOACCESS(p, n);
#endif
  (void)p;
  (void)n;
}

/* f is cached: everything but f->next is off limits. */
static void hide(cf_future_t *f) {
  size_t link = offsetof(cf_future_t, next), after = link + sizeof(f->next);
  region_hide(f, link);
  region_hide((char *)f + after, sizeof(*f) - after);
}

/* f leaves the cache: accessible again, contents undefined. */
static void unhide(cf_future_t *f) {
#ifdef CF__ASAN
  ASAN_UNPOISON_MEMORY_REGION(f, sizeof(*f));
#endif
#ifdef HAVE_VALGRIND_MEMCHECK_H
  VALGRIND_MAKE_MEM_UNDEFINED(f, sizeof(*f));
#endif
  (void)f;
}

static void free_list(cf_future_t *f) {
  while (f != NULL) {
    cf_future_t *next = f->next;
    unhide(f);
    free(f);
    f = next;
  }
}

static void thread_exit(void *arg) {
  struct cache *c = arg;
  free_list(c->reuse);
  free_list(c->freed);
  memset(c, 0, sizeof(*c));
}

static void exit_key_create(void) { pthread_key_create(&exit_key, thread_exit); }

/* Make sure the exit destructor frees this thread's lists. */
static void enroll(struct cache *c) {
  if (c->registered)
    return;
  pthread_once(&exit_key_once, exit_key_create);
  c->registered = pthread_setspecific(exit_key, c) == 0;
}

cf_future_t *cf__future_alloc(void) {
  struct cache *c = &cache;
  cf_future_t *f = c->reuse;
  if (f != NULL) {
    c->reuse = f->next;
  } else if ((f = c->freed) != NULL) {
    c->freed = f->next;
    c->nfreed--;
  } else if ((f = atomic_exchange_explicit(&shared, NULL,
                                           memory_order_acquire)) != NULL) {
    atomic_store_explicit(&shared_count, 0, memory_order_relaxed);
    enroll(c);
    c->reuse = f->next;
  } else {
    return cf__calloc(1, sizeof(*f));
  }
  unhide(f);
  memset(f, 0, sizeof(*f));
  return f;
}

/* Hand this thread's full batch on to the shared stack, or to malloc if
 * that holds enough. */
static void hand_on(struct cache *c) {
  cf_future_t *first = c->freed, *last = c->freed_last;
  c->freed = c->freed_last = NULL;
  c->nfreed = 0;
  if (atomic_load_explicit(&shared_count, memory_order_relaxed) >= SHARED_MAX) {
    free_list(first);
    return;
  }
  cf_future_t *top = atomic_load_explicit(&shared, memory_order_relaxed);
  do
    last->next = top;
  while (!atomic_compare_exchange_weak_explicit(
      &shared, &top, first, memory_order_release, memory_order_relaxed));
  atomic_fetch_add_explicit(&shared_count, BATCH, memory_order_relaxed);
}

void cf__future_dealloc(cf_future_t *f) {
  struct cache *c = &cache;
  enroll(c);
  f->next = c->freed;
  if (c->freed == NULL)
    c->freed_last = f;
  c->freed = f;
  hide(f);
  if (++c->nfreed == BATCH)
    hand_on(c);
}

#else /* CF_FAULT_INJECTION: one counted allocation per future */

cf_future_t *cf__future_alloc(void) {
  return cf__calloc(1, sizeof(cf_future_t));
}

void cf__future_dealloc(cf_future_t *f) { free(f); }

#endif
