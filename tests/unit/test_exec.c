/* test_exec.c - running real jobs on a real loop: exit status, signals,
 * timeout and cancel of whole process groups, env, workdir, kinds, progress,
 * rusage, large output on both streams, raw output, pausing, stdin, orphans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "exec/exec.h"
#include "exec/lines.h"

/* What a run of one job looked like from outside. */
struct run {
  uv_loop_t loop;
  struct exec *e;
  int done;
  int count_only; /* big outputs: do not keep the text */
  char *text[3];  /* every line + '\n' (a partial part: + '~\n') */
  size_t textlen[3];
  size_t nlines[3];   /* on_line calls per stream */
  size_t part_len[8]; /* lengths of the first stdout parts */
  unsigned part_flags[8];
  int64_t first_ts, last_ts[3];
  const char *cancel_on; /* cancel when this stdout line shows up */
  uint64_t cancel_grace[2];
  int nprogress;
  int first_percent;
  char *first_stage, *first_message;
  int watch_pid; /* from the first stdout line: must be dead at exit */
  int watch_alive_at_exit;
  struct job_result r; /* copy of the result (strings duplicated) */
  char *raw[2];        /* raw mode: the bytes of stdout and stderr */
  size_t rawlen[2];
  size_t ndata;         /* on_data calls */
  int checked_in_pause; /* the pause timer looked at the job */
  int alive_in_pause;   /* ... and found its process still running */
};

static void append(struct run *rn, int s, const char *data, size_t len, const char *end)
{
  size_t el = strlen(end);
  rn->text[s] = xrealloc(rn->text[s], rn->textlen[s] + len + el + 1);
  memcpy(rn->text[s] + rn->textlen[s], data, len);
  memcpy(rn->text[s] + rn->textlen[s] + len, end, el + 1);
  rn->textlen[s] += len + el;
}

static void on_line(struct exec *e, void *ud, enum job_stream s, int64_t ts, const char *data,
                    size_t len, unsigned flags)
{
  struct run *rn = ud;
  assert_true(e == rn->e);
  if (!rn->first_ts)
    rn->first_ts = ts;
  /* Stamped at read time: never backwards within one stream. */
  assert_true(ts >= rn->last_ts[s]);
  rn->last_ts[s] = ts;
  if (s == JOB_STDOUT && rn->nlines[s] < 8) {
    rn->part_len[rn->nlines[s]] = len;
    rn->part_flags[rn->nlines[s]] = flags;
  }
  rn->nlines[s]++;
  if (!rn->count_only)
    append(rn, s, data, len, flags & LINES_PARTIAL ? "~\n" : "\n");
  if (s == JOB_STDOUT && rn->nlines[s] == 1 && !rn->count_only && len < 20)
    rn->watch_pid = atoi(rn->text[s]);
  if (s == JOB_STDOUT && rn->cancel_on && len == strlen(rn->cancel_on) &&
      memcmp(data, rn->cancel_on, len) == 0) {
    exec_cancel(e, rn->cancel_grace[0]);
    if (rn->cancel_grace[1])
      exec_cancel(e, rn->cancel_grace[1]);
  }
}

static void on_progress(struct exec *e, void *ud, const struct job_progress *p)
{
  struct run *rn = ud;
  if (rn->nprogress++ == 0) {
    rn->first_percent = p->percent;
    rn->first_stage = p->stage ? xstrdup(p->stage) : NULL;
    rn->first_message = p->message ? xstrdup(p->message) : NULL;
  }
}

static void on_data(struct exec *e, void *ud, enum job_stream s, const char *data, size_t len)
{
  struct run *rn = ud;
  assert_true(s == JOB_STDOUT || s == JOB_STDERR);
  assert_true(len > 0);
  rn->ndata++;
  rn->raw[s] = xrealloc(rn->raw[s], rn->rawlen[s] + len);
  memcpy(rn->raw[s] + rn->rawlen[s], data, len);
  rn->rawlen[s] += len;
}

static void on_exit_cb(struct exec *e, void *ud, const struct job_result *r)
{
  struct run *rn = ud;
  assert_false(rn->done);
  rn->done = 1;
  rn->r = *r;
  rn->r.error = r->error ? xstrdup(r->error) : NULL;
  rn->r.progress.stage = r->progress.stage ? xstrdup(r->progress.stage) : NULL;
  rn->r.progress.message = r->progress.message ? xstrdup(r->progress.message) : NULL;
  if (rn->watch_pid > 0)
    rn->watch_alive_at_exit = !(kill(rn->watch_pid, 0) < 0 && errno == ESRCH);
}

static const struct exec_ops ops = {
    .on_line = on_line, .on_progress = on_progress, .on_exit = on_exit_cb, .on_data = on_data};

static void run_job(struct run *rn, const struct job *j, const struct exec_opts *opts)
{
  assert_int_equal(uv_loop_init(&rn->loop), 0);
  assert_int_equal(exec_start(&rn->loop, j, opts, &ops, rn, &rn->e), 0);
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  assert_true(rn->done);
  /* Every handle of the exec is closed once the loop is idle; the SIGCHLD
   * watcher too, once asked (it may be waiting for orphans). */
  exec_loop_done(&rn->loop);
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&rn->loop), 0);
}

static void run_free(struct run *rn)
{
  for (int i = 0; i < 3; i++)
    free(rn->text[i]);
  free(rn->raw[0]);
  free(rn->raw[1]);
  free(rn->first_stage);
  free(rn->first_message);
  job_result_release(&rn->r);
}

static void shell_job(struct job *j, const char *cmd)
{
  job_init(j);
  j->command = xstrdup(cmd);
}

/* Runs a shell command; the caller checks rn and calls run_free. */
static void run_shell_opts(struct run *rn, const char *cmd, const struct exec_opts *opts)
{
  struct job j;
  shell_job(&j, cmd);
  run_job(rn, &j, opts);
  job_release(&j);
}

static void run_shell(struct run *rn, const char *cmd)
{
  run_shell_opts(rn, cmd, NULL);
}

static const char *out(struct run *rn)
{
  return rn->text[JOB_STDOUT] ? rn->text[JOB_STDOUT] : "";
}

static void test_exec_exit_codes(void **state)
{
  struct run a = {0}, b = {0};
  run_shell(&a, "echo hi; echo err >&2; exit 0");
  assert_int_equal(a.r.status, JOB_SUCCEEDED);
  assert_int_equal(a.r.exit_code, 0);
  assert_int_equal(a.r.signal, 0);
  assert_string_equal(out(&a), "hi\n");
  assert_string_equal(a.text[JOB_STDERR], "err\n");
  assert_int_equal(a.r.lines[JOB_STDOUT], 1);
  assert_int_equal(a.r.bytes[JOB_STDOUT], 3);
  assert_int_equal(a.r.lines[JOB_STDERR], 1);
  assert_true(a.r.started_us > 0 && a.r.finished_us >= a.r.started_us);
  assert_true(a.r.duration_us > 0);
  assert_int_equal(a.r.attempt, 1);
  assert_null(a.r.error);
  run_free(&a);

  run_shell(&b, "exit 3");
  assert_int_equal(b.r.status, JOB_FAILED);
  assert_int_equal(b.r.exit_code, 3);
  assert_null(b.r.error);
  run_free(&b);
}

static void test_exec_shell_header_line(void **state)
{
  struct run rn = {0};
  run_shell(&rn, "echo hi");
  assert_string_equal(rn.text[JOB_SYSTEM], "$ echo hi\n");
  assert_int_equal(rn.r.lines[JOB_STDOUT], 1);
  run_free(&rn);
}

/* The job sees stdin at EOF and fds 0..3 only: nothing of the runner's
 * (other jobs' pipes, sockets) leaks into it. */
static void test_exec_child_fds(void **state)
{
  struct run rn = {0};
  int leak = dup(2); /* an fd of ours that must not show up in the job */
  /* No pipeline: bash would hold the pipe's fds while ls looks. */
  run_shell(&rn, "cat; ls -m /proc/$$/fd; readlink /proc/$$/fd/0");
  close(leak);
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_string_equal(out(&rn), "0, 1, 2, 3\n/dev/null\n");
  run_free(&rn);
}

static void test_exec_killed_by_signal(void **state)
{
  struct run rn = {0};
  run_shell(&rn, "kill -9 $$");
  assert_int_equal(rn.r.status, JOB_FAILED);
  assert_int_equal(rn.r.signal, 9);
  assert_int_equal(rn.r.exit_code, -1);
  run_free(&rn);
}

/* Both the job and a grandchild ignore TERM: the grace runs out, the whole
 * group is KILLed, and the grandchild is gone when on_exit runs. */
static void test_exec_timeout_kills_group(void **state)
{
  struct run rn = {0};
  struct job j;
  shell_job(&j, "trap '' TERM; (trap '' TERM; sleep 60) & echo $!; sleep 60");
  j.timeout_ms = 300;
  j.kill_grace_ms = 200;
  run_job(&rn, &j, NULL);
  assert_int_equal(rn.r.status, JOB_TIMED_OUT);
  assert_int_equal(rn.r.signal, SIGKILL);
  assert_int_equal(rn.r.exit_code, -1);
  assert_true(rn.watch_pid > 0);
  assert_false(rn.watch_alive_at_exit);
  run_free(&rn);
  job_release(&j);
}

static void test_exec_background_process_killed_at_exit(void **state)
{
  struct run rn = {0};
  run_shell(&rn, "sleep 100 & echo $!");
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_true(rn.watch_pid > 0);
  assert_false(rn.watch_alive_at_exit);
  run_free(&rn);
}

/* A process that made its own session escapes the group kill and keeps
 * stdout open: on_exit still comes, a bounded time after the job ended. */
static void test_exec_escaped_process_does_not_hold_exit(void **state)
{
  struct run rn = {0};
  int64_t t0 = mono_us();
  char tmpl[] = "/tmp/drover-test-XXXXXX";
  char *dir = mkdtemp(tmpl);
  char *cmd =
      xasprintf("f=%s/pid; setsid sh -c \"echo \\$\\$ > $f.tmp; mv $f.tmp $f; exec sleep 30\" &"
                " while [ ! -e $f ]; do sleep 0.01; done; cat $f; rm $f",
                dir);
  run_shell(&rn, cmd);
  free(cmd);
  rmdir(dir);
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_true(rn.watch_pid > 0);
  assert_true(rn.watch_alive_at_exit); /* it escaped, as it asked */
  assert_true(mono_us() - t0 < 20 * 1000000ll);
  kill(rn.watch_pid, SIGKILL);
  waitpid(rn.watch_pid, NULL, 0); /* ours: we are the subreaper */
  run_free(&rn);
}

static void test_exec_invalid_job_is_an_error(void **state)
{
  uv_loop_t loop;
  struct exec *e = NULL;
  struct job j;
  job_init(&j); /* a shell job without a command */
  uv_loop_init(&loop);
  assert_int_equal(exec_start(&loop, &j, NULL, &ops, NULL, &e), -EINVAL);
  assert_null(e);
  uv_run(&loop, UV_RUN_DEFAULT); /* no callback; handles close */
  assert_int_equal(uv_loop_close(&loop), 0);
  job_release(&j);
}

static void test_exec_cancel(void **state)
{
  struct run rn = {.cancel_on = "ready", .cancel_grace = {UINT64_MAX, 0}};
  run_shell(&rn, "echo ready; sleep 30");
  assert_int_equal(rn.r.status, JOB_CANCELLED);
  assert_int_equal(rn.r.signal, SIGTERM);
  run_free(&rn);
}

/* The job ignores TERM; a first cancel gives it 60 s, a second one 100 ms:
 * the second wins, and it is KILLed long before the first grace. */
static void test_exec_cancel_shorter_grace(void **state)
{
  struct run rn = {.cancel_on = "ready", .cancel_grace = {60000, 100}};
  run_shell(&rn, "trap '' TERM; echo ready; sleep 30");
  assert_int_equal(rn.r.status, JOB_CANCELLED);
  assert_int_equal(rn.r.signal, SIGKILL);
  assert_true(rn.r.duration_us < 30 * 1000000ull);
  run_free(&rn);
}

static void test_exec_env_applied(void **state)
{
  struct run rn = {0};
  struct job j;
  char *want;
  shell_job(&j, "echo \"$FOO|$HOME|$DROVER_JOB_ID|$DROVER_PROGRESS_FD|$DROVER_ATTEMPT\"");
  j.env = xcalloc(2, sizeof *j.env);
  j.env[0].key = xstrdup("FOO");
  j.env[0].value = xstrdup("bar baz");
  j.env[1].key = xstrdup("HOME");
  j.env[1].value = xstrdup("/custom/home");
  j.nenv = 2;
  j.attempt = 2;
  run_job(&rn, &j, NULL);
  want = xasprintf("bar baz|/custom/home|%s|3|2\n", j.id);
  assert_string_equal(out(&rn), want);
  assert_int_equal(rn.r.attempt, 2);
  free(want);
  run_free(&rn);
  job_release(&j);
}

static void test_exec_workdir(void **state)
{
  struct run a = {0}, b = {0};
  struct job j;
  char tmpl[] = "/tmp/drover-test-XXXXXX";
  char *dir = mkdtemp(tmpl), *want = xasprintf("%s\n", dir);

  shell_job(&j, "pwd");
  j.workdir = xstrdup(dir);
  run_job(&a, &j, NULL);
  assert_int_equal(a.r.status, JOB_SUCCEEDED);
  assert_string_equal(out(&a), want);
  run_free(&a);

  free(j.workdir);
  j.workdir = xstrdup("/nope");
  run_job(&b, &j, NULL);
  assert_int_equal(b.r.status, JOB_FAILED);
  assert_int_equal(b.r.exit_code, -1);
  assert_int_equal(b.r.started_us, 0);
  assert_non_null(b.r.error);
  assert_string_equal(b.r.error, "workdir '/nope': No such file or directory");
  assert_string_equal(b.text[JOB_SYSTEM], "$ pwd\n");
  assert_null(b.text[JOB_STDOUT]);
  run_free(&b);
  job_release(&j);
  rmdir(dir);
  free(want);
}

static void exec_job_argv(struct job *j, const char *const *argv)
{
  job_init(j);
  j->kind = JOB_EXEC;
  while (argv[j->argc])
    j->argc++;
  j->argv = xcalloc(j->argc + 1, sizeof *j->argv);
  for (size_t i = 0; i < j->argc; i++)
    j->argv[i] = xstrdup(argv[i]);
}

static void test_exec_argv_without_shell(void **state)
{
  struct run rn = {0};
  struct job j;
  exec_job_argv(&j, (const char *const[]){"echo", "$HOME", "a b", "it's", NULL});
  run_job(&rn, &j, NULL);
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_string_equal(out(&rn), "$HOME a b it's\n");
  assert_string_equal(rn.text[JOB_SYSTEM], "$ echo '$HOME' 'a b' 'it'\\''s'\n");
  run_free(&rn);
  job_release(&j);
}

static void test_exec_missing_program(void **state)
{
  struct run rn = {0};
  struct job j;
  exec_job_argv(&j, (const char *const[]){"nosuch-drover-program", "x", NULL});
  run_job(&rn, &j, NULL);
  assert_int_equal(rn.r.status, JOB_FAILED);
  assert_int_equal(rn.r.exit_code, -1);
  assert_string_equal(rn.r.error, "exec 'nosuch-drover-program': No such file or directory");
  run_free(&rn);
  job_release(&j);

  /* With a path, it is the child's execve that fails and reports back. */
  struct run rn2 = {0};
  exec_job_argv(&j, (const char *const[]){"/etc/passwd", NULL});
  run_job(&rn2, &j, NULL);
  assert_int_equal(rn2.r.status, JOB_FAILED);
  assert_string_equal(rn2.r.error, "exec '/etc/passwd': Permission denied");
  run_free(&rn2);
  job_release(&j);
}

static int dir_is_empty(const char *path)
{
  DIR *d = opendir(path);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)))
    n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
  closedir(d);
  return n == 0;
}

static void script_job(struct job *j, const char *interp, const char *script)
{
  job_init(j);
  j->kind = JOB_SCRIPT;
  j->interpreter = xstrdup(interp);
  j->script = xstrdup(script);
}

static void test_exec_script_sh(void **state)
{
  struct run rn = {0};
  struct job j;
  char tmpl[] = "/tmp/drover-test-XXXXXX";
  char *dir = mkdtemp(tmpl);
  struct exec_opts opts = {.tmpdir = dir};

  script_job(&j, "/bin/sh", "echo one\necho \"two $(basename $0 | cut -c1-14)\"");
  run_job(&rn, &j, &opts);
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_string_equal(
      rn.text[JOB_SYSTEM],
      "$ /bin/sh <<'EOF'\necho one\necho \"two $(basename $0 | cut -c1-14)\"\nEOF\n");
  assert_string_equal(out(&rn), "one\ntwo drover-script-\n");
  assert_true(dir_is_empty(dir)); /* the script file is gone */
  run_free(&rn);
  job_release(&j);
  rmdir(dir);
}

static void test_exec_script_python(void **state)
{
  struct run rn = {0};
  struct job j;
  script_job(&j, "/usr/bin/python3", "import sys\nprint(sys.version_info[0])\n");
  run_job(&rn, &j, NULL);
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_string_equal(out(&rn), "3\n");
  run_free(&rn);
  job_release(&j);

  /* An interpreter with arguments is split on blanks. */
  struct run rn2 = {0};
  script_job(&j, "/usr/bin/env /usr/bin/python3 -S", "print('ok')");
  run_job(&rn2, &j, NULL);
  assert_int_equal(rn2.r.status, JOB_SUCCEEDED);
  assert_string_equal(out(&rn2), "ok\n");
  run_free(&rn2);
  job_release(&j);
}

static void test_exec_script_missing_interpreter(void **state)
{
  struct run rn = {0};
  struct job j;
  script_job(&j, "python9", "print(1)");
  run_job(&rn, &j, NULL);
  assert_int_equal(rn.r.status, JOB_FAILED);
  assert_int_equal(rn.r.exit_code, -1);
  assert_string_equal(rn.r.error, "interpreter 'python9': not found");
  run_free(&rn);
  job_release(&j);
}

static void test_exec_progress_lines(void **state)
{
  struct run rn = {0};
  run_shell(&rn, "echo '50 build halfway there' >&$DROVER_PROGRESS_FD; echo garbage >&3;"
                 " echo 101 >&3; echo '75%' >&3; echo done");
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_int_equal(rn.nprogress, 2);
  assert_int_equal(rn.first_percent, 50);
  assert_string_equal(rn.first_stage, "build");
  assert_string_equal(rn.first_message, "halfway there");
  assert_int_equal(rn.r.progress.percent, 75);
  assert_null(rn.r.progress.stage);
  assert_string_equal(out(&rn), "done\n"); /* progress is not output */
  run_free(&rn);
}

static void test_exec_rusage(void **state)
{
  struct run rn = {0};
  run_shell(&rn, "/usr/bin/python3 -c 'b = bytearray(64 << 20); s = sum(range(3000000))'");
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_true(rn.r.max_rss_kb > 64 * 1024);
  assert_true(rn.r.user_us + rn.r.sys_us > 0);
  assert_true(rn.r.user_us > 0);
  assert_true(rn.r.max_rss_known);
  run_free(&rn);

  /* /bin/true's own peak is below ours: what wait4 says for it is our
   * memory (copied in at execve), so the figure is unknown, not ours. */
  struct run rn2 = {0};
  struct job j;
  exec_job_argv(&j, (const char *const[]){"/bin/true", NULL});
  run_job(&rn2, &j, NULL);
  assert_int_equal(rn2.r.status, JOB_SUCCEEDED);
  assert_false(rn2.r.max_rss_known);
  assert_int_equal(rn2.r.max_rss_kb, 0);
  run_free(&rn2);
  job_release(&j);
}

/* 100 MB on each stream at once: nothing is lost, nobody blocks. (fold
 * ends the last line without a newline: 999,999 newlines per stream.) */
static void test_exec_large_output_both_streams(void **state)
{
  struct run rn = {.count_only = 1};
  run_shell(&rn, "gen() { head -c 100000000 /dev/zero | tr '\\0' a | fold -w 100; };"
                 " gen & gen >&2; wait");
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_int_equal(rn.r.bytes[JOB_STDOUT], 100999999);
  assert_int_equal(rn.r.bytes[JOB_STDERR], 100999999);
  assert_int_equal(rn.r.lines[JOB_STDOUT], 1000000);
  assert_int_equal(rn.r.lines[JOB_STDERR], 1000000);
  assert_int_equal(rn.nlines[JOB_STDOUT], 1000000);
  run_free(&rn);
}

static void test_exec_long_line_split(void **state)
{
  struct run rn = {0};
  run_shell(&rn, "head -c 200000 /dev/zero | tr '\\0' x; echo; printf tail");
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_int_equal(rn.nlines[JOB_STDOUT], 5);
  assert_int_equal(rn.r.lines[JOB_STDOUT], 2); /* the long line, and "tail" */
  assert_int_equal(rn.r.bytes[JOB_STDOUT], 200005);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(rn.part_len[i], 65536);
    assert_int_equal(rn.part_flags[i], LINES_PARTIAL);
  }
  assert_int_equal(rn.part_len[3], 200000 - 3 * 65536);
  assert_int_equal(rn.part_flags[3], 0);
  assert_int_equal(rn.part_len[4], 4);
  assert_int_equal(rn.part_flags[4], LINES_NO_EOL); /* "tail" had no newline */
  assert_string_equal(out(&rn) + rn.textlen[JOB_STDOUT] - 5, "tail\n");
  run_free(&rn);
}

static void test_exec_inherit_stdio(void **state)
{
  struct run rn = {0};
  struct job j;
  struct exec_opts opts = {.inherit_stdio = 1};
  shell_job(&j, "echo '(inherited stdout of a test job)'; echo 20 >&3");
  run_job(&rn, &j, &opts);
  assert_int_equal(rn.r.status, JOB_SUCCEEDED);
  assert_int_equal(rn.r.bytes[JOB_STDOUT], 0);
  assert_int_equal(rn.nlines[JOB_STDOUT], 0);
  assert_int_equal(rn.r.progress.percent, 20);
  run_free(&rn);
  job_release(&j);
}

/* Raw mode: the bytes as written, none added; the counts are the ones line
 * mode gives; drover's header still comes as a line. */
static void test_exec_raw_output(void **state)
{
  static const char *const cmds[] = {"printf abc", "printf 'a\\nb\\n'", "true", "printf '\\n\\nx'",
                                     "head -c 200000 /dev/zero | tr '\\0' x; printf 'y\\nz' >&2"};
  struct exec_opts raw = {.raw_output = 1};
  for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
    struct run lines = {0}, rn = {0};
    struct job j;
    shell_job(&j, cmds[i]);
    run_job(&lines, &j, NULL);
    run_job(&rn, &j, &raw);
    assert_int_equal(rn.r.status, JOB_SUCCEEDED);
    for (int s = 0; s < 2; s++) {
      assert_int_equal(rn.r.lines[s], lines.r.lines[s]);
      assert_int_equal(rn.r.bytes[s], lines.r.bytes[s]);
      assert_int_equal(rn.rawlen[s], rn.r.bytes[s]);
      assert_int_equal(rn.nlines[s], 0); /* no lines in raw mode */
    }
    char *want = xasprintf("$ %s\n", cmds[i]);
    assert_string_equal(rn.text[JOB_SYSTEM], want);
    free(want);
    run_free(&lines);
    run_free(&rn);
    job_release(&j);
  }
  struct run rn = {0};
  run_shell_opts(&rn, "printf 'a\\nb'; printf 'c' >&2", &raw);
  assert_int_equal(rn.rawlen[0], 3);
  assert_memory_equal(rn.raw[0], "a\nb", 3);
  assert_int_equal(rn.rawlen[1], 1);
  assert_int_equal(rn.r.lines[JOB_STDOUT], 2);
  assert_int_equal(rn.r.lines[JOB_STDERR], 1);
  run_free(&rn);
}

static int proc_running(int pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void on_pause_timer(uv_timer_t *t);

/* Polls until the job's process is gone (reaped while its output waits),
 * then gives the EOF guard (2 s) time to fire, which it must not. */
static void on_exit_poll(uv_timer_t *t)
{
  struct run *rn = t->data;
  if (proc_running(exec_pid(rn->e)) || kill(exec_pid(rn->e), 0) == 0)
    return;
  uv_timer_start(t, on_pause_timer, 2500, 0);
}

static void on_pause_timer(uv_timer_t *t)
{
  struct run *rn = t->data;
  assert_false(rn->done); /* paused: the exit waits for the output */
  rn->checked_in_pause = 1;
  rn->alive_in_pause = proc_running(exec_pid(rn->e));
  exec_pause_output(rn->e, 0);
  uv_close((uv_handle_t *)t, NULL);
}

/* Paused from the start, then resumed: after pause_ms, or (pause_ms 0)
 * 2.5 s after the job's process is gone. Returns with rn filled. */
static void run_paused(struct run *rn, const char *cmd, uint64_t pause_ms)
{
  struct job j;
  struct exec_opts raw = {.raw_output = 1};
  uv_timer_t t;
  shell_job(&j, cmd);
  assert_int_equal(uv_loop_init(&rn->loop), 0);
  assert_int_equal(exec_start(&rn->loop, &j, &raw, &ops, rn, &rn->e), 0);
  exec_pause_output(rn->e, 1);
  uv_timer_init(&rn->loop, &t);
  t.data = rn;
  if (pause_ms)
    uv_timer_start(&t, on_pause_timer, pause_ms, 0);
  else
    uv_timer_start(&t, on_exit_poll, 20, 20);
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  exec_loop_done(&rn->loop);
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&rn->loop), 0);
  assert_true(rn->done);
  assert_true(rn->checked_in_pause);
  job_release(&j);
}

/* While paused, a job that writes more than its pipe holds waits; one
 * that wrote less and exited is not finished until its output was read,
 * even past the 2 s EOF guard. Nothing is lost either way. */
static void test_exec_pause_output(void **state)
{
  struct run big = {0}, small = {0};
  run_paused(&big, "head -c 3000000 /dev/zero", 300);
  assert_true(big.alive_in_pause);
  assert_int_equal(big.rawlen[0], 3000000);
  assert_int_equal(big.r.status, JOB_SUCCEEDED);
  run_free(&big);

  run_paused(&small, "head -c 100000 /dev/zero", 0);
  assert_false(small.alive_in_pause);
  assert_int_equal(small.rawlen[0], 100000);
  assert_int_equal(small.r.bytes[JOB_STDOUT], 100000);
  run_free(&small);
}

/* The job reads the fd it was given; by default /dev/null (see
 * test_exec_child_fds). */
static void test_exec_stdin_fd(void **state)
{
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(write(p[1], "hello\n", 6), 6);
  close(p[1]);
  struct exec_opts opts = {.set_stdin = 1, .fd_stdin = p[0]};
  struct run rn = {0};
  run_shell_opts(&rn, "cat; echo end", &opts);
  close(p[0]);
  assert_string_equal(out(&rn), "hello\nend\n");
  run_free(&rn);
}

static void on_orphan_poll(uv_timer_t *t)
{
  struct run *rn = t->data;
  char path[64];
  struct stat st;
  if (!rn->done)
    return;
  snprintf(path, sizeof path, "/proc/%d", rn->watch_pid);
  if (rn->watch_pid <= 0 || stat(path, &st) < 0) { /* reaped: no zombie left */
    uv_close((uv_handle_t *)t, NULL);
    return;
  }
  assert_true(mono_us() < rn->first_ts + 10 * 1000000ll); /* safety net */
}

/* A process that left the job's group outlives the job; when it exits
 * after the job is over, the loop reaps it (we are the subreaper). */
static void test_exec_escaped_orphan_is_reaped(void **state)
{
  struct run rn = {0};
  struct job j;
  uv_timer_t t;
  /* The job waits until its child has left the group: the group is killed
   * when the job ends, and a child still in it would die with it. */
  shell_job(&j, "setsid sleep 0.3 >/dev/null 2>&1 & p=$!;"
                " while [ \"$(cut -d' ' -f5 /proc/$p/stat)\" = $$ ]; do sleep 0.01; done; echo $p");
  assert_int_equal(uv_loop_init(&rn.loop), 0);
  assert_int_equal(exec_start(&rn.loop, &j, NULL, &ops, &rn, &rn.e), 0);
  uv_timer_init(&rn.loop, &t);
  t.data = &rn;
  rn.first_ts = mono_us();
  uv_timer_start(&t, on_orphan_poll, 20, 20);
  uv_run(&rn.loop, UV_RUN_DEFAULT);
  assert_true(rn.done);
  assert_true(rn.watch_pid > 0);
  assert_true(rn.watch_alive_at_exit);         /* it outlived the job ... */
  assert_int_equal(kill(rn.watch_pid, 0), -1); /* ... and was reaped, not left a zombie */
  exec_loop_done(&rn.loop);
  uv_run(&rn.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&rn.loop), 0);
  run_free(&rn);
  job_release(&j);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exec_exit_codes),
      cmocka_unit_test(test_exec_shell_header_line),
      cmocka_unit_test(test_exec_child_fds),
      cmocka_unit_test(test_exec_killed_by_signal),
      cmocka_unit_test(test_exec_timeout_kills_group),
      cmocka_unit_test(test_exec_background_process_killed_at_exit),
      cmocka_unit_test(test_exec_escaped_process_does_not_hold_exit),
      cmocka_unit_test(test_exec_invalid_job_is_an_error),
      cmocka_unit_test(test_exec_cancel),
      cmocka_unit_test(test_exec_cancel_shorter_grace),
      cmocka_unit_test(test_exec_env_applied),
      cmocka_unit_test(test_exec_workdir),
      cmocka_unit_test(test_exec_argv_without_shell),
      cmocka_unit_test(test_exec_missing_program),
      cmocka_unit_test(test_exec_script_sh),
      cmocka_unit_test(test_exec_script_python),
      cmocka_unit_test(test_exec_script_missing_interpreter),
      cmocka_unit_test(test_exec_progress_lines),
      cmocka_unit_test(test_exec_rusage),
      cmocka_unit_test(test_exec_large_output_both_streams),
      cmocka_unit_test(test_exec_long_line_split),
      cmocka_unit_test(test_exec_inherit_stdio),
      cmocka_unit_test(test_exec_raw_output),
      cmocka_unit_test(test_exec_pause_output),
      cmocka_unit_test(test_exec_stdin_fd),
      cmocka_unit_test(test_exec_escaped_orphan_is_reaped),
  };
  /* As the agent and CLI do: the jobs' orphans become our children, so they
   * can be reaped (and checked dead) before on_exit. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
