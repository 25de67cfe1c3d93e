/* jobopts.c - the job options shared by drover run and drover job
 * run|submit (see jobopts.h). */
#include "cli/jobopts.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "job/cmdline.h"
#include "job/job_pb.h"
#include "sandbox/sandbox.h"

static const char *const coordinator_only[] = {
    "priority", "label", "constraint", "require", "max-attempts", "idempotency-key",
};

int jobopts_check_local(const struct cfg_opt *opts, size_t n, const struct cfg_result *res,
                        char *err, size_t errlen)
{
  for (size_t i = 0; i < n && i < CFG_MAX_TRACKED; i++) {
    if (res->source[i] != CFG_SRC_FLAG)
      continue;
    for (size_t k = 0; k < ARRAY_SIZE(coordinator_only); k++)
      if (!strcmp(opts[i].key, coordinator_only[k])) {
        snprintf(err, errlen,
                 "--%s means something only to a coordinator: 'drover run' runs the job here; "
                 "use 'drover job run' to send it to one",
                 opts[i].key);
        return -1;
      }
  }
  return 0;
}

/* "K=V" with a non-empty K. */
static int split_kv(const char *kv, const char **eq)
{
  *eq = strchr(kv, '=');
  return *eq && *eq != kv ? 0 : -1;
}

/* ---- sandbox (issue 8) ---- */

/* The same bounds as a job document's (job.c): one message per mistake. */
static int sandbox_opts(const struct jobopts_sandbox *o, struct job *j, char *err, size_t errlen)
{
  struct job_isolation *iso = &j->isolation;
  if (o->memory && o->memory < (1u << 20)) {
    snprintf(err, errlen, "--memory must be at least 1M, like --memory 256M");
    return -1;
  }
  j->resources.memory_bytes = o->memory;
  if (o->cpus && *o->cpus) {
    char *end;
    double d = strtod(o->cpus, &end);
    if (end == o->cpus || *end || !(d >= 0.01 && d <= 4096)) {
      snprintf(err, errlen, "--cpus \"%s\": must be a number of CPUs from 0.01 to 4096, like 0.5",
               o->cpus);
      return -1;
    }
    j->resources.cpus = d;
  }
  if (o->pids < 0) {
    snprintf(err, errlen, "--pids must be 1 or more");
    return -1;
  }
  j->resources.pids = (uint32_t)o->pids;
  if (o->isolate)
    sbx_isolate_all(iso);
  if (o->network && !strcmp(o->network, "none"))
    iso->network = JOB_NET_NONE;
  iso->read_only |= o->read_only;
  iso->read_only_workdir = o->read_only_workdir;
  iso->pid_namespace |= o->pid_namespace;
  if ((iso->read_only_workdir || o->tmp_size) && !iso->read_only) {
    snprintf(err, errlen, "--%s needs --read-only (or --isolate)",
             iso->read_only_workdir ? "read-only-workdir" : "tmp-size");
    return -1;
  }
  if (o->tmp_size && o->tmp_size < (1u << 20)) {
    snprintf(err, errlen, "--tmp-size must be at least 1M, like --tmp-size 64M");
    return -1;
  }
  iso->tmp_size = o->tmp_size;
  if (o->user && *o->user)
    iso->user = xstrdup(o->user);
  if (o->hostname && *o->hostname)
    iso->hostname = xstrdup(o->hostname);
  if (o->mounts.n) {
    iso->mounts = xcalloc(o->mounts.n, sizeof(*iso->mounts));
    for (size_t i = 0; i < o->mounts.n; i++) {
      char msg[300];
      if (job_mount_parse(o->mounts.items[i], &iso->mounts[i], msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "--%s", msg);
        return -1;
      }
      iso->nmounts = i + 1;
    }
  }
  return 0;
}

/* --label K=V on j; on a bad one j is released and emptied. */
static int set_labels(const struct jobopts *o, struct job *j, char *err, size_t errlen)
{
  const char *eq;
  if (!o->labels.n)
    return 0;
  for (size_t i = 0; i < o->labels.n; i++)
    if (split_kv(o->labels.items[i], &eq) < 0) {
      snprintf(err, errlen, "--label \"%s\": must be KEY=VALUE, like --label team=ops",
               o->labels.items[i]);
      job_release(j);
      memset(j, 0, sizeof(*j));
      return -1;
    }
  j->labels = xcalloc(o->labels.n, sizeof(*j->labels));
  for (size_t i = 0; i < o->labels.n; i++) {
    split_kv(o->labels.items[i], &eq);
    j->labels[i].key = xstrndup(o->labels.items[i], (size_t)(eq - o->labels.items[i]));
    j->labels[i].value = xstrdup(eq + 1);
  }
  j->nlabels = o->labels.n;
  return 0;
}

/* --tool NAME --args JSON: a tool job. What a tool job cannot take (a
 * command, --env, --workdir) is refused here with the flag's name; the
 * tool's name is checked by the runner (an older one may lack it). */
static int tool_job(const struct jobopts *o, int argc, struct job *j, char *err, size_t errlen)
{
  json_error_t jerr;
  json_t *a = NULL;

  if (!o->tool || !*o->tool) {
    snprintf(err, errlen, "--args is for a tool job: give --tool NAME too");
    return -1;
  }
  if (argc > 0) {
    snprintf(err, errlen, "--tool runs a built-in tool: give no command after \"--\"");
    return -1;
  }
  if (o->image && *o->image) {
    snprintf(err, errlen, "--tool and --image contradict each other: give one of them");
    return -1;
  }
  if (o->env.n || o->workdir || o->exec || o->shell) {
    snprintf(err, errlen, "--tool: a tool job takes no %s",
             o->env.n     ? "--env"
             : o->workdir ? "--workdir"
             : o->exec    ? "--exec"
                          : "--shell");
    return -1;
  }
  if (o->args && o->args[0] == '@') {
    /* --args @FILE: arguments too long for a command line (a file_write's
     * content: one argv word may hold only 128 KiB). */
    char *text;
    size_t len;
    int rc = read_file(o->args + 1, &text, &len);
    if (rc < 0) {
      snprintf(err, errlen, "--args '%s': %s", o->args, strerror(-rc));
      return -1;
    }
    a = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
  } else if (o->args) {
    a = json_loads(o->args, JSON_REJECT_DUPLICATES, &jerr);
  }
  if (o->args) {
    if (!json_is_object(a)) {
      if (a)
        snprintf(err, errlen, "--args must be a JSON object like '{\"path\": \"a.txt\"}'");
      else
        snprintf(err, errlen, "--args: invalid JSON: %s (column %d)", jerr.text, jerr.column);
      json_decref(a);
      return -1;
    }
  }
  job_init(j);
  j->kind = JOB_TOOL;
  j->tool = xstrdup(o->tool);
  j->tool_args = a ? json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(a);
  j->timeout_ms = o->timeout_ms;
  j->kill_grace_ms = o->kill_grace_ms;
  if (o->name && *o->name)
    j->name = xstrdup(o->name);
  j->priority = (int)o->priority;
  if (o->idempotency_key && *o->idempotency_key)
    j->idempotency_key = xstrdup(o->idempotency_key);
  if (set_labels(o, j, err, errlen) < 0)
    return -1;
  if (sandbox_opts(&o->sbx, j, err, errlen) < 0 || job_isolation_any(&j->isolation)) {
    if (job_isolation_any(&j->isolation))
      snprintf(err, errlen,
               "--tool: a tool job's isolation comes from the runner's policy (--tool-isolate), "
               "not from --network, --read-only, --mount, --user, --pid-namespace or --hostname");
    job_release(j);
    memset(j, 0, sizeof(*j));
    return -1;
  }
  return 0;
}

int jobopts_job(const struct jobopts *o, int argc, char **argv, struct job *j, char *err,
                size_t errlen)
{
  const char *eq;
  memset(j, 0, sizeof(*j));
  if ((o->tool && *o->tool) || o->args)
    return tool_job(o, argc, j, err, errlen);
  if (o->exec && o->shell) {
    snprintf(err, errlen, "--exec and --shell contradict each other: give one of them");
    return -1;
  }
  int image = o->image && *o->image;
  if (argc < 1 && !image) {
    snprintf(err, errlen, "no command given: put it after \"--\", as in -- CMD [ARGS...]");
    return -1;
  }
  for (size_t i = 0; i < o->env.n; i++)
    if (split_kv(o->env.items[i], &eq) < 0) {
      snprintf(err, errlen, "--env \"%s\": must be NAME=VALUE, like --env DEBUG=1",
               o->env.items[i]);
      return -1;
    }
  job_init(j);
  j->timeout_ms = o->timeout_ms;
  j->kill_grace_ms = o->kill_grace_ms;
  if (o->workdir)
    j->workdir = xstrdup(o->workdir);
  if (o->name && *o->name)
    j->name = xstrdup(o->name);
  j->priority = (int)o->priority;
  if (o->idempotency_key && *o->idempotency_key)
    j->idempotency_key = xstrdup(o->idempotency_key);
  if (o->env.n) {
    j->env = xcalloc(o->env.n, sizeof(*j->env));
    for (size_t i = 0; i < o->env.n; i++) {
      split_kv(o->env.items[i], &eq);
      j->env[i].key = xstrndup(o->env.items[i], (size_t)(eq - o->env.items[i]));
      j->env[i].value = xstrdup(eq + 1);
    }
    j->nenv = o->env.n;
  }
  if (set_labels(o, j, err, errlen) < 0)
    return -1;
  if (argc > 0)
    job_set_command(j, argc, argv,
                    o->exec    ? JOB_CMD_EXEC
                    : o->shell ? JOB_CMD_SHELL
                               : JOB_CMD_AUTO);
  if (image) {
    /* The same words, run in the container: one a shell line (sh -c),
     * several a program and its arguments. */
    j->kind = JOB_CONTAINER;
    j->image = xstrdup(o->image);
  }
  if (sandbox_opts(&o->sbx, j, err, errlen) < 0) {
    job_release(j);
    memset(j, 0, sizeof(*j));
    return -1;
  }
  return 0;
}

int jobopts_spec_extra(const struct jobopts *o, pb_JobSpec *spec, char *err, size_t errlen)
{
  const char *eq;
  for (size_t i = 0; i < o->constraints.n; i++)
    if (split_kv(o->constraints.items[i], &eq) < 0) {
      snprintf(err, errlen,
               "--constraint \"%s\": must be KEY=VALUE, a label the node must have, like "
               "--constraint gpu=yes",
               o->constraints.items[i]);
      return -1;
    }
  for (size_t i = 0; i < o->require.n; i++)
    if (!*o->require.items[i]) {
      snprintf(err, errlen, "--require \"\": must name a capability, like --require cgroup.v2");
      return -1;
    }
  if (o->constraints.n) {
    spec->constraints = xcalloc(o->constraints.n, sizeof(*spec->constraints));
    for (size_t i = 0; i < o->constraints.n; i++) {
      Drover__V1__JobSpec__ConstraintsEntry *e = xmalloc(sizeof(*e));
      drover__v1__job_spec__constraints_entry__init(e);
      split_kv(o->constraints.items[i], &eq);
      e->key = xstrndup(o->constraints.items[i], (size_t)(eq - o->constraints.items[i]));
      e->value = xstrdup(eq + 1);
      spec->constraints[i] = e;
    }
    spec->n_constraints = o->constraints.n;
  }
  if (o->require.n) {
    spec->capabilities = xcalloc(o->require.n, sizeof(char *));
    for (size_t i = 0; i < o->require.n; i++)
      spec->capabilities[i] = xstrdup(o->require.items[i]);
    spec->n_capabilities = o->require.n;
  }
  spec->max_attempts = (uint32_t)(o->max_attempts > 0 ? o->max_attempts : 1);
  return 0;
}

pb_JobSpec *jobopts_spec(const struct jobopts *o, const struct job *j, char *err, size_t errlen)
{
  pb_JobSpec *spec = job_to_pb(j);
  if (jobopts_spec_extra(o, spec, err, errlen) < 0) {
    protobuf_c_message_free_unpacked(&spec->base, NULL);
    return NULL;
  }
  return spec;
}
