/* cmd.h - turns a job into what fork/exec needs: the program, argv, envp,
 * the script file, and drover's own header lines for the log. All of it is
 * built in the parent, before fork, so the child only calls execve. */
#ifndef DROVER_EXEC_CMD_H
#define DROVER_EXEC_CMD_H

#include "job/job.h"

struct cmd {
  char **argv; /* NULL-terminated; a script's ends with its file */
  char **envp; /* environ, then the job's env, then DROVER_* */
  char *path;  /* the resolved program; NULL when error is set */
  /* JOB_SYSTEM text: "$ command\n", an exec job's words shell-quoted, a
   * script as a heredoc. The command, words or script show their first
   * 4 KiB at most (cut at a UTF-8 character), then a line
   * "... (N more bytes not shown)". */
  char *header;
  char *script_path; /* script kind: private 0600 temp file (cmd_release unlinks it) */
  const char *what;  /* "exec" or "interpreter": how errors name the program */
  const char *name;  /* the program as the job wrote it (argv[0]) */
  char *error;       /* the job cannot start: "interpreter 'python9': not found" */
  int stdin_fd;      /* tool kind: a memfd holding the tool's arguments, the job's stdin; else -1 */
};

/* Builds c from j. Returns 0 (then check c->error: a job that cannot start
 * is not a runner error), -EINVAL when j lacks its command, argv or
 * interpreter, or -errno when the script file could not be written in
 * tmpdir (NULL: $TMPDIR or /tmp). c must be cmd_release()d either way. */
int cmd_build(struct cmd *c, const struct job *j, const char *tmpdir);
/* The job error for a child that failed at spawn step `step` with errno
 * err (heap string): "workdir '/nope': No such file or directory". */
char *cmd_spawn_error(const struct cmd *c, const struct job *j, int step, int err);
/* Frees c and unlinks its script file unless the caller took script_path. */
void cmd_release(struct cmd *c);

/* Deep copy of a job (freed by job_release). */
void cmd_job_copy(struct job *dst, const struct job *src);

#endif
