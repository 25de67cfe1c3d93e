/* test_rpc_frame.c - the gRPC message deframer of src/rpc/frame.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "rpc/rpc.h"
#include "rpc/wire.h"

/* Collected messages, each as a heap copy. */
struct got {
  char *msg[64];
  size_t len[64];
  int n;
  int stop_after; /* ask the deframer to stop after this many (0: never) */
};

static int collect(void *ud, const uint8_t *m, size_t len)
{
  struct got *g = ud;
  assert_true(g->n < 64);
  g->msg[g->n] = malloc(len + 1);
  memcpy(g->msg[g->n], m, len);
  g->msg[g->n][len] = 0;
  g->len[g->n] = len;
  g->n++;
  return g->stop_after && g->n >= g->stop_after;
}

static void got_free(struct got *g)
{
  for (int i = 0; i < g->n; i++)
    free(g->msg[i]);
}

/* Appends one framed message to buf at *off. */
static void put(uint8_t *buf, size_t *off, const char *s, size_t len)
{
  rpc_frame_header(buf + *off, (uint32_t)len);
  memcpy(buf + *off + RPC_FRAME_HDR, s, len);
  *off += RPC_FRAME_HDR + len;
}

static void test_rpc_frame_split_at_every_boundary(void **state)
{
  (void)state;
  uint8_t wire[256];
  size_t n = 0;
  put(wire, &n, "hello", 5);
  put(wire, &n, "", 0);
  put(wire, &n, "world!", 6);
  /* Every way of cutting the stream into two chunks, then byte by byte. */
  for (size_t cut = 0; cut <= n; cut++) {
    struct rpc_deframer d;
    struct got g = {0};
    rpc_deframer_init(&d, 0);
    assert_int_equal(rpc_deframer_feed(&d, wire, cut, collect, &g), (long)cut);
    assert_int_equal(rpc_deframer_feed(&d, wire + cut, n - cut, collect, &g), (long)(n - cut));
    assert_int_equal(g.n, 3);
    assert_string_equal(g.msg[0], "hello");
    assert_int_equal(g.len[1], 0);
    assert_string_equal(g.msg[2], "world!");
    assert_true(rpc_deframer_idle(&d));
    got_free(&g);
    rpc_deframer_release(&d);
  }
  struct rpc_deframer d;
  struct got g = {0};
  rpc_deframer_init(&d, 0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(rpc_deframer_feed(&d, wire + i, 1, collect, &g), 1);
  assert_int_equal(g.n, 3);
  assert_string_equal(g.msg[2], "world!");
  got_free(&g);
  rpc_deframer_release(&d);
}

static void test_rpc_frame_many_messages_in_one_chunk(void **state)
{
  (void)state;
  uint8_t wire[64 * 16];
  size_t n = 0;
  char text[16];
  for (int i = 0; i < 50; i++) {
    int l = snprintf(text, sizeof(text), "m%d", i);
    put(wire, &n, text, (size_t)l);
  }
  struct rpc_deframer d;
  struct got g = {0};
  rpc_deframer_init(&d, 0);
  assert_int_equal(rpc_deframer_feed(&d, wire, n, collect, &g), (long)n);
  assert_int_equal(g.n, 50);
  assert_string_equal(g.msg[0], "m0");
  assert_string_equal(g.msg[49], "m49");
  got_free(&g);
  rpc_deframer_release(&d);
}

static void test_rpc_frame_stop_leaves_rest(void **state)
{
  (void)state;
  uint8_t wire[64];
  size_t n = 0;
  put(wire, &n, "a", 1);
  put(wire, &n, "bb", 2);
  struct rpc_deframer d;
  struct got g = {.stop_after = 1};
  rpc_deframer_init(&d, 0);
  /* The caller paused after the first message: the second stays unread. */
  assert_int_equal(rpc_deframer_feed(&d, wire, n, collect, &g), 6);
  g.stop_after = 0;
  assert_int_equal(rpc_deframer_feed(&d, wire + 6, n - 6, collect, &g), (long)(n - 6));
  assert_int_equal(g.n, 2);
  assert_string_equal(g.msg[1], "bb");
  got_free(&g);
  rpc_deframer_release(&d);
}

static void test_rpc_frame_over_limit_is_an_error(void **state)
{
  (void)state;
  uint8_t wire[64];
  size_t n = 0;
  put(wire, &n, "0123456789", 10);
  struct rpc_deframer d;
  struct got g = {0};
  rpc_deframer_init(&d, 9);
  assert_int_equal(rpc_deframer_feed(&d, wire, n, collect, &g), RPC_E_TOO_LARGE);
  assert_int_equal(g.n, 0);
  /* Sticky: the stream is unusable after a framing error. */
  assert_int_equal(rpc_deframer_feed(&d, wire, n, collect, &g), RPC_E_TOO_LARGE);
  rpc_deframer_release(&d);

  /* Exactly at the limit is fine. */
  rpc_deframer_init(&d, 10);
  assert_int_equal(rpc_deframer_feed(&d, wire, n, collect, &g), (long)n);
  assert_int_equal(g.n, 1);
  got_free(&g);
  rpc_deframer_release(&d);
}

static void test_rpc_frame_compressed_flag_is_an_error(void **state)
{
  (void)state;
  uint8_t wire[] = {1, 0, 0, 0, 1, 'x'};
  uint8_t bad[] = {7, 0, 0, 0, 1, 'x'};
  struct rpc_deframer d;
  struct got g = {0};
  rpc_deframer_init(&d, 0);
  assert_int_equal(rpc_deframer_feed(&d, wire, sizeof(wire), collect, &g), RPC_E_COMPRESSED);
  rpc_deframer_release(&d);
  rpc_deframer_init(&d, 0);
  assert_int_equal(rpc_deframer_feed(&d, bad, sizeof(bad), collect, &g), RPC_E_FRAME);
  assert_int_equal(g.n, 0);
  rpc_deframer_release(&d);
}

static void test_rpc_frame_truncated_is_not_idle(void **state)
{
  (void)state;
  uint8_t wire[] = {0, 0, 0, 0, 4, 'a', 'b'};
  struct rpc_deframer d;
  struct got g = {0};
  rpc_deframer_init(&d, 0);
  assert_int_equal(rpc_deframer_feed(&d, wire, 3, collect, &g), 3);
  assert_false(rpc_deframer_idle(&d));
  assert_int_equal(rpc_deframer_feed(&d, wire + 3, sizeof(wire) - 3, collect, &g), 4);
  assert_false(rpc_deframer_idle(&d));
  assert_int_equal(g.n, 0);
  rpc_deframer_release(&d);
}

static void test_rpc_frame_buf_queue(void **state)
{
  (void)state;
  struct rpc_buf b = {0};
  for (int i = 0; i < 1000; i++)
    rpc_buf_append(&b, "abcdefgh", 8);
  assert_int_equal(rpc_buf_size(&b), 8000);
  rpc_buf_consume(&b, 7996);
  assert_memory_equal(b.p + b.off, "efgh", 4);
  rpc_buf_append(&b, "ij", 2);
  assert_int_equal(rpc_buf_size(&b), 6);
  assert_memory_equal(b.p + b.off, "efghij", 6);
  rpc_buf_consume(&b, 6);
  assert_int_equal(rpc_buf_size(&b), 0);
  rpc_buf_release(&b);
}

/* Compresses with zlib (wbits 15) or gzip (wbits 31) framing. */
static size_t squeeze(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int wbits)
{
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t len = z.total_out;
  deflateEnd(&z);
  return len;
}

static void test_rpc_frame_inflate_gzip_and_deflate(void **state)
{
  (void)state;
  uint8_t text[10000], packed[12000];
  for (size_t i = 0; i < sizeof(text); i++)
    text[i] = (uint8_t)("drover "[i % 7]);
  int wbits[] = {15, 31}; /* grpc "deflate" is zlib framing; "gzip" is gzip */
  for (int k = 0; k < 2; k++) {
    size_t n = squeeze(text, sizeof(text), packed, sizeof(packed), wbits[k]);
    uint8_t *out;
    size_t outlen;
    assert_int_equal(rpc_inflate(packed, n, sizeof(text), &out, &outlen), 0);
    assert_int_equal(outlen, sizeof(text));
    assert_memory_equal(out, text, sizeof(text));
    free(out);
    /* A limit below the inflated size is RESOURCE_EXHAUSTED's error. */
    assert_int_equal(rpc_inflate(packed, n, sizeof(text) - 1, &out, &outlen), RPC_E_TOO_LARGE);
    /* Cut short or corrupt: a framing error, never garbage. */
    assert_int_equal(rpc_inflate(packed, n / 2, sizeof(text), &out, &outlen), RPC_E_FRAME);
    packed[n / 2] ^= 0xff;
    packed[n / 2 + 1] ^= 0xff;
    assert_int_not_equal(rpc_inflate(packed, n, sizeof(text), &out, &outlen), 0);
  }
  assert_true(rpc_encoding_supported("gzip"));
  assert_true(rpc_encoding_supported("deflate"));
  assert_false(rpc_encoding_supported("snappy"));
}

static void test_rpc_frame_compressed_allowed_when_declared(void **state)
{
  (void)state;
  uint8_t wire[] = {1, 0, 0, 0, 2, 'z', 'z', 0, 0, 0, 0, 1, 'p'};
  struct rpc_deframer d;
  struct got g = {0};
  rpc_deframer_init(&d, 0);
  d.allow_compressed = 1; /* the stream said grpc-encoding: gzip */
  assert_int_equal(rpc_deframer_feed(&d, wire, 7, collect, &g), 7);
  assert_int_equal(d.flag, 1);
  assert_int_equal(rpc_deframer_feed(&d, wire + 7, 6, collect, &g), 6);
  assert_int_equal(d.flag, 0);
  assert_int_equal(g.n, 2);
  got_free(&g);
  rpc_deframer_release(&d);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_rpc_frame_*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rpc_frame_split_at_every_boundary),
      cmocka_unit_test(test_rpc_frame_many_messages_in_one_chunk),
      cmocka_unit_test(test_rpc_frame_stop_leaves_rest),
      cmocka_unit_test(test_rpc_frame_over_limit_is_an_error),
      cmocka_unit_test(test_rpc_frame_compressed_flag_is_an_error),
      cmocka_unit_test(test_rpc_frame_truncated_is_not_idle),
      cmocka_unit_test(test_rpc_frame_buf_queue),
      cmocka_unit_test(test_rpc_frame_inflate_gzip_and_deflate),
      cmocka_unit_test(test_rpc_frame_compressed_allowed_when_declared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
