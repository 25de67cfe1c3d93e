/* fuzz_grpc_frame.c - libFuzzer target: the gRPC deframer fed in arbitrary
 * chunks, the header value parsers (grpc-status, grpc-timeout, grpc-message,
 * -bin base64, content-type, metadata keys), and (first byte >= 0x80) a
 * whole server connection fed HTTP/2 bytes after the client preface: request
 * headers, dispatch, deframing, handlers and responses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc.h"
#include "rpc/rpc_int.h"
#include "rpc/wire.h"

static void h_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  if (m->len && m->data[0] == 'c') {
    rpc_call_cancel(call);
    return;
  }
  rpc_call_send_bytes(call, m->data, m->len);
  if (m->len && m->data[0] == 'f')
    rpc_call_finish(call, RPC_INVALID_ARGUMENT, "bad\n%request");
}

static void h_half_close(rpc_call *call, void *ud)
{
  rpc_call_finish(call, RPC_OK, NULL);
}

static void fuzz_h2(const uint8_t *data, size_t size)
{
  static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct rpc_method m[2] = {
      {"/drover.test.v1.Echo/Bidi",
       RPC_BIDI,
       NULL,
       {.on_message = h_message, .on_half_close = h_half_close}},
      {"/drover.test.v1.Echo/Unary", RPC_UNARY, NULL, {.on_message = h_message}},
  };
  struct rpc_server_opts o = {.methods = m, .n_methods = 2, .max_recv_msg = 1000};
  rpc_server *s;
  if (rpc_server_new(&loop, &o, &s) < 0)
    abort();
  /* A connection without a socket: input goes straight to nghttp2 and
   * output stays queued in the session. */
  struct rpc_conn *c = rpc_conn_new(&loop, 1, NULL, NULL);
  c->srv = s;
  c->max_recv_msg = 1000;
  c->busy++;
  /* Input in two halves with the output pulled in between and after, so
   * replies, trailers and resets are produced too. */
  size_t half = size / 2;
  const uint8_t *out;
  if (rpc_h2_recv(c, (const uint8_t *)magic, sizeof(magic) - 1) == 0 &&
      rpc_h2_recv(c, data, half) == 0) {
    while (c->ng && nghttp2_session_mem_send(c->ng, &out) > 0)
      ;
    if (rpc_h2_recv(c, data + half, size - half) == 0)
      while (c->ng && nghttp2_session_mem_send(c->ng, &out) > 0)
        ;
  }
  c->busy--;
  rpc_conn_fail(c, RPC_E_CLOSED, RPC_UNAVAILABLE);
  uv_run(&loop, UV_RUN_DEFAULT);
  rpc_server_free(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

static int count_msg(void *ud, const uint8_t *m, size_t len)
{
  size_t *n = ud;
  /* Touch every byte so ASan sees reads past the end. */
  volatile uint8_t x = 0;
  for (size_t i = 0; i < len; i++)
    x ^= m[i];
  (void)x;
  (*n)++;
  return (*n % 7) == 3; /* sometimes "pause", as a reader would */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2)
    return 0;
  if (data[0] >= 0x80) {
    fuzz_h2(data + 1, size - 1);
    return 0;
  }
  /* byte 0: chunk size; byte 1: max message size (small, to reach the limit) */
  size_t chunk = (size_t)data[0] + 1;
  size_t max = (size_t)data[1] * 16 + 1;
  data += 2;
  size -= 2;

  struct rpc_deframer d;
  size_t n = 0;
  rpc_deframer_init(&d, max);
  d.allow_compressed = (int)(chunk & 1);
  size_t off = 0;
  while (off < size) {
    size_t len = size - off < chunk ? size - off : chunk;
    long r = rpc_deframer_feed(&d, data + off, len, count_msg, &n);
    if (r < 0)
      break;
    if ((size_t)r > len)
      abort();
    off += (size_t)r; /* the unread rest is fed again, as call.c does */
  }
  (void)rpc_deframer_idle(&d);
  rpc_deframer_release(&d);

  const char *s = (const char *)data;
  int code;
  int64_t ms;
  if (rpc_status_parse(s, size, &code) == 0 && (code < 0 || code > 99))
    abort();
  if (rpc_timeout_parse(s, size, &ms) == 0 && ms < 0)
    abort();
  char buf[32];
  if (rpc_timeout_parse(s, size, &ms) == 0) {
    rpc_timeout_format(ms, buf, sizeof(buf));
    int64_t back;
    if (rpc_timeout_parse(buf, strlen(buf), &back) < 0)
      abort();
  }
  char *dec = rpc_pct_decode(s, size);
  char *enc = rpc_pct_encode(dec);
  char *dec2 = rpc_pct_decode(enc, strlen(enc));
  if (strcmp(dec, dec2) != 0) /* decode(encode(x)) == x up to the first NUL */
    abort();
  free(dec);
  free(enc);
  free(dec2);
  uint8_t *bin;
  size_t bl;
  if (rpc_b64_decode(s, size, &bin, &bl) == 0) {
    size_t el;
    char *e = rpc_b64_encode(bin, bl, &el);
    free(e);
    free(bin);
  }
  uint8_t *plain;
  size_t pl;
  if (rpc_inflate(data, size, 1 << 16, &plain, &pl) == 0) {
    if (pl > 1 << 16)
      abort();
    free(plain);
  }
  (void)rpc_content_type_ok(s, size);
  (void)rpc_md_key_ok(s, size);
  (void)rpc_http_to_code((int)size);
  return 0;
}
