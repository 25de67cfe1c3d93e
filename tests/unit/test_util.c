/* test_util.c - atomic writes, reads, mkdir -p, time formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

static char *tmpdir(void)
{
  char tmpl[] = "/tmp/drover-test-XXXXXX";
  return xstrdup(mkdtemp(tmpl));
}

static void test_util_write_then_read(void **state)
{
  char *d = tmpdir(), *path = xasprintf("%s/a/b/c.json", d), *dir = xasprintf("%s/a/b", d);
  char *data;
  size_t len;

  assert_int_equal(mkdir_p(dir, 0755), 0);
  assert_int_equal(mkdir_p(dir, 0755), 0);
  assert_int_equal(write_file_atomic(path, "hello\0world", 11), 0);
  assert_int_equal(read_file(path, &data, &len), 0);
  assert_int_equal(len, 11);
  assert_memory_equal(data, "hello\0world", 11);
  free(data);
  assert_int_equal(read_file("/nonexistent/x", &data, &len), -2);
  unlink(path);
  free(path);
  free(dir);
  free(d);
}

static void test_util_time_format(void **state)
{
  char buf[40];
  fmt_time_us(buf, sizeof buf, 1795403476123456LL);
  assert_string_equal(buf, "2026-11-23T03:11:16.123456Z");
  assert_true(now_us() > 1700000000000000LL);
  assert_true(mono_us() > 0);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util_write_then_read),
      cmocka_unit_test(test_util_time_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
