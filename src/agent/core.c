/* core.c - the agent core (see core.h): the pool's callbacks turned into the
 * front-end's, attempt records, cancel, and the phases of a shutdown. */
#include "agent/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/smap.h"
#include "base/util.h"
#include "exec/pool.h"
#include "tools/policy.h"

struct agent_core {
  uv_loop_t *loop;
  struct core_ops ops;
  void *ud;
  struct pool *pool;
  unsigned slots;
  uint64_t shutdown_timeout_ms;
  const struct tools_policy *tools;
  char boot_id[PROC_BOOT_ID_LEN + 1]; /* "" when unknown: no attempt records by process */

  struct smap jobs;      /* "id:attempt" -> struct core_job */
  struct core_job *list; /* every job, newest first */
  const struct job *last_pj;
  struct core_job *last_cj; /* on_line's cache: the pool's job pointer and its job */

  int phase; /* shutdown: 0 no, 1 waiting, 2 cancelling, 3 killing */
  unsigned holds;
  core_shutdown_cb shutdown_cb;
  void *shutdown_ud;
  uv_timer_t shutdown_timer, done_timer;
  int closing;
  core_close_cb close_cb;
  void *close_ud;
};

/* ---- attempt records ---- */

void core_attempt_format(const struct core_attempt *a, char *buf, size_t len)
{
  if (a->pgid > 0)
    snprintf(buf, len, "%u %d %llu %s", a->n, a->pgid, (unsigned long long)a->start, a->boot);
  else
    snprintf(buf, len, "%u", a->n);
}

void core_attempt_parse(const char *text, struct core_attempt *a)
{
  char boot[PROC_BOOT_ID_LEN + 1];
  unsigned long long start;
  memset(a, 0, sizeof(*a));
  a->n = (unsigned)strtoul(text, NULL, 10);
  if (sscanf(text, "%*u %d %llu %36s", &a->pgid, &start, boot) == 3 && a->pgid > 1 &&
      strlen(boot) == PROC_BOOT_ID_LEN) {
    a->start = start;
    memcpy(a->boot, boot, sizeof(boot));
  } else {
    a->pgid = 0;
  }
}

int core_attempt_kill(const char *job_id, const struct core_attempt *a, unsigned timeout_ms)
{
  char boot[PROC_BOOT_ID_LEN + 1];
  if (a->pgid <= 0)
    return 0;
  if (proc_boot_id(boot, sizeof(boot)) < 0 || strcmp(a->boot, boot) != 0) {
    log_info("previous attempt ran before a reboot: nothing of it is left", "job=%s attempt=%u",
             job_id, a->n);
    return 0;
  }
  char *entry = xasprintf("DROVER_JOB_ID=%s", job_id);
  int rc = proc_group_kill(a->pgid, a->start, entry, timeout_ms);
  free(entry);
  if (rc > 0)
    log_warn("killed what was left of the previous attempt",
             "job=%s attempt=%u pgid=%d processes=%d", job_id, a->n, a->pgid, rc);
  else if (rc == -ETIMEDOUT)
    log_error("processes of the previous attempt are still alive after SIGKILL", "job=%s pgid=%d",
              job_id, a->pgid);
  else if (rc < 0)
    log_warn("cannot look for processes of the previous attempt", "job=%s pgid=%d error=%s", job_id,
             a->pgid, strerror(-rc));
  return rc;
}

/* ---- jobs ---- */

static void key_of(char *key, size_t len, const char *id, unsigned attempt)
{
  snprintf(key, len, "%s:%u", id, attempt);
}

struct core_job *core_find(struct agent_core *c, const char *id, unsigned attempt)
{
  char key[160];
  key_of(key, sizeof(key), id, attempt);
  return smap_get(&c->jobs, key);
}

/* The job of a pool callback. Output comes in runs of lines of one job:
 * the last one found is checked first. */
static struct core_job *job_of(struct agent_core *c, const struct job *j)
{
  if (j == c->last_pj && c->last_cj)
    return c->last_cj;
  struct core_job *cj = core_find(c, j->id, j->attempt);
  if (cj) {
    cj->pj = j;
    c->last_pj = j;
    c->last_cj = cj;
  }
  return cj;
}

static void unlink_job(struct agent_core *c, struct core_job *cj)
{
  char key[160];
  key_of(key, sizeof(key), cj->id, cj->attempt);
  smap_del(&c->jobs, key);
  if (cj->prev)
    cj->prev->next = cj->next;
  else
    c->list = cj->next;
  if (cj->next)
    cj->next->prev = cj->prev;
  cj->prev = cj->next = NULL;
  if (c->last_cj == cj) {
    c->last_cj = NULL;
    c->last_pj = NULL;
  }
}

int core_submit(struct agent_core *c, struct core_job *cj, struct job *j)
{
  char key[160];
  key_of(key, sizeof(key), cj->id, cj->attempt);
  if (smap_get(&c->jobs, key))
    return -EEXIST;
  cj->started = 0;
  cj->pid = 0;
  cj->pj = NULL;
  cj->prev = NULL;
  cj->next = c->list;
  if (c->list)
    c->list->prev = cj;
  c->list = cj;
  smap_put(&c->jobs, key, cj);
  j->attempt = cj->attempt;
  tools_job_prepare(j, c->tools); /* a tool job gets this agent's policy */
  int fd = cj->stdin_fd;
  cj->stdin_fd = -1; /* the pool's now */
  pool_submit_stdin(c->pool, j, fd);
  return 0;
}

void core_set_tools(struct agent_core *c, const struct tools_policy *p)
{
  c->tools = p;
}

void core_cancel(struct agent_core *c, struct core_job *cj, uint64_t grace_ms)
{
  pool_cancel_attempt(c->pool, cj->id, cj->attempt, grace_ms);
}

unsigned core_running(const struct agent_core *c)
{
  return pool_running(c->pool);
}

size_t core_queued(const struct agent_core *c)
{
  return pool_queued(c->pool);
}

struct core_job *core_jobs(const struct agent_core *c)
{
  return c->list;
}

unsigned core_slots(const struct agent_core *c)
{
  return c->slots;
}

/* ---- the pool's callbacks ---- */

static void on_before_start(struct pool *p, void *ud, const struct job *j)
{
  struct agent_core *c = ud;
  struct core_job *cj = job_of(c, j);
  if (cj && c->ops.before_start)
    c->ops.before_start(c, c->ud, cj);
}

static void on_start(struct pool *p, void *ud, struct exec *e, const struct job *j)
{
  struct agent_core *c = ud;
  struct core_job *cj = job_of(c, j);
  if (!cj)
    return;
  cj->started = 1;
  cj->pid = e ? exec_pid(e) : 0;
  /* The process exists (its own group's leader): its pid, start time and
   * this boot's id identify it after a restart, and never a process that
   * gets the pid later. */
  struct core_attempt a = {.n = cj->attempt};
  struct proc_stat st;
  if (cj->pid > 0 && c->boot_id[0] && proc_stat_read(cj->pid, &st) == 0) {
    a.pgid = cj->pid;
    a.start = st.start;
    memcpy(a.boot, c->boot_id, sizeof(a.boot));
  }
  if (c->ops.started)
    c->ops.started(c, c->ud, cj, &a);
}

static void on_line(struct pool *p, void *ud, const struct job *j, enum job_stream s, int64_t ts_us,
                    const char *data, size_t len, int flags)
{
  struct core_job *cj = job_of(ud, j);
  if (cj && cj->sink.line)
    cj->sink.line(cj->sink.impl, s, ts_us, data, len, (unsigned)flags);
}

static void on_progress(struct pool *p, void *ud, const struct job *j,
                        const struct job_progress *pr)
{
  struct agent_core *c = ud;
  struct core_job *cj = job_of(c, j);
  if (cj && c->ops.progress)
    c->ops.progress(c, c->ud, cj, pr);
}

static void check_idle(struct agent_core *c);

static void on_done(struct pool *p, void *ud, const struct job *j, const struct job_result *r)
{
  struct agent_core *c = ud;
  struct core_job *cj = job_of(c, j);
  if (!cj)
    return;
  unlink_job(c, cj);
  c->ops.done(c, c->ud, cj, j, r);
  check_idle(c);
}

/* ---- shutdown ---- */

static void done_timer_cb(uv_timer_t *h)
{
  struct agent_core *c = h->data;
  if (c->shutdown_cb) {
    core_shutdown_cb cb = c->shutdown_cb;
    c->shutdown_cb = NULL;
    cb(c, c->shutdown_ud);
  }
}

static void check_idle(struct agent_core *c)
{
  if (!c->phase || c->list || c->holds || !c->shutdown_cb)
    return;
  uv_timer_stop(&c->shutdown_timer);
  /* From its own loop turn: cb may close the core, which must not happen
   * inside a pool callback. */
  uv_timer_start(&c->done_timer, done_timer_cb, 0, 0);
}

/* Cancels every job, queued (queued_only) or all. By (id, attempt), not by
 * pointer: a cancel may complete a job, and the front-end free it, at once. */
static void cancel_all(struct agent_core *c, int queued_only, uint64_t grace_ms)
{
  size_t n = 0, cap = c->jobs.n;
  struct {
    char id[129];
    unsigned attempt;
  } *v = xcalloc(cap ? cap : 1, sizeof(*v));
  for (struct core_job *cj = c->list; cj && n < cap; cj = cj->next) {
    if (queued_only && cj->started)
      continue;
    memcpy(v[n].id, cj->id, sizeof(v[n].id));
    v[n++].attempt = cj->attempt;
  }
  for (size_t i = 0; i < n; i++) {
    struct core_job *cj = core_find(c, v[i].id, v[i].attempt);
    if (cj)
      core_cancel(c, cj, grace_ms);
  }
  free(v);
}

static void enter_phase(struct agent_core *c, int phase)
{
  c->phase = phase;
  cancel_all(c, 0, phase == 2 ? UINT64_MAX : 0);
  if (c->ops.phase)
    c->ops.phase(c, c->ud, phase);
  check_idle(c);
}

static void shutdown_timer_cb(uv_timer_t *h)
{
  struct agent_core *c = h->data;
  log_warn("shutdown timeout: cancelling running jobs", "running=%u", core_running(c));
  enter_phase(c, 2);
}

void core_shutdown(struct agent_core *c, core_shutdown_cb cb, void *ud)
{
  if (!c->phase) {
    c->phase = 1;
    c->shutdown_cb = cb;
    c->shutdown_ud = ud;
    pool_pause(c->pool, 1);
    cancel_all(c, 1, 0);
    if (c->list || c->holds)
      uv_timer_start(&c->shutdown_timer, shutdown_timer_cb, c->shutdown_timeout_ms, 0);
    check_idle(c);
    return;
  }
  uv_timer_stop(&c->shutdown_timer);
  if (c->phase == 1) {
    log_warn("cancelling running jobs now", "running=%u", core_running(c));
    enter_phase(c, 2);
  } else {
    log_warn("killing running jobs", "running=%u", core_running(c));
    enter_phase(c, 3);
  }
}

int core_shutdown_phase(const struct agent_core *c)
{
  return c->phase;
}

void core_hold(struct agent_core *c)
{
  c->holds++;
}

void core_unhold(struct agent_core *c)
{
  if (c->holds)
    c->holds--;
  check_idle(c);
}

/* ---- lifecycle ---- */

struct agent_core *core_new(uv_loop_t *loop, const struct core_opts *opts,
                            const struct core_ops *ops, void *ud)
{
  struct agent_core *c = xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->ops = *ops;
  c->ud = ud;
  c->slots = opts->slots;
  if (!c->slots) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->slots = n > 0 ? (unsigned)n : 1;
  }
  c->shutdown_timeout_ms = opts->shutdown_timeout_ms;
  if (proc_boot_id(c->boot_id, sizeof(c->boot_id)) < 0)
    c->boot_id[0] = '\0';
  smap_init(&c->jobs);
  static const struct pool_ops pops = {on_before_start, on_start, on_line, on_progress, on_done};
  struct exec_opts eo = {.sandbox = opts->sandbox};
  eo.docker_host = opts->docker_host;
  eo.docker_node = opts->docker_node;
  c->pool = pool_new(loop, c->slots, &eo, &pops, c);
  uv_timer_init(loop, &c->shutdown_timer);
  uv_timer_init(loop, &c->done_timer);
  c->shutdown_timer.data = c->done_timer.data = c;
  return c;
}

static void closed_cb(uv_handle_t *h)
{
  struct agent_core *c = h->data;
  if (--c->closing > 0)
    return;
  core_close_cb cb = c->close_cb;
  void *ud = c->close_ud;
  smap_release(&c->jobs, NULL);
  free(c);
  if (cb)
    cb(ud);
}

void core_close(struct agent_core *c, core_close_cb cb, void *ud)
{
  pool_free(c->pool);
  c->pool = NULL;
  c->close_cb = cb;
  c->close_ud = ud;
  c->closing = 2;
  uv_close((uv_handle_t *)&c->shutdown_timer, closed_cb);
  uv_close((uv_handle_t *)&c->done_timer, closed_cb);
}
