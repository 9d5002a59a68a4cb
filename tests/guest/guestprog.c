/* The guest side of the real-guest tests: a small static program that runs
 * inside the Linux guest, owns a patterned buffer at a fixed virtual address
 * and obeys one-line commands on a serial port (the host's test driver,
 * tests/guest/guestlib.py, talks to it over QEMU's second serial port). It
 * fills the buffer, pages it out (madvise MADV_PAGEOUT: the kernel's reclaim
 * path writes it to swap and leaves swap entries in the PTEs), touches
 * pages back in, reports its own /proc/self/pagemap (the guest-side oracle),
 * and spins in user mode so the host can stop the vCPU inside it and read
 * its CR3. It is a test fixture: it trusts its host and exits on any error.
 *
 * Protocol: the host sends "TAG CMD ARGS\n"; the program answers one line
 * "=TAG ok ..." or "=TAG err ...". Commands:
 *   init SEED NPAGES   map and fill the buffer; ok buf=VA len=N pid=P
 *                      text=LO-HI
 *   spin MS            busy loop in user mode for MS ms; ok spun
 *   pagemap FIRST N    ok and run-length encoded entries (below)
 *   pageout FIRST N    madvise(MADV_PAGEOUT); ok us=T swapped=K
 *   touch LIST         read one word of each page in LIST ("a-b,c,..."),
 *                      checking it against the pattern; ok us=T bad=K
 *                      (a read fault: a swapped-in page comes back
 *                      read-only in its PTE)
 *   dirty LIST         the same, and write the word back (a write fault:
 *                      the PTE is writable and dirty again)
 *   exit               ok, then exit(0)
 * Pagemap runs: "pPFNxN" (N present pages at consecutive frames),
 * "sTYPE:OFFxN" (N swapped pages at consecutive offsets of one type),
 * "-xN" (neither).
 *
 * The pattern (shared with the host): the 64-bit word at virtual address va
 * is va + (SEED << 48); the first page starts with a header
 * {magic "SWRDGST1", seed, npages, pid, 0...} (64 bytes) over the pattern.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGE 4096u
#define BUF_VA UINT64_C(0x7e0000000000) /* the same VA in every process */
#define MAGIC UINT64_C(0x3154534744525753) /* "SWRDGST1" little-endian */

extern char __executable_start[], etext[];

static int tty = -1;
static uint64_t* buf;
static uint64_t npages, seed;

static uint64_t now_us(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void reply(const char* tag, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply(const char* tag, const char* fmt, ...) {
  static char line[1 << 16];
  va_list ap;
  int n, m;
  ssize_t w;

  n = snprintf(line, sizeof(line), "=%s ", tag);
  va_start(ap, fmt);
  m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0 || (size_t)(n + m) >= sizeof(line) - 1)
    m = (int)(sizeof(line) - (size_t)n - 2);
  n += m;
  line[n++] = '\n';
  for (m = 0; m < n; m += (int)w) {
    w = write(tty, line + m, (size_t)(n - m));
    if (w <= 0)
      exit(3);
  }
}

static uint64_t pattern(uint64_t va) {
  return va + (seed << 48);
}

static int cmd_init(const char* tag, uint64_t s, uint64_t n) {
  void* p;
  uint64_t i;

  if (buf != NULL || n == 0) {
    reply(tag, "err already initialised or empty");
    return 0;
  }
  p = mmap((void*)BUF_VA, n * PAGE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) {
    reply(tag, "err mmap: %s", strerror(errno));
    return 0;
  }
  buf = p;
  seed = s;
  npages = n;
  for (i = 0; i < n * PAGE / 8; i++)
    buf[i] = pattern(BUF_VA + i * 8);
  buf[0] = MAGIC;
  buf[1] = seed;
  buf[2] = npages;
  buf[3] = (uint64_t)getpid();
  for (i = 4; i < 8; i++)
    buf[i] = 0;
  reply(tag, "ok buf=0x%" PRIx64 " len=%" PRIu64 " pid=%d text=%p-%p", BUF_VA,
        n * PAGE, (int)getpid(), (void*)__executable_start, (void*)etext);
  return 0;
}

/* Kept out of line so its RIP is in the text the host looks for. */
static __attribute__((noinline)) void spin(uint64_t ms) {
  uint64_t end = now_us() + ms * 1000u;
  volatile uint64_t x = 0;
  unsigned k;

  while (now_us() < end)
    for (k = 0; k < 100000; k++)
      x += k;
}

typedef struct run_s {
  char kind; /* 'p', 's', '-' */
  uint64_t a, b; /* pfn / (type, offset) */
  uint64_t n;
} run_t;

static int read_pagemap(uint64_t first, uint64_t n, uint64_t* out) {
  int fd = open("/proc/self/pagemap", O_RDONLY);
  uint64_t off = (BUF_VA / PAGE + first) * 8, done = 0;
  ssize_t r;

  if (fd < 0)
    return -1;
  while (done < n * 8) {
    r = pread(fd, (char*)out + done, n * 8 - done, (off_t)(off + done));
    if (r <= 0) {
      close(fd);
      return -1;
    }
    done += (uint64_t)r;
  }
  close(fd);
  return 0;
}

static void classify(uint64_t e, run_t* r) {
  r->n = 1;
  if (e & (UINT64_C(1) << 63)) {
    r->kind = 'p';
    r->a = e & ((UINT64_C(1) << 55) - 1);
    r->b = 0;
  } else if (e & (UINT64_C(1) << 62)) {
    r->kind = 's';
    r->a = e & 31;
    r->b = (e >> 5) & ((UINT64_C(1) << 50) - 1);
  } else {
    r->kind = '-';
    r->a = r->b = 0;
  }
}

static int cmd_pagemap(const char* tag, uint64_t first, uint64_t n) {
  static char out[1 << 15];
  uint64_t* e;
  run_t cur, x;
  size_t len = 0;
  uint64_t i;
  int m;

  if (first > npages || n > npages - first || n == 0) {
    reply(tag, "err bad range");
    return 0;
  }
  e = malloc(n * 8);
  if (e == NULL || read_pagemap(first, n, e) != 0) {
    reply(tag, "err pagemap: %s", strerror(errno));
    free(e);
    return 0;
  }
  classify(e[0], &cur);
  for (i = 1; i <= n; i++) {
    if (i < n) {
      classify(e[i], &x);
      if (x.kind == cur.kind &&
          ((cur.kind == 'p' && x.a == cur.a + cur.n) ||
           (cur.kind == 's' && x.a == cur.a && x.b == cur.b + cur.n) ||
           cur.kind == '-')) {
        cur.n++;
        continue;
      }
    }
    if (cur.kind == 'p')
      m = snprintf(out + len, sizeof(out) - len, " p%" PRIx64 "x%" PRIu64,
                   cur.a, cur.n);
    else if (cur.kind == 's')
      m = snprintf(out + len, sizeof(out) - len,
                   " s%" PRIu64 ":%" PRIx64 "x%" PRIu64, cur.a, cur.b, cur.n);
    else
      m = snprintf(out + len, sizeof(out) - len, " -x%" PRIu64, cur.n);
    if (m < 0 || (size_t)m >= sizeof(out) - len) {
      free(e);
      reply(tag, "err too many runs");
      return 0;
    }
    len += (size_t)m;
    cur = x;
  }
  free(e);
  reply(tag, "ok%s", out);
  return 0;
}

static uint64_t count_swapped(uint64_t first, uint64_t n) {
  uint64_t* e = malloc(n * 8);
  uint64_t i, k = 0;

  if (e == NULL || read_pagemap(first, n, e) != 0) {
    free(e);
    return 0;
  }
  for (i = 0; i < n; i++)
    k += (e[i] >> 62 & 3) == 1; /* swapped, not present */
  free(e);
  return k;
}

static int cmd_pageout(const char* tag, uint64_t first, uint64_t n) {
  uint64_t t0, k;
  int tries;

  if (first > npages || n > npages - first || n == 0) {
    reply(tag, "err bad range");
    return 0;
  }
  t0 = now_us();
  /* Reclaim may skip a page it finds busy; ask again for the stragglers. */
  for (tries = 0; tries < 20; tries++) {
    if (madvise((char*)buf + first * PAGE, n * PAGE, MADV_PAGEOUT) != 0) {
      reply(tag, "err madvise: %s", strerror(errno));
      return 0;
    }
    if ((k = count_swapped(first, n)) == n)
      break;
    usleep(20000);
  }
  reply(tag, "ok us=%" PRIu64 " swapped=%" PRIu64 " tries=%d", now_us() - t0,
        k, tries + 1);
  return 0;
}

/* LIST: "a-b,c,..." page indices (b inclusive). Reads the second word of
 * each page (the first page's header is in the first words). */
static int cmd_touch(const char* tag, const char* list, int write) {
  const char* p = list;
  uint64_t t0 = now_us(), bad = 0, count = 0, a, b, i;
  char* end;

  while (*p != '\0') {
    a = strtoull(p, &end, 10);
    b = a;
    if (*end == '-')
      b = strtoull(end + 1, &end, 10);
    if (end == p || b < a || b >= npages) {
      reply(tag, "err bad list at '%s'", p);
      return 0;
    }
    for (i = a; i <= b; i++, count++) {
      uint64_t va = BUF_VA + i * PAGE + 4000;
      volatile uint64_t* w = (volatile uint64_t*)(uintptr_t)va;

      bad += *w != pattern(va);
      if (write)
        *w = pattern(va); /* a write fault: the PTE becomes writable */
    }
    p = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end != '\0') {
      reply(tag, "err bad list at '%s'", end);
      return 0;
    }
  }
  reply(tag, "ok us=%" PRIu64 " pages=%" PRIu64 " bad=%" PRIu64, now_us() - t0,
        count, bad);
  return 0;
}

static void setup_tty(const char* path) {
  struct termios t;

  tty = open(path, O_RDWR | O_NOCTTY);
  if (tty < 0) {
    perror(path);
    exit(2);
  }
  if (tcgetattr(tty, &t) == 0) {
    cfmakeraw(&t);
    t.c_lflag |= ICANON; /* line at a time, no echo */
    tcsetattr(tty, TCSANOW, &t);
  }
}

int main(int argc, char** argv) {
  static char line[1 << 16];
  size_t have = 0;
  char *nl, tag[32], cmd[32], rest[sizeof(line)];
  ssize_t r;

  setup_tty(argc > 1 ? argv[1] : "/dev/ttyS1");
  reply("hello", "ok pid=%d", (int)getpid());
  for (;;) {
    r = read(tty, line + have, sizeof(line) - 1 - have);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      return 1;
    }
    have += (size_t)r;
    line[have] = '\0';
    while ((nl = strpbrk(line, "\r\n")) != NULL) {
      uint64_t x = 0, y = 0;
      int n;

      *nl = '\0';
      rest[0] = '\0';
      n = sscanf(line, "%31s %31s %65535[^\n]", tag, cmd, rest);
      if (n >= 2) {
        if (strcmp(cmd, "init") == 0 &&
            sscanf(rest, "%" SCNu64 " %" SCNu64, &x, &y) == 2)
          cmd_init(tag, x, y);
        else if (strcmp(cmd, "spin") == 0 &&
                 sscanf(rest, "%" SCNu64, &x) == 1) {
          spin(x);
          reply(tag, "ok spun");
        } else if (strcmp(cmd, "pagemap") == 0 &&
                   sscanf(rest, "%" SCNu64 " %" SCNu64, &x, &y) == 2)
          cmd_pagemap(tag, x, y);
        else if (strcmp(cmd, "pageout") == 0 &&
                 sscanf(rest, "%" SCNu64 " %" SCNu64, &x, &y) == 2)
          cmd_pageout(tag, x, y);
        else if (strcmp(cmd, "touch") == 0 && n == 3)
          cmd_touch(tag, rest, 0);
        else if (strcmp(cmd, "dirty") == 0 && n == 3)
          cmd_touch(tag, rest, 1);
        else if (strcmp(cmd, "exit") == 0) {
          reply(tag, "ok bye");
          return 0;
        } else
          reply(tag, "err unknown command '%s'", cmd);
      }
      have -= (size_t)(nl + 1 - line);
      memmove(line, nl + 1, have + 1);
    }
    if (have == sizeof(line) - 1)
      have = 0; /* an overlong line: drop it */
  }
}
