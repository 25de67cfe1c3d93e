/* job.c - the job document: defaults, parsing with positioned errors, JSON out. */
#include "job/job.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/units.h"
#include "base/jsonstr.h"
#include "base/util.h"
#include "job/jsonpos.h"

void job_init(struct job *j)
{
  memset(j, 0, sizeof *j);
  id_new(j->id);
  j->kind = JOB_SHELL;
  j->timeout_ms = JOB_DEFAULT_TIMEOUT_MS;
  j->kill_grace_ms = JOB_DEFAULT_KILL_GRACE_MS;
  j->attempt = 1;
}

static void free_kv(struct job_kv *kv, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

void job_release(struct job *j)
{
  free(j->name);
  free(j->command);
  for (size_t i = 0; i < j->argc; i++)
    free(j->argv[i]);
  free(j->argv);
  free(j->interpreter);
  free(j->script);
  free_kv(j->env, j->nenv);
  free(j->workdir);
  free(j->idempotency_key);
  free_kv(j->labels, j->nlabels);
  free(j->image);
  free(j->tool);
  free(j->tool_args);
  if (j->tool_argv)
    for (char **p = j->tool_argv; *p; p++)
      free(*p);
  free(j->tool_argv);
  job_isolation_release(&j->isolation);
  memset(j, 0, sizeof *j);
}

/* ---- sandbox fields: helpers ------------------------------------------- */

int job_isolation_any(const struct job_isolation *iso)
{
  return iso->network != JOB_NET_HOST || iso->read_only || iso->read_only_workdir || iso->nmounts ||
         iso->user || iso->pid_namespace || iso->hostname || iso->tmp_size;
}

int job_isolation_mount_ns(const struct job_isolation *iso)
{
  return iso->read_only || iso->nmounts || iso->pid_namespace;
}

void job_isolation_copy(struct job_isolation *d, const struct job_isolation *s)
{
  *d = *s;
  d->user = s->user ? xstrdup(s->user) : NULL;
  d->hostname = s->hostname ? xstrdup(s->hostname) : NULL;
  d->mounts = NULL;
  if (s->nmounts) {
    d->mounts = xcalloc(s->nmounts, sizeof *d->mounts);
    for (size_t i = 0; i < s->nmounts; i++) {
      d->mounts[i].src = xstrdup(s->mounts[i].src);
      d->mounts[i].dst = xstrdup(s->mounts[i].dst);
      d->mounts[i].read_only = s->mounts[i].read_only;
    }
  }
}

void job_isolation_release(struct job_isolation *iso)
{
  for (size_t i = 0; i < iso->nmounts; i++) {
    free(iso->mounts[i].src);
    free(iso->mounts[i].dst);
  }
  free(iso->mounts);
  free(iso->user);
  free(iso->hostname);
  memset(iso, 0, sizeof *iso);
}

/* A ':' cannot be escaped: paths with one cannot be bound (as with docker -v). */
int job_mount_parse(const char *text, struct job_mount *m, char *err, size_t errlen)
{
  const char *c1 = strchr(text, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  memset(m, 0, sizeof *m);
  if (!c1 || c1 == text || (c2 ? c2 == c1 + 1 : !c1[1]) ||
      (c2 && (strcmp(c2 + 1, "ro") != 0 && strcmp(c2 + 1, "rw") != 0))) {
    snprintf(err, errlen, "mount \"%.200s\" must look like \"SRC:DST\" or \"SRC:DST:ro\"", text);
    return -1;
  }
  if (text[0] != '/' || c1[1] != '/') {
    snprintf(err, errlen, "mount \"%.200s\": both paths must be absolute", text);
    return -1;
  }
  m->src = xstrndup(text, (size_t)(c1 - text));
  m->dst = c2 ? xstrndup(c1 + 1, (size_t)(c2 - c1 - 1)) : xstrdup(c1 + 1);
  m->read_only = c2 && strcmp(c2 + 1, "ro") == 0;
  return 0;
}

const char *job_kind_name(enum job_kind k)
{
  switch (k) {
  case JOB_SHELL:
    return "shell";
  case JOB_EXEC:
    return "exec";
  case JOB_SCRIPT:
    return "script";
  case JOB_CONTAINER:
    return "container";
  case JOB_TOOL:
    return "tool";
  }
  return "unknown";
}

void job_error_format(const struct job_error *err, const char *origin, char *buf, size_t len)
{
  char pos[64] = "";
  if (err->line > 0 && err->column > 0)
    snprintf(pos, sizeof pos, "line %d, column %d: ", err->line, err->column);
  else if (err->line > 0)
    snprintf(pos, sizeof pos, "line %d: ", err->line);
  if (origin && *origin)
    snprintf(buf, len, "%s: %s%s", origin, pos, err->msg);
  else
    snprintf(buf, len, "%s%s", pos, err->msg);
}

int job_load_file(struct job *j, const char *path, size_t max, struct job_error *err)
{
  char *text;
  size_t len;
  struct stat st;
  int rc = read_file_max(path, max, &text, &len, &st);

  if (rc < 0) {
    job_init(j);
    memset(err, 0, sizeof *err);
    if (rc == -ELOOP)
      snprintf(err->msg, sizeof err->msg, "is a symbolic link; a job file must be a regular file");
    else if (rc == -EINVAL)
      snprintf(err->msg, sizeof err->msg, "is not a regular file; a job file must be one");
    else if (rc == -EFBIG)
      snprintf(err->msg, sizeof err->msg, "is larger than the %zu bytes allowed", max);
    else
      snprintf(err->msg, sizeof err->msg, "cannot read: %s", strerror(-rc));
    job_release(j);
    return -1;
  }
  rc = job_parse(j, text, len, err);
  free(text);
  return rc;
}

/* ---- JSON out ---------------------------------------------------------- */

static json_t *kv_object(const struct job_kv *kv, size_t n)
{
  json_t *o = json_object();
  for (size_t i = 0; i < n; i++) {
    json_t *k = jsonstr_new(kv[i].key);
    json_object_set_new(o, json_string_value(k), jsonstr_new(kv[i].value));
    json_decref(k);
  }
  return o;
}

/* "resources" and "isolation", only the fields that are set. */
static void add_sandbox_json(json_t *o, const struct job *j)
{
  const struct job_resources *rs = &j->resources;
  const struct job_isolation *iso = &j->isolation;
  char buf[64];

  if (rs->memory_bytes || rs->cpus > 0 || rs->pids) {
    json_t *r = json_object();
    if (rs->memory_bytes) {
      units_fmt_size(buf, sizeof buf, rs->memory_bytes);
      json_object_set_new(r, "memory", json_string(buf));
    }
    if (rs->cpus > 0)
      json_object_set_new(r, "cpus", json_real(rs->cpus));
    if (rs->pids)
      json_object_set_new(r, "pids", json_integer(rs->pids));
    json_object_set_new(o, "resources", r);
  }
  if (job_isolation_any(iso)) {
    json_t *r = json_object();
    if (iso->network == JOB_NET_NONE)
      json_object_set_new(r, "network", json_string("none"));
    if (iso->read_only)
      json_object_set_new(r, "read_only", json_true());
    if (iso->read_only_workdir)
      json_object_set_new(r, "read_only_workdir", json_true());
    if (iso->nmounts) {
      json_t *a = json_array();
      for (size_t i = 0; i < iso->nmounts; i++) {
        char *m = xasprintf("%s:%s%s", iso->mounts[i].src, iso->mounts[i].dst,
                            iso->mounts[i].read_only ? ":ro" : "");
        json_array_append_new(a, jsonstr_new(m));
        free(m);
      }
      json_object_set_new(r, "mounts", a);
    }
    if (iso->user)
      json_object_set_new(r, "user", jsonstr_new(iso->user));
    if (iso->pid_namespace)
      json_object_set_new(r, "pid_namespace", json_true());
    if (iso->hostname)
      json_object_set_new(r, "hostname", jsonstr_new(iso->hostname));
    if (iso->tmp_size) {
      units_fmt_size(buf, sizeof buf, iso->tmp_size);
      json_object_set_new(r, "tmp_size", json_string(buf));
    }
    json_object_set_new(o, "isolation", r);
  }
}

char *job_to_json(const struct job *j)
{
  json_t *o = json_object();
  char buf[64], *out;

  json_object_set_new(o, "id", jsonstr_new(j->id));
  if (j->name)
    json_object_set_new(o, "name", jsonstr_new(j->name));
  json_object_set_new(o, "kind", json_string(job_kind_name(j->kind)));
  if (j->command)
    json_object_set_new(o, "command", jsonstr_new(j->command));
  if (j->argv) {
    json_t *a = json_array();
    for (size_t i = 0; i < j->argc; i++)
      json_array_append_new(a, jsonstr_new(j->argv[i]));
    json_object_set_new(o, "argv", a);
  }
  if (j->interpreter)
    json_object_set_new(o, "interpreter", jsonstr_new(j->interpreter));
  if (j->script)
    json_object_set_new(o, "script", jsonstr_new(j->script));
  if (j->image)
    json_object_set_new(o, "image", jsonstr_new(j->image));
  if (j->nenv)
    json_object_set_new(o, "env", kv_object(j->env, j->nenv));
  if (j->workdir)
    json_object_set_new(o, "workdir", jsonstr_new(j->workdir));
  units_fmt_duration(buf, sizeof buf, j->timeout_ms);
  json_object_set_new(o, "timeout", json_string(buf));
  units_fmt_duration(buf, sizeof buf, j->kill_grace_ms);
  json_object_set_new(o, "kill_grace", json_string(buf));
  json_object_set_new(o, "priority", json_integer(j->priority));
  if (j->idempotency_key)
    json_object_set_new(o, "idempotency_key", jsonstr_new(j->idempotency_key));
  if (j->nlabels)
    json_object_set_new(o, "labels", kv_object(j->labels, j->nlabels));
  add_sandbox_json(o, j);
  if (j->tool)
    json_object_set_new(o, "tool", jsonstr_new(j->tool));
  if (j->kind == JOB_TOOL) {
    /* tool_args was checked to be an object when it was parsed. */
    json_t *a = j->tool_args ? json_loads(j->tool_args, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(o, "args", a ? a : json_object());
  }
  out = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!out)
    abort(); /* allocation failure */
  return out;
}

/* ---- parsing ----------------------------------------------------------- */

static const char *const known_fields[] = {
    "id",        "name",      "kind",    "command",    "argv",     "interpreter",     "script",
    "env",       "workdir",   "timeout", "kill_grace", "priority", "idempotency_key", "labels",
    "resources", "isolation", "image",   "tool",       "args",
};
/* Fields that later versions give a meaning. This one cannot honour them:
 * a job that asks for "isolation" must not run without it, so they are
 * errors that say so, not unknown-field errors with a "did you mean". */
static const char *const reserved_fields[] = {
    "container",
    "retries",
    "capabilities",
    "secrets",
};

struct ctx {
  const char *text;
  size_t len;
  struct job_error *err;
};

static void path_name(const struct jsonpos_seg *path, size_t n, char *buf, size_t len)
{
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && off < len; i++) {
    int w = path[i].key ? snprintf(buf + off, len - off, "%s%s", i ? "." : "", path[i].key)
                        : snprintf(buf + off, len - off, "[%zu]", path[i].index);
    if (w < 0)
      break;
    off += (size_t)w;
  }
}

/* Fills err with the position of path (its name with want_key) and the
 * message; always returns -1 so callers can `return fail(...)`. */
__attribute__((format(printf, 5, 6))) static int fail(struct ctx *c, const struct jsonpos_seg *path,
                                                      size_t n, int want_key, const char *fmt, ...)
{
  va_list ap;
  memset(c->err, 0, sizeof *c->err);
  if (n > 0) {
    jsonpos_locate(c->text, c->len, path, n, want_key, &c->err->line, &c->err->column);
    path_name(path, n, c->err->field, sizeof c->err->field);
  }
  va_start(ap, fmt);
  vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

/* How a wrong value is shown after "got": strings and numbers as written
 * (shortened), containers by their kind. */
static void describe(const json_t *v, char *buf, size_t len)
{
  char *s;
  if (json_is_object(v)) {
    snprintf(buf, len, "an object");
    return;
  }
  if (json_is_array(v)) {
    snprintf(buf, len, "an array");
    return;
  }
  s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  if (!s)
    abort();
  if (strlen(s) > 40)
    snprintf(buf, len, "%.36s...%s", s, json_is_string(v) ? "\"" : "");
  else
    snprintf(buf, len, "%s", s);
  free(s);
}

static int unknown_field(struct ctx *c, const char *key)
{
  struct jsonpos_seg p = {key, 0};
  const char *best = NULL;
  size_t best_d = 3;
  for (size_t i = 0; i < ARRAY_SIZE(known_fields); i++) {
    size_t d = edit_distance(key, known_fields[i]);
    if (d < best_d && d * 3 <= strlen(known_fields[i])) {
      best_d = d;
      best = known_fields[i];
    }
  }
  if (best)
    return fail(c, &p, 1, 1, "unknown field \"%.60s\" (did you mean \"%s\"?)", key, best);
  return fail(c, &p, 1, 1,
              "unknown field \"%.60s\": known fields are id, name, kind, command, argv, "
              "interpreter, script, env, workdir, timeout, kill_grace, priority, "
              "idempotency_key, labels, resources, isolation, image, tool, args",
              key);
}

static int get_string(struct ctx *c, const char *key, const json_t *v, int nonempty, char **out)
{
  struct jsonpos_seg p = {key, 0};
  char got[64];
  if (!json_is_string(v)) {
    describe(v, got, sizeof got);
    return fail(c, &p, 1, 0, "\"%s\" must be a string, got %s", key, got);
  }
  if (nonempty && json_string_length(v) == 0)
    return fail(c, &p, 1, 0, "\"%s\" must not be empty", key);
  *out = xstrndup(json_string_value(v), json_string_length(v));
  return 0;
}

static int get_duration(struct ctx *c, const char *key, const json_t *v, uint64_t *out)
{
  struct jsonpos_seg p = {key, 0};
  char got[64];
  describe(v, got, sizeof got);
  if (json_is_string(v)) {
    if (units_parse_duration(json_string_value(v), out) < 0)
      return fail(c, &p, 1, 0, "\"%s\" must be a duration like \"30s\", got %s", key, got);
    return 0;
  }
  /* A bare number is seconds, as in most job formats; 1e12 s is past any
   * sensible limit and keeps the conversion exact. Non-negative, so adding
   * 0.5 and truncating rounds to the nearest millisecond without libm. Only
   * an explicit 0 means "no limit": a positive value that rounds to 0 ms
   * becomes 1 ms. */
  if (json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) < 1e12) {
    *out = json_is_integer(v) ? (uint64_t)json_integer_value(v) * 1000
                              : (uint64_t)(json_real_value(v) * 1000.0 + 0.5);
    if (*out == 0 && json_number_value(v) > 0)
      *out = 1;
    return 0;
  }
  return fail(c, &p, 1, 0, "\"%s\" must be a duration like \"30s\" or a number of seconds, got %s",
              key, got);
}

/* env and labels: an object whose values are all strings. */
static int get_kv(struct ctx *c, const char *key, const json_t *v, int is_env, struct job_kv **out,
                  size_t *nout)
{
  struct jsonpos_seg p[2] = {{key, 0}, {NULL, 0}};
  const char *k;
  json_t *val;
  char got[64];

  if (!json_is_object(v)) {
    describe(v, got, sizeof got);
    return fail(c, p, 1, 0, "\"%s\" must be an object of strings like {\"%s\": \"%s\"}, got %s",
                key, is_env ? "LANG" : "team", is_env ? "C.UTF-8" : "build", got);
  }
  *out = xcalloc(json_object_size(v) + 1, sizeof **out);
  *nout = 0;
  json_object_foreach((json_t *)v, k, val)
  {
    p[1].key = k;
    if (!*k || (is_env && strchr(k, '=')))
      return fail(c, p, 2, 1, "\"%s\" names must not be empty%s, got \"%.60s\"", key,
                  is_env ? " or contain '='" : "", k);
    if (!json_is_string(val)) {
      describe(val, got, sizeof got);
      return fail(c, p, 2, 0, "\"%s.%.60s\" must be a string, got %s", key, k, got);
    }
    (*out)[*nout].key = xstrdup(k);
    (*out)[*nout].value = xstrndup(json_string_value(val), json_string_length(val));
    (*nout)++;
  }
  return 0;
}

static int get_argv(struct ctx *c, struct job *j, const json_t *v)
{
  struct jsonpos_seg p[2] = {{"argv", 0}, {NULL, 0}};
  size_t n = json_array_size(v);
  char got[64];

  if (!json_is_array(v) || n == 0) {
    describe(v, got, sizeof got);
    return fail(c, p, 1, 0,
                "\"argv\" must be a non-empty array of strings like [\"ls\", \"-l\"], got %s",
                json_is_array(v) ? "[]" : got);
  }
  j->argv = xcalloc(n + 1, sizeof *j->argv);
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(v, i);
    if (!json_is_string(e)) {
      p[1].index = i;
      describe(e, got, sizeof got);
      return fail(c, p, 2, 0, "\"argv[%zu]\" must be a string, got %s", i, got);
    }
    j->argv[i] = xstrndup(json_string_value(e), json_string_length(e));
    j->argc = i + 1;
  }
  if (json_string_length(json_array_get(v, 0)) == 0) {
    p[1].index = 0;
    return fail(c, p, 2, 0, "\"argv[0]\" must name the program to run, got \"\"");
  }
  return 0;
}

/* ---- "resources" and "isolation" (issue 8) ---- */

#define MAX_CPUS 4096.0
#define MAX_PIDS 4194304 /* the kernel's PID_MAX_LIMIT */

/* The nearest known key of a sub-object, for "did you mean". */
static int unknown_sub(struct ctx *c, const char *obj, const char *key, const char *const *known,
                       size_t n, const char *list)
{
  struct jsonpos_seg p[2] = {{obj, 0}, {key, 0}};
  for (size_t i = 0; i < n; i++) {
    size_t d = edit_distance(key, known[i]);
    if (d < 3 && d * 3 <= strlen(known[i]))
      return fail(c, p, 2, 1, "unknown field \"%s.%.60s\" (did you mean \"%s\"?)", obj, key,
                  known[i]);
  }
  return fail(c, p, 2, 1, "unknown field \"%s.%.60s\": known fields are %s", obj, key, list);
}

static int sub_size(struct ctx *c, const char *obj, const char *key, const json_t *v, uint64_t min,
                    const char *example, uint64_t *out)
{
  struct jsonpos_seg p[2] = {{obj, 0}, {key, 0}};
  char got[64], minbuf[32];
  int ok;
  describe(v, got, sizeof got);
  if (json_is_string(v))
    ok = units_parse_size(json_string_value(v), out) == 0;
  else if ((ok = json_is_integer(v) && json_integer_value(v) >= 0))
    *out = (uint64_t)json_integer_value(v);
  if (!ok)
    return fail(c, p, 2, 0,
                "\"%s.%s\" must be a size like \"%s\" (K, M, G: powers of 1024) or a "
                "number of bytes, got %s",
                obj, key, example, got);
  if (*out < min) {
    units_fmt_size(minbuf, sizeof minbuf, min);
    return fail(c, p, 2, 0, "\"%s.%s\" must be at least %s, got %s", obj, key, minbuf, got);
  }
  return 0;
}

static int sub_bool(struct ctx *c, const char *obj, const char *key, const json_t *v, int *out)
{
  struct jsonpos_seg p[2] = {{obj, 0}, {key, 0}};
  char got[64];
  if (!json_is_boolean(v)) {
    describe(v, got, sizeof got);
    return fail(c, p, 2, 0, "\"%s.%s\" must be true or false, got %s", obj, key, got);
  }
  *out = json_is_true(v);
  return 0;
}

static int get_resources(struct ctx *c, struct job *j, const json_t *v)
{
  static const char *const known[] = {"memory", "cpus", "pids"};
  struct jsonpos_seg p[2] = {{"resources", 0}, {NULL, 0}};
  struct job_resources *rs = &j->resources;
  const char *k;
  json_t *val;
  char got[64];

  if (!json_is_object(v)) {
    describe(v, got, sizeof got);
    return fail(c, p, 1, 0,
                "\"resources\" must be an object like {\"memory\": \"256M\", \"cpus\": 1.5, "
                "\"pids\": 100}, got %s",
                got);
  }
  json_object_foreach((json_t *)v, k, val)
  {
    p[1].key = k;
    describe(val, got, sizeof got);
    if (strcmp(k, "memory") == 0) {
      if (sub_size(c, "resources", k, val, 1u << 20, "256M", &rs->memory_bytes) < 0)
        return -1;
    } else if (strcmp(k, "cpus") == 0) {
      double d = json_is_number(val) ? json_number_value(val) : -1;
      /* cpu.max / cfs_quota_us take at least 1 ms per 100 ms period. */
      if (d < 0.01 || d > MAX_CPUS)
        return fail(c, p, 2, 0,
                    "\"resources.cpus\" must be a number of CPUs from 0.01 to %g like 1.5, "
                    "got %s",
                    MAX_CPUS, got);
      rs->cpus = d;
    } else if (strcmp(k, "pids") == 0) {
      if (!json_is_integer(val) || json_integer_value(val) < 1 ||
          json_integer_value(val) > MAX_PIDS)
        return fail(c, p, 2, 0, "\"resources.pids\" must be a whole number from 1 to %d, got %s",
                    MAX_PIDS, got);
      rs->pids = (uint32_t)json_integer_value(val);
    } else {
      return unknown_sub(c, "resources", k, known, ARRAY_SIZE(known), "memory, cpus, pids");
    }
  }
  return 0;
}

/* RFC 1123 host name label characters, at most 64 bytes (the kernel's limit). */
static int hostname_ok(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
    return 0;
  for (const char *q = s; *q; q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
          *q == '-' || *q == '.'))
      return 0;
  return 1;
}

static int get_mounts(struct ctx *c, struct job_isolation *iso, const json_t *v)
{
  struct jsonpos_seg p[3] = {{"isolation", 0}, {"mounts", 0}, {NULL, 0}};
  size_t n = json_array_size(v);
  char got[64], msg[300];

  if (!json_is_array(v)) {
    describe(v, got, sizeof got);
    return fail(c, p, 2, 0,
                "\"isolation.mounts\" must be an array like [\"/data:/data:ro\"], got %s", got);
  }
  iso->mounts = xcalloc(n + 1, sizeof *iso->mounts);
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(v, i);
    p[2].index = i;
    if (!json_is_string(e)) {
      describe(e, got, sizeof got);
      return fail(c, p, 3, 0,
                  "\"isolation.mounts[%zu]\" must be a string like \"SRC:DST:ro\", got %s", i, got);
    }
    if (job_mount_parse(json_string_value(e), &iso->mounts[i], msg, sizeof msg) < 0)
      return fail(c, p, 3, 0, "\"isolation.mounts[%zu]\": %s", i, msg);
    iso->nmounts = i + 1;
  }
  return 0;
}

static int get_isolation(struct ctx *c, struct job *j, const json_t *v)
{
  static const char *const known[] = {"network", "read_only",     "read_only_workdir", "mounts",
                                      "user",    "pid_namespace", "hostname",          "tmp_size"};
  struct jsonpos_seg p[2] = {{"isolation", 0}, {NULL, 0}};
  struct job_isolation *iso = &j->isolation;
  const char *k;
  json_t *val;
  char got[64];

  if (!json_is_object(v)) {
    describe(v, got, sizeof got);
    return fail(c, p, 1, 0,
                "\"isolation\" must be an object like {\"network\": \"none\", \"read_only\": "
                "true}, got %s",
                got);
  }
  json_object_foreach((json_t *)v, k, val)
  {
    p[1].key = k;
    describe(val, got, sizeof got);
    if (strcmp(k, "network") == 0) {
      if (json_is_string(val) && strcmp(json_string_value(val), "none") == 0)
        iso->network = JOB_NET_NONE;
      else if (json_is_string(val) && strcmp(json_string_value(val), "host") == 0)
        iso->network = JOB_NET_HOST;
      else
        return fail(c, p, 2, 0, "\"isolation.network\" must be \"none\" or \"host\", got %s", got);
    } else if (strcmp(k, "read_only") == 0) {
      if (sub_bool(c, "isolation", k, val, &iso->read_only) < 0)
        return -1;
    } else if (strcmp(k, "read_only_workdir") == 0) {
      if (sub_bool(c, "isolation", k, val, &iso->read_only_workdir) < 0)
        return -1;
    } else if (strcmp(k, "pid_namespace") == 0) {
      if (sub_bool(c, "isolation", k, val, &iso->pid_namespace) < 0)
        return -1;
    } else if (strcmp(k, "mounts") == 0) {
      if (get_mounts(c, iso, val) < 0)
        return -1;
    } else if (strcmp(k, "user") == 0) {
      if (!json_is_string(val) || json_string_length(val) == 0 ||
          strlen(json_string_value(val)) != json_string_length(val))
        return fail(c, p, 2, 0,
                    "\"isolation.user\" must be a user name or uid[:gid] like \"nobody\" or "
                    "\"1000:1000\", got %s",
                    got);
      iso->user = xstrdup(json_string_value(val));
    } else if (strcmp(k, "hostname") == 0) {
      if (!json_is_string(val) || !hostname_ok(json_string_value(val)))
        return fail(c, p, 2, 0,
                    "\"isolation.hostname\" must be 1 to 64 letters, digits, '-' or '.', got %s",
                    got);
      iso->hostname = xstrdup(json_string_value(val));
    } else if (strcmp(k, "tmp_size") == 0) {
      if (sub_size(c, "isolation", k, val, 1u << 20, "64M", &iso->tmp_size) < 0)
        return -1;
    } else {
      return unknown_sub(c, "isolation", k, known, ARRAY_SIZE(known),
                         "network, read_only, read_only_workdir, mounts, user, pid_namespace, "
                         "hostname, tmp_size");
    }
  }
  /* Options that only mean something with another: said, not ignored. */
  if ((iso->read_only_workdir || iso->tmp_size) && !iso->read_only) {
    p[1].key = iso->read_only_workdir ? "read_only_workdir" : "tmp_size";
    return fail(c, p, 2, 1, "\"isolation.%s\" needs \"read_only\": true", p[1].key);
  }
  return 0;
}

static int in_list(const char *key, const char *const *list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(key, list[i]) == 0)
      return 1;
  return 0;
}

static int parse_field(struct ctx *c, struct job *j, const char *key, const json_t *v)
{
  struct jsonpos_seg p = {key, 0};
  char got[64], *s = NULL;
  int rc;

  if (strcmp(key, "id") == 0) {
    if (get_string(c, key, v, 0, &s) < 0)
      return -1;
    if (!id_valid(s)) {
      describe(v, got, sizeof got);
      free(s);
      return fail(c, &p, 1, 0,
                  "\"id\" must be 1 to 128 letters, digits, '.', '_' or '-', not starting "
                  "with '.', got %s",
                  got);
    }
    snprintf(j->id, sizeof j->id, "%s", s);
    free(s);
    return 0;
  }
  if (strcmp(key, "kind") == 0) {
    if (get_string(c, key, v, 0, &s) < 0)
      return -1;
    rc = 0;
    if (strcmp(s, "shell") == 0)
      j->kind = JOB_SHELL;
    else if (strcmp(s, "exec") == 0)
      j->kind = JOB_EXEC;
    else if (strcmp(s, "script") == 0)
      j->kind = JOB_SCRIPT;
    else if (strcmp(s, "container") == 0)
      j->kind = JOB_CONTAINER;
    else if (strcmp(s, "tool") == 0)
      j->kind = JOB_TOOL;
    else {
      describe(v, got, sizeof got);
      rc = fail(c, &p, 1, 0,
                "\"kind\" must be one of \"shell\", \"exec\", \"script\", \"container\", "
                "\"tool\", got %s",
                got);
    }
    free(s);
    return rc;
  }
  if (strcmp(key, "name") == 0)
    return get_string(c, key, v, 0, &j->name);
  if (strcmp(key, "command") == 0)
    return get_string(c, key, v, 1, &j->command);
  if (strcmp(key, "argv") == 0)
    return get_argv(c, j, v);
  if (strcmp(key, "interpreter") == 0)
    return get_string(c, key, v, 1, &j->interpreter);
  if (strcmp(key, "script") == 0)
    return get_string(c, key, v, 0, &j->script);
  if (strcmp(key, "workdir") == 0)
    return get_string(c, key, v, 1, &j->workdir);
  if (strcmp(key, "image") == 0)
    return get_string(c, key, v, 1, &j->image);
  if (strcmp(key, "idempotency_key") == 0)
    return get_string(c, key, v, 1, &j->idempotency_key);
  if (strcmp(key, "env") == 0)
    return get_kv(c, key, v, 1, &j->env, &j->nenv);
  if (strcmp(key, "labels") == 0)
    return get_kv(c, key, v, 0, &j->labels, &j->nlabels);
  if (strcmp(key, "timeout") == 0)
    return get_duration(c, key, v, &j->timeout_ms);
  if (strcmp(key, "kill_grace") == 0)
    return get_duration(c, key, v, &j->kill_grace_ms);
  if (strcmp(key, "tool") == 0)
    return get_string(c, key, v, 1, &j->tool);
  if (strcmp(key, "args") == 0) {
    if (!json_is_object(v)) {
      describe(v, got, sizeof got);
      return fail(c, &p, 1, 0,
                  "\"args\" must be an object of the tool's arguments like {\"path\": \"a.txt\"}, "
                  "got %s",
                  got);
    }
    j->tool_args = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!j->tool_args)
      abort(); /* allocation failure */
    return 0;
  }
  if (strcmp(key, "priority") == 0) {
    if (!json_is_integer(v) || json_integer_value(v) < -1000000 ||
        json_integer_value(v) > 1000000) {
      describe(v, got, sizeof got);
      return fail(c, &p, 1, 0,
                  "\"priority\" must be a whole number from -1000000 to 1000000, got %s", got);
    }
    j->priority = (int)json_integer_value(v);
    return 0;
  }
  if (strcmp(key, "resources") == 0)
    return get_resources(c, j, v);
  if (strcmp(key, "isolation") == 0)
    return get_isolation(c, j, v);
  if (in_list(key, reserved_fields, ARRAY_SIZE(reserved_fields)))
    return fail(c, &p, 1, 1,
                "\"%s\" is not supported by this version of drover: remove it to run the job "
                "without it",
                key);
  return unknown_field(c, key);
}

/* A container job: an image, and command (run with sh -c in it) or argv or
 * neither (the image's own command); no interpreter or script. */
static int check_container(struct ctx *c, struct job *j, const json_t *root)
{
  static const char *const never[] = {"interpreter", "script"};
  if (j->command && j->argv) {
    struct jsonpos_seg p = {"argv", 0};
    return fail(c, &p, 1, 1,
                "\"command\" and \"argv\" cannot both be set: a container job takes a shell "
                "line in \"command\" or a program in \"argv\"");
  }
  for (size_t i = 0; i < ARRAY_SIZE(never); i++)
    if (json_object_get(root, never[i])) {
      struct jsonpos_seg p = {never[i], 0};
      return fail(c, &p, 1, 1,
                  "\"%s\" is not used by a container job: give \"command\" or \"argv\"", never[i]);
    }
  if (!j->image) {
    memset(c->err, 0, sizeof *c->err);
    snprintf(c->err->field, sizeof c->err->field, "image");
    snprintf(c->err->msg, sizeof c->err->msg,
             "\"image\" is required for a container job, like \"image\": \"alpine:3\"");
    return -1;
  }
  return 0;
}

/* A tool job: "tool" and "args", nothing that would change how its
 * program runs (env such as LD_PRELOAD, a workdir) or what it sees
 * (isolation's mounts could bind a host folder into a tool root): the
 * runner's policy alone decides that. "resources" (limits) may be set. */
static int check_tool(struct ctx *c, struct job *j, const json_t *root)
{
  static const char *const unused[] = {"command", "argv",    "interpreter", "script",
                                       "env",     "workdir", "isolation"};
  for (size_t i = 0; i < ARRAY_SIZE(unused); i++) {
    if (json_object_get(root, unused[i])) {
      struct jsonpos_seg p = {unused[i], 0};
      return fail(c, &p, 1, 1,
                  "\"%s\" is not used by a tool job: a tool job takes \"tool\" and \"args\"",
                  unused[i]);
    }
  }
  if (!j->tool) {
    memset(c->err, 0, sizeof *c->err);
    snprintf(c->err->field, sizeof c->err->field, "tool");
    snprintf(c->err->msg, sizeof c->err->msg,
             "\"tool\" is required for a tool job, like \"tool\": \"file_read\"");
    return -1;
  }
  return 0;
}

/* Which of command, argv, interpreter and script a kind takes, and the
 * message for one it does not take. */
static int check_kind(struct ctx *c, struct job *j, const json_t *root)
{
  static const char *const fields[] = {"command", "argv", "interpreter", "script"};
  static const int allowed[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 1}};
  static const char *const hint[] = {"set \"kind\": \"shell\"", "set \"kind\": \"exec\"",
                                     "set \"kind\": \"script\"", "set \"kind\": \"script\""};
  const char *kname = job_kind_name(j->kind);

  if (j->kind == JOB_CONTAINER)
    return check_container(c, j, root);
  if (j->kind == JOB_TOOL)
    return check_tool(c, j, root);
  if (j->image) {
    struct jsonpos_seg p = {"image", 0};
    return fail(c, &p, 1, 1,
                "\"image\" is used only by a container job: set \"kind\": \"container\"");
  }
  for (size_t i = 0; i < 2; i++) {
    const char *f = i ? "args" : "tool";
    if (json_object_get(root, f)) {
      struct jsonpos_seg p = {f, 0};
      return fail(c, &p, 1, 1, "\"%s\" is not used by %s %s job: set \"kind\": \"tool\"", f,
                  j->kind == JOB_EXEC ? "an" : "a", kname);
    }
  }
  if (j->command && j->argv) {
    struct jsonpos_seg p = {j->kind == JOB_SHELL ? "argv" : "command", 0};
    return fail(c, &p, 1, 1,
                "\"command\" and \"argv\" cannot both be set: a shell job takes \"command\", an "
                "exec job takes \"argv\"");
  }
  for (size_t i = 0; i < 4; i++) {
    if (!allowed[j->kind][i] && json_object_get(root, fields[i])) {
      struct jsonpos_seg p = {fields[i], 0};
      return fail(c, &p, 1, 1, "\"%s\" is not used by %s %s job: %s", fields[i],
                  j->kind == JOB_EXEC ? "an" : "a", kname, hint[i]);
    }
  }
  for (size_t i = 0; i < 4; i++) {
    if (allowed[j->kind][i] && !json_object_get(root, fields[i])) {
      memset(c->err, 0, sizeof *c->err);
      snprintf(c->err->field, sizeof c->err->field, "%s", fields[i]);
      snprintf(c->err->msg, sizeof c->err->msg, "\"%s\" is required for %s %s job", fields[i],
               j->kind == JOB_EXEC ? "an" : "a", kname);
      return -1;
    }
  }
  return 0;
}

/* The 1-based line and column (in characters, as jansson counts them) of
 * byte offset off. */
static void text_position(const char *text, size_t off, int *line, int *column)
{
  int l = 1, col = 1;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') {
      l++;
      col = 1;
    } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
      col++;
    }
  }
  *line = l;
  *column = col;
}

int job_parse(struct job *j, const char *text, size_t len, struct job_error *err)
{
  struct ctx c = {text, len, err};
  json_error_t jerr;
  json_t *root, *v;
  const char *key;

  job_init(j);
  memset(err, 0, sizeof *err);
  /* Two mistakes that jansson reports in its own terms ("'[' or '{' expected
   * near '\xef\xbb\xbf'", "... without JSON_ALLOW_NUL"): said plainly. */
  if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
    err->line = err->column = 1;
    snprintf(err->msg, sizeof err->msg,
             "the file starts with a byte order mark (BOM): save it as UTF-8 without a BOM");
    job_release(j);
    return -1;
  }
  const char *nul = memchr(text, '\0', len);
  if (nul) {
    text_position(text, (size_t)(nul - text), &err->line, &err->column);
    snprintf(err->msg, sizeof err->msg,
             "invalid JSON: a NUL byte (\\u0000) is not allowed in a job file");
    job_release(j);
    return -1;
  }
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    err->line = jerr.line > 0 ? jerr.line : 0;
    err->column = jerr.column > 0 ? jerr.column : 0;
    if (strstr(jerr.text, "JSON_ALLOW_NUL"))
      snprintf(err->msg, sizeof err->msg,
               "invalid JSON: a NUL byte (\\u0000) is not allowed in a string");
    else
      snprintf(err->msg, sizeof err->msg, "invalid JSON: %s", jerr.text);
    job_release(j);
    return -1;
  }
  if (!json_is_object(root)) {
    fail(&c, NULL, 0, 0, "a job must be a JSON object like {\"command\": \"echo hi\"}");
    jsonpos_locate(text, len, NULL, 0, 0, &err->line, &err->column);
    goto fail;
  }
  /* Without "kind", the fields given say which kind is meant. */
  if (!json_object_get(root, "kind")) {
    if (json_object_get(root, "argv") && !json_object_get(root, "command"))
      j->kind = JOB_EXEC;
    else if (json_object_get(root, "script") || json_object_get(root, "interpreter"))
      j->kind = JOB_SCRIPT;
    else if (json_object_get(root, "tool"))
      j->kind = JOB_TOOL;
    if (json_object_get(root, "image"))
      j->kind = JOB_CONTAINER;
  }
  /* jansson keeps members in document order, so the first mistake in the
   * file is the one reported. */
  json_object_foreach(root, key, v)
  {
    if (parse_field(&c, j, key, v) < 0)
      goto fail;
  }
  if (check_kind(&c, j, root) < 0)
    goto fail;
  json_decref(root);
  return 0;
fail:
  json_decref(root);
  job_release(j);
  return -1;
}
