/* Deadlines: a binary min-heap of pending transactions.
 *
 * The heap is an array of transaction slots ordered by (deadline_ns, seq);
 * each transaction knows its index (heap_idx), so removal on completion or
 * cancel is O(log n) and finding the nearest deadline is O(1), as in
 * libuv's timer heap. Only transactions with a deadline are in it. Room is
 * reserved (sr__heap_reserve) before a read commits, so insertion never
 * fails.
 */
#include "internal.h"

/* The deadline of a read started at now_ns with timeout_ns: 0 means the
 * engine default (0 there: none); SR_TIMEOUT_NONE and overflow: none. */
uint64_t sr__deadline(const sr_swap_t* swap, uint64_t now_ns,
                      uint64_t timeout_ns) {
  if (timeout_ns == 0)
    timeout_ns = swap->opts.default_timeout_ns;
  if (timeout_ns == 0 || timeout_ns == SR_TIMEOUT_NONE)
    return SR_TIMEOUT_NONE;
  if (timeout_ns >= SR_TIMEOUT_NONE - now_ns)
    return SR_TIMEOUT_NONE;
  return now_ns + timeout_ns;
}

static bool before(const sr_swap_t* swap, uint32_t a, uint32_t b) {
  const sr__txn_t* ta = sr__txn_at(swap, a);
  const sr__txn_t* tb = sr__txn_at(swap, b);

  if (ta->deadline_ns != tb->deadline_ns)
    return ta->deadline_ns < tb->deadline_ns;
  return ta->seq < tb->seq;
}

static void put(sr_swap_t* swap, uint32_t i, uint32_t slot) {
  swap->heap[i] = slot;
  sr__txn_at(swap, slot)->heap_idx = i;
}

static void sift_up(sr_swap_t* swap, uint32_t i) {
  uint32_t slot = swap->heap[i];
  uint32_t parent;

  while (i > 0) {
    parent = (i - 1) / 2;
    if (!before(swap, slot, swap->heap[parent]))
      break;
    put(swap, i, swap->heap[parent]);
    i = parent;
  }
  put(swap, i, slot);
}

static void sift_down(sr_swap_t* swap, uint32_t i) {
  uint32_t slot = swap->heap[i];
  uint32_t child;

  for (;;) {
    child = 2 * i + 1;
    if (child >= swap->heap_n)
      break;
    if (child + 1 < swap->heap_n &&
        before(swap, swap->heap[child + 1], swap->heap[child]))
      child++;
    if (!before(swap, swap->heap[child], slot))
      break;
    put(swap, i, swap->heap[child]);
    i = child;
  }
  put(swap, i, slot);
}

/* Room for `extra` more entries: 0 or SR_ENOMEM (heap unchanged). */
int sr__heap_reserve(sr_swap_t* swap, uint32_t extra) {
  uint64_t need = (uint64_t)swap->heap_n + extra;

  if (need >= SR__NIL)
    return SR_ENOMEM;
  return sr__array_grow(swap, (void**)&swap->heap, &swap->heap_cap,
                        (uint32_t)need, sizeof(uint32_t));
}

/* Inserts slot (with a deadline, not in the heap; room reserved). */
void sr__heap_insert(sr_swap_t* swap, uint32_t slot) {
  sr__txn_t* t = sr__txn_at(swap, slot);

  assert(t->heap_idx == SR__NIL && t->deadline_ns != SR_TIMEOUT_NONE);
  assert(swap->heap_n < swap->heap_cap);
  swap->heap[swap->heap_n] = slot;
  t->heap_idx = swap->heap_n++;
  sift_up(swap, t->heap_idx);
}

/* Removes slot if it is in the heap. */
void sr__heap_remove(sr_swap_t* swap, uint32_t slot) {
  sr__txn_t* t = sr__txn_at(swap, slot);
  uint32_t i = t->heap_idx;
  uint32_t last;

  if (i == SR__NIL)
    return;
  assert(i < swap->heap_n && swap->heap[i] == slot);
  t->heap_idx = SR__NIL;
  last = swap->heap[--swap->heap_n];
  if (i == swap->heap_n)
    return;
  put(swap, i, last);
  if (i > 0 && before(swap, last, swap->heap[(i - 1) / 2]))
    sift_up(swap, i);
  else
    sift_down(swap, i);
}

/* The slot with the nearest deadline, or SR__NIL. */
uint32_t sr__heap_top(const sr_swap_t* swap) {
  return swap->heap_n == 0 ? SR__NIL : swap->heap[0];
}
