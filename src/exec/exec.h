/* exec.h - runs one job as a child process on a libuv loop.
 *
 * The child gets its own process group (setsid), the job's env over the
 * runner's, its workdir, stdin from /dev/null (or the fd in exec_opts),
 * stdout and stderr on two pipes that the loop drains continuously unless
 * the owner pauses them (exec_pause_output), and a third pipe whose number
 * is in $DROVER_PROGRESS_FD for progress lines "PERCENT [STAGE] MESSAGE".
 * Exec failure is reported back by the child (see spawn.h) and becomes a job
 * error, not a crash. The job's first process is SIGKILLed by the kernel if
 * the runner dies (see spawn.h).
 *
 * Timeout and cancel: SIGTERM to the process group, then after kill_grace
 * SIGKILL to the group. When the main process exits, whatever is left of its
 * group is SIGKILLed, so no grandchild outlives the job. With a sandbox
 * that has cgroups, the same goes for every process in the job's cgroup,
 * which none can leave (setsid included), and on_exit waits until the
 * cgroup is empty; on_exit is called
 * after the child is reaped and both output pipes reached EOF. A process
 * that left the group (setsid) may hold a pipe open: 2 s after the group was
 * killed, the pipes are closed anyway (that wait does not run while output
 * is paused: then the exit waits until the owner resumes).
 *
 * The runner should be a child subreaper (exec_become_subreaper): then the
 * job's orphans become its children. Those still in the job's group are
 * reaped before on_exit; those that left it are reaped whenever they exit,
 * also after the job is over (see exec_loop_done). Otherwise they go to
 * init, which on some machines never reaps them (zombies). */
#ifndef DROVER_EXEC_EXEC_H
#define DROVER_EXEC_EXEC_H

#include <stdint.h>
#include <uv.h>
#include "job/job.h"
#include "job/result.h"

struct exec; /* one running job; opaque */

struct exec_ops {
  /* One output line (or a part of a long one), without its '\n', stamped
   * with the wall-clock time it was read. stream is JOB_STDOUT, JOB_STDERR or
   * JOB_SYSTEM (drover's own lines such as "$ command" or the script header).
   * flags are lines.h's: LINES_PARTIAL (the line continues in the next call),
   * LINES_NO_EOL (the stream ended without a newline after this line). In
   * raw_output mode only JOB_SYSTEM lines come here. May be NULL. */
  void (*on_line)(struct exec *e, void *ud, enum job_stream stream, int64_t ts_us, const char *data,
                  size_t len, unsigned flags);
  /* The job reported progress (latest value is also in the result). May be NULL. */
  void (*on_progress)(struct exec *e, void *ud, const struct job_progress *p);
  /* The job is over. r is valid during the call; ownership of its strings
   * stays with the exec. The exec is freed right after this returns. */
  void (*on_exit)(struct exec *e, void *ud, const struct job_result *r);
  /* raw_output mode: bytes of JOB_STDOUT or JOB_STDERR exactly as read from
   * the job's pipe (any size from 1 byte to 256 KiB; data valid only during
   * the call). May be NULL (the bytes are counted, then dropped). */
  void (*on_data)(struct exec *e, void *ud, enum job_stream stream, const char *data, size_t len);
};

struct exec_opts {
  size_t max_line;    /* 0: LINES_DEFAULT_MAX */
  const char *tmpdir; /* for script files; NULL: $TMPDIR or /tmp */
  int inherit_stdio;  /* 1: child writes straight to our fds 1 and 2 (no capture) */
  /* 1: stdout and stderr go to on_data as read, not cut into lines (for a
   * byte-exact passthrough). The result's counts are the same either way:
   * bytes, and lines = newlines plus 1 for a non-empty unterminated tail. */
  int raw_output;
  /* The job's stdin. 0 (the default): /dev/null. 1: fd_stdin, which the
   * caller keeps open until exec_start returns (the child gets its own
   * copy); a negative fd_stdin means /dev/null as well. */
  int set_stdin;
  int fd_stdin;
  /* The runner's sandbox (sandbox/sandbox.h): each job gets its own cgroup
   * (everything in it is killed when the job ends; limits; figures) and
   * the isolation it asks for. NULL: a job that asks for "resources" or
   * "isolation" fails to start, saying so. Not owned. */
  struct sbx *sandbox;
  /* Container jobs (kind JOB_CONTAINER, src/container): the Docker engine
   * (NULL: $DOCKER_HOST, else /var/run/docker.sock) and the value of their
   * drover.agent label (NULL: none). Read at each job's start. */
  const char *docker_host;
  const char *docker_node;
};

/* Starts job j (copied: the caller may release j after this returns). A
 * JOB_CONTAINER job runs in a container instead (container.h): the same
 * callbacks, timeout and cancel; exec_pid is 0, the container's stdin is
 * empty (opts' stdin is not read), and there are no progress lines.
 * Returns 0 and sets *out, or a negative errno when nothing could be set up
 * (then no callback is ever called). A job that fails to start (bad workdir,
 * missing interpreter, exec failure) is NOT an error here: it completes through
 * on_exit with status JOB_FAILED, exit_code -1 and r->error set. */
int exec_start(uv_loop_t *loop, const struct job *j, const struct exec_opts *opts,
               const struct exec_ops *ops, void *ud, struct exec **out);
/* Stops (paused != 0) or resumes reading the job's stdout and stderr pipes;
 * progress is still read. While paused the job blocks once a pipe is full,
 * as it would writing to a terminal that is not read, and its exit (on_exit)
 * waits until output is resumed and the pipes reach EOF. Timeout, cancel
 * and reaping go on as usual. Must not be called after on_exit. */
void exec_pause_output(struct exec *e, int paused);
/* Cancels: TERM to the group, KILL after grace_ms (UINT64_MAX: the job's
 * kill_grace). Status becomes JOB_CANCELLED unless the job's process has
 * exited already (then this does nothing). Calling it again with a shorter
 * grace shortens the wait. */
void exec_cancel(struct exec *e, uint64_t grace_ms);
int exec_pid(const struct exec *e);
/* Makes the calling process the reaper of its jobs' orphans
 * (PR_SET_CHILD_SUBREAPER), so a grandchild killed with its job's group is
 * reaped here instead of lingering as a zombie when PID 1 does not reap.
 * Call once at start in every command that runs jobs. Returns 0 or -errno.
 * Whether or not it was called, the loop's SIGCHLD watcher (open from the
 * first job, see exec_loop_done) reaps every exited child of the process
 * that is not a running job's: do not use uv_spawn on a loop that runs jobs,
 * its children would be reaped here. */
int exec_become_subreaper(void);
/* Before uv_loop_close: closes the loop's SIGCHLD watcher when no job is
 * running on it. After the last job the watcher stays open, unreferenced (it
 * does not keep uv_run going), while orphans of finished jobs are alive, so
 * that they are reaped when they exit. Run the loop once more afterwards
 * (uv_run) so the close completes. */
void exec_loop_done(uv_loop_t *loop);
const struct job *exec_job(const struct exec *e);

#endif
