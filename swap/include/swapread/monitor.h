/* swapread — VA monitors: page-in / page-out / remap events for watched
 * addresses.
 *
 * A monitor (sr_monitor_t) belongs to a swap engine and watches a set of
 * (CR3, VA) pairs, each with a caller's tag. It reports the translation
 * of a VA once when watching starts (synchronously, through *state), and
 * afterwards one event from sr_swap_poll each time the translation differs
 * from the one last reported: PAGE_IN (unmapped -> mapped), PAGE_OUT
 * (mapped -> unmapped) or REMAPPED (mapped elsewhere, or with another page
 * size). Watched VAs live in the engine's watch index, next to the entries
 * that pending reads wait on (shared, not duplicated), so an idle poll
 * costs one 8-byte load per distinct entry whatever watches it. A change
 * at a higher level re-walks every VA under it before lower levels are
 * looked at: each VA gets at most one event per poll, computed from the
 * entries as they are after the change. Not thread-safe (the engine's
 * thread).
 */
#ifndef SWAPREAD_MONITOR_H
#define SWAPREAD_MONITOR_H

#include "swapread/translate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sr_swap_s sr_swap_t;
typedef struct sr_monitor_s sr_monitor_t;

/* A watched VA. Generation-checked: a stale handle is an error, never a
 * use of freed memory. id 0 is never a valid handle. */
typedef struct sr_monitor_handle_s {
  uint64_t id;
} sr_monitor_handle_t;

/* The translation of a watched VA. */
typedef struct sr_monitor_state_s {
  int status;             /* 0: mapped; else why not: SR_ENOTPRESENT,
                             SR_EBADENTRY, SR_EHOLE, SR_EBEYOND */
  uint64_t gpa;           /* status 0: GPA of the VA's byte */
  uint64_t page_size;     /* status 0: SR_PAGE_4K / 2M / 1G; else 0 */
  int level;              /* status 0: the leaf's level; else the level of the
                             entry (or table) that stopped the walk */
  sr_pte_kind_t pte_kind; /* SR_ENOTPRESENT: kind of that entry */
} sr_monitor_state_t;

typedef enum sr_monitor_event_kind_e {
  SR_MONITOR_PAGE_IN = 1,  /* old unmapped, now mapped */
  SR_MONITOR_PAGE_OUT = 2, /* old mapped, now unmapped */
  SR_MONITOR_REMAPPED = 3, /* both mapped: other GPA or page size */
  SR_MONITOR_CLOSED = 4    /* the engine freed the monitor (sr_swap_free,
                              sr_uv_close): the last event, no handle */
} sr_monitor_event_kind_t;

typedef struct sr_monitor_event_s {
  sr_monitor_event_kind_t kind;
  sr_monitor_handle_t handle;
  uint64_t tag;
  uint64_t cr3, va;       /* as given to sr_monitor_watch */
  sr_monitor_state_t old; /* as last reported */
  sr_monitor_state_t now; /* as the poll found it */
} sr_monitor_event_t;

/* Runs from sr_swap_poll (CLOSED: from sr_swap_free), never inside the
 * call that started a watch. Any engine or monitor function may be called from it except
 * sr_swap_poll (SR_EBUSY), sr_swap_free and sr_monitor_free. */
typedef void (*sr_monitor_cb)(sr_monitor_t* mon, const sr_monitor_event_t* ev,
                              void* data);

/* Sync. Creates a monitor on `swap` (memory through the engine's
 * allocator). Errors: SR_EINVAL, SR_ENOMEM. */
SR_EXTERN int sr_monitor_new(sr_monitor_t** out, sr_swap_t* swap,
                             sr_monitor_cb cb, void* data);
/* Sync. Unwatches everything (no events) and frees the monitor. NULL is
 * allowed (0). Errors: SR_EBUSY (from inside a callback). */
SR_EXTERN int sr_monitor_free(sr_monitor_t* mon);

/* Sync. Watches va under cr3 (or SR_CR3_KERNEL) with tag; *state (may be
 * NULL) gets the current translation: the initial report, once. Watching
 * a (cr3, va) the monitor watches already resets that watch (same handle,
 * new tag, its due event dropped, state reported anew). Errors:
 * SR_EINVAL, SR_ENONCANON, SR_EHOLE / SR_EBEYOND (the root table cannot
 * be read), SR_ENOMEM. */
SR_EXTERN int sr_monitor_watch(sr_monitor_t* mon, uint64_t cr3, uint64_t va,
                               uint64_t tag, sr_monitor_handle_t* handle,
                               sr_monitor_state_t* state);
/* Sync, O(levels). Stops watching: no event for it is delivered after
 * this returns, even one due in the running poll. Errors: SR_EINVAL,
 * SR_ESTALE (unknown or unwatched handle, or another monitor's). */
SR_EXTERN int sr_monitor_unwatch(sr_monitor_t* mon, sr_monitor_handle_t handle);

/* Sync. The engine, and the number of watched VAs. */
SR_EXTERN sr_swap_t* sr_monitor_swap(const sr_monitor_t* mon);
SR_EXTERN size_t sr_monitor_count(const sr_monitor_t* mon);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_MONITOR_H */
