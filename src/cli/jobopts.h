/* jobopts.h - the job options that `drover run`, `drover job run` and
 * `drover job submit` share: one table fragment, spelled the same
 * everywhere, and the job (and JobSpec) they make. Options that only mean
 * something with a coordinator (--priority, --label, --constraint,
 * --require, --max-attempts, --idempotency-key) are errors for `drover run`. */
#ifndef DROVER_CLI_JOBOPTS_H
#define DROVER_CLI_JOBOPTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "job/job.h"
#include "job/pb.h"

/* sandbox (issue 8): limits and isolation, the job's "resources" and
 * "isolation" (docs/sandbox.md). */
struct jobopts_sandbox {
  uint64_t memory;
  char *cpus; /* a decimal number; parsed by jobopts_job */
  long pids;
  char *network;
  int read_only, read_only_workdir, pid_namespace, isolate;
  struct cfg_list mounts;
  char *user;
  char *hostname;
  uint64_t tmp_size;
};

struct jobopts {
  uint64_t timeout_ms;
  uint64_t kill_grace_ms;
  struct cfg_list env;
  char *workdir;
  int exec, shell;
  char *name;
  long priority;
  struct cfg_list labels;
  struct cfg_list constraints;
  struct cfg_list require;
  long max_attempts;
  char *idempotency_key;
  struct jobopts_sandbox sbx;
  char *image; /* --image: a container job (docs/containers.md) */
  char *tool;  /* --tool NAME: a tool job (docs/tools.md) ... */
  char *args;  /* ... with --args JSON (an object) */
};

/* The table entries, for a struct `type` that holds a struct jobopts named
 * `f`. timeout_def: "0" for `drover run` (no limit, as timeout(1) has none),
 * "1h" for jobs sent to a coordinator (as job documents). */
/* clang-format off */
#define JOBOPTS_TABLE(type, f, timeout_def)                                                        \
  {"timeout", 0, CFG_DURATION, offsetof(type, f.timeout_ms), timeout_def, NULL, 0, 0, "D",         \
   "stop the job after D and exit 124 (0: no limit; below 1ms counts as 1ms)"},                    \
  {"kill-grace", 0, CFG_DURATION, offsetof(type, f.kill_grace_ms), "10s", NULL, 0, 0, "D",         \
   "on timeout or a stop signal, time from SIGTERM to SIGKILL"},                                   \
  {"env", 'e', CFG_LIST, offsetof(type, f.env), NULL, NULL, 0, 0, "K=V",                           \
   "set a variable in the job's environment"},                                                     \
  {"workdir", 'C', CFG_STRING, offsetof(type, f.workdir), NULL, NULL, 0, 0, "DIR",                 \
   "run the job in DIR"},                                                                          \
  {"exec", 0, CFG_BOOL, offsetof(type, f.exec), NULL, NULL, 0, 0, NULL,                            \
   "run the words as a program and its arguments, even a single word"},                            \
  {"shell", 0, CFG_BOOL, offsetof(type, f.shell), NULL, NULL, 0, 0, NULL,                          \
   "run the words as a bash command line, several joined by spaces"},                              \
  {"name", 0, CFG_STRING, offsetof(type, f.name), NULL, NULL, 0, 0, "NAME",                        \
   "a name for people (job list, --json)"},                                                        \
  {"priority", 0, CFG_INT, offsetof(type, f.priority), "0", NULL, -1000000, 1000000, "N",          \
   "coordinator: higher runs first"},                                                              \
  {"label", 0, CFG_LIST, offsetof(type, f.labels), NULL, NULL, 0, 0, "K=V",                        \
   "coordinator: a label of the job's own (job list --label K=V)"},                                \
  {"constraint", 0, CFG_LIST, offsetof(type, f.constraints), NULL, NULL, 0, 0, "K=V",              \
   "coordinator: run only on a node with this label"},                                             \
  {"require", 0, CFG_LIST, offsetof(type, f.require), NULL, NULL, 0, 0, "CAP",                     \
   "coordinator: run only on a node with this capability"},                                        \
  {"max-attempts", 0, CFG_INT, offsetof(type, f.max_attempts), "1", NULL, 1, 100, "N",             \
   "coordinator: runs allowed when a node running the job is lost"},                               \
  {"idempotency-key", 0, CFG_STRING, offsetof(type, f.idempotency_key), NULL, NULL, 0, 0, "K",     \
   "coordinator: a second submission with K gets the first job, not a new one"},                   \
  {"image", 0, CFG_STRING, offsetof(type, f.image), NULL, NULL, 0, 0, "IMAGE",                     \
   "run the job in a container of IMAGE (Docker engine; no words: the image's own command)"},      \
  {"tool", 0, CFG_STRING, offsetof(type, f.tool), NULL, NULL, 0, 0, "NAME",                        \
   "run the built-in tool NAME instead of a command (docs/tools.md)"},                             \
  {"args", 0, CFG_STRING, offsetof(type, f.args), NULL, NULL, 0, 0, "JSON",                        \
   "--tool: its arguments, a JSON object like '{\"path\": \"a.txt\"}', or @FILE"},                 \
  JOBOPTS_SANDBOX_TABLE(type, f)

/* The sandbox's options (docs/sandbox.md), part of JOBOPTS_TABLE. */
#define JOBOPTS_SANDBOX_TABLE(type, f)                                                             \
  {"memory", 0, CFG_SIZE, offsetof(type, f.sbx.memory), NULL, NULL, 0, 0, "SIZE",                  \
   "memory limit of the job's cgroup (past it the OOM killer ends the job, exit 137)"},            \
  {"cpus", 0, CFG_STRING, offsetof(type, f.sbx.cpus), NULL, NULL, 0, 0, "N",                        \
   "CPU limit: N CPUs' worth of time per second, like 0.5 or 2"},                                  \
  {"pids", 0, CFG_INT, offsetof(type, f.sbx.pids), NULL, NULL, 0, 4194304, "N",                    \
   "at most N processes and threads at once"},                                                     \
  {"network", 0, CFG_ENUM, offsetof(type, f.sbx.network), NULL, "host|none", 0, 0, "MODE",          \
   "none: a network namespace of its own with only lo"},                                           \
  {"read-only", 0, CFG_BOOL, offsetof(type, f.sbx.read_only), NULL, NULL, 0, 0, NULL,              \
   "/ read-only, a private writable /tmp; the workdir stays writable"},                            \
  {"read-only-workdir", 0, CFG_BOOL, offsetof(type, f.sbx.read_only_workdir), NULL, NULL, 0, 0,    \
   NULL, "with --read-only: the workdir read-only too"},                                           \
  {"mount", 0, CFG_LIST, offsetof(type, f.sbx.mounts), NULL, NULL, 0, 0, "SRC:DST[:ro]",            \
   "bind SRC (a path here) to DST in the job's mount namespace"},                                  \
  {"user", 0, CFG_STRING, offsetof(type, f.sbx.user), NULL, NULL, 0, 0, "USER",                     \
   "run as USER (a name or uid[:gid]; needs a root runner)"},                                      \
  {"pid-namespace", 0, CFG_BOOL, offsetof(type, f.sbx.pid_namespace), NULL, NULL, 0, 0, NULL,      \
   "the job sees only its own processes"},                                                         \
  {"hostname", 0, CFG_STRING, offsetof(type, f.sbx.hostname), NULL, NULL, 0, 0, "NAME",             \
   "a UTS namespace with this host name"},                                                         \
  {"tmp-size", 0, CFG_SIZE, offsetof(type, f.sbx.tmp_size), NULL, NULL, 0, 0, "SIZE",              \
   "with --read-only: size of the private /tmp (default 64M)"},                                    \
  {"isolate", 0, CFG_BOOL, offsetof(type, f.sbx.isolate), NULL, NULL, 0, 0, NULL,                  \
   "--network none --read-only --pid-namespace"}
/* clang-format on */

/* For a command that runs the job here (`drover run`): 0 when no option
 * that needs a coordinator was given as a flag, else -1 with the message
 * (no "error: " prefix) in err. Their DROVER_* variables and config keys
 * are left to the job commands. */
int jobopts_check_local(const struct cfg_opt *opts, size_t n, const struct cfg_result *res,
                        char *err, size_t errlen);

/* Fills j (job_init'ed here; job_release it on success) from o and the
 * command words after "--" (job_set_command rules), or, with --tool, a tool
 * job of that name and --args (no words then). Returns 0, or -1 with
 * the message in err (a usage error: --env without "=", --exec with
 * --shell, no words); j is then empty. */
int jobopts_job(const struct jobopts *o, int argc, char **argv, struct job *j, char *err,
                size_t errlen);

/* The coordinator's options of o (--constraint, --require, --max-attempts)
 * set on spec. Returns 0, or -1 with the message in err (a K=V that is not). */
int jobopts_spec_extra(const struct jobopts *o, pb_JobSpec *spec, char *err, size_t errlen);

/* A JobSpec of j and o's coordinator options (job_to_pb, then
 * jobopts_spec_extra): NULL with err set when one is malformed. Free with
 * protobuf_c_message_free_unpacked(&spec->base, NULL). */
pb_JobSpec *jobopts_spec(const struct jobopts *o, const struct job *j, char *err, size_t errlen);

#endif
