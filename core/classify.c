/* Classification of non-present paging-structure entries.
 *
 * When the present bit of an entry is clear the hardware ignores bits
 * 1..63, and the guest OS keeps its own record there: where the page went
 * (a Linux swap entry, a Windows pagefile slot or prototype PTE) or that it
 * is still resident (Linux PROT_NONE, Windows transition). This module
 * decodes those records exactly as Linux x86-64 (v6.1 pgtable_64.h,
 * pgtable-invert.h) and Windows x64 (1803+ MMPTE_SOFTWARE / _TRANSITION /
 * _PROTOTYPE) write them; the holey-image kit encodes the same layouts.
 * Limits: the caller must say which OS wrote the entry (nothing in an entry
 * says so); Windows' L1TF "swizzle" (the invalid-PTE mask applied to
 * non-present entries on mitigated kernels) is not undone; Linux 32-bit
 * and non-x86 encodings are not handled. Pure functions, no state.
 */
#include <string.h>

#include "pgtable.h"
#include "swapread/translate.h"

/* Linux: swap type in bits 59..63, ~offset in bits 9..58 (pgtable_64.h:
 * SWP_TYPE_BITS 5, SWP_OFFSET_FIRST_BIT _PAGE_BIT_PROTNONE + 1). */
#define LNX_SWP_TYPE_SHIFT 59
#define LNX_SWP_OFFSET_SHIFT 9
/* PFN field of a 2M entry (pgtable-invert.h inverts PMD_PAGE_MASK bits). */
#define LNX_PMD_ADDR_MASK UINT64_C(0x000fffffffe00000)

/* Windows x64 (MMPTE_*): Prototype bit 10, Transition bit 11, PageFileLow
 * bits 12..15, PageFileHigh bits 32..63, ProtoAddress bits 16..63. */
#define WIN_BIT_PROTOTYPE 10
#define WIN_BIT_TRANSITION 11
#define WIN_PAGEFILE_LOW_SHIFT 12
#define WIN_PROTO_ADDR_SHIFT 16

static sr_pte_kind_t classify_linux(uint64_t entry, int level,
                                    sr_pte_info_t* info) {
  if ((entry & SR__G) != 0) {
    /* _PAGE_PROTNONE (== _PAGE_GLOBAL when !P): the PFN is inverted. */
    if (level == 1) {
      info->frame = ~entry & SR__ADDR_MASK;
    } else if (level == 2 && (entry & SR__PS) != 0) {
      info->frame = ~entry & LNX_PMD_ADDR_MASK;
    } else {
      return SR_PTE_UNKNOWN;
    }
    info->resident = true;
    return SR_PTE_LINUX_PROTNONE;
  }
  if ((entry & SR__PS) != 0 || (level != 1 && level != 2))
    return SR_PTE_UNKNOWN;
  /* __swp_type(x) = x >> (64 - SWP_TYPE_BITS);
   * __swp_offset(x) = ~x << SWP_TYPE_BITS >> SWP_OFFSET_SHIFT, with
   * SWP_OFFSET_SHIFT = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS = 14. */
  info->swap_type = (uint32_t)(entry >> LNX_SWP_TYPE_SHIFT);
  info->swap_offset = (~entry << 5) >> (LNX_SWP_OFFSET_SHIFT + 5);
  return SR_PTE_LINUX_SWAP;
}

static sr_pte_kind_t classify_windows(uint64_t entry, sr_pte_info_t* info) {
  if ((entry & (UINT64_C(1) << WIN_BIT_PROTOTYPE)) != 0) {
    /* MMPTE_PROTOTYPE.ProtoAddress: a signed 48-bit kernel VA. */
    info->proto_addr = (uint64_t)((int64_t)entry >> WIN_PROTO_ADDR_SHIFT);
    return SR_PTE_WIN_PROTOTYPE;
  }
  if ((entry & (UINT64_C(1) << WIN_BIT_TRANSITION)) != 0) {
    info->frame = entry & SR__ADDR_MASK; /* MMPTE_TRANSITION.PageFrameNumber */
    info->resident = true;
    return SR_PTE_WIN_TRANSITION;
  }
  /* MMPTE_SOFTWARE: no pagefile offset means demand-zero / no backing. */
  if ((entry >> 32) == 0)
    return SR_PTE_NONE;
  info->swap_type = (uint32_t)(entry >> WIN_PAGEFILE_LOW_SHIFT) & 0xf;
  info->swap_offset = entry >> 32;
  return SR_PTE_WIN_PAGEFILE;
}

/* Classifies `entry` found at `level` as `os` encodes a non-present entry.
 * info (may be NULL) is zeroed, then gets the kind and its fields. An
 * unknown os or level yields SR_PTE_UNKNOWN for a non-zero non-present
 * entry. */
sr_pte_kind_t sr_pte_classify(uint64_t entry, int level, sr_os_t os,
                              sr_pte_info_t* info) {
  sr_pte_info_t scratch;
  sr_pte_kind_t kind;

  if (info == NULL)
    info = &scratch;
  memset(info, 0, sizeof(*info));
  if ((entry & SR__P) != 0)
    kind = SR_PTE_PRESENT;
  else if (entry == 0)
    kind = SR_PTE_NONE;
  else if (level < 1 || level > 5)
    /* Same outcome as an unknown OS, kept apart for the reader. */
    // NOLINTNEXTLINE(bugprone-branch-clone)
    kind = SR_PTE_UNKNOWN;
  else if (os == SR_OS_LINUX)
    kind = classify_linux(entry, level, info);
  else if (os == SR_OS_WINDOWS)
    kind = classify_windows(entry, info);
  else
    kind = SR_PTE_UNKNOWN;
  info->kind = kind;
  return kind;
}

const char* sr_pte_kind_name(sr_pte_kind_t kind) {
  switch (kind) {
    case SR_PTE_PRESENT:
      return "present";
    case SR_PTE_NONE:
      return "none";
    case SR_PTE_LINUX_SWAP:
      return "linux-swap";
    case SR_PTE_LINUX_PROTNONE:
      return "linux-protnone";
    case SR_PTE_WIN_TRANSITION:
      return "win-transition";
    case SR_PTE_WIN_PROTOTYPE:
      return "win-prototype";
    case SR_PTE_WIN_PAGEFILE:
      return "win-pagefile";
    case SR_PTE_UNKNOWN:
    default:
      return "unknown";
  }
}
