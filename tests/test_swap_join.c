/* SR_READ_JOIN: an identical pending read (same CR3, VA, length, flags)
 * joins the existing work instead of walking and watching twice; every
 * caller still gets its own callback, its own data and its own buffer with
 * all the bytes. Reads that differ in any option are not joined. Cancelling
 * a follower ends only it; cancelling the leader ends only the leader and
 * the others go on (their buffers get the chunks copied before). Buffers
 * that a callback frees are never written again (ASan checks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/swap_asserts.h"

#define VA SWAPFX_VA
#define K4 SR_PAGE_4K
#define RWU (SR_PROT_W | SR_PROT_U)
#define SEED 0x5eed0040u
#define J SR_READ_JOIN

static int setup(void** state) {
  swapfx_t* fx;
  if (swapfx_new(&fx, 0, NULL) != 0)
    return -1;
  if (swapfx_map(fx, fx->cr3, VA, 4 * K4, K4, RWU, SEED) != 0 ||
      swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1) != 0 ||
      swapfx_out_swap(fx, fx->cr3, VA + 2 * K4, 1, 2) != 0) {
    swapfx_free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

#define teardown swapfx_teardown

static void assert_waiting(const swapfx_rec_t* rec) {
  assert_int_equal(rec->ncb, 0);
  assert_int_equal(rec->ndtor, 0);
}

static void assert_full(const swapfx_rec_t* rec) {
  assert_ptr_equal(rec->done.buf, rec->buf);
  assert_true(swapfx_mismatch(rec->buf, rec->gva, rec->len, SEED) == SIZE_MAX);
}

/* Frees the caller's buffer in the callback: the engine must not touch it
 * after. */
static void hook_free_buf(swapfx_rec_t* rec, sr_swap_t* swap,
                          const sr_swap_done_t* done) {
  (void)swap;
  (void)done;
  free(rec->buf);
  rec->buf = NULL;
}

/* A record with a malloc'd buffer its callback frees. */
static swapfx_rec_t* freeing_rec(swapfx_t* fx, size_t len) {
  swapfx_rec_t* r = swapfx_rec(fx);
  assert_non_null(r);
  r->buf = malloc(len);
  assert_non_null(r->buf);
  memset(r->buf, SWAPFX_SENTINEL, len);
  r->hook = hook_free_buf;
  return r;
}

static void page_in(swapfx_t* fx) {
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
}

static void test_join_duplicates_joined(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  sr_swap_stats_t st;
  uint64_t watched;

  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA + 3, 3 * K4, J, 0),
                   SR_PENDING);
  watched = swapfx_stats(fx).watched_entries;
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + 3, 3 * K4, J, 0),
                   SR_PENDING);
  assert_true(a->handle.id != b->handle.id);
  assert_ptr_not_equal(a->buf, b->buf);
  st = swapfx_stats(fx);
  assert_int_equal(st.joined, 1);
  assert_int_equal(st.reads, 2);
  assert_int_equal(st.pending, 2);
  /* no second walk, no second watch */
  assert_int_equal(st.watched_entries, watched);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(a);
  assert_waiting(b);
  page_in(fx);
  assert_int_equal(swapfx_poll(fx, NULL), 2);
  /* each its own callback (data = its own record), its own buffer */
  assert_once(a, 0);
  assert_once(b, 0);
  assert_full(a);
  assert_full(b);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* The follower joins after the leader copied some chunks: its buffer
 * still gets every byte. */
static void test_join_after_progress(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  swapfx_rec_t* c;

  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 4 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA, 4 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &c, fx->cr3, VA, 4 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).joined, 2);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 3);
  assert_once(a, 0);
  assert_once(b, 0);
  assert_once(c, 0);
  assert_full(a);
  assert_full(b);
  assert_full(c);
}

static void test_join_different_options_not_joined(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[5];
  uint64_t cr3b;

  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &cr3b), 0);
  assert_int_equal(swapfx_map(fx, cr3b, VA, 4 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, cr3b, VA + K4, 1, 3), 0);

  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA, 2 * K4, J, 0),
                   SR_PENDING);
  /* other flags, other length, other start, no JOIN, other CR3 */
  assert_int_equal(
      swapfx_read_new(fx, &r[1], fx->cr3, VA, 2 * K4, J | SR_READ_PARTIAL, 10),
      SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[2], fx->cr3, VA, 2 * K4 - 1, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[3], fx->cr3, VA + 1, 2 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[4], cr3b, VA, 2 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).joined, 0);
  {
    swapfx_rec_t* nj;
    assert_int_equal(swapfx_read_new(fx, &nj, fx->cr3, VA, 2 * K4, 0, 0),
                     SR_PENDING);
    assert_int_equal(swapfx_stats(fx).joined, 0);
    assert_int_equal(sr_swap_cancel(fx->swap, nj->handle), 0);
    assert_once(nj, SR_ECANCELED);
  }
  /* the partial one ends on its own deadline, alone */
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(r[1], SR_EPARTIAL);
  assert_true(swapfx_missing(r[1], 1));
  assert_int_equal(swapfx_missing_count(r[1]), 1);
  for (int i = 0; i < 5; i++)
    if (i != 1)
      assert_waiting(r[i]);
  page_in(fx);
  assert_int_equal(swapfx_in(fx, cr3b, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 4);
  for (int i = 0; i < 5; i++) {
    if (i == 1)
      continue;
    assert_once(r[i], 0);
    assert_full(r[i]);
  }
}

static void test_join_cancel_follower(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b = freeing_rec(fx, 3 * K4);

  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 3 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read(fx, b, fx->cr3, VA, 3 * K4, J, 0), SR_PENDING);
  assert_int_equal(swapfx_stats(fx).joined, 1);
  assert_int_equal(sr_swap_cancel(fx->swap, b->handle), 0);
  assert_once(b, SR_ECANCELED);
  assert_null(b->buf); /* freed by its callback */
  assert_waiting(a);
  assert_int_equal(sr_swap_cancel(fx->swap, b->handle), SR_ESTALE);
  page_in(fx);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  assert_full(a);
  assert_int_equal(b->ncb, 1);
}

/* The leader is cancelled after some progress: the followers go on, with
 * their handles, and get every byte. */
static void test_join_cancel_leader(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a = freeing_rec(fx, 4 * K4);
  swapfx_rec_t* b;
  swapfx_rec_t* c;

  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA, 4 * K4, J, 0), SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA, 4 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(swapfx_read_new(fx, &c, fx->cr3, VA, 4 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).joined, 2);

  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), 0);
  assert_once(a, SR_ECANCELED);
  assert_null(a->buf);
  assert_waiting(b);
  assert_waiting(c);
  assert_int_equal(swapfx_stats(fx).pending, 2);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(b);

  /* then a follower: the last one still completes */
  assert_int_equal(sr_swap_cancel(fx->swap, b->handle), 0);
  assert_once(b, SR_ECANCELED);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
  fx->now += 1;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(c, 0);
  assert_full(c);
  assert_int_equal(sr_swap_cancel(fx->swap, c->handle), SR_ESTALE);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* Cancelling the CR3 ends the leader and every follower, once each. */
static void test_join_cancel_cr3_ends_all(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[3];

  for (int i = 0; i < 3; i++)
    assert_int_equal(swapfx_read_new(fx, &r[i], fx->cr3, VA, 3 * K4, J, 0),
                     SR_PENDING);
  assert_int_equal(swapfx_stats(fx).joined, 2);
  assert_int_equal(sr_swap_cancel_cr3(fx->swap, fx->cr3, SR_EGONE), 3);
  for (int i = 0; i < 3; i++)
    assert_once(r[i], SR_EGONE);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* Completed work is not joined: a later identical read walks again. */
static void test_join_not_with_completed(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  swapfx_rec_t* c;

  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 3 * K4, J, 0),
                   SR_PENDING);
  page_in(fx);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  /* all present now: completes at once, joins nothing */
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA, 3 * K4, J, 0), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 7), 0);
  assert_int_equal(swapfx_read_new(fx, &c, fx->cr3, VA, 3 * K4, J, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).joined, 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(c, 0);
  assert_true(swapfx_mismatch(b->buf, VA, 3 * K4, SEED) == SIZE_MAX);
  assert_int_equal(b->ncb + b->ndtor, 0);
  assert_full(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_join_duplicates_joined, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_join_after_progress, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_join_different_options_not_joined,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_join_cancel_follower, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_join_cancel_leader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_join_cancel_cr3_ends_all, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_join_not_with_completed, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
