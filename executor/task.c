/*
 * Tasks: stackful coroutines on the loop, with asyncio's cancellation.
 *
 * A task is a loop future plus a coroutine. Its steps run from loop
 * callbacks: a step switches from the loop's own context into the task's,
 * and the task switches back when it awaits something not done (after
 * adding a done callback that schedules its next step) or when its body
 * returns. Cancellation follows asyncio.Task: cancel() cancels the future
 * the task waits on (fut_waiter), or sets must_cancel; either way the
 * await where the task is suspended (or its next one) returns
 * CF_ECANCELLED once. The body decides what the task ends as.
 */
#include "loop_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

_Thread_local struct task *cf__current_task;

static void task_step(void *arg);

static void task_entry(void *arg) {
  struct task *t = arg;
  t->rc = t->fn(t->self, t->arg);
  t->finished = true;
  cf__coro_exit(&t->coro, &t->self->loop->main);
}

/* The body returned (or never ran): complete the task's future. */
static void task_complete(struct task *t) {
  cf_lfuture_t *f = t->self;
  cf_loop_t *loop = f->loop;
  if (t->stack_map != NULL) {
    cf__coro_fini(&t->coro);
    cf__stack_put(loop, t->stack_map);
    t->stack_map = NULL;
  }
  if (t->prev != NULL)
    t->prev->next = t->next;
  else
    loop->tasks = t->next;
  if (t->next != NULL)
    t->next->prev = t->prev;
  loop->ntasks--;
  if (t->rc == CF_ECANCELLED || t->must_cancel) {
    if (t->ret_dtor != NULL)
      t->ret_dtor(t->ret_value);
    cf__lfuture_cancel_quietly(f);
  } else if (t->rc != 0) {
    if (t->ret_dtor != NULL)
      t->ret_dtor(t->ret_value);
    cf__lfuture_finish(f, t->rc, NULL, NULL, t->message);
    t->message = NULL;
  } else {
    cf__lfuture_finish(f, 0, t->ret_value, t->ret_dtor, NULL);
  }
  cf_lfuture_release(f); /* the loop's reference */
}

static void task_step(void *arg) {
  struct task *t = arg;
  t->step_scheduled = false;
  cf_loop_t *loop = t->self->loop;
  if (!t->started) {
    t->started = true;
    if (t->must_cancel) { /* cancelled before its first step */
      task_complete(t);
      return;
    }
    t->stack_map = cf__stack_get(loop);
    if (t->stack_map == NULL ||
        cf__coro_init(&t->coro, (char *)t->stack_map + cf__stack_guard(),
                      loop->stack_size, task_entry, t) != 0) {
      t->rc = CF_ENOMEM;
      task_complete(t);
      return;
    }
  }
  struct task *outer = cf__current_task;
  cf__current_task = t;
  cf__coro_switch(&loop->main, &t->coro);
  cf__current_task = outer;
  if (t->finished)
    task_complete(t);
}

static void drop_step(void *arg) {
  struct task *t = arg;
  t->step_scheduled = false;
}

/* With the handle embedded in the task, this cannot fail: a wake-up or a
 * cancellation is never lost for want of memory. */
static void schedule_step(struct task *t) {
  if (t->step_scheduled)
    return;
  t->step_scheduled = true;
  cf__loop_soon_embedded(t->self->loop, &t->step, task_step, t, drop_step);
}

static void task_free(cf_lfuture_t *f) {
  if (f->task != NULL)
    free(f->task->message);
  free(f->task);
}

static int task_cancel(cf_lfuture_t *f) { return cf__task_cancel(f->task); }

int cf_task_create(cf_loop_t *loop, cf_coro_fn fn, void *arg,
                   cf_lfuture_t **out) {
  if (loop == NULL || fn == NULL)
    return CF_EINVAL;
  if (loop->closing)
    return CF_ESHUTDOWN;
  cf_lfuture_t *f = cf__lfuture_new(loop);
  struct task *t = cf__calloc(1, sizeof(*t));
  if (f == NULL || t == NULL) {
    cf_lfuture_release(f);
    free(t);
    return CF_ENOMEM;
  }
  t->self = f;
  t->fn = fn;
  t->arg = arg;
  f->task = t;
  f->cancel = task_cancel;
  f->on_free = task_free;
  schedule_step(t);
  t->next = loop->tasks;
  if (t->next != NULL)
    t->next->prev = t;
  loop->tasks = t;
  loop->ntasks++;
  if (out != NULL)
    *out = cf_lfuture_retain(f); /* the loop keeps the first reference */
  return 0;
}

int cf__task_cancel(struct task *t) {
  if (t->self->state != LF_PENDING)
    return 0;
  t->num_cancels_requested++;
  if (t->fut_waiter != NULL && cf_lfuture_cancel(t->fut_waiter) == 1)
    return 1; /* the await will see its future cancelled */
  t->must_cancel = true;
  if (!t->started)
    schedule_step(t);
  return 1;
}

void cf_task_return(cf_lfuture_t *self, void *value, cf_free_fn dtor) {
  if (self == NULL || self->task == NULL)
    return;
  struct task *t = self->task;
  if (t->ret_dtor != NULL && t->ret_value != value)
    t->ret_dtor(t->ret_value);
  t->ret_value = value;
  t->ret_dtor = dtor;
}

int cf_task_fail(cf_lfuture_t *self, int code, const char *fmt, ...) {
  if (self == NULL || self->task == NULL)
    return code;
  va_list ap;
  va_start(ap, fmt);
  cf__message_set(&self->task->message, fmt, ap);
  va_end(ap);
  return code;
}

int cf_task_cancelling(const cf_lfuture_t *f) {
  if (f == NULL || f->task == NULL)
    return CF_EINVAL;
  return f->task->num_cancels_requested;
}

int cf_task_uncancel(cf_lfuture_t *f) {
  if (f == NULL || f->task == NULL)
    return CF_EINVAL;
  struct task *t = f->task;
  if (t->num_cancels_requested > 0 && --t->num_cancels_requested == 0)
    t->must_cancel = false;
  return t->num_cancels_requested;
}

cf_lfuture_t *cf_current_task(void) {
  return cf__current_task != NULL ? cf__current_task->self : NULL;
}

/* ---- awaiting ---- */

static void wakeup(cf_lfuture_t *f, void *data) {
  struct task *t = data;
  if (t->fut_waiter == f)
    schedule_step(t);
}

/* wakeup for a callback that may outlive the await it was made for (the
 * error paths of cf_run_in_executor): it holds a reference to the task. */
static void wakeup_held(cf_lfuture_t *f, void *task_future) {
  wakeup(f, ((cf_lfuture_t *)task_future)->task);
  cf_lfuture_release(task_future);
}

static void release_task(void *task_future) {
  cf_lfuture_release(task_future);
}

/* Deliver a pending cancellation request: true if there was one. */
static bool take_cancel(struct task *t) {
  if (!t->must_cancel)
    return false;
  t->must_cancel = false;
  return true;
}

/* The second half of an await, once the wake-up is registered on the
 * pending future f: suspend until it is done (wakeup() schedules the next
 * step), then report. */
static int await_registered(struct task *t, cf_lfuture_t *f, void **value) {
  /* A request made while the task ran goes to what it now waits for, as
   * asyncio's __step does; the await then reports how that ended. */
  if (t->must_cancel && f->state == LF_PENDING && cf_lfuture_cancel(f) == 1)
    t->must_cancel = false;
  t->fut_waiter = cf_lfuture_retain(f);
  cf__coro_switch(&t->coro, &f->loop->main); /* wakeup() steps us back */
  t->fut_waiter = NULL;
  cf_lfuture_release(f);
  return take_cancel(t) ? CF_ECANCELLED : cf__lfuture_outcome(f, value);
}

int cf_await(cf_lfuture_t *f, void **value) {
  struct task *t = cf__current_task;
  if (f == NULL)
    return CF_EINVAL;
  if (t == NULL || f == t->self || f->loop != t->self->loop)
    return CF_EINVALID_STATE;
  if (f->state != LF_PENDING)
    return take_cancel(t) ? CF_ECANCELLED : cf__lfuture_outcome(f, value);
  int rc = cf_lfuture_add_done_callback(f, wakeup, t);
  if (rc != 0)
    return rc;
  return await_registered(t, f, value);
}

int cf_await_future(cf_future_t *pf, void **value) {
  struct task *t = cf__current_task;
  if (pf == NULL)
    return CF_EINVAL;
  if (t == NULL)
    return CF_EINVALID_STATE;
  cf_lfuture_t *f;
  int rc = cf_lfuture_wrap(t->self->loop, pf, &f);
  if (rc != 0)
    return rc;
  rc = cf_await(f, NULL);
  if (rc == 0 && value != NULL)
    rc = cf_future_result(pf, 0, value); /* done: returns 0 at once */
  cf_lfuture_release(f);
  return rc;
}

/* A sleep's future keeps its timer in ext until the timer fires or is
 * dropped, so the sleeper knows whether it may still cancel it. */
static void sleep_wake(void *arg) {
  cf_lfuture_t *f = arg;
  f->ext = NULL;
  if (f->state == LF_PENDING)
    cf__lfuture_finish(f, 0, NULL, NULL, NULL);
  cf_lfuture_release(f);
}

static void sleep_drop(void *arg) {
  cf_lfuture_t *f = arg;
  f->ext = NULL;
  cf_lfuture_release(f);
}

int cf_sleep(double delay) {
  struct task *t = cf__current_task;
  if (isnan(delay))
    return CF_EINVAL;
  if (t == NULL)
    return CF_EINVALID_STATE;
  cf_loop_t *loop = t->self->loop;
  cf_lfuture_t *f = cf__lfuture_new(loop);
  if (f == NULL)
    return CF_ENOMEM;
  cf_handle_t *h;
  int rc = delay > 0 ? cf__loop_at(loop, cf_loop_time(loop) + delay, sleep_wake,
                                   f, sleep_drop, &h)
                     : cf__loop_soon(loop, sleep_wake, f, sleep_drop, &h);
  if (rc != 0) {
    cf_lfuture_release(f);
    return rc;
  }
  f->ext = h;
  cf_lfuture_retain(f); /* the timer's */
  rc = cf_await(f, NULL);
  if (f->ext != NULL) /* cancelled before the timer fired */
    cf_handle_cancel(f->ext);
  cf_lfuture_release(f);
  return rc;
}

/* ---- asyncio.timeout and wait_for ---- */

struct cf_timeout {
  struct task *task;
  cf_handle_t *timer;
  int cancelling_at_enter;
  bool expired;
};

static void timeout_fire(void *arg) {
  cf_timeout_t *s = arg;
  s->timer = NULL;
  s->expired = true;
  cf__task_cancel(s->task);
}

int cf_timeout_enter(double delay, cf_timeout_t **scope) {
  struct task *t = cf__current_task;
  if (isnan(delay) || scope == NULL)
    return CF_EINVAL;
  if (t == NULL)
    return CF_EINVALID_STATE;
  cf_timeout_t *s = cf__calloc(1, sizeof(*s));
  if (s == NULL)
    return CF_ENOMEM;
  s->task = t;
  s->cancelling_at_enter = t->num_cancels_requested;
  cf_loop_t *loop = t->self->loop;
  int rc = delay >= 1e9 ? 0
                        : cf__loop_at(loop, cf_loop_time(loop) + delay,
                                      timeout_fire, s, NULL, &s->timer);
  if (rc != 0) {
    free(s);
    return rc;
  }
  *scope = s;
  return 0;
}

int cf_timeout_exit(cf_timeout_t *s, int rc) {
  if (s == NULL)
    return CF_EINVAL;
  if (s->timer != NULL)
    cf_handle_cancel(s->timer);
  if (s->expired && cf_task_uncancel(s->task->self) <= s->cancelling_at_enter &&
      rc == CF_ECANCELLED)
    rc = CF_ETIMEDOUT;
  free(s);
  return rc;
}

static void release_waiter(cf_lfuture_t *f, void *data) {
  (void)f;
  cf_lfuture_t *waiter = data;
  if (waiter->state == LF_PENDING)
    cf__lfuture_finish(waiter, 0, NULL, NULL, NULL);
  cf_lfuture_release(waiter);
}

static void drop_waiter(void *waiter) { cf_lfuture_release(waiter); }

/* asyncio's _cancel_and_wait: cancel f and wait until it has really ended
 * (its cleanup ran, bpo-32751). 0 once it ended, or CF_ECANCELLED if this
 * task was cancelled meanwhile (f goes on with its cleanup). */
static int cancel_and_wait(cf_lfuture_t *f) {
  cf_lfuture_t *waiter = cf__lfuture_new(f->loop);
  if (waiter == NULL)
    return CF_ENOMEM;
  int rc = cf__lfuture_add_callback(f, release_waiter,
                                    cf_lfuture_retain(waiter), drop_waiter);
  if (rc != 0) {
    cf_lfuture_release(waiter);
    cf_lfuture_release(waiter);
    return rc;
  }
  cf_lfuture_cancel(f);
  rc = cf_await(waiter, NULL);
  cf_lfuture_release(waiter);
  return rc;
}

int cf_wait_for(cf_lfuture_t *f, double timeout, void **value) {
  struct task *t = cf__current_task;
  if (f == NULL || isnan(timeout))
    return CF_EINVAL;
  if (t == NULL || f == t->self || f->loop != t->self->loop)
    return CF_EINVALID_STATE;
  if (timeout <= 0) {
    if (f->state != LF_PENDING)
      return cf__lfuture_outcome(f, value);
    int rc = cancel_and_wait(f);
    if (rc != 0)
      return rc;
    rc = cf__lfuture_outcome(f, value);
    return rc == CF_ECANCELLED ? CF_ETIMEDOUT : rc;
  }
  cf_timeout_t *scope;
  int rc = cf_timeout_enter(timeout, &scope);
  if (rc != 0)
    return rc;
  return cf_timeout_exit(scope, cf_await(f, value));
}

int cf_run_in_executor(cf_executor_t *ex, cf_job_fn fn, void *arg,
                       cf_free_fn arg_dtor, cf_future_t **done) {
  struct task *t = cf__current_task;
  if (fn == NULL)
    return CF_EINVAL;
  if (t == NULL)
    return CF_EINVALID_STATE;
  cf_loop_t *loop = t->self->loop;
  int rc = ex != NULL ? 0 : cf__loop_executor(loop, &ex);
  if (rc != 0)
    return rc;
  /* Everything that allocates comes before the submit, so that every
   * error but the bridge closing under us leaves arg with the caller. */
  cf_lfuture_t *wrapper = cf__lfuture_wrap_new(loop);
  if (wrapper == NULL)
    return CF_ENOMEM;
  rc = cf__lfuture_add_callback(wrapper, wakeup_held,
                                cf_lfuture_retain(t->self), release_task);
  if (rc != 0)
    cf_lfuture_release(t->self);
  cf_future_t *pf = NULL;
  if (rc == 0)
    rc = cf_executor_submit(ex, fn, arg, arg_dtor, &pf);
  if (rc == 0 && (rc = cf__lfuture_wrap_start(wrapper, pf)) != 0)
    cf_future_cancel(pf); /* the loop is closing: the pool owns arg */
  if (rc == 0)
    rc = await_registered(t, wrapper, NULL);
  if (done != NULL && (rc == 0 || rc == CF_EFAILED))
    *done = cf_future_retain(pf);
  cf_future_release(pf);
  cf_lfuture_release(wrapper);
  return rc;
}
