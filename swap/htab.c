/* An open-addressing hash of 32-bit ids, shared by the watch index and the
 * join table.
 *
 * Only ids are stored (slot = id + 1, 0 = empty); the owner computes an
 * id's hash from the object it names (sr__hash_fn), so the table costs
 * 4 bytes a slot. Linear probing at load <= 3/4, backward-shift deletion
 * (no tombstones, so lookups stay short however much churn there is).
 * Lookups are written by the owners (they compare their own keys) with
 * sr__htab_first and the probe step "+ 1 & mask". Growth is the only
 * allocation and happens in sr__htab_reserve, before any change.
 */
#include <string.h>

#include "internal.h"

/* A 64-bit finalizer (splitmix64): good avalanche for GPAs and VAs. */
uint64_t sr__mix64(uint64_t x) {
  x ^= x >> 30;
  x *= UINT64_C(0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C(0x94d049bb133111eb);
  x ^= x >> 31;
  return x;
}

static size_t tab_bytes(uint32_t cap) {
  return (size_t)cap * sizeof(uint32_t);
}

/* Makes room for `extra` more ids at load <= 3/4, rehashing every id with
 * hash(). 0 or SR_ENOMEM (table unchanged). */
int sr__htab_reserve(sr_swap_t* swap, sr__htab_t* tab, uint32_t extra,
                     sr__hash_fn hash) {
  uint64_t need = (uint64_t)tab->n + extra;
  uint64_t cap = tab->slot == NULL ? 0 : (uint64_t)tab->mask + 1;
  uint64_t ncap;
  uint32_t* ns;
  uint32_t i, j, nmask;

  if (need * 4 <= cap * 3)
    return 0;
  ncap = cap == 0 ? 16 : cap;
  while (ncap * 3 < need * 4)
    ncap *= 2;
  if (ncap > (UINT64_C(1) << 31) || ncap > SIZE_MAX / sizeof(uint32_t))
    return SR_ENOMEM;
  ns = sr__alloc(swap, tab_bytes((uint32_t)ncap));
  if (ns == NULL)
    return SR_ENOMEM;
  memset(ns, 0, tab_bytes((uint32_t)ncap));
  nmask = (uint32_t)ncap - 1;
  for (i = 0; i < cap; i++) {
    if (tab->slot[i] == 0)
      continue;
    j = (uint32_t)hash(swap, tab->slot[i] - 1) & nmask;
    while (ns[j] != 0)
      j = (j + 1) & nmask;
    ns[j] = tab->slot[i];
  }
  sr__free(swap, tab->slot, tab_bytes((uint32_t)cap));
  tab->slot = ns;
  tab->mask = nmask;
  return 0;
}

/* Inserts id with hash h; room must have been reserved. */
void sr__htab_insert(sr__htab_t* tab, uint64_t h, uint32_t id) {
  uint32_t i;

  assert(tab->slot != NULL &&
         ((uint64_t)tab->n + 1) * 4 <= ((uint64_t)tab->mask + 1) * 3);
  i = sr__htab_first(tab, h);
  while (tab->slot[i] != 0)
    i = (i + 1) & tab->mask;
  tab->slot[i] = id + 1;
  tab->n++;
}

static uint32_t find_pos(const sr__htab_t* tab, uint64_t h, uint32_t id) {
  uint32_t i = sr__htab_first(tab, h);

  while (tab->slot[i] != id + 1) {
    assert(tab->slot[i] != 0);
    i = (i + 1) & tab->mask;
  }
  return i;
}

/* Removes id (present, hash h), shifting back the entries after it. */
void sr__htab_remove(sr_swap_t* swap, sr__htab_t* tab, uint64_t h, uint32_t id,
                     sr__hash_fn hash) {
  uint32_t hole = find_pos(tab, h, id);
  uint32_t i = hole;
  uint32_t home;

  for (;;) {
    i = (i + 1) & tab->mask;
    if (tab->slot[i] == 0)
      break;
    home = (uint32_t)hash(swap, tab->slot[i] - 1) & tab->mask;
    /* The entry at i may move to the hole iff its home is not in the
     * cyclic range (hole, i]. */
    if (((i - home) & tab->mask) >= ((i - hole) & tab->mask)) {
      tab->slot[hole] = tab->slot[i];
      hole = i;
    }
  }
  tab->slot[hole] = 0;
  tab->n--;
}

/* Replaces old_id (present, hash h) by new_id, which has the same hash. */
void sr__htab_replace(sr__htab_t* tab, uint64_t h, uint32_t old_id,
                      uint32_t new_id) {
  tab->slot[find_pos(tab, h, old_id)] = new_id + 1;
}

void sr__htab_free(sr_swap_t* swap, sr__htab_t* tab) {
  if (tab->slot != NULL)
    sr__free(swap, tab->slot, tab_bytes(tab->mask + 1));
  memset(tab, 0, sizeof(*tab));
}
