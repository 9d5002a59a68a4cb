/* swapread CLI — `watch`: shows the chunks of a range as they come and go.
 *
 * It walks every 4 KiB chunk of [VA, VA+LEN) with sr_translate, prints the
 * initial state once (runs of chunks in the same state coalesced), then
 * walks them again on a uv timer every --interval and prints one line per
 * chunk whose state changed: "in" (became present), "out" (became not
 * present), "moved" (present at another GPA), "changed" (still not
 * present, another entry or kind). It ends after --count events, after
 * --duration, or on SIGINT/SIGTERM (exit 0 in all three cases). Polling
 * can miss a change undone within one interval; it reads translations
 * only, never data (a present page whose frame is in a hole counts as
 * present). At most WATCH_MAX_CHUNKS chunks.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "cli.h"
#include "describe.h"
#include "json.h"
#include "options.h"
#include "swapread/spacemon.h"
#include "watch_space.h"

static const char* const cmd = "watch";

#define WATCH_MAX_CHUNKS (UINT64_C(1) << 18) /* 1 GiB of 4 KiB chunks */
#define WATCH_DEFAULT_INTERVAL_MS 100

/* What a walk of one chunk found. */
typedef struct chunk_s {
  int status;   /* sr_translate's: 0 = present */
  uint64_t gpa; /* present: GPA of the chunk's first byte */
  int level;    /* not present: the level that stopped the walk */
  uint64_t entry;
  uint64_t entry_gpa;
  sr_pte_info_t pte; /* ENOTPRESENT: the entry's classification */
} chunk_t;

typedef struct watch_s {
  const cli_common_t* c;
  const sr_image_t* image;
  uint64_t va;
  uint64_t len;
  size_t nchunks;
  chunk_t* state;
  uint64_t count; /* stop after this many events; 0: no limit */
  uint64_t events;
  uint64_t t0_ns; /* uv_hrtime() at the initial walk */
  int rc;
  bool stopping;
  uv_loop_t loop;
  uv_timer_t poll;
  uv_timer_t duration;
  uv_signal_t sigint;
  uv_signal_t sigterm;
} watch_t;

/* VA and length of chunk i. */
static uint64_t chunk_va(const watch_t* w, size_t i) {
  return i == 0 ? w->va : (w->va & ~(SR_PAGE_4K - 1)) + i * SR_PAGE_4K;
}

static uint64_t chunk_len(const watch_t* w, size_t i) {
  uint64_t lo = chunk_va(w, i);
  uint64_t hi = (lo & ~(SR_PAGE_4K - 1)) + SR_PAGE_4K;
  uint64_t end = w->va + (w->len - 1); /* inclusive: no wrap at 2^64 */
  return (hi - 1 < end ? hi - 1 : end) - lo + 1;
}

/* Walks chunk i into *out. Returns 0, or SR_EINVAL for an unusable cr3 or
 * walk options. */
static int walk_chunk(const watch_t* w, size_t i, chunk_t* out) {
  sr_translation_t t;
  int err = sr_translate(w->image, w->c->cr3, chunk_va(w, i), &w->c->walk, &t);

  memset(out, 0, sizeof(*out));
  if (err == SR_EINVAL && t.stop_level == 0)
    return err;
  out->status = err;
  out->level = t.stop_level;
  if (err == 0) {
    out->gpa = t.gpa;
    out->entry = t.entry[t.stop_level - 1];
    out->entry_gpa = t.entry_gpa[t.stop_level - 1];
  } else {
    out->entry = t.fail_entry;
    out->entry_gpa = t.fail_entry_gpa;
    if (err == SR_ENOTPRESENT)
      out->pte = t.pte;
  }
  return 0;
}

static const char* kind_of(const chunk_t* ch) {
  switch (ch->status) {
    case 0:
      return "present";
    case SR_ENOTPRESENT:
      return sr_pte_kind_name(ch->pte.kind);
    case SR_EBADENTRY:
      return "bad-entry";
    case SR_EHOLE:
      return "hole";
    case SR_EBEYOND:
      return "beyond";
    case SR_ENONCANON:
      return "noncanonical";
    default:
      return "error";
  }
}

/* The event that turns `was` into `now`, or NULL when nothing changed. */
static const char* event_of(const chunk_t* was, const chunk_t* now) {
  if ((was->status == 0) != (now->status == 0))
    return now->status == 0 ? "in" : "out";
  if (now->status == 0)
    return was->gpa != now->gpa ? "moved" : NULL;
  if (was->status != now->status || was->entry != now->entry ||
      was->entry_gpa != now->entry_gpa || was->level != now->level)
    return "changed";
  return NULL;
}

/* Whether chunk b (right after a) continues a's run of the initial state:
 * present at the next GPA, or stopped by the same entry (or by empty
 * entries one after the other in a table). */
static bool same_run(const chunk_t* a, uint64_t a_len, const chunk_t* b) {
  if (a->status != b->status)
    return false;
  if (a->status == 0)
    return a->gpa + a_len == b->gpa;
  if (a->level != b->level || a->entry != b->entry)
    return false;
  return a->entry_gpa == b->entry_gpa ||
         (a->entry == 0 && a->status == SR_ENOTPRESENT &&
          b->entry_gpa == a->entry_gpa + 8);
}

/* Prints one line: `event` for the run [lo, lo + len) in state ch. */
static void print_line(watch_t* w, const char* event, uint64_t lo, uint64_t len,
                       const chunk_t* ch, const chunk_t* was) {
  uint64_t ms = (uv_hrtime() - w->t0_ns) / 1000000;
  char ts[48];

  cli_timestamp(ts, sizeof(ts), w->c->json);
  if (w->c->json) {
    cli_json_t j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j);
    cli_json_kv_string(&j, "time", ts);
    cli_json_kv_uint(&j, "elapsed_ms", ms);
    cli_json_kv_string(&j, "event", event);
    cli_json_kv_hex(&j, "va", lo);
    cli_json_kv_uint(&j, "len", len);
    cli_json_kv_bool(&j, "present", ch->status == 0);
    cli_json_kv_string(&j, "status", sr_err_name(ch->status));
    if (ch->status == SR_ENOTPRESENT)
      cli_pte_json(&j, &ch->pte);
    else
      cli_json_kv_string(&j, "kind", kind_of(ch));
    if (ch->status == 0)
      cli_json_kv_hex(&j, "gpa", ch->gpa);
    else
      cli_json_kv_null(&j, "gpa");
    cli_json_kv_int(&j, "level", ch->level);
    cli_json_kv_hex(&j, "entry", ch->entry);
    cli_json_kv_hex(&j, "entry_gpa", ch->entry_gpa);
    if (was != NULL)
      cli_json_kv_string(&j, "was", kind_of(was));
    cli_json_object_end(&j);
    cli_json_newline(&j);
  } else {
    printf("%s +%" PRIu64 ".%03" PRIu64 "s %-7s 0x%" PRIx64, ts, ms / 1000,
           ms % 1000, event, lo);
    if (len != SR_PAGE_4K || (lo & (SR_PAGE_4K - 1)) != 0)
      printf("-0x%" PRIx64, lo + len);
    if (ch->status == 0) {
      printf(" present gpa 0x%" PRIx64, ch->gpa);
    } else {
      fputs(" not-present ", stdout);
      if (ch->status == SR_ENOTPRESENT)
        cli_pte_text(stdout, &ch->pte);
      else
        fputs(kind_of(ch), stdout);
      if (ch->level != 0)
        printf(" at %s entry@0x%" PRIx64 " = 0x%" PRIx64,
               cli_level_name(ch->level), ch->entry_gpa, ch->entry);
    }
    if (was != NULL)
      printf(" (was %s)", kind_of(was));
    fputc('\n', stdout);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error(cmd, "write error on stdout");
    w->rc = CLI_FAIL;
  }
}

/* Prints the initial state, one line per run. */
static void print_initial(watch_t* w) {
  size_t i = 0;
  while (i < w->nchunks) {
    uint64_t lo = chunk_va(w, i);
    uint64_t len = chunk_len(w, i);
    size_t k = i + 1;
    while (k < w->nchunks &&
           same_run(&w->state[k - 1], chunk_len(w, k - 1), &w->state[k])) {
      len += chunk_len(w, k);
      k++;
    }
    print_line(w, "initial", lo, len, &w->state[i], NULL);
    i = k;
  }
}

static void stop(watch_t* w) {
  if (w->stopping)
    return;
  w->stopping = true;
  uv_close((uv_handle_t*)&w->poll, NULL);
  uv_close((uv_handle_t*)&w->duration, NULL);
  uv_close((uv_handle_t*)&w->sigint, NULL);
  uv_close((uv_handle_t*)&w->sigterm, NULL);
}

static void on_poll(uv_timer_t* timer) {
  watch_t* w = timer->data;
  size_t i;

  for (i = 0; i < w->nchunks && !w->stopping; i++) {
    chunk_t now;
    const char* ev;
    if (walk_chunk(w, i, &now) != 0)
      continue; /* cannot happen after a good initial walk */
    ev = event_of(&w->state[i], &now);
    if (ev == NULL)
      continue;
    print_line(w, ev, chunk_va(w, i), chunk_len(w, i), &now, &w->state[i]);
    w->state[i] = now;
    w->events++;
    if (w->rc != CLI_OK || (w->count != 0 && w->events >= w->count))
      stop(w);
  }
}

static void on_duration(uv_timer_t* timer) {
  stop(timer->data);
}

static void on_signal(uv_signal_t* sig, int signum) {
  (void)signum;
  stop(sig->data);
}

/* Sets up the loop and its handles, prints the header and the initial
 * state (only once the signal watchers are in place, so a SIGINT sent
 * after the first line always ends the watch cleanly), runs the loop and
 * closes it. Returns 0 or a libuv error. */
static int run_loop(watch_t* w, uint64_t interval_ms, uint64_t duration_ms) {
  int err;

  if ((err = uv_loop_init(&w->loop)) != 0)
    return err;
  uv_timer_init(&w->loop, &w->poll);
  uv_timer_init(&w->loop, &w->duration);
  uv_signal_init(&w->loop, &w->sigint);
  uv_signal_init(&w->loop, &w->sigterm);
  w->poll.data = w->duration.data = w;
  w->sigint.data = w->sigterm.data = w;
  if ((err = uv_signal_start(&w->sigint, on_signal, SIGINT)) == 0 &&
      (err = uv_signal_start(&w->sigterm, on_signal, SIGTERM)) == 0) {
    if (!w->c->json)
      printf("# watching 0x%" PRIx64 "-0x%" PRIx64
             " (%zu chunks) every %" PRIu64 " ms; times UTC\n",
             w->va, w->va + (w->len - 1) + 1, w->nchunks, interval_ms);
    print_initial(w);
    if (w->rc == CLI_OK &&
        (err = uv_timer_start(&w->poll, on_poll, interval_ms, interval_ms)) ==
            0 &&
        duration_ms != 0)
      err = uv_timer_start(&w->duration, on_duration, duration_ms, 0);
  }
  if (err != 0 || w->rc != CLI_OK)
    stop(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&w->loop) != 0)
    cli_error(cmd, "the loop did not close");
  return err;
}

/* The whole-space form: IMAGE only, optionally --va/--len as the range
 * of the address-space monitor. */
static int watch_space(cli_common_t* c, const char* pos[3], int npos,
                       bool have_va, uint64_t va, bool have_len, uint64_t len,
                       uint32_t bits, uint64_t interval_ms,
                       uint64_t duration_ms, uint64_t count) {
  cli_space_opts_t o;
  sr_image_t* image = NULL;
  int rc;

  if (npos == 0)
    return cli_usage_error(cmd, "missing IMAGE");
  if (npos > 1)
    return cli_usage_error(cmd, "VA LEN and --va/--len/--accessed/--swap "
                                "exclude each other");
  if ((rc = cli_common_check(c, true)) != 0)
    return rc;
  if (have_va != have_len)
    return cli_usage_error(cmd, "--va and --len go together");
  if (have_len && len == 0)
    return cli_usage_error(cmd, "--len must not be 0");
  if (have_len && len - 1 > UINT64_MAX - va)
    return cli_usage_error(cmd, "--va + --len wraps around");
  memset(&o, 0, sizeof(o));
  if (have_va) {
    o.lo = va;
    o.hi = va + len; /* 0 when the range ends at the top */
  }
  o.bits = bits != 0 ? SR_SPACEMON_DEFAULT_BITS | bits : 0;
  o.interval_ms = interval_ms;
  o.duration_ms = duration_ms;
  o.count = count;
  if ((rc = cli_open_image(c, pos[0], &image)) != 0)
    return rc;
  rc = cli_watch_space(c, image, &o);
  sr_image_close(image);
  return rc;
}

int cli_cmd_watch(int argc, char** argv) {
  cli_common_t c;
  cli_args_t a = {argc, argv, 1, false};
  watch_t w;
  const char* pos[3];
  int npos = 0;
  uint64_t interval_ms = WATCH_DEFAULT_INTERVAL_MS;
  uint64_t duration_ms = 0;
  bool have_count = false, have_va = false, have_len = false;
  uint64_t space_va = 0, space_len = 0;
  uint32_t space_bits = 0;
  sr_image_t* image = NULL;
  size_t i;
  int rc;
  int r;

  cli_common_init(&c, cmd);
  memset(&w, 0, sizeof(w));
  for (; a.i < argc; a.i++) {
    const char* v;
    if (cli_help_opt(&a, cmd))
      return CLI_OK;
    if ((r = cli_common_opt(&c, &a)) != 0) {
      if (r != 1)
        return r;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--interval", &v)) != 0) {
      if (r != 1 ||
          (r = cli_duration(cmd, "--interval", v, 1, &interval_ms)) != 0)
        return r;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--duration", &v)) != 0) {
      if (r != 1 ||
          (r = cli_duration(cmd, "--duration", v, 0, &duration_ms)) != 0)
        return r;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--count", &v)) != 0) {
      if (r != 1 || (r = cli_number(cmd, "--count", v, &w.count)) != 0)
        return r;
      if (w.count == 0)
        return cli_usage_error(cmd, "--count must be at least 1");
      have_count = true;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--va", &v)) != 0) {
      if (r != 1 || (r = cli_number(cmd, "--va", v, &space_va)) != 0)
        return r;
      have_va = true;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--len", &v)) != 0) {
      if (r != 1 || (r = cli_number(cmd, "--len", v, &space_len)) != 0)
        return r;
      have_len = true;
      continue;
    }
    if (strcmp(argv[a.i], "--accessed") == 0 && !a.only_pos) {
      space_bits |= SR_SPACEMON_ACCESSED | SR_SPACEMON_DIRTY;
      continue;
    }
    if (strcmp(argv[a.i], "--swap") == 0 && !a.only_pos) {
      space_bits |= SR_SPACEMON_SWAP;
      continue;
    }
    if ((rc = cli_range_positional(&a, cmd, pos, &npos)) != 0)
      return rc;
  }
  if (have_count && duration_ms != 0)
    return cli_usage_error(cmd, "--count and --duration exclude each other");
  if (npos == 1 || have_va || have_len || space_bits != 0)
    return watch_space(&c, pos, npos, have_va, space_va, have_len, space_len,
                       space_bits, interval_ms, duration_ms, w.count);
  if ((rc = cli_range_check(&c, cmd, pos, npos, &w.va, &w.len)) != 0)
    return rc;
  if (((w.va + (w.len - 1)) >> 12) - (w.va >> 12) + 1 > WATCH_MAX_CHUNKS)
    return cli_usage_error(cmd, "range too large (at most %" PRIu64 " chunks)",
                           WATCH_MAX_CHUNKS);
  w.nchunks = (size_t)(((w.va + (w.len - 1)) >> 12) - (w.va >> 12) + 1);

  if ((rc = cli_open_image(&c, pos[0], &image)) != 0)
    return rc;
  w.c = &c;
  w.image = image;
  w.rc = CLI_OK;
  w.state = calloc(w.nchunks, sizeof(*w.state));
  if (w.state == NULL) {
    cli_error(cmd, "%s", sr_strerror(SR_ENOMEM));
    rc = CLI_FAIL;
    goto out_close;
  }
  w.t0_ns = uv_hrtime();
  for (i = 0; i < w.nchunks; i++) {
    if (walk_chunk(&w, i, &w.state[i]) != 0) {
      cli_error(cmd, "cr3 0x%" PRIx64 ": %s", c.cr3, sr_strerror(SR_EINVAL));
      rc = CLI_FAIL;
      goto out_free;
    }
  }
  {
    int err = run_loop(&w, interval_ms, duration_ms);
    if (err != 0) {
      cli_error(cmd, "%s", uv_strerror(err));
      w.rc = CLI_FAIL;
    }
  }
  rc = w.rc;

out_free:
  free(w.state);
out_close:
  sr_image_close(image);
  return rc;
}
