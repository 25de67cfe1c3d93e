/* main.c - `drover <command>`: one dispatch table (git's git.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "cli/cli.h"
#include "sandbox/child.h"
#include "tools/tools.h"

static const struct cli_cmd commands[] = {
    {"run", cli_run, "run one command here as a job, output live, its exit code"},
    {"agent", cli_agent,
     "run jobs for a coordinator (--coordinator) or from a folder (--jobs-dir)"},
    {"server", cli_server, "run the coordinator: agents connect, the CLI submits jobs"},
    {"dev", cli_dev, "a coordinator and one agent in one process: try drover here"},
    {"job", cli_job,
     "jobs on a coordinator: run, submit, status, wait, logs, cancel, list, events"},
    {"node", cli_node, "the nodes of a coordinator: list, drain"},
    {"token", cli_token, "make a registration token for agents (token create)"},
    {"tool-exec", tools_exec_main,
     "what a tool job runs: one tool call, arguments on stdin (docs/tools.md)"},
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

static void subcommands_usage(FILE *f, const char *group, const char *about,
                              const struct cli_cmd *cmds, size_t n)
{
  fprintf(f, "usage: drover %s <subcommand> [options] [args]\n\n%s\n\nsubcommands:\n", group,
          about);
  for (size_t i = 0; i < n; i++)
    fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].summary);
  fprintf(f, "\n'drover %s <subcommand> --help' describes its options.\n", group);
}

int cli_subcommands(const char *group, const char *about, const struct cli_cmd *cmds, size_t n,
                    int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "error: 'drover %s' needs a subcommand\n", group);
    subcommands_usage(stderr, group, about, cmds, n);
    return CLI_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    subcommands_usage(stdout, group, about, cmds, n);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < n; i++)
    if (!strcmp(argv[1], cmds[i].name))
      return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "error: unknown subcommand 'drover %s %s'\n", group, argv[1]);
  subcommands_usage(stderr, group, about, cmds, n);
  return CLI_EXIT_USAGE;
}

/* A closed fd 0, 1 or 2 would be handed to the next open(): libuv's epoll
 * fd or a job's pipe would become "stdin" or "stdout", and writes meant for
 * the terminal would land in it (libuv asserts on it). /dev/null takes the
 * place of a closed one. open returns the lowest free fd, so going up from
 * 0 puts each on its own number. Returns 0, or -1 when /dev/null cannot be
 * opened. */
static int stdio_ensure_open(void)
{
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    int n = open("/dev/null", O_RDWR);
    if (n < 0)
      return -1;
    if (n != fd) { /* cannot happen when fd was the lowest free one; be sure */
      dup2(n, fd);
      close(n);
    }
  }
  return 0;
}

int main(int argc, char **argv)
{
  /* PID 1 of a job's PID namespace: drover re-executed (sandbox/child.h). */
  if (argc > 0 && strcmp(argv[0], SBX_INIT_ARGV0) == 0)
    return sbx_init_main(argc, argv);
  if (stdio_ensure_open() < 0)
    return CLI_EXIT_ERROR;
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
