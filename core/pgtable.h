/* x86-64 paging-structure entry bits, defined once (Intel SDM vol. 3A,
 * 4.5 "4-level paging and 5-level paging"; names after Linux's
 * arch/x86/include/asm/pgtable_types.h). Private to swapread.
 */
#ifndef SR_PGTABLE_H
#define SR_PGTABLE_H

#include <stdint.h>

#define SR__BIT_P 0          /* present */
#define SR__BIT_RW 1         /* writable */
#define SR__BIT_US 2         /* user-accessible */
#define SR__BIT_PWT 3        /* page write-through */
#define SR__BIT_PCD 4        /* page cache disable */
#define SR__BIT_A 5          /* accessed */
#define SR__BIT_D 6          /* dirty (leaf only) */
#define SR__BIT_PS 7         /* page size: leaf at PDPT/PD (PAT at PT level) */
#define SR__BIT_G 8          /* global (leaf); Linux: PROTNONE when !P */
#define SR__BIT_PAT_LARGE 12 /* PAT bit of a 2M/1G leaf */
#define SR__BIT_NX 63        /* execute disable */

#define SR__P (UINT64_C(1) << SR__BIT_P)
#define SR__RW (UINT64_C(1) << SR__BIT_RW)
#define SR__US (UINT64_C(1) << SR__BIT_US)
#define SR__A (UINT64_C(1) << SR__BIT_A)
#define SR__D (UINT64_C(1) << SR__BIT_D)
#define SR__PS (UINT64_C(1) << SR__BIT_PS)
#define SR__G (UINT64_C(1) << SR__BIT_G)
#define SR__NX (UINT64_C(1) << SR__BIT_NX)

/* Physical-address field of an entry: bits 12..MAXPHYADDR-1. */
#define SR__PHYS_MASK(maxphy)                                          \
  (((maxphy) >= 64 ? ~UINT64_C(0) : ((UINT64_C(1) << (maxphy)) - 1)) & \
   ~UINT64_C(0xfff))
/* Entry address bits for a table or 4K leaf (52-bit architectural max). */
#define SR__ADDR_MASK UINT64_C(0x000ffffffffff000)
#define SR__CR3_MASK SR__ADDR_MASK
/* Reserved bits of a large leaf (below its frame, above PAT at bit 12):
 * bits 13..29 of a 1G leaf, bits 13..20 of a 2M leaf. */
#define SR__RSVD_1G UINT64_C(0x000000003fffe000)
#define SR__RSVD_2M UINT64_C(0x00000000001fe000)

/* VA bits consumed per level: index = (va >> SR__SHIFT(level)) & 511. */
#define SR__SHIFT(level) (12 + 9 * ((level)-1))
#define SR__INDEX(va, level) (((va) >> SR__SHIFT(level)) & 511)
#define SR__ENTRIES 512

#endif /* SR_PGTABLE_H */
