/* logview.c - a job's output from JobService.Logs, raw or with timestamps
 * (see logview.h). */
#include "cli/logview.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "cli/fmt.h"
#include "job/job_pb.h"
#include "job/result.h"

struct logview {
  struct client *cl;
  struct outwriter *w;
  struct logview_opts o;
  char id[129];
  rpc_call *call;   /* the Logs call, NULL once over */
  rpc_call *events; /* an Events call for the reason of a new attempt */
  /* Messages not printed yet, in order: the first is of a new attempt
   * whose reason is being fetched (events), the rest arrived meanwhile. */
  pb_LogsResponse **queue;
  size_t qhead, qlen, qcap;
  int told_attempt;      /* the Events reply announced the first's attempt */
  pb_LogsResponse *last; /* the message that carried the ended job */
  int paused;            /* reading is paused (writer full or messages queued) */
  int full;              /* the writer is above high water */
  int ended;             /* the call ended; its status below */
  int end_code;
  char *end_msg;
  int told;    /* on_end was called (or must not be: freed) */
  int dead;    /* logview_free was called: the last on_done frees */
  int freeing; /* inside logview_free, or a callback that may end in it: free later */
  uint64_t out_bytes;
  char out_last;
};

/* ---- output ---- */

static void put(struct logview *v, int fd, const void *data, size_t len)
{
  if (!len)
    return;
  if (fd == 1) {
    v->out_bytes += len;
    v->out_last = ((const char *)data)[len - 1];
  }
  if (outwriter_write(v->w, fd, data, len))
    v->full = 1;
}

/* A line of drover's own: raw view on fd 2 ("drover: job ID: text"),
 * timestamps view as a sys line. */
static void note(struct logview *v, int64_t ts_us, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(struct logview *v, int64_t ts_us, const char *fmt, ...)
{
  char text[600], line[800], ts[40];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  int n;
  if (v->o.timestamps) {
    fmt_time_us(ts, sizeof(ts), ts_us ? ts_us : now_us());
    n = snprintf(line, sizeof(line), "%s sys %s\n", ts, text);
    put(v, 1, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
  } else {
    n = snprintf(line, sizeof(line), "drover: job %s: %s\n", v->id, text);
    put(v, 2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
  }
}

static void print_entries(struct logview *v, const pb_LogsResponse *m)
{
  static const char names[4][5] = {" sys ", " out ", " err ", " sys "};
  for (size_t i = 0; i < m->n_entries; i++) {
    const pb_LogEntry *e = m->entries[i];
    int s = (int)e->stream;
    if (v->o.timestamps) {
      char ts[40];
      fmt_time_us(ts, sizeof(ts), e->ts_us);
      put(v, 1, ts, strlen(ts));
      put(v, 1, names[s >= 0 && s <= 3 ? s : 3], 5);
      put(v, 1, e->data.data, e->data.len);
      put(v, 1, "\n", 1);
      continue;
    }
    int fd = s == LS_STDOUT ? 1 : 2;
    if (s != LS_STDOUT && s != LS_STDERR && !v->o.show_system)
      continue;
    put(v, fd, e->data.data, e->data.len);
    if (!e->partial && !e->no_eol)
      put(v, fd, "\n", 1);
  }
}

void logview_print_end(struct logview *v, const pb_Job *job)
{
  if (!v->o.timestamps || !job || !job->result)
    return;
  struct job_result r;
  job_result_from_pb(&r, job->result);
  int64_t ts = r.finished_us ? r.finished_us : job->updated_at_us;
  char dur[32], what[200];
  fmt_duration(dur, sizeof(dur), r.duration_us);
  if (r.error)
    note(v, ts, "error: %s", r.error);
  switch (r.status) {
  case JOB_SUCCEEDED:
    snprintf(what, sizeof(what), "succeeded, exit code 0, %s", dur);
    break;
  case JOB_FAILED:
    if (r.exit_code >= 0)
      snprintf(what, sizeof(what), "failed, exit code %d, %s", r.exit_code, dur);
    else if (r.signal > 0)
      snprintf(what, sizeof(what), "failed, killed by signal %d (SIG%s), %s", r.signal,
               sigabbrev_np(r.signal) ? sigabbrev_np(r.signal) : "?", dur);
    else
      snprintf(what, sizeof(what), "failed, could not start");
    break;
  case JOB_TIMED_OUT:
    snprintf(what, sizeof(what), "timed_out after %s", dur);
    break;
  case JOB_CANCELLED:
    snprintf(what, sizeof(what), "cancelled%s%s%s", job->reason && *job->reason ? " (" : "",
             job->reason && *job->reason ? job->reason : "",
             job->reason && *job->reason ? ")" : "");
    break;
  case JOB_LOST:
    snprintf(what, sizeof(what), "lost: its node was lost with no attempt left");
    break;
  }
  note(v, ts, "%s", what);
  job_result_release(&r);
}

/* ---- the stream ---- */

static void update_pause(struct logview *v)
{
  int want = v->full || v->qlen > 0;
  if (!v->call || want == v->paused)
    return;
  v->paused = want;
  if (want)
    rpc_call_pause_reading(v->call);
  else
    rpc_call_resume_reading(v->call);
}

static void maybe_end(struct logview *v)
{
  if (!v->ended || v->qlen || v->events || v->told)
    return;
  v->told = 1;
  struct rpc_status st = {v->end_code, v->end_msg};
  if (v->o.on_end)
    v->o.on_end(v, &st, v->last ? v->last->job : NULL, v->o.ud);
}

/* A message whose attempt has been announced (or needs no announcing). */
static void handle(struct logview *v, pb_LogsResponse *m)
{
  print_entries(v, m);
  if (m->job) {
    if (v->o.follow)
      logview_print_end(v, m->job);
    if (v->last)
      protobuf_c_message_free_unpacked(&v->last->base, NULL);
    v->last = m;
  } else {
    protobuf_c_message_free_unpacked(&m->base, NULL);
  }
}

static uint32_t attempt_of(const pb_LogsResponse *m)
{
  if (m->job && m->job->attempt)
    return m->job->attempt;
  return m->attempt;
}

/* The reason the job was queued again before `attempt`: the requeue event of
 * the attempt before, without the "; attempt N of M will follow" the
 * coordinator appends (the notice says it already). */
static void announce(struct logview *v, uint32_t attempt, const Drover__V1__EventsResponse *ev)
{
  const char *reason = NULL;
  int64_t ts = 0;
  for (size_t i = 0; ev && i < ev->n_events; i++) {
    const pb_JobEvent *e = ev->events[i];
    if ((int)e->to == JS_QUEUED && (int)e->from != JS_UNSPECIFIED && e->attempt + 1 == attempt) {
      reason = e->reason;
      ts = e->ts_us;
    }
  }
  char why[400] = "requeued";
  if (reason && *reason) {
    snprintf(why, sizeof(why), "%s", reason);
    char *tail = strstr(why, "; attempt ");
    if (tail && strstr(tail, " will follow"))
      *tail = '\0';
  }
  if (v->o.max_attempts)
    note(v, ts, "attempt %u of %u (%s)", attempt, v->o.max_attempts, why);
  else
    note(v, ts, "attempt %u (%s)", attempt, why);
}

static void pump(struct logview *v);

static void events_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct logview *v = ud;
  (void)call;
  if (v->dead || !v->qlen || v->told_attempt)
    return;
  uint32_t attempt = attempt_of(v->queue[v->qhead]);
  announce(v, attempt, (const Drover__V1__EventsResponse *)m->msg);
  v->o.announced = attempt;
  v->told_attempt = 1;
}

/* After logview_free, the calls it cancelled end here: the last frees. */
static int reap(struct logview *v)
{
  if (!v->dead)
    return 0;
  if (!v->call && !v->events && !v->freeing)
    free(v);
  return 1;
}

static void events_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct logview *v = ud;
  (void)call;
  v->events = NULL;
  if (reap(v))
    return;
  if (v->qlen && !v->told_attempt) { /* no reply: announce without the reason */
    log_debug("cannot read the job's events", "job=%s code=%s", v->id, rpc_code_name(st->code));
    uint32_t attempt = attempt_of(v->queue[v->qhead]);
    announce(v, attempt, NULL);
    v->o.announced = attempt;
  }
  /* Resuming the stream may deliver its end at once, and the end may free
   * the view (on_end): it is freed after we are done with it. */
  v->freeing++;
  pump(v);
  update_pause(v);
  maybe_end(v);
  v->freeing--;
  reap(v);
}

/* Prints the queued messages in order; stops at one of an attempt not yet
 * announced, and fetches the reason for it (Events) first. */
static void pump(struct logview *v)
{
  static const struct rpc_handlers h = {.on_message = events_message, .on_done = events_done};
  while (v->qlen && !v->events) {
    pb_LogsResponse *m = v->queue[v->qhead];
    uint32_t attempt = attempt_of(m);
    if (!v->o.announced && attempt)
      v->o.announced = attempt; /* the first one seen: nothing to tell */
    if (attempt > v->o.announced) {
      Drover__V1__EventsRequest req = DROVER__V1__EVENTS_REQUEST__INIT;
      req.id = v->id;
      v->told_attempt = 0;
      if (client_start(v->cl, CLIENT_JOBS "Events", &drover__v1__events_response__descriptor,
                       &req.base, &h, v, &v->events) == 0)
        return; /* events_done pumps again */
      announce(v, attempt, NULL);
      v->o.announced = attempt;
    }
    v->qhead++;
    v->qlen--;
    handle(v, m);
  }
  if (!v->qlen)
    v->qhead = 0;
}

static void logs_message(rpc_call *call, struct rpc_msg *rm, void *ud)
{
  struct logview *v = ud;
  (void)call;
  if (v->dead)
    return;
  pb_LogsResponse *m = (pb_LogsResponse *)rpc_msg_take(rm);
  if (!m)
    return;
  if (v->qhead + v->qlen == v->qcap) {
    if (v->qhead) { /* room at the front: move down */
      memmove(v->queue, v->queue + v->qhead, v->qlen * sizeof(*v->queue));
      v->qhead = 0;
    } else {
      v->qcap = v->qcap ? v->qcap * 2 : 8;
      v->queue = xrealloc(v->queue, v->qcap * sizeof(*v->queue));
    }
  }
  v->queue[v->qhead + v->qlen++] = m;
  v->freeing++; /* see events_done */
  pump(v);
  update_pause(v);
  v->freeing--;
  reap(v);
}

static void logs_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct logview *v = ud;
  (void)call;
  v->call = NULL;
  if (reap(v))
    return;
  v->ended = 1;
  v->end_code = st->code;
  v->end_msg = st->message ? xstrdup(st->message) : NULL;
  maybe_end(v);
}

int logview_start(struct client *cl, struct outwriter *w, const struct logview_opts *o,
                  struct logview **out)
{
  static const struct rpc_handlers h = {.on_message = logs_message, .on_done = logs_done};
  struct logview *v = xcalloc(1, sizeof(*v));
  v->cl = cl;
  v->w = w;
  v->o = *o;
  snprintf(v->id, sizeof(v->id), "%s", o->id);
  v->o.id = v->id;
  Drover__V1__LogsRequest req = DROVER__V1__LOGS_REQUEST__INIT;
  req.id = v->id;
  req.follow = o->follow;
  req.attempt = o->attempt;
  if (client_start(cl, CLIENT_JOBS "Logs", &drover__v1__logs_response__descriptor, &req.base, &h, v,
                   &v->call) < 0) {
    free(v);
    return -1;
  }
  *out = v;
  return 0;
}

void logview_writer_changed(struct logview *v)
{
  if (v->full && !outwriter_full(v->w)) {
    v->full = 0;
    v->freeing++; /* see events_done */
    update_pause(v);
    v->freeing--;
    reap(v);
  }
}

uint64_t logview_out_bytes(const struct logview *v)
{
  return v->out_bytes;
}

char logview_out_last(const struct logview *v)
{
  return v->out_last;
}

void logview_free(struct logview *v)
{
  if (!v)
    return;
  v->dead = v->told = 1;
  v->freeing++;
  if (v->events)
    rpc_call_cancel(v->events);
  if (v->call)
    rpc_call_cancel(v->call);
  v->freeing--;
  for (size_t i = 0; i < v->qlen; i++)
    protobuf_c_message_free_unpacked(&v->queue[v->qhead + i]->base, NULL);
  free(v->queue);
  v->queue = NULL;
  v->qlen = 0;
  if (v->last)
    protobuf_c_message_free_unpacked(&v->last->base, NULL);
  v->last = NULL;
  free(v->end_msg);
  v->end_msg = NULL;
  /* A cancelled call's on_done may come later, from the loop: it frees (so
   * does a callback of ours we are inside of, when it returns). */
  if (!v->events && !v->call && !v->freeing)
    free(v);
}
