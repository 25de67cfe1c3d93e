/* pool.h - runs jobs with at most `slots` at once: higher priority first,
 * then first come. Owns the queue; exec does the running. */
#ifndef DROVER_EXEC_POOL_H
#define DROVER_EXEC_POOL_H

#include <stddef.h>
#include <uv.h>
#include "exec/exec.h"

struct pool;

struct pool_ops {
  /* A slot is free and j is next: called just before its process is made, so
   * that a marker written here exists before the job can have done anything.
   * May be NULL. */
  void (*on_before_start)(struct pool *p, void *ud, const struct job *j);
  /* j's process was started (exec_start returned; e is the running exec, whose
   * program may already have run, or failed to start: then on_done follows).
   * May be NULL. */
  void (*on_start)(struct pool *p, void *ud, struct exec *e, const struct job *j);
  /* exec.h's on_line for job j; flags holds its LINES_* bits (an int here
   * so that existing handlers keep their type). May be NULL. */
  void (*on_line)(struct pool *p, void *ud, const struct job *j, enum job_stream s, int64_t ts_us,
                  const char *data, size_t len, int flags);
  void (*on_progress)(struct pool *p, void *ud, const struct job *j, const struct job_progress *pr);
  /* Finished, timed out, cancelled (also while still queued: then r->started_us
   * is 0), or failed to start. */
  void (*on_done)(struct pool *p, void *ud, const struct job *j, const struct job_result *r);
};

struct pool *pool_new(uv_loop_t *loop, unsigned slots, const struct exec_opts *opts,
                      const struct pool_ops *ops, void *ud);
/* Queues j; the pool takes ownership of j's contents (the struct is moved,
 * the caller must not release it). Starts it now when a slot is free. */
void pool_submit(struct pool *p, struct job *j);
/* pool_submit with fd_stdin (>= 0) as the job's stdin instead of /dev/null
 * (exec_opts.fd_stdin): the pool owns the fd from this call on and closes it
 * once the job's process has its own copy, or when the job ends without one. */
void pool_submit_stdin(struct pool *p, struct job *j, int fd_stdin);
/* Cancels a queued or running job by id. Returns 0, or -ENOENT. */
int pool_cancel(struct pool *p, const char *id, uint64_t grace_ms);
/* The same for one attempt of the job (attempt 0: any): two attempts of a job
 * may be in one pool at once, a stale one being stopped beside its successor. */
int pool_cancel_attempt(struct pool *p, const char *id, unsigned attempt, uint64_t grace_ms);
/* Stops starting queued jobs (they stay queued) / starts again. */
void pool_pause(struct pool *p, int paused);
/* Cancels everything queued and running. */
void pool_cancel_all(struct pool *p, uint64_t grace_ms);
unsigned pool_running(const struct pool *p);
size_t pool_queued(const struct pool *p);
/* Frees the pool; it must be idle (nothing running). */
void pool_free(struct pool *p);

#endif
