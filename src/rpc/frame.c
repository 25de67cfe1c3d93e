/* frame.c - byte queues and the gRPC length-prefixed message deframer. */
#include "rpc/wire.h"
#include "rpc/rpc.h"
#include "base/util.h"

#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <zlib.h>

void rpc_buf_release(struct rpc_buf *b)
{
  free(b->p);
  memset(b, 0, sizeof(*b));
}

uint8_t *rpc_buf_reserve(struct rpc_buf *b, size_t n)
{
  if (b->cap - b->len >= n)
    return b->p + b->len;
  /* Slide live bytes to the front before growing: queues are mostly drained
   * from the front, so this keeps them from creeping through memory. */
  if (b->off > 0) {
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->cap - b->len >= n)
      return b->p + b->len;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n)
    cap *= 2;
  b->p = xrealloc(b->p, cap);
  b->cap = cap;
  return b->p + b->len;
}

void rpc_buf_append(struct rpc_buf *b, const void *data, size_t n)
{
  if (n == 0)
    return;
  memcpy(rpc_buf_reserve(b, n), data, n);
  b->len += n;
}

void rpc_buf_consume(struct rpc_buf *b, size_t n)
{
  b->off += n;
  if (b->off >= b->len) {
    b->off = b->len = 0;
    /* Give back buffers bigger than a flow-control window once drained: a
     * burst must not pin memory, but window-sized ones are reused. */
    if (b->cap > 4u << 20) {
      free(b->p);
      b->p = NULL;
      b->cap = 0;
    }
  }
}

void rpc_deframer_init(struct rpc_deframer *d, size_t max_len)
{
  memset(d, 0, sizeof(*d));
  d->max_len = max_len ? max_len : RPC_DEFAULT_MAX_MSG;
}

void rpc_deframer_release(struct rpc_deframer *d)
{
  free(d->msg);
  d->msg = NULL;
  d->msg_cap = 0;
}

void rpc_frame_header(uint8_t out[RPC_FRAME_HDR], uint32_t len)
{
  out[0] = 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}

int rpc_deframer_idle(const struct rpc_deframer *d)
{
  return d->hdr_have == 0 && !d->in_msg;
}

long rpc_deframer_feed(struct rpc_deframer *d, const uint8_t *p, size_t n, rpc_deframer_cb cb,
                       void *ud)
{
  size_t i = 0;
  if (d->error)
    return d->error;
  while (i < n) {
    if (!d->in_msg) {
      size_t take = RPC_FRAME_HDR - d->hdr_have;
      if (take > n - i)
        take = n - i;
      memcpy(d->hdr + d->hdr_have, p + i, take);
      d->hdr_have += take;
      i += take;
      if (d->hdr_have < RPC_FRAME_HDR)
        break;
      uint32_t len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 |
                     (uint32_t)d->hdr[3] << 8 | d->hdr[4];
      if (d->hdr[0] == 1 && !d->allow_compressed)
        return d->error = RPC_E_COMPRESSED;
      if (d->hdr[0] > 1)
        return d->error = RPC_E_FRAME;
      d->flag = d->hdr[0];
      if (len > d->max_len)
        return d->error = RPC_E_TOO_LARGE;
      d->hdr_have = 0;
      d->msg_len = len;
      d->msg_have = 0;
      /* A whole message in this chunk: hand it over without copying. */
      if (n - i >= len) {
        const uint8_t *m = p + i;
        i += len;
        if (cb(ud, m, len))
          return (long)i;
        continue;
      }
      d->in_msg = 1;
      if (d->msg_cap < len) {
        free(d->msg);
        d->msg = xmalloc(len);
        d->msg_cap = len;
      }
    }
    size_t take = d->msg_len - d->msg_have;
    if (take > n - i)
      take = n - i;
    memcpy(d->msg + d->msg_have, p + i, take);
    d->msg_have += take;
    i += take;
    if (d->msg_have < d->msg_len)
      break;
    d->in_msg = 0;
    int stop = cb(ud, d->msg, d->msg_len);
    /* Don't keep a large message's buffer around for the next small one. */
    if (d->msg_cap > 256u * 1024) {
      free(d->msg);
      d->msg = NULL;
      d->msg_cap = 0;
    }
    if (stop)
      return (long)i;
  }
  return (long)i;
}

int rpc_encoding_supported(const char *enc)
{
  return strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "deflate") == 0;
}

int rpc_inflate(const uint8_t *in, size_t n, size_t max, uint8_t **out, size_t *outlen)
{
  z_stream z;
  memset(&z, 0, sizeof(z));
  /* 15+32: zlib or gzip header, whichever the data has. */
  if (inflateInit2(&z, 15 + 32) != Z_OK)
    return RPC_E_FRAME;
  size_t cap = n * 4 + 64 < max + 1 ? n * 4 + 64 : max + 1;
  uint8_t *buf = xmalloc(cap);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  int r;
  for (;;) {
    z.next_out = buf + z.total_out;
    z.avail_out = (uInt)(cap - z.total_out);
    r = inflate(&z, Z_NO_FLUSH);
    if (r == Z_STREAM_END)
      break;
    if (r != Z_OK && r != Z_BUF_ERROR) {
      r = RPC_E_FRAME;
      goto fail;
    }
    if (z.total_out > max) {
      r = RPC_E_TOO_LARGE;
      goto fail;
    }
    if (z.avail_out == 0) {
      /* Grow, but never past max+1: one byte over tells "too large". */
      if (cap > max) {
        r = RPC_E_TOO_LARGE;
        goto fail;
      }
      cap = cap * 2 < max + 1 ? cap * 2 : max + 1;
      buf = xrealloc(buf, cap);
    } else if (z.avail_in == 0) {
      r = RPC_E_FRAME; /* input ended before the stream did */
      goto fail;
    }
  }
  if (z.total_out > max) {
    r = RPC_E_TOO_LARGE;
    goto fail;
  }
  *outlen = z.total_out;
  *out = buf;
  inflateEnd(&z);
  return 0;
fail:
  inflateEnd(&z);
  free(buf);
  return r;
}
