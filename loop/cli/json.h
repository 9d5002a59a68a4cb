/* swapread CLI — a tiny streaming JSON writer.
 *
 * Values are written as they come, commas are placed automatically, and
 * strings are escaped (control characters as \u00XX; bytes >= 0x80 are
 * passed through, so UTF-8 stays UTF-8). Addresses and entries are written
 * as "0x..." strings (a JSON number cannot hold 64 bits exactly in most
 * readers); counts and small numbers as JSON numbers. Nesting is limited to
 * CLI_JSON_MAX_DEPTH; misuse is caught by assert().
 */
#ifndef SR_CLI_JSON_H
#define SR_CLI_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_JSON_MAX_DEPTH 16

typedef struct cli_json_s {
  FILE* out;
  int depth;
  bool after_key;                    /* a key was written, value pending */
  bool nonempty[CLI_JSON_MAX_DEPTH]; /* the container at depth has items */
} cli_json_t;

void cli_json_init(cli_json_t* j, FILE* out);
void cli_json_object_begin(cli_json_t* j);
void cli_json_object_end(cli_json_t* j);
void cli_json_array_begin(cli_json_t* j);
void cli_json_array_end(cli_json_t* j);
/* Writes a key inside an object; the next call writes its value. */
void cli_json_key(cli_json_t* j, const char* key);
void cli_json_string(cli_json_t* j, const char* s);
void cli_json_hex(cli_json_t* j, uint64_t v); /* "0x1f" */
void cli_json_uint(cli_json_t* j, uint64_t v);
void cli_json_int(cli_json_t* j, int64_t v);
void cli_json_bool(cli_json_t* j, bool v);
void cli_json_null(cli_json_t* j);
/* Ends a top-level value with a newline. */
void cli_json_newline(cli_json_t* j);

/* key + value in one call. */
void cli_json_kv_string(cli_json_t* j, const char* key, const char* s);
void cli_json_kv_hex(cli_json_t* j, const char* key, uint64_t v);
void cli_json_kv_uint(cli_json_t* j, const char* key, uint64_t v);
void cli_json_kv_int(cli_json_t* j, const char* key, int64_t v);
void cli_json_kv_bool(cli_json_t* j, const char* key, bool v);
void cli_json_kv_null(cli_json_t* j, const char* key);

#endif /* SR_CLI_JSON_H */
