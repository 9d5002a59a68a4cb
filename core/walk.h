/* One paging-structure entry, decoded. Private to core/.
 *
 * sr_translate (one address) and sr_regions (a whole range) walk the same
 * tables; both decode entries here so that "what is a leaf, a table, a bad
 * entry, a resident non-present page" is defined once.
 */
#ifndef SR_WALK_H
#define SR_WALK_H

#include <assert.h>

#include "pgtable.h"
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

/* Validates opts (NULL: 4-level, Linux, no flags, MAXPHYADDR 52) into
 * *cfg. Returns 0, or SR_EINVAL for an unknown paging mode, OS or flag,
 * or a maxphyaddr that is neither 0 nor in 36..52. Inline: the reads call
 * it once per call, and with opts NULL it folds to constants. */
static inline int sr__walk_config(const sr_walk_opts_t* opts,
                                  sr__walk_cfg_t* cfg) {
  unsigned maxphy;

  assert(cfg != NULL);
  if (opts == NULL) {
    cfg->top_level = 4;
    cfg->phys_mask = SR__PHYS_MASK(52);
    cfg->rsvd_mask = 0;
    cfg->os = SR_OS_LINUX;
    cfg->flags = 0;
    return 0;
  }
  if (opts->paging != SR_PAGING_4LEVEL && opts->paging != SR_PAGING_5LEVEL)
    return SR_EINVAL;
  if (opts->os != SR_OS_LINUX && opts->os != SR_OS_WINDOWS)
    return SR_EINVAL;
  if ((opts->flags & ~(uint32_t)SR_WALK_RESIDENT) != 0)
    return SR_EINVAL;
  maxphy = opts->maxphyaddr == 0 ? 52 : opts->maxphyaddr;
  if (maxphy < 36 || maxphy > 52)
    return SR_EINVAL;

  cfg->top_level = opts->paging == SR_PAGING_5LEVEL ? 5 : 4;
  cfg->phys_mask = SR__PHYS_MASK(maxphy);
  /* Bits maxphy..51: the architectural address field minus what this CPU
   * implements. Zero when maxphy == 52. */
  cfg->rsvd_mask = SR__ADDR_MASK & ~cfg->phys_mask;
  cfg->os = opts->os;
  cfg->flags = opts->flags;
  return 0;
}

/* Whether gva is canonical for a walk from top_level (4: 48 bits, 5: 57):
 * bits 63..bits-1 all equal. */
static inline bool sr__gva_canonical(uint64_t gva, int top_level) {
  unsigned bits = top_level == 5 ? 57 : 48;

  return (uint64_t)((int64_t)(gva << (64 - bits)) >> (64 - bits)) == gva;
}

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
