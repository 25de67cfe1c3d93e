/* client.c - a client connection (resolve, connect, TLS) and starting calls. */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rpc_client {
  uv_loop_t *loop;
  struct rpc_client_opts o;
  struct rpc_addr addr;
  struct rpc_conn *conn; /* NULL once disconnected */
  SSL_CTX *tls;
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  unsigned resolving : 1, connecting : 1, closing : 1;
  void (*on_connect)(rpc_client *, int, void *);
  void (*close_cb)(rpc_client *, void *);
};

static void client_free(struct rpc_client *c)
{
  if (c->tls)
    SSL_CTX_free(c->tls);
  free(c);
}

static void maybe_close_done(struct rpc_client *c)
{
  if (!c->closing || c->conn || c->resolving || c->connecting)
    return;
  if (c->close_cb)
    c->close_cb(c, c->o.ud);
  client_free(c);
}

static void connect_timeout_cb(uv_timer_t *t)
{
  struct rpc_conn *conn = t->data;
  if (conn->ready || conn->closing)
    return;
  rpc_conn_logf(conn, "connect timeout peer=%s", conn->peer);
  rpc_conn_fail(conn, RPC_E_TIMEOUT, RPC_UNAVAILABLE);
}

static void conn_ready(struct rpc_conn *conn, int err)
{
  struct rpc_client *c = conn->owner_client;
  uv_timer_stop(&conn->goaway_timer);
  if (c->on_connect && !c->closing) {
    void (*cb)(rpc_client *, int, void *) = c->on_connect;
    c->on_connect = NULL;
    cb(c, err, c->o.ud);
  }
}

static void conn_closed(struct rpc_conn *conn, int err)
{
  struct rpc_client *c = conn->owner_client;
  c->conn = NULL;
  if (c->closing) {
    maybe_close_done(c);
    return;
  }
  if (c->o.on_disconnect)
    c->o.on_disconnect(c, err ? err : RPC_E_CLOSED, c->o.ud);
}

static void connect_cb(uv_connect_t *req, int status)
{
  struct rpc_client *c = req->data;
  c->connecting = 0;
  if (!c->conn) {
    maybe_close_done(c);
    return;
  }
  if (status < 0) {
    if (status != UV_ECANCELED)
      rpc_conn_logf(c->conn, "connect failed target=%s error=\"%s\"", c->o.target,
                    uv_strerror(status));
    rpc_conn_fail(c->conn, status, RPC_UNAVAILABLE);
    return;
  }
  if (c->conn->io.handle.type == UV_TCP)
    uv_tcp_nodelay(&c->conn->io.tcp, 1);
  int r = rpc_conn_start(c->conn);
  if (r < 0)
    rpc_conn_fail(c->conn, r, RPC_UNAVAILABLE);
}

static void start_tcp(struct rpc_client *c, const struct sockaddr *sa)
{
  struct rpc_conn *conn = c->conn;
  uv_tcp_init(c->loop, &conn->io.tcp);
  rpc_conn_attach_io(conn);
  rpc_addr_format(sa, conn->peer, sizeof(conn->peer));
  c->creq.data = c;
  int r = uv_tcp_connect(&c->creq, &conn->io.tcp, sa, connect_cb);
  if (r < 0) {
    rpc_conn_fail(conn, r, RPC_UNAVAILABLE);
    return;
  }
  c->connecting = 1;
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct rpc_client *c = req->data;
  c->resolving = 0;
  if (!c->conn) {
    uv_freeaddrinfo(res);
    maybe_close_done(c);
    return;
  }
  if (status < 0 || !res) {
    rpc_conn_logf(c->conn, "cannot resolve target=%s error=\"%s\"", c->o.target,
                  uv_strerror(status));
    uv_freeaddrinfo(res);
    rpc_conn_fail(c->conn, status < 0 ? status : UV_EAI_NONAME, RPC_UNAVAILABLE);
    return;
  }
  start_tcp(c, res->ai_addr);
  uv_freeaddrinfo(res);
}

int rpc_client_new(uv_loop_t *loop, const struct rpc_client_opts *opts,
                   void (*on_connect)(rpc_client *, int status, void *ud), rpc_client **out)
{
  rpc_conn_ignore_sigpipe();
  struct rpc_client *c = xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->o = *opts;
  c->on_connect = on_connect;
  if (!opts->target || rpc_addr_parse(opts->target, &c->addr) < 0) {
    free(c);
    return RPC_E_INVAL;
  }
  const char *name = NULL;
  if (opts->tls) {
    char err[512];
    c->tls = rpc_tls_ctx_new(opts->tls, 0, err, sizeof(err));
    if (!c->tls) {
      if (opts->on_log)
        opts->on_log(opts->ud, err);
      free(c);
      return RPC_E_TLS;
    }
    name = opts->tls->server_name ? opts->tls->server_name
                                  : (c->addr.is_unix ? "localhost" : c->addr.host);
  }
  struct rpc_conn *conn = rpc_conn_new(loop, 0, c->tls, name);
  c->conn = conn;
  conn->owner_client = c;
  conn->owner = opts->ud;
  conn->on_log = opts->on_log;
  conn->on_ready = conn_ready;
  conn->on_closed = conn_closed;
  conn->max_recv_msg = opts->max_recv_msg ? opts->max_recv_msg : RPC_DEFAULT_MAX_MSG;
  conn->ka_interval = opts->keepalive_interval_ms;
  conn->ka_timeout = opts->keepalive_timeout_ms;
  if (opts->authority)
    conn->authority = xstrdup(opts->authority);
  else if (c->addr.is_unix)
    conn->authority = xstrdup("localhost");
  else
    conn->authority = xstrdup(opts->target);
  *out = c;
  /* The client never sends GOAWAY, so that timer guards the connect. */
  uv_timer_start(&conn->goaway_timer, connect_timeout_cb,
                 opts->connect_timeout_ms ? opts->connect_timeout_ms : 20000, 0);

  if (conn->err) {
    rpc_conn_fail(conn, conn->err, RPC_UNAVAILABLE);
    return 0;
  }
  if (c->addr.is_unix) {
    uv_pipe_init(loop, &conn->io.pipe, 0);
    rpc_conn_attach_io(conn);
    snprintf(conn->peer, sizeof(conn->peer), "unix:%s", c->addr.path);
    c->creq.data = c;
    c->connecting = 1;
    uv_pipe_connect(&c->creq, &conn->io.pipe, c->addr.path, connect_cb);
    return 0;
  }
  struct sockaddr_storage ss;
  int port = atoi(c->addr.port);
  if (uv_ip4_addr(c->addr.host, port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(c->addr.host, port, (struct sockaddr_in6 *)&ss) == 0) {
    start_tcp(c, (struct sockaddr *)&ss);
    return 0;
  }
  struct addrinfo hints = {0};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  c->gai.data = c;
  int r = uv_getaddrinfo(loop, &c->gai, gai_cb, c->addr.host, c->addr.port, &hints);
  if (r < 0) {
    rpc_conn_fail(conn, r, RPC_UNAVAILABLE);
    return 0;
  }
  c->resolving = 1;
  return 0;
}

void rpc_client_close(rpc_client *c, void (*cb)(rpc_client *, void *ud))
{
  if (c->closing)
    return;
  c->closing = 1;
  c->close_cb = cb;
  if (c->conn)
    rpc_conn_fail(c->conn, RPC_E_CLOSED, RPC_CANCELLED);
  maybe_close_done(c);
}

int rpc_call_start(rpc_client *c, const struct rpc_call_opts *o, rpc_call **out)
{
  struct rpc_conn *conn = c->conn;
  if (!conn || conn->closing || conn->goaway || c->closing)
    return RPC_E_CLOSED;
  if (!o->method || o->method[0] != '/')
    return RPC_E_INVAL;
  struct rpc_call *call = rpc_call_new(conn, 0);
  for (size_t i = 0; i < o->n_metadata; i++) {
    const struct rpc_md *m = &o->metadata[i];
    if (rpc_md_add(&call->hdr_out, m->key, m->value, m->value_len) < 0) {
      rpc_call_conn_lost(call, RPC_INVALID_ARGUMENT); /* unlinks and frees; no handlers yet */
      return RPC_E_INVAL;
    }
  }
  call->method = xstrdup(o->method);
  call->desc = o->response;
  call->ud = o->ud;

  struct rpc_hdrs h = {0};
  char tmo[32];
  rpc_hdrs_add(&h, ":method", "POST");
  rpc_hdrs_add(&h, ":scheme", conn->scheme);
  rpc_hdrs_add(&h, ":path", call->method);
  rpc_hdrs_add(&h, ":authority", conn->authority);
  rpc_hdrs_add(&h, "content-type", "application/grpc");
  rpc_hdrs_add(&h, "te", "trailers");
  /* We decompress (never compress): say which, or peers assume anything. */
  rpc_hdrs_add(&h, "grpc-accept-encoding", "identity,deflate,gzip");
  if (o->timeout_ms > 0) {
    rpc_timeout_format(o->timeout_ms, tmo, sizeof(tmo));
    rpc_hdrs_add(&h, "grpc-timeout", tmo);
  }
  rpc_hdrs_add(&h, "user-agent", "drover-rpc/" DROVER_VERSION);
  rpc_hdrs_add_md(&h, &call->hdr_out);
  nghttp2_data_provider prd = rpc_call_data_provider(call);
  int32_t id = nghttp2_submit_request(conn->ng, NULL, h.nv, h.n, &prd, call);
  rpc_hdrs_release(&h);
  if (id < 0) {
    rpc_call_conn_lost(call, RPC_UNAVAILABLE);
    return RPC_E_CLOSED;
  }
  call->stream_id = id;
  call->h = o->h;
  if (o->timeout_ms > 0)
    rpc_call_start_deadline(call, o->timeout_ms);
  rpc_conn_want_flush(conn);
  *out = call;
  return 0;
}

int rpc_call_unary(rpc_client *c, const struct rpc_call_opts *opts, const ProtobufCMessage *req,
                   rpc_call **out)
{
  rpc_call *call;
  int r = rpc_call_start(c, opts, &call);
  if (r < 0)
    return r;
  /* Cannot fail on a call just started: the queue is empty and open. */
  rpc_call_send(call, req);
  rpc_call_half_close(call);
  if (out)
    *out = call;
  return 0;
}
