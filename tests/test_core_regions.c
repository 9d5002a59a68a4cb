/* Tests for sr_regions: region enumeration over images built with the kit.
 *
 * Every expectation is derived from what the test mapped with the kit (VA,
 * length, page size, prot) and from the spec's encodings, never from
 * output of the code under test. The property test compares the regions
 * with sr_translate at random addresses and at every boundary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/regions.h>

#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define G1 SR_PAGE_1G
#define RW (SR_PROT_W | SR_PROT_U)
#define KIND(k) (1u << (k))

typedef struct fx_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  sr_region_t* reg; /* the regions of the last call */
  size_t n;
  size_t cap;
  size_t stop_after; /* 0: never stop; else return stop_value then */
  int stop_value;
  size_t calls;
} fx_t;

static int setup(void** state) {
  fx_t* fx = calloc(1, sizeof(*fx));

  if (fx == NULL)
    return -1;
  *state = fx;
  return 0;
}

static int teardown(void** state) {
  fx_t* fx = *state;

  sr_image_close(fx->image);
  sr_kit_destroy(fx->kit);
  free(fx->reg);
  free(fx);
  return 0;
}

/* Creates the kit (size bytes of RAM, or the given segments) and a space. */
static void make_kit(fx_t* fx, uint64_t size, const sr_segment_t* seg,
                     size_t nseg, sr_paging_t paging) {
  sr_kit_opts_t o;

  memset(&o, 0, sizeof(o));
  o.size = size;
  o.seg = seg;
  o.nseg = nseg;
  assert_int_equal(sr_kit_create(&fx->kit, &o), 0);
  assert_int_equal(sr_kit_new_space(fx->kit, paging, &fx->cr3), 0);
}

static void map(fx_t* fx, uint64_t gva, uint64_t len, uint64_t page_size,
                uint32_t prot) {
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, len, page_size, prot), 0);
}

static void open_image(fx_t* fx) {
  if (fx->image == NULL)
    assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
}

static int collect_cb(const sr_region_t* r, void* arg) {
  fx_t* fx = arg;

  fx->calls++;
  if (fx->n == fx->cap) {
    size_t cap = fx->cap == 0 ? 64 : 2 * fx->cap;
    sr_region_t* p = realloc(fx->reg, cap * sizeof(*p));

    assert_non_null(p);
    fx->reg = p;
    fx->cap = cap;
  }
  fx->reg[fx->n++] = *r;
  if (fx->stop_after != 0 && fx->calls == fx->stop_after)
    return fx->stop_value;
  return 0;
}

/* sr_regions into fx->reg[0..n). */
static int regions(fx_t* fx, uint64_t lo, uint64_t hi,
                   const sr_walk_opts_t* opts, uint32_t flags) {
  open_image(fx);
  fx->n = 0;
  fx->calls = 0;
  return sr_regions(fx->image, fx->cr3, lo, hi, opts, flags, collect_cb, fx);
}

static void expect_region(const fx_t* fx, size_t i, uint64_t lo, uint64_t hi,
                          sr_run_state_t state, uint32_t prot,
                          uint64_t present_bytes, uint32_t kinds,
                          uint64_t page_sizes) {
  const sr_region_t* r;

  assert_true(i < fx->n);
  r = &fx->reg[i];
  assert_int_equal(r->lo, lo);
  assert_int_equal(r->hi, hi);
  assert_int_equal(r->state, state);
  assert_int_equal(r->prot, prot);
  assert_int_equal(r->present_bytes, present_bytes);
  assert_int_equal(r->kinds, kinds);
  assert_int_equal(r->page_sizes, page_sizes);
}

static sr_pte_info_t info_of(sr_pte_kind_t kind, uint32_t type,
                             uint64_t offset) {
  sr_pte_info_t info;

  memset(&info, 0, sizeof(info));
  info.kind = kind;
  info.swap_type = type;
  info.swap_offset = offset;
  if (kind == SR_PTE_WIN_PROTOTYPE)
    info.proto_addr = UINT64_C(0xffffa00000001000) + 8 * offset;
  return info;
}

static void page_out(fx_t* fx, uint64_t gva, int level, sr_pte_kind_t kind) {
  sr_pte_info_t info = info_of(kind, 1, 0x1234 + (gva >> 12));

  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, gva, level, &info), 0);
}

/* The cookbook scan: the first writable region of at least n bytes. */
typedef struct scan_s {
  uint64_t n;
  uint64_t lo;
} scan_t;

static int scan_cb(const sr_region_t* r, void* arg) {
  scan_t* s = arg;

  if ((r->prot & SR_PROT_W) != 0 && r->hi - r->lo >= s->n) {
    s->lo = r->lo;
    return 1;
  }
  return 0;
}

/* 1: found at *at; 0: none; < 0: error. */
static int find_rw_run(const sr_image_t* image, uint64_t cr3, uint64_t n,
                       uint32_t flags, uint64_t* at) {
  scan_t s = {n, 0};
  int rc = sr_regions(image, cr3, 0, 0, NULL, flags, scan_cb, &s);

  if (rc == 1)
    *at = s.lo;
  return rc;
}

/* --- tests ----------------------------------------------------------- */

static void test_regions_prot_and_page_sizes(void** state) {
  fx_t* fx = *state;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, 0x400000, 3 * K4, K4, RW);
  map(fx, 0x600000, M2, M2, SR_PROT_U | SR_PROT_NX);
  /* A 1G page onto GPA 0 (no data is read, no frame needed). */
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, G1, G1, 0, G1, SR_PROT_W),
                   0);
  map(fx, 0x7f0000000000, 2 * K4, K4, SR_PROT_U);

  assert_int_equal(regions(fx, 0, 0, NULL, 0), 0);
  assert_int_equal(fx->n, 4);
  expect_region(fx, 0, 0x400000, 0x403000, SR_RUN_PRESENT, RW, 3 * K4, 0, K4);
  expect_region(fx, 1, 0x600000, 0x800000, SR_RUN_PRESENT,
                SR_PROT_U | SR_PROT_NX, M2, 0, M2);
  expect_region(fx, 2, G1, 2 * G1, SR_RUN_PRESENT, SR_PROT_W, G1, 0, G1);
  expect_region(fx, 3, 0x7f0000000000, 0x7f0000002000, SR_RUN_PRESENT,
                SR_PROT_U, 2 * K4, 0, K4);
  /* The flag changes nothing when nothing is paged out. */
  assert_int_equal(regions(fx, 0, 0, NULL, SR_REGIONS_MERGE_PAGED), 0);
  assert_int_equal(fx->n, 4);
  expect_region(fx, 2, G1, 2 * G1, SR_RUN_PRESENT, SR_PROT_W, G1, 0, G1);
}

static void test_regions_coalesce_across_tables(void** state) {
  fx_t* fx = *state;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  /* A 2M page then 4K pages in the next PDE. */
  map(fx, 0x200000, M2, M2, RW);
  map(fx, 0x400000, 2 * K4, K4, RW);
  /* 4K pages across a PT boundary (PDE 0x7ff... -> next PDE). */
  map(fx, 0x10000000 - 2 * K4, 4 * K4, K4, SR_PROT_W);
  /* 4K pages across a PD boundary (1 GiB: next PDPTE). */
  map(fx, 2 * G1 - K4, 2 * K4, K4, SR_PROT_U);
  /* 4K pages across a PDPT boundary (512 GiB: next PML4E). */
  map(fx, UINT64_C(0x8000000000) - K4, 2 * K4, K4, SR_PROT_NX);

  assert_int_equal(regions(fx, 0, 0, NULL, 0), 0);
  assert_int_equal(fx->n, 4);
  expect_region(fx, 0, 0x200000, 0x402000, SR_RUN_PRESENT, RW, M2 + 2 * K4, 0,
                M2 | K4);
  expect_region(fx, 1, 0x10000000 - 2 * K4, 0x10000000 + 2 * K4, SR_RUN_PRESENT,
                SR_PROT_W, 4 * K4, 0, K4);
  expect_region(fx, 2, 2 * G1 - K4, 2 * G1 + K4, SR_RUN_PRESENT, SR_PROT_U,
                2 * K4, 0, K4);
  expect_region(fx, 3, UINT64_C(0x8000000000) - K4, UINT64_C(0x8000000000) + K4,
                SR_RUN_PRESENT, SR_PROT_NX, 2 * K4, 0, K4);
}

static void test_regions_swapped_hole_merges(void** state) {
  fx_t* fx = *state;
  const uint64_t lo = 0x10000000;
  const uint64_t n = 16;
  uint64_t at = 0;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, lo, n * K4, K4, RW);
  map(fx, lo + 32 * K4, 4 * K4, K4, RW); /* a smaller RW run elsewhere */
  page_out(fx, lo + 5 * K4, 1, SR_PTE_LINUX_SWAP);
  page_out(fx, lo + 6 * K4, 1, SR_PTE_LINUX_SWAP);

  assert_int_equal(regions(fx, 0, 0, NULL, 0), 0);
  assert_int_equal(fx->n, 4);
  expect_region(fx, 0, lo, lo + 5 * K4, SR_RUN_PRESENT, RW, 5 * K4, 0, K4);
  /* Paged: the upper levels' prot (the kit's upper entries are RW|US). */
  expect_region(fx, 1, lo + 5 * K4, lo + 7 * K4, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_LINUX_SWAP), 0);
  expect_region(fx, 2, lo + 7 * K4, lo + n * K4, SR_RUN_PRESENT, RW, 9 * K4, 0,
                K4);

  assert_int_equal(regions(fx, 0, 0, NULL, SR_REGIONS_MERGE_PAGED), 0);
  assert_int_equal(fx->n, 2);
  expect_region(fx, 0, lo, lo + n * K4, SR_RUN_MIXED, RW, (n - 2) * K4,
                KIND(SR_PTE_LINUX_SWAP), K4);
  expect_region(fx, 1, lo + 32 * K4, lo + 36 * K4, SR_RUN_PRESENT, RW, 4 * K4,
                0, K4);

  /* The consumer's scan for 10 RW pages finds it only with the flag. */
  assert_int_equal(find_rw_run(fx->image, fx->cr3, 10 * K4, 0, &at), 0);
  assert_int_equal(
      find_rw_run(fx->image, fx->cr3, 10 * K4, SR_REGIONS_MERGE_PAGED, &at), 1);
  assert_int_equal(at, lo);
  /* Paged back in: one present region again. */
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3, lo + 5 * K4, 1), 0);
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3, lo + 6 * K4, 1), 0);
  assert_int_equal(regions(fx, lo, lo + n * K4, NULL, 0), 0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, lo, lo + n * K4, SR_RUN_PRESENT, RW, n * K4, 0, K4);
}

static void test_regions_merge_keeps_prot_apart(void** state) {
  fx_t* fx = *state;
  const uint64_t lo = 0x20000000;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  /* Pages 0..2 RW and 3..6 read-only, 2 and 5 paged out; then a paged
   * page followed by present NX pages after a gap. */
  map(fx, lo, 3 * K4, K4, RW);
  map(fx, lo + 3 * K4, 4 * K4, K4, SR_PROT_U);
  page_out(fx, lo + 2 * K4, 1, SR_PTE_LINUX_SWAP);
  page_out(fx, lo + 5 * K4, 1, SR_PTE_LINUX_SWAP);
  map(fx, lo + 16 * K4, 3 * K4, K4, SR_PROT_NX);
  page_out(fx, lo + 16 * K4, 1, SR_PTE_LINUX_SWAP);

  assert_int_equal(regions(fx, lo, lo + 32 * K4, NULL, SR_REGIONS_MERGE_PAGED),
                   0);
  assert_int_equal(fx->n, 3);
  /* A paged run joins the region on its left; the RO run starts anew. */
  expect_region(fx, 0, lo, lo + 3 * K4, SR_RUN_MIXED, RW, 2 * K4,
                KIND(SR_PTE_LINUX_SWAP), K4);
  expect_region(fx, 1, lo + 3 * K4, lo + 7 * K4, SR_RUN_MIXED, SR_PROT_U,
                3 * K4, KIND(SR_PTE_LINUX_SWAP), K4);
  /* A paged-only start takes the prot of the present run that joins it. */
  expect_region(fx, 2, lo + 16 * K4, lo + 19 * K4, SR_RUN_MIXED, SR_PROT_NX,
                2 * K4, KIND(SR_PTE_LINUX_SWAP), K4);

  /* Alone, a paged run keeps the upper levels' prot. */
  assert_int_equal(
      regions(fx, lo + 16 * K4, lo + 17 * K4, NULL, SR_REGIONS_MERGE_PAGED), 0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, lo + 16 * K4, lo + 17 * K4, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_LINUX_SWAP), 0);
}

static void test_regions_paged_pde(void** state) {
  fx_t* fx = *state;
  const uint64_t lo = 0x40000000;
  const uint64_t pt = 0x80000000;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, lo, 3 * M2, M2, RW);
  page_out(fx, lo + M2, 2, SR_PTE_LINUX_SWAP);
  /* A PDE that points to a PT with 3 pages, paged out as a whole: the
   * whole 2 MiB span is paged, not just the 3 pages. */
  map(fx, pt + 5 * K4, 3 * K4, K4, SR_PROT_W);
  page_out(fx, pt, 2, SR_PTE_LINUX_SWAP);

  assert_int_equal(regions(fx, 0, 0, NULL, 0), 0);
  assert_int_equal(fx->n, 4);
  expect_region(fx, 0, lo, lo + M2, SR_RUN_PRESENT, RW, M2, 0, M2);
  expect_region(fx, 1, lo + M2, lo + 2 * M2, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_LINUX_SWAP), 0);
  expect_region(fx, 2, lo + 2 * M2, lo + 3 * M2, SR_RUN_PRESENT, RW, M2, 0, M2);
  expect_region(fx, 3, pt, pt + M2, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_LINUX_SWAP), 0);

  assert_int_equal(regions(fx, 0, 0, NULL, SR_REGIONS_MERGE_PAGED), 0);
  assert_int_equal(fx->n, 2);
  expect_region(fx, 0, lo, lo + 3 * M2, SR_RUN_MIXED, RW, 2 * M2,
                KIND(SR_PTE_LINUX_SWAP), M2);
  expect_region(fx, 1, pt, pt + M2, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_LINUX_SWAP), 0);
}

static void test_regions_windows_kinds(void** state) {
  fx_t* fx = *state;
  const uint64_t lo = 0x10000000;
  const uint64_t pd = 0x40000000;
  sr_walk_opts_t win = {SR_PAGING_4LEVEL, SR_OS_WINDOWS, 0, 0};
  sr_walk_opts_t res = {SR_PAGING_4LEVEL, SR_OS_WINDOWS, SR_WALK_RESIDENT, 0};

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, lo, 8 * K4, K4, RW);
  page_out(fx, lo + 1 * K4, 1, SR_PTE_WIN_TRANSITION);
  page_out(fx, lo + 2 * K4, 1, SR_PTE_WIN_PROTOTYPE);
  page_out(fx, lo + 3 * K4, 1, SR_PTE_WIN_PAGEFILE);
  /* Demand-zero (software PTE without a pagefile offset): kind NONE, not
   * part of any region. */
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, lo + 5 * K4, 1,
                                    UINT64_C(4) << 5, NULL),
                   0);
  /* A PD-level transition entry: a resident page-table page. */
  map(fx, pd, 2 * K4, K4, RW);
  page_out(fx, pd, 2, SR_PTE_WIN_TRANSITION);

  assert_int_equal(regions(fx, 0, 0, &win, 0), 0);
  assert_int_equal(fx->n, 5);
  expect_region(fx, 0, lo, lo + K4, SR_RUN_PRESENT, RW, K4, 0, K4);
  expect_region(fx, 1, lo + K4, lo + 4 * K4, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_WIN_TRANSITION) | KIND(SR_PTE_WIN_PROTOTYPE) |
                    KIND(SR_PTE_WIN_PAGEFILE),
                0);
  expect_region(fx, 2, lo + 4 * K4, lo + 5 * K4, SR_RUN_PRESENT, RW, K4, 0, K4);
  expect_region(fx, 3, lo + 6 * K4, lo + 8 * K4, SR_RUN_PRESENT, RW, 2 * K4, 0,
                K4);
  expect_region(fx, 4, pd, pd + M2, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_WIN_TRANSITION), 0);

  /* Resident: the transition page is present; the spec's transition
   * encoding has RW and US clear, so W and U drop out of its prot. */
  assert_int_equal(regions(fx, 0, 0, &res, 0), 0);
  assert_int_equal(fx->n, 6);
  expect_region(fx, 0, lo, lo + K4, SR_RUN_PRESENT, RW, K4, 0, K4);
  expect_region(fx, 1, lo + K4, lo + 2 * K4, SR_RUN_PRESENT, 0, K4, 0, K4);
  expect_region(fx, 2, lo + 2 * K4, lo + 4 * K4, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_WIN_PROTOTYPE) | KIND(SR_PTE_WIN_PAGEFILE), 0);
  expect_region(fx, 3, lo + 4 * K4, lo + 5 * K4, SR_RUN_PRESENT, RW, K4, 0, K4);
  expect_region(fx, 4, lo + 6 * K4, lo + 8 * K4, SR_RUN_PRESENT, RW, 2 * K4, 0,
                K4);
  expect_region(fx, 5, pd, pd + 2 * K4, SR_RUN_PRESENT, 0, 2 * K4, 0, K4);
}

static void test_regions_linux_kinds(void** state) {
  fx_t* fx = *state;
  const uint64_t lo = 0x10000000;
  sr_walk_opts_t res = {SR_PAGING_4LEVEL, SR_OS_LINUX, SR_WALK_RESIDENT, 0};
  const uint32_t all = KIND(SR_PTE_LINUX_SWAP) | KIND(SR_PTE_LINUX_PROTNONE) |
                       KIND(SR_PTE_UNKNOWN);

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, lo, 6 * K4, K4, RW);
  page_out(fx, lo + 1 * K4, 1, SR_PTE_LINUX_SWAP);
  page_out(fx, lo + 2 * K4, 1, SR_PTE_LINUX_PROTNONE);
  /* Bit 7 without bit 8 at level 1: unknown (spec). */
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, lo + 3 * K4, 1, UINT64_C(0x80), NULL),
      0);

  assert_int_equal(regions(fx, 0, 0, NULL, 0), 0);
  assert_int_equal(fx->n, 3);
  expect_region(fx, 1, lo + K4, lo + 4 * K4, SR_RUN_PAGED, RW, 0, all, 0);
  assert_int_equal(regions(fx, 0, 0, NULL, SR_REGIONS_MERGE_PAGED), 0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, lo, lo + 6 * K4, SR_RUN_MIXED, RW, 3 * K4, all, K4);

  /* Resident: PROT_NONE is present, with the protection of its entry
   * (the spec's encoding is A|G: neither RW nor US). */
  assert_int_equal(regions(fx, 0, 0, &res, 0), 0);
  assert_int_equal(fx->n, 5);
  expect_region(fx, 1, lo + K4, lo + 2 * K4, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_LINUX_SWAP), 0);
  expect_region(fx, 2, lo + 2 * K4, lo + 3 * K4, SR_RUN_PRESENT, 0, K4, 0, K4);
  expect_region(fx, 3, lo + 3 * K4, lo + 4 * K4, SR_RUN_PAGED, RW, 0,
                KIND(SR_PTE_UNKNOWN), 0);
  /* Merged: two present prots, so two regions; the paged pages go left. */
  assert_int_equal(regions(fx, 0, 0, &res, SR_REGIONS_MERGE_PAGED), 0);
  assert_int_equal(fx->n, 3);
  expect_region(fx, 0, lo, lo + 2 * K4, SR_RUN_MIXED, RW, K4,
                KIND(SR_PTE_LINUX_SWAP), K4);
  expect_region(fx, 1, lo + 2 * K4, lo + 4 * K4, SR_RUN_MIXED, 0, K4,
                KIND(SR_PTE_UNKNOWN), K4);
  expect_region(fx, 2, lo + 4 * K4, lo + 6 * K4, SR_RUN_PRESENT, RW, 2 * K4, 0,
                K4);
}

static void test_regions_clip(void** state) {
  fx_t* fx = *state;
  const uint64_t lo = 0x200000 + 0x100123; /* inside the 2M page */
  const uint64_t hi = 0x402800;            /* inside the 3rd 4K page */

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, 0x200000, M2, M2, RW);
  map(fx, 0x400000, 4 * K4, K4, RW);
  map(fx, 0x40000000, 2 * M2, M2, SR_PROT_W);
  page_out(fx, 0x40000000 + M2, 2, SR_PTE_LINUX_SWAP);

  assert_int_equal(regions(fx, lo, hi, NULL, 0), 0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, lo, hi, SR_RUN_PRESENT, RW, hi - lo, 0, M2 | K4);
  /* Inside one 4K page. */
  assert_int_equal(regions(fx, 0x400010, 0x400020, NULL, 0), 0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, 0x400010, 0x400020, SR_RUN_PRESENT, RW, 0x10, 0, K4);
  /* Mid-large-page into the middle of a paged-out 2M page. */
  assert_int_equal(
      regions(fx, 0x40000000 + 0x1234, 0x40000000 + M2 + 0x5678, NULL, 0), 0);
  assert_int_equal(fx->n, 2);
  expect_region(fx, 0, 0x40000000 + 0x1234, 0x40000000 + M2, SR_RUN_PRESENT,
                SR_PROT_W, M2 - 0x1234, 0, M2);
  expect_region(fx, 1, 0x40000000 + M2, 0x40000000 + M2 + 0x5678, SR_RUN_PAGED,
                RW, 0, KIND(SR_PTE_LINUX_SWAP), 0);
  assert_int_equal(regions(fx, 0x40000000 + 0x1234, 0x40000000 + M2 + 0x5678,
                           NULL, SR_REGIONS_MERGE_PAGED),
                   0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, 0x40000000 + 0x1234, 0x40000000 + M2 + 0x5678,
                SR_RUN_MIXED, SR_PROT_W, M2 - 0x1234, KIND(SR_PTE_LINUX_SWAP),
                M2);
  /* Nothing mapped in range: no callback. */
  assert_int_equal(regions(fx, 0x1000, 0x200000, NULL, 0), 0);
  assert_int_equal(fx->calls, 0);
}

static void test_regions_to_top_4level(void** state) {
  fx_t* fx = *state;
  const uint64_t kbase = UINT64_C(0xffff800000000000);
  const uint64_t top2m = UINT64_C(0xffffffffffe00000);

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, 0x1000, K4, K4, RW);
  map(fx, UINT64_C(0x00007ffffffff000), K4, K4, RW); /* top of user half */
  map(fx, kbase, 3 * K4, K4, SR_PROT_W);
  map(fx, top2m, M2, M2, SR_PROT_W | SR_PROT_NX);

  assert_int_equal(regions(fx, kbase, 0, NULL, 0), 0);
  assert_int_equal(fx->n, 2);
  expect_region(fx, 0, kbase, kbase + 3 * K4, SR_RUN_PRESENT, SR_PROT_W, 3 * K4,
                0, K4);
  /* hi == 0: the region ends at 2^64; its size is still hi - lo. */
  expect_region(fx, 1, top2m, 0, SR_RUN_PRESENT, SR_PROT_W | SR_PROT_NX, M2, 0,
                M2);
  assert_int_equal(fx->reg[1].hi - fx->reg[1].lo, M2);

  /* The whole space: both halves, never joined across the hole. */
  assert_int_equal(regions(fx, 0, 0, NULL, 0), 0);
  assert_int_equal(fx->n, 4);
  expect_region(fx, 0, 0x1000, 0x2000, SR_RUN_PRESENT, RW, K4, 0, K4);
  expect_region(fx, 1, UINT64_C(0x00007ffffffff000), UINT64_C(0x800000000000),
                SR_RUN_PRESENT, RW, K4, 0, K4);
  expect_region(fx, 3, top2m, 0, SR_RUN_PRESENT, SR_PROT_W | SR_PROT_NX, M2, 0,
                M2);
  /* A range starting in the non-canonical hole. */
  assert_int_equal(regions(fx, UINT64_C(0x0000900000000000), 0, NULL, 0), 0);
  assert_int_equal(fx->n, 2);
  assert_int_equal(fx->reg[0].lo, kbase);
  /* A range inside the hole: nothing. */
  assert_int_equal(regions(fx, UINT64_C(0x0000900000000000),
                           UINT64_C(0xffff000000000000), NULL, 0),
                   0);
  assert_int_equal(fx->calls, 0);
  /* Ending just below the top, inside the last page (hi != 0). */
  assert_int_equal(regions(fx, top2m, UINT64_C(0xfffffffffffff800), NULL, 0),
                   0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, top2m, UINT64_C(0xfffffffffffff800), SR_RUN_PRESENT,
                SR_PROT_W | SR_PROT_NX, M2 - 0x800, 0, M2);
  /* The last page alone. */
  assert_int_equal(regions(fx, UINT64_C(0xfffffffffffff000), 0, NULL, 0), 0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, UINT64_C(0xfffffffffffff000), 0, SR_RUN_PRESENT,
                SR_PROT_W | SR_PROT_NX, K4, 0, M2);
}

static void test_regions_to_top_5level(void** state) {
  fx_t* fx = *state;
  const uint64_t kbase = UINT64_C(0xff00000000000000);
  const uint64_t utop = UINT64_C(0x00ffffffffe00000);
  const uint64_t top = UINT64_C(0xfffffffffffff000);
  sr_walk_opts_t o5 = {SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0};

  make_kit(fx, 0, NULL, 0, SR_PAGING_5LEVEL);
  map(fx, utop, M2, M2, RW);
  map(fx, kbase, K4, K4, SR_PROT_W);
  map(fx, UINT64_C(0xffff800000000000), K4, K4, SR_PROT_W);
  map(fx, top, K4, K4, SR_PROT_NX);

  assert_int_equal(regions(fx, 0, 0, &o5, 0), 0);
  assert_int_equal(fx->n, 4);
  expect_region(fx, 0, utop, UINT64_C(0x0100000000000000), SR_RUN_PRESENT, RW,
                M2, 0, M2);
  expect_region(fx, 1, kbase, kbase + K4, SR_RUN_PRESENT, SR_PROT_W, K4, 0, K4);
  expect_region(fx, 2, UINT64_C(0xffff800000000000),
                UINT64_C(0xffff800000001000), SR_RUN_PRESENT, SR_PROT_W, K4, 0,
                K4);
  expect_region(fx, 3, top, 0, SR_RUN_PRESENT, SR_PROT_NX, K4, 0, K4);
  assert_int_equal(regions(fx, kbase + 1, 0, &o5, 0), 0);
  assert_int_equal(fx->n, 3);
  expect_region(fx, 0, kbase + 1, kbase + K4, SR_RUN_PRESENT, SR_PROT_W, K4 - 1,
                0, K4);
}

static void test_regions_sparse_space_skips_empty_levels(void** state) {
  fx_t* fx = *state;
  sr_walk_opts_t o5 = {SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0};

  make_kit(fx, 0, NULL, 0, SR_PAGING_5LEVEL);
  map(fx, 0, K4, K4, RW);
  map(fx, UINT64_C(0xfffffffffffff000), K4, K4, RW);
  open_image(fx);
  /* A whole 5-level space with one page at each end: stepping page by page
   * over 2^57 bytes would never finish (the suite would hang); skipping
   * empty entries at their level returns at once. Speed itself is measured
   * by `make bench`, not here. */
  assert_int_equal(regions(fx, 0, 0, &o5, SR_REGIONS_MERGE_PAGED), 0);
  assert_int_equal(fx->n, 2);
  expect_region(fx, 0, 0, K4, SR_RUN_PRESENT, RW, K4, 0, K4);
  expect_region(fx, 1, UINT64_C(0xfffffffffffff000), 0, SR_RUN_PRESENT, RW, K4,
                0, K4);
}

static void test_regions_stop_early(void** state) {
  fx_t* fx = *state;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, 0x100000, K4, K4, RW);
  map(fx, 0x200000, K4, K4, RW);
  map(fx, 0x300000, K4, K4, RW);
  fx->stop_after = 2;
  fx->stop_value = 42;
  assert_int_equal(regions(fx, 0, 0, NULL, 0), 42);
  assert_int_equal(fx->calls, 2);
  assert_int_equal(fx->reg[1].lo, 0x200000);
  /* A negative value is returned as is too. */
  fx->stop_after = 1;
  fx->stop_value = -7;
  assert_int_equal(regions(fx, 0, 0, NULL, 0), -7);
  assert_int_equal(fx->calls, 1);
  /* Stopping on the last region returns its value. */
  fx->stop_after = 3;
  fx->stop_value = 3;
  assert_int_equal(regions(fx, 0, 0, NULL, 0), 3);
  assert_int_equal(fx->calls, 3);
}

static void test_regions_garbage_entries_skipped(void** state) {
  fx_t* fx = *state;
  const sr_segment_t seg[2] = {{0, 32 << 20, 0},
                               {64 << 20, 32 << 20, 32 << 20}};
  const uint64_t lo = 0x10000000;
  const uint64_t p = UINT64_C(0x7); /* P | RW | US */
  sr_walk_opts_t o46 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 46};
  uint64_t e;

  make_kit(fx, 0, seg, 2, SR_PAGING_4LEVEL);
  map(fx, lo, 8 * K4, K4, RW);
  map(fx, lo + 2 * M2, K4, K4, RW); /* creates PDEs to overwrite */
  map(fx, lo + 3 * M2, K4, K4, RW);
  map(fx, lo + 4 * M2, K4, K4, RW);
  map(fx, lo + 5 * M2, K4, K4, RW);
  /* A 2M leaf with reserved bits 13..20 set. */
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, lo + 2 * M2, 2,
                                    0x200000 | 0x2000 | 0x80 | p, NULL),
                   0);
  /* PDE -> a table in the hole [32M, 64M). */
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, lo + 3 * M2, 2,
                                    (UINT64_C(40) << 20) | p, NULL),
                   0);
  /* PDE -> a table beyond the end of the file. */
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, lo + 4 * M2, 2,
                                    UINT64_C(0x00000ff000000000) | p, NULL),
                   0);
  /* PTE with bit 50 set: reserved with MAXPHYADDR 46. */
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, lo + 3 * K4, 1, &e), 0);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, lo + 3 * K4, 1,
                                    e | (UINT64_C(1) << 50), NULL),
                   0);
  /* A leaf whose frame is in the hole is still mapped (no data is read). */
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, lo + 5 * M2, 1,
                                    (UINT64_C(48) << 20) | p, NULL),
                   0);
  /* PS in a PML4E: bad, skips its 512 GiB. */
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, UINT64_C(0x8000000000), 4,
                                    0x80 | p, NULL),
                   0);

  assert_int_equal(regions(fx, 0, 0, &o46, 0), 0);
  assert_int_equal(fx->n, 3);
  expect_region(fx, 0, lo, lo + 3 * K4, SR_RUN_PRESENT, RW, 3 * K4, 0, K4);
  expect_region(fx, 1, lo + 4 * K4, lo + 8 * K4, SR_RUN_PRESENT, RW, 4 * K4, 0,
                K4);
  expect_region(fx, 2, lo + 5 * M2, lo + 5 * M2 + K4, SR_RUN_PRESENT, RW, K4, 0,
                K4);
  /* With MAXPHYADDR 52 the PTE's bit 50 is part of the address: mapped. */
  assert_int_equal(regions(fx, lo, lo + M2, NULL, 0), 0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, lo, lo + 8 * K4, SR_RUN_PRESENT, RW, 8 * K4, 0, K4);
}

static void test_regions_self_map_terminates(void** state) {
  fx_t* fx = *state;
  /* Windows' PML4 self-map slot 0x1ed: its 512 GiB window maps the paging
   * structures themselves; the PML4 is seen at 0xfffff6fb7dbed000. */
  const uint64_t win_lo = UINT64_C(0xfffff68000000000);
  const uint64_t win_hi = win_lo + (UINT64_C(1) << 39);
  const uint64_t pml4_va = UINT64_C(0xfffff6fb7dbed000);
  sr_translation_t t;
  uint64_t va;
  size_t i, j;
  int rc;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, 0x400000, 4 * K4, K4, RW);
  map(fx, 0x40000000, M2, M2, RW);
  map(fx, UINT64_C(0xfffff80000000000), K4, K4, SR_PROT_W);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, win_lo, 4,
                                    fx->cr3 | 0x3 /* P | RW */, NULL),
                   0);

  assert_int_equal(regions(fx, 0, 0, NULL, 0), 0);
  /* The user mappings are reported as before. */
  expect_region(fx, 0, 0x400000, 0x404000, SR_RUN_PRESENT, RW, 4 * K4, 0, K4);
  expect_region(fx, 1, 0x40000000, 0x40200000, SR_RUN_PRESENT, RW, M2, 0, M2);
  /* Decision: report what the hardware maps. The PML4 appears as a present
   * kernel-only writable 4K page in the self-map window, and every sampled
   * address agrees with sr_translate. */
  for (i = 0; i < fx->n; i++)
    if (fx->reg[i].lo <= pml4_va && pml4_va < fx->reg[i].hi)
      break;
  assert_true(i < fx->n);
  assert_int_equal(fx->reg[i].state, SR_RUN_PRESENT);
  assert_int_equal(fx->reg[i].prot, SR_PROT_W);
  assert_true(fx->reg[i].lo >= win_lo && fx->reg[i].hi <= win_hi);
  for (j = 0; j < 4096 + fx->n; j++) {
    if (j < fx->n)
      va = fx->reg[j].lo; /* every region start, then random pages */
    else
      va = win_lo +
           ((j * UINT64_C(0x9e3779b97f4a7c15)) >> 25 << 12) % (win_hi - win_lo);
    rc = sr_translate(fx->image, fx->cr3, va, NULL, &t);
    for (i = 0; i < fx->n; i++)
      if (fx->reg[i].lo <= va && (va < fx->reg[i].hi || fx->reg[i].hi == 0))
        break;
    if (rc == 0) {
      assert_true(i < fx->n);
      assert_int_equal(fx->reg[i].prot, t.prot);
    } else {
      assert_true(i == fx->n);
    }
  }
}

static void test_regions_bad_arguments(void** state) {
  fx_t* fx = *state;
  sr_walk_opts_t bad_paging = {(sr_paging_t)7, SR_OS_LINUX, 0, 0};
  sr_walk_opts_t bad_maxphy = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 20};
  sr_walk_opts_t bad_flags = {SR_PAGING_4LEVEL, SR_OS_LINUX, 1u << 9, 0};
  sr_walk_opts_t o40 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 40};
  sr_locate_t loc;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, 0x400000, K4, K4, RW);
  open_image(fx);
  assert_int_equal(sr_regions(NULL, fx->cr3, 0, 0, NULL, 0, collect_cb, fx),
                   SR_EINVAL);
  assert_int_equal(sr_regions(fx->image, fx->cr3, 0, 0, NULL, 0, NULL, fx),
                   SR_EINVAL);
  assert_int_equal(regions(fx, 0x2000, 0x1000, NULL, 0), SR_EINVAL);
  assert_int_equal(regions(fx, 0x2000, 0x2000, NULL, 0), SR_EINVAL);
  assert_int_equal(regions(fx, 0, 0, NULL, 1u << 5), SR_EINVAL);
  assert_int_equal(regions(fx, 0, 0, &bad_paging, 0), SR_EINVAL);
  assert_int_equal(regions(fx, 0, 0, &bad_maxphy, 0), SR_EINVAL);
  assert_int_equal(regions(fx, 0, 0, &bad_flags, 0), SR_EINVAL);
  assert_int_equal(fx->calls, 0);
  /* CR3 bits above MAXPHYADDR. */
  assert_int_equal(sr_regions(fx->image, fx->cr3 | (UINT64_C(1) << 45), 0, 0,
                              &o40, 0, collect_cb, fx),
                   SR_EINVAL);
  /* PCID bits and bit 63 are masked: same result as the plain CR3. */
  fx->n = 0;
  assert_int_equal(sr_regions(fx->image, fx->cr3 | 0x5a5 | (UINT64_C(1) << 63),
                              0, 0, NULL, 0, collect_cb, fx),
                   0);
  assert_int_equal(fx->n, 1);
  expect_region(fx, 0, 0x400000, 0x401000, SR_RUN_PRESENT, RW, K4, 0, K4);
  /* A root outside the image: the image's own outcome for that GPA. */
  fx->calls = 0;
  assert_true(sr_image_locate(fx->image, UINT64_C(1) << 40, &loc) < 0);
  assert_int_equal(
      sr_regions(fx->image, UINT64_C(1) << 40, 0, 0, NULL, 0, collect_cb, fx),
      sr_image_locate(fx->image, UINT64_C(1) << 40, &loc));
  assert_int_equal(fx->calls, 0);
}

static void test_regions_root_unreadable(void** state) {
  fx_t* fx = *state;
  const sr_segment_t seg[2] = {{0, 16 << 20, 0},
                               {32 << 20, 16 << 20, 16 << 20}};

  make_kit(fx, 0, seg, 2, SR_PAGING_4LEVEL);
  open_image(fx);
  assert_int_equal(
      sr_regions(fx->image, 20 << 20, 0, 0, NULL, 0, collect_cb, fx), SR_EHOLE);
  assert_int_equal(fx->calls, 0);
}

static void test_regions_truncated_file(void** state) {
  fx_t* fx = *state;
  const uint64_t a = 0x400000;
  const uint64_t b = UINT64_C(0x7f0000000000);
  uint64_t a_tab[4], b_pt, cut;
  bool a_ok = true;
  int level, rc;

  make_kit(fx, 0, NULL, 0, SR_PAGING_4LEVEL);
  map(fx, a, K4, K4, RW);
  map(fx, b, K4, K4, RW);
  for (level = 1; level <= 4; level++)
    assert_int_equal(
        sr_kit_entry_gpa(fx->kit, fx->cr3, a, level, &a_tab[level - 1]), 0);
  assert_int_equal(sr_kit_entry_gpa(fx->kit, fx->cr3, b, 1, &b_pt), 0);
  cut = b_pt & ~(K4 - 1);
  for (level = 1; level <= 4; level++)
    a_ok = a_ok && a_tab[level - 1] < cut;
  open_image(fx);
  assert_int_equal(sr_kit_truncate(fx->kit, cut), 0);

  /* The image still believes the old size: the load faults, the fault is
   * contained and the walk ends with SR_EBEYOND. */
  assert_int_equal(regions(fx, 0, 0, NULL, 0), SR_EBEYOND);
  /* Now the image knows: the lost table is skipped (or the root is gone). */
  rc = regions(fx, 0, 0, NULL, 0);
  if ((fx->cr3 & ~(K4 - 1)) >= cut) {
    assert_int_equal(rc, SR_EBEYOND);
  } else {
    assert_int_equal(rc, 0);
    assert_int_equal(fx->n, a_ok ? 1 : 0);
    if (a_ok)
      expect_region(fx, 0, a, a + K4, SR_RUN_PRESENT, RW, K4, 0, K4);
  }
}

/* --- property test --------------------------------------------------- */

static uint64_t rng_next(uint64_t* s) {
  uint64_t x = *s;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C(0x2545f4914f6cdd1d);
}

typedef struct mapping_s {
  uint64_t gva;
  uint64_t len;
  uint64_t page_size;
} mapping_t;

/* The region of r[0..n) (sorted) containing va, or NULL. */
static const sr_region_t* find_region(const sr_region_t* r, size_t n,
                                      uint64_t va) {
  size_t lo = 0, hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (va < r[mid].lo)
      hi = mid;
    else if (r[mid].hi != 0 && va >= r[mid].hi)
      lo = mid + 1;
    else
      return &r[mid];
  }
  return NULL;
}

static void check_structure(const sr_region_t* r, size_t n, bool merged) {
  size_t i;

  for (i = 0; i < n; i++) {
    uint64_t size = r[i].hi - r[i].lo;

    assert_true(r[i].hi == 0 || r[i].lo < r[i].hi);
    assert_true(r[i].present_bytes <= size);
    if (r[i].present_bytes == 0)
      assert_int_equal(r[i].state, SR_RUN_PAGED);
    else if (r[i].present_bytes == size)
      assert_int_equal(r[i].state, SR_RUN_PRESENT);
    else
      assert_int_equal(r[i].state, SR_RUN_MIXED);
    assert_true(merged || r[i].state != SR_RUN_MIXED);
    assert_true((r[i].page_sizes == 0) == (r[i].present_bytes == 0));
    if (i == 0)
      continue;
    assert_true(r[i - 1].hi != 0 && r[i - 1].hi <= r[i].lo);
    /* Coalescing is complete: touching regions differ. */
    if (r[i - 1].hi == r[i].lo) {
      if (!merged)
        assert_true(r[i - 1].state != r[i].state || r[i - 1].prot != r[i].prot);
      else
        assert_true(r[i].present_bytes != 0 && r[i - 1].present_bytes != 0 &&
                    r[i - 1].prot != r[i].prot);
    }
  }
}

/* Checks va against sr_translate and both region lists. */
static void check_va(const fx_t* fx, const sr_walk_opts_t* opts,
                     const sr_region_t* plain, size_t np,
                     const sr_region_t* merged, size_t nm, uint64_t va) {
  const sr_region_t* r = find_region(plain, np, va);
  const sr_region_t* m = find_region(merged, nm, va);
  sr_translation_t t;
  int rc = sr_translate(fx->image, fx->cr3, va, opts, &t);

  if (rc == 0) {
    assert_non_null(r);
    assert_int_equal(r->state, SR_RUN_PRESENT);
    assert_int_equal(r->prot, t.prot);
    assert_true((r->page_sizes & t.page_size) != 0);
    assert_non_null(m);
    assert_int_equal(m->prot, t.prot);
    assert_true(m->state != SR_RUN_PAGED);
  } else if (rc == SR_ENOTPRESENT && t.pte.kind != SR_PTE_NONE) {
    assert_non_null(r);
    assert_int_equal(r->state, SR_RUN_PAGED);
    assert_int_equal(r->prot, t.prot);
    assert_true((r->kinds & KIND(t.pte.kind)) != 0);
    assert_non_null(m);
    assert_true((m->kinds & KIND(t.pte.kind)) != 0);
  } else {
    if (r != NULL)
      fail_msg("va %#llx: %s but in a region", (unsigned long long)va,
               sr_err_name(rc));
    assert_null(m);
  }
}

static void property_space(fx_t* fx, uint64_t* seed, sr_paging_t paging,
                           uint32_t walk_flags) {
  const uint64_t win = 16 << 20; /* each zone is 16 MiB of VA */
  uint64_t zones[6];
  sr_walk_opts_t opts = {paging, SR_OS_LINUX, walk_flags, 46};
  mapping_t maps[64];
  size_t nmaps = 0, np, nm, i, k;
  sr_region_t* plain;
  sr_region_t* merged;
  uint64_t sum_p = 0, sum_m = 0, cov_p = 0, cov_m = 0;
  int bits = paging == SR_PAGING_5LEVEL ? 57 : 48;

  zones[0] = 0x400000;
  zones[1] = G1 - win / 2;                      /* PD boundary */
  zones[2] = (UINT64_C(1) << 39) - win / 2;     /* PML4E boundary */
  zones[3] = (UINT64_C(1) << (bits - 1)) - win; /* top of user half */
  zones[4] = ~UINT64_C(0) << (bits - 1);        /* kernel half */
  zones[5] = 0 - win;                           /* top of the space */

  make_kit(fx, 256 << 20, NULL, 0, paging);
  for (i = 0; i < 48; i++) {
    uint64_t z = zones[rng_next(seed) % 6];
    uint64_t ps = rng_next(seed) % 4 == 0 ? M2 : K4;
    uint64_t slots = win / ps;
    uint64_t npages = ps == M2 ? 1 : 1 + rng_next(seed) % 12;
    uint64_t gva = z + (rng_next(seed) % (slots - npages + 1)) * ps;
    uint32_t prot = (uint32_t)(rng_next(seed) % 8);
    int rc = sr_kit_map(fx->kit, fx->cr3, gva, npages * ps, ps, prot);

    if (rc == SR_EEXIST)
      continue;
    assert_int_equal(rc, 0);
    maps[nmaps].gva = gva;
    maps[nmaps].len = npages * ps;
    maps[nmaps].page_size = ps;
    nmaps++;
  }
  /* Damage some: swap, PROT_NONE, unknown, a paged PDE, reserved bits, a
   * PDE into nowhere. */
  for (i = 0; i < nmaps; i++) {
    uint64_t ps = maps[i].page_size;
    uint64_t va = maps[i].gva + (rng_next(seed) % (maps[i].len / ps)) * ps;
    int level = ps == M2 ? 2 : 1;
    sr_pte_info_t info;
    uint64_t e;

    switch (rng_next(seed) % 8) {
      case 0:
        info = info_of(SR_PTE_LINUX_SWAP, 2, va >> 12);
        (void)sr_kit_page_out(fx->kit, fx->cr3, va, level, &info);
        break;
      case 1:
        info = info_of(SR_PTE_LINUX_PROTNONE, 0, 0);
        (void)sr_kit_page_out(fx->kit, fx->cr3, va, level, &info);
        break;
      case 2: /* bit 7 without bit 8: unknown */
        (void)sr_kit_set_entry(fx->kit, fx->cr3, va, level, 0x80, NULL);
        break;
      case 3: /* the PDE of a 4K page: 2 MiB paged */
        info = info_of(SR_PTE_LINUX_SWAP, 3, 0x777);
        if (level == 1)
          (void)sr_kit_page_out(fx->kit, fx->cr3, va, 2, &info);
        break;
      case 4: /* bit 50: reserved with MAXPHYADDR 46 */
        if (sr_kit_get_entry(fx->kit, fx->cr3, va, level, &e) == 0 &&
            (e & 1) != 0)
          (void)sr_kit_set_entry(fx->kit, fx->cr3, va, level,
                                 e | (UINT64_C(1) << 50), NULL);
        break;
      case 5: /* a PDE to a table beyond the end of the file */
        if (level == 1)
          (void)sr_kit_set_entry(fx->kit, fx->cr3, va, 2,
                                 UINT64_C(0x00003f0000000007), NULL);
        break;
      default:
        break;
    }
  }

  assert_int_equal(regions(fx, 0, 0, &opts, 0), 0);
  plain = fx->reg;
  np = fx->n;
  fx->reg = NULL;
  fx->n = fx->cap = 0;
  assert_int_equal(regions(fx, 0, 0, &opts, SR_REGIONS_MERGE_PAGED), 0);
  merged = fx->reg;
  nm = fx->n;
  fx->reg = NULL;
  fx->n = fx->cap = 0;

  check_structure(plain, np, false);
  check_structure(merged, nm, true);
  for (i = 0; i < np; i++) {
    sum_p += plain[i].present_bytes;
    cov_p += plain[i].hi - plain[i].lo;
  }
  for (i = 0; i < nm; i++) {
    sum_m += merged[i].present_bytes;
    cov_m += merged[i].hi - merged[i].lo;
  }
  assert_int_equal(sum_p, sum_m);
  assert_int_equal(cov_p, cov_m);

  /* Every boundary, then random addresses in the zones and anywhere. */
  for (i = 0; i < nmaps; i++) {
    uint64_t ends[4] = {maps[i].gva - 1, maps[i].gva,
                        maps[i].gva + maps[i].len - 1,
                        maps[i].gva + maps[i].len};

    for (k = 0; k < 4; k++)
      check_va(fx, &opts, plain, np, merged, nm, ends[k]);
  }
  for (i = 0; i < np + nm; i++) {
    const sr_region_t* r = i < np ? &plain[i] : &merged[i - np];
    uint64_t ends[4] = {r->lo - 1, r->lo, r->hi - 1, r->hi};

    for (k = 0; k < 4; k++)
      check_va(fx, &opts, plain, np, merged, nm, ends[k]);
  }
  for (i = 0; i < 3000; i++) {
    uint64_t va = zones[rng_next(seed) % 6] + rng_next(seed) % win;

    if (i % 10 == 0)
      va = rng_next(seed);
    check_va(fx, &opts, plain, np, merged, nm, va);
  }
  free(plain);
  free(merged);
}

/* Property: for random mappings (mixed page sizes, non-present kinds,
 * garbage entries; 4- and 5-level; with and without SR_WALK_RESIDENT) an
 * address is in a PRESENT region iff sr_translate succeeds there (with the
 * same prot), in a PAGED region iff the walk stops at a non-present entry
 * of a kind other than NONE, and in no region otherwise; the merged list
 * covers the same bytes with the same present bytes. */
static void test_regions_property_matches_translate(void** state) {
  fx_t* fx = *state;
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0)
                              : (uint64_t)time(NULL) ^ (uint64_t)clock();
  uint64_t s;
  int round;

  if (seed == 0)
    seed = 1;
  print_message(
      "test_regions_property_matches_translate: seed %llu "
      "(set SR_SEED to replay)\n",
      (unsigned long long)seed);
  s = seed;
  for (round = 0; round < 8; round++) {
    sr_paging_t paging = round % 2 ? SR_PAGING_5LEVEL : SR_PAGING_4LEVEL;

    property_space(fx, &s, paging, round % 4 >= 2 ? SR_WALK_RESIDENT : 0);
    sr_image_close(fx->image);
    fx->image = NULL;
    sr_kit_destroy(fx->kit);
    fx->kit = NULL;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_regions_prot_and_page_sizes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_coalesce_across_tables,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_regions_swapped_hole_merges, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_merge_keeps_prot_apart,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_regions_paged_pde, setup, teardown),
      cmocka_unit_test_setup_teardown(test_regions_windows_kinds, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_linux_kinds, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_clip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_regions_to_top_4level, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_to_top_5level, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_regions_sparse_space_skips_empty_levels, setup, teardown),
      cmocka_unit_test_setup_teardown(test_regions_stop_early, setup, teardown),
      cmocka_unit_test_setup_teardown(test_regions_garbage_entries_skipped,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_regions_self_map_terminates, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_bad_arguments, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_root_unreadable, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_truncated_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_regions_property_matches_translate,
                                      setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
