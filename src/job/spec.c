/* spec.c - what a JobSpec must look like to be run (see spec.h). */
#include "job/spec.h"

#include <stdio.h>
#include <jansson.h>
#include <string.h>

#include "base/id.h"

static int empty(const char *s)
{
  return !s || !*s;
}

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    snprintf(err, errlen, __VA_ARGS__);                                                            \
    return -1;                                                                                     \
  } while (0)

/* A tool job: its name and an object of arguments, nothing that changes how
 * its program runs (env, workdir) or feeds it (stdin carries the arguments). */
static int check_tool(const pb_JobSpec *s, char *err, size_t errlen)
{
  if (empty(s->tool))
    FAIL("\"tool\" is required for a tool job");
  if (!empty(s->command) || s->n_argv || !empty(s->interpreter) || !empty(s->script))
    FAIL("a tool job takes \"tool\" and \"args\" (not \"command\", \"argv\", \"interpreter\" or "
         "\"script\")");
  if (s->n_env || !empty(s->workdir) || s->stdin || s->isolation)
    FAIL("a tool job takes no env, workdir, stdin or isolation: the runner's tool policy decides "
         "how it runs");
  if (!empty(s->tool_args)) {
    json_t *a = json_loads(s->tool_args, JSON_REJECT_DUPLICATES, NULL);
    int ok = json_is_object(a);
    json_decref(a);
    if (!ok)
      FAIL("\"args\" must be a JSON object of the tool's arguments like {\"path\": \"a.txt\"}");
  }
  return 0;
}

/* The same bounds as a job file's "resources" and "isolation" (job.c). */
static int spec_check_sandbox(const pb_JobSpec *s, char *err, size_t errlen)
{
  const Drover__V1__Resources *r = s->resources;
  const Drover__V1__Isolation *iso = s->isolation;

  if (r) {
    if (r->cpu != 0 && !(r->cpu >= 0.01 && r->cpu <= 4096))
      FAIL("\"resources.cpus\" must be a number of CPUs from 0.01 to 4096");
    if (r->memory_bytes && r->memory_bytes < (1u << 20))
      FAIL("\"resources.memory\" must be at least 1M");
    if (r->pids > 4194304)
      FAIL("\"resources.pids\" must be from 1 to 4194304");
  }
  if (!iso)
    return 0;
  if (!empty(iso->network) && strcmp(iso->network, "none") != 0 &&
      strcmp(iso->network, "host") != 0)
    FAIL("\"isolation.network\" must be \"none\" or \"host\", got \"%.60s\"", iso->network);
  if ((iso->read_only_workdir || iso->tmp_size_bytes) && !iso->read_only)
    FAIL("\"isolation.%s\" needs \"read_only\": true",
         iso->read_only_workdir ? "read_only_workdir" : "tmp_size");
  if (iso->tmp_size_bytes && iso->tmp_size_bytes < (1u << 20))
    FAIL("\"isolation.tmp_size\" must be at least 1M");
  for (size_t i = 0; i < iso->n_mounts; i++) {
    const Drover__V1__Mount *m = iso->mounts[i];
    if (empty(m->source) || empty(m->target) || m->source[0] != '/' || m->target[0] != '/' ||
        strchr(m->source, ':') || strchr(m->target, ':'))
      FAIL("\"isolation.mounts[%zu]\": both paths must be absolute, without ':'", i);
  }
  if (!empty(iso->hostname) && strlen(iso->hostname) > 64)
    FAIL("\"isolation.hostname\" must be at most 64 characters");
  return 0;
}

int job_spec_check(const pb_JobSpec *s, char *err, size_t errlen)
{
  if (!empty(s->id) && !id_valid(s->id))
    FAIL("\"id\" must be 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'");
  switch (s->kind) {
  case DROVER__V1__JOB_KIND__JOB_KIND_UNSPECIFIED:
  case DROVER__V1__JOB_KIND__JOB_KIND_SHELL:
    if (empty(s->command))
      FAIL("\"command\" is required for a shell job");
    if (s->n_argv || !empty(s->interpreter) || !empty(s->script))
      FAIL("a shell job takes only \"command\" (not \"argv\", \"interpreter\" or \"script\")");
    break;
  case DROVER__V1__JOB_KIND__JOB_KIND_EXEC:
    if (!s->n_argv || empty(s->argv[0]))
      FAIL("\"argv\" must name the program to run for an exec job");
    if (!empty(s->command) || !empty(s->interpreter) || !empty(s->script))
      FAIL("an exec job takes only \"argv\" (not \"command\", \"interpreter\" or \"script\")");
    break;
  case DROVER__V1__JOB_KIND__JOB_KIND_SCRIPT:
    if (empty(s->interpreter))
      FAIL("\"interpreter\" is required for a script job");
    if (!empty(s->command) || s->n_argv)
      FAIL("a script job takes \"interpreter\" and \"script\" (not \"command\" or \"argv\")");
    break;
  case DROVER__V1__JOB_KIND__JOB_KIND_TOOL:
    if (check_tool(s, err, errlen) < 0)
      return -1;
    break;
  case DROVER__V1__JOB_KIND__JOB_KIND_CONTAINER:
    if (empty(s->image))
      FAIL("\"image\" is required for a container job");
    if (!empty(s->command) && s->n_argv)
      FAIL("a container job takes \"command\" or \"argv\", not both");
    if (s->n_argv && empty(s->argv[0]))
      FAIL("\"argv\" must name the program to run for a container job");
    if (!empty(s->interpreter) || !empty(s->script))
      FAIL("a container job takes \"command\" or \"argv\" (not \"interpreter\" or \"script\")");
    if (s->stdin)
      FAIL("a container job cannot read stdin in this version of drover (drop -i)");
    break;
  default:
    FAIL("unknown job kind %d", (int)s->kind);
  }
  if (!empty(s->image) && s->kind != DROVER__V1__JOB_KIND__JOB_KIND_CONTAINER)
    FAIL("\"image\" is used only by a container job");
  if (s->kind != DROVER__V1__JOB_KIND__JOB_KIND_TOOL && (!empty(s->tool) || !empty(s->tool_args)))
    FAIL("\"tool\" and \"args\" are for a tool job (kind tool) only");
  for (size_t i = 0; i < s->n_env; i++) {
    const pb_EnvVar *e = s->env[i];
    if (empty(e->name) || strchr(e->name, '='))
      FAIL("env names must not be empty or contain '=', got \"%.60s\"", e->name ? e->name : "");
    if (e->secret)
      FAIL("secret env \"%.60s\": secrets are not supported by this version of drover", e->name);
  }
  if (spec_check_sandbox(s, err, errlen) < 0)
    return -1;
  if (s->priority > SPEC_MAX_PRIORITY || s->priority < -SPEC_MAX_PRIORITY)
    FAIL("\"priority\" must be from -%d to %d", SPEC_MAX_PRIORITY, SPEC_MAX_PRIORITY);
  if (s->max_attempts > SPEC_MAX_ATTEMPTS)
    FAIL("\"max_attempts\" must be from 1 to %d", SPEC_MAX_ATTEMPTS);
  if (s->stdin && s->max_attempts > 1)
    FAIL("a job that reads stdin runs once: its input cannot be sent again (drop --max-attempts "
         "or -i)");
  for (size_t i = 0; i < s->n_labels; i++)
    if (empty(s->labels[i]->key))
      FAIL("label names must not be empty");
  for (size_t i = 0; i < s->n_constraints; i++)
    if (empty(s->constraints[i]->key))
      FAIL("constraint names must not be empty");
  for (size_t i = 0; i < s->n_capabilities; i++)
    if (empty(s->capabilities[i]))
      FAIL("required capabilities must not be empty");
  return 0;
}
