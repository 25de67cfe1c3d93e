/* dockerstream.c - the Docker multiplexed stream parser (see dockerstream.h). */
#include "container/dockerstream.h"

#include <string.h>

void dockerstream_init(struct dockerstream *d)
{
  memset(d, 0, sizeof *d);
}

int dockerstream_feed(struct dockerstream *d, const char *data, size_t n, dockerstream_cb cb,
                      void *ud)
{
  while (n > 0 && !d->error) {
    if (d->left > 0) {
      /* Payload bytes go out as they are, without waiting for the whole
       * frame: a frame can be up to 4 GiB and the job's output must flow. */
      size_t k = n < d->left ? n : d->left;
      cb(ud, d->stream, data, k);
      data += k;
      n -= k;
      d->left -= (uint32_t)k;
      continue;
    }
    size_t k = sizeof d->hdr - d->hlen;
    if (k > n)
      k = n;
    memcpy(d->hdr + d->hlen, data, k);
    d->hlen += k;
    data += k;
    n -= k;
    if (d->hlen < sizeof d->hdr)
      break;
    d->hlen = 0;
    /* The three padding bytes are not checked: the engine's documentation
     * calls them reserved. The stream byte is: anything else means this is
     * not a multiplexed stream (a TTY's raw one, say), and reading it as one
     * would mangle the output. */
    if (d->hdr[0] > 2) {
      d->error = 1;
      break;
    }
    d->stream = d->hdr[0] == 2 ? DOCKERSTREAM_STDERR : DOCKERSTREAM_STDOUT;
    d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 | (uint32_t)d->hdr[6] << 8 |
              (uint32_t)d->hdr[7];
  }
  return d->error ? DOCKERSTREAM_E_FORMAT : 0;
}

int dockerstream_partial(const struct dockerstream *d)
{
  return d->hlen > 0 || d->left > 0;
}
