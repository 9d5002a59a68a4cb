/* Cancellation: by handle (its callback runs at once with SR_ECANCELED,
 * then its dtor), stale handles (never valid, completed, reused slots), by
 * CR3 (SR_ECANCELED or SR_EGONE; other CR3s untouched), all (SR_ECANCELED
 * or SR_EIMAGEGONE), while chunks are half copied, sr_swap_free with reads
 * pending, sr_swap_set_image, and the dtor running exactly once, after the
 * callback, and never for reads that did not pend.
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
#define SEED 0x5eed0020u

#define setup swapfx_setup
#define teardown swapfx_teardown

static void assert_waiting(const swapfx_rec_t* rec) {
  assert_int_equal(rec->ncb, 0);
  assert_int_equal(rec->ndtor, 0);
}

/* Maps 4 pages at VA, pages 1..3 paged out. */
static void four_pages(swapfx_t* fx, uint64_t cr3) {
  assert_int_equal(swapfx_map(fx, cr3, VA, 4 * K4, K4, RWU, SEED), 0);
  for (uint64_t i = 1; i < 4; i++)
    assert_int_equal(swapfx_out_swap(fx, cr3, VA + i * K4, 1, 10 + i), 0);
}

static void page_in_all(swapfx_t* fx, uint64_t cr3) {
  for (uint64_t i = 1; i < 4; i++)
    assert_int_equal(swapfx_in(fx, cr3, VA + i * K4, 1), 0);
}

static void test_cancel_by_handle(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  sr_swap_stats_t st;

  four_pages(fx, fx->cr3);
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 4 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + K4, K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), 0);
  /* the callback ran inside the cancel */
  assert_once(a, SR_ECANCELED);
  assert_waiting(b);
  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), SR_ESTALE);
  page_in_all(fx, fx->cr3);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_int_equal(a->ncb, 1);
  assert_int_equal(a->ndtor, 1);
  assert_once(b, 0);
  st = swapfx_stats(fx);
  assert_int_equal(st.done_cancelled, 1);
  assert_int_equal(st.done_ok, 1);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.watched_entries, 0);
}

static void test_cancel_stale_handles(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  swapfx_rec_t* c;
  sr_swap_handle_t zero = {0};
  sr_swap_handle_t junk = {UINT64_C(0xdeadbeefcafe1234)};

  four_pages(fx, fx->cr3);
  assert_int_equal(sr_swap_cancel(fx->swap, zero), SR_ESTALE);
  assert_int_equal(sr_swap_cancel(fx->swap, junk), SR_ESTALE);
  /* a completes; b is likely to reuse its slot: a's handle stays stale */
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA + K4, K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + 2 * K4, K4, 0, 0),
                   SR_PENDING);
  assert_true(b->handle.id != a->handle.id);
  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), SR_ESTALE);
  assert_waiting(b);
  /* and a cancelled one's handle */
  assert_int_equal(sr_swap_cancel(fx->swap, b->handle), 0);
  assert_once(b, SR_ECANCELED);
  assert_int_equal(swapfx_read_new(fx, &c, fx->cr3, VA + 3 * K4, K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(sr_swap_cancel(fx->swap, b->handle), SR_ESTALE);
  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), SR_ESTALE);
  assert_waiting(c);
  /* handles with the right slot and a wrong generation */
  for (uint64_t d = 1; d < 4; d++) {
    sr_swap_handle_t h = {c->handle.id + (d << 32)};
    sr_swap_handle_t l = {c->handle.id - (d << 32)};
    assert_int_equal(sr_swap_cancel(fx->swap, h), SR_ESTALE);
    assert_int_equal(sr_swap_cancel(fx->swap, l), SR_ESTALE);
  }
  assert_waiting(c);
  assert_int_equal(swapfx_stats(fx).pending, 1);
  assert_int_equal(sr_swap_cancel(NULL, c->handle), SR_EINVAL);
}

static void test_cancel_by_cr3_leaves_other_cr3(void** state) {
  swapfx_t* fx = *state;
  uint64_t cr3b;
  swapfx_rec_t* a1;
  swapfx_rec_t* a2;
  swapfx_rec_t* b1;
  sr_swap_stats_t st;

  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &cr3b), 0);
  four_pages(fx, fx->cr3);
  four_pages(fx, cr3b);
  assert_int_equal(swapfx_read_new(fx, &a1, fx->cr3, VA, 2 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &a2, fx->cr3, VA + 2 * K4, K4, 0, 100),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &b1, cr3b, VA, 4 * K4, 0, 0),
                   SR_PENDING);
  /* statuses other than the two allowed are refused, nothing ends */
  assert_int_equal(sr_swap_cancel_cr3(fx->swap, fx->cr3, SR_ETIMEDOUT),
                   SR_EINVAL);
  assert_int_equal(sr_swap_cancel_cr3(fx->swap, fx->cr3, SR_EIMAGEGONE),
                   SR_EINVAL);
  assert_int_equal(sr_swap_cancel_cr3(NULL, fx->cr3, SR_EGONE), SR_EINVAL);
  assert_waiting(a1);
  /* a CR3 with nothing pending */
  assert_int_equal(sr_swap_cancel_cr3(fx->swap, UINT64_C(0x123000), SR_EGONE),
                   0);

  assert_int_equal(sr_swap_cancel_cr3(fx->swap, fx->cr3, SR_EGONE), 2);
  assert_once(a1, SR_EGONE);
  assert_once(a2, SR_EGONE);
  assert_waiting(b1);
  st = swapfx_stats(fx);
  assert_int_equal(st.done_gone, 2);
  assert_int_equal(st.pending, 1);
  assert_int_equal(st.pending_chunks, 3);

  /* the other address space goes on normally */
  page_in_all(fx, fx->cr3);
  page_in_all(fx, cr3b);
  fx->now += 1000;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(b1, 0);
  assert_true(swapfx_mismatch(b1->buf, VA, 4 * K4, SEED) == SIZE_MAX);
  assert_int_equal(a1->ncb, 1);
  assert_int_equal(a2->ncb, 1);
  assert_int_equal(sr_swap_cancel_cr3(fx->swap, fx->cr3, SR_ECANCELED), 0);
}

static void test_cancel_all(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[3];
  uint64_t cr3b;
  sr_swap_stats_t st;

  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &cr3b), 0);
  four_pages(fx, fx->cr3);
  four_pages(fx, cr3b);
  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA, 2 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[1], cr3b, VA + K4, K4, 0, 50),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &r[2], cr3b, VA, 4 * K4, SR_READ_PARTIAL, 0),
      SR_PENDING);
  assert_int_equal(sr_swap_cancel_all(fx->swap, SR_EGONE), SR_EINVAL);
  assert_int_equal(sr_swap_cancel_all(fx->swap, 0), SR_EINVAL);
  assert_int_equal(sr_swap_cancel_all(NULL, SR_ECANCELED), SR_EINVAL);
  assert_int_equal(swapfx_stats(fx).pending, 3);
  /* a new image needs no pending reads */
  assert_int_equal(sr_swap_set_image(fx->swap, fx->image), SR_EBUSY);
  assert_int_equal(sr_swap_set_image(fx->swap, NULL), SR_EINVAL);

  assert_int_equal(sr_swap_cancel_all(fx->swap, SR_EIMAGEGONE), 3);
  for (int i = 0; i < 3; i++)
    assert_once(r[i], SR_EIMAGEGONE);
  st = swapfx_stats(fx);
  assert_int_equal(st.done_imagegone, 3);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.pending_chunks, 0);
  assert_int_equal(st.watched_entries, 0);
  assert_int_equal(sr_swap_cancel_all(fx->swap, SR_ECANCELED), 0);
  assert_int_equal(sr_swap_set_image(fx->swap, fx->image), 0);
  /* the engine still works after */
  page_in_all(fx, fx->cr3);
  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA, 4 * K4, 0, 0), 0);
  assert_true(swapfx_mismatch(r[0]->buf, VA, 4 * K4, SEED) == SIZE_MAX);
}

/* A new image: reads go through it (a second kit image of the same file
 * opened after a hole was punched sees the hole). */
static void test_cancel_set_image_replaces_image(void** state) {
  swapfx_t* fx = *state;
  sr_image_t* img2 = NULL;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  uint64_t frame;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA, 1);
  assert_int_equal(sr_kit_punch_hole(fx->kit, frame, K4), 0);
  /* the old image still maps the frame */
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, K4, 0, 0), 0);
  assert_int_equal(sr_kit_open_image(fx->kit, &img2), 0);
  assert_int_equal(sr_swap_set_image(fx->swap, img2), 0);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA, K4, 0, 0), SR_EHOLE);
  /* the fixture closes its image after the engine; swap them */
  sr_image_close(fx->image);
  fx->image = img2;
}

/* Cancel by CR3 while some chunks are copied and others not. */
static void test_cancel_cr3_half_copied(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b;
  sr_swap_stats_t st;

  four_pages(fx, fx->cr3);
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, 4 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &b, fx->cr3, VA + K4, 3 * K4, SR_READ_PARTIAL, 0),
      SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending_chunks, 4); /* 2 of a, 2 of b */
  assert_int_equal(sr_swap_cancel_cr3(fx->swap, fx->cr3, SR_ECANCELED), 2);
  assert_once(a, SR_ECANCELED);
  assert_once(b, SR_ECANCELED);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.pending_chunks, 0);
  assert_int_equal(st.watched_entries, 0);
  assert_int_equal(st.done_cancelled, 2);
  /* nothing of them is left in the watch index */
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 3 * K4, 1), 0);
  fx->now += 100;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(a->ncb, 1);
  assert_int_equal(b->ncb, 1);
  assert_int_equal(a->ndtor, 1);
  assert_int_equal(b->ndtor, 1);
}

/* sr_swap_free ends every pending read with SR_ECANCELED. */
static void test_cancel_free_with_pending(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[3];
  four_pages(fx, fx->cr3);
  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA, 2 * K4, 0, 10),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &r[1], fx->cr3, VA, 2 * K4, SR_READ_JOIN, 0),
      SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &r[2], fx->cr3, VA, 2 * K4, SR_READ_JOIN, 0),
      SR_PENDING);
  swapfx_close_engine(fx);
  for (int i = 0; i < 3; i++)
    assert_once(r[i], SR_ECANCELED);
}

/* The dtor: once per pending read, after its callback, whatever ends it;
 * never for a read that completed at once or was rejected; NULL allowed. */
static void test_cancel_dtor_exactly_once(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* done;
  swapfx_rec_t* timed;
  swapfx_rec_t* canc;
  swapfx_rec_t* sync;
  swapfx_rec_t* rej;
  swapfx_rec_t* nodtor = swapfx_rec(fx);
  sr_swap_req_t req;
  sr_swap_handle_t h;

  assert_non_null(nodtor);
  four_pages(fx, fx->cr3);
  assert_int_equal(swapfx_read_new(fx, &done, fx->cr3, VA + K4, K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &timed, fx->cr3, VA + 2 * K4, K4, 0, 5),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &canc, fx->cr3, VA + 3 * K4, K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &sync, fx->cr3, VA, K4, 0, 0), 0);
  assert_int_equal(swapfx_read_new(fx, &rej, fx->cr3, VA, 0, 0, 0), SR_EINVAL);
  /* no dtor given */
  nodtor->buf = swapfx_buf(fx, K4);
  assert_non_null(nodtor->buf);
  memset(&req, 0, sizeof(req));
  req.cr3 = fx->cr3;
  req.gva = VA + 3 * K4;
  req.buf = nodtor->buf;
  req.len = K4;
  assert_int_equal(
      sr_swap_read(fx->swap, &req, fx->now, swapfx_cb, nodtor, NULL, &h, NULL),
      SR_PENDING);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  fx->now += 5;
  assert_int_equal(swapfx_poll(fx, NULL), 2);
  assert_int_equal(sr_swap_cancel(fx->swap, canc->handle), 0);
  assert_int_equal(sr_swap_cancel(fx->swap, h), 0);
  assert_once(done, 0);
  assert_once(timed, SR_ETIMEDOUT);
  assert_once(canc, SR_ECANCELED);
  assert_int_equal(nodtor->ncb, 1);
  assert_int_equal(nodtor->ndtor, 0);
  assert_int_equal(sync->ncb + sync->ndtor, 0);
  assert_int_equal(rej->ncb + rej->ndtor, 0);
  swapfx_close_engine(fx);
  assert_int_equal(done->ndtor + timed->ndtor + canc->ndtor, 3);
  assert_int_equal(sync->ndtor + rej->ndtor, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_cancel_by_handle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_stale_handles, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_by_cr3_leaves_other_cr3,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_set_image_replaces_image,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_cr3_half_copied, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_free_with_pending, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_dtor_exactly_once, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
