/* lines.h - cuts a byte stream into lines. A line over max bytes is emitted
 * in parts (LINES_PARTIAL on every part but the last). Binary data passes
 * through unchanged (NUL bytes included); "\r\n" is kept as data except the
 * final '\n'. The flags say exactly where the newlines were, so the parts
 * and their flags are enough to rebuild the stream byte for byte. Pure: no
 * I/O, no clock, so it is unit-testable and fuzzable. */
#ifndef DROVER_EXEC_LINES_H
#define DROVER_EXEC_LINES_H

#include <stddef.h>

#define LINES_DEFAULT_MAX (64 * 1024)

/* Flags of a line or part. Neither set: a whole line that ended with '\n'. */
#define LINES_PARTIAL 1u /* a part of a long line: the line continues in the next part */
#define LINES_NO_EOL  2u /* the last line of the stream, which ended without a '\n' */

/* Called once per line or part, without the '\n'. data is valid only during
 * the call. A part with LINES_PARTIAL is always followed by another part of
 * the same line, so LINES_NO_EOL is never set together with it. */
typedef void (*lines_cb)(void *ud, const char *data, size_t len, unsigned flags);

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
/* End of stream: emits a pending unterminated line, if any, with
 * LINES_NO_EOL. A stream that ended with '\n' emits nothing here. */
void lines_flush(struct lines *l);
void lines_release(struct lines *l);

#endif
