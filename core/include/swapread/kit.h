/* swapread — the holey-image kit: builds guest images for tests.
 *
 * A kit owns a file (a path, or an anonymous memfd) and a writable shared
 * mapping of it. It allocates guest frames, builds x86-64 page tables
 * (4- or 5-level), maps VA ranges with 4K/2M/1G pages, fills them with a
 * checkable pattern, makes entries non-present with any encoding swapread
 * classifies (or garbage), pages them back in, punches physical holes,
 * truncates, and writes ELF cores. A reader opens the same file read-only
 * (sr_kit_open_image) and sees every change the kit makes at once.
 * Not thread-safe; the kit never reads through a reader's image.
 */
#ifndef SWAPREAD_KIT_H
#define SWAPREAD_KIT_H

#include "swapread/translate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sr_kit_s sr_kit_t;

typedef struct sr_kit_opts_s {
  uint64_t size;    /* RAW: bytes of guest RAM at GPA 0 (0: 64 MiB) */
  const char* path; /* NULL: an anonymous memfd; else created/truncated */
  const sr_segment_t* seg; /* optional layout; GPAs outside it are holes */
  size_t nseg;
} sr_kit_opts_t;

/* Sync. Creates the backing file (sparse) and its writable mapping. *out is
 * owned by the caller (sr_kit_destroy). Errors: SR_EINVAL, SR_EBADLAYOUT,
 * SR_ENOMEM, negated errno from the file system. */
SR_EXTERN int sr_kit_create(sr_kit_t** out, const sr_kit_opts_t* opts);
/* Sync. Unmaps and closes (a file at `path` stays). NULL is allowed. */
SR_EXTERN void sr_kit_destroy(sr_kit_t* kit);

/* Sync. The kit's fd (owned by the kit) and the layout to open it with
 * (valid until the next sr_kit_punch_hole or sr_kit_destroy). */
SR_EXTERN int sr_kit_fd(const sr_kit_t* kit);
SR_EXTERN void sr_kit_layout(const sr_kit_t* kit, sr_layout_t* out);
/* Sync. sr_image_open_fd over the kit's fd with the kit's layout. */
SR_EXTERN int sr_kit_open_image(const sr_kit_t* kit, sr_image_t** out);

/* Sync. Allocates `size` zeroed bytes of guest RAM aligned to `align`
 * (a power of two >= 4096). Errors: SR_EINVAL, SR_ENOSPC. */
SR_EXTERN int sr_kit_alloc(sr_kit_t* kit, uint64_t size, uint64_t align,
                           uint64_t* gpa);
/* Sync. Allocates an empty root table; *cr3 is its GPA. */
SR_EXTERN int sr_kit_new_space(sr_kit_t* kit, sr_paging_t paging,
                               uint64_t* cr3);

/* Sync. Maps [gva, gva + len) with pages of page_size (SR_PAGE_4K/2M/1G,
 * gva and len aligned to it) onto fresh zeroed frames, creating tables as
 * needed (upper entries present, writable, user). prot: SR_PROT_*.
 * Errors: SR_EINVAL (alignment, non-canonical, unknown cr3), SR_EEXIST
 * (something already mapped there), SR_ENOSPC. */
SR_EXTERN int sr_kit_map(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                         uint64_t len, uint64_t page_size, uint32_t prot);
/* Sync. As sr_kit_map onto [gpa, gpa + len), which may be anywhere (a hole,
 * past the end of the file, another mapping's frames). */
SR_EXTERN int sr_kit_map_gpa(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                             uint64_t len, uint64_t gpa, uint64_t page_size,
                             uint32_t prot);

/* Sync, pure. The test pattern: the byte expected at `addr` for `seed`. */
SR_EXTERN uint8_t sr_kit_pattern(uint64_t seed, uint64_t addr);
/* Sync. Writes sr_kit_pattern(seed, va) at every va of [gva, gva + len)
 * through the kit's own page tables (the range must be mapped, present or
 * paged out by the kit). Errors: SR_EINVAL, SR_ENOTPRESENT. */
SR_EXTERN int sr_kit_fill(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                          uint64_t len, uint64_t seed);
/* Sync. Writes / reads guest-physical bytes (must be backed by the file). */
SR_EXTERN int sr_kit_write_phys(sr_kit_t* kit, uint64_t gpa, const void* buf,
                                size_t len);
SR_EXTERN int sr_kit_read_phys(const sr_kit_t* kit, uint64_t gpa, void* buf,
                               size_t len);
/* Sync. Writes bytes at a VA through the kit's tables (as sr_kit_fill). */
SR_EXTERN int sr_kit_write_va(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                              const void* buf, size_t len);

/* Sync. GPA of the entry for gva at `level` (its table must exist).
 * Errors: SR_EINVAL, SR_ENOENT (no table at that level). */
SR_EXTERN int sr_kit_entry_gpa(const sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                               int level, uint64_t* gpa);
/* Sync. Reads / overwrites the raw entry for gva at `level` (garbage,
 * reserved bits, loops: anything). *old may be NULL. */
SR_EXTERN int sr_kit_get_entry(const sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                               int level, uint64_t* value);
SR_EXTERN int sr_kit_set_entry(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                               int level, uint64_t value, uint64_t* old);

/* Sync, pure. Encodes a non-present entry of info->kind (the inverse of
 * sr_pte_classify): NONE -> 0; LINUX_SWAP from swap_type/swap_offset;
 * LINUX_PROTNONE / WIN_TRANSITION from frame; WIN_PAGEFILE from
 * swap_type/swap_offset; WIN_PROTOTYPE from proto_addr. Errors: SR_EINVAL
 * (kind not encodable, field out of range). */
SR_EXTERN int sr_kit_encode(const sr_pte_info_t* info, int level,
                            uint64_t* entry);
/* Sync. Makes the entry for gva at `level` non-present, encoded as `as`
 * (frame 0 for a resident kind means "the frame it maps now"); remembers
 * the present value for sr_kit_page_in. Errors: SR_EINVAL, SR_ENOENT,
 * SR_EALREADY (already paged out). */
SR_EXTERN int sr_kit_page_out(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                              int level, const sr_pte_info_t* as);
/* Sync. Restores the entry remembered by sr_kit_page_out. */
SR_EXTERN int sr_kit_page_in(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                             int level);

/* Sync. Makes [gpa, gpa + len) a hole in the kit's layout (the file keeps
 * its bytes; images opened afterwards see a hole). */
SR_EXTERN int sr_kit_punch_hole(sr_kit_t* kit, uint64_t gpa, uint64_t len);
/* Sync. Truncates (or extends) the backing file under any open reader. */
SR_EXTERN int sr_kit_truncate(sr_kit_t* kit, uint64_t file_size);
/* Sync. Writes an ELF64 core (one PT_LOAD per segment, as QEMU's
 * dump-guest-memory does) to path. */
SR_EXTERN int sr_kit_write_elf(const sr_kit_t* kit, const char* path);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_KIT_H */
