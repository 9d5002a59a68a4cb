/* Tests of the guest physical image (sr_image_*, sr_layout_preset): open
 * paths and fds, every layout kind and its errors, QEMU presets (expected
 * numbers derived from QEMU's rules, written out below), ELF cores built
 * here byte by byte, hole/beyond outcomes, and SIGBUS containment when the
 * file shrinks under an open image. Files are memfds or temp files built
 * with pwrite; only the public API is used.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include <swapread/common.h>
#include <swapread/image.h>

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

/* --- helpers -------------------------------------------------------------- */

static int make_memfd(uint64_t size) {
  int fd = memfd_create("sr-test-image", MFD_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)size), 0);
  return fd;
}

static void put(int fd, uint64_t off, const void* p, size_t len) {
  assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
}

static void put64(int fd, uint64_t off, uint64_t v) {
  put(fd, off, &v, sizeof(v));
}

/* The byte the pattern puts at file offset off. */
static unsigned char pat(uint64_t off) {
  return (unsigned char)((off * 131) ^ (off >> 9) ^ 0x5a);
}

static void fill_pattern(int fd, uint64_t off, uint64_t len) {
  unsigned char buf[4096];
  uint64_t i = 0;
  while (i < len) {
    size_t n = len - i < sizeof(buf) ? (size_t)(len - i) : sizeof(buf);
    for (size_t j = 0; j < n; j++)
      buf[j] = pat(off + i + j);
    put(fd, off + i, buf, n);
    i += n;
  }
}

static void assert_pattern(const unsigned char* buf, uint64_t file_off,
                           size_t len) {
  for (size_t i = 0; i < len; i++)
    assert_int_equal(buf[i], pat(file_off + i));
}

static uint64_t read64(const sr_image_t* img, uint64_t gpa) {
  uint64_t v = 0;
  size_t done = 99;
  assert_int_equal(sr_image_read(img, gpa, &v, sizeof(v), &done), 0);
  assert_int_equal(done, sizeof(v));
  return v;
}

/* --- sr_image_diff64 ------------------------------------------------------ */

/* The file offset of gpa under the three segments of the diff tests, or
 * UINT64_MAX in a hole (the layout as the test wrote it down). */
static uint64_t diff_off(uint64_t gpa) {
  if (gpa < 4096)
    return 8192 + gpa;
  if (gpa < 8192)
    return gpa - 4096;
  if (gpa >= 16384 && gpa < 20480)
    return 4096 + (gpa - 16384);
  return UINT64_MAX;
}

/* The value of the 8 bytes at gpa from the pattern, or false if any byte
 * is in a hole. */
static bool diff_value(uint64_t gpa, uint64_t* v) {
  *v = 0;
  if (gpa > UINT64_MAX - 7)
    return false;
  for (int b = 0; b < 8; b++) {
    uint64_t off = diff_off(gpa + (uint64_t)b);
    if (off == UINT64_MAX)
      return false;
    *v |= (uint64_t)pat(off) << (8 * b);
  }
  return true;
}

/* Every entry is reported iff it cannot be loaded or differs from its
 * expected value: mapped (aligned or not), across two adjacent segments,
 * running into a hole, in a hole, past the last segment, at 2^64 - 8, and
 * half of the loadable ones with a wrong expectation. */
static void test_image_diff64_per_entry(void** state) {
  const sr_segment_t seg[3] = {
      {0, 4096, 8192}, {4096, 4096, 0}, {16384, 4096, 4096}};
  sr_layout_t lay = {.kind = SR_LAYOUT_SEGMENTS, .seg = seg, .nseg = 3};
  const uint64_t probe[] = {0,     8,     4088,  4092,  4096,  100,
                            8184,  8188,  8192,  12000, 16384, 16385,
                            20472, 20476, 20480, 4000,  24,    UINT64_MAX - 7};
  enum { N = sizeof(probe) / sizeof(probe[0]) * 2 };
  uint64_t gpa[N], expect[N], v;
  size_t diff[N], nd = 99, k = 0;
  bool want[N];
  sr_image_t* img = NULL;
  int fd = make_memfd(12288);
  (void)state;

  fill_pattern(fd, 0, 12288);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  for (size_t i = 0; i < N; i++) {
    bool ok;
    gpa[i] = probe[i % (N / 2)];
    ok = diff_value(gpa[i], &v);
    /* second half: expectations off by one where loadable */
    expect[i] = i < N / 2 ? v : v + 1;
    want[i] = !ok || i >= N / 2;
  }
  assert_int_equal(sr_image_diff64(img, gpa, expect, N, diff, &nd), 0);
  for (size_t i = 0; i < N; i++) {
    if (!want[i])
      continue;
    assert_true(k < nd);
    assert_int_equal(diff[k], i);
    k++;
  }
  assert_int_equal(nd, k);
  /* the values the diff accepted are those single reads see */
  for (size_t i = 0; i < N / 2; i++)
    if (!want[i])
      assert_true(read64(img, gpa[i]) == expect[i]);
  sr_image_close(img);
}

/* Entries beyond the end of the file (RAW `low` past it) are reported;
 * so is one straddling the end. */
static void test_image_diff64_beyond(void** state) {
  sr_layout_t lay = {.kind = SR_LAYOUT_RAW, .low = 16384};
  uint64_t gpa[4] = {8184, 8188, 8192, 100};
  uint64_t expect[4] = {0, 0, 0, 0};
  size_t diff[4], nd = 0;
  sr_image_t* img = NULL;
  int fd = make_memfd(8192);
  (void)state;

  fill_pattern(fd, 0, 8192);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  for (int b = 0; b < 8; b++) {
    expect[0] |= (uint64_t)pat(8184 + (uint64_t)b) << (8 * b);
    expect[3] |= (uint64_t)pat(100 + (uint64_t)b) << (8 * b);
  }
  assert_int_equal(sr_image_diff64(img, gpa, expect, 4, diff, &nd), 0);
  assert_int_equal(nd, 2);
  assert_int_equal(diff[0], 1);
  assert_int_equal(diff[1], 2);
  sr_image_close(img);
}

/* sr_image_cmp: equal, one byte off (first and last), a range running
 * past the end of the file (the first difference or the first byte
 * missing, whichever comes first), bad arguments. */
static void test_image_cmp(void** state) {
  sr_layout_t lay = {.kind = SR_LAYOUT_RAW, .low = 16384};
  unsigned char buf[4096];
  sr_image_t* img = NULL;
  int fd = make_memfd(8192);
  (void)state;

  fill_pattern(fd, 0, 8192);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  for (size_t i = 0; i < sizeof(buf); i++)
    buf[i] = pat(4096 + i);
  assert_int_equal(sr_image_cmp(img, 4096, buf, sizeof(buf)), 0);
  buf[0] ^= 1;
  assert_int_equal(sr_image_cmp(img, 4096, buf, sizeof(buf)), 1);
  buf[0] ^= 1;
  buf[4095] ^= 0x80;
  assert_int_equal(sr_image_cmp(img, 4096, buf, sizeof(buf)), 1);
  assert_int_equal(sr_image_cmp(img, 4096, buf, 4095), 0);
  /* past the end: a difference first wins; equal bytes up to the end do
   * not */
  assert_int_equal(sr_image_cmp(img, 6144, buf, sizeof(buf)), 1);
  for (size_t i = 0; i < 2048; i++)
    buf[i] = pat(6144 + i);
  assert_int_equal(sr_image_cmp(img, 6144, buf, sizeof(buf)), SR_EBEYOND);
  assert_int_equal(sr_image_cmp(img, 4096, buf, 0), 0);
  assert_int_equal(sr_image_cmp(NULL, 0, buf, 1), SR_EINVAL);
  assert_int_equal(sr_image_cmp(img, 0, NULL, 1), SR_EINVAL);
  assert_int_equal(sr_image_cmp(img, UINT64_MAX, buf, 2), SR_EINVAL);
  sr_image_close(img);
}

static void test_image_diff64_args(void** state) {
  uint64_t gpa[1] = {0}, expect[1] = {0};
  size_t diff[1], nd = 7;
  sr_image_t* img = NULL;
  int fd = make_memfd(4096);
  (void)state;

  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  close(fd);
  assert_int_equal(sr_image_diff64(NULL, gpa, expect, 1, diff, &nd), SR_EINVAL);
  assert_int_equal(nd, 0);
  assert_int_equal(sr_image_diff64(img, gpa, expect, 1, diff, NULL), SR_EINVAL);
  assert_int_equal(sr_image_diff64(img, NULL, expect, 1, diff, &nd), SR_EINVAL);
  assert_int_equal(sr_image_diff64(img, gpa, NULL, 1, diff, &nd), SR_EINVAL);
  assert_int_equal(sr_image_diff64(img, gpa, expect, 1, NULL, &nd), SR_EINVAL);
  nd = 7;
  assert_int_equal(sr_image_diff64(img, NULL, NULL, 0, NULL, &nd), 0);
  assert_int_equal(nd, 0);
  /* a zero page equals 0 */
  assert_int_equal(sr_image_diff64(img, gpa, expect, 1, diff, &nd), 0);
  assert_int_equal(nd, 0);
  sr_image_close(img);
}

/* The file is cut under the mapping: a batch over all pages faults in
 * the middle, SIGBUS does not escape, exactly the entries past the new
 * end are reported, and the usable size drops. The image is opened here,
 * in the test body (cmocka resets SIGBUS handlers per test). */
static void test_image_diff64_truncated_mid_batch(void** state) {
  enum { PAGES = 16, PER = 8, N = PAGES * PER };
  uint64_t gpa[N], expect[N];
  size_t diff[N], nd = 0;
  sr_image_t* img = NULL;
  int fd = make_memfd(PAGES * 4096);
  (void)state;

  fill_pattern(fd, 0, PAGES * 4096);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  for (size_t i = 0; i < N; i++) {
    gpa[i] = (uint64_t)i * (4096 / PER);
    expect[i] = 0;
    for (int b = 0; b < 8; b++)
      expect[i] |= (uint64_t)pat(gpa[i] + (uint64_t)b) << (8 * b);
  }
  assert_int_equal(ftruncate(fd, 5 * 4096), 0);
  assert_int_equal(sr_image_diff64(img, gpa, expect, N, diff, &nd), 0);
  assert_int_equal(nd, N - 5 * PER);
  for (size_t k = 0; k < nd; k++)
    assert_int_equal(diff[k], 5 * PER + k);
  assert_int_equal(sr_image_file_size(img), 5 * 4096);
  /* again, now without a fault */
  assert_int_equal(sr_image_diff64(img, gpa, expect, N, diff, &nd), 0);
  assert_int_equal(nd, N - 5 * PER);
  sr_image_close(img);
  close(fd);
}

/* --- SIGBUS chaining: a handler installed before the library's ---------- */

static sigjmp_buf chain_env;
static volatile sig_atomic_t chain_armed;
static volatile sig_atomic_t chain_hits;

static void test_sigbus_handler(int sig, siginfo_t* info, void* uctx) {
  (void)sig;
  (void)info;
  (void)uctx;
  if (!chain_armed)
    abort();
  chain_hits++;
  chain_armed = 0;
  siglongjmp(chain_env, 1);
}

/* --- open ----------------------------------------------------------------- */

static void test_image_open_path_raw(void** state) {
  char path[] = "/tmp/sr-test-image-XXXXXX";
  unsigned char buf[3000];
  sr_image_t* img = NULL;
  int fd;
  (void)state;

  fd = mkstemp(path);
  assert_true(fd >= 0);
  fill_pattern(fd, 0, 3 * 4096 + 100);
  close(fd);

  assert_int_equal(sr_image_open(&img, path, NULL), 0);
  assert_non_null(img);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_RAW);
  assert_int_equal(sr_image_file_size(img), 3 * 4096 + 100);
  assert_int_equal(sr_image_read(img, 4000, buf, sizeof(buf), NULL), 0);
  assert_pattern(buf, 4000, sizeof(buf));
  /* The last byte of the file, then one past it: beyond (RAW covers
   * exactly the file). */
  assert_int_equal(sr_image_read(img, 3 * 4096 + 99, buf, 1, NULL), 0);
  assert_int_equal(buf[0], pat(3 * 4096 + 99));
  assert_int_equal(sr_image_read(img, 3 * 4096 + 100, buf, 1, NULL), SR_EHOLE);
  sr_image_close(img);
  unlink(path);
}

static void test_image_open_fd_dups(void** state) {
  sr_image_t* img = NULL;
  unsigned char c = 0;
  int fd = make_memfd(8192);
  (void)state;

  fill_pattern(fd, 0, 8192);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  sr_image_close(img);
  /* The caller's fd survives the image. */
  assert_int_equal(pread(fd, &c, 1, 100), 1);
  assert_int_equal(c, pat(100));

  /* The image survives the caller's fd. */
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  assert_int_equal(close(fd), 0);
  assert_int_equal(sr_image_read(img, 5000, &c, 1, NULL), 0);
  assert_int_equal(c, pat(5000));
  sr_image_close(img);
}

static void test_image_open_bad_files(void** state) {
  sr_image_t* img = (sr_image_t*)&img; /* must be reset to NULL */
  char fifo[] = "/tmp/sr-test-fifo-XXXXXX";
  int p[2], dir, empty, devnull, tmpfd;
  (void)state;

  assert_int_equal(pipe(p), 0);
  assert_int_equal(sr_image_open_fd(&img, p[0], NULL), SR_ESPIPE);
  assert_null(img);
  close(p[0]);
  close(p[1]);

  dir = open("/tmp", O_RDONLY | O_DIRECTORY);
  assert_true(dir >= 0);
  assert_int_equal(sr_image_open_fd(&img, dir, NULL), SR_EISDIR);
  close(dir);
  assert_int_equal(sr_image_open(&img, "/tmp", NULL), SR_EISDIR);

  devnull = open("/dev/null", O_RDONLY);
  assert_true(devnull >= 0);
  assert_int_equal(sr_image_open_fd(&img, devnull, NULL), SR_ENODEV);
  close(devnull);

  /* A FIFO path must be rejected, not block waiting for a writer. */
  tmpfd = mkstemp(fifo);
  assert_true(tmpfd >= 0);
  close(tmpfd);
  unlink(fifo);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(sr_image_open(&img, fifo, NULL), SR_ESPIPE);
  unlink(fifo);

  empty = make_memfd(0);
  assert_int_equal(sr_image_open_fd(&img, empty, NULL), SR_EBADLAYOUT);
  close(empty);

  assert_int_equal(sr_image_open(&img, "/nonexistent/sr-image", NULL),
                   SR_ENOENT);
  assert_null(img);
}

static void test_image_open_bad_args(void** state) {
  sr_image_t* img = NULL;
  sr_layout_t bad = {.kind = (sr_layout_kind_t)42};
  int fd = make_memfd(4096);
  (void)state;

  assert_int_equal(sr_image_open(NULL, "/tmp", NULL), SR_EINVAL);
  assert_int_equal(sr_image_open(&img, NULL, NULL), SR_EINVAL);
  assert_int_equal(sr_image_open_fd(NULL, fd, NULL), SR_EINVAL);
  assert_int_equal(sr_image_open_fd(&img, -1, NULL), SR_EINVAL);
  assert_int_equal(sr_image_open_fd(&img, fd, &bad), SR_EINVAL);
  assert_null(img);
  sr_image_close(NULL); /* allowed */
  assert_int_equal(sr_image_segments(NULL, NULL), 0);
  assert_int_equal(sr_image_file_size(NULL), 0);
  close(fd);
}

/* --- read ----------------------------------------------------------------- */

static void test_image_read_args(void** state) {
  sr_image_t* img = NULL;
  unsigned char buf[16];
  sr_locate_t loc;
  size_t done = 7;
  int fd = make_memfd(4096);
  (void)state;

  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  close(fd);
  assert_int_equal(sr_image_read(NULL, 0, buf, 1, &done), SR_EINVAL);
  assert_int_equal(done, 0);
  assert_int_equal(sr_image_read(img, 0, NULL, 1, NULL), SR_EINVAL);
  done = 7;
  assert_int_equal(sr_image_read(img, 0, buf, 0, &done), 0);
  assert_int_equal(done, 0);
  /* [UINT64_MAX - 3, +16) wraps; [UINT64_MAX, +1) does not (a hole). */
  assert_int_equal(sr_image_read(img, UINT64_MAX - 3, buf, 16, NULL),
                   SR_EINVAL);
  assert_int_equal(sr_image_read(img, UINT64_MAX, buf, 1, &done), SR_EHOLE);
  assert_int_equal(done, 0);
  assert_int_equal(sr_image_locate(NULL, 0, &loc), SR_EINVAL);
  assert_int_equal(sr_image_locate(img, 0, NULL), SR_EINVAL);
  sr_image_close(img);
}

static void test_image_raw_low_beyond(void** state) {
  sr_layout_t lay = {.kind = SR_LAYOUT_RAW, .low = 16384};
  unsigned char buf[8192];
  sr_image_t* img = NULL;
  sr_locate_t loc;
  size_t done = 0;
  int fd = make_memfd(8192);
  (void)state;

  fill_pattern(fd, 0, 8192);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_RAW);
  /* [4096, 12288): 4096 mapped bytes, then the file ends inside `low`. */
  assert_int_equal(sr_image_read(img, 4096, buf, 8192, &done), SR_EBEYOND);
  assert_int_equal(done, 4096);
  assert_pattern(buf, 4096, 4096);
  assert_int_equal(sr_image_locate(img, 8192, &loc), SR_EBEYOND);
  assert_int_equal(loc.run, 16384 - 8192);
  assert_int_equal(sr_image_locate(img, 100, &loc), 0);
  assert_int_equal(loc.file_off, 100);
  assert_int_equal(loc.run, 8192 - 100);
  /* Past `low`: a hole to the top of the address space. */
  assert_int_equal(sr_image_locate(img, 16384, &loc), SR_EHOLE);
  assert_true(loc.run == UINT64_MAX - 16384 + 1);
  sr_image_close(img);
}

static void test_image_segments_read_across(void** state) {
  /* GPA [0,4K) -> file 8K, [4K,8K) -> file 0, [16K,20K) -> file 4K. */
  const sr_segment_t seg[3] = {
      {0, 4096, 8192}, {4096, 4096, 0}, {16384, 4096, 4096}};
  sr_layout_t lay = {.kind = SR_LAYOUT_SEGMENTS, .seg = seg, .nseg = 3};
  const sr_segment_t* got = NULL;
  unsigned char buf[16384];
  sr_image_t* img = NULL;
  sr_locate_t loc;
  size_t done = 0;
  int fd = make_memfd(12288);
  (void)state;

  fill_pattern(fd, 0, 12288);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_SEGMENTS);
  assert_int_equal(sr_image_segments(img, &got), 3);
  assert_memory_equal(got, seg, sizeof(seg));

  /* Across the boundary of two adjacent segments. */
  assert_int_equal(sr_image_read(img, 4000, buf, 200, &done), 0);
  assert_int_equal(done, 200);
  assert_pattern(buf, 8192 + 4000, 96);
  assert_pattern(buf + 96, 0, 104);

  /* Into the hole [8K, 16K): done stops at the hole. */
  assert_int_equal(sr_image_read(img, 4096, buf, 16384, &done), SR_EHOLE);
  assert_int_equal(done, 4096);
  assert_pattern(buf, 0, 4096);
  assert_int_equal(sr_image_read(img, 9000, buf, 1, &done), SR_EHOLE);
  assert_int_equal(done, 0);

  /* Locate runs. */
  assert_int_equal(sr_image_locate(img, 4000, &loc), 0);
  assert_int_equal(loc.file_off, 8192 + 4000);
  assert_int_equal(loc.run, 96);
  assert_int_equal(sr_image_locate(img, 9000, &loc), SR_EHOLE);
  assert_int_equal(loc.run, 16384 - 9000);
  assert_int_equal(sr_image_locate(img, 16384 + 10, &loc), 0);
  assert_int_equal(loc.file_off, 4096 + 10);
  assert_int_equal(loc.run, 4096 - 10);
  assert_int_equal(sr_image_locate(img, 20480, &loc), SR_EHOLE);
  assert_true(loc.run == UINT64_MAX - 20480 + 1);
  sr_image_close(img);
}

static void test_image_segments_none_is_raw(void** state) {
  sr_layout_t lay = {.kind = SR_LAYOUT_SEGMENTS, .low = 4096, .nseg = 0};
  sr_image_t* img = NULL;
  sr_locate_t loc;
  int fd = make_memfd(8192);
  (void)state;

  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  assert_int_equal(sr_image_locate(img, 4095, &loc), 0);
  assert_int_equal(loc.run, 1);
  assert_int_equal(sr_image_locate(img, 4096, &loc), SR_EHOLE);
  sr_image_close(img);
}

static void test_image_segments_invalid(void** state) {
  static const struct {
    const char* what;
    sr_segment_t seg[2];
    size_t nseg;
  } cases[] = {
      {"unsorted", {{8192, 4096, 0}, {0, 4096, 4096}}, 2},
      {"same start", {{0, 4096, 0}, {0, 4096, 4096}}, 2},
      {"overlapping", {{0, 8192, 0}, {4096, 4096, 0}}, 2},
      {"zero length", {{0, 0, 0}}, 1},
      {"zero length second", {{0, 4096, 0}, {8192, 0, 0}}, 2},
      {"wrapping", {{UINT64_MAX - 100, 4096, 0}}, 1},
      {"outside file", {{0, 8192, 12288}}, 1},
      {"longer than file", {{0, 32768, 0}}, 1},
      {"file_off overflow", {{0, 4096, UINT64_MAX - 10}}, 1},
      {"second outside", {{0, 4096, 0}, {8192, 4096, 16384}}, 2},
  };
  int fd = make_memfd(16384);
  (void)state;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sr_layout_t lay = {
        .kind = SR_LAYOUT_SEGMENTS, .seg = cases[i].seg, .nseg = cases[i].nseg};
    sr_image_t* img = NULL;
    int err = sr_image_open_fd(&img, fd, &lay);
    if (err != SR_EBADLAYOUT)
      print_error("case %s: got %s\n", cases[i].what, sr_err_name(err));
    assert_int_equal(err, SR_EBADLAYOUT);
    assert_null(img);
  }
  {
    /* Ending exactly at 2^64 is not a wrap; the whole file is used. */
    sr_segment_t top = {UINT64_MAX - 4095, 4096, 0};
    sr_layout_t lay = {.kind = SR_LAYOUT_SEGMENTS, .seg = &top, .nseg = 1};
    sr_image_t* img = NULL;
    sr_locate_t loc;
    assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
    assert_int_equal(sr_image_locate(img, UINT64_MAX, &loc), 0);
    assert_int_equal(loc.run, 1);
    assert_int_equal(sr_image_locate(img, 0, &loc), SR_EHOLE);
    assert_true(loc.run == UINT64_MAX - 4095);
    sr_image_close(img);
  }
  {
    sr_layout_t lay = {.kind = SR_LAYOUT_SEGMENTS, .seg = NULL, .nseg = 1};
    sr_image_t* img = NULL;
    assert_int_equal(sr_image_open_fd(&img, fd, &lay), SR_EINVAL);
  }
  close(fd);
}

/* --- presets -------------------------------------------------------------- */

/* QEMU 8.1 rules, restated independently of the library:
 * pc  (hw/i386/pc_piix.c pc_init1): max = max-ram-below-4g or 3.5G;
 *     lowmem = max; if ram >= max (and gigabyte_align) lowmem = min(3G,
 *     lowmem).
 * q35 (hw/i386/pc_q35.c pc_q35_init): lowmem = ram >= 2.75G ? 2G : 2.75G;
 *     lowmem = min(lowmem, max-ram-below-4g or 4G).
 * Both: ram >= lowmem ? below = lowmem, above = ram - lowmem : below = ram.
 */
static void expect_preset(sr_layout_kind_t kind, uint64_t ram, uint64_t max,
                          uint64_t below, uint64_t above) {
  sr_segment_t seg[2];
  size_t n = 0;

  memset(seg, 0xee, sizeof(seg));
  assert_int_equal(sr_layout_preset(kind, ram, max, seg, &n), 0);
  assert_int_equal(n, above != 0 ? 2 : 1);
  assert_true(seg[0].gpa == 0 && seg[0].len == below && seg[0].file_off == 0);
  if (above != 0) {
    assert_true(seg[1].gpa == 4 * GIB);
    assert_true(seg[1].len == above);
    assert_true(seg[1].file_off == below);
  }
}

static void test_image_preset_numbers(void** state) {
  sr_segment_t seg[2];
  size_t n;
  (void)state;

  /* pc; the first three are the examples in pc_init1's comment. */
  expect_preset(SR_LAYOUT_PC, 4 * GIB, 0, 3072 * MIB, 1024 * MIB);
  expect_preset(SR_LAYOUT_PC, 4 * GIB, 2 * GIB, 2 * GIB, 2 * GIB);
  expect_preset(SR_LAYOUT_PC, 3968 * MIB, 4 * GIB, 3968 * MIB, 0);
  expect_preset(SR_LAYOUT_PC, 3 * GIB, 0, 3 * GIB, 0);
  expect_preset(SR_LAYOUT_PC, 3 * GIB + 256 * MIB, 0, 3 * GIB + 256 * MIB, 0);
  expect_preset(SR_LAYOUT_PC, 0xe0000000, 0, 3 * GIB, 512 * MIB);
  expect_preset(SR_LAYOUT_PC, 0xe0000000 - 1, 0, 0xe0000000 - 1, 0);
  expect_preset(SR_LAYOUT_PC, 512 * MIB, 0, 512 * MIB, 0);
  expect_preset(SR_LAYOUT_PC, 64 * GIB, 0, 3 * GIB, 61 * GIB);
  /* max-ram-below-4g = 4G with 8G of RAM: split needed, capped at 3G. */
  expect_preset(SR_LAYOUT_PC, 8 * GIB, 4 * GIB, 3 * GIB, 5 * GIB);

  /* q35 */
  expect_preset(SR_LAYOUT_Q35, 2 * GIB, 0, 2 * GIB, 0);
  expect_preset(SR_LAYOUT_Q35, 0xb0000000 - 1, 0, 0xb0000000 - 1, 0);
  expect_preset(SR_LAYOUT_Q35, 0xb0000000, 0, 2 * GIB, 0x30000000);
  expect_preset(SR_LAYOUT_Q35, 4 * GIB, 0, 2 * GIB, 2 * GIB);
  expect_preset(SR_LAYOUT_Q35, 2 * GIB, 1 * GIB, 1 * GIB, 1 * GIB);
  expect_preset(SR_LAYOUT_Q35, 1 * GIB, 0, 1 * GIB, 0);

  /* Errors. */
  assert_int_equal(sr_layout_preset(SR_LAYOUT_PC, 0, 0, seg, &n), SR_EINVAL);
  assert_int_equal(sr_layout_preset(SR_LAYOUT_RAW, GIB, 0, seg, &n), SR_EINVAL);
  assert_int_equal(sr_layout_preset(SR_LAYOUT_Q35, GIB, 4 * GIB + 1, seg, &n),
                   SR_EINVAL);
  assert_int_equal(sr_layout_preset(SR_LAYOUT_PC, GIB, 0, NULL, &n), SR_EINVAL);
  assert_int_equal(sr_layout_preset(SR_LAYOUT_PC, GIB, 0, seg, NULL),
                   SR_EINVAL);
  assert_int_equal(sr_layout_preset(SR_LAYOUT_PC, UINT64_MAX, 0, seg, &n),
                   SR_EINVAL);
}

static void test_image_preset_pc_reads(void** state) {
  /* pc, 4 GiB: GPA [0,3G) -> file [0,3G), GPA [4G,5G) -> file [3G,4G). */
  sr_layout_t lay = {.kind = SR_LAYOUT_PC}; /* ram_size 0: the file size */
  sr_image_t* img = NULL;
  sr_locate_t loc;
  unsigned char buf[16];
  size_t done = 0;
  int fd = make_memfd(4 * GIB);
  (void)state;

  put64(fd, 0, 0x1111111111111111);
  put64(fd, 3 * GIB - 8, 0x2222222222222222);
  put64(fd, 3 * GIB, 0x3333333333333333);
  put64(fd, 4 * GIB - 8, 0x4444444444444444);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_PC);
  assert_true(read64(img, 0) == 0x1111111111111111);
  assert_true(read64(img, 3 * GIB - 8) == 0x2222222222222222);
  assert_true(read64(img, 4 * GIB) == 0x3333333333333333);
  assert_true(read64(img, 5 * GIB - 8) == 0x4444444444444444);
  /* The PCI hole [3G, 4G) and above the RAM. */
  assert_int_equal(sr_image_read(img, 3 * GIB - 8, buf, 16, &done), SR_EHOLE);
  assert_int_equal(done, 8);
  assert_int_equal(sr_image_locate(img, 3 * GIB, &loc), SR_EHOLE);
  assert_true(loc.run == GIB);
  assert_int_equal(sr_image_read(img, 5 * GIB, buf, 1, NULL), SR_EHOLE);
  sr_image_close(img);
}

static void test_image_preset_q35_reads(void** state) {
  /* q35, 4 GiB: GPA [0,2G) -> file [0,2G), GPA [4G,6G) -> file [2G,4G). */
  sr_layout_t lay = {.kind = SR_LAYOUT_Q35, .ram_size = 4 * GIB};
  sr_image_t* img = NULL;
  sr_locate_t loc;
  int fd = make_memfd(4 * GIB);
  (void)state;

  put64(fd, 2 * GIB - 8, 0xaaaaaaaaaaaaaaaa);
  put64(fd, 2 * GIB, 0xbbbbbbbbbbbbbbbb);
  put64(fd, 4 * GIB - 8, 0xcccccccccccccccc);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  assert_true(read64(img, 2 * GIB - 8) == 0xaaaaaaaaaaaaaaaa);
  assert_true(read64(img, 4 * GIB) == 0xbbbbbbbbbbbbbbbb);
  assert_true(read64(img, 6 * GIB - 8) == 0xcccccccccccccccc);
  assert_int_equal(sr_image_locate(img, 2 * GIB, &loc), SR_EHOLE);
  assert_true(loc.run == 2 * GIB);
  assert_int_equal(sr_image_locate(img, 4 * GIB + 5, &loc), 0);
  assert_true(loc.file_off == 2 * GIB + 5);
  sr_image_close(img);
}

static void test_image_preset_short_file(void** state) {
  /* pc with 4 GiB of RAM in a file of 3 GiB + 4 KiB: GPA 4G is the last
   * page of the file, GPA 4G + 4K is beyond its end. */
  sr_layout_t lay = {.kind = SR_LAYOUT_PC, .ram_size = 4 * GIB};
  sr_image_t* img = NULL;
  sr_locate_t loc;
  unsigned char c;
  int fd = make_memfd(3 * GIB + 4096);
  (void)state;

  put64(fd, 3 * GIB, 0x5555555555555555);
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  close(fd);
  assert_true(read64(img, 4 * GIB) == 0x5555555555555555);
  assert_int_equal(sr_image_read(img, 4 * GIB + 4096, &c, 1, NULL), SR_EBEYOND);
  assert_int_equal(sr_image_locate(img, 4 * GIB + 4096, &loc), SR_EBEYOND);
  assert_true(loc.run == GIB - 4096);
  sr_image_close(img);
}

/* --- ELF ------------------------------------------------------------------ */

typedef struct elf_s {
  Elf64_Ehdr eh;
  Elf64_Phdr ph[4];
  int nph;
} elf_t;

/* A QEMU-like core: PT_NOTE, then PT_LOADs; headers at offset 64. */
static void elf_init(elf_t* e) {
  memset(e, 0, sizeof(*e));
  memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
  e->eh.e_ident[EI_CLASS] = ELFCLASS64;
  e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
  e->eh.e_ident[EI_VERSION] = EV_CURRENT;
  e->eh.e_type = ET_CORE;
  e->eh.e_machine = EM_X86_64;
  e->eh.e_version = EV_CURRENT;
  e->eh.e_phoff = sizeof(Elf64_Ehdr);
  e->eh.e_ehsize = sizeof(Elf64_Ehdr);
  e->eh.e_phentsize = sizeof(Elf64_Phdr);
  e->ph[0].p_type = PT_NOTE;
  e->ph[0].p_offset = 0x400;
  e->ph[0].p_filesz = 0x100;
  e->nph = 1;
}

static void elf_load(elf_t* e, uint64_t paddr, uint64_t memsz, uint64_t offset,
                     uint64_t filesz) {
  Elf64_Phdr* p = &e->ph[e->nph++];
  p->p_type = PT_LOAD;
  p->p_paddr = paddr;
  p->p_vaddr = 0;
  p->p_memsz = memsz;
  p->p_offset = offset;
  p->p_filesz = filesz;
  p->p_flags = PF_R | PF_W | PF_X;
}

/* The standard core: [0, 8K) at 0x1000 and [1M, 1M + 12K) with only 8K in
 * the file at 0x3000 (the last 4K are a hole); file size 0x5000. */
static void elf_standard(elf_t* e) {
  elf_init(e);
  elf_load(e, 0, 0x2000, 0x1000, 0x2000);
  elf_load(e, 0x100000, 0x3000, 0x3000, 0x2000);
}

static int elf_file(const elf_t* e, uint64_t size) {
  int fd = make_memfd(size);
  fill_pattern(fd, 0, size);
  put(fd, 0, &e->eh, sizeof(e->eh));
  put(fd, sizeof(e->eh), e->ph, (size_t)e->nph * sizeof(Elf64_Phdr));
  assert_int_equal(ftruncate(fd, (off_t)size), 0); /* cut what overhangs */
  return fd;
}

static int elf_open(const elf_t* e, uint64_t size, sr_layout_kind_t kind,
                    sr_image_t** img) {
  sr_layout_t lay = {.kind = kind};
  int fd = elf_file(e, size);
  int err = sr_image_open_fd(img, fd, &lay);
  close(fd);
  return err;
}

static void test_image_elf_valid(void** state) {
  unsigned char buf[0x2000];
  const sr_segment_t* seg = NULL;
  sr_image_t* img = NULL;
  sr_locate_t loc;
  size_t done = 0;
  elf_t e;
  (void)state;

  elf_standard(&e);
  e.eh.e_phnum = (Elf64_Half)e.nph;
  assert_int_equal(elf_open(&e, 0x5000, SR_LAYOUT_AUTO, &img), 0);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_ELF);
  assert_int_equal(sr_image_segments(img, &seg), 2);
  assert_true(seg[0].gpa == 0 && seg[0].len == 0x2000 &&
              seg[0].file_off == 0x1000);
  assert_true(seg[1].gpa == 0x100000 && seg[1].len == 0x2000 &&
              seg[1].file_off == 0x3000);

  assert_int_equal(sr_image_read(img, 0, buf, 0x2000, &done), 0);
  assert_pattern(buf, 0x1000, 0x2000);
  assert_int_equal(sr_image_read(img, 0x100000 + 0x1ff0, buf, 16, NULL), 0);
  assert_pattern(buf, 0x3000 + 0x1ff0, 16);
  /* The gap between the loads, and [filesz, memsz) of the second. */
  assert_int_equal(sr_image_read(img, 0x2000, buf, 1, NULL), SR_EHOLE);
  assert_int_equal(sr_image_locate(img, 0x2000, &loc), SR_EHOLE);
  assert_true(loc.run == 0x100000 - 0x2000);
  assert_int_equal(sr_image_read(img, 0x100000 + 0x1ff8, buf, 16, &done),
                   SR_EHOLE);
  assert_int_equal(done, 8);
  sr_image_close(img);

  /* Same file, explicit kind. */
  assert_int_equal(elf_open(&e, 0x5000, SR_LAYOUT_ELF, &img), 0);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_ELF);
  sr_image_close(img);
}

static void test_image_elf_truncated_dump(void** state) {
  /* The file ends 0x1000 into the second load's file part. */
  unsigned char buf[0x2000];
  sr_image_t* img = NULL;
  size_t done = 0;
  elf_t e;
  (void)state;

  elf_standard(&e);
  e.eh.e_phnum = (Elf64_Half)e.nph;
  assert_int_equal(elf_open(&e, 0x4000, SR_LAYOUT_AUTO, &img), 0);
  assert_int_equal(sr_image_read(img, 0x100000, buf, 0x2000, &done),
                   SR_EBEYOND);
  assert_int_equal(done, 0x1000);
  assert_pattern(buf, 0x3000, 0x1000);
  sr_image_close(img);
}

static void test_image_elf_pn_xnum(void** state) {
  /* e_phnum = PN_XNUM: the real count is sh_info of section header 0. */
  Elf64_Shdr sh;
  sr_layout_t lay = {.kind = SR_LAYOUT_AUTO};
  sr_image_t* img = NULL;
  elf_t e;
  int fd;
  (void)state;

  elf_standard(&e);
  e.eh.e_phnum = PN_XNUM;
  e.eh.e_shoff = 0x4800;
  e.eh.e_shentsize = sizeof(Elf64_Shdr);
  e.eh.e_shnum = 0;
  fd = elf_file(&e, 0x5000);
  memset(&sh, 0, sizeof(sh));
  sh.sh_info = (Elf64_Word)e.nph;
  put(fd, 0x4800, &sh, sizeof(sh));
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), 0);
  assert_int_equal(sr_image_segments(img, NULL), 2);
  sr_image_close(img);

  /* A section header outside the file is malformed. */
  e.eh.e_shoff = 0x4ff0;
  put(fd, 0, &e.eh, sizeof(e.eh));
  assert_int_equal(sr_image_open_fd(&img, fd, &lay), SR_EBADELF);
  close(fd);
}

static void test_image_elf_malformed(void** state) {
  enum {
    TRUNC_HEADER,
    PHOFF_PAST_EOF,
    PHNUM_HUGE,
    PHENTSIZE,
    OVERLAP,
    CLASS32,
    MSB_DATA,
    OFFSET_OVERFLOW,
    PADDR_WRAP,
    FILESZ_GT_MEMSZ,
    NO_LOAD,
    MACHINE,
    NOT_CORE,
    PHOFF_OVERFLOW,
    NCASES
  };
  (void)state;

  for (int c = 0; c < NCASES; c++) {
    uint64_t size = 0x5000;
    sr_image_t* img = NULL;
    elf_t e;

    elf_standard(&e);
    e.eh.e_phnum = (Elf64_Half)e.nph;
    switch (c) {
      case TRUNC_HEADER:
        size = 40;
        break;
      case PHOFF_PAST_EOF:
        e.eh.e_phoff = 0x5000 - 8;
        break;
      case PHNUM_HUGE:
        e.eh.e_phnum = 0xfffe;
        break;
      case PHENTSIZE:
        e.eh.e_phentsize = 32;
        break;
      case OVERLAP:
        elf_load(&e, 0x1000, 0x1000, 0x1000, 0x1000);
        e.eh.e_phnum = (Elf64_Half)e.nph;
        break;
      case CLASS32:
        e.eh.e_ident[EI_CLASS] = ELFCLASS32;
        break;
      case MSB_DATA:
        e.eh.e_ident[EI_DATA] = ELFDATA2MSB;
        break;
      case OFFSET_OVERFLOW:
        e.ph[2].p_offset = UINT64_MAX - 0x1000;
        break;
      case PADDR_WRAP:
        e.ph[2].p_paddr = UINT64_MAX - 0x1000;
        break;
      case FILESZ_GT_MEMSZ:
        e.ph[2].p_filesz = 0x4000;
        break;
      case NO_LOAD:
        e.eh.e_phnum = 1;
        break;
      case MACHINE:
        e.eh.e_machine = EM_386;
        break;
      case NOT_CORE:
        e.eh.e_type = ET_EXEC;
        break;
      case PHOFF_OVERFLOW:
        e.eh.e_phoff = UINT64_MAX - 16;
        break;
    }
    for (int k = 0; k < 2; k++) {
      int err = elf_open(&e, size, k ? SR_LAYOUT_ELF : SR_LAYOUT_AUTO, &img);
      if (err != SR_EBADELF)
        print_error("case %d kind %d: %s\n", c, k, sr_err_name(err));
      assert_int_equal(err, SR_EBADELF);
      assert_null(img);
    }
  }
}

static void test_image_elf_kind_on_raw_file(void** state) {
  sr_layout_t lay = {.kind = SR_LAYOUT_ELF};
  sr_image_t* img = NULL;
  int fd = make_memfd(8192);
  (void)state;

  assert_int_equal(sr_image_open_fd(&img, fd, &lay), SR_EBADELF);
  /* Too short for the magic: AUTO falls back to RAW. */
  assert_int_equal(ftruncate(fd, 3), 0);
  put(fd, 0,
      "\x7f"
      "EL",
      3);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_RAW);
  sr_image_close(img);
  close(fd);
}

/* --- truncation and SIGBUS ------------------------------------------------ */

static void test_image_truncate_beyond(void** state) {
  unsigned char buf[3 * 4096];
  sr_image_t* img = NULL;
  sr_locate_t loc;
  size_t done = 99;
  int fd = make_memfd(3 * 4096);
  (void)state;

  fill_pattern(fd, 0, 3 * 4096);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  assert_int_equal(sr_image_read(img, 0, buf, sizeof(buf), NULL), 0);
  assert_pattern(buf, 0, sizeof(buf));

  /* Shrink to one page under the open image: the next load of page 2 is a
   * real SIGBUS, which must come back as SR_EBEYOND. */
  assert_int_equal(ftruncate(fd, 4096), 0);
  assert_int_equal(sr_image_read(img, 8192, buf, 16, &done), SR_EBEYOND);
  assert_int_equal(done, 0);
  assert_int_equal(sr_image_file_size(img), 4096);
  /* Later reads: beyond without faulting; partial reads keep their
   * prefix. */
  assert_int_equal(sr_image_read(img, 8192, buf, 16, &done), SR_EBEYOND);
  assert_int_equal(sr_image_read(img, 4000, buf, 200, &done), SR_EBEYOND);
  assert_int_equal(done, 96);
  assert_pattern(buf, 4000, 96);
  assert_int_equal(sr_image_locate(img, 4096, &loc), SR_EBEYOND);
  assert_int_equal(loc.run, 2 * 4096);
  sr_image_close(img);
  close(fd);
}

static void test_image_truncate_mid_read(void** state) {
  /* A long read whose tail was cut: the fault lands mid-copy, done counts
   * exactly the pages that survived. */
  enum { PAGES = 16 };
  unsigned char* buf = malloc(PAGES * 4096);
  sr_image_t* img = NULL;
  size_t done = 0;
  int fd = make_memfd(PAGES * 4096);
  (void)state;

  assert_non_null(buf);
  fill_pattern(fd, 0, PAGES * 4096);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  assert_int_equal(ftruncate(fd, 5 * 4096), 0);
  assert_int_equal(sr_image_read(img, 100, buf, PAGES * 4096 - 100, &done),
                   SR_EBEYOND);
  assert_int_equal(done, 5 * 4096 - 100);
  assert_pattern(buf, 100, done);
  assert_int_equal(sr_image_file_size(img), 5 * 4096);
  sr_image_close(img);
  close(fd);
  free(buf);
}

typedef struct reader_s {
  const sr_image_t* img;
  volatile int* stop;
  int bad; /* results that are neither 0 nor SR_EBEYOND after page 0 */
  int faults;
} reader_t;

static void* reader_main(void* arg) {
  reader_t* r = arg;
  unsigned char buf[3 * 4096];

  for (long i = 0; i < 1000000; i++) {
    size_t done = 0;
    int err;
    if (__atomic_load_n(r->stop, __ATOMIC_ACQUIRE) && r->faults >= 3)
      break;
    err = sr_image_read(r->img, 0, buf, sizeof(buf), &done);
    if (err == SR_EBEYOND && done >= 4096 && done < sizeof(buf))
      r->faults++;
    else if (err != 0 || done != sizeof(buf))
      r->bad++;
  }
  return NULL;
}

static void test_image_truncate_threads(void** state) {
  /* Property: while other threads read [0, 3 pages), the file is cut to
   * one page; every read returns 0 (all copied) or SR_EBEYOND with at
   * least the surviving page copied; nobody dies of SIGBUS. */
  enum { NTHREADS = 4 };
  pthread_t tid[NTHREADS];
  reader_t rd[NTHREADS];
  sr_image_t* img = NULL;
  unsigned char buf[3 * 4096];
  size_t done = 0;
  volatile int stop = 0;
  int fd = make_memfd(3 * 4096);
  (void)state;

  fill_pattern(fd, 0, 3 * 4096);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  for (int i = 0; i < NTHREADS; i++) {
    rd[i].img = img;
    rd[i].stop = &stop;
    rd[i].bad = 0;
    rd[i].faults = 0;
    assert_int_equal(pthread_create(&tid[i], NULL, reader_main, &rd[i]), 0);
  }
  usleep(2000);
  assert_int_equal(ftruncate(fd, 4096), 0);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  /* Each reader stops once it has seen the cut three times. */
  for (int i = 0; i < NTHREADS; i++) {
    assert_int_equal(pthread_join(tid[i], NULL), 0);
    assert_int_equal(rd[i].bad, 0);
    assert_true(rd[i].faults >= 3);
  }
  assert_int_equal(sr_image_read(img, 0, buf, sizeof(buf), &done), SR_EBEYOND);
  assert_int_equal(done, 4096);
  assert_pattern(buf, 0, 4096);
  sr_image_close(img);
  close(fd);
}

static void test_image_mapping_read_only(void** state) {
  /* Every mapping of the image's file is read-only (perms "r--s"). */
  char line[512];
  sr_image_t* img = NULL;
  int seen = 0;
  FILE* maps;
  int fd = memfd_create("sr-test-ro-check", MFD_CLOEXEC);
  (void)state;

  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 3 * 4096), 0);
  assert_int_equal(sr_image_open_fd(&img, fd, NULL), 0);
  maps = fopen("/proc/self/maps", "r");
  assert_non_null(maps);
  while (fgets(line, sizeof(line), maps) != NULL) {
    char perms[8];
    if (strstr(line, "sr-test-ro-check") == NULL)
      continue;
    assert_int_equal(sscanf(line, "%*s %7s", perms), 1);
    assert_string_equal(perms, "r--s");
    seen++;
  }
  fclose(maps);
  assert_int_equal(seen, 1);
  sr_image_close(img);
  close(fd);
}

/* Raises a SIGBUS that is not the library's: a load from `p` (fault) or
 * kill(). Returns 1 when a handler jumped back to chain_env, 0 when the
 * signal was ignored. Kept apart so that no caller's locals live across the
 * sigsetjmp. */
static __attribute__((noinline)) int foreign_sigbus(volatile unsigned char* p,
                                                    int fault) {
  if (sigsetjmp(chain_env, 1) != 0)
    return 1;
  chain_armed = 1;
  if (fault)
    (void)p[0];
  else
    kill(getpid(), SIGBUS);
  chain_armed = 0;
  return 0;
}

/* Child processes: a fresh exec of this binary, so that the library's
 * first install of its SIGBUS handler sees the disposition set here (in
 * this process it was installed long ago, over cmocka's handler). */

/* Sets SIGBUS to `how` ("chain": test_sigbus_handler, "dfl", "ign"), opens
 * an image, then raises a SIGBUS that is not the library's: a real fault on
 * a mapping of our own (`fault`) or kill(). Exit 0 when the child survives
 * as expected, another code naming the failed step. */
static int child_main(const char* how, int fault) {
  struct sigaction sa, cur;
  sr_image_t* img = NULL;
  volatile unsigned char* p;
  unsigned char c = 0;
  int chain = strcmp(how, "chain") == 0;
  int fd = memfd_create("sr-test-child", MFD_CLOEXEC);

  if (fd < 0 || ftruncate(fd, 2 * 4096) != 0)
    return 10;
  memset(&sa, 0, sizeof(sa));
  sigemptyset(&sa.sa_mask);
  if (chain) {
    sa.sa_sigaction = test_sigbus_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  } else {
    sa.sa_handler = strcmp(how, "dfl") == 0 ? SIG_DFL : SIG_IGN;
  }
  if (sigaction(SIGBUS, &sa, NULL) != 0)
    return 11;
  if (sr_image_open_fd(&img, fd, NULL) != 0)
    return 12;
  /* The library's handler is now on top. */
  if (sigaction(SIGBUS, NULL, &cur) != 0 || !(cur.sa_flags & SA_SIGINFO) ||
      cur.sa_sigaction == test_sigbus_handler)
    return 13;
  p = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || ftruncate(fd, 4096) != 0)
    return 14;
  if (foreign_sigbus(p + 4096, fault) != chain)
    return 15; /* jumped back iff our handler was reached */
  if (chain && chain_hits != 1)
    return 16;
  /* The library still contains its own faults, without chaining. */
  if (sr_image_read(img, 4096, &c, 1, NULL) != SR_EBEYOND)
    return 17;
  if (chain && chain_hits != 1)
    return 18;
  munmap((void*)p, 2 * 4096);
  sr_image_close(img);
  close(fd);
  return 0;
}

/* A handler installed over the library's that chains to it, the way crash
 * reporters do. */
static struct sigaction over_prev;
static volatile sig_atomic_t over_hits;

static void over_handler(int sig, siginfo_t* info, void* uctx) {
  if (++over_hits > 5)
    _exit(30); /* the two handlers call each other */
  over_prev.sa_sigaction(sig, info, uctx);
}

/* Child: test_sigbus_handler, first open, then over_handler on top, then a
 * second open (which must leave over_handler in place), then a foreign
 * fault: over_handler -> library -> test_sigbus_handler, once each. */
static int child_over(void) {
  struct sigaction sa, cur;
  sr_image_t* img = NULL;
  sr_image_t* img2 = NULL;
  volatile unsigned char* p;
  unsigned char c = 0;
  int fd = memfd_create("sr-test-child", MFD_CLOEXEC);

  if (fd < 0 || ftruncate(fd, 2 * 4096) != 0)
    return 10;
  memset(&sa, 0, sizeof(sa));
  sigemptyset(&sa.sa_mask);
  sa.sa_sigaction = test_sigbus_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  if (sigaction(SIGBUS, &sa, NULL) != 0)
    return 11;
  if (sr_image_open_fd(&img, fd, NULL) != 0)
    return 12;
  sa.sa_sigaction = over_handler;
  if (sigaction(SIGBUS, &sa, &over_prev) != 0 ||
      !(over_prev.sa_flags & SA_SIGINFO))
    return 13;
  if (sr_image_open_fd(&img2, fd, NULL) != 0)
    return 14;
  if (sigaction(SIGBUS, NULL, &cur) != 0 || cur.sa_sigaction != over_handler)
    return 15;
  p = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || ftruncate(fd, 4096) != 0)
    return 16;
  if (foreign_sigbus(p + 4096, 1) != 1)
    return 17;
  if (over_hits != 1 || chain_hits != 1)
    return 18;
  /* Library faults still contained (through over_handler's chaining). */
  if (sr_image_read(img2, 4096, &c, 1, NULL) != SR_EBEYOND)
    return 19;
  if (chain_hits != 1)
    return 20;
  munmap((void*)p, 2 * 4096);
  sr_image_close(img2);
  sr_image_close(img);
  close(fd);
  return 0;
}

static int run_child(const char* how, const char* what) {
  int status = 0;
  pid_t pid = fork();

  assert_true(pid >= 0);
  if (pid == 0) {
    execl("/proc/self/exe", "test_core_image", "--child", how, what,
          (char*)NULL);
    _exit(127);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

static void test_image_sigbus_chains(void** state) {
  int status;
  (void)state;

  /* A handler installed before the first open gets the foreign SIGBUS
   * (through the library's handler), not the library's own faults. */
  status = run_child("chain", "fault");
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  status = run_child("chain", "kill");
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_image_sigbus_handler_on_top(void** state) {
  int status;
  (void)state;

  /* A handler installed over the library's (chaining to it) stays on top
   * across later opens; a foreign SIGBUS visits each handler once. */
  status = run_child("over", "fault");
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_image_sigbus_chains_default(void** state) {
  int status;
  (void)state;

  /* SIG_DFL before us: a foreign fault still kills with SIGBUS, and so
   * does a sent SIGBUS. */
  status = run_child("dfl", "fault");
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
  status = run_child("dfl", "kill");
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
  /* SIG_IGN before us: a sent SIGBUS stays ignored; a real fault cannot
   * be ignored (the kernel would not either). */
  status = run_child("ign", "kill");
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  status = run_child("ign", "fault");
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
}

/* --- errors --------------------------------------------------------------- */

static void test_image_error_strings(void** state) {
  (void)state;
  assert_string_equal(sr_err_name(SR_EHOLE), "EHOLE");
  assert_string_equal(sr_err_name(SR_EBEYOND), "EBEYOND");
  assert_string_equal(sr_err_name(SR_EBADLAYOUT), "EBADLAYOUT");
  assert_string_equal(sr_err_name(SR_EBADELF), "EBADELF");
  assert_string_equal(sr_err_name(SR_ESPIPE), "ESPIPE");
  assert_string_equal(sr_err_name(0), "OK");
  assert_string_equal(sr_err_name(-123456), "UNKNOWN");
  assert_string_equal(sr_strerror(SR_EHOLE), "physical address in a hole");
  assert_string_equal(sr_strerror(SR_EBADELF), "malformed ELF core");
  assert_string_equal(sr_strerror(-123456), "unknown error");
  assert_int_equal(SR_EINVAL, -EINVAL);
  assert_int_equal(SR_EISDIR, -EISDIR);
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0)
    return strcmp(argv[2], "over") == 0
               ? child_over()
               : child_main(argv[2], strcmp(argv[3], "fault") == 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_image_open_path_raw),
      cmocka_unit_test(test_image_open_fd_dups),
      cmocka_unit_test(test_image_open_bad_files),
      cmocka_unit_test(test_image_open_bad_args),
      cmocka_unit_test(test_image_read_args),
      cmocka_unit_test(test_image_raw_low_beyond),
      cmocka_unit_test(test_image_segments_read_across),
      cmocka_unit_test(test_image_segments_none_is_raw),
      cmocka_unit_test(test_image_segments_invalid),
      cmocka_unit_test(test_image_preset_numbers),
      cmocka_unit_test(test_image_preset_pc_reads),
      cmocka_unit_test(test_image_preset_q35_reads),
      cmocka_unit_test(test_image_preset_short_file),
      cmocka_unit_test(test_image_elf_valid),
      cmocka_unit_test(test_image_elf_truncated_dump),
      cmocka_unit_test(test_image_elf_pn_xnum),
      cmocka_unit_test(test_image_elf_malformed),
      cmocka_unit_test(test_image_elf_kind_on_raw_file),
      cmocka_unit_test(test_image_truncate_beyond),
      cmocka_unit_test(test_image_truncate_mid_read),
      cmocka_unit_test(test_image_truncate_threads),
      cmocka_unit_test(test_image_diff64_per_entry),
      cmocka_unit_test(test_image_diff64_beyond),
      cmocka_unit_test(test_image_cmp),
      cmocka_unit_test(test_image_diff64_args),
      cmocka_unit_test(test_image_diff64_truncated_mid_batch),
      cmocka_unit_test(test_image_mapping_read_only),
      cmocka_unit_test(test_image_sigbus_chains),
      cmocka_unit_test(test_image_sigbus_chains_default),
      cmocka_unit_test(test_image_sigbus_handler_on_top),
      cmocka_unit_test(test_image_error_strings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
