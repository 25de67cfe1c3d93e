/* test_tools_job.c - the tool kind of the job document and JobSpec, and a
 * runner's policy applied to a tool job (tools_job_prepare). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "exec/cmd.h"
#include "job/job.h"
#include "job/job_pb.h"
#include "job/spec.h"
#include "tools/policy.h"
#include "tools/tools.h"

static void parse_ok(const char *doc, struct job *j)
{
  struct job_error e;
  if (job_parse(j, doc, strlen(doc), &e) < 0)
    fail_msg("%s: %s", doc, e.msg);
}

static void parse_bad(const char *doc, const char *field, const char *msg_part)
{
  struct job j;
  struct job_error e;
  assert_int_equal(job_parse(&j, doc, strlen(doc), &e), -1);
  assert_string_equal(e.field, field);
  if (!strstr(e.msg, msg_part))
    fail_msg("'%s' lacks '%s'", e.msg, msg_part);
}

static void test_tools_job_parse_and_back(void **state)
{
  struct job j, back;
  parse_ok("{\"id\": \"t1\", \"tool\": \"grep\", \"args\": {\"pattern\": \"a\", \"path\": \"src\"},"
           " \"timeout\": \"5s\"}",
           &j);
  assert_int_equal(j.kind, JOB_TOOL);
  assert_string_equal(j.tool, "grep");
  assert_string_equal(j.tool_args, "{\"pattern\":\"a\",\"path\":\"src\"}");
  char *text = job_to_json(&j);
  parse_ok(text, &back);
  assert_int_equal(back.kind, JOB_TOOL);
  assert_string_equal(back.tool_args, j.tool_args);
  assert_non_null(strstr(text, "\"kind\": \"tool\""));
  free(text);
  job_release(&back);
  job_release(&j);
  /* args may be left out: {} */
  parse_ok("{\"kind\": \"tool\", \"tool\": \"list\"}", &j);
  assert_null(j.tool_args);
  job_release(&j);
}

static void test_tools_job_parse_errors(void **state)
{
  parse_bad("{\"kind\": \"tool\"}", "tool", "\"tool\" is required");
  parse_bad("{\"tool\": \"list\", \"args\": [1]}", "args", "must be an object");
  parse_bad("{\"tool\": \"list\", \"command\": \"ls\"}", "command", "not used by a tool job");
  parse_bad("{\"tool\": \"list\", \"env\": {\"LD_PRELOAD\": \"x\"}}", "env",
            "not used by a tool job");
  parse_bad("{\"tool\": \"list\", \"workdir\": \"/\"}", "workdir", "not used by a tool job");
  parse_bad("{\"tool\": \"list\", \"isolation\": {\"network\": \"none\"}}", "isolation",
            "not used by a tool job");
  parse_bad("{\"command\": \"ls\", \"args\": {}}", "args", "set \"kind\": \"tool\"");
}

static void test_tools_job_pb_round_trip_and_checks(void **state)
{
  struct job j, back;
  char err[256];
  parse_ok("{\"tool\": \"file_read\", \"args\": {\"path\": \"a\"}}", &j);
  pb_JobSpec *s = job_to_pb(&j);
  assert_int_equal(s->kind, DROVER__V1__JOB_KIND__JOB_KIND_TOOL);
  assert_string_equal(s->tool, "file_read");
  assert_int_equal(job_from_pb(&back, s, err, sizeof err), 0);
  assert_int_equal(back.kind, JOB_TOOL);
  assert_string_equal(back.tool_args, "{\"path\":\"a\"}");
  job_release(&back);
  free(s->tool_args);
  s->tool_args = xstrdup("[1]");
  assert_int_equal(job_spec_check(s, err, sizeof err), -1);
  assert_non_null(strstr(err, "JSON object"));
  free(s->tool_args);
  s->tool_args = NULL;
  s->stdin = 1;
  assert_int_equal(job_spec_check(s, err, sizeof err), -1);
  assert_non_null(strstr(err, "stdin"));
  s->stdin = 0;
  s->kind = DROVER__V1__JOB_KIND__JOB_KIND_SHELL;
  s->command = xstrdup("ls");
  assert_int_equal(job_spec_check(s, err, sizeof err), -1);
  assert_non_null(strstr(err, "kind tool"));
  protobuf_c_message_free_unpacked(&s->base, NULL);
  job_release(&j);
}

static void test_tools_job_prepare_builds_argv_and_isolation(void **state)
{
  struct tools_policy p;
  struct job j;
  struct cmd c;
  char err[256];
  char *roots[] = {"."}, *allow[] = {"example.com"};

  memset(&p, 0, sizeof p);
  p.roots = (struct cfg_list){roots, 1};
  p.fetch_allow = (struct cfg_list){allow, 1};
  p.max_bytes = 1024;
  assert_int_equal(tools_policy_setup(&p, err, sizeof err), 0);
  assert_string_equal(p.argv[1], "tool-exec");
  assert_string_equal(p.argv[p.argc - 1], "--");

  parse_ok("{\"tool\": \"list\", \"args\": {\"path\": \".\"}}", &j);
  tools_job_prepare(&j, &p);
  assert_non_null(j.tool_argv);
  size_t n = 0;
  while (j.tool_argv[n])
    n++;
  assert_int_equal(n, p.argc + 1);
  assert_string_equal(j.tool_argv[n - 1], "list");
  assert_int_equal(j.isolation.network, JOB_NET_HOST); /* no --tool-isolate */
  /* what runs: the policy's words, the args on stdin, a header naming the tool */
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  assert_null(c.error);
  assert_true(c.stdin_fd >= 0);
  assert_string_equal(c.header, "$ tool list '{\"path\":\".\"}'\n");
  cmd_release(&c);
  job_release(&j);
  tools_policy_release(&p);

  /* --tool-isolate: network none but for the network tools; roots bound */
  memset(&p, 0, sizeof p);
  p.roots = (struct cfg_list){roots, 1};
  p.max_bytes = 1024;
  p.isolate = 1;
  assert_int_equal(tools_policy_setup(&p, err, sizeof err), 0);
  parse_ok("{\"tool\": \"grep\", \"args\": {\"pattern\": \"x\"}}", &j);
  tools_job_prepare(&j, &p);
  assert_int_equal(j.isolation.network, JOB_NET_NONE);
  assert_true(j.isolation.read_only);
  /* the folder of drover's own binary, then the root: both read-only */
  assert_int_equal(j.isolation.nmounts, 2);
  for (size_t i = 0; i < 2; i++) {
    assert_true(j.isolation.mounts[i].read_only);
    assert_string_equal(j.isolation.mounts[i].src, j.isolation.mounts[i].dst);
  }
  size_t dl = strlen(j.isolation.mounts[0].src);
  assert_memory_equal(j.tool_argv[0], j.isolation.mounts[0].src, dl);
  assert_int_equal(j.tool_argv[0][dl], '/');
  assert_null(strchr(j.tool_argv[0] + dl + 1, '/'));
  assert_string_equal(j.workdir, "/");
  job_release(&j);
  parse_ok("{\"tool\": \"fetch_url\", \"args\": {\"url\": \"http://x/\"}}", &j);
  tools_job_prepare(&j, &p);
  assert_int_equal(j.isolation.network, JOB_NET_HOST);
  job_release(&j);
  tools_policy_release(&p);
}

static void test_tools_job_without_policy_fails_to_start(void **state)
{
  struct job j;
  struct cmd c;
  parse_ok("{\"tool\": \"list\"}", &j);
  tools_job_prepare(&j, NULL);
  assert_int_equal(cmd_build(&c, &j, NULL), 0);
  assert_non_null(c.error);
  assert_non_null(strstr(c.error, "cannot run tool jobs"));
  cmd_release(&c);
  job_release(&j);
}

static void test_tools_policy_setup_errors(void **state)
{
  struct tools_policy p;
  char err[256];
  char *bad[] = {"/nonexistent/drover"};
  memset(&p, 0, sizeof p);
  p.max_bytes = 1;
  p.roots = (struct cfg_list){bad, 1};
  assert_int_equal(tools_policy_setup(&p, err, sizeof err), -1);
  assert_non_null(strstr(err, "--tool-root must name an existing folder"));
  tools_policy_release(&p);
  memset(&p, 0, sizeof p);
  p.max_bytes = 1;
  p.tools = "grep,nuke";
  assert_int_equal(tools_policy_setup(&p, err, sizeof err), -1);
  assert_non_null(strstr(err, "unknown tool \"nuke\""));
  tools_policy_release(&p);
  assert_true(tools_known("web_search"));
  assert_false(tools_known("shell"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tools_job_parse_and_back),
      cmocka_unit_test(test_tools_job_parse_errors),
      cmocka_unit_test(test_tools_job_pb_round_trip_and_checks),
      cmocka_unit_test(test_tools_job_prepare_builds_argv_and_isolation),
      cmocka_unit_test(test_tools_job_without_policy_fails_to_start),
      cmocka_unit_test(test_tools_policy_setup_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
