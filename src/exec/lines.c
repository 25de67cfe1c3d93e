/* lines.c - cuts a byte stream into lines (see lines.h). */
#include "exec/lines.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void lines_init(struct lines *l, size_t max, lines_cb cb, void *ud)
{
  memset(l, 0, sizeof *l);
  l->max = max ? max : LINES_DEFAULT_MAX;
  l->cb = cb;
  l->ud = ud;
}

static void pend(struct lines *l, const char *data, size_t n)
{
  if (l->len + n > l->cap) {
    /* The pending tail never exceeds max bytes, so one allocation of max
     * bytes is the most a stream ever costs; start small for the common case
     * of short lines. */
    size_t cap = l->cap ? l->cap : 256;
    while (cap < l->len + n)
      cap *= 2;
    if (cap > l->max)
      cap = l->max;
    l->buf = xrealloc(l->buf, cap);
    l->cap = cap;
  }
  memcpy(l->buf + l->len, data, n);
  l->len += n;
}

/* A part is cut only when max bytes are followed by a byte that is not '\n':
 * a line of exactly max bytes stays one line. That is why up to max + 1
 * bytes are scanned for the newline. */
void lines_feed(struct lines *l, const char *data, size_t n)
{
  const char *p = data, *end = data + n;

  /* Complete the pending line first: this is the only place bytes are
   * copied, and only for a line that straddles two reads. */
  if (l->len > 0) {
    size_t room = l->max - l->len;
    size_t scan = (size_t)(end - p) < room + 1 ? (size_t)(end - p) : room + 1;
    const char *nl = memchr(p, '\n', scan);
    if (nl) {
      pend(l, p, (size_t)(nl - p));
      l->cb(l->ud, l->buf, l->len, 0);
      l->len = 0;
      p = nl + 1;
    } else if (scan == room + 1) {
      pend(l, p, room);
      l->cb(l->ud, l->buf, l->len, LINES_PARTIAL);
      l->len = 0;
      p += room;
    } else {
      pend(l, p, scan);
      return;
    }
  }

  /* Hot path: lines wholly inside this read are passed as pointers into it. */
  while (p < end) {
    size_t avail = (size_t)(end - p);
    size_t scan = avail < l->max + 1 ? avail : l->max + 1;
    const char *nl = memchr(p, '\n', scan);
    if (nl) {
      l->cb(l->ud, p, (size_t)(nl - p), 0);
      p = nl + 1;
    } else if (scan == l->max + 1) {
      l->cb(l->ud, p, l->max, LINES_PARTIAL);
      p += l->max;
    } else {
      pend(l, p, avail);
      return;
    }
  }
}

void lines_flush(struct lines *l)
{
  if (l->len > 0) {
    size_t len = l->len;
    l->len = 0;
    l->cb(l->ud, l->buf, len, LINES_NO_EOL);
  }
}

void lines_release(struct lines *l)
{
  free(l->buf);
  l->buf = NULL;
  l->len = l->cap = 0;
}
