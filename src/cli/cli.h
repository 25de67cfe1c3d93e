/* cli.h - the command table: every `drover <command>` is one function. */
#ifndef DROVER_CLI_CLI_H
#define DROVER_CLI_CLI_H

#include <stddef.h>

/* Exit codes scripts can rely on (besides a job's own code from `drover run`). */
#define CLI_EXIT_OK    0
#define CLI_EXIT_ERROR 1 /* the command failed */
#define CLI_EXIT_USAGE 2 /* bad flag or argument; usage was printed */

/* argv[0] is the command name ("run"); returns the process exit code. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

struct cli_cmd {
  const char *name;
  cli_cmd_fn fn;
  const char *summary;
};

int cli_run(int argc, char **argv);
int cli_agent(int argc, char **argv);
int cli_server(int argc, char **argv);
int cli_dev(int argc, char **argv);
int cli_job(int argc, char **argv);
int cli_node(int argc, char **argv);
int cli_token(int argc, char **argv);

/* 1 when addr ("HOST:PORT", "unix:PATH") is loopback or a unix socket: the
 * only places where plain h2c without authentication is acceptable. */
int cli_addr_is_local(const char *addr);

/* `drover GROUP <subcommand>`: runs the one of cmds (n of them) named by
 * argv[1] with argv + 1, or prints the group's usage (about: one line on
 * what the group works on; the summaries of cmds) for -h, --help and help
 * (exit 0), no subcommand or an unknown one (an error first, exit 2). */
int cli_subcommands(const char *group, const char *about, const struct cli_cmd *cmds, size_t n,
                    int argc, char **argv);

struct cfg_opt;
/* After a bad flag or argument: prints "error: <msg>" and the command's usage
 * to stderr, and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *args, const char *summary,
                    const struct cfg_opt *opts, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
