/* One paging-structure entry, decoded. Private to core/.
 *
 * sr_translate (one address) and sr_regions (a whole range) walk the same
 * tables; both decode entries here so that "what is a leaf, a table, a bad
 * entry, a resident non-present page" is defined once.
 */
#ifndef SR_WALK_H
#define SR_WALK_H

#include "swapread/translate.h"

typedef struct sr__walk_cfg_s {
  int top_level;      /* 4 or 5 */
  uint64_t phys_mask; /* SR__PHYS_MASK(maxphyaddr) */
  uint64_t rsvd_mask; /* bits 51..maxphyaddr: reserved at every level */
  sr_os_t os;
  uint32_t flags; /* SR_WALK_* */
} sr__walk_cfg_t;

typedef enum sr__entry_class_e {
  SR__ENTRY_TABLE,      /* *addr: GPA of the next table */
  SR__ENTRY_LEAF,       /* *addr: GPA of the page, *size its size */
  SR__ENTRY_NOTPRESENT, /* not present (and not followed as resident) */
  SR__ENTRY_BAD         /* reserved bits, PS where not allowed, ... */
} sr__entry_class_t;

/* Validates opts (NULL: defaults) into *cfg: 0 or SR_EINVAL. */
int sr__walk_config(const sr_walk_opts_t* opts, sr__walk_cfg_t* cfg);

/* Decodes `entry` found at `level` (1..5). With SR_WALK_RESIDENT, a
 * resident non-present entry is a LEAF or TABLE with *resident = true.
 * addr, size and resident may be NULL. Pure. */
sr__entry_class_t sr__entry_decode(const sr__walk_cfg_t* cfg, uint64_t entry,
                                   int level, uint64_t* addr, uint64_t* size,
                                   bool* resident);

/* SR_PROT_W / SR_PROT_U / SR_PROT_NX of this one entry. Accumulate from
 * SR_PROT_W | SR_PROT_U downwards with sr__prot_accumulate. */
uint32_t sr__entry_prot(uint64_t entry);
static inline uint32_t sr__prot_accumulate(uint32_t acc, uint32_t entry) {
  return (acc & entry & (SR_PROT_W | SR_PROT_U)) | ((acc | entry) & SR_PROT_NX);
}

#endif /* SR_WALK_H */
