/*
 * cfutures: Python's concurrent.futures for C.
 *
 * A thread pool (cf_executor) runs submitted jobs and hands back futures
 * (cf_future): cancel, result and exception with timeouts, done callbacks,
 * wait, as_completed and map, with the semantics of CPython 3.13's
 * ThreadPoolExecutor and the fixes listed in docs/semantics.md.
 *
 * Conventions
 * - Every function that can fail returns an int: 0 (or a documented
 *   non-negative value) on success, a negative CF_E* code on failure.
 *   cf_strerror() names the code. errno is never used to report errors.
 * - Timeouts are relative, in seconds, as a double. CF_FOREVER waits for
 *   ever; 0 or a negative value polls (never blocks); NaN is CF_EINVAL.
 *   Each call turns its timeout into one absolute CLOCK_MONOTONIC deadline
 *   at entry, and a wait interrupted by a signal resumes with that deadline.
 * - Every handle has an owner. Functions that hand out a cf_future_t *
 *   through an out parameter give the caller one reference, to be dropped
 *   with cf_future_release(). Pointers passed to callbacks are borrowed.
 * - Every function may be called from any thread, on the same object from
 *   any number of threads at once, unless its comment says otherwise.
 * - User callbacks (jobs, done callbacks, destructors, initializers) run
 *   with no library lock held; they may call any function of the library.
 */
#ifndef CFUTURES_H
#define CFUTURES_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define CF_EXTERN __attribute__((visibility("default")))
#define CF_NODISCARD __attribute__((warn_unused_result))
#else
#define CF_EXTERN
#define CF_NODISCARD
#endif

#define CF_VERSION_MAJOR 0
#define CF_VERSION_MINOR 1
#define CF_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH". */
CF_EXTERN const char *cf_version(void);

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

/* XX(name, value, message): the one list of error codes. */
#define CF_ERRNO_MAP(XX)                                                     \
  XX(ECANCELLED, -1, "the future was cancelled")                             \
  XX(ETIMEDOUT, -2, "timed out")                                             \
  XX(EINVALID_STATE, -3, "invalid state for this operation")                 \
  XX(EBROKEN, -4,                                                            \
     "a thread initializer failed, the thread pool is not usable anymore")   \
  XX(ESHUTDOWN, -5, "cannot schedule new futures after shutdown")            \
  XX(EINVAL, -6, "invalid argument")                                         \
  XX(ENOMEM, -7, "out of memory")                                            \
  XX(EDEADLK, -8, "operation would deadlock")                                \
  XX(EFAILED, -9, "the job failed")                                          \
  XX(EOF, -10, "no more items")                                              \
  XX(EAGAIN, -11, "could not start a worker thread")                         \
  XX(EFORKED, -12, "object belongs to the parent process of a fork")        \
  XX(ESYSTEM, -13, "a system resource could not be obtained")

typedef enum cf_errno {
#define CF__ERR_ENUM(name, value, msg) CF_##name = (value),
  CF_ERRNO_MAP(CF__ERR_ENUM)
#undef CF__ERR_ENUM
} cf_errno_t;

/* A static string describing err: a CF_E* code, 0 ("success") or anything
 * else ("unknown error"). Never NULL. */
CF_EXTERN const char *cf_strerror(int err);

/* The symbolic name of err ("CF_ETIMEDOUT"), "0" for 0, or "CF_UNKNOWN".
 * Never NULL. */
CF_EXTERN const char *cf_err_name(int err);

/* ------------------------------------------------------------------ */
/* Futures                                                            */
/* ------------------------------------------------------------------ */

/* Wait without a time limit. */
#define CF_FOREVER ((double)INFINITY)

typedef struct cf_future cf_future_t;

/* Destructor for a result value or a job argument; runs exactly once. */
typedef void (*cf_free_fn)(void *ptr);

/* A done callback. f is borrowed for the duration of the call. */
typedef void (*cf_done_fn)(cf_future_t *f, void *data);

/* The states of SEMANTICS.md 1.1. CANCELLED_AND_NOTIFIED is CANCELLED after a
 * worker (or set_running_or_notify_cancel) has seen it; both are "cancelled". */
typedef enum cf_state {
  CF_STATE_PENDING = 0,
  CF_STATE_RUNNING = 1,
  CF_STATE_CANCELLED = 2,
  CF_STATE_CANCELLED_AND_NOTIFIED = 3,
  CF_STATE_FINISHED = 4
} cf_state_t;

/* Create a standalone future in state PENDING (a promise that a producer
 * completes with cf_future_set_result / cf_future_set_exception). *out gets
 * one reference. Errors: CF_EINVAL (out NULL), CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_future_create(cf_future_t **out);

/* Take one more reference to f. Returns f (NULL when f is NULL). */
CF_EXTERN cf_future_t *cf_future_retain(cf_future_t *f);

/* Drop one reference; the last one frees f and runs the result destructor,
 * in the calling thread. If f is not done then (nobody can complete it any
 * more) it is cancelled first, so its done callbacks still run once.
 * NULL is a no-op. */
CF_EXTERN void cf_future_release(cf_future_t *f);

/* Cancel: succeeds only from PENDING (and for an already cancelled future).
 * Returns 1 if f is (now) cancelled, 0 if it is running or finished,
 * CF_EINVAL for NULL. A successful first cancel wakes result() waiters and
 * wait/as_completed at once, then runs the done callbacks in the calling
 * thread before returning. A queued job that was cancelled never runs. On a
 * running job it still returns 0, but records a request that the job may
 * poll with cf_job_cancel_requested (cooperative cancellation). */
CF_EXTERN int cf_future_cancel(cf_future_t *f);

/* State queries: 1 or 0 (0 for NULL). done() is true when cancelled or
 * finished. */
CF_EXTERN int cf_future_cancelled(const cf_future_t *f);
CF_EXTERN int cf_future_running(const cf_future_t *f);
CF_EXTERN int cf_future_done(const cf_future_t *f);

/* The current state; CF_EINVAL for NULL. */
CF_EXTERN int cf_future_state(const cf_future_t *f);

/* The name of a state as Python's repr shows it: "pending", "running",
 * "cancelled" (both cancelled states), "finished"; "invalid" otherwise. */
CF_EXTERN const char *cf_state_name(int state);

/* Write a repr of f into buf (always NUL-terminated when size > 0), e.g.
 * "<cf_future at 0x55d0 state=finished returned>" or "... state=finished
 * raised 42>". Returns the length that the full text needs (like snprintf),
 * or CF_EINVAL when f is NULL or buf is NULL with size > 0. */
CF_EXTERN int cf_future_repr(const cf_future_t *f, char *buf, size_t size);

/* Wait up to timeout for f to be done, then report its outcome:
 *   0              finished with a value; *value (if value != NULL) gets it,
 *                  owned by the future (valid while you hold a reference);
 *   CF_EFAILED     the job failed: cf_future_exception() gives code, message;
 *   CF_ECANCELLED  cancelled;  CF_ETIMEDOUT  not done in time;
 *   CF_EINVAL      f NULL or timeout NaN;
 *   CF_EDEADLK     called from inside the job that completes f.
 * A worker of f's own pool that waits without a time limit (CF_FOREVER)
 * for f while f is still queued runs f's job itself instead of waiting
 * for a free worker, so jobs (and done callbacks) may wait for jobs of
 * their own pool without deadlocking it. Must not be called while holding
 * a lock that the job or the code completing f takes. */
CF_EXTERN CF_NODISCARD int cf_future_result(cf_future_t *f, double timeout,
                                            void **value);

/* Wait like cf_future_result, then report the failure: returns 0 when f
 * finished, setting *code to the job's failure code (0 if it returned a
 * value) and *message to its message (NULL if none; owned by the future).
 * code and message may be NULL. Other returns: CF_ECANCELLED, CF_ETIMEDOUT,
 * CF_EINVAL, CF_EDEADLK as for cf_future_result. */
CF_EXTERN CF_NODISCARD int cf_future_exception(cf_future_t *f, double timeout,
                                               int *code,
                                               const char **message);

/* Register fn(f, data) to run exactly once when f is done, in registration
 * order. If f is not done it runs later in the thread that completes or
 * cancels f; if f is already done it runs now, in the caller, before this
 * returns. Errors: CF_EINVAL (f or fn NULL), CF_ENOMEM (fn is not called). */
CF_EXTERN CF_NODISCARD int cf_future_add_done_callback(cf_future_t *f,
                                                       cf_done_fn fn,
                                                       void *data);

/* For producers: PENDING -> RUNNING and return 1; on a CANCELLED future mark
 * it notified and return 0 (no callbacks run); otherwise (running, notified,
 * finished) return CF_EINVALID_STATE. CF_EINVAL for NULL. */
CF_EXTERN int cf_future_set_running_or_notify_cancel(cf_future_t *f);

/* Complete f with value (owned by f from now on: destructor, if any, runs
 * once when f's last reference goes). Legal from PENDING and RUNNING; wakes
 * waiters, then runs the done callbacks in the calling thread. Errors:
 * CF_EINVAL (f NULL), CF_EINVALID_STATE (f cancelled or finished: the value
 * stays the caller's and dtor is not run). */
CF_EXTERN int cf_future_set_result(cf_future_t *f, void *value,
                                   cf_free_fn dtor);

/* Complete f with a failure: code (any non-zero int chosen by the
 * producer) and an optional message (copied). Same states, wake-ups and
 * callbacks as cf_future_set_result. Errors: CF_EINVAL (f NULL or code 0),
 * CF_EINVALID_STATE, CF_ENOMEM (copying the message; f stays unchanged). */
CF_EXTERN int cf_future_set_exception(cf_future_t *f, int code,
                                      const char *message);

/* ------------------------------------------------------------------ */
/* Jobs                                                               */
/* ------------------------------------------------------------------ */

/* The context of one running job, valid only inside its job function. */
typedef struct cf_job cf_job_t;

/* A job: runs on a worker thread with no library lock held. Return 0 for
 * success (with the value given to cf_job_return, NULL by default) or a
 * non-zero failure code of your choice (cf_job_fail also sets a message).
 * The job's future then finishes with that value or failure. */
typedef int (*cf_job_fn)(void *arg, cf_job_t *job);

/* Set the value the job returns; dtor (may be NULL) runs once when the
 * future's last reference goes, or at once if the future cannot take the
 * value (it was completed by someone else, or the job fails). Calling it
 * again replaces the value, destroying the previous one. */
CF_EXTERN void cf_job_return(cf_job_t *job, void *value, cf_free_fn dtor);

/* Record a failure message (printf-style; fmt NULL clears it) and return code,
 * so a job can end with `return cf_job_fail(job, 42, "bad %s", x);`. A job
 * that returns 0 succeeds whatever it recorded; the message is dropped. */
CF_EXTERN int cf_job_fail(cf_job_t *job, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The future this job completes (borrowed). */
CF_EXTERN cf_future_t *cf_job_future(cf_job_t *job);

/* 1 if someone tried to cancel this job's future while it ran, else 0.
 * A job that honours it returns CF_ECANCELLED: its future then ends
 * cancelled instead of failed. */
CF_EXTERN int cf_job_cancel_requested(cf_job_t *job);

/* ------------------------------------------------------------------ */
/* Executor                                                           */
/* ------------------------------------------------------------------ */

typedef struct cf_executor cf_executor_t;

/* A per-thread initializer: runs once at the start of each worker thread.
 * A non-zero return breaks the pool: queued futures fail with CF_EBROKEN
 * (cancelled ones stay cancelled) and later submits return CF_EBROKEN. */
typedef int (*cf_init_fn)(void *arg);

typedef struct cf_executor_options {
  int max_workers;                /* > 0; default min(32, usable CPUs + 4) */
  const char *thread_name_prefix; /* NULL or "": "cfpool-N" (N per process) */
  cf_init_fn initializer;         /* NULL: none */
  void *initializer_arg;          /* passed to initializer */
  int idle_spin_us;               /* 0..1000000; default 2000: see below */
} cf_executor_options_t;

/* Fill opts with the defaults. idle_spin_us bounds how long an idle worker
 * keeps watching the queue before it sleeps, trading CPU for wake-up
 * latency: the spin adapts to the gaps between jobs (1.5 times the last
 * gap, if shorter than this bound and ended by a single job; 40 us after a
 * longer one), so jobs that come every millisecond start within
 * microseconds while one worker spins through the gaps, and an idle pool
 * costs no CPU. 0: never spin. "Usable CPUs" are those the calling thread
 * may run on (its affinity, as Python 3.13's os.process_cpu_count()); a
 * pool created on a thread limited to one never spins. */
CF_EXTERN void cf_executor_options_init(cf_executor_options_t *opts);

/* Create a pool; no thread starts before the first submit. opts NULL means
 * the defaults. Workers are named "<prefix>_<n>", the prefix cut so that
 * the name fits the 15 characters pthread allows. Errors: CF_EINVAL (out
 * NULL, max_workers <= 0, idle_spin_us outside 0..1000000), CF_ENOMEM.
 * The prefix is copied. Create pools after fork(): in a child process, a
 * pool of the parent answers every call with CF_EFORKED (and destroy
 * cannot free it). */
CF_EXTERN CF_NODISCARD int cf_executor_create(cf_executor_t **out,
                                              const cf_executor_options_t *opts);

/* Queue fn(arg) and, if out is not NULL, give the caller a reference to its
 * future. arg_dtor (may be NULL) runs once after the job ran or when the job
 * is dropped without running (cancelled, broken pool). On failure the job
 * never runs, *out is untouched and the caller still owns arg. Errors:
 * CF_EINVAL (ex or fn NULL), CF_EBROKEN, CF_ESHUTDOWN, CF_ENOMEM,
 * CF_EAGAIN (the pool has no thread and none could be started), CF_EFORKED.
 * If thread starts fail until the pool has none, jobs already queued by
 * other submits fail with code CF_EAGAIN instead of waiting for ever. */
CF_EXTERN CF_NODISCARD int cf_executor_submit(cf_executor_t *ex, cf_job_fn fn,
                                              void *arg, cf_free_fn arg_dtor,
                                              cf_future_t **out);

/* Stop accepting work. With cancel_futures, queued jobs that have not
 * started are cancelled (their callbacks run in this thread). Queued jobs
 * still run otherwise. With wait, return after every worker has exited,
 * i.e. after all queued work is done. Idempotent. Errors: CF_EINVAL (ex
 * NULL), CF_EDEADLK (wait requested from one of ex's own workers; nothing
 * is changed), CF_EFORKED. */
CF_EXTERN int cf_executor_shutdown(cf_executor_t *ex, bool wait,
                                   bool cancel_futures);

/* shutdown(wait = true) then free the pool. NULL is a no-op returning 0.
 * From one of ex's own workers: CF_EDEADLK and nothing happens; in a
 * forked child: CF_EFORKED. Futures the caller holds stay valid. */
CF_EXTERN int cf_executor_destroy(cf_executor_t *ex);

/* The number of worker threads started so far (never more than
 * max_workers); CF_EINVAL for NULL. */
CF_EXTERN int cf_executor_thread_count(const cf_executor_t *ex);

/* ------------------------------------------------------------------ */
/* map                                                                */
/* ------------------------------------------------------------------ */

typedef struct cf_map cf_map_t;

/* The input of map: store the next argument in *arg and return 1, return 0
 * at the end, or a negative code to stop with that error. Called on the
 * thread that calls cf_executor_map / cf_map_next. */
typedef int (*cf_map_input_fn)(void *source, void **arg);

/* Executor.map: submit fn(arg) for each argument that next_arg yields.
 * buffersize 0 submits everything now (the input must end); buffersize n
 * submits n now and one more at each cf_map_next before it waits, so at
 * most n + 1 jobs are outstanding and an endless input works. The timeout
 * counts from this call. The map owns each argument it pulled: arg_dtor
 * runs once for it, even when its submit fails. A map is used by one
 * thread at a time. Errors: CF_EINVAL, CF_ENOMEM, or a submit or input
 * error met while filling the first window (then the jobs submitted so far
 * are cancelled and nothing stays queued). */
CF_EXTERN CF_NODISCARD int cf_executor_map(cf_executor_t *ex, cf_job_fn fn,
                                           cf_map_input_fn next_arg,
                                           void *source, cf_free_fn arg_dtor,
                                           double timeout, size_t buffersize,
                                           cf_map_t **out);

/* Wait for the next result, in input order. Returns 0 and sets *f to the
 * done future of that position (borrowed: valid until the next call or
 * cf_map_destroy; read it with cf_future_result(*f, 0, ...)); every position
 * yields its own value or failure and iteration goes on. CF_ETIMEDOUT: the
 * deadline passed; everything not started is cancelled and later calls
 * return CF_EOF. CF_EOF at the end. A submit or input error is returned at
 * the position where it happened, then CF_EOF. CF_EINVAL for NULL. */
CF_EXTERN CF_NODISCARD int cf_map_next(cf_map_t *m, cf_future_t **f);

/* Stop iterating: cancel every job not yet started, drop all references.
 * NULL is a no-op. */
CF_EXTERN void cf_map_destroy(cf_map_t *m);

/* ------------------------------------------------------------------ */
/* wait and as_completed                                              */
/* ------------------------------------------------------------------ */

typedef enum cf_return_when {
  CF_FIRST_COMPLETED = 1,
  CF_FIRST_EXCEPTION = 2,
  CF_ALL_COMPLETED = 3
} cf_return_when_t;

/* concurrent.futures.wait: block until return_when holds or timeout passes
 * (a timeout is not an error), then partition the n futures of fs,
 * duplicates collapsed, into done[0..*ndone) and not_done[0..*nnot_done).
 * done and not_done are caller arrays of n entries each, their pointers
 * borrowed from fs; ndone and nnot_done get the counts. Any of the four may
 * be NULL to skip it. A cancelled future
 * counts as done at once. FIRST_EXCEPTION stops at a job failure (not a
 * cancellation), or when all are done. Returns 0, or CF_EINVAL (fs NULL with n > 0, a NULL entry,
 * bad return_when, NaN timeout), CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_wait(cf_future_t *const *fs, size_t n,
                                   double timeout, int return_when,
                                   cf_future_t **done, size_t *ndone,
                                   cf_future_t **not_done, size_t *nnot_done);

typedef struct cf_as_completed cf_as_completed_t;

/* concurrent.futures.as_completed as an iterator over n futures
 * (duplicates collapse): futures already done come first, in input order,
 * then the others in completion order. The timeout counts from this call.
 * The iterator holds a reference to each future until it is destroyed.
 * Errors: CF_EINVAL (out NULL, fs NULL with n > 0, a NULL entry, NaN
 * timeout), CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_as_completed_create(cf_future_t *const *fs,
                                                  size_t n, double timeout,
                                                  cf_as_completed_t **out);

/* The next done future (borrowed from the iterator) in *f: returns 0, or
 * CF_EOF when every future was yielded, or CF_ETIMEDOUT when the deadline
 * passed with futures left (cf_as_completed_remaining() says how many; a
 * later call may still yield futures that finish). CF_EINVAL for NULL.
 * Not for concurrent use on the same iterator. */
CF_EXTERN CF_NODISCARD int cf_as_completed_next(cf_as_completed_t *it,
                                                cf_future_t **f);

/* How many futures have not been yielded yet; CF_EINVAL for NULL. */
CF_EXTERN int cf_as_completed_remaining(const cf_as_completed_t *it);

/* Free the iterator and its references. NULL is a no-op. */
CF_EXTERN void cf_as_completed_destroy(cf_as_completed_t *it);

/* ------------------------------------------------------------------ */
/* Bridge: pool futures delivered to an event loop                    */
/* ------------------------------------------------------------------ */

/* A bridge belongs to one event loop thread, "the loop thread": the thread
 * that calls cf_bridge_dispatch. Completions from any thread are queued on
 * it and run there, inside dispatch, with no library lock held. Wake-ups
 * are coalesced: one fd per bridge, signalled only when the queue goes from
 * empty to non-empty. Functions marked "loop thread" must be called on it. */
typedef struct cf_bridge cf_bridge_t;

/* A pending delivery made by cf_bridge_then. It stays valid until its
 * callback has returned. */
typedef struct cf_then cf_then_t;

/* A delivery callback, run on the loop thread inside cf_bridge_dispatch
 * (or cf_bridge_destroy). status: 0 (f finished with a value), CF_EFAILED
 * (f's job failed: see cf_future_exception) or CF_ECANCELLED (f was
 * cancelled, or the delivery was: f may then still be running). f is
 * borrowed for the call. */
typedef void (*cf_then_fn)(cf_future_t *f, int status, void *data);

/* A function queued with cf_bridge_call_threadsafe. */
typedef void (*cf_call_fn)(void *arg);

/* A wake-up function for loops that bring their own wake-up object; it is
 * called from any thread (the loop thread included) when the bridge's
 * queue becomes non-empty, and must make the loop thread call
 * cf_bridge_dispatch soon, never dispatch inline. */
typedef void (*cf_wakeup_fn)(void *data);

/* Create a bridge with its own fd (eventfd on Linux, a pipe elsewhere or
 * when configured --with-bridge-wakeup=pipe; close-on-exec, non-blocking):
 * poll cf_bridge_fd() for readability and call cf_bridge_dispatch when it
 * is readable. Errors: CF_EINVAL (out NULL), CF_ENOMEM, CF_ESYSTEM (no fd
 * could be created). */
CF_EXTERN CF_NODISCARD int cf_bridge_create(cf_bridge_t **out);

/* Create a bridge without an fd that calls wakeup(data) instead. data_dtor
 * (may be NULL) runs once on data when the bridge is finally freed, which
 * may be after cf_bridge_destroy if completions were in flight. Errors:
 * CF_EINVAL (out or wakeup NULL), CF_ENOMEM. */
CF_EXTERN CF_NODISCARD int cf_bridge_create_with_wakeup(cf_bridge_t **out,
                                                        cf_wakeup_fn wakeup,
                                                        void *data,
                                                        cf_free_fn data_dtor);

/* The fd to poll for readability; CF_EINVAL for NULL or a bridge made
 * with a wake-up function. The bridge owns the fd: do not close it. */
CF_EXTERN int cf_bridge_fd(const cf_bridge_t *b);

/* Loop thread: run every completion and call queued so far, in the order
 * they arrived, and return how many ran (0 if none: a spurious wake-up is
 * harmless); what arrives while they run may run too, after them. Errors:
 * CF_EINVAL (NULL), CF_EFORKED (in a forked child: the fd is not drained
 * then, so stop polling it).
 * Callbacks may call any library function, including dispatch (a nested
 * call goes on with what the outer one has not run yet, then what arrived
 * since; each call counts what it ran itself) and cf_bridge_destroy. */
CF_EXTERN int cf_bridge_dispatch(cf_bridge_t *b);

/* Loop thread, optional, right before the loop blocks waiting for events:
 * with deliveries of this bridge in flight and none ready, spin (at most
 * the budget of cf_bridge_set_spin_us, adapted) until one is signalled, so
 * that a job finishing soon costs no wake-up of a sleeping loop thread.
 * Returns 1 if a delivery is signalled (the fd is readable or the wake-up
 * function was called: poll without blocking), 0 if the loop may block;
 * CF_EINVAL (NULL), CF_EFORKED. No spin if the thread that created b may
 * run on one CPU only (its affinity). The built-in loop and the libuv and
 * GLib adapters call it. */
CF_EXTERN int cf_bridge_prepare(cf_bridge_t *b);

/* Loop thread: the ceiling of cf_bridge_prepare's spin, in microseconds,
 * 0..1000000 (default 50; 0: never spin). Errors: CF_EINVAL (b NULL, us out
 * of range). */
CF_EXTERN int cf_bridge_set_spin_us(cf_bridge_t *b, int us);

/* asyncio.wrap_future: when f is done, run fn(f, status, data) on the loop
 * thread inside dispatch, exactly once. The bridge holds its own reference
 * to f until then. If t is not NULL it gets a handle for
 * cf_then_cancel. Any thread may call it. Errors: CF_EINVAL (b, f or fn
 * NULL), CF_ENOMEM, CF_ESHUTDOWN (the bridge was destroyed), CF_EFORKED. */
CF_EXTERN CF_NODISCARD int cf_bridge_then(cf_bridge_t *b, cf_future_t *f,
                                          cf_then_fn fn, void *data,
                                          cf_then_t **t);

/* Loop thread, before t's callback ran: cancel the delivery. The pool
 * future is cancelled if it is still queued (its job never runs); a running
 * job finishes and its result is dropped when the last reference goes. The
 * callback then runs once, at the next dispatch, with CF_ECANCELLED, also
 * when f's completion was already queued (that result is dropped, as
 * asyncio drops a result arriving for a cancelled future). A running job
 * also sees cf_job_cancel_requested. Returns 1, or 0 if the delivery was
 * already cancelled or its callback has started; CF_EINVAL for NULL. */
CF_EXTERN int cf_then_cancel(cf_then_t *t);

/* loop.run_in_executor: submit fn(arg) to ex and deliver its future to cb
 * on the loop thread, as cf_bridge_then does. Errors: CF_EINVAL, CF_ENOMEM,
 * CF_ESHUTDOWN (bridge destroyed), CF_EFORKED and those of
 * cf_executor_submit: the job never runs and the caller keeps arg. Only a
 * destroy racing with this call from another thread can fail it after the
 * submit (CF_ESHUTDOWN: the job is cancelled; the pool owns arg). */
CF_EXTERN CF_NODISCARD int cf_bridge_run_in_executor(
    cf_bridge_t *b, cf_executor_t *ex, cf_job_fn fn, void *arg,
    cf_free_fn arg_dtor, cf_then_fn cb, void *data, cf_then_t **t);

/* loop.call_soon_threadsafe: from any thread, run fn(arg) on the loop
 * thread inside dispatch. Errors: CF_EINVAL, CF_ENOMEM, CF_ESHUTDOWN (the
 * bridge is being destroyed; fn will not run), CF_EFORKED. */
CF_EXTERN CF_NODISCARD int cf_bridge_call_threadsafe(cf_bridge_t *b,
                                                     cf_call_fn fn, void *arg);

/* Loop thread: close the bridge. Every delivery whose callback has not run
 * is cancelled (pool futures still queued never run) and its callback runs
 * now with CF_ECANCELLED; calls queued with call_threadsafe run now.
 * Completions still in flight are dropped when they arrive (the results'
 * destructors run when their last reference goes); the fd is closed only
 * after the last of them, so no worker ever writes to a closed or reused
 * fd. Once destroy has returned, no thread may use b again. NULL is a
 * no-op. */
CF_EXTERN void cf_bridge_destroy(cf_bridge_t *b);

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_H */
