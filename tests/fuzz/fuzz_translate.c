/* Fuzz target (b): translation, classification and regions over arbitrary
 * page-table bytes.
 *
 * Input: a 64-byte header (paging mode, OS, walk flags, MAXPHYADDR, CR3,
 * four VAs, a range [lo, hi) for sr_regions, layout choice) followed by up
 * to 64 KiB of guest "RAM" (raw layout from GPA 0; optionally with a hole
 * at [0x2000, 0x4000) or with a file shorter than the layout, so tables can
 * lie in holes or beyond the file). Checks, all against models written
 * here from the spec (docs/api/core.md "Walk rules" and the classification
 * table), never against the library's own output:
 *  - sr_translate on each VA: a reference walker predicts status,
 *    stop_level, gpa, page_size, prot, resident, the entries read and where
 *    a failed walk stopped; on 0 the page offset of gva is kept;
 *  - sr_pte_classify on the RAM's 8-byte words at every level and both
 *    OSes: kind and fields as the table says; encodable kinds round-trip
 *    through sr_kit_encode;
 *  - sr_regions over [lo, hi) with and without SR_REGIONS_MERGE_PAGED:
 *    ascending, non-overlapping, inside [lo, hi), canonical, state matches
 *    present_bytes, the merged list covers the same bytes with the same
 *    present bytes, and each fuzzed VA in range is covered as its
 *    translation says (present / paged / not at all).
 * Work per input is bounded: at most 64 KiB of RAM and a regions range of
 * at most 256 MiB (65536 PTEs), or 2048 regions.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swapread/kit.h>
#include <swapread/regions.h>
#include <swapread/translate.h>

#include "fuzz_common.h"

#define HDR 64
#define MAX_RAM (64u * 1024)
#define MAX_SPAN (UINT64_C(1) << 28)
#define MAX_REGIONS 2048
#define NVA 4
#define BEYOND_LOW (UINT64_C(1) << 20)
#define HOLE_LO UINT64_C(0x2000)
#define HOLE_HI UINT64_C(0x4000)

#define E_P UINT64_C(0x1)
#define E_RW UINT64_C(0x2)
#define E_US UINT64_C(0x4)
#define E_PS UINT64_C(0x80)
#define E_G UINT64_C(0x100)
#define E_NX (UINT64_C(1) << 63)
#define ADDR_MASK UINT64_C(0x000ffffffffff000)

enum { LAYOUT_RAW, LAYOUT_BEYOND, LAYOUT_HOLE };

typedef struct ram_s {
  const uint8_t* bytes;
  uint64_t size; /* multiple of 8 */
  int layout;
} ram_t;

typedef struct ref_s {
  int status;
  int top_level, stop_level;
  uint64_t gpa, page_size;
  uint32_t prot;
  bool resident;
  uint64_t entry[5], entry_gpa[5];
  uint64_t fail_entry, fail_entry_gpa;
  bool vague; /* a resident frame beyond MAXPHYADDR: not pinned down */
} ref_t;

typedef struct regs_s {
  sr_region_t r[MAX_REGIONS];
  size_t n;
} regs_t;

static uint8_t ram_buf[MAX_RAM + 8];
static int trace = -1; /* FUZZ_TRACE=1 prints every translation */
static regs_t regs_plain, regs_merged;

/* Outcome of loading the 8-byte entry at gpa (aligned) from the model. */
static int ram_load(const ram_t* m, uint64_t gpa, uint64_t* v) {
  bool in_file = gpa < m->size;

  if (m->layout == LAYOUT_HOLE && gpa >= HOLE_LO && gpa < HOLE_HI)
    return SR_EHOLE;
  if (!in_file) {
    if (m->layout == LAYOUT_BEYOND && gpa < BEYOND_LOW)
      return SR_EBEYOND;
    return SR_EHOLE;
  }
  memcpy(v, m->bytes + gpa, 8);
  return 0;
}

/* docs/api/core.md, "Classification of non-present entries". */
static sr_pte_kind_t model_classify(uint64_t e, int level, int os,
                                    sr_pte_info_t* info) {
  memset(info, 0, sizeof(*info));
  if (e & E_P)
    info->kind = SR_PTE_PRESENT;
  else if (e == 0)
    info->kind = SR_PTE_NONE;
  else if (level < 1 || level > 5 || (os != SR_OS_LINUX && os != SR_OS_WINDOWS))
    info->kind = SR_PTE_UNKNOWN;
  else if (os == SR_OS_LINUX) {
    if ((e & E_G) && level == 1) {
      info->kind = SR_PTE_LINUX_PROTNONE;
      info->resident = true;
      info->frame = ~e & UINT64_C(0x000ffffffffff000);
    } else if ((e & E_G) && level == 2 && (e & E_PS)) {
      info->kind = SR_PTE_LINUX_PROTNONE;
      info->resident = true;
      info->frame = ~e & UINT64_C(0x000fffffffe00000);
    } else if (!(e & E_G) && !(e & E_PS) && level <= 2) {
      info->kind = SR_PTE_LINUX_SWAP;
      info->swap_type = (uint32_t)(e >> 59);
      info->swap_offset = (~e << 5) >> 14;
    } else {
      info->kind = SR_PTE_UNKNOWN;
    }
  } else {
    if (e & (UINT64_C(1) << 10)) {
      info->kind = SR_PTE_WIN_PROTOTYPE;
      info->proto_addr = (uint64_t)((int64_t)e >> 16);
    } else if (e & (UINT64_C(1) << 11)) {
      info->kind = SR_PTE_WIN_TRANSITION;
      info->resident = true;
      info->frame = e & ADDR_MASK;
    } else if ((e >> 32) == 0) {
      info->kind = SR_PTE_NONE;
    } else {
      info->kind = SR_PTE_WIN_PAGEFILE;
      info->swap_type = (uint32_t)((e >> 12) & 15);
      info->swap_offset = e >> 32;
    }
  }
  return info->kind;
}

static bool model_canonical(uint64_t va, int paging) {
  int bits = paging == SR_PAGING_5LEVEL ? 57 : 48;
  int64_t s = (int64_t)(va << (64 - bits)) >> (64 - bits);
  return (uint64_t)s == va;
}

static uint32_t prot_acc(uint32_t prot, uint64_t e) {
  if (!(e & E_RW))
    prot &= ~(uint32_t)SR_PROT_W;
  if (!(e & E_US))
    prot &= ~(uint32_t)SR_PROT_U;
  if (e & E_NX)
    prot |= SR_PROT_NX;
  return prot;
}

/* The reference walk: docs/api/core.md "Walk rules" and the sr_translate
 * result table. */
static void model_walk(const ram_t* m, uint64_t cr3, uint64_t va,
                       const sr_walk_opts_t* o, ref_t* r) {
  int mpa, level;
  uint64_t phys, table;
  uint32_t prot = SR_PROT_W | SR_PROT_U;

  memset(r, 0, sizeof(*r));
  if ((o->paging != SR_PAGING_4LEVEL && o->paging != SR_PAGING_5LEVEL) ||
      (o->os != SR_OS_LINUX && o->os != SR_OS_WINDOWS) ||
      (o->flags & ~(uint32_t)SR_WALK_RESIDENT) != 0 ||
      (o->maxphyaddr != 0 && (o->maxphyaddr < 36 || o->maxphyaddr > 52))) {
    r->status = SR_EINVAL;
    return;
  }
  mpa = o->maxphyaddr != 0 ? o->maxphyaddr : 52;
  phys = ((UINT64_C(1) << mpa) - 1) & ~UINT64_C(0xfff);
  table = cr3 & ADDR_MASK;
  r->top_level = o->paging == SR_PAGING_5LEVEL ? 5 : 4;
  if (table & ~phys) {
    r->status = SR_EINVAL;
    r->top_level = 0; /* not compared */
    return;
  }
  if (!model_canonical(va, o->paging)) {
    r->status = SR_ENONCANON;
    return;
  }
  for (level = r->top_level; level >= 1; level--) {
    uint64_t egpa = table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;
    uint64_t e = 0, rsv, base = 0, size = 0;
    int rc = ram_load(m, egpa, &e);

    r->stop_level = level;
    r->entry_gpa[level - 1] = egpa;
    if (rc != 0) {
      r->status = rc;
      r->fail_entry_gpa = egpa;
      r->prot = prot;
      return;
    }
    r->entry[level - 1] = e;
    if (!(e & E_P)) {
      sr_pte_info_t info;
      model_classify(e, level, o->os, &info);
      if ((o->flags & SR_WALK_RESIDENT) && info.resident) {
        if (info.frame & ~phys)
          r->vague = true;
        prot = prot_acc(prot, e);
        r->resident = true;
        if (info.kind == SR_PTE_WIN_TRANSITION && level > 1) {
          table = info.frame;
          continue;
        }
        size = level == 1 ? SR_PAGE_4K : SR_PAGE_2M;
        r->status = 0;
        r->page_size = size;
        r->gpa = info.frame + (va & (size - 1));
        r->prot = prot;
        return;
      }
      r->status = SR_ENOTPRESENT;
      r->fail_entry = e;
      r->fail_entry_gpa = egpa;
      r->prot = prot;
      return;
    }
    rsv = ~phys & UINT64_C(0x000ffffffffff000); /* bits mpa..51 */
    if ((e & rsv) || (level >= 4 && (e & E_PS)) ||
        (level == 3 && (e & E_PS) && (e & UINT64_C(0x3fffe000))) ||
        (level == 2 && (e & E_PS) && (e & UINT64_C(0x1fe000)))) {
      r->status = SR_EBADENTRY;
      r->fail_entry = e;
      r->fail_entry_gpa = egpa;
      r->prot = prot;
      return;
    }
    prot = prot_acc(prot, e);
    if (level == 1)
      size = SR_PAGE_4K;
    else if (level <= 3 && (e & E_PS))
      size = level == 3 ? SR_PAGE_1G : SR_PAGE_2M;
    if (size == 0) {
      table = e & phys;
      continue;
    }
    base = e & phys & ~(size - 1);
    r->status = 0;
    r->page_size = size;
    r->gpa = base + (va & (size - 1));
    r->prot = prot;
    return;
  }
}

static void show(const char* what, uint64_t va, const sr_translation_t* t,
                 const ref_t* r) {
  fprintf(stderr,
          "%s: va=%#llx lib: status=%d stop=%d gpa=%#llx size=%#llx "
          "prot=%u res=%d fail=%#llx@%#llx | model: status=%d stop=%d "
          "gpa=%#llx size=%#llx prot=%u res=%d fail=%#llx@%#llx\n",
          what, (unsigned long long)va, t->status, t->stop_level,
          (unsigned long long)t->gpa, (unsigned long long)t->page_size, t->prot,
          t->resident, (unsigned long long)t->fail_entry,
          (unsigned long long)t->fail_entry_gpa, r->status, r->stop_level,
          (unsigned long long)r->gpa, (unsigned long long)r->page_size, r->prot,
          r->resident, (unsigned long long)r->fail_entry,
          (unsigned long long)r->fail_entry_gpa);
}

#define WANT(cond)               \
  do {                           \
    if (!(cond))                 \
      show(#cond, va, &t, &ref); \
    FUZZ_CHECK(cond);            \
  } while (0)

/* Translates va and compares with the reference walk; returns the
 * library's result in *out. */
static void check_translate(const sr_image_t* img, const ram_t* m, uint64_t cr3,
                            uint64_t va, const sr_walk_opts_t* o,
                            sr_translation_t* out) {
  sr_translation_t t;
  ref_t ref;
  int rc, lv;

  memset(&t, 0xa5, sizeof(t));
  rc = sr_translate(img, cr3, va, o, &t);
  model_walk(m, cr3, va, o, &ref);
  if (trace < 0)
    trace = getenv("FUZZ_TRACE") != NULL;
  if (trace)
    show("translate", va, &t, &ref);
  *out = t;
  WANT(rc == t.status);
  WANT(t.gva == va);
  WANT(rc == ref.status);
  WANT(t.stop_level >= 0 && t.stop_level <= 5);
  if (rc == SR_EINVAL || rc == SR_ENONCANON) {
    WANT(t.stop_level == 0);
    if (rc == SR_ENONCANON)
      WANT(t.top_level == ref.top_level);
    return;
  }
  WANT(t.top_level == ref.top_level);
  WANT(t.stop_level == ref.stop_level);
  if (rc == 0) {
    WANT(t.page_size == SR_PAGE_4K || t.page_size == SR_PAGE_2M ||
         t.page_size == SR_PAGE_1G);
    WANT((t.gpa & (t.page_size - 1)) == (va & (t.page_size - 1)));
    WANT(t.resident == ref.resident);
    if (ref.vague)
      return;
    WANT(t.page_size == ref.page_size);
    WANT(t.gpa == ref.gpa);
    WANT(t.prot == ref.prot);
  } else if (rc == SR_ENOTPRESENT || rc == SR_EBADENTRY) {
    sr_pte_info_t info;
    WANT(t.fail_entry == ref.fail_entry);
    WANT(t.fail_entry_gpa == ref.fail_entry_gpa);
    if (rc == SR_ENOTPRESENT) {
      model_classify(ref.fail_entry, ref.stop_level, o->os, &info);
      WANT(memcmp(&t.pte.kind, &info.kind, sizeof(info.kind)) == 0);
      WANT(t.pte.frame == info.frame && t.pte.resident == info.resident);
      WANT(t.pte.swap_type == info.swap_type);
      WANT(t.pte.swap_offset == info.swap_offset);
      WANT(t.pte.proto_addr == info.proto_addr);
    } else {
      WANT(t.pte.kind == SR_PTE_PRESENT);
    }
    if (ref.vague)
      return;
    if (t.stop_level < t.top_level)
      WANT(t.prot == ref.prot);
  } else {
    WANT(rc == SR_EHOLE || rc == SR_EBEYOND);
    WANT(t.fail_entry == 0);
    WANT(t.fail_entry_gpa == ref.fail_entry_gpa);
    WANT(t.entry_gpa[t.stop_level - 1] == ref.fail_entry_gpa);
  }
  if (ref.vague)
    return;
  for (lv = t.top_level; lv >= t.stop_level && lv >= 1; lv--) {
    WANT(t.entry_gpa[lv - 1] == ref.entry_gpa[lv - 1]);
    if (!(rc == SR_EHOLE || rc == SR_EBEYOND) || lv > t.stop_level)
      WANT(t.entry[lv - 1] == ref.entry[lv - 1]);
  }
}

/* sr_pte_classify against the model at one word, every level and OS, and
 * the round trip through sr_kit_encode for encodable kinds. */
static void check_classify(uint64_t e) {
  int level, os;

  for (level = 0; level <= 6; level++) {
    for (os = 0; os <= 2; os++) {
      sr_pte_info_t got, want, back;
      sr_pte_kind_t k;
      uint64_t enc = 0;

      if ((level == 0 || level == 6 || os == 2) && (e & 0xff) > 0x10)
        continue; /* the invalid arguments need few samples */
      memset(&got, 0xa5, sizeof(got));
      k = sr_pte_classify(e, level, (sr_os_t)os, &got);
      model_classify(e, level, os, &want);
      FUZZ_CHECK(k == want.kind);
      FUZZ_CHECK(got.kind == want.kind);
      FUZZ_CHECK(got.resident == want.resident);
      FUZZ_CHECK(got.frame == want.frame);
      FUZZ_CHECK(got.swap_type == want.swap_type);
      FUZZ_CHECK(got.swap_offset == want.swap_offset);
      FUZZ_CHECK(got.proto_addr == want.proto_addr);
      FUZZ_CHECK(sr_pte_classify(e, level, (sr_os_t)os, NULL) == k);
      FUZZ_CHECK(sr_pte_kind_name(k) != NULL);
      if (k == SR_PTE_PRESENT || k == SR_PTE_UNKNOWN || level < 1 ||
          level > 5 || os > 1)
        continue;
      if (k == SR_PTE_LINUX_SWAP && got.swap_type == 0 &&
          got.swap_offset == (UINT64_C(1) << 50) - 1)
        continue; /* encodes as 0: refused by design */
      if (sr_kit_encode(&got, level, &enc) != 0) {
        fprintf(stderr, "encode refused %#llx level %d os %d kind %d\n",
                (unsigned long long)e, level, os, (int)k);
        FUZZ_CHECK(0);
      }
      sr_pte_classify(enc, level, (sr_os_t)os, &back);
      FUZZ_CHECK(back.kind == got.kind);
      FUZZ_CHECK(back.frame == got.frame && back.resident == got.resident);
      FUZZ_CHECK(back.swap_type == got.swap_type);
      FUZZ_CHECK(back.swap_offset == got.swap_offset);
      FUZZ_CHECK(back.proto_addr == got.proto_addr);
    }
  }
}

static int collect(const sr_region_t* r, void* arg) {
  regs_t* rs = arg;

  if (rs->n == MAX_REGIONS)
    return 7;
  rs->r[rs->n++] = *r;
  return 0;
}

/* [lo, hi) with hi 0 as 2^64, in 128-bit arithmetic. */
typedef unsigned __int128 u128;
static u128 top(uint64_t hi) {
  return hi == 0 ? (u128)1 << 64 : hi;
}

static void check_regions_list(const regs_t* rs, uint64_t lo, uint64_t hi,
                               bool merged, int paging) {
  size_t i;
  u128 prev_hi = 0;

  for (i = 0; i < rs->n; i++) {
    const sr_region_t* r = &rs->r[i];
    u128 rhi = top(r->hi);
    u128 size = rhi - r->lo;

    FUZZ_CHECK(rhi > r->lo);
    FUZZ_CHECK(r->lo >= lo && rhi <= top(hi));
    FUZZ_CHECK(i == 0 || r->lo >= prev_hi);
    FUZZ_CHECK(model_canonical(r->lo, paging));
    FUZZ_CHECK(model_canonical((uint64_t)(rhi - 1), paging));
    FUZZ_CHECK(r->present_bytes <= size);
    FUZZ_CHECK((r->prot & ~(uint32_t)(SR_PROT_W | SR_PROT_U | SR_PROT_NX)) ==
               0);
    FUZZ_CHECK((r->kinds & ~(uint32_t)0xff) == 0);
    FUZZ_CHECK((r->page_sizes & ~(SR_PAGE_4K | SR_PAGE_2M | SR_PAGE_1G)) == 0);
    if (r->present_bytes == 0)
      FUZZ_CHECK(r->state == SR_RUN_PAGED);
    else if (r->present_bytes == size)
      FUZZ_CHECK(r->state == SR_RUN_PRESENT);
    else
      FUZZ_CHECK(r->state == SR_RUN_MIXED && merged);
    if (r->state == SR_RUN_PRESENT && !merged)
      FUZZ_CHECK(r->page_sizes != 0);
    /* Neighbours that touch differ in what they report (else coalesced). */
    if (i > 0 && !merged && r->lo == prev_hi) {
      const sr_region_t* p = &rs->r[i - 1];
      FUZZ_CHECK(p->state != r->state || p->prot != r->prot);
    }
    prev_hi = rhi;
  }
}

/* Whether both lists cover the same bytes with the same present bytes. */
static void check_same_cover(const regs_t* a, const regs_t* b) {
  size_t i = 0, j = 0;
  u128 pa = 0, pb = 0;
  u128 at = 0; /* the cover compared so far ends here */

  for (i = 0; i < a->n; i++)
    pa += a->r[i].present_bytes;
  for (j = 0; j < b->n; j++)
    pb += b->r[j].present_bytes;
  FUZZ_CHECK(pa == pb);
  /* Walk both as sorted interval lists, merging touching intervals. */
  i = j = 0;
  while (i < a->n || j < b->n) {
    u128 alo, ahi, blo, bhi;
    FUZZ_CHECK(i < a->n && j < b->n);
    alo = a->r[i].lo;
    ahi = top(a->r[i].hi);
    while (i + 1 < a->n && a->r[i + 1].lo == ahi)
      ahi = top(a->r[++i].hi);
    blo = b->r[j].lo;
    bhi = top(b->r[j].hi);
    while (j + 1 < b->n && b->r[j + 1].lo == bhi)
      bhi = top(b->r[++j].hi);
    FUZZ_CHECK(alo == blo && ahi == bhi && alo >= at);
    at = ahi;
    i++;
    j++;
  }
}

static const sr_region_t* find_region(const regs_t* rs, uint64_t va) {
  size_t i;

  for (i = 0; i < rs->n; i++)
    if (va >= rs->r[i].lo && (u128)va < top(rs->r[i].hi))
      return &rs->r[i];
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_in_t h;
  uint8_t f, mpa_sel, raw_opts, span_shift;
  sr_walk_opts_t o;
  uint64_t cr3, lo, hi, width, cr3_page, cr3_low, cr3_raw, va[NVA];
  uint8_t va_mode[NVA];
  ram_t m;
  sr_layout_t layout;
  sr_segment_t seg[2];
  sr_image_t* img = NULL;
  sr_translation_t tr[NVA];
  int fd, rc, rc_m, i;
  size_t ram_len, w, nwords;

  fuzz_in_init(&h, data, size < HDR ? size : HDR);
  f = fuzz_u8(&h);
  mpa_sel = fuzz_u8(&h);
  raw_opts = fuzz_u8(&h);
  span_shift = fuzz_u8(&h);
  cr3_page = fuzz_u16(&h);
  cr3_low = fuzz_u16(&h);
  cr3_raw = fuzz_u64(&h);
  lo = fuzz_u64(&h);
  width = fuzz_u32(&h);
  for (i = 0; i < NVA; i++)
    va_mode[i] = fuzz_u8(&h);
  for (i = 0; i < NVA; i++)
    va[i] = fuzz_u64(&h);

  /* The RAM: the bytes after the header, padded to whole entries. */
  ram_len = size > HDR ? size - HDR : 0;
  if (ram_len > MAX_RAM)
    ram_len = MAX_RAM;
  memset(ram_buf, 0, sizeof(ram_buf));
  if (ram_len > 0)
    memcpy(ram_buf, data + HDR, ram_len);
  ram_len = (ram_len + 7) & ~(size_t)7;
  if (ram_len == 0)
    ram_len = 8;
  m.bytes = ram_buf;
  m.size = ram_len;
  m.layout = (f & 8) && ram_len > HOLE_HI ? LAYOUT_HOLE
             : (f & 0x20)                 ? LAYOUT_BEYOND
                                          : LAYOUT_RAW;

  memset(&o, 0, sizeof(o));
  o.paging = (f & 1) ? SR_PAGING_5LEVEL : SR_PAGING_4LEVEL;
  o.os = (f & 2) ? SR_OS_WINDOWS : SR_OS_LINUX;
  o.flags = (f & 4) ? SR_WALK_RESIDENT : 0;
  if (mpa_sel < 192)
    o.maxphyaddr = (mpa_sel & 1) ? 0 : (uint8_t)(36 + mpa_sel % 17);
  else
    o.maxphyaddr = mpa_sel; /* mostly invalid */
  if (f & 0x40) {
    o.paging = (sr_paging_t)(raw_opts & 3);
    o.os = (sr_os_t)((raw_opts >> 2) & 3);
    o.flags = raw_opts >> 4;
  }
  cr3 = (f & 0x10) ? cr3_raw
                   : (cr3_page << 12) | (cr3_low & 0xfff) |
                         ((cr3_low & 0x8000) ? UINT64_C(1) << 63 : 0) |
                         ((cr3_low & 0x4000) ? UINT64_C(0x7ff) << 52 : 0);
  width <<= span_shift % 20;
  if (width == 0 || width > MAX_SPAN)
    width = width == 0 ? SR_PAGE_4K : MAX_SPAN;
  if ((f & 0x80) || lo + width < lo || lo + width == 0) {
    if (lo < 0 - MAX_SPAN)
      lo = 0 - MAX_SPAN + (lo & (MAX_SPAN - 1));
    hi = 0;
    width = 0 - lo;
  } else {
    hi = lo + width;
  }
  for (i = 0; i < NVA; i++)
    if (!(va_mode[i] & 0x80))
      va[i] = lo + va[i] % width;

  fd = fuzz_memfd("fuzz-translate", ram_buf, ram_len);
  FUZZ_CHECK(fd >= 0);
  memset(&layout, 0, sizeof(layout));
  if (m.layout == LAYOUT_HOLE) {
    seg[0].gpa = 0;
    seg[0].len = HOLE_LO;
    seg[0].file_off = 0;
    seg[1].gpa = HOLE_HI;
    seg[1].len = ram_len - HOLE_HI;
    seg[1].file_off = HOLE_HI;
    layout.kind = SR_LAYOUT_SEGMENTS;
    layout.seg = seg;
    layout.nseg = 2;
  } else {
    layout.kind = SR_LAYOUT_RAW;
    layout.low = m.layout == LAYOUT_BEYOND ? BEYOND_LOW : 0;
  }
  rc = sr_image_open_fd(&img, fd, &layout);
  close(fd);
  FUZZ_CHECK(rc == 0);

  for (i = 0; i < NVA; i++) {
    FUZZ_CHECK(sr_gva_canonical(va[i], SR_PAGING_4LEVEL) ==
               model_canonical(va[i], SR_PAGING_4LEVEL));
    FUZZ_CHECK(sr_gva_canonical(va[i], SR_PAGING_5LEVEL) ==
               model_canonical(va[i], SR_PAGING_5LEVEL));
    check_translate(img, &m, cr3, va[i], &o, &tr[i]);
  }

  /* Classification of the first words and of the root table's words. */
  nwords = ram_len / 8 < 512 ? ram_len / 8 : 512;
  for (w = 0; w < nwords; w++) {
    uint64_t e;
    memcpy(&e, ram_buf + 8 * w, 8);
    check_classify(e);
  }
  check_classify(cr3_raw);
  check_classify(lo);

  /* Regions, plain and merged. */
  regs_plain.n = 0;
  regs_merged.n = 0;
  rc = sr_regions(img, cr3, lo, hi, &o, 0, collect, &regs_plain);
  rc_m = sr_regions(img, cr3, lo, hi, &o, SR_REGIONS_MERGE_PAGED, collect,
                    &regs_merged);
  FUZZ_CHECK(rc == 0 || rc == 7 || rc == SR_EINVAL || rc == SR_EHOLE ||
             rc == SR_EBEYOND);
  FUZZ_CHECK(rc_m == rc || (rc == 7 && rc_m == 0) || (rc == 7 && rc_m == 7));
  if (rc == SR_EINVAL)
    FUZZ_CHECK(tr[0].status == SR_EINVAL || tr[0].status == SR_ENONCANON ||
               tr[0].status == 0 || tr[0].status < 0);
  if (rc == 0 || rc == 7) {
    check_regions_list(&regs_plain, lo, hi, false, o.paging);
    check_regions_list(&regs_merged, lo, hi, true, o.paging);
  }
  if (rc == 0 && rc_m == 0) {
    check_same_cover(&regs_plain, &regs_merged);
    for (i = 0; i < NVA; i++) {
      const sr_region_t* r;
      if (va[i] < lo || (hi != 0 && va[i] >= hi))
        continue;
      r = find_region(&regs_plain, va[i]);
      if (tr[i].status == 0) {
        FUZZ_CHECK(r != NULL && r->state == SR_RUN_PRESENT);
        FUZZ_CHECK(r->prot == tr[i].prot);
        FUZZ_CHECK(r->page_sizes & tr[i].page_size);
      } else if (tr[i].status == SR_ENOTPRESENT &&
                 tr[i].pte.kind != SR_PTE_NONE) {
        FUZZ_CHECK(r != NULL && r->state == SR_RUN_PAGED);
        FUZZ_CHECK(r->kinds & (1u << tr[i].pte.kind));
      } else {
        FUZZ_CHECK(r == NULL);
      }
      r = find_region(&regs_merged, va[i]);
      FUZZ_CHECK((r != NULL) == (find_region(&regs_plain, va[i]) != NULL));
    }
  }
  sr_image_close(img);
  return 0;
}
