/* swap/ private structures: the engine, transactions, the watch index.
 *
 * Everything here is private to the swap/ sources (and to the white-box test,
 * tests/test_swap_internal.c). Indices, not pointers, link the pools,
 * because the record and waiter pools move when they grow; transactions
 * live in fixed blocks of SR__TXN_BLOCK and never move, so a pointer to a
 * transaction stays valid until its slot is freed, even across callbacks
 * that start new reads.
 *
 * Transaction state machine (t->state; checked by sr__txn_check):
 *
 *          slot taken by sr_swap_read
 *   FREE ----------------------------> NEW
 *    ^                                  |  \  all chunks present: sync
 *    |                                  |   \ completion, or rejected:
 *    |                                  |    '-----------------------> FREE
 *    |                                  v  (no callback, no dtor)
 *    |                               PENDING  <--- (join: a FOLLOWER is
 *    |                                  |           PENDING at once)
 *    |      poll: done / deadline /     |   sr_swap_cancel (handle):
 *    |      permanent error;            |   callback runs at once
 *    |      cancel_cr3 / cancel_all     |
 *    |                                  v
 *    |      sr_swap_cancel       COMPLETING (in a local list; waiters,
 *    |   .---------------------  |         heap and join entries gone)
 *    |   |  (a callback cancels  |
 *    |   v   a sibling)          | its turn in the list
 *    | DROPPED                   v
 *    |   | dtor only          CALLBACK (cb running; cancel: SR_EALREADY)
 *    |   |                       | cb returned; dtor
 *    '---+-----------------------'   slot freed, generation + 1
 *
 * Work and callers. The work of a read (chunk bitmap, pending count,
 * waiters, completion flags) belongs to a SOLO or LEADER transaction. A
 * FOLLOWER (SR_READ_JOIN) owns no work: it has its own buffer, callback,
 * data, dtor, deadline and bitmap, copied from its leader's when it ends.
 */
#ifndef SR_SWAP_INTERNAL_H
#define SR_SWAP_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "swapread/monitor.h"
#include "swapread/spacemon.h"
#include "swapread/swap.h"

#define SR__NIL UINT32_MAX /* "no index" in every pool and list */
#define SR__TXN_BLOCK 64u  /* transactions per fixed block */
#define SR__CHUNK_SHIFT 12 /* a chunk is one 4 KiB page */
#define SR__CHUNK (UINT64_C(1) << SR__CHUNK_SHIFT)
#define SR__COPY_ATTEMPTS 3 /* copy + re-walk tries per chunk */

typedef enum sr__txn_state_e {
  SR__TXN_FREE = 0,
  SR__TXN_NEW,        /* being built inside sr_swap_read */
  SR__TXN_PENDING,    /* waiting: waiters filed (or following a leader) */
  SR__TXN_COMPLETING, /* ended, in a local list, callback not run yet */
  SR__TXN_DROPPED,    /* cancelled while COMPLETING: dtor only */
  SR__TXN_CALLBACK    /* its callback is running */
} sr__txn_state_t;

typedef enum sr__txn_role_e {
  SR__ROLE_SOLO = 0, /* owns its work, not joinable */
  SR__ROLE_LEADER,   /* owns its work, in the join table */
  SR__ROLE_FOLLOWER  /* joined a leader: no work of its own */
} sr__txn_role_t;

typedef struct sr__txn_s {
  uint32_t gen;    /* handle generation; + 1 each time the slot is freed */
  uint32_t self;   /* this slot's index */
  uint8_t state;   /* sr__txn_state_t */
  uint8_t role;    /* sr__txn_role_t */
  uint32_t rflags; /* SR_READ_* */
  uint64_t cr3;    /* as the caller gave it (maybe SR_CR3_KERNEL) */
  uint64_t root;   /* the CR3 walked (SR_CR3_KERNEL resolved) */
  uint64_t gva;
  size_t len;
  void* buf;
  sr_swap_cb cb;
  void* data;
  sr_swap_dtor dtor;
  uint64_t seq; /* creation order: heap tie-break */
  uint64_t start_ns;
  uint64_t deadline_ns; /* SR_TIMEOUT_NONE: not in the heap */
  uint32_t heap_idx;    /* SR__NIL when not in the heap */
  uint32_t nchunks;
  uint32_t npending;    /* work: chunks still missing */
  uint64_t* bits;       /* bit i set = chunk i missing (inline or heap) */
  uint64_t inline_bits; /* storage for nchunks <= 64 */
  uint32_t whead;       /* work: this txn's waiters (newest first) */
  uint32_t leader;      /* FOLLOWER: the leader's slot */
  uint32_t fhead;       /* LEADER: first follower; FOLLOWER: next one */
  uint32_t ftail;       /* LEADER: last follower */
  uint32_t link;        /* free list / local completion list */
  uint32_t age_prev, age_next; /* live transactions, oldest first */
  uint32_t done_flags;         /* SR_DONE_NX | SR_DONE_RESIDENT so far */
  uint32_t kinds;              /* kinds_seen */
  uint64_t gpa;                /* GPA of the first byte once chunk 0 is in */
  uint64_t fail_gva;
  int status; /* the status it completes with */
} sr__txn_t;

/* A watched entry. Records form a forest that follows the walks: the
 * record of an entry at level L hangs under the record of the entry at
 * level L + 1 that pointed at the table holding it (its parent), up to a
 * top-level entry (parent SR__NIL). A record is keyed by (entry_gpa,
 * parent), so a table reached along two paths (a kernel table shared by
 * two address spaces, a self-map) is watched once per path. Pending
 * chunks hang off the record of the entry that blocks them (waiters);
 * parents are shared by all their children. Watched VAs of monitors
 * (sr__mwatch_t) hang off the record of their leaf, or of the entry that
 * stops their walk, the same way. A record lives while it has a waiter,
 * a watch or a child (or a poll is processing it). Records live in a
 * pool (stable ids, free list); the live ones are also listed densely, in
 * scan order, in three parallel arrays: swap->live (record id),
 * swap->sgpa (entry GPA) and swap->sval (value last seen), so the poll
 * scan reads 16 contiguous bytes per entry. */
typedef struct sr__rec_s {
  uint32_t whead;        /* waiters (doubly linked); free: next free record */
  uint32_t mhead;        /* monitor watches (doubly linked) */
  uint32_t parent;       /* record of the entry above; SR__NIL at the top */
  uint32_t child;        /* first child record */
  uint32_t sprev, snext; /* siblings: the other children of parent */
  uint32_t pos;          /* index in the dense arrays; SR__NIL when free */
  uint32_t cnext;        /* next changed record of its level (poll only) */
  uint8_t level;
  uint8_t flags; /* SR__REC_* */
} sr__rec_t;

enum {
  SR__REC_FORCE = 1u << 0,  /* re-walk everything under it at the next poll */
  SR__REC_MOVED = 1u << 1,  /* changed so that its subtree must be re-walked */
  SR__REC_QUEUED = 1u << 2, /* on a changed list of the running poll */
  SR__REC_BUSY = 1u << 3    /* being processed: not deleted when emptied */
};

/* A run of consecutive pending chunks [lo, hi] of one transaction blocked
 * by one record. In the record's list (prev/next) and the txn's (tprev/
 * tnext). free: next = next free waiter. */
typedef struct sr__waiter_s {
  uint32_t txn;
  uint32_t rec;
  uint32_t lo, hi;
  uint32_t prev, next;
  uint32_t tprev, tnext;
} sr__waiter_t;

/* The translation state of a watched VA, compact: status 0 = mapped at
 * gpa by a leaf of `level`; else the error that stopped the walk at
 * `level` (and for SR_ENOTPRESENT the entry's kind). */
typedef struct sr__mstate_s {
  uint64_t gpa;
  int32_t status;
  uint8_t level;
  uint8_t kind; /* sr_pte_kind_t */
} sr__mstate_t;

enum {
  SR__MW_LIVE = 1u << 0,  /* slot in use */
  SR__MW_QUEUED = 1u << 1 /* on the engine's event queue */
};

/* A watched (cr3, va) of a monitor. In its record's list (prev/next), its
 * monitor's list (mprev/mnext) and, while an event is due, the engine's
 * event queue (eprev/enext). rep: the state last reported (by watch or by
 * an event); cur: the state the last walk found. free: next = next free.
 * Handle = gen << 32 | (index + 1); gen comes from an engine-wide counter
 * (0 when free), so a handle stays stale even after the pool was freed
 * and grown again. */
typedef struct sr__mwatch_s {
  uint32_t gen;
  uint32_t rec;
  uint32_t prev, next;
  uint32_t mprev, mnext;
  uint32_t eprev, enext;
  uint32_t flags; /* SR__MW_* */
  sr_monitor_t* mon;
  uint64_t cr3, root, va, tag;
  sr__mstate_t rep, cur;
} sr__mwatch_t;

struct sr_monitor_s {
  sr_swap_t* swap;
  sr_monitor_cb cb;
  void* data;
  uint32_t head;             /* first watch */
  uint32_t n;                /* watches */
  sr_monitor_t *prev, *next; /* the engine's monitors */
};

/* Open-addressing hash of ids (linear probing, backward-shift delete,
 * load <= 3/4). slot[i] = id + 1, 0 = empty. The key of an id is computed
 * by the owner, so only ids are stored. */
typedef struct sr__htab_s {
  uint32_t* slot;
  uint32_t mask; /* capacity - 1; capacity a power of two or 0 */
  uint32_t n;
} sr__htab_t;

typedef uint64_t (*sr__hash_fn)(const sr_swap_t* swap, uint32_t id);

/* Dense positions [pos, pos + n) whose entry GPAs step by 8 bytes. */
typedef struct sr__run_s {
  uint32_t pos, n;
} sr__run_t;

/* A local list of ended transactions (linked through txn->link). */
typedef struct sr__list_s {
  uint32_t head, tail;
} sr__list_t;

/* Test hook run between the copy of a chunk and its re-walk (white-box
 * test only; NULL in normal use). */
typedef void (*sr__copy_hook_t)(sr_swap_t* swap, void* arg, uint64_t va);

struct sr_swap_s {
  sr_image_t* image;
  sr_swap_opts_t opts;
  sr_allocator_t alloc;
  size_t mem_bytes; /* bytes currently allocated through alloc */

  /* transactions */
  sr__txn_t** blocks;
  uint32_t nblocks;
  uint32_t txn_free;           /* free slot list (through link) */
  uint32_t nlive;              /* slots not FREE */
  uint32_t age_head, age_tail; /* oldest, newest */
  uint64_t seq;

  /* deadline heap of slots */
  uint32_t* heap;
  uint32_t heap_n, heap_cap;

  /* joinable leaders by (cr3, gva, len, flags) */
  sr__htab_t join;

  /* watch index */
  sr__rec_t* rec;
  uint32_t rec_cap, rec_free;
  uint32_t* live; /* live record ids, dense */
  uint32_t nlive_rec, live_cap;
  uint64_t* sgpa; /* [pos] entry GPA of live[pos] */
  uint64_t* sval; /* [pos] its value last seen */
  uint32_t sgpa_cap, sval_cap;
  uint32_t nforced; /* live records with SR__REC_FORCE */
  sr__htab_t watch; /* (entry GPA, parent) -> record id */
  uint32_t cursor;  /* next position in live[] for the poll scan */
  sr__run_t* runs;  /* runs of consecutive entry GPAs in sgpa (scan.c) */
  uint32_t nruns, runs_cap;
  bool runs_valid; /* false once a record was created or deleted */
  sr__waiter_t* w;
  uint32_t w_cap, w_free, w_n;

  /* monitors: watched VAs hang off records like waiters */
  sr_monitor_t* monitors;
  sr__mwatch_t* mw;
  uint32_t mw_cap, mw_free, mw_n;
  uint32_t mw_seq;           /* generation of the newest watch */
  sr__htab_t mwtab;          /* (monitor, root, va) -> watch */
  uint32_t ev_head, ev_tail; /* watches with an event due (poll only) */
  uint32_t nmonitors;

  /* address-space monitors (spacemon.c): their own snapshots */
  sr_spacemon_t* spacemons;
  uint32_t nspacemons;

  unsigned depth; /* callbacks running (nesting) */
  sr_swap_stats_t st;

  sr__copy_hook_t copy_hook;
  void* copy_hook_arg;
};

/* alloc.c */
void* sr__alloc(sr_swap_t* swap, size_t size);
void* sr__realloc(sr_swap_t* swap, void* ptr, size_t old_size, size_t new_size);
void sr__free(sr_swap_t* swap, void* ptr, size_t size);
int sr__array_grow(sr_swap_t* swap, void** arr, uint32_t* cap, uint32_t need,
                   size_t elem);
extern const sr_allocator_t sr__default_allocator;

/* htab.c */
uint64_t sr__mix64(uint64_t x);
int sr__htab_reserve(sr_swap_t* swap, sr__htab_t* tab, uint32_t extra,
                     sr__hash_fn hash);
void sr__htab_insert(sr__htab_t* tab, uint64_t h, uint32_t id);
void sr__htab_remove(sr_swap_t* swap, sr__htab_t* tab, uint64_t h, uint32_t id,
                     sr__hash_fn hash);
void sr__htab_replace(sr__htab_t* tab, uint64_t h, uint32_t old_id,
                      uint32_t new_id);
void sr__htab_free(sr_swap_t* swap, sr__htab_t* tab);
/* First position to probe for h, and the next one; *id of a slot. */
static inline uint32_t sr__htab_first(const sr__htab_t* tab, uint64_t h) {
  return (uint32_t)h & tab->mask;
}

/* txn.c */
static inline sr__txn_t* sr__txn_at(const sr_swap_t* swap, uint32_t slot) {
  assert(slot / SR__TXN_BLOCK < swap->nblocks);
  return &swap->blocks[slot / SR__TXN_BLOCK][slot % SR__TXN_BLOCK];
}
bool sr__txn_check(const sr_swap_t* swap, const sr__txn_t* t);
bool sr__txn_check_deep(const sr_swap_t* swap, const sr__txn_t* t);
int sr__txn_new(sr_swap_t* swap, uint32_t nchunks, uint32_t* slot);
void sr__txn_release(sr_swap_t* swap, uint32_t slot);
uint32_t sr__txn_slot(const sr_swap_t* swap, const sr__txn_t* t);
uint64_t sr__txn_handle(const sr_swap_t* swap, uint32_t slot);
int sr__txn_lookup(const sr_swap_t* swap, sr_swap_handle_t handle,
                   uint32_t* slot);
void sr__txn_list_push(sr_swap_t* swap, sr__list_t* list, uint32_t slot);
void sr__txn_finish_one(sr_swap_t* swap, uint32_t slot, int status,
                        sr__list_t* done);
void sr__txn_finish_work(sr_swap_t* swap, uint32_t slot, int status,
                         sr__list_t* done);
int sr__txn_dispatch(sr_swap_t* swap, sr__list_t* done);
uint64_t sr__chunk_va(const sr__txn_t* t, uint32_t i, size_t* n);
uint32_t sr__chunk_of(const sr__txn_t* t, uint64_t va);
static inline bool sr__bit_get(const uint64_t* bits, uint32_t i) {
  return (bits[i / 64] >> (i % 64)) & 1;
}
static inline size_t sr__bitmap_words(uint32_t nchunks) {
  return ((size_t)nchunks + 63) / 64;
}

/* read.c: walks chunks [lo, hi] of work txn t: accepts present chunks
 * (copy, then re-walk), files the others. 0; a permanent error
 * (t->fail_gva set); or SR_ENOMEM with *stop = first chunk not handled.
 * lo_failed: the caller's sr_read_virt of chunk lo just failed, so chunk
 * lo is walked with sr_translate at once (not copied again first). */
int sr__txn_walk(sr_swap_t* swap, sr__txn_t* t, uint32_t lo, uint32_t hi,
                 uint32_t* stop, bool lo_failed);

/* scan.c: phase 1 of a poll; queues changed records on heads[level - 1]
 * and returns how many records it compared. */
uint32_t sr__scan(sr_swap_t* swap, uint32_t* heads);

/* watch.c */
int sr__watch_file(sr_swap_t* swap, sr__txn_t* t, uint32_t lo, uint32_t hi,
                   const sr_translation_t* tr, int level, bool force);
int sr__watch_path(sr_swap_t* swap, const sr_translation_t* tr, int level,
                   uint32_t* rid);
uint32_t sr__watch_find(const sr_swap_t* swap, uint64_t entry_gpa,
                        uint32_t parent);
bool sr__entry_moved(uint64_t old_value, uint64_t new_value);
void sr__rec_force(sr_swap_t* swap, uint32_t rid);
void sr__rec_unforce(sr_swap_t* swap, uint32_t rid);
static inline uint64_t sr__rec_gpa(const sr_swap_t* swap, uint32_t rid) {
  return swap->sgpa[swap->rec[rid].pos];
}
static inline uint64_t sr__rec_value(const sr_swap_t* swap, uint32_t rid) {
  return swap->sval[swap->rec[rid].pos];
}
void sr__watch_unfile_txn(sr_swap_t* swap, sr__txn_t* t);
void sr__waiter_unlink_rec(sr_swap_t* swap, uint32_t wid);
void sr__waiter_unlink_txn(sr_swap_t* swap, uint32_t wid);
void sr__waiter_link(sr_swap_t* swap, uint32_t wid, uint32_t rid,
                     uint32_t slot);
void sr__waiter_put(sr_swap_t* swap, uint32_t wid);
void sr__rec_delete_if_empty(sr_swap_t* swap, uint32_t rid);
void sr__watch_free(sr_swap_t* swap);

/* monitor.c */
void sr__mwatch_link(sr_swap_t* swap, uint32_t wid, uint32_t rid);
void sr__mwatch_rewalk(sr_swap_t* swap, uint32_t wid);
int sr__monitor_dispatch(sr_swap_t* swap);
void sr__monitor_free_all(sr_swap_t* swap);

/* spacemon.c: polls every space monitor (events delivered), returns how
 * many events; ends every one with SR_SPACEMON_CLOSED and frees it. */
int sr__spacemon_poll_all(sr_swap_t* swap);
void sr__spacemon_close_all(sr_swap_t* swap);

/* deadline.c */
int sr__heap_reserve(sr_swap_t* swap, uint32_t extra);
void sr__heap_insert(sr_swap_t* swap, uint32_t slot);
void sr__heap_remove(sr_swap_t* swap, uint32_t slot);
uint32_t sr__heap_top(const sr_swap_t* swap);
uint64_t sr__deadline(const sr_swap_t* swap, uint64_t now_ns,
                      uint64_t timeout_ns);

/* join.c */
uint64_t sr__join_hash(const sr_swap_t* swap, uint32_t slot);
uint32_t sr__join_find(const sr_swap_t* swap, uint64_t root, uint64_t gva,
                       size_t len, uint32_t rflags);
int sr__join_follow(sr_swap_t* swap, uint32_t leader, uint32_t slot);
void sr__join_detach(sr_swap_t* swap, uint32_t slot);
void sr__join_sync(sr_swap_t* swap, sr__txn_t* f, const sr__txn_t* l);
void sr__join_promote(sr_swap_t* swap, uint32_t leader);

/* cancel.c */
int sr__cancel_matching(sr_swap_t* swap, bool all, uint64_t cr3, int status);

#endif /* SR_SWAP_INTERNAL_H */
