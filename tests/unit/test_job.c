/* test_job.c - job documents: each kind, defaults, each mistake with its
 * position, round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "job/job.h"

static void parse_ok(struct job *j, const char *text)
{
  struct job_error e;
  int rc = job_parse(j, text, strlen(text), &e);
  if (rc != 0)
    fail_msg("unexpected error: line %d, column %d: %s", e.line, e.column, e.msg);
}

/* Parses a bad document and checks what the user is told. */
static void parse_bad(const char *text, int line, int column, const char *field, const char *msg)
{
  struct job j;
  struct job_error e;
  assert_int_equal(job_parse(&j, text, strlen(text), &e), -1);
  assert_string_equal(e.msg, msg);
  assert_string_equal(e.field, field);
  assert_int_equal(e.line, line);
  assert_int_equal(e.column, column);
  job_release(&j); /* safe on a failed parse: it is left empty */
}

static void test_job_shell_defaults(void **state)
{
  struct job j;
  parse_ok(&j, "{\"command\": \"echo hi\"}");
  assert_int_equal(j.kind, JOB_SHELL);
  assert_string_equal(j.command, "echo hi");
  assert_int_equal(j.timeout_ms, 3600000);
  assert_int_equal(j.kill_grace_ms, 10000);
  assert_int_equal(j.priority, 0);
  assert_int_equal(j.attempt, 1);
  assert_null(j.name);
  assert_null(j.argv);
  assert_null(j.workdir);
  assert_int_equal(j.nenv, 0);
  assert_int_equal(strlen(j.id), 36); /* generated UUIDv7 */
  assert_int_equal(j.id[14], '7');
  job_release(&j);
}

static void test_job_exec_and_script(void **state)
{
  struct job j;
  parse_ok(&j, "{\"id\": \"build-7\", \"kind\": \"exec\", \"argv\": [\"ls\", \"-l\", \"/tmp\"],"
               " \"env\": {\"LANG\": \"C\", \"X\": \"\"}, \"workdir\": \"/srv\", \"timeout\": 90,"
               " \"kill_grace\": \"500ms\", \"priority\": -3, \"labels\": {\"team\": \"ci\"},"
               " \"idempotency_key\": \"k1\", \"name\": \"list\"}");
  assert_string_equal(j.id, "build-7");
  assert_int_equal(j.kind, JOB_EXEC);
  assert_int_equal(j.argc, 3);
  assert_string_equal(j.argv[2], "/tmp");
  assert_null(j.argv[3]);
  assert_int_equal(j.nenv, 2);
  assert_string_equal(j.env[0].key, "LANG");
  assert_string_equal(j.env[1].value, "");
  assert_string_equal(j.workdir, "/srv");
  assert_int_equal(j.timeout_ms, 90000);
  assert_int_equal(j.kill_grace_ms, 500);
  assert_int_equal(j.priority, -3);
  assert_string_equal(j.labels[0].value, "ci");
  assert_string_equal(j.idempotency_key, "k1");
  assert_string_equal(j.name, "list");
  job_release(&j);

  parse_ok(&j, "{\"kind\": \"script\", \"interpreter\": \"python3\", \"script\": \"print(1)\\n\","
               " \"timeout\": 0.25}");
  assert_int_equal(j.kind, JOB_SCRIPT);
  assert_string_equal(j.interpreter, "python3");
  assert_string_equal(j.script, "print(1)\n");
  assert_int_equal(j.timeout_ms, 250);
  job_release(&j);

  /* Without "kind", argv means exec and script means script. */
  parse_ok(&j, "{\"argv\": [\"true\"]}");
  assert_int_equal(j.kind, JOB_EXEC);
  job_release(&j);
  parse_ok(&j, "{\"interpreter\": \"sh\", \"script\": \"exit 0\", \"timeout\": \"0\"}");
  assert_int_equal(j.kind, JOB_SCRIPT);
  assert_int_equal(j.timeout_ms, 0);
  job_release(&j);
}

static void test_job_syntax_errors(void **state)
{
  parse_bad("{\n  \"command\": \"x\",\n}", 3, 1, "",
            "invalid JSON: string or '}' expected near '}'");
  parse_bad("", 1, 0, "", "invalid JSON: '[' or '{' expected near end of file");
  parse_bad("{\"command\": \"a\", \"command\": \"b\"}", 1, 26, "",
            "invalid JSON: duplicate object key near '\"command\"'");
  parse_bad("  [\"echo\"]", 1, 3, "",
            "a job must be a JSON object like {\"command\": \"echo hi\"}");
}

/* What jansson says in its own terms is said plainly. */
static void test_job_bom_and_nul(void **state)
{
  parse_bad("\xef\xbb\xbf{\"command\": \"x\"}", 1, 1, "",
            "the file starts with a byte order mark (BOM): save it as UTF-8 without a BOM");
  parse_bad("{\"command\": \"a\\u0000b\"}", 1, 22, "",
            "invalid JSON: a NUL byte (\\u0000) is not allowed in a string");

  struct job j;
  struct job_error e;
  static const char raw[] = "{\"command\":\n \"\xc3\xa9x\0y\"}";
  assert_int_equal(job_parse(&j, raw, sizeof(raw) - 1, &e), -1);
  assert_string_equal(e.msg, "invalid JSON: a NUL byte (\\u0000) is not allowed in a job file");
  assert_int_equal(e.line, 2);
  assert_int_equal(e.column, 5);
  job_release(&j);
}

/* Fields this version cannot honour are errors: a job asking for isolation
 * must not run without it. */
static void test_job_reserved_fields_are_errors(void **state)
{
  static const char *const names[] = {"container", "retries", "capabilities", "secrets"};
  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    char *doc = xasprintf("{\"command\": \"x\",\n  \"%s\": {}}", names[i]);
    char *msg = xasprintf("\"%s\" is not supported by this version of drover: remove it to run "
                          "the job without it",
                          names[i]);
    parse_bad(doc, 2, 3, names[i], msg);
    free(doc);
    free(msg);
  }
}

/* A positive duration never rounds to 0, which would mean "no limit". */
static void test_job_tiny_durations_round_up(void **state)
{
  struct job j;
  parse_ok(&j, "{\"command\": \"x\", \"timeout\": 0.0000001, \"kill_grace\": 0.0004}");
  assert_int_equal(j.timeout_ms, 1);
  assert_int_equal(j.kill_grace_ms, 1);
  job_release(&j);
  parse_ok(&j, "{\"command\": \"x\", \"timeout\": 0, \"kill_grace\": 0.0}");
  assert_int_equal(j.timeout_ms, 0);
  assert_int_equal(j.kill_grace_ms, 0);
  job_release(&j);
  parse_ok(&j, "{\"command\": \"x\", \"timeout\": 0.0016}");
  assert_int_equal(j.timeout_ms, 2);
  job_release(&j);
}

static void test_job_value_errors(void **state)
{
  parse_bad("{\n  \"command\": \"echo hi\",\n  \"timeout\": \"soon\"\n}", 3, 14, "timeout",
            "\"timeout\" must be a duration like \"30s\", got \"soon\"");
  parse_bad("{\"command\": \"x\", \"kill_grace\": -1}", 1, 32, "kill_grace",
            "\"kill_grace\" must be a duration like \"30s\" or a number of seconds, got -1");
  parse_bad("{\"command\": 42}", 1, 13, "command", "\"command\" must be a string, got 42");
  parse_bad("{\"command\": \"\"}", 1, 13, "command", "\"command\" must not be empty");
  parse_bad("{\"argv\": [\"ls\",\n          \"-l\", 3]}", 2, 17, "argv[2]",
            "\"argv[2]\" must be a string, got 3");
  parse_bad("{\"kind\": \"exec\", \"argv\": []}", 1, 26, "argv",
            "\"argv\" must be a non-empty array of strings like [\"ls\", \"-l\"], got []");
  parse_bad("{\"command\": \"x\", \"env\": {\"A\": \"1\", \"PATH\": 5}}", 1, 44, "env.PATH",
            "\"env.PATH\" must be a string, got 5");
  parse_bad("{\"command\": \"x\", \"env\": [\"A=1\"]}", 1, 25, "env",
            "\"env\" must be an object of strings like {\"LANG\": \"C.UTF-8\"}, got an array");
  parse_bad("{\"command\": \"x\", \"env\": {\"A=B\": \"1\"}}", 1, 26, "env.A=B",
            "\"env\" names must not be empty or contain '=', got \"A=B\"");
  parse_bad("{\"command\": \"x\", \"labels\": {\"t\": true}}", 1, 34, "labels.t",
            "\"labels.t\" must be a string, got true");
  parse_bad("{\"command\": \"x\",\n\"id\": \"a/b\"}", 2, 7, "id",
            "\"id\" must be 1 to 128 letters, digits, '.', '_' or '-', not starting with '.', "
            "got \"a/b\"");
  parse_bad("{\"command\": \"x\", \"kind\": \"bash\"}", 1, 26, "kind",
            "\"kind\" must be one of \"shell\", \"exec\", \"script\", \"container\", \"tool\", "
            "got \"bash\"");
  parse_bad("{\"command\": \"x\", \"priority\": 1.5}", 1, 30, "priority",
            "\"priority\" must be a whole number from -1000000 to 1000000, got 1.5");
  parse_bad("{\"command\": \"x\",\n \"env\": {\"\\u0041B\": 5}}", 2, 21, "env.AB",
            "\"env.AB\" must be a string, got 5");
  /* Positions count characters, not bytes, and skip over tricky strings. */
  parse_bad("{\"name\": \"h\\u00e9 \\\"}{[\", \"command\": \"é\", \"timeout\": true}", 1, 54,
            "timeout",
            "\"timeout\" must be a duration like \"30s\" or a number of seconds, got true");
}

static void test_job_field_errors(void **state)
{
  parse_bad("{\n  \"comand\": \"echo\"\n}", 2, 3, "comand",
            "unknown field \"comand\" (did you mean \"command\"?)");
  parse_bad("{\"command\": \"x\", \"colour\": 1}", 1, 18, "colour",
            "unknown field \"colour\": known fields are id, name, kind, command, argv, "
            "interpreter, script, env, workdir, timeout, kill_grace, priority, idempotency_key, "
            "labels, resources, isolation, image, tool, args");
  parse_bad("{\"command\": \"x\",\n \"argv\": [\"a\"]}", 2, 2, "argv",
            "\"command\" and \"argv\" cannot both be set: a shell job takes \"command\", an exec "
            "job takes \"argv\"");
  parse_bad("{\"kind\": \"exec\", \"argv\": [\"a\"], \"script\": \"x\"}", 1, 33, "script",
            "\"script\" is not used by an exec job: set \"kind\": \"script\"");
  parse_bad("{}", 0, 0, "command", "\"command\" is required for a shell job");
  parse_bad("{\"kind\": \"exec\"}", 0, 0, "argv", "\"argv\" is required for an exec job");
  parse_bad("{\"kind\": \"script\", \"interpreter\": \"python3\"}", 0, 0, "script",
            "\"script\" is required for a script job");
  parse_bad("{\"script\": \"x\"}", 0, 0, "interpreter",
            "\"interpreter\" is required for a script job");
}

static void test_job_round_trip(void **state)
{
  struct job a, b;
  char *t1, *t2;
  parse_ok(&a,
           "{\"name\": \"n\", \"argv\": [\"printf\", \"%s\\n\", \"a \\\"b\\\"\"],"
           " \"env\": {\"Z\": \"1\", \"A\": \"2\"}, \"timeout\": \"1h30m\", \"kill_grace\": 2.5,"
           " \"priority\": 5, \"labels\": {\"x\": \"y\"}, \"idempotency_key\": \"i\","
           " \"workdir\": \"/\"}");
  t1 = job_to_json(&a);
  parse_ok(&b, t1);
  t2 = job_to_json(&b);
  assert_string_equal(t1, t2);
  assert_string_equal(a.id, b.id);
  assert_int_equal(b.kind, JOB_EXEC);
  assert_int_equal(b.argc, 3);
  assert_string_equal(b.argv[2], "a \"b\"");
  assert_string_equal(b.env[0].key, "Z"); /* order kept */
  assert_int_equal(b.timeout_ms, 5400000);
  assert_int_equal(b.kill_grace_ms, 2500);
  assert_int_equal(b.priority, 5);
  free(t1);
  free(t2);
  job_release(&a);
  job_release(&b);

  parse_ok(&a, "{\"kind\": \"script\", \"interpreter\": \"/usr/bin/env node\", \"script\": \"\","
               " \"timeout\": \"0\"}");
  t1 = job_to_json(&a);
  parse_ok(&b, t1);
  assert_int_equal(b.kind, JOB_SCRIPT);
  assert_string_equal(b.script, "");
  assert_int_equal(b.timeout_ms, 0);
  free(t1);
  job_release(&a);
  job_release(&b);
}

static void test_job_to_json_non_utf8(void **state)
{
  struct job a, b;
  char *t;
  job_init(&a);
  a.kind = JOB_EXEC;
  a.argc = 2;
  a.argv = xcalloc(3, sizeof *a.argv);
  a.argv[0] = xstrdup("echo");
  a.argv[1] = xstrdup("caf\xe9");
  t = job_to_json(&a);
  parse_ok(&b, t);
  assert_int_equal(b.argc, 2);
  assert_string_equal(b.argv[1], "caf?");
  free(t);
  job_release(&a);
  job_release(&b);
}

static void test_job_error_format_and_file(void **state)
{
  struct job j;
  struct job_error e;
  char buf[512], path[] = "/tmp/drover-test-job-XXXXXX";
  int fd = mkstemp(path);
  const char *doc = "{\n  \"command\": \"x\",\n  \"timeout\": \"soon\"\n}\n";

  assert_true(fd >= 0);
  assert_int_equal(write(fd, doc, strlen(doc)), (int)strlen(doc));
  close(fd);
  assert_int_equal(job_load_file(&j, path, 1024, &e), -1);
  job_error_format(&e, "job file 'jobs/a.json'", buf, sizeof buf);
  assert_string_equal(buf, "job file 'jobs/a.json': line 3, column 14: \"timeout\" must be a "
                           "duration like \"30s\", got \"soon\"");
  job_error_format(&e, NULL, buf, sizeof buf);
  assert_string_equal(buf, "line 3, column 14: \"timeout\" must be a duration like \"30s\", got "
                           "\"soon\"");
  /* Bounded: a file over the limit is not read. */
  assert_int_equal(job_load_file(&j, path, 10, &e), -1);
  assert_string_equal(e.msg, "is larger than the 10 bytes allowed");
  /* Never through a symbolic link, never from something that is not a file. */
  char *link = xasprintf("%s.link", path);
  assert_int_equal(symlink(path, link), 0);
  assert_int_equal(job_load_file(&j, link, 1024, &e), -1);
  assert_string_equal(e.msg, "is a symbolic link; a job file must be a regular file");
  unlink(link);
  assert_int_equal(mkfifo(link, 0600), 0);
  assert_int_equal(job_load_file(&j, link, 1024, &e), -1); /* does not wait for a writer */
  assert_string_equal(e.msg, "is not a regular file; a job file must be one");
  unlink(link);
  free(link);
  unlink(path);
  assert_int_equal(job_load_file(&j, path, 1024, &e), -1);
  job_error_format(&e, "job file 'x'", buf, sizeof buf);
  assert_string_equal(buf, "job file 'x': cannot read: No such file or directory");
  job_release(&j);
}

/* Container jobs: "image" makes one, with a shell line, argv or neither. */
static void test_job_container(void **state)
{
  struct job a, b;
  char *t;
  parse_ok(&a, "{\"image\": \"local/busybox:1\", \"command\": \"echo hi\"}");
  assert_int_equal(a.kind, JOB_CONTAINER);
  assert_string_equal(a.image, "local/busybox:1");
  assert_string_equal(a.command, "echo hi");
  t = job_to_json(&a);
  parse_ok(&b, t);
  assert_int_equal(b.kind, JOB_CONTAINER);
  assert_string_equal(b.image, "local/busybox:1");
  free(t);
  job_release(&a);
  job_release(&b);
  parse_ok(&a, "{\"kind\": \"container\", \"image\": \"x\", \"argv\": [\"ls\", \"-l\"]}");
  assert_int_equal(a.argc, 2);
  job_release(&a);
  parse_ok(&a, "{\"kind\": \"container\", \"image\": \"x\"}");
  assert_null(a.command);
  assert_null(a.argv);
  job_release(&a);
  parse_bad("{\"kind\": \"container\", \"command\": \"x\"}", 0, 0, "image",
            "\"image\" is required for a container job, like \"image\": \"alpine:3\"");
  parse_bad("{\"kind\": \"shell\", \"command\": \"x\", \"image\": \"y\"}", 1, 35, "image",
            "\"image\" is used only by a container job: set \"kind\": \"container\"");
  parse_bad("{\"image\": \"y\", \"script\": \"z\"}", 1, 16, "script",
            "\"script\" is not used by a container job: give \"command\" or \"argv\"");
}

/* ---- sandbox fields (issue 8) ---- */

static void test_job_resources_and_isolation_round_trip(void **state)
{
  struct job j, back;
  parse_ok(&j, "{\"command\": \"x\", \"resources\": {\"memory\": \"256M\", \"cpus\": 1.5, "
               "\"pids\": 100}, \"isolation\": {\"network\": \"none\", \"read_only\": true, "
               "\"read_only_workdir\": true, \"mounts\": [\"/a:/b\", \"/c:/d:ro\"], "
               "\"user\": \"nobody\", \"pid_namespace\": true, \"hostname\": \"box-1\", "
               "\"tmp_size\": \"16M\"}}");
  assert_int_equal(j.resources.memory_bytes, 256u << 20);
  assert_true(j.resources.cpus == 1.5);
  assert_int_equal(j.resources.pids, 100);
  assert_int_equal(j.isolation.network, JOB_NET_NONE);
  assert_true(j.isolation.read_only && j.isolation.read_only_workdir && j.isolation.pid_namespace);
  assert_int_equal(j.isolation.nmounts, 2);
  assert_string_equal(j.isolation.mounts[1].src, "/c");
  assert_string_equal(j.isolation.mounts[1].dst, "/d");
  assert_true(j.isolation.mounts[1].read_only && !j.isolation.mounts[0].read_only);
  assert_string_equal(j.isolation.user, "nobody");
  assert_string_equal(j.isolation.hostname, "box-1");
  assert_int_equal(j.isolation.tmp_size, 16u << 20);
  char *out = job_to_json(&j);
  parse_ok(&back, out);
  char *again = job_to_json(&back);
  assert_string_equal(out, again);
  assert_non_null(strstr(out, "\"memory\": \"256M\""));
  assert_non_null(strstr(out, "\"/c:/d:ro\""));
  free(out);
  free(again);
  job_release(&back);
  job_release(&j);
  /* Nothing asked: neither object is written. */
  parse_ok(&j, "{\"command\": \"x\", \"resources\": {}, \"isolation\": {\"network\": \"host\"}}");
  out = job_to_json(&j);
  assert_null(strstr(out, "resources"));
  assert_null(strstr(out, "isolation"));
  free(out);
  job_release(&j);
}

static void test_job_resources_and_isolation_errors(void **state)
{
  parse_bad("{\"command\": \"x\",\n \"resources\": {\"memory\": \"lots\"}}", 2, 26,
            "resources.memory",
            "\"resources.memory\" must be a size like \"256M\" (K, M, G: powers of 1024) or a "
            "number of bytes, got \"lots\"");
  parse_bad("{\"command\": \"x\", \"resources\": {\"memory\": 1000}}", 1, 42, "resources.memory",
            "\"resources.memory\" must be at least 1M, got 1000");
  parse_bad("{\"command\": \"x\", \"resources\": {\"cpus\": 0}}", 1, 40, "resources.cpus",
            "\"resources.cpus\" must be a number of CPUs from 0.01 to 4096 like 1.5, got 0");
  parse_bad("{\"command\": \"x\", \"resources\": {\"pids\": 1.5}}", 1, 40, "resources.pids",
            "\"resources.pids\" must be a whole number from 1 to 4194304, got 1.5");
  parse_bad("{\"command\": \"x\", \"resources\": {\"memroy\": \"1G\"}}", 1, 32, "resources.memroy",
            "unknown field \"resources.memroy\" (did you mean \"memory\"?)");
  parse_bad("{\"command\": \"x\", \"isolation\": {\"network\": \"off\"}}", 1, 43,
            "isolation.network", "\"isolation.network\" must be \"none\" or \"host\", got \"off\"");
  parse_bad("{\"command\": \"x\", \"isolation\": {\"mounts\": [\"/a\"]}}", 1, 43,
            "isolation.mounts[0]",
            "\"isolation.mounts[0]\": mount \"/a\" must look like \"SRC:DST\" or \"SRC:DST:ro\"");
  parse_bad("{\"command\": \"x\", \"isolation\": {\"mounts\": [\"a:/b\"]}}", 1, 43,
            "isolation.mounts[0]",
            "\"isolation.mounts[0]\": mount \"a:/b\": both paths must be absolute");
  parse_bad("{\"command\": \"x\", \"isolation\": {\"read_only_workdir\": true}}", 1, 32,
            "isolation.read_only_workdir",
            "\"isolation.read_only_workdir\" needs \"read_only\": true");
  parse_bad("{\"command\": \"x\", \"isolation\": {\"hostname\": \"a b\"}}", 1, 44,
            "isolation.hostname",
            "\"isolation.hostname\" must be 1 to 64 letters, digits, '-' or '.', got \"a b\"");
  parse_bad("{\"command\": \"x\", \"isolation\": {\"pid_namespace\": 1}}", 1, 49,
            "isolation.pid_namespace", "\"isolation.pid_namespace\" must be true or false, got 1");
  parse_bad("{\"command\": \"x\", \"isolation\": []}", 1, 31, "isolation",
            "\"isolation\" must be an object like {\"network\": \"none\", \"read_only\": true}, "
            "got an array");
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_job_shell_defaults),
      cmocka_unit_test(test_job_exec_and_script),
      cmocka_unit_test(test_job_syntax_errors),
      cmocka_unit_test(test_job_value_errors),
      cmocka_unit_test(test_job_field_errors),
      cmocka_unit_test(test_job_round_trip),
      cmocka_unit_test(test_job_error_format_and_file),
      cmocka_unit_test(test_job_to_json_non_utf8),
      cmocka_unit_test(test_job_bom_and_nul),
      cmocka_unit_test(test_job_reserved_fields_are_errors),
      cmocka_unit_test(test_job_tiny_durations_round_up),
      cmocka_unit_test(test_job_container),
      cmocka_unit_test(test_job_resources_and_isolation_round_trip),
      cmocka_unit_test(test_job_resources_and_isolation_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
