/*
 * Synchronisation primitives of the core: futex-style parking on a 32-bit
 * word, a small lock, one-shot deadlines and a wake-up event.
 *
 * On Linux parking is the futex system call (FUTEX_WAIT_BITSET with an
 * absolute CLOCK_MONOTONIC deadline). Elsewhere a table of mutex+condvar
 * pairs hashed by address stands in for the kernel's futex queues.
 */
#ifndef CF_SYNC_H
#define CF_SYNC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* A deadline: "never", "already" (poll) or an absolute monotonic time. */
typedef enum { CF__DL_FOREVER, CF__DL_POLL, CF__DL_AT } cf__deadline_kind_t;

typedef struct cf__deadline {
  cf__deadline_kind_t kind;
  struct timespec at;
} cf__deadline_t;

/* Turn a relative timeout in seconds into a deadline. NaN -> CF_EINVAL. */
int cf__deadline_init(cf__deadline_t *d, double timeout);


/* True once the deadline has passed (always for POLL, never for FOREVER). */
bool cf__deadline_passed(const cf__deadline_t *d);

/* Move an AT deadline by ns nanoseconds (negative: earlier). */
void cf__deadline_shift(cf__deadline_t *d, long ns);

/* Park while *addr == expected, until woken or the deadline passes.
 * Returns 0 (woken, value changed, or spurious) or CF_ETIMEDOUT. A signal
 * interrupting the wait returns 0; callers re-check and wait again. */
int cf__park(_Atomic uint32_t *addr, uint32_t expected, const cf__deadline_t *d);

/* Wake up to n threads parked on addr (n = INT32_MAX for all). */
void cf__unpark(_Atomic uint32_t *addr, int n);

/* A lock for short critical sections: spins briefly, then parks. */
typedef struct cf__lock {
  _Atomic uint32_t word; /* 0 free, 1 held, 2 held with sleepers */
} cf__lock_t;

void cf__lock_slow(cf__lock_t *l);

static inline void cf__lock(cf__lock_t *l) {
  uint32_t expected = 0;
  if (!atomic_compare_exchange_strong_explicit(&l->word, &expected, 1,
                                               memory_order_acquire,
                                               memory_order_relaxed))
    cf__lock_slow(l);
}

static inline void cf__unlock(cf__lock_t *l) {
  if (atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2)
    cf__unpark(&l->word, 1);
}

/* An event for one consumer: producers bump a sequence number; the consumer
 * reads it, checks its condition and parks only if nothing changed since.
 * Bit 0 says that the consumer sleeps, so a signal without a sleeper makes
 * no system call. */
typedef struct cf__event {
  _Atomic uint32_t seq;
} cf__event_t;

static inline uint32_t cf__event_seq(cf__event_t *ev) {
  return atomic_load_explicit(&ev->seq, memory_order_acquire) & ~1u;
}

/* Park until the sequence differs from seen or the deadline passes:
 * 0 or CF_ETIMEDOUT. */
int cf__event_wait(cf__event_t *ev, uint32_t seen, const cf__deadline_t *d);

static inline void cf__event_signal(cf__event_t *ev) {
  uint32_t old = atomic_fetch_add_explicit(&ev->seq, 2, memory_order_acq_rel);
  if (old & 1u) {
    atomic_fetch_and_explicit(&ev->seq, ~1u, memory_order_relaxed);
    cf__unpark(&ev->seq, INT32_MAX);
  }
}

/* The monotonic clock in nanoseconds, for spin budgets (64 bits: a long
 * of 32 would overflow in two seconds). */
static inline int64_t cf__now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spin-wait hint for busy loops. */
static inline void cf__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#endif /* CF_SYNC_H */
