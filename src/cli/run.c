/* run.c - `drover run -- CMD [ARGS...]`: runs one job here and now, its output
 * live on the terminal, and exits with the job's code (as timeout(1) does). */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "exec/exec.h"
#include "job/job.h"
#include "job/result.h"

struct run_opts {
  struct cfg_common common;
  uint64_t timeout_ms;
  struct cfg_list env;
  char *workdir;
  int json;
  int exec;
  uint64_t kill_grace_ms;
};

/* The common options by hand rather than CFG_COMMON_OPTS: same keys, but
 * `drover run` logs only warnings by default, so that a command's output is
 * all a user sees. */
static const struct cfg_opt run_opts_table[] = {
    {"log-level", 0, CFG_ENUM, offsetof(struct run_opts, common.log_level), "warn",
     "debug|info|warn|error", 0, 0, "LEVEL", "least severe message to log (debug shows \"$ cmd\")"},
    {"log-format", 0, CFG_ENUM, offsetof(struct run_opts, common.log_format), "text", "text|json",
     0, 0, "FORMAT", "log as text or one JSON object per line"},
    {"timeout", 0, CFG_DURATION, offsetof(struct run_opts, timeout_ms), "0", NULL, 0, 0, "D",
     "stop the job after D and exit 124 (0: no limit)"},
    {"env", 'e', CFG_LIST, offsetof(struct run_opts, env), NULL, NULL, 0, 0, "K=V",
     "set a variable in the job's environment"},
    {"workdir", 'C', CFG_STRING, offsetof(struct run_opts, workdir), NULL, NULL, 0, 0, "DIR",
     "run the job in DIR"},
    {"json", 0, CFG_BOOL, offsetof(struct run_opts, json), NULL, NULL, 0, 0, NULL,
     "print the result document as the last line of stdout"},
    {"exec", 0, CFG_BOOL, offsetof(struct run_opts, exec), NULL, NULL, 0, 0, NULL,
     "run CMD ARGS as they are, without a shell"},
    {"kill-grace", 0, CFG_DURATION, offsetof(struct run_opts, kill_grace_ms), "10s", NULL, 0, 0,
     "D", "on timeout or Ctrl-C, time from SIGTERM to SIGKILL"},
};
#define NOPTS ARRAY_SIZE(run_opts_table)

static const char run_summary[] =
    "runs CMD here as a job: by default the words joined by spaces as a bash command, with\n"
    "--exec as a program and its arguments. Its stdout and stderr go to drover's as they come.\n"
    "Exit code: the job's own; 128+N when it died of signal N; 124 on timeout; 125 when it\n"
    "could not start. Ctrl-C or SIGTERM stops the job (SIGTERM, --kill-grace, SIGKILL) and\n"
    "exits 128+N for that signal; a second signal kills it at once. --json keeps the exit code.";

struct run_ctx {
  uv_signal_t sigint, sigterm;
  struct exec *e;
  int done;
  int cancel_signal; /* the first signal that cancelled the job, 0 if none */
  int out_closed[2]; /* our stdout/stderr went away (EPIPE) */
  int json;
  int code;
};

/* Writes every byte, waiting when fd is non-blocking (a terminal or pipe
 * shared with a process that set O_NONBLOCK): output must not be lost.
 * Returns 0 or -errno. */
static int write_iov(int fd, struct iovec *iov, int n)
{
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, -1);
        continue;
      }
      return -errno;
    }
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

static void on_line(struct exec *e, void *ud, enum job_stream stream, int64_t ts_us,
                    const char *data, size_t len, int partial)
{
  struct run_ctx *ctx = ud;
  int which;
  if (stream == JOB_STDOUT)
    which = 0;
  else if (stream == JOB_STDERR)
    which = 1;
  else if (log_enabled(LOG_DEBUG))
    which = 1; /* "$ command": only when asked for */
  else
    return;
  if (ctx->out_closed[which])
    return;
  /* One writev per line: the line and its newline arrive together, and
   * nothing waits in a buffer of ours while the job runs. */
  struct iovec iov[2] = {{(void *)data, len}, {"\n", partial ? 0 : 1}};
  int rc = write_iov(which ? 2 : 1, iov, 2);
  if (rc == -EPIPE) {
    /* Like a pipeline whose reader left: stop the job. */
    ctx->out_closed[which] = 1;
    if (!ctx->cancel_signal) {
      ctx->cancel_signal = SIGPIPE;
      exec_cancel(e, UINT64_MAX);
    }
  }
}

static void print_json(const struct job *j, const struct job_result *r)
{
  char *doc = job_result_to_json(j, r, NULL);
  if (!doc)
    return;
  /* One line, so that `drover run --json ... | tail -n 1` is the document. */
  json_t *v = json_loads(doc, 0, NULL);
  char *line = v ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  fflush(stdout);
  const char *text = line ? line : doc;
  struct iovec iov[2] = {{(void *)text, strlen(text)}, {"\n", 1}};
  write_iov(1, iov, 2);
  free(line);
  free(doc);
}

static void on_exit_cb(struct exec *e, void *ud, const struct job_result *r)
{
  struct run_ctx *ctx = ud;
  if (r->error)
    fprintf(stderr, "error: %s\n", r->error);
  if (r->status == JOB_CANCELLED && ctx->cancel_signal)
    ctx->code = 128 + ctx->cancel_signal;
  else
    ctx->code = job_result_exit_code(r);
  if (ctx->json)
    print_json(exec_job(e), r);
  ctx->done = 1;
  ctx->e = NULL;
  uv_close((uv_handle_t *)&ctx->sigint, NULL);
  uv_close((uv_handle_t *)&ctx->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct run_ctx *ctx = h->data;
  if (!ctx->e)
    return;
  if (!ctx->cancel_signal) {
    ctx->cancel_signal = signum;
    log_info("stopping the job", "signal=%d", signum);
    exec_cancel(ctx->e, UINT64_MAX); /* the job's kill grace: --kill-grace */
  } else {
    log_info("killing the job", "signal=%d", signum);
    exec_cancel(ctx->e, 0);
  }
}

/* Fills j from the options and the command words. Returns 0, or -1 with a
 * message printed. */
static int build_job(struct job *j, const struct run_opts *o, int argc, char **argv)
{
  for (size_t i = 0; i < o->env.n; i++) {
    const char *kv = o->env.items[i];
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
      fprintf(stderr, "error: --env \"%s\": must be NAME=VALUE, like --env DEBUG=1\n", kv);
      return -1;
    }
  }
  job_init(j);
  j->timeout_ms = o->timeout_ms;
  j->kill_grace_ms = o->kill_grace_ms;
  if (o->workdir)
    j->workdir = xstrdup(o->workdir);
  if (o->env.n) {
    j->env = xcalloc(o->env.n, sizeof(*j->env));
    for (size_t i = 0; i < o->env.n; i++) {
      const char *kv = o->env.items[i], *eq = strchr(kv, '=');
      j->env[i].key = xstrndup(kv, (size_t)(eq - kv));
      j->env[i].value = xstrdup(eq + 1);
    }
    j->nenv = o->env.n;
  }
  if (o->exec) {
    j->kind = JOB_EXEC;
    j->argc = (size_t)argc;
    j->argv = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++)
      j->argv[i] = xstrdup(argv[i]);
  } else {
    size_t len = 0;
    for (int i = 0; i < argc; i++)
      len += strlen(argv[i]) + 1;
    char *cmd = xmalloc(len + 1), *p = cmd;
    for (int i = 0; i < argc; i++) {
      size_t n = strlen(argv[i]);
      if (i)
        *p++ = ' ';
      memcpy(p, argv[i], n);
      p += n;
    }
    *p = '\0';
    j->kind = JOB_SHELL;
    free(j->command);
    j->command = cmd;
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
    cfg_usage(stdout, "run", "-- CMD [ARGS...]", run_summary, run_opts_table, NOPTS);
    return CLI_EXIT_OK;
  }
  if (cfg_load("run", run_opts_table, NOPTS, &o, argc, argv, NULL, &res) < 0) {
    return cli_usage_error("run", "-- CMD [ARGS...]", run_summary, run_opts_table, NOPTS, "%s",
                           res.err);
  }
  int code = CLI_EXIT_USAGE;
  if (res.argi >= argc) {
    cli_usage_error("run", "-- CMD [ARGS...]", run_summary, run_opts_table, NOPTS,
                    "no command given: drover run [options] -- CMD [ARGS...]");
    goto out;
  }
  cfg_common_apply(&o.common);

  struct job j;
  if (build_job(&j, &o, argc - res.argi, argv + res.argi) < 0)
    goto out;

  /* EPIPE on our stdout is handled (the job is stopped); without this the
   * signal would kill drover and leave the job running on its own. */
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  /* Orphans of a job (a killed group's grandchildren) must be reaped by us:
   * PID 1 of a container often reaps nothing. */
  if (exec_become_subreaper() < 0)
    log_warn("cannot become child subreaper; orphaned job processes may linger", "pid=%d",
             (int)getpid());
  uv_loop_init(&loop);
  struct run_ctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  ctx.json = o.json;
  uv_signal_init(&loop, &ctx.sigint);
  uv_signal_init(&loop, &ctx.sigterm);
  ctx.sigint.data = ctx.sigterm.data = &ctx;
  uv_signal_start(&ctx.sigint, on_signal, SIGINT);
  uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);

  static const struct exec_ops ops = {on_line, NULL, on_exit_cb};
  struct exec_opts eo = {0};
  int rc = exec_start(&loop, &j, &eo, &ops, &ctx, &ctx.e);
  job_release(&j);
  if (rc < 0) {
    fprintf(stderr, "error: cannot start the job: %s\n", strerror(-rc));
    code = 125;
    uv_close((uv_handle_t *)&ctx.sigint, NULL);
    uv_close((uv_handle_t *)&ctx.sigterm, NULL);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (rc == 0)
    code = ctx.code;
out:
  cfg_release(run_opts_table, NOPTS, &o, &res);
  return code;
}
