/*
 * report.c: statistics, the human table and the RESULT lines.
 *
 * Rows are printed as soon as they are measured; the RESULT lines are
 * kept and printed together at the end (bench_print_results), and kept for
 * the targets summary (bench_lookup). With --rows (a child run, see
 * child.c) the figures, notes and skips are printed as ROW, NOTE and SKIP
 * lines for the parent instead.
 */
#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct figure {
  char workload[24];
  char impl[16];
  char metric[40];
  double median, min, max;
  bool skipped;
};

static struct figure *figures;
static size_t nfigures, capfigures;

static struct {
  const char *workload;
  const bench_peer_t *peer;
  double wall, cpu, machine;
} block;

static void add_figure(const char *workload, const char *impl,
                       const char *metric, double median, double min,
                       double max, bool skipped) {
  if (nfigures == capfigures) {
    capfigures = capfigures != 0 ? 2 * capfigures : 256;
    figures = realloc(figures, capfigures * sizeof(*figures));
    if (figures == NULL)
      bench_die("out of memory");
  }
  struct figure *f = &figures[nfigures++];
  snprintf(f->workload, sizeof(f->workload), "%s", workload);
  snprintf(f->impl, sizeof(f->impl), "%s", impl);
  snprintf(f->metric, sizeof(f->metric), "%s", metric);
  f->median = median;
  f->min = min;
  f->max = max;
  f->skipped = skipped;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_sort(double *v, long n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
}

double bench_percentile(const double *v, long n, double p) {
  if (n <= 0)
    return NAN;
  long i = (long)ceil(p / 100.0 * (double)n) - 1;
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* A number for people: 1.52M, 31.6k, 9.30, 0.0123. */
static const char *human(double v, char *buf, size_t size) {
  double a = fabs(v);
  if (isnan(v))
    snprintf(buf, size, "-");
  else if (a >= 1e9)
    snprintf(buf, size, "%.2fG", v / 1e9);
  else if (a >= 1e6)
    snprintf(buf, size, "%.2fM", v / 1e6);
  else if (a >= 1e4)
    snprintf(buf, size, "%.1fk", v / 1e3);
  else if (a >= 100 || a == 0)
    snprintf(buf, size, "%.0f", v);
  else if (a >= 1)
    snprintf(buf, size, "%.2f", v);
  else
    snprintf(buf, size, "%.3g", v);
  return buf;
}

void bench_section(const char *workload, const char *what) {
  if (bench_cfg.rows)
    return;
  printf("\n== %s: %s\n", workload, what);
  printf("   %-11s %-26s %10s %10s %10s\n", "impl", "metric", "median", "min",
         "max");
  fflush(stdout);
}

void bench_block_begin(const char *workload, const bench_peer_t *p) {
  block.workload = workload;
  block.peer = p;
  block.wall = bench_now();
  block.cpu = bench_cpu();
  block.machine = bench_machine_cpu();
}

void bench_block_end(void) {
  if (block.peer == NULL)
    return;
  double wall = bench_now() - block.wall, cpu = bench_cpu() - block.cpu;
  double others = (bench_machine_cpu() - block.machine - cpu) / wall;
  bench_note("(%s; wall %.2f s, cpu %.2f s; other processes: %.2f cores)",
             block.peer->form, wall, cpu, others > 0 ? others : 0);
  block.peer = NULL;
}

void bench_report3(const char *workload, const char *impl,
                   const char *metric, double median, double min,
                   double max) {
  char a[32], b[32], c[32];
  if (bench_cfg.rows)
    printf("ROW %s %.17g %.17g %.17g\n", metric, median, min, max);
  else
    printf("   %-11s %-26s %10s %10s %10s\n", impl, metric,
         human(median, a, sizeof(a)), human(min, b, sizeof(b)),
         human(max, c, sizeof(c)));
  fflush(stdout);
  add_figure(workload, impl, metric, median, min, max, false);
}

void bench_report(const char *workload, const char *impl, const char *metric,
                  double *v, int n) {
  bench_sort(v, n);
  bench_report3(workload, impl, metric, v[n / 2], v[0], v[n - 1]);
}

void bench_note(const char *fmt, ...) {
  va_list ap;
  printf(bench_cfg.rows ? "NOTE " : "   %-11s ", "");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
}

void bench_skip(const char *workload, const char *impl, const char *why) {
  if (bench_cfg.rows)
    printf("SKIP %s\n", why);
  else
    printf("   %-11s skipped: %s\n", impl, why);
  fflush(stdout);
  add_figure(workload, impl, "skipped", 0, 0, 0, true);
}

double bench_lookup(const char *workload, const char *impl,
                    const char *metric) {
  for (size_t i = 0; i < nfigures; i++) {
    const struct figure *f = &figures[i];
    if (!f->skipped && strcmp(f->workload, workload) == 0 &&
        strcmp(f->impl, impl) == 0 && strcmp(f->metric, metric) == 0)
      return f->median;
  }
  return NAN;
}

void bench_print_results(void) {
  printf("\n");
  for (size_t i = 0; i < nfigures; i++) {
    const struct figure *f = &figures[i];
    double a = fabs(f->median);
    int decimals = a == floor(a) ? 0 : a >= 100 ? 1 : a >= 1 ? 2 : 6;
    printf("RESULT %s %s %s %.*f\n", f->workload, f->impl, f->metric,
           decimals, f->median);
  }
  fflush(stdout);
}
