/* White-box tests of the swap engine. This is the one test allowed to
 * include swap/internal.h, for two things the public API cannot reach:
 * - the copy hook (sr_swap_s.copy_hook), which runs between the copy of a
 *   chunk and its re-walk, so a test can change the chunk's entry exactly
 *   "during the copy" (a single-threaded kit cannot interleave otherwise);
 * - the deep invariant check (sr__txn_check_deep: the bitmap counts the
 *   pending chunks and the waiter ranges cover exactly the missing ones),
 *   run after every step of a random workload.
 * Everything else goes through the public API; expected bytes come from
 * sr_kit_pattern.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/swap.h>

#include "../swap/internal.h"

#define GVA UINT64_C(0x40000000)   /* 64 x 4K pages, one PT */
#define GVA2M UINT64_C(0x40400000) /* one 2M page */
#define NPAGES 64
#define SEED UINT64_C(0xc0ffee)

typedef struct fixture_s {
  sr_kit_t* kit;
  sr_image_t* image;
  sr_swap_t* swap;
  uint64_t cr3;
  int hook_mode; /* 1: page the chunk out once; 2: flip A bit always */
  int hook_calls;
  int ncb, ndtor, last_status;
  unsigned char buf[4096];
} fixture_t;

static int setup(void** state) {
  fixture_t* f = calloc(1, sizeof(*f));
  sr_kit_opts_t ko;

  assert_non_null(f);
  memset(&ko, 0, sizeof(ko));
  ko.size = 16u << 20;
  assert_int_equal(sr_kit_create(&f->kit, &ko), 0);
  assert_int_equal(sr_kit_new_space(f->kit, SR_PAGING_4LEVEL, &f->cr3), 0);
  assert_int_equal(sr_kit_map(f->kit, f->cr3, GVA, NPAGES * 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_map(f->kit, f->cr3, GVA2M, SR_PAGE_2M, SR_PAGE_2M,
                              SR_PROT_W | SR_PROT_U | SR_PROT_NX),
                   0);
  assert_int_equal(sr_kit_fill(f->kit, f->cr3, GVA, NPAGES * 4096, SEED), 0);
  assert_int_equal(sr_kit_fill(f->kit, f->cr3, GVA2M, SR_PAGE_2M, SEED), 0);
  assert_int_equal(sr_kit_open_image(f->kit, &f->image), 0);
  assert_int_equal(sr_swap_new(&f->swap, f->image, NULL), 0);
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fixture_t* f = *state;

  sr_swap_free(f->swap);
  sr_image_close(f->image);
  sr_kit_destroy(f->kit);
  free(f);
  return 0;
}

static sr_pte_info_t swap_entry(uint64_t offset) {
  sr_pte_info_t as;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 2;
  as.swap_offset = offset;
  return as;
}

static void hook(sr_swap_t* swap, void* arg, uint64_t va) {
  fixture_t* f = arg;
  sr_pte_info_t as = swap_entry(7);
  uint64_t e;

  (void)swap;
  f->hook_calls++;
  if (f->hook_mode == 1 && f->hook_calls == 1) {
    assert_int_equal(sr_kit_page_out(f->kit, f->cr3, va, 1, &as), 0);
  } else if (f->hook_mode == 2) {
    assert_int_equal(sr_kit_get_entry(f->kit, f->cr3, va, 1, &e), 0);
    assert_int_equal(sr_kit_set_entry(f->kit, f->cr3, va, 1, e ^ 0x20, NULL),
                     0);
  }
}

static void on_done(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  fixture_t* f = data;

  (void)swap;
  f->ncb++;
  f->last_status = done->status;
}

static void on_dtor(void* data) {
  ((fixture_t*)data)->ndtor++;
}

static bool matches(const unsigned char* buf, uint64_t gva, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (buf[i] != sr_kit_pattern(SEED, gva + i))
      return false;
  return true;
}

static int read_page(fixture_t* f, uint64_t gva, sr_swap_handle_t* h) {
  sr_swap_req_t req;

  memset(&req, 0, sizeof(req));
  req.cr3 = f->cr3;
  req.gva = gva;
  req.buf = f->buf;
  req.len = sizeof(f->buf);
  return sr_swap_read(f->swap, &req, 0, on_done, f, on_dtor, h, NULL);
}

/* The entry goes non-present between the copy and the re-walk: the chunk
 * is not accepted (the read pends) and completes after the page-in. */
static void test_internal_copy_then_pageout_not_accepted(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  sr_swap_stats_t st;

  f->swap->copy_hook = hook;
  f->swap->copy_hook_arg = f;
  f->hook_mode = 1;
  assert_int_equal(read_page(f, GVA + 3 * 4096, &h), SR_PENDING);
  sr_swap_stats(f->swap, &st);
  assert_int_equal(st.chunks_rejected, 1);
  assert_int_equal(st.chunks_copied, 0);
  assert_int_equal(sr_swap_poll(f->swap, 1, NULL), 0);
  assert_int_equal(sr_kit_page_in(f->kit, f->cr3, GVA + 3 * 4096, 1), 0);
  assert_int_equal(sr_swap_poll(f->swap, 2, NULL), 1);
  assert_int_equal(f->last_status, 0);
  assert_true(matches(f->buf, GVA + 3 * 4096, 4096));
}

/* The leaf keeps changing while copied: three attempts, then the chunk is
 * watched (forced); once it holds still, the next poll accepts it even
 * though the entry's value then equals the one last seen. */
static void test_internal_copy_unstable_leaf_retried(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  sr_swap_stats_t st;

  f->swap->copy_hook = hook;
  f->swap->copy_hook_arg = f;
  f->hook_mode = 2;
  assert_int_equal(read_page(f, GVA + 5 * 4096, &h), SR_PENDING);
  sr_swap_stats(f->swap, &st);
  assert_int_equal(st.chunks_rejected, SR__COPY_ATTEMPTS);
  assert_int_equal(f->hook_calls, SR__COPY_ATTEMPTS);
  f->hook_mode = 0;
  assert_int_equal(sr_swap_poll(f->swap, 1, NULL), 1);
  assert_int_equal(f->last_status, 0);
  assert_true(matches(f->buf, GVA + 5 * 4096, 4096));
}

static void* fail_alloc(void* ctx, size_t size) {
  return *(bool*)ctx ? NULL : malloc(size);
}

static void* fail_realloc(void* ctx, void* ptr, size_t old_size,
                          size_t new_size) {
  (void)old_size;
  return *(bool*)ctx ? NULL : realloc(ptr, new_size);
}

static void fail_free(void* ctx, void* ptr, size_t size) {
  (void)ctx;
  (void)size;
  free(ptr);
}

/* Memory runs out while a poll re-files chunks (a PDE came back, its PTEs
 * are out): no chunk is lost, the invariants hold, and the next poll with
 * memory re-files them; the read then completes with the right bytes. */
static void test_internal_poll_enomem_keeps_chunks(void** state) {
  fixture_t* f = *state;
  bool failing = false;
  sr_allocator_t a = {fail_alloc, fail_realloc, fail_free, &failing};
  sr_swap_opts_t opts;
  sr_swap_req_t req;
  sr_swap_handle_t h = {0};
  sr_pte_info_t as = swap_entry(99);
  unsigned char* buf = malloc(NPAGES * 4096);
  uint32_t slot;
  int i;

  assert_non_null(buf);
  sr_swap_free(f->swap);
  memset(&opts, 0, sizeof(opts));
  opts.allocator = &a;
  assert_int_equal(sr_swap_new(&f->swap, f->image, &opts), 0);
  assert_int_equal(sr_kit_page_out(f->kit, f->cr3, GVA, 2, &as), 0);
  memset(&req, 0, sizeof(req));
  req.cr3 = f->cr3;
  req.gva = GVA;
  req.buf = buf;
  req.len = NPAGES * 4096;
  assert_int_equal(
      sr_swap_read(f->swap, &req, 0, on_done, f, on_dtor, &h, NULL),
      SR_PENDING);
  assert_int_equal(f->swap->nlive_rec, 1 + 2); /* PDE; PDPTE, PML4E */
  assert_int_equal(f->swap->w_n, 1);           /* 64 chunks, one waiter */
  for (i = 0; i < NPAGES; i += 2) {
    as = swap_entry(200 + (uint64_t)i);
    assert_int_equal(
        sr_kit_page_out(f->kit, f->cr3, GVA + (uint64_t)i * 4096, 1, &as), 0);
  }
  assert_int_equal(sr_kit_page_in(f->kit, f->cr3, GVA, 2), 0);
  failing = true;
  assert_int_equal(sr_swap_poll(f->swap, 1, NULL), 0);
  assert_int_equal(sr__txn_lookup(f->swap, h, &slot), 0);
  assert_true(sr__txn_check_deep(f->swap, sr__txn_at(f->swap, slot)));
  assert_true(sr__txn_at(f->swap, slot)->npending > 0);
  /* The pools could not hold one record per paged-out PTE: some chunks
   * are still under the PDE's record, forced. */
  assert_true(f->swap->nlive_rec < NPAGES / 2);
  failing = false;
  assert_int_equal(sr_swap_poll(f->swap, 2, NULL), 0);
  assert_true(sr__txn_check_deep(f->swap, sr__txn_at(f->swap, slot)));
  assert_int_equal(sr__txn_at(f->swap, slot)->npending, NPAGES / 2);
  /* one per PTE, and the PDE (now their parent), PDPTE, PML4E */
  assert_int_equal(f->swap->nlive_rec, NPAGES / 2 + 3);
  for (i = 0; i < NPAGES; i += 2)
    assert_int_equal(
        sr_kit_page_in(f->kit, f->cr3, GVA + (uint64_t)i * 4096, 1), 0);
  assert_int_equal(sr_swap_poll(f->swap, 3, NULL), 1);
  assert_int_equal(f->last_status, 0);
  assert_true(matches(buf, GVA, NPAGES * 4096));
  free(buf);
}

/* --- random workload with deep checks ---------------------------------- */

typedef struct rreq_s {
  fixture_t* f;
  struct rand_s* r;
  sr_swap_handle_t h;
  uint64_t gva;
  size_t len;
  uint32_t flags;
  unsigned char* buf;
  int ncb, ndtor;
  bool pending;    /* accepted as SR_PENDING */
  bool dropped_ok; /* cancelled from a callback while maybe completing */
} rreq_t;

typedef struct rand_s {
  uint64_t s;
  rreq_t* req[4096];
  int nreq;
  int depth;
  int nstarted_in_cb;
} rand_t;

static uint64_t rnd(rand_t* r) {
  r->s = r->s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
  return r->s >> 17;
}

static void check_all(sr_swap_t* swap) {
  uint32_t slot;

  for (slot = swap->age_head; slot != SR__NIL;
       slot = sr__txn_at(swap, slot)->age_next)
    assert_true(sr__txn_check_deep(swap, sr__txn_at(swap, slot)));
}

static void start_random(rand_t* r, fixture_t* f, uint64_t now);

static void rcb(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  rreq_t* q = data;
  rand_t* r = q->r;
  size_t c, off, n;
  uint64_t va;

  q->ncb++;
  assert_int_equal(q->ncb, 1);
  assert_ptr_equal(done->buf, q->buf);
  /* Every chunk not reported missing holds the pattern. */
  for (c = 0; c < done->nchunks; c++) {
    bool missing =
        done->missing != NULL && ((done->missing[c / 64] >> (c % 64)) & 1);
    va = c == 0 ? q->gva : (q->gva & ~UINT64_C(4095)) + c * 4096;
    off = va - q->gva;
    n = 4096 - (va & 4095);
    if (n > q->len - off)
      n = q->len - off;
    if (done->status == 0)
      assert_false(missing);
    if (!missing)
      assert_true(matches(q->buf + off, va, n));
    else if (done->status == SR_EPARTIAL)
      for (size_t i = 0; i < n; i++)
        assert_int_equal(q->buf[off + i], 0);
  }
  check_all(swap);
  /* Re-entrancy: start a read, cancel someone (maybe a sibling). */
  if (r->depth < 3 && rnd(r) % 4 == 0) {
    r->depth++;
    start_random(r, q->f, 0);
    r->depth--;
  }
  if (r->nreq > 0 && rnd(r) % 3 == 0) {
    rreq_t* o = r->req[rnd(r) % (uint64_t)r->nreq];
    if (o->pending && o->ndtor == 0 && o != q &&
        sr_swap_cancel(swap, o->h) == 0)
      o->dropped_ok = true;
  }
  assert_int_equal(sr_swap_cancel(swap, q->h), SR_EALREADY);
}

static void rdtor(void* data) {
  rreq_t* q = data;

  q->ndtor++;
  assert_int_equal(q->ndtor, 1);
}

static void start_random(rand_t* r, fixture_t* f, uint64_t now) {
  sr_swap_req_t req;
  rreq_t* q;
  int rc;
  uint64_t base = rnd(r) % 3 == 0 ? GVA2M : GVA;
  uint64_t span = base == GVA2M ? SR_PAGE_2M : NPAGES * 4096;

  if (r->nreq == (int)(sizeof(r->req) / sizeof(r->req[0])))
    return;
  q = calloc(1, sizeof(*q));
  assert_non_null(q);
  q->f = f;
  q->r = r;
  q->gva = base + rnd(r) % span;
  q->len = 1 + rnd(r) % (rnd(r) % 2 ? 64 : 5 * 4096);
  if (q->len > span - (q->gva - base))
    q->len = span - (q->gva - base);
  q->flags = (uint32_t)(rnd(r) % 4);
  if (rnd(r) % 2) { /* a duplicate of an earlier read, for joins */
    if (r->nreq > 0) {
      rreq_t* o = r->req[rnd(r) % (uint64_t)r->nreq];
      q->gva = o->gva;
      q->len = o->len;
      q->flags = o->flags;
    }
  }
  q->buf = malloc(q->len);
  assert_non_null(q->buf);
  memset(&req, 0, sizeof(req));
  req.cr3 = f->cr3;
  req.gva = q->gva;
  req.buf = q->buf;
  req.len = q->len;
  req.flags = q->flags;
  req.timeout_ns = rnd(r) % 3 == 0 ? 1 + rnd(r) % 50 : SR_TIMEOUT_NONE;
  rc = sr_swap_read(f->swap, &req, now, rcb, q, rdtor, &q->h, NULL);
  assert_true(rc == 0 || rc == SR_PENDING);
  if (rc == 0)
    assert_true(matches(q->buf, q->gva, q->len));
  q->pending = rc == SR_PENDING;
  r->req[r->nreq++] = q;
}

/* Property: over random reads, page-outs and page-ins at PT and PD level,
 * polls, deadlines, cancels and re-entrant callbacks, every pending read
 * gets exactly one dtor and at most one callback (none only if it was
 * cancelled from a callback), every byte reported present holds the
 * pattern, the deep invariants hold after each step, and nothing leaks. */
static void test_internal_random_workload(void** state) {
  fixture_t* f = *state;
  rand_t* r = calloc(1, sizeof(*r));
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 12345;
  uint64_t now = 0, page;
  sr_pte_info_t as;
  sr_swap_stats_t st;
  int step, i;

  assert_non_null(r);
  printf("seed %llu (SR_SEED overrides)\n", (unsigned long long)seed);
  r->s = seed;
  for (step = 0; step < 3000; step++) {
    switch (rnd(r) % 8) {
      case 0:
      case 1:
        start_random(r, f, now);
        break;
      case 2:
        page = rnd(r) % NPAGES;
        as = swap_entry(1 + page);
        (void)sr_kit_page_out(f->kit, f->cr3, GVA + page * 4096, 1, &as);
        break;
      case 3:
        page = rnd(r) % NPAGES;
        (void)sr_kit_page_in(f->kit, f->cr3, GVA + page * 4096, 1);
        break;
      case 4: /* the PDE of the 4K range, or the 2M leaf */
        as = swap_entry(1000);
        page = rnd(r) % 2 ? GVA : GVA2M;
        if (rnd(r) % 2)
          (void)sr_kit_page_out(f->kit, f->cr3, page, 2, &as);
        else
          (void)sr_kit_page_in(f->kit, f->cr3, page, 2);
        break;
      case 5:
      case 6:
        now += rnd(r) % 10;
        assert_true(sr_swap_poll(f->swap, now, NULL) >= 0);
        break;
      default:
        if (r->nreq > 0) {
          rreq_t* q = r->req[rnd(r) % (uint64_t)r->nreq];
          int rc = sr_swap_cancel(f->swap, q->h);
          assert_true(rc == 0 || rc == SR_ESTALE);
          assert_true(rc != 0 || (q->pending && q->ncb == 1));
        }
        if (rnd(r) % 50 == 0)
          assert_true(sr_swap_cancel_cr3(f->swap, f->cr3, SR_EGONE) >= 0);
        break;
    }
    check_all(f->swap);
  }
  /* Callbacks may start reads: cancel until nothing is pending. */
  do {
    assert_true(sr_swap_cancel_all(f->swap, SR_EIMAGEGONE) >= 0);
    sr_swap_stats(f->swap, &st);
  } while (st.pending > 0);
  printf(
      "reads %llu joined %llu ok %llu partial %llu timedout %llu "
      "cancelled %llu gone %llu imagegone %llu\n",
      (unsigned long long)st.reads, (unsigned long long)st.joined,
      (unsigned long long)st.done_ok, (unsigned long long)st.done_partial,
      (unsigned long long)st.done_timedout,
      (unsigned long long)st.done_cancelled, (unsigned long long)st.done_gone,
      (unsigned long long)st.done_imagegone);
  /* The workload reached the paths it is meant to exercise. */
  assert_true(st.joined > 0 && st.done_ok > 0 && st.done_timedout > 0);
  assert_true(st.done_partial > 0 && st.done_cancelled > 0);
  for (i = 0; i < r->nreq; i++) {
    rreq_t* q = r->req[i];
    if (q->pending) {
      assert_int_equal(q->ndtor, 1);
      assert_true(q->ncb == 1 || (q->ncb == 0 && q->dropped_ok));
    } else {
      assert_int_equal(q->ncb + q->ndtor, 0);
    }
    free(q->buf);
    free(q);
  }
  assert_int_equal(f->swap->nlive, 0);
  assert_int_equal(f->swap->nlive_rec, 0);
  free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_internal_copy_then_pageout_not_accepted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_internal_copy_unstable_leaf_retried,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_internal_poll_enomem_keeps_chunks,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_internal_random_workload, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
