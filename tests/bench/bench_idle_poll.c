/* Benchmark: the cost of an idle sr_swap_poll (nothing changed) against
 * the physical limit, reading each distinct blocking entry once.
 *
 * One kit image maps 4 GiB of VA with 4 KiB pages (1 Mi chunks, 2048 page
 * tables). Cases: (a) 100 Ki chunks blocked by 100 Ki distinct non-present
 * PTEs (Linux swap entries), spread over 1, 200, 1024 and 100 Ki
 * transactions; (b) 1 Mi chunks blocked by 1 Mi distinct PTEs; (c) the same
 * 1 Mi chunks blocked by 2048 non-present PDEs (512 chunks each). For each
 * case a fresh engine (counting allocator) starts the reads through the
 * public API (every one must be SR_PENDING), an idle poll is timed (it must
 * complete nothing and re-read exactly the watched entries), and the
 * baseline loads each blocking entry once from a read-only mmap of the same
 * file (RAW image: file offset == GPA), summing them and checking the sum
 * against the encoded entries. Then one entry is paged back in and the next
 * poll must complete exactly the expected read with the right bytes. The
 * engine's heap bytes per pending chunk and per transaction are reported
 * from the allocator hook. Limits: one address space, Linux swap entries
 * only, no deadlines; times are wall clock on a shared machine (the
 * baseline of the same run is what the ratio is against).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <swapread/kit.h>
#include <swapread/swap.h>

#include "bench.h"

#define GVA_BASE UINT64_C(0x00007f0000000000)
#define NPT 2048u           /* page tables: 4 GiB of VA */
#define NPAGES (NPT * 512u) /* 1 Mi chunks */
#define SPAN ((uint64_t)NPAGES * SR_PAGE_4K)
#define NA 102400u      /* case (a): 100 Ki chunks */
#define CHECK_PAGE 777u /* the page paged back in by the checks */
#define SEED 0x5eed
#define PDE_SWAP_BASE UINT64_C(0x100000)

/* Counting allocator: every engine byte goes through it. */
typedef struct counter_s {
  size_t cur, peak;
} counter_t;

static void* c_alloc(void* ctx, size_t size) {
  counter_t* c = ctx;
  void* p = malloc(size);
  if (p != NULL) {
    c->cur += size;
    if (c->cur > c->peak)
      c->peak = c->cur;
  }
  return p;
}

static void* c_realloc(void* ctx, void* ptr, size_t old_size, size_t new_size) {
  counter_t* c = ctx;
  void* p = realloc(ptr, new_size);
  if (p != NULL) {
    c->cur = c->cur - old_size + new_size;
    if (c->cur > c->peak)
      c->peak = c->cur;
  }
  return p;
}

static void c_free(void* ctx, void* ptr, size_t size) {
  counter_t* c = ctx;
  if (ptr != NULL)
    c->cur -= size;
  free(ptr);
}

/* Everything a case needs, shared by the timed functions. */
typedef struct world_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  const unsigned char* ro; /* read-only mmap of the image file */
  size_t ro_len;
  uint64_t* pte_off;       /* [NPAGES] file offset of the PTE of page i */
  uint64_t* pde_off;       /* [NPT] file offset of the PDE of 2 MiB region j */
  unsigned char* saved_pt; /* [NPT * 4096] the present page tables */
  uint64_t* saved_pde;     /* [NPT] the present PDEs */
  unsigned char* bufs;     /* SPAN bytes of lazily backed read buffers */
  unsigned reps;
} world_t;

typedef struct cbctx_s {
  uint64_t completed, ok, cancelled, other;
  uint64_t last_gva;
} cbctx_t;

static void on_done(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  cbctx_t* c = data;
  (void)swap;
  c->completed++;
  c->last_gva = done->gva;
  if (done->status == 0)
    c->ok++;
  else if (done->status == SR_ECANCELED)
    c->cancelled++;
  else
    c->other++;
}

static uint64_t swap_entry(uint32_t type, uint64_t offset, int level) {
  sr_pte_info_t info;
  uint64_t e = 0;
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = type;
  info.swap_offset = offset;
  BENCH_CHECK(sr_kit_encode(&info, level, &e) == 0);
  return e;
}

static uint64_t pte_swap(uint32_t page) {
  return swap_entry(1, (uint64_t)page + 1, SR_LEVEL_PT);
}

static uint64_t pde_swap(uint32_t region) {
  return swap_entry(2, PDE_SWAP_BASE + region + 1, SR_LEVEL_PD);
}

/* The baseline: one 8-byte load per entry, summed. */
static __attribute__((noinline)) uint64_t load_entries(const unsigned char* map,
                                                       const uint64_t* off,
                                                       size_t n) {
  uint64_t sum = 0;
  uint64_t v;
  size_t i;
  for (i = 0; i < n; i++) {
    memcpy(&v, map + off[i], sizeof(v));
    sum += v;
  }
  return sum;
}

typedef struct timed_s {
  world_t* w;
  sr_swap_t* swap;
  const uint64_t* off;
  size_t n;
  unsigned inner;
  int bad_polls;
  volatile uint64_t sink;
} timed_t;

static void run_poll(void* arg) {
  timed_t* t = arg;
  unsigned k;
  for (k = 0; k < t->inner; k++) {
    if (sr_swap_poll(t->swap, bench_now_ns(), NULL) != 0)
      t->bad_polls++;
  }
}

/* Reference: the same loads through the public sr_image_read, one call
 * per entry (what an engine built on it pays at least). */
static void run_image_read(void* arg) {
  timed_t* t = arg;
  uint64_t sum = 0, v = 0;
  unsigned k;
  size_t i;
  for (k = 0; k < t->inner; k++) {
    sum = 0;
    for (i = 0; i < t->n; i++) {
      if (sr_image_read(t->w->image, t->off[i], &v, sizeof(v), NULL) != 0)
        t->bad_polls++;
      sum += v;
    }
  }
  t->sink = sum;
}

static void run_baseline(void* arg) {
  timed_t* t = arg;
  unsigned k;
  for (k = 0; k < t->inner; k++)
    t->sink = load_entries(t->w->ro, t->off, t->n);
}

typedef struct case_s {
  const char* name;
  int pde;          /* blocked by PDEs (c) rather than PTEs */
  uint32_t nchunks; /* from chunk 0 */
  uint32_t ntxn;    /* equal parts */
  int ref;          /* also time the sr_image_read reference loop */
} case_t;

typedef struct result_s {
  size_t heap; /* engine bytes with everything pending, minus the empty
                  engine */
  double poll_med;
} result_t;

/* After CHECK_PAGE (cs->pde: its whole 2 MiB region) was paged back in:
 * one poll must complete exactly the transactions lying wholly inside what
 * came back, release exactly those chunks, and leave the pattern bytes of
 * CHECK_PAGE in the buffer. */
static void check_page_in(world_t* w, sr_swap_t* swap, cbctx_t* cb,
                          const case_t* cs, uint32_t per) {
  uint64_t va = GVA_BASE + (uint64_t)CHECK_PAGE * SR_PAGE_4K;
  uint64_t back_lo = cs->pde ? (uint64_t)(CHECK_PAGE / 512) * 512 : CHECK_PAGE;
  uint64_t back_hi = cs->pde ? back_lo + 511 : CHECK_PAGE;
  uint64_t before = cb->completed;
  uint64_t expect = 0, expect_gva = 0, i;
  const unsigned char* got = w->bufs + (uint64_t)CHECK_PAGE * SR_PAGE_4K;
  sr_swap_stats_t s0, s1;
  int n;

  for (i = back_lo / per; i <= back_hi / per; i++) {
    if (back_lo <= i * per && i * per + per - 1 <= back_hi) {
      expect++;
      expect_gva = GVA_BASE + i * per * SR_PAGE_4K;
    }
  }
  sr_swap_stats(swap, &s0);
  n = sr_swap_poll(swap, bench_now_ns(), NULL);
  sr_swap_stats(swap, &s1);
  BENCH_CHECK(n == (int)expect);
  BENCH_CHECK(cb->completed - before == expect);
  BENCH_CHECK(cb->ok == expect && cb->other == 0 && cb->cancelled == 0);
  BENCH_CHECK(s0.pending_chunks - s1.pending_chunks == back_hi - back_lo + 1);
  BENCH_CHECK(s0.pending - s1.pending == expect);
  if (expect == 1)
    BENCH_CHECK(cb->last_gva == expect_gva);
  for (i = 0; i < SR_PAGE_4K; i++)
    BENCH_CHECK(got[i] == sr_kit_pattern(SEED, va + i));
}

static void run_case(world_t* w, const case_t* cs, result_t* res) {
  counter_t cnt = {0, 0};
  sr_allocator_t alloc = {c_alloc, c_realloc, c_free, &cnt};
  sr_swap_opts_t opts;
  sr_swap_t* swap = NULL;
  sr_swap_stats_t s0, s1;
  cbctx_t cb;
  timed_t t;
  uint32_t per = cs->nchunks / cs->ntxn;
  uint32_t nentries = cs->pde ? cs->nchunks / 512 : cs->nchunks;
  /* the poll also watches the distinct entries above the blocking ones:
   * the PDE of each page table used (PTE cases), the PDPTE of each GiB,
   * one PML4E */
  uint32_t nwatched =
      nentries + (cs->pde ? 0 : (cs->nchunks + 511) / 512) +
      (uint32_t)((((uint64_t)cs->nchunks << 12) + SR_PAGE_1G - 1) /
                 SR_PAGE_1G) +
      1;
  size_t heap0;
  uint64_t t0, setup_ns, first_ns, expect_sum = 0;
  bench_stats_t poll, base, ref;
  uint32_t i;
  char name[96];
  bench_row_t row;

  BENCH_CHECK(per * cs->ntxn == cs->nchunks);
  memset(&cb, 0, sizeof(cb));
  memset(&opts, 0, sizeof(opts));
  opts.allocator = &alloc;
  BENCH_CHECK(sr_swap_new(&swap, w->image, &opts) == 0);
  heap0 = cnt.cur;

  t0 = bench_now_ns();
  for (i = 0; i < cs->ntxn; i++) {
    uint64_t off = (uint64_t)i * per * SR_PAGE_4K;
    sr_swap_req_t req;
    sr_swap_handle_t h;
    int rc;
    memset(&req, 0, sizeof(req));
    req.cr3 = w->cr3;
    req.gva = GVA_BASE + off;
    req.buf = w->bufs + off;
    req.len = (size_t)per * SR_PAGE_4K;
    req.timeout_ns = SR_TIMEOUT_NONE;
    rc = sr_swap_read(swap, &req, bench_now_ns(), on_done, &cb, NULL, &h, NULL);
    if (rc != SR_PENDING)
      bench_fail("%s: read %u returned %d (%s), want SR_PENDING", cs->name, i,
                 rc, sr_err_name(rc));
  }
  setup_ns = bench_now_ns() - t0;
  sr_swap_stats(swap, &s0);
  BENCH_CHECK(s0.pending == cs->ntxn);
  BENCH_CHECK(s0.pending_chunks == cs->nchunks);
  BENCH_CHECK(s0.watched_entries == nwatched);
  res->heap = cnt.cur - heap0;

  /* warm up, then time; inner repetitions keep a sample >= ~1 M loads */
  memset(&t, 0, sizeof(t));
  t.w = w;
  t.swap = swap;
  t.off = cs->pde ? w->pde_off : w->pte_off;
  t.n = nentries;
  t.inner = nentries >= (1u << 20) ? 1 : (1u << 20) / nentries;
  t0 = bench_now_ns();
  run_poll(&t); /* the first polls find the scan's runs (swap/scan.c) */
  first_ns = bench_now_ns() - t0;
  run_baseline(&t);
  t.bad_polls = 0;
  bench_time_pair(run_poll, run_baseline, &t, w->reps, &poll, &base);
  BENCH_CHECK(t.bad_polls == 0);
  sr_swap_stats(swap, &s1);
  BENCH_CHECK(s1.entries_reread - s0.entries_reread ==
              (uint64_t)(1 + w->reps) * t.inner * nwatched);
  BENCH_CHECK(s1.pending == cs->ntxn && cb.completed == 0);
  for (i = 0; i < nentries; i++)
    expect_sum += cs->pde ? pde_swap(i) : pte_swap(i);
  BENCH_CHECK(t.sink == expect_sum);

  if (cs->ref) {
    ref = bench_time(run_image_read, &t, w->reps);
    BENCH_CHECK(t.bad_polls == 0 && t.sink == expect_sum);
  }

  /* per-poll times in microseconds */
  poll.med /= t.inner * 1e3;
  poll.min /= t.inner * 1e3;
  poll.max /= t.inner * 1e3;
  base.med /= t.inner * 1e3;
  res->poll_med = poll.med;
  bench_note(
      "%s: %u chunks, %u entries, %u txns: setup %.1f ms, first %u "
      "poll(s) %.0f us, poll %.2f ns/entry, baseline %.2f ns/entry, "
      "heap %zu B (%.1f B/chunk, %.0f B/txn)",
      cs->name, cs->nchunks, nentries, cs->ntxn, setup_ns / 1e6, t.inner,
      first_ns / 1e3, poll.med * 1e3 / nentries, base.med * 1e3 / nentries,
      res->heap, (double)res->heap / cs->nchunks, (double)res->heap / cs->ntxn);

  snprintf(name, sizeof(name), "%s: %u chunks, %u entries, %u txns", cs->name,
           cs->nchunks, nentries, cs->ntxn);
  memset(&row, 0, sizeof(row));
  row.scenario = "idle_poll";
  row.name = name;
  row.metric = "poll vs entry loads";
  row.unit = "us";
  row.fig = poll;
  row.have_range = 1;
  row.base_med = base.med;
  row.target = "<= 2x (issue 6)";
  bench_row(&row);
  if (cs->ref) {
    ref.med /= t.inner * 1e3;
    ref.min /= t.inner * 1e3;
    ref.max /= t.inner * 1e3;
    snprintf(name, sizeof(name), "%s: %u entries, reference", cs->name,
             nentries);
    row.name = name;
    row.metric = "sr_image_read per entry vs entry loads";
    row.fig = ref;
    row.target = "information";
    bench_note("%s: sr_image_read %.2f ns/entry", cs->name,
               ref.med * 1e3 / nentries);
    bench_row(&row);
  }

  /* correctness: page one entry back in */
  if (cs->pde) {
    uint64_t va = GVA_BASE + (uint64_t)(CHECK_PAGE / 512) * SR_PAGE_2M;
    uint64_t present = 0;
    present = w->saved_pde[CHECK_PAGE / 512];
    BENCH_CHECK(
        sr_kit_set_entry(w->kit, w->cr3, va, SR_LEVEL_PD, present, NULL) == 0);
    check_page_in(w, swap, &cb, cs, per);
    BENCH_CHECK(sr_kit_set_entry(w->kit, w->cr3, va, SR_LEVEL_PD,
                                 pde_swap(CHECK_PAGE / 512), NULL) == 0);
  } else {
    uint64_t va = GVA_BASE + (uint64_t)CHECK_PAGE * SR_PAGE_4K;
    uint64_t present = 0;
    memcpy(&present, w->saved_pt + (uint64_t)CHECK_PAGE * 8, 8);
    BENCH_CHECK(
        sr_kit_set_entry(w->kit, w->cr3, va, SR_LEVEL_PT, present, NULL) == 0);
    check_page_in(w, swap, &cb, cs, per);
    BENCH_CHECK(sr_kit_set_entry(w->kit, w->cr3, va, SR_LEVEL_PT,
                                 pte_swap(CHECK_PAGE), NULL) == 0);
  }
  memset(w->bufs + (uint64_t)CHECK_PAGE * SR_PAGE_4K, 0, SR_PAGE_4K);

  sr_swap_free(swap);
  BENCH_CHECK(cnt.cur == 0);
  BENCH_CHECK(cb.other == 0);
  BENCH_CHECK(cb.completed == cs->ntxn);
}

static void mem_row(const char* name, const char* metric, double value,
                    const char* target) {
  bench_row_t row;
  memset(&row, 0, sizeof(row));
  row.scenario = "memory";
  row.name = name;
  row.metric = metric;
  row.unit = "B";
  row.fig.med = row.fig.min = row.fig.max = value;
  row.fig.n = 1;
  row.have_range = 0;
  row.base_med = -1;
  row.target = target;
  bench_row(&row);
}

/* Builds the image: 4 GiB of VA mapped with 4 KiB pages, CHECK_PAGE filled
 * with the pattern, every PTE and PDE location recorded and saved. */
static void world_init(world_t* w) {
  sr_kit_opts_t ko;
  uint64_t size = SPAN + (UINT64_C(64) << 20);
  uint32_t pt, i;
  uint64_t g;

  memset(&ko, 0, sizeof(ko));
  ko.size = size;
  BENCH_CHECK(sr_kit_create(&w->kit, &ko) == 0);
  BENCH_CHECK(sr_kit_new_space(w->kit, SR_PAGING_4LEVEL, &w->cr3) == 0);
  BENCH_CHECK(sr_kit_map(w->kit, w->cr3, GVA_BASE, SPAN, SR_PAGE_4K,
                         SR_PROT_W | SR_PROT_U) == 0);
  BENCH_CHECK(sr_kit_fill(w->kit, w->cr3,
                          GVA_BASE + (uint64_t)CHECK_PAGE * SR_PAGE_4K,
                          SR_PAGE_4K, SEED) == 0);
  w->pte_off = malloc((size_t)NPAGES * sizeof(uint64_t));
  w->pde_off = malloc((size_t)NPT * sizeof(uint64_t));
  w->saved_pt = malloc((size_t)NPT * SR_PAGE_4K);
  w->saved_pde = malloc((size_t)NPT * sizeof(uint64_t));
  BENCH_CHECK(w->pte_off && w->pde_off && w->saved_pt && w->saved_pde);
  for (pt = 0; pt < NPT; pt++) {
    uint64_t va = GVA_BASE + (uint64_t)pt * SR_PAGE_2M;
    /* one kit lookup per page table; its 512 entries are consecutive */
    BENCH_CHECK(sr_kit_entry_gpa(w->kit, w->cr3, va, SR_LEVEL_PT, &g) == 0);
    BENCH_CHECK(g % SR_PAGE_4K == 0);
    for (i = 0; i < 512; i++)
      w->pte_off[pt * 512 + i] = g + 8 * i;
    BENCH_CHECK(sr_kit_read_phys(w->kit, g, w->saved_pt + (size_t)pt * 4096,
                                 4096) == 0);
    BENCH_CHECK(sr_kit_entry_gpa(w->kit, w->cr3, va, SR_LEVEL_PD, &g) == 0);
    w->pde_off[pt] = g;
    BENCH_CHECK(sr_kit_get_entry(w->kit, w->cr3, va, SR_LEVEL_PD,
                                 &w->saved_pde[pt]) == 0);
  }
  BENCH_CHECK(sr_kit_open_image(w->kit, &w->image) == 0);
  w->ro_len = (size_t)size;
  w->ro = mmap(NULL, w->ro_len, PROT_READ, MAP_SHARED, sr_kit_fd(w->kit), 0);
  BENCH_CHECK(w->ro != MAP_FAILED);
  w->bufs = mmap(NULL, (size_t)SPAN, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  BENCH_CHECK(w->bufs != MAP_FAILED);
}

static void world_free(world_t* w) {
  munmap(w->bufs, (size_t)SPAN);
  munmap((void*)w->ro, w->ro_len);
  sr_image_close(w->image);
  sr_kit_destroy(w->kit);
  free(w->pte_off);
  free(w->pde_off);
  free(w->saved_pt);
  free(w->saved_pde);
}

/* Every PTE of the 4 GiB becomes a distinct swap entry. */
static void swap_out_ptes(world_t* w) {
  static uint64_t page[512];
  uint32_t pt, i;
  for (pt = 0; pt < NPT; pt++) {
    for (i = 0; i < 512; i++)
      page[i] = pte_swap(pt * 512 + i);
    BENCH_CHECK(sr_kit_write_phys(w->kit, w->pte_off[pt * 512], page,
                                  sizeof(page)) == 0);
  }
}

/* PTEs present again, every PDE a distinct swap entry. */
static void swap_out_pdes(world_t* w) {
  uint32_t pt;
  for (pt = 0; pt < NPT; pt++) {
    uint64_t e = pde_swap(pt);
    BENCH_CHECK(sr_kit_write_phys(w->kit, w->pte_off[pt * 512],
                                  w->saved_pt + (size_t)pt * 4096, 4096) == 0);
    BENCH_CHECK(sr_kit_write_phys(w->kit, w->pde_off[pt], &e, 8) == 0);
  }
}

int main(void) {
  static const case_t pte_cases[] = {
      {"(a) PTEs", 0, NA, 1, 1},
      {"(a) PTEs", 0, NA, NA / 512, 0},
      {"(a) PTEs", 0, NA, 1024, 0},
      {"(a) PTEs", 0, NA, NA, 0},
      {"(b) PTEs", 0, NPAGES, NPAGES / 512, 1},
      {"(b) PTEs", 0, NPAGES, 1, 0},
  };
  static const case_t pde_cases[] = {
      {"(c) PDEs", 1, NPAGES, NPAGES / 512, 1},
      {"(c) PDEs", 1, NPAGES, 1, 0},
  };
  result_t rp[sizeof(pte_cases) / sizeof(pte_cases[0])];
  result_t rd[sizeof(pde_cases) / sizeof(pde_cases[0])];
  world_t w;
  size_t i;
  uint64_t t0 = bench_now_ns();
  char name[96];

  memset(&w, 0, sizeof(w));
  w.reps = bench_reps(15);
  world_init(&w);
  bench_note(
      "idle_poll: image 4 GiB RAW (memfd), %u page tables, %u reps, "
      "built in %.0f ms",
      NPT, w.reps, (bench_now_ns() - t0) / 1e6);

  swap_out_ptes(&w);
  for (i = 0; i < sizeof(pte_cases) / sizeof(pte_cases[0]); i++)
    run_case(&w, &pte_cases[i], &rp[i]);
  swap_out_pdes(&w);
  for (i = 0; i < sizeof(pde_cases) / sizeof(pde_cases[0]); i++)
    run_case(&w, &pde_cases[i], &rd[i]);

  /* memory: rp[1] = (a) 2 MiB reads, rp[4] = (b) 2 MiB reads,
   * rd[0] = (c) 2 MiB reads; per transaction: (a) 100 Ki txns minus 1 txn */
  mem_row("(a) 102400 PTEs, 200 txns", "heap per pending chunk",
          (double)rp[1].heap / NA, "<= 48 B/chunk (issue 6)");
  mem_row("(b) 1048576 PTEs, 2048 txns", "heap per pending chunk",
          (double)rp[4].heap / NPAGES, "<= 48 B/chunk (issue 6)");
  mem_row("(c) 2048 PDEs, 2048 txns", "heap per pending chunk",
          (double)rd[0].heap / NPAGES, "<= 48 B/chunk (issue 6)");
  snprintf(name, sizeof(name), "(a) %u txns vs 1 txn, same %u chunks", NA, NA);
  mem_row(name, "heap per extra txn",
          ((double)rp[3].heap - (double)rp[0].heap) / (NA - 1),
          "<= 256 B/txn (issue 6)");
  bench_note(
      "flatness over transactions, (a): 1 txn %.1f us, %u txns "
      "%.1f us, 1024 txns %.1f us, %u txns %.1f us (issue 6: within "
      "20%%)",
      rp[0].poll_med, NA / 512, rp[1].poll_med, rp[2].poll_med, NA,
      rp[3].poll_med);

  world_free(&w);
  return bench_finish();
}
