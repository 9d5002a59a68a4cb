/* Synchronous reads of guest virtual memory: sr_read_virt (one range) and
 * sr_read_batch (many small pieces, their walks overlapped).
 *
 * Both have a fast path and a reference path. The reference path is
 * sr_translate + sr_image_read + sr_translate again per 4 KiB page (the
 * page counts if the second walk finds the same leaf); it handles every
 * unusual case (non-present or bad entries, holes, tables straddling a
 * segment end, a fault because the file shrank) and fills the results.
 * The fast path runs under one fault scope, resolves GPAs through a cached
 * extent of the image instead of a segment search per load, and never
 * allocates or makes system calls:
 * - sr_read_virt walks the upper levels once per leaf table and then reads
 *   the leaf entry of every page; leaves that map physically contiguous
 *   frames form a run (at most one leaf table) copied with one memcpy,
 *   after which every upper entry is re-read once and every leaf entry of
 *   the run again, and only the prefix whose entries did not change is
 *   accepted;
 * - sr_read_batch takes GROUP items at a time, level by level: each pass
 *   loads and decodes the entries the pass before prefetched and
 *   prefetches the next level's entries (or the data) of all the items,
 *   so the cache misses of GROUP walks overlap; then it copies and re-reads
 *   each leaf entry after its copy.
 * Whatever the fast path is unsure of, it hands to the reference path, so
 * the results are those of the reference path. Limits: a change of an
 * entry between the copy and the re-read that is undone before the re-read
 * (ABA) is not seen, as in the swap engine.
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
#define PREFETCH(p) __builtin_prefetch((const void*)(p))
#else
#define NOINLINE
#define PREFETCH(p) ((void)(p))
#endif

#define PAGE SR_PAGE_4K
#define ATTEMPTS 3 /* copy + re-walk tries per page (reference path) */
#ifndef SR__BATCH_GROUP
#define SR__BATCH_GROUP 32
#endif
#define GROUP SR__BATCH_GROUP /* batch items whose walks overlap */
_Static_assert(GROUP >= 1 && GROUP <= 256, "act[] holds item indices as bytes");
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
  if (!sr_gva_canonical(va, cfg->top_level == 5 ? SR_PAGING_5LEVEL
                                                : SR_PAGING_4LEVEL))
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

int sr_read_virt(const sr_image_t* image, uint64_t cr3,
                 const sr_walk_opts_t* opts, uint64_t gva, void* buf,
                 size_t len, sr_vread_t* out) {
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

/* Reads items from *mark on, GROUP at a time, advancing *mark past each
 * finished group. Each pass over a group's active items loads the entries
 * the pass before prefetched and prefetches the next level's entries (or
 * the data), so the misses of GROUP walks overlap; the common case (a
 * present table entry, a present 4K leaf, everything in the cached extent)
 * is a few instructions, so that many prefetches fit in the CPU's window.
 * Inside the caller's fault scope (not inlined). */
static NOINLINE void batch_fast(bctx_t* c, volatile size_t* mark) {
  const sr__walk_cfg_t* cfg = c->cfg;
  const unsigned char* ptr[GROUP]; /* the entry to load next, then the leaf */
  const unsigned char* data[GROUP];
  uint64_t gpa[GROUP], leaf[GROUP], eg[GROUP];
  int lvl[GROUP];
  unsigned char slow[GROUP], act[GROUP];
  const unsigned bits = cfg->top_level == 5 ? 57 : 48;
  const uint64_t phys = cfg->phys_mask, fastbad = SR__PS | cfg->rsvd_mask;
  const int top = cfg->top_level;
  ext_t x = {0, 0, NULL};
  size_t base, i, m;
  uint64_t addr, e, va, a;
  unsigned k, nact, nnext;
  bool res;
  int level;

  for (base = *mark; base < c->n; base += m) {
    sr_batch_item_t* it = c->items + base;

    m = c->n - base < GROUP ? c->n - base : GROUP;
    nact = 0;
    for (i = 0; i < m; i++) {
      /* fast only for a valid item inside one page, canonical */
      va = it[i].gva;
      lvl[i] = 0;
      slow[i] = 1;
      if (it[i].buf == NULL || it[i].len == 0 ||
          it[i].len > PAGE - (va & (PAGE - 1)) ||
          (uint64_t)((int64_t)(va << (64 - bits)) >> (64 - bits)) != va)
        continue;
      eg[i] = c->root + SR__INDEX(va, top) * 8;
      ptr[i] = ext_ptr(c->image, &x, eg[i], 8);
      if (ptr[i] == NULL)
        continue;
      PREFETCH(ptr[i]);
      slow[i] = 0;
      act[nact++] = (unsigned char)i;
    }
    /* level by level over the active items */
    for (level = top; level >= 1 && nact > 0; level--) {
      const unsigned shift = SR__SHIFT(level);
      nnext = 0;
      for (k = 0; k < nact; k++) {
        i = act[k];
        e = load_entry(ptr[i]);
        va = it[i].gva;
        if ((e & SR__P) != 0 && (e & fastbad) == 0) {
          if (level > 1) { /* a table: its entry for va, prefetched */
            a = (e & phys) + ((va >> (shift - 9)) & 511) * 8;
            if (a - x.lo < x.hi - x.lo && x.hi - a >= 8) {
              eg[i] = a;
              ptr[i] = x.p + (a - x.lo);
              PREFETCH(ptr[i]);
              act[nnext++] = (unsigned char)i;
              continue;
            }
          } else { /* a 4K leaf: its data, prefetched */
            a = (e & phys) | (va & (PAGE - 1));
            if (a - x.lo < x.hi - x.lo && x.hi - a >= it[i].len) {
              gpa[i] = a;
              data[i] = x.p + (a - x.lo);
              PREFETCH(data[i]);
              leaf[i] = e;
              lvl[i] = 1;
              continue;
            }
          }
        }
        /* the general case */
        switch (decode(cfg, e, level, &addr, &res)) {
          case SR__ENTRY_TABLE:
            eg[i] = addr + SR__INDEX(va, level - 1) * 8;
            ptr[i] = ext_ptr(c->image, &x, eg[i], 8);
            if (ptr[i] == NULL)
              break;
            PREFETCH(ptr[i]);
            act[nnext++] = (unsigned char)i;
            continue;
          case SR__ENTRY_LEAF:
            gpa[i] = addr | (va & ((UINT64_C(1) << shift) - 1));
            data[i] = ext_ptr(c->image, &x, gpa[i], it[i].len);
            if (data[i] == NULL)
              break;
            PREFETCH(data[i]);
            leaf[i] = e;
            lvl[i] = level;
            continue;
          default:
            break;
        }
        slow[i] = 1; /* not present, bad, hole, ...: the reference path */
      }
      nact = nnext;
    }
    /* copy, then revalidate the leaf (ptr[i] and eg[i] name it) */
    for (i = 0; i < m; i++) {
      if (slow[i])
        continue;
      assert(lvl[i] != 0);
      if (it[i].len == 8) /* the common small read: no call */
        memcpy(it[i].buf, data[i], 8);
      else
        memcpy(it[i].buf, data[i], it[i].len);
      barrier();
      if (load_entry(ptr[i]) != leaf[i]) {
        slow[i] = 1;
        continue;
      }
      it[i].status = 0;
      it[i].walked = true;
      it[i].level = lvl[i];
      it[i].entry = leaf[i];
      it[i].entry_gpa = eg[i];
      it[i].gpa = gpa[i];
    }
    for (i = 0; i < m; i++) {
      if (slow[i])
        item_ref(c->image, c->cr3, c->opts, &it[i]);
      c->ok += it[i].status == 0;
    }
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
