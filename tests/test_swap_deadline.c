/* Deadlines: a read whose chunks do not all come back in time completes
 * once with SR_ETIMEDOUT (the buffer keeps what was copied, done->missing
 * lists the rest), or with SR_READ_PARTIAL once with SR_EPARTIAL, the
 * missing chunks zero-filled, flagged and listed exactly. Also the engine's
 * default timeout, SR_TIMEOUT_NONE, and data that arrives at the deadline
 * poll. The fake clock is fx->now; expectations come from the kit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support/swap_asserts.h"

#define VA SWAPFX_VA
#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define RWU (SR_PROT_W | SR_PROT_U)
#define SEED 0x5eed0010u

#define setup swapfx_setup
#define teardown swapfx_teardown

static void assert_chunk(const swapfx_rec_t* rec, size_t i, uint64_t seed) {
  size_t off, n;
  swapfx_chunk(rec->gva, rec->len, i, &off, &n);
  assert_true(swapfx_mismatch(rec->buf + off, rec->gva + off, n, seed) ==
              SIZE_MAX);
}

static void assert_chunk_zero(const swapfx_rec_t* rec, size_t i) {
  size_t off, n;
  swapfx_chunk(rec->gva, rec->len, i, &off, &n);
  assert_true(swapfx_all(rec->buf + off, n, 0));
}

static void test_deadline_times_out_once(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t t0 = fx->now;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 3 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 3), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 9, 3 * K4 - 9, 0, 100),
                   SR_PENDING);
  fx->now = t0 + 99;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(r->ncb, 0);
  fx->now = t0 + 100;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, SR_ETIMEDOUT);
  assert_false(r->done.flags & SR_DONE_PARTIAL);
  /* exactly the missing chunk is listed; copied chunks stay copied */
  assert_true(r->had_missing);
  assert_false(swapfx_missing(r, 0));
  assert_true(swapfx_missing(r, 1));
  assert_false(swapfx_missing(r, 2));
  assert_int_equal(swapfx_missing_count(r), 1);
  assert_chunk(r, 0, SEED);
  assert_chunk(r, 2, SEED);

  /* never again: later polls, the page coming back, a cancel */
  fx->now = t0 + 10000;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(sr_swap_cancel(fx->swap, r->handle), SR_ESTALE);
  assert_int_equal(r->ncb, 1);
  assert_int_equal(r->ndtor, 1);
  assert_int_equal(swapfx_stats(fx).done_timedout, 1);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* Five chunks, 1 and 3 missing; 3 comes back before the deadline: the
 * partial completion lists chunk 1 only and zero-fills exactly it. */
static void test_deadline_partial_reports_exactly_missing(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 5 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 3 * K4, 1, 3), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 1000, 5 * K4 - 2000,
                                   SR_READ_PARTIAL, 500),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 3 * K4, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(r->ncb, 0);
  fx->now += 490;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, SR_EPARTIAL);
  assert_true(r->done.flags & SR_DONE_PARTIAL);
  assert_true(r->had_missing);
  assert_int_equal(swapfx_missing_count(r), 1);
  assert_true(swapfx_missing(r, 1));
  for (size_t i = 0; i < 5; i++) {
    if (i == 1)
      assert_chunk_zero(r, i);
    else
      assert_chunk(r, i, SEED);
  }
  assert_int_equal(swapfx_stats(fx).done_partial, 1);
}

/* Partial first and last chunks missing: only the read's bytes in them are
 * zeroed (the buffer holds exactly len bytes). */
static void test_deadline_partial_edges_zero_filled(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 4 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA + 3 * K4, 1), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + K4 - 10, 2 * K4 + 20,
                                   SR_READ_PARTIAL, 5),
                   SR_PENDING);
  fx->now += 5;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, SR_EPARTIAL);
  assert_int_equal(r->done.nchunks, 4);
  assert_int_equal(swapfx_missing_count(r), 2);
  assert_true(swapfx_missing(r, 0));
  assert_true(swapfx_missing(r, 3));
  assert_true(swapfx_all(r->buf, 10, 0));
  assert_true(swapfx_mismatch(r->buf + 10, r->gva + 10, 2 * K4, SEED) ==
              SIZE_MAX);
  assert_true(swapfx_all(r->buf + 10 + 2 * K4, 10, 0));
}

/* More than 64 chunks: the bitmap spans words. */
static void test_deadline_partial_many_chunks(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  const size_t miss[] = {0, 63, 64, 127, 150, 199};
  size_t n = sizeof(miss) / sizeof(miss[0]);

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 200 * K4, K4, RWU, SEED), 0);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + miss[k] * K4, 1, 10 + k),
                     0);
  /* 150 comes back before the deadline */
  assert_int_equal(
      swapfx_read_new(fx, &r, fx->cr3, VA, 200 * K4, SR_READ_PARTIAL, 50),
      SR_PENDING);
  assert_int_equal(swapfx_stats(fx).pending_chunks, n);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 150 * K4, 1), 0);
  fx->now += 1;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  fx->now += 49;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, SR_EPARTIAL);
  assert_int_equal(r->done.nchunks, 200);
  assert_int_equal(swapfx_missing_count(r), n - 1);
  for (size_t i = 0; i < 200; i++) {
    bool missing = false;
    for (size_t k = 0; k < n; k++)
      missing |= miss[k] == i && i != 150;
    assert_int_equal(swapfx_missing(r, i), missing);
    if (missing)
      assert_chunk_zero(r, i);
    else
      assert_chunk(r, i, SEED);
  }
}

/* Timeout 0 takes the engine default; SR_TIMEOUT_NONE never expires. */
static void test_deadline_default_and_none(void** state) {
  swapfx_t* fx = *state;
  sr_swap_opts_t opts;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  uint64_t next = 0;
  uint64_t t0;

  memset(&opts, 0, sizeof(opts));
  opts.default_timeout_ns = 300;
  assert_int_equal(swapfx_reopen(fx, &opts), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 1), 0);
  t0 = fx->now;
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 8, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA, 8, 0, SR_TIMEOUT_NONE),
                   SR_PENDING);
  assert_int_equal(swapfx_poll(fx, &next), 0);
  assert_int_equal(next, t0 + 300);
  fx->now = t0 + 299;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  fx->now = t0 + 300;
  assert_int_equal(swapfx_poll(fx, &next), 1);
  assert_once(a, SR_ETIMEDOUT);
  assert_int_equal(next, SR_TIMEOUT_NONE);
  fx->now = UINT64_MAX - 1;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(b->ncb, 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(b, 0);
}

/* No default, timeout 0: no deadline at all. */
static void test_deadline_zero_without_default_never_expires(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  uint64_t next = 0;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 1), 0);
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 8, 0, 0), SR_PENDING);
  fx->now += UINT64_C(1) << 60;
  assert_int_equal(swapfx_poll(fx, &next), 0);
  assert_int_equal(next, SR_TIMEOUT_NONE);
  assert_int_equal(a->ncb, 0);
}

/* The data is back at the poll where the deadline falls: it completes
 * with everything rather than timing out. */
static void test_deadline_data_back_at_deadline_poll(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 1), 0);
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 2 * K4, 0, 20),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &b, fx->cr3, VA, 2 * K4, SR_READ_PARTIAL, 20),
      SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 1), 0);
  fx->now += 20;
  assert_int_equal(swapfx_poll(fx, NULL), 2);
  assert_once(a, 0);
  assert_once(b, 0);
  assert_false(b->done.flags & SR_DONE_PARTIAL);
  assert_true(swapfx_mismatch(a->buf, a->gva, a->len, SEED) == SIZE_MAX);
  assert_true(swapfx_mismatch(b->buf, b->gva, b->len, SEED) == SIZE_MAX);
}

/* A PDE-blocked read times out: all its chunks are missing. */
static void test_deadline_pde_blocked_all_missing(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, M2, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_none(fx, fx->cr3, VA, 2), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 5, 70 * K4, 0, 1),
                   SR_PENDING);
  fx->now += 1;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r, SR_ETIMEDOUT);
  assert_int_equal(r->done.nchunks, 71);
  assert_int_equal(swapfx_missing_count(r), 71);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_deadline_times_out_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_deadline_partial_reports_exactly_missing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_partial_edges_zero_filled,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_partial_many_chunks, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_deadline_default_and_none, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_deadline_zero_without_default_never_expires, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_data_back_at_deadline_poll,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_pde_blocked_all_missing,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
