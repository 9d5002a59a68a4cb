/* swapread CLI — `mkimage`: builds the holey demo image with the kit.
 *
 * The image is an ELF core (as QEMU's dump-guest-memory writes one), so the
 * other commands find its layout with --layout auto. Guest RAM is
 * [0, SIZE), then a 64 MiB physical hole, then 16 MiB more RAM whose last
 * MiB is cut off the file (a truncated dump: those GPAs are "beyond").
 * One address space (4- or 5-level) maps, at fixed VAs: present 4K pages
 * filled with sr_kit_pattern(1, va), a 2 MiB page, a 1 GiB page when SIZE
 * allows, a range with pages swapped out as Linux swap entries, a
 * PROT_NONE page, a page in the hole, a page beyond the file, an empty
 * PTE and a 2 MiB entry with a reserved bit set. After writing, it opens
 * the file like any reader and checks every range translates as described,
 * so a broken demo fails here rather than confusing the user later.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "describe.h"
#include "json.h"
#include "options.h"
#include "swapread/kit.h"

static const char* const cmd = "mkimage";

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define HOLE_LEN (64 * MIB)
#define TAIL_LEN (16 * MIB) /* RAM after the hole */
#define CUT_LEN (1 * MIB)   /* cut off the end of the file */
#define SEED 1

/* The demo's fixed VAs. */
#define VA_DATA UINT64_C(0x400000)     /* 4 x 4K present, pattern */
#define VA_BIG UINT64_C(0x600000)      /* 2M present, pattern */
#define VA_SWAP UINT64_C(0xa00000)     /* 8 x 4K, pages 2, 3, 6 swapped */
#define VA_PROTNONE UINT64_C(0xa10000) /* 4K PROT_NONE (resident) */
#define VA_HOLE UINT64_C(0xa11000)     /* 4K whose frame is in the hole */
#define VA_BEYOND UINT64_C(0xa12000)   /* 4K whose frame is past the file */
#define VA_NONE UINT64_C(0xa13000)     /* PTE 0 in an existing table */
#define VA_BAD UINT64_C(0xc00000)      /* 2M PDE with reserved bit 13 */
#define VA_GIG UINT64_C(0x40000000)    /* 1G page (SIZE >= 2G) */
#define SWAP_OFFSET UINT64_C(0x1000)   /* swap offset of page i: + i */

static const unsigned swapped_pages[] = {2, 3, 6};
#define NSWAPPED (sizeof(swapped_pages) / sizeof(swapped_pages[0]))

/* One line of the description, and what a walk of its first VA gives. */
typedef struct demo_range_s {
  uint64_t va;
  uint64_t len;
  uint64_t page_size;
  const char* what;
  const char* expect; /* "present" or the kind a read reports */
} demo_range_t;

typedef struct demo_s {
  const char* path;
  uint64_t size;
  sr_paging_t paging;
  sr_segment_t seg[2];
  uint64_t cr3;
  bool gig;
  demo_range_t range[16];
  size_t nrange;
} demo_t;

static void add_range(demo_t* d, uint64_t va, uint64_t len, uint64_t ps,
                      const char* what, const char* expect) {
  demo_range_t* r = &d->range[d->nrange++];
  r->va = va;
  r->len = len;
  r->page_size = ps;
  r->what = what;
  r->expect = expect;
}

/* Builds the address space in `kit` and the description in d. */
static int build(demo_t* d, sr_kit_t* kit) {
  const uint32_t rw = SR_PROT_W | SR_PROT_U | SR_PROT_NX;
  sr_pte_info_t info;
  uint64_t entry;
  size_t k;
  int err;

  if ((err = sr_kit_new_space(kit, d->paging, &d->cr3)) != 0)
    return err;
  if ((err = sr_kit_map(kit, d->cr3, VA_DATA, 4 * SR_PAGE_4K, SR_PAGE_4K,
                        rw)) != 0 ||
      (err = sr_kit_fill(kit, d->cr3, VA_DATA, 4 * SR_PAGE_4K, SEED)) != 0)
    return err;
  add_range(d, VA_DATA, 4 * SR_PAGE_4K, SR_PAGE_4K,
            "present 4K pages, pattern seed 1", "present");

  if ((err = sr_kit_map(kit, d->cr3, VA_BIG, SR_PAGE_2M, SR_PAGE_2M, rw)) !=
          0 ||
      (err = sr_kit_fill(kit, d->cr3, VA_BIG, SR_PAGE_2M, SEED)) != 0)
    return err;
  add_range(d, VA_BIG, SR_PAGE_2M, SR_PAGE_2M,
            "present 2M page, pattern seed 1", "present");

  if ((err = sr_kit_map(kit, d->cr3, VA_SWAP, 8 * SR_PAGE_4K, SR_PAGE_4K,
                        rw)) != 0 ||
      (err = sr_kit_fill(kit, d->cr3, VA_SWAP, 8 * SR_PAGE_4K, SEED)) != 0)
    return err;
  for (k = 0; k < NSWAPPED; k++) {
    memset(&info, 0, sizeof(info));
    info.kind = SR_PTE_LINUX_SWAP;
    info.swap_type = 0;
    info.swap_offset = SWAP_OFFSET + swapped_pages[k];
    err = sr_kit_page_out(kit, d->cr3, VA_SWAP + swapped_pages[k] * SR_PAGE_4K,
                          1, &info);
    if (err != 0)
      return err;
  }
  add_range(d, VA_SWAP, 8 * SR_PAGE_4K, SR_PAGE_4K,
            "4K pages, pattern seed 1; pages 2, 3, 6 swapped out (linux "
            "swap type 0, offset 0x1000 + page)",
            "present");
  add_range(d, VA_SWAP + 2 * SR_PAGE_4K, 2 * SR_PAGE_4K, SR_PAGE_4K,
            "  swapped out: linux swap type 0 offsets 0x1002, 0x1003",
            "linux-swap");
  add_range(d, VA_SWAP + 6 * SR_PAGE_4K, SR_PAGE_4K, SR_PAGE_4K,
            "  swapped out: linux swap type 0 offset 0x1006", "linux-swap");

  if ((err = sr_kit_map(kit, d->cr3, VA_PROTNONE, SR_PAGE_4K, SR_PAGE_4K,
                        rw)) != 0 ||
      (err = sr_kit_fill(kit, d->cr3, VA_PROTNONE, SR_PAGE_4K, SEED)) != 0)
    return err;
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_PROTNONE; /* frame 0: the frame it maps now */
  if ((err = sr_kit_page_out(kit, d->cr3, VA_PROTNONE, 1, &info)) != 0)
    return err;
  add_range(d, VA_PROTNONE, SR_PAGE_4K, SR_PAGE_4K,
            "PROT_NONE page, pattern seed 1 (readable with --resident)",
            "linux-protnone");

  if ((err = sr_kit_map_gpa(kit, d->cr3, VA_HOLE, SR_PAGE_4K, d->size + MIB,
                            SR_PAGE_4K, rw)) != 0)
    return err;
  add_range(d, VA_HOLE, SR_PAGE_4K, SR_PAGE_4K,
            "present PTE, frame in the physical hole", "hole");

  if ((err = sr_kit_map_gpa(kit, d->cr3, VA_BEYOND, SR_PAGE_4K,
                            d->seg[1].gpa + TAIL_LEN - SR_PAGE_4K, SR_PAGE_4K,
                            rw)) != 0)
    return err;
  add_range(d, VA_BEYOND, SR_PAGE_4K, SR_PAGE_4K,
            "present PTE, frame beyond the end of the (truncated) file",
            "beyond");
  add_range(d, VA_NONE, SR_PAGE_4K, SR_PAGE_4K, "empty PTE (zero)", "none");

  if ((err = sr_kit_map(kit, d->cr3, VA_BAD, SR_PAGE_2M, SR_PAGE_2M, rw)) !=
          0 ||
      (err = sr_kit_get_entry(kit, d->cr3, VA_BAD, 2, &entry)) != 0 ||
      (err = sr_kit_set_entry(kit, d->cr3, VA_BAD, 2,
                              entry | (UINT64_C(1) << 13), NULL)) != 0)
    return err;
  add_range(d, VA_BAD, SR_PAGE_2M, SR_PAGE_2M,
            "garbage: 2M PDE with reserved bit 13 set", "bad-entry");
  if (d->gig) {
    /* Last: the bump allocator then moves on to the second segment. */
    /* Only the first and last 4K are filled: 1 GiB of pattern would make
     * the sparse file dense. */
    if ((err = sr_kit_map(kit, d->cr3, VA_GIG, SR_PAGE_1G, SR_PAGE_1G, rw)) !=
            0 ||
        (err = sr_kit_fill(kit, d->cr3, VA_GIG, SR_PAGE_4K, SEED)) != 0 ||
        (err = sr_kit_fill(kit, d->cr3, VA_GIG + SR_PAGE_1G - SR_PAGE_4K,
                           SR_PAGE_4K, SEED)) != 0)
      return err;
    add_range(d, VA_GIG, SR_PAGE_1G, SR_PAGE_1G,
              "present 1G page, first and last 4K pattern seed 1", "present");
  }

  return 0;
}

/* What a reader sees at va: "present" or the kind a read would report. */
static const char* observe(const sr_image_t* image, const demo_t* d,
                           uint64_t va) {
  sr_walk_opts_t opts = {d->paging, SR_OS_LINUX, 0, 0};
  sr_translation_t t;
  sr_locate_t loc;
  int err = sr_translate(image, d->cr3, va, &opts, &t);
  if (err == SR_ENOTPRESENT)
    return sr_pte_kind_name(t.pte.kind);
  if (err == SR_EBADENTRY)
    return "bad-entry";
  if (err != 0)
    return sr_err_name(err);
  err = sr_image_locate(image, t.gpa, &loc);
  if (err == SR_EHOLE)
    return "hole";
  if (err == SR_EBEYOND)
    return "beyond";
  return "present";
}

/* Opens the written file as a reader would and checks every range and the
 * pattern of the first data page. 0 or CLI_FAIL (printed). */
static int verify(const demo_t* d, const sr_image_t* image) {
  sr_walk_opts_t opts = {d->paging, SR_OS_LINUX, 0, 0};
  unsigned char buf[64];
  sr_translation_t t;
  size_t k;

  for (k = 0; k < d->nrange; k++) {
    const char* seen = observe(image, d, d->range[k].va);
    if (strcmp(seen, d->range[k].expect) != 0) {
      cli_error(cmd, "self-check: 0x%" PRIx64 " is %s, expected %s",
                d->range[k].va, seen, d->range[k].expect);
      return CLI_FAIL;
    }
  }
  if (sr_translate(image, d->cr3, VA_DATA, &opts, &t) != 0 ||
      sr_image_read(image, t.gpa, buf, sizeof(buf), NULL) != 0) {
    cli_error(cmd, "self-check: cannot read 0x%" PRIx64, VA_DATA);
    return CLI_FAIL;
  }
  for (k = 0; k < sizeof(buf); k++) {
    if (buf[k] != sr_kit_pattern(SEED, VA_DATA + k)) {
      cli_error(cmd, "self-check: wrong pattern at 0x%" PRIx64, VA_DATA + k);
      return CLI_FAIL;
    }
  }
  return 0;
}

static void describe_text(const demo_t* d) {
  const char* la57 = d->paging == SR_PAGING_5LEVEL ? " --la57" : "";
  char size[24];
  size_t k;

  printf("swapread demo image: %s (ELF core, %s paging, linux entries)\n",
         d->path, d->paging == SR_PAGING_5LEVEL ? "5-level" : "4-level");
  printf("cr3 0x%" PRIx64 "\n", d->cr3);
  printf("physical: RAM 0x0-0x%" PRIx64 ", hole 0x%" PRIx64 "-0x%" PRIx64
         ", RAM 0x%" PRIx64 "-0x%" PRIx64 " (its last %s cut off the file)\n",
         d->seg[0].len, d->seg[0].len, d->seg[1].gpa, d->seg[1].gpa,
         d->seg[1].gpa + d->seg[1].len, cli_size_string(CUT_LEN, size));
  printf("%-21s %-4s %s\n", "virtual range", "page", "what");
  for (k = 0; k < d->nrange; k++) {
    const demo_range_t* r = &d->range[k];
    char ps[24];
    char range[48];
    snprintf(range, sizeof(range), "0x%" PRIx64 "-0x%" PRIx64, r->va,
             r->va + r->len);
    printf("%-21s %-4s %s\n", range, cli_size_string(r->page_size, ps),
           r->what);
  }
  if (!d->gig)
    printf("(no 1G page: needs --size 2G or more)\n");
  printf("try:\n");
  printf("  swapread translate %s --cr3 0x%" PRIx64 "%s 0x%" PRIx64
         " 0x%" PRIx64 "\n",
         d->path, d->cr3, la57, VA_DATA, VA_SWAP + 2 * SR_PAGE_4K);
  printf("  swapread read %s --cr3 0x%" PRIx64 "%s 0x%" PRIx64
         " 0x4000 --hexdump\n",
         d->path, d->cr3, la57, VA_DATA);
  printf("  swapread read %s --cr3 0x%" PRIx64 "%s 0x%" PRIx64
         " 0x14000 --json\n",
         d->path, d->cr3, la57, VA_SWAP);
  printf("  swapread maps %s --cr3 0x%" PRIx64 "%s\n", d->path, d->cr3, la57);
}

static void describe_json(const demo_t* d) {
  cli_json_t j;
  size_t k;

  cli_json_init(&j, stdout);
  cli_json_object_begin(&j);
  cli_json_kv_string(&j, "path", d->path);
  cli_json_kv_string(&j, "format", "elf");
  cli_json_kv_int(&j, "levels", d->paging == SR_PAGING_5LEVEL ? 5 : 4);
  cli_json_kv_hex(&j, "cr3", d->cr3);
  cli_json_key(&j, "segments");
  cli_json_array_begin(&j);
  for (k = 0; k < 2; k++) {
    cli_json_object_begin(&j);
    cli_json_kv_hex(&j, "gpa", d->seg[k].gpa);
    cli_json_kv_uint(&j, "len", d->seg[k].len);
    cli_json_object_end(&j);
  }
  cli_json_array_end(&j);
  cli_json_key(&j, "hole");
  cli_json_object_begin(&j);
  cli_json_kv_hex(&j, "lo", d->seg[0].len);
  cli_json_kv_hex(&j, "hi", d->seg[1].gpa);
  cli_json_object_end(&j);
  cli_json_kv_hex(&j, "beyond_from", d->seg[1].gpa + TAIL_LEN - CUT_LEN);
  cli_json_key(&j, "ranges");
  cli_json_array_begin(&j);
  for (k = 0; k < d->nrange; k++) {
    const demo_range_t* r = &d->range[k];
    cli_json_object_begin(&j);
    cli_json_kv_hex(&j, "va", r->va);
    cli_json_kv_uint(&j, "len", r->len);
    cli_json_kv_uint(&j, "page_size", r->page_size);
    cli_json_kv_string(&j, "expect", r->expect);
    cli_json_kv_string(&j, "what", r->what);
    cli_json_object_end(&j);
  }
  cli_json_array_end(&j);
  cli_json_kv_uint(&j, "pattern_seed", SEED);
  cli_json_kv_bool(&j, "gig_page", d->gig);
  cli_json_object_end(&j);
  cli_json_newline(&j);
}

int cli_cmd_mkimage(int argc, char** argv) {
  cli_args_t a = {argc, argv, 1, false};
  demo_t d;
  sr_kit_opts_t ko;
  sr_kit_t* kit = NULL;
  sr_image_t* image = NULL;
  uint64_t file_size;
  bool json = false;
  int rc;
  int r;
  int err;

  memset(&d, 0, sizeof(d));
  d.size = 128 * MIB;
  for (; a.i < argc; a.i++) {
    const char* v;
    if (cli_help_opt(&a, cmd))
      return CLI_OK;
    if ((r = cli_opt(&a, cmd, "--size", &v)) != 0) {
      if (r != 1 || (r = cli_number(cmd, "--size", v, &d.size)) != 0)
        return r;
      continue;
    }
    if (cli_opt(&a, cmd, "--la57", NULL)) {
      d.paging = SR_PAGING_5LEVEL;
      continue;
    }
    if (cli_opt(&a, cmd, "--elf", NULL))
      continue; /* the default */
    if (cli_opt(&a, cmd, "--json", NULL)) {
      json = true;
      continue;
    }
    if (cli_is_option(&a)) {
      if (a.only_pos)
        continue; /* it was "--" */
      return cli_usage_error(cmd, "unknown option '%s'", argv[a.i]);
    }
    if (d.path != NULL)
      return cli_usage_error(cmd, "unexpected argument '%s'", argv[a.i]);
    d.path = argv[a.i];
  }
  if (d.path == NULL)
    return cli_usage_error(cmd, "missing FILE");
  if (d.size < 32 * MIB || d.size > 64 * GIB || d.size % SR_PAGE_2M != 0)
    return cli_usage_error(cmd, "--size must be a multiple of 2M in 32M..64G");
  d.gig = d.size >= 2 * GIB;
  d.seg[0].gpa = 0;
  d.seg[0].len = d.size;
  d.seg[0].file_off = 0;
  d.seg[1].gpa = d.size + HOLE_LEN;
  d.seg[1].len = TAIL_LEN;
  d.seg[1].file_off = d.size;

  memset(&ko, 0, sizeof(ko));
  ko.size = d.size + TAIL_LEN;
  ko.path = NULL; /* a memfd: the file at d.path is the ELF core */
  ko.seg = d.seg;
  ko.nseg = 2;
  rc = CLI_FAIL;
  if ((err = sr_kit_create(&kit, &ko)) != 0) {
    cli_error(cmd, "creating the image: %s", sr_strerror(err));
    return CLI_FAIL;
  }
  if ((err = build(&d, kit)) != 0) {
    cli_error(cmd, "building the page tables: %s", sr_strerror(err));
    goto out_destroy;
  }
  if ((err = sr_kit_write_elf(kit, d.path)) != 0) {
    cli_error(d.path, "%s", sr_strerror(err));
    goto out_destroy;
  }
  /* A truncated dump: the last CUT_LEN bytes of the last PT_LOAD (written
   * last in the file) are gone. */
  if ((err = sr_image_open(&image, d.path, NULL)) != 0) {
    cli_error(d.path, "%s", sr_strerror(err));
    goto out_destroy;
  }
  file_size = sr_image_file_size(image);
  sr_image_close(image);
  image = NULL;
  if (file_size < CUT_LEN || truncate(d.path, (off_t)(file_size - CUT_LEN))) {
    cli_error(d.path, "cannot truncate the file");
    goto out_destroy;
  }
  if ((err = sr_image_open(&image, d.path, NULL)) != 0) {
    cli_error(d.path, "%s", sr_strerror(err));
    goto out_destroy;
  }
  if (verify(&d, image) != 0)
    goto out_close;
  if (json)
    describe_json(&d);
  else
    describe_text(&d);
  rc = CLI_OK;
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error(cmd, "write error on stdout");
    rc = CLI_FAIL;
  }

out_close:
  sr_image_close(image);
out_destroy:
  sr_kit_destroy(kit);
  return rc;
}
