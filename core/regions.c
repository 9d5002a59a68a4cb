/* Region enumeration: the coalesced VA runs of an address space.
 *
 * sr_regions walks the paging structures under a CR3 over [lo, hi) the way
 * Linux's mm/pagewalk.c does: one recursive step per level over a half-open
 * range [start, end) stepped with `!=` (end == 0 is the top of the address
 * space, so the last entry of the kernel half terminates without overflow).
 * The non-canonical hole is never walked. An empty entry skips its whole
 * span at the level where it is empty (a zero PML4E skips 512 GiB in one
 * step); a non-present entry of a known non-NONE kind covers its whole span
 * as one paged run; bad entries and tables that cannot be read are skipped.
 * Each table is copied (only the indices the range needs) inside one fault
 * scope, and the caller's callback always runs outside any fault scope.
 * Runs are coalesced into regions (same state and protection; with
 * SR_REGIONS_MERGE_PAGED paged runs join their neighbours) and delivered in
 * ascending order. Limits: the walk is a snapshot without locking — a
 * guest changing its tables during the walk may yield a mix of old and new
 * entries; a file that shrinks under the walk ends it with SR_EBEYOND.
 * Depth is bounded by the paging levels, so self-referencing tables (the
 * Windows self-map) terminate: the walk reports what the hardware would map,
 * i.e. page-table pages appear as present data pages in the self-map window.
 */
#include <assert.h>
#include <string.h>

#include "fault.h"
#include "image_internal.h"
#include "pgtable.h"
#include "swapread/regions.h"
#include "walk.h"

typedef struct walker_s {
  const sr_image_t* image;
  sr__walk_cfg_t cfg;
  uint32_t flags; /* SR_REGIONS_* */
  sr_region_cb cb;
  void* arg;
  bool have;       /* `cur` holds a region not yet delivered */
  sr_region_t cur; /* state is set when delivered */
  /* One copy of a table per level (index level - 1) and which of its
   * entries could be read (a table may straddle the end of a segment). */
  uint64_t table[5][SR__ENTRIES];
  uint64_t readable[5][SR__ENTRIES / 64];
} walker_t;

static int walk_table(walker_t* w, uint64_t table_gpa, int level,
                      uint64_t start, uint64_t end, uint32_t prot);

/* Delivers the pending region, if any. Returns the callback's value. */
static int flush(walker_t* w) {
  sr_region_t* r = &w->cur;

  if (!w->have)
    return 0;
  w->have = false;
  if (r->present_bytes == 0)
    r->state = SR_RUN_PAGED;
  else if (r->present_bytes == r->hi - r->lo) /* mod 2^64: hi 0 is the top */
    r->state = SR_RUN_PRESENT;
  else
    r->state = SR_RUN_MIXED;
  assert(r->state != SR_RUN_MIXED || (w->flags & SR_REGIONS_MERGE_PAGED));
  return w->cb(r, w->arg);
}

/* Whether a run of `present` state and `prot` starting at the end of the
 * pending region joins it. Without SR_REGIONS_MERGE_PAGED: same state and
 * prot. With it: a paged run always joins; a present run joins when the
 * region has no present bytes yet or has the same prot. */
static bool joins(const walker_t* w, bool present, uint32_t prot) {
  const sr_region_t* r = &w->cur;

  if ((w->flags & SR_REGIONS_MERGE_PAGED) == 0)
    return (r->present_bytes != 0) == present && r->prot == prot;
  if (!present)
    return true;
  return r->present_bytes == 0 || r->prot == prot;
}

/* Adds the run [lo, hi) (hi 0: the top). A present run has its leaf's
 * accumulated prot and page size; a paged run has the upper levels' prot
 * and kind_bit (1u << kind). Runs arrive in ascending order. Returns 0 or
 * the callback's non-zero value. */
static int add_run(walker_t* w, uint64_t lo, uint64_t hi, bool present,
                   uint32_t prot, uint32_t kind_bit, uint64_t page_size) {
  sr_region_t* r = &w->cur;
  uint64_t present_bytes = present ? hi - lo : 0;
  int rc;

  assert(hi == 0 || lo < hi);
  assert(!w->have || r->hi == 0 || r->hi <= lo);
  if (w->have && r->hi == lo && r->hi != 0 && joins(w, present, prot)) {
    if (present && r->present_bytes == 0)
      r->prot = prot; /* a paged-only region takes its present parts' prot */
    r->hi = hi;
    r->present_bytes += present_bytes;
    r->kinds |= kind_bit;
    r->page_sizes |= page_size;
    return 0;
  }
  rc = flush(w);
  if (rc != 0)
    return rc;
  memset(r, 0, sizeof(*r));
  r->lo = lo;
  r->hi = hi;
  r->prot = prot;
  r->present_bytes = present_bytes;
  r->kinds = kind_bit;
  r->page_sizes = page_size;
  w->have = true;
  return 0;
}

/* The loads of read_table, in a frame of their own (see core/fault.h):
 * entries [i0, i0 + n) of the table at table_gpa into buf, marking in `ok`
 * which could be read. `whole`: they lie in one mapped extent at p. */
__attribute__((noinline)) static void copy_entries(
    const sr_image_t* image, uint64_t table_gpa, unsigned i0, unsigned n,
    bool whole, const unsigned char* p, uint64_t* buf, uint64_t* ok) {
  unsigned i;

  if (whole) {
    /* The common case: the entries lie in one mapped extent. */
    memcpy(buf + i0, p, 8 * (size_t)n);
    for (i = i0; i < i0 + n; i++)
      ok[i / 64] |= UINT64_C(1) << (i % 64);
    return;
  }
  /* The table straddles a segment edge, a hole or the end of the file. */
  for (i = i0; i < i0 + n; i++) {
    if (sr__image_load64(image, table_gpa + 8 * (uint64_t)i, &buf[i]) == 0)
      ok[i / 64] |= UINT64_C(1) << (i % 64);
  }
}

/* Copies entries [i0, i0 + n) of the table at table_gpa into the level's
 * buffer and marks which could be read (hole / beyond entries are not).
 * All loads happen inside one fault scope. Returns 0, or SR_EBEYOND when
 * the file shrank under the load (the image is told). */
static int read_table(walker_t* w, uint64_t table_gpa, int level, unsigned i0,
                      unsigned n) {
  const unsigned char* p = NULL;
  uint64_t run = 0;
  sr__fault_scope_t scope;
  uint64_t* buf;
  uint64_t* ok;
  int rc;

  assert(level >= 1 && level <= 5);
  assert(n >= 1 && i0 + n <= SR__ENTRIES);
  assert((table_gpa & 0xfff) == 0);
  buf = w->table[level - 1];
  ok = w->readable[level - 1];
  memset(ok, 0, sizeof(w->readable[0]));
  rc = sr__image_locate(w->image, table_gpa + 8 * (uint64_t)i0, &p, &run);

  if (SR__FAULT_CATCH(&scope)) {
    sr__image_note_fault(w->image);
    return SR_EBEYOND;
  }
  sr__fault_enter(&scope);
  copy_entries(w->image, table_gpa, i0, n, rc == 0 && run >= 8 * (uint64_t)n, p,
               buf, ok);
  sr__fault_leave(&scope);
  return 0;
}

/* Handles one entry found at `level` that covers [start, end) of the walk
 * (its span clipped to the range); prot is accumulated over the levels
 * above. Returns 0, a callback's non-zero value or SR_EBEYOND (fault). */
static int visit_entry(walker_t* w, uint64_t entry, int level, uint64_t start,
                       uint64_t end, uint32_t prot) {
  uint64_t addr;
  uint64_t size;
  sr_pte_kind_t kind;

  if (entry == 0)
    return 0;
  switch (sr__entry_decode(&w->cfg, entry, level, &addr, &size, NULL)) {
    case SR__ENTRY_TABLE:
      assert(level > 1);
      return walk_table(w, addr, level - 1, start, end,
                        sr__prot_accumulate(prot, sr__entry_prot(entry)));
    case SR__ENTRY_LEAF:
      return add_run(w, start, end, true,
                     sr__prot_accumulate(prot, sr__entry_prot(entry)), 0, size);
    case SR__ENTRY_NOTPRESENT:
      kind = sr_pte_classify(entry, level, w->cfg.os, NULL);
      if (kind == SR_PTE_NONE || kind == SR_PTE_PRESENT)
        return 0;
      /* Mapped but not present: its whole span, with the upper levels'
       * prot (this entry's own bits are the OS's, not the hardware's). */
      return add_run(w, start, end, false, prot, 1u << kind, 0);
    case SR__ENTRY_BAD:
    default:
      return 0;
  }
}

/* Walks [start, end) (end 0: the top) through the table at table_gpa of
 * `level`; the range lies inside the span of one table of that level. */
static int walk_table(walker_t* w, uint64_t table_gpa, int level,
                      uint64_t start, uint64_t end, uint32_t prot) {
  uint64_t span = UINT64_C(1) << SR__SHIFT(level);
  uint64_t addr = start;
  uint64_t next;
  unsigned i0 = (unsigned)SR__INDEX(start, level);
  unsigned i1 = (unsigned)SR__INDEX(end - 1, level);
  unsigned i;
  int rc;

  assert(level >= 1 && level <= w->cfg.top_level);
  assert(end == 0 || start < end);
  assert(i0 <= i1);
  rc = read_table(w, table_gpa, level, i0, i1 - i0 + 1);
  if (rc != 0)
    return rc;
  do {
    /* As pgd_addr_end(): the next entry boundary, or end if sooner; a
     * boundary of 0 (wrap at the top) compares as 2^64. */
    next = (addr | (span - 1)) + 1;
    if (next - 1 >= end - 1)
      next = end;
    i = (unsigned)SR__INDEX(addr, level);
    if ((w->readable[level - 1][i / 64] >> (i % 64)) & 1) {
      rc = visit_entry(w, w->table[level - 1][i], level, addr, next, prot);
      if (rc != 0)
        return rc;
    }
    addr = next;
  } while (addr != end);
  return 0;
}

/* Enumerates [lo, hi) under cr3; see swapread/regions.h. Validates the
 * arguments, walks the lower then the upper canonical half, and delivers
 * the last pending region. */
int sr_regions(const sr_image_t* image, uint64_t cr3, uint64_t lo, uint64_t hi,
               const sr_walk_opts_t* opts, uint32_t flags, sr_region_cb cb,
               void* arg) {
  walker_t w;
  uint64_t root;
  uint64_t half; /* size of one canonical half: 2^47 or 2^56 */
  uint64_t end;
  uint32_t prot = SR_PROT_W | SR_PROT_U;
  int rc;

  if (image == NULL || cb == NULL)
    return SR_EINVAL;
  if (hi != 0 && lo >= hi)
    return SR_EINVAL;
  if ((flags & ~(uint32_t)SR_REGIONS_MERGE_PAGED) != 0)
    return SR_EINVAL;
  rc = sr__walk_config(opts, &w.cfg);
  if (rc != 0)
    return rc;
  root = cr3 & SR__CR3_MASK;
  if ((root & ~w.cfg.phys_mask) != 0)
    return SR_EINVAL;
  rc = sr__image_locate(image, root, NULL, NULL);
  if (rc != 0)
    return rc;

  w.image = image;
  w.flags = flags;
  w.cb = cb;
  w.arg = arg;
  w.have = false;
  half = UINT64_C(1) << (SR__SHIFT(w.cfg.top_level) + 8);

  if (lo < half) {
    end = (hi != 0 && hi < half) ? hi : half;
    rc = walk_table(&w, root, w.cfg.top_level, lo, end, prot);
    if (rc != 0)
      return rc;
  }
  if (hi == 0 || hi > 0 - half) {
    rc = walk_table(&w, root, w.cfg.top_level, lo > 0 - half ? lo : 0 - half,
                    hi, prot);
    if (rc != 0)
      return rc;
  }
  return flush(&w);
}
