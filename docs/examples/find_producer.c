/* Cookbook (a): find a producer's shared region in another process's user
 * address space, tolerating paged-out pages.
 *
 * The consumer knows only the format of the region: a header page
 * {magic, version, size, head, tail, heartbeat, checksum} followed by a
 * ring. It scans the address space for writable user runs of at least
 * MIN_REGION bytes (sr_regions with SR_REGIONS_MERGE_PAGED, so a run with
 * swapped-out pages still counts), validates each candidate's header by
 * invariants, proves the producer alive with a two-phase heartbeat (read,
 * wait, read again), then reads the whole ring with the swap engine, which
 * stays pending while ring pages are swapped out. The holey-image kit plays
 * the producer: it builds the address space (two decoys, a dead copy of the
 * region and the live one with three ring pages swapped out), bumps the
 * heartbeat and pages the ring back in as a fake clock advances. The
 * program checks what the consumer found against what the kit built and
 * exits non-zero on any difference.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swapread.h>

#define PAGE 4096u
#define MS UINT64_C(1000000) /* nanoseconds */
#define USER_RW (SR_PROT_W | SR_PROT_U)

/* ---- the shared-region format: what producer and consumer agree on ---- */

#define RING_MAGIC UINT32_C(0x474e4952) /* "RING" */
#define RING_VERSION 2u

typedef struct ring_header_s {
  uint32_t magic;
  uint32_t version;
  uint64_t size;      /* bytes of the region: this header page + the ring */
  uint64_t head;      /* producer's write offset in the ring */
  uint64_t tail;      /* consumer's read offset in the ring */
  uint64_t heartbeat; /* bumped by the producer while it lives */
  uint64_t checksum;  /* of magic, version and size (the fixed fields) */
} ring_header_t;

/* FNV-1a over the fields that never change. head, tail and heartbeat move
 * while a consumer reads, so they are checked by bounds and by the
 * heartbeat protocol instead. */
static uint64_t header_checksum(const ring_header_t* h) {
  uint64_t v[3] = {h->magic, h->version, h->size};
  const unsigned char* p = (const unsigned char*)v;
  uint64_t x = UINT64_C(0xcbf29ce484222325);
  size_t i;

  for (i = 0; i < sizeof(v); i++)
    x = (x ^ p[i]) * UINT64_C(0x100000001b3);
  return x;
}

/* ---- the producer's side, played by the holey-image kit ---------------- */

#define REGION_PAGES 16u /* header page + 15 ring pages */
#define REGION_BYTES (REGION_PAGES * PAGE)
#define TEXT_GVA UINT64_C(0x400000)           /* read-only: not a candidate */
#define HEAP_GVA UINT64_C(0x600000)           /* RW but too small */
#define JUNK_GVA UINT64_C(0x7f3a00000000)     /* RW, big, no header */
#define DEAD_GVA UINT64_C(0x7f3a00100000)     /* a valid header, no producer */
#define LIVE_GVA UINT64_C(0x7f3a00200000)     /* the producer's region */
#define KERN_GVA UINT64_C(0xffff888000000000) /* RW, supervisor only */
#define RING_SEED 7u
#define NSWAPPED 3
#define BEAT_PERIOD_NS (50 * MS)

/* Ring pages (of the live region) swapped out at the start, and when the
 * producer touches each one again (fake time since the start). */
static const unsigned swapped_page[NSWAPPED] = {3, 4, 9};
static const uint64_t page_in_at_ns[NSWAPPED] = {150 * MS, 600 * MS, 700 * MS};

typedef struct world_s {
  sr_kit_t* kit;
  uint64_t cr3;
  uint64_t start_ns, now_ns; /* the fake clock */
  uint64_t next_beat_ns;
  uint64_t beat;
  bool paged_in[NSWAPPED];
  int err; /* first kit error while the producer ran */
} world_t;

static int write_header(world_t* w, uint64_t gva, uint64_t beat) {
  ring_header_t h;

  memset(&h, 0, sizeof(h));
  h.magic = RING_MAGIC;
  h.version = RING_VERSION;
  h.size = REGION_BYTES;
  h.head = 0x1230;
  h.tail = 0x0100;
  h.heartbeat = beat;
  h.checksum = header_checksum(&h);
  return sr_kit_write_va(w->kit, w->cr3, gva, &h, sizeof(h));
}

/* Builds the producer's address space. Returns 0 or the first kit error. */
static int producer_build(world_t* w) {
  sr_pte_info_t swp;
  uint64_t junk_seed = 99;
  int rc;
  int i;

  if ((rc = sr_kit_new_space(w->kit, SR_PAGING_4LEVEL, &w->cr3)) != 0 ||
      (rc = sr_kit_map(w->kit, w->cr3, TEXT_GVA, 4 * PAGE, SR_PAGE_4K,
                       SR_PROT_U)) != 0 ||
      (rc = sr_kit_map(w->kit, w->cr3, HEAP_GVA, 2 * PAGE, SR_PAGE_4K,
                       USER_RW)) != 0 ||
      (rc = sr_kit_map(w->kit, w->cr3, JUNK_GVA, REGION_BYTES, SR_PAGE_4K,
                       USER_RW)) != 0 ||
      (rc = sr_kit_fill(w->kit, w->cr3, JUNK_GVA, REGION_BYTES, junk_seed)) !=
          0 ||
      (rc = sr_kit_map(w->kit, w->cr3, DEAD_GVA, REGION_BYTES, SR_PAGE_4K,
                       USER_RW)) != 0 ||
      (rc = write_header(w, DEAD_GVA, 41)) != 0 ||
      (rc = sr_kit_map(w->kit, w->cr3, LIVE_GVA, REGION_BYTES, SR_PAGE_4K,
                       USER_RW)) != 0 ||
      (rc = sr_kit_fill(w->kit, w->cr3, LIVE_GVA + PAGE, REGION_BYTES - PAGE,
                        RING_SEED)) != 0 ||
      (rc = write_header(w, LIVE_GVA, w->beat)) != 0 ||
      (rc = sr_kit_map(w->kit, w->cr3, KERN_GVA, REGION_BYTES, SR_PAGE_4K,
                       SR_PROT_W)) != 0)
    return rc;

  /* Linux swapped three ring pages out: their PTEs become swap entries. */
  memset(&swp, 0, sizeof(swp));
  swp.kind = SR_PTE_LINUX_SWAP;
  for (i = 0; i < NSWAPPED; i++) {
    swp.swap_offset = 0x2000 + (uint64_t)i;
    rc = sr_kit_page_out(w->kit, w->cr3,
                         LIVE_GVA + (uint64_t)swapped_page[i] * PAGE,
                         SR_LEVEL_PT, &swp);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* Advances the fake clock; the producer bumps its heartbeat every
 * BEAT_PERIOD_NS and touches its swapped pages again on schedule. */
static void producer_advance(world_t* w, uint64_t ns) {
  uint64_t off = offsetof(ring_header_t, heartbeat);
  int rc;
  int i;

  w->now_ns += ns;
  while (w->now_ns >= w->next_beat_ns) {
    w->beat++;
    w->next_beat_ns += BEAT_PERIOD_NS;
    rc = sr_kit_write_va(w->kit, w->cr3, LIVE_GVA + off, &w->beat,
                         sizeof(w->beat));
    if (rc != 0 && w->err == 0)
      w->err = rc;
  }
  for (i = 0; i < NSWAPPED; i++) {
    if (w->paged_in[i] || w->now_ns - w->start_ns < page_in_at_ns[i])
      continue;
    rc = sr_kit_page_in(w->kit, w->cr3,
                        LIVE_GVA + (uint64_t)swapped_page[i] * PAGE,
                        SR_LEVEL_PT);
    if (rc != 0 && w->err == 0)
      w->err = rc;
    w->paged_in[i] = true;
  }
}

/* ---- the consumer: what you would write --------------------------------- */

#define MIN_REGION (32u * 1024u)
#define USER_TOP (UINT64_C(1) << 47) /* end of the 4-level user half */
#define MAX_CANDIDATES 8
#define HEARTBEAT_WAIT_MS 200
#define RING_TIMEOUT_MS 5000
#define POLL_STEP_MS 10

typedef struct consumer_s {
  sr_image_t* image; /* read-only view of guest RAM */
  sr_swap_t* swap;   /* engine for the reads that may wait */
  uint64_t cr3;      /* the producer process's address space */
  world_t* world;    /* only the clock: in real life, now() and sleep() */
} consumer_t;

typedef struct scan_s {
  sr_region_t cand[MAX_CANDIDATES];
  int ncand;
  int nregions;
} scan_t;

/* Keeps user regions that are writable and at least MIN_REGION long. */
static int scan_cb(const sr_region_t* r, void* arg) {
  scan_t* s = arg;

  s->nregions++;
  if ((r->prot & USER_RW) != USER_RW || r->hi - r->lo < MIN_REGION)
    return 0;
  if (s->ncand == MAX_CANDIDATES)
    return 1; /* enough: stop the walk */
  s->cand[s->ncand++] = *r;
  return 0;
}

/* Reads the header at gva now (one page, no waiting): translate, then read
 * the guest-physical bytes. SR_ENOTPRESENT means "paged out: try later". */
static int read_header(const consumer_t* c, uint64_t gva, ring_header_t* h) {
  sr_translation_t t;
  int rc;

  rc = sr_translate(c->image, c->cr3, gva, NULL, &t);
  if (rc != 0)
    return rc;
  return sr_image_read(c->image, t.gpa, h, sizeof(*h), NULL);
}

/* NULL if the header satisfies every invariant, else the first it breaks. */
static const char* header_invalid(const ring_header_t* h,
                                  const sr_region_t* r) {
  if (h->magic != RING_MAGIC)
    return "bad magic";
  if (h->version != RING_VERSION)
    return "unknown version";
  if (h->size < 2 * PAGE || h->size % PAGE != 0 || h->size > r->hi - r->lo)
    return "size does not fit the region";
  if (h->head >= h->size - PAGE || h->tail >= h->size - PAGE)
    return "head or tail outside the ring";
  if (h->checksum != header_checksum(h))
    return "bad checksum";
  return NULL;
}

/* Waits up to ms (fake time), polling the engine every POLL_STEP_MS, until
 * *flag is set (flag may be NULL: wait the whole time). */
static void wait_ms(consumer_t* c, uint64_t ms, const bool* flag) {
  uint64_t waited;

  for (waited = 0; waited < ms; waited += POLL_STEP_MS) {
    if (flag != NULL && *flag)
      return;
    producer_advance(c->world, POLL_STEP_MS * MS);
    (void)sr_swap_poll(c->swap, c->world->now_ns, NULL);
  }
}

typedef struct ring_read_s {
  bool done;
  int status;
  uint32_t flags;
  uint32_t kinds;
} ring_read_t;

static void on_ring(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  ring_read_t* rr = data;

  (void)swap;
  rr->done = true;
  rr->status = done->status;
  rr->flags = done->flags;
  rr->kinds = done->kinds_seen;
}

/* The two-phase heartbeat: read it, wait, read the header again; the
 * producer is alive if the header is still valid and the beat advanced. */
static bool producer_alive(consumer_t* c, const sr_region_t* r, uint64_t* b1,
                           uint64_t* b2) {
  ring_header_t h;

  if (read_header(c, r->lo, &h) != 0)
    return false;
  *b1 = h.heartbeat;
  wait_ms(c, HEARTBEAT_WAIT_MS, NULL);
  if (read_header(c, r->lo, &h) != 0 || header_invalid(&h, r) != NULL)
    return false;
  *b2 = h.heartbeat;
  return (int64_t)(*b2 - *b1) > 0;
}

/* Returns the start of the live producer's region, or 0 if none. */
static uint64_t find_producer(consumer_t* c, scan_t* s) {
  ring_header_t h;
  const char* why;
  uint64_t b1 = 0, b2 = 0;
  int rc;
  int i;

  memset(s, 0, sizeof(*s));
  rc = sr_regions(c->image, c->cr3, 0, USER_TOP, NULL, SR_REGIONS_MERGE_PAGED,
                  scan_cb, s);
  if (rc < 0) {
    fprintf(stderr, "sr_regions: %s\n", sr_strerror(rc));
    return 0;
  }
  printf("scan: %d user regions, %d candidates (RW, >= %u KiB)\n", s->nregions,
         s->ncand, MIN_REGION / 1024);
  for (i = 0; i < s->ncand; i++) {
    const sr_region_t* r = &s->cand[i];

    printf("  %#" PRIx64 " %3" PRIu64 " KiB, %2" PRIu64 " KiB present: ", r->lo,
           (r->hi - r->lo) / 1024, r->present_bytes / 1024);
    rc = read_header(c, r->lo, &h);
    if (rc != 0) {
      printf("header unreadable (%s), skipped\n", sr_err_name(rc));
      continue;
    }
    if ((why = header_invalid(&h, r)) != NULL) {
      printf("%s\n", why);
      continue;
    }
    if (!producer_alive(c, r, &b1, &b2)) {
      printf("heartbeat %" PRIu64 " -> %" PRIu64 ": not alive\n", b1, b2);
      continue;
    }
    printf("heartbeat %" PRIu64 " -> %" PRIu64 ": the producer\n", b1, b2);
    return r->lo;
  }
  return 0;
}

/* Reads the ring behind the header at gva into buf (size - PAGE bytes),
 * waiting for swapped-out pages. Returns the read's status. */
static int read_ring(consumer_t* c, uint64_t gva, uint64_t size, void* buf,
                     ring_read_t* rr, int* started) {
  sr_swap_req_t req;
  sr_swap_done_t sync;

  memset(&req, 0, sizeof(req));
  req.cr3 = c->cr3;
  req.gva = gva + PAGE;
  req.buf = buf;
  req.len = size - PAGE;
  req.timeout_ns = RING_TIMEOUT_MS * MS;
  *started = sr_swap_read(c->swap, &req, c->world->now_ns, on_ring, rr, NULL,
                          NULL, &sync);
  if (*started == 0)
    return 0; /* every page was present: no callback will come */
  if (*started != SR_PENDING)
    return *started; /* rejected: a permanent error */
  wait_ms(c, RING_TIMEOUT_MS + POLL_STEP_MS, &rr->done);
  return rr->done ? rr->status : SR_ETIMEDOUT;
}

/* ---- the program: run the consumer against the kit's producer ----------- */

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

int main(void) {
  sr_kit_opts_t ko;
  world_t w;
  consumer_t c;
  scan_t s;
  ring_read_t rr;
  sr_swap_stats_t st;
  unsigned char* ring = NULL;
  uint64_t found, t0, i;
  bool pending_expected;
  size_t bad = 0;
  int started = 0;
  int rc;
  int k;

  memset(&w, 0, sizeof(w));
  memset(&c, 0, sizeof(c));
  memset(&rr, 0, sizeof(rr));
  memset(&ko, 0, sizeof(ko));
  ko.size = 16u << 20;
  w.start_ns = w.now_ns = 1000 * MS;
  w.next_beat_ns = w.start_ns + BEAT_PERIOD_NS;
  w.beat = 1000;
  if ((rc = sr_kit_create(&w.kit, &ko)) != 0 ||
      (rc = producer_build(&w)) != 0 ||
      (rc = sr_kit_open_image(w.kit, &c.image)) != 0 ||
      (rc = sr_swap_new(&c.swap, c.image, NULL)) != 0) {
    fprintf(stderr, "setup: %s\n", sr_strerror(rc));
    failures++;
    goto out;
  }
  c.cr3 = w.cr3;
  c.world = &w;

  found = find_producer(&c, &s);
  /* Expected from the build: text is read-only, heap too small, the
   * kernel region supervisor-only; junk, dead and live are candidates. */
  CHECK(s.nregions == 5);
  CHECK(s.ncand == 3);
  CHECK(s.ncand >= 1 && s.cand[0].lo == JUNK_GVA);
  CHECK(s.ncand >= 2 && s.cand[1].lo == DEAD_GVA);
  CHECK(s.ncand >= 3 && s.cand[2].lo == LIVE_GVA &&
        s.cand[2].hi == LIVE_GVA + REGION_BYTES &&
        s.cand[2].state == SR_RUN_MIXED &&
        s.cand[2].present_bytes == REGION_BYTES - NSWAPPED * PAGE &&
        (s.cand[2].kinds & (1u << SR_PTE_LINUX_SWAP)) != 0);
  CHECK(found == LIVE_GVA);
  if (found == 0)
    goto out;

  /* Which swapped pages are still out now decides whether the ring read
   * must wait (the producer's schedule, not the library, says so). */
  pending_expected = false;
  for (k = 0; k < NSWAPPED; k++)
    pending_expected |= !w.paged_in[k];
  ring = malloc(REGION_BYTES - PAGE);
  CHECK(ring != NULL);
  if (ring == NULL)
    goto out;
  t0 = w.now_ns;
  rc = read_ring(&c, found, REGION_BYTES, ring, &rr, &started);
  printf("ring: %u bytes, sr_swap_read -> %s, completed %s after %" PRIu64
         " ms%s\n",
         REGION_BYTES - PAGE, started == SR_PENDING ? "SR_PENDING" : "0",
         rc == 0 ? "ok" : sr_err_name(rc), (w.now_ns - t0) / MS,
         (rr.kinds & (1u << SR_PTE_LINUX_SWAP)) ? " (waited on swap entries)"
                                                : "");
  CHECK(rc == 0);
  CHECK(started == (pending_expected ? SR_PENDING : 0));
  if (pending_expected) {
    CHECK(rr.done && (rr.flags & SR_DONE_ASYNC) != 0);
    CHECK((rr.kinds & (1u << SR_PTE_LINUX_SWAP)) != 0);
  }
  for (i = 0; i < REGION_BYTES - PAGE; i++)
    bad += ring[i] != sr_kit_pattern(RING_SEED, found + PAGE + i);
  CHECK(bad == 0);
  printf("ring bytes: %s\n", bad == 0 ? "all verified" : "MISMATCH");

  sr_swap_stats(c.swap, &st);
  CHECK(st.pending == 0 && st.watched_entries == 0);
  CHECK(st.done_ok == (pending_expected ? 1u : 0u));
  CHECK(w.err == 0);

out:
  sr_swap_free(c.swap); /* first: a read still pending writes to ring */
  free(ring);
  sr_image_close(c.image);
  sr_kit_destroy(w.kit);
  if (failures != 0)
    fprintf(stderr, "find_producer: %d check(s) failed\n", failures);
  return failures == 0 ? 0 : 1;
}
