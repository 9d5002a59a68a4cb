/* Smoke test of the swap engine through the public API: synchronous
 * completion, pending reads completed by a poll after a page-in, deadline,
 * cancel, stale handles, rejected ranges, and allocation failure at every
 * allocation in turn. Images come from the holey-image kit; expected bytes
 * come from sr_kit_pattern, never from the engine. The full suites are the
 * other tests/test_swap_*.c files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/swap.h>

#define GVA UINT64_C(0x7f0000400000)
#define NPAGES 8
#define SEED UINT64_C(0x5eed)

typedef struct counting_s {
  size_t bytes; /* live */
  long nallocs; /* allocations attempted (alloc + growing realloc) */
  long fail_at; /* fail the allocation with this index; -1: never */
  long failed;  /* how many were failed */
} counting_t;

typedef struct fixture_s {
  sr_kit_t* kit;
  sr_image_t* image;
  sr_swap_t* swap;
  uint64_t cr3;
  counting_t mem;
  sr_allocator_t alloc;
  int ncb;
  int ndtor;
  int last_status;
  uint32_t last_flags;
  uint32_t last_kinds;
  uint64_t last_missing; /* first word of done->missing, or 0 */
  size_t last_nchunks;
  unsigned char buf[NPAGES * 4096];
} fixture_t;

static bool should_fail(counting_t* c) {
  long i = c->nallocs++;

  if (i == c->fail_at) {
    c->failed++;
    return true;
  }
  return false;
}

static void* count_alloc(void* ctx, size_t size) {
  counting_t* c = ctx;
  void* p;

  if (should_fail(c))
    return NULL;
  p = malloc(size);
  if (p != NULL)
    c->bytes += size;
  return p;
}

static void* count_realloc(void* ctx, void* ptr, size_t old_size,
                           size_t new_size) {
  counting_t* c = ctx;
  void* p;

  if (new_size > old_size && should_fail(c))
    return NULL;
  p = realloc(ptr, new_size);
  if (p != NULL)
    c->bytes = c->bytes - old_size + new_size;
  return p;
}

static void count_free(void* ctx, void* ptr, size_t size) {
  counting_t* c = ctx;

  if (ptr == NULL)
    return;
  c->bytes -= size;
  free(ptr);
}

static void on_done(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  fixture_t* f = data;

  (void)swap;
  f->ncb++;
  f->last_status = done->status;
  f->last_flags = done->flags;
  f->last_kinds = done->kinds_seen;
  f->last_nchunks = done->nchunks;
  f->last_missing = done->missing != NULL ? done->missing[0] : 0;
}

static void on_dtor(void* data) {
  fixture_t* f = data;

  f->ndtor++;
}

static int new_engine(fixture_t* f) {
  sr_swap_opts_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.allocator = &f->alloc;
  return sr_swap_new(&f->swap, f->image, &opts);
}

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
  assert_int_equal(sr_kit_fill(f->kit, f->cr3, GVA, NPAGES * 4096, SEED), 0);
  assert_int_equal(sr_kit_open_image(f->kit, &f->image), 0);
  f->mem.fail_at = -1;
  f->alloc.alloc = count_alloc;
  f->alloc.realloc = count_realloc;
  f->alloc.free = count_free;
  f->alloc.ctx = &f->mem;
  assert_int_equal(new_engine(f), 0);
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fixture_t* f = *state;

  sr_swap_free(f->swap);
  assert_int_equal(f->mem.bytes, 0);
  sr_image_close(f->image);
  sr_kit_destroy(f->kit);
  free(f);
  return 0;
}

static void page_out(fixture_t* f, int page) {
  sr_pte_info_t as;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  as.swap_offset = 100 + (uint64_t)page;
  assert_int_equal(
      sr_kit_page_out(f->kit, f->cr3, GVA + (uint64_t)page * 4096, 1, &as), 0);
}

static void page_in(fixture_t* f, int page) {
  assert_int_equal(
      sr_kit_page_in(f->kit, f->cr3, GVA + (uint64_t)page * 4096, 1), 0);
}

/* Whether buf[off, off + n) holds the pattern of gva + off. */
static bool matches(const fixture_t* f, uint64_t gva, size_t off, size_t n) {
  size_t i;

  for (i = off; i < off + n; i++)
    if (f->buf[i] != sr_kit_pattern(SEED, gva + i))
      return false;
  return true;
}

static int start(fixture_t* f, uint64_t gva, size_t len, uint32_t flags,
                 uint64_t now, uint64_t timeout, sr_swap_handle_t* h) {
  sr_swap_req_t req;

  memset(&req, 0, sizeof(req));
  req.cr3 = f->cr3;
  req.gva = gva;
  req.buf = f->buf;
  req.len = len;
  req.flags = flags;
  req.timeout_ns = timeout;
  return sr_swap_read(f->swap, &req, now, on_done, f, on_dtor, h, NULL);
}

static void test_smoke_all_present_is_sync(void** state) {
  fixture_t* f = *state;
  sr_swap_done_t sync;
  sr_swap_req_t req;
  sr_swap_handle_t h = {0};
  sr_swap_stats_t st;

  memset(&req, 0, sizeof(req));
  req.cr3 = f->cr3;
  req.gva = GVA + 100;
  req.buf = f->buf;
  req.len = NPAGES * 4096 - 200;
  assert_int_equal(
      sr_swap_read(f->swap, &req, 0, on_done, f, on_dtor, &h, &sync), 0);
  assert_true(matches(f, GVA + 100, 0, req.len));
  assert_int_equal(sync.status, 0);
  assert_int_equal(sync.nchunks, NPAGES);
  assert_int_equal(sync.flags & SR_DONE_ASYNC, 0);
  assert_int_equal(sr_swap_poll(f->swap, 1, NULL), 0);
  assert_int_equal(f->ncb, 0);
  assert_int_equal(f->ndtor, 0);
  sr_swap_stats(f->swap, &st);
  assert_int_equal(st.sync_completions, 1);
  assert_int_equal(st.pending, 0);
}

static void test_smoke_partly_present_pending(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  sr_swap_stats_t st;
  int i;

  page_out(f, 2);
  page_out(f, 5);
  memset(f->buf, 0xaa, sizeof(f->buf));
  assert_int_equal(start(f, GVA, NPAGES * 4096, 0, 0, 0, &h), SR_PENDING);
  assert_int_not_equal(h.id, 0);
  for (i = 0; i < NPAGES; i++)
    if (i != 2 && i != 5)
      assert_true(matches(f, GVA, (size_t)i * 4096, 4096));
  assert_int_equal(f->ncb, 0);
  sr_swap_stats(f->swap, &st);
  assert_int_equal(st.pending, 1);
  assert_int_equal(st.pending_chunks, 2);
  /* two PTEs of one table, and the PDE, PDPTE, PML4E above them */
  assert_int_equal(st.watched_entries, 2 + 3);
}

static void test_smoke_page_in_completes_once(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  uint64_t next = 0;

  page_out(f, 2);
  page_out(f, 5);
  assert_int_equal(start(f, GVA, NPAGES * 4096, 0, 0, 0, &h), SR_PENDING);
  assert_int_equal(sr_swap_poll(f->swap, 10, &next), 0);
  assert_true(next == SR_TIMEOUT_NONE);
  page_in(f, 2);
  assert_int_equal(sr_swap_poll(f->swap, 20, NULL), 0);
  assert_int_equal(f->ncb, 0);
  page_in(f, 5);
  assert_int_equal(sr_swap_poll(f->swap, 30, NULL), 1);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->ndtor, 1);
  assert_int_equal(f->last_status, 0);
  assert_true(f->last_flags & SR_DONE_ASYNC);
  assert_true(f->last_kinds & (1u << SR_PTE_LINUX_SWAP));
  assert_true(matches(f, GVA, 0, NPAGES * 4096));
  assert_int_equal(sr_swap_poll(f->swap, 40, NULL), 0);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(sr_swap_cancel(f->swap, h), SR_ESTALE);
}

static void test_smoke_deadline_times_out_once(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  uint64_t next = 0;

  page_out(f, 2);
  page_out(f, 5);
  assert_int_equal(start(f, GVA, NPAGES * 4096, 0, 1000, 500, &h), SR_PENDING);
  assert_int_equal(sr_swap_poll(f->swap, 1499, &next), 0);
  assert_true(next == 1500);
  assert_int_equal(sr_swap_poll(f->swap, 1500, &next), 1);
  assert_true(next == SR_TIMEOUT_NONE);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->last_status, SR_ETIMEDOUT);
  assert_int_equal(f->last_missing, (1u << 2) | (1u << 5));
  assert_int_equal(f->last_nchunks, NPAGES);
  assert_int_equal(sr_swap_poll(f->swap, 5000, NULL), 0);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->ndtor, 1);
}

static void test_smoke_partial_zero_fills(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  size_t i;

  page_out(f, 3);
  memset(f->buf, 0xaa, sizeof(f->buf));
  assert_int_equal(start(f, GVA, NPAGES * 4096, SR_READ_PARTIAL, 0, 10, &h),
                   SR_PENDING);
  assert_int_equal(sr_swap_poll(f->swap, 10, NULL), 1);
  assert_int_equal(f->last_status, SR_EPARTIAL);
  assert_true(f->last_flags & SR_DONE_PARTIAL);
  assert_int_equal(f->last_missing, 1u << 3);
  for (i = 3 * 4096; i < 4 * 4096; i++)
    assert_int_equal(f->buf[i], 0);
  assert_true(matches(f, GVA, 0, 3 * 4096));
  assert_true(matches(f, GVA, 4 * 4096, 4 * 4096));
}

static void test_smoke_cancel_once(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};

  page_out(f, 0);
  assert_int_equal(start(f, GVA, 4096, 0, 0, 0, &h), SR_PENDING);
  assert_int_equal(sr_swap_cancel(f->swap, h), 0);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->ndtor, 1);
  assert_int_equal(f->last_status, SR_ECANCELED);
  assert_int_equal(sr_swap_cancel(f->swap, h), SR_ESTALE);
  page_in(f, 0);
  assert_int_equal(sr_swap_poll(f->swap, 1, NULL), 0);
  assert_int_equal(f->ncb, 1);
}

static void test_smoke_stale_handle(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0}, h2 = {0}, zero = {0}, junk = {UINT64_MAX};

  assert_int_equal(sr_swap_cancel(f->swap, zero), SR_ESTALE);
  assert_int_equal(sr_swap_cancel(f->swap, junk), SR_ESTALE);
  page_out(f, 1);
  assert_int_equal(start(f, GVA + 4096, 4096, 0, 0, 0, &h), SR_PENDING);
  page_in(f, 1);
  assert_int_equal(sr_swap_poll(f->swap, 1, NULL), 1);
  assert_int_equal(sr_swap_cancel(f->swap, h), SR_ESTALE);
  /* The slot is reused by the next read: the old handle stays stale. */
  page_out(f, 1);
  assert_int_equal(start(f, GVA + 4096, 4096, 0, 0, 0, &h2), SR_PENDING);
  assert_int_not_equal(h.id, h2.id);
  assert_int_equal(sr_swap_cancel(f->swap, h), SR_ESTALE);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(sr_swap_cancel(f->swap, h2), 0);
  assert_int_equal(f->ncb, 2);
}

static void test_smoke_bad_ranges_rejected(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  sr_swap_stats_t st;

  assert_int_equal(start(f, GVA, 0, 0, 0, 0, &h), SR_EINVAL);
  assert_int_equal(start(f, UINT64_MAX - 10, 100, 0, 0, 0, &h), SR_EINVAL);
  assert_int_equal(start(f, UINT64_C(0x0000800000000000), 16, 0, 0, 0, &h),
                   SR_ENONCANON);
  assert_int_equal(start(f, UINT64_C(0x00007ffffffffff0), 32, 0, 0, 0, &h),
                   SR_ENONCANON);
  assert_int_equal(start(f, GVA, 16, 1u << 7, 0, 0, &h), SR_EINVAL);
  assert_int_equal(f->ncb + f->ndtor, 0);
  sr_swap_stats(f->swap, &st);
  assert_int_equal(st.rejected, 5);
  assert_int_equal(st.pending, 0);
}

static int dump_one(const sr_swap_txn_info_t* info, void* arg) {
  *(sr_swap_txn_info_t*)arg = *info;
  return 7;
}

static void test_smoke_dump_names_blocker(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  sr_swap_txn_info_t info;
  uint64_t egpa, entry;

  page_out(f, 2);
  page_out(f, 5);
  assert_int_equal(start(f, GVA, NPAGES * 4096, 0, 100, 1000, &h), SR_PENDING);
  assert_int_equal(sr_kit_entry_gpa(f->kit, f->cr3, GVA + 2 * 4096, 1, &egpa),
                   0);
  assert_int_equal(sr_kit_get_entry(f->kit, f->cr3, GVA + 2 * 4096, 1, &entry),
                   0);
  memset(&info, 0, sizeof(info));
  assert_int_equal(sr_swap_dump(f->swap, 350, dump_one, &info), 7);
  assert_int_equal(info.handle.id, h.id);
  assert_int_equal(info.nchunks, NPAGES);
  assert_int_equal(info.pending_chunks, 2);
  assert_int_equal(info.age_ns, 250);
  assert_int_equal(info.deadline_ns, 1100);
  assert_int_equal(info.block_level, 1);
  assert_int_equal(info.block_entry_gpa, egpa);
  assert_int_equal(info.block_entry, entry);
  assert_int_equal(info.block_kind, SR_PTE_LINUX_SWAP);
}

/* Every allocation of a pending read and of its completion fails in turn:
 * each run either fails cleanly (SR_ENOMEM, nothing queued, no callback)
 * or completes exactly once; no bytes are left after sr_swap_free. */
static void test_smoke_enomem_every_allocation(void** state) {
  fixture_t* f = *state;
  sr_swap_handle_t h = {0};
  sr_swap_stats_t st;
  long n;
  int rc, i;

  for (i = 0; i < NPAGES; i += 2)
    page_out(f, i);
  sr_swap_free(f->swap);
  f->swap = NULL;
  assert_int_equal(f->mem.bytes, 0);
  for (n = 0;; n++) {
    f->mem.nallocs = 0;
    f->mem.failed = 0;
    f->mem.fail_at = n;
    f->ncb = f->ndtor = 0;
    rc = new_engine(f);
    if (rc == SR_ENOMEM) {
      assert_null(f->swap);
      assert_int_equal(f->mem.bytes, 0);
      continue;
    }
    assert_int_equal(rc, 0);
    rc = start(f, GVA, NPAGES * 4096, 0, 0, 0, &h);
    sr_swap_stats(f->swap, &st);
    if (rc == SR_ENOMEM) {
      assert_int_equal(st.pending, 0);
      assert_int_equal(st.watched_entries, 0);
    } else {
      assert_int_equal(rc, SR_PENDING);
      assert_int_equal(st.pending, 1);
      for (i = 0; i < NPAGES; i += 2)
        page_in(f, i);
      assert_int_equal(sr_swap_poll(f->swap, 1, NULL), 1);
      assert_int_equal(f->last_status, 0);
      assert_true(matches(f, GVA, 0, NPAGES * 4096));
      for (i = 0; i < NPAGES; i += 2)
        page_out(f, i);
    }
    assert_int_equal(f->ncb, f->ndtor);
    sr_swap_free(f->swap);
    f->swap = NULL;
    assert_int_equal(f->mem.bytes, 0);
    if (f->mem.failed == 0)
      break;
  }
  assert_true(n > 2);
  f->mem.fail_at = -1;
  assert_int_equal(new_engine(f), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_smoke_all_present_is_sync, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_smoke_partly_present_pending, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_smoke_page_in_completes_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_smoke_deadline_times_out_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_smoke_partial_zero_fills, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_smoke_cancel_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_smoke_stale_handle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_smoke_bad_ranges_rejected, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_smoke_dump_names_blocker, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_smoke_enomem_every_allocation, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
