/*
 * asyncio_tour: the asyncio samples of "From concurrent.futures to
 * asyncio", ported to the cfutures loop (include/cfutures/loop.h).
 *
 * Each scenario prints what happens, with the seconds since the start, and
 * checks that the outcome is the one asyncio gives (each was checked
 * against CPython 3.11 running the equivalent asyncio code sketched here). The
 * program exits 0 only if all five are, so it doubles as a smoke test.
 *
 * 1. Cancel a task before it runs.
 *        task = ensure_future(asyncio.sleep(5)); task.cancel()
 *        loop.run_until_complete(task)          # CancelledError
 *    cancel() is a request: it returns True, cancelled() stays False until
 *    the task has ended; a task cancelled before its first step never runs
 *    its body; run_until_complete reports the cancellation.
 *
 * 2. Foo.sleeper: a task awaits foo.task = ensure_future(sleep(60)) and
 *    catches CancelledError to raise NotImplementedError.
 *    a) Another task calls foo.task.cancel() after a while: the CancelledError
 *       surfaces at the sleeper's await; the handler raises, so the sleeper
 *       ends FAILED with NotImplementedError (here a failure code), not
 *       cancelled, and sleeper.cancelling() is 0 (nobody cancelled it).
 *    b) The other task cancels the sleeper itself: the request goes to the
 *       task it awaits, and the sleeper still sees CancelledError at its
 *       await and handles it the same way (contrary to the article, a
 *       cancelled asyncio task always gets that chance); cancelling() is 1.
 *
 * 3. loop.run_until_complete(asyncio.wait_for(asyncio.sleep(60), 5)):
 *    TimeoutError, not before 5 s; the inner (here a task running sleep(60))
 *    is cancelled and awaited first, so it has ended cancelled.
 *
 * 4. Fetching pages, each with its own timeout (aiohttp.Timeout in
 *    fetch_page, asyncio.timeout since 3.11):
 *        async def fetch_page(url, timeout):
 *            async with asyncio.timeout(timeout):
 *                status, body = await loop.run_in_executor(None, get, url)
 *                assert status == 200
 *                return body
 *    Each fetch times out on its own (TimeoutError), fails on its own
 *    (connection closed, AssertionError on a 404) or returns. A blocking
 *    job cannot be pre-empted: in asyncio the timed-out thread goes on
 *    until its socket returns, and asyncio.run() waits for it at exit. Here
 *    the job polls cf_job_cancel_requested() and stops early instead. The
 *    HTTP/1.0 server runs on the same loop (cf_loop_add_reader), on
 *    127.0.0.1 and an ephemeral port.
 *
 * 5. The worker that catches the cancellation, cleans up with an await and
 *    re-raises:
 *        try: await asyncio.sleep(60)
 *        except asyncio.CancelledError: raise
 *        finally: await asyncio.sleep(2)
 *    The cancellation is delivered once, so the cleanup sleep runs to its
 *    end; cancel() returns True and cancelled() stays False until the
 *    worker has re-raised; then awaiting it gives CancelledError.
 *
 * Usage: asyncio_tour [--fast]. --fast divides every delay (sleeps,
 * timeouts, the server's delays) by 100.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, poll, sockets */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cfutures.h"
#include "cfutures/loop.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored anyway */
#endif

/* Failure codes of our own (task and job failure codes are ours to pick;
 * positive ones below 1000 are errno values). */
#define ERR_NOT_IMPLEMENTED 1001 /* Python's NotImplementedError */
#define ERR_ASSERTION 1002       /* Python's AssertionError */

static double t_start;
static double scale = 1.0; /* 0.01 with --fast */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double elapsed(void) { return now() - t_start; }

/* Print one line, stamped with the seconds since the start. Pool threads
 * print too: one printf per line keeps lines whole. */
static void say(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void say(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  printf("[%6.3f] %s\n", elapsed(), line);
  fflush(stdout);
}

/* The name of a return or failure code: CF_E*, ours, or an errno. */
static const char *code_name(int code) {
  switch (code) {
  case 0:
    return "0";
  case ERR_NOT_IMPLEMENTED:
    return "ERR_NOT_IMPLEMENTED";
  case ERR_ASSERTION:
    return "ERR_ASSERTION";
  default:
    return code < 0 ? cf_err_name(code) : strerror(code);
  }
}

/* Compare an outcome with the expected one; print the mismatch. */
static bool expect(const char *what, int got, int want) {
  if (got == want)
    return true;
  printf("  !! %s: got %d (%s), expected %d (%s)\n", what, got, code_name(got),
         want, code_name(want));
  return false;
}

/* A task that sleeps *arg seconds: asyncio.sleep(n) as a task. */
static int sleep_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  return cf_sleep(*(const double *)arg);
}

/* ------------------------------------------------------------------ */
/* 1. task = ensure_future(sleep(5)); task.cancel(); run_until_complete */
/* ------------------------------------------------------------------ */

static int sleep5_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  *(bool *)arg = true; /* never happens: cancelled before its first step */
  say("the task's body runs (it should not)");
  return cf_sleep(5 * scale);
}

static bool scenario1(cf_loop_t *loop) {
  bool body_ran = false, ok = true;
  cf_lfuture_t *task;
  int rc = cf_task_create(loop, sleep5_task, &body_ran, &task);
  if (!expect("cf_task_create", rc, 0))
    return false;
  say("task = ensure_future(sleep(%g))", 5 * scale);
  int cancelled = cf_lfuture_cancel(task);
  say("task.cancel() -> %d, task.cancelled() -> %d (a request, not yet an "
      "outcome)",
      cancelled, cf_lfuture_cancelled(task));
  ok &= expect("task.cancel()", cancelled, 1);
  ok &=
      expect("cancelled() right after cancel()", cf_lfuture_cancelled(task), 0);
  rc = cf_loop_run_until_complete(loop, task);
  say("run_until_complete(task) -> %s (asyncio: CancelledError); "
      "cancelled() -> %d; the body ran: %s",
      code_name(rc), cf_lfuture_cancelled(task), body_ran ? "yes" : "no");
  ok &= expect("run_until_complete", rc, CF_ECANCELLED);
  ok &= expect("cancelled() at the end", cf_lfuture_cancelled(task), 1);
  ok &= expect("body ran", body_ran, false);
  cf_lfuture_release(task);
  return ok;
}

/* ------------------------------------------------------------------ */
/* 2. Foo.sleeper                                                     */
/* ------------------------------------------------------------------ */

struct foo {
  cf_loop_t *loop;
  double seconds;     /* of the sleep */
  cf_lfuture_t *task; /* Foo.task: the sleep the sleeper awaits */
  cf_lfuture_t *sleeper;
  bool cancel_sleeper; /* b): cancel the sleeper, not foo.task */
  int await_rc;        /* what the sleeper's await returned */
  int cancel_rc;       /* what the canceller's cancel() returned */
};

static int foo_sleeper(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct foo *foo = arg;
  int rc = cf_task_create(foo->loop, sleep_task, &foo->seconds, &foo->task);
  if (rc != 0)
    return rc;
  say("sleeper: await foo.task (sleep(%g))", foo->seconds);
  foo->await_rc = cf_await(foo->task, NULL);
  if (foo->await_rc == CF_ECANCELLED) {
    say("sleeper: caught the cancellation (%s); raising NotImplementedError",
        code_name(foo->await_rc));
    return ERR_NOT_IMPLEMENTED;
  }
  return foo->await_rc;
}

static int foo_canceller(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct foo *foo = arg;
  int rc = cf_sleep(1 * scale);
  if (rc != 0)
    return rc;
  if (foo->cancel_sleeper) {
    foo->cancel_rc = cf_lfuture_cancel(foo->sleeper);
    say("canceller: sleeper.cancel() -> %d", foo->cancel_rc);
  } else {
    foo->cancel_rc = cf_lfuture_cancel(foo->task);
    say("canceller: foo.task.cancel() -> %d", foo->cancel_rc);
  }
  return 0;
}

static bool scenario2_variant(cf_loop_t *loop, bool cancel_sleeper) {
  struct foo foo = {loop, 60 * scale, NULL, NULL, cancel_sleeper, 1, 0};
  cf_lfuture_t *canceller = NULL;
  bool ok = true;
  int rc = cf_task_create(loop, foo_sleeper, &foo, &foo.sleeper);
  if (!expect("cf_task_create(sleeper)", rc, 0))
    return false;
  rc = cf_task_create(loop, foo_canceller, &foo, &canceller);
  if (!expect("cf_task_create(canceller)", rc, 0)) {
    cf_lfuture_cancel(foo.sleeper);
    (void)cf_loop_run_until_complete(loop, foo.sleeper);
    cf_lfuture_release(foo.task);
    cf_lfuture_release(foo.sleeper);
    return false;
  }
  rc = cf_loop_run_until_complete(loop, foo.sleeper);
  int code = 0;
  if (rc == CF_EFAILED && cf_lfuture_exception(foo.sleeper, &code, NULL) != 0)
    code = 0;
  say("run_until_complete(sleeper) -> %s, code %d (%s); sleeper.cancelled() "
      "-> %d, sleeper.cancelling() -> %d, foo.task.cancelled() -> %d",
      code_name(rc), code, code_name(code), cf_lfuture_cancelled(foo.sleeper),
      cf_task_cancelling(foo.sleeper), cf_lfuture_cancelled(foo.task));
  ok &= expect("run_until_complete(sleeper)", rc, CF_EFAILED);
  ok &= expect("the sleeper's failure code", code, ERR_NOT_IMPLEMENTED);
  ok &= expect("the sleeper's await", foo.await_rc, CF_ECANCELLED);
  ok &= expect("sleeper.cancelled()", cf_lfuture_cancelled(foo.sleeper), 0);
  ok &= expect("sleeper.cancelling()", cf_task_cancelling(foo.sleeper),
               cancel_sleeper ? 1 : 0);
  ok &= expect("foo.task.cancelled()", cf_lfuture_cancelled(foo.task), 1);
  ok &= expect("run_until_complete(canceller)",
               cf_loop_run_until_complete(loop, canceller), 0);
  ok &= expect("cancel()", foo.cancel_rc, 1);
  cf_lfuture_release(canceller);
  cf_lfuture_release(foo.task);
  cf_lfuture_release(foo.sleeper);
  return ok;
}

static bool scenario2(cf_loop_t *loop) {
  say("a) another task cancels foo.task, the sleep the sleeper awaits");
  bool ok = scenario2_variant(loop, false);
  say("b) another task cancels the sleeper itself");
  ok &= scenario2_variant(loop, true);
  return ok;
}

/* ------------------------------------------------------------------ */
/* 3. run_until_complete(wait_for(sleep(60), 5))                      */
/* ------------------------------------------------------------------ */

struct wait_for_demo {
  cf_loop_t *loop;
  double inner_seconds, timeout;
  cf_lfuture_t *inner;
  double waited; /* loop time spent in cf_wait_for */
};

static int wait_for_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct wait_for_demo *w = arg;
  int rc = cf_task_create(w->loop, sleep_task, &w->inner_seconds, &w->inner);
  if (rc != 0)
    return rc;
  say("wait_for(sleep(%g), %g)", w->inner_seconds, w->timeout);
  double begin = cf_loop_time(w->loop);
  rc = cf_wait_for(w->inner, w->timeout, NULL);
  w->waited = cf_loop_time(w->loop) - begin;
  say("wait_for -> %s after %.3f s; inner.done() -> %d, inner.cancelled() "
      "-> %d",
      code_name(rc), w->waited, cf_lfuture_done(w->inner),
      cf_lfuture_cancelled(w->inner));
  return rc; /* CF_ETIMEDOUT: this task fails with it, as wait_for raises */
}

static bool scenario3(cf_loop_t *loop) {
  struct wait_for_demo w = {loop, 60 * scale, 5 * scale, NULL, 0};
  cf_lfuture_t *task;
  bool ok = true;
  int rc = cf_task_create(loop, wait_for_task, &w, &task);
  if (!expect("cf_task_create", rc, 0))
    return false;
  rc = cf_loop_run_until_complete(loop, task);
  int code = 0;
  if (rc == CF_EFAILED && cf_lfuture_exception(task, &code, NULL) != 0)
    code = 0;
  say("run_until_complete -> %s with code %s (asyncio: TimeoutError)",
      code_name(rc), code_name(code));
  ok &= expect("run_until_complete", rc, CF_EFAILED);
  ok &= expect("its failure code", code, CF_ETIMEDOUT);
  ok &= expect("inner.cancelled()", cf_lfuture_cancelled(w.inner), 1);
  if (!(w.waited >= w.timeout)) {
    printf("  !! wait_for returned %.6f s after it began, before its timeout "
           "%g s\n",
           w.waited, w.timeout);
    ok = false;
  }
  cf_lfuture_release(w.inner);
  cf_lfuture_release(task);
  return ok;
}

/* ------------------------------------------------------------------ */
/* 4. fetch_page with per-request timeouts                            */
/* ------------------------------------------------------------------ */

/* --- the HTTP/1.0 server, on the loop --- */

struct route {
  const char *path;
  double delay; /* seconds before the response (unscaled) */
  int status;   /* 0: close without a response */
  size_t size;  /* of the body */
};

static const struct route routes[] = {
    {"/fast", 0.1, 200, 512},
    {"/slow", 2.0, 200, 2048},
    {"/slower", 4.0, 200, 4096},
    {"/broken", 0.5, 0, 0},
};
static const struct route not_found = {"(other)", 0.0, 404, 10};

#define MAX_CONNS 16

enum conn_state { C_FREE, C_READING, C_WAITING, C_WRITING };

struct server;

struct conn {
  struct server *srv;
  enum conn_state state;
  int fd;
  char req[1024];
  size_t req_len;
  const struct route *route;
  cf_handle_t *timer; /* the pending response, while C_WAITING */
  char *out;
  size_t out_len, out_off;
};

struct server {
  cf_loop_t *loop;
  int lfd;
  unsigned short port;
  struct conn conns[MAX_CONNS];
};

static int set_nonblock_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -1;
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
    return -1;
  return 0;
}

/* EAGAIN or EWOULDBLOCK (the same value on Linux). */
static bool would_block(int err) {
#if EAGAIN != EWOULDBLOCK
  if (err == EWOULDBLOCK)
    return true;
#endif
  return err == EAGAIN;
}

static void conn_close(struct conn *c) {
  if (c->state == C_FREE)
    return;
  cf_loop_remove_reader(c->srv->loop, c->fd);
  cf_loop_remove_writer(c->srv->loop, c->fd);
  if (c->timer != NULL)
    cf_handle_cancel(c->timer);
  c->timer = NULL;
  close(c->fd);
  free(c->out);
  c->out = NULL;
  c->fd = -1;
  c->state = C_FREE;
}

static void on_conn_writable(void *arg);

/* Write what is left of the response; close when all of it went. */
static void conn_flush(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n =
        send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && would_block(errno)) {
      if (cf_loop_add_writer(c->srv->loop, c->fd, on_conn_writable, c) != 0) {
        say("server: cannot watch a connection for writing; closing it");
        conn_close(c);
      }
      return;
    }
    if (n < 0) {
      say("server: %s: send: %s", c->route->path, strerror(errno));
      conn_close(c);
      return;
    }
    c->out_off += (size_t)n;
  }
  conn_close(c);
}

static void on_conn_writable(void *arg) { conn_flush(arg); }

static void respond(void *arg) {
  struct conn *c = arg;
  c->timer = NULL; /* the handle is dead once it ran */
  const struct route *r = c->route;
  if (r->status == 0) {
    say("server: %s: closing without a response", r->path);
    conn_close(c);
    return;
  }
  const char *reason = r->status == 200 ? "OK" : "Not Found";
  char head[160];
  int hl = snprintf(head, sizeof(head),
                    "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    r->status, reason, r->size);
  c->out = malloc((size_t)hl + r->size);
  if (c->out == NULL) {
    conn_close(c);
    return;
  }
  memcpy(c->out, head, (size_t)hl);
  static const char line[] = "hello from the asyncio tour\n";
  static const char nf[] = "not found\n";
  for (size_t i = 0; i < r->size; i++)
    c->out[(size_t)hl + i] = r->status == 200 ? line[i % (sizeof(line) - 1)]
                                              : nf[i % (sizeof(nf) - 1)];
  c->out_len = (size_t)hl + r->size;
  c->out_off = 0;
  c->state = C_WRITING;
  cf_loop_remove_reader(c->srv->loop, c->fd);
  say("server: %s: %d, %zu bytes", r == &not_found ? c->req : r->path,
      r->status, r->size);
  conn_flush(c);
}

static void on_conn_readable(void *arg) {
  struct conn *c = arg;
  if (c->state == C_WAITING) {
    /* Nothing more is expected: EOF means the client gave up. */
    char junk[256];
    ssize_t n = recv(c->fd, junk, sizeof(junk), 0);
    if (n > 0 || (n < 0 && (errno == EINTR || would_block(errno))))
      return;
    say("server: %s: the client hung up before the response", c->route->path);
    conn_close(c);
    return;
  }
  ssize_t n =
      recv(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, 0);
  if (n < 0 && (errno == EINTR || would_block(errno)))
    return;
  if (n <= 0) {
    conn_close(c);
    return;
  }
  c->req_len += (size_t)n;
  c->req[c->req_len] = '\0';
  if (strstr(c->req, "\r\n\r\n") == NULL) {
    if (c->req_len == sizeof(c->req) - 1)
      conn_close(c); /* too long for this toy */
    return;
  }
  char method[8], path[128];
  if (sscanf(c->req, "%7s %127s", method, path) != 2 ||
      strcmp(method, "GET") != 0) {
    conn_close(c);
    return;
  }
  c->route = &not_found;
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
    if (strcmp(path, routes[i].path) == 0)
      c->route = &routes[i];
  /* Keep the path of an unknown route for the log line. */
  snprintf(c->req, sizeof(c->req), "%s", path);
  say("server: GET %s: answering in %.3f s", path, c->route->delay * scale);
  c->state = C_WAITING;
  if (cf_loop_call_later(c->srv->loop, c->route->delay * scale, respond, c,
                         &c->timer) != 0)
    conn_close(c);
}

static void on_accept(void *arg) {
  struct server *srv = arg;
  for (;;) {
    int fd = accept(srv->lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return; /* EAGAIN: all accepted; anything else: try next time */
    }
    struct conn *c = NULL;
    for (int i = 0; i < MAX_CONNS && c == NULL; i++)
      if (srv->conns[i].state == C_FREE)
        c = &srv->conns[i];
    if (c == NULL || set_nonblock_cloexec(fd) != 0) {
      close(fd);
      continue;
    }
    memset(c, 0, sizeof(*c));
    c->srv = srv;
    c->fd = fd;
    c->state = C_READING;
    if (cf_loop_add_reader(srv->loop, fd, on_conn_readable, c) != 0)
      conn_close(c);
  }
}

static int server_start(struct server *srv, cf_loop_t *loop) {
  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (srv->lfd < 0) {
    perror("socket");
    return -1;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0; /* an ephemeral port */
  socklen_t len = sizeof(sa);
  if (set_nonblock_cloexec(srv->lfd) != 0 ||
      bind(srv->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(srv->lfd, MAX_CONNS) != 0 ||
      getsockname(srv->lfd, (struct sockaddr *)&sa, &len) != 0) {
    perror("server");
    close(srv->lfd);
    return -1;
  }
  srv->port = ntohs(sa.sin_port);
  int rc = cf_loop_add_reader(loop, srv->lfd, on_accept, srv);
  if (rc != 0) {
    printf("  !! cf_loop_add_reader: %s\n", code_name(rc));
    close(srv->lfd);
    return -1;
  }
  return 0;
}

/* Stop listening and close what is still open; returns how much was. */
static int server_stop(struct server *srv) {
  int still_open = 0;
  cf_loop_remove_reader(srv->loop, srv->lfd);
  close(srv->lfd);
  for (int i = 0; i < MAX_CONNS; i++) {
    if (srv->conns[i].state != C_FREE) {
      still_open++;
      conn_close(&srv->conns[i]);
    }
  }
  return still_open;
}

/* --- the client: a blocking HTTP GET, run in the pool --- */

enum expect_outcome { EXPECT_OK, EXPECT_TIMEOUT, EXPECT_FAIL };
enum job_end { JOB_NOT_RUN, JOB_RETURNED, JOB_FAILED, JOB_STOPPED };

struct fetch {
  const char *path;
  double timeout; /* unscaled */
  enum expect_outcome expect;
  int expect_code; /* for EXPECT_FAIL */
  /* Set before the fetch starts. */
  cf_executor_t *pool;
  unsigned short port;
  /* The task's side (loop thread). */
  int rc;     /* what fetch_page ended with: 0, CF_ETIMEDOUT, a code */
  int status; /* HTTP status, when a response came */
  size_t bytes;
  double done_at;
  char why[96];
  /* The job's side, read once the pool is destroyed. */
  enum job_end job_end;
  double job_end_at;
};

struct http_response {
  int status;
  size_t bytes; /* of the body */
};

static int job_finish(struct fetch *f, enum job_end end, int rc) {
  f->job_end = end;
  f->job_end_at = elapsed();
  return rc;
}

/* The blocking GET. It waits for data in short polls, so that between them
 * it can notice that its caller gave up (cf_job_cancel_requested) and stop
 * instead of holding a worker until the server answers. */
static int http_get_job(void *arg, cf_job_t *job) {
  struct fetch *f = arg;
  int tick_ms = (int)(50 * scale);
  if (tick_ms < 1)
    tick_ms = 1;
  double give_up = now() + 20 * scale; /* only if a cancel never came */

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return job_finish(f, JOB_FAILED,
                      cf_job_fail(job, errno, "socket: %s", strerror(errno)));
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(f->port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    int err = errno;
    close(fd);
    return job_finish(f, JOB_FAILED,
                      cf_job_fail(job, err, "connect: %s", strerror(err)));
  }
  char buf[8192];
  int reqlen = snprintf(buf, sizeof(buf),
                        "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\n\r\n",
                        f->path, (unsigned)f->port);
  for (int off = 0; off < reqlen;) {
    ssize_t n = send(fd, buf + off, (size_t)(reqlen - off), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return job_finish(f, JOB_FAILED,
                        cf_job_fail(job, err, "send: %s", strerror(err)));
    }
    off += (int)n;
  }

  size_t len = 0;
  for (;;) {
    if (cf_job_cancel_requested(job)) {
      close(fd);
      say("job %s: cancel requested: stopping", f->path);
      return job_finish(f, JOB_STOPPED, CF_ECANCELLED);
    }
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, tick_ms);
    if (n < 0 && errno != EINTR) {
      int err = errno;
      close(fd);
      return job_finish(f, JOB_FAILED,
                        cf_job_fail(job, err, "poll: %s", strerror(err)));
    }
    if (n <= 0) {
      if (now() > give_up) {
        close(fd);
        return job_finish(
            f, JOB_FAILED,
            cf_job_fail(job, ETIMEDOUT, "no response and no cancel request"));
      }
      continue;
    }
    ssize_t got = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      int err = errno;
      close(fd);
      return job_finish(f, JOB_FAILED,
                        cf_job_fail(job, err, "recv: %s", strerror(err)));
    }
    if (got == 0)
      break;
    len += (size_t)got;
    if (len == sizeof(buf) - 1) {
      close(fd);
      return job_finish(f, JOB_FAILED,
                        cf_job_fail(job, EMSGSIZE, "response too large"));
    }
  }
  close(fd);
  buf[len] = '\0';
  if (len == 0)
    return job_finish(
        f, JOB_FAILED,
        cf_job_fail(job, ECONNRESET, "closed without a response"));
  int status;
  const char *body = strstr(buf, "\r\n\r\n");
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || body == NULL)
    return job_finish(f, JOB_FAILED,
                      cf_job_fail(job, EPROTO, "not an HTTP response"));
  struct http_response *resp = malloc(sizeof(*resp));
  if (resp == NULL)
    return job_finish(f, JOB_FAILED, cf_job_fail(job, ENOMEM, "out of memory"));
  resp->status = status;
  resp->bytes = len - (size_t)(body + 4 - buf);
  cf_job_return(job, resp, free);
  return job_finish(f, JOB_RETURNED, 0);
}

/* fetch_page: the blocking GET in the pool, inside a timeout scope. Ends
 * with 0, CF_ETIMEDOUT, ERR_ASSERTION (status not 200) or the job's code. */
static int fetch_page(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct fetch *f = arg;
  cf_timeout_t *scope;
  int rc = cf_timeout_enter(f->timeout * scale, &scope);
  if (rc != 0) {
    snprintf(f->why, sizeof(f->why), "cf_timeout_enter: %s", code_name(rc));
    f->rc = rc;
    return rc;
  }
  cf_future_t *done = NULL;
  rc = cf_run_in_executor(f->pool, http_get_job, f, NULL, &done);
  if (rc == 0) {
    void *value = NULL;
    if (cf_future_result(done, 0, &value) == 0 && value != NULL) {
      const struct http_response *resp = value;
      f->status = resp->status;
      f->bytes = resp->bytes;
    }
    if (f->status != 200) { /* assert response.status == 200 */
      snprintf(f->why, sizeof(f->why), "assert status == 200 (got %d)",
               f->status);
      rc = ERR_ASSERTION;
    }
  } else if (rc == CF_EFAILED) {
    int code = 0;
    const char *message = NULL;
    if (cf_future_exception(done, 0, &code, &message) == 0 && code != 0) {
      snprintf(f->why, sizeof(f->why), "%s", message ? message : "");
      rc = code;
    }
  }
  cf_future_release(done);
  rc = cf_timeout_exit(scope, rc);
  f->rc = rc;
  f->done_at = elapsed();
  say("fetch %s (timeout %.3f s): %s", f->path, f->timeout * scale,
      rc == 0 ? "ok" : code_name(rc));
  return rc;
}

/* Start every worker of the pool before the fetches begin: n jobs that
 * each hold their worker until all n have started. Thread creation then
 * does not count against the fetch timeouts (it can take longer than a
 * --fast timeout under valgrind). */
struct warm_up {
  sem_t started, go;
};

static void sem_wait_intr(sem_t *s) {
  while (sem_wait(s) != 0 && errno == EINTR)
    ;
}

static int warm_up_job(void *arg, cf_job_t *job) {
  (void)job;
  struct warm_up *w = arg;
  sem_post(&w->started);
  sem_wait_intr(&w->go);
  return 0;
}

static int warm_up_pool(cf_executor_t *pool, int n) {
  struct warm_up w;
  cf_future_t *fs[16];
  int k = 0, rc = 0;
  if (n > 16)
    return CF_EINVAL;
  if (sem_init(&w.started, 0, 0) != 0)
    return CF_ESYSTEM;
  if (sem_init(&w.go, 0, 0) != 0) {
    sem_destroy(&w.started);
    return CF_ESYSTEM;
  }
  for (; k < n && rc == 0; k++)
    if ((rc = cf_executor_submit(pool, warm_up_job, &w, NULL, &fs[k])) != 0)
      break;
  for (int i = 0; i < k; i++)
    sem_wait_intr(&w.started);
  for (int i = 0; i < k; i++)
    sem_post(&w.go);
  int wrc = cf_wait(fs, (size_t)k, CF_FOREVER, CF_ALL_COMPLETED, NULL, NULL,
                    NULL, NULL);
  for (int i = 0; i < k; i++)
    cf_future_release(fs[i]);
  sem_destroy(&w.go);
  sem_destroy(&w.started);
  return rc != 0 ? rc : wrc;
}

struct fetch_all {
  cf_loop_t *loop;
  struct fetch *fetches;
  size_t n;
};

/* gather(*[fetch_page(...)], return_exceptions=True) */
static int fetch_all_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct fetch_all *all = arg;
  cf_lfuture_t *tasks[16] = {NULL};
  for (size_t i = 0; i < all->n; i++) {
    int rc = cf_task_create(all->loop, fetch_page, &all->fetches[i], &tasks[i]);
    if (rc != 0) {
      all->fetches[i].rc = rc;
      snprintf(all->fetches[i].why, sizeof(all->fetches[i].why),
               "cf_task_create: %s", code_name(rc));
    }
  }
  for (size_t i = 0; i < all->n; i++) {
    if (tasks[i] == NULL)
      continue;
    int rc = cf_await(tasks[i], NULL);
    int code = 0;
    if (rc == CF_EFAILED && cf_lfuture_exception(tasks[i], &code, NULL) != 0)
      code = 0;
    /* The task ends as fetch_page returned: its outcome must say so. */
    if (rc == CF_EFAILED ? code != all->fetches[i].rc : rc != 0) {
      snprintf(all->fetches[i].why, sizeof(all->fetches[i].why),
               "the task ended with %s/%s", code_name(rc), code_name(code));
      all->fetches[i].rc = rc == CF_EFAILED ? code : rc;
    }
    cf_lfuture_release(tasks[i]);
  }
  return 0;
}

static bool scenario4(cf_loop_t *loop) {
  struct fetch fetches[] = {
      {.path = "/fast", .timeout = 10, .expect = EXPECT_OK},
      {.path = "/slow", .timeout = 10, .expect = EXPECT_OK},
      {.path = "/slow", .timeout = 1, .expect = EXPECT_TIMEOUT},
      {.path = "/slower", .timeout = 3, .expect = EXPECT_TIMEOUT},
      {.path = "/broken",
       .timeout = 10,
       .expect = EXPECT_FAIL,
       .expect_code = ECONNRESET},
      {.path = "/missing",
       .timeout = 10,
       .expect = EXPECT_FAIL,
       .expect_code = ERR_ASSERTION},
  };
  const size_t n = sizeof(fetches) / sizeof(fetches[0]);
  struct server srv;
  if (server_start(&srv, loop) != 0)
    return false;
  say("server: listening on http://127.0.0.1:%u/ (/fast %.3f s, /slow %.3f "
      "s, /slower %.3f s, /broken closes after %.3f s)",
      (unsigned)srv.port, 0.1 * scale, 2 * scale, 4 * scale, 0.5 * scale);

  /* One worker per request, so none waits in the queue. */
  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = (int)n;
  opts.thread_name_prefix = "fetch";
  cf_executor_t *pool;
  int rc = cf_executor_create(&pool, &opts);
  if (!expect("cf_executor_create", rc, 0)) {
    server_stop(&srv);
    return false;
  }
  rc = warm_up_pool(pool, (int)n);
  if (!expect("warming up the pool", rc, 0)) {
    (void)cf_executor_destroy(pool);
    server_stop(&srv);
    return false;
  }
  say("pool: %d workers started", cf_executor_thread_count(pool));
  for (size_t i = 0; i < n; i++) {
    fetches[i].pool = pool;
    fetches[i].port = srv.port;
  }
  struct fetch_all all = {loop, fetches, n};
  cf_lfuture_t *task;
  bool ok = true;
  rc = cf_task_create(loop, fetch_all_task, &all, &task);
  if (expect("cf_task_create", rc, 0)) {
    ok &= expect("run_until_complete(gather)",
                 cf_loop_run_until_complete(loop, task), 0);
    cf_lfuture_release(task);
  } else {
    ok = false;
  }
  /* Joins the workers: a timed-out job still running stops at its next
   * poll of cf_job_cancel_requested. */
  ok &= expect("cf_executor_destroy", cf_executor_destroy(pool), 0);
  say("pool destroyed: every job has ended");
  int still_open = server_stop(&srv);
  say("server: stopped (%d connection%s still open)", still_open,
      still_open == 1 ? " was" : "s were");

  printf("  %-30s %7s  %-38s %s\n", "url", "timeout", "outcome", "the job");
  for (size_t i = 0; i < n; i++) {
    struct fetch *f = &fetches[i];
    char url[64], outcome[128], job[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)f->port,
             f->path);
    bool as_expected;
    if (f->rc == 0) {
      snprintf(outcome, sizeof(outcome), "ok: %d, %zu bytes", f->status,
               f->bytes);
      as_expected = f->expect == EXPECT_OK;
    } else if (f->rc == CF_ETIMEDOUT) {
      snprintf(outcome, sizeof(outcome), "timed out");
      as_expected = f->expect == EXPECT_TIMEOUT;
    } else {
      snprintf(outcome, sizeof(outcome), "failed: %s", f->why);
      as_expected = f->expect == EXPECT_FAIL && f->rc == f->expect_code;
    }
    switch (f->job_end) {
    case JOB_NOT_RUN:
      snprintf(job, sizeof(job), "never ran (cancelled while queued)");
      break;
    case JOB_RETURNED:
      snprintf(job, sizeof(job), "returned at %.3f%s", f->job_end_at,
               f->rc == CF_ETIMEDOUT ? " (result dropped)" : "");
      break;
    case JOB_FAILED:
      snprintf(job, sizeof(job), "failed at %.3f", f->job_end_at);
      break;
    case JOB_STOPPED:
      snprintf(job, sizeof(job), "stopped early at %.3f", f->job_end_at);
      break;
    }
    printf("  %-30s %7.3f  %-38s %s\n", url, f->timeout * scale, outcome, job);
    if (!as_expected) {
      printf("  !! %s: expected %s\n", f->path,
             f->expect == EXPECT_OK        ? "ok"
             : f->expect == EXPECT_TIMEOUT ? "timed out"
                                           : code_name(f->expect_code));
      ok = false;
    }
    /* A timed-out job must not have run into its own give-up deadline:
     * its cancel request stops it (or it returned, or never ran). */
    if (f->expect == EXPECT_TIMEOUT && f->job_end == JOB_FAILED) {
      printf("  !! %s: the timed-out job did not see its cancel request\n",
             f->path);
      ok = false;
    }
    if (f->rc == 0 && f->status == 200) {
      for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++)
        if (strcmp(routes[r].path, f->path) == 0 && routes[r].size != f->bytes)
          ok &= expect("body bytes", (int)f->bytes, (int)routes[r].size);
    }
  }
  return ok;
}

/* ------------------------------------------------------------------ */
/* 5. catch the cancellation, clean up with an await, re-raise        */
/* ------------------------------------------------------------------ */

enum event {
  EV_WORKER_STARTED,
  EV_CANCEL_CALLED,
  EV_WORKER_CAUGHT,
  EV_CLEANUP_STARTED,
  EV_CLEANUP_DONE,
  EV_AWAIT_RETURNED,
  EV_COUNT
};

static const char *const event_names[EV_COUNT] = {
    "worker started", "worker.cancel()",  "worker caught it",
    "cleanup began",  "cleanup finished", "await worker returned",
};

struct worker_demo {
  cf_loop_t *loop;
  cf_lfuture_t *worker;
  enum event events[16];
  int nevents;
  int cancel_rc, cancelled_after_cancel, cancelling_after_cancel;
  int cleanup_rc, await_rc;
};

static void event(struct worker_demo *w, enum event e) {
  if (w->nevents < (int)(sizeof(w->events) / sizeof(w->events[0])))
    w->events[w->nevents++] = e;
}

static int worker_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct worker_demo *w = arg;
  event(w, EV_WORKER_STARTED);
  say("worker: started; await sleep(%g)", 60 * scale);
  int rc = cf_sleep(60 * scale);
  if (rc == CF_ECANCELLED) { /* except asyncio.CancelledError: ... raise */
    event(w, EV_WORKER_CAUGHT);
    say("worker: caught the cancellation (%s)", code_name(rc));
  } else if (rc != 0) { /* except Exception as exc: print(exc) */
    say("worker: failed: %s", code_name(rc));
  }
  /* finally: await asyncio.sleep(2) */
  event(w, EV_CLEANUP_STARTED);
  say("worker: cleanup: await sleep(%g)", 2 * scale);
  w->cleanup_rc = cf_sleep(2 * scale);
  event(w, EV_CLEANUP_DONE);
  say("worker: cleanup done (%s); re-raising", code_name(w->cleanup_rc));
  return w->cleanup_rc != 0 ? w->cleanup_rc : rc;
}

static int worker_main_task(cf_lfuture_t *self, void *arg) {
  (void)self;
  struct worker_demo *w = arg;
  int rc = cf_task_create(w->loop, worker_task, w, &w->worker);
  if (rc != 0)
    return rc;
  if ((rc = cf_sleep(1 * scale)) != 0)
    return rc;
  w->cancel_rc = cf_lfuture_cancel(w->worker);
  w->cancelled_after_cancel = cf_lfuture_cancelled(w->worker);
  w->cancelling_after_cancel = cf_task_cancelling(w->worker);
  event(w, EV_CANCEL_CALLED);
  say("main: worker.cancel() -> %d; worker.cancelled() -> %d, "
      "worker.cancelling() -> %d",
      w->cancel_rc, w->cancelled_after_cancel, w->cancelling_after_cancel);
  w->await_rc = cf_await(w->worker, NULL);
  event(w, EV_AWAIT_RETURNED);
  say("main: await worker -> %s (asyncio: CancelledError); "
      "worker.cancelled() -> %d",
      code_name(w->await_rc), cf_lfuture_cancelled(w->worker));
  return 0;
}

static bool scenario5(cf_loop_t *loop) {
  static const enum event want[] = {
      EV_WORKER_STARTED,  EV_CANCEL_CALLED, EV_WORKER_CAUGHT,
      EV_CLEANUP_STARTED, EV_CLEANUP_DONE,  EV_AWAIT_RETURNED,
  };
  struct worker_demo w;
  memset(&w, 0, sizeof(w));
  w.loop = loop;
  cf_lfuture_t *task;
  bool ok = true;
  int rc = cf_task_create(loop, worker_main_task, &w, &task);
  if (!expect("cf_task_create", rc, 0))
    return false;
  ok &= expect("run_until_complete(main)",
               cf_loop_run_until_complete(loop, task), 0);
  printf("  order of events:");
  for (int i = 0; i < w.nevents; i++)
    printf("%s %s", i ? "," : "", event_names[w.events[i]]);
  printf("\n  final state: worker.done() -> %d, worker.cancelled() -> %d\n",
         cf_lfuture_done(w.worker), cf_lfuture_cancelled(w.worker));
  const int nwant = (int)(sizeof(want) / sizeof(want[0]));
  bool same = w.nevents == nwant;
  for (int i = 0; same && i < nwant; i++)
    same = w.events[i] == want[i];
  if (!same) {
    printf("  !! unexpected order of events\n");
    ok = false;
  }
  ok &= expect("worker.cancel()", w.cancel_rc, 1);
  ok &= expect("worker.cancelled() right after cancel()",
               w.cancelled_after_cancel, 0);
  ok &= expect("worker.cancelling()", w.cancelling_after_cancel, 1);
  ok &= expect("the cleanup sleep", w.cleanup_rc, 0);
  ok &= expect("await worker", w.await_rc, CF_ECANCELLED);
  ok &= expect("worker.cancelled()", cf_lfuture_cancelled(w.worker), 1);
  cf_lfuture_release(w.worker);
  cf_lfuture_release(task);
  return ok;
}

/* ------------------------------------------------------------------ */

static void usage(FILE *out) {
  fprintf(out, "usage: asyncio_tour [--fast]\n"
               "  --fast  divide every delay and timeout by 100\n");
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--fast") == 0) {
      scale = 0.01;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN); /* a peer that went away is an error, not death */
  t_start = now();

  static const struct {
    const char *title;
    bool (*run)(cf_loop_t *loop);
  } scenarios[] = {
      {"task = ensure_future(sleep(5)); task.cancel(); "
       "run_until_complete(task)",
       scenario1},
      {"Foo.sleeper: the sleep is cancelled from outside; the handler "
       "raises NotImplementedError",
       scenario2},
      {"run_until_complete(wait_for(sleep(60), 5))", scenario3},
      {"fetch_page with a timeout per request (blocking GETs in the pool)",
       scenario4},
      {"a worker catches the cancellation, cleans up with an await, "
       "re-raises",
       scenario5},
  };
  const int n = (int)(sizeof(scenarios) / sizeof(scenarios[0]));

  cf_loop_t *loop;
  int rc = cf_loop_create(&loop, NULL);
  if (rc != 0) {
    fprintf(stderr, "cf_loop_create: %s\n", cf_strerror(rc));
    return EXIT_FAILURE;
  }
  if (scale != 1.0)
    printf("(--fast: every delay and timeout divided by %g)\n", 1 / scale);
  int passed = 0;
  for (int i = 0; i < n; i++) {
    printf("\nscenario %d: %s\n", i + 1, scenarios[i].title);
    fflush(stdout);
    bool ok = scenarios[i].run(loop);
    printf("  -> %s\n", ok ? "as asyncio does" : "UNEXPECTED");
    fflush(stdout);
    passed += ok;
  }
  rc = cf_loop_close(loop);
  if (rc != 0) {
    printf("cf_loop_close: %s\n", cf_err_name(rc));
    passed = -1;
  }
  printf("\n%d of %d scenarios as asyncio does (%.3f s)\n",
         passed < 0 ? 0 : passed, n, elapsed());
  return passed == n ? EXIT_SUCCESS : EXIT_FAILURE;
}
