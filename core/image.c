/* The guest physical image: a read-only mapping of a RAM file or dump and
 * the segments that place guest-physical addresses in it. Opening always
 * uses O_RDONLY and PROT_READ/MAP_SHARED (nothing here can write into the
 * guest); a caller's fd is dup'ed. Every GPA has one outcome: mapped, hole
 * (no segment covers it) or beyond the end of the file (a segment covers it
 * but its file offset is at or past the usable file size). Reads copy under
 * a fault scope (core/fault.c): when the file shrank under us the SIGBUS is
 * caught, the usable size is lowered to the new file size and the read
 * reports SR_EBEYOND. Limits: a shrink is noticed only when a load faults,
 * so bytes between the new end of file and the end of its last page read as
 * zeros until then; a file that grows is not remapped (the size seen at
 * open is the most that is ever read).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "image_internal.h"

/* Copies never cross a 4 KiB boundary of the source, so a fault inside
 * one copy means none of its bytes were readable. */
#define COPY_CHUNK 4096

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

static uint64_t usable_size(const sr_image_t* image) {
  return __atomic_load_n(&image->file_size, __ATOMIC_RELAXED);
}

static int errno_to_err(int e) {
  switch (e) {
    case ENOENT:
      return SR_ENOENT;
    case EACCES:
    case EPERM:
      return SR_EACCES;
    case EISDIR:
      return SR_EISDIR;
    case ENOMEM:
      return SR_ENOMEM;
    case ENXIO: /* open(2) of a socket */
      return SR_ESPIPE;
    case EBADF:
      return SR_EBADF;
    case ENOTDIR:
      return SR_ENOTDIR;
    case ELOOP:
      return SR_ELOOP;
    case ENAMETOOLONG:
      return SR_ENAMETOOLONG;
    case EMFILE:
      return SR_EMFILE;
    case ENFILE:
      return SR_ENFILE;
    case EFBIG:
    case EOVERFLOW:
      return SR_EFBIG;
    default:
      return SR_EIO; /* every code returned is in SR_ERRNO_MAP */
  }
}

/* Does the file start with the ELF magic? Short files do not. */
static int has_elf_magic(int fd, uint64_t file_size) {
  unsigned char magic[4];

  if (file_size < sizeof(magic))
    return 0;
  if (pread(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic))
    return 0;
  return magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' &&
         magic[3] == 'F';
}

static int one_segment(sr_image_t* image, uint64_t gpa, uint64_t len,
                       uint64_t file_off) {
  image->seg = malloc(sizeof(*image->seg));
  if (image->seg == NULL)
    return SR_ENOMEM;
  image->seg[0].gpa = gpa;
  image->seg[0].len = len;
  image->seg[0].file_off = file_off;
  image->nseg = 1;
  return 0;
}

/* Resolves the layout into image->kind, image->seg and image->nseg. */
static int build_layout(sr_image_t* image, const sr_layout_t* layout) {
  sr_layout_kind_t kind = layout != NULL ? layout->kind : SR_LAYOUT_AUTO;
  uint64_t size = image->file_size;
  sr_segment_t preset[2];
  size_t n;
  int err;

  switch (kind) {
    case SR_LAYOUT_AUTO:
      if (has_elf_magic(image->fd, size)) {
        image->kind = SR_LAYOUT_ELF;
        return sr__elf_segments(image->fd, size, &image->seg, &image->nseg);
      }
      image->kind = SR_LAYOUT_RAW;
      return one_segment(image, 0, size, 0);

    case SR_LAYOUT_RAW:
      image->kind = SR_LAYOUT_RAW;
      return one_segment(image, 0, layout->low != 0 ? layout->low : size, 0);

    case SR_LAYOUT_SEGMENTS:
      if (layout->nseg == 0) {
        image->kind = SR_LAYOUT_RAW;
        return one_segment(image, 0, layout->low != 0 ? layout->low : size, 0);
      }
      if (layout->seg == NULL)
        return SR_EINVAL;
      if (layout->nseg > SIZE_MAX / sizeof(sr_segment_t))
        return SR_ENOMEM;
      err = sr__layout_check(layout->seg, layout->nseg, size);
      if (err != 0)
        return err;
      image->seg = malloc(layout->nseg * sizeof(sr_segment_t));
      if (image->seg == NULL)
        return SR_ENOMEM;
      memcpy(image->seg, layout->seg, layout->nseg * sizeof(sr_segment_t));
      image->nseg = layout->nseg;
      image->kind = SR_LAYOUT_SEGMENTS;
      return 0;

    case SR_LAYOUT_PC:
    case SR_LAYOUT_Q35:
      err = sr_layout_preset(kind,
                             layout->ram_size != 0 ? layout->ram_size : size,
                             layout->below_4g, preset, &n);
      if (err != 0)
        return err;
      image->seg = malloc(n * sizeof(sr_segment_t));
      if (image->seg == NULL)
        return SR_ENOMEM;
      memcpy(image->seg, preset, n * sizeof(sr_segment_t));
      image->nseg = n;
      image->kind = kind;
      return 0;

    case SR_LAYOUT_ELF:
      image->kind = SR_LAYOUT_ELF;
      return sr__elf_segments(image->fd, size, &image->seg, &image->nseg);
  }
  return SR_EINVAL;
}

/* The bytes of seg that lie inside the first `size` bytes of the file,
 * rounded down to a multiple of 8 (see sr__flat_t); 0 for a segment the
 * lean path does not use. */
static uint64_t flat_len(const sr_segment_t* seg, uint64_t size) {
  uint64_t n;

  if (seg->file_off >= size || seg->gpa % 8 != 0 || seg->file_off % 8 != 0)
    return 0;
  n = seg->len < size - seg->file_off ? seg->len : size - seg->file_off;
  return n & ~UINT64_C(7);
}

/* Fills image->flat with the SR__NFLAT largest segments (ties: the lower
 * GPA); one whose GPA or file offset is not 8-aligned stays unused (its
 * entries would be misaligned loads). Needs seg, file_size and base. */
static void flat_init(sr_image_t* image) {
  size_t i, k, pick[SR__NFLAT];
  size_t n = 0;

  for (i = 0; i < image->nseg; i++) {
    for (k = n; k > 0 && image->seg[pick[k - 1]].len < image->seg[i].len; k--)
      if (k < SR__NFLAT)
        pick[k] = pick[k - 1];
    if (k < SR__NFLAT) {
      pick[k] = i;
      if (n < SR__NFLAT)
        n++;
    }
  }
  memset(image->flat, 0, sizeof(image->flat));
  for (k = 0; k < n; k++) {
    const sr_segment_t* seg = &image->seg[pick[k]];
    sr__flat_t* f = &image->flat[k];
    f->gpa = seg->gpa;
    f->len = flat_len(seg, image->file_size);
    f->p = f->len != 0 ? image->base + seg->file_off : image->base;
  }
}

/* Takes ownership of fd (closed on error). Checks the file type, maps the
 * file and builds the layout. */
static int open_owned_fd(sr_image_t** out, int fd, const sr_layout_t* layout) {
  sr_image_t* image;
  struct stat st;
  void* base;
  long page;
  int err;

  err = sr__fault_init();
  if (err != 0)
    goto err_close_fd;
  if (fstat(fd, &st) != 0) {
    err = errno_to_err(errno);
    goto err_close_fd;
  }
  if (S_ISDIR(st.st_mode)) {
    err = SR_EISDIR;
    goto err_close_fd;
  }
  if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
    err = SR_ESPIPE;
    goto err_close_fd;
  }
  if (!S_ISREG(st.st_mode)) {
    err = SR_ENODEV;
    goto err_close_fd;
  }
  if (st.st_size <= 0) {
    err = SR_EBADLAYOUT;
    goto err_close_fd;
  }
  if ((uint64_t)st.st_size > SIZE_MAX / 2) {
    err = SR_EFBIG;
    goto err_close_fd;
  }

  image = calloc(1, sizeof(*image));
  if (image == NULL) {
    err = SR_ENOMEM;
    goto err_close_fd;
  }
  page = sysconf(_SC_PAGESIZE);
  if (page <= 0)
    page = 4096;
  image->fd = fd;
  image->file_size = (uint64_t)st.st_size;
  image->map_len =
      (image->file_size + (uint64_t)page - 1) & ~((uint64_t)page - 1);

  err = build_layout(image, layout);
  if (err != 0)
    goto err_free_image;

  base = mmap(NULL, (size_t)image->map_len, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    err = errno_to_err(errno);
    goto err_free_image;
  }
  image->base = base;
  flat_init(image);
  *out = image;
  return 0;

err_free_image:
  free(image->seg);
  free(image);
err_close_fd:
  close(fd);
  return err;
}

static int check_layout_arg(const sr_layout_t* layout) {
  if (layout == NULL)
    return 0;
  switch (layout->kind) {
    case SR_LAYOUT_AUTO:
    case SR_LAYOUT_RAW:
    case SR_LAYOUT_SEGMENTS:
    case SR_LAYOUT_PC:
    case SR_LAYOUT_Q35:
    case SR_LAYOUT_ELF:
      return 0;
  }
  return SR_EINVAL;
}

int sr_image_open(sr_image_t** out, const char* path,
                  const sr_layout_t* layout) {
  int fd;

  if (out == NULL)
    return SR_EINVAL;
  *out = NULL;
  if (path == NULL || check_layout_arg(layout) != 0)
    return SR_EINVAL;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
   * rejected with SR_ESPIPE); it changes nothing for a regular file. */
  do
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return errno_to_err(errno);
  return open_owned_fd(out, fd, layout);
}

/* Our own read-only fd for the caller's fd: a dup when the caller's is
 * O_RDONLY; for an O_RDWR fd a fresh O_RDONLY open of the same file through
 * /proc/self/fd (so the image never holds a writable fd), falling back to a
 * dup only if that reopen is impossible (no /proc; a pipe or socket, which
 * open_owned_fd then rejects). An O_WRONLY fd is only dup'ed: it gives no
 * right to read, and open_owned_fd rejects it (a pipe's write end:
 * SR_ESPIPE; a file: mmap refuses, SR_EACCES). Returns the fd or a negated
 * errno. */
static int own_readonly_fd(int fd) {
  char path[64];
  int flags, ro;

  flags = fcntl(fd, F_GETFL);
  if (flags < 0)
    return -errno;
  if ((flags & O_ACCMODE) == O_RDWR) {
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (ro >= 0)
      return ro;
  }
  ro = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return ro >= 0 ? ro : -errno;
}

int sr_image_open_fd(sr_image_t** out, int fd, const sr_layout_t* layout) {
  int own_fd;

  if (out == NULL)
    return SR_EINVAL;
  *out = NULL;
  if (fd < 0 || check_layout_arg(layout) != 0)
    return SR_EINVAL;
  own_fd = own_readonly_fd(fd);
  if (own_fd < 0)
    return errno_to_err(-own_fd);
  return open_owned_fd(out, own_fd, layout);
}

void sr_image_close(sr_image_t* image) {
  if (image == NULL)
    return;
  munmap((void*)image->base, (size_t)image->map_len);
  close(image->fd);
  free(image->seg);
  free(image);
}

/* Binary search: the last segment with seg.gpa <= gpa, or NULL. */
static const sr_segment_t* find_segment(const sr_image_t* image, uint64_t gpa,
                                        size_t* next) {
  size_t lo = 0, hi = image->nseg;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (image->seg[mid].gpa <= gpa)
      lo = mid + 1;
    else
      hi = mid;
  }
  *next = lo; /* first segment with seg.gpa > gpa */
  return lo > 0 ? &image->seg[lo - 1] : NULL;
}

/* See image_internal.h. A hole's run is the distance to the next segment,
 * or to 2^64 (saturated to UINT64_MAX when gpa is 0). */
int sr__image_locate(const sr_image_t* image, uint64_t gpa,
                     const unsigned char** p, uint64_t* run) {
  const sr_segment_t* s;
  uint64_t delta, off, size, left;
  size_t next;

  assert(image != NULL);
  s = find_segment(image, gpa, &next);
  if (s == NULL || gpa - s->gpa >= s->len) {
    if (run != NULL) {
      if (next < image->nseg)
        *run = image->seg[next].gpa - gpa;
      else
        *run = gpa == 0 ? UINT64_MAX : UINT64_MAX - gpa + 1;
    }
    return SR_EHOLE;
  }
  delta = gpa - s->gpa;
  left = s->len - delta;
  size = usable_size(image);
  /* file_off + delta cannot wrap for validated segments except ELF/preset
   * parts past EOF; treat a wrap as beyond. */
  if (s->file_off > UINT64_MAX - delta || s->file_off + delta >= size) {
    if (run != NULL)
      *run = left;
    return SR_EBEYOND;
  }
  off = s->file_off + delta;
  assert(size <= image->map_len);
  if (p != NULL)
    *p = image->base + off;
  if (run != NULL)
    *run = left < size - off ? left : size - off;
  return 0;
}

int sr_image_locate(const sr_image_t* image, uint64_t gpa, sr_locate_t* out) {
  const unsigned char* p;
  uint64_t run;
  int err;

  if (image == NULL || out == NULL)
    return SR_EINVAL;
  err = sr__image_locate(image, gpa, &p, &run);
  out->file_off = err == 0 ? (uint64_t)(p - image->base) : 0;
  out->run = run;
  return err;
}

/* The 8 bytes at gpa one by one (an entry across an extent boundary):
 * 0, SR_EHOLE or SR_EBEYOND (SR_EHOLE if they would wrap past 2^64). */
static int gather64(const sr_image_t* image, uint64_t gpa, uint64_t* value) {
  const unsigned char* p;
  uint64_t v = 0;
  int err, i;

  if (gpa > UINT64_MAX - 7)
    return SR_EHOLE;
  for (i = 0; i < 8; i++) {
    err = sr__image_locate(image, gpa + (uint64_t)i, &p, NULL);
    if (err != 0)
      return err;
    v |= (uint64_t)*p << (8 * i);
  }
  *value = v;
  return 0;
}

/* See image_internal.h. The slow path (an entry straddling the end of a
 * segment or of the file) gathers byte by byte. */
int sr__image_load64(const sr_image_t* image, uint64_t gpa, uint64_t* value) {
  const unsigned char* p;
  uint64_t run, v = 0;
  int err;

  assert(image != NULL && value != NULL);
  assert(gpa % 8 == 0);
  err = sr__image_locate(image, gpa, &p, &run);
  if (err != 0)
    return err;
  if (run >= 8) {
    if (((uintptr_t)p & 7) == 0)
      v = *(const volatile uint64_t*)(const void*)p;
    else
      memcpy(&v, p, sizeof(v));
    *value = v;
    return 0;
  }
  return gather64(image, gpa, value);
}

/* Lowers *v to at most `to` (never raises it, whatever other threads
 * store meanwhile). */
static void lower_to(uint64_t* v, uint64_t to) {
  uint64_t cur = __atomic_load_n(v, __ATOMIC_RELAXED);

  while (to < cur &&
         !__atomic_compare_exchange_n(v, &cur, to, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
}

/* See image_internal.h. fstat may fail (then nothing changes); the size
 * and the flat extents only ever go down. */
void sr__image_note_fault(const sr_image_t* image) {
  sr_image_t* mut = (sr_image_t*)image; /* heap object, never const */
  struct stat st;
  uint64_t now;
  size_t k;

  assert(image != NULL);
  if (fstat(image->fd, &st) != 0 || st.st_size < 0)
    return;
  now = (uint64_t)st.st_size;
  lower_to(&mut->file_size, now);
  for (k = 0; k < SR__NFLAT; k++) {
    /* a used extent starts at file offset p - base (see flat_init) */
    uint64_t off = (uint64_t)(image->flat[k].p - image->base);
    lower_to(&mut->flat[k].len, off < now ? (now - off) & ~UINT64_C(7) : 0);
  }
}

/* The copy loop; runs inside the caller's fault scope. *progress counts
 * the bytes copied so far (also read after a fault). Not inlined: nothing
 * the compiler keeps in sr_image_read's frame may change between its
 * sigsetjmp and a fault (GCC may otherwise park return values in stack
 * temporaries that a siglongjmp makes stale). */
static NOINLINE int copy_out(const sr_image_t* image, uint64_t gpa,
                             unsigned char* buf, size_t len,
                             volatile size_t* progress) {
  const unsigned char* p;
  uint64_t run;
  size_t n;
  int err;

  while (*progress < len) {
    size_t at = *progress;
    err = sr__image_locate(image, gpa + at, &p, &run);
    if (err != 0)
      return err;
    n = len - at;
    if (run < n)
      n = (size_t)run;
    if (COPY_CHUNK - ((uintptr_t)p % COPY_CHUNK) < n)
      n = COPY_CHUNK - ((uintptr_t)p % COPY_CHUNK);
    memcpy(buf + at, p, n);
    *progress = at + n;
  }
  return 0;
}

/* The arguments of a physical range access: SR_EINVAL (NULL, or a range
 * that wraps), 0 (nothing to do: len 0), or 1 (go ahead). */
static int range_check(const sr_image_t* image, uint64_t gpa, const void* buf,
                       size_t len) {
  if (image == NULL || (buf == NULL && len != 0))
    return SR_EINVAL;
  if (len == 0)
    return 0;
  if ((uint64_t)len - 1 > UINT64_MAX - gpa)
    return SR_EINVAL; /* [gpa, gpa + len) wraps */
  return 1;
}

int sr_image_read(const sr_image_t* image, uint64_t gpa, void* buf, size_t len,
                  size_t* done) {
  sr__fault_scope_t scope;
  volatile size_t progress = 0;
  int err;

  if (done != NULL)
    *done = 0;
  err = range_check(image, gpa, buf, len);
  if (err != 1)
    return err;
  if (SR__FAULT_CATCH(&scope)) {
    sr__image_note_fault(image);
    if (done != NULL)
      *done = progress;
    return SR_EBEYOND;
  }
  sr__fault_enter(&scope);
  err = copy_out(image, gpa, buf, len, &progress);
  sr__fault_leave(&scope);
  if (done != NULL)
    *done = progress;
  return err;
}

/* memcmp of [gpa, gpa + len) against buf, run by run (see copy_out). */
static NOINLINE int compare_out(const sr_image_t* image, uint64_t gpa,
                                const unsigned char* buf, size_t len) {
  const unsigned char* p;
  uint64_t run;
  size_t at = 0, n;
  int err;

  while (at < len) {
    err = sr__image_locate(image, gpa + at, &p, &run);
    if (err != 0)
      return err;
    n = len - at;
    if (run < n)
      n = (size_t)run;
    if (memcmp(buf + at, p, n) != 0)
      return 1;
    at += n;
  }
  return 0;
}

int sr_image_cmp(const sr_image_t* image, uint64_t gpa, const void* buf,
                 size_t len) {
  sr__fault_scope_t scope;
  int err;

  err = range_check(image, gpa, buf, len);
  if (err != 1)
    return err;
  if (SR__FAULT_CATCH(&scope)) {
    sr__image_note_fault(image);
    return SR_EBEYOND;
  }
  sr__fault_enter(&scope);
  err = compare_out(image, gpa, buf, len);
  sr__fault_leave(&scope);
  return err;
}

/* The mapped part of the segment holding gpa, for sr_image_diff64: an
 * entry at lo + d with d < n lies wholly inside it, at p + d. n == 0:
 * nothing cached (hole, beyond the file, or under 8 bytes). */
typedef struct span_s {
  uint64_t lo, n;
  const unsigned char* p;
} span_t;

static void span_find(const sr_image_t* image, uint64_t gpa, span_t* c) {
  const sr_segment_t* s;
  uint64_t size = usable_size(image);
  uint64_t len;
  size_t next;

  c->lo = 0;
  c->n = 0;
  c->p = NULL;
  s = find_segment(image, gpa, &next);
  if (s == NULL || gpa - s->gpa >= s->len || s->file_off >= size)
    return;
  len = s->len < size - s->file_off ? s->len : size - s->file_off;
  if (len < 8)
    return;
  c->lo = s->gpa;
  c->n = len - 7;
  c->p = image->base + s->file_off;
}

/* One entry the slow way: its segment looked up (and cached in *c), or
 * gathered byte by byte. Whether it differs from expect or cannot be
 * loaded. */
static bool diff_one(const sr_image_t* image, uint64_t g, uint64_t expect,
                     span_t* c) {
  uint64_t d = g - c->lo, v = 0;

  if (d >= c->n) {
    span_find(image, g, c);
    d = g - c->lo;
    if (d >= c->n)
      return gather64(image, g, &v) != 0 || v != expect;
  }
  memcpy(&v, c->p + d, sizeof(v));
  return v != expect;
}

#define DIFF_GROUP 8

/* The compare loop of sr_image_diff64; runs inside the caller's fault
 * scope, remembering the last segment hit. Groups of DIFF_GROUP entries
 * that all lie in the cached segment are loaded and compared without a
 * branch per entry; a group with a miss or a difference is redone entry
 * by entry. Every 64 entries it saves how far it got (*mark, *mark_nd)
 * so that a fault can resume from there. Returns the number of indices
 * written to diff. Not inlined, as copy_out. */
static NOINLINE size_t diff_run(const sr_image_t* image, const uint64_t* gpa,
                                const uint64_t* expect, size_t n, size_t* diff,
                                volatile size_t* mark,
                                volatile size_t* mark_nd) {
  span_t c = {0, 0, NULL};
  size_t i = 0, nd = 0, u;
  uint64_t d[DIFF_GROUP], v, out, x;

  for (; i + DIFF_GROUP <= n; i += DIFF_GROUP) {
    if ((i & 63) == 0) {
      *mark = i;
      *mark_nd = nd;
    }
    out = 0;
    for (u = 0; u < DIFF_GROUP; u++) {
      d[u] = gpa[i + u] - c.lo;
      out |= (uint64_t)(d[u] >= c.n);
    }
    if (out == 0) {
      x = 0;
      for (u = 0; u < DIFF_GROUP; u++) {
        memcpy(&v, c.p + d[u], sizeof(v));
        x |= v ^ expect[i + u];
      }
      if (x == 0)
        continue;
    }
    for (u = 0; u < DIFF_GROUP; u++)
      if (diff_one(image, gpa[i + u], expect[i + u], &c))
        diff[nd++] = i + u;
  }
  if ((i & 63) == 0) {
    *mark = i;
    *mark_nd = nd;
  }
  for (; i < n; i++)
    if (diff_one(image, gpa[i], expect[i], &c))
      diff[nd++] = i;
  return nd;
}

int sr_image_diff64(const sr_image_t* image, const uint64_t* gpa,
                    const uint64_t* expect, size_t n, size_t* diff,
                    size_t* ndiff) {
  sr__fault_scope_t scope;
  volatile size_t mark = 0, mark_nd = 0;
  uint64_t v;
  size_t i, nd;

  if (ndiff != NULL)
    *ndiff = 0;
  if (image == NULL || ndiff == NULL ||
      (n > 0 && (gpa == NULL || expect == NULL || diff == NULL)))
    return SR_EINVAL;
  if (SR__FAULT_CATCH(&scope)) {
    /* The file shrank: finish from the last mark one entry at a time
     * (each read has its own scope and sees the lowered size). */
    sr__image_note_fault(image);
    nd = mark_nd;
    for (i = mark; i < n; i++) {
      if (sr_image_read(image, gpa[i], &v, sizeof(v), NULL) != 0 ||
          v != expect[i])
        diff[nd++] = i;
    }
    *ndiff = nd;
    return 0;
  }
  sr__fault_enter(&scope);
  nd = diff_run(image, gpa, expect, n, diff, &mark, &mark_nd);
  sr__fault_leave(&scope);
  *ndiff = nd;
  return 0;
}

size_t sr_image_segments(const sr_image_t* image, const sr_segment_t** seg) {
  if (image == NULL) {
    if (seg != NULL)
      *seg = NULL;
    return 0;
  }
  if (seg != NULL)
    *seg = image->seg;
  return image->nseg;
}

uint64_t sr_image_file_size(const sr_image_t* image) {
  return image != NULL ? usable_size(image) : 0;
}

sr_layout_kind_t sr_image_layout_kind(const sr_image_t* image) {
  return image != NULL ? image->kind : SR_LAYOUT_AUTO;
}
