/* Allocation failure: the OOM loop of libuv and SQLite over the public API.
 *
 * Every public operation that allocates is run again and again on a fresh
 * engine (or handle), failing its 1st, 2nd, ... Nth allocation in turn
 * through the sr_allocator_t hook (sr_swap_opts_t.allocator; the uv handle
 * takes sr_uv_opts_t.swap.allocator), until a run succeeds with no failure
 * injected. Each failed run must return SR_ENOMEM with nothing queued and
 * no callback, or (for a poll) keep every chunk and complete the read
 * exactly once later; the engine must stay usable; and the counting
 * allocator must be back at 0 live bytes after teardown (LSan checks what
 * the hook does not see). Operations that must not need memory (cancels,
 * completions, deadlines, dump, close) are run with every allocation
 * failing. The libuv edge is wrapped by interposing uv_timer_start and
 * uv_timer_init (forwarding to libuv through dlsym(RTLD_NEXT)): libuv 1.44
 * fails them only for a closing handle, which the public API never
 * reaches, so the wrapper is the only way to run those error paths. Each
 * loop prints how many allocation points it failed. Expected bytes come
 * from sr_kit_pattern, never from the library.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/uv.h>

#include "support/swap_fixture.h"

#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define VA UINT64_C(0x00007f0000000000)
#define NSPACES 5
#define MAP_LEN (UINT64_C(1) << 20) /* 256 pages per space */
#define MAP_PAGES (MAP_LEN / K4)
#define RWU (SR_PROT_W | SR_PROT_U)
#define MAX_POINTS 5000
/* Extra 2 MiB mappings, past the one every space has. */
#define VA_X (VA + 4 * M2)

/* The counting, failing allocator is the fixture's (swapfx_alloc_t). */

/* ---- the libuv edge ---------------------------------------------------- */

/* > 0: the n-th call from now fails with UV_EINVAL (what libuv 1.44 can
 * return). Calls are forwarded to libuv otherwise. */
static int fail_timer_start;
static int fail_timer_init;

typedef int (*timer_start_fn)(uv_timer_t*, uv_timer_cb, uint64_t, uint64_t);
typedef int (*timer_init_fn)(uv_loop_t*, uv_timer_t*);

int uv_timer_start(uv_timer_t* handle, uv_timer_cb cb, uint64_t timeout,
                   uint64_t repeat) {
  static timer_start_fn real;

  if (real == NULL)
    *(void**)&real = dlsym(RTLD_NEXT, "uv_timer_start");
  if (fail_timer_start > 0 && --fail_timer_start == 0)
    return UV_EINVAL;
  return real(handle, cb, timeout, repeat);
}

int uv_timer_init(uv_loop_t* loop, uv_timer_t* handle) {
  static timer_init_fn real;

  if (real == NULL)
    *(void**)&real = dlsym(RTLD_NEXT, "uv_timer_init");
  if (fail_timer_init > 0 && --fail_timer_init == 0)
    return UV_EINVAL;
  return real(loop, handle);
}

/* ---- fixture ----------------------------------------------------------- */

typedef struct fx_s fx_t;

/* One read as the test sees it. */
typedef struct rd_s {
  fx_t* fx;
  sr_uv_read_t req; /* uv tests */
  int ncb, ndtor;
  int status;
  bool in_start;   /* inside the call that started it */
  int cb_in_start; /* violations */
  uint8_t* buf;
} rd_t;

struct fx_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3[NSPACES];
  swapfx_alloc_t mem;
  sr_swap_t* swap;
  /* uv */
  uv_loop_t loop;
  sr_uv_t h;
  bool h_open;
  int nclose;
  uv_timer_t t1;
  int t1_ticks;
  int nprobe;
  sr_uv_liveness_t probe_answer;
};

static uint64_t seed_of(int space) {
  return UINT64_C(0x5eed0000) + (uint64_t)space;
}

static sr_pte_info_t swap_as(uint64_t offset) {
  sr_pte_info_t as;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  as.swap_offset = offset;
  return as;
}

static int setup(void** state) {
  fx_t* fx = calloc(1, sizeof(*fx));
  sr_kit_opts_t ko;
  int i;

  assert_non_null(fx);
  memset(&ko, 0, sizeof(ko));
  ko.size = 32u << 20;
  assert_int_equal(sr_kit_create(&fx->kit, &ko), 0);
  for (i = 0; i < NSPACES; i++) {
    assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3[i]),
                     0);
    assert_int_equal(
        sr_kit_map(fx->kit, fx->cr3[i], VA, MAP_LEN, SR_PAGE_4K, RWU), 0);
    assert_int_equal(sr_kit_fill(fx->kit, fx->cr3[i], VA, MAP_LEN, seed_of(i)),
                     0);
  }
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
  swapfx_alloc_init(&fx->mem);
  *state = fx;
  return 0;
}

static int teardown(void** state) {
  fx_t* fx = *state;

  swapfx_alloc_disarm(&fx->mem);
  sr_swap_free(fx->swap);
  sr_image_close(fx->image);
  sr_kit_destroy(fx->kit);
  fail_timer_start = 0;
  fail_timer_init = 0;
  assert_int_equal(fx->mem.live_bytes, 0);
  assert_int_equal(fx->mem.size_mismatch, 0);
  free(fx);
  return 0;
}

static bool matches(const uint8_t* buf, uint64_t gva, size_t len,
                    uint64_t seed) {
  size_t i;

  for (i = 0; i < len; i++)
    if (buf[i] != sr_kit_pattern(seed, gva + i))
      return false;
  return true;
}

/* The guest pages out every 3rd 4K page of space s's mapping (86 swap
 * entries). */
static void guest_out(fx_t* fx, int s) {
  sr_pte_info_t as;
  uint64_t i;

  for (i = 0; i < MAP_PAGES; i += 3) {
    as = swap_as(100 + i);
    assert_int_equal(
        sr_kit_page_out(fx->kit, fx->cr3[s], VA + i * K4, SR_LEVEL_PT, &as), 0);
  }
}

static void guest_in(fx_t* fx, int s) {
  uint64_t i;

  for (i = 0; i < MAP_PAGES; i += 3)
    assert_int_equal(
        sr_kit_page_in(fx->kit, fx->cr3[s], VA + i * K4, SR_LEVEL_PT), 0);
}

static void pde_out(fx_t* fx, int s, uint64_t gva) {
  sr_pte_info_t as = swap_as(7);

  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3[s], gva, SR_LEVEL_PD, &as),
                   0);
}

static void pde_in(fx_t* fx, int s, uint64_t gva) {
  assert_int_equal(sr_kit_page_in(fx->kit, fx->cr3[s], gva, SR_LEVEL_PD), 0);
}

static sr_swap_opts_t engine_opts(fx_t* fx) {
  sr_swap_opts_t o;

  memset(&o, 0, sizeof(o));
  o.allocator = &fx->mem.hook;
  return o;
}

static void new_engine(fx_t* fx) {
  sr_swap_opts_t o = engine_opts(fx);

  swapfx_alloc_disarm(&fx->mem);
  assert_null(fx->swap);
  assert_int_equal(sr_swap_new(&fx->swap, fx->image, &o), 0);
}

/* Frees the engine (pending reads end with callbacks) and checks that no
 * byte is left. */
static void free_engine(fx_t* fx) {
  swapfx_alloc_disarm(&fx->mem);
  sr_swap_free(fx->swap);
  fx->swap = NULL;
  assert_int_equal(fx->mem.live_bytes, 0);
  assert_int_equal(fx->mem.live_blocks, 0);
}

static void swap_cb(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  rd_t* r = data;

  (void)swap;
  if (r->in_start)
    r->cb_in_start++;
  r->ncb++;
  r->status = done->status;
}

static void swap_dtor(void* data) {
  rd_t* r = data;

  r->ndtor++;
}

static int start(fx_t* fx, rd_t* r, int s, uint64_t gva, size_t len,
                 uint32_t flags, uint64_t timeout_ns) {
  sr_swap_req_t req;
  int rc;

  memset(&req, 0, sizeof(req));
  req.cr3 = fx->cr3[s];
  req.gva = gva;
  req.buf = r->buf;
  req.len = len;
  req.flags = flags;
  req.timeout_ns = timeout_ns;
  r->in_start = true;
  rc = sr_swap_read(fx->swap, &req, 0, swap_cb, r, swap_dtor, NULL, NULL);
  r->in_start = false;
  return rc;
}

static rd_t* rd_new(fx_t* fx, size_t len) {
  rd_t* r = calloc(1, sizeof(*r));

  assert_non_null(r);
  r->fx = fx;
  r->buf = malloc(len);
  assert_non_null(r->buf);
  memset(r->buf, 0xee, len);
  return r;
}

static void rd_free(rd_t* r) {
  if (r == NULL)
    return;
  free(r->buf);
  free(r);
}

static sr_swap_stats_t stats(const fx_t* fx) {
  sr_swap_stats_t st;

  sr_swap_stats(fx->swap, &st);
  return st;
}

/* The engine holds nothing for any read. */
static void assert_nothing_queued(const fx_t* fx) {
  sr_swap_stats_t st = stats(fx);

  assert_int_equal(st.pending, 0);
  assert_int_equal(st.pending_chunks, 0);
  assert_int_equal(st.watched_entries, 0);
}

/* ---- engine ------------------------------------------------------------ */

/* sr_swap_new: every allocation it makes fails in turn -> SR_ENOMEM, *out
 * NULL, nothing left; then it succeeds. */
static void test_oom_swap_new(void** state) {
  fx_t* fx = *state;
  sr_swap_opts_t o = engine_opts(fx);
  sr_swap_t* s;
  uint64_t k;
  int rc;

  for (k = 1; k < MAX_POINTS; k++) {
    s = (sr_swap_t*)&s; /* must be overwritten */
    swapfx_alloc_arm(&fx->mem, k);
    rc = sr_swap_new(&s, fx->image, &o);
    swapfx_alloc_disarm(&fx->mem);
    if (fx->mem.failed == 0) {
      assert_int_equal(rc, 0);
      sr_swap_free(s);
      assert_int_equal(fx->mem.live_bytes, 0);
      break;
    }
    assert_int_equal(rc, SR_ENOMEM);
    assert_null(s);
    assert_int_equal(fx->mem.live_bytes, 0);
  }
  assert_true(k > 1 && k < MAX_POINTS);
  print_message("sr_swap_new: %u allocation points failed\n",
                (unsigned)(k - 1));
}

/* A synchronous read of 1 MiB - 10 bytes (a bitmap, a txn block, the
 * deadline heap): each failure is SR_ENOMEM with no callback; the engine
 * then serves the same read; the run without failure returns 0 with the
 * guest's bytes. */
static void test_oom_read_sync(void** state) {
  fx_t* fx = *state;
  size_t len = MAP_LEN - 10;
  rd_t* r = rd_new(fx, len);
  uint64_t k;
  int rc;

  for (k = 1; k < MAX_POINTS; k++) {
    new_engine(fx);
    memset(r->buf, 0xee, len);
    swapfx_alloc_arm(&fx->mem, k);
    rc = start(fx, r, 0, VA + 5, len, 0, 0);
    swapfx_alloc_disarm(&fx->mem);
    assert_int_equal(r->ncb, 0);
    assert_int_equal(r->ndtor, 0);
    if (fx->mem.failed == 0) {
      assert_int_equal(rc, 0);
      assert_true(matches(r->buf, VA + 5, len, seed_of(0)));
      free_engine(fx);
      break;
    }
    assert_int_equal(rc, SR_ENOMEM);
    assert_nothing_queued(fx);
    assert_int_equal(stats(fx).rejected, 1);
    /* still usable */
    memset(r->buf, 0xee, len);
    assert_int_equal(start(fx, r, 0, VA + 5, len, 0, 0), 0);
    assert_true(matches(r->buf, VA + 5, len, seed_of(0)));
    free_engine(fx);
  }
  assert_true(k > 1 && k < MAX_POINTS);
  print_message("sr_swap_read (sync): %u allocation points failed\n",
                (unsigned)(k - 1));
  rd_free(r);
}

/* Runs one pending read of space 0's whole mapping (86 swapped-out PTEs,
 * so 86 records, waiters and hash growth) to completion: page in, poll,
 * exactly one callback with status 0 and the guest's bytes. */
static void complete_pending(fx_t* fx, rd_t* r, int expect_cbs) {
  guest_in(fx, 0);
  assert_int_equal(sr_swap_poll(fx->swap, 1, NULL), expect_cbs);
  assert_int_equal(r->ncb, 1);
  assert_int_equal(r->ndtor, 1);
  assert_int_equal(r->status, 0);
  assert_int_equal(r->cb_in_start, 0);
  assert_true(matches(r->buf, VA + 5, MAP_LEN - 10, seed_of(0)));
  guest_out(fx, 0);
}

/* A pending read (and a join leader, which also files itself in the join
 * table): each failure is SR_ENOMEM, nothing queued (no record, no
 * waiter, no chunk counted), no callback, no dtor; the engine then serves
 * the same read to an exactly-once completion. */
static void test_oom_read_pending(void** state) {
  fx_t* fx = *state;
  size_t len = MAP_LEN - 10;
  uint32_t flags;
  rd_t* r;
  uint64_t k;
  int rc, pass;

  guest_out(fx, 0);
  for (pass = 0; pass < 2; pass++) {
    flags = pass == 0 ? 0 : SR_READ_JOIN;
    for (k = 1; k < MAX_POINTS; k++) {
      r = rd_new(fx, len);
      new_engine(fx);
      swapfx_alloc_arm(&fx->mem, k);
      rc = start(fx, r, 0, VA + 5, len, flags, 0);
      swapfx_alloc_disarm(&fx->mem);
      if (fx->mem.failed == 0) {
        assert_int_equal(rc, SR_PENDING);
        complete_pending(fx, r, 1);
        free_engine(fx);
        rd_free(r);
        break;
      }
      assert_int_equal(rc, SR_ENOMEM);
      assert_int_equal(r->ncb + r->ndtor, 0);
      assert_nothing_queued(fx);
      assert_int_equal(sr_swap_poll(fx->swap, 1, NULL), 0);
      assert_int_equal(r->ncb + r->ndtor, 0);
      /* still usable */
      assert_int_equal(start(fx, r, 0, VA + 5, len, flags, 0), SR_PENDING);
      complete_pending(fx, r, 1);
      free_engine(fx);
      rd_free(r);
    }
    assert_true(k > 10 && k < MAX_POINTS);
    print_message("sr_swap_read (pending%s): %u allocation points failed\n",
                  pass == 0 ? "" : ", join leader", (unsigned)(k - 1));
  }
  guest_in(fx, 0);
}

/* A read that joins a pending leader while the txn block and the deadline
 * heap are full (63 pending reads + the leader), so that joining needs a
 * new block, a bigger heap and a bitmap: each failure is SR_ENOMEM with no
 * callback and leaves the leader and the 63 others pending; every accepted
 * read completes exactly once. */
static void test_oom_read_join(void** state) {
  fx_t* fx = *state;
  size_t len = MAP_LEN - 10;
  rd_t* fill[63];
  rd_t *leader, *joiner;
  uint64_t k;
  int rc, i, want;

  guest_out(fx, 0);
  for (k = 1; k < MAX_POINTS; k++) {
    new_engine(fx);
    for (i = 0; i < 63; i++) {
      fill[i] = rd_new(fx, K4);
      assert_int_equal(start(fx, fill[i], 0, VA, K4, 0, UINT64_C(1) << 40),
                       SR_PENDING);
    }
    leader = rd_new(fx, len);
    joiner = rd_new(fx, len);
    assert_int_equal(
        start(fx, leader, 0, VA + 5, len, SR_READ_JOIN, UINT64_C(1) << 40),
        SR_PENDING);
    swapfx_alloc_arm(&fx->mem, k);
    rc = start(fx, joiner, 0, VA + 5, len, SR_READ_JOIN, UINT64_C(1) << 40);
    swapfx_alloc_disarm(&fx->mem);
    if (fx->mem.failed == 0) {
      assert_int_equal(rc, SR_PENDING);
      assert_int_equal(stats(fx).joined, 1);
    } else {
      assert_int_equal(rc, SR_ENOMEM);
      assert_int_equal(stats(fx).joined, 0);
    }
    assert_int_equal(stats(fx).pending, rc == SR_PENDING ? 65 : 64);
    assert_int_equal(joiner->ncb + joiner->ndtor, 0);
    want = rc == SR_PENDING ? 65 : 64;
    guest_in(fx, 0);
    assert_int_equal(sr_swap_poll(fx->swap, 1, NULL), want);
    for (i = 0; i < 63; i++) {
      assert_int_equal(fill[i]->ncb, 1);
      assert_int_equal(fill[i]->status, 0);
      assert_true(matches(fill[i]->buf, VA, K4, seed_of(0)));
      rd_free(fill[i]);
    }
    assert_int_equal(leader->ncb, 1);
    assert_int_equal(leader->status, 0);
    assert_true(matches(leader->buf, VA + 5, len, seed_of(0)));
    if (rc == SR_PENDING) {
      assert_int_equal(joiner->ncb, 1);
      assert_int_equal(joiner->ndtor, 1);
      assert_int_equal(joiner->status, 0);
      assert_true(matches(joiner->buf, VA + 5, len, seed_of(0)));
    } else {
      assert_int_equal(joiner->ncb + joiner->ndtor, 0);
    }
    assert_int_equal(joiner->cb_in_start + leader->cb_in_start, 0);
    guest_out(fx, 0);
    free_engine(fx);
    rd_free(leader);
    rd_free(joiner);
    if (rc == SR_PENDING)
      break;
  }
  assert_true(k > 3 && k < MAX_POINTS);
  print_message("sr_swap_read (join, full pools): %u allocation points\n",
                (unsigned)(k - 1));
  guest_in(fx, 0);
}

/* The next poll completes r, and only r, exactly once with status 0 and
 * the kit pattern of seed in [gva, gva + len). */
static void ends_with_the_data(fx_t* fx, const rd_t* r, uint64_t gva,
                               size_t len, uint64_t seed) {
  assert_int_equal(sr_swap_poll(fx->swap, 3, NULL), 1);
  assert_int_equal(r->ncb, 1);
  assert_int_equal(r->ndtor, 1);
  assert_int_equal(r->status, 0);
  assert_true(matches(r->buf, gva, len, seed));
}

/* A poll that must re-file chunks: a read waits on a swapped-out PDE;
 * the guest brings the page table back with every 2nd PTE swapped out, so
 * the poll copies 256 chunks and files 256 under new PTE records. Each
 * allocation of that poll fails in turn: the poll completes nothing, no
 * chunk is lost (the next poll re-files them: the read completes exactly
 * once with status 0 and every byte once the guest pages everything in). */
static void test_oom_poll_refile(void** state) {
  fx_t* fx = *state;
  uint64_t gva = VA_X;
  size_t len = M2;
  sr_pte_info_t as;
  rd_t* r;
  uint64_t k, i;
  int rc;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3[0], gva, M2, K4, RWU), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3[0], gva, M2, 77), 0);
  for (k = 1; k < MAX_POINTS; k++) {
    r = rd_new(fx, len);
    new_engine(fx);
    pde_out(fx, 0, gva);
    assert_int_equal(start(fx, r, 0, gva, len, 0, 0), SR_PENDING);
    for (i = 0; i < 512; i += 2) {
      as = swap_as(1000 + i);
      assert_int_equal(
          sr_kit_page_out(fx->kit, fx->cr3[0], gva + i * K4, SR_LEVEL_PT, &as),
          0);
    }
    pde_in(fx, 0, gva);
    swapfx_alloc_arm(&fx->mem, k);
    rc = sr_swap_poll(fx->swap, 1, NULL);
    swapfx_alloc_disarm(&fx->mem);
    assert_int_equal(rc, 0);
    assert_int_equal(r->ncb + r->ndtor, 0);
    if (fx->mem.failed != 0) {
      /* the next poll (memory back) files what is left */
      assert_int_equal(sr_swap_poll(fx->swap, 2, NULL), 0);
    }
    assert_int_equal(stats(fx).pending_chunks, 256);
    assert_true(stats(fx).watched_entries >= 256);
    for (i = 0; i < 512; i += 2)
      assert_int_equal(
          sr_kit_page_in(fx->kit, fx->cr3[0], gva + i * K4, SR_LEVEL_PT), 0);
    ends_with_the_data(fx, r, gva, len, 77);
    free_engine(fx);
    rd_free(r);
    if (fx->mem.failed == 0)
      break;
  }
  assert_true(k > 5 && k < MAX_POINTS);
  print_message("sr_swap_poll (re-filing): %u allocation points failed\n",
                (unsigned)(k - 1));
}

/* The scan's runs (consecutive entries compared as one block) are
 * optional memory: with every allocation failing, a poll over 64
 * consecutive blocking PTEs still sees the one that came back, and the
 * read completes once memory is back. */
static void test_oom_poll_scan_runs(void** state) {
  fx_t* fx = *state;
  uint64_t gva = VA_X;
  const uint64_t n = 64;
  sr_pte_info_t as;
  rd_t* r = rd_new(fx, n * K4);
  uint64_t i;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3[0], gva, n * K4, K4, RWU), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3[0], gva, n * K4, 78), 0);
  for (i = 0; i < n; i++) {
    as = swap_as(2000 + i);
    assert_int_equal(
        sr_kit_page_out(fx->kit, fx->cr3[0], gva + i * K4, SR_LEVEL_PT, &as),
        0);
  }
  new_engine(fx);
  assert_int_equal(start(fx, r, 0, gva, n * K4, 0, 0), SR_PENDING);
  assert_int_equal(
      sr_kit_page_in(fx->kit, fx->cr3[0], gva + 40 * K4, SR_LEVEL_PT), 0);
  fx->mem.fail_all = true;
  assert_int_equal(sr_swap_poll(fx->swap, 1, NULL), 0);
  assert_true(fx->mem.failed > 0); /* the runs were asked for */
  assert_int_equal(stats(fx).pending_chunks, n - 1);
  assert_int_equal(sr_swap_poll(fx->swap, 2, NULL), 0);
  fx->mem.fail_all = false;
  for (i = 0; i < n; i++)
    if (i != 40)
      assert_int_equal(
          sr_kit_page_in(fx->kit, fx->cr3[0], gva + i * K4, SR_LEVEL_PT), 0);
  ends_with_the_data(fx, r, gva, n * K4, 78);
  free_engine(fx);
  rd_free(r);
}

static int dump_count(const sr_swap_txn_info_t* info, void* arg) {
  (void)info;
  (*(int*)arg)++;
  return 0;
}

/* What must not need memory does not: with every allocation failing,
 * completions by a poll (data back, deadline), cancel by handle, by CR3 and
 * of everything, a join leader's cancel (its work passes on), dump and
 * stats all work, each read ends exactly once, and no allocation is even
 * attempted (so none of them has an OOM path to test). */
static void test_oom_completion_cancel_dump_need_no_memory(void** state) {
  fx_t* fx = *state;
  sr_swap_handle_t h[6];
  sr_swap_req_t req;
  rd_t* r[6];
  uint64_t calls;
  int i, n = 0;

  guest_out(fx, 0);
  guest_out(fx, 1);
  new_engine(fx);
  memset(&req, 0, sizeof(req));
  for (i = 0; i < 6; i++) {
    r[i] = rd_new(fx, MAP_LEN);
    req.cr3 = fx->cr3[i < 4 ? 0 : 1];
    req.gva = VA;
    req.buf = r[i]->buf;
    req.len = MAP_LEN;
    req.flags = (i == 2 || i == 3) ? SR_READ_JOIN : 0;
    req.timeout_ns = i == 1 ? 10 : 0;
    assert_int_equal(
        sr_swap_read(fx->swap, &req, 0, swap_cb, r[i], swap_dtor, &h[i], NULL),
        SR_PENDING);
  }
  assert_int_equal(stats(fx).joined, 1);
  fx->mem.fail_all = true;
  calls = fx->mem.calls;

  assert_int_equal(sr_swap_dump(fx->swap, 5, dump_count, &n), 0);
  assert_int_equal(n, 6);
  /* r[1] is due at 10 */
  assert_int_equal(sr_swap_poll(fx->swap, 10, NULL), 1);
  assert_int_equal(r[1]->ncb, 1);
  assert_int_equal(r[1]->status, SR_ETIMEDOUT);
  /* the join leader r[2] is cancelled: r[3] keeps waiting */
  assert_int_equal(sr_swap_cancel(fx->swap, h[2]), 0);
  assert_int_equal(r[2]->ncb, 1);
  assert_int_equal(r[2]->status, SR_ECANCELED);
  assert_int_equal(sr_swap_cancel(fx->swap, h[0]), 0);
  assert_int_equal(r[0]->status, SR_ECANCELED);
  assert_int_equal(sr_swap_cancel(fx->swap, h[0]), SR_ESTALE);
  assert_int_equal(sr_swap_cancel_cr3(fx->swap, fx->cr3[1], SR_EGONE), 2);
  assert_int_equal(r[4]->status, SR_EGONE);
  assert_int_equal(r[5]->status, SR_EGONE);
  /* the joiner completes from a poll once the data is back */
  guest_in(fx, 0);
  assert_int_equal(sr_swap_poll(fx->swap, 11, NULL), 1);
  assert_int_equal(r[3]->ncb, 1);
  assert_int_equal(r[3]->status, 0);
  assert_true(matches(r[3]->buf, VA, MAP_LEN, seed_of(0)));
  guest_out(fx, 0);
  assert_int_equal(sr_swap_cancel_all(fx->swap, SR_ECANCELED), 0);
  assert_int_equal(fx->mem.calls, calls);
  assert_int_equal(fx->mem.failed, 0);
  for (i = 0; i < 6; i++) {
    assert_int_equal(r[i]->ncb, 1);
    assert_int_equal(r[i]->ndtor, 1);
    rd_free(r[i]);
  }
  free_engine(fx);
  guest_in(fx, 0);
  guest_in(fx, 1);
}

/* sr_swap_free with every allocation failing still ends each pending read
 * exactly once (SR_ECANCELED) and frees everything. */
static void test_oom_swap_free_needs_no_memory(void** state) {
  fx_t* fx = *state;
  rd_t* r[3];
  int i;

  guest_out(fx, 0);
  new_engine(fx);
  for (i = 0; i < 3; i++) {
    r[i] = rd_new(fx, MAP_LEN);
    assert_int_equal(start(fx, r[i], 0, VA, MAP_LEN, 0, 0), SR_PENDING);
  }
  fx->mem.fail_all = true;
  sr_swap_free(fx->swap);
  fx->swap = NULL;
  assert_int_equal(fx->mem.failed, 0);
  assert_int_equal(fx->mem.live_bytes, 0);
  for (i = 0; i < 3; i++) {
    assert_int_equal(r[i]->ncb, 1);
    assert_int_equal(r[i]->ndtor, 1);
    assert_int_equal(r[i]->status, SR_ECANCELED);
    rd_free(r[i]);
  }
  swapfx_alloc_disarm(&fx->mem);
  guest_in(fx, 0);
}

/* ---- libuv binding ----------------------------------------------------- */

static void on_close(sr_uv_t* h) {
  fx_t* fx = h->data;

  fx->nclose++;
}

static void uv_cb(sr_uv_read_t* req, int status) {
  rd_t* r = req->data;

  if (r->in_start)
    r->cb_in_start++;
  r->ncb++;
  r->status = status;
}

static void loop_open(fx_t* fx) {
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  assert_int_equal(uv_timer_init(&fx->loop, &fx->t1), 0);
  fx->t1.data = fx;
  fx->t1_ticks = 0;
}

static void loop_close(fx_t* fx) {
  uv_close((uv_handle_t*)&fx->t1, NULL);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static sr_uv_opts_t uv_opts(fx_t* fx) {
  sr_uv_opts_t o;

  memset(&o, 0, sizeof(o));
  o.swap.allocator = &fx->mem.hook;
  o.swap.default_timeout_ns = UINT64_C(3000000000); /* no hang: 3 s */
  return o;
}

static void handle_open(fx_t* fx) {
  sr_uv_opts_t o = uv_opts(fx);

  swapfx_alloc_disarm(&fx->mem);
  assert_int_equal(sr_uv_init(&fx->loop, &fx->h, fx->image, &o), 0);
  fx->h.data = fx;
  fx->h_open = true;
}

/* Closes the handle, runs the loop to its close callback, and checks that
 * the handle's memory is all back. */
static void handle_close(fx_t* fx) {
  int before = fx->nclose;

  swapfx_alloc_disarm(&fx->mem);
  sr_uv_close(&fx->h, on_close);
  fx->h_open = false;
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fx->nclose, before + 1);
  assert_int_equal(fx->mem.live_bytes, 0);
}

static int uv_start(fx_t* fx, rd_t* r, int s, uint64_t gva, size_t len,
                    uint32_t flags) {
  sr_uv_read_opts_t o;
  int rc;

  memset(&o, 0, sizeof(o));
  o.flags = flags;
  r->req.data = r;
  r->in_start = true;
  rc = sr_uv_read(&fx->h, &r->req, fx->cr3[s], gva, r->buf, len, &o, uv_cb);
  r->in_start = false;
  return rc;
}

/* sr_uv_init: each allocation fails in turn -> SR_ENOMEM, nothing to
 * close, nothing left, the loop closes cleanly. */
static void test_oom_uv_init(void** state) {
  fx_t* fx = *state;
  sr_uv_opts_t o = uv_opts(fx);
  uint64_t k;
  int rc;

  for (k = 1; k < MAX_POINTS; k++) {
    loop_open(fx);
    swapfx_alloc_arm(&fx->mem, k);
    rc = sr_uv_init(&fx->loop, &fx->h, fx->image, &o);
    swapfx_alloc_disarm(&fx->mem);
    if (fx->mem.failed == 0) {
      assert_int_equal(rc, 0);
      fx->h.data = fx;
      handle_close(fx);
      loop_close(fx);
      break;
    }
    assert_int_equal(rc, SR_ENOMEM);
    assert_int_equal(fx->mem.live_bytes, 0);
    loop_close(fx);
  }
  assert_true(k > 1 && k < MAX_POINTS);
  print_message("sr_uv_init: %u allocation points failed\n", (unsigned)(k - 1));
}

/* sr_uv_init when uv_timer_init fails: its error comes back, nothing is
 * left allocated, nothing needs closing. */
static void test_oom_uv_init_timer_init_fails(void** state) {
  fx_t* fx = *state;
  sr_uv_opts_t o = uv_opts(fx);

  loop_open(fx);
  fail_timer_init = 1;
  assert_int_equal(sr_uv_init(&fx->loop, &fx->h, fx->image, &o), UV_EINVAL);
  assert_int_equal(fail_timer_init, 0); /* it was called */
  assert_int_equal(fx->mem.live_bytes, 0);
  loop_close(fx);
}

/* A pending sr_uv_read on the prefill+1-th CR3 (prefill 0: the handle's
 * first liveness record; 4: the records array grows): each allocation
 * fails in turn -> SR_ENOMEM, no callback ever, the other reads unharmed;
 * every accepted read completes exactly once with the guest's bytes. */
static void uv_read_pending_loop(fx_t* fx, int prefill) {
  rd_t* r[NSPACES];
  uint64_t k;
  int rc, i;

  for (i = 0; i <= prefill; i++)
    guest_out(fx, i);
  for (k = 1; k < MAX_POINTS; k++) {
    loop_open(fx);
    handle_open(fx);
    for (i = 0; i <= prefill; i++)
      r[i] = rd_new(fx, MAP_LEN);
    for (i = 0; i < prefill; i++)
      assert_int_equal(uv_start(fx, r[i], i, VA, MAP_LEN, 0), SR_PENDING);
    swapfx_alloc_arm(&fx->mem, k);
    rc = uv_start(fx, r[prefill], prefill, VA, MAP_LEN, 0);
    swapfx_alloc_disarm(&fx->mem);
    if (fx->mem.failed == 0) {
      assert_int_equal(rc, SR_PENDING);
    } else {
      assert_int_equal(rc, SR_ENOMEM);
      assert_int_equal(r[prefill]->req.status, SR_ENOMEM);
    }
    assert_int_equal(uv_run(&fx->loop, UV_RUN_NOWAIT), prefill > 0 || rc > 0);
    for (i = 0; i <= prefill; i++)
      assert_int_equal(r[i]->ncb, 0);
    for (i = 0; i <= prefill; i++)
      guest_in(fx, i);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    for (i = 0; i <= prefill; i++) {
      if (i == prefill && rc != SR_PENDING) {
        assert_int_equal(r[i]->ncb, 0);
      } else {
        assert_int_equal(r[i]->ncb, 1);
        assert_int_equal(r[i]->status, 0);
        assert_true(matches(r[i]->buf, VA, MAP_LEN, seed_of(i)));
      }
      assert_int_equal(r[i]->cb_in_start, 0);
      rd_free(r[i]);
    }
    for (i = 0; i <= prefill; i++)
      guest_out(fx, i);
    handle_close(fx);
    loop_close(fx);
    if (fx->mem.failed == 0)
      break;
  }
  assert_true(k > 1 && k < MAX_POINTS);
  print_message("sr_uv_read (pending, %d records before): %u points\n", prefill,
                (unsigned)(k - 1));
  for (i = 0; i <= prefill; i++)
    guest_in(fx, i);
}

static void test_oom_uv_read_pending_first_record(void** state) {
  uv_read_pending_loop(*state, 0);
}

static void test_oom_uv_read_pending_records_grow(void** state) {
  uv_read_pending_loop(*state, NSPACES - 1);
}

/* A synchronous sr_uv_read, plain and with SR_UV_ALWAYS_CALLBACK: each
 * failure is SR_ENOMEM and no callback; the run without failure returns 0
 * (or SR_PENDING and one callback with status 0) with the guest's bytes. */
static void test_oom_uv_read_sync(void** state) {
  fx_t* fx = *state;
  rd_t* r;
  uint64_t k;
  uint32_t flags;
  int rc, pass;

  for (pass = 0; pass < 2; pass++) {
    flags = pass == 0 ? 0 : SR_UV_ALWAYS_CALLBACK;
    for (k = 1; k < MAX_POINTS; k++) {
      loop_open(fx);
      handle_open(fx);
      r = rd_new(fx, MAP_LEN);
      swapfx_alloc_arm(&fx->mem, k);
      rc = uv_start(fx, r, 0, VA + 1, MAP_LEN - 1, flags);
      swapfx_alloc_disarm(&fx->mem);
      assert_int_equal(r->ncb, 0);
      assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
      if (fx->mem.failed == 0) {
        assert_int_equal(rc, pass == 0 ? 0 : SR_PENDING);
        assert_int_equal(r->ncb, pass);
        assert_true(matches(r->buf, VA + 1, MAP_LEN - 1, seed_of(0)));
      } else {
        assert_int_equal(rc, SR_ENOMEM);
        assert_int_equal(r->ncb, 0);
      }
      rd_free(r);
      handle_close(fx);
      loop_close(fx);
      if (fx->mem.failed == 0)
        break;
    }
    assert_true(k > 1 && k < MAX_POINTS);
    print_message("sr_uv_read (sync%s): %u allocation points failed\n",
                  pass == 0 ? "" : ", always-callback", (unsigned)(k - 1));
  }
}

static sr_uv_liveness_t probe_gone(sr_uv_t* h, uint64_t cr3, void* arg) {
  fx_t* fx = arg;

  (void)h;
  (void)cr3;
  fx->nprobe++;
  return fx->probe_answer;
}

static void page_in_later(uv_timer_t* t) {
  fx_t* fx = t->data;

  guest_in(fx, NSPACES - 1);
}

/* sr_uv_set_probe on a new CR3 (after `prefill` probes on others): each
 * failure is SR_ENOMEM and the probe is not set (never asked; the read
 * completes when the data comes back); the run without failure sets it
 * (asked, answers GONE: the read ends SR_EGONE exactly once). */
static void set_probe_loop(fx_t* fx, int prefill) {
  int s = NSPACES - 1;
  rd_t* r;
  uint64_t k;
  int rc, i;

  for (k = 1; k < MAX_POINTS; k++) {
    loop_open(fx);
    handle_open(fx);
    fx->nprobe = 0;
    fx->probe_answer = SR_UV_ALIVE;
    for (i = 0; i < prefill; i++)
      assert_int_equal(sr_uv_set_probe(&fx->h, fx->cr3[i], probe_gone, fx), 0);
    swapfx_alloc_arm(&fx->mem, k);
    rc = sr_uv_set_probe(&fx->h, fx->cr3[s], probe_gone, fx);
    swapfx_alloc_disarm(&fx->mem);
    assert_true(rc == 0 || rc == SR_ENOMEM);
    assert_true(rc == 0 || fx->mem.failed > 0);
    fx->probe_answer = SR_UV_GONE;
    guest_out(fx, s);
    r = rd_new(fx, MAP_LEN);
    assert_int_equal(uv_start(fx, r, s, VA, MAP_LEN, 0), SR_PENDING);
    assert_int_equal(uv_timer_start(&fx->t1, page_in_later, 30, 0), 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r->ncb, 1);
    if (rc == 0) {
      assert_true(fx->nprobe >= 1);
      assert_int_equal(r->status, SR_EGONE);
    } else {
      assert_int_equal(fx->nprobe, 0);
      assert_int_equal(r->status, 0);
      assert_true(matches(r->buf, VA, MAP_LEN, seed_of(s)));
    }
    rd_free(r);
    handle_close(fx);
    loop_close(fx);
    if (fx->mem.failed == 0)
      break;
  }
  assert_true(k > 1 && k < MAX_POINTS);
  print_message("sr_uv_set_probe (%d probes before): %u points\n", prefill,
                (unsigned)(k - 1));
}

static void test_oom_uv_set_probe_first(void** state) {
  set_probe_loop(*state, 0);
}

static void test_oom_uv_set_probe_records_grow(void** state) {
  set_probe_loop(*state, NSPACES - 1);
}

/* The guest's side while the handle ticks: t1 every 2 ms. At tick 1 the
 * page table comes back with every 2nd PTE swapped out (the next poll
 * must re-file 256 chunks) and every allocation starts failing; at tick 8
 * memory comes back; at tick 12 the guest pages everything in. */
static void guest_script(uv_timer_t* t) {
  fx_t* fx = t->data;
  uint64_t gva = VA_X;
  sr_pte_info_t as;
  uint64_t i;

  fx->t1_ticks++;
  if (fx->t1_ticks == 1) {
    for (i = 0; i < 512; i += 2) {
      as = swap_as(1000 + i);
      assert_int_equal(
          sr_kit_page_out(fx->kit, fx->cr3[0], gva + i * K4, SR_LEVEL_PT, &as),
          0);
    }
    pde_in(fx, 0, gva);
    fx->mem.fail_all = true;
  } else if (fx->t1_ticks == 8) {
    fx->mem.fail_all = false;
  } else if (fx->t1_ticks == 12) {
    for (i = 0; i < 512; i += 2)
      assert_int_equal(
          sr_kit_page_in(fx->kit, fx->cr3[0], gva + i * K4, SR_LEVEL_PT), 0);
    uv_timer_stop(t);
  }
}

/* Ticks of the handle (restart checks, polls that re-file) while every
 * allocation fails: no chunk is lost, nothing ends early, the read
 * completes exactly once with status 0 once memory and data are back. */
static void test_oom_uv_ticks_while_memory_fails(void** state) {
  fx_t* fx = *state;
  uint64_t gva = VA_X;
  rd_t* r;

  assert_int_equal(sr_kit_map(fx->kit, fx->cr3[0], gva, M2, K4, RWU), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3[0], gva, M2, 78), 0);
  loop_open(fx);
  handle_open(fx);
  r = rd_new(fx, M2);
  pde_out(fx, 0, gva);
  assert_int_equal(uv_start(fx, r, 0, gva, M2, 0), SR_PENDING);
  assert_int_equal(uv_timer_start(&fx->t1, guest_script, 2, 2), 0);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fx->t1_ticks, 12);
  assert_true(fx->mem.failed > 0); /* polls did meet the failures */
  assert_int_equal(r->ncb, 1);
  assert_int_equal(r->status, 0);
  assert_true(matches(r->buf, gva, M2, 78));
  rd_free(r);
  handle_close(fx);
  loop_close(fx);
}

/* Everything but starting reads and setting probes needs no memory: with
 * every allocation failing, sr_uv_cancel, sr_uv_cancel_cr3,
 * sr_uv_invalidate, sr_uv_set_image, removing a probe and close all work,
 * each pending read ends exactly once, and no allocation is attempted. */
static void test_oom_uv_cancel_invalidate_close_need_no_memory(void** state) {
  fx_t* fx = *state;
  rd_t* r[4];
  uint64_t calls;
  int i;

  guest_out(fx, 0);
  guest_out(fx, 1);
  loop_open(fx);
  handle_open(fx);
  assert_int_equal(sr_uv_set_probe(&fx->h, fx->cr3[2], probe_gone, fx), 0);
  for (i = 0; i < 4; i++) {
    r[i] = rd_new(fx, MAP_LEN);
    assert_int_equal(uv_start(fx, r[i], i < 2 ? 0 : 1, VA, MAP_LEN, 0),
                     SR_PENDING);
  }
  fx->mem.fail_all = true;
  calls = fx->mem.calls;
  assert_int_equal(sr_uv_cancel(&r[0]->req), 0);
  assert_int_equal(r[0]->status, SR_ECANCELED);
  assert_int_equal(sr_uv_cancel_cr3(&fx->h, fx->cr3[1]), 2);
  assert_int_equal(r[2]->status, SR_EGONE);
  assert_int_equal(r[3]->status, SR_EGONE);
  assert_int_equal(sr_uv_set_probe(&fx->h, fx->cr3[2], NULL, NULL), 0);
  assert_int_equal(sr_uv_invalidate(&fx->h, 1), 1);
  assert_int_equal(r[1]->status, SR_EIMAGEGONE);
  assert_int_equal(sr_uv_set_image(&fx->h, fx->image, 2), 0);
  assert_int_equal(fx->mem.calls, calls);
  for (i = 0; i < 4; i++)
    assert_int_equal(r[i]->ncb, 1);
  /* a new pending read fails cleanly while memory fails, then close
   * frees everything without memory */
  assert_int_equal(uv_start(fx, r[0], 0, VA, MAP_LEN, 0), SR_ENOMEM);
  sr_uv_close(&fx->h, on_close);
  fx->h_open = false;
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fx->nclose, 1);
  assert_int_equal(fx->mem.live_bytes, 0);
  for (i = 0; i < 4; i++) {
    assert_int_equal(r[i]->ncb, 1);
    rd_free(r[i]);
  }
  swapfx_alloc_disarm(&fx->mem);
  loop_close(fx);
  guest_in(fx, 0);
  guest_in(fx, 1);
}

/* uv_timer_start failing in sr_uv_read (libuv 1.44: only for a closing
 * timer, which the public API cannot produce; the wrapper forces it): the
 * pending read comes back with libuv's error, nothing queued in the engine
 * or the handle, no callback ever; an ALWAYS_CALLBACK synchronous read
 * comes back with the error and no callback. The handle stays usable. */
static void test_oom_uv_timer_start_fails(void** state) {
  fx_t* fx = *state;
  sr_swap_stats_t st;
  rd_t *r = rd_new(fx, MAP_LEN), *q = rd_new(fx, MAP_LEN);

  guest_out(fx, 0);
  loop_open(fx);
  handle_open(fx);
  fail_timer_start = 1;
  assert_int_equal(uv_start(fx, r, 0, VA, MAP_LEN, 0), UV_EINVAL);
  assert_int_equal(fail_timer_start, 0);
  assert_int_equal(r->req.status, UV_EINVAL);
  sr_swap_stats(fx->h.swap, &st);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.watched_entries, 0);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0); /* nothing alive */
  assert_int_equal(r->ncb, 0);
  guest_in(fx, 0);
  fail_timer_start = 1;
  assert_int_equal(uv_start(fx, q, 0, VA, MAP_LEN, SR_UV_ALWAYS_CALLBACK),
                   UV_EINVAL);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(q->ncb, 0);
  /* usable: a pending read completes once */
  guest_out(fx, 0);
  assert_int_equal(uv_start(fx, r, 0, VA, MAP_LEN, 0), SR_PENDING);
  guest_in(fx, 0);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(r->ncb, 1);
  assert_int_equal(r->status, 0);
  assert_true(matches(r->buf, VA, MAP_LEN, seed_of(0)));
  handle_close(fx);
  loop_close(fx);
  rd_free(r);
  rd_free(q);
}

/* What the public API can provoke of libuv's own failure: reads and probes
 * on a closing handle are refused (SR_EINVAL) before anything is
 * allocated or the timer touched; no callback. */
static void test_oom_uv_read_on_closing_handle(void** state) {
  fx_t* fx = *state;
  rd_t* r = rd_new(fx, MAP_LEN);
  uint64_t calls;

  guest_out(fx, 0);
  loop_open(fx);
  handle_open(fx);
  sr_uv_close(&fx->h, on_close);
  fx->h_open = false;
  calls = fx->mem.calls;
  assert_int_equal(uv_start(fx, r, 0, VA, MAP_LEN, 0), SR_EINVAL);
  assert_int_equal(uv_start(fx, r, 0, VA, MAP_LEN, SR_UV_ALWAYS_CALLBACK),
                   SR_EINVAL);
  assert_int_equal(sr_uv_set_probe(&fx->h, fx->cr3[0], probe_gone, fx),
                   SR_EINVAL);
  assert_int_equal(fx->mem.calls, calls);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fx->nclose, 1);
  assert_int_equal(r->ncb, 0);
  assert_int_equal(fx->mem.live_bytes, 0);
  loop_close(fx);
  rd_free(r);
  guest_in(fx, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_oom_swap_new, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_read_sync, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_read_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_read_join, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_poll_refile, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_poll_scan_runs, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_oom_completion_cancel_dump_need_no_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_swap_free_needs_no_memory, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_init, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_init_timer_init_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_read_pending_first_record,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_read_pending_records_grow,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_read_sync, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_set_probe_first, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_set_probe_records_grow, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_ticks_while_memory_fails,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_oom_uv_cancel_invalidate_close_need_no_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_timer_start_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_oom_uv_read_on_closing_handle, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
