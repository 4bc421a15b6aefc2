/*
 * peer_python.c: run bench/peer_python.py for one workload and pass its
 * figures on as rows of the table and RESULT lines of impl "python".
 *
 * The interpreter is --python, else $BENCH_PYTHON3, else the python3 that
 * configure found, else python3 on PATH; the script is --python-script,
 * else $BENCH_PYTHON_SCRIPT, else the source tree's bench/peer_python.py.
 * Python is far slower per job, so it runs the smaller py_* sizes.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BENCH_PYTHON3
#define BENCH_PYTHON3 ""
#endif
#ifndef BENCH_SCRIPT
#define BENCH_SCRIPT "bench/peer_python.py"
#endif

static const char *pick(const char *option, const char *env,
                        const char *built, const char *fallback) {
  const char *v = option != NULL ? option : getenv(env);
  if (v == NULL || *v == '\0')
    v = built;
  return *v != '\0' ? v : fallback;
}

static long min_long(long a, long b) { return a < b ? a : b; }

void bench_python(const char *workload) {
  const bench_cfg_t *c = &bench_cfg;
  const char *python = pick(c->python, "BENCH_PYTHON3", BENCH_PYTHON3,
                            "python3");
  const char *script = pick(c->python_script, "BENCH_PYTHON_SCRIPT",
                            BENCH_SCRIPT, BENCH_SCRIPT);
  if (access(script, R_OK) != 0) {
    bench_skip(workload, "python", "bench/peer_python.py not found");
    return;
  }
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "'%s' '%s' %s workers=%d reps=%d jobs=%ld rounds=%ld "
           "idle_window=%g idle_burst=%ld gap0=%ld gap50us=%ld gap1ms=%ld "
           "bridge_rounds=%ld bridge_jobs=%ld inflight=%ld fanout_depth=%d "
           "fanout_limit=%g ac_jobs=%ld timeouts=%ld cancels=%ld mem=%ld "
           "scaling_exp=%d switches=%ld tasks=%ld",
           python, script, workload, c->workers, c->reps, c->py_jobs,
           c->py_rounds, c->idle_window, c->idle_burst, c->gap_samples[0],
           c->gap_samples[1], c->gap_samples[2],
           min_long(c->bridge_rounds, c->py_rounds),
           min_long(c->bridge_jobs, c->py_jobs), c->bridge_inflight,
           c->fanout_depth, c->fanout_limit, c->ac_jobs, c->peer_timeouts,
           min_long(c->cancels, c->py_jobs), c->py_mem_futures,
           c->scaling_py_exp, c->switches / 100, c->tasks);
  double t0 = bench_now(), cpu0 = bench_cpu(), all0 = bench_machine_cpu();
  if (bench_child(workload, "python", cmd) == 0) {
    bench_skip(workload, "python", "python3 is missing or the script failed");
    return;
  }
  double others = (bench_machine_cpu() - all0 - (bench_cpu() - cpu0)) /
                  (bench_now() - t0);
  bench_note("(other processes: %.2f cores)", others > 0 ? others : 0);
}
