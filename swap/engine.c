/* The engine object: creation, destruction, image replacement, counters.
 *
 * sr_swap_new validates the options (walk options, allocator hook) and
 * allocates only the engine itself; pools grow on demand. sr_swap_free
 * ends every pending read with SR_ECANCELED (their callbacks run; reads
 * they start are cancelled in turn), ends the monitors left (one CLOSED
 * event each, VA monitors and space monitors) and then frees everything, so with a
 * counting allocator the engine returns to zero bytes. Limits: the engine
 * is not thread-safe, and sr_swap_free must not be called from a callback.
 */
#include <string.h>

#include "internal.h"

/* The walk options as every walk of core/ checks them: decoding any entry
 * with them fails only for bad options. */
static bool walk_opts_valid(const sr_walk_opts_t* w) {
  sr_entry_info_t info;

  return sr_entry_decode(0, SR_LEVEL_PT, w, &info) == 0;
}

int sr_swap_new(sr_swap_t** out, sr_image_t* image,
                const sr_swap_opts_t* opts) {
  static const sr_swap_opts_t defaults;
  const sr_allocator_t* a;
  sr_swap_t* swap;

  if (out == NULL)
    return SR_EINVAL;
  *out = NULL;
  if (image == NULL)
    return SR_EINVAL;
  if (opts == NULL)
    opts = &defaults;
  if (!walk_opts_valid(&opts->walk))
    return SR_EINVAL;
  a = opts->allocator != NULL ? opts->allocator : &sr__default_allocator;
  if (a->alloc == NULL || a->realloc == NULL || a->free == NULL)
    return SR_EINVAL;
  swap = a->alloc(a->ctx, sizeof(*swap));
  if (swap == NULL)
    return SR_ENOMEM;
  memset(swap, 0, sizeof(*swap));
  swap->alloc = *a;
  swap->mem_bytes = sizeof(*swap);
  swap->image = image;
  swap->opts = *opts;
  swap->opts.allocator = NULL; /* the copy in swap->alloc is used */
  swap->txn_free = SR__NIL;
  swap->age_head = swap->age_tail = SR__NIL;
  swap->rec_free = swap->w_free = SR__NIL;
  swap->mw_free = SR__NIL;
  swap->ev_head = swap->ev_tail = SR__NIL;
  *out = swap;
  return 0;
}

void sr_swap_free(sr_swap_t* swap) {
  sr_allocator_t a;
  uint32_t i;

  if (swap == NULL)
    return;
  assert(swap->depth == 0 && "sr_swap_free called from a callback");
  while (swap->st.pending > 0)
    sr__cancel_matching(swap, true, 0, SR_ECANCELED);
  sr__monitor_free_all(swap);
  sr__spacemon_close_all(swap);
  assert(swap->nlive == 0 && swap->heap_n == 0 && swap->join.n == 0);
  assert(swap->nlive_rec == 0 && swap->w_n == 0);
  for (i = 0; i < swap->nblocks; i++)
    sr__free(swap, swap->blocks[i], SR__TXN_BLOCK * sizeof(sr__txn_t));
  sr__free(swap, swap->blocks, swap->nblocks * sizeof(sr__txn_t*));
  sr__free(swap, swap->heap, (size_t)swap->heap_cap * sizeof(uint32_t));
  sr__htab_free(swap, &swap->join);
  sr__watch_free(swap);
  assert(swap->mem_bytes == sizeof(*swap));
  a = swap->alloc;
  a.free(a.ctx, swap, sizeof(*swap));
}

int sr_swap_set_image(sr_swap_t* swap, sr_image_t* image) {
  if (swap == NULL || image == NULL)
    return SR_EINVAL;
  if (swap->nlive > 0 || swap->mw_n > 0 || swap->nspacemons > 0)
    return SR_EBUSY;
  assert(swap->nlive_rec == 0);
  swap->image = image;
  return 0;
}

void sr_swap_stats(const sr_swap_t* swap, sr_swap_stats_t* out) {
  if (out == NULL)
    return;
  if (swap == NULL) {
    memset(out, 0, sizeof(*out));
    return;
  }
  *out = swap->st;
  out->watched_entries = swap->nlive_rec;
  out->monitor_watches = swap->mw_n;
  out->monitors = swap->nmonitors;
  out->spacemons = swap->nspacemons;
}
