/* cmdline.h - the words after `--` on a command line, as a job's command.
 * One rule for every command that takes `-- CMD...` (drover run, and later
 * drover job run|submit): one word is a shell command line, run by
 * /bin/bash -c; several words are a program and its arguments, run as they
 * are, without a shell (as srun and docker do). */
#ifndef DROVER_JOB_CMDLINE_H
#define DROVER_JOB_CMDLINE_H

#include "job/job.h"

enum job_cmd_mode {
  JOB_CMD_AUTO,  /* one word: shell; several: exec */
  JOB_CMD_SHELL, /* a shell line; several words are joined with single spaces */
  JOB_CMD_EXEC,  /* argv, even for one word */
};

/* Sets j's command from argc words (argv need not be NULL-terminated): kind
 * JOB_SHELL with j->command, or JOB_EXEC with j->argv/argc (copies; the
 * caller keeps argv). Whatever command j had is freed. Returns 0, or -EINVAL
 * when argc < 1 (j untouched). */
int job_set_command(struct job *j, int argc, char *const argv[], enum job_cmd_mode mode);

#endif
