/* Physical layouts: validation of explicit segment lists and the QEMU
 * presets. A layout is a sorted list of segments {gpa, len, file_off}; this
 * module only checks and computes such lists, it never touches a file. The
 * presets reproduce the below/above-4G RAM split of QEMU's x86 machines as of
 * QEMU 8.1 (hw/i386/pc_piix.c pc_init1 for `pc`, hw/i386/pc_q35.c
 * pc_q35_init for `q35`); RAM above 4 GiB follows the low RAM in the RAM
 * file (pc_memory_init aliases ram-above-4g at offset below_4g_mem_size).
 * Limits: older machine types (pc-1.7 and before, without gigabyte_align)
 * and Xen's own split are not modelled; hot-plugged DIMMs are not part of
 * the RAM file.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "image_internal.h"
#include "swapread/image.h"

#define GIB (UINT64_C(1) << 30)
#define FOUR_GIB (UINT64_C(4) << 30)

/* pc_init1: traditional split at 3.5 GiB (default max-ram-below-4g). */
#define PC_DEFAULT_BELOW_4G UINT64_C(0xe0000000)
/* pc_init1: gigabyte_align moves a needed split down to 3 GiB. */
#define PC_GIGABYTE_SPLIT UINT64_C(0xc0000000)
/* pc_q35_init: RAM of at least 2.75 GiB is split at 2 GiB. */
#define Q35_SMALL_LOWMEM UINT64_C(0xb0000000)
#define Q35_LARGE_LOWMEM UINT64_C(0x80000000)

int sr__layout_check(const sr_segment_t* seg, size_t nseg, uint64_t file_size) {
  size_t i;

  assert(seg != NULL || nseg == 0);
  for (i = 0; i < nseg; i++) {
    const sr_segment_t* s = &seg[i];

    if (s->len == 0)
      return SR_EBADLAYOUT;
    /* Last byte gpa + len - 1 must not wrap (ending at 2^64 is fine). */
    if (s->len - 1 > UINT64_MAX - s->gpa)
      return SR_EBADLAYOUT;
    if (file_size != UINT64_MAX &&
        (s->file_off > file_size || s->len > file_size - s->file_off))
      return SR_EBADLAYOUT;
    if (i > 0) {
      const sr_segment_t* p = &seg[i - 1];
      /* Sorted and disjoint: p ends (last byte) before s starts. */
      if (s->gpa <= p->gpa || p->gpa + (p->len - 1) >= s->gpa)
        return SR_EBADLAYOUT;
    }
  }
  return 0;
}

/* QEMU's split of ram_size into below and above 4 GiB (see the file
 * comment for the sources). below_4g is max-ram-below-4g (0: default). */
int sr_layout_preset(sr_layout_kind_t kind, uint64_t ram_size,
                     uint64_t below_4g, sr_segment_t seg[2], size_t* nseg) {
  uint64_t lowmem;
  uint64_t below;
  uint64_t above;

  if (seg == NULL || nseg == NULL || ram_size == 0 || below_4g > FOUR_GIB)
    return SR_EINVAL;

  if (kind == SR_LAYOUT_PC) {
    /* pc_init1: lowmem = max_ram_below_4g (default 3.5G); if the RAM does
     * not fit below it, gigabyte_align caps lowmem at 3G. */
    uint64_t max_below = below_4g != 0 ? below_4g : PC_DEFAULT_BELOW_4G;
    lowmem = max_below;
    if (ram_size >= max_below && lowmem > PC_GIGABYTE_SPLIT)
      lowmem = PC_GIGABYTE_SPLIT;
  } else if (kind == SR_LAYOUT_Q35) {
    /* pc_q35_init: 2.75G below unless RAM >= 2.75G (then 2G), capped at
     * max_ram_below_4g (default 4G). */
    uint64_t max_below = below_4g != 0 ? below_4g : FOUR_GIB;
    lowmem = ram_size >= Q35_SMALL_LOWMEM ? Q35_LARGE_LOWMEM : Q35_SMALL_LOWMEM;
    if (lowmem > max_below)
      lowmem = max_below;
  } else {
    return SR_EINVAL;
  }

  if (ram_size >= lowmem) {
    below = lowmem;
    above = ram_size - lowmem;
  } else {
    below = ram_size;
    above = 0;
  }
  if (above > UINT64_MAX - FOUR_GIB + 1)
    return SR_EINVAL; /* [4G, 4G + above) would wrap */

  seg[0].gpa = 0;
  seg[0].len = below;
  seg[0].file_off = 0;
  *nseg = 1;
  if (above != 0) {
    seg[1].gpa = FOUR_GIB;
    seg[1].len = above;
    seg[1].file_off = below;
    *nseg = 2;
  }
  return 0;
}
