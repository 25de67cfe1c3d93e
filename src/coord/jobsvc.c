/* jobsvc.c - drover.v1.JobService: Submit, Get, List, Cancel, Logs, Wait,
 * Events, WriteStdin.
 *
 * A reply that reports a change (a submitted job, a cancel) is sent from a
 * commit action: the client learns of nothing that a crash could take back.
 * Calls that wait (Wait, Logs with follow) hang on the job as waiters; a call
 * the client gives up on ends in on_done, which detaches it, so no action or
 * waiter ever touches a finished call. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/id.h"
#include "base/log.h"
#include "base/util.h"
#include "coord/coord_int.h"
#include "job/spec.h"
#include "job/states.h"

#define LIST_DEFAULT 100
#define LIST_MAX     10000
#define STDIN_WINDOW (256u * 1024) /* stdin bytes in flight to the agent, per job */
#define STDIN_CHUNK  (64u * 1024)

/* One client call waiting for something. refs: the call (until on_done) and
 * each pending action or waiter registration. */
struct req {
  struct waiter w; /* first: a waiter is a req */
  struct coord *c;
  rpc_call *call; /* NULL once the call is over */
  int refs;
  struct cjob *job; /* referenced while waiting on it */
  int dedup;
  /* Logs */
  struct logreader *reader;
  uint32_t attempt;
  uint64_t after_seq; /* of attempt: frames up to it were seen */
  int follow, blocked, ended;
  char id[129];
};

static struct req *req_new(struct coord *c, rpc_call *call)
{
  struct req *r = xcalloc(1, sizeof(*r));
  r->c = c;
  r->call = call;
  r->refs = 1;
  rpc_call_set_data(call, r);
  return r;
}

static void req_unref(struct req *r)
{
  if (--r->refs > 0)
    return;
  if (r->job)
    cjob_unref(r->c, r->job);
  logreader_close(r->reader);
  free(r);
}

static void req_on_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct req *r = rpc_call_data(call);
  (void)st;
  (void)ud;
  if (!r)
    return;
  r->call = NULL;
  if (r->job && (r->w.wake || r->w.logs)) {
    waiter_del(r->job, &r->w);
    r->w.wake = NULL;
    r->w.logs = NULL;
    r->refs--; /* the waiter's reference; never the last while the call's is held */
  }
  req_unref(r);
}

static void finish_msg(struct req *r, const ProtobufCMessage *m)
{
  if (r->call)
    rpc_call_reply(r->call, m);
}

static void finish_err(struct req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish_err(struct req *r, int code, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (r->call)
    rpc_call_finish(r->call, code, buf);
}

/* The job with this id, in memory or in the store, as a view for a reply.
 * *heap is set when the view was made from the store (free it). Returns NULL
 * when there is no such job (or it does not unpack). */
static const pb_Job *find_view(struct coord *c, const char *id, pb_Job *buf, pb_Job **heap)
{
  *heap = NULL;
  struct cjob *j = cjob_get(c, id);
  if (j) {
    cjob_view(j, buf);
    return buf;
  }
  struct store_job row;
  if (store_job_get(c->store, id, &row) < 0)
    return NULL;
  *heap = cjob_view_row(c, &row);
  store_job_release(&row);
  return *heap;
}

static void free_view(pb_Job *heap)
{
  if (heap)
    protobuf_c_message_free_unpacked(&heap->base, NULL);
}

/* ---- Submit ---- */

static void submit_reply(struct coord *c, void *arg)
{
  struct req *r = arg;
  Drover__V1__SubmitResponse resp = DROVER__V1__SUBMIT_RESPONSE__INIT;
  pb_Job view;
  cjob_view(r->job, &view);
  resp.job = &view;
  resp.deduplicated = r->dedup;
  finish_msg(r, &resp.base);
  (void)c;
  req_unref(r);
}

static void submit_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = req_new(c, call);
  Drover__V1__SubmitRequest *sr = (Drover__V1__SubmitRequest *)m->msg;
  char err[512];
  if (!sr || !sr->spec) {
    finish_err(r, RPC_INVALID_ARGUMENT, "SubmitRequest needs a spec");
    return;
  }
  pb_JobSpec *spec = sr->spec;
  if (job_spec_check(spec, err, sizeof(err)) < 0) {
    finish_err(r, RPC_INVALID_ARGUMENT, "%s", err);
    return;
  }
  const char *key = spec->idempotency_key && *spec->idempotency_key ? spec->idempotency_key : NULL;
  if (key) {
    struct cjob *first = smap_get(&c->keys, key);
    char id[129];
    if (first) {
      /* The first job may still be on its way to the disk: answer after it. */
      r->job = first;
      cjob_ref(first);
      r->dedup = 1;
      r->refs++;
      coord_after(c, ACT_COMMIT, submit_reply, r);
      return;
    }
    if (store_job_find_key(c->store, key, id) == 0) {
      pb_Job buf, *heap;
      const pb_Job *v = find_view(c, id, &buf, &heap);
      if (v) {
        Drover__V1__SubmitResponse resp = DROVER__V1__SUBMIT_RESPONSE__INIT;
        resp.job = (pb_Job *)v;
        resp.deduplicated = 1;
        finish_msg(r, &resp.base);
        free_view(heap);
        return;
      }
    }
  }
  if (spec->id && *spec->id) {
    struct store_job row;
    if (cjob_get(c, spec->id) || store_job_get(c->store, spec->id, &row) == 0) {
      if (!cjob_get(c, spec->id))
        store_job_release(&row);
      finish_err(r, RPC_ALREADY_EXISTS,
                 "job '%s' already exists: give each job its own id, or leave it out", spec->id);
      return;
    }
  } else {
    char id[ID_LEN + 1];
    id_new(id);
    spec->id = xstrdup(id); /* the empty default is not freed by protobuf-c */
  }

  /* The job takes the spec out of the request. */
  rpc_msg_take(m);
  sr->spec = NULL;
  protobuf_c_message_free_unpacked(&sr->base, NULL);

  struct cjob *j = xcalloc(1, sizeof(*j));
  j->refs = 1;
  snprintf(j->id, sizeof(j->id), "%s", spec->id);
  j->spec = spec;
  j->spec_len = protobuf_c_message_get_packed_size(&spec->base);
  j->spec_bytes = xmalloc(j->spec_len ? j->spec_len : 1);
  protobuf_c_message_pack(&spec->base, j->spec_bytes);
  j->max_attempts = spec->max_attempts ? spec->max_attempts : 1;
  j->created_us = coord_now_us();
  j->state = JS_UNSPECIFIED;
  smap_put(&c->jobs, j->id, j);
  if (key)
    smap_put(&c->keys, key, j);
  cjob_set_state(c, j, JS_QUEUED, "submitted");
  log_debug("job submitted", "job=%s name=%s priority=%d peer=%s", j->id,
            spec->name && *spec->name ? spec->name : "-", spec->priority, rpc_call_peer(call));
  r->job = j;
  cjob_ref(j);
  r->refs++;
  coord_after(c, ACT_COMMIT, submit_reply, r);
}

/* ---- Get ---- */

static void get_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = req_new(c, call);
  Drover__V1__GetJobRequest *g = (Drover__V1__GetJobRequest *)m->msg;
  pb_Job buf, *heap;
  const pb_Job *v = g && g->id && *g->id ? find_view(c, g->id, &buf, &heap) : NULL;
  if (!v) {
    finish_err(r, RPC_NOT_FOUND, "no job '%s'", g && g->id ? g->id : "");
    return;
  }
  finish_msg(r, &v->base);
  free_view(heap);
}

/* ---- List ---- */

struct list_ctx {
  struct coord *c;
  pb_Job **jobs;
  size_t n;
};

static void list_row(void *ud, const struct store_job *row)
{
  struct list_ctx *lc = ud;
  /* Rows are what is committed; memory may be ahead by one group commit. */
  pb_Job *v = cjob_view_row(lc->c, row);
  if (v)
    lc->jobs[lc->n++] = v;
}

static void list_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = req_new(c, call);
  Drover__V1__ListJobsRequest *lr = (Drover__V1__ListJobsRequest *)m->msg;
  uint32_t limit = lr->limit ? lr->limit : LIST_DEFAULT;
  if (limit > LIST_MAX) {
    finish_err(r, RPC_INVALID_ARGUMENT, "limit %u is over the maximum of %u", limit, LIST_MAX);
    return;
  }
  int *states = xcalloc(lr->n_states + 1, sizeof(int));
  for (size_t i = 0; i < lr->n_states; i++)
    states[i] = (int)lr->states[i];
  struct store_kv *labels = xcalloc(lr->n_labels + 1, sizeof(*labels));
  for (size_t i = 0; i < lr->n_labels; i++) {
    labels[i].key = lr->labels[i]->key;
    labels[i].value = lr->labels[i]->value;
  }
  struct store_job_filter f = {states, lr->n_states,
                               labels, lr->n_labels,
                               limit,  lr->page_token && *lr->page_token ? lr->page_token : NULL};
  struct list_ctx lc = {c, xcalloc(limit + 1, sizeof(pb_Job *)), 0};
  char *next = NULL;
  int rc = store_job_list(c->store, &f, list_row, &lc, &next);
  if (rc < 0) {
    finish_err(r, RPC_INTERNAL, "cannot list jobs: %s", store_strerror(rc));
  } else {
    Drover__V1__ListJobsResponse resp = DROVER__V1__LIST_JOBS_RESPONSE__INIT;
    resp.jobs = lc.jobs;
    resp.n_jobs = lc.n;
    resp.next_page_token = next;
    finish_msg(r, &resp.base);
  }
  for (size_t i = 0; i < lc.n; i++)
    free_view(lc.jobs[i]);
  free(lc.jobs);
  free(next);
  free(states);
  free(labels);
}

/* ---- Cancel ---- */

static void cancel_reply(struct coord *c, void *arg)
{
  struct req *r = arg;
  Drover__V1__CancelJobResponse resp = DROVER__V1__CANCEL_JOB_RESPONSE__INIT;
  pb_Job view;
  cjob_view(r->job, &view);
  resp.job = &view;
  finish_msg(r, &resp.base);
  (void)c;
  req_unref(r);
}

static void cancel_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = req_new(c, call);
  Drover__V1__CancelJobRequest *cr = (Drover__V1__CancelJobRequest *)m->msg;
  const char *id = cr && cr->id ? cr->id : "";
  struct cjob *j = cjob_get(c, id);
  if (!j) {
    pb_Job buf, *heap;
    const pb_Job *v = *id ? find_view(c, id, &buf, &heap) : NULL;
    if (!v) {
      finish_err(r, RPC_NOT_FOUND, "no job '%s'", id);
      return;
    }
    /* Only ended jobs leave memory: nothing to cancel. */
    Drover__V1__CancelJobResponse resp = DROVER__V1__CANCEL_JOB_RESPONSE__INIT;
    resp.job = (pb_Job *)v;
    finish_msg(r, &resp.base);
    free_view(heap);
    return;
  }
  char reason[200];
  snprintf(reason, sizeof(reason), "cancelled: %s",
           cr->reason && *cr->reason ? cr->reason : "requested by a user");
  if (j->state == JS_QUEUED) {
    pb_JobResult *res = xmalloc(sizeof(*res));
    drover__v1__job_result__init(res);
    res->state = DROVER__V1__JOB_STATE__JOB_STATE_CANCELLED;
    res->exit_code = -1;
    res->finished_at_us = coord_now_us();
    res->error = xstrdup("cancelled before it started");
    free(j->cancel_reason);
    j->cancel_reason = xstrdup(reason);
    cjob_finish(c, j, res);
  } else if (j->state == JS_ASSIGNED || j->state == JS_RUNNING) {
    if (!j->cancel_requested || cr->grace_ms < j->cancel_grace_ms) {
      j->cancel_requested = 1;
      j->cancel_grace_ms = cr->grace_ms;
      free(j->cancel_reason);
      j->cancel_reason = xstrdup(reason);
      cjob_save(c, j);
      session_send_cancel(c, j, reason);
      log_info("job cancel requested", "job=%s node=%s grace_ms=%llu", j->id,
               j->node ? j->node->id : "-", (unsigned long long)cr->grace_ms);
    }
  }
  r->job = j;
  cjob_ref(j);
  r->refs++;
  coord_after(c, ACT_COMMIT, cancel_reply, r);
}

/* ---- Wait ---- */

static void wait_wake(struct coord *c, struct waiter *w, struct cjob *j)
{
  struct req *r = (struct req *)w;
  (void)c;
  if (!job_state_terminal(j->state) || !j->end_committed)
    return;
  waiter_del(j, w);
  r->w.wake = NULL;
  pb_Job view;
  cjob_view(j, &view);
  finish_msg(r, &view.base);
  req_unref(r);
}

static void wait_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = req_new(c, call);
  Drover__V1__WaitRequest *wr = (Drover__V1__WaitRequest *)m->msg;
  const char *id = wr && wr->id ? wr->id : "";
  struct cjob *j = cjob_get(c, id);
  if (!j) {
    pb_Job buf, *heap;
    const pb_Job *v = *id ? find_view(c, id, &buf, &heap) : NULL;
    if (!v)
      finish_err(r, RPC_NOT_FOUND, "no job '%s'", id);
    else
      finish_msg(r, &v->base); /* not in memory: it ended */
    free_view(v ? heap : NULL);
    return;
  }
  if (job_state_terminal(j->state) && j->end_committed) {
    pb_Job view;
    cjob_view(j, &view);
    finish_msg(r, &view.base);
    return;
  }
  r->job = j;
  cjob_ref(j);
  r->w.wake = wait_wake;
  r->refs++;
  waiter_add(j, &r->w);
}

/* ---- Logs ---- */

static void logs_pump(struct req *r);

static void logs_end(struct req *r, const pb_Job *job)
{
  if (r->ended)
    return;
  r->ended = 1;
  if (r->call && job) {
    pb_LogsResponse last = DROVER__V1__LOGS_RESPONSE__INIT;
    last.job_id = (char *)job->spec->id;
    last.attempt = job->attempt;
    last.job = (pb_Job *)job;
    rpc_call_send(r->call, &last.base);
  }
  if (r->call)
    rpc_call_finish(r->call, RPC_OK, NULL);
}

/* Sends one stored batch (its bytes are a LogsResponse). 0, 1 (the stream
 * pushes back: wait for on_writable) or -1 (the call is over). */
static int send_batch(struct req *r, uint64_t seq, const uint8_t *p, size_t len)
{
  int s = rpc_call_send_bytes(r->call, p, len);
  if (s < 0)
    return -1;
  r->after_seq = seq;
  if (s == 1)
    r->blocked = 1;
  return s;
}

static int row_cb(void *ud, uint64_t seq, const uint8_t *data, size_t len)
{
  struct req *r = ud;
  return send_batch(r, seq, data, len) != 0; /* stop when blocked or over */
}

/* The next batches of the reader's attempt from the job's file. Returns 1
 * when some were sent (or the stream pushed back), 0 when the file has no
 * more of this attempt, and sets *later when it holds a later attempt. */
static int file_batches(struct req *r, int *later)
{
  struct coord *c = r->c;
  int sent = 0;
  *later = 0;
  if (!r->reader && logreader_open(c->logs, r->id, &r->reader) < 0)
    return 0; /* no file (yet): a small log lives in the store only */
  for (;;) {
    uint64_t at = logreader_offset(r->reader);
    uint32_t attempt;
    uint64_t seq;
    const uint8_t *p;
    size_t len;
    int rc = logreader_next(r->reader, &attempt, &seq, &p, &len);
    if (rc < 0) {
      log_error("damaged job log; its reader stops there", "job=%s error=%s", r->id, strerror(-rc));
      return sent;
    }
    if (rc == 0)
      return sent;
    if (attempt < r->attempt || (attempt == r->attempt && seq <= r->after_seq))
      continue;
    if (attempt > r->attempt) {
      logreader_seek(r->reader, at); /* read again once this attempt is done */
      *later = 1;
      return sent;
    }
    if (seq != r->after_seq + 1) {
      /* The batches before it are still on their way into the store (they
       * are readable once committed, and the commit wakes this reader):
       * batches go out in order, with no gap. */
      logreader_seek(r->reader, at);
      return sent;
    }
    int s = send_batch(r, seq, p, len);
    if (s != 0)
      return 1;
    sent = 1;
  }
}

/* Sends what is stored, from where this reader is, in order: for each
 * attempt, its first batches from the store, then the rest from the job's
 * file; until the stream pushes back (on_writable calls again) or nothing
 * more is stored (a follower is woken when more is). */
static void logs_pump(struct req *r)
{
  struct coord *c = r->c;
  struct cjob *j = r->job;
  while (r->call && !r->ended && !r->blocked) {
    int n = store_log_read(c->store, r->id, r->attempt, r->after_seq, 64, row_cb, r);
    if (n < 0)
      log_error("cannot read a job log from the store", "job=%s", r->id);
    if (!r->call || r->blocked)
      return;
    if (n > 0)
      continue;
    int later;
    if (file_batches(r, &later))
      continue;
    if (!r->follow)
      break;
    /* This attempt has nothing more stored now. It is over when the file
     * holds a later one, or the job moved on. */
    if (later || (j && j->attempt > r->attempt)) {
      r->attempt++;
      r->after_seq = 0;
      continue;
    }
    if (j && j->state == JS_QUEUED && j->attempt == r->attempt && j->attempt) {
      /* Requeued: the next attempt's output follows; say so now, so that
       * the reader can tell why it waits (its reason is in the events). */
      pb_LogsResponse next = DROVER__V1__LOGS_RESPONSE__INIT;
      next.job_id = j->id;
      next.attempt = j->attempt + 1;
      r->attempt = next.attempt;
      r->after_seq = 0;
      if (rpc_call_send(r->call, &next.base) == 1)
        r->blocked = 1;
      return;
    }
    break;
  }
  if (!r->call || r->ended || r->blocked)
    return;
  /* Nothing more stored: over unless the job may still write. */
  if (!r->follow) {
    logs_end(r, NULL);
  } else if (j && job_state_terminal(j->state) && j->end_committed) {
    pb_Job view;
    cjob_view(j, &view);
    logs_end(r, &view);
  } else if (!j) {
    /* Ended and gone from memory before we started: from the store. */
    pb_Job buf, *heap;
    const pb_Job *v = find_view(c, r->id, &buf, &heap);
    logs_end(r, v);
    free_view(heap);
  }
}

static void logs_wake(struct coord *c, struct waiter *w, struct cjob *j)
{
  (void)c;
  (void)j;
  logs_pump((struct req *)w);
}

static void logs_on_writable(rpc_call *call, void *ud)
{
  struct req *r = rpc_call_data(call);
  (void)ud;
  r->blocked = 0;
  logs_pump(r);
}

static void logs_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = req_new(c, call);
  Drover__V1__LogsRequest *lr = (Drover__V1__LogsRequest *)m->msg;
  const char *id = lr && lr->id ? lr->id : "";
  snprintf(r->id, sizeof(r->id), "%s", id);
  r->follow = lr->follow;
  r->attempt = lr->attempt;
  r->after_seq = lr->attempt ? lr->after_seq : 0;
  struct cjob *j = cjob_get(c, id);
  if (j) {
    if (!r->attempt)
      r->attempt = j->attempt ? j->attempt : 1;
    r->job = j;
    cjob_ref(j);
    if (r->follow) {
      r->w.wake = logs_wake;
      r->w.logs = logs_wake;
      r->refs++;
      waiter_add(j, &r->w);
    }
  } else {
    pb_Job buf, *heap;
    const pb_Job *v = *id ? find_view(c, id, &buf, &heap) : NULL;
    if (!v) {
      finish_err(r, RPC_NOT_FOUND, "no job '%s'", id);
      return;
    }
    if (!r->attempt)
      r->attempt = v->attempt ? v->attempt : 1;
    free_view(heap);
  }
  rpc_call_send_headers(call);
  logs_pump(r);
}

/* ---- Events ---- */

struct events_ctx {
  pb_JobEvent **v;
  size_t n, cap;
};

static void event_row(void *ud, const struct store_event *e)
{
  struct events_ctx *ec = ud;
  if (ec->n == ec->cap) {
    ec->cap = ec->cap ? ec->cap * 2 : 16;
    ec->v = xrealloc(ec->v, ec->cap * sizeof(*ec->v));
  }
  pb_JobEvent *ev = xmalloc(sizeof(*ev));
  drover__v1__job_event__init(ev);
  ev->id = e->id;
  ev->job_id = xstrdup(e->job_id);
  ev->ts_us = e->ts_us;
  ev->from = (Drover__V1__JobState)e->from;
  ev->to = (Drover__V1__JobState)e->to;
  ev->node_id = e->node_id ? xstrdup(e->node_id) : NULL;
  ev->attempt = e->attempt;
  ev->reason = e->reason ? xstrdup(e->reason) : NULL;
  ec->v[ec->n++] = ev;
}

static void events_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = req_new(c, call);
  Drover__V1__EventsRequest *er = (Drover__V1__EventsRequest *)m->msg;
  const char *id = er && er->id ? er->id : "";
  struct events_ctx ec = {0};
  int rc = store_event_list(c->store, id, event_row, &ec);
  if (rc < 0) {
    finish_err(r, RPC_INTERNAL, "cannot read events: %s", store_strerror(rc));
  } else if (ec.n == 0 && !cjob_get(c, id)) {
    finish_err(r, RPC_NOT_FOUND, "no job '%s'", id);
  } else {
    Drover__V1__EventsResponse resp = DROVER__V1__EVENTS_RESPONSE__INIT;
    resp.events = ec.v;
    resp.n_events = ec.n;
    finish_msg(r, &resp.base);
  }
  for (size_t i = 0; i < ec.n; i++)
    protobuf_c_message_free_unpacked(&ec.v[i]->base, NULL);
  free(ec.v);
}

/* ---- WriteStdin ---- */

/* The job's input: buf holds the bytes from offset `acked` on (sent and
 * not acknowledged, then not sent yet); after a reconnect, sending starts
 * again at `acked` (the agent skips what it already has). */
struct stdin_feed {
  struct req *r; /* the client's WriteStdin call, NULL once it is over */
  uint8_t *buf;
  size_t len;
  uint64_t sent, acked, total; /* offsets in the job's input */
  int eof_in, eof_sent, paused;
};

static void stdin_flush(struct coord *c, struct cjob *j)
{
  struct stdin_feed *f = j->stdin_feed;
  (void)c;
  if (!f || !j->dispatched || !j->node || !j->node->sess)
    return;
  while (f->sent < f->total || (f->eof_in && !f->eof_sent)) {
    size_t off = (size_t)(f->sent - f->acked);
    size_t n = f->len - off < STDIN_CHUNK ? f->len - off : STDIN_CHUNK;
    Drover__V1__StdinData d = DROVER__V1__STDIN_DATA__INIT;
    d.job_id = j->id;
    d.attempt = j->attempt;
    d.offset = f->sent;
    d.data.data = f->buf + off;
    d.data.len = n;
    d.eof = f->eof_in && f->sent + n == f->total;
    pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
    m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_STDIN;
    m.stdin = &d;
    if (session_send(j->node->sess, &m) < 0)
      break;
    f->sent += n;
    if (d.eof)
      f->eof_sent = 1;
  }
}

static void stdin_check(struct cjob *j)
{
  struct stdin_feed *f = j->stdin_feed;
  if (!f || !f->r || !f->r->call)
    return;
  if (f->len >= STDIN_WINDOW && !f->paused) {
    f->paused = 1;
    rpc_call_pause_reading(f->r->call);
  } else if (f->len < STDIN_WINDOW / 2 && f->paused) {
    f->paused = 0;
    rpc_call_resume_reading(f->r->call);
  }
  if (f->eof_sent && f->acked >= f->total) {
    Drover__V1__StdinResponse resp = DROVER__V1__STDIN_RESPONSE__INIT;
    resp.bytes = f->acked;
    finish_msg(f->r, &resp.base);
  }
}

void jobsvc_stdin_acked(struct coord *c, const char *job_id, uint32_t attempt, uint64_t bytes)
{
  struct cjob *j = cjob_get(c, job_id);
  struct stdin_feed *f = j ? j->stdin_feed : NULL;
  if (!f || j->attempt != attempt || bytes <= f->acked || bytes > f->sent)
    return;
  size_t drop = (size_t)(bytes - f->acked);
  memmove(f->buf, f->buf + drop, f->len - drop);
  f->len -= drop;
  f->acked = bytes;
  stdin_flush(c, j);
  stdin_check(j);
}

static void stdin_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct req *r = rpc_call_data(call);
  Drover__V1__StdinChunk *ch = (Drover__V1__StdinChunk *)m->msg;
  if (!r) {
    r = req_new(c, call);
    struct cjob *j = ch && ch->job_id ? cjob_get(c, ch->job_id) : NULL;
    if (!j || job_state_terminal(j->state)) {
      finish_err(r, j ? RPC_FAILED_PRECONDITION : RPC_NOT_FOUND, "no running job '%s'",
                 ch && ch->job_id ? ch->job_id : "");
      return;
    }
    if (!j->spec->stdin) {
      finish_err(r, RPC_FAILED_PRECONDITION,
                 "job '%s' was not submitted to read stdin (submit it with -i)", j->id);
      return;
    }
    if (j->stdin_feed) {
      finish_err(r, RPC_ALREADY_EXISTS, "job '%s' already has a stdin stream", j->id);
      return;
    }
    j->stdin_feed = xcalloc(1, sizeof(*j->stdin_feed));
    j->stdin_feed->r = r;
    r->job = j;
    cjob_ref(j);
  }
  struct cjob *j = r->job;
  if (!j || !j->stdin_feed)
    return;
  struct stdin_feed *f = j->stdin_feed;
  if (ch->data.len) {
    f->buf = xrealloc(f->buf, f->len + ch->data.len);
    memcpy(f->buf + f->len, ch->data.data, ch->data.len);
    f->len += ch->data.len;
    f->total += ch->data.len;
  }
  if (ch->eof)
    f->eof_in = 1;
  stdin_flush(c, j);
  stdin_check(j);
}

static void stdin_on_half_close(rpc_call *call, void *ud)
{
  struct req *r = rpc_call_data(call);
  (void)ud;
  if (!r || !r->job || !r->job->stdin_feed)
    return;
  r->job->stdin_feed->eof_in = 1;
  stdin_flush(r->c, r->job);
  stdin_check(r->job);
}

static void stdin_on_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct req *r = rpc_call_data(call);
  if (r && r->job && r->job->stdin_feed) {
    struct stdin_feed *f = r->job->stdin_feed;
    f->r = NULL;
    if (!f->eof_in) { /* the client went away: the job sees the end of its input */
      f->eof_in = 1;
      stdin_flush(r->c, r->job);
    }
  }
  req_on_done(call, st, ud);
}

void jobsvc_stdin_dispatched(struct coord *c, struct cjob *j)
{
  if (j->stdin_feed) {
    /* A new stream to the node (or the first): from the last ack. */
    j->stdin_feed->sent = j->stdin_feed->acked;
    j->stdin_feed->eof_sent = 0;
  }
  stdin_flush(c, j);
  if (j->stdin_feed)
    stdin_check(j);
}

void jobsvc_job_ended(struct coord *c, struct cjob *j)
{
  struct stdin_feed *f = j->stdin_feed;
  (void)c;
  if (!f)
    return;
  if (f->r && f->r->call) {
    if (f->eof_sent && f->acked >= f->sent) {
      Drover__V1__StdinResponse resp = DROVER__V1__STDIN_RESPONSE__INIT;
      resp.bytes = f->acked;
      finish_msg(f->r, &resp.base);
    } else {
      finish_err(f->r, RPC_FAILED_PRECONDITION,
                 "job '%s' ended after reading %llu of the %llu bytes sent to it", j->id,
                 (unsigned long long)f->acked, (unsigned long long)f->total);
    }
  }
}

void jobsvc_stdin_free(struct stdin_feed *f)
{
  if (!f)
    return;
  free(f->buf);
  free(f);
}

const struct rpc_handlers jobsvc_submit = {.on_message = submit_on_message, .on_done = req_on_done};
const struct rpc_handlers jobsvc_get = {.on_message = get_on_message, .on_done = req_on_done};
const struct rpc_handlers jobsvc_list = {.on_message = list_on_message, .on_done = req_on_done};
const struct rpc_handlers jobsvc_cancel = {.on_message = cancel_on_message, .on_done = req_on_done};
const struct rpc_handlers jobsvc_wait = {.on_message = wait_on_message, .on_done = req_on_done};
const struct rpc_handlers jobsvc_events = {.on_message = events_on_message, .on_done = req_on_done};
const struct rpc_handlers jobsvc_logs = {
    .on_message = logs_on_message, .on_writable = logs_on_writable, .on_done = req_on_done};
const struct rpc_handlers jobsvc_stdin = {
    .on_message = stdin_on_message, .on_half_close = stdin_on_half_close, .on_done = stdin_on_done};
