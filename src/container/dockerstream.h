/* dockerstream.h - the Docker Engine's multiplexed stream format (the body
 * of POST /containers/{id}/attach and /logs for a container without a TTY):
 * frames of an 8-byte header, [STREAM, 0, 0, 0, SIZE as a big-endian
 * uint32], then SIZE bytes of that stream's output. STREAM is 0 (stdin,
 * written as stdout), 1 (stdout) or 2 (stderr).
 *
 * A push parser: bytes go in as they arrive, cut anywhere; each payload
 * comes out as one or more pieces tagged with its stream. Pure: no I/O, no
 * allocation, so it is unit-testable and fuzzable. */
#ifndef DROVER_CONTAINER_DOCKERSTREAM_H
#define DROVER_CONTAINER_DOCKERSTREAM_H

#include <stddef.h>
#include <stdint.h>

#define DOCKERSTREAM_STDOUT 1
#define DOCKERSTREAM_STDERR 2

/* An error of the stream itself (not of I/O). */
enum { DOCKERSTREAM_E_FORMAT = -1 }; /* a header whose stream byte is not 0, 1 or 2 */

/* stream: DOCKERSTREAM_STDOUT or DOCKERSTREAM_STDERR (stdin frames count as
 * stdout); len > 0; data is valid only during the call. */
typedef void (*dockerstream_cb)(void *ud, int stream, const char *data, size_t len);

struct dockerstream {
  unsigned char hdr[8];
  size_t hlen;   /* header bytes gathered so far */
  uint32_t left; /* payload bytes of the current frame still to come */
  int stream;    /* the current frame's stream */
  int error;     /* sticky: once the format is wrong, nothing more is parsed */
};

void dockerstream_init(struct dockerstream *d);
/* Parses n more bytes, calling cb for every payload piece in them. Returns
 * 0, or DOCKERSTREAM_E_FORMAT (also on every later call) when a header is
 * wrong: the pieces before it were delivered, nothing after it is. */
int dockerstream_feed(struct dockerstream *d, const char *data, size_t n, dockerstream_cb cb,
                      void *ud);
/* 1 when the bytes so far end inside a frame (a cut-off stream), else 0. */
int dockerstream_partial(const struct dockerstream *d);

#endif
