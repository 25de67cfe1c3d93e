/* joblog.c - the buffered per-job log writer: time stamp text, batching, writes.
 *
 * The log is written with plain writev() from the loop thread, in batches of up
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
#include <sys/stat.h>
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

int joblog_open(struct joblog *l, const char *path, const char *id, uint64_t max_size)
{
  l->id = id;
  /* O_NOFOLLOW: a link planted in logs/ must not make the agent append a
   * job's output to some other file. */
  l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (l->fd < 0)
    return -errno;
  struct stat st;
  l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  l->max_size = max_size ? max_size : UINT64_MAX;
  l->buf = xmalloc(JOBLOG_BUF_CAP);
  l->len = 0;
  return 0;
}

/* Writes every byte of iov[0..n) (consumed as it goes), looping over short
 * writes; a real error is said once and ends the log's writes. */
static void write_all(struct joblog *l, struct iovec *iov, int n)
{
  while (n > 0 && !l->failed) {
    ssize_t w = writev(l->fd, iov, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      /* Disk full or gone: say so once; the job itself keeps running. */
      log_error("cannot write job log", "job=%s error=%s", l->id, strerror(errno));
      l->failed = 1;
      return;
    }
    size_t done = (size_t)w;
    while (n > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
}

void joblog_flush(struct joblog *l)
{
  if (l->len && l->fd >= 0) {
    struct iovec iov = {l->buf, l->len};
    write_all(l, &iov, 1);
  }
  l->len = 0;
}

/* Control bytes (0x00-0x1f but TAB, and 0x7f) become "\xNN", a backslash
 * "\\": a log line is then always one line, an ESC or CR in the output
 * cannot rewrite what a terminal shows of the log, and the escaping can be
 * undone without ambiguity. */
static int needs_escape(unsigned char c)
{
  return (c < 0x20 && c != '\t') || c == 0x7f || c == '\\';
}

/* 16 bytes at once, with GCC's vector extensions (SSE2 on x86-64, NEON on
 * arm64, plain code elsewhere): the lanes that are below 0x20, 0x7f or a
 * backslash. TAB is among them; the caller looks closer at such blocks. */
typedef unsigned char bytes16 __attribute__((vector_size(16)));

static int block_may_need_escape(const char *p)
{
  bytes16 v, m;
  memcpy(&v, p, 16);
  m = (bytes16)((v < 0x20) | (v == 0x7f) | (v == '\\'));
  uint64_t half[2];
  memcpy(half, &m, 16);
  return (half[0] | half[1]) != 0;
}

/* The length of data once escaped. Output is mostly clean text: the scan
 * goes 16 bytes at a time and only looks closer at blocks that may hold a
 * byte to escape. (On 300 MB of 100-byte lines, a byte-by-byte test cost
 * the agent 65 % more CPU than writing the bytes unescaped; this, about 10 %.) */
static size_t escaped_len(const char *data, size_t len)
{
  size_t n = len, i = 0;
  for (; i + 16 <= len; i += 16) {
    if (!block_may_need_escape(data + i))
      continue;
    for (size_t k = i; k < i + 16; k++) {
      unsigned char c = (unsigned char)data[k];
      if (needs_escape(c))
        n += c == '\\' ? 1 : 3;
    }
  }
  for (; i < len; i++) {
    unsigned char c = (unsigned char)data[i];
    if (needs_escape(c))
      n += c == '\\' ? 1 : 3;
  }
  return n;
}

static char *escape_into(char *p, const char *data, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)data[i];
    if (!needs_escape(c)) {
      *p++ = (char)c;
    } else if (c == '\\') {
      *p++ = '\\';
      *p++ = '\\';
    } else {
      *p++ = '\\';
      *p++ = 'x';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  return p;
}

/* Appends one line of elen escaped bytes: into the buffer, or written
 * through when it does not fit in an empty one (lines are split at 64 KiB
 * by exec, escaping can make one up to 4 times longer). */
static void append_line(struct joblog *l, struct joblog_clock *c, enum job_stream s, int64_t ts_us,
                        const char *data, size_t len, size_t elen)
{
  static const char names[3][5] = {" out ", " err ", " sys "};
  const char *name = names[s > JOB_SYSTEM ? JOB_SYSTEM : s];
  size_t need = HEAD_LEN + elen + 1;
  if (l->len + need > JOBLOG_BUF_CAP)
    joblog_flush(l);
  l->size += need;
  if (need <= JOBLOG_BUF_CAP) {
    char *p = l->buf + l->len;
    p += fmt_ts(c, p, ts_us);
    memcpy(p, name, 5);
    p += 5;
    p = elen == len ? (char *)memcpy(p, data, len) + len : escape_into(p, data, len);
    *p++ = '\n';
    l->len = (size_t)(p - l->buf);
    return;
  }
  char head[HEAD_LEN];
  fmt_ts(c, head, ts_us);
  memcpy(head + TS_LEN, name, 5);
  char *esc = NULL;
  if (elen != len) {
    esc = xmalloc(elen);
    escape_into(esc, data, len);
  }
  struct iovec iov[3] = {{head, HEAD_LEN}, {esc ? esc : (void *)data, elen}, {"\n", 1}};
  write_all(l, iov, 3);
  free(esc);
}

void joblog_line(struct joblog *l, struct joblog_clock *c, enum job_stream s, int64_t ts_us,
                 const char *data, size_t len)
{
  if (l->fd < 0 || l->failed)
    return;
  size_t elen = escaped_len(data, len);
  /* Past the size limit the job's own lines are counted, not written; the
   * agent's few "sys" lines still are, so the log says what happened. */
  if (s != JOB_SYSTEM && l->size + HEAD_LEN + elen + 1 > l->max_size) {
    if (l->dropped++ == 0)
      joblog_sys(l, c,
                 "the log reached its size limit (%llu bytes): further output lines are "
                 "counted, not written",
                 (unsigned long long)l->max_size);
    return;
  }
  append_line(l, c, s, ts_us, data, len, elen);
}

static void sink_line(void *impl, enum job_stream s, int64_t ts_us, const char *data, size_t len,
                      unsigned flags)
{
  struct joblog *l = impl;
  joblog_line(l, l->clock, s, ts_us, data, len);
}

void joblog_sink(struct joblog *l, struct joblog_clock *c, struct core_sink *out)
{
  l->clock = c;
  out->line = sink_line;
  out->impl = l;
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
