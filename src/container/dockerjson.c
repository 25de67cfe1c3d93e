/* dockerjson.c - the Docker engine's JSON, both ways (see dockerjson.h). */
#include "container/dockerjson.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonstr.h"
#include "base/util.h"

/* The engine's "message" from an error body, or the body itself. */
char *dockerjson_message(const char *body, long status)
{
  json_t *o = json_loads(body, 0, NULL);
  const char *m = o ? json_string_value(json_object_get(o, "message")) : NULL;
  char *out;
  if (m)
    out = xstrdup(m);
  else if (*body)
    out = xasprintf("%.200s", body);
  else
    out = xasprintf("HTTP status %ld", status);
  json_decref(o);
  /* One line: a trailing newline would end up in the middle of a message. */
  size_t n = strlen(out);
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
    out[--n] = '\0';
  return out;
}

/* Percent-encodes s for a query value. */
char *dockerjson_query_escape(const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = xmalloc(strlen(s) * 3 + 1), *o = out;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        strchr("-._~", ch)) {
      *o++ = (char)ch;
    } else {
      *o++ = '%';
      *o++ = hex[ch >> 4];
      *o++ = hex[ch & 15];
    }
  }
  *o = '\0';
  return out;
}

/* The job's "resources" and "isolation" (docs/sandbox.md) in the engine's
 * terms. A container always has its own PID namespace and mount table, so
 * pid_namespace holds as it is; the rest maps one to one. */
static void add_sandbox(json_t *b, json_t *hc, const struct job *j)
{
  const struct job_resources *res = &j->resources;
  const struct job_isolation *iso = &j->isolation;
  if (res->memory_bytes) {
    json_object_set_new(hc, "Memory", json_integer((json_int_t)res->memory_bytes));
    /* Swap as much as memory: no swap, so the limit is one (the engine's
     * default would double it with swap, and an OOM would become slowness). */
    json_object_set_new(hc, "MemorySwap", json_integer((json_int_t)res->memory_bytes));
  }
  if (res->cpus > 0)
    json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(res->cpus * 1e9 + 0.5)));
  if (res->pids)
    json_object_set_new(hc, "PidsLimit", json_integer((json_int_t)res->pids));
  if (iso->network == JOB_NET_NONE)
    json_object_set_new(hc, "NetworkMode", json_string("none"));
  if (iso->read_only) {
    json_object_set_new(hc, "ReadonlyRootfs", json_true());
    char *opt =
        xasprintf("rw,nosuid,nodev,size=%llu",
                  (unsigned long long)(iso->tmp_size ? iso->tmp_size : JOB_DEFAULT_TMP_SIZE));
    json_object_set_new(hc, "Tmpfs", json_pack("{s:s}", "/tmp", opt));
    free(opt);
  }
  if (iso->nmounts) {
    json_t *binds = json_array();
    for (size_t i = 0; i < iso->nmounts; i++) {
      const struct job_mount *m = &iso->mounts[i];
      char *bind = xasprintf("%s:%s%s", m->src, m->dst, m->read_only ? ":ro" : "");
      json_array_append_new(binds, jsonstr_new(bind));
      free(bind);
    }
    json_object_set_new(hc, "Binds", binds);
  }
  if (iso->user)
    json_object_set_new(b, "User", jsonstr_new(iso->user));
  if (iso->hostname)
    json_object_set_new(b, "Hostname", jsonstr_new(iso->hostname));
}

char *dockerjson_create_body(const struct job *j, const char *node)
{
  json_t *b = json_object(), *env = json_array(), *labels = json_object(), *hc = json_object();
  json_object_set_new(b, "Image", jsonstr_new(j->image));
  if (j->command) {
    /* A shell line: through the image's sh, whatever its entrypoint. */
    json_object_set_new(b, "Entrypoint", json_pack("[ss]", "/bin/sh", "-c"));
    json_object_set_new(b, "Cmd", json_pack("[o]", jsonstr_new(j->command)));
  } else if (j->argv) {
    json_t *cmd = json_array();
    for (size_t i = 0; i < j->argc; i++)
      json_array_append_new(cmd, jsonstr_new(j->argv[i]));
    json_object_set_new(b, "Cmd", cmd);
  }
  for (size_t i = 0; i < j->nenv; i++) {
    char *kv = xasprintf("%s=%s", j->env[i].key, j->env[i].value);
    json_array_append_new(env, jsonstr_new(kv));
    free(kv);
  }
  char *v = xasprintf("DROVER_JOB_ID=%s", j->id);
  json_array_append_new(env, jsonstr_new(v));
  free(v);
  v = xasprintf("DROVER_ATTEMPT=%u", j->attempt ? j->attempt : 1);
  json_array_append_new(env, json_string(v));
  free(v);
  json_object_set_new(b, "Env", env);
  if (j->workdir)
    json_object_set_new(b, "WorkingDir", jsonstr_new(j->workdir));
  json_object_set_new(labels, "drover.job", jsonstr_new(j->id));
  if (node && *node)
    json_object_set_new(labels, "drover.agent", jsonstr_new(node));
  json_object_set_new(b, "Labels", labels);
  json_object_set_new(b, "AttachStdout", json_true());
  json_object_set_new(b, "AttachStderr", json_true());
  json_object_set_new(b, "AttachStdin", json_false());
  json_object_set_new(b, "Tty", json_false());
  json_object_set_new(b, "OpenStdin", json_false());
  add_sandbox(b, hc, j);
  json_object_set_new(b, "HostConfig", hc);
  char *out = json_dumps(b, JSON_COMPACT);
  json_decref(b);
  if (!out)
    abort();
  return out;
}
