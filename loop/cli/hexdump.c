/* swapread CLI — a streaming hexdump (see hexdump.h).
 *
 * One line per 16 bytes: "VA  xx xx ... xx  |ascii|", with the VA of the
 * first byte of the line (lines start at the read's VA, not at 16-byte
 * boundaries). Missing bytes print as "??" and '.'. No buffering beyond
 * one line.
 */
#include "hexdump.h"

#include <inttypes.h>

void cli_hexdump_init(cli_hexdump_t* h, FILE* out, uint64_t addr) {
  h->out = out;
  h->addr = addr;
  h->fill = 0;
}

static void flush_line(cli_hexdump_t* h) {
  size_t k;
  if (h->fill == 0)
    return;
  fprintf(h->out, "%016" PRIx64 " ", h->addr);
  for (k = 0; k < 16; k++) {
    if (k == 8)
      fputc(' ', h->out);
    if (k >= h->fill)
      fputs("   ", h->out);
    else if (h->valid[k])
      fprintf(h->out, " %02x", h->line[k]);
    else
      fputs(" ??", h->out);
  }
  fputs("  |", h->out);
  for (k = 0; k < h->fill; k++) {
    unsigned char c = h->line[k];
    fputc(h->valid[k] && c >= 0x20 && c < 0x7f ? c : '.', h->out);
  }
  fputs("|\n", h->out);
  h->addr += h->fill;
  h->fill = 0;
}

void cli_hexdump_feed(cli_hexdump_t* h, const void* buf, size_t len,
                      bool valid) {
  const unsigned char* p = buf;
  size_t k;
  for (k = 0; k < len; k++) {
    h->line[h->fill] = valid ? p[k] : 0;
    h->valid[h->fill] = valid;
    if (++h->fill == 16)
      flush_line(h);
  }
}

void cli_hexdump_finish(cli_hexdump_t* h) {
  flush_line(h);
}
