/* result.h - what became of a job: status, exit, timings, rusage, counts. */
#ifndef DROVER_JOB_RESULT_H
#define DROVER_JOB_RESULT_H

#include <stdint.h>
#include "job/job.h"

enum job_status {
  JOB_SUCCEEDED, /* exited 0 */
  JOB_FAILED,    /* non-zero exit, killed by a signal we did not send, or could not start */
  JOB_TIMED_OUT, /* killed by drover after timeout_ms */
  JOB_CANCELLED, /* killed by drover on request */
  JOB_LOST,      /* its node was lost (coordinator only): the outcome is unknown */
};

/* The exit code of a CLI waiting for a lost job: EX_TEMPFAIL (sysexits.h),
 * "a temporary failure: retrying may work". */
#define JOB_EXIT_LOST 75

enum job_stream { JOB_STDOUT = 0, JOB_STDERR = 1, JOB_SYSTEM = 2 };

struct job_progress {
  int percent;   /* -1 when no progress was reported */
  char *stage;   /* may be NULL */
  char *message; /* may be NULL */
};

struct job_result {
  enum job_status status;
  int exit_code;      /* -1 when killed by a signal or never started */
  int signal;         /* terminating signal, 0 if none */
  int64_t started_us; /* wall clock, unix us; 0 if never started */
  int64_t finished_us;
  uint64_t duration_us; /* monotonic */
  uint64_t max_rss_kb;  /* peak resident set of the job's largest process (kB) ... */
  int max_rss_known;    /* ... when 1; 0: unknown (JSON null), max_rss_kb is 0 */
  uint64_t user_us, sys_us;
  uint64_t lines[2]; /* per JOB_STDOUT / JOB_STDERR */
  uint64_t bytes[2];
  char *error; /* NULL or text: "workdir '/nope': No such file or directory" */
  struct job_progress progress;
  unsigned attempt;
  /* sandbox (issue 8): measured on the job's cgroup, when it had one. */
  uint64_t memory_peak_kb; /* all the job's processes together, at once ... */
  int memory_peak_known;   /* ... when 1; else JSON null */
  uint64_t cpu_usage_us;   /* user + system of every process that ran in it ... */
  int cpu_usage_known;     /* ... when 1 */
  uint64_t pids_peak;      /* most processes at once; 0: unknown (JSON null) */
  int oom_killed;          /* the kernel's OOM killer killed a process of the job */
};

void job_result_init(struct job_result *r);
void job_result_release(struct job_result *r);
const char *job_status_name(enum job_status s); /* "succeeded", "timed_out", ... */
/* The exit code a CLI reports for r, as timeout(1) does: the exit code; 128+N
 * for signal N; 124 on timeout; 125 when the job could not start; 75
 * (JOB_EXIT_LOST) when its node was lost. */
int job_result_exit_code(const struct job_result *r);
/* JSON document of the result for job j (heap string, caller frees):
 * {"id","name","status","exit_code","signal","started_at","finished_at",
 *  "duration_ms","max_rss_kb" (null unless max_rss_known),"cpu_user_ms","cpu_sys_ms",
 *  "stdout":{"lines","bytes"},"stderr":{"lines","bytes"},"error","progress",
 *  "attempt","memory_peak_kb","cpu_usage_ms","pids_peak" (null when not measured),
 *  "oom_killed", ...}. `extra` (may be NULL) is a jansson object merged in. */
char *job_result_to_json(const struct job *j, const struct job_result *r, void *extra);

#endif
