/* h2.c - the nghttp2 session of a connection: settings, windows and the
 * callbacks that turn frames into call events. */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

#define NAME_IS(n, nl, lit) ((nl) == sizeof(lit) - 1 && memcmp((n), (lit), sizeof(lit) - 1) == 0)

static struct rpc_call *stream_call(struct rpc_conn *c, int32_t id)
{
  /* Once closing, every call has ended: the rest of the input is ignored. */
  if (c->closing)
    return NULL;
  return nghttp2_session_get_stream_user_data(c->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
  struct rpc_conn *c = ud;
  if (!c->is_server || c->closing || f->hd.type != NGHTTP2_HEADERS ||
      f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  struct rpc_call *call = rpc_call_new(c, 1);
  call->stream_id = f->hd.stream_id;
  nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, call);
  return 0;
}

static void server_header(struct rpc_call *call, const uint8_t *n, size_t nl, const uint8_t *v,
                          size_t vl)
{
  if (NAME_IS(n, nl, ":path")) {
    free(call->method);
    call->method = xstrndup((const char *)v, vl);
  } else if (NAME_IS(n, nl, ":method")) {
    if (!NAME_IS(v, vl, "POST"))
      call->http_status = 405;
  } else if (NAME_IS(n, nl, "content-type")) {
    free(call->content_type);
    call->content_type = xstrndup((const char *)v, vl);
  } else if (NAME_IS(n, nl, "grpc-encoding")) {
    free(call->encoding);
    call->encoding = xstrndup((const char *)v, vl);
  } else if (NAME_IS(n, nl, "grpc-timeout")) {
    int64_t ms;
    if (rpc_timeout_parse((const char *)v, vl, &ms) == 0)
      call->deadline = ms > 0 ? ms : 1; /* relative until dispatch */
  } else if (nl > 0 && n[0] != ':' && !NAME_IS(n, nl, "te")) {
    rpc_md_add_wire(&call->hdr_in, n, nl, v, vl);
  }
}

static void client_header(struct rpc_call *call, const nghttp2_frame *f, const uint8_t *n,
                          size_t nl, const uint8_t *v, size_t vl)
{
  int first = f->headers.cat == NGHTTP2_HCAT_RESPONSE;
  int trailers = !first || (f->hd.flags & NGHTTP2_FLAG_END_STREAM);
  if (NAME_IS(n, nl, ":status")) {
    int st = 0;
    for (size_t i = 0; i < vl && i < 4; i++)
      st = st * 10 + (v[i] - '0');
    call->http_status = st;
  } else if (NAME_IS(n, nl, "content-type")) {
    free(call->content_type);
    call->content_type = xstrndup((const char *)v, vl);
  } else if (NAME_IS(n, nl, "grpc-status")) {
    int code;
    if (rpc_status_parse((const char *)v, vl, &code) < 0)
      code = RPC_UNKNOWN;
    call->rx_status = code;
  } else if (NAME_IS(n, nl, "grpc-message")) {
    free(call->message);
    call->message = rpc_pct_decode((const char *)v, vl);
  } else if (nl > 0 && n[0] != ':') {
    if (first && NAME_IS(n, nl, "grpc-encoding")) {
      free(call->encoding);
      call->encoding = xstrndup((const char *)v, vl);
    }
    rpc_md_add_wire(trailers ? &call->trl_in : &call->hdr_in, n, nl, v, vl);
  }
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                     const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
  struct rpc_conn *c = ud;
  if (f->hd.type != NGHTTP2_HEADERS)
    return 0;
  struct rpc_call *call = stream_call(c, f->hd.stream_id);
  if (!call || call->done)
    return 0;
  if (c->is_server) {
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
      server_header(call, n, nl, v, vl);
    /* request trailers carry nothing gRPC uses */
  } else {
    client_header(call, f, n, nl, v, vl);
  }
  return 0;
}

static void client_headers_done(struct rpc_call *call, const nghttp2_frame *f)
{
  int end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
    call->got_headers = 1;
    if (call->http_status != 200) {
      char msg[64];
      snprintf(msg, sizeof(msg), "http status %d", call->http_status);
      rpc_call_fail_local(call, rpc_http_to_code(call->http_status), msg);
      return;
    }
    if (!end && (!call->content_type ||
                 !rpc_content_type_ok(call->content_type, strlen(call->content_type)))) {
      rpc_call_fail_local(call, RPC_UNKNOWN, "response content-type is not application/grpc");
      return;
    }
    if (call->encoding && rpc_encoding_supported(call->encoding))
      call->df.allow_compressed = 1;
    if (!end && call->h.on_headers) {
      rpc_call_ref(call);
      call->h.on_headers(call, call->ud);
      rpc_call_unref(call);
    }
  }
  if (end)
    rpc_call_remote_end(call);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
  struct rpc_conn *c = ud;
  struct rpc_call *call = f->hd.stream_id ? stream_call(c, f->hd.stream_id) : NULL;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (!call || call->done)
      break;
    if (c->is_server) {
      if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        rpc_call_ref(call);
        rpc_server_dispatch(c->srv, call);
        if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->done)
          rpc_call_remote_end(call);
        rpc_call_unref(call);
      } else if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        rpc_call_remote_end(call);
      }
    } else {
      rpc_call_ref(call);
      client_headers_done(call, f);
      rpc_call_unref(call);
    }
    break;
  case NGHTTP2_DATA:
    if (call && !call->done && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
      rpc_call_remote_end(call);
    break;
  case NGHTTP2_PING:
    if (f->hd.flags & NGHTTP2_FLAG_ACK)
      rpc_conn_ping_acked(c);
    break;
  case NGHTTP2_GOAWAY:
    c->goaway = 1;
    break;
  default:
    break;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
  struct rpc_conn *c = ud;
  struct rpc_call *call = stream_call(c, id);
  if (!call || call->done) {
    /* Nobody reads it: give the windows back at once. */
    nghttp2_session_consume(ng, id, len);
    return 0;
  }
  /* The call gives the windows back (call.c, "Flow control"). */
  rpc_call_recv_data(call, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *ud)
{
  struct rpc_conn *c = ud;
  struct rpc_call *call = stream_call(c, id);
  if (call) {
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    rpc_call_stream_closed(call, error_code);
  }
  return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
  struct rpc_conn *c = ud;
  /* A server that ends a call before the client half-closed resets the
   * stream with NO_ERROR so the client stops sending (gRPC's PROTOCOL-HTTP2). */
  if (c->is_server && f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    struct rpc_call *call = stream_call(c, f->hd.stream_id);
    if (call && !call->remote_closed)
      nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

int rpc_h2_session_new(struct rpc_conn *c)
{
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs) != 0)
    return RPC_E_PROTO;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_option_new(&opt);
  /* We acknowledge received bytes only when the application has taken them,
   * which is what makes a slow reader push back on its peer. */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, RPC_SERVER_MAX_STREAMS);
  int r = c->is_server ? nghttp2_session_server_new2(&c->ng, cbs, c, opt)
                       : nghttp2_session_client_new2(&c->ng, cbs, c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (r != 0)
    return RPC_E_PROTO;
  nghttp2_settings_entry iv[3];
  size_t n = 0;
  iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RPC_STREAM_WINDOW};
  if (c->is_server)
    iv[n++] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, RPC_SERVER_MAX_STREAMS};
  else
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, n);
  nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, RPC_CONN_WINDOW);
  return 0;
}

int rpc_h2_recv(struct rpc_conn *c, const uint8_t *p, size_t n)
{
  ssize_t r = nghttp2_session_mem_recv(c->ng, p, n);
  if (r < 0 && r > NGHTTP2_ERR_FATAL) {
    /* Not fatal for the library: end the connection with a GOAWAY that
     * goes out before we close (conn.c's flush closes when nothing is left). */
    rpc_conn_logf(c, "http2 error peer=%s error=\"%s\"", c->peer, nghttp2_strerror((int)r));
    nghttp2_session_terminate_session(c->ng, NGHTTP2_PROTOCOL_ERROR);
    return 0;
  }
  if (r < 0) {
    rpc_conn_logf(c, "http2 error peer=%s error=\"%s\"", c->peer, nghttp2_strerror((int)r));
    return RPC_E_PROTO;
  }
  return 0;
}
