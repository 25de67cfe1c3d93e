/* logstore.c - append-only job log files and their group fsync (see logstore.h). */
#include "coord/logstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log.h"
#include "base/util.h"

#define MAGIC     0x31424c44u /* "DLB1" little-endian */
#define HEAD_LEN  24
#define MAX_FRAME (64u * 1024 * 1024) /* a frame longer than this is damage, not data */

struct seqmark {
  uint32_t attempt;
  uint64_t seq;
};

struct logfile {
  struct logstore *ls;
  char *id;
  int fd;
  int refs;
  uint64_t size;
  struct seqmark *marks;
  size_t nmarks;
  int dirty;
  struct logfile *dnext; /* in ls->dirty */
};

struct syncreq {
  struct syncreq *next;
  void (*cb)(void *ud, int status);
  void *ud;
};

struct round {
  uv_work_t work;
  struct logstore *ls;
  int *fds;
  size_t nfds;
  int status;
  struct syncreq *reqs;
};

struct logstore {
  uv_loop_t *loop;
  char *dir;
  struct logfile *dirty;
  struct syncreq *waiting, *waiting_tail;
  int inflight;
  size_t open_files;
  void (*close_cb)(void *ud);
  void *close_ud;
  int closing;
};

static void put32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t crc(const void *p, size_t n)
{
  return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

static char *file_path(const struct logstore *ls, const char *id)
{
  return xasprintf("%s/%s.log", ls->dir, id);
}

int logstore_open(uv_loop_t *loop, const char *dir, struct logstore **out, char *err, size_t errlen)
{
  int rc = mkdir_p(dir, 0750);
  if (rc < 0) {
    snprintf(err, errlen, "log directory '%s': %s", dir, strerror(-rc));
    return rc;
  }
  struct logstore *ls = xcalloc(1, sizeof(*ls));
  ls->loop = loop;
  ls->dir = xstrdup(dir);
  *out = ls;
  return 0;
}

/* ---- writing ---- */

static void mark_seq(struct logfile *f, uint32_t attempt, uint64_t seq)
{
  for (size_t i = 0; i < f->nmarks; i++)
    if (f->marks[i].attempt == attempt) {
      if (seq > f->marks[i].seq)
        f->marks[i].seq = seq;
      return;
    }
  f->marks = xrealloc(f->marks, (f->nmarks + 1) * sizeof(*f->marks));
  f->marks[f->nmarks].attempt = attempt;
  f->marks[f->nmarks].seq = seq;
  f->nmarks++;
}

/* Reads the frame headers from the start, remembering each attempt's last
 * seq; a frame that does not fit in the file, or whose payload does not match
 * its CRC when it is the last one, is where the file is cut. */
static int scan(struct logfile *f)
{
  struct stat st;
  if (fstat(f->fd, &st) < 0)
    return -errno;
  uint64_t off = 0, end = (uint64_t)st.st_size;
  uint8_t h[HEAD_LEN];
  while (off + HEAD_LEN <= end) {
    ssize_t n = pread(f->fd, h, HEAD_LEN, (off_t)off);
    if (n != HEAD_LEN)
      break;
    uint32_t len = get32(h + 4);
    if (get32(h) != MAGIC || len > MAX_FRAME || off + HEAD_LEN + len > end)
      break;
    if (off + HEAD_LEN + len == end) {
      /* The last frame: the one a crash could have torn. */
      uint8_t *p = xmalloc(len ? len : 1);
      n = pread(f->fd, p, len, (off_t)(off + HEAD_LEN));
      int ok = n == (ssize_t)len && crc(p, len) == get32(h + 20);
      free(p);
      if (!ok)
        break;
    }
    mark_seq(f, get32(h + 8), get64(h + 12));
    off += HEAD_LEN + len;
  }
  if (off < end) {
    log_warn("job log had a damaged end; cut off", "file=%s/%s.log bytes=%llu", f->ls->dir, f->id,
             (unsigned long long)(end - off));
    if (ftruncate(f->fd, (off_t)off) < 0)
      return -errno;
  }
  f->size = off;
  return 0;
}

struct logfile *logstore_file(struct logstore *ls, const char *job_id)
{
  char *path = file_path(ls, job_id);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  free(path);
  if (fd < 0)
    return NULL;
  struct logfile *f = xcalloc(1, sizeof(*f));
  f->ls = ls;
  f->id = xstrdup(job_id);
  f->fd = fd;
  f->refs = 1;
  int rc = scan(f);
  if (rc < 0) {
    close(fd);
    free(f->id);
    free(f->marks);
    free(f);
    errno = -rc;
    return NULL;
  }
  ls->open_files++;
  return f;
}

static void file_free(struct logfile *f)
{
  f->ls->open_files--;
  close(f->fd);
  free(f->id);
  free(f->marks);
  free(f);
}

void logfile_release(struct logfile *f)
{
  /* A dirty file is still referenced by the dirty list: the next sync round
   * takes a duplicate of its fd and drops that reference (start_round). */
  if (f && --f->refs == 0)
    file_free(f);
}

uint64_t logfile_last_seq(const struct logfile *f, uint32_t attempt)
{
  for (size_t i = 0; i < f->nmarks; i++)
    if (f->marks[i].attempt == attempt)
      return f->marks[i].seq;
  return 0;
}

uint64_t logfile_size(const struct logfile *f)
{
  return f->size;
}

int logfile_append(struct logfile *f, uint32_t attempt, uint64_t seq, const void *payload,
                   size_t len)
{
  if (len > MAX_FRAME)
    return -EMSGSIZE;
  uint8_t h[HEAD_LEN];
  put32(h, MAGIC);
  put32(h + 4, (uint32_t)len);
  put32(h + 8, attempt);
  put64(h + 12, seq);
  put32(h + 20, crc(payload, len));
  struct iovec iov[2] = {{h, HEAD_LEN}, {(void *)payload, len}};
  size_t want = HEAD_LEN + len, done = 0;
  while (done < want) {
    ssize_t n = pwritev(f->fd, iov, 2, (off_t)(f->size + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      /* Leave no half frame behind: the next append starts at f->size. */
      if (ftruncate(f->fd, (off_t)f->size) < 0)
        log_error("cannot cut a failed log append", "job=%s error=%s", f->id, strerror(errno));
      return -e;
    }
    done += (size_t)n;
    /* Advance the iovecs past what was written. */
    size_t k = (size_t)n;
    for (int i = 0; i < 2 && k; i++) {
      size_t take = k < iov[i].iov_len ? k : iov[i].iov_len;
      iov[i].iov_base = (char *)iov[i].iov_base + take;
      iov[i].iov_len -= take;
      k -= take;
    }
  }
  f->size += want;
  mark_seq(f, attempt, seq);
  if (!f->dirty) {
    f->dirty = 1;
    f->refs++; /* the dirty list's reference */
    f->dnext = f->ls->dirty;
    f->ls->dirty = f;
  }
  return 0;
}

/* ---- the sync rounds ---- */

static void round_work(uv_work_t *w)
{
  struct round *r = w->data;
  for (size_t i = 0; i < r->nfds; i++) {
    if (fdatasync(r->fds[i]) < 0 && !r->status)
      r->status = -errno;
    close(r->fds[i]);
  }
}

static void start_round(struct logstore *ls);

static void round_done(uv_work_t *w, int status)
{
  struct round *r = w->data;
  struct logstore *ls = r->ls;
  if (status < 0 && !r->status)
    r->status = status;
  if (r->status < 0)
    log_error("cannot sync job logs", "error=%s", strerror(-r->status));
  ls->inflight = 0;
  for (struct syncreq *q = r->reqs, *next; q; q = next) {
    next = q->next;
    q->cb(q->ud, r->status);
    free(q);
  }
  free(r->fds);
  free(r);
  if (ls->waiting)
    start_round(ls);
  else if (ls->closing && ls->close_cb) {
    void (*cb)(void *) = ls->close_cb;
    void *ud = ls->close_ud;
    free(ls->dir);
    free(ls);
    cb(ud);
  }
}

/* One round covers every file appended to before it starts: their fds are
 * duplicated for the worker, so the loop may close its own meanwhile. */
static void start_round(struct logstore *ls)
{
  struct round *r = xcalloc(1, sizeof(*r));
  size_t n = 0;
  for (struct logfile *f = ls->dirty; f; f = f->dnext)
    n++;
  r->fds = xcalloc(n ? n : 1, sizeof(int));
  r->ls = ls;
  for (struct logfile *f = ls->dirty, *next; f; f = next) {
    next = f->dnext;
    int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 && !r->status)
      r->status = -errno;
    if (fd >= 0)
      r->fds[r->nfds++] = fd;
    f->dirty = 0;
    f->dnext = NULL;
    if (--f->refs == 0)
      file_free(f);
  }
  ls->dirty = NULL;
  r->reqs = ls->waiting;
  ls->waiting = ls->waiting_tail = NULL;
  r->work.data = r;
  ls->inflight = 1;
  int rc = uv_queue_work(ls->loop, &r->work, round_work, round_done);
  if (rc < 0) { /* only for bad arguments */
    round_work(&r->work);
    round_done(&r->work, 0);
  }
}

void logstore_sync(struct logstore *ls, void (*cb)(void *ud, int status), void *ud)
{
  struct syncreq *q = xcalloc(1, sizeof(*q));
  q->cb = cb;
  q->ud = ud;
  if (ls->waiting_tail)
    ls->waiting_tail->next = q;
  else
    ls->waiting = q;
  ls->waiting_tail = q;
  /* A round in flight does not cover appends made after it started: this
   * request waits for the next one, started when that one is done. */
  if (!ls->inflight)
    start_round(ls);
}

void logstore_close(struct logstore *ls, void (*cb)(void *ud), void *ud)
{
  ls->closing = 1;
  ls->close_cb = cb;
  ls->close_ud = ud;
  if (ls->dirty && !ls->inflight) {
    start_round(ls);
    return;
  }
  if (ls->inflight)
    return;
  free(ls->dir);
  free(ls);
  if (cb)
    cb(ud);
}

/* ---- reading ---- */

struct logreader {
  int fd;
  uint64_t off;
  uint8_t *buf;
  size_t cap;
};

int logreader_open(struct logstore *ls, const char *job_id, struct logreader **out)
{
  char *path = file_path(ls, job_id);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  if (fd < 0)
    return -errno;
  struct logreader *r = xcalloc(1, sizeof(*r));
  r->fd = fd;
  *out = r;
  return 0;
}

void logreader_close(struct logreader *r)
{
  if (!r)
    return;
  close(r->fd);
  free(r->buf);
  free(r);
}

void logreader_rewind(struct logreader *r)
{
  r->off = 0;
}

int logreader_next(struct logreader *r, uint32_t *attempt, uint64_t *seq, const uint8_t **payload,
                   size_t *len)
{
  uint8_t h[HEAD_LEN];
  ssize_t n = pread(r->fd, h, HEAD_LEN, (off_t)r->off);
  if (n < 0)
    return -errno;
  if (n < HEAD_LEN)
    return 0;
  uint32_t plen = get32(h + 4);
  if (get32(h) != MAGIC || plen > MAX_FRAME)
    return -EBADMSG;
  if (plen > r->cap) {
    r->cap = plen;
    r->buf = xrealloc(r->buf, r->cap);
  }
  n = pread(r->fd, r->buf, plen, (off_t)(r->off + HEAD_LEN));
  if (n < 0)
    return -errno;
  if ((size_t)n < plen)
    return 0; /* not all written yet */
  if (crc(r->buf, plen) != get32(h + 20))
    return -EBADMSG;
  r->off += HEAD_LEN + plen;
  *attempt = get32(h + 8);
  *seq = get64(h + 12);
  *payload = r->buf;
  *len = plen;
  return 1;
}

uint32_t logreader_last_attempt(struct logreader *r)
{
  uint64_t off = 0;
  uint32_t last = 0;
  uint8_t h[HEAD_LEN];
  while (pread(r->fd, h, HEAD_LEN, (off_t)off) == HEAD_LEN && get32(h) == MAGIC) {
    uint32_t a = get32(h + 8);
    if (a > last)
      last = a;
    off += HEAD_LEN + get32(h + 4);
  }
  return last;
}
