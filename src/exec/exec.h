/* exec.h - runs one job as a child process on a libuv loop.
 *
 * The child gets its own process group (setsid), the job's env over the
 * runner's, its workdir, stdin from /dev/null, stdout and stderr on two pipes
 * that the loop drains continuously (the child never blocks on drover), and a
 * third pipe whose number is in $DROVER_PROGRESS_FD for progress lines
 * "PERCENT [STAGE] MESSAGE". Exec failure is reported back by the child
 * (see spawn.h) and becomes a job error, not a crash.
 *
 * Timeout and cancel: SIGTERM to the process group, then after kill_grace
 * SIGKILL to the group. When the main process exits, whatever is left of its
 * group is SIGKILLed, so no grandchild outlives the job; on_exit is called
 * after the child is reaped and both output pipes reached EOF (at most ~2 s
 * after the group was killed: a process that left the group may hold a pipe).
 *
 * The runner should be a child subreaper (prctl PR_SET_CHILD_SUBREAPER):
 * then the job's orphans become its children and are reaped here, by
 * process group, before on_exit; otherwise they go to init, which on some
 * machines never reaps them (zombies). */
#ifndef DROVER_EXEC_EXEC_H
#define DROVER_EXEC_EXEC_H

#include <stdint.h>
#include <uv.h>
#include "job/job.h"
#include "job/result.h"

struct exec; /* one running job; opaque */

struct exec_ops {
  /* One output line (or a part of a long one), stamped with the wall-clock
   * time it was read. stream is JOB_STDOUT, JOB_STDERR or JOB_SYSTEM (drover's
   * own lines such as "$ command" or the script header). May be NULL. */
  void (*on_line)(struct exec *e, void *ud, enum job_stream stream, int64_t ts_us, const char *data,
                  size_t len, int partial);
  /* The job reported progress (latest value is also in the result). May be NULL. */
  void (*on_progress)(struct exec *e, void *ud, const struct job_progress *p);
  /* The job is over. r is valid during the call; ownership of its strings
   * stays with the exec. The exec is freed right after this returns. */
  void (*on_exit)(struct exec *e, void *ud, const struct job_result *r);
};

struct exec_opts {
  size_t max_line;    /* 0: LINES_DEFAULT_MAX */
  const char *tmpdir; /* for script files; NULL: $TMPDIR or /tmp */
  int inherit_stdio;  /* 1: child writes straight to our fds 1 and 2 (no capture) */
};

/* Starts job j (copied: the caller may release j after this returns).
 * Returns 0 and sets *out, or a negative errno when nothing could be set up
 * (then no callback is ever called). A job that fails to start (bad workdir,
 * missing interpreter, exec failure) is NOT an error here: it completes through
 * on_exit with status JOB_FAILED, exit_code -1 and r->error set. */
int exec_start(uv_loop_t *loop, const struct job *j, const struct exec_opts *opts,
               const struct exec_ops *ops, void *ud, struct exec **out);
/* Cancels: TERM to the group, KILL after grace_ms (UINT64_MAX: the job's
 * kill_grace). Status becomes JOB_CANCELLED unless the job already finished.
 * Calling it again with a shorter grace shortens the wait. */
void exec_cancel(struct exec *e, uint64_t grace_ms);
int exec_pid(const struct exec *e);
/* Makes the calling process the reaper of its jobs' orphans
 * (PR_SET_CHILD_SUBREAPER), so a grandchild killed with its job's group is
 * reaped here instead of lingering as a zombie when PID 1 does not reap.
 * Call once at start in every command that runs jobs. Returns 0 or -errno. */
int exec_become_subreaper(void);
const struct job *exec_job(const struct exec *e);

#endif
