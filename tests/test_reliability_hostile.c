/* Hostile images: every input a guest or a caller can make up, each with
 * its documented outcome, through the public API only.
 *
 * Page-table cycles at every level (PML4E -> PML4 as a Windows-style
 * self-map, PDPTE -> PML4, PDE -> PDPT, PTE -> PD), entries into holes and
 * past the file, every reserved bit (MAXPHYADDR 36; PS in a PML4E/PML5E;
 * bits 13..20 of a 2M leaf, 13..29 of a 1G leaf), a root in a hole or past
 * the file, non-canonical and wrapping ranges, enormous lengths (checked
 * with a counting allocator: nothing is allocated for a rejected read, and
 * an accepted enormous read costs its bitmap, no more), a file truncated
 * or extended under pending reads, an image file unlinked while open, and
 * fds that are not regular files. None may crash, hang, raise SIGBUS or
 * read outside the image; each asserts its outcome from docs/api/ (core, swap,
 * loop). Expected bytes come from sr_kit_pattern or the kit's own view of guest
 * memory (sr_kit_read_phys), expected entry GPAs from sr_kit_entry_gpa.
 * Images that see a truncation are opened in the test body: cmocka resets
 * the SIGBUS handler around setup, and the library re-installs it at open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/regions.h>
#include <swapread/uv.h>

#include "support/swap_fixture.h"

#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define G1 SR_PAGE_1G
#define MIB (UINT64_C(1) << 20)
#define P_ UINT64_C(0x1)
#define RW_ UINT64_C(0x2)
#define US_ UINT64_C(0x4)
#define PS_ UINT64_C(0x80)
#define TABLE (P_ | RW_ | US_)
#define BIT(n) (UINT64_C(1) << (n))
#define ADDR UINT64_C(0x000ffffffffff000)
#define RWU (SR_PROT_W | SR_PROT_U)

#define KIT_SIZE (64 * MIB)
/* The reader's layout is RAW of 128 MiB over the 64 MiB kit file:
 * [64, 128) MiB is beyond the end of the file, >= 128 MiB is a hole. */
#define LOW (128 * MIB)
#define BEYOND_GPA (96 * MIB)
#define HOLE_GPA (256 * MIB)

#define VA UINT64_C(0x00007f0000000000) /* 16 4K pages */
#define NPAGES 16
#define VA2M UINT64_C(0x00007f0040000000) /* one 2M page */
#define SEED UINT64_C(0xbad5eed)
#define SELF UINT64_C(0x1ed)

/* The counting allocator is the fixture's (swapfx_alloc_t): it records
 * the largest request and can cap request sizes. */

/* ---- fixture ----------------------------------------------------------- */

typedef struct hx_s {
  sr_kit_t* kit;
  sr_image_t* image; /* RAW, LOW bytes */
  uint64_t cr3;
  swapfx_alloc_t mem;
  sr_swap_t* swap; /* over image, counting allocator */
  int ncb, ndtor, status;
  bool in_read;
  int cb_in_read;
  char dir[64]; /* a temporary directory, "" if none */
} hx_t;

static sr_swap_opts_t swap_opts(hx_t* hx, uint8_t maxphyaddr,
                                sr_paging_t paging) {
  sr_swap_opts_t o;

  memset(&o, 0, sizeof(o));
  o.allocator = &hx->mem.hook;
  o.walk.maxphyaddr = maxphyaddr;
  o.walk.paging = paging;
  return o;
}

static void new_engine(hx_t* hx, sr_image_t* image, uint8_t maxphyaddr,
                       sr_paging_t paging) {
  sr_swap_opts_t o = swap_opts(hx, maxphyaddr, paging);

  sr_swap_free(hx->swap);
  hx->swap = NULL;
  assert_int_equal(hx->mem.live_bytes, 0);
  assert_int_equal(sr_swap_new(&hx->swap, image, &o), 0);
}

static int open_low(const sr_kit_t* kit, sr_image_t** out) {
  sr_layout_t l;

  memset(&l, 0, sizeof(l));
  l.kind = SR_LAYOUT_RAW;
  l.low = LOW;
  return sr_image_open_fd(out, sr_kit_fd(kit), &l);
}

static int setup(void** state) {
  hx_t* hx = calloc(1, sizeof(*hx));
  sr_kit_opts_t ko;

  assert_non_null(hx);
  memset(&ko, 0, sizeof(ko));
  ko.size = KIT_SIZE;
  assert_int_equal(sr_kit_create(&hx->kit, &ko), 0);
  assert_int_equal(sr_kit_new_space(hx->kit, SR_PAGING_4LEVEL, &hx->cr3), 0);
  assert_int_equal(
      sr_kit_map(hx->kit, hx->cr3, VA, NPAGES * K4, SR_PAGE_4K, RWU), 0);
  assert_int_equal(sr_kit_fill(hx->kit, hx->cr3, VA, NPAGES * K4, SEED), 0);
  assert_int_equal(sr_kit_map(hx->kit, hx->cr3, VA2M, M2, SR_PAGE_2M, RWU), 0);
  assert_int_equal(sr_kit_fill(hx->kit, hx->cr3, VA2M, M2, SEED), 0);
  assert_int_equal(open_low(hx->kit, &hx->image), 0);
  swapfx_alloc_init(&hx->mem);
  new_engine(hx, hx->image, 0, SR_PAGING_4LEVEL);
  *state = hx;
  return 0;
}

static int teardown(void** state) {
  hx_t* hx = *state;

  sr_swap_free(hx->swap);
  sr_image_close(hx->image);
  sr_kit_destroy(hx->kit);
  if (hx->dir[0] != '\0')
    rmdir(hx->dir);
  assert_int_equal(hx->mem.live_bytes, 0);
  free(hx);
  return 0;
}

static void on_done(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  hx_t* hx = data;

  (void)swap;
  if (hx->in_read)
    hx->cb_in_read++;
  hx->ncb++;
  hx->status = done->status;
}

static void on_dtor(void* data) {
  hx_t* hx = data;

  hx->ndtor++;
}

/* sr_swap_read on hx->swap at time 0; sync may be NULL. */
static int read_va(hx_t* hx, uint64_t cr3, uint64_t gva, void* buf, size_t len,
                   sr_swap_done_t* sync) {
  sr_swap_req_t req;
  int rc;

  memset(&req, 0, sizeof(req));
  req.cr3 = cr3;
  req.gva = gva;
  req.buf = buf;
  req.len = len;
  hx->in_read = true;
  rc = sr_swap_read(hx->swap, &req, 0, on_done, hx, on_dtor, NULL, sync);
  hx->in_read = false;
  return rc;
}

static uint64_t entry_gpa(hx_t* hx, uint64_t cr3, uint64_t gva, int level) {
  uint64_t gpa = 0;

  assert_int_equal(sr_kit_entry_gpa(hx->kit, cr3, gva, level, &gpa), 0);
  return gpa;
}

static uint64_t get_entry(hx_t* hx, uint64_t cr3, uint64_t gva, int level) {
  uint64_t v = 0;

  assert_int_equal(sr_kit_get_entry(hx->kit, cr3, gva, level, &v), 0);
  return v;
}

static void set_entry(hx_t* hx, uint64_t cr3, uint64_t gva, int level,
                      uint64_t value) {
  assert_int_equal(sr_kit_set_entry(hx->kit, cr3, gva, level, value, NULL), 0);
}

static bool matches(const uint8_t* buf, uint64_t gva, size_t len) {
  size_t i;

  for (i = 0; i < len; i++)
    if (buf[i] != sr_kit_pattern(SEED, gva + i))
      return false;
  return true;
}

/* Whether buf holds the 4 KiB of guest-physical page gpa (kit's view). */
static bool is_phys_page(hx_t* hx, const uint8_t* buf, uint64_t gpa) {
  static uint8_t page[K4];

  assert_int_equal(sr_kit_read_phys(hx->kit, gpa, page, K4), 0);
  return memcmp(buf, page, K4) == 0;
}

static uint64_t sx48(uint64_t va) {
  return (va & BIT(47)) ? va | UINT64_C(0xffff000000000000) : va;
}

typedef struct scan_s {
  uint64_t n;      /* regions */
  uint64_t va;     /* look for this address */
  bool va_present; /* in a present region */
  bool va_any;     /* in any region */
} scan_t;

static int scan_cb(const sr_region_t* r, void* arg) {
  scan_t* s = arg;

  s->n++;
  if (s->va >= r->lo && (r->hi == 0 || s->va < r->hi)) {
    s->va_any = true;
    s->va_present = r->state == SR_RUN_PRESENT;
  }
  return s->n > 100000 ? -1 : 0; /* a bound: a loop must not run away */
}

static scan_t scan(hx_t* hx, uint64_t cr3, uint64_t va) {
  scan_t s;

  memset(&s, 0, sizeof(s));
  s.va = va;
  assert_int_equal(sr_regions(hx->image, cr3, 0, 0, NULL, 0, scan_cb, &s), 0);
  return s;
}

static void uv_never(sr_uv_read_t* req, int status) {
  (void)req;
  (void)status;
  fail_msg("callback of a rejected read");
}

/* ---- cycles -------------------------------------------------------------- */

/* A Windows-style self-map (PML4[0x1ed] -> the PML4): the PML4 reads back
 * at 0xfffff6fb7dbed000 and a PTE at its self-map address (the hardware's
 * view, docs/api/core.md "Termination"); regions terminate and show the
 * window; a read of a self-map address whose "leaf" is a zero PML4 entry
 * stays pending (polls terminate and change nothing) and completes once
 * the guest maps something there: with the bytes of the new PDPT page. */
static void test_hostile_cycle_pml4e_self_map(void** state) {
  hx_t* hx = *state;
  const uint64_t self_pml4 =
      sx48(SELF << 39 | SELF << 30 | SELF << 21 | SELF << 12);
  const uint64_t pte_va =
      sx48(SELF << 39) + ((VA >> 9) & UINT64_C(0x7ffffffff8));
  const uint64_t x = 5; /* a zero PML4 slot */
  const uint64_t leaf_va = sx48(SELF << 39 | SELF << 30 | SELF << 21 | x << 12);
  uint8_t buf[K4];
  sr_translation_t t;
  uint64_t v;
  scan_t s;
  int i;

  set_entry(hx, hx->cr3, self_pml4, 4, hx->cr3 | P_ | RW_);
  assert_int_equal(self_pml4, UINT64_C(0xfffff6fb7dbed000));
  assert_int_equal(sr_translate(hx->image, hx->cr3, self_pml4, NULL, &t), 0);
  assert_int_equal(t.gpa, hx->cr3);
  assert_int_equal(t.page_size, K4);
  assert_int_equal(read_va(hx, hx->cr3, self_pml4, buf, K4, NULL), 0);
  assert_true(is_phys_page(hx, buf, hx->cr3));
  assert_int_equal(read_va(hx, hx->cr3, pte_va, &v, 8, NULL), 0);
  assert_int_equal(v, get_entry(hx, hx->cr3, VA, 1));

  s = scan(hx, hx->cr3, self_pml4);
  assert_true(s.va_present);

  assert_int_equal(read_va(hx, hx->cr3, leaf_va, buf, K4, NULL), SR_PENDING);
  for (i = 0; i < 5; i++)
    assert_int_equal(sr_swap_poll(hx->swap, (uint64_t)i + 1, NULL), 0);
  assert_int_equal(hx->ncb, 0);
  assert_int_equal(sr_kit_map(hx->kit, hx->cr3, x << 39, K4, SR_PAGE_4K, RWU),
                   0);
  assert_int_equal(sr_swap_poll(hx->swap, 10, NULL), 1);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->cb_in_read, 0);
  assert_int_equal(hx->status, 0);
  assert_true(is_phys_page(hx, buf, entry_gpa(hx, hx->cr3, x << 39, 3) & ADDR));
  assert_int_equal(sr_swap_poll(hx->swap, 11, NULL), 0);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->ndtor, 1);
}

/* PDPTE -> the PML4: VA's walk reads the PML4 as its page directory, so it
 * stops at PML4[index_2(VA) = 0] (zero) as a level-2 entry: sr_translate
 * says so, a read waits on it, polls terminate; when the guest maps
 * something at VA 0 (PML4[0] becomes a table), the walk goes on through
 * the new PDPT as a page table and ends at a 4K "leaf" that is the new
 * PD page: the read completes once with those bytes. */
static void test_hostile_cycle_pdpte_to_pml4(void** state) {
  hx_t* hx = *state;
  uint8_t buf[K4];
  sr_translation_t t;
  scan_t s;
  int i;

  set_entry(hx, hx->cr3, VA, 3, hx->cr3 | TABLE);
  assert_int_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 2);
  assert_int_equal(t.fail_entry_gpa, hx->cr3 + 0 * 8);
  assert_int_equal(t.fail_entry, 0);
  s = scan(hx, hx->cr3, VA);
  assert_false(s.va_any);

  assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), SR_PENDING);
  for (i = 0; i < 5; i++)
    assert_int_equal(sr_swap_poll(hx->swap, (uint64_t)i + 1, NULL), 0);
  assert_int_equal(sr_kit_map(hx->kit, hx->cr3, 0x200000, K4, SR_PAGE_4K, RWU),
                   0);
  assert_int_equal(sr_swap_poll(hx->swap, 10, NULL), 1);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->status, 0);
  assert_true(
      is_phys_page(hx, buf, entry_gpa(hx, hx->cr3, 0x200000, 2) & ADDR));
  s = scan(hx, hx->cr3, VA);
  assert_true(s.va_present);
}

/* PDE -> the PDPT: VA's walk reads the PDPT as its page table and
 * PDPT[index_1(VA) = 0] (VA's own PDPTE, a table pointer) as a 4K leaf:
 * VA reads back the PD page. Regions terminate and agree. */
static void test_hostile_cycle_pde_to_pdpt(void** state) {
  hx_t* hx = *state;
  uint64_t pdpt = entry_gpa(hx, hx->cr3, VA, 3) & ADDR;
  uint64_t pd = entry_gpa(hx, hx->cr3, VA, 2) & ADDR;
  uint8_t buf[K4];
  sr_translation_t t;

  set_entry(hx, hx->cr3, VA, 2, pdpt | TABLE);
  assert_int_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t), 0);
  assert_int_equal(t.gpa, pd);
  assert_int_equal(t.page_size, K4);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), 0);
  assert_true(is_phys_page(hx, buf, pd));
  assert_true(scan(hx, hx->cr3, VA).va_present);
}

/* PTE -> the PD: a 4K leaf that is the PD page. */
static void test_hostile_cycle_pte_to_pd(void** state) {
  hx_t* hx = *state;
  uint64_t pd = entry_gpa(hx, hx->cr3, VA, 2) & ADDR;
  uint8_t buf[K4];
  sr_translation_t t;

  set_entry(hx, hx->cr3, VA, 1, pd | TABLE);
  assert_int_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t), 0);
  assert_int_equal(t.gpa, pd);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), 0);
  assert_true(is_phys_page(hx, buf, pd));
  assert_true(scan(hx, hx->cr3, VA).va_present);
}

/* ---- holes and the end of the file --------------------------------------- */

/* A table in a hole or past the file: SR_EHOLE / SR_EBEYOND at the level
 * whose entry could not be loaded, with that entry's GPA; a read is
 * rejected (no callback); regions skip it. A leaf frame in a hole or past
 * the file translates (translation reads no data) but the read is
 * rejected with SR_EHOLE / SR_EBEYOND. */
static void test_hostile_entries_into_hole_and_past_file(void** state) {
  hx_t* hx = *state;
  const uint64_t where[2] = {HOLE_GPA, BEYOND_GPA};
  const int err[2] = {SR_EHOLE, SR_EBEYOND};
  uint64_t pde = get_entry(hx, hx->cr3, VA, 2);
  uint64_t pte = get_entry(hx, hx->cr3, VA, 1);
  uint64_t pml4e = get_entry(hx, hx->cr3, VA, 4);
  uint8_t buf[2 * K4];
  sr_translation_t t;
  sr_swap_done_t sync;
  int i;

  for (i = 0; i < 2; i++) {
    set_entry(hx, hx->cr3, VA, 2, where[i] | TABLE);
    assert_int_equal(sr_translate(hx->image, hx->cr3, VA + K4, NULL, &t),
                     err[i]);
    assert_int_equal(t.stop_level, 1);
    assert_int_equal(t.fail_entry, 0);
    assert_int_equal(t.fail_entry_gpa, where[i] + 1 * 8);
    assert_int_equal(read_va(hx, hx->cr3, VA + 5, buf, 2 * K4, &sync), err[i]);
    assert_int_equal(sync.status, err[i]);
    assert_int_equal(sync.fail_gva, VA + 5);
    assert_false(scan(hx, hx->cr3, VA).va_any);
    set_entry(hx, hx->cr3, VA, 2, pde);

    set_entry(hx, hx->cr3, VA, 4, where[i] | TABLE);
    assert_int_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t), err[i]);
    assert_int_equal(t.stop_level, 3);
    assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), err[i]);
    set_entry(hx, hx->cr3, VA, 4, pml4e);

    set_entry(hx, hx->cr3, VA, 1, where[i] | TABLE);
    assert_int_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t), 0);
    assert_int_equal(t.gpa, where[i]);
    assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, &sync), err[i]);
    assert_int_equal(sync.fail_gva, VA);
    assert_int_equal(sr_image_read(hx->image, where[i], buf, 8, NULL), err[i]);
    set_entry(hx, hx->cr3, VA, 1, pte);
  }
  assert_int_equal(hx->ncb + hx->ndtor, 0);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, 2 * K4, NULL), 0);
  assert_true(matches(buf, VA, 2 * K4));
}

/* A pending read whose missing page comes back pointing into a hole (or
 * past the file) completes exactly once with that permanent error. */
static void test_hostile_pending_read_meets_hole_later(void** state) {
  hx_t* hx = *state;
  const uint64_t where[2] = {HOLE_GPA, BEYOND_GPA};
  const int err[2] = {SR_EHOLE, SR_EBEYOND};
  sr_pte_info_t as;
  uint8_t buf[2 * K4];
  int i;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_offset = 9;
  for (i = 0; i < 2; i++) {
    hx->ncb = hx->ndtor = 0;
    assert_int_equal(sr_kit_page_out(hx->kit, hx->cr3, VA + K4, 1, &as), 0);
    assert_int_equal(read_va(hx, hx->cr3, VA, buf, 2 * K4, NULL), SR_PENDING);
    assert_int_equal(sr_swap_poll(hx->swap, 1, NULL), 0);
    set_entry(hx, hx->cr3, VA + K4, 1, where[i] | P_ | RW_);
    assert_int_equal(sr_swap_poll(hx->swap, 2, NULL), 1);
    assert_int_equal(hx->ncb, 1);
    assert_int_equal(hx->ndtor, 1);
    assert_int_equal(hx->status, err[i]);
    assert_int_equal(sr_swap_poll(hx->swap, 3, NULL), 0);
    assert_int_equal(hx->ncb, 1);
    assert_int_equal(sr_kit_page_in(hx->kit, hx->cr3, VA + K4, 1), 0);
  }
}

/* A root in a hole / past the file: SR_EHOLE / SR_EBEYOND from
 * sr_translate (level 4, the root entry's GPA), sr_swap_read, sr_regions
 * and sr_uv_read (no callback); a root beyond MAXPHYADDR is SR_EINVAL. */
static void test_hostile_root_in_hole_or_past_file(void** state) {
  hx_t* hx = *state;
  const uint64_t where[2] = {HOLE_GPA, BEYOND_GPA};
  const int err[2] = {SR_EHOLE, SR_EBEYOND};
  sr_walk_opts_t w36 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 36};
  uint8_t buf[K4];
  sr_translation_t t;
  sr_uv_read_t req;
  uv_loop_t loop;
  sr_uv_t h;
  scan_t s;
  int i;

  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(sr_uv_init(&loop, &h, hx->image, NULL), 0);
  for (i = 0; i < 2; i++) {
    assert_int_equal(sr_translate(hx->image, where[i], VA, NULL, &t), err[i]);
    assert_int_equal(t.stop_level, 4);
    assert_int_equal(t.fail_entry_gpa, where[i] + ((VA >> 39) & 511) * 8);
    assert_int_equal(read_va(hx, where[i], VA, buf, K4, NULL), err[i]);
    memset(&s, 0, sizeof(s));
    assert_int_equal(
        sr_regions(hx->image, where[i], 0, 0, NULL, 0, scan_cb, &s), err[i]);
    assert_int_equal(s.n, 0);
    memset(&req, 0, sizeof(req));
    assert_int_equal(
        sr_uv_read(&h, &req, where[i], VA, buf, K4, NULL, uv_never), err[i]);
    assert_int_equal(req.status, err[i]);
  }
  assert_int_equal(sr_translate(hx->image, BIT(40), VA, &w36, &t), SR_EINVAL);
  new_engine(hx, hx->image, 36, SR_PAGING_4LEVEL);
  assert_int_equal(read_va(hx, BIT(40), VA, buf, K4, NULL), SR_EINVAL);
  assert_int_equal(hx->ncb + hx->ndtor, 0);
  sr_uv_close(&h, NULL);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- reserved bits ------------------------------------------------------- */

/* MAXPHYADDR 36: each of bits 36..51 in a present entry at every level is
 * SR_EBADENTRY at that level (fail_entry = the entry, pte.kind PRESENT);
 * the read is rejected. With MAXPHYADDR 52 the same bits are address bits
 * (a leaf elsewhere, a table past the file), and bits 52..62 are never
 * reserved (the walk ends where it did). */
static void test_hostile_reserved_bits_maxphyaddr36(void** state) {
  hx_t* hx = *state;
  sr_walk_opts_t w36 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 36};
  uint64_t orig, gpa0;
  uint8_t buf[K4];
  sr_translation_t t;
  int level, bit;

  assert_int_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t), 0);
  gpa0 = t.gpa;
  new_engine(hx, hx->image, 36, SR_PAGING_4LEVEL);
  for (level = 4; level >= 1; level--) {
    orig = get_entry(hx, hx->cr3, VA, level);
    for (bit = 36; bit <= 51; bit++) {
      set_entry(hx, hx->cr3, VA, level, orig | BIT(bit));
      assert_int_equal(sr_translate(hx->image, hx->cr3, VA, &w36, &t),
                       SR_EBADENTRY);
      assert_int_equal(t.stop_level, level);
      assert_int_equal(t.fail_entry, orig | BIT(bit));
      assert_int_equal(t.fail_entry_gpa, entry_gpa(hx, hx->cr3, VA, level));
      assert_int_equal(t.pte.kind, SR_PTE_PRESENT);
      assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), SR_EBADENTRY);
      /* MAXPHYADDR 52: an address bit */
      assert_int_not_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t),
                           SR_EBADENTRY);
      if (level == 1) {
        assert_int_equal(t.status, 0);
        assert_int_equal(t.gpa, gpa0 | BIT(bit));
      }
    }
    for (bit = 52; bit <= 62; bit++) {
      set_entry(hx, hx->cr3, VA, level, orig | BIT(bit));
      assert_int_equal(sr_translate(hx->image, hx->cr3, VA, &w36, &t), 0);
      assert_int_equal(t.gpa, gpa0);
    }
    set_entry(hx, hx->cr3, VA, level, orig);
  }
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), 0);
  assert_true(matches(buf, VA, K4));
  assert_int_equal(hx->ncb + hx->ndtor, 0);
}

/* A pending read whose page comes back with a reserved bit set completes
 * exactly once with SR_EBADENTRY. */
static void test_hostile_pending_read_meets_reserved_bit(void** state) {
  hx_t* hx = *state;
  uint64_t pte = get_entry(hx, hx->cr3, VA + K4, 1);
  sr_pte_info_t as;
  uint8_t buf[2 * K4];

  new_engine(hx, hx->image, 36, SR_PAGING_4LEVEL);
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_offset = 3;
  assert_int_equal(sr_kit_page_out(hx->kit, hx->cr3, VA + K4, 1, &as), 0);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, 2 * K4, NULL), SR_PENDING);
  set_entry(hx, hx->cr3, VA + K4, 1, pte | BIT(44));
  assert_int_equal(sr_swap_poll(hx->swap, 1, NULL), 1);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->status, SR_EBADENTRY);
  assert_int_equal(sr_swap_poll(hx->swap, 2, NULL), 0);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->ndtor, 1);
}

/* PS in a PML4E (4-level) and in a PML5E (5-level) is a bad entry, not a
 * 512 GiB / 256 TiB page: SR_EBADENTRY at level 4 / 5, read rejected,
 * regions skip it. */
static void test_hostile_ps_in_pml4e_and_pml5e(void** state) {
  hx_t* hx = *state;
  sr_walk_opts_t w5 = {SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0};
  uint64_t orig = get_entry(hx, hx->cr3, VA, 4);
  uint64_t cr3_5;
  uint8_t buf[K4];
  sr_translation_t t;
  sr_image_t* img;

  set_entry(hx, hx->cr3, VA, 4, orig | PS_);
  assert_int_equal(sr_translate(hx->image, hx->cr3, VA, NULL, &t),
                   SR_EBADENTRY);
  assert_int_equal(t.stop_level, 4);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), SR_EBADENTRY);
  assert_false(scan(hx, hx->cr3, VA).va_any);
  set_entry(hx, hx->cr3, VA, 4, orig);

  assert_int_equal(sr_kit_new_space(hx->kit, SR_PAGING_5LEVEL, &cr3_5), 0);
  assert_int_equal(sr_kit_map(hx->kit, cr3_5, VA, K4, SR_PAGE_4K, RWU), 0);
  assert_int_equal(sr_kit_fill(hx->kit, cr3_5, VA, K4, SEED), 0);
  assert_int_equal(open_low(hx->kit, &img), 0);
  new_engine(hx, img, 0, SR_PAGING_5LEVEL);
  assert_int_equal(read_va(hx, cr3_5, VA, buf, K4, NULL), 0);
  assert_true(matches(buf, VA, K4));
  orig = get_entry(hx, cr3_5, VA, 5);
  set_entry(hx, cr3_5, VA, 5, orig | PS_);
  assert_int_equal(sr_translate(img, cr3_5, VA, &w5, &t), SR_EBADENTRY);
  assert_int_equal(t.stop_level, 5);
  assert_int_equal(t.fail_entry, orig | PS_);
  assert_int_equal(read_va(hx, cr3_5, VA, buf, K4, NULL), SR_EBADENTRY);
  sr_swap_free(hx->swap);
  hx->swap = NULL;
  sr_image_close(img);
}

/* Bits 13..20 of a 2M leaf are reserved (SR_EBADENTRY at level 2); bit 12
 * is PAT (the same frame). */
static void test_hostile_reserved_bits_2m_leaf(void** state) {
  hx_t* hx = *state;
  uint64_t orig = get_entry(hx, hx->cr3, VA2M, 2);
  uint8_t buf[K4];
  sr_translation_t t;
  uint64_t gpa0;
  int bit;

  assert_int_equal(sr_translate(hx->image, hx->cr3, VA2M + 5 * K4, NULL, &t),
                   0);
  gpa0 = t.gpa;
  for (bit = 13; bit <= 20; bit++) {
    set_entry(hx, hx->cr3, VA2M, 2, orig | BIT(bit));
    assert_int_equal(sr_translate(hx->image, hx->cr3, VA2M, NULL, &t),
                     SR_EBADENTRY);
    assert_int_equal(t.stop_level, 2);
    assert_int_equal(read_va(hx, hx->cr3, VA2M, buf, K4, NULL), SR_EBADENTRY);
  }
  set_entry(hx, hx->cr3, VA2M, 2, orig | BIT(12));
  assert_int_equal(sr_translate(hx->image, hx->cr3, VA2M + 5 * K4, NULL, &t),
                   0);
  assert_int_equal(t.gpa, gpa0);
  assert_int_equal(t.page_size, M2);
  assert_int_equal(read_va(hx, hx->cr3, VA2M + 5 * K4, buf, K4, NULL), 0);
  assert_true(matches(buf, VA2M + 5 * K4, K4));
  set_entry(hx, hx->cr3, VA2M, 2, orig);
}

/* Bits 13..29 of a 1G leaf are reserved (SR_EBADENTRY at level 3); bit 12
 * is PAT. A sparse 2 GiB kit of its own. */
static void test_hostile_reserved_bits_1g_leaf(void** state) {
  hx_t* hx = *state;
  const uint64_t va = UINT64_C(0x00007f8000000000);
  sr_kit_opts_t ko;
  sr_kit_t* kit;
  sr_image_t* img;
  uint64_t cr3, orig, gpa0;
  sr_translation_t t;
  int bit;

  memset(&ko, 0, sizeof(ko));
  ko.size = 2 * G1 + 4 * MIB;
  assert_int_equal(sr_kit_create(&kit, &ko), 0);
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, va, G1, SR_PAGE_1G, RWU), 0);
  assert_int_equal(sr_kit_open_image(kit, &img), 0);
  assert_int_equal(sr_translate(img, cr3, va + 3 * K4, NULL, &t), 0);
  gpa0 = t.gpa;
  assert_int_equal(sr_kit_get_entry(kit, cr3, va, 3, &orig), 0);
  for (bit = 13; bit <= 29; bit++) {
    assert_int_equal(sr_kit_set_entry(kit, cr3, va, 3, orig | BIT(bit), NULL),
                     0);
    assert_int_equal(sr_translate(img, cr3, va, NULL, &t), SR_EBADENTRY);
    assert_int_equal(t.stop_level, 3);
    assert_int_equal(t.fail_entry, orig | BIT(bit));
  }
  assert_int_equal(sr_kit_set_entry(kit, cr3, va, 3, orig | BIT(12), NULL), 0);
  assert_int_equal(sr_translate(img, cr3, va + 3 * K4, NULL, &t), 0);
  assert_int_equal(t.gpa, gpa0);
  assert_int_equal(t.page_size, G1);
  sr_image_close(img);
  sr_kit_destroy(kit);
  (void)hx;
}

/* ---- addresses and lengths ----------------------------------------------- */

typedef struct bad_range_s {
  uint64_t gva;
  uint64_t len;
  int err;
} bad_range_t;

/* Non-canonical, wrapping and enormous ranges (docs/api/swap.md
 * sr_swap_read errors): rejected by sr_swap_read and sr_uv_read with the
 * documented code, no callback, and nothing allocated for them (the
 * engine's and the handle's live bytes are unchanged, no request is
 * larger than a page). */
static void test_hostile_bad_ranges_rejected_without_memory(void** state) {
  hx_t* hx = *state;
  const bad_range_t bad[] = {
      {UINT64_C(0x0000800000000000), 1, SR_ENONCANON},
      {UINT64_C(0xffff7ffffffff000), 8, SR_ENONCANON},
      {UINT64_C(0x00007ffffffff000), 2 * K4, SR_ENONCANON}, /* crosses */
      {UINT64_C(0xfffffffffffff000), 2 * K4, SR_EINVAL},    /* wraps */
      {VA, 0, SR_EINVAL},
      {0, SIZE_MAX, SR_ENONCANON}, /* crosses the hole */
      {VA, SIZE_MAX, SR_EINVAL},   /* wraps */
      {UINT64_C(0xffff800000000000), SIZE_MAX, SR_EINVAL},
      {0, (UINT64_C(1) << 47) + 1, SR_ENONCANON}, /* > 2^47 */
      {0, UINT64_C(1) << 47, SR_EINVAL},          /* 2^35 chunks */
      {UINT64_C(0xffff800000000000), UINT64_C(1) << 47, SR_EINVAL},
      {0, UINT64_C(0xffffffff) * K4, SR_EINVAL}, /* 2^32 - 1 chunks */
      {UINT64_C(0x10), UINT64_C(0xfffffffe) * K4, SR_EINVAL}, /* 2^32 - 1 */
  };
  sr_uv_opts_t uo;
  sr_uv_read_t req;
  uv_loop_t loop;
  sr_uv_t h;
  uint8_t buf[16];
  size_t i, live;
  sr_swap_done_t sync;

  memset(&uo, 0, sizeof(uo));
  uo.swap.allocator = &hx->mem.hook;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(sr_uv_init(&loop, &h, hx->image, &uo), 0);
  live = hx->mem.live_bytes;
  hx->mem.max_request = 0;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    /* buf is 16 bytes: nothing may be written for a rejected read */
    assert_int_equal(
        read_va(hx, hx->cr3, bad[i].gva, buf, (size_t)bad[i].len, &sync),
        bad[i].err);
    assert_int_equal(sync.status, bad[i].err);
    memset(&req, 0, sizeof(req));
    assert_int_equal(sr_uv_read(&h, &req, hx->cr3, bad[i].gva, buf,
                                (size_t)bad[i].len, NULL, uv_never),
                     bad[i].err);
    assert_int_equal(hx->mem.live_bytes, live);
  }
  assert_true(hx->mem.max_request <= K4);
  assert_int_equal(hx->ncb + hx->ndtor, 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  sr_uv_close(&h, NULL);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static int count_dump(const sr_swap_txn_info_t* info, void* arg) {
  (void)info;
  (*(int*)arg)++;
  return 0;
}

/* Enormous but valid lengths: the largest read the engine accepts
 * (2^32 - 2 chunks) needs a 512 MiB bitmap; with an allocator refusing
 * more than 64 MiB it is SR_ENOMEM, nothing queued. A 64 GiB read of
 * unmapped space is accepted (pending: zero entries wait) and costs its
 * bitmap (2^24 chunks / 8 bytes) plus small change, one walk per
 * 512 GiB entry; it cancels cleanly. The buffer is never touched for
 * unmapped chunks (a 1-byte buffer stands for it: a write would be an
 * ASan error). */
static void test_hostile_enormous_valid_lengths_bounded(void** state) {
  hx_t* hx = *state;
  const uint64_t base = UINT64_C(0x0000100000000000); /* PML4 slot 32 */
  sr_swap_stats_t st;
  sr_swap_handle_t hd;
  sr_swap_req_t req;
  uint8_t* big;
  size_t live = hx->mem.live_bytes;
  int n = 0;

  hx->mem.cap = 64 * MIB;
  hx->mem.max_request = 0;
  big = malloc(1);
  assert_non_null(big);
  memset(&req, 0, sizeof(req));
  req.cr3 = hx->cr3;
  req.gva = base;
  req.buf = big;
  req.len = (size_t)(UINT64_C(0xfffffffe) * K4);
  assert_int_equal(
      sr_swap_read(hx->swap, &req, 0, on_done, hx, on_dtor, &hd, NULL),
      SR_ENOMEM);
  assert_true(hx->mem.max_request <= (UINT64_C(0xfffffffe) + 63) / 64 * 8);
  /* pools may keep capacity reserved ahead (freed with the engine) */
  assert_true(hx->mem.live_bytes - live <= K4);
  sr_swap_stats(hx->swap, &st);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.watched_entries, 0);

  hx->mem.max_request = 0;
  req.len = (size_t)(UINT64_C(1) << 36);
  assert_int_equal(
      sr_swap_read(hx->swap, &req, 0, on_done, hx, on_dtor, &hd, NULL),
      SR_PENDING);
  assert_true(hx->mem.max_request <= (UINT64_C(1) << 24) / 8);
  assert_true(hx->mem.live_bytes - live <= (UINT64_C(1) << 24) / 8 + 64 * 1024);
  sr_swap_stats(hx->swap, &st);
  assert_int_equal(st.pending_chunks, UINT64_C(1) << 24);
  assert_int_equal(sr_swap_dump(hx->swap, 1, count_dump, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(sr_swap_poll(hx->swap, 1, NULL), 0);
  assert_int_equal(sr_swap_cancel(hx->swap, hd), 0);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->status, SR_ECANCELED);
  assert_int_equal(hx->ndtor, 1);
  assert_int_equal(hx->cb_in_read, 0);
  free(big);
}

/* ---- files that change under the reader ---------------------------------- */

/* Pages out the PTEs of pages [first, first + n) of VA, starts a read of
 * all NPAGES pages on a new image and engine, then shrinks the file below
 * VA's page table: the next poll ends the read exactly once with
 * SR_EBEYOND, without SIGBUS, and the image's size is lowered. Returns
 * the image (the engine stays in hx). */
static sr_image_t* truncate_under_pending(hx_t* hx, int first, int n,
                                          uint64_t pt) {
  sr_pte_info_t as;
  sr_image_t* img;
  uint8_t buf[NPAGES * K4];
  int i;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  for (i = first; i < first + n; i++) {
    as.swap_offset = 11 + (uint64_t)i;
    assert_int_equal(
        sr_kit_page_out(hx->kit, hx->cr3, VA + (uint64_t)i * K4, 1, &as), 0);
  }
  assert_int_equal(open_low(hx->kit, &img), 0); /* in the body: SIGBUS */
  new_engine(hx, img, 0, SR_PAGING_4LEVEL);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, sizeof(buf), NULL),
                   SR_PENDING);
  assert_int_equal(sr_swap_poll(hx->swap, 1, NULL), 0);
  assert_int_equal(hx->ncb, 0);
  assert_true(pt > entry_gpa(hx, hx->cr3, VA, 2));
  assert_int_equal(sr_kit_truncate(hx->kit, pt), 0);
  assert_int_equal(sr_swap_poll(hx->swap, 2, NULL), 1);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->status, SR_EBEYOND);
  assert_int_equal(sr_swap_poll(hx->swap, 3, NULL), 0);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->ndtor, 1);
  assert_true(sr_image_file_size(img) <= pt);
  return img;
}

/* The file shrinks below VA's page table while a read waits on one of its
 * PTEs: no SIGBUS; the poll finds the entry unreadable and the read
 * completes exactly once with SR_EBEYOND; new reads of VA are rejected
 * with SR_EBEYOND. When the file grows back, this image keeps the lowered
 * size (documented: a grown file is not remapped). */
static void test_hostile_truncated_under_pending_read(void** state) {
  hx_t* hx = *state;
  uint64_t pt = entry_gpa(hx, hx->cr3, VA, 1) & ADDR;
  sr_translation_t t;
  sr_image_t* img = truncate_under_pending(hx, 3, 1, pt);
  uint8_t buf[K4];

  assert_int_equal(sr_translate(img, hx->cr3, VA, NULL, &t), SR_EBEYOND);
  assert_int_equal(t.stop_level, 1);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), SR_EBEYOND);

  assert_int_equal(sr_kit_truncate(hx->kit, KIT_SIZE), 0);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, K4, NULL), SR_EBEYOND);
  assert_int_equal(hx->ncb, 1);
  sr_swap_free(hx->swap);
  hx->swap = NULL;
  sr_image_close(img);
}

/* The same with every PTE of the range out, so that the scan compares
 * them as one run: the compare of the run faults, and every entry of it
 * is found unreadable; the read still completes exactly once. */
static void test_hostile_truncated_under_run_of_pending_ptes(void** state) {
  hx_t* hx = *state;
  sr_image_t* img = truncate_under_pending(
      hx, 0, NPAGES, entry_gpa(hx, hx->cr3, VA, 1) & ADDR);

  sr_swap_free(hx->swap);
  hx->swap = NULL;
  sr_image_close(img);
}

/* The file shrinks below the data frames of a synchronous read: the read
 * is rejected with SR_EBEYOND (no SIGBUS), sr_image_read says SR_EBEYOND
 * with the bytes before the end copied. */
static void test_hostile_truncated_under_sync_read(void** state) {
  hx_t* hx = *state;
  uint64_t frame;
  sr_translation_t t;
  sr_image_t* img;
  uint8_t buf[2 * K4];
  size_t done = 0;

  assert_int_equal(open_low(hx->kit, &img), 0);
  new_engine(hx, img, 0, SR_PAGING_4LEVEL);
  assert_int_equal(sr_translate(img, hx->cr3, VA + K4, NULL, &t), 0);
  frame = t.gpa;
  assert_int_equal(sr_kit_truncate(hx->kit, frame), 0);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, sizeof(buf), NULL),
                   SR_EBEYOND);
  assert_int_equal(sr_image_read(img, frame - 8, buf, 16, &done), SR_EBEYOND);
  assert_int_equal(done, 8);
  assert_int_equal(hx->ncb + hx->ndtor, 0);
  sr_swap_free(hx->swap);
  hx->swap = NULL;
  sr_image_close(img);
}

static void truncate_root(uv_timer_t* t) {
  hx_t* hx = t->data;

  assert_int_equal(sr_kit_truncate(hx->kit, hx->cr3), 0);
}

static void uv_rec(sr_uv_read_t* req, int status) {
  hx_t* hx = req->data;

  hx->ncb++;
  hx->status = status;
}

/* Under the libuv handle, the file shrinks below the root of an address
 * space with a pending read: the restart check finds the root unreadable
 * and the read ends with SR_EGONE exactly once (docs/api/loop.md), no
 * SIGBUS, uv_run returns. */
static void test_hostile_truncated_root_under_uv(void** state) {
  hx_t* hx = *state;
  sr_pte_info_t as;
  sr_image_t* img;
  uv_timer_t timer;
  sr_uv_read_t req;
  uv_loop_t loop;
  sr_uv_t h;
  uint8_t buf[2 * K4];

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_offset = 12;
  assert_int_equal(sr_kit_page_out(hx->kit, hx->cr3, VA + K4, 1, &as), 0);
  assert_int_equal(open_low(hx->kit, &img), 0);
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(sr_uv_init(&loop, &h, img, NULL), 0);
  assert_int_equal(uv_timer_init(&loop, &timer), 0);
  timer.data = hx;
  req.data = hx;
  assert_int_equal(
      sr_uv_read(&h, &req, hx->cr3, VA, buf, sizeof(buf), NULL, uv_rec),
      SR_PENDING);
  assert_int_equal(uv_timer_start(&timer, truncate_root, 5, 0), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(hx->ncb, 1);
  assert_int_equal(hx->status, SR_EGONE);
  sr_uv_close(&h, NULL);
  uv_close((uv_handle_t*)&timer, NULL);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(hx->ncb, 1);
  sr_image_close(img);
}

/* The file grows while mapped and a read is pending: the old range still
 * reads right (sync and the pending read once its page is back), the
 * image keeps the size it saw at open. */
static void test_hostile_extended_while_mapped(void** state) {
  hx_t* hx = *state;
  sr_pte_info_t as;
  sr_image_t* img;
  uint8_t buf[NPAGES * K4];

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_offset = 13;
  assert_int_equal(open_low(hx->kit, &img), 0);
  new_engine(hx, img, 0, SR_PAGING_4LEVEL);
  assert_int_equal(sr_kit_page_out(hx->kit, hx->cr3, VA + 7 * K4, 1, &as), 0);
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, sizeof(buf), NULL),
                   SR_PENDING);
  assert_int_equal(sr_kit_truncate(hx->kit, 2 * KIT_SIZE), 0);
  assert_int_equal(sr_swap_poll(hx->swap, 1, NULL), 0);
  assert_int_equal(sr_kit_page_in(hx->kit, hx->cr3, VA + 7 * K4, 1), 0);
  assert_int_equal(sr_swap_poll(hx->swap, 2, NULL), 1);
  assert_int_equal(hx->status, 0);
  assert_true(matches(buf, VA, sizeof(buf)));
  memset(buf, 0, sizeof(buf));
  assert_int_equal(read_va(hx, hx->cr3, VA, buf, sizeof(buf), NULL), 0);
  assert_true(matches(buf, VA, sizeof(buf)));
  assert_int_equal(sr_image_file_size(img), KIT_SIZE);
  sr_swap_free(hx->swap);
  hx->swap = NULL;
  sr_image_close(img);
}

/* The image file is unlinked while open (by path): everything still
 * reads, including what the guest changes afterwards. */
static void test_hostile_unlinked_while_open(void** state) {
  hx_t* hx = *state;
  char path[96];
  sr_kit_opts_t ko;
  sr_kit_t* kit;
  sr_image_t* img;
  sr_layout_t l;
  sr_pte_info_t as;
  uint64_t cr3;
  uint8_t buf[4 * K4];

  snprintf(hx->dir, sizeof(hx->dir), "/tmp/sr-hostile-XXXXXX");
  assert_non_null(mkdtemp(hx->dir));
  snprintf(path, sizeof(path), "%s/ram", hx->dir);
  memset(&ko, 0, sizeof(ko));
  ko.size = 4 * MIB;
  ko.path = path;
  assert_int_equal(sr_kit_create(&kit, &ko), 0);
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, VA, 4 * K4, SR_PAGE_4K, RWU), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, VA, 4 * K4, SEED), 0);
  memset(&l, 0, sizeof(l));
  l.kind = SR_LAYOUT_RAW;
  assert_int_equal(sr_image_open(&img, path, &l), 0);
  assert_int_equal(unlink(path), 0);
  new_engine(hx, img, 0, SR_PAGING_4LEVEL);
  assert_int_equal(read_va(hx, cr3, VA, buf, sizeof(buf), NULL), 0);
  assert_true(matches(buf, VA, sizeof(buf)));
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_offset = 1;
  assert_int_equal(sr_kit_page_out(kit, cr3, VA + K4, 1, &as), 0);
  memset(buf, 0, sizeof(buf));
  assert_int_equal(read_va(hx, cr3, VA, buf, sizeof(buf), NULL), SR_PENDING);
  assert_int_equal(sr_kit_page_in(kit, cr3, VA + K4, 1), 0);
  assert_int_equal(sr_swap_poll(hx->swap, 1, NULL), 1);
  assert_int_equal(hx->status, 0);
  assert_true(matches(buf, VA, sizeof(buf)));
  sr_swap_free(hx->swap);
  hx->swap = NULL;
  sr_image_close(img);
  sr_kit_destroy(kit);
}

static int count_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  int n = 0;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* fds and paths that are not regular files get their documented errors
 * (docs/api/core.md sr_image_open / sr_image_open_fd), *out NULL, no fd
 * left open, and a FIFO never blocks. */
static void test_hostile_not_regular_files(void** state) {
  hx_t* hx = *state;
  char path[96];
  struct sockaddr_un sa;
  sr_image_t* img;
  int p[2], sp[2], fd, s, before;

  snprintf(hx->dir, sizeof(hx->dir), "/tmp/sr-hostile-XXXXXX");
  assert_non_null(mkdtemp(hx->dir));
  before = count_fds();

  assert_int_equal(pipe(p), 0);
  img = (sr_image_t*)&img;
  assert_int_equal(sr_image_open_fd(&img, p[0], NULL), SR_ESPIPE);
  assert_null(img);
  assert_int_equal(sr_image_open_fd(&img, p[1], NULL), SR_ESPIPE);
  close(p[0]);
  close(p[1]);

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
  assert_int_equal(sr_image_open_fd(&img, sp[0], NULL), SR_ESPIPE);
  close(sp[0]);
  close(sp[1]);

  fd = open(hx->dir, O_RDONLY | O_DIRECTORY);
  assert_true(fd >= 0);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), SR_EISDIR);
  close(fd);
  assert_int_equal(sr_image_open(&img, hx->dir, NULL), SR_EISDIR);

  fd = open("/dev/null", O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), SR_ENODEV);
  close(fd);
  assert_int_equal(sr_image_open(&img, "/dev/null", NULL), SR_ENODEV);

  snprintf(path, sizeof(path), "%s/fifo", hx->dir);
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(sr_image_open(&img, path, NULL), SR_ESPIPE);
  assert_null(img);
  unlink(path);

  snprintf(path, sizeof(path), "%s/sock", hx->dir);
  s = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(s >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  assert_true(strlen(path) < sizeof(sa.sun_path));
  memcpy(sa.sun_path, path, strlen(path) + 1);
  assert_int_equal(bind(s, (struct sockaddr*)&sa, sizeof(sa)), 0);
  assert_int_equal(sr_image_open(&img, path, NULL), SR_ESPIPE);
  close(s);
  unlink(path);

  snprintf(path, sizeof(path), "%s/empty", hx->dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), SR_EBADLAYOUT);
  assert_int_equal(sr_image_open(&img, path, NULL), SR_EBADLAYOUT);
  assert_int_equal(ftruncate(fd, 4096), 0);
  close(fd);
  fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), SR_EACCES);
  close(fd);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), SR_EBADF);
  assert_int_equal(sr_image_open_fd(&img, -1, NULL), SR_EINVAL);
  unlink(path);
  assert_null(img);
  assert_int_equal(count_fds(), before);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hostile_cycle_pml4e_self_map, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hostile_cycle_pdpte_to_pml4, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hostile_cycle_pde_to_pdpt, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hostile_cycle_pte_to_pd, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_hostile_entries_into_hole_and_past_file, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_hostile_pending_read_meets_hole_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_root_in_hole_or_past_file,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_reserved_bits_maxphyaddr36,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_hostile_pending_read_meets_reserved_bit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_ps_in_pml4e_and_pml5e, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hostile_reserved_bits_2m_leaf, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hostile_reserved_bits_1g_leaf, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_hostile_bad_ranges_rejected_without_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_hostile_enormous_valid_lengths_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_truncated_under_pending_read,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_hostile_truncated_under_run_of_pending_ptes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_truncated_under_sync_read,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_truncated_root_under_uv,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_extended_while_mapped, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hostile_unlinked_while_open, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hostile_not_regular_files, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
