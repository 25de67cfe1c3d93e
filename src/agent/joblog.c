/* joblog.c - the buffered per-job log writer: time stamp text, batching, writes.
 *
 * The log is written with plain write() from the loop thread, in batches of up
 * to JOBLOG_BUF_CAP bytes (and every JOBLOG_FLUSH_MS, and at job end): one
 * syscall per 64 KiB instead of one per line is what lets a job's output be
 * captured at hundreds of MB/s. A write() of 64 KiB into the page cache does
 * not block for long; uv_fs writes on the thread pool would need a second
 * buffer per job and ordering between writes for no gain at this size. */
#include "agent/joblog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define TS_LEN   27 /* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
#define HEAD_LEN (TS_LEN + 5)

void joblog_clock_init(struct joblog_clock *c)
{
  memset(c, 0, sizeof(*c));
  c->sec = -1;
  c->last_us = -1;
}

/* Writes the TS_LEN characters of the stamp of `us` to out. */
static size_t fmt_ts(struct joblog_clock *c, char *out, int64_t us)
{
  /* exec stamps every line of one read() with the same time: the last
   * stamp's text is reused as is, the rest of its second is cached. */
  if (us == c->last_us) {
    memcpy(out, c->last, TS_LEN);
    return TS_LEN;
  }
  int64_t sec = us / 1000000;
  if (sec != c->sec) {
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(c->prefix, sizeof(c->prefix), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    c->sec = sec;
  }
  memcpy(out, c->prefix, 19);
  out[19] = '.';
  unsigned frac = (unsigned)(us % 1000000);
  for (int i = 25; i >= 20; i--) {
    out[i] = (char)('0' + frac % 10);
    frac /= 10;
  }
  out[26] = 'Z';
  memcpy(c->last, out, TS_LEN);
  c->last_us = us;
  return TS_LEN;
}

void joblog_init(struct joblog *l)
{
  memset(l, 0, sizeof(*l));
  l->fd = -1;
}

int joblog_open(struct joblog *l, const char *path, const char *id)
{
  l->id = id;
  l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (l->fd < 0)
    return -errno;
  l->buf = xmalloc(JOBLOG_BUF_CAP);
  l->len = 0;
  return 0;
}

static void write_all(struct joblog *l, const char *data, size_t len)
{
  while (len > 0 && !l->failed) {
    ssize_t n = write(l->fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      /* Disk full or gone: say so once; the job itself keeps running. */
      log_error("cannot write job log", "job=%s error=%s", l->id, strerror(errno));
      l->failed = 1;
      return;
    }
    data += n;
    len -= (size_t)n;
  }
}

void joblog_flush(struct joblog *l)
{
  if (l->len && l->fd >= 0)
    write_all(l, l->buf, l->len);
  l->len = 0;
}

void joblog_line(struct joblog *l, struct joblog_clock *c, enum job_stream s, int64_t ts_us,
                 const char *data, size_t len)
{
  static const char names[3][5] = {" out ", " err ", " sys "};
  if (l->fd < 0 || l->failed)
    return;
  const char *name = names[s > JOB_SYSTEM ? JOB_SYSTEM : s];
  size_t need = HEAD_LEN + len + 1;
  if (l->len + need > JOBLOG_BUF_CAP)
    joblog_flush(l);
  if (need > JOBLOG_BUF_CAP) {
    /* A line longer than the buffer (lines are split at 64 KiB by exec, so
     * only just longer): write it through. */
    char head[HEAD_LEN];
    fmt_ts(c, head, ts_us);
    memcpy(head + TS_LEN, name, 5);
    struct iovec iov[3] = {{head, HEAD_LEN}, {(void *)data, len}, {"\n", 1}};
    ssize_t want = (ssize_t)(HEAD_LEN + len + 1);
    if (writev(l->fd, iov, 3) != want) /* rare path: fall back to whole writes */
      log_error("short write to job log", "job=%s", l->id);
    return;
  }
  char *p = l->buf + l->len;
  p += fmt_ts(c, p, ts_us);
  memcpy(p, name, 5);
  p += 5;
  memcpy(p, data, len);
  p += len;
  *p++ = '\n';
  l->len = (size_t)(p - l->buf);
}

void joblog_sys(struct joblog *l, struct joblog_clock *c, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  joblog_line(l, c, JOB_SYSTEM, now_us(), buf,
              (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void joblog_release(struct joblog *l)
{
  if (l->fd >= 0)
    close(l->fd);
  free(l->buf);
  joblog_init(l);
}
