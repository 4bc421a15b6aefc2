/*
 * bench.h: what the parts of cfutures-bench share.
 *
 * - cfg: the sizes of every workload (default and --quick) and the options.
 * - timing: wall clock, process and thread CPU time, RSS, busy waiting.
 * - latch and gate: the completion signal of peers without futures (a
 *   mutex + condition variable countdown, what a user writes by hand) and
 *   the gates that keep workers busy.
 * - jobs: every workload submits bench_job_t items. A peer's worker runs
 *   bench_job_run (the body) and, if the peer has no futures, counts the
 *   job's latch down with bench_job_finish.
 * - peers: each C peer fills a bench_peer_t; the drivers of drivers.c run
 *   the workloads whose shape is the same for every peer through it.
 * - report: each figure is the median of cfg.reps runs (scaling's small
 *   sizes: more), with min and max, printed as a table row now and as a
 *   RESULT line at the end.
 */
#ifndef CF_BENCH_H
#define CF_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Configuration                                                      */
/* ------------------------------------------------------------------ */

#define BENCH_MAX_REPS 99
#define BENCH_MAX_WORKERS 64

typedef struct bench_cfg {
  int workers; /* every pool gets this many threads */
  int reps;    /* repetitions per figure; the median is reported */
  bool quick;
  bool rows;         /* a child run: print ROW/NOTE/SKIP lines, no table */
  const char *only;  /* comma-separated workloads to run, NULL: all */
  const char *impls; /* comma-separated impls to run, NULL: all */
  const char *python;       /* interpreter for the python peer */
  const char *python_script;

  long jobs;           /* throughput, futures */
  long py_jobs;        /* the same for python (far slower) */
  long rounds;         /* roundtrip */
  long py_rounds;
  double idle_window;  /* idle_cpu: seconds of idleness measured */
  long idle_burst;     /* idle_cpu: jobs before the idle window */
  long gap_samples[3]; /* latency_gap: samples at gap 0, 50 us, 1 ms */
  long bridge_rounds;  /* bridge: one at a time */
  long bridge_jobs;    /* bridge: jobs with bridge_inflight in flight */
  long bridge_inflight;
  int fanout_depth;
  double fanout_limit; /* seconds before a fanout is declared deadlocked */
  long ac_jobs;        /* as_completed */
  long timeouts;       /* timeout: samples over all repetitions */
  long peer_timeouts;  /* the same for the peers */
  long cancels;        /* cancel: futures cancelled, and shutdown size */
  long mem_futures;    /* memory */
  long py_mem_futures;
  int scaling_max_exp;  /* scaling: 10^4 .. 10^max for cfutures */
  int scaling_peer_exp; /* and 10^4 .. 10^this for the C peers */
  int scaling_py_exp;   /* and for python */
  long switches;        /* tasks */
  long tasks;
} bench_cfg_t;

extern bench_cfg_t bench_cfg;

/* True if name is selected by list (comma-separated; NULL selects all). */
bool bench_selected(const char *list, const char *name);

/* ------------------------------------------------------------------ */
/* Timing                                                             */
/* ------------------------------------------------------------------ */

double bench_now(void);        /* CLOCK_MONOTONIC, seconds */
int64_t bench_now_ns(void);    /* CLOCK_MONOTONIC, nanoseconds */
double bench_cpu(void); /* user + system CPU of the process and its
                           finished children, seconds */
double bench_thread_cpu(void); /* the calling thread's CPU, seconds */
/* CPU time used by every process on the machine (/proc/stat), seconds;
 * minus bench_cpu(), what other processes took: noise in the figures. */
double bench_machine_cpu(void);
/* CPU of this process's threads, each read from its own CPU clock: unlike
 * getrusage, this includes the time that a thread running at this moment
 * has not been charged yet (up to a scheduler tick: 4 ms at HZ=250), which
 * would otherwise land in the next measurement. For idle_cpu, whose window
 * starts while the workers are still finishing the burst. A snapshot, then
 * the CPU used since by the threads alive now (those that exited meanwhile
 * are left out; threads started meanwhile count in full). */
#define BENCH_MAX_THREADS 512
typedef struct bench_cpu_snapshot {
  int n;
  long tid[BENCH_MAX_THREADS];
  double cpu[BENCH_MAX_THREADS];
} bench_cpu_snapshot_t;
void bench_cpu_snapshot(bench_cpu_snapshot_t *s);
double bench_cpu_since(const bench_cpu_snapshot_t *s);
double bench_rss(void);        /* resident set size, bytes */
void bench_trim(void);         /* give freed heap memory back to the OS */
void bench_spin_us(double us); /* busy-wait */
void bench_sleep(double s);    /* nanosleep */
void *bench_xmalloc(size_t size); /* calloc that exits on failure */
void bench_die(const char *what);

/* ------------------------------------------------------------------ */
/* Latch and gate                                                     */
/* ------------------------------------------------------------------ */

typedef struct bench_latch {
  atomic_long left;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
} bench_latch_t;

void bench_latch_init(bench_latch_t *l);
void bench_latch_fini(bench_latch_t *l);
void bench_latch_arm(bench_latch_t *l, long count);
void bench_latch_done(bench_latch_t *l);
/* Wait until the count reaches 0, or until the CLOCK_MONOTONIC time
 * deadline (seconds; INFINITY: no limit). Returns true if it reached 0. */
bool bench_latch_wait(bench_latch_t *l, double deadline);

/* ------------------------------------------------------------------ */
/* Jobs                                                               */
/* ------------------------------------------------------------------ */

enum { BENCH_PENDING = 0, BENCH_RAN = 1, BENCH_CANCELLED = 2 };

typedef struct bench_job bench_job_t;
typedef intptr_t (*bench_fn)(bench_job_t *job);

struct bench_job {
  bench_fn fn;
  void *arg;
  intptr_t value;     /* the body's return value (peers without futures) */
  bench_latch_t *done; /* counted down after the body (idem), or NULL */
  int outcome;        /* BENCH_RAN once run; BENCH_CANCELLED set by peers */
};

static inline void bench_job_run(bench_job_t *j) {
  j->value = j->fn(j);
  j->outcome = BENCH_RAN;
}

static inline void bench_job_finish(bench_job_t *j) {
  if (j->done != NULL)
    bench_latch_done(j->done);
}

/* Fill jobs[0..n) with fn, arg and done; value and outcome 0. */
void bench_jobs_init(bench_job_t *jobs, long n, bench_fn fn, void *arg,
                     bench_latch_t *done);

/* Bodies shared by the drivers and the peers. */
intptr_t bench_empty_fn(bench_job_t *j);   /* returns 0 */
intptr_t bench_spin_fn(bench_job_t *j);    /* spins (intptr_t)arg us */

/* ------------------------------------------------------------------ */
/* Peers                                                              */
/* ------------------------------------------------------------------ */

/* A bridge: an event loop on the calling thread that submits jobs to a
 * pool of cfg.workers threads and gets each completion back on the loop,
 * where its callback calls bench_delivered(delivered). */
/* Count a delivery, on the loop thread, and note when it ran: a round
 * trip ends when the result callback runs, not when the loop iteration
 * that ran it returns. */
void bench_delivered(long *delivered);
extern double bench_last_delivery; /* bench_now() of the latest one */

typedef struct bench_bridge_ops {
  void *(*open)(long *delivered);
  void (*submit)(void *b);
  void (*run_once)(void *b); /* block until at least one delivery ran */
  void (*close)(void *b);
} bench_bridge_ops_t;

/* Completion order: open a pool (and whatever the consumer needs); run
 * submits jobs[0..n) (bench_spin_fn bodies) and consumes every completion
 * in completion order on the calling thread. */
typedef struct bench_ac_ops {
  void *(*open)(void);
  void (*run)(void *ctx, bench_job_t *jobs, long n);
  void (*close)(void *ctx);
} bench_ac_ops_t;

typedef struct bench_peer {
  const char *impl; /* as in RESULT lines */
  const char *form; /* table note: what the peer runs */
  bool available;   /* false: every workload prints its skipped line */
  bool queue;       /* an unbounded queue that can hold pending jobs */
  bool futures;     /* submit can hand out a future: result() etc. below */
  bool nested;      /* jobs may submit to their own pool (fanout) */
  bool helps;       /* waiting inside a job cannot deadlock (fanout) */

  void *(*create)(int workers);
  void (*destroy)(void *pool); /* runs what is queued, joins the threads */
  /* Queue j. fut != NULL (futures peers, and libuv for cancel): *fut gets
   * a handle. Exits the program on failure. */
  void (*submit)(void *pool, bench_job_t *j, void **fut);
  /* Wait until every submitted job has completed; NULL: the drivers wait
   * on the jobs' latch. */
  void (*drain)(void *pool);

  /* Futures peers: 0 with *value, 1 on timeout; timeout in seconds,
   * INFINITY for none. */
  int (*result)(void *fut, double timeout, intptr_t *value);
  void (*release)(void *fut);
  int (*cancel)(void *fut); /* 1 if cancelled; NULL: cannot cancel */
  int (*outcome)(void *fut, bench_job_t *j); /* NULL: j->outcome */
  /* Stop the pool, dropping what is queued: NULL if it cannot. destroy
   * still follows (after the workers were unblocked). */
  void (*shutdown_cancel)(void *pool);
  /* Peers without futures: their native wait with a timeout, on a
   * completion that never comes; NULL: cannot express it. */
  void (*wait_timeout)(void *pool, double timeout);

  /* Workloads of their own shape; NULL: skipped. */
  const bench_bridge_ops_t *bridge;
  const bench_ac_ops_t *as_completed;
} bench_peer_t;

extern const bench_peer_t bench_peer_cfutures, bench_peer_glib,
    bench_peer_libuv, bench_peer_handrolled, bench_peer_limit;

/* The generic drivers (drivers.c): run one workload for one C peer. */
void bench_throughput(const bench_peer_t *p);
void bench_futures(const bench_peer_t *p);
void bench_roundtrip(const bench_peer_t *p);
void bench_idle_cpu(const bench_peer_t *p);
void bench_latency_gap(const bench_peer_t *p);
void bench_bridge(const bench_peer_t *p);
void bench_fanout(const bench_peer_t *p);
void bench_as_completed(const bench_peer_t *p);
void bench_timeout(const bench_peer_t *p);
void bench_cancel(const bench_peer_t *p);
void bench_memory(const bench_peer_t *p);
void bench_scaling(const bench_peer_t *p);

/* cfutures only (tasks.c); the python peer has its own. */
void bench_tasks(const bench_peer_t *p);

/* The python peer (peer_python.c): run the script for one workload and
 * report its rows, or its skipped line. */
void bench_python(const char *workload);

/* Run a shell command that prints ROW/NOTE/SKIP lines (the python script,
 * or this program with --rows) and report them for (workload, impl).
 * Returns the number of figures it reported. */
int bench_child(const char *workload, const char *impl, const char *cmd);
/* Run such a command and get the median of its ROW for metric. */
bool bench_child_figure(const char *cmd, const char *metric, double *value);

/* ------------------------------------------------------------------ */
/* Report                                                             */
/* ------------------------------------------------------------------ */

/* Print a workload's heading. */
void bench_section(const char *workload, const char *what);

/* A (workload, impl) block: wall and CPU time from begin to end are
 * printed after its rows. */
void bench_block_begin(const char *workload, const bench_peer_t *p);
void bench_block_end(void);

/* Sort v[0..n) and report its median, min and max under metric. */
void bench_report(const char *workload, const char *impl, const char *metric,
                  double *v, int n);
/* One figure already reduced: median, min, max. */
void bench_report3(const char *workload, const char *impl,
                   const char *metric, double median, double min, double max);
/* A note printed under the rows of a block. */
void bench_note(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void bench_skip(const char *workload, const char *impl, const char *why);

/* The median reported for (workload, impl, metric), or NAN. */
double bench_lookup(const char *workload, const char *impl,
                    const char *metric);

/* The BENCH.md targets with their measured ratios (targets.c). */
void bench_print_targets(void);
/* Every RESULT line, in the order reported. */
void bench_print_results(void);

/* p-th percentile (0..100) of the sorted array v[0..n). */
double bench_percentile(const double *v, long n, double p);
void bench_sort(double *v, long n);

#endif /* CF_BENCH_H */
