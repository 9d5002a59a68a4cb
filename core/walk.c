/* Paging-structure entry decoding, shared by sr_translate and sr_regions.
 *
 * This module defines once what an x86-64 entry found at a given level
 * means: a reference to the next table, a leaf (4K / 2M / 1G), a bad entry
 * (reserved bits set, PS where the SDM reserves it) or a non-present entry,
 * and, with SR_WALK_RESIDENT, a resident non-present entry that is followed
 * as if it were present (Linux PROT_NONE, Windows transition). It is pure:
 * it loads nothing and knows nothing of the image. It checks only what
 * Intel SDM vol. 3A section 4.5 makes a reserved-bit violation on a present
 * entry (bits maxphyaddr..51, PS in a PML5E/PML4E, bits 13..29 of a 1G
 * leaf, 13..20 of a 2M leaf); ignored bits (52..62, AVL) are never errors,
 * and EFER.NXE is assumed set so bit 63 is never reserved.
 */
#include <assert.h>
#include <string.h>

#include "pgtable.h"
#include "walk.h"

/* A resident non-present entry (SR_WALK_RESIDENT) as a TABLE or LEAF, or
 * NOTPRESENT. Linux PROT_NONE is a 4K leaf at level 1 and a 2M leaf at
 * level 2 (sr_pte_classify accepts it only with PS there); a Windows
 * transition entry is a 4K leaf at level 1 and a resident table above. */
static sr__entry_class_t decode_resident(const sr__walk_cfg_t* cfg,
                                         uint64_t entry, int level,
                                         uint64_t* addr, bool* resident) {
  sr_pte_info_t info;

  switch (sr_pte_classify(entry, level, cfg->os, &info)) {
    case SR_PTE_LINUX_PROTNONE:
      assert(level == 1 || level == 2);
      *addr = info.frame;
      *resident = true;
      return SR__ENTRY_LEAF;
    case SR_PTE_WIN_TRANSITION:
      *addr = info.frame;
      *resident = true;
      return level == 1 ? SR__ENTRY_LEAF : SR__ENTRY_TABLE;
    default:
      return SR__ENTRY_NOTPRESENT;
  }
}

/* Decodes `entry` found at `level` (1..5). *addr: GPA of the next table
 * (TABLE) or of the page (LEAF), 0 otherwise; *size: the bytes of VA the
 * entry covers at that level (the page size for a LEAF); *resident: the
 * entry was followed through SR_WALK_RESIDENT. Reserved bits are checked
 * on present entries only. */
sr__entry_class_t sr__entry_decode(const sr__walk_cfg_t* cfg, uint64_t entry,
                                   int level, uint64_t* addr, uint64_t* size,
                                   bool* resident) {
  sr__entry_class_t cls;
  uint64_t a = 0;
  bool res = false;

  assert(cfg != NULL);
  assert(level >= 1 && level <= 5);

  /* Two branches give BAD (reserved bits; PS at level >= 4): kept apart
   * because the reasons differ. */
  // NOLINTBEGIN(bugprone-branch-clone)
  if ((entry & SR__P) == 0) {
    cls = SR__ENTRY_NOTPRESENT;
    if ((cfg->flags & SR_WALK_RESIDENT) != 0 && entry != 0)
      cls = decode_resident(cfg, entry, level, &a, &res);
  } else if ((entry & cfg->rsvd_mask) != 0) {
    cls = SR__ENTRY_BAD;
  } else if (level == 1) {
    /* Bit 7 of a PTE is PAT, not PS. */
    cls = SR__ENTRY_LEAF;
    a = entry & cfg->phys_mask;
  } else if ((entry & SR__PS) == 0) {
    cls = SR__ENTRY_TABLE;
    a = entry & cfg->phys_mask;
  } else if (level >= 4) {
    cls = SR__ENTRY_BAD; /* no 512 GiB pages */
  } else if (level == 3) {
    cls = (entry & SR__RSVD_1G) != 0 ? SR__ENTRY_BAD : SR__ENTRY_LEAF;
    a = entry & cfg->phys_mask & ~(SR_PAGE_1G - 1);
  } else {
    cls = (entry & SR__RSVD_2M) != 0 ? SR__ENTRY_BAD : SR__ENTRY_LEAF;
    a = entry & cfg->phys_mask & ~(SR_PAGE_2M - 1);
  }
  // NOLINTEND(bugprone-branch-clone)

  if (cls == SR__ENTRY_BAD || cls == SR__ENTRY_NOTPRESENT)
    a = 0;
  if (addr != NULL)
    *addr = a;
  if (size != NULL)
    *size = UINT64_C(1) << SR__SHIFT(level);
  if (resident != NULL)
    *resident = res;
  return cls;
}

/* The protection bits of one entry as the hardware reads them (RW, US,
 * XD), whether or not the entry is present. */
uint32_t sr__entry_prot(uint64_t entry) {
  uint32_t prot = 0;

  if ((entry & SR__RW) != 0)
    prot |= SR_PROT_W;
  if ((entry & SR__US) != 0)
    prot |= SR_PROT_U;
  if ((entry & SR__NX) != 0)
    prot |= SR_PROT_NX;
  return prot;
}

int sr_entry_decode(uint64_t entry, int level, const sr_walk_opts_t* opts,
                    sr_entry_info_t* out) {
  sr__walk_cfg_t cfg;
  sr__entry_class_t cls;

  if (out == NULL)
    return SR_EINVAL;
  memset(out, 0, sizeof(*out));
  if (level < 1 || level > 5 || sr__walk_config(opts, &cfg) != 0 ||
      level > cfg.top_level)
    return SR_EINVAL;
  cls = sr__entry_decode(&cfg, entry, level, &out->addr, &out->size,
                         &out->resident);
  switch (cls) {
    case SR__ENTRY_TABLE: out->cls = SR_ENTRY_TABLE; break;
    case SR__ENTRY_LEAF: out->cls = SR_ENTRY_LEAF; break;
    case SR__ENTRY_NOTPRESENT: out->cls = SR_ENTRY_NOTPRESENT; break;
    default: out->cls = SR_ENTRY_BAD; break;
  }
  out->prot = sr__entry_prot(entry);
  return 0;
}
