/* logview.c - a job's output from JobService.Logs, raw or with timestamps
 * (see logview.h).
 *
 * A big job's log comes as millions of entries, so the Logs replies are
 * taken as bytes and read by hand (job/logwire.h): an entry is a pointer
 * into the reply, and the bytes of a reply go to the writer as one
 * outwriter_writev, so each byte is copied once here and the writer's lock
 * is taken once per reply, not twice per line. */
#include "cli/logview.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "base/log.h"
#include "base/util.h"
#include "cli/fmt.h"
#include "job/job_pb.h"
#include "job/logwire.h"
#include "job/result.h"

/* Pieces gathered for one outwriter_writev, and the timestamp prefixes
 * ("<time> out ") they may point to. */
#define OUT_PIECES   1024
#define OUT_PREFIXES (OUT_PIECES / 3)
#define PREFIX_MAX   48

/* A reply kept until it can be printed (its attempt is being announced). */
struct held {
  uint8_t *p;
  size_t n;
};

struct logview {
  struct client *cl;
  struct outwriter *w;
  struct logview_opts o;
  char id[129];
  rpc_call *call;   /* the Logs call, NULL once over */
  rpc_call *events; /* an Events call for the reason of a new attempt */
  /* Replies not printed yet, in order: the first is of a new attempt
   * whose reason is being fetched (events), the rest arrived meanwhile. */
  struct held *queue;
  size_t qhead, qlen, qcap;
  uint32_t new_attempt;   /* the first's attempt */
  int told_attempt;       /* the Events reply announced it */
  struct logwire_msg msg; /* the reply being printed */
  pb_Job *last;           /* the ended job, from the reply that carried it */
  int bad;                /* a reply did not parse: the call was cancelled */
  int paused;             /* reading is paused (writer full or messages queued) */
  int full;               /* the writer is above high water */
  int ended;              /* the call ended; its status below */
  int end_code;
  char *end_msg;
  int told;    /* on_end was called (or must not be: freed) */
  int dead;    /* logview_free was called: the last on_done frees */
  int freeing; /* inside logview_free, or a callback that may end in it: free later */
  uint64_t out_bytes;
  char out_last;
  /* Output gathered for the writer: pieces for fd out_fd, pointing into
   * the reply being printed, into prefix[], or at constants. */
  struct iovec out[OUT_PIECES];
  size_t n_out, n_prefix;
  int out_fd;
  char prefix[OUT_PREFIXES][PREFIX_MAX];
};

/* ---- output ---- */

/* Gives the gathered pieces to the writer. */
static void flush_out(struct logview *v)
{
  if (!v->n_out)
    return;
  if (outwriter_writev(v->w, v->out_fd, v->out, v->n_out))
    v->full = 1;
  v->n_out = v->n_prefix = 0;
}

/* Gathers len bytes for fd: they must stay as they are until flush_out. */
static void out(struct logview *v, int fd, const void *data, size_t len)
{
  if (!len)
    return;
  if (v->n_out && (fd != v->out_fd || v->n_out == OUT_PIECES))
    flush_out(v);
  v->out_fd = fd;
  v->out[v->n_out++] = (struct iovec){(void *)data, len};
  if (fd == 1) {
    v->out_bytes += len;
    v->out_last = ((const char *)data)[len - 1];
  }
}

static void put(struct logview *v, int fd, const void *data, size_t len)
{
  out(v, fd, data, len);
  flush_out(v);
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

static void print_entries(struct logview *v, const struct logwire_msg *m)
{
  static const char names[4][5] = {" sys ", " out ", " err ", " sys "};
  for (size_t i = 0; i < m->n_entries; i++) {
    const struct logwire_entry *e = &m->entries[i];
    int s = e->stream;
    if (v->o.timestamps) {
      if (v->n_prefix == OUT_PREFIXES)
        flush_out(v);
      char *pre = v->prefix[v->n_prefix++];
      fmt_time_us(pre, 40, e->ts_us);
      size_t n = strlen(pre);
      memcpy(pre + n, names[s >= 0 && s <= 3 ? s : 3], 5);
      out(v, 1, pre, n + 5);
      out(v, 1, e->data, e->len);
      out(v, 1, "\n", 1);
      continue;
    }
    int fd = s == LS_STDOUT ? 1 : 2;
    if (s != LS_STDOUT && s != LS_STDERR && !v->o.show_system)
      continue;
    out(v, fd, e->data, e->len);
    if (!e->partial && !e->no_eol)
      out(v, fd, "\n", 1);
  }
  flush_out(v);
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
    v->o.on_end(v, &st, v->last, v->o.ud);
}

static void hold(struct logview *v, const uint8_t *p, size_t n)
{
  if (v->qhead + v->qlen == v->qcap) {
    if (v->qhead) { /* room at the front: move down */
      memmove(v->queue, v->queue + v->qhead, v->qlen * sizeof(*v->queue));
      v->qhead = 0;
    } else {
      v->qcap = v->qcap ? v->qcap * 2 : 8;
      v->queue = xrealloc(v->queue, v->qcap * sizeof(*v->queue));
    }
  }
  uint8_t *copy = xmalloc(n ? n : 1);
  memcpy(copy, p, n);
  v->queue[v->qhead + v->qlen++] = (struct held){copy, n};
}

static void drop_held(struct logview *v)
{
  for (size_t i = 0; i < v->qlen; i++)
    free(v->queue[v->qhead + i].p);
  v->qhead = v->qlen = 0;
}

/* A reply that does not parse ends the call, as one protobuf-c could not
 * unpack would have (logs_done reports it). */
static void malformed(struct logview *v)
{
  v->bad = 1;
  drop_held(v);
  if (v->call)
    rpc_call_cancel(v->call); /* may run logs_done now */
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
  announce(v, v->new_attempt, (const Drover__V1__EventsResponse *)m->msg);
  v->o.announced = v->new_attempt;
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
    announce(v, v->new_attempt, NULL);
    v->o.announced = v->new_attempt;
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

/* Prints one reply, unless it is of an attempt not yet announced: then it
 * fetches the reason for it (Events) and returns 1 (keep the reply, print
 * it once events_done has announced it). Returns 0 when printed, -1 when
 * the reply does not parse. */
static int print_reply(struct logview *v, const uint8_t *p, size_t n)
{
  static const struct rpc_handlers h = {.on_message = events_message, .on_done = events_done};
  struct logwire_msg *m = &v->msg;
  if (logwire_parse(m, p, n) < 0)
    return -1;
  uint32_t attempt = m->job && m->job->attempt ? m->job->attempt : m->attempt;
  if (!v->o.announced && attempt)
    v->o.announced = attempt; /* the first one seen: nothing to tell */
  if (attempt > v->o.announced) {
    Drover__V1__EventsRequest req = DROVER__V1__EVENTS_REQUEST__INIT;
    req.id = v->id;
    v->told_attempt = 0;
    v->new_attempt = attempt;
    if (client_start(v->cl, CLIENT_JOBS "Events", &drover__v1__events_response__descriptor,
                     &req.base, &h, v, &v->events) == 0)
      return 1; /* events_done pumps again */
    announce(v, attempt, NULL);
    v->o.announced = attempt;
  }
  print_entries(v, m);
  if (m->job) {
    if (v->o.follow)
      logview_print_end(v, m->job);
    if (v->last)
      protobuf_c_message_free_unpacked(&v->last->base, NULL);
    v->last = logwire_take_job(m);
  }
  return 0;
}

/* Prints the held replies in order, up to one whose attempt is being
 * announced. */
static void pump(struct logview *v)
{
  while (v->qlen && !v->events) {
    struct held *q = &v->queue[v->qhead];
    int rc = print_reply(v, q->p, q->n);
    if (rc == 1)
      return;
    free(q->p);
    v->qhead++;
    v->qlen--;
    if (rc < 0)
      malformed(v);
  }
  if (!v->qlen)
    v->qhead = 0;
}

static void logs_message(rpc_call *call, struct rpc_msg *rm, void *ud)
{
  struct logview *v = ud;
  (void)call;
  if (v->dead || v->bad)
    return;
  v->freeing++; /* see events_done */
  /* Behind held replies: wait in line. Else straight from the bytes. */
  int rc = v->qlen || v->events ? 1 : print_reply(v, rm->data, rm->len);
  if (rc == 1)
    hold(v, rm->data, rm->len);
  else if (rc < 0)
    malformed(v);
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
  if (v->bad) { /* our cancel: say why */
    v->end_code = RPC_INTERNAL;
    free(v->end_msg);
    v->end_msg = xstrdup("received message does not parse");
  }
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
  logwire_init(&v->msg);
  if (client_start(cl, CLIENT_JOBS "Logs", NULL, &req.base, &h, v, &v->call) < 0) {
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
  drop_held(v);
  free(v->queue);
  v->queue = NULL;
  logwire_release(&v->msg);
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
