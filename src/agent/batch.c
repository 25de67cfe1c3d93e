/* batch.c - LogBatch encoding (see batch.h). Field numbers are those of
 * proto/drover/v1/agent.proto and jobs.proto; a change there needs one
 * here. */
#include "agent/batch.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "exec/lines.h"

/* Wire types. */
#define VARINT           0
#define LEN              2
#define TAG(field, type) ((uint8_t)((field) << 3 | (type)))

/* AgentMessage.log_batch = 4; LogBatch: job_id 1, seq 2, entries 3,
 * dropped 4, attempt 5; LogEntry: stream 1, ts_us 2, data 3, partial 4,
 * no_eol 5. */
#define MSG_LOG_BATCH 4

static size_t varint_len(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

static uint8_t *put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
  *p++ = TAG(field, LEN);
  p = put_varint(p, len);
  memcpy(p, data, len);
  return p + len;
}

void batch_init(struct batch *b)
{
  memset(b, 0, sizeof(*b));
}

void batch_release(struct batch *b)
{
  free(b->buf);
  batch_init(b);
}

void batch_clear(struct batch *b)
{
  b->len = 0;
  b->entries = b->lines = 0;
}

void batch_add(struct batch *b, enum job_stream s, int64_t ts_us, const void *data, size_t len,
               unsigned flags)
{
  /* LogStream: STDOUT 1, STDERR 2, SYSTEM 3. */
  uint64_t stream = s == JOB_STDOUT ? 1 : s == JOB_STDERR ? 2 : 3;
  int partial = (flags & LINES_PARTIAL) != 0, no_eol = (flags & LINES_NO_EOL) != 0;
  size_t body = 2 + 1 + varint_len((uint64_t)ts_us) + 1 + varint_len(len) + len +
                (partial ? 2 : 0) + (no_eol ? 2 : 0);
  size_t need = 1 + varint_len(body) + body;
  if (b->len + need > b->cap) {
    b->cap = b->cap ? b->cap : 4096;
    while (b->len + need > b->cap)
      b->cap *= 2;
    b->buf = xrealloc(b->buf, b->cap);
  }
  uint8_t *p = b->buf + b->len;
  *p++ = TAG(3, LEN); /* LogBatch.entries */
  p = put_varint(p, body);
  *p++ = TAG(1, VARINT);
  *p++ = (uint8_t)stream;
  *p++ = TAG(2, VARINT);
  p = put_varint(p, (uint64_t)ts_us);
  p = put_bytes(p, 3, data, len);
  if (partial) {
    *p++ = TAG(4, VARINT);
    *p++ = 1;
  }
  if (no_eol) {
    *p++ = TAG(5, VARINT);
    *p++ = 1;
  }
  b->len = (size_t)(p - b->buf);
  b->entries++;
  if (!partial)
    b->lines++;
}

void batch_seal(struct batch *b, const char *job_id, unsigned attempt, uint64_t seq,
                uint64_t dropped, uint8_t **out, size_t *outlen)
{
  size_t idlen = strlen(job_id);
  size_t body = 1 + varint_len(idlen) + idlen + 1 + varint_len(seq) + b->len +
                (dropped ? 1 + varint_len(dropped) : 0) + 1 + varint_len(attempt);
  size_t total = 1 + varint_len(body) + body;
  uint8_t *buf = xmalloc(total), *p = buf;
  *p++ = TAG(MSG_LOG_BATCH, LEN);
  p = put_varint(p, body);
  p = put_bytes(p, 1, job_id, idlen);
  *p++ = TAG(2, VARINT);
  p = put_varint(p, seq);
  memcpy(p, b->buf, b->len);
  p += b->len;
  if (dropped) {
    *p++ = TAG(4, VARINT);
    p = put_varint(p, dropped);
  }
  *p++ = TAG(5, VARINT);
  p = put_varint(p, attempt);
  *out = buf;
  *outlen = (size_t)(p - buf);
  batch_clear(b);
}
