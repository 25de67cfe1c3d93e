/* joblogs.c - `drover job logs ID [-f] [--timestamps] [--attempt N]`: a
 * job's output from the coordinator's store, exactly as the job wrote it
 * (stdout to stdout, stderr to stderr, as `docker logs`), or the merged
 * view with times, streams and drover's own lines. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/jobcmds.h"
#include "cli/logview.h"
#include "cli/outwriter.h"
#include "job/states.h"

#define QUEUE_HIGH (2u << 20)
#define QUEUE_LOW  (512u << 10)

struct logs_opts {
  struct client_opts client;
  int follow;
  int timestamps;
  long attempt;
};

static const struct cfg_opt logs_table[] = {
    CLIENT_OPTS(struct logs_opts),
    {"follow", 'f', CFG_BOOL, offsetof(struct logs_opts, follow), NULL, NULL, 0, 0, NULL,
     "keep printing as the job writes, until it ends (across attempts)"},
    {"timestamps", 0, CFG_BOOL, offsetof(struct logs_opts, timestamps), NULL, NULL, 0, 0, NULL,
     "the merged view on stdout: \"<RFC 3339 time> out|err|sys <text>\" per line, with drover's "
     "own lines"},
    {"attempt", 0, CFG_INT, offsetof(struct logs_opts, attempt), "0", NULL, 0, 1000, "N",
     "the output of attempt N (0: the latest; with -f, the later ones too)"},
};

static const struct client_cmd logs_cmd = {
    "job logs",
    "ID",
    "prints a job's output as the coordinator stored it. By default exactly the job's bytes:\n"
    "its stdout on stdout, its stderr on stderr (as docker logs). --timestamps prints one\n"
    "line per output line on stdout, \"<time> out|err|sys <text>\", with drover's own lines\n"
    "(\"$ cmd\", a new attempt, the final status). -f follows a running job until it ends.",
    logs_table,
    ARRAY_SIZE(logs_table),
    1};

struct logs_ctx {
  struct outwriter *w;
  struct logview *v;
  int ended, finished, code;
  int reported;
  int st_code; /* the stream's status when it failed */
  char *st_msg;
};

static void on_end(struct logview *v, const struct rpc_status *st, const pb_Job *job, void *ud)
{
  struct logs_ctx *x = ud;
  (void)v;
  (void)job;
  x->ended = 1;
  if (st->code != RPC_OK) {
    outwriter_discard(x->w);
    x->st_code = st->code;
    x->st_msg = st->message ? xstrdup(st->message) : NULL;
  }
}

static void on_writer(struct outwriter *w, void *ud)
{
  struct logs_ctx *x = ud;
  int err = outwriter_error(w, 1);
  if (x->finished)
    return;
  if (!x->reported && err) {
    x->reported = 1;
    /* Our reader went away (drover job logs ID | head): stop, as a
     * program killed by SIGPIPE would. */
    x->code = err == -EPIPE ? 128 + SIGPIPE : CLI_EXIT_ERROR;
    if (err != -EPIPE)
      fprintf(stderr, "error: cannot write to stdout: %s\n", strerror(-err));
    outwriter_discard(w);
    x->finished = 1;
  }
  if (x->v)
    logview_writer_changed(x->v);
}

int cli_job_logs(int argc, char **argv)
{
  struct logs_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&logs_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_ERROR;
  if (args.n != 1) {
    code = cli_usage_error(logs_cmd.name, logs_cmd.args, logs_cmd.summary, logs_cmd.opts,
                           logs_cmd.n, "give one job id");
    goto out;
  }
  signal(SIGPIPE, SIG_IGN);
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  Drover__V1__GetJobRequest req = DROVER__V1__GET_JOB_REQUEST__INIT;
  req.id = args.v[0];
  pb_Job *job = NULL;
  if (client_unary(&cl, CLIENT_JOBS "Get", &req.base, &drover__v1__job__descriptor,
                   (ProtobufCMessage **)&job) < 0)
    goto end;
  if (o.attempt > 0 && (uint32_t)o.attempt > job->attempt) {
    fprintf(stderr, "error: job '%s' has had %u attempt%s: --attempt %ld is not one of them\n",
            args.v[0], job->attempt, job->attempt == 1 ? "" : "s", o.attempt);
    goto end;
  }
  struct logs_ctx x = {0};
  int rc = outwriter_new(cl.loop, QUEUE_HIGH, QUEUE_LOW, on_writer, &x, &x.w);
  if (rc < 0) {
    fprintf(stderr, "error: cannot start: %s\n", strerror(-rc));
    goto end;
  }
  struct logview_opts lo = {
      .id = job->spec && job->spec->id ? job->spec->id : args.v[0],
      .follow = o.follow,
      .attempt = (uint32_t)o.attempt,
      .announced = (uint32_t)o.attempt,
      .max_attempts = job->spec && job->spec->max_attempts ? job->spec->max_attempts : 1,
      .timestamps = o.timestamps,
      .show_system = 0,
      .on_end = on_end,
      .ud = &x,
  };
  if (logview_start(&cl, x.w, &lo, &x.v) == 0) {
    while (!x.finished) {
      if (x.ended && outwriter_idle(x.w))
        break;
      uv_run(cl.loop, UV_RUN_ONCE);
    }
    /* A failed write drops what was queued, so the queue can be idle
     * before its news reached on_writer. */
    on_writer(x.w, &x);
    if (x.st_code) {
      struct rpc_status st = {x.st_code, x.st_msg};
      client_report(&cl, &st, NULL);
      x.code = CLI_EXIT_ERROR;
      free(x.st_msg);
    } else if (!x.finished && !o.follow && o.timestamps && job_state_terminal((int)job->state) &&
               (!o.attempt || (uint32_t)o.attempt == job->attempt)) {
      /* The stream has no end line without follow: the job we read has. */
      logview_print_end(x.v, job);
      while (!outwriter_idle(x.w) && !x.finished)
        uv_run(cl.loop, UV_RUN_ONCE);
    }
    code = x.code;
    logview_free(x.v);
    x.v = NULL;
  }
  outwriter_close(x.w);
end:
  if (job)
    protobuf_c_message_free_unpacked(&job->base, NULL);
  client_end(&cl);
out:
  client_parse_release(&logs_cmd, &o, &res, &args);
  return code;
}
