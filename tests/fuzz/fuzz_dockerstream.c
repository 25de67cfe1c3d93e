/* fuzz_dockerstream.c - the Docker multiplexed stream parser over arbitrary
 * bytes in arbitrary chunks: the pieces are never empty, never more bytes
 * than went in, and the output per stream is the same however the input is
 * cut (fed whole, then fed in pseudo-random chunks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "container/dockerstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
  char *buf[2];
  size_t len[2];
  size_t cap;
};

static void on_piece(void *ud, int stream, const char *data, size_t len)
{
  struct out *o = ud;
  if (len == 0 || (stream != DOCKERSTREAM_STDOUT && stream != DOCKERSTREAM_STDERR))
    abort();
  int i = stream - 1;
  if (len > o->cap - o->len[i])
    abort();
  memcpy(o->buf[i] + o->len[i], data, len);
  o->len[i] += len;
}

static int run(const uint8_t *data, size_t size, uint32_t seed, struct out *o)
{
  struct dockerstream d;
  size_t off = 0;
  int rc = 0;
  dockerstream_init(&d);
  while (off < size) {
    size_t n = size - off;
    if (seed) {
      seed = seed * 1103515245u + 12345u;
      n = (seed >> 16) % 19 + 1;
      if (n > size - off)
        n = size - off;
    }
    rc = dockerstream_feed(&d, (const char *)data + off, n, on_piece, o);
    off += n;
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct out a = {0}, b = {0};
  if (size < 2)
    return 0;
  uint32_t seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | 1u;
  data += 2;
  size -= 2;
  a.cap = b.cap = size + 1;
  for (int i = 0; i < 2; i++) {
    a.buf[i] = malloc(a.cap);
    b.buf[i] = malloc(b.cap);
  }
  int ra = run(data, size, 0, &a);
  int rb = run(data, size, seed, &b);
  if (ra != rb)
    abort();
  for (int i = 0; i < 2; i++) {
    if (a.len[i] != b.len[i] || memcmp(a.buf[i], b.buf[i], a.len[i]) != 0)
      abort();
    free(a.buf[i]);
    free(b.buf[i]);
  }
  if (a.len[0] + a.len[1] > size)
    abort();
  return 0;
}
