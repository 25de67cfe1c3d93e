/* fuzz_lines.c - the line cutter over arbitrary bytes in arbitrary chunks:
 * the parts, each followed by '\n' unless it is LINES_PARTIAL or
 * LINES_NO_EOL, give back the input byte for byte; every part but a line's
 * last is exactly max bytes, none is longer; LINES_NO_EOL only on the very
 * last part. The progress-line parser gets every emitted line too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec/lines.h"
#include "exec/progress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
  char *buf;
  size_t len, cap;
  size_t max;
  int ended; /* a LINES_NO_EOL part was seen: nothing may follow */
};

static void on_part(void *ud, const char *data, size_t len, unsigned flags)
{
  struct out *o = ud;
  struct job_progress p;
  int partial = (flags & LINES_PARTIAL) != 0;

  if (len > o->max || (partial && len != o->max) || memchr(data, '\n', len))
    abort();
  if (o->ended || flags > (LINES_PARTIAL | LINES_NO_EOL) || flags == (LINES_PARTIAL | LINES_NO_EOL))
    abort();
  o->ended = (flags & LINES_NO_EOL) != 0;
  if (len + 1 > o->cap - o->len) /* more bytes out than went in */
    abort();
  memcpy(o->buf + o->len, data, len);
  o->len += len;
  if (!flags)
    o->buf[o->len++] = '\n';
  if (progress_parse(data, len, &p) == 0) {
    if (p.percent < 0 || p.percent > 100)
      abort();
    free(p.stage);
    free(p.message);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct lines l;
  struct out o;
  size_t off = 0;

  if (size < 4)
    return 0;
  /* Byte 0: the split threshold (1..256); bytes 1..3: a seed for the chunk
   * sizes; the rest is the stream. */
  o.max = (size_t)data[0] + 1;
  uint32_t seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16;
  data += 4;
  size -= 4;
  o.cap = size + 1;
  o.buf = malloc(o.cap);
  o.len = 0;
  o.ended = 0;
  lines_init(&l, o.max, on_part, &o);
  while (off < size) {
    seed = seed * 1103515245u + 12345u;
    size_t n = (seed >> 16) % (2 * o.max + 3);
    if (n > size - off)
      n = size - off;
    lines_feed(&l, (const char *)data + off, n);
    off += n;
  }
  lines_flush(&l);
  lines_release(&l);

  /* Exactly the input. */
  if (o.len != size || memcmp(o.buf, data, size) != 0)
    abort();
  free(o.buf);
  return 0;
}
