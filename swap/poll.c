/* sr_swap_poll: re-read watched entries, resume what changed, end what is
 * done or due.
 *
 * Phase 1 (scan, scan.c): at most poll_budget records, round-robin from a
 * cursor so every record is reached in turn; each costs one 8-byte load,
 * parents as well as blocking entries. The entry GPAs and last values sit
 * in dense parallel arrays in scan order; runs of consecutive entries are
 * compared with one memcmp, the rest in batches by sr_image_diff64, so an
 * unchanged entry costs next to nothing. A record whose entry differs from
 * the value last seen (or that was forced, or could not be read) is queued on
 * the list of its level; a parent that only gained A/D bits is updated
 * and not queued. Phase 2 (process), highest level first: a queued
 * record's waiters are detached and their chunks re-walked (copied and
 * accepted, re-filed under whatever blocks them now, or failed with a
 * permanent error); if the entry moved (or was forced or unreadable),
 * the waiters of every record under it are re-walked too, and those
 * records, queued or not, are not processed again in this poll. Records
 * created meanwhile are not re-read in this poll. Phase 3: transactions
 * past their deadline end with SR_ETIMEDOUT (or SR_EPARTIAL). Everything
 * that ended went to a local list; phase 4 runs the monitor events that
 * phase 2 queued (a watched VA re-walked there is re-filed like a waiter
 * and queued once if its state differs from the one last reported), then
 * the address-space monitors are compared with the image (spacemon.c,
 * their events delivered as found), then the read callbacks. An idle
 * poll (nothing changed, nothing due) does one load per record scanned
 * and nothing else. If memory runs out while re-filing, the chunks stay
 * under their old record, forced, and the next poll tries again: a poll
 * never loses a chunk.
 */
#include "internal.h"

/* Marks rid (and with tree, every record under it) busy and not queued,
 * moves their waiters onto *chain (linked through next), out of their
 * transactions' lists, and their monitor watches onto *mchain (linked
 * through next; w->rec still names the record they left). Recursion
 * depth <= 5 (one per level). */
static void detach(sr_swap_t* swap, uint32_t rid, bool tree, uint32_t* chain,
                   uint32_t* mchain) {
  sr__rec_t* r = &swap->rec[rid];
  uint32_t wid, next, c;

  sr__rec_unforce(swap, rid);
  r->flags =
      (uint8_t)((r->flags & ~(SR__REC_MOVED | SR__REC_QUEUED)) | SR__REC_BUSY);
  for (wid = r->whead; wid != SR__NIL; wid = next) {
    next = swap->w[wid].next;
    sr__waiter_unlink_txn(swap, wid);
    swap->w[wid].prev = SR__NIL;
    swap->w[wid].next = *chain;
    *chain = wid;
  }
  r->whead = SR__NIL;
  for (wid = r->mhead; wid != SR__NIL; wid = next) {
    next = swap->mw[wid].next;
    swap->mw[wid].prev = SR__NIL;
    swap->mw[wid].next = *mchain;
    *mchain = wid;
  }
  r->mhead = SR__NIL;
  if (tree)
    for (c = r->child; c != SR__NIL; c = swap->rec[c].snext)
      detach(swap, c, true, chain, mchain);
}

/* Undoes detach's busy marks bottom-up (including records filed under rid
 * since) and deletes the records left empty. */
static void release(sr_swap_t* swap, uint32_t rid, bool tree) {
  uint32_t c, next;

  if (tree) {
    for (c = swap->rec[rid].child; c != SR__NIL; c = next) {
      next = swap->rec[c].snext;
      release(swap, c, true);
    }
  }
  swap->rec[rid].flags &= (uint8_t)~SR__REC_BUSY;
  sr__rec_delete_if_empty(swap, rid);
}

/* Re-walks the waiters and watches of changed record rid (with tree: and
 * of every record under it, which are thereby torn down before any of
 * them is looked at on its own); ended transactions go to done, watches
 * whose state changed to the event queue. */
static void process(sr_swap_t* swap, uint32_t rid, sr__list_t* done) {
  uint32_t chain = SR__NIL, mchain = SR__NIL;
  uint32_t wid, next, stop, slot, home;
  bool tree = (swap->rec[rid].flags & (SR__REC_FORCE | SR__REC_MOVED)) != 0;
  sr__txn_t* t;
  int rc;

  detach(swap, rid, tree, &chain, &mchain);
  for (wid = mchain; wid != SR__NIL; wid = next) {
    next = swap->mw[wid].next;
    sr__mwatch_rewalk(swap, wid);
  }
  for (wid = chain; wid != SR__NIL; wid = next) {
    next = swap->w[wid].next;
    slot = swap->w[wid].txn;
    t = sr__txn_at(swap, slot);
    if (t->state != SR__TXN_PENDING) {
      /* Ended earlier in this poll by a permanent error. */
      sr__waiter_put(swap, wid);
      continue;
    }
    rc = sr__txn_walk(swap, t, swap->w[wid].lo, swap->w[wid].hi, &stop, false);
    if (rc == SR_ENOMEM) {
      /* Keep what is left under its record (busy, so still there);
       * retry next poll. */
      home = swap->w[wid].rec;
      swap->w[wid].lo = stop;
      sr__waiter_link(swap, wid, home, slot);
      sr__rec_force(swap, home);
      continue;
    }
    sr__waiter_put(swap, wid);
    if (rc != 0)
      sr__txn_finish_work(swap, slot, rc, done);
    else if (t->npending == 0)
      sr__txn_finish_work(swap, slot, 0, done);
  }
  release(swap, rid, tree);
}

int sr_swap_poll(sr_swap_t* swap, uint64_t now_ns, uint64_t* next_ns) {
  sr__list_t done = {SR__NIL, SR__NIL};
  uint32_t heads[5] = {SR__NIL, SR__NIL, SR__NIL, SR__NIL, SR__NIL};
  uint32_t budget, rid, next, slot;
  sr__txn_t* t;
  int level, ncb;

  if (next_ns != NULL)
    *next_ns = SR_TIMEOUT_NONE;
  if (swap == NULL)
    return SR_EINVAL;
  if (swap->depth > 0)
    return SR_EBUSY;
  swap->st.polls++;

  /* 1: scan (scan.c) */
  budget = sr__scan(swap, heads);
  swap->st.entries_reread += budget;

  /* 2: process, highest level first; a record under one processed
   * before is no longer queued */
  for (level = 5; level >= 1; level--) {
    for (rid = heads[level - 1]; rid != SR__NIL; rid = next) {
      next = swap->rec[rid].cnext;
      if (swap->rec[rid].flags & SR__REC_QUEUED)
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

  /* 4: callbacks: monitor events (in the order phase 2 queued them), then
   * completed reads */
  swap->st.monitor_events += (uint64_t)sr__monitor_dispatch(swap);
  swap->st.monitor_events += (uint64_t)sr__spacemon_poll_all(swap);
  ncb = sr__txn_dispatch(swap, &done);
  if (next_ns != NULL && (slot = sr__heap_top(swap)) != SR__NIL)
    *next_ns = sr__txn_at(swap, slot)->deadline_ns;
  return ncb;
}
