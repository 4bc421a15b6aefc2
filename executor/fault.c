/*
 * Fault injection: the counting, failing twins of the libc calls that the
 * library makes. See fault.h. Compiled to nothing unless
 * CF_FAULT_INJECTION is defined (only libcfutures-fault.la defines it).
 */
#ifdef CF_FAULT_INJECTION

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif

#include "fault.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/epoll.h>
#endif
#ifndef CF_BRIDGE_PIPE
#include <sys/eventfd.h>
#endif

/* One class of calls: how many were made, and which one fails. */
struct fault_class {
  _Atomic long calls;
  _Atomic long fail_at; /* the call number that fails; 0: none */
  _Atomic bool sticky;  /* and every later one too */
};

static struct fault_class allocs, threads, fds;
static _Atomic long injected;

/* Called for each injected failure: a place for a debugger breakpoint
 * (`break cf__fault_hit` shows who made the call that fails). */
__attribute__((noinline)) void cf__fault_hit(void) {
  atomic_fetch_add(&injected, 1);
}

/* Count one call of class c: true if it must fail. */
static bool should_fail(struct fault_class *c) {
  long k = atomic_fetch_add(&c->calls, 1) + 1;
  long at = atomic_load(&c->fail_at);
  if (at <= 0 || k < at || (k > at && !atomic_load(&c->sticky)))
    return false;
  cf__fault_hit();
  return true;
}

static void arm(struct fault_class *c, long n, bool sticky) {
  atomic_store(&c->sticky, sticky);
  atomic_store(&c->fail_at, n > 0 ? atomic_load(&c->calls) + n : 0);
}

static void clear(struct fault_class *c) {
  atomic_store(&c->fail_at, 0);
  atomic_store(&c->sticky, false);
  atomic_store(&c->calls, 0);
}

void (*cf__fault_idle_hook)(void);
void (*cf__fault_spin_hook)(int64_t budget_ns);
int64_t (*cf__fault_clock_hook)(void);

void cf__fault_reset(void) {
  clear(&allocs);
  clear(&threads);
  clear(&fds);
  atomic_store(&injected, 0);
}

void cf__fault_fail_alloc_at(long n) { arm(&allocs, n, false); }
void cf__fault_fail_thread_at(long n) { arm(&threads, n, false); }
void cf__fault_fail_fd_at(long n) { arm(&fds, n, false); }
void cf__fault_fail_alloc_from(long n) { arm(&allocs, n, true); }
void cf__fault_fail_thread_from(long n) { arm(&threads, n, true); }
void cf__fault_fail_fd_from(long n) { arm(&fds, n, true); }

long cf__fault_alloc_count(void) { return atomic_load(&allocs.calls); }
long cf__fault_thread_count(void) { return atomic_load(&threads.calls); }
long cf__fault_fd_count(void) { return atomic_load(&fds.calls); }
long cf__fault_injected(void) { return atomic_load(&injected); }

/* ---- allocations ---- */

void *cf__malloc(size_t size) {
  if (should_fail(&allocs)) {
    errno = ENOMEM;
    return NULL;
  }
  return malloc(size);
}

void *cf__calloc(size_t n, size_t size) {
  if (should_fail(&allocs)) {
    errno = ENOMEM;
    return NULL;
  }
  return calloc(n, size);
}

void *cf__realloc(void *ptr, size_t size) {
  if (should_fail(&allocs)) {
    errno = ENOMEM;
    return NULL; /* ptr stays valid, as with a real failure */
  }
  return realloc(ptr, size);
}

char *cf__strdup(const char *s) {
  if (should_fail(&allocs)) {
    errno = ENOMEM;
    return NULL;
  }
  return strdup(s);
}

int cf__vasprintf(char **strp, const char *fmt, va_list ap) {
  if (should_fail(&allocs)) {
    errno = ENOMEM;
    *strp = NULL;
    return -1;
  }
  return vasprintf(strp, fmt, ap);
}

void *cf__mmap(void *addr, size_t length, int prot, int flags, int fd,
               off_t offset) {
  if (should_fail(&allocs)) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return mmap(addr, length, prot, flags, fd, offset);
}

/* ---- threads ---- */

int cf__pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                       void *(*start)(void *), void *arg) {
  if (should_fail(&threads))
    return EAGAIN;
  return pthread_create(thread, attr, start, arg);
}

/* ---- file descriptors ---- */

#ifndef CF_BRIDGE_PIPE /* the bridge's wake-up, as in bridge.c */
int cf__eventfd(unsigned int initval, int flags) {
  if (should_fail(&fds)) {
    errno = EMFILE;
    return -1;
  }
  return eventfd(initval, flags);
}
#endif

#ifdef __linux__
int cf__epoll_create1(int flags) {
  if (should_fail(&fds)) {
    errno = EMFILE;
    return -1;
  }
  return epoll_create1(flags);
}
#endif

int cf__pipe(int fds_out[2]) {
  if (should_fail(&fds)) {
    errno = EMFILE;
    return -1;
  }
  return pipe(fds_out);
}

#else

/* ISO C forbids an empty translation unit. */
typedef int cf__fault_unused;

#endif /* CF_FAULT_INJECTION */
