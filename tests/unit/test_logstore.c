/* test_logstore.c - the coordinator's job logs: frames in and out, syncs,
 * the journal's replay after a crash (a lost file tail, a torn journal end),
 * big files leaving the journal, checkpoints. Real files in a temp folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "base/util.h"
#include "coord/logstore.h"

static char dir[256];

static int setup(void **state)
{
  snprintf(dir, sizeof(dir), "/tmp/drover-test-logstore-XXXXXX");
  assert_non_null(mkdtemp(dir));
  return 0;
}

static int teardown(void **state)
{
  char *cmd = xasprintf("rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(cmd);
  return 0;
}

static void synced(void *ud, int status)
{
  int *done = ud;
  *done = status == 0 ? 1 : status;
}

static void closed(void *ud)
{
  *(int *)ud = 1;
}

static struct logstore *open_ls(uv_loop_t *loop)
{
  struct logstore *ls;
  char err[256];
  int rc = logstore_open(loop, dir, &ls, err, sizeof(err));
  if (rc < 0)
    fail_msg("logstore_open: %s", err);
  return ls;
}

static void sync_now(uv_loop_t *loop, struct logstore *ls)
{
  int done = 0;
  logstore_sync(ls, synced, &done);
  while (!done)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(done, 1);
}

static void close_ls(uv_loop_t *loop, struct logstore *ls)
{
  int done = 0;
  logstore_close(ls, closed, &done);
  while (!done)
    uv_run(loop, UV_RUN_ONCE);
}

/* Reads every frame of a job: "attempt:seq:payload" joined with '|'. */
static char *read_all(struct logstore *ls, const char *id)
{
  struct logreader *r;
  if (logreader_open(ls, id, &r) < 0)
    return xstrdup("");
  char *out = xstrdup("");
  uint32_t a;
  uint64_t seq;
  const uint8_t *p;
  size_t len;
  while (logreader_next(r, &a, &seq, &p, &len) == 1) {
    char *next = xasprintf("%s%s%u:%llu:%.*s", out, *out ? "|" : "", a, (unsigned long long)seq,
                           (int)len, (const char *)p);
    free(out);
    out = next;
  }
  logreader_close(r);
  return out;
}

static int journals(void)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)))
    n += strncmp(e->d_name, "journal.", 8) == 0;
  closedir(d);
  return n;
}

static void test_logstore_frames_round_trip(void **state)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct logstore *ls = open_ls(&loop);
  struct logfile *f = logstore_file(ls, "job-a");
  assert_non_null(f);
  assert_int_equal(logfile_append(f, 1, 1, "one", 3), 0);
  assert_int_equal(logfile_append(f, 1, 2, "two", 3), 0);
  assert_int_equal(logfile_append(f, 2, 1, "again", 5), 0);
  assert_int_equal(logfile_last_seq(f, 1), 2);
  assert_int_equal(logfile_last_seq(f, 2), 1);
  assert_int_equal(logfile_last_seq(f, 3), 0);
  sync_now(&loop, ls);
  char *all = read_all(ls, "job-a");
  assert_string_equal(all, "1:1:one|1:2:two|2:1:again");
  free(all);
  logfile_release(f);
  /* Reopened: the marks come from the file. */
  f = logstore_file(ls, "job-a");
  assert_int_equal(logfile_last_seq(f, 1), 2);
  logfile_release(f);
  close_ls(&loop, ls);
  assert_int_equal(journals(), 0); /* a clean close leaves no journal */
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A child appends and syncs, then dies without a checkpoint; the job file
 * loses its tail (as a power cut can take unsynced pages). Reopening replays
 * the journal: every synced frame is back, once. */
static void test_logstore_replay_after_crash(void **state)
{
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct logstore *ls = open_ls(&loop);
    struct logfile *f = logstore_file(ls, "job-b");
    for (int i = 1; i <= 50; i++) {
      char line[32];
      int n = snprintf(line, sizeof(line), "line %d", i);
      if (logfile_append(f, 1, (uint64_t)i, line, (size_t)n) < 0)
        _exit(3);
    }
    sync_now(&loop, ls);
    raise(SIGKILL);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  assert_int_equal(journals(), 1);
  char *path = xasprintf("%s/job-b.log", dir);
  assert_int_equal(truncate(path, 100), 0); /* the tail lost, a frame torn */
  free(path);

  uv_loop_t loop;
  uv_loop_init(&loop);
  struct logstore *ls = open_ls(&loop);
  assert_int_equal(journals(), 1); /* the old one replayed and gone, a new one */
  struct logfile *f = logstore_file(ls, "job-b");
  assert_int_equal(logfile_last_seq(f, 1), 50);
  logfile_release(f);
  char *all = read_all(ls, "job-b");
  assert_non_null(strstr(all, "1:1:line 1|1:2:line 2|"));
  assert_non_null(strstr(all, "|1:50:line 50"));
  int frames = 1;
  for (char *p = all; *p; p++)
    frames += *p == '|';
  assert_int_equal(frames, 50);
  free(all);
  close_ls(&loop, ls);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A journal whose last frame was torn by the crash: replay stops there. */
static void test_logstore_torn_journal_end(void **state)
{
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct logstore *ls = open_ls(&loop);
    struct logfile *f = logstore_file(ls, "job-c");
    logfile_append(f, 1, 1, "kept", 4);
    logfile_append(f, 1, 2, "torn", 4);
    sync_now(&loop, ls);
    raise(SIGKILL);
  }
  int st;
  waitpid(pid, &st, 0);
  /* Cut both the journal's last frame and the job file. */
  DIR *d = opendir(dir);
  struct dirent *e;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, "journal.", 8)) {
      char *jp = xasprintf("%s/%s", dir, e->d_name);
      struct stat sb;
      stat(jp, &sb);
      assert_int_equal(truncate(jp, sb.st_size - 2), 0);
      free(jp);
    }
  closedir(d);
  char *path = xasprintf("%s/job-c.log", dir);
  assert_int_equal(truncate(path, 0), 0);
  free(path);

  uv_loop_t loop;
  uv_loop_init(&loop);
  struct logstore *ls = open_ls(&loop);
  char *all = read_all(ls, "job-c");
  assert_string_equal(all, "1:1:kept");
  free(all);
  close_ls(&loop, ls);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Past LOGSTORE_DIRECT a job file leaves the journal: the journal stops
 * growing with it, and its frames are still all there after a sync. */
static void test_logstore_big_file_is_synced_itself(void **state)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct logstore *ls = open_ls(&loop);
  struct logfile *f = logstore_file(ls, "job-d");
  size_t chunk = 64 * 1024;
  char *buf = xmalloc(chunk);
  memset(buf, 'x', chunk);
  uint64_t seq = 0;
  while (logfile_size(f) < 2 * LOGSTORE_DIRECT)
    assert_int_equal(logfile_append(f, 1, ++seq, buf, chunk), 0);
  sync_now(&loop, ls);
  struct stat sb;
  DIR *d = opendir(dir);
  struct dirent *e;
  off_t jsize = -1;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, "journal.", 8)) {
      char *jp = xasprintf("%s/%s", dir, e->d_name);
      stat(jp, &sb);
      jsize = sb.st_size;
      free(jp);
    }
  closedir(d);
  assert_true(jsize >= 0 && jsize <= (off_t)LOGSTORE_DIRECT + (off_t)chunk + 4096);
  assert_int_equal(logfile_last_seq(f, 1), seq);
  free(buf);
  logfile_release(f);
  close_ls(&loop, ls);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Past LOGSTORE_JOURNAL_MAX the journal is checkpointed and replaced. */
static void test_logstore_checkpoint_replaces_the_journal(void **state)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct logstore *ls = open_ls(&loop);
  size_t chunk = 256 * 1024;
  char *buf = xmalloc(chunk);
  memset(buf, 'y', chunk);
  /* Many small jobs (each under LOGSTORE_DIRECT) fill the journal. */
  size_t total = 0;
  for (int j = 0; total < LOGSTORE_JOURNAL_MAX + chunk; j++) {
    char id[32];
    snprintf(id, sizeof(id), "small-%d", j);
    struct logfile *f = logstore_file(ls, id);
    assert_int_equal(logfile_append(f, 1, 1, buf, chunk), 0);
    total += chunk;
    logfile_release(f);
  }
  sync_now(&loop, ls);
  /* The checkpoint runs after the round: its end is a loop event. */
  while (journals() != 1)
    uv_run(&loop, UV_RUN_ONCE);
  sync_now(&loop, ls);
  assert_int_equal(journals(), 1);
  char *all = read_all(ls, "small-0");
  assert_true(strlen(all) > chunk);
  free(all);
  free(buf);
  close_ls(&loop, ls);
  assert_int_equal(journals(), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_logstore_frames_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_logstore_replay_after_crash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_logstore_torn_journal_end, setup, teardown),
      cmocka_unit_test_setup_teardown(test_logstore_big_file_is_synced_itself, setup, teardown),
      cmocka_unit_test_setup_teardown(test_logstore_checkpoint_replaces_the_journal, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
