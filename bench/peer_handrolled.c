/*
 * peer_handrolled.c: what users write when they have no library.
 *
 * A fixed set of threads take tasks from one mutex-protected linked list
 * (a condition variable wakes them); each task with a future gets its own
 * mutex + condition variable + done flag, and a reference count shared by
 * the pool and the submitter. No cancel, no callbacks, no help while
 * waiting: a job that waits for another job of the same pool can deadlock.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

struct hr_future {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
  bool done;
  intptr_t value;
  atomic_int refs;
};

struct hr_task {
  struct hr_task *next;
  bench_job_t *job;
  struct hr_future *future;
};

struct hr_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct hr_task *head, *tail;
  bool stop;
  int nthreads;
  pthread_t threads[BENCH_MAX_WORKERS];
};

static pthread_condattr_t monotonic;
static pthread_once_t monotonic_once = PTHREAD_ONCE_INIT;

static void monotonic_init(void) {
  pthread_condattr_init(&monotonic);
  pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
}

static void future_release(void *fut) {
  struct hr_future *f = fut;
  if (atomic_fetch_sub(&f->refs, 1) == 1) {
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
  }
}

static void future_complete(struct hr_future *f, intptr_t value) {
  pthread_mutex_lock(&f->mu);
  f->value = value;
  f->done = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  future_release(f);
}

static void *worker(void *arg) {
  struct hr_pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->head == NULL && !p->stop)
      pthread_cond_wait(&p->cv, &p->mu);
    struct hr_task *t = p->head;
    if (t == NULL)
      break;
    p->head = t->next;
    if (p->head == NULL)
      p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    bench_job_run(t->job);
    bench_job_finish(t->job);
    if (t->future != NULL)
      future_complete(t->future, t->job->value);
    free(t);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void destroy(void *pool) {
  struct hr_pool *p = pool;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

static void *create(int workers) {
  struct hr_pool *p = bench_xmalloc(sizeof(*p));
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (; p->nthreads < workers; p->nthreads++)
    if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) != 0)
      bench_die("handrolled: pthread_create");
  return p;
}

static void submit(void *pool, bench_job_t *j, void **fut) {
  struct hr_pool *p = pool;
  struct hr_task *t = malloc(sizeof(*t));
  if (t == NULL)
    bench_die("out of memory");
  t->next = NULL;
  t->job = j;
  t->future = NULL;
  if (fut != NULL) {
    struct hr_future *f = malloc(sizeof(*f));
    if (f == NULL)
      bench_die("out of memory");
    pthread_once(&monotonic_once, monotonic_init);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, &monotonic);
    f->done = false;
    f->value = 0;
    atomic_init(&f->refs, 2); /* the submitter's and the task's */
    t->future = f;
    *fut = f;
  }
  pthread_mutex_lock(&p->mu);
  if (p->tail != NULL)
    p->tail->next = t;
  else
    p->head = t;
  p->tail = t;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static int result(void *fut, double timeout, intptr_t *value) {
  struct hr_future *f = fut;
  struct timespec ts;
  if (!isinf(timeout)) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double end = (double)ts.tv_nsec / 1e9 + timeout;
    ts.tv_sec += (time_t)end;
    ts.tv_nsec = (long)((end - floor(end)) * 1e9);
  }
  int err = 0;
  pthread_mutex_lock(&f->mu);
  while (!f->done && err != ETIMEDOUT) {
    if (isinf(timeout))
      pthread_cond_wait(&f->cv, &f->mu);
    else
      err = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
  }
  bool done = f->done;
  *value = f->value;
  pthread_mutex_unlock(&f->mu);
  return done ? 0 : 1;
}

const bench_peer_t bench_peer_handrolled = {
    .impl = "handrolled",
    .form = "mutex+condvar pool, mutex+condvar future per job",
    .available = true,
    .queue = true,
    .futures = true,
    .nested = true,
    .create = create,
    .destroy = destroy,
    .submit = submit,
    .result = result,
    .release = future_release,
};
