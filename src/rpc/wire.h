/* wire.h - gRPC wire pieces without I/O: byte buffers, the message
 * deframer/framer, status and header value codecs. Pure functions, unit
 * tested and fuzzed on their own. */
#ifndef DROVER_RPC_WIRE_H
#define DROVER_RPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte queue: bytes are appended at the end and taken from `off`. */
struct rpc_buf {
  uint8_t *p;
  size_t off, len, cap; /* live bytes are p[off, len) */
};
void rpc_buf_release(struct rpc_buf *b);
static inline size_t rpc_buf_size(const struct rpc_buf *b)
{
  return b->len - b->off;
}
/* Makes room for n more bytes and returns where they go (then rpc_buf_commit). */
uint8_t *rpc_buf_reserve(struct rpc_buf *b, size_t n);
static inline void rpc_buf_commit(struct rpc_buf *b, size_t n)
{
  b->len += n;
}
void rpc_buf_append(struct rpc_buf *b, const void *data, size_t n);
void rpc_buf_consume(struct rpc_buf *b, size_t n);

#define RPC_FRAME_HDR       5
#define RPC_DEFAULT_MAX_MSG (4u * 1024 * 1024)

/* Streaming deframer: 1 byte flag, 4 bytes big-endian length, message. */
struct rpc_deframer {
  uint8_t hdr[RPC_FRAME_HDR];
  size_t hdr_have;
  uint8_t *msg;
  size_t msg_len, msg_have, msg_cap;
  size_t max_len;
  int in_msg;           /* header complete, collecting the body */
  int error;            /* sticky error once one occurred */
  int allow_compressed; /* the stream declared gzip/deflate (grpc-encoding) */
  int flag;             /* the compressed flag of the message being delivered */
};
void rpc_deframer_init(struct rpc_deframer *d, size_t max_len);
void rpc_deframer_release(struct rpc_deframer *d);
/* Called per complete message; return nonzero to stop feeding after it. */
typedef int (*rpc_deframer_cb)(void *ud, const uint8_t *msg, size_t len);
/* Feeds n bytes. Returns the number consumed (< n only when cb asked to stop),
 * or RPC_E_TOO_LARGE / RPC_E_COMPRESSED / RPC_E_FRAME (sticky). */
long rpc_deframer_feed(struct rpc_deframer *d, const uint8_t *p, size_t n, rpc_deframer_cb cb,
                       void *ud);
/* True when no partial message is buffered (a clean end of stream). */
int rpc_deframer_idle(const struct rpc_deframer *d);
/* Inflates a compressed message (gzip or zlib "deflate", detected from its
 * header) into a heap buffer of at most max bytes. Returns 0,
 * RPC_E_TOO_LARGE or RPC_E_FRAME (corrupt data). */
int rpc_inflate(const uint8_t *in, size_t n, size_t max, uint8_t **out, size_t *outlen);
/* 1 for the grpc-encoding values drover can decode ("gzip", "deflate"). */
int rpc_encoding_supported(const char *enc);
/* Writes the 5-byte prefix for a message of len bytes. */
void rpc_frame_header(uint8_t out[RPC_FRAME_HDR], uint32_t len);

/* grpc-timeout: "<1-8 digits><H|M|S|m|u|n>" -> ms (rounded up; capped at
 * ~100 years). Returns 0 or RPC_E_INVAL. */
int rpc_timeout_parse(const char *s, size_t len, int64_t *ms);
/* Formats ms as a grpc-timeout value into buf (>= 16 bytes). */
void rpc_timeout_format(int64_t ms, char *buf, size_t len);
/* grpc-status value "0".."99" (decimal, no sign) -> code. 0 or RPC_E_INVAL. */
int rpc_status_parse(const char *s, size_t len, int *code);
/* Percent-encodes a grpc-message (bytes outside 0x20..0x7e and '%').
 * Returns a heap string. */
char *rpc_pct_encode(const char *s);
/* Decodes; invalid escapes are kept literally (as grpc does). Heap string. */
char *rpc_pct_decode(const char *s, size_t len);
/* Maps an HTTP status other than 200 to a gRPC code. */
int rpc_http_to_code(int http_status);
/* content-type is "application/grpc" or "application/grpc+..." / ";...". */
int rpc_content_type_ok(const char *s, size_t len);
/* Base64 (standard alphabet, padded on encode, padding optional on decode).
 * Decode returns 0 or RPC_E_INVAL. Both return heap buffers. */
char *rpc_b64_encode(const uint8_t *p, size_t n, size_t *outlen);
int rpc_b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen);
/* A metadata key is valid: [0-9a-z_.-]+, not starting with ':'. */
int rpc_md_key_ok(const char *k, size_t len);

#endif
