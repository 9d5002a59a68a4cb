/* Fuzz target (a): opening an image over arbitrary bytes.
 *
 * The whole input is written to a memfd, which is then opened with every
 * layout kind: RAW (whole file and a derived `low`), SEGMENTS (a few
 * segments derived from the input's last bytes, valid or not), AUTO and ELF
 * (the ELF parser sees arbitrary headers), PC and Q35 (derived RAM size and
 * max-ram-below-4g). The open's result is checked against an independent
 * model of the documented rules (segment validation, QEMU splits); every
 * image that opens has its segments checked (sorted, non-empty, no wrap),
 * and a few GPAs derived from the input are located and read: outcome 0,
 * SR_EHOLE or SR_EBEYOND, `run`, `file_off`, `done` and the bytes must be
 * what the segments and the file say. Limits: the file never changes under
 * the image here (shrinking is the hostile-image tests' job), and the ELF
 * parser's result is checked for consistency only, not against a model.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swapread/image.h>

#include "fuzz_common.h"

#define MAX_INPUT (1u << 20)
#define PARAM_BYTES 64 /* parameters come from the input's last bytes */
#define MAX_SEG 5
#define NREADS 4
#define G4 (UINT64_C(1) << 32)

typedef struct model_s {
  const uint8_t* file;
  uint64_t file_size;
  const sr_segment_t* seg;
  size_t nseg;
} model_t;

/* The documented outcome of one GPA given the image's segments. */
static int model_locate(const model_t* m, uint64_t gpa, sr_locate_t* out) {
  size_t i;
  uint64_t next = 0;
  bool have_next = false;

  for (i = 0; i < m->nseg; i++) {
    const sr_segment_t* s = &m->seg[i];
    if (gpa >= s->gpa && gpa - s->gpa < s->len) {
      uint64_t in = gpa - s->gpa;
      uint64_t fo = s->file_off + in;
      uint64_t seg_left = s->len - in;
      if (fo < m->file_size) {
        out->file_off = fo;
        out->run = seg_left < m->file_size - fo ? seg_left : m->file_size - fo;
        return 0;
      }
      out->file_off = 0;
      out->run = seg_left;
      return SR_EBEYOND;
    }
    if (s->gpa > gpa && !have_next) {
      next = s->gpa;
      have_next = true;
    }
  }
  out->file_off = 0;
  if (have_next)
    out->run = next - gpa;
  else
    out->run = gpa == 0 ? UINT64_MAX : 0 - gpa;
  return SR_EHOLE;
}

/* The documented segment validation (SR_LAYOUT_SEGMENTS, nseg > 0). */
static bool model_segments_valid(const sr_segment_t* seg, size_t nseg,
                                 uint64_t file_size) {
  size_t i;

  for (i = 0; i < nseg; i++) {
    if (seg[i].len == 0)
      return false;
    if (seg[i].len - 1 > UINT64_MAX - seg[i].gpa) /* wraps past 2^64 */
      return false;
    if (seg[i].file_off > UINT64_MAX - seg[i].len ||
        seg[i].file_off + seg[i].len > file_size)
      return false;
    if (i > 0) {
      const sr_segment_t* p = &seg[i - 1];
      if (p->len - 1 == UINT64_MAX - p->gpa) /* prev ends at 2^64 */
        return false;
      if (seg[i].gpa < p->gpa + p->len)
        return false;
    }
  }
  return true;
}

/* QEMU's split as docs/api/core.md states it (hw/i386/pc_piix.c and
 * pc_q35.c). Returns 0 or SR_EINVAL. */
static int model_preset(sr_layout_kind_t kind, uint64_t ram, uint64_t below_4g,
                        sr_segment_t seg[2], size_t* nseg) {
  uint64_t lowmem, below, above;

  if (ram == 0 || below_4g > G4)
    return SR_EINVAL;
  if (kind == SR_LAYOUT_PC) {
    lowmem = below_4g != 0 ? below_4g : UINT64_C(0xe0000000);
    if (ram >= lowmem && lowmem > UINT64_C(0xc0000000))
      lowmem = UINT64_C(0xc0000000);
  } else {
    lowmem = ram >= UINT64_C(0xb0000000) ? UINT64_C(0x80000000)
                                         : UINT64_C(0xb0000000);
    if (lowmem > (below_4g != 0 ? below_4g : G4))
      lowmem = below_4g != 0 ? below_4g : G4;
  }
  below = ram >= lowmem ? lowmem : ram;
  above = ram - below;
  if (above > 0 && above - 1 > UINT64_MAX - G4)
    return SR_EINVAL;
  seg[0].gpa = 0;
  seg[0].len = below;
  seg[0].file_off = 0;
  *nseg = 1;
  if (above > 0) {
    seg[1].gpa = G4;
    seg[1].len = above;
    seg[1].file_off = below;
    *nseg = 2;
  }
  return 0;
}

/* A GPA and a length to read, derived from the parameters. */
static void pick_read(fuzz_in_t* p, const sr_segment_t* seg, size_t nseg,
                      uint64_t* gpa, size_t* len) {
  uint8_t mode = fuzz_u8(p);
  const sr_segment_t* s = nseg > 0 ? &seg[fuzz_u8(p) % nseg] : NULL;

  switch (mode % 5) {
    case 0: {
      /* s->len + 64 wraps to 0 for a segment of nearly 2^64 bytes. */
      uint64_t span = s != NULL ? s->len + 64 : 0;
      uint32_t off = fuzz_u32(p);
      *gpa = s != NULL ? s->gpa + (span != 0 ? off % span : off) : fuzz_u16(p);
      break;
    }
    case 1: /* around the end of a segment */
      *gpa = s != NULL ? s->gpa + s->len - (fuzz_u16(p) % 4100) : 0;
      break;
    case 2:
      *gpa = fuzz_u64(p);
      break;
    case 3:
      *gpa = 0 - (uint64_t)(fuzz_u16(p) % 9000);
      break;
    default:
      *gpa = fuzz_u32(p);
      break;
  }
  if (mode & 0x80)
    *len = fuzz_u32(p) % 200000;
  else
    *len = fuzz_u16(p) % 8193;
}

/* Reads and locates a few GPAs of an open image and checks each outcome
 * against the model built from the image's own (already checked) segments. */
static void exercise(const sr_image_t* img, const uint8_t* file, size_t size,
                     fuzz_in_t* p) {
  const sr_segment_t* seg = NULL;
  size_t nseg = sr_image_segments(img, &seg);
  model_t m = {file, size, seg, nseg};
  size_t i, k;

  FUZZ_CHECK(sr_image_file_size(img) == size);
  FUZZ_CHECK(nseg == 0 || seg != NULL);
  for (i = 0; i < nseg; i++) {
    FUZZ_CHECK(seg[i].len > 0);
    FUZZ_CHECK(seg[i].len - 1 <= UINT64_MAX - seg[i].gpa);
    if (i > 0) {
      FUZZ_CHECK(seg[i - 1].len - 1 < UINT64_MAX - seg[i - 1].gpa);
      FUZZ_CHECK(seg[i].gpa >= seg[i - 1].gpa + seg[i - 1].len);
    }
  }

  for (k = 0; k < NREADS; k++) {
    uint64_t gpa;
    size_t len, done = (size_t)-1, exp_done = 0;
    sr_locate_t loc, want;
    int rc, exp_rc;
    uint8_t* buf;
    uint8_t* exp;

    pick_read(p, seg, nseg, &gpa, &len);

    /* locate: exact outcome, run and file offset. */
    memset(&loc, 0xa5, sizeof(loc));
    rc = sr_image_locate(img, gpa, &loc);
    exp_rc = model_locate(&m, gpa, &want);
    FUZZ_CHECK(rc == exp_rc);
    FUZZ_CHECK(loc.run == want.run);
    FUZZ_CHECK(loc.run >= 1);
    if (rc == 0)
      FUZZ_CHECK(loc.file_off == want.file_off);

    /* read: the model copies mapped runs up to the first other outcome. */
    buf = malloc(len + 1);
    exp = malloc(len + 1);
    FUZZ_CHECK(buf != NULL && exp != NULL);
    memset(buf, 0x5a, len + 1);
    rc = sr_image_read(img, gpa, buf, len, &done);
    if (len > 0 && len - 1 > UINT64_MAX - gpa) {
      exp_rc = SR_EINVAL;
    } else {
      exp_rc = 0;
      while (exp_done < len) {
        int r = model_locate(&m, gpa + exp_done, &want);
        size_t n;
        if (r != 0) {
          exp_rc = r;
          break;
        }
        n = want.run < len - exp_done ? (size_t)want.run : len - exp_done;
        memcpy(exp + exp_done, file + want.file_off, n);
        exp_done += n;
      }
    }
    if (rc != exp_rc || done != exp_done) {
      fprintf(stderr, "read gpa=%#llx len=%zu: rc=%d done=%zu, want %d %zu\n",
              (unsigned long long)gpa, len, rc, done, exp_rc, exp_done);
    }
    FUZZ_CHECK(rc == exp_rc);
    FUZZ_CHECK(done == exp_done);
    FUZZ_CHECK(done <= len);
    FUZZ_CHECK(memcmp(buf, exp, done) == 0);
    FUZZ_CHECK(buf[len] == 0x5a); /* nothing written past len */
    free(buf);
    free(exp);
  }
}

/* Opens fd with layout; checks the result is `expect` (or ENOMEM), that
 * the error leaves *out NULL, and exercises a successful open. */
static void try_open(int fd, const sr_layout_t* layout, int expect,
                     const int* also, size_t nalso, const uint8_t* file,
                     size_t size, fuzz_in_t* p, const sr_segment_t* want_seg,
                     size_t want_nseg, sr_layout_kind_t want_kind) {
  sr_image_t* img = (sr_image_t*)(uintptr_t)1;
  int rc = sr_image_open_fd(&img, fd, layout);
  bool ok = rc == expect || rc == SR_ENOMEM;
  size_t i;

  for (i = 0; i < nalso; i++)
    ok = ok || rc == also[i];
  if (!ok)
    fprintf(stderr, "open kind %d: rc %d (%s), expected %d\n",
            (int)layout->kind, rc, sr_err_name(rc), expect);
  FUZZ_CHECK(ok);
  if (rc != 0) {
    FUZZ_CHECK(img == NULL);
    return;
  }
  FUZZ_CHECK(img != NULL);
  if (want_kind != SR_LAYOUT_AUTO)
    FUZZ_CHECK(sr_image_layout_kind(img) == want_kind);
  if (want_seg != NULL) {
    const sr_segment_t* seg = NULL;
    size_t nseg = sr_image_segments(img, &seg);
    FUZZ_CHECK(nseg == want_nseg);
    for (i = 0; i < nseg; i++) {
      FUZZ_CHECK(seg[i].gpa == want_seg[i].gpa);
      FUZZ_CHECK(seg[i].len == want_seg[i].len);
      FUZZ_CHECK(seg[i].file_off == want_seg[i].file_off);
    }
  }
  exercise(img, file, size, p);
  sr_image_close(img);
}

/* Segments derived from the parameters: mostly sorted and page-sized so
 * that many are valid, with raw 64-bit values now and then. */
static size_t derive_segments(fuzz_in_t* p, sr_segment_t* seg,
                              uint64_t file_size) {
  uint8_t ctl = fuzz_u8(p);
  size_t n = ctl % MAX_SEG, i;
  uint64_t at = 0;

  for (i = 0; i < n; i++) {
    uint8_t m = fuzz_u8(p);
    if (m & 1) {
      seg[i].gpa = fuzz_u64(p);
      seg[i].len = fuzz_u64(p);
      seg[i].file_off = fuzz_u64(p);
    } else {
      uint64_t unit = (m & 2) ? 4096 : 1;
      at += (uint64_t)fuzz_u16(p) * unit;
      if (m & 4)
        at += G4;
      seg[i].gpa = at;
      seg[i].len = (m & 8) ? (uint64_t)fuzz_u16(p) * unit
                           : (file_size >> (fuzz_u8(p) % 8));
      seg[i].file_off = (m & 16) ? (uint64_t)fuzz_u16(p) * unit : 0;
      at += seg[i].len;
    }
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_in_t p;
  sr_layout_t layout;
  sr_segment_t seg[MAX_SEG], pre[2];
  size_t nseg, npre;
  bool is_elf = size >= 4 && memcmp(data, "\177ELF", 4) == 0;
  int empty = size == 0 ? SR_EBADLAYOUT : 0;
  static const int elf_errs[] = {SR_EBADELF, SR_EBADLAYOUT};
  int fd, rc, k;

  if (size > MAX_INPUT)
    return 0;
  fd = fuzz_memfd("fuzz-image", data, size);
  FUZZ_CHECK(fd >= 0);
  fuzz_in_init(&p, data + (size > PARAM_BYTES ? size - PARAM_BYTES : 0),
               size > PARAM_BYTES ? PARAM_BYTES : size);

  /* RAW over the whole file. */
  memset(&layout, 0, sizeof(layout));
  layout.kind = SR_LAYOUT_RAW;
  seg[0].gpa = 0;
  seg[0].len = size;
  seg[0].file_off = 0;
  try_open(fd, &layout, empty, NULL, 0, data, size, &p, seg, 1, SR_LAYOUT_RAW);

  /* RAW with a derived low (may exceed the file: the tail is beyond). */
  layout.low = fuzz_u8(&p) & 1 ? fuzz_u64(&p) : fuzz_u32(&p);
  seg[0].len = layout.low != 0 ? layout.low : size;
  try_open(fd, &layout, empty, NULL, 0, data, size, &p, seg, 1, SR_LAYOUT_RAW);

  /* SEGMENTS: result predicted by the validation rules. */
  nseg = derive_segments(&p, seg, size);
  memset(&layout, 0, sizeof(layout));
  layout.kind = SR_LAYOUT_SEGMENTS;
  layout.seg = seg;
  layout.nseg = nseg;
  if (nseg == 0) {
    layout.low = fuzz_u16(&p);
    pre[0].gpa = 0;
    pre[0].len = layout.low != 0 ? layout.low : size;
    pre[0].file_off = 0;
    try_open(fd, &layout, empty, NULL, 0, data, size, &p, pre, 1,
             SR_LAYOUT_RAW);
  } else {
    rc = size > 0 && model_segments_valid(seg, nseg, size) ? 0 : SR_EBADLAYOUT;
    try_open(fd, &layout, rc, NULL, 0, data, size, &p, seg, nseg,
             SR_LAYOUT_SEGMENTS);
  }

  /* AUTO: ELF if the magic is there, else RAW over the whole file. */
  memset(&layout, 0, sizeof(layout));
  layout.kind = SR_LAYOUT_AUTO;
  if (is_elf) {
    try_open(fd, &layout, 0, elf_errs, 2, data, size, &p, NULL, 0,
             SR_LAYOUT_ELF);
  } else {
    seg[0].gpa = 0;
    seg[0].len = size;
    seg[0].file_off = 0;
    try_open(fd, &layout, empty, NULL, 0, data, size, &p, seg, 1,
             SR_LAYOUT_RAW);
  }

  /* ELF forced: whatever the bytes are. */
  layout.kind = SR_LAYOUT_ELF;
  try_open(fd, &layout, is_elf ? 0 : SR_EBADELF, elf_errs, 2, data, size, &p,
           NULL, 0, SR_LAYOUT_ELF);

  /* PC and Q35 with a derived RAM size and max-ram-below-4g. */
  for (k = 0; k < 2; k++) {
    uint8_t m = fuzz_u8(&p);
    uint64_t ram, below;

    memset(&layout, 0, sizeof(layout));
    layout.kind = k == 0 ? SR_LAYOUT_PC : SR_LAYOUT_Q35;
    ram = (m & 1) ? 0 : (uint64_t)fuzz_u32(&p) << (fuzz_u8(&p) % 24);
    if (m & 2)
      ram = fuzz_u64(&p);
    below = (m & 4) ? (uint64_t)fuzz_u32(&p) << (fuzz_u8(&p) % 4) : 0;
    layout.ram_size = ram;
    layout.below_4g = below;
    rc = model_preset(layout.kind, ram != 0 ? ram : size, below, pre, &npre);
    if (rc == 0) {
      sr_segment_t got[2];
      size_t ngot = 0;
      FUZZ_CHECK(sr_layout_preset(layout.kind, ram != 0 ? ram : size, below,
                                  got, &ngot) == 0);
      FUZZ_CHECK(ngot == npre);
      FUZZ_CHECK(memcmp(got, pre, npre * sizeof(got[0])) == 0);
    }
    if (size == 0 && ram == 0)
      rc = SR_EBADLAYOUT;
    {
      static const int pc_errs[] = {SR_EBADLAYOUT, SR_EINVAL};
      /* An empty file may be refused before or after the preset. */
      try_open(fd, &layout, rc, pc_errs, size == 0 ? 2 : 0, data, size, &p,
               rc == 0 ? pre : NULL, npre, layout.kind);
    }
  }

  close(fd);
  return 0;
}
