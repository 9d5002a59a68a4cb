/* swapread CLI — parsing of the options every image-reading command takes,
 * numbers with suffixes, durations with units, the layout, and the shared
 * error messages.
 *
 * It turns text into an sr_layout_t and an sr_walk_opts_t and opens the
 * image; it knows nothing of what the commands do with them. Limits: at
 * most CLI_MAX_SEG segments; numbers are unsigned 64-bit (no negative
 * addresses: write kernel addresses in hex).
 */
#include "options.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_error(const char* what, const char* fmt, ...) {
  va_list ap;
  fprintf(stderr, "swapread: %s: ", what);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int cli_usage_error(const char* cmd, const char* fmt, ...) {
  va_list ap;
  fprintf(stderr, "swapread: %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'swapread help %s'.\n", cmd);
  return CLI_USAGE;
}

void cli_common_init(cli_common_t* c, const char* cmd) {
  memset(c, 0, sizeof(*c));
  c->cmd = cmd;
  c->layout.kind = SR_LAYOUT_AUTO;
  c->walk.paging = SR_PAGING_4LEVEL;
  c->walk.os = SR_OS_LINUX;
}

int cli_parse_u64(const char* s, uint64_t* out) {
  uint64_t v = 0;
  unsigned base = 10;
  unsigned shift = 0;
  size_t ndigits = 0;

  if (s == NULL)
    return -1;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  }
  for (; *s != '\0'; s++, ndigits++) {
    unsigned d;
    if (*s >= '0' && *s <= '9')
      d = (unsigned)(*s - '0');
    else if (base == 16 && *s >= 'a' && *s <= 'f')
      d = (unsigned)(*s - 'a' + 10);
    else if (base == 16 && *s >= 'A' && *s <= 'F')
      d = (unsigned)(*s - 'A' + 10);
    else
      break;
    if (v > (UINT64_MAX - d) / base)
      return -1;
    v = v * base + d;
  }
  if (ndigits == 0)
    return -1;
  switch (*s) {
    case '\0':
      break;
    case 'k':
    case 'K':
      shift = 10;
      break;
    case 'm':
    case 'M':
      shift = 20;
      break;
    case 'g':
    case 'G':
      shift = 30;
      break;
    case 't':
    case 'T':
      shift = 40;
      break;
    default:
      return -1;
  }
  if (shift != 0) {
    if (s[1] != '\0' || v > (UINT64_MAX >> shift))
      return -1;
    v <<= shift;
  }
  *out = v;
  return 0;
}

int cli_number(const char* cmd, const char* what, const char* s,
               uint64_t* out) {
  if (cli_parse_u64(s, out) != 0)
    return cli_usage_error(cmd, "bad %s '%s' (want decimal or 0x-hex)", what,
                           s);
  return 0;
}

int cli_parse_duration_ms(const char* s, uint64_t bare_ms, uint64_t* ms) {
  static const struct {
    const char* name;
    uint64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  uint64_t v = 0;
  size_t ndigits = 0;
  size_t k;

  if (s == NULL)
    return -1;
  for (; *s >= '0' && *s <= '9'; s++, ndigits++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (ndigits == 0)
    return -1;
  if (*s == '\0') {
    if (bare_ms == 0 || v > UINT64_MAX / bare_ms)
      return -1;
    *ms = v * bare_ms;
    return 0;
  }
  for (k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
    if (strcmp(s, units[k].name) != 0)
      continue;
    if (v > UINT64_MAX / units[k].ms)
      return -1;
    *ms = v * units[k].ms;
    return 0;
  }
  return -1;
}

int cli_duration(const char* cmd, const char* what, const char* s,
                 uint64_t bare_ms, uint64_t* ms) {
  /* The upper bound (about 34 years) keeps nanoseconds in 64 bits. */
  if (cli_parse_duration_ms(s, bare_ms, ms) != 0 || *ms == 0 ||
      *ms > CLI_DURATION_MAX_MS)
    return cli_usage_error(cmd, "bad %s '%s' (want e.g. 500ms, 5s, 2m)", what,
                           s);
  return 0;
}

int cli_opt(cli_args_t* a, const char* cmd, const char* name,
            const char** value) {
  const char* arg = a->argv[a->i];
  size_t n = strlen(name);

  if (a->only_pos || strncmp(arg, name, n) != 0)
    return 0;
  if (value == NULL)
    return arg[n] == '\0';
  if (arg[n] == '=') {
    *value = arg + n + 1;
    return 1;
  }
  if (arg[n] != '\0')
    return 0;
  if (a->i + 1 >= a->argc)
    return cli_usage_error(cmd, "option '%s' needs a value", name);
  a->i++;
  *value = a->argv[a->i];
  return 1;
}

bool cli_help_opt(cli_args_t* a, const char* cmd) {
  if (cli_opt(a, cmd, "--help", NULL) != 1 && cli_opt(a, cmd, "-h", NULL) != 1)
    return false;
  cli_usage(cmd, stdout);
  return true;
}

bool cli_is_option(cli_args_t* a) {
  const char* arg = a->argv[a->i];
  if (a->only_pos)
    return false;
  if (strcmp(arg, "--") == 0) {
    a->only_pos = true;
    return true;
  }
  return arg[0] == '-' && arg[1] != '\0';
}

/* Parses "GPA:LEN:OFF[,GPA:LEN:OFF...]" into c->seg. 0 or CLI_USAGE. */
static int parse_segments(cli_common_t* c, const char* s) {
  size_t n = 0;
  char buf[256];

  /* False positive: s is an option value, argv[i] with i < argc, never
   * NULL (the analyzer assumes cli_opt may store a NULL). */
  // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
  while (*s != '\0') {
    const char* end = strchr(s, ',');
    size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
    char* f[3];
    char* p;
    uint64_t v[3];
    int k;

    if (n == CLI_MAX_SEG)
      return cli_usage_error(c->cmd, "more than %d segments", CLI_MAX_SEG);
    if (len == 0 || len >= sizeof(buf))
      return cli_usage_error(c->cmd, "bad segment in '--segments'");
    memcpy(buf, s, len);
    buf[len] = '\0';
    p = buf;
    for (k = 0; k < 3; k++) {
      f[k] = p;
      /* p is not NULL here: k < 2 returned when it was; at k == 2 the
       * loop ends (cppcheck cannot tell the iterations apart). */
      // cppcheck-suppress nullPointerRedundantCheck
      p = strchr(p, ':');
      if (k < 2) {
        if (p == NULL)
          return cli_usage_error(c->cmd, "bad segment '%s' (want GPA:LEN:OFF)",
                                 buf);
        *p++ = '\0';
      } else if (p != NULL) {
        return cli_usage_error(c->cmd, "bad segment (want GPA:LEN:OFF)");
      }
    }
    for (k = 0; k < 3; k++)
      if (cli_parse_u64(f[k], &v[k]) != 0)
        return cli_usage_error(c->cmd, "bad number '%s' in '--segments'", f[k]);
    c->seg[n].gpa = v[0];
    c->seg[n].len = v[1];
    c->seg[n].file_off = v[2];
    n++;
    s += len;
    if (*s == ',')
      s++;
  }
  if (n == 0)
    return cli_usage_error(c->cmd, "empty '--segments'");
  c->layout.seg = c->seg;
  c->layout.nseg = n;
  return 0;
}

/* --layout names, in sr_layout_kind_t order. */
static const char* const layout_names[] = {"auto", "raw", "segments",
                                           "pc",   "q35", "elf"};

int cli_common_opt(cli_common_t* c, cli_args_t* a) {
  const char* v = NULL;
  uint64_t n;
  int r;

  if ((r = cli_opt(a, c->cmd, "--layout", &v)) != 0) {
    size_t k;
    if (r != 1)
      return r;
    /* False positive: v is argv[i] with i < argc, never NULL. */
    for (k = 0; k < sizeof(layout_names) / sizeof(layout_names[0]); k++)
      // NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker)
      if (strcmp(v, layout_names[k]) == 0)
        break;
    if (k == sizeof(layout_names) / sizeof(layout_names[0]))
      return cli_usage_error(c->cmd, "unknown layout '%s'", v);
    c->layout.kind = (sr_layout_kind_t)k;
    c->layout_given = true;
    return 1;
  }
  if ((r = cli_opt(a, c->cmd, "--ram-size", &v)) != 0) {
    if (r != 1)
      return r;
    if ((r = cli_number(c->cmd, "--ram-size", v, &c->layout.ram_size)) != 0)
      return r;
    c->ram_size_given = true;
    return 1;
  }
  if ((r = cli_opt(a, c->cmd, "--segments", &v)) != 0) {
    if (r != 1)
      return r;
    if ((r = parse_segments(c, v)) != 0)
      return r;
    c->segments_given = true;
    return 1;
  }
  if ((r = cli_opt(a, c->cmd, "--cr3", &v)) != 0) {
    if (r != 1)
      return r;
    if ((r = cli_number(c->cmd, "--cr3", v, &c->cr3)) != 0)
      return r;
    c->have_cr3 = true;
    return 1;
  }
  if (cli_opt(a, c->cmd, "--la57", NULL)) {
    c->walk.paging = SR_PAGING_5LEVEL;
    return 1;
  }
  if ((r = cli_opt(a, c->cmd, "--os", &v)) != 0) {
    if (r != 1)
      return r;
    /* False positive: v is argv[i] with i < argc, never NULL. */
    // NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker)
    if (strcmp(v, "linux") == 0)
      c->walk.os = SR_OS_LINUX;
    else if (strcmp(v, "windows") == 0)
      c->walk.os = SR_OS_WINDOWS;
    else
      return cli_usage_error(c->cmd, "unknown os '%s' (linux or windows)", v);
    return 1;
  }
  if (cli_opt(a, c->cmd, "--resident", NULL)) {
    c->walk.flags |= SR_WALK_RESIDENT;
    return 1;
  }
  if ((r = cli_opt(a, c->cmd, "--maxphyaddr", &v)) != 0) {
    if (r != 1)
      return r;
    if ((r = cli_number(c->cmd, "--maxphyaddr", v, &n)) != 0)
      return r;
    if (n < 36 || n > 52)
      return cli_usage_error(c->cmd, "--maxphyaddr must be 36..52");
    c->walk.maxphyaddr = (uint8_t)n;
    return 1;
  }
  if (cli_opt(a, c->cmd, "--json", NULL)) {
    c->json = true;
    return 1;
  }
  return 0;
}

int cli_common_check(cli_common_t* c, bool need_cr3) {
  if (c->segments_given) {
    if (c->layout_given && c->layout.kind != SR_LAYOUT_SEGMENTS)
      return cli_usage_error(c->cmd, "--segments needs --layout segments");
    c->layout.kind = SR_LAYOUT_SEGMENTS;
  } else if (c->layout_given && c->layout.kind == SR_LAYOUT_SEGMENTS) {
    return cli_usage_error(c->cmd, "--layout segments needs --segments");
  }
  if (c->ram_size_given && c->layout.kind != SR_LAYOUT_PC &&
      c->layout.kind != SR_LAYOUT_Q35)
    return cli_usage_error(c->cmd, "--ram-size needs --layout pc or q35");
  if (need_cr3 && !c->have_cr3)
    return cli_usage_error(c->cmd, "--cr3 is required");
  return 0;
}

int cli_open_image(const cli_common_t* c, const char* path, sr_image_t** out) {
  int err = sr_image_open(out, path, &c->layout);
  if (err != 0) {
    cli_error(path, "%s", sr_strerror(err));
    return CLI_FAIL;
  }
  return 0;
}

int cli_range_positional(cli_args_t* a, const char* cmd, const char* pos[3],
                         int* npos) {
  if (cli_is_option(a)) {
    if (a->only_pos)
      return 0; /* it was "--" */
    return cli_usage_error(cmd, "unknown option '%s'", a->argv[a->i]);
  }
  if (*npos == 3)
    return cli_usage_error(cmd, "unexpected argument '%s'", a->argv[a->i]);
  pos[(*npos)++] = a->argv[a->i];
  return 0;
}

int cli_range_check(cli_common_t* c, const char* cmd, const char* pos[3],
                    int npos, uint64_t* va, uint64_t* len) {
  int rc;

  if (npos == 0)
    return cli_usage_error(cmd, "missing IMAGE");
  if ((rc = cli_common_check(c, true)) != 0)
    return rc;
  if (npos < 3)
    return cli_usage_error(cmd, npos == 1 ? "missing VA" : "missing LEN");
  if ((rc = cli_number(cmd, "VA", pos[1], va)) != 0 ||
      (rc = cli_number(cmd, "LEN", pos[2], len)) != 0)
    return rc;
  if (*len == 0)
    return cli_usage_error(cmd, "LEN must not be 0");
  if (*len - 1 > UINT64_MAX - *va)
    return cli_usage_error(cmd, "VA + LEN wraps around");
  return 0;
}
