/*
 * Private declarations of the loop layer (loop.c, lfuture.c, task.c).
 * Everything here runs on the loop thread only.
 */
#ifndef CF_LOOP_INTERNAL_H
#define CF_LOOP_INTERNAL_H

#include "cfutures/loop.h"
#include "coro.h"
#include "internal.h"

struct cf_handle {
  cf_loop_fn fn;
  void *arg;
  void (*drop)(void *arg); /* runs instead of fn if never run; may be NULL */
  double when;             /* timers: loop time due */
  uint64_t seq;            /* timers: FIFO among equal times */
  size_t heap_index;       /* timers: position in the heap */
  cf_loop_t *loop;         /* timers: to count cancelled ones */
  bool cancelled;
  bool embedded; /* part of a larger object: the loop never frees it */
  struct cf_handle *next; /* in the ready queue */
};

enum lfuture_state { LF_PENDING, LF_CANCELLED, LF_FINISHED };

struct lf_callback {
  cf_lfuture_fn fn;
  void *data;
  void (*drop)(void *data); /* if it will never run (loop closed); or NULL */
  struct lf_callback *next;
};

struct task;
struct cb_run;

struct cf_lfuture {
  cf_loop_t *loop;
  uint32_t refs;
  enum lfuture_state state;
  int code; /* failure code when FINISHED with a failure */
  void *value;
  cf_free_fn value_dtor;
  char *message;
  struct lf_callback *callbacks, *callbacks_tail;
  struct cb_run *run; /* schedules the callbacks: made with the first one */
  /* cancel() for its kind (task, wrap, gather); NULL: a plain future's. */
  int (*cancel)(cf_lfuture_t *f);
  void (*on_free)(cf_lfuture_t *f); /* kind-specific clean-up */
  void *ext;          /* kind-specific data */
  struct task *task;  /* non-NULL for tasks */
  cf_lfuture_t *prev, *next; /* the loop's live futures, for close */
};

struct task {
  cf_lfuture_t *self;
  cf_coro_fn fn;
  void *arg;
  cf__coro_t coro;
  void *stack_map; /* the mapping, guard page included; NULL before start */
  cf_lfuture_t *fut_waiter;
  void *ret_value;
  cf_free_fn ret_dtor;
  char *message; /* cf_task_fail's */
  int rc;
  int num_cancels_requested;
  bool must_cancel;
  bool started;
  bool finished; /* its body returned */
  bool step_scheduled;
  cf_handle_t step; /* embedded: scheduling a step cannot fail */
  struct task *prev, *next; /* the loop's live tasks */
};

struct fd_watch {
  cf_loop_fn read_fn, write_fn;
  void *read_arg, *write_arg;
  uint32_t events; /* registered with epoll */
};

struct cf_loop {
  int epfd;
  cf_bridge_t *bridge;
  cf_handle_t *ready_head, *ready_tail;
  cf_handle_t **heap;
  size_t heap_len, heap_cap;
  size_t heap_cancelled; /* cancelled timers still in the heap */
  uint64_t timer_seq;
  struct fd_watch *fds;
  size_t nfds;
  void *poll_set; /* poll back end: nfds struct pollfd, grown with fds */
  bool running;
  bool stopping;
  cf_lfuture_t *until; /* what run_until_complete waits for */
  _Atomic bool closing; /* read by call_soon_threadsafe in any thread */
  cf_executor_t *executor;
  bool own_executor;
  size_t stack_size;
  void **stack_pool;
  size_t stack_pool_len, stack_pool_cap;
  cf__coro_t main;
  struct task *tasks;
  size_t ntasks;
  cf_lfuture_t *lfutures; /* every live loop future */
  bool dropping; /* close: queued threadsafe calls are dropped, not run */
};

/* Schedule an internal callback; drop(arg) runs if it never runs. */
int cf__loop_soon(cf_loop_t *loop, cf_loop_fn fn, void *arg,
                  void (*drop)(void *), cf_handle_t **h);

/* The same with a handle embedded in a larger object (it must not be
 * queued already): cannot fail. The loop never touches h once fn or drop
 * has been called, so they may free the object that holds h. */
void cf__loop_soon_embedded(cf_loop_t *loop, cf_handle_t *h, cf_loop_fn fn,
                            void *arg, void (*drop)(void *));
int cf__loop_at(cf_loop_t *loop, double when, cf_loop_fn fn, void *arg,
                void (*drop)(void *), cf_handle_t **h);

/* A pending loop future of this loop (one reference), or NULL. */
cf_lfuture_t *cf__lfuture_new(cf_loop_t *loop);

/* Complete f (must be pending): FINISHED with value or failure, or
 * CANCELLED without the kind's cancel. Schedules its callbacks. */
void cf__lfuture_finish(cf_lfuture_t *f, int code, void *value,
                        cf_free_fn dtor, char *message);
void cf__lfuture_cancel_quietly(cf_lfuture_t *f);

/* add_done_callback for the library's own callbacks: drop(data) runs
 * instead of fn if the loop closes first. On failure neither runs. */
int cf__lfuture_add_callback(cf_lfuture_t *f, cf_lfuture_fn fn, void *data,
                             void (*drop)(void *));

/* cf_lfuture_wrap in two steps, so that run_in_executor allocates before
 * it submits: a wrapper (NULL: out of memory), then started on pf
 * (CF_ESHUTDOWN if the loop's bridge closed: the wrapper is cancelled). */
cf_lfuture_t *cf__lfuture_wrap_new(cf_loop_t *loop);
int cf__lfuture_wrap_start(cf_lfuture_t *f, cf_future_t *pf);

/* A plain future's cancel: 1 if it was pending. */
int cf__lfuture_cancel_plain(cf_lfuture_t *f);

/* Close: end every live future of the loop and cut it off the loop, so
 * a later release frees it without touching the loop. */
void cf__lfuture_detach_all(cf_loop_t *loop);

/* The outcome of a done future as an await returns it. */
int cf__lfuture_outcome(const cf_lfuture_t *f, void **value);

/* Stacks for tasks, pooled per loop. */
void *cf__stack_get(cf_loop_t *loop);
void cf__stack_put(cf_loop_t *loop, void *map);
void cf__stack_pool_free(cf_loop_t *loop);
size_t cf__stack_guard(void);

/* Task internals used by cf_lfuture_cancel and cf_loop_close. */
int cf__task_cancel(struct task *t);

/* The loop's executor, created on first use. */
int cf__loop_executor(cf_loop_t *loop, cf_executor_t **out);

extern _Thread_local struct task *cf__current_task;

#endif /* CF_LOOP_INTERNAL_H */
