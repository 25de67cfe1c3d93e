/* sandbox.c - a runner's sandbox: policy, the cgroup layout, per-job
 * preparation (see sandbox.h). */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"
#include "base/units.h"
#include "base/util.h"

/* What a job's process gets, and the runner: an OOM in a job's cgroup only
 * ever takes the job's processes; one of the whole machine should take a
 * job before the agent that supervises them all. */
#define JOB_OOM_SCORE_ADJ    "500"
#define RUNNER_OOM_SCORE_ADJ "-500"

struct sbx {
  struct sbx_config cfg;
  struct sbx_cgroot root;
  int exe_fd;      /* the drover binary, for the init of PID namespaces */
  int watchdog_fd; /* write end of the watchdog's pipe (sbx_watchdog); -1: none */
};

struct sbx_job {
  struct sbx *s;
  struct sbx_cgroup cg;
  int has_cg;
  struct sbx_child child;
  uint64_t memory_limit;
};

/* The init of PID namespaces: drover-init beside our binary (or one level
 * up, for the benchmarks in build/bench/), which starts in well under a
 * millisecond; else our own binary, which runs it too (argv[0]) but loads
 * every library drover links. */
static int open_init(void)
{
  char self[4096], path[4200];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      static const char *const where[] = {"%s/drover-init", "%s/../drover-init"};
      for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, where[i], self);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
          return fd;
      }
    }
  }
  return open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
}

int sbx_new(const struct sbx_config *cfg, struct sbx **out, char *err, size_t errlen)
{
  struct sbx *s = xcalloc(1, sizeof *s);
  s->watchdog_fd = -1;
  s->cfg = *cfg;
  s->cfg.cgroup_parent = NULL; /* not kept: only used here */
  s->cfg.name = NULL;
  s->cfg.log_what = NULL;
  job_isolation_copy(&s->cfg.required, &cfg->required);
  sbx_cgroot_init(&s->root, cfg->cgroups, cfg->cgroup_parent, cfg->name ? cfg->name : "run");
  if (!sbx_cgroot_usable(&s->root)) {
    if (cfg->cgroups != SBX_CG_OFF && cfg->cgroup_parent) {
      snprintf(err, errlen, "cannot use --cgroup-parent '%s': %s", cfg->cgroup_parent, s->root.why);
      sbx_free(s);
      return -1;
    }
    /* Said once, here: every job of this runner is a process group. For
     * `drover run` at info level (not shown by default): a non-root user
     * would see it on every run, and a job that asks for a limit gets an
     * error that says why anyway. */
    log_msg(cfg->log_what && !strcmp(cfg->log_what, "run") ? LOG_INFO : LOG_WARN,
            "jobs run without cgroups: a process that leaves its process group (setsid) can "
            "outlive its job, and resource limits are refused",
            "runner=%s reason=%s", cfg->log_what ? cfg->log_what : "drover", s->root.why);
  } else {
    log_debug("job cgroups ready", "mode=%s", sbx_cgroot_mode_name(&s->root));
  }
  /* A `drover run` killed with SIGKILL cannot clean up after itself: the
   * next one does, for its own kind only. */
  if (!cfg->cgroup_parent && cfg->name && strncmp(cfg->name, "run-", 4) == 0)
    sbx_cgroot_sweep_dead_runs(&s->root);
  if (cfg->enter && sbx_cgroot_usable(&s->root)) {
    int rc = sbx_cgroot_enter(&s->root);
    if (rc < 0)
      log_warn("cannot move the runner into a cgroup leaf of its own", "err=%s", strerror(-rc));
  }
  if (cfg->enter && cfg->reserve_memory) {
    int rc = sbx_cgroot_reserve(&s->root, cfg->reserve_memory);
    if (rc < 0) {
      if (rc == -ENOTSUP)
        snprintf(err, errlen,
                 "--reserve-memory needs the cgroup v2 memory controller, and jobs' cgroups "
                 "here are %s: cgroup v1 has no memory reservation; drop --reserve-memory",
                 sbx_cgroot_mode_name(&s->root));
      else
        snprintf(err, errlen, "--reserve-memory: cannot set memory.min: %s", strerror(-rc));
      sbx_free(s);
      return -1;
    }
  }
  if (cfg->protect) {
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, RUNNER_OOM_SCORE_ADJ, strlen(RUNNER_OOM_SCORE_ADJ)) < 0)
      log_debug("cannot lower the runner's oom_score_adj (jobs' are raised still)", "err=%s",
                strerror(errno));
    if (fd >= 0)
      close(fd);
  }
  /* Above the fds a job's child wires (0..3: spawn.h), which would
   * overwrite it before the init is exec'ed. */
  s->exe_fd = open_init();
  if (s->exe_fd >= 0 && s->exe_fd < 10) {
    int fd = fcntl(s->exe_fd, F_DUPFD_CLOEXEC, 10);
    close(s->exe_fd);
    s->exe_fd = fd;
  }
  *out = s;
  return 0;
}

void sbx_free(struct sbx *s)
{
  if (!s)
    return;
  sbx_cgroot_release(&s->root);
  job_isolation_release(&s->cfg.required);
  if (s->exe_fd >= 0)
    close(s->exe_fd);
  if (s->watchdog_fd >= 0)
    close(s->watchdog_fd); /* the watchdog finds nothing left, and exits */
  free(s);
}

int sbx_sweep(struct sbx *s)
{
  int n = sbx_cgroot_sweep(&s->root);
  if (n > 0)
    log_info("removed job cgroups left by a previous run, with what was in them", "groups=%d", n);
  return n;
}

/* Why a process: a job's first process dies with the runner
 * (PR_SET_PDEATHSIG), but what it started does not, and a runner killed with
 * SIGKILL cannot act. The watchdog blocks on a pipe whose only write end is
 * the runner's (close-on-exec, so no job holds it): when the runner is gone,
 * however it went, the read returns, and the watchdog does what the runner's
 * next start would (sbx_cgroot_sweep: kill what is in the job groups, remove
 * them). It holds no other fd of the runner's, and ignores the signals a
 * terminal sends to the whole process group. */
int sbx_watchdog(struct sbx *s)
{
  int p[2];
  if (!sbx_cgroot_usable(&s->root))
    return 0;
  if (pipe2(p, O_CLOEXEC) < 0)
    return -errno;
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    return -e;
  }
  if (pid == 0) {
    static const int quiet[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
    for (size_t i = 0; i < ARRAY_SIZE(quiet); i++)
      signal(quiet[i], SIG_IGN);
    prctl(PR_SET_NAME, "drover-watchdog");
    dup2(p[0], 3);
    syscall(SYS_close_range, 4, ~0u, 0);
    char b;
    while (read(3, &b, 1) < 0 && errno == EINTR)
      ;
    sbx_cgroot_sweep(&s->root);
    _exit(0);
  }
  close(p[0]);
  s->watchdog_fd = p[1];
  return 0;
}

const char *sbx_mode_name(const struct sbx *s)
{
  return sbx_cgroot_mode_name(&s->root);
}

void sbx_capabilities_adjust(const struct sbx *s, char ***caps, size_t *n)
{
  int v1 = 0;
  for (int i = 0; s && i < SBX_V1_N; i++)
    v1 |= s->root.v1[i] != NULL;
  size_t k = 0;
  for (size_t i = 0; i < *n; i++) {
    char *c = (*caps)[i];
    if ((!strcmp(c, "cgroup.v1") && !v1) || (!strcmp(c, "cgroup.v2") && !(s && s->root.v2)))
      free(c);
    else
      (*caps)[k++] = c;
  }
  *n = k;
  if (s && geteuid() == 0) {
    *caps = xrealloc(*caps, (k + 1) * sizeof **caps);
    (*caps)[(*n)++] = xstrdup("sandbox.isolation");
  }
}

int sbx_parse_required(const char *list, struct job_isolation *iso, char *err, size_t errlen)
{
  char *copy = xstrdup(list), *save = NULL;
  int rc = 0;
  memset(iso, 0, sizeof *iso);
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (!strcmp(t, "network"))
      iso->network = JOB_NET_NONE;
    else if (!strcmp(t, "read-only"))
      iso->read_only = 1;
    else if (!strcmp(t, "pid-namespace"))
      iso->pid_namespace = 1;
    else if (!strcmp(t, "all"))
      sbx_isolate_all(iso);
    else {
      snprintf(err, errlen,
               "--require-isolation: unknown '%s': use network, read-only, pid-namespace or all",
               t);
      rc = -1;
      break;
    }
  }
  free(copy);
  return rc;
}

void sbx_isolate_all(struct job_isolation *iso)
{
  iso->network = JOB_NET_NONE;
  iso->read_only = 1;
  iso->pid_namespace = 1;
}

/* ---- per job ---- */

static void apply_policy(const struct sbx *s, struct job *j)
{
  const struct job_resources *d = &s->cfg.defaults;
  const struct job_isolation *req = &s->cfg.required;
  const struct job_resources *m = &s->cfg.maxima;
  /* No limit asked: the default, else the maximum (a job may not have more
   * than the maximum by asking for nothing). */
  if (!j->resources.memory_bytes)
    j->resources.memory_bytes = d->memory_bytes ? d->memory_bytes : m->memory_bytes;
  if (!(j->resources.cpus > 0))
    j->resources.cpus = d->cpus > 0 ? d->cpus : m->cpus;
  if (!j->resources.pids)
    j->resources.pids = d->pids ? d->pids : m->pids;
  if (req->network == JOB_NET_NONE)
    j->isolation.network = JOB_NET_NONE;
  if (req->read_only)
    j->isolation.read_only = 1;
  if (req->pid_namespace)
    j->isolation.pid_namespace = 1;
}

/* Called after apply_policy: every limit the runner has a maximum for is
 * set by then (the job's, the default, or the maximum itself). */
static char *over_max(const struct sbx *s, const struct job *j)
{
  const struct job_resources *m = &s->cfg.maxima, *r = &j->resources;
  char a[32], b[32];
  if (m->memory_bytes && r->memory_bytes > m->memory_bytes) {
    units_fmt_size(b, sizeof b, m->memory_bytes);
    units_fmt_size(a, sizeof a, r->memory_bytes);
    return xasprintf("\"resources.memory\" %s is more than this runner's maximum %s", a, b);
  }
  if (m->cpus > 0 && r->cpus > m->cpus)
    return xasprintf("\"resources.cpus\" %g is more than this runner's maximum %g", r->cpus,
                     m->cpus);
  if (m->pids && r->pids > m->pids)
    return xasprintf("\"resources.pids\" %u is more than this runner's maximum %u", r->pids,
                     m->pids);
  return NULL;
}

/* A limit the machine cannot enforce is an error, never a silent no-op. */
static char *cannot_limit(const struct sbx *s, const struct job *j)
{
  const struct sbx_cgroot *root = &s->root;
  const char *which = NULL;
  if (j->resources.memory_bytes && !sbx_cgroot_can_memory(root))
    which = "memory";
  else if (j->resources.cpus > 0 && !sbx_cgroot_can_cpu(root))
    which = "cpus";
  else if (j->resources.pids && !sbx_cgroot_can_pids(root))
    which = "pids";
  if (!which)
    return NULL;
  return xasprintf("\"resources.%s\" cannot be enforced here: %s (cgroups: %s); run the job "
                   "without it or on a runner that has a writable %s cgroup controller",
                   which, root->why ? root->why : "the controller is not available to drover",
                   sbx_cgroot_mode_name(root), strcmp(which, "cpus") == 0 ? "cpu" : which);
}

int sbx_job_policy(const struct sbx *s, struct job *j, char **error)
{
  *error = NULL;
  if (!s)
    return 0;
  apply_policy(s, j);
  *error = over_max(s, j);
  return *error ? -1 : 0;
}

int sbx_job_new(struct sbx *s, struct job *j, const char *path, char *const *argv,
                struct sbx_job **out, char **error)
{
  struct sbx_job *sj = xcalloc(1, sizeof *sj);
  char msg[512];

  sj->s = s;
  sj->child.exe_fd = -1;
  *out = NULL;
  *error = NULL;
  apply_policy(s, j);
  if ((*error = over_max(s, j)) || (*error = cannot_limit(s, j)))
    goto fail;
  if (sbx_child_prepare(&sj->child, j, path, argv, s->exe_fd, msg, sizeof msg) < 0) {
    *error = xstrdup(msg);
    goto fail;
  }
  if (sbx_cgroot_usable(&s->root)) {
    if (sbx_cgroup_create(&sj->cg, &s->root, j->id, j->attempt ? j->attempt : 1, &j->resources, msg,
                          sizeof msg) < 0) {
      *error = xstrdup(msg);
      goto fail;
    }
    sj->has_cg = 1;
    sj->child.join_fd = sj->cg.join_fd;
    sj->child.njoin = sj->cg.njoin;
    if (sj->cg.v2_fd >= 0) {
      sj->child.cgroup_fd = sj->cg.v2_fd;
      sj->child.cgroup_join = 0; /* the v2 group's cgroup.procs is opened first */
    }
  }
  if (s->cfg.protect)
    sj->child.oom_score_adj = JOB_OOM_SCORE_ADJ;
  sj->memory_limit = j->resources.memory_bytes;
  *out = sj;
  return 0;
fail:
  sbx_job_free(sj);
  return -1;
}

const struct sbx_child *sbx_job_child(const struct sbx_job *sj)
{
  return &sj->child;
}

int sbx_job_has_cgroup(const struct sbx_job *sj)
{
  return sj->has_cg;
}

void sbx_job_kill(struct sbx_job *sj)
{
  if (sj->has_cg)
    sbx_cgroup_kill(&sj->cg);
}

int sbx_job_populated(const struct sbx_job *sj)
{
  return sj->has_cg && sbx_cgroup_populated(&sj->cg);
}

void sbx_job_finish(struct sbx_job *sj, struct job_result *r)
{
  if (!sj->has_cg)
    return;
  sbx_cgroup_stats(&sj->cg, r);
  /* The group's peak covers every process of the job at once and nothing
   * of ours: a better "max_rss" than the largest single process's. */
  if (r->memory_peak_known) {
    r->max_rss_kb = r->memory_peak_kb;
    r->max_rss_known = 1;
  }
  if (r->oom_killed && sj->memory_limit) {
    char lim[32];
    units_fmt_size(lim, sizeof lim, sj->memory_limit);
    if (r->status == JOB_SUCCEEDED || r->status == JOB_FAILED) {
      r->status = JOB_FAILED;
      if (r->exit_code == 0)
        r->exit_code = 128 + SIGKILL;
    }
    free(r->error);
    r->error = xasprintf("the job reached its memory limit (%s): the kernel's OOM killer killed "
                         "a process of it",
                         lim);
  }
  int rc = sbx_cgroup_destroy(&sj->cg);
  sj->has_cg = 0;
  if (rc < 0)
    log_warn("cannot remove a job's cgroup; the next sweep will", "err=%s", strerror(-rc));
}

void sbx_job_free(struct sbx_job *sj)
{
  if (!sj)
    return;
  if (sj->has_cg)
    sbx_cgroup_destroy(&sj->cg);
  sbx_child_release(&sj->child);
  free(sj);
}
