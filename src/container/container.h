/* container.h - runs one job in a container through the Docker Engine API
 * (docs/containers.md), with the same contract as exec.h: output lines (or
 * raw bytes) per stream, timeout and cancel (a signal, kill_grace, SIGKILL),
 * one result through on_exit.
 *
 * Steps: create the container (labels drover.job=<id>, drover.agent=<node>;
 * when the engine lacks the image, pull it with its progress as JOB_SYSTEM
 * lines, then create again), attach to its stdout and stderr, start it, wait
 * for it, read its state (exit code, OOMKilled), remove it. The container is
 * removed whatever happens, also on cancel before it started. When the
 * engine is missing, or refuses the image (not found, bad name), the job
 * fails without starting: exit_code -1, the engine's reason in r->error, so
 * a CLI exits 125 (job_result_exit_code).
 *
 * Exit codes: the container's. A container that drover killed (timeout,
 * cancel) or that the OOM killer ended, with an exit status 128+N, has
 * signal N and exit_code -1, as a process would (so 137 for OOM), and
 * r->oom_killed is set from the container's state. */
#ifndef DROVER_CONTAINER_CONTAINER_H
#define DROVER_CONTAINER_CONTAINER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "job/job.h"
#include "job/result.h"

struct container;

struct container_ops {
  /* As exec_ops.on_line: one line or part (flags: LINES_*), JOB_SYSTEM for
   * drover's own lines (the image, pull progress). In raw mode only
   * JOB_SYSTEM lines come here. */
  void (*on_line)(void *ud, enum job_stream s, int64_t ts_us, const char *data, size_t len,
                  unsigned flags);
  /* Raw mode: the bytes of stdout or stderr as they came. May be NULL. */
  void (*on_data)(void *ud, enum job_stream s, const char *data, size_t len);
  /* The job is over and its container removed (or its removal failed:
   * then logged). r is valid during the call; the container is freed
   * afterwards, its loop handles asynchronously. */
  void (*on_exit)(void *ud, const struct job_result *r);
};

struct container_opts {
  const char *host; /* the engine: "unix:///path" or NULL (see dockerhttp.h) */
  const char *node; /* the value of the drover.agent label; NULL or "": no such label */
  size_t max_line;  /* 0: LINES_DEFAULT_MAX */
  int raw_output;   /* as exec_opts.raw_output */
  /* Not NULL: the runner's policy refused the job; it fails at once with
   * this reason, as when the engine cannot be reached. */
  const char *refuse;
};

/* Starts job j (kind JOB_CONTAINER; read during the call only). Returns 0
 * and sets *out; every failure, the engine's included (and a host that is
 * not a unix socket), comes through on_exit, from the loop. */
int container_start(uv_loop_t *loop, const struct job *j, const struct container_opts *opts,
                    const struct container_ops *ops, void *ud, struct container **out);
/* Stops the job: SIGTERM to the container, SIGKILL after grace_ms
 * (UINT64_MAX: the job's kill_grace); status cancelled. Before the container
 * started, it is never started. A second call can only shorten the grace. */
void container_cancel(struct container *c, uint64_t grace_ms);
/* Stops (paused != 0) or resumes reading the container's output. */
void container_pause_output(struct container *c, int paused);

#endif
