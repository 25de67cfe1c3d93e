/* cmdline.c - words after `--` to a job's command (see cmdline.h). */
#include "job/cmdline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static void clear_command(struct job *j)
{
  free(j->command);
  j->command = NULL;
  if (j->argv) {
    for (size_t i = 0; i < j->argc; i++)
      free(j->argv[i]);
    free(j->argv);
  }
  j->argv = NULL;
  j->argc = 0;
}

int job_set_command(struct job *j, int argc, char *const argv[], enum job_cmd_mode mode)
{
  if (argc < 1)
    return -EINVAL;
  clear_command(j);
  /* Several words keep their boundaries: joining them into one shell line
   * would let a shell split `sh -c 'exit 3'` again (the ssh pitfall). */
  if (mode == JOB_CMD_EXEC || (mode == JOB_CMD_AUTO && argc > 1)) {
    j->kind = JOB_EXEC;
    j->argc = (size_t)argc;
    j->argv = xcalloc((size_t)argc + 1, sizeof *j->argv);
    for (int i = 0; i < argc; i++)
      j->argv[i] = xstrdup(argv[i]);
    return 0;
  }
  size_t len = 0;
  for (int i = 0; i < argc; i++)
    len += strlen(argv[i]) + 1;
  char *cmd = xmalloc(len), *p = cmd;
  for (int i = 0; i < argc; i++) {
    size_t n = strlen(argv[i]);
    if (i)
      *p++ = ' ';
    memcpy(p, argv[i], n);
    p += n;
  }
  *p = '\0';
  j->kind = JOB_SHELL;
  j->command = cmd;
  return 0;
}
