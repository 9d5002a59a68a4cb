/* swapread CLI — `maps`: the regions of an address space.
 *
 * A thin front end over sr_regions: one line (or one JSON object) per
 * coalesced run of VAs with its protection, state (present, paged, mixed),
 * the entry kinds seen, the page sizes and how many bytes are present.
 * Runs that are mapped but paged out are listed too. Unreadable or bad
 * lower-level entries are skipped by sr_regions, not listed.
 */
#include <inttypes.h>

#include "cli.h"
#include "describe.h"
#include "json.h"
#include "options.h"
#include "swapread/regions.h"

static const char* const cmd = "maps";

typedef struct maps_state_s {
  bool json;
  cli_json_t j;
  uint64_t count;
} maps_state_t;

static const char* state_name(sr_run_state_t state) {
  switch (state) {
    case SR_RUN_PRESENT:
      return "present";
    case SR_RUN_PAGED:
      return "paged";
    case SR_RUN_MIXED:
      return "mixed";
  }
  return "?";
}

static int on_region(const sr_region_t* r, void* arg) {
  maps_state_t* s = arg;
  char size[24];
  char prot[5];
  char kinds[160];
  char sizes[32];
  uint64_t len = r->hi - r->lo; /* hi == 0 (top) wraps to the right size */

  s->count++;
  cli_kinds_string(r->kinds, kinds, sizeof(kinds));
  cli_page_sizes_string(r->page_sizes, sizes, sizeof(sizes));
  if (!s->json) {
    printf("%016" PRIx64 "-%016" PRIx64 " %6s %s %-7s %-24s %-8s %" PRIu64 "\n",
           r->lo, r->hi, cli_size_string(len, size),
           cli_prot_string(r->prot, prot), state_name(r->state), kinds, sizes,
           r->present_bytes);
    return 0;
  }
  cli_json_object_begin(&s->j);
  cli_json_kv_hex(&s->j, "lo", r->lo);
  cli_json_kv_hex(&s->j, "hi", r->hi);
  cli_json_kv_uint(&s->j, "size", len);
  cli_json_kv_string(&s->j, "prot", cli_prot_string(r->prot, prot));
  cli_json_kv_bool(&s->j, "writable", (r->prot & SR_PROT_W) != 0);
  cli_json_kv_bool(&s->j, "user", (r->prot & SR_PROT_U) != 0);
  cli_json_kv_bool(&s->j, "nx", (r->prot & SR_PROT_NX) != 0);
  cli_json_kv_string(&s->j, "state", state_name(r->state));
  cli_json_key(&s->j, "kinds");
  cli_json_array_begin(&s->j);
  for (int k = SR_PTE_PRESENT; k <= SR_PTE_UNKNOWN; k++)
    if (r->kinds & (1u << k))
      cli_json_string(&s->j, sr_pte_kind_name((sr_pte_kind_t)k));
  cli_json_array_end(&s->j);
  cli_json_key(&s->j, "page_sizes");
  cli_json_array_begin(&s->j);
  for (int k = 0; k < 3; k++) {
    uint64_t ps = SR_PAGE_4K << (9 * k);
    if (r->page_sizes & ps)
      cli_json_uint(&s->j, ps);
  }
  cli_json_array_end(&s->j);
  cli_json_kv_uint(&s->j, "present_bytes", r->present_bytes);
  cli_json_object_end(&s->j);
  return 0;
}

int cli_cmd_maps(int argc, char** argv) {
  cli_common_t c;
  cli_args_t a = {argc, argv, 1, false};
  maps_state_t s;
  const char* image_path = NULL;
  uint64_t lo = 0;
  uint64_t hi = 0;
  uint32_t flags = 0;
  sr_image_t* image;
  int rc;
  int r;
  int err;

  cli_common_init(&c, cmd);
  for (; a.i < argc; a.i++) {
    const char* v;
    if (cli_help_opt(&a, cmd))
      return CLI_OK;
    if ((r = cli_common_opt(&c, &a)) != 0) {
      if (r != 1)
        return r;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--lo", &v)) != 0) {
      if (r != 1 || (r = cli_number(cmd, "--lo", v, &lo)) != 0)
        return r;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--hi", &v)) != 0) {
      if (r != 1 || (r = cli_number(cmd, "--hi", v, &hi)) != 0)
        return r;
      continue;
    }
    if (cli_opt(&a, cmd, "--merge-paged", NULL)) {
      flags |= SR_REGIONS_MERGE_PAGED;
      continue;
    }
    if (cli_is_option(&a)) {
      if (a.only_pos)
        continue; /* it was "--" */
      return cli_usage_error(cmd, "unknown option '%s'", argv[a.i]);
    }
    if (image_path != NULL)
      return cli_usage_error(cmd, "unexpected argument '%s'", argv[a.i]);
    image_path = argv[a.i];
  }
  if (image_path == NULL)
    return cli_usage_error(cmd, "missing IMAGE");
  if ((rc = cli_common_check(&c, true)) != 0)
    return rc;
  if (hi != 0 && hi <= lo)
    return cli_usage_error(cmd, "--hi must be above --lo (or 0: the top)");
  if ((rc = cli_open_image(&c, image_path, &image)) != 0)
    return rc;

  s.json = c.json;
  s.count = 0;
  if (s.json) {
    cli_json_init(&s.j, stdout);
    cli_json_array_begin(&s.j);
  }
  err = sr_regions(image, c.cr3, lo, hi, &c.walk, flags, on_region, &s);
  if (s.json) {
    cli_json_array_end(&s.j);
    cli_json_newline(&s.j);
  }
  rc = CLI_OK;
  if (err != 0) {
    cli_error(cmd, "cr3 0x%" PRIx64 ": %s", c.cr3, sr_strerror(err));
    rc = CLI_FAIL;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error(cmd, "write error on stdout");
    rc = CLI_FAIL;
  }
  sr_image_close(image);
  return rc;
}
