/* swapread CLI — the waiting read (see wait.h): one sr_uv_read on a
 * private loop, with progress and an optional SIGINT cancel.
 *
 * The loop holds the binding's handle, an unreferenced progress timer and
 * an unreferenced SIGINT watcher: only the binding's own timer (running
 * while the read is pending) keeps uv_run going, so uv_run returning with
 * the read still pending is a bug of the binding, reported as such. The
 * read uses SR_READ_PARTIAL, so at the deadline the bytes that did arrive
 * are kept and the missing chunks are zero-filled and listed. Progress
 * counts come from the engine's counters (sr_swap_stats): this is the only
 * read on its engine, so the engine's pending chunks are the read's.
 */
#include "wait.h"

#include <assert.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "swapread/read.h"
#include "swapread/uv.h"

#define TTY_PERIOD_MS 100  /* at most ~10 refreshes a second */
#define LINES_PERIOD_MS 20 /* how often LINES mode looks for a change */

typedef struct waiter_s {
  cli_wait_t* w;
  sr_image_t* image;
  uv_loop_t loop;
  sr_uv_t handle;
  sr_uv_read_t req;
  uv_timer_t progress;
  uv_signal_t sigint;
  bool have_progress;
  bool have_sigint;
  bool done;            /* the read's callback ran */
  uint64_t t0_ms;       /* uv_now() when the read started */
  size_t shown_pending; /* LINES: the count last printed */
  bool shown;           /* LINES: something was printed */
} waiter_t;

const char* cli_wait_strerror(int err) {
  if (strcmp(sr_err_name(err), "UNKNOWN") == 0) /* not ours: libuv's */
    return uv_strerror(err);
  return sr_strerror(err);
}

bool cli_wait_chunk_missing(const cli_wait_t* w, size_t i) {
  assert(i < w->nchunks);
  if (w->missing == NULL)
    return false;
  return (w->missing[i / 64] >> (i % 64)) & 1;
}

void cli_wait_free(cli_wait_t* w) {
  free(w->buf);
  free(w->missing);
  w->buf = NULL;
  w->missing = NULL;
}

/* Milliseconds since the read started, on the loop's clock (the one the
 * binding measures the deadline with, so a read that timed out after T
 * says it waited at least T). */
static uint64_t elapsed_ms(waiter_t* wt) {
  uv_update_time(&wt->loop);
  return uv_now(&wt->loop) - wt->t0_ms;
}

/* Chunks still pending: the engine's count while the read runs, the
 * bitmap's once it ended. */
static size_t pending_now(const waiter_t* wt) {
  sr_swap_stats_t st;
  if (wt->done)
    return wt->w->nmissing;
  sr_swap_stats(wt->handle.swap, &st);
  return (size_t)st.pending_chunks;
}

/* Writes the progress text (no line end) for `pending` chunks. */
static void progress_text(waiter_t* wt, size_t pending) {
  const cli_wait_t* w = wt->w;
  uint64_t ms = elapsed_ms(wt);
  size_t arrived =
      w->pending_at_start > pending ? w->pending_at_start - pending : 0;

  if (w->progress_prefix != NULL)
    fputs(w->progress_prefix, w->progress_out);
  else
    fprintf(w->progress_out, "swapread: %s: ", w->label);
  fprintf(w->progress_out,
          "%zu/%zu chunks present, %zu pending, %zu arrived, %" PRIu64
          ".%01" PRIu64 "s",
          w->nchunks - pending, w->nchunks, pending, arrived, ms / 1000,
          ms % 1000 / 100);
}

static void progress_show(waiter_t* wt) {
  const cli_wait_t* w = wt->w;
  size_t pending = pending_now(wt);

  if (w->progress == CLI_PROGRESS_TTY) {
    fputc('\r', w->progress_out);
    progress_text(wt, pending);
    fputs("\033[K", w->progress_out); /* erase what a longer line left */
  } else if (w->progress == CLI_PROGRESS_LINES) {
    if (wt->shown && pending == wt->shown_pending)
      return;
    progress_text(wt, pending);
    fputc('\n', w->progress_out);
    wt->shown = true;
    wt->shown_pending = pending;
  }
  fflush(w->progress_out);
}

static void on_progress(uv_timer_t* timer) {
  progress_show(timer->data);
}

/* The last progress line: the state at the end, then a newline. */
static void progress_finish(waiter_t* wt) {
  const cli_wait_t* w = wt->w;
  if (w->progress == CLI_PROGRESS_NONE)
    return;
  if (w->progress == CLI_PROGRESS_TTY) {
    fputc('\r', w->progress_out);
    progress_text(wt, pending_now(wt));
    fputs("\033[K\n", w->progress_out);
  } else {
    progress_show(wt);
  }
  fflush(w->progress_out);
}

static void on_sigint(uv_signal_t* sig, int signum) {
  waiter_t* wt = sig->data;
  (void)signum;
  wt->w->interrupted = true;
  if (!wt->done)
    sr_uv_cancel(&wt->req); /* the callback runs before this returns */
}

/* Copies the engine's bitmap (valid during the callback only). */
static void take_missing(waiter_t* wt, const sr_uv_read_t* req) {
  cli_wait_t* w = wt->w;
  size_t nwords = (w->nchunks + 63) / 64;
  size_t i;

  if (req->missing == NULL)
    return;
  w->missing = calloc(nwords, sizeof(*w->missing));
  if (w->missing == NULL)
    return; /* reported by the caller as "no bitmap" */
  memcpy(w->missing, req->missing, nwords * sizeof(*w->missing));
  if (w->nchunks % 64 != 0)
    w->missing[nwords - 1] &= (UINT64_C(1) << (w->nchunks % 64)) - 1;
  for (i = 0; i < w->nchunks; i++)
    w->nmissing += cli_wait_chunk_missing(w, i);
}

static void on_read(sr_uv_read_t* req, int status) {
  waiter_t* wt = req->data;
  cli_wait_t* w = wt->w;

  assert(!wt->done);
  w->status = status;
  w->waited_ms = elapsed_ms(wt);
  if (req->nchunks != w->nchunks) {
    fprintf(stderr,
            "swapread: %s: the binding reported %zu chunks, expected %zu\n",
            w->label, req->nchunks, w->nchunks);
  } else if (status != 0) {
    take_missing(wt, req);
  }
  wt->done = true;
  if (wt->have_progress) {
    progress_finish(wt);
    uv_timer_stop(&wt->progress);
  }
}

static void report_open_handle(uv_handle_t* h, void* arg) {
  (void)arg;
  fprintf(stderr, "swapread: loop: a %s handle is still open\n",
          uv_handle_type_name(uv_handle_get_type(h)));
}

/* Starts the progress timer and the SIGINT watcher (both unreferenced). */
static int start_watchers(waiter_t* wt) {
  cli_wait_t* w = wt->w;
  int err;

  if (w->progress != CLI_PROGRESS_NONE) {
    uint64_t period =
        w->progress == CLI_PROGRESS_TTY ? TTY_PERIOD_MS : LINES_PERIOD_MS;
    if ((err = uv_timer_init(&wt->loop, &wt->progress)) != 0)
      return err;
    wt->have_progress = true;
    wt->progress.data = wt;
    uv_unref((uv_handle_t*)&wt->progress);
    if ((err = uv_timer_start(&wt->progress, on_progress, period, period)) != 0)
      return err;
    progress_show(wt);
  }
  if (w->interruptible) {
    if ((err = uv_signal_init(&wt->loop, &wt->sigint)) != 0)
      return err;
    wt->have_sigint = true;
    wt->sigint.data = wt;
    uv_unref((uv_handle_t*)&wt->sigint);
    if ((err = uv_signal_start(&wt->sigint, on_sigint, SIGINT)) != 0)
      return err;
  }
  return 0;
}

/* --alive: the caller's canary decides whether the address space lives. */
static sr_uv_liveness_t alive_probe(sr_uv_t* h, uint64_t cr3, void* arg) {
  waiter_t* wt = arg;
  uint64_t v;

  (void)h;
  if (sr_read_virt(wt->image, cr3, &wt->w->walk, wt->w->alive_va, &v, sizeof(v),
                   NULL) != 0)
    return SR_UV_UNKNOWN; /* swapped out, say: keep waiting */
  return v == wt->w->alive_value ? SR_UV_ALIVE : SR_UV_GONE;
}

int cli_wait_read(cli_wait_t* w, sr_image_t* image) {
  waiter_t wt;
  sr_uv_opts_t opts;
  sr_uv_read_opts_t ropts;
  sr_swap_stats_t st;
  int err;

  assert(w->len > 0 && w->timeout_ms > 0 && w->label != NULL);
  w->start = 0;
  w->status = 0;
  w->missing = NULL;
  w->nmissing = 0;
  w->pending_at_start = 0;
  w->waited_ms = 0;
  w->interrupted = false;
  w->nchunks = (size_t)(((w->va + (w->len - 1)) >> 12) - (w->va >> 12) + 1);
  w->buf = w->len <= SIZE_MAX ? calloc(1, (size_t)w->len) : NULL;
  if (w->buf == NULL)
    return SR_ENOMEM;

  memset(&wt, 0, sizeof(wt));
  wt.w = w;
  wt.image = image;
  if ((err = uv_loop_init(&wt.loop)) != 0)
    return err;
  memset(&opts, 0, sizeof(opts));
  opts.swap.walk = w->walk;
  if ((err = sr_uv_init(&wt.loop, &wt.handle, image, &opts)) != 0) {
    uv_loop_close(&wt.loop);
    return err;
  }

  if (w->alive &&
      (err = sr_uv_set_probe(&wt.handle, w->cr3, alive_probe, &wt)) != 0) {
    sr_uv_close(&wt.handle, NULL);
    uv_run(&wt.loop, UV_RUN_DEFAULT);
    uv_loop_close(&wt.loop);
    return err;
  }
  memset(&ropts, 0, sizeof(ropts));
  ropts.flags = SR_READ_PARTIAL;
  ropts.timeout_ms = w->timeout_ms;
  wt.req.data = &wt;
  uv_update_time(&wt.loop); /* the deadline counts from a fresh "now" */
  wt.t0_ms = uv_now(&wt.loop);
  w->start = sr_uv_read(&wt.handle, &wt.req, w->cr3, w->va, w->buf,
                        (size_t)w->len, &ropts, on_read);
  err = 0;
  if (w->start == SR_PENDING) {
    sr_swap_stats(wt.handle.swap, &st);
    w->pending_at_start = (size_t)st.pending_chunks;
    if (w->on_pending != NULL)
      w->on_pending(w);
    if ((err = start_watchers(&wt)) != 0) {
      sr_uv_cancel(&wt.req);
    } else {
      uv_run(&wt.loop, UV_RUN_DEFAULT);
      if (!wt.done) {
        fprintf(stderr,
                "swapread: %s: uv_run returned with the read pending "
                "(binding bug); cancelling it\n",
                w->label);
        sr_uv_cancel(&wt.req);
      }
    }
  } else {
    w->status = w->start; /* 0: complete at once; < 0: rejected */
  }

  if (wt.have_progress)
    uv_close((uv_handle_t*)&wt.progress, NULL);
  if (wt.have_sigint)
    uv_close((uv_handle_t*)&wt.sigint, NULL);
  sr_uv_close(&wt.handle, NULL);
  uv_run(&wt.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&wt.loop) != 0) {
    uv_walk(&wt.loop, report_open_handle, NULL);
    fprintf(stderr, "swapread: %s: the loop did not close\n", w->label);
  }
  return err;
}
