/* logstore.c - job log files, the shared journal that makes them durable,
 * sync rounds and checkpoints (see logstore.h). */
#include "coord/logstore.h"

#include <dirent.h>
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
#include "base/smap.h"
#include "base/util.h"

#define MAGIC     0x31424c44u         /* "DLB1": a job file's frame */
#define JMAGIC    0x314a4c44u         /* "DLJ1": a journal's frame */
#define HEAD_LEN  24                  /* magic, length, attempt, seq, crc */
#define JHEAD_LEN 26                  /* the same and the job id's length (u16), then the id */
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
  int direct;            /* past LOGSTORE_DIRECT: synced itself, no longer journaled */
  int dirty;             /* direct, appended to since the last round started */
  struct logfile *dnext; /* in ls->dirty */
};

struct syncreq {
  struct syncreq *next;
  void (*cb)(void *ud, int status);
  void *ud;
};

/* One sync round: the journal and the direct files appended to before it
 * started, fdatasynced on the thread pool (their fds duplicated, so the loop
 * may close its own meanwhile). */
struct round {
  uv_work_t work;
  struct logstore *ls;
  int *fds;
  size_t nfds;
  int dirfd; /* >= 0: fsync the folder too (a direct file is new to it) */
  int status;
  struct syncreq *reqs;
};

/* One checkpoint: everything written before the journal switch is made
 * durable where it lives (syncfs: the job files and the folder's entries,
 * one journal commit for all of them), then the old journal goes. */
struct checkpoint {
  uv_work_t work;
  struct logstore *ls;
  int dirfd;
  char *old_path;
  int status;
};

struct logstore {
  uv_loop_t *loop;
  char *dir;
  int dirfd;
  int jfd;       /* the current journal */
  uint64_t jnum; /* its number: journal.<jnum> */
  uint64_t jsize;
  int jdirty;    /* appended to since the last round started */
  int dir_dirty; /* a direct file's entry may not be durable yet */
  struct logfile *dirty;
  struct syncreq *waiting, *waiting_tail;
  int inflight, ckpt_inflight;
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

static uint32_t crc(uint32_t c, const void *p, size_t n)
{
  return (uint32_t)crc32(c, p, (uInt)n);
}

/* Writes every byte of iov at off (pwritev, short writes continued). 0 or
 * -errno. */
static int write_at(int fd, struct iovec *iov, int n, uint64_t off)
{
  while (n > 0) {
    ssize_t w = pwritev(fd, iov, n, (off_t)off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return w < 0 ? -errno : -EIO;
    off += (uint64_t)w;
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

/* ---- job files ---- */

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
      int ok = n == (ssize_t)len && crc(0, p, len) == get32(h + 20);
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
  f->direct = off >= LOGSTORE_DIRECT;
  return 0;
}

static struct logfile *file_open(struct logstore *ls, const char *job_id, int create)
{
  char *path = xasprintf("%s/%s.log", ls->dir, job_id);
  int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0640);
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
  return f;
}

struct logfile *logstore_file(struct logstore *ls, const char *job_id)
{
  return file_open(ls, job_id, 1);
}

struct logfile *logstore_existing(struct logstore *ls, const char *job_id)
{
  return file_open(ls, job_id, 0);
}

static void file_free(struct logfile *f)
{
  close(f->fd);
  free(f->id);
  free(f->marks);
  free(f);
}

void logfile_release(struct logfile *f)
{
  /* A dirty file is also referenced by the dirty list: the next round takes
   * a duplicate of its fd and drops that reference (start_round). */
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

static void frame_head(uint8_t h[HEAD_LEN], uint32_t magic, uint32_t len, uint32_t attempt,
                       uint64_t seq, uint32_t c)
{
  put32(h, magic);
  put32(h + 4, len);
  put32(h + 8, attempt);
  put64(h + 12, seq);
  put32(h + 20, c);
}

/* Appends to the job's own file only. */
static int file_write(struct logfile *f, uint32_t attempt, uint64_t seq, const void *payload,
                      size_t len, uint32_t pcrc)
{
  uint8_t h[HEAD_LEN];
  frame_head(h, MAGIC, (uint32_t)len, attempt, seq, pcrc);
  struct iovec iov[2] = {{h, HEAD_LEN}, {(void *)payload, len}};
  int rc = write_at(f->fd, iov, 2, f->size);
  if (rc < 0) {
    /* Leave no half frame behind: the next append starts at f->size. */
    if (ftruncate(f->fd, (off_t)f->size) < 0)
      log_error("cannot cut a failed log append", "job=%s error=%s", f->id, strerror(errno));
    return rc;
  }
  f->size += HEAD_LEN + len;
  mark_seq(f, attempt, seq);
  return 0;
}

static int journal_write(struct logstore *ls, const char *id, uint32_t attempt, uint64_t seq,
                         const void *payload, size_t len)
{
  uint8_t h[JHEAD_LEN];
  size_t idlen = strlen(id);
  uint32_t c = crc(crc(0, id, idlen), payload, len);
  frame_head(h, JMAGIC, (uint32_t)len, attempt, seq, c);
  h[24] = (uint8_t)idlen;
  h[25] = (uint8_t)(idlen >> 8);
  struct iovec iov[3] = {{h, JHEAD_LEN}, {(void *)id, idlen}, {(void *)payload, len}};
  int rc = write_at(ls->jfd, iov, 3, ls->jsize);
  if (rc < 0)
    return rc;
  ls->jsize += JHEAD_LEN + idlen + len;
  ls->jdirty = 1;
  return 0;
}

int logfile_append(struct logfile *f, uint32_t attempt, uint64_t seq, const void *payload,
                   size_t len)
{
  struct logstore *ls = f->ls;
  if (len > MAX_FRAME)
    return -EMSGSIZE;
  int journaled = !f->direct;
  if (journaled) {
    /* The journal first: what a crash leaves there is replayed into the job
     * file; a frame in the job file alone is never acknowledged. */
    int rc = journal_write(ls, f->id, attempt, seq, payload, len);
    if (rc < 0)
      return rc;
  }
  int rc = file_write(f, attempt, seq, payload, len, crc(0, payload, len));
  if (rc < 0)
    return rc;
  if (!journaled || f->size >= LOGSTORE_DIRECT) {
    if (!f->direct) {
      f->direct = 1;
      ls->dir_dirty = 1; /* its entry must be durable before its own syncs count */
    }
    if (!f->dirty) {
      f->dirty = 1;
      f->refs++; /* the dirty list's reference */
      f->dnext = ls->dirty;
      ls->dirty = f;
    }
  }
  return 0;
}

/* ---- sync rounds ---- */

static void round_work(uv_work_t *w)
{
  struct round *r = w->data;
  for (size_t i = 0; i < r->nfds; i++) {
    if (fdatasync(r->fds[i]) < 0 && !r->status)
      r->status = -errno;
    close(r->fds[i]);
  }
  if (r->dirfd >= 0) {
    if (fsync(r->dirfd) < 0 && !r->status)
      r->status = -errno;
    close(r->dirfd);
  }
}

static void start_round(struct logstore *ls);
static void maybe_checkpoint(struct logstore *ls);
static void finish_close(struct logstore *ls);

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
    if (q->cb)
      q->cb(q->ud, r->status);
    free(q);
  }
  free(r->fds);
  free(r);
  if (ls->waiting)
    start_round(ls);
  maybe_checkpoint(ls);
  finish_close(ls);
}

static void start_round(struct logstore *ls)
{
  struct round *r = xcalloc(1, sizeof(*r));
  size_t n = 1;
  for (struct logfile *f = ls->dirty; f; f = f->dnext)
    n++;
  r->fds = xcalloc(n, sizeof(int));
  r->ls = ls;
  r->dirfd = -1;
  if (ls->jdirty) {
    int fd = fcntl(ls->jfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
      r->status = -errno;
    else
      r->fds[r->nfds++] = fd;
    ls->jdirty = 0;
  }
  for (struct logfile *f = ls->dirty, *next; f; f = next) {
    next = f->dnext;
    int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 && !r->status)
      r->status = -errno;
    if (fd >= 0)
      r->fds[r->nfds++] = fd;
    f->dirty = 0;
    f->dnext = NULL;
    logfile_release(f);
  }
  ls->dirty = NULL;
  if (ls->dir_dirty) {
    r->dirfd = fcntl(ls->dirfd, F_DUPFD_CLOEXEC, 0);
    ls->dir_dirty = 0;
  }
  r->reqs = ls->waiting;
  ls->waiting = ls->waiting_tail = NULL;
  r->work.data = r;
  ls->inflight = 1;
  if (uv_queue_work(ls->loop, &r->work, round_work, round_done) < 0) {
    round_work(&r->work); /* only for bad arguments */
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

/* ---- the journal and checkpoints ---- */

static char *journal_path(const struct logstore *ls, uint64_t n)
{
  return xasprintf("%s/journal.%llu", ls->dir, (unsigned long long)n);
}

static int journal_start(struct logstore *ls, uint64_t n)
{
  char *path = journal_path(ls, n);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  int e = errno;
  free(path);
  if (fd < 0)
    return -e;
  ls->jfd = fd;
  ls->jnum = n;
  ls->jsize = 0;
  ls->jdirty = 0;
  ls->dir_dirty = 1; /* the new journal's entry */
  return 0;
}

static void ckpt_work(uv_work_t *w)
{
  struct checkpoint *k = w->data;
  if (syncfs(k->dirfd) < 0)
    k->status = -errno;
  else if (unlink(k->old_path) < 0 && errno != ENOENT)
    k->status = -errno;
  else if (fsync(k->dirfd) < 0)
    k->status = -errno;
  close(k->dirfd);
}

static void ckpt_done(uv_work_t *w, int status)
{
  struct checkpoint *k = w->data;
  struct logstore *ls = k->ls;
  if (status < 0 && !k->status)
    k->status = status;
  if (k->status < 0)
    log_error("cannot checkpoint job logs; the journal stays", "journal=%s error=%s", k->old_path,
              strerror(-k->status));
  ls->ckpt_inflight = 0;
  free(k->old_path);
  free(k);
  maybe_checkpoint(ls);
  finish_close(ls);
}

/* After a round: a journal past its size (or any journal, when closing)
 * hands over to a new one, and the old one is checkpointed. */
static void maybe_checkpoint(struct logstore *ls)
{
  if (ls->ckpt_inflight || ls->inflight || ls->jfd < 0)
    return;
  if (ls->jsize < LOGSTORE_JOURNAL_MAX && !(ls->closing && (ls->jsize || ls->jdirty)))
    return;
  if (ls->closing && (ls->jdirty || ls->dirty || ls->waiting)) {
    logstore_sync(ls, NULL, NULL); /* the last round first */
    return;
  }
  struct checkpoint *k = xcalloc(1, sizeof(*k));
  k->ls = ls;
  k->old_path = journal_path(ls, ls->jnum);
  k->dirfd = fcntl(ls->dirfd, F_DUPFD_CLOEXEC, 0);
  close(ls->jfd);
  ls->jfd = -1;
  if (!ls->closing && journal_start(ls, ls->jnum + 1) < 0)
    log_error("cannot start a new log journal", "dir=%s error=%s", ls->dir, strerror(errno));
  k->work.data = k;
  ls->ckpt_inflight = 1;
  if (uv_queue_work(ls->loop, &k->work, ckpt_work, ckpt_done) < 0) {
    ckpt_work(&k->work);
    ckpt_done(&k->work, 0);
  }
}

/* Replays one journal into the job files: frames a file already has (by
 * attempt and seq) are skipped. Stops at the first damaged frame (the torn
 * end of the last write). Returns the number of frames replayed, or -errno. */
static long replay(struct logstore *ls, const char *path, struct smap *files)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  uint64_t off = 0;
  long n = 0;
  uint8_t h[JHEAD_LEN], *buf = NULL;
  size_t cap = 0;
  for (;;) {
    if (pread(fd, h, JHEAD_LEN, (off_t)off) != JHEAD_LEN || get32(h) != JMAGIC)
      break;
    uint32_t len = get32(h + 4);
    size_t idlen = (size_t)h[24] | (size_t)h[25] << 8;
    if (len > MAX_FRAME || idlen == 0 || idlen > 128)
      break;
    if (idlen + len > cap) {
      cap = idlen + len;
      buf = xrealloc(buf, cap);
    }
    if (pread(fd, buf, idlen + len, (off_t)(off + JHEAD_LEN)) != (ssize_t)(idlen + len) ||
        crc(0, buf, idlen + len) != get32(h + 20))
      break;
    off += JHEAD_LEN + idlen + len;
    char id[129];
    memcpy(id, buf, idlen);
    id[idlen] = '\0';
    struct logfile *f = smap_get(files, id);
    if (!f) {
      f = logstore_file(ls, id);
      if (!f) {
        log_error("cannot open a job log to replay into", "job=%s error=%s", id, strerror(errno));
        continue;
      }
      smap_put(files, id, f);
    }
    uint32_t attempt = get32(h + 8);
    uint64_t seq = get64(h + 12);
    if (seq <= logfile_last_seq(f, attempt))
      continue;
    if (file_write(f, attempt, seq, buf + idlen, len, crc(0, buf + idlen, len)) == 0)
      n++;
  }
  free(buf);
  close(fd);
  return n;
}

static int release_file(const char *key, void *val, void *ud)
{
  (void)key;
  (void)ud;
  logfile_release(val);
  return 0;
}

/* Journals left by the previous life: replayed in order, made durable in the
 * job files (syncfs), then removed. Returns the next journal number. */
static int recover(struct logstore *ls, uint64_t *next, char *err, size_t errlen)
{
  DIR *d = fdopendir(fcntl(ls->dirfd, F_DUPFD_CLOEXEC, 0));
  if (!d) {
    snprintf(err, errlen, "log directory '%s': %s", ls->dir, strerror(errno));
    return -errno;
  }
  uint64_t *nums = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    if (strncmp(e->d_name, "journal.", 8))
      continue;
    unsigned long long v = strtoull(e->d_name + 8, &end, 10);
    if (*end || end == e->d_name + 8)
      continue;
    nums = xrealloc(nums, (n + 1) * sizeof(*nums));
    nums[n++] = v;
  }
  closedir(d);
  for (size_t i = 1; i < n; i++) /* few: insertion sort */
    for (size_t k = i; k > 0 && nums[k - 1] > nums[k]; k--) {
      uint64_t t = nums[k];
      nums[k] = nums[k - 1];
      nums[k - 1] = t;
    }
  struct smap files;
  smap_init(&files);
  long replayed = 0;
  for (size_t i = 0; i < n; i++) {
    char *path = journal_path(ls, nums[i]);
    long r = replay(ls, path, &files);
    if (r < 0)
      log_error("cannot read log journal", "journal=%s error=%s", path, strerror((int)-r));
    else
      replayed += r;
    free(path);
  }
  smap_foreach(&files, release_file, NULL);
  smap_release(&files, NULL);
  int rc = 0;
  if (n) {
    if (syncfs(ls->dirfd) < 0) {
      rc = -errno;
      snprintf(err, errlen, "log directory '%s': cannot sync it: %s", ls->dir, strerror(errno));
    } else {
      for (size_t i = 0; i < n; i++) {
        char *path = journal_path(ls, nums[i]);
        unlink(path);
        free(path);
      }
      fsync(ls->dirfd);
      if (replayed)
        log_info("job log journal replayed", "dir=%s journals=%zu frames=%ld", ls->dir, n,
                 replayed);
    }
  }
  *next = n ? nums[n - 1] + 1 : 1;
  free(nums);
  return rc;
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
  ls->jfd = -1;
  ls->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  uint64_t next = 1;
  if (ls->dirfd < 0) {
    rc = -errno;
    snprintf(err, errlen, "log directory '%s': %s", dir, strerror(errno));
  } else if ((rc = recover(ls, &next, err, errlen)) == 0 && (rc = journal_start(ls, next)) < 0) {
    snprintf(err, errlen, "log directory '%s': cannot start a journal: %s", dir, strerror(-rc));
  }
  if (rc < 0) {
    if (ls->dirfd >= 0)
      close(ls->dirfd);
    free(ls->dir);
    free(ls);
    return rc;
  }
  *out = ls;
  return 0;
}

static void finish_close(struct logstore *ls)
{
  if (!ls->closing || ls->inflight || ls->ckpt_inflight)
    return;
  if (ls->jfd >= 0) {
    maybe_checkpoint(ls);
    if (ls->inflight || ls->ckpt_inflight)
      return;
    close(ls->jfd); /* an empty journal: nothing to keep */
    char *path = journal_path(ls, ls->jnum);
    unlink(path);
    free(path);
    ls->jfd = -1;
  }
  void (*cb)(void *) = ls->close_cb;
  void *ud = ls->close_ud;
  close(ls->dirfd);
  free(ls->dir);
  free(ls);
  if (cb)
    cb(ud);
}

void logstore_close(struct logstore *ls, void (*cb)(void *ud), void *ud)
{
  ls->closing = 1;
  ls->close_cb = cb;
  ls->close_ud = ud;
  finish_close(ls);
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
  char *path = xasprintf("%s/%s.log", ls->dir, job_id);
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
  if (crc(0, r->buf, plen) != get32(h + 20))
    return -EBADMSG;
  r->off += HEAD_LEN + plen;
  *attempt = get32(h + 8);
  *seq = get64(h + 12);
  *payload = r->buf;
  *len = plen;
  return 1;
}

uint64_t logreader_offset(const struct logreader *r)
{
  return r->off;
}

void logreader_seek(struct logreader *r, uint64_t off)
{
  r->off = off;
}
