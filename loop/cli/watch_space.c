/* swapread CLI — `watch IMAGE --cr3 X` without a range: every leaf of an
 * address space, through the library's address-space monitor on the
 * libuv poller handle.
 *
 * It opens the image, makes an sr_uv_t on a loop with the poll period
 * fixed at --interval, starts an sr_spacemon_t over the whole space (or
 * --lo/--hi), and prints one line (or one JSON object) per event the
 * monitor delivers: mapped, unmapped, changed (with the bits that
 * differ), reused, untracked. It ends after --count events, after
 * --duration, or on SIGINT/SIGTERM (exit 0), closing the handle, which
 * ends the monitor with its CLOSED event. The initial state is not
 * printed (`swapread maps` shows it); only changes are.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "describe.h"
#include "json.h"
#include "options.h"
#include "swapread/uv.h"
#include "watch_space.h"

static const char* const cmd = "watch";

typedef struct space_s {
  const cli_common_t* c;
  uint64_t count, events;
  uint64_t t0_ns;
  int rc;
  bool stopping;
  uv_loop_t loop;
  sr_uv_t h;
  sr_spacemon_t* sm;
  uv_timer_t duration;
  uv_signal_t sigint, sigterm;
} space_t;

static const char* event_name(sr_spacemon_event_kind_t k) {
  switch (k) {
    case SR_SPACEMON_MAPPED:
      return "mapped";
    case SR_SPACEMON_UNMAPPED:
      return "unmapped";
    case SR_SPACEMON_CHANGED:
      return "changed";
    case SR_SPACEMON_REUSED:
      return "reused";
    case SR_SPACEMON_UNTRACKED:
      return "untracked";
    default:
      return "closed";
  }
}

static const char* const bit_names[] = {"present", "writable", "user",  "nx",
                                        "frame",   "accessed", "dirty", "swap"};

static void bits_text(uint32_t bits, char* buf, size_t n) {
  size_t i, at = 0;

  buf[0] = '\0';
  for (i = 0; i < 8; i++)
    if (bits & (1u << i))
      at += (size_t)snprintf(buf + at, n - at, "%s%s", at ? "," : "",
                             bit_names[i]);
}

/* "gpa 0x.. rw-u" or "not-present KIND at LEVEL entry 0x..". */
static void leaf_text(const space_t* s, const sr_spacemon_leaf_t* l) {
  sr_pte_info_t info;
  char prot[5];

  if (l->mapped) {
    printf("gpa 0x%" PRIx64 " %s", l->gpa, cli_prot_string(l->prot, prot));
    return;
  }
  if (l->level == 0) {
    printf("root not in the image");
    return;
  }
  sr_pte_classify(l->entry, l->level, s->c->walk.os, &info);
  printf("not-present %s", sr_pte_kind_name(info.kind));
  if (info.kind != SR_PTE_NONE && !(l->entry & 1))
    cli_pte_text(stdout, &info);
  printf(" at %s entry 0x%" PRIx64, cli_level_name(l->level), l->entry);
}

static void leaf_json(cli_json_t* j, const char* key,
                      const sr_spacemon_leaf_t* l, const space_t* s) {
  sr_pte_info_t info;
  char prot[5];

  cli_json_key(j, key);
  cli_json_object_begin(j);
  cli_json_kv_bool(j, "mapped", l->mapped);
  cli_json_kv_int(j, "level", l->level);
  cli_json_kv_hex(j, "entry", l->entry);
  if (l->mapped) {
    cli_json_kv_hex(j, "gpa", l->gpa);
    cli_json_kv_string(j, "prot", cli_prot_string(l->prot, prot));
  } else if (l->level > 0) {
    sr_pte_classify(l->entry, l->level, s->c->walk.os, &info);
    cli_pte_json(j, &info); /* kind and its fields */
  }
  cli_json_object_end(j);
}

static void stop(space_t* s);

static void on_event(sr_spacemon_t* sm, const sr_spacemon_event_t* ev,
                     void* data) {
  space_t* s = data;
  uint64_t ms = (uv_hrtime() - s->t0_ns) / 1000000;
  char ts[48], bits[96], size[24];
  cli_json_t j;

  (void)sm;
  if (ev->kind == SR_SPACEMON_CLOSED) {
    s->sm = NULL;
    return;
  }
  if (s->stopping)
    return;
  cli_timestamp(ts, sizeof(ts), s->c->json);
  bits_text(ev->bits, bits, sizeof(bits));
  if (s->c->json) {
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j);
    cli_json_kv_string(&j, "time", ts);
    cli_json_kv_uint(&j, "elapsed_ms", ms);
    cli_json_kv_string(&j, "event", event_name(ev->kind));
    cli_json_kv_hex(&j, "va", ev->va);
    cli_json_kv_uint(&j, "size", ev->size);
    if (ev->kind <= SR_SPACEMON_CHANGED) {
      cli_json_kv_string(&j, "bits", bits);
      leaf_json(&j, "old", &ev->old, s);
      leaf_json(&j, "now", &ev->now, s);
    } else {
      cli_json_kv_hex(&j, "table_gpa", ev->table_gpa);
      if (ev->kind == SR_SPACEMON_REUSED)
        cli_json_kv_hex(&j, "was_va", ev->was_va);
    }
    cli_json_object_end(&j);
    cli_json_newline(&j);
  } else {
    printf("%s +%" PRIu64 ".%03" PRIu64 "s %-9s 0x%016" PRIx64 " %-4s ", ts,
           ms / 1000, ms % 1000, event_name(ev->kind), ev->va,
           cli_size_string(ev->size, size));
    if (ev->kind <= SR_SPACEMON_CHANGED) {
      leaf_text(s, &ev->now);
      printf(" (was ");
      leaf_text(s, &ev->old);
      printf(")");
      if (ev->kind == SR_SPACEMON_CHANGED)
        printf(" [%s]", bits);
    } else if (ev->kind == SR_SPACEMON_REUSED) {
      printf("table 0x%" PRIx64 " was at 0x%016" PRIx64, ev->table_gpa,
             ev->was_va);
    } else {
      printf("table 0x%" PRIx64 " not snapshotted: changes not reported",
             ev->table_gpa);
    }
    printf("\n");
  }
  if (fflush(stdout) != 0 || ferror(stdout))
    s->rc = CLI_FAIL;
  s->events++;
  if (s->rc != CLI_OK || (s->count != 0 && s->events >= s->count))
    stop(s);
}

static void stop(space_t* s) {
  if (s->stopping)
    return;
  s->stopping = true;
  sr_uv_close(&s->h, NULL); /* the monitor ends with CLOSED */
  uv_close((uv_handle_t*)&s->duration, NULL);
  uv_close((uv_handle_t*)&s->sigint, NULL);
  uv_close((uv_handle_t*)&s->sigterm, NULL);
}

static void on_duration(uv_timer_t* t) {
  stop(t->data);
}

static void on_signal(uv_signal_t* sig, int signum) {
  (void)signum;
  stop(sig->data);
}

int cli_watch_space(const cli_common_t* c, sr_image_t* image,
                    const cli_space_opts_t* o) {
  sr_uv_opts_t uo;
  sr_spacemon_opts_t so;
  sr_spacemon_stats_t st;
  space_t s;
  int err, rc;

  memset(&s, 0, sizeof(s));
  s.c = c;
  s.count = o->count;
  s.rc = CLI_OK;
  memset(&uo, 0, sizeof(uo));
  uo.swap.walk = c->walk;
  uo.min_period_ms = uo.max_period_ms = o->interval_ms;
  memset(&so, 0, sizeof(so));
  so.lo = o->lo;
  so.hi = o->hi;
  so.bits = o->bits;
  if ((err = uv_loop_init(&s.loop)) != 0) {
    cli_error(cmd, "%s", uv_strerror(err));
    return CLI_FAIL;
  }
  uv_timer_init(&s.loop, &s.duration);
  uv_signal_init(&s.loop, &s.sigint);
  uv_signal_init(&s.loop, &s.sigterm);
  s.duration.data = s.sigint.data = s.sigterm.data = &s;
  rc = sr_uv_init(&s.loop, &s.h, image, &uo);
  if (rc != 0) {
    cli_error(cmd, "%s", sr_strerror(rc));
    uv_close((uv_handle_t*)&s.duration, NULL);
    uv_close((uv_handle_t*)&s.sigint, NULL);
    uv_close((uv_handle_t*)&s.sigterm, NULL);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&s.loop);
    return CLI_FAIL;
  }
  s.t0_ns = uv_hrtime();
  rc = sr_uv_spacemon_new(&s.h, &s.sm, c->cr3, &so, on_event, &s);
  if (rc != 0) {
    cli_error(cmd, "cr3 0x%" PRIx64 ": %s", c->cr3, sr_strerror(rc));
    s.rc = CLI_FAIL;
  } else {
    sr_spacemon_stats(s.sm, &st);
    if (c->json)
      printf("{\"event\":\"start\",\"cr3\":\"0x%" PRIx64
             "\",\"tables\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n",
             c->cr3, st.tables, st.bytes);
    else
      printf("# watching the address space of cr3 0x%" PRIx64 " every %" PRIu64
             " ms: %" PRIu64 " page tables, %" PRIu64
             " KiB of snapshots; times UTC\n",
             c->cr3, o->interval_ms, st.tables, st.bytes / 1024);
    fflush(stdout);
    if ((err = uv_signal_start(&s.sigint, on_signal, SIGINT)) != 0 ||
        (err = uv_signal_start(&s.sigterm, on_signal, SIGTERM)) != 0 ||
        (o->duration_ms != 0 &&
         (err = uv_timer_start(&s.duration, on_duration, o->duration_ms, 0)) !=
             0)) {
      cli_error(cmd, "%s", uv_strerror(err));
      s.rc = CLI_FAIL;
    }
  }
  if (s.rc != CLI_OK)
    stop(&s);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&s.loop) != 0)
    cli_error(cmd, "the loop did not close");
  return s.rc;
}
