/* swapread CLI — command dispatch, usage texts and exit codes.
 *
 * `swapread <command> [options]`: finds the command in a constant table
 * and runs it with its own argv. Exit codes: 0 ok, 1 failure (including a
 * read or translation that hit missing pages), 2 usage error. This file
 * holds the help texts; the commands live in cmd_*.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "swapread/common.h"

#define COMMON_HELP                                                            \
  "image options:\n"                                                           \
  "  --layout auto|raw|pc|q35|elf|segments   physical layout (default auto:\n" \
  "                          ELF core if the file is one, else raw)\n"         \
  "  --ram-size N            guest RAM size for pc/q35 (default: file size)\n" \
  "  --segments GPA:LEN:OFF[,...]   explicit segments (implies segments)\n"    \
  "address space options:\n"                                                   \
  "  --cr3 X                 root of the page tables (low 12 bits masked)\n"   \
  "  --la57                  5-level paging\n"                                 \
  "  --os linux|windows      how non-present entries are encoded (linux)\n"    \
  "  --resident              read PROT_NONE / transition pages too\n"          \
  "  --maxphyaddr N          physical address width, 36..52 (52)\n"            \
  "  --json                  machine-readable output\n"                        \
  "numbers: decimal or 0x-hex, optional K/M/G/T suffix (x1024^n).\n"

typedef struct command_s {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* summary;
  const char* help;
} command_t;

static const command_t commands[] = {
    {"translate", cli_cmd_translate, "show the page walk of virtual addresses",
     "usage: swapread translate IMAGE --cr3 X [options] VA...\n"
     "Walks the page tables for each VA and prints every level (entry GPA,\n"
     "raw entry, flags), then the GPA, page size and protection, or where\n"
     "and why the walk stopped. Exit 1 if any VA did not translate.\n"
     "--json: one JSON object per VA, one per line.\n\n" COMMON_HELP},
    {"read", cli_cmd_read, "read guest virtual memory (optionally waiting)",
     "usage: swapread read IMAGE --cr3 X [options] VA LEN\n"
     "       [-o FILE] [--hexdump | --raw] [--wait[=TIMEOUT]]\n"
     "Reads [VA, VA+LEN) chunk by chunk (4 KiB pages). Missing chunks are\n"
     "zero-filled in raw output, shown as ?? in a hexdump, and reported on\n"
     "stderr (or in the JSON) with their level, entry and kind.\n"
     "  -o FILE     write the raw bytes to FILE\n"
     "  --raw       raw bytes on stdout (default when stdout is not a tty)\n"
     "  --hexdump   a hexdump on stdout (default on a tty)\n"
     "  --json      stdout gets one JSON object describing the read; the\n"
     "              bytes go only to -o FILE (none without it)\n"
     "  --wait[=TIMEOUT]  wait for paged-out chunks to be paged in, until\n"
     "              TIMEOUT (e.g. 500ms, 5s, 2m; none: forever); progress\n"
     "              on stderr when it is a terminal; Ctrl-C stops waiting\n"
     "  --timeout TIMEOUT  the same as --wait=TIMEOUT\n"
     "  --alive VA=VALUE   with --wait: the 8 bytes at VA must stay VALUE\n"
     "              (e.g. a pid in a header), else the read ends EGONE\n"
     "Exit 0 when every chunk was read, 1 when any was missing (at the\n"
     "timeout, with --wait).\n\n" COMMON_HELP},
    {"maps", cli_cmd_maps, "list the mapped regions of an address space",
     "usage: swapread maps IMAGE --cr3 X [options] [--lo A] [--hi B]\n"
     "       [--merge-paged]\n"
     "One line per run of VAs with the same state and protection:\n"
     "  lo-hi size prot state kinds page-sizes present-bytes\n"
     "prot is r, w|-, x|- (NX), u|k (user/supervisor).\n"
     "  --lo A, --hi B   range to list (default: everything; --hi 0 = top)\n"
     "  --merge-paged    merge paged-out runs into their neighbours\n"
     "--json: one JSON array of region objects.\n\n" COMMON_HELP},
    {"mkimage", cli_cmd_mkimage, "build a holey demo image",
     "usage: swapread mkimage FILE [--size N] [--la57] [--elf] [--json]\n"
     "Builds a demo guest image with present, swapped-out, PROT_NONE, hole,\n"
     "beyond-the-file and garbage mappings, writes it to FILE and prints\n"
     "its CR3, what lives where, and commands to try.\n"
     "  --size N   guest RAM below the physical hole (default 128M; a 1 GiB\n"
     "             page is added when N >= 2G)\n"
     "  --la57     5-level page tables\n"
     "  --elf      write an ELF core (the default and only format: the\n"
     "             other commands find its layout with --layout auto)\n"
     "  --json     print the description as JSON\n"},
    {"watch", cli_cmd_watch, "show translations as they come and go",
     "usage: swapread watch IMAGE --cr3 X [options] [VA LEN]\n"
     "       [--interval T] [--count N | --duration T]\n"
     "Walks each 4 KiB chunk of [VA, VA+LEN), prints the initial state,\n"
     "then polls and prints a line per change: in (became present), out\n"
     "(became not present), moved (another GPA), changed (another\n"
     "non-present entry). Lines: UTC time, +elapsed, event, va, state.\n"
     "  --interval T   poll period (default 100ms; a bare number is ms)\n"
     "  --count N      end after N events\n"
     "  --duration T   end after T (e.g. 10s); default: until Ctrl-C\n"
     "  --json         one JSON object per line\n"
     "Without VA LEN (optionally --va A --len N): every leaf of the\n"
     "address space, through the address-space monitor: mapped, unmapped,\n"
     "changed [bits], reused, untracked; the initial state is not printed.\n"
     "  --accessed     also report accessed/dirty bits (whole-space form)\n"
     "  --swap         also report swap-slot changes (whole-space form)\n"
     "Exit 0 when it ended by count, duration or signal.\n\n" COMMON_HELP},
    {"demo", cli_cmd_demo, "a read that waits while a child pages data in",
     "usage: swapread demo [--keep DIR]\n"
     "Builds an image with paged-out pages, forks a child that pages them\n"
     "in one by one over about 3 s, and runs a waiting read (as read\n"
     "--wait) that stays pending, then completes; checks the bytes.\n"
     "  --keep DIR   build the image in DIR and keep it (default: a\n"
     "               temporary directory, removed at the end)\n"
     "Exit 0 when the read waited, completed and the bytes were right.\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const command_t* find_command(const char* name) {
  size_t k;
  for (k = 0; k < NCOMMANDS; k++)
    if (strcmp(commands[k].name, name) == 0)
      return &commands[k];
  return NULL;
}

int cli_usage(const char* cmd, FILE* out) {
  size_t k;
  if (cmd != NULL) {
    const command_t* c = find_command(cmd);
    if (c == NULL)
      return -1;
    fputs(c->help, out);
    return 0;
  }
  fputs("usage: swapread <command> [options]\n\ncommands:\n", out);
  for (k = 0; k < NCOMMANDS; k++)
    fprintf(out, "  %-10s %s\n", commands[k].name, commands[k].summary);
  fputs(
      "  help [CMD] this text, or the options of CMD\n"
      "  --version  print the version\n\n"
      "exit codes: 0 ok, 1 failure (or missing data), 2 usage error\n",
      out);
  return 0;
}

int main(int argc, char** argv) {
  const command_t* c;

  if (argc < 2) {
    cli_usage(NULL, stderr);
    return CLI_USAGE;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
    printf("swapread %s\n", sr_version_string());
    return CLI_OK;
  }
  if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    if (argc > 2 && cli_usage(argv[2], stdout) != 0) {
      fprintf(stderr, "swapread: help: unknown command '%s'\n", argv[2]);
      return CLI_USAGE;
    }
    if (argc <= 2)
      cli_usage(NULL, stdout);
    return CLI_OK;
  }
  c = find_command(argv[1]);
  if (c == NULL) {
    fprintf(stderr, "swapread: %s: unknown command\nTry 'swapread help'.\n",
            argv[1]);
    return CLI_USAGE;
  }
  return c->run(argc - 1, argv + 1);
}
