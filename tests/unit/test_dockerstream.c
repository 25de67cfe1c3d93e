/* test_dockerstream.c - the Docker multiplexed stream parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "container/dockerstream.h"

/* What came out, per stream, concatenated; and the number of pieces. */
struct got {
  char out[256], err[256];
  size_t nout, nerr, pieces;
};

static void collect(void *ud, int stream, const char *data, size_t len)
{
  struct got *g = ud;
  assert_true(len > 0);
  if (stream == DOCKERSTREAM_STDOUT) {
    assert_true(g->nout + len <= sizeof g->out);
    memcpy(g->out + g->nout, data, len);
    g->nout += len;
  } else {
    assert_int_equal(stream, DOCKERSTREAM_STDERR);
    assert_true(g->nerr + len <= sizeof g->err);
    memcpy(g->err + g->nerr, data, len);
    g->nerr += len;
  }
  g->pieces++;
}

/* out(1) "out\n", err(2) "err\n", stdin-tagged(0) "in", an empty frame, out "x". */
static const char two[] = "\x01\0\0\0\0\0\0\x04out\n"
                          "\x02\0\0\0\0\0\0\x04"
                          "err\n"
                          "\x00\0\0\0\0\0\0\x02in"
                          "\x01\0\0\0\0\0\0\x00"
                          "\x01\0\0\0\0\0\0\x01x";

static void test_dockerstream_whole_frames(void **state)
{
  struct dockerstream d;
  struct got g = {0};
  dockerstream_init(&d);
  assert_int_equal(dockerstream_feed(&d, two, sizeof two - 1, collect, &g), 0);
  assert_int_equal(g.nout, 7);
  assert_memory_equal(g.out, "out\ninx", 7);
  assert_int_equal(g.nerr, 4);
  assert_memory_equal(g.err, "err\n", 4);
  assert_int_equal(g.pieces, 4); /* the empty frame gives nothing */
  assert_int_equal(dockerstream_partial(&d), 0);
}

static void test_dockerstream_byte_by_byte(void **state)
{
  struct dockerstream d;
  struct got g = {0};
  dockerstream_init(&d);
  for (size_t i = 0; i < sizeof two - 1; i++) {
    assert_int_equal(dockerstream_feed(&d, two + i, 1, collect, &g), 0);
    /* Inside the first header or payload: the stream is cut off there. */
    if (i == 3 || i == 9)
      assert_int_equal(dockerstream_partial(&d), 1);
  }
  assert_int_equal(g.nout, 7);
  assert_memory_equal(g.out, "out\ninx", 7);
  assert_memory_equal(g.err, "err\n", 4);
  assert_int_equal(dockerstream_partial(&d), 0);
}

static void test_dockerstream_big_size(void **state)
{
  /* A size past 2^24: the four size bytes are big-endian. */
  static const char hdr[] = "\x02\0\0\0\x01\x00\x00\x03";
  struct dockerstream d;
  struct got g = {0};
  dockerstream_init(&d);
  assert_int_equal(dockerstream_feed(&d, hdr, 8, collect, &g), 0);
  assert_int_equal(d.left, (1u << 24) + 3);
  assert_int_equal(dockerstream_feed(&d, "abc", 3, collect, &g), 0);
  assert_int_equal(g.nerr, 3);
  assert_int_equal(dockerstream_partial(&d), 1);
}

static void test_dockerstream_bad_header_sticks(void **state)
{
  static const char bad[] = "\x01\0\0\0\0\0\0\x02ok"
                            "HTTP/1.1 200 OK\r\n";
  struct dockerstream d;
  struct got g = {0};
  dockerstream_init(&d);
  assert_int_equal(dockerstream_feed(&d, bad, sizeof bad - 1, collect, &g), DOCKERSTREAM_E_FORMAT);
  assert_int_equal(g.nout, 2); /* what came before the bad header */
  assert_int_equal(dockerstream_feed(&d, two, sizeof two - 1, collect, &g), DOCKERSTREAM_E_FORMAT);
  assert_int_equal(g.nout, 2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dockerstream_whole_frames),
      cmocka_unit_test(test_dockerstream_byte_by_byte),
      cmocka_unit_test(test_dockerstream_big_size),
      cmocka_unit_test(test_dockerstream_bad_header_sticks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
