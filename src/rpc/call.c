/* call.c - one gRPC call on either side: outbound message queue and data
 * provider, inbound deframing with pause/resume, status and the end of the
 * call (on_done exactly once). */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rpc_call *rpc_call_new(struct rpc_conn *c, int is_server)
{
  struct rpc_call *call = xcalloc(1, sizeof(*call));
  call->conn = c;
  call->loop = c->loop;
  call->is_server = is_server;
  call->refs = 1;
  call->rx_status = -1;
  rpc_deframer_init(&call->df, c->max_recv_msg);
  call->next = c->calls;
  if (c->calls)
    c->calls->prev = call;
  c->calls = call;
  return call;
}

void rpc_call_ref(struct rpc_call *call)
{
  call->refs++;
}

void rpc_call_unref(struct rpc_call *call)
{
  if (--call->refs > 0)
    return;
  free(call->method);
  free(call->message);
  free(call->content_type);
  free(call->encoding);
  rpc_md_release(&call->hdr_in);
  rpc_md_release(&call->trl_in);
  rpc_md_release(&call->hdr_out);
  rpc_md_release(&call->trl_out);
  rpc_deframer_release(&call->df);
  rpc_buf_release(&call->in);
  rpc_buf_release(&call->out);
  free(call);
}

static int stream_open(const struct rpc_call *call)
{
  return call->conn && call->conn->ng && !call->conn->closing && call->stream_id > 0 &&
         !call->stream_closed;
}

/* Flow control of received bytes. The stream's window comes back only as
 * the application takes the bytes, so a paused reader holds back its own
 * stream and buffers at most one stream window (call->in). The connection's
 * comes back as bytes arrive: a paused stream must not stop the others on
 * its connection. That holds while the connection buffers under
 * RPC_CONN_PAUSED_MAX for its paused streams; past it, the connection's
 * window too waits for the application (call->in_owed), so that many paused
 * streams can't make one connection hold more than that plus a window. */
static void credit_stream(struct rpc_call *call, size_t n)
{
  if (!n || !stream_open(call))
    return;
  nghttp2_session_consume_stream(call->conn->ng, call->stream_id, n);
  rpc_conn_want_flush(call->conn);
}

static void credit_conn(struct rpc_conn *c, size_t n)
{
  if (!n || !c || !c->ng || c->closing)
    return;
  nghttp2_session_consume_connection(c->ng, n);
  rpc_conn_want_flush(c);
}

/* Received bytes the reader did not take now. */
static void in_add(struct rpc_call *call, const uint8_t *p, size_t n)
{
  struct rpc_conn *c = call->conn;
  rpc_buf_append(&call->in, p, n);
  if (c->paused_bytes + n <= RPC_CONN_PAUSED_MAX)
    credit_conn(c, n);
  else
    call->in_owed += n;
  c->paused_bytes += n;
}

/* The reader took (or the call dropped) n buffered bytes. */
static void in_take(struct rpc_call *call, size_t n)
{
  size_t have = rpc_buf_size(&call->in);
  if (n > have)
    n = have; /* the call ended meanwhile and dropped them all */
  if (!n)
    return;
  rpc_buf_consume(&call->in, n);
  size_t owed = n < call->in_owed ? n : call->in_owed;
  call->in_owed -= owed;
  if (call->conn)
    call->conn->paused_bytes -= n;
  credit_stream(call, n);
  credit_conn(call->conn, owed);
}

/* Every change of call->out goes through these two: the connection's sums. */
static void queue_add(struct rpc_call *call, size_t n)
{
  call->conn->queued += n;
  if (call->held)
    call->conn->queued_held += n;
}

static void queue_sub(struct rpc_call *call, size_t n)
{
  call->conn->queued -= n;
  if (call->held)
    call->conn->queued_held -= n;
}

void rpc_call_update_held(struct rpc_call *call)
{
  struct rpc_conn *c = call->conn;
  size_t n = rpc_buf_size(&call->out);
  int held = n && stream_open(call) &&
             nghttp2_session_get_stream_remote_window_size(c->ng, call->stream_id) <= 0;
  if (held == call->held)
    return;
  call->held = held;
  if (held)
    c->queued_held += n;
  else
    c->queued_held -= n;
}

static void timer_closed(uv_handle_t *h)
{
  rpc_call_unref(h->data);
}

/* The end: on_done once, then the call's own reference goes. */
static void call_done(struct rpc_call *call)
{
  if (call->done)
    return;
  call->done = 1;
  struct rpc_conn *c = call->conn;
  if (call->timer_on) {
    call->timer_on = 0;
    uv_timer_stop(&call->timer);
    uv_close((uv_handle_t *)&call->timer, timer_closed);
  }
  if (c) {
    if (call->want_writable)
      c->n_want_writable--;
    call->want_writable = 0;
    queue_sub(call, rpc_buf_size(&call->out));
    call->held = 0;
    in_take(call, rpc_buf_size(&call->in));
    rpc_buf_release(&call->in);
    /* Even while the connection closes: nghttp2 may still be parsing the
     * rest of a read and must not hand this (soon freed) call out again. */
    if (c->ng && call->stream_id > 0 && !call->stream_closed)
      nghttp2_session_set_stream_user_data(c->ng, call->stream_id, NULL);
    if (call->prev)
      call->prev->next = call->next;
    else
      c->calls = call->next;
    if (call->next)
      call->next->prev = call->prev;
    call->prev = call->next = NULL;
  }
  rpc_buf_release(&call->out);
  if (call->h.on_done) {
    struct rpc_status st = {call->code, call->message};
    call->h.on_done(call, &st, call->ud);
  }
  call->conn = NULL;
  rpc_call_unref(call);
}

void rpc_call_set_status(struct rpc_call *call, int code, const char *message)
{
  if (call->status_set)
    return;
  call->status_set = 1;
  call->code = code;
  free(call->message);
  call->message = message ? xstrdup(message) : NULL;
}

/* ---- sending --------------------------------------------------------------- */

/* Adds the call's status (grpc-status, percent-encoded grpc-message) and its
 * trailing metadata to h. h borrows code and the returned message (free it):
 * both must live until the headers are submitted. */
static char *add_status(struct rpc_hdrs *h, const struct rpc_call *call, char code[16])
{
  char *msg = NULL;
  snprintf(code, 16, "%d", call->code);
  rpc_hdrs_add(h, "grpc-status", code);
  if (call->message && *call->message) {
    msg = rpc_pct_encode(call->message);
    rpc_hdrs_add(h, "grpc-message", msg);
  }
  rpc_hdrs_add_md(h, &call->trl_out);
  return msg;
}

static void submit_trailers(struct rpc_call *call, nghttp2_session *ng)
{
  struct rpc_hdrs h = {0};
  char code[16];
  char *msg = add_status(&h, call, code);
  nghttp2_submit_trailer(ng, call->stream_id, h.nv, h.n);
  rpc_hdrs_release(&h);
  free(msg);
}

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
  struct rpc_call *call = src->ptr;
  size_t have = rpc_buf_size(&call->out);
  if (have == 0 && !call->out_eof) {
    call->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = have < len ? have : len;
  if (n) {
    memcpy(buf, call->out.p + call->out.off, n);
    rpc_buf_consume(&call->out, n);
    queue_sub(call, n);
  }
  if (n == have && call->out_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (call->is_server) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      submit_trailers(call, ng);
    }
  }
  return (ssize_t)n;
}

nghttp2_data_provider rpc_call_data_provider(struct rpc_call *call)
{
  nghttp2_data_provider p;
  p.source.ptr = call;
  p.read_callback = data_read;
  return p;
}

static void submit_response(struct rpc_call *call, int trailers_only)
{
  struct rpc_conn *c = call->conn;
  struct rpc_hdrs h = {0};
  char code[16];
  char *msg = NULL;
  rpc_hdrs_add(&h, ":status", "200");
  rpc_hdrs_add(&h, "content-type", "application/grpc");
  rpc_hdrs_add_md(&h, &call->hdr_out);
  if (trailers_only) {
    msg = add_status(&h, call, code);
    nghttp2_submit_response(c->ng, call->stream_id, h.nv, h.n, NULL);
  } else {
    nghttp2_data_provider p = rpc_call_data_provider(call);
    nghttp2_submit_response(c->ng, call->stream_id, h.nv, h.n, &p);
  }
  call->headers_sent = 1;
  rpc_hdrs_release(&h);
  free(msg);
}

/* The queue grew or the stream ended its output: wake the data provider. */
static void kick(struct rpc_call *call)
{
  struct rpc_conn *c = call->conn;
  if (call->is_server && !call->headers_sent) {
    submit_response(call, 0);
  } else if (call->deferred) {
    call->deferred = 0;
    nghttp2_session_resume_data(c->ng, call->stream_id);
  }
  rpc_conn_want_flush(c);
}

static void want_writable(struct rpc_call *call)
{
  if (!call->want_writable) {
    call->want_writable = 1;
    call->conn->n_want_writable++;
  }
}

static int send_check(struct rpc_call *call)
{
  if (call->done || !stream_open(call))
    return call->conn && !call->conn->closing ? RPC_E_STATE : RPC_E_CLOSED;
  if (call->is_server ? call->finished : call->half_closed || call->status_set)
    return RPC_E_STATE;
  /* The high-water signal is advice; this is the bound for callers that
   * ignore it, so that one call's queue can't take all the memory. */
  if (rpc_buf_size(&call->out) >= RPC_SEND_QUEUE_MAX) {
    want_writable(call);
    return RPC_E_QUEUE_FULL;
  }
  return 0;
}

static int after_send(struct rpc_call *call, size_t added)
{
  queue_add(call, added);
  kick(call);
  if (rpc_buf_size(&call->out) >= RPC_CALL_HIGH_WATER ||
      rpc_conn_sendable(call->conn) >= RPC_CONN_HIGH_WATER) {
    want_writable(call);
    return 1;
  }
  return 0;
}

int rpc_call_send_bytes(rpc_call *call, const void *data, size_t len)
{
  int r = send_check(call);
  if (r < 0)
    return r;
  if (len > UINT32_MAX)
    return RPC_E_TOO_LARGE;
  uint8_t *dst = rpc_buf_reserve(&call->out, RPC_FRAME_HDR + len);
  rpc_frame_header(dst, (uint32_t)len);
  if (len)
    memcpy(dst + RPC_FRAME_HDR, data, len);
  rpc_buf_commit(&call->out, RPC_FRAME_HDR + len);
  return after_send(call, RPC_FRAME_HDR + len);
}

int rpc_call_send_fill(rpc_call *call, size_t len, int (*fill)(void *ud, uint8_t *dst, size_t len),
                       void *ud)
{
  int r = send_check(call);
  if (r < 0)
    return r;
  if (len > UINT32_MAX)
    return RPC_E_TOO_LARGE;
  uint8_t *dst = rpc_buf_reserve(&call->out, RPC_FRAME_HDR + len);
  if ((r = fill(ud, dst + RPC_FRAME_HDR, len)) < 0)
    return r; /* nothing committed: the queue is as it was */
  rpc_frame_header(dst, (uint32_t)len);
  rpc_buf_commit(&call->out, RPC_FRAME_HDR + len);
  return after_send(call, RPC_FRAME_HDR + len);
}

int rpc_call_send(rpc_call *call, const ProtobufCMessage *msg)
{
  int r = send_check(call);
  if (r < 0)
    return r;
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > UINT32_MAX)
    return RPC_E_TOO_LARGE;
  uint8_t *dst = rpc_buf_reserve(&call->out, RPC_FRAME_HDR + len);
  rpc_frame_header(dst, (uint32_t)len);
  protobuf_c_message_pack(msg, dst + RPC_FRAME_HDR);
  rpc_buf_commit(&call->out, RPC_FRAME_HDR + len);
  return after_send(call, RPC_FRAME_HDR + len);
}

void rpc_call_check_writable(struct rpc_call *call)
{
  struct rpc_conn *c = call->conn;
  if (!call->want_writable || call->done || !c)
    return;
  if (rpc_buf_size(&call->out) >= RPC_CALL_LOW_WATER || rpc_conn_sendable(c) >= RPC_CONN_LOW_WATER)
    return;
  call->want_writable = 0;
  c->n_want_writable--;
  if (call->h.on_writable)
    call->h.on_writable(call, call->ud);
}

int rpc_call_send_headers(rpc_call *call)
{
  if (!call->is_server || call->headers_sent || call->finished || !stream_open(call))
    return RPC_E_STATE;
  submit_response(call, 0);
  rpc_conn_want_flush(call->conn);
  return 0;
}

int rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg)
{
  int r = rpc_call_send(call, msg);
  if (r < 0)
    return r;
  return rpc_call_finish(call, RPC_OK, NULL);
}

int rpc_call_half_close(rpc_call *call)
{
  if (call->is_server || call->half_closed || call->done)
    return RPC_E_STATE;
  call->half_closed = 1;
  if (!stream_open(call))
    return 0;
  call->out_eof = 1;
  kick(call);
  return 0;
}

int rpc_call_finish(rpc_call *call, int code, const char *message)
{
  if (!call->is_server || call->finished || call->done)
    return RPC_E_STATE;
  call->finished = 1;
  rpc_call_set_status(call, code, message);
  if (!stream_open(call))
    return 0;
  if (!call->headers_sent && rpc_buf_size(&call->out) == 0) {
    submit_response(call, 1);
    rpc_conn_want_flush(call->conn);
    return 0;
  }
  call->out_eof = 1;
  kick(call);
  return 0;
}

/* Ends a call from this side: status now, RST_STREAM CANCEL to the peer. */
void rpc_call_fail_local(struct rpc_call *call, int code, const char *message)
{
  if (call->done)
    return;
  rpc_call_set_status(call, code, message);
  if (call->is_server)
    call->finished = 1;
  if (stream_open(call)) {
    nghttp2_submit_rst_stream(call->conn->ng, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
    rpc_conn_want_flush(call->conn);
  } else {
    call_done(call);
  }
}

int rpc_call_cancel(rpc_call *call)
{
  if (call->done || (call->status_set && !call->is_server) ||
      (call->is_server && call->stream_closed))
    return RPC_E_STATE;
  call->cancelled_by_us = 1;
  /* A server that already finished but still streams trailers out: a
   * cancel now still resets the stream; report what the handler asked. */
  call->status_set = 0;
  rpc_call_set_status(call, RPC_CANCELLED, "cancelled");
  rpc_call_fail_local(call, RPC_CANCELLED, "cancelled");
  return 0;
}

/* ---- receiving ------------------------------------------------------------- */

static void frame_error(struct rpc_call *call, int err)
{
  char msg[128];
  int code = RPC_INTERNAL;
  if (err == RPC_E_TOO_LARGE) {
    code = RPC_RESOURCE_EXHAUSTED;
    snprintf(msg, sizeof(msg), "received message larger than max (%zu bytes)", call->df.max_len);
  } else if (err == RPC_E_COMPRESSED) {
    snprintf(msg, sizeof(msg), "compressed messages are not supported");
  } else if (err == RPC_E_PACK) {
    snprintf(msg, sizeof(msg), "received message does not parse");
  } else {
    snprintf(msg, sizeof(msg), "bad message framing");
  }
  if (call->is_server) {
    rpc_call_finish(call, code, msg);
    /* No more input for a finished call. */
    in_take(call, rpc_buf_size(&call->in));
  } else {
    rpc_call_fail_local(call, code, msg);
  }
}

static int input_closed(const struct rpc_call *call)
{
  return call->done ||
         (call->is_server ? call->finished : call->status_set && !call->stream_closed);
}

static int deliver(void *ud, const uint8_t *data, size_t len)
{
  struct rpc_call *call = ud;
  if (input_closed(call))
    return 1;
  uint8_t *plain = NULL;
  int compressed = call->df.flag;
  if (compressed) {
    size_t n;
    int r = rpc_inflate(data, len, call->df.max_len, &plain, &n);
    if (r < 0) {
      frame_error(call, r);
      return 1;
    }
    data = plain;
    len = n;
  }
  struct rpc_msg m = {data, len, NULL, compressed};
  if (call->desc) {
    m.msg = protobuf_c_message_unpack(call->desc, NULL, len, data);
    if (!m.msg) {
      free(plain);
      frame_error(call, RPC_E_PACK);
      return 1;
    }
  }
  if (call->h.on_message)
    call->h.on_message(call, &m, call->ud);
  if (m.msg)
    protobuf_c_message_free_unpacked(m.msg, NULL);
  free(plain);
  return call->paused || input_closed(call);
}

ProtobufCMessage *rpc_msg_take(struct rpc_msg *m)
{
  ProtobufCMessage *p = m->msg;
  m->msg = NULL;
  return p;
}

static void check_input_end(struct rpc_call *call)
{
  if (!call->remote_closed || call->paused || rpc_buf_size(&call->in) || call->done)
    return;
  if (!rpc_deframer_idle(&call->df) && !input_closed(call)) {
    frame_error(call, RPC_E_FRAME);
    return;
  }
  if (call->is_server) {
    if (!call->half_close_told && !call->finished) {
      call->half_close_told = 1;
      if (call->h.on_half_close)
        call->h.on_half_close(call, call->ud);
    }
  } else if (call->stream_closed) {
    call_done(call);
  } else if (!call->out_eof && stream_open(call)) {
    /* The server ended the call before we half-closed: stop our side too. */
    nghttp2_submit_rst_stream(call->conn->ng, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_NO_ERROR);
    rpc_conn_want_flush(call->conn);
  }
}

/* Feeds bytes to the deframer; returns how many it took (the rest waits). */
static size_t feed(struct rpc_call *call, const uint8_t *p, size_t n)
{
  long r = rpc_deframer_feed(&call->df, p, n, deliver, call);
  if (r < 0) {
    if (!input_closed(call))
      frame_error(call, (int)r);
    return n;
  }
  return (size_t)r;
}

void rpc_call_recv_data(struct rpc_call *call, const uint8_t *p, size_t n)
{
  /* The connection outlives this read; the call may end during feed(). */
  struct rpc_conn *c = call->conn;
  rpc_call_ref(call);
  if (input_closed(call)) {
    credit_stream(call, n);
    credit_conn(c, n);
  } else if (call->paused || rpc_buf_size(&call->in)) {
    in_add(call, p, n);
  } else {
    size_t used = feed(call, p, n);
    credit_stream(call, used);
    credit_conn(c, used);
    if (used < n && call->done)
      credit_conn(c, n - used); /* nobody will read the rest */
    else if (used < n)
      in_add(call, p + used, n - used);
  }
  rpc_call_unref(call);
}

void rpc_call_remote_end(struct rpc_call *call)
{
  call->remote_closed = 1;
  rpc_call_ref(call);
  check_input_end(call);
  rpc_call_unref(call);
}

void rpc_call_pause_reading(rpc_call *call)
{
  call->paused = 1;
}

void rpc_call_resume_reading(rpc_call *call)
{
  if (!call->paused || call->done)
    return;
  call->paused = 0;
  rpc_call_ref(call);
  while (!call->paused && !call->done && rpc_buf_size(&call->in)) {
    size_t used = feed(call, call->in.p + call->in.off, rpc_buf_size(&call->in));
    in_take(call, used);
    if (input_closed(call))
      in_take(call, rpc_buf_size(&call->in));
  }
  check_input_end(call);
  rpc_call_unref(call);
}

/* ---- the end ----------------------------------------------------------------- */

void rpc_call_stream_closed(struct rpc_call *call, uint32_t h2_error)
{
  call->stream_closed = 1;
  if (call->done)
    return;
  rpc_call_ref(call);
  if (call->is_server) {
    if (!call->status_set || (!call->finished && !call->cancelled_by_us)) {
      /* The client reset the stream. A reset at the deadline is the client's
       * timer winning the race with ours: report it as what it is. */
      int64_t now = (int64_t)uv_now(call->loop);
      if (call->deadline && now + 20 >= call->deadline) {
        rpc_server_call_log(call->conn, "deadline exceeded", call);
        rpc_call_set_status(call, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
      } else {
        rpc_server_call_log(call->conn, "call cancelled", call);
        rpc_call_set_status(call, RPC_CANCELLED, "cancelled by the client");
      }
    }
    call_done(call);
  } else {
    if (!call->status_set) {
      if (call->rx_status >= 0 && h2_error == NGHTTP2_NO_ERROR) {
        call->status_set = 1;
        call->code = call->rx_status;
      } else if (call->rx_status >= 0) {
        call->status_set = 1;
        call->code = call->rx_status;
      } else if (h2_error == NGHTTP2_CANCEL) {
        rpc_call_set_status(call, RPC_CANCELLED, "stream cancelled by the server");
      } else if (h2_error == NGHTTP2_REFUSED_STREAM) {
        rpc_call_set_status(call, RPC_UNAVAILABLE, "stream refused by the server");
      } else if (h2_error != NGHTTP2_NO_ERROR) {
        char msg[64];
        snprintf(msg, sizeof(msg), "stream reset by the server (http2 error %u)", h2_error);
        rpc_call_set_status(call, RPC_INTERNAL, msg);
      } else {
        rpc_call_set_status(call, RPC_UNKNOWN, "response ended without grpc-status");
      }
      /* Buffered replies still go to the application before on_done. */
      if (rpc_buf_size(&call->in) && call->code == RPC_OK) {
        rpc_call_unref(call);
        return;
      }
    }
    call_done(call);
  }
  rpc_call_unref(call);
}

void rpc_call_conn_lost(struct rpc_call *call, int code)
{
  if (!call->status_set) {
    char msg[600];
    int err = call->conn ? call->conn->err : 0;
    if (code == RPC_CANCELLED)
      snprintf(msg, sizeof(msg), "cancelled: connection closed");
    else if (call->conn && call->conn->why)
      snprintf(msg, sizeof(msg), "%s", call->conn->why);
    else if (err && err != RPC_E_CLOSED)
      snprintf(msg, sizeof(msg), "connection lost: %s", rpc_strerror(err));
    else
      snprintf(msg, sizeof(msg), "connection lost");
    rpc_call_set_status(call, code, msg);
  }
  call_done(call);
}

static void deadline_cb(uv_timer_t *t)
{
  struct rpc_call *call = t->data;
  if (call->done)
    return;
  call->deadline_hit = 1;
  if (call->is_server) {
    rpc_server_call_log(call->conn, "deadline exceeded", call);
    /* Trailers after what is already queued (cutting a message in half
     * would turn the status into a framing error at the client). */
    if (!call->finished)
      rpc_call_finish(call, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
  } else {
    rpc_call_fail_local(call, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
  }
}

void rpc_call_start_deadline(struct rpc_call *call, int64_t ms)
{
  call->deadline = (int64_t)uv_now(call->loop) + ms;
  uv_timer_init(call->loop, &call->timer);
  call->timer.data = call;
  call->timer_on = 1;
  rpc_call_ref(call); /* dropped when the timer handle has closed */
  uv_timer_start(&call->timer, deadline_cb, (uint64_t)ms, 0);
}

/* ---- accessors --------------------------------------------------------------- */

const struct rpc_mdlist *rpc_call_headers(const rpc_call *call)
{
  return &call->hdr_in;
}
const struct rpc_mdlist *rpc_call_trailers(const rpc_call *call)
{
  return &call->trl_in;
}
struct rpc_mdlist *rpc_call_headers_out(rpc_call *call)
{
  return &call->hdr_out;
}
struct rpc_mdlist *rpc_call_trailers_out(rpc_call *call)
{
  return &call->trl_out;
}
const char *rpc_call_method(const rpc_call *call)
{
  return call->method ? call->method : "";
}
const char *rpc_call_peer(const rpc_call *call)
{
  return call->conn ? call->conn->peer : "";
}
const char *rpc_call_peer_subject(const rpc_call *call)
{
  return call->conn ? call->conn->peer_subject : NULL;
}
int64_t rpc_call_remaining_ms(const rpc_call *call)
{
  if (!call->deadline)
    return -1;
  int64_t left = call->deadline - (int64_t)uv_now(call->loop);
  return left > 0 ? left : 0;
}
void rpc_call_set_data(rpc_call *call, void *data)
{
  call->data = data;
}
void *rpc_call_data(const rpc_call *call)
{
  return call->data;
}
