/*
 * cfutures/loop.h: a built-in asyncio-style event loop with coroutine tasks.
 *
 * A cf_loop runs on one thread, "the loop thread": callbacks (call_soon,
 * timers, fd readers and writers), loop futures (asyncio.Future) and tasks
 * (asyncio.Task): stackful coroutines that suspend at await calls. Pool
 * futures arrive through the loop's own cf_bridge. Everything here is for
 * the loop thread only, except cf_loop_call_soon_threadsafe.
 *
 * Cancellation is asyncio's: cancelling a task is a request, delivered once
 * as CF_ECANCELLED returned by the await call where the task is suspended
 * (or by its next await). The task may clean up, await again, and then
 * either end cancelled (return CF_ECANCELLED) or suppress the cancellation
 * (return 0 or another code). Waiting for pool work never pre-empts a
 * running job: on cancel or timeout the pool future is cancelled if still
 * queued; a running job finishes and its result is dropped through its
 * destructor, unless the job polls cf_job_cancel_requested() and stops.
 */
#ifndef CFUTURES_LOOP_H
#define CFUTURES_LOOP_H

#include <cfutures.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_loop cf_loop_t;

/* A loop future (asyncio.Future). A task is a loop future too. */
typedef struct cf_lfuture cf_lfuture_t;

/* A scheduled callback or timer: valid until it ran, or until the loop
 * discards it after a cancel (do not touch it after the next iteration). */
typedef struct cf_handle cf_handle_t;

typedef void (*cf_loop_fn)(void *arg);

/* A loop future's done callback, always run by the loop (never inside the
 * call that completed the future). f is borrowed for the call. */
typedef void (*cf_lfuture_fn)(cf_lfuture_t *f, void *data);

/* A task body. Runs on its own stack on the loop thread; return 0 (with
 * the value set by cf_task_return, NULL by default), CF_ECANCELLED to end
 * cancelled, or any other non-zero failure code. */
typedef int (*cf_coro_fn)(cf_lfuture_t *self, void *arg);

typedef struct cf_loop_options {
  size_t stack_size;       /* per task; default 256 KiB (virtual: only the
                              pages a task touches take memory) */
  cf_executor_t *executor; /* for cf_run_in_executor(NULL, ...); NULL: the
                              loop creates one on first use ("asyncio_N") */
} cf_loop_options_t;

/* Fill opts with the defaults. */
CF_EXTERN void cf_loop_options_init(cf_loop_options_t *opts);

/* ------------------------------------------------------------------ */
/* The loop                                                           */
/* ------------------------------------------------------------------ */

/* Create a loop (epoll, or poll where epoll is missing). opts NULL: the
 * defaults. Errors: CF_EINVAL, CF_ENOMEM, CF_ESYSTEM. */
CF_EXTERN CF_NODISCARD int cf_loop_create(cf_loop_t **out,
                                          const cf_loop_options_t *opts);

/* Close and free the loop: every task not done is cancelled and the loop
 * runs until they have all ended (as asyncio.run does on exit); callbacks
 * still scheduled (call_soon_threadsafe ones too) are dropped; the executor
 * the loop created is shut down and destroyed. Loop futures still
 * referenced end cancelled without running their callbacks; afterwards
 * only queries and cf_lfuture_release may be used on them. Errors:
 * CF_EINVALID_STATE (called while the loop runs: nothing happens). NULL is
 * a no-op returning 0. */
CF_EXTERN int cf_loop_close(cf_loop_t *loop);

/* The loop's clock: CLOCK_MONOTONIC in seconds. */
CF_EXTERN double cf_loop_time(const cf_loop_t *loop);

/* Schedule fn(arg) to run soon, after the callbacks already scheduled
 * (FIFO). h (may be NULL) gets a handle for cf_handle_cancel. Errors:
 * CF_EINVAL, CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_loop_call_soon(cf_loop_t *loop, cf_loop_fn fn,
                                             void *arg, cf_handle_t **h);

/* Schedule fn(arg) after delay seconds (<= 0: as soon as possible, after
 * call_soon callbacks) or at the loop time `when`. Callbacks due at the
 * same time run in the order they were scheduled. Errors: CF_EINVAL (NaN),
 * CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_loop_call_later(cf_loop_t *loop, double delay,
                                              cf_loop_fn fn, void *arg,
                                              cf_handle_t **h);
CF_EXTERN CF_NODISCARD int cf_loop_call_at(cf_loop_t *loop, double when,
                                           cf_loop_fn fn, void *arg,
                                           cf_handle_t **h);

/* Any thread: schedule fn(arg) on the loop thread and wake the loop.
 * Errors: CF_EINVAL, CF_ENOMEM, CF_ESHUTDOWN (the loop is closing). */
CF_EXTERN CF_NODISCARD int cf_loop_call_soon_threadsafe(cf_loop_t *loop,
                                                        cf_loop_fn fn,
                                                        void *arg);

/* Cancel a callback that has not run: 1, or 0 if it already ran or was
 * cancelled (h must still be valid: see cf_handle_t). CF_EINVAL for NULL. */
CF_EXTERN int cf_handle_cancel(cf_handle_t *h);

/* Call fn(arg) on the loop thread whenever fd is readable (writable). One
 * reader and one writer per fd; adding again replaces it. Errors:
 * CF_EINVAL, CF_ENOMEM, CF_ESYSTEM (the fd cannot be watched). remove
 * returns 1 if something was removed, else 0. */
CF_EXTERN CF_NODISCARD int cf_loop_add_reader(cf_loop_t *loop, int fd,
                                              cf_loop_fn fn, void *arg);
CF_EXTERN int cf_loop_remove_reader(cf_loop_t *loop, int fd);
CF_EXTERN CF_NODISCARD int cf_loop_add_writer(cf_loop_t *loop, int fd,
                                              cf_loop_fn fn, void *arg);
CF_EXTERN int cf_loop_remove_writer(cf_loop_t *loop, int fd);

/* Run until cf_loop_stop is called (the current iteration completes
 * first; a stop before the run lets one iteration through). Errors: CF_EINVALID_STATE (already running, or called from a
 * task). */
CF_EXTERN int cf_loop_run_forever(cf_loop_t *loop);

/* Make run_forever / run_until_complete return after this iteration. */
CF_EXTERN int cf_loop_stop(cf_loop_t *loop);

/* Run until f is done, then report its outcome as cf_lfuture_result does
 * (0, CF_EFAILED, CF_ECANCELLED). Errors: CF_EINVAL, CF_ENOMEM,
 * CF_EINVALID_STATE (already running, f belongs to another loop, or a
 * callback stopped the loop before f was done). */
CF_EXTERN int cf_loop_run_until_complete(cf_loop_t *loop, cf_lfuture_t *f);

/* For nesting inside another event loop: an fd that is readable when this
 * loop has I/O or completions to handle, the time in seconds until it next
 * needs to run (0: now; CF_FOREVER: only when the fd is readable), and one
 * iteration that blocks at most timeout seconds (0: do not block). */
CF_EXTERN int cf_loop_fd(const cf_loop_t *loop);
CF_EXTERN double cf_loop_timeout(const cf_loop_t *loop);
CF_EXTERN int cf_loop_run_once(cf_loop_t *loop, double timeout);

/* ------------------------------------------------------------------ */
/* Loop futures                                                       */
/* ------------------------------------------------------------------ */

/* A pending loop future; *out gets one reference. Errors: CF_EINVAL,
 * CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_lfuture_create(cf_loop_t *loop,
                                             cf_lfuture_t **out);

/* Reference counting as for cf_future_t. Releasing the last reference of
 * a pending future cancels it first. */
CF_EXTERN cf_lfuture_t *cf_lfuture_retain(cf_lfuture_t *f);
CF_EXTERN void cf_lfuture_release(cf_lfuture_t *f);

/* asyncio.Future.cancel / Task.cancel: 1 if f was pending (a future becomes
 * cancelled and its callbacks are scheduled; a task gets a cancellation
 * request: see above), 0 if f is done; CF_EINVAL for NULL. */
CF_EXTERN int cf_lfuture_cancel(cf_lfuture_t *f);

/* 1 or 0 (0 for NULL). A task is cancelled only once it has ended so. */
CF_EXTERN int cf_lfuture_done(const cf_lfuture_t *f);
CF_EXTERN int cf_lfuture_cancelled(const cf_lfuture_t *f);

/* The outcome of a done future: 0 with *value (owned by f; may be NULL),
 * CF_EFAILED (cf_lfuture_exception gives the code and message),
 * CF_ECANCELLED, CF_EINVALID_STATE (not done), CF_EINVAL. Never blocks. */
CF_EXTERN int cf_lfuture_result(const cf_lfuture_t *f, void **value);
CF_EXTERN int cf_lfuture_exception(const cf_lfuture_t *f, int *code,
                                   const char **message);

/* Complete f: the value (destructor runs once at the last release) or a
 * failure (code non-zero, message copied). Done callbacks are scheduled
 * with call_soon. Errors: CF_EINVAL, CF_EINVALID_STATE (done: the value
 * stays the caller's), CF_ENOMEM. Not for tasks (CF_EINVALID_STATE). */
CF_EXTERN int cf_lfuture_set_result(cf_lfuture_t *f, void *value,
                                    cf_free_fn dtor);
CF_EXTERN int cf_lfuture_set_exception(cf_lfuture_t *f, int code,
                                       const char *message);

/* Schedule fn(f, data) with call_soon once f is done (at once if it is
 * done already), exactly once. Errors: CF_EINVAL, CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_lfuture_add_done_callback(cf_lfuture_t *f,
                                                        cf_lfuture_fn fn,
                                                        void *data);

/* asyncio.wrap_future: a loop future that copies the pool future's outcome
 * (its value stays owned by pf, to which the loop future holds a
 * reference). Cancelling it cancels pf if pf is still queued; a late
 * result is dropped. Errors: CF_EINVAL, CF_ENOMEM, CF_ESHUTDOWN (the loop
 * is closing). */
CF_EXTERN CF_NODISCARD int cf_lfuture_wrap(cf_loop_t *loop, cf_future_t *pf,
                                           cf_lfuture_t **out);

/* The pool future a wrapped loop future follows (borrowed), else NULL. */
CF_EXTERN cf_future_t *cf_lfuture_source(const cf_lfuture_t *f);

/* ------------------------------------------------------------------ */
/* Tasks                                                              */
/* ------------------------------------------------------------------ */

/* asyncio.create_task: a task running fn(self, arg), scheduled to take its
 * first step soon. *out (may be NULL) gets a reference; the loop keeps its
 * own until the task ends. A task cancelled before its first step never
 * runs its body. Errors: CF_EINVAL, CF_ENOMEM (stack or memory),
 * CF_ESHUTDOWN (cf_loop_close has started). */
CF_EXTERN CF_NODISCARD int cf_task_create(cf_loop_t *loop, cf_coro_fn fn,
                                          void *arg, cf_lfuture_t **out);

/* Set the value the task ends with (dtor as for cf_lfuture_set_result);
 * a second call replaces (and destroys) the first. self: the running task. */
CF_EXTERN void cf_task_return(cf_lfuture_t *self, void *value,
                              cf_free_fn dtor);

/* Record a failure message for the running task (printf-style; fmt NULL
 * clears it) and return code, so a body can end with
 * `return cf_task_fail(self, 42, "bad %s", x);`. The message is dropped if
 * the task does not end failed. */
CF_EXTERN int cf_task_fail(cf_lfuture_t *self, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Task.cancelling(): pending cancellation requests; Task.uncancel():
 * decrement it and return the new count. CF_EINVAL if t is not a task. */
CF_EXTERN int cf_task_cancelling(const cf_lfuture_t *t);
CF_EXTERN int cf_task_uncancel(cf_lfuture_t *t);

/* The task running on this thread (borrowed), or NULL. */
CF_EXTERN cf_lfuture_t *cf_current_task(void);

/* ------------------------------------------------------------------ */
/* Awaiting: only inside a task (else CF_EINVALID_STATE)              */
/* ------------------------------------------------------------------ */

/* Suspend until f is done, then return its outcome: 0 (*value, owned by
 * f), CF_EFAILED, or CF_ECANCELLED: f was cancelled, or this task was
 * (then f, if still pending, was cancelled too, as asyncio does). A
 * cancellation requested while the task ran goes to f likewise, and the
 * outcome of f is returned (a task f may suppress it); if f is already
 * done, that request is delivered here as CF_ECANCELLED. */
CF_EXTERN int cf_await(cf_lfuture_t *f, void **value);

/* Await a pool future (wrapped on the fly); value owned by pf. On this
 * task's cancellation pf is cancelled if still queued. */
CF_EXTERN int cf_await_future(cf_future_t *pf, void **value);

/* asyncio.sleep: 0, or CF_ECANCELLED. delay <= 0 yields once. NaN:
 * CF_EINVAL. */
CF_EXTERN int cf_sleep(double delay);

/* asyncio.wait_for (3.12+): await f with a timeout. The result if f is done
 * in time; on timeout f is cancelled and awaited (its cleanup runs) and
 * CF_ETIMEDOUT is returned, unless f swallowed the cancellation and
 * returned a value (returned as 0) or failed otherwise (that failure). A
 * cancellation of this task is never turned into a timeout. timeout <= 0
 * on a done f returns its result. */
CF_EXTERN int cf_wait_for(cf_lfuture_t *f, double timeout, void **value);

/* asyncio.timeout as a scope around any awaits of the current task:
 * enter arms a deadline that cancels the task; exit takes the code the
 * scope's body ended with and returns it, or CF_ETIMEDOUT when the
 * deadline hit and the body ended with that cancellation. Scopes nest;
 * exit them in reverse order. Errors: CF_EINVAL, CF_ENOMEM,
 * CF_EINVALID_STATE (outside a task). */
typedef struct cf_timeout cf_timeout_t;
CF_EXTERN CF_NODISCARD int cf_timeout_enter(double delay, cf_timeout_t **scope);
CF_EXTERN int cf_timeout_exit(cf_timeout_t *scope, int rc);

/* asyncio.gather: a future done when all of fs are done; it fails with the
 * first failure or cancellation among them (the others go on). Cancelling
 * it cancels the children not done yet (0 if there are none) and it ends
 * cancelled once they have ended. It does not hold the children: results
 * are read from them. Errors: CF_EINVAL, CF_ENOMEM. May be called outside
 * a task. */
CF_EXTERN CF_NODISCARD int cf_gather(cf_loop_t *loop, cf_lfuture_t *const *fs,
                                     size_t n, cf_lfuture_t **out);

/* asyncio.shield: a future that follows f but whose cancellation does not
 * cancel f. Errors: CF_EINVAL, CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_shield(cf_lfuture_t *f, cf_lfuture_t **out);

/* loop.run_in_executor + await: run fn(arg) on ex (NULL: the loop's
 * executor, made on first use) and wait for it. Returns as cf_await; when
 * it returns 0 or CF_EFAILED, *done (may be NULL) gets a reference to the
 * pool future to read its value or failure (else it is untouched). Errors
 * also CF_ENOMEM and those of cf_executor_submit, all before the submit:
 * the caller keeps arg. Once submitted, the pool owns arg (CF_ECANCELLED:
 * this task was cancelled, or the loop is closing). As in Python, a submit
 * may start a pool thread, on the loop thread. */
CF_EXTERN int cf_run_in_executor(cf_executor_t *ex, cf_job_fn fn, void *arg,
                                 cf_free_fn arg_dtor, cf_future_t **done);

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_LOOP_H */
