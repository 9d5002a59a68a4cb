/* What a kit hands to readers: an image over its fd, and ELF64 cores of its
 * guest RAM in the shape QEMU's dump-guest-memory writes (ET_CORE,
 * EM_X86_64, a PT_NOTE, one PT_LOAD per segment with p_paddr = GPA and
 * p_offset page aligned). Built on the kit's public API only. The copy
 * follows the kit file's data extents (SEEK_DATA/SEEK_HOLE) and skips
 * all-zero pages, so the core stays as sparse as the kit: a 1 GiB kit with a
 * few pages written costs a few pages. No notes are written (p_filesz 0).
 */
#include "swapread/kit.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ELF_PAGE UINT64_C(4096)
#define ELF_COPY_BUF (UINT64_C(1) << 16)

int sr_kit_open_image(const sr_kit_t* kit, sr_image_t** out) {
  sr_layout_t layout;
  if (kit == NULL || out == NULL)
    return SR_EINVAL;
  sr_kit_layout(kit, &layout);
  return sr_image_open_fd(out, sr_kit_fd(kit), &layout);
}

static uint64_t page_up(uint64_t x) {
  return (x + ELF_PAGE - 1) & ~(ELF_PAGE - 1);
}

static bool all_zero(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != 0)
      return false;
  }
  return true;
}

static int pwrite_all(int fd, const void* buf, size_t len, uint64_t off) {
  const unsigned char* p = buf;
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

/* Copies src [from, to) to dst at dst_off + (pos - from), writing only the
 * pages that hold a non-zero byte. src bytes past EOF read as zero. */
static int copy_data(int src, int dst, uint64_t from, uint64_t to,
                     uint64_t dst_off, unsigned char* buf) {
  uint64_t pos = from;
  while (pos < to) {
    size_t want = (size_t)(to - pos < ELF_COPY_BUF ? to - pos : ELF_COPY_BUF);
    ssize_t n = pread(src, buf, want, (off_t)pos);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return 0; /* end of file: the rest is zero */
    for (size_t i = 0; i < (size_t)n; i += ELF_PAGE) {
      size_t k = (size_t)n - i < ELF_PAGE ? (size_t)n - i : ELF_PAGE;
      if (!all_zero(buf + i, k)) {
        int rc = pwrite_all(dst, buf + i, k, dst_off + (pos - from) + i);
        if (rc != 0)
          return rc;
      }
    }
    pos += (uint64_t)n;
  }
  return 0;
}

/* Copies the file range [from, from + len) of src, visiting only its data
 * extents when the file system reports them. */
static int copy_sparse(int src, int dst, uint64_t from, uint64_t len,
                       uint64_t dst_off, unsigned char* buf) {
  uint64_t end = from + len;
  uint64_t pos = from;
  while (pos < end) {
    off_t data = lseek(src, (off_t)pos, SEEK_DATA);
    off_t hole;
    uint64_t stop;
    int rc;
    if (data < 0) {
      if (errno == ENXIO)
        return 0; /* no data past pos */
      return copy_data(src, dst, pos, end, dst_off + (pos - from), buf);
    }
    if ((uint64_t)data >= end)
      return 0;
    hole = lseek(src, data, SEEK_HOLE);
    stop = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
    rc = copy_data(src, dst, (uint64_t)data, stop,
                   dst_off + ((uint64_t)data - from), buf);
    if (rc != 0)
      return rc;
    pos = stop;
  }
  return 0;
}

int sr_kit_write_elf(const sr_kit_t* kit, const char* path) {
  sr_layout_t layout;
  sr_segment_t raw;
  const sr_segment_t* seg;
  size_t nseg;
  Elf64_Ehdr eh;
  Elf64_Phdr* ph;
  unsigned char* buf;
  uint64_t off;
  int fd;
  int rc;

  if (kit == NULL || path == NULL)
    return SR_EINVAL;
  sr_kit_layout(kit, &layout);
  if (layout.kind == SR_LAYOUT_RAW) {
    raw.gpa = 0;
    raw.len = layout.low;
    raw.file_off = 0;
    seg = &raw;
    nseg = 1;
  } else {
    seg = layout.seg;
    nseg = layout.nseg;
  }
  if (nseg + 1 >= PN_XNUM)
    return SR_EINVAL;

  ph = calloc(nseg + 1, sizeof(*ph));
  buf = malloc(ELF_COPY_BUF);
  if (ph == NULL || buf == NULL) {
    rc = SR_ENOMEM;
    goto err_free;
  }
  memset(&eh, 0, sizeof(eh));
  memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
  eh.e_type = ET_CORE;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof(eh);
  eh.e_ehsize = sizeof(eh);
  eh.e_phentsize = sizeof(*ph);
  eh.e_phnum = (Elf64_Half)(nseg + 1);

  off = sizeof(eh) + (nseg + 1) * sizeof(*ph);
  ph[0].p_type = PT_NOTE;
  ph[0].p_offset = off;
  off = page_up(off);
  for (size_t i = 0; i < nseg; i++) {
    ph[i + 1].p_type = PT_LOAD;
    ph[i + 1].p_offset = off;
    ph[i + 1].p_paddr = seg[i].gpa;
    ph[i + 1].p_filesz = seg[i].len;
    ph[i + 1].p_memsz = seg[i].len;
    off = page_up(off + seg[i].len);
  }

  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = -errno;
    goto err_free;
  }
  rc = pwrite_all(fd, &eh, sizeof(eh), 0);
  if (rc == 0)
    rc = pwrite_all(fd, ph, (nseg + 1) * sizeof(*ph), sizeof(eh));
  for (size_t i = 0; i < nseg && rc == 0; i++)
    rc = copy_sparse(sr_kit_fd(kit), fd, seg[i].file_off, seg[i].len,
                     ph[i + 1].p_offset, buf);
  if (rc == 0 && ftruncate(fd, (off_t)off) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc != 0)
    unlink(path);

err_free:
  free(ph);
  free(buf);
  return rc;
}
