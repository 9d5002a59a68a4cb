/* Cookbook (c): a fault-tolerance test for your own consumer, with a holey
 * image.
 *
 * consume() below stands for the code you want to test: it reads a few
 * bytes of a process's memory out of a guest RAM image and says why it
 * could not. The test builds one image with every hostile case the
 * holey-image kit can make — a page whose frame is in a physical hole, a
 * page beyond the end of a file that shrank under the open image, a
 * swapped-out page, a PROT_NONE page, entries with reserved bits, a page
 * table in a hole, an unmapped and a non-canonical address — and checks
 * that consume() reports each one with the right error (and, for a
 * non-present entry, the right kind and level) instead of crashing or
 * returning garbage. The same addresses then go to the swap engine, which
 * rejects the permanent cases and waits on the non-present ones. Last, a
 * seeded loop writes random garbage into the entries of one address and
 * requires a known outcome every time (SR_SEED overrides the seed). Every
 * expectation comes from how the image was built. Exit status 0 iff every
 * check held.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swapread.h>

#define PAGE 4096u
#define USER_RW (SR_PROT_W | SR_PROT_U)
#define KIT_SIZE (16u << 20)
#define SHRUNK_SIZE (12u << 20) /* the file after sr_kit_truncate */
#define HOLE_GPA (8u << 20)     /* [8 MiB, 9 MiB) is a physical hole */
#define HOLE_LEN (1u << 20)
#define BEYOND_GPA (15u << 20) /* backed at first, beyond after truncation */
#define SEED 0x5eedu
#define ADDR_MASK UINT64_C(0x000ffffffffff000)
#define ENTRY_P UINT64_C(0x1)
#define ENTRY_RW UINT64_C(0x2)
#define ENTRY_US UINT64_C(0x4)
#define ENTRY_PS UINT64_C(0x80)
#define GUEST_MAXPHYADDR 46 /* what CPUID says for the guest */

/* One address per case; each sits under its own page table (2 MiB apart)
 * or its own PML4 slot, so breaking one case's tables breaks nothing
 * else. */
#define GOOD_GVA UINT64_C(0x10000000)
#define HOLE_GVA UINT64_C(0x10200000)
#define BEYOND_GVA UINT64_C(0x10400000)
#define SWAP_GVA UINT64_C(0x10600000)
#define PROTNONE_GVA UINT64_C(0x10800000)
#define RSVD_GVA UINT64_C(0x10a00000)
#define TABLE_HOLE_GVA UINT64_C(0x10c00000)
#define PS_PML4_GVA UINT64_C(0x8000000000)    /* PML4 slot 1 */
#define FUZZ_GVA UINT64_C(0x10000000000)      /* PML4 slot 2 */
#define UNMAPPED_GVA UINT64_C(0x100000000000) /* PML4 slot 32: empty */
#define NONCANON_GVA UINT64_C(0x0000800000000000)
#define SWAP_TYPE 2u
#define SWAP_OFFSET UINT64_C(0x1234)

/* ---- the consumer under test -------------------------------------------- */

/* What consume() found out. */
typedef struct verdict_s {
  int err;   /* 0, or why the bytes could not be read */
  int level; /* paging level that stopped the walk; 0: the data itself */
  sr_pte_info_t pte; /* SR_ENOTPRESENT: how the entry is encoded */
} verdict_t;

/* Reads len bytes at gva (within one page) under cr3 into buf, now, without
 * waiting. 0: buf is filled; else *v says why not. */
static int consume(const sr_image_t* image, uint64_t cr3,
                   const sr_walk_opts_t* opts, uint64_t gva, void* buf,
                   size_t len, verdict_t* v) {
  sr_translation_t t;

  memset(v, 0, sizeof(*v));
  v->err = sr_translate(image, cr3, gva, opts, &t);
  if (v->err != 0) {
    v->level = t.stop_level;
    v->pte = t.pte;
    return v->err;
  }
  v->err = sr_image_read(image, t.gpa, buf, len, NULL);
  return v->err;
}

/* ---- the test ------------------------------------------------------------ */

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

typedef struct case_s {
  const char* name;
  uint64_t gva;
  int err;            /* expected from consume() */
  int level;          /* expected stop level (0: data or not walked) */
  sr_pte_kind_t kind; /* expected kind for SR_ENOTPRESENT */
  int engine;         /* expected from sr_swap_read */
} case_t;

static const case_t cases[] = {
    {"present", GOOD_GVA, 0, 0, SR_PTE_PRESENT, 0},
    {"frame in hole", HOLE_GVA, SR_EHOLE, 0, SR_PTE_PRESENT, SR_EHOLE},
    {"file shrank", BEYOND_GVA, SR_EBEYOND, 0, SR_PTE_PRESENT, SR_EBEYOND},
    {"swapped out", SWAP_GVA, SR_ENOTPRESENT, 1, SR_PTE_LINUX_SWAP, SR_PENDING},
    {"PROT_NONE", PROTNONE_GVA, SR_ENOTPRESENT, 1, SR_PTE_LINUX_PROTNONE,
     SR_PENDING},
    {"reserved bit", RSVD_GVA, SR_EBADENTRY, 1, SR_PTE_PRESENT, SR_EBADENTRY},
    {"PS in PML4E", PS_PML4_GVA, SR_EBADENTRY, 4, SR_PTE_PRESENT, SR_EBADENTRY},
    {"table in hole", TABLE_HOLE_GVA, SR_EHOLE, 1, SR_PTE_PRESENT, SR_EHOLE},
    {"unmapped", UNMAPPED_GVA, SR_ENOTPRESENT, 4, SR_PTE_NONE, SR_PENDING},
    {"non-canonical", NONCANON_GVA, SR_ENONCANON, 0, SR_PTE_PRESENT,
     SR_ENONCANON},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

typedef struct fixture_s {
  sr_kit_t* kit;
  sr_image_t* image;
  sr_swap_t* swap;
  uint64_t cr3;
  uint64_t protnone_frame; /* the frame behind PROTNONE_GVA */
  sr_walk_opts_t opts;
} fixture_t;

static int map_page(fixture_t* f, uint64_t gva) {
  int rc = sr_kit_map(f->kit, f->cr3, gva, PAGE, SR_PAGE_4K, USER_RW);

  return rc != 0 ? rc : sr_kit_fill(f->kit, f->cr3, gva, PAGE, SEED);
}

/* Sets bits in the entry for gva at level. */
static int set_bits(fixture_t* f, uint64_t gva, int level, uint64_t bits) {
  uint64_t e;
  int rc = sr_kit_get_entry(f->kit, f->cr3, gva, level, &e);

  return rc != 0 ? rc
                 : sr_kit_set_entry(f->kit, f->cr3, gva, level, e | bits, NULL);
}

/* Builds every case except the truncation, then opens the image. */
static int build(fixture_t* f) {
  sr_kit_opts_t ko;
  sr_swap_opts_t so;
  sr_pte_info_t as;
  uint64_t e;
  int rc;

  memset(&ko, 0, sizeof(ko));
  ko.size = KIT_SIZE;
  memset(&as, 0, sizeof(as));
  if ((rc = sr_kit_create(&f->kit, &ko)) != 0 ||
      (rc = sr_kit_punch_hole(f->kit, HOLE_GPA, HOLE_LEN)) != 0 ||
      (rc = sr_kit_new_space(f->kit, SR_PAGING_4LEVEL, &f->cr3)) != 0 ||
      (rc = map_page(f, GOOD_GVA)) != 0 || (rc = map_page(f, SWAP_GVA)) != 0 ||
      (rc = map_page(f, PROTNONE_GVA)) != 0 ||
      (rc = map_page(f, RSVD_GVA)) != 0 ||
      (rc = map_page(f, TABLE_HOLE_GVA)) != 0 ||
      (rc = map_page(f, PS_PML4_GVA)) != 0 ||
      (rc = map_page(f, FUZZ_GVA)) != 0 ||
      (rc = sr_kit_map_gpa(f->kit, f->cr3, HOLE_GVA, PAGE, HOLE_GPA, SR_PAGE_4K,
                           USER_RW)) != 0 ||
      (rc = sr_kit_map_gpa(f->kit, f->cr3, BEYOND_GVA, PAGE, BEYOND_GPA,
                           SR_PAGE_4K, USER_RW)) != 0 ||
      (rc = sr_kit_fill(f->kit, f->cr3, BEYOND_GVA, PAGE, SEED)) != 0)
    return rc;

  /* Swapped out: a Linux swap entry (type 2, offset 0x1234). */
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = SWAP_TYPE;
  as.swap_offset = SWAP_OFFSET;
  if ((rc = sr_kit_page_out(f->kit, f->cr3, SWAP_GVA, 1, &as)) != 0)
    return rc;
  /* PROT_NONE: resident, the frame stored inverted (frame 0: keep it). */
  if ((rc = sr_kit_get_entry(f->kit, f->cr3, PROTNONE_GVA, 1, &e)) != 0)
    return rc;
  f->protnone_frame = e & ADDR_MASK;
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_PROTNONE;
  if ((rc = sr_kit_page_out(f->kit, f->cr3, PROTNONE_GVA, 1, &as)) != 0)
    return rc;
  /* Garbage: bit 50 is reserved on a guest with MAXPHYADDR 46; PS is
   * reserved in a PML4E; a PDE that points at a page table in the hole. */
  if ((rc = set_bits(f, RSVD_GVA, 1, UINT64_C(1) << 50)) != 0 ||
      (rc = set_bits(f, PS_PML4_GVA, 4, ENTRY_PS)) != 0 ||
      (rc = sr_kit_set_entry(f->kit, f->cr3, TABLE_HOLE_GVA, 2,
                             HOLE_GPA | ENTRY_P | ENTRY_RW | ENTRY_US, NULL)) !=
          0)
    return rc;

  memset(&f->opts, 0, sizeof(f->opts));
  f->opts.maxphyaddr = GUEST_MAXPHYADDR;
  if ((rc = sr_kit_open_image(f->kit, &f->image)) != 0)
    return rc;
  memset(&so, 0, sizeof(so));
  so.walk = f->opts;
  return sr_swap_new(&f->swap, f->image, &so);
}

static bool pattern_ok(const unsigned char* buf, uint64_t gva, size_t len) {
  size_t i;

  for (i = 0; i < len; i++)
    if (buf[i] != sr_kit_pattern(SEED, gva + i))
      return false;
  return true;
}

/* Whether consume() reads the page at gva with the expected bytes. */
static bool reads_ok(const fixture_t* f, uint64_t gva) {
  unsigned char buf[64];
  verdict_t v;

  return consume(f->image, f->cr3, &f->opts, gva, buf, sizeof(buf), &v) == 0 &&
         pattern_ok(buf, gva, sizeof(buf));
}

typedef struct cb_count_s {
  int calls;
  int status;
} cb_count_t;

static void on_done(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  cb_count_t* n = data;

  (void)swap;
  n->calls++;
  n->status = done->status;
}

/* Runs one case through consume() and through the swap engine. */
static void run_case(fixture_t* f, const case_t* c) {
  unsigned char buf[64];
  verdict_t v;
  sr_swap_req_t req;
  sr_swap_handle_t h;
  cb_count_t n = {0, 0};
  int rc, erc;
  int bad0 = failures;

  memset(buf, 0, sizeof(buf));
  rc = consume(f->image, f->cr3, &f->opts, c->gva, buf, sizeof(buf), &v);
  CHECK(rc == c->err);
  CHECK(v.level == c->level);
  if (rc == 0)
    CHECK(pattern_ok(buf, c->gva, sizeof(buf)));
  if (rc == SR_ENOTPRESENT)
    CHECK(v.pte.kind == c->kind);
  if (c->kind == SR_PTE_LINUX_SWAP)
    CHECK(v.pte.swap_type == SWAP_TYPE && v.pte.swap_offset == SWAP_OFFSET);
  if (c->kind == SR_PTE_LINUX_PROTNONE)
    CHECK(v.pte.resident && v.pte.frame == f->protnone_frame);

  /* The engine: permanent errors are rejected at once; a non-present
   * entry is waited on (here: cancelled, its callback runs once). */
  memset(&req, 0, sizeof(req));
  req.cr3 = f->cr3;
  req.gva = c->gva;
  req.buf = buf;
  req.len = sizeof(buf);
  erc = sr_swap_read(f->swap, &req, 0, on_done, &n, NULL, &h, NULL);
  CHECK(erc == c->engine);
  if (erc == SR_PENDING) {
    CHECK(n.calls == 0);
    CHECK(sr_swap_cancel(f->swap, h) == 0);
    CHECK(n.calls == 1 && n.status == SR_ECANCELED);
  } else {
    CHECK(n.calls == 0);
  }

  printf("  %-4s %-13s %#15" PRIx64 "  %s", failures == bad0 ? "ok" : "FAIL",
         c->name, c->gva, rc == 0 ? "read" : sr_err_name(rc));
  if (rc == SR_ENOTPRESENT)
    printf(" at level %d (%s)", v.level, sr_pte_kind_name(v.pte.kind));
  else if (rc != 0 && v.level != 0)
    printf(" at level %d", v.level);
  printf("; engine: %s\n", erc == SR_PENDING
                               ? "pending, cancelled"
                               : (erc == 0 ? "read" : sr_err_name(erc)));
}

/* Opt-in: with SR_WALK_RESIDENT, the PROT_NONE page is readable. */
static void run_resident(fixture_t* f) {
  sr_walk_opts_t o = f->opts;
  unsigned char buf[64];
  verdict_t v;

  o.flags = SR_WALK_RESIDENT;
  CHECK(consume(f->image, f->cr3, &o, PROTNONE_GVA, buf, sizeof(buf), &v) == 0);
  CHECK(pattern_ok(buf, PROTNONE_GVA, sizeof(buf)));
  printf("  PROT_NONE with SR_WALK_RESIDENT: %s\n",
         v.err == 0 ? "read, bytes verified" : sr_err_name(v.err));
}

static uint64_t xorshift(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* A random entry: pure noise, or a present entry pointing somewhere
 * interesting (the image, the hole, past the file, far away). */
static uint64_t garbage(uint64_t* s) {
  uint64_t r = xorshift(s), flags = xorshift(s) & UINT64_C(0x8ff00000000001ff);
  static const uint64_t where[] = {0, HOLE_GPA, SHRUNK_SIZE, KIT_SIZE,
                                   UINT64_C(1) << 45};

  switch (r % 4) {
    case 0:
      return xorshift(s);
    default:
      return ((where[(r >> 8) % 5] + ((r >> 16) % 512) * PAGE) & ADDR_MASK) |
             flags | ((r & 4) ? ENTRY_P : 0);
  }
}

/* Property: whatever the entries of one address hold, consume() returns one
 * of the documented outcomes, and the other cases are unaffected. */
static void run_fuzz(fixture_t* f, uint64_t seed, int iterations) {
  static const int outcome[5] = {0, SR_EHOLE, SR_EBEYOND, SR_ENOTPRESENT,
                                 SR_EBADENTRY};
  int count[6] = {0, 0, 0, 0, 0, 0}; /* per outcome[], then "other" */
  uint64_t s = seed != 0 ? seed : 1, old;
  unsigned char buf[64];
  verdict_t v;
  int i, k, level, rc;

  for (i = 0; i < iterations; i++) {
    level = 1 + (int)(xorshift(&s) % 4);
    if (sr_kit_set_entry(f->kit, f->cr3, FUZZ_GVA, level, garbage(&s), &old) !=
        0) {
      count[5]++; /* the kit refused: counts as "other" */
      continue;
    }
    rc = consume(f->image, f->cr3, &f->opts, FUZZ_GVA, buf, sizeof(buf), &v);
    for (k = 0; k < 5 && rc != outcome[k]; k++)
      ;
    count[k]++;
    CHECK(sr_kit_set_entry(f->kit, f->cr3, FUZZ_GVA, level, old, NULL) == 0);
  }
  CHECK(count[5] == 0);
  CHECK(reads_ok(f, FUZZ_GVA));
  printf("  garbage entries: %d (seed %" PRIu64
         "): %d read, %d EHOLE, "
         "%d EBEYOND, %d ENOTPRESENT, %d EBADENTRY, %d other\n",
         iterations, seed, count[0], count[1], count[2], count[3], count[4],
         count[5]);
}

int main(void) {
  fixture_t f;
  const char* env = getenv("SR_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 20240611u;
  size_t i;
  int rc;

  memset(&f, 0, sizeof(f));
  if ((rc = build(&f)) != 0) {
    fprintf(stderr, "build: %s\n", sr_strerror(rc));
    failures++;
    goto out;
  }
  /* Before the file shrinks, the last case is an ordinary page. */
  CHECK(reads_ok(&f, BEYOND_GVA));
  /* The file shrinks under the open image (a session ending badly). */
  if ((rc = sr_kit_truncate(f.kit, SHRUNK_SIZE)) != 0) {
    fprintf(stderr, "truncate: %s\n", sr_strerror(rc));
    failures++;
    goto out;
  }

  printf("holey_test: %zu cases\n", NCASES);
  for (i = 0; i < NCASES; i++)
    run_case(&f, &cases[i]);
  run_resident(&f);
  run_fuzz(&f, seed, 2000);

out:
  sr_swap_free(f.swap);
  sr_image_close(f.image);
  sr_kit_destroy(f.kit);
  if (failures != 0)
    fprintf(stderr, "holey_test: %d check(s) failed\n", failures);
  return failures == 0 ? 0 : 1;
}
