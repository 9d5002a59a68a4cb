/* swapread CLI — a tiny streaming JSON writer (see json.h).
 *
 * It writes compact JSON to a FILE as the caller produces it; it keeps one
 * flag per nesting level to place commas and never buffers a document.
 * Write errors are left in the FILE's error flag for the caller to check.
 */
#include "json.h"

#include <assert.h>
#include <inttypes.h>

void cli_json_init(cli_json_t* j, FILE* out) {
  j->out = out;
  j->depth = 0;
  j->after_key = false;
  j->nonempty[0] = false;
}

/* Writes the comma before a value (or a key) when one is needed. */
static void before_value(cli_json_t* j) {
  if (j->after_key) {
    j->after_key = false;
    return;
  }
  if (j->nonempty[j->depth])
    fputc(',', j->out);
  j->nonempty[j->depth] = true;
}

static void open_container(cli_json_t* j, int c) {
  before_value(j);
  fputc(c, j->out);
  assert(j->depth + 1 < CLI_JSON_MAX_DEPTH);
  j->depth++;
  j->nonempty[j->depth] = false;
}

static void close_container(cli_json_t* j, int c) {
  assert(j->depth > 0 && !j->after_key);
  j->depth--;
  fputc(c, j->out);
}

void cli_json_object_begin(cli_json_t* j) {
  open_container(j, '{');
}

void cli_json_object_end(cli_json_t* j) {
  close_container(j, '}');
}

void cli_json_array_begin(cli_json_t* j) {
  open_container(j, '[');
}

void cli_json_array_end(cli_json_t* j) {
  close_container(j, ']');
}

static void write_string(FILE* out, const char* s) {
  fputc('"', out);
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    switch (c) {
      case '"':
        fputs("\\\"", out);
        break;
      case '\\':
        fputs("\\\\", out);
        break;
      case '\n':
        fputs("\\n", out);
        break;
      case '\r':
        fputs("\\r", out);
        break;
      case '\t':
        fputs("\\t", out);
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          fprintf(out, "\\u%04x", c);
        else
          fputc(c, out);
    }
  }
  fputc('"', out);
}

void cli_json_key(cli_json_t* j, const char* key) {
  assert(j->depth > 0 && !j->after_key);
  before_value(j);
  write_string(j->out, key);
  fputc(':', j->out);
  j->after_key = true;
}

void cli_json_string(cli_json_t* j, const char* s) {
  before_value(j);
  write_string(j->out, s);
}

void cli_json_hex(cli_json_t* j, uint64_t v) {
  before_value(j);
  fprintf(j->out, "\"0x%" PRIx64 "\"", v);
}

void cli_json_uint(cli_json_t* j, uint64_t v) {
  before_value(j);
  fprintf(j->out, "%" PRIu64, v);
}

void cli_json_int(cli_json_t* j, int64_t v) {
  before_value(j);
  fprintf(j->out, "%" PRId64, v);
}

void cli_json_bool(cli_json_t* j, bool v) {
  before_value(j);
  fputs(v ? "true" : "false", j->out);
}

void cli_json_null(cli_json_t* j) {
  before_value(j);
  fputs("null", j->out);
}

void cli_json_newline(cli_json_t* j) {
  assert(j->depth == 0);
  fputc('\n', j->out);
  j->nonempty[0] = false;
}

void cli_json_kv_string(cli_json_t* j, const char* key, const char* s) {
  cli_json_key(j, key);
  cli_json_string(j, s);
}

void cli_json_kv_hex(cli_json_t* j, const char* key, uint64_t v) {
  cli_json_key(j, key);
  cli_json_hex(j, v);
}

void cli_json_kv_uint(cli_json_t* j, const char* key, uint64_t v) {
  cli_json_key(j, key);
  cli_json_uint(j, v);
}

void cli_json_kv_int(cli_json_t* j, const char* key, int64_t v) {
  cli_json_key(j, key);
  cli_json_int(j, v);
}

void cli_json_kv_bool(cli_json_t* j, const char* key, bool v) {
  cli_json_key(j, key);
  cli_json_bool(j, v);
}

void cli_json_kv_null(cli_json_t* j, const char* key) {
  cli_json_key(j, key);
  cli_json_null(j);
}
