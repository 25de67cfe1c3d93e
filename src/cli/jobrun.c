/* jobrun.c - `drover job run [OPTS] -- CMD...`: submits a job to the
 * coordinator, streams its output live (stdout to stdout, stderr to stderr,
 * byte for byte) and exits with its code, as `drover run` does here.
 *
 * One connection carries Submit, then Logs(follow) until the stream's last
 * message brings the ended job; with -i, WriteStdin alongside. The loop
 * never blocks on our own stdout: output goes through the writer thread of
 * `drover run` (outwriter.c), and the Logs stream is paused while its queue
 * is full, so the coordinator, not the loop, waits for a slow reader.
 *
 * Ctrl-C (SIGINT), SIGTERM and SIGHUP cancel the job (JobService.Cancel)
 * and the output goes on until it ends; a second one stops waiting. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/inreader.h"
#include "cli/jobcmds.h"
#include "cli/jobopts.h"
#include "cli/logview.h"
#include "cli/outwriter.h"
#include "job/job_pb.h"
#include "job/result.h"

/* The writer's queue: above HIGH the Logs stream is paused, below LOW it
 * reads again (as drover run's). */
#define QUEUE_HIGH (2u << 20)
#define QUEUE_LOW  (512u << 10)

/* drover's own failure (cannot reach the coordinator, job refused, stream
 * lost): 125, as docker run and timeout(1) say they could not do it. */
#define EXIT_DROVER 125

struct jobrun_opts {
  struct client_opts client;
  struct jobopts job;
  int json;
  int interactive;
};

static const struct cfg_opt jobrun_table[] = {
    CLIENT_OPTS(struct jobrun_opts),
    {"json", 0, CFG_BOOL, offsetof(struct jobrun_opts, json), NULL, NULL, 0, 0, NULL,
     "print the result document as the last line of stdout"},
    {"interactive", 'i', CFG_BOOL, offsetof(struct jobrun_opts, interactive), NULL, NULL, 0, 0,
     NULL, "stream drover's stdin to the job (without -i the job's stdin is /dev/null)"},
    JOBOPTS_TABLE(struct jobrun_opts, job, "1h"),
};

static const char jobrun_summary[] =
    "submits CMD to the coordinator and waits for it, its output live: the job's stdout on\n"
    "stdout, its stderr on stderr, byte for byte. One word is a bash command line, several are\n"
    "a program and its arguments (--exec, --shell choose), as for drover run.\n"
    "Exit code: the job's own; 128+N when it died of signal N; 124 on timeout; 125 when it\n"
    "could not start, or drover could not submit or follow it (stderr says which); 75 when\n"
    "its node was lost and no attempt was left (a retry may work).\n"
    "Ctrl-C (or SIGTERM, SIGHUP) cancels the job and waits for it to end (exit 128+N); a\n"
    "second one stops waiting.";

static const struct client_cmd jobrun_cmd = {
    "job run", "-- CMD [ARGS...]", jobrun_summary, jobrun_table, ARRAY_SIZE(jobrun_table), 0,
};

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

struct jobrun {
  uv_loop_t loop;
  struct client cl;
  struct outwriter *w;
  struct logview *lv;
  struct inreader *in;
  uv_signal_t sigs[ARRAY_SIZE(stop_signals)];
  int nsigs;
  pb_JobSpec *spec;
  char id[129];
  uint32_t max_attempts;
  rpc_call *submit, *stdin_call;
  Drover__V1__SubmitResponse *submitted; /* the reply, once it came */
  int logs_ended_early;                  /* the log ended before the Submit's answer */
  int json, interactive;
  int signal;        /* the first stop signal, 0 if none */
  int cancel_signal; /* what made us cancel the job: that signal, or SIGPIPE */
  int cancel_wanted; /* cancel once the job is submitted */
  int cancel_sent;
  int reported[3]; /* a write error on fd 1/2 was handled */
  int job_done, closing, quitting;
  int code;
};

static void quit(struct jobrun *r);

/* A line of drover's own on stderr, in order with the job's output. */
static void say(struct jobrun *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct jobrun *r, const char *fmt, ...)
{
  char buf[700];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof(buf) - 1)
    n = sizeof(buf) - 2;
  buf[n++] = '\n';
  outwriter_write(r->w, 2, buf, (size_t)n);
}

/* ---- the end ---- */

static void close_all(struct jobrun *r)
{
  if (r->closing)
    return;
  r->closing = 1;
  logview_free(r->lv);
  r->lv = NULL;
  inreader_close(r->in);
  r->in = NULL;
  client_close(&r->cl);
  for (int i = 0; i < r->nsigs; i++)
    uv_close((uv_handle_t *)&r->sigs[i], NULL);
  outwriter_close(r->w);
}

/* Ends once the job is over and its output written. */
static void maybe_quit(struct jobrun *r)
{
  if (r->closing || !r->job_done)
    return;
  if (!outwriter_idle(r->w))
    return; /* on_writer calls again when it is */
  close_all(r);
}

/* Stops at once, what is left of the output dropped. */
static void quit(struct jobrun *r)
{
  r->quitting = 1;
  r->job_done = 1;
  outwriter_discard(r->w);
  close_all(r);
}

/* ---- cancel ---- */

static void cancel_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct jobrun *r = ud;
  (void)call;
  if (r->closing || st->code == RPC_OK)
    return;
  char pre[200];
  snprintf(pre, sizeof(pre), "cannot cancel job '%s'", r->id);
  fflush(stdout);
  client_report(&r->cl, st, pre);
}

static void send_cancel(struct jobrun *r)
{
  static const struct rpc_handlers h = {.on_done = cancel_done};
  if (r->cancel_sent || r->job_done)
    return;
  r->cancel_sent = 1;
  char reason[120];
  if (r->cancel_signal == SIGPIPE)
    snprintf(reason, sizeof(reason), "the reader of 'drover job run''s output went away (EPIPE)");
  else
    snprintf(reason, sizeof(reason), "SIG%s to 'drover job run'",
             sigabbrev_np(r->cancel_signal) ? sigabbrev_np(r->cancel_signal) : "?");
  Drover__V1__CancelJobRequest req = DROVER__V1__CANCEL_JOB_REQUEST__INIT;
  req.id = r->id;
  req.reason = reason;
  /* grace 0: the job's own --kill-grace */
  client_start(&r->cl, CLIENT_JOBS "Cancel", &drover__v1__cancel_job_response__descriptor,
               &req.base, &h, r, NULL);
}

static void want_cancel(struct jobrun *r, int why)
{
  if (r->cancel_signal)
    return;
  r->cancel_signal = why;
  if (r->submitted)
    send_cancel(r);
  else
    r->cancel_wanted = 1;
}

/* ---- output ---- */

static void on_writer(struct outwriter *w, void *ud)
{
  struct jobrun *r = ud;
  for (int fd = 1; fd <= 2; fd++) {
    int err = outwriter_error(w, fd);
    if (!err || r->reported[fd])
      continue;
    r->reported[fd] = 1;
    if (err == -EPIPE) {
      /* Like a pipeline whose reader left (drover job run -- yes | head):
       * stop the job, and exit 128+SIGPIPE as the job itself would. */
      want_cancel(r, SIGPIPE);
    } else if (fd == 1) {
      say(r, "error: cannot write the job's stdout: %s", strerror(-err));
    }
  }
  if (r->lv)
    logview_writer_changed(r->lv);
  maybe_quit(r);
}

static void print_result(struct jobrun *r, const pb_Job *job)
{
  struct job_result res;
  if (job->result)
    job_result_from_pb(&res, job->result);
  else
    job_result_init(&res);
  if (res.error)
    say(r, "error: %s", res.error);
  r->code = cli_job_exit_code(job);
  if (res.status == JOB_CANCELLED && r->cancel_signal && r->cancel_sent)
    r->code = 128 + r->cancel_signal;
  if (r->json) {
    struct job jj;
    memset(&jj, 0, sizeof(jj));
    snprintf(jj.id, sizeof(jj.id), "%s", job->spec && job->spec->id ? job->spec->id : r->id);
    jj.name = job->spec && job->spec->name && *job->spec->name ? job->spec->name : NULL;
    json_t *extra = json_pack("{s:i}", "exit", r->code);
    char *doc = job_result_to_json(&jj, &res, extra);
    json_decref(extra);
    /* Its own line, as drover run does, so `... | tail -n 1` is the document. */
    if (r->lv && logview_out_bytes(r->lv) > 0 && logview_out_last(r->lv) != '\n')
      outwriter_write(r->w, 1, "\n", 1);
    outwriter_write(r->w, 1, doc, strlen(doc));
    outwriter_write(r->w, 1, "\n", 1);
    free(doc);
  }
  job_result_release(&res);
}

static void on_logs_end(struct logview *v, const struct rpc_status *st, const pb_Job *job, void *ud)
{
  struct jobrun *r = ud;
  (void)v;
  if (r->closing)
    return;
  if (r->submit) {
    /* The log was asked for with the Submit, before the job existed for
     * sure: a refused Submit ends it too. The Submit's answer decides. */
    r->logs_ended_early = 1;
    return;
  }
  if (st->code == RPC_OK && job) {
    print_result(r, job);
  } else {
    char pre[200];
    snprintf(pre, sizeof(pre), "job '%s'", r->id);
    if (st->code == RPC_OK) {
      say(r, "error: job '%s': the coordinator ended its log before the job", r->id);
    } else {
      outwriter_discard(r->w); /* the message must not wait behind output */
      client_report(&r->cl, st, pre);
      fprintf(stderr, "drover: the job may still run: 'drover job status %s' tells\n", r->id);
    }
    r->code = EXIT_DROVER;
  }
  r->job_done = 1;
  inreader_close(r->in); /* a read blocked on a terminal ends here */
  r->in = NULL;
  if (r->stdin_call)
    rpc_call_cancel(r->stdin_call);
  maybe_quit(r);
}

/* ---- stdin (-i) ---- */

static void stdin_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct jobrun *r = ud;
  (void)call;
  r->stdin_call = NULL;
  inreader_close(r->in);
  r->in = NULL;
  if (r->closing || r->job_done || st->code == RPC_OK || st->code == RPC_CANCELLED)
    return;
  /* The job ended before it read everything: not an error of the job's. */
  if (st->code == RPC_FAILED_PRECONDITION) {
    log_debug("stdin stream ended", "job=%s message=%s", r->id, st->message ? st->message : "");
    return;
  }
  char pre[200];
  snprintf(pre, sizeof(pre), "job '%s': stdin", r->id);
  client_report(&r->cl, st, pre);
}

static void stdin_writable(rpc_call *call, void *ud)
{
  struct jobrun *r = ud;
  (void)call;
  if (r->in)
    inreader_more(r->in);
}

static void on_stdin(struct inreader *in, const char *data, size_t len, int err, void *ud)
{
  struct jobrun *r = ud;
  if (!r->stdin_call)
    return;
  Drover__V1__StdinChunk ch = DROVER__V1__STDIN_CHUNK__INIT;
  ch.job_id = r->id;
  if (len == 0) {
    if (err)
      say(r, "error: cannot read stdin for the job: %s", strerror(-err));
    ch.eof = 1;
    rpc_call_send(r->stdin_call, &ch.base);
    rpc_call_half_close(r->stdin_call);
    inreader_close(in);
    r->in = NULL;
    return;
  }
  ch.data.data = (uint8_t *)data;
  ch.data.len = len;
  int rc = rpc_call_send(r->stdin_call, &ch.base);
  if (rc == 0)
    inreader_more(in);
  else if (rc < 0) {
    inreader_close(in);
    r->in = NULL;
  }
  /* rc 1: stdin_writable asks for more */
}

static void start_stdin(struct jobrun *r)
{
  static const struct rpc_handlers h = {.on_writable = stdin_writable, .on_done = stdin_done};
  if (client_start(&r->cl, CLIENT_JOBS "WriteStdin", &drover__v1__stdin_response__descriptor, NULL,
                   &h, r, &r->stdin_call) < 0)
    return;
  /* The first chunk names the job, at once: a refusal shows early. */
  Drover__V1__StdinChunk ch = DROVER__V1__STDIN_CHUNK__INIT;
  ch.job_id = r->id;
  rpc_call_send(r->stdin_call, &ch.base);
  int rc = inreader_new(&r->loop, 0, on_stdin, r, &r->in);
  if (rc < 0) {
    say(r, "error: cannot read stdin for the job: %s", strerror(-rc));
    ch.eof = 1;
    rpc_call_send(r->stdin_call, &ch.base);
    rpc_call_half_close(r->stdin_call);
  }
}

/* ---- submit ---- */

/* Follows the job's log from its first line to its end (Logs, follow). */
static int start_logs(struct jobrun *r)
{
  struct logview_opts lo = {
      .id = r->id,
      .follow = 1,
      .announced = 1,
      .max_attempts = r->max_attempts,
      .show_system = log_enabled(LOG_DEBUG),
      .on_end = on_logs_end,
      .ud = r,
  };
  return logview_start(&r->cl, r->w, &lo, &r->lv);
}

static void submit_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct jobrun *r = ud;
  (void)call;
  if (!r->submitted)
    r->submitted = (Drover__V1__SubmitResponse *)rpc_msg_take(m);
}

static void submit_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct jobrun *r = ud;
  (void)call;
  r->submit = NULL;
  if (r->closing)
    return;
  const pb_Job *job = r->submitted ? r->submitted->job : NULL;
  if (st->code != RPC_OK || !job || !job->spec || !job->spec->id) {
    logview_free(r->lv);
    r->lv = NULL;
    if (st->code == RPC_OK)
      fprintf(stderr, "error: the coordinator at '%s' sent no job back\n", r->cl.addr);
    else
      client_report(&r->cl, st, NULL);
    r->code = EXIT_DROVER;
    quit(r);
    return;
  }
  log_info("job submitted", "job=%s state=%d", job->spec->id, (int)job->state);
  r->max_attempts = job->spec->max_attempts ? job->spec->max_attempts : 1;
  if (strcmp(job->spec->id, r->id) || r->logs_ended_early || !r->lv) {
    /* Not the job the log was asked for (an idempotency key matched an
     * earlier one), or that log ended: follow the job we got. */
    if (strcmp(job->spec->id, r->id))
      say(r, "drover: job %s: idempotency key '%s' matched it: following it, not a new job",
          job->spec->id, r->spec->idempotency_key ? r->spec->idempotency_key : "");
    snprintf(r->id, sizeof(r->id), "%s", job->spec->id);
    logview_free(r->lv);
    r->lv = NULL;
    r->logs_ended_early = 0;
    if (start_logs(r) < 0) {
      r->code = EXIT_DROVER;
      quit(r);
      return;
    }
  }
  if (r->interactive)
    start_stdin(r);
  if (r->cancel_wanted)
    send_cancel(r);
}

/* ---- signals ---- */

static void on_signal(uv_signal_t *h, int signum)
{
  struct jobrun *r = h->data;
  if (r->closing)
    return;
  if (r->job_done) {
    /* Only the output is left to write: stop waiting for the reader. */
    if (!r->code)
      r->code = 128 + signum;
    quit(r);
    return;
  }
  if (!r->signal) {
    r->signal = signum;
    if (!r->cancel_signal) {
      say(r, "drover: cancelling job %s (%s again to stop waiting)", r->id,
          signum == SIGINT ? "Ctrl-C" : "the signal");
      want_cancel(r, signum);
    }
    return;
  }
  fflush(stdout);
  if (r->submitted)
    fprintf(stderr, "drover: stopped waiting; job %s is being cancelled: 'drover job status %s'\n",
            r->id, r->id);
  else
    fprintf(stderr,
            "drover: stopped waiting before the coordinator answered; if job %s was submitted, "
            "'drover job cancel %s' stops it\n",
            r->id, r->id);
  r->code = 128 + r->signal;
  quit(r);
}

int cli_job_run(int argc, char **argv)
{
  struct jobrun_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&jobrun_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;

  code = CLI_EXIT_USAGE;
  char err[512];
  struct job j;
  if (jobopts_job(&o.job, args.n, args.v, &j, err, sizeof(err)) < 0) {
    cli_usage_error(jobrun_cmd.name, jobrun_cmd.args, jobrun_cmd.summary, jobrun_cmd.opts,
                    jobrun_cmd.n, "%s", err);
    goto out;
  }
  struct jobrun *r = xcalloc(1, sizeof(*r));
  r->spec = jobopts_spec(&o.job, &j, err, sizeof(err));
  snprintf(r->id, sizeof(r->id), "%s", j.id);
  job_release(&j);
  if (!r->spec) {
    cli_usage_error(jobrun_cmd.name, jobrun_cmd.args, jobrun_cmd.summary, jobrun_cmd.opts,
                    jobrun_cmd.n, "%s", err);
    free(r);
    goto out;
  }
  r->spec->stdin = o.interactive;
  r->json = o.json;
  r->interactive = o.interactive;

  /* EPIPE on our stdout is handled (the job is cancelled). */
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&r->loop);
  code = EXIT_DROVER;
  int rc = outwriter_new(&r->loop, QUEUE_HIGH, QUEUE_LOW, on_writer, r, &r->w);
  if (rc < 0) {
    fprintf(stderr, "error: cannot start: %s\n", strerror(-rc));
  } else if (client_open(&r->cl, &r->loop, o.client.addr) < 0) {
    outwriter_close(r->w);
  } else {
    for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++) {
      uv_signal_init(&r->loop, &r->sigs[r->nsigs]);
      r->sigs[r->nsigs].data = r;
      uv_signal_start(&r->sigs[r->nsigs++], on_signal, stop_signals[i]);
    }
    static const struct rpc_handlers h = {.on_message = submit_message, .on_done = submit_done};
    Drover__V1__SubmitRequest req = DROVER__V1__SUBMIT_REQUEST__INIT;
    req.spec = r->spec;
    r->max_attempts = r->spec->max_attempts ? r->spec->max_attempts : 1;
    if (client_start(&r->cl, CLIENT_JOBS "Submit", &drover__v1__submit_response__descriptor,
                     &req.base, &h, r, &r->submit) < 0) {
      quit(r);
    } else if (start_logs(r) < 0) {
      /* The log is asked for at once, on the same connection after the
       * Submit, so the job's first line is not one round trip late; the
       * coordinator takes the two in that order. */
      r->lv = NULL;
    }
    uv_run(&r->loop, UV_RUN_DEFAULT);
    code = r->code;
  }
  uv_run(&r->loop, UV_RUN_DEFAULT); /* the closes */
  if (uv_loop_close(&r->loop) != 0)
    log_warn("event loop closed with handles still open", "job=%s", r->id);
  if (r->submitted)
    protobuf_c_message_free_unpacked(&r->submitted->base, NULL);
  protobuf_c_message_free_unpacked(&r->spec->base, NULL);
  free(r);
out:
  client_parse_release(&jobrun_cmd, &o, &res, &args);
  return code;
}
