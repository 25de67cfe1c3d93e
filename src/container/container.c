/* container.c - one job in a Docker container (see container.h).
 *
 * The steps run one after another on the loop, each an HTTP request to the
 * engine (dockerhttp.c): create [pull, create] -> attach -> start -> wait
 * (while the attach streams the output) -> inspect -> remove -> on_exit.
 * Whatever fails or is cancelled along the way jumps to remove when a
 * container exists, so none is left behind by drover itself; one left by a
 * crash of drover is removed by the next agent start (engine.c).
 *
 * curl does not allow a new request or an abort from inside its own
 * callbacks (header and body), and a cancel may come from anywhere, so
 * those go through `kick`, a zero timer that runs the pending actions on the
 * next loop iteration. */
#include "container/container.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "container/dockerhttp.h"
#include "container/dockerjson.h"
#include "container/dockerstream.h"
#include "exec/lines.h"

/* The limit of a request that is not a stream (create, start, kill,
 * inspect, remove): an engine that takes longer is stuck, and the job must
 * not hang with it. Generous: a loaded engine can take seconds. */
#define STEP_TIMEOUT_MS (5L * 60 * 1000)
/* After the container exited, how long its attach stream may take to end. */
#define ATTACH_GUARD_MS 2000
#define PULL_LINE_MAX   4096

struct ostream {
  struct container *c;
  int id; /* JOB_STDOUT, JOB_STDERR */
  struct lines lines;
  int64_t ts;
  char last; /* raw mode: the last byte, for the unterminated tail */
};

struct container {
  uv_loop_t *loop;
  struct dockerhttp *http;
  struct container_ops ops;
  void *ud;
  char job_id[129];
  char *image;
  char *create_json;
  uint64_t timeout_ms, grace_ms;
  char id[80]; /* the container's id once created */

  struct dockerhttp_req r_step, r_attach, r_wait, r_kill;
  struct dockerstream ds;
  struct ostream os[2];
  struct lines pull;
  char *pull_error;
  int raw;

  uv_timer_t timer; /* timeout, then the TERM -> KILL grace */
  uv_timer_t guard; /* the attach stream's end after the exit */
  uv_timer_t kick;  /* deferred actions (see the top) */
  int handles;

  struct job_result r;
  int64_t mono0;
  uint64_t kill_at;
  long exit_status;      /* from wait; -1: unknown */
  const char *want_sig;  /* kick: send this signal */
  uint64_t cancel_grace; /* a cancel before the start: the grace it asked for */
  char *header;          /* kick: the "$ [image] command" line, then the first step */
  unsigned pulled : 1, pulling : 1, want_stop_pull : 1, attach_done : 1, started : 1, waited : 1,
      killing : 1, cancelled : 1, timed_out : 1, failed : 1, removing : 1, finished : 1,
      want_start : 1, want_abort_attach : 1, paused : 1, freed_http : 1, cancel_grace_set : 1;
};

static void step_create(struct container *c);

/* One engine call on the steps' request: a gathered body (no on_body) unless
 * one is given, STEP_TIMEOUT_MS unless timeout_ms says otherwise. path is
 * freed. Returns dockerhttp_request's 0 or -ENOMEM. */
static int
request_step(struct container *c, const char *method, char *path, const char *json, long timeout_ms,
             void (*on_body)(struct dockerhttp_req *, const char *, size_t),
             void (*on_done)(struct dockerhttp_req *, const char *, long, const char *, size_t))
{
  c->r_step.on_headers = NULL;
  c->r_step.on_body = on_body;
  c->r_step.timeout_ms = timeout_ms;
  c->r_step.on_done = on_done;
  int rc = dockerhttp_request(c->http, &c->r_step, method, path, json);
  free(path);
  return rc;
}

static void step_remove(struct container *c);
static void on_kick(uv_timer_t *t);

static void kick(struct container *c)
{
  if (!c->finished)
    uv_timer_start(&c->kick, on_kick, 0, 0);
}

/* ---- output ---- */

static void sys_line(struct container *c, const char *text)
{
  if (c->ops.on_line)
    c->ops.on_line(c->ud, JOB_SYSTEM, now_us(), text, strlen(text), 0);
}

static void on_out_line(void *ud, const char *data, size_t len, unsigned flags)
{
  struct ostream *s = ud;
  if (!(flags & LINES_PARTIAL))
    s->c->r.lines[s->id]++;
  if (s->c->ops.on_line)
    s->c->ops.on_line(s->c->ud, (enum job_stream)s->id, s->ts, data, len, flags);
}

static void on_piece(void *ud, int stream, const char *data, size_t len)
{
  struct container *c = ud;
  struct ostream *s = &c->os[stream == DOCKERSTREAM_STDERR ? JOB_STDERR : JOB_STDOUT];
  c->r.bytes[s->id] += len;
  if (c->raw) {
    const char *p = data, *end = data + len;
    while ((p = memchr(p, '\n', (size_t)(end - p)))) {
      c->r.lines[s->id]++;
      p++;
    }
    s->last = data[len - 1];
    if (c->ops.on_data)
      c->ops.on_data(c->ud, (enum job_stream)s->id, data, len);
    return;
  }
  s->ts = now_us();
  lines_feed(&s->lines, data, len);
}

static void streams_end(struct container *c)
{
  for (int i = 0; i < 2; i++) {
    struct ostream *s = &c->os[i];
    if (c->raw) {
      if (c->r.bytes[i] > 0 && s->last != '\n')
        c->r.lines[i]++;
      s->last = '\n';
    } else {
      lines_flush(&s->lines);
    }
  }
}

/* ---- helpers ---- */

/* Sets the error of a job that cannot go on (the first one wins), then
 * removes the container if there is one. */
static void fail(struct container *c, char *msg)
{
  if (!c->r.error)
    c->r.error = msg;
  else
    free(msg);
  if (!c->started)
    c->failed = 1;
  step_remove(c);
}

/* ---- finish ---- */

static void on_closed(uv_handle_t *h)
{
  struct container *c = h->data;
  if (--c->handles > 0)
    return;
  if (!c->freed_http)
    return;
  free(c);
}

static void on_http_closed(void *ud)
{
  struct container *c = ud;
  c->freed_http = 1;
  if (c->handles == 0)
    free(c);
}

static void fill_status(struct container *c)
{
  struct job_result *r = &c->r;
  if (c->failed || (!c->started && !c->cancelled)) {
    r->status = JOB_FAILED;
    r->exit_code = -1;
    return;
  }
  if (!c->started) { /* cancelled before it ran */
    r->status = JOB_CANCELLED;
    r->exit_code = -1;
    return;
  }
  long st = c->exit_status;
  if (st < 0) {
    r->exit_code = -1;
    if (!r->error)
      r->error = xstrdup("the container's exit status is unknown");
  } else if ((c->killing || r->oom_killed) && st > 128 && st < 128 + 65) {
    /* Killed by us or by the OOM killer: report the signal, as for a process. */
    r->exit_code = -1;
    r->signal = (int)(st - 128);
  } else {
    r->exit_code = (int)st;
  }
  if (c->timed_out)
    r->status = JOB_TIMED_OUT;
  else if (c->cancelled)
    r->status = JOB_CANCELLED;
  else
    r->status = r->exit_code == 0 && st == 0 ? JOB_SUCCEEDED : JOB_FAILED;
}

static void finish(struct container *c)
{
  if (c->finished)
    return;
  c->finished = 1;
  uv_timer_stop(&c->timer);
  uv_timer_stop(&c->guard);
  uv_timer_stop(&c->kick);
  dockerhttp_abort(&c->r_attach);
  dockerhttp_abort(&c->r_wait);
  dockerhttp_abort(&c->r_kill);
  dockerhttp_abort(&c->r_step);
  streams_end(c);
  if (!c->r.finished_us)
    c->r.finished_us = now_us();
  if (c->started && !c->r.duration_us)
    c->r.duration_us = (uint64_t)(mono_us() - c->mono0);
  fill_status(c);
  if (c->ops.on_exit)
    c->ops.on_exit(c->ud, &c->r);
  for (int i = 0; i < 2; i++)
    lines_release(&c->os[i].lines);
  lines_release(&c->pull);
  job_result_release(&c->r);
  free(c->image);
  free(c->header);
  free(c->create_json);
  free(c->pull_error);
  if (c->http)
    dockerhttp_close(c->http, on_http_closed, c);
  uv_close((uv_handle_t *)&c->timer, on_closed);
  uv_close((uv_handle_t *)&c->guard, on_closed);
  uv_close((uv_handle_t *)&c->kick, on_closed);
}

/* ---- remove ---- */

static void on_removed(struct dockerhttp_req *rq, const char *err, long status, const char *body,
                       size_t len)
{
  struct container *c = rq->ud;
  if (err || (status != 204 && status != 404)) {
    char *m = err ? xstrdup(err) : dockerjson_message(body, status);
    log_warn("cannot remove a job's container", "job=%s container=%.12s error=\"%s\"", c->job_id,
             c->id, m);
    free(m);
  }
  finish(c);
}

static void step_remove(struct container *c)
{
  if (c->removing || c->finished)
    return;
  c->removing = 1;
  uv_timer_stop(&c->timer);
  dockerhttp_abort(&c->r_attach);
  dockerhttp_abort(&c->r_wait);
  dockerhttp_abort(&c->r_kill);
  dockerhttp_abort(&c->r_step);
  if (!c->r.finished_us && c->started) {
    c->r.finished_us = now_us();
    c->r.duration_us = (uint64_t)(mono_us() - c->mono0);
  }
  if (!c->id[0]) {
    finish(c);
    return;
  }
  if (request_step(c, "DELETE", xasprintf("/containers/%s?force=1&v=1", c->id), NULL,
                   STEP_TIMEOUT_MS, NULL, on_removed) < 0)
    finish(c);
}

/* ---- inspect ---- */

static void on_inspected(struct dockerhttp_req *rq, const char *err, long status, const char *body,
                         size_t len)
{
  struct container *c = rq->ud;
  if (!err && status == 200) {
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *st = json_object_get(o, "State");
    c->r.oom_killed = json_is_true(json_object_get(st, "OOMKilled"));
    if (c->exit_status < 0 && json_is_integer(json_object_get(st, "ExitCode")))
      c->exit_status = (long)json_integer_value(json_object_get(st, "ExitCode"));
    json_decref(o);
  }
  step_remove(c);
}

static void step_inspect(struct container *c)
{
  if (request_step(c, "GET", xasprintf("/containers/%s/json", c->id), NULL, STEP_TIMEOUT_MS, NULL,
                   on_inspected) < 0)
    step_remove(c);
}

static void maybe_end(struct container *c)
{
  if (!c->waited || !c->attach_done || c->removing)
    return;
  /* The OOM killer sends SIGKILL: only a 137 can have been one, and only
   * then is the container's state worth a request. */
  if (c->exit_status == 128 + 9)
    step_inspect(c);
  else
    step_remove(c);
}

/* ---- kill, timeout ---- */

static void on_killed(struct dockerhttp_req *rq, const char *err, long status, const char *body,
                      size_t len)
{
  struct container *c = rq->ud;
  /* 409: not running any more; the wait says how it ended. */
  if (err || (status != 204 && status != 409 && status != 404))
    log_warn("cannot signal a job's container", "job=%s container=%.12s status=%ld", c->job_id,
             c->id, status);
}

static void send_signal(struct container *c, const char *sig)
{
  c->want_sig = sig;
  kick(c);
}

static void on_timer(uv_timer_t *t);

/* As exec.c: SIGTERM now (first call), SIGKILL in grace_ms; a later call can
 * only bring the SIGKILL closer. */
static void start_kill(struct container *c, uint64_t grace_ms)
{
  if (c->waited || c->removing)
    return;
  if (grace_ms > (1ull << 40))
    grace_ms = 1ull << 40;
  uint64_t at = uv_now(c->loop) + grace_ms;
  if (!c->killing) {
    c->killing = 1;
    if (grace_ms > 0)
      send_signal(c, "SIGTERM");
  } else if (c->kill_at <= at) {
    return;
  }
  c->kill_at = at;
  if (grace_ms == 0) {
    uv_timer_stop(&c->timer);
    send_signal(c, "SIGKILL");
    return;
  }
  uv_timer_start(&c->timer, on_timer, grace_ms, 0);
}

static void on_timer(uv_timer_t *t)
{
  struct container *c = t->data;
  if (!c->killing) {
    c->timed_out = 1;
    start_kill(c, c->grace_ms);
  } else {
    send_signal(c, "SIGKILL");
  }
}

/* ---- wait ---- */

static void on_guard(uv_timer_t *t)
{
  struct container *c = t->data;
  log_debug("a container's output stream is still open after it exited; closing it", "job=%s",
            c->job_id);
  c->want_abort_attach = 1;
  kick(c);
}

static void on_waited(struct dockerhttp_req *rq, const char *err, long status, const char *body,
                      size_t len)
{
  struct container *c = rq->ud;
  c->waited = 1;
  c->r.finished_us = now_us();
  c->r.duration_us = (uint64_t)(mono_us() - c->mono0);
  uv_timer_stop(&c->timer);
  if (err || status != 200) {
    fail(c, err ? xstrdup(err) : dockerjson_message(body, status));
    return;
  }
  json_t *o = json_loadb(body, len, 0, NULL);
  json_t *code = json_object_get(o, "StatusCode");
  if (json_is_integer(code))
    c->exit_status = (long)json_integer_value(code);
  json_t *e = json_object_get(json_object_get(o, "Error"), "Message");
  if (json_is_string(e) && json_string_length(e) > 0 && !c->r.error)
    c->r.error = xstrdup(json_string_value(e));
  json_decref(o);
  /* Not while the output is paused: then the stream is open because the
   * owner reads nothing, and it would lose what is still in it. */
  if (!c->attach_done && !c->paused)
    uv_timer_start(&c->guard, on_guard, ATTACH_GUARD_MS, 0);
  maybe_end(c);
}

static void step_wait(struct container *c)
{
  char *path = xasprintf("/containers/%s/wait", c->id);
  c->r_wait.on_headers = NULL;
  c->r_wait.on_body = NULL;
  c->r_wait.on_done = on_waited;
  int rc = dockerhttp_request(c->http, &c->r_wait, "POST", path, NULL);
  free(path);
  if (rc < 0)
    fail(c, xstrdup("cannot wait for the container: out of memory"));
}

/* ---- start ---- */

static void on_started(struct dockerhttp_req *rq, const char *err, long status, const char *body,
                       size_t len)
{
  struct container *c = rq->ud;
  if (err || (status != 204 && status != 304)) {
    char *m = err ? xstrdup(err) : dockerjson_message(body, status);
    fail(c, xasprintf("cannot start the container of image '%s': %s", c->image, m));
    free(m);
    return;
  }
  c->started = 1;
  c->r.started_us = now_us();
  c->mono0 = mono_us();
  step_wait(c);
  if (c->cancelled)
    start_kill(c, c->cancel_grace);
  else if (c->timeout_ms)
    uv_timer_start(&c->timer, on_timer, c->timeout_ms, 0);
}

static void step_start(struct container *c)
{
  if (c->cancelled) {
    step_remove(c);
    return;
  }
  if (request_step(c, "POST", xasprintf("/containers/%s/start", c->id), NULL, STEP_TIMEOUT_MS, NULL,
                   on_started) < 0)
    fail(c, xstrdup("cannot start the container: out of memory"));
}

/* ---- attach ---- */

static void on_attach_headers(struct dockerhttp_req *rq, long status)
{
  struct container *c = rq->ud;
  if (status == 200) {
    c->want_start = 1;
    kick(c);
  }
}

static void on_attach_body(struct dockerhttp_req *rq, const char *data, size_t len)
{
  struct container *c = rq->ud;
  if (c->finished)
    return;
  if (dockerstream_feed(&c->ds, data, len, on_piece, c) < 0 && !c->r.error) {
    c->r.error = xstrdup("the Docker engine sent output that is not in its multiplexed format");
    c->want_abort_attach = 1;
    kick(c);
  }
}

static void on_attach_done(struct dockerhttp_req *rq, const char *err, long status,
                           const char *body, size_t len)
{
  struct container *c = rq->ud;
  c->attach_done = 1;
  uv_timer_stop(&c->guard);
  streams_end(c);
  if (!c->started && !c->removing) {
    /* The attach failed before the start: nothing would read the output. */
    char *m = err ? xstrdup(err) : dockerjson_message(body, status);
    fail(c, xasprintf("cannot attach to the container: %s", m));
    free(m);
    return;
  }
  maybe_end(c);
}

static void step_attach(struct container *c)
{
  char *path = xasprintf("/containers/%s/attach?stream=1&stdout=1&stderr=1", c->id);
  c->r_attach.on_headers = on_attach_headers;
  c->r_attach.on_body = on_attach_body;
  c->r_attach.on_done = on_attach_done;
  int rc = dockerhttp_request(c->http, &c->r_attach, "POST", path, NULL);
  free(path);
  if (rc < 0)
    fail(c, xstrdup("cannot attach to the container: out of memory"));
}

/* ---- pull ---- */

/* One line of the pull's progress: a JSON object per line. Progress bars
 * ("progress") are left out of the log; status changes and errors go in. */
static void on_pull_line(void *ud, const char *data, size_t len, unsigned flags)
{
  struct container *c = ud;
  json_t *o = json_loadb(data, len, 0, NULL);
  if (!o)
    return;
  const char *err = json_string_value(json_object_get(o, "error"));
  const char *msg = json_string_value(json_object_get(o, "message"));
  const char *st = json_string_value(json_object_get(o, "status"));
  const char *id = json_string_value(json_object_get(o, "id"));
  if ((err || msg) && !c->pull_error)
    c->pull_error = xstrdup(err ? err : msg);
  if (st && !json_object_get(o, "progress")) {
    char *line = id ? xasprintf("pull: %s: %s", id, st) : xasprintf("pull: %s", st);
    sys_line(c, line);
    free(line);
  }
  json_decref(o);
}

static void on_pull_body(struct dockerhttp_req *rq, const char *data, size_t len)
{
  struct container *c = rq->ud;
  lines_feed(&c->pull, data, len);
}

static void on_pulled(struct dockerhttp_req *rq, const char *err, long status, const char *body,
                      size_t len)
{
  struct container *c = rq->ud;
  lines_flush(&c->pull);
  c->pulling = 0;
  if (err || status != 200 || c->pull_error) {
    const char *why = err ? err : c->pull_error ? c->pull_error : "the engine refused the pull";
    fail(c, xasprintf("image '%s' is not on the Docker engine and cannot be pulled: %s", c->image,
                      why));
    return;
  }
  c->pulled = 1;
  if (c->cancelled) {
    step_remove(c);
    return;
  }
  step_create(c);
}

static void step_pull(struct container *c)
{
  /* Without a tag the engine would pull every tag of the repository. */
  const char *slash = strrchr(c->image, '/');
  const char *last = slash ? slash + 1 : c->image;
  int tagged = strchr(last, ':') || strchr(c->image, '@');
  char *img = dockerjson_query_escape(c->image);
  char *path = xasprintf("/images/create?fromImage=%s%s", img, tagged ? "" : "&tag=latest");
  free(img);
  char *line = xasprintf("pulling image '%s'", c->image);
  sys_line(c, line);
  free(line);
  c->pulling = 1;
  /* No time limit: as long as the image takes; a cancel stops it. */
  if (request_step(c, "POST", path, NULL, 0, on_pull_body, on_pulled) < 0)
    fail(c, xstrdup("cannot pull: out of memory"));
}

/* ---- create ---- */

static void on_created(struct dockerhttp_req *rq, const char *err, long status, const char *body,
                       size_t len)
{
  struct container *c = rq->ud;
  if (err) {
    fail(c, xasprintf("%s: is it running? (--docker-host, DOCKER_HOST)", err));
    return;
  }
  if (status == 404 && !c->pulled) {
    step_pull(c);
    return;
  }
  if (status != 201) {
    char *m = dockerjson_message(body, status);
    fail(c, xasprintf("the Docker engine refused the container of image '%s': %s", c->image, m));
    free(m);
    return;
  }
  json_t *o = json_loadb(body, len, 0, NULL);
  const char *id = json_string_value(json_object_get(o, "Id"));
  if (id && strlen(id) < sizeof c->id && strspn(id, "0123456789abcdef") == strlen(id))
    snprintf(c->id, sizeof c->id, "%s", id);
  json_decref(o);
  if (!c->id[0]) {
    fail(c, xstrdup("the Docker engine created a container without an id"));
    return;
  }
  if (c->cancelled) {
    step_remove(c);
    return;
  }
  step_attach(c);
}

static void step_create(struct container *c)
{
  if (request_step(c, "POST", xstrdup("/containers/create"), c->create_json, STEP_TIMEOUT_MS, NULL,
                   on_created) < 0)
    fail(c, xstrdup("cannot create the container: out of memory"));
}

/* ---- kick: actions deferred out of curl's callbacks ---- */

static void on_kick(uv_timer_t *t)
{
  struct container *c = t->data;
  if (c->header) {
    char *h = c->header;
    c->header = NULL;
    sys_line(c, h);
    free(h);
    if (!c->http) {
      finish(c);
      return;
    }
    step_create(c);
    if (c->finished)
      return;
  }
  if (c->want_stop_pull) {
    c->want_stop_pull = 0;
    if (c->pulling) {
      /* Nothing was created yet: nothing to remove. */
      dockerhttp_abort(&c->r_step);
      c->pulling = 0;
      step_remove(c);
      return;
    }
  }
  if (c->want_abort_attach) {
    c->want_abort_attach = 0;
    c->want_start = 0;
    if (!c->attach_done) {
      dockerhttp_abort(&c->r_attach);
      on_attach_done(&c->r_attach, "the output stream was cut", 0, "", 0);
      if (c->finished)
        return;
    }
  }
  if (c->want_start) {
    c->want_start = 0;
    if (!c->removing)
      step_start(c);
  }
  if (c->want_sig) {
    const char *sig = c->want_sig;
    c->want_sig = NULL;
    if (c->started && !c->waited && !c->removing) {
      char *path = xasprintf("/containers/%s/kill?signal=%s", c->id, sig);
      dockerhttp_abort(&c->r_kill);
      c->r_kill.on_headers = NULL;
      c->r_kill.on_body = NULL;
      c->r_kill.on_done = on_killed;
      dockerhttp_request(c->http, &c->r_kill, "POST", path, NULL);
      free(path);
    }
  }
}

/* ---- start, cancel ---- */

int container_start(uv_loop_t *loop, const struct job *j, const struct container_opts *opts,
                    const struct container_ops *ops, void *ud, struct container **out)
{
  static const struct container_opts defaults;
  if (!opts)
    opts = &defaults;
  struct container *c = xcalloc(1, sizeof *c);
  /* A host that is not a unix socket, or no libcurl, fails the job (with
   * the reason), as an engine that does not answer does. */
  char host_err[512] = "";
  if (opts->refuse) {
    snprintf(host_err, sizeof host_err, "%s", opts->refuse);
    c->http = NULL;
    c->freed_http = 1;
  } else if (dockerhttp_new(loop, opts->host, &c->http, host_err, sizeof host_err) < 0) {
    c->http = NULL;
    c->freed_http = 1;
  }
  c->loop = loop;
  c->ops = *ops;
  c->ud = ud;
  snprintf(c->job_id, sizeof c->job_id, "%s", j->id);
  c->image = xstrdup(j->image ? j->image : "");
  c->timeout_ms = j->timeout_ms;
  c->grace_ms = j->kill_grace_ms;
  c->raw = opts->raw_output != 0;
  c->exit_status = -1;
  job_result_init(&c->r);
  c->r.attempt = j->attempt ? j->attempt : 1;
  dockerstream_init(&c->ds);
  size_t max = opts->max_line ? opts->max_line : LINES_DEFAULT_MAX;
  for (int i = 0; i < 2; i++) {
    c->os[i].c = c;
    c->os[i].id = i;
    c->os[i].last = '\n';
    lines_init(&c->os[i].lines, max, on_out_line, &c->os[i]);
  }
  lines_init(&c->pull, PULL_LINE_MAX, on_pull_line, c);
  c->r_step.ud = c->r_attach.ud = c->r_wait.ud = c->r_kill.ud = c;
  c->r_kill.timeout_ms = STEP_TIMEOUT_MS;
  uv_timer_init(loop, &c->timer);
  uv_timer_init(loop, &c->guard);
  uv_timer_init(loop, &c->kick);
  c->timer.data = c->guard.data = c->kick.data = c;
  c->handles = 3;
  c->create_json = dockerjson_create_body(j, opts->node);
  if (host_err[0]) {
    c->r.error = xstrdup(host_err);
    c->failed = 1;
    c->removing = 1; /* nothing to create or remove: on_kick finishes */
  }

  /* As exec.c, the header line and everything after come from the loop,
   * once the caller has *out. */
  c->header = j->command ? xasprintf("$ [%s] %s", c->image, j->command)
              : j->argv  ? xasprintf("$ [%s] %s%s", c->image, j->argv[0], j->argc > 1 ? " ..." : "")
                         : xasprintf("$ [%s]", c->image);
  kick(c);
  *out = c;
  return 0;
}

void container_cancel(struct container *c, uint64_t grace_ms)
{
  if (c->finished || c->removing || c->waited)
    return;
  if (grace_ms == UINT64_MAX)
    grace_ms = c->grace_ms;
  if (!c->killing)
    c->cancelled = 1;
  if (c->started) {
    start_kill(c, grace_ms);
    return;
  }
  /* Not started yet: it never will be (each step checks), and the grace is
   * kept in case the start is already on its way. A pull is stopped. */
  if (!c->cancel_grace_set || grace_ms < c->cancel_grace)
    c->cancel_grace = grace_ms;
  c->cancel_grace_set = 1;
  c->want_stop_pull = 1;
  kick(c);
}

void container_pause_output(struct container *c, int paused)
{
  paused = paused != 0;
  if (c->finished || (int)c->paused == paused)
    return;
  c->paused = (unsigned)paused;
  dockerhttp_pause(&c->r_attach, paused);
  if (paused)
    uv_timer_stop(&c->guard);
  else if (c->waited && !c->attach_done && !c->removing)
    uv_timer_start(&c->guard, on_guard, ATTACH_GUARD_MS, 0);
}
