/* VA monitors: watched (CR3, VA) pairs on the engine's watch index, and the
 * page-in / page-out / remap events the poll derives for them.
 *
 * A watched VA is walked once when it is watched (that walk is the initial
 * report, returned synchronously) and filed in the watch index exactly as
 * a pending chunk is: under the record of its leaf entry when it is
 * mapped, of the entry that stops the walk when it is not (or of the entry
 * pointing at a table that cannot be read), with the records of the
 * entries above it as parents — the same records pending reads use, so a
 * read and a watch on the same entry share them. The poll re-reads each
 * record once; when one changed it detaches the watches under it (the
 * whole subtree when the entry moved, highest level first, so that the
 * records under a changed entry are never processed on their own) and
 * re-walks each (sr__mwatch_rewalk): the watch is re-filed where the walk
 * now ends and, if the translation differs from the state last reported,
 * queued once on the engine's event queue. After phase 2 the queue is run
 * in order (sr__monitor_dispatch): the event is computed from the state
 * last reported and the final state, so each VA gets at most one event
 * per poll and never one computed from entries a higher change replaced.
 * Unwatching removes the watch from its record (deleting records left
 * empty, O(levels)) and from the queue, so a callback that unwatches a
 * sibling due in the same poll suppresses its event. Limits: a change of
 * protection alone is not an event; a watch whose root table became
 * unreadable (file truncated) is re-walked at every poll.
 */
#include <string.h>

#include "internal.h"

static uint64_t mw_key(const sr_monitor_t* mon, uint64_t root, uint64_t va) {
  return sr__mix64(va ^ sr__mix64(root ^ sr__mix64((uintptr_t)mon)));
}

static uint64_t mw_hash(const sr_swap_t* swap, uint32_t wid) {
  const sr__mwatch_t* w = &swap->mw[wid];
  return mw_key(w->mon, w->root, w->va);
}

static uint32_t mw_find(const sr_swap_t* swap, const sr_monitor_t* mon,
                        uint64_t root, uint64_t va) {
  const sr__htab_t* tab = &swap->mwtab;
  const sr__mwatch_t* w;
  uint32_t i;

  if (tab->slot == NULL)
    return SR__NIL;
  for (i = sr__htab_first(tab, mw_key(mon, root, va)); tab->slot[i] != 0;
       i = (i + 1) & tab->mask) {
    w = &swap->mw[tab->slot[i] - 1];
    if (w->mon == mon && w->root == root && w->va == va)
      return tab->slot[i] - 1;
  }
  return SR__NIL;
}

/* Room for one more watch (pool and hash). 0 or SR_ENOMEM. */
static int mw_reserve(sr_swap_t* swap) {
  uint32_t old_cap = swap->mw_cap;
  uint32_t i;

  if (sr__htab_reserve(swap, &swap->mwtab, 1, mw_hash) != 0)
    return SR_ENOMEM;
  if (swap->mw_free != SR__NIL)
    return 0;
  if (sr__array_grow(swap, (void**)&swap->mw, &swap->mw_cap, old_cap + 1,
                     sizeof(sr__mwatch_t)) != 0)
    return SR_ENOMEM;
  for (i = swap->mw_cap; i-- > old_cap;) {
    memset(&swap->mw[i], 0, sizeof(swap->mw[i]));
    swap->mw[i].rec = SR__NIL;
    swap->mw[i].next = swap->mw_free;
    swap->mw_free = i;
  }
  return 0;
}

/* Walks va under root and says what it found (*st) and at which level the
 * watch is to be filed (*level; tr->entry[] set for every level filed).
 * 0, or SR_EINVAL / SR_ENONCANON (bad arguments), or SR_EHOLE /
 * SR_EBEYOND when the root table itself cannot be read. */
static int walk_state(sr_swap_t* swap, uint64_t root, uint64_t va,
                      sr_translation_t* tr, sr__mstate_t* st, int* level) {
  int rc = sr_translate(swap->image, root, va, &swap->opts.walk, tr);

  memset(st, 0, sizeof(*st));
  st->status = rc;
  if (rc == SR_EINVAL || rc == SR_ENONCANON)
    return rc;
  st->level = (uint8_t)tr->stop_level;
  *level = tr->stop_level;
  switch (rc) {
    case 0:
      st->gpa = tr->gpa;
      st->kind = SR_PTE_PRESENT;
      break;
    case SR_ENOTPRESENT:
    case SR_EBADENTRY:
      st->kind = (uint8_t)tr->pte.kind;
      break;
    default:
      /* SR_EHOLE / SR_EBEYOND: the table at stop_level cannot be read;
       * watch the entry that points at it. */
      assert(rc == SR_EHOLE || rc == SR_EBEYOND);
      if (tr->stop_level == tr->top_level) {
        tr->entry[tr->stop_level - 1] = 0;
        return rc;
      }
      *level = tr->stop_level + 1;
      break;
  }
  return 0;
}

static void export_state(const sr__mstate_t* in, sr_monitor_state_t* out) {
  memset(out, 0, sizeof(*out));
  out->status = in->status;
  out->level = in->level;
  out->pte_kind = (sr_pte_kind_t)in->kind;
  if (in->status == 0) {
    out->gpa = in->gpa;
    out->page_size = UINT64_C(1) << (12 + 9 * (in->level - 1));
  }
}

/* The event from old to now, or 0 if none is due. */
static int event_kind(const sr__mstate_t* old, const sr__mstate_t* now) {
  if (old->status != 0 && now->status == 0)
    return SR_MONITOR_PAGE_IN;
  if (old->status == 0 && now->status != 0)
    return SR_MONITOR_PAGE_OUT;
  if (old->status == 0 && (old->gpa != now->gpa || old->level != now->level))
    return SR_MONITOR_REMAPPED;
  return 0;
}

/* Links watch wid at the head of record rid's watch list. */
void sr__mwatch_link(sr_swap_t* swap, uint32_t wid, uint32_t rid) {
  sr__mwatch_t* w = &swap->mw[wid];
  sr__rec_t* r = &swap->rec[rid];

  w->rec = rid;
  w->prev = SR__NIL;
  w->next = r->mhead;
  if (r->mhead != SR__NIL)
    swap->mw[r->mhead].prev = wid;
  r->mhead = wid;
}

static void unlink_rec(sr_swap_t* swap, uint32_t wid) {
  sr__mwatch_t* w = &swap->mw[wid];

  if (w->prev != SR__NIL)
    swap->mw[w->prev].next = w->next;
  else
    swap->rec[w->rec].mhead = w->next;
  if (w->next != SR__NIL)
    swap->mw[w->next].prev = w->prev;
  w->prev = w->next = SR__NIL;
}

static void enqueue(sr_swap_t* swap, uint32_t wid) {
  sr__mwatch_t* w = &swap->mw[wid];

  assert(!(w->flags & SR__MW_QUEUED));
  w->flags |= SR__MW_QUEUED;
  w->enext = SR__NIL;
  w->eprev = swap->ev_tail;
  if (swap->ev_tail != SR__NIL)
    swap->mw[swap->ev_tail].enext = wid;
  else
    swap->ev_head = wid;
  swap->ev_tail = wid;
}

static void dequeue(sr_swap_t* swap, uint32_t wid) {
  sr__mwatch_t* w = &swap->mw[wid];

  if (!(w->flags & SR__MW_QUEUED))
    return;
  if (w->eprev != SR__NIL)
    swap->mw[w->eprev].enext = w->enext;
  else
    swap->ev_head = w->enext;
  if (w->enext != SR__NIL)
    swap->mw[w->enext].eprev = w->eprev;
  else
    swap->ev_tail = w->eprev;
  w->eprev = w->enext = SR__NIL;
  w->flags &= ~(uint32_t)SR__MW_QUEUED;
}

/* Re-walks watch wid, which a poll detached from its record (w->rec, still
 * live and busy), re-files it where the walk ends now and queues it if
 * its state differs from the one last reported. Out of memory: back under
 * its record, forced, so the next poll tries again. */
void sr__mwatch_rewalk(sr_swap_t* swap, uint32_t wid) {
  sr_translation_t tr;
  sr__mstate_t st;
  sr__mwatch_t* w = &swap->mw[wid];
  uint32_t home = w->rec, rid;
  int level, rc;

  assert(w->flags & SR__MW_LIVE);
  rc = walk_state(swap, w->root, w->va, &tr, &st, &level);
  assert(rc != SR_EINVAL && rc != SR_ENONCANON);
  (void)rc;
  if (sr__watch_path(swap, &tr, level, &rid) != 0) {
    sr__mwatch_link(swap, wid, home);
    sr__rec_force(swap, home);
    return;
  }
  w = &swap->mw[wid];
  sr__mwatch_link(swap, wid, rid);
  w->cur = st;
  if (w->flags & SR__MW_QUEUED)
    return; /* the dispatch compares with the final state */
  if (event_kind(&w->rep, &w->cur) != 0)
    enqueue(swap, wid);
  else
    w->rep = w->cur;
}

int sr__monitor_dispatch(sr_swap_t* swap) {
  sr_monitor_event_t ev;
  sr_monitor_t* mon;
  sr__mwatch_t* w;
  uint32_t wid;
  int kind, n = 0;

  swap->depth++;
  while ((wid = swap->ev_head) != SR__NIL) {
    dequeue(swap, wid);
    w = &swap->mw[wid];
    kind = event_kind(&w->rep, &w->cur);
    if (kind != 0) {
      memset(&ev, 0, sizeof(ev));
      ev.kind = (sr_monitor_event_kind_t)kind;
      ev.handle.id = (uint64_t)w->gen << 32 | ((uint64_t)wid + 1);
      ev.tag = w->tag;
      ev.cr3 = w->cr3;
      ev.va = w->va;
      export_state(&w->rep, &ev.old);
      export_state(&w->cur, &ev.now);
    }
    w->rep = w->cur;
    if (kind == 0)
      continue;
    /* w may move or die in the callback: nothing of it is used after. */
    mon = w->mon;
    mon->cb(mon, &ev, mon->data);
    n++;
  }
  swap->depth--;
  return n;
}

int sr_monitor_new(sr_monitor_t** out, sr_swap_t* swap, sr_monitor_cb cb,
                   void* data) {
  sr_monitor_t* mon;

  if (out == NULL)
    return SR_EINVAL;
  *out = NULL;
  if (swap == NULL || cb == NULL)
    return SR_EINVAL;
  mon = sr__alloc(swap, sizeof(*mon));
  if (mon == NULL)
    return SR_ENOMEM;
  memset(mon, 0, sizeof(*mon));
  mon->swap = swap;
  mon->cb = cb;
  mon->data = data;
  mon->head = SR__NIL;
  mon->prev = NULL;
  mon->next = swap->monitors;
  if (mon->next != NULL)
    mon->next->prev = mon;
  swap->monitors = mon;
  swap->nmonitors++;
  *out = mon;
  return 0;
}

/* Ends live watch wid: out of its record (records left empty deleted),
 * the event queue, its monitor's list and the hash; slot freed, gen + 1. */
static void unwatch(sr_swap_t* swap, uint32_t wid) {
  sr__mwatch_t* w = &swap->mw[wid];
  sr_monitor_t* mon = w->mon;
  uint32_t rid = w->rec;

  assert(w->flags & SR__MW_LIVE);
  unlink_rec(swap, wid);
  sr__rec_delete_if_empty(swap, rid);
  dequeue(swap, wid);
  sr__htab_remove(swap, &swap->mwtab, mw_hash(swap, wid), wid, mw_hash);
  if (w->mprev != SR__NIL)
    swap->mw[w->mprev].mnext = w->mnext;
  else
    mon->head = w->mnext;
  if (w->mnext != SR__NIL)
    swap->mw[w->mnext].mprev = w->mprev;
  mon->n--;
  w->flags = 0;
  w->rec = SR__NIL;
  w->mon = NULL;
  w->gen = 0;
  w->next = swap->mw_free;
  swap->mw_free = wid;
  swap->mw_n--;
}

/* Gives back the pools that emptied (outside phase 2 of a poll only):
 * the watch pool and hash when no VA is watched, the whole watch index
 * when no record is left, so unwatching everything returns the engine to
 * the bytes it held before. */
static void trim(sr_swap_t* swap) {
  if (swap->mw_n == 0) {
    assert(swap->ev_head == SR__NIL);
    sr__free(swap, swap->mw, (size_t)swap->mw_cap * sizeof(sr__mwatch_t));
    sr__htab_free(swap, &swap->mwtab);
    swap->mw = NULL;
    swap->mw_cap = 0;
    swap->mw_free = SR__NIL;
  }
  if (swap->nlive_rec == 0)
    sr__watch_free(swap);
}

int sr_monitor_free(sr_monitor_t* mon) {
  sr_swap_t* swap;

  if (mon == NULL)
    return 0;
  swap = mon->swap;
  if (swap->depth > 0)
    return SR_EBUSY;
  while (mon->head != SR__NIL)
    unwatch(swap, mon->head);
  if (mon->prev != NULL)
    mon->prev->next = mon->next;
  else
    swap->monitors = mon->next;
  if (mon->next != NULL)
    mon->next->prev = mon->prev;
  swap->nmonitors--;
  sr__free(swap, mon, sizeof(*mon));
  trim(swap);
  return 0;
}

void sr__monitor_free_all(sr_swap_t* swap) {
  sr_monitor_event_t ev;
  sr_monitor_t* mon;

  while ((mon = swap->monitors) != NULL) {
    /* Its watches go first: the callback sees an empty monitor. */
    while (mon->head != SR__NIL)
      unwatch(swap, mon->head);
    memset(&ev, 0, sizeof(ev));
    ev.kind = SR_MONITOR_CLOSED;
    swap->depth++;
    mon->cb(mon, &ev, mon->data);
    swap->depth--;
    (void)sr_monitor_free(mon);
  }
  assert(swap->mw_n == 0 && swap->ev_head == SR__NIL);
  trim(swap);
}

int sr_monitor_watch(sr_monitor_t* mon, uint64_t cr3, uint64_t va, uint64_t tag,
                     sr_monitor_handle_t* handle, sr_monitor_state_t* state) {
  sr_translation_t tr;
  sr__mstate_t st;
  sr__mwatch_t* w;
  sr_swap_t* swap;
  uint64_t root = cr3;
  uint32_t wid, rid, old_rid;
  int level, rc;

  if (handle != NULL)
    handle->id = 0;
  if (state != NULL)
    memset(state, 0, sizeof(*state));
  if (mon == NULL)
    return SR_EINVAL;
  swap = mon->swap;
  if (cr3 == SR_CR3_KERNEL) {
    if (swap->opts.kernel_cr3 == 0)
      return SR_EINVAL;
    root = swap->opts.kernel_cr3;
  }
  if (mw_reserve(swap) != 0) {
    rc = SR_ENOMEM;
    goto err_trim;
  }
  rc = walk_state(swap, root, va, &tr, &st, &level);
  if (rc != 0)
    goto err_trim;
  if (sr__watch_path(swap, &tr, level, &rid) != 0) {
    rc = SR_ENOMEM;
    goto err_trim;
  }

  wid = mw_find(swap, mon, root, va);
  if (wid != SR__NIL) {
    /* Re-watch: reset in place. */
    old_rid = swap->mw[wid].rec;
    unlink_rec(swap, wid);
    dequeue(swap, wid);
    sr__mwatch_link(swap, wid, rid);
    sr__rec_delete_if_empty(swap, old_rid);
    w = &swap->mw[wid];
  } else {
    wid = swap->mw_free;
    w = &swap->mw[wid];
    swap->mw_free = w->next;
    swap->mw_n++;
    w->flags = SR__MW_LIVE;
    /* Handles stay unique across slot reuse and pool trims. */
    if (++swap->mw_seq == 0)
      swap->mw_seq = 1;
    w->gen = swap->mw_seq;
    w->mon = mon;
    w->cr3 = cr3;
    w->root = root;
    w->va = va;
    w->eprev = w->enext = SR__NIL;
    w->mprev = SR__NIL;
    w->mnext = mon->head;
    if (mon->head != SR__NIL)
      swap->mw[mon->head].mprev = wid;
    mon->head = wid;
    mon->n++;
    sr__htab_insert(&swap->mwtab, mw_hash(swap, wid), wid);
    sr__mwatch_link(swap, wid, rid);
  }
  w->cr3 = cr3; /* a re-watch may spell it differently (SR_CR3_KERNEL) */
  w->tag = tag;
  w->rep = w->cur = st;
  if (handle != NULL)
    handle->id = (uint64_t)w->gen << 32 | ((uint64_t)wid + 1);
  if (state != NULL)
    export_state(&st, state);
  return 0;

err_trim:
  trim(swap);
  return rc;
}

int sr_monitor_unwatch(sr_monitor_t* mon, sr_monitor_handle_t handle) {
  uint64_t low = handle.id & UINT32_MAX;
  sr_swap_t* swap;
  sr__mwatch_t* w;

  if (mon == NULL)
    return SR_EINVAL;
  swap = mon->swap;
  if (low == 0 || low - 1 >= swap->mw_cap)
    return SR_ESTALE;
  w = &swap->mw[low - 1];
  if (!(w->flags & SR__MW_LIVE) || w->gen != (uint32_t)(handle.id >> 32) ||
      w->mon != mon)
    return SR_ESTALE;
  unwatch(swap, (uint32_t)(low - 1));
  trim(swap);
  return 0;
}

sr_swap_t* sr_monitor_swap(const sr_monitor_t* mon) {
  return mon != NULL ? mon->swap : NULL;
}

size_t sr_monitor_count(const sr_monitor_t* mon) {
  return mon != NULL ? mon->n : 0;
}
