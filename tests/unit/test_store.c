/* test_store.c - the coordinator's store on real SQLite files: rows in and
 * out, lists and pages, events, nodes, tokens, migrations, group commit and
 * its barriers, refused operations, durability across a SIGKILL, and a
 * full disk that the store rides out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/log.h"
#include "base/util.h"
#include "store/store.h"
#include "store/store_int.h"

/* drover.v1.JobState-like values; the store does not interpret them. */
enum { QUEUED = 1, ASSIGNED = 2, RUNNING = 3, SUCCEEDED = 4, FAILED = 5, CANCELLED = 7 };
static const int terminal[] = {SUCCEEDED, FAILED, CANCELLED};

struct ctx {
  uv_loop_t loop;
  struct store *s;
  char root[64];      /* the test's temporary folder */
  char dir[PATH_MAX]; /* the store's data directory in it */
};

/* ---- helpers ------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

static void rm_rf(const char *path)
{
  nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs the loop until *flag is set; fails when nothing is left that could
 * set it, or (a safety net only) after a minute. */
static void wait_for(uv_loop_t *loop, const int *flag)
{
  int64_t deadline = mono_us() + 60 * 1000000LL;
  while (!*flag) {
    int alive = uv_run(loop, UV_RUN_ONCE);
    if (*flag)
      break;
    if (!alive)
      fail_msg("the loop ran dry before the awaited event");
    if (mono_us() > deadline)
      fail_msg("timed out");
  }
}

struct waiter {
  int done, status, order;
  /* Checked when the barrier fires: these jobs must be readable then. */
  struct store *s;
  const char *must_see[2];
  int saw;
};

static int fired; /* barriers run so far in this test, for their order */

static void on_sync(void *ud, int status)
{
  struct waiter *w = ud;
  w->done = 1;
  w->status = status;
  w->order = ++fired;
  w->saw = 1;
  for (int i = 0; i < 2 && w->must_see[i]; i++) {
    struct store_job j;
    if (store_job_get(w->s, w->must_see[i], &j) == 0)
      store_job_release(&j);
    else
      w->saw = 0;
  }
}

static int sync_wait(struct ctx *c)
{
  struct waiter w = {0};
  store_sync(c->s, on_sync, &w);
  wait_for(&c->loop, &w.done);
  return w.status;
}

static void on_closed(void *ud)
{
  *(int *)ud = 1;
}

static void close_store(struct ctx *c)
{
  int done = 0;
  store_close(c->s, on_closed, &done);
  wait_for(&c->loop, &done);
  c->s = NULL;
}

static void open_store(struct ctx *c)
{
  char err[512];
  int rc = store_open(&c->loop, c->dir, &c->s, err, sizeof err);
  if (rc < 0)
    fail_msg("store_open: %s (%s)", err, store_strerror(rc));
}

static int setup(void **state)
{
  struct ctx *c = xcalloc(1, sizeof(*c));
  snprintf(c->root, sizeof c->root, "/tmp/drover-test-store-XXXXXX");
  if (!mkdtemp(c->root))
    return -1;
  snprintf(c->dir, sizeof c->dir, "%s/data", c->root);
  uv_loop_init(&c->loop);
  fired = 0;
  open_store(c);
  *state = c;
  return 0;
}

static int teardown(void **state)
{
  struct ctx *c = *state;
  if (c->s)
    close_store(c);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  rm_rf(c->root);
  free(c);
  return 0;
}

static void mkjob(struct store_job *j, const char *id, int state, int64_t created_us)
{
  memset(j, 0, sizeof(*j));
  snprintf(j->id, sizeof j->id, "%s", id);
  j->state = state;
  j->attempt = 1;
  j->max_attempts = 1;
  j->created_us = created_us;
  j->updated_us = created_us;
}

static void put_job(struct ctx *c, const char *id, int state, int64_t created_us)
{
  struct store_job j;
  mkjob(&j, id, state, created_us);
  store_job_put(c->s, &j);
}

static void add_event(struct ctx *c, const char *job, int from, int to, const char *reason)
{
  struct store_event e = {0};
  snprintf(e.job_id, sizeof e.job_id, "%s", job);
  e.ts_us = now_us();
  e.from = from;
  e.to = to;
  e.attempt = 1;
  e.reason = (char *)reason;
  store_event_add(c->s, &e);
}

static int job_exists(struct ctx *c, const char *id)
{
  struct store_job j;
  int rc = store_job_get(c->s, id, &j);
  if (rc == 0)
    store_job_release(&j);
  else
    assert_int_equal(rc, -ENOENT);
  return rc == 0;
}

/* Collected rows of a list or load. */
struct ids {
  char id[256][129];
  int state[256];
  size_t n;
};

static void collect_job(void *ud, const struct store_job *j)
{
  struct ids *r = ud;
  assert_true(r->n < 256);
  r->state[r->n] = j->state;
  snprintf(r->id[r->n++], sizeof r->id[0], "%s", j->id);
}

static void collect_event(void *ud, const struct store_event *e)
{
  struct ids *r = ud;
  assert_true(r->n < 256);
  r->state[r->n] = e->to;
  snprintf(r->id[r->n++], sizeof r->id[0], "%s", e->reason ? e->reason : "");
}

/* A raw SQLite statement on the database file, outside the store. */
static void raw_sql(const char *dir, const char *sql)
{
  char path[PATH_MAX + 16];
  sqlite3 *db;
  snprintf(path, sizeof path, "%s/drover.db", dir);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    fail_msg("%s: %s", sql, msg);
  sqlite3_close(db);
}

/* ---- rows ---------------------------------------------------------------- */

static void test_store_job_put_get(void **state)
{
  struct ctx *c = *state;
  struct store_kv labels[] = {{"team", "infra"}, {"os", "linux"}};
  uint8_t spec[] = {0x0a, 0x03, 'a', 'b', 'c', 0x00, 0xff};
  struct store_job j;
  mkjob(&j, "job-1", RUNNING, 1000);
  j.attempt = 2;
  j.max_attempts = 3;
  j.priority = -5;
  j.updated_us = 2000;
  j.name = "build";
  j.node_id = "node-a";
  j.idempotency_key = "key-1";
  j.reason = "assigned by the scheduler";
  j.labels = labels;
  j.nlabels = 2;
  j.spec = spec;
  j.spec_len = sizeof spec;
  j.cancel_requested = 1;
  j.cancel_grace_ms = 10000;
  store_job_put(c->s, &j);
  assert_int_equal(store_pending(c->s), 1);
  assert_false(job_exists(c, "job-1")); /* queued, not committed */
  assert_int_equal(sync_wait(c), 0);
  assert_int_equal(store_pending(c->s), 0);

  struct store_job g;
  assert_int_equal(store_job_get(c->s, "job-1", &g), 0);
  assert_string_equal(g.id, "job-1");
  assert_int_equal(g.state, RUNNING);
  assert_int_equal(g.attempt, 2);
  assert_int_equal(g.max_attempts, 3);
  assert_int_equal(g.priority, -5);
  assert_int_equal(g.created_us, 1000);
  assert_int_equal(g.updated_us, 2000);
  assert_string_equal(g.name, "build");
  assert_string_equal(g.node_id, "node-a");
  assert_string_equal(g.idempotency_key, "key-1");
  assert_string_equal(g.reason, "assigned by the scheduler");
  assert_int_equal(g.spec_len, sizeof spec);
  assert_memory_equal(g.spec, spec, sizeof spec);
  assert_null(g.result);
  assert_int_equal(g.result_len, 0);
  assert_int_equal(g.cancel_requested, 1);
  assert_int_equal(g.cancel_grace_ms, 10000);
  assert_int_equal(g.nlabels, 2); /* by key */
  assert_string_equal(g.labels[0].key, "os");
  assert_string_equal(g.labels[0].value, "linux");
  assert_string_equal(g.labels[1].key, "team");
  assert_string_equal(g.labels[1].value, "infra");
  store_job_release(&g);

  /* A later put replaces the row but not the labels; a result of zero bytes
   * is a result, not "none". */
  struct store_kv other[] = {{"team", "web"}, {"new", "x"}};
  uint8_t empty = 0;
  mkjob(&j, "job-1", SUCCEEDED, 1000);
  j.updated_us = 3000;
  j.labels = other;
  j.nlabels = 2;
  j.result = &empty;
  j.result_len = 0;
  store_job_put(c->s, &j);
  assert_int_equal(sync_wait(c), 0);
  assert_int_equal(store_job_get(c->s, "job-1", &g), 0);
  assert_int_equal(g.state, SUCCEEDED);
  assert_int_equal(g.updated_us, 3000);
  assert_null(g.name);
  assert_null(g.node_id);
  assert_null(g.idempotency_key);
  assert_null(g.spec);
  assert_non_null(g.result);
  assert_int_equal(g.result_len, 0);
  assert_int_equal(g.nlabels, 2);
  assert_string_equal(g.labels[1].value, "infra");
  store_job_release(&g);

  /* The common put: a state change, same created_us and key (the store's
   * fast path); then the key changes (its slow path). */
  mkjob(&j, "job-1", FAILED, 1000);
  j.idempotency_key = "key-2";
  store_job_put(c->s, &j);
  j.state = CANCELLED;
  j.reason = "cancelled by user";
  j.node_id = "node-b";
  store_job_put(c->s, &j);
  assert_int_equal(sync_wait(c), 0);
  assert_int_equal(store_job_get(c->s, "job-1", &g), 0);
  assert_int_equal(g.state, CANCELLED);
  assert_string_equal(g.reason, "cancelled by user");
  assert_string_equal(g.node_id, "node-b");
  assert_string_equal(g.idempotency_key, "key-2");
  assert_null(g.result);
  store_job_release(&g);
  char id[129];
  assert_int_equal(store_job_find_key(c->s, "key-1", id), -ENOENT);
  assert_int_equal(store_job_find_key(c->s, "key-2", id), 0);

  assert_int_equal(store_job_get(c->s, "job-2", &g), -ENOENT);
}

static void test_store_idempotency_key_lookup(void **state)
{
  struct ctx *c = *state;
  struct store_job j;
  mkjob(&j, "job-k", QUEUED, 1);
  j.idempotency_key = "deploy-42";
  store_job_put(c->s, &j);
  put_job(c, "job-n", QUEUED, 2); /* no key: NULLs never collide */
  put_job(c, "job-m", QUEUED, 3);
  assert_int_equal(sync_wait(c), 0);

  char id[129];
  assert_int_equal(store_job_find_key(c->s, "deploy-42", id), 0);
  assert_string_equal(id, "job-k");
  assert_int_equal(store_job_find_key(c->s, "deploy-43", id), -ENOENT);
}

/* capture stderr (drover's log) around a few calls */
static int saved_stderr = -1;
static char capture_path[PATH_MAX];

static void capture_start(struct ctx *c)
{
  snprintf(capture_path, sizeof capture_path, "%s/stderr.txt", c->root);
  int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  saved_stderr = dup(2);
  dup2(fd, 2);
  close(fd);
}

static char *capture_end(void)
{
  char *out;
  size_t len;
  dup2(saved_stderr, 2);
  close(saved_stderr);
  assert_int_equal(read_file(capture_path, &out, &len), 0);
  return out;
}

static void test_store_constraint_refused_others_committed(void **state)
{
  struct ctx *c = *state;
  struct store_job j;
  mkjob(&j, "first", QUEUED, 1);
  j.idempotency_key = "once";
  store_job_put(c->s, &j);
  assert_int_equal(sync_wait(c), 0);

  /* One batch: a good job, a second job with the taken key, an event for a
   * job that does not exist, another good job. */
  struct waiter a = {0}, b = {0}, d = {0};
  capture_start(c);
  put_job(c, "good-1", QUEUED, 2);
  store_sync(c->s, on_sync, &a);
  mkjob(&j, "second", QUEUED, 3);
  j.idempotency_key = "once";
  store_job_put(c->s, &j);
  add_event(c, "ghost", QUEUED, RUNNING, NULL);
  put_job(c, "good-2", QUEUED, 4);
  store_sync(c->s, on_sync, &b);
  put_job(c, "good-3", QUEUED, 5);
  store_sync(c->s, on_sync, &d);
  wait_for(&c->loop, &d.done);
  char *log = capture_end();

  /* Only the barrier after the refusals says so; everything else is in. */
  assert_int_equal(a.status, 0);
  assert_int_equal(b.status, STORE_E_CONSTRAINT);
  assert_int_equal(d.status, 0);
  assert_true(a.order < b.order && b.order < d.order);
  assert_true(job_exists(c, "good-1"));
  assert_true(job_exists(c, "good-2"));
  assert_true(job_exists(c, "good-3"));
  assert_false(job_exists(c, "second"));
  char id[129];
  assert_int_equal(store_job_find_key(c->s, "once", id), 0);
  assert_string_equal(id, "first");
  assert_non_null(strstr(log, "store refused an operation"));
  assert_non_null(strstr(log, "id=second"));
  assert_non_null(strstr(log, "UNIQUE constraint failed: jobs.idempotency_key"));
  assert_non_null(strstr(log, "id=ghost"));
  assert_non_null(strstr(log, "FOREIGN KEY constraint failed"));
  free(log);
  assert_false(store_degraded(c->s));

  /* A refusal with no barrier behind it in its batch marks the next one. */
  capture_start(c);
  add_event(c, "ghost", QUEUED, RUNNING, NULL);
  struct waiter e = {0}, f = {0};
  store_sync(c->s, on_sync, &e);
  store_sync(c->s, on_sync, &f);
  wait_for(&c->loop, &f.done);
  free(capture_end());
  assert_int_equal(e.status, STORE_E_CONSTRAINT);
  assert_int_equal(f.status, 0);
}

/* ---- lists --------------------------------------------------------------- */

static void test_store_job_list_order_and_pages(void **state)
{
  struct ctx *c = *state;
  char id[32];
  /* 25 jobs; every fifth pair shares its created_us, so the id decides. */
  for (int i = 0; i < 25; i++) {
    snprintf(id, sizeof id, "j%02d", i);
    put_job(c, id, QUEUED, 1000 + (i / 2) * 10);
  }
  assert_int_equal(sync_wait(c), 0);

  struct ids all = {0};
  struct store_job_filter f = {.limit = 10};
  char *next = NULL;
  int pages = 0;
  do {
    struct ids page = {0};
    char *after = next;
    f.after = after;
    assert_int_equal(store_job_list(c->s, &f, collect_job, &page, &next), 0);
    free(after);
    pages++;
    if (pages == 1) {
      /* Newer jobs arriving between pages shift nothing (keyset, not offset). */
      put_job(c, "late", QUEUED, 999999);
      assert_int_equal(sync_wait(c), 0);
    }
    assert_int_equal(page.n, pages < 3 ? 10 : 5);
    for (size_t i = 0; i < page.n; i++)
      memcpy(all.id[all.n++], page.id[i], sizeof all.id[0]);
  } while (next);
  assert_int_equal(pages, 3);
  assert_int_equal(all.n, 25);
  for (int i = 0; i < 25; i++) {
    snprintf(id, sizeof id, "j%02d", 24 - i); /* newest first, id descending on ties */
    assert_string_equal(all.id[i], id);
  }

  /* Exactly one page: no cursor. Default limit: 100. */
  struct ids page = {0};
  f.after = NULL;
  f.limit = 26;
  assert_int_equal(store_job_list(c->s, &f, collect_job, &page, &next), 0);
  assert_int_equal(page.n, 26);
  assert_null(next);
  for (int i = 0; i < 80; i++) {
    snprintf(id, sizeof id, "more%02d", i);
    put_job(c, id, QUEUED, 2000000 + i);
  }
  assert_int_equal(sync_wait(c), 0);
  struct ids *big = xcalloc(1, sizeof(*big));
  f.limit = 0;
  assert_int_equal(store_job_list(c->s, &f, collect_job, big, &next), 0);
  assert_int_equal(big->n, 100);
  assert_non_null(next);
  free(next);
  free(big);
}

static void test_store_job_list_filters(void **state)
{
  struct ctx *c = *state;
  struct store_kv lin[] = {{"os", "linux"}, {"team", "infra"}};
  struct store_kv lin_web[] = {{"os", "linux"}, {"team", "web"}};
  struct store_kv bsd[] = {{"os", "freebsd"}, {"team", "infra"}};
  struct {
    const char *id;
    int state;
    struct store_kv *labels;
  } rows[] = {
      {"a", QUEUED, lin}, {"b", RUNNING, lin_web}, {"c", SUCCEEDED, bsd},
      {"d", FAILED, lin}, {"e", RUNNING, NULL},    {"f", RUNNING, lin},
  };
  for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
    struct store_job j;
    mkjob(&j, rows[i].id, rows[i].state, 100 + (int64_t)i);
    j.labels = rows[i].labels;
    j.nlabels = rows[i].labels ? 2 : 0;
    store_job_put(c->s, &j);
  }
  assert_int_equal(sync_wait(c), 0);

  struct ids r;
  int running_or_queued[] = {RUNNING, QUEUED};
  struct store_job_filter f = {.states = running_or_queued, .nstates = 2};
  memset(&r, 0, sizeof r);
  assert_int_equal(store_job_list(c->s, &f, collect_job, &r, NULL), 0);
  assert_int_equal(r.n, 4);
  assert_string_equal(r.id[0], "f");
  assert_string_equal(r.id[1], "e");
  assert_string_equal(r.id[2], "b");
  assert_string_equal(r.id[3], "a");

  struct store_kv want_linux_infra[] = {{"team", "infra"}, {"os", "linux"}};
  f = (struct store_job_filter){.labels = want_linux_infra, .nlabels = 2};
  memset(&r, 0, sizeof r);
  assert_int_equal(store_job_list(c->s, &f, collect_job, &r, NULL), 0);
  assert_int_equal(r.n, 3);
  assert_string_equal(r.id[0], "f");
  assert_string_equal(r.id[1], "d");
  assert_string_equal(r.id[2], "a");

  /* Both kinds of filter, paged by one. */
  f.states = running_or_queued;
  f.nstates = 2;
  f.limit = 1;
  char *next = NULL;
  memset(&r, 0, sizeof r);
  assert_int_equal(store_job_list(c->s, &f, collect_job, &r, &next), 0);
  assert_non_null(next);
  f.after = next;
  assert_int_equal(store_job_list(c->s, &f, collect_job, &r, &next), 0);
  free((char *)f.after);
  assert_null(next);
  assert_int_equal(r.n, 2);
  assert_string_equal(r.id[0], "f");
  assert_string_equal(r.id[1], "a");

  struct store_kv nobody[] = {{"os", "plan9"}};
  f = (struct store_job_filter){.labels = nobody, .nlabels = 1};
  memset(&r, 0, sizeof r);
  assert_int_equal(store_job_list(c->s, &f, collect_job, &r, &next), 0);
  assert_int_equal(r.n, 0);
  assert_null(next);
}

static void test_store_job_list_bad_cursor(void **state)
{
  struct ctx *c = *state;
  const char *bad[] = {"", "x", "12", "12:", "abc:def", "1:" /* empty id */};
  struct ids r = {0};
  char *next = (char *)"untouched";
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    struct store_job_filter f = {.after = bad[i]};
    assert_int_equal(store_job_list(c->s, &f, collect_job, &r, &next), -EINVAL);
    assert_null(next);
  }
  assert_int_equal(r.n, 0);
}

static void test_store_job_load_active(void **state)
{
  struct ctx *c = *state;
  put_job(c, "z-old-running", RUNNING, 10);
  put_job(c, "done", SUCCEEDED, 20);
  put_job(c, "a-queued", QUEUED, 30);
  put_job(c, "failed", FAILED, 40);
  put_job(c, "assigned", ASSIGNED, 40);
  assert_int_equal(sync_wait(c), 0);
  struct ids r = {0};
  assert_int_equal(store_job_load_active(c->s, terminal, ARRAY_SIZE(terminal), collect_job, &r), 0);
  assert_int_equal(r.n, 3); /* oldest first */
  assert_string_equal(r.id[0], "z-old-running");
  assert_string_equal(r.id[1], "a-queued");
  assert_string_equal(r.id[2], "assigned");
}

/* A read's callback reads too (the coordinator loads a job's events while
 * loading jobs). */
struct nested {
  struct store *s;
  size_t jobs, events, inner;
};

static void count_event(void *ud, const struct store_event *e)
{
  ((struct nested *)ud)->events++;
}

static void count_inner(void *ud, const struct store_job *j)
{
  ((struct nested *)ud)->inner++;
}

static void on_active(void *ud, const struct store_job *j)
{
  struct nested *n = ud;
  n->jobs++;
  assert_int_equal(store_event_list(n->s, j->id, count_event, n), 0);
  struct store_job g;
  assert_int_equal(store_job_get(n->s, j->id, &g), 0);
  assert_int_equal(g.nlabels, 1);
  store_job_release(&g);
  struct store_job_filter f = {0};
  assert_int_equal(store_job_load_active(n->s, terminal, ARRAY_SIZE(terminal), count_inner, n), 0);
  assert_int_equal(store_job_list(n->s, &f, count_inner, n, NULL), 0);
}

static void test_store_reads_nest_in_callbacks(void **state)
{
  struct ctx *c = *state;
  struct store_kv l[] = {{"k", "v"}};
  for (int i = 0; i < 3; i++) {
    char id[8];
    snprintf(id, sizeof id, "n%d", i);
    struct store_job j;
    mkjob(&j, id, QUEUED, i);
    j.labels = l;
    j.nlabels = 1;
    store_job_put(c->s, &j);
    add_event(c, id, 0, QUEUED, "submitted");
    add_event(c, id, QUEUED, ASSIGNED, "assigned");
  }
  assert_int_equal(sync_wait(c), 0);
  struct nested n = {c->s, 0, 0, 0};
  assert_int_equal(store_job_load_active(c->s, terminal, ARRAY_SIZE(terminal), on_active, &n), 0);
  assert_int_equal(n.jobs, 3);
  assert_int_equal(n.events, 6);
  assert_int_equal(n.inner, 3 * 6);
}

/* ---- events, nodes, tokens ----------------------------------------------- */

static void test_store_events_in_order(void **state)
{
  struct ctx *c = *state;
  put_job(c, "ev-a", QUEUED, 1);
  put_job(c, "ev-b", QUEUED, 2);
  const char *steps[] = {"submitted", "assigned", "started", "ended"};
  for (int i = 0; i < 4; i++) {
    add_event(c, "ev-a", i, i + 1, steps[i]);
    add_event(c, "ev-b", i, i + 1, steps[3 - i]);
    if (i == 1)
      assert_int_equal(sync_wait(c), 0); /* across two commits */
  }
  assert_int_equal(sync_wait(c), 0);

  struct ids r = {0};
  assert_int_equal(store_event_list(c->s, "ev-a", collect_event, &r), 0);
  assert_int_equal(r.n, 4);
  for (int i = 0; i < 4; i++) {
    assert_string_equal(r.id[i], steps[i]);
    assert_int_equal(r.state[i], i + 1);
  }
  memset(&r, 0, sizeof r);
  assert_int_equal(store_event_list(c->s, "ev-b", collect_event, &r), 0);
  assert_int_equal(r.n, 4);
  assert_string_equal(r.id[0], "ended");
  memset(&r, 0, sizeof r);
  assert_int_equal(store_event_list(c->s, "nobody", collect_event, &r), 0);
  assert_int_equal(r.n, 0);
}

struct event_rows {
  struct store_event e[8];
  size_t n;
};

static void keep_event(void *ud, const struct store_event *e)
{
  struct event_rows *r = ud;
  assert_true(r->n < 8);
  r->e[r->n] = *e;
  r->e[r->n].node_id = e->node_id ? xstrdup(e->node_id) : NULL;
  r->e[r->n].reason = e->reason ? xstrdup(e->reason) : NULL;
  r->n++;
}

static void test_store_event_fields(void **state)
{
  struct ctx *c = *state;
  put_job(c, "ev", QUEUED, 1);
  struct store_event e = {.id = 12345,
                          .ts_us = 777,
                          .from = QUEUED,
                          .to = ASSIGNED,
                          .node_id = "node-1",
                          .attempt = 2,
                          .reason = "fits"};
  snprintf(e.job_id, sizeof e.job_id, "ev");
  store_event_add(c->s, &e);
  e.node_id = NULL;
  e.reason = NULL;
  e.from = ASSIGNED;
  e.to = RUNNING;
  store_event_add(c->s, &e);
  assert_int_equal(sync_wait(c), 0);
  struct event_rows r = {0};
  assert_int_equal(store_event_list(c->s, "ev", keep_event, &r), 0);
  assert_int_equal(r.n, 2);
  assert_true(r.e[0].id > 0 && r.e[1].id > r.e[0].id); /* the store's, not ours */
  assert_string_equal(r.e[0].job_id, "ev");
  assert_int_equal(r.e[0].ts_us, 777);
  assert_int_equal(r.e[0].from, QUEUED);
  assert_int_equal(r.e[0].to, ASSIGNED);
  assert_string_equal(r.e[0].node_id, "node-1");
  assert_int_equal(r.e[0].attempt, 2);
  assert_string_equal(r.e[0].reason, "fits");
  assert_null(r.e[1].node_id);
  assert_null(r.e[1].reason);
  for (size_t i = 0; i < r.n; i++)
    store_event_release(&r.e[i]);
}

struct node_rows {
  struct store_node n[8];
  size_t count;
};

static void keep_node(void *ud, const struct store_node *n)
{
  struct node_rows *r = ud;
  assert_true(r->count < 8);
  struct store_node *d = &r->n[r->count++];
  *d = *n;
  d->name = xstrdup(n->name);
  d->info = NULL;
  if (n->info) {
    d->info = xmalloc(n->info_len + 1);
    memcpy(d->info, n->info, n->info_len);
  }
}

static void test_store_nodes(void **state)
{
  struct ctx *c = *state;
  uint8_t info[] = {1, 2, 3, 0, 4};
  struct store_node n = {.name = "edge-1",
                         .state = 1,
                         .registered_us = 10,
                         .last_seen_us = 11,
                         .info = info,
                         .info_len = sizeof info};
  snprintf(n.id, sizeof n.id, "node-b");
  snprintf(n.secret_hash, sizeof n.secret_hash, "%064d", 7);
  store_node_put(c->s, &n);
  snprintf(n.id, sizeof n.id, "node-a");
  n.name = "edge-0";
  n.registered_us = 5;
  n.info = NULL;
  n.info_len = 0;
  store_node_put(c->s, &n);
  /* The same node again: an update (it went down). */
  snprintf(n.id, sizeof n.id, "node-b");
  n.name = "edge-1";
  n.state = 3;
  n.registered_us = 10;
  n.last_seen_us = 99;
  n.info = info;
  n.info_len = 2;
  store_node_put(c->s, &n);
  assert_int_equal(sync_wait(c), 0);

  struct node_rows r = {0};
  assert_int_equal(store_node_load(c->s, keep_node, &r), 0);
  assert_int_equal(r.count, 2); /* by registration */
  assert_string_equal(r.n[0].id, "node-a");
  assert_string_equal(r.n[0].name, "edge-0");
  assert_null(r.n[0].info);
  assert_string_equal(r.n[1].id, "node-b");
  assert_int_equal(r.n[1].state, 3);
  assert_int_equal(r.n[1].last_seen_us, 99);
  assert_int_equal(r.n[1].registered_us, 10);
  assert_int_equal(strlen(r.n[1].secret_hash), 64);
  assert_int_equal(r.n[1].info_len, 2);
  assert_memory_equal(r.n[1].info, info, 2);
  for (size_t i = 0; i < r.count; i++)
    store_node_release(&r.n[i]);
}

struct token_rows {
  struct store_token t[8];
  size_t n;
};

static void keep_token(void *ud, const struct store_token *t)
{
  struct token_rows *r = ud;
  assert_true(r->n < 8);
  r->t[r->n] = *t;
  r->t[r->n].description = t->description ? xstrdup(t->description) : NULL;
  r->n++;
}

struct log_rows {
  uint64_t seq[8];
  char data[8][16];
  int n, stop_at;
};

static int keep_log(void *ud, uint64_t seq, const uint8_t *data, size_t len)
{
  struct log_rows *r = ud;
  r->seq[r->n] = seq;
  snprintf(r->data[r->n], sizeof r->data[0], "%.*s", (int)len, (const char *)data);
  return ++r->n == r->stop_at;
}

static void test_store_log_rows(void **state)
{
  struct ctx *c = *state;
  put_job(c, "job-log", QUEUED, 1);
  store_log_put(c->s, "job-log", 1, 1, "one", 3);
  store_log_put(c->s, "job-log", 1, 2, "two", 3);
  store_log_put(c->s, "job-log", 2, 1, "again", 5);
  store_log_put(c->s, "job-log", 1, 3, "", 0); /* an empty batch is a batch */
  /* Nothing is readable before the commit. */
  struct log_rows r = {0};
  assert_int_equal(store_log_read(c->s, "job-log", 1, 0, 0, keep_log, &r), 0);
  assert_int_equal(sync_wait(c), 0);
  assert_int_equal(store_log_read(c->s, "job-log", 1, 0, 0, keep_log, &r), 3);
  assert_int_equal(r.seq[0], 1);
  assert_string_equal(r.data[1], "two");
  assert_string_equal(r.data[2], "");
  memset(&r, 0, sizeof r);
  assert_int_equal(store_log_read(c->s, "job-log", 1, 1, 1, keep_log, &r), 1); /* after, limit */
  assert_string_equal(r.data[0], "two");
  memset(&r, 0, sizeof r);
  r.stop_at = 1; /* the callback stops the read */
  assert_int_equal(store_log_read(c->s, "job-log", 1, 0, 0, keep_log, &r), 1);
  uint64_t last;
  assert_int_equal(store_log_last(c->s, "job-log", 1, &last), 0);
  assert_int_equal(last, 3);
  assert_int_equal(store_log_last(c->s, "job-log", 2, &last), 0);
  assert_int_equal(last, 1);
  assert_int_equal(store_log_last(c->s, "job-log", 3, &last), 0);
  assert_int_equal(last, 0);
  /* A batch is stored once. */
  capture_start(c);
  store_log_put(c->s, "job-log", 1, 2, "twice", 5);
  int status = sync_wait(c);
  free(capture_end());
  assert_int_equal(status, STORE_E_CONSTRAINT);
}

static void test_store_tokens(void **state)
{
  struct ctx *c = *state;
  struct store_token t = {
      .uses_left = 1, .created_us = 1, .expires_us = 0, .description = "bootstrap"};
  for (int i = 0; i < 3; i++) {
    snprintf(t.id, sizeof t.id, "tok-%d", i);
    snprintf(t.hash, sizeof t.hash, "%064d", i);
    t.created_us = i;
    store_token_put(c->s, &t);
  }
  /* tok-1 used once (uses_left 0 and an expiry), tok-2 deleted. */
  snprintf(t.id, sizeof t.id, "tok-1");
  snprintf(t.hash, sizeof t.hash, "%064d", 1);
  t.created_us = 1;
  t.uses_left = 0;
  t.expires_us = 5000;
  t.description = NULL;
  store_token_put(c->s, &t);
  store_token_delete(c->s, "tok-2");
  store_token_delete(c->s, "tok-none"); /* nothing to delete: fine */
  assert_int_equal(sync_wait(c), 0);

  struct token_rows r = {0};
  assert_int_equal(store_token_load(c->s, keep_token, &r), 0);
  assert_int_equal(r.n, 2);
  assert_string_equal(r.t[0].id, "tok-0");
  assert_int_equal(r.t[0].uses_left, 1);
  assert_string_equal(r.t[0].description, "bootstrap");
  assert_string_equal(r.t[1].id, "tok-1");
  assert_int_equal(r.t[1].uses_left, 0);
  assert_int_equal(r.t[1].expires_us, 5000);
  assert_null(r.t[1].description);
  assert_int_equal(strlen(r.t[1].hash), 64);
  for (size_t i = 0; i < r.n; i++)
    store_token_release(&r.t[i]);

  /* Two tokens may not share a hash. */
  snprintf(t.id, sizeof t.id, "tok-dup");
  snprintf(t.hash, sizeof t.hash, "%064d", 0);
  capture_start(c);
  store_token_put(c->s, &t);
  int status = sync_wait(c);
  free(capture_end());
  assert_int_equal(status, STORE_E_CONSTRAINT);
}

/* ---- open, migrations ---------------------------------------------------- */

static int latest_version(void)
{
  return store_sqlite_migrations[store_sqlite_nmigrations - 1].version;
}

static void test_store_migrations_fresh_file(void **state)
{
  struct ctx *c = *state;
  assert_int_equal(store_schema_version(c->s), latest_version());
  struct stat st;
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/drover.db", c->dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(c->dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);

  /* Every version recorded once, in the file, in WAL mode. */
  sqlite3 *db;
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT count(*), min(version), max(version), "
                                      "min(applied_us) FROM schema_version",
                                      -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(q, 0), (int)store_sqlite_nmigrations);
  assert_int_equal(sqlite3_column_int(q, 1), 1);
  assert_int_equal(sqlite3_column_int(q, 2), latest_version());
  assert_true(sqlite3_column_int64(q, 3) > 1700000000LL * 1000000);
  sqlite3_finalize(q);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
  sqlite3_finalize(q);
  sqlite3_close(db);
}

static void test_store_reopen_keeps_data(void **state)
{
  struct ctx *c = *state;
  put_job(c, "kept", RUNNING, 1);
  add_event(c, "kept", QUEUED, RUNNING, "started");
  assert_int_equal(sync_wait(c), 0);
  close_store(c);
  open_store(c);
  assert_int_equal(store_schema_version(c->s), latest_version());
  assert_true(job_exists(c, "kept"));
  struct ids r = {0};
  assert_int_equal(store_event_list(c->s, "kept", collect_event, &r), 0);
  assert_int_equal(r.n, 1);
  assert_string_equal(r.id[0], "started");
}

static void test_store_newer_schema_refused(void **state)
{
  struct ctx *c = *state;
  put_job(c, "x", QUEUED, 1);
  assert_int_equal(sync_wait(c), 0);
  close_store(c);
  raw_sql(c->dir, "PRAGMA journal_mode = DELETE; "
                  "INSERT INTO schema_version (version, applied_us) VALUES (999, 0)");

  char err[512], want[PATH_MAX + 128];
  struct store *s = NULL;
  assert_int_equal(store_open(&c->loop, c->dir, &s, err, sizeof err), STORE_E_VERSION);
  assert_null(s);
  snprintf(want, sizeof want,
           "database '%s/drover.db': made by a newer drover (schema 999, this one knows %d): "
           "upgrade drover",
           c->dir, latest_version());
  assert_string_equal(err, want);
  assert_string_equal(store_strerror(STORE_E_VERSION), "the database was made by a newer drover");
  /* Not even switched to WAL. */
  char path[PATH_MAX + 16];
  sqlite3 *db;
  sqlite3_stmt *q;
  snprintf(path, sizeof path, "%s/drover.db", c->dir);
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0), "delete");
  sqlite3_finalize(q);
  sqlite3_close(db);

  /* Refused before touching anything: the newer drover still has its data. */
  raw_sql(c->dir, "DELETE FROM schema_version WHERE version = 999");
  open_store(c);
  assert_true(job_exists(c, "x"));
}

static void test_store_not_a_database(void **state)
{
  struct ctx *c = *state;
  close_store(c);
  char path[PATH_MAX + 16], err[512];
  struct store *s = NULL;
  snprintf(path, sizeof path, "%s/drover.db", c->dir);
  rm_rf(c->dir);
  assert_int_equal(mkdir(c->dir, 0700), 0);
  const char junk[] = "this is not a database, just a text file that is long enough......."
                      "..........................................................................";
  assert_int_equal(write_file_atomic(path, junk, sizeof junk), 0);
  assert_int_equal(store_open(&c->loop, c->dir, &s, err, sizeof err), STORE_E_CORRUPT);
  assert_non_null(strstr(err, "not a drover database, or damaged"));
  assert_non_null(strstr(err, path));

  /* Somebody else's SQLite database. */
  unlink(path);
  raw_sql(c->dir, "CREATE TABLE recipes (name TEXT)");
  assert_int_equal(store_open(&c->loop, c->dir, &s, err, sizeof err), STORE_E_CORRUPT);
  assert_non_null(strstr(err, "not a drover database"));
  assert_null(s);
}

static void test_store_in_use_refused(void **state)
{
  struct ctx *c = *state;
  char err[512];
  struct store *s = NULL;
  assert_int_equal(store_open(&c->loop, c->dir, &s, err, sizeof err), -EBUSY);
  assert_non_null(strstr(err, "in use by another drover process"));
  assert_null(s);
}

static void test_store_cannot_create_dir(void **state)
{
  struct ctx *c = *state;
  char dir[PATH_MAX + 16], err[512];
  struct store *s = NULL;
  snprintf(dir, sizeof dir, "%s/drover.db/sub", c->dir); /* under a file */
  int rc = store_open(&c->loop, dir, &s, err, sizeof err);
  assert_true(rc == -ENOTDIR || rc == -EEXIST);
  assert_non_null(strstr(err, "data directory '"));
  assert_non_null(strstr(err, "cannot create it"));
}

/* ---- group commit -------------------------------------------------------- */

static void test_store_group_commit_ordering(void **state)
{
  struct ctx *c = *state;
  enum { N = 2000 };
  char id[32];
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "g%05d", i);
    put_job(c, id, QUEUED, i);
    add_event(c, id, 0, QUEUED, "submitted");
    add_event(c, id, QUEUED, ASSIGNED, "assigned");
  }
  struct waiter w = {.s = c->s, .must_see = {"g00000", "g01999"}};
  store_sync(c->s, on_sync, &w);
  /* Nothing is committed before the loop runs the commit. */
  assert_false(w.done);
  assert_int_equal(store_pending(c->s), 3 * N);
  assert_false(job_exists(c, "g00000"));
  assert_false(job_exists(c, "g01999"));
  wait_for(&c->loop, &w.done);
  assert_int_equal(w.status, 0);
  assert_true(w.saw); /* readable when the barrier fired, not only later */
  assert_int_equal(store_pending(c->s), 0);
  for (int i = 0; i < N; i += 97) {
    snprintf(id, sizeof id, "g%05d", i);
    assert_true(job_exists(c, id));
    struct ids r = {0};
    assert_int_equal(store_event_list(c->s, id, collect_event, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.id[0], "submitted");
    assert_string_equal(r.id[1], "assigned");
  }
}

/* Barriers interleaved with operations over several batches: each fires in
 * order, and when it does, what was queued before it is readable. */
struct chain {
  struct ctx *c;
  int step, order[8];
  int ok;
};

static void chain_check(void *ud, int status)
{
  struct chain *ch = ud;
  char id[16];
  assert_int_equal(status, 0);
  ch->order[ch->step] = ++fired;
  snprintf(id, sizeof id, "c%d", ch->step);
  assert_true(job_exists(ch->c, id));
  ch->step++;
  if (ch->step < 6) {
    /* Queue the next from inside the callback: it goes to a later batch. */
    snprintf(id, sizeof id, "c%d", ch->step);
    put_job(ch->c, id, QUEUED, ch->step);
    store_sync(ch->c->s, chain_check, ch);
    assert_false(job_exists(ch->c, id));
  } else {
    ch->ok = 1;
  }
}

static void test_store_barriers_fire_in_order(void **state)
{
  struct ctx *c = *state;
  struct waiter a = {.s = c->s, .must_see = {"o1"}}, b = {0}, e = {0};
  struct waiter d = {.s = c->s, .must_see = {"o1", "o2"}};
  put_job(c, "o1", QUEUED, 1);
  store_sync(c->s, on_sync, &a);
  store_sync(c->s, on_sync, &b); /* nothing between: fires right after a */
  put_job(c, "o2", QUEUED, 2);
  store_sync(c->s, on_sync, &d);
  wait_for(&c->loop, &d.done);
  assert_true(a.done && b.done);
  assert_true(a.saw && d.saw);
  assert_true(a.order < b.order && b.order < d.order);
  /* Most likely made while o3's commit is in flight with nothing pending:
   * e then rides with that commit. Either way it fires after f. */
  put_job(c, "o3", QUEUED, 3);
  struct waiter f = {.s = c->s, .must_see = {"o3"}};
  store_sync(c->s, on_sync, &f);
  uv_run(&c->loop, UV_RUN_NOWAIT); /* the kick: o3's commit starts */
  store_sync(c->s, on_sync, &e);
  wait_for(&c->loop, &e.done);
  assert_true(f.done && f.saw);
  assert_true(f.order < e.order);
  assert_true(job_exists(c, "o3"));

  struct chain ch = {c, 0, {0}, 0};
  put_job(c, "c0", QUEUED, 0);
  store_sync(c->s, chain_check, &ch);
  wait_for(&c->loop, &ch.ok);
  for (int i = 1; i < 6; i++)
    assert_true(ch.order[i] > ch.order[i - 1]);
}

static void test_store_sync_with_nothing_queued(void **state)
{
  struct ctx *c = *state;
  struct waiter w = {0};
  store_sync(c->s, on_sync, &w);
  assert_false(w.done); /* never before store_sync returns */
  assert_int_equal(store_pending(c->s), 0);
  wait_for(&c->loop, &w.done);
  assert_int_equal(w.status, 0);

  /* Twice, then an operation and a third: in order. */
  struct waiter a = {0}, b = {0}, d = {0};
  store_sync(c->s, on_sync, &a);
  store_sync(c->s, on_sync, &b);
  put_job(c, "after", QUEUED, 1);
  store_sync(c->s, on_sync, &d);
  wait_for(&c->loop, &d.done);
  assert_true(a.order < b.order && b.order < d.order);
  assert_true(job_exists(c, "after"));
}

static void close_from_barrier(void *ud, int status)
{
  struct ctx *c = ud;
  assert_int_equal(status, 0);
  put_job(c, "queued-by-the-barrier", QUEUED, 2);
  store_close(c->s, on_closed, &fired);
  c->s = NULL;
}

static void test_store_close_waits_for_queued(void **state)
{
  struct ctx *c = *state;
  char id[16];
  for (int i = 0; i < 300; i++) {
    snprintf(id, sizeof id, "q%d", i);
    put_job(c, id, QUEUED, i);
  }
  close_store(c); /* no sync: close waits all the same */
  open_store(c);
  assert_true(job_exists(c, "q0"));
  assert_true(job_exists(c, "q299"));

  /* Closed from a barrier's callback, with one more operation queued there. */
  put_job(c, "before", QUEUED, 1);
  fired = 0;
  store_sync(c->s, close_from_barrier, c);
  wait_for(&c->loop, &fired);
  open_store(c);
  assert_true(job_exists(c, "before"));
  assert_true(job_exists(c, "queued-by-the-barrier"));
}

/* ---- durability and failures (in child processes) ------------------------ */

#define CHILD_SKIP 77

/* In a child: report and exit without cmocka (whose asserts longjmp into the
 * parent's copy of the runner). */
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #cond);                     \
      _exit(1);                                                                                    \
    }                                                                                              \
  } while (0)

static void child_wait(uv_loop_t *loop, const int *flag)
{
  int64_t deadline = mono_us() + 60 * 1000000LL;
  while (!*flag) {
    CHECK(uv_run(loop, UV_RUN_ONCE) || *flag);
    CHECK(mono_us() < deadline);
  }
}

static void ignore_status(void *ud, int status)
{
}

static void kill_self(void *ud, int status)
{
  if (status == 0)
    raise(SIGKILL);
  _exit(2);
}

static void test_store_synced_ops_survive_sigkill(void **state)
{
  struct ctx *c = *state;
  close_store(c);
  enum { N = 500 };
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    uv_loop_t loop;
    struct store *s;
    char err[512], id[32];
    uv_loop_init(&loop);
    CHECK(store_open(&loop, c->dir, &s, err, sizeof err) == 0);
    /* Committed in several batches: a sync every 100 jobs. */
    for (int i = 0; i < N; i++) {
      struct store_job j;
      snprintf(id, sizeof id, "k%04d", i);
      mkjob(&j, id, QUEUED, i);
      store_job_put(s, &j);
      struct store_event e = {.ts_us = i, .to = QUEUED, .reason = "submitted"};
      snprintf(e.job_id, sizeof e.job_id, "%s", id);
      store_event_add(s, &e);
      if (i % 100 == 99 && i != N - 1)
        store_sync(s, ignore_status, NULL);
    }
    store_sync(s, kill_self, NULL);
    /* Queued after the barrier: may or may not make it; nobody was told. */
    for (int i = 0; i < 50; i++) {
      struct store_job j;
      snprintf(id, sizeof id, "late%d", i);
      mkjob(&j, id, QUEUED, N + i);
      store_job_put(s, &j);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(3); /* kill_self never returned */
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    fail_msg("child did not die of SIGKILL: status %d", status);

  open_store(c);
  char id[32];
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "k%04d", i);
    assert_true(job_exists(c, id));
  }
  struct ids r = {0};
  assert_int_equal(store_event_list(c->s, "k0499", collect_event, &r), 0);
  assert_int_equal(r.n, 1);
}

static int write_str(const char *path, const char *str)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = write(fd, str, strlen(str));
  close(fd);
  return n == (ssize_t)strlen(str) ? 0 : -1;
}

/* In a child: its own mount namespace (private, so nothing reaches the
 * host's) with a small tmpfs on dir. As root, CLONE_NEWNS; otherwise a user
 * namespace gives the right to mount a tmpfs. 0, or -1 with why. */
static int child_small_disk(const char *dir, char *why, size_t len)
{
  if (geteuid() == 0) {
    if (unshare(CLONE_NEWNS) < 0) {
      snprintf(why, len, "unshare(CLONE_NEWNS) as root: %s", strerror(errno));
      return -1;
    }
  } else {
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
      snprintf(why, len, "not root, and no user namespaces: unshare: %s", strerror(errno));
      return -1;
    }
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    int rc = write_str("/proc/self/setgroups", "deny") | write_str("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    if (rc | write_str("/proc/self/gid_map", map)) {
      snprintf(why, len, "cannot map ids in a user namespace: %s", strerror(errno));
      return -1;
    }
  }
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    snprintf(why, len, "cannot make mounts private: %s", strerror(errno));
    return -1;
  }
  if (mkdir(dir, 0700) < 0 || mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700") < 0) {
    snprintf(why, len, "cannot mount a tmpfs on '%s': %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

/* Fills the file system of dir up: a file written until ENOSPC. */
static void fill_disk(const char *path)
{
  static char chunk[16384];
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  ssize_t n;
  while ((n = write(fd, chunk, sizeof chunk)) > 0)
    ;
  CHECK(n < 0 && errno == ENOSPC);
  /* The last few bytes too, so no page is left to give. */
  while (write(fd, chunk, 1) == 1)
    ;
  close(fd);
}

enum { BIG = 40, SPEC_LEN = 32 * 1024 };

/* The child of test_store_commit_failure_retried: a fresh process (the test
 * binary again, run with "--disk-full-child ROOT"), so that its own
 * LeakSanitizer sees only its own memory and threads. Its stderr, the
 * store's log, goes to ROOT/child.log for the parent to check. */
static int commit_failure_child(const char *root)
{
  char dir[PATH_MAX], log_path[PATH_MAX], skip_path[PATH_MAX], filler[PATH_MAX + 16];
  char why[PATH_MAX + 256];
  char err[512];
  snprintf(dir, sizeof dir, "%s/data", root);
  snprintf(log_path, sizeof log_path, "%s/child.log", root);
  snprintf(skip_path, sizeof skip_path, "%s/skip.txt", root);
  int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  dup2(fd, 2);
  close(fd);
  if (child_small_disk(dir, why, sizeof why) < 0) {
    write_file_atomic(skip_path, why, strlen(why));
    _exit(CHILD_SKIP);
  }

  uv_loop_t loop;
  struct store *s;
  uv_loop_init(&loop);
  CHECK(store_open(&loop, dir, &s, err, sizeof err) == 0);
  struct store_job j;
  mkjob(&j, "before", RUNNING, 1);
  store_job_put(s, &j);
  struct waiter w0 = {0};
  store_sync(s, on_sync, &w0);
  child_wait(&loop, &w0.done);
  CHECK(w0.status == 0);

  snprintf(filler, sizeof filler, "%s/filler", dir);
  fill_disk(filler);

  /* More than the log has room for: the commit fails at the disk. */
  uint8_t *spec = xmalloc(SPEC_LEN);
  for (size_t i = 0; i < SPEC_LEN; i++)
    spec[i] = (uint8_t)(i * 7 + 3);
  char id[32];
  for (int i = 0; i < BIG; i++) {
    snprintf(id, sizeof id, "big%02d", i);
    mkjob(&j, id, QUEUED, 10 + i);
    j.spec = spec;
    j.spec_len = SPEC_LEN;
    store_job_put(s, &j);
  }
  struct waiter a = {0}, b = {0};
  store_sync(s, on_sync, &a);
  int64_t deadline = mono_us() + 60 * 1000000LL;
  while (!store_degraded(s)) {
    CHECK(uv_run(&loop, UV_RUN_ONCE));
    CHECK(mono_us() < deadline);
  }
  CHECK(!a.done);
  CHECK(store_pending(s) == BIG);
  struct store_job g;
  CHECK(store_job_get(s, "big00", &g) == -ENOENT);

  /* Queued during the outage: behind the failed batch, in order. A few
   * more retries fail meanwhile. */
  struct store_event e = {.ts_us = 2, .from = RUNNING, .to = SUCCEEDED, .reason = "during"};
  snprintf(e.job_id, sizeof e.job_id, "before");
  store_event_add(s, &e);
  store_sync(s, on_sync, &b);
  for (int i = 0; i < 4; i++)
    CHECK(uv_run(&loop, UV_RUN_ONCE));
  CHECK(store_degraded(s) && !a.done && !b.done);
  CHECK(store_pending(s) == BIG + 1);

  /* Space again: the same batch commits, then its barriers fire. */
  CHECK(unlink(filler) == 0);
  child_wait(&loop, &b.done);
  CHECK(a.done && a.status == 0 && b.status == 0 && a.order < b.order);
  CHECK(!store_degraded(s));
  CHECK(store_pending(s) == 0);
  for (int i = 0; i < BIG; i++) {
    snprintf(id, sizeof id, "big%02d", i);
    CHECK(store_job_get(s, id, &g) == 0);
    CHECK(g.spec_len == SPEC_LEN && memcmp(g.spec, spec, SPEC_LEN) == 0);
    store_job_release(&g);
  }
  struct ids r = {0};
  CHECK(store_event_list(s, "before", collect_event, &r) == 0);
  CHECK(r.n == 1 && strcmp(r.id[0], "during") == 0);
  free(spec);

  int closed = 0;
  store_close(s, on_closed, &closed);
  child_wait(&loop, &closed);
  CHECK(uv_loop_close(&loop) == 0);
  return 0; /* from main: LeakSanitizer checks the child too */
}

static size_t count(const char *hay, const char *needle)
{
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static void test_store_commit_failure_retried(void **state)
{
  struct ctx *c = *state;
  close_store(c);
  rm_rf(c->dir);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execl("/proc/self/exe", "test_store", "--disk-full-child", c->root, (char *)NULL);
    _exit(127);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);

  char path[PATH_MAX], *log = NULL, *why = NULL;
  size_t len;
  snprintf(path, sizeof path, "%s/child.log", c->root);
  assert_int_equal(read_file(path, &log, &len), 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP) {
    snprintf(path, sizeof path, "%s/skip.txt", c->root);
    read_file(path, &why, &len);
    print_message("skipped: no small disk to fill here: %s\n", why ? why : "?");
    free(why);
    free(log);
    open_store(c);
    skip(); /* longjmps out of the test */
    return;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "%s", log);
    fail_msg("child failed: status %d", status);
  }
  /* One line when the streak starts, whatever the number of attempts; one
   * when it ends. */
  assert_int_equal(count(log, "store commit failed: retrying until it succeeds"), 1);
  assert_non_null(strstr(log, "database or disk is full"));
  assert_int_equal(count(log, "store commits succeed again"), 1);
  assert_null(strstr(log, "Sanitizer"));
  assert_null(strstr(log, "runtime error"));
  free(log);
  open_store(c); /* for the teardown */
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "--disk-full-child") == 0)
    return commit_failure_child(argv[2]);
  /* argv[1]: run only the cases matching this pattern, e.g. "*group*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_store_job_put_get),
      T(test_store_idempotency_key_lookup),
      T(test_store_constraint_refused_others_committed),
      T(test_store_job_list_order_and_pages),
      T(test_store_job_list_filters),
      T(test_store_job_list_bad_cursor),
      T(test_store_job_load_active),
      T(test_store_reads_nest_in_callbacks),
      T(test_store_events_in_order),
      T(test_store_event_fields),
      T(test_store_nodes),
      T(test_store_tokens),
      T(test_store_log_rows),
      T(test_store_migrations_fresh_file),
      T(test_store_reopen_keeps_data),
      T(test_store_newer_schema_refused),
      T(test_store_not_a_database),
      T(test_store_in_use_refused),
      T(test_store_cannot_create_dir),
      T(test_store_group_commit_ordering),
      T(test_store_barriers_fire_in_order),
      T(test_store_sync_with_nothing_queued),
      T(test_store_close_waits_for_queued),
      T(test_store_synced_ops_survive_sigkill),
      T(test_store_commit_failure_retried),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
