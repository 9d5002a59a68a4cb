/* swapread benchmarks — shared support (timing, statistics, result rows).
 *
 * Each scenario is one program, tests/bench/bench_<scenario>.c, linked with
 * the static library and bench.o (never cmocka). A program builds its image
 * with the kit, verifies what it measures (a benchmark that sees a wrong
 * result exits non-zero), times several repetitions of the measured
 * operation and of a baseline in the same run, and reports one result row
 * per case through bench_row(). Rows are printed as they come and once more
 * as a summary table by bench_finish(); tests/bench/run.sh collects the rows
 * of every program (BENCH_ROWS) into one table, and BENCH_OUT=file appends
 * that table to a file.
 */
#ifndef SR_BENCH_H
#define SR_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in nanoseconds (clock_gettime(CLOCK_MONOTONIC)). */
uint64_t bench_now_ns(void);

/* Median, min and max of a set of samples. */
typedef struct bench_stats_s {
  double med, min, max;
  unsigned n;
} bench_stats_t;

/* Sorts samples[0..n) in place and summarises them (n >= 1). */
bench_stats_t bench_summarise(double* samples, unsigned n);

/* Runs fn(arg) `reps` times (reps <= BENCH_MAX_REPS) and returns the
 * statistics of the wall time of each run, in nanoseconds. */
#define BENCH_MAX_REPS 101
typedef void (*bench_fn)(void* arg);
bench_stats_t bench_time(bench_fn fn, void* arg, unsigned reps);

/* As bench_time for two functions, their runs interleaved (a, b, a, b,
 * ...) so that a change of machine load hits both alike; the figure and
 * its baseline should be timed this way. */
void bench_time_pair(bench_fn fa, bench_fn fb, void* arg, unsigned reps,
                     bench_stats_t* sa, bench_stats_t* sb);

/* Repetitions: BENCH_REPS from the environment if set (1..BENCH_MAX_REPS),
 * else `dflt`. */
unsigned bench_reps(unsigned dflt);

/* One result row. A figure without min/max (a count, a size) sets
 * have_range = 0; a row without a baseline sets base_med < 0 (no ratio).
 * target is free text shown as information ("<= 2x"), may be NULL. */
typedef struct bench_row_s {
  const char* scenario; /* "idle_poll" */
  const char* name;     /* case: "(a) 100k PTEs, 1 txn" */
  const char* metric;   /* what the figure is: "poll", "B/chunk" */
  const char* unit;     /* "us", "ns", "B" */
  bench_stats_t fig;
  int have_range;
  double base_med; /* same unit; < 0: none */
  const char* target;
} bench_row_t;

/* Prints the row and keeps it for the summary; with BENCH_ROWS=file also
 * appends it (one line, '|' separated) for run.sh. */
void bench_row(const bench_row_t* row);

/* Prints a formatted note line ("# ...") to stdout. */
void bench_note(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/* Aborts the benchmark (exit status 1) with a message: for failed checks. */
void bench_fail(const char* fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Checks cond, else bench_fail with the expression and location. */
#define BENCH_CHECK(cond)                                                 \
  do {                                                                    \
    if (!(cond))                                                          \
      bench_fail("check failed at %s:%d: %s", __FILE__, __LINE__, #cond); \
  } while (0)

/* Prints the summary table of this program's rows (markdown). Without
 * BENCH_ROWS (run standalone) and with BENCH_OUT=file, appends it there.
 * Returns 0 for main(). */
int bench_finish(void);

/* Formats one row as a markdown table line into buf (also used by the
 * summary); returns buf. */
char* bench_format_row(const bench_row_t* row, char* buf, size_t size);
/* The markdown header of the summary table (two lines). */
const char* bench_table_header(void);

#endif /* SR_BENCH_H */
