/* sr_swap_dump: one line of introspection per live transaction.
 *
 * Walks the age list (oldest first) and reports, for each transaction, its
 * age, deadline, pending chunks and what blocks its first pending chunk
 * (the record's level, entry GPA, last value seen and its kind). Cost:
 * O(nchunks / 64 + waiters) per transaction, meant for debugging, not for
 * a hot path. The callback must not start or end reads (the engine is
 * const here).
 */
#include <string.h>

#include "internal.h"

static void block_info(const sr_swap_t* swap, const sr__txn_t* t,
                       sr_swap_txn_info_t* info) {
  sr_pte_info_t pte;
  uint32_t i, wid;
  size_t words = sr__bitmap_words(t->nchunks);

  info->block_kind = SR_PTE_PRESENT;
  if (t->state != SR__TXN_PENDING || t->npending == 0)
    return;
  for (i = 0; i < words && t->bits[i] == 0; i++) {
  }
  if (i == words)
    return;
  i = i * 64 + (uint32_t)__builtin_ctzll(t->bits[i]);
  for (wid = t->whead; wid != SR__NIL; wid = swap->w[wid].tnext) {
    const sr__waiter_t* w = &swap->w[wid];
    if (w->lo <= i && i <= w->hi) {
      const sr__rec_t* r = &swap->rec[w->rec];
      info->block_level = r->level;
      info->block_entry_gpa = sr__rec_gpa(swap, w->rec);
      info->block_entry = sr__rec_value(swap, w->rec);
      info->block_kind = sr_pte_classify(info->block_entry, r->level,
                                         swap->opts.walk.os, &pte);
      return;
    }
  }
}

int sr_swap_dump(const sr_swap_t* swap, uint64_t now_ns,
                 int (*cb)(const sr_swap_txn_info_t* info, void* arg),
                 void* arg) {
  sr_swap_txn_info_t info;
  const sr__txn_t* t;
  const sr__txn_t* owner;
  uint32_t slot, next;
  int rc;

  if (swap == NULL || cb == NULL)
    return SR_EINVAL;
  for (slot = swap->age_head; slot != SR__NIL; slot = next) {
    t = sr__txn_at(swap, slot);
    next = t->age_next;
    if (t->state == SR__TXN_NEW)
      continue;
    owner = t;
    if (t->role == SR__ROLE_FOLLOWER && t->leader != SR__NIL)
      owner = sr__txn_at(swap, t->leader);
    memset(&info, 0, sizeof(info));
    info.handle.id = sr__txn_handle(swap, slot);
    info.cr3 = t->cr3;
    info.gva = t->gva;
    info.len = t->len;
    info.nchunks = t->nchunks;
    info.pending_chunks = owner->npending;
    info.age_ns = now_ns > t->start_ns ? now_ns - t->start_ns : 0;
    info.deadline_ns = t->deadline_ns;
    block_info(swap, owner, &info);
    rc = cb(&info, arg);
    if (rc != 0)
      return rc;
  }
  return 0;
}
