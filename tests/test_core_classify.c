/* Tests for sr_pte_classify, sr_pte_kind_name and sr_gva_canonical.
 *
 * Expected values are built here from the encoders the guest kernels use
 * (Linux x86-64 __swp_entry in arch/x86/include/asm/pgtable_64.h, the L1TF
 * PFN inversion of pgtable-invert.h, Windows x64 MMPTE_* bit fields), not
 * from the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <swapread/translate.h>

/* Linux v6.1 arch/x86/include/asm/pgtable_64.h, verbatim arithmetic. */
#define SWP_TYPE_BITS 5
#define SWP_OFFSET_FIRST_BIT (8 + 1) /* _PAGE_BIT_PROTNONE + 1 */
#define SWP_OFFSET_SHIFT (SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS)
static uint64_t linux_swp_entry(uint64_t type, uint64_t offset) {
  return (~offset << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS) |
         (type << (64 - SWP_TYPE_BITS));
}

/* Linux PAGE_NONE PTE / PMD for a frame, PFN inverted (pgtable-invert.h:
 * every non-zero non-present entry has its PFN field xor'ed with ~0). */
#define PTE_PFN_MASK UINT64_C(0x000ffffffffff000)
#define PMD_PFN_MASK UINT64_C(0x000fffffffe00000)
#define L_ACCESSED (UINT64_C(1) << 5)
#define L_PSE (UINT64_C(1) << 7)
#define L_PROTNONE (UINT64_C(1) << 8)
static uint64_t linux_protnone_pte(uint64_t frame) {
  return ((frame ^ ~UINT64_C(0)) & PTE_PFN_MASK) | L_ACCESSED | L_PROTNONE;
}
static uint64_t linux_protnone_pmd(uint64_t frame) {
  return ((frame ^ ~UINT64_C(0)) & PMD_PFN_MASK) | L_ACCESSED | L_PROTNONE |
         L_PSE;
}

/* Windows x64 MMPTE bit fields (1803+). */
static uint64_t win_software(uint64_t prot, uint64_t file, uint64_t high) {
  return (prot << 5) | (file << 12) | (high << 32);
}
static uint64_t win_transition(uint64_t frame, uint64_t prot) {
  return (prot << 5) | (UINT64_C(1) << 11) | (frame & PTE_PFN_MASK);
}
static uint64_t win_prototype(uint64_t proto) {
  return (proto << 16) | (UINT64_C(1) << 10);
}

static void test_classify_zero_is_none(void** state) {
  sr_pte_info_t info;
  int level;

  (void)state;
  for (level = 1; level <= 5; level++) {
    memset(&info, 0xa5, sizeof(info));
    assert_int_equal(sr_pte_classify(0, level, SR_OS_LINUX, &info),
                     SR_PTE_NONE);
    assert_int_equal(info.kind, SR_PTE_NONE);
    assert_false(info.resident);
    assert_int_equal(info.frame, 0);
    assert_int_equal(sr_pte_classify(0, level, SR_OS_WINDOWS, &info),
                     SR_PTE_NONE);
  }
}

static void test_classify_present_is_present(void** state) {
  uint64_t entries[] = {1, 0x8000000012345067, 0xffffffffffffffff, 0x1e3};
  sr_pte_info_t info;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
    assert_int_equal(sr_pte_classify(entries[i], 1, SR_OS_LINUX, &info),
                     SR_PTE_PRESENT);
    assert_int_equal(info.kind, SR_PTE_PRESENT);
    assert_int_equal(sr_pte_classify(entries[i], 4, SR_OS_WINDOWS, NULL),
                     SR_PTE_PRESENT);
  }
}

static void check_swap(uint64_t type, uint64_t offset, int level) {
  uint64_t e = linux_swp_entry(type, offset);
  sr_pte_info_t info;

  assert_int_equal(e & 1, 0);
  assert_int_equal(sr_pte_classify(e, level, SR_OS_LINUX, &info),
                   SR_PTE_LINUX_SWAP);
  assert_int_equal(info.swap_type, type);
  assert_int_equal(info.swap_offset, offset);
  assert_false(info.resident);
  /* Soft-dirty, uffd-wp and exclusive (bits 1..3, and 4) are ignored. */
  assert_int_equal(sr_pte_classify(e | 0x1e, level, SR_OS_LINUX, &info),
                   SR_PTE_LINUX_SWAP);
  assert_int_equal(info.swap_type, type);
  assert_int_equal(info.swap_offset, offset);
}

static void test_classify_linux_swap_round_trip(void** state) {
  const uint64_t max = (UINT64_C(1) << 50) - 1;
  uint64_t offsets[] = {0, 1, 2, 0x12345, 0x123456789ab, max - 1};
  uint64_t types[] = {0, 1, 17, 31};
  size_t i, j;

  (void)state;
  for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    for (j = 0; j < sizeof(offsets) / sizeof(offsets[0]); j++) {
      check_swap(types[i], offsets[j], 1);
      check_swap(types[i], offsets[j], 2); /* PMD migration entries */
    }
  /* Max offset: ~offset has no bits in 9..58 left, only the type. */
  check_swap(31, max, 1);
  check_swap(1, max, 1);
}

static void test_classify_linux_swap_layout(void** state) {
  sr_pte_info_t info;

  (void)state;
  /* Type 0 offset 0: every offset bit (9..58) is set, bits 0..8 clear. */
  assert_int_equal(linux_swp_entry(0, 0), UINT64_C(0x07fffffffffffe00));
  assert_int_equal(
      sr_pte_classify(UINT64_C(0x07fffffffffffe00), 1, SR_OS_LINUX, &info),
      SR_PTE_LINUX_SWAP);
  assert_int_equal(info.swap_type, 0);
  assert_int_equal(info.swap_offset, 0);
  /* Type 31 with max offset: only the type bits. */
  assert_int_equal(
      sr_pte_classify(UINT64_C(0xf800000000000000), 1, SR_OS_LINUX, &info),
      SR_PTE_LINUX_SWAP);
  assert_int_equal(info.swap_type, 31);
  assert_int_equal(info.swap_offset, (UINT64_C(1) << 50) - 1);
  /* Type 0 with the max offset encodes as 0: the kernel never uses it, and
   * it reads as an empty entry. */
  assert_int_equal(linux_swp_entry(0, (UINT64_C(1) << 50) - 1), 0);
}

static void test_classify_linux_swap_only_low_levels(void** state) {
  uint64_t e = linux_swp_entry(3, 0x4242);

  (void)state;
  assert_int_equal(sr_pte_classify(e, 3, SR_OS_LINUX, NULL), SR_PTE_UNKNOWN);
  assert_int_equal(sr_pte_classify(e, 4, SR_OS_LINUX, NULL), SR_PTE_UNKNOWN);
  assert_int_equal(sr_pte_classify(e, 5, SR_OS_LINUX, NULL), SR_PTE_UNKNOWN);
  /* Bit 7 (PSE) set without bit 8: not a swap entry. */
  assert_int_equal(sr_pte_classify(e | L_PSE, 1, SR_OS_LINUX, NULL),
                   SR_PTE_UNKNOWN);
  assert_int_equal(sr_pte_classify(e | L_PSE, 2, SR_OS_LINUX, NULL),
                   SR_PTE_UNKNOWN);
}

static void test_classify_linux_protnone_pte(void** state) {
  uint64_t frames[] = {0, 0x1000, 0x12345000, 0x000ffffffffff000,
                       0x0000000fff000000};
  sr_pte_info_t info;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
    uint64_t e = linux_protnone_pte(frames[i]);
    assert_int_equal(sr_pte_classify(e, 1, SR_OS_LINUX, &info),
                     SR_PTE_LINUX_PROTNONE);
    assert_true(info.resident);
    assert_int_equal(info.frame, frames[i]);
    /* NX and the PAT bit (7 in a PTE) do not change the kind. */
    assert_int_equal(
        sr_pte_classify(e | (UINT64_C(1) << 63) | L_PSE, 1, SR_OS_LINUX, &info),
        SR_PTE_LINUX_PROTNONE);
    assert_int_equal(info.frame, frames[i]);
  }
  /* The stored PFN really is inverted: frame 0x12345000 keeps the
   * complement of its bits in 12..51. */
  assert_int_equal(linux_protnone_pte(0x12345000),
                   UINT64_C(0x000fffffedcba000) | 0x120);
}

static void test_classify_linux_protnone_pmd(void** state) {
  uint64_t frames[] = {0, 0x200000, 0x40200000, 0x000fffffffe00000};
  sr_pte_info_t info;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
    uint64_t e = linux_protnone_pmd(frames[i]);
    assert_int_equal(sr_pte_classify(e, 2, SR_OS_LINUX, &info),
                     SR_PTE_LINUX_PROTNONE);
    assert_true(info.resident);
    assert_int_equal(info.frame, frames[i]);
    /* Without PSE a PMD cannot be PROT_NONE; above the PMD never. */
    assert_int_equal(sr_pte_classify(e & ~L_PSE, 2, SR_OS_LINUX, &info),
                     SR_PTE_UNKNOWN);
    assert_false(info.resident);
    assert_int_equal(sr_pte_classify(e, 3, SR_OS_LINUX, NULL), SR_PTE_UNKNOWN);
  }
}

static void test_classify_windows_pagefile(void** state) {
  uint64_t files[] = {0, 1, 15};
  uint64_t highs[] = {1, 0x1234, 0xffffffff};
  sr_pte_info_t info;
  size_t i, j;

  (void)state;
  for (i = 0; i < 3; i++)
    for (j = 0; j < 3; j++) {
      uint64_t e = win_software(4, files[i], highs[j]);
      assert_int_equal(sr_pte_classify(e, 1, SR_OS_WINDOWS, &info),
                       SR_PTE_WIN_PAGEFILE);
      assert_int_equal(info.swap_type, files[i]);
      assert_int_equal(info.swap_offset, highs[j]);
      assert_false(info.resident);
      /* UsedPageTableEntries (bits 16..25) do not disturb the fields. */
      assert_int_equal(
          sr_pte_classify(e | (UINT64_C(0x3ff) << 16), 2, SR_OS_WINDOWS, &info),
          SR_PTE_WIN_PAGEFILE);
      assert_int_equal(info.swap_type, files[i]);
      assert_int_equal(info.swap_offset, highs[j]);
    }
}

static void test_classify_windows_demand_zero_is_none(void** state) {
  sr_pte_info_t info;

  (void)state;
  /* Protection set, no pagefile offset: demand-zero. */
  assert_int_equal(
      sr_pte_classify(win_software(4, 0, 0), 1, SR_OS_WINDOWS, &info),
      SR_PTE_NONE);
  assert_int_equal(info.kind, SR_PTE_NONE);
  assert_int_equal(
      sr_pte_classify(win_software(0x1f, 15, 0), 3, SR_OS_WINDOWS, &info),
      SR_PTE_NONE);
}

static void test_classify_windows_transition(void** state) {
  uint64_t frames[] = {0, 0x1000, 0x7654321000, 0x000ffffffffff000};
  sr_pte_info_t info;
  size_t i;
  int level;

  (void)state;
  for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++)
    for (level = 1; level <= 4; level++) {
      uint64_t e = win_transition(frames[i], 4);
      assert_int_equal(sr_pte_classify(e, level, SR_OS_WINDOWS, &info),
                       SR_PTE_WIN_TRANSITION);
      assert_true(info.resident);
      assert_int_equal(info.frame, frames[i]);
      /* Write (bit 1) and the unused top bits do not change the frame. */
      assert_int_equal(sr_pte_classify(e | 2 | (UINT64_C(0xfff) << 52), level,
                                       SR_OS_WINDOWS, &info),
                       SR_PTE_WIN_TRANSITION);
      assert_int_equal(info.frame, frames[i]);
    }
}

static void test_classify_windows_prototype(void** state) {
  uint64_t protos[] = {0xffffa08012345678, 0xffff800000000000,
                       0x00007ffffffffff8, 0x0000000000001000};
  sr_pte_info_t info;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
    uint64_t e = win_prototype(protos[i]);
    assert_int_equal(sr_pte_classify(e, 1, SR_OS_WINDOWS, &info),
                     SR_PTE_WIN_PROTOTYPE);
    assert_int_equal(info.proto_addr, protos[i]);
    assert_false(info.resident);
    /* Prototype wins over the transition bit (bit 11 is "Combined" in
     * MMPTE_PROTOTYPE). */
    assert_int_equal(
        sr_pte_classify(e | (UINT64_C(1) << 11), 1, SR_OS_WINDOWS, &info),
        SR_PTE_WIN_PROTOTYPE);
  }
}

static void test_classify_os_decides(void** state) {
  uint64_t swp = linux_swp_entry(2, 0x100);
  uint64_t wpf = win_software(1, 3, 0x99); /* MM_READONLY: bit 7 clear */

  (void)state;
  /* The same bits mean different things; the caller says which OS. */
  assert_int_equal(sr_pte_classify(wpf, 1, SR_OS_WINDOWS, NULL),
                   SR_PTE_WIN_PAGEFILE);
  assert_int_equal(sr_pte_classify(wpf, 1, SR_OS_LINUX, NULL),
                   SR_PTE_LINUX_SWAP);
  assert_int_not_equal(sr_pte_classify(swp, 1, SR_OS_WINDOWS, NULL),
                       SR_PTE_LINUX_SWAP);
  /* Unknown OS or level: a non-zero non-present entry is unknown. */
  assert_int_equal(sr_pte_classify(swp, 1, (sr_os_t)7, NULL), SR_PTE_UNKNOWN);
  assert_int_equal(sr_pte_classify(swp, 0, SR_OS_LINUX, NULL), SR_PTE_UNKNOWN);
  assert_int_equal(sr_pte_classify(wpf, 6, SR_OS_WINDOWS, NULL),
                   SR_PTE_UNKNOWN);
}

static void test_classify_kind_names(void** state) {
  (void)state;
  assert_string_equal(sr_pte_kind_name(SR_PTE_PRESENT), "present");
  assert_string_equal(sr_pte_kind_name(SR_PTE_NONE), "none");
  assert_string_equal(sr_pte_kind_name(SR_PTE_LINUX_SWAP), "linux-swap");
  assert_string_equal(sr_pte_kind_name(SR_PTE_LINUX_PROTNONE),
                      "linux-protnone");
  assert_string_equal(sr_pte_kind_name(SR_PTE_WIN_TRANSITION),
                      "win-transition");
  assert_string_equal(sr_pte_kind_name(SR_PTE_WIN_PROTOTYPE), "win-prototype");
  assert_string_equal(sr_pte_kind_name(SR_PTE_WIN_PAGEFILE), "win-pagefile");
  assert_string_equal(sr_pte_kind_name(SR_PTE_UNKNOWN), "unknown");
  assert_string_equal(sr_pte_kind_name((sr_pte_kind_t)99), "unknown");
  assert_string_equal(sr_pte_kind_name((sr_pte_kind_t)-1), "unknown");
}

static void test_classify_canonical_4level(void** state) {
  (void)state;
  assert_true(sr_gva_canonical(0, SR_PAGING_4LEVEL));
  assert_true(sr_gva_canonical(0x00007fffffffffff, SR_PAGING_4LEVEL));
  assert_false(sr_gva_canonical(0x0000800000000000, SR_PAGING_4LEVEL));
  assert_false(sr_gva_canonical(0xffff7fffffffffff, SR_PAGING_4LEVEL));
  assert_true(sr_gva_canonical(0xffff800000000000, SR_PAGING_4LEVEL));
  assert_true(sr_gva_canonical(0xffffffffffffffff, SR_PAGING_4LEVEL));
  assert_false(sr_gva_canonical(0x8000000000000000, SR_PAGING_4LEVEL));
  assert_false(sr_gva_canonical(0x0001000000000000, SR_PAGING_4LEVEL));
}

static void test_classify_canonical_5level(void** state) {
  (void)state;
  assert_true(sr_gva_canonical(0x00ffffffffffffff, SR_PAGING_5LEVEL));
  assert_false(sr_gva_canonical(0x0100000000000000, SR_PAGING_5LEVEL));
  assert_false(sr_gva_canonical(0xfeffffffffffffff, SR_PAGING_5LEVEL));
  assert_true(sr_gva_canonical(0xff00000000000000, SR_PAGING_5LEVEL));
  /* Non-canonical under 4-level, canonical under LA57. */
  assert_true(sr_gva_canonical(0x0000800000000000, SR_PAGING_5LEVEL));
  assert_true(sr_gva_canonical(0xffff7fffffffffff, SR_PAGING_5LEVEL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify_zero_is_none),
      cmocka_unit_test(test_classify_present_is_present),
      cmocka_unit_test(test_classify_linux_swap_round_trip),
      cmocka_unit_test(test_classify_linux_swap_layout),
      cmocka_unit_test(test_classify_linux_swap_only_low_levels),
      cmocka_unit_test(test_classify_linux_protnone_pte),
      cmocka_unit_test(test_classify_linux_protnone_pmd),
      cmocka_unit_test(test_classify_windows_pagefile),
      cmocka_unit_test(test_classify_windows_demand_zero_is_none),
      cmocka_unit_test(test_classify_windows_transition),
      cmocka_unit_test(test_classify_windows_prototype),
      cmocka_unit_test(test_classify_os_decides),
      cmocka_unit_test(test_classify_kind_names),
      cmocka_unit_test(test_classify_canonical_4level),
      cmocka_unit_test(test_classify_canonical_5level),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
