/*
 * Shared helpers for the cmocka tests: deterministic schedules without
 * sleeps. A gate is a semaphore a job blocks on until the test opens it;
 * jobs record what they saw into atomics and the test thread asserts.
 */
#ifndef CF_TEST_HELPERS_H
#define CF_TEST_HELPERS_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "cfutures.h"

/* A job argument that blocks its job until opened. `started` is posted when
 * the job begins, so the test can wait until a worker is inside it. */
typedef struct gate {
  sem_t started;
  sem_t open;
} gate_t;

static inline void gate_init(gate_t *g) {
  sem_init(&g->started, 0, 0);
  sem_init(&g->open, 0, 0);
}

static inline void gate_fini(gate_t *g) {
  sem_destroy(&g->started);
  sem_destroy(&g->open);
}

/* Block the test thread until a job has entered the gate. */
static inline void gate_wait_started(gate_t *g) {
  while (sem_wait(&g->started) != 0) {
  }
}

/* Let n jobs through the gate. */
static inline void gate_open(gate_t *g, int n) {
  for (int i = 0; i < n; i++)
    sem_post(&g->open);
}

/* Job: announce, wait for the gate, return the gate pointer as value. */
static inline int gated_job(void *arg, cf_job_t *job) {
  gate_t *g = arg;
  sem_post(&g->started);
  while (sem_wait(&g->open) != 0) {
  }
  cf_job_return(job, arg, NULL);
  return 0;
}

/* Job: return arg as the value at once. */
static inline int echo_job(void *arg, cf_job_t *job) {
  cf_job_return(job, arg, NULL);
  return 0;
}

/* Job: fail with the code in arg (an intptr_t) and a message. */
static inline int failing_job(void *arg, cf_job_t *job) {
  return cf_job_fail(job, (int)(intptr_t)arg, "failed with %d",
                     (int)(intptr_t)arg);
}

/* A counter that destructors and callbacks bump; the test asserts on it. */
static atomic_int counter_hits;

static inline void count_free(void *ptr) {
  (void)ptr;
  atomic_fetch_add(&counter_hits, 1);
}

static inline void count_done(cf_future_t *f, void *data) {
  (void)f;
  atomic_fetch_add((atomic_int *)data, 1);
}

/* Block the test thread on f and return the result code. */
static inline int wait_result(cf_future_t *f, void **value) {
  return cf_future_result(f, CF_FOREVER, value);
}

/* Affinity helpers, where <sched.h> has them (_GNU_SOURCE defined before
 * the first system header). */
#include <sched.h>
#ifdef CPU_COUNT

/* The CPUs the calling thread may run on (the library's "usable CPUs"). */
static inline int usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) < 1)
    return -1;
  return CPU_COUNT(&set);
}

/* Limit the calling thread to the first CPU it may run on; *saved gets
 * the mask to give back to unpin_thread. 0, or -1 if that failed. */
static inline int pin_thread_to_one_cpu(cpu_set_t *saved) {
  if (sched_getaffinity(0, sizeof(*saved), saved) != 0)
    return -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
    if (CPU_ISSET(cpu, saved)) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      return sched_setaffinity(0, sizeof(one), &one);
    }
  return -1;
}

static inline int unpin_thread(const cpu_set_t *saved) {
  return sched_setaffinity(0, sizeof(*saved), saved);
}
#endif /* CPU_COUNT */

#endif /* CF_TEST_HELPERS_H */
