/* Parking, the lock's slow path, deadlines and events: see sync.h. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int cf__deadline_init(cf__deadline_t *d, double timeout) {
  if (isnan(timeout))
    return CF_EINVAL;
  if (timeout <= 0) {
    d->kind = CF__DL_POLL;
    return 0;
  }
  if (timeout > 1e9) { /* 31 years: as good as forever, and no overflow */
    d->kind = CF__DL_FOREVER;
    return 0;
  }
  clock_gettime(CLOCK_MONOTONIC, &d->at);
  double whole = floor(timeout);
  d->at.tv_sec += (time_t)whole;
  d->at.tv_nsec += (long)((timeout - whole) * 1e9);
  if (d->at.tv_nsec >= 1000000000L) {
    d->at.tv_sec += 1;
    d->at.tv_nsec -= 1000000000L;
  }
  d->kind = CF__DL_AT;
  return 0;
}

bool cf__deadline_passed(const cf__deadline_t *d) {
  if (d->kind != CF__DL_AT)
    return d->kind == CF__DL_POLL;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > d->at.tv_sec ||
         (now.tv_sec == d->at.tv_sec && now.tv_nsec >= d->at.tv_nsec);
}

void cf__deadline_shift(cf__deadline_t *d, long ns) {
  long long t = (long long)d->at.tv_sec * 1000000000LL + d->at.tv_nsec + ns;
  d->at.tv_sec = (time_t)(t / 1000000000LL);
  d->at.tv_nsec = (long)(t % 1000000000LL);
}

#ifdef __linux__

int cf__park(_Atomic uint32_t *addr, uint32_t expected, const cf__deadline_t *d) {
  if (d->kind == CF__DL_POLL)
    return CF_ETIMEDOUT;
  const struct timespec *ts = d->kind == CF__DL_AT ? &d->at : NULL;
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
  long rc = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET_PRIVATE,
                    expected, ts, NULL, FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT)
    return CF_ETIMEDOUT;
  return 0; /* woken, EAGAIN (value changed) or EINTR: caller re-checks */
}

void cf__unpark(_Atomic uint32_t *addr, int n) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#else /* !__linux__: a parking table of mutex+condvar pairs */

#define PARK_SLOTS 64
static struct park_slot {
  pthread_mutex_t mu;
  pthread_cond_t cv;
} park_table[PARK_SLOTS];
static pthread_once_t park_once = PTHREAD_ONCE_INIT;

static void park_init(void) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  for (int i = 0; i < PARK_SLOTS; i++) {
    pthread_mutex_init(&park_table[i].mu, NULL);
    pthread_cond_init(&park_table[i].cv, &attr);
  }
  pthread_condattr_destroy(&attr);
}

static struct park_slot *park_slot(_Atomic uint32_t *addr) {
  pthread_once(&park_once, park_init);
  return &park_table[((uintptr_t)addr >> 4) % PARK_SLOTS];
}

int cf__park(_Atomic uint32_t *addr, uint32_t expected, const cf__deadline_t *d) {
  if (d->kind == CF__DL_POLL)
    return CF_ETIMEDOUT;
  struct park_slot *s = park_slot(addr);
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  if (atomic_load(addr) == expected) {
    if (d->kind == CF__DL_AT)
      rc = pthread_cond_timedwait(&s->cv, &s->mu, &d->at) == ETIMEDOUT
               ? CF_ETIMEDOUT
               : 0;
    else
      pthread_cond_wait(&s->cv, &s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

void cf__unpark(_Atomic uint32_t *addr, int n) {
  (void)n;
  struct park_slot *s = park_slot(addr);
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

#endif

void cf__lock_slow(cf__lock_t *l) {
  static const cf__deadline_t forever = {CF__DL_FOREVER, {0, 0}};
  for (int spin = 0; spin < 100; spin++) {
    uint32_t expected = 0;
    if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->word, &expected, 1,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return;
    cf__cpu_relax();
  }
  /* Mark "held with sleepers" and sleep until we take it in that state. */
  while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
    cf__park(&l->word, 2, &forever);
}

int cf__event_wait(cf__event_t *ev, uint32_t seen, const cf__deadline_t *d) {
  uint32_t cur = atomic_load_explicit(&ev->seq, memory_order_acquire);
  if ((cur & ~1u) != seen)
    return 0;
  if (d->kind == CF__DL_POLL)
    return CF_ETIMEDOUT;
  if (!(cur & 1u) &&
      !atomic_compare_exchange_strong_explicit(&ev->seq, &cur, cur | 1u,
                                               memory_order_acq_rel,
                                               memory_order_acquire))
    return 0; /* it changed under us: the caller re-checks */
  return cf__park(&ev->seq, seen | 1u, d);
}
