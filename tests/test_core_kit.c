/* Tests of the holey-image kit (sr_kit_*): backing files and layouts, the
 * frame allocator, page tables (entries checked against the SDM bit layout
 * computed here), patterns, non-present encodings (against the spec's
 * formulas and sr_pte_classify), paging out and in, garbage entries, holes,
 * truncation and ELF cores. Public API only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <swapread/kit.h>

/* Entry bits (Intel SDM vol. 3A, 4.5), spelled out independently. */
#define E_P (UINT64_C(1) << 0)
#define E_RW (UINT64_C(1) << 1)
#define E_US (UINT64_C(1) << 2)
#define E_A (UINT64_C(1) << 5)
#define E_D (UINT64_C(1) << 6)
#define E_PS (UINT64_C(1) << 7)
#define E_G (UINT64_C(1) << 8)
#define E_NX (UINT64_C(1) << 63)
#define E_ADDR UINT64_C(0x000ffffffffff000)

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

typedef struct fixture_s {
  sr_kit_t* kit;
  sr_kit_t* kit2;
  sr_image_t* image;
  sr_image_t* image2;
  char dir[64];
  char path[96];
  char path2[96];
} fixture_t;

static int setup(void** state) {
  fixture_t* f = calloc(1, sizeof(*f));
  if (f == NULL)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fixture_t* f = *state;
  sr_image_close(f->image);
  sr_image_close(f->image2);
  sr_kit_destroy(f->kit);
  sr_kit_destroy(f->kit2);
  if (f->path[0] != '\0')
    unlink(f->path);
  if (f->path2[0] != '\0')
    unlink(f->path2);
  if (f->dir[0] != '\0')
    rmdir(f->dir);
  free(f);
  return 0;
}

/* A fresh temporary directory in f->dir; f->path = dir/name. */
static void make_path(fixture_t* f, const char* name) {
  const char* tmp = getenv("TMPDIR");
  snprintf(f->dir, sizeof(f->dir), "%s/sr-kit-XXXXXX",
           tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
}

static sr_kit_t* raw_kit(fixture_t* f, uint64_t size) {
  sr_kit_opts_t opts = {.size = size};
  assert_int_equal(sr_kit_create(&f->kit, &opts), 0);
  return f->kit;
}

static uint64_t file_size(int fd) {
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  return (uint64_t)st.st_size;
}

static uint64_t index_of(uint64_t va, int level) {
  return (va >> (12 + 9 * (level - 1))) & 511;
}

static uint64_t leaf_bits(uint64_t page_size, uint32_t prot) {
  uint64_t b = E_P | E_A | E_D;
  if (prot & SR_PROT_W)
    b |= E_RW;
  if (prot & SR_PROT_U)
    b |= E_US;
  if (prot & SR_PROT_NX)
    b |= E_NX;
  if (page_size != SR_PAGE_4K)
    b |= E_PS;
  return b;
}

static int leaf_level(uint64_t page_size) {
  return page_size == SR_PAGE_4K ? 1 : page_size == SR_PAGE_2M ? 2 : 3;
}

/* Checks the whole walk of gva: each upper entry present, writable, user,
 * no PS, pointing at the table that holds the next entry (at the index of
 * the SDM); the leaf has exactly the bits of (page_size, prot) and a frame
 * aligned to page_size. Returns the leaf's frame. */
static uint64_t check_walk(sr_kit_t* kit, uint64_t cr3, int top, uint64_t gva,
                           uint64_t page_size, uint32_t prot) {
  int leaf = leaf_level(page_size);
  uint64_t table = cr3;
  uint64_t e = 0;
  for (int level = top; level >= leaf; level--) {
    uint64_t gpa;
    assert_int_equal(sr_kit_entry_gpa(kit, cr3, gva, level, &gpa), 0);
    assert_int_equal(gpa, table + 8 * index_of(gva, level));
    assert_int_equal(sr_kit_get_entry(kit, cr3, gva, level, &e), 0);
    if (level > leaf) {
      assert_int_equal(e & (E_P | E_RW | E_US | E_PS), E_P | E_RW | E_US);
      table = e & E_ADDR;
      assert_int_not_equal(table, 0);
    }
  }
  assert_int_equal(e & ~E_ADDR, leaf_bits(page_size, prot));
  assert_int_equal(e & E_ADDR & (page_size - 1), 0);
  return e & E_ADDR;
}

/* --- create / destroy --- */

static void test_kit_create_memfd_default_size(void** state) {
  fixture_t* f = *state;
  sr_layout_t layout;
  assert_int_equal(sr_kit_create(&f->kit, NULL), 0);
  assert_true(sr_kit_fd(f->kit) >= 0);
  assert_int_equal(file_size(sr_kit_fd(f->kit)), 64 * MiB);
  sr_kit_layout(f->kit, &layout);
  assert_int_equal(layout.kind, SR_LAYOUT_RAW);
  assert_int_equal(layout.low, 64 * MiB);
  assert_int_equal(layout.nseg, 0);
}

static void test_kit_create_path_keeps_file(void** state) {
  fixture_t* f = *state;
  sr_kit_opts_t opts = {.size = 3 * MiB};
  struct stat st;
  uint8_t b = 0x5a;
  uint8_t r = 0;
  int fd;
  make_path(f, "ram");
  opts.path = f->path;
  assert_int_equal(sr_kit_create(&f->kit, &opts), 0);
  assert_int_equal(sr_kit_write_phys(f->kit, MiB + 7, &b, 1), 0);
  sr_kit_destroy(f->kit);
  f->kit = NULL;
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_size, 3 * MiB);
  fd = open(f->path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &r, 1, MiB + 7), 1);
  close(fd);
  assert_int_equal(r, 0x5a);
  /* A second create truncates the file. */
  assert_int_equal(sr_kit_create(&f->kit, &opts), 0);
  assert_int_equal(sr_kit_read_phys(f->kit, MiB + 7, &r, 1), 0);
  assert_int_equal(r, 0);
}

static void test_kit_create_segments(void** state) {
  fixture_t* f = *state;
  const sr_segment_t seg[2] = {{0, 2 * MiB, 0}, {4 * GiB, MiB, 2 * MiB}};
  sr_kit_opts_t opts = {.seg = seg, .nseg = 2};
  sr_layout_t layout;
  uint8_t b = 1;
  assert_int_equal(sr_kit_create(&f->kit, &opts), 0);
  assert_int_equal(file_size(sr_kit_fd(f->kit)), 3 * MiB);
  sr_kit_layout(f->kit, &layout);
  assert_int_equal(layout.kind, SR_LAYOUT_SEGMENTS);
  assert_int_equal(layout.nseg, 2);
  assert_memory_equal(layout.seg, seg, sizeof(seg));
  /* Between the segments, a hole; inside, the file at file_off. */
  assert_int_equal(sr_kit_write_phys(f->kit, 3 * MiB, &b, 1), SR_EHOLE);
  assert_int_equal(sr_kit_read_phys(f->kit, 5 * GiB, &b, 1), SR_EHOLE);
  assert_int_equal(sr_kit_write_phys(f->kit, 4 * GiB + 9, &b, 1), 0);
  assert_int_equal(pread(sr_kit_fd(f->kit), &b, 1, 2 * MiB + 9), 1);
  assert_int_equal(b, 1);
}

static void test_kit_create_rejects_bad_segments(void** state) {
  fixture_t* f = *state;
  static const sr_segment_t unsorted[2] = {{MiB, MiB, 0}, {0, MiB, MiB}};
  static const sr_segment_t overlap[2] = {{0, 2 * MiB, 0}, {MiB, MiB, 2 * MiB}};
  static const sr_segment_t empty[1] = {{0, 0, 0}};
  static const sr_segment_t wrap[1] = {{UINT64_MAX - 4095, 8192, 0}};
  static const sr_segment_t file_overlap[2] = {{0, MiB, 0}, {2 * MiB, MiB, 0}};
  const sr_segment_t* bad[] = {unsorted, overlap, empty, wrap, file_overlap};
  const size_t n[] = {2, 2, 1, 1, 2};
  sr_kit_opts_t opts = {0};
  for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
    opts.seg = bad[i];
    opts.nseg = n[i];
    assert_int_equal(sr_kit_create(&f->kit, &opts), SR_EBADLAYOUT);
    assert_null(f->kit);
  }
  opts.seg = NULL;
  opts.nseg = 1;
  assert_int_equal(sr_kit_create(&f->kit, &opts), SR_EINVAL);
  assert_int_equal(sr_kit_create(NULL, NULL), SR_EINVAL);
  sr_kit_destroy(NULL);
}

/* --- allocation --- */

static void test_kit_alloc_alignment_and_zero(void** state) {
  fixture_t* f = *state;
  /* Property: blocks are aligned, disjoint, inside RAM above GPA 0 and
   * zeroed even where junk was written; alignment gaps are not lost. */
  const uint64_t size = 4 * MiB;
  const struct {
    uint64_t size;
    uint64_t align;
  } req[] = {{4096, 4096},
             {SR_PAGE_2M, SR_PAGE_2M},
             {8192, 8192},
             {12288, 65536},
             {4096, 4096},
             {100, 4096},
             {SR_PAGE_2M / 2, SR_PAGE_2M / 2}};
  uint64_t got[sizeof(req) / sizeof(req[0])];
  uint64_t used = 0;
  uint64_t gpa;
  uint8_t* junk = malloc(size);
  uint8_t* buf = malloc(SR_PAGE_2M);
  sr_kit_t* kit = raw_kit(f, size);
  assert_non_null(junk);
  assert_non_null(buf);
  memset(junk, 0xcc, size);
  assert_int_equal(sr_kit_write_phys(kit, 0, junk, size), 0);
  free(junk);
  for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
    uint64_t rounded = (req[i].size + 4095) & ~UINT64_C(4095);
    assert_int_equal(sr_kit_alloc(kit, req[i].size, req[i].align, &got[i]), 0);
    assert_int_equal(got[i] % req[i].align, 0);
    assert_true(got[i] >= 4096 && got[i] + rounded <= size);
    for (size_t j = 0; j < i; j++) {
      uint64_t rj = (req[j].size + 4095) & ~UINT64_C(4095);
      assert_true(got[i] + rounded <= got[j] || got[j] + rj <= got[i]);
    }
    assert_int_equal(sr_kit_read_phys(kit, got[i], buf, req[i].size), 0);
    for (uint64_t k = 0; k < req[i].size; k++)
      assert_int_equal(buf[k], 0);
    used += rounded;
  }
  free(buf);
  /* The rest, page by page: every page but GPA 0 is handed out once. */
  while (sr_kit_alloc(kit, 4096, 4096, &gpa) == 0)
    used += 4096;
  assert_int_equal(used, size - 4096);
}

static void test_kit_alloc_large_alignment(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 2 * GiB);
  uint64_t a;
  uint64_t b;
  uint64_t c;
  assert_int_equal(sr_kit_alloc(kit, 4096, 4096, &a), 0);
  assert_int_equal(sr_kit_alloc(kit, SR_PAGE_1G, SR_PAGE_1G, &b), 0);
  assert_int_equal(b, SR_PAGE_1G); /* the only 1G-aligned GiB above 0 */
  assert_int_equal(sr_kit_alloc(kit, SR_PAGE_1G, SR_PAGE_1G, &c), SR_ENOSPC);
  assert_int_equal(sr_kit_alloc(kit, 4096, 4096, &c), 0);
  assert_true(c < SR_PAGE_1G && c != a); /* the gap below is reused */
}

static void test_kit_alloc_rejects_bad_args(void** state) {
  fixture_t* f = *state;
  uint64_t gpa;
  sr_kit_t* kit = raw_kit(f, MiB);
  assert_int_equal(sr_kit_alloc(kit, 0, 4096, &gpa), SR_EINVAL);
  assert_int_equal(sr_kit_alloc(kit, 4096, 0, &gpa), SR_EINVAL);
  assert_int_equal(sr_kit_alloc(kit, 4096, 2048, &gpa), SR_EINVAL);
  assert_int_equal(sr_kit_alloc(kit, 4096, 3 * 4096, &gpa), SR_EINVAL);
  assert_int_equal(sr_kit_alloc(kit, 4096, 4096, NULL), SR_EINVAL);
  assert_int_equal(sr_kit_alloc(NULL, 4096, 4096, &gpa), SR_EINVAL);
}

static void test_kit_alloc_enospc(void** state) {
  fixture_t* f = *state;
  const uint64_t size = 64 * 1024;
  uint64_t gpa;
  uint64_t count = 0;
  sr_kit_t* kit = raw_kit(f, size);
  while (sr_kit_alloc(kit, 4096, 4096, &gpa) == 0) {
    assert_true(gpa >= 4096 && gpa + 4096 <= size);
    count++;
  }
  /* Every page but GPA 0, then nothing. */
  assert_int_equal(count, size / 4096 - 1);
  assert_int_equal(sr_kit_alloc(kit, 4096, 4096, &gpa), SR_ENOSPC);
}

static void test_kit_alloc_stays_in_segments(void** state) {
  fixture_t* f = *state;
  const sr_segment_t seg[2] = {{0, 64 * 1024, 0}, {MiB, 2 * MiB, 64 * 1024}};
  sr_kit_opts_t opts = {.seg = seg, .nseg = 2};
  uint64_t gpa;
  uint64_t count = 0;
  assert_int_equal(sr_kit_create(&f->kit, &opts), 0);
  /* A 2 MiB-aligned 2 MiB block cannot fit anywhere here. */
  assert_int_equal(sr_kit_alloc(f->kit, SR_PAGE_2M, SR_PAGE_2M, &gpa),
                   SR_ENOSPC);
  while (sr_kit_alloc(f->kit, 4096, 4096, &gpa) == 0) {
    bool in0 = gpa >= 4096 && gpa + 4096 <= 64 * 1024;
    bool in1 = gpa >= MiB && gpa + 4096 <= 3 * MiB;
    assert_true(in0 || in1);
    count++;
  }
  assert_int_equal(count, (64 * 1024 - 4096) / 4096 + 2 * MiB / 4096);
}

/* --- mapping --- */

static void map_and_check(sr_kit_t* kit, sr_paging_t paging) {
  const int top = paging == SR_PAGING_5LEVEL ? 5 : 4;
  const struct {
    uint64_t gva;
    uint64_t len;
    uint64_t page_size;
    uint32_t prot;
  } m[] = {
      {0x400000, 3 * SR_PAGE_4K, SR_PAGE_4K, SR_PROT_W | SR_PROT_U},
      {0x7f0000200000, 2 * SR_PAGE_2M, SR_PAGE_2M, SR_PROT_U | SR_PROT_NX},
      {0x40000000, SR_PAGE_1G, SR_PAGE_1G, SR_PROT_W},
      {UINT64_C(0xffff800000001000), SR_PAGE_4K, SR_PAGE_4K, 0},
  };
  uint64_t cr3;
  uint64_t frames[16];
  size_t nf = 0;
  assert_int_equal(sr_kit_new_space(kit, paging, &cr3), 0);
  assert_int_equal(cr3 % 4096, 0);
  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
    assert_int_equal(
        sr_kit_map(kit, cr3, m[i].gva, m[i].len, m[i].page_size, m[i].prot), 0);
    for (uint64_t off = 0; off < m[i].len; off += m[i].page_size) {
      uint64_t frame =
          check_walk(kit, cr3, top, m[i].gva + off, m[i].page_size, m[i].prot);
      /* Fresh frames: all different. */
      for (size_t j = 0; j < nf; j++)
        assert_int_not_equal(frames[j], frame);
      assert_true(nf < 16);
      frames[nf++] = frame;
    }
  }
}

static void test_kit_map_4level_entries(void** state) {
  fixture_t* f = *state;
  map_and_check(raw_kit(f, 4 * GiB), SR_PAGING_4LEVEL);
}

static void test_kit_map_5level_entries(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 4 * GiB);
  uint64_t cr3;
  const uint64_t high = UINT64_C(0x00ff000000000000); /* needs LA57 */
  map_and_check(kit, SR_PAGING_5LEVEL);
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_5LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, high, SR_PAGE_4K, SR_PAGE_4K, 0), 0);
  check_walk(kit, cr3, 5, high, SR_PAGE_4K, 0);
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, high, SR_PAGE_4K, SR_PAGE_4K, 0),
                   SR_EINVAL);
}

static void test_kit_map_gpa_anywhere(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 4 * MiB);
  uint64_t cr3;
  const uint64_t past = UINT64_C(1) << 40; /* far past the file */
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map_gpa(kit, cr3, 0x10000, 2 * SR_PAGE_4K, past,
                                  SR_PAGE_4K, SR_PROT_W),
                   0);
  assert_int_equal(check_walk(kit, cr3, 4, 0x11000, SR_PAGE_4K, SR_PROT_W),
                   past + SR_PAGE_4K);
  assert_int_equal(
      sr_kit_map_gpa(kit, cr3, 0x200000, SR_PAGE_2M, 0, SR_PAGE_2M, 0), 0);
  assert_int_equal(check_walk(kit, cr3, 4, 0x200000, SR_PAGE_2M, 0), 0);
  /* The GPA must be aligned to the page size and fit 52 bits. */
  assert_int_equal(
      sr_kit_map_gpa(kit, cr3, 0x600000, SR_PAGE_2M, 4096, SR_PAGE_2M, 0),
      SR_EINVAL);
  assert_int_equal(sr_kit_map_gpa(kit, cr3, 0x600000, SR_PAGE_4K,
                                  UINT64_C(1) << 52, SR_PAGE_4K, 0),
                   SR_EINVAL);
  /* Filling a page that is not in the file fails cleanly. */
  assert_int_equal(sr_kit_fill(kit, cr3, 0x10000, 16, 1), SR_EBEYOND);
}

static void test_kit_map_rejects_bad_args(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 8 * MiB);
  uint64_t cr3;
  uint64_t e;
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_new_space(kit, (sr_paging_t)7, &e), SR_EINVAL);
  /* Alignment, size, page size, prot, unknown cr3. */
  assert_int_equal(sr_kit_map(kit, cr3, 0x1001, 4096, SR_PAGE_4K, 0),
                   SR_EINVAL);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000, 100, SR_PAGE_4K, 0), SR_EINVAL);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000, 0, SR_PAGE_4K, 0), SR_EINVAL);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000, SR_PAGE_2M, SR_PAGE_2M, 0),
                   SR_EINVAL);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000, 8192, 8192, 0), SR_EINVAL);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000, 4096, SR_PAGE_4K, 1u << 7),
                   SR_EINVAL);
  assert_int_equal(
      sr_kit_map(kit, cr3 + 4096 * 100, 0x1000, 4096, SR_PAGE_4K, 0),
      SR_EINVAL);
  /* Non-canonical, crossing the gap, wrapping. */
  assert_int_equal(
      sr_kit_map(kit, cr3, UINT64_C(0x0000800000000000), 4096, SR_PAGE_4K, 0),
      SR_EINVAL);
  assert_int_equal(
      sr_kit_map(kit, cr3, UINT64_C(0x00007ffffffff000), 8192, SR_PAGE_4K, 0),
      SR_EINVAL);
  assert_int_equal(
      sr_kit_map(kit, cr3, UINT64_C(0xfffffffffffff000), 8192, SR_PAGE_4K, 0),
      SR_EINVAL);
  /* Nothing of the above left an entry behind. */
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x1000, 4, &e), 0);
  assert_int_equal(e, 0);
  /* The last page of the lower half and of the address space are fine. */
  assert_int_equal(
      sr_kit_map(kit, cr3, UINT64_C(0x00007ffffffff000), 4096, SR_PAGE_4K, 0),
      0);
  assert_int_equal(
      sr_kit_map(kit, cr3, UINT64_C(0xfffffffffffff000), 4096, SR_PAGE_4K, 0),
      0);
  check_walk(kit, cr3, 4, UINT64_C(0xfffffffffffff000), SR_PAGE_4K, 0);
}

static void test_kit_map_eexist_leaves_nothing(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 16 * MiB);
  uint64_t cr3;
  uint64_t e;
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x202000, 8192, SR_PAGE_4K, 0), 0);
  /* Overlapping the end of the range: nothing new is mapped. */
  assert_int_equal(sr_kit_map(kit, cr3, 0x200000, 0x4000, SR_PAGE_4K, 0),
                   SR_EEXIST);
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x200000, 1, &e), 0);
  assert_int_equal(e, 0);
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x201000, 1, &e), 0);
  assert_int_equal(e, 0);
  /* A 2 MiB page over a page table, a 4 KiB page inside a 2 MiB page. */
  assert_int_equal(sr_kit_map(kit, cr3, 0x200000, SR_PAGE_2M, SR_PAGE_2M, 0),
                   SR_EEXIST);
  assert_int_equal(sr_kit_map(kit, cr3, 0x400000, SR_PAGE_2M, SR_PAGE_2M, 0),
                   0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x3ff000, 0x2000, SR_PAGE_4K, 0),
                   SR_EEXIST);
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x3ff000, 1, &e), 0);
  assert_int_equal(e, 0);
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x400000, 1, &e), SR_ENOENT);
  /* A non-zero non-present entry counts as something mapped. */
  assert_int_equal(sr_kit_set_entry(kit, cr3, 0x3fe000, 1, 0x1234000, NULL), 0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x3fe000, 4096, SR_PAGE_4K, 0),
                   SR_EEXIST);
  /* After all that, the first mapping is intact. */
  check_walk(kit, cr3, 4, 0x202000, SR_PAGE_4K, 0);
  check_walk(kit, cr3, 4, 0x203000, SR_PAGE_4K, 0);
}

static void test_kit_map_enospc(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 256 * 1024);
  uint64_t cr3;
  uint64_t e;
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000000, SR_PAGE_2M, SR_PAGE_2M, 0),
                   SR_ENOSPC);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000000, MiB, SR_PAGE_4K, 0),
                   SR_ENOSPC);
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x1000000, 4, &e), 0);
  assert_int_equal(e, 0);
}

/* --- patterns and data --- */

static void test_kit_pattern_is_discriminating(void** state) {
  (void)state;
  /* Property: 4 KiB pages of one seed are pairwise different, a read
   * shifted by 1..8 bytes never matches, and seeds differ. */
  enum { N = 64, B = 256 };
  static uint8_t page[N][B];
  for (int p = 0; p < N; p++) {
    for (int i = 0; i < B; i++)
      page[p][i] = sr_kit_pattern(42, (uint64_t)p * 4096 + (uint64_t)i);
  }
  for (int p = 0; p < N; p++) {
    for (int q = p + 1; q < N; q++)
      assert_memory_not_equal(page[p], page[q], B);
    for (int s = 1; s <= 8; s++)
      assert_memory_not_equal(page[p], page[p] + s, B - s);
  }
  {
    uint8_t a[B];
    for (int i = 0; i < B; i++)
      a[i] = sr_kit_pattern(43, (uint64_t)i);
    assert_memory_not_equal(a, page[0], B);
  }
  /* Pure: the same inputs give the same byte. */
  assert_int_equal(sr_kit_pattern(7, 0x1234), sr_kit_pattern(7, 0x1234));
}

static void test_kit_fill_reads_back(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 16 * MiB);
  const uint64_t seed = 0x5eed;
  const uint64_t gva4k = 0x7000;
  const uint64_t gva2m = 0x600000;
  uint64_t cr3;
  uint64_t frame[2];
  uint8_t buf[300];
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, gva4k, 2 * 4096, SR_PAGE_4K, SR_PROT_W),
                   0);
  assert_int_equal(sr_kit_map(kit, cr3, gva2m, SR_PAGE_2M, SR_PAGE_2M, 0), 0);
  /* An unaligned range across both 4K pages; the whole 2M page. */
  assert_int_equal(sr_kit_fill(kit, cr3, gva4k + 3, 2 * 4096 - 5, seed), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, gva2m, SR_PAGE_2M, seed), 0);
  frame[0] = check_walk(kit, cr3, 4, gva4k, SR_PAGE_4K, SR_PROT_W);
  frame[1] = check_walk(kit, cr3, 4, gva4k + 4096, SR_PAGE_4K, SR_PROT_W);
  /* The bytes around the page boundary, read at each leaf's frame. */
  assert_int_equal(sr_kit_read_phys(kit, frame[0] + 4096 - 150, buf, 150), 0);
  assert_int_equal(sr_kit_read_phys(kit, frame[1], buf + 150, 150), 0);
  for (int i = 0; i < 300; i++)
    assert_int_equal(buf[i], sr_kit_pattern(seed, gva4k + 4096 - 150 + i));
  /* The edges of the filled range: the first 3 bytes were not written. */
  assert_int_equal(sr_kit_read_phys(kit, frame[0], buf, 4), 0);
  assert_int_equal(buf[0] | buf[1] | buf[2], 0);
  assert_int_equal(buf[3], sr_kit_pattern(seed, gva4k + 3));
  {
    uint64_t f2 = check_walk(kit, cr3, 4, gva2m, SR_PAGE_2M, 0);
    const uint64_t offs[] = {0, 1, 4095, 4096, 0x1fff00};
    for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
      assert_int_equal(sr_kit_read_phys(kit, f2 + offs[k], buf, 64), 0);
      for (int i = 0; i < 64; i++)
        assert_int_equal(buf[i], sr_kit_pattern(seed, gva2m + offs[k] + i));
    }
  }
  /* write_va across the 4K boundary, read back physically. */
  memset(buf, 0xab, sizeof(buf));
  assert_int_equal(
      sr_kit_write_va(kit, cr3, gva4k + 4096 - 10, "0123456789abcdef", 16), 0);
  assert_int_equal(sr_kit_read_phys(kit, frame[0] + 4086, buf, 10), 0);
  assert_int_equal(sr_kit_read_phys(kit, frame[1], buf + 10, 6), 0);
  assert_memory_equal(buf, "0123456789abcdef", 16);
  /* Unmapped VAs. */
  assert_int_equal(sr_kit_fill(kit, cr3, 0x9000, 1, seed), SR_ENOTPRESENT);
  assert_int_equal(sr_kit_write_va(kit, cr3, gva4k + 2 * 4096 - 1, "xy", 2),
                   SR_ENOTPRESENT);
  assert_int_equal(sr_kit_fill(kit, cr3, UINT64_C(0x0000800000000000), 1, seed),
                   SR_EINVAL);
}

/* --- encodings --- */

static void expect_encode(const sr_pte_info_t* in, int level, uint64_t want,
                          sr_os_t os) {
  uint64_t e = 1;
  sr_pte_info_t back;
  assert_int_equal(sr_kit_encode(in, level, &e), 0);
  assert_int_equal(e, want);
  assert_int_equal(e & E_P, 0);
  /* The round trip through the classifier. */
  memset(&back, 0xee, sizeof(back));
  assert_int_equal(sr_pte_classify(e, level, os, &back), in->kind);
  switch (in->kind) {
    case SR_PTE_LINUX_SWAP:
    case SR_PTE_WIN_PAGEFILE:
      assert_int_equal(back.swap_type, in->swap_type);
      assert_int_equal(back.swap_offset, in->swap_offset);
      break;
    case SR_PTE_LINUX_PROTNONE:
    case SR_PTE_WIN_TRANSITION:
      assert_true(back.resident);
      assert_int_equal(back.frame, in->frame);
      break;
    case SR_PTE_WIN_PROTOTYPE:
      assert_int_equal(back.proto_addr, in->proto_addr);
      break;
    default:
      break;
  }
}

static void test_kit_encode_spec_layouts(void** state) {
  (void)state;
  sr_pte_info_t in;
  const uint64_t offsets[] = {0, 1, 0x123456789, (UINT64_C(1) << 50) - 2};
  for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
    for (uint32_t type = 0; type < 32; type += 31) {
      for (int level = 1; level <= 2; level++) {
        uint64_t o = offsets[i];
        /* ~offset in bits 9..58, type in 59..63. */
        uint64_t want =
            (((~o) & ((UINT64_C(1) << 50) - 1)) << 9) | ((uint64_t)type << 59);
        memset(&in, 0, sizeof(in));
        in.kind = SR_PTE_LINUX_SWAP;
        in.swap_type = type;
        in.swap_offset = o;
        expect_encode(&in, level, want, SR_OS_LINUX);
      }
    }
  }
  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_LINUX_PROTNONE;
  in.frame = UINT64_C(0x123456789000);
  expect_encode(&in, 1,
                ((~in.frame) & UINT64_C(0x000ffffffffff000)) | E_A | E_G,
                SR_OS_LINUX);
  in.frame = UINT64_C(0x123456600000);
  expect_encode(&in, 2,
                ((~in.frame) & UINT64_C(0x000fffffffe00000)) | E_A | E_G | E_PS,
                SR_OS_LINUX);
  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_WIN_PROTOTYPE;
  in.proto_addr = UINT64_C(0xffffa00012345678);
  expect_encode(&in, 1, (in.proto_addr << 16) | (1u << 10), SR_OS_WINDOWS);
  in.proto_addr = UINT64_C(0x00007ffff0000008);
  expect_encode(&in, 1, (in.proto_addr << 16) | (1u << 10), SR_OS_WINDOWS);
  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_WIN_TRANSITION;
  in.frame = UINT64_C(0x000ffffffffff000);
  for (int level = 1; level <= 4; level++)
    expect_encode(&in, level, in.frame | (1u << 11) | (4u << 5), SR_OS_WINDOWS);
  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_WIN_PAGEFILE;
  in.swap_type = 15;
  in.swap_offset = UINT64_C(0xffffffff);
  expect_encode(&in, 1, (in.swap_offset << 32) | (15u << 12) | (4u << 5),
                SR_OS_WINDOWS);
  in.swap_type = 0;
  in.swap_offset = 1;
  expect_encode(&in, 1, (UINT64_C(1) << 32) | (4u << 5), SR_OS_WINDOWS);
  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_NONE;
  expect_encode(&in, 3, 0, SR_OS_LINUX);
}

static void test_kit_encode_rejects(void** state) {
  (void)state;
  uint64_t e;
  sr_pte_info_t in;
  memset(&in, 0, sizeof(in));
  in.kind = SR_PTE_PRESENT;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.kind = SR_PTE_UNKNOWN;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.kind = SR_PTE_NONE;
  assert_int_equal(sr_kit_encode(&in, 0, &e), SR_EINVAL);
  assert_int_equal(sr_kit_encode(&in, 6, &e), SR_EINVAL);
  assert_int_equal(sr_kit_encode(NULL, 1, &e), SR_EINVAL);
  assert_int_equal(sr_kit_encode(&in, 1, NULL), SR_EINVAL);
  in.kind = SR_PTE_LINUX_SWAP;
  in.swap_type = 32;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.swap_type = 1;
  in.swap_offset = UINT64_C(1) << 50;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.swap_offset = 5;
  assert_int_equal(sr_kit_encode(&in, 3, &e), SR_EINVAL); /* not at PDPT */
  in.kind = SR_PTE_LINUX_PROTNONE;
  in.frame = 0x1000;
  assert_int_equal(sr_kit_encode(&in, 2, &e), SR_EINVAL); /* not 2M aligned */
  assert_int_equal(sr_kit_encode(&in, 3, &e), SR_EINVAL);
  in.frame = 0x1001;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.frame = UINT64_C(1) << 52;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.kind = SR_PTE_WIN_TRANSITION;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.kind = SR_PTE_WIN_PROTOTYPE;
  in.proto_addr = UINT64_C(0x0000800000000000);
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.kind = SR_PTE_WIN_PAGEFILE;
  in.swap_type = 16;
  in.swap_offset = 1;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.swap_type = 0;
  in.swap_offset = 0;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
  in.swap_offset = UINT64_C(1) << 32;
  assert_int_equal(sr_kit_encode(&in, 1, &e), SR_EINVAL);
}

/* --- paging out and in --- */

static void test_kit_page_out_in_restores(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 16 * MiB);
  sr_pte_info_t as[6];
  const int level[6] = {1, 1, 1, 1, 1, 2};
  uint64_t cr3;
  memset(as, 0, sizeof(as));
  as[0].kind = SR_PTE_LINUX_SWAP;
  as[0].swap_type = 2;
  as[0].swap_offset = 777;
  as[1].kind = SR_PTE_LINUX_PROTNONE; /* frame 0: the current frame */
  as[2].kind = SR_PTE_WIN_TRANSITION;
  as[3].kind = SR_PTE_WIN_PAGEFILE;
  as[3].swap_type = 1;
  as[3].swap_offset = 99;
  as[4].kind = SR_PTE_NONE;
  as[5].kind = SR_PTE_LINUX_PROTNONE; /* a 2M leaf */
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x10000, 5 * 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x400000, SR_PAGE_2M, SR_PAGE_2M, 0),
                   0);
  for (int i = 0; i < 6; i++) {
    uint64_t gva = level[i] == 1 ? 0x10000 + 4096 * (uint64_t)i : 0x400000;
    uint64_t before;
    uint64_t now;
    uint64_t want;
    sr_pte_info_t enc = as[i];
    assert_int_equal(sr_kit_get_entry(kit, cr3, gva, level[i], &before), 0);
    assert_int_equal(sr_kit_page_out(kit, cr3, gva, level[i], &as[i]), 0);
    assert_int_equal(sr_kit_get_entry(kit, cr3, gva, level[i], &now), 0);
    if (enc.kind == SR_PTE_LINUX_PROTNONE || enc.kind == SR_PTE_WIN_TRANSITION)
      enc.frame = before & E_ADDR;
    assert_int_equal(sr_kit_encode(&enc, level[i], &want), 0);
    assert_int_equal(now, want);
    assert_int_equal(sr_kit_page_out(kit, cr3, gva, level[i], &as[i]),
                     SR_EALREADY);
    /* The kit still fills through what it paged out. */
    assert_int_equal(sr_kit_fill(kit, cr3, gva, 4096, 9), 0);
    assert_int_equal(sr_kit_page_in(kit, cr3, gva, level[i]), 0);
    assert_int_equal(sr_kit_get_entry(kit, cr3, gva, level[i], &now), 0);
    assert_int_equal(now, before);
    assert_int_equal(sr_kit_page_in(kit, cr3, gva, level[i]), SR_ENOENT);
  }
  /* A non-present entry the kit did not page out. */
  assert_int_equal(sr_kit_set_entry(kit, cr3, 0x15000, 1, 0x4242000, NULL), 0);
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x15000, 1, &as[0]),
                   SR_ENOTPRESENT);
  assert_int_equal(sr_kit_page_in(kit, cr3, 0x15000, 1), SR_ENOENT);
}

static void test_kit_page_out_table(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 16 * MiB);
  sr_pte_info_t as;
  sr_translation_t t;
  uint64_t cr3;
  uint64_t pde;
  uint64_t pte;
  uint64_t now;
  uint8_t b;
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  as.swap_offset = 4;
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x200000, 4 * 4096, SR_PAGE_4K, 0), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, 0x200000, 4 * 4096, 3), 0);
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x201000, 2, &pde), 0);
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x201000, 1, &pte), 0);
  assert_int_equal(sr_kit_open_image(kit, &f->image), 0);
  /* Level 2 with a Linux swap entry: the whole page table is gone. */
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x201000, 2, &as), 0);
  assert_int_equal(sr_translate(f->image, cr3, 0x203000, NULL, &t),
                   SR_ENOTPRESENT);
  assert_int_equal(t.stop_level, 2);
  assert_int_equal(t.pte.kind, SR_PTE_LINUX_SWAP);
  assert_int_equal(t.pte.swap_offset, 4);
  /* The kit still reaches the pages below it. */
  assert_int_equal(sr_kit_fill(kit, cr3, 0x201000, 4096, 5), 0);
  assert_int_equal(sr_kit_page_in(kit, cr3, 0x201000, 2), 0);
  assert_int_equal(sr_translate(f->image, cr3, 0x201010, NULL, &t), 0);
  assert_int_equal(t.gpa, (pte & E_ADDR) + 0x10);
  assert_int_equal(sr_image_read(f->image, t.gpa, &b, 1, NULL), 0);
  assert_int_equal(b, sr_kit_pattern(5, 0x201010));
  assert_int_equal(sr_kit_get_entry(kit, cr3, 0x201000, 2, &now), 0);
  assert_int_equal(now, pde);
}

static void test_kit_page_out_errors(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 8 * MiB);
  sr_pte_info_t as;
  uint64_t cr3;
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, 0x1000, 4096, SR_PAGE_4K, 0), 0);
  /* No table at level 1 for this VA; a zero entry is not present. */
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x40000000, 1, &as), SR_ENOENT);
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x2000, 1, &as), SR_ENOTPRESENT);
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x1000, 0, &as), SR_EINVAL);
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x1000, 5, &as), SR_EINVAL);
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x1000, 1, NULL), SR_EINVAL);
  assert_int_equal(sr_kit_page_in(kit, cr3, 0x1000, 1), SR_ENOENT);
  /* A kind that cannot be encoded leaves the entry present. */
  as.kind = SR_PTE_UNKNOWN;
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x1000, 1, &as), SR_EINVAL);
  as.kind = SR_PTE_LINUX_SWAP;
  assert_int_equal(sr_kit_page_out(kit, cr3, 0x1000, 3, &as), SR_EINVAL);
  assert_int_equal(sr_kit_fill(kit, cr3, 0x1000, 4096, 1), 0);
  assert_int_equal(sr_kit_page_in(kit, cr3, 0x1000, 1), SR_ENOENT);
}

/* --- garbage --- */

static void test_kit_garbage_entries_fail_cleanly(void** state) {
  fixture_t* f = *state;
  const sr_segment_t seg[2] = {{0, 4 * MiB, 0}, {8 * MiB, 4 * MiB, 4 * MiB}};
  sr_kit_opts_t opts = {.seg = seg, .nseg = 2};
  const uint64_t garbage[] = {
      E_P | E_RW | E_US | UINT64_C(0x000ffffffffff000), /* end of space */
      E_P | E_RW | (UINT64_C(1) << 40),                 /* past the file */
      E_P | E_RW | (5 * MiB),                           /* into the hole */
      E_P | UINT64_C(0x7ff0000000000f70) | (12 * MiB - 4096), /* last page */
      E_P | E_PS | E_RW | GiB, /* PS in a PML4E; a large page in a hole */
      UINT64_C(0xffffffffffffffff),
  };
  const sr_pte_info_t swap = {.kind = SR_PTE_LINUX_SWAP, .swap_offset = 1};
  uint64_t cr3;
  uint64_t e;
  assert_int_equal(sr_kit_create(&f->kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(f->kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(f->kit, cr3, 0x1000, 4096, SR_PAGE_4K, 0), 0);
  for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
    for (int level = 4; level >= 2; level--) {
      uint64_t old;
      int rc;
      assert_int_equal(
          sr_kit_set_entry(f->kit, cr3, 0x1000, level, garbage[i], &old), 0);
      /* Everything below it must fail or work, never crash. */
      rc = sr_kit_fill(f->kit, cr3, 0x1000, 4096, 1);
      assert_true(rc == 0 || rc == SR_ENOTPRESENT || rc == SR_EHOLE ||
                  rc == SR_EBADENTRY);
      rc = sr_kit_map(f->kit, cr3, 0x1000, 4096, SR_PAGE_4K, 0);
      assert_true(rc == 0 || rc == SR_EEXIST || rc == SR_EHOLE);
      rc = sr_kit_get_entry(f->kit, cr3, 0x1000, 1, &e);
      assert_true(rc == 0 || rc == SR_ENOENT || rc == SR_EHOLE ||
                  rc == SR_EBEYOND);
      rc = sr_kit_set_entry(f->kit, cr3, 0x1000, 1, 0, NULL);
      assert_true(rc == 0 || rc == SR_ENOENT || rc == SR_EHOLE ||
                  rc == SR_EBEYOND);
      rc = sr_kit_page_out(f->kit, cr3, 0x1000, 1, &swap);
      if (rc == 0)
        assert_int_equal(sr_kit_page_in(f->kit, cr3, 0x1000, 1), 0);
      rc = sr_kit_write_va(f->kit, cr3, 0x1000, "abc", 3);
      assert_true(rc <= 0);
      /* Put it back (the writes above landed only in data pages). */
      assert_int_equal(sr_kit_set_entry(f->kit, cr3, 0x1000, level, old, NULL),
                       0);
    }
  }
  /* Pointing outside the file gives the layout's outcome. */
  assert_int_equal(sr_kit_set_entry(f->kit, cr3, 0x1000, 4,
                                    E_P | E_RW | E_US | (5 * MiB), NULL),
                   0);
  assert_int_equal(sr_kit_get_entry(f->kit, cr3, 0x1000, 3, &e), SR_EHOLE);
  assert_int_equal(sr_kit_fill(f->kit, cr3, 0x1000, 1, 1), SR_EHOLE);
  assert_int_equal(
      sr_kit_set_entry(f->kit, cr3, 0x1000, 4,
                       E_P | E_RW | E_US | (UINT64_C(1) << 40), NULL),
      0);
  assert_int_equal(sr_kit_get_entry(f->kit, cr3, 0x1000, 3, &e), SR_EHOLE);
  assert_int_equal(sr_kit_map(f->kit, cr3, 0x1000, 4096, SR_PAGE_4K, 0),
                   SR_EHOLE);
}

static void test_kit_garbage_loop_terminates(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 8 * MiB);
  uint64_t cr3;
  uint64_t e;
  uint8_t b;
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  /* PML4[0] points at the PML4 itself: every level sees the root. */
  assert_int_equal(
      sr_kit_set_entry(kit, cr3, 0, 4, cr3 | E_P | E_RW | E_US, NULL), 0);
  assert_int_equal(sr_kit_entry_gpa(kit, cr3, 0, 1, &e), 0);
  assert_int_equal(e, cr3);
  /* The "page" at VA 0 is the root table itself. */
  assert_int_equal(sr_kit_write_va(kit, cr3, 8, "\x01", 1), 0);
  assert_int_equal(sr_kit_read_phys(kit, cr3 + 8, &b, 1), 0);
  assert_int_equal(b, 1);
}

/* --- layout changes --- */

static void test_kit_punch_hole_changes_layout(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 8 * MiB);
  sr_layout_t layout;
  uint8_t in[16] = "holey image kit";
  uint8_t out[16];
  size_t done = 99;
  uint64_t gpa;
  assert_int_equal(sr_kit_write_phys(kit, 3 * MiB, in, sizeof(in)), 0);
  assert_int_equal(sr_kit_write_phys(kit, 2 * MiB + 8, in, sizeof(in)), 0);
  assert_int_equal(sr_kit_punch_hole(kit, 2 * MiB, MiB), 0);
  sr_kit_layout(kit, &layout);
  assert_int_equal(layout.kind, SR_LAYOUT_SEGMENTS);
  assert_int_equal(layout.nseg, 2);
  assert_int_equal(layout.seg[0].gpa, 0);
  assert_int_equal(layout.seg[0].len, 2 * MiB);
  assert_int_equal(layout.seg[0].file_off, 0);
  assert_int_equal(layout.seg[1].gpa, 3 * MiB);
  assert_int_equal(layout.seg[1].len, 5 * MiB);
  assert_int_equal(layout.seg[1].file_off, 3 * MiB);
  assert_int_equal(sr_kit_read_phys(kit, 2 * MiB + 8, out, 1), SR_EHOLE);
  assert_int_equal(sr_kit_open_image(kit, &f->image), 0);
  assert_int_equal(sr_image_read(f->image, 2 * MiB + 8, out, 1, NULL),
                   SR_EHOLE);
  assert_int_equal(sr_image_read(f->image, 2 * MiB - 8, out, 16, &done),
                   SR_EHOLE);
  assert_int_equal(done, 8);
  assert_int_equal(sr_image_read(f->image, 3 * MiB, out, sizeof(out), NULL), 0);
  assert_memory_equal(out, in, sizeof(in));
  /* The allocator never hands out the hole. */
  while (sr_kit_alloc(kit, 4096, 4096, &gpa) == 0)
    assert_true(gpa + 4096 <= 2 * MiB || gpa >= 3 * MiB);
  /* A hole over nothing changes nothing; over everything is refused. */
  assert_int_equal(sr_kit_punch_hole(kit, 2 * MiB + 4096, 4096), 0);
  assert_int_equal(sr_kit_punch_hole(kit, 0, 16 * MiB), SR_EINVAL);
  assert_int_equal(sr_kit_punch_hole(kit, UINT64_MAX, 2), SR_EINVAL);
  assert_int_equal(sr_kit_punch_hole(kit, 0, 0), SR_EINVAL);
  sr_kit_layout(kit, &layout);
  assert_int_equal(layout.nseg, 2);
  /* A hole in the middle of a segment splits it. */
  assert_int_equal(sr_kit_punch_hole(kit, 4 * MiB, 4096), 0);
  sr_kit_layout(kit, &layout);
  assert_int_equal(layout.nseg, 3);
  assert_int_equal(layout.seg[2].gpa, 4 * MiB + 4096);
  assert_int_equal(layout.seg[2].file_off, 4 * MiB + 4096);
  assert_int_equal(layout.seg[2].len, 4 * MiB - 4096);
}

static void test_kit_truncate_under_reader(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 8 * MiB);
  uint8_t in[8] = "abcdefg";
  uint8_t out[8];
  uint64_t gpa;
  assert_int_equal(sr_kit_write_phys(kit, 6 * MiB, in, sizeof(in)), 0);
  assert_int_equal(sr_kit_write_phys(kit, MiB, in, sizeof(in)), 0);
  assert_int_equal(sr_kit_open_image(kit, &f->image), 0);
  assert_int_equal(sr_image_read(f->image, 6 * MiB, out, sizeof(out), NULL), 0);
  assert_int_equal(sr_kit_truncate(kit, 2 * MiB), 0);
  assert_int_equal(file_size(sr_kit_fd(kit)), 2 * MiB);
  assert_int_equal(sr_image_read(f->image, 6 * MiB, out, sizeof(out), NULL),
                   SR_EBEYOND);
  assert_int_equal(sr_image_read(f->image, MiB, out, sizeof(out), NULL), 0);
  assert_memory_equal(out, in, sizeof(in));
  /* The kit refuses the bytes past the new end too. */
  assert_int_equal(sr_kit_read_phys(kit, 6 * MiB, out, 1), SR_EBEYOND);
  assert_int_equal(sr_kit_write_phys(kit, 2 * MiB, in, 1), SR_EBEYOND);
  assert_int_equal(sr_kit_alloc(kit, 4 * MiB, 4096, &gpa), SR_ENOSPC);
  /* Growing back: the lost bytes are zeros, and the file can grow past
   * the original size. */
  assert_int_equal(sr_kit_truncate(kit, 16 * MiB), 0);
  assert_int_equal(sr_kit_read_phys(kit, 6 * MiB, out, sizeof(out)), 0);
  assert_int_equal(out[0] | out[7], 0);
  assert_int_equal(sr_kit_alloc(kit, 4 * MiB, 4096, &gpa), 0);
  assert_true(gpa + 4 * MiB <= 8 * MiB);
}

static void check_elf_headers(const char* path, const sr_segment_t* seg,
                              size_t nseg) {
  Elf64_Ehdr eh;
  Elf64_Phdr ph[8];
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &eh, sizeof(eh), 0), sizeof(eh));
  assert_memory_equal(eh.e_ident, ELFMAG, SELFMAG);
  assert_int_equal(eh.e_ident[EI_CLASS], ELFCLASS64);
  assert_int_equal(eh.e_ident[EI_DATA], ELFDATA2LSB);
  assert_int_equal(eh.e_type, ET_CORE);
  assert_int_equal(eh.e_machine, EM_X86_64);
  assert_int_equal(eh.e_phnum, nseg + 1);
  assert_int_equal(eh.e_phentsize, sizeof(Elf64_Phdr));
  assert_true(nseg + 1 <= 8);
  assert_int_equal(pread(fd, ph, (nseg + 1) * sizeof(ph[0]), (off_t)eh.e_phoff),
                   (ssize_t)((nseg + 1) * sizeof(ph[0])));
  assert_int_equal(ph[0].p_type, PT_NOTE);
  assert_int_equal(fstat(fd, &st), 0);
  for (size_t i = 0; i < nseg; i++) {
    assert_int_equal(ph[i + 1].p_type, PT_LOAD);
    assert_int_equal(ph[i + 1].p_paddr, seg[i].gpa);
    assert_int_equal(ph[i + 1].p_vaddr, 0);
    assert_int_equal(ph[i + 1].p_filesz, seg[i].len);
    assert_int_equal(ph[i + 1].p_memsz, seg[i].len);
    assert_int_equal(ph[i + 1].p_offset % 4096, 0);
    assert_true(ph[i + 1].p_offset + seg[i].len <= (uint64_t)st.st_size);
  }
  close(fd);
}

static void test_kit_write_elf_reads_same(void** state) {
  fixture_t* f = *state;
  const sr_segment_t seg[2] = {{0, 4 * MiB, 0}, {GiB, GiB, 4 * MiB}};
  sr_kit_opts_t opts = {.seg = seg, .nseg = 2};
  const uint64_t probe[] = {4096, 4 * MiB - 64, GiB, GiB + 3 * MiB + 5,
                            2 * GiB - 64};
  uint64_t cr3;
  struct stat st;
  assert_int_equal(sr_kit_create(&f->kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(f->kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(f->kit, cr3, 0x100000, 0x3000, SR_PAGE_4K, 0), 0);
  assert_int_equal(
      sr_kit_map(f->kit, cr3, 0x40000000, 4 * SR_PAGE_2M, SR_PAGE_2M, 0), 0);
  assert_int_equal(sr_kit_fill(f->kit, cr3, 0x100000, 0x3000, 11), 0);
  assert_int_equal(sr_kit_fill(f->kit, cr3, 0x40000000, 4 * SR_PAGE_2M, 12), 0);
  assert_int_equal(sr_kit_write_phys(f->kit, 2 * GiB - 64, "tail", 4), 0);
  make_path(f, "core.elf");
  assert_int_equal(sr_kit_write_elf(f->kit, f->path), 0);
  check_elf_headers(f->path, seg, 2);
  /* Sparse: far less than the 1 GiB + 4 MiB of guest RAM is allocated. */
  assert_int_equal(stat(f->path, &st), 0);
  assert_true((uint64_t)st.st_blocks * 512 < 64 * MiB);
  assert_int_equal(sr_image_open(&f->image, f->path, NULL), 0);
  assert_int_equal(sr_image_layout_kind(f->image), SR_LAYOUT_ELF);
  assert_int_equal(sr_kit_open_image(f->kit, &f->image2), 0);
  for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
    uint8_t a[64];
    uint8_t b[64];
    memset(a, 1, sizeof(a));
    memset(b, 2, sizeof(b));
    assert_int_equal(sr_image_read(f->image, probe[i], a, sizeof(a), NULL), 0);
    assert_int_equal(sr_image_read(f->image2, probe[i], b, sizeof(b), NULL), 0);
    assert_memory_equal(a, b, sizeof(a));
  }
  /* Every filled page, through the ELF, matches the pattern. */
  for (uint64_t va = 0x40000000; va < 0x40000000 + 4 * SR_PAGE_2M;
       va += 0x7fff3) {
    sr_translation_t t;
    uint8_t b;
    assert_int_equal(sr_translate(f->image, cr3, va, NULL, &t), 0);
    assert_int_equal(sr_image_read(f->image, t.gpa, &b, 1, NULL), 0);
    assert_int_equal(b, sr_kit_pattern(12, va));
  }
  {
    uint8_t b[4];
    assert_int_equal(sr_image_read(f->image, 2 * GiB - 64, b, 4, NULL), 0);
    assert_memory_equal(b, "tail", 4);
    assert_int_equal(sr_image_read(f->image, 5 * MiB, b, 1, NULL), SR_EHOLE);
  }
}

static void test_kit_write_elf_raw(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit = raw_kit(f, 3 * MiB + 4096);
  const sr_segment_t seg = {0, 3 * MiB + 4096, 0};
  uint8_t b[8];
  assert_int_equal(sr_kit_write_phys(kit, 3 * MiB + 100, "rawelf", 6), 0);
  make_path(f, "raw.elf");
  assert_int_equal(sr_kit_write_elf(kit, f->path), 0);
  check_elf_headers(f->path, &seg, 1);
  assert_int_equal(sr_image_open(&f->image, f->path, NULL), 0);
  assert_int_equal(sr_image_read(f->image, 3 * MiB + 100, b, 6, NULL), 0);
  assert_memory_equal(b, "rawelf", 6);
  assert_int_equal(sr_kit_write_elf(kit, NULL), SR_EINVAL);
  assert_int_equal(sr_kit_write_elf(NULL, f->path), SR_EINVAL);
}

/* --- property --- */

static uint64_t rng_next(uint64_t* s) {
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Property: for random non-overlapping mappings (4K/2M/1G pages, 4- and
 * 5-level, random prot), sr_translate over the kit's image agrees with the
 * entries the kit wrote (GPA, page size, prot) and the data read at the GPA
 * is the pattern filled through the kit. */
static void test_kit_property_translate_agrees(void** state) {
  fixture_t* f = *state;
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
  uint64_t s = seed;
  sr_kit_t* kit = raw_kit(f, 8 * GiB);
  printf("test_kit_property_translate_agrees: seed %llu (SR_SEED)\n",
         (unsigned long long)seed);
  assert_int_equal(sr_kit_open_image(kit, &f->image), 0);
  for (int space = 0; space < 2; space++) {
    sr_walk_opts_t wo = {0};
    uint64_t cr3;
    int top = space == 0 ? 4 : 5;
    wo.paging = space == 0 ? SR_PAGING_4LEVEL : SR_PAGING_5LEVEL;
    assert_int_equal(sr_kit_new_space(kit, wo.paging, &cr3), 0);
    for (int i = 0; i < 300; i++) {
      uint64_t r = rng_next(&s);
      uint64_t ps = (r & 31) == 0  ? SR_PAGE_1G
                    : (r & 7) == 0 ? SR_PAGE_2M
                                   : SR_PAGE_4K;
      uint32_t prot = (uint32_t)(r >> 8) & 7;
      uint64_t span = top == 5 ? UINT64_C(1) << 56 : UINT64_C(1) << 47;
      uint64_t gva = rng_next(&s) & (span - 1) & ~(ps - 1);
      uint64_t pages = ps == SR_PAGE_4K ? 1 + (r >> 16) % 3 : 1;
      uint64_t probe;
      sr_translation_t t;
      uint8_t b;
      int rc;
      if (r & (UINT64_C(1) << 40))
        gva |= ~(span - 1); /* upper half */
      rc = sr_kit_map(kit, cr3, gva, pages * ps, ps, prot);
      if (rc == SR_EEXIST || rc == SR_ENOSPC)
        continue;
      assert_int_equal(rc, 0);
      probe = gva + rng_next(&s) % (pages * ps);
      assert_int_equal(sr_kit_fill(kit, cr3, probe, 1, seed), 0);
      assert_int_equal(sr_translate(f->image, cr3, probe, &wo, &t), 0);
      assert_int_equal(t.page_size, ps);
      assert_int_equal(t.prot, prot);
      {
        uint64_t leaf;
        int level = leaf_level(ps);
        assert_int_equal(sr_kit_get_entry(kit, cr3, probe, level, &leaf), 0);
        assert_int_equal(t.gpa,
                         (leaf & E_ADDR & ~(ps - 1)) | (probe & (ps - 1)));
      }
      assert_int_equal(sr_image_read(f->image, t.gpa, &b, 1, NULL), 0);
      assert_int_equal(b, sr_kit_pattern(seed, probe));
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_kit_create_memfd_default_size),
      T(test_kit_create_path_keeps_file),
      T(test_kit_create_segments),
      T(test_kit_create_rejects_bad_segments),
      T(test_kit_alloc_alignment_and_zero),
      T(test_kit_alloc_large_alignment),
      T(test_kit_alloc_rejects_bad_args),
      T(test_kit_alloc_enospc),
      T(test_kit_alloc_stays_in_segments),
      T(test_kit_map_4level_entries),
      T(test_kit_map_5level_entries),
      T(test_kit_map_gpa_anywhere),
      T(test_kit_map_rejects_bad_args),
      T(test_kit_map_eexist_leaves_nothing),
      T(test_kit_map_enospc),
      T(test_kit_pattern_is_discriminating),
      T(test_kit_fill_reads_back),
      T(test_kit_encode_spec_layouts),
      T(test_kit_encode_rejects),
      T(test_kit_page_out_in_restores),
      T(test_kit_page_out_table),
      T(test_kit_page_out_errors),
      T(test_kit_garbage_entries_fail_cleanly),
      T(test_kit_garbage_loop_terminates),
      T(test_kit_punch_hole_changes_layout),
      T(test_kit_truncate_under_reader),
      T(test_kit_write_elf_reads_same),
      T(test_kit_write_elf_raw),
      T(test_kit_property_translate_agrees),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
