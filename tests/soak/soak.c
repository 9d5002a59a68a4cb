/* Soak: many concurrent swap-aware reads on a uv loop while a second
 * process pages the guest in and out, garbles entries and restarts address
 * spaces; the parent cancels and invalidates from inside callbacks. The
 * image is a holey kit image (a memfd): four 4-level Linux address spaces
 * with 4 KiB, 2 MiB and kernel pages filled with sr_kit_pattern, pages
 * mapped into a physical hole and past the end of the file, and an
 * unmapped range. A forked child touches only the kit's writable shared
 * mapping (entries and root pages; data pages are never written) and then
 * _exits. The parent keeps SOAK_READS reads in flight for SOAK_SECONDS,
 * starting new ones from callbacks, and checks as it goes that every
 * status has a cause and every status-0 byte is the pattern. At the end
 * the child stops, the parent restores every entry and root, the loop
 * drains, and it checks: every pending read called back exactly once,
 * the engine's allocator back to zero, the malloc heap (mallinfo2) and
 * the number of open fds back to their starting values. It prints the
 * figures and exits 1 on any violation. Limits: one process reads, one
 * writes; the child's writes are 8-byte stores racing with the reader's
 * walks (as a guest's would); restarts are held ~150-300 ms so that a
 * restart check sees them (a shorter one may go unnoticed, as documented).
 * Environment: SOAK_SECONDS (60), SOAK_READS (100000), SR_SEED.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swapread/kit.h>
#include <swapread/uv.h>

#define NSPACE 4
#define PAGE 4096u
#define KIT_SIZE (UINT64_C(64) << 20)
#define MAXPHY 46 /* bits 46..51 of a present entry are reserved */
#define ADDR_MASK UINT64_C(0x000ffffffffff000)
#define A_BASE UINT64_C(0x7f0000000000) /* 4 KiB pages, PTEs tracked */
#define A_PAGES 1024u
#define B_BASE UINT64_C(0x7f0040000000) /* 2 MiB pages, PDEs tracked */
#define B_PAGES 4u
#define H_BASE UINT64_C(0x7f0080000000) /* 4 pages onto a physical hole */
#define H_PAGES 4u
#define E_BASE UINT64_C(0x7f0080010000) /* 2 pages past the end of file */
#define E_PAGES 2u
#define U_BASE UINT64_C(0x7f00c0000000)     /* nothing mapped (PDPTE zero) */
#define K_BASE UINT64_C(0xffff888000000000) /* kernel pages, never paged */
#define K_PAGES 16u
#define KSLOT 400 /* a free kernel-half root slot a restart writes */
#define SEED_OF(s) (UINT64_C(0x50a6) + (uint64_t)(s))
#define NPOPULAR 64
#define MAX_VIOL 3

enum { R_A, R_B, R_K, R_H, R_E, R_U, R_POPULAR };
enum { T_PTE, T_PDTABLE, T_PD2M, T_PDPT };
enum { S_FREE, S_PENDING, S_IN_CB };

/* Shared with the child (MAP_SHARED|MAP_ANONYMOUS, made before fork). */
typedef struct shared_s {
  int stop;
  uint64_t page_outs, page_ins, garbage, restarts, ops;
  uint64_t root_seq[NSPACE]; /* odd while the root is changed */
} shared_t;

typedef struct tracked_s {
  uint64_t gpa, orig;
  uint8_t type, level, space, modified;
} tracked_t;

typedef struct rd_s {
  sr_uv_read_t req; /* first: the callback's req is the slot */
  unsigned char* buf;
  uint64_t gva;
  size_t len;
  uint32_t flags;
  uint64_t timeout_ms;
  uint64_t seq0;
  uint32_t pidx;
  uint64_t ncb;   /* callbacks so far (a slot is reused) */
  uint64_t call0; /* g_bulk_calls when it started */
  uint8_t space, region, state, cancel_expected;
  uint32_t next_free;
} rd_t;

typedef struct count_alloc_s {
  uint64_t bytes, blocks, peak, calls;
} count_alloc_t;

/* Figures and checks. */
static struct {
  uint64_t started, sync_ok, rejected, pending_started, callbacks;
  uint64_t rej[64], cb[64]; /* by sr_err_name index, see status_slot */
  uint64_t cancels, cancel_self, cancel_cr3_calls, cancel_cr3_reads;
  uint64_t gone_restart, invalidations, invalidated_reads, set_images,
      set_image_busy, peak_inflight, bytes_verified;
  uint64_t violations;
} st;

static const int status_list[] = {0,
                                  SR_EPARTIAL,
                                  SR_ETIMEDOUT,
                                  SR_ECANCELED,
                                  SR_EGONE,
                                  SR_EIMAGEGONE,
                                  SR_EHOLE,
                                  SR_EBEYOND,
                                  SR_EBADENTRY,
                                  SR_ENOTPRESENT,
                                  SR_ENONCANON,
                                  SR_EINVAL,
                                  SR_ENOMEM};
#define NSTATUS (sizeof(status_list) / sizeof(status_list[0]))

static uint64_t g_seed, g_rng;
static uint64_t g_seconds = 60, g_target = 100000;
static sr_kit_t* g_kit;
static uint64_t g_cr3[NSPACE];
static uint64_t g_root[NSPACE][PAGE / 8];
static uint64_t g_hole_gpa;
static tracked_t* g_tr;
static size_t g_ntr;
static shared_t* g_sh;
static pid_t g_child = -1;
static int g_child_status = -1;

static uv_loop_t g_loop;
static sr_uv_t g_h;
static sr_image_t* g_image;
static uv_timer_t g_ctl, g_deadline, g_watchdog;
static count_alloc_t g_ca;
static rd_t* g_rd;
static uint32_t g_nrd, g_free = UINT32_MAX;
static uint32_t* g_pending;
static uint32_t g_npending;
static int g_draining, g_invalid, g_need_set_image;
static int g_in_cancel_cr3 = -1, g_in_invalidate;
static uint64_t g_next_cancel_cr3, g_next_invalidate, g_t0, g_next_report;
static uint64_t g_gone_cancel_seen, g_imagegone_seen, g_bulk_calls;
/* Reads a bulk cancel ended that a sibling's callback cancelled first: the
 * bulk call counts them, their callback says ECANCELED (documented). */
static uint64_t g_bulk_sibling;
/* Per space: pending reads, and the root sequence when the first of them
 * started (the handle takes its reference copy of the root then). */
static uint32_t g_space_pending[NSPACE];
static uint64_t g_space_ref_seq[NSPACE];

/* Prints the first few of each kind (format) of violation. */
static void violation(const char* fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void violation(const char* fmt, ...) {
  static const char* kinds[64];
  static unsigned seen[64];
  va_list ap;
  size_t i;

  st.violations++;
  for (i = 0; i < 64 && kinds[i] != NULL && kinds[i] != fmt; i++) {
  }
  if (i < 64 && kinds[i] == NULL)
    kinds[i] = fmt;
  if (i == 64 || seen[i]++ >= MAX_VIOL)
    return;
  va_start(ap, fmt);
  fputs("soak: VIOLATION: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static uint64_t rnd(uint64_t* s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t status_slot(int status) {
  size_t i;

  for (i = 0; i < NSTATUS; i++)
    if (status_list[i] == status)
      return i;
  return NSTATUS; /* "other" */
}

static uint64_t env_u64(const char* name, uint64_t def) {
  const char* v = getenv(name);
  char* end;
  unsigned long long x;

  if (v == NULL || *v == '\0')
    return def;
  errno = 0;
  x = strtoull(v, &end, 0);
  if (errno != 0 || *end != '\0') {
    fprintf(stderr, "soak: bad %s=%s\n", name, v);
    exit(2);
  }
  return x;
}

/* --- the counting allocator (engine and handle memory) ----------------- */

static void* ca_alloc(void* ctx, size_t size) {
  count_alloc_t* a = ctx;
  void* p = malloc(size);

  a->calls++;
  if (p != NULL) {
    a->bytes += size;
    a->blocks++;
    if (a->bytes > a->peak)
      a->peak = a->bytes;
  }
  return p;
}

static void* ca_realloc(void* ctx, void* ptr, size_t old_size,
                        size_t new_size) {
  count_alloc_t* a = ctx;
  void* p = realloc(ptr, new_size);

  a->calls++;
  if (p != NULL) {
    a->bytes += new_size;
    a->bytes -= ptr != NULL ? old_size : 0;
    a->blocks += ptr == NULL;
    if (a->bytes > a->peak)
      a->peak = a->bytes;
  }
  return p;
}

static void ca_free(void* ctx, void* ptr, size_t size) {
  count_alloc_t* a = ctx;

  if (ptr == NULL)
    return;
  a->bytes -= size;
  a->blocks--;
  free(ptr);
}

static int count_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  int n = 0;

  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

/* --- the image ---------------------------------------------------------- */

static void check(int rc, const char* what) {
  if (rc != 0) {
    fprintf(stderr, "soak: setup: %s: %s\n", what, sr_strerror(rc));
    exit(1);
  }
}

static void track(int s, uint64_t gva, int level, int type) {
  tracked_t* t = &g_tr[g_ntr++];

  check(sr_kit_entry_gpa(g_kit, g_cr3[s], gva, level, &t->gpa), "entry gpa");
  check(sr_kit_get_entry(g_kit, g_cr3[s], gva, level, &t->orig), "entry");
  t->type = (uint8_t)type;
  t->level = (uint8_t)level;
  t->space = (uint8_t)s;
  t->modified = 0;
}

/* Builds the kit: per space A (4 KiB), B (2 MiB), K (kernel 4 KiB), H
 * (onto a punched hole), E (past the end of the file); fills A, B, K with
 * the space's pattern; records the tracked entries and the roots. */
static void build_image(void) {
  sr_kit_opts_t ko;
  uint64_t i;
  int s;

  memset(&ko, 0, sizeof(ko));
  ko.size = KIT_SIZE;
  check(sr_kit_create(&g_kit, &ko), "kit");
  check(sr_kit_alloc(g_kit, 4 * PAGE, PAGE, &g_hole_gpa), "hole frames");
  g_tr = calloc(NSPACE * (A_PAGES + 8), sizeof(*g_tr));
  if (g_tr == NULL)
    check(SR_ENOMEM, "tracked");
  for (s = 0; s < NSPACE; s++) {
    uint64_t* c = &g_cr3[s];
    check(sr_kit_new_space(g_kit, SR_PAGING_4LEVEL, c), "space");
    check(sr_kit_map(g_kit, *c, A_BASE, A_PAGES * PAGE, SR_PAGE_4K,
                     SR_PROT_W | SR_PROT_U),
          "map A");
    check(sr_kit_map(g_kit, *c, B_BASE, B_PAGES * SR_PAGE_2M, SR_PAGE_2M,
                     SR_PROT_W | SR_PROT_U | SR_PROT_NX),
          "map B");
    check(sr_kit_map(g_kit, *c, K_BASE, K_PAGES * PAGE, SR_PAGE_4K, SR_PROT_W),
          "map K");
    check(sr_kit_map_gpa(g_kit, *c, H_BASE, H_PAGES * PAGE, g_hole_gpa,
                         SR_PAGE_4K, SR_PROT_U),
          "map H");
    check(sr_kit_map_gpa(g_kit, *c, E_BASE, E_PAGES * PAGE, KIT_SIZE * 4,
                         SR_PAGE_4K, SR_PROT_U),
          "map E");
    check(sr_kit_fill(g_kit, *c, A_BASE, A_PAGES * PAGE, SEED_OF(s)), "fill");
    check(sr_kit_fill(g_kit, *c, B_BASE, B_PAGES * SR_PAGE_2M, SEED_OF(s)),
          "fill");
    check(sr_kit_fill(g_kit, *c, K_BASE, K_PAGES * PAGE, SEED_OF(s)), "fill");
    for (i = 0; i < A_PAGES; i++)
      track(s, A_BASE + i * PAGE, SR_LEVEL_PT, T_PTE);
    for (i = 0; i < A_PAGES * PAGE; i += SR_PAGE_2M)
      track(s, A_BASE + i, SR_LEVEL_PD, T_PDTABLE);
    for (i = 0; i < B_PAGES; i++)
      track(s, B_BASE + i * SR_PAGE_2M, SR_LEVEL_PD, T_PD2M);
    track(s, A_BASE, SR_LEVEL_PDPT, T_PDPT);
    track(s, B_BASE, SR_LEVEL_PDPT, T_PDPT);
    check(sr_kit_read_phys(g_kit, *c, g_root[s], PAGE), "root");
  }
  check(sr_kit_punch_hole(g_kit, g_hole_gpa, 4 * PAGE), "hole");
}

/* --- the child: pages in and out, garbles, restarts ---------------------- */

static tracked_t* pick(uint64_t* rs, int modified) {
  int i;

  for (i = 0; i < 16; i++) {
    tracked_t* t = &g_tr[rnd(rs) % g_ntr];
    if (t->modified == modified)
      return t;
  }
  return NULL;
}

static void put(tracked_t* t, uint64_t v) {
  (void)sr_kit_write_phys(g_kit, t->gpa, &v, sizeof(v));
}

/* A non-present encoding the reader may wait on: never a resident kind
 * that would name another frame (data pages are never rewritten, so a
 * resident entry may only name the frame the entry maps). */
static void page_out(uint64_t* rs, tracked_t* t) {
  sr_pte_info_t info;
  uint64_t v = 0;
  uint64_t r = rnd(rs) % 3;

  memset(&info, 0, sizeof(info));
  if (t->type == T_PDPT) {
    v = r == 0 ? 0 : (rnd(rs) & ~UINT64_C(1)); /* UNKNOWN at level 3 */
  } else if (r == 1 || (r == 2 && t->type == T_PDTABLE)) {
    info.kind = SR_PTE_LINUX_SWAP;
    info.swap_type = (uint32_t)(rnd(rs) % 32);
    info.swap_offset = rnd(rs) & ((UINT64_C(1) << 50) - 1);
    if (sr_kit_encode(&info, t->level, &v) != 0)
      v = 0;
  } else if (r == 2) {
    info.kind = SR_PTE_LINUX_PROTNONE;
    info.resident = true;
    info.frame = t->orig & ADDR_MASK;
    if (t->type == T_PD2M)
      info.frame &= ~(SR_PAGE_2M - 1);
    if (sr_kit_encode(&info, t->level, &v) != 0)
      v = 0;
  }
  put(t, v);
  t->modified = 1;
  g_sh->page_outs++;
}

/* Garbage the reader must survive without reading wrong bytes:
 * non-present noise, reserved bits, flipped RW/US/NX, a leaf frame past
 * the end of the file or in the hole. */
static void garble(uint64_t* rs, tracked_t* t) {
  sr_pte_info_t info;
  uint64_t v = t->orig;
  uint64_t r = rnd(rs) % (t->type == T_PTE ? 5 : 3);

  if (r == 0) {
    v = rnd(rs) & ~UINT64_C(1);
    if (sr_pte_classify(v, t->level, SR_OS_LINUX, &info) != SR_PTE_PRESENT &&
        info.resident)
      v &= ~(UINT64_C(1) << 8);
  } else if (r == 1) {
    v |= UINT64_C(1) << (MAXPHY + rnd(rs) % (52 - MAXPHY));
  } else if (r == 2) {
    static const uint64_t bits[3] = {UINT64_C(1) << 1, UINT64_C(1) << 2,
                                     UINT64_C(1) << 63};
    v ^= bits[rnd(rs) % 3];
  } else if (r == 3) {
    v = (v & ~ADDR_MASK) | (UINT64_C(1) << 44) | ((rnd(rs) % 16) << 12);
  } else {
    v = (v & ~ADDR_MASK) | (g_hole_gpa + (rnd(rs) % 4) * PAGE);
  }
  put(t, v);
  t->modified = 1;
  __atomic_add_fetch(&g_sh->garbage, 1, __ATOMIC_RELAXED);
}

static void child_op(uint64_t* rs) {
  uint64_t r = rnd(rs) % 100;
  tracked_t* t;

  if (r < 47) {
    if ((t = pick(rs, 0)) != NULL)
      page_out(rs, t);
  } else if (r < 94) {
    if ((t = pick(rs, 1)) != NULL) {
      put(t, t->orig);
      t->modified = 0;
      g_sh->page_ins++;
    }
  } else if ((t = pick(rs, 0)) != NULL) {
    garble(rs, t);
  }
  g_sh->ops++;
}

/* Restart: the sequence goes odd before the root changes and even after
 * it is restored, so the parent can tell whether an SR_EGONE had a cause. */
static void child_restart(uint64_t* rs, int s) {
  uint64_t zero[PAGE / 8];
  uint64_t v = (rnd(rs) | 0x2) & ~UINT64_C(1); /* non-present noise */

  __atomic_add_fetch(&g_sh->root_seq[s], 1, __ATOMIC_SEQ_CST);
  if (rnd(rs) & 1) {
    memset(zero, 0, sizeof(zero));
    (void)sr_kit_write_phys(g_kit, g_cr3[s], zero, sizeof(zero));
  } else {
    (void)sr_kit_write_phys(g_kit, g_cr3[s] + KSLOT * 8, &v, sizeof(v));
  }
  g_sh->restarts++;
}

static void child_restore(int s) {
  (void)sr_kit_write_phys(g_kit, g_cr3[s], g_root[s], PAGE);
  __atomic_add_fetch(&g_sh->root_seq[s], 1, __ATOMIC_SEQ_CST);
}

static void child_main(void) {
  uint64_t rs = g_seed ^ UINT64_C(0x9e3779b97f4a7c15);
  uint64_t now = mono_ms();
  uint64_t next_restart = now + 300 + rnd(&rs) % 700, restore_at = 0;
  struct timespec nap = {0, 1000000};
  int k, rsp = -1;

  while (!__atomic_load_n(&g_sh->stop, __ATOMIC_ACQUIRE)) {
    for (k = 0; k < 12; k++)
      child_op(&rs);
    now = mono_ms();
    if (rsp >= 0 && now >= restore_at) {
      child_restore(rsp);
      rsp = -1;
      next_restart = now + 200 + rnd(&rs) % 1300;
    } else if (rsp < 0 && now >= next_restart) {
      rsp = (int)(rnd(&rs) % NSPACE);
      child_restart(&rs, rsp);
      restore_at = now + 150 + rnd(&rs) % 150;
    }
    nanosleep(&nap, NULL);
  }
  if (rsp >= 0)
    child_restore(rsp);
  _exit(0);
}

/* --- reads -------------------------------------------------------------- */

static uint64_t seq_now(int s) {
  return __atomic_load_n(&g_sh->root_seq[s], __ATOMIC_SEQ_CST);
}

static void pending_add(rd_t* r) {
  if (g_space_pending[r->space]++ == 0)
    g_space_ref_seq[r->space] = r->seq0;
  r->pidx = g_npending;
  g_pending[g_npending++] = (uint32_t)(r - g_rd);
  if (g_npending > st.peak_inflight)
    st.peak_inflight = g_npending;
}

static void pending_remove(rd_t* r) {
  uint32_t last = g_pending[--g_npending];

  g_space_pending[r->space]--;
  g_pending[r->pidx] = last;
  g_rd[last].pidx = r->pidx;
}

static void slot_release(rd_t* r) {
  free(r->buf);
  r->buf = NULL;
  r->state = S_FREE;
  r->next_free = g_free;
  g_free = (uint32_t)(r - g_rd);
}

/* Bytes [from, to) of r's buffer must be the pattern. */
static void verify(const rd_t* r, size_t from, size_t to, const char* why) {
  size_t i;

  if (r->region != R_A && r->region != R_B && r->region != R_K &&
      r->region != R_POPULAR) {
    violation("%s: a read of %s VA %#" PRIx64 " returned data", why,
              r->region == R_H   ? "hole"
              : r->region == R_E ? "beyond-eof"
                                 : "unmapped",
              r->gva);
    return;
  }
  for (i = from; i < to; i++)
    if (r->buf[i] != sr_kit_pattern(SEED_OF(r->space), r->gva + i)) {
      violation("%s: space %d va %#" PRIx64 " byte %02x, pattern %02x", why,
                r->space, r->gva + i, r->buf[i],
                sr_kit_pattern(SEED_OF(r->space), r->gva + i));
      return;
    }
  st.bytes_verified += to - from;
}

/* EPARTIAL: chunk i missing -> zero, else the pattern. */
static void verify_partial(const rd_t* r, const uint64_t* missing) {
  size_t off = 0, i, end;
  uint32_t c = 0;

  if (missing == NULL) {
    violation("EPARTIAL without a missing bitmap");
    return;
  }
  while (off < r->len) {
    end = (size_t)(((r->gva + off) | (PAGE - 1)) + 1 - r->gva);
    if (end > r->len)
      end = r->len;
    if (missing[c / 64] >> (c % 64) & 1) {
      for (i = off; i < end; i++)
        if (r->buf[i] != 0) {
          violation("EPARTIAL: missing chunk %u not zero-filled", c);
          return;
        }
    } else {
      verify(r, off, end, "EPARTIAL chunk");
    }
    off = end;
    c++;
  }
}

/* Chooses what r reads. */
static void choose(rd_t* r) {
  uint64_t x = rnd(&g_rng) % 1000;
  uint64_t l = rnd(&g_rng) % 100;
  uint64_t base, size;

  r->space = (uint8_t)(rnd(&g_rng) % NSPACE);
  r->flags = 0;
  r->timeout_ms = SR_TIMEOUT_NONE;
  if (x < 50) {
    uint64_t p = rnd(&g_rng) % NPOPULAR;
    r->region = R_POPULAR;
    r->space = (uint8_t)(p % NSPACE);
    r->gva = A_BASE + (p * 37 % A_PAGES) * PAGE + p * 61 % PAGE;
    r->len = 1 + (size_t)(p * 13 % 300);
    if (r->gva + r->len > A_BASE + A_PAGES * PAGE)
      r->gva -= PAGE;
    r->flags = SR_READ_JOIN;
    return;
  }
  r->len = l < 75   ? 1 + rnd(&g_rng) % 64
           : l < 97 ? 1 + rnd(&g_rng) % PAGE
                    : 1 + rnd(&g_rng) % (3 * PAGE);
  if (x < 600) {
    r->region = R_A, base = A_BASE, size = A_PAGES * PAGE;
  } else if (x < 930) {
    r->region = R_B, base = B_BASE, size = B_PAGES * SR_PAGE_2M;
  } else if (x < 970) {
    r->region = R_K, base = K_BASE, size = K_PAGES * PAGE;
  } else if (x < 980) {
    r->region = R_H, base = H_BASE, size = H_PAGES * PAGE;
  } else if (x < 985) {
    r->region = R_E, base = E_BASE, size = E_PAGES * PAGE;
  } else {
    r->region = R_U, base = U_BASE, size = 64 * PAGE;
    r->timeout_ms = 5 + rnd(&g_rng) % 300; /* it never comes */
  }
  if (r->len > size)
    r->len = (size_t)size;
  r->gva = base + rnd(&g_rng) % (size - r->len + 1);
  x = rnd(&g_rng) % 100;
  if (x < 25) {
    r->timeout_ms = 10 + rnd(&g_rng) % 1500;
    if (x < 12)
      r->flags |= SR_READ_PARTIAL;
  }
  x = rnd(&g_rng) % 100;
  if (x < 5)
    r->flags |= SR_UV_ALWAYS_CALLBACK;
  else if (x < 12)
    r->flags |= SR_READ_JOIN;
}

static void read_cb(sr_uv_read_t* req, int status);

/* Starts one read if a slot is free. */
static void start_read(void) {
  sr_uv_read_opts_t o;
  rd_t* r;
  int rc;

  if (g_free == UINT32_MAX)
    return;
  r = &g_rd[g_free];
  g_free = r->next_free;
  choose(r);
  r->buf = malloc(r->len);
  if (r->buf == NULL) {
    violation("out of memory for a buffer");
    r->state = S_FREE;
    r->next_free = g_free;
    g_free = (uint32_t)(r - g_rd);
    return;
  }
  memset(r->buf, 0xa5, r->len);
  r->cancel_expected = 0;
  r->call0 = g_bulk_calls;
  r->seq0 = seq_now(r->space);
  o.flags = r->flags;
  o.timeout_ms = r->timeout_ms;
  st.started++;
  rc = sr_uv_read(&g_h, &r->req, g_cr3[r->space], r->gva, r->buf, r->len, &o,
                  read_cb);
  if (rc == SR_PENDING) {
    r->state = S_PENDING;
    st.pending_started++;
    pending_add(r);
    return;
  }
  if (rc == 0) {
    st.sync_ok++;
    verify(r, 0, r->len, "sync read");
  } else {
    st.rejected++;
    st.rej[status_slot(rc)]++;
    if (rc == SR_EIMAGEGONE
            ? !g_invalid
            : rc != SR_EHOLE && rc != SR_EBEYOND && rc != SR_EBADENTRY)
      violation("sr_uv_read rejected with %s", sr_err_name(rc));
  }
  slot_release(r);
}

static void refill(int tries) {
  while (tries-- > 0 && !g_draining && !g_invalid && g_npending < g_target &&
         g_free != UINT32_MAX)
    start_read();
}

/* Does the status have a cause? */
static void judge(rd_t* r, int status, const uint64_t* missing) {
  uint64_t seq;

  switch (status) {
    case 0:
      verify(r, 0, r->len, "status 0");
      break;
    case SR_EPARTIAL:
      if (!(r->flags & SR_READ_PARTIAL) || r->timeout_ms == SR_TIMEOUT_NONE)
        violation("EPARTIAL for a read without PARTIAL and a timeout");
      else
        verify_partial(r, missing);
      break;
    case SR_ETIMEDOUT:
      if (r->timeout_ms == SR_TIMEOUT_NONE)
        violation("ETIMEDOUT for a read without a timeout");
      break;
    case SR_ECANCELED:
      if (!r->cancel_expected)
        violation("ECANCELED for a read nobody cancelled");
      if (r->call0 < g_bulk_calls &&
          (g_in_invalidate || g_in_cancel_cr3 == r->space))
        g_bulk_sibling++;
      break;
    case SR_EGONE:
      /* From a restart check: the root must have changed (or been changed)
       * since the reference copy, taken when the first of the space's
       * pending reads started. */
      seq = seq_now(r->space);
      if (g_in_cancel_cr3 == r->space)
        g_gone_cancel_seen++;
      else if (seq != g_space_ref_seq[r->space] ||
               (g_space_ref_seq[r->space] & 1) != 0)
        st.gone_restart++;
      else
        violation("EGONE for space %d whose root never changed", r->space);
      break;
    case SR_EIMAGEGONE:
      if (!g_in_invalidate)
        violation("EIMAGEGONE outside sr_uv_invalidate");
      else
        g_imagegone_seen++;
      break;
    case SR_EHOLE:
    case SR_EBEYOND:
    case SR_EBADENTRY:
      if (r->region != R_H && r->region != R_E &&
          __atomic_load_n(&g_sh->garbage, __ATOMIC_RELAXED) == 0)
        violation("%s without garbage", sr_err_name(status));
      break;
    default:
      violation("unexpected status %s", sr_err_name(status));
  }
}

/* Cancels a random pending read; its callback must have run on return. */
static void cancel_other(void) {
  rd_t* o;
  uint64_t ncb;
  int rc;

  if (g_npending == 0)
    return;
  o = &g_rd[g_pending[rnd(&g_rng) % g_npending]];
  o->cancel_expected = 1;
  ncb = o->ncb;
  rc = sr_uv_cancel(&o->req);
  if (rc != 0 || o->ncb != ncb + 1)
    violation("sr_uv_cancel: %s, %" PRIu64 " callbacks before it returned",
              sr_err_name(rc), o->ncb - ncb);
  st.cancels++;
}

static void cancel_cr3(void) {
  int s = (int)(rnd(&g_rng) % NSPACE);
  uint64_t seen = g_gone_cancel_seen, sib = g_bulk_sibling, n;
  int rc;

  g_bulk_calls++;
  g_in_cancel_cr3 = s;
  rc = sr_uv_cancel_cr3(&g_h, g_cr3[s]);
  g_in_cancel_cr3 = -1;
  /* Every read it ended: EGONE/EIMAGEGONE, or ECANCELED when a sibling's
   * callback cancelled it first. A sibling may also cancel a read the
   * call did not take (a queued SR_UV_ALWAYS_CALLBACK completion, one
   * already completing in this poll): hence a range. */
  n = g_gone_cancel_seen - seen;
  if (rc < 0 || (uint64_t)rc < n || (uint64_t)rc > n + g_bulk_sibling - sib)
    violation("sr_uv_cancel_cr3 returned %d, %" PRIu64 " callbacks", rc, n);
  else
    st.cancel_cr3_reads += (uint64_t)rc;
  st.cancel_cr3_calls++;
}

static void invalidate(void) {
  uint64_t seen = g_imagegone_seen, sib = g_bulk_sibling, n;
  int rc;

  g_bulk_calls++;
  g_in_invalidate = 1;
  g_invalid = 1;
  rc = sr_uv_invalidate(&g_h, g_h.epoch);
  g_in_invalidate = 0;
  /* Every read it ended: EGONE/EIMAGEGONE, or ECANCELED when a sibling's
   * callback cancelled it first. A sibling may also cancel a read the
   * call did not take (a queued SR_UV_ALWAYS_CALLBACK completion, one
   * already completing in this poll): hence a range. */
  n = g_imagegone_seen - seen;
  if (rc < 0 || (uint64_t)rc < n || (uint64_t)rc > n + g_bulk_sibling - sib)
    violation("sr_uv_invalidate returned %d, %" PRIu64 " callbacks", rc, n);
  else
    st.invalidated_reads += (uint64_t)rc;
  st.invalidations++;
  g_need_set_image = 1;
}

static void read_cb(sr_uv_read_t* req, int status) {
  rd_t* r = (rd_t*)req;
  uint64_t x, now;
  int rc;

  if (r < g_rd || r >= g_rd + g_nrd || r->state != S_PENDING) {
    violation("callback for a read that is not pending (status %s)",
              sr_err_name(status));
    return;
  }
  if (req->status != status)
    violation("req->status %d != callback status %d", req->status, status);
  r->state = S_IN_CB;
  r->ncb++;
  pending_remove(r);
  st.callbacks++;
  st.cb[status_slot(status)]++;
  judge(r, status, req->missing);
  x = rnd(&g_rng) % 1000;
  if (x < 5) {
    rc = sr_uv_cancel(req);
    if (rc != SR_EALREADY)
      violation("sr_uv_cancel from its own callback: %s", sr_err_name(rc));
    st.cancel_self++;
  }
  slot_release(r);
  if (g_draining)
    return;
  if (x >= 5 && x < 15)
    cancel_other();
  now = uv_now(&g_loop);
  if (g_in_cancel_cr3 < 0 && !g_in_invalidate && !g_invalid) {
    if (now >= g_next_cancel_cr3) {
      g_next_cancel_cr3 = now + 300 + rnd(&g_rng) % 700;
      cancel_cr3();
    } else if (now >= g_next_invalidate) {
      g_next_invalidate = now + 2000 + rnd(&g_rng) % 3000;
      invalidate();
    }
  }
  refill(3);
}

/* --- control: set_image, top-up, progress, the end ---------------------- */

static void report(const char* when) {
  fprintf(stderr,
          "soak: %s t=%" PRIu64 "s in-flight %u started %" PRIu64
          " callbacks %" PRIu64 " child ops %" PRIu64 " restarts %" PRIu64
          " engine heap %" PRIu64 " B\n",
          when, (uv_now(&g_loop) - g_t0) / 1000, g_npending, st.started,
          st.callbacks, g_sh->ops, g_sh->restarts, g_ca.bytes);
}

static void ctl_cb(uv_timer_t* t) {
  sr_image_t* img;
  int rc, status;

  if (g_need_set_image) {
    rc = sr_kit_open_image(g_kit, &img);
    if (rc != 0) {
      violation("sr_kit_open_image: %s", sr_err_name(rc));
    } else {
      rc = sr_uv_set_image(&g_h, img, g_h.epoch + 1);
      if (rc == 0) {
        sr_image_close(g_image);
        g_image = img;
        g_need_set_image = 0;
        g_invalid = 0;
        st.set_images++;
      } else {
        sr_image_close(img);
        if (rc == SR_EBUSY)
          st.set_image_busy++;
        else
          violation("sr_uv_set_image: %s", sr_err_name(rc));
      }
    }
  }
  if (g_draining) {
    if (!g_need_set_image)
      uv_timer_stop(t);
    return;
  }
  refill(4096);
  if (g_child > 0 && waitpid(g_child, &status, WNOHANG) == g_child) {
    violation("the child ended early (status %#x)", status);
    g_child_status = status;
    g_child = -1;
  }
  if (uv_now(&g_loop) >= g_next_report) {
    g_next_report = uv_now(&g_loop) + 10000;
    report("running");
  }
}

static void watchdog_cb(uv_timer_t* t) {
  (void)t;
  violation("the loop did not drain within 60 s (%u reads pending)",
            g_npending);
  sr_uv_close(&g_h, NULL); /* ends them with ECANCELED */
}

/* Stops the child, puts back every entry and root, lets the loop drain. */
static void deadline_cb(uv_timer_t* t) {
  size_t i;
  int s;
  uint64_t v;

  (void)t;
  g_draining = 1;
  __atomic_store_n(&g_sh->stop, 1, __ATOMIC_RELEASE);
  if (g_child > 0) {
    while (waitpid(g_child, &g_child_status, 0) < 0 && errno == EINTR) {
    }
    g_child = -1;
  }
  for (i = 0; i < g_ntr; i++)
    (void)sr_kit_write_phys(g_kit, g_tr[i].gpa, &g_tr[i].orig, 8);
  for (s = 0; s < NSPACE; s++)
    (void)sr_kit_write_phys(g_kit, g_cr3[s], g_root[s], PAGE);
  for (i = 0; i < g_ntr; i++)
    if (sr_kit_read_phys(g_kit, g_tr[i].gpa, &v, 8) != 0 || v != g_tr[i].orig)
      violation("entry at %#" PRIx64 " not restored", g_tr[i].gpa);
  report("draining");
  uv_timer_start(&g_watchdog, watchdog_cb, 60000, 0);
  uv_unref((uv_handle_t*)&g_watchdog);
}

/* libuv and the library set up some process-wide state once (libuv's
 * signal pipe, stdio buffers): do it before the baselines are taken. */
static void warm_up(void) {
  uv_loop_t loop;
  sr_kit_t* kit;
  sr_kit_opts_t ko;
  sr_image_t* img;
  sr_uv_t h;

  memset(&ko, 0, sizeof(ko));
  ko.size = 1 << 20;
  check(uv_loop_init(&loop), "uv_loop_init");
  check(sr_kit_create(&kit, &ko), "kit");
  check(sr_kit_open_image(kit, &img), "image");
  check(sr_uv_init(&loop, &h, img, NULL), "sr_uv_init");
  sr_uv_close(&h, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  check(uv_loop_close(&loop), "uv_loop_close");
  sr_image_close(img);
  sr_kit_destroy(kit);
}

static void close_cb(uv_handle_t* h) {
  (void)h;
}

/* glibc's per-thread cache keeps freed chunks counted as in use by
 * mallinfo2: run with it off (re-exec once with GLIBC_TUNABLES), unless
 * malloc is not glibc's (valgrind preloads its own). */
static void no_tcache(char** argv) {
  static const char tun[] = "glibc.malloc.tcache_count=0";
  const char* t = getenv("GLIBC_TUNABLES");
  const char* pre = getenv("LD_PRELOAD");
  char buf[1024];

  if ((t != NULL && strstr(t, tun) != NULL) ||
      (pre != NULL && strstr(pre, "vgpreload") != NULL) ||
      getenv("SOAK_EXECED") != NULL)
    return;
  snprintf(buf, sizeof(buf), "%s%s%s", t != NULL ? t : "", t != NULL ? ":" : "",
           tun);
  setenv("GLIBC_TUNABLES", buf, 1);
  setenv("SOAK_EXECED", "1", 1);
  execv("/proc/self/exe", argv);
  perror("soak: re-exec"); /* go on: the heap figure may be off */
}

int main(int argc, char** argv) {
  sr_allocator_t hook = {ca_alloc, ca_realloc, ca_free, &g_ca};
  sr_uv_opts_t uo;
  sr_swap_stats_t ss;
  sr_uv_stats_t us;
  struct mallinfo2 m0, m1;
  int fd0, fd1, rc;
  uint32_t i;
  size_t k;
  pid_t pid;

  (void)argc;
  no_tcache(argv);
  g_seconds = env_u64("SOAK_SECONDS", 60);
  g_target = env_u64("SOAK_READS", 100000);
  g_seed = env_u64("SR_SEED", (uint64_t)time(NULL) ^ (uint64_t)getpid());
  if (g_target == 0 || g_target > 10000000) {
    fprintf(stderr, "soak: SOAK_READS out of range\n");
    return 2;
  }
  g_rng = g_seed | 1;
  printf("soak: seed %" PRIu64 " (SR_SEED), %" PRIu64 " s, %" PRIu64
         " reads in flight\n",
         g_seed, g_seconds, g_target);
  printf(
      "soak: property: every read completes exactly once with a status "
      "that has a cause; status-0 bytes are the pattern; heap and fds "
      "come back\n");
  fflush(stdout);
  warm_up();
  fd0 = count_fds();
  m0 = mallinfo2();

  g_sh = mmap(NULL, sizeof(*g_sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (g_sh == MAP_FAILED) {
    perror("soak: mmap");
    return 1;
  }
  memset(g_sh, 0, sizeof(*g_sh));
  build_image();
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("soak: fork");
    return 1;
  }
  if (pid == 0)
    child_main();
  g_child = pid;

  g_nrd = (uint32_t)g_target + 16;
  g_rd = calloc(g_nrd, sizeof(*g_rd));
  g_pending = calloc(g_nrd, sizeof(*g_pending));
  if (g_rd == NULL || g_pending == NULL)
    check(SR_ENOMEM, "slots");
  for (i = g_nrd; i-- > 0;)
    slot_release(&g_rd[i]);
  check(sr_kit_open_image(g_kit, &g_image), "image");
  check(uv_loop_init(&g_loop), "uv_loop_init");
  memset(&uo, 0, sizeof(uo));
  uo.swap.walk.os = SR_OS_LINUX;
  uo.swap.walk.flags = SR_WALK_RESIDENT;
  uo.swap.walk.maxphyaddr = MAXPHY;
  uo.swap.allocator = &hook;
  check(sr_uv_init(&g_loop, &g_h, g_image, &uo), "sr_uv_init");
  g_t0 = uv_now(&g_loop);
  g_next_cancel_cr3 = g_t0 + (g_seconds < 3 ? 200 : 500);
  g_next_invalidate = g_t0 + (g_seconds < 5 ? g_seconds * 300 : 2500);
  g_next_report = g_t0 + 10000;
  uv_timer_init(&g_loop, &g_ctl);
  uv_timer_init(&g_loop, &g_deadline);
  uv_timer_init(&g_loop, &g_watchdog);
  uv_timer_start(&g_ctl, ctl_cb, 0, 5);
  uv_timer_start(&g_deadline, deadline_cb, g_seconds * 1000, 0);
  uv_run(&g_loop, UV_RUN_DEFAULT);

  /* Drained: nothing pending, every slot free. */
  if (g_npending != 0)
    violation("%u reads still pending after the loop drained", g_npending);
  for (i = 0; i < g_nrd; i++)
    if (g_rd[i].state != S_FREE)
      violation("slot %u not free at the end", i);
  if (st.pending_started != st.callbacks)
    violation("%" PRIu64 " pending reads, %" PRIu64 " callbacks",
              st.pending_started, st.callbacks);
  if (st.started != st.sync_ok + st.rejected + st.pending_started)
    violation("started %" PRIu64 " != sync %" PRIu64 " + rejected %" PRIu64
              " + pending %" PRIu64,
              st.started, st.sync_ok, st.rejected, st.pending_started);
  if (g_child_status == -1 || !WIFEXITED(g_child_status) ||
      WEXITSTATUS(g_child_status) != 0)
    violation("child status %#x", g_child_status);
  memset(&ss, 0, sizeof(ss));
  if (g_h.swap != NULL)
    sr_swap_stats(g_h.swap, &ss);
  sr_uv_stats(&g_h, &us);
  if (ss.pending != 0)
    violation("engine: %" PRIu64 " pending", ss.pending);
  sr_uv_close(&g_h, NULL);
  uv_close((uv_handle_t*)&g_ctl, close_cb);
  uv_close((uv_handle_t*)&g_deadline, close_cb);
  uv_close((uv_handle_t*)&g_watchdog, close_cb);
  uv_run(&g_loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&g_loop);
  if (rc != 0)
    violation("uv_loop_close: %s", uv_strerror(rc));
  if (g_ca.bytes != 0 || g_ca.blocks != 0)
    violation("engine allocator: %" PRIu64 " bytes in %" PRIu64 " blocks left",
              g_ca.bytes, g_ca.blocks);
  sr_image_close(g_image);
  sr_kit_destroy(g_kit);
  free(g_tr);
  free(g_rd);
  free(g_pending);

  printf("soak: reads started %" PRIu64 ": sync %" PRIu64 ", rejected %" PRIu64
         ", pending %" PRIu64 "; peak in flight %" PRIu64 "\n",
         st.started, st.sync_ok, st.rejected, st.pending_started,
         st.peak_inflight);
  printf("soak: callbacks %" PRIu64 " (exactly once each):", st.callbacks);
  for (k = 0; k <= NSTATUS; k++)
    if (st.cb[k] != 0)
      printf(" %s %" PRIu64, k < NSTATUS ? sr_err_name(status_list[k]) : "?",
             st.cb[k]);
  printf("\nsoak: rejected:");
  for (k = 0; k <= NSTATUS; k++)
    if (st.rej[k] != 0)
      printf(" %s %" PRIu64, k < NSTATUS ? sr_err_name(status_list[k]) : "?",
             st.rej[k]);
  printf("\nsoak: bytes verified %" PRIu64 "\n", st.bytes_verified);
  printf("soak: child: ops %" PRIu64 ", page-outs %" PRIu64
         ", page-ins %" PRIu64 ", garbage %" PRIu64 ", restarts %" PRIu64 "\n",
         g_sh->ops, g_sh->page_outs, g_sh->page_ins, g_sh->garbage,
         g_sh->restarts);
  printf("soak: parent: cancels %" PRIu64 ", self-cancels (EALREADY) %" PRIu64
         ", cancel_cr3 %" PRIu64 " calls / %" PRIu64
         " reads, EGONE by restart %" PRIu64 ", invalidations %" PRIu64
         " / %" PRIu64 " reads, set_image %" PRIu64 " (+%" PRIu64 " EBUSY)\n",
         st.cancels, st.cancel_self, st.cancel_cr3_calls, st.cancel_cr3_reads,
         st.gone_restart, st.invalidations, st.invalidated_reads, st.set_images,
         st.set_image_busy);
  printf("soak: engine: reads %" PRIu64 ", joined %" PRIu64 ", polls %" PRIu64
         ", entries re-read %" PRIu64 ", chunks copied %" PRIu64
         ", rejected by revalidation %" PRIu64 "; uv: ticks %" PRIu64
         ", restart checks %" PRIu64 ", spaces gone %" PRIu64 "\n",
         ss.reads, ss.joined, ss.polls, ss.entries_reread, ss.chunks_copied,
         ss.chunks_rejected, us.ticks, us.restart_checks, us.spaces_gone);
  printf("soak: engine allocator: peak %" PRIu64 " bytes, %" PRIu64
         " calls, %" PRIu64 " bytes at the end\n",
         g_ca.peak, g_ca.calls, g_ca.bytes);
  fflush(stdout);
  munmap(g_sh, sizeof(*g_sh));
  m1 = mallinfo2();
  fd1 = count_fds();
  if (m1.uordblks != m0.uordblks)
    violation("heap: %zu bytes in use at the start, %zu at the end",
              m0.uordblks, m1.uordblks);
  if (fd1 != fd0)
    violation("fds: %d open at the start, %d at the end", fd0, fd1);
  printf("soak: heap in use (mallinfo2) %zu -> %zu bytes; fds %d -> %d\n",
         m0.uordblks, m1.uordblks, fd0, fd1);
  printf("soak: %s (%" PRIu64 " violations)\n",
         st.violations == 0 ? "PASS" : "FAIL", st.violations);
  return st.violations == 0 ? 0 : 1;
}
