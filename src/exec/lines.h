/* lines.h - cuts a byte stream into lines. A line over max bytes is emitted
 * in parts (partial=1 on every part but the last). Binary data passes
 * through unchanged (NUL bytes included); "\r\n" is kept as data except the
 * final '\n'. Pure: no I/O, no clock, so it is unit-testable and fuzzable. */
#ifndef DROVER_EXEC_LINES_H
#define DROVER_EXEC_LINES_H

#include <stddef.h>

#define LINES_DEFAULT_MAX (64 * 1024)

/* Called once per line or part, without the '\n'. data is valid only during
 * the call. */
typedef void (*lines_cb)(void *ud, const char *data, size_t len, int partial);

struct lines {
  char *buf; /* pending bytes of an unfinished line */
  size_t len, cap;
  size_t max; /* split threshold */
  lines_cb cb;
  void *ud;
};

void lines_init(struct lines *l, size_t max, lines_cb cb, void *ud);
/* Feeds n bytes; calls cb for every complete line (and every max-sized part). */
void lines_feed(struct lines *l, const char *data, size_t n);
/* End of stream: emits a pending unterminated line, if any. */
void lines_flush(struct lines *l);
void lines_release(struct lines *l);

#endif
