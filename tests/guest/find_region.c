/* Region discovery against a real guest, through the installed-style public
 * API only (<swapread.h>, linked with libswapread.a): the consumer of the
 * cookbook's find_producer.c, pointed at a live guest's RAM file instead of
 * a kit image. It scans the user half of the address space under CR3 with
 * sr_regions(SR_REGIONS_MERGE_PAGED) for writable user runs of at least
 * MIN bytes, validates each candidate's first page against guestprog's
 * header (magic, npages matching the run), reads it synchronously, then
 * reads the whole region with the swap engine, which stays pending while
 * pages are swapped out, polling on the real clock. The test driver
 * (tests/guest/check.py) touches the pages once "pending" is printed.
 *
 * usage: find_region IMAGE CR3 MIN_BYTES TIMEOUT_MS
 * stdout, one line each: "scan REGIONS CANDIDATES", "found LO HI STATE
 * PRESENT_BYTES KINDS SEED NPAGES PID", "pending CHUNKS" (or "complete"),
 * then "done STATUS BAD_WORDS MS". Exit 0 when the region was found and
 * read with every word matching the pattern, 1 otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swapread.h>

#define PAGE 4096u
#define MAGIC UINT64_C(0x3154534744525753) /* guestprog's "SWRDGST1" */
#define USER_TOP (UINT64_C(1) << 47)
#define USER_RW (SR_PROT_W | SR_PROT_U)
#define MAX_CAND 64

typedef struct scan_s {
  uint64_t min;
  sr_region_t cand[MAX_CAND];
  int ncand, nregions;
} scan_t;

static int scan_cb(const sr_region_t* r, void* arg) {
  scan_t* s = arg;

  s->nregions++;
  if ((r->prot & USER_RW) != USER_RW || r->hi - r->lo < s->min)
    return 0;
  if (s->ncand < MAX_CAND)
    s->cand[s->ncand++] = *r;
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct done_s {
  int fired, status;
} done_t;

static void on_done(sr_swap_t* swap, const sr_swap_done_t* d, void* data) {
  done_t* r = data;

  (void)swap;
  r->fired = 1;
  r->status = d->status;
}

static const char* state_name(sr_run_state_t s) {
  return s == SR_RUN_PRESENT ? "present" : s == SR_RUN_PAGED ? "paged"
                                                             : "mixed";
}

int main(int argc, char** argv) {
  sr_image_t* img = NULL;
  sr_swap_t* swap = NULL;
  sr_swap_req_t req;
  sr_swap_done_t sync;
  sr_translation_t t;
  uint64_t hdr[4], cr3, timeout_ms, t0, i, bad = 0;
  uint64_t* buf = NULL;
  const sr_region_t* r = NULL;
  done_t done = {0, 0};
  scan_t s;
  int rc, k, status = -1;

  if (argc != 5) {
    fprintf(stderr, "usage: find_region IMAGE CR3 MIN_BYTES TIMEOUT_MS\n");
    return 2;
  }
  memset(&s, 0, sizeof(s));
  cr3 = strtoull(argv[2], NULL, 0);
  s.min = strtoull(argv[3], NULL, 0);
  timeout_ms = strtoull(argv[4], NULL, 0);
  if ((rc = sr_image_open(&img, argv[1], NULL)) != 0) {
    fprintf(stderr, "find_region: %s: %s\n", argv[1], sr_strerror(rc));
    return 1;
  }
  rc = sr_regions(img, cr3, 0, USER_TOP, NULL, SR_REGIONS_MERGE_PAGED,
                  scan_cb, &s);
  if (rc < 0) {
    fprintf(stderr, "find_region: sr_regions: %s\n", sr_strerror(rc));
    goto out;
  }
  printf("scan %d %d\n", s.nregions, s.ncand);
  for (k = 0; k < s.ncand && r == NULL; k++) {
    /* The header page must be present to identify the region. */
    if (sr_translate(img, cr3, s.cand[k].lo, NULL, &t) != 0 ||
        sr_image_read(img, t.gpa, hdr, sizeof(hdr), NULL) != 0)
      continue;
    if (hdr[0] == MAGIC && hdr[2] * PAGE == s.cand[k].hi - s.cand[k].lo)
      r = &s.cand[k];
  }
  if (r == NULL) {
    printf("notfound\n");
    goto out;
  }
  printf("found 0x%" PRIx64 " 0x%" PRIx64 " %s %" PRIu64 " 0x%" PRIx32
         " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
         r->lo, r->hi, state_name(r->state), r->present_bytes, r->kinds,
         hdr[1], hdr[2], hdr[3]);
  fflush(stdout);

  if ((rc = sr_swap_new(&swap, img, NULL)) != 0 ||
      (buf = malloc(r->hi - r->lo)) == NULL) {
    fprintf(stderr, "find_region: setup: %s\n", sr_strerror(rc));
    goto out;
  }
  memset(&req, 0, sizeof(req));
  req.cr3 = cr3;
  req.gva = r->lo;
  req.buf = buf;
  req.len = r->hi - r->lo;
  req.timeout_ns = timeout_ms * 1000000u;
  t0 = now_ns();
  rc = sr_swap_read(swap, &req, t0, on_done, &done, NULL, NULL, &sync);
  if (rc == SR_PENDING) {
    sr_swap_stats_t st;

    sr_swap_stats(swap, &st);
    printf("pending %" PRIu64 "\n", (uint64_t)st.pending_chunks);
    fflush(stdout);
    while (!done.fired) {
      struct timespec ts = {0, 10 * 1000000};

      nanosleep(&ts, NULL);
      (void)sr_swap_poll(swap, now_ns(), NULL);
    }
    status = done.status;
  } else {
    printf("complete\n");
    status = rc;
  }
  if (status == 0) {
    for (i = 8; i < req.len / 8; i++)
      bad += buf[i] != r->lo + i * 8 + (hdr[1] << 48);
    bad += buf[0] != MAGIC;
  }
  printf("done %s %" PRIu64 " %" PRIu64 "\n",
         status == 0 ? "OK" : sr_err_name(status), bad,
         (now_ns() - t0) / 1000000u);
  {
    sr_swap_stats_t st;

    sr_swap_stats(swap, &st);
    fprintf(stderr,
            "stats polls %" PRIu64 " entries_reread %" PRIu64
            " chunks_copied %" PRIu64 " chunks_rejected %" PRIu64
            " pending_chunks %" PRIu64 " watched %" PRIu64 "\n",
            st.polls, st.entries_reread, st.chunks_copied, st.chunks_rejected,
            st.pending_chunks, st.watched_entries);
  }

out:
  sr_swap_free(swap);
  free(buf);
  sr_image_close(img);
  return r != NULL && status == 0 && bad == 0 ? 0 : 1;
}
