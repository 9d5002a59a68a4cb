/* Restart detection: per-CR3 liveness records, root checks, probes.
 *
 * A record exists for every CR3 (masked root GPA; SR_CR3_KERNEL resolved)
 * with pending reads, and for every CR3 with a probe. When the first
 * pending read of a CR3 starts, the record takes a reference copy of the
 * root table's kernel half (entries 256..511: of the PML4 for 4-level
 * paging, of the PML5 for 5-level) with sr_image_read. Each check (every
 * restart_check_ticks ticks) reads the root page again: unreadable (hole,
 * beyond the end of the file), all zero while the reference was not, a
 * user half (entries 0..255) all zero while the reference's was not (what
 * a Linux process exit leaves: free_pgtables clears the user entries of
 * the PGD and frees the page, kernel half intact — found on a real guest),
 * or a kernel half different from the reference means the address space
 * is gone; otherwise the probe, if set, decides (GONE: gone; ALIVE, UNKNOWN:
 * keep waiting). A gone space's reads end with SR_EGONE through
 * sr_swap_cancel_cr3, exactly once each (the engine guarantees it). The
 * record goes with its last read (its reference with it), unless a probe
 * is set. Limits: a root freed and reused as another process's root keeps
 * the same kernel half (every process shares it), so only the probe can
 * catch that; a guest that legitimately changes top-level kernel entries
 * while a process lives (older Linux syncing vmalloc PGD entries lazily)
 * would be taken for a restart; the checks see the guest at tick times
 * only, so a root that is freed and rebuilt identically between two ticks
 * goes unnoticed. Lookups are linear in the number of records (CR3s with
 * pending reads or probes), meant to be small.
 */
#include <string.h>

#include "uv_internal.h"

#define HALF_BYTES ((SR__UV_PAGE / 8 - SR__UV_HALF) * 8)

uint64_t sr__uv_key(const sr_uv_t* h, uint64_t cr3) {
  if (cr3 == SR_CR3_KERNEL)
    return sr__uv_state(h)->kernel_cr3;
  return cr3 & SR__UV_CR3_MASK;
}

static sr__uv_space_t* find(sr_uv_t* h, uint64_t key) {
  sr__uv_state_t* st = sr__uv_state(h);
  size_t i;

  for (i = 0; i < h->nspaces_; i++)
    if (st->spaces[i].used && st->spaces[i].cr3 == key)
      return &st->spaces[i];
  return NULL;
}

/* A free slot for key (not yet referenced), or NULL (out of memory). */
static sr__uv_space_t* insert(sr_uv_t* h, uint64_t key) {
  sr__uv_state_t* st = sr__uv_state(h);
  sr__uv_space_t* sp = NULL;
  size_t i, cap;
  void* p;

  for (i = 0; i < h->nspaces_ && sp == NULL; i++)
    if (!st->spaces[i].used)
      sp = &st->spaces[i];
  if (sp == NULL) {
    if (h->nspaces_ == h->cap_spaces_) {
      cap = h->cap_spaces_ != 0 ? h->cap_spaces_ * 2 : 4;
      p = sr__uv_realloc(h, st->spaces, h->cap_spaces_ * sizeof(*sp),
                         cap * sizeof(*sp));
      if (p == NULL)
        return NULL;
      st->spaces = p;
      h->cap_spaces_ = cap;
    }
    sp = &st->spaces[h->nspaces_++];
  }
  memset(sp, 0, sizeof(*sp));
  sp->used = true;
  sp->cr3 = key;
  return sp;
}

/* Whether entries [0, n) of page hold anything. */
static bool entries_nonzero(const uint64_t* page, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (page[i] != 0)
      return true;
  return false;
}

static bool page_nonzero(const uint64_t* page) {
  return entries_nonzero(page, SR__UV_PAGE / 8);
}

/* Takes the reference copy of sp's root. */
static void take_reference(sr_uv_t* h, sr__uv_space_t* sp) {
  sr__uv_state_t* st = sr__uv_state(h);

  sp->ref_ok =
      sr_image_read(st->image, sp->cr3, st->page, SR__UV_PAGE, NULL) == 0;
  sp->ref_nonzero = sp->ref_ok && page_nonzero(st->page);
  sp->ref_user = sp->ref_ok && entries_nonzero(st->page, SR__UV_HALF);
  if (sp->ref_ok)
    /* HALF_BYTES is the constant 2048: nothing to overflow. */
    // NOLINTNEXTLINE(bugprone-implicit-widening-of-multiplication-result)
    memcpy(sp->kernel, &st->page[SR__UV_HALF], HALF_BYTES);
}

int sr__uv_space_acquire(sr_uv_t* h, uint64_t key) {
  sr__uv_space_t* sp = find(h, key);

  if (sp == NULL) {
    sp = insert(h, key);
    if (sp == NULL)
      return SR_ENOMEM;
  }
  if (sp->nreads++ == 0)
    take_reference(h, sp);
  return 0;
}

void sr__uv_space_release(sr_uv_t* h, uint64_t key) {
  sr__uv_space_t* sp = find(h, key);

  assert(sp != NULL && sp->nreads > 0);
  if (--sp->nreads == 0 && sp->probe == NULL)
    sp->used = false;
}

/* Whether the root of sp still looks like the address space it was. */
static bool root_alive(sr_uv_t* h, const sr__uv_space_t* sp) {
  sr__uv_state_t* st = sr__uv_state(h);

  if (!sp->ref_ok)
    return false;
  if (sr_image_read(st->image, sp->cr3, st->page, SR__UV_PAGE, NULL) != 0)
    return false; /* hole, or beyond the end of a shrunk file */
  if (sp->ref_nonzero && !page_nonzero(st->page))
    return false; /* zeroed (freed and cleared) */
  if (sp->ref_user && !entries_nonzero(st->page, SR__UV_HALF))
    return false; /* user half emptied: a Linux exit frees the user
                     tables and clears their entries, not the kernel half */
  /* HALF_BYTES is the constant 2048: nothing to overflow. */
  // NOLINTNEXTLINE(bugprone-implicit-widening-of-multiplication-result)
  return memcmp(sp->kernel, &st->page[SR__UV_HALF], HALF_BYTES) == 0;
}

/* Contract: may run callbacks (probes, and read callbacks through the
 * cancel), which may start and end reads, set probes, or close the
 * handle: records are looked up again by key after each of them, and the
 * scan stops once the handle is closing. Slots are reused, never moved
 * down, so an index scan sees every record that existed at its start. */
void sr__uv_check_spaces(sr_uv_t* h) {
  sr__uv_state_t* st = sr__uv_state(h);
  sr__uv_space_t* sp;
  sr_uv_probe_cb probe;
  uint64_t key;
  bool gone;
  size_t i;

  for (i = 0; i < h->nspaces_; i++) {
    if (h->flags_ & SR__UV_CLOSING)
      return;
    sp = &st->spaces[i];
    if (!sp->used || sp->nreads == 0)
      continue;
    key = sp->cr3;
    h->restart_checks_++;
    gone = !root_alive(h, sp);
    if (!gone && sp->probe != NULL) {
      probe = sp->probe;
      gone = probe(h, key, sp->probe_arg) == SR_UV_GONE;
      if (h->flags_ & SR__UV_CLOSING)
        return;
    }
    if (!gone)
      continue;
    h->spaces_gone_++;
    sr_swap_cancel_cr3(h->swap, key, SR_EGONE);
    /* Reads its callbacks started are for whatever lives there now. */
    sp = find(h, key);
    if (sp != NULL && sp->nreads > 0)
      take_reference(h, sp);
  }
}

void sr__uv_spaces_free(sr_uv_t* h) {
  sr__uv_state_t* st = sr__uv_state(h);

  sr__uv_free(h, st->spaces, h->cap_spaces_ * sizeof(*st->spaces));
  st->spaces = NULL;
  h->nspaces_ = 0;
  h->cap_spaces_ = 0;
}

int sr_uv_set_probe(sr_uv_t* handle, uint64_t cr3, sr_uv_probe_cb cb,
                    void* arg) {
  sr__uv_space_t* sp;
  uint64_t key;

  if (handle == NULL || handle->swap == NULL ||
      (handle->flags_ & SR__UV_CLOSING))
    return SR_EINVAL;
  if (cr3 == SR_CR3_KERNEL && sr__uv_state(handle)->kernel_cr3 == 0)
    return SR_EINVAL;
  key = sr__uv_key(handle, cr3);
  sp = find(handle, key);
  if (cb == NULL) {
    if (sp != NULL) {
      sp->probe = NULL;
      sp->probe_arg = NULL;
      if (sp->nreads == 0)
        sp->used = false;
    }
    return 0;
  }
  if (sp == NULL) {
    sp = insert(handle, key);
    if (sp == NULL)
      return SR_ENOMEM;
  }
  sp->probe = cb;
  sp->probe_arg = arg;
  return 0;
}

int sr_uv_cancel_cr3(sr_uv_t* handle, uint64_t cr3) {
  int rc;

  if (handle == NULL || handle->swap == NULL)
    return SR_EINVAL;
  rc = sr_swap_cancel_cr3(handle->swap, cr3, SR_EGONE);
  sr__uv_settle(handle);
  return rc;
}
