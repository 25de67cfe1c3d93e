/* util.c - allocation that cannot fail, clocks, atomic file writes. */
#include "base/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
  fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
  abort();
}

void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p)
    oom(n);
  return p;
}

void *xcalloc(size_t nmemb, size_t n)
{
  void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
  if (!p)
    oom(nmemb * n);
  return p;
}

void *xrealloc(void *p, size_t n)
{
  p = realloc(p, n ? n : 1);
  if (!p)
    oom(n);
  return p;
}

char *xstrdup(const char *s)
{
  return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *s;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    oom(strlen(fmt));
  va_end(ap);
  return s;
}

int64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void fmt_time_us(char *buf, size_t len, int64_t us)
{
  time_t sec = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

/* The temporary name is "<path>.tmp.<pid>.<seq>": unique per process and
 * per call, so two writers never share one, and recognisable, so that what a
 * crash left behind can be found (write_tmp_name). The counter is atomic:
 * results are written from libuv's thread pool while the loop thread writes
 * status files. */
static _Atomic unsigned write_seq;

static int fsync_parent(const char *path)
{
  const char *slash = strrchr(path, '/');
  char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
  free(dir);
  if (fd < 0)
    return -errno;
  if (fsync(fd) < 0)
    err = -errno;
  close(fd);
  return err;
}

static int write_whole(const char *path, const void *data, size_t len, int sync, unsigned mode)
{
  const char *p = data;
  char *tmp = NULL;
  int fd = -1, err = 0;

  /* O_EXCL (which also refuses to follow a symbolic link): a file or link
   * someone planted under the temporary name is never written through. A
   * name left by a crashed process of the same pid (pid 1 in a container,
   * every time) is skipped. */
  for (int tries = 0; fd < 0 && tries < 100; tries++) {
    free(tmp);
    tmp = xasprintf("%s.tmp.%d.%u", path, (int)getpid(), atomic_fetch_add(&write_seq, 1));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) {
      err = -errno;
      goto out;
    }
  }
  if (fd < 0) {
    err = -EEXIST;
    goto out;
  }
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = -errno;
      break;
    }
    p += n;
    len -= (size_t)n;
  }
  /* fdatasync is what makes "results are written atomically" survive a power
   * cut, not just a crash of drover. */
  if (!err && sync && fdatasync(fd) < 0)
    err = -errno;
  if (close(fd) < 0 && !err)
    err = -errno;
  if (!err && rename(tmp, path) < 0)
    err = -errno;
  if (err)
    unlink(tmp);
  /* The rename lives in the folder: until the folder is synced, a power cut
   * may bring back the old name (or none). */
  if (!err && sync)
    err = fsync_parent(path);
out:
  free(tmp);
  return err;
}

int write_file_atomic(const char *path, const void *data, size_t len)
{
  return write_whole(path, data, len, 1, 0644);
}

int write_file_atomic_mode(const char *path, const void *data, size_t len, unsigned mode)
{
  return write_whole(path, data, len, 1, mode);
}

int write_file_replace(const char *path, const void *data, size_t len)
{
  return write_whole(path, data, len, 0, 0644);
}

int write_tmp_name(const char *name)
{
  /* "<something>.tmp.<digits>.<digits>" */
  const char *end = name + strlen(name), *p = end;
  for (int part = 0; part < 2; part++) {
    const char *digits_end = p;
    while (p > name && p[-1] >= '0' && p[-1] <= '9')
      p--;
    if (p == digits_end || p == name || p[-1] != '.')
      return 0;
    p--;
  }
  return p - name > 4 && !memcmp(p - 4, ".tmp", 4);
}

int read_file(const char *path, char **out, size_t *len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  size_t cap = 4096, n = 0;
  char *buf;

  if (fd < 0)
    return -errno;
  buf = xmalloc(cap);
  for (;;) {
    ssize_t r;
    if (n + 1 >= cap) {
      cap *= 2;
      buf = xrealloc(buf, cap);
    }
    r = read(fd, buf + n, cap - n - 1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      int err = -errno;
      free(buf);
      close(fd);
      return err;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  if (len)
    *len = n;
  return 0;
}

int read_file_max(const char *path, size_t max, char **out, size_t *len, struct stat *st)
{
  /* O_NOFOLLOW: a link is not followed (ELOOP). O_NONBLOCK: opening a FIFO
   * does not wait for a writer; it is refused below anyway, like every other
   * kind of file that is not a regular one (a device can be endless). */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC), err = 0;
  struct stat sb;
  char *buf = NULL;
  size_t n = 0;

  if (max > SIZE_MAX / 2)
    max = SIZE_MAX / 2;
  if (fd < 0)
    return -errno;
  if (fstat(fd, &sb) < 0) {
    err = -errno;
    goto out;
  }
  if (st)
    *st = sb;
  if (!S_ISREG(sb.st_mode)) {
    err = -EINVAL;
    goto out;
  }
  if ((uint64_t)sb.st_size > max) {
    err = -EFBIG;
    goto out;
  }
  /* The size may change while we read: read at most max + 1 bytes to tell
   * "grew past the limit" from "exactly at it". */
  size_t cap = (size_t)sb.st_size + 1 < max + 1 ? (size_t)sb.st_size + 1 : max + 1;
  buf = xmalloc(cap + 1);
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        err = -EFBIG;
        goto out;
      }
      cap = cap * 2 < max + 1 ? cap * 2 : max + 1;
      buf = xrealloc(buf, cap + 1);
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      err = -errno;
      goto out;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > max) {
    err = -EFBIG;
    goto out;
  }
  buf[n] = '\0';
  *out = buf;
  buf = NULL;
  if (len)
    *len = n;
out:
  free(buf);
  close(fd);
  return err;
}

int mkdir_p(const char *path, unsigned mode)
{
  char *p = xstrdup(path), *s;
  int err = 0;

  for (s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir(p, mode) < 0 && errno != EEXIST) {
        err = -errno;
        break;
      }
      *s = c;
      if (c == '\0')
        break;
    }
  }
  free(p);
  return err;
}

size_t edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b), prev[65], cur[65];
  if (la > 64 || lb > 64)
    return 99;
  for (size_t k = 0; k <= lb; k++)
    prev[k] = k;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t k = 1; k <= lb; k++) {
      size_t sub = prev[k - 1] + (a[i - 1] != b[k - 1]), del = prev[k] + 1, ins = cur[k - 1] + 1;
      cur[k] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, (lb + 1) * sizeof *prev);
  }
  return prev[lb];
}

int hex_value(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}
