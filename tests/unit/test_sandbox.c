/* test_sandbox.c - the sandbox's pure parts: /proc/PID/cgroup parsing, the
 * runner's policy (defaults, maxima, limits that cannot be enforced), the
 * --require-isolation list, the child's preparation. The cgroups and
 * namespaces themselves are tested end to end (tests/e2e/test_sandbox*.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

static void test_sandbox_own_path(void **state)
{
  static const char text[] = "9:name=systemd:/\n"
                             "2:cpu,cpuacct:/user.slice\n"
                             "4:memory:/process_api/5f76\n"
                             "0::/init.scope\n";
  char out[256];
  assert_int_equal(sbx_cgroup_own_path(text, "memory", out, sizeof out), 0);
  assert_string_equal(out, "/process_api/5f76");
  assert_int_equal(sbx_cgroup_own_path(text, "cpuacct", out, sizeof out), 0);
  assert_string_equal(out, "/user.slice");
  assert_int_equal(sbx_cgroup_own_path(text, "cpu", out, sizeof out), 0);
  assert_string_equal(out, "/user.slice");
  assert_int_equal(sbx_cgroup_own_path(text, "", out, sizeof out), 0);
  assert_string_equal(out, "/init.scope");
  assert_int_equal(sbx_cgroup_own_path(text, "pids", out, sizeof out), -ENOENT);
  /* "systemd" is not "name=systemd", and "cpu" does not match "cpuset". */
  assert_int_equal(sbx_cgroup_own_path("3:cpuset:/x\n", "cpu", out, sizeof out), -ENOENT);
}

static void test_sandbox_mode_and_required(void **state)
{
  struct job_isolation iso;
  char err[256];
  assert_int_equal(sbx_cg_mode_parse("v1"), SBX_CG_V1);
  assert_int_equal(sbx_cg_mode_parse("off"), SBX_CG_OFF);
  assert_int_equal(sbx_cg_mode_parse("auto"), SBX_CG_AUTO);
  assert_int_equal(sbx_parse_required("network,read-only", &iso, err, sizeof err), 0);
  assert_int_equal(iso.network, JOB_NET_NONE);
  assert_true(iso.read_only && !iso.pid_namespace);
  assert_int_equal(sbx_parse_required("all", &iso, err, sizeof err), 0);
  assert_true(iso.network == JOB_NET_NONE && iso.read_only && iso.pid_namespace);
  assert_int_equal(sbx_parse_required("network,netwrk", &iso, err, sizeof err), -1);
  assert_string_equal(err, "--require-isolation: unknown 'netwrk': use network, read-only, "
                           "pid-namespace or all");
}

/* A runner without cgroups: the policy still applies, and a limit is refused. */
static void test_sandbox_policy_without_cgroups(void **state)
{
  struct sbx *s;
  struct sbx_job *sj;
  struct job j;
  char err[256], *error = NULL, *argv[] = {"/bin/true", NULL};
  struct sbx_config c = {.cgroups = SBX_CG_OFF, .name = "unit"};
  c.maxima.memory_bytes = 128u << 20;
  c.maxima.pids = 100;
  assert_int_equal(sbx_new(&c, &s, err, sizeof err), 0);

  job_init(&j);
  j.resources.memory_bytes = 256u << 20;
  assert_int_equal(sbx_job_new(s, &j, "/bin/true", argv, &sj, &error), -1);
  assert_string_equal(error, "\"resources.memory\" 256M is more than this runner's maximum 128M");
  free(error);
  job_release(&j);

  /* Nothing asked: the maximum becomes the limit, which needs a cgroup. */
  job_init(&j);
  assert_int_equal(sbx_job_new(s, &j, "/bin/true", argv, &sj, &error), -1);
  assert_int_equal(j.resources.memory_bytes, 128u << 20);
  assert_int_equal(j.resources.pids, 100);
  assert_non_null(strstr(error, "\"resources.memory\" cannot be enforced here: cgroups are "
                                "turned off (--cgroups off)"));
  free(error);
  job_release(&j);
  sbx_free(s);

  /* No limits at all: runs, with no cgroup. */
  struct sbx_config plain = {.cgroups = SBX_CG_OFF, .name = "unit"};
  assert_int_equal(sbx_new(&plain, &s, err, sizeof err), 0);
  job_init(&j);
  assert_int_equal(sbx_job_new(s, &j, "/bin/true", argv, &sj, &error), 0);
  assert_false(sbx_job_has_cgroup(sj));
  assert_null(sbx_job_child(sj)->init_argv);
  sbx_job_free(sj);
  job_release(&j);
  sbx_free(s);
}

static void test_sandbox_child_prepare(void **state)
{
  struct sbx_child c;
  struct job j;
  char err[256], *argv[] = {"sh", "-c", "x", NULL};

  job_init(&j);
  j.workdir = strdup("/tmp");
  j.isolation.network = JOB_NET_NONE;
  j.isolation.pid_namespace = 1;
  j.isolation.nmounts = 1;
  j.isolation.mounts = calloc(1, sizeof *j.isolation.mounts);
  j.isolation.mounts[0].src = strdup("/etc");
  j.isolation.mounts[0].dst = strdup("/tmp/a/b");
  j.isolation.read_only = 1;
  if (geteuid() != 0) {
    /* Not root: a user namespace; changing user is refused. */
    assert_int_equal(sbx_child_prepare(&c, &j, "/bin/sh", argv, 99, err, sizeof err), 0);
    assert_true(c.clone_flags & CLONE_NEWUSER);
    sbx_child_release(&c);
    j.isolation.user = strdup("nobody");
    assert_int_equal(sbx_child_prepare(&c, &j, "/bin/sh", argv, 99, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"isolation.user\" needs drover to run as root"));
    sbx_child_release(&c);
    job_release(&j);
    return;
  }
  assert_int_equal(sbx_child_prepare(&c, &j, "/bin/sh", argv, 99, err, sizeof err), 0);
  assert_true(c.unshare_flags & CLONE_NEWNET);
  assert_true(c.unshare_flags & CLONE_NEWNS);
  assert_true(c.clone_flags & CLONE_NEWPID);
  assert_true(c.lo_up && c.mount_proc && c.no_new_privs);
  assert_true(c.drop_caps); /* root stays root: Docker's default set only */
  assert_string_equal(c.tmp_opts, "size=67108864,mode=1777");
  assert_string_equal(c.cwd, "/tmp");
  /* binds[0]: the workdir kept writable; binds[1]: the --mount. */
  assert_int_equal(c.nbinds, 2);
  assert_string_equal(c.binds[0].dst, "/tmp");
  assert_string_equal(c.binds[1].src, "/etc");
  /* The mount point inside the private /tmp is made, parents first. */
  assert_int_equal(c.nmkdirs, 2);
  assert_string_equal(c.mkdirs[0], "/tmp/a");
  assert_string_equal(c.mkdirs[1], "/tmp/a/b");
  assert_string_equal(c.init_argv[0], SBX_INIT_ARGV0);
  assert_string_equal(c.init_argv[1], "/bin/sh");
  assert_string_equal(c.init_argv[2], "sh");
  assert_null(c.init_argv[5]);
  sbx_child_release(&c);

  /* A user that does not exist, and one by number. */
  j.isolation.user = strdup("no-such-user-here");
  assert_int_equal(sbx_child_prepare(&c, &j, "/bin/sh", argv, 99, err, sizeof err), -1);
  assert_string_equal(err, "user 'no-such-user-here' does not exist on this machine");
  sbx_child_release(&c);
  free(j.isolation.user);
  j.isolation.user = strdup("4242:4343");
  assert_int_equal(sbx_child_prepare(&c, &j, "/bin/sh", argv, 99, err, sizeof err), 0);
  assert_int_equal(c.uid, 4242);
  assert_int_equal(c.gid, 4343);
  assert_false(c.drop_caps); /* a non-root uid loses them all by setresuid */
  sbx_child_release(&c);
  job_release(&j);
}

int main(int argc, char **argv)
{
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_own_path),
      cmocka_unit_test(test_sandbox_mode_and_required),
      cmocka_unit_test(test_sandbox_policy_without_cgroups),
      cmocka_unit_test(test_sandbox_child_prepare),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
