/* Re-entrancy (issue 3, item 7): a callback may call any engine function.
 * Callbacks here start new reads on the same entries (completing at once,
 * or waiting), cancel themselves, cancel a sibling due in the same poll
 * (whose callback must then not run, while its dtor does), cancel a
 * sibling that is not due (its callback runs at once), cancel a whole CR3,
 * cancel everything, poll, and dump. In every case each pending read ends
 * exactly once: at most one callback, exactly one dtor, after it.
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
#define RWU (SR_PROT_W | SR_PROT_U)
#define SEED 0x5eed0030u

static int setup(void** state) {
  swapfx_t* fx;
  if (swapfx_new(&fx, 0, NULL) != 0)
    return -1;
  if (swapfx_map(fx, fx->cr3, VA, 8 * K4, K4, RWU, SEED) != 0) {
    swapfx_free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

#define teardown swapfx_teardown

/* Ended without its callback: dropped while completing. */
static void assert_dropped(const swapfx_rec_t* rec) {
  assert_int_equal(rec->ncb, 0);
  assert_int_equal(rec->ndtor, 1);
}

static void assert_waiting(const swapfx_rec_t* rec) {
  assert_int_equal(rec->ncb, 0);
  assert_int_equal(rec->ndtor, 0);
}

static void assert_bytes(const swapfx_rec_t* rec) {
  assert_true(swapfx_mismatch(rec->buf, rec->gva, rec->len, SEED) == SIZE_MAX);
}

/* ---- hooks ---------------------------------------------------------------
 */

/* Starts rec->other's read (its request fields preset) from the callback. */
static void hook_read_other(swapfx_rec_t* rec, sr_swap_t* swap,
                            const sr_swap_done_t* done) {
  swapfx_rec_t* o = rec->other;
  (void)swap;
  (void)done;
  rec->hook_rc = swapfx_read(rec->fx, o, o->cr3, o->gva, o->len, o->flags, 0);
}

/* Starts rec->other's read and cancels it at once. */
static void hook_read_then_cancel(swapfx_rec_t* rec, sr_swap_t* swap,
                                  const sr_swap_done_t* done) {
  swapfx_rec_t* o = rec->other;
  (void)done;
  rec->hook_rc = swapfx_read(rec->fx, o, o->cr3, o->gva, o->len, o->flags, 0);
  if (rec->hook_rc == SR_PENDING)
    rec->hook_rc2 = sr_swap_cancel(swap, o->handle);
}

static void hook_cancel_self(swapfx_rec_t* rec, sr_swap_t* swap,
                             const sr_swap_done_t* done) {
  (void)done;
  rec->hook_rc = sr_swap_cancel(swap, rec->handle);
  rec->hook_rc2 = rec->ncb; /* must still be 1 */
}

/* Cancels rec->other unless its callback already ran. */
static void hook_cancel_other(swapfx_rec_t* rec, sr_swap_t* swap,
                              const sr_swap_done_t* done) {
  (void)done;
  if (rec->other->ncb != 0) {
    rec->hook_rc = 1; /* did nothing */
    return;
  }
  rec->hook_rc = sr_swap_cancel(swap, rec->other->handle);
  rec->hook_rc2 = rec->other->ncb; /* 1: it ran now; 0: dropped */
}

static void hook_cancel_cr3(swapfx_rec_t* rec, sr_swap_t* swap,
                            const sr_swap_done_t* done) {
  (void)done;
  rec->hook_rc = sr_swap_cancel_cr3(swap, rec->cr3, SR_EGONE);
}

static void hook_cancel_all(swapfx_rec_t* rec, sr_swap_t* swap,
                            const sr_swap_done_t* done) {
  (void)done;
  rec->hook_rc = sr_swap_cancel_all(swap, SR_ECANCELED);
}

static void hook_poll(swapfx_rec_t* rec, sr_swap_t* swap,
                      const sr_swap_done_t* done) {
  uint64_t next;
  (void)done;
  rec->hook_rc = sr_swap_poll(swap, rec->fx->now, &next);
}

static int count_txn(const sr_swap_txn_info_t* info, void* arg) {
  (void)info;
  (*(int*)arg)++;
  return 0;
}

static void hook_dump(swapfx_rec_t* rec, sr_swap_t* swap,
                      const sr_swap_done_t* done) {
  sr_swap_stats_t st;
  int n = 0;
  (void)done;
  rec->hook_rc = sr_swap_dump(swap, rec->fx->now, count_txn, &n);
  rec->hook_rc2 = n;
  sr_swap_stats(swap, &st);
  rec->missing[SWAPFX_MISSING_WORDS - 1] = st.pending; /* scratch */
}

/* A record whose request is preset, to be started by a hook. */
static swapfx_rec_t* preset(swapfx_t* fx, uint64_t gva, size_t len) {
  swapfx_rec_t* r = swapfx_rec(fx);
  assert_non_null(r);
  r->cr3 = fx->cr3;
  r->gva = gva;
  r->len = len;
  return r;
}

/* ---- new reads from a callback ------------------------------------------
 */

static void test_reentrancy_callback_starts_sync_read(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b = preset(fx, VA + 100, 2 * K4);

  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  a = swapfx_rec(fx);
  assert_non_null(a);
  a->hook = hook_read_other;
  a->other = b;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA, 2 * K4, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  assert_bytes(a);
  /* the same entries, now present: complete at once, no callback */
  assert_int_equal(a->hook_rc, 0);
  assert_bytes(b);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(b);
}

static void test_reentrancy_callback_starts_pending_read(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* c;
  swapfx_rec_t* b = preset(fx, VA + 5, K4);
  sr_swap_stats_t st;

  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  a = swapfx_rec(fx);
  assert_non_null(a);
  a->hook = hook_read_other;
  a->other = b;
  /* a times out while the entry is still out; its callback starts b on
   * the same entry as c */
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA, 2 * K4, 0, 10), SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &c, fx->cr3, VA + K4, 8, 0, 0),
                   SR_PENDING);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, SR_ETIMEDOUT);
  assert_int_equal(a->hook_rc, SR_PENDING);
  assert_waiting(b);
  assert_waiting(c);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending, 2);
  assert_int_equal(st.watched_entries, 1 + 3); /* PTE; PDE, PDPTE, PML4E */
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(b);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  fx->now += 1;
  assert_int_equal(swapfx_poll(fx, NULL), 2);
  assert_once(b, 0);
  assert_once(c, 0);
  assert_bytes(b);
  assert_bytes(c);
  assert_int_equal(swapfx_violations(b), 0);
}

static void test_reentrancy_cancel_callback_starts_pending_read(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b = preset(fx, VA + K4, 2 * K4);

  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 2 * K4, 1, 1), 0);
  a = swapfx_rec(fx);
  assert_non_null(a);
  a->hook = hook_read_other;
  a->other = b;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA + 2 * K4, 8, 0, 0),
                   SR_PENDING);
  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), 0);
  assert_once(a, SR_ECANCELED);
  assert_int_equal(a->hook_rc, SR_PENDING);
  assert_waiting(b);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(b, 0);
  assert_bytes(b);
}

static void test_reentrancy_callback_reads_and_cancels_new(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a;
  swapfx_rec_t* b = preset(fx, VA + 3 * K4, 8);

  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 3 * K4, 1, 2), 0);
  a = swapfx_rec(fx);
  assert_non_null(a);
  a->hook = hook_read_then_cancel;
  a->other = b;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA + K4, 8, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  assert_int_equal(a->hook_rc, SR_PENDING);
  assert_int_equal(a->hook_rc2, 0);
  assert_once(b, SR_ECANCELED);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* ---- cancelling itself ------------------------------------------------- */

static void test_reentrancy_callback_cancels_itself(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[3];
  const int expect[3] = {0, SR_ETIMEDOUT, SR_ECANCELED};

  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  for (int i = 0; i < 3; i++) {
    r[i] = swapfx_rec(fx);
    assert_non_null(r[i]);
    r[i]->hook = hook_cancel_self;
  }
  /* ended by the data, by its deadline, by a cancel */
  assert_int_equal(swapfx_read(fx, r[0], fx->cr3, VA + K4, 8, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read(fx, r[1], fx->cr3, VA + K4, 16, 0, 3),
                   SR_PENDING);
  assert_int_equal(swapfx_read(fx, r[2], fx->cr3, VA + K4, 24, 0, 0),
                   SR_PENDING);
  assert_int_equal(sr_swap_cancel(fx->swap, r[2]->handle), 0);
  fx->now += 3;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  for (int i = 0; i < 3; i++) {
    assert_once(r[i], expect[i]);
    /* already ending: an error, and no second callback */
    assert_true(r[i]->hook_rc == SR_EALREADY || r[i]->hook_rc == SR_ESTALE);
    assert_int_equal(r[i]->hook_rc2, 1);
  }
  assert_int_equal(swapfx_stats(fx).pending, 0);
}

/* ---- cancelling a sibling --------------------------------------------- */

/* Two reads due in one poll, each cancelling the other if it runs first:
 * the first one's callback runs, the second's does not, both dtors do. */
static void sibling_case(swapfx_t* fx, uint64_t timeout_b) {
  swapfx_rec_t* a = swapfx_rec(fx);
  swapfx_rec_t* b = swapfx_rec(fx);
  swapfx_rec_t* first;
  swapfx_rec_t* second;
  int rc;

  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 2 * K4, 1, 2), 0);
  a->hook = b->hook = hook_cancel_other;
  a->other = b;
  b->other = a;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA, 2 * K4, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_read(fx, b, fx->cr3, VA + K4, 2 * K4, 0, timeout_b),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  if (timeout_b == 0)
    assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * K4, 1), 0);
  fx->now += timeout_b;
  rc = swapfx_poll(fx, NULL);
  assert_true(rc == 1 || rc == 2);
  assert_true((a->ncb == 1) != (b->ncb == 1));
  first = a->ncb == 1 ? a : b;
  second = first == a ? b : a;
  assert_once(first, timeout_b != 0 && first == b ? SR_ETIMEDOUT : 0);
  assert_int_equal(first->hook_rc, 0);  /* the cancel succeeded */
  assert_int_equal(first->hook_rc2, 0); /* and ran no callback */
  assert_dropped(second);
  assert_true(second->dtor_seq > first->cb_seq);
  /* it is gone for good */
  assert_int_equal(sr_swap_cancel(fx->swap, second->handle), SR_ESTALE);
  fx->now += 1000;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(second->ncb, 0);
  assert_int_equal(second->ndtor, 1);
  assert_int_equal(first->ncb, 1);
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

static void test_reentrancy_cancel_sibling_due_same_poll(void** state) {
  sibling_case(*state, 0);
}

static void test_reentrancy_cancel_sibling_timing_out_same_poll(void** state) {
  sibling_case(*state, 7);
}

/* A sibling that is not due: cancelling it runs its callback at once,
 * nested inside ours. */
static void test_reentrancy_cancel_sibling_not_due(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a = swapfx_rec(fx);
  swapfx_rec_t* b;

  assert_non_null(a);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 4 * K4, 1, 2), 0);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + 4 * K4, 8, 0, 0),
                   SR_PENDING);
  a->hook = hook_cancel_other;
  a->other = b;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA + K4, 8, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  assert_int_equal(a->hook_rc, 0);
  assert_int_equal(a->hook_rc2, 1);
  assert_once(b, SR_ECANCELED);
  assert_true(b->cb_seq > a->cb_seq);
  assert_int_equal(swapfx_stats(fx).pending, 0);
}

/* Cancelling from a callback that a cancel started. */
static void test_reentrancy_cancel_callback_cancels_other(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a = swapfx_rec(fx);
  swapfx_rec_t* b;

  assert_non_null(a);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + K4, 8, 0, 0),
                   SR_PENDING);
  a->hook = hook_cancel_other;
  a->other = b;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA + K4, 8, 0, 0), SR_PENDING);
  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), 0);
  assert_once(a, SR_ECANCELED);
  assert_once(b, SR_ECANCELED);
  assert_int_equal(a->hook_rc, 0);
  assert_int_equal(swapfx_stats(fx).pending, 0);
}

/* ---- cancelling a CR3 / everything ------------------------------------- */

/* a and b due in one poll, c of the same CR3 waiting, d of another CR3.
 * The first callback to run cancels (cr3 or all). */
static void bulk_case(swapfx_t* fx, swapfx_hook hook, int bulk_status,
                      bool other_cr3_too) {
  swapfx_rec_t* a = swapfx_rec(fx);
  swapfx_rec_t* b = swapfx_rec(fx);
  swapfx_rec_t* c;
  swapfx_rec_t* d;
  swapfx_rec_t* first;
  swapfx_rec_t* second;
  uint64_t cr3b;

  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &cr3b), 0);
  assert_int_equal(swapfx_map(fx, cr3b, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, cr3b, VA, 1, 9), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 5 * K4, 1, 5), 0);
  a->hook = b->hook = hook;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA, 2 * K4, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_read(fx, b, fx->cr3, VA + K4, 8, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &c, fx->cr3, VA + 5 * K4, 8, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &d, cr3b, VA, 8, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_true(swapfx_poll(fx, NULL) >= 1);

  assert_true(a->ncb == 1 || b->ncb == 1);
  first = a->ncb == 1 && (b->ncb == 0 || a->cb_seq < b->cb_seq) ? a : b;
  second = first == a ? b : a;
  assert_once(first, 0);
  assert_true(first->hook_rc >= 1); /* at least c */
  /* the sibling due in the same poll: dropped, or called once */
  assert_int_equal(swapfx_violations(second), 0);
  assert_int_equal(second->ndtor, 1);
  assert_true(second->ncb <= 1);
  if (second->ncb == 1)
    assert_true(second->done.status == 0 || second->done.status == bulk_status);
  /* the waiting read of the CR3 ends inside the callback */
  assert_once(c, bulk_status);
  assert_true(c->cb_seq > first->cb_seq);
  if (other_cr3_too) {
    assert_once(d, bulk_status);
    assert_int_equal(swapfx_stats(fx).pending, 0);
  } else {
    assert_int_equal(d->ncb, 0);
    assert_int_equal(d->ndtor, 0);
    assert_int_equal(swapfx_stats(fx).pending, 1);
    assert_int_equal(swapfx_in(fx, cr3b, VA, 1), 0);
    assert_int_equal(swapfx_poll(fx, NULL), 1);
    assert_once(d, 0);
  }
  assert_int_equal(swapfx_stats(fx).pending, 0);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

static void test_reentrancy_callback_cancels_cr3(void** state) {
  bulk_case(*state, hook_cancel_cr3, SR_EGONE, false);
}

static void test_reentrancy_callback_cancels_all(void** state) {
  bulk_case(*state, hook_cancel_all, SR_ECANCELED, true);
}

/* ---- other engine calls from a callback ------------------------------- */

static void test_reentrancy_callback_polls(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a = swapfx_rec(fx);
  swapfx_rec_t* b;
  int rc;

  assert_non_null(a);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 6 * K4, 1, 2), 0);
  a->hook = hook_poll;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA + K4, 8, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + 6 * K4, 8, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 6 * K4, 1), 0);
  rc = swapfx_poll(fx, NULL);
  assert_true(rc >= 1);
  /* a nested poll either refuses (busy) or does work; either way each
   * read ends exactly once */
  for (int i = 0; i < 3 && b->ncb == 0; i++)
    assert_true(swapfx_poll(fx, NULL) >= 0);
  assert_once(a, 0);
  assert_once(b, 0);
  assert_int_equal(swapfx_stats(fx).pending, 0);
}

static void test_reentrancy_callback_dumps(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* a = swapfx_rec(fx);
  swapfx_rec_t* b;

  assert_non_null(a);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 6 * K4, 1, 2), 0);
  a->hook = hook_dump;
  assert_int_equal(swapfx_read(fx, a, fx->cr3, VA + K4, 8, 0, 0), SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &b, fx->cr3, VA + 6 * K4, 8, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_once(a, 0);
  assert_int_equal(a->hook_rc, 0);
  assert_true(a->hook_rc2 >= 1); /* b at least */
  assert_true(a->missing[SWAPFX_MISSING_WORDS - 1] >= 1);
  assert_waiting(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_reentrancy_callback_starts_sync_read,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_reentrancy_callback_starts_pending_read, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_reentrancy_cancel_callback_starts_pending_read, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_reentrancy_callback_reads_and_cancels_new, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrancy_callback_cancels_itself,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_reentrancy_cancel_sibling_due_same_poll, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_reentrancy_cancel_sibling_timing_out_same_poll, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrancy_cancel_sibling_not_due,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_reentrancy_cancel_callback_cancels_other, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrancy_callback_cancels_cr3,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrancy_callback_cancels_all,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_reentrancy_callback_polls, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_reentrancy_callback_dumps, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
