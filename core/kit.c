/* The holey-image kit: a writable guest RAM file for tests, its physical
 * layout and frame allocator, and page tables built in it. The kit owns a
 * file (a path or an anonymous memfd) and a MAP_SHARED writable mapping of
 * it; readers open the same file read-only and see every change at once.
 * Guest-physical addresses outside the kit's segments are holes; the frame
 * allocator is first-fit over a sorted list of free ranges (so alignment
 * gaps are reused), never frees, and never hands out GPA 0. The kit
 * walks only tables it can bound-check against its own segments and the
 * current file size, so garbage entries (written by tests on purpose) give
 * errors, never wild accesses. It trusts nothing it reads back, keeps a
 * small sorted table of the present values of entries it paged out, and is
 * not thread-safe. It also owns the test pattern (sr_kit_pattern). Entries
 * are stored in host byte order (x86-64: little endian, as the guest's).
 */
#include "swapread/kit.h"

#include "pgtable.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIT_DEFAULT_SIZE (UINT64_C(64) << 20)
/* Largest file the kit creates (fits off_t, size_t and the VA space). */
#define KIT_MAX_SIZE (UINT64_C(1) << 46)
/* Never allocate below this GPA: a zero entry must not look like a table. */
#define KIT_ALLOC_FLOOR UINT64_C(4096)
/* Largest physical address an entry can name. */
#define KIT_PHYS_LIMIT (UINT64_C(1) << 52)
/* Bits of an upper entry the kit creates: present, writable, user. */
#define KIT_UPPER (SR__P | SR__RW | SR__US)

typedef struct kit_space_s {
  uint64_t cr3; /* masked root GPA */
  int top_level;
} kit_space_t;

typedef struct kit_paged_s {
  uint64_t entry_gpa; /* key: where the entry lives */
  uint64_t value;     /* the present value before sr_kit_page_out */
} kit_paged_t;

struct sr_kit_s {
  int fd;
  unsigned char* base; /* PROT_READ | PROT_WRITE, MAP_SHARED */
  uint64_t map_len;
  uint64_t file_size; /* bytes past it are never touched */
  bool raw;           /* layout RAW with low = raw_size */
  uint64_t raw_size;
  sr_segment_t* seg; /* current layout, sorted; seg[0] covers RAW */
  size_t nseg;
  sr_segment_t* free; /* free guest RAM, sorted, inside seg[] */
  size_t nfree;
  size_t free_cap;
  kit_space_t* space;
  size_t nspace;
  size_t space_cap;
  kit_paged_t* paged; /* sorted by entry_gpa */
  size_t npaged;
  size_t paged_cap;
};

static uint64_t min_u64(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
  return a > b ? a : b;
}

static bool is_pow2(uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

/* Checks segments as an image would: each non-empty, no wrap in GPA or file
 * offset, sorted by GPA, no two overlapping in GPA or in the file. Computes
 * the file size they need. 0 or SR_EBADLAYOUT. */
static int check_segments(const sr_segment_t* seg, size_t nseg,
                          uint64_t* need) {
  uint64_t end = 0;
  for (size_t i = 0; i < nseg; i++) {
    if (seg[i].len == 0 || seg[i].gpa + seg[i].len < seg[i].gpa ||
        seg[i].file_off + seg[i].len < seg[i].file_off)
      return SR_EBADLAYOUT;
    if (i > 0 && seg[i].gpa < seg[i - 1].gpa + seg[i - 1].len)
      return SR_EBADLAYOUT;
    for (size_t j = 0; j < i; j++) {
      if (seg[i].file_off < seg[j].file_off + seg[j].len &&
          seg[j].file_off < seg[i].file_off + seg[i].len)
        return SR_EBADLAYOUT;
    }
    end = max_u64(end, seg[i].file_off + seg[i].len);
  }
  *need = end;
  return 0;
}

/* Opens the backing file: a memfd for path NULL, else created/truncated.
 * Returns the fd or a negated errno. */
static int open_backing(const char* path) {
  int fd;
  if (path == NULL)
    fd = memfd_create("swapread-kit", MFD_CLOEXEC);
  else
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  return fd < 0 ? -errno : fd;
}

/* Copies the sorted ranges in[0..n) to out without [a, b) (b > a): a range
 * cut in the middle becomes two. out has room for n + 1. Returns the count
 * written; *cut (may be NULL) says whether anything was removed. */
static size_t subtract_range_cut(const sr_segment_t* in, size_t n, uint64_t a,
                                 uint64_t b, sr_segment_t* out, bool* cut) {
  size_t k = 0;
  assert(b > a);
  if (cut != NULL)
    *cut = false;
  for (size_t i = 0; i < n; i++) {
    uint64_t end = in[i].gpa + in[i].len;
    if (end <= a || in[i].gpa >= b) {
      out[k++] = in[i];
      continue;
    }
    if (cut != NULL)
      *cut = true;
    if (in[i].gpa < a) { /* the part below [a, b) */
      out[k] = in[i];
      out[k++].len = a - in[i].gpa;
    }
    if (end > b) { /* the part above it */
      out[k].gpa = b;
      out[k].len = end - b;
      out[k++].file_off = in[i].file_off + (b - in[i].gpa);
    }
  }
  return k;
}

static size_t subtract_range(const sr_segment_t* in, size_t n, uint64_t a,
                             uint64_t b, sr_segment_t* out) {
  return subtract_range_cut(in, n, a, b, out, NULL);
}

int sr_kit_create(sr_kit_t** out, const sr_kit_opts_t* opts) {
  static const sr_kit_opts_t defaults;
  sr_kit_t* kit;
  uint64_t size;
  void* base;
  size_t nseg;
  int rc;

  if (out == NULL)
    return SR_EINVAL;
  *out = NULL;
  if (opts == NULL)
    opts = &defaults;
  if (opts->nseg > 0 && opts->seg == NULL)
    return SR_EINVAL;
  if (opts->nseg > 0) {
    rc = check_segments(opts->seg, opts->nseg, &size);
    if (rc != 0)
      return rc;
    size = max_u64(size, opts->size);
  } else {
    size = opts->size != 0 ? opts->size : KIT_DEFAULT_SIZE;
  }
  if (size > KIT_MAX_SIZE)
    return SR_EINVAL;
  nseg = opts->nseg > 0 ? opts->nseg : 1;

  kit = calloc(1, sizeof(*kit));
  if (kit == NULL)
    return SR_ENOMEM;
  kit->fd = -1;
  kit->seg = calloc(nseg, sizeof(*kit->seg));
  kit->free = calloc(nseg + 1, sizeof(*kit->free));
  if (kit->seg == NULL || kit->free == NULL) {
    rc = SR_ENOMEM;
    goto err_free_kit;
  }
  kit->nseg = nseg;
  if (opts->nseg > 0) {
    memcpy(kit->seg, opts->seg, nseg * sizeof(*kit->seg));
  } else {
    kit->raw = true;
    kit->raw_size = size;
    kit->seg[0].gpa = 0;
    kit->seg[0].len = size;
    kit->seg[0].file_off = 0;
  }
  kit->free_cap = nseg + 1;
  kit->nfree = subtract_range(kit->seg, nseg, 0, KIT_ALLOC_FLOOR, kit->free);

  kit->fd = open_backing(opts->path);
  if (kit->fd < 0) {
    rc = kit->fd;
    goto err_free_kit;
  }
  if (ftruncate(kit->fd, (off_t)size) != 0) {
    rc = -errno;
    goto err_close_fd;
  }
  base =
      mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, kit->fd, 0);
  if (base == MAP_FAILED) {
    rc = -errno;
    goto err_close_fd;
  }
  kit->base = base;
  kit->map_len = size;
  kit->file_size = size;
  *out = kit;
  return 0;

err_close_fd:
  close(kit->fd);
err_free_kit:
  free(kit->seg);
  free(kit->free);
  free(kit);
  return rc;
}

void sr_kit_destroy(sr_kit_t* kit) {
  if (kit == NULL)
    return;
  munmap(kit->base, (size_t)kit->map_len);
  close(kit->fd);
  free(kit->seg);
  free(kit->free);
  free(kit->space);
  free(kit->paged);
  free(kit);
}

int sr_kit_fd(const sr_kit_t* kit) {
  return kit == NULL ? SR_EINVAL : kit->fd;
}

void sr_kit_layout(const sr_kit_t* kit, sr_layout_t* out) {
  if (out == NULL)
    return;
  memset(out, 0, sizeof(*out));
  if (kit == NULL)
    return;
  if (kit->raw) {
    out->kind = SR_LAYOUT_RAW;
    out->low = kit->raw_size;
  } else {
    out->kind = SR_LAYOUT_SEGMENTS;
    out->seg = kit->seg;
    out->nseg = kit->nseg;
  }
}

/* --- guest-physical access --- */

/* Where gpa lands in the kit's file: 0 with *off and *run (bytes of the same
 * segment that lie inside the file and the mapping), else SR_EHOLE (outside
 * every segment) or SR_EBEYOND (past the file, or past a RAW kit's size). */
static int kit_locate(const sr_kit_t* kit, uint64_t gpa, uint64_t* off,
                      uint64_t* run) {
  size_t lo = 0;
  size_t hi = kit->nseg;
  const sr_segment_t* s;
  uint64_t limit;
  uint64_t o;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (kit->seg[mid].gpa + kit->seg[mid].len <= gpa)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == kit->nseg || kit->seg[lo].gpa > gpa)
    return kit->raw ? SR_EBEYOND : SR_EHOLE;
  s = &kit->seg[lo];
  o = s->file_off + (gpa - s->gpa);
  limit = min_u64(kit->file_size, kit->map_len);
  if (o >= limit)
    return SR_EBEYOND;
  *off = o;
  *run = min_u64(s->gpa + s->len - gpa, limit - o);
  return 0;
}

/* Copies between buf and guest-physical [gpa, gpa + len). Stops at the first
 * byte that is not backed: SR_EHOLE / SR_EBEYOND (bytes before it done). */
static int phys_copy(const sr_kit_t* kit, uint64_t gpa, void* buf, size_t len,
                     bool write) {
  unsigned char* p = buf;
  while (len > 0) {
    uint64_t off;
    uint64_t run;
    int rc = kit_locate(kit, gpa, &off, &run);
    size_t n;
    if (rc != 0)
      return rc;
    n = (size_t)min_u64(run, len);
    if (write)
      memcpy(kit->base + off, p, n);
    else
      memcpy(p, kit->base + off, n);
    gpa += n;
    p += n;
    len -= n;
  }
  return 0;
}

static int check_phys_range(uint64_t gpa, const void* buf, size_t len) {
  if (len == 0)
    return 0;
  if (buf == NULL || gpa + len < gpa)
    return SR_EINVAL;
  return 0;
}

int sr_kit_write_phys(sr_kit_t* kit, uint64_t gpa, const void* buf,
                      size_t len) {
  int rc;
  if (kit == NULL)
    return SR_EINVAL;
  rc = check_phys_range(gpa, buf, len);
  if (rc != 0)
    return rc;
  return phys_copy(kit, gpa, (void*)buf, len, true);
}

int sr_kit_read_phys(const sr_kit_t* kit, uint64_t gpa, void* buf, size_t len) {
  int rc;
  if (kit == NULL)
    return SR_EINVAL;
  rc = check_phys_range(gpa, buf, len);
  if (rc != 0)
    return rc;
  return phys_copy(kit, gpa, buf, len, false);
}

static int load64(const sr_kit_t* kit, uint64_t gpa, uint64_t* value) {
  if (gpa + 8 < gpa)
    return SR_EBEYOND;
  return phys_copy(kit, gpa, value, 8, false);
}

static int store64(sr_kit_t* kit, uint64_t gpa, uint64_t value) {
  if (gpa + 8 < gpa)
    return SR_EBEYOND;
  return phys_copy(kit, gpa, &value, 8, true);
}

/* Zeroes file bytes [off, off + len) (inside the mapping): punches a hole
 * where the file system can (keeps a memfd sparse), else writes zeros. */
static void zero_file(sr_kit_t* kit, uint64_t off, uint64_t len) {
  uint64_t a = (off + 4095) & ~UINT64_C(4095);
  uint64_t b = (off + len) & ~UINT64_C(4095);
  if (a < b && fallocate(kit->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         (off_t)a, (off_t)(b - a)) == 0) {
    memset(kit->base + off, 0, (size_t)(a - off));
    memset(kit->base + b, 0, (size_t)(off + len - b));
    return;
  }
  memset(kit->base + off, 0, (size_t)len);
}

/* --- frames --- */

/* Takes [start, start + size) out of free range i (it lies inside it). The
 * caller made room for one more range. */
static void free_carve(sr_kit_t* kit, size_t i, uint64_t start, uint64_t size) {
  sr_segment_t r = kit->free[i];
  uint64_t head = start - r.gpa;
  uint64_t tail = r.gpa + r.len - (start + size);
  sr_segment_t above = {start + size, tail, r.file_off + head + size};
  assert(start >= r.gpa && start + size <= r.gpa + r.len);
  assert(kit->nfree < kit->free_cap);
  if (head != 0 && tail != 0) {
    memmove(&kit->free[i + 2], &kit->free[i + 1],
            (kit->nfree - i - 1) * sizeof(*kit->free));
    kit->free[i].len = head;
    kit->free[i + 1] = above;
    kit->nfree++;
  } else if (head != 0) {
    kit->free[i].len = head;
  } else if (tail != 0) {
    kit->free[i] = above;
  } else {
    memmove(&kit->free[i], &kit->free[i + 1],
            (kit->nfree - i - 1) * sizeof(*kit->free));
    kit->nfree--;
  }
}

/* The array p of elements of `size` bytes with its capacity doubled (to
 * `first` when empty; *cap updated), or NULL with p and *cap unchanged. */
static void* grow_array(void* p, size_t* cap, size_t size, size_t first) {
  size_t n = *cap == 0 ? first : *cap * 2;
  void* q;

  if (n > SIZE_MAX / 2 / size)
    return NULL;
  q = realloc(p, n * size);
  if (q != NULL)
    *cap = n;
  return q;
}

int sr_kit_alloc(sr_kit_t* kit, uint64_t size, uint64_t align, uint64_t* gpa) {
  uint64_t limit;
  if (kit == NULL || gpa == NULL || size == 0 || size > KIT_MAX_SIZE ||
      !is_pow2(align) || align < SR_PAGE_4K || align > KIT_MAX_SIZE)
    return SR_EINVAL;
  if (kit->nfree == kit->free_cap) {
    void* q = grow_array(kit->free, &kit->free_cap, sizeof(*kit->free), 4);
    if (q == NULL)
      return SR_ENOMEM;
    kit->free = q;
  }
  limit = min_u64(kit->file_size, kit->map_len);
  for (size_t i = 0; i < kit->nfree; i++) {
    const sr_segment_t* r = &kit->free[i];
    uint64_t end = r->gpa + r->len;
    uint64_t start = (r->gpa + align - 1) & ~(align - 1);
    uint64_t off;
    uint64_t take;
    if (start < r->gpa || start >= end || size > end - start)
      continue;
    off = r->file_off + (start - r->gpa);
    if (off > limit || size > limit - off)
      continue;
    take = min_u64((size + 4095) & ~UINT64_C(4095), end - start);
    zero_file(kit, off, size);
    free_carve(kit, i, start, take);
    *gpa = start;
    return 0;
  }
  return SR_ENOSPC;
}

/* --- address spaces --- */

/* The top level of the space rooted at cr3 (low bits masked), 0 if unknown. */
static int space_top(const sr_kit_t* kit, uint64_t cr3) {
  uint64_t root = cr3 & SR__CR3_MASK;
  for (size_t i = 0; i < kit->nspace; i++) {
    if (kit->space[i].cr3 == root)
      return kit->space[i].top_level;
  }
  return 0;
}

int sr_kit_new_space(sr_kit_t* kit, sr_paging_t paging, uint64_t* cr3) {
  uint64_t root;
  int rc;
  if (kit == NULL || cr3 == NULL ||
      (paging != SR_PAGING_4LEVEL && paging != SR_PAGING_5LEVEL))
    return SR_EINVAL;
  if (kit->nspace == kit->space_cap) {
    void* q = grow_array(kit->space, &kit->space_cap, sizeof(*kit->space), 4);
    if (q == NULL)
      return SR_ENOMEM;
    kit->space = q;
  }
  rc = sr_kit_alloc(kit, SR_PAGE_4K, SR_PAGE_4K, &root);
  if (rc != 0)
    return rc;
  kit->space[kit->nspace].cr3 = root;
  kit->space[kit->nspace].top_level = paging == SR_PAGING_5LEVEL ? 5 : 4;
  kit->nspace++;
  *cr3 = root;
  return 0;
}

/* Whether [gva, gva + len) (len > 0) is canonical for a top level of 4 or 5
 * and does not wrap or cross the non-canonical gap. */
static bool range_canonical(uint64_t gva, uint64_t len, int top) {
  uint64_t last = gva + len - 1;
  int bits = top == 5 ? 57 : 48;
  uint64_t hi_gva = (uint64_t)((int64_t)(gva << (64 - bits)) >> (64 - bits));
  uint64_t hi_last = (uint64_t)((int64_t)(last << (64 - bits)) >> (64 - bits));
  return last >= gva && hi_gva == gva && hi_last == last &&
         (gva >> 63) == (last >> 63);
}

/* --- paged-out entries --- */

/* Index of the first record with entry_gpa >= gpa. */
static size_t paged_lower(const sr_kit_t* kit, uint64_t gpa) {
  size_t lo = 0;
  size_t hi = kit->npaged;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (kit->paged[mid].entry_gpa < gpa)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static const kit_paged_t* paged_find(const sr_kit_t* kit, uint64_t gpa) {
  size_t i = paged_lower(kit, gpa);
  if (i < kit->npaged && kit->paged[i].entry_gpa == gpa)
    return &kit->paged[i];
  return NULL;
}

static void paged_forget(sr_kit_t* kit, uint64_t gpa) {
  size_t i = paged_lower(kit, gpa);
  if (i < kit->npaged && kit->paged[i].entry_gpa == gpa) {
    memmove(&kit->paged[i], &kit->paged[i + 1],
            (kit->npaged - i - 1) * sizeof(*kit->paged));
    kit->npaged--;
  }
}

/* Remembers (or replaces) the present value of the entry at gpa. */
static int paged_remember(sr_kit_t* kit, uint64_t gpa, uint64_t value) {
  size_t i = paged_lower(kit, gpa);
  if (i < kit->npaged && kit->paged[i].entry_gpa == gpa) {
    kit->paged[i].value = value;
    return 0;
  }
  if (kit->npaged == kit->paged_cap) {
    void* q = grow_array(kit->paged, &kit->paged_cap, sizeof(*kit->paged), 16);
    if (q == NULL)
      return SR_ENOMEM;
    kit->paged = q;
  }
  memmove(&kit->paged[i + 1], &kit->paged[i],
          (kit->npaged - i) * sizeof(*kit->paged));
  kit->paged[i].entry_gpa = gpa;
  kit->paged[i].value = value;
  kit->npaged++;
  return 0;
}

/* The entry as the kit sees it: a non-present entry the kit paged out
 * counts as the present value it replaced. */
static uint64_t effective(const sr_kit_t* kit, uint64_t gpa, uint64_t e) {
  const kit_paged_t* r;
  if (e & SR__P)
    return e;
  r = paged_find(kit, gpa);
  return r != NULL ? r->value : e;
}

/* --- walking the kit's own tables --- */

/* GPA of the entry for gva at `level` under root (top level `top`), looking
 * through entries the kit paged out. SR_ENOENT when a parent is not present
 * or is a large page; SR_EHOLE / SR_EBEYOND when a table is not backed. */
static int find_entry(const sr_kit_t* kit, uint64_t root, int top, uint64_t gva,
                      int level, uint64_t* entry_gpa) {
  uint64_t table = root;
  assert(level >= 1 && level <= top);
  for (int lvl = top;; lvl--) {
    uint64_t egpa = table + 8 * SR__INDEX(gva, lvl);
    uint64_t e;
    int rc;
    if (lvl == level) {
      *entry_gpa = egpa;
      return 0;
    }
    rc = load64(kit, egpa, &e);
    if (rc != 0)
      return rc;
    e = effective(kit, egpa, e);
    if (!(e & SR__P) || (e & SR__PS))
      return SR_ENOENT;
    table = e & SR__ADDR_MASK;
  }
}

/* Translates gva through the kit's tables (looking through paged-out
 * entries): 0 with *gpa and *page_size, SR_ENOTPRESENT, SR_EBADENTRY (PS in
 * a PML4E/PML5E), SR_EHOLE / SR_EBEYOND (a table not backed). */
static int kit_translate(const sr_kit_t* kit, uint64_t root, int top,
                         uint64_t gva, uint64_t* gpa, uint64_t* page_size) {
  uint64_t table = root;
  for (int lvl = top; lvl >= 1; lvl--) {
    uint64_t egpa = table + 8 * SR__INDEX(gva, lvl);
    uint64_t e;
    int rc = load64(kit, egpa, &e);
    if (rc != 0)
      return rc;
    e = effective(kit, egpa, e);
    if (!(e & SR__P))
      return SR_ENOTPRESENT;
    if (lvl == 1 || (e & SR__PS)) {
      uint64_t size = UINT64_C(1) << SR__SHIFT(lvl);
      if (lvl > 3)
        return SR_EBADENTRY;
      *gpa = (e & SR__ADDR_MASK & ~(size - 1)) | (gva & (size - 1));
      *page_size = size;
      return 0;
    }
    table = e & SR__ADDR_MASK;
  }
  return SR_ENOTPRESENT; /* not reached: level 1 always returns */
}

/* --- mapping --- */

static int leaf_level(uint64_t page_size) {
  switch (page_size) {
    case SR_PAGE_4K:
      return 1;
    case SR_PAGE_2M:
      return 2;
    case SR_PAGE_1G:
      return 3;
    default:
      return 0;
  }
}

/* Checks that nothing is mapped in [start, last] under the table at `table`
 * of level lvl: every leaf entry zero, every upper entry zero or a present
 * table (no large page, no non-present value). 0, SR_EEXIST, or the outcome
 * of a table that is not backed. */
static int check_free(const sr_kit_t* kit, uint64_t table, int lvl, int leaf,
                      uint64_t start, uint64_t last) {
  uint64_t span = (UINT64_C(1) << SR__SHIFT(lvl)) - 1;
  uint64_t va = start;
  for (;;) {
    uint64_t egpa = table + 8 * SR__INDEX(va, lvl);
    uint64_t sub_last = min_u64(va | span, last);
    uint64_t e;
    int rc = load64(kit, egpa, &e);
    if (rc != 0)
      return rc;
    if (lvl == leaf) {
      if (e != 0)
        return SR_EEXIST;
    } else if (e != 0) {
      if (!(e & SR__P) || (e & SR__PS))
        return SR_EEXIST;
      rc = check_free(kit, e & SR__ADDR_MASK, lvl - 1, leaf, va, sub_last);
      if (rc != 0)
        return rc;
    }
    if (sub_last == last)
      return 0;
    va = sub_last + 1;
  }
}

/* Writes the leaf for one page, creating missing tables. The area was
 * checked free, so every upper entry met is zero or a present table. */
static int map_page(sr_kit_t* kit, uint64_t root, int top, int leaf,
                    uint64_t gva, uint64_t leaf_value) {
  uint64_t table = root;
  for (int lvl = top; lvl > leaf; lvl--) {
    uint64_t egpa = table + 8 * SR__INDEX(gva, lvl);
    uint64_t e;
    int rc = load64(kit, egpa, &e);
    if (rc != 0)
      return rc;
    if (e == 0) {
      rc = sr_kit_alloc(kit, SR_PAGE_4K, SR_PAGE_4K, &table);
      if (rc != 0)
        return rc;
      rc = store64(kit, egpa, table | KIT_UPPER);
      if (rc != 0)
        return rc;
    } else {
      assert((e & SR__P) && !(e & SR__PS));
      table = e & SR__ADDR_MASK;
    }
  }
  {
    uint64_t egpa = table + 8 * SR__INDEX(gva, leaf);
    int rc = store64(kit, egpa, leaf_value);
    if (rc != 0)
      return rc;
    paged_forget(kit, egpa);
  }
  return 0;
}

/* Validates a map request; *top and *leaf on success. */
static int map_args(const sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                    uint64_t len, uint64_t page_size, uint32_t prot, int* top,
                    int* leaf) {
  if (kit == NULL || (prot & ~(uint32_t)(SR_PROT_W | SR_PROT_U | SR_PROT_NX)))
    return SR_EINVAL;
  *leaf = leaf_level(page_size);
  *top = space_top(kit, cr3);
  if (*leaf == 0 || *top == 0 || len == 0 || (gva & (page_size - 1)) ||
      (len & (page_size - 1)) || !range_canonical(gva, len, *top))
    return SR_EINVAL;
  return 0;
}

/* Maps [gva, gva + len) onto [gpa, ...) after the checks; on a failure part
 * way, the leaves written so far are cleared again. */
static int map_checked(sr_kit_t* kit, uint64_t cr3, int top, int leaf,
                       uint64_t gva, uint64_t len, uint64_t gpa,
                       uint64_t page_size, uint32_t prot) {
  uint64_t root = cr3 & SR__CR3_MASK;
  uint64_t bits = SR__P | SR__A | SR__D;
  uint64_t done;
  int rc = 0;
  if (prot & SR_PROT_W)
    bits |= SR__RW;
  if (prot & SR_PROT_U)
    bits |= SR__US;
  if (prot & SR_PROT_NX)
    bits |= SR__NX;
  if (leaf > 1)
    bits |= SR__PS;
  for (done = 0; done < len; done += page_size) {
    rc = map_page(kit, root, top, leaf, gva + done, (gpa + done) | bits);
    if (rc != 0)
      break;
  }
  if (rc == 0)
    return 0;
  for (uint64_t undo = 0; undo < done; undo += page_size) {
    uint64_t egpa;
    if (find_entry(kit, root, top, gva + undo, leaf, &egpa) == 0)
      (void)store64(kit, egpa, 0);
  }
  return rc;
}

int sr_kit_map(sr_kit_t* kit, uint64_t cr3, uint64_t gva, uint64_t len,
               uint64_t page_size, uint32_t prot) {
  uint64_t gpa;
  int top;
  int leaf;
  int rc = map_args(kit, cr3, gva, len, page_size, prot, &top, &leaf);
  if (rc != 0)
    return rc;
  rc = check_free(kit, cr3 & SR__CR3_MASK, top, leaf, gva, gva + len - 1);
  if (rc != 0)
    return rc;
  rc = sr_kit_alloc(kit, len, page_size, &gpa);
  if (rc != 0)
    return rc;
  return map_checked(kit, cr3, top, leaf, gva, len, gpa, page_size, prot);
}

int sr_kit_map_gpa(sr_kit_t* kit, uint64_t cr3, uint64_t gva, uint64_t len,
                   uint64_t gpa, uint64_t page_size, uint32_t prot) {
  int top;
  int leaf;
  int rc = map_args(kit, cr3, gva, len, page_size, prot, &top, &leaf);
  if (rc != 0)
    return rc;
  if ((gpa & (page_size - 1)) || gpa >= KIT_PHYS_LIMIT ||
      len > KIT_PHYS_LIMIT - gpa)
    return SR_EINVAL;
  rc = check_free(kit, cr3 & SR__CR3_MASK, top, leaf, gva, gva + len - 1);
  if (rc != 0)
    return rc;
  return map_checked(kit, cr3, top, leaf, gva, len, gpa, page_size, prot);
}

/* --- writing through the tables --- */

/* splitmix64's finalizer (Steele, Lea, Flood 2014): a bijective mixer. */
static uint64_t mix64(uint64_t x) {
  x += UINT64_C(0x9e3779b97f4a7c15);
  x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

/* Byte addr & 7 of a mixed value of (seed, the 8-byte word of addr): each
 * aligned word is one 64-bit value, so pages and words all differ and a
 * shifted copy does not match. */
uint8_t sr_kit_pattern(uint64_t seed, uint64_t addr) {
  uint64_t w = mix64(seed ^ ((addr >> 3) * UINT64_C(0xd6e8feb86659fd93)));
  return (uint8_t)(w >> (8 * (addr & 7)));
}

/* Writes the pattern for va.. into n bytes at p, a word at a time where
 * aligned: the pattern of an aligned word is one mixed value, stored
 * little endian. */
static void pattern_fill(unsigned char* p, uint64_t va, uint64_t n,
                         uint64_t seed) {
  while (n > 0 && (va & 7) != 0) {
    *p++ = sr_kit_pattern(seed, va++);
    n--;
  }
  while (n >= 8) {
    uint64_t w = mix64(seed ^ ((va >> 3) * UINT64_C(0xd6e8feb86659fd93)));
    for (int i = 0; i < 8; i++)
      p[i] = (unsigned char)(w >> (8 * i));
    p += 8;
    va += 8;
    n -= 8;
  }
  while (n > 0) {
    *p++ = sr_kit_pattern(seed, va++);
    n--;
  }
}

/* Writes [gva, gva + len) through the tables of cr3: from buf, or the
 * pattern of seed when buf is NULL. Pages before a failure stay written. */
static int write_va(sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                    const unsigned char* buf, uint64_t len, uint64_t seed) {
  uint64_t root = cr3 & SR__CR3_MASK;
  int top = space_top(kit, cr3);
  if (top == 0 || !range_canonical(gva, len, top))
    return SR_EINVAL;
  while (len > 0) {
    uint64_t gpa;
    uint64_t size;
    uint64_t n;
    int rc = kit_translate(kit, root, top, gva, &gpa, &size);
    if (rc != 0)
      return rc;
    n = min_u64(len, size - (gva & (size - 1)));
    for (uint64_t k = 0; k < n;) {
      uint64_t off;
      uint64_t run;
      rc = kit_locate(kit, gpa + k, &off, &run);
      if (rc != 0)
        return rc;
      run = min_u64(run, n - k);
      if (buf != NULL)
        memcpy(kit->base + off, buf + k, (size_t)run);
      else
        pattern_fill(kit->base + off, gva + k, run, seed);
      k += run;
    }
    gva += n;
    if (buf != NULL)
      buf += n;
    len -= n;
  }
  return 0;
}

int sr_kit_fill(sr_kit_t* kit, uint64_t cr3, uint64_t gva, uint64_t len,
                uint64_t seed) {
  if (kit == NULL)
    return SR_EINVAL;
  if (len == 0)
    return 0;
  return write_va(kit, cr3, gva, NULL, len, seed);
}

int sr_kit_write_va(sr_kit_t* kit, uint64_t cr3, uint64_t gva, const void* buf,
                    size_t len) {
  if (kit == NULL || (buf == NULL && len > 0))
    return SR_EINVAL;
  if (len == 0)
    return 0;
  return write_va(kit, cr3, gva, buf, len, 0);
}

/* --- single entries --- */

/* Validates (cr3, gva, level) and finds the entry's GPA. */
static int entry_lookup(const sr_kit_t* kit, uint64_t cr3, uint64_t gva,
                        int level, uint64_t* egpa) {
  int top;
  if (kit == NULL || egpa == NULL)
    return SR_EINVAL;
  top = space_top(kit, cr3);
  if (top == 0 || level < 1 || level > top || !range_canonical(gva, 1, top))
    return SR_EINVAL;
  return find_entry(kit, cr3 & SR__CR3_MASK, top, gva, level, egpa);
}

int sr_kit_entry_gpa(const sr_kit_t* kit, uint64_t cr3, uint64_t gva, int level,
                     uint64_t* gpa) {
  return entry_lookup(kit, cr3, gva, level, gpa);
}

int sr_kit_get_entry(const sr_kit_t* kit, uint64_t cr3, uint64_t gva, int level,
                     uint64_t* value) {
  uint64_t egpa;
  int rc;
  if (value == NULL)
    return SR_EINVAL;
  rc = entry_lookup(kit, cr3, gva, level, &egpa);
  if (rc != 0)
    return rc;
  return load64(kit, egpa, value);
}

int sr_kit_set_entry(sr_kit_t* kit, uint64_t cr3, uint64_t gva, int level,
                     uint64_t value, uint64_t* old) {
  uint64_t egpa;
  uint64_t prev;
  int rc = entry_lookup(kit, cr3, gva, level, &egpa);
  if (rc != 0)
    return rc;
  rc = load64(kit, egpa, &prev);
  if (rc != 0)
    return rc;
  rc = store64(kit, egpa, value);
  if (rc != 0)
    return rc;
  if (old != NULL)
    *old = prev;
  return 0;
}

/* The frame a present entry at `level` maps or points to. */
static uint64_t entry_frame(uint64_t e, int level) {
  uint64_t frame = e & SR__ADDR_MASK;
  if (level > 1 && level <= 3 && (e & SR__PS))
    frame &= ~((UINT64_C(1) << SR__SHIFT(level)) - 1);
  return frame;
}

int sr_kit_page_out(sr_kit_t* kit, uint64_t cr3, uint64_t gva, int level,
                    const sr_pte_info_t* as) {
  sr_pte_info_t info;
  uint64_t egpa;
  uint64_t e;
  uint64_t encoded;
  int rc;
  if (as == NULL)
    return SR_EINVAL;
  rc = entry_lookup(kit, cr3, gva, level, &egpa);
  if (rc != 0)
    return rc;
  rc = load64(kit, egpa, &e);
  if (rc != 0)
    return rc;
  if (!(e & SR__P))
    return paged_find(kit, egpa) != NULL ? SR_EALREADY : SR_ENOTPRESENT;
  info = *as;
  if ((info.kind == SR_PTE_LINUX_PROTNONE ||
       info.kind == SR_PTE_WIN_TRANSITION) &&
      info.frame == 0)
    info.frame = entry_frame(e, level);
  rc = sr_kit_encode(&info, level, &encoded);
  if (rc != 0)
    return rc;
  rc = paged_remember(kit, egpa, e);
  if (rc != 0)
    return rc;
  return store64(kit, egpa, encoded);
}

int sr_kit_page_in(sr_kit_t* kit, uint64_t cr3, uint64_t gva, int level) {
  const kit_paged_t* r;
  uint64_t egpa;
  uint64_t value;
  int rc = entry_lookup(kit, cr3, gva, level, &egpa);
  if (rc != 0)
    return rc;
  r = paged_find(kit, egpa);
  if (r == NULL)
    return SR_ENOENT;
  value = r->value;
  rc = store64(kit, egpa, value);
  if (rc != 0)
    return rc;
  paged_forget(kit, egpa);
  return 0;
}

/* --- layout changes --- */

int sr_kit_punch_hole(sr_kit_t* kit, uint64_t gpa, uint64_t len) {
  sr_segment_t* seg;
  sr_segment_t* fr;
  size_t nseg;
  size_t cap;
  bool cut;

  if (kit == NULL || len == 0 || gpa + len < gpa)
    return SR_EINVAL;
  seg = calloc(kit->nseg + 1, sizeof(*seg));
  cap = kit->nfree + 1;
  fr = calloc(cap, sizeof(*fr));
  if (seg == NULL || fr == NULL) {
    free(seg);
    free(fr);
    return SR_ENOMEM;
  }
  nseg = subtract_range_cut(kit->seg, kit->nseg, gpa, gpa + len, seg, &cut);
  if (!cut || nseg == 0) { /* nothing to do / no RAM would be left */
    free(seg);
    free(fr);
    return cut ? SR_EINVAL : 0;
  }
  free(kit->seg);
  kit->seg = seg;
  kit->nseg = nseg;
  kit->nfree = subtract_range(kit->free, kit->nfree, gpa, gpa + len, fr);
  free(kit->free);
  kit->free = fr;
  kit->free_cap = cap;
  kit->raw = false;
  return 0;
}

int sr_kit_truncate(sr_kit_t* kit, uint64_t file_size) {
  if (kit == NULL || file_size > KIT_MAX_SIZE)
    return SR_EINVAL;
  if (file_size > kit->map_len) {
    void* p = mremap(kit->base, (size_t)kit->map_len, (size_t)file_size,
                     MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
      return -errno;
    kit->base = p;
    kit->map_len = file_size;
  }
  if (ftruncate(kit->fd, (off_t)file_size) != 0)
    return -errno;
  kit->file_size = file_size;
  return 0;
}
