/* The image object and its fast paths, shared by core/ modules. Private.
 *
 * Loads through `base` must happen inside a fault scope (core/fault.h).
 */
#ifndef SR_IMAGE_INTERNAL_H
#define SR_IMAGE_INTERNAL_H

#include "swapread/image.h"

/* One segment as the lean read path of core/read.c sees it: GPAs
 * [gpa, gpa + len) live at p + (gpa - this gpa). gpa and len are multiples
 * of 8 (an 8-aligned entry is inside if its first byte is); len is clipped
 * to the usable file size and lowered with it by sr__image_note_fault
 * (load it with __atomic_load_n); 0 when unused. */
typedef struct sr__flat_s {
  uint64_t gpa;
  uint64_t len;
  const unsigned char* p;
} sr__flat_t;

#define SR__NFLAT 2

struct sr_image_s {
  int fd;                    /* our dup, O_RDONLY */
  const unsigned char* base; /* PROT_READ, MAP_SHARED, map_len bytes */
  uint64_t map_len;          /* bytes mapped (file size at open, rounded) */
  uint64_t file_size;        /* bytes of file usable (shrinks on a fault) */
  sr_layout_kind_t kind;     /* RAW, SEGMENTS, PC, Q35 or ELF */
  sr_segment_t* seg;         /* sorted, validated; nseg >= 1 unless empty */
  size_t nseg;
  sr__flat_t flat[SR__NFLAT]; /* the largest segments, largest first */
};

/* Where gpa lands: 0 and *p (valid for *run bytes, never past the file
 * size seen at open), or SR_EHOLE / SR_EBEYOND with *run bytes of the
 * same outcome. p and run may be NULL. Does not load. */
int sr__image_locate(const sr_image_t* image, uint64_t gpa,
                     const unsigned char** p, uint64_t* run);

/* Loads the 8-byte entry at gpa (must be 8-aligned) inside the caller's
 * fault scope: 0, SR_EHOLE or SR_EBEYOND. */
int sr__image_load64(const sr_image_t* image, uint64_t gpa, uint64_t* value);

/* Called after a fault was caught while reading `image`: re-reads the file
 * size so that later reads report SR_EBEYOND without touching the pages
 * (the usable size and every flat[].len only ever go down). */
void sr__image_note_fault(const sr_image_t* image);

/* core/layout.c: 0 if seg[0..nseg) is sorted by gpa, non-overlapping,
 * every len > 0, no [gpa, gpa + len) wraps past 2^64, and (when file_size
 * is not UINT64_MAX) every [file_off, file_off + len) lies inside
 * file_size; else SR_EBADLAYOUT. */
int sr__layout_check(const sr_segment_t* seg, size_t nseg, uint64_t file_size);

/* core/elf.c: parses the ELF64 core behind fd (file_size bytes) with pread
 * and returns its PT_LOADs as malloc'ed segments (file part only: bytes in
 * [p_filesz, p_memsz) are holes). 0, SR_EBADELF or SR_ENOMEM. */
int sr__elf_segments(int fd, uint64_t file_size, sr_segment_t** seg,
                     size_t* nseg);

#endif /* SR_IMAGE_INTERNAL_H */
