/* Allocation failure in core/: the OOM loop for the sites that bypass the
 * allocator hook (the image, the ELF reader and the holey-image kit call
 * malloc/calloc/realloc directly; see docs/reliability.md).
 *
 * This binary alone is linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc (a target-specific variable in the Makefile), so every
 * call the library (and this file) makes goes through the __wrap_*
 * functions below. They count calls and fail the Nth one while armed, and
 * forward to __real_* (libc's, or ASan's in the sanitizer build) otherwise;
 * calls made inside libc or cmocka are not wrapped. Armed only around the
 * operation under test. Each loop runs an operation on fresh state, failing
 * its 1st, 2nd, ... Nth allocation in turn until a run attempts fewer than
 * N: every failed run must return SR_ENOMEM with nothing left behind (*out
 * NULL, no fd more in /proc/self/fd, the kit unchanged where observable; no
 * memory leaked: LSan in the SAN build), and the run that succeeds must
 * give a working object. The expected number of allocation points of each
 * operation comes from reading the code (one per malloc/calloc/realloc it
 * reaches), the expected bytes from sr_kit_pattern. Read paths must attempt
 * no allocation at all (asserted with every allocation failing). The
 * wrapper's counters are global by necessity (malloc has no context).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/read.h>

#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define KIT_SIZE (UINT64_C(16) << 20)
#define VA UINT64_C(0x00007f0000000000)
#define SEED 0x5eedu
#define MAX_POINTS 100
#define NELF 17 /* PT_LOADs: past the ELF reader's first 16-entry arrays */

/* ---- the wrapped allocator --------------------------------------------- */

void* __real_malloc(size_t size);
void* __real_calloc(size_t n, size_t size);
void* __real_realloc(void* p, size_t size);
void* __wrap_malloc(size_t size);
void* __wrap_calloc(size_t n, size_t size);
void* __wrap_realloc(void* p, size_t size);

static struct {
  bool armed;
  bool fail_all;
  unsigned calls;   /* calls while armed */
  unsigned fail_at; /* 1-based call to fail; 0: none */
  unsigned failed;
} wrap;

static bool wrap_should_fail(void) {
  if (!wrap.armed)
    return false;
  wrap.calls++;
  if (wrap.fail_all || wrap.calls == wrap.fail_at) {
    wrap.failed++;
    errno = ENOMEM;
    return true;
  }
  return false;
}

void* __wrap_malloc(size_t size) {
  return wrap_should_fail() ? NULL : __real_malloc(size);
}

void* __wrap_calloc(size_t n, size_t size) {
  return wrap_should_fail() ? NULL : __real_calloc(n, size);
}

void* __wrap_realloc(void* p, size_t size) {
  return wrap_should_fail() ? NULL : __real_realloc(p, size);
}

static void arm(unsigned fail_at, bool fail_all) {
  wrap.calls = 0;
  wrap.failed = 0;
  wrap.fail_at = fail_at;
  wrap.fail_all = fail_all;
  wrap.armed = true;
}

static void disarm(void) {
  wrap.armed = false;
}

/* Open file descriptors of this process (/proc/self/fd, minus the one the
 * listing itself holds). */
static int count_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  int n = 0;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] != '.')
      n++;
  }
  closedir(d);
  return n - 1;
}

/* ---- fixture --------------------------------------------------------- */

typedef struct fx_s {
  char dir[64];   /* scratch directory */
  char path[128]; /* a file in it (kit backing file or ELF core) */
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  uint64_t cr3s[5];
  sr_layout_t layout;
  int variant;
  uint64_t entry; /* a present leaf before the operation */
} fx_t;

static int setup(void** state) {
  fx_t* fx = calloc(1, sizeof(*fx));

  assert_non_null(fx);
  strcpy(fx->dir, "/tmp/sr-oomcore-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->path, sizeof(fx->path), "%s/file", fx->dir);
  *state = fx;
  return 0;
}

static int teardown(void** state) {
  fx_t* fx = *state;

  unlink(fx->path);
  assert_int_equal(rmdir(fx->dir), 0);
  free(fx);
  return 0;
}

/* A non-NULL pointer never returned: "*out was not written yet". */
#define NOT_SET ((sr_image_t*)(uintptr_t)8)

typedef struct oom_s {
  const char* name;
  void (*prepare)(fx_t* fx);   /* unarmed: fresh state */
  int (*run)(fx_t* fx);        /* armed: the operation */
  void (*failed)(fx_t* fx);    /* after SR_ENOMEM: nothing left behind */
  void (*succeeded)(fx_t* fx); /* the operation's result works */
  void (*release)(fx_t* fx);   /* unarmed: frees everything */
} oom_t;

/* The loop. Returns the allocation points failed (the successful run's
 * allocation count). */
static unsigned oom_loop(fx_t* fx, const oom_t* op) {
  unsigned n;

  for (n = 1;; n++) {
    int fds;
    int rc;

    assert_true(n < MAX_POINTS);
    if (op->prepare != NULL)
      op->prepare(fx);
    fds = count_fds();
    arm(n, false);
    rc = op->run(fx);
    disarm();
    if (wrap.failed == 0) {
      assert_int_equal(rc, 0);
      assert_int_equal(wrap.calls, n - 1);
      if (op->succeeded != NULL)
        op->succeeded(fx);
      if (op->release != NULL)
        op->release(fx);
      break;
    }
    assert_int_equal(rc, SR_ENOMEM);
    assert_int_equal(count_fds(), fds);
    if (op->failed != NULL)
      op->failed(fx);
    if (op->release != NULL)
      op->release(fx);
  }
  printf("# %s: %u allocation points failed\n", op->name, n - 1);
  return n - 1;
}

/* ---- images -------------------------------------------------------------- */

/* A RAW kit of KIT_SIZE (at fx->path when on_disk), with the pattern at a
 * few GPAs; or a two-segment kit [0, 4M) + [8M, 12M) when segmented. */
static void make_kit(fx_t* fx, bool on_disk, bool segmented) {
  static const sr_segment_t two[2] = {
      {0, UINT64_C(4) << 20, 0},
      {UINT64_C(8) << 20, UINT64_C(4) << 20, UINT64_C(4) << 20}};
  sr_kit_opts_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.size = KIT_SIZE;
  opts.path = on_disk ? fx->path : NULL;
  if (segmented) {
    opts.seg = two;
    opts.nseg = 2;
  }
  assert_int_equal(sr_kit_create(&fx->kit, &opts), 0);
}

/* Writes the pattern at gpa (through the kit's layout). */
static void put_pattern(fx_t* fx, uint64_t gpa) {
  unsigned char buf[64];

  for (size_t i = 0; i < sizeof(buf); i++)
    buf[i] = sr_kit_pattern(SEED, gpa + i);
  assert_int_equal(sr_kit_write_phys(fx->kit, gpa, buf, sizeof(buf)), 0);
}

/* The image reads back the pattern at gpa. */
static void expect_pattern(const sr_image_t* image, uint64_t gpa) {
  unsigned char buf[64];
  size_t done = 0;

  assert_int_equal(sr_image_read(image, gpa, buf, sizeof(buf), &done), 0);
  assert_int_equal(done, sizeof(buf));
  for (size_t i = 0; i < sizeof(buf); i++)
    assert_int_equal(buf[i], sr_kit_pattern(SEED, gpa + i));
}

#define GPA_LOW UINT64_C(0x5000)
#define GPA_HIGH (UINT64_C(9) << 20)

static void image_failed(fx_t* fx) {
  assert_ptr_equal(fx->image, NULL);
}

static void image_release(fx_t* fx) {
  sr_image_close(fx->image);
  fx->image = NULL;
  sr_kit_destroy(fx->kit);
  fx->kit = NULL;
  unlink(fx->path);
}

/* RAW, by path. */
static void raw_prepare(fx_t* fx) {
  make_kit(fx, true, false);
  put_pattern(fx, GPA_LOW);
  fx->image = NOT_SET;
}

static int raw_run(fx_t* fx) {
  sr_layout_t layout = {.kind = SR_LAYOUT_RAW};
  return sr_image_open(&fx->image, fx->path, &layout);
}

static void raw_succeeded(fx_t* fx) {
  assert_int_equal(sr_image_layout_kind(fx->image), SR_LAYOUT_RAW);
  expect_pattern(fx->image, GPA_LOW);
}

/* AUTO on a non-ELF file: RAW. */
static int auto_raw_run(fx_t* fx) {
  return sr_image_open(&fx->image, fx->path, NULL);
}

/* SEGMENTS, by the kit's (O_RDWR) fd. */
static void seg_prepare(fx_t* fx) {
  make_kit(fx, false, true);
  put_pattern(fx, GPA_LOW);
  put_pattern(fx, GPA_HIGH);
  fx->image = NOT_SET;
}

static int seg_run(fx_t* fx) {
  sr_layout_t layout;
  sr_kit_layout(fx->kit, &layout);
  return sr_image_open_fd(&fx->image, sr_kit_fd(fx->kit), &layout);
}

static void seg_succeeded(fx_t* fx) {
  unsigned char b;
  assert_int_equal(sr_image_layout_kind(fx->image), SR_LAYOUT_SEGMENTS);
  expect_pattern(fx->image, GPA_LOW);
  expect_pattern(fx->image, GPA_HIGH);
  assert_int_equal(sr_image_read(fx->image, UINT64_C(5) << 20, &b, 1, NULL),
                   SR_EHOLE);
}

static int kit_open_run(fx_t* fx) {
  return sr_kit_open_image(fx->kit, &fx->image);
}

/* PC / Q35 over a 16 MiB file: one segment [0, 16M) below 4G. */
static void preset_prepare(fx_t* fx) {
  make_kit(fx, false, false);
  put_pattern(fx, GPA_LOW);
  put_pattern(fx, GPA_HIGH);
  fx->image = NOT_SET;
}

static int pc_run(fx_t* fx) {
  sr_layout_t layout = {.kind = SR_LAYOUT_PC};
  return sr_image_open_fd(&fx->image, sr_kit_fd(fx->kit), &layout);
}

static int q35_run(fx_t* fx) {
  sr_layout_t layout = {.kind = SR_LAYOUT_Q35};
  return sr_image_open_fd(&fx->image, sr_kit_fd(fx->kit), &layout);
}

static void preset_succeeded(fx_t* fx) {
  expect_pattern(fx->image, GPA_LOW);
  expect_pattern(fx->image, GPA_HIGH);
}

/* ELF cores written by the kit: fx->variant PT_LOADs (1: a RAW kit; else
 * that many 64 KiB segments at GPA i * 128 KiB). */
#define ELF_SEG_LEN UINT64_C(0x10000)
#define ELF_SEG_GPA(i) ((uint64_t)(i)*UINT64_C(0x20000))

static void elf_prepare(fx_t* fx) {
  sr_segment_t seg[NELF];
  sr_kit_opts_t opts;
  int n = fx->variant;

  memset(&opts, 0, sizeof(opts));
  if (n == 1) {
    opts.size = KIT_SIZE;
  } else {
    assert_true(n <= NELF);
    for (int i = 0; i < n; i++) {
      seg[i].gpa = ELF_SEG_GPA(i);
      seg[i].len = ELF_SEG_LEN;
      seg[i].file_off = (uint64_t)i * ELF_SEG_LEN;
    }
    opts.seg = seg;
    opts.nseg = (size_t)n;
  }
  assert_int_equal(sr_kit_create(&fx->kit, &opts), 0);
  put_pattern(fx, n == 1 ? GPA_LOW : ELF_SEG_GPA(n - 1) + 0x100);
  assert_int_equal(sr_kit_write_elf(fx->kit, fx->path), 0);
  fx->image = NOT_SET;
}

static int elf_run(fx_t* fx) {
  sr_layout_t layout = {.kind = SR_LAYOUT_ELF};
  return sr_image_open(&fx->image, fx->path, &layout);
}

static int elf_auto_run(fx_t* fx) {
  sr_layout_t layout = {.kind = SR_LAYOUT_AUTO};
  return sr_image_open(&fx->image, fx->path, &layout);
}

static void elf_succeeded(fx_t* fx) {
  const sr_segment_t* seg;
  int n = fx->variant;

  assert_int_equal(sr_image_layout_kind(fx->image), SR_LAYOUT_ELF);
  assert_int_equal(sr_image_segments(fx->image, &seg), (size_t)n);
  expect_pattern(fx->image, n == 1 ? GPA_LOW : ELF_SEG_GPA(n - 1) + 0x100);
}

static void test_oom_core_image_open_layouts(void** state) {
  fx_t* fx = *state;
  /* image calloc + one segments malloc (core/image.c). */
  const oom_t ops[] = {
      {"sr_image_open RAW", raw_prepare, raw_run, image_failed, raw_succeeded,
       image_release},
      {"sr_image_open AUTO (raw file)", raw_prepare, auto_raw_run, image_failed,
       raw_succeeded, image_release},
      {"sr_image_open_fd SEGMENTS", seg_prepare, seg_run, image_failed,
       seg_succeeded, image_release},
      {"sr_kit_open_image SEGMENTS", seg_prepare, kit_open_run, image_failed,
       seg_succeeded, image_release},
      {"sr_image_open_fd PC", preset_prepare, pc_run, image_failed,
       preset_succeeded, image_release},
      {"sr_image_open_fd Q35", preset_prepare, q35_run, image_failed,
       preset_succeeded, image_release},
  };

  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
    assert_int_equal(oom_loop(fx, &ops[i]), 2);
}

static void test_oom_core_image_open_elf(void** state) {
  fx_t* fx = *state;
  const oom_t elf = {"sr_image_open ELF", elf_prepare,   elf_run,
                     image_failed,        elf_succeeded, image_release};
  const oom_t elf_auto = {"sr_image_open AUTO (ELF)",
                          elf_prepare,
                          elf_auto_run,
                          image_failed,
                          elf_succeeded,
                          image_release};

  /* One PT_LOAD: image calloc + the first realloc of the span and segment
   * arrays (core/elf.c append, 16 entries each). */
  fx->variant = 1;
  assert_int_equal(oom_loop(fx, &elf), 3);
  assert_int_equal(oom_loop(fx, &elf_auto), 3);
  /* NELF = 17 PT_LOADs: both arrays grow again, 16 -> 32. */
  fx->variant = NELF;
  assert_int_equal(oom_loop(fx, &elf), 5);
  assert_int_equal(oom_loop(fx, &elf_auto), 5);
}

/* ---- the kit --------------------------------------------------------- */

static void kit_release(fx_t* fx) {
  sr_image_close(fx->image);
  fx->image = NULL;
  sr_kit_destroy(fx->kit);
  fx->kit = NULL;
  unlink(fx->path);
}

/* sr_kit_create: kit, segments, free ranges (core/kit.c). */
static void create_prepare(fx_t* fx) {
  fx->kit = (sr_kit_t*)(uintptr_t)8;
}

static int create_run(fx_t* fx) {
  sr_kit_opts_t opts = {.size = KIT_SIZE, .path = fx->path};
  return sr_kit_create(&fx->kit, &opts);
}

static void create_failed(fx_t* fx) {
  assert_ptr_equal(fx->kit, NULL);
  /* The backing file is created only after the allocations. */
  assert_int_equal(access(fx->path, F_OK), -1);
}

static void create_succeeded(fx_t* fx) {
  uint64_t cr3;
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(fx->kit, cr3, VA, K4, K4, SR_PROT_W), 0);
  assert_int_equal(sr_kit_fill(fx->kit, cr3, VA, K4, SEED), 0);
}

static void test_oom_core_kit_create(void** state) {
  fx_t* fx = *state;
  const oom_t op = {"sr_kit_create", create_prepare,   create_run,
                    create_failed,   create_succeeded, kit_release};

  assert_int_equal(oom_loop(fx, &op), 3);
}

/* sr_kit_new_space: the spaces array (0 -> 4, then 4 -> 8 on the fifth). */
static void space_prepare(fx_t* fx) {
  make_kit(fx, false, false);
  for (int i = 0; i < fx->variant; i++)
    assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3s[i]),
                     0);
  fx->cr3 = 1;
}

static int space_run(fx_t* fx) {
  return sr_kit_new_space(fx->kit, SR_PAGING_5LEVEL, &fx->cr3);
}

static void space_failed(fx_t* fx) {
  assert_int_equal(fx->cr3, 1);
  /* The earlier spaces are still there. */
  for (int i = 0; i < fx->variant; i++)
    assert_int_equal(sr_kit_map(fx->kit, fx->cr3s[i], VA, K4, K4, 0), 0);
}

static void space_succeeded(fx_t* fx) {
  sr_translation_t t;
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, VA, K4, K4, 0), 0);
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
  sr_walk_opts_t wo = {.paging = SR_PAGING_5LEVEL};
  assert_int_equal(sr_translate(fx->image, fx->cr3, VA, &wo, &t), 0);
}

static void test_oom_core_kit_new_space(void** state) {
  fx_t* fx = *state;
  const oom_t op = {"sr_kit_new_space", space_prepare,   space_run,
                    space_failed,       space_succeeded, kit_release};

  fx->variant = 0; /* first space: array 0 -> 4 */
  assert_int_equal(oom_loop(fx, &op), 1);
  fx->variant = 4; /* fifth space: array 4 -> 8 */
  assert_int_equal(oom_loop(fx, &op), 1);
}

/* sr_kit_map / sr_kit_map_gpa / sr_kit_alloc: the free-range array grows
 * when it is full. sr_kit_punch_hole sets its capacity to one more than
 * the ranges it had, so a hole that splits a range fills it: the next
 * sr_kit_alloc (the data frames of sr_kit_map, or a table of either) must
 * grow it. fx->variant adds that many 2 MiB-aligned allocations first
 * (each may split a range), to move the growth to other allocations of
 * the map. */
#define MAP_GVA (VA + (UINT64_C(1) << 30) - M2) /* the last 2M of a PD */
#define MAP_LEN (2 * M2) /* two 2M pages: the second needs a new PD */

static void map_prepare(fx_t* fx) {
  uint64_t gpa;

  make_kit(fx, false, false);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3), 0);
  /* The first page's tables exist: a 4K page beside it. */
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, MAP_GVA - M2, K4, K4, 0), 0);
  assert_int_equal(sr_kit_punch_hole(fx->kit, UINT64_C(12) << 20, K4), 0);
  for (int i = 0; i < fx->variant; i++)
    assert_int_equal(sr_kit_alloc(fx->kit, K4, M2, &gpa), 0);
}

static int map_run(fx_t* fx) {
  return sr_kit_map(fx->kit, fx->cr3, MAP_GVA, MAP_LEN, M2, SR_PROT_W);
}

static int map_gpa_run(fx_t* fx) {
  return sr_kit_map_gpa(fx->kit, fx->cr3, MAP_GVA, MAP_LEN, UINT64_C(2) << 20,
                        M2, SR_PROT_W);
}

/* Nothing of [MAP_GVA, +MAP_LEN) is mapped: the leaves written before the
 * failure were cleared. */
static void map_failed(fx_t* fx) {
  for (uint64_t off = 0; off < MAP_LEN; off += M2) {
    uint64_t e = 1;
    int rc = sr_kit_get_entry(fx->kit, fx->cr3, MAP_GVA + off, 2, &e);
    assert_true(rc == SR_ENOENT || (rc == 0 && e == 0));
  }
}

static void map_succeeded(fx_t* fx) {
  unsigned char buf[64];
  sr_vread_t vr;

  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, MAP_GVA, MAP_LEN, SEED), 0);
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
  for (uint64_t off = 0; off < MAP_LEN; off += M2) {
    uint64_t va = MAP_GVA + off + 0x1234;
    assert_int_equal(
        sr_read_virt(fx->image, fx->cr3, NULL, va, buf, sizeof(buf), &vr), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
      assert_int_equal(buf[i], sr_kit_pattern(SEED, va + i));
  }
}

static int alloc_run(fx_t* fx) {
  uint64_t gpa;
  return sr_kit_alloc(fx->kit, K4, K4, &gpa);
}

static void test_oom_core_kit_map(void** state) {
  fx_t* fx = *state;
  const oom_t map = {"sr_kit_map", map_prepare,   map_run,
                     map_failed,   map_succeeded, kit_release};
  const oom_t map_gpa = {"sr_kit_map_gpa", map_prepare, map_gpa_run,
                         map_failed,       NULL,        kit_release};
  const oom_t alloc = {"sr_kit_alloc", map_prepare, alloc_run,
                       NULL,           NULL,        kit_release};
  unsigned total = 0;

  for (fx->variant = 0; fx->variant < 4; fx->variant++) {
    total += oom_loop(fx, &map);
    total += oom_loop(fx, &map_gpa);
  }
  /* At least the full array after the hole is grown somewhere. */
  assert_true(total >= 1);
  fx->variant = 0;
  assert_int_equal(oom_loop(fx, &alloc), 1);
}

/* sr_kit_page_out: the paged-out records (0 -> 16). */
static void page_out_prepare(fx_t* fx) {
  make_kit(fx, false, false);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3), 0);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, VA, K4, K4, SR_PROT_W), 0);
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA, 1, &fx->entry), 0);
}

static int page_out_run(fx_t* fx) {
  sr_pte_info_t as;
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  as.swap_offset = 77;
  return sr_kit_page_out(fx->kit, fx->cr3, VA, 1, &as);
}

static void page_out_failed(fx_t* fx) {
  uint64_t e;
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA, 1, &e), 0);
  assert_int_equal(e, fx->entry);
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3, VA, 1), SR_ENOENT);
}

static void page_out_succeeded(fx_t* fx) {
  uint64_t e;
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA, 1, &e), 0);
  assert_int_equal(e & 1, 0);
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3, VA, 1), 0);
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA, 1, &e), 0);
  assert_int_equal(e, fx->entry);
}

static void test_oom_core_kit_page_out(void** state) {
  fx_t* fx = *state;
  const oom_t op = {"sr_kit_page_out", page_out_prepare,   page_out_run,
                    page_out_failed,   page_out_succeeded, kit_release};

  assert_int_equal(oom_loop(fx, &op), 1);
}

/* sr_kit_punch_hole: new segments and free ranges. */
#define HOLE (UINT64_C(6) << 20)

static void punch_prepare(fx_t* fx) {
  make_kit(fx, false, false);
  put_pattern(fx, HOLE);
}

static int punch_run(fx_t* fx) {
  return sr_kit_punch_hole(fx->kit, HOLE, M2);
}

static void punch_failed(fx_t* fx) {
  sr_layout_t layout;
  sr_kit_layout(fx->kit, &layout);
  assert_int_equal(layout.kind, SR_LAYOUT_RAW);
  assert_int_equal(layout.low, KIT_SIZE);
}

static void punch_succeeded(fx_t* fx) {
  unsigned char b;
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
  assert_int_equal(sr_image_read(fx->image, HOLE, &b, 1, NULL), SR_EHOLE);
  expect_pattern(fx->image, GPA_LOW);
}

static void punch_prepare_pattern(fx_t* fx) {
  punch_prepare(fx);
  put_pattern(fx, GPA_LOW);
}

static void test_oom_core_kit_punch_hole(void** state) {
  fx_t* fx = *state;
  const oom_t op = {"sr_kit_punch_hole", punch_prepare_pattern, punch_run,
                    punch_failed,        punch_succeeded,       kit_release};

  assert_int_equal(oom_loop(fx, &op), 2);
}

/* sr_kit_write_elf: program headers and the copy buffer. */
static void write_elf_prepare(fx_t* fx) {
  make_kit(fx, false, true);
  put_pattern(fx, GPA_HIGH);
}

static int write_elf_run(fx_t* fx) {
  return sr_kit_write_elf(fx->kit, fx->path);
}

static void write_elf_failed(fx_t* fx) {
  /* Both allocations come before the file is created. */
  assert_int_equal(access(fx->path, F_OK), -1);
}

static void write_elf_succeeded(fx_t* fx) {
  assert_int_equal(sr_image_open(&fx->image, fx->path, NULL), 0);
  assert_int_equal(sr_image_layout_kind(fx->image), SR_LAYOUT_ELF);
  expect_pattern(fx->image, GPA_HIGH);
}

static void test_oom_core_kit_write_elf(void** state) {
  fx_t* fx = *state;
  const oom_t op = {"sr_kit_write_elf", write_elf_prepare,   write_elf_run,
                    write_elf_failed,   write_elf_succeeded, kit_release};

  assert_int_equal(oom_loop(fx, &op), 2);
}

/* ---- paths that must not allocate -------------------------------------- */

static void test_oom_core_reads_need_no_memory(void** state) {
  fx_t* fx = *state;
  unsigned char buf[64];
  sr_batch_item_t item;
  sr_translation_t t;
  sr_vread_t vr;
  sr_locate_t loc;
  size_t done;
  uint64_t e;

  make_kit(fx, false, false);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3), 0);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, VA, 2 * K4, K4, 0), 0);
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);

  arm(0, true);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, VA, 2 * K4, SEED), 0);
  assert_int_equal(sr_translate(fx->image, fx->cr3, VA, NULL, &t), 0);
  assert_int_equal(sr_image_locate(fx->image, t.gpa, &loc), 0);
  assert_int_equal(sr_image_read(fx->image, t.gpa, buf, sizeof(buf), &done), 0);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, VA, buf, sizeof(buf), &vr), 0);
  memset(&item, 0, sizeof(item));
  item.gva = VA + K4;
  item.buf = buf;
  item.len = sizeof(buf);
  assert_int_equal(sr_read_batch(fx->image, fx->cr3, NULL, &item, 1), 1);
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA, 1, &e), 0);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, VA, 1, e, NULL), 0);
  assert_int_equal(sr_kit_truncate(fx->kit, KIT_SIZE), 0);
  disarm();
  assert_int_equal(wrap.calls, 0);
  for (size_t i = 0; i < sizeof(buf); i++)
    assert_int_equal(buf[i], sr_kit_pattern(SEED, VA + K4 + i));
  kit_release(fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_oom_core_image_open_layouts, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_image_open_elf, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_kit_create, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_kit_new_space, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_kit_map, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_kit_page_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_kit_punch_hole, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_kit_write_elf, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_core_reads_need_no_memory, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
