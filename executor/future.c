/*
 * cf_future: the state machine of SEMANTICS.md section 1.
 *
 * One allocation per future. The state lives in one atomic word; the
 * transitions that complete a future (cancel, finish) happen under the
 * future's small lock, which also guards the outcome fields, the done
 * callbacks and the waiter list, so "check done, then register" is atomic
 * for add_done_callback and for wait/as_completed. The transitions that do
 * not complete it (PENDING -> RUNNING, CANCELLED -> CANCELLED_AND_NOTIFIED)
 * are lock-free compare-and-swaps. Readers of the outcome load the state
 * with acquire order, so the fields written before the completing CAS are
 * visible once the state says done.
 *
 * result() waiters park on the state word itself and set a flag in it
 * first; completion wakes them only if the flag was set. Callbacks run
 * after the lock is released, in the completing thread.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Thread_local cf_future_t *cf__current_job;

#define BIT(state) (1u << (state))

/* How long before its deadline a timed wait stops parking and spins. */
#define EARLY_WAKE_NS 60000

static uint32_t load_state(const cf_future_t *f) {
  return atomic_load_explicit(&((cf_future_t *)f)->state, memory_order_acquire);
}

cf_future_t *cf__future_new(void) {
  cf_future_t *f = cf__future_alloc();
  if (f != NULL)
    atomic_init(&f->refs, 1);
  return f;
}

int cf_future_create(cf_future_t **out) {
  if (out == NULL)
    return CF_EINVAL;
  cf_future_t *f = cf__future_new();
  if (f == NULL)
    return CF_ENOMEM;
  *out = f;
  return 0;
}

cf_future_t *cf_future_retain(cf_future_t *f) {
  if (f != NULL)
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

/* Move f to a done state if its current state is in `allowed`, with the
 * lock held. Returns the old state word, or UINT32_MAX if not allowed. */
static uint32_t settle_locked(cf_future_t *f, uint32_t allowed, uint32_t to) {
  uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
  do {
    if (!(allowed & BIT(s & CF__STATE_MASK)))
      return UINT32_MAX;
  } while (!atomic_compare_exchange_weak_explicit(
      &f->state, &s, to | (s & CF__STATE_INLINE), memory_order_acq_rel,
      memory_order_relaxed));
  return s;
}

/* The part of completion after the state changed, lock held on entry and
 * released here: notify waiters, wake result() sleepers, run callbacks. */
static void complete_unlock(cf_future_t *f, uint32_t old) {
  cf_done_fn cb_fn = f->cb_fn;
  void *cb_data = f->cb_data;
  struct cf__callback *more = f->cb_more;
  f->cb_fn = NULL;
  f->cb_more = NULL;
  bool failed = (load_state(f) & CF__STATE_MASK) == CF_STATE_FINISHED &&
                f->code != 0;
  struct cf__wnode *node = f->waiters;
  f->waiters = NULL;
  while (node != NULL) {
    struct cf__wnode *next = node->next;
    node->linked = false;
    cf__waiter_notify(node, failed);
    node = next;
  }
  cf__unlock(&f->lock);
  if (old & CF__STATE_SLEEPERS)
    cf__unpark(&f->state, INT32_MAX);
  if (cb_fn == NULL)
    return;
  /* A callback may drop the last reference its owner held: keep f alive
   * until every callback has run. */
  cf_future_retain(f);
  cb_fn(f, cb_data);
  /* The rest were pushed in front: reverse to registration order. */
  struct cf__callback *ordered = NULL;
  while (more != NULL) {
    struct cf__callback *next = more->next;
    more->next = ordered;
    ordered = more;
    more = next;
  }
  while (ordered != NULL) {
    struct cf__callback *next = ordered->next;
    ordered->fn(f, ordered->data);
    free(ordered);
    ordered = next;
  }
  cf_future_release(f);
}

int cf__future_finish(cf_future_t *f, int code, void *value,
                      cf_free_fn value_dtor, char *message) {
  cf__lock(&f->lock);
  if (cf__state_done(atomic_load_explicit(&f->state, memory_order_relaxed))) {
    cf__unlock(&f->lock);
    return CF_EINVALID_STATE;
  }
  /* Not done now, and only this lock's holder can make it done. */
  f->code = code;
  f->value = value;
  f->value_dtor = value_dtor;
  f->message = message;
  uint32_t old = settle_locked(f, BIT(CF_STATE_PENDING) | BIT(CF_STATE_RUNNING),
                               CF_STATE_FINISHED);
  complete_unlock(f, old);
  return 0;
}

/* Cancel from `allowed` states; true if this call cancelled f. */
static bool cancel_from(cf_future_t *f, uint32_t allowed) {
  cf__lock(&f->lock);
  uint32_t old = settle_locked(f, allowed, CF_STATE_CANCELLED);
  if (old == UINT32_MAX) {
    cf__unlock(&f->lock);
    return false;
  }
  complete_unlock(f, old);
  return true;
}

static void future_free(cf_future_t *f) {
  uint32_t s = load_state(f) & CF__STATE_MASK;
  if (s == CF_STATE_FINISHED && f->code == 0 && f->value_dtor != NULL)
    f->value_dtor(f->value);
  free(f->message);
  cf__future_dealloc(f);
}

void cf_future_release(cf_future_t *f) {
  if (f == NULL)
    return;
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (!cf__state_done(load_state(f))) {
    /* Nobody can complete it any more: end it cancelled so that its done
     * callbacks still run exactly once. They see a live future. */
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
    cancel_from(f, BIT(CF_STATE_PENDING) | BIT(CF_STATE_RUNNING));
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
      return;
  }
  future_free(f);
}

bool cf__future_cancel_running(cf_future_t *f) {
  return cancel_from(f, BIT(CF_STATE_RUNNING));
}

int cf_future_cancel(cf_future_t *f) {
  if (f == NULL)
    return CF_EINVAL;
  uint32_t s = load_state(f) & CF__STATE_MASK;
  if (s == CF_STATE_CANCELLED || s == CF_STATE_CANCELLED_AND_NOTIFIED)
    return 1;
  if (s == CF_STATE_RUNNING) { /* too late: leave a request for the job */
    atomic_fetch_or_explicit(&f->state, CF__STATE_CANCEL_REQUESTED,
                             memory_order_relaxed);
    /* If it finished meanwhile the bit is gone with the old state word,
     * or sits harmlessly beside a done state. */
    return 0;
  }
  if (s != CF_STATE_PENDING)
    return 0;
  if (cancel_from(f, BIT(CF_STATE_PENDING)))
    return 1;
  /* Lost a race: someone else cancelled (true) or it started (false). */
  s = load_state(f) & CF__STATE_MASK;
  return s == CF_STATE_CANCELLED || s == CF_STATE_CANCELLED_AND_NOTIFIED;
}

int cf_future_state(const cf_future_t *f) {
  if (f == NULL)
    return CF_EINVAL;
  return (int)(load_state(f) & CF__STATE_MASK);
}

int cf_future_cancelled(const cf_future_t *f) {
  int s = cf_future_state(f);
  return s == CF_STATE_CANCELLED || s == CF_STATE_CANCELLED_AND_NOTIFIED;
}

int cf_future_running(const cf_future_t *f) {
  return cf_future_state(f) == CF_STATE_RUNNING;
}

int cf_future_done(const cf_future_t *f) {
  return f != NULL && cf__state_done(load_state(f));
}

bool cf__future_failed(const cf_future_t *f) {
  return (load_state(f) & CF__STATE_MASK) == CF_STATE_FINISHED && f->code != 0;
}

const char *cf_state_name(int state) {
  switch (state) {
  case CF_STATE_PENDING:
    return "pending";
  case CF_STATE_RUNNING:
    return "running";
  case CF_STATE_CANCELLED:
  case CF_STATE_CANCELLED_AND_NOTIFIED:
    return "cancelled";
  case CF_STATE_FINISHED:
    return "finished";
  default:
    return "invalid";
  }
}

int cf_future_repr(const cf_future_t *f, char *buf, size_t size) {
  if (f == NULL || (buf == NULL && size > 0))
    return CF_EINVAL;
  int state = cf_future_state(f);
  if (state != CF_STATE_FINISHED)
    return snprintf(buf, size, "<cf_future at %p state=%s>", (const void *)f,
                    cf_state_name(state));
  if (f->code != 0)
    return snprintf(buf, size, "<cf_future at %p state=finished raised %d>",
                    (const void *)f, f->code);
  return snprintf(buf, size, "<cf_future at %p state=finished returned>",
                  (const void *)f);
}

int cf__future_wait(cf_future_t *f, const cf__deadline_t *d) {
  if (d->kind == CF__DL_FOREVER && f->owner != NULL &&
      f->owner == cf__current_executor)
    cf__executor_help(f);
  uint32_t s = load_state(f);
  /* A short spin catches the completions that are already on their way. */
  for (int spin = 0; spin < 200 && !cf__state_done(s) && d->kind != CF__DL_POLL;
       spin++) {
    cf__cpu_relax();
    s = load_state(f);
  }
  /* A timed wait parks until shortly before its deadline and spins the
   * rest: the kernel's timer slack (50 us by default) would otherwise make
   * most timeouts late by that much. Never early: the deadline decides. */
  cf__deadline_t early = *d;
  if (d->kind == CF__DL_AT)
    cf__deadline_shift(&early, -EARLY_WAKE_NS);
  while (!cf__state_done(s)) {
    if (!(s & CF__STATE_SLEEPERS)) {
      if (!atomic_compare_exchange_weak_explicit(&f->state, &s,
                                                 s | CF__STATE_SLEEPERS,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
        continue;
      s |= CF__STATE_SLEEPERS;
    }
    if (cf__park(&f->state, s, &early) == CF_ETIMEDOUT) {
      while (d->kind == CF__DL_AT && !cf__state_done(load_state(f)) &&
             !cf__deadline_passed(d))
        cf__cpu_relax();
      return cf__state_done(load_state(f)) ? 0 : CF_ETIMEDOUT;
    }
    s = load_state(f);
  }
  return 0;
}

/* Wait for f per timeout; then 0 if it finished, or the error. */
static int wait_timeout(cf_future_t *f, double timeout) {
  cf__deadline_t d;
  if (f == NULL || cf__deadline_init(&d, timeout) != 0)
    return CF_EINVAL;
  if (f == cf__current_job && !cf__state_done(load_state(f)))
    return CF_EDEADLK;
  int rc = cf__future_wait(f, &d);
  if (rc != 0)
    return rc;
  return (load_state(f) & CF__STATE_MASK) == CF_STATE_FINISHED ? 0
                                                              : CF_ECANCELLED;
}

int cf_future_result(cf_future_t *f, double timeout, void **value) {
  int rc = wait_timeout(f, timeout);
  if (rc != 0)
    return rc;
  if (f->code != 0)
    return CF_EFAILED;
  if (value != NULL)
    *value = f->value;
  return 0;
}

int cf_future_exception(cf_future_t *f, double timeout, int *code,
                        const char **message) {
  int rc = wait_timeout(f, timeout);
  if (rc != 0)
    return rc;
  if (code != NULL)
    *code = f->code;
  if (message != NULL)
    *message = f->message;
  return 0;
}

int cf_future_add_done_callback(cf_future_t *f, cf_done_fn fn, void *data) {
  if (f == NULL || fn == NULL)
    return CF_EINVAL;
  struct cf__callback *node = NULL;
  for (;;) {
    cf__lock(&f->lock);
    if (cf__state_done(atomic_load_explicit(&f->state, memory_order_relaxed))) {
      cf__unlock(&f->lock);
      free(node);
      fn(f, data);
      return 0;
    }
    if (f->cb_fn == NULL) {
      f->cb_fn = fn;
      f->cb_data = data;
      cf__unlock(&f->lock);
      free(node);
      return 0;
    }
    if (node != NULL) {
      node->fn = fn;
      node->data = data;
      node->next = f->cb_more;
      f->cb_more = node;
      cf__unlock(&f->lock);
      return 0;
    }
    /* Allocate outside the lock, then look again. */
    cf__unlock(&f->lock);
    node = cf__malloc(sizeof(*node));
    if (node == NULL)
      return CF_ENOMEM;
  }
}

/* PENDING -> RUNNING: 1; CANCELLED -> CANCELLED_AND_NOTIFIED: 0; any other
 * state: CF_EINVALID_STATE. Lock-free. */
static int start(cf_future_t *f) {
  uint32_t s = load_state(f);
  for (;;) {
    uint32_t to;
    switch (s & CF__STATE_MASK) {
    case CF_STATE_PENDING:
      to = CF_STATE_RUNNING | (s & CF__STATE_SLEEPERS);
      break;
    case CF_STATE_CANCELLED:
      to = CF_STATE_CANCELLED_AND_NOTIFIED;
      break;
    default:
      return CF_EINVALID_STATE;
    }
    if (atomic_compare_exchange_weak_explicit(&f->state, &s, to,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return (to & CF__STATE_MASK) == CF_STATE_RUNNING;
  }
}

bool cf__future_start(cf_future_t *f) { return start(f) == 1; }

bool cf__future_claim(cf_future_t *f) {
  uint32_t s = load_state(f);
  while ((s & CF__STATE_MASK) == CF_STATE_PENDING)
    if (atomic_compare_exchange_weak_explicit(
            &f->state, &s, CF_STATE_RUNNING | CF__STATE_INLINE | (s & CF__STATE_SLEEPERS),
            memory_order_acq_rel, memory_order_acquire))
      return true;
  return false;
}

int cf_future_set_running_or_notify_cancel(cf_future_t *f) {
  if (f == NULL)
    return CF_EINVAL;
  return start(f);
}

int cf_future_set_result(cf_future_t *f, void *value, cf_free_fn dtor) {
  if (f == NULL)
    return CF_EINVAL;
  return cf__future_finish(f, 0, value, dtor, NULL);
}

int cf_future_set_exception(cf_future_t *f, int code, const char *message) {
  if (f == NULL || code == 0)
    return CF_EINVAL;
  char *copy = NULL;
  if (message != NULL && (copy = cf__strdup(message)) == NULL)
    return CF_ENOMEM;
  int rc = cf__future_finish(f, code, NULL, NULL, copy);
  if (rc != 0)
    free(copy);
  return rc;
}
