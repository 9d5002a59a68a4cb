/* Shared fixture of the swap engine suites: builds a holey image with the
 * kit, opens it read-only, creates an engine over it, and records every
 * callback and destructor call of the reads a test starts (how many, in
 * which order, with what). It only uses the public API, never looks inside
 * the engine, and never asserts: the suites decide what is wrong. Records
 * and buffers belong to the fixture so that an engine freed at teardown can
 * still call back into them.
 */
#include "swap_fixture.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Appends p to a growable pointer array; 0 or SR_ENOMEM. */
static int keep(void*** arr, size_t* n, size_t* cap, void* p) {
  if (*n == *cap) {
    size_t ncap = *cap == 0 ? 16 : *cap * 2;
    void** a = realloc(*arr, ncap * sizeof(*a));
    if (a == NULL)
      return SR_ENOMEM;
    *arr = a;
    *cap = ncap;
  }
  (*arr)[(*n)++] = p;
  return 0;
}

int swapfx_new(swapfx_t** out, uint64_t kit_size, const sr_swap_opts_t* opts) {
  sr_kit_opts_t kopts;
  swapfx_t* fx;
  int rc;

  *out = NULL;
  fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return SR_ENOMEM;
  memset(&kopts, 0, sizeof(kopts));
  kopts.size = kit_size;
  if (opts != NULL)
    fx->opts = *opts;
  fx->now = 1000000;
  rc = sr_kit_create(&fx->kit, &kopts);
  if (rc != 0)
    goto err_free_fx;
  rc = sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3);
  if (rc != 0)
    goto err_free_fx;
  rc = sr_kit_open_image(fx->kit, &fx->image);
  if (rc != 0)
    goto err_free_fx;
  rc = sr_swap_new(&fx->swap, fx->image, &fx->opts);
  if (rc != 0)
    goto err_free_fx;
  *out = fx;
  return 0;

err_free_fx:
  swapfx_free(fx);
  return rc;
}

void swapfx_close_engine(swapfx_t* fx) {
  if (fx == NULL || fx->swap == NULL)
    return;
  sr_swap_free(fx->swap);
  fx->swap = NULL;
}

void swapfx_free(swapfx_t* fx) {
  if (fx == NULL)
    return;
  swapfx_close_engine(fx);
  sr_image_close(fx->image);
  sr_kit_destroy(fx->kit);
  free(fx->user);
  for (size_t i = 0; i < fx->nrecs; i++)
    free(fx->recs[i]);
  for (size_t i = 0; i < fx->nbufs; i++)
    free(fx->bufs[i]);
  free(fx->recs);
  free(fx->bufs);
  free(fx);
}

int swapfx_reopen(swapfx_t* fx, const sr_swap_opts_t* opts) {
  int rc;
  swapfx_close_engine(fx);
  sr_image_close(fx->image);
  fx->image = NULL;
  if (opts != NULL)
    fx->opts = *opts;
  rc = sr_kit_open_image(fx->kit, &fx->image);
  if (rc != 0)
    return rc;
  return sr_swap_new(&fx->swap, fx->image, &fx->opts);
}

int swapfx_map(swapfx_t* fx, uint64_t cr3, uint64_t gva, uint64_t len,
               uint64_t page_size, uint32_t prot, uint64_t seed) {
  int rc = sr_kit_map(fx->kit, cr3, gva, len, page_size, prot);
  if (rc != 0)
    return rc;
  return sr_kit_fill(fx->kit, cr3, gva, len, seed);
}

int swapfx_out_as(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level,
                  sr_pte_kind_t kind, uint64_t offset) {
  sr_pte_info_t as;
  memset(&as, 0, sizeof(as));
  as.kind = kind;
  as.swap_type = 1;
  as.swap_offset = offset;
  as.proto_addr = offset << 12;
  return sr_kit_page_out(fx->kit, cr3, gva, level, &as);
}

int swapfx_out_swap(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level,
                    uint64_t offset) {
  return swapfx_out_as(fx, cr3, gva, level, SR_PTE_LINUX_SWAP, offset);
}

int swapfx_out_none(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level) {
  return swapfx_out_as(fx, cr3, gva, level, SR_PTE_NONE, 0);
}

int swapfx_in(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level) {
  return sr_kit_page_in(fx->kit, cr3, gva, level);
}

uint64_t swapfx_frame(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level) {
  uint64_t e;
  uint64_t size = UINT64_C(1) << (12 + 9 * (level - 1));
  if (sr_kit_get_entry(fx->kit, cr3, gva, level, &e) != 0 || !(e & SWAPFX_P))
    return 0;
  return e & SWAPFX_ADDR & ~(size - 1);
}

swapfx_rec_t* swapfx_rec(swapfx_t* fx) {
  swapfx_rec_t* rec = calloc(1, sizeof(*rec));
  if (rec == NULL)
    return NULL;
  if (keep((void***)&fx->recs, &fx->nrecs, &fx->cap_recs, rec) != 0) {
    free(rec);
    return NULL;
  }
  rec->fx = fx;
  return rec;
}

uint8_t* swapfx_buf(swapfx_t* fx, size_t len) {
  uint8_t* buf = malloc(len == 0 ? 1 : len);
  if (buf == NULL)
    return NULL;
  if (keep(&fx->bufs, &fx->nbufs, &fx->cap_bufs, buf) != 0) {
    free(buf);
    return NULL;
  }
  memset(buf, SWAPFX_SENTINEL, len);
  return buf;
}

int swapfx_read(swapfx_t* fx, swapfx_rec_t* rec, uint64_t cr3, uint64_t gva,
                size_t len, uint32_t flags, uint64_t timeout_ns) {
  sr_swap_req_t req;
  rec->cr3 = cr3;
  rec->gva = gva;
  rec->len = len;
  rec->flags = flags;
  if (rec->buf == NULL)
    rec->buf = swapfx_buf(fx, len);
  if (rec->buf == NULL)
    return SR_ENOMEM;
  memset(&req, 0, sizeof(req));
  req.cr3 = cr3;
  req.gva = gva;
  req.buf = rec->buf;
  req.len = len;
  req.flags = flags;
  req.timeout_ns = timeout_ns;
  memset(&rec->sync, 0, sizeof(rec->sync));
  rec->in_read = 1;
  rec->rc = sr_swap_read(fx->swap, &req, fx->now, swapfx_cb, rec, swapfx_dtor,
                         &rec->handle, &rec->sync);
  rec->in_read = 0;
  return rec->rc;
}

int swapfx_read_new(swapfx_t* fx, swapfx_rec_t** out, uint64_t cr3,
                    uint64_t gva, size_t len, uint32_t flags,
                    uint64_t timeout_ns) {
  swapfx_rec_t* rec = swapfx_rec(fx);
  *out = rec;
  if (rec == NULL)
    return SR_ENOMEM;
  return swapfx_read(fx, rec, cr3, gva, len, flags, timeout_ns);
}

int swapfx_poll(swapfx_t* fx, uint64_t* next_ns) {
  return sr_swap_poll(fx->swap, fx->now, next_ns);
}

sr_swap_stats_t swapfx_stats(const swapfx_t* fx) {
  sr_swap_stats_t st;
  memset(&st, 0, sizeof(st));
  sr_swap_stats(fx->swap, &st);
  return st;
}

void swapfx_cb(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  swapfx_rec_t* rec = data;
  rec->ncb++;
  rec->cb_seq = ++rec->fx->seq;
  if (rec->in_read)
    rec->cb_in_own_read++;
  if (rec->ndtor != 0)
    rec->cb_after_dtor++;
  if (swap != rec->fx->swap)
    rec->cb_wrong_swap++;
  rec->done = *done;
  rec->done.missing = NULL;
  rec->had_missing = done->missing != NULL;
  memset(rec->missing, 0, sizeof(rec->missing));
  if (done->missing != NULL) {
    size_t n =
        done->nchunks < SWAPFX_MAX_CHUNKS ? done->nchunks : SWAPFX_MAX_CHUNKS;
    memcpy(rec->missing, done->missing, (n + 63) / 64 * sizeof(uint64_t));
  }
  if (rec->hook != NULL) {
    rec->in_cb = 1;
    rec->hook(rec, swap, done);
    rec->in_cb = 0;
  }
}

void swapfx_dtor(void* data) {
  swapfx_rec_t* rec = data;
  rec->ndtor++;
  rec->dtor_seq = ++rec->fx->seq;
}

size_t swapfx_mismatch(const void* buf, uint64_t gva, size_t len,
                       uint64_t seed) {
  const uint8_t* p = buf;
  for (size_t i = 0; i < len; i++)
    if (p[i] != sr_kit_pattern(seed, gva + i))
      return i;
  return SIZE_MAX;
}

bool swapfx_all(const void* buf, size_t len, uint8_t byte) {
  const uint8_t* p = buf;
  for (size_t i = 0; i < len; i++)
    if (p[i] != byte)
      return false;
  return true;
}

size_t swapfx_nchunks(uint64_t gva, size_t len) {
  uint64_t first = gva & ~(SR_PAGE_4K - 1);
  uint64_t last = (gva + len - 1) & ~(SR_PAGE_4K - 1);
  return (size_t)((last - first) / SR_PAGE_4K + 1);
}

void swapfx_chunk(uint64_t gva, size_t len, size_t i, size_t* off, size_t* n) {
  uint64_t base = gva & ~(SR_PAGE_4K - 1);
  uint64_t lo = base + (uint64_t)i * SR_PAGE_4K;
  uint64_t hi = lo + SR_PAGE_4K;
  uint64_t end = gva + len;
  if (lo < gva)
    lo = gva;
  if (hi - 1 > end - 1)
    hi = end;
  *off = (size_t)(lo - gva);
  *n = (size_t)(hi - lo);
}

bool swapfx_missing(const swapfx_rec_t* rec, size_t i) {
  if (i >= SWAPFX_MAX_CHUNKS)
    return false;
  return (rec->missing[i / 64] >> (i % 64)) & 1;
}

size_t swapfx_missing_count(const swapfx_rec_t* rec) {
  size_t n = 0;
  for (size_t i = 0; i < rec->done.nchunks && i < SWAPFX_MAX_CHUNKS; i++)
    n += swapfx_missing(rec, i);
  return n;
}

int swapfx_violations(const swapfx_rec_t* rec) {
  return rec->cb_in_own_read + rec->cb_after_dtor + rec->cb_wrong_swap;
}

/* Blocks carry their size in a header so free/realloc can be checked. */
#define HDR 16

/* Counts the call and says whether it must fail (fail_at, fail_all, cap). */
static bool count_call(swapfx_alloc_t* a, size_t size) {
  a->calls++;
  if (size > a->max_request)
    a->max_request = size;
  if (a->fail_all || (a->fail_at != 0 && a->calls == a->fail_at) ||
      (a->cap != 0 && size > a->cap)) {
    a->failed++;
    return true;
  }
  return false;
}

static void* count_alloc(void* ctx, size_t size) {
  swapfx_alloc_t* a = ctx;
  unsigned char* p;
  if (count_call(a, size))
    return NULL;
  p = malloc(HDR + size);
  if (p == NULL)
    return NULL;
  memcpy(p, &size, sizeof(size));
  a->live_bytes += size;
  a->live_blocks++;
  return p + HDR;
}

static void count_free(void* ctx, void* ptr, size_t size) {
  swapfx_alloc_t* a = ctx;
  unsigned char* p;
  size_t had;
  if (ptr == NULL)
    return;
  p = (unsigned char*)ptr - HDR;
  memcpy(&had, p, sizeof(had));
  if (had != size)
    a->size_mismatch++;
  a->live_bytes -= had;
  a->live_blocks--;
  free(p);
}

static void* count_realloc(void* ctx, void* ptr, size_t old_size,
                           size_t new_size) {
  swapfx_alloc_t* a = ctx;
  unsigned char* p;
  size_t had;
  if (ptr == NULL)
    return count_alloc(ctx, new_size);
  if (count_call(a, new_size))
    return NULL;
  p = (unsigned char*)ptr - HDR;
  memcpy(&had, p, sizeof(had));
  if (had != old_size)
    a->size_mismatch++;
  p = realloc(p, HDR + new_size);
  if (p == NULL)
    return NULL;
  memcpy(p, &new_size, sizeof(new_size));
  a->live_bytes = a->live_bytes - had + new_size;
  return p + HDR;
}

void swapfx_alloc_arm(swapfx_alloc_t* a, uint64_t k) {
  a->fail_at = a->calls + k;
  a->failed = 0;
}

void swapfx_alloc_disarm(swapfx_alloc_t* a) {
  a->fail_at = 0;
  a->fail_all = false;
}

void swapfx_alloc_init(swapfx_alloc_t* a) {
  memset(a, 0, sizeof(*a));
  a->hook.alloc = count_alloc;
  a->hook.realloc = count_realloc;
  a->hook.free = count_free;
  a->hook.ctx = a;
}

uint64_t swapfx_rand(uint64_t* state) {
  uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

uint64_t swapfx_seed(void) {
  const char* s = getenv("SR_SEED");
  struct timespec ts;
  if (s != NULL && *s != '\0')
    return strtoull(s, NULL, 0);
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec * UINT64_C(1000000007)) ^ (uint64_t)ts.tv_nsec ^
         ((uint64_t)getpid() << 32);
}
