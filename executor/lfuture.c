/*
 * Loop futures (asyncio.Future) and the futures built from them: wrap
 * (wrap_future over a pool future), gather and shield.
 *
 * A loop future lives on its loop's thread only: plain counters, no locks.
 * Its done callbacks never run inside the call that completes it: one
 * loop callback is scheduled that runs them in registration order, and a
 * callback added to a done future is scheduled on its own. The run that
 * schedules them (a cb_run, with its loop handle embedded) is allocated
 * with the first callback, where running out of memory can be reported:
 * completing a future never allocates, so it never loses a callback (and
 * never leaves a task waiting for ever on a future that is done).
 */
#include "loop_internal.h"

#include <stdlib.h>
#include <string.h>

cf_lfuture_t *cf__lfuture_new(cf_loop_t *loop) {
  cf_lfuture_t *f = cf__calloc(1, sizeof(*f));
  if (f != NULL) {
    f->loop = loop;
    f->refs = 1;
    f->next = loop->lfutures;
    if (f->next != NULL)
      f->next->prev = f;
    loop->lfutures = f;
  }
  return f;
}

int cf_lfuture_create(cf_loop_t *loop, cf_lfuture_t **out) {
  if (loop == NULL || out == NULL)
    return CF_EINVAL;
  cf_lfuture_t *f = cf__lfuture_new(loop);
  if (f == NULL)
    return CF_ENOMEM;
  *out = f;
  return 0;
}

cf_lfuture_t *cf_lfuture_retain(cf_lfuture_t *f) {
  if (f != NULL)
    f->refs++;
  return f;
}

static void drop_list(struct lf_callback *cb);

static void lfuture_free(cf_lfuture_t *f) {
  if (f->loop != NULL) {
    if (f->prev != NULL)
      f->prev->next = f->next;
    else
      f->loop->lfutures = f->next;
    if (f->next != NULL)
      f->next->prev = f->prev;
  }
  if (f->on_free != NULL)
    f->on_free(f);
  if (f->state == LF_FINISHED && f->code == 0 && f->value_dtor != NULL)
    f->value_dtor(f->value);
  free(f->message);
  drop_list(f->callbacks); /* only if it never completed */
  free(f->run);
  free(f);
}

void cf__lfuture_detach_all(cf_loop_t *loop) {
  /* First cut every future off (so that the drops below, which may free
   * some of them, never touch the loop's list), then drop the callbacks. */
  struct lf_callback *dropped = NULL;
  for (cf_lfuture_t *f = loop->lfutures; f != NULL; f = f->next) {
    f->loop = NULL;
    if (f->state == LF_PENDING)
      f->state = LF_CANCELLED; /* the loop is gone: its callbacks too */
    if (f->callbacks != NULL) {
      f->callbacks_tail->next = dropped;
      dropped = f->callbacks;
    }
    f->callbacks = f->callbacks_tail = NULL;
  }
  loop->lfutures = NULL;
  drop_list(dropped);
}

void cf_lfuture_release(cf_lfuture_t *f) {
  if (f == NULL || --f->refs > 0)
    return;
  if (f->state == LF_PENDING && f->task == NULL && f->loop != NULL) {
    f->refs = 1; /* nobody can complete it: end it so callbacks run */
    cf_lfuture_cancel(f);
    if (--f->refs > 0)
      return;
  }
  lfuture_free(f);
}

/* ---- done callbacks ---- */

struct cb_run {
  cf_handle_t handle; /* embedded: freed with the run */
  cf_lfuture_t *f;
  struct lf_callback *list;
};

static void free_list(struct lf_callback *cb) {
  while (cb != NULL) {
    struct lf_callback *next = cb->next;
    free(cb);
    cb = next;
  }
}

/* Callbacks that will never run: let each let go of what it holds. */
static void drop_list(struct lf_callback *cb) {
  while (cb != NULL) {
    struct lf_callback *next = cb->next;
    if (cb->drop != NULL)
      cb->drop(cb->data);
    free(cb);
    cb = next;
  }
}

static void run_callbacks(void *arg) {
  struct cb_run *run = arg;
  for (struct lf_callback *cb = run->list; cb != NULL; cb = cb->next)
    cb->fn(run->f, cb->data);
  free_list(run->list);
  cf_lfuture_release(run->f);
  free(run);
}

static void drop_callbacks(void *arg) {
  struct cb_run *run = arg;
  drop_list(run->list);
  cf_lfuture_release(run->f);
  free(run);
}

/* Schedule the callbacks in list (taken from f) to run soon, with run
 * (allocated beforehand); cannot fail. */
static void schedule_callbacks(cf_lfuture_t *f, struct cb_run *run,
                               struct lf_callback *list) {
  run->f = cf_lfuture_retain(f);
  run->list = list;
  cf__loop_soon_embedded(f->loop, &run->handle, run_callbacks, run,
                         drop_callbacks);
}

static void settle(cf_lfuture_t *f, enum lfuture_state state) {
  f->state = state;
  struct lf_callback *list = f->callbacks;
  struct cb_run *run = f->run; /* not NULL when list is not */
  f->callbacks = f->callbacks_tail = NULL;
  f->run = NULL;
  if (list != NULL && f->loop != NULL) {
    schedule_callbacks(f, run, list);
  } else { /* closed: they cannot run */
    drop_list(list);
    free(run);
  }
}

void cf__lfuture_finish(cf_lfuture_t *f, int code, void *value,
                        cf_free_fn dtor, char *message) {
  f->code = code;
  f->value = value;
  f->value_dtor = dtor;
  f->message = message;
  settle(f, LF_FINISHED);
}

void cf__lfuture_cancel_quietly(cf_lfuture_t *f) { settle(f, LF_CANCELLED); }

int cf__lfuture_add_callback(cf_lfuture_t *f, cf_lfuture_fn fn, void *data,
                             void (*drop)(void *)) {
  if (f->state != LF_PENDING && f->loop == NULL)
    return CF_ESHUTDOWN; /* closed: nothing runs any more */
  /* A done future schedules this callback on its own run; a pending one
   * needs a run for when it completes, made with its first callback. */
  struct cb_run *run = NULL;
  if (f->state != LF_PENDING || f->run == NULL) {
    run = cf__calloc(1, sizeof(*run));
    if (run == NULL)
      return CF_ENOMEM;
  }
  struct lf_callback *cb = cf__malloc(sizeof(*cb));
  if (cb == NULL) {
    free(run);
    return CF_ENOMEM;
  }
  cb->fn = fn;
  cb->data = data;
  cb->drop = drop;
  cb->next = NULL;
  if (f->state != LF_PENDING) {
    schedule_callbacks(f, run, cb);
    return 0;
  }
  if (run != NULL)
    f->run = run;
  if (f->callbacks_tail != NULL)
    f->callbacks_tail->next = cb;
  else
    f->callbacks = cb;
  f->callbacks_tail = cb;
  return 0;
}

int cf_lfuture_add_done_callback(cf_lfuture_t *f, cf_lfuture_fn fn,
                                 void *data) {
  if (f == NULL || fn == NULL)
    return CF_EINVAL;
  return cf__lfuture_add_callback(f, fn, data, NULL);
}

/* ---- state ---- */

int cf__lfuture_cancel_plain(cf_lfuture_t *f) {
  if (f->state != LF_PENDING)
    return 0;
  settle(f, LF_CANCELLED);
  return 1;
}

int cf_lfuture_cancel(cf_lfuture_t *f) {
  if (f == NULL)
    return CF_EINVAL;
  return f->cancel != NULL ? f->cancel(f) : cf__lfuture_cancel_plain(f);
}

int cf_lfuture_done(const cf_lfuture_t *f) {
  return f != NULL && f->state != LF_PENDING;
}

int cf_lfuture_cancelled(const cf_lfuture_t *f) {
  return f != NULL && f->state == LF_CANCELLED;
}

int cf__lfuture_outcome(const cf_lfuture_t *f, void **value) {
  if (f->state == LF_PENDING)
    return CF_EINVALID_STATE;
  if (f->state == LF_CANCELLED)
    return CF_ECANCELLED;
  if (f->code != 0)
    return CF_EFAILED;
  if (value != NULL)
    *value = f->value;
  return 0;
}

int cf_lfuture_result(const cf_lfuture_t *f, void **value) {
  return f == NULL ? CF_EINVAL : cf__lfuture_outcome(f, value);
}

int cf_lfuture_exception(const cf_lfuture_t *f, int *code,
                         const char **message) {
  if (f == NULL)
    return CF_EINVAL;
  int rc = cf__lfuture_outcome(f, NULL);
  if (rc == CF_ECANCELLED || rc == CF_EINVALID_STATE)
    return rc;
  if (code != NULL)
    *code = f->code;
  if (message != NULL)
    *message = f->message;
  return 0;
}

int cf_lfuture_set_result(cf_lfuture_t *f, void *value, cf_free_fn dtor) {
  if (f == NULL)
    return CF_EINVAL;
  if (f->state != LF_PENDING || f->task != NULL)
    return CF_EINVALID_STATE;
  cf__lfuture_finish(f, 0, value, dtor, NULL);
  return 0;
}

int cf_lfuture_set_exception(cf_lfuture_t *f, int code, const char *message) {
  if (f == NULL || code == 0)
    return CF_EINVAL;
  if (f->state != LF_PENDING || f->task != NULL)
    return CF_EINVALID_STATE;
  char *copy = NULL;
  if (message != NULL && (copy = cf__strdup(message)) == NULL)
    return CF_ENOMEM;
  cf__lfuture_finish(f, code, NULL, NULL, copy);
  return 0;
}

/* Copy src's outcome into dst (pending): the value stays src's. */
static void copy_outcome(cf_lfuture_t *dst, int code, void *value,
                         const char *message) {
  cf__lfuture_finish(dst, code, code == 0 ? value : NULL, NULL,
                     message != NULL ? cf__strdup(message) : NULL);
}

/* ---- wrap: a pool future seen from the loop ---- */

struct wrap {
  cf_future_t *source;
  cf_then_t *then; /* until the bridge delivered */
};

static void wrap_delivered(cf_future_t *pf, int status, void *data) {
  cf_lfuture_t *f = data;
  struct wrap *w = f->ext;
  w->then = NULL;
  if (f->state == LF_PENDING) {
    if (status == CF_ECANCELLED) {
      cf__lfuture_cancel_quietly(f);
    } else {
      int code = 0;
      const char *message = NULL;
      void *value = NULL;
      /* pf is done: neither call waits or fails. */
      if (status == 0 ? cf_future_result(pf, 0, &value) != 0
                      : cf_future_exception(pf, 0, &code, &message) != 0)
        code = CF_EINVALID_STATE;
      copy_outcome(f, code, value, message);
    }
  }
  cf_lfuture_release(f); /* the delivery's reference */
}

static int wrap_cancel(cf_lfuture_t *f) {
  if (!cf__lfuture_cancel_plain(f))
    return 0;
  struct wrap *w = f->ext;
  if (w->then != NULL && w->source != NULL) /* started, not delivered */
    cf_then_cancel(w->then); /* cancels the pool future if still queued */
  return 1;
}

static void wrap_free(cf_lfuture_t *f) {
  struct wrap *w = f->ext;
  if (w->source == NULL)
    free(w->then); /* made, never started */
  cf_future_release(w->source);
  free(w);
}

cf_lfuture_t *cf__lfuture_wrap_new(cf_loop_t *loop) {
  cf_lfuture_t *f = cf__lfuture_new(loop);
  struct wrap *w = cf__calloc(1, sizeof(*w));
  cf_then_t *t = cf__then_new(loop->bridge, wrap_delivered, f);
  if (f == NULL || w == NULL || t == NULL) {
    cf_lfuture_release(f);
    free(w);
    free(t);
    return NULL;
  }
  w->then = t;
  f->ext = w;
  f->cancel = wrap_cancel;
  f->on_free = wrap_free;
  return f;
}

int cf__lfuture_wrap_start(cf_lfuture_t *f, cf_future_t *pf) {
  struct wrap *w = f->ext;
  w->source = cf_future_retain(pf);
  cf_lfuture_retain(f); /* for the delivery */
  int rc = cf__then_start(w->then, pf);
  if (rc != 0) { /* closed or no memory: cf__then_start freed the delivery */
    w->then = NULL;
    f->refs--;
    cf__lfuture_cancel_quietly(f);
  }
  return rc;
}

int cf_lfuture_wrap(cf_loop_t *loop, cf_future_t *pf, cf_lfuture_t **out) {
  if (loop == NULL || pf == NULL || out == NULL)
    return CF_EINVAL;
  cf_lfuture_t *f = cf__lfuture_wrap_new(loop);
  if (f == NULL)
    return CF_ENOMEM;
  int rc = cf__lfuture_wrap_start(f, pf);
  if (rc != 0) {
    cf_lfuture_release(f);
    return rc;
  }
  *out = f;
  return 0;
}

cf_future_t *cf_lfuture_source(const cf_lfuture_t *f) {
  return f != NULL && f->on_free == wrap_free ? ((struct wrap *)f->ext)->source
                                              : NULL;
}

/* ---- shield ---- */

/* inner is done. outer keeps inner only from here on, for the value it
 * shares: a reference taken at creation would make a cycle with the
 * callback's reference to outer, and leak both if inner never ends. */
static void shield_copy(cf_lfuture_t *inner, void *data) {
  cf_lfuture_t *outer = data;
  if (outer->state == LF_PENDING) {
    if (inner->state == LF_CANCELLED) {
      cf__lfuture_cancel_quietly(outer);
    } else {
      outer->ext = cf_lfuture_retain(inner);
      copy_outcome(outer, inner->code, inner->value, inner->message);
    }
  }
  cf_lfuture_release(outer);
}

static void shield_free(cf_lfuture_t *f) { cf_lfuture_release(f->ext); }

static void release_outer(void *outer) { cf_lfuture_release(outer); }

int cf_shield(cf_lfuture_t *inner, cf_lfuture_t **out) {
  if (inner == NULL || out == NULL)
    return CF_EINVAL;
  cf_lfuture_t *outer = cf__lfuture_new(inner->loop);
  if (outer == NULL)
    return CF_ENOMEM;
  outer->on_free = shield_free; /* the value stays inner's */
  cf_lfuture_retain(outer);
  int rc = cf__lfuture_add_callback(inner, shield_copy, outer, release_outer);
  if (rc != 0) {
    outer->refs = 1;
    cf__lfuture_cancel_quietly(outer);
    cf_lfuture_release(outer);
    return rc;
  }
  *out = outer;
  return 0;
}

/* ---- gather ---- */

/* The outer future does not hold its children: each child's done callback
 * holds the outer, and a child not yet reported done is alive (pending
 * ones are held by someone; done ones by their scheduled callbacks). */
struct gather_child {
  cf_lfuture_t *outer;
  cf_lfuture_t *child;
  bool done;
};

struct gather {
  struct gather_child *children;
  size_t n, left;
  bool cancel_requested;
};

static void gather_child_done(cf_lfuture_t *child, void *data) {
  struct gather_child *c = data;
  cf_lfuture_t *outer = c->outer;
  struct gather *g = outer->ext;
  c->done = true;
  g->left--;
  if (outer->state == LF_PENDING) {
    if (child->state == LF_CANCELLED)
      cf__lfuture_cancel_quietly(outer);
    else if (child->code != 0)
      copy_outcome(outer, child->code, NULL, child->message);
    else if (g->left == 0 && g->cancel_requested)
      cf__lfuture_cancel_quietly(outer);
    else if (g->left == 0)
      cf__lfuture_finish(outer, 0, NULL, NULL, NULL);
  }
  cf_lfuture_release(outer);
}

/* The loop closed before the child's callback ran. Mark the child as
 * reported all the same: the scheduled run that held it is being dropped
 * too, so it may be freed, and a gather_cancel (at the outer's last
 * release) must not touch it any more. */
static void gather_child_drop(void *data) {
  struct gather_child *c = data;
  c->done = true;
  cf_lfuture_release(c->outer);
}

/* asyncio's _GatheringFuture.cancel: cancel the children not done yet;
 * the outer ends cancelled once they have ended. */
static int gather_cancel(cf_lfuture_t *outer) {
  struct gather *g = outer->ext;
  if (outer->state != LF_PENDING)
    return 0;
  int cancelled = 0;
  for (size_t i = 0; i < g->n; i++)
    if (!g->children[i].done && cf_lfuture_cancel(g->children[i].child) == 1)
      cancelled = 1;
  if (cancelled)
    g->cancel_requested = true;
  return cancelled;
}

static void gather_free(cf_lfuture_t *outer) {
  struct gather *g = outer->ext;
  free(g->children);
  free(g);
}

int cf_gather(cf_loop_t *loop, cf_lfuture_t *const *fs, size_t n,
              cf_lfuture_t **out) {
  if (loop == NULL || out == NULL || (fs == NULL && n > 0))
    return CF_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (fs[i] == NULL || fs[i]->loop != loop)
      return CF_EINVAL;
  cf_lfuture_t *outer = cf__lfuture_new(loop);
  struct gather *g = cf__calloc(1, sizeof(*g));
  struct gather_child *children = n ? cf__calloc(n, sizeof(*children)) : NULL;
  if (outer == NULL || g == NULL || (n > 0 && children == NULL)) {
    if (outer != NULL)
      cf_lfuture_release(outer);
    free(g);
    free(children);
    return CF_ENOMEM;
  }
  g->children = children;
  outer->ext = g;
  outer->cancel = gather_cancel;
  outer->on_free = gather_free;
  for (size_t i = 0; i < n; i++) {
    struct gather_child *c = &g->children[i];
    c->outer = outer;
    c->child = fs[i];
    int rc = cf__lfuture_add_callback(fs[i], gather_child_done, c,
                                      gather_child_drop);
    if (rc != 0) { /* end it without touching the children */
      outer->cancel = NULL;
      for (size_t j = i; j < n; j++)
        g->children[j].done = true;
      cf_lfuture_cancel(outer);
      cf_lfuture_release(outer);
      return rc;
    }
    g->n++;
    g->left++;
    cf_lfuture_retain(outer);
  }
  if (n == 0)
    cf__lfuture_finish(outer, 0, NULL, NULL, NULL);
  *out = outer;
  return 0;
}
