/* swapread CLI — `translate`: shows the page walk of each VA.
 *
 * For every VA it calls sr_translate once and prints each level walked
 * (index, entry GPA, raw entry, flags), then the result (GPA, page size,
 * protection, and whether the data frame itself is mapped, a hole or past
 * the file) or where and why the walk stopped. It reads nothing but the
 * walk. Exit 1 when any VA did not translate.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "cli.h"
#include "describe.h"
#include "json.h"
#include "options.h"

static const char* const cmd = "translate";

static unsigned entry_index(uint64_t va, int level) {
  return (unsigned)((va >> (12 + 9 * (level - 1))) & 511);
}

/* Lowest level whose entry sr_translate filled in: stop_level, except when
 * the entry at stop_level itself could not be loaded. */
static int lowest_loaded(const sr_translation_t* t) {
  if (t->status == SR_EHOLE || t->status == SR_EBEYOND)
    return t->stop_level + 1;
  return t->stop_level;
}

static const char* data_outcome(const sr_image_t* image, uint64_t gpa) {
  sr_locate_t loc;
  int err = sr_image_locate(image, gpa, &loc);
  if (err == 0)
    return "mapped";
  return err == SR_EHOLE ? "hole" : "beyond";
}

static void print_text(const cli_common_t* c, const sr_image_t* image,
                       const sr_translation_t* t) {
  char flags[64];
  char buf[24];
  char prot[5];
  int level;

  printf("va 0x%016" PRIx64 "\n", t->gva);
  if (t->stop_level != 0) {
    for (level = t->top_level; level >= lowest_loaded(t); level--) {
      uint64_t e = t->entry[level - 1];
      printf("  %-4s [%3u] entry@0x%016" PRIx64 " = 0x%016" PRIx64 "  ",
             cli_level_name(level), entry_index(t->gva, level),
             t->entry_gpa[level - 1], e);
      if (e & 1) {
        printf("%s\n", cli_entry_flags(e, level, flags, sizeof(flags)));
      } else {
        sr_pte_info_t info;
        sr_pte_classify(e, level, c->walk.os, &info);
        fputs("not present: ", stdout);
        cli_pte_text(stdout, &info);
        fputc('\n', stdout);
      }
    }
  }
  if (t->status == 0) {
    printf("  => gpa 0x%" PRIx64 "  %s page  prot %s%s  data %s\n", t->gpa,
           cli_size_string(t->page_size, buf), cli_prot_string(t->prot, prot),
           t->resident ? "  (resident, not present)" : "",
           data_outcome(image, t->gpa));
    return;
  }
  printf("  => %s", sr_err_name(t->status));
  if (t->stop_level != 0)
    printf(" at %s", cli_level_name(t->stop_level));
  if (t->status == SR_EHOLE || t->status == SR_EBEYOND)
    printf(": table entry@0x%" PRIx64 " unreadable", t->fail_entry_gpa);
  else if (t->status == SR_ENOTPRESENT) {
    fputs(": ", stdout);
    cli_pte_text(stdout, &t->pte);
  }
  printf(" (%s)\n", sr_strerror(t->status));
}

static void print_json(const cli_common_t* c, const sr_image_t* image,
                       const sr_translation_t* t) {
  cli_json_t j;
  char flags[64];
  char prot[5];
  int level;

  cli_json_init(&j, stdout);
  cli_json_object_begin(&j);
  cli_json_kv_hex(&j, "va", t->gva);
  cli_json_kv_hex(&j, "cr3", c->cr3);
  cli_json_kv_string(&j, "status", sr_err_name(t->status));
  cli_json_kv_bool(&j, "ok", t->status == 0);
  cli_json_key(&j, "levels");
  cli_json_array_begin(&j);
  if (t->stop_level != 0) {
    for (level = t->top_level; level >= lowest_loaded(t); level--) {
      uint64_t e = t->entry[level - 1];
      cli_json_object_begin(&j);
      cli_json_kv_int(&j, "level", level);
      cli_json_kv_string(&j, "name", cli_level_name(level));
      cli_json_kv_uint(&j, "index", entry_index(t->gva, level));
      cli_json_kv_hex(&j, "entry_gpa", t->entry_gpa[level - 1]);
      cli_json_kv_hex(&j, "entry", e);
      cli_json_kv_bool(&j, "present", (e & 1) != 0);
      if (e & 1) {
        cli_json_kv_string(&j, "flags",
                           cli_entry_flags(e, level, flags, sizeof(flags)));
      } else {
        sr_pte_info_t info;
        sr_pte_classify(e, level, c->walk.os, &info);
        cli_pte_json(&j, &info);
      }
      cli_json_object_end(&j);
    }
  }
  cli_json_array_end(&j);
  if (t->status == 0) {
    cli_json_kv_hex(&j, "gpa", t->gpa);
    cli_json_kv_uint(&j, "page_size", t->page_size);
    cli_json_kv_string(&j, "prot", cli_prot_string(t->prot, prot));
    cli_json_kv_bool(&j, "writable", (t->prot & SR_PROT_W) != 0);
    cli_json_kv_bool(&j, "user", (t->prot & SR_PROT_U) != 0);
    cli_json_kv_bool(&j, "nx", (t->prot & SR_PROT_NX) != 0);
    cli_json_kv_bool(&j, "resident", t->resident);
    cli_json_kv_string(&j, "data", data_outcome(image, t->gpa));
  } else {
    cli_json_kv_string(&j, "error", sr_strerror(t->status));
    cli_json_key(&j, "stop");
    cli_json_object_begin(&j);
    cli_json_kv_int(&j, "level", t->stop_level);
    cli_json_kv_string(&j, "name", cli_level_name(t->stop_level));
    cli_json_kv_hex(&j, "entry", t->fail_entry);
    cli_json_kv_hex(&j, "entry_gpa", t->fail_entry_gpa);
    if (t->status == SR_ENOTPRESENT)
      cli_pte_json(&j, &t->pte);
    cli_json_object_end(&j);
  }
  cli_json_object_end(&j);
  cli_json_newline(&j);
}

int cli_cmd_translate(int argc, char** argv) {
  cli_common_t c;
  cli_args_t a = {argc, argv, 1, false};
  const char* image_path = NULL;
  uint64_t* va;
  size_t nva = 0;
  size_t k;
  sr_image_t* image;
  int rc = CLI_OK;
  int r;

  cli_common_init(&c, cmd);
  va = calloc((size_t)argc, sizeof(*va));
  if (va == NULL) {
    cli_error(cmd, "%s", sr_strerror(SR_ENOMEM));
    return CLI_FAIL;
  }
  for (; a.i < argc; a.i++) {
    if (cli_help_opt(&a, cmd))
      goto out_free;
    if ((r = cli_common_opt(&c, &a)) != 0) {
      if (r != 1) {
        rc = r;
        goto out_free;
      }
      continue;
    }
    if (cli_is_option(&a)) {
      if (a.only_pos)
        continue; /* it was "--" */
      rc = cli_usage_error(cmd, "unknown option '%s'", argv[a.i]);
      goto out_free;
    }
    if (image_path == NULL) {
      image_path = argv[a.i];
      continue;
    }
    if ((rc = cli_number(cmd, "address", argv[a.i], &va[nva])) != 0)
      goto out_free;
    nva++;
  }
  if (image_path == NULL) {
    rc = cli_usage_error(cmd, "missing IMAGE");
    goto out_free;
  }
  if ((rc = cli_common_check(&c, true)) != 0)
    goto out_free;
  if (nva == 0) {
    rc = cli_usage_error(cmd, "missing VA");
    goto out_free;
  }
  if ((rc = cli_open_image(&c, image_path, &image)) != 0)
    goto out_free;

  for (k = 0; k < nva; k++) {
    sr_translation_t t;
    int err = sr_translate(image, c.cr3, va[k], &c.walk, &t);
    if (err == SR_EINVAL && t.stop_level == 0) {
      /* Bad cr3 or walk options: nothing per-VA to show. */
      cli_error(cmd, "cr3 0x%" PRIx64 ": %s", c.cr3, sr_strerror(err));
      rc = CLI_FAIL;
      break;
    }
    if (c.json)
      print_json(&c, image, &t);
    else
      print_text(&c, image, &t);
    if (err != 0)
      rc = CLI_FAIL;
  }
  sr_image_close(image);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error(cmd, "write error on stdout");
    rc = CLI_FAIL;
  }

out_free:
  free(va);
  return rc;
}
