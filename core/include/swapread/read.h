/* swapread — reading guest virtual memory synchronously, one range or many
 * small pieces at once.
 *
 * Both functions walk the guest's page tables under a CR3 (the rules of
 * sr_translate) and copy the bytes out of the image. A page's bytes count
 * only if its walk reads the same after the copy as before it (copy, then
 * revalidate): nothing is returned that was not checked against its leaf
 * entry in the same call. Nothing waits: a page that is not present stops
 * the read (sr_swap_read is the read that waits). Thread-safe over one
 * image; no allocation, no system calls on the fast paths.
 */
#ifndef SWAPREAD_READ_H
#define SWAPREAD_READ_H

#include "swapread/translate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What sr_read_virt did. */
typedef struct sr_vread_s {
  size_t done;           /* bytes copied and accepted, from gva */
  uint64_t gpa;          /* GPA of the first byte, when done > 0 */
  uint32_t prot;         /* SR_PROT_* accumulated over the pages read */
  bool resident;         /* some page was read through SR_WALK_RESIDENT */
  sr_translation_t stop; /* sr_translate of gva + done, when it stopped */
} sr_vread_t;

/* Sync. Copies [gva, gva + len) under cr3 into buf, stopping at the first
 * page that cannot be read; out may be NULL. 0, or the error of the page at
 * gva + out->done: a walk error (out->stop says where), SR_EHOLE/EBEYOND
 * (its data), SR_EBUSY (its leaf kept changing), SR_EINVAL (arguments). */
SR_EXTERN int sr_read_virt(const sr_image_t* image, uint64_t cr3,
                           const sr_walk_opts_t* opts, uint64_t gva, void* buf,
                           size_t len, sr_vread_t* out);

/* One piece of a batch: in gva, buf, len (1..4096); the rest is out. */
typedef struct sr_batch_item_s {
  uint64_t gva;
  void* buf;
  size_t len;
  int status;         /* 0, a walk error, SR_EHOLE/EBEYOND of the data,
                         SR_EBUSY, or SR_EINVAL (bad item) */
  bool walked;        /* the walk reached a leaf: level/entry describe it */
  int level;          /* leaf level, or sr_translate's stop_level */
  uint64_t entry;     /* the leaf entry, or the entry that stopped the walk */
  uint64_t entry_gpa; /* its GPA (for a hole/beyond table: the GPA tried) */
  uint64_t gpa;       /* GPA of the first byte, when walked */
} sr_batch_item_t;

/* Sync. Reads every item, overlapping the page walks of many items; each
 * item gets its own status, as sr_translate + sr_image_read would give it.
 * Returns the number of items with status 0, or SR_EINVAL (arguments). */
SR_EXTERN int sr_read_batch(const sr_image_t* image, uint64_t cr3,
                            const sr_walk_opts_t* opts, sr_batch_item_t* items,
                            size_t n);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_READ_H */
