/* agent.c - `drover agent`: for now the stand-alone agent over a jobs directory
 * (src/agent/jobsdir.c); signals turn into a graceful shutdown. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent/jobsdir.h"
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "exec/exec.h"

struct agent_opts {
  struct cfg_common common;
  char *jobs_dir;
  long slots;
  uint64_t shutdown_timeout_ms;
};

static const struct cfg_opt agent_opts_table[] = {
    CFG_COMMON_OPTS(struct agent_opts),
    {"jobs-dir", 0, CFG_STRING, offsetof(struct agent_opts, jobs_dir), NULL, NULL, 0, 0, "DIR",
     "run the job files dropped into DIR (stand-alone, no coordinator)"},
    {"slots", 0, CFG_INT, offsetof(struct agent_opts, slots), NULL, NULL, 1, 1024, "N",
     "jobs run at once (default: the number of CPUs)"},
    {"shutdown-timeout", 0, CFG_DURATION, offsetof(struct agent_opts, shutdown_timeout_ms), "30s",
     NULL, 0, 0, "D", "on SIGTERM or SIGINT, how long running jobs may finish before cancel"},
};
#define NOPTS ARRAY_SIZE(agent_opts_table)

static const char agent_summary[] =
    "runs jobs on this machine. With --jobs-dir DIR it runs the *.json job files dropped into DIR\n"
    "and writes DIR/results/<id>.json, DIR/logs/<id>.log and, while it runs, "
    "DIR/status/<id>.json;\n"
    "job files end in DIR/done/ or DIR/failed/; creating DIR/cancel/<id> cancels job <id>.\n"
    "Queued jobs go back to DIR on shutdown; a job left in DIR/running/ by a crash runs again.\n"
    "SIGTERM or SIGINT: stop taking files, let running jobs finish up to --shutdown-timeout,\n"
    "cancel the rest, exit 0; a second signal cancels running jobs at once.";

struct agent_ctx {
  uv_signal_t sigint, sigterm;
  struct jobsdir *jd;
};

static void on_shutdown(struct jobsdir *jd, void *ud)
{
  struct agent_ctx *ctx = ud;
  (void)jd;
  log_info("agent stopped", "code=%d", 0);
  uv_close((uv_handle_t *)&ctx->sigint, NULL);
  uv_close((uv_handle_t *)&ctx->sigterm, NULL);
  jobsdir_free(jd);
  ctx->jd = NULL;
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct agent_ctx *ctx = h->data;
  log_info("signal received", "signal=%s", strsignal(signum));
  if (ctx->jd)
    jobsdir_shutdown(ctx->jd, on_shutdown, ctx);
}

int cli_agent(int argc, char **argv)
{
  struct agent_opts o;
  struct cfg_result res;
  memset(&o, 0, sizeof(o));
  memset(&res, 0, sizeof(res));

  if (cfg_wants_help(agent_opts_table, NOPTS, argc, argv)) {
    cfg_usage(stdout, "agent", "", agent_summary, agent_opts_table, NOPTS);
    return CLI_EXIT_OK;
  }
  if (cfg_load("agent", agent_opts_table, NOPTS, &o, argc, argv, NULL, &res) < 0) {
    return cli_usage_error("agent", "", agent_summary, agent_opts_table, NOPTS, "%s", res.err);
  }
  int code = CLI_EXIT_OK;
  if (res.argi < argc) {
    code = cli_usage_error("agent", "", agent_summary, agent_opts_table, NOPTS,
                           "unexpected argument '%s'", argv[res.argi]);
    goto out;
  }
  if (!o.jobs_dir || !o.jobs_dir[0]) {
    fprintf(stderr, "error: --jobs-dir is required: drover has no coordinator mode yet; "
                    "run 'drover agent --jobs-dir DIR' (or set DROVER_JOBS_DIR)\n");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  cfg_common_apply(&o.common);

  uv_loop_t loop;
  /* Orphans of a job (a killed group's grandchildren) must be reaped by us:
   * PID 1 of a container often reaps nothing. */
  if (exec_become_subreaper() < 0)
    log_warn("cannot become child subreaper; orphaned job processes may linger", "pid=%d",
             (int)getpid());
  uv_loop_init(&loop);
  struct agent_ctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  struct jobsdir_opts jo = {o.jobs_dir, (unsigned)o.slots, o.shutdown_timeout_ms};
  ctx.jd = jobsdir_new(&loop, &jo);

  uv_signal_init(&loop, &ctx.sigint);
  uv_signal_init(&loop, &ctx.sigterm);
  ctx.sigint.data = ctx.sigterm.data = &ctx;
  uv_signal_start(&ctx.sigint, on_signal, SIGINT);
  uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);

  char err[512];
  if (jobsdir_start(ctx.jd, err, sizeof(err)) < 0) {
    fprintf(stderr, "error: %s\n", err);
    code = CLI_EXIT_ERROR;
    uv_close((uv_handle_t *)&ctx.sigint, NULL);
    uv_close((uv_handle_t *)&ctx.sigterm, NULL);
    jobsdir_free(ctx.jd);
    ctx.jd = NULL;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0)
    log_warn("event loop closed with handles still open", "dir=%s", o.jobs_dir);
out:
  cfg_release(agent_opts_table, NOPTS, &o, &res);
  return code;
}
