/* swapread CLI — `read`: a read of a guest virtual range, synchronous or
 * waiting for paged-out pages.
 *
 * The range is cut into chunks (the 4 KiB pages it touches, the first and
 * last possibly partial). The bytes are fetched with sr_read_batch, one
 * item per chunk, up to READ_WINDOW chunks (2 MiB) a call; only a chunk
 * the batch could not read is walked again with sr_translate (and its data
 * copied with sr_image_read as far as it is in the file), to say why.
 * Missing chunks are zero-filled in raw output, shown as "??" in a
 * hexdump, and reported with their VA, the level/entry/entry GPA that
 * stopped the walk and the kind (swap type and offset when known), or
 * hole/beyond for data that is not in the file. Adjacent missing chunks
 * with the same cause (e.g. the 512 chunks under one non-present PD entry)
 * are reported as one range. With --wait the bytes come from one waiting
 * read through the libuv binding (wait.c); the chunks still missing at the
 * timeout are then described the same way, from a walk made after the
 * read ended. Exit 1 when anything was missing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "describe.h"
#include "hexdump.h"
#include "json.h"
#include "options.h"
#include "swapread/read.h"
#include "swapread/swap.h"
#include "wait.h"

static const char* const cmd = "read";

/* Chunks per sr_read_batch call: 2 MiB of 4 KiB chunks. */
#define READ_WINDOW 512

/* One run of missing bytes with a single cause. */
typedef struct missing_s {
  uint64_t va;
  uint64_t len;
  int status;     /* SR_ENOTPRESENT, SR_EHOLE, ... */
  int level;      /* level of the entry that stopped it (0: none) */
  uint64_t entry; /* that entry (0 when it could not be loaded) */
  uint64_t entry_gpa;
  uint64_t last_entry_gpa; /* of the last chunk merged in */
  const char* kind; /* "linux-swap", "hole", "beyond", "bad-entry", ... */
  bool has_pte;     /* pte is the classification of entry */
  sr_pte_info_t pte;
  bool has_gpa; /* data frame not in the file: gpa of the first byte */
  uint64_t gpa;
} missing_t;

typedef struct read_state_s {
  const cli_common_t* c;
  FILE* raw;    /* raw bytes go here, or NULL */
  bool hexdump; /* a hexdump goes to stdout */
  cli_hexdump_t hd;
  cli_json_t j; /* when c->json: the object on stdout */
  bool have_cur;
  missing_t cur; /* the run being extended */
  uint64_t bytes_missing;
  uint64_t nmissing; /* runs reported */
} read_state_t;

static void report_text(const missing_t* m) {
  fprintf(stderr,
          "swapread: read: missing 0x%" PRIx64 "-0x%" PRIx64 " (%" PRIu64
          " bytes): %s",
          m->va, m->va + m->len, m->len, m->kind);
  if (m->has_pte && m->pte.kind == SR_PTE_LINUX_SWAP)
    fprintf(stderr, " type %" PRIu32 " offset 0x%" PRIx64, m->pte.swap_type,
            m->pte.swap_offset);
  else if (m->has_pte && m->pte.kind == SR_PTE_WIN_PAGEFILE)
    fprintf(stderr, " file %" PRIu32 " offset 0x%" PRIx64, m->pte.swap_type,
            m->pte.swap_offset);
  if (m->has_gpa)
    fprintf(stderr, " (data gpa 0x%" PRIx64 ")", m->gpa);
  if (m->level != 0)
    fprintf(stderr, " at %s entry@0x%" PRIx64 " = 0x%" PRIx64,
            cli_level_name(m->level), m->entry_gpa, m->entry);
  fprintf(stderr, " [%s]\n", sr_err_name(m->status));
}

static void report_json(cli_json_t* j, const missing_t* m) {
  cli_json_object_begin(j);
  cli_json_kv_hex(j, "va", m->va);
  cli_json_kv_uint(j, "len", m->len);
  cli_json_kv_string(j, "status", sr_err_name(m->status));
  cli_json_kv_int(j, "level", m->level);
  cli_json_kv_hex(j, "entry", m->entry);
  cli_json_kv_hex(j, "entry_gpa", m->entry_gpa);
  if (m->has_pte) {
    cli_pte_json(j, &m->pte);
  } else {
    cli_json_kv_string(j, "kind", m->kind);
    cli_json_kv_null(j, "swap_type");
    cli_json_kv_null(j, "swap_offset");
  }
  if (m->has_gpa)
    cli_json_kv_hex(j, "gpa", m->gpa);
  cli_json_object_end(j);
}

static void flush_missing(read_state_t* s) {
  if (!s->have_cur)
    return;
  if (s->c->json)
    report_json(&s->j, &s->cur);
  else
    report_text(&s->cur);
  s->nmissing++;
  s->have_cur = false;
}

/* Whether m continues s->cur: contiguous, and the same cause (the same
 * entry, or a run of empty entries one after the other in a table). */
static bool extends(const read_state_t* s, const missing_t* m) {
  const missing_t* c = &s->cur;
  if (!s->have_cur || c->va + c->len != m->va)
    return false;
  if (c->status != m->status || c->level != m->level || c->entry != m->entry ||
      strcmp(c->kind, m->kind) != 0 || c->has_gpa != m->has_gpa)
    return false;
  if (m->has_gpa && c->gpa + c->len != m->gpa)
    return false;
  if (m->entry_gpa == c->last_entry_gpa)
    return true;
  return m->entry == 0 && m->status == SR_ENOTPRESENT &&
         m->entry_gpa == c->last_entry_gpa + 8;
}

static void add_missing(read_state_t* s, const missing_t* m) {
  s->bytes_missing += m->len;
  if (extends(s, m)) {
    s->cur.len += m->len;
    s->cur.last_entry_gpa = m->entry_gpa;
    return;
  }
  flush_missing(s);
  s->cur = *m;
  s->cur.last_entry_gpa = m->entry_gpa;
  s->have_cur = true;
}

/* Sends n bytes to the outputs; invalid bytes go out as zeros. */
static void emit(read_state_t* s, const unsigned char* buf, size_t n,
                 bool valid) {
  static const unsigned char zeros[4096];
  if (n == 0)
    return;
  if (s->raw != NULL)
    fwrite(valid ? buf : zeros, 1, n, s->raw);
  if (s->hexdump)
    cli_hexdump_feed(&s->hd, buf, n, valid);
}

static const char* stop_kind(const sr_translation_t* t) {
  switch (t->status) {
    case SR_ENOTPRESENT:
      return sr_pte_kind_name(t->pte.kind);
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

/* Reads the chunk [va, va + n), which lies inside one 4 KiB page, or with
 * `copy` false only describes why it is missing (a waiting read that timed
 * out: a chunk that translates now arrived after the deadline, and is
 * reported as "timed-out"). Returns 0, or SR_EINVAL when the walk options
 * or cr3 are unusable. */
static int read_chunk(read_state_t* s, const sr_image_t* image, uint64_t va,
                      size_t n, bool copy) {
  unsigned char buf[4096];
  sr_translation_t t;
  missing_t m;
  int err;

  memset(&m, 0, sizeof(m));
  err = sr_translate(image, s->c->cr3, va, &s->c->walk, &t);
  if (err == SR_EINVAL && t.stop_level == 0)
    return err;
  if (err == 0 && !copy) {
    m.va = va;
    m.len = n;
    m.status = SR_ETIMEDOUT;
    m.level = t.stop_level;
    m.entry = t.entry[t.stop_level - 1];
    m.entry_gpa = t.entry_gpa[t.stop_level - 1];
    m.kind = "timed-out";
    m.has_gpa = true;
    m.gpa = t.gpa;
  } else if (err == 0) {
    size_t done = 0;
    err = sr_image_read(image, t.gpa, buf, n, &done);
    emit(s, buf, done, true);
    if (err == 0)
      return 0;
    m.va = va + done;
    m.len = n - done;
    m.status = err;
    m.level = t.stop_level;
    m.entry = t.entry[t.stop_level - 1];
    m.entry_gpa = t.entry_gpa[t.stop_level - 1];
    m.kind = err == SR_EHOLE ? "hole" : err == SR_EBEYOND ? "beyond" : "error";
    m.has_gpa = true;
    m.gpa = t.gpa + done;
  } else {
    m.va = va;
    m.len = n;
    m.status = err;
    m.level = t.stop_level;
    m.entry = t.fail_entry;
    m.entry_gpa = t.fail_entry_gpa;
    m.kind = stop_kind(&t);
    m.has_pte = err == SR_ENOTPRESENT;
    m.pte = t.pte;
  }
  emit(s, NULL, (size_t)m.len, false);
  add_missing(s, &m);
  return 0;
}

/* The batch of the synchronous read: up to cap chunks, their bytes laid
 * one after the other in buf (cap * 4 KiB). When the window cannot be
 * allocated, the one chunk of `one` is used instead (slower, the same
 * output). */
typedef struct window_s {
  sr_batch_item_t* items;
  unsigned char* buf;
  size_t cap;
  sr_batch_item_t one_item;
  unsigned char one[4096];
} window_t;

/* A window for a read of nchunks chunks (at most READ_WINDOW). */
static void window_init(window_t* win, uint64_t nchunks) {
  win->cap = nchunks < READ_WINDOW ? (size_t)nchunks : READ_WINDOW;
  win->items = malloc(win->cap * sizeof(*win->items));
  win->buf = malloc(win->cap * SR_PAGE_4K);
  if (win->cap <= 1 || win->items == NULL || win->buf == NULL) {
    free(win->items);
    free(win->buf);
    win->items = &win->one_item;
    win->buf = win->one;
    win->cap = 1;
  }
}

static void window_free(window_t* win) {
  if (win->items == &win->one_item)
    return;
  free(win->items);
  free(win->buf);
}

/* Length of the chunk at off of [va, va + len). */
static uint64_t chunk_len(uint64_t va, uint64_t len, uint64_t off) {
  uint64_t n = SR_PAGE_4K - ((va + off) & (SR_PAGE_4K - 1));
  return n < len - off ? n : len - off;
}

/* Reads [va, va + len) into the outputs, up to win->cap chunks per
 * sr_read_batch call. The bytes of the chunks it read go out in runs; a
 * chunk it did not read (or every chunk of a call it refused) goes to
 * read_chunk, which copies what it can and describes the rest, as without
 * the batch. Returns 0, or read_chunk's SR_EINVAL. */
static int read_batched(read_state_t* s, const sr_image_t* image, window_t* win,
                        uint64_t va, uint64_t len) {
  uint64_t off = 0;

  while (off < len) {
    size_t n, i, used = 0, run = 0;
    int ok;

    for (n = 0; n < win->cap && off + used < len; n++) {
      sr_batch_item_t* it = &win->items[n];
      it->gva = va + off + used;
      it->len = (size_t)chunk_len(va, len, off + used);
      it->buf = win->buf + used;
      used += it->len;
    }
    ok = sr_read_batch(image, s->c->cr3, &s->c->walk, win->items, n);
    for (i = 0; i < n; i++) {
      const sr_batch_item_t* it = &win->items[i];
      int err;
      if (ok >= 0 && it->status == 0) {
        run += it->len;
        continue;
      }
      emit(s, (const unsigned char*)it->buf - run, run, true);
      run = 0;
      if ((err = read_chunk(s, image, it->gva, it->len, true)) != 0)
        return err;
    }
    emit(s, win->buf + used - run, run, true);
    off += used;
  }
  return 0;
}

/* The --wait options. */
typedef struct wait_opts_s {
  bool wait;           /* --wait or --timeout seen */
  bool timeout_given;  /* a timeout value was given */
  uint64_t timeout_ms; /* SR_TIMEOUT_NONE: forever */
} wait_opts_t;

/* Offers the current argument to --wait[=T] / --timeout T. Returns 1 when
 * consumed, 0 when not one of them, or CLI_USAGE (printed). */
static int wait_opt(wait_opts_t* wo, cli_args_t* a) {
  const char* arg = a->argv[a->i];
  const char* v = NULL;
  uint64_t ms;
  int r;

  if (a->only_pos)
    return 0;
  if (strcmp(arg, "--wait") == 0) {
    wo->wait = true;
    return 1;
  }
  if (strncmp(arg, "--wait=", 7) == 0)
    v = arg + 7;
  else if ((r = cli_opt(a, cmd, "--timeout", &v)) != 1)
    return r;
  if ((r = cli_duration(cmd, "timeout", v, 0, &ms)) != 0)
    return r;
  if (wo->timeout_given && ms != wo->timeout_ms)
    return cli_usage_error(cmd, "two different timeouts given");
  wo->wait = true;
  wo->timeout_given = true;
  wo->timeout_ms = ms;
  return 1;
}

/* The name a waiting read's outcome goes by in the JSON "status". */
static const char* wait_status_name(const cli_wait_t* w) {
  if (w->status == SR_EPARTIAL)
    return sr_err_name(SR_ETIMEDOUT);
  return sr_err_name(w->status);
}

/* Whether the wait's bitmap says which chunks are missing (else the
 * chunks are read again, as without --wait). */
static bool wait_has_bitmap(const cli_wait_t* w) {
  return w->status == 0 ||
         ((w->status == SR_EPARTIAL || w->status == SR_ETIMEDOUT ||
           w->status == SR_ECANCELED) &&
          w->missing != NULL);
}

/* A line on stderr saying why a waiting read ended without every chunk. */
static void wait_note(const cli_wait_t* w) {
  if (w->status == 0)
    return;
  if (w->start < 0) {
    cli_error(cmd, "not waiting: %s", sr_strerror(w->status));
  } else if (w->interrupted) {
    cli_error(cmd, "interrupted after %" PRIu64 " ms", w->waited_ms);
  } else if (w->status == SR_EPARTIAL || w->status == SR_ETIMEDOUT) {
    cli_error(cmd, "timed out after %" PRIu64 " ms, %zu of %zu chunks missing",
              w->waited_ms, w->nmissing, w->nchunks);
  } else {
    cli_error(cmd, "gave up after %" PRIu64 " ms: %s", w->waited_ms,
              sr_strerror(w->status));
  }
}

int cli_cmd_read(int argc, char** argv) {
  cli_common_t c;
  cli_args_t a = {argc, argv, 1, false};
  read_state_t s;
  wait_opts_t wo = {false, false, SR_TIMEOUT_NONE};
  cli_wait_t w;
  bool bitmap = false;
  const char* pos[3];
  int npos = 0;
  const char* out_path = NULL;
  bool want_raw = false;
  bool want_hexdump = false;
  uint64_t va = 0;
  uint64_t len = 0;
  uint64_t off;
  size_t chunk;
  sr_image_t* image = NULL;
  FILE* out_file = NULL;
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
    if ((r = cli_opt(&a, cmd, "-o", &v)) != 0 ||
        (r = cli_opt(&a, cmd, "--output", &v)) != 0) {
      if (r != 1)
        return r;
      out_path = v;
      continue;
    }
    if (cli_opt(&a, cmd, "--raw", NULL)) {
      want_raw = true;
      continue;
    }
    if (cli_opt(&a, cmd, "--hexdump", NULL)) {
      want_hexdump = true;
      continue;
    }
    if ((r = wait_opt(&wo, &a)) != 0) {
      if (r != 1)
        return r;
      continue;
    }
    if ((r = cli_opt(&a, cmd, "--alive", &v)) != 0) {
      const char* eq = r == 1 ? strchr(v, '=') : NULL;
      char va_s[64];
      if (r != 1)
        return r;
      if (eq == NULL || (size_t)(eq - v) >= sizeof(va_s))
        return cli_usage_error(cmd, "bad --alive '%s' (want VA=VALUE)", v);
      memcpy(va_s, v, (size_t)(eq - v));
      va_s[eq - v] = '\0';
      if ((r = cli_number(cmd, "--alive VA", va_s, &w.alive_va)) != 0 ||
          (r = cli_number(cmd, "--alive VALUE", eq + 1, &w.alive_value)) != 0)
        return r;
      w.alive = true;
      continue;
    }
    if ((rc = cli_range_positional(&a, cmd, pos, &npos)) != 0)
      return rc;
  }
  if ((rc = cli_range_check(&c, cmd, pos, npos, &va, &len)) != 0)
    return rc;
  if (want_raw && want_hexdump)
    return cli_usage_error(cmd, "--raw and --hexdump exclude each other");
  if (c.json && (want_raw || want_hexdump))
    return cli_usage_error(cmd, "--json takes stdout; use -o FILE for bytes");
  if (want_raw && out_path != NULL)
    return cli_usage_error(cmd, "--raw writes stdout; drop it or -o");
  if (w.alive && !wo.wait)
    return cli_usage_error(cmd, "--alive needs --wait");
  if (wo.wait && len > SIZE_MAX)
    return cli_usage_error(cmd, "LEN too large for --wait");

  if ((rc = cli_open_image(&c, pos[0], &image)) != 0)
    return rc;
  if (out_path != NULL) {
    out_file = fopen(out_path, "wb");
    if (out_file == NULL) {
      cli_error(out_path, "%s", strerror(errno));
      sr_image_close(image);
      return CLI_FAIL;
    }
  }

  if (wo.wait) {
    int err;
    w.cr3 = c.cr3;
    w.va = va;
    w.len = len;
    w.walk = c.walk;
    w.timeout_ms = wo.timeout_ms;
    w.progress = isatty(STDERR_FILENO) ? CLI_PROGRESS_TTY : CLI_PROGRESS_NONE;
    w.progress_out = stderr;
    w.label = cmd;
    w.interruptible = true;
    if ((err = cli_wait_read(&w, image)) != 0) {
      cli_error(cmd, "cannot wait: %s", cli_wait_strerror(err));
      cli_wait_free(&w);
      if (out_file != NULL)
        fclose(out_file);
      sr_image_close(image);
      return CLI_FAIL;
    }
    bitmap = wait_has_bitmap(&w);
    if (!c.json)
      wait_note(&w);
  }

  memset(&s, 0, sizeof(s));
  s.c = &c;
  if (c.json || out_file != NULL) {
    s.raw = out_file; /* NULL with --json and no -o: no bytes */
    s.hexdump = want_hexdump;
  } else if (want_raw) {  // NOLINT(bugprone-branch-clone): reads clearer
    s.raw = stdout;
  } else if (want_hexdump || isatty(STDOUT_FILENO)) {
    s.hexdump = true;
  } else {
    s.raw = stdout;
  }
  if (s.hexdump)
    cli_hexdump_init(&s.hd, stdout, va);
  if (c.json) {
    cli_json_init(&s.j, stdout);
    cli_json_object_begin(&s.j);
    cli_json_kv_hex(&s.j, "va", va);
    cli_json_kv_uint(&s.j, "len", len);
    cli_json_kv_hex(&s.j, "cr3", c.cr3);
    if (out_path != NULL)
      cli_json_kv_string(&s.j, "output", out_path);
    else
      cli_json_kv_null(&s.j, "output");
    cli_json_key(&s.j, "missing");
    cli_json_array_begin(&s.j);
  }

  rc = CLI_OK;
  if (!bitmap) {
    window_t win;
    window_init(&win, ((va + (len - 1)) >> 12) - (va >> 12) + 1);
    if (read_batched(&s, image, &win, va, len) != 0)
      rc = CLI_FAIL;
    window_free(&win);
  }
  for (off = 0, chunk = 0; bitmap && off < len; chunk++) {
    uint64_t n = chunk_len(va, len, off);
    if (!cli_wait_chunk_missing(&w, chunk))
      emit(&s, w.buf + off, (size_t)n, true);
    else if (read_chunk(&s, image, va + off, (size_t)n, false) != 0)
      rc = CLI_FAIL;
    if (rc != CLI_OK)
      break;
    off += n;
  }
  if (rc != CLI_OK)
    cli_error(cmd, "cr3 0x%" PRIx64 ": %s", c.cr3, sr_strerror(SR_EINVAL));
  flush_missing(&s);
  if (s.hexdump)
    cli_hexdump_finish(&s.hd);
  if (wo.wait && w.status != 0)
    rc = CLI_FAIL;
  if (c.json) {
    cli_json_array_end(&s.j);
    cli_json_kv_bool(&s.j, "complete", s.bytes_missing == 0 && rc == 0);
    cli_json_kv_uint(&s.j, "bytes_missing", s.bytes_missing);
    if (wo.wait) {
      cli_json_kv_string(&s.j, "status", wait_status_name(&w));
      cli_json_kv_uint(&s.j, "waited_ms", w.waited_ms);
    }
    cli_json_object_end(&s.j);
    cli_json_newline(&s.j);
  } else if (s.bytes_missing != 0) {
    fprintf(stderr,
            "swapread: read: %" PRIu64 " of %" PRIu64
            " bytes missing in %" PRIu64 " range(s)\n",
            s.bytes_missing, len, s.nmissing);
  }
  if (s.bytes_missing != 0)
    rc = CLI_FAIL;
  cli_wait_free(&w);

  if (out_file != NULL && (ferror(out_file) | fclose(out_file)) != 0) {
    cli_error(out_path, "write error");
    rc = CLI_FAIL;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error(cmd, "write error on stdout");
    rc = CLI_FAIL;
  }
  sr_image_close(image);
  return rc;
}
