/* server.c - `drover server`: the coordinator (src/coord) as a process, with
 * its signals: SIGTERM, SIGINT or SIGHUP stop it gracefully; a second one
 * exits at once (everything acknowledged is in the store already). */
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
#include "coord/coord.h"

struct server_opts {
  struct cfg_common common;
  struct cfg_list listen;
  char *data;
  uint64_t node_timeout_ms;
};

static const struct cfg_opt server_opts_table[] = {
    CFG_COMMON_OPTS(struct server_opts),
    {"listen", 0, CFG_LIST, offsetof(struct server_opts, listen), "127.0.0.1:7700", NULL, 0, 0,
     "ADDR", "address to serve on: HOST:PORT or unix:PATH"},
    {"data", 0, CFG_STRING, offsetof(struct server_opts, data), "./drover-data", NULL, 0, 0, "DIR",
     "where the store and the job logs live"},
    {"node-timeout", 0, CFG_DURATION, offsetof(struct server_opts, node_timeout_ms), "60s", NULL, 0,
     0, "D", "a node silent this long is lost; its jobs are requeued"},
};
#define NOPTS ARRAY_SIZE(server_opts_table)

static const char server_summary[] =
    "runs the coordinator: agents connect to it (drover agent --coordinator ADDR --token T),\n"
    "the CLI talks to it (drover job ..., drover node ..., drover token create). Jobs, their\n"
    "events, nodes and tokens are kept in DIR/drover.db (SQLite), job output in DIR/logs/.\n"
    "The CLI and API are not authenticated yet: keep --listen on loopback or a unix socket.\n"
    "SIGTERM, SIGINT or SIGHUP stop it gracefully; a second signal exits at once.";

/* Loopback and unix sockets are the only places plain h2c is fine. */
int cli_addr_is_local(const char *addr)
{
  if (!strncmp(addr, "unix:", 5))
    return 1;
  static const char *const local[] = {"127.", "localhost:", "[::1]:", "::1:"};
  for (size_t i = 0; i < ARRAY_SIZE(local); i++)
    if (!strncmp(addr, local[i], strlen(local[i])))
      return 1;
  return 0;
}

struct server_ctx {
  uv_signal_t sigs[3];
  struct coord *coord;
  int stopping;
};

static void stopped(struct coord *c, void *ud)
{
  struct server_ctx *ctx = ud;
  (void)c;
  for (size_t i = 0; i < ARRAY_SIZE(ctx->sigs); i++)
    uv_close((uv_handle_t *)&ctx->sigs[i], NULL);
  log_info("coordinator stopped", "code=%d", 0);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct server_ctx *ctx = h->data;
  if (ctx->stopping) {
    log_warn("second signal: exiting now", "signal=%s", strsignal(signum));
    _exit(1);
  }
  ctx->stopping = 1;
  log_info("signal received; stopping", "signal=%s", strsignal(signum));
  coord_shutdown(ctx->coord, 5000, stopped, ctx);
}

int cli_server(int argc, char **argv)
{
  struct server_opts o;
  struct cfg_result res;
  memset(&o, 0, sizeof(o));
  if (cfg_wants_help(server_opts_table, NOPTS, argc, argv)) {
    cfg_usage(stdout, "server", "", server_summary, server_opts_table, NOPTS);
    return CLI_EXIT_OK;
  }
  if (cfg_load("server", server_opts_table, NOPTS, &o, argc, argv, NULL, &res) < 0)
    return cli_usage_error("server", "", server_summary, server_opts_table, NOPTS, "%s", res.err);
  int code = CLI_EXIT_OK;
  if (res.argi < argc) {
    code = cli_usage_error("server", "", server_summary, server_opts_table, NOPTS,
                           "unexpected argument '%s'", argv[res.argi]);
    goto out;
  }
  cfg_common_apply(&o.common);
  for (size_t i = 0; i < o.listen.n; i++)
    if (!cli_addr_is_local(o.listen.items[i]))
      log_warn("listening beyond loopback WITHOUT TLS OR AUTHENTICATION: anyone who can reach "
               "this address can run commands on every agent",
               "listen=%s", o.listen.items[i]);

  uv_loop_t loop;
  uv_loop_init(&loop);
  struct server_ctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  struct coord_opts co = {
      .data_dir = o.data,
      .listen = (const char *const *)o.listen.items,
      .nlisten = o.listen.n,
      .node_timeout_ms = o.node_timeout_ms,
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
  static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
  signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < ARRAY_SIZE(ctx.sigs); i++) {
    uv_signal_init(&loop, &ctx.sigs[i]);
    ctx.sigs[i].data = &ctx;
    uv_signal_start(&ctx.sigs[i], on_signal, signals[i]);
  }
  /* Scripts and tests wait for this line to know where to connect. */
  printf("drover server listening on %s\n", coord_address(ctx.coord));
  fflush(stdout);
  uv_run(&loop, UV_RUN_DEFAULT);
  coord_free(ctx.coord);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0)
    log_warn("event loop closed with handles still open", "data=%s", o.data);
out:
  cfg_release(server_opts_table, NOPTS, &o, &res);
  return code;
}
