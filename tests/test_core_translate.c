/* Tests for sr_translate on images built with the holey-image kit.
 *
 * Expectations come from what the test asked the kit to build (GPAs given
 * to sr_kit_map_gpa, the raw entries the kit reports with sr_kit_get_entry
 * and sr_kit_entry_gpa, entries written with sr_kit_set_entry) and from the
 * Intel SDM rules (vol. 3A 4.5) and the Linux / Windows encodings written
 * out here, never from sr_translate's own output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/translate.h>

#define MIB (UINT64_C(1) << 20)
#define P_ (UINT64_C(1) << 0)
#define RW_ (UINT64_C(1) << 1)
#define US_ (UINT64_C(1) << 2)
#define PS_ (UINT64_C(1) << 7)
#define NX_ (UINT64_C(1) << 63)
#define BIT(n) (UINT64_C(1) << (n))
#define ADDR_4K UINT64_C(0x000ffffffffff000)
#define ADDR_2M UINT64_C(0x000fffffffe00000)
#define ADDR_1G UINT64_C(0x000fffffc0000000)

typedef struct fixture_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;  /* 4-level space */
  uint64_t cr35; /* 5-level space */
} fixture_t;

static int setup_kit(void** state, const sr_segment_t* seg, size_t nseg) {
  fixture_t* fx = calloc(1, sizeof(*fx));
  sr_kit_opts_t opts;

  assert_non_null(fx);
  memset(&opts, 0, sizeof(opts));
  opts.size = 64 * MIB;
  opts.seg = seg;
  opts.nseg = nseg;
  assert_int_equal(sr_kit_create(&fx->kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3), 0);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_5LEVEL, &fx->cr35), 0);
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
  *state = fx;
  return 0;
}

static int setup(void** state) {
  return setup_kit(state, NULL, 0);
}

/* RAM at [0, 32M) and [64M, 96M): a hole at [32M, 64M) and above 96M. */
static int setup_holey(void** state) {
  static const sr_segment_t seg[2] = {{0, 32 * MIB, 0},
                                      {64 * MIB, 32 * MIB, 32 * MIB}};
  return setup_kit(state, seg, 2);
}

static int teardown(void** state) {
  fixture_t* fx = *state;

  sr_image_close(fx->image);
  sr_kit_destroy(fx->kit);
  free(fx);
  return 0;
}

static uint64_t sx48(uint64_t va) {
  return (uint64_t)((int64_t)(va << 16) >> 16);
}

static uint64_t get_entry(fixture_t* fx, uint64_t cr3, uint64_t gva,
                          int level) {
  uint64_t v = 0;
  assert_int_equal(sr_kit_get_entry(fx->kit, cr3, gva, level, &v), 0);
  return v;
}

static uint64_t entry_gpa(fixture_t* fx, uint64_t cr3, uint64_t gva,
                          int level) {
  uint64_t v = 0;
  assert_int_equal(sr_kit_entry_gpa(fx->kit, cr3, gva, level, &v), 0);
  return v;
}

static uint64_t set_entry(fixture_t* fx, uint64_t cr3, uint64_t gva, int level,
                          uint64_t value) {
  uint64_t old = 0;
  assert_int_equal(sr_kit_set_entry(fx->kit, cr3, gva, level, value, &old), 0);
  return old;
}

static sr_walk_opts_t opts_of(sr_paging_t paging, sr_os_t os, uint32_t flags,
                              uint8_t maxphy) {
  sr_walk_opts_t o;
  memset(&o, 0, sizeof(o));
  o.paging = paging;
  o.os = os;
  o.flags = flags;
  o.maxphyaddr = maxphy;
  return o;
}

/* Every level from the top down to `stop` matches the kit's tables. */
static void check_levels(fixture_t* fx, uint64_t cr3, const sr_translation_t* t,
                         int stop) {
  int level;

  for (level = t->top_level; level >= stop; level--) {
    assert_int_equal(t->entry[level - 1], get_entry(fx, cr3, t->gva, level));
    assert_int_equal(t->entry_gpa[level - 1],
                     entry_gpa(fx, cr3, t->gva, level));
  }
}

/* Reads len bytes at gpa and compares them with the kit's pattern at gva. */
static void check_data(fixture_t* fx, uint64_t gpa, uint64_t gva, size_t len,
                       uint64_t seed) {
  unsigned char buf[64];
  size_t i;

  assert_true(len <= sizeof(buf));
  assert_int_equal(sr_image_read(fx->image, gpa, buf, len, NULL), 0);
  for (i = 0; i < len; i++)
    assert_int_equal(buf[i], sr_kit_pattern(seed, gva + i));
}

/* Linux / Windows encodings, from the kernels' formulas (see
 * test_core_classify.c for their sources). */
static uint64_t linux_swp_entry(uint64_t type, uint64_t offset) {
  return (~offset << 14 >> 5) | (type << 59);
}

static void test_translate_4k_leaf(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x400000, seed = 11;
  sr_translation_t t;
  uint64_t frame;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, gva, 0x1000, seed), 0);
  frame = get_entry(fx, fx->cr3, gva, 1) & ADDR_4K;

  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x123, NULL, &t), 0);
  assert_int_equal(t.status, 0);
  assert_int_equal(t.gva, gva + 0x123);
  assert_int_equal(t.gpa, frame + 0x123);
  assert_int_equal(t.page_size, SR_PAGE_4K);
  assert_int_equal(t.prot, SR_PROT_W | SR_PROT_U);
  assert_false(t.resident);
  assert_int_equal(t.top_level, 4);
  assert_int_equal(t.stop_level, 1);
  check_levels(fx, fx->cr3, &t, 1);
  check_data(fx, t.gpa, gva + 0x123, 32, seed);

  /* The last byte of the page. */
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0xfff, NULL, &t), 0);
  assert_int_equal(t.gpa, frame + 0xfff);
}

static void test_translate_2m_leaf(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x40000000, gpa = 0x600000;
  sr_translation_t t;

  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, gva, 2 * SR_PAGE_2M, gpa,
                                  SR_PAGE_2M, SR_PROT_W),
                   0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x12345, NULL, &t),
                   0);
  assert_int_equal(t.gpa, gpa + 0x12345);
  assert_int_equal(t.page_size, SR_PAGE_2M);
  assert_int_equal(t.stop_level, 2);
  assert_int_equal(t.prot, SR_PROT_W);
  check_levels(fx, fx->cr3, &t, 2);
  /* The second 2M page follows the first. */
  assert_int_equal(
      sr_translate(fx->image, fx->cr3, gva + SR_PAGE_2M + 0x1fffff, NULL, &t),
      0);
  assert_int_equal(t.gpa, gpa + SR_PAGE_2M + 0x1fffff);
}

static void test_translate_1g_leaf(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0xffffc08000000000, gpa = 0x1c0000000;
  sr_translation_t t;

  /* A 1G page far past the end of the image: translation reads no data. */
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, gva, SR_PAGE_1G, gpa,
                                  SR_PAGE_1G, SR_PROT_NX),
                   0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x3ffffff8, NULL, &t),
                   0);
  assert_int_equal(t.gpa, gpa + 0x3ffffff8);
  assert_int_equal(t.page_size, SR_PAGE_1G);
  assert_int_equal(t.stop_level, 3);
  assert_int_equal(t.prot, SR_PROT_NX);
  check_levels(fx, fx->cr3, &t, 3);
}

static void test_translate_5level(void** state) {
  fixture_t* fx = *state;
  /* Canonical only with LA57 (bit 55 set, bits 63..56 clear). */
  const uint64_t gva = 0x00ff801234567000, seed = 5;
  sr_walk_opts_t o5 = opts_of(SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0);
  sr_translation_t t;
  uint64_t frame;

  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr35, gva, 0x2000, SR_PAGE_4K, SR_PROT_U), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr35, gva, 0x2000, seed), 0);
  frame = get_entry(fx, fx->cr35, gva + 0x1000, 1) & ADDR_4K;
  assert_int_equal(sr_translate(fx->image, fx->cr35, gva + 0x1010, &o5, &t), 0);
  assert_int_equal(t.top_level, 5);
  assert_int_equal(t.stop_level, 1);
  assert_int_equal(t.gpa, frame + 0x10);
  assert_int_equal(t.prot, SR_PROT_U);
  check_levels(fx, fx->cr35, &t, 1);
  check_data(fx, t.gpa, gva + 0x1010, 64, seed);

  /* The same address under 4-level paging is not canonical. */
  assert_int_equal(sr_translate(fx->image, fx->cr35, gva + 0x1010, NULL, &t),
                   SR_ENONCANON);
  assert_int_equal(t.stop_level, 0);
}

static void test_translate_cr3_low_bits_ignored(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x7fffffffe000;
  sr_translation_t t;
  uint64_t frame,
      noise[] = {0xfff, 0x123, BIT(63), UINT64_C(0x7ff) << 52, BIT(63) | 0x018};
  size_t i;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  frame = get_entry(fx, fx->cr3, gva, 1) & ADDR_4K;
  for (i = 0; i < sizeof(noise) / sizeof(noise[0]); i++) {
    assert_int_equal(
        sr_translate(fx->image, fx->cr3 | noise[i], gva + 8, NULL, &t), 0);
    assert_int_equal(t.gpa, frame + 8);
    assert_int_equal(t.entry_gpa[3], entry_gpa(fx, fx->cr3, gva, 4));
  }
}

static void test_translate_cr3_above_maxphyaddr(void** state) {
  fixture_t* fx = *state;
  sr_walk_opts_t o = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 39);
  sr_translation_t t;

  assert_int_equal(sr_translate(fx->image, fx->cr3 | BIT(39), 0, &o, &t),
                   SR_EINVAL);
  assert_int_equal(t.status, SR_EINVAL);
  assert_int_equal(t.stop_level, 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3 | BIT(51), 0, &o, &t),
                   SR_EINVAL);
  /* Bit 38 is inside a 39-bit MAXPHYADDR: valid (and in a hole). */
  assert_int_not_equal(sr_translate(fx->image, BIT(38), 0, &o, &t), SR_EINVAL);
}

static void test_translate_noncanonical(void** state) {
  fixture_t* fx = *state;
  sr_walk_opts_t o5 = opts_of(SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0);
  uint64_t bad4[] = {0x0000800000000000, 0xffff7fffffffffff, 0x8000000000000000,
                     0x0001000000000000};
  uint64_t bad5[] = {0x0100000000000000, 0xfeffffffffffffff,
                     0x8000000000000000};
  sr_translation_t t;
  size_t i;

  for (i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
    memset(&t, 0x5a, sizeof(t));
    assert_int_equal(sr_translate(fx->image, fx->cr3, bad4[i], NULL, &t),
                     SR_ENONCANON);
    assert_int_equal(t.status, SR_ENONCANON);
    assert_int_equal(t.stop_level, 0);
    assert_int_equal(t.gva, bad4[i]);
  }
  for (i = 0; i < sizeof(bad5) / sizeof(bad5[0]); i++)
    assert_int_equal(sr_translate(fx->image, fx->cr35, bad5[i], &o5, &t),
                     SR_ENONCANON);
  /* The edges of the canonical halves walk (and find nothing mapped). */
  assert_int_equal(
      sr_translate(fx->image, fx->cr3, 0x00007fffffffffff, NULL, &t),
      SR_ENOTPRESENT);
  assert_int_equal(
      sr_translate(fx->image, fx->cr3, 0xffff800000000000, NULL, &t),
      SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 4);
  assert_int_equal(
      sr_translate(fx->image, fx->cr35, 0x00ffffffffffffff, &o5, &t),
      SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 5);
  assert_int_equal(
      sr_translate(fx->image, fx->cr35, 0xff00000000000000, &o5, &t),
      SR_ENOTPRESENT);
}

static void test_translate_invalid_arguments(void** state) {
  fixture_t* fx = *state;
  sr_walk_opts_t o;
  sr_translation_t t;
  uint8_t badphy[] = {1, 35, 53, 64, 255};
  uint8_t goodphy[] = {36, 39, 46, 52};
  size_t i;

  assert_int_equal(sr_translate(fx->image, fx->cr3, 0, NULL, NULL), SR_EINVAL);
  assert_int_equal(sr_translate(NULL, fx->cr3, 0, NULL, &t), SR_EINVAL);
  assert_int_equal(t.status, SR_EINVAL);
  assert_int_equal(t.stop_level, 0);
  o = opts_of((sr_paging_t)2, SR_OS_LINUX, 0, 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, 0, &o, &t), SR_EINVAL);
  o = opts_of(SR_PAGING_4LEVEL, (sr_os_t)2, 0, 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, 0, &o, &t), SR_EINVAL);
  o = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 1u << 7, 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, 0, &o, &t), SR_EINVAL);
  for (i = 0; i < sizeof(badphy); i++) {
    o = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 0, badphy[i]);
    assert_int_equal(sr_translate(fx->image, fx->cr3, 0, &o, &t), SR_EINVAL);
  }
  for (i = 0; i < sizeof(goodphy); i++) {
    o = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 0, goodphy[i]);
    assert_int_equal(sr_translate(fx->image, fx->cr3, 0, &o, &t),
                     SR_ENOTPRESENT);
  }
}

/* Sets `bits` in the entry for gva at level, expects SR_EBADENTRY there
 * (or success when bad is false), restores the entry. */
static void check_bits(fixture_t* fx, uint64_t cr3, const sr_walk_opts_t* o,
                       uint64_t gva, int level, uint64_t bits, bool bad) {
  uint64_t old = get_entry(fx, cr3, gva, level);
  sr_translation_t t;
  int rc;

  set_entry(fx, cr3, gva, level, old | bits);
  rc = sr_translate(fx->image, cr3, gva, o, &t);
  if (bad) {
    assert_int_equal(rc, SR_EBADENTRY);
    assert_int_equal(t.status, SR_EBADENTRY);
    assert_int_equal(t.stop_level, level);
    assert_int_equal(t.fail_entry, old | bits);
    assert_int_equal(t.fail_entry_gpa, entry_gpa(fx, cr3, gva, level));
    assert_int_equal(t.entry[level - 1], old | bits);
    assert_int_equal(t.pte.kind, SR_PTE_PRESENT);
    check_levels(fx, cr3, &t, level);
  } else {
    assert_int_equal(rc, 0);
  }
  set_entry(fx, cr3, gva, level, old);
}

static void test_translate_reserved_bits(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x200000, g2m = 0x40000000, g1g = 0x8000000000;
  sr_walk_opts_t o39 = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 39);
  sr_walk_opts_t o52 = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 0);
  sr_translation_t t;
  uint64_t frame, old;
  int level;

  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K, SR_PROT_W), 0);
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, g2m, SR_PAGE_2M, 0x400000,
                                  SR_PAGE_2M, SR_PROT_W),
                   0);
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, g1g, SR_PAGE_1G, 0x40000000,
                                  SR_PAGE_1G, SR_PROT_W),
                   0);
  frame = get_entry(fx, fx->cr3, gva, 1) & ADDR_4K;

  /* Bits maxphyaddr..51 at every level. */
  for (level = 4; level >= 1; level--) {
    check_bits(fx, fx->cr3, &o39, gva, level, BIT(39), true);
    check_bits(fx, fx->cr3, &o39, gva, level, BIT(51), true);
  }
  check_bits(fx, fx->cr3, &o39, g2m, 2, BIT(45), true);
  check_bits(fx, fx->cr3, &o39, g1g, 3, BIT(50), true);
  /* Bit 38 is an address bit under maxphyaddr 39. */
  old = set_entry(fx, fx->cr3, gva, 1, frame | BIT(38) | P_);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, &o39, &t), 0);
  assert_int_equal(t.gpa, frame | BIT(38));
  /* Under the default 52 bit 51 is an address bit too. */
  set_entry(fx, fx->cr3, gva, 1, frame | BIT(51) | P_);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 4, &o52, &t), 0);
  assert_int_equal(t.gpa, (frame | BIT(51)) + 4);
  set_entry(fx, fx->cr3, gva, 1, old);
  /* Bits 52..62 are ignored (software / protection keys), never reserved,
   * and not part of the address. */
  for (level = 4; level >= 1; level--)
    check_bits(fx, fx->cr3, &o39, gva, level, UINT64_C(0x7ff) << 52, false);
  old = set_entry(fx, fx->cr3, gva, 1,
                  get_entry(fx, fx->cr3, gva, 1) | (UINT64_C(0x7ff) << 52));
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, &o39, &t), 0);
  assert_int_equal(t.gpa, frame);
  set_entry(fx, fx->cr3, gva, 1, old);

  /* PS in a PML4E: no 512 GiB pages (also with a 1G-aligned address). */
  check_bits(fx, fx->cr3, &o52, gva, 4, PS_, true);
  old = set_entry(fx, fx->cr3, gva, 4, SR_PAGE_1G | P_ | RW_ | US_ | PS_);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t),
                   SR_EBADENTRY);
  assert_int_equal(t.stop_level, 4);
  set_entry(fx, fx->cr3, gva, 4, old);
  /* Bit 7 of a PTE is PAT: fine. */
  check_bits(fx, fx->cr3, &o52, gva, 1, PS_, false);

  /* 2M leaf: bits 13..20 reserved, bit 12 is PAT. */
  check_bits(fx, fx->cr3, &o52, g2m, 2, BIT(13), true);
  check_bits(fx, fx->cr3, &o52, g2m, 2, BIT(20), true);
  check_bits(fx, fx->cr3, &o52, g2m, 2, BIT(16), true);
  old =
      set_entry(fx, fx->cr3, g2m, 2, get_entry(fx, fx->cr3, g2m, 2) | BIT(12));
  assert_int_equal(sr_translate(fx->image, fx->cr3, g2m + 0x2345, NULL, &t), 0);
  assert_int_equal(t.gpa, 0x400000 + 0x2345);
  set_entry(fx, fx->cr3, g2m, 2, old);

  /* 1G leaf: bits 13..29 reserved, bit 12 is PAT. */
  check_bits(fx, fx->cr3, &o52, g1g, 3, BIT(13), true);
  check_bits(fx, fx->cr3, &o52, g1g, 3, BIT(29), true);
  check_bits(fx, fx->cr3, &o52, g1g, 3, BIT(21), true);
  old =
      set_entry(fx, fx->cr3, g1g, 3, get_entry(fx, fx->cr3, g1g, 3) | BIT(12));
  assert_int_equal(sr_translate(fx->image, fx->cr3, g1g + 0x2344678, NULL, &t),
                   0);
  assert_int_equal(t.gpa, 0x40000000 + 0x2344678);
  assert_int_equal(t.page_size, SR_PAGE_1G);
  set_entry(fx, fx->cr3, g1g, 3, old);
}

static void test_translate_ps_in_pml5e(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0xff00000000400000;
  sr_walk_opts_t o5 = opts_of(SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0);
  sr_walk_opts_t o5_39 = opts_of(SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 39);
  sr_translation_t t;
  uint64_t old;

  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr35, gva, 0x1000, SR_PAGE_4K, SR_PROT_W), 0);
  check_bits(fx, fx->cr35, &o5, gva, 5, 0, false);
  check_bits(fx, fx->cr35, &o5, gva, 5, PS_, true);
  old = set_entry(fx, fx->cr35, gva, 5, SR_PAGE_1G | P_ | RW_ | US_ | PS_);
  assert_int_equal(sr_translate(fx->image, fx->cr35, gva, &o5, &t),
                   SR_EBADENTRY);
  assert_int_equal(t.stop_level, 5);
  assert_int_equal(t.fail_entry, SR_PAGE_1G | P_ | RW_ | US_ | PS_);
  set_entry(fx, fx->cr35, gva, 5, old);
  check_bits(fx, fx->cr35, &o5, gva, 4, PS_, true);
  check_bits(fx, fx->cr35, &o5_39, gva, 5, BIT(40), true);
}

/* Makes the entry for gva at `level` the non-present `value`, expects
 * SR_ENOTPRESENT there with `kind`, restores. */
static void check_notpresent(fixture_t* fx, uint64_t cr3,
                             const sr_walk_opts_t* o, uint64_t gva, int level,
                             uint64_t value, sr_pte_kind_t kind) {
  uint64_t old = set_entry(fx, cr3, gva, level, value);
  sr_translation_t t;

  assert_int_equal(sr_translate(fx->image, cr3, gva, o, &t), SR_ENOTPRESENT);
  assert_int_equal(t.status, SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, level);
  assert_int_equal(t.fail_entry, value);
  assert_int_equal(t.fail_entry_gpa, entry_gpa(fx, cr3, gva, level));
  assert_int_equal(t.pte.kind, kind);
  check_levels(fx, cr3, &t, level);
  set_entry(fx, cr3, gva, level, old);
  assert_int_equal(sr_translate(fx->image, cr3, gva, o, &t), 0);
}

static void test_translate_notpresent_each_level(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x7f0012345000, gva5 = 0x00f0012345678000;
  sr_walk_opts_t o4 = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 0);
  sr_walk_opts_t o5 = opts_of(SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0);
  sr_walk_opts_t ow = opts_of(SR_PAGING_4LEVEL, SR_OS_WINDOWS, 0, 0);
  sr_translation_t t;
  uint64_t swp = linux_swp_entry(5, 0x777);

  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K, SR_PROT_W), 0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr35, gva5, 0x1000, SR_PAGE_4K, SR_PROT_W), 0);
  check_notpresent(fx, fx->cr3, &o4, gva, 4, 0, SR_PTE_NONE);
  check_notpresent(fx, fx->cr3, &o4, gva, 4, 0x4000, SR_PTE_UNKNOWN);
  check_notpresent(fx, fx->cr3, &o4, gva, 3, 0, SR_PTE_NONE);
  check_notpresent(fx, fx->cr3, &o4, gva, 2, linux_swp_entry(0, 1),
                   SR_PTE_LINUX_SWAP);
  check_notpresent(fx, fx->cr3, &o4, gva, 1, 0, SR_PTE_NONE);
  check_notpresent(fx, fx->cr3, &o4, gva, 1, swp, SR_PTE_LINUX_SWAP);
  check_notpresent(fx, fx->cr3, &o4, gva, 1, swp | PS_, SR_PTE_UNKNOWN);
  check_notpresent(fx, fx->cr3, &ow, gva, 3,
                   (UINT64_C(0x99) << 32) | (2 << 12) | (4 << 5),
                   SR_PTE_WIN_PAGEFILE);
  for (int level = 5; level >= 1; level--)
    check_notpresent(fx, fx->cr35, &o5, gva5, level, 0, SR_PTE_NONE);

  /* The classification fields of a swap entry come through. */
  set_entry(fx, fx->cr3, gva, 1, swp);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.pte.swap_type, 5);
  assert_int_equal(t.pte.swap_offset, 0x777);
  assert_false(t.pte.resident);
  /* Protection accumulates over the levels followed only. */
  assert_int_equal(t.prot, SR_PROT_W | SR_PROT_U);
}

static void test_translate_windows_kinds(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x10000;
  sr_walk_opts_t ow = opts_of(SR_PAGING_4LEVEL, SR_OS_WINDOWS, 0, 0);
  sr_pte_info_t as;
  sr_translation_t t;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_WIN_PAGEFILE;
  as.swap_type = 3;
  as.swap_offset = 0x1234;
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, gva, 1, &as), 0);
  assert_int_equal(get_entry(fx, fx->cr3, gva, 1),
                   (UINT64_C(0x1234) << 32) | (3 << 12) | (4 << 5));
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, &ow, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.pte.kind, SR_PTE_WIN_PAGEFILE);
  assert_int_equal(t.pte.swap_type, 3);
  assert_int_equal(t.pte.swap_offset, 0x1234);
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3, gva, 1), 0);

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_WIN_PROTOTYPE;
  as.proto_addr = 0xffffa08000001230;
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, gva, 1, &as), 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, &ow, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.pte.kind, SR_PTE_WIN_PROTOTYPE);
  assert_int_equal(t.pte.proto_addr, 0xffffa08000001230);
  /* The prototype kind is not resident even with SR_WALK_RESIDENT. */
  ow.flags = SR_WALK_RESIDENT;
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, &ow, &t),
                   SR_ENOTPRESENT);
}

static void test_translate_table_in_hole(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x1234000, hole = 48 * MIB, far = BIT(36);
  sr_translation_t t;
  uint64_t old;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  /* PDE -> a page table in the hole [32M, 64M). */
  old = set_entry(fx, fx->cr3, gva, 2, hole | P_ | RW_ | US_);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t), SR_EHOLE);
  assert_int_equal(t.status, SR_EHOLE);
  assert_int_equal(t.stop_level, 1);
  assert_int_equal(t.fail_entry, 0);
  assert_int_equal(t.fail_entry_gpa, hole + ((gva >> 12) & 511) * 8);
  assert_int_equal(t.entry_gpa[0], t.fail_entry_gpa);
  check_levels(fx, fx->cr3, &t, 2);
  /* PDE -> far above every segment: not readable either. */
  set_entry(fx, fx->cr3, gva, 2, far | P_ | RW_ | US_);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t), SR_EHOLE);
  assert_int_equal(t.fail_entry_gpa, far + ((gva >> 12) & 511) * 8);
  /* PML4E into the hole: stops at the PDPT. */
  set_entry(fx, fx->cr3, gva, 2, old);
  old = set_entry(fx, fx->cr3, gva, 4, (hole + 0x5000) | P_ | RW_ | US_);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t), SR_EHOLE);
  assert_int_equal(t.stop_level, 3);
  assert_int_equal(t.fail_entry_gpa, hole + 0x5000 + ((gva >> 30) & 511) * 8);
  set_entry(fx, fx->cr3, gva, 4, old);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t), 0);
}

static void test_translate_root_in_hole(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0xffff888000000000;
  sr_walk_opts_t o5 = opts_of(SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0);
  sr_translation_t t;

  assert_int_equal(sr_translate(fx->image, 40 * MIB, gva, NULL, &t), SR_EHOLE);
  assert_int_equal(t.stop_level, 4);
  assert_int_equal(t.fail_entry, 0);
  assert_int_equal(t.fail_entry_gpa, 40 * MIB + 0x111 * 8);
  assert_int_equal(sr_translate(fx->image, 200 * MIB + 0xabc, gva, &o5, &t),
                   SR_EHOLE);
  assert_int_equal(t.stop_level, 5);
  assert_int_equal(t.fail_entry_gpa, 200 * MIB + 0x1ff * 8);
}

static void test_translate_truncated_file(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x5000;
  sr_translation_t t;
  sr_image_t* image = NULL;
  uint64_t top = 0, tgpa;
  int level, top_level = 0;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  /* Cut the file at the highest table page of the walk: that table's load
   * is beyond the end of the file (the image was opened before). */
  for (level = 4; level >= 1; level--) {
    tgpa = entry_gpa(fx, fx->cr3, gva, level) & ~UINT64_C(0xfff);
    if (tgpa >= top) {
      top = tgpa;
      top_level = level;
    }
  }
  /* Opened in the test body: test harnesses (cmocka) reset SIGBUS around
   * each test, and an open puts the library's handler back. */
  assert_int_equal(sr_kit_open_image(fx->kit, &image), 0);
  assert_int_equal(sr_translate(image, fx->cr3, gva, NULL, &t), 0);
  assert_int_equal(sr_kit_truncate(fx->kit, top), 0);
  assert_int_equal(sr_translate(image, fx->cr3, gva, NULL, &t), SR_EBEYOND);
  assert_int_equal(t.stop_level, top_level);
  assert_int_equal(t.fail_entry, 0);
  assert_int_equal(t.fail_entry_gpa, entry_gpa(fx, fx->cr3, gva, top_level));
  /* Again: now known to be beyond without faulting. */
  assert_int_equal(sr_translate(image, fx->cr3, gva, NULL, &t), SR_EBEYOND);
  assert_int_equal(t.stop_level, top_level);
  /* Everything gone. */
  assert_int_equal(sr_kit_truncate(fx->kit, 0), 0);
  assert_int_equal(sr_translate(image, fx->cr3, gva, NULL, &t), SR_EBEYOND);
  assert_int_equal(t.stop_level, 4);
  assert_int_equal(t.fail_entry_gpa, fx->cr3);
  sr_image_close(image);
}

static void test_translate_self_map(void** state) {
  fixture_t* fx = *state;
  const uint64_t k = 0x1ed, gva = 0x7f1234567000;
  const uint64_t self = sx48(k << 39 | k << 30 | k << 21 | k << 12);
  uint64_t i4 = (gva >> 39) & 511, i3 = (gva >> 30) & 511;
  uint64_t i2 = (gva >> 21) & 511, i1 = (gva >> 12) & 511;
  sr_translation_t t;
  uint64_t pt, pte;
  int level;

  assert_int_equal(self, 0xfffff6fb7dbed000);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  /* PML4[k] -> the PML4 itself (Windows' self-map, writable, kernel). */
  set_entry(fx, fx->cr3, self, 4, fx->cr3 | P_ | RW_);
  /* PML4 through itself four times: a 4K leaf that is the PML4 page. */
  assert_int_equal(sr_translate(fx->image, fx->cr3, self + k * 8, NULL, &t), 0);
  assert_int_equal(t.gpa, fx->cr3 + k * 8);
  assert_int_equal(t.page_size, SR_PAGE_4K);
  assert_int_equal(t.prot, SR_PROT_W);
  for (level = 4; level >= 1; level--) {
    assert_int_equal(t.entry[level - 1], fx->cr3 | P_ | RW_);
    assert_int_equal(t.entry_gpa[level - 1], fx->cr3 + k * 8);
  }
  /* The self-map address of gva's PTE lands in gva's page table. */
  pt = entry_gpa(fx, fx->cr3, gva, 1) & ~UINT64_C(0xfff);
  assert_int_equal(
      sr_translate(fx->image, fx->cr3,
                   sx48(k << 39 | i4 << 30 | i3 << 21 | i2 << 12) + i1 * 8,
                   NULL, &t),
      0);
  assert_int_equal(t.gpa, pt + i1 * 8);
  assert_int_equal(sr_image_read(fx->image, t.gpa, &pte, 8, NULL), 0);
  assert_int_equal(pte, get_entry(fx, fx->cr3, gva, 1));
}

static void test_translate_loop_pdpte_to_pml4(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x1000;
  sr_translation_t t;
  uint64_t pdpt;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  pdpt = entry_gpa(fx, fx->cr3, gva, 3) & ~UINT64_C(0xfff);
  set_entry(fx, fx->cr3, gva, 3, fx->cr3 | P_ | RW_ | US_);
  /* PML4[0] -> PDPT; PDPT[0] -> PML4 (as PD); PML4[0] -> PDPT (as PT);
   * PDPT[1] (index 1 of 0x1000) is empty. */
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 1);
  assert_int_equal(t.fail_entry, 0);
  assert_int_equal(t.fail_entry_gpa, pdpt + 8);
  assert_int_equal(t.entry_gpa[1], fx->cr3);
  assert_int_equal(t.entry_gpa[2], pdpt);
  /* PDPT[0] read as the PTE of gva 0: a 4K leaf at the PML4 page. */
  assert_int_equal(sr_translate(fx->image, fx->cr3, 0x10, NULL, &t), 0);
  assert_int_equal(t.gpa, fx->cr3 + 0x10);
}

/* The protection of a 4K mapping after or-ing / and-ing entry bits. */
static uint32_t prot_after(fixture_t* fx, uint64_t gva, int level, uint64_t set,
                           uint64_t clear) {
  uint64_t old = get_entry(fx, fx->cr3, gva, level);
  sr_translation_t t;

  set_entry(fx, fx->cr3, gva, level, (old | set) & ~clear);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t), 0);
  set_entry(fx, fx->cr3, gva, level, old);
  return t.prot;
}

static void test_translate_protection_accumulates(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x600000, ro = 0x601000, nx = 0x602000;
  const uint32_t wu = SR_PROT_W | SR_PROT_U;
  sr_translation_t t;
  int level;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K, wu),
                   0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, ro, 0x1000, SR_PAGE_4K, SR_PROT_U), 0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, nx, 0x1000, SR_PAGE_4K, wu | SR_PROT_NX), 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, NULL, &t), 0);
  assert_int_equal(t.prot, wu);
  assert_int_equal(sr_translate(fx->image, fx->cr3, ro, NULL, &t), 0);
  assert_int_equal(t.prot, SR_PROT_U);
  assert_int_equal(sr_translate(fx->image, fx->cr3, nx, NULL, &t), 0);
  assert_int_equal(t.prot, wu | SR_PROT_NX);
  for (level = 4; level >= 1; level--) {
    /* W needs every level, U needs every level, NX at any level. */
    assert_int_equal(prot_after(fx, gva, level, 0, RW_), SR_PROT_U);
    assert_int_equal(prot_after(fx, gva, level, 0, US_), SR_PROT_W);
    assert_int_equal(prot_after(fx, gva, level, NX_, 0), wu | SR_PROT_NX);
    assert_int_equal(prot_after(fx, gva, level, NX_, RW_ | US_), SR_PROT_NX);
  }
}

static void test_translate_resident_linux_protnone(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x3000, g2m = 0x40000000, seed = 77;
  sr_walk_opts_t o = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 0);
  sr_walk_opts_t or
      = opts_of(SR_PAGING_4LEVEL, SR_OS_LINUX, SR_WALK_RESIDENT, 0);
  sr_pte_info_t as;
  sr_translation_t t;
  uint64_t frame, frame2m;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, g2m, SR_PAGE_2M, SR_PAGE_2M,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, gva, 0x1000, seed), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, g2m, SR_PAGE_2M, seed), 0);
  frame = get_entry(fx, fx->cr3, gva, 1) & ADDR_4K;
  frame2m = get_entry(fx, fx->cr3, g2m, 2) & ADDR_2M;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_PROTNONE; /* frame 0: the frame it maps now */
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, gva, 1, &as), 0);
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, g2m, 2, &as), 0);
  /* pgtable-invert.h: the PFN bits are stored inverted. */
  assert_int_equal(get_entry(fx, fx->cr3, gva, 1),
                   (~frame & ADDR_4K) | BIT(5) | BIT(8));
  assert_int_equal(get_entry(fx, fx->cr3, g2m, 2),
                   (~frame2m & ADDR_2M) | BIT(5) | BIT(8) | PS_);

  /* Off by default. */
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x80, &o, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 1);
  assert_int_equal(t.pte.kind, SR_PTE_LINUX_PROTNONE);
  assert_true(t.pte.resident);
  assert_int_equal(t.pte.frame, frame);
  assert_false(t.resident);
  assert_int_equal(sr_translate(fx->image, fx->cr3, g2m, NULL, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 2);
  assert_int_equal(t.pte.frame, frame2m);

  /* On request: the frame it names. */
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x80, & or, &t), 0);
  assert_int_equal(t.gpa, frame + 0x80);
  assert_int_equal(t.page_size, SR_PAGE_4K);
  assert_true(t.resident);
  check_data(fx, t.gpa, gva + 0x80, 64, seed);
  assert_int_equal(sr_translate(fx->image, fx->cr3, g2m + 0x1ffff0, & or, &t),
                   0);
  assert_int_equal(t.gpa, frame2m + 0x1ffff0);
  assert_int_equal(t.page_size, SR_PAGE_2M);
  assert_true(t.resident);
  check_data(fx, t.gpa, g2m + 0x1ffff0, 16, seed);

  /* A swap entry stays not present with the flag. */
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3, gva, 1), 0);
  set_entry(fx, fx->cr3, gva, 1, linux_swp_entry(1, 99));
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, & or, &t),
                   SR_ENOTPRESENT);
  assert_false(t.resident);
}

static void test_translate_resident_windows_transition(void** state) {
  fixture_t* fx = *state;
  const uint64_t gva = 0x7ff000, seed = 3;
  sr_walk_opts_t o = opts_of(SR_PAGING_4LEVEL, SR_OS_WINDOWS, 0, 0);
  sr_walk_opts_t or
      = opts_of(SR_PAGING_4LEVEL, SR_OS_WINDOWS, SR_WALK_RESIDENT, 0);
  sr_pte_info_t as;
  sr_translation_t t;
  uint64_t frame, pt;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, gva, 0x1000, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, gva, 0x1000, seed), 0);
  frame = get_entry(fx, fx->cr3, gva, 1) & ADDR_4K;
  pt = get_entry(fx, fx->cr3, gva, 2) & ADDR_4K;
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_WIN_TRANSITION;

  /* A transition PTE: a resident 4K page. */
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, gva, 1, &as), 0);
  assert_int_equal(get_entry(fx, fx->cr3, gva, 1), frame | BIT(11) | (4 << 5));
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x40, &o, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.pte.kind, SR_PTE_WIN_TRANSITION);
  assert_int_equal(t.pte.frame, frame);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x40, & or, &t), 0);
  assert_int_equal(t.gpa, frame + 0x40);
  assert_true(t.resident);
  check_data(fx, t.gpa, gva + 0x40, 64, seed);
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3, gva, 1), 0);

  /* A transition PDE: a resident page table, followed on request. */
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, gva, 2, &as), 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva, &o, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 2);
  assert_int_equal(t.pte.frame, pt);
  assert_int_equal(sr_translate(fx->image, fx->cr3, gva + 0x40, & or, &t), 0);
  assert_int_equal(t.stop_level, 1);
  assert_int_equal(t.gpa, frame + 0x40);
  assert_int_equal(t.page_size, SR_PAGE_4K);
  assert_true(t.resident);
  assert_int_equal(t.entry_gpa[0], pt + ((gva >> 12) & 511) * 8);
}

/* sr_kit_encode and sr_pte_classify agree, and both match the kernels'
 * formulas. */
static void test_translate_kit_encoding_agrees(void** state) {
  sr_pte_info_t in, out;
  uint64_t e;

  (void)state;
  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_LINUX_SWAP;
  in.swap_type = 31;
  in.swap_offset = 0x3456789abcd;
  assert_int_equal(sr_kit_encode(&in, 1, &e), 0);
  assert_int_equal(e, linux_swp_entry(31, 0x3456789abcd));
  assert_int_equal(sr_pte_classify(e, 1, SR_OS_LINUX, &out), SR_PTE_LINUX_SWAP);
  assert_int_equal(out.swap_type, 31);
  assert_int_equal(out.swap_offset, 0x3456789abcd);

  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_LINUX_PROTNONE;
  in.frame = 0x7654321000;
  assert_int_equal(sr_kit_encode(&in, 1, &e), 0);
  assert_int_equal(sr_pte_classify(e, 1, SR_OS_LINUX, &out),
                   SR_PTE_LINUX_PROTNONE);
  assert_int_equal(out.frame, 0x7654321000);
  in.frame = 0x7654200000;
  assert_int_equal(sr_kit_encode(&in, 2, &e), 0);
  assert_int_equal(sr_pte_classify(e, 2, SR_OS_LINUX, &out),
                   SR_PTE_LINUX_PROTNONE);
  assert_int_equal(out.frame, 0x7654200000);

  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_WIN_TRANSITION;
  in.frame = 0xabcdef000;
  assert_int_equal(sr_kit_encode(&in, 1, &e), 0);
  assert_int_equal(sr_pte_classify(e, 1, SR_OS_WINDOWS, &out),
                   SR_PTE_WIN_TRANSITION);
  assert_int_equal(out.frame, 0xabcdef000);

  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_WIN_PAGEFILE;
  in.swap_type = 15;
  in.swap_offset = 0xffffffff;
  assert_int_equal(sr_kit_encode(&in, 1, &e), 0);
  assert_int_equal(sr_pte_classify(e, 1, SR_OS_WINDOWS, &out),
                   SR_PTE_WIN_PAGEFILE);
  assert_int_equal(out.swap_type, 15);
  assert_int_equal(out.swap_offset, 0xffffffff);

  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_WIN_PROTOTYPE;
  in.proto_addr = 0xffffc00012345678;
  assert_int_equal(sr_kit_encode(&in, 1, &e), 0);
  assert_int_equal(sr_pte_classify(e, 1, SR_OS_WINDOWS, &out),
                   SR_PTE_WIN_PROTOTYPE);
  assert_int_equal(out.proto_addr, 0xffffc00012345678);

  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_NONE;
  assert_int_equal(sr_kit_encode(&in, 1, &e), 0);
  assert_int_equal(e, 0);
}

/* --- property test ------------------------------------------------------ */

/* Property: for random mappings built with the kit (4K / 2M / 1G pages,
 * fresh frames or chosen GPAs including holes, some paged out with random
 * kinds, under 4- and 5-level paging), sr_translate returns exactly what
 * the test recorded: the GPA of the page (for resident kinds only with
 * SR_WALK_RESIDENT), page size and protection, or SR_ENOTPRESENT with the
 * entry, its GPA and its classification; and the bytes read at the GPA are
 * the pattern the kit wrote (or the read reports a hole). */

typedef struct model_s {
  uint64_t gva;
  uint64_t page_size;
  uint32_t prot;
  int level;
  uint64_t gpa; /* page base */
  bool fresh;   /* own frames, filled with the pattern */
  sr_os_t os;
  sr_pte_info_t out; /* .kind PRESENT: present; else paged out as this */
  uint64_t entry;    /* the non-present entry expected */
} model_t;

static uint64_t rng_state;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t level_mask(int level) {
  return level == 1 ? ADDR_4K : level == 2 ? ADDR_2M : ADDR_1G;
}

/* A random non-present encoding for a leaf at `level`, as `os` writes it;
 * *entry is that entry from the formulas, info what classify must say. */
static void random_kind(int level, uint64_t frame, sr_os_t os,
                        sr_pte_info_t* as, sr_pte_info_t* expect,
                        uint64_t* entry) {
  unsigned r = (unsigned)(rnd() % 4);

  memset(as, 0, sizeof(*as));
  memset(expect, 0, sizeof(*expect));
  if (os == SR_OS_LINUX) {
    if (r == 0) {
      as->kind = SR_PTE_NONE;
      *entry = 0;
    } else if (r == 1 || level == 3) {
      as->kind = SR_PTE_LINUX_SWAP;
      as->swap_type = (uint32_t)(rnd() % 32);
      as->swap_offset = rnd() % ((UINT64_C(1) << 50) - 1);
      *entry = linux_swp_entry(as->swap_type, as->swap_offset);
      if (level == 3) { /* no swap entries in a PUD */
        as->kind = SR_PTE_NONE;
        as->swap_type = 0;
        as->swap_offset = 0;
        *entry = 0;
      }
    } else {
      as->kind = SR_PTE_LINUX_PROTNONE;
      as->frame = frame;
      *entry = (~frame & (level == 1 ? ADDR_4K : ADDR_2M)) | BIT(5) | BIT(8) |
               (level == 2 ? PS_ : 0);
    }
  } else {
    if (r == 0) {
      as->kind = SR_PTE_WIN_TRANSITION;
      as->frame = frame;
      *entry = frame | BIT(11) | (4 << 5);
    } else if (r == 1) {
      as->kind = SR_PTE_WIN_PROTOTYPE;
      as->proto_addr = sx48(rnd() & UINT64_C(0xfffffffffff8));
      *entry = (as->proto_addr << 16) | BIT(10);
    } else if (r == 2) {
      as->kind = SR_PTE_WIN_PAGEFILE;
      as->swap_type = (uint32_t)(rnd() % 16);
      as->swap_offset = 1 + rnd() % 0xfffffffe;
      *entry =
          (as->swap_offset << 32) | ((uint64_t)as->swap_type << 12) | (4 << 5);
    } else {
      as->kind = SR_PTE_NONE;
      *entry = 0;
    }
  }
  expect->kind = as->kind;
  expect->swap_type = as->swap_type;
  expect->swap_offset = as->swap_offset;
  expect->proto_addr = as->proto_addr;
  if (as->kind == SR_PTE_LINUX_PROTNONE || as->kind == SR_PTE_WIN_TRANSITION) {
    expect->frame = frame;
    expect->resident = true;
  }
}

/* Whether gpa is a hole in setup_holey's layout. */
static bool holey_hole(uint64_t gpa) {
  return (gpa >= 32 * MIB && gpa < 64 * MIB) || gpa >= 96 * MIB;
}

static void check_model(fixture_t* fx, uint64_t cr3, sr_paging_t paging,
                        const model_t* m, uint64_t seed) {
  sr_walk_opts_t o = opts_of(paging, m->os, 0, 0);
  uint64_t off = rnd() % m->page_size & ~UINT64_C(7);
  bool resident_ok;
  sr_translation_t t;
  unsigned char buf[8], want[8];
  int rc, i;

  /* A Windows transition entry above level 1 names a page table: followed
   * into a data page it would read data as entries, so not asked for. */
  if (rnd() % 2 && !(m->out.kind == SR_PTE_WIN_TRANSITION && m->level > 1))
    o.flags = SR_WALK_RESIDENT;
  rc = sr_translate(fx->image, cr3, m->gva + off, &o, &t);
  resident_ok = (o.flags & SR_WALK_RESIDENT) != 0 && m->out.resident;
  if (m->out.kind == SR_PTE_PRESENT || resident_ok) {
    assert_int_equal(rc, 0);
    assert_int_equal(t.gpa, m->gpa + off);
    assert_int_equal(t.page_size, m->page_size);
    assert_int_equal(t.stop_level, m->level);
    assert_int_equal(t.resident, resident_ok);
    if (!resident_ok)
      assert_int_equal(t.prot, m->prot);
    rc = sr_image_read(fx->image, t.gpa, buf, sizeof(buf), NULL);
    if (holey_hole(t.gpa)) {
      assert_int_equal(rc, SR_EHOLE);
    } else if (m->fresh) {
      assert_int_equal(rc, 0);
      for (i = 0; i < 8; i++)
        assert_int_equal(buf[i], sr_kit_pattern(seed, m->gva + off + i));
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(sr_kit_read_phys(fx->kit, t.gpa, want, 8), 0);
      assert_memory_equal(buf, want, 8);
    }
  } else {
    assert_int_equal(rc, SR_ENOTPRESENT);
    assert_int_equal(t.stop_level, m->level);
    assert_int_equal(t.fail_entry, m->entry);
    assert_int_equal(t.entry[m->level - 1], m->entry);
    assert_int_equal(t.fail_entry_gpa, entry_gpa(fx, cr3, m->gva, m->level));
    assert_int_equal(t.pte.kind, m->out.kind);
    assert_int_equal(t.pte.swap_type, m->out.swap_type);
    assert_int_equal(t.pte.swap_offset, m->out.swap_offset);
    assert_int_equal(t.pte.proto_addr, m->out.proto_addr);
    assert_int_equal(t.pte.frame, m->out.frame);
    assert_int_equal(t.pte.resident, m->out.resident);
    assert_int_equal(t.prot, SR_PROT_W | SR_PROT_U); /* upper levels */
  }
}

#define NMAP 1500

/* Random canonical base of a 512 GiB (PML4-entry) zone. */
static uint64_t zone_base(sr_paging_t paging, unsigned zone) {
  uint64_t z = (uint64_t)zone * 37 % 256 + (zone & 1) * 256;
  uint64_t va = z << 39;

  if (paging == SR_PAGING_5LEVEL) {
    va |= ((uint64_t)zone * 101 % 512) << 48;
    return (uint64_t)((int64_t)(va << 7) >> 7);
  }
  return sx48(va);
}

/* Whether [gva, gva + size) overlaps a mapping of the model. The test keeps
 * its own record: the kit may reuse a leaf that was paged out as zero. */
static bool model_overlaps(const model_t* m, unsigned n, uint64_t gva,
                           uint64_t size) {
  unsigned i;

  for (i = 0; i < n; i++)
    if (gva < m[i].gva + m[i].page_size && m[i].gva < gva + size)
      return true;
  return false;
}

static void property_run(fixture_t* fx, uint64_t cr3, sr_paging_t paging,
                         uint64_t seed) {
  model_t* m = calloc(NMAP, sizeof(*m));
  unsigned n = 0, fresh2m = 0, tries, i, paged;

  assert_non_null(m);
  for (tries = 0; n < NMAP && tries < 4 * NMAP; tries++) {
    model_t* c = &m[n];
    uint64_t zone = zone_base(paging, (unsigned)(rnd() % 6));
    unsigned r = (unsigned)(rnd() % 100);
    int rc;

    memset(c, 0, sizeof(*c));
    c->prot = (uint32_t)(rnd() % 8);
    c->os = rnd() % 2 ? SR_OS_WINDOWS : SR_OS_LINUX;
    c->out.kind = SR_PTE_PRESENT;
    if (r < 65) { /* 4K on fresh frames */
      c->page_size = SR_PAGE_4K;
      c->gva =
          zone + (rnd() % 4 << 30) + (rnd() % 32 << 21) + (rnd() % 512 << 12);
      c->fresh = true;
    } else if (r < 70 && fresh2m < 4) { /* 2M on fresh frames */
      c->page_size = SR_PAGE_2M;
      c->gva = zone + (rnd() % 4 << 30) + ((32 + rnd() % 32) << 21);
      c->fresh = true;
    } else if (r < 85) { /* 4K onto a chosen GPA: RAM, hole */
      c->page_size = SR_PAGE_4K;
      c->gva =
          zone + (rnd() % 4 << 30) + (rnd() % 32 << 21) + (rnd() % 512 << 12);
    } else if (r < 95) { /* 2M onto a chosen GPA */
      c->page_size = SR_PAGE_2M;
      c->gva = zone + (rnd() % 4 << 30) + ((32 + rnd() % 32) << 21);
    } else { /* 1G onto a chosen GPA */
      c->page_size = SR_PAGE_1G;
      c->gva = zone + ((4 + rnd() % 4) << 30);
    }
    if (model_overlaps(m, n, c->gva, c->page_size))
      continue;
    c->level = c->page_size == SR_PAGE_4K   ? 1
               : c->page_size == SR_PAGE_2M ? 2
                                            : 3;
    if (c->fresh) {
      rc =
          sr_kit_map(fx->kit, cr3, c->gva, c->page_size, c->page_size, c->prot);
    } else {
      /* RAM [0, 32M), hole [32M, 64M), RAM [64M, 96M). */
      uint64_t span = 96 * MIB / c->page_size;
      c->gpa = rnd() % (c->page_size == SR_PAGE_1G ? 1 : span) * c->page_size;
      if (c->page_size == SR_PAGE_1G && rnd() % 2)
        c->gpa = SR_PAGE_1G * (1 + rnd() % 64); /* above all RAM: a hole */
      rc = sr_kit_map_gpa(fx->kit, cr3, c->gva, c->page_size, c->gpa,
                          c->page_size, c->prot);
    }
    if (rc == SR_EEXIST)
      continue; /* something is mapped there already */
    assert_int_equal(rc, 0);
    if (c->fresh) {
      if (c->page_size == SR_PAGE_2M)
        fresh2m++;
      assert_int_equal(sr_kit_fill(fx->kit, cr3, c->gva, c->page_size, seed),
                       0);
      c->gpa = get_entry(fx, cr3, c->gva, c->level) & level_mask(c->level);
    }
    /* A quarter of the leaves paged out, with a kind of their OS. */
    if (rnd() % 4 == 0) {
      sr_pte_info_t as;
      random_kind(c->level, c->gpa, c->os, &as, &c->out, &c->entry);
      as.frame = rnd() % 2 ? as.frame : 0; /* 0: the frame it maps now */
      assert_int_equal(sr_kit_page_out(fx->kit, cr3, c->gva, c->level, &as), 0);
      assert_int_equal(get_entry(fx, cr3, c->gva, c->level), c->entry);
    }
    n++;
  }
  assert_true(n > NMAP / 2);
  for (i = 0, paged = 0; i < n; i++)
    paged += m[i].out.kind != SR_PTE_PRESENT;
  printf("  %d-level: %u mappings, %u paged out\n",
         paging == SR_PAGING_5LEVEL ? 5 : 4, n, paged);
  /* The kit's entries as the model says: translate everything. */
  for (i = 0; i < n; i++) {
    check_model(fx, cr3, paging, &m[i], seed);
    check_model(fx, cr3, paging, &m[i], seed);
  }
  /* Addresses in never-used zones stop at the top level, unmapped. */
  for (i = 0; i < 100; i++) {
    sr_walk_opts_t o = opts_of(paging, SR_OS_LINUX, 0, 0);
    sr_translation_t t;
    uint64_t va = zone_base(paging, 6 + (unsigned)(rnd() % 10)) +
                  (rnd() & ((UINT64_C(1) << 39) - 1));
    assert_int_equal(sr_translate(fx->image, cr3, va, &o, &t), SR_ENOTPRESENT);
    assert_int_equal(t.stop_level, paging == SR_PAGING_5LEVEL ? 5 : 4);
    assert_int_equal(t.pte.kind, SR_PTE_NONE);
  }
  free(m);
}

static void test_translate_property_random_mappings(void** state) {
  fixture_t* fx = *state;
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0)
                              : (uint64_t)time(NULL) ^ (uint64_t)clock();

  printf(
      "property: random kit mappings translate and read back as "
      "recorded; seed %llu (SR_SEED overrides)\n",
      (unsigned long long)seed);
  rng_state = seed;
  property_run(fx, fx->cr3, SR_PAGING_4LEVEL, seed);
  property_run(fx, fx->cr35, SR_PAGING_5LEVEL, seed);
}

/* sr_entry_decode classifies entries as the walk does: PTE leaf, table,
 * 2M / 1G leaves with aligned frames, PS at PML4 bad, reserved bits above
 * MAXPHYADDR bad, not present; bad levels and options rejected. */
static void test_entry_decode(void** state) {
  sr_walk_opts_t o36 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 36};
  sr_entry_info_t e;
  (void)state;

  assert_int_equal(sr_entry_decode(0x8000000000005067ull, 1, NULL, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_LEAF);
  assert_int_equal(e.addr, 0x5000);
  assert_int_equal(e.size, SR_PAGE_4K);
  assert_int_equal(e.prot, SR_PROT_W | SR_PROT_U | SR_PROT_NX);
  assert_int_equal(sr_entry_decode(0x9007, 2, NULL, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_TABLE);
  assert_int_equal(e.addr, 0x9000);
  assert_int_equal(e.size, SR_PAGE_2M);
  assert_int_equal(sr_entry_decode(0x400083 | 0x1000, 2, NULL, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_LEAF); /* PAT bit 12 is not address */
  assert_int_equal(e.addr, 0x400000);
  assert_int_equal(e.prot, SR_PROT_W);
  assert_int_equal(sr_entry_decode(0x40000083, 3, NULL, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_LEAF);
  assert_int_equal(e.size, SR_PAGE_1G);
  assert_int_equal(sr_entry_decode(0x40000083, 4, NULL, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_BAD);
  assert_int_equal(sr_entry_decode(0x1000000001007ull, 2, &o36, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_BAD);
  assert_int_equal(sr_entry_decode(0x1000000001007ull, 2, NULL, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_TABLE);
  assert_int_equal(sr_entry_decode(0x5000, 1, NULL, &e), 0);
  assert_int_equal(e.cls, SR_ENTRY_NOTPRESENT);
  assert_int_equal(e.addr, 0);
  assert_int_equal(sr_entry_decode(1, 0, NULL, &e), SR_EINVAL);
  assert_int_equal(sr_entry_decode(1, 5, NULL, &e), SR_EINVAL); /* 4-level */
  assert_int_equal(sr_entry_decode(1, 1, NULL, NULL), SR_EINVAL);
  o36.maxphyaddr = 20;
  assert_int_equal(sr_entry_decode(1, 1, &o36, &e), SR_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_entry_decode),
      cmocka_unit_test_setup_teardown(test_translate_4k_leaf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_2m_leaf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_1g_leaf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_5level, setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_cr3_low_bits_ignored,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_cr3_above_maxphyaddr,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_noncanonical, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_invalid_arguments, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_reserved_bits, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_ps_in_pml5e, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_notpresent_each_level,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_windows_kinds, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_table_in_hole, setup_holey,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_root_in_hole, setup_holey,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_truncated_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_self_map, setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_loop_pdpte_to_pml4, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_translate_protection_accumulates,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_translate_resident_linux_protnone,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_translate_resident_windows_transition, setup, teardown),
      cmocka_unit_test(test_translate_kit_encoding_agrees),
      cmocka_unit_test_setup_teardown(test_translate_property_random_mappings,
                                      setup_holey, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
