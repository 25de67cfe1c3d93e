/* job_pb.c - jobs and results to and from protobuf (see job_pb.h). */
#include "job/job_pb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "job/spec.h"

static char *dup_or_null(const char *s)
{
  return s && *s ? xstrdup(s) : NULL;
}

/* ---- sandbox fields (issue 8) ---- */

static void sandbox_from_pb(struct job *j, const pb_JobSpec *s)
{
  const Drover__V1__Isolation *p = s->isolation;
  struct job_isolation *iso = &j->isolation;

  if (s->resources) {
    j->resources.cpus = s->resources->cpu;
    j->resources.memory_bytes = s->resources->memory_bytes;
    j->resources.pids = s->resources->pids;
  }
  if (!p)
    return;
  iso->network = p->network && strcmp(p->network, "none") == 0 ? JOB_NET_NONE : JOB_NET_HOST;
  iso->read_only = p->read_only;
  iso->read_only_workdir = p->read_only_workdir;
  iso->pid_namespace = p->pid_namespace;
  iso->user = dup_or_null(p->user);
  iso->hostname = dup_or_null(p->hostname);
  iso->tmp_size = p->tmp_size_bytes;
  if (p->n_mounts) {
    iso->mounts = xcalloc(p->n_mounts, sizeof(*iso->mounts));
    for (size_t i = 0; i < p->n_mounts; i++) {
      iso->mounts[i].src = xstrdup(p->mounts[i]->source);
      iso->mounts[i].dst = xstrdup(p->mounts[i]->target);
      iso->mounts[i].read_only = p->mounts[i]->read_only;
    }
    iso->nmounts = p->n_mounts;
  }
}

static void sandbox_to_pb(pb_JobSpec *s, const struct job *j)
{
  const struct job_resources *rs = &j->resources;
  const struct job_isolation *iso = &j->isolation;

  if (rs->memory_bytes || rs->cpus > 0 || rs->pids) {
    Drover__V1__Resources *r = xmalloc(sizeof(*r));
    drover__v1__resources__init(r);
    r->cpu = rs->cpus;
    r->memory_bytes = rs->memory_bytes;
    r->pids = rs->pids;
    s->resources = r;
  }
  if (!job_isolation_any(iso))
    return;
  Drover__V1__Isolation *p = xmalloc(sizeof(*p));
  drover__v1__isolation__init(p);
  p->network = iso->network == JOB_NET_NONE ? xstrdup("none") : NULL;
  p->read_only = iso->read_only;
  p->read_only_workdir = iso->read_only_workdir;
  p->pid_namespace = iso->pid_namespace;
  p->user = dup_or_null(iso->user);
  p->hostname = dup_or_null(iso->hostname);
  p->tmp_size_bytes = iso->tmp_size;
  if (iso->nmounts) {
    p->mounts = xcalloc(iso->nmounts, sizeof(*p->mounts));
    for (size_t i = 0; i < iso->nmounts; i++) {
      Drover__V1__Mount *m = xmalloc(sizeof(*m));
      drover__v1__mount__init(m);
      m->source = xstrdup(iso->mounts[i].src);
      m->target = xstrdup(iso->mounts[i].dst);
      m->read_only = iso->mounts[i].read_only;
      p->mounts[i] = m;
    }
    p->n_mounts = iso->nmounts;
  }
  s->isolation = p;
}

int job_from_pb(struct job *j, const pb_JobSpec *s, char *err, size_t errlen)
{
  if (job_spec_check(s, err, errlen) < 0) {
    memset(j, 0, sizeof(*j));
    return -1;
  }
  job_init(j);
  if (s->id && *s->id)
    snprintf(j->id, sizeof(j->id), "%s", s->id);
  j->name = dup_or_null(s->name);
  switch (s->kind) {
  case DROVER__V1__JOB_KIND__JOB_KIND_EXEC:
    j->kind = JOB_EXEC;
    j->argc = s->n_argv;
    j->argv = xcalloc(s->n_argv + 1, sizeof(char *));
    for (size_t i = 0; i < s->n_argv; i++)
      j->argv[i] = xstrdup(s->argv[i]);
    break;
  case DROVER__V1__JOB_KIND__JOB_KIND_SCRIPT:
    j->kind = JOB_SCRIPT;
    j->interpreter = xstrdup(s->interpreter);
    j->script = xstrdup(s->script ? s->script : "");
    break;
  case DROVER__V1__JOB_KIND__JOB_KIND_CONTAINER:
    j->kind = JOB_CONTAINER;
    j->image = xstrdup(s->image);
    j->command = dup_or_null(s->command);
    if (s->n_argv) {
      j->argc = s->n_argv;
      j->argv = xcalloc(s->n_argv + 1, sizeof(char *));
      for (size_t i = 0; i < s->n_argv; i++)
        j->argv[i] = xstrdup(s->argv[i]);
    }
    break;
  case DROVER__V1__JOB_KIND__JOB_KIND_TOOL:
    j->kind = JOB_TOOL;
    j->tool = xstrdup(s->tool);
    j->tool_args = dup_or_null(s->tool_args);
    break;
  default:
    j->kind = JOB_SHELL;
    j->command = xstrdup(s->command);
    break;
  }
  if (s->n_env) {
    j->env = xcalloc(s->n_env, sizeof(*j->env));
    for (size_t i = 0; i < s->n_env; i++) {
      j->env[i].key = xstrdup(s->env[i]->name);
      j->env[i].value = xstrdup(s->env[i]->value ? s->env[i]->value : "");
    }
    j->nenv = s->n_env;
  }
  j->workdir = dup_or_null(s->workdir);
  j->timeout_ms = s->timeout_ms;
  j->kill_grace_ms = s->kill_grace_ms ? s->kill_grace_ms : JOB_DEFAULT_KILL_GRACE_MS;
  j->priority = s->priority;
  j->idempotency_key = dup_or_null(s->idempotency_key);
  if (s->n_labels) {
    j->labels = xcalloc(s->n_labels, sizeof(*j->labels));
    for (size_t i = 0; i < s->n_labels; i++) {
      j->labels[i].key = xstrdup(s->labels[i]->key);
      j->labels[i].value = xstrdup(s->labels[i]->value ? s->labels[i]->value : "");
    }
    j->nlabels = s->n_labels;
  }
  sandbox_from_pb(j, s);
  return 0;
}

pb_JobSpec *job_to_pb(const struct job *j)
{
  pb_JobSpec *s = xmalloc(sizeof(*s));
  drover__v1__job_spec__init(s);
  s->id = xstrdup(j->id);
  s->name = dup_or_null(j->name);
  switch (j->kind) {
  case JOB_EXEC:
    s->kind = DROVER__V1__JOB_KIND__JOB_KIND_EXEC;
    s->n_argv = j->argc;
    s->argv = xcalloc(j->argc + 1, sizeof(char *));
    for (size_t i = 0; i < j->argc; i++)
      s->argv[i] = xstrdup(j->argv[i]);
    break;
  case JOB_SCRIPT:
    s->kind = DROVER__V1__JOB_KIND__JOB_KIND_SCRIPT;
    s->interpreter = dup_or_null(j->interpreter);
    s->script = dup_or_null(j->script);
    break;
  case JOB_CONTAINER:
    s->kind = DROVER__V1__JOB_KIND__JOB_KIND_CONTAINER;
    s->image = dup_or_null(j->image);
    s->command = dup_or_null(j->command);
    if (j->argv) {
      s->n_argv = j->argc;
      s->argv = xcalloc(j->argc + 1, sizeof(char *));
      for (size_t i = 0; i < j->argc; i++)
        s->argv[i] = xstrdup(j->argv[i]);
    }
    break;
  case JOB_TOOL:
    s->kind = DROVER__V1__JOB_KIND__JOB_KIND_TOOL;
    s->tool = dup_or_null(j->tool);
    s->tool_args = dup_or_null(j->tool_args);
    break;
  default:
    s->kind = DROVER__V1__JOB_KIND__JOB_KIND_SHELL;
    s->command = dup_or_null(j->command);
    break;
  }
  if (j->nenv) {
    s->env = xcalloc(j->nenv, sizeof(*s->env));
    for (size_t i = 0; i < j->nenv; i++) {
      pb_EnvVar *e = xmalloc(sizeof(*e));
      drover__v1__env_var__init(e);
      e->name = xstrdup(j->env[i].key);
      e->value = dup_or_null(j->env[i].value);
      s->env[i] = e;
    }
    s->n_env = j->nenv;
  }
  s->workdir = dup_or_null(j->workdir);
  s->timeout_ms = j->timeout_ms;
  s->kill_grace_ms = j->kill_grace_ms;
  s->priority = j->priority;
  s->idempotency_key = dup_or_null(j->idempotency_key);
  if (j->nlabels) {
    s->labels = xcalloc(j->nlabels, sizeof(*s->labels));
    for (size_t i = 0; i < j->nlabels; i++) {
      Drover__V1__JobSpec__LabelsEntry *e = xmalloc(sizeof(*e));
      drover__v1__job_spec__labels_entry__init(e);
      e->key = xstrdup(j->labels[i].key);
      e->value = dup_or_null(j->labels[i].value);
      s->labels[i] = e;
    }
    s->n_labels = j->nlabels;
  }
  sandbox_to_pb(s, j);
  return s;
}

int job_status_to_state(enum job_status st)
{
  switch (st) {
  case JOB_SUCCEEDED:
    return JS_SUCCEEDED;
  case JOB_TIMED_OUT:
    return JS_TIMED_OUT;
  case JOB_CANCELLED:
    return JS_CANCELLED;
  case JOB_LOST:
    return JS_LOST;
  case JOB_FAILED:
    break;
  }
  return JS_FAILED;
}

enum job_status job_status_from_state(int state)
{
  switch (state) {
  case JS_SUCCEEDED:
    return JOB_SUCCEEDED;
  case JS_TIMED_OUT:
    return JOB_TIMED_OUT;
  case JS_CANCELLED:
    return JOB_CANCELLED;
  case JS_LOST:
    return JOB_LOST;
  default:
    return JOB_FAILED;
  }
}

pb_JobResult *job_result_to_pb(const struct job_result *r)
{
  pb_JobResult *p = xmalloc(sizeof(*p));
  drover__v1__job_result__init(p);
  p->state = (Drover__V1__JobState)job_status_to_state(r->status);
  p->exit_code = r->exit_code;
  p->signal = r->signal;
  p->started_at_us = r->started_us;
  p->finished_at_us = r->finished_us;
  p->duration_us = r->duration_us;
  p->max_rss_bytes = r->max_rss_known ? r->max_rss_kb * 1024 : 0;
  p->cpu_user_us = r->user_us;
  p->cpu_sys_us = r->sys_us;
  p->stdout_lines = r->lines[JOB_STDOUT];
  p->stdout_bytes = r->bytes[JOB_STDOUT];
  p->stderr_lines = r->lines[JOB_STDERR];
  p->stderr_bytes = r->bytes[JOB_STDERR];
  p->error = dup_or_null(r->error);
  p->attempt = r->attempt;
  p->memory_peak_bytes = r->memory_peak_known ? r->memory_peak_kb * 1024 : 0;
  p->cpu_usage_us = r->cpu_usage_known ? r->cpu_usage_us : 0;
  p->pids_peak = r->pids_peak;
  p->oom_killed = r->oom_killed;
  if (r->progress.percent >= 0 || r->progress.stage || r->progress.message) {
    pb_Progress *pr = xmalloc(sizeof(*pr));
    drover__v1__progress__init(pr);
    pr->percent = r->progress.percent;
    pr->stage = dup_or_null(r->progress.stage);
    pr->message = dup_or_null(r->progress.message);
    p->progress = pr;
  }
  return p;
}

void job_result_from_pb(struct job_result *r, const pb_JobResult *p)
{
  job_result_init(r);
  r->status = job_status_from_state((int)p->state);
  r->exit_code = p->exit_code;
  r->signal = p->signal;
  r->started_us = p->started_at_us;
  r->finished_us = p->finished_at_us;
  r->duration_us = p->duration_us;
  r->max_rss_known = p->max_rss_bytes > 0;
  r->max_rss_kb = p->max_rss_bytes / 1024;
  r->user_us = p->cpu_user_us;
  r->sys_us = p->cpu_sys_us;
  r->lines[JOB_STDOUT] = p->stdout_lines;
  r->bytes[JOB_STDOUT] = p->stdout_bytes;
  r->lines[JOB_STDERR] = p->stderr_lines;
  r->bytes[JOB_STDERR] = p->stderr_bytes;
  r->error = dup_or_null(p->error);
  r->attempt = p->attempt ? p->attempt : 1;
  r->memory_peak_known = p->memory_peak_bytes > 0;
  r->memory_peak_kb = p->memory_peak_bytes / 1024;
  r->cpu_usage_known = p->cpu_usage_us > 0;
  r->cpu_usage_us = p->cpu_usage_us;
  r->pids_peak = p->pids_peak;
  r->oom_killed = p->oom_killed;
  if (p->progress) {
    r->progress.percent = p->progress->percent;
    r->progress.stage = dup_or_null(p->progress->stage);
    r->progress.message = dup_or_null(p->progress->message);
  }
}
