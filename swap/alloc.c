/* Allocator hook wrappers and byte accounting for the swap engine.
 *
 * Every byte the engine allocates goes through the sr_allocator_t given at
 * sr_swap_new (malloc/realloc/free by default), and swap->mem_bytes says
 * how many are live. sr__array_grow is the one place arrays grow: it
 * checks for overflow of the element count and of the byte size and leaves
 * the array untouched on failure, so a caller can fail cleanly with
 * SR_ENOMEM before it has changed anything. Limits: indices are 32-bit, so
 * no pool holds more than UINT32_MAX - 1 elements.
 */
#include <stdlib.h>

#include "internal.h"

static void* default_alloc(void* ctx, size_t size) {
  (void)ctx;
  return malloc(size);
}

static void* default_realloc(void* ctx, void* ptr, size_t old_size,
                             size_t new_size) {
  (void)ctx;
  (void)old_size;
  return realloc(ptr, new_size);
}

static void default_free(void* ctx, void* ptr, size_t size) {
  (void)ctx;
  (void)size;
  free(ptr);
}

const sr_allocator_t sr__default_allocator = {default_alloc, default_realloc,
                                              default_free, NULL};

/* Allocates size (> 0) bytes or returns NULL. */
void* sr__alloc(sr_swap_t* swap, size_t size) {
  void* p;

  assert(size > 0);
  p = swap->alloc.alloc(swap->alloc.ctx, size);
  if (p != NULL)
    swap->mem_bytes += size;
  return p;
}

/* Resizes ptr (old_size bytes, or NULL with old_size 0) to new_size > 0.
 * NULL on failure, ptr untouched. */
void* sr__realloc(sr_swap_t* swap, void* ptr, size_t old_size,
                  size_t new_size) {
  void* p;

  assert(new_size > 0);
  if (ptr == NULL)
    return sr__alloc(swap, new_size);
  p = swap->alloc.realloc(swap->alloc.ctx, ptr, old_size, new_size);
  if (p != NULL)
    swap->mem_bytes = swap->mem_bytes - old_size + new_size;
  return p;
}

/* Frees ptr (size bytes); NULL is allowed. */
void sr__free(sr_swap_t* swap, void* ptr, size_t size) {
  if (ptr == NULL)
    return;
  assert(swap->mem_bytes >= size);
  swap->mem_bytes -= size;
  swap->alloc.free(swap->alloc.ctx, ptr, size);
}

/* Pools of this many elements or more grow by half, not double: at a
 * million watched entries, doubling leaves up to half the pool unused. */
#define GROW_SLOW 4096u

/* Makes *arr (of *cap elements of elem bytes) hold at least need elements:
 * at least 16, doubling below GROW_SLOW elements and 1.5x above. 0, or
 * SR_ENOMEM with *arr and *cap unchanged. */
int sr__array_grow(sr_swap_t* swap, void** arr, uint32_t* cap, uint32_t need,
                   size_t elem) {
  uint64_t ncap;
  void* p;

  if (need <= *cap)
    return 0;
  if (need >= SR__NIL)
    return SR_ENOMEM;
  if (*cap < 8)
    ncap = 16;
  else if (*cap < GROW_SLOW)
    ncap = (uint64_t)*cap * 2;
  else
    ncap = (uint64_t)*cap + *cap / 2;
  if (ncap < need)
    ncap = need;
  if (ncap >= SR__NIL)
    ncap = SR__NIL - 1;
  if (ncap > SIZE_MAX / elem)
    return SR_ENOMEM;
  p = sr__realloc(swap, *arr, (size_t)*cap * elem, (size_t)ncap * elem);
  if (p == NULL)
    return SR_ENOMEM;
  *arr = p;
  *cap = (uint32_t)ncap;
  return 0;
}
