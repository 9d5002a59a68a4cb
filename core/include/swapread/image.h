/* swapread — the guest physical image: a read-only RAM file or dump.
 *
 * An image maps a file (or a caller's fd, reopened or dup'ed read-only)
 * O_RDONLY/PROT_READ and describes how guest-physical addresses (GPAs) land
 * in it. Every GPA has
 * exactly one outcome: mapped, hole (SR_EHOLE), or beyond the end of the
 * file (SR_EBEYOND). A file that shrinks while mapped never raises SIGBUS
 * out of the library: the read returns SR_EBEYOND instead.
 */
#ifndef SWAPREAD_IMAGE_H
#define SWAPREAD_IMAGE_H

#include "swapread/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sr_image_s sr_image_t;

/* One piece of guest-physical memory: [gpa, gpa + len) lives at file_off.
 * The same layout a hypervisor-side memctx locator hands out. */
typedef struct sr_segment_s {
  uint64_t gpa;
  uint64_t len;
  uint64_t file_off;
} sr_segment_t;

typedef enum sr_layout_kind_e {
  SR_LAYOUT_AUTO = 0, /* ELF core if the file has ELF magic, else RAW */
  SR_LAYOUT_RAW,      /* `low` bytes at GPA 0 (0: the whole file) */
  SR_LAYOUT_SEGMENTS, /* `seg[0..nseg)`; nseg == 0 means RAW with `low` */
  SR_LAYOUT_PC,       /* QEMU pc (i440fx) split of `ram_size` */
  SR_LAYOUT_Q35,      /* QEMU q35 split of `ram_size` */
  SR_LAYOUT_ELF       /* ELF core: PT_LOAD headers (dump-guest-memory) */
} sr_layout_kind_t;

typedef struct sr_layout_s {
  sr_layout_kind_t kind;
  uint64_t low;            /* RAW / SEGMENTS with nseg == 0 */
  uint64_t ram_size;       /* PC / Q35: guest RAM size (0: the file size) */
  uint64_t below_4g;       /* PC / Q35: max-ram-below-4g override, 0: QEMU's */
  const sr_segment_t* seg; /* SEGMENTS: sorted, non-overlapping */
  size_t nseg;
} sr_layout_t;

/* Outcome of locating one GPA (see sr_image_locate). */
typedef struct sr_locate_s {
  uint64_t file_off; /* when mapped */
  uint64_t run;      /* bytes from gpa to the end of this outcome's extent */
} sr_locate_t;

/* Sync. Opens `path` read-only; layout NULL means SR_LAYOUT_AUTO. *out is
 * owned by the caller (sr_image_close). Errors: SR_EINVAL, SR_EBADLAYOUT,
 * SR_EBADELF, SR_ENOMEM, SR_EFBIG, and the file's: SR_ENOENT, SR_EACCES,
 * SR_EISDIR, SR_ESPIPE, SR_ENODEV, SR_ENOTDIR, SR_ELOOP, SR_ENAMETOOLONG,
 * SR_EMFILE, SR_ENFILE, SR_EIO (anything else). */
SR_EXTERN int sr_image_open(sr_image_t** out, const char* path,
                            const sr_layout_t* layout);
/* Sync. As sr_image_open over our own O_RDONLY fd for `fd` (a dup, or for a
 * writable fd a read-only reopen through /proc/self/fd); the caller keeps
 * its fd. Errors: as sr_image_open, and SR_EBADF (fd not open). */
SR_EXTERN int sr_image_open_fd(sr_image_t** out, int fd,
                               const sr_layout_t* layout);
/* Sync. Unmaps and closes. NULL is allowed. */
SR_EXTERN void sr_image_close(sr_image_t* image);

/* Sync. Copies guest-physical [gpa, gpa + len) into buf. Returns 0, or the
 * outcome of the first byte that is not mapped: SR_EHOLE or SR_EBEYOND
 * (bytes before it are copied; *done, if given, says how many). */
SR_EXTERN int sr_image_read(const sr_image_t* image, uint64_t gpa, void* buf,
                            size_t len, size_t* done);
/* Sync, thread-safe. Compares guest-physical [gpa, gpa + len) with buf
 * (one memcmp per mapped run): 0 equal, 1 at the first difference, or
 * SR_EHOLE / SR_EBEYOND at the first byte not in the file, SR_EINVAL. */
SR_EXTERN int sr_image_cmp(const sr_image_t* image, uint64_t gpa,
                           const void* buf, size_t len);
/* Sync, thread-safe. Loads the 8 bytes at each gpa[i] (little-endian, any
 * alignment) in one pass and writes to diff[] (ascending) every i whose
 * value differs from expect[i] or cannot be loaded (hole, beyond the file,
 * the file shrank); *ndiff = how many. 0, or SR_EINVAL (NULL arguments). */
SR_EXTERN int sr_image_diff64(const sr_image_t* image, const uint64_t* gpa,
                              const uint64_t* expect, size_t n, size_t* diff,
                              size_t* ndiff);
/* Sync. Where gpa lands: 0 (mapped), SR_EHOLE or SR_EBEYOND, with the
 * length of the extent that has the same outcome. */
SR_EXTERN int sr_image_locate(const sr_image_t* image, uint64_t gpa,
                              sr_locate_t* out);

/* Sync. The validated segments (sorted). Valid until sr_image_close. */
SR_EXTERN size_t sr_image_segments(const sr_image_t* image,
                                   const sr_segment_t** seg);
/* Sync. The file size seen at open (or after the last shrink detected). */
SR_EXTERN uint64_t sr_image_file_size(const sr_image_t* image);
/* Sync. The layout kind actually used (AUTO resolves to RAW or ELF). */
SR_EXTERN sr_layout_kind_t sr_image_layout_kind(const sr_image_t* image);

/* Sync. QEMU's below/above-4G split for a pc or q35 machine of ram_size
 * bytes (below_4g: max-ram-below-4g, 0 for QEMU's default). Fills seg[0..2)
 * and *nseg (1 or 2). Errors: SR_EINVAL. */
SR_EXTERN int sr_layout_preset(sr_layout_kind_t kind, uint64_t ram_size,
                               uint64_t below_4g, sr_segment_t seg[2],
                               size_t* nseg);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_IMAGE_H */
