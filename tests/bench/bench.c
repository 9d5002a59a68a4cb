/* Benchmark support: monotonic timing, repetitions summarised as median /
 * min / max, and result rows printed as a markdown table (see bench.h).
 * Limits: single-threaded; at most BENCH_MAX_ROWS rows per program; times
 * are wall-clock (CLOCK_MONOTONIC), so a busy machine shows up as a wide
 * min..max spread, which is why every row also carries a baseline
 * measured in the same run.
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_ROWS 64

/* The rows printed so far, formatted (their strings may not outlive the
 * caller's bench_row call). */
static char lines[BENCH_MAX_ROWS][512];
static unsigned nrows;

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a;
  double y = *(const double*)b;
  return (x > y) - (x < y);
}

bench_stats_t bench_summarise(double* samples, unsigned n) {
  bench_stats_t s;
  qsort(samples, n, sizeof(*samples), cmp_double);
  s.n = n;
  s.min = samples[0];
  s.max = samples[n - 1];
  s.med =
      (n % 2) ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2.0;
  return s;
}

bench_stats_t bench_time(bench_fn fn, void* arg, unsigned reps) {
  double samples[BENCH_MAX_REPS];
  unsigned i;

  if (reps == 0)
    reps = 1;
  if (reps > BENCH_MAX_REPS)
    reps = BENCH_MAX_REPS;
  for (i = 0; i < reps; i++) {
    uint64_t t0 = bench_now_ns();
    fn(arg);
    samples[i] = (double)(bench_now_ns() - t0);
  }
  return bench_summarise(samples, reps);
}

void bench_time_pair(bench_fn fa, bench_fn fb, void* arg, unsigned reps,
                     bench_stats_t* sa, bench_stats_t* sb) {
  double a[BENCH_MAX_REPS], b[BENCH_MAX_REPS];
  unsigned i;

  if (reps == 0)
    reps = 1;
  if (reps > BENCH_MAX_REPS)
    reps = BENCH_MAX_REPS;
  for (i = 0; i < reps; i++) {
    uint64_t t0 = bench_now_ns();
    fa(arg);
    uint64_t t1 = bench_now_ns();
    fb(arg);
    a[i] = (double)(t1 - t0);
    b[i] = (double)(bench_now_ns() - t1);
  }
  *sa = bench_summarise(a, reps);
  *sb = bench_summarise(b, reps);
}

unsigned bench_reps(unsigned dflt) {
  const char* s = getenv("BENCH_REPS");
  long v;

  if (s == NULL || *s == '\0')
    return dflt;
  v = strtol(s, NULL, 10);
  if (v < 1 || v > BENCH_MAX_REPS)
    return dflt;
  return (unsigned)v;
}

void bench_note(const char* fmt, ...) {
  va_list ap;
  fputs("# ", stdout);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

void bench_fail(const char* fmt, ...) {
  va_list ap;
  fflush(stdout);
  fputs("BENCH FAILED: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

/* A number in a width-friendly precision. */
static void fmt_num(char* buf, size_t size, double v) {
  if (v >= 100.0 || v <= -100.0)
    snprintf(buf, size, "%.0f", v);
  else if (v >= 10.0 || v <= -10.0)
    snprintf(buf, size, "%.1f", v);
  else
    snprintf(buf, size, "%.2f", v);
}

const char* bench_table_header(void) {
  return "| scenario | case | metric | median | min..max | baseline | ratio "
         "| target |\n"
         "|---|---|---|---:|---:|---:|---:|---|\n";
}

char* bench_format_row(const bench_row_t* r, char* buf, size_t size) {
  char med[32], lo[32], hi[32], base[32], range[80], basecol[48], ratio[32];

  fmt_num(med, sizeof(med), r->fig.med);
  if (r->have_range) {
    fmt_num(lo, sizeof(lo), r->fig.min);
    fmt_num(hi, sizeof(hi), r->fig.max);
    snprintf(range, sizeof(range), "%s..%s", lo, hi);
  } else {
    snprintf(range, sizeof(range), "-");
  }
  if (r->base_med >= 0) {
    fmt_num(base, sizeof(base), r->base_med);
    snprintf(basecol, sizeof(basecol), "%s %s", base, r->unit);
    if (r->base_med > 0)
      snprintf(ratio, sizeof(ratio), "%.2fx", r->fig.med / r->base_med);
    else
      snprintf(ratio, sizeof(ratio), "inf");
  } else {
    snprintf(basecol, sizeof(basecol), "-");
    snprintf(ratio, sizeof(ratio), "-");
  }
  snprintf(buf, size, "| %s | %s | %s | %s %s | %s | %s | %s | %s |",
           r->scenario, r->name, r->metric, med, r->unit, range, basecol, ratio,
           r->target != NULL ? r->target : "-");
  return buf;
}

void bench_row(const bench_row_t* row) {
  char line[512];
  const char* path = getenv("BENCH_ROWS");

  bench_format_row(row, line, sizeof(line));
  printf("%s\n", line);
  fflush(stdout);
  if (nrows < BENCH_MAX_ROWS)
    memcpy(lines[nrows++], line, sizeof(line));
  if (path != NULL && *path != '\0') {
    FILE* f = fopen(path, "a");
    if (f == NULL)
      bench_fail("cannot open BENCH_ROWS=%s", path);
    fprintf(f, "%s\n", line);
    fclose(f);
  }
}

int bench_finish(void) {
  const char* rows_path = getenv("BENCH_ROWS");
  const char* out_path = getenv("BENCH_OUT");
  FILE* out = NULL;
  unsigned i;

  printf("\n%s", bench_table_header());
  for (i = 0; i < nrows; i++)
    printf("%s\n", lines[i]);
  fflush(stdout);
  /* Under run.sh the script writes the one summary table itself. */
  if ((rows_path == NULL || *rows_path == '\0') && out_path != NULL &&
      *out_path != '\0') {
    out = fopen(out_path, "a");
    if (out == NULL)
      bench_fail("cannot open BENCH_OUT=%s", out_path);
    fputs(bench_table_header(), out);
    for (i = 0; i < nrows; i++)
      fprintf(out, "%s\n", lines[i]);
    fclose(out);
  }
  return 0;
}
