/* Property test of the swap engine over a random holey image.
 *
 * Property: for thousands of random reads interleaved with random page-out,
 * page-in (with new content while out), PDE-level page-out/in, polls with a
 * random budget, deadlines, cancels (by handle, CR3, all) and re-entrant
 * reads and cancels from callbacks:
 *  - a read returns 0 iff every chunk is present (buffer = current content),
 *    SR_EHOLE iff some present chunk is in a physical hole, else SR_PENDING
 *    with the present chunks already copied;
 *  - every accepted pending read ends exactly once: one callback (or none
 *    if a callback dropped it while it was completing) and one dtor after;
 *  - every byte a completion reports equals what the kit says its page held
 *    at some moment the engine looked (read or poll) while it was present
 *    during the read's life, chunks present at the start exactly as then;
 *    missing chunks are listed (and zeroed with SR_READ_PARTIAL);
 *  - no read outlives its deadline past a poll, and once everything is
 *    paged in, only reads touching never-mapped pages are left.
 * The seed is printed; SR_SEED overrides it. The expectations come from
 * this file's model of what it did to the kit, never from the engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/swap_fixture.h"

#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define RWU (SR_PROT_W | SR_PROT_U)

#define NSPACE 2
#define NREG 4 /* 2 MiB regions per space */
#define WIN 64 /* pages of each region that reads use */
#define NPAGE (NSPACE * NREG * WIN)
#define NHOLE 4 /* frames punched out of the layout */
#define MAXCH 8 /* chunks of a read, at most */
#define STEPS 30000
#define MAXCTX 16

enum { PG_GOOD, PG_UNMAPPED, PG_BAD };
enum { T_SYNC, T_REJECTED, T_PENDING, T_ENDED };

typedef struct prop_s prop_t;

typedef struct ptxn_s {
  prop_t* P;
  int space;
  uint64_t gva;
  size_t len;
  uint32_t flags;
  uint64_t deadline;
  uint8_t* buf;
  sr_swap_handle_t handle;
  int state;
  bool joined;
  bool dropped;
  bool in_cb;
  int ncb, ndtor;
  uint64_t obs_start;
  size_t nch;
  size_t page[MAXCH];
  uint32_t ver_start[MAXCH];
  bool present_start[MAXCH];
} ptxn_t;

/* An active cancel call: what it may end, with which status. */
typedef struct cctx_s {
  int kind; /* 0 handle, 1 cr3, 2 all */
  uint64_t id;
  int space;
  int status;
} cctx_t;

struct prop_s {
  swapfx_t* fx;
  uint64_t seed;
  uint64_t rng;
  uint64_t cr3[NSPACE];
  bool is2m[NSPACE][NREG];
  bool pde_out[NSPACE][NREG];
  int kind[NPAGE];
  bool pte_out[NPAGE];
  uint32_t ver[NPAGE];
  uint64_t pres_from[NPAGE];
  uint64_t pres_last[NPAGE]; /* 0: never */
  bool present[NPAGE];
  uint64_t obs; /* observations so far (reads + polls) */
  ptxn_t** txn;
  size_t ntxn, cap;
  cctx_t ctx[MAXCTX];
  int nctx;
  int in_poll;
  int depth;             /* callbacks running */
  bool quiet;            /* no engine calls from callbacks (the final phase) */
  unsigned bulk_in_poll; /* bit per space a bulk cancel hit in this poll */
  uint64_t nfail;
  char msg[512];
  /* counts, for the summary */
  uint64_t drops;
  uint64_t reads, pendings, syncs, rejects, completions, nested;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
fail_at(prop_t* P, int line, const char* fmt, ...);

static void fail_at(prop_t* P, int line, const char* fmt, ...) {
  va_list ap;
  if (P->nfail++ != 0)
    return;
  int n = snprintf(P->msg, sizeof(P->msg),
                   "seed %llu line %d: ", (unsigned long long)P->seed, line);
  va_start(ap, fmt);
  vsnprintf(P->msg + n, sizeof(P->msg) - (size_t)n, fmt, ap);
  va_end(ap);
}
#define FAIL(...) fail_at(P, __LINE__, __VA_ARGS__)
#define CHECK(c, ...)    \
  do {                   \
    if (!(c))            \
      FAIL(__VA_ARGS__); \
  } while (0)

static uint64_t rnd(prop_t* P, uint64_t n) {
  return n == 0 ? 0 : swapfx_rand(&P->rng) % n;
}

static uint64_t page_va(size_t p) {
  size_t i = p % WIN;
  size_t reg = (p / WIN) % NREG;
  return SWAPFX_VA + reg * M2 + i * K4;
}

static int page_space(size_t p) {
  return (int)(p / (WIN * NREG));
}

static int page_reg(size_t p) {
  return (int)((p / WIN) % NREG);
}

static uint64_t page_seed(const prop_t* P, size_t p, uint32_t ver) {
  uint64_t s =
      P->seed ^ (p * UINT64_C(0x9e3779b97f4a7c15)) ^ ((uint64_t)ver << 40);
  return swapfx_rand(&s);
}

static bool compute_present(const prop_t* P, size_t p) {
  int s = page_space(p), r = page_reg(p);
  if (P->kind[p] == PG_UNMAPPED || P->pde_out[s][r])
    return false;
  return P->is2m[s][r] || !P->pte_out[p];
}

/* Re-derives presence of pages [lo, hi) after a kit change, tracking when
 * each was present at an observation. */
static void refresh(prop_t* P, size_t lo, size_t hi) {
  for (size_t p = lo; p < hi; p++) {
    bool now = compute_present(P, p);
    if (now == P->present[p])
      continue;
    if (now) {
      P->pres_from[p] = P->obs + 1;
    } else if (P->pres_from[p] <= P->obs) {
      P->pres_last[p] = P->obs;
    }
    P->present[p] = now;
  }
}

/* Whether p was present at some observation in [s, P->obs]. */
static bool seen_present(const prop_t* P, size_t p, uint64_t s) {
  uint64_t from = P->pres_from[p] > s ? P->pres_from[p] : s;
  if (P->present[p] && from <= P->obs)
    return true;
  return P->pres_last[p] >= s;
}

/* Chunk i's bytes of t match a version of its page in [lo, hi]. */
static bool chunk_matches(const prop_t* P, const ptxn_t* t, size_t i,
                          const uint8_t* buf, uint32_t lo, uint32_t hi) {
  size_t off, n;
  swapfx_chunk(t->gva, t->len, i, &off, &n);
  for (uint32_t v = lo; v <= hi; v++)
    if (swapfx_mismatch(buf + off, t->gva + off, n,
                        page_seed(P, t->page[i], v)) == SIZE_MAX)
      return true;
  return false;
}

static bool ctx_allows(const prop_t* P, const ptxn_t* t, int status) {
  for (int k = 0; k < P->nctx; k++) {
    const cctx_t* c = &P->ctx[k];
    if (c->status != status)
      continue;
    if (c->kind == 2 || (c->kind == 1 && c->space == t->space) ||
        (c->kind == 0 && c->id == t->handle.id))
      return true;
  }
  return false;
}

static void check_done(prop_t* P, ptxn_t* t, const sr_swap_done_t* d) {
  int st = d->status;
  bool any_missing = false;
  CHECK(d->gva == t->gva && d->len == t->len && d->buf == t->buf &&
            d->cr3 == P->cr3[t->space],
        "done fields of read %llx+%zu", (unsigned long long)t->gva, t->len);
  CHECK(d->flags & SR_DONE_ASYNC, "callback without SR_DONE_ASYNC");
  CHECK(d->nchunks == t->nch, "nchunks %zu, expected %zu", d->nchunks, t->nch);
  if (st == SR_ECANCELED || st == SR_EGONE || st == SR_EIMAGEGONE) {
    CHECK(ctx_allows(P, t, st), "status %d without a matching cancel", st);
    return;
  }
  CHECK(P->in_poll > 0, "status %d outside a poll", st);
  if (st == SR_ETIMEDOUT || st == SR_EPARTIAL) {
    CHECK(P->fx->now >= t->deadline, "timed out early (now %llu < %llu)",
          (unsigned long long)P->fx->now, (unsigned long long)t->deadline);
    CHECK((st == SR_EPARTIAL) == ((t->flags & SR_READ_PARTIAL) != 0),
          "status %d for flags %u", st, t->flags);
    CHECK(d->missing != NULL, "no missing bitmap");
    if (d->missing == NULL)
      return;
  } else if (st == SR_EHOLE) {
    bool bad = false;
    for (size_t i = 0; i < t->nch; i++)
      bad |= P->kind[t->page[i]] == PG_BAD &&
             seen_present(P, t->page[i], t->obs_start);
    CHECK(bad, "SR_EHOLE without a present bad page");
    return;
  } else {
    CHECK(st == 0, "unexpected status %d", st);
    if (st != 0)
      return;
  }
  for (size_t i = 0; i < t->nch; i++) {
    size_t p = t->page[i];
    bool missing =
        d->missing != NULL && st != 0 && ((d->missing[i / 64] >> (i % 64)) & 1);
    bool seen = seen_present(P, p, t->obs_start);
    size_t off, n;
    swapfx_chunk(t->gva, t->len, i, &off, &n);
    any_missing |= missing;
    if (missing) {
      CHECK(!t->present_start[i] || t->joined,
            "chunk %zu present at the start reported missing", i);
      if (st == SR_EPARTIAL)
        CHECK(swapfx_all(t->buf + off, n, 0), "missing chunk %zu not zeroed",
              i);
      continue;
    }
    CHECK(P->kind[p] == PG_GOOD, "chunk %zu of a never-readable page done", i);
    CHECK(seen || t->joined, "chunk %zu done but never seen present", i);
    if (t->present_start[i] && !t->joined)
      CHECK(chunk_matches(P, t, i, t->buf, t->ver_start[i], t->ver_start[i]),
            "chunk %zu (present at start) bytes differ", i);
    else
      CHECK(chunk_matches(P, t, i, t->buf, t->ver_start[i], P->ver[p]),
            "chunk %zu bytes match no version %u..%u", i, t->ver_start[i],
            P->ver[p]);
  }
  if (st != 0)
    CHECK(any_missing, "status %d with nothing missing", st);
}

static void maybe_nested(prop_t* P, ptxn_t* self);

static void prop_cb(sr_swap_t* swap, const sr_swap_done_t* d, void* data) {
  ptxn_t* t = data;
  prop_t* P = t->P;
  (void)swap;
  t->ncb++;
  CHECK(t->state == T_PENDING, "callback for a read in state %d", t->state);
  CHECK(t->ncb == 1, "second callback");
  CHECK(t->ndtor == 0, "callback after dtor");
  CHECK(!t->dropped, "callback of a dropped read");
  t->state = T_ENDED;
  check_done(P, t, d);
  P->completions++;
  t->in_cb = true;
  P->depth++;
  maybe_nested(P, t);
  P->depth--;
  t->in_cb = false;
}

static void prop_dtor(void* data) {
  ptxn_t* t = data;
  prop_t* P = t->P;
  t->ndtor++;
  CHECK(t->ndtor == 1, "second dtor");
  CHECK(t->ncb == 1 || t->dropped || t->state == T_PENDING,
        "dtor without callback, not dropped");
  if (t->ncb == 0) {
    /* dropped while completing, by a sibling's cancel of it, or (the
     * contract leaves it open) by a bulk cancel from a callback */
    if (!t->dropped && P->in_poll && (P->bulk_in_poll >> t->space) & 1)
      t->dropped = true;
    CHECK(t->dropped, "dtor of a read neither called back nor dropped");
    t->state = T_ENDED;
  }
  free(t->buf);
  t->buf = NULL;
}

static int keep_txn(prop_t* P, ptxn_t* t) {
  if (P->ntxn == P->cap) {
    size_t cap = P->cap ? P->cap * 2 : 256;
    ptxn_t** a = realloc(P->txn, cap * sizeof(*a));
    if (a == NULL)
      return -1;
    P->txn = a;
    P->cap = cap;
  }
  P->txn[P->ntxn++] = t;
  return 0;
}

static ptxn_t* live_txn(prop_t* P, ptxn_t * not ) {
  for (int tries = 0; tries < 8 && P->ntxn > 0; tries++) {
    ptxn_t* t = P->txn[rnd(P, P->ntxn)];
    if (t->state == T_PENDING && t != not &&!t->dropped)
      return t;
  }
  return NULL;
}

/* Starts one random read (or a duplicate of a live one) and checks what
 * sr_swap_read answered against the model. */
static void do_read(prop_t* P) {
  ptxn_t* t = calloc(1, sizeof(*t));
  ptxn_t* dup = rnd(P, 5) == 0 ? live_txn(P, NULL) : NULL;
  sr_swap_req_t req;
  uint64_t timeout, req_timeout;
  bool all = true, bad = false, joinable = false;
  uint64_t before_joined;
  int rc;

  if (t == NULL || keep_txn(P, t) != 0) {
    free(t);
    FAIL("out of memory");
    return;
  }
  t->P = P;
  if (dup != NULL) {
    t->space = dup->space;
    t->gva = dup->gva;
    t->len = dup->len;
    t->flags = dup->flags;
  } else {
    int s = (int)rnd(P, NSPACE), r = (int)rnd(P, NREG);
    uint64_t win = SWAPFX_VA + (uint64_t)r * M2;
    uint64_t maxlen = 6 * K4;
    t->space = s;
    t->len = (size_t)(1 + rnd(P, rnd(P, 2) ? maxlen : 64));
    t->gva = win + rnd(P, WIN * K4 - t->len + 1);
    t->flags = (rnd(P, 3) == 0 ? SR_READ_PARTIAL : 0) |
               (rnd(P, 3) == 0 ? SR_READ_JOIN : 0);
  }
  switch (rnd(P, 10)) {
    case 0:
    case 1:
    case 2:
    case 3:
      req_timeout = SR_TIMEOUT_NONE;
      break;
    case 4:
    case 5:
    case 6:
      req_timeout = 0; /* the engine default */
      break;
    default:
      req_timeout = 1 + rnd(P, 3000);
  }
  timeout = req_timeout;
  if (timeout == 0)
    timeout = P->fx->opts.default_timeout_ns == 0
                  ? SR_TIMEOUT_NONE
                  : P->fx->opts.default_timeout_ns;
  t->deadline =
      timeout == SR_TIMEOUT_NONE ? SR_TIMEOUT_NONE : P->fx->now + timeout;
  t->nch = swapfx_nchunks(t->gva, t->len);
  t->buf = malloc(t->len);
  if (t->buf == NULL || t->nch > MAXCH) {
    FAIL("setup of a read");
    return;
  }
  memset(t->buf, SWAPFX_SENTINEL, t->len);
  {
    size_t base =
        ((size_t)t->space * NREG + (size_t)((t->gva - SWAPFX_VA) / M2)) * WIN;
    size_t first = (size_t)(((t->gva - SWAPFX_VA) % M2) / K4);
    for (size_t i = 0; i < t->nch; i++) {
      size_t p = base + first + i;
      t->page[i] = p;
      t->ver_start[i] = P->ver[p];
      t->present_start[i] = P->present[p];
      all &= P->present[p];
      bad |= P->present[p] && P->kind[p] == PG_BAD;
    }
  }
  if (t->flags & SR_READ_JOIN)
    for (size_t k = 0; k < P->ntxn && !joinable; k++) {
      ptxn_t* o = P->txn[k];
      joinable = o != t && o->state == T_PENDING && !o->dropped &&
                 o->space == t->space && o->gva == t->gva && o->len == t->len &&
                 o->flags == t->flags;
    }
  P->obs++; /* this read looks at the entries */
  t->obs_start = P->obs;
  memset(&req, 0, sizeof(req));
  req.cr3 = P->cr3[t->space];
  req.gva = t->gva;
  req.buf = t->buf;
  req.len = t->len;
  req.flags = t->flags;
  req.timeout_ns = req_timeout;
  before_joined = swapfx_stats(P->fx).joined;
  t->state = T_PENDING; /* a callback may only come later */
  rc = sr_swap_read(P->fx->swap, &req, P->fx->now, prop_cb, t, prop_dtor,
                    &t->handle, NULL);
  P->reads++;
  CHECK(t->ncb == 0 && t->ndtor == 0, "callback inside its own read");
  if (joinable && (rc == SR_PENDING || P->depth == 0)) {
    /* joins the identical live read without walking */
    if (rc != SR_PENDING)
      for (size_t k = 0; k < P->ntxn; k++) {
        ptxn_t* o = P->txn[k];
        if (o != t && o->state == T_PENDING && !o->dropped &&
            o->space == t->space && o->gva == t->gva && o->len == t->len &&
            o->flags == t->flags)
          printf(
              "joinable: txn %zu id %llx joined %d obs_start %llu "
              "deadline %llu now %llu ncb %d\n",
              k, (unsigned long long)o->handle.id, o->joined,
              (unsigned long long)o->obs_start, (unsigned long long)o->deadline,
              (unsigned long long)P->fx->now, o->ncb);
      }
    CHECK(rc == SR_PENDING, "joinable read %llx+%zu flags %u returned %d",
          (unsigned long long)t->gva, t->len, t->flags, rc);
  } else if (bad) {
    if (rc != SR_EHOLE) {
      sr_translation_t tr;
      sr_locate_t loc;
      int lrc;
      sr_translate(P->fx->image, P->cr3[t->space], t->gva, NULL, &tr);
      lrc = sr_image_locate(P->fx->image, tr.gpa, &loc);
      printf("locate %d run %llx; swap stats pending %llu\n", lrc,
             (unsigned long long)loc.run,
             (unsigned long long)swapfx_stats(P->fx).pending);
      FAIL(
          "read %llx+%zu (space %d) over a present hole: %d; translate %d "
          "level %d entry %llx gpa %llx pte_out %d",
          (unsigned long long)t->gva, t->len, t->space, rc, tr.status,
          tr.stop_level, (unsigned long long)tr.fail_entry,
          (unsigned long long)tr.gpa, P->pte_out[t->page[0]]);
    }
  } else if (all) {
    CHECK(rc == 0, "all present, read returned %d", rc);
  } else {
    CHECK(rc == SR_PENDING, "some missing, read returned %d", rc);
  }
  if (rc != SR_PENDING) {
    t->state = rc == 0 ? T_SYNC : T_REJECTED;
    if (rc == 0) {
      P->syncs++;
      for (size_t i = 0; i < t->nch; i++)
        CHECK(chunk_matches(P, t, i, t->buf, P->ver[t->page[i]],
                            P->ver[t->page[i]]),
              "sync read chunk %zu bytes differ", i);
    } else {
      P->rejects++;
    }
    free(t->buf);
    t->buf = NULL;
    return;
  }
  P->pendings++;
  t->joined = swapfx_stats(P->fx).joined != before_joined;
  if (t->joined) {
    /* it shares work done since the oldest identical live read started */
    for (size_t k = 0; k < P->ntxn; k++) {
      ptxn_t* o = P->txn[k];
      if (o == t || o->state != T_PENDING || o->space != t->space ||
          o->gva != t->gva || o->len != t->len || o->flags != t->flags)
        continue;
      if (o->obs_start < t->obs_start)
        t->obs_start = o->obs_start;
      for (size_t i = 0; i < t->nch; i++)
        if (o->ver_start[i] < t->ver_start[i])
          t->ver_start[i] = o->ver_start[i];
    }
  } else {
    for (size_t i = 0; i < t->nch; i++) {
      if (!t->present_start[i])
        continue;
      CHECK(chunk_matches(P, t, i, t->buf, t->ver_start[i], t->ver_start[i]),
            "pending read: present chunk %zu not copied", i);
    }
  }
}

static bool bulk_covers(const prop_t* P, const ptxn_t* t) {
  for (int k = 0; k < P->nctx; k++)
    if (P->ctx[k].kind == 2 ||
        (P->ctx[k].kind == 1 && P->ctx[k].space == t->space))
      return true;
  return false;
}

static void do_cancel(prop_t* P, ptxn_t* t, bool nested) {
  int rc;
  int ncb = t->ncb;
  bool was_pending = t->state == T_PENDING && !t->dropped;
  bool in_cb = t->in_cb;
  if (P->nctx == MAXCTX)
    return;
  P->ctx[P->nctx++] = (cctx_t){0, t->handle.id, t->space, SR_ECANCELED};
  rc = sr_swap_cancel(P->fx->swap, t->handle);
  P->nctx--;
  if (in_cb) {
    CHECK(rc == SR_EALREADY || rc == SR_ESTALE,
          "cancel inside its own callback: %d", rc);
  } else if (was_pending) {
    CHECK(rc == 0, "cancel of a pending read: %d", rc);
    if (rc == 0 && t->ncb == ncb) {
      /* no callback: only for a read being completed by the poll or the
       * bulk cancel whose callback called us */
      CHECK(nested && (P->in_poll || bulk_covers(P, t)),
            "cancel of %llx+%zu (flags %u, joined %d, id %llx) ran no "
            "callback outside a poll",
            (unsigned long long)t->gva, t->len, t->flags, t->joined,
            (unsigned long long)t->handle.id);
      t->dropped = true;
      P->drops++;
    }
  } else {
    CHECK(rc == SR_ESTALE, "cancel of an ended read: %d", rc);
  }
}

static void do_cancel_bulk(prop_t* P, bool all, int space, int status) {
  uint64_t drops0;
  int expect = 0;
  int rc;
  if (P->nctx == MAXCTX)
    return;
  for (size_t k = 0; k < P->ntxn; k++) {
    ptxn_t* t = P->txn[k];
    if (t->state == T_PENDING && !t->dropped && (all || t->space == space))
      expect++;
  }
  drops0 = P->drops;
  P->ctx[P->nctx++] = (cctx_t){all ? 2 : 1, 0, space, status};
  if (P->in_poll)
    P->bulk_in_poll |= all ? ~0u : 1u << space;
  rc = all ? sr_swap_cancel_all(P->fx->swap, status)
           : sr_swap_cancel_cr3(P->fx->swap, P->cr3[space], status);
  P->nctx--;
  if (!P->in_poll && P->nctx == 0)
    CHECK(rc <= expect && rc >= expect - (int)(P->drops - drops0),
          "bulk cancel ended %d, expected %d", rc, expect);
  else
    CHECK(rc >= 0, "bulk cancel from a callback: %d", rc);
}

/* From a callback: sometimes start a read, cancel another read, or (rarely)
 * cancel a whole CR3. */
static void maybe_nested(prop_t* P, ptxn_t* self) {
  uint64_t r = rnd(P, 100);
  if (P->quiet)
    return;
  if (r < 6) {
    P->nested++;
    do_read(P);
  } else if (r < 12) {
    ptxn_t* o = live_txn(P, self);
    P->nested++;
    if (o != NULL)
      do_cancel(P, o, true);
  } else if (r == 12) {
    P->nested++;
    do_cancel_bulk(P, false, (int)rnd(P, NSPACE), SR_EGONE);
  }
}

static void do_poll(prop_t* P, uint64_t advance) {
  uint64_t next = 0;
  int rc;
  uint64_t before = P->completions;
  P->fx->now += advance;
  P->obs++;
  P->in_poll++;
  P->bulk_in_poll = 0;
  rc = sr_swap_poll(P->fx->swap, P->fx->now, &next);
  P->in_poll--;
  CHECK(rc >= 0, "poll returned %d", rc);
  CHECK(P->completions >= before, "completions went back");
  /* nothing stays past its deadline */
  for (size_t k = 0; k < P->ntxn; k++) {
    ptxn_t* t = P->txn[k];
    if (t->state == T_PENDING && !t->dropped) {
      CHECK(t->deadline > P->fx->now, "read past its deadline still pending");
      CHECK(next <= t->deadline, "next deadline %llu after a read's %llu",
            (unsigned long long)next, (unsigned long long)t->deadline);
    }
  }
}

static void kit_ok(prop_t* P, int rc, const char* what) {
  CHECK(rc == 0, "kit %s: %d", what, rc);
}

static void out_entry(prop_t* P, uint64_t cr3, uint64_t va, int level) {
  sr_pte_info_t as;
  memset(&as, 0, sizeof(as));
  as.kind = rnd(P, 3) == 0 ? SR_PTE_NONE : SR_PTE_LINUX_SWAP;
  as.swap_type = (uint32_t)rnd(P, 4);
  as.swap_offset = 1 + rnd(P, 1u << 20);
  kit_ok(P, sr_kit_page_out(P->fx->kit, cr3, va, level, &as), "page_out");
}

/* New content for a page that is not present. */
static void refill(prop_t* P, size_t p) {
  if (P->kind[p] != PG_GOOD)
    return;
  P->ver[p]++;
  kit_ok(P,
         sr_kit_fill(P->fx->kit, P->cr3[page_space(p)], page_va(p), K4,
                     page_seed(P, p, P->ver[p])),
         "fill");
}

static void do_pte(prop_t* P, bool out) {
  for (int tries = 0; tries < 8; tries++) {
    size_t p = (size_t)rnd(P, NPAGE);
    int s = page_space(p), r = page_reg(p);
    if (P->is2m[s][r] || P->kind[p] == PG_UNMAPPED || P->pte_out[p] == out)
      continue;
    if (out) {
      out_entry(P, P->cr3[s], page_va(p), 1);
    } else {
      if (rnd(P, 2))
        refill(P, p);
      kit_ok(P, sr_kit_page_in(P->fx->kit, P->cr3[s], page_va(p), 1),
             "page_in");
    }
    P->pte_out[p] = out;
    refresh(P, p, p + 1);
    return;
  }
}

static void do_pde(prop_t* P, bool out) {
  int s = (int)rnd(P, NSPACE), r = (int)rnd(P, NREG);
  size_t lo = ((size_t)s * NREG + (size_t)r) * WIN;
  uint64_t va = SWAPFX_VA + (uint64_t)r * M2;
  if (P->pde_out[s][r] == out)
    return;
  if (out) {
    out_entry(P, P->cr3[s], va, 2);
  } else {
    if (rnd(P, 3) == 0)
      for (size_t p = lo; p < lo + WIN; p++)
        refill(P, p);
    kit_ok(P, sr_kit_page_in(P->fx->kit, P->cr3[s], va, 2), "page_in pde");
  }
  P->pde_out[s][r] = out;
  refresh(P, lo, lo + WIN);
}

/* Builds the random holey image and the engine. */
static int build(prop_t* P) {
  swapfx_t* fx = P->fx;
  sr_swap_opts_t opts;
  uint64_t hole[NHOLE];
  static const uint32_t budgets[] = {0, 1, 4, 32};

  P->cr3[0] = fx->cr3;
  for (int s = 1; s < NSPACE; s++)
    if (sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &P->cr3[s]) != 0)
      return -1;
  for (int h = 0; h < NHOLE; h++)
    if (sr_kit_alloc(fx->kit, K4, K4, &hole[h]) != 0)
      return -1;
  for (int s = 0; s < NSPACE; s++) {
    for (int r = 0; r < NREG; r++) {
      uint64_t va = SWAPFX_VA + (uint64_t)r * M2;
      size_t lo = ((size_t)s * NREG + (size_t)r) * WIN;
      P->is2m[s][r] = r != 0 && rnd(P, 4) == 0;
      if (P->is2m[s][r]) {
        if (sr_kit_map(fx->kit, P->cr3[s], va, M2, M2, RWU) != 0)
          return -1;
        for (size_t p = lo; p < lo + WIN; p++)
          P->kind[p] = PG_GOOD;
      } else {
        for (size_t i = 0; i < WIN; i++) {
          size_t p = lo + i;
          uint64_t k = i == 0 ? 0 : rnd(P, 20);
          int rc;
          P->kind[p] = k == 0 ? PG_UNMAPPED : k == 1 ? PG_BAD : PG_GOOD;
          if (i == 0)
            P->kind[p] = PG_GOOD;
          if (P->kind[p] == PG_UNMAPPED)
            continue;
          if (P->kind[p] == PG_BAD)
            rc = sr_kit_map_gpa(fx->kit, P->cr3[s], va + i * K4, K4,
                                hole[rnd(P, NHOLE)], K4, RWU);
          else
            rc = sr_kit_map(fx->kit, P->cr3[s], va + i * K4, K4, K4, RWU);
          if (rc != 0)
            return -1;
        }
      }
      for (size_t p = lo; p < lo + WIN; p++)
        if (P->kind[p] == PG_GOOD && sr_kit_fill(fx->kit, P->cr3[s], page_va(p),
                                                 K4, page_seed(P, p, 0)) != 0)
          return -1;
    }
  }
  for (int h = 0; h < NHOLE; h++)
    if (sr_kit_punch_hole(fx->kit, hole[h], K4) != 0)
      return -1;
  memset(&opts, 0, sizeof(opts));
  opts.poll_budget = budgets[rnd(P, 4)];
  opts.default_timeout_ns = rnd(P, 2) ? 0 : 2000;
  if (swapfx_reopen(fx, &opts) != 0)
    return -1;
  P->obs = 1;
  for (size_t p = 0; p < NPAGE; p++) {
    P->present[p] = false;
    P->pres_last[p] = 0;
  }
  refresh(P, 0, NPAGE);
  return 0;
}

static int setup(void** state) {
  prop_t* P = calloc(1, sizeof(*P));
  if (P == NULL)
    return -1;
  if (swapfx_new(&P->fx, 0, NULL) != 0) {
    free(P);
    return -1;
  }
  *state = P;
  return 0;
}

static int teardown(void** state) {
  prop_t* P = *state;
  /* the engine first: its callbacks may still touch the records */
  swapfx_close_engine(P->fx);
  for (size_t k = 0; k < P->ntxn; k++) {
    free(P->txn[k]->buf);
    free(P->txn[k]);
  }
  free(P->txn);
  swapfx_free(P->fx);
  free(P);
  return 0;
}

static void test_property_random_reads_and_events(void** state) {
  prop_t* P = *state;
  sr_swap_stats_t st;
  size_t stuck = 0;
  int polls;

  P->seed = swapfx_seed();
  P->rng = P->seed;
  printf(
      "[ PROPERTY ] every accepted pending read ends exactly once with "
      "bytes the kit held while present; seed=%llu (SR_SEED=<n> to "
      "rerun)\n",
      (unsigned long long)P->seed);
  assert_int_equal(build(P), 0);
  printf("[ PROPERTY ] budget=%u default_timeout=%llu\n",
         P->fx->opts.poll_budget,
         (unsigned long long)P->fx->opts.default_timeout_ns);

  for (int step = 0; step < STEPS && P->nfail == 0; step++) {
    uint64_t r = rnd(P, 1000);
    if (r < 330) {
      do_read(P);
    } else if (r < 530) {
      do_poll(P, rnd(P, 4) == 0 ? 0 : rnd(P, 300));
    } else if (r < 680) {
      do_pte(P, true);
    } else if (r < 830) {
      do_pte(P, false);
    } else if (r < 870) {
      do_pde(P, true);
    } else if (r < 920) {
      do_pde(P, false);
    } else if (r < 990) {
      ptxn_t* t = P->ntxn ? P->txn[rnd(P, P->ntxn)] : NULL;
      if (t != NULL && t->state != T_SYNC && t->state != T_REJECTED)
        do_cancel(P, t, false);
    } else if (r < 998) {
      do_cancel_bulk(P, false, (int)rnd(P, NSPACE),
                     rnd(P, 2) ? SR_EGONE : SR_ECANCELED);
    } else {
      do_cancel_bulk(P, true, 0, rnd(P, 2) ? SR_EIMAGEGONE : SR_ECANCELED);
    }
  }
  if (P->nfail != 0)
    fail_msg("%s", P->msg);

  /* everything comes back: only reads of never-mapped pages may remain */
  P->quiet = true;
  for (size_t p = 0; p < NPAGE; p++) {
    int s = page_space(p), r = page_reg(p);
    if (P->pte_out[p]) {
      kit_ok(P, sr_kit_page_in(P->fx->kit, P->cr3[s], page_va(p), 1),
             "final page_in");
      P->pte_out[p] = false;
    }
    if (p % WIN == 0 && P->pde_out[s][r]) {
      kit_ok(P,
             sr_kit_page_in(P->fx->kit, P->cr3[s], SWAPFX_VA + (uint64_t)r * M2,
                            2),
             "final page_in pde");
      P->pde_out[s][r] = false;
    }
  }
  refresh(P, 0, NPAGE);
  st = swapfx_stats(P->fx);
  polls = (int)(P->fx->opts.poll_budget == 0
                    ? 8
                    : 4 * (st.watched_entries / P->fx->opts.poll_budget) + 8);
  for (int i = 0; i < polls && P->nfail == 0; i++)
    do_poll(P, 1);
  for (size_t k = 0; k < P->ntxn; k++) {
    ptxn_t* t = P->txn[k];
    bool unmapped = false;
    if (t->state != T_PENDING || t->dropped)
      continue;
    stuck++;
    for (size_t i = 0; i < t->nch; i++)
      unmapped |= P->kind[t->page[i]] == PG_UNMAPPED;
    CHECK(unmapped, "read %llx+%zu never completed with its pages in",
          (unsigned long long)t->gva, t->len);
  }
  if (P->nfail != 0)
    fail_msg("%s", P->msg);
  do_cancel_bulk(P, true, 0, SR_ECANCELED);
  if (P->nfail != 0)
    fail_msg("%s", P->msg);

  /* exactly once, for every read */
  for (size_t k = 0; k < P->ntxn; k++) {
    ptxn_t* t = P->txn[k];
    if (t->state == T_SYNC || t->state == T_REJECTED) {
      CHECK(t->ncb == 0 && t->ndtor == 0,
            "callback for a read that did not "
            "pend");
    } else {
      CHECK(t->state == T_ENDED,
            "read %llx+%zu (flags %u, joined %d, ncb %d, ndtor %d, id %llx) "
            "still pending after sr_swap_cancel_all",
            (unsigned long long)t->gva, t->len, t->flags, t->joined, t->ncb,
            t->ndtor, (unsigned long long)t->handle.id);
      CHECK(t->ndtor == 1, "dtor ran %d times", t->ndtor);
      CHECK(t->ncb == (t->dropped ? 0 : 1),
            "callback ran %d times (dropped "
            "%d)",
            t->ncb, t->dropped);
    }
  }
  st = swapfx_stats(P->fx);
  CHECK(st.pending == 0 && st.pending_chunks == 0 && st.watched_entries == 0,
        "engine not empty at the end");
  printf(
      "[ PROPERTY ] reads=%llu (nested %llu) sync=%llu pending=%llu "
      "rejected=%llu completions=%llu stuck-on-unmapped=%zu joined=%llu\n",
      (unsigned long long)P->reads, (unsigned long long)P->nested,
      (unsigned long long)P->syncs, (unsigned long long)P->pendings,
      (unsigned long long)P->rejects, (unsigned long long)P->completions, stuck,
      (unsigned long long)st.joined);
  if (P->nfail != 0)
    fail_msg("%s", P->msg);
  assert_true(P->pendings > 100);
  assert_true(P->syncs > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_property_random_reads_and_events,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
