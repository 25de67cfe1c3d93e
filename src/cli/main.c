/* main.c - `drover <command>`: one dispatch table (git's git.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/config.h"
#include "cli/cli.h"

static const struct cli_cmd commands[] = {
    {"run", cli_run, "run one command here as a job, output live, its exit code"},
    {"agent", cli_agent, "run the jobs dropped into a folder (--jobs-dir DIR)"},
    {"server", cli_server, "run the coordinator: agents connect, the CLI submits jobs"},
    {"version", NULL, "print the version"},
};

static void usage(FILE *f)
{
  fprintf(f, "usage: drover <command> [options] [args]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n'drover <command> --help' describes a command's options.\n");
}

int cli_usage_error(const char *cmd, const char *args, const char *summary,
                    const struct cfg_opt *opts, size_t n, const char *fmt, ...)
{
  va_list ap;
  fflush(stdout);
  fputs("error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  cfg_usage(stderr, cmd, args, summary, opts, n);
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
    printf("drover %s\n", DROVER_VERSION);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (commands[i].fn && !strcmp(argv[1], commands[i].name))
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return CLI_EXIT_USAGE;
}
