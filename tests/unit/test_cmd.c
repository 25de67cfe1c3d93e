/* test_cmd.c - a job to argv and header: the "$ cmd" header shows a capped
 * command, argv or script, whatever their size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "exec/cmd.h"

static char *repeat(char c, size_t n)
{
  char *s = xmalloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void test_cmd_header_small_is_whole(void **state)
{
  struct cmd c;
  struct job j;
  job_init(&j);
  j.command = xstrdup("echo hi");
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  assert_string_equal(c.header, "$ echo hi\n");
  cmd_release(&c);
  job_release(&j);
}

/* A 50 MB shell command: the header is the first 4 KiB and a note. */
static void test_cmd_header_huge_command_is_capped(void **state)
{
  struct cmd c;
  struct job j;
  job_init(&j);
  j.command = repeat('x', 50 * 1000 * 1000);
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  char *want_text = repeat('x', 4096);
  char *want = xasprintf("$ %s\n... (49,995,904 more bytes not shown)\n", want_text);
  assert_string_equal(c.header, want);
  free(want);
  free(want_text);
  cmd_release(&c);
  job_release(&j);
}

/* The cut never splits a UTF-8 character: 4095 ASCII bytes, then "é"
 * (2 bytes) straddling the 4 KiB mark, is cut before the "é". */
static void test_cmd_header_cut_at_a_character(void **state)
{
  struct cmd c;
  struct job j;
  job_init(&j);
  char *pre = repeat('a', 4095);
  j.command = xasprintf("%s\xc3\xa9%s", pre, "tail");
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  char *want = xasprintf("$ %s\n... (6 more bytes not shown)\n", pre);
  assert_string_equal(c.header, want);
  free(want);
  free(pre);
  cmd_release(&c);
  job_release(&j);
}

/* 30,000 argv words: quoted, capped, built without a copy per word. */
static void test_cmd_header_long_argv_is_capped(void **state)
{
  struct cmd c;
  struct job j;
  job_init(&j);
  j.kind = JOB_EXEC;
  j.argc = 30000;
  j.argv = xcalloc(j.argc + 1, sizeof *j.argv);
  j.argv[0] = xstrdup("echo");
  size_t total = 4;
  for (size_t i = 1; i < j.argc; i++) {
    j.argv[i] = xstrdup("a b"); /* shown as 'a b' */
    total += 1 + 5;
  }
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  assert_int_equal(strncmp(c.header, "$ echo 'a b' 'a b'", 18), 0);
  char *note = xasprintf("\n... (%zu,%03zu more bytes not shown)\n", (total - 4096) / 1000,
                         (total - 4096) % 1000);
  char *nl = strchr(c.header, '\n');
  assert_int_equal(nl - c.header, 2 + 4096);
  assert_string_equal(nl, note);
  free(note);
  cmd_release(&c);
  job_release(&j);
}

static void test_cmd_header_script_is_capped(void **state)
{
  struct cmd c;
  struct job j;
  job_init(&j);
  j.kind = JOB_SCRIPT;
  j.interpreter = xstrdup("/bin/sh");
  j.script = repeat('#', 10000);
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  const char *start = "$ /bin/sh <<'EOF'\n";
  assert_int_equal(strncmp(c.header, start, strlen(start)), 0);
  const char *end = "\n... (5,920 more bytes not shown)\nEOF\n"; /* 16 + 10000 - 4096 */
  assert_string_equal(c.header + strlen(c.header) - strlen(end), end);
  assert_int_equal(strlen(c.header), 2 + 4096 + strlen(end));
  cmd_release(&c);
  job_release(&j);

  /* A short one is whole, as before. */
  job_init(&j);
  j.kind = JOB_SCRIPT;
  j.interpreter = xstrdup("/bin/sh");
  j.script = xstrdup("echo 1");
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  assert_string_equal(c.header, "$ /bin/sh <<'EOF'\necho 1\nEOF\n");
  cmd_release(&c);
  job_release(&j);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_cmd_header*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cmd_header_small_is_whole),
      cmocka_unit_test(test_cmd_header_huge_command_is_capped),
      cmocka_unit_test(test_cmd_header_cut_at_a_character),
      cmocka_unit_test(test_cmd_header_long_argv_is_capped),
      cmocka_unit_test(test_cmd_header_script_is_capped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
