/* The watch index: pending chunks grouped by the paging-structure entry
 * that blocks them.
 *
 * A record stands for one entry (its GPA, the value last seen, its level);
 * the chunks it blocks hang off it as waiters, each a run [lo, hi] of
 * consecutive chunks of one transaction, so a non-present PDE that blocks
 * 512 chunks of a read costs one waiter. Records are found by entry GPA in
 * an open-addressing hash and are also listed densely (swap->live) so that
 * a poll can scan them round-robin at one 8-byte load each. Records and
 * waiters live in pools with free lists and stable ids; a record is
 * deleted as soon as its last waiter leaves (unless a poll is processing
 * it). Filing reserves everything it needs before it changes anything, so
 * SR_ENOMEM leaves the index as it was.
 */
#include "internal.h"

static uint64_t rec_hash(const sr_swap_t* swap, uint32_t rid) {
  return sr__mix64(swap->rec[rid].entry_gpa);
}

/* The live record watching entry_gpa, or SR__NIL. */
uint32_t sr__watch_find(const sr_swap_t* swap, uint64_t entry_gpa) {
  const sr__htab_t* tab = &swap->watch;
  uint32_t i, id;

  if (tab->slot == NULL)
    return SR__NIL;
  for (i = sr__htab_first(tab, sr__mix64(entry_gpa)); tab->slot[i] != 0;
       i = (i + 1) & tab->mask) {
    id = tab->slot[i] - 1;
    if (swap->rec[id].entry_gpa == entry_gpa)
      return id;
  }
  return SR__NIL;
}

/* Creates an empty record; 0 or SR_ENOMEM (nothing changed but capacity).
 * cnext is left alone: a poll may still be walking a list through it. */
static int rec_new(sr_swap_t* swap, uint64_t entry_gpa, uint64_t value,
                   int level, uint32_t* out) {
  uint32_t old_cap = swap->rec_cap;
  uint32_t rid, i;
  sr__rec_t* r;

  if (sr__htab_reserve(swap, &swap->watch, 1, rec_hash) != 0)
    return SR_ENOMEM;
  if (sr__array_grow(swap, (void**)&swap->live, &swap->live_cap,
                     swap->nlive_rec + 1, sizeof(uint32_t)) != 0)
    return SR_ENOMEM;
  if (swap->rec_free == SR__NIL) {
    if (sr__array_grow(swap, (void**)&swap->rec, &swap->rec_cap, old_cap + 1,
                       sizeof(sr__rec_t)) != 0)
      return SR_ENOMEM;
    for (i = swap->rec_cap; i-- > old_cap;) {
      swap->rec[i].pos = SR__NIL;
      swap->rec[i].cnext = SR__NIL;
      swap->rec[i].mark = 0;
      swap->rec[i].whead = swap->rec_free;
      swap->rec_free = i;
    }
  }
  rid = swap->rec_free;
  r = &swap->rec[rid];
  assert(r->pos == SR__NIL);
  swap->rec_free = r->whead;
  r->entry_gpa = entry_gpa;
  r->last_value = value;
  r->whead = SR__NIL;
  r->mark = 0;
  r->level = (uint8_t)level;
  r->force = 0;
  r->busy = 0;
  r->pos = swap->nlive_rec;
  swap->live[swap->nlive_rec++] = rid;
  sr__htab_insert(&swap->watch, rec_hash(swap, rid), rid);
  *out = rid;
  return 0;
}

static void rec_delete(sr_swap_t* swap, uint32_t rid) {
  sr__rec_t* r = &swap->rec[rid];
  uint32_t moved;

  assert(r->pos != SR__NIL && r->whead == SR__NIL && !r->busy);
  sr__htab_remove(swap, &swap->watch, rec_hash(swap, rid), rid, rec_hash);
  moved = swap->live[--swap->nlive_rec];
  swap->live[r->pos] = moved;
  swap->rec[moved].pos = r->pos;
  r->pos = SR__NIL;
  r->mark = 0;
  r->whead = swap->rec_free;
  swap->rec_free = rid;
}

/* Deletes rid if no waiter is left and no poll is processing it. */
void sr__rec_delete_if_empty(sr_swap_t* swap, uint32_t rid) {
  sr__rec_t* r = &swap->rec[rid];

  if (r->whead == SR__NIL && !r->busy)
    rec_delete(swap, rid);
}

/* Links free waiter wid at the head of record rid's and txn slot's lists. */
void sr__waiter_link(sr_swap_t* swap, uint32_t wid, uint32_t rid,
                     uint32_t slot) {
  sr__waiter_t* w = &swap->w[wid];
  sr__rec_t* r = &swap->rec[rid];
  sr__txn_t* t = sr__txn_at(swap, slot);

  w->rec = rid;
  w->txn = slot;
  w->prev = SR__NIL;
  w->next = r->whead;
  if (r->whead != SR__NIL)
    swap->w[r->whead].prev = wid;
  r->whead = wid;
  w->tprev = SR__NIL;
  w->tnext = t->whead;
  if (t->whead != SR__NIL)
    swap->w[t->whead].tprev = wid;
  t->whead = wid;
}

void sr__waiter_unlink_rec(sr_swap_t* swap, uint32_t wid) {
  sr__waiter_t* w = &swap->w[wid];

  if (w->prev != SR__NIL)
    swap->w[w->prev].next = w->next;
  else
    swap->rec[w->rec].whead = w->next;
  if (w->next != SR__NIL)
    swap->w[w->next].prev = w->prev;
  w->prev = w->next = SR__NIL;
}

void sr__waiter_unlink_txn(sr_swap_t* swap, uint32_t wid) {
  sr__waiter_t* w = &swap->w[wid];

  if (w->tprev != SR__NIL)
    swap->w[w->tprev].tnext = w->tnext;
  else
    sr__txn_at(swap, w->txn)->whead = w->tnext;
  if (w->tnext != SR__NIL)
    swap->w[w->tnext].tprev = w->tprev;
  w->tprev = w->tnext = SR__NIL;
}

/* Returns an unlinked waiter to the pool. */
void sr__waiter_put(sr_swap_t* swap, uint32_t wid) {
  assert(swap->w_n > 0);
  swap->w[wid].txn = SR__NIL;
  swap->w[wid].next = swap->w_free;
  swap->w_free = wid;
  swap->w_n--;
}

static int waiter_reserve(sr_swap_t* swap) {
  uint32_t old_cap = swap->w_cap;
  uint32_t i;

  if (swap->w_free != SR__NIL)
    return 0;
  if (sr__array_grow(swap, (void**)&swap->w, &swap->w_cap, old_cap + 1,
                     sizeof(sr__waiter_t)) != 0)
    return SR_ENOMEM;
  for (i = swap->w_cap; i-- > old_cap;) {
    swap->w[i].txn = SR__NIL;
    swap->w[i].next = swap->w_free;
    swap->w_free = i;
  }
  return 0;
}

/* Files chunks [lo, hi] of work txn t (all missing, not filed) under the
 * entry at entry_gpa whose value is `value`: the same record for the same
 * GPA; extends t's newest waiter when it is the run just before lo under
 * the same record. force: re-walk at the next poll whatever the value.
 * 0 or SR_ENOMEM (nothing changed). */
int sr__watch_file(sr_swap_t* swap, sr__txn_t* t, uint32_t lo, uint32_t hi,
                   uint64_t entry_gpa, uint64_t value, int level, bool force) {
  uint32_t rid, wid;
  sr__waiter_t* w;

  assert(lo <= hi && hi < t->nchunks && level >= 1 && level <= 5);
  assert(t->role != SR__ROLE_FOLLOWER);
  if (waiter_reserve(swap) != 0)
    return SR_ENOMEM;
  rid = sr__watch_find(swap, entry_gpa);
  if (rid == SR__NIL) {
    if (rec_new(swap, entry_gpa, value, level, &rid) != 0)
      return SR_ENOMEM;
  } else if (swap->rec[rid].last_value != value) {
    /* The entry moved since the record last looked: re-walk everything
     * it blocks at the next poll (also catches a change back, ABA). */
    swap->rec[rid].force = 1;
  }
  if (force)
    swap->rec[rid].force = 1;
  if (t->whead != SR__NIL) {
    w = &swap->w[t->whead];
    if (w->rec == rid && w->hi + 1 == lo) {
      w->hi = hi;
      return 0;
    }
  }
  wid = swap->w_free;
  swap->w_free = swap->w[wid].next;
  swap->w_n++;
  w = &swap->w[wid];
  w->lo = lo;
  w->hi = hi;
  sr__waiter_link(swap, wid, rid, t->self);
  return 0;
}

/* Removes every waiter of t, deleting records left empty. */
void sr__watch_unfile_txn(sr_swap_t* swap, sr__txn_t* t) {
  uint32_t wid, rid;

  while ((wid = t->whead) != SR__NIL) {
    rid = swap->w[wid].rec;
    sr__waiter_unlink_txn(swap, wid);
    sr__waiter_unlink_rec(swap, wid);
    sr__waiter_put(swap, wid);
    sr__rec_delete_if_empty(swap, rid);
  }
}

void sr__watch_free(sr_swap_t* swap) {
  sr__free(swap, swap->rec, (size_t)swap->rec_cap * sizeof(sr__rec_t));
  sr__free(swap, swap->live, (size_t)swap->live_cap * sizeof(uint32_t));
  sr__free(swap, swap->w, (size_t)swap->w_cap * sizeof(sr__waiter_t));
  sr__htab_free(swap, &swap->watch);
  swap->rec = NULL;
  swap->live = NULL;
  swap->w = NULL;
  swap->rec_cap = swap->live_cap = swap->w_cap = swap->nlive_rec = 0;
  swap->rec_free = swap->w_free = SR__NIL;
}
