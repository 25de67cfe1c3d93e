/* run.c - `drover run -- CMD [ARGS...]`: runs one job here and now, its output
 * passed through byte for byte, and exits with the job's code (as timeout(1)
 * does).
 *
 * The loop never waits on our own stdout or stderr: the job's bytes go to a
 * writer thread (outwriter.c) through a bounded queue. When the queue is
 * full the job's pipes are no longer read, so the job waits as it would
 * writing to a terminal that is not read, while timers and signals keep
 * working. At the end drover waits for the queue to be written, unless a
 * signal comes during that wait, or a signal came earlier and the reader
 * has taken nothing for STUCK_MS. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "cli/jobopts.h"
#include "cli/outwriter.h"
#include "container/dockerhttp.h"
#include "exec/exec.h"
#include "exec/lines.h"
#include "job/cmdline.h"
#include "job/job.h"
#include "job/result.h"
#include "sandbox/sandbox.h"
#include "tools/policy.h"

/* The output queue: above HIGH the job's pipes are paused, below LOW they
 * are read again. With the job's own 1 MiB pipe, at most ~3 MiB of output
 * wait for a slow reader. */
#define QUEUE_HIGH (2u << 20)
#define QUEUE_LOW  (512u << 10)
/* After a stop signal: a write that has waited this long means the reader
 * takes nothing; what is left of the output is dropped so drover can exit. */
#define STUCK_MS      1000
#define STUCK_TICK_MS 100
/* Reading a pipe as fast as the job fills it costs a read, a wakeup of the
 * writer thread and a write per 4 KiB (a typical stdio buffer), which made
 * the passthrough twice as slow as the job writing to a file itself. So
 * after a short read the pipe is left alone for BATCH_MS: it gathers up to
 * its 1 MiB meanwhile, and the next read takes it all. The bytes of the
 * short read go out at once; only the next read waits, by a millisecond. */
#define BATCH_BYTES (64u << 10)
#define BATCH_MS    1

struct run_opts {
  struct cfg_common common;
  struct jobopts job; /* the fragment shared with drover job run|submit */
  int json;
  char *cgroups, *cgroup_parent; /* sandbox (issue 8) */
  char *docker_host;
  struct tools_policy tools; /* --tool-root ...: what a --tool job may do */
};

/* The common options by hand rather than CFG_COMMON_OPTS: same keys, but
 * `drover run` logs only warnings by default, so that a command's output is
 * all a user sees. */
static const struct cfg_opt run_opts_table[] = {
    {"log-level", 0, CFG_ENUM, offsetof(struct run_opts, common.log_level), "warn",
     "debug|info|warn|error", 0, 0, "LEVEL", "least severe message to log (debug shows \"$ cmd\")"},
    {"log-format", 0, CFG_ENUM, offsetof(struct run_opts, common.log_format), "text", "text|json",
     0, 0, "FORMAT", "log as text or one JSON object per line"},
    {"json", 0, CFG_BOOL, offsetof(struct run_opts, json), NULL, NULL, 0, 0, NULL,
     "print the result document as the last line of stdout"},
    JOBOPTS_TABLE(struct run_opts, job, "0"),
    {"cgroups", 0, CFG_ENUM, offsetof(struct run_opts, cgroups), "auto", "auto|v1|v2|off", 0, 0,
     "MODE", "the job's cgroup: auto (v2, v1 or both), only v1, only v2, or off (a process group)"},
    {"cgroup-parent", 0, CFG_STRING, offsetof(struct run_opts, cgroup_parent), NULL, NULL, 0, 0,
     "PATH",
     "make the job's cgroup under PATH (from each hierarchy's root) instead of under "
     "drover's own"},
    {"docker-host", 0, CFG_STRING, offsetof(struct run_opts, docker_host), NULL, NULL, 0, 0, "URL",
     "--image: the Docker engine's socket, unix:///PATH (default: $DOCKER_HOST, else "
     "unix:///var/run/docker.sock)"},
    TOOLS_POLICY_TABLE(struct run_opts, tools),
};
#define NOPTS ARRAY_SIZE(run_opts_table)

static const char run_args[] = "-- CMD [ARGS...] | --tool NAME --args JSON";
static const char run_summary[] =
    "runs CMD here as a job. One word is a bash command line: drover run -- 'make && make test'.\n"
    "Several words are a program and its arguments, run as they are, without a shell:\n"
    "drover run -- sh -c 'exit 3'. --exec and --shell choose either way for any number of\n"
    "words (--shell joins several with spaces). The job reads drover's stdin; its stdout and\n"
    "stderr pass through to drover's byte for byte, as they come.\n"
    "Exit code: the job's own; 128+N when it died of signal N; 124 on timeout; 125 when it\n"
    "could not start (for --image: also no engine, image not found, bad image name).\n"
    "--image IMAGE runs the words in a container of IMAGE through the Docker engine (one word\n"
    "with sh -c, several as argv; none: the image's own command); docs/containers.md.\n"
    "A signal to drover (Ctrl-C, SIGTERM, SIGHUP, ...) stops the job (SIGTERM, --kill-grace,\n"
    "SIGKILL) and exits 128+N for that signal; a second signal kills it at once.\n"
    "--json: its \"exit\" is the code drover exits with.\n"
    "--tool NAME --args JSON runs a built-in tool (file_read, file_write, file_edit, list, find,\n"
    "grep, fetch_url, web_search) under the --tool-* policy and prints its JSON result; exit\n"
    "126 when the policy refuses it (docs/tools.md).";

/* Every signal whose default action would end drover, except SIGPIPE
 * (ignored: EPIPE stops the job instead) and the faults (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS), which a bug raises and no
 * handler can survive. Any of these stops the job first: none may leave it
 * running on its own. The real-time signals are added at run time. */
static const int stop_signals[] = {
    SIGHUP,    SIGINT,  SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM,
    SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR,  SIGIO,
#ifdef SIGSTKFLT
    SIGSTKFLT,
#endif
};
#define MAX_SIGNALS 64

struct run_ctx {
  uv_loop_t *loop;
  uv_signal_t sigs[MAX_SIGNALS];
  int nsigs;
  uv_timer_t stuck_timer;
  int stuck_timer_on;
  uv_timer_t batch_timer;
  int batch_timer_on;
  struct outwriter *w;
  struct exec *e; /* NULL once the job is over */
  int json;
  int signal;        /* the first stop signal drover got, 0 if none */
  int cancel_signal; /* what cancelled the job: that signal, or SIGPIPE */
  int full;          /* the writer's queue is above high water */
  int batching;      /* a short read was just made: BATCH_MS before the next */
  int paused;        /* the job's output is paused (either of the above) */
  int abandoned;     /* the output left is dropped: a stop signal and a stuck reader */
  int job_done, closing;
  int reported[3]; /* a write error on fd 1/2 was handled */
  uint64_t out_bytes;
  char out_last; /* the last byte of the job's stdout, for --json */
  int code;
};

static void maybe_quit(struct run_ctx *ctx);

/* Reads the job's output or not, as the queue and the batching say. */
static void update_pause(struct run_ctx *ctx)
{
  int want = (ctx->full || ctx->batching) && !ctx->abandoned && ctx->e;
  if (ctx->e && want != ctx->paused)
    exec_pause_output(ctx->e, want);
  ctx->paused = want;
}

/* Drops the output that is left and lets the job's pipes flow into
 * nothing, so that the job, and then drover, can end. */
static void abandon(struct run_ctx *ctx)
{
  if (ctx->abandoned)
    return;
  ctx->abandoned = 1;
  log_debug("dropping the output left: its reader takes nothing", "signal=%d", ctx->signal);
  outwriter_discard(ctx->w);
  ctx->full = 0;
  update_pause(ctx);
  maybe_quit(ctx);
}

/* The job's output, into the queue. */
static void queue_out(struct run_ctx *ctx, int fd, const char *data, size_t len)
{
  if (ctx->abandoned || len == 0)
    return;
  if (outwriter_write(ctx->w, fd, data, len) && !ctx->full) {
    ctx->full = 1;
    update_pause(ctx);
  }
}

static void on_batch_timer(uv_timer_t *t)
{
  struct run_ctx *ctx = t->data;
  ctx->batching = 0;
  update_pause(ctx);
}

static void on_data(struct exec *e, void *ud, enum job_stream stream, const char *data, size_t len)
{
  struct run_ctx *ctx = ud;
  if (stream == JOB_STDOUT) {
    ctx->out_bytes += len;
    ctx->out_last = data[len - 1];
  }
  queue_out(ctx, stream == JOB_STDOUT ? 1 : 2, data, len);
  if (len < BATCH_BYTES && !ctx->batching && ctx->batch_timer_on) {
    ctx->batching = 1;
    update_pause(ctx);
    uv_timer_start(&ctx->batch_timer, on_batch_timer, BATCH_MS, 0);
  }
}

/* In raw mode only drover's own lines ("$ command") come here. */
static void on_line(struct exec *e, void *ud, enum job_stream stream, int64_t ts_us,
                    const char *data, size_t len, unsigned flags)
{
  struct run_ctx *ctx = ud;
  if (stream != JOB_SYSTEM || !log_enabled(LOG_DEBUG))
    return;
  queue_out(ctx, 2, data, len);
  if (!(flags & LINES_PARTIAL))
    queue_out(ctx, 2, "\n", 1);
}

/* The writer's news: room again, drained, or a write failed. */
static void on_writer(struct outwriter *w, void *ud)
{
  struct run_ctx *ctx = ud;

  for (int fd = 1; fd <= 2; fd++) {
    int err = outwriter_error(w, fd);
    if (!err || ctx->reported[fd])
      continue;
    ctx->reported[fd] = 1;
    if (err == -EPIPE) {
      /* Like a pipeline whose reader left (`drover run -- yes | head`):
       * stop the job, and exit 128+SIGPIPE as the job itself would. */
      if (ctx->e && !ctx->cancel_signal && !ctx->signal) {
        ctx->cancel_signal = SIGPIPE;
        exec_cancel(ctx->e, UINT64_MAX);
      }
    } else if (fd == 1) {
      char msg[256];
      int n =
          snprintf(msg, sizeof msg, "error: cannot write the job's stdout: %s\n", strerror(-err));
      queue_out(ctx, 2, msg, (size_t)n);
    }
  }
  if (ctx->full && !outwriter_full(w)) {
    ctx->full = 0;
    update_pause(ctx);
  }
  maybe_quit(ctx);
}

static void close_all(struct run_ctx *ctx)
{
  for (int i = 0; i < ctx->nsigs; i++)
    uv_close((uv_handle_t *)&ctx->sigs[i], NULL);
  if (ctx->stuck_timer_on)
    uv_close((uv_handle_t *)&ctx->stuck_timer, NULL);
  if (ctx->batch_timer_on)
    uv_close((uv_handle_t *)&ctx->batch_timer, NULL);
  outwriter_close(ctx->w);
}

/* Ends the loop once the job is over and its output written (or dropped). */
static void maybe_quit(struct run_ctx *ctx)
{
  if (!ctx->job_done || ctx->closing)
    return;
  if (!ctx->abandoned && !outwriter_idle(ctx->w))
    return;
  ctx->closing = 1;
  /* Output cut short by a signal: the signal's code, as a shell would give
   * for a command killed by it. */
  if (ctx->abandoned && ctx->signal && !ctx->cancel_signal)
    ctx->code = 128 + ctx->signal;
  close_all(ctx);
}

static void queue_json(struct run_ctx *ctx, const struct job *j, const struct job_result *r)
{
  /* The document's "exit" is the code drover exits with (a Ctrl-C gives
   * 130 in both, however the job died of it). */
  json_t *extra = json_pack("{s:i}", "exit", ctx->code);
  char *doc = job_result_to_json(j, r, extra);
  json_decref(extra);
  /* Its own line, so that `drover run --json ... | tail -n 1` is the
   * document, even after output without a final newline. */
  if (ctx->out_bytes > 0 && ctx->out_last != '\n')
    queue_out(ctx, 1, "\n", 1);
  queue_out(ctx, 1, doc, strlen(doc));
  queue_out(ctx, 1, "\n", 1);
  free(doc);
}

static void on_exit_cb(struct exec *e, void *ud, const struct job_result *r)
{
  struct run_ctx *ctx = ud;

  if (r->error) {
    char *msg = xasprintf("error: %s\n", r->error);
    queue_out(ctx, 2, msg, strlen(msg));
    free(msg);
  }
  if (r->status == JOB_CANCELLED && ctx->cancel_signal)
    ctx->code = 128 + ctx->cancel_signal;
  else
    ctx->code = job_result_exit_code(r);
  if (ctx->json)
    queue_json(ctx, exec_job(e), r);
  ctx->e = NULL;
  ctx->paused = ctx->full = ctx->batching = 0;
  if (ctx->batch_timer_on)
    uv_timer_stop(&ctx->batch_timer);
  ctx->job_done = 1;
  maybe_quit(ctx);
}

static void on_stuck_timer(uv_timer_t *t)
{
  struct run_ctx *ctx = t->data;
  if (outwriter_blocked_ms(ctx->w) >= STUCK_MS)
    abandon(ctx);
}

/* The first stop signal stops the job (TERM, grace, KILL), a later one
 * kills it at once; either way the job's output still goes out, unless the
 * reader takes nothing for STUCK_MS. A signal after the job ended stops the
 * wait for the output to be written. */
static void on_signal(uv_signal_t *h, int signum)
{
  struct run_ctx *ctx = h->data;
  int first = !ctx->signal && !ctx->cancel_signal;

  if (ctx->closing)
    return;
  if (!ctx->signal)
    ctx->signal = signum;
  if (ctx->job_done) {
    abandon(ctx);
    return;
  }
  if (ctx->e && first) {
    ctx->cancel_signal = signum;
    log_info("stopping the job", "signal=%d", signum);
    exec_cancel(ctx->e, UINT64_MAX); /* the job's kill grace: --kill-grace */
  } else if (ctx->e) {
    log_info("killing the job", "signal=%d", signum);
    exec_cancel(ctx->e, 0);
  }
  if (!ctx->stuck_timer_on) {
    /* From now on a reader that takes nothing does not hold drover. */
    uv_timer_init(ctx->loop, &ctx->stuck_timer);
    ctx->stuck_timer.data = ctx;
    uv_timer_start(&ctx->stuck_timer, on_stuck_timer, STUCK_TICK_MS, STUCK_TICK_MS);
    ctx->stuck_timer_on = 1;
  }
}

/* A signal that cannot be caught here (a tool such as valgrind keeps some
 * real-time signals for itself) is skipped, not fatal: the rest still stop
 * the job. */
static int start_signals(struct run_ctx *ctx)
{
  int list[MAX_SIGNALS], n = 0, rc;

  for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++)
    list[n++] = stop_signals[i];
  for (int s = SIGRTMIN; s <= SIGRTMAX && n < MAX_SIGNALS; s++)
    list[n++] = s;
  for (int i = 0; i < n; i++) {
    uv_signal_t *h = &ctx->sigs[ctx->nsigs];
    if ((rc = uv_signal_init(ctx->loop, h)) < 0)
      return rc;
    h->data = ctx;
    ctx->nsigs++;
    if ((rc = uv_signal_start(h, on_signal, list[i])) < 0)
      log_debug("cannot catch a signal; it will not stop the job", "signal=%d error=%s", list[i],
                uv_strerror(rc));
  }
  return 0;
}

int cli_run(int argc, char **argv)
{
  struct run_opts o;
  struct cfg_result res;
  memset(&o, 0, sizeof(o));
  memset(&res, 0, sizeof(res));

  if (cfg_wants_help(run_opts_table, NOPTS, argc, argv)) {
    cfg_usage(stdout, "run", run_args, run_summary, run_opts_table, NOPTS);
    return CLI_EXIT_OK;
  }
  if (cfg_load("run", run_opts_table, NOPTS, &o, argc, argv, NULL, &res) < 0) {
    return cli_usage_error("run", run_args, run_summary, run_opts_table, NOPTS, "%s", res.err);
  }
  int code = CLI_EXIT_USAGE;
  int tool = (o.job.tool && *o.job.tool) || o.job.args;
  if (res.argi >= argc && !tool && !(o.job.image && *o.job.image)) {
    cli_usage_error("run", run_args, run_summary, run_opts_table, NOPTS,
                    "no command given: drover run [options] -- CMD [ARGS...]");
    goto out;
  }
  if (o.job.exec && o.job.shell) {
    cli_usage_error("run", run_args, run_summary, run_opts_table, NOPTS,
                    "--exec and --shell contradict each other: give one of them");
    goto out;
  }
  char err[512];
  if (jobopts_check_local(run_opts_table, NOPTS, &res, err, sizeof(err)) < 0) {
    cli_usage_error("run", run_args, run_summary, run_opts_table, NOPTS, "%s", err);
    goto out;
  }
  if (o.job.image && *o.job.image) {
    char path[256];
    if (dockerhttp_socket_path(o.docker_host, path, sizeof(path)) < 0) {
      dockerhttp_host_error(o.docker_host, err, sizeof(err));
      fprintf(stderr, "error: %s\n", err);
      goto out;
    }
  }
  cfg_common_apply(&o.common);
  if (tool && tools_policy_setup(&o.tools, err, sizeof(err)) < 0) {
    cli_usage_error("run", run_args, run_summary, run_opts_table, NOPTS, "%s", err);
    goto out;
  }

  struct job j;
  if (jobopts_job(&o.job, argc - res.argi, argv + res.argi, &j, err, sizeof(err)) < 0) {
    fprintf(stderr, "error: %s\n", err);
    goto out;
  }
  tools_job_prepare(&j, &o.tools);

  /* EPIPE on our stdout is handled (the job is stopped); without this the
   * signal would kill drover and leave the job running on its own. */
  signal(SIGPIPE, SIG_IGN);

  /* The job's cgroup goes under ours, in a group of this run's own. */
  struct sbx *sbx = NULL;
  char name[32];
  snprintf(name, sizeof(name), "run-%d", (int)getpid());
  struct sbx_config sc = {
      .cgroups = sbx_cg_mode_parse(o.cgroups),
      .cgroup_parent = o.cgroup_parent && *o.cgroup_parent ? o.cgroup_parent : NULL,
      .name = name,
      .log_what = "run",
  };
  if (sbx_new(&sc, &sbx, err, sizeof(err)) < 0) {
    fprintf(stderr, "error: %s\n", err);
    job_release(&j);
    goto out;
  }

  uv_loop_t loop;
  /* Orphans of a job (a killed group's grandchildren) must be reaped by us:
   * PID 1 of a container often reaps nothing. */
  if (exec_become_subreaper() < 0)
    log_warn("cannot become child subreaper; orphaned job processes may linger", "pid=%d",
             (int)getpid());
  uv_loop_init(&loop);
  struct run_ctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  ctx.loop = &loop;
  ctx.json = o.json;

  uv_timer_init(&loop, &ctx.batch_timer);
  ctx.batch_timer.data = &ctx;
  ctx.batch_timer_on = 1;
  int rc = outwriter_new(&loop, QUEUE_HIGH, QUEUE_LOW, on_writer, &ctx, &ctx.w);
  if (rc < 0)
    uv_close((uv_handle_t *)&ctx.batch_timer, NULL);
  else if ((rc = start_signals(&ctx)) < 0)
    close_all(&ctx);
  if (rc < 0) {
    fprintf(stderr, "error: cannot start: %s\n", uv_strerror(rc));
  } else {
    static const struct exec_ops ops = {
        .on_line = on_line, .on_exit = on_exit_cb, .on_data = on_data};
    /* The job reads our stdin, as with timeout(1) or nice; its output
     * comes as read, for a byte-exact passthrough. */
    struct exec_opts eo = {.raw_output = 1,
                           .set_stdin = 1,
                           .fd_stdin = 0,
                           .sandbox = sbx,
                           .docker_host = o.docker_host};
    rc = exec_start(&loop, &j, &eo, &ops, &ctx, &ctx.e);
    if (rc < 0) {
      fprintf(stderr, "error: cannot start the job: %s\n", strerror(-rc));
      close_all(&ctx);
    }
  }
  job_release(&j);
  code = 125;
  uv_run(&loop, UV_RUN_DEFAULT);
  exec_loop_done(&loop);
  uv_run(&loop, UV_RUN_DEFAULT); /* the closes it made */
  uv_loop_close(&loop);
  sbx_free(sbx);
  if (rc == 0)
    code = ctx.code;
out:
  tools_policy_release(&o.tools);
  cfg_release(run_opts_table, NOPTS, &o, &res);
  return code;
}
