/* Address-space monitors: snapshots of the page-table pages of a CR3,
 * compared with the image at each poll, and the leaf events derived from
 * the differences.
 *
 * A monitor keeps a tree of snapshots that follows the tables: one node
 * per table page reached inside its range, holding the 512 entries as
 * last seen, the protection accumulated above them and, for tables above
 * the PT level, the node of each table an entry points at. A poll runs
 * diff_pos on the root position. For a table whose parent entry did not
 * change, one sr_image_cmp of 4 KiB against the snapshot decides; only a
 * table that differs is copied, and only its differing entries are looked
 * at. A differing entry is diffed as a whole position, old side (the
 * snapshot) against new side (the image), recursively: a table on either
 * side is opened entry by entry, a leaf on the other side is cut into
 * pieces of the same size, and where neither side is a table one leaf
 * event is due (mapped, unmapped, or changed in the monitored bits). So a
 * change at a higher level is compared with the old subtree below it
 * before anything under it is looked at, the old nodes are reused or
 * freed on the way, and a 2 MiB page split into 4 KiB pages over the same
 * frames produces no event. The compare of an unchanged subtree honours a
 * budget of tables per poll and resumes at a cursor, a position in the
 * tree's preorder (linear address, level); the tables above the cursor
 * are re-compared on the way down without counting, and every poll makes
 * progress. A changed entry that now points at a table the tree holds (or
 * held at the last poll) at another place is reported as REUSED. Tables
 * beyond max_tables, or whose node cannot be allocated, are UNTRACKED and
 * retried whenever their parent is compared. Events are delivered as they
 * are found, in address order, with the engine marked busy; callbacks may
 * not free a space monitor. Not thread-safe.
 */
#include <string.h>

#include "internal.h"
#include "swapread/spacemon.h"

#define ENTRIES 512u
#define TABLE_BYTES 4096u
#define SHIFT(level) (12u + 9u * ((unsigned)(level)-1u))
#define ENTRY_A (UINT64_C(1) << 5)
#define ENTRY_D (UINT64_C(1) << 6)

typedef struct sm_node_s sm_node_t;
struct sm_node_s {
  uint64_t snap[ENTRIES]; /* the table as last seen */
  uint64_t gpa;           /* of the table */
  uint64_t lin;           /* linear address its entry 0 maps */
  sm_node_t** child;      /* level > 1: node per entry (or NULL, marker) */
  uint32_t prot;          /* SR_PROT_* accumulated above its entries */
  uint8_t level;          /* of its entries */
};

/* Child markers: a table entry whose table has no snapshot. NEW: not
 * reported yet (found by the silent first snapshot). */
static struct { uint64_t pad; } marks[2];
#define UNTRACKED_NEW ((sm_node_t*)(void*)&marks[0])
#define UNTRACKED ((sm_node_t*)(void*)&marks[1])

static bool is_node(const sm_node_t* n) {
  return n != NULL && n != UNTRACKED_NEW && n != UNTRACKED;
}

/* Table positions by GPA (a multimap: linear probing, pos 0 = empty). */
typedef struct sm_slot_s {
  uint64_t gpa;
  uint64_t pos; /* lin | level */
} sm_slot_t;

typedef struct sm_hash_s {
  sm_slot_t* slot;
  uint32_t mask, n;
} sm_hash_t;

struct sr_spacemon_s {
  sr_swap_t* swap;
  sr_spacemon_cb cb;
  void* data;
  uint64_t cr3, root;
  uint64_t lo, end; /* linear [lo, end) */
  uint32_t bits, budget, max_tables;
  int top;          /* 4 or 5 */
  unsigned vbits;   /* 48 or 57 */
  sm_node_t* rootn; /* NULL: root unreadable at the last look */
  uint64_t cur_lin; /* the cursor: preorder position of the next table */
  int cur_level;
  sm_hash_t live;    /* every node of the tree */
  sm_hash_t retired; /* positions left during the running poll */
  sr_spacemon_stats_t st;
  sr_spacemon_t *prev, *next;
};

enum { S_UNKNOWN, S_NONE, S_LEAF, S_TABLE };

/* One side of a position: what covers it before (old) or now (new). */
typedef struct side_s {
  int kind;        /* S_* */
  int level;       /* of entry; 0: the root position */
  uint32_t prot;   /* LEAF: effective; TABLE: accumulated above its entries */
  uint64_t entry;  /* LEAF / NONE: that entry; TABLE: the one pointing at it */
  uint64_t gpa;    /* LEAF: GPA of the position's first byte; TABLE: table */
  sm_node_t* node; /* old TABLE: its snapshot; UNKNOWN: the marker */
} side_t;

/* One poll (or the first snapshot) of one monitor. */
typedef struct sm_ctx_s {
  sr_spacemon_t* sm;
  bool silent; /* first snapshot: no events */
  uint64_t budget, used;
  bool did_new; /* compared a table at or after the cursor */
  bool stopped; /* budget spent: res_* is the next cursor */
  uint64_t res_lin;
  int res_level;
} sm_ctx_t;

/* ---- position hash ---- */

static uint32_t hash_home(const sm_hash_t* h, uint64_t gpa) {
  return (uint32_t)sr__mix64(gpa) & h->mask;
}

static void hash_put(sm_hash_t* h, uint64_t gpa, uint64_t pos) {
  uint32_t i;

  assert(h->slot != NULL && h->n < h->mask);
  for (i = hash_home(h, gpa); h->slot[i].pos != 0; i = (i + 1) & h->mask)
    ;
  h->slot[i].gpa = gpa;
  h->slot[i].pos = pos;
  h->n++;
}

static size_t hash_bytes(uint32_t cap) {
  return (size_t)cap * sizeof(sm_slot_t);
}

/* Room for one more: 0 or SR_ENOMEM (nothing changed). Load <= 1/2. */
static int hash_reserve(sr_spacemon_t* sm, sm_hash_t* h) {
  uint32_t cap = h->slot != NULL ? h->mask + 1 : 0, ncap, i;
  sm_hash_t nh;

  if ((uint64_t)(h->n + 1) * 2 <= cap)
    return 0;
  ncap = cap != 0 ? cap * 2 : 64;
  if (ncap == 0)
    return SR_ENOMEM;
  nh.slot = sr__alloc(sm->swap, hash_bytes(ncap));
  if (nh.slot == NULL)
    return SR_ENOMEM;
  memset(nh.slot, 0, hash_bytes(ncap));
  nh.mask = ncap - 1;
  nh.n = 0;
  for (i = 0; i < cap; i++)
    if (h->slot[i].pos != 0)
      hash_put(&nh, h->slot[i].gpa, h->slot[i].pos);
  if (h->slot != NULL)
    sr__free(sm->swap, h->slot, hash_bytes(cap));
  sm->st.bytes += hash_bytes(ncap) - hash_bytes(cap);
  *h = nh;
  return 0;
}

/* Removes (gpa, pos), which must be there (backward-shift delete). */
static void hash_del(sm_hash_t* h, uint64_t gpa, uint64_t pos) {
  uint32_t i, j, k;

  assert(h->slot != NULL);
  for (i = hash_home(h, gpa); !(h->slot[i].gpa == gpa && h->slot[i].pos == pos);
       i = (i + 1) & h->mask)
    assert(h->slot[i].pos != 0);
  for (j = i;;) {
    j = (j + 1) & h->mask;
    if (h->slot[j].pos == 0)
      break;
    k = hash_home(h, h->slot[j].gpa);
    /* Move slot j back to i unless its home lies cyclically in (i, j]. */
    if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
      continue;
    h->slot[i] = h->slot[j];
    i = j;
  }
  h->slot[i].pos = 0;
  h->n--;
}

/* A position of gpa other than pos, or 0. */
static uint64_t hash_other(const sm_hash_t* h, uint64_t gpa, uint64_t pos) {
  uint32_t i;

  if (h->slot == NULL)
    return 0;
  for (i = hash_home(h, gpa); h->slot[i].pos != 0; i = (i + 1) & h->mask)
    if (h->slot[i].gpa == gpa && h->slot[i].pos != pos)
      return h->slot[i].pos;
  return 0;
}

static void hash_free(sr_spacemon_t* sm, sm_hash_t* h) {
  if (h->slot != NULL) {
    sr__free(sm->swap, h->slot, hash_bytes(h->mask + 1));
    sm->st.bytes -= hash_bytes(h->mask + 1);
  }
  h->slot = NULL;
  h->mask = h->n = 0;
}

/* ---- addresses and sides ---- */

static uint64_t canon(const sr_spacemon_t* sm, uint64_t lin) {
  if ((lin >> (sm->vbits - 1)) & 1)
    return lin | ~((UINT64_C(1) << sm->vbits) - 1);
  return lin;
}

static uint64_t pos_of(uint64_t lin, int level) {
  return lin | (uint64_t)level;
}

static uint32_t prot_acc(uint32_t acc, uint32_t e) {
  return (acc & e & (SR_PROT_W | SR_PROT_U)) | ((acc | e) & SR_PROT_NX);
}

/* The side entry `entry` of level `level` gives under protection acc; an
 * old side gets its child node (child: the snapshot's, else ignored). */
static side_t entry_side(const sr_spacemon_t* sm, uint64_t entry, int level,
                         uint32_t acc, bool old, sm_node_t* child) {
  sr_entry_info_t info;
  side_t s;

  memset(&s, 0, sizeof(s));
  s.level = level;
  s.entry = entry;
  (void)sr_entry_decode(entry, level, &sm->swap->opts.walk, &info);
  s.prot = prot_acc(acc, info.prot);
  s.gpa = info.addr;
  switch (info.cls) {
    case SR_ENTRY_LEAF:
      s.kind = S_LEAF;
      break;
    case SR_ENTRY_TABLE:
      s.kind = S_TABLE;
      if (old) {
        if (is_node(child))
          s.node = child;
        else if (child != NULL) {
          s.kind = S_UNKNOWN;
          s.node = child;
        } else {
          s.kind = S_NONE; /* its table was not in the image */
        }
      }
      break;
    default:
      s.kind = S_NONE;
      break;
  }
  return s;
}

/* Piece i of the table-sized position a non-table side covers. */
static side_t piece(const side_t* s, unsigned i, int level) {
  side_t p = *s;

  assert(s->kind != S_TABLE);
  if (p.kind == S_LEAF)
    p.gpa += (uint64_t)i << SHIFT(level);
  p.node = NULL; /* a marker belongs to its own position, not the pieces */
  return p;
}

/* ---- events ---- */

static void deliver(sm_ctx_t* c, sr_spacemon_event_t* ev) {
  sr_spacemon_t* sm = c->sm;

  ev->cr3 = sm->cr3;
  sm->st.events++;
  sm->swap->depth++;
  sm->cb(sm, ev, sm->data);
  sm->swap->depth--;
}

static void export_leaf(const side_t* s, sr_spacemon_leaf_t* out) {
  out->mapped = s->kind == S_LEAF;
  out->level = s->level;
  out->entry = s->entry;
  out->gpa = s->kind == S_LEAF ? s->gpa : 0;
  out->prot = s->kind == S_LEAF ? s->prot : 0;
}

/* The event for the leaf position [lin, lin + 2^shift), if one is due. */
static void emit_leaf(sm_ctx_t* c, uint64_t lin, unsigned shift,
                      const side_t* os, const side_t* ns) {
  uint32_t mask = c->sm->bits, bits = 0, d;
  sr_spacemon_event_t ev;
  bool om, nm;
  int kind;

  if (c->silent || os->kind == S_UNKNOWN || ns->kind == S_UNKNOWN)
    return;
  om = os->kind == S_LEAF;
  nm = ns->kind == S_LEAF;
  if (om != nm) {
    if (!(mask & SR_SPACEMON_PRESENT))
      return;
    bits = SR_SPACEMON_PRESENT;
    kind = nm ? SR_SPACEMON_MAPPED : SR_SPACEMON_UNMAPPED;
  } else if (om) {
    d = os->prot ^ ns->prot;
    if (os->gpa != ns->gpa)
      bits |= SR_SPACEMON_FRAME;
    if (d & SR_PROT_W)
      bits |= SR_SPACEMON_WRITABLE;
    if (d & SR_PROT_U)
      bits |= SR_SPACEMON_USER;
    if (d & SR_PROT_NX)
      bits |= SR_SPACEMON_NX;
    if ((os->entry ^ ns->entry) & ENTRY_A)
      bits |= SR_SPACEMON_ACCESSED;
    if ((os->entry ^ ns->entry) & ENTRY_D)
      bits |= SR_SPACEMON_DIRTY;
    bits &= mask;
    if (bits == 0)
      return;
    kind = SR_SPACEMON_CHANGED;
  } else {
    if (!(mask & SR_SPACEMON_SWAP) ||
        (os->entry == ns->entry && os->level == ns->level))
      return;
    bits = SR_SPACEMON_SWAP;
    kind = SR_SPACEMON_CHANGED;
  }
  memset(&ev, 0, sizeof(ev));
  ev.kind = (sr_spacemon_event_kind_t)kind;
  ev.va = canon(c->sm, lin);
  ev.size = UINT64_C(1) << shift;
  ev.bits = bits;
  export_leaf(os, &ev.old);
  export_leaf(ns, &ev.now);
  deliver(c, &ev);
}

static void emit_table(sm_ctx_t* c, int kind, uint64_t lin, int level,
                       uint64_t gpa, uint64_t was_pos) {
  sr_spacemon_event_t ev;

  if (c->silent)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.kind = (sr_spacemon_event_kind_t)kind;
  ev.va = canon(c->sm, lin);
  ev.size = UINT64_C(1) << SHIFT(level + 1);
  ev.table_gpa = gpa;
  ev.table_level = level;
  if (kind == SR_SPACEMON_REUSED) {
    c->sm->st.reused++;
    ev.was_level = (int)(was_pos & 7);
    ev.was_va = canon(c->sm, was_pos & ~UINT64_C(7));
  }
  deliver(c, &ev);
}

/* ---- nodes ---- */

static size_t child_bytes(int level) {
  return level > 1 ? ENTRIES * sizeof(sm_node_t*) : 0;
}

/* A node for the table at gpa of the position (lin, level), snapshot not
 * filled; NULL when over max_tables or out of memory. */
static sm_node_t* node_new(sm_ctx_t* c, uint64_t gpa, uint64_t lin, int level,
                           uint32_t prot) {
  sr_spacemon_t* sm = c->sm;
  sm_node_t* n;

  if (sm->st.tables >= sm->max_tables)
    return NULL;
  if (hash_reserve(sm, &sm->live) != 0)
    return NULL;
  n = sr__alloc(sm->swap, sizeof(*n));
  if (n == NULL)
    return NULL;
  n->child = NULL;
  if (level > 1) {
    n->child = sr__alloc(sm->swap, child_bytes(level));
    if (n->child == NULL) {
      sr__free(sm->swap, n, sizeof(*n));
      return NULL;
    }
    memset(n->child, 0, child_bytes(level));
  }
  n->gpa = gpa;
  n->lin = lin;
  n->level = (uint8_t)level;
  n->prot = prot;
  hash_put(&sm->live, gpa, pos_of(lin, level));
  sm->st.tables++;
  sm->st.bytes += sizeof(*n) + child_bytes(level);
  return n;
}

/* Notes that the table at gpa left position pos in this poll (silent:
 * the monitor is being freed, nothing is compared any more). */
static void retire(sm_ctx_t* c, uint64_t gpa, uint64_t pos) {
  sr_spacemon_t* sm = c->sm;

  hash_del(&sm->live, gpa, pos);
  if (!c->silent && hash_reserve(sm, &sm->retired) == 0)
    hash_put(&sm->retired, gpa, pos);
}

/* Frees n alone (its children were freed or reused before). */
static void node_free(sm_ctx_t* c, sm_node_t* n) {
  sr_spacemon_t* sm = c->sm;

  retire(c, n->gpa, pos_of(n->lin, n->level));
  sm->st.tables--;
  sm->st.bytes -= sizeof(*n) + child_bytes(n->level);
  if (n->child != NULL)
    sr__free(sm->swap, n->child, child_bytes(n->level));
  sr__free(sm->swap, n, sizeof(*n));
}

/* Frees the subtree under child pointer n, no events (monitor freed). */
static void tree_free(sm_ctx_t* c, sm_node_t* n) {
  unsigned i;

  if (n == UNTRACKED || n == UNTRACKED_NEW)
    c->sm->st.untracked--;
  if (!is_node(n))
    return;
  if (n->child != NULL)
    for (i = 0; i < ENTRIES; i++)
      tree_free(c, n->child[i]);
  node_free(c, n);
}

/* ---- the diff ---- */

/* Whether the table at (lin, level) is at or after the cursor. */
static bool new_work(const sr_spacemon_t* sm, uint64_t lin, int level) {
  return lin > sm->cur_lin || (lin == sm->cur_lin && level <= sm->cur_level);
}

static void count(sm_ctx_t* c, uint64_t lin, int level) {
  if (!c->silent)
    c->sm->st.tables_compared++;
  if (new_work(c->sm, lin, level)) {
    c->used++;
    c->did_new = true;
  }
}

/* The entries [*lo, *hi] of the table at (lin, level) inside the range. */
static void entry_range(const sr_spacemon_t* sm, uint64_t lin, int level,
                        unsigned* lo, unsigned* hi) {
  unsigned s = SHIFT(level);
  uint64_t last = lin + (((uint64_t)ENTRIES << s) - 1);

  *lo = sm->lo > lin ? (unsigned)((sm->lo - lin) >> s) : 0;
  *hi = sm->end - 1 < last ? (unsigned)((sm->end - 1 - lin) >> s) : ENTRIES - 1;
}

static sm_node_t* diff_pos(sm_ctx_t* c, uint64_t lin, int level,
                           const side_t* os, const side_t* ns);

/* Child pointer child of an entry that did not change (entry, in a table
 * of `level` at protection acc): compared again if its subtree is not
 * done in this pass and the budget allows. Returns the new pointer. */
static sm_node_t* descend_one(sm_ctx_t* c, uint64_t lin, int level,
                              uint64_t entry, uint32_t acc, sm_node_t* child) {
  sr_spacemon_t* sm = c->sm;
  side_t a, b;

  assert(level > 1);
  if (child == NULL)
    return NULL;
  if (lin + (UINT64_C(1) << SHIFT(level)) <= sm->cur_lin)
    return child; /* done earlier in this pass */
  if (new_work(sm, lin, level - 1)) {
    if (c->stopped)
      return child;
    if (c->used >= c->budget && c->did_new) {
      c->stopped = true;
      c->res_lin = lin;
      c->res_level = level - 1;
      return child;
    }
  }
  b = entry_side(sm, entry, level, acc, false, NULL);
  if (is_node(child)) {
    memset(&a, 0, sizeof(a));
    a.kind = S_TABLE;
    a.node = child;
    a.gpa = child->gpa;
    a.prot = child->prot;
  } else {
    a = entry_side(sm, entry, level, acc, true, child); /* UNKNOWN */
  }
  return diff_pos(c, lin, level - 1, &a, &b);
}

/* Compares the unchanged entries of node n again (fast path). */
static void descend(sm_ctx_t* c, sm_node_t* n) {
  unsigned i, lo, hi;

  if (n->level == 1)
    return;
  entry_range(c->sm, n->lin, n->level, &lo, &hi);
  for (i = lo; i <= hi; i++)
    if (n->child[i] != NULL)
      n->child[i] = descend_one(c, n->lin + ((uint64_t)i << SHIFT(n->level)),
                                n->level, n->snap[i], n->prot, n->child[i]);
}

/* A table at gpa now at position (lin, level) that the tree holds, or
 * held in this poll, elsewhere: REUSED. */
static void check_reused(sm_ctx_t* c, uint64_t lin, int level, uint64_t gpa) {
  uint64_t pos = pos_of(lin, level), was;

  was = hash_other(&c->sm->live, gpa, pos);
  if (was == 0)
    was = hash_other(&c->sm->retired, gpa, pos);
  if (was != 0)
    emit_table(c, SR_SPACEMON_REUSED, lin, level, gpa, was);
}

/* The node for a table the tree could not snapshot. */
static sm_node_t* untracked(sm_ctx_t* c, uint64_t lin, int level, uint64_t gpa,
                            const side_t* os) {
  c->sm->st.untracked++;
  if (c->silent)
    return UNTRACKED_NEW;
  if (!(os->kind == S_UNKNOWN && os->node == UNTRACKED))
    emit_table(c, SR_SPACEMON_UNTRACKED, lin, level, gpa, 0);
  return UNTRACKED;
}

/* Diffs the position (lin, level + 1): what covers it in the snapshot (os)
 * against what covers it now (ns; a TABLE is read from the image; one
 * that cannot be read makes the position unmapped). Delivers the events,
 * reuses or frees the old nodes, and returns the new child pointer: the
 * node of the table now there, NULL (no table), or a marker. */
static sm_node_t* diff_pos(sm_ctx_t* c, uint64_t lin, int level,
                           const side_t* os, const side_t* ns) {
  sr_spacemon_t* sm = c->sm;
  uint64_t buf[ENTRIES];
  const uint64_t* nt = NULL;
  sm_node_t* on = os->kind == S_TABLE ? os->node : NULL;
  sm_node_t *nn = NULL, *r, *oc;
  side_t now = *ns, a, b;
  unsigned i, lo, hi;
  bool same_table;
  uint64_t li;

  if (os->kind == S_UNKNOWN && os->node != NULL)
    sm->st.untracked--; /* a retry: counted again below if it fails */
  if (now.kind == S_TABLE) {
    count(c, lin, level);
    if (on != NULL && on->gpa == now.gpa && on->prot == now.prot) {
      int rc = sr_image_cmp(sm->swap->image, now.gpa, on->snap, TABLE_BYTES);
      if (rc == 0) {
        descend(c, on);
        return on;
      }
    }
    if (sr_image_read(sm->swap->image, now.gpa, buf, TABLE_BYTES, NULL) == 0)
      nt = buf;
    else
      now.kind = S_NONE; /* the entry names a table not in the image */
    if (nt != NULL && on != NULL)
      sm->st.tables_changed++;
  }
  if (on == NULL && nt == NULL) {
    emit_leaf(c, lin, SHIFT(level + 1), os, &now);
    return NULL;
  }

  if (nt != NULL) {
    nn = on;
    if (nn == NULL) {
      nn = node_new(c, now.gpa, lin, level, now.prot);
      if (nn == NULL)
        return untracked(c, lin, level, now.gpa, os);
    }
  }
  same_table =
      on != NULL && nt != NULL && on->gpa == now.gpa && on->prot == now.prot;
  entry_range(sm, lin, level, &lo, &hi);
  for (i = lo; i <= hi; i++) {
    li = lin + ((uint64_t)i << SHIFT(level));
    oc = on != NULL && on->child != NULL ? on->child[i] : NULL;
    if (same_table && on->snap[i] == nt[i]) {
      if (level > 1)
        nn->child[i] = descend_one(c, li, level, nt[i], now.prot, oc);
      continue;
    }
    a = on != NULL ? entry_side(sm, on->snap[i], level, on->prot, true, oc)
                   : piece(os, i, level);
    b = nt != NULL ? entry_side(sm, nt[i], level, now.prot, false, NULL)
                   : piece(&now, i, level);
    if (b.kind == S_TABLE && !(a.kind == S_TABLE && a.gpa == b.gpa))
      check_reused(c, li, level - 1, b.gpa);
    r = diff_pos(c, li, level - 1, &a, &b);
    if (nn != NULL && level > 1)
      nn->child[i] = r;
  }
  if (nn != NULL) {
    memcpy(nn->snap, nt, TABLE_BYTES);
    if (nn->gpa != now.gpa) {
      retire(c, nn->gpa, pos_of(lin, level));
      hash_put(&sm->live, now.gpa, pos_of(lin, level)); /* n unchanged */
      nn->gpa = now.gpa;
    }
    nn->prot = now.prot;
  }
  if (on != NULL && on != nn)
    node_free(c, on);
  return nn;
}

/* One look at the whole tree from the root position. */
static void run(sm_ctx_t* c) {
  sr_spacemon_t* sm = c->sm;
  side_t a, b;

  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  if (is_node(sm->rootn)) {
    a.kind = S_TABLE;
    a.node = sm->rootn;
    a.gpa = sm->rootn->gpa;
    a.prot = sm->rootn->prot;
  } else if (sm->rootn != NULL) {
    a.kind = S_UNKNOWN;
    a.node = sm->rootn;
  } else {
    a.kind = c->silent ? S_UNKNOWN : S_NONE;
  }
  b.kind = S_TABLE;
  b.gpa = sm->root;
  b.prot = SR_PROT_W | SR_PROT_U;
  sm->rootn = diff_pos(c, 0, sm->top, &a, &b);
}

static void ctx_init(sm_ctx_t* c, sr_spacemon_t* sm, bool silent) {
  memset(c, 0, sizeof(*c));
  c->sm = sm;
  c->silent = silent;
  c->budget = silent || sm->budget == 0 ? UINT64_MAX : sm->budget;
}

static void poll_one(sr_spacemon_t* sm) {
  sm_ctx_t c;

  ctx_init(&c, sm, false);
  sm->st.polls++;
  run(&c);
  if (c.stopped) {
    sm->cur_lin = c.res_lin;
    sm->cur_level = c.res_level;
  } else {
    sm->cur_lin = 0;
    sm->cur_level = sm->top;
    sm->st.passes++;
  }
  hash_free(sm, &sm->retired);
}

int sr__spacemon_poll_all(sr_swap_t* swap) {
  sr_spacemon_t *sm, *next;
  uint64_t before;
  int n = 0;

  /* A monitor created by a callback is first polled next time (it sits
   * at the head); none can be freed while this runs (SR_EBUSY). */
  for (sm = swap->spacemons; sm != NULL; sm = next) {
    next = sm->next;
    before = sm->st.events;
    poll_one(sm);
    n += (int)(sm->st.events - before);
  }
  return n;
}

/* ---- the API ---- */

/* lin of canonical x (hi: may also be the end of the lower half). */
static int to_lin(const sr_spacemon_t* sm, uint64_t x, bool hi, uint64_t* lin) {
  sr_paging_t paging = sm->top == 5 ? SR_PAGING_5LEVEL : SR_PAGING_4LEVEL;

  if (hi && x == UINT64_C(1) << (sm->vbits - 1)) {
    *lin = x;
    return 0;
  }
  if (!sr_gva_canonical(x, paging))
    return SR_ENONCANON;
  *lin = x & ((UINT64_C(1) << sm->vbits) - 1);
  return 0;
}

static int set_range(sr_spacemon_t* sm, const sr_spacemon_opts_t* o) {
  uint64_t lo = 0, end = UINT64_C(1) << sm->vbits;

  if (o->lo != 0 || o->hi != 0) {
    if (to_lin(sm, o->lo, false, &lo) != 0)
      return SR_ENONCANON;
    if (o->hi != 0 && to_lin(sm, o->hi, true, &end) != 0)
      return SR_ENONCANON;
    if (end <= lo)
      return SR_EINVAL;
  }
  sm->lo = lo;
  sm->end = end;
  return 0;
}

static void free_all(sr_spacemon_t* sm) {
  sm_ctx_t c;

  ctx_init(&c, sm, true);
  tree_free(&c, sm->rootn);
  sm->rootn = NULL;
  hash_free(sm, &sm->live);
  hash_free(sm, &sm->retired);
  assert(sm->st.tables == 0 && sm->st.bytes == sizeof(*sm));
}

static void unlink_monitor(sr_spacemon_t* sm) {
  sr_swap_t* swap = sm->swap;

  if (sm->prev != NULL)
    sm->prev->next = sm->next;
  else
    swap->spacemons = sm->next;
  if (sm->next != NULL)
    sm->next->prev = sm->prev;
  swap->nspacemons--;
  free_all(sm);
  sr__free(swap, sm, sizeof(*sm));
}

int sr_spacemon_new(sr_spacemon_t** out, sr_swap_t* swap, uint64_t cr3,
                    const sr_spacemon_opts_t* opts, sr_spacemon_cb cb,
                    void* data) {
  static const sr_spacemon_opts_t defaults;
  sr_spacemon_t* sm;
  sm_ctx_t c;
  uint64_t root = cr3;
  int rc;

  if (out == NULL)
    return SR_EINVAL;
  *out = NULL;
  if (swap == NULL || cb == NULL)
    return SR_EINVAL;
  if (opts == NULL)
    opts = &defaults;
  if (cr3 == SR_CR3_KERNEL) {
    if (swap->opts.kernel_cr3 == 0)
      return SR_EINVAL;
    root = swap->opts.kernel_cr3;
  }
  if ((opts->bits & ~(uint32_t)0xff) != 0)
    return SR_EINVAL;
  sm = sr__alloc(swap, sizeof(*sm));
  if (sm == NULL)
    return SR_ENOMEM;
  memset(sm, 0, sizeof(*sm));
  sm->swap = swap;
  sm->cb = cb;
  sm->data = data;
  sm->cr3 = cr3;
  sm->root = root & UINT64_C(0x000ffffffffff000);
  sm->top = swap->opts.walk.paging == SR_PAGING_5LEVEL ? 5 : 4;
  sm->vbits = sm->top == 5 ? 57 : 48;
  sm->bits = opts->bits != 0 ? opts->bits : SR_SPACEMON_DEFAULT_BITS;
  sm->budget = opts->budget;
  sm->max_tables =
      opts->max_tables != 0 ? opts->max_tables : SR_SPACEMON_DEFAULT_MAX_TABLES;
  sm->cur_level = sm->top;
  sm->st.bytes = sizeof(*sm);
  rc = set_range(sm, opts);
  if (rc != 0)
    goto err_free_monitor;
  rc = sr_image_locate(swap->image, sm->root, &(sr_locate_t){0});
  if (rc != 0)
    goto err_free_monitor;

  ctx_init(&c, sm, true);
  run(&c);
  hash_free(sm, &sm->retired);
  if (!is_node(sm->rootn)) {
    /* Root unreadable, or no memory for its node. */
    rc = sm->rootn == NULL ? SR_EBEYOND : SR_ENOMEM;
    goto err_free_tree;
  }
  if (sm->st.untracked > 0 && sm->st.tables < sm->max_tables) {
    rc = SR_ENOMEM; /* not the limit: the allocator failed */
    goto err_free_tree;
  }
  sm->prev = NULL;
  sm->next = swap->spacemons;
  if (sm->next != NULL)
    sm->next->prev = sm;
  swap->spacemons = sm;
  swap->nspacemons++;
  *out = sm;
  return 0;

err_free_tree:
  free_all(sm);
err_free_monitor:
  sr__free(swap, sm, sizeof(*sm));
  return rc;
}

int sr_spacemon_free(sr_spacemon_t* sm) {
  if (sm == NULL)
    return 0;
  if (sm->swap->depth > 0)
    return SR_EBUSY;
  unlink_monitor(sm);
  return 0;
}

void sr__spacemon_close_all(sr_swap_t* swap) {
  sr_spacemon_event_t ev;
  sr_spacemon_t* sm;
  sm_ctx_t c;

  while ((sm = swap->spacemons) != NULL) {
    memset(&ev, 0, sizeof(ev));
    ev.kind = SR_SPACEMON_CLOSED;
    ctx_init(&c, sm, false);
    deliver(&c, &ev);
    unlink_monitor(sm);
  }
}

void sr_spacemon_stats(const sr_spacemon_t* sm, sr_spacemon_stats_t* out) {
  if (out == NULL)
    return;
  if (sm == NULL) {
    memset(out, 0, sizeof(*out));
    return;
  }
  *out = sm->st;
}

sr_swap_t* sr_spacemon_swap(const sr_spacemon_t* sm) {
  return sm != NULL ? sm->swap : NULL;
}
