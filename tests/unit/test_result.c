/* test_result.c - status names, exit codes as scripts see them, result JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "job/result.h"

static void test_result_exit_codes(void **state)
{
  struct job_result r;
  job_result_init(&r);
  assert_int_equal(job_result_exit_code(&r), 125); /* never started */
  r.status = JOB_SUCCEEDED;
  r.exit_code = 0;
  assert_int_equal(job_result_exit_code(&r), 0);
  r.status = JOB_FAILED;
  r.exit_code = 3;
  assert_int_equal(job_result_exit_code(&r), 3);
  r.exit_code = -1;
  r.signal = 9;
  assert_int_equal(job_result_exit_code(&r), 137);
  r.status = JOB_TIMED_OUT;
  assert_int_equal(job_result_exit_code(&r), 124);
  r.status = JOB_CANCELLED;
  r.signal = 15;
  assert_int_equal(job_result_exit_code(&r), 143);
  r.signal = 0;
  assert_int_equal(job_result_exit_code(&r), 130);
  assert_string_equal(job_status_name(JOB_SUCCEEDED), "succeeded");
  assert_string_equal(job_status_name(JOB_FAILED), "failed");
  assert_string_equal(job_status_name(JOB_TIMED_OUT), "timed_out");
  assert_string_equal(job_status_name(JOB_CANCELLED), "cancelled");
  job_result_release(&r);
}

static void test_result_json_fields(void **state)
{
  struct job j;
  struct job_result r;
  json_t *o, *extra = json_pack("{s:s}", "node", "n1");
  char *text;

  job_init(&j);
  j.name = xstrdup("build");
  job_result_init(&r);
  r.status = JOB_FAILED;
  r.exit_code = 2;
  r.started_us = 1795403476123456LL;
  r.finished_us = 1795403477000000LL;
  r.duration_us = 876544;
  r.max_rss_kb = 2048;
  r.max_rss_known = 1;
  r.user_us = 12999;
  r.sys_us = 1000;
  r.lines[JOB_STDOUT] = 3;
  r.bytes[JOB_STDOUT] = 30;
  r.lines[JOB_STDERR] = 1;
  r.bytes[JOB_STDERR] = 6;
  r.progress.percent = 40;
  r.progress.stage = xstrdup("compile");
  r.attempt = 2;

  text = job_result_to_json(&j, &r, extra);
  o = json_loads(text, 0, NULL);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "id")), j.id);
  assert_string_equal(json_string_value(json_object_get(o, "name")), "build");
  assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
  assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 2);
  assert_true(json_is_null(json_object_get(o, "signal")));
  assert_string_equal(json_string_value(json_object_get(o, "started_at")),
                      "2026-11-23T03:11:16.123456Z");
  assert_string_equal(json_string_value(json_object_get(o, "finished_at")),
                      "2026-11-23T03:11:17.000000Z");
  assert_int_equal(json_integer_value(json_object_get(o, "duration_ms")), 876);
  assert_int_equal(json_integer_value(json_object_get(o, "max_rss_kb")), 2048);
  assert_int_equal(json_integer_value(json_object_get(o, "cpu_user_ms")), 12);
  assert_int_equal(json_integer_value(json_object_get(o, "cpu_sys_ms")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "stdout"), "lines")), 3);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "stdout"), "bytes")), 30);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "stderr"), "lines")), 1);
  assert_true(json_is_null(json_object_get(o, "error")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "progress"), "percent")),
                   40);
  assert_string_equal(json_string_value(json_object_get(json_object_get(o, "progress"), "stage")),
                      "compile");
  assert_true(json_is_null(json_object_get(json_object_get(o, "progress"), "message")));
  assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 2);
  assert_int_equal(json_integer_value(json_object_get(o, "exit")), 2);
  assert_string_equal(json_string_value(json_object_get(o, "node")), "n1");
  json_decref(o);
  free(text);
  json_decref(extra);

  /* Never started: times, exit code and progress are null, the error says why. */
  job_result_release(&r);
  r.error = xstrdup("workdir '/nope': No such file or directory \xff");
  text = job_result_to_json(&j, &r, NULL);
  o = json_loads(text, 0, NULL);
  assert_true(json_is_null(json_object_get(o, "started_at")));
  assert_true(json_is_null(json_object_get(o, "exit_code")));
  assert_true(json_is_null(json_object_get(o, "progress")));
  assert_true(json_is_null(json_object_get(o, "max_rss_kb"))); /* unknown */
  assert_string_equal(json_string_value(json_object_get(o, "error")),
                      "workdir '/nope': No such file or directory ?");
  assert_int_equal(json_integer_value(json_object_get(o, "exit")), 125);
  json_decref(o);
  free(text);
  job_result_release(&r);
  job_release(&j);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_result_exit_codes),
      cmocka_unit_test(test_result_json_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
