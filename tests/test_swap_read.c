/* sr_swap_read: synchronous completion, pending reads and their first
 * completion, rejections (bad arguments, permanent failures at read time)
 * and permanent failures met later, 2 MiB and 1 GiB pages, the bytes and
 * the output fields (gpa, flags, kinds_seen), the kernel CR3, stats, dump
 * and allocation failures. Expectations come from what each test built
 * with the kit (pattern seeds, frames, entries), never from the engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include <cmocka.h>

#include "support/swap_asserts.h"

#define VA SWAPFX_VA
#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define RWU (SR_PROT_W | SR_PROT_U)
#define SEED 0x5eed0001u

#define setup swapfx_setup
#define teardown swapfx_teardown

/* Re-creates the engine of fx with opts. */
static void engine_with(swapfx_t* fx, const sr_swap_opts_t* opts) {
  assert_int_equal(swapfx_reopen(fx, opts), 0);
}

static void assert_bytes(const swapfx_rec_t* rec, uint64_t seed) {
  assert_true(swapfx_mismatch(rec->buf, rec->gva, rec->len, seed) == SIZE_MAX);
}

static void assert_untouched(const swapfx_rec_t* rec) {
  assert_int_equal(rec->ncb, 0);
  assert_int_equal(rec->ndtor, 0);
  assert_int_equal(swapfx_violations(rec), 0);
}

/* ---- synchronous and pending ---------------------------------------- */

static void test_read_all_present_completes_sync(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  sr_swap_stats_t st;
  uint64_t frame;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 4 * K4, K4, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA, 1);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 100, 3 * K4, 0, 0), 0);
  assert_bytes(r, SEED);
  assert_int_equal(r->sync.status, 0);
  assert_false(r->sync.flags & SR_DONE_ASYNC);
  assert_false(r->sync.flags & SR_DONE_PARTIAL);
  assert_int_equal(r->sync.gpa, frame + 100);
  /* no callback, now or later */
  fx->now += 1000;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);
  st = swapfx_stats(fx);
  assert_int_equal(st.reads, 1);
  assert_int_equal(st.sync_completions, 1);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.rejected, 0);
}

static void test_read_sync_without_sync_out(void** state) {
  swapfx_t* fx = *state;
  sr_swap_req_t req;
  uint8_t* buf = swapfx_buf(fx, 5000);
  swapfx_rec_t* r = swapfx_rec(fx);
  assert_non_null(buf);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  memset(&req, 0, sizeof(req));
  req.cr3 = fx->cr3;
  req.gva = VA + 7;
  req.buf = buf;
  req.len = 5000;
  /* handle and sync may be NULL for a read that completes at once */
  assert_int_equal(sr_swap_read(fx->swap, &req, fx->now, swapfx_cb, r,
                                swapfx_dtor, NULL, NULL),
                   0);
  assert_true(swapfx_mismatch(buf, VA + 7, 5000, SEED) == SIZE_MAX);
  assert_untouched(r);
}

/* A read inside one chunk completes before any transaction exists: with
 * every allocation of the engine failing it still completes, allocates
 * nothing, and reports what a transaction would (status, flags, GPA, one
 * chunk, no kinds, no fail_gva; the stats of one synchronous read); NX and
 * 2M leaves too. A chunk that is not present still goes pending. */
static void test_read_one_chunk_needs_no_transaction(void** state) {
  swapfx_t* fx = *state;
  swapfx_alloc_t* a = calloc(1, sizeof(*a));
  sr_swap_opts_t opts;
  swapfx_rec_t* r;
  sr_swap_stats_t st;
  sr_swap_done_t want;
  uint64_t frame, big;

  assert_non_null(a);
  fx->user = a; /* freed by the fixture after the engine */
  swapfx_alloc_init(a);
  memset(&opts, 0, sizeof(opts));
  opts.allocator = &a->hook;
  engine_with(fx, &opts);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  assert_int_equal(
      swapfx_map(fx, fx->cr3, VA + M2, K4, K4, RWU | SR_PROT_NX, SEED), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA + 2 * M2, M2, M2, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA + K4, 1);
  big = swapfx_frame(fx, fx->cr3, VA + 2 * M2, 2);

  a->fail_all = true;
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + K4 + 8, 8, 0, 0), 0);
  assert_bytes(r, SEED);
  /* *sync as the transaction path fills it */
  memset(&want, 0, sizeof(want));
  want.cr3 = fx->cr3;
  want.gva = VA + K4 + 8;
  want.buf = r->buf;
  want.len = 8;
  want.gpa = frame + 8;
  want.nchunks = 1;
  assert_memory_equal(&r->sync, &want, sizeof(want));
  assert_int_equal(a->failed, 0);
  /* one read, synchronous, one chunk copied, nothing else */
  st = swapfx_stats(fx);
  assert_true(st.reads == 1 && st.sync_completions == 1 &&
              st.chunks_copied == 1 && st.rejected == 0 && st.pending == 0);

  /* a whole chunk, NX; a piece of a 2M leaf */
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + M2, K4, 0, 0), 0);
  assert_bytes(r, SEED);
  assert_int_equal(r->sync.flags, SR_DONE_NX);
  assert_int_equal(
      swapfx_read_new(fx, &r, fx->cr3, VA + 2 * M2 + 5 * K4 + 3, 100, 0, 0), 0);
  assert_bytes(r, SEED);
  assert_int_equal(r->sync.gpa, big + 5 * K4 + 3);
  assert_int_equal(a->failed, 0);
  assert_int_equal(swapfx_stats(fx).sync_completions, 3);

  /* not present: the transaction path, which now needs memory */
  a->fail_all = false;
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 7), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 8, 8, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).pending, 1);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, 0);
  assert_bytes(r, SEED);
}

static void test_read_partly_present_pending_then_page_in(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  sr_swap_stats_t st;
  uint64_t frame;
  size_t off, n;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 4 * K4, K4, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA, 1);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 2 * K4, 1, 77), 0);
  assert_int_equal(
      swapfx_read_new(fx, &r, fx->cr3, VA + 100, 4 * K4 - 200, 0, 0),
      SR_PENDING);
  assert_true(r->handle.id != 0);
  assert_untouched(r);
  /* present chunks (0, 1, 3) are in the buffer already */
  for (size_t i = 0; i < 4; i++) {
    if (i == 2)
      continue;
    swapfx_chunk(r->gva, r->len, i, &off, &n);
    assert_true(swapfx_mismatch(r->buf + off, r->gva + off, n, SEED) ==
                SIZE_MAX);
  }
  st = swapfx_stats(fx);
  assert_int_equal(st.reads, 1);
  assert_int_equal(st.pending, 1);
  assert_int_equal(st.pending_chunks, 1);
  /* the PTE, and its PDE, PDPTE and PML4E as parents */
  assert_int_equal(st.watched_entries, 1 + 3);

  /* nothing changed: nothing completes */
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, 0);
  assert_bytes(r, SEED);
  assert_int_equal(r->done.gpa, frame + 100);
  assert_true(r->done.kinds_seen & (1u << SR_PTE_LINUX_SWAP));
  assert_false(r->done.flags & SR_DONE_PARTIAL);
  assert_false(r->done.flags & SR_DONE_NX);

  /* exactly once: later polls do not call again */
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(r->ncb, 1);
  assert_int_equal(r->ndtor, 1);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.pending_chunks, 0);
  assert_int_equal(st.watched_entries, 0);
  assert_int_equal(st.done_ok, 1);
  assert_int_equal(st.sync_completions, 0);
  /* the handle of a completed read is stale */
  assert_int_equal(sr_swap_cancel(fx->swap, r->handle), SR_ESTALE);
}

static void test_read_first_chunk_missing_gpa_when_read(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t frame;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA, 1);
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 0x123, K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, 0);
  assert_bytes(r, SEED);
  assert_int_equal(r->done.gpa, frame + 0x123);
  assert_true(r->done.kinds_seen & (1u << SR_PTE_NONE));
}

static void test_read_kinds_seen(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint32_t bad = (1u << SR_PTE_PRESENT) | (1u << SR_PTE_WIN_TRANSITION) |
                 (1u << SR_PTE_WIN_PROTOTYPE) | (1u << SR_PTE_WIN_PAGEFILE) |
                 (1u << SR_PTE_UNKNOWN) | (1u << SR_PTE_LINUX_PROTNONE);

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 3 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 5), 0);
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA + 2 * K4, 1), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 3 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, 0);
  assert_bytes(r, SEED);
  assert_true(r->done.kinds_seen & (1u << SR_PTE_LINUX_SWAP));
  assert_true(r->done.kinds_seen & (1u << SR_PTE_NONE));
  assert_int_equal(r->done.kinds_seen & bad, 0);
}

/* ---- flags ------------------------------------------------------------ */

static void test_read_nx_flag(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  swapfx_rec_t* c;

  assert_int_equal(
      swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU | SR_PROT_NX, SEED), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA + M2, 2 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 2 * K4, 0, 0), 0);
  assert_true(a->sync.flags & SR_DONE_NX);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + M2, 2 * K4, 0, 0), 0);
  assert_false(b->sync.flags & SR_DONE_NX);
  assert_bytes(a, SEED);
  assert_bytes(b, SEED);

  /* pending: the NX leaf is met at the poll */
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 9), 0);
  assert_int_equal(swapfx_read_new(fx, &c, fx->cr3, VA + K4, K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(c, 0);
  assert_true(c->done.flags & SR_DONE_NX);
  assert_bytes(c, SEED);
}

static void test_read_resident_protnone(void** state) {
  swapfx_t* fx = *state;
  sr_swap_opts_t opts;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  uint64_t frame;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA + K4, 1);
  assert_int_equal(
      swapfx_out_as(fx, fx->cr3, VA + K4, 1, SR_PTE_LINUX_PROTNONE, 0), 0);

  /* default: PROT_NONE is not readable, the read waits */
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA + 10, K4, 0, 0),
                   SR_PENDING);

  /* opted in: read through the inverted PFN at once */
  memset(&opts, 0, sizeof(opts));
  opts.walk.flags = SR_WALK_RESIDENT;
  swapfx_close_engine(fx);
  assert_once(a, SR_ECANCELED);
  engine_with(fx, &opts);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + K4 + 10, 100, 0, 0),
                   0);
  assert_true(b->sync.flags & SR_DONE_RESIDENT);
  assert_int_equal(b->sync.gpa, frame + 10);
  assert_bytes(b, SEED);
}

static void test_read_resident_kind_seen_when_waiting(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_as(fx, fx->cr3, VA, 1, SR_PTE_LINUX_PROTNONE, 0),
                   0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, K4, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, 0);
  assert_bytes(r, SEED);
  assert_true(r->done.kinds_seen & (1u << SR_PTE_LINUX_PROTNONE));
  assert_false(r->done.flags & SR_DONE_RESIDENT);
}

static void test_read_windows_kinds(void** state) {
  swapfx_t* fx = *state;
  sr_swap_opts_t opts;
  swapfx_rec_t* a;
  swapfx_rec_t* b;

  memset(&opts, 0, sizeof(opts));
  opts.walk.os = SR_OS_WINDOWS;
  opts.walk.flags = SR_WALK_RESIDENT;
  engine_with(fx, &opts);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_as(fx, fx->cr3, VA, 1, SR_PTE_WIN_PAGEFILE, 33),
                   0);
  assert_int_equal(
      swapfx_out_as(fx, fx->cr3, VA + K4, 1, SR_PTE_WIN_TRANSITION, 0), 0);

  /* transition is resident: readable with SR_WALK_RESIDENT */
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + K4, K4, 0, 0), 0);
  assert_true(b->sync.flags & SR_DONE_RESIDENT);
  assert_bytes(b, SEED);

  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 2 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  assert_bytes(a, SEED);
  assert_true(a->done.kinds_seen & (1u << SR_PTE_WIN_PAGEFILE));
  assert_true(a->done.flags & SR_DONE_RESIDENT);
}

/* ---- large pages ------------------------------------------------------ */

static void test_read_2m_page(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  uint64_t frame;
  sr_swap_stats_t st;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, M2, M2, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA, 2);
  assert_true(frame != 0 && (frame & (M2 - 1)) == 0);
  assert_int_equal(
      swapfx_read_new(fx, &a, fx->cr3, VA + M2 - 5 * K4 - 3, 5 * K4, 0, 0), 0);
  assert_bytes(a, SEED);
  assert_int_equal(a->sync.gpa, frame + M2 - 5 * K4 - 3);

  /* the whole 2 MiB leaf paged out: one entry blocks 3 chunks */
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 2, 1234), 0);
  assert_int_equal(
      swapfx_read_new(fx, &b, fx->cr3, VA + 0x10000 + 1, 2 * K4, 0, 0),
      SR_PENDING);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending_chunks, 3);
  assert_int_equal(st.watched_entries, 1 + 2); /* PDE; PDPTE, PML4E */
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 2), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(b, 0);
  assert_bytes(b, SEED);
  assert_int_equal(b->done.gpa, frame + 0x10000 + 1);
  assert_true(b->done.kinds_seen & (1u << SR_PTE_LINUX_SWAP));
}

static int setup_1g(void** state) {
  swapfx_t* fx;
  /* room for one 1 GiB frame at GPA 1 GiB (the file stays sparse) */
  if (swapfx_new(&fx, 2 * SR_PAGE_1G, NULL) != 0)
    return -1;
  *state = fx;
  return 0;
}

static void test_read_1g_page(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  uint64_t frame;
  uint64_t g = SR_PAGE_1G;
  uint64_t off = g / 2 + 3 * M2 - 2 * K4; /* spans a 2 MiB boundary */

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, VA, g, g, RWU), 0);
  frame = swapfx_frame(fx, fx->cr3, VA, 3);
  assert_true(frame != 0 && (frame & (g - 1)) == 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, VA + off, 4 * K4, SEED), 0);
  assert_int_equal(
      swapfx_read_new(fx, &a, fx->cr3, VA + off + 5, 4 * K4 - 10, 0, 0), 0);
  assert_bytes(a, SEED);
  assert_int_equal(a->sync.gpa, frame + off + 5);

  /* the 1 GiB leaf paged out (a zero PDPTE): one entry blocks 4 chunks */
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA, 3), 0);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + off, 4 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 4);
  assert_int_equal(swapfx_stats(fx).watched_entries, 1 + 1); /* + PML4E */
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 3), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(b, 0);
  assert_bytes(b, SEED);
  assert_int_equal(b->done.gpa, frame + off);
  assert_true(b->done.kinds_seen & (1u << SR_PTE_NONE));
}

/* ---- rejections --------------------------------------------------------- */

static void test_read_rejects_bad_ranges(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[6];
  sr_swap_stats_t st;
  int rc;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  /* zero length */
  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA, 0, 0, 0), SR_EINVAL);
  /* wraps past 2^64 (the start is canonical) */
  assert_int_equal(swapfx_read_new(fx, &r[1], fx->cr3,
                                   UINT64_C(0xfffffffffffff000), 0x1001, 0, 0),
                   SR_EINVAL);
  /* non-canonical start */
  assert_int_equal(swapfx_read_new(fx, &r[2], fx->cr3,
                                   UINT64_C(0x0000800000000000), 16, 0, 0),
                   SR_ENONCANON);
  assert_int_equal(r[2]->sync.fail_gva, UINT64_C(0x0000800000000000));
  assert_int_equal(swapfx_read_new(fx, &r[3], fx->cr3,
                                   UINT64_C(0xfff0000000001000), 16, 0, 0),
                   SR_ENONCANON);
  /* across the canonical hole (start canonical, end not) */
  rc = swapfx_read_new(fx, &r[4], fx->cr3, UINT64_C(0x00007ffffffff000), 0x2000,
                       0, 0);
  assert_true(rc == SR_ENONCANON || rc == SR_EINVAL);
  /* and from the top of the lower half into the upper half (a small
   * buffer: the engine must reject the read before touching it) */
  r[5] = swapfx_rec(fx);
  assert_non_null(r[5]);
  r[5]->buf = swapfx_buf(fx, 16);
  assert_non_null(r[5]->buf);
  rc = swapfx_read(fx, r[5], fx->cr3, UINT64_C(0x00007ffffffff000),
                   UINT64_C(0xffff800000000000) - 0x00007ffffffff000 + 0x1000,
                   0, 0);
  assert_true(rc == SR_ENONCANON || rc == SR_EINVAL);

  fx->now += 1000000;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  for (size_t i = 0; i < 6; i++)
    assert_untouched(r[i]);
  st = swapfx_stats(fx);
  assert_int_equal(st.rejected, 6);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.reads, 0);
}

static void test_read_rejects_bad_arguments(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r = swapfx_rec(fx);
  sr_swap_req_t req;
  uint8_t* buf = swapfx_buf(fx, K4);
  sr_swap_handle_t h;
  sr_swap_done_t d;

  assert_non_null(buf);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 3), 0);
  memset(&req, 0, sizeof(req));
  req.cr3 = fx->cr3;
  req.gva = VA;
  req.buf = buf;
  req.len = K4;
  assert_int_equal(
      sr_swap_read(NULL, &req, fx->now, swapfx_cb, r, swapfx_dtor, &h, &d),
      SR_EINVAL);
  assert_int_equal(
      sr_swap_read(fx->swap, NULL, fx->now, swapfx_cb, r, swapfx_dtor, &h, &d),
      SR_EINVAL);
  /* a read that would wait needs a callback */
  assert_int_equal(
      sr_swap_read(fx->swap, &req, fx->now, NULL, r, swapfx_dtor, &h, &d),
      SR_EINVAL);
  req.buf = NULL;
  assert_int_equal(
      sr_swap_read(fx->swap, &req, fx->now, swapfx_cb, r, swapfx_dtor, &h, &d),
      SR_EINVAL);
  assert_int_equal(sr_swap_poll(NULL, fx->now, NULL), SR_EINVAL);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);
  assert_int_equal(swapfx_stats(fx).pending, 0);
}

static void test_read_new_rejects_bad_arguments(void** state) {
  swapfx_t* fx = *state;
  sr_swap_t* s = NULL;
  assert_int_equal(sr_swap_new(NULL, fx->image, NULL), SR_EINVAL);
  assert_int_equal(sr_swap_new(&s, NULL, NULL), SR_EINVAL);
  sr_swap_opts_t opts;
  sr_swap_free(NULL); /* allowed */
  memset(&opts, 0, sizeof(opts));
  assert_int_equal(sr_swap_new(&s, fx->image, &opts), 0);
  assert_non_null(s);
  sr_swap_free(s);
}

static void test_read_rejects_hole(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t hole;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &hole), 0);
  assert_int_equal(sr_kit_punch_hole(fx->kit, hole, K4), 0);
  engine_with(fx, NULL);
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, VA + K4, K4, hole, K4, RWU),
                   0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 8, 2 * K4, 0, 0),
                   SR_EHOLE);
  assert_int_equal(r->sync.fail_gva, VA + K4);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);
  assert_int_equal(swapfx_stats(fx).rejected, 1);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

static void test_read_rejects_hole_even_with_pending_chunks(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t hole;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &hole), 0);
  assert_int_equal(sr_kit_punch_hole(fx->kit, hole, K4), 0);
  engine_with(fx, NULL);
  assert_int_equal(
      sr_kit_map_gpa(fx->kit, fx->cr3, VA + 2 * K4, K4, hole, K4, RWU), 0);
  /* chunk 0 waits, chunk 2 is in a hole: rejected, nothing left behind */
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 8), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 3 * K4, 0, 0),
                   SR_EHOLE);
  assert_int_equal(r->sync.fail_gva, VA + 2 * K4);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);
}

static void test_read_rejects_beyond_file(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t f0, f1, pte;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA + K4, K4, K4, RWU, SEED), 0);
  f0 = swapfx_frame(fx, fx->cr3, VA, 1);
  f1 = swapfx_frame(fx, fx->cr3, VA + K4, 1);
  assert_int_equal(sr_kit_entry_gpa(fx->kit, fx->cr3, VA + K4, 1, &pte), 0);
  /* the second frame is the highest GPA used: cut the file there */
  assert_true(f1 > f0 && f1 > pte && f1 > fx->cr3);
  /* open the image inside the test: the image library re-arms its SIGBUS
   * handler on open when a harness (cmocka) swapped it out */
  engine_with(fx, NULL);
  assert_int_equal(sr_kit_truncate(fx->kit, f1), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 8, 2 * K4 - 16, 0, 0),
                   SR_EBEYOND);
  assert_int_equal(r->sync.fail_gva, VA + K4);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);
  assert_int_equal(swapfx_stats(fx).pending, 0);
}

static void test_read_rejects_bad_entry(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t e;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  /* PS in a PML4E is reserved */
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA, 4, &e), 0);
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, VA, 4, e | SWAPFX_PS, NULL), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, K4, 0, 0),
                   SR_EBADENTRY);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);
  assert_int_equal(swapfx_stats(fx).rejected, 1);
}

static void test_read_rejects_unreadable_root(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  /* a CR3 far past the end of the 64 MiB file */
  int rc = swapfx_read_new(fx, &r, UINT64_C(0x40000000000), VA, K4, 0, 0);
  assert_true(rc == SR_EBEYOND || rc == SR_EHOLE);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_untouched(r);
}

static void test_read_last_page_of_address_space(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  uint64_t top = UINT64_C(0xffffffffffffe000);

  assert_int_equal(swapfx_map(fx, fx->cr3, top, 2 * K4, K4, RWU, SEED), 0);
  /* ends exactly at 2^64: not a wrap */
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, top + 1, 2 * K4 - 1, 0, 0),
                   0);
  assert_bytes(a, SEED);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, top + K4, 1, 4), 0);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, top, 2 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, top + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(b, 0);
  assert_bytes(b, SEED);
}

/* ---- permanent failures met later ------------------------------------- */

static void test_read_hole_met_later_completes_with_it(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t hole;
  sr_swap_stats_t st;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &hole), 0);
  assert_int_equal(sr_kit_punch_hole(fx->kit, hole, K4), 0);
  engine_with(fx, NULL);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 21), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 2 * K4, 0, 0),
                   SR_PENDING);
  /* the page comes back at a frame in a hole */
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, VA + K4, 1, hole | SWAPFX_TABLE, NULL),
      0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, SR_EHOLE);
  st = swapfx_stats(fx);
  assert_int_equal(st.done_failed, 1);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.watched_entries, 0);
}

static void test_read_bad_entry_met_later_completes_with_it(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t big;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 4 * K4, K4, RWU, SEED), 0);
  assert_int_equal(sr_kit_alloc(fx->kit, M2, M2, &big), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 2, 99), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 4 * K4, 0, 0),
                   SR_PENDING);
  /* the PDE comes back as a 2 MiB leaf with reserved bit 13 set */
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, VA, 2,
                       big | SWAPFX_TABLE | SWAPFX_PS | (UINT64_C(1) << 13),
                       NULL),
      0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, SR_EBADENTRY);
}

/* ---- address spaces ---------------------------------------------------- */

static void test_read_kernel_cr3(void** state) {
  swapfx_t* fx = *state;
  sr_swap_opts_t opts;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  swapfx_rec_t* c;

  assert_int_equal(swapfx_map(fx, fx->cr3, SWAPFX_KVA, 2 * K4, K4, RWU, SEED),
                   0);
  /* no kernel CR3 configured: SR_CR3_KERNEL is not an address space */
  assert_true(swapfx_read_new(fx, &c, SR_CR3_KERNEL, SWAPFX_KVA, K4, 0, 0) < 0);
  assert_untouched(c);
  memset(&opts, 0, sizeof(opts));
  opts.kernel_cr3 = fx->cr3;
  engine_with(fx, &opts);
  assert_int_equal(
      swapfx_read_new(fx, &a, SR_CR3_KERNEL, SWAPFX_KVA + 9, K4, 0, 0), 0);
  assert_bytes(a, SEED);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, SWAPFX_KVA + K4, 1, 6), 0);
  assert_int_equal(
      swapfx_read_new(fx, &b, SR_CR3_KERNEL, SWAPFX_KVA, 2 * K4, 0, 0),
      SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, SWAPFX_KVA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_int_equal(b->ncb, 1);
  assert_int_equal(b->done.status, 0);
  assert_bytes(b, SEED);
}

static void test_read_cr3_low_bits_ignored(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  /* PCID 0x5 and PWT/PCD (bits 3, 4) are not part of the root */
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(
      swapfx_read_new(fx, &a, fx->cr3 | 0x18 | 0x5, VA + 1, 99, 0, 0), 0);
  assert_bytes(a, SEED);
}

/* ---- stats, dump ---------------------------------------------------------
 */

typedef struct dump_log_s {
  int calls;
  int stop_at;
  sr_swap_txn_info_t info[4];
} dump_log_t;

static int dump_cb(const sr_swap_txn_info_t* info, void* arg) {
  dump_log_t* log = arg;
  if (log->calls < 4)
    log->info[log->calls] = *info;
  log->calls++;
  return log->calls == log->stop_at ? 7 : 0;
}

static void test_read_dump_lists_pending(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  dump_log_t log;
  uint64_t pte_gpa, pte, pde_gpa, pde;
  uint64_t t0 = fx->now;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 4 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA + M2, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 2 * K4, 1, 42), 0);
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA + M2, 2), 0);
  assert_int_equal(sr_kit_entry_gpa(fx->kit, fx->cr3, VA + 2 * K4, 1, &pte_gpa),
                   0);
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA + 2 * K4, 1, &pte), 0);
  assert_int_equal(sr_kit_entry_gpa(fx->kit, fx->cr3, VA + M2, 2, &pde_gpa), 0);
  assert_int_equal(sr_kit_get_entry(fx->kit, fx->cr3, VA + M2, 2, &pde), 0);

  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 4 * K4, 0, 500),
                   SR_PENDING);
  fx->now += 100;
  assert_int_equal(
      swapfx_read_new(fx, &b, fx->cr3, VA + M2 + 5, 10, 0, SR_TIMEOUT_NONE),
      SR_PENDING);
  fx->now += 50;

  memset(&log, 0, sizeof(log));
  assert_int_equal(sr_swap_dump(fx->swap, fx->now, dump_cb, &log), 0);
  assert_int_equal(log.calls, 2);
  /* oldest first */
  assert_int_equal(log.info[0].handle.id, a->handle.id);
  assert_int_equal(log.info[0].cr3, fx->cr3);
  assert_int_equal(log.info[0].gva, VA);
  assert_int_equal(log.info[0].len, 4 * K4);
  assert_int_equal(log.info[0].nchunks, 4);
  assert_int_equal(log.info[0].pending_chunks, 1);
  assert_int_equal(log.info[0].age_ns, fx->now - t0);
  assert_int_equal(log.info[0].deadline_ns, t0 + 500);
  assert_int_equal(log.info[0].block_level, 1);
  assert_int_equal(log.info[0].block_entry_gpa, pte_gpa);
  assert_int_equal(log.info[0].block_entry, pte);
  assert_int_equal(log.info[0].block_kind, SR_PTE_LINUX_SWAP);
  assert_int_equal(log.info[1].handle.id, b->handle.id);
  assert_int_equal(log.info[1].age_ns, 50);
  assert_int_equal(log.info[1].deadline_ns, SR_TIMEOUT_NONE);
  assert_int_equal(log.info[1].block_level, 2);
  assert_int_equal(log.info[1].block_entry_gpa, pde_gpa);
  assert_int_equal(log.info[1].block_entry, pde);
  assert_int_equal(log.info[1].block_kind, SR_PTE_NONE);

  /* a non-zero return stops the walk and is returned */
  memset(&log, 0, sizeof(log));
  log.stop_at = 1;
  assert_int_equal(sr_swap_dump(fx->swap, fx->now, dump_cb, &log), 7);
  assert_int_equal(log.calls, 1);
}

static void test_read_stats_count(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[4];
  sr_swap_stats_t st;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 4 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 2), 0);
  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA + 2 * K4, K4, 0, 0),
                   0);
  assert_int_equal(swapfx_read_new(fx, &r[1], fx->cr3, VA, 2 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[2], fx->cr3, VA + K4, K4, 0, 10),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[3], fx->cr3, VA, 0, 0, 0), SR_EINVAL);
  st = swapfx_stats(fx);
  assert_int_equal(st.reads, 3);
  assert_int_equal(st.sync_completions, 1);
  assert_int_equal(st.rejected, 1);
  assert_int_equal(st.pending, 2);
  assert_int_equal(st.pending_chunks, 3);
  /* two PTEs of one table, and the PDE, PDPTE, PML4E above them */
  assert_int_equal(st.watched_entries, 2 + 3);
  /* an idle poll re-reads each distinct watched entry once */
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  st = swapfx_stats(fx);
  assert_int_equal(st.polls, 1);
  assert_int_equal(st.entries_reread, 2 + 3);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_int_equal(r[2]->done.status, SR_ETIMEDOUT);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  st = swapfx_stats(fx);
  assert_int_equal(st.polls, 3);
  assert_int_equal(st.done_ok, 1);
  assert_int_equal(st.done_timedout, 1);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.pending_chunks, 0);
  assert_int_equal(st.watched_entries, 0);
  assert_true(st.chunks_copied >= 2);
}

/* ---- allocation -------------------------------------------------------- */

static void test_read_allocator_and_enomem(void** state) {
  swapfx_t* fx = *state;
  swapfx_alloc_t* a = calloc(1, sizeof(*a));
  sr_swap_opts_t opts;
  sr_swap_t* s = NULL;
  int succeeded = 0;
  uint8_t* buf = swapfx_buf(fx, 2 * M2);

  assert_non_null(buf);
  assert_non_null(a);
  fx->user = a; /* freed by the fixture after the engine */
  swapfx_alloc_init(a);
  memset(&opts, 0, sizeof(opts));
  opts.allocator = &a->hook;

  /* the engine itself comes from the hook */
  a->fail_at = 1;
  assert_int_equal(sr_swap_new(&s, fx->image, &opts), SR_ENOMEM);
  assert_int_equal(a->live_blocks, 0);
  a->fail_at = 0;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * M2, K4, RWU, SEED), 0);
  for (size_t i = 0; i < 512; i += 3)
    assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + i * K4, 1, 100 + i), 0);
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA + M2, 2), 0);

  /* fail each allocation of a big pending read in turn */
  for (uint64_t k = 1; k < 2000 && !succeeded; k++) {
    swapfx_rec_t* r = swapfx_rec(fx);
    int rc;
    assert_non_null(r);
    r->buf = buf;
    a->fail_at = 0;
    engine_with(fx, &opts);
    a->fail_at = a->calls + k;
    a->failed = 0;
    rc = swapfx_read(fx, r, fx->cr3, VA + 5, 2 * M2 - 10, 0, 0);
    if (rc == SR_ENOMEM) {
      assert_true(a->failed > 0);
      assert_untouched(r);
      assert_int_equal(swapfx_stats(fx).pending, 0);
      assert_int_equal(swapfx_stats(fx).pending_chunks, 0);
      assert_int_equal(swapfx_stats(fx).watched_entries, 0);
    } else {
      assert_int_equal(rc, SR_PENDING);
      if (a->failed == 0)
        succeeded = 1;
      swapfx_close_engine(fx);
      assert_once(r, SR_ECANCELED);
    }
    swapfx_close_engine(fx);
    assert_int_equal(a->live_blocks, 0);
    assert_int_equal(a->live_bytes, 0);
  }
  assert_true(succeeded);
  assert_int_equal(a->size_mismatch, 0);
  a->fail_at = 0;
  engine_with(fx, &opts);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_read_all_present_completes_sync,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_one_chunk_needs_no_transaction,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_sync_without_sync_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_read_partly_present_pending_then_page_in, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_read_first_chunk_missing_gpa_when_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_kinds_seen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_nx_flag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_resident_protnone, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_resident_kind_seen_when_waiting,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_windows_kinds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_2m_page, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_1g_page, setup_1g, teardown),
      cmocka_unit_test_setup_teardown(test_read_rejects_bad_ranges, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_rejects_bad_arguments, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_new_rejects_bad_arguments,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_rejects_hole, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_read_rejects_hole_even_with_pending_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_rejects_beyond_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_rejects_bad_entry, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_rejects_unreadable_root, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_last_page_of_address_space,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_read_hole_met_later_completes_with_it, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_read_bad_entry_met_later_completes_with_it, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_kernel_cr3, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_cr3_low_bits_ignored, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_dump_lists_pending, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_stats_count, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_allocator_and_enomem, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
