/* cli.h - the command table: every `drover <command>` is one function. */
#ifndef DROVER_CLI_CLI_H
#define DROVER_CLI_CLI_H

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

int cmd_run(int argc, char **argv);
int cmd_agent(int argc, char **argv);

#endif
