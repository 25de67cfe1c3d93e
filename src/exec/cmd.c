/* cmd.c - from a job to argv, envp, program path and header (see cmd.h). */
#include "exec/cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "exec/spawn.h"

static char *dup0(const char *s)
{
  return s ? xstrdup(s) : NULL;
}

static struct job_kv *kv_dup(const struct job_kv *kv, size_t n)
{
  struct job_kv *out = n ? xcalloc(n, sizeof *out) : NULL;
  for (size_t i = 0; i < n; i++) {
    out[i].key = dup0(kv[i].key);
    out[i].value = dup0(kv[i].value);
  }
  return out;
}

/* Deep copy, freed by job_release. */
void cmd_job_copy(struct job *d, const struct job *s)
{
  *d = *s;
  d->name = dup0(s->name);
  d->command = dup0(s->command);
  d->argv = NULL;
  if (s->argv) {
    d->argv = xcalloc(s->argc + 1, sizeof *d->argv);
    for (size_t i = 0; i < s->argc; i++)
      d->argv[i] = xstrdup(s->argv[i]);
  }
  d->interpreter = dup0(s->interpreter);
  d->script = dup0(s->script);
  d->env = kv_dup(s->env, s->nenv);
  d->workdir = dup0(s->workdir);
  d->idempotency_key = dup0(s->idempotency_key);
  d->labels = kv_dup(s->labels, s->nlabels);
}

static const char *const drover_vars[] = {"DROVER_JOB_ID", "DROVER_PROGRESS_FD", "DROVER_ATTEMPT"};

static int key_is(const char *entry, const char *key)
{
  size_t n = strlen(key);
  return strncmp(entry, key, n) == 0 && entry[n] == '=';
}

/* The runner's environ, then the job's env over it, then drover's own
 * variables over both. NULL-terminated, every string on the heap. */
static char **build_env(const struct job *j)
{
  extern char **environ;
  size_t n = 0, k = 0;

  while (environ[n])
    n++;
  char **env = xcalloc(n + j->nenv + ARRAY_SIZE(drover_vars) + 1, sizeof *env);
  for (size_t i = 0; i < n; i++) {
    int shadowed = 0;
    for (size_t v = 0; v < j->nenv && !shadowed; v++)
      shadowed = key_is(environ[i], j->env[v].key);
    for (size_t v = 0; v < ARRAY_SIZE(drover_vars) && !shadowed; v++)
      shadowed = key_is(environ[i], drover_vars[v]);
    if (!shadowed)
      env[k++] = xstrdup(environ[i]);
  }
  for (size_t v = 0; v < j->nenv; v++) {
    int ours = 0;
    for (size_t d = 0; d < ARRAY_SIZE(drover_vars); d++)
      ours |= strcmp(j->env[v].key, drover_vars[d]) == 0;
    if (!ours)
      env[k++] = xasprintf("%s=%s", j->env[v].key, j->env[v].value ? j->env[v].value : "");
  }
  env[k++] = xasprintf("DROVER_JOB_ID=%s", j->id);
  env[k++] = xstrdup("DROVER_PROGRESS_FD=3");
  env[k++] = xasprintf("DROVER_ATTEMPT=%u", j->attempt ? j->attempt : 1);
  return env;
}

static const char *env_get(char **env, const char *key)
{
  for (; *env; env++)
    if (key_is(*env, key))
      return *env + strlen(key) + 1;
  return NULL;
}

static void strv_free(char **v)
{
  if (!v)
    return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

/* Appends s to *out, single-quoted when a shell would not read it as one
 * plain word: the header of an exec job shows exactly what ran. */
static void append_quoted(char **out, const char *s)
{
  static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789_@%+=:,./-";
  char *prev = *out;
  if (*s && strspn(s, plain) == strlen(s)) {
    *out = xasprintf("%s%s", prev, s);
  } else {
    size_t n = strlen(prev), len = n + 3;
    for (const char *p = s; *p; p++)
      len += *p == '\'' ? 4 : 1;
    char *q = xmalloc(len), *w = q + n;
    memcpy(q, prev, n);
    *w++ = '\'';
    for (const char *p = s; *p; p++) {
      if (*p == '\'') {
        memcpy(w, "'\\''", 4);
        w += 4;
      } else {
        *w++ = *p;
      }
    }
    *w++ = '\'';
    *w = '\0';
    *out = q;
  }
  free(prev);
}

/* Splits an interpreter like "/usr/bin/env python3 -u" on blanks. */
static char **split_words(const char *s, size_t extra)
{
  size_t n = 0;
  char **v = xcalloc(strlen(s) / 2 + 2 + extra, sizeof *v);
  while (*s) {
    size_t len = strcspn(s, " \t");
    if (len)
      v[n++] = xstrndup(s, len);
    s += len;
    s += strspn(s, " \t");
  }
  return v;
}

/* Writes the script to a private file: mkstemp makes it 0600. */
static int write_script(struct cmd *c, const struct job *j, const char *tmpdir)
{
  const char *dir = tmpdir ? tmpdir : getenv("TMPDIR");
  char *path = xasprintf("%s/drover-script-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkostemp(path, O_CLOEXEC), rc = 0;
  if (fd < 0) {
    rc = -errno;
    free(path);
    return rc;
  }
  const char *p = j->script ? j->script : "";
  size_t left = strlen(p);
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      rc = -errno;
      break;
    }
    p += w;
    left -= (size_t)w;
  }
  close(fd);
  if (rc < 0) {
    unlink(path);
    free(path);
    return rc;
  }
  c->script_path = path;
  return 0;
}

int cmd_build(struct cmd *c, const struct job *j, const char *tmpdir)
{
  int rc;

  memset(c, 0, sizeof *c);
  c->what = "exec";
  switch (j->kind) {
  case JOB_SHELL:
    if (!j->command)
      return -EINVAL;
    c->argv = xcalloc(4, sizeof *c->argv);
    c->argv[0] = xstrdup("/bin/bash");
    c->argv[1] = xstrdup("-c");
    c->argv[2] = xstrdup(j->command);
    c->header = xasprintf("$ %s\n", j->command);
    break;
  case JOB_EXEC:
    if (!j->argv || !j->argc || !j->argv[0])
      return -EINVAL;
    c->argv = xcalloc(j->argc + 1, sizeof *c->argv);
    c->header = xstrdup("$");
    for (size_t i = 0; i < j->argc; i++) {
      c->argv[i] = xstrdup(j->argv[i]);
      char *prev = c->header;
      c->header = xasprintf("%s ", prev);
      free(prev);
      append_quoted(&c->header, j->argv[i]);
    }
    char *prev = c->header;
    c->header = xasprintf("%s\n", prev);
    free(prev);
    break;
  case JOB_SCRIPT: {
    if (!j->interpreter)
      return -EINVAL;
    c->argv = split_words(j->interpreter, 1);
    if (!c->argv[0])
      return -EINVAL;
    c->what = "interpreter";
    const char *body = j->script ? j->script : "";
    size_t blen = strlen(body);
    c->header = xasprintf("$ %s <<'EOF'\n%s%sEOF\n", j->interpreter, body,
                          blen && body[blen - 1] != '\n' ? "\n" : "");
    break;
  }
  default:
    return -EINVAL;
  }
  c->name = c->argv[0];
  c->envp = build_env(j);

  /* PATH is searched here, in the parent, with the job's own PATH: the
   * child must not allocate, and a missing program is a job error that
   * needs no fork at all. */
  rc = spawn_find(c->argv[0], env_get(c->envp, "PATH"), &c->path);
  if (rc == 0 && j->kind == JOB_SCRIPT && access(c->path, X_OK) < 0)
    rc = -errno;
  if (rc < 0) {
    free(c->path);
    c->path = NULL;
    if (j->kind == JOB_SCRIPT && rc == -ENOENT && !strchr(c->name, '/'))
      c->error = xasprintf("interpreter '%s': not found", c->name);
    else
      c->error = xasprintf("%s '%s': %s", c->what, c->name, strerror(-rc));
    return 0;
  }

  if (j->kind == JOB_SCRIPT) {
    if ((rc = write_script(c, j, tmpdir)) < 0)
      return rc;
    char **v = c->argv;
    while (*v)
      v++;
    *v = xstrdup(c->script_path);
  }
  return 0;
}

char *cmd_spawn_error(const struct cmd *c, const struct job *j, int step, int err)
{
  if (step == SPAWN_STEP_CHDIR)
    return xasprintf("workdir '%s': %s", j->workdir, strerror(err));
  if (step == SPAWN_STEP_EXEC)
    return xasprintf("%s '%s': %s", c->what, c->name, strerror(err));
  return xasprintf("could not start the job: %s", strerror(err));
}

void cmd_release(struct cmd *c)
{
  strv_free(c->argv);
  strv_free(c->envp);
  free(c->path);
  free(c->header);
  if (c->script_path) {
    unlink(c->script_path);
    free(c->script_path);
  }
  free(c->error);
  memset(c, 0, sizeof *c);
}
