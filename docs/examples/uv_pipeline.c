/* Cookbook (b): a libuv pipeline issuing many reads.
 *
 * One uv_loop_t, one sr_uv_t poller handle over a guest image, and NREQ
 * sr_uv_read requests of random ranges of a process's buffer, a quarter of
 * whose pages are swapped out. Reads of present pages complete inside
 * sr_uv_read (return 0); the others return SR_PENDING and their callbacks
 * come from the loop once the data is back. Every tenth request asks for
 * SR_UV_ALWAYS_CALLBACK, so it always completes through its callback. A
 * uv timer on the same loop plays the guest: it pages the missing pages
 * back in a few at a time (through the holey-image kit) and stops when
 * none is left. uv_run then returns by itself — the handle's own timer
 * runs only while reads are pending — and the program closes the handle
 * and the loop. It checks that each read returned what the page state at
 * issue time says, that every pending read called back exactly once with
 * status 0, and every byte against sr_kit_pattern; it exits non-zero on
 * any difference.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swapread.h>

#define PAGE 4096u
#define NPAGES 256u /* the buffer the reads cover: 1 MiB */
#define BASE UINT64_C(0x7f5500000000)
#define SEED UINT64_C(0xc0ffee)
#define NREQ 1000
#define MAX_LEN (3u * PAGE)
#define SWAP_EVERY 4u         /* every 4th page starts out swapped */
#define PAGER_PERIOD_MS 2     /* the guest pages in ... */
#define PAGER_BATCH 4u        /* ... this many pages per tick */
#define READ_TIMEOUT_MS 10000 /* a bug fails the run, never hangs it */

typedef struct app_s app_t;

/* One request, its buffer and what happened to it. */
typedef struct slot_s {
  sr_uv_read_t req; /* req.data points back here */
  app_t* app;
  unsigned char* buf;
  uint64_t gva;
  size_t len;
  int rc;     /* what sr_uv_read returned */
  int ncb;    /* callbacks seen (must be 0 or 1) */
  int status; /* the callback's status */
} slot_t;

struct app_s {
  uv_loop_t loop;
  uv_timer_t pager;
  sr_uv_t handle;
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  bool swapped[NPAGES];
  unsigned next_page; /* the pager's position */
  unsigned paged_in;
  int nsync, npending, nalways, ncb, nbad, nclosed;
  bool issuing; /* inside sr_uv_read: no callback may run now */
  int early;    /* callbacks that ran inside sr_uv_read */
  slot_t slot[NREQ];
};

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static uint64_t xorshift(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static bool bytes_ok(const slot_t* s) {
  size_t i;

  for (i = 0; i < s->len; i++)
    if (s->buf[i] != sr_kit_pattern(SEED, s->gva + i))
      return false;
  return true;
}

/* Whether [gva, gva + len) touches a page that is swapped out now. */
static bool touches_swapped(const app_t* a, uint64_t gva, size_t len) {
  uint64_t p;

  for (p = (gva - BASE) / PAGE; p <= (gva + len - 1 - BASE) / PAGE; p++)
    if (a->swapped[p])
      return true;
  return false;
}

/* ---- the pipeline ------------------------------------------------------- */

static void on_read(sr_uv_read_t* req, int status) {
  slot_t* s = req->data;
  app_t* a = s->app;

  if (a->issuing)
    a->early++;
  a->ncb++;
  s->ncb++;
  s->status = status;
  if (status != 0 || !bytes_ok(s))
    a->nbad++;
}

static void on_close(sr_uv_t* handle) {
  app_t* a = handle->data;

  a->nclosed++;
}

/* The guest: pages PAGER_BATCH swapped pages back in per tick, then stops
 * (a stopped timer no longer keeps uv_run alive). */
static void on_pager(uv_timer_t* timer) {
  app_t* a = timer->data;
  unsigned n = 0;

  for (; a->next_page < NPAGES && n < PAGER_BATCH; a->next_page++) {
    if (!a->swapped[a->next_page])
      continue;
    CHECK(sr_kit_page_in(a->kit, a->cr3, BASE + (uint64_t)a->next_page * PAGE,
                         SR_LEVEL_PT) == 0);
    a->swapped[a->next_page] = false;
    a->paged_in++;
    n++;
  }
  if (a->next_page == NPAGES)
    uv_timer_stop(timer);
}

/* Starts NREQ reads of random ranges; checks each return value against
 * the page state. */
static void issue_reads(app_t* a) {
  sr_uv_read_opts_t o;
  uint64_t rng = 0x9e3779b97f4a7c15u;
  bool always, must_wait;
  int i;

  for (i = 0; i < NREQ; i++) {
    slot_t* s = &a->slot[i];

    s->app = a;
    s->req.data = s;
    s->len = 1 + (size_t)(xorshift(&rng) % MAX_LEN);
    s->gva = BASE + xorshift(&rng) % (NPAGES * PAGE - s->len + 1);
    s->buf = malloc(s->len);
    if (s->buf == NULL) {
      CHECK(s->buf != NULL);
      return;
    }
    memset(&o, 0, sizeof(o));
    always = i % 10 == 0;
    o.flags = always ? SR_UV_ALWAYS_CALLBACK : 0;
    a->nalways += always;
    o.timeout_ms = READ_TIMEOUT_MS;
    must_wait = touches_swapped(a, s->gva, s->len);

    a->issuing = true;
    s->rc = sr_uv_read(&a->handle, &s->req, a->cr3, s->gva, s->buf, s->len, &o,
                       on_read);
    a->issuing = false;

    CHECK(s->rc == (must_wait || always ? SR_PENDING : 0));
    if (s->rc == 0) {
      a->nsync++;
      CHECK(bytes_ok(s));
    } else if (s->rc == SR_PENDING) {
      a->npending++;
    }
  }
}

static int build_guest(app_t* a) {
  sr_kit_opts_t ko;
  sr_pte_info_t swp;
  unsigned p;
  int rc;

  memset(&ko, 0, sizeof(ko));
  ko.size = 16u << 20;
  if ((rc = sr_kit_create(&a->kit, &ko)) != 0 ||
      (rc = sr_kit_new_space(a->kit, SR_PAGING_4LEVEL, &a->cr3)) != 0 ||
      (rc = sr_kit_map(a->kit, a->cr3, BASE, NPAGES * PAGE, SR_PAGE_4K,
                       SR_PROT_W | SR_PROT_U)) != 0 ||
      (rc = sr_kit_fill(a->kit, a->cr3, BASE, NPAGES * PAGE, SEED)) != 0)
    return rc;
  memset(&swp, 0, sizeof(swp));
  swp.kind = SR_PTE_LINUX_SWAP;
  for (p = 0; p < NPAGES; p += SWAP_EVERY) {
    swp.swap_offset = 0x100 + p;
    rc = sr_kit_page_out(a->kit, a->cr3, BASE + (uint64_t)p * PAGE, SR_LEVEL_PT,
                         &swp);
    if (rc != 0)
      return rc;
    a->swapped[p] = true;
  }
  return sr_kit_open_image(a->kit, &a->image);
}

int main(void) {
  app_t* a = calloc(1, sizeof(*a));
  sr_uv_stats_t st;
  bool handle_open = false;
  int rc;
  int i;

  if (a == NULL)
    return 1;
  if ((rc = build_guest(a)) != 0) {
    fprintf(stderr, "guest: %s\n", sr_strerror(rc));
    failures++;
    goto out;
  }
  if ((rc = uv_loop_init(&a->loop)) != 0) {
    fprintf(stderr, "uv_loop_init: %s\n", uv_strerror(rc));
    failures++;
    goto out;
  }
  CHECK(uv_timer_init(&a->loop, &a->pager) == 0);
  a->pager.data = a;
  rc = sr_uv_init(&a->loop, &a->handle, a->image, NULL);
  if (rc != 0) {
    fprintf(stderr, "sr_uv_init: %s\n", sr_strerror(rc));
    failures++;
    goto close_loop;
  }
  handle_open = true;
  a->handle.data = a;

  issue_reads(a);
  printf(
      "uv_pipeline: %d reads: %d completed at once, %d pending "
      "(%d of them SR_UV_ALWAYS_CALLBACK)\n",
      NREQ, a->nsync, a->npending, a->nalways);
  CHECK(a->nsync + a->npending == NREQ);
  CHECK(a->ncb == 0); /* no callback on the caller's stack */

  CHECK(uv_timer_start(&a->pager, on_pager, PAGER_PERIOD_MS, PAGER_PERIOD_MS) ==
        0);
  /* Returns by itself once the pager stopped and the last read called
   * back: the handle's timer runs only while reads are pending. */
  CHECK(uv_run(&a->loop, UV_RUN_DEFAULT) == 0);

  sr_uv_stats(&a->handle, &st);
  printf(
      "uv_run returned: %d callbacks, %d bad, %u pages paged in, "
      "%" PRIu64 " poller ticks\n",
      a->ncb, a->nbad, a->paged_in, st.ticks);
  CHECK(a->ncb == a->npending);
  CHECK(a->nbad == 0);
  CHECK(a->early == 0);
  CHECK(a->paged_in == NPAGES / SWAP_EVERY);
  CHECK(st.ticks > 0);
  for (i = 0; i < NREQ; i++) {
    const slot_t* s = &a->slot[i];

    CHECK(s->ncb == (s->rc == SR_PENDING ? 1 : 0));
    if (s->ncb == 1)
      CHECK(s->status == 0 && s->req.status == 0);
  }

close_loop:
  if (handle_open)
    sr_uv_close(&a->handle, on_close);
  uv_close((uv_handle_t*)&a->pager, NULL);
  CHECK(uv_run(&a->loop, UV_RUN_DEFAULT) == 0);
  CHECK(a->nclosed == (handle_open ? 1 : 0));
  CHECK(a->ncb == a->npending); /* closing ended nothing more */
  CHECK(uv_loop_close(&a->loop) == 0);
  printf("handle and loop closed\n");

out:
  for (i = 0; i < NREQ; i++)
    free(a->slot[i].buf);
  sr_image_close(a->image);
  sr_kit_destroy(a->kit);
  free(a);
  if (failures != 0)
    fprintf(stderr, "uv_pipeline: %d check(s) failed\n", failures);
  return failures == 0 ? 0 : 1;
}
