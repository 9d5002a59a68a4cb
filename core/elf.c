/* ELF core dumps as physical layouts. QEMU's dump-guest-memory (and virsh
 * dump --memory-only, which drives it) writes an ELF64 ET_CORE file: a
 * PT_NOTE, then one PT_LOAD per guest RAM block with p_paddr = GPA,
 * p_memsz = its size and p_offset/p_filesz = where its bytes are. This
 * module turns the PT_LOADs into segments. Every byte is read with pread
 * after checking it lies inside the file, so a malformed or shrinking file
 * can give SR_EBADELF but never an out-of-bounds read. Accepted: ELFCLASS64,
 * little endian, EV_CURRENT, ET_CORE, EM_X86_64, e_phentsize == 56, program
 * headers inside the file, the PN_XNUM extension (the real count in section
 * header 0's sh_info, as QEMU writes it for more than 65534 headers).
 * Rejected: any overflow in p_paddr + p_memsz or p_offset + p_filesz,
 * p_filesz > p_memsz, overlapping PT_LOADs (by p_memsz), no PT_LOAD at all.
 * Bytes in [p_filesz, p_memsz) are holes (not part of the segment); file
 * parts that extend past the end of the file are accepted (a truncated dump:
 * those bytes read as SR_EBEYOND).
 */
#include <assert.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_internal.h"

/* Program headers read per pread. */
#define PHDR_BATCH 128

/* Reads exactly len bytes at off, which the caller checked lie inside the
 * file; a short read (the file shrank) is a malformed file. */
static int read_at(int fd, void* buf, size_t len, uint64_t off) {
  unsigned char* p = buf;

  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return SR_EBADELF;
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

/* [off, off + len) inside [0, size)? */
static int inside(uint64_t off, uint64_t len, uint64_t size) {
  return off <= size && len <= size - off;
}

static int check_header(const Elf64_Ehdr* eh) {
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
    return SR_EBADELF;
  if (eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_ident[EI_DATA] != ELFDATA2LSB ||
      eh->e_ident[EI_VERSION] != EV_CURRENT)
    return SR_EBADELF;
  if (eh->e_type != ET_CORE || eh->e_machine != EM_X86_64 ||
      eh->e_version != EV_CURRENT)
    return SR_EBADELF;
  if (eh->e_phentsize != sizeof(Elf64_Phdr))
    return SR_EBADELF;
  return 0;
}

/* The number of program headers, following PN_XNUM to section 0. */
static int count_phdrs(int fd, uint64_t file_size, const Elf64_Ehdr* eh,
                       uint64_t* phnum) {
  Elf64_Shdr sh;
  int err;

  if (eh->e_phnum != PN_XNUM) {
    *phnum = eh->e_phnum;
    return 0;
  }
  if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
      !inside(eh->e_shoff, sizeof(sh), file_size))
    return SR_EBADELF;
  err = read_at(fd, &sh, sizeof(sh), eh->e_shoff);
  if (err != 0)
    return err;
  *phnum = sh.sh_info;
  return 0;
}

static int by_gpa(const void* a, const void* b) {
  const sr_segment_t* x = a;
  const sr_segment_t* y = b;
  return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* Spans [gpa, gpa + memsz) of the PT_LOADs, for the overlap check. */
typedef struct span_s {
  uint64_t gpa;
  uint64_t memsz;
} span_t;

static int span_by_gpa(const void* a, const void* b) {
  const span_t* x = a;
  const span_t* y = b;
  return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int append(void** arr, size_t* cap, size_t n, size_t elem) {
  void* p;
  size_t ncap;

  if (n < *cap)
    return 0;
  ncap = *cap != 0 ? *cap * 2 : 16;
  if (ncap > SIZE_MAX / elem)
    return SR_ENOMEM;
  p = realloc(*arr, ncap * elem);
  if (p == NULL)
    return SR_ENOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

/* See image_internal.h. Sorts the segments by gpa. */
int sr__elf_segments(int fd, uint64_t file_size, sr_segment_t** seg_out,
                     size_t* nseg_out) {
  Elf64_Ehdr eh;
  Elf64_Phdr ph[PHDR_BATCH];
  sr_segment_t* seg = NULL;
  span_t* span = NULL;
  size_t nseg = 0, cap_seg = 0, nspan = 0, cap_span = 0;
  uint64_t phnum, i, nload = 0;
  int err;

  assert(seg_out != NULL && nseg_out != NULL);
  if (!inside(0, sizeof(eh), file_size))
    return SR_EBADELF;
  err = read_at(fd, &eh, sizeof(eh), 0);
  if (err == 0)
    err = check_header(&eh);
  if (err == 0)
    err = count_phdrs(fd, file_size, &eh, &phnum);
  if (err != 0)
    return err;
  if (phnum == 0 || phnum > UINT64_MAX / sizeof(Elf64_Phdr) ||
      !inside(eh.e_phoff, phnum * sizeof(Elf64_Phdr), file_size))
    return SR_EBADELF;

  for (i = 0; i < phnum; i++) {
    const Elf64_Phdr* p = &ph[i % PHDR_BATCH];

    if (i % PHDR_BATCH == 0) {
      uint64_t n = phnum - i < PHDR_BATCH ? phnum - i : PHDR_BATCH;
      err = read_at(fd, ph, (size_t)n * sizeof(Elf64_Phdr),
                    eh.e_phoff + i * sizeof(Elf64_Phdr));
      if (err != 0)
        goto err_free;
    }
    /* False positive: ph[] was filled when i % PHDR_BATCH == 0 (i starts
     * at 0, and read_at returns 0 only after reading every byte). */
    // NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
    if (p->p_type != PT_LOAD)
      continue;
    err = SR_EBADELF;
    if (p->p_filesz > p->p_memsz)
      goto err_free;
    if (p->p_memsz != 0 && p->p_memsz - 1 > UINT64_MAX - p->p_paddr)
      goto err_free;
    if (p->p_offset > UINT64_MAX - p->p_filesz)
      goto err_free;
    nload++;
    if (p->p_memsz == 0)
      continue;
    err = append((void**)&span, &cap_span, nspan, sizeof(*span));
    if (err != 0)
      goto err_free;
    span[nspan].gpa = p->p_paddr;
    span[nspan].memsz = p->p_memsz;
    nspan++;
    if (p->p_filesz == 0)
      continue;
    err = append((void**)&seg, &cap_seg, nseg, sizeof(*seg));
    if (err != 0)
      goto err_free;
    seg[nseg].gpa = p->p_paddr;
    seg[nseg].len = p->p_filesz;
    seg[nseg].file_off = p->p_offset;
    nseg++;
  }

  err = SR_EBADELF;
  if (nload == 0)
    goto err_free; /* no PT_LOAD */
  if (nspan > 1)
    qsort(span, nspan, sizeof(*span), span_by_gpa);
  for (i = 1; i < nspan; i++) {
    const span_t* a = &span[i - 1];
    if (a->gpa + (a->memsz - 1) >= span[i].gpa)
      goto err_free; /* overlapping PT_LOADs */
  }
  if (nseg > 1)
    qsort(seg, nseg, sizeof(*seg), by_gpa);
  /* Sorted file parts of disjoint loads are a valid layout; past-EOF parts
   * are accepted (UINT64_MAX: no file bound). */
  err = sr__layout_check(seg, nseg, UINT64_MAX);
  assert(err == 0);
  free(span);
  *seg_out = seg;
  *nseg_out = nseg;
  return 0;

err_free:
  free(span);
  free(seg);
  return err;
}
