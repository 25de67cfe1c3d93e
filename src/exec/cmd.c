/* cmd.c - from a job to argv, envp, program path and header (see cmd.h). */
#include "exec/cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "exec/spawn.h"

/* The most of a command, argv or script the header shows: a 50 MB command
 * must not become 800 log lines. */
#define HEADER_MAX 4096

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
  d->image = dup0(s->image);
  d->tool = dup0(s->tool);
  d->tool_args = dup0(s->tool_args);
  d->tool_argv = NULL;
  if (s->tool_argv) {
    size_t n = 0;
    while (s->tool_argv[n])
      n++;
    d->tool_argv = xcalloc(n + 1, sizeof *d->tool_argv);
    for (size_t i = 0; i < n; i++)
      d->tool_argv[i] = xstrdup(s->tool_argv[i]);
  }
  job_isolation_copy(&d->isolation, &s->isolation);
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

/* A growing text that stops growing past HEADER_MAX + 1 bytes but keeps
 * counting: the header of a 30,000-word argv or a 50 MB command costs
 * 4 KiB, not a copy per word. */
struct htext {
  char *p;
  size_t len, cap;
  uint64_t total; /* bytes the whole text has */
};

static void ht_put(struct htext *t, const char *s, size_t n)
{
  size_t keep = 0;
  t->total += n;
  if (t->len <= HEADER_MAX)
    keep = n < HEADER_MAX + 1 - t->len ? n : HEADER_MAX + 1 - t->len;
  if (!keep)
    return;
  if (t->len + keep + 1 > t->cap) {
    t->cap = t->cap ? t->cap : 256;
    while (t->cap < t->len + keep + 1)
      t->cap *= 2;
    t->p = xrealloc(t->p, t->cap);
  }
  memcpy(t->p + t->len, s, keep);
  t->len += keep;
  t->p[t->len] = '\0';
}

static void ht_str(struct htext *t, const char *s)
{
  ht_put(t, s, strlen(s));
}

/* Appends s, single-quoted when a shell would not read it as one plain
 * word: the header of an exec job shows exactly what ran, ready to paste. */
static void ht_quoted(struct htext *t, const char *s)
{
  static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789_@%+=:,./-";
  size_t n = strlen(s);
  if (n && strspn(s, plain) == n) {
    ht_put(t, s, n);
    return;
  }
  ht_put(t, "'", 1);
  for (const char *p = s; *p;) {
    size_t run = strcspn(p, "'");
    ht_put(t, p, run);
    p += run;
    if (*p == '\'') {
      ht_put(t, "'\\''", 4);
      p++;
    }
  }
  ht_put(t, "'", 1);
}

/* "1234567" -> "1,234,567" */
static void fmt_thousands(char *buf, size_t size, uint64_t v)
{
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v), w = 0;
  for (int i = 0; i < n && (size_t)w + 2 < size; i++) {
    if (i > 0 && (n - i) % 3 == 0)
      buf[w++] = ',';
    buf[w++] = digits[i];
  }
  buf[w] = '\0';
}

/* The header: "$ " and the text, cut after HEADER_MAX bytes (back to the
 * start of a UTF-8 character) with a note of what was left out; `tail`
 * ends it (a script's "EOF"). Takes t's buffer. */
static char *ht_header(struct htext *t, const char *tail)
{
  size_t show = t->len;
  char note[96] = "", n[32];
  if (t->total > HEADER_MAX) {
    show = HEADER_MAX;
    while (show > 0 && ((unsigned char)t->p[show] & 0xC0) == 0x80)
      show--;
    fmt_thousands(n, sizeof n, t->total - show);
    snprintf(note, sizeof note, "... (%s more bytes not shown)\n", n);
  }
  const char *text = t->p ? t->p : "";
  int nl = !*tail || !show || text[show - 1] != '\n';
  char *h = xasprintf("$ %.*s%s%s%s", (int)show, text, nl ? "\n" : "", note, tail);
  free(t->p);
  memset(t, 0, sizeof *t);
  return h;
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

/* A tool job runs the program the runner's policy put in tool_argv (drover
 * tool-exec, see src/tools/policy.h); its arguments go to its stdin through
 * a memfd, not argv, since one argv word may hold only 128 KiB and a
 * file_write's content can be longer. The header names the tool and its
 * arguments rather than drover's own words. */
static int build_tool(struct cmd *c, const struct job *j, struct htext *t)
{
  const char *args = j->tool_args ? j->tool_args : "{}";
  size_t n = 0, len = strlen(args);

  if (!j->tool)
    return -EINVAL;
  ht_str(t, "tool ");
  ht_quoted(t, j->tool);
  ht_put(t, " ", 1);
  ht_quoted(t, args);
  c->header = ht_header(t, "");
  if (!j->tool_argv || !j->tool_argv[0]) {
    c->argv = xcalloc(1, sizeof *c->argv);
    c->error = xstrdup("this runner cannot run tool jobs (no tool policy)");
    return 0;
  }
  while (j->tool_argv[n])
    n++;
  c->argv = xcalloc(n + 1, sizeof *c->argv);
  for (size_t i = 0; i < n; i++)
    c->argv[i] = xstrdup(j->tool_argv[i]);
  c->stdin_fd = memfd_create("drover-tool-args", MFD_CLOEXEC);
  if (c->stdin_fd < 0)
    return -errno;
  for (size_t off = 0; off < len;) {
    ssize_t w = write(c->stdin_fd, args + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    off += (size_t)w;
  }
  if (lseek(c->stdin_fd, 0, SEEK_SET) < 0)
    return -errno;
  return 0;
}

int cmd_build(struct cmd *c, const struct job *j, const char *tmpdir)
{
  struct htext t = {0};
  int rc;

  memset(c, 0, sizeof *c);
  c->stdin_fd = -1;
  c->what = "exec";
  switch (j->kind) {
  case JOB_SHELL:
    if (!j->command)
      return -EINVAL;
    c->argv = xcalloc(4, sizeof *c->argv);
    c->argv[0] = xstrdup("/bin/bash");
    c->argv[1] = xstrdup("-c");
    c->argv[2] = xstrdup(j->command);
    ht_str(&t, j->command);
    c->header = ht_header(&t, "");
    break;
  case JOB_EXEC:
    if (!j->argv || !j->argc || !j->argv[0])
      return -EINVAL;
    c->argv = xcalloc(j->argc + 1, sizeof *c->argv);
    for (size_t i = 0; i < j->argc; i++) {
      c->argv[i] = xstrdup(j->argv[i]);
      if (i)
        ht_put(&t, " ", 1);
      ht_quoted(&t, j->argv[i]);
    }
    c->header = ht_header(&t, "");
    break;
  case JOB_SCRIPT: {
    if (!j->interpreter)
      return -EINVAL;
    c->argv = split_words(j->interpreter, 1);
    if (!c->argv[0])
      return -EINVAL;
    c->what = "interpreter";
    ht_str(&t, j->interpreter);
    ht_str(&t, " <<'EOF'\n");
    ht_str(&t, j->script ? j->script : "");
    c->header = ht_header(&t, "EOF\n");
    break;
  }
  case JOB_TOOL:
    if ((rc = build_tool(c, j, &t)) < 0)
      return rc;
    if (c->error)
      return 0;
    break;
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
  if (c->stdin_fd >= 0)
    close(c->stdin_fd);
  memset(c, 0, sizeof *c);
  c->stdin_fd = -1;
}
