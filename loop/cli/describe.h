/* swapread CLI — how walks, entries and protections are shown.
 *
 * The text and JSON spellings that several commands share: level names,
 * entry flags, protection strings, sizes, and the description of a
 * non-present entry (kind, swap type and offset, resident frame, ...), so
 * `translate`, `read` and `maps` print the same things the same way.
 */
#ifndef SR_CLI_DESCRIBE_H
#define SR_CLI_DESCRIBE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "swapread/translate.h"

/* "PML5", "PML4", "PDPT", "PD", "PT"; "?" otherwise. */
const char* cli_level_name(int level);
/* "rw-u": r, w or -, x or - (NX), u (user) or k (supervisor). */
const char* cli_prot_string(uint32_t prot, char buf[5]);
/* "4K", "2M", "1G", "12K", or the byte count. */
const char* cli_size_string(uint64_t n, char buf[24]);
/* Flags of a present entry at `level`: "P RW US PWT PCD A D PS G NX"
 * (bit 7 is "PAT" at level 1); "-" when none. */
const char* cli_entry_flags(uint64_t entry, int level, char* buf, size_t n);
/* "linux-swap,present" for an sr_region_t.kinds bit set. */
const char* cli_kinds_string(uint32_t kinds, char* buf, size_t n);
/* "4K,2M" for an OR of page sizes. */
const char* cli_page_sizes_string(uint64_t sizes, char* buf, size_t n);

/* Bits 12..maxphyaddr-1 (maxphyaddr 0 means 52). */
uint64_t cli_phys_mask(uint8_t maxphyaddr);

/* "linux-swap type 0 offset 0x1f", "linux-protnone frame 0x5000", ... */
void cli_pte_text(FILE* out, const sr_pte_info_t* info);
/* Keys of a non-present entry: kind, swap_type and swap_offset (null when
 * the kind has none), frame (resident kinds), proto_addr (prototype). */
void cli_pte_json(cli_json_t* j, const sr_pte_info_t* info);

/* "2026-11-22T04:25:10.123Z" (json) or "04:25:10.123" (text: UTC, no Z),
 * now, into buf. */
void cli_timestamp(char* buf, size_t n, bool json);

#endif /* SR_CLI_DESCRIBE_H */
