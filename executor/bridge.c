/*
 * cf_bridge: pool futures delivered to an event loop thread.
 *
 * DESIGN
 * - Inbox: a lock-free LIFO of nodes (deliveries and call_threadsafe
 *   calls) that any thread pushes; dispatch takes it whole with one
 *   exchange and reverses it into arrival order. cf_bridge_destroy swaps
 *   in the CLOSED sentinel, after which every push fails, atomically.
 * - Coalesced wake-ups: a producer that pushed flips `pending` from IDLE
 *   to SENDING and only then signals (eventfd write, pipe write, or the
 *   user's wake-up function). dispatch first takes the inbox and runs it (so callbacks do
 *   not wait for a system call), then drains the fd, clears `pending`, and
 *   only then takes the inbox again, so a push it does not see is followed
 *   by a new signal: no wake-up is lost, and a burst of completions costs
 *   one. (Clearing before draining could swallow the signal of a push made
 *   in between.)
 * - Lifetime: the bridge is reference counted: one reference for its
 *   owner, one per live delivery, one held by a producer across push and
 *   signal. The fd is closed (and the wake-up data destroyed) only when the
 *   last reference goes, so no worker writes to a closed or reused fd.
 * - A delivery (cf_then_t) has up to three references: one for the done
 *   callback on the pool future, one for the loop side (dropped once the
 *   user callback ran), one for an inbox entry made by cf_then_cancel. The
 *   `enqueued` flag makes sure it enters the inbox once.
 * - `mu` guards the list of deliveries whose callback has not run (for
 *   destroy) and the closed flag; it is never held while user code runs.
 * - Spin before blocking (cf_bridge_prepare): a loop thread blocked in
 *   poll costs a wake-up per completion, several microseconds on a VM whose
 *   idle vCPU halts. With deliveries in flight, prepare watches `pending`
 *   until a producer has sent its signal (IDLE -> SENDING before the
 *   write, SENDING -> SENT after it, both by CAS), so the loop's poll then
 *   returns at once. The budget adapts as the pool's idle spin does: a
 *   miss notes when the spin began; a delivery that then came within the
 *   ceiling sets the budget to 1.5 times the time it took, a longer wait
 *   halves it (down to 0), so long jobs stop costing spins; prepare with
 *   nothing in flight does nothing. Never when the creating thread may run
 *   on one CPU only (cf__usable_cpus), where the spin would hold the CPU
 *   the job needs.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* The wake-up fd is an eventfd unless configure chose a pipe
 * (--with-bridge-wakeup, default: pipe only where there is no eventfd). */
#ifndef CF_BRIDGE_PIPE
#include <sys/eventfd.h>
#endif

enum node_kind { NODE_THEN, NODE_CALL };

struct node {
  struct node *next;
  enum node_kind kind;
};

#define CLOSED ((struct node *)1)

struct cf_then {
  struct node node; /* first: the inbox holds &t->node */
  cf_bridge_t *bridge;
  cf_future_t *future;
  cf_then_fn fn;
  void *data;
  _Atomic uint32_t refs;
  _Atomic uint32_t enqueued;
  struct cf_then *prev, *next; /* bridge->outstanding, under bridge->mu */
  bool linked;                 /* in bridge->outstanding, under bridge->mu */
  /* Loop thread only; kept away from the atomics above, so that a
   * compiler merging these loads never reads a word a worker writes. */
  bool cancelled;
  bool called;
};

struct call {
  struct node node;
  cf_call_fn fn;
  void *arg;
};

/* bridge->pending: the state of the wake-up signal. */
enum { SIG_IDLE, SIG_SENDING, SIG_SENT };

struct cf_bridge {
  _Atomic(struct node *) inbox;
  _Atomic uint32_t pending; /* SIG_* */
  _Atomic uint32_t refs;
  _Atomic size_t inflight; /* deliveries on `outstanding`: changed under mu */
  int read_fd;  /* -1 with a wake-up function */
  int write_fd; /* == read_fd for an eventfd */
  cf_wakeup_fn wakeup;
  void *wakeup_data;
  cf_free_fn wakeup_dtor;
  unsigned fork_generation;
  pthread_mutex_t mu;
  bool closed;
  struct cf_then *outstanding;
  /* Loop thread only: the nodes taken from the inbox and not yet run, in
   * arrival order. A nested dispatch, or a destroy called from a callback,
   * goes on with them, so every node runs once and before destroy ends. */
  struct node *batch_head, *batch_tail;
  /* Loop thread only: cf_bridge_prepare's spin (see DESIGN), in ns. */
  int64_t spin_max_ns; /* the ceiling: cf_bridge_set_spin_us */
  int64_t spin_ns;     /* the budget, adapted */
  int64_t missed_at;   /* when a spin that missed began; 0: none to judge */
  bool multi_cpu;    /* cf__usable_cpus() > 1 at creation */
};

/* cf_bridge_prepare's spin: the default ceiling, the shortest budget worth
 * a spin, and the largest ceiling cf_bridge_set_spin_us accepts. */
#define SPIN_MAX_DEFAULT_NS 50000L
#define SPIN_MIN_NS 1000L
#define SPIN_MAX_LIMIT_US 1000000

static void bridge_retain(cf_bridge_t *b) {
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

static void bridge_release(cf_bridge_t *b) {
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (b->read_fd >= 0)
    close(b->read_fd);
  if (b->write_fd >= 0 && b->write_fd != b->read_fd)
    close(b->write_fd);
  if (b->wakeup_dtor != NULL)
    b->wakeup_dtor(b->wakeup_data);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

static bool forked(const cf_bridge_t *b) {
  return b->fork_generation != atomic_load(&cf__fork_generation);
}

static int bridge_new(cf_bridge_t **out) {
  cf_bridge_t *b = cf__calloc(1, sizeof(*b));
  if (b == NULL)
    return CF_ENOMEM;
  if (pthread_mutex_init(&b->mu, NULL) != 0) {
    free(b);
    return CF_ENOMEM;
  }
  cf__fork_init();
  atomic_init(&b->refs, 1);
  b->read_fd = b->write_fd = -1;
  b->fork_generation = atomic_load(&cf__fork_generation);
  b->spin_max_ns = b->spin_ns = SPIN_MAX_DEFAULT_NS;
  b->multi_cpu = cf__usable_cpus() > 1;
  *out = b;
  return 0;
}

int cf_bridge_create(cf_bridge_t **out) {
  if (out == NULL)
    return CF_EINVAL;
  cf_bridge_t *b;
  int rc = bridge_new(&b);
  if (rc != 0)
    return rc;
#ifndef CF_BRIDGE_PIPE
  b->read_fd = b->write_fd = cf__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
#else /* a pipe: pipe2 is not everywhere, so set the flags one by one */
  int fds[2];
  if (cf__pipe(fds) == 0) {
    b->read_fd = fds[0];
    b->write_fd = fds[1];
    for (int i = 0; i < 2; i++)
      if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0 ||
          fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) != 0) {
        close(fds[0]);
        close(fds[1]);
        b->read_fd = b->write_fd = -1;
        break;
      }
  }
#endif
  if (b->read_fd < 0) {
    bridge_release(b);
    return CF_ESYSTEM;
  }
  *out = b;
  return 0;
}

int cf_bridge_create_with_wakeup(cf_bridge_t **out, cf_wakeup_fn wakeup,
                                 void *data, cf_free_fn data_dtor) {
  if (out == NULL || wakeup == NULL)
    return CF_EINVAL;
  cf_bridge_t *b;
  int rc = bridge_new(&b);
  if (rc != 0)
    return rc;
  b->wakeup = wakeup;
  b->wakeup_data = data;
  b->wakeup_dtor = data_dtor;
  *out = b;
  return 0;
}

int cf_bridge_fd(const cf_bridge_t *b) {
  return b == NULL || b->read_fd < 0 ? CF_EINVAL : b->read_fd;
}

static void signal_loop(cf_bridge_t *b) {
  uint32_t state = SIG_IDLE;
  if (!atomic_compare_exchange_strong(&b->pending, &state, SIG_SENDING))
    return; /* a wake-up is already on its way */
  if (b->wakeup != NULL) {
    b->wakeup(b->wakeup_data);
  } else {
    uint64_t one = 1;
    ssize_t n;
    do /* a full pipe or counter is readable already: nothing to add */
      n = write(b->write_fd, &one, b->write_fd == b->read_fd ? 8 : 1);
    while (n < 0 && errno == EINTR);
  }
  /* Sent: a spinning prepare may let the loop poll now. If a dispatch
   * reset `pending` meanwhile this fails, as it should; if another
   * producer then began a signal, this marks it sent a little early, and
   * the loop's poll at worst waits for that write. */
  state = SIG_SENDING;
  atomic_compare_exchange_strong(&b->pending, &state, SIG_SENT);
}

/* One read empties an eventfd; a pipe is empty once a read comes back
 * short. Either way the fd is not read again just to see EAGAIN. */
static void drain_fd(cf_bridge_t *b) {
  if (b->read_fd < 0)
    return;
  uint64_t buf[8];
  ssize_t n;
  do
    n = read(b->read_fd, buf, sizeof(buf));
  while (n == (ssize_t)sizeof(buf) || (n < 0 && errno == EINTR));
}

/* Push a node and signal the loop; false if the bridge is closed. Safe
 * from any thread: the caller's reference keeps b alive until the signal
 * is sent even if the loop consumes the node at once. */
static bool push(cf_bridge_t *b, struct node *node) {
  bridge_retain(b);
  struct node *head = atomic_load(&b->inbox);
  do {
    if (head == CLOSED) {
      bridge_release(b);
      return false;
    }
    node->next = head;
  } while (!atomic_compare_exchange_weak(&b->inbox, &head, node));
  signal_loop(b);
  bridge_release(b);
  return true;
}

static void then_release(cf_then_t *t) {
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
    return;
  cf_future_release(t->future);
  bridge_release(t->bridge);
  free(t);
}

/* Queue t for dispatch unless it is queued already; consumes one
 * reference of the caller's either way. */
static void enqueue_then(cf_then_t *t) {
  if (atomic_exchange(&t->enqueued, 1) != 0 || !push(t->bridge, &t->node))
    then_release(t);
}

/* The pool future's done callback: any thread. */
static void then_on_done(cf_future_t *f, void *data) {
  (void)f;
  enqueue_then(data);
}

/* Take t off the outstanding list; false if it was not on it. */
static bool unlink_outstanding(cf_then_t *t) {
  cf_bridge_t *b = t->bridge;
  pthread_mutex_lock(&b->mu);
  bool was_linked = t->linked;
  if (was_linked) {
    if (t->prev != NULL)
      t->prev->next = t->next;
    else
      b->outstanding = t->next;
    if (t->next != NULL)
      t->next->prev = t->prev;
    t->linked = false;
    atomic_fetch_sub_explicit(&b->inflight, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&b->mu);
  return was_linked;
}

/* Loop thread: run t's callback unless it ran; drop the loop side's
 * reference. */
static void deliver(cf_then_t *t, int status) {
  if (t->called)
    return;
  t->called = true;
  (void)unlink_outstanding(t);
  t->fn(t->future, status, t->data);
  /* Done with the future: a producer that abandons it (running, never
   * completed) must be able to free it, which runs its done callbacks and
   * so lets go of t, instead of a cycle keeping both for ever. */
  cf_future_t *f = t->future;
  t->future = NULL;
  cf_future_release(f);
  then_release(t);
}

static int then_status(const cf_then_t *t) {
  if (t->cancelled || cf_future_cancelled(t->future))
    return CF_ECANCELLED;
  return cf__future_failed(t->future) ? CF_EFAILED : 0;
}

/* Run one inbox node; closing: deliveries end cancelled. */
static void run_node(struct node *node, bool closing) {
  if (node->kind == NODE_CALL) {
    struct call *c = (struct call *)node;
    c->fn(c->arg);
    free(c);
    return;
  }
  cf_then_t *t = (cf_then_t *)node;
  deliver(t, closing ? CF_ECANCELLED : then_status(t));
  then_release(t); /* the inbox entry's reference */
}

/* Append a list taken from the inbox (newest first) to the batch. */
static void batch_append(cf_bridge_t *b, struct node *lifo) {
  struct node *fifo = NULL, *last = lifo;
  while (lifo != NULL) {
    struct node *next = lifo->next;
    lifo->next = fifo;
    fifo = lifo;
    lifo = next;
  }
  if (fifo == NULL)
    return;
  if (b->batch_tail != NULL)
    b->batch_tail->next = fifo;
  else
    b->batch_head = fifo;
  b->batch_tail = last;
}

/* Run the batch to its end; returns how many nodes ran. */
static int run_batch(cf_bridge_t *b, bool closing) {
  int count = 0;
  struct node *node;
  while ((node = b->batch_head) != NULL) {
    b->batch_head = node->next;
    if (b->batch_head == NULL)
      b->batch_tail = NULL;
    run_node(node, closing);
    count++;
  }
  return count;
}

/* Take the inbox, unless destroy closed it (a callback may have). */
static struct node *take_inbox(cf_bridge_t *b) {
  struct node *top = atomic_load(&b->inbox);
  while (top != NULL && top != CLOSED &&
         !atomic_compare_exchange_weak(&b->inbox, &top, NULL))
    ;
  return top == CLOSED ? NULL : top;
}

/* The clock of prepare's spin: a test's in the fault-injection build. */
static int64_t spin_clock(void) {
#ifdef CF_FAULT_INJECTION
  if (cf__fault_clock_hook != NULL)
    return cf__fault_clock_hook();
#endif
  return cf__now_ns();
}

/* Learn from a spin that missed: `delivered` if a delivery has come since,
 * else the wait has outlasted the ceiling. Had the spin lasted as long as
 * this wait, it would have caught the delivery: within the ceiling, spin
 * that long (with a margin) next time; beyond it, halve the budget. */
static void judge_spin(cf_bridge_t *b, bool delivered) {
  int64_t waited = spin_clock() - b->missed_at;
  if (delivered && waited <= b->spin_max_ns) {
    int64_t want = waited + waited / 2;
    b->spin_ns = want < b->spin_max_ns ? want : b->spin_max_ns;
  } else {
    b->spin_ns = b->spin_ns / 2 >= SPIN_MIN_NS ? b->spin_ns / 2 : 0;
  }
  b->missed_at = 0;
}

int cf_bridge_dispatch(cf_bridge_t *b) {
  if (b == NULL)
    return CF_EINVAL;
  if (forked(b))
    return CF_EFORKED;
  bridge_retain(b); /* a callback may destroy the bridge */
  /* Deliver first: the system call that drains the fd comes after the
   * callbacks. Then drain, clear `pending`, and take the inbox again.
   * This order cannot lose a wake-up: a push made before the store either
   * is in one of the two takes or found a signal on its way with its node
   * still ahead of the second take; a push that finds `pending` IDLE after
   * the store signals again. */
  batch_append(b, take_inbox(b));
  int count = run_batch(b, false);
  drain_fd(b);
  atomic_store(&b->pending, SIG_IDLE);
  batch_append(b, take_inbox(b));
  count += run_batch(b, false);
  if (count > 0 && b->missed_at != 0)
    judge_spin(b, true);
  bridge_release(b);
  return count;
}

/* ---- spinning before the loop blocks (see DESIGN) ---- */

/* Watch `pending` for up to ns: true once a producer's signal is sent. */
static bool spin_for_signal(cf_bridge_t *b, int64_t start, int64_t ns) {
  int64_t until = start + ns;
  for (unsigned i = 1;; i++) {
    cf__cpu_relax();
    if (atomic_load_explicit(&b->pending, memory_order_acquire) == SIG_SENT)
      return true;
    if (i % 64 == 0 && spin_clock() >= until)
      return false;
  }
}

int cf_bridge_prepare(cf_bridge_t *b) {
  if (b == NULL)
    return CF_EINVAL;
  if (forked(b))
    return CF_EFORKED;
  /* SENDING: a producer is writing; 1 only once the fd is readable. */
  uint32_t sig = atomic_load(&b->pending);
  if (sig == SIG_SENT)
    return 1;
  if (sig == SIG_IDLE &&
      atomic_load_explicit(&b->inflight, memory_order_relaxed) == 0) {
    b->missed_at = 0; /* nothing to wait for: nothing to learn */
    return 0;
  }
  int64_t now = spin_clock();
  if (b->missed_at != 0 && now - b->missed_at > b->spin_max_ns)
    judge_spin(b, false);
  int64_t budget = b->multi_cpu ? b->spin_ns : 0;
#ifdef CF_FAULT_INJECTION
  if (cf__fault_spin_hook != NULL)
    cf__fault_spin_hook(budget);
#endif
  if (budget > 0 && spin_for_signal(b, now, budget)) {
    b->missed_at = 0;
    return 1;
  }
  if (b->missed_at == 0)
    b->missed_at = now;
  return atomic_load(&b->pending) == SIG_SENT;
}

int cf_bridge_set_spin_us(cf_bridge_t *b, int us) {
  if (b == NULL || us < 0 || us > SPIN_MAX_LIMIT_US)
    return CF_EINVAL;
  b->spin_max_ns = b->spin_ns = (int64_t)us * 1000;
  b->missed_at = 0;
  return 0;
}

/* A delivery not yet tied to a future, so that run_in_executor can fail
 * for want of memory before it submits (the caller then keeps arg). */
cf_then_t *cf__then_new(cf_bridge_t *b, cf_then_fn fn, void *data) {
  cf_then_t *t = cf__calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->node.kind = NODE_THEN;
  t->bridge = b;
  t->fn = fn;
  t->data = data;
  atomic_init(&t->refs, 2); /* the done callback's and the loop side's */
  return t;
}

bool cf__bridge_closed(cf_bridge_t *b) {
  pthread_mutex_lock(&b->mu);
  bool closed = b->closed;
  pthread_mutex_unlock(&b->mu);
  return closed;
}

int cf__then_start(cf_then_t *t, cf_future_t *f) {
  cf_bridge_t *b = t->bridge;
  pthread_mutex_lock(&b->mu);
  if (b->closed) {
    pthread_mutex_unlock(&b->mu);
    free(t);
    return CF_ESHUTDOWN;
  }
  t->future = cf_future_retain(f);
  bridge_retain(b);
  t->next = b->outstanding;
  if (t->next != NULL)
    t->next->prev = t;
  b->outstanding = t;
  t->linked = true;
  atomic_fetch_add_explicit(&b->inflight, 1, memory_order_relaxed);
  pthread_mutex_unlock(&b->mu);
  int rc = cf_future_add_done_callback(f, then_on_done, t);
  if (rc != 0) {
    /* The done callback's reference was never handed out. Unless a
     * destroy on the loop thread took t over (and ran fn), undo it all. */
    if (unlink_outstanding(t)) {
      atomic_store(&t->refs, 1);
      then_release(t);
      return rc;
    }
    then_release(t);
    return 0; /* fn ran, with CF_ECANCELLED, exactly once */
  }
  return 0;
}

int cf_bridge_then(cf_bridge_t *b, cf_future_t *f, cf_then_fn fn, void *data,
                   cf_then_t **out) {
  if (b == NULL || f == NULL || fn == NULL)
    return CF_EINVAL;
  if (forked(b))
    return CF_EFORKED;
  cf_then_t *t = cf__then_new(b, fn, data);
  if (t == NULL)
    return CF_ENOMEM;
  int rc = cf__then_start(t, f);
  if (rc == 0 && out != NULL)
    *out = t;
  return rc;
}

int cf_then_cancel(cf_then_t *t) {
  if (t == NULL)
    return CF_EINVAL;
  if (t->called || t->cancelled)
    return 0;
  t->cancelled = true;
  cf_future_cancel(t->future); /* queued: its done callback enqueues t */
  atomic_fetch_add(&t->refs, 1); /* for an inbox entry of our own */
  enqueue_then(t);
  return 1;
}

int cf_bridge_run_in_executor(cf_bridge_t *b, cf_executor_t *ex, cf_job_fn fn,
                              void *arg, cf_free_fn arg_dtor, cf_then_fn cb,
                              void *data, cf_then_t **out) {
  if (b == NULL || ex == NULL || fn == NULL || cb == NULL)
    return CF_EINVAL;
  if (forked(b))
    return CF_EFORKED;
  if (cf__bridge_closed(b))
    return CF_ESHUTDOWN;
  /* Everything that can fail for want of memory comes before the submit,
   * so that any error but the last one below leaves arg with the caller. */
  cf_then_t *t = cf__then_new(b, cb, data);
  if (t == NULL)
    return CF_ENOMEM;
  cf_future_t *f;
  int rc = cf_executor_submit(ex, fn, arg, arg_dtor, &f);
  if (rc != 0) {
    free(t);
    return rc;
  }
  /* A fresh future has no callback yet: registering allocates nothing.
   * Only a destroy racing with this call can make it fail (CF_ESHUTDOWN):
   * then the job is cancelled and the pool owns arg. */
  rc = cf__then_start(t, f);
  if (rc != 0)
    cf_future_cancel(f);
  else if (out != NULL)
    *out = t;
  cf_future_release(f);
  return rc;
}

int cf_bridge_call_threadsafe(cf_bridge_t *b, cf_call_fn fn, void *arg) {
  if (b == NULL || fn == NULL)
    return CF_EINVAL;
  if (forked(b))
    return CF_EFORKED;
  struct call *c = cf__malloc(sizeof(*c));
  if (c == NULL)
    return CF_ENOMEM;
  c->node.kind = NODE_CALL;
  c->fn = fn;
  c->arg = arg;
  if (!push(b, &c->node)) {
    free(c);
    return CF_ESHUTDOWN;
  }
  return 0;
}

void cf_bridge_destroy(cf_bridge_t *b) {
  if (b == NULL)
    return;
  pthread_mutex_lock(&b->mu);
  b->closed = true; /* no new deliveries */
  pthread_mutex_unlock(&b->mu);
  batch_append(b, atomic_exchange(&b->inbox, CLOSED));
  run_batch(b, true);
  /* Cancel what is still outstanding; its done callbacks now find the
   * inbox closed and just drop their reference. */
  for (;;) {
    /* Take t off the list and a reference to it under the lock, so that a
     * then() failing on another thread either unlinks it first (and we
     * never see it) or finds it taken over (and leaves it to us). */
    pthread_mutex_lock(&b->mu);
    cf_then_t *t = b->outstanding;
    if (t != NULL) {
      b->outstanding = t->next;
      if (t->next != NULL)
        t->next->prev = NULL;
      t->linked = false;
      atomic_fetch_sub_explicit(&b->inflight, 1, memory_order_relaxed);
      atomic_fetch_add(&t->refs, 1); /* keep t across the cancel */
    }
    pthread_mutex_unlock(&b->mu);
    if (t == NULL)
      break;
    t->cancelled = true;
    cf_future_cancel(t->future);
    deliver(t, CF_ECANCELLED);
    then_release(t);
  }
  bridge_release(b);
}
