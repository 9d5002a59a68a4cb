/* swapread CLI — options shared by the commands that read an image.
 *
 * cli_common_t collects the image layout (--layout, --ram-size,
 * --segments), the address space (--cr3, --la57, --os, --resident,
 * --maxphyaddr) and the output mode (--json). Commands scan their argv with
 * cli_args_t: each argument is offered to cli_common_opt first, then to the
 * command's own options, and whatever is left is a positional argument.
 * Options take their value as "--opt VALUE" or "--opt=VALUE".
 */
#ifndef SR_CLI_OPTIONS_H
#define SR_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "swapread/image.h"
#include "swapread/translate.h"

#define CLI_MAX_SEG 64

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

typedef struct cli_common_s {
  const char* cmd;    /* command name, for messages */
  sr_layout_t layout; /* seg points into `seg` below when used */
  sr_segment_t seg[CLI_MAX_SEG];
  bool layout_given;   /* --layout seen */
  bool ram_size_given; /* --ram-size seen */
  bool segments_given; /* --segments seen */
  bool have_cr3;
  uint64_t cr3;
  sr_walk_opts_t walk;
  bool json;
} cli_common_t;

/* A cursor over a command's argv; argv[0] is the command name. */
typedef struct cli_args_s {
  int argc;
  char** argv;
  int i;         /* the argument being looked at */
  bool only_pos; /* "--" seen: everything else is positional */
} cli_args_t;

void cli_common_init(cli_common_t* c, const char* cmd);

/* Offers the current argument to the shared options. Returns 1 when it was
 * one of them (consumed, with its value), 0 when not, or CLI_USAGE after
 * printing a usage error. */
int cli_common_opt(cli_common_t* c, cli_args_t* a);

/* Checks the combination of shared options once parsing is done (ram size
 * only with pc/q35, segments only with segments, ...). Returns 0 or
 * CLI_USAGE after printing the error. */
int cli_common_check(cli_common_t* c, bool need_cr3);

/* Whether the current argument is the option `name`. A flag (`value` NULL)
 * matches "name" only; an option with a value matches "name VALUE" or
 * "name=VALUE" and sets *value, consuming the value argument. Returns 1 on
 * a match, 0 if not, or CLI_USAGE (printed) when the value is missing. */
int cli_opt(cli_args_t* a, const char* cmd, const char* name,
            const char** value);

/* Handles -h / --help: prints the command's usage on stdout and returns
 * true (the command then exits with CLI_OK). */
bool cli_help_opt(cli_args_t* a, const char* cmd);

/* Whether the current argument looks like an option (starts with '-' and
 * is not "-" itself, and "--" has not been seen). Consumes "--". */
bool cli_is_option(cli_args_t* a);

/* Parses a number: decimal or 0x-hex, optionally followed by a K, M, G or
 * T suffix (binary multiples). Returns 0, or -1 on garbage or overflow. */
int cli_parse_u64(const char* s, uint64_t* out);

/* As cli_parse_u64; on failure prints "swapread: cmd: bad <what> 'STR'"
 * with a usage hint and returns CLI_USAGE. */
int cli_number(const char* cmd, const char* what, const char* s, uint64_t* out);

/* Parses a duration: an unsigned integer followed by a unit, "ms", "s",
 * "m" or "h" ("500ms", "5s", "2m"). A bare number counts `bare_ms`
 * milliseconds each; bare_ms 0 means a unit is required. Returns 0 with
 * the duration in milliseconds, or -1 on garbage, a missing number or
 * unit, or overflow. */
int cli_parse_duration_ms(const char* s, uint64_t bare_ms, uint64_t* ms);

/* The longest duration cli_duration accepts (2^40 ms, about 34 years). */
#define CLI_DURATION_MAX_MS (UINT64_C(1) << 40)

/* As cli_parse_duration_ms, and the duration must be in
 * 1..CLI_DURATION_MAX_MS; on failure
 * prints "swapread: cmd: bad <what> 'STR'" and returns CLI_USAGE. */
int cli_duration(const char* cmd, const char* what, const char* s,
                 uint64_t bare_ms, uint64_t* ms);

/* Opens the image at `path` with the layout of `c`. On failure prints
 * "swapread: <path>: <reason>" and returns CLI_FAIL. */
int cli_open_image(const cli_common_t* c, const char* path, sr_image_t** out);

/* For a command taking IMAGE VA LEN: files argv[a->i] as the next positional
 * argument (0), skips "--" (0), or rejects an unknown option or a fourth
 * argument (usage error). */
int cli_range_positional(cli_args_t* a, const char* cmd, const char* pos[3],
                         int* npos);
/* After the option loop: checks that IMAGE VA LEN were all given, the
 * common options (cr3 required), and parses VA and LEN (LEN > 0, no wrap).
 * 0 or a usage error. */
int cli_range_check(cli_common_t* c, const char* cmd, const char* pos[3],
                    int npos, uint64_t* va, uint64_t* len);

/* "swapread: <what>: <message>" on stderr. */
void cli_error(const char* what, const char* fmt, ...) CLI_PRINTF(2, 3);
/* As cli_error, then "Try 'swapread help <cmd>'."; returns CLI_USAGE. */
int cli_usage_error(const char* cmd, const char* fmt, ...) CLI_PRINTF(2, 3);

#endif /* SR_CLI_OPTIONS_H */
