/* sr_swap_poll: re-read watched entries, resume what changed, end what is
 * done or due.
 *
 * Phase 1 (scan): at most poll_budget records, round-robin from a cursor
 * so every record is reached in turn; each costs one 8-byte load. A record
 * whose entry differs from the value last seen (or that was forced) is
 * queued on the list of its level. Phase 2 (process), highest level first
 * so that a chunk moving from a PDE to a PTE that also changed is handled
 * in the same poll: the record's waiters are detached and their chunks
 * re-walked (copied and accepted, re-filed under whatever blocks them now,
 * or failed with a permanent error); records created meanwhile are not
 * re-read in this poll. Phase 3: transactions past their deadline end with
 * SR_ETIMEDOUT (or SR_EPARTIAL). Everything that ended went to a local
 * list; phase 4 runs its callbacks. An idle poll (nothing changed, nothing
 * due) does one load per record scanned and nothing else. If memory runs
 * out while re-filing, the chunks stay under their old record, forced, and
 * the next poll tries again: a poll never loses a chunk.
 */
#include "internal.h"

/* Re-walks the waiters of changed record rid; ended transactions go to
 * done. */
static void process(sr_swap_t* swap, uint32_t rid, sr__list_t* done) {
  uint32_t chain, wid, next, stop, slot;
  sr__txn_t* t;
  int rc;

  swap->rec[rid].mark = 0;
  swap->rec[rid].force = 0;
  swap->rec[rid].busy = 1;
  chain = swap->rec[rid].whead;
  swap->rec[rid].whead = SR__NIL;
  for (wid = chain; wid != SR__NIL; wid = swap->w[wid].next)
    sr__waiter_unlink_txn(swap, wid);

  for (wid = chain; wid != SR__NIL; wid = next) {
    next = swap->w[wid].next;
    slot = swap->w[wid].txn;
    t = sr__txn_at(swap, slot);
    if (t->state != SR__TXN_PENDING) {
      /* Ended earlier in this poll by a permanent error. */
      sr__waiter_put(swap, wid);
      continue;
    }
    rc = sr__txn_walk(swap, t, swap->w[wid].lo, swap->w[wid].hi, &stop);
    if (rc == SR_ENOMEM) {
      /* Keep what is left under this record; retry next poll. */
      swap->w[wid].lo = stop;
      sr__waiter_link(swap, wid, rid, slot);
      swap->rec[rid].force = 1;
      continue;
    }
    sr__waiter_put(swap, wid);
    if (rc != 0)
      sr__txn_finish_work(swap, slot, rc, done);
    else if (t->npending == 0)
      sr__txn_finish_work(swap, slot, 0, done);
  }
  swap->rec[rid].busy = 0;
  sr__rec_delete_if_empty(swap, rid);
}

int sr_swap_poll(sr_swap_t* swap, uint64_t now_ns, uint64_t* next_ns) {
  sr__list_t done = {SR__NIL, SR__NIL};
  uint32_t heads[5] = {SR__NIL, SR__NIL, SR__NIL, SR__NIL, SR__NIL};
  uint32_t n, budget, k, rid, next, slot, seq;
  uint64_t value;
  sr__txn_t* t;
  int level, ncb;

  if (next_ns != NULL)
    *next_ns = SR_TIMEOUT_NONE;
  if (swap == NULL)
    return SR_EINVAL;
  if (swap->depth > 0)
    return SR_EBUSY;
  swap->st.polls++;
  seq = ++swap->poll_seq;
  if (seq == 0)
    seq = ++swap->poll_seq;

  /* 1: scan */
  n = swap->nlive_rec;
  budget = swap->opts.poll_budget;
  if (budget == 0 || budget > n)
    budget = n;
  if (swap->cursor >= n)
    swap->cursor = 0;
  for (k = 0; k < budget; k++) {
    rid = swap->live[swap->cursor];
    if (++swap->cursor == n)
      swap->cursor = 0;
    sr__rec_t* r = &swap->rec[rid];
    swap->st.entries_reread++;
    if (sr_image_read(swap->image, r->entry_gpa, &value, sizeof(value), NULL) ==
        0) {
      if (value == r->last_value && !r->force)
        continue;
      r->last_value = value;
    }
    /* changed, forced, or unreadable (the re-walk reports why) */
    r->mark = seq;
    r->cnext = heads[r->level - 1];
    heads[r->level - 1] = rid;
  }

  /* 2: process, highest level first */
  for (level = 5; level >= 1; level--) {
    for (rid = heads[level - 1]; rid != SR__NIL; rid = next) {
      next = swap->rec[rid].cnext;
      if (swap->rec[rid].mark == seq && swap->rec[rid].pos != SR__NIL)
        process(swap, rid, &done);
    }
  }

  /* 3: deadlines */
  while ((slot = sr__heap_top(swap)) != SR__NIL) {
    t = sr__txn_at(swap, slot);
    if (t->deadline_ns > now_ns)
      break;
    sr__txn_finish_one(
        swap, slot, (t->rflags & SR_READ_PARTIAL) ? SR_EPARTIAL : SR_ETIMEDOUT,
        &done);
  }

  /* 4: callbacks */
  ncb = sr__txn_dispatch(swap, &done);
  if (next_ns != NULL && (slot = sr__heap_top(swap)) != SR__NIL)
    *next_ns = sr__txn_at(swap, slot)->deadline_ns;
  return ncb;
}
