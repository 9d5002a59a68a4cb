/* Tests for sr_read_virt and sr_read_batch on a holey kit image.
 *
 * The image mixes 4K and 2M pages filled with the kit's pattern, a swapped
 * out and a PROT_NONE page, an unmapped region, frames in a physical hole
 * and past the end of the file (truncated under the open image, so the
 * first load there raises a caught SIGBUS), page tables in a hole and past
 * the end of the file, and a 2M leaf with a reserved bit. Expected bytes come
 * from sr_kit_pattern; expected statuses and stop points from the single-read
 * reference (sr_translate + sr_image_read, page by page), which the batch
 * must equal item for item, and from the entries the kit reports.
 */
#include <pthread.h>
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
#include <swapread/read.h>

#define MIB (UINT64_C(1) << 20)
#define SEED 0x1234u
#define R4K UINT64_C(0x10000000) /* 64 KiB of 4K pages */
#define R4K_LEN (64 * 1024)
#define SWAPPED (R4K + 5 * 4096)  /* a Linux swap entry */
#define PROTNONE (R4K + 7 * 4096) /* Linux PROT_NONE (resident) */
#define R2M UINT64_C(0x40000000)  /* 4 MiB of 2M pages */
#define R2M_LEN (4 * MIB)
#define UNMAPPED UINT64_C(0x20000000)
#define DHOLE UINT64_C(0x30000000)   /* frame in the hole */
#define DBEYOND UINT64_C(0x30001000) /* frame past the end of the file */
#define THOLE UINT64_C(0x50000000)   /* its page table in the hole */
#define TBEYOND UINT64_C(0x50200000) /* its page table past the end */
#define BAD2M UINT64_C(0x60000000)   /* 2M leaf with bit 13 set */
#define HOLE_GPA (40 * MIB)
#define END_GPA (128 * MIB) /* end of the second segment */
#define CUT (1 * MIB)       /* bytes truncated off the file */
#define TBL_ (UINT64_C(7))  /* P | RW | US */

typedef struct fixture_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  uint64_t swap_entry; /* the PTE of SWAPPED */
} fixture_t;

static int setup(void** state) {
  fixture_t* fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  *state = fx;
  return 0;
}

/* Builds the image. Called from the test body: the image must be opened
 * there, since cmocka replaces the SIGBUS handler around each test and an
 * open puts the library's back. */
static void build(fixture_t* fx) {
  /* [0, 32M) at file 0, hole [32M, 64M), [64M, 128M) at file 32M */
  static const sr_segment_t seg[2] = {{0, 32 * MIB, 0},
                                      {64 * MIB, 64 * MIB, 32 * MIB}};
  sr_kit_opts_t opts;
  sr_pte_info_t info;
  uint64_t rw_u = SR_PROT_W | SR_PROT_U, e;

  memset(&opts, 0, sizeof(opts));
  opts.seg = seg;
  opts.nseg = 2;
  assert_int_equal(sr_kit_create(&fx->kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3), 0);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, R4K, R4K_LEN, SR_PAGE_4K, rw_u),
                   0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, R4K, R4K_LEN, SEED), 0);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, R2M, R2M_LEN, SR_PAGE_2M, rw_u),
                   0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, R2M, R2M_LEN, SEED), 0);
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = 1;
  info.swap_offset = 77;
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, SWAPPED, 1, &info), 0);
  assert_int_equal(
      sr_kit_get_entry(fx->kit, fx->cr3, SWAPPED, 1, &fx->swap_entry), 0);
  info.kind = SR_PTE_LINUX_PROTNONE;
  info.frame = 0;
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, PROTNONE, 1, &info), 0);
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, DHOLE, SR_PAGE_4K, HOLE_GPA,
                                  SR_PAGE_4K, rw_u),
                   0);
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, DBEYOND, SR_PAGE_4K,
                                  END_GPA - CUT / 2, SR_PAGE_4K, rw_u),
                   0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, THOLE, SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, THOLE, 2, HOLE_GPA | TBL_, NULL), 0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, TBEYOND, SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, TBEYOND, 2,
                                    (END_GPA - CUT / 2) | TBL_, NULL),
                   0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, BAD2M, SR_PAGE_2M, SR_PAGE_2M, rw_u), 0);
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, BAD2M, 2, &e), 0);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, BAD2M, 2,
                                    e | (UINT64_C(1) << 13), NULL),
                   0);
  /* the file then loses its last CUT bytes under the open image: GPAs
   * [END - CUT, END) are beyond it (the first load there faults) */
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
  assert_int_equal(sr_kit_truncate(fx->kit, 96 * MIB - CUT), 0);
}

static int teardown(void** state) {
  fixture_t* fx = *state;
  sr_image_close(fx->image);
  sr_kit_destroy(fx->kit);
  free(fx);
  return 0;
}

static void check_pattern(const unsigned char* buf, uint64_t gva, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (buf[i] != sr_kit_pattern(SEED, gva + i))
      fail_msg("byte %zu of 0x%llx: 0x%02x, want 0x%02x", i,
               (unsigned long long)gva, buf[i], sr_kit_pattern(SEED, gva + i));
}

/* The single-read reference for one item: per page, sr_translate then
 * sr_image_read; the first failure decides, the first page's leaf is
 * reported on success. */
static void reference(const sr_image_t* image, uint64_t cr3,
                      const sr_walk_opts_t* opts, const sr_batch_item_t* in,
                      sr_batch_item_t* out, unsigned char* buf) {
  sr_translation_t tr;
  size_t off = 0, n;
  int rc;

  memset(out, 0, sizeof(*out));
  if (in->buf == NULL || in->len == 0 || in->len > 4096) {
    out->status = SR_EINVAL;
    return;
  }
  while (off < in->len) {
    n = 4096 - ((in->gva + off) & 4095);
    if (n > in->len - off)
      n = in->len - off;
    rc = sr_translate(image, cr3, in->gva + off, opts, &tr);
    if (rc == 0)
      rc = sr_image_read(image, tr.gpa, buf + off, n, NULL);
    if (off == 0 || rc != 0) {
      out->walked = tr.status == 0;
      out->level = tr.stop_level;
      out->entry = tr.status == 0 ? tr.entry[tr.stop_level - 1] : tr.fail_entry;
      out->entry_gpa =
          tr.status == 0 ? tr.entry_gpa[tr.stop_level - 1] : tr.fail_entry_gpa;
      out->gpa = tr.status == 0 ? tr.gpa : 0;
    }
    if (rc != 0) {
      out->status = rc;
      return;
    }
    off += n;
  }
}

/* Reads items[0..n) both ways and compares every field and, for status 0,
 * the bytes. */
static void check_batch(const fixture_t* fx, const sr_walk_opts_t* opts,
                        sr_batch_item_t* items, size_t n) {
  sr_batch_item_t want;
  unsigned char* ref = malloc(4096);
  size_t i, ok = 0;
  int got;

  assert_non_null(ref);
  got = sr_read_batch(fx->image, fx->cr3, opts, items, n);
  for (i = 0; i < n; i++) {
    reference(fx->image, fx->cr3, opts, &items[i], &want, ref);
    if (items[i].status != want.status || items[i].walked != want.walked ||
        items[i].level != want.level || items[i].entry != want.entry ||
        items[i].entry_gpa != want.entry_gpa || items[i].gpa != want.gpa)
      fail_msg(
          "item %zu (gva 0x%llx len %zu): status %s/%s walked %d/%d "
          "level %d/%d entry 0x%llx/0x%llx at 0x%llx/0x%llx gpa "
          "0x%llx/0x%llx",
          i, (unsigned long long)items[i].gva, items[i].len,
          sr_err_name(items[i].status), sr_err_name(want.status),
          items[i].walked, want.walked, items[i].level, want.level,
          (unsigned long long)items[i].entry, (unsigned long long)want.entry,
          (unsigned long long)items[i].entry_gpa,
          (unsigned long long)want.entry_gpa, (unsigned long long)items[i].gpa,
          (unsigned long long)want.gpa);
    if (want.status == 0) {
      assert_memory_equal(items[i].buf, ref, items[i].len);
      ok++;
    }
  }
  assert_int_equal(got, (int)ok);
  free(ref);
}

static unsigned char bufs[64][4096];

static void set_item(sr_batch_item_t* it, uint64_t gva, size_t len, int k) {
  memset(it, 0, sizeof(*it));
  it->gva = gva;
  it->len = len;
  it->buf = bufs[k];
  it->status = 12345; /* must be overwritten */
}

/* Every kind of outcome, each compared with the single-read reference. */
static void test_read_batch_matches_single(void** state) {
  fixture_t* fx = *state;
  sr_batch_item_t it[20];
  sr_walk_opts_t resident = {SR_PAGING_4LEVEL, SR_OS_LINUX, SR_WALK_RESIDENT,
                             0};
  int k = 0;

  build(fx);

  set_item(&it[k], R4K + 8, 8, k), k++;
  set_item(&it[k], R4K + 4096 - 3, 6, k), k++;         /* crosses a page */
  set_item(&it[k], R4K + 4 * 4096 + 4090, 64, k), k++; /* into SWAPPED */
  set_item(&it[k], SWAPPED + 16, 8, k), k++;
  set_item(&it[k], PROTNONE, 4096, k), k++;
  set_item(&it[k], R2M + SR_PAGE_2M - 2, 4, k), k++; /* across 2M leaves */
  set_item(&it[k], R2M + 12345, 100, k), k++;
  set_item(&it[k], UNMAPPED, 8, k), k++;
  set_item(&it[k], DHOLE + 8, 8, k), k++;
  set_item(&it[k], DBEYOND, 16, k), k++;
  set_item(&it[k], THOLE, 8, k), k++;
  set_item(&it[k], TBEYOND + 64, 8, k), k++;
  set_item(&it[k], BAD2M + 4096, 8, k), k++;
  set_item(&it[k], UINT64_C(0x0000800000000000), 8, k), k++; /* noncanon */
  set_item(&it[k], R4K, 0, k), k++;                          /* bad len */
  set_item(&it[k], R4K, 4097, k), k++;
  set_item(&it[k], R4K + 4 * 4096, 4096, k), k++;
  it[k - 1].buf = NULL;
  set_item(&it[k], R4K + 3 * 4096, 4096, k), k++;
  check_batch(fx, NULL, it, (size_t)k);
  /* spot checks against the kit rather than the reference */
  assert_int_equal(it[0].status, 0);
  check_pattern(it[0].buf, it[0].gva, 8);
  check_pattern(it[1].buf, it[1].gva, 6);
  assert_int_equal(it[3].status, SR_ENOTPRESENT);
  assert_int_equal(it[3].level, 1);
  assert_int_equal(it[3].entry, fx->swap_entry);
  assert_int_equal(it[4].status, SR_ENOTPRESENT);
  assert_int_equal(it[7].status, SR_ENOTPRESENT);
  assert_int_equal(it[8].status, SR_EHOLE);
  assert_true(it[8].walked);
  assert_int_equal(it[8].gpa, HOLE_GPA + 8);
  assert_int_equal(it[9].status, SR_EBEYOND);
  assert_int_equal(it[10].status, SR_EHOLE);
  assert_false(it[10].walked);
  assert_int_equal(it[10].level, 1);
  assert_int_equal(it[11].status, SR_EBEYOND);
  assert_int_equal(it[12].status, SR_EBADENTRY);
  assert_int_equal(it[12].level, 2);
  assert_int_equal(it[13].status, SR_ENONCANON);
  assert_int_equal(it[14].status, SR_EINVAL);
  assert_int_equal(it[15].status, SR_EINVAL);
  assert_int_equal(it[16].status, SR_EINVAL);
  check_pattern(it[17].buf, it[17].gva, 4096);

  /* with SR_WALK_RESIDENT the PROT_NONE page reads */
  check_batch(fx, &resident, it, (size_t)k);
  assert_int_equal(it[4].status, 0);
  check_pattern(it[4].buf, PROTNONE, 4096);
}

static void test_read_batch_args(void** state) {
  fixture_t* fx = *state;
  sr_batch_item_t it;
  sr_walk_opts_t bad = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 30};
  sr_walk_opts_t phys36 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 36};

  build(fx);

  set_item(&it, R4K, 8, 0);
  assert_int_equal(sr_read_batch(NULL, fx->cr3, NULL, &it, 1), SR_EINVAL);
  assert_int_equal(sr_read_batch(fx->image, fx->cr3, NULL, NULL, 1), SR_EINVAL);
  assert_int_equal(sr_read_batch(fx->image, fx->cr3, &bad, &it, 1), SR_EINVAL);
  assert_int_equal(sr_read_batch(fx->image, UINT64_C(1) << 40, &phys36, &it, 1),
                   SR_EINVAL);
  assert_int_equal(it.status, 12345); /* untouched */
  assert_int_equal(sr_read_batch(fx->image, fx->cr3, NULL, NULL, 0), 0);
}

static uint64_t xorshift(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Property: for random items over every region of the image (random
 * offsets, lengths 1..4096, some crossing pages, both walk modes), the
 * batch equals the single-read reference item for item. */
static void test_read_batch_property(void** state) {
  static const struct {
    uint64_t base, span;
  } reg[] = {{R4K, R4K_LEN},         {R2M, R2M_LEN},
             {UNMAPPED, SR_PAGE_2M}, {DHOLE, 2 * SR_PAGE_4K},
             {THOLE, SR_PAGE_4K},    {TBEYOND, SR_PAGE_4K},
             {BAD2M, SR_PAGE_2M}};
  fixture_t* fx = *state;
  sr_batch_item_t it[64];
  sr_walk_opts_t opts = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 0};
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
  uint64_t s = seed | 1, r;
  int round, k;

  build(fx);

  printf("test_read_batch_property: seed %llu (SR_SEED overrides)\n",
         (unsigned long long)seed);
  for (round = 0; round < 200; round++) {
    for (k = 0; k < 64; k++) {
      r = xorshift(&s) % (sizeof(reg) / sizeof(reg[0]));
      set_item(&it[k], reg[r].base + xorshift(&s) % reg[r].span,
               xorshift(&s) % 4 == 0 ? 1 + xorshift(&s) % 4096
                                     : 1 + xorshift(&s) % 16,
               k);
    }
    opts.flags = round % 2 ? SR_WALK_RESIDENT : 0;
    check_batch(fx, &opts, it, 64);
  }
}

static void test_read_virt_whole_ranges(void** state) {
  fixture_t* fx = *state;
  static unsigned char buf[3 * 4096 + 20000];
  sr_translation_t tr;
  sr_vread_t vr;

  build(fx);

  /* 4K pages, unaligned start, three pages */
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, R4K + 100, buf, 3 * 4096, &vr), 0);
  assert_int_equal(vr.done, 3 * 4096);
  check_pattern(buf, R4K + 100, 3 * 4096);
  assert_int_equal(sr_translate(fx->image, fx->cr3, R4K + 100, NULL, &tr), 0);
  assert_int_equal(vr.gpa, tr.gpa);
  assert_int_equal(vr.prot, SR_PROT_W | SR_PROT_U);
  /* across two 2M leaves */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL,
                                R2M + SR_PAGE_2M - 10000, buf, 20000, &vr),
                   0);
  assert_int_equal(vr.done, 20000);
  check_pattern(buf, R2M + SR_PAGE_2M - 10000, 20000);
}

static void test_read_virt_stops(void** state) {
  fixture_t* fx = *state;
  static unsigned char buf[8 * 4096];
  sr_vread_t vr;
  sr_walk_opts_t resident = {SR_PAGING_4LEVEL, SR_OS_LINUX, SR_WALK_RESIDENT,
                             0};
  uint64_t egpa;

  build(fx);

  /* stops at the swapped-out page, after the bytes before it */
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, R4K + 100, buf, sizeof(buf), &vr),
      SR_ENOTPRESENT);
  assert_int_equal(vr.done, SWAPPED - (R4K + 100));
  check_pattern(buf, R4K + 100, vr.done);
  assert_int_equal(vr.stop.status, SR_ENOTPRESENT);
  assert_int_equal(vr.stop.stop_level, 1);
  assert_int_equal(vr.stop.fail_entry, fx->swap_entry);
  assert_int_equal(sr_kit_entry_gpa(fx->kit, fx->cr3, SWAPPED, 1, &egpa), 0);
  assert_int_equal(vr.stop.fail_entry_gpa, egpa);
  assert_int_equal(vr.stop.pte.kind, SR_PTE_LINUX_SWAP);
  assert_int_equal(vr.stop.pte.swap_offset, 77);

  /* PROT_NONE: not present, unless resident reads are allowed */
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, PROTNONE - 8, buf, 16, &vr),
      SR_ENOTPRESENT);
  assert_int_equal(vr.done, 8);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, &resident, PROTNONE - 8, buf, 4096, &vr),
      0);
  assert_true(vr.resident);
  check_pattern(buf, PROTNONE - 8, 4096);

  /* the data of a page in a hole / past the end of the file */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, DHOLE, buf, 8, &vr),
                   SR_EHOLE);
  assert_int_equal(vr.done, 0);
  assert_int_equal(vr.stop.status, 0);
  assert_int_equal(vr.stop.gpa, HOLE_GPA);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, DBEYOND, buf, 8, &vr),
                   SR_EBEYOND);
  /* walk errors */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, THOLE, buf, 8, &vr),
                   SR_EHOLE);
  assert_int_equal(vr.stop.stop_level, 1);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, BAD2M, buf, 8, &vr),
                   SR_EBADENTRY);
  assert_int_equal(vr.stop.stop_level, 2);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, UNMAPPED, buf, 8, &vr),
      SR_ENOTPRESENT);
  assert_int_equal(vr.stop.stop_level, 2);
  /* a range running into the non-canonical hole */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL,
                                UINT64_C(0x00007ffffffffff8), buf, 16, &vr),
                   SR_ENOTPRESENT);
}

static void test_read_virt_args(void** state) {
  fixture_t* fx = *state;
  unsigned char buf[8];
  sr_walk_opts_t bad = {SR_PAGING_4LEVEL, SR_OS_LINUX, 1u << 9, 0};
  sr_vread_t vr;

  build(fx);

  assert_int_equal(sr_read_virt(NULL, fx->cr3, NULL, R4K, buf, 8, &vr),
                   SR_EINVAL);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, R4K, NULL, 8, &vr),
                   SR_EINVAL);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, R4K, buf, 0, &vr),
                   SR_EINVAL);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, UINT64_MAX - 3, buf, 8, &vr),
      SR_EINVAL);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, &bad, R4K, buf, 8, &vr),
                   SR_EINVAL);
  assert_int_equal(vr.done, 0);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, R4K, buf, 8, NULL),
                   0);
  check_pattern(buf, R4K, 8);
}

/* The canonical hole is never read through: a non-canonical VA stops the
 * read with SR_ENONCANON (no byte copied), and a range running from the
 * last user page into the hole stops at the hole, even when the kernel half
 * the dropped top bits would alias is mapped. */
static void test_read_virt_stops_at_canonical_hole(void** state) {
  const uint64_t user_top = UINT64_C(0x7ffffffff000);
  const uint64_t kbase = UINT64_C(0xffff800000000000);
  const uint64_t alias = UINT64_C(0x0000800000000000); /* kbase, top cut */
  unsigned char buf[8192];
  sr_kit_opts_t opts;
  sr_image_t* image;
  sr_kit_t* kit;
  sr_vread_t vr;
  uint64_t cr3;
  size_t i;

  (void)state;
  memset(&opts, 0, sizeof(opts));
  opts.size = 8 * MIB;
  assert_int_equal(sr_kit_create(&kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, user_top, 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_map(kit, cr3, kbase, 2 * 4096, SR_PAGE_4K, 0), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, user_top, 4096, SEED), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, kbase, 2 * 4096, SEED), 0);
  assert_int_equal(sr_kit_open_image(kit, &image), 0);

  assert_int_equal(sr_read_virt(image, cr3, NULL, alias, buf, 8, &vr),
                   SR_ENONCANON);
  assert_int_equal(vr.done, 0);
  assert_int_equal(vr.stop.status, SR_ENONCANON);

  memset(buf, 0, sizeof(buf));
  assert_int_equal(sr_read_virt(image, cr3, NULL, user_top, buf, 8192, &vr),
                   SR_ENONCANON);
  assert_int_equal(vr.done, 4096);
  for (i = 0; i < 4096; i++)
    assert_int_equal(buf[i], sr_kit_pattern(SEED, user_top + i));

  sr_image_close(image);
  sr_kit_destroy(kit);
}

/* --- a guest that pages out under the reader -------------------------- */

typedef struct churn_s {
  fixture_t* fx;
  uint64_t frame;   /* GPA of the frame of page 2 of R4K */
  uint64_t present; /* its PTE */
  unsigned char good[4096], junk[4096];
  volatile int stop;
  volatile unsigned spin_sink;
  unsigned cycles;
} churn_t;

/* The writer: page out (a swap entry), scribble over the frame, put the
 * pattern back, page in again with a new value in the ignored bits 52..58
 * (so the entry never reads the same twice in a row: no ABA). */
static void* churn(void* arg) {
  churn_t* c = arg;
  uint64_t va = R4K + 2 * 4096;
  unsigned n, spin;

  for (n = 1; !c->stop; n++) {
    assert_int_equal(sr_kit_set_entry(c->fx->kit, c->fx->cr3, va, 1,
                                      c->fx->swap_entry, NULL),
                     0);
    assert_int_equal(sr_kit_write_phys(c->fx->kit, c->frame, c->junk, 4096), 0);
    for (spin = 0; spin < 2000; spin++) /* leave the junk there a while */
      c->spin_sink = spin;
    assert_int_equal(sr_kit_write_phys(c->fx->kit, c->frame, c->good, 4096), 0);
    assert_int_equal(
        sr_kit_set_entry(c->fx->kit, c->fx->cr3, va, 1,
                         c->present | ((uint64_t)(n & 127) << 52), NULL),
        0);
    c->cycles = n;
  }
  return NULL;
}

/* Property: while the page is paged out, scribbled over and paged back in
 * by another thread, no byte that sr_read_virt or sr_read_batch accepts
 * is junk (copy-then-revalidate rejects every copy the entry changed
 * under), and every call ends with 0, SR_ENOTPRESENT or SR_EBUSY. */
static void test_read_revalidates_under_pageout(void** state) {
  fixture_t* fx = *state;
  static churn_t c;
  static unsigned char buf[3 * 4096];
  sr_batch_item_t it[8];
  sr_translation_t tr;
  sr_vread_t vr;
  pthread_t th;
  uint64_t t0;
  unsigned ok = 0, rejected = 0, k;
  size_t i;
  int rc;

  build(fx);
  memset(&c, 0, sizeof(c));
  c.fx = fx;
  assert_int_equal(sr_translate(fx->image, fx->cr3, R4K + 2 * 4096, NULL, &tr),
                   0);
  c.frame = tr.gpa;
  c.present = tr.entry[0];
  for (i = 0; i < 4096; i++)
    c.good[i] = sr_kit_pattern(SEED, R4K + 2 * 4096 + i);
  memset(c.junk, 0xa5, sizeof(c.junk));
  assert_int_equal(pthread_create(&th, NULL, churn, &c), 0);
  t0 = (uint64_t)clock();
  while ((uint64_t)clock() - t0 < CLOCKS_PER_SEC / 4 || c.cycles < 100) {
    rc = sr_read_virt(fx->image, fx->cr3, NULL, R4K + 4096, buf, sizeof(buf),
                      &vr);
    assert_true(rc == 0 || rc == SR_ENOTPRESENT || rc == SR_EBUSY);
    check_pattern(buf, R4K + 4096, vr.done);
    if (rc == 0)
      ok++;
    else
      rejected++;
    for (k = 0; k < 8; k++)
      set_item(&it[k], R4K + 2 * 4096 + k * 512, 512, (int)k);
    sr_read_batch(fx->image, fx->cr3, NULL, it, 8);
    for (k = 0; k < 8; k++) {
      assert_true(it[k].status == 0 || it[k].status == SR_ENOTPRESENT ||
                  it[k].status == SR_EBUSY);
      if (it[k].status == 0)
        check_pattern(it[k].buf, it[k].gva, 512);
    }
  }
  c.stop = 1;
  assert_int_equal(pthread_join(th, NULL), 0);
  printf("revalidates_under_pageout: %u complete, %u stopped, %u cycles\n", ok,
         rejected, c.cycles);
  assert_true(ok + rejected > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_read_batch_matches_single, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_batch_args, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_batch_property, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_virt_whole_ranges, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_virt_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_virt_args, setup, teardown),
      cmocka_unit_test(test_read_virt_stops_at_canonical_hole),
      cmocka_unit_test_setup_teardown(test_read_revalidates_under_pageout,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
