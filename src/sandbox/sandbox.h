/* sandbox.h - what a runner (`drover run`, an agent) gives every job it
 * runs: its own cgroup (limits, accounting, kill-all at the end), the
 * runner's defaults, maxima and required isolation, and the per-job
 * preparation that exec/spawn applies in the child (child.h).
 * docs/sandbox.md says what each option guarantees on cgroup v1 and v2.
 *
 * Use: sbx_new once per runner (it detects the cgroup layout and makes the
 * runner's base group), sbx_sweep at an agent's start, then per job
 * sbx_job_new before the spawn (it may refuse the job with a message),
 * sbx_job_child for the spawn, sbx_job_kill when the job's main process is
 * gone or its time is up, sbx_job_populated until 0, sbx_job_finish for the
 * figures, sbx_job_free. */
#ifndef DROVER_SANDBOX_SANDBOX_H
#define DROVER_SANDBOX_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "job/job.h"
#include "job/result.h"
#include "sandbox/cgroup.h"
#include "sandbox/child.h"

struct sbx_config {
  enum sbx_cg_mode cgroups;  /* SBX_CG_AUTO: detect */
  const char *cgroup_parent; /* NULL: the runner's own cgroup + "/drover-" name */
  const char *name;          /* "run-1234", "agent-5f3a..." */
  int enter;                 /* move the runner into BASE/runner (agents: v2's rule, protection) */
  int protect;               /* agents: lower the runner's oom_score_adj, raise the jobs' */
  uint64_t reserve_memory;   /* with enter: memory.min of the runner's group (v2 only) */
  struct job_resources defaults; /* for a job that sets no such limit; 0: none */
  struct job_resources maxima;   /* the most a job may ask for; 0: no maximum */
  struct job_isolation required; /* forced on every job (network, read_only, pid_namespace) */
  const char *log_what;          /* "agent", "run": for the fallback log line */
};

struct sbx;

/* Makes the runner's sandbox. Never fails for want of cgroups (jobs are then
 * process groups, said once in the log); returns 0, or -1 with err filled
 * for a configuration that cannot work (a --cgroup-parent that cannot be
 * made while cgroups exist). */
int sbx_new(const struct sbx_config *cfg, struct sbx **out, char *err, size_t errlen);
/* Removes the runner's base group where empty and frees. */
void sbx_free(struct sbx *s);
/* Kills and removes job groups left by a previous life (see cgroup.h).
 * Returns how many were removed. */
int sbx_sweep(struct sbx *s);
/* For a long-lived runner (an agent, drover dev): starts a small process
 * that, once the runner is gone (even by SIGKILL), kills what is left in
 * its job groups and removes them, as sbx_sweep at the next start would.
 * Call before the runner starts threads. Returns 0 (also when jobs get no
 * cgroups: nothing to watch), or a negative errno. */
int sbx_watchdog(struct sbx *s);
/* "v2+v1 (hybrid)", "v1", "v2", "none". */
const char *sbx_mode_name(const struct sbx *s);

/* Makes a node's capability list (heap array of heap strings, *n of them,
 * as agent/metrics.c makes it) say what the sandbox gives: "cgroup.v1" and
 * "cgroup.v2" only for the hierarchies jobs really get groups in (s NULL or
 * without cgroups: neither), "sandbox.isolation" when isolation can be
 * given (a root runner). */
void sbx_capabilities_adjust(const struct sbx *s, char ***caps, size_t *n);
/* Parses "network,read-only,pid-namespace" (--require-isolation) into iso:
 * 0, or -1 with a message in err. */
int sbx_parse_required(const char *list, struct job_isolation *iso, char *err, size_t errlen);
/* Fills iso with what --isolate means: network none, read-only root with a
 * private /tmp, a PID namespace. */
void sbx_isolate_all(struct job_isolation *iso);

struct sbx_job;

/* For a job the runner hands to something else (a container job, which the
 * Docker engine limits and isolates): writes the runner's defaults and
 * required isolation into j and checks it against the maxima. Returns 0, or
 * -1 with *error (heap, for the user). s NULL: 0, nothing done. */
int sbx_job_policy(const struct sbx *s, struct job *j, char **error);
/* Prepares job j (exec's own copy: the runner's defaults and required
 * isolation are written into it) whose program is path/argv. Checks it
 * against the maxima and against what this machine can give, makes its
 * cgroup with the limits, prepares the child's setup. Returns 0 and *out,
 * or -1 with *error (heap, for the user) when the job must not run:
 * "\"resources.memory\" 8G is more than this agent's maximum 4G". */
int sbx_job_new(struct sbx *s, struct job *j, const char *path, char *const *argv,
                struct sbx_job **out, char **error);
/* What spawn's child applies (child.h). Valid until sbx_job_free. */
const struct sbx_child *sbx_job_child(const struct sbx_job *sj);
/* 1 when the job has a cgroup (then kill-all and figures come from it). */
int sbx_job_has_cgroup(const struct sbx_job *sj);
/* SIGKILL to everything in the job's cgroup (nothing without one). */
void sbx_job_kill(struct sbx_job *sj);
/* 1 while a process is left in the job's cgroup (0 without one). */
int sbx_job_populated(const struct sbx_job *sj);
/* Once the job is over: its cgroup's figures into r (and max_rss_kb from the
 * cgroup's memory peak); an OOM kill makes it failed with exit 137 and an
 * error saying the memory limit was reached. Removes the cgroup. */
void sbx_job_finish(struct sbx_job *sj, struct job_result *r);
void sbx_job_free(struct sbx_job *sj);

#endif
