/* Tests for sr_read_virt and sr_read_batch on a holey kit image.
 *
 * The image mixes 4K and 2M pages filled with the kit's pattern, a swapped
 * out and a PROT_NONE page, an unmapped region, frames in a physical hole
 * and past the end of the file (truncated under the open image, so the
 * first load there raises a caught SIGBUS), page tables in a hole and past
 * the end of the file, and a 2M leaf with a reserved bit. Expected bytes come
 * from sr_kit_pattern; expected statuses and stop points from the single-read
 * reference (sr_translate + sr_image_read, page by page), which the batch
 * must equal item for item, and from the entries the kit reports.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include <swapread/kit.h>
#include <swapread/read.h>

#define MIB (UINT64_C(1) << 20)
#define SEED 0x1234u
#define R4K UINT64_C(0x10000000) /* 64 KiB of 4K pages */
#define R4K_LEN (64 * 1024)
#define SWAPPED (R4K + 5 * 4096)  /* a Linux swap entry */
#define PROTNONE (R4K + 7 * 4096) /* Linux PROT_NONE (resident) */
#define R2M UINT64_C(0x40000000)  /* 4 MiB of 2M pages */
#define R2M_LEN (4 * MIB)
#define UNMAPPED UINT64_C(0x20000000)
#define DHOLE UINT64_C(0x30000000)      /* frame in the hole */
#define DBEYOND UINT64_C(0x30001000)    /* frame past the end of the file */
#define THOLE UINT64_C(0x50000000)      /* its page table in the hole */
#define TBEYOND UINT64_C(0x50200000)    /* its page table past the end */
#define BAD2M UINT64_C(0x60000000)      /* 2M leaf with bit 13 set */
#define RSVD40 UINT64_C(0x70000000)     /* PTE with bit 40 set (see RSVD) */
#define G1 UINT64_C(0x0000010000000000) /* a 1G leaf onto GPAs [0, 1G) */
#define R4K_NEXT (R4K + (UINT64_C(1) << 39)) /* R4K but the PML4 index */
#define BAD1G (G1 + SR_PAGE_1G)              /* 1G leaf with bit 13 set */
#define L4BAD UINT64_C(0x0000500000000000)   /* its PML4E has PS set */
#define L4NONE UINT64_C(0x0000600000000000)  /* its PML4E is zero */
#define R5 UINT64_C(0x0080000000000000)      /* 5-level: 16 KiB of 4K pages */
#define R5_2M (R5 + SR_PAGE_1G)              /* 5-level: one 2M page */
#define HOLE_GPA (40 * MIB)
#define END_GPA (128 * MIB) /* end of the second segment */
#define CUT (1 * MIB)       /* bytes truncated off the file */
#define TBL_ (UINT64_C(7))  /* P | RW | US */

typedef struct fixture_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  uint64_t cr3_5;      /* a 5-level space: R5, R5_2M */
  uint64_t swap_entry; /* the PTE of SWAPPED */
} fixture_t;

static int setup(void** state) {
  fixture_t* fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  *state = fx;
  return 0;
}

/* Sets `bits` in the entry for gva at `level`. */
static void or_entry(sr_kit_t* kit, uint64_t cr3, uint64_t gva, int level,
                     uint64_t bits) {
  uint64_t e;

  assert_int_equal(sr_kit_get_entry(kit, cr3, gva, level, &e), 0);
  assert_int_equal(sr_kit_set_entry(kit, cr3, gva, level, e | bits, NULL), 0);
}

/* Builds the image. Called from the test body: the image must be opened
 * there, since cmocka replaces the SIGBUS handler around each test and an
 * open puts the library's back. raw: one segment of END_GPA bytes instead
 * (every table and frame in the image's first flat extent; HOLE_GPA is
 * then RAM). */
static void build_layout(fixture_t* fx, bool raw) {
  /* [0, 32M) at file 0, hole [32M, 64M), [64M, 128M) at file 32M */
  static const sr_segment_t seg[2] = {{0, 32 * MIB, 0},
                                      {64 * MIB, 64 * MIB, 32 * MIB}};
  sr_kit_opts_t opts;
  sr_pte_info_t info;
  uint64_t rw_u = SR_PROT_W | SR_PROT_U;

  memset(&opts, 0, sizeof(opts));
  if (raw) {
    opts.size = END_GPA;
  } else {
    opts.seg = seg;
    opts.nseg = 2;
  }
  assert_int_equal(sr_kit_create(&fx->kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_4LEVEL, &fx->cr3), 0);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, R4K, R4K_LEN, SR_PAGE_4K, rw_u),
                   0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, R4K, R4K_LEN, SEED), 0);
  assert_int_equal(sr_kit_map(fx->kit, fx->cr3, R2M, R2M_LEN, SR_PAGE_2M, rw_u),
                   0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, R2M, R2M_LEN, SEED), 0);
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = 1;
  info.swap_offset = 77;
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, SWAPPED, 1, &info), 0);
  assert_int_equal(
      sr_kit_get_entry(fx->kit, fx->cr3, SWAPPED, 1, &fx->swap_entry), 0);
  info.kind = SR_PTE_LINUX_PROTNONE;
  info.frame = 0;
  assert_int_equal(sr_kit_page_out(fx->kit, fx->cr3, PROTNONE, 1, &info), 0);
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, DHOLE, SR_PAGE_4K, HOLE_GPA,
                                  SR_PAGE_4K, rw_u),
                   0);
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, DBEYOND, SR_PAGE_4K,
                                  END_GPA - CUT / 2, SR_PAGE_4K, rw_u),
                   0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, THOLE, SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, THOLE, 2, HOLE_GPA | TBL_, NULL), 0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, TBEYOND, SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, TBEYOND, 2,
                                    (END_GPA - CUT / 2) | TBL_, NULL),
                   0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, BAD2M, SR_PAGE_2M, SR_PAGE_2M, rw_u), 0);
  or_entry(fx->kit, fx->cr3, BAD2M, 2, UINT64_C(1) << 13);
  /* RSVD40: a frame address with bit 40 set (a hole with MAXPHYADDR 52,
   * a reserved bit with 36) */
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, RSVD40, SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  or_entry(fx->kit, fx->cr3, RSVD40, 1, UINT64_C(1) << 40);
  /* R4K_NEXT differs from R4K in its PML4 index only (and its bytes): a
   * walk that took the wrong PML4 entry would read them */
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, R4K_NEXT, R4K_LEN, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, R4K_NEXT, R4K_LEN, SEED + 2),
                   0);
  /* a 1G leaf over all of the layout: mapped, hole, beyond, no segment */
  assert_int_equal(sr_kit_map_gpa(fx->kit, fx->cr3, G1, SR_PAGE_1G, 0,
                                  SR_PAGE_1G, rw_u | SR_PROT_NX),
                   0);
  /* a 1G leaf with bit 13 set (reserved in a 1G leaf) */
  assert_int_equal(
      sr_kit_map_gpa(fx->kit, fx->cr3, BAD1G, SR_PAGE_1G, 0, SR_PAGE_1G, rw_u),
      0);
  or_entry(fx->kit, fx->cr3, BAD1G, 3, UINT64_C(1) << 13);
  /* PS in a PML4E: a bad entry at level 4 */
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3, L4BAD, SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  or_entry(fx->kit, fx->cr3, L4BAD, 4, UINT64_C(0x80));
  /* a 5-level space */
  assert_int_equal(sr_kit_new_space(fx->kit, SR_PAGING_5LEVEL, &fx->cr3_5), 0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3_5, R5, 4 * SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3_5, R5, 4 * SR_PAGE_4K, SEED),
                   0);
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3_5, R5_2M, SR_PAGE_2M, SR_PAGE_2M, SR_PROT_W),
      0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3_5, R5_2M, SR_PAGE_2M, SEED), 0);
  /* VA 0 shares every index with R5 but the PML5 one (and has other
   * bytes): a walk that took the wrong PML5 entry would read them */
  assert_int_equal(
      sr_kit_map(fx->kit, fx->cr3_5, 0, 4 * SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3_5, 0, 4 * SR_PAGE_4K, SEED + 1),
                   0);
  /* the file then loses its last CUT bytes under the open image: GPAs
   * [END - CUT, END) are beyond it (the first load there faults) */
  assert_int_equal(sr_kit_open_image(fx->kit, &fx->image), 0);
  assert_int_equal(sr_kit_truncate(fx->kit, (raw ? END_GPA : 96 * MIB) - CUT),
                   0);
}

static void build(fixture_t* fx) {
  build_layout(fx, false);
}

/* Closes what build made (for a second build in one test). */
static void unbuild(fixture_t* fx) {
  sr_image_close(fx->image);
  sr_kit_destroy(fx->kit);
  fx->image = NULL;
  fx->kit = NULL;
}

static int teardown(void** state) {
  fixture_t* fx = *state;
  sr_image_close(fx->image);
  sr_kit_destroy(fx->kit);
  free(fx);
  return 0;
}

static void check_pattern(const unsigned char* buf, uint64_t gva, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (buf[i] != sr_kit_pattern(SEED, gva + i))
      fail_msg("byte %zu of 0x%llx: 0x%02x, want 0x%02x", i,
               (unsigned long long)gva, buf[i], sr_kit_pattern(SEED, gva + i));
}

/* The single-read reference for one item: per page, sr_translate then
 * sr_image_read; the first failure decides, the first page's leaf is
 * reported on success. */
static void reference(const sr_image_t* image, uint64_t cr3,
                      const sr_walk_opts_t* opts, const sr_batch_item_t* in,
                      sr_batch_item_t* out, unsigned char* buf) {
  sr_translation_t tr;
  size_t off = 0, n;
  int rc;

  memset(out, 0, sizeof(*out));
  if (in->buf == NULL || in->len == 0 || in->len > 4096 ||
      (uint64_t)in->len - 1 > UINT64_MAX - in->gva) {
    out->status = SR_EINVAL;
    return;
  }
  while (off < in->len) {
    n = 4096 - ((in->gva + off) & 4095);
    if (n > in->len - off)
      n = in->len - off;
    rc = sr_translate(image, cr3, in->gva + off, opts, &tr);
    if (rc == 0)
      rc = sr_image_read(image, tr.gpa, buf + off, n, NULL);
    if (off == 0 || rc != 0) {
      out->walked = tr.status == 0;
      out->level = tr.stop_level;
      out->entry = tr.status == 0 ? tr.entry[tr.stop_level - 1] : tr.fail_entry;
      out->entry_gpa =
          tr.status == 0 ? tr.entry_gpa[tr.stop_level - 1] : tr.fail_entry_gpa;
      out->gpa = tr.status == 0 ? tr.gpa : 0;
    }
    if (rc != 0) {
      out->status = rc;
      return;
    }
    off += n;
  }
}

/* Reads items[0..n) both ways and compares every field and, for status 0,
 * the bytes. */
static void check_batch_in(const fixture_t* fx, uint64_t cr3,
                           const sr_walk_opts_t* opts, sr_batch_item_t* items,
                           size_t n) {
  sr_batch_item_t want;
  unsigned char* ref = malloc(4096);
  size_t i, ok = 0;
  int got;

  assert_non_null(ref);
  got = sr_read_batch(fx->image, cr3, opts, items, n);
  for (i = 0; i < n; i++) {
    reference(fx->image, cr3, opts, &items[i], &want, ref);
    if (items[i].status != want.status || items[i].walked != want.walked ||
        items[i].level != want.level || items[i].entry != want.entry ||
        items[i].entry_gpa != want.entry_gpa || items[i].gpa != want.gpa)
      fail_msg(
          "item %zu (gva 0x%llx len %zu): status %s/%s walked %d/%d "
          "level %d/%d entry 0x%llx/0x%llx at 0x%llx/0x%llx gpa "
          "0x%llx/0x%llx",
          i, (unsigned long long)items[i].gva, items[i].len,
          sr_err_name(items[i].status), sr_err_name(want.status),
          items[i].walked, want.walked, items[i].level, want.level,
          (unsigned long long)items[i].entry, (unsigned long long)want.entry,
          (unsigned long long)items[i].entry_gpa,
          (unsigned long long)want.entry_gpa, (unsigned long long)items[i].gpa,
          (unsigned long long)want.gpa);
    if (want.status == 0) {
      assert_memory_equal(items[i].buf, ref, items[i].len);
      ok++;
    }
  }
  assert_int_equal(got, (int)ok);
  free(ref);
}

static void check_batch(const fixture_t* fx, const sr_walk_opts_t* opts,
                        sr_batch_item_t* items, size_t n) {
  check_batch_in(fx, fx->cr3, opts, items, n);
}

/* The status of an 8-byte sr_read_virt at gva in fx's space. */
static int status_of(const fixture_t* fx, const sr_walk_opts_t* opts,
                     uint64_t gva) {
  unsigned char buf[8];

  return sr_read_virt(fx->image, fx->cr3, opts, gva, buf, sizeof(buf), NULL);
}

/* The documented result of sr_read_virt, from sr_translate and
 * sr_image_read page by page: the first page that fails decides (its
 * translation in stop, done the bytes before it; for SR_EINVAL only the
 * status); prot and resident accumulate over the pages read. */
static int reference_virt(const sr_image_t* image, uint64_t cr3,
                          const sr_walk_opts_t* opts, uint64_t gva,
                          unsigned char* buf, size_t len, sr_vread_t* out) {
  sr_translation_t tr;
  uint32_t prot = SR_PROT_W | SR_PROT_U;
  size_t done = 0, n;
  int rc;

  memset(out, 0, sizeof(*out));
  if (len == 0 || (uint64_t)len - 1 > UINT64_MAX - gva) {
    out->stop.status = SR_EINVAL;
    return SR_EINVAL;
  }
  while (done < len) {
    n = 4096 - ((gva + done) & 4095);
    if (n > len - done)
      n = len - done;
    rc = sr_translate(image, cr3, gva + done, opts, &tr);
    if (rc == 0)
      rc = sr_image_read(image, tr.gpa, buf + done, n, NULL);
    if (rc == SR_EINVAL) { /* bad options or CR3: nothing translated */
      memset(out, 0, sizeof(*out));
      out->stop.status = SR_EINVAL;
      return rc;
    }
    if (rc != 0) {
      memcpy(&out->stop, &tr, sizeof(tr));
      out->done = done;
      out->prot = done > 0 ? prot : 0;
      return rc;
    }
    if (done == 0)
      out->gpa = tr.gpa;
    prot = (prot & tr.prot & (SR_PROT_W | SR_PROT_U)) |
           ((prot | tr.prot) & SR_PROT_NX);
    out->resident = out->resident || tr.resident;
    done += n;
  }
  out->done = len;
  out->prot = prot;
  return 0;
}

/* Fails unless a and b (results of the read `what`) are equal, field for
 * field. */
static void assert_vread_equal(const sr_vread_t* a, const sr_vread_t* b,
                               const char* what) {
  const sr_translation_t* x = &a->stop;
  const sr_translation_t* y = &b->stop;
  int k;

  if (a->done != b->done || a->gpa != b->gpa || a->prot != b->prot ||
      a->resident != b->resident)
    fail_msg("%s: done %zu/%zu gpa 0x%llx/0x%llx prot %u/%u resident %d/%d",
             what, a->done, b->done, (unsigned long long)a->gpa,
             (unsigned long long)b->gpa, a->prot, b->prot, a->resident,
             b->resident);
  if (x->status != y->status || x->gva != y->gva || x->gpa != y->gpa ||
      x->page_size != y->page_size || x->prot != y->prot ||
      x->resident != y->resident || x->top_level != y->top_level ||
      x->stop_level != y->stop_level || x->fail_entry != y->fail_entry ||
      x->fail_entry_gpa != y->fail_entry_gpa || x->pte.kind != y->pte.kind ||
      x->pte.resident != y->pte.resident || x->pte.frame != y->pte.frame ||
      x->pte.swap_type != y->pte.swap_type ||
      x->pte.swap_offset != y->pte.swap_offset ||
      x->pte.proto_addr != y->pte.proto_addr)
    fail_msg(
        "%s: stop status %s/%s level %d/%d entry 0x%llx/0x%llx at "
        "0x%llx/0x%llx gpa 0x%llx/0x%llx",
        what, sr_err_name(x->status), sr_err_name(y->status), x->stop_level,
        y->stop_level, (unsigned long long)x->fail_entry,
        (unsigned long long)y->fail_entry,
        (unsigned long long)x->fail_entry_gpa,
        (unsigned long long)y->fail_entry_gpa, (unsigned long long)x->gpa,
        (unsigned long long)y->gpa);
  for (k = 0; k < 5; k++)
    if (x->entry[k] != y->entry[k] || x->entry_gpa[k] != y->entry_gpa[k])
      fail_msg("%s: stop entry[%d] 0x%llx/0x%llx at 0x%llx/0x%llx", what, k,
               (unsigned long long)x->entry[k], (unsigned long long)y->entry[k],
               (unsigned long long)x->entry_gpa[k],
               (unsigned long long)y->entry_gpa[k]);
}

/* Reads [gva, gva + len) with sr_read_virt, with out and without, and
 * compares the status, every field of out and the bytes read with
 * reference_virt. */
static void check_virt(const fixture_t* fx, uint64_t cr3,
                       const sr_walk_opts_t* opts, uint64_t gva, size_t len) {
  static unsigned char got[3 * 4096 + 65536], got2[sizeof(got)],
      want[sizeof(got)];
  sr_vread_t vr, ref;
  char what[96];
  int rc, rc2, rcref;

  assert_true(len <= sizeof(got));
  snprintf(what, sizeof(what), "gva 0x%llx len %zu flags %u maxphy %u",
           (unsigned long long)gva, len, opts != NULL ? opts->flags : 0,
           opts != NULL ? opts->maxphyaddr : 0);
  memset(&vr, 0xa5, sizeof(vr)); /* must be overwritten */
  rc = sr_read_virt(fx->image, cr3, opts, gva, got, len, &vr);
  rc2 = sr_read_virt(fx->image, cr3, opts, gva, got2, len, NULL);
  rcref = reference_virt(fx->image, cr3, opts, gva, want, len, &ref);
  if (rc != rcref || rc2 != rcref)
    fail_msg("%s: status %s (out NULL: %s), want %s", what, sr_err_name(rc),
             sr_err_name(rc2), sr_err_name(rcref));
  assert_vread_equal(&vr, &ref, what);
  if (memcmp(got, want, ref.done) != 0 || memcmp(got2, want, ref.done) != 0)
    fail_msg("%s: the bytes differ from the reference", what);
}

static unsigned char bufs[64][4096];

static void set_item(sr_batch_item_t* it, uint64_t gva, size_t len, int k) {
  memset(it, 0, sizeof(*it));
  it->gva = gva;
  it->len = len;
  it->buf = bufs[k];
  it->status = 12345; /* must be overwritten */
}

/* Every kind of outcome, each compared with the single-read reference. */
static void test_read_batch_matches_single(void** state) {
  fixture_t* fx = *state;
  sr_batch_item_t it[20];
  sr_walk_opts_t resident = {SR_PAGING_4LEVEL, SR_OS_LINUX, SR_WALK_RESIDENT,
                             0};
  int k = 0;

  build(fx);

  set_item(&it[k], R4K + 8, 8, k), k++;
  set_item(&it[k], R4K + 4096 - 3, 6, k), k++;         /* crosses a page */
  set_item(&it[k], R4K + 4 * 4096 + 4090, 64, k), k++; /* into SWAPPED */
  set_item(&it[k], SWAPPED + 16, 8, k), k++;
  set_item(&it[k], PROTNONE, 4096, k), k++;
  set_item(&it[k], R2M + SR_PAGE_2M - 2, 4, k), k++; /* across 2M leaves */
  set_item(&it[k], R2M + 12345, 100, k), k++;
  set_item(&it[k], UNMAPPED, 8, k), k++;
  set_item(&it[k], DHOLE + 8, 8, k), k++;
  set_item(&it[k], DBEYOND, 16, k), k++;
  set_item(&it[k], THOLE, 8, k), k++;
  set_item(&it[k], TBEYOND + 64, 8, k), k++;
  set_item(&it[k], BAD2M + 4096, 8, k), k++;
  set_item(&it[k], UINT64_C(0x0000800000000000), 8, k), k++; /* noncanon */
  set_item(&it[k], R4K, 0, k), k++;                          /* bad len */
  set_item(&it[k], R4K, 4097, k), k++;
  set_item(&it[k], R4K + 4 * 4096, 4096, k), k++;
  it[k - 1].buf = NULL;
  set_item(&it[k], R4K + 3 * 4096, 4096, k), k++;
  check_batch(fx, NULL, it, (size_t)k);
  /* spot checks against the kit rather than the reference */
  assert_int_equal(it[0].status, 0);
  check_pattern(it[0].buf, it[0].gva, 8);
  check_pattern(it[1].buf, it[1].gva, 6);
  assert_int_equal(it[3].status, SR_ENOTPRESENT);
  assert_int_equal(it[3].level, 1);
  assert_int_equal(it[3].entry, fx->swap_entry);
  assert_int_equal(it[4].status, SR_ENOTPRESENT);
  assert_int_equal(it[7].status, SR_ENOTPRESENT);
  assert_int_equal(it[8].status, SR_EHOLE);
  assert_true(it[8].walked);
  assert_int_equal(it[8].gpa, HOLE_GPA + 8);
  assert_int_equal(it[9].status, SR_EBEYOND);
  assert_int_equal(it[10].status, SR_EHOLE);
  assert_false(it[10].walked);
  assert_int_equal(it[10].level, 1);
  assert_int_equal(it[11].status, SR_EBEYOND);
  assert_int_equal(it[12].status, SR_EBADENTRY);
  assert_int_equal(it[12].level, 2);
  assert_int_equal(it[13].status, SR_ENONCANON);
  assert_int_equal(it[14].status, SR_EINVAL);
  assert_int_equal(it[15].status, SR_EINVAL);
  assert_int_equal(it[16].status, SR_EINVAL);
  check_pattern(it[17].buf, it[17].gva, 4096);

  /* with SR_WALK_RESIDENT the PROT_NONE page reads */
  check_batch(fx, &resident, it, (size_t)k);
  assert_int_equal(it[4].status, 0);
  check_pattern(it[4].buf, PROTNONE, 4096);
}

static void test_read_batch_args(void** state) {
  fixture_t* fx = *state;
  sr_batch_item_t it;
  sr_walk_opts_t bad = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 30};
  sr_walk_opts_t phys36 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 36};

  build(fx);

  set_item(&it, R4K, 8, 0);
  assert_int_equal(sr_read_batch(NULL, fx->cr3, NULL, &it, 1), SR_EINVAL);
  assert_int_equal(sr_read_batch(fx->image, fx->cr3, NULL, NULL, 1), SR_EINVAL);
  assert_int_equal(sr_read_batch(fx->image, fx->cr3, &bad, &it, 1), SR_EINVAL);
  assert_int_equal(sr_read_batch(fx->image, UINT64_C(1) << 40, &phys36, &it, 1),
                   SR_EINVAL);
  assert_int_equal(it.status, 12345); /* untouched */
  assert_int_equal(sr_read_batch(fx->image, fx->cr3, NULL, NULL, 0), 0);
}

static uint64_t xorshift(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Property: for random items over every region of the image (random
 * offsets, lengths 1..4096, some crossing pages, both walk modes), the
 * batch equals the single-read reference item for item. */
static void test_read_batch_property(void** state) {
  static const struct {
    uint64_t base, span;
  } reg[] = {{R4K, R4K_LEN},         {R2M, R2M_LEN},
             {UNMAPPED, SR_PAGE_2M}, {DHOLE, 2 * SR_PAGE_4K},
             {THOLE, SR_PAGE_4K},    {TBEYOND, SR_PAGE_4K},
             {BAD2M, SR_PAGE_2M}};
  fixture_t* fx = *state;
  sr_batch_item_t it[64];
  sr_walk_opts_t opts = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 0};
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
  uint64_t s = seed | 1, r;
  int round, k;

  build(fx);

  printf("test_read_batch_property: seed %llu (SR_SEED overrides)\n",
         (unsigned long long)seed);
  for (round = 0; round < 200; round++) {
    for (k = 0; k < 64; k++) {
      r = xorshift(&s) % (sizeof(reg) / sizeof(reg[0]));
      set_item(&it[k], reg[r].base + xorshift(&s) % reg[r].span,
               xorshift(&s) % 4 == 0 ? 1 + xorshift(&s) % 4096
                                     : 1 + xorshift(&s) % 16,
               k);
    }
    opts.flags = round % 2 ? SR_WALK_RESIDENT : 0;
    check_batch(fx, &opts, it, 64);
  }
}

/* A place to read from: a space and its walk options, a VA range. */
typedef struct place_s {
  int space; /* 4: fx->cr3, 5: fx->cr3_5 */
  uint64_t base, span;
} place_t;

static const place_t places[] = {
    {4, R4K, R4K_LEN}, /* 4K pages, a swapped-out and a PROT_NONE page */
    {4, R2M, R2M_LEN}, /* 2M pages */
    {4, R4K_NEXT, R4K_LEN},
    {4, UNMAPPED, SR_PAGE_2M},
    {4, DHOLE, 2 * SR_PAGE_4K},   /* data in a hole, past the end */
    {4, THOLE, SR_PAGE_4K},       /* a page table in a hole */
    {4, TBEYOND, SR_PAGE_4K},     /* a page table past the end */
    {4, BAD2M, SR_PAGE_2M},       /* a reserved bit in a 2M leaf */
    {4, RSVD40, SR_PAGE_4K},      /* bit 40 in a PTE */
    {4, G1, 40 * MIB},            /* 1G leaf: mapped, hole, mapped, beyond */
    {4, G1 + 95 * MIB, 34 * MIB}, /* ... beyond, no segment at all */
    {4, BAD1G, SR_PAGE_4K},       /* a reserved bit in a 1G leaf */
    {4, L4BAD, SR_PAGE_4K},       /* PS in a PML4E */
    {4, L4NONE, SR_PAGE_4K},      /* a zero PML4E */
    {4, UINT64_C(0x0001000010000000), R4K_LEN},        /* R4K, bit 48 set */
    {4, UINT64_C(0x00007ffffffff000), 2 * SR_PAGE_4K}, /* canonical hole */
    {4, UINT64_C(0xfffffffffffff000), SR_PAGE_4K},     /* wraps */
    {5, R5, 4 * SR_PAGE_4K},
    {5, 0, 4 * SR_PAGE_4K},
    {5, R5_2M, SR_PAGE_2M},
    {5, R4K, SR_PAGE_4K}, /* not mapped in the 5-level space */
    {5, UINT64_C(0x0100000000000000), SR_PAGE_4K}, /* non-canonical (57) */
    {5, R5 | (UINT64_C(1) << 57), 4 * SR_PAGE_4K}, /* R5, bit 57 set */
};

/* Property: for random reads over every kind of place above (random
 * offsets; lengths of a few bytes, up to a page, up to three pages, or
 * up to 64 KiB; every walk option: defaults, SR_WALK_RESIDENT,
 * MAXPHYADDR 36), in the two-segment image and in a RAW one, sr_read_virt
 * gives what reference_virt gives (status, every field of out, the
 * bytes), with out and with out NULL; and the batch equals its
 * single-read reference item for item over the same places. */
static void test_read_fast_paths_match_reference(void** state) {
  fixture_t* fx = *state;
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
  uint64_t s = seed | 1, gva, cr3;
  sr_walk_opts_t opts;
  sr_batch_item_t it[64];
  const place_t* pl;
  size_t len;
  int round, k;

  printf(
      "test_read_fast_paths_match_reference: seed %llu (SR_SEED "
      "overrides)\n",
      (unsigned long long)seed);
  for (round = 0; round < 6000; round++) {
    if (round % 3000 == 0) { /* the two-segment layout, then RAW */
      if (round > 0)
        unbuild(fx);
      build_layout(fx, round > 0);
    }
    pl = &places[xorshift(&s) % (sizeof(places) / sizeof(places[0]))];
    memset(&opts, 0, sizeof(opts));
    opts.paging = pl->space == 5 ? SR_PAGING_5LEVEL : SR_PAGING_4LEVEL;
    opts.flags = xorshift(&s) % 3 == 0 ? SR_WALK_RESIDENT : 0;
    opts.maxphyaddr = pl->space == 4 && xorshift(&s) % 4 == 0 ? 36 : 0;
    cr3 = pl->space == 5 ? fx->cr3_5 : fx->cr3;
    gva = pl->base + xorshift(&s) % pl->span;
    switch (xorshift(&s) % 4) {
      case 0:
        len = 1 + xorshift(&s) % 16;
        break;
      case 1:
        len = 1 + xorshift(&s) % 4096;
        break;
      case 2:
        len = 1 + xorshift(&s) % (3 * 4096);
        break;
      default:
        len = 1 + xorshift(&s) % 65536;
        break;
    }
    if (xorshift(&s) % 2 == 0)
      gva &= ~UINT64_C(7); /* aligned, as most small reads are */
    check_virt(fx, cr3, xorshift(&s) % 8 == 0 ? NULL : &opts, gva, len);
    if (round % 50 == 0) {
      for (k = 0; k < 64; k++)
        set_item(&it[k], pl->base + xorshift(&s) % pl->span,
                 xorshift(&s) % 4 == 0 ? 1 + xorshift(&s) % 4096
                                       : 1 + xorshift(&s) % 16,
                 k);
      check_batch_in(fx, cr3, &opts, it, 64);
    }
  }
}

/* The lean path's cases one by one, each against reference_virt (a
 * failure names the case): reads inside one 4K, 2M or 1G leaf, crossing
 * pages and leaves, stopping at every kind of entry and image outcome. */
static void test_read_virt_lean_cases(void** state) {
  fixture_t* fx = *state;
  sr_walk_opts_t five = {SR_PAGING_5LEVEL, SR_OS_LINUX, 0, 0};
  sr_walk_opts_t phys36 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 36};
  sr_walk_opts_t resident = {SR_PAGING_4LEVEL, SR_OS_LINUX, SR_WALK_RESIDENT,
                             0};
  unsigned char buf[16];
  sr_translation_t tr;
  sr_vread_t vr;
  uint64_t frame;

  build(fx);

  check_virt(fx, fx->cr3, NULL, R4K + 8, 8);               /* 4K leaf */
  check_virt(fx, fx->cr3, NULL, R4K + 4093, 3);            /* to its end */
  check_virt(fx, fx->cr3, NULL, R4K + 4093, 4);            /* crosses */
  check_virt(fx, fx->cr3, NULL, R4K + 4 * 4096 + 8, 4096); /* to SWAPPED */
  check_virt(fx, fx->cr3, NULL, SWAPPED + 8, 8);
  check_virt(fx, fx->cr3, NULL, PROTNONE + 8, 8);
  check_virt(fx, fx->cr3, &resident, PROTNONE + 8, 8);
  check_virt(fx, fx->cr3, NULL, R2M + 4090, 12); /* inside a 2M leaf */
  check_virt(fx, fx->cr3, NULL, R2M + 12345, 60000);
  check_virt(fx, fx->cr3, NULL, R2M + SR_PAGE_2M - 4, 8); /* crosses */
  check_virt(fx, fx->cr3, NULL, G1 + 4 * MIB + 3, 1);     /* 1G leaf */
  check_virt(fx, fx->cr3, NULL, G1 + 4 * MIB, 65536);
  check_virt(fx, fx->cr3, NULL, G1 + 32 * MIB - 4, 8); /* into the hole */
  check_virt(fx, fx->cr3, NULL, G1 + 40 * MIB, 8);     /* hole */
  check_virt(fx, fx->cr3, NULL, G1 + 127 * MIB, 8);    /* beyond */
  check_virt(fx, fx->cr3, NULL, G1 + 200 * MIB, 8);    /* no segment */
  check_virt(fx, fx->cr3, NULL, UNMAPPED, 8);
  check_virt(fx, fx->cr3, NULL, DHOLE + 8, 8);
  check_virt(fx, fx->cr3, NULL, DBEYOND + 8, 8);
  check_virt(fx, fx->cr3, NULL, THOLE + 8, 8);
  check_virt(fx, fx->cr3, NULL, TBEYOND + 8, 8);
  check_virt(fx, fx->cr3, NULL, BAD2M + 8, 8);
  check_virt(fx, fx->cr3, NULL, BAD1G + 8, 8);
  check_virt(fx, fx->cr3, NULL, RSVD40 + 8, 8);
  check_virt(fx, fx->cr3, &phys36, RSVD40 + 8, 8);
  check_virt(fx, fx->cr3, &phys36, R4K + 8, 8);
  check_virt(fx, fx->cr3, NULL, L4BAD + 8, 8);
  check_virt(fx, fx->cr3, NULL, L4NONE + 8, 8);
  check_virt(fx, fx->cr3, NULL, UINT64_C(0x0000800000000000), 8);
  check_virt(fx, fx->cr3, NULL, UINT64_C(0x00007ffffffffff8), 16);
  check_virt(fx, fx->cr3, &five, R5 + 4 * 4096 - 8, 8);
  check_virt(fx, fx->cr3_5, &five, R5 + 8, 8);
  check_virt(fx, fx->cr3_5, &five, R5 + 4095, 2);
  check_virt(fx, fx->cr3_5, &five, R5_2M + 100, 5000);
  check_virt(fx, fx->cr3_5, &five, UINT64_C(0x0100000000000000), 8);
  check_virt(fx, fx->cr3_5, NULL, R5 + 8, 8); /* 4-level: non-canonical */

  /* spot checks against the kit rather than the reference */
  memset(&vr, 0xa5, sizeof(vr));
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, R2M + 4090, buf, 12, &vr), 0);
  check_pattern(buf, R2M + 4090, 12);
  assert_int_equal(sr_translate(fx->image, fx->cr3, R2M, NULL, &tr), 0);
  frame = tr.gpa;
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, R2M + 4090, buf, 12, &vr), 0);
  assert_int_equal(vr.done, 12);
  assert_int_equal(vr.gpa, frame + 4090);
  assert_int_equal(vr.prot, SR_PROT_W | SR_PROT_U);
  assert_false(vr.resident);
  assert_int_equal(vr.stop.status, 0);
  assert_int_equal(vr.stop.stop_level, 0);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, G1 + 8, buf, 8, &vr),
                   0);
  assert_int_equal(vr.gpa, 8);
  assert_int_equal(vr.prot, SR_PROT_W | SR_PROT_U | SR_PROT_NX);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3_5, &five, R5_2M + 8, buf, 8, &vr), 0);
  check_pattern(buf, R5_2M + 8, 8);
  assert_int_equal(vr.prot, SR_PROT_W);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, &phys36, RSVD40 + 8, buf, 8, &vr),
      SR_EBADENTRY);
  assert_int_equal(vr.stop.stop_level, 1);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, L4BAD + 8, buf, 8, NULL),
      SR_EBADENTRY);
}

static void test_read_virt_whole_ranges(void** state) {
  fixture_t* fx = *state;
  static unsigned char buf[3 * 4096 + 20000];
  sr_translation_t tr;
  sr_vread_t vr;

  build(fx);

  /* 4K pages, unaligned start, three pages */
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, R4K + 100, buf, 3 * 4096, &vr), 0);
  assert_int_equal(vr.done, 3 * 4096);
  check_pattern(buf, R4K + 100, 3 * 4096);
  assert_int_equal(sr_translate(fx->image, fx->cr3, R4K + 100, NULL, &tr), 0);
  assert_int_equal(vr.gpa, tr.gpa);
  assert_int_equal(vr.prot, SR_PROT_W | SR_PROT_U);
  /* across two 2M leaves */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL,
                                R2M + SR_PAGE_2M - 10000, buf, 20000, &vr),
                   0);
  assert_int_equal(vr.done, 20000);
  check_pattern(buf, R2M + SR_PAGE_2M - 10000, 20000);
}

static void test_read_virt_stops(void** state) {
  fixture_t* fx = *state;
  static unsigned char buf[8 * 4096];
  sr_vread_t vr;
  sr_walk_opts_t resident = {SR_PAGING_4LEVEL, SR_OS_LINUX, SR_WALK_RESIDENT,
                             0};
  uint64_t egpa;

  build(fx);

  /* stops at the swapped-out page, after the bytes before it */
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, R4K + 100, buf, sizeof(buf), &vr),
      SR_ENOTPRESENT);
  assert_int_equal(vr.done, SWAPPED - (R4K + 100));
  check_pattern(buf, R4K + 100, vr.done);
  assert_int_equal(vr.stop.status, SR_ENOTPRESENT);
  assert_int_equal(vr.stop.stop_level, 1);
  assert_int_equal(vr.stop.fail_entry, fx->swap_entry);
  assert_int_equal(sr_kit_entry_gpa(fx->kit, fx->cr3, SWAPPED, 1, &egpa), 0);
  assert_int_equal(vr.stop.fail_entry_gpa, egpa);
  assert_int_equal(vr.stop.pte.kind, SR_PTE_LINUX_SWAP);
  assert_int_equal(vr.stop.pte.swap_offset, 77);

  /* PROT_NONE: not present, unless resident reads are allowed */
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, PROTNONE - 8, buf, 16, &vr),
      SR_ENOTPRESENT);
  assert_int_equal(vr.done, 8);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, &resident, PROTNONE - 8, buf, 4096, &vr),
      0);
  assert_true(vr.resident);
  check_pattern(buf, PROTNONE - 8, 4096);

  /* the data of a page in a hole / past the end of the file */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, DHOLE, buf, 8, &vr),
                   SR_EHOLE);
  assert_int_equal(vr.done, 0);
  assert_int_equal(vr.stop.status, 0);
  assert_int_equal(vr.stop.gpa, HOLE_GPA);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, DBEYOND, buf, 8, &vr),
                   SR_EBEYOND);
  /* walk errors */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, THOLE, buf, 8, &vr),
                   SR_EHOLE);
  assert_int_equal(vr.stop.stop_level, 1);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, BAD2M, buf, 8, &vr),
                   SR_EBADENTRY);
  assert_int_equal(vr.stop.stop_level, 2);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, UNMAPPED, buf, 8, &vr),
      SR_ENOTPRESENT);
  assert_int_equal(vr.stop.stop_level, 2);
  /* a range running into the non-canonical hole */
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL,
                                UINT64_C(0x00007ffffffffff8), buf, 16, &vr),
                   SR_ENOTPRESENT);
}

static void test_read_virt_args(void** state) {
  fixture_t* fx = *state;
  unsigned char buf[8];
  sr_walk_opts_t bad = {SR_PAGING_4LEVEL, SR_OS_LINUX, 1u << 9, 0};
  sr_vread_t vr;

  build(fx);

  assert_int_equal(sr_read_virt(NULL, fx->cr3, NULL, R4K, buf, 8, &vr),
                   SR_EINVAL);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, R4K, NULL, 8, &vr),
                   SR_EINVAL);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, R4K, buf, 0, &vr),
                   SR_EINVAL);
  assert_int_equal(
      sr_read_virt(fx->image, fx->cr3, NULL, UINT64_MAX - 3, buf, 8, &vr),
      SR_EINVAL);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, &bad, R4K, buf, 8, &vr),
                   SR_EINVAL);
  assert_int_equal(vr.done, 0);
  assert_int_equal(sr_read_virt(fx->image, fx->cr3, NULL, R4K, buf, 8, NULL),
                   0);
  check_pattern(buf, R4K, 8);
}

/* The canonical hole is never read through: a non-canonical VA stops the
 * read with SR_ENONCANON (no byte copied), and a range running from the
 * last user page into the hole stops at the hole, even when the kernel half
 * the dropped top bits would alias is mapped. */
static void test_read_virt_stops_at_canonical_hole(void** state) {
  const uint64_t user_top = UINT64_C(0x7ffffffff000);
  const uint64_t kbase = UINT64_C(0xffff800000000000);
  const uint64_t alias = UINT64_C(0x0000800000000000); /* kbase, top cut */
  unsigned char buf[8192];
  sr_kit_opts_t opts;
  sr_image_t* image;
  sr_kit_t* kit;
  sr_vread_t vr;
  uint64_t cr3;
  size_t i;

  (void)state;
  memset(&opts, 0, sizeof(opts));
  opts.size = 8 * MIB;
  assert_int_equal(sr_kit_create(&kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), 0);
  assert_int_equal(
      sr_kit_map(kit, cr3, user_top, 4096, SR_PAGE_4K, SR_PROT_W | SR_PROT_U),
      0);
  assert_int_equal(sr_kit_map(kit, cr3, kbase, 2 * 4096, SR_PAGE_4K, 0), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, user_top, 4096, SEED), 0);
  assert_int_equal(sr_kit_fill(kit, cr3, kbase, 2 * 4096, SEED), 0);
  assert_int_equal(sr_kit_open_image(kit, &image), 0);

  assert_int_equal(sr_read_virt(image, cr3, NULL, alias, buf, 8, &vr),
                   SR_ENONCANON);
  assert_int_equal(vr.done, 0);
  assert_int_equal(vr.stop.status, SR_ENONCANON);

  memset(buf, 0, sizeof(buf));
  assert_int_equal(sr_read_virt(image, cr3, NULL, user_top, buf, 8192, &vr),
                   SR_ENONCANON);
  assert_int_equal(vr.done, 4096);
  for (i = 0; i < 4096; i++)
    assert_int_equal(buf[i], sr_kit_pattern(SEED, user_top + i));

  sr_image_close(image);
  sr_kit_destroy(kit);
}

/* --- a file that shrinks under the reader ----------------------------- */

#define SHR_SIZE (8 * MIB)
#define SHR_X (SHR_SIZE - 2 * 4096)   /* the frame the new end falls in */
#define SHR_Y (SHR_SIZE - 4096)       /* a frame wholly past the new end */
#define SHR_END (SHR_X + 2048)        /* the file size after the cut */
#define SHR_GOOD UINT64_C(0x10000000) /* two ordinary pages */
#define SHR_DX UINT64_C(0x20000000)   /* data in SHR_X */
#define SHR_DY (SHR_DX + 4096)        /* data in SHR_Y */
#define SHR_TY UINT64_C(0x30000000)   /* its page table in SHR_Y */

typedef struct shrunk_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
} shrunk_t;

/* A RAW image of SHR_SIZE bytes, opened, then cut to SHR_END bytes: loads
 * from SHR_Y fault (SIGBUS) until the library notices the new size. */
static void shrunk_open(shrunk_t* w) {
  uint64_t rw_u = SR_PROT_W | SR_PROT_U;
  sr_kit_opts_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.size = SHR_SIZE;
  assert_int_equal(sr_kit_create(&w->kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(w->kit, SR_PAGING_4LEVEL, &w->cr3), 0);
  assert_int_equal(
      sr_kit_map(w->kit, w->cr3, SHR_GOOD, 2 * SR_PAGE_4K, SR_PAGE_4K, rw_u),
      0);
  assert_int_equal(sr_kit_fill(w->kit, w->cr3, SHR_GOOD, 2 * 4096, SEED), 0);
  assert_int_equal(sr_kit_map_gpa(w->kit, w->cr3, SHR_DX, 2 * SR_PAGE_4K, SHR_X,
                                  SR_PAGE_4K, rw_u),
                   0);
  assert_int_equal(sr_kit_fill(w->kit, w->cr3, SHR_DX, 2 * 4096, SEED), 0);
  assert_int_equal(
      sr_kit_map(w->kit, w->cr3, SHR_TY, SR_PAGE_4K, SR_PAGE_4K, rw_u), 0);
  assert_int_equal(
      sr_kit_set_entry(w->kit, w->cr3, SHR_TY, 2, SHR_Y | TBL_, NULL), 0);
  assert_int_equal(sr_kit_open_image(w->kit, &w->image), 0);
  assert_int_equal(sr_kit_truncate(w->kit, SHR_END), 0);
}

static void shrunk_close(shrunk_t* w) {
  sr_image_close(w->image);
  sr_kit_destroy(w->kit);
}

/* The first load past the new end faults inside sr_read_virt's lean path
 * (its data, with out; a page table, without out): the fault is caught,
 * the read ends with SR_EBEYOND as the reference path says it, and the
 * lowered size is what every later read sees, the lean path included
 * (SHR_END + 8 lies in a page that is still mapped: only that bound keeps
 * it from reading zeros there). */
static void test_read_virt_shrunk_file(void** state) {
  unsigned char buf[8], big[16];
  sr_batch_item_t it[2];
  shrunk_t w;
  sr_vread_t vr;

  (void)state;
  /* the data faults, out given */
  shrunk_open(&w);
  memset(&vr, 0xa5, sizeof(vr));
  assert_int_equal(sr_read_virt(w.image, w.cr3, NULL, SHR_DY + 8, buf, 8, &vr),
                   SR_EBEYOND);
  assert_int_equal(vr.done, 0);
  assert_int_equal(vr.stop.status, 0);
  assert_int_equal(vr.stop.gpa, SHR_Y + 8);
  assert_int_equal(sr_image_file_size(w.image), SHR_END);
  assert_int_equal(
      sr_read_virt(w.image, w.cr3, NULL, SHR_DX + 2048 + 8, buf, 8, NULL),
      SR_EBEYOND);
  assert_int_equal(
      sr_read_virt(w.image, w.cr3, NULL, SHR_DX + 2040, buf, 8, &vr), 0);
  check_pattern(buf, SHR_DX + 2040, 8);
  assert_int_equal(vr.gpa, SHR_X + 2040);
  /* across the new end: none of it */
  assert_int_equal(
      sr_read_virt(w.image, w.cr3, NULL, SHR_DX + 2040, big, 16, &vr),
      SR_EBEYOND);
  assert_int_equal(vr.done, 0);
  set_item(&it[0], SHR_DX + 2040, 16, 0);
  set_item(&it[1], SHR_DX + 2032, 16, 1);
  assert_int_equal(sr_read_batch(w.image, w.cr3, NULL, it, 2), 1);
  assert_int_equal(it[0].status, SR_EBEYOND);
  assert_int_equal(it[1].status, 0);
  check_pattern(it[1].buf, SHR_DX + 2032, 16);
  assert_int_equal(
      sr_read_virt(w.image, w.cr3, NULL, SHR_GOOD + 4092, buf, 8, NULL), 0);
  check_pattern(buf, SHR_GOOD + 4092, 8);
  shrunk_close(&w);

  /* a page table faults, out NULL */
  shrunk_open(&w);
  assert_int_equal(sr_read_virt(w.image, w.cr3, NULL, SHR_TY + 8, buf, 8, NULL),
                   SR_EBEYOND);
  assert_int_equal(sr_image_file_size(w.image), SHR_END);
  assert_int_equal(sr_read_virt(w.image, w.cr3, NULL, SHR_TY + 8, buf, 8, &vr),
                   SR_EBEYOND);
  assert_int_equal(vr.stop.status, SR_EBEYOND);
  assert_int_equal(vr.stop.stop_level, 1);
  assert_int_equal(vr.stop.fail_entry_gpa, SHR_Y);
  shrunk_close(&w);

  /* before any fault the tail of the last page reads as zeros (the limit
   * core/image.c states); a fault in a batch lowers the size for both */
  shrunk_open(&w);
  memset(buf, 0xa5, sizeof(buf));
  assert_int_equal(
      sr_read_virt(w.image, w.cr3, NULL, SHR_DX + 2048 + 8, buf, 8, &vr), 0);
  assert_memory_equal(buf, "\0\0\0\0\0\0\0\0", 8);
  set_item(&it[0], SHR_DY, 8, 0);
  set_item(&it[1], SHR_DX + 2048 + 8, 8, 1);
  assert_int_equal(sr_read_batch(w.image, w.cr3, NULL, it, 2), 0);
  assert_int_equal(it[0].status, SR_EBEYOND);
  assert_int_equal(it[1].status, SR_EBEYOND);
  assert_int_equal(
      sr_read_virt(w.image, w.cr3, NULL, SHR_DX + 2048 + 8, buf, 8, &vr),
      SR_EBEYOND);
  assert_int_equal(vr.stop.gpa, SHR_X + 2048 + 8);
  shrunk_close(&w);
}

/* Reserved address bits (MAXPHYADDR 36) on entries whose 52-bit reading
 * lands inside the image: a second segment at GPA 2^36 mirrors the first
 * one byte for byte, so with the default 52 bits an address with bit 36
 * set names the mirror of what it names without it. With MAXPHYADDR 36 a
 * PTE or a PDE with bit 36 is a bad entry and a CR3 with it is invalid;
 * with 52 bits all three read. Each read against reference_virt. */
static void test_read_virt_reserved_bits(void** state) {
  const uint64_t hi = UINT64_C(1) << 36;
  const uint64_t va1 = UINT64_C(0x40000000), va2 = UINT64_C(0x40200000);
  const uint64_t va3 = UINT64_C(0x40400000); /* no reserved bit on the way */
  /* the mirror is the larger segment: the image's first flat extent */
  const sr_segment_t seg[2] = {{0, 16 * MIB, 0}, {hi, 32 * MIB, 16 * MIB}};
  sr_walk_opts_t phys36 = {SR_PAGING_4LEVEL, SR_OS_LINUX, 0, 36};
  static unsigned char chunk[65536];
  sr_batch_item_t it[6];
  fixture_t fx;
  int k;
  sr_kit_opts_t opts;
  uint64_t off, rw_u = SR_PROT_W | SR_PROT_U;

  (void)state;
  memset(&fx, 0, sizeof(fx));
  memset(&opts, 0, sizeof(opts));
  opts.seg = seg;
  opts.nseg = 2;
  assert_int_equal(sr_kit_create(&fx.kit, &opts), 0);
  assert_int_equal(sr_kit_new_space(fx.kit, SR_PAGING_4LEVEL, &fx.cr3), 0);
  assert_true(fx.cr3 < 16 * MIB);
  assert_int_equal(sr_kit_map(fx.kit, fx.cr3, va1, 4096, 4096, rw_u), 0);
  assert_int_equal(sr_kit_map(fx.kit, fx.cr3, va2, 4096, 4096, rw_u), 0);
  assert_int_equal(sr_kit_fill(fx.kit, fx.cr3, va1, 4096, SEED), 0);
  assert_int_equal(sr_kit_fill(fx.kit, fx.cr3, va2, 4096, SEED), 0);
  assert_int_equal(sr_kit_map(fx.kit, fx.cr3, va3, 4096, 4096, rw_u), 0);
  assert_int_equal(sr_kit_fill(fx.kit, fx.cr3, va3, 4096, SEED), 0);
  or_entry(fx.kit, fx.cr3, va1, 1, hi);
  or_entry(fx.kit, fx.cr3, va2, 2, hi);
  for (off = 0; off < 16 * MIB; off += sizeof(chunk)) {
    assert_int_equal(sr_kit_read_phys(fx.kit, off, chunk, sizeof(chunk)), 0);
    assert_int_equal(sr_kit_write_phys(fx.kit, hi + off, chunk, sizeof(chunk)),
                     0);
  }
  assert_int_equal(sr_kit_open_image(fx.kit, &fx.image), 0);

  for (k = 0; k < 6; k++)
    set_item(&it[k], (k % 3 == 0 ? va1 : k % 3 == 1 ? va2 : va3) + 8 * k, 8, k);
  check_batch_in(&fx, fx.cr3, NULL, it, 6);
  check_batch_in(&fx, fx.cr3, &phys36, it, 6);
  assert_int_equal(it[0].status, SR_EBADENTRY);
  assert_int_equal(it[1].status, SR_EBADENTRY);
  assert_int_equal(it[2].status, 0);
  check_virt(&fx, fx.cr3, NULL, va1 + 8, 8);
  check_virt(&fx, fx.cr3, &phys36, va1 + 8, 8);
  check_virt(&fx, fx.cr3, NULL, va2 + 8, 8);
  check_virt(&fx, fx.cr3, &phys36, va2 + 8, 8);
  check_virt(&fx, fx.cr3 | hi, NULL, va3 + 8, 8);
  check_virt(&fx, fx.cr3 | hi, &phys36, va3 + 8, 8);
  assert_int_equal(status_of(&fx, NULL, va1 + 8), 0);
  assert_int_equal(status_of(&fx, &phys36, va1 + 8), SR_EBADENTRY);
  assert_int_equal(status_of(&fx, NULL, va2 + 8), 0);
  assert_int_equal(status_of(&fx, &phys36, va2 + 8), SR_EBADENTRY);
  assert_int_equal(status_of(&fx, &phys36, va3 + 8), 0);
  fx.cr3 |= hi;
  assert_int_equal(status_of(&fx, NULL, va3 + 8), 0);
  assert_int_equal(status_of(&fx, &phys36, va3 + 8), SR_EINVAL);

  sr_image_close(fx.image);
  sr_kit_destroy(fx.kit);
}

/* Copy, then revalidate, made deterministic: the read's own copy writes
 * over the entry it was walked through (buf is that entry, in a writable
 * mapping of the image's file; the page's bytes are zeros), so the entry
 * changes between the copy and the re-read. Whatever level the entry is
 * at (4K and 2M leaves, every upper level, 4- and 5-level paging), the
 * read must not accept the copy: it ends with SR_ENOTPRESENT at that level,
 * as the zeroed entry now says. Also for a batch item (its leaf). */
static void test_read_revalidates_after_copy(void** state) {
  static const struct {
    sr_paging_t paging;
    uint64_t page;
    int level;
  } cases[] = {
      {SR_PAGING_4LEVEL, SR_PAGE_4K, 1}, {SR_PAGING_4LEVEL, SR_PAGE_4K, 2},
      {SR_PAGING_4LEVEL, SR_PAGE_4K, 3}, {SR_PAGING_4LEVEL, SR_PAGE_4K, 4},
      {SR_PAGING_4LEVEL, SR_PAGE_2M, 2}, {SR_PAGING_4LEVEL, SR_PAGE_2M, 4},
      {SR_PAGING_5LEVEL, SR_PAGE_4K, 1}, {SR_PAGING_5LEVEL, SR_PAGE_4K, 5},
  };
  const uint64_t va = UINT64_C(0x40000000);
  sr_walk_opts_t opts;
  sr_kit_opts_t ko;
  sr_batch_item_t it;
  sr_image_t* image;
  sr_kit_t* kit;
  sr_vread_t vr;
  unsigned char* w;
  uint64_t cr3, egpa;
  size_t i;
  int pass;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    for (pass = 0; pass < 3; pass++) { /* out, out NULL, a batch item */
      if (pass == 2 && cases[i].level != 1)
        continue;
      memset(&ko, 0, sizeof(ko));
      ko.size = 8 * MIB;
      assert_int_equal(sr_kit_create(&kit, &ko), 0);
      assert_int_equal(sr_kit_new_space(kit, cases[i].paging, &cr3), 0);
      assert_int_equal(sr_kit_map(kit, cr3, va, cases[i].page, cases[i].page,
                                  SR_PROT_W | SR_PROT_U),
                       0);
      assert_int_equal(sr_kit_open_image(kit, &image), 0);
      w = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED,
               sr_kit_fd(kit), 0);
      assert_true(w != MAP_FAILED);
      assert_int_equal(sr_kit_entry_gpa(kit, cr3, va, cases[i].level, &egpa),
                       0);
      memset(&opts, 0, sizeof(opts));
      opts.paging = cases[i].paging;
      if (pass < 2) {
        assert_int_equal(sr_read_virt(image, cr3, &opts, va + 64, w + egpa, 8,
                                      pass == 0 ? &vr : NULL),
                         SR_ENOTPRESENT);
        if (pass == 0) {
          assert_int_equal(vr.done, 0);
          assert_int_equal(vr.stop.stop_level, cases[i].level);
          assert_int_equal(vr.stop.fail_entry_gpa, egpa);
        }
      } else {
        memset(&it, 0, sizeof(it));
        it.gva = va + 64;
        it.buf = w + egpa;
        it.len = 8;
        assert_int_equal(sr_read_batch(image, cr3, &opts, &it, 1), 0);
        assert_int_equal(it.status, SR_ENOTPRESENT);
        assert_int_equal(it.level, 1);
        assert_int_equal(it.entry_gpa, egpa);
      }
      munmap(w, 8 * MIB);
      sr_image_close(image);
      sr_kit_destroy(kit);
    }
  }
}

/* --- a guest that pages out under the reader -------------------------- */

typedef struct churn_s {
  fixture_t* fx;
  uint64_t frame;   /* GPA of the frame of page 2 of R4K */
  uint64_t present; /* its PTE */
  unsigned char good[4096], junk[4096];
  volatile int stop;
  volatile unsigned spin_sink;
  unsigned cycles;
} churn_t;

/* The writer: page out (a swap entry), scribble over the frame, put the
 * pattern back, page in again with a new value in the ignored bits 52..58
 * (so the entry never reads the same twice in a row: no ABA). */
static void* churn(void* arg) {
  churn_t* c = arg;
  uint64_t va = R4K + 2 * 4096;
  unsigned n, spin;

  for (n = 1; !c->stop; n++) {
    assert_int_equal(sr_kit_set_entry(c->fx->kit, c->fx->cr3, va, 1,
                                      c->fx->swap_entry, NULL),
                     0);
    assert_int_equal(sr_kit_write_phys(c->fx->kit, c->frame, c->junk, 4096), 0);
    for (spin = 0; spin < 2000; spin++) /* leave the junk there a while */
      c->spin_sink = spin;
    assert_int_equal(sr_kit_write_phys(c->fx->kit, c->frame, c->good, 4096), 0);
    assert_int_equal(
        sr_kit_set_entry(c->fx->kit, c->fx->cr3, va, 1,
                         c->present | ((uint64_t)(n & 127) << 52), NULL),
        0);
    c->cycles = n;
  }
  return NULL;
}

/* Property: while the page is paged out, scribbled over and paged back in
 * by another thread, no byte that sr_read_virt (a range across it, and
 * small reads inside it: the lean path) or sr_read_batch accepts is junk
 * (copy-then-revalidate rejects every copy the entry changed under), and
 * every call ends with 0, SR_ENOTPRESENT or SR_EBUSY. */
static void test_read_revalidates_under_pageout(void** state) {
  fixture_t* fx = *state;
  static churn_t c;
  static unsigned char buf[3 * 4096];
  sr_batch_item_t it[8];
  sr_translation_t tr;
  sr_vread_t vr;
  pthread_t th;
  uint64_t t0;
  unsigned ok = 0, rejected = 0, lean_ok = 0, k;
  size_t i;
  int rc;

  build(fx);
  memset(&c, 0, sizeof(c));
  c.fx = fx;
  assert_int_equal(sr_translate(fx->image, fx->cr3, R4K + 2 * 4096, NULL, &tr),
                   0);
  c.frame = tr.gpa;
  c.present = tr.entry[0];
  for (i = 0; i < 4096; i++)
    c.good[i] = sr_kit_pattern(SEED, R4K + 2 * 4096 + i);
  memset(c.junk, 0xa5, sizeof(c.junk));
  assert_int_equal(pthread_create(&th, NULL, churn, &c), 0);
  t0 = (uint64_t)clock();
  while ((uint64_t)clock() - t0 < CLOCKS_PER_SEC / 4 || c.cycles < 100) {
    rc = sr_read_virt(fx->image, fx->cr3, NULL, R4K + 4096, buf, sizeof(buf),
                      &vr);
    assert_true(rc == 0 || rc == SR_ENOTPRESENT || rc == SR_EBUSY);
    check_pattern(buf, R4K + 4096, vr.done);
    if (rc == 0)
      ok++;
    else
      rejected++;
    /* reads inside the churned page (the lean path), out or not */
    for (k = 0; k < 8; k++) {
      size_t n = k % 2 ? 8 : 512;
      rc = sr_read_virt(fx->image, fx->cr3, NULL, R4K + 2 * 4096 + k * 512, buf,
                        n, k % 4 < 2 ? &vr : NULL);
      assert_true(rc == 0 || rc == SR_ENOTPRESENT || rc == SR_EBUSY);
      if (rc == 0) {
        check_pattern(buf, R4K + 2 * 4096 + k * 512, n);
        lean_ok++;
      }
    }
    for (k = 0; k < 8; k++)
      set_item(&it[k], R4K + 2 * 4096 + k * 512, 512, (int)k);
    sr_read_batch(fx->image, fx->cr3, NULL, it, 8);
    for (k = 0; k < 8; k++) {
      assert_true(it[k].status == 0 || it[k].status == SR_ENOTPRESENT ||
                  it[k].status == SR_EBUSY);
      if (it[k].status == 0)
        check_pattern(it[k].buf, it[k].gva, 512);
    }
  }
  c.stop = 1;
  assert_int_equal(pthread_join(th, NULL), 0);
  printf(
      "revalidates_under_pageout: %u complete, %u stopped, %u in-page "
      "reads complete, %u cycles\n",
      ok, rejected, lean_ok, c.cycles);
  assert_true(ok + rejected > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_read_batch_matches_single, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_batch_args, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_batch_property, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_virt_whole_ranges, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_virt_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_virt_args, setup, teardown),
      cmocka_unit_test(test_read_virt_stops_at_canonical_hole),
      cmocka_unit_test_setup_teardown(test_read_fast_paths_match_reference,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_virt_lean_cases, setup,
                                      teardown),
      cmocka_unit_test(test_read_virt_shrunk_file),
      cmocka_unit_test(test_read_virt_reserved_bits),
      cmocka_unit_test(test_read_revalidates_after_copy),
      cmocka_unit_test_setup_teardown(test_read_revalidates_under_pageout,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
