/* swapread CLI — `demo`: a read that waits while another process pages the
 * data in.
 *
 * It builds a small image with the kit in a file (a temporary directory, or
 * --keep DIR), maps DEMO_NCHUNKS pattern-filled 4 KiB pages and pages most
 * of them out as Linux swap entries. A forked child then pages them back
 * in one by one, DEMO_STEP_MS apart, through the kit's writable shared
 * mapping (the child only uses the kit, and leaves with _exit), while the
 * parent runs the same waiting read as `read --wait` (wait.c) on its own
 * read-only image of the file, with progress. The demo succeeds (exit 0)
 * only if the read went pending, stayed pending until the last page-in,
 * completed with exactly the kit's pattern, and the child exited 0. The
 * child starts its schedule only once the read is pending (a byte on a
 * pipe), so the demo does not depend on who runs first.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "swapread/kit.h"
#include "wait.h"

static const char* const cmd = "demo";

#define DEMO_IMAGE_SIZE (UINT64_C(16) << 20)
#define DEMO_VA UINT64_C(0x10000000)
#define DEMO_NCHUNKS 8
#define DEMO_SEED 42
#define DEMO_STEP_MS 500       /* between two page-ins: 6 x 500 = 3 s */
#define DEMO_TIMEOUT_MS 30000  /* a broken binding fails, never hangs */
#define DEMO_SWAP_OFFSET 0x100 /* swap offset of chunk i: + i */

/* The chunks paged out, in the order the child pages them in. */
static const unsigned paged_out[] = {6, 1, 3, 7, 2, 5};
#define NPAGED (sizeof(paged_out) / sizeof(paged_out[0]))

typedef struct demo_s {
  char dir[256];
  char path[300];
  bool keep;
  bool made_dir;
  sr_kit_t* kit;
  uint64_t cr3;
  int go[2]; /* parent -> child: "the read is pending, start" */
  pid_t child;
  bool released; /* the byte was written */
} demo_t;

/* Sleeps ms milliseconds, resuming after signals. */
static void sleep_ms(uint64_t ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* The child: waits for the parent's byte, then pages the chunks in. Uses
 * only the kit; never returns. */
static void child_main(demo_t* d) {
  char byte;
  size_t k;
  ssize_t got;

  close(d->go[1]);
  do {
    got = read(d->go[0], &byte, 1);
  } while (got < 0 && errno == EINTR);
  if (got != 1)
    _exit(3); /* the parent gave up before the read was pending */
  for (k = 0; k < NPAGED; k++) {
    sleep_ms(DEMO_STEP_MS);
    if (sr_kit_page_in(d->kit, d->cr3, DEMO_VA + paged_out[k] * SR_PAGE_4K,
                       1) != 0)
      _exit(2);
  }
  _exit(0);
}

/* Tells the child to start (once). */
static void release_child(demo_t* d) {
  char byte = 'g';
  ssize_t n;
  if (d->released)
    return;
  d->released = true;
  do {
    n = write(d->go[1], &byte, 1);
  } while (n < 0 && errno == EINTR);
  close(d->go[1]);
  d->go[1] = -1;
}

static void on_pending(cli_wait_t* w) {
  demo_t* d = w->data;
  printf(
      "read    pending: %zu of %zu chunks missing; the child starts "
      "paging them in\n",
      w->pending_at_start, w->nchunks);
  fflush(stdout);
  release_child(d);
}

/* Builds the address space: DEMO_NCHUNKS pages, pattern, NPAGED out. */
static int build(demo_t* d) {
  const uint32_t rw = SR_PROT_W | SR_PROT_U | SR_PROT_NX;
  sr_kit_opts_t ko;
  sr_pte_info_t info;
  size_t k;
  int err;

  memset(&ko, 0, sizeof(ko));
  ko.size = DEMO_IMAGE_SIZE;
  ko.path = d->path;
  if ((err = sr_kit_create(&d->kit, &ko)) != 0)
    return err;
  if ((err = sr_kit_new_space(d->kit, SR_PAGING_4LEVEL, &d->cr3)) != 0 ||
      (err = sr_kit_map(d->kit, d->cr3, DEMO_VA, DEMO_NCHUNKS * SR_PAGE_4K,
                        SR_PAGE_4K, rw)) != 0 ||
      (err = sr_kit_fill(d->kit, d->cr3, DEMO_VA, DEMO_NCHUNKS * SR_PAGE_4K,
                         DEMO_SEED)) != 0)
    return err;
  for (k = 0; k < NPAGED; k++) {
    memset(&info, 0, sizeof(info));
    info.kind = SR_PTE_LINUX_SWAP;
    info.swap_offset = DEMO_SWAP_OFFSET + paged_out[k];
    err = sr_kit_page_out(d->kit, d->cr3, DEMO_VA + paged_out[k] * SR_PAGE_4K,
                          1, &info);
    if (err != 0)
      return err;
  }
  return 0;
}

/* Compares the bytes read with the kit's pattern. Returns the offset of
 * the first wrong byte, or len when all match. */
static uint64_t verify(const unsigned char* buf, uint64_t len) {
  uint64_t k;
  for (k = 0; k < len; k++)
    if (buf[k] != sr_kit_pattern(DEMO_SEED, DEMO_VA + k))
      return k;
  return len;
}

/* Picks the directory: --keep DIR (created if needed) or a new temporary
 * one. 0 or CLI_FAIL (printed). */
static int make_dir(demo_t* d, const char* keep) {
  if (keep != NULL) {
    if (strlen(keep) >= sizeof(d->dir)) {
      cli_error(cmd, "directory name too long");
      return CLI_FAIL;
    }
    snprintf(d->dir, sizeof(d->dir), "%s", keep);
    if (mkdir(d->dir, 0777) != 0 && errno != EEXIST) {
      cli_error(d->dir, "%s", strerror(errno));
      return CLI_FAIL;
    }
  } else {
    const char* tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 200)
      tmp = "/tmp";
    snprintf(d->dir, sizeof(d->dir), "%s/swapread-demo.XXXXXX", tmp);
    if (mkdtemp(d->dir) == NULL) {
      cli_error(d->dir, "%s", strerror(errno));
      return CLI_FAIL;
    }
    d->made_dir = true;
  }
  snprintf(d->path, sizeof(d->path), "%s/demo.img", d->dir);
  return 0;
}

/* Removes what the demo made unless --keep. 0, or CLI_FAIL (printed). */
static int cleanup(demo_t* d) {
  int rc = 0;
  sr_kit_destroy(d->kit);
  d->kit = NULL;
  if (d->keep)
    return 0;
  if (unlink(d->path) != 0 && errno != ENOENT) {
    cli_error(d->path, "cannot remove: %s", strerror(errno));
    rc = CLI_FAIL;
  }
  if (d->made_dir && rmdir(d->dir) != 0) {
    cli_error(d->dir, "cannot remove: %s", strerror(errno));
    rc = CLI_FAIL;
  }
  return rc;
}

/* Waits for the child; kills it first when `kill_it`. Returns whether it
 * exited with status 0. */
static bool reap_child(demo_t* d, bool kill_it) {
  int st;
  pid_t r;
  if (d->child <= 0)
    return false;
  if (kill_it)
    kill(d->child, SIGTERM);
  do {
    r = waitpid(d->child, &st, 0);
  } while (r < 0 && errno == EINTR);
  d->child = 0;
  if (r < 0) {
    cli_error(cmd, "waitpid: %s", strerror(errno));
    return false;
  }
  if (WIFEXITED(st)) {
    printf("child   exited %d\n", WEXITSTATUS(st));
    return WEXITSTATUS(st) == 0;
  }
  printf("child   killed by signal %d\n", WTERMSIG(st));
  return false;
}

/* Runs the waiting read and checks it. Returns CLI_OK or CLI_FAIL. */
static int run(demo_t* d, sr_image_t* image) {
  const uint64_t len = DEMO_NCHUNKS * SR_PAGE_4K;
  const uint64_t schedule_ms = NPAGED * DEMO_STEP_MS;
  cli_wait_t w;
  uint64_t bad;
  int rc = CLI_FAIL;
  int err;

  memset(&w, 0, sizeof(w));
  w.cr3 = d->cr3;
  w.va = DEMO_VA;
  w.len = len;
  w.timeout_ms = DEMO_TIMEOUT_MS;
  /* On a terminal, the line rewritten in place on stderr; else one line
   * per change, in order with the rest of the story on stdout. */
  if (isatty(STDERR_FILENO)) {
    w.progress = CLI_PROGRESS_TTY;
    w.progress_out = stderr;
  } else {
    w.progress = CLI_PROGRESS_LINES;
    w.progress_out = stdout;
    w.progress_prefix = "wait    ";
  }
  w.label = cmd;
  w.interruptible = true;
  w.on_pending = on_pending;
  w.data = d;
  err = cli_wait_read(&w, image);
  release_child(d); /* if the read never went pending: the child exits 3 */
  if (err != 0) {
    cli_error(cmd, "cannot wait: %s", cli_wait_strerror(err));
    goto out;
  }
  if (w.start != SR_PENDING) {
    cli_error(cmd, "the read did not go pending: %s",
              w.start == 0 ? "complete at once" : sr_strerror(w.start));
    goto out;
  }
  if (w.status != 0) {
    cli_error(cmd,
              "the read ended with %s after %" PRIu64
              " ms (%zu of %zu "
              "chunks missing)",
              w.interrupted ? "an interrupt" : sr_strerror(w.status),
              w.waited_ms, w.nmissing, w.nchunks);
    goto out;
  }
  printf("done    all %zu chunks present after %" PRIu64 " ms\n", w.nchunks,
         w.waited_ms);
  if (w.pending_at_start != NPAGED || w.waited_ms + 1 < schedule_ms) {
    cli_error(cmd,
              "expected %zu chunks pending for at least %" PRIu64
              " ms; saw %zu pending, done after %" PRIu64 " ms",
              (size_t)NPAGED, schedule_ms, w.pending_at_start, w.waited_ms);
    goto out;
  }
  printf(
      "pending %zu chunks stayed pending until the child's last page-in "
      "(>= %" PRIu64 " ms)\n",
      w.pending_at_start, schedule_ms);
  bad = verify(w.buf, len);
  if (bad != len) {
    cli_error(cmd, "wrong byte at 0x%" PRIx64 ": 0x%02x, expected 0x%02x",
              DEMO_VA + bad, w.buf[bad],
              sr_kit_pattern(DEMO_SEED, DEMO_VA + bad));
    goto out;
  }
  printf("verified: %" PRIu64 " bytes match sr_kit_pattern(%d, va)\n", len,
         DEMO_SEED);
  rc = CLI_OK;
out:
  cli_wait_free(&w);
  if (!reap_child(d, rc != CLI_OK))
    rc = CLI_FAIL;
  return rc;
}

int cli_cmd_demo(int argc, char** argv) {
  cli_args_t a = {argc, argv, 1, false};
  const char* keep = NULL;
  sr_image_t* image = NULL;
  demo_t d;
  size_t k;
  int rc = CLI_FAIL;
  int err;
  int r;

  for (; a.i < argc; a.i++) {
    const char* v;
    if (cli_help_opt(&a, cmd))
      return CLI_OK;
    if ((r = cli_opt(&a, cmd, "--keep", &v)) != 0) {
      if (r != 1)
        return r;
      if (v[0] == '\0')
        return cli_usage_error(cmd, "--keep needs a directory");
      keep = v;
      continue;
    }
    if (cli_is_option(&a)) {
      if (a.only_pos)
        continue; /* it was "--" */
      return cli_usage_error(cmd, "unknown option '%s'", argv[a.i]);
    }
    return cli_usage_error(cmd, "unexpected argument '%s'", argv[a.i]);
  }

  /* Line-buffered: the story on stdout stays in order with stderr. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  memset(&d, 0, sizeof(d));
  d.go[0] = d.go[1] = -1;
  d.keep = keep != NULL;
  if (make_dir(&d, keep) != 0)
    return CLI_FAIL;
  if ((err = build(&d)) != 0) {
    cli_error(d.path, "building the image: %s", sr_strerror(err));
    goto out_cleanup;
  }
  if ((err = sr_kit_open_image(d.kit, &image)) != 0) {
    cli_error(d.path, "%s", sr_strerror(err));
    goto out_cleanup;
  }

  printf("swapread demo: a read that waits for paged-out pages\n");
  printf("image   %s (raw, %" PRIu64 " MiB, built with the kit)\n", d.path,
         DEMO_IMAGE_SIZE >> 20);
  printf("cr3     0x%" PRIx64 "\n", d.cr3);
  printf("range   0x%" PRIx64 "-0x%" PRIx64
         " (%d chunks of 4 KiB), pattern "
         "seed %d\n",
         DEMO_VA, DEMO_VA + DEMO_NCHUNKS * SR_PAGE_4K, DEMO_NCHUNKS, DEMO_SEED);
  printf("paged out as linux swap entries: chunks");
  for (k = 0; k < NPAGED; k++)
    printf(" %u", paged_out[k]);
  printf(" (paged in in that order, one every %d ms)\n", DEMO_STEP_MS);

  if (pipe(d.go) != 0) {
    cli_error(cmd, "pipe: %s", strerror(errno));
    goto out_image;
  }
  fflush(stdout);
  fflush(stderr);
  d.child = fork();
  if (d.child < 0) {
    cli_error(cmd, "fork: %s", strerror(errno));
    goto out_pipe;
  }
  if (d.child == 0)
    child_main(&d); /* never returns */
  close(d.go[0]);
  d.go[0] = -1;
  printf(
      "child   pid %ld pages the data in through the kit's writable "
      "mapping\n",
      (long)d.child);
  fflush(stdout);
  rc = run(&d, image);

out_pipe:
  if (d.go[0] >= 0)
    close(d.go[0]);
  if (d.go[1] >= 0)
    close(d.go[1]);
out_image:
  sr_image_close(image);
out_cleanup:
  if (cleanup(&d) != 0)
    rc = CLI_FAIL;
  if (rc == CLI_OK && d.keep)
    printf("kept    %s; try: swapread read %s --cr3 0x%" PRIx64 " 0x%" PRIx64
           " 0x%x --hexdump\n",
           d.path, d.path, d.cr3, DEMO_VA, DEMO_NCHUNKS * 4096);
  if (rc == CLI_OK)
    printf("demo: ok\n");
  else
    fprintf(stderr, "swapread: demo: FAILED\n");
  if (fflush(stdout) != 0 || ferror(stdout))
    rc = CLI_FAIL;
  return rc;
}
