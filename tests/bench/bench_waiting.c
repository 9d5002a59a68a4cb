/* Benchmark: what waiting costs on a libuv loop at default settings — the
 * delay from a page-in to its read's callback, and the CPU time of a
 * process holding 10 Ki pending reads while nothing changes.
 *
 * One kit image (memfd) maps 48 MiB of VA with 4 KiB pages filled with the
 * kit's pattern; every page read here is first paged out with its own
 * Linux swap PTE (sr_kit_page_out) and later paged back in by the kit from
 * a uv timer on the same loop; uv_hrtime() right after the kit's write is
 * the page-in time, uv_hrtime() on entry to the read's callback the
 * completion time. Every sr_uv_t is initialized with opts NULL and every
 * read started with opts NULL (defaults: 1 ms min period, 100 ms max, 1 s
 * fast window, no deadline). Delay regimes (issue 6): (A) page-in 100..110
 * ms after the read started: one handle, a read started every 10 ms (each
 * start counts as progress, as in a pipeline); (B) 1.0..1.1 s after, and
 * (C) 10..11 s after (the steady period): one handle per read (a
 * completion is progress and puts its handle back on the minimum period,
 * so independent samples past the fast window need independent handles),
 * B's handles started 20 ms apart so that few are in their fast window at
 * once, C's all at once; (D) "within a second of the last progress": per
 * handle a chain of reads where the first is paged in at steady state (not
 * counted) and each next one 50..900 ms after the previous one's callback.
 * All handles of a regime share the loop and one uv_run. Idle: one handle
 * holds IDLE_READS single-page reads, each blocked by its own non-present
 * PTE, for IDLE_SECONDS; a 1 s timer samples getrusage (RUSAGE_SELF, user +
 * sys) and the handle's tick count, and at the end pages everything in.
 * Baselines of the CPU per tick, same run: one idle sr_swap_poll of a
 * separate engine holding the same reads (one every 100 ms), plus the CPU
 * of one wake-up of an empty loop by a plain 100 ms uv timer. Verified:
 * every read is SR_PENDING when started, still pending at its page-in,
 * completes with status 0 after it, with the kit's pattern bytes; uv_run
 * returns by itself; every handle closes; uv_loop_close == 0.
 * Limits: libuv timers have 1 ms resolution (uv_now), so delays under ~1 ms
 * are not resolved; one address space; times are wall clock on a shared
 * machine (medians, and the load is printed by run.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <uv.h>

#include <swapread/kit.h>
#include <swapread/swap.h>
#include <swapread/uv.h>

#include "bench.h"

#define GVA_BASE UINT64_C(0x00007f0000000000)
#define SEED 0x3a17
#define NDELAY 300u   /* samples per delay regime (A, B, C) */
#define A_STEP_MS 10u /* regime A: one handle, a read every 10 ms */
#define B_STEP_MS 20u /* regime B: a handle started every 20 ms */
#define NCHAIN 30u    /* regime D: handles */
#define CHAIN 11u     /* regime D: reads per handle; the first is steady */
#define IDLE_READS 10240u
#define IDLE_SECONDS 10u
#define IDLE_STEADY 2u   /* idle: seconds before the steady part */
#define PAGE0_IDLE 2048u /* first page of the idle reads */
#define NPAGES (PAGE0_IDLE + IDLE_READS)
#define WATCHDOG_MS 20000u /* past the regime's last page-in */

typedef struct world_s {
  uv_loop_t loop;
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  uint64_t rng;
  unsigned closed; /* close callbacks seen */
} world_t;

struct regime_s;

/* One read, its page and its page-in timer. Must not move once started. */
typedef struct sample_s {
  sr_uv_read_t req;
  uv_timer_t timer; /* pages the read's page in */
  struct regime_s* rg;
  struct sample_s* next; /* regime D: the next read of the chain */
  sr_uv_t* handle;
  uint64_t due_ms; /* page-in this long after the read started */
  uint32_t page;
  unsigned chain_pos; /* regime D: 0 for the first read of a chain */
  uint64_t start_ns, pagein_ns, cb_ns;
  int status, done, paged;
  unsigned char buf[SR_PAGE_4K];
} sample_t;

typedef struct regime_s {
  const char* name;
  const char* target;
  uint64_t lo_ms, hi_ms; /* page-in this long after the read started */
  uint64_t step_ms;      /* read i starts i * step_ms after the first */
  unsigned per_handle;   /* reads per handle (regime D: the chain) */
  int chain;             /* regime D */
  uint32_t page0;        /* first page of the regime's reads */
  world_t* w;
  sample_t* s;
  unsigned ns;
  sr_uv_t* h;
  unsigned nh;
  unsigned completed;
} regime_t;

static uint64_t rng_next(uint64_t* s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

/* A uniform integer in [lo, hi). */
static uint64_t rng_range(world_t* w, uint64_t lo, uint64_t hi) {
  return lo + rng_next(&w->rng) % (hi - lo);
}

static uint64_t page_gva(uint32_t page) {
  return GVA_BASE + (uint64_t)page * SR_PAGE_4K;
}

static void page_out(world_t* w, uint32_t page) {
  sr_pte_info_t info;
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = 1;
  info.swap_offset = (uint64_t)page + 1;
  BENCH_CHECK(
      sr_kit_page_out(w->kit, w->cr3, page_gva(page), SR_LEVEL_PT, &info) == 0);
}

static void page_in(world_t* w, uint32_t page) {
  BENCH_CHECK(sr_kit_page_in(w->kit, w->cr3, page_gva(page), SR_LEVEL_PT) == 0);
}

static void check_bytes(const unsigned char* buf, uint32_t page) {
  uint64_t va = page_gva(page);
  size_t i;
  for (i = 0; i < SR_PAGE_4K; i++) {
    if (buf[i] != sr_kit_pattern(SEED, va + i))
      bench_fail("page %u: wrong byte at offset %zu", page, i);
  }
}

/* User + system CPU time of the process (getrusage); *sys: the system
 * part. */
static double cpu_seconds(double* sys) {
  struct rusage ru;
  BENCH_CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
  *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double process_cpu_seconds(void) {
  struct timespec ts;
  BENCH_CHECK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_handle_close(sr_uv_t* h) {
  world_t* w = h->data;
  w->closed++;
}

static void on_uv_close(uv_handle_t* t) {
  world_t* w = t->data;
  w->closed++;
}

static void on_watchdog(uv_timer_t* t) {
  regime_t* rg = t->data;
  bench_fail("%s: stuck, %u of %u reads completed", rg->name, rg->completed,
             rg->ns);
}

/* The kit pages the read's page in; the read must still be pending. */
static void on_pagein(uv_timer_t* t) {
  sample_t* s = t->data;
  BENCH_CHECK(!s->done && !s->paged);
  page_in(s->rg->w, s->page);
  s->pagein_ns = uv_hrtime();
  s->paged = 1;
}

/* Records the completion; in regime D schedules the next page-in of the
 * chain within a second of this progress. */
static void on_read(sr_uv_read_t* req, int status) {
  sample_t* s = req->data;
  s->cb_ns = uv_hrtime();
  s->status = status;
  s->done = 1;
  s->rg->completed++;
  if (s->next != NULL) {
    uint64_t gap = rng_range(s->rg->w, 50, 901);
    BENCH_CHECK(uv_timer_start(&s->next->timer, on_pagein, gap, 0) == 0);
  }
}

/* Starts the sample's read (it must be SR_PENDING) and, unless it waits
 * for its chain, the timer that pages it in due_ms later. */
static void start_read(sample_t* s) {
  world_t* w = s->rg->w;
  int rc;

  uv_update_time(&w->loop); /* the handle's clock: the read starts now */
  s->start_ns = uv_hrtime();
  rc = sr_uv_read(s->handle, &s->req, w->cr3, page_gva(s->page), s->buf,
                  SR_PAGE_4K, NULL, on_read);
  if (rc != SR_PENDING)
    bench_fail("%s: read of page %u returned %d (%s), want SR_PENDING",
               s->rg->name, s->page, rc, sr_err_name(rc));
  if (s->chain_pos == 0)
    BENCH_CHECK(uv_timer_start(&s->timer, on_pagein, s->due_ms, 0) == 0);
}

static void on_start(uv_timer_t* t) {
  start_read(t->data);
}

/* The pct-th percentile (nearest rank: the ceil(pct * n / 100)-th
 * smallest) of sorted x[0..n). */
static double percentile(const double* x, unsigned n, unsigned pct) {
  unsigned k = (pct * n + 99) / 100;
  if (k < 1)
    k = 1;
  if (k > n)
    k = n;
  return x[k - 1];
}

static void delay_rows(const regime_t* rg, double* d, unsigned n) {
  bench_row_t row;
  bench_stats_t st;
  char name[128];
  double p99;

  st = bench_summarise(d, n);
  p99 = percentile(d, n, 99);
  snprintf(name, sizeof(name), "%s (%u reads)", rg->name, n);
  memset(&row, 0, sizeof(row));
  row.scenario = "waiting";
  row.name = name;
  row.metric = "page-in to callback, median";
  row.unit = "ms";
  row.fig = st;
  row.have_range = 1;
  row.base_med = -1;
  row.target = "information";
  bench_row(&row);
  row.metric = "page-in to callback, p99";
  row.fig.med = row.fig.min = row.fig.max = p99;
  row.have_range = 0;
  row.target = rg->target;
  bench_row(&row);
  bench_note(
      "%s: delay median %.2f ms, p99 %.2f ms, max %.2f ms, min %.3f "
      "ms, n %u; target p99 %s",
      rg->name, st.med, p99, st.max, st.min, n, rg->target);
}

/* Starts every read of the regime (each must be SR_PENDING), runs the loop
 * until uv_run returns by itself, verifies and reports, closes. */
static void run_regime(world_t* w, regime_t* rg) {
  uv_timer_t watchdog;
  double* d;
  double* pend;
  double* steady;
  unsigned i, nd = 0, nsteady = 0;
  uint64_t ticks = 0, t0, t1, last_ms = 0;
  sr_uv_stats_t us;

  rg->w = w;
  rg->s = calloc(rg->ns, sizeof(*rg->s));
  rg->h = calloc(rg->nh, sizeof(*rg->h));
  d = calloc(rg->ns, sizeof(*d));
  pend = calloc(rg->ns, sizeof(*pend));
  steady = calloc(rg->ns, sizeof(*steady));
  BENCH_CHECK(rg->s && rg->h && d && pend && steady);
  for (i = 0; i < rg->nh; i++) {
    BENCH_CHECK(sr_uv_init(&w->loop, &rg->h[i], w->image, NULL) == 0);
    rg->h[i].data = w;
  }
  for (i = 0; i < rg->ns; i++) {
    rg->s[i].page = rg->page0 + i;
    page_out(w, rg->s[i].page);
  }

  uv_update_time(&w->loop);
  t0 = uv_hrtime();
  for (i = 0; i < rg->ns; i++) {
    sample_t* s = &rg->s[i];
    s->rg = rg;
    s->req.data = s;
    s->handle = &rg->h[i / rg->per_handle];
    s->chain_pos = rg->chain ? i % rg->per_handle : 0;
    if (rg->chain && s->chain_pos + 1 < rg->per_handle)
      s->next = &rg->s[i + 1];
    if (s->chain_pos == 0) {
      s->due_ms = rng_range(w, rg->lo_ms, rg->hi_ms);
      if (i * rg->step_ms + s->due_ms > last_ms)
        last_ms = i * rg->step_ms + s->due_ms;
    }
    BENCH_CHECK(uv_timer_init(&w->loop, &s->timer) == 0);
    s->timer.data = s;
    if (rg->step_ms == 0)
      start_read(s);
    else
      BENCH_CHECK(uv_timer_start(&s->timer, on_start, i * rg->step_ms, 0) == 0);
  }
  BENCH_CHECK(uv_timer_init(&w->loop, &watchdog) == 0);
  watchdog.data = rg;
  BENCH_CHECK(
      uv_timer_start(
          &watchdog, on_watchdog,
          last_ms + (rg->chain ? rg->per_handle * 1000u : 0) + WATCHDOG_MS,
          0) == 0);
  uv_unref((uv_handle_t*)&watchdog);

  BENCH_CHECK(uv_run(&w->loop, UV_RUN_DEFAULT) == 0);
  t1 = uv_hrtime();
  BENCH_CHECK(uv_timer_stop(&watchdog) == 0);

  /* verify; collect the delays */
  BENCH_CHECK(rg->completed == rg->ns);
  for (i = 0; i < rg->ns; i++) {
    sample_t* s = &rg->s[i];
    double delay;
    BENCH_CHECK(s->done && s->paged);
    BENCH_CHECK(s->status == 0 && s->req.status == 0);
    BENCH_CHECK(s->cb_ns >= s->pagein_ns);
    check_bytes(s->buf, s->page);
    delay = (double)(s->cb_ns - s->pagein_ns) / 1e6;
    if (rg->chain && s->chain_pos == 0) {
      steady[nsteady++] = delay;
    } else {
      pend[nd] = (double)(s->pagein_ns - s->start_ns) / 1e6;
      d[nd++] = delay;
    }
  }
  for (i = 0; i < rg->nh; i++) {
    sr_uv_stats(&rg->h[i], &us);
    ticks += us.ticks;
  }
  if (!rg->chain) {
    bench_stats_t ps = bench_summarise(pend, nd);
    bench_note(
        "%s: pending before page-in median %.1f ms (%.1f..%.1f); "
        "%u handles, %.1f ticks per handle per s; run %.1f s",
        rg->name, ps.med, ps.min, ps.max, rg->nh,
        (double)ticks / rg->nh / ((double)(t1 - t0) / 1e9),
        (double)(t1 - t0) / 1e9);
  } else {
    bench_stats_t ss = bench_summarise(steady, nsteady);
    bench_note(
        "%s: %u handles x %u reads; the first read of each chain "
        "(paged in at steady state, not counted): delay median %.1f "
        "ms, max %.1f ms; run %.1f s",
        rg->name, rg->nh, rg->per_handle, ss.med, ss.max,
        (double)(t1 - t0) / 1e9);
  }
  delay_rows(rg, d, nd);

  /* close everything */
  w->closed = 0;
  for (i = 0; i < rg->nh; i++)
    sr_uv_close(&rg->h[i], on_handle_close);
  for (i = 0; i < rg->ns; i++) {
    rg->s[i].timer.data = w;
    uv_close((uv_handle_t*)&rg->s[i].timer, on_uv_close);
  }
  watchdog.data = w;
  uv_close((uv_handle_t*)&watchdog, on_uv_close);
  BENCH_CHECK(uv_run(&w->loop, UV_RUN_DEFAULT) == 0);
  BENCH_CHECK(w->closed == rg->nh + rg->ns + 1);
  free(rg->s);
  free(rg->h);
  free(d);
  free(pend);
  free(steady);
}

/* ---- idle CPU ---------------------------------------------------------- */

typedef struct idle_s {
  world_t* w;
  sr_uv_t h;
  uv_timer_t sampler;
  sr_uv_read_t* req; /* [IDLE_READS] */
  unsigned char* bufs;
  int* status;
  unsigned completed;
  unsigned k; /* samples taken */
  double cpu[IDLE_SECONDS + 1], pcpu[IDLE_SECONDS + 1];
  double sys[IDLE_SECONDS + 1];
  uint64_t wall[IDLE_SECONDS + 1], ticks[IDLE_SECONDS + 1];
  uint64_t pagein_ns, last_cb_ns;
} idle_t;

static void idle_sample(idle_t* id) {
  sr_uv_stats_t us;
  sr_uv_stats(&id->h, &us);
  id->ticks[id->k] = us.ticks;
  id->wall[id->k] = uv_hrtime();
  id->cpu[id->k] = cpu_seconds(&id->sys[id->k]);
  id->pcpu[id->k] = process_cpu_seconds();
  id->k++;
}

static void on_idle_read(sr_uv_read_t* req, int status) {
  idle_t* id = req->data;
  id->status[req - id->req] = status;
  id->completed++;
  id->last_cb_ns = uv_hrtime();
}

/* Every second: one sample; after the last, the kit pages everything in. */
static void on_sampler(uv_timer_t* t) {
  idle_t* id = t->data;
  unsigned i;
  idle_sample(id);
  BENCH_CHECK(id->completed == 0);
  if (id->k == IDLE_SECONDS + 1) {
    BENCH_CHECK(uv_timer_stop(t) == 0);
    for (i = 0; i < IDLE_READS; i++)
      page_in(id->w, PAGE0_IDLE + i);
    id->pagein_ns = uv_hrtime();
  }
}

static void on_swap_done(sr_swap_t* swap, const sr_swap_done_t* done,
                         void* data) {
  unsigned* n = data;
  (void)swap;
  BENCH_CHECK(done->status == SR_ECANCELED);
  (*n)++;
}

typedef struct polltimed_s {
  sr_swap_t* swap;
  int bad;
} polltimed_t;

static void run_poll(void* arg) {
  polltimed_t* p = arg;
  if (sr_swap_poll(p->swap, bench_now_ns(), NULL) != 0)
    p->bad++;
}

/* The baseline: one idle poll of a separate engine holding the same
 * reads, one every 100 ms as the handle's steady ticks come (returned, in
 * ns) and back to back (*hot). */
static bench_stats_t idle_poll_baseline(world_t* w, unsigned char* bufs,
                                        bench_stats_t* hot) {
  sr_swap_t* swap = NULL;
  sr_swap_stats_t st;
  polltimed_t p;
  bench_stats_t res;
  double spaced[BENCH_MAX_REPS];
  unsigned i, reps, cancelled = 0;

  BENCH_CHECK(sr_swap_new(&swap, w->image, NULL) == 0);
  for (i = 0; i < IDLE_READS; i++) {
    sr_swap_req_t req;
    sr_swap_handle_t hd;
    memset(&req, 0, sizeof(req));
    req.cr3 = w->cr3;
    req.gva = page_gva(PAGE0_IDLE + i);
    req.buf = bufs + (size_t)i * SR_PAGE_4K;
    req.len = SR_PAGE_4K;
    BENCH_CHECK(sr_swap_read(swap, &req, bench_now_ns(), on_swap_done,
                             &cancelled, NULL, &hd, NULL) == SR_PENDING);
  }
  sr_swap_stats(swap, &st);
  /* one entry per read at least (the engine may watch upper levels too) */
  if (st.pending != IDLE_READS || st.watched_entries < IDLE_READS)
    bench_fail("idle baseline: %llu pending, %llu watched entries, want %u",
               (unsigned long long)st.pending,
               (unsigned long long)st.watched_entries, IDLE_READS);
  bench_note("idle: the engine watches %llu entries for %u reads",
             (unsigned long long)st.watched_entries, IDLE_READS);
  p.swap = swap;
  p.bad = 0;
  run_poll(&p);
  *hot = bench_time(run_poll, &p, bench_reps(15));
  /* as the handle's ticks come: one poll every 100 ms */
  reps = bench_reps(15);
  for (i = 0; i < reps; i++) {
    struct timespec pause = {0, 100 * 1000 * 1000};
    uint64_t t0;
    nanosleep(&pause, NULL);
    t0 = bench_now_ns();
    run_poll(&p);
    spaced[i] = (double)(bench_now_ns() - t0);
  }
  res = bench_summarise(spaced, reps);
  BENCH_CHECK(p.bad == 0);
  sr_swap_free(swap);
  BENCH_CHECK(cancelled == IDLE_READS);
  return res;
}

typedef struct wake_s {
  unsigned n;
} wake_t;

static void on_wake(uv_timer_t* t) {
  wake_t* k = t->data;
  if (++k->n == 30)
    BENCH_CHECK(uv_timer_stop(t) == 0);
}

/* CPU microseconds per wake-up of an otherwise empty loop woken by a plain
 * uv timer every 100 ms (30 times): what any timer-driven poller pays on
 * this machine before doing any work. */
static double empty_wakeup_us(world_t* w) {
  uv_timer_t t;
  wake_t k = {0};
  double c0, c1;

  BENCH_CHECK(uv_timer_init(&w->loop, &t) == 0);
  t.data = &k;
  uv_update_time(&w->loop);
  BENCH_CHECK(uv_timer_start(&t, on_wake, 100, 100) == 0);
  c0 = process_cpu_seconds();
  BENCH_CHECK(uv_run(&w->loop, UV_RUN_DEFAULT) == 0);
  c1 = process_cpu_seconds();
  BENCH_CHECK(k.n == 30);
  w->closed = 0;
  t.data = w;
  uv_close((uv_handle_t*)&t, on_uv_close);
  BENCH_CHECK(uv_run(&w->loop, UV_RUN_DEFAULT) == 0);
  BENCH_CHECK(w->closed == 1);
  return 1e6 * (c1 - c0) / k.n;
}

static void cpu_row(const char* name, const char* metric, bench_stats_t fig,
                    int have_range, const char* unit, double base,
                    const char* target) {
  bench_row_t row;
  memset(&row, 0, sizeof(row));
  row.scenario = "waiting";
  row.name = name;
  row.metric = metric;
  row.unit = unit;
  row.fig = fig;
  row.have_range = have_range;
  row.base_med = base;
  row.target = target;
  bench_row(&row);
}

static bench_stats_t one(double v) {
  bench_stats_t s;
  s.med = s.min = s.max = v;
  s.n = 1;
  return s;
}

static void run_idle(world_t* w) {
  idle_t* id = calloc(1, sizeof(*id));
  bench_stats_t base, hot, steady, pt;
  double per_s[IDLE_SECONDS], per_tick[IDLE_SECONDS];
  double total, total_p, wall_s, wake_us;
  unsigned i, ns = 0;
  uint64_t setup0, setup_ns;
  char name[128];

  BENCH_CHECK(id != NULL);
  id->w = w;
  id->req = calloc(IDLE_READS, sizeof(*id->req));
  id->status = calloc(IDLE_READS, sizeof(*id->status));
  id->bufs = malloc((size_t)IDLE_READS * SR_PAGE_4K);
  BENCH_CHECK(id->req && id->status && id->bufs);
  for (i = 0; i < IDLE_READS; i++)
    page_out(w, PAGE0_IDLE + i);

  base = idle_poll_baseline(w, id->bufs, &hot);
  wake_us = empty_wakeup_us(w);
  memset(id->bufs, 0, (size_t)IDLE_READS * SR_PAGE_4K);

  BENCH_CHECK(sr_uv_init(&w->loop, &id->h, w->image, NULL) == 0);
  id->h.data = w;
  BENCH_CHECK(uv_timer_init(&w->loop, &id->sampler) == 0);
  id->sampler.data = id;
  uv_update_time(&w->loop); /* the reads start now, not at the last tick */
  setup0 = uv_hrtime();
  for (i = 0; i < IDLE_READS; i++) {
    id->req[i].data = id;
    BENCH_CHECK(sr_uv_read(&id->h, &id->req[i], w->cr3,
                           page_gva(PAGE0_IDLE + i),
                           id->bufs + (size_t)i * SR_PAGE_4K, SR_PAGE_4K, NULL,
                           on_idle_read) == SR_PENDING);
  }
  setup_ns = uv_hrtime() - setup0;
  uv_update_time(&w->loop);
  BENCH_CHECK(uv_timer_start(&id->sampler, on_sampler, 1000, 1000) == 0);
  idle_sample(id);
  BENCH_CHECK(uv_run(&w->loop, UV_RUN_DEFAULT) == 0);

  /* verify */
  BENCH_CHECK(id->k == IDLE_SECONDS + 1);
  BENCH_CHECK(id->completed == IDLE_READS);
  for (i = 0; i < IDLE_READS; i++) {
    BENCH_CHECK(id->status[i] == 0 && id->req[i].status == 0);
    check_bytes(id->bufs + (size_t)i * SR_PAGE_4K, PAGE0_IDLE + i);
  }
  BENCH_CHECK(id->last_cb_ns >= id->pagein_ns);

  /* report */
  wall_s = (double)(id->wall[IDLE_SECONDS] - id->wall[0]) / 1e9;
  total = 100.0 * (id->cpu[IDLE_SECONDS] - id->cpu[0]) / wall_s;
  total_p = 100.0 * (id->pcpu[IDLE_SECONDS] - id->pcpu[0]) / wall_s;
  for (i = IDLE_STEADY; i < IDLE_SECONDS; i++) {
    double dw = (double)(id->wall[i + 1] - id->wall[i]) / 1e9;
    uint64_t dt = id->ticks[i + 1] - id->ticks[i];
    per_s[ns] = 100.0 * (id->cpu[i + 1] - id->cpu[i]) / dw;
    per_tick[ns] =
        dt > 0 ? 1e6 * (id->pcpu[i + 1] - id->pcpu[i]) / (double)dt : 0;
    ns++;
  }
  steady = bench_summarise(per_s, ns);
  pt = bench_summarise(per_tick, ns);
  base.med /= 1e3;
  base.min /= 1e3;
  base.max /= 1e3;
  bench_note(
      "idle: baseline sr_swap_poll of a separate engine with the "
      "same %u reads: %.0f us one every 100 ms (%.0f..%.0f), %.0f us "
      "back to back",
      IDLE_READS, base.med, base.min, base.max, hot.med / 1e3);
  bench_note(
      "idle: an empty loop woken by a plain uv timer every 100 ms: "
      "%.0f us CPU per wake-up (%.3f %% of one core at 10 Hz)",
      wake_us, wake_us * 10 / 1e4);
  bench_note(
      "idle: %u reads started in %.1f ms; window %.2f s: getrusage "
      "%.3f %%, CLOCK_PROCESS_CPUTIME_ID %.3f %% of one core",
      IDLE_READS, (double)setup_ns / 1e6, wall_s, total, total_p);
  for (i = 0; i < IDLE_SECONDS; i++)
    bench_note("idle: second %u: %llu ticks, cpu %.2f ms (sys %.2f ms)", i + 1,
               (unsigned long long)(id->ticks[i + 1] - id->ticks[i]),
               1e3 * (id->cpu[i + 1] - id->cpu[i]),
               1e3 * (id->sys[i + 1] - id->sys[i]));
  bench_note(
      "idle: everything paged in at once: all %u callbacks within "
      "%.1f ms of the page-in",
      IDLE_READS, (double)(id->last_cb_ns - id->pagein_ns) / 1e6);

  snprintf(name, sizeof(name),
           "idle: %u pending reads, own PTE each, "
           "s 0-%u",
           IDLE_READS, IDLE_SECONDS);
  cpu_row(name, "CPU % of one core (getrusage)", one(total), 0, "%", -1,
          "<= 0.5 % (issue 6)");
  snprintf(name, sizeof(name),
           "idle: %u pending reads, own PTE each, "
           "s %u-%u, per second",
           IDLE_READS, IDLE_STEADY, IDLE_SECONDS);
  cpu_row(name, "CPU % of one core (getrusage)", steady, 1, "%", -1,
          "<= 0.5 % (issue 6)");
  snprintf(name, sizeof(name), "idle: timer ticks, s 0-%u", IDLE_SECONDS);
  cpu_row(name, "ticks (sr_uv_stats)",
          one((double)(id->ticks[IDLE_SECONDS] - id->ticks[0])), 0, "", -1,
          "information");
  snprintf(name, sizeof(name), "idle: timer ticks, s %u-%u", IDLE_STEADY,
           IDLE_SECONDS);
  cpu_row(name, "ticks (sr_uv_stats)",
          one((double)(id->ticks[IDLE_SECONDS] - id->ticks[IDLE_STEADY])), 0,
          "", -1, "information");
  snprintf(name, sizeof(name), "idle: CPU per tick, s %u-%u", IDLE_STEADY,
           IDLE_SECONDS);
  cpu_row(name,
          "CPU per tick vs idle sr_swap_poll (1 per 100 ms) + empty "
          "wake-up",
          pt, 1, "us", base.med + wake_us, "information");

  w->closed = 0;
  sr_uv_close(&id->h, on_handle_close);
  id->sampler.data = w;
  uv_close((uv_handle_t*)&id->sampler, on_uv_close);
  BENCH_CHECK(uv_run(&w->loop, UV_RUN_DEFAULT) == 0);
  BENCH_CHECK(w->closed == 2);
  free(id->req);
  free(id->status);
  free(id->bufs);
  free(id);
}

int main(void) {
  regime_t rg[4];
  sr_kit_opts_t ko;
  world_t w;
  uint64_t t0 = bench_now_ns();
  const char* seed = getenv("SR_SEED");
  unsigned i;

  memset(&w, 0, sizeof(w));
  w.rng = seed != NULL && *seed != '\0' ? strtoull(seed, NULL, 0) : 0x9e3779b9;
  if (w.rng == 0)
    w.rng = 1;
  BENCH_CHECK(uv_loop_init(&w.loop) == 0);
  memset(&ko, 0, sizeof(ko));
  ko.size = (uint64_t)NPAGES * SR_PAGE_4K + (UINT64_C(16) << 20);
  BENCH_CHECK(sr_kit_create(&w.kit, &ko) == 0);
  BENCH_CHECK(sr_kit_new_space(w.kit, SR_PAGING_4LEVEL, &w.cr3) == 0);
  BENCH_CHECK(sr_kit_map(w.kit, w.cr3, GVA_BASE, (uint64_t)NPAGES * SR_PAGE_4K,
                         SR_PAGE_4K, SR_PROT_W | SR_PROT_U) == 0);
  BENCH_CHECK(sr_kit_fill(w.kit, w.cr3, GVA_BASE, (uint64_t)NPAGES * SR_PAGE_4K,
                          SEED) == 0);
  BENCH_CHECK(sr_kit_open_image(w.kit, &w.image) == 0);
  bench_note(
      "waiting: sr_uv_t with opts NULL (min %d ms, max %d ms, fast "
      "window %d ms), libuv %s, seed 0x%llx (SR_SEED), image built in "
      "%.0f ms",
      SR_UV_DEFAULT_MIN_PERIOD_MS, SR_UV_DEFAULT_MAX_PERIOD_MS,
      SR_UV_DEFAULT_FAST_WINDOW_MS, uv_version_string(),
      (unsigned long long)w.rng, (bench_now_ns() - t0) / 1e6);

  memset(rg, 0, sizeof(rg));
  rg[0].name = "A: pending 0.1 s";
  rg[0].target = "<= 5 ms (issue 6: within 1 s of progress)";
  rg[0].lo_ms = 100;
  rg[0].hi_ms = 110;
  rg[1].name = "B: pending 1 s";
  rg[1].target = "<= 110 ms (issue 6: steady)";
  rg[1].lo_ms = 1000;
  rg[1].hi_ms = 1100;
  rg[2].name = "C: pending 10 s (steady)";
  rg[2].target = "<= 110 ms (issue 6: steady)";
  rg[2].lo_ms = 10000;
  rg[2].hi_ms = 11000;
  rg[3].name = "D: within 1 s of the last progress";
  rg[3].target = "<= 5 ms (issue 6: within 1 s of progress)";
  rg[3].lo_ms = 2000; /* the first read of each chain */
  rg[3].hi_ms = 3000;
  rg[3].chain = 1;
  rg[0].step_ms = A_STEP_MS;
  rg[0].ns = NDELAY;
  rg[0].nh = 1;
  rg[1].step_ms = B_STEP_MS;
  rg[2].step_ms = 0;
  rg[1].ns = rg[1].nh = rg[2].ns = rg[2].nh = NDELAY;
  rg[3].ns = NCHAIN * CHAIN;
  rg[3].nh = NCHAIN;
  for (i = 0; i < 4; i++)
    rg[i].per_handle = rg[i].ns / rg[i].nh;
  {
    uint32_t page = 0;
    for (i = 0; i < 4; i++) {
      BENCH_CHECK(page + rg[i].ns <= PAGE0_IDLE);
      rg[i].page0 = page;
      run_regime(&w, &rg[i]);
      page += rg[i].ns;
    }
  }
  run_idle(&w);

  BENCH_CHECK(uv_loop_close(&w.loop) == 0);
  sr_image_close(w.image);
  sr_kit_destroy(w.kit);
  return bench_finish();
}
