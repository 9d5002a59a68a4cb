/* Read requests: start, completion, delivery, cancel.
 *
 * sr_uv_read hands the read to the engine at uv_now(). A synchronous
 * completion returns 0 with no callback, or, with SR_UV_ALWAYS_CALLBACK,
 * is queued on the handle's done_ list and delivered by a tick on a later
 * loop iteration (sr_uv_read returns SR_PENDING). A pending read is linked
 * on the handle's queue_ and counted in its CR3's liveness record; the
 * engine's callback (the request is the engine's `data`; no dtor is
 * needed) copies the completion into the public members, unlinks the
 * request and runs the caller's callback. The request may be reused or
 * freed from its own callback; nothing touches it after the callback
 * returns. Cancel ends a pending read through the engine; if the engine
 * drops it instead (it was being completed by the poll that is running
 * callbacks now) we deliver SR_ECANCELED ourselves. Limits: a queued
 * synchronous completion keeps its status 0 through sr_uv_cancel_cr3 and
 * sr_uv_invalidate (its data was read while the space and the image were
 * valid); sr_uv_cancel on it delivers SR_ECANCELED.
 */
#include <string.h>

#include "uv_internal.h"

#define NS_PER_MS UINT64_C(1000000)

void sr__uv_deliver(sr_uv_t* h, sr_uv_read_t* req, int status) {
  sr__uv_state_t* st = sr__uv_state(h);
  sr__uv_frame_t frame;

  frame.req = req;
  frame.prev = st->frames;
  st->frames = &frame;
  req->cb_(req, status);
  /* req may be gone; the handle is not (it is freed only after close). */
  assert(st->frames == &frame);
  st->frames = frame.prev;
}

/* Takes a queued synchronous completion off done_ and delivers it. */
static void deliver_queued(sr_uv_t* h, sr_uv_read_t* req, int status) {
  assert(req->flags_ & SR__UVR_DONEQ);
  req->flags_ &= ~(uint32_t)SR__UVR_DONEQ;
  req->status = status;
  sr__uv_deliver(h, req, status);
}

void sr__uv_deliver_batch(sr_uv_t* h, void** batch) {
  sr_uv_read_t* req;
  void** q;

  while (!sr__uvq_empty((void* const*)batch)) {
    if (h->flags_ & SR__UV_CLOSING) {
      /* Back to done_, in order, for the close callback. */
      while (!sr__uvq_empty((void* const*)batch)) {
        q = batch[1];
        sr__uvq_remove(q);
        sr__uvq_insert_head(h->done_, q);
      }
      return;
    }
    q = batch[0];
    sr__uvq_remove(q);
    req = sr__uvq_req(q);
    deliver_queued(h, req, req->status);
  }
}

void sr__uv_deliver_all(sr_uv_t* h) {
  sr_uv_read_t* req;
  void** q;

  while (!sr__uvq_empty(h->done_)) {
    q = h->done_[0];
    sr__uvq_remove(q);
    req = sr__uvq_req(q);
    deliver_queued(h, req, req->status);
  }
}

/* A pending request leaves the handle (before its callback). */
static void unlink_pending(sr_uv_t* h, sr_uv_read_t* req) {
  assert(req->flags_ & SR__UVR_PENDING);
  assert(h->reads_pending_ > 0);
  sr__uvq_remove(req->queue_);
  h->reads_pending_--;
  req->flags_ &= ~(uint32_t)SR__UVR_PENDING;
  sr__uv_space_release(h, sr__uv_key(h, req->cr3));
}

/* The engine's callback: data is the request. */
static void on_swap_done(sr_swap_t* swap, const sr_swap_done_t* done,
                         void* data) {
  sr_uv_read_t* req = data;
  sr_uv_t* h = req->handle;
  sr__uv_state_t* st = sr__uv_state(h);

  (void)swap;
  if (req->flags_ & SR__UVR_STARTING) {
    req->flags_ |= SR__UVR_ABORTED; /* our own abort in sr_uv_read */
    return;
  }
  unlink_pending(h, req);
  if (st->cancel_target == req)
    st->cancel_target = NULL;
  req->status = done->status;
  req->done_flags = done->flags;
  req->gpa = done->gpa;
  req->kinds_seen = done->kinds_seen;
  req->nchunks = done->nchunks;
  req->missing = done->missing;
  sr__uv_deliver(h, req, done->status);
}

static uint64_t timeout_ns(uint64_t ms) {
  if (ms == 0 || ms == SR_TIMEOUT_NONE)
    return ms;
  if (ms > UINT64_MAX / NS_PER_MS)
    return SR_TIMEOUT_NONE;
  return ms * NS_PER_MS;
}

/* The read's timeout in whole ms, rounded up (SR_TIMEOUT_NONE: none), as
 * the engine will apply it (0: its default, whose 0 means none). */
static uint64_t effective_timeout_ms(const sr_uv_t* h, uint64_t ns) {
  if (ns == 0)
    ns = sr__uv_state(h)->default_timeout_ns;
  if (ns == 0 || ns == SR_TIMEOUT_NONE)
    return SR_TIMEOUT_NONE;
  return ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

/* Ends a pending read the engine accepted while sr_uv_read still owns
 * it: its callback is swallowed (ABORTED). */
static void abort_starting(sr_uv_t* h, sr_uv_read_t* req) {
  int rc;

  rc = sr_swap_cancel(h->swap, req->swap_handle_);
  assert(rc == 0);
  (void)rc;
  assert(req->flags_ & SR__UVR_ABORTED);
  req->flags_ &= ~(uint32_t)(SR__UVR_STARTING | SR__UVR_ABORTED);
}

int sr_uv_read(sr_uv_t* handle, sr_uv_read_t* req, uint64_t cr3, uint64_t gva,
               void* buf, size_t len, const sr_uv_read_opts_t* opts,
               sr_uv_read_cb cb) {
  sr_swap_done_t sync;
  sr_swap_req_t sreq;
  uint32_t flags = opts != NULL ? opts->flags : 0;
  uint64_t key;
  int rc;

  if (handle == NULL || req == NULL || cb == NULL || handle->swap == NULL ||
      (handle->flags_ & SR__UV_CLOSING) || (flags & ~SR__UVR_OPTS) != 0)
    return SR_EINVAL;
  if (handle->flags_ & SR__UV_INVALID)
    return SR_EIMAGEGONE;
  if (cr3 == SR_CR3_KERNEL && sr__uv_state(handle)->kernel_cr3 == 0)
    return SR_EINVAL;

  req->handle = handle;
  req->cr3 = cr3;
  req->gva = gva;
  req->buf = buf;
  req->len = len;
  req->status = SR_PENDING;
  req->done_flags = 0;
  req->gpa = 0;
  req->kinds_seen = 0;
  req->nchunks = 0;
  req->missing = NULL;
  req->cb_ = cb;
  req->swap_handle_.id = 0;
  req->flags_ = flags;
  req->epoch_ = handle->epoch;
  sr__uvq_init(req->queue_);

  memset(&sreq, 0, sizeof(sreq));
  sreq.cr3 = cr3;
  sreq.gva = gva;
  sreq.buf = buf;
  sreq.len = len;
  sreq.flags = flags & (SR_READ_PARTIAL | SR_READ_JOIN);
  sreq.timeout_ns = timeout_ns(opts != NULL ? opts->timeout_ms : 0);
  memset(&sync, 0, sizeof(sync));
  rc = sr_swap_read(handle->swap, &sreq, uv_now(handle->loop) * NS_PER_MS,
                    on_swap_done, req, NULL, &req->swap_handle_, &sync);

  if (rc < 0) {
    req->status = rc;
    return rc;
  }
  if (rc == 0) {
    req->status = 0;
    req->done_flags = sync.flags;
    req->gpa = sync.gpa;
    req->nchunks = sync.nchunks;
    if (!(flags & SR_UV_ALWAYS_CALLBACK))
      return 0;
    rc = sr__uv_kick_done(handle);
    if (rc != 0) {
      /* The bytes are in buf, but no callback can be promised: a
       * rejected read, with its status saying why. */
      req->status = rc;
      return rc;
    }
    req->flags_ |= SR__UVR_DONEQ;
    sr__uvq_insert_tail(handle->done_, req->queue_);
    return SR_PENDING;
  }

  assert(rc == SR_PENDING);
  req->flags_ |= SR__UVR_STARTING;
  key = sr__uv_key(handle, cr3);
  rc = sr__uv_space_acquire(handle, key);
  if (rc != 0)
    goto err_abort;
  req->flags_ |= SR__UVR_PENDING;
  sr__uvq_insert_tail(handle->queue_, req->queue_);
  handle->reads_pending_++;
  rc = sr__uv_kick_pending(handle,
                           effective_timeout_ms(handle, sreq.timeout_ns));
  if (rc != 0)
    goto err_unlink;
  req->flags_ &= ~(uint32_t)SR__UVR_STARTING;
  return SR_PENDING;

err_unlink:
  unlink_pending(handle, req);
err_abort:
  abort_starting(handle, req);
  sr__uv_settle(handle); /* stop a timer nothing needs any more */
  req->status = rc;
  return rc;
}

/* Whether req's callback is running now (possibly under nested ones). */
static bool in_callback(const sr__uv_state_t* st, const sr_uv_read_t* req) {
  const sr__uv_frame_t* f;

  for (f = st->frames; f != NULL; f = f->prev)
    if (f->req == req)
      return true;
  return false;
}

int sr_uv_cancel(sr_uv_read_t* req) {
  sr_uv_read_t* prev;
  sr__uv_state_t* st;
  sr_uv_t* h;
  int rc;

  if (req == NULL || req->handle == NULL)
    return SR_EINVAL;
  h = req->handle;
  st = sr__uv_state(h);
  if (st == NULL)
    return SR_EINVAL; /* closed */
  if (req->flags_ & SR__UVR_PENDING) {
    prev = st->cancel_target;
    st->cancel_target = req;
    rc = sr_swap_cancel(h->swap, req->swap_handle_);
    assert(rc == 0); /* PENDING here means live in the engine */
    if (rc == 0 && st->cancel_target == req) {
      /* Dropped: it was being completed by the poll running callbacks
       * now, which will not call it back. End it ourselves. */
      unlink_pending(h, req);
      req->status = SR_ECANCELED;
      req->missing = NULL;
      sr__uv_deliver(h, req, SR_ECANCELED);
    }
    st->cancel_target = prev;
    sr__uv_settle(h);
    return rc == 0 ? 0 : SR_EINVAL;
  }
  if (req->flags_ & SR__UVR_DONEQ) {
    sr__uvq_remove(req->queue_);
    deliver_queued(h, req, SR_ECANCELED);
    sr__uv_settle(h);
    return 0;
  }
  return in_callback(st, req) ? SR_EALREADY : SR_EINVAL;
}
