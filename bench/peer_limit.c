/*
 * peer_limit.c: the hardware floor.
 *
 * One producer (the calling thread) and one consumer thread that spins on
 * a single-producer single-consumer ring of job pointers: no locks, no
 * sleeping, no futures. drain spins until the consumer has run everything
 * submitted, so one job submitted and drained is a spinning ping-pong
 * between two threads. The consumer burns a core even when idle: this is
 * the cost that a real pool must not pay. The producer and the consumer
 * are pinned to two different CPUs while the ring exists: two spinning
 * threads that the scheduler puts on one CPU take turns by time slices.
 */
#include "bench.h"

#include <sched.h>
#include <stdlib.h>

#define RING 4096 /* a power of two */

#if defined(__x86_64__) || defined(__i386__)
#define relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define relax() __asm__ __volatile__("yield")
#else
#define relax() ((void)0)
#endif

struct limit {
  _Alignas(64) atomic_size_t head; /* written by the producer */
  size_t tail_seen;                /* producer's copy of tail */
  size_t submitted;
  _Alignas(64) atomic_size_t tail; /* written by the consumer */
  _Alignas(64) atomic_size_t completed;
  _Alignas(64) atomic_bool stop;
  pthread_t thread;
  cpu_set_t producer_cpus; /* the producer's affinity before */
  bench_job_t *ring[RING];
};

static void *consumer(void *arg) {
  struct limit *l = arg;
  size_t tail = 0, head = 0;
  for (;;) {
    while (head == tail) {
      head = atomic_load_explicit(&l->head, memory_order_acquire);
      if (head != tail)
        break;
      if (atomic_load_explicit(&l->stop, memory_order_relaxed))
        return NULL;
      relax();
    }
    bench_job_t *j = l->ring[tail % RING];
    atomic_store_explicit(&l->tail, ++tail, memory_order_release);
    bench_job_run(j);
    atomic_store_explicit(&l->completed, tail, memory_order_release);
  }
}

/* Pin the caller to one CPU it may run on and the consumer to another. */
static void pin(struct limit *l) {
  cpu_set_t one;
  int first = -1, second = -1;
  pthread_getaffinity_np(pthread_self(), sizeof(l->producer_cpus),
                         &l->producer_cpus);
  for (int c = 0; c < CPU_SETSIZE && second < 0; c++)
    if (CPU_ISSET(c, &l->producer_cpus))
      *(first < 0 ? &first : &second) = c;
  if (second < 0)
    return; /* one CPU: nothing to pin */
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
  CPU_ZERO(&one);
  CPU_SET(second, &one);
  pthread_setaffinity_np(l->thread, sizeof(one), &one);
}

static void *create(int workers) {
  (void)workers; /* always one consumer */
  struct limit *l = bench_xmalloc(sizeof(*l));
  if (pthread_create(&l->thread, NULL, consumer, l) != 0)
    bench_die("limit: pthread_create");
  pin(l);
  return l;
}

static void destroy(void *pool) {
  struct limit *l = pool;
  atomic_store(&l->stop, true);
  pthread_join(l->thread, NULL);
  pthread_setaffinity_np(pthread_self(), sizeof(l->producer_cpus),
                         &l->producer_cpus);
  free(l);
}

static void submit(void *pool, bench_job_t *j, void **fut) {
  (void)fut;
  struct limit *l = pool;
  size_t head = l->submitted;
  while (head - l->tail_seen >= RING) {
    l->tail_seen = atomic_load_explicit(&l->tail, memory_order_acquire);
    if (head - l->tail_seen >= RING)
      relax();
  }
  l->ring[head % RING] = j;
  atomic_store_explicit(&l->head, head + 1, memory_order_release);
  l->submitted = head + 1;
}

static void drain(void *pool) {
  struct limit *l = pool;
  while (atomic_load_explicit(&l->completed, memory_order_acquire) !=
         l->submitted)
    relax();
}

const bench_peer_t bench_peer_limit = {
    .impl = "limit",
    .form = "spinning SPSC ring, 1 producer + 1 spinning consumer, no "
            "futures",
    .available = true,
    .create = create,
    .destroy = destroy,
    .submit = submit,
    .drain = drain,
};
