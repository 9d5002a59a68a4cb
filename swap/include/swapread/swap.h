/* swapread — the swap engine: reads that wait for paged-out pages.
 *
 * An engine (sr_swap_t) serves reads of guest virtual memory over one image.
 * A read whose chunks (4 KiB pieces of the range) are all present completes
 * at once; otherwise it stays pending, and each sr_swap_poll re-reads the
 * paging-structure entries that block it (grouped in a watch index, so an
 * idle poll costs one load per distinct blocking entry) and completes it
 * when the guest has paged the data back in, at its deadline, or when it is
 * cancelled. The engine knows nothing of event loops or clocks: the caller
 * passes the time and decides when to poll. Not thread-safe: one engine is
 * used from one thread.
 */
#ifndef SWAPREAD_SWAP_H
#define SWAPREAD_SWAP_H

#include "swapread/translate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sr_swap_s sr_swap_t;

/* All engine heap memory goes through this hook (sizes are passed back so a
 * counting allocator can account bytes). alloc/realloc return NULL on
 * failure. */
typedef struct sr_allocator_s {
  void* (*alloc)(void* ctx, size_t size);
  void* (*realloc)(void* ctx, void* ptr, size_t old_size, size_t new_size);
  void (*free)(void* ctx, void* ptr, size_t size);
  void* ctx;
} sr_allocator_t;

/* A CR3 value meaning "the kernel address space" (opts.kernel_cr3). */
#define SR_CR3_KERNEL UINT64_MAX
/* A timeout meaning "never". */
#define SR_TIMEOUT_NONE UINT64_MAX

typedef struct sr_swap_opts_s {
  sr_walk_opts_t walk;             /* paging mode, OS, resident reads */
  uint64_t kernel_cr3;             /* what SR_CR3_KERNEL means; 0: none */
  uint32_t poll_budget;            /* entries re-read per poll; 0: no limit */
  uint64_t default_timeout_ns;     /* when a read gives 0; 0: no deadline */
  const sr_allocator_t* allocator; /* NULL: malloc/realloc/free */
} sr_swap_opts_t;

/* Read option flags (input). */
enum {
  /* At the deadline, complete with what is there: status SR_EPARTIAL,
   * missing chunks zero-filled and listed in done->missing. */
  SR_READ_PARTIAL = 1u << 0,
  /* Join an identical pending read (same cr3, gva, len, flags) instead of
   * walking and watching twice; each caller still gets its own callback
   * and its own buffer. */
  SR_READ_JOIN = 1u << 1
};

/* Completion flags (output). */
enum {
  SR_DONE_ASYNC = 1u << 0,   /* completed from a poll (always, for a cb) */
  SR_DONE_NX = 1u << 1,      /* some leaf of the range had NX */
  SR_DONE_PARTIAL = 1u << 2, /* missing chunks zero-filled, see missing */
  SR_DONE_RESIDENT = 1u << 3 /* some chunk read through SR_WALK_RESIDENT */
};

/* A pending read. Generation-checked: a stale handle is an error, never a
 * use of freed memory. id 0 is never a valid handle. */
typedef struct sr_swap_handle_s {
  uint64_t id;
} sr_swap_handle_t;

typedef struct sr_swap_req_s {
  uint64_t cr3; /* or SR_CR3_KERNEL */
  uint64_t gva;
  void* buf; /* caller's, len bytes, valid until completion */
  size_t len;
  uint32_t flags;      /* SR_READ_* */
  uint64_t timeout_ns; /* 0: engine default; SR_TIMEOUT_NONE: never */
} sr_swap_req_t;

/* What a completion (or a synchronous return) reports. */
typedef struct sr_swap_done_s {
  int status;     /* 0, SR_EPARTIAL, SR_ETIMEDOUT, SR_ECANCELED,
                     SR_EGONE, SR_EIMAGEGONE, or the permanent error
                     (SR_EHOLE, SR_EBEYOND, SR_EBADENTRY) met later */
  uint32_t flags; /* SR_DONE_* */
  uint64_t cr3, gva;
  void* buf;
  size_t len;
  uint64_t gpa;            /* GPA of the first byte, when it was read */
  uint32_t kinds_seen;     /* bit (1u << sr_pte_kind_t) per kind met waiting */
  size_t nchunks;          /* chunks of the range */
  const uint64_t* missing; /* PARTIAL/ETIMEDOUT: bit i = chunk i missing;
                              valid during the callback only */
  uint64_t fail_gva;       /* rejected read: the address that failed */
} sr_swap_done_t;

/* Runs exactly once per pending read, from sr_swap_poll or a cancel, never
 * inside the sr_swap_read that started it. Any engine function may be
 * called from it. */
typedef void (*sr_swap_cb)(sr_swap_t* swap, const sr_swap_done_t* done,
                           void* data);
/* Runs exactly once for `data` after the read ends, callback or not. */
typedef void (*sr_swap_dtor)(void* data);

/* Sync. Creates an engine over `image` (borrowed: keep it open while the
 * engine uses it). Errors: SR_EINVAL, SR_ENOMEM. */
SR_EXTERN int sr_swap_new(sr_swap_t** out, sr_image_t* image,
                          const sr_swap_opts_t* opts);
/* Sync. Ends every pending read with SR_ECANCELED and every monitor with
 * a CLOSED event (callbacks run), then frees the engine. NULL is allowed.
 * Not from inside a callback. */
SR_EXTERN void sr_swap_free(sr_swap_t* swap);

/* Starts a read at time now_ns. Returns 0: complete, buffer filled, no
 * callback (*sync, if given, says gpa/flags); SR_PENDING: present chunks
 * copied, cb will run exactly once (*handle set); < 0: rejected (SR_EINVAL,
 * SR_ENONCANON, SR_EHOLE, SR_EBEYOND, SR_EBADENTRY, SR_ENOMEM), nothing
 * queued, no callback, dtor not run. */
SR_EXTERN int sr_swap_read(sr_swap_t* swap, const sr_swap_req_t* req,
                           uint64_t now_ns, sr_swap_cb cb, void* data,
                           sr_swap_dtor dtor, sr_swap_handle_t* handle,
                           sr_swap_done_t* sync);

/* Sync. Re-reads watched entries (at most the budget, resuming where the
 * last poll stopped), copies what came back, and completes what is done or
 * due, running callbacks. Returns the number of reads completed, or
 * SR_EINVAL, SR_EBUSY (called from a callback). *next_ns (may be NULL): the
 * nearest deadline, or SR_TIMEOUT_NONE. */
SR_EXTERN int sr_swap_poll(sr_swap_t* swap, uint64_t now_ns, uint64_t* next_ns);

/* Sync. Ends one pending read with SR_ECANCELED (its callback runs now,
 * unless it is being completed by the poll that called us: then it is
 * dropped before its callback and its dtor runs). Errors: SR_ESTALE
 * (unknown, stale or ended handle), SR_EALREADY (from its own callback). */
SR_EXTERN int sr_swap_cancel(sr_swap_t* swap, sr_swap_handle_t handle);
/* Sync. Ends every pending read of cr3 with `status` (SR_ECANCELED or
 * SR_EGONE). Returns how many, or SR_EINVAL. */
SR_EXTERN int sr_swap_cancel_cr3(sr_swap_t* swap, uint64_t cr3, int status);
/* Sync. Ends every pending read with `status` (SR_ECANCELED or
 * SR_EIMAGEGONE). Returns how many, or SR_EINVAL. */
SR_EXTERN int sr_swap_cancel_all(sr_swap_t* swap, int status);
/* Sync. Replaces the image (after an epoch change); pending reads must
 * have been ended and monitors freed (or emptied) first. Errors:
 * SR_EINVAL, SR_EBUSY (reads pending or VAs watched). */
SR_EXTERN int sr_swap_set_image(sr_swap_t* swap, sr_image_t* image);

typedef struct sr_swap_stats_s {
  uint64_t reads; /* accepted by sr_swap_read (0 or PENDING) */
  uint64_t rejected;
  uint64_t sync_completions;
  uint64_t joined;
  uint64_t pending;         /* now */
  uint64_t pending_chunks;  /* now */
  uint64_t watched_entries; /* now */
  uint64_t polls;
  uint64_t entries_reread;
  uint64_t chunks_copied;
  uint64_t chunks_rejected; /* translation changed during the copy */
  uint64_t done_ok, done_partial, done_timedout, done_cancelled, done_gone,
      done_imagegone, done_failed;
  uint64_t monitor_watches; /* now: watched VAs of all monitors */
  uint64_t monitor_events;  /* delivered (VA and space monitors) */
  uint64_t monitors;        /* now: VA monitors (sr_monitor_t) */
  uint64_t spacemons;       /* now: space monitors (sr_spacemon_t) */
} sr_swap_stats_t;

/* Sync. Counters since sr_swap_new. */
SR_EXTERN void sr_swap_stats(const sr_swap_t* swap, sr_swap_stats_t* out);

typedef struct sr_swap_txn_info_s {
  sr_swap_handle_t handle;
  uint64_t cr3, gva;
  size_t len, nchunks, pending_chunks;
  uint64_t age_ns;
  uint64_t deadline_ns; /* SR_TIMEOUT_NONE if none */
  int block_level;      /* of the first pending chunk's blocker */
  uint64_t block_entry_gpa, block_entry;
  sr_pte_kind_t block_kind;
} sr_swap_txn_info_t;

/* Sync. Calls cb for each live transaction (oldest first); a non-zero
 * return stops and is returned. */
SR_EXTERN int sr_swap_dump(const sr_swap_t* swap, uint64_t now_ns,
                           int (*cb)(const sr_swap_txn_info_t* info, void* arg),
                           void* arg);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_SWAP_H */
