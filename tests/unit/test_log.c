/* test_log.c - what drover's log lines look like, in text and JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* stderr is swapped for a pipe around each logged line. */
static int saved_fd = -1, pipe_rd = -1;

static void capture_start(void)
{
  int p[2];
  assert_int_equal(pipe(p), 0);
  saved_fd = dup(2);
  dup2(p[1], 2);
  close(p[1]);
  pipe_rd = p[0];
}

static char *capture_end(void)
{
  static char buf[8192];
  ssize_t n, off = 0;
  dup2(saved_fd, 2);
  close(saved_fd);
  while ((n = read(pipe_rd, buf + off, sizeof buf - 1 - (size_t)off)) > 0)
    off += n;
  close(pipe_rd);
  buf[off] = '\0';
  return buf;
}

static void test_log_text_format(void **state)
{
  char *out;
  log_setup(LOG_INFO, LOG_TEXT);
  capture_start();
  log_info("job started", "job=%s pid=%d cmd=%s", "0193abc", 4242, "echo hi there");
  out = capture_end();
  /* 2026-11-23T03:11:16.123Z info  job started job=... */
  assert_int_equal(strlen(out) > 25, 1);
  assert_int_equal(out[4], '-');
  assert_int_equal(out[10], 'T');
  assert_int_equal(out[19], '.');
  assert_int_equal(out[23], 'Z');
  assert_string_equal(out + 24, " info  job started job=0193abc pid=4242 cmd=\"echo hi there\"\n");

  capture_start();
  log_warn("odd \"value\"", "path=%s empty=%s q=%s", "a\nb", "", "say \"x\"");
  out = capture_end();
  assert_string_equal(out + 24,
                      " warn  odd \"value\" path=\"a\\nb\" empty=\"\" q=\"say \\\"x\\\"\"\n");
}

static void test_log_json_format(void **state)
{
  char *out;
  json_t *o;
  log_setup(LOG_DEBUG, LOG_JSON);
  capture_start();
  log_debug("job finished", "job=%s code=%d ratio=%.1f detail=%s tag=%s", "j1", -3, 0.5,
            "line1\nline2 \"q\" \x01", "007");
  out = capture_end();
  assert_int_equal(out[strlen(out) - 1], '\n');
  o = json_loads(out, 0, NULL);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "level")), "debug");
  assert_string_equal(json_string_value(json_object_get(o, "msg")), "job finished");
  assert_int_equal(strlen(json_string_value(json_object_get(o, "ts"))), 24);
  assert_string_equal(json_string_value(json_object_get(o, "job")), "j1");
  assert_int_equal(json_integer_value(json_object_get(o, "code")), -3);
  assert_true(json_is_real(json_object_get(o, "ratio")));
  assert_string_equal(json_string_value(json_object_get(o, "detail")), "line1\nline2 \"q\" \x01");
  json_decref(o);
  assert_non_null(strstr(out, "\"detail\":\"line1\\nline2 \\\"q\\\" \\u0001\""));
  assert_non_null(strstr(out, "\"tag\":\"007\"")); /* not a JSON number */
}

static void test_log_level_filter(void **state)
{
  char *out;
  enum log_level lv;
  enum log_format fm;
  log_setup(LOG_WARN, LOG_TEXT);
  assert_false(log_enabled(LOG_INFO));
  assert_true(log_enabled(LOG_ERROR));
  capture_start();
  log_info("hidden", "%s", "");
  log_debug("hidden", "a=%d", 1);
  log_error("shown", "%s", "");
  out = capture_end();
  assert_null(strstr(out, "hidden"));
  assert_string_equal(out + 24, " error shown\n");
  log_setup(LOG_OFF, LOG_TEXT);
  assert_false(log_enabled(LOG_ERROR));

  assert_int_equal(log_level_parse("warn", &lv), 0);
  assert_int_equal(lv, LOG_WARN);
  assert_int_equal(log_level_parse("loud", &lv), -1);
  assert_int_equal(log_format_parse("json", &fm), 0);
  assert_int_equal(fm, LOG_JSON);
  assert_int_equal(log_format_parse("xml", &fm), -1);
  log_setup(LOG_INFO, LOG_TEXT);
}

static void test_log_fields_without_keys(void **state)
{
  char *out;
  log_setup(LOG_INFO, LOG_JSON);
  capture_start();
  log_info("raw", "just some words a=1");
  out = capture_end();
  assert_non_null(strstr(out, "\"fields\":\"just some words\",\"a\":1}"));
  log_setup(LOG_INFO, LOG_TEXT);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_text_format),
      cmocka_unit_test(test_log_json_format),
      cmocka_unit_test(test_log_level_filter),
      cmocka_unit_test(test_log_fields_without_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
