/* client.c - the CLI's link to the coordinator (see client.h). */
#include "cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"

/* ---- arguments ---- */

/* Whether arg (an option as written) takes its value from the next word. */
static int takes_value(const struct cfg_opt *opts, size_t n, const char *a)
{
  if (strchr(a, '='))
    return 0;
  if (!strcmp(a, "--config"))
    return 1;
  for (size_t i = 0; i < n; i++) {
    int match = (a[1] == '-' && !strcmp(a + 2, opts[i].key)) ||
                (a[1] != '-' && a[2] == '\0' && opts[i].short_name == a[1]);
    if (match)
      return opts[i].type != CFG_BOOL;
  }
  return 0;
}

/* Reorders argv so that every option (and its value) comes before the other
 * words, which follow a "--": cfg_load stops at the first word that is not
 * an option, and `drover job logs ID -f` must mean -f. A "--" already
 * there ends the options as usual. Returns a new array (free it; the
 * strings are argv's). */
static char **permute(const struct cfg_opt *opts, size_t n, int argc, char **argv, int *out_argc)
{
  char **out = xcalloc((size_t)argc + 2, sizeof(char *));
  char **words = xcalloc((size_t)argc + 1, sizeof(char *));
  int k = 0, nw = 0, i;
  out[k++] = argv[0];
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (a[0] == '-' && a[1] != '\0') {
      out[k++] = argv[i];
      if (takes_value(opts, n, a) && i + 1 < argc)
        out[k++] = argv[++i];
    } else {
      words[nw++] = argv[i];
    }
  }
  out[k++] = "--";
  for (int w = 0; w < nw; w++)
    out[k++] = words[w];
  for (; i < argc; i++)
    out[k++] = argv[i];
  free(words);
  *out_argc = k;
  return out;
}

int client_parse(const struct client_cmd *cmd, void *target, struct client_opts *co, int argc,
                 char **argv, struct cfg_result *res, struct client_args *args, int *code)
{
  char **av = argv;
  int ac = argc;
  memset(args, 0, sizeof(*args));
  memset(res, 0, sizeof(*res));
  if (cmd->anywhere)
    av = permute(cmd->opts, cmd->n, argc, argv, &ac);
  int go = 0;
  if (cfg_wants_help(cmd->opts, cmd->n, ac, av)) {
    cfg_usage(stdout, cmd->name, cmd->args, cmd->summary, cmd->opts, cmd->n);
    *code = CLI_EXIT_OK;
  } else if (cfg_load(cmd->name, cmd->opts, cmd->n, target, ac, av, NULL, res) < 0) {
    *code = cli_usage_error(cmd->name, cmd->args, cmd->summary, cmd->opts, cmd->n, "%s", res->err);
  } else {
    cfg_common_apply(&co->common);
    go = 1;
    args->v = av + res->argi;
    args->n = ac - res->argi;
  }
  if (av != argv) {
    if (go)
      args->own = av;
    else
      free(av);
  }
  return go;
}

void client_parse_release(const struct client_cmd *cmd, void *target, struct cfg_result *res,
                          struct client_args *args)
{
  cfg_release(cmd->opts, cmd->n, target, res);
  free(args->own);
  memset(args, 0, sizeof(*args));
}

/* ---- the connection ---- */

static void on_log(void *ud, const char *line)
{
  (void)ud;
  log_debug("rpc", "%s", line);
}

static void on_connect(rpc_client *c, int status, void *ud)
{
  struct client *cl = ud;
  (void)c;
  if (status == 0)
    cl->connected = 1;
  log_debug("coordinator connection", "addr=%s status=%s", cl->addr,
            status ? rpc_strerror(status) : "ok");
}

int client_open(struct client *cl, uv_loop_t *loop, const char *addr)
{
  cl->loop = loop;
  cl->rpc = NULL;
  cl->connected = cl->closed = 0;
  snprintf(cl->addr, sizeof(cl->addr), "%s", addr && *addr ? addr : CLIENT_DEFAULT_ADDR);
  struct rpc_client_opts o = {
      .target = cl->addr,
      /* Results can be large: a job list of thousands, a log batch. */
      .max_recv_msg = 64u << 20,
      .on_log = on_log,
      .ud = cl,
  };
  int rc = rpc_client_new(loop, &o, on_connect, &cl->rpc);
  if (rc < 0) {
    fprintf(stderr,
            "error: --addr '%s': %s: give HOST:PORT or unix:PATH (--addr / DROVER_ADDR, default "
            "%s)\n",
            cl->addr, rpc_strerror(rc), CLIENT_DEFAULT_ADDR);
    cl->closed = 1;
    return -1;
  }
  return 0;
}

int client_begin(struct client *cl, const char *addr)
{
  memset(cl, 0, sizeof(*cl));
  uv_loop_init(&cl->own);
  cl->own_loop = 1;
  if (client_open(cl, &cl->own, addr) < 0) {
    uv_loop_close(&cl->own);
    cl->own_loop = 0;
    return -1;
  }
  return 0;
}

void client_close(struct client *cl)
{
  if (!cl->closed && cl->rpc) {
    cl->closed = 1;
    rpc_client_close(cl->rpc, NULL);
  }
}

void client_end(struct client *cl)
{
  client_close(cl);
  if (cl->own_loop) {
    uv_run(&cl->own, UV_RUN_DEFAULT);
    if (uv_loop_close(&cl->own) != 0)
      log_warn("event loop closed with handles still open", "addr=%s", cl->addr);
    cl->own_loop = 0;
  }
}

int client_start(struct client *cl, const char *method, const ProtobufCMessageDescriptor *resp,
                 const ProtobufCMessage *req, const struct rpc_handlers *h, void *ud,
                 rpc_call **out)
{
  struct rpc_call_opts o = {.method = method, .response = resp, .h = *h, .ud = ud};
  rpc_call *call = NULL;
  int rc = req ? rpc_call_unary(cl->rpc, &o, req, &call) : rpc_call_start(cl->rpc, &o, &call);
  if (rc < 0) {
    fprintf(stderr, "error: cannot call the coordinator at '%s': %s\n", cl->addr, rpc_strerror(rc));
    return -1;
  }
  if (out)
    *out = call;
  return 0;
}

/* ---- unary calls ---- */

struct unary {
  int done;
  ProtobufCMessage *reply;
  int code;
  char *message;
};

static void unary_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct unary *u = ud;
  (void)call;
  if (!u->reply)
    u->reply = rpc_msg_take(m);
}

static void unary_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct unary *u = ud;
  (void)call;
  u->done = 1;
  u->code = st->code;
  u->message = st->message ? xstrdup(st->message) : NULL;
}

int client_unary(struct client *cl, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp, ProtobufCMessage **out)
{
  static const struct rpc_handlers h = {.on_message = unary_message, .on_done = unary_done};
  struct unary u = {0};
  *out = NULL;
  if (client_start(cl, method, resp, req, &h, &u, NULL) < 0)
    return -1;
  while (!u.done)
    uv_run(cl->loop, UV_RUN_ONCE);
  int rc = 0;
  if (u.code == RPC_OK && !u.reply) {
    fprintf(stderr, "error: the coordinator at '%s' sent no reply to %s\n", cl->addr, method);
    rc = -1;
  } else if (u.code != RPC_OK) {
    struct rpc_status st = {u.code, u.message};
    client_report(cl, &st, NULL);
    rc = -1;
  }
  if (rc == 0)
    *out = u.reply;
  else if (u.reply)
    protobuf_c_message_free_unpacked(u.reply, NULL);
  free(u.message);
  return rc;
}

void client_status_text(const struct client *cl, const struct rpc_status *st, const char *prefix,
                        char *buf, size_t len)
{
  const char *msg = st->message && *st->message ? st->message : NULL;
  char pre[300] = "";
  if (prefix)
    snprintf(pre, sizeof(pre), "%s: ", prefix);
  switch (st->code) {
  case RPC_UNAVAILABLE: {
    /* The rpc layer says "cannot connect to 'ADDR': tried ..."; the address
     * is in our own words already. */
    char lead[300];
    snprintf(lead, sizeof(lead), "cannot connect to '%s': ", cl->addr);
    if (msg && !strncmp(msg, lead, strlen(lead)))
      msg += strlen(lead);
    if (cl->connected)
      snprintf(buf, len, "error: %slost the connection to the coordinator at '%s': %s", pre,
               cl->addr, msg ? msg : "connection closed");
    else
      snprintf(buf, len,
               "error: %scannot reach the coordinator at '%s': %s; is 'drover server' or 'drover "
               "dev' running? (--addr / DROVER_ADDR)",
               pre, cl->addr, msg ? msg : "connection failed");
    break;
  }
  case RPC_NOT_FOUND:
  case RPC_INVALID_ARGUMENT:
  case RPC_ALREADY_EXISTS:
  case RPC_FAILED_PRECONDITION:
    snprintf(buf, len, "error: %s%s", pre, msg ? msg : rpc_code_name(st->code));
    break;
  default:
    snprintf(buf, len, "error: %sthe coordinator at '%s' answered %s%s%s", pre, cl->addr,
             rpc_code_name(st->code), msg ? ": " : "", msg ? msg : "");
    break;
  }
}

void client_report(const struct client *cl, const struct rpc_status *st, const char *prefix)
{
  char buf[1200];
  client_status_text(cl, st, prefix, buf, sizeof(buf));
  fflush(stdout);
  fprintf(stderr, "%s\n", buf);
}
