/* test_pool.c - slots, priority order, cancelling queued and running jobs,
 * line flags passed through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "base/util.h"
#include "exec/lines.h"
#include "exec/pool.h"

struct seen {
  struct pool *p;
  unsigned running, max_running, started, done;
  char order[16][32];     /* names in start order */
  char done_ids[16][129]; /* ids in done order */
  struct job_result r[16];
  char first_line[16][64]; /* first stdout line per done job */
  char lines[16][64];      /* per start index */
  char last_line[16][64];  /* per start index: the last stdout line ... */
  int last_flags[16];      /* ... and its flags */
};

static int start_index(struct seen *s, const struct job *j)
{
  for (unsigned i = 0; i < s->started; i++)
    if (strcmp(s->order[i], j->name) == 0)
      return (int)i;
  return -1;
}

static void on_start(struct pool *p, void *ud, struct exec *e, const struct job *j)
{
  struct seen *s = ud;
  assert_true(exec_pid(e) > 0);
  assert_string_equal(exec_job(e)->id, j->id);
  snprintf(s->order[s->started++], sizeof s->order[0], "%s", j->name);
  s->running++;
  if (s->running > s->max_running)
    s->max_running = s->running;
  assert_int_equal(pool_running(p), s->running);
}

static void on_line(struct pool *p, void *ud, const struct job *j, enum job_stream st, int64_t ts,
                    const char *data, size_t len, int flags)
{
  struct seen *s = ud;
  int i = start_index(s, j);
  if (st == JOB_STDOUT && i >= 0 && !s->lines[i][0])
    snprintf(s->lines[i], sizeof s->lines[0], "%.*s", (int)len, data);
  if (st == JOB_STDOUT && i >= 0) {
    snprintf(s->last_line[i], sizeof s->last_line[0], "%.*s", (int)len, data);
    s->last_flags[i] = flags;
  }
}

static void on_done(struct pool *p, void *ud, const struct job *j, const struct job_result *r)
{
  struct seen *s = ud;
  if (r->started_us)
    s->running--;
  snprintf(s->done_ids[s->done], sizeof s->done_ids[0], "%s", j->id);
  s->r[s->done] = *r;
  s->r[s->done].error = NULL;
  s->r[s->done].progress.stage = s->r[s->done].progress.message = NULL;
  s->done++;
}

static const struct pool_ops ops = {NULL, on_start, on_line, NULL, on_done};

static void submit(struct pool *p, const char *name, const char *cmd, int prio, char *id_out)
{
  struct job j;
  job_init(&j);
  j.name = xstrdup(name);
  j.command = xstrdup(cmd);
  j.priority = prio;
  if (id_out)
    strcpy(id_out, j.id);
  pool_submit(p, &j); /* moved: not released here */
}

static void run_loop(uv_loop_t *loop, struct pool *p)
{
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(pool_running(p), 0);
  pool_free(p);
  exec_loop_done(loop);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void test_pool_concurrency_limit(void **state)
{
  uv_loop_t loop;
  struct seen s = {0};
  char name[8];
  uv_loop_init(&loop);
  struct pool *p = pool_new(&loop, 2, NULL, &ops, &s);
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "j%d", i);
    submit(p, name, "sleep 0.1; echo out", 0, NULL);
  }
  assert_int_equal(pool_running(p), 2);
  assert_int_equal(pool_queued(p), 3);
  run_loop(&loop, p);
  assert_int_equal(s.started, 5);
  assert_int_equal(s.done, 5);
  assert_int_equal(s.max_running, 2);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(s.r[i].status, JOB_SUCCEEDED);
    assert_string_equal(s.lines[i], "out");
  }
}

/* One slot, taken by a blocker; then priorities 1, 5, 3 and another 5:
 * they run 5, 5 (first come first), 3, 1. */
static void test_pool_priority_order(void **state)
{
  uv_loop_t loop;
  struct seen s = {0};
  uv_loop_init(&loop);
  struct pool *p = pool_new(&loop, 1, NULL, &ops, &s);
  submit(p, "blocker", "sleep 0.2", 0, NULL);
  submit(p, "p1", "true", 1, NULL);
  submit(p, "p5a", "true", 5, NULL);
  submit(p, "p3", "true", 3, NULL);
  submit(p, "p5b", "true", 5, NULL);
  submit(p, "p0", "true", 0, NULL);
  assert_int_equal(pool_queued(p), 5);
  run_loop(&loop, p);
  const char *want[] = {"blocker", "p5a", "p5b", "p3", "p1", "p0"};
  assert_int_equal(s.started, 6);
  for (int i = 0; i < 6; i++)
    assert_string_equal(s.order[i], want[i]);
}

static void test_pool_cancel_queued_and_running(void **state)
{
  uv_loop_t loop;
  struct seen s = {0};
  char run_id[129], queued_id[129];
  uv_loop_init(&loop);
  struct pool *p = pool_new(&loop, 1, NULL, &ops, &s);
  submit(p, "running", "sleep 30", 0, run_id);
  submit(p, "queued", "echo should not run", 0, queued_id);
  submit(p, "after", "echo after", 0, NULL);

  /* A queued job completes at once, without a process. */
  assert_int_equal(pool_cancel(p, queued_id, UINT64_MAX), 0);
  assert_int_equal(s.done, 1);
  assert_string_equal(s.done_ids[0], queued_id);
  assert_int_equal(s.r[0].status, JOB_CANCELLED);
  assert_int_equal(s.r[0].started_us, 0);
  assert_int_equal(pool_queued(p), 1);
  assert_int_equal(pool_cancel(p, queued_id, 0), -ENOENT);
  assert_int_equal(pool_cancel(p, "no-such-job", 0), -ENOENT);

  /* A running one is signalled and ends through the loop. */
  assert_int_equal(pool_cancel(p, run_id, 100), 0);
  run_loop(&loop, p);
  assert_int_equal(s.done, 3);
  assert_string_equal(s.done_ids[1], run_id);
  assert_int_equal(s.r[1].status, JOB_CANCELLED);
  assert_true(s.r[1].started_us > 0);
  assert_int_equal(s.r[2].status, JOB_SUCCEEDED);
  assert_int_equal(s.started, 2);
  assert_string_equal(s.order[1], "after");
}

static void test_pool_pause_and_cancel_all(void **state)
{
  uv_loop_t loop;
  struct seen s = {0};
  uv_loop_init(&loop);
  struct pool *p = pool_new(&loop, 2, NULL, &ops, &s);
  pool_pause(p, 1);
  submit(p, "a", "sleep 30", 0, NULL);
  assert_int_equal(pool_running(p), 0);
  assert_int_equal(pool_queued(p), 1);
  pool_pause(p, 0);
  assert_int_equal(pool_running(p), 1);
  submit(p, "b", "sleep 30", 0, NULL);
  submit(p, "c", "sleep 30", 0, NULL);
  submit(p, "d", "sleep 30", 0, NULL);
  assert_int_equal(pool_queued(p), 2);
  pool_cancel_all(p, 0);
  assert_int_equal(pool_queued(p), 0);
  run_loop(&loop, p);
  assert_int_equal(s.done, 4);
  assert_int_equal(s.started, 2);
  int cancelled = 0;
  for (int i = 0; i < 4; i++)
    cancelled += s.r[i].status == JOB_CANCELLED;
  assert_int_equal(cancelled, 4);
}

/* The pool hands on exec's line flags: a last line without a newline says
 * so, one with its newline does not. */
static void test_pool_line_flags(void **state)
{
  uv_loop_t loop;
  struct seen s = {0};
  uv_loop_init(&loop);
  struct pool *p = pool_new(&loop, 2, NULL, &ops, &s);
  submit(p, "noeol", "printf 'a\\nb'", 0, NULL);
  run_loop(&loop, p);
  uv_loop_init(&loop);
  p = pool_new(&loop, 1, NULL, &ops, &s);
  submit(p, "eol", "printf 'a\\nc\\n'", 0, NULL);
  run_loop(&loop, p);
  assert_int_equal(s.started, 2);
  assert_string_equal(s.lines[0], "a");
  assert_string_equal(s.last_line[0], "b");
  assert_int_equal(s.last_flags[0], LINES_NO_EOL);
  assert_string_equal(s.last_line[1], "c");
  assert_int_equal(s.last_flags[1], 0);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pool_concurrency_limit),
      cmocka_unit_test(test_pool_priority_order),
      cmocka_unit_test(test_pool_cancel_queued_and_running),
      cmocka_unit_test(test_pool_pause_and_cancel_all),
      cmocka_unit_test(test_pool_line_flags),
  };
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
