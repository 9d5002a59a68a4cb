/* The poller handle: init, close, the timer, its period, the tick.
 *
 * A handle owns one engine and embeds one uv_timer_t, like libuv's
 * fs-poll is a timer with a job. The timer runs only while something is
 * pending (reads in the engine, SR_UV_ALWAYS_CALLBACK completions
 * waiting for delivery, or monitors on the engine: uv_monitor.c) and is
 * stopped as soon as nothing is, so an idle
 * handle never keeps uv_run alive. Each tick: deliver the completions
 * queued before it, check the address spaces (every restart_ticks_ ticks),
 * poll the engine at uv_now() (the engine's clock is uv_now * 1e6 ns
 * everywhere in loop/), then re-arm. The period is the minimum after
 * progress (a poll that completed a read, copied a chunk or delivered a
 * monitor event) and for
 * fast_ms_ after it; then it grows by half (at least 1 ms) per idle tick up
 * to the maximum. A new pending read restarts that growth from the minimum
 * (its first re-check comes soon) but is not progress: it does not open the
 * fast window, so starting many reads at once costs a dozen ticks, not a
 * second of them. The sleep is the period with +-10% jitter (xorshift64),
 * clamped to [min, max], and never past the engine's nearest deadline. Limits:
 * timing is in loop milliseconds (uv_now), so a deadline fires up to 1 ms late
 * plus the loop's own delay; a completion queued from inside a tick is
 * delivered >= 1 ms later (libuv 1.44 would re-run a 0 ms timer in the same
 * pass); the handle must not move in memory after sr_uv_init (its queues point
 * to themselves).
 */
#include <stdlib.h>
#include <string.h>

#include "uv_internal.h"

#define NS_PER_MS UINT64_C(1000000)
#define NO_PROGRESS UINT64_MAX /* last_progress_ms_ before the first */

static void* default_alloc(void* ctx, size_t size) {
  (void)ctx;
  return malloc(size);
}

static void* default_realloc(void* ctx, void* p, size_t old_size,
                             size_t new_size) {
  (void)ctx;
  (void)old_size;
  return realloc(p, new_size);
}

static void default_free(void* ctx, void* p, size_t size) {
  (void)ctx;
  (void)size;
  free(p);
}

void* sr__uv_alloc(sr_uv_t* h, size_t size) {
  sr__uv_state_t* st = sr__uv_state(h);

  return st->alloc.alloc(st->alloc.ctx, size);
}

void* sr__uv_realloc(sr_uv_t* h, void* p, size_t old_size, size_t new_size) {
  sr__uv_state_t* st = sr__uv_state(h);

  return st->alloc.realloc(st->alloc.ctx, p, old_size, new_size);
}

void sr__uv_free(sr_uv_t* h, void* p, size_t size) {
  sr__uv_state_t* st = sr__uv_state(h);

  if (p != NULL)
    st->alloc.free(st->alloc.ctx, p, size);
}

static sr_uv_t* timer_handle(uv_timer_t* timer) {
  return (sr_uv_t*)(void*)((char*)timer - offsetof(sr_uv_t, timer_));
}

static uint64_t rng_next(uint64_t* s) {
  uint64_t x = *s;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

/* Whether the engine has monitors (VA or space) for the timer to poll. */
static bool has_monitors(const sr_uv_t* h) {
  sr_swap_stats_t st;

  sr_swap_stats(h->swap, &st);
  return st.monitors > 0 || st.spacemons > 0;
}

static bool has_work(const sr_uv_t* h) {
  return h->reads_pending_ > 0 || !sr__uvq_empty(h->done_) ||
         has_monitors(h);
}

/* The next period after a tick at `now` (progress: the tick made some).
 * Sets h->period_ms_ (the base, without jitter) and returns the sleep. */
static uint64_t next_sleep(sr_uv_t* h, uint64_t now, bool progress) {
  uint64_t base = h->period_ms_;
  uint64_t span, sleep;

  if (progress) {
    h->last_progress_ms_ = now;
    base = h->min_ms_;
  } else if (h->last_progress_ms_ != NO_PROGRESS &&
             now - h->last_progress_ms_ < h->fast_ms_) {
    base = h->min_ms_;
  } else {
    base += base / 2 > 0 ? base / 2 : 1; /* x 3/2, at least + 1 ms */
  }
  if (base > h->max_ms_)
    base = h->max_ms_;
  if (base < h->min_ms_)
    base = h->min_ms_;
  h->period_ms_ = base;

  span = base / 10;
  sleep = base;
  if (span > 0)
    sleep = base - span + rng_next(&h->rng_) % (2 * span + 1);
  if (sleep > h->max_ms_)
    sleep = h->max_ms_;
  if (sleep < h->min_ms_)
    sleep = h->min_ms_;
  return sleep;
}

static void on_timer(uv_timer_t* timer);

/* Re-arms (or stops) the timer at the end of a tick at `now`. The sleep is
 * at least 1 ms: the poll just made at `now` ended everything due by then,
 * and a completion queued during this tick must go out on a later
 * iteration (a 0 ms timer re-armed from its own callback would run again
 * in the same pass of libuv 1.44's timer loop). */
static void rearm(sr_uv_t* h, uint64_t now, bool progress, uint64_t next_ns) {
  sr__uv_state_t* st = sr__uv_state(h);
  uint64_t kick_due = st->kick_due_ms;
  uint64_t sleep, due_ms;
  int rc;

  st->kick_due_ms = UINT64_MAX;
  if (!has_work(h)) {
    uv_timer_stop(&h->timer_);
    return;
  }
  sleep = next_sleep(h, now, progress);
  if (next_ns != SR_TIMEOUT_NONE) {
    due_ms = next_ns / NS_PER_MS + (next_ns % NS_PER_MS != 0);
    if (due_ms <= now)
      sleep = 1;
    else if (due_ms - now < sleep)
      sleep = due_ms - now;
  }
  /* Reads started by callbacks of this tick, after the poll computed
   * next_ns. */
  if (kick_due != UINT64_MAX && (kick_due <= now || kick_due - now < sleep))
    sleep = kick_due <= now ? 1 : kick_due - now;
  if (!sr__uvq_empty(h->done_) || sleep == 0)
    sleep = 1;
  rc = uv_timer_start(&h->timer_, on_timer, sleep, 0);
  assert(rc == 0); /* only fails for a closing handle, excluded above */
  (void)rc;
}

/* One tick: completions queued before it, restart checks, the poll. */
static void on_timer(uv_timer_t* timer) {
  sr_uv_t* h = timer_handle(timer);
  sr_swap_stats_t before, after;
  uint64_t now = uv_now(h->loop);
  uint64_t next_ns = SR_TIMEOUT_NONE;
  void* batch[2];
  bool progress = false;
  int rc;

  assert(!(h->flags_ & SR__UV_CLOSING));
  h->ticks_++;
  h->flags_ |= SR__UV_IN_TICK;
  sr__uvq_move(h->done_, batch);
  sr__uv_deliver_batch(h, batch);
  if (!(h->flags_ & SR__UV_CLOSING) && h->reads_pending_ > 0 &&
      ++h->tick_ >= h->restart_ticks_) {
    h->tick_ = 0;
    sr__uv_check_spaces(h);
  }
  if (!(h->flags_ & SR__UV_CLOSING) &&
      (h->reads_pending_ > 0 || has_monitors(h))) {
    sr_swap_stats(h->swap, &before);
    rc = sr_swap_poll(h->swap, now * NS_PER_MS, &next_ns);
    assert(rc >= 0); /* SR_EBUSY only from inside an engine callback */
    sr_swap_stats(h->swap, &after);
    progress = rc > 0 || after.chunks_copied != before.chunks_copied ||
               after.monitor_events != before.monitor_events;
    /* A poll cut short by the engine's budget has not looked at every
     * watched entry yet: restart the period from the minimum rather than
     * backing off (so a full pass takes budget-sized steps at a short
     * period), without opening the fast window (that is for progress). */
    if (!progress &&
        after.entries_reread - before.entries_reread < after.watched_entries)
      h->period_ms_ = h->min_ms_;
  }
  h->flags_ &= ~(uint32_t)SR__UV_IN_TICK;
  if (!(h->flags_ & SR__UV_CLOSING))
    rearm(h, now, progress, next_ns);
}

int sr__uv_kick_pending(sr_uv_t* h, uint64_t timeout_ms) {
  uint64_t sleep = h->min_ms_;
  sr__uv_state_t* st;
  uint64_t due;

  h->period_ms_ = h->min_ms_;
  if (timeout_ms < sleep)
    sleep = timeout_ms;
  if (h->flags_ & SR__UV_IN_TICK) {
    /* The tick re-arms when it ends, no later than this. */
    st = sr__uv_state(h);
    due = uv_now(h->loop) + sleep;
    if (due < st->kick_due_ms)
      st->kick_due_ms = due;
    return 0;
  }
  if (uv_is_active((uv_handle_t*)&h->timer_) &&
      uv_timer_get_due_in(&h->timer_) <= sleep)
    return 0;
  return uv_timer_start(&h->timer_, on_timer, sleep, 0);
}

int sr__uv_kick_done(sr_uv_t* h) {
  if (h->flags_ & SR__UV_IN_TICK)
    return 0; /* the tick re-arms (>= 1 ms) when it ends */
  if (uv_is_active((uv_handle_t*)&h->timer_) &&
      uv_timer_get_due_in(&h->timer_) == 0)
    return 0;
  return uv_timer_start(&h->timer_, on_timer, 0, 0);
}

void sr__uv_settle(sr_uv_t* h) {
  if (h->flags_ & (SR__UV_IN_TICK | SR__UV_CLOSING))
    return;
  if (!has_work(h))
    uv_timer_stop(&h->timer_);
}

int sr_uv_init(uv_loop_t* loop, sr_uv_t* handle, sr_image_t* image,
               const sr_uv_opts_t* opts) {
  const sr_allocator_t* a;
  sr__uv_state_t* st;
  sr_uv_opts_t o;
  sr_swap_t* swap;
  int rc;

  if (loop == NULL || handle == NULL || image == NULL)
    return SR_EINVAL;
  if (opts != NULL)
    o = *opts;
  else
    memset(&o, 0, sizeof(o));
  if (o.min_period_ms == 0)
    o.min_period_ms = SR_UV_DEFAULT_MIN_PERIOD_MS;
  if (o.max_period_ms == 0)
    o.max_period_ms = SR_UV_DEFAULT_MAX_PERIOD_MS;
  if (o.fast_window_ms == 0)
    o.fast_window_ms = SR_UV_DEFAULT_FAST_WINDOW_MS;
  if (o.restart_check_ticks == 0)
    o.restart_check_ticks = SR_UV_DEFAULT_RESTART_TICKS;
  if (o.min_period_ms > o.max_period_ms || o.max_period_ms > UINT32_MAX)
    return SR_EINVAL;
  a = o.swap.allocator;
  if (a != NULL && (a->alloc == NULL || a->realloc == NULL || a->free == NULL))
    return SR_EINVAL;

  st = a != NULL ? a->alloc(a->ctx, sizeof(*st)) : malloc(sizeof(*st));
  if (st == NULL)
    return SR_ENOMEM;
  memset(st, 0, sizeof(*st));
  if (a != NULL) {
    st->alloc = *a;
  } else {
    st->alloc.alloc = default_alloc;
    st->alloc.realloc = default_realloc;
    st->alloc.free = default_free;
  }
  st->image = image;
  st->kernel_cr3 = o.swap.kernel_cr3 & SR__UV_CR3_MASK;
  st->default_timeout_ns = o.swap.default_timeout_ns;
  st->kick_due_ms = UINT64_MAX;

  rc = sr_swap_new(&swap, image, &o.swap);
  if (rc != 0)
    goto err_free_state;
  rc = uv_timer_init(loop, &handle->timer_);
  if (rc != 0)
    goto err_free_swap;

  handle->loop = loop;
  handle->swap = swap;
  handle->epoch = 0;
  handle->close_cb_ = NULL;
  handle->flags_ = 0;
  handle->min_ms_ = o.min_period_ms;
  handle->max_ms_ = o.max_period_ms;
  handle->fast_ms_ = o.fast_window_ms;
  handle->period_ms_ = o.min_period_ms;
  handle->last_progress_ms_ = NO_PROGRESS; /* no fast window before any */
  handle->restart_ticks_ = o.restart_check_ticks;
  handle->tick_ = 0;
  handle->rng_ = (uv_hrtime() ^ (uint64_t)(uintptr_t)handle) | 1;
  handle->spaces_ = st;
  handle->nspaces_ = 0;
  handle->cap_spaces_ = 0;
  sr__uvq_init(handle->queue_);
  sr__uvq_init(handle->done_);
  handle->ticks_ = 0;
  handle->reads_pending_ = 0;
  handle->restart_checks_ = 0;
  handle->spaces_gone_ = 0;
  return 0;

err_free_swap:
  sr_swap_free(swap);
err_free_state:
  st->alloc.free(st->alloc.ctx, st, sizeof(*st));
  return rc;
}

/* The timer is closed: deliver what was queued, end what is pending,
 * free everything, then tell the caller. */
static void on_timer_close(uv_handle_t* timer) {
  sr_uv_t* h = timer_handle((uv_timer_t*)timer);
  sr__uv_state_t* st = sr__uv_state(h);
  sr_allocator_t a;

  sr__uv_deliver_all(h);
  sr_swap_free(h->swap); /* SR_ECANCELED callbacks for pending reads */
  h->swap = NULL;
  assert(h->reads_pending_ == 0);
  assert(sr__uvq_empty(h->queue_));
  assert(sr__uvq_empty(h->done_)); /* new reads fail while closing */
  sr__uv_spaces_free(h);
  a = st->alloc;
  a.free(a.ctx, st, sizeof(*st));
  h->spaces_ = NULL;
  if (h->close_cb_ != NULL)
    h->close_cb_(h);
}

void sr_uv_close(sr_uv_t* handle, sr_uv_close_cb close_cb) {
  if (handle == NULL || (handle->flags_ & SR__UV_CLOSING))
    return;
  handle->flags_ |= SR__UV_CLOSING;
  handle->close_cb_ = close_cb;
  uv_close((uv_handle_t*)&handle->timer_, on_timer_close);
}

void sr_uv_stats(const sr_uv_t* handle, sr_uv_stats_t* out) {
  if (out == NULL)
    return;
  memset(out, 0, sizeof(*out));
  if (handle == NULL)
    return;
  out->ticks = handle->ticks_;
  out->restart_checks = handle->restart_checks_;
  out->spaces_gone = handle->spaces_gone_;
  out->period_ms = handle->period_ms_;
}
