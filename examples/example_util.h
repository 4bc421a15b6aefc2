/*
 * example_util.h: the error checks and semaphores the examples share, kept
 * out of the way so each example shows only its use of cfutures.
 *
 * expect() exits when a call returns anything but what the example expects;
 * check() prints a failed call and hands its code back, for examples that
 * clean up before they exit. A gate holds a pool worker inside a job until
 * the main thread opens it, so what is running and what is queued is the
 * same on every run. Failing semaphore calls exit the program.
 */
#ifndef CF_EXAMPLE_UTIL_H
#define CF_EXAMPLE_UTIL_H

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfutures.h"

/* Exit with a message unless rc is want. */
static inline void expect(int rc, int want, const char *what) {
  if (rc == want)
    return;
  fprintf(stderr, "%s: got %d %s (%s), expected ", what, rc, cf_err_name(rc),
          cf_strerror(rc));
  if (want > 0) /* a count or a yes/no, not an error code */
    fprintf(stderr, "%d\n", want);
  else
    fprintf(stderr, "%s\n", cf_err_name(want));
  exit(EXIT_FAILURE);
}

/* Print `what` with the error when rc is negative; return rc either way. */
static inline int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "%s: %s (%s)\n", what, cf_strerror(rc), cf_err_name(rc));
  return rc;
}

static inline void init_sem(sem_t *s) {
  if (sem_init(s, 0, 0) != 0) {
    perror("sem_init");
    exit(EXIT_FAILURE);
  }
}

static inline void wait_sem(sem_t *s) {
  while (sem_wait(s) != 0) {
    if (errno != EINTR) {
      perror("sem_wait");
      exit(EXIT_FAILURE);
    }
  }
}

static inline void post_sem(sem_t *s) {
  if (sem_post(s) != 0) {
    perror("sem_post");
    exit(EXIT_FAILURE);
  }
}

/* A job calls gate_enter() to hold its worker: it says it has started, then
 * waits until the main thread opens the gate. */
struct gate {
  sem_t started;
  sem_t open;
};

static inline void gate_init(struct gate *g) {
  init_sem(&g->started);
  init_sem(&g->open);
}

static inline void gate_fini(struct gate *g) {
  sem_destroy(&g->started);
  sem_destroy(&g->open);
}

/* In a job: announce the start, then block until the gate opens. */
static inline void gate_enter(struct gate *g) {
  post_sem(&g->started);
  wait_sem(&g->open);
}

/* In the main thread: block until one more job is inside the gate. */
static inline void gate_wait_started(struct gate *g) { wait_sem(&g->started); }

/* Let n jobs through. */
static inline void gate_open(struct gate *g, int n) {
  for (int i = 0; i < n; i++)
    post_sem(&g->open);
}

#endif /* CF_EXAMPLE_UTIL_H */
