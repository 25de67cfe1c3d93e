/* test_proc.c - /proc readers and the kill of a previous life's process group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/proc.h"
#include "base/util.h"

static void test_proc_stat_parse_any_command_name(void **state)
{
  struct proc_stat st;
  /* The name may hold spaces and ')': fields count from the last ')'. */
  static const char text[] = "4242 (a) b (c) d) S 1 4240 4240 0 -1 4194560 111 0 0 0 1 2 0 0 "
                             "20 0 1 0 987654 12345678 100\n";
  assert_int_equal(proc_stat_parse(text, sizeof(text) - 1, &st), 0);
  assert_int_equal(st.state, 'S');
  assert_int_equal(st.pgid, 4240);
  assert_int_equal(st.start, 987654);
  assert_int_equal(proc_stat_parse("12 (x) S 1 2", 12, &st), -EINVAL);
  assert_int_equal(proc_stat_parse("no parenthesis", 14, &st), -EINVAL);

  assert_int_equal(proc_stat_read(getpid(), &st), 0);
  assert_int_equal(st.pgid, getpgrp());
  assert_int_equal(proc_stat_read(-5, &st), -ESRCH);

  char boot[PROC_BOOT_ID_LEN + 1];
  assert_int_equal(proc_boot_id(boot, sizeof(boot)), 0);
  assert_int_equal(strlen(boot), PROC_BOOT_ID_LEN);
}

static void test_proc_environ_has(void **state)
{
  /* /proc/<pid>/environ is the environment the process was started with. */
  pid_t pid = fork();
  if (pid == 0) {
    char *envp[] = {"A=1", "DROVER_TEST_PROC=yes", "B=", NULL};
    execle("/bin/sleep", "sleep", "60", (char *)NULL, envp);
    _exit(127);
  }
  assert_true(pid > 0);
  /* Until the exec is done the child's environment is ours. */
  while (proc_environ_has(pid, "A=1") != 1)
    usleep(1000);
  assert_int_equal(proc_environ_has(pid, "DROVER_TEST_PROC=yes"), 1);
  assert_int_equal(proc_environ_has(pid, "B="), 1);
  assert_int_equal(proc_environ_has(pid, "DROVER_TEST_PROC=ye"), 0);
  assert_int_equal(proc_environ_has(pid, "DROVER_TEST_PROC"), 0);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  assert_int_equal(proc_environ_has(pid, "DROVER_TEST_PROC=yes"), -ESRCH);
}

/* A child that makes its own group with a grandchild in it, then waits. */
static pid_t group_with_grandchild(void)
{
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    if (fork() == 0)
      execlp("sleep", "sleep", "60", (char *)NULL);
    execlp("sleep", "sleep", "60", (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int live_members(int pgid)
{
  char *cmd = xasprintf("test $(ps -o stat= -g %d | grep -vc Z) -eq 0", pgid);
  int empty = system(cmd) == 0;
  free(cmd);
  return !empty;
}

static void test_proc_group_kill(void **state)
{
  pid_t pid = group_with_grandchild();
  struct proc_stat st;
  /* Wait for the group to be made (setsid in the child). */
  do
    assert_int_equal(proc_stat_read(pid, &st), 0);
  while (st.pgid != pid);

  /* A recorded start time that is not the leader's: not that group. */
  assert_int_equal(proc_group_kill(pid, st.start + 1, NULL, 1000), 0);
  assert_true(live_members(pid));
  /* The leader and its start time: the whole group goes. */
  int killed = proc_group_kill(pid, st.start, NULL, 5000);
  assert_true(killed >= 1);
  assert_false(live_members(pid));
  waitpid(pid, NULL, 0);

  /* With the leader gone, a member's environment names the group. */
  setenv("DROVER_JOB_ID", "unit-test", 1);
  pid = group_with_grandchild();
  do
    assert_int_equal(proc_stat_read(pid, &st), 0);
  while (st.pgid != pid);
  /* Wait until the grandchild is there, then end the leader. */
  char *cmd = xasprintf("test $(ps -o pid= -g %d | wc -l) -ge 2", (int)pid);
  while (system(cmd) != 0)
    usleep(1000);
  free(cmd);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  assert_int_equal(proc_group_kill(pid, st.start, "DROVER_JOB_ID=other", 1000), 0);
  assert_true(live_members(pid));
  assert_int_equal(proc_group_kill(pid, st.start, "DROVER_JOB_ID=unit-test", 5000), 1);
  assert_false(live_members(pid));
  unsetenv("DROVER_JOB_ID");
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_proc_group*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_proc_stat_parse_any_command_name),
      cmocka_unit_test(test_proc_environ_has),
      cmocka_unit_test(test_proc_group_kill),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
