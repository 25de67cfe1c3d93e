/* test_dockerjson.c - the container's create body from a job, and the
 * engine's error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "container/dockerjson.h"
#include "job/job.h"

static json_t *body_of(const char *doc, const char *node)
{
  struct job j;
  struct job_error e;
  assert_int_equal(job_parse(&j, doc, strlen(doc), &e), 0);
  char *text = dockerjson_create_body(&j, node);
  json_t *b = json_loads(text, 0, NULL);
  assert_non_null(b);
  free(text);
  job_release(&j);
  return b;
}

static const char *str(json_t *o, const char *key)
{
  const char *s = json_string_value(json_object_get(o, key));
  assert_non_null(s);
  return s;
}

static void test_dockerjson_shell_line(void **state)
{
  json_t *b = body_of("{\"id\": \"j1\", \"image\": \"alpine:3\", \"command\": \"echo $A\","
                      " \"env\": {\"A\": \"1\"}, \"workdir\": \"/w\"}",
                      "node-7");
  assert_string_equal(str(b, "Image"), "alpine:3");
  json_t *ep = json_object_get(b, "Entrypoint"), *cmd = json_object_get(b, "Cmd");
  assert_int_equal(json_array_size(ep), 2);
  assert_string_equal(json_string_value(json_array_get(ep, 0)), "/bin/sh");
  assert_string_equal(json_string_value(json_array_get(ep, 1)), "-c");
  assert_int_equal(json_array_size(cmd), 1);
  assert_string_equal(json_string_value(json_array_get(cmd, 0)), "echo $A");
  json_t *env = json_object_get(b, "Env");
  assert_int_equal(json_array_size(env), 3);
  assert_string_equal(json_string_value(json_array_get(env, 0)), "A=1");
  assert_string_equal(json_string_value(json_array_get(env, 1)), "DROVER_JOB_ID=j1");
  assert_string_equal(json_string_value(json_array_get(env, 2)), "DROVER_ATTEMPT=1");
  assert_string_equal(str(b, "WorkingDir"), "/w");
  json_t *labels = json_object_get(b, "Labels");
  assert_string_equal(str(labels, "drover.job"), "j1");
  assert_string_equal(str(labels, "drover.agent"), "node-7");
  assert_true(json_is_false(json_object_get(b, "Tty")));
  assert_true(json_is_true(json_object_get(b, "AttachStderr")));
  /* Nothing asked for: the engine's defaults. */
  assert_int_equal(json_object_size(json_object_get(b, "HostConfig")), 0);
  json_decref(b);
}

static void test_dockerjson_argv_and_no_command(void **state)
{
  json_t *b = body_of("{\"image\": \"x\", \"argv\": [\"ls\", \"-l\"]}", NULL);
  assert_null(json_object_get(b, "Entrypoint")); /* the image's own stays */
  assert_int_equal(json_array_size(json_object_get(b, "Cmd")), 2);
  assert_null(json_object_get(json_object_get(b, "Labels"), "drover.agent"));
  json_decref(b);
  b = body_of("{\"image\": \"x\"}", "");
  assert_null(json_object_get(b, "Cmd"));
  assert_null(json_object_get(b, "Entrypoint"));
  json_decref(b);
}

static void test_dockerjson_resources_and_isolation(void **state)
{
  json_t *b = body_of("{\"image\": \"x\", \"command\": \"y\","
                      " \"resources\": {\"memory\": \"64M\", \"cpus\": 1.5, \"pids\": 50},"
                      " \"isolation\": {\"network\": \"none\", \"read_only\": true,"
                      " \"tmp_size\": \"16M\", \"mounts\": [\"/a:/b:ro\", \"/c:/d\"],"
                      " \"user\": \"1000:1000\", \"hostname\": \"h\"}}",
                      NULL);
  json_t *hc = json_object_get(b, "HostConfig");
  assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 64 << 20);
  assert_int_equal(json_integer_value(json_object_get(hc, "MemorySwap")), 64 << 20);
  assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 1500000000);
  assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 50);
  assert_string_equal(str(hc, "NetworkMode"), "none");
  assert_true(json_is_true(json_object_get(hc, "ReadonlyRootfs")));
  assert_string_equal(str(json_object_get(hc, "Tmpfs"), "/tmp"), "rw,nosuid,nodev,size=16777216");
  json_t *binds = json_object_get(hc, "Binds");
  assert_int_equal(json_array_size(binds), 2);
  assert_string_equal(json_string_value(json_array_get(binds, 0)), "/a:/b:ro");
  assert_string_equal(json_string_value(json_array_get(binds, 1)), "/c:/d");
  assert_string_equal(str(b, "User"), "1000:1000");
  assert_string_equal(str(b, "Hostname"), "h");
  json_decref(b);
}

static void test_dockerjson_messages(void **state)
{
  char *m = dockerjson_message("{\"message\":\"No such image: a:1\"}\n", 404);
  assert_string_equal(m, "No such image: a:1");
  free(m);
  m = dockerjson_message("plain text\n", 500);
  assert_string_equal(m, "plain text");
  free(m);
  m = dockerjson_message("", 502);
  assert_string_equal(m, "HTTP status 502");
  free(m);
  m = dockerjson_query_escape("127.0.0.1:5000/a b@sha256");
  assert_string_equal(m, "127.0.0.1%3A5000%2Fa%20b%40sha256");
  free(m);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dockerjson_shell_line),
      cmocka_unit_test(test_dockerjson_argv_and_no_command),
      cmocka_unit_test(test_dockerjson_resources_and_isolation),
      cmocka_unit_test(test_dockerjson_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
