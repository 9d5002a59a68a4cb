/* swapread CLI — `watch` over a whole address space (watch_space.c). */
#ifndef SR_CLI_WATCH_SPACE_H
#define SR_CLI_WATCH_SPACE_H

#include <stdint.h>

#include "options.h"

typedef struct cli_space_opts_s {
  uint64_t lo, hi;      /* spacemon range; both 0: all */
  uint32_t bits;        /* SR_SPACEMON_*; 0: default */
  uint64_t interval_ms; /* poll period */
  uint64_t duration_ms; /* 0: until a signal or count */
  uint64_t count;       /* events; 0: no limit */
} cli_space_opts_t;

/* Runs the watch on `image` (borrowed) for c->cr3 until it ends. Returns
 * the exit code (CLI_OK, CLI_FAIL). */
int cli_watch_space(const cli_common_t* c, sr_image_t* image,
                    const cli_space_opts_t* o);

#endif /* SR_CLI_WATCH_SPACE_H */
