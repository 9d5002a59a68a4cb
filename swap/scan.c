/* Phase 1 of sr_swap_poll, the scan: re-read the watched entries and queue
 * the records whose entry changed.
 *
 * The live records' entry GPAs and last values sit in dense parallel
 * arrays in scan order (swap->sgpa, swap->sval). Records are appended as
 * chunks are filed, so the records of one table's consecutive entries
 * mostly lie at consecutive positions with GPAs 8 bytes apart: a *run*.
 * The scan compares a run with one sr_image_cmp (a memcmp of the table
 * bytes against the last values, 16 bytes of traffic per entry and no
 * per-entry instructions), and looks for the differing entries only in a
 * run that differs. Whatever is not in a run goes through
 * sr_image_diff64 in batches (one load and compare per entry). The runs
 * are found again by one pass over sgpa when the dense arrays changed
 * (a record created or deleted) and a round of the scan begins (the poll
 * scans every record, or its cursor is back at the first); in the middle
 * of a budgeted round, stale runs are not used, so a poll's cost stays
 * proportional to its budget. Memory for the runs is optional: if it
 * cannot be had, the scan runs without them. Both compares treat an
 * entry that cannot be loaded as changed. Limits: assumes a little-endian
 * host, as the rest of the library (x86-64 images read on x86-64).
 */
#include "internal.h"

#define SCAN_BATCH 256 /* entries compared per sr_image_diff64 call */
#define RUN_MIN 16     /* shortest run worth a memcmp of its own */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "a run's last values are compared byte for byte");

/* Queues the record at dense position pos, which the scan found changed,
 * unreadable or forced, on the changed list of its level: re-reads the
 * entry (the scan keeps no values), records the new value, and flags it
 * MOVED when the records under it must be re-walked too. A parent that
 * only gained A/D bits is just updated. */
static void queue(sr_swap_t* swap, uint32_t pos, uint32_t* heads) {
  uint32_t rid = swap->live[pos];
  sr__rec_t* r = &swap->rec[rid];
  uint64_t value;

  if (r->flags & SR__REC_QUEUED)
    return;
  if (sr_image_read(swap->image, swap->sgpa[pos], &value, sizeof(value),
                    NULL) == 0) {
    if (value == swap->sval[pos] && !(r->flags & SR__REC_FORCE))
      return; /* changed back since the scan's load */
    if (sr__entry_moved(swap->sval[pos], value))
      r->flags |= SR__REC_MOVED;
    swap->sval[pos] = value;
    if (r->whead == SR__NIL && !(r->flags & (SR__REC_FORCE | SR__REC_MOVED)))
      return; /* a parent that only gained A/D bits */
  } else {
    r->flags |= SR__REC_MOVED; /* unreadable: the re-walks say why */
  }
  r->flags |= SR__REC_QUEUED;
  r->cnext = heads[r->level - 1];
  heads[r->level - 1] = rid;
}

/* Finds the runs of at least RUN_MIN positions again; false if there is
 * no memory for them (the scan then does without). */
static bool runs_rebuild(sr_swap_t* swap) {
  uint32_t n = swap->nlive_rec, i, start, nruns = 0;
  const uint64_t* g = swap->sgpa;

  for (start = 0; start < n; start = i) {
    for (i = start + 1; i < n && g[i] == g[i - 1] + 8; i++)
      ;
    if (i - start < RUN_MIN)
      continue;
    if (sr__array_grow(swap, (void**)&swap->runs, &swap->runs_cap, nruns + 1,
                       sizeof(*swap->runs)) != 0)
      return false;
    swap->runs[nruns].pos = start;
    swap->runs[nruns].n = i - start;
    nruns++;
  }
  swap->nruns = nruns;
  swap->runs_valid = true;
  return true;
}

/* Index of the first run that ends after pos (nruns if none). */
static uint32_t run_after(const sr_swap_t* swap, uint32_t pos) {
  uint32_t lo = 0, hi = swap->nruns, mid;

  while (lo < hi) {
    mid = lo + (hi - lo) / 2;
    if (swap->runs[mid].pos + swap->runs[mid].n <= pos)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Entry by entry: [pos, pos + m) through sr_image_diff64. */
static void scan_each(sr_swap_t* swap, uint32_t pos, uint32_t m,
                      uint32_t* heads) {
  size_t diff[SCAN_BATCH], nd, j;
  uint32_t b;

  for (; m > 0; pos += b, m -= b) {
    b = m < SCAN_BATCH ? m : SCAN_BATCH;
    nd = 0;
    (void)sr_image_diff64(swap->image, &swap->sgpa[pos], &swap->sval[pos], b,
                          diff, &nd);
    for (j = 0; j < nd; j++)
      queue(swap, pos + (uint32_t)diff[j], heads);
  }
}

/* [pos, pos + m): with runs, a run's part in one memcmp. */
static void scan_range(sr_swap_t* swap, bool runs, uint32_t pos, uint32_t m,
                       uint32_t* heads) {
  uint32_t r = runs ? run_after(swap, pos) : swap->nruns, end = pos + m;
  uint32_t lo, hi;

  while (pos < end) {
    if (!runs || r >= swap->nruns || swap->runs[r].pos >= end) {
      scan_each(swap, pos, end - pos, heads);
      return;
    }
    lo = swap->runs[r].pos > pos ? swap->runs[r].pos : pos;
    hi = swap->runs[r].pos + swap->runs[r].n;
    if (hi > end)
      hi = end;
    if (lo > pos)
      scan_each(swap, pos, lo - pos, heads);
    if (sr_image_cmp(swap->image, swap->sgpa[lo], &swap->sval[lo],
                     (size_t)(hi - lo) * sizeof(uint64_t)) != 0)
      scan_each(swap, lo, hi - lo, heads);
    pos = hi;
    r++;
  }
}

uint32_t sr__scan(sr_swap_t* swap, uint32_t* heads) {
  uint32_t n = swap->nlive_rec, budget = swap->opts.poll_budget;
  uint32_t k, m, pos, j;
  bool runs;

  if (budget == 0 || budget > n)
    budget = n;
  if (swap->cursor >= n)
    swap->cursor = 0;
  /* rebuilt at most once per round of the scan: O(budget) per poll */
  runs = swap->runs_valid ||
         ((budget == n || swap->cursor == 0) && n > 0 && runs_rebuild(swap));
  for (k = 0; k < budget; k += m) {
    pos = swap->cursor;
    m = budget - k;
    if (m > n - pos)
      m = n - pos;
    scan_range(swap, runs, pos, m, heads);
    if (swap->nforced > 0) {
      for (j = 0; j < m; j++)
        if (swap->rec[swap->live[pos + j]].flags & SR__REC_FORCE)
          queue(swap, pos + j, heads);
    }
    swap->cursor = pos + m == n ? 0 : pos + m;
  }
  return budget;
}
