/* test_util.c - atomic writes, reads, mkdir -p, time formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
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

static void test_util_read_file_max(void **state)
{
  char *d = tmpdir(), *path = xasprintf("%s/f", d), *link = xasprintf("%s/l", d);
  char *fifo = xasprintf("%s/p", d), *data;
  size_t len;
  struct stat st;

  assert_int_equal(write_file_atomic(path, "0123456789", 10), 0);
  assert_int_equal(read_file_max(path, 10, &data, &len, &st), 0);
  assert_int_equal(len, 10);
  assert_string_equal(data, "0123456789");
  assert_int_equal(st.st_size, 10);
  free(data);
  assert_int_equal(read_file_max(path, 9, &data, &len, NULL), -EFBIG);
  assert_int_equal(symlink(path, link), 0);
  assert_int_equal(read_file_max(link, 100, &data, &len, NULL), -ELOOP);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(read_file_max(fifo, 100, &data, &len, &st), -EINVAL); /* never waits */
  assert_true(S_ISFIFO(st.st_mode));
  assert_int_equal(read_file_max(d, 100, &data, &len, &st), -EINVAL);
  assert_true(S_ISDIR(st.st_mode));
  /* /proc files say size 0: read in steps, still bounded. */
  assert_int_equal(read_file_max("/proc/self/status", 20, &data, &len, NULL), -EFBIG);
  assert_int_equal(read_file_max("/proc/self/status", 1 << 20, &data, &len, NULL), 0);
  assert_true(len > 20);
  free(data);
  unlink(path);
  unlink(link);
  unlink(fifo);
  rmdir(d);
  free(path);
  free(link);
  free(fifo);
  free(d);
}

/* The temporary file is never left behind, and the names are recognised. */
static void test_util_atomic_write_temporaries(void **state)
{
  char *d = tmpdir(), *path = xasprintf("%s/r.json", d);
  for (int i = 0; i < 3; i++)
    assert_int_equal(write_file_atomic(path, "{}", 2), 0);
  assert_int_equal(write_file_replace(path, "[]", 2), 0);
  char *cmd = xasprintf("test \"$(ls -A %s)\" = r.json", d);
  assert_int_equal(system(cmd), 0);
  free(cmd);
  /* Into a folder that is not there: an error, nothing written. */
  char *bad = xasprintf("%s/nope/r.json", d);
  assert_int_equal(write_file_atomic(bad, "{}", 2), -ENOENT);
  free(bad);

  assert_true(write_tmp_name("r.json.tmp.123.0"));
  assert_true(write_tmp_name("x.tmp.1.4294967295"));
  assert_false(write_tmp_name("r.json.tmp"));
  assert_false(write_tmp_name("r.json.tmp.12"));
  assert_false(write_tmp_name("r.json.tmp.12."));
  assert_false(write_tmp_name(".tmp.1.2"));
  assert_false(write_tmp_name("r.json.tmpx.1.2"));
  unlink(path);
  rmdir(d);
  free(path);
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
      cmocka_unit_test(test_util_read_file_max),
      cmocka_unit_test(test_util_atomic_write_temporaries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
