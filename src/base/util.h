/* util.h - allocation that cannot fail, small string helpers, clocks. */
#ifndef DROVER_BASE_UTIL_H
#define DROVER_BASE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure is not recoverable for drover: these abort with a
 * message instead of returning NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wall clock, microseconds since the Unix epoch. */
int64_t now_us(void);
/* Monotonic clock in microseconds (CLOCK_MONOTONIC). */
int64_t mono_us(void);
/* Formats wall-clock `us` as RFC 3339 UTC with microseconds,
 * "2026-11-23T03:11:16.123456Z", into buf (at least 32 bytes). */
void fmt_time_us(char *buf, size_t len, int64_t us);

/* Writes `len` bytes to path atomically: a temporary file in the same folder,
 * fsync, rename. Returns 0 or -errno. */
int write_file_atomic(const char *path, const void *data, size_t len);
/* The same without the fdatasync: readers never see half a file, but a power
 * cut may lose the new content. For small files rewritten often. */
int write_file_replace(const char *path, const void *data, size_t len);
/* Reads a whole file into a NUL-terminated heap buffer (*out, caller frees).
 * Returns 0 or -errno. */
int read_file(const char *path, char **out, size_t *len);
/* mkdir -p. Returns 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

/* Levenshtein distance of two short strings (99 when either is longer than
 * 64 bytes), for "did you mean" hints. */
size_t edit_distance(const char *a, const char *b);

/* The value of hexadecimal digit c, or -1. */
int hex_value(char c);

#endif
