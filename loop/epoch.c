/* Epochs: the image's session ends, and a new image takes its place.
 *
 * A handle starts in epoch 0; every read remembers the epoch it started
 * in. sr_uv_invalidate(epoch) is what the hypervisor-side service calls
 * when it revokes the read-only fd behind the image: the handle moves to
 * `epoch`, every pending read (all started in an epoch <= it, since an
 * image is replaced only while none is pending) ends with SR_EIMAGEGONE,
 * and new reads fail with SR_EIMAGEGONE until sr_uv_set_image installs an
 * image for a later epoch. Limits: completions already queued for
 * delivery (SR_UV_ALWAYS_CALLBACK) keep their status 0, their data having
 * been read while the image was valid; probes stay set across epochs
 * (CR3 values of a new session name other processes: remove them with
 * sr_uv_set_probe(h, cr3, NULL, NULL)); the old image is the caller's to
 * close once sr_uv_set_image returned (or after the close callback).
 */
#include "uv_internal.h"

int sr_uv_invalidate(sr_uv_t* handle, uint64_t epoch) {
  int rc;

  if (handle == NULL || handle->swap == NULL || epoch < handle->epoch)
    return SR_EINVAL;
  handle->epoch = epoch;
  handle->flags_ |= SR__UV_INVALID; /* before the callbacks: no new reads */
  rc = sr_swap_cancel_all(handle->swap, SR_EIMAGEGONE);
  sr__uv_settle(handle);
  return rc;
}

int sr_uv_set_image(sr_uv_t* handle, sr_image_t* image, uint64_t epoch) {
  int rc;

  if (handle == NULL || image == NULL || handle->swap == NULL ||
      (handle->flags_ & SR__UV_CLOSING) || epoch <= handle->epoch)
    return SR_EINVAL;
  if (handle->reads_pending_ > 0)
    return SR_EBUSY;
  rc = sr_swap_set_image(handle->swap, image);
  if (rc != 0)
    return rc;
  sr__uv_state(handle)->image = image;
  handle->epoch = epoch;
  handle->flags_ &= ~(uint32_t)SR__UV_INVALID;
  return 0;
}
