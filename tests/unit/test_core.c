/* test_core.c - the agent core: jobs told apart by (id, attempt), the sink,
 * attempt records (format, and the kill of what a previous life left), and
 * the phases of a shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/core.h"
#include "base/util.h"
#include "exec/exec.h"

struct tjob {
  struct core_job cj;
  int started, done, lines;
  char first[64];
  struct core_attempt rec;
  enum job_status status;
};

struct seen {
  int done, phase2, idle;
  struct agent_core *c;
};

static void sink_line(void *impl, enum job_stream s, int64_t ts, const char *data, size_t len,
                      unsigned flags)
{
  struct tjob *t = impl;
  if (s != JOB_STDOUT)
    return;
  if (!t->lines++)
    snprintf(t->first, sizeof(t->first), "%.*s", (int)len, data);
}

static void on_started(struct agent_core *c, void *ud, struct core_job *cj,
                       const struct core_attempt *a)
{
  struct tjob *t = (struct tjob *)cj;
  t->started = 1;
  t->rec = *a;
}

static void on_done(struct agent_core *c, void *ud, struct core_job *cj, const struct job *j,
                    const struct job_result *r)
{
  struct seen *s = ud;
  struct tjob *t = (struct tjob *)cj;
  assert_int_equal(j->attempt, cj->attempt);
  assert_null(core_find(c, cj->id, cj->attempt));
  t->done = 1;
  t->status = r->status;
  s->done++;
}

static void on_phase(struct agent_core *c, void *ud, int phase)
{
  struct seen *s = ud;
  if (phase == 2)
    s->phase2 = 1;
}

static const struct core_ops ops = {NULL, on_started, NULL, on_done, on_phase};

static void submit(struct agent_core *c, struct tjob *t, const char *id, unsigned attempt,
                   const char *cmd)
{
  struct job j;
  job_init(&j);
  snprintf(j.id, sizeof(j.id), "%s", id);
  j.command = xstrdup(cmd);
  j.kill_grace_ms = 100;
  memset(t, 0, sizeof(*t));
  snprintf(t->cj.id, sizeof(t->cj.id), "%s", id);
  t->cj.attempt = attempt;
  t->cj.stdin_fd = -1;
  t->cj.sink.line = sink_line;
  t->cj.sink.impl = t;
  assert_int_equal(core_submit(c, &t->cj, &j), 0);
}

static void closed(void *ud)
{
  *(int *)ud = 1;
}

static void finish(uv_loop_t *loop, struct agent_core *c)
{
  int done = 0;
  core_close(c, closed, &done);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_true(done);
  exec_loop_done(loop);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* Two attempts of one job at once: each is its own, a cancel hits one. */
static void test_core_attempts_are_apart(void **state)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct core_opts o = {2, 1000};
  struct agent_core *c = core_new(&loop, &o, &ops, &s);
  struct tjob a, b, dup;
  submit(c, &a, "job", 1, "echo one $DROVER_ATTEMPT; sleep 30");
  submit(c, &b, "job", 2, "echo two $DROVER_ATTEMPT");
  /* The same attempt again is refused, nothing taken. */
  struct job j;
  job_init(&j);
  snprintf(j.id, sizeof(j.id), "job");
  memset(&dup, 0, sizeof(dup));
  snprintf(dup.cj.id, sizeof(dup.cj.id), "job");
  dup.cj.attempt = 2;
  assert_int_equal(core_submit(c, &dup.cj, &j), -EEXIST);
  job_release(&j);
  assert_ptr_equal(core_find(c, "job", 1), &a.cj);
  assert_int_equal(core_running(c), 2);
  while (!b.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_false(a.done);
  assert_string_equal(b.first, "two 2");
  assert_int_equal(b.status, JOB_SUCCEEDED);
  core_cancel(c, &a.cj, 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.status, JOB_CANCELLED);
  assert_string_equal(a.first, "one 1");
  /* The record names the job's process and this boot. */
  assert_int_equal(a.rec.n, 1);
  assert_true(a.rec.pgid > 1);
  assert_int_equal(strlen(a.rec.boot), PROC_BOOT_ID_LEN);
  finish(&loop, c);
}

static void idle(struct agent_core *c, void *ud)
{
  ((struct seen *)ud)->idle++;
}

/* Shutdown: queued jobs never start, running ones get their time, then are
 * cancelled; a hold keeps it open until released. */
static void test_core_shutdown_phases(void **state)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct seen s = {0};
  struct core_opts o = {1, 200};
  struct agent_core *c = core_new(&loop, &o, &ops, &s);
  struct tjob run, queued;
  submit(c, &run, "long", 1, "sleep 30");
  submit(c, &queued, "next", 1, "echo never");
  assert_int_equal(core_queued(c), 1);
  core_hold(c);
  core_shutdown(c, idle, &s);
  assert_int_equal(core_shutdown_phase(c), 1);
  assert_true(queued.done && !queued.started);
  assert_int_equal(queued.status, JOB_CANCELLED);
  while (!run.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_true(s.phase2);
  assert_int_equal(run.status, JOB_CANCELLED);
  /* Jobs are over; the hold is not. */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(s.idle, 0);
  core_unhold(c);
  while (!s.idle)
    uv_run(&loop, UV_RUN_ONCE);
  finish(&loop, c);
}

static void test_core_attempt_format_and_parse(void **state)
{
  struct core_attempt a = {.n = 2, .pgid = 777, .start = 123456789012ull}, b;
  memcpy(a.boot, "25e102b4-9c1f-40b8-8884-75ca26f3bc5a", PROC_BOOT_ID_LEN + 1);
  char buf[128];
  core_attempt_format(&a, buf, sizeof(buf));
  assert_string_equal(buf, "2 777 123456789012 25e102b4-9c1f-40b8-8884-75ca26f3bc5a");
  core_attempt_parse(buf, &b);
  assert_int_equal(b.n, 2);
  assert_int_equal(b.pgid, 777);
  assert_int_equal(b.start, 123456789012ull);
  assert_string_equal(b.boot, a.boot);
  core_attempt_parse("3\n", &b);
  assert_int_equal(b.n, 3);
  assert_int_equal(b.pgid, 0);
  core_attempt_parse("junk", &b);
  assert_int_equal(b.n, 0);
}

/* What a previous life left: a process group found by its record and
 * killed; a record from another boot kills nothing. */
static void test_core_attempt_kill(void **state)
{
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    if (fork() == 0) {
      execl("/bin/sleep", "sleep", "30", (char *)NULL);
      _exit(127);
    }
    execl("/bin/sleep", "sleep", "30", (char *)NULL);
    _exit(127);
  }
  struct proc_stat st;
  int tries = 0;
  while ((proc_stat_read(pid, &st) < 0 || st.pgid != pid) && tries++ < 1000)
    usleep(1000);
  struct core_attempt a = {.n = 1, .pgid = pid, .start = st.start};
  proc_boot_id(a.boot, sizeof(a.boot));
  struct core_attempt other = a;
  other.boot[0] = other.boot[0] == 'a' ? 'b' : 'a';
  assert_int_equal(core_attempt_kill("job", &other, 1000), 0);
  assert_int_equal(kill(pid, 0), 0);
  int killed = core_attempt_kill("job", &a, 5000);
  assert_true(killed >= 1);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ; /* the grandchild, reaped as our orphan */
}

int main(int argc, char **argv)
{
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_core_attempts_are_apart),
      cmocka_unit_test(test_core_shutdown_phases),
      cmocka_unit_test(test_core_attempt_format_and_parse),
      cmocka_unit_test(test_core_attempt_kill),
  };
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
