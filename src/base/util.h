/* util.h - allocation that cannot fail, small string helpers, clocks. */
#ifndef DROVER_BASE_UTIL_H
#define DROVER_BASE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

struct stat;

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

/* Writes `len` bytes to path atomically: a temporary file in the same folder
 * ("<path>.tmp.<pid>.<n>", created with O_EXCL so nothing planted there is
 * written through), fdatasync, rename, fsync of the folder (the rename is
 * durable on return). Thread-safe. Returns 0 or -errno. */
int write_file_atomic(const char *path, const void *data, size_t len);
/* The same with the file created with `mode` (before the umask) instead of
 * 0644: for secrets (0600), which must never be readable, even briefly. */
int write_file_atomic_mode(const char *path, const void *data, size_t len, unsigned mode);
/* The same without the fdatasync and the folder's fsync: readers never see
 * half a file, but a power cut may lose the new content. For small files
 * rewritten often. */
int write_file_replace(const char *path, const void *data, size_t len);
/* The longest suffix the two writers above add to a path's last component
 * for their temporary file: ".tmp." + pid (at most 7 digits, pid_max is
 * 2^22) + "." + a 32-bit counter. */
#define WRITE_TMP_SUFFIX_MAX 23
/* Whether a file name has the form of such a temporary file
 * ("<name>.tmp.<digits>.<digits>"), as a crash may leave behind. */
int write_tmp_name(const char *name);
/* Reads a whole file into a NUL-terminated heap buffer (*out, caller frees).
 * Returns 0 or -errno. */
int read_file(const char *path, char **out, size_t *len);
/* Reads a regular file of at most max bytes into a NUL-terminated heap buffer
 * (*out, caller frees), never following a symbolic link, never waiting on a
 * FIFO, never reading more than max + 1 bytes. *st (may be NULL) gets the
 * file's fstat when the open succeeded. Returns 0, or -errno: -ELOOP for a
 * symbolic link, -EINVAL when it is not a regular file (*st says what it is),
 * -EFBIG when it has more than max bytes, or the error of open or read. */
int read_file_max(const char *path, size_t max, char **out, size_t *len, struct stat *st);
/* mkdir -p. Returns 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

/* Levenshtein distance of two short strings (99 when either is longer than
 * 64 bytes), for "did you mean" hints. */
size_t edit_distance(const char *a, const char *b);

/* The value of hexadecimal digit c, or -1. */
int hex_value(char c);

#endif
