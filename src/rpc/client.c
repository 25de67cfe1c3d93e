/* client.c - a client connection (resolve, connect to each address in turn,
 * TLS) and starting calls. */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One TCP connect, to one of the addresses the target resolved to. It has
 * its own handle: a failed connect leaves a socket that can't be reused, and
 * the connection's handle must not be closed under it. The winner's socket
 * is handed to the connection (adopt). Its timer gives up on an address
 * that does not answer (a black-holed route) in time to try the others. */
struct attempt {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t req;
  struct rpc_client *c;
  int handles; /* still open: tcp, timer */
  uint64_t share_ms;
  char addr[64];
};

#define MAX_ADDRS 16

struct rpc_client {
  uv_loop_t *loop;
  struct rpc_client_opts o;
  struct rpc_addr addr;
  struct rpc_conn *conn; /* NULL once disconnected */
  SSL_CTX *tls;
  uv_getaddrinfo_t gai;
  uv_connect_t creq; /* unix: the connection's own pipe */
  struct sockaddr_storage addrs[MAX_ADDRS];
  size_t naddrs, next; /* addresses to try, in resolver order; the next one */
  struct attempt *att; /* the connect in flight, NULL none */
  int attempts_open;   /* attempts whose handles are not all closed yet */
  uint64_t deadline;   /* uv_now() when connect_timeout_ms runs out */
  int last_err;
  char tried[480]; /* "[::1]:7700 (connection refused), ..." */
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
  if (!c->closing || c->conn || c->resolving || c->connecting || c->attempts_open)
    return;
  if (c->close_cb)
    c->close_cb(c, c->o.ud);
  client_free(c);
}

static void note_tried(struct rpc_client *c, const char *addr, const char *what)
{
  size_t n = strlen(c->tried);
  if (n + 8 < sizeof(c->tried))
    snprintf(c->tried + n, sizeof(c->tried) - n, "%s%s (%s)", n ? ", " : "", addr, what);
}

static void attempt_closed(uv_handle_t *h)
{
  struct attempt *a = h->data;
  struct rpc_client *c = a->c;
  if (--a->handles > 0)
    return;
  free(a);
  c->attempts_open--;
  maybe_close_done(c);
}

/* A connect still in flight ends with UV_ECANCELED (attempt_cb ignores it
 * once the attempt is no longer c->att). */
static void attempt_close(struct attempt *a)
{
  uv_close((uv_handle_t *)&a->tcp, attempt_closed);
  uv_close((uv_handle_t *)&a->timer, attempt_closed);
}

static void attempt_abort(struct rpc_client *c)
{
  if (!c->att)
    return;
  attempt_close(c->att);
  c->att = NULL;
}

static void connect_timeout_cb(uv_timer_t *t)
{
  struct rpc_conn *conn = t->data;
  struct rpc_client *c = conn->owner_client;
  if (conn->ready || conn->closing)
    return;
  unsigned ms = c->o.connect_timeout_ms ? c->o.connect_timeout_ms : 20000;
  if (c->att)
    note_tried(c, c->att->addr, "no answer");
  if (c->tried[0]) {
    rpc_conn_logf(conn, "connect timeout target=%s after=%ums tried=\"%s\"", c->o.target, ms,
                  c->tried);
    char why[600];
    snprintf(why, sizeof(why), "cannot connect to '%s' within %u ms: tried %s", c->o.target, ms,
             c->tried);
    conn->why = xstrdup(why);
  } else {
    rpc_conn_logf(conn, "connect timeout target=%s after=%ums", c->o.target, ms);
  }
  rpc_conn_fail(conn, RPC_E_TIMEOUT, RPC_UNAVAILABLE);
}

static void conn_ready(struct rpc_conn *conn, int err)
{
  struct rpc_client *c = conn->owner_client;
  uv_timer_stop(&conn->goaway_timer);
  if (err)
    attempt_abort(c); /* connect timeout or rpc_client_close */
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

/* unix: the connection's own pipe connected (or not). */
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
  int r = rpc_conn_start(c->conn);
  if (r < 0)
    rpc_conn_fail(c->conn, r, RPC_UNAVAILABLE);
}

/* The attempt connected: its socket becomes the connection's. */
static int adopt(struct rpc_client *c, struct attempt *a)
{
  struct rpc_conn *conn = c->conn;
  uv_os_fd_t fd;
  int r = uv_fileno((uv_handle_t *)&a->tcp, &fd);
  if (r < 0)
    return r;
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (nfd < 0)
    return -errno;
  uv_tcp_init(c->loop, &conn->io.tcp);
  rpc_conn_attach_io(conn);
  r = uv_tcp_open(&conn->io.tcp, nfd);
  if (r < 0) {
    close(nfd);
    return r;
  }
  uv_tcp_nodelay(&conn->io.tcp, 1);
  snprintf(conn->peer, sizeof(conn->peer), "%s", a->addr);
  return rpc_conn_start(conn);
}

static void try_next(struct rpc_client *c);

static void attempt_cb(uv_connect_t *req, int status)
{
  struct attempt *a = req->data;
  struct rpc_client *c = a->c;
  struct rpc_conn *conn = c->conn;
  if (c->att != a)
    return; /* aborted: attempt_abort closes it */
  c->att = NULL;
  if (!conn || conn->closing) {
    attempt_close(a);
    return;
  }
  int r = status;
  if (r == 0) {
    r = adopt(c, a);
    attempt_close(a);
    if (r < 0) {
      rpc_conn_logf(conn, "connect failed target=%s error=\"%s\"", c->o.target, rpc_strerror(r));
      rpc_conn_fail(conn, r, RPC_UNAVAILABLE);
    }
    return;
  }
  note_tried(c, a->addr, uv_strerror(r));
  c->last_err = r;
  attempt_close(a);
  try_next(c);
}

static void attempt_timeout_cb(uv_timer_t *t)
{
  struct attempt *a = t->data;
  struct rpc_client *c = a->c;
  if (c->att != a)
    return;
  c->att = NULL;
  char what[64];
  snprintf(what, sizeof(what), "no answer within %llu ms", (unsigned long long)a->share_ms);
  note_tried(c, a->addr, what);
  c->last_err = UV_ETIMEDOUT;
  attempt_close(a);
  try_next(c);
}

/* Tries the next address; when none is left, the connection fails and says
 * what was tried. All within connect_timeout_ms (the timer of rpc_client_new). */
static void try_next(struct rpc_client *c)
{
  struct rpc_conn *conn = c->conn;
  while (c->next < c->naddrs) {
    const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->next++];
    struct attempt *a = xcalloc(1, sizeof(*a));
    a->c = c;
    rpc_addr_format(sa, a->addr, sizeof(a->addr));
    snprintf(conn->peer, sizeof(conn->peer), "%s", a->addr);
    uv_tcp_init(c->loop, &a->tcp);
    uv_timer_init(c->loop, &a->timer);
    a->tcp.data = a->timer.data = a->req.data = a;
    a->handles = 2;
    c->attempts_open++;
    int r = uv_tcp_connect(&a->req, &a->tcp, sa, attempt_cb);
    if (r == 0) {
      c->att = a;
      /* An equal share of the time left, so that an address that never
       * answers leaves time for the ones after it (the last one has the
       * connect timeout itself). */
      size_t left = c->naddrs - c->next;
      uint64_t now = uv_now(c->loop);
      if (left > 0 && c->deadline > now) {
        a->share_ms = (c->deadline - now) / (left + 1);
        uv_timer_start(&a->timer, attempt_timeout_cb, a->share_ms, 0);
      }
      return;
    }
    note_tried(c, a->addr, uv_strerror(r));
    c->last_err = r;
    attempt_close(a);
  }
  rpc_conn_logf(conn, "connect failed target=%s tried=\"%s\"", c->o.target, c->tried);
  char why[600];
  snprintf(why, sizeof(why), "cannot connect to '%s': tried %s", c->o.target, c->tried);
  conn->why = xstrdup(why);
  rpc_conn_fail(conn, c->last_err ? c->last_err : UV_ECONNREFUSED, RPC_UNAVAILABLE);
}

static void add_addr(struct rpc_client *c, const struct sockaddr *sa, size_t len)
{
  if (c->naddrs == MAX_ADDRS || len > sizeof(c->addrs[0]))
    return;
  struct sockaddr_storage ss = {0};
  memcpy(&ss, sa, len);
  for (size_t i = 0; i < c->naddrs; i++)
    if (memcmp(&c->addrs[i], &ss, sizeof(ss)) == 0)
      return; /* resolvers may list one address twice */
  c->addrs[c->naddrs++] = ss;
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct rpc_client *c = req->data;
  c->resolving = 0;
  if (!c->conn || c->conn->closing) {
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
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
      add_addr(c, ai->ai_addr, ai->ai_addrlen);
  uv_freeaddrinfo(res);
  try_next(c);
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
  unsigned timeout = opts->connect_timeout_ms ? opts->connect_timeout_ms : 20000;
  c->deadline = uv_now(loop) + timeout;
  uv_timer_start(&conn->goaway_timer, connect_timeout_cb, timeout, 0);

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
  struct sockaddr_storage ss = {0};
  int port = atoi(c->addr.port);
  if (uv_ip4_addr(c->addr.host, port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(c->addr.host, port, (struct sockaddr_in6 *)&ss) == 0) {
    add_addr(c, (struct sockaddr *)&ss, sizeof(ss));
    try_next(c);
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
