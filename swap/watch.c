/* The watch index: pending chunks grouped by the paging-structure entry
 * that blocks them, and the entries above it on the walk.
 *
 * A record stands for one entry (its GPA, the value last seen, its level)
 * reached along one path: records form a forest in which the record of an
 * entry hangs under the record of the entry that pointed at its table
 * (the parent), up to a top-level entry, as in vmi-rs's page-table
 * monitor. Filing a chunk finds or creates the whole path top-down, so a
 * record is always younger than its parent and the links cannot form a
 * cycle, even through a self-map. The chunks hang off the record of the
 * blocking entry as waiters, each a run [lo, hi] of consecutive chunks of
 * one transaction, so a non-present PDE that blocks 512 chunks of a read
 * costs one waiter; a parent is shared by all its children (a PDE record
 * by up to 512 PTE records). Records are found by (entry GPA, parent) in
 * an open-addressing hash and are also listed densely (entry GPA and
 * last value in parallel arrays, in scan order) so that a poll can scan
 * them round-robin at one 8-byte load each, parents
 * included. A record is deleted as soon as it has neither waiter nor
 * child (unless a poll is processing it), and its parent may follow.
 * The watched VAs of monitors (monitor.c) hang off records exactly as
 * waiters do, so a VA watched and a read blocked on the same entry share
 * one record.
 * Filing reserves everything it needs before it changes anything, so
 * SR_ENOMEM leaves the index as it was.
 */
#include "internal.h"

#define ENTRY_P UINT64_C(0x1)
#define ENTRY_AD UINT64_C(0x60) /* accessed (bit 5), dirty (bit 6) */

static uint64_t key_hash(uint64_t entry_gpa, uint32_t parent) {
  return sr__mix64(entry_gpa ^ sr__mix64(parent));
}

static uint64_t rec_hash(const sr_swap_t* swap, uint32_t rid) {
  return key_hash(sr__rec_gpa(swap, rid), swap->rec[rid].parent);
}

/* Whether an entry that was old_value and is new_value may lead a walk
 * elsewhere: any change, except the CPU setting A/D bits in an entry that
 * stays present. */
bool sr__entry_moved(uint64_t old_value, uint64_t new_value) {
  if (old_value == new_value)
    return false;
  return !((old_value & new_value & ENTRY_P) &&
           ((old_value ^ new_value) & ~ENTRY_AD) == 0);
}

/* The live record watching entry_gpa under parent, or SR__NIL. */
uint32_t sr__watch_find(const sr_swap_t* swap, uint64_t entry_gpa,
                        uint32_t parent) {
  const sr__htab_t* tab = &swap->watch;
  uint32_t i, id;

  if (tab->slot == NULL)
    return SR__NIL;
  for (i = sr__htab_first(tab, key_hash(entry_gpa, parent)); tab->slot[i] != 0;
       i = (i + 1) & tab->mask) {
    id = tab->slot[i] - 1;
    if (swap->rec[id].parent == parent && sr__rec_gpa(swap, id) == entry_gpa)
      return id;
  }
  return SR__NIL;
}

/* Room for k more records (pool, dense list, hash): 0 or SR_ENOMEM
 * (nothing changed but capacity). Every pool element that is not live is
 * on the free list. */
static int rec_reserve(sr_swap_t* swap, uint32_t k) {
  uint32_t old_cap = swap->rec_cap;
  uint64_t need = (uint64_t)swap->nlive_rec + k;
  uint32_t i;

  if (need >= SR__NIL)
    return SR_ENOMEM;
  if (sr__htab_reserve(swap, &swap->watch, k, rec_hash) != 0)
    return SR_ENOMEM;
  if (sr__array_grow(swap, (void**)&swap->live, &swap->live_cap, (uint32_t)need,
                     sizeof(uint32_t)) != 0 ||
      sr__array_grow(swap, (void**)&swap->sgpa, &swap->sgpa_cap, (uint32_t)need,
                     sizeof(uint64_t)) != 0 ||
      sr__array_grow(swap, (void**)&swap->sval, &swap->sval_cap, (uint32_t)need,
                     sizeof(uint64_t)) != 0)
    return SR_ENOMEM;
  if (sr__array_grow(swap, (void**)&swap->rec, &swap->rec_cap, (uint32_t)need,
                     sizeof(sr__rec_t)) != 0)
    return SR_ENOMEM;
  for (i = swap->rec_cap; i-- > old_cap;) {
    swap->rec[i].pos = SR__NIL;
    swap->rec[i].cnext = SR__NIL;
    swap->rec[i].flags = 0;
    swap->rec[i].whead = swap->rec_free;
    swap->rec_free = i;
  }
  return 0;
}

/* Creates an empty record under parent (room reserved) and returns it.
 * cnext is left alone: a poll may still be walking a list through it. */
static uint32_t rec_new(sr_swap_t* swap, uint64_t entry_gpa, uint64_t value,
                        int level, uint32_t parent) {
  uint32_t rid = swap->rec_free;
  sr__rec_t* r;

  assert(rid != SR__NIL && swap->nlive_rec < swap->live_cap);
  assert(swap->nlive_rec < swap->sgpa_cap && swap->nlive_rec < swap->sval_cap);
  r = &swap->rec[rid];
  assert(r->pos == SR__NIL);
  swap->rec_free = r->whead;
  r->whead = SR__NIL;
  r->mhead = SR__NIL;
  r->parent = parent;
  r->child = SR__NIL;
  r->sprev = SR__NIL;
  r->snext = SR__NIL;
  r->level = (uint8_t)level;
  r->flags = 0;
  if (parent != SR__NIL) {
    r->snext = swap->rec[parent].child;
    if (r->snext != SR__NIL)
      swap->rec[r->snext].sprev = rid;
    swap->rec[parent].child = rid;
  }
  r->pos = swap->nlive_rec;
  swap->sgpa[r->pos] = entry_gpa;
  swap->sval[r->pos] = value;
  swap->live[swap->nlive_rec++] = rid;
  swap->runs_valid = false;
  sr__htab_insert(&swap->watch, rec_hash(swap, rid), rid);
  return rid;
}

static void rec_delete(sr_swap_t* swap, uint32_t rid) {
  sr__rec_t* r = &swap->rec[rid];
  uint32_t moved;

  assert(r->pos != SR__NIL && r->whead == SR__NIL && r->child == SR__NIL);
  assert(r->mhead == SR__NIL);
  assert(!(r->flags & SR__REC_BUSY));
  sr__htab_remove(swap, &swap->watch, rec_hash(swap, rid), rid, rec_hash);
  if (r->flags & SR__REC_FORCE)
    swap->nforced--;
  moved = swap->live[--swap->nlive_rec];
  swap->live[r->pos] = moved;
  swap->sgpa[r->pos] = swap->sgpa[swap->nlive_rec];
  swap->sval[r->pos] = swap->sval[swap->nlive_rec];
  swap->rec[moved].pos = r->pos;
  swap->runs_valid = false;
  if (r->sprev != SR__NIL)
    swap->rec[r->sprev].snext = r->snext;
  else if (r->parent != SR__NIL)
    swap->rec[r->parent].child = r->snext;
  if (r->snext != SR__NIL)
    swap->rec[r->snext].sprev = r->sprev;
  r->pos = SR__NIL;
  r->flags = 0;
  r->whead = swap->rec_free;
  swap->rec_free = rid;
}

/* Sets / clears rid's FORCE flag, keeping swap->nforced (the poll checks
 * flags only while some record is forced). */
void sr__rec_force(sr_swap_t* swap, uint32_t rid) {
  if (!(swap->rec[rid].flags & SR__REC_FORCE)) {
    swap->rec[rid].flags |= SR__REC_FORCE;
    swap->nforced++;
  }
}

void sr__rec_unforce(sr_swap_t* swap, uint32_t rid) {
  if (swap->rec[rid].flags & SR__REC_FORCE) {
    swap->rec[rid].flags &= (uint8_t)~SR__REC_FORCE;
    swap->nforced--;
  }
}

/* Deletes rid if it has no waiter, no watch, no child and no poll is
 * processing it; then its parent, under the same rule, and so on up. */
void sr__rec_delete_if_empty(sr_swap_t* swap, uint32_t rid) {
  uint32_t parent;

  while (rid != SR__NIL) {
    const sr__rec_t* r = &swap->rec[rid];
    if (r->whead != SR__NIL || r->mhead != SR__NIL || r->child != SR__NIL ||
        (r->flags & SR__REC_BUSY))
      return;
    parent = r->parent;
    rec_delete(swap, rid);
    rid = parent;
  }
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

/* Finds or creates the records of walk tr from its top level down to
 * `level` (each under the one above) and sets *rid to the bottom one. A
 * record found with a value other than the walk saw is forced (re-walked
 * with everything under it at the next poll): the entry moved since the
 * record last looked, maybe and back (ABA). 0 or SR_ENOMEM (nothing
 * changed). */
int sr__watch_path(sr_swap_t* swap, const sr_translation_t* tr, int level,
                   uint32_t* rid) {
  uint32_t path[5];
  uint32_t parent = SR__NIL;
  uint32_t id;
  uint64_t last;
  int top = tr->top_level;
  int l, found;

  assert(top == 4 || top == 5);
  assert(level >= 1 && level <= top);
  for (l = top; l >= level; l--) {
    id = sr__watch_find(swap, tr->entry_gpa[l - 1], parent);
    if (id == SR__NIL)
      break;
    assert(swap->rec[id].level == l);
    path[l - 1] = parent = id;
  }
  found = l; /* levels above found were there already */
  if (l >= level && rec_reserve(swap, (uint32_t)(l - level + 1)) != 0)
    return SR_ENOMEM;
  for (; l >= level; l--)
    path[l - 1] = parent =
        rec_new(swap, tr->entry_gpa[l - 1], tr->entry[l - 1], l, parent);
  for (l = top; l > found; l--) {
    last = sr__rec_value(swap, path[l - 1]);
    if (last != tr->entry[l - 1] &&
        (l == level || sr__entry_moved(last, tr->entry[l - 1])))
      sr__rec_force(swap, path[l - 1]);
  }
  *rid = path[level - 1];
  return 0;
}

/* Files chunks [lo, hi] of work txn t (all missing, not filed) under the
 * entry at `level` of walk tr (which stopped there, or, with force, found
 * that leaf still moving), with the entries above it on the walk as its
 * parents (sr__watch_path). Extends t's newest waiter when it is the run
 * just before lo under the same record. 0 or SR_ENOMEM (nothing
 * changed). */
int sr__watch_file(sr_swap_t* swap, sr__txn_t* t, uint32_t lo, uint32_t hi,
                   const sr_translation_t* tr, int level, bool force) {
  uint32_t rid, wid;
  sr__waiter_t* w;

  assert(lo <= hi && hi < t->nchunks && level >= 1 && level <= tr->top_level);
  assert(t->role != SR__ROLE_FOLLOWER);
  if (waiter_reserve(swap) != 0)
    return SR_ENOMEM;
  if (sr__watch_path(swap, tr, level, &rid) != 0)
    return SR_ENOMEM;
  if (force)
    sr__rec_force(swap, rid);
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
  sr__free(swap, swap->sgpa, (size_t)swap->sgpa_cap * sizeof(uint64_t));
  sr__free(swap, swap->sval, (size_t)swap->sval_cap * sizeof(uint64_t));
  swap->sgpa = swap->sval = NULL;
  swap->sgpa_cap = swap->sval_cap = 0;
  sr__free(swap, swap->w, (size_t)swap->w_cap * sizeof(sr__waiter_t));
  sr__free(swap, swap->runs, (size_t)swap->runs_cap * sizeof(sr__run_t));
  swap->runs = NULL;
  swap->runs_cap = swap->nruns = 0;
  swap->runs_valid = false;
  sr__htab_free(swap, &swap->watch);
  swap->rec = NULL;
  swap->live = NULL;
  swap->w = NULL;
  swap->rec_cap = swap->live_cap = swap->w_cap = swap->nlive_rec = 0;
  swap->rec_free = swap->w_free = SR__NIL;
}
