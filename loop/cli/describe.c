/* swapread CLI — shared spellings of levels, entries, protections, sizes
 * and non-present entry kinds (see describe.h).
 *
 * Pure formatting: nothing here reads an image. Entry flags follow the
 * Intel SDM names (vol. 3A, 4.5); kind names are sr_pte_kind_name's.
 */
#include "describe.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "swapread/regions.h"

const char* cli_level_name(int level) {
  static const char* const names[] = {"?", "PT", "PD", "PDPT", "PML4", "PML5"};
  if (level < 0 || level > 5)
    return "?";
  return names[level];
}

const char* cli_prot_string(uint32_t prot, char buf[5]) {
  buf[0] = 'r';
  buf[1] = (prot & SR_PROT_W) ? 'w' : '-';
  buf[2] = (prot & SR_PROT_NX) ? '-' : 'x';
  buf[3] = (prot & SR_PROT_U) ? 'u' : 'k';
  buf[4] = '\0';
  return buf;
}

const char* cli_size_string(uint64_t n, char buf[24]) {
  static const char units[] = "TGMK";
  int k;
  for (k = 0; k < 4; k++) {
    unsigned shift = (unsigned)(40 - 10 * k);
    if (n != 0 && (n & ((UINT64_C(1) << shift) - 1)) == 0) {
      snprintf(buf, 24, "%" PRIu64 "%c", n >> shift, units[k]);
      return buf;
    }
  }
  snprintf(buf, 24, "%" PRIu64, n);
  return buf;
}

/* Appends " word" (or "word" at the start) to buf, truncating safely. */
static void append_word(char* buf, size_t n, const char* word) {
  size_t used = strlen(buf);
  if (used + 1 >= n)
    return;
  snprintf(buf + used, n - used, "%s%s", used != 0 ? " " : "", word);
}

static void append_list(char* buf, size_t n, const char* word) {
  size_t used = strlen(buf);
  if (used + 1 >= n)
    return;
  snprintf(buf + used, n - used, "%s%s", used != 0 ? "," : "", word);
}

const char* cli_entry_flags(uint64_t entry, int level, char* buf, size_t n) {
  static const char* const names[9] = {"P", "RW", "US", "PWT", "PCD",
                                       "A", "D",  "PS", "G"};
  int bit;
  buf[0] = '\0';
  for (bit = 0; bit < 9; bit++) {
    if (!(entry & (UINT64_C(1) << bit)))
      continue;
    append_word(buf, n, bit == 7 && level == 1 ? "PAT" : names[bit]);
  }
  if (entry & (UINT64_C(1) << 63))
    append_word(buf, n, "NX");
  if (buf[0] == '\0')
    snprintf(buf, n, "-");
  return buf;
}

const char* cli_kinds_string(uint32_t kinds, char* buf, size_t n) {
  int k;
  buf[0] = '\0';
  for (k = SR_PTE_PRESENT; k <= SR_PTE_UNKNOWN; k++)
    if (kinds & (1u << k))
      append_list(buf, n, sr_pte_kind_name((sr_pte_kind_t)k));
  if (buf[0] == '\0')
    snprintf(buf, n, "-");
  return buf;
}

const char* cli_page_sizes_string(uint64_t sizes, char* buf, size_t n) {
  static const uint64_t all[] = {SR_PAGE_4K, SR_PAGE_2M, SR_PAGE_1G};
  char one[24];
  size_t k;
  buf[0] = '\0';
  for (k = 0; k < sizeof(all) / sizeof(all[0]); k++)
    if (sizes & all[k])
      append_list(buf, n, cli_size_string(all[k], one));
  if (buf[0] == '\0')
    snprintf(buf, n, "-");
  return buf;
}

uint64_t cli_phys_mask(uint8_t maxphyaddr) {
  unsigned m = maxphyaddr != 0 ? maxphyaddr : 52;
  return ((UINT64_C(1) << m) - 1) & ~UINT64_C(0xfff);
}

/* Whether the kind carries a swap type/offset (Linux swap, pagefile). */
static int has_swap(sr_pte_kind_t kind) {
  return kind == SR_PTE_LINUX_SWAP || kind == SR_PTE_WIN_PAGEFILE;
}

void cli_pte_text(FILE* out, const sr_pte_info_t* info) {
  fputs(sr_pte_kind_name(info->kind), out);
  if (has_swap(info->kind))
    fprintf(out, " type %" PRIu32 " offset 0x%" PRIx64, info->swap_type,
            info->swap_offset);
  if (info->resident)
    fprintf(out, " frame 0x%" PRIx64 " (resident)", info->frame);
  if (info->kind == SR_PTE_WIN_PROTOTYPE)
    fprintf(out, " proto 0x%" PRIx64, info->proto_addr);
}

void cli_pte_json(cli_json_t* j, const sr_pte_info_t* info) {
  cli_json_kv_string(j, "kind", sr_pte_kind_name(info->kind));
  if (has_swap(info->kind)) {
    cli_json_kv_uint(j, "swap_type", info->swap_type);
    cli_json_kv_uint(j, "swap_offset", info->swap_offset);
  } else {
    cli_json_kv_null(j, "swap_type");
    cli_json_kv_null(j, "swap_offset");
  }
  if (info->resident)
    cli_json_kv_hex(j, "frame", info->frame);
  if (info->kind == SR_PTE_WIN_PROTOTYPE)
    cli_json_kv_hex(j, "proto_addr", info->proto_addr);
}

/* "2026-11-22T04:25:10.123Z" (json) or "04:25:10.123" into buf. */
void cli_timestamp(char* buf, size_t n, bool json) {
  struct timespec ts;
  struct tm tm;
  char base[32];

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(base, sizeof(base), json ? "%Y-%m-%dT%H:%M:%S" : "%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
  if (!json)
    buf[strlen(buf) - 1] = '\0'; /* no Z in text: the header says UTC */
}

