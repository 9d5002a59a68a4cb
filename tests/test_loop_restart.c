/* Restart detection on a real uv_loop_t: two address spaces A and B with
 * pending reads; the kit changes A's root (kernel half overwritten, root
 * zeroed, root beyond the end of a truncated file), or A's probe answers
 * GONE, or the caller calls sr_uv_cancel_cr3: A's reads end with SR_EGONE
 * exactly once each, while B's read still completes after the kit pages
 * it in. Also: a probe answering UNKNOWN keeps waiting, a removed probe is
 * not asked, the reference is taken when the first read starts,
 * restart_check_ticks spaces the checks, a read started after a space was
 * found gone is judged against a fresh reference, and 5-level roots.
 * Expected bytes come from sr_kit_pattern.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/loop_asserts.h"

#include <swapread/kit.h>
#include <swapread/uv.h>

#define GVA UINT64_C(0x7f0000400000)
#define NPAGES 4
#define PAGE 4096
#define SEED_A UINT64_C(0xa)
#define SEED_B UINT64_C(0xb)
#define KENTRY 300 /* a kernel-half root entry */
#define NREQ 4

typedef struct fixture_s fixture_t;

typedef struct slot_s {
  sr_uv_read_t req;
  fixture_t* f;
  int ncb;
  int status;
  unsigned char buf[PAGE];
} slot_t;

typedef struct probe_s {
  int ncalls;
  sr_uv_liveness_t answer;
} probe_t;

struct fixture_s {
  uv_loop_t loop;
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3a, cr3b;
  sr_uv_t h;
  int ncb;
  int nclose;
  slot_t s[NREQ];
  uv_timer_t watchdog; /* unref'd: fails a test instead of hanging */
  uv_timer_t t1, t2;
  void (*change)(fixture_t* f); /* run by t1 */
  int cancel_rc;
  int ncb_after_cancel;
  probe_t pa, pb;
  bool reread; /* A's first callback starts slot 3 on A */
  int reread_rc;
};

static void on_read(sr_uv_read_t* req, int status);

static void on_close(sr_uv_t* h) {
  fixture_t* f = h->data;

  f->nclose++;
}

static void set_kernel_entry(sr_kit_t* kit, uint64_t cr3, uint64_t value) {
  assert_int_equal(
      sr_kit_write_phys(kit, cr3 + KENTRY * 8, &value, sizeof(value)), 0);
}

static uint64_t new_space(sr_kit_t* kit, sr_paging_t paging, uint64_t seed) {
  uint64_t cr3;

  assert_int_equal(sr_kit_new_space(kit, paging, &cr3), 0);
  assert_int_equal(sr_kit_map(kit, cr3, GVA, NPAGES * PAGE, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_fill(kit, cr3, GVA, NPAGES * PAGE, seed), 0);
  /* Something in the kernel half, as every real root has. */
  set_kernel_entry(kit, cr3, UINT64_C(0x1000) | 0x63);
  return cr3;
}

static int setup(void** state) {
  fixture_t* f = calloc(1, sizeof(*f));
  sr_kit_opts_t ko;
  int i;

  assert_non_null(f);
  memset(&ko, 0, sizeof(ko));
  ko.size = 8u << 20;
  assert_int_equal(sr_kit_create(&f->kit, &ko), 0);
  /* B first: everything of B lies below A's root (truncation test). */
  f->cr3b = new_space(f->kit, SR_PAGING_4LEVEL, SEED_B);
  f->cr3a = new_space(f->kit, SR_PAGING_4LEVEL, SEED_A);
  assert_true(f->cr3a > f->cr3b);
  loopfx_open(&f->loop, &f->watchdog);
  assert_int_equal(uv_timer_init(&f->loop, &f->t1), 0);
  assert_int_equal(uv_timer_init(&f->loop, &f->t2), 0);
  f->t1.data = f;
  f->t2.data = f;
  f->pa.answer = SR_UV_ALIVE;
  f->pb.answer = SR_UV_ALIVE;
  for (i = 0; i < NREQ; i++) {
    f->s[i].f = f;
    f->s[i].req.data = &f->s[i];
  }
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fixture_t* f = *state;

  uv_close((uv_handle_t*)&f->t1, NULL);
  uv_close((uv_handle_t*)&f->t2, NULL);
  loopfx_close(&f->loop, &f->watchdog);
  sr_image_close(f->image);
  sr_kit_destroy(f->kit);
  free(f);
  return 0;
}

static void make_handle(fixture_t* f, uint32_t restart_ticks) {
  sr_uv_opts_t o;

  /* Opened in the test, not in setup: cmocka restores signal handlers
   * after setup, which would drop the image's SIGBUS containment that the
   * truncation test relies on (an open puts it back: core/fault.c). */
  assert_int_equal(sr_kit_open_image(f->kit, &f->image), 0);
  memset(&o, 0, sizeof(o));
  o.max_period_ms = 10;
  o.restart_check_ticks = restart_ticks;
  o.swap.default_timeout_ns = UINT64_C(2000000000); /* a bug: no hang */
  assert_int_equal(sr_uv_init(&f->loop, &f->h, f->image, &o), 0);
  f->h.data = f;
}

static void close_handle(fixture_t* f) {
  sr_uv_close(&f->h, on_close);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->nclose, 1);
}

static void page_out(fixture_t* f, uint64_t cr3, int page) {
  sr_pte_info_t as;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 2;
  as.swap_offset = 77 + (uint64_t)page;
  assert_int_equal(
      sr_kit_page_out(f->kit, cr3, GVA + (uint64_t)page * PAGE, 1, &as), 0);
}

static void page_in(fixture_t* f, uint64_t cr3, int page) {
  assert_int_equal(sr_kit_page_in(f->kit, cr3, GVA + (uint64_t)page * PAGE, 1),
                   0);
}

static bool matches(const unsigned char* buf, uint64_t seed, uint64_t gva) {
  size_t i;

  for (i = 0; i < PAGE; i++)
    if (buf[i] != sr_kit_pattern(seed, gva + i))
      return false;
  return true;
}

static int start(fixture_t* f, int i, uint64_t cr3, int page) {
  return sr_uv_read(&f->h, &f->s[i].req, cr3, GVA + (uint64_t)page * PAGE,
                    f->s[i].buf, PAGE, NULL, on_read);
}

static void on_read(sr_uv_read_t* req, int status) {
  slot_t* s = req->data;
  fixture_t* f = s->f;

  f->ncb++;
  s->ncb++;
  s->status = status;
  if (f->reread && s == &f->s[0]) {
    f->reread = false;
    f->reread_rc = start(f, 3, f->cr3a, 1);
  }
}

/* A: slots 0 and 1 (pages 0 and 1 out); B: slot 2 (page 0 out). */
static void start_three(fixture_t* f) {
  page_out(f, f->cr3a, 0);
  page_out(f, f->cr3a, 1);
  page_out(f, f->cr3b, 0);
  assert_int_equal(start(f, 0, f->cr3a, 0), SR_PENDING);
  assert_int_equal(start(f, 1, f->cr3a, 1), SR_PENDING);
  assert_int_equal(start(f, 2, f->cr3b, 0), SR_PENDING);
}

/* t1: the test's change to A, then B's page comes back. */
static void on_t1(uv_timer_t* t) {
  fixture_t* f = t->data;

  if (f->change != NULL)
    f->change(f);
  page_in(f, f->cr3b, 0);
}

/* Runs the loop with t1 at 10 ms; A's two reads must end `a_status`. */
static void run_and_check(fixture_t* f, int a_status) {
  assert_int_equal(uv_timer_start(&f->t1, on_t1, 10, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->ncb, 3);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, a_status);
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, a_status);
  assert_int_equal(f->s[2].ncb, 1);
  assert_int_equal(f->s[2].status, 0);
  assert_true(matches(f->s[2].buf, SEED_B, GVA));
}

static void change_kernel_half(fixture_t* f) {
  set_kernel_entry(f->kit, f->cr3a, UINT64_C(0x2000) | 0x63);
}

static void change_zero_root(fixture_t* f) {
  static const unsigned char zero[PAGE];

  assert_int_equal(sr_kit_write_phys(f->kit, f->cr3a, zero, PAGE), 0);
}

/* What a Linux exit leaves in a freed PGD: user entries cleared, the
 * kernel half intact (seen on a real guest, tests/guest). */
static void change_user_half_cleared(fixture_t* f) {
  static const unsigned char zero[PAGE / 2];

  assert_int_equal(sr_kit_write_phys(f->kit, f->cr3a, zero, sizeof(zero)), 0);
}

static void change_truncate(fixture_t* f) {
  assert_int_equal(sr_kit_truncate(f->kit, f->cr3a), 0);
}

static void change_cancel(fixture_t* f) {
  /* PCID bits in 11:0 name the same address space. */
  f->cancel_rc = sr_uv_cancel_cr3(&f->h, f->cr3a | 0x5);
  f->ncb_after_cancel = f->ncb;
}

static void expect_gone(void** state, void (*change)(fixture_t* f)) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  make_handle(f, 0);
  start_three(f);
  f->change = change;
  run_and_check(f, SR_EGONE);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.spaces_gone, 1);
  assert_true(st.restart_checks >= 2);
  close_handle(f);
  assert_int_equal(f->ncb, 3);
}

static void test_restart_kernel_half_changed(void** state) {
  expect_gone(state, change_kernel_half);
}

static void test_restart_root_zeroed(void** state) {
  expect_gone(state, change_zero_root);
}

static void test_restart_user_half_cleared(void** state) {
  expect_gone(state, change_user_half_cleared);
}

static void test_restart_root_beyond_eof(void** state) {
  expect_gone(state, change_truncate);
}

static sr_uv_liveness_t probe(sr_uv_t* h, uint64_t cr3, void* arg) {
  probe_t* p = arg;

  (void)h;
  (void)cr3;
  p->ncalls++;
  return p->answer;
}

static void change_probe_gone(fixture_t* f) {
  f->pa.answer = SR_UV_GONE;
}

static void test_restart_probe_gone(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  make_handle(f, 0);
  f->pb.answer = SR_UV_UNKNOWN;
  assert_int_equal(sr_uv_set_probe(&f->h, f->cr3a, probe, &f->pa), 0);
  assert_int_equal(sr_uv_set_probe(&f->h, f->cr3b, probe, &f->pb), 0);
  start_three(f);
  f->change = change_probe_gone;
  run_and_check(f, SR_EGONE);
  assert_true(f->pa.ncalls >= 2); /* ALIVE before t1, GONE after */
  assert_true(f->pb.ncalls >= 1);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.spaces_gone, 1);
  close_handle(f);
  assert_int_equal(f->ncb, 3);
}

/* t2: pages A's pages 0 and 1 in. */
static void on_t2_both(uv_timer_t* t) {
  fixture_t* f = t->data;

  page_in(f, f->cr3a, 0);
  page_in(f, f->cr3a, 1);
}

static void test_restart_probe_unknown_keeps_waiting(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;
  int calls;

  make_handle(f, 0);
  f->pa.answer = SR_UV_UNKNOWN;
  assert_int_equal(sr_uv_set_probe(&f->h, f->cr3a, probe, &f->pa), 0);
  start_three(f);
  f->change = NULL;
  /* B at 10 ms; A at 60 ms: A waits through UNKNOWN answers. */
  assert_int_equal(uv_timer_start(&f->t2, on_t2_both, 60, 0), 0);
  run_and_check(f, 0);
  assert_true(matches(f->s[0].buf, SEED_A, GVA));
  assert_true(matches(f->s[1].buf, SEED_A, GVA + PAGE));
  assert_true(f->pa.ncalls >= 1);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.spaces_gone, 0);
  /* No reads of A: its probe is not asked any more. */
  calls = f->pa.ncalls;
  page_out(f, f->cr3b, 1);
  assert_int_equal(start(f, 2, f->cr3b, 1), SR_PENDING);
  assert_int_equal(uv_run(&f->loop, UV_RUN_ONCE), 1);
  assert_int_equal(uv_run(&f->loop, UV_RUN_ONCE), 1);
  assert_int_equal(f->pa.ncalls, calls);
  close_handle(f);
  assert_int_equal(f->s[2].ncb, 2);
  assert_int_equal(f->s[2].status, SR_ECANCELED);
  assert_int_equal(f->ncb, 4);
}

static void test_restart_probe_removed(void** state) {
  fixture_t* f = *state;

  make_handle(f, 0);
  f->pa.answer = SR_UV_GONE;
  assert_int_equal(sr_uv_set_probe(&f->h, f->cr3a, probe, &f->pa), 0);
  assert_int_equal(sr_uv_set_probe(&f->h, f->cr3a, NULL, NULL), 0);
  start_three(f);
  f->change = NULL;
  assert_int_equal(uv_timer_start(&f->t1, on_t1, 10, 0), 0);
  while (f->s[2].ncb == 0)
    assert_int_equal(uv_run(&f->loop, UV_RUN_ONCE), 1);
  page_in(f, f->cr3a, 0);
  page_in(f, f->cr3a, 1);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->pa.ncalls, 0);
  assert_int_equal(f->ncb, 3);
  assert_int_equal(f->s[0].status, 0);
  assert_int_equal(f->s[1].status, 0);
  close_handle(f);
}

static void test_restart_cancel_cr3(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  make_handle(f, 0);
  assert_int_equal(sr_uv_cancel_cr3(&f->h, f->cr3a), 0); /* none yet */
  start_three(f);
  f->change = change_cancel;
  run_and_check(f, SR_EGONE);
  assert_int_equal(f->cancel_rc, 2);
  assert_int_equal(f->ncb_after_cancel, 2); /* before it returned */
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.spaces_gone, 0); /* the caller's word, not a check */
  close_handle(f);
  assert_int_equal(f->ncb, 3);
}

/* A change made before the first read is part of the reference. */
static void test_restart_reference_at_first_read(void** state) {
  fixture_t* f = *state;

  make_handle(f, 0);
  change_kernel_half(f);
  start_three(f);
  f->change = NULL;
  assert_int_equal(uv_timer_start(&f->t1, on_t1, 10, 0), 0);
  while (f->s[2].ncb == 0)
    assert_int_equal(uv_run(&f->loop, UV_RUN_ONCE), 1);
  page_in(f, f->cr3a, 0);
  page_in(f, f->cr3a, 1);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->ncb, 3);
  assert_int_equal(f->s[0].status, 0);
  assert_int_equal(f->s[1].status, 0);
  assert_true(matches(f->s[1].buf, SEED_A, GVA + PAGE));
  close_handle(f);
}

/* With checks every 10^6 ticks, none is made in this test. */
static void test_restart_check_ticks(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  make_handle(f, 1000000);
  start_three(f);
  f->change = change_kernel_half;
  assert_int_equal(uv_timer_start(&f->t1, on_t1, 10, 0), 0);
  while (f->s[2].ncb == 0)
    assert_int_equal(uv_run(&f->loop, UV_RUN_ONCE), 1);
  page_in(f, f->cr3a, 0);
  page_in(f, f->cr3a, 1);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->ncb, 3);
  assert_int_equal(f->s[0].status, 0);
  assert_int_equal(f->s[1].status, 0);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.restart_checks, 0);
  assert_int_equal(st.spaces_gone, 0);
  assert_true(st.ticks >= 2);
  close_handle(f);
}

/* t2: pages A's page 1 in (for the read started after A was gone). */
static void on_t2(uv_timer_t* t) {
  fixture_t* f = t->data;

  page_in(f, f->cr3a, 1);
}

static void test_restart_read_after_gone(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  make_handle(f, 0);
  start_three(f);
  f->change = change_kernel_half;
  f->reread = true;
  assert_int_equal(uv_timer_start(&f->t1, on_t1, 10, 0), 0);
  assert_int_equal(uv_timer_start(&f->t2, on_t2, 60, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->s[0].status, SR_EGONE);
  assert_int_equal(f->s[1].status, SR_EGONE);
  assert_int_equal(f->reread_rc, SR_PENDING);
  /* Judged against the root as it was when it started: completes. */
  assert_int_equal(f->s[3].ncb, 1);
  assert_int_equal(f->s[3].status, 0);
  assert_true(matches(f->s[3].buf, SEED_A, GVA + PAGE));
  assert_int_equal(f->ncb, 4);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.spaces_gone, 1);
  close_handle(f);
}

static void test_restart_5level(void** state) {
  fixture_t* f = *state;
  sr_kit_t* kit;
  sr_image_t* image;
  sr_kit_opts_t ko;
  sr_uv_opts_t o;
  uint64_t cr3;

  memset(&ko, 0, sizeof(ko));
  ko.size = 4u << 20;
  assert_int_equal(sr_kit_create(&kit, &ko), 0);
  cr3 = new_space(kit, SR_PAGING_5LEVEL, SEED_A);
  assert_int_equal(sr_kit_open_image(kit, &image), 0);
  memset(&o, 0, sizeof(o));
  o.swap.walk.paging = SR_PAGING_5LEVEL;
  o.swap.default_timeout_ns = UINT64_C(2000000000);
  o.max_period_ms = 10;
  assert_int_equal(sr_uv_init(&f->loop, &f->h, image, &o), 0);
  f->h.data = f;
  {
    sr_pte_info_t as;

    memset(&as, 0, sizeof(as));
    as.kind = SR_PTE_LINUX_SWAP;
    as.swap_type = 1;
    as.swap_offset = 9;
    assert_int_equal(sr_kit_page_out(kit, cr3, GVA, 1, &as), 0);
  }
  assert_int_equal(sr_uv_read(&f->h, &f->s[0].req, cr3, GVA, f->s[0].buf, PAGE,
                              NULL, on_read),
                   SR_PENDING);
  /* The PML5's kernel half changes. */
  set_kernel_entry(kit, cr3, UINT64_C(0x3000) | 0x63);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->s[0].status, SR_EGONE);
  close_handle(f);
  sr_image_close(image);
  sr_kit_destroy(kit);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_restart_kernel_half_changed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_root_zeroed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_user_half_cleared, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_root_beyond_eof, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_probe_gone, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_probe_unknown_keeps_waiting,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_probe_removed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_cancel_cr3, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_reference_at_first_read,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_check_ticks, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_read_after_gone, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restart_5level, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
