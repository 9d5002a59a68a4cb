/* Benchmark: synchronous reads against the physical limits (issue 6, item
 * 2: sequential, large pages, random small reads, batched random reads,
 * cold start).
 *
 * Every case builds a RAW kit image (memfd, sparse), maps guest VA with the
 * kit and fills it with the kit's pattern, and maps the kit fd PROT_READ
 * itself for the baseline (RAW: file offset == GPA).
 * - sequential / large pages: one sr_swap_read of 64 MiB over 4K, 2M or 1G
 *   leaves (the 1G case in a 3 GiB sparse image) against memcpy of the same
 *   bytes from the benchmark's own mapping; bandwidth ratio. sr_read_virt
 *   (core) is shown too.
 * - random: 1 Mi 8-byte reads at random 8-aligned addresses over 768 MiB
 *   of 4K pages, one sr_swap_read each (and one sr_read_virt each), against
 *   a minimal inline 4-level walk + load written here; rate ratio.
 * - batched: the same addresses through sr_read_batch, 512 items a call.
 * - cold start: a 4 GiB sparse image with 256 MiB mapped; per repetition a
 *   fresh sr_kit_open_image + sr_swap_new + the first read (4 KiB), and the
 *   same plus a full sequential pass of the 256 MiB, against a fresh mmap of
 *   the fd + the same copies (both pay the page faults of a new mapping;
 *   the file's pages are in the page cache, as for a running guest).
 * Every result is checked: status 0 and the bytes equal the kit's pattern
 * (whole buffers compared after the timed runs; random reads summed and
 * the sum compared with the pattern's). Limits: one address space; wall
 * clock on a shared machine, figure and baseline interleaved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <swapread/kit.h>
#include <swapread/read.h>
#include <swapread/swap.h>

#include "bench.h"

#define GVA_BASE UINT64_C(0x00007f0000000000)
#define SEED 0x5eed5eedu
#define MIB (UINT64_C(1) << 20)
#define SEQ_LEN (64 * MIB)
#define RND_SPAN (768 * MIB)
#define RND_N (1u << 20)
#define BATCH 512u
#define COLD_IMAGE (UINT64_C(4) << 30)
#define COLD_SPAN (256 * MIB)
#define ADDR_MASK UINT64_C(0x000ffffffffff000)

/* A kit image with one mapped range and the benchmark's own mapping. */
typedef struct world_s {
  sr_kit_t* kit;
  sr_image_t* image;
  sr_swap_t* swap;
  uint64_t cr3, gva, span;
  const unsigned char* ro;
  size_t ro_len;
  uint64_t gpa; /* the frames are contiguous: GPA of gva */
} world_t;

static void world_init(world_t* w, uint64_t image_size, uint64_t span,
                       uint64_t page, uint64_t fill) {
  sr_kit_opts_t ko;
  sr_translation_t tr;
  uint64_t off;

  memset(w, 0, sizeof(*w));
  memset(&ko, 0, sizeof(ko));
  ko.size = image_size;
  w->gva = GVA_BASE;
  w->span = span;
  BENCH_CHECK(sr_kit_create(&w->kit, &ko) == 0);
  BENCH_CHECK(sr_kit_new_space(w->kit, SR_PAGING_4LEVEL, &w->cr3) == 0);
  BENCH_CHECK(sr_kit_map(w->kit, w->cr3, w->gva, span, page,
                         SR_PROT_W | SR_PROT_U) == 0);
  BENCH_CHECK(sr_kit_fill(w->kit, w->cr3, w->gva, fill, SEED) == 0);
  BENCH_CHECK(sr_kit_open_image(w->kit, &w->image) == 0);
  BENCH_CHECK(sr_swap_new(&w->swap, w->image, NULL) == 0);
  w->ro_len = (size_t)image_size;
  w->ro = mmap(NULL, w->ro_len, PROT_READ, MAP_SHARED, sr_kit_fd(w->kit), 0);
  BENCH_CHECK(w->ro != MAP_FAILED);
  /* the kit allocates one block per sr_kit_map: check it is contiguous */
  BENCH_CHECK(sr_translate(w->image, w->cr3, w->gva, NULL, &tr) == 0);
  w->gpa = tr.gpa;
  for (off = 0; off < span; off += page) {
    BENCH_CHECK(sr_translate(w->image, w->cr3, w->gva + off, NULL, &tr) == 0);
    BENCH_CHECK(tr.gpa == w->gpa + off && tr.page_size == page);
  }
}

static void world_free(world_t* w) {
  munmap((void*)w->ro, w->ro_len);
  sr_swap_free(w->swap);
  sr_image_close(w->image);
  sr_kit_destroy(w->kit);
}

/* The pattern bytes of [gva, gva + len), computed independently. */
static unsigned char* expected(uint64_t gva, size_t len) {
  unsigned char* e = malloc(len);
  size_t i;
  BENCH_CHECK(e != NULL);
  for (i = 0; i < len; i++)
    e[i] = sr_kit_pattern(SEED, gva + i);
  return e;
}

static unsigned char* buffer(size_t len) {
  unsigned char* b = malloc(len);
  BENCH_CHECK(b != NULL);
  memset(b, 0, len); /* faulted in before timing */
  return b;
}

static void on_done(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  (void)swap;
  (void)done;
  (void)data;
  bench_fail("a synchronous read completed through its callback");
}

/* Converts time stats (ns) of `units` units into a rate (units/s scaled). */
static bench_stats_t rate(bench_stats_t t, double units, double scale) {
  bench_stats_t r;
  r.n = t.n;
  r.med = units / t.med * 1e9 / scale;
  r.min = units / t.max * 1e9 / scale;
  r.max = units / t.min * 1e9 / scale;
  return r;
}

static void row(const char* scenario, const char* name, const char* metric,
                const char* unit, bench_stats_t fig, double base,
                const char* target) {
  bench_row_t r;
  memset(&r, 0, sizeof(r));
  r.scenario = scenario;
  r.name = name;
  r.metric = metric;
  r.unit = unit;
  r.fig = fig;
  r.have_range = 1;
  r.base_med = base;
  r.target = target;
  bench_row(&r);
}

/* --- sequential and large pages --------------------------------------- */

typedef struct seq_s {
  world_t* w;
  unsigned char *dst, *dst2;
  size_t len;
  int bad;
} seq_t;

static void seq_swap(void* arg) {
  seq_t* s = arg;
  sr_swap_req_t req;
  memset(&req, 0, sizeof(req));
  req.cr3 = s->w->cr3;
  req.gva = s->w->gva;
  req.buf = s->dst;
  req.len = s->len;
  if (sr_swap_read(s->w->swap, &req, bench_now_ns(), on_done, NULL, NULL, NULL,
                   NULL) != 0)
    s->bad++;
}

static void seq_virt(void* arg) {
  seq_t* s = arg;
  if (sr_read_virt(s->w->image, s->w->cr3, NULL, s->w->gva, s->dst, s->len,
                   NULL) != 0)
    s->bad++;
}

static void seq_memcpy(void* arg) {
  seq_t* s = arg;
  memcpy(s->dst2, s->w->ro + s->w->gpa, s->len);
}

static void seq_case(const char* name, uint64_t image_size, uint64_t span,
                     uint64_t page, const char* target, unsigned reps) {
  world_t w;
  seq_t s;
  unsigned char* exp;
  bench_stats_t a, b, v, b2;
  char label[96];

  world_init(&w, image_size, span, page, SEQ_LEN);
  memset(&s, 0, sizeof(s));
  s.w = &w;
  s.len = (size_t)SEQ_LEN;
  s.dst = buffer(s.len);
  s.dst2 = buffer(s.len);
  exp = expected(w.gva, s.len);
  seq_swap(&s);
  seq_memcpy(&s);
  bench_time_pair(seq_swap, seq_memcpy, &s, reps, &a, &b);
  BENCH_CHECK(s.bad == 0);
  BENCH_CHECK(memcmp(s.dst, exp, s.len) == 0);
  BENCH_CHECK(memcmp(s.dst2, exp, s.len) == 0);
  memset(s.dst, 0, s.len);
  bench_time_pair(seq_virt, seq_memcpy, &s, reps, &v, &b2);
  BENCH_CHECK(s.bad == 0);
  BENCH_CHECK(memcmp(s.dst, exp, s.len) == 0);

  snprintf(label, sizeof(label), "%s: sr_swap_read of 64 MiB", name);
  row("read", label, "bandwidth vs memcpy", "GB/s", rate(a, (double)s.len, 1e9),
      rate(b, (double)s.len, 1e9).med, target);
  snprintf(label, sizeof(label), "%s: sr_read_virt of 64 MiB", name);
  row("read", label, "bandwidth vs memcpy", "GB/s", rate(v, (double)s.len, 1e9),
      rate(b2, (double)s.len, 1e9).med, "information");
  free(exp);
  free(s.dst);
  free(s.dst2);
  world_free(&w);
}

/* --- random small reads, single and batched --------------------------- */

typedef struct rnd_s {
  world_t* w;
  uint64_t* va;  /* [RND_N] */
  uint64_t* val; /* [RND_N] batch outputs */
  sr_batch_item_t* items;
  uint64_t sum, expect;
  int bad;
} rnd_t;

/* The physical limit: a minimal 4-level walk + 8-byte load per address,
 * inline, through the benchmark's own mapping. */
static __attribute__((noinline)) uint64_t inline_walk(const unsigned char* ro,
                                                      uint64_t cr3,
                                                      const uint64_t* va,
                                                      size_t n) {
  uint64_t sum = 0, t, e, v;
  size_t i;
  for (i = 0; i < n; i++) {
    v = va[i];
    t = cr3 & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 39) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 30) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 21) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 12) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + (v & 4095), 8);
    sum += e;
  }
  return sum;
}

/* The same walk with each address depending on the previous load (zero
 * is 0 at run time): one walk at a time, its latency. */
static __attribute__((noinline)) uint64_t inline_walk_dep(
    const unsigned char* ro, uint64_t cr3, const uint64_t* va, size_t n,
    uint64_t zero) {
  uint64_t sum = 0, t, e = 0, v;
  size_t i;
  for (i = 0; i < n; i++) {
    v = va[i] + (e & zero);
    t = cr3 & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 39) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 30) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 21) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + ((v >> 12) & 511) * 8, 8);
    t = e & ADDR_MASK;
    memcpy(&e, ro + t + (v & 4095), 8);
    sum += e;
  }
  return sum;
}

/* The ideal of interleaving: 32 walks at a time, level by level, every
 * load prefetched one pass ahead, no checks at all. What the hardware
 * gives to overlapped walks on this machine. */
static __attribute__((noinline)) uint64_t inline_walk_x32(
    const unsigned char* ro, uint64_t cr3, const uint64_t* va, size_t n) {
  const unsigned char* p[32];
  uint64_t sum = 0, e;
  size_t i, k;
  int level;
  for (i = 0; i + 32 <= n; i += 32) {
    for (k = 0; k < 32; k++) {
      p[k] = ro + (cr3 & ADDR_MASK) + ((va[i + k] >> 39) & 511) * 8;
      __builtin_prefetch(p[k]);
    }
    for (level = 3; level >= 0; level--) {
      for (k = 0; k < 32; k++) {
        memcpy(&e, p[k], 8);
        p[k] = ro + (e & ADDR_MASK) +
               (level > 0 ? ((va[i + k] >> (12 + 9 * (level - 1))) & 511) * 8
                          : (va[i + k] & 4095));
        __builtin_prefetch(p[k]);
      }
    }
    for (k = 0; k < 32; k++) {
      memcpy(&e, p[k], 8);
      sum += e;
    }
  }
  return sum;
}

static void rnd_inline_x32(void* arg) {
  rnd_t* r = arg;
  r->sum = inline_walk_x32(r->w->ro, r->w->cr3, r->va, RND_N);
  if (r->sum != r->expect)
    r->bad++;
}

static volatile uint64_t zero_mask; /* 0, unknown to the compiler */

static void rnd_inline_dep(void* arg) {
  rnd_t* r = arg;
  r->sum = inline_walk_dep(r->w->ro, r->w->cr3, r->va, RND_N, zero_mask);
  if (r->sum != r->expect)
    r->bad++;
}

static void rnd_inline(void* arg) {
  rnd_t* r = arg;
  r->sum = inline_walk(r->w->ro, r->w->cr3, r->va, RND_N);
  if (r->sum != r->expect)
    r->bad++;
}

static void rnd_swap(void* arg) {
  rnd_t* r = arg;
  sr_swap_req_t req;
  uint64_t sum = 0, v = 0;
  size_t i;
  memset(&req, 0, sizeof(req));
  req.cr3 = r->w->cr3;
  req.buf = &v;
  req.len = sizeof(v);
  for (i = 0; i < RND_N; i++) {
    req.gva = r->va[i];
    if (sr_swap_read(r->w->swap, &req, 0, on_done, NULL, NULL, NULL, NULL) != 0)
      r->bad++;
    sum += v;
  }
  r->sum = sum;
  if (sum != r->expect)
    r->bad++;
}

static void rnd_virt(void* arg) {
  rnd_t* r = arg;
  uint64_t sum = 0, v = 0;
  size_t i;
  for (i = 0; i < RND_N; i++) {
    if (sr_read_virt(r->w->image, r->w->cr3, NULL, r->va[i], &v, sizeof(v),
                     NULL) != 0)
      r->bad++;
    sum += v;
  }
  r->sum = sum;
  if (sum != r->expect)
    r->bad++;
}

/* Batches of BATCH items in one reused array (as a caller would keep
 * it): set gva, call, sum the values. */
static void rnd_batch(void* arg) {
  rnd_t* r = arg;
  uint64_t sum = 0;
  size_t i, k;
  for (i = 0; i < RND_N; i += BATCH) {
    for (k = 0; k < BATCH; k++)
      r->items[k].gva = r->va[i + k];
    if (sr_read_batch(r->w->image, r->w->cr3, NULL, r->items, BATCH) !=
        (int)BATCH)
      r->bad++;
    for (k = 0; k < BATCH; k++)
      sum += r->val[k];
  }
  r->sum = sum;
  if (sum != r->expect)
    r->bad++;
}

static void rnd_cases(unsigned reps) {
  world_t w;
  rnd_t r;
  uint64_t x = 0x9e3779b97f4a7c15u, word;
  bench_stats_t a, b;
  size_t i;
  int k;

  world_init(&w, RND_SPAN + 64 * MIB, RND_SPAN, SR_PAGE_4K, RND_SPAN);
  memset(&r, 0, sizeof(r));
  r.w = &w;
  r.va = malloc(RND_N * sizeof(*r.va));
  r.val = malloc(BATCH * sizeof(*r.val));
  r.items = calloc(BATCH, sizeof(*r.items));
  BENCH_CHECK(r.va != NULL && r.val != NULL && r.items != NULL);
  for (i = 0; i < RND_N; i++) {
    x ^= x << 13; /* xorshift64 */
    x ^= x >> 7;
    x ^= x << 17;
    r.va[i] = w.gva + ((x % RND_SPAN) & ~UINT64_C(7));
    word = 0;
    for (k = 0; k < 8; k++)
      word |= (uint64_t)sr_kit_pattern(SEED, r.va[i] + (uint64_t)k) << (8 * k);
    r.expect += word;
  }
  for (i = 0; i < BATCH; i++) {
    r.items[i].buf = &r.val[i];
    r.items[i].len = sizeof(uint64_t);
  }
  rnd_inline(&r);
  BENCH_CHECK(r.bad == 0);

  rnd_swap(&r);
  bench_time_pair(rnd_swap, rnd_inline, &r, reps, &a, &b);
  BENCH_CHECK(r.bad == 0);
  row("read", "random 8 B over 768 MiB (4K pages): sr_swap_read each",
      "rate vs inline walk", "M/s", rate(a, RND_N, 1e6),
      rate(b, RND_N, 1e6).med, ">= 0.8x (issue 6)");
  bench_time_pair(rnd_virt, rnd_inline, &r, reps, &a, &b);
  BENCH_CHECK(r.bad == 0);
  row("read", "random 8 B over 768 MiB (4K pages): sr_read_virt each",
      "rate vs inline walk", "M/s", rate(a, RND_N, 1e6),
      rate(b, RND_N, 1e6).med, ">= 0.8x (issue 6)");
  bench_time_pair(rnd_virt, rnd_inline_dep, &r, reps, &a, &b);
  BENCH_CHECK(r.bad == 0);
  row("read", "random 8 B: sr_read_virt each vs dependent inline walks",
      "rate vs one walk at a time", "M/s", rate(a, RND_N, 1e6),
      rate(b, RND_N, 1e6).med, "information (latency bound)");
  rnd_batch(&r);
  bench_time_pair(rnd_batch, rnd_inline, &r, reps, &a, &b);
  BENCH_CHECK(r.bad == 0);
  for (i = 0; i < BATCH; i++)
    BENCH_CHECK(r.items[i].status == 0 && r.items[i].level == 1);
  row("read", "batched random 8 B over 768 MiB: sr_read_batch, 512 a call",
      "rate vs inline walk", "M/s", rate(a, RND_N, 1e6),
      rate(b, RND_N, 1e6).med, ">= 2.5x (issue 6)");
  bench_time_pair(rnd_inline_x32, rnd_inline, &r, reps, &a, &b);
  BENCH_CHECK(r.bad == 0);
  row("read", "ideal interleaved inline walk, 32 at a time, prefetched",
      "rate vs inline walk", "M/s", rate(a, RND_N, 1e6),
      rate(b, RND_N, 1e6).med, "information (hardware limit)");
  free(r.va);
  free(r.val);
  free(r.items);
  world_free(&w);
}

/* --- cold start ------------------------------------------------------- */

typedef struct cold_s {
  world_t* w;
  unsigned char *dst, *dst2;
  size_t len; /* 4 KiB (first read) or COLD_SPAN (full pass) */
  int bad;
} cold_t;

static void cold_sr(void* arg) {
  cold_t* c = arg;
  sr_image_t* image = NULL;
  sr_swap_t* swap = NULL;
  sr_swap_req_t req;

  if (sr_kit_open_image(c->w->kit, &image) != 0 ||
      sr_swap_new(&swap, image, NULL) != 0) {
    c->bad++;
  } else {
    memset(&req, 0, sizeof(req));
    req.cr3 = c->w->cr3;
    req.gva = c->w->gva;
    req.buf = c->dst;
    req.len = c->len;
    if (sr_swap_read(swap, &req, 0, on_done, NULL, NULL, NULL, NULL) != 0)
      c->bad++;
  }
  sr_swap_free(swap);
  sr_image_close(image);
}

static void cold_mmap(void* arg) {
  cold_t* c = arg;
  const unsigned char* m = mmap(NULL, (size_t)COLD_IMAGE, PROT_READ, MAP_SHARED,
                                sr_kit_fd(c->w->kit), 0);
  if (m == MAP_FAILED) {
    c->bad++;
    return;
  }
  memcpy(c->dst2, m + c->w->gpa, c->len);
  munmap((void*)m, (size_t)COLD_IMAGE);
}

static void cold_cases(unsigned reps) {
  world_t w;
  cold_t c;
  unsigned char* exp;
  bench_stats_t a, b;

  world_init(&w, COLD_IMAGE, COLD_SPAN, SR_PAGE_4K, COLD_SPAN);
  memset(&c, 0, sizeof(c));
  c.w = &w;
  c.dst = buffer((size_t)COLD_SPAN);
  c.dst2 = buffer((size_t)COLD_SPAN);
  exp = expected(w.gva, (size_t)COLD_SPAN);

  c.len = (size_t)SR_PAGE_4K;
  bench_time_pair(cold_sr, cold_mmap, &c, reps, &a, &b);
  BENCH_CHECK(c.bad == 0);
  BENCH_CHECK(memcmp(c.dst, exp, c.len) == 0 &&
              memcmp(c.dst2, exp, c.len) == 0);
  a.med /= 1e3, a.min /= 1e3, a.max /= 1e3, b.med /= 1e3;
  row("cold", "4 GiB sparse image: open + first 4 KiB read",
      "time vs mmap + copy", "us", a, b.med, "information (ratio of times)");

  c.len = (size_t)COLD_SPAN;
  memset(c.dst, 0, c.len);
  bench_time_pair(cold_sr, cold_mmap, &c, reps, &a, &b);
  BENCH_CHECK(c.bad == 0);
  BENCH_CHECK(memcmp(c.dst, exp, c.len) == 0 &&
              memcmp(c.dst2, exp, c.len) == 0);
  a.med /= 1e6, a.min /= 1e6, a.max /= 1e6, b.med /= 1e6;
  row("cold", "4 GiB sparse image: open + first pass over 256 MiB",
      "time vs mmap + copy", "ms", a, b.med, "information (ratio of times)");
  free(exp);
  free(c.dst);
  free(c.dst2);
  world_free(&w);
}

/* BENCH_READ=list of seq,large,random,cold (default: all) picks cases. */
static int want(const char* name) {
  const char* s = getenv("BENCH_READ");
  return s == NULL || *s == '\0' || strstr(s, name) != NULL;
}

int main(void) {
  unsigned reps = bench_reps(15);
  uint64_t t0 = bench_now_ns();

  if (want("seq"))
    seq_case("sequential, 4K pages", SEQ_LEN + 64 * MIB, SEQ_LEN, SR_PAGE_4K,
             ">= 0.5x (issue 6)", reps);
  if (want("large")) {
    seq_case("large pages, 2M", SEQ_LEN + 64 * MIB, SEQ_LEN, SR_PAGE_2M,
             ">= 0.7x (issue 6)", reps);
    seq_case("large pages, 1G", 3 * SR_PAGE_1G, SR_PAGE_1G, SR_PAGE_1G,
             ">= 0.7x (issue 6)", reps);
  }
  if (want("random"))
    rnd_cases(reps < 7 ? reps : 7);
  if (want("cold"))
    cold_cases(reps < 7 ? reps : 7);
  bench_note("read: %u reps (random, cold: at most 7), %.1f s", reps,
             (bench_now_ns() - t0) / 1e9);
  return bench_finish();
}
