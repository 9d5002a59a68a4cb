/* swapread CLI — the waiting read shared by `read --wait` and `demo`.
 *
 * cli_wait_read runs one read of [va, va + len) through the libuv binding
 * (sr_uv_read with SR_READ_PARTIAL on a private uv_loop_t) and returns when
 * every chunk arrived, at the timeout, on SIGINT (when asked), or when the
 * engine met a permanent error. The bytes that arrived are in `buf`,
 * missing chunks zero-filled and listed in the `missing` bitmap. Progress
 * goes to a FILE: refreshed in place on a terminal, one line per change
 * otherwise, or not at all.
 */
#ifndef SR_CLI_WAIT_H
#define SR_CLI_WAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "swapread/translate.h"

typedef enum cli_progress_e {
  CLI_PROGRESS_NONE = 0, /* quiet */
  CLI_PROGRESS_TTY = 1,  /* one line rewritten with \r, <= 10 per second */
  CLI_PROGRESS_LINES = 2 /* a new line each time the counts change */
} cli_progress_t;

typedef struct cli_wait_s cli_wait_t;

struct cli_wait_s {
  /* Input (set before cli_wait_read). */
  uint64_t cr3;
  uint64_t va;
  uint64_t len;
  sr_walk_opts_t walk;
  uint64_t timeout_ms; /* > 0; SR_TIMEOUT_NONE: wait forever */
  cli_progress_t progress;
  FILE* progress_out;          /* where progress goes (stderr) */
  const char* label;           /* for messages, e.g. "read" */
  const char* progress_prefix; /* NULL: "swapread: <label>: " */
  bool interruptible; /* SIGINT cancels the read (status SR_ECANCELED) */
  /* A liveness probe (sr_uv_set_probe): while the read waits, the 8 bytes
   * at alive_va must hold alive_value (little-endian); other bytes mean
   * the address space is gone (SR_EGONE); unreadable means unknown. */
  bool alive;
  uint64_t alive_va, alive_value;
  /* Called once the read is pending, before the loop runs (e.g. to start
   * the process that pages the data in). May be NULL. */
  void (*on_pending)(cli_wait_t* w);
  void* data; /* the caller's */

  /* Output. */
  int start;               /* what sr_uv_read returned: 0, SR_PENDING, or < 0 */
  int status;              /* 0, SR_EPARTIAL (the timeout), SR_ECANCELED, ... */
  unsigned char* buf;      /* len bytes; missing chunks zero-filled */
  size_t nchunks;          /* 4 KiB chunks of the range */
  uint64_t* missing;       /* nchunks bits, bit i = chunk i missing; NULL
                              when the engine gave no bitmap */
  size_t nmissing;         /* bits set in missing */
  size_t pending_at_start; /* chunks missing when the read went pending */
  uint64_t waited_ms;
  bool interrupted; /* SIGINT arrived */
};

/* Runs the read over `image` (borrowed). Returns 0 when the read ran (the
 * outcome is in start/status/missing, even a rejected read), or an error
 * that stopped it from running: SR_ENOMEM, or a libuv error (< 0, see
 * cli_wait_strerror). Free with cli_wait_free either way. */
int cli_wait_read(cli_wait_t* w, sr_image_t* image);

/* Frees buf and missing. */
void cli_wait_free(cli_wait_t* w);

/* Whether chunk i was missing when the read ended. */
bool cli_wait_chunk_missing(const cli_wait_t* w, size_t i);

/* A message for an error of sr_* or of libuv. */
const char* cli_wait_strerror(int err);

#endif /* SR_CLI_WAIT_H */
