/* Monitors on the loop: VA monitors and address-space monitors created on
 * a handle's engine, polled by the handle's timer.
 *
 * The engine delivers monitor events from sr_swap_poll, which the handle's
 * tick calls; all these functions add is the handle's knowledge that the
 * timer must run while a monitor exists (uv.c's has_work counts the
 * engine's monitors at every re-arm, so freeing the last one lets the
 * timer stop) and a kick so the first poll comes soon. Closing the handle
 * frees the engine, which ends every monitor with a CLOSED event before
 * the close callback. Limits: a monitor made with sr_monitor_new on
 * handle->swap directly is polled too, but only once the timer runs for
 * another reason.
 */
#include "uv_internal.h"

/* Whether new monitors can be made on the handle. */
static bool usable(const sr_uv_t* h) {
  return h != NULL && h->swap != NULL && !(h->flags_ & SR__UV_CLOSING);
}

/* After a monitor was made (rc 0): starts the timer so the first poll
 * comes soon. Returns 0 or the libuv error (the caller frees it). */
static int kick(sr_uv_t* h, int rc) {
  return rc != 0 ? rc : sr__uv_kick_pending(h, h->min_ms_);
}

int sr_uv_monitor_new(sr_uv_t* handle, sr_monitor_t** out, sr_monitor_cb cb,
                      void* data) {
  int rc;

  if (out != NULL)
    *out = NULL;
  if (out == NULL || !usable(handle))
    return SR_EINVAL;
  rc = sr_monitor_new(out, handle->swap, cb, data);
  if ((rc = kick(handle, rc)) != 0 && *out != NULL) {
    (void)sr_monitor_free(*out);
    *out = NULL;
    sr__uv_settle(handle);
  }
  return rc;
}

int sr_uv_spacemon_new(sr_uv_t* handle, sr_spacemon_t** out, uint64_t cr3,
                       const sr_spacemon_opts_t* opts, sr_spacemon_cb cb,
                       void* data) {
  int rc;

  if (out != NULL)
    *out = NULL;
  if (out == NULL || !usable(handle))
    return SR_EINVAL;
  rc = sr_spacemon_new(out, handle->swap, cr3, opts, cb, data);
  if ((rc = kick(handle, rc)) != 0 && *out != NULL) {
    (void)sr_spacemon_free(*out);
    *out = NULL;
    sr__uv_settle(handle);
  }
  return rc;
}
