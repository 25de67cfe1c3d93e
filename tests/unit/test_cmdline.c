/* test_cmdline.c - the words after `--` as a job's command: one word is a
 * shell line, several are argv; --shell and --exec force either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "job/cmdline.h"

static void test_cmdline_one_word_is_a_shell_line(void **state)
{
  struct job j;
  char *w[] = {"make && make test"};
  job_init(&j);
  assert_int_equal(job_set_command(&j, 1, w, JOB_CMD_AUTO), 0);
  assert_int_equal(j.kind, JOB_SHELL);
  assert_string_equal(j.command, "make && make test");
  assert_null(j.argv);
  job_release(&j);
}

static void test_cmdline_several_words_are_argv(void **state)
{
  struct job j;
  char *w[] = {"sh", "-c", "exit 3"};
  job_init(&j);
  assert_int_equal(job_set_command(&j, 3, w, JOB_CMD_AUTO), 0);
  assert_int_equal(j.kind, JOB_EXEC);
  assert_int_equal(j.argc, 3);
  assert_string_equal(j.argv[2], "exit 3");
  assert_null(j.argv[3]);
  assert_null(j.command);
  job_release(&j);
}

static void test_cmdline_modes_force_the_kind(void **state)
{
  struct job j;
  char *w[] = {"echo", "a  b", "c"};
  job_init(&j);
  assert_int_equal(job_set_command(&j, 3, w, JOB_CMD_SHELL), 0);
  assert_int_equal(j.kind, JOB_SHELL);
  assert_string_equal(j.command, "echo a  b c"); /* joined with single spaces */
  /* Setting again replaces the old command (ASan checks nothing leaks). */
  assert_int_equal(job_set_command(&j, 1, w, JOB_CMD_EXEC), 0);
  assert_int_equal(j.kind, JOB_EXEC);
  assert_int_equal(j.argc, 1);
  assert_string_equal(j.argv[0], "echo");
  assert_null(j.command);
  assert_int_equal(job_set_command(&j, 0, w, JOB_CMD_AUTO), -EINVAL);
  assert_int_equal(j.kind, JOB_EXEC); /* untouched */
  job_release(&j);
}

int main(int argc, char **argv)
{
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cmdline_one_word_is_a_shell_line),
      cmocka_unit_test(test_cmdline_several_words_are_argv),
      cmocka_unit_test(test_cmdline_modes_force_the_kind),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
