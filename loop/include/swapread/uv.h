/* swapread — the libuv binding: swap-aware reads as requests on a loop.
 *
 * A poller handle (sr_uv_t) owns one swap engine over one image and embeds
 * a uv_timer_t that runs only while reads are pending or monitors exist:
 * an idle handle never keeps uv_run alive. Its period adapts: the minimum right after progress
 * (for fast_window_ms), then backing off (with jitter) up to the maximum,
 * and never later than the nearest deadline. Each tick it checks that the
 * address spaces with pending reads still exist (root table readable, not
 * zeroed, user half not emptied, kernel half unchanged; and an optional
 * caller probe). Requests
 * (sr_uv_read_t) are owned by the caller, libuv style: `data` first, the
 * callback gets (req, status). Single-threaded: the loop's thread only.
 */
#ifndef SWAPREAD_UV_H
#define SWAPREAD_UV_H

#include <uv.h>

#include "swapread/monitor.h"
#include "swapread/spacemon.h"
#include "swapread/swap.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sr_uv_s sr_uv_t;
typedef struct sr_uv_read_s sr_uv_read_t;

typedef void (*sr_uv_close_cb)(sr_uv_t* handle);
/* status: 0, SR_EPARTIAL, SR_ETIMEDOUT, SR_ECANCELED, SR_EGONE,
 * SR_EIMAGEGONE, or a permanent error met while waiting (SR_EHOLE, ...). */
typedef void (*sr_uv_read_cb)(sr_uv_read_t* req, int status);

/* What a probe says about an address space. */
typedef enum sr_uv_liveness_e {
  SR_UV_ALIVE = 0,
  SR_UV_GONE = 1,
  SR_UV_UNKNOWN = 2
} sr_uv_liveness_t;
typedef sr_uv_liveness_t (*sr_uv_probe_cb)(sr_uv_t* handle, uint64_t cr3,
                                           void* arg);

/* Read option flags, in addition to SR_READ_PARTIAL and SR_READ_JOIN. */
enum {
  /* Deliver even a synchronous completion through the callback, on a later
   * loop iteration (never before sr_uv_read returns). */
  SR_UV_ALWAYS_CALLBACK = 1u << 16
};

/* Defaults of sr_uv_opts_t (documented in docs/api/loop.md). */
#define SR_UV_DEFAULT_MIN_PERIOD_MS 1
#define SR_UV_DEFAULT_MAX_PERIOD_MS 100
#define SR_UV_DEFAULT_FAST_WINDOW_MS 1000
#define SR_UV_DEFAULT_RESTART_TICKS 1

typedef struct sr_uv_opts_s {
  sr_swap_opts_t swap;          /* the engine's options */
  uint64_t min_period_ms;       /* 0: default */
  uint64_t max_period_ms;       /* 0: default */
  uint64_t fast_window_ms;      /* stay at min this long after progress; 0:
                                   default */
  uint32_t restart_check_ticks; /* check address spaces every N ticks; 0:
                                   default (every tick) */
} sr_uv_opts_t;

/* The handle. `data` is the caller's; other members are read-only or
 * private. Memory may be reused only in (or after) the close callback. */
struct sr_uv_s {
  void* data;
  uv_loop_t* loop; /* read-only */
  sr_swap_t* swap; /* read-only: the engine (owned by the handle) */
  uint64_t epoch;  /* read-only: see sr_uv_invalidate */
  /* private */
  uv_timer_t timer_;
  sr_uv_close_cb close_cb_;
  uint32_t flags_;
  uint64_t min_ms_, max_ms_, fast_ms_, period_ms_, last_progress_ms_;
  uint32_t restart_ticks_, tick_;
  uint64_t rng_;
  void* spaces_; /* per-CR3 liveness records */
  size_t nspaces_, cap_spaces_;
  void* queue_[2]; /* requests owned by the handle right now */
  void* done_[2];  /* ALWAYS_CALLBACK completions waiting for a tick */
  uint64_t ticks_;
  uint64_t reads_pending_;
  uint64_t restart_checks_, spaces_gone_; /* kept in the handle so that
                                             sr_uv_stats works in close_cb */
};

/* A read request. `data` is the caller's; after the callback the public
 * members say what happened; private members are private. */
struct sr_uv_read_s {
  void* data;
  sr_uv_t* handle;         /* read-only */
  uint64_t cr3, gva;       /* read-only */
  void* buf;               /* read-only: the caller's buffer */
  size_t len;              /* read-only */
  int status;              /* read-only once completed */
  uint32_t done_flags;     /* read-only: SR_DONE_* */
  uint64_t gpa;            /* read-only: GPA of the first byte, when read */
  uint32_t kinds_seen;     /* read-only: bit (1u << sr_pte_kind_t) per kind */
  size_t nchunks;          /* read-only */
  const uint64_t* missing; /* read-only, valid during the callback only */
  /* private */
  sr_uv_read_cb cb_;
  sr_swap_handle_t swap_handle_;
  uint32_t flags_;
  uint64_t epoch_;
  void* queue_[2];
};

typedef struct sr_uv_read_opts_s {
  uint32_t flags;      /* SR_READ_PARTIAL, SR_READ_JOIN,
                          SR_UV_ALWAYS_CALLBACK */
  uint64_t timeout_ms; /* 0: the engine's default; SR_TIMEOUT_NONE: never */
} sr_uv_read_opts_t;

/* Sync. Initializes a handle on `loop` with its own engine over `image`
 * (borrowed: keep it open until the close callback or sr_uv_set_image).
 * opts NULL: defaults. Errors: SR_EINVAL, SR_ENOMEM, libuv errors. */
SR_EXTERN int sr_uv_init(uv_loop_t* loop, sr_uv_t* handle, sr_image_t* image,
                         const sr_uv_opts_t* opts);
/* Async. Ends every pending request with SR_ECANCELED, then calls close_cb
 * (may be NULL) from the loop. New reads fail with SR_EINVAL meanwhile.
 * Safe from inside a read callback. */
SR_EXTERN void sr_uv_close(sr_uv_t* handle, sr_uv_close_cb close_cb);

/* Starts a read. 0: complete now, buffer filled, no callback (unless
 * SR_UV_ALWAYS_CALLBACK: then SR_PENDING and a callback on a later
 * iteration); SR_PENDING: cb runs later from the loop; < 0: rejected, no
 * callback (SR_EINVAL, SR_ENONCANON, SR_EHOLE, SR_EBEYOND, SR_EBADENTRY,
 * SR_ENOMEM, SR_EIMAGEGONE after sr_uv_invalidate). opts may be NULL. */
SR_EXTERN int sr_uv_read(sr_uv_t* handle, sr_uv_read_t* req, uint64_t cr3,
                         uint64_t gva, void* buf, size_t len,
                         const sr_uv_read_opts_t* opts, sr_uv_read_cb cb);
/* Sync. Ends a pending request with SR_ECANCELED; its callback runs before
 * this returns. Errors: SR_EINVAL (not pending), SR_EALREADY (inside its
 * own callback). */
SR_EXTERN int sr_uv_cancel(sr_uv_read_t* req);
/* Sync. The caller saw the process of cr3 exit: every pending read of cr3
 * ends with SR_EGONE (callbacks run before this returns). Returns how
 * many. */
SR_EXTERN int sr_uv_cancel_cr3(sr_uv_t* handle, uint64_t cr3);
/* Sync. Sets (cb non-NULL) or removes the liveness probe of cr3, asked at
 * each restart check while cr3 has pending reads. Errors: SR_EINVAL,
 * SR_ENOMEM. */
SR_EXTERN int sr_uv_set_probe(sr_uv_t* handle, uint64_t cr3, sr_uv_probe_cb cb,
                              void* arg);
/* Sync. The image's session ended: every read started in an epoch <=
 * `epoch` ends with SR_EIMAGEGONE (callbacks run before this returns) and
 * new reads fail with SR_EIMAGEGONE until sr_uv_set_image. Returns how
 * many reads ended. Errors: SR_EINVAL (epoch older than the handle's). */
SR_EXTERN int sr_uv_invalidate(sr_uv_t* handle, uint64_t epoch);
/* Sync. Installs a new image for epoch `epoch` (> the invalidated one); new
 * reads work again. Errors: SR_EINVAL, SR_EBUSY (reads still pending). */
SR_EXTERN int sr_uv_set_image(sr_uv_t* handle, sr_image_t* image,
                              uint64_t epoch);

/* Sync. sr_monitor_new / sr_spacemon_new on the handle's engine; the
 * handle's timer then polls while any monitor exists (free it with
 * sr_monitor_free / sr_spacemon_free; sr_uv_close ends it with a CLOSED
 * event). Errors: as those, SR_EINVAL (closing), libuv errors. */
SR_EXTERN int sr_uv_monitor_new(sr_uv_t* handle, sr_monitor_t** out,
                                sr_monitor_cb cb, void* data);
SR_EXTERN int sr_uv_spacemon_new(sr_uv_t* handle, sr_spacemon_t** out,
                                 uint64_t cr3, const sr_spacemon_opts_t* opts,
                                 sr_spacemon_cb cb, void* data);

typedef struct sr_uv_stats_s {
  uint64_t ticks;          /* timer callbacks */
  uint64_t restart_checks; /* address-space checks made */
  uint64_t spaces_gone;    /* address spaces found gone */
  uint64_t period_ms;      /* the current period */
} sr_uv_stats_t;
/* Sync. The handle's counters (the engine's: sr_swap_stats(h->swap)). */
SR_EXTERN void sr_uv_stats(const sr_uv_t* handle, sr_uv_stats_t* out);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_UV_H */
