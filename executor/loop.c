/*
 * cf_loop: the built-in event loop.
 *
 * DESIGN
 * - One iteration (run_once): wait in epoll for fds, the bridge fd (pool
 *   completions and call_soon_threadsafe) or the nearest timer; handle the
 *   fds; move due timers to the ready queue; then run the callbacks that
 *   were ready when the run started (asyncio's ntodo rule: callbacks they
 *   schedule run in the next iteration, so a callback that reschedules
 *   itself cannot starve I/O).
 * - Timers: a binary min-heap of handles by (when, seq). A cancelled handle
 *   stays in its queue or heap and is discarded when reached.
 * - Everything runs on the loop thread; call_soon_threadsafe goes through
 *   the loop's cf_bridge, whose fd is one of the fds in epoll.
 * - Task stacks come from a per-loop pool of mmap'd regions with a guard
 *   page below; only the pages a task touches take memory.
 * - I/O back ends: epoll on Linux; poll(2) elsewhere, or with
 *   -DCF_LOOP_POLL. With poll, cf_loop_fd() is the bridge's fd, so an outer
 *   loop learns of completions and threadsafe calls but not of the inner
 *   loop's own fds (it must call run_once often enough for those).
 */
#include "loop_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(CF_LOOP_POLL) || !defined(__linux__)
#define USE_POLL 1
#include <poll.h>
#define EV_READ POLLIN
#define EV_WRITE POLLOUT
#define EV_HANGUP (POLLHUP | POLLERR)
#else
#include <sys/epoll.h>
#define EV_READ EPOLLIN
#define EV_WRITE EPOLLOUT
#define EV_HANGUP (EPOLLHUP | EPOLLERR)
#endif

#define DEFAULT_STACK_SIZE (256 * 1024)
#define STACK_POOL_MAX 64

void cf_loop_options_init(cf_loop_options_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->stack_size = DEFAULT_STACK_SIZE;
}

double cf_loop_time(const cf_loop_t *loop) {
  (void)loop;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the ready queue and timers ---- */

static void ready_push(cf_loop_t *loop, cf_handle_t *h) {
  h->next = NULL;
  if (loop->ready_tail != NULL)
    loop->ready_tail->next = h;
  else
    loop->ready_head = h;
  loop->ready_tail = h;
}

static cf_handle_t *handle_new(cf_loop_fn fn, void *arg, void (*drop)(void *)) {
  cf_handle_t *h = cf__calloc(1, sizeof(*h));
  if (h != NULL) {
    h->fn = fn;
    h->arg = arg;
    h->drop = drop;
  }
  return h;
}

int cf__loop_soon(cf_loop_t *loop, cf_loop_fn fn, void *arg,
                  void (*drop)(void *), cf_handle_t **out) {
  cf_handle_t *h = handle_new(fn, arg, drop);
  if (h == NULL)
    return CF_ENOMEM;
  ready_push(loop, h);
  if (out != NULL)
    *out = h;
  return 0;
}

/* For what must not fail for want of memory: a task's next step, a
 * completed future's callbacks (losing them would leave a task asleep for
 * ever). */
void cf__loop_soon_embedded(cf_loop_t *loop, cf_handle_t *h, cf_loop_fn fn,
                            void *arg, void (*drop)(void *)) {
  *h = (cf_handle_t){.fn = fn, .arg = arg, .drop = drop, .embedded = true};
  ready_push(loop, h);
}

static bool timer_less(const cf_handle_t *a, const cf_handle_t *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(cf_loop_t *loop, size_t i, cf_handle_t *h) {
  loop->heap[i] = h;
  h->heap_index = i;
}

static void heap_up(cf_loop_t *loop, size_t i) {
  cf_handle_t *h = loop->heap[i];
  while (i > 0 && timer_less(h, loop->heap[(i - 1) / 2])) {
    heap_set(loop, i, loop->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(loop, i, h);
}

static void heap_down(cf_loop_t *loop, size_t i) {
  cf_handle_t *h = loop->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= loop->heap_len)
      break;
    if (c + 1 < loop->heap_len && timer_less(loop->heap[c + 1], loop->heap[c]))
      c++;
    if (!timer_less(loop->heap[c], h))
      break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, h);
}

static cf_handle_t *heap_pop(cf_loop_t *loop) {
  cf_handle_t *top = loop->heap[0];
  if (--loop->heap_len > 0) {
    heap_set(loop, 0, loop->heap[loop->heap_len]);
    heap_down(loop, 0);
  }
  return top;
}

int cf__loop_at(cf_loop_t *loop, double when, cf_loop_fn fn, void *arg,
                void (*drop)(void *), cf_handle_t **out) {
  if (loop->heap_len == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    cf_handle_t **heap = cf__realloc(loop->heap, cap * sizeof(*heap));
    if (heap == NULL)
      return CF_ENOMEM;
    loop->heap = heap;
    loop->heap_cap = cap;
  }
  cf_handle_t *h = handle_new(fn, arg, drop);
  if (h == NULL)
    return CF_ENOMEM;
  h->when = when;
  h->seq = loop->timer_seq++;
  h->loop = loop;
  heap_set(loop, loop->heap_len++, h);
  heap_up(loop, h->heap_index);
  if (out != NULL)
    *out = h;
  return 0;
}

int cf_loop_call_soon(cf_loop_t *loop, cf_loop_fn fn, void *arg,
                      cf_handle_t **h) {
  if (loop == NULL || fn == NULL)
    return CF_EINVAL;
  return cf__loop_soon(loop, fn, arg, NULL, h);
}

int cf_loop_call_at(cf_loop_t *loop, double when, cf_loop_fn fn, void *arg,
                    cf_handle_t **h) {
  if (loop == NULL || fn == NULL || isnan(when))
    return CF_EINVAL;
  return cf__loop_at(loop, when, fn, arg, NULL, h);
}

int cf_loop_call_later(cf_loop_t *loop, double delay, cf_loop_fn fn, void *arg,
                       cf_handle_t **h) {
  if (loop == NULL || isnan(delay))
    return CF_EINVAL;
  return cf_loop_call_at(loop, cf_loop_time(loop) + (delay > 0 ? delay : 0), fn,
                         arg, h);
}

struct threadsafe_call {
  cf_loop_t *loop;
  cf_loop_fn fn;
  void *arg;
};

/* On the loop thread, inside the bridge's dispatch. */
static void run_threadsafe(void *arg) {
  struct threadsafe_call *c = arg;
  if (!c->loop->dropping) /* close drops what is still queued */
    c->fn(c->arg);
  free(c);
}

int cf_loop_call_soon_threadsafe(cf_loop_t *loop, cf_loop_fn fn, void *arg) {
  if (loop == NULL || fn == NULL)
    return CF_EINVAL;
  if (atomic_load(&loop->closing)) /* it would be dropped, never run */
    return CF_ESHUTDOWN;
  struct threadsafe_call *c = cf__malloc(sizeof(*c));
  if (c == NULL)
    return CF_ENOMEM;
  c->loop = loop;
  c->fn = fn;
  c->arg = arg;
  int rc = cf_bridge_call_threadsafe(loop->bridge, run_threadsafe, c);
  if (rc != 0)
    free(c);
  return rc;
}

int cf_handle_cancel(cf_handle_t *h) {
  if (h == NULL)
    return CF_EINVAL;
  if (h->cancelled)
    return 0;
  h->cancelled = true;
  if (h->loop != NULL) /* a timer: it stays in the heap for now */
    h->loop->heap_cancelled++;
  if (h->drop != NULL)
    h->drop(h->arg);
  return 1;
}

/* Cancelled timers stay in the heap until reached. Drop those on top (so
 * they wake nobody), and rebuild the heap without any when they are more
 * than half of it (as asyncio does), so long timeouts that end early do
 * not pile up. */
static void purge_timers(cf_loop_t *loop) {
  if (loop->heap_cancelled > 32 && 2 * loop->heap_cancelled > loop->heap_len) {
    size_t kept = 0;
    for (size_t i = 0; i < loop->heap_len; i++) {
      cf_handle_t *h = loop->heap[i];
      if (h->cancelled)
        free(h);
      else
        heap_set(loop, kept++, h);
    }
    loop->heap_len = kept;
    loop->heap_cancelled = 0;
    for (size_t i = kept / 2; i-- > 0;)
      heap_down(loop, i);
  }
  while (loop->heap_len > 0 && loop->heap[0]->cancelled) {
    free(heap_pop(loop));
    loop->heap_cancelled--;
  }
}

/* Run or discard one handle taken from a queue, then free it (unless
 * embedded: fn may have freed it with its object). */
static void handle_run(cf_handle_t *h) {
  bool embedded = h->embedded;
  if (!h->cancelled) {
    h->cancelled = true; /* a late cf_handle_cancel now returns 0 */
    h->loop = NULL;      /* and counts nothing: it left the heap */
    h->fn(h->arg);
  } else if (h->loop != NULL) {
    h->loop->heap_cancelled--;
  }
  if (!embedded)
    free(h);
}

static void handle_discard(cf_handle_t *h) {
  bool embedded = h->embedded;
  if (!h->cancelled && h->drop != NULL)
    h->drop(h->arg);
  if (!embedded)
    free(h);
}

/* ---- file descriptors ---- */

static int fd_update(cf_loop_t *loop, int fd) {
  struct fd_watch *w = &loop->fds[fd];
  uint32_t events = (w->read_fn ? EV_READ : 0) | (w->write_fn ? EV_WRITE : 0);
  if (events == w->events)
    return 0;
#ifdef USE_POLL
  w->events = events; /* poll reads the table at every iteration */
  return 0;
#else
  struct epoll_event ev = {.events = events, .data.fd = fd};
  int op = w->events == 0 ? EPOLL_CTL_ADD
                          : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(loop->epfd, op, fd, &ev) != 0)
    return CF_ESYSTEM;
  w->events = events;
  return 0;
#endif
}

static int fd_watch(cf_loop_t *loop, int fd, bool write, cf_loop_fn fn,
                    void *arg) {
  if (loop == NULL || fd < 0 || fn == NULL)
    return CF_EINVAL;
  if (fcntl(fd, F_GETFD) == -1) /* not open: do not grow the table for it */
    return CF_ESYSTEM;
  if ((size_t)fd >= loop->nfds) {
    size_t n = loop->nfds ? loop->nfds : 64;
    while (n <= (size_t)fd)
      n *= 2;
#ifdef USE_POLL
    /* poll's array grows here, where running out of memory can be
     * reported, so that an iteration never allocates: one that could not
     * would never see the bridge's fd, and the loop would spin for ever. */
    struct pollfd *set = cf__realloc(loop->poll_set, n * sizeof(*set));
    if (set == NULL)
      return CF_ENOMEM;
    loop->poll_set = set;
#endif
    struct fd_watch *fds = cf__realloc(loop->fds, n * sizeof(*fds));
    if (fds == NULL)
      return CF_ENOMEM;
    memset(fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*fds));
    loop->fds = fds;
    loop->nfds = n;
  }
  struct fd_watch *w = &loop->fds[fd];
  struct fd_watch saved = *w;
  if (write) {
    w->write_fn = fn;
    w->write_arg = arg;
  } else {
    w->read_fn = fn;
    w->read_arg = arg;
  }
  int rc = fd_update(loop, fd);
  if (rc != 0)
    *w = saved;
  return rc;
}

static int fd_unwatch(cf_loop_t *loop, int fd, bool write) {
  if (loop == NULL || fd < 0)
    return CF_EINVAL;
  if ((size_t)fd >= loop->nfds)
    return 0;
  struct fd_watch *w = &loop->fds[fd];
  cf_loop_fn *fn = write ? &w->write_fn : &w->read_fn;
  if (*fn == NULL)
    return 0;
  *fn = NULL;
  if (fd_update(loop, fd) != 0)
    w->events = 0; /* the fd was closed already: epoll forgot it */
  return 1;
}

int cf_loop_add_reader(cf_loop_t *loop, int fd, cf_loop_fn fn, void *arg) {
  return fd_watch(loop, fd, false, fn, arg);
}
int cf_loop_remove_reader(cf_loop_t *loop, int fd) {
  return fd_unwatch(loop, fd, false);
}
int cf_loop_add_writer(cf_loop_t *loop, int fd, cf_loop_fn fn, void *arg) {
  return fd_watch(loop, fd, true, fn, arg);
}
int cf_loop_remove_writer(cf_loop_t *loop, int fd) {
  return fd_unwatch(loop, fd, true);
}

/* ---- running ---- */

double cf_loop_timeout(const cf_loop_t *loop) {
  if (loop == NULL)
    return CF_FOREVER;
  if (loop->ready_head != NULL || loop->stopping)
    return 0;
  if (loop->heap_len == 0)
    return CF_FOREVER;
  double t = loop->heap[0]->when - cf_loop_time(loop);
  return t > 0 ? t : 0;
}

int cf_loop_fd(const cf_loop_t *loop) {
  if (loop == NULL)
    return CF_EINVAL;
#ifdef USE_POLL
  return cf_bridge_fd(loop->bridge);
#else
  return loop->epfd;
#endif
}

/* Run the watchers of fd for the events that occurred. */
static void fd_ready(cf_loop_t *loop, int fd, uint32_t ev) {
  if (fd < 0 || (size_t)fd >= loop->nfds)
    return;
  struct fd_watch *w = &loop->fds[fd];
  if ((ev & (EV_READ | EV_HANGUP)) && w->read_fn != NULL)
    w->read_fn(w->read_arg);
  w = &loop->fds[fd]; /* the callback may have grown the table */
  if ((ev & (EV_WRITE | EV_HANGUP)) && w->write_fn != NULL)
    w->write_fn(w->write_arg);
}

#ifdef USE_POLL
static void poll_fds(cf_loop_t *loop, int ms) {
  struct pollfd *pfds = loop->poll_set; /* nfds entries: never too few */
  size_t n = 0;
  for (size_t fd = 0; fd < loop->nfds; fd++)
    if (loop->fds[fd].events != 0) {
      pfds[n].fd = (int)fd;
      pfds[n].events = (short)loop->fds[fd].events;
      pfds[n++].revents = 0;
    }
  if (poll(pfds, n, ms) > 0)
    for (size_t i = 0; i < n; i++) {
      /* Read through loop->poll_set: a callback may have grown it. */
      struct pollfd p = ((struct pollfd *)loop->poll_set)[i];
      if (p.revents & POLLNVAL) { /* closed while watched: forget it, */
        loop->fds[p.fd].read_fn = NULL; /* as epoll does */
        loop->fds[p.fd].write_fn = NULL;
        loop->fds[p.fd].events = 0;
      } else if (p.revents != 0) {
        fd_ready(loop, p.fd, (uint32_t)p.revents);
      }
    }
}
#else
static void poll_fds(cf_loop_t *loop, int ms) {
  struct epoll_event events[64];
  int n = epoll_wait(loop->epfd, events, 64, ms);
  for (int i = 0; i < n; i++) /* the bridge's fd is a reader too */
    fd_ready(loop, events[i].data.fd, events[i].events);
}
#endif

static void run_iteration(cf_loop_t *loop, double max_wait) {
  purge_timers(loop);
  double wait = cf_loop_timeout(loop);
  if (max_wait < wait)
    wait = max_wait;
  /* About to block: a pool job that finishes soon is caught by a spin
   * instead of a wake-up (cf_bridge_prepare). */
  if (wait > 0 && cf_bridge_prepare(loop->bridge) > 0)
    wait = 0;
  poll_fds(loop, wait >= 1e6 ? -1 : (int)ceil(wait * 1000.0));
  double now = cf_loop_time(loop);
  while (loop->heap_len > 0 && loop->heap[0]->when <= now)
    ready_push(loop, heap_pop(loop));
  /* Only what is ready now; what these schedule waits for the next turn. */
  cf_handle_t *h = loop->ready_head;
  cf_handle_t *last = loop->ready_tail;
  loop->ready_head = loop->ready_tail = NULL;
  while (h != NULL) {
    cf_handle_t *next = h == last ? NULL : h->next;
    handle_run(h);
    h = next;
  }
}

int cf_loop_run_once(cf_loop_t *loop, double timeout) {
  if (loop == NULL || isnan(timeout))
    return CF_EINVAL;
  if (loop->running || cf__current_task != NULL)
    return CF_EINVALID_STATE;
  loop->running = true;
  run_iteration(loop, timeout > 0 ? timeout : 0);
  loop->running = false;
  return 0;
}

int cf_loop_run_forever(cf_loop_t *loop) {
  if (loop == NULL)
    return CF_EINVAL;
  if (loop->running || cf__current_task != NULL)
    return CF_EINVALID_STATE;
  loop->running = true;
  do /* a stop() before the run still lets one iteration through */
    run_iteration(loop, CF_FOREVER);
  while (!loop->stopping);
  loop->stopping = false;
  loop->running = false;
  return 0;
}

int cf_loop_stop(cf_loop_t *loop) {
  if (loop == NULL)
    return CF_EINVAL;
  loop->stopping = true;
  return 0;
}

/* Stops the loop only for the run that waits for f: a callback left on f
 * by an earlier run that ended otherwise must not stop a later one. */
static void stop_when_done(cf_lfuture_t *f, void *data) {
  cf_loop_t *loop = data;
  if (loop->until == f)
    cf_loop_stop(loop);
}

int cf_loop_run_until_complete(cf_loop_t *loop, cf_lfuture_t *f) {
  if (loop == NULL || f == NULL)
    return CF_EINVAL;
  if (f->loop != loop || loop->running || cf__current_task != NULL)
    return CF_EINVALID_STATE;
  cf_lfuture_retain(f);
  int rc = 0;
  if (!cf_lfuture_done(f))
    rc = cf_lfuture_add_done_callback(f, stop_when_done, loop);
  if (rc == 0 && !cf_lfuture_done(f)) {
    loop->until = f;
    rc = cf_loop_run_forever(loop);
    loop->until = NULL;
  }
  if (rc == 0)
    rc = cf__lfuture_outcome(f, NULL);
  cf_lfuture_release(f);
  return rc;
}

/* ---- stacks ---- */

size_t cf__stack_guard(void) { return (size_t)sysconf(_SC_PAGESIZE); }

void *cf__stack_get(cf_loop_t *loop) {
  if (loop->stack_pool_len > 0)
    return loop->stack_pool[--loop->stack_pool_len];
  size_t guard = cf__stack_guard();
  void *map = cf__mmap(NULL, loop->stack_size + guard, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                       -1, 0);
  if (map == MAP_FAILED)
    return NULL;
  if (mprotect(map, guard, PROT_NONE) != 0) { /* the guard page, below */
    munmap(map, loop->stack_size + guard);
    return NULL;
  }
  return map;
}

void cf__stack_put(cf_loop_t *loop, void *map) {
  if (loop->stack_pool_len == loop->stack_pool_cap &&
      loop->stack_pool_cap < STACK_POOL_MAX) {
    size_t cap = loop->stack_pool_cap ? loop->stack_pool_cap * 2 : 8;
    void **pool = cf__realloc(loop->stack_pool, cap * sizeof(*pool));
    if (pool != NULL) {
      loop->stack_pool = pool;
      loop->stack_pool_cap = cap;
    }
  }
  if (loop->stack_pool_len < loop->stack_pool_cap)
    loop->stack_pool[loop->stack_pool_len++] = map;
  else
    munmap(map, loop->stack_size + cf__stack_guard());
}

void cf__stack_pool_free(cf_loop_t *loop) {
  while (loop->stack_pool_len > 0)
    munmap(loop->stack_pool[--loop->stack_pool_len],
           loop->stack_size + cf__stack_guard());
  free(loop->stack_pool);
  loop->stack_pool = NULL;
  loop->stack_pool_cap = 0;
}

/* ---- life cycle ---- */

static void dispatch_bridge(void *arg) { cf_bridge_dispatch(arg); }

int cf__loop_executor(cf_loop_t *loop, cf_executor_t **out) {
  if (loop->executor == NULL) {
    cf_executor_options_t opts;
    cf_executor_options_init(&opts);
    opts.thread_name_prefix = "asyncio";
    int rc = cf_executor_create(&loop->executor, &opts);
    if (rc != 0)
      return rc;
    loop->own_executor = true;
  }
  *out = loop->executor;
  return 0;
}

int cf_loop_create(cf_loop_t **out, const cf_loop_options_t *opts) {
  cf_loop_options_t defaults;
  if (opts == NULL) {
    cf_loop_options_init(&defaults);
    opts = &defaults;
  }
  if (out == NULL)
    return CF_EINVAL;
  cf_loop_t *loop = cf__calloc(1, sizeof(*loop));
  if (loop == NULL)
    return CF_ENOMEM;
  size_t page = cf__stack_guard();
  size_t size = opts->stack_size ? opts->stack_size : DEFAULT_STACK_SIZE;
  if (size < 4 * page)
    size = 4 * page;
  loop->stack_size = (size + page - 1) / page * page;
  loop->executor = opts->executor;
  cf__coro_init_main(&loop->main);
#ifdef USE_POLL
  loop->epfd = -1;
  int rc = cf_bridge_create(&loop->bridge);
#else
  loop->epfd = cf__epoll_create1(EPOLL_CLOEXEC);
  int rc = loop->epfd < 0 ? CF_ESYSTEM : cf_bridge_create(&loop->bridge);
#endif
  if (rc == 0)
    rc = cf_loop_add_reader(loop, cf_bridge_fd(loop->bridge), dispatch_bridge,
                            loop->bridge);
  if (rc != 0) {
    cf_bridge_destroy(loop->bridge);
    if (loop->epfd >= 0)
      close(loop->epfd);
    free(loop->fds);
    free(loop->poll_set);
    free(loop);
    return rc;
  }
  *out = loop;
  return 0;
}

int cf_loop_close(cf_loop_t *loop) {
  if (loop == NULL)
    return 0;
  if (loop->running || cf__current_task != NULL)
    return CF_EINVALID_STATE;
  atomic_store(&loop->closing, true);
  /* Every task ends: cancel them and run until they have. */
  for (struct task *t = loop->tasks; t != NULL; t = t->next)
    cf__task_cancel(t);
  while (loop->ntasks > 0) {
    loop->running = true;
    run_iteration(loop, CF_FOREVER);
    loop->running = false;
  }
  /* Deliveries still in flight end cancelled; what that schedules, and
   * everything else still scheduled, is dropped. */
  loop->dropping = true;
  cf_bridge_destroy(loop->bridge);
  while (loop->ready_head != NULL) {
    cf_handle_t *h = loop->ready_head;
    loop->ready_head = h->next;
    handle_discard(h);
  }
  while (loop->heap_len > 0)
    handle_discard(heap_pop(loop));
  cf__lfuture_detach_all(loop);
  free(loop->heap);
  free(loop->fds);
  free(loop->poll_set);
  if (loop->epfd >= 0)
    close(loop->epfd);
  cf__stack_pool_free(loop);
  if (loop->own_executor)
    cf_executor_destroy(loop->executor);
  free(loop);
  return 0;
}
