/* Tests for the swapread CLI (loop/cli/), run as a separate process.
 *
 * Each test builds its own holey image with the kit (public API only): a
 * file-backed kit with a physical hole, plus an ELF core of it whose last
 * 64 KiB are cut off (so some GPAs are beyond the file). The CLI binary
 * (path from $SR_CLI, default build/swapread) runs under posix_spawn with
 * its stdout and stderr captured. Expected GPAs, entries and bytes come
 * from the kit (sr_kit_get_entry, sr_kit_entry_gpa, sr_kit_pattern) and
 * from the layout chosen here, never from earlier runs of the CLI.
 * The waiting commands (read --wait, watch, demo) read the kit's own file,
 * so a page-in made by the kit — from a forked child that uses only the
 * kit and leaves with _exit, or from the test between two lines of
 * `watch` output — is what the CLI waits for or reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swapread/kit.h>
#include <swapread/regions.h>

#define MIB (UINT64_C(1) << 20)
#define SEED 7
/* Physical layout: RAM [0, 32M), hole [32M, 64M), RAM [64M, 72M). */
#define SEG1_GPA (64 * MIB)
#define SEG1_LEN (8 * MIB)
#define HOLE_GPA (40 * MIB)
#define CUT (64 * UINT64_C(1024)) /* cut off the ELF core's end */
#define BEYOND_GPA (SEG1_GPA + SEG1_LEN - SR_PAGE_4K)
#define SEGMENTS_ARG "0:32M:0,64M:8M:32M"

/* The address space: 8 pages at VA_BASE, one 2M page at VA_BIG. */
#define VA_BASE UINT64_C(0x7f0000000000)
#define VA_BIG UINT64_C(0x7f0000200000)
#define PAGE(i) (VA_BASE + (uint64_t)(i)*SR_PAGE_4K)
enum {
  P_DATA0 = 0, /* present, pattern */
  P_DATA1 = 1, /* present, pattern */
  P_SWAP = 2,  /* linux swap type SWAP_TYPE offset SWAP_OFF */
  P_PROTNONE = 3,
  P_HOLE = 4,   /* frame in the hole */
  P_BEYOND = 5, /* frame past the end of the ELF core */
  P_DATA6 = 6,  /* present, pattern */
  P_NONE = 7,   /* never mapped: empty PTE */
  NPAGES = 8
};
#define SWAP_TYPE 3
#define SWAP_OFF 0x77

typedef struct fixture_s {
  char dir[192];
  char raw[256]; /* the kit's file (segments layout) */
  char elf[256]; /* truncated ELF core */
  char out[256]; /* -o target */
  char cr3[24];
  uint64_t cr3_value;
  sr_kit_t* kit;
} fixture_t;

typedef struct run_s {
  int status; /* exit code, or -1 if the CLI did not exit normally */
  char* out;
  size_t out_len; /* out may hold raw bytes (NUL-terminated anyway) */
  char* err;
} run_t;

static const char* cli_path(void) {
  const char* p = getenv("SR_CLI");
  return p != NULL && p[0] != '\0' ? p : "build/swapread";
}

static char* hex(char* buf, size_t n, uint64_t v) {
  snprintf(buf, n, "0x%" PRIx64, v);
  return buf;
}

/* Reads both pipes to EOF (poll, so neither can fill up and block). */
static void drain(int fd_out, int fd_err, char** out, size_t* out_len,
                  char** err) {
  struct pollfd p[2] = {{fd_out, POLLIN, 0}, {fd_err, POLLIN, 0}};
  char** dst[2] = {out, err};
  size_t len[2] = {0, 0};
  size_t cap[2] = {4096, 4096};
  int open_fds = 2;
  int k;

  for (k = 0; k < 2; k++) {
    *dst[k] = malloc(cap[k]);
    assert_non_null(*dst[k]);
  }
  while (open_fds > 0) {
    int n = poll(p, 2, 10000);
    assert_true(n > 0); /* a CLI run takes milliseconds */
    for (k = 0; k < 2; k++) {
      ssize_t got;
      if (p[k].fd < 0 || p[k].revents == 0)
        continue;
      if (cap[k] - len[k] < 4097) {
        cap[k] *= 2;
        *dst[k] = realloc(*dst[k], cap[k]);
        assert_non_null(*dst[k]);
      }
      got = read(p[k].fd, *dst[k] + len[k], cap[k] - len[k] - 1);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0) {
        p[k].fd = -1;
        open_fds--;
        continue;
      }
      len[k] += (size_t)got;
    }
  }
  (*out)[len[0]] = '\0';
  *out_len = len[0];
  (*err)[len[1]] = '\0';
}

/* Starts the CLI with argv (argv[0] is set here) and its stdout and stderr
 * on pipes; returns the pid. */
static pid_t spawn_cli(const char** argv, int* out_fd, int* err_fd) {
  int po[2], pe[2];
  posix_spawn_file_actions_t fa;
  pid_t pid;

  argv[0] = cli_path();
  if (access(argv[0], X_OK) != 0)
    fail_msg(
        "the CLI '%s' is not executable (set SR_CLI to the built "
        "swapread binary, e.g. SR_CLI=$PWD/build/swapread)",
        argv[0]);
  assert_int_equal(pipe2(po, O_CLOEXEC), 0);
  assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
  assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
  assert_int_equal(posix_spawn_file_actions_adddup2(&fa, po[1], 1), 0);
  assert_int_equal(posix_spawn_file_actions_adddup2(&fa, pe[1], 2), 0);
  assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, (char**)argv, environ),
                   0);
  posix_spawn_file_actions_destroy(&fa);
  close(po[1]);
  close(pe[1]);
  *out_fd = po[0];
  *err_fd = pe[0];
  return pid;
}

/* Reads what is left on both pipes, closes them and reaps the CLI. */
static void finish_cli(run_t* r, pid_t pid, int out_fd, int err_fd) {
  int st;
  drain(out_fd, err_fd, &r->out, &r->out_len, &r->err);
  close(out_fd);
  close(err_fd);
  assert_int_equal(waitpid(pid, &st, 0), pid);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs the CLI with the NULL-terminated arguments after argv[0]. */
static void run_cli(run_t* r, const char* arg, ...) {
  const char* argv[48];
  int out_fd, err_fd;
  pid_t pid;
  int n = 1;
  va_list ap;

  va_start(ap, arg);
  for (; arg != NULL; arg = va_arg(ap, const char*)) {
    assert_true(n < 47);
    argv[n++] = arg;
  }
  va_end(ap);
  argv[n] = NULL;
  pid = spawn_cli(argv, &out_fd, &err_fd);
  finish_cli(r, pid, out_fd, err_fd);
}

static void run_free(run_t* r) {
  free(r->out);
  free(r->err);
}

/* The flat JSON object in `json` that starts with `"va":"<va>"`, copied
 * into buf (up to its closing brace); fails the test when absent. */
static const char* json_item(const char* json, uint64_t va, char* buf,
                             size_t n) {
  char key[64];
  const char* p;
  const char* end;
  snprintf(key, sizeof(key), "{\"va\":\"0x%" PRIx64 "\"", va);
  p = strstr(json, key);
  if (p == NULL)
    fail_msg("no JSON object for va 0x%" PRIx64 " in: %s", va, json);
  end = strchr(p, '}');
  assert_non_null(end);
  assert_true((size_t)(end - p) < n);
  memcpy(buf, p, (size_t)(end - p));
  buf[end - p] = '\0';
  return buf;
}

static void assert_contains(const char* hay, const char* needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("expected \"%s\" in: %s", needle, hay);
}

static void assert_pattern(const unsigned char* p, uint64_t va, size_t n,
                           uint64_t seed) {
  size_t k;
  for (k = 0; k < n; k++)
    if (p[k] != sr_kit_pattern(seed, va + k))
      fail_msg("byte at va 0x%" PRIx64 " is 0x%02x, expected 0x%02x", va + k,
               p[k], sr_kit_pattern(seed, va + k));
}

static unsigned char* slurp(const char* path, size_t* len) {
  struct stat st;
  unsigned char* buf;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  buf = malloc((size_t)st.st_size + 1);
  assert_non_null(buf);
  assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
  close(fd);
  *len = (size_t)st.st_size;
  return buf;
}

static void build_space(fixture_t* f) {
  const uint32_t rw = SR_PROT_W | SR_PROT_U | SR_PROT_NX;
  sr_kit_t* kit = f->kit;
  sr_pte_info_t info;
  uint64_t cr3;

  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  f->cr3_value = cr3;
  hex(f->cr3, sizeof(f->cr3), cr3);
  assert_int_equal(
      sr_kit_map(kit, cr3, PAGE(0), 4 * SR_PAGE_4K, SR_PAGE_4K, rw), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, PAGE(0), 4 * SR_PAGE_4K, SEED), 0);
  assert_int_equal(
      sr_kit_map(kit, cr3, PAGE(P_DATA6), SR_PAGE_4K, SR_PAGE_4K, rw), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, PAGE(P_DATA6), SR_PAGE_4K, SEED), 0);
  assert_int_equal(sr_kit_map_gpa(kit, cr3, PAGE(P_HOLE), SR_PAGE_4K, HOLE_GPA,
                                  SR_PAGE_4K, rw),
                   0);
  assert_int_equal(sr_kit_map_gpa(kit, cr3, PAGE(P_BEYOND), SR_PAGE_4K,
                                  BEYOND_GPA, SR_PAGE_4K, rw),
                   0);
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = SWAP_TYPE;
  info.swap_offset = SWAP_OFF;
  assert_int_equal(sr_kit_page_out(kit, cr3, PAGE(P_SWAP), 1, &info), 0);
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_PROTNONE;
  assert_int_equal(sr_kit_page_out(kit, cr3, PAGE(P_PROTNONE), 1, &info), 0);
  assert_int_equal(sr_kit_map(kit, cr3, VA_BIG, SR_PAGE_2M, SR_PAGE_2M, rw), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, VA_BIG, SR_PAGE_2M, SEED), 0);
}

static int setup(void** state) {
  static const sr_segment_t seg[2] = {{0, 32 * MIB, 0},
                                      {SEG1_GPA, SEG1_LEN, 32 * MIB}};
  fixture_t* f = calloc(1, sizeof(*f));
  sr_kit_opts_t opts;
  struct stat st;

  if (f == NULL)
    return -1;
  {
    const char* tmp = getenv("TMPDIR");

    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 150)
      tmp = "/tmp";
    snprintf(f->dir, sizeof(f->dir), "%s/sr-cli-XXXXXX", tmp);
    if (mkdtemp(f->dir) == NULL) {
      free(f);
      return -1;
    }
  }
  snprintf(f->raw, sizeof(f->raw), "%s/raw.img", f->dir);
  snprintf(f->elf, sizeof(f->elf), "%s/core.elf", f->dir);
  snprintf(f->out, sizeof(f->out), "%s/out.bin", f->dir);
  memset(&opts, 0, sizeof(opts));
  opts.path = f->raw;
  opts.seg = seg;
  opts.nseg = 2;
  *state = f;
  if (sr_kit_create(&f->kit, &opts) != 0)
    return -1;
  build_space(f);
  /* A truncated dump: the last CUT bytes of the last PT_LOAD are gone. */
  if (sr_kit_write_elf(f->kit, f->elf) != 0 || stat(f->elf, &st) != 0 ||
      truncate(f->elf, st.st_size - (off_t)CUT) != 0)
    return -1;
  return 0;
}

static void remove_in_dir(const char* dir, const char* name) {
  char path[300];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  unlink(path);
}

static int teardown(void** state) {
  fixture_t* f = *state;
  if (f == NULL)
    return 0;
  sr_kit_destroy(f->kit);
  unlink(f->raw);
  unlink(f->elf);
  unlink(f->out);
  remove_in_dir(f->dir, "demo.elf"); /* left by a test that failed */
  remove_in_dir(f->dir, "la57.img");
  rmdir(f->dir);
  free(f);
  return 0;
}

/* The kit's leaf entry for va: the GPA the CLI must print. */
static uint64_t kit_gpa(const fixture_t* f, uint64_t va) {
  uint64_t e;
  assert_int_equal(sr_kit_get_entry(f->kit, f->cr3_value, va, 1, &e), 0);
  assert_true(e & 1);
  return (e & UINT64_C(0x000ffffffffff000)) | (va & 0xfff);
}

static void test_cli_translate_shows_kit_walk(void** state) {
  fixture_t* f = *state;
  uint64_t va = PAGE(P_DATA1) + 0x123;
  char va_s[24], want[64];
  run_t r;
  int level;

  run_cli(&r, "translate", f->elf, "--cr3", f->cr3, hex(va_s, sizeof(va_s), va),
          NULL);
  assert_int_equal(r.status, 0);
  snprintf(want, sizeof(want), "gpa 0x%" PRIx64 " ", kit_gpa(f, va));
  assert_contains(r.out, want);
  for (level = 4; level >= 1; level--) {
    uint64_t e, egpa;
    assert_int_equal(sr_kit_get_entry(f->kit, f->cr3_value, va, level, &e), 0);
    assert_int_equal(sr_kit_entry_gpa(f->kit, f->cr3_value, va, level, &egpa),
                     0);
    snprintf(want, sizeof(want), "entry@0x%016" PRIx64 " = 0x%016" PRIx64, egpa,
             e);
    assert_contains(r.out, want);
  }
  assert_string_equal(r.err, "");
  run_free(&r);
}

static void test_cli_translate_json_gpa_and_stop(void** state) {
  fixture_t* f = *state;
  char a[24], b[24], want[96], item[2048];
  uint64_t egpa;
  run_t r;

  run_cli(&r, "translate", f->elf, "--cr3", f->cr3, "--json",
          hex(a, sizeof(a), PAGE(P_DATA0)), hex(b, sizeof(b), PAGE(P_SWAP)),
          NULL);
  assert_int_equal(r.status, 1); /* one VA did not translate */
  snprintf(want, sizeof(want), "\"gpa\":\"0x%" PRIx64 "\"",
           kit_gpa(f, PAGE(P_DATA0)));
  assert_contains(r.out, want);
  /* The second line is the swapped page's walk. */
  assert_non_null(strchr(r.out, '\n'));
  snprintf(item, sizeof(item), "%s", strchr(r.out, '\n') + 1);
  assert_contains(item, "\"status\":\"ENOTPRESENT\"");
  assert_contains(item, "\"kind\":\"linux-swap\"");
  snprintf(want, sizeof(want), "\"swap_type\":%d,\"swap_offset\":%d", SWAP_TYPE,
           SWAP_OFF);
  assert_contains(item, want);
  assert_int_equal(
      sr_kit_entry_gpa(f->kit, f->cr3_value, PAGE(P_SWAP), 1, &egpa), 0);
  snprintf(want, sizeof(want), "\"entry_gpa\":\"0x%" PRIx64 "\"", egpa);
  assert_contains(item, want);
  run_free(&r);
}

static void test_cli_read_present_bytes_to_file(void** state) {
  fixture_t* f = *state;
  uint64_t va = PAGE(P_DATA0) + 5;
  size_t len = SR_PAGE_4K + 100; /* partial first and last chunks */
  char va_s[24], len_s[24];
  unsigned char* got;
  size_t got_len;
  run_t r;

  snprintf(len_s, sizeof(len_s), "%zu", len);
  run_cli(&r, "read", f->elf, "--cr3", f->cr3, hex(va_s, sizeof(va_s), va),
          len_s, "-o", f->out, NULL);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "");
  got = slurp(f->out, &got_len);
  assert_int_equal(got_len, len);
  assert_pattern(got, va, len, SEED);
  free(got);
  run_free(&r);

  /* The same through the 2M page, crossing 4K chunk boundaries. */
  run_cli(&r, "read", f->elf, "--cr3", f->cr3,
          hex(va_s, sizeof(va_s), VA_BIG + 0x1fe800), "0x1000", "--raw", NULL);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.out_len, 0x1000);
  assert_pattern((const unsigned char*)r.out, VA_BIG + 0x1fe800, 0x1000, SEED);
  run_free(&r);
}

static void test_cli_read_json_lists_missing(void** state) {
  static const struct {
    int page;
    const char* status;
    const char* kind;
  } want[] = {
      {P_SWAP, "ENOTPRESENT", "linux-swap"},
      {P_PROTNONE, "ENOTPRESENT", "linux-protnone"},
      {P_HOLE, "EHOLE", "hole"},
      {P_BEYOND, "EBEYOND", "beyond"},
      {P_NONE, "ENOTPRESENT", "none"},
  };
  fixture_t* f = *state;
  char va_s[24], len_s[24], s[128], item[2048];
  unsigned char* got;
  size_t got_len;
  size_t k;
  int page;
  run_t r;

  snprintf(len_s, sizeof(len_s), "%d", NPAGES * 4096);
  run_cli(&r, "read", f->elf, "--cr3", f->cr3, "--json",
          hex(va_s, sizeof(va_s), VA_BASE), len_s, "-o", f->out, NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.out, "\"complete\":false");
  snprintf(s, sizeof(s), "\"bytes_missing\":%zu",
           sizeof(want) / sizeof(want[0]) * 4096);
  assert_contains(r.out, s);
  for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
    uint64_t egpa;
    json_item(r.out, PAGE(want[k].page), item, sizeof(item));
    snprintf(s, sizeof(s), "\"status\":\"%s\"", want[k].status);
    assert_contains(item, s);
    snprintf(s, sizeof(s), "\"kind\":\"%s\"", want[k].kind);
    assert_contains(item, s);
    assert_contains(item, "\"len\":4096");
    assert_contains(item, "\"level\":1");
    assert_int_equal(
        sr_kit_entry_gpa(f->kit, f->cr3_value, PAGE(want[k].page), 1, &egpa),
        0);
    snprintf(s, sizeof(s), "\"entry_gpa\":\"0x%" PRIx64 "\"", egpa);
    assert_contains(item, s);
  }
  json_item(r.out, PAGE(P_SWAP), item, sizeof(item));
  snprintf(s, sizeof(s), "\"swap_type\":%d,\"swap_offset\":%d", SWAP_TYPE,
           SWAP_OFF);
  assert_contains(item, s);
  snprintf(s, sizeof(s), "{\"va\":\"0x%" PRIx64 "\"", PAGE(P_DATA1));
  assert_null(strstr(r.out, s)); /* present pages are not listed */

  /* Present pages carry the pattern, missing ones are zero-filled. */
  got = slurp(f->out, &got_len);
  assert_int_equal(got_len, NPAGES * 4096);
  for (page = 0; page < NPAGES; page++) {
    const unsigned char* p = got + page * 4096;
    if (page == P_DATA0 || page == P_DATA1 || page == P_DATA6) {
      assert_pattern(p, PAGE(page), 4096, SEED);
    } else {
      for (k = 0; k < 4096; k++)
        assert_int_equal(p[k], 0);
    }
  }
  free(got);
  run_free(&r);
}

static void test_cli_read_text_reports_on_stderr(void** state) {
  fixture_t* f = *state;
  char va_s[24], want[64];
  run_t r;

  run_cli(&r, "read", f->elf, "--cr3", f->cr3,
          hex(va_s, sizeof(va_s), PAGE(P_DATA1)), "0x2000", "--hexdump", NULL);
  assert_int_equal(r.status, 1);
  snprintf(want, sizeof(want), "missing 0x%" PRIx64 "-0x%" PRIx64, PAGE(P_SWAP),
           PAGE(P_SWAP + 1));
  assert_contains(r.err, want);
  assert_contains(r.err, "linux-swap");
  assert_contains(r.out, "??"); /* missing bytes in the hexdump */
  run_free(&r);
}

static void test_cli_read_resident_reads_protnone(void** state) {
  fixture_t* f = *state;
  char va_s[24];
  unsigned char* got;
  size_t got_len;
  run_t r;

  run_cli(&r, "read", f->elf, "--cr3", f->cr3, "--resident",
          hex(va_s, sizeof(va_s), PAGE(P_PROTNONE)), "4096", "-o", f->out,
          NULL);
  assert_int_equal(r.status, 0);
  got = slurp(f->out, &got_len);
  assert_int_equal(got_len, 4096);
  assert_pattern(got, PAGE(P_PROTNONE), 4096, SEED);
  free(got);
  run_free(&r);
}

/* A second address space for the range tests below, at VA_H (4 KiB chunk
 * i is H(i)); 2 MiB regions:
 *   A [H(0), H(512))     4K pages with the pattern, except H_SWAP (Linux
 *                        swap), H_NONE_LO..H_NONE_HI-1 (never mapped:
 *                        empty PTEs), H_HOLE (frame in the physical hole),
 *                        H_PART (frame at PART_GPA, whose second half the
 *                        layout PART_SEGMENTS leaves out of the file);
 *   B [H(512), H(1024))  one non-present PD entry (Linux swap) over 512
 *                        chunks;
 *   C [H(1024), H(1536)) a present 2M page with the pattern;
 *   D [H(1536), H(1544)) 4K pages with the pattern, H_SWAP2 swapped out.
 * The kit allocates first-fit from GPA 0 and all the kit images here use
 * far less than 31 MiB, so nothing else lives in the frame at PART_GPA. */
#define VA_H UINT64_C(0x7e0000000000)
#define H(i) (VA_H + (uint64_t)(i)*SR_PAGE_4K)
#define H_SWAP 5
#define H_NONE_LO 30
#define H_NONE_HI 40
#define H_HOLE 40
#define H_PART 41
#define H_B 512
#define H_C 1024
#define H_D 1536
#define H_SWAP2 (H_D + 4)
#define H_END (H_D + 8)
#define PART_GPA (32 * MIB - SR_PAGE_4K)
#define PART_IN 0x800 /* bytes of the PART_GPA frame in the file */
#define PART_SEGMENTS "0:0x1fff800:0,64M:8M:32M"

/* One missing run the CLI must report (before clipping to the range). */
typedef struct want_run_s {
  uint64_t lo, hi;
  const char* status;
  int level;
  uint64_t entry;
  uint64_t entry_gpa;
  const char* kind;
  int swap_type; /* -1: no swap type/offset */
  uint64_t swap_offset;
  bool has_gpa;
  uint64_t gpa; /* of lo */
} want_run_t;

#define NRUNS 6

typedef struct holey_s {
  char cr3[24];
  uint64_t cr3_value;
  want_run_t run[NRUNS]; /* in VA order */
} holey_t;

static void swap_info(sr_pte_info_t* info, uint32_t type, uint64_t off) {
  memset(info, 0, sizeof(*info));
  info->kind = SR_PTE_LINUX_SWAP;
  info->swap_type = type;
  info->swap_offset = off;
}

/* The run of chunk va's entry at level: entry and entry GPA from the kit. */
static void kit_run(const fixture_t* f, const holey_t* h, want_run_t* r,
                    uint64_t va, int level) {
  r->level = level;
  assert_int_equal(sr_kit_get_entry(f->kit, h->cr3_value, va, level, &r->entry),
                   0);
  assert_int_equal(
      sr_kit_entry_gpa(f->kit, h->cr3_value, va, level, &r->entry_gpa), 0);
}

static void build_holey(fixture_t* f, holey_t* h) {
  const uint32_t rw = SR_PROT_W | SR_PROT_U | SR_PROT_NX;
  sr_kit_t* kit = f->kit;
  sr_pte_info_t info;
  want_run_t* r = h->run;

  memset(h, 0, sizeof(*h));
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &h->cr3_value), 0);
  hex(h->cr3, sizeof(h->cr3), h->cr3_value);
  /* A */
  assert_int_equal(sr_kit_map(kit, h->cr3_value, H(0), H_NONE_LO * SR_PAGE_4K,
                              SR_PAGE_4K, rw),
                   0);
  assert_int_equal(sr_kit_map_gpa(kit, h->cr3_value, H(H_HOLE), SR_PAGE_4K,
                                  HOLE_GPA + 16 * SR_PAGE_4K, SR_PAGE_4K, rw),
                   0);
  assert_int_equal(sr_kit_map_gpa(kit, h->cr3_value, H(H_PART), SR_PAGE_4K,
                                  PART_GPA, SR_PAGE_4K, rw),
                   0);
  assert_int_equal(sr_kit_map(kit, h->cr3_value, H(H_PART + 1),
                              (H_B - H_PART - 1) * SR_PAGE_4K, SR_PAGE_4K, rw),
                   0);
  assert_int_equal(
      sr_kit_fill(kit, h->cr3_value, H(0), H_NONE_LO * SR_PAGE_4K, SEED), 0);
  assert_int_equal(sr_kit_fill(kit, h->cr3_value, H(H_PART),
                               (H_B - H_PART) * SR_PAGE_4K, SEED),
                   0);
  swap_info(&info, 1, 0x4242);
  assert_int_equal(sr_kit_page_out(kit, h->cr3_value, H(H_SWAP), 1, &info), 0);
  /* B: a 2M page, then its PD entry paged out */
  assert_int_equal(
      sr_kit_map(kit, h->cr3_value, H(H_B), SR_PAGE_2M, SR_PAGE_2M, rw), 0);
  swap_info(&info, 2, 0x777);
  assert_int_equal(sr_kit_page_out(kit, h->cr3_value, H(H_B), 2, &info), 0);
  /* C */
  assert_int_equal(
      sr_kit_map(kit, h->cr3_value, H(H_C), SR_PAGE_2M, SR_PAGE_2M, rw), 0);
  assert_int_equal(sr_kit_fill(kit, h->cr3_value, H(H_C), SR_PAGE_2M, SEED), 0);
  /* D */
  assert_int_equal(sr_kit_map(kit, h->cr3_value, H(H_D),
                              (H_END - H_D) * SR_PAGE_4K, SR_PAGE_4K, rw),
                   0);
  assert_int_equal(
      sr_kit_fill(kit, h->cr3_value, H(H_D), (H_END - H_D) * SR_PAGE_4K, SEED),
      0);
  swap_info(&info, 1, 0x4343);
  assert_int_equal(sr_kit_page_out(kit, h->cr3_value, H(H_SWAP2), 1, &info), 0);

  /* What each missing run is, from the kit and the layout above. */
  r[0] = (want_run_t){
      H(H_SWAP), H(H_SWAP + 1), "ENOTPRESENT", 0, 0, 0, "linux-swap",
      1,         0x4242,        false,         0};
  kit_run(f, h, &r[0], r[0].lo, 1);
  /* consecutive empty PTEs: one run, described by the first */
  r[1] = (want_run_t){H(H_NONE_LO),
                      H(H_NONE_HI),
                      "ENOTPRESENT",
                      0,
                      0,
                      0,
                      "none",
                      -1,
                      0,
                      false,
                      0};
  kit_run(f, h, &r[1], r[1].lo, 1);
  assert_int_equal(r[1].entry, 0);
  r[2] = (want_run_t){H(H_HOLE),
                      H(H_HOLE + 1),
                      "EHOLE",
                      0,
                      0,
                      0,
                      "hole",
                      -1,
                      0,
                      true,
                      HOLE_GPA + 16 * SR_PAGE_4K};
  kit_run(f, h, &r[2], r[2].lo, 1);
  /* the first PART_IN bytes of H_PART are read, the rest is a hole */
  r[3] = (want_run_t){
      H(H_PART) + PART_IN, H(H_PART + 1), "EHOLE", 0, 0, 0, "hole", -1, 0, true,
      PART_GPA + PART_IN};
  kit_run(f, h, &r[3], H(H_PART), 1);
  r[4] = (want_run_t){H(H_B),       H(H_C), "ENOTPRESENT", 0,     0, 0,
                      "linux-swap", 2,      0x777,         false, 0};
  kit_run(f, h, &r[4], r[4].lo, 2);
  r[5] = (want_run_t){
      H(H_SWAP2), H(H_SWAP2 + 1), "ENOTPRESENT", 0, 0, 0, "linux-swap",
      1,          0x4343,         false,         0};
  kit_run(f, h, &r[5], r[5].lo, 1);
}

/* Appends printf output to the string buf of size n. */
static void catf(char* buf, size_t n, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void catf(char* buf, size_t n, const char* fmt, ...) {
  size_t used = strlen(buf);
  va_list ap;
  int k;

  va_start(ap, fmt);
  k = vsnprintf(buf + used, n - used, fmt, ap);
  va_end(ap);
  assert_true(k >= 0 && (size_t)k < n - used);
}

/* The runs of h clipped to [lo, hi): *nout of them into out. */
static void clip_runs(const holey_t* h, uint64_t lo, uint64_t hi,
                      want_run_t* out, size_t* nout) {
  size_t k;

  *nout = 0;
  for (k = 0; k < NRUNS; k++) {
    want_run_t r = h->run[k];
    uint64_t a = r.lo > lo ? r.lo : lo;
    uint64_t b = r.hi < hi ? r.hi : hi;
    if (a >= b)
      continue;
    r.gpa += a - r.lo;
    r.lo = a;
    r.hi = b;
    out[(*nout)++] = r;
  }
}

/* The exact JSON line `read --json -o out` must print for [lo, hi). */
static void want_json(const holey_t* h, uint64_t lo, uint64_t hi,
                      const char* out, char* buf, size_t n) {
  want_run_t r[NRUNS];
  uint64_t missing = 0;
  size_t nr, k;

  clip_runs(h, lo, hi, r, &nr);
  buf[0] = '\0';
  catf(buf, n,
       "{\"va\":\"0x%" PRIx64 "\",\"len\":%" PRIu64
       ",\"cr3\":\"%s\","
       "\"output\":\"%s\",\"missing\":[",
       lo, hi - lo, h->cr3, out);
  for (k = 0; k < nr; k++) {
    catf(buf, n,
         "%s{\"va\":\"0x%" PRIx64 "\",\"len\":%" PRIu64
         ",\"status\":\"%s\","
         "\"level\":%d,\"entry\":\"0x%" PRIx64 "\",\"entry_gpa\":\"0x%" PRIx64
         "\",\"kind\":\"%s\",",
         k == 0 ? "" : ",", r[k].lo, r[k].hi - r[k].lo, r[k].status, r[k].level,
         r[k].entry, r[k].entry_gpa, r[k].kind);
    if (r[k].swap_type >= 0)
      catf(buf, n, "\"swap_type\":%d,\"swap_offset\":%" PRIu64, r[k].swap_type,
           r[k].swap_offset);
    else
      catf(buf, n, "\"swap_type\":null,\"swap_offset\":null");
    if (r[k].has_gpa)
      catf(buf, n, ",\"gpa\":\"0x%" PRIx64 "\"", r[k].gpa);
    catf(buf, n, "}");
    missing += r[k].hi - r[k].lo;
  }
  catf(buf, n, "],\"complete\":%s,\"bytes_missing\":%" PRIu64 "}\n",
       missing == 0 ? "true" : "false", missing);
}

/* The exact stderr of a text `read` of [lo, hi). */
static void want_text(const holey_t* h, uint64_t lo, uint64_t hi, char* buf,
                      size_t n) {
  want_run_t r[NRUNS];
  uint64_t missing = 0;
  size_t nr, k;

  clip_runs(h, lo, hi, r, &nr);
  buf[0] = '\0';
  for (k = 0; k < nr; k++) {
    catf(buf, n,
         "swapread: read: missing 0x%" PRIx64 "-0x%" PRIx64 " (%" PRIu64
         " bytes): %s",
         r[k].lo, r[k].hi, r[k].hi - r[k].lo, r[k].kind);
    if (r[k].swap_type >= 0)
      catf(buf, n, " type %d offset 0x%" PRIx64, r[k].swap_type,
           r[k].swap_offset);
    if (r[k].has_gpa)
      catf(buf, n, " (data gpa 0x%" PRIx64 ")", r[k].gpa);
    catf(buf, n, " at %s entry@0x%" PRIx64 " = 0x%" PRIx64 " [%s]\n",
         r[k].level == 1 ? "PT" : "PD", r[k].entry_gpa, r[k].entry,
         r[k].status);
    missing += r[k].hi - r[k].lo;
  }
  if (missing != 0)
    catf(buf, n,
         "swapread: read: %" PRIu64 " of %" PRIu64
         " bytes missing in %zu range(s)\n",
         missing, hi - lo, nr);
}

/* Whether va is in one of h's runs (a missing byte). */
static bool holey_missing(const holey_t* h, uint64_t va) {
  size_t k;
  for (k = 0; k < NRUNS; k++)
    if (va >= h->run[k].lo && va < h->run[k].hi)
      return true;
  return false;
}

/* The raw bytes of [lo, hi): the pattern, zeros where missing. */
static void assert_holey_bytes(const holey_t* h, const unsigned char* p,
                               uint64_t lo, uint64_t hi) {
  uint64_t va;
  for (va = lo; va != hi; va++) {
    unsigned char want = holey_missing(h, va) ? 0 : sr_kit_pattern(SEED, va);
    if (p[va - lo] != want)
      fail_msg("byte at va 0x%" PRIx64 " is 0x%02x, expected 0x%02x", va,
               p[va - lo], want);
  }
}

/* read [lo, hi) of the holey space twice (--json -o, then text -o) and
 * checks stdout, stderr, the exit code and the bytes exactly. */
static void check_holey_read(fixture_t* f, const holey_t* h, uint64_t lo,
                             uint64_t hi) {
  size_t n = 64 * 1024;
  char* want = malloc(n);
  char va_s[24], len_s[24];
  unsigned char* got;
  size_t got_len;
  int json;
  run_t r;

  assert_non_null(want);
  hex(va_s, sizeof(va_s), lo);
  hex(len_s, sizeof(len_s), hi - lo);
  for (json = 1; json >= 0; json--) {
    run_cli(&r, "read", f->raw, "--segments", PART_SEGMENTS, "--cr3", h->cr3,
            va_s, len_s, "-o", f->out, json ? "--json" : NULL, NULL);
    assert_int_equal(r.status, 1);
    if (json) {
      want_json(h, lo, hi, f->out, want, n);
      assert_string_equal(r.out, want);
      assert_string_equal(r.err, "");
    } else {
      want_text(h, lo, hi, want, n);
      assert_string_equal(r.out, "");
      assert_string_equal(r.err, want);
    }
    got = slurp(f->out, &got_len);
    assert_int_equal(got_len, hi - lo);
    assert_holey_bytes(h, got, lo, hi);
    free(got);
    run_free(&r);
  }
  free(want);
}

/* A read over every kind of hole at once, longer than one batch of the
 * CLI (2 MiB): first and last chunks partial, a swapped PTE, a run of
 * empty PTEs, a frame in the physical hole, a frame half in the file, a
 * non-present PD entry over 512 chunks (one range, though it spans two
 * batches), a 2M page crossed whole. Then a range that starts and ends
 * inside missing runs. The expected output is built from the kit. */
static void test_cli_read_holey_range_exact(void** state) {
  fixture_t* f = *state;
  holey_t h;

  build_holey(f, &h);
  check_holey_read(f, &h, H(3) + 0x123, H(H_END - 2) + 0x456);
  check_holey_read(f, &h, H(H_SWAP) + 0x100, H(H_B + 1) + 0x10);
}

/* The hexdump of [lo, hi) of the holey space, as hexdump.c must print it:
 * 16 bytes a line from lo, "??" for missing bytes. */
static void want_hexdump(const holey_t* h, uint64_t lo, uint64_t hi, char* buf,
                         size_t n) {
  uint64_t line;

  buf[0] = '\0';
  for (line = lo; line < hi; line += 16) {
    uint64_t fill = hi - line < 16 ? hi - line : 16;
    uint64_t k;
    catf(buf, n, "%016" PRIx64 " ", line);
    for (k = 0; k < 16; k++) {
      if (k == 8)
        catf(buf, n, " ");
      if (k >= fill)
        catf(buf, n, "   ");
      else if (holey_missing(h, line + k))
        catf(buf, n, " ??");
      else
        catf(buf, n, " %02x", sr_kit_pattern(SEED, line + k));
    }
    catf(buf, n, "  |");
    for (k = 0; k < fill; k++) {
      unsigned char c = sr_kit_pattern(SEED, line + k);
      catf(buf, n, "%c",
           !holey_missing(h, line + k) && c >= 0x20 && c < 0x7f ? c : '.');
    }
    catf(buf, n, "|\n");
  }
}

/* The hexdump of a range from a present page over a swapped one, into a
 * present one, lines not aligned to 16 bytes: exact text. */
static void test_cli_read_holey_hexdump_exact(void** state) {
  fixture_t* f = *state;
  const uint64_t lo = H(H_SWAP - 1) + 0xff3;
  const uint64_t hi = H(H_SWAP + 1) + 0x29;
  size_t n = 64 * 1024;
  char* want = malloc(n);
  char va_s[24], len_s[24];
  holey_t h;
  run_t r;

  assert_non_null(want);
  build_holey(f, &h);
  run_cli(&r, "read", f->raw, "--segments", PART_SEGMENTS, "--cr3", h.cr3,
          hex(va_s, sizeof(va_s), lo), hex(len_s, sizeof(len_s), hi - lo),
          "--hexdump", NULL);
  assert_int_equal(r.status, 1);
  want_hexdump(&h, lo, hi, want, n);
  assert_string_equal(r.out, want);
  want_text(&h, lo, hi, want, n);
  assert_string_equal(r.err, want);
  run_free(&r);
  free(want);
}

static void test_cli_segments_layout(void** state) {
  fixture_t* f = *state;
  char va_s[24], want[64], item[2048];
  unsigned char* got;
  size_t got_len;
  run_t r;

  /* The kit's own file is flat: the layout comes from --segments. */
  run_cli(&r, "read", f->raw, "--cr3", f->cr3, "--segments", SEGMENTS_ARG,
          hex(va_s, sizeof(va_s), PAGE(P_DATA6)), "4096", "-o", f->out, NULL);
  assert_int_equal(r.status, 0);
  got = slurp(f->out, &got_len);
  assert_int_equal(got_len, 4096);
  assert_pattern(got, PAGE(P_DATA6), 4096, SEED);
  free(got);
  run_free(&r);

  run_cli(&r, "read", f->raw, "--cr3", f->cr3, "--segments=" SEGMENTS_ARG,
          "--json", hex(va_s, sizeof(va_s), PAGE(P_HOLE)), "4096", NULL);
  assert_int_equal(r.status, 1);
  json_item(r.out, PAGE(P_HOLE), item, sizeof(item));
  assert_contains(item, "\"kind\":\"hole\"");
  snprintf(want, sizeof(want), "\"gpa\":\"0x%" PRIx64 "\"", (uint64_t)HOLE_GPA);
  assert_contains(item, want);
  run_free(&r);
}

static void test_cli_maps_json_lists_ranges(void** state) {
  fixture_t* f = *state;
  char lo[24], hi[24], want[96];
  run_t r;

  run_cli(&r, "maps", f->elf, "--cr3", f->cr3, "--json", "--lo",
          hex(lo, sizeof(lo), VA_BASE), "--hi",
          hex(hi, sizeof(hi), VA_BIG + SR_PAGE_2M), NULL);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.out[0], '[');
  assert_non_null(strstr(r.out, "]\n"));
  snprintf(want, sizeof(want), "{\"lo\":\"0x%" PRIx64 "\"", VA_BASE);
  assert_contains(r.out, want);
  snprintf(want, sizeof(want),
           "{\"lo\":\"0x%" PRIx64 "\",\"hi\":\"0x%" PRIx64 "\"", VA_BIG,
           VA_BIG + SR_PAGE_2M);
  assert_contains(r.out, want);
  assert_contains(r.out, "\"page_sizes\":[2097152]");
  assert_contains(r.out, "\"linux-swap\"");
  run_free(&r);

  /* Text: one line per region, the 2M page among them. */
  run_cli(&r, "maps", f->elf, "--cr3", f->cr3, NULL);
  assert_int_equal(r.status, 0);
  snprintf(want, sizeof(want), "%016" PRIx64 "-%016" PRIx64, VA_BIG,
           VA_BIG + SR_PAGE_2M);
  assert_contains(r.out, want);
  run_free(&r);
}

static void test_cli_usage_errors_exit_2(void** state) {
  static const char* const bad[][8] = {
      {"translate", "IMG", "--cr3", "0x1000", "--bogus", "0x1000", NULL},
      {"translate", "IMG", "--cr3", "0x1000", NULL}, /* no VA */
      {"translate", "IMG", "--cr3", "0xzz", "0x1000", NULL},
      {"translate", "IMG", "0x1000", NULL},               /* no --cr3 */
      {"read", "IMG", "--cr3", "0x1000", "0x1000", NULL}, /* no LEN */
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "12Q", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "0", NULL},
      {"read", "IMG", "--cr3", "99999999999999999999999", "0", "1", NULL},
      {"maps", "IMG", "--cr3", NULL}, /* option without value */
      {"maps", "IMG", "--cr3", "1", "--layout", "weird", NULL},
      {"maps", "IMG", "--cr3", "1", "--ram-size", "1G", NULL},
      {"maps", "IMG", "--cr3", "1", "--segments", "0:1M", NULL},
      {"mkimage", NULL},
      {"frobnicate", NULL},
  };
  fixture_t* f = *state;
  size_t k;

  for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
    const char* a[8];
    run_t r;
    int n;
    for (n = 0; n < 8; n++)
      a[n] = bad[k][n] != NULL && strcmp(bad[k][n], "IMG") == 0 ? f->elf
                                                                : bad[k][n];
    run_cli(&r, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], NULL);
    if (r.status != 2)
      fail_msg("case %zu (%s): exit %d, stderr: %s", k, a[0], r.status, r.err);
    assert_int_equal(strncmp(r.err, "swapread: ", 10), 0);
    assert_string_equal(r.out, "");
    run_free(&r);
  }
  {
    run_t r;
    run_cli(&r, NULL);
    assert_int_equal(r.status, 2);
    run_free(&r);
  }
}

static void test_cli_unreadable_image_exits_1(void** state) {
  fixture_t* f = *state;
  char missing[256];
  run_t r;

  snprintf(missing, sizeof(missing), "%s/no-such-image", f->dir);
  run_cli(&r, "translate", missing, "--cr3", f->cr3, "0x1000", NULL);
  assert_int_equal(r.status, 1);
  assert_int_equal(strncmp(r.err, "swapread: ", 10), 0);
  assert_contains(r.err, missing);
  assert_contains(r.err, sr_strerror(SR_ENOENT));
  run_free(&r);

  run_cli(&r, "maps", f->dir, "--cr3", f->cr3, NULL); /* a directory */
  assert_int_equal(r.status, 1);
  assert_int_equal(strncmp(r.err, "swapread: ", 10), 0);
  run_free(&r);

  /* Segments that do not fit the file: a bad layout, not a usage error. */
  run_cli(&r, "maps", f->raw, "--cr3", f->cr3, "--segments", "0:1T:0", NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, sr_strerror(SR_EBADLAYOUT));
  run_free(&r);
}

static void test_cli_mkimage_image_is_usable(void** state) {
  fixture_t* f = *state;
  char path[256], cr3[32], va_s[24];
  const char* p;
  unsigned char* got;
  size_t got_len;
  uint64_t va = 0x400000; /* the spec: present 4K data, pattern seed 1 */
  run_t r;

  snprintf(path, sizeof(path), "%s/demo.elf", f->dir);
  run_cli(&r, "mkimage", path, "--json", NULL);
  assert_int_equal(r.status, 0);
  p = strstr(r.out, "\"cr3\":\"");
  assert_non_null(p);
  p += 7;
  assert_true(strcspn(p, "\"") < sizeof(cr3));
  snprintf(cr3, sizeof(cr3), "%.*s", (int)strcspn(p, "\""), p);
  assert_contains(r.out, "\"expect\":\"linux-swap\"");
  assert_contains(r.out, "\"expect\":\"hole\"");
  assert_contains(r.out, "\"expect\":\"beyond\"");
  run_free(&r);

  run_cli(&r, "read", path, "--cr3", cr3, hex(va_s, sizeof(va_s), va), "0x4000",
          "-o", f->out, NULL);
  assert_int_equal(r.status, 0);
  got = slurp(f->out, &got_len);
  assert_int_equal(got_len, 0x4000);
  assert_pattern(got, va, got_len, 1);
  free(got);
  run_free(&r);

  run_cli(&r, "translate", path, "--cr3", cr3, "0x400000", NULL);
  assert_int_equal(r.status, 0);
  run_free(&r);
  unlink(path);
}

/* A 5-level space: a VA canonical only with LA57 translates with --la57
 * and is rejected as non-canonical without it. */
static void test_cli_la57_translate(void** state) {
  const uint64_t va = UINT64_C(0x00ff000000001000);
  fixture_t* f = *state;
  sr_kit_opts_t opts;
  sr_kit_t* kit;
  char path[300], cr3_s[24], va_s[24], want[64];
  uint64_t cr3, e;
  run_t r;

  snprintf(path, sizeof(path), "%s/la57.img", f->dir);
  memset(&opts, 0, sizeof(opts));
  opts.size = 16 * MIB;
  opts.path = path;
  assert_int_equal(sr_kit_create(&kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_5LEVEL, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, va, SR_PAGE_4K, SR_PAGE_4K, 0), 0);
  assert_int_equal(sr_kit_get_entry(kit, cr3, va, 1, &e), 0);
  hex(cr3_s, sizeof(cr3_s), cr3);
  hex(va_s, sizeof(va_s), va);

  run_cli(&r, "translate", path, "--cr3", cr3_s, "--la57", "--json", va_s,
          NULL);
  assert_int_equal(r.status, 0);
  snprintf(want, sizeof(want), "\"gpa\":\"0x%" PRIx64 "\"",
           e & UINT64_C(0x000ffffffffff000));
  assert_contains(r.out, want);
  assert_contains(r.out, "\"name\":\"PML5\"");
  assert_contains(r.out, "\"prot\":\"r-xk\"");
  run_free(&r);

  run_cli(&r, "translate", path, "--cr3", cr3_s, "--json", va_s, NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.out, "\"status\":\"ENONCANON\"");
  run_free(&r);
  sr_kit_destroy(kit);
  unlink(path);
}

static void test_cli_help_and_version(void** state) {
  run_t r;
  (void)state;

  run_cli(&r, "--version", NULL);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, sr_version_string());
  run_free(&r);
  run_cli(&r, "help", "read", NULL);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "usage: swapread read");
  run_free(&r);
  run_cli(&r, "maps", "--help", NULL);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "usage: swapread maps");
  run_free(&r);
}

/* --- waiting reads, watch, demo --------------------------------------- */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Forks a child that, through the kit only, sleeps delay_ms and pages the
 * swapped and PROT_NONE pages back in, then leaves with _exit. */
static pid_t fork_pager(fixture_t* f, long delay_ms) {
  pid_t pid;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    sleep_ms(delay_ms);
    if (sr_kit_page_in(f->kit, f->cr3_value, PAGE(P_SWAP), 1) != 0 ||
        sr_kit_page_in(f->kit, f->cr3_value, PAGE(P_PROTNONE), 1) != 0)
      _exit(1);
    _exit(0);
  }
  return pid;
}

static void assert_child_ok(pid_t pid) {
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* Counts the non-overlapping occurrences of needle in hay. */
static size_t count_of(const char* hay, const char* needle) {
  size_t n = 0;
  for (hay = strstr(hay, needle); hay != NULL;
       hay = strstr(hay + strlen(needle), needle))
    n++;
  return n;
}

/* The number after "key": in a JSON text. */
static uint64_t json_uint(const char* json, const char* key) {
  char k[64];
  const char* p;
  snprintf(k, sizeof(k), "\"%s\":", key);
  p = strstr(json, k);
  if (p == NULL)
    fail_msg("no \"%s\" in: %s", key, json);
  return strtoull(p + strlen(k), NULL, 10);
}

/* read --wait on the kit's own file (so the kit's page-ins are seen): a
 * second process pages the two missing pages in ~200 ms later; the read
 * waits for them and writes exactly the pattern. */
static void test_cli_read_wait_completes_after_page_in(void** state) {
  fixture_t* f = *state;
  char va_s[24], len_s[24];
  unsigned char* got;
  size_t got_len;
  pid_t pager;
  run_t r;

  hex(va_s, sizeof(va_s), PAGE(P_DATA0));
  snprintf(len_s, sizeof(len_s), "%d", 4 * 4096); /* pages 0..3 */
  pager = fork_pager(f, 200);
  run_cli(&r, "read", f->raw, "--segments", SEGMENTS_ARG, "--cr3", f->cr3, va_s,
          len_s, "--wait=5s", "-o", f->out, NULL);
  assert_child_ok(pager);
  if (r.status != 0)
    fail_msg("exit %d, stderr: %s", r.status, r.err);
  assert_string_equal(r.out, "");
  assert_string_equal(r.err, ""); /* no progress off a tty, loop closed */
  got = slurp(f->out, &got_len);
  assert_int_equal(got_len, 4 * 4096);
  assert_pattern(got, PAGE(P_DATA0), got_len, SEED);
  free(got);
  run_free(&r);

  /* Everything present now: --wait without a timeout returns at once. */
  run_cli(&r, "read", f->raw, "--segments", SEGMENTS_ARG, "--cr3", f->cr3, va_s,
          len_s, "--wait", "--json", "-o", f->out, NULL);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "\"status\":\"OK\"");
  assert_contains(r.out, "\"complete\":true");
  assert_contains(r.out, "\"missing\":[]");
  run_free(&r);
}

/* Without the page-in, --wait=300ms times out: exit 1, the JSON lists
 * exactly the two missing chunks (as the plain read would), the bytes
 * that were there are kept and the missing ones are zero. */
static void test_cli_read_wait_timeout_names_missing(void** state) {
  fixture_t* f = *state;
  char va_s[24], len_s[24], s[128], item[2048];
  unsigned char* got;
  size_t got_len;
  size_t k;
  int page;
  run_t r;

  hex(va_s, sizeof(va_s), PAGE(P_DATA0));
  snprintf(len_s, sizeof(len_s), "%d", 4 * 4096);
  run_cli(&r, "read", f->raw, "--segments", SEGMENTS_ARG, "--cr3", f->cr3, va_s,
          len_s, "--wait=300ms", "--json", "-o", f->out, NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.out, "\"status\":\"ETIMEDOUT\"");
  assert_contains(r.out, "\"complete\":false");
  assert_contains(r.out, "\"bytes_missing\":8192");
  assert_true(json_uint(r.out, "waited_ms") >= 300);
  /* The top-level object plus one item per missing chunk. */
  assert_int_equal(count_of(r.out, "{\"va\":"), 3);
  json_item(r.out, PAGE(P_SWAP), item, sizeof(item));
  assert_contains(item, "\"kind\":\"linux-swap\"");
  snprintf(s, sizeof(s), "\"swap_type\":%d,\"swap_offset\":%d", SWAP_TYPE,
           SWAP_OFF);
  assert_contains(item, s);
  json_item(r.out, PAGE(P_PROTNONE), item, sizeof(item));
  assert_contains(item, "\"kind\":\"linux-protnone\"");
  assert_contains(item, "\"len\":4096");
  got = slurp(f->out, &got_len);
  assert_int_equal(got_len, 4 * 4096);
  for (page = 0; page < 4; page++) {
    const unsigned char* p = got + page * 4096;
    if (page == P_DATA0 || page == P_DATA1) {
      assert_pattern(p, PAGE(page), 4096, SEED);
    } else {
      for (k = 0; k < 4096; k++)
        assert_int_equal(p[k], 0);
    }
  }
  free(got);
  run_free(&r);

  /* Text: the timeout, then the same missing lines as without --wait. */
  run_cli(&r, "read", f->raw, "--segments", SEGMENTS_ARG, "--cr3", f->cr3, va_s,
          len_s, "--timeout", "300ms", "-o", f->out, NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, "timed out after");
  assert_contains(r.err, "2 of 4 chunks missing");
  snprintf(s, sizeof(s), "missing 0x%" PRIx64 "-0x%" PRIx64, PAGE(P_SWAP),
           PAGE(P_SWAP + 1));
  assert_contains(r.err, s);
  snprintf(s, sizeof(s), "missing 0x%" PRIx64 "-0x%" PRIx64, PAGE(P_PROTNONE),
           PAGE(P_PROTNONE + 1));
  assert_contains(r.err, s);
  assert_int_equal(count_of(r.err, ": missing 0x"), 2);
  run_free(&r);
}

/* --alive VA=VALUE: while the 8 bytes at VA hold VALUE the waiting read
 * keeps waiting (here to its 300 ms timeout); another value ends it with
 * EGONE long before its 5 s timeout. */
static void test_cli_read_wait_alive_canary(void** state) {
  fixture_t* f = *state;
  char va_s[24], len_s[24], alive[96];
  uint64_t canary = 0;
  run_t r;
  int k;

  for (k = 0; k < 8; k++)
    canary |= (uint64_t)sr_kit_pattern(SEED, PAGE(P_DATA0) + (uint64_t)k)
              << (8 * k);
  hex(va_s, sizeof(va_s), PAGE(P_DATA0));
  snprintf(len_s, sizeof(len_s), "%d", 4 * 4096);
  snprintf(alive, sizeof(alive), "0x%" PRIx64 "=0x%" PRIx64, PAGE(P_DATA0),
           canary);
  run_cli(&r, "read", f->raw, "--segments", SEGMENTS_ARG, "--cr3", f->cr3, va_s,
          len_s, "--wait=300ms", "--alive", alive, "--json", "-o", f->out,
          NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.out, "\"status\":\"ETIMEDOUT\"");
  run_free(&r);

  snprintf(alive, sizeof(alive), "0x%" PRIx64 "=0x%" PRIx64, PAGE(P_DATA0),
           canary ^ 1);
  run_cli(&r, "read", f->raw, "--segments", SEGMENTS_ARG, "--cr3", f->cr3, va_s,
          len_s, "--wait=5s", "--alive", alive, "--json", "-o", f->out, NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.out, "\"status\":\"EGONE\"");
  assert_true(json_uint(r.out, "waited_ms") < 4000);
  run_free(&r);
}

/* A frame in a physical hole never arrives: --wait fails at once with the
 * same report as a plain read. */
static void test_cli_read_wait_permanent_error_fails(void** state) {
  fixture_t* f = *state;
  char va_s[24], item[2048];
  run_t r;

  run_cli(&r, "read", f->raw, "--segments", SEGMENTS_ARG, "--cr3", f->cr3,
          hex(va_s, sizeof(va_s), PAGE(P_HOLE)), "4096", "--wait=5s", "--json",
          NULL);
  assert_int_equal(r.status, 1);
  assert_contains(r.out, "\"status\":\"EHOLE\"");
  json_item(r.out, PAGE(P_HOLE), item, sizeof(item));
  assert_contains(item, "\"kind\":\"hole\"");
  assert_true(json_uint(r.out, "waited_ms") < 5000);
  run_free(&r);
}

/* Reads one line of the CLI's stdout (without the newline) into line;
 * fails the test after 5 s. */
static void read_line(int fd, char* line, size_t n) {
  size_t len = 0;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t got;
    char c;
    if (poll(&p, 1, 5000) != 1)
      fail_msg("no line from the CLI within 5 s (have \"%.*s\")", (int)len,
               line);
    got = read(fd, &c, 1);
    if (got < 0 && errno == EINTR)
      continue;
    if (got != 1)
      fail_msg("EOF from the CLI (have \"%.*s\")", (int)len, line);
    if (c == '\n')
      break;
    assert_true(len + 1 < n);
    line[len++] = c;
  }
  line[len] = '\0';
}

/* watch: the initial state, then one event per change the kit makes (the
 * test waits for each line before the next change); --count ends it. */
static void test_cli_watch_reports_out_and_in(void** state) {
  fixture_t* f = *state;
  const char* argv[20];
  char va_s[24], line[2048], want[96];
  sr_pte_info_t info;
  int out_fd, err_fd;
  pid_t pid;
  run_t r;
  int n = 1;

  hex(va_s, sizeof(va_s), PAGE(P_DATA1));
  argv[n++] = "watch";
  argv[n++] = f->raw;
  argv[n++] = "--segments";
  argv[n++] = SEGMENTS_ARG;
  argv[n++] = "--cr3";
  argv[n++] = f->cr3;
  argv[n++] = va_s;
  argv[n++] = "4096";
  argv[n++] = "--interval";
  argv[n++] = "10";
  argv[n++] = "--count";
  argv[n++] = "2";
  argv[n++] = "--json";
  argv[n] = NULL;
  pid = spawn_cli(argv, &out_fd, &err_fd);

  read_line(out_fd, line, sizeof(line));
  assert_contains(line, "\"event\":\"initial\"");
  snprintf(want, sizeof(want), "\"va\":\"%s\",\"len\":4096,\"present\":true",
           va_s);
  assert_contains(line, want);
  snprintf(want, sizeof(want), "\"gpa\":\"0x%" PRIx64 "\"",
           kit_gpa(f, PAGE(P_DATA1)));
  assert_contains(line, want);

  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = 1;
  info.swap_offset = 0x42;
  assert_int_equal(
      sr_kit_page_out(f->kit, f->cr3_value, PAGE(P_DATA1), 1, &info), 0);
  read_line(out_fd, line, sizeof(line));
  assert_contains(line, "\"event\":\"out\"");
  assert_contains(line, "\"present\":false");
  assert_contains(line,
                  "\"kind\":\"linux-swap\",\"swap_type\":1,"
                  "\"swap_offset\":66");
  assert_contains(line, "\"was\":\"present\"");

  assert_int_equal(sr_kit_page_in(f->kit, f->cr3_value, PAGE(P_DATA1), 1), 0);
  read_line(out_fd, line, sizeof(line));
  assert_contains(line, "\"event\":\"in\"");
  assert_contains(line, want); /* the same GPA as at the start */

  finish_cli(&r, pid, out_fd, err_fd);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, ""); /* nothing after the second event */
  assert_string_equal(r.err, "");
  run_free(&r);
}

/* watch without a range: the address-space monitor over the whole space
 * reports the leaf the kit swaps out (its kind and slot) and swaps back
 * in (its frame); --count ends it. */
static void test_cli_watch_whole_space(void** state) {
  fixture_t* f = *state;
  const char* argv[20];
  char va_s[24], line[2048], want[96];
  sr_pte_info_t info;
  int out_fd, err_fd;
  pid_t pid;
  run_t r;
  int n = 1;

  hex(va_s, sizeof(va_s), PAGE(P_DATA1));
  argv[n++] = "watch";
  argv[n++] = f->raw;
  argv[n++] = "--segments";
  argv[n++] = SEGMENTS_ARG;
  argv[n++] = "--cr3";
  argv[n++] = f->cr3;
  argv[n++] = "--interval";
  argv[n++] = "10";
  argv[n++] = "--count";
  argv[n++] = "2";
  argv[n++] = "--json";
  argv[n] = NULL;
  pid = spawn_cli(argv, &out_fd, &err_fd);

  read_line(out_fd, line, sizeof(line));
  assert_contains(line, "\"event\":\"start\"");
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = 1;
  info.swap_offset = 0x43;
  assert_int_equal(
      sr_kit_page_out(f->kit, f->cr3_value, PAGE(P_DATA1), 1, &info), 0);
  read_line(out_fd, line, sizeof(line));
  assert_contains(line, "\"event\":\"unmapped\"");
  snprintf(want, sizeof(want), "\"va\":\"%s\",\"size\":4096", va_s);
  assert_contains(line, want);
  assert_contains(line,
                  "\"kind\":\"linux-swap\",\"swap_type\":1,"
                  "\"swap_offset\":67");
  /* one "kind" per object: the old side is "present" without one */
  assert_null(strstr(strstr(line, "\"kind\"") + 1, "\"kind\""));
  assert_int_equal(sr_kit_page_in(f->kit, f->cr3_value, PAGE(P_DATA1), 1), 0);
  read_line(out_fd, line, sizeof(line));
  assert_contains(line, "\"event\":\"mapped\"");
  snprintf(want, sizeof(want), "\"gpa\":\"0x%" PRIx64 "\"",
           kit_gpa(f, PAGE(P_DATA1)));
  assert_contains(line, want);

  finish_cli(&r, pid, out_fd, err_fd);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "");
  assert_string_equal(r.err, "");
  run_free(&r);
}

/* watch ends cleanly (exit 0) on SIGINT, and after --duration; the text
 * initial state names the swapped page's kind. */
static void test_cli_watch_ends_on_sigint_and_duration(void** state) {
  fixture_t* f = *state;
  const char* argv[16];
  char va_s[24], line[2048], want[96];
  int out_fd, err_fd;
  pid_t pid;
  run_t r;
  int n = 1;

  hex(va_s, sizeof(va_s), PAGE(P_SWAP));
  argv[n++] = "watch";
  argv[n++] = f->elf;
  argv[n++] = "--cr3";
  argv[n++] = f->cr3;
  argv[n++] = va_s;
  argv[n++] = "4096";
  argv[n] = NULL;
  pid = spawn_cli(argv, &out_fd, &err_fd);
  read_line(out_fd, line, sizeof(line)); /* "# watching ..." */
  assert_int_equal(line[0], '#');
  read_line(out_fd, line, sizeof(line));
  snprintf(want, sizeof(want), "initial %s not-present linux-swap type %d",
           va_s, SWAP_TYPE);
  assert_contains(line, want);
  assert_int_equal(kill(pid, SIGINT), 0);
  finish_cli(&r, pid, out_fd, err_fd);
  assert_int_equal(r.status, 0);
  run_free(&r);

  run_cli(&r, "watch", f->elf, "--cr3", f->cr3, va_s, "8192", "--duration",
          "150ms", "--json", NULL);
  assert_int_equal(r.status, 0);
  /* Pages 2 and 3: a swap entry and a PROT_NONE entry, two runs. */
  assert_int_equal(count_of(r.out, "\"event\":\"initial\""), 2);
  assert_contains(r.out, "\"kind\":\"linux-protnone\"");
  run_free(&r);
}

/* demo: exit 0, says it verified the bytes, and removes its temporary
 * directory (made under $TMPDIR, pointed at the fixture's directory). */
static void test_cli_demo_exits_0(void** state) {
  fixture_t* f = *state;
  const char* old = getenv("TMPDIR");
  char* saved = old != NULL ? strdup(old) : NULL;
  struct dirent* de;
  DIR* dir;
  run_t r;

  assert_int_equal(setenv("TMPDIR", f->dir, 1), 0);
  run_cli(&r, "demo", NULL);
  if (saved != NULL)
    setenv("TMPDIR", saved, 1);
  else
    unsetenv("TMPDIR");
  free(saved);
  if (r.status != 0)
    fail_msg("demo exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
  assert_contains(r.out, "verified");
  assert_contains(r.out, "child   exited 0");
  assert_contains(r.out, "demo: ok");
  dir = opendir(f->dir);
  assert_non_null(dir);
  while ((de = readdir(dir)) != NULL)
    if (strncmp(de->d_name, "swapread-demo", 13) == 0)
      fail_msg("demo left %s/%s behind", f->dir, de->d_name);
  closedir(dir);
  run_free(&r);
}

static void test_cli_wait_watch_demo_usage_exit_2(void** state) {
  static const char* const bad[][10] = {
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=abc", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--alive", "1=2",
       NULL}, /* without --wait */
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=1s", "--alive",
       "0x1000", NULL}, /* no =VALUE */
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=5x", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=0s", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=5", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=-1s", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1",
       "--wait=99999999999999999999ms", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--timeout", NULL},
      {"read", "IMG", "--cr3", "0x1000", "0x1000", "1", "--wait=5s",
       "--timeout", "2s", NULL},
      {"watch", "IMG", "--cr3", "0x1000", "0x1000", "1", "--interval", "0",
       NULL},
      {"watch", "IMG", "--cr3", "0x1000", "0x1000", "1", "--count", "0", NULL},
      {"watch", "IMG", "--cr3", "0x1000", "0x1000", "1", "--count", "2",
       "--duration", "1s"},
      {"watch", "IMG", "--cr3", "0x1000", "0x1000", "1", "--duration", "5",
       NULL},
      {"watch", "IMG", "--cr3", "0x1000", "0x1000", NULL}, /* no LEN */
      {"watch", "IMG", "--cr3", "0x1000", "--va", "0x1000", NULL},
      {"watch", "IMG", "--cr3", "0x1000", "0x1000", "1", "--swap", NULL},
      {"watch", "IMG", "--cr3", "0x1000", "--va", "0", "--len", "0", NULL},
      {"demo", "--bogus", NULL},
      {"demo", "extra", NULL},
  };
  fixture_t* f = *state;
  size_t k;

  for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
    const char* a[10];
    run_t r;
    int n;
    for (n = 0; n < 10; n++)
      a[n] = bad[k][n] != NULL && strcmp(bad[k][n], "IMG") == 0 ? f->elf
                                                                : bad[k][n];
    run_cli(&r, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9],
            NULL);
    if (r.status != 2)
      fail_msg("case %zu (%s %s): exit %d, stderr: %s", k, a[0], a[6], r.status,
               r.err);
    assert_int_equal(strncmp(r.err, "swapread: ", 10), 0);
    assert_string_equal(r.out, "");
    run_free(&r);
  }
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_cli_translate_shows_kit_walk),
      T(test_cli_translate_json_gpa_and_stop),
      T(test_cli_read_present_bytes_to_file),
      T(test_cli_read_json_lists_missing),
      T(test_cli_read_text_reports_on_stderr),
      T(test_cli_read_resident_reads_protnone),
      T(test_cli_read_holey_range_exact),
      T(test_cli_read_holey_hexdump_exact),
      T(test_cli_segments_layout),
      T(test_cli_maps_json_lists_ranges),
      T(test_cli_usage_errors_exit_2),
      T(test_cli_unreadable_image_exits_1),
      T(test_cli_mkimage_image_is_usable),
      T(test_cli_la57_translate),
      cmocka_unit_test(test_cli_help_and_version),
      T(test_cli_read_wait_completes_after_page_in),
      T(test_cli_read_wait_timeout_names_missing),
      T(test_cli_read_wait_permanent_error_fails),
      T(test_cli_read_wait_alive_canary),
      T(test_cli_watch_reports_out_and_in),
      T(test_cli_watch_whole_space),
      T(test_cli_watch_ends_on_sigint_and_duration),
      T(test_cli_demo_exits_0),
      T(test_cli_wait_watch_demo_usage_exit_2),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
