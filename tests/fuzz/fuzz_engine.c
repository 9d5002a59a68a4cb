/* Fuzz target (c): the swap engine driven by an arbitrary operation list.
 *
 * One kit per process (two 4-level address spaces: 16 4 KiB pages each at
 * VA0, plus a 2 MiB page at VA0 + 2 MiB in the first; data pages filled
 * with sr_kit_pattern and never written again). Each input resets the
 * tracked entries to their original values, opens an image and an engine
 * (walk options, poll budget and default timeout from the first bytes) and
 * decodes operations: reads (with PARTIAL / JOIN flags, deadlines and a
 * re-entrant hook run inside the callback), polls with clock jumps, kit
 * page-outs / page-ins of leaf and upper entries with every encoding,
 * entry writes (non-present garbage, present entries with flipped RW/US/NX,
 * reserved or out-of-file address bits, PS on a PML4E), cancels by handle,
 * CR3 and all, stale handles, and invalidations (cancel_all with
 * SR_EIMAGEGONE, then sr_swap_set_image with a new image of the same kit),
 * and an address-space monitor made and freed with fuzzed options (its
 * events must be well formed and its bytes come back on free; the engine's
 * free ends a monitor left with exactly one CLOSED event).
 * The model checks, trapping on any violation: every accepted pending read
 * ends exactly once (one callback, or none only if a callback cancelled it
 * while it was completing) and its dtor runs exactly once, after it; no
 * callback runs inside its own sr_swap_read or after its cancel returned;
 * statuses come only from what could cause them (cancel kinds, deadlines,
 * SR_READ_PARTIAL); every byte a completion reports as copied equals the
 * kit's pattern (data pages never change, and entries are only ever written
 * with values that keep the original frame or cannot be followed); missing
 * chunks of SR_EPARTIAL are zero; no read outlives its deadline past a poll;
 * the engine's pending count matches the model's. The work per input is
 * bounded (at most 256 operations, 64 reads, 16 KiB per read).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <swapread/kit.h>
#include <swapread/spacemon.h>
#include <swapread/swap.h>

#include "fuzz_common.h"

#define VA0 UINT64_C(0x00007f0000000000)
#define NPAGE 16
#define NSPACE 2
#define MAX_OPS 160
#define MAX_TXN 64
#define MAX_LEN 16384
#define MAX_CTX 16
#define MS UINT64_C(1000000)
#define RWU (SR_PROT_W | SR_PROT_U)

/* Entries the fuzzer may change; reset to `orig` before each input. */
typedef struct ent_s {
  int space;
  uint64_t va;
  int level;
  uint64_t orig;
  bool kit_out; /* paged out by sr_kit_page_out, not yet paged in */
} ent_t;

enum { T_FREE, T_PENDING, T_ENDED };

typedef struct txn_s {
  int state;
  int space;
  uint64_t gva;
  size_t len;
  uint32_t flags;
  uint64_t deadline; /* UINT64_MAX: none */
  uint8_t* buf;
  sr_swap_handle_t handle;
  int ncb, ndtor;
  bool in_read;         /* inside the sr_swap_read that started it */
  bool in_cb;           /* inside its own callback */
  bool may_drop;        /* a callback cancelled it: may end without cb */
  bool cancel_returned; /* an sr_swap_cancel of it returned 0 */
  uint8_t hook;
  uint8_t hook_arg;
} txn_t;

/* An active cancel: which reads it may end, with which status. */
typedef struct cctx_s {
  int kind; /* 0 handle, 1 cr3, 2 all */
  int idx;  /* handle: the txn */
  int space;
  int status;
  int ended; /* callbacks it caused (cr3 / all) */
} cctx_t;

typedef struct world_s {
  sr_kit_t* kit;
  uint64_t cr3[NSPACE];
  uint64_t seed[NSPACE];
  ent_t ent[64];
  int nent;
} world_t;

typedef struct run_s {
  sr_swap_t* swap;
  sr_image_t* image;
  uint64_t now;
  bool resident;
  int os;
  bool in_poll;
  uint64_t dflt; /* engine default timeout */
  int depth;     /* callback nesting */
  txn_t txn[MAX_TXN];
  int ntxn;
  cctx_t ctx[MAX_CTX];
  int nctx;
  fuzz_in_t* in;
} run_t;

static world_t W;
static run_t R;
static sr_image_t* image; /* kept from one input to the next */
/* The pattern of each space over [VA0, VA0 + PAT_SPAN), computed once. */
#define PAT_SPAN (2 * SR_PAGE_2M + 4 * SR_PAGE_4K + MAX_LEN)
static uint8_t* pat[NSPACE];
static int trace = -1; /* FUZZ_TRACE=1 prints every operation */

#define TRACE(...)                          \
  do {                                      \
    if (trace < 0)                          \
      trace = getenv("FUZZ_TRACE") != NULL; \
    if (trace)                              \
      fprintf(stderr, __VA_ARGS__);         \
  } while (0)

static void die(const char* what) {
  fprintf(stderr, "fuzz_engine: setup failed: %s\n", what);
  abort();
}

static void add_ent(int space, uint64_t va, int level) {
  ent_t* e = &W.ent[W.nent++];

  e->space = space;
  e->va = va;
  e->level = level;
  if (sr_kit_get_entry(W.kit, W.cr3[space], va, level, &e->orig) != 0)
    die("get_entry");
}

static void world_init(void) {
  sr_kit_opts_t ko;
  int s, i;

  memset(&ko, 0, sizeof(ko));
  ko.size = 8u << 20;
  if (sr_kit_create(&W.kit, &ko) != 0)
    die("kit");
  for (s = 0; s < NSPACE; s++) {
    W.seed[s] = 0x5eed0 + (uint64_t)s;
    if (sr_kit_new_space(W.kit, SR_PAGING_4LEVEL, &W.cr3[s]) != 0 ||
        sr_kit_map(W.kit, W.cr3[s], VA0, NPAGE * SR_PAGE_4K, SR_PAGE_4K, RWU) !=
            0 ||
        sr_kit_fill(W.kit, W.cr3[s], VA0, NPAGE * SR_PAGE_4K, W.seed[s]) != 0)
      die("space");
  }
  if (sr_kit_map(W.kit, W.cr3[0], VA0 + SR_PAGE_2M, SR_PAGE_2M, SR_PAGE_2M,
                 RWU | SR_PROT_NX) != 0 ||
      sr_kit_fill(W.kit, W.cr3[0], VA0 + SR_PAGE_2M, SR_PAGE_2M, W.seed[0]) !=
          0)
    die("2M");
  for (s = 0; s < NSPACE; s++) {
    uint64_t k;
    pat[s] = malloc(PAT_SPAN);
    if (pat[s] == NULL)
      die("pattern");
    for (k = 0; k < PAT_SPAN; k++)
      pat[s][k] = sr_kit_pattern(W.seed[s], VA0 + k);
  }
  /* Upper levels first: the reset restores them first. */
  for (s = 0; s < NSPACE; s++) {
    add_ent(s, VA0, 4);
    add_ent(s, VA0, 3);
    add_ent(s, VA0, 2);
  }
  add_ent(0, VA0 + SR_PAGE_2M, 2);
  for (s = 0; s < NSPACE; s++)
    for (i = 0; i < NPAGE; i++)
      add_ent(s, VA0 + (uint64_t)i * SR_PAGE_4K, 1);
}

int LLVMFuzzerInitialize(int* argc, char*** argv);
int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  (void)argv;
  world_init();
  return 0;
}

/* Puts every tracked entry back (upper levels first) and forgets the
 * kit's page-out records. */
static void world_reset(void) {
  int i;

  for (i = 0; i < W.nent; i++) {
    ent_t* e = &W.ent[i];
    if (e->kit_out) {
      if (sr_kit_page_in(W.kit, W.cr3[e->space], e->va, e->level) != 0)
        die("reset page_in");
      e->kit_out = false;
    }
    if (sr_kit_set_entry(W.kit, W.cr3[e->space], e->va, e->level, e->orig,
                         NULL) != 0)
      die("reset set_entry");
  }
}

/* --- the model's checks ------------------------------------------------- */

static bool chunk_missing(const sr_swap_done_t* d, size_t i) {
  return d->missing != NULL && ((d->missing[i / 64] >> (i % 64)) & 1);
}

/* Bytes of chunk i that the completion says were copied must be the
 * pattern; missing ones of a PARTIAL completion must be zero. */
static void check_bytes(const txn_t* t, const sr_swap_done_t* d) {
  uint64_t first = t->gva & ~(SR_PAGE_4K - 1);
  size_t nch = (size_t)(((t->gva + t->len - 1) >> 12) - (t->gva >> 12) + 1);
  size_t i, k;

  FUZZ_CHECK(d->nchunks == nch);
  FUZZ_CHECK(t->gva >= VA0 && t->gva + t->len <= VA0 + PAT_SPAN);
  for (i = 0; i < nch; i++) {
    uint64_t lo = first + i * SR_PAGE_4K, hi = lo + SR_PAGE_4K;
    bool miss = chunk_missing(d, i);
    if (lo < t->gva)
      lo = t->gva;
    if (hi > t->gva + t->len)
      hi = t->gva + t->len;
    if (miss && d->status != SR_EPARTIAL)
      continue;
    if (!miss && memcmp(t->buf + (lo - t->gva), pat[t->space] + (lo - VA0),
                        hi - lo) == 0)
      continue;
    for (k = (size_t)(lo - t->gva); k < (size_t)(hi - t->gva); k++) {
      uint8_t want = miss ? 0 : sr_kit_pattern(W.seed[t->space], t->gva + k);
      if (t->buf[k] != want) {
        fprintf(stderr,
                "byte %zu of read gva=%#llx len=%zu status=%d chunk %zu "
                "missing=%d: %#x, want %#x\n",
                k, (unsigned long long)t->gva, t->len, d->status, i, miss,
                t->buf[k], want);
        FUZZ_CHECK(0);
      }
    }
  }
}

/* Whether an active cancel may end t with `status`. */
static bool cancel_allows(const txn_t* t, int idx, int status) {
  int i;

  for (i = R.nctx - 1; i >= 0; i--) {
    const cctx_t* c = &R.ctx[i];
    if (c->status != status)
      continue;
    if (c->kind == 0 && c->idx == idx)
      return true;
    if (c->kind == 1 && c->space == t->space)
      return true;
    if (c->kind == 2)
      return true;
  }
  return false;
}

static int txn_index(const txn_t* t) {
  return (int)(t - R.txn);
}

static void start_read(int space, uint64_t gva, size_t len, uint32_t flags,
                       uint64_t timeout, uint8_t hook, uint8_t hook_arg);

static void on_done(sr_swap_t* swap, const sr_swap_done_t* d, void* data) {
  txn_t* t = data;
  int idx = txn_index(t);
  int rc, i;

  FUZZ_CHECK(swap == R.swap);
  FUZZ_CHECK(t->state == T_PENDING);
  FUZZ_CHECK(!t->in_read);
  FUZZ_CHECK(!t->cancel_returned);
  FUZZ_CHECK(t->ncb == 0 && t->ndtor == 0);
  t->ncb++;
  TRACE("  cb #%d status %d hook %u\n", idx, d->status, t->hook & 7);
  FUZZ_CHECK(d->buf == t->buf && d->len == t->len && d->gva == t->gva);
  FUZZ_CHECK(d->flags & SR_DONE_ASYNC);
  switch (d->status) {
    case 0:
    case SR_EHOLE:
    case SR_EBEYOND:
    case SR_EBADENTRY:
      FUZZ_CHECK(R.in_poll);
      break;
    case SR_ETIMEDOUT:
    case SR_EPARTIAL:
      FUZZ_CHECK(R.in_poll && R.now >= t->deadline);
      FUZZ_CHECK((d->status == SR_EPARTIAL) ==
                 ((t->flags & SR_READ_PARTIAL) != 0));
      FUZZ_CHECK(d->missing != NULL);
      break;
    case SR_ECANCELED:
    case SR_EGONE:
    case SR_EIMAGEGONE:
      FUZZ_CHECK(cancel_allows(t, idx, d->status));
      break;
    default:
      fprintf(stderr, "unexpected status %d\n", d->status);
      FUZZ_CHECK(0);
  }
  if (d->status == 0 || d->status == SR_EPARTIAL || d->status == SR_ETIMEDOUT ||
      d->status == SR_ECANCELED || d->status == SR_EGONE ||
      d->status == SR_EIMAGEGONE) {
    if (d->status == 0 || d->missing != NULL)
      check_bytes(t, d);
  }

  /* The re-entrant hook. */
  t->in_cb = true;
  R.depth++;
  switch (t->hook & 7) {
    case 1:
      rc = sr_swap_cancel(swap, t->handle);
      FUZZ_CHECK(rc == SR_EALREADY);
      break;
    case 2:
      FUZZ_CHECK(sr_swap_poll(swap, R.now, NULL) == SR_EBUSY);
      FUZZ_CHECK(sr_swap_set_image(swap, R.image) == SR_EBUSY);
      break;
    case 3:
      if (R.depth < 3)
        start_read(t->space, t->gva + t->hook_arg, t->len, t->flags,
                   t->hook_arg % 3 == 0 ? SR_TIMEOUT_NONE : MS, 0, 0);
      break;
    case 4: {
      txn_t* o = &R.txn[t->hook_arg % (R.ntxn > 0 ? R.ntxn : 1)];
      if (o != t && o->state != T_FREE) {
        bool was_pending = o->state == T_PENDING && !o->in_cb;
        cctx_t* c;
        FUZZ_CHECK(R.nctx < MAX_CTX);
        c = &R.ctx[R.nctx++];
        memset(c, 0, sizeof(*c));
        c->kind = 0;
        c->idx = txn_index(o);
        c->status = SR_ECANCELED;
        if (was_pending)
          o->may_drop = true;
        rc = sr_swap_cancel(swap, o->handle);
        R.nctx--;
        if (o->state == T_ENDED && !was_pending)
          FUZZ_CHECK(rc == SR_ESTALE);
        FUZZ_CHECK(rc == 0 || rc == SR_ESTALE || rc == SR_EALREADY);
        if (rc == 0)
          FUZZ_CHECK(o->ncb == 1 || (o->may_drop && o->ncb == 0));
        if (rc == 0 && o->ncb == 1)
          FUZZ_CHECK(o->state == T_ENDED);
      }
      break;
    }
    case 5: {
      cctx_t* c;
      FUZZ_CHECK(R.nctx < MAX_CTX);
      c = &R.ctx[R.nctx++];
      memset(c, 0, sizeof(*c));
      c->kind = 1;
      c->space = t->space;
      c->status = (t->hook_arg & 1) ? SR_EGONE : SR_ECANCELED;
      for (i = 0; i < R.ntxn; i++)
        if (R.txn[i].state == T_PENDING && R.txn[i].space == t->space &&
            &R.txn[i] != t)
          R.txn[i].may_drop = true;
      rc = sr_swap_cancel_cr3(swap, W.cr3[t->space], c->status);
      R.nctx--;
      FUZZ_CHECK(rc >= 0);
      break;
    }
    case 6: {
      cctx_t* c;
      FUZZ_CHECK(R.nctx < MAX_CTX);
      c = &R.ctx[R.nctx++];
      memset(c, 0, sizeof(*c));
      c->kind = 2;
      c->status = SR_ECANCELED;
      for (i = 0; i < R.ntxn; i++)
        if (R.txn[i].state == T_PENDING && &R.txn[i] != t)
          R.txn[i].may_drop = true;
      rc = sr_swap_cancel_all(swap, SR_ECANCELED);
      R.nctx--;
      FUZZ_CHECK(rc >= 0);
      break;
    }
    default:
      break;
  }
  R.depth--;
  t->in_cb = false;
}

static void on_dtor(void* data) {
  txn_t* t = data;

  FUZZ_CHECK(t->state == T_PENDING);
  FUZZ_CHECK(!t->in_read && !t->in_cb);
  FUZZ_CHECK(t->ndtor == 0);
  FUZZ_CHECK(t->ncb == 1 || (t->ncb == 0 && t->may_drop));
  t->ndtor++;
  t->state = T_ENDED;
  TRACE("  dtor #%d\n", txn_index(t));
}

static void start_read(int space, uint64_t gva, size_t len, uint32_t flags,
                       uint64_t timeout, uint8_t hook, uint8_t hook_arg) {
  txn_t* t;
  sr_swap_req_t req;
  sr_swap_done_t sync;
  int rc;

  if (R.ntxn == MAX_TXN || len == 0 || len > MAX_LEN)
    return;
  t = &R.txn[R.ntxn++];
  memset(t, 0, sizeof(*t));
  t->space = space;
  t->gva = gva;
  t->len = len;
  t->flags = flags;
  t->hook = hook;
  t->hook_arg = hook_arg;
  t->buf = malloc(len);
  FUZZ_CHECK(t->buf != NULL);
  memset(t->buf, 0xee, len);
  memset(&req, 0, sizeof(req));
  req.cr3 = W.cr3[space];
  req.gva = gva;
  req.buf = t->buf;
  req.len = len;
  req.flags = flags;
  req.timeout_ns = timeout;
  t->state = T_PENDING; /* until proven otherwise */
  t->in_read = true;
  rc =
      sr_swap_read(R.swap, &req, R.now, on_done, t, on_dtor, &t->handle, &sync);
  t->in_read = false;
  TRACE(
      "read #%d space %d gva %#llx len %zu flags %u timeout %llu -> %d "
      "(id %llu)\n",
      txn_index(t), space, (unsigned long long)gva, len, flags,
      (unsigned long long)timeout, rc, (unsigned long long)t->handle.id);
  if (rc == 0) {
    FUZZ_CHECK(t->ncb == 0 && t->ndtor == 0);
    FUZZ_CHECK(sync.status == 0 && !(sync.flags & SR_DONE_ASYNC));
    sync.status = 0;
    sync.missing = NULL;
    t->deadline = 0;
    check_bytes(t, &sync);
    t->state = T_FREE;
    free(t->buf);
    t->buf = NULL;
    R.ntxn--;
    return;
  }
  if (rc < 0) {
    FUZZ_CHECK(t->ncb == 0 && t->ndtor == 0);
    FUZZ_CHECK(rc == SR_EHOLE || rc == SR_EBEYOND || rc == SR_EBADENTRY ||
               rc == SR_ENOMEM);
    FUZZ_CHECK(sync.status == rc);
    free(t->buf);
    t->buf = NULL;
    R.ntxn--;
    return;
  }
  FUZZ_CHECK(rc == SR_PENDING);
  FUZZ_CHECK(t->handle.id != 0);
  FUZZ_CHECK(t->ncb == 0 && t->ndtor == 0);
  if (timeout == 0)
    timeout = R.dflt != 0 ? R.dflt : SR_TIMEOUT_NONE;
  if (timeout == SR_TIMEOUT_NONE || timeout > UINT64_MAX - R.now)
    t->deadline = UINT64_MAX;
  else
    t->deadline = R.now + timeout;
}

static int count_pending(void) {
  int i, n = 0;

  for (i = 0; i < R.ntxn; i++)
    n += R.txn[i].state == T_PENDING;
  return n;
}

static int dump_count(const sr_swap_txn_info_t* info, void* arg) {
  (void)info;
  (*(int*)arg)++;
  return 0;
}

static void check_counts(void) {
  sr_swap_stats_t st;
  int n = 0;

  sr_swap_stats(R.swap, &st);
  FUZZ_CHECK(st.pending == (uint64_t)count_pending());
  FUZZ_CHECK(sr_swap_dump(R.swap, R.now, dump_count, &n) == 0);
  FUZZ_CHECK(n == count_pending());
}

/* Runs a bulk cancel and checks that it ended what it said. */
static void bulk_cancel(int kind, int space, int status) {
  int before[MAX_TXN];
  int i, rc, ended = 0, n0 = R.ntxn;
  cctx_t* c = &R.ctx[R.nctx++];

  memset(c, 0, sizeof(*c));
  c->kind = kind;
  c->space = space;
  c->status = status;
  for (i = 0; i < R.ntxn; i++)
    before[i] =
        R.txn[i].state == T_PENDING && (kind == 2 || R.txn[i].space == space);
  TRACE("bulk cancel kind %d space %d status %d\n", kind, space, status);
  rc = kind == 2 ? sr_swap_cancel_all(R.swap, status)
                 : sr_swap_cancel_cr3(R.swap, W.cr3[space], status);
  TRACE("bulk cancel -> %d\n", rc);
  R.nctx--;
  FUZZ_CHECK(rc >= 0);
  for (i = 0; i < n0; i++) {
    if (!before[i])
      continue;
    if (R.txn[i].state != T_ENDED)
      fprintf(stderr,
              "bulk cancel kind %d status %d rc %d: txn %d gva=%#llx "
              "len=%zu flags=%u ncb=%d ndtor=%d may_drop=%d\n",
              kind, status, rc, i, (unsigned long long)R.txn[i].gva,
              R.txn[i].len, R.txn[i].flags, R.txn[i].ncb, R.txn[i].ndtor,
              R.txn[i].may_drop);
    FUZZ_CHECK(R.txn[i].state == T_ENDED);
    ended++;
  }
  /* Reads started by those callbacks are not included, and may still be
   * pending; everything that was pending is ended and counted. */
  FUZZ_CHECK(rc == ended);
}

/* An entry value for the garbage op that never makes a read copy other
 * bytes than the pattern: non-present (not resident when resident reads
 * are on), or present with the original frame and other bits changed. */
static uint64_t garbage(const ent_t* e, uint8_t how, uint64_t raw) {
  uint64_t v;

  switch (how % 4) {
    case 0: /* non-present */
      v = raw & ~UINT64_C(1);
      if (R.resident) {
        sr_pte_info_t info;
        if (sr_pte_classify(v, e->level, (sr_os_t)R.os, &info) != SR_PTE_NONE &&
            info.resident)
          v &= ~(UINT64_C(0x100) | UINT64_C(0x800));
      }
      return v;
    case 1: /* flipped protection bits */
      return e->orig ^ (raw & (UINT64_C(0x6) | (UINT64_C(1) << 63)));
    case 2: /* address bits 40..51: reserved or beyond the file */
      return e->orig | ((raw & 0xfff) << 40) | (UINT64_C(1) << 45);
    default: /* PS on a PML4E: bad entry; elsewhere non-present */
      return e->level == 4 ? e->orig | UINT64_C(0x80) : 0;
  }
}

static void op_page_out(fuzz_in_t* in) {
  ent_t* e = &W.ent[fuzz_u8(in) % W.nent];
  uint8_t k = fuzz_u8(in);
  sr_pte_info_t as;
  int rc;

  memset(&as, 0, sizeof(as));
  as.swap_offset = 1 + fuzz_u8(in);
  as.swap_type = k >> 4;
  if (R.os == SR_OS_LINUX) {
    static const sr_pte_kind_t kinds[] = {SR_PTE_LINUX_SWAP, SR_PTE_NONE,
                                          SR_PTE_LINUX_PROTNONE};
    as.kind = kinds[k % 3];
    /* A PROT_NONE PDE is a 2 MiB leaf: only for the 2 MiB page. */
    if (as.kind == SR_PTE_LINUX_PROTNONE && e->level == 2 && !(e->orig & 0x80))
      as.kind = SR_PTE_LINUX_SWAP;
  } else {
    static const sr_pte_kind_t kinds[] = {SR_PTE_WIN_PAGEFILE, SR_PTE_NONE,
                                          SR_PTE_WIN_TRANSITION,
                                          SR_PTE_WIN_PROTOTYPE};
    as.kind = kinds[k % 4];
    as.swap_type &= 15;
    as.proto_addr = UINT64_C(0xffff800000000000) + 8 * (uint64_t)k;
    /* A transition PDE of a 2 MiB page would read as a table. */
    if (as.kind == SR_PTE_WIN_TRANSITION && e->level > 1 && (e->orig & 0x80))
      as.kind = SR_PTE_WIN_PAGEFILE;
  }
  rc = sr_kit_page_out(W.kit, W.cr3[e->space], e->va, e->level, &as);
  TRACE("page_out space %d va %#llx level %d kind %d -> %d\n", e->space,
        (unsigned long long)e->va, e->level, (int)as.kind, rc);
  if (rc == 0)
    e->kit_out = true;
}

static void op_page_in(fuzz_in_t* in) {
  ent_t* e = &W.ent[fuzz_u8(in) % W.nent];

  int rc = sr_kit_page_in(W.kit, W.cr3[e->space], e->va, e->level);
  TRACE("page_in space %d va %#llx level %d -> %d\n", e->space,
        (unsigned long long)e->va, e->level, rc);
  if (rc == 0)
    e->kit_out = false;
}

static void op_read(fuzz_in_t* in) {
  uint8_t m = fuzz_u8(in);
  int space = m & 1;
  uint64_t gva;
  size_t len = (size_t)(fuzz_u16(in) % MAX_LEN) + 1;
  uint32_t flags =
      ((m >> 1) & 1 ? SR_READ_PARTIAL : 0) | ((m >> 2) & 1 ? SR_READ_JOIN : 0);
  uint8_t tsel = fuzz_u8(in);
  uint64_t timeout;
  uint8_t hook = fuzz_u8(in), hook_arg = fuzz_u8(in);

  if (space == 0 && (m & 8))
    gva = VA0 + SR_PAGE_2M + fuzz_u32(in) % (SR_PAGE_2M + 8192);
  else if (m & 16)
    gva = VA0 + (uint64_t)(fuzz_u8(in) % (NPAGE + 2)) * SR_PAGE_4K;
  else
    gva = VA0 + fuzz_u32(in) % ((NPAGE + 2) * SR_PAGE_4K);
  if (tsel == 0)
    timeout = 0;
  else if (tsel == 255)
    timeout = SR_TIMEOUT_NONE;
  else
    timeout = (uint64_t)tsel * MS;
  start_read(space, gva, len, flags, timeout, hook, hook_arg);
}

static void op_poll(fuzz_in_t* in) {
  uint8_t m = fuzz_u8(in);
  uint64_t next = 0;
  int rc, i;

  if (m & 0x80)
    R.now += (uint64_t)fuzz_u16(in) * MS;
  else
    R.now += (uint64_t)m * MS / 4;
  TRACE("poll at %llu\n", (unsigned long long)R.now);
  R.in_poll = true;
  rc = sr_swap_poll(R.swap, R.now, &next);
  R.in_poll = false;
  TRACE("poll -> %d\n", rc);
  FUZZ_CHECK(rc >= 0);
  for (i = 0; i < R.ntxn; i++) {
    const txn_t* t = &R.txn[i];
    if (t->state == T_PENDING) {
      FUZZ_CHECK(t->deadline > R.now); /* nothing outlives its deadline */
      FUZZ_CHECK(next <= t->deadline || t->deadline == UINT64_MAX);
    }
  }
}

static void op_cancel(fuzz_in_t* in) {
  uint8_t m = fuzz_u8(in);
  txn_t* t;
  sr_swap_handle_t h;
  int rc;

  if (R.ntxn == 0 || (m & 0x80)) {
    cctx_t* c = &R.ctx[R.nctx++];
    memset(c, 0, sizeof(*c));
    c->kind = 2; /* a made-up id may name a live read by chance */
    c->status = SR_ECANCELED;
    h.id = (m & 0x40) ? 0 : fuzz_u64(in);
    rc = sr_swap_cancel(R.swap, h);
    R.nctx--;
    if (h.id == 0)
      FUZZ_CHECK(rc == SR_ESTALE);
    return;
  }
  t = &R.txn[m % R.ntxn];
  if (t->state == T_PENDING) {
    cctx_t* c = &R.ctx[R.nctx++];
    memset(c, 0, sizeof(*c));
    c->kind = 0;
    c->idx = txn_index(t);
    c->status = SR_ECANCELED;
    rc = sr_swap_cancel(R.swap, t->handle);
    R.nctx--;
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(t->state == T_ENDED && t->ncb == 1 && t->ndtor == 1);
    t->cancel_returned = true;
  } else {
    rc = sr_swap_cancel(R.swap, t->handle);
    FUZZ_CHECK(rc == SR_ESTALE);
  }
}

/* The address-space monitor: at most one, made and freed by op 11. */
static struct {
  sr_spacemon_t* sm;
  unsigned closed;
} M;

static void on_space(sr_spacemon_t* sm, const sr_spacemon_event_t* ev,
                     void* data) {
  (void)data;
  FUZZ_CHECK(sm == M.sm);
  FUZZ_CHECK(sr_spacemon_free(sm) == SR_EBUSY);
  if (ev->kind == SR_SPACEMON_CLOSED) {
    M.closed++;
    return;
  }
  FUZZ_CHECK(ev->kind >= SR_SPACEMON_MAPPED &&
             ev->kind <= SR_SPACEMON_UNTRACKED);
  FUZZ_CHECK(ev->size >= SR_PAGE_4K && (ev->size & (ev->size - 1)) == 0);
  FUZZ_CHECK((ev->va & (ev->size - 1)) == 0);
  if (ev->kind == SR_SPACEMON_MAPPED)
    FUZZ_CHECK(ev->now.mapped && !ev->old.mapped);
  if (ev->kind == SR_SPACEMON_UNMAPPED)
    FUZZ_CHECK(ev->old.mapped && !ev->now.mapped);
  if (ev->kind == SR_SPACEMON_CHANGED)
    FUZZ_CHECK(ev->bits != 0 && ev->old.mapped == ev->now.mapped);
}

static void op_spacemon(fuzz_in_t* in) {
  sr_spacemon_opts_t o;
  uint8_t b = fuzz_u8(in);
  int rc;

  if (M.sm != NULL) {
    FUZZ_CHECK(sr_spacemon_free(M.sm) == 0);
    M.sm = NULL;
    return;
  }
  memset(&o, 0, sizeof(o));
  o.budget = b & 3;
  o.max_tables = (b >> 2) & 7;
  o.bits = (b & 0x20) ? 0xff : 0;
  if (b & 0x40) {
    o.lo = VA0 + SR_PAGE_4K * (fuzz_u8(in) % NPAGE);
    o.hi = o.lo + SR_PAGE_4K * (1 + fuzz_u8(in) % NPAGE);
  }
  rc = sr_spacemon_new(&M.sm, R.swap, W.cr3[(b >> 7) % NSPACE], &o, on_space,
                       NULL);
  FUZZ_CHECK(rc == 0 || rc == SR_EHOLE || rc == SR_EBEYOND);
  FUZZ_CHECK((rc == 0) == (M.sm != NULL));
}

static void op_invalidate(void) {
  sr_image_t* img = NULL;

  if (M.sm != NULL) { /* sr_swap_set_image refuses while one exists */
    FUZZ_CHECK(sr_spacemon_free(M.sm) == 0);
    M.sm = NULL;
  }

  bulk_cancel(2, 0, SR_EIMAGEGONE);
  /* Callbacks may have started reads: end those too (SR_EBUSY else). */
  while (count_pending() > 0)
    bulk_cancel(2, 0, SR_ECANCELED);
  FUZZ_CHECK(sr_kit_open_image(W.kit, &img) == 0);
  FUZZ_CHECK(sr_swap_set_image(R.swap, img) == 0);
  sr_image_close(R.image);
  R.image = img;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_in_t in;
  sr_swap_opts_t opts;
  uint8_t cfg, budget, dflt;
  int nops, i;

  if (W.kit == NULL)
    world_init();
  world_reset();
  memset(&R, 0, sizeof(R));
  memset(&M, 0, sizeof(M));
  fuzz_in_init(&in, data, size);
  R.in = &in;
  cfg = fuzz_u8(&in);
  budget = fuzz_u8(&in);
  dflt = fuzz_u8(&in);
  R.now = UINT64_C(1000000000);
  R.os = (cfg & 1) ? SR_OS_WINDOWS : SR_OS_LINUX;
  R.resident = (cfg & 2) != 0;
  memset(&opts, 0, sizeof(opts));
  opts.walk.os = (sr_os_t)R.os;
  opts.walk.flags = R.resident ? SR_WALK_RESIDENT : 0;
  opts.walk.maxphyaddr = (cfg & 4) ? 46 : 0;
  opts.poll_budget = budget % 5;
  opts.default_timeout_ns = (uint64_t)dflt * MS;
  R.dflt = opts.default_timeout_ns;

  /* The image lives across inputs (it is stateless for an unchanging file:
   * opening one per input costs more than the rest); an invalidation
   * replaces it. */
  if (image == NULL)
    FUZZ_CHECK(sr_kit_open_image(W.kit, &image) == 0);
  R.image = image;
  FUZZ_CHECK(sr_swap_new(&R.swap, R.image, &opts) == 0);

  for (nops = 0; nops < MAX_OPS && fuzz_in_left(&in); nops++) {
    uint8_t op = fuzz_u8(&in);
    switch (op % 12) {
      case 0:
      case 1:
      case 2:
        op_read(&in);
        break;
      case 3:
      case 4:
        op_poll(&in);
        break;
      case 5:
        op_page_out(&in);
        break;
      case 6:
        op_page_in(&in);
        break;
      case 7: {
        ent_t* e = &W.ent[fuzz_u8(&in) % W.nent];
        uint8_t how = fuzz_u8(&in);
        uint64_t raw = fuzz_u64(&in);
        if (how & 0x80)
          raw = e->orig; /* restore */
        else
          raw = garbage(e, how, raw);
        TRACE("set_entry space %d va %#llx level %d = %#llx -> %d\n", e->space,
              (unsigned long long)e->va, e->level, (unsigned long long)raw,
              sr_kit_set_entry(W.kit, W.cr3[e->space], e->va, e->level, raw,
                               NULL));
        break;
      }
      case 8:
        op_cancel(&in);
        break;
      case 9:
        bulk_cancel(1, fuzz_u8(&in) & 1, (op & 0x80) ? SR_EGONE : SR_ECANCELED);
        break;
      case 10:
        if (op & 0x80)
          op_invalidate();
        else
          bulk_cancel(2, 0, SR_ECANCELED);
        break;
      default:
        if (op & 0x80)
          op_spacemon(&in);
        else
          check_counts();
        break;
    }
    FUZZ_CHECK(R.nctx == 0 && R.depth == 0);
  }
  check_counts();

  /* The end: freeing the engine cancels what is left (callbacks run). */
  {
    cctx_t* c = &R.ctx[R.nctx++];
    memset(c, 0, sizeof(*c));
    c->kind = 2;
    c->status = SR_ECANCELED;
    {
      bool had = M.sm != NULL;
      sr_swap_free(R.swap);
      FUZZ_CHECK(M.closed == (had ? 1u : 0u));
    }
    R.nctx--;
  }
  for (i = 0; i < R.ntxn; i++) {
    txn_t* t = &R.txn[i];
    FUZZ_CHECK(t->state == T_ENDED);
    FUZZ_CHECK(t->ndtor == 1);
    FUZZ_CHECK(t->ncb == 1 || (t->ncb == 0 && t->may_drop));
    free(t->buf);
  }
  image = R.image;
  return 0;
}
