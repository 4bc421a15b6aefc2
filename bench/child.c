/*
 * child.c: run a command that reports figures on its standard output, one
 * per line, and use them in this run:
 *
 *   ROW <metric> <median> <min> <max>
 *   NOTE <text>
 *   SKIP <why>
 *
 * The python peer speaks it, and so does this program with --rows (the
 * memory workload measures each repetition in a fresh process that way).
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

struct pass {
  const char *workload, *impl;
  int figures;
};

struct pick {
  const char *metric;
  double *value;
  bool found;
};

/* Run cmd and call fn on each line of its output (newline removed).
 * Returns true if it exited with status 0. */
static bool run(const char *cmd, void (*fn)(char *line, void *data),
                void *data) {
  fflush(stdout);
  FILE *out = popen(cmd, "r");
  if (out == NULL)
    return false;
  char line[1024];
  while (fgets(line, sizeof(line), out) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    fn(line, data);
  }
  int status = pclose(out);
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Pass a line on as a row, note or skip of this run. */
static void pass_line(char *line, void *data) {
  struct pass *p = data;
  char metric[64];
  double med, lo, hi;
  if (sscanf(line, "ROW %63s %lf %lf %lf", metric, &med, &lo, &hi) == 4) {
    bench_report3(p->workload, p->impl, metric, med, lo, hi);
    p->figures++;
  } else if (strncmp(line, "NOTE ", 5) == 0) {
    bench_note("%s", line + 5);
  } else if (strncmp(line, "SKIP ", 5) == 0) {
    bench_skip(p->workload, p->impl, line + 5);
  } else if (*line != '\0') {
    bench_note("%s: %s", p->impl, line);
  }
}

int bench_child(const char *workload, const char *impl, const char *cmd) {
  struct pass p = {workload, impl, 0};
  if (!run(cmd, pass_line, &p))
    bench_note("%s: the child process failed", impl);
  return p.figures;
}

/* Keep the median of the ROW line of one metric. */
static void pick_line(char *line, void *data) {
  struct pick *p = data;
  char metric[64];
  double med;
  if (sscanf(line, "ROW %63s %lf", metric, &med) == 2 &&
      strcmp(metric, p->metric) == 0) {
    *p->value = med;
    p->found = true;
  }
}

bool bench_child_figure(const char *cmd, const char *metric, double *value) {
  struct pick p = {metric, value, false};
  return run(cmd, pick_line, &p) && p.found;
}
