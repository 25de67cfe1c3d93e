/* jsonpos.h - finds where a value sits in JSON text, for error messages.
 * jansson keeps no positions in its tree; this rescans the raw text. */
#ifndef DROVER_JOB_JSONPOS_H
#define DROVER_JOB_JSONPOS_H

#include <stddef.h>

/* One step of a path: a member name, or (key NULL) an array index. */
struct jsonpos_seg {
  const char *key;
  size_t index;
};

/* Finds the value at path (n steps; n 0 is the root) in text (len bytes, valid
 * JSON as jansson accepted it) and sets 1-based *line and *column (counted in
 * characters, as jansson counts them). With want_key, the position is that of
 * the member's name instead of its value (for "unknown field" errors).
 * Returns 0, or -1 when the path is not in the text (line and column 0). */
int jsonpos_locate(const char *text, size_t len, const struct jsonpos_seg *path, size_t n,
                   int want_key, int *line, int *column);

#endif
