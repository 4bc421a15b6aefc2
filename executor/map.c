/*
 * cf_executor_map: Executor.map with buffersize (3.14) and the behaviour
 * of CPython main: each position yields its own result or failure and
 * iteration goes on; the timeout counts from the call and, when it
 * passes, every call not yet started is cancelled.
 *
 * The submitted futures sit in a ring, oldest first. With a buffersize,
 * each cf_map_next pulls and submits one more argument before it waits for
 * the oldest, so at most buffersize + 1 calls are outstanding.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct cf_map {
  cf_executor_t *ex;
  cf_job_fn fn;
  cf_map_input_fn next_arg;
  void *source;
  cf_free_fn arg_dtor;
  cf__deadline_t deadline;
  size_t buffersize; /* 0: everything submitted at creation */
  cf_future_t **ring;
  size_t cap, head, count;
  int error; /* a submit or input error, reported once the ring drains */
  bool input_done;
  bool finished;
  cf_future_t *current; /* the future handed out last, released next time */
};

static int ring_push(cf_map_t *m, cf_future_t *f) {
  if (m->count == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    cf_future_t **ring = cf__malloc(cap * sizeof(*ring));
    if (ring == NULL)
      return CF_ENOMEM;
    for (size_t i = 0; i < m->count; i++)
      ring[i] = m->ring[(m->head + i) % m->cap];
    free(m->ring);
    m->ring = ring;
    m->cap = cap;
    m->head = 0;
  }
  m->ring[(m->head + m->count) % m->cap] = f;
  m->count++;
  return 0;
}

static cf_future_t *ring_pop(cf_map_t *m) {
  cf_future_t *f = m->ring[m->head];
  m->head = (m->head + 1) % m->cap;
  m->count--;
  return f;
}

/* Pull one argument and submit it: 1, 0 at the end of input, or an error
 * (then the input is considered done). */
static int pull_one(cf_map_t *m) {
  void *arg = NULL;
  int rc = m->next_arg(m->source, &arg);
  if (rc <= 0) {
    m->input_done = true;
    return rc;
  }
  cf_future_t *f;
  rc = cf_executor_submit(m->ex, m->fn, arg, m->arg_dtor, &f);
  if (rc != 0) {
    if (m->arg_dtor != NULL)
      m->arg_dtor(arg); /* submit failed: the argument is still ours */
    m->input_done = true;
    return rc;
  }
  if (ring_push(m, f) != 0) {
    cf_future_cancel(f); /* the job owns arg now: it is dropped with it */
    cf_future_release(f);
    m->input_done = true;
    return CF_ENOMEM;
  }
  return 1;
}

/* Cancel and drop every future still in the ring. */
static void cancel_rest(cf_map_t *m) {
  while (m->count > 0) {
    cf_future_t *f = ring_pop(m);
    cf_future_cancel(f);
    cf_future_release(f);
  }
}

int cf_executor_map(cf_executor_t *ex, cf_job_fn fn, cf_map_input_fn next_arg,
                    void *source, cf_free_fn arg_dtor, double timeout,
                    size_t buffersize, cf_map_t **out) {
  cf__deadline_t deadline;
  if (ex == NULL || fn == NULL || next_arg == NULL || out == NULL ||
      cf__deadline_init(&deadline, timeout) != 0)
    return CF_EINVAL;
  cf_map_t *m = cf__calloc(1, sizeof(*m));
  if (m == NULL)
    return CF_ENOMEM;
  m->ex = ex;
  m->fn = fn;
  m->next_arg = next_arg;
  m->source = source;
  m->arg_dtor = arg_dtor;
  m->deadline = deadline;
  m->buffersize = buffersize;
  while (!m->input_done && (buffersize == 0 || m->count < buffersize)) {
    int rc = pull_one(m);
    if (rc < 0) {
      cf_map_destroy(m);
      return rc;
    }
  }
  *out = m;
  return 0;
}

int cf_map_next(cf_map_t *m, cf_future_t **f) {
  if (m == NULL || f == NULL)
    return CF_EINVAL;
  cf_future_release(m->current);
  m->current = NULL;
  if (m->finished)
    return CF_EOF;
  if (m->buffersize > 0 && !m->input_done) {
    int rc = pull_one(m);
    if (rc < 0)
      m->error = rc;
  }
  if (m->count == 0) {
    m->finished = true;
    int rc = m->error != 0 ? m->error : CF_EOF;
    m->error = 0;
    return rc;
  }
  if (cf__future_wait(m->ring[m->head], &m->deadline) != 0) {
    cancel_rest(m);
    m->finished = true;
    return CF_ETIMEDOUT;
  }
  m->current = ring_pop(m);
  *f = m->current;
  return 0;
}

void cf_map_destroy(cf_map_t *m) {
  if (m == NULL)
    return;
  cf_future_release(m->current);
  cancel_rest(m);
  free(m->ring);
  free(m);
}
