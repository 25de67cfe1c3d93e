/* bench_sandbox.c - the sandbox's own cost per job, without drover's process
 * start around it: one job of /bin/true through exec's steps (sandbox
 * preparation and cgroup creation, spawn with the child's setup, wait,
 * kill-all, figures, removal), for each variant, the variants interleaved
 * run by run so that a busy machine slows them alike. Prints the median per
 * variant and its difference to "none" (a sandbox without cgroups):
 *   bench_sandbox 300 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec/spawn.h"
#include "sandbox/sandbox.h"

struct variant {
  const char *name;
  enum sbx_cg_mode mode;
  void (*setup)(struct job *j);
  struct sbx *s;
  int64_t *t;
};

static void v_limits(struct job *j)
{
  j->resources.memory_bytes = 64u << 20;
  j->resources.pids = 100;
  j->resources.cpus = 1;
}
static void v_net(struct job *j)
{
  j->isolation.network = JOB_NET_NONE;
}
static void v_ro(struct job *j)
{
  j->isolation.read_only = 1;
}
static void v_pidns(struct job *j)
{
  j->isolation.pid_namespace = 1;
}
static void v_user(struct job *j)
{
  j->isolation.user = strdup("nobody");
}
static void v_isolate(struct job *j)
{
  sbx_isolate_all(&j->isolation);
}

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* One job; returns its wall time in ns, or -1. */
static int64_t one(struct variant *v, int devnull, int k)
{
  extern char **environ;
  char *argv[] = {"/bin/true", NULL}, *error = NULL;
  struct job j;
  struct sbx_job *sj;
  struct job_result r;
  struct spawn_failure f;

  job_init(&j);
  snprintf(j.id, sizeof j.id, "bench-%d", k);
  if (v->setup)
    v->setup(&j);
  int64_t t0 = mono_ns();
  if (sbx_job_new(v->s, &j, "/bin/true", argv, &sj, &error) < 0) {
    fprintf(stderr, "%s: %s\n", v->name, error);
    free(error);
    job_release(&j);
    return -1;
  }
  struct spawn_req req = {"/bin/true", argv, environ,          "/", devnull, devnull,
                          devnull,     -1,   sbx_job_child(sj)};
  int pid = spawn_process(&req, &f);
  if (pid > 0)
    waitpid(pid, NULL, 0);
  sbx_job_kill(sj);
  while (sbx_job_populated(sj))
    ;
  job_result_init(&r);
  sbx_job_finish(sj, &r);
  int64_t t1 = mono_ns();
  sbx_job_free(sj);
  job_result_release(&r);
  job_release(&j);
  if (pid <= 0) {
    fprintf(stderr, "%s: spawn failed (step %d: %s)\n", v->name, f.step, f.what ? f.what : "");
    return -1;
  }
  return t1 - t0;
}

int main(int argc, char **argv)
{
  if (argc > 0 && strcmp(argv[0], SBX_INIT_ARGV0) == 0)
    return sbx_init_main(argc, argv);
  int n = argc > 1 ? atoi(argv[1]) : 300;
  struct variant vs[] = {
      {"none (no cgroup)", SBX_CG_OFF, NULL, NULL, NULL},
      {"cgroup (auto)", SBX_CG_AUTO, NULL, NULL, NULL},
      {"cgroup v1 only", SBX_CG_V1, NULL, NULL, NULL},
      {"cgroup v2 only", SBX_CG_V2, NULL, NULL, NULL},
      {"auto + memory, pids, cpus", SBX_CG_AUTO, v_limits, NULL, NULL},
      {"auto + network none", SBX_CG_AUTO, v_net, NULL, NULL},
      {"auto + read-only", SBX_CG_AUTO, v_ro, NULL, NULL},
      {"auto + pid namespace", SBX_CG_AUTO, v_pidns, NULL, NULL},
      {"auto + user nobody", SBX_CG_AUTO, v_user, NULL, NULL},
      {"auto + isolate", SBX_CG_AUTO, v_isolate, NULL, NULL},
  };
  size_t nv = sizeof vs / sizeof vs[0];
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  char err[256], name[64];

  for (size_t i = 0; i < nv; i++) {
    snprintf(name, sizeof name, "bench-%d-%zu", (int)getpid(), i);
    struct sbx_config c = {.cgroups = vs[i].mode, .name = name, .log_what = "bench"};
    if (sbx_new(&c, &vs[i].s, err, sizeof err) < 0) {
      fprintf(stderr, "%s: %s\n", vs[i].name, err);
      return 1;
    }
    vs[i].t = calloc((size_t)n, sizeof(int64_t));
  }
  for (int k = 0; k < n; k++)
    for (size_t i = 0; i < nv; i++)
      if ((vs[i].t[k] = one(&vs[i], devnull, k)) < 0)
        return 1;
  int64_t base = 0;
  printf("per job, %d runs of each, interleaved (median; difference to no cgroup):\n", n);
  for (size_t i = 0; i < nv; i++) {
    qsort(vs[i].t, (size_t)n, sizeof(int64_t), cmp_i64);
    int64_t med = vs[i].t[n / 2], p90 = vs[i].t[n * 9 / 10];
    if (i == 0)
      base = med;
    printf("  %-28s median_us=%-6lld p90_us=%-6lld %+lld us\n", vs[i].name, (long long)(med / 1000),
           (long long)(p90 / 1000), (long long)((med - base) / 1000));
    sbx_free(vs[i].s);
    free(vs[i].t);
  }
  close(devnull);
  return 0;
}
