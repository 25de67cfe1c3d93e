/* runs.c - the jobs a coordinator sent this agent: RunJob into the core, the
 * core's reports out as JobStarted, Progress and (through ship.c) LogBatch and
 * JobFinished; cancel, stop, the job's stdin; and at start, what a previous
 * life of the agent left. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/session_int.h"
#include "agent/spool.h"
#include "base/log.h"
#include "base/util.h"
#include "job/job_pb.h"

/* How long a restart waits for the SIGKILLed processes of an attempt a
 * previous life left to be gone. */
#define LEFTOVER_WAIT_MS 5000
/* Progress is sent at most this often per job (it is advisory, and a job
 * may report it in a tight loop). */
#define PROGRESS_GAP_MS 100
/* JobStarted waits this long (or for the job's end): a job that ends sooner
 * reports its start, output and result in one go, and the coordinator makes
 * them one commit instead of two. A longer one is shown running this late. */
#define START_DELAY_MS 20

/* One job attempt running here for the coordinator. */
struct rjob {
  struct core_job cj; /* first: the core's job is the rjob */
  struct agent_session *s;
  struct ship *ship;
  uv_pipe_t *in;       /* the write end of the job's stdin, or NULL */
  uint64_t in_queued;  /* stdin bytes handed to the pipe so far ... */
  uint64_t in_written; /* ... and written */
  unsigned in_pending; /* writes in flight */
  int in_eof;          /* close stdin once the writes are done */
  int done;            /* the core is done with it; freed once `in` is closed */
  int stopping;        /* stopped: killed, nothing of it kept */
  int start_told;      /* JobStarted went out */
  uint64_t started_at; /* loop time its process was made */
  char *give_back;     /* not started, going back to the coordinator (the reason) */
  pb_Progress progress;
  char *stage, *message;
  int progress_dirty;
  uint64_t progress_sent; /* loop time */
};

static void rjob_closed(uv_handle_t *h)
{
  struct rjob *r = h->data;
  free(r->in);
  r->in = NULL;
  if (r->done) {
    free(r->stage);
    free(r->message);
    free(r);
  }
}

static void close_stdin(struct rjob *r)
{
  if (r->in && !uv_is_closing((uv_handle_t *)r->in))
    uv_close((uv_handle_t *)r->in, rjob_closed);
}

static void send_started(struct agent_session *s, struct rjob *r)
{
  if (r->start_told)
    return;
  r->start_told = 1;
  if (s->starts_pending)
    s->starts_pending--;
  Drover__V1__JobStarted js = DROVER__V1__JOB_STARTED__INIT;
  js.job_id = r->cj.id;
  js.attempt = r->cj.attempt;
  js.pid = r->cj.pid;
  js.started_at_us = now_us();
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_JOB_STARTED;
  m.job_started = &js;
  agent_session_send(s, &m);
}

static void reject(struct agent_session *s, const char *id, unsigned attempt, const char *why)
{
  log_info("job rejected", "job=%s attempt=%u reason=\"%s\"", id, attempt, why);
  Drover__V1__JobRejected jr = DROVER__V1__JOB_REJECTED__INIT;
  jr.job_id = (char *)id;
  jr.attempt = attempt;
  jr.reason = (char *)why;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_JOB_REJECTED;
  m.job_rejected = &jr;
  agent_session_send(s, &m);
}

/* A job the agent cannot run (a spec it does not take): it ends at once,
 * failed, with the reason. */
static void fail_unrun(struct agent_session *s, const char *id, unsigned attempt, const char *why)
{
  log_warn("job cannot run here", "job=%s attempt=%u error=\"%s\"", id, attempt, why);
  struct job_result r;
  job_result_init(&r);
  r.status = JOB_FAILED;
  r.exit_code = -1;
  r.attempt = attempt;
  r.finished_us = now_us();
  r.error = xstrdup(why);
  pb_JobResult *pr = job_result_to_pb(&r);
  job_result_release(&r);
  ship_end(ship_new(s->ships, id, attempt), pr);
}

void runs_on_run(struct agent_session *s, const Drover__V1__RunJob *m)
{
  if (!m->job || !m->job->spec || !m->job->spec->id || !*m->job->spec->id || !m->attempt) {
    log_warn("RunJob without a job id or attempt; ignored", "attempt=%u", m->attempt);
    return;
  }
  const pb_JobSpec *spec = m->job->spec;
  const char *id = spec->id;
  /* Sent again after a reconnect (the first may never have arrived). */
  if (core_find(s->core, id, m->attempt) || shipper_find(s->ships, id, m->attempt))
    return;
  if (s->shutting || s->draining) {
    reject(s, id, m->attempt, s->shutting ? "the agent is shutting down" : "the node is draining");
    return;
  }
  if (runs_live(s) >= core_slots(s->core) + s->o.prefetch) {
    reject(s, id, m->attempt, "no free slot");
    return;
  }
  struct job j;
  char err[512];
  if (job_from_pb(&j, spec, err, sizeof(err)) < 0) {
    fail_unrun(s, id, m->attempt, err);
    return;
  }
  struct rjob *r = xcalloc(1, sizeof(*r));
  r->s = s;
  snprintf(r->cj.id, sizeof(r->cj.id), "%s", id);
  r->cj.attempt = m->attempt;
  r->cj.stdin_fd = -1;
  drover__v1__progress__init(&r->progress);
  if (spec->stdin) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
      snprintf(err, sizeof(err), "cannot make a pipe for the job's stdin: %s", strerror(errno));
      job_release(&j);
      free(r);
      fail_unrun(s, id, m->attempt, err);
      return;
    }
    r->in = xmalloc(sizeof(*r->in));
    uv_pipe_init(s->loop, r->in, 0);
    r->in->data = r;
    uv_pipe_open(r->in, fds[1]);
    r->cj.stdin_fd = fds[0];
  }
  r->ship = ship_new(s->ships, id, m->attempt);
  ship_sink(r->ship, &r->cj.sink);
  log_debug("job received", "job=%s attempt=%u", id, m->attempt);
  /* May start it, and even end it (done), before it returns. */
  core_submit(s->core, &r->cj, &j);
}

unsigned runs_live(struct agent_session *s)
{
  /* A stopped job may take a moment to die: its slot is free already for
   * the coordinator, so it is for us (the pool starts the next job when the
   * process is gone). */
  unsigned n = 0;
  for (struct core_job *cj = core_jobs(s->core); cj; cj = cj->next)
    n += !((struct rjob *)cj)->stopping;
  return n;
}

void runs_give_back(struct agent_session *s, const char *why)
{
  /* Collected first: cancelling a queued job ends it (and frees it) at once. */
  size_t n = 0;
  for (struct core_job *cj = core_jobs(s->core); cj; cj = cj->next)
    n += !cj->started;
  if (!n)
    return;
  struct rjob **v = xcalloc(n, sizeof(*v));
  n = 0;
  for (struct core_job *cj = core_jobs(s->core); cj; cj = cj->next)
    if (!cj->started)
      v[n++] = (struct rjob *)cj;
  for (size_t i = 0; i < n; i++) {
    log_info("giving a job taken ahead back", "job=%s attempt=%u reason=\"%s\"", v[i]->cj.id,
             v[i]->cj.attempt, why);
    v[i]->give_back = xstrdup(why);
    core_cancel(s->core, &v[i]->cj, 0);
  }
  free(v);
}

void runs_stop(struct agent_session *s, const char *id, unsigned attempt, const char *why)
{
  struct ship *sh = shipper_find(s->ships, id, attempt);
  struct core_job *cj = core_find(s->core, id, attempt);
  if (!sh && !cj)
    return;
  log_info("stopping job attempt", "job=%s attempt=%u reason=\"%s\"", id, attempt, why);
  /* Dropped first: when the job ends, nothing of it is kept or sent. */
  if (sh)
    ship_drop(sh);
  if (cj) {
    ((struct rjob *)cj)->stopping = 1;
    core_cancel(s->core, cj, 0);
  }
}

void runs_on_cancel(struct agent_session *s, const Drover__V1__CancelJob *m)
{
  if (!m->job_id)
    return;
  if (m->reason && !strcmp(m->reason, "stale")) {
    runs_stop(s, m->job_id, m->attempt, "stale: the coordinator has moved on");
    return;
  }
  struct core_job *cj = core_find(s->core, m->job_id, m->attempt);
  if (!cj)
    return;
  log_info("cancelling job", "job=%s attempt=%u grace_ms=%llu reason=\"%s\"", cj->id, cj->attempt,
           (unsigned long long)m->grace_ms, m->reason ? m->reason : "");
  core_cancel(s->core, cj, m->grace_ms ? m->grace_ms : UINT64_MAX);
}

/* ---- stdin ---- */

struct in_write {
  uv_write_t req;
  struct rjob *r;
  size_t len;
  char data[];
};

static void in_written(uv_write_t *req, int status)
{
  struct in_write *w = req->data;
  struct rjob *r = w->r;
  r->in_pending--;
  /* A job that closed its stdin (EPIPE) does not want the rest: counted as
   * taken, so that the coordinator does not hold the client back. */
  r->in_written += w->len;
  free(w);
  if (r->done)
    return;
  Drover__V1__StdinAck ack = DROVER__V1__STDIN_ACK__INIT;
  ack.job_id = r->cj.id;
  ack.attempt = r->cj.attempt;
  ack.bytes = r->in_written;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_STDIN_ACK;
  m.stdin_ack = &ack;
  agent_session_send(r->s, &m);
  if (r->in_eof && !r->in_pending)
    close_stdin(r);
}

void runs_on_stdin(struct agent_session *s, const Drover__V1__StdinData *m)
{
  struct core_job *cj = m->job_id ? core_find(s->core, m->job_id, m->attempt) : NULL;
  struct rjob *r = (struct rjob *)cj;
  if (!r || !r->in || uv_is_closing((uv_handle_t *)r->in) || r->in_eof)
    return;
  /* Sent again after a reconnect from the last StdinAck: skip what the
   * pipe already has. */
  size_t len = m->data.len, skip = 0;
  if (m->offset < r->in_queued)
    skip = r->in_queued - m->offset > len ? len : (size_t)(r->in_queued - m->offset);
  if (m->offset > r->in_queued)
    log_warn("stdin data beyond what was received; taken as it comes",
             "job=%s offset=%llu have=%llu", r->cj.id, (unsigned long long)m->offset,
             (unsigned long long)r->in_queued);
  if (len > skip) {
    struct in_write *w = xmalloc(sizeof(*w) + len - skip);
    w->req.data = w;
    w->r = r;
    w->len = len - skip;
    memcpy(w->data, m->data.data + skip, w->len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)r->in, &buf, 1, in_written) < 0) {
      free(w);
    } else {
      r->in_pending++;
      r->in_queued += w->len;
    }
  }
  if (m->eof) {
    r->in_eof = 1;
    if (!r->in_pending)
      close_stdin(r);
  }
}

/* ---- progress ---- */

static void progress_timer_cb(uv_timer_t *t)
{
  runs_flush_progress(t->data);
}

static void send_progress(struct agent_session *s, struct rjob *r)
{
  r->progress.job_id = r->cj.id;
  r->progress.attempt = r->cj.attempt;
  r->progress.stage = r->stage;
  r->progress.message = r->message;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_PROGRESS;
  m.progress = &r->progress;
  if (agent_session_send(s, &m) >= 0) {
    r->progress_dirty = 0;
    r->progress_sent = uv_now(s->loop);
  }
}

void runs_flush_progress(struct agent_session *s)
{
  int left = 0;
  for (struct core_job *cj = core_jobs(s->core); cj; cj = cj->next) {
    struct rjob *r = (struct rjob *)cj;
    if (r->progress_dirty)
      send_progress(s, r);
    left |= r->progress_dirty;
  }
  if (left && s->welcomed && !uv_is_active((uv_handle_t *)&s->progress_timer))
    uv_timer_start(&s->progress_timer, progress_timer_cb, PROGRESS_GAP_MS, 0);
}

/* ---- the core's callbacks ---- */

static void on_before_start(struct agent_core *c, void *ud, struct core_job *cj)
{
  struct agent_session *s = ud;
  struct core_attempt a = {.n = cj->attempt};
  if (state_record_write(&s->st, cj->id, cj->attempt, &a) < 0)
    log_warn("cannot write attempt record", "dir=%s job=%s", s->st.jobs, cj->id);
}

static void start_timer_cb(uv_timer_t *t);

static void on_started(struct agent_core *c, void *ud, struct core_job *cj,
                       const struct core_attempt *a)
{
  struct agent_session *s = ud;
  if (a->pgid > 0 && state_record_write(&s->st, cj->id, cj->attempt, a) < 0)
    log_warn("cannot write attempt record", "dir=%s job=%s", s->st.jobs, cj->id);
  log_debug("job started", "job=%s attempt=%u pid=%d", cj->id, cj->attempt, cj->pid);
  struct rjob *r = (struct rjob *)cj;
  r->started_at = uv_now(s->loop);
  s->starts_pending++;
  if (!uv_is_active((uv_handle_t *)&s->start_timer))
    uv_timer_start(&s->start_timer, start_timer_cb, START_DELAY_MS, START_DELAY_MS);
}

/* Tells the starts that have waited START_DELAY_MS. */
static void start_timer_cb(uv_timer_t *t)
{
  struct agent_session *s = t->data;
  uint64_t now = uv_now(s->loop);
  for (struct core_job *cj = core_jobs(s->core); cj; cj = cj->next) {
    struct rjob *r = (struct rjob *)cj;
    if (cj->started && !r->start_told && !r->stopping && now - r->started_at >= START_DELAY_MS)
      send_started(s, r);
  }
  if (!s->starts_pending)
    uv_timer_stop(t);
}

static void on_progress(struct agent_core *c, void *ud, struct core_job *cj,
                        const struct job_progress *p)
{
  struct agent_session *s = ud;
  struct rjob *r = (struct rjob *)cj;
  free(r->stage);
  free(r->message);
  r->stage = p->stage ? xstrdup(p->stage) : NULL;
  r->message = p->message ? xstrdup(p->message) : NULL;
  r->progress.percent = p->percent;
  r->progress_dirty = 1;
  if (uv_now(s->loop) - r->progress_sent >= PROGRESS_GAP_MS)
    send_progress(s, r);
  if (r->progress_dirty && s->welcomed && !uv_is_active((uv_handle_t *)&s->progress_timer))
    uv_timer_start(&s->progress_timer, progress_timer_cb, PROGRESS_GAP_MS, 0);
}

static void on_done(struct agent_core *c, void *ud, struct core_job *cj, const struct job *j,
                    const struct job_result *res)
{
  struct rjob *r = (struct rjob *)cj;
  if (r->give_back && !cj->started) {
    /* Taken ahead and never started: the coordinator queues it again. */
    reject(r->s, cj->id, cj->attempt, r->give_back);
    ship_drop(r->ship);
    r->ship = NULL;
    r->done = 1;
    free(r->give_back);
    r->give_back = NULL;
    if (r->in) {
      close_stdin(r);
      return;
    }
    free(r->stage);
    free(r->message);
    free(r);
    return;
  }
  pb_JobResult *pr = job_result_to_pb(res);
  pr->attempt = cj->attempt;
  log_debug("job finished", "job=%s attempt=%u status=%s exit=%d duration_ms=%llu", cj->id,
            cj->attempt, job_status_name(res->status), res->exit_code,
            (unsigned long long)(res->duration_us / 1000));
  ship_end(r->ship, pr);
  r->ship = NULL;
  r->done = 1;
  if (r->in) {
    close_stdin(r); /* freed once closed */
    return;
  }
  free(r->stage);
  free(r->message);
  free(r);
}

const struct core_ops runs_core_ops = {on_before_start, on_started, on_progress, on_done, NULL};

/* ---- a restart ---- */

int runs_recover(struct agent_session *s, char *err, size_t errlen)
{
  struct state_name *v;
  int n = state_records(&s->st, &v);
  for (int i = 0; i < n; i++) {
    struct core_attempt a;
    if (state_record_read(&s->st, v[i].id, v[i].attempt, &a) < 0)
      continue;
    /* A job dies with its agent: what is left of it is killed before this
     * life does anything else. */
    int rc = core_attempt_kill(v[i].id, &a, LEFTOVER_WAIT_MS);
    if (rc == -ETIMEDOUT)
      log_error("processes of a previous life's job could not be killed; check them",
                "job=%s attempt=%u pgid=%d", v[i].id, v[i].attempt, a.pgid);
    char *result = state_result_path(&s->st, v[i].id, v[i].attempt);
    int finished = access(result, F_OK) == 0;
    free(result);
    if (finished && ship_restore(s->ships, v[i].id, v[i].attempt) == 0) {
      state_record_remove(&s->st, v[i].id, v[i].attempt);
      continue;
    }
    if (!finished) {
      struct spool sp;
      spool_init(&sp, s->st.spool, v[i].id, v[i].attempt, 0);
      spool_destroy(&sp);
    }
    log_warn("job attempt of a previous life stopped; reporting it", "job=%s attempt=%u", v[i].id,
             v[i].attempt);
    agent_session_add_stopped(s, v[i].id, v[i].attempt, 1);
  }
  free(v);
  /* Results whose record had gone (written, then the agent died). */
  n = state_list(s->st.results, &v);
  for (int i = 0; i < n; i++) {
    if (shipper_find(s->ships, v[i].id, v[i].attempt))
      continue;
    if (ship_restore(s->ships, v[i].id, v[i].attempt) < 0)
      agent_session_add_stopped(s, v[i].id, v[i].attempt, 1);
  }
  free(v);
  return 0;
}
