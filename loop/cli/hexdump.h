/* swapread CLI — a streaming hexdump with guest virtual addresses.
 *
 * Bytes are fed in pieces, each marked readable or missing; lines of 16
 * bytes show the VA, the bytes in hex ("??" for missing ones) and the
 * printable characters. Missing bytes are shown, never invented.
 */
#ifndef SR_CLI_HEXDUMP_H
#define SR_CLI_HEXDUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_hexdump_s {
  FILE* out;
  uint64_t addr; /* VA of line[0] */
  size_t fill;   /* bytes in line */
  unsigned char line[16];
  bool valid[16];
} cli_hexdump_t;

void cli_hexdump_init(cli_hexdump_t* h, FILE* out, uint64_t addr);
/* Appends len bytes; buf is ignored (may be NULL) when !valid. */
void cli_hexdump_feed(cli_hexdump_t* h, const void* buf, size_t len,
                      bool valid);
/* Writes the last partial line. */
void cli_hexdump_finish(cli_hexdump_t* h);

#endif /* SR_CLI_HEXDUMP_H */
