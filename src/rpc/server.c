/* server.c - listeners, accepted connections, method dispatch and graceful
 * shutdown. */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
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

/* Keep the first listener first: rpc_server_address reports it. */
static void add_listener(struct rpc_server *s, struct listener *l)
{
  s->open_listeners++;
  struct listener **pp = &s->listeners;
  while (*pp)
    pp = &(*pp)->next;
  *pp = l;
}

static struct listener *listener_new(struct rpc_server *s)
{
  struct listener *l = xcalloc(1, sizeof(*l));
  l->srv = s;
  l->io.handle.data = l;
  return l;
}

/* The handle is first in struct listener: free is its close callback. */
static void listener_drop(struct listener *l)
{
  uv_close(&l->io.handle, (uv_close_cb)free);
}

static int listen_tcp(struct rpc_server *s, const struct sockaddr *sa, unsigned flags,
                      struct listener **out)
{
  struct listener *l = listener_new(s);
  uv_tcp_init(s->loop, &l->io.tcp);
  int r = uv_tcp_bind(&l->io.tcp, sa, flags);
  if (r == 0)
    r = uv_listen(&l->io.stream, 1024, on_connection); /* EADDRINUSE shows here */
  if (r == 0) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&l->io.tcp, (struct sockaddr *)&ss, &len);
    rpc_addr_format((struct sockaddr *)&ss, l->addr, sizeof(l->addr));
  }
  if (r < 0) {
    listener_drop(l);
    return r;
  }
  *out = l;
  return 0;
}

static int port_of(const struct listener *l)
{
  const char *colon = strrchr(l->addr, ':');
  return colon ? atoi(colon + 1) : 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

#define MAX_ADDRS 16

/* A name: every address it resolves to gets a listener, on one port (with
 * port 0, the one the first bind picked). An address family this machine
 * lacks (no IPv6, say) is skipped with a log line; any other error fails the
 * whole listen, since serving on part of the addresses while another process
 * holds the rest would route some clients elsewhere. */
static int listen_name(struct rpc_server *s, const char *addr, const struct rpc_addr *a)
{
  uv_getaddrinfo_t req;
  struct addrinfo hints = {0};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* Synchronous (no callback): listening is set-up work before serving. */
  int r = uv_getaddrinfo(s->loop, &req, NULL, a->host, a->port, &hints);
  if (r < 0) {
    char line[400];
    snprintf(line, sizeof(line), "cannot resolve '%s': %s", addr, uv_strerror(r));
    slog(s, line);
    return r;
  }
  struct sockaddr_storage addrs[MAX_ADDRS];
  size_t n = 0;
  for (struct addrinfo *ai = req.addrinfo; ai && n < MAX_ADDRS; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof(addrs[0]))
      continue;
    struct sockaddr_storage ss = {0};
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    size_t i = 0;
    while (i < n && memcmp(&addrs[i], &ss, sizeof(ss)) != 0)
      i++;
    if (i == n)
      addrs[n++] = ss; /* resolvers may list one address twice */
  }
  uv_freeaddrinfo(req.addrinfo);
  if (n == 0)
    return UV_EAI_NONAME;
  const int want_port = atoi(a->port);
  /* Port 0: the port the first bind picked may be taken on another address;
   * then start over on a new one. */
  for (int round = 0; round < 8; round++) {
    struct listener *got[MAX_ADDRS];
    size_t ng = 0;
    int port = want_port, last = 0, again = 0;
    for (size_t i = 0; i < n; i++) {
      struct sockaddr_storage ss = addrs[i];
      set_port(&ss, port);
      char text[64];
      rpc_addr_format((struct sockaddr *)&ss, text, sizeof(text));
      /* IPv6-only: "::" must not also take the IPv4 port another entry binds. */
      unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
      struct listener *l;
      r = listen_tcp(s, (struct sockaddr *)&ss, flags, &l);
      if (r == 0) {
        got[ng++] = l;
        port = port_of(l);
        continue;
      }
      if (r == UV_EADDRNOTAVAIL || r == UV_EAFNOSUPPORT) {
        char line[400];
        snprintf(line, sizeof(line), "listen '%s': skipping %s: %s", addr, text, uv_strerror(r));
        slog(s, line);
        last = r;
        continue;
      }
      again = r == UV_EADDRINUSE && want_port == 0 && ng > 0;
      last = r;
      break;
    }
    if (r < 0 && !(r == UV_EADDRNOTAVAIL || r == UV_EAFNOSUPPORT)) {
      for (size_t i = 0; i < ng; i++)
        listener_drop(got[i]);
      if (again)
        continue;
      return last;
    }
    if (ng == 0)
      return last;
    for (size_t i = 0; i < ng; i++)
      add_listener(s, got[i]);
    return 0;
  }
  return UV_EADDRINUSE;
}

int rpc_server_listen(rpc_server *s, const char *addr)
{
  struct rpc_addr a;
  int r = rpc_addr_parse(addr, &a);
  if (r < 0)
    return r;
  if (a.is_unix) {
    struct listener *l = listener_new(s);
    struct stat st;
    /* A socket file left by a previous run would make bind fail. */
    if (lstat(a.path, &st) == 0 && S_ISSOCK(st.st_mode))
      unlink(a.path);
    uv_pipe_init(s->loop, &l->io.pipe, 0);
    r = uv_pipe_bind(&l->io.pipe, a.path);
    snprintf(l->addr, sizeof(l->addr), "unix:%s", a.path);
    if (r == 0)
      r = uv_listen(&l->io.stream, 1024, on_connection);
    if (r < 0) {
      listener_drop(l);
      return r;
    }
    add_listener(s, l);
    return 0;
  }
  struct sockaddr_storage ss;
  int port = atoi(a.port);
  if (strcmp(a.host, "*") == 0)
    uv_ip6_addr("::", port, (struct sockaddr_in6 *)&ss); /* IPv4 too (dual stack) */
  else if (uv_ip4_addr(a.host, port, (struct sockaddr_in *)&ss) != 0 &&
           uv_ip6_addr(a.host, port, (struct sockaddr_in6 *)&ss) != 0)
    return listen_name(s, addr, &a);
  struct listener *l;
  r = listen_tcp(s, (struct sockaddr *)&ss, 0, &l);
  if (r < 0)
    return r;
  add_listener(s, l);
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
