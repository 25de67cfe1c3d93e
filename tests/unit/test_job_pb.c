/* test_job_pb.c - jobs and results through their protobuf messages and back;
 * spec checks; state names and the transition table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "job/job_pb.h"
#include "job/spec.h"
#include "job/states.h"

static pb_JobSpec *repack(pb_JobSpec *s)
{
  size_t n = protobuf_c_message_get_packed_size(&s->base);
  uint8_t *buf = malloc(n ? n : 1);
  protobuf_c_message_pack(&s->base, buf);
  pb_JobSpec *out =
      (pb_JobSpec *)protobuf_c_message_unpack(&drover__v1__job_spec__descriptor, NULL, n, buf);
  free(buf);
  protobuf_c_message_free_unpacked(&s->base, NULL);
  return out;
}

static void test_job_pb_round_trip(void **state)
{
  struct job j, back;
  char err[256];
  job_init(&j);
  j.kind = JOB_EXEC;
  j.argc = 2;
  j.argv = xcalloc(3, sizeof(char *));
  j.argv[0] = xstrdup("sh");
  j.argv[1] = xstrdup("-c");
  j.name = xstrdup("n");
  j.env = xcalloc(1, sizeof(*j.env));
  j.env[0].key = xstrdup("A");
  j.env[0].value = xstrdup("");
  j.nenv = 1;
  j.timeout_ms = 1500;
  j.priority = -3;
  j.labels = xcalloc(1, sizeof(*j.labels));
  j.labels[0].key = xstrdup("team");
  j.labels[0].value = xstrdup("ops");
  j.nlabels = 1;
  pb_JobSpec *s = repack(job_to_pb(&j));
  assert_non_null(s);
  assert_int_equal(job_from_pb(&back, s, err, sizeof(err)), 0);
  assert_string_equal(back.id, j.id);
  assert_int_equal(back.kind, JOB_EXEC);
  assert_int_equal(back.argc, 2);
  assert_string_equal(back.argv[1], "-c");
  assert_string_equal(back.env[0].key, "A");
  assert_string_equal(back.env[0].value, "");
  assert_int_equal(back.timeout_ms, 1500);
  assert_int_equal(back.kill_grace_ms, JOB_DEFAULT_KILL_GRACE_MS);
  assert_int_equal(back.priority, -3);
  assert_string_equal(back.labels[0].value, "ops");
  protobuf_c_message_free_unpacked(&s->base, NULL);
  job_release(&back);
  job_release(&j);
}

static void test_job_pb_unsupported_is_refused(void **state)
{
  struct job j;
  char err[256];
  pb_JobSpec s = DROVER__V1__JOB_SPEC__INIT;
  s.kind = DROVER__V1__JOB_KIND__JOB_KIND_TOOL;
  assert_int_equal(job_from_pb(&j, &s, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "\"tool\" is required"));
  s.kind = DROVER__V1__JOB_KIND__JOB_KIND_SHELL;
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "\"command\" is required"));
  s.command = "true";
  Drover__V1__Resources res = DROVER__V1__RESOURCES__INIT;
  s.resources = &res;
  res.cpu = 0.001; /* below what cpu.max can hold */
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "resources.cpus"));
  res.cpu = 1.5;
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), 0);
  s.resources = NULL;
  Drover__V1__Isolation iso = DROVER__V1__ISOLATION__INIT;
  s.isolation = &iso;
  iso.network = "nonee";
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "isolation.network"));
  iso.network = "none";
  iso.read_only_workdir = 1;
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "needs \"read_only\""));
  iso.read_only = 1;
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), 0);
  s.isolation = NULL;
  s.stdin = 1;
  s.max_attempts = 2;
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), -1);
  s.max_attempts = 1;
  assert_int_equal(job_spec_check(&s, err, sizeof(err)), 0);
}

/* Container jobs: image and command or argv through JobSpec and back; what
 * the spec check refuses. */
static void test_job_pb_container(void **state)
{
  struct job j, back;
  char err[256];
  job_init(&j);
  j.kind = JOB_CONTAINER;
  j.image = xstrdup("alpine:3");
  j.command = xstrdup("echo hi");
  pb_JobSpec *s = repack(job_to_pb(&j));
  assert_int_equal(s->kind, DROVER__V1__JOB_KIND__JOB_KIND_CONTAINER);
  assert_string_equal(s->image, "alpine:3");
  assert_int_equal(job_from_pb(&back, s, err, sizeof(err)), 0);
  assert_int_equal(back.kind, JOB_CONTAINER);
  assert_string_equal(back.image, "alpine:3");
  assert_string_equal(back.command, "echo hi");
  assert_null(back.argv);
  job_release(&back);
  /* The result's OOM kill goes through JobResult too. */
  struct job_result r, rb;
  job_result_init(&r);
  r.oom_killed = 1;
  r.signal = 9;
  pb_JobResult *pr = job_result_to_pb(&r);
  job_result_from_pb(&rb, pr);
  assert_int_equal(rb.oom_killed, 1);
  protobuf_c_message_free_unpacked(&pr->base, NULL);
  job_result_release(&rb);
  job_result_release(&r);

  /* Fields of the unpacked message are swapped for the checks, then put
   * back before it is freed. */
  char *cmd0 = s->command;
  s->command = NULL;
  char *argv[] = {"ls", "-l"};
  char *keep = s->image;
  s->image = "";
  assert_int_equal(job_spec_check(s, err, sizeof(err)), -1);
  assert_string_equal(err, "\"image\" is required for a container job");
  s->image = keep;
  s->stdin = 1;
  assert_int_equal(job_spec_check(s, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "cannot read stdin"));
  s->stdin = 0;
  s->n_argv = 2;
  char **old_argv = s->argv;
  s->argv = argv;
  assert_int_equal(job_spec_check(s, err, sizeof(err)), 0);
  s->argv = old_argv;
  s->n_argv = 0;
  s->kind = DROVER__V1__JOB_KIND__JOB_KIND_SHELL;
  s->command = "true";
  assert_int_equal(job_spec_check(s, err, sizeof(err)), -1);
  assert_string_equal(err, "\"image\" is used only by a container job");
  s->command = cmd0;
  protobuf_c_message_free_unpacked(&s->base, NULL);
  job_release(&j);
}

static void test_job_pb_result_round_trip(void **state)
{
  struct job_result r, back;
  job_result_init(&r);
  r.status = JOB_TIMED_OUT;
  r.exit_code = -1;
  r.signal = 15;
  r.max_rss_known = 1;
  r.max_rss_kb = 2048;
  r.lines[JOB_STDERR] = 7;
  r.error = xstrdup("x");
  r.progress.percent = 40;
  r.progress.stage = xstrdup("build");
  pb_JobResult *p = job_result_to_pb(&r);
  assert_int_equal(p->state, JS_TIMED_OUT);
  assert_int_equal(p->max_rss_bytes, 2048 * 1024);
  job_result_from_pb(&back, p);
  assert_int_equal(back.status, JOB_TIMED_OUT);
  assert_int_equal(back.signal, 15);
  assert_true(back.max_rss_known);
  assert_int_equal(back.max_rss_kb, 2048);
  assert_int_equal(back.lines[JOB_STDERR], 7);
  assert_string_equal(back.progress.stage, "build");
  assert_int_equal(job_result_exit_code(&back), 124);
  back.status = job_status_from_state(JS_LOST);
  assert_int_equal(job_result_exit_code(&back), JOB_EXIT_LOST);
  assert_string_equal(job_status_name(back.status), "lost");
  protobuf_c_message_free_unpacked(&p->base, NULL);
  job_result_release(&back);
  job_result_release(&r);
}

static void test_job_pb_state_machine(void **state)
{
  assert_true(job_state_can(JS_UNSPECIFIED, JS_QUEUED));
  assert_true(job_state_can(JS_QUEUED, JS_ASSIGNED));
  assert_true(job_state_can(JS_QUEUED, JS_CANCELLED));
  assert_false(job_state_can(JS_QUEUED, JS_RUNNING));
  assert_false(job_state_can(JS_QUEUED, JS_SUCCEEDED));
  assert_true(job_state_can(JS_ASSIGNED, JS_RUNNING));
  assert_true(job_state_can(JS_ASSIGNED, JS_QUEUED));
  assert_true(job_state_can(JS_RUNNING, JS_LOST));
  assert_true(job_state_can(JS_RUNNING, JS_SUCCEEDED));
  assert_false(job_state_can(JS_RUNNING, JS_ASSIGNED));
  for (int from = JS_SUCCEEDED; from <= JS_LOST; from++)
    for (int to = 0; to < JS_COUNT; to++)
      assert_false(job_state_can(from, to)); /* ends are final */
  assert_string_equal(job_state_name(JS_TIMED_OUT), "timed_out");
  assert_int_equal(job_state_parse("timed-out"), JS_TIMED_OUT);
  assert_int_equal(job_state_parse("RUNNING"), JS_RUNNING);
  assert_int_equal(job_state_parse("nope"), -1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_job_pb_round_trip),
      cmocka_unit_test(test_job_pb_unsupported_is_refused),
      cmocka_unit_test(test_job_pb_container),
      cmocka_unit_test(test_job_pb_result_round_trip),
      cmocka_unit_test(test_job_pb_state_machine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
