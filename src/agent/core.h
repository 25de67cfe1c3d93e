/* core.h - the agent core: runs jobs on this machine for a front-end and
 * knows nothing of where they come from (the jobs folder, jobsdir.c; the
 * coordinator link, session.c) or where their output goes.
 *
 * A front-end embeds a struct core_job in its own record of a job, fills in
 * its id, attempt, sink and stdin, and hands it to core_submit with the job.
 * The core runs it through a pool (`slots` at once, higher priority first,
 * then first come), calls the front-end back just before the job's process is
 * made, once it exists, on progress and when the job is over, and hands every
 * output line to the job's sink. Jobs are told apart by (id, attempt): two
 * attempts of one job may be here at once (a stale one being stopped beside
 * its successor).
 *
 * A job dies with its agent: its first process gets SIGKILL from the kernel
 * when the agent dies (exec.h), and the attempt record (struct core_attempt,
 * kept by the front-end where a restart finds it) lets the next life of the
 * agent kill what is left of its process group (core_attempt_kill).
 *
 * Shutdown (core_shutdown) is phased: no queued job starts any more, running
 * jobs get a time to finish, then are cancelled (TERM, their kill grace,
 * KILL), and the front-end is told when no job is left. */
#ifndef DROVER_AGENT_CORE_H
#define DROVER_AGENT_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/proc.h"
#include "job/job.h"
#include "job/result.h"

struct agent_core;

/* What identifies a job attempt's processes after the agent restarted. A
 * process id alone does not (pids are recycled); the leader's start time and
 * the boot id with it do (see proc.h). */
struct core_attempt {
  unsigned n;                      /* the attempt number */
  int pgid;                        /* its process (its own group's leader); 0: not made yet */
  uint64_t start;                  /* the leader's start time, clock ticks after boot */
  char boot[PROC_BOOT_ID_LEN + 1]; /* the boot it ran in */
};

/* The record as one line of text: "N" before the process exists, "N PGID
 * START BOOT_ID" once it does. buf should hold 128 bytes. */
void core_attempt_format(const struct core_attempt *a, char *buf, size_t len);
/* Parses such a text (a trailing newline is fine) into a (all zero on junk;
 * pgid 0 when only "N" is there or the rest does not parse). */
void core_attempt_parse(const char *text, struct core_attempt *a);
/* Kills what is left of attempt a of job job_id, started by a previous life
 * of the agent: nothing when the attempt never had a process or ran before a
 * reboot, else every live member of its process group (proc_group_kill, with
 * DROVER_JOB_ID=job_id as the second sign), waiting up to timeout_ms for them
 * to be gone. Logs what it did. Returns the number of processes killed
 * (0: none was left), -ETIMEDOUT when some were still alive at the timeout,
 * or another -errno when /proc could not be read (logged; nothing killed). */
int core_attempt_kill(const char *job_id, const struct core_attempt *a, unsigned timeout_ms);

/* Where a job's output lines go: a log file (joblog.c), batches for the
 * coordinator (ship.c). */
struct core_sink {
  /* One line or part of a long line, as exec.h's on_line (flags: LINES_*);
   * data is valid during the call. May be NULL: lines are dropped. */
  void (*line)(void *impl, enum job_stream s, int64_t ts_us, const char *data, size_t len,
               unsigned flags);
  void *impl;
};

/* One job attempt in the core, embedded in the front-end's record. The
 * front-end sets the first four fields before core_submit, and may change
 * sink at any time; the core sets the others. */
struct core_job {
  char id[129];
  unsigned attempt;
  struct core_sink sink;
  int stdin_fd; /* the job's stdin, taken by the core at core_submit; -1: /dev/null */

  int started; /* its process was made (or failed to start) */
  int pid;     /* its process, the leader of its own group; 0 before */

  /* the core's own */
  struct core_job *prev, *next;
  const struct job *pj; /* the pool's copy of the job */
};

struct core_ops {
  /* cj is next: its process is about to be made. An attempt record written
   * here ("N") exists before the job can have done anything. May be NULL. */
  void (*before_start)(struct agent_core *c, void *ud, struct core_job *cj);
  /* Its process exists (cj->pid). a is the record that identifies it after
   * a restart (a->pgid 0 when /proc could not tell). A job that could not
   * start comes here too, with pid 0, and `done` follows. May be NULL. */
  void (*started)(struct agent_core *c, void *ud, struct core_job *cj,
                  const struct core_attempt *a);
  /* The job reported progress. May be NULL. */
  void (*progress)(struct agent_core *c, void *ud, struct core_job *cj,
                   const struct job_progress *p);
  /* The job is over: finished, failed to start, timed out, or cancelled
   * (also while queued: then r->started_us is 0 and cj->started 0). j and r
   * are valid during the call. The core no longer knows cj afterwards: the
   * front-end may free it here. */
  void (*done)(struct agent_core *c, void *ud, struct core_job *cj, const struct job *j,
               const struct job_result *r);
  /* Shutdown entered phase 2 (the running jobs' time is over, or a second
   * core_shutdown) or 3 (a third: killing). May be NULL. */
  void (*phase)(struct agent_core *c, void *ud, int phase);
};

struct core_opts {
  unsigned slots;               /* jobs at once; 0: the number of CPUs */
  uint64_t shutdown_timeout_ms; /* how long shutdown lets running jobs run */
  struct sbx *sandbox;          /* the runner's sandbox (exec_opts.sandbox); NULL: none */
  /* Container jobs: the Docker engine and the drover.agent label of their
   * containers (exec_opts; the strings must outlive the core). */
  const char *docker_host;
  const char *docker_node;
};

typedef void (*core_shutdown_cb)(struct agent_core *c, void *ud);
typedef void (*core_close_cb)(void *ud);

struct agent_core *core_new(uv_loop_t *loop, const struct core_opts *opts,
                            const struct core_ops *ops, void *ud);
struct tools_policy;
/* What tool jobs may do here: tools_job_prepare with p at core_submit. Not
 * copied: p must outlive the core. Without it (NULL, the default) a tool job
 * fails to start. */
void core_set_tools(struct agent_core *c, const struct tools_policy *p);

/* Queues cj with job j (the core takes j's contents; the caller must not
 * release it) and starts it when a slot is free: before_start, started and
 * even done may be called before this returns. cj must stay valid until
 * `done`. Returns 0, or -EEXIST when (id, attempt) is already here (nothing
 * taken: the caller still owns j and cj->stdin_fd). */
int core_submit(struct agent_core *c, struct core_job *cj, struct job *j);
/* The job (id, attempt), or NULL. */
struct core_job *core_find(struct agent_core *c, const char *id, unsigned attempt);
/* Cancels cj: queued, it is done at once (before this returns); running,
 * TERM to its group and KILL after grace_ms (UINT64_MAX: the job's own kill
 * grace; 0: at once). Its result says cancelled unless it had exited. */
void core_cancel(struct agent_core *c, struct core_job *cj, uint64_t grace_ms);
/* Jobs running / queued now. */
unsigned core_running(const struct agent_core *c);
size_t core_queued(const struct agent_core *c);
/* Every job in the core, newest first (for iterating: NULL ends). */
struct core_job *core_jobs(const struct agent_core *c);
unsigned core_slots(const struct agent_core *c);

/* Graceful stop. The first call: queued jobs are not started any more (the
 * front-end may cancel them itself first; those still queued are cancelled),
 * running jobs get shutdown_timeout_ms, then are cancelled with their kill
 * grace (phase 2). A second call cancels them at once (phase 2), a third
 * kills them (phase 3). cb (the first call's) runs from the loop once no job
 * is left and no hold (core_hold) is out. */
void core_shutdown(struct agent_core *c, core_shutdown_cb cb, void *ud);
/* 0: not shutting down; 1: waiting for running jobs; 2: cancelling; 3: killing. */
int core_shutdown_phase(const struct agent_core *c);
/* Work of the front-end that shutdown must wait for (a result being
 * written): core_hold once per piece, core_unhold when it is done. */
void core_hold(struct agent_core *c);
void core_unhold(struct agent_core *c);

/* Frees the core once its handles are closed, then calls cb(ud) (may be
 * NULL) from the loop. No job may be left (shut down, or never used). */
void core_close(struct agent_core *c, core_close_cb cb, void *ud);

#endif
