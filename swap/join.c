/* Joins: identical pending reads share one walk and one set of waiters.
 *
 * A pending read made with SR_READ_JOIN is a LEADER in a hash keyed by
 * (cr3, gva, len, flags). A later identical read becomes a FOLLOWER: it
 * gets its own slot, handle, buffer, callback, data, dtor and deadline,
 * but no work; its buffer and bitmap are brought up to date from the
 * leader's when it joins and when it ends (sr__join_sync). When the work
 * ends (all chunks in, or a permanent error, or cancel by CR3 / all), the
 * followers end with the leader's status. When only the leader ends
 * (cancel by handle, its own deadline), its work passes to its first
 * follower, which becomes the leader: handles stay valid. Limits: the
 * follower list is singly linked, so leaving it is O(followers).
 */
#include <string.h>

#include "internal.h"

static uint64_t key_hash(uint64_t root, uint64_t gva, uint64_t len,
                         uint32_t rflags) {
  return sr__mix64(root ^ sr__mix64(gva ^ sr__mix64(len ^ rflags)));
}

uint64_t sr__join_hash(const sr_swap_t* swap, uint32_t slot) {
  const sr__txn_t* t = sr__txn_at(swap, slot);

  return key_hash(t->root, t->gva, t->len, t->rflags);
}

/* The pending leader of (root, gva, len, rflags), or SR__NIL. */
uint32_t sr__join_find(const sr_swap_t* swap, uint64_t root, uint64_t gva,
                       size_t len, uint32_t rflags) {
  const sr__htab_t* tab = &swap->join;
  const sr__txn_t* t;
  uint32_t i, id;

  if (tab->slot == NULL)
    return SR__NIL;
  for (i = sr__htab_first(tab, key_hash(root, gva, len, rflags));
       tab->slot[i] != 0; i = (i + 1) & tab->mask) {
    id = tab->slot[i] - 1;
    t = sr__txn_at(swap, id);
    if (t->root == root && t->gva == gva && t->len == len &&
        t->rflags == rflags) {
      assert(t->role == SR__ROLE_LEADER && t->state == SR__TXN_PENDING);
      return id;
    }
  }
  return SR__NIL;
}

/* Brings follower f up to date with l: copies the chunks l has and f has
 * not into f's buffer, then l's bitmap, counts and completion flags. */
void sr__join_sync(sr_swap_t* swap, sr__txn_t* f, const sr__txn_t* l) {
  size_t n;
  uint64_t va;
  uint32_t i;

  (void)swap;
  assert(f->nchunks == l->nchunks && f->len == l->len && f->gva == l->gva);
  for (i = 0; i < l->nchunks; i++) {
    if (sr__bit_get(f->bits, i) && !sr__bit_get(l->bits, i)) {
      va = sr__chunk_va(l, i, &n);
      memcpy((char*)f->buf + (va - l->gva), (const char*)l->buf + (va - l->gva),
             n);
    }
  }
  memcpy(f->bits, l->bits, sr__bitmap_words(l->nchunks) * sizeof(uint64_t));
  f->npending = l->npending;
  f->done_flags = l->done_flags;
  f->kinds = l->kinds;
  f->gpa = l->gpa;
}

/* Makes NEW slot a follower of pending leader (appended to its list). */
int sr__join_follow(sr_swap_t* swap, uint32_t leader, uint32_t slot) {
  sr__txn_t* l = sr__txn_at(swap, leader);
  sr__txn_t* f = sr__txn_at(swap, slot);

  assert(l->role == SR__ROLE_LEADER && l->state == SR__TXN_PENDING);
  assert(f->state == SR__TXN_NEW);
  f->role = SR__ROLE_FOLLOWER;
  f->leader = leader;
  f->fhead = SR__NIL;
  if (l->ftail != SR__NIL)
    sr__txn_at(swap, l->ftail)->fhead = slot;
  else
    l->fhead = slot;
  l->ftail = slot;
  sr__join_sync(swap, f, l);
  return 0;
}

/* Takes follower slot out of its leader's list, synced one last time. */
void sr__join_detach(sr_swap_t* swap, uint32_t slot) {
  sr__txn_t* f = sr__txn_at(swap, slot);
  sr__txn_t* l = sr__txn_at(swap, f->leader);
  uint32_t prev = SR__NIL, cur;

  assert(f->role == SR__ROLE_FOLLOWER && l->role == SR__ROLE_LEADER);
  for (cur = l->fhead; cur != slot; cur = sr__txn_at(swap, cur)->fhead) {
    assert(cur != SR__NIL);
    prev = cur;
  }
  if (prev == SR__NIL)
    l->fhead = f->fhead;
  else
    sr__txn_at(swap, prev)->fhead = f->fhead;
  if (l->ftail == slot)
    l->ftail = prev;
  sr__join_sync(swap, f, l);
  f->leader = f->fhead = SR__NIL;
}

/* Hands leader's work (bitmap, waiters, join entry, other followers) to
 * its first follower, which becomes the leader; the old leader is left
 * as a detached follower holding its own copy, ready to end alone. */
void sr__join_promote(sr_swap_t* swap, uint32_t leader) {
  sr__txn_t* l = sr__txn_at(swap, leader);
  uint32_t slot = l->fhead;
  sr__txn_t* f = sr__txn_at(swap, slot);
  uint32_t wid, cur;

  assert(l->role == SR__ROLE_LEADER && slot != SR__NIL);
  sr__join_sync(swap, f, l);
  f->fail_gva = l->fail_gva;
  f->role = SR__ROLE_LEADER;
  f->leader = SR__NIL;
  f->whead = l->whead;
  l->whead = SR__NIL;
  for (wid = f->whead; wid != SR__NIL; wid = swap->w[wid].tnext)
    swap->w[wid].txn = slot;
  f->ftail = f->fhead == SR__NIL ? SR__NIL : l->ftail;
  for (cur = f->fhead; cur != SR__NIL; cur = sr__txn_at(swap, cur)->fhead)
    sr__txn_at(swap, cur)->leader = slot;
  sr__htab_replace(&swap->join, sr__join_hash(swap, leader), leader, slot);
  l->role = SR__ROLE_FOLLOWER;
  l->fhead = l->ftail = l->leader = SR__NIL;
  assert(sr__txn_check(swap, l) && sr__txn_check(swap, f));
}
