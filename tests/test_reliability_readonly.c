/* Security posture: the image is read-only by construction, and the
 * library keeps to itself. The public API hands out no pointer into the
 * image (the headers return copies into caller buffers; the only pointers
 * returned are the segment table and the `missing` bitmap, both library
 * memory), so the tests check the mapping itself: every mapping of the
 * image file is r--s in /proc/self/maps and a write to it kills a forked
 * child with SIGSEGV; an image opened by path holds an O_RDONLY fd. Every
 * public read-side function run over an image leaves the file's bytes and
 * mtime unchanged (hash before and after). Opening by path in a fresh
 * directory opens nothing but that file and creates nothing there. A
 * read-heavy scenario with bad input, run in a forked child whose stdout
 * and stderr are a pipe, writes nothing and reaches its own _exit (the
 * library neither prints nor exits). Images come from the kit, written to
 * a file in a fresh temporary directory and then closed by the kit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/regions.h>
#include <swapread/uv.h>

#define GVA UINT64_C(0x7f0000400000)
#define NPAGES 8
#define PAGE 4096
#define SEED UINT64_C(0x5ec)
#define KIT_SIZE (UINT64_C(8) << 20)
#define MAXFD 64

typedef struct fixture_s {
  char dir[64];
  char path[96];
  uint64_t cr3;
} fixture_t;

/* The kit builds the image in a file of a fresh directory, pages out the
 * last two pages, and is destroyed: no writer is left. */
static int setup(void** state) {
  fixture_t* f = calloc(1, sizeof(*f));
  sr_kit_opts_t ko;
  sr_pte_info_t as;
  sr_kit_t* kit;

  if (f == NULL)
    return -1;
  strcpy(f->dir, "/tmp/sr-readonly-XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  snprintf(f->path, sizeof(f->path), "%s/ram", f->dir);
  memset(&ko, 0, sizeof(ko));
  ko.size = KIT_SIZE;
  ko.path = f->path;
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_offset = 7;
  if (sr_kit_create(&kit, &ko) != 0)
    return -1;
  if (sr_kit_new_space(kit, SR_PAGING_4LEVEL, &f->cr3) != 0 ||
      sr_kit_map(kit, f->cr3, GVA, NPAGES * PAGE, SR_PAGE_4K,
                 SR_PROT_W | SR_PROT_U) != 0 ||
      sr_kit_fill(kit, f->cr3, GVA, NPAGES * PAGE, SEED) != 0 ||
      sr_kit_page_out(kit, f->cr3, GVA + 6 * PAGE, 1, &as) != 0 ||
      sr_kit_page_out(kit, f->cr3, GVA + 7 * PAGE, 1, &as) != 0) {
    sr_kit_destroy(kit);
    return -1;
  }
  sr_kit_destroy(kit);
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fixture_t* f = *state;

  unlink(f->path);
  rmdir(f->dir);
  free(f);
  return 0;
}

/* FNV-1a over the whole file, read with pread (not through a mapping). */
static uint64_t file_hash(const char* path, struct timespec* mtime) {
  unsigned char buf[65536];
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  struct stat sb;
  off_t off = 0;
  ssize_t n, i;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &sb), 0);
  *mtime = sb.st_mtim;
  while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
    for (i = 0; i < n; i++)
      h = (h ^ buf[i]) * UINT64_C(0x100000001b3);
    off += n;
  }
  assert_int_equal(n, 0);
  assert_int_equal(off, sb.st_size);
  close(fd);
  return h;
}

/* Mappings of `path` in /proc/self/maps: their start addresses and
 * permission strings. */
static int find_maps(const char* path, uintptr_t* start, char perms[][5],
                     int max) {
  char line[512];
  FILE* fp = fopen("/proc/self/maps", "r");
  int n = 0;

  assert_non_null(fp);
  while (fgets(line, sizeof(line), fp) != NULL) {
    unsigned long lo, hi;
    char p[5];
    char* name = strchr(line, '/');
    size_t len;

    if (name == NULL)
      continue;
    len = strcspn(name, "\n");
    if (len != strlen(path) || strncmp(name, path, len) != 0)
      continue;
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) != 3)
      continue;
    if (n < max) {
      start[n] = (uintptr_t)lo;
      memcpy(perms[n], p, 5);
    }
    n++;
  }
  fclose(fp);
  return n;
}

/* The fds open now and what they name (readlink of /proc/self/fd/N). */
typedef struct fdset_s {
  int n;
  int fd[MAXFD];
  char name[MAXFD][PATH_MAX];
} fdset_t;

static void list_fds(fdset_t* s) {
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  char link[64];

  assert_non_null(d);
  s->n = 0;
  while ((e = readdir(d)) != NULL) {
    int fd;
    ssize_t len;
    if (e->d_name[0] == '.')
      continue;
    fd = atoi(e->d_name);
    if (fd == dirfd(d))
      continue;
    assert_true(s->n < MAXFD);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    len = readlink(link, s->name[s->n], PATH_MAX - 1);
    s->name[s->n][len > 0 ? len : 0] = '\0';
    s->fd[s->n++] = fd;
  }
  closedir(d);
}

static int has_fd(const fdset_t* s, int fd) {
  int i;

  for (i = 0; i < s->n; i++)
    if (s->fd[i] == fd)
      return 1;
  return 0;
}

/* The open flags of fd, from /proc/self/fdinfo (octal "flags:" line). */
static unsigned long fd_flags(int fd) {
  char path[64], line[128];
  unsigned long flags = 0;
  FILE* fp;

  snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
  fp = fopen(path, "r");
  assert_non_null(fp);
  while (fgets(line, sizeof(line), fp) != NULL)
    if (sscanf(line, "flags: %lo", &flags) == 1)
      break;
  fclose(fp);
  return flags;
}

/* Every mapping of the image file is read-only and shared; writing to it
 * from a forked child ends the child with SIGSEGV. */
static void test_readonly_mapping_faults_on_write(void** state) {
  fixture_t* f = *state;
  sr_image_t* img;
  uintptr_t start[8];
  char perms[8][5];
  int n, i, status;
  pid_t pid;

  assert_int_equal(find_maps(f->path, start, perms, 8), 0);
  assert_int_equal(sr_image_open(&img, f->path, NULL), 0);
  n = find_maps(f->path, start, perms, 8);
  assert_true(n >= 1 && n <= 8);
  for (i = 0; i < n; i++) {
    assert_int_equal(perms[i][0], 'r');
    assert_int_equal(perms[i][1], '-');
    assert_int_equal(perms[i][3], 's');
  }
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    *(volatile unsigned char*)start[0] = 0xff;
    _exit(0); /* the write went through */
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  sr_image_close(img);
  assert_int_equal(find_maps(f->path, start, perms, 8), 0);
}

/* Opens an image (by path when caller_fd < 0, else from caller_fd) and
 * asserts it holds exactly one new fd, O_RDONLY and close-on-exec, naming
 * the file; closing it leaves the fds as they were. */
static void expect_one_rdonly_fd(const char* path, int caller_fd) {
  fdset_t before, after;
  sr_image_t* img;
  int i, found = -1;

  list_fds(&before);
  if (caller_fd < 0)
    assert_int_equal(sr_image_open(&img, path, NULL), 0);
  else
    assert_int_equal(sr_image_open_fd(&img, caller_fd, NULL), 0);
  list_fds(&after);
  assert_int_equal(after.n, before.n + 1);
  for (i = 0; i < after.n; i++)
    if (!has_fd(&before, after.fd[i]))
      found = i;
  assert_true(found >= 0);
  assert_string_equal(after.name[found], path);
  assert_int_equal(fd_flags(after.fd[found]) & O_ACCMODE, O_RDONLY);
  assert_true(fd_flags(after.fd[found]) & O_CLOEXEC);
  sr_image_close(img);
  list_fds(&after);
  assert_int_equal(after.n, before.n);
}

/* An image holds one O_RDONLY fd, whether opened by path or from a
 * caller's fd — even a caller's O_RDWR fd (reopened read-only), so the
 * image never holds a writable fd. */
static void test_readonly_fd_is_rdonly(void** state) {
  fixture_t* f = *state;
  int rw;

  expect_one_rdonly_fd(f->path, -1);
  rw = open(f->path, O_RDWR | O_CLOEXEC);
  assert_true(rw >= 0);
  expect_one_rdonly_fd(f->path, rw);
  assert_int_equal(fd_flags(rw) & O_ACCMODE, O_RDWR); /* the caller's own */
  close(rw);
}

/* Every public read-side function, over an image with present and paged
 * out pages, leaves the file's bytes and mtime as they were. */
static int count_dump(const sr_swap_txn_info_t* info, void* arg) {
  (void)info;
  ++*(int*)arg;
  return 0;
}

static int count_region(const sr_region_t* r, void* arg) {
  (void)r;
  ++*(int*)arg;
  return 0;
}

static int nswapcb, nuvcb;

static void swap_cb(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  (void)swap;
  (void)done;
  (void)data;
  nswapcb++;
}

static void uv_cb(sr_uv_read_t* req, int status) {
  (void)req;
  (void)status;
  nuvcb++;
}

static void exercise(const fixture_t* f) {
  static unsigned char buf[NPAGES * PAGE];
  const sr_segment_t* seg;
  sr_image_t* img;
  sr_image_t* img2;
  sr_translation_t tr;
  sr_locate_t loc;
  sr_pte_info_t info;
  sr_swap_t* swap;
  sr_swap_req_t req;
  sr_swap_handle_t hd;
  sr_swap_done_t done;
  sr_swap_stats_t ss;
  sr_uv_stats_t us;
  sr_uv_read_t ur[3];
  sr_uv_t h;
  uv_loop_t loop;
  uint64_t gpa[3] = {0, 8, f->cr3}, expect[3] = {0, 1, 2};
  size_t diff[3], ndiff, got;
  int fd, n = 0, i;

  assert_int_equal(sr_image_open(&img, f->path, NULL), 0);
  fd = open(f->path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(sr_image_open_fd(&img2, fd, NULL), 0);
  close(fd);
  assert_int_equal(sr_image_read(img, 0, buf, sizeof(buf), &got), 0);
  assert_int_equal(sr_image_diff64(img, gpa, expect, 3, diff, &ndiff), 0);
  assert_int_equal(sr_image_locate(img, 4096, &loc), 0);
  assert_int_equal(sr_image_segments(img, &seg), 1);
  assert_int_equal(sr_image_file_size(img), KIT_SIZE);
  assert_int_equal(sr_image_layout_kind(img), SR_LAYOUT_RAW);
  assert_int_equal(sr_translate(img, f->cr3, GVA, NULL, &tr), 0);
  assert_int_equal(sr_translate(img, f->cr3, GVA + 7 * PAGE, NULL, &tr),
                   SR_ENOTPRESENT);
  assert_int_equal(sr_pte_classify(tr.fail_entry, 1, SR_OS_LINUX, &info),
                   SR_PTE_LINUX_SWAP);
  assert_int_equal(sr_regions(img, f->cr3, 0, 0, NULL, 0, count_region, &n), 0);
  assert_true(n >= 1);

  /* The engine: a sync read, a pending one cancelled, polls, cancels. */
  assert_int_equal(sr_swap_new(&swap, img, NULL), 0);
  memset(&req, 0, sizeof(req));
  req.cr3 = f->cr3;
  req.gva = GVA;
  req.buf = buf;
  req.len = PAGE;
  assert_int_equal(sr_swap_read(swap, &req, 0, swap_cb, NULL, NULL, &hd, &done),
                   0);
  req.len = sizeof(buf);
  for (i = 0; i < 3; i++)
    assert_int_equal(
        sr_swap_read(swap, &req, 0, swap_cb, NULL, NULL, &hd, &done),
        SR_PENDING);
  assert_true(sr_swap_poll(swap, 1000, NULL) >= 0);
  n = 0;
  assert_int_equal(sr_swap_dump(swap, 1000, count_dump, &n), 0);
  assert_int_equal(n, 3);
  sr_swap_stats(swap, &ss);
  assert_int_equal(sr_swap_cancel(swap, hd), 0);
  assert_int_equal(sr_swap_cancel_cr3(swap, f->cr3, SR_EGONE), 2);
  req.len = PAGE * 2;
  req.gva = GVA + 6 * PAGE;
  assert_int_equal(sr_swap_read(swap, &req, 0, swap_cb, NULL, NULL, &hd, &done),
                   SR_PENDING);
  assert_int_equal(sr_swap_cancel_all(swap, SR_EIMAGEGONE), 1);
  assert_int_equal(sr_swap_set_image(swap, img2), 0);
  sr_swap_free(swap);

  /* The loop binding: reads, cancels, invalidate, set_image, close. */
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(sr_uv_init(&loop, &h, img, NULL), 0);
  for (i = 0; i < 3; i++)
    assert_int_equal(sr_uv_read(&h, &ur[i], f->cr3, GVA + 5 * PAGE,
                                buf + i * 2 * PAGE, 2 * PAGE, NULL, uv_cb),
                     SR_PENDING);
  assert_int_equal(sr_uv_cancel(&ur[0]), 0);
  assert_int_equal(sr_uv_cancel_cr3(&h, f->cr3), 2);
  assert_int_equal(sr_uv_read(&h, &ur[1], f->cr3, GVA + 5 * PAGE, buf, 2 * PAGE,
                              NULL, uv_cb),
                   SR_PENDING);
  assert_int_equal(sr_uv_invalidate(&h, 0), 1);
  assert_int_equal(sr_uv_set_image(&h, img2, 1), 0);
  assert_int_equal(sr_uv_read(&h, &ur[0], f->cr3, GVA, buf, PAGE, NULL, uv_cb),
                   0);
  sr_uv_stats(&h, &us);
  sr_uv_close(&h, NULL);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  sr_image_close(img2);
  sr_image_close(img);
}

static void test_readonly_no_public_function_writes(void** state) {
  fixture_t* f = *state;
  struct timespec m0, m1;
  uint64_t h0, h1;

  h0 = file_hash(f->path, &m0);
  nswapcb = nuvcb = 0;
  exercise(f);
  assert_int_equal(nswapcb, 4);
  assert_int_equal(nuvcb, 4);
  h1 = file_hash(f->path, &m1);
  assert_true(h0 == h1);
  assert_true(m0.tv_sec == m1.tv_sec && m0.tv_nsec == m1.tv_nsec);
}

/* Opening by path (from inside the fresh directory, by a relative name)
 * opens only that file, leaves no other fd behind and creates nothing. */
static void test_readonly_follows_no_other_path(void** state) {
  fixture_t* f = *state;
  char cwd[PATH_MAX];
  fdset_t before, during, after;
  sr_image_t* img;
  sr_translation_t tr;
  struct dirent* e;
  DIR* d;
  int i, entries = 0;

  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir(f->dir), 0);
  list_fds(&before);
  assert_int_equal(sr_image_open(&img, "ram", NULL), 0);
  assert_int_equal(sr_translate(img, f->cr3, GVA, NULL, &tr), 0);
  list_fds(&during);
  for (i = 0; i < during.n; i++)
    if (!has_fd(&before, during.fd[i]))
      assert_string_equal(during.name[i], f->path);
  assert_int_equal(during.n, before.n + 1);
  sr_image_close(img);
  list_fds(&after);
  assert_int_equal(after.n, before.n);
  assert_int_equal(chdir(cwd), 0);
  d = opendir(f->dir);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      assert_string_equal(e->d_name, "ram");
      entries++;
    }
  closedir(d);
  assert_int_equal(entries, 1);
}

/* In a forked child with stdout and stderr on a pipe: the scenario above,
 * bad input to every entry point, a missing file, a directory; the child
 * exits 42 by itself. Nothing may reach the pipe. */
static void bad_input(const fixture_t* f) {
  unsigned char buf[64];
  sr_image_t* img = NULL;
  sr_translation_t tr;
  sr_segment_t seg = {0, UINT64_C(1) << 40, 0};
  sr_layout_t lay;
  sr_swap_t* swap = NULL;
  sr_swap_req_t req;
  sr_swap_handle_t bogus = {12345};
  sr_swap_done_t done;
#define CHILD_EXPECT_NOT(c) \
  if (c)                    \
  _exit(100 + __LINE__ % 100)

  memset(&lay, 0, sizeof(lay));
  lay.kind = SR_LAYOUT_SEGMENTS;
  lay.seg = &seg;
  lay.nseg = 1;
  CHILD_EXPECT_NOT(sr_image_open(&img, "/nonexistent/swapread", NULL) !=
                   SR_ENOENT);
  CHILD_EXPECT_NOT(sr_image_open(&img, f->dir, NULL) != SR_EISDIR);
  CHILD_EXPECT_NOT(sr_image_open(&img, f->path, &lay) != SR_EBADLAYOUT);
  CHILD_EXPECT_NOT(sr_image_open(NULL, f->path, NULL) != SR_EINVAL);
  CHILD_EXPECT_NOT(sr_image_open_fd(&img, -1, NULL) >= 0);
  CHILD_EXPECT_NOT(sr_image_read(NULL, 0, buf, 1, NULL) != SR_EINVAL);
  CHILD_EXPECT_NOT(sr_translate(NULL, 0, 0, NULL, &tr) >= 0);
  CHILD_EXPECT_NOT(sr_image_open(&img, f->path, NULL) != 0);
  if (img != NULL) {
    CHILD_EXPECT_NOT(sr_image_read(img, UINT64_C(1) << 40, buf, 1, NULL) >= 0);
    CHILD_EXPECT_NOT(sr_translate(img, f->cr3, UINT64_C(0x0000800000000000),
                                  NULL, &tr) != SR_ENONCANON);
    CHILD_EXPECT_NOT(sr_translate(img, UINT64_C(1) << 51, GVA, NULL, &tr) >= 0);
    CHILD_EXPECT_NOT(sr_swap_new(&swap, img, NULL) != 0);
  }
  if (swap != NULL) {
    memset(&req, 0, sizeof(req));
    req.cr3 = f->cr3;
    req.gva = UINT64_MAX - 2;
    req.buf = buf;
    req.len = 16;
    CHILD_EXPECT_NOT(sr_swap_read(swap, &req, 0, swap_cb, NULL, NULL, NULL,
                                  &done) != SR_EINVAL);
    req.gva = GVA;
    req.len = 0;
    CHILD_EXPECT_NOT(sr_swap_read(swap, &req, 0, swap_cb, NULL, NULL, NULL,
                                  &done) != SR_EINVAL);
    CHILD_EXPECT_NOT(sr_swap_cancel(swap, bogus) != SR_ESTALE);
    CHILD_EXPECT_NOT(sr_swap_cancel_cr3(swap, f->cr3, 0) != SR_EINVAL);
    sr_swap_free(swap);
  }
  sr_image_close(img);
  CHILD_EXPECT_NOT(sr_uv_read(NULL, NULL, 0, 0, NULL, 0, NULL, NULL) !=
                   SR_EINVAL);
  CHILD_EXPECT_NOT(sr_uv_cancel(NULL) != SR_EINVAL);
}

static void test_readonly_never_prints_never_exits(void** state) {
  fixture_t* f = *state;
  char out[256];
  ssize_t n, total = 0;
  int p[2], status;
  pid_t pid;

  assert_int_equal(pipe(p), 0);
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
      _exit(2);
    close(p[0]);
    close(p[1]);
    nswapcb = nuvcb = 0;
    exercise(f); /* cmocka's asserts would print: they hold here */
    bad_input(f);
    _exit(42);
  }
  close(p[1]);
  while ((n = read(p[0], out, sizeof(out))) > 0 || (n < 0 && errno == EINTR))
    total += n > 0 ? n : 0;
  close(p[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 42);
  assert_int_equal(total, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_readonly_mapping_faults_on_write,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_readonly_fd_is_rdonly, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_readonly_no_public_function_writes,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_readonly_follows_no_other_path,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_readonly_never_prints_never_exits,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
