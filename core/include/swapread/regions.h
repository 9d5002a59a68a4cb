/* swapread — region enumeration: coalesced VA runs of an address space.
 *
 * sr_regions walks the paging structures under a CR3 over [lo, hi) and
 * reports runs of contiguous VAs with the same state and protection,
 * skipping empty areas at the level where they are empty. Runs that are
 * mapped but not present (swapped out, transition, pagefile, ...) are
 * reported too, so a scan for "a RW run of at least N bytes" still finds a
 * region that is partly paged out.
 */
#ifndef SWAPREAD_REGIONS_H
#define SWAPREAD_REGIONS_H

#include "swapread/translate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sr_run_state_e {
  SR_RUN_PRESENT = 1, /* every page present */
  SR_RUN_PAGED = 2,   /* every page mapped but not present */
  SR_RUN_MIXED = 3    /* both (only with SR_REGIONS_MERGE_PAGED) */
} sr_run_state_t;

/* Option flags for sr_regions. */
enum {
  /* Merge paged runs with adjacent runs into one region (a paged page's
   * own protection is not known; it takes its neighbours'). */
  SR_REGIONS_MERGE_PAGED = 1u << 0
};

typedef struct sr_region_s {
  uint64_t lo, hi; /* [lo, hi) */
  uint32_t prot;   /* SR_PROT_*; for paged pages, upper levels' */
  sr_run_state_t state;
  uint64_t present_bytes; /* bytes of [lo, hi) that are present */
  uint32_t kinds;         /* bit (1u << sr_pte_kind_t) per kind seen */
  uint64_t page_sizes;    /* OR of the leaf sizes seen (SR_PAGE_*) */
} sr_region_t;

/* Called once per region in ascending order; return non-zero to stop (that
 * value is returned by sr_regions). */
typedef int (*sr_region_cb)(const sr_region_t* region, void* arg);

/* Sync. Enumerates [lo, hi) under cr3 (hi == 0 means the top of the address
 * space). Returns 0, the callback's non-zero value, or SR_EINVAL,
 * SR_EHOLE / SR_EBEYOND (root table unreadable). Bad or unreadable lower
 * entries are skipped, not reported as regions. */
SR_EXTERN int sr_regions(const sr_image_t* image, uint64_t cr3, uint64_t lo,
                         uint64_t hi, const sr_walk_opts_t* opts,
                         uint32_t flags, sr_region_cb cb, void* arg);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_REGIONS_H */
