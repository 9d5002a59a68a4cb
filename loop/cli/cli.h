/* swapread CLI — the commands and the exit codes they share.
 *
 * Every command is a function taking its own argv (argv[0] is the command
 * name) and returning an exit code: CLI_OK, CLI_FAIL (the operation ran and
 * failed, or found data missing) or CLI_USAGE (the command line was wrong;
 * nothing was done). Commands print errors on stderr as
 * "swapread: <what>: <reason>".
 */
#ifndef SR_CLI_H
#define SR_CLI_H

#include <stdio.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

int cli_cmd_translate(int argc, char** argv);
int cli_cmd_read(int argc, char** argv);
int cli_cmd_maps(int argc, char** argv);
int cli_cmd_mkimage(int argc, char** argv);
int cli_cmd_watch(int argc, char** argv);
int cli_cmd_demo(int argc, char** argv);

/* Prints the usage of `cmd` (NULL: the overview) to `out`. Returns 0, or
 * -1 when `cmd` is not a command. */
int cli_usage(const char* cmd, FILE* out);

#endif /* SR_CLI_H */
