/* conn.c - one HTTP/2 connection on a libuv stream: reading, TLS through
 * memory BIOs, the batched write path, keepalive pings, teardown. */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>

static void conn_maybe_free(struct rpc_conn *c);
static void finish_close(struct rpc_conn *c);
static void drain_wbio(struct rpc_conn *c);
static void start_write(struct rpc_conn *c);
static void flush(struct rpc_conn *c);

/* Our frames on the stack may sit inside nghttp2: the session and handles
 * are only torn down once the outermost frame leaves. */
static void unbusy(struct rpc_conn *c)
{
  c->busy--;
  if (c->busy == 0 && c->closing && !c->closed)
    finish_close(c);
}

void rpc_conn_logf(struct rpc_conn *c, const char *fmt, ...)
{
  if (!c->on_log)
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  c->on_log(c->owner, line);
}

void rpc_conn_ignore_sigpipe(void)
{
  /* libuv writes with write(2): a peer that went away would kill the whole
   * process with SIGPIPE. Only a default disposition is changed. */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

static void idle_cb(uv_idle_t *h)
{
  struct rpc_conn *c = h->data;
  uv_idle_stop(h);
  c->idle_on = 0;
  flush(c);
}

static void ka_cb(uv_timer_t *t);

struct rpc_conn *rpc_conn_new(uv_loop_t *loop, int is_server, SSL_CTX *tls, const char *server_name)
{
  struct rpc_conn *c = xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->is_server = is_server;
  c->max_recv_msg = RPC_DEFAULT_MAX_MSG;
  c->scheme = tls ? "https" : "http";
  uv_idle_init(loop, &c->idle);
  c->idle.data = c;
  uv_timer_init(loop, &c->ka_timer);
  c->ka_timer.data = c;
  uv_timer_init(loop, &c->goaway_timer);
  c->goaway_timer.data = c;
  c->handles = 3;
  if (tls && rpc_tls_setup(c, tls, server_name) < 0) {
    c->err = RPC_E_TLS;
  }
  if (rpc_h2_session_new(c) < 0)
    c->err = RPC_E_PROTO;
  return c;
}

/* ---- reading ------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  (void)hint;
  /* Every read is fully consumed (BIO_write and nghttp2 copy what they
   * keep) before the next alloc_cb, so a server shares one buffer among all
   * its connections: idle connections cost no read buffer. */
  struct rpc_conn *c = h->data;
  if (!c->rbuf)
    c->rbuf = xmalloc(RPC_RBUF_SIZE);
  buf->base = c->rbuf;
  buf->len = RPC_RBUF_SIZE;
}

static int feed_plain(struct rpc_conn *c, const uint8_t *p, size_t n)
{
  if (c->closing)
    return 0;
  return rpc_h2_recv(c, p, n);
}

static int tls_read_all(struct rpc_conn *c)
{
  uint8_t buf[16384];
  for (;;) {
    if (c->closing)
      return 0;
    int r = SSL_read(c->ssl, buf, sizeof(buf));
    if (r > 0) {
      int e = feed_plain(c, buf, (size_t)r);
      if (e < 0)
        return e;
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
      return UV_EOF;
    rpc_conn_logf(c, "tls read failed peer=%s error=\"%s\"", c->peer, rpc_tls_last_error());
    return RPC_E_TLS;
  }
}

static void became_ready(struct rpc_conn *c, int err)
{
  c->ready = 1;
  if (c->on_ready)
    c->on_ready(c, err);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  struct rpc_conn *c = s->data;
  c->busy++;
  int err = 0;
  if (nread < 0) {
    err = (int)nread;
  } else if (nread > 0 && !c->closing) {
    if (c->ssl) {
      BIO_write(c->rbio, buf->base, (int)nread);
      if (!c->tls_done) {
        int r = rpc_tls_handshake(c);
        if (r < 0) {
          err = r;
        } else if (r == 1) {
          c->tls_done = 1;
          c->peer_subject = rpc_tls_peer_subject(c->ssl);
          became_ready(c, 0);
        }
      }
      if (!err && c->tls_done)
        err = tls_read_all(c);
    } else {
      err = feed_plain(c, (const uint8_t *)buf->base, (size_t)nread);
    }
  }
  if ((err == RPC_E_TLS || err == RPC_E_ALPN) && !c->closing && !c->fail_after_write) {
    /* Let the TLS alert reach the peer ("certificate required", "no
     * application protocol") before closing: it is what its user will see. */
    drain_wbio(c);
    if (rpc_buf_size(&c->out) && !c->writing) {
      uv_read_stop(&c->io.stream);
      c->fail_after_write = err;
      start_write(c);
      if (c->writing) {
        unbusy(c);
        return;
      }
    }
  }
  if (err < 0) {
    if (err != UV_EOF && err != UV_ECONNRESET && err != RPC_E_TLS && err != RPC_E_ALPN)
      rpc_conn_logf(c, "connection error peer=%s error=\"%s\"", c->peer, rpc_strerror(err));
    rpc_conn_fail(c, err, RPC_UNAVAILABLE);
  } else {
    flush(c);
  }
  unbusy(c);
}

void rpc_conn_attach_io(struct rpc_conn *c)
{
  c->io_init = 1;
  c->handles++;
  c->io.handle.data = c;
}

int rpc_conn_start(struct rpc_conn *c)
{
  if (c->err)
    return c->err;
  int r = uv_read_start(&c->io.stream, alloc_cb, read_cb);
  if (r < 0)
    return r;
  if (c->is_server && c->io.handle.type == UV_TCP)
    uv_tcp_nodelay(&c->io.tcp, 1);
  if (c->ssl) {
    r = rpc_tls_handshake(c); /* the client's ClientHello; a no-op for servers */
    if (r < 0)
      return r;
  } else {
    c->tls_done = 1;
    became_ready(c, 0);
  }
  if (c->ka_interval)
    uv_timer_start(&c->ka_timer, ka_cb, c->ka_interval, 0);
  flush(c);
  return 0;
}

/* ---- writing ------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status)
{
  struct rpc_conn *c = req->data;
  c->writing = 0;
  c->inflight.off = c->inflight.len = 0;
  if (c->fail_after_write && !c->closing) {
    rpc_conn_fail(c, c->fail_after_write, RPC_UNAVAILABLE);
    conn_maybe_free(c);
    return;
  }
  if (status < 0) {
    rpc_conn_fail(c, status, RPC_UNAVAILABLE);
    conn_maybe_free(c);
    return;
  }
  if (c->closing) {
    conn_maybe_free(c);
    return;
  }
  flush(c);
}

/* Outputs up to this size are tried on the socket before a write request. */
#define TRY_WRITE_MAX (16u * 1024)

static void start_write(struct rpc_conn *c)
{
  if (c->writing || rpc_buf_size(&c->out) == 0 || c->closed || !c->io_init)
    return;
  /* A small output (a unary call's request or reply: one write per side)
   * goes to the socket at once. Through uv_write it would cost, even when
   * the kernel takes it all, a deferred write_cb (the next flush waits a
   * loop turn) and, in libuv 1.44, an epoll_ctl when the request drains:
   * one more syscall per call on each side. Bigger outputs keep the write
   * request, which gathers everything produced until it completes into
   * the next write: trying them at once made more, smaller writes and cost
   * bidi streaming of small messages a few percent. */
  size_t len = rpc_buf_size(&c->out);
  if (len <= TRY_WRITE_MAX) {
    uv_buf_t now = uv_buf_init((char *)c->out.p + c->out.off, (unsigned)len);
    int w = uv_try_write(&c->io.stream, &now, 1);
    if (w > 0) {
      rpc_buf_consume(&c->out, (size_t)w);
      if (rpc_buf_size(&c->out) == 0)
        return;
    } else if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS) {
      rpc_conn_fail(c, w, RPC_UNAVAILABLE);
      return;
    }
  }
  /* Swap buffers: everything produced while this write is in flight is
   * gathered in `out` and goes out in the next single write. */
  struct rpc_buf t = c->inflight;
  c->inflight = c->out;
  c->out = t;
  c->out.off = c->out.len = 0;
  uv_buf_t b =
      uv_buf_init((char *)c->inflight.p + c->inflight.off, (unsigned)rpc_buf_size(&c->inflight));
  c->wreq.data = c;
  int r = uv_write(&c->wreq, &c->io.stream, &b, 1, write_cb);
  if (r < 0) {
    rpc_conn_fail(c, r, RPC_UNAVAILABLE);
    return;
  }
  c->writing = 1;
}

static void drain_wbio(struct rpc_conn *c)
{
  for (;;) {
    size_t pend = BIO_ctrl_pending(c->wbio);
    if (pend == 0)
      return;
    uint8_t *dst = rpc_buf_reserve(&c->out, pend);
    int r = BIO_read(c->wbio, dst, (int)pend);
    if (r <= 0)
      return;
    rpc_buf_commit(&c->out, (size_t)r);
  }
}

/* Which queues wait on their stream's window, after nghttp2 sent what it
 * could. Below the low mark nothing is held back by the connection's marks,
 * so the common case costs no walk over the calls. */
static void update_held(struct rpc_conn *c)
{
  if (c->queued < RPC_CONN_LOW_WATER && c->queued_held == 0)
    return;
  for (struct rpc_call *call = c->calls; call; call = call->next)
    rpc_call_update_held(call);
}

static void notify_writable(struct rpc_conn *c)
{
  update_held(c);
  if (c->n_want_writable == 0 || rpc_conn_sendable(c) >= RPC_CONN_LOW_WATER)
    return;
  /* Callbacks may send, cancel or close: collect first, with references. */
  struct rpc_call *stack[64], **v = stack;
  size_t n = 0, cap = 64;
  for (struct rpc_call *call = c->calls; call; call = call->next) {
    if (!call->want_writable || rpc_buf_size(&call->out) >= RPC_CALL_LOW_WATER)
      continue;
    if (n == cap) {
      cap *= 2;
      if (v == stack) {
        v = xmalloc(cap * sizeof(*v));
        /* Reached only once all 64 stack slots are filled. */
        memcpy(v, stack, sizeof(stack)); // cppcheck-suppress uninitvar
      } else {
        v = xrealloc(v, cap * sizeof(*v));
      }
    }
    rpc_call_ref(call);
    v[n++] = call;
  }
  for (size_t i = 0; i < n; i++) {
    rpc_call_check_writable(v[i]);
    rpc_call_unref(v[i]);
  }
  if (v != stack)
    free(v);
}

static void flush(struct rpc_conn *c)
{
  if (c->closing || c->closed || !c->ng)
    return;
  c->busy++;
again:
  c->dirty = 0;
  if (c->tls_done && c->io_init) {
    /* Under TLS, plaintext is gathered first so one flush makes as few
     * records as possible (one per 16 KiB), not one per HTTP/2 frame. */
    struct rpc_buf *dst = c->ssl ? &c->plain : &c->out;
    while (rpc_buf_size(&c->out) + rpc_buf_size(dst) < RPC_CONN_OUT_MAX) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(c->ng, &p);
      if (n < 0) {
        rpc_conn_logf(c, "http2 send failed peer=%s error=\"%s\"", c->peer,
                      nghttp2_strerror((int)n));
        rpc_conn_fail(c, RPC_E_PROTO, RPC_UNAVAILABLE);
        unbusy(c);
        return;
      }
      if (n == 0)
        break;
      rpc_buf_append(dst, p, (size_t)n);
    }
    if (c->ssl && rpc_buf_size(&c->plain)) {
      size_t len = rpc_buf_size(&c->plain);
      if (SSL_write(c->ssl, c->plain.p + c->plain.off, (int)len) <= 0) {
        rpc_conn_fail(c, RPC_E_TLS, RPC_UNAVAILABLE);
        unbusy(c);
        return;
      }
      rpc_buf_consume(&c->plain, len);
    }
  }
  if (c->ssl)
    drain_wbio(c);
  start_write(c);
  notify_writable(c);
  if (c->dirty && !c->closing)
    goto again;
  if (!c->closing && c->tls_done && !nghttp2_session_want_read(c->ng) &&
      !nghttp2_session_want_write(c->ng) && !c->writing && rpc_buf_size(&c->out) == 0)
    rpc_conn_fail(c, 0, RPC_UNAVAILABLE);
  unbusy(c);
}

void rpc_conn_want_flush(struct rpc_conn *c)
{
  if (c->busy) {
    c->dirty = 1; /* the frame on the stack flushes on its way out */
    return;
  }
  if (c->idle_on || c->closing)
    return;
  c->idle_on = 1;
  uv_idle_start(&c->idle, idle_cb);
}

/* ---- keepalive, goaway -------------------------------------------------- */

static void ka_cb(uv_timer_t *t)
{
  struct rpc_conn *c = t->data;
  if (c->closing)
    return;
  if (c->ping_out) {
    rpc_conn_logf(c, "keepalive timeout peer=%s", c->peer);
    rpc_conn_fail(c, RPC_E_TIMEOUT, RPC_UNAVAILABLE);
    return;
  }
  nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE, NULL);
  c->ping_out = 1;
  uv_timer_start(&c->ka_timer, ka_cb, c->ka_timeout ? c->ka_timeout : 20000, 0);
  flush(c);
}

void rpc_conn_ping_acked(struct rpc_conn *c)
{
  if (!c->ping_out)
    return;
  c->ping_out = 0;
  if (c->ka_interval && !c->closing)
    uv_timer_start(&c->ka_timer, ka_cb, c->ka_interval, 0);
}

static void goaway_cb(uv_timer_t *t)
{
  rpc_conn_goaway(t->data, 1);
}

void rpc_conn_goaway(struct rpc_conn *c, int final)
{
  if (c->closing || !c->ng)
    return;
  if (!final) {
    /* The two-step shutdown of RFC 9113 6.8: a notice first, so requests
     * already in flight towards us still get a stream id we accept. */
    nghttp2_submit_shutdown_notice(c->ng);
    uv_timer_start(&c->goaway_timer, goaway_cb, 200, 0);
  } else {
    c->goaway = 1;
    nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
  }
  flush(c);
}

/* ---- teardown ------------------------------------------------------------ */

static void handle_closed(uv_handle_t *h)
{
  struct rpc_conn *c = h->data;
  c->handles--;
  conn_maybe_free(c);
}

static void conn_maybe_free(struct rpc_conn *c)
{
  if (!c->closed || c->handles > 0 || c->writing || c->busy)
    return;
  if (c->on_closed) {
    void (*cb)(struct rpc_conn *, int) = c->on_closed;
    c->on_closed = NULL;
    cb(c, c->err);
  }
  rpc_buf_release(&c->out);
  rpc_buf_release(&c->plain);
  rpc_buf_release(&c->inflight);
  free(c->peer_subject);
  free(c->authority);
  free(c->why);
  if (!c->rbuf_shared)
    free(c->rbuf);
  if (c->ssl)
    SSL_free(c->ssl); /* frees the BIOs too */
  free(c);
}

void rpc_conn_fail(struct rpc_conn *c, int err, int code)
{
  if (c->closing)
    return;
  c->closing = 1;
  if (!c->err)
    c->err = err;
  c->busy++;
  if (!c->ready && c->on_ready) {
    c->ready = 1;
    c->on_ready(c, err ? err : RPC_E_CLOSED);
  }
  /* Calls end now (each detaches from its stream); the session itself may be
   * on the stack and goes in finish_close. */
  while (c->calls)
    rpc_call_conn_lost(c->calls, code);
  unbusy(c);
}

static void finish_close(struct rpc_conn *c)
{
  if (c->ng) {
    nghttp2_session_del(c->ng);
    c->ng = NULL;
  }
  c->closed = 1;
  if (c->idle_on)
    uv_idle_stop(&c->idle);
  uv_close((uv_handle_t *)&c->idle, handle_closed);
  uv_close((uv_handle_t *)&c->ka_timer, handle_closed);
  uv_close((uv_handle_t *)&c->goaway_timer, handle_closed);
  if (c->io_init)
    uv_close(&c->io.handle, handle_closed);
  else
    conn_maybe_free(c);
}
