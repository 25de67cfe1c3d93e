/* cgroup.h - one cgroup per job: where the runner's groups go (cgroup v2,
 * v1 or both, "hybrid" as systemd calls it), a job's group with its limits,
 * joining it before exec, killing everything in it, its figures, removal.
 *
 * Layout, in every hierarchy used: BASE/job-ATTEMPT-ID per job, BASE/runner
 * for the runner itself when it moves into a leaf (sbx_cgroot_enter). BASE is
 * the runner's own cgroup (from /proc/self/cgroup) plus "drover-NAME", or
 * --cgroup-parent, a path from the hierarchy's root. Which hierarchy does
 * what:
 *  - v2 (the unified hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified):
 *    tracking and killing (cgroup.kill, cgroup.events), CPU figures
 *    (cpu.stat); limits and memory figures too when the memory, pids and cpu
 *    controllers are enabled for BASE's children;
 *  - v1 (one hierarchy per controller): memory, pids, cpu (cfs quota),
 *    cpuacct and freezer for what v2 does not do here.
 * Everything is synchronous file I/O on cgroupfs (no disk), done on the
 * loop thread. */
#ifndef DROVER_SANDBOX_CGROUP_H
#define DROVER_SANDBOX_CGROUP_H

#include <stdint.h>

#include "job/job.h"
#include "job/result.h"

enum sbx_cg_mode {
  SBX_CG_AUTO = 0, /* detect: v2, v1 or both */
  SBX_CG_V1,       /* v1 controllers only (the unified hierarchy left alone) */
  SBX_CG_V2,       /* the unified hierarchy only */
  SBX_CG_OFF,      /* no cgroups: jobs are process groups */
};

/* "auto", "v1", "v2", "off" (a --cgroups value; anything else: auto). */
enum sbx_cg_mode sbx_cg_mode_parse(const char *s);

/* v1 controllers, in the order their groups are made. */
enum { SBX_V1_MEMORY, SBX_V1_PIDS, SBX_V1_CPU, SBX_V1_CPUACCT, SBX_V1_FREEZER, SBX_V1_N };

struct sbx_cgroot {
  char *v2;                    /* BASE in the unified hierarchy; NULL: not used */
  int v2_mem, v2_pids, v2_cpu; /* controllers enabled for BASE's children */
  char *v1[SBX_V1_N];          /* BASE per v1 controller; NULL: not used */
  int v1_lazy[SBX_V1_N];       /* BASE not made yet: made when a job or the runner needs it */
  char *why;                   /* when nothing is usable: why (for the log), else NULL */
  /* Where the runner was before sbx_cgroot_enter (it goes back on release). */
  char *orig_v2, *orig_v1[SBX_V1_N];
  int entered;
  int given_base; /* BASE is --cgroup-parent's: left in place on release */
};

/* Finds the hierarchies and makes BASE in each that is writable. name is
 * the "drover-NAME" part (used when parent is NULL), parent a path like
 * "/drover.slice/jobs" from each hierarchy's root. Never fails: root ends up
 * with what works, and when nothing does (no cgroupfs, not writable, mode
 * SBX_CG_OFF), with nothing and root->why set. */
void sbx_cgroot_init(struct sbx_cgroot *root, enum sbx_cg_mode mode, const char *parent,
                     const char *name);
/* Removes BASE where it is empty (best effort) and frees. */
void sbx_cgroot_release(struct sbx_cgroot *root);
/* 1 when jobs get a cgroup at all. */
int sbx_cgroot_usable(const struct sbx_cgroot *root);
/* Which limits can be set: 1 when the controller is usable. */
int sbx_cgroot_can_memory(const struct sbx_cgroot *root);
int sbx_cgroot_can_pids(const struct sbx_cgroot *root);
int sbx_cgroot_can_cpu(const struct sbx_cgroot *root);
/* A short text for the log: "v2+v1 (hybrid)", "v1", "v2", "none". */
const char *sbx_cgroot_mode_name(const struct sbx_cgroot *root);
/* Kills what is in every BASE/job-* group (left by a previous life of the
 * runner) and removes the groups. Returns how many groups were removed. */
int sbx_cgroot_sweep(struct sbx_cgroot *root);
/* For `drover run`: the sweep of sibling bases "drover-run-PID" whose PID
 * is not alive (a run killed with SIGKILL), then their removal. A PID that
 * was reused keeps its base: the sweep is conservative. Returns how many
 * bases were removed. */
int sbx_cgroot_sweep_dead_runs(struct sbx_cgroot *root);
/* Reserves bytes of memory for BASE/runner (memory.min: the kernel does not
 * reclaim it for others). 0, -ENOTSUP without the v2 memory controller
 * (cgroup v1 has no such guarantee), or -errno. */
int sbx_cgroot_reserve(struct sbx_cgroot *root, uint64_t bytes);
/* Moves the calling process into BASE/runner in each hierarchy. 0 or -errno. */
int sbx_cgroot_enter(struct sbx_cgroot *root);

/* One job's group. */
struct sbx_cgroup {
  char *v2;                  /* its directory in the unified hierarchy, or NULL */
  char *v1[SBX_V1_N];        /* per v1 controller, or NULL (a co-mounted one repeats a path) */
  int join_fd[SBX_V1_N + 1]; /* open cgroup.procs of each, -1 after the end */
  int v2_fd;                 /* the v2 directory (for CLONE_INTO_CGROUP; join_fd[0] is its
                                cgroup.procs), or -1 */
  int njoin;
  int v2_mem, v2_pids;
};

/* Makes the group of attempt `attempt` of job `id` under root with the
 * limits r (0 fields: none) and opens what the child needs to join it.
 * Returns 0, or -errno with msg (for the user) filled. A leftover group of
 * the same name (a previous life) is emptied and reused. */
int sbx_cgroup_create(struct sbx_cgroup *cg, struct sbx_cgroot *root, const char *id,
                      unsigned attempt, const struct job_resources *r, char *msg, size_t msglen);
/* SIGKILLs every process in the group, now and (v1, no cgroup.kill) until a
 * pass finds none, fork races included. Safe to call again. */
void sbx_cgroup_kill(struct sbx_cgroup *cg);
/* 1 while a process is in the group. */
int sbx_cgroup_populated(const struct sbx_cgroup *cg);
/* Fills r's cgroup figures (memory_peak, cpu_usage, user/sys, pids_peak,
 * oom_killed) from what the kernel keeps. */
void sbx_cgroup_stats(const struct sbx_cgroup *cg, struct job_result *r);
/* Removes the group (it should be empty) and frees. 0, or -errno of the
 * first rmdir that failed (the group is then left for the next sweep). */
int sbx_cgroup_destroy(struct sbx_cgroup *cg);

/* The pieces, exposed for the unit tests: the path of controller `ctl`
 * ("memory", or "" for the unified hierarchy) in a /proc/PID/cgroup text. */
int sbx_cgroup_own_path(const char *proc_cgroup, const char *ctl, char *out, size_t outlen);

#endif
