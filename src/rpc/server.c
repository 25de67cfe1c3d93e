/* server.c - listeners, accepted connections, method dispatch and graceful
 * shutdown. */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct listener {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } io;
  struct rpc_server *srv;
  struct listener *next;
  char addr[300];
};

struct rpc_server {
  uv_loop_t *loop;
  struct rpc_server_opts o;
  struct rpc_method *methods;
  SSL_CTX *tls;
  struct listener *listeners;
  int open_listeners;
  struct rpc_conn *conns;
  char *rbuf; /* the read buffer all connections share (conn.c alloc_cb) */
  int shutting_down, shut_done;
  uv_timer_t grace;
  int grace_init;
  void (*shut_cb)(rpc_server *, void *);
  void *shut_ud;
};

static void slog(struct rpc_server *s, const char *line)
{
  if (s->o.on_log)
    s->o.on_log(s->o.ud, line);
}

int rpc_server_new(uv_loop_t *loop, const struct rpc_server_opts *opts, rpc_server **out)
{
  rpc_conn_ignore_sigpipe();
  struct rpc_server *s = xcalloc(1, sizeof(*s));
  s->loop = loop;
  s->o = *opts;
  s->methods = xmalloc((opts->n_methods + 1) * sizeof(*s->methods));
  if (opts->n_methods)
    memcpy(s->methods, opts->methods, opts->n_methods * sizeof(*s->methods));
  s->o.methods = s->methods;
  if (opts->tls) {
    char err[512];
    s->tls = rpc_tls_ctx_new(opts->tls, 1, err, sizeof(err));
    if (!s->tls) {
      slog(s, err);
      free(s->methods);
      free(s);
      return RPC_E_TLS;
    }
  }
  *out = s;
  return 0;
}

static void maybe_shut_done(struct rpc_server *s)
{
  if (!s->shutting_down || s->shut_done || s->conns || s->open_listeners)
    return;
  s->shut_done = 1;
  if (s->grace_init)
    uv_timer_stop(&s->grace);
  if (s->shut_cb)
    s->shut_cb(s, s->shut_ud);
}

static void conn_closed(struct rpc_conn *c, int err)
{
  struct rpc_server *s = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  maybe_shut_done(s);
}

static void on_connection(uv_stream_t *ls, int status)
{
  struct listener *l = ls->data;
  struct rpc_server *s = l->srv;
  if (status < 0 || s->shutting_down)
    return;
  struct rpc_conn *c = rpc_conn_new(s->loop, 1, s->tls, NULL);
  c->srv = s;
  c->max_recv_msg = s->o.max_recv_msg ? s->o.max_recv_msg : RPC_DEFAULT_MAX_MSG;
  c->ka_interval = s->o.keepalive_interval_ms;
  c->ka_timeout = s->o.keepalive_timeout_ms;
  c->on_log = s->o.on_log;
  c->owner = s->o.ud;
  c->on_closed = conn_closed;
  if (!s->rbuf)
    s->rbuf = xmalloc(RPC_RBUF_SIZE);
  c->rbuf = s->rbuf;
  c->rbuf_shared = 1;
  if (ls->type == UV_NAMED_PIPE) {
    uv_pipe_init(s->loop, &c->io.pipe, 0);
    snprintf(c->peer, sizeof(c->peer), "%s", l->addr);
  } else {
    uv_tcp_init(s->loop, &c->io.tcp);
  }
  rpc_conn_attach_io(c);
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  if (uv_accept(ls, &c->io.stream) < 0) {
    rpc_conn_fail(c, RPC_E_CLOSED, RPC_UNAVAILABLE);
    return;
  }
  if (ls->type == UV_TCP) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->io.tcp, (struct sockaddr *)&ss, &len) == 0)
      rpc_addr_format((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
  }
  int r = rpc_conn_start(c);
  if (r < 0)
    rpc_conn_fail(c, r, RPC_UNAVAILABLE);
}

int rpc_server_listen(rpc_server *s, const char *addr)
{
  struct rpc_addr a;
  int r = rpc_addr_parse(addr, &a);
  if (r < 0)
    return r;
  struct listener *l = xcalloc(1, sizeof(*l));
  l->srv = s;
  l->io.handle.data = l;
  if (a.is_unix) {
    struct stat st;
    /* A socket file left by a previous run would make bind fail. */
    if (lstat(a.path, &st) == 0 && S_ISSOCK(st.st_mode))
      unlink(a.path);
    uv_pipe_init(s->loop, &l->io.pipe, 0);
    r = uv_pipe_bind(&l->io.pipe, a.path);
    snprintf(l->addr, sizeof(l->addr), "unix:%s", a.path);
  } else {
    struct sockaddr_storage ss;
    uv_tcp_init(s->loop, &l->io.tcp);
    if (uv_ip4_addr(a.host, atoi(a.port), (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(a.host, atoi(a.port), (struct sockaddr_in6 *)&ss) != 0) {
      if (strcmp(a.host, "localhost") == 0)
        uv_ip4_addr("127.0.0.1", atoi(a.port), (struct sockaddr_in *)&ss);
      else if (strcmp(a.host, "*") == 0)
        uv_ip6_addr("::", atoi(a.port), (struct sockaddr_in6 *)&ss);
      else
        r = RPC_E_INVAL;
    }
    if (r == 0)
      r = uv_tcp_bind(&l->io.tcp, (struct sockaddr *)&ss, 0);
    if (r == 0) {
      int len = sizeof(ss);
      uv_tcp_getsockname(&l->io.tcp, (struct sockaddr *)&ss, &len);
      rpc_addr_format((struct sockaddr *)&ss, l->addr, sizeof(l->addr));
    }
  }
  if (r == 0)
    r = uv_listen(&l->io.stream, 1024, on_connection);
  if (r < 0) {
    uv_close(&l->io.handle, (uv_close_cb)free);
    return r;
  }
  s->open_listeners++;
  /* Keep the first listener first: rpc_server_address reports it. */
  struct listener **pp = &s->listeners;
  while (*pp)
    pp = &(*pp)->next;
  *pp = l;
  return 0;
}

int rpc_server_address(rpc_server *s, char *buf, size_t len)
{
  if (!s->listeners)
    return RPC_E_STATE;
  snprintf(buf, len, "%s", s->listeners->addr);
  return 0;
}

void rpc_server_dispatch(struct rpc_server *s, struct rpc_call *call)
{
  struct rpc_conn *c = call->conn;
  int64_t timeout = call->deadline;
  call->deadline = 0;
  if (call->http_status == 405 || !call->content_type ||
      !rpc_content_type_ok(call->content_type, strlen(call->content_type))) {
    /* Not a gRPC request: answer in HTTP terms (gRPC's PROTOCOL-HTTP2). */
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)(call->http_status == 405 ? "405" : "415"),
                        7, 3, NGHTTP2_NV_FLAG_NONE}};
    call->finished = 1;
    call->headers_sent = 1;
    rpc_call_set_status(call, RPC_INTERNAL, "not a grpc request");
    nghttp2_submit_response(c->ng, call->stream_id, nv, 1, NULL);
    return;
  }
  const struct rpc_method *m = NULL;
  for (size_t i = 0; i < s->o.n_methods; i++) {
    if (call->method && strcmp(s->methods[i].path, call->method) == 0) {
      m = &s->methods[i];
      break;
    }
  }
  call->started = 1;
  if (!m) {
    char msg[300];
    snprintf(msg, sizeof(msg), "unknown method %s", call->method ? call->method : "");
    rpc_call_finish(call, RPC_UNIMPLEMENTED, msg);
    return;
  }
  if (call->encoding && rpc_encoding_supported(call->encoding))
    call->df.allow_compressed = 1;
  else if (call->encoding && strcasecmp(call->encoding, "identity") != 0) {
    /* gRPC's answer to a compression it does not support (PROTOCOL-HTTP2:
     * UNIMPLEMENTED, listing what it accepts). */
    char msg[160];
    snprintf(msg, sizeof(msg), "grpc-encoding '%.100s' is not supported", call->encoding);
    rpc_md_adds(&call->trl_out, "grpc-accept-encoding", "identity,deflate,gzip");
    rpc_call_finish(call, RPC_UNIMPLEMENTED, msg);
    return;
  }
  call->h = m->h;
  call->desc = m->request;
  call->ud = s->o.ud;
  if (timeout > 0)
    rpc_call_start_deadline(call, timeout);
  if (call->h.on_start)
    call->h.on_start(call, call->ud);
}

void rpc_server_call_log(struct rpc_conn *c, const char *what, const struct rpc_call *call)
{
  if (c && c->on_log)
    rpc_conn_logf(c, "%s method=%s peer=%s", what, rpc_call_method(call), c->peer);
}

static void grace_cb(uv_timer_t *t)
{
  struct rpc_server *s = t->data;
  /* Grace is over: whatever still runs is cancelled. */
  struct rpc_conn *c = s->conns;
  while (c) {
    struct rpc_conn *next = c->next;
    rpc_conn_fail(c, RPC_E_CLOSED, RPC_CANCELLED);
    c = next;
  }
}

static void listener_closed(uv_handle_t *h)
{
  struct listener *l = h->data;
  struct rpc_server *s = l->srv;
  s->open_listeners--;
  free(l);
  maybe_shut_done(s);
}

void rpc_server_shutdown(rpc_server *s, unsigned grace_ms, void (*cb)(rpc_server *, void *),
                         void *ud)
{
  if (s->shutting_down)
    return;
  s->shutting_down = 1;
  s->shut_cb = cb;
  s->shut_ud = ud;
  struct listener *l = s->listeners;
  s->listeners = NULL;
  while (l) {
    struct listener *next = l->next;
    uv_close(&l->io.handle, listener_closed);
    l = next;
  }
  for (struct rpc_conn *c = s->conns; c; c = c->next)
    rpc_conn_goaway(c, 0);
  uv_timer_init(s->loop, &s->grace);
  s->grace.data = s;
  s->grace_init = 1;
  uv_timer_start(&s->grace, grace_cb, grace_ms, 0);
  maybe_shut_done(s);
}

static void grace_closed(uv_handle_t *h)
{
  free(h->data);
}

void rpc_server_free(rpc_server *s)
{
  if (!s)
    return;
  if (s->tls)
    SSL_CTX_free(s->tls);
  free(s->methods);
  free(s->rbuf);
  if (s->grace_init) {
    /* The timer handle outlives us by one loop turn: free in its close cb. */
    s->grace.data = s;
    uv_close((uv_handle_t *)&s->grace, grace_closed);
    return;
  }
  free(s);
}
