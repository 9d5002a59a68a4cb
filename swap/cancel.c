/* Cancel: one read by handle, every read of a CR3, or everything.
 *
 * A handle is generation-checked (SR_ESTALE for anything not live). A
 * PENDING read ends at once and its callback runs before sr_swap_cancel
 * returns. A read already ended by the poll (or cancel) whose callbacks are
 * running now, but whose own callback has not run yet, is DROPPED: no
 * callback, its dtor runs when its turn comes. A read inside its own
 * callback cannot be cancelled (SR_EALREADY). Cancelling by CR3 or all
 * collects the matching PENDING reads into a local list first, then runs
 * their callbacks, so a callback may start or cancel other reads safely.
 * Limits: by-CR3 and all are O(live transactions).
 */
#include "internal.h"

#define CR3_ADDR_MASK UINT64_C(0x000ffffffffff000)

int sr_swap_cancel(sr_swap_t* swap, sr_swap_handle_t handle) {
  sr__list_t done = {SR__NIL, SR__NIL};
  uint32_t slot;
  sr__txn_t* t;

  if (swap == NULL)
    return SR_EINVAL;
  if (sr__txn_lookup(swap, handle, &slot) != 0)
    return SR_ESTALE;
  t = sr__txn_at(swap, slot);
  assert(sr__txn_check(swap, t));
  switch (t->state) {
    case SR__TXN_PENDING:
      sr__txn_finish_one(swap, slot, SR_ECANCELED, &done);
      sr__txn_dispatch(swap, &done);
      return 0;
    case SR__TXN_COMPLETING:
      t->state = SR__TXN_DROPPED;
      return 0;
    default:
      return SR_EALREADY;
  }
}

/* Ends every PENDING read (all) or those of address space cr3 with
 * status, then runs their callbacks. Returns how many ended. */
int sr__cancel_matching(sr_swap_t* swap, bool all, uint64_t cr3, int status) {
  sr__list_t done = {SR__NIL, SR__NIL};
  uint32_t slot, f;
  sr__txn_t* t;
  int n = 0;

  for (slot = swap->age_head; slot != SR__NIL; slot = t->age_next) {
    t = sr__txn_at(swap, slot);
    if (t->state != SR__TXN_PENDING || t->role == SR__ROLE_FOLLOWER)
      continue; /* followers end with their leader */
    if (!all && (t->root & CR3_ADDR_MASK) != (cr3 & CR3_ADDR_MASK))
      continue;
    n++;
    for (f = t->role == SR__ROLE_LEADER ? t->fhead : SR__NIL; f != SR__NIL;
         f = sr__txn_at(swap, f)->fhead)
      n++;
    sr__txn_finish_work(swap, slot, status, &done);
  }
  sr__txn_dispatch(swap, &done);
  return n;
}

int sr_swap_cancel_cr3(sr_swap_t* swap, uint64_t cr3, int status) {
  if (swap == NULL || (status != SR_ECANCELED && status != SR_EGONE))
    return SR_EINVAL;
  if (cr3 == SR_CR3_KERNEL) {
    if (swap->opts.kernel_cr3 == 0)
      return SR_EINVAL;
    cr3 = swap->opts.kernel_cr3;
  }
  return sr__cancel_matching(swap, false, cr3, status);
}

int sr_swap_cancel_all(sr_swap_t* swap, int status) {
  if (swap == NULL || (status != SR_ECANCELED && status != SR_EIMAGEGONE))
    return SR_EINVAL;
  return sr__cancel_matching(swap, true, 0, status);
}
