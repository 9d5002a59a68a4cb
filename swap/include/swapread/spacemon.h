/* swapread — address-space monitors: changes to any leaf of a CR3.
 *
 * A space monitor (sr_spacemon_t) belongs to a swap engine and watches a
 * whole address space, or a [lo, hi) range of it, for leaf changes: a page
 * mapped, unmapped, or changed in one of the monitored bits (present,
 * writable, user, NX, frame; accessed and dirty off by default). It keeps
 * a snapshot of every page-table page it reached; each sr_swap_poll
 * compares each snapshot with the table in the image (one memcmp of 4 KiB
 * for a table that did not change) and descends only where a parent entry
 * changed, so a change at a higher level is diffed against the old
 * subtree before anything under it is looked at. A poll may be given a
 * budget of tables and resumes where it stopped. The read-only, polling
 * counterpart of introcore's VA-space monitor. Not thread-safe.
 */
#ifndef SWAPREAD_SPACEMON_H
#define SWAPREAD_SPACEMON_H

#include "swapread/translate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sr_swap_s sr_swap_t;
typedef struct sr_spacemon_s sr_spacemon_t;

/* Monitored bits (input, opts.bits) and the bits that changed (output,
 * ev->bits). */
enum {
  SR_SPACEMON_PRESENT = 1u << 0,  /* mapped <-> unmapped */
  SR_SPACEMON_WRITABLE = 1u << 1, /* effective (every level) */
  SR_SPACEMON_USER = 1u << 2,     /* effective (every level) */
  SR_SPACEMON_NX = 1u << 3,       /* effective (any level) */
  SR_SPACEMON_FRAME = 1u << 4,    /* the GPA the VA maps to */
  SR_SPACEMON_ACCESSED = 1u << 5, /* the leaf's A bit */
  SR_SPACEMON_DIRTY = 1u << 6,    /* the leaf's D bit */
  SR_SPACEMON_SWAP = 1u << 7      /* an unmapped entry's value (swap slot) */
};
#define SR_SPACEMON_DEFAULT_BITS                                   \
  (SR_SPACEMON_PRESENT | SR_SPACEMON_WRITABLE | SR_SPACEMON_USER | \
   SR_SPACEMON_NX | SR_SPACEMON_FRAME)
#define SR_SPACEMON_DEFAULT_MAX_TABLES 16384u

typedef struct sr_spacemon_opts_s {
  uint64_t lo, hi;     /* canonical [lo, hi); hi 0: to the top; both 0: all */
  uint32_t bits;       /* SR_SPACEMON_*; 0: SR_SPACEMON_DEFAULT_BITS */
  uint32_t budget;     /* tables compared per poll; 0: no limit */
  uint32_t max_tables; /* snapshots kept; 0: SR_SPACEMON_DEFAULT_MAX_TABLES */
} sr_spacemon_opts_t;

typedef enum sr_spacemon_event_kind_e {
  SR_SPACEMON_MAPPED = 1,    /* was unmapped, now mapped */
  SR_SPACEMON_UNMAPPED = 2,  /* was mapped, now not */
  SR_SPACEMON_CHANGED = 3,   /* monitored bits other than present changed */
  SR_SPACEMON_REUSED = 4,    /* a changed entry now points at a table that
                                the snapshot had elsewhere: the events under
                                it compare with what was at this place, and
                                what happened in between is unknown */
  SR_SPACEMON_UNTRACKED = 5, /* [va, va + size) has no snapshot (max_tables
                                or out of memory): its changes are not
                                reported until one can be taken */
  SR_SPACEMON_CLOSED = 6     /* the engine freed the monitor (sr_swap_free,
                                sr_uv_close): the last event */
} sr_spacemon_event_kind_t;

/* One side of a change. A mapped side has a leaf: its entry, level, the
 * GPA of va and the effective protection. An unmapped side has the entry
 * that stops the walk (not present or bad; a table entry whose table is
 * not in the image), or level 0 when the root itself cannot be read. */
typedef struct sr_spacemon_leaf_s {
  bool mapped;
  int level;      /* of entry */
  uint64_t entry; /* raw */
  uint64_t gpa;   /* mapped: GPA of va */
  uint32_t prot;  /* mapped: SR_PROT_* accumulated */
} sr_spacemon_leaf_t;

typedef struct sr_spacemon_event_s {
  sr_spacemon_event_kind_t kind;
  uint64_t cr3;           /* as given to sr_spacemon_new */
  uint64_t va, size;      /* the leaf (the finer of the two sides) */
  uint32_t bits;          /* SR_SPACEMON_* that differ (monitored ones) */
  sr_spacemon_leaf_t old; /* MAPPED / UNMAPPED / CHANGED */
  sr_spacemon_leaf_t now; /* MAPPED / UNMAPPED / CHANGED */
  uint64_t table_gpa;     /* REUSED / UNTRACKED: the table concerned */
  int table_level;        /* REUSED: level of its entries here */
  int was_level;          /* REUSED: ... and in the snapshot */
  uint64_t was_va;        /* REUSED: the VA it mapped in the snapshot */
} sr_spacemon_event_t;

/* Runs from sr_swap_poll (and CLOSED from sr_swap_free), never inside
 * sr_spacemon_new. Any engine or monitor function may be called from it
 * except sr_swap_poll, sr_swap_free and sr_spacemon_free (SR_EBUSY). */
typedef void (*sr_spacemon_cb)(sr_spacemon_t* sm, const sr_spacemon_event_t* ev,
                               void* data);

/* Sync. Starts monitoring cr3 (or SR_CR3_KERNEL): takes the first
 * snapshot now (no events; sr_regions tells the state it starts from).
 * Memory through the engine's allocator. Errors: SR_EINVAL, SR_ENONCANON
 * (lo / hi), SR_EHOLE / SR_EBEYOND (root not in the image), SR_ENOMEM. */
SR_EXTERN int sr_spacemon_new(sr_spacemon_t** out, sr_swap_t* swap,
                              uint64_t cr3, const sr_spacemon_opts_t* opts,
                              sr_spacemon_cb cb, void* data);
/* Sync. Frees the monitor and its snapshots (no event). NULL is allowed.
 * Errors: SR_EBUSY (from inside a callback). */
SR_EXTERN int sr_spacemon_free(sr_spacemon_t* sm);

typedef struct sr_spacemon_stats_s {
  uint64_t tables;          /* snapshots held now */
  uint64_t bytes;           /* heap held now (snapshots and indexes) */
  uint64_t untracked;       /* tables without a snapshot now */
  uint64_t polls;           /* polls that looked at this monitor */
  uint64_t passes;          /* complete passes over the range */
  uint64_t tables_compared; /* memcmp of a snapshot with the image */
  uint64_t tables_changed;  /* ... that found a difference */
  uint64_t events;          /* delivered */
  uint64_t reused;          /* REUSED events */
} sr_spacemon_stats_t;

/* Sync. Counters; the engine of a monitor. */
SR_EXTERN void sr_spacemon_stats(const sr_spacemon_t* sm,
                                 sr_spacemon_stats_t* out);
SR_EXTERN sr_swap_t* sr_spacemon_swap(const sr_spacemon_t* sm);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_SPACEMON_H */
