/* The kit's encoder of non-present entries. sr_kit_encode is the exact inverse
 * of sr_pte_classify for every kind it accepts (Linux x86-64 swap / PROT_NONE
 * as in v6.1's pgtable_64.h and pgtable-invert.h; Windows x64 MMPTE prototype,
 * transition and software/pagefile layouts); a value that would not read
 * back as the same kind and fields is refused with SR_EINVAL. It does not
 * model Windows' L1TF invalid-PTE mask (SwizzleBit).
 */
#include "swapread/kit.h"

#include "pgtable.h"

#define ENC_ADDR_4K UINT64_C(0x000ffffffffff000)
#define ENC_ADDR_2M UINT64_C(0x000fffffffe00000)
#define ENC_WIN_PROTOTYPE (UINT64_C(1) << 10)
#define ENC_WIN_TRANSITION (UINT64_C(1) << 11)
#define ENC_WIN_PROT_RW (UINT64_C(4) << 5) /* Protection = MM_READWRITE */

static int encode_linux_swap(const sr_pte_info_t* info, int level,
                             uint64_t* entry) {
  uint64_t e;
  if (level > 2 || info->swap_type >= 32 ||
      info->swap_offset >= (UINT64_C(1) << 50))
    return SR_EINVAL;
  e = ((~info->swap_offset) << 14 >> 5) | ((uint64_t)info->swap_type << 59);
  if (e == 0) /* type 0, offset 2^50 - 1 would read back as NONE */
    return SR_EINVAL;
  *entry = e;
  return 0;
}

static int encode_linux_protnone(const sr_pte_info_t* info, int level,
                                 uint64_t* entry) {
  uint64_t mask = level == 1 ? ENC_ADDR_4K : ENC_ADDR_2M;
  if (level > 2 || (info->frame & ~mask) != 0)
    return SR_EINVAL;
  *entry = ((~info->frame) & mask) | SR__A | SR__G | (level == 2 ? SR__PS : 0);
  return 0;
}

static int encode_win_prototype(const sr_pte_info_t* info, uint64_t* entry) {
  uint64_t a = info->proto_addr;
  if ((uint64_t)((int64_t)(a << 16) >> 16) != a)
    return SR_EINVAL;
  *entry = (a << 16) | ENC_WIN_PROTOTYPE;
  return 0;
}

static int encode_win_transition(const sr_pte_info_t* info, uint64_t* entry) {
  if ((info->frame & ~ENC_ADDR_4K) != 0)
    return SR_EINVAL;
  *entry = info->frame | ENC_WIN_TRANSITION | ENC_WIN_PROT_RW;
  return 0;
}

static int encode_win_pagefile(const sr_pte_info_t* info, uint64_t* entry) {
  if (info->swap_type >= 16 || info->swap_offset == 0 ||
      info->swap_offset >= (UINT64_C(1) << 32))
    return SR_EINVAL;
  *entry = (info->swap_offset << 32) | ((uint64_t)info->swap_type << 12) |
           ENC_WIN_PROT_RW;
  return 0;
}

int sr_kit_encode(const sr_pte_info_t* info, int level, uint64_t* entry) {
  if (info == NULL || entry == NULL || level < 1 || level > 5)
    return SR_EINVAL;
  switch (info->kind) {
    case SR_PTE_NONE:
      *entry = 0;
      return 0;
    case SR_PTE_LINUX_SWAP:
      return encode_linux_swap(info, level, entry);
    case SR_PTE_LINUX_PROTNONE:
      return encode_linux_protnone(info, level, entry);
    case SR_PTE_WIN_PROTOTYPE:
      return encode_win_prototype(info, entry);
    case SR_PTE_WIN_TRANSITION:
      return encode_win_transition(info, entry);
    case SR_PTE_WIN_PAGEFILE:
      return encode_win_pagefile(info, entry);
    case SR_PTE_PRESENT:
    case SR_PTE_UNKNOWN:
    default:
      return SR_EINVAL;
  }
}
