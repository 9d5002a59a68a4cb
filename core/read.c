/* Synchronous reads of guest virtual memory: sr_read_virt (one range) and
 * sr_read_batch (many small pieces, their walks overlapped).
 *
 * Three paths, tried in this order, each handing what it is unsure of to
 * the next, so the results are those of the reference path:
 * - the lean path of sr_read_virt, for a read inside one leaf page (4K,
 *   2M or 1G; the common small read): a straight-line walk (one copy of
 *   the code per paging mode) that decodes present table and leaf entries
 *   inline, accumulates W/U/NX from the entries, looks every entry and the
 *   data up in the image's flat extents (the two largest segments, bounds
 *   kept by the image and lowered with its usable size after a fault: one
 *   compare per load), copies len bytes (no call for up to 16), then
 *   re-reads every entry of the walk; out, when not NULL, is filled only
 *   on success. About 150 instructions, plus about 80 for the call, the
 *   fault scope and its sigsetjmp: the fewer, the more of the next call's
 *   independent loads the CPU starts before this call's misses return;
 * - the fast paths, under one fault scope, GPAs resolved through the flat
 *   extents or a cached extent of the image instead of a segment search
 *   per load: sr_read_virt walks the upper levels once per leaf table and
 *   then reads the leaf entry of every page; leaves that map physically
 *   contiguous frames form a run (at most one leaf table) copied with one
 *   memcpy, after which every upper entry is re-read once and every leaf
 *   entry of the run again, and only the prefix whose entries did not
 *   change is accepted. sr_read_batch takes GROUP items at a time, level
 *   by level: each pass loads the entries the pass before prefetched and
 *   prefetches the next level's entries (or the data) of all the items,
 *   so the cache misses of GROUP walks overlap; a pass handles inline only
 *   a present table entry or 4K leaf inside the first flat extent and
 *   leaves anything else to a second pass (full decoding), so it makes no
 *   call; then it copies and re-reads each leaf entry after its copy;
 * - the reference path: sr_translate + sr_image_read + sr_translate again
 *   per 4 KiB page (the page counts if the second walk finds the same
 *   leaf); it handles every unusual case (non-present or bad entries,
 *   holes, tables straddling a segment end, a fault because the file
 *   shrank) and fills the results.
 * None allocates or makes system calls (but the fstat after a caught
 * fault). Limits: a change of an entry between the copy and the re-read
 * that is undone before the re-read (ABA) is not seen, as in the swap
 * engine; the batch re-reads only the leaf entry.
 */
#include <assert.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "fault.h"
#include "image_internal.h"
#include "pgtable.h"
#include "swapread/read.h"
#include "walk.h"

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define PREFETCH(p) __builtin_prefetch((const void*)(p))
#else
#define NOINLINE
#define ALWAYS_INLINE inline
#define PREFETCH(p) ((void)(p))
#endif

#define PAGE SR_PAGE_4K
#define ATTEMPTS 3 /* copy + re-walk tries per page (reference path) */
#ifndef SR__BATCH_GROUP
#define SR__BATCH_GROUP 32
#endif
#define GROUP SR__BATCH_GROUP /* batch items whose walks overlap */
_Static_assert(GROUP >= 1 && GROUP <= 256, "a group's state is on the stack");
#define MAX_ITEM PAGE /* largest batch item */

/* A piece of the image: GPAs [lo, hi) live at p + (gpa - lo). */
typedef struct ext_s {
  uint64_t lo, hi;
  const unsigned char* p;
} ext_t;

/* The host address of [gpa, gpa + len), or NULL if those bytes are not all
 * mapped in one extent; refreshes *x from sr__image_locate on a miss. */
static inline const unsigned char* ext_ptr(const sr_image_t* image, ext_t* x,
                                           uint64_t gpa, uint64_t len) {
  const unsigned char* p;
  uint64_t run;

  if (gpa - x->lo >= x->hi - x->lo || x->hi - gpa < len) {
    if (sr__image_locate(image, gpa, &p, &run) != 0 || run < len)
      return NULL;
    x->lo = gpa;
    x->hi = gpa + run;
    x->p = p;
  }
  return x->p + (gpa - x->lo);
}

static inline uint64_t load_entry(const unsigned char* p) {
  return *(const volatile uint64_t*)(const void*)p;
}

/* Compiler barrier: the re-reads of the entries stay after the copy (x86
 * does not reorder loads with loads). */
static inline void barrier(void) {
  atomic_signal_fence(memory_order_seq_cst);
}

/* sr__entry_decode, with the common present TABLE / 4K LEAF inline. */
static inline sr__entry_class_t decode(const sr__walk_cfg_t* cfg, uint64_t e,
                                       int level, uint64_t* addr, bool* res) {
  if ((e & SR__P) != 0 && (e & cfg->rsvd_mask) == 0 &&
      (level == 1 || (e & SR__PS) == 0)) {
    *addr = e & cfg->phys_mask;
    *res = false;
    return level == 1 ? SR__ENTRY_LEAF : SR__ENTRY_TABLE;
  }
  return sr__entry_decode(cfg, e, level, addr, NULL, res);
}

static bool same_leaf(const sr_translation_t* a, const sr_translation_t* b) {
  return a->status == 0 && b->status == 0 && a->gpa == b->gpa &&
         a->stop_level == b->stop_level &&
         a->entry[a->stop_level - 1] == b->entry[b->stop_level - 1];
}

/* The reference path for [va, va + n) inside one 4 KiB page: translate,
 * copy, translate again, up to ATTEMPTS times. 0 with *tr the accepted
 * walk; else the walk error (in tr->status), SR_EHOLE/SR_EBEYOND of the
 * data or SR_EBUSY, with *tr the last walk. */
static int page_ref(const sr_image_t* image, uint64_t cr3,
                    const sr_walk_opts_t* opts, uint64_t va, void* buf,
                    size_t n, sr_translation_t* tr) {
  sr_translation_t b;
  unsigned attempts;
  int rc;

  rc = sr_translate(image, cr3, va, opts, tr);
  for (attempts = 0; attempts < ATTEMPTS; attempts++) {
    if (rc != 0)
      return rc;
    rc = sr_image_read(image, tr->gpa, buf, n, NULL);
    if (rc != 0)
      return rc;
    rc = sr_translate(image, cr3, va, opts, &b);
    if (same_leaf(tr, &b))
      return 0;
    *tr = b;
  }
  return rc != 0 ? rc : SR_EBUSY;
}

/* --- sr_read_virt ----------------------------------------------------- */

typedef struct vctx_s {
  const sr_image_t* image;
  const sr__walk_cfg_t* cfg;
  uint64_t root;
  uint64_t gva;
  unsigned char* buf;
  size_t len;
  /* accumulated over what was accepted */
  uint32_t prot;
  bool resident;
  uint64_t gpa0;
} vctx_t;

/* The path down to the table that holds the leaf of some VA. */
typedef struct vpath_s {
  int leaf_level;              /* level of the leaf table */
  const unsigned char* tbl;    /* host address of the leaf table */
  uint64_t va_lo, va_hi;       /* VAs it covers: [va_lo, va_hi] */
  const unsigned char* ptr[5]; /* upper entries (levels > leaf_level) */
  uint64_t val[5];
  uint32_t prot; /* accumulated over the upper entries */
  bool resident;
} vpath_t;

/* Walks the upper levels for va down to the table of its leaf. false if
 * anything is unusual (then the reference path takes the page). */
static bool vpath_find(const vctx_t* c, ext_t* x, uint64_t va, vpath_t* w) {
  const sr__walk_cfg_t* cfg = c->cfg;
  uint64_t table = c->root, e, addr;
  const unsigned char* t;
  bool res;
  int level;

  /* The indices below drop the VA's top bits: a non-canonical VA must take
   * the reference path, where sr_translate stops it with SR_ENONCANON. */
  if (!sr__gva_canonical(va, cfg->top_level))
    return false;
  w->prot = SR_PROT_W | SR_PROT_U;
  w->resident = false;
  for (level = cfg->top_level;; level--) {
    t = ext_ptr(c->image, x, table, PAGE);
    if (t == NULL)
      return false;
    w->ptr[level - 1] = t + SR__INDEX(va, level) * 8;
    e = load_entry(w->ptr[level - 1]);
    w->val[level - 1] = e;
    switch (decode(cfg, e, level, &addr, &res)) {
      case SR__ENTRY_TABLE:
        w->prot = sr__prot_accumulate(w->prot, sr__entry_prot(e));
        w->resident = w->resident || res;
        table = addr;
        continue;
      case SR__ENTRY_LEAF:
        /* The leaf is in this table: it becomes the leaf table. */
        w->leaf_level = level;
        w->tbl = t;
        w->va_lo = va & ~((UINT64_C(1) << SR__SHIFT(level + 1)) - 1);
        w->va_hi = w->va_lo + ((UINT64_C(1) << SR__SHIFT(level + 1)) - 1);
        return true;
      default:
        return false;
    }
  }
}

/* Copies what the fast path can from *done on, advancing *done past each
 * accepted run; returns when done or at the first page it leaves to the
 * reference path. Runs inside the caller's fault scope (not inlined, see
 * core/fault.h). */
static NOINLINE void virt_fast(vctx_t* c, volatile size_t* done) {
  const sr__walk_cfg_t* cfg = c->cfg;
  uint64_t leafval[SR__ENTRIES];
  ext_t x = {0, 0, NULL}, dx = {0, 0, NULL};
  vpath_t w;
  bool have = false;
  size_t d = *done;

  memset(&w, 0, sizeof(w));

  while (d < c->len) {
    uint64_t va = c->gva + d, size, off, gpa, addr, e, run, b;
    const unsigned char* p;
    unsigned idx, k, nleaf;
    uint32_t prot;
    bool res, resident;
    int level;

    if (!have || va < w.va_lo || va > w.va_hi) {
      have = vpath_find(c, &x, va, &w);
      if (!have)
        return;
    }
    level = w.leaf_level;
    size = UINT64_C(1) << SR__SHIFT(level);
    idx = (unsigned)SR__INDEX(va, level);
    e = load_entry(w.tbl + (size_t)idx * 8);
    if (decode(cfg, e, level, &addr, &res) != SR__ENTRY_LEAF)
      return;
    off = va & (size - 1);
    gpa = addr | off;
    run = size - off;
    if (run > c->len - d)
      run = c->len - d;
    leafval[0] = e;
    nleaf = 1;
    prot = sr__prot_accumulate(w.prot, sr__entry_prot(e));
    resident = w.resident || res;
    /* extend over the following leaves of the table while contiguous */
    while (d + run < c->len && idx + nleaf < SR__ENTRIES) {
      e = load_entry(w.tbl + (size_t)(idx + nleaf) * 8);
      if (decode(cfg, e, level, &addr, &res) != SR__ENTRY_LEAF ||
          addr != gpa + run)
        break;
      b = c->len - d - run;
      run += b < size ? b : size;
      leafval[nleaf++] = e;
      prot = sr__prot_accumulate(prot, sr__entry_prot(e));
      resident = resident || res;
    }
    p = ext_ptr(c->image, &dx, gpa, run);
    if (p == NULL) {
      /* not all in one extent: copy the first leaf alone, if it is */
      run = size - off < c->len - d ? size - off : c->len - d;
      nleaf = 1;
      prot = sr__prot_accumulate(w.prot, sr__entry_prot(leafval[0]));
      p = ext_ptr(c->image, &dx, gpa, run);
      if (p == NULL)
        return;
    }
    memcpy(c->buf + d, p, (size_t)run);
    barrier();
    /* revalidate: the upper entries once, every leaf entry of the run */
    for (level = cfg->top_level; level > w.leaf_level; level--)
      if (load_entry(w.ptr[level - 1]) != w.val[level - 1])
        return;
    for (k = 0; k < nleaf; k++)
      if (load_entry(w.tbl + (size_t)(idx + k) * 8) != leafval[k])
        break;
    if (k < nleaf) {
      /* accept the leaves before the one that changed */
      if (k == 0)
        return;
      run = size - off + (uint64_t)(k - 1) * size;
      prot = w.prot;
      for (nleaf = 0; nleaf < k; nleaf++)
        prot = sr__prot_accumulate(prot, sr__entry_prot(leafval[nleaf]));
    }
    if (d == 0)
      c->gpa0 = gpa;
    c->prot = sr__prot_accumulate(c->prot, prot);
    c->resident = c->resident || resident;
    d += (size_t)run;
    *done = d;
    if (k < nleaf)
      return;
  }
}

/* virt_fast under a fault scope of its own frame (nothing in the caller's
 * frame changes between the sigsetjmp and a fault). */
static void virt_scoped(vctx_t* c, volatile size_t* done) {
  sr__fault_scope_t scope;

  if (SR__FAULT_CATCH(&scope)) {
    /* The file shrank: the reference path sees the lowered size. */
    sr__image_note_fault(c->image);
    return;
  }
  sr__fault_enter(&scope);
  virt_fast(c, done);
  sr__fault_leave(&scope);
}

/* sr_read_virt on the fast path and the reference path (see the top of
 * the file). Not inlined: sr_read_virt stays small for the lean path. */
static NOINLINE int read_virt(const sr_image_t* image, uint64_t cr3,
                              const sr_walk_opts_t* opts, uint64_t gva,
                              void* buf, size_t len, sr_vread_t* out) {
  sr_vread_t local;
  sr__walk_cfg_t cfg;
  volatile size_t done = 0;
  vctx_t c;
  size_t d, n;
  int rc;

  if (out == NULL)
    out = &local;
  memset(out, 0, sizeof(*out));
  out->stop.status = SR_EINVAL;
  if (image == NULL || buf == NULL || len == 0 ||
      (uint64_t)len - 1 > UINT64_MAX - gva ||
      sr__walk_config(opts, &cfg) != 0 ||
      ((cr3 & SR__CR3_MASK) & ~cfg.phys_mask) != 0)
    return SR_EINVAL;
  out->stop.status = 0;

  c.image = image;
  c.cfg = &cfg;
  c.root = cr3 & SR__CR3_MASK;
  c.gva = gva;
  c.buf = buf;
  c.len = len;
  c.prot = SR_PROT_W | SR_PROT_U;
  c.resident = false;
  c.gpa0 = 0;

  for (;;) {
    virt_scoped(&c, &done);
    d = done;
    if (d == len)
      break;
    /* the reference path for one page */
    n = PAGE - ((gva + d) & (PAGE - 1));
    if (n > len - d)
      n = len - d;
    rc = page_ref(image, cr3, opts, gva + d, c.buf + d, n, &out->stop);
    if (rc != 0) {
      out->done = d;
      out->gpa = d > 0 ? c.gpa0 : 0;
      out->prot = d > 0 ? c.prot : 0;
      out->resident = c.resident;
      return rc;
    }
    if (d == 0)
      c.gpa0 = out->stop.gpa;
    c.prot = sr__prot_accumulate(c.prot, out->stop.prot);
    c.resident = c.resident || out->stop.resident;
    done = d + n;
  }
  memset(&out->stop, 0, sizeof(out->stop));
  out->done = len;
  out->gpa = c.gpa0;
  out->prot = c.prot;
  out->resident = c.resident;
  return 0;
}

/* --- sr_read_virt, the lean path ------------------------------------- */

_Static_assert(SR_PROT_W == SR__RW >> 1 && SR_PROT_U == SR__US >> 1,
               "lean() takes W/U from the entry bits shifted right once");
_Static_assert(SR_PROT_NX == SR__NX >> 61, "and NX from bit 63");
_Static_assert(SR__NFLAT == 2, "flat_entry and flat_data look at two");

/* *p: the host address of the 8-aligned entry at gpa, if the first flat
 * extent (f0, len0 read at the start of the read) or the second one (read
 * now) holds it. */
static ALWAYS_INLINE bool flat_entry(const sr__flat_t* f, uint64_t len0,
                                     uint64_t gpa, const unsigned char** p) {
  uint64_t a = gpa - f[0].gpa, n;

  if (a < len0) {
    *p = f[0].p + a;
    return true;
  }
  a = gpa - f[1].gpa;
  n = __atomic_load_n(&f[1].len, __ATOMIC_RELAXED);
  if (a < n) {
    *p = f[1].p + a;
    return true;
  }
  return false;
}

/* *p: the host address of [gpa, gpa + len) (len > 0), if one flat extent
 * holds all of it (the first one's length read as len0). */
static ALWAYS_INLINE bool flat_data(const sr__flat_t* f, uint64_t len0,
                                    uint64_t gpa, uint64_t len,
                                    const unsigned char** p) {
  uint64_t a = gpa - f[0].gpa, n;

  if (a < len0 && len0 - a >= len) {
    *p = f[0].p + a;
    return true;
  }
  a = gpa - f[1].gpa;
  n = __atomic_load_n(&f[1].len, __ATOMIC_RELAXED);
  if (a < n && n - a >= len) {
    *p = f[1].p + a;
    return true;
  }
  return false;
}

/* memcpy(dst, src, len), without a call for len <= 16 (two overlapping
 * moves): a call would make the lean path keep its walk in callee-saved
 * registers. */
static ALWAYS_INLINE void copy_small(void* dst, const unsigned char* src,
                                     size_t len) {
  unsigned char* d = dst;
  uint64_t a, b;
  uint32_t c, e;

  if (__builtin_expect(len >= 8 && len <= 16, 1)) {
    memcpy(&a, src, 8);
    memcpy(&b, src + len - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + len - 8, &b, 8);
  } else if (len >= 4 && len < 8) {
    memcpy(&c, src, 4);
    memcpy(&e, src + len - 4, 4);
    memcpy(d, &c, 4);
    memcpy(d + len - 4, &e, 4);
  } else if (len < 4) {
    d[0] = src[0];
    d[len / 2] = src[len / 2];
    d[len - 1] = src[len - 1];
  } else {
    memcpy(d, src, len);
  }
}

/* One level of the lean walk: the entry for gva in the table at *t.
 * Returns 0 for a present table entry (*t: the next table), 1 for a
 * present leaf of a level that allows one (large: its reserved bits, 0 if
 * the level has no leaves), -1 for anything else; *p and *e: where the
 * entry is and what it read. */
static ALWAYS_INLINE int lean_level(const sr__flat_t* f, uint64_t len0,
                                    uint64_t* t, uint64_t gva, int level,
                                    uint64_t mask, uint64_t large,
                                    const unsigned char** p, uint64_t* e) {
  if (!flat_entry(f, len0, *t + SR__INDEX(gva, level) * 8, p))
    return -1;
  *e = load_entry(*p);
  if ((*e & mask) == SR__P) {
    *t = *e & SR__ADDR_MASK;
    return 0;
  }
  if (large != 0 && (*e & (mask | large)) == (SR__P | SR__PS))
    return 1;
  return -1;
}

/* The lean path for a walk from level `top` (a constant: each paging mode
 * gets its own straight-line copy): see lean(). */
static ALWAYS_INLINE int lean_walk(const sr__flat_t* f, uint64_t t,
                                   uint64_t rsvd, uint64_t gva, void* buf,
                                   size_t len, sr_vread_t* out, const int top) {
  const unsigned char *p5 = NULL, *p4, *p3, *p2, *p1, *p;
  uint64_t e5 = 0, e4, e3, e2, e1, gpa, size, len0, all, any;
  /* a table entry: present, neither PS nor reserved bits */
  const uint64_t mask = SR__P | SR__PS | rsvd;
  int rc;

  len0 = __atomic_load_n(&f[0].len, __ATOMIC_RELAXED);
  if (top == 5 && lean_level(f, len0, &t, gva, 5, mask, 0, &p5, &e5) != 0)
    return 1;
  if (lean_level(f, len0, &t, gva, 4, mask, 0, &p4, &e4) != 0)
    return 1;
  rc = lean_level(f, len0, &t, gva, 3, mask, SR__RSVD_1G, &p3, &e3);
  if (rc != 0) {
    if (rc < 0)
      return 1;
    size = SR_PAGE_1G; /* a 1G leaf: it stands for the lower levels */
    p2 = p1 = p3;
    e2 = e1 = e3;
    goto leaf;
  }
  rc = lean_level(f, len0, &t, gva, 2, mask, SR__RSVD_2M, &p2, &e2);
  if (rc != 0) {
    if (rc < 0)
      return 1;
    size = SR_PAGE_2M;
    p1 = p2;
    e1 = e2;
    goto leaf;
  }
  /* a 4K leaf: bit 7 is PAT, not PS */
  if (!flat_entry(f, len0, t + SR__INDEX(gva, 1) * 8, &p1))
    return 1;
  e1 = load_entry(p1);
  if ((e1 & (SR__P | rsvd)) != SR__P)
    return 1;
  size = PAGE;

leaf:
  /* inside the leaf page (and len > 0) */
  if ((uint64_t)len - 1 >= size - (gva & (size - 1)))
    return 1;
  /* reserved bits are clear: the address field is the frame */
  gpa = (e1 & SR__ADDR_MASK & ~(size - 1)) | (gva & (size - 1));
  if (!flat_data(f, len0, gpa, len, &p))
    return 1;
  copy_small(buf, p, len);
  barrier();
  /* revalidate: every entry of the walk reads the same after the copy */
  if (((load_entry(p4) ^ e4) | (load_entry(p3) ^ e3) | (load_entry(p2) ^ e2) |
       (load_entry(p1) ^ e1)) != 0)
    return 1;
  if (top == 5 && load_entry(p5) != e5)
    return 1;
  if (out != NULL) {
    all = e4 & e3 & e2 & e1 & (top == 5 ? e5 : ~UINT64_C(0));
    any = e4 | e3 | e2 | e1 | e5;
    memset(out, 0, sizeof(*out));
    out->done = len;
    out->gpa = gpa;
    out->prot = (uint32_t)(((all >> 1) & (SR_PROT_W | SR_PROT_U)) |
                           ((any >> 61) & SR_PROT_NX));
  }
  return 0;
}

/* sr_read_virt when nothing is unusual: [gva, gva + len) lies inside one
 * leaf page, every entry of the walk is a present table or leaf without
 * reserved bits, and every entry and the data lie in one of the image's
 * flat extents. Walks straight down, copies, re-reads every entry of the
 * walk, and on success fills *out (if not NULL) as read_virt would.
 * 0 if so; 1 for anything else (nothing of *out written, the bytes of buf
 * unspecified): read_virt decides then. Runs inside the caller's fault
 * scope (not inlined, see core/fault.h). */
static NOINLINE int lean(const sr_image_t* image, uint64_t cr3,
                         const sr_walk_opts_t* opts, uint64_t gva, void* buf,
                         size_t len, sr_vread_t* out) {
  sr__walk_cfg_t cfg;
  uint64_t root = cr3 & SR__CR3_MASK;

  if (sr__walk_config(opts, &cfg) != 0 ||
      !sr__gva_canonical(gva, cfg.top_level) || (root & cfg.rsvd_mask) != 0)
    return 1;
  if (cfg.top_level == 5)
    return lean_walk(image->flat, root, cfg.rsvd_mask, gva, buf, len, out, 5);
  return lean_walk(image->flat, root, cfg.rsvd_mask, gva, buf, len, out, 4);
}

/* The lean path under a fault scope of sr_read_virt's own frame, then, if
 * it is unsure (or faulted: the file shrank), read_virt. */
int sr_read_virt(const sr_image_t* image, uint64_t cr3,
                 const sr_walk_opts_t* opts, uint64_t gva, void* buf,
                 size_t len, sr_vread_t* out) {
  sr__fault_scope_t scope;
  int rc;

  if (image != NULL && buf != NULL) {
    if (SR__FAULT_CATCH(&scope)) {
      /* read_virt sees the lowered size */
      sr__image_note_fault(image);
    } else {
      sr__fault_enter(&scope);
      rc = lean(image, cr3, opts, gva, buf, len, out);
      sr__fault_leave(&scope);
      if (rc == 0)
        return 0;
    }
  }
  return read_virt(image, cr3, opts, gva, buf, len, out);
}

/* --- sr_read_batch ---------------------------------------------------- */

/* The reference path for one item (which may cross one page boundary). */
static void item_ref(const sr_image_t* image, uint64_t cr3,
                     const sr_walk_opts_t* opts, sr_batch_item_t* it) {
  sr_translation_t tr;
  uint64_t va = it->gva;
  size_t off = 0, n;
  int rc;

  it->status = 0;
  it->walked = false;
  it->level = 0;
  it->entry = it->entry_gpa = it->gpa = 0;
  if (it->buf == NULL || it->len == 0 || it->len > MAX_ITEM ||
      (uint64_t)it->len - 1 > UINT64_MAX - va) {
    it->status = SR_EINVAL;
    return;
  }
  while (off < it->len) {
    n = PAGE - ((va + off) & (PAGE - 1));
    if (n > it->len - off)
      n = it->len - off;
    rc = page_ref(image, cr3, opts, va + off, (char*)it->buf + off, n, &tr);
    if (off == 0 || rc != 0) {
      it->walked = tr.status == 0;
      it->level = tr.stop_level;
      if (tr.status == 0) {
        it->entry = tr.entry[tr.stop_level - 1];
        it->entry_gpa = tr.entry_gpa[tr.stop_level - 1];
        it->gpa = tr.gpa;
      } else {
        it->entry = tr.fail_entry;
        it->entry_gpa = tr.fail_entry_gpa;
        it->gpa = 0;
      }
    }
    if (rc != 0) {
      it->status = rc;
      return;
    }
    off += n;
  }
}

typedef struct bctx_s {
  const sr_image_t* image;
  const sr__walk_cfg_t* cfg;
  uint64_t cr3;
  const sr_walk_opts_t* opts;
  uint64_t root;
  sr_batch_item_t* items;
  size_t n;
  int ok;
} bctx_t;

/* The fast path's state of one item of a group. */
typedef struct bstate_s {
  const unsigned char* ptr; /* the entry to load next; at the end, the leaf */
  uint64_t eg;              /* GPA of *ptr */
  const unsigned char* data;
  uint64_t leaf, gpa; /* leaf: also an entry left to bstep_general */
  int level; /* WALK, the leaf level, SLOW, or GENERAL (leaf: the entry) */
} bstate_t;

enum { WALK = 0, SLOW = -1, GENERAL = -2 };

/* Item s's entry e (in s->leaf) at `level` is not a present table entry
 * or 4K leaf inside the first flat extent: decoded in full, the next table
 * or the data looked up in the flat extents or else through *x. Sets
 * s->level to WALK, the leaf level, or SLOW (not present, bad, a hole,
 * ...: the reference path). Not inlined: the passes stay free of calls. */
static NOINLINE void bstep_general(const bctx_t* c, ext_t* x, bstate_t* s,
                                   const sr_batch_item_t* it, int level) {
  const sr__flat_t* f = c->image->flat;
  const uint64_t len0 = __atomic_load_n(&f[0].len, __ATOMIC_RELAXED);
  const uint64_t e = s->leaf;
  const unsigned char* p;
  uint64_t addr, a;
  bool res;

  switch (decode(c->cfg, e, level, &addr, &res)) {
    case SR__ENTRY_TABLE:
      a = addr + SR__INDEX(it->gva, level - 1) * 8;
      if (!flat_entry(f, len0, a, &p) &&
          (p = ext_ptr(c->image, x, a, 8)) == NULL)
        break; /* not mapped: the reference path says how */
      s->eg = a;
      s->ptr = p;
      s->level = WALK;
      PREFETCH(p);
      return;
    case SR__ENTRY_LEAF:
      a = addr | (it->gva & ((UINT64_C(1) << SR__SHIFT(level)) - 1));
      if (!flat_data(f, len0, a, it->len, &p) &&
          (p = ext_ptr(c->image, x, a, it->len)) == NULL)
        break;
      s->data = p;
      s->gpa = a;
      s->level = level;
      PREFETCH(p);
      return;
    default:
      break;
  }
  s->level = SLOW;
}

/* The host address of the entry at gpa outside the first flat extent:
 * in the second one, or through *x; NULL if the image does not map it. */
static NOINLINE const unsigned char* entry_other(const sr_image_t* image,
                                                 ext_t* x, uint64_t gpa) {
  const unsigned char* p;

  return flat_entry(image->flat, 0, gpa, &p) ? p : ext_ptr(image, x, gpa, 8);
}

/* The items of st[0..m) left GENERAL by a pass over `level`, through
 * bstep_general. Returns how many of them stopped walking. */
static size_t bpass_general(const bctx_t* c, ext_t* x, bstate_t* st,
                            const sr_batch_item_t* it, size_t m, int level) {
  size_t i, stopped = 0;

  for (i = 0; i < m; i++) {
    if (st[i].level != GENERAL)
      continue;
    bstep_general(c, x, &st[i], &it[i], level);
    stopped += st[i].level != WALK;
  }
  return stopped;
}

/* Reads items from *mark on, GROUP at a time, advancing *mark past each
 * finished group. Each pass over a group's walking items loads the entries
 * the pass before prefetched and prefetches the next level's entries (or
 * the data), so the misses of GROUP walks overlap; the common case (a
 * present table entry or 4K leaf without reserved bits, inside the image's
 * first flat extent) is a few instructions and no call, so that many
 * prefetches fit in the CPU's window; anything else is left GENERAL for a
 * second pass. Then each item is copied and its leaf re-read, or goes
 * through the reference path. Inside the caller's fault scope (not
 * inlined). */
static NOINLINE void batch_fast(bctx_t* c, volatile size_t* mark) {
  const sr__walk_cfg_t* cfg = c->cfg;
  const sr__flat_t* f = c->image->flat;
  /* the first flat extent, in locals (no store below may change them) */
  const uint64_t lo = f[0].gpa;
  const uint64_t len0 = __atomic_load_n(&f[0].len, __ATOMIC_RELAXED);
  const unsigned char* const host = f[0].p;
  const uint64_t tmask = SR__P | SR__PS | cfg->rsvd_mask;
  const uint64_t lmask = SR__P | cfg->rsvd_mask;
  const uint64_t root = c->root;
  const int top = cfg->top_level;
  bstate_t st[GROUP];
  ext_t x = {0, 0, NULL};
  size_t base, i, m, nwalk, ngen;
  uint64_t e, a, va;
  unsigned shift;
  int level, ok = c->ok;

  for (base = *mark; base < c->n; base += m) {
    sr_batch_item_t* it = c->items + base;

    m = c->n - base < GROUP ? c->n - base : GROUP;
    nwalk = 0;
    for (i = 0; i < m; i++) {
      /* fast only for a valid item inside one page, canonical */
      va = it[i].gva;
      st[i].level = SLOW;
      if (it[i].buf == NULL ||
          (uint64_t)it[i].len - 1 >= PAGE - (va & (PAGE - 1)) ||
          !sr__gva_canonical(va, top))
        continue;
      a = root + SR__INDEX(va, top) * 8;
      if (a - lo < len0)
        st[i].ptr = host + (a - lo);
      else if ((st[i].ptr = entry_other(c->image, &x, a)) == NULL)
        continue;
      PREFETCH(st[i].ptr);
      st[i].eg = a;
      st[i].level = WALK;
      nwalk++;
    }
    /* level by level over the walking items: the table levels */
    for (level = top; level > 1 && nwalk > 0; level--) {
      shift = SR__SHIFT(level - 1);
      ngen = 0;
      for (i = 0; i < m; i++) {
        bstate_t* s = &st[i];
        if (s->level != WALK)
          continue;
        e = load_entry(s->ptr);
        if ((e & tmask) == SR__P) {
          /* a table: its entry for va, prefetched */
          a = (e & SR__ADDR_MASK) + ((it[i].gva >> shift) & 511) * 8;
          if (a - lo < len0) {
            s->eg = a;
            s->ptr = host + (a - lo);
            PREFETCH(s->ptr);
            continue;
          }
        }
        s->leaf = e;
        s->level = GENERAL;
        ngen++;
      }
      if (ngen > 0)
        nwalk -= bpass_general(c, &x, st, it, m, level);
    }
    /* the leaf level */
    ngen = 0;
    for (i = 0; i < m && nwalk > 0; i++) {
      bstate_t* s = &st[i];
      if (s->level != WALK)
        continue;
      e = load_entry(s->ptr);
      s->leaf = e;
      if ((e & lmask) == SR__P) {
        /* a 4K leaf: its data, prefetched */
        a = (e & SR__ADDR_MASK) | (it[i].gva & (PAGE - 1));
        if (a - lo < len0 && len0 - (a - lo) >= it[i].len) {
          s->gpa = a;
          s->data = host + (a - lo);
          PREFETCH(s->data);
          s->level = 1;
          continue;
        }
      }
      s->level = GENERAL;
      ngen++;
    }
    if (ngen > 0)
      bpass_general(c, &x, st, it, m, 1);
    /* copy, then revalidate the leaf (ptr and eg name it); the rest
     * through the reference path */
    for (i = 0; i < m; i++) {
      const bstate_t* s = &st[i];
      if (s->level > 0) {
        if (it[i].len == 8) /* the common small read: no call */
          memcpy(it[i].buf, s->data, 8);
        else
          memcpy(it[i].buf, s->data, it[i].len);
        barrier();
        if (load_entry(s->ptr) == s->leaf) {
          it[i].status = 0;
          it[i].walked = true;
          it[i].level = s->level;
          it[i].entry = s->leaf;
          it[i].entry_gpa = s->eg;
          it[i].gpa = s->gpa;
          ok++;
          continue;
        }
      }
      item_ref(c->image, c->cr3, c->opts, &it[i]);
      ok += it[i].status == 0;
    }
    c->ok = ok;
    *mark = base + m;
  }
}

/* batch_fast under a fault scope of its own frame; true if it faulted. */
static bool batch_scoped(bctx_t* c, volatile size_t* mark) {
  sr__fault_scope_t scope;

  if (SR__FAULT_CATCH(&scope)) {
    sr__image_note_fault(c->image);
    return true;
  }
  sr__fault_enter(&scope);
  batch_fast(c, mark);
  sr__fault_leave(&scope);
  return false;
}

int sr_read_batch(const sr_image_t* image, uint64_t cr3,
                  const sr_walk_opts_t* opts, sr_batch_item_t* items,
                  size_t n) {
  sr__walk_cfg_t cfg;
  volatile size_t mark = 0;
  size_t i;
  bctx_t c;

  if (image == NULL || (items == NULL && n > 0) || n > INT_MAX ||
      sr__walk_config(opts, &cfg) != 0 ||
      ((cr3 & SR__CR3_MASK) & ~cfg.phys_mask) != 0)
    return SR_EINVAL;
  c.image = image;
  c.cfg = &cfg;
  c.cr3 = cr3;
  c.opts = opts;
  c.root = cr3 & SR__CR3_MASK;
  c.items = items;
  c.n = n;
  c.ok = 0;
  if (batch_scoped(&c, &mark)) {
    /* The file shrank: redo the unfinished group and the rest on the
     * reference path, which sees the lowered size. */
    c.ok = 0;
    for (i = 0; i < n; i++) {
      if (i >= mark)
        item_ref(image, cr3, opts, &items[i]);
      c.ok += items[i].status == 0;
    }
  }
  return c.ok;
}
