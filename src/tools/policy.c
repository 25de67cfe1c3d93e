/* policy.c - a runner's tool policy (see policy.h). */
#include "tools/policy.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "tools/path.h"
#include "tools/tools.h"

static void push(struct tools_policy *p, size_t *cap, const char *a, const char *b)
{
  if (p->argc + 3 > *cap) {
    *cap = *cap ? *cap * 2 : 16;
    p->argv = xrealloc(p->argv, *cap * sizeof *p->argv);
  }
  p->argv[p->argc++] = xstrdup(a);
  if (b)
    p->argv[p->argc++] = xstrdup(b);
  p->argv[p->argc] = NULL;
}

/* The roots are checked here, at start, so that a typo fails the command
 * at once rather than every tool job later; they are passed on absolute,
 * since a job may run in another working directory. */
static int add_roots(struct tools_policy *p, size_t *cap, const struct cfg_list *l,
                     const char *flag, char *err, size_t errlen)
{
  for (size_t i = 0; i < l->n; i++) {
    struct tools_roots r;
    tools_roots_init(&r);
    if (tools_roots_add(&r, l->items[i], 0, err, errlen) < 0) {
      size_t n = strlen(err);
      snprintf(err + n, errlen - n, ": --%s must name an existing folder", flag);
      tools_roots_release(&r);
      return -1;
    }
    char opt[32];
    snprintf(opt, sizeof opt, "--%s", flag);
    if (p->isolate) {
      /* Bound at their canonical path: a root under /tmp would otherwise be
       * hidden by the sandbox's private /tmp. */
      struct job_isolation *iso = &p->isolation;
      iso->mounts = xrealloc(iso->mounts, (iso->nmounts + 1) * sizeof *iso->mounts);
      iso->mounts[iso->nmounts++] = (struct job_mount){xstrdup(r.v[0].path), xstrdup(r.v[0].path),
                                                       strcmp(flag, "tool-root") == 0};
    }
    /* As given (made absolute), not canonical: tool-exec resolves it again
     * and keeps both, so a path written through a linked alias still matches. */
    push(p, cap, opt, r.v[0].given);
    tools_roots_release(&r);
  }
  return 0;
}

int tools_policy_setup(struct tools_policy *p, char *err, size_t errlen)
{
  char exe[PATH_MAX];
  size_t cap = 0;
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

  p->argv = NULL;
  p->argc = 0;
  if (n <= 0 && !tools_policy_configured(p))
    return 0; /* no policy to apply: tool jobs fail to start, saying so */
  if (n <= 0) {
    snprintf(err, errlen, "cannot find drover's own binary (/proc/self/exe): %s",
             n < 0 ? strerror(errno) : "empty");
    return -1;
  }
  exe[n] = '\0';
  if (p->max_bytes == 0) {
    snprintf(err, errlen, "--tool-max-bytes must be more than 0");
    return -1;
  }
  if (p->tools && *p->tools) {
    char *copy = xstrdup(p->tools), *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
      if (!tools_known(w)) {
        snprintf(err, errlen,
                 "--tools \"%s\": unknown tool \"%s\"; the tools are file_read, file_write, "
                 "file_edit, list, find, grep, fetch_url, web_search",
                 p->tools, w);
        free(copy);
        return -1;
      }
    }
    free(copy);
  }
  push(p, &cap, exe, "tool-exec");
  memset(&p->isolation, 0, sizeof p->isolation);
  if (p->isolate) {
    p->isolation.network = JOB_NET_NONE;
    p->isolation.read_only = 1;
    p->isolation.read_only_workdir = 1;
    /* The folder of drover's own binary, bound read-only at its path: the
     * job runs that binary, and a build under /tmp would otherwise be
     * hidden by the sandbox's private /tmp. */
    char *slash = strrchr(exe, '/');
    if (slash && slash != exe) {
      char *dir = xstrndup(exe, (size_t)(slash - exe));
      p->isolation.mounts = xcalloc(1, sizeof *p->isolation.mounts);
      p->isolation.mounts[0] = (struct job_mount){dir, xstrdup(dir), 1};
      p->isolation.nmounts = 1;
    }
  }
  if (add_roots(p, &cap, &p->roots, "tool-root", err, errlen) < 0 ||
      add_roots(p, &cap, &p->write_roots, "tool-write-root", err, errlen) < 0) {
    tools_policy_release(p);
    return -1;
  }
  char size[32];
  snprintf(size, sizeof size, "%llu", (unsigned long long)p->max_bytes);
  push(p, &cap, "--tool-max-bytes", size);
  for (size_t i = 0; i < p->fetch_allow.n; i++)
    push(p, &cap, "--fetch-allow", p->fetch_allow.items[i]);
  if (p->tools && *p->tools)
    push(p, &cap, "--tools", p->tools);
  if (p->search_url && *p->search_url)
    push(p, &cap, "--search-url", p->search_url);
  push(p, &cap, "--", NULL);
  return 0;
}

void tools_policy_release(struct tools_policy *p)
{
  for (size_t i = 0; i < p->argc; i++)
    free(p->argv[i]);
  free(p->argv);
  p->argv = NULL;
  p->argc = 0;
  job_isolation_release(&p->isolation);
}

int tools_policy_configured(const struct tools_policy *p)
{
  return p &&
         (p->roots.n || p->write_roots.n || p->fetch_allow.n || (p->search_url && *p->search_url));
}

void tools_job_prepare(struct job *j, const struct tools_policy *p)
{
  if (j->kind != JOB_TOOL || !p || !p->argv)
    return;
  if (j->tool_argv) {
    for (char **w = j->tool_argv; *w; w++)
      free(*w);
    free(j->tool_argv);
  }
  j->tool_argv = xcalloc(p->argc + 2, sizeof *j->tool_argv);
  for (size_t i = 0; i < p->argc; i++)
    j->tool_argv[i] = xstrdup(p->argv[i]);
  j->tool_argv[p->argc] = xstrdup(j->tool ? j->tool : "");
  if (p->isolate) {
    job_isolation_release(&j->isolation);
    job_isolation_copy(&j->isolation, &p->isolation);
    if (j->tool && (!strcmp(j->tool, "fetch_url") || !strcmp(j->tool, "web_search")))
      j->isolation.network = JOB_NET_HOST;
    /* The runner's working directory may be hidden in the job's mount
     * namespace (under the private /tmp); a tool needs none (its roots are
     * absolute), so it runs in /. */
    free(j->workdir);
    j->workdir = xstrdup("/");
  }
}
