/* Transaction slots: allocation, handles, the end of a transaction and the
 * running of completion callbacks.
 *
 * Slots live in blocks of SR__TXN_BLOCK that never move, so a transaction
 * pointer survives callbacks that start new reads. A handle is
 * gen << 32 | (slot + 1); freeing a slot bumps gen, so a stale handle is
 * recognised, never followed. Ending a transaction is two steps: first
 * sr__txn_finish_* detaches it from everything that could find it (watch
 * index, deadline heap, join table), records its status and pushes it on a
 * caller's local list (state COMPLETING); then sr__txn_dispatch runs the
 * callbacks of the list one by one, skipping any transaction that a
 * previous callback cancelled (DROPPED: dtor only). No callback ever runs
 * while the engine's structures are half updated.
 */
#include <string.h>

#include "internal.h"

uint32_t sr__txn_slot(const sr_swap_t* swap, const sr__txn_t* t) {
  (void)swap;
  return t->self;
}

uint64_t sr__txn_handle(const sr_swap_t* swap, uint32_t slot) {
  return (uint64_t)sr__txn_at(swap, slot)->gen << 32 | ((uint64_t)slot + 1);
}

/* The slot of a live handle: 0, or SR_ESTALE (unknown, freed, reused). */
int sr__txn_lookup(const sr_swap_t* swap, sr_swap_handle_t handle,
                   uint32_t* slot) {
  uint64_t low = handle.id & UINT32_MAX;
  const sr__txn_t* t;

  if (low == 0 || low - 1 >= (uint64_t)swap->nblocks * SR__TXN_BLOCK)
    return SR_ESTALE;
  t = sr__txn_at(swap, (uint32_t)(low - 1));
  if (t->gen != (uint32_t)(handle.id >> 32) || t->state == SR__TXN_FREE ||
      t->state == SR__TXN_NEW)
    return SR_ESTALE;
  *slot = (uint32_t)(low - 1);
  return 0;
}

/* O(1) invariants of one transaction, for assert(). */
bool sr__txn_check(const sr_swap_t* swap, const sr__txn_t* t) {
  if (t->state > SR__TXN_CALLBACK || t->role > SR__ROLE_FOLLOWER)
    return false;
  if (t->state == SR__TXN_FREE)
    return t->whead == SR__NIL && t->heap_idx == SR__NIL && t->bits == NULL;
  if (t->nchunks == 0 || t->npending > t->nchunks || t->bits == NULL)
    return false;
  if (t->heap_idx != SR__NIL &&
      (t->state != SR__TXN_PENDING || t->heap_idx >= swap->heap_n ||
       swap->heap[t->heap_idx] != t->self))
    return false;
  if (t->role == SR__ROLE_FOLLOWER && t->whead != SR__NIL)
    return false;
  if (t->state > SR__TXN_PENDING && t->whead != SR__NIL)
    return false;
  return true;
}

/* O(nchunks + waiters): the bitmap counts npending and the waiter ranges
 * cover exactly the missing chunks (for a PENDING owner of work). */
bool sr__txn_check_deep(const sr_swap_t* swap, const sr__txn_t* t) {
  uint64_t covered = 0, set = 0;
  uint32_t i, wid;

  if (!sr__txn_check(swap, t))
    return false;
  if (t->state == SR__TXN_FREE)
    return true;
  for (i = 0; i < t->nchunks; i++)
    set += sr__bit_get(t->bits, i);
  if (set != t->npending)
    return false;
  if (t->state != SR__TXN_PENDING || t->role == SR__ROLE_FOLLOWER)
    return true;
  for (wid = t->whead; wid != SR__NIL; wid = swap->w[wid].tnext) {
    const sr__waiter_t* w = &swap->w[wid];
    if (w->txn != t->self || w->lo > w->hi || w->hi >= t->nchunks)
      return false;
    for (i = w->lo; i <= w->hi; i++)
      if (!sr__bit_get(t->bits, i))
        return false;
    covered += (uint64_t)w->hi - w->lo + 1;
  }
  return covered == t->npending;
}

static int grow_blocks(sr_swap_t* swap) {
  sr__txn_t** blocks;
  sr__txn_t* b;
  uint32_t i, base;

  if ((uint64_t)(swap->nblocks + 1) * SR__TXN_BLOCK >= SR__NIL)
    return SR_ENOMEM;
  b = sr__alloc(swap, SR__TXN_BLOCK * sizeof(*b));
  if (b == NULL)
    return SR_ENOMEM;
  /* blocks is an array of block pointers: sizeof(*blocks) is meant. */
  // NOLINTNEXTLINE(bugprone-sizeof-expression)
  blocks = sr__realloc(swap, swap->blocks, swap->nblocks * sizeof(*blocks),
                       // NOLINTNEXTLINE(bugprone-sizeof-expression)
                       (swap->nblocks + 1) * sizeof(*blocks));
  if (blocks == NULL) {
    sr__free(swap, b, SR__TXN_BLOCK * sizeof(*b));
    return SR_ENOMEM;
  }
  swap->blocks = blocks;
  blocks[swap->nblocks] = b;
  base = swap->nblocks * SR__TXN_BLOCK;
  swap->nblocks++;
  memset(b, 0, SR__TXN_BLOCK * sizeof(*b));
  for (i = SR__TXN_BLOCK; i-- > 0;) {
    b[i].gen = 1;
    b[i].self = base + i;
    b[i].state = SR__TXN_FREE;
    b[i].whead = b[i].heap_idx = SR__NIL;
    b[i].link = swap->txn_free;
    swap->txn_free = base + i;
  }
  return 0;
}

/* Takes a free slot for a read of nchunks chunks, all marked missing,
 * state NEW, appended to the age list. 0 or SR_ENOMEM. */
int sr__txn_new(sr_swap_t* swap, uint32_t nchunks, uint32_t* slot) {
  size_t words = sr__bitmap_words(nchunks);
  uint64_t* bits = NULL;
  sr__txn_t* t;
  uint32_t gen, s;

  assert(nchunks > 0);
  if (words > 1) {
    if (words > SIZE_MAX / sizeof(uint64_t))
      return SR_ENOMEM;
    bits = sr__alloc(swap, words * sizeof(uint64_t));
    if (bits == NULL)
      return SR_ENOMEM;
  }
  if (swap->txn_free == SR__NIL && grow_blocks(swap) != 0) {
    sr__free(swap, bits, words * sizeof(uint64_t));
    return SR_ENOMEM;
  }
  s = swap->txn_free;
  t = sr__txn_at(swap, s);
  assert(sr__txn_check(swap, t) && t->state == SR__TXN_FREE);
  swap->txn_free = t->link;
  gen = t->gen;
  memset(t, 0, sizeof(*t));
  t->gen = gen;
  t->self = s;
  t->state = SR__TXN_NEW;
  t->bits = bits != NULL ? bits : &t->inline_bits;
  memset(t->bits, 0xff, words * sizeof(uint64_t));
  if (nchunks % 64 != 0)
    t->bits[words - 1] = (UINT64_C(1) << (nchunks % 64)) - 1;
  t->nchunks = t->npending = nchunks;
  t->heap_idx = t->whead = t->leader = t->fhead = t->ftail = SR__NIL;
  t->link = SR__NIL;
  t->deadline_ns = SR_TIMEOUT_NONE;
  t->seq = swap->seq++;
  t->age_next = SR__NIL;
  t->age_prev = swap->age_tail;
  if (swap->age_tail != SR__NIL)
    sr__txn_at(swap, swap->age_tail)->age_next = s;
  else
    swap->age_head = s;
  swap->age_tail = s;
  swap->nlive++;
  *slot = s;
  return 0;
}

/* Frees a slot that nothing refers to any more (no waiters, not in the
 * heap or join table): bitmap freed, generation bumped. */
void sr__txn_release(sr_swap_t* swap, uint32_t slot) {
  sr__txn_t* t = sr__txn_at(swap, slot);

  assert(t->state != SR__TXN_FREE && t->whead == SR__NIL);
  assert(t->heap_idx == SR__NIL);
  if (t->bits != &t->inline_bits)
    sr__free(swap, t->bits, sr__bitmap_words(t->nchunks) * sizeof(uint64_t));
  t->bits = NULL;
  if (t->age_prev != SR__NIL)
    sr__txn_at(swap, t->age_prev)->age_next = t->age_next;
  else
    swap->age_head = t->age_next;
  if (t->age_next != SR__NIL)
    sr__txn_at(swap, t->age_next)->age_prev = t->age_prev;
  else
    swap->age_tail = t->age_prev;
  t->state = SR__TXN_FREE;
  t->gen++;
  t->link = swap->txn_free;
  swap->txn_free = slot;
  swap->nlive--;
  assert(sr__txn_check(swap, t));
}

void sr__txn_list_push(sr_swap_t* swap, sr__list_t* list, uint32_t slot) {
  sr__txn_at(swap, slot)->link = SR__NIL;
  if (list->tail != SR__NIL)
    sr__txn_at(swap, list->tail)->link = slot;
  else
    list->head = slot;
  list->tail = slot;
}

/* The VA of chunk i and (*n) its length. */
uint64_t sr__chunk_va(const sr__txn_t* t, uint32_t i, size_t* n) {
  uint64_t page = (t->gva & ~(SR__CHUNK - 1)) + ((uint64_t)i << 12);
  uint64_t start = i == 0 ? t->gva : page;
  uint64_t last = t->gva + (t->len - 1);

  assert(i < t->nchunks);
  if (last > page + (SR__CHUNK - 1))
    last = page + (SR__CHUNK - 1);
  *n = (size_t)(last - start + 1);
  return start;
}

/* The chunk holding va (which is in the range). */
uint32_t sr__chunk_of(const sr__txn_t* t, uint64_t va) {
  return (uint32_t)((va >> SR__CHUNK_SHIFT) - (t->gva >> SR__CHUNK_SHIFT));
}

/* Ends PENDING t, which has no waiters: out of the heap (and the join
 * table if it leads), status recorded, missing bytes zero-filled for
 * SR_EPARTIAL, state COMPLETING, pushed on done. */
static void end(sr_swap_t* swap, sr__txn_t* t, int status, sr__list_t* done) {
  size_t n;
  uint32_t i;
  uint64_t va;

  assert(t->state == SR__TXN_PENDING && t->whead == SR__NIL);
  sr__heap_remove(swap, t->self);
  if (t->role == SR__ROLE_LEADER) {
    sr__htab_remove(swap, &swap->join, sr__join_hash(swap, t->self), t->self,
                    sr__join_hash);
    t->role = SR__ROLE_SOLO;
  }
  if (t->role != SR__ROLE_FOLLOWER) {
    assert(swap->st.pending_chunks >= t->npending);
    swap->st.pending_chunks -= t->npending;
  }
  t->status = status;
  if (status == SR_EPARTIAL) {
    t->done_flags |= SR_DONE_PARTIAL;
    for (i = 0; i < t->nchunks; i++) {
      if (sr__bit_get(t->bits, i)) {
        va = sr__chunk_va(t, i, &n);
        memset((char*)t->buf + (va - t->gva), 0, n);
      }
    }
  }
  t->state = SR__TXN_COMPLETING;
  assert(swap->st.pending > 0);
  swap->st.pending--;
  sr__txn_list_push(swap, done, t->self);
}

/* Ends the work of SOLO/LEADER `slot` with status: the transaction and
 * every follower end with the same result (followers get a copy of the
 * leader's chunks in their own buffers). */
void sr__txn_finish_work(sr_swap_t* swap, uint32_t slot, int status,
                         sr__list_t* done) {
  sr__txn_t* t = sr__txn_at(swap, slot);
  uint32_t f, next;

  assert(t->state == SR__TXN_PENDING && t->role != SR__ROLE_FOLLOWER);
  assert(sr__txn_check(swap, t));
  sr__watch_unfile_txn(swap, t);
  f = t->role == SR__ROLE_LEADER ? t->fhead : SR__NIL;
  t->fhead = SR__NIL;
  end(swap, t, status, done);
  for (; f != SR__NIL; f = next) {
    sr__txn_t* ft = sr__txn_at(swap, f);
    next = ft->fhead;
    sr__join_sync(swap, ft, t);
    ft->leader = ft->fhead = SR__NIL;
    ft->fail_gva = t->fail_gva;
    end(swap, ft, status, done);
  }
}

/* Ends PENDING `slot` alone (deadline, cancel by handle): a follower
 * leaves its leader; a leader hands its work to its first follower. */
void sr__txn_finish_one(sr_swap_t* swap, uint32_t slot, int status,
                        sr__list_t* done) {
  sr__txn_t* t = sr__txn_at(swap, slot);

  assert(t->state == SR__TXN_PENDING && sr__txn_check(swap, t));
  if (t->role == SR__ROLE_FOLLOWER) {
    sr__join_detach(swap, slot);
    end(swap, t, status, done);
  } else if (t->role == SR__ROLE_LEADER && t->fhead != SR__NIL) {
    sr__join_promote(swap, slot);
    assert(t->role == SR__ROLE_FOLLOWER && t->whead == SR__NIL);
    end(swap, t, status, done);
  } else {
    sr__txn_finish_work(swap, slot, status, done);
  }
}

static void count_done(sr_swap_stats_t* st, int status) {
  switch (status) {
    case 0:
      st->done_ok++;
      break;
    case SR_EPARTIAL:
      st->done_partial++;
      break;
    case SR_ETIMEDOUT:
      st->done_timedout++;
      break;
    case SR_ECANCELED:
      st->done_cancelled++;
      break;
    case SR_EGONE:
      st->done_gone++;
      break;
    case SR_EIMAGEGONE:
      st->done_imagegone++;
      break;
    default:
      st->done_failed++;
      break;
  }
}

/* Runs the callbacks of the local list `done` in order (a DROPPED
 * transaction gets only its dtor), then each dtor, then frees each slot.
 * Returns the number of callbacks run. */
int sr__txn_dispatch(sr_swap_t* swap, sr__list_t* done) {
  sr_swap_done_t d;
  sr__txn_t* t;
  uint32_t slot;
  int n = 0;

  swap->depth++;
  while (done->head != SR__NIL) {
    slot = done->head;
    t = sr__txn_at(swap, slot);
    done->head = t->link;
    if (done->head == SR__NIL)
      done->tail = SR__NIL;
    assert(sr__txn_check(swap, t));
    if (t->state == SR__TXN_DROPPED) {
      swap->st.done_cancelled++;
    } else {
      assert(t->state == SR__TXN_COMPLETING);
      t->state = SR__TXN_CALLBACK;
      memset(&d, 0, sizeof(d));
      d.status = t->status;
      d.flags = t->done_flags | SR_DONE_ASYNC;
      d.cr3 = t->cr3;
      d.gva = t->gva;
      d.buf = t->buf;
      d.len = t->len;
      d.gpa = t->gpa;
      d.kinds_seen = t->kinds;
      d.nchunks = t->nchunks;
      d.missing = t->status == 0 ? NULL : t->bits;
      d.fail_gva = t->fail_gva;
      count_done(&swap->st, t->status);
      t->cb(swap, &d, t->data);
      n++;
    }
    if (t->dtor != NULL)
      t->dtor(t->data);
    sr__txn_release(swap, slot);
  }
  swap->depth--;
  return n;
}
