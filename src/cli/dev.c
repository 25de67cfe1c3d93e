/* dev.c - `drover dev`: a coordinator and one agent in one process, on one
 * loop, on the embedded SQLite store: everything `drover job ...` needs, with
 * nothing to configure. The agent talks to the coordinator over the real
 * protocol (gRPC on the coordinator's own listener), registered with a token
 * that lives in memory only; its state is DATA/agent.
 *
 * Signals: SIGTERM, SIGINT or SIGHUP stop the agent gracefully (running jobs
 * finish, up to --shutdown-timeout), then the coordinator; a second signal
 * cancels the running jobs at once; a third exits at once. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent/session.h"
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "coord/coord.h"
#include "exec/exec.h"
#include "sandbox/sandbox.h"
#include "tools/policy.h"

struct dev_opts {
  struct cfg_common common;
  struct cfg_list listen;
  char *data;
  long slots;
  uint64_t shutdown_timeout_ms;
  char *docker_host;
  struct tools_policy tools; /* what the agent's tool jobs may do */
};

static const struct cfg_opt dev_opts_table[] = {
    CFG_COMMON_OPTS(struct dev_opts),
    {"listen", 0, CFG_LIST, offsetof(struct dev_opts, listen), "127.0.0.1:7700", NULL, 0, 0, "ADDR",
     "address to serve on: HOST:PORT or unix:PATH"},
    {"data", 0, CFG_STRING, offsetof(struct dev_opts, data), "./drover-data", NULL, 0, 0, "DIR",
     "the store, job logs and the agent's state (DIR/agent)"},
    {"slots", 0, CFG_INT, offsetof(struct dev_opts, slots), "0", NULL, 0, 1024, "N",
     "jobs the agent runs at once (0: the number of CPUs)"},
    {"shutdown-timeout", 0, CFG_DURATION, offsetof(struct dev_opts, shutdown_timeout_ms), "30s",
     NULL, 0, 0, "D", "on SIGTERM or SIGINT, how long running jobs may finish before cancel"},
    {"docker-host", 0, CFG_STRING, offsetof(struct dev_opts, docker_host), NULL, NULL, 0, 0, "URL",
     "container jobs' Docker engine socket, unix:///PATH (default: $DOCKER_HOST, else "
     "unix:///var/run/docker.sock)"},
    TOOLS_POLICY_TABLE(struct dev_opts, tools),
};
#define NOPTS ARRAY_SIZE(dev_opts_table)

static const char dev_summary[] =
    "runs a coordinator and one agent on this machine in one process, on an embedded SQLite\n"
    "store in DIR: try drover, or run jobs here through the coordinator's API. Then, in another\n"
    "shell: drover job run -- make test, drover job list, drover node list (--addr ADDR when\n"
    "--listen is not the default). Not authenticated: keep --listen on loopback.\n"
    "SIGTERM, SIGINT or SIGHUP stop it gracefully; a second signal cancels running jobs,\n"
    "a third exits at once.";

struct dev_ctx {
  uv_loop_t *loop;
  uv_signal_t sigs[3];
  struct coord *coord;
  struct agent_session *agent;
  int signals, code, stopping;
};

static void coord_stopped(struct coord *c, void *ud)
{
  struct dev_ctx *ctx = ud;
  (void)c;
  for (size_t i = 0; i < ARRAY_SIZE(ctx->sigs); i++)
    uv_close((uv_handle_t *)&ctx->sigs[i], NULL);
  log_info("drover dev stopped", "code=%d", ctx->code);
}

static void agent_closed(void *ud)
{
  struct dev_ctx *ctx = ud;
  ctx->agent = NULL;
  coord_shutdown(ctx->coord, 2000, coord_stopped, ctx);
}

/* The agent is over: after our shutdown, or by itself (refused, its state
 * unusable). Either way the coordinator follows it. */
static void agent_stopped(struct agent_session *s, int code, const char *msg, void *ud)
{
  struct dev_ctx *ctx = ud;
  if (code < 0) {
    fprintf(stderr, "error: the agent stopped: %s\n", msg ? msg : "unknown reason");
    ctx->code = CLI_EXIT_ERROR;
  }
  ctx->stopping = 1;
  agent_session_close(s, agent_closed, ctx);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct dev_ctx *ctx = h->data;
  ctx->signals++;
  if (ctx->signals >= 3) {
    log_warn("third signal: exiting now", "signal=%s", strsignal(signum));
    _exit(1);
  }
  log_info(ctx->signals == 1 ? "signal received; stopping" : "second signal: cancelling jobs",
           "signal=%s", strsignal(signum));
  /* A second call hurries the stop under way (agent_session_shutdown). */
  if (ctx->agent && !ctx->stopping)
    agent_session_shutdown(ctx->agent);
}

int cli_dev(int argc, char **argv)
{
  struct dev_opts o;
  struct cfg_result res;
  memset(&o, 0, sizeof(o));
  if (cfg_wants_help(dev_opts_table, NOPTS, argc, argv)) {
    cfg_usage(stdout, "dev", "", dev_summary, dev_opts_table, NOPTS);
    return CLI_EXIT_OK;
  }
  if (cfg_load("dev", dev_opts_table, NOPTS, &o, argc, argv, NULL, &res) < 0)
    return cli_usage_error("dev", "", dev_summary, dev_opts_table, NOPTS, "%s", res.err);
  int code = CLI_EXIT_OK;
  if (res.argi < argc) {
    code = cli_usage_error("dev", "", dev_summary, dev_opts_table, NOPTS,
                           "unexpected argument '%s'", argv[res.argi]);
    goto out;
  }
  cfg_common_apply(&o.common);
  char terr[512];
  if (tools_policy_setup(&o.tools, terr, sizeof(terr)) < 0) {
    code = cli_usage_error("dev", "", dev_summary, dev_opts_table, NOPTS, "%s", terr);
    goto out;
  }
  for (size_t i = 0; i < o.listen.n; i++)
    if (!cli_addr_is_local(o.listen.items[i]))
      log_warn("listening beyond loopback WITHOUT TLS OR AUTHENTICATION: anyone who can reach "
               "this address can run commands here",
               "listen=%s", o.listen.items[i]);
  signal(SIGPIPE, SIG_IGN);
  if (exec_become_subreaper() < 0)
    log_warn("cannot become child subreaper; orphaned job processes may linger", "pid=%d",
             (int)getpid());

  uv_loop_t loop;
  uv_loop_init(&loop);
  struct dev_ctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  ctx.loop = &loop;
  struct coord_opts co = {
      .data_dir = o.data,
      .listen = (const char *const *)o.listen.items,
      .nlisten = o.listen.n,
  };
  char err[512];
  if (coord_start(&loop, &co, &ctx.coord, err, sizeof(err)) < 0) {
    fprintf(stderr, "error: %s\n", err);
    code = CLI_EXIT_ERROR;
    if (ctx.coord) {
      coord_shutdown(ctx.coord, 0, NULL, NULL);
      uv_run(&loop, UV_RUN_DEFAULT);
      coord_free(ctx.coord);
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    goto out;
  }

  /* Jobs get their cgroups as under `drover agent` (sandbox, issue 8),
   * named after the data dir so that the next start sweeps this one's. */
  struct sbx *sbx = NULL;
  char sbx_name[32];
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *p = o.data; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  snprintf(sbx_name, sizeof(sbx_name), "dev-%08x", h);
  struct sbx_config sc = {.name = sbx_name, .enter = 1, .protect = 1, .log_what = "dev"};
  if (sbx_new(&sc, &sbx, err, sizeof(err)) == 0) {
    sbx_sweep(sbx);
    int wrc = sbx_watchdog(sbx);
    if (wrc < 0)
      log_warn("cannot start the watchdog that kills jobs' processes if drover dev dies", "err=%s",
               strerror(-wrc));
  }

  char *token = coord_ephemeral_token(ctx.coord, 1);
  char *state = xasprintf("%s/agent", o.data);
  char host[256] = "dev";
  if (gethostname(host, sizeof(host) - 1) < 0)
    snprintf(host, sizeof(host), "dev");
  struct agent_session_opts ao = {
      .coordinator = coord_address(ctx.coord),
      .token = token,
      .name = host,
      .slots = (unsigned)o.slots,
      .prefetch = 1,
      .state_dir = state,
      .shutdown_timeout_ms = o.shutdown_timeout_ms,
      /* The only node: a busy machine must not leave every job queued. */
      .busy_cpu = 100,
      .sandbox = sbx,
      .docker_host = o.docker_host,
      .tools = &o.tools,
      .on_stopped = agent_stopped,
      .ud = &ctx,
  };
  int rc = agent_session_start(&loop, &ao, &ctx.agent, err, sizeof(err));
  free(token);
  free(state);
  if (rc < 0) {
    fprintf(stderr, "error: %s\n", err);
    ctx.code = CLI_EXIT_ERROR;
    ctx.stopping = 1;
    coord_shutdown(ctx.coord, 0, coord_stopped, &ctx);
  } else {
    /* Scripts and tests wait for this line to know where to connect. */
    printf("drover dev listening on %s\n", coord_address(ctx.coord));
    fflush(stdout);
  }
  static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
  for (size_t i = 0; i < ARRAY_SIZE(ctx.sigs); i++) {
    uv_signal_init(&loop, &ctx.sigs[i]);
    ctx.sigs[i].data = &ctx;
    uv_signal_start(&ctx.sigs[i], on_signal, signals[i]);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  coord_free(ctx.coord);
  exec_loop_done(&loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0)
    log_warn("event loop closed with handles still open", "data=%s", o.data);
  sbx_free(sbx);
  code = ctx.code;
out:
  tools_policy_release(&o.tools);
  cfg_release(dev_opts_table, NOPTS, &o, &res);
  return code;
}
