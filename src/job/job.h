/* job.h - the job document: one JSON schema for a job, wherever it comes from
 * (a file in a jobs directory, `drover job submit -f`, the REST API).
 * docs/job-spec.md is the user-facing description; keep both in step. */
#ifndef DROVER_JOB_JOB_H
#define DROVER_JOB_JOB_H

#include <stddef.h>
#include <stdint.h>
#include "base/id.h"

enum job_kind { JOB_SHELL, JOB_EXEC, JOB_SCRIPT, JOB_CONTAINER, JOB_TOOL };

#define JOB_DEFAULT_TIMEOUT_MS    (60u * 60u * 1000u) /* 1h  */
#define JOB_DEFAULT_KILL_GRACE_MS (10u * 1000u)       /* 10s */

struct job_kv {
  char *key;
  char *value;
};

/* ---- sandbox: limits and isolation (issue 8; docs/sandbox.md) ---- */

/* Limits of the job's cgroup; 0 in a field: no limit of that kind. */
struct job_resources {
  uint64_t memory_bytes; /* "memory": "256M" */
  double cpus;           /* "cpus": 1.5 (CPU time per wall second) */
  uint32_t pids;         /* "pids": 100 (processes and threads at once) */
};

/* A path bound into a job that has a mount namespace. */
struct job_mount {
  char *src; /* absolute path on the host */
  char *dst; /* absolute path the job sees */
  int read_only;
};

enum job_network { JOB_NET_HOST = 0, JOB_NET_NONE };

/* Opt-in isolation; all zero: none (the job shares the runner's view). */
struct job_isolation {
  enum job_network network; /* "network": "none": own namespace, only lo */
  int read_only;            /* "/" read-only, private /tmp, workdir writable ... */
  int read_only_workdir;    /* ... unless this */
  struct job_mount *mounts; /* "mounts": ["SRC:DST", "SRC:DST:ro"] */
  size_t nmounts;
  char *user;        /* "user": name or uid[:gid]; NULL: the runner's */
  int pid_namespace; /* own PID namespace, /proc remounted */
  char *hostname;    /* own UTS namespace with this name; NULL: none */
  uint64_t tmp_size; /* bytes of the private /tmp tmpfs; 0: JOB_DEFAULT_TMP_SIZE */
};

#define JOB_DEFAULT_TMP_SIZE (64ull << 20)

/* 1 when iso asks for anything at all. */
int job_isolation_any(const struct job_isolation *iso);
/* 1 when the job needs a mount namespace (read_only, mounts, pid_namespace). */
int job_isolation_mount_ns(const struct job_isolation *iso);
/* Deep copy (d is overwritten, not released) and release. */
void job_isolation_copy(struct job_isolation *d, const struct job_isolation *s);
void job_isolation_release(struct job_isolation *iso);
/* Parses "SRC:DST[:ro]" (both absolute) into m; 0, or -1 with a message for
 * the user in err. */
int job_mount_parse(const char *text, struct job_mount *m, char *err, size_t errlen);

struct job {
  char id[129]; /* given (id_valid) or a generated UUIDv7 */
  char *name;   /* NULL when absent */
  enum job_kind kind;
  char *command; /* shell */
  char **argv;   /* exec: NULL-terminated, argc entries */
  size_t argc;
  char *interpreter;  /* script: e.g. "python3" or "/usr/bin/env node" */
  char *script;       /* script: the content */
  struct job_kv *env; /* extra environment, applied over drover's own */
  size_t nenv;
  char *workdir;          /* NULL: the runner's working directory */
  uint64_t timeout_ms;    /* 0: no timeout; default 1h */
  uint64_t kill_grace_ms; /* TERM -> KILL grace; default 10s */
  int priority;           /* higher runs first; default 0 */
  char *idempotency_key;
  struct job_kv *labels;
  size_t nlabels;
  unsigned attempt; /* 1 for the first run; set by the runner, not the document */
  /* sandbox (issue 8) */
  struct job_resources resources;
  struct job_isolation isolation;
  /* container (issue 9; docs/containers.md): the image to run command (sh -c)
   * or argv in, or its own default command when neither is set */
  char *image;
  /* tool (docs/tools.md): a built-in tool and its arguments. A tool job has
   * no command, env or workdir of its own. */
  char *tool;       /* "file_read", ... (tools_known checks the name when it runs) */
  char *tool_args;  /* the arguments: a JSON object's compact text; NULL means {} */
  char **tool_argv; /* set by the runner (tools_job_prepare), not the document: the
                     * program and words that perform the tool, NULL-terminated */
};

/* Where a document was wrong. line and column are 1-based, 0 when unknown;
 * field is the JSON path of the offending field ("timeout", "env.PATH",
 * "argv[2]"), empty for syntax errors. */
struct job_error {
  int line, column;
  char field[128];
  char msg[256];
};

/* Parses a job document (JSON text, len bytes, need not be NUL-terminated)
 * into j, which the caller provides and must job_release() on success.
 * Unknown fields are errors (a typo must not be silently ignored), and so are
 * the fields that later versions give a meaning ("container", "retries",
 * "capabilities", "secrets"): "not supported
 * by this version of drover", since running without them would pretend a
 * limit holds. Durations are duration strings or numbers of seconds; a
 * positive number below 1 ms becomes 1 ms (only 0 means no limit). A byte
 * order mark and NUL bytes are errors that say so. A missing id is generated.
 * Returns 0, or -1 with err filled and j left empty. */
int job_parse(struct job *j, const char *text, size_t len, struct job_error *err);
/* Reads and parses a file of at most max bytes: never through a symbolic
 * link, never from anything but a regular file (a FIFO is not waited on),
 * never reading more than max + 1 bytes. These refusals and I/O errors are
 * reported in err too (no position). */
int job_load_file(struct job *j, const char *path, size_t max, struct job_error *err);
/* Formats err for a user: "line 3, column 7: \"timeout\" must be a duration like \"30s\"".
 * With origin (e.g. "job file 'jobs/a.json'") it is prefixed: "job file 'jobs/a.json': line 3...".
 */
void job_error_format(const struct job_error *err, const char *origin, char *buf, size_t len);

/* Makes an empty job with defaults (generated id, shell kind, 1h timeout, 10s grace). */
void job_init(struct job *j);
void job_release(struct job *j);

/* Serialises j back to a JSON document (heap string, caller frees) that
 * job_parse() reads to an equal job. */
char *job_to_json(const struct job *j);
const char *job_kind_name(enum job_kind k);

#endif
