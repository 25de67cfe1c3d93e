/* jobsdir.c - the stand-alone agent: claims job files from a folder, runs them
 * through the pool, writes results, logs, status files, and moves the files on.
 *
 * Every file that is claimed ends in exactly one place: DIR/done/, DIR/failed/
 * (with a result or an .error.txt), or back in DIR/ (queued at shutdown). The
 * ordering on completion is: result file (fsynced, atomic) first, then the job
 * file moves out of running/. A crash in between leaves the job file in
 * running/ and the job is run again; a result is never missing for a file in
 * done/ or failed/. */
#include "agent/jobsdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "exec/pool.h"
#include "job/job.h"
#include "job/result.h"

#define MAX_ATTEMPTS   2
#define LOGBUF_CAP     (64 * 1024) /* flush a job's log at this size ... */
#define FLUSH_EVERY_MS 100         /* ... or this often, and at job end */
#define SCAN_GAP_MS    20          /* at most one folder scan per gap */

/* ---- a small string-keyed hash map (ids, idempotency keys) ---- */

struct ment {
  char *key;
  void *val;
  struct ment *next;
};

struct smap {
  struct ment **b;
  size_t nb, n;
};

static uint64_t hash_str(const char *s)
{
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static struct ment **smap_slot(struct smap *m, const char *key)
{
  struct ment **p = &m->b[hash_str(key) & (m->nb - 1)];
  while (*p && strcmp((*p)->key, key))
    p = &(*p)->next;
  return p;
}

static void *smap_get(struct smap *m, const char *key)
{
  if (!m->nb)
    return NULL;
  struct ment *e = *smap_slot(m, key);
  return e ? e->val : NULL;
}

static void smap_grow(struct smap *m)
{
  size_t nb = m->nb ? m->nb * 2 : 64;
  struct ment **b = xcalloc(nb, sizeof(*b));
  for (size_t i = 0; i < m->nb; i++) {
    for (struct ment *e = m->b[i], *next; e; e = next) {
      next = e->next;
      struct ment **slot = &b[hash_str(e->key) & (nb - 1)];
      e->next = *slot;
      *slot = e;
    }
  }
  free(m->b);
  m->b = b;
  m->nb = nb;
}

/* Stores val under key (copied); returns the value it replaced, or NULL. */
static void *smap_put(struct smap *m, const char *key, void *val)
{
  if (m->n + 1 > m->nb)
    smap_grow(m);
  struct ment **slot = smap_slot(m, key);
  if (*slot) {
    void *old = (*slot)->val;
    (*slot)->val = val;
    return old;
  }
  struct ment *e = xmalloc(sizeof(*e));
  e->key = xstrdup(key);
  e->val = val;
  e->next = NULL;
  *slot = e;
  m->n++;
  return NULL;
}

static void *smap_del(struct smap *m, const char *key)
{
  if (!m->nb)
    return NULL;
  struct ment **slot = smap_slot(m, key), *e = *slot;
  if (!e)
    return NULL;
  void *val = e->val;
  *slot = e->next;
  free(e->key);
  free(e);
  m->n--;
  return val;
}

/* Frees the map; free_val (may be NULL) is called on every value. */
static void smap_release(struct smap *m, void (*free_val)(void *))
{
  for (size_t i = 0; i < m->nb; i++) {
    for (struct ment *e = m->b[i], *next; e; e = next) {
      next = e->next;
      if (free_val)
        free_val(e->val);
      free(e->key);
      free(e);
    }
  }
  free(m->b);
  memset(m, 0, sizeof(*m));
}

/* ---- state ---- */

enum track_state { T_QUEUED, T_RUNNING };

/* One claimed job, from claim to result. */
struct track {
  char id[129];
  char *file; /* name in DIR (and in running/) */
  enum track_state state;
  unsigned attempt;
  int returning; /* shutdown: put the file back instead of a result */
  const char *cancel_reason;
  char *idem_key;
  int log_fd; /* -1 until the job starts */
  int log_failed;
  char *logbuf; /* LOGBUF_CAP bytes while running */
  size_t loglen;
  struct job_progress progress;
  int status_dirty;          /* the status file is behind: written on the next tick */
  struct track *prev, *next; /* all tracks, for the flush timer */
};

struct jobsdir {
  uv_loop_t *loop;
  char *dir;
  char *d_running, *d_results, *d_logs, *d_done, *d_failed, *d_cancel, *d_status;
  unsigned slots;
  uint64_t shutdown_timeout_ms;

  struct pool *pool;
  struct smap tracks; /* id -> struct track */
  struct smap idem;   /* idempotency key -> id of the succeeded job (char *) */
  struct track *list;
  const struct job *last_job; /* on_line cache: the pool's job pointer ... */
  struct track *last_track;   /* ... and its track */

  uv_fs_event_t dir_ev, cancel_ev;
  uv_timer_t scan_timer, flush_timer, shutdown_timer, done_timer, poll_timer;
  int64_t last_scan_ms;
  int watching;
  int busy_skipped; /* a file waits for a same-named one to leave running/ */
  unsigned writing; /* results being written on the thread pool */
  int lock_fd;      /* DIR/.agent.lock, flock()ed while we run */

  int started, shutting; /* shutting: 0 no, 1 waiting, 2 cancelling, 3 killing */
  jobsdir_shutdown_cb shutdown_cb;
  void *shutdown_ud;
  int closing; /* handles left to close in jobsdir_free */

  int64_t ts_sec; /* cached "YYYY-MM-DDTHH:MM:SS" of ts_sec */
  char ts_prefix[64];
  int64_t ts_last_us; /* the last stamp formatted, and its text */
  char ts_last[32];
};

static void scan_jobs(struct jobsdir *jd);
static void scan_cancels(struct jobsdir *jd);
static void check_idle(struct jobsdir *jd);
static void flush_cb(uv_timer_t *h);

/* ---- files ---- */

static int has_suffix(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !memcmp(s + n - m, suffix, m);
}

static int job_name_filter(const struct dirent *d)
{
  return d->d_name[0] != '.' && d->d_type != DT_DIR && has_suffix(d->d_name, ".json") &&
         strlen(d->d_name) > 5;
}

static int plain_name_filter(const struct dirent *d)
{
  return d->d_name[0] != '.' && d->d_type != DT_DIR;
}

/* rename() that never replaces: 0, -EEXIST, -ENOENT, ... Falls back to
 * link+unlink on file systems without RENAME_NOREPLACE. */
static int rename_noreplace(const char *from, const char *to)
{
  if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -errno;
  if (link(from, to) < 0)
    return -errno;
  unlink(from);
  return 0;
}

/* Moves dir_from/name into dir_to under name, or "stem.N.json" when taken.
 * Returns the final name (heap) or NULL with errno set. */
static char *move_unique(const char *from, const char *dir_to, const char *name)
{
  size_t stem = has_suffix(name, ".json") ? strlen(name) - 5 : strlen(name);
  for (unsigned n = 0; n < 10000; n++) {
    char *dst_name = n ? xasprintf("%.*s.%u%s", (int)stem, name, n, name + stem) : xstrdup(name);
    char *dst = xasprintf("%s/%s", dir_to, dst_name);
    int rc = rename_noreplace(from, dst);
    free(dst);
    if (rc == 0)
      return dst_name;
    free(dst_name);
    if (rc != -EEXIST) {
      errno = -rc;
      return NULL;
    }
  }
  errno = EEXIST;
  return NULL;
}

/* Small files that only live while a job does (status): atomic by rename but
 * not fsynced; they are advisory and rewritten often. */
static int write_file_fast(const char *dir, const char *name, const char *data, size_t len)
{
  char *tmp = xasprintf("%s/.%s.tmp", dir, name);
  char *path = xasprintf("%s/%s", dir, name);
  int err = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    err = -errno;
    goto out;
  }
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      err = -errno;
      break;
    }
    data += n;
    len -= (size_t)n;
  }
  close(fd);
  if (!err && rename(tmp, path) < 0)
    err = -errno;
  if (err)
    unlink(tmp);
out:
  free(tmp);
  free(path);
  return err;
}

/* The attempt marker of running/<file>: how many times the job was started.
 * Kept as an extended attribute of the job file itself (no extra file to
 * create and delete per job: creating inodes is what costs most on a busy
 * ext4), or as a sidecar file "<file>.attempt" where the file system has no
 * user xattrs. The sidecar wins when both exist. */
#define ATTEMPT_XATTR "user.drover.attempt"

static unsigned read_attempt_marker(const char *job_path)
{
  char *side = xasprintf("%s.attempt", job_path), *text = NULL;
  char buf[16];
  size_t len;
  unsigned n = 0;
  if (read_file(side, &text, &len) == 0) {
    n = (unsigned)strtoul(text, NULL, 10);
  } else {
    ssize_t got = getxattr(job_path, ATTEMPT_XATTR, buf, sizeof(buf) - 1);
    if (got > 0) {
      buf[got] = '\0';
      n = (unsigned)strtoul(buf, NULL, 10);
    }
  }
  free(text);
  free(side);
  return n;
}

static void clear_attempt_marker(const char *job_path)
{
  char *side = xasprintf("%s.attempt", job_path);
  unlink(side);
  free(side);
  removexattr(job_path, ATTEMPT_XATTR);
}

static int write_attempt_marker(struct jobsdir *jd, const char *file, unsigned attempt)
{
  char *path = xasprintf("%s/%s", jd->d_running, file);
  char num[16];
  int n = snprintf(num, sizeof(num), "%u", attempt), rc = 0;
  if (setxattr(path, ATTEMPT_XATTR, num, (size_t)n, 0) < 0) {
    char *side = xasprintf("%s.attempt", file);
    num[n++] = '\n';
    rc = write_file_fast(jd->d_running, side, num, (size_t)n);
    free(side);
  }
  free(path);
  return rc;
}

/* ---- the per-job log: "<time> <stream> <text>\n" ----
 *
 * The log is written with plain write() from the loop thread, in batches of up
 * to LOGBUF_CAP bytes (and every FLUSH_EVERY_MS, and at job end): one syscall
 * per 64 KiB instead of one per line is what lets a job's output be captured at
 * hundreds of MB/s. A write() of 64 KiB into the page cache does not block for
 * long; uv_fs writes on the thread pool would need a second buffer per job and
 * ordering between writes for no gain at this size. */

static size_t fmt_ts(struct jobsdir *jd, char *out, int64_t us)
{
  /* exec stamps every line of one read() with the same time: the last
   * stamp's text is reused as is, the rest of its second is cached. */
  if (us == jd->ts_last_us) {
    memcpy(out, jd->ts_last, 27);
    return 27;
  }
  int64_t sec = us / 1000000;
  if (sec != jd->ts_sec) {
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(jd->ts_prefix, sizeof(jd->ts_prefix), "%04d-%02d-%02dT%02d:%02d:%02d",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    jd->ts_sec = sec;
  }
  memcpy(out, jd->ts_prefix, 19);
  out[19] = '.';
  unsigned frac = (unsigned)(us % 1000000);
  for (int i = 25; i >= 20; i--) {
    out[i] = (char)('0' + frac % 10);
    frac /= 10;
  }
  out[26] = 'Z';
  memcpy(jd->ts_last, out, 27);
  jd->ts_last_us = us;
  return 27;
}

static void log_write_all(struct track *t, const char *data, size_t len)
{
  while (len > 0 && !t->log_failed) {
    ssize_t n = write(t->log_fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      /* Disk full or gone: say so once; the job itself keeps running. */
      log_error("cannot write job log", "job=%s error=%s", t->id, strerror(errno));
      t->log_failed = 1;
      return;
    }
    data += n;
    len -= (size_t)n;
  }
}

static void log_flush(struct track *t)
{
  if (t->loglen && t->log_fd >= 0)
    log_write_all(t, t->logbuf, t->loglen);
  t->loglen = 0;
}

static void log_line(struct jobsdir *jd, struct track *t, enum job_stream s, int64_t ts,
                     const char *data, size_t len)
{
  static const char names[3][5] = {" out ", " err ", " sys "};
  if (t->log_fd < 0 || t->log_failed)
    return;
  size_t need = 27 + 5 + len + 1;
  if (t->loglen + need > LOGBUF_CAP)
    log_flush(t);
  if (need > LOGBUF_CAP) {
    /* A line longer than the buffer (lines are split at 64 KiB by exec, so
     * only just longer): write it through. */
    char head[32];
    fmt_ts(jd, head, ts);
    memcpy(head + 27, names[s > JOB_SYSTEM ? JOB_SYSTEM : s], 5);
    struct iovec iov[3] = {{head, 32}, {(void *)data, len}, {"\n", 1}};
    ssize_t want = (ssize_t)(32 + len + 1);
    if (writev(t->log_fd, iov, 3) != want) /* rare path: fall back to whole writes */
      log_error("short write to job log", "job=%s", t->id);
    return;
  }
  char *p = t->logbuf + t->loglen;
  p += fmt_ts(jd, p, ts);
  memcpy(p, names[s > JOB_SYSTEM ? JOB_SYSTEM : s], 5);
  p += 5;
  memcpy(p, data, len);
  p += len;
  *p++ = '\n';
  t->loglen = (size_t)(p - t->logbuf);
}

static void log_sys(struct jobsdir *jd, struct track *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_sys(struct jobsdir *jd, struct track *t, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  log_line(jd, t, JOB_SYSTEM, now_us(), buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* ---- status files ---- */

static void progress_to_json(json_t *o, const struct job_progress *p)
{
  if (p->percent < 0 && !p->stage && !p->message)
    return;
  json_t *pr = json_object();
  if (p->percent >= 0)
    json_object_set_new(pr, "percent", json_integer(p->percent));
  if (p->stage)
    json_object_set_new(pr, "stage", json_string(p->stage));
  if (p->message)
    json_object_set_new(pr, "message", json_string(p->message));
  json_object_set_new(o, "progress", pr);
}

static void write_status(struct jobsdir *jd, struct track *t)
{
  char ts[40];
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(t->id));
  json_object_set_new(o, "file", json_string(t->file));
  json_object_set_new(o, "state", json_string(t->state == T_RUNNING ? "running" : "queued"));
  json_object_set_new(o, "attempt", json_integer(t->attempt));
  fmt_time_us(ts, sizeof(ts), now_us());
  json_object_set_new(o, "updated_at", json_string(ts));
  progress_to_json(o, &t->progress);
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  char *name = xasprintf("%s.json", t->id);
  size_t len = strlen(text);
  text = xrealloc(text, len + 2);
  text[len++] = '\n';
  if (write_file_fast(jd->d_status, name, text, len) < 0)
    log_warn("cannot write status file", "job=%s dir=%s", t->id, jd->d_status);
  free(name);
  free(text);
  t->status_dirty = 0;
}

/* A queued job's status is a hard link to one shared file that says
 * {"state":"queued"}: a link makes no new inode, so claiming 2,000 files at
 * once costs 2,000 directory entries, not 2,000 file writes. */
static void write_queued_status(struct jobsdir *jd, struct track *t)
{
  char *shared = xasprintf("%s/.queued", jd->d_status);
  char *path = xasprintf("%s/%s.json", jd->d_status, t->id);
  if (link(shared, path) < 0 && errno != EEXIST) {
    static const char doc[] = "{\"state\":\"queued\"}\n";
    if (write_file_fast(jd->d_status, ".queued", doc, sizeof(doc) - 1) < 0 ||
        (link(shared, path) < 0 && errno != EEXIST))
      write_status(jd, t);
  }
  free(shared);
  free(path);
}

static void remove_status(struct jobsdir *jd, const char *id)
{
  char *path = xasprintf("%s/%s.json", jd->d_status, id);
  unlink(path);
  free(path);
}

/* ---- tracks ---- */

static void progress_clear(struct job_progress *p)
{
  free(p->stage);
  free(p->message);
  p->stage = p->message = NULL;
  p->percent = -1;
}

static struct track *track_new(struct jobsdir *jd, const struct job *j, const char *file)
{
  struct track *t = xcalloc(1, sizeof(*t));
  snprintf(t->id, sizeof(t->id), "%s", j->id);
  t->file = xstrdup(file);
  t->attempt = j->attempt;
  t->idem_key = j->idempotency_key ? xstrdup(j->idempotency_key) : NULL;
  t->log_fd = -1;
  t->progress.percent = -1;
  t->next = jd->list;
  if (jd->list)
    jd->list->prev = t;
  jd->list = t;
  smap_put(&jd->tracks, t->id, t);
  return t;
}

static void track_free(struct jobsdir *jd, struct track *t)
{
  smap_del(&jd->tracks, t->id);
  if (t->prev)
    t->prev->next = t->next;
  else
    jd->list = t->next;
  if (t->next)
    t->next->prev = t->prev;
  if (jd->last_track == t) {
    jd->last_track = NULL;
    jd->last_job = NULL;
  }
  if (t->log_fd >= 0)
    close(t->log_fd);
  free(t->logbuf);
  free(t->file);
  free(t->idem_key);
  progress_clear(&t->progress);
  free(t);
}

static struct track *track_of(struct jobsdir *jd, const struct job *j)
{
  if (j == jd->last_job && jd->last_track)
    return jd->last_track;
  struct track *t = smap_get(&jd->tracks, j->id);
  jd->last_job = j;
  jd->last_track = t;
  return t;
}

/* ---- completion ---- */

/* A result on its way to the disk. The write (with its fdatasync, a few
 * hundred microseconds on a VM disk) runs on libuv's thread pool so that the
 * loop keeps starting jobs meanwhile; the job file leaves running/ only after
 * the result is on disk, so a crash in between runs the job again rather than
 * losing its result. */
struct result_write {
  uv_work_t req;
  struct jobsdir *jd;
  char *path, *doc;
  size_t len;
  int rc;
  char *file;
  int succeeded;
};

static void result_write_work(uv_work_t *req)
{
  struct result_write *w = req->data;
  w->rc = write_file_atomic(w->path, w->doc, w->len);
}

static void result_write_done(uv_work_t *req, int status)
{
  struct result_write *w = req->data;
  struct jobsdir *jd = w->jd;
  if (status < 0) /* cancelled: cannot happen, the loop never cancels it */
    w->rc = status;
  if (w->rc < 0)
    log_error("cannot write result", "path=%s error=%s", w->path, strerror(-w->rc));
  char *src = xasprintf("%s/%s", jd->d_running, w->file);
  clear_attempt_marker(src);
  const char *to = w->succeeded ? jd->d_done : jd->d_failed;
  char *moved = move_unique(src, to, w->file);
  if (!moved)
    log_error("cannot move job file", "file=%s to=%s error=%s", src, to, strerror(errno));
  free(moved);
  free(src);
  free(w->path);
  free(w->doc);
  free(w->file);
  free(w);
  jd->writing--;
  if (jd->busy_skipped && !jd->shutting) {
    jd->busy_skipped = 0;
    scan_jobs(jd);
  }
  check_idle(jd);
}

/* Writes the result, then moves the job file out of running/; updates the
 * index. `extra` (may be NULL) is merged into the result document and
 * consumed. */
static void complete(struct jobsdir *jd, const char *file, const struct job *j,
                     const struct job_result *r, json_t *extra)
{
  if (!extra)
    extra = json_object();
  json_object_set_new(extra, "file", json_string(file));
  if (j->idempotency_key)
    json_object_set_new(extra, "idempotency_key", json_string(j->idempotency_key));
  struct result_write *w = xcalloc(1, sizeof(*w));
  w->req.data = w;
  w->jd = jd;
  w->doc = job_result_to_json(j, r, extra);
  json_decref(extra);
  w->len = strlen(w->doc);
  w->doc = xrealloc(w->doc, w->len + 2);
  w->doc[w->len++] = '\n';
  w->path = xasprintf("%s/%s.json", jd->d_results, j->id);
  w->file = xstrdup(file);
  w->succeeded = r->status == JOB_SUCCEEDED;
  remove_status(jd, j->id);
  jd->writing++;
  int rc = uv_queue_work(jd->loop, &w->req, result_write_work, result_write_done);
  if (rc < 0) { /* only for bad arguments; write here and now */
    result_write_work(&w->req);
    result_write_done(&w->req, 0);
  }

  /* Indexed at once: a job with the same key claimed while the result is
   * being written is a duplicate already. */
  if (r->status == JOB_SUCCEEDED && j->idempotency_key && !smap_get(&jd->idem, j->idempotency_key))
    smap_put(&jd->idem, j->idempotency_key, xstrdup(j->id));

  log_info("job finished", "job=%s file=%s status=%s exit=%d duration_ms=%llu", j->id, file,
           job_status_name(r->status), r->exit_code, (unsigned long long)(r->duration_us / 1000));
}

/* Completes a job that is never run (dedup, cancelled before start, too many
 * attempts). Releases j. */
static void complete_unrun(struct jobsdir *jd, const char *file, struct job *j, enum job_status st,
                           const char *error, json_t *extra)
{
  struct job_result r;
  job_result_init(&r);
  r.status = st;
  r.exit_code = st == JOB_SUCCEEDED ? 0 : -1;
  r.attempt = j->attempt;
  r.error = error ? xstrdup(error) : NULL;
  int64_t now = now_us();
  r.finished_us = now;
  complete(jd, file, j, &r, extra);
  job_result_release(&r);
  job_release(j);
}

/* A file that is not a job: to failed/ with an .error.txt next to it. */
static void fail_file(struct jobsdir *jd, const char *file, const char *why)
{
  char *src = xasprintf("%s/%s", jd->d_running, file);
  clear_attempt_marker(src);
  char *moved = move_unique(src, jd->d_failed, file);
  log_error("bad job file", "file=%s error=%s", file, why);
  if (moved) {
    char *epath = xasprintf("%s/%s.error.txt", jd->d_failed, moved);
    char *text = xasprintf("error: %s\n", why);
    if (write_file_atomic(epath, text, strlen(text)) < 0)
      log_error("cannot write error file", "path=%s", epath);
    free(text);
    free(epath);
    free(moved);
  } else {
    log_error("cannot move job file", "file=%s error=%s", src, strerror(errno));
  }
  free(src);
}

/* Takes the file running/<file> (already claimed) into the pool. `attempt` is
 * the attempt this run would be. */
static void admit(struct jobsdir *jd, const char *file, unsigned attempt)
{
  struct job j;
  struct job_error err;
  char buf[1024];
  memset(&j, 0, sizeof(j));
  memset(&err, 0, sizeof(err));

  char *path = xasprintf("%s/%s", jd->d_running, file);
  int rc = job_load_file(&j, path, &err);
  free(path);
  if (rc < 0) {
    char *origin = xasprintf("job file '%s/%s'", jd->dir, file);
    job_error_format(&err, origin, buf, sizeof(buf));
    free(origin);
    fail_file(jd, file, buf);
    return;
  }
  struct track *other = smap_get(&jd->tracks, j.id);
  if (other) {
    snprintf(buf, sizeof(buf),
             "job file '%s/%s': id \"%s\" is already queued or running (file '%s'); "
             "give each job its own id",
             jd->dir, file, j.id, other->file);
    job_release(&j);
    fail_file(jd, file, buf);
    return;
  }
  j.attempt = attempt;
  log_info("job claimed", "job=%s file=%s attempt=%u", j.id, file, attempt);

  if (attempt > MAX_ATTEMPTS) {
    j.attempt = attempt - 1;
    complete_unrun(jd, file, &j, JOB_FAILED, "agent restarted twice while this job was running",
                   NULL);
    return;
  }
  char *cpath = xasprintf("%s/%s", jd->d_cancel, j.id);
  if (access(cpath, F_OK) == 0) {
    unlink(cpath);
    free(cpath);
    json_t *extra = json_pack("{s:s}", "cancel_reason", "cancel file");
    complete_unrun(jd, file, &j, JOB_CANCELLED, "cancelled before it started", extra);
    return;
  }
  free(cpath);
  const char *first = j.idempotency_key ? smap_get(&jd->idem, j.idempotency_key) : NULL;
  if (first) {
    json_t *extra = json_pack("{s:b,s:s}", "deduplicated", 1, "duplicate_of", first);
    log_info("job deduplicated", "job=%s key=%s duplicate_of=%s", j.id, j.idempotency_key, first);
    complete_unrun(jd, file, &j, JOB_SUCCEEDED, NULL, extra);
    return;
  }

  /* exec gives the job DROVER_ATTEMPT and DROVER_JOB_ID from j. */
  struct track *t = track_new(jd, &j, file);
  write_queued_status(jd, t);
  /* The pool takes j; it may call on_start or even on_done before returning,
   * so t must not be used after this. */
  pool_submit(jd->pool, &j);
}

/* ---- pool callbacks ---- */

static void on_start(struct pool *p, void *ud, struct exec *e, const struct job *j)
{
  struct jobsdir *jd = ud;
  struct track *t = smap_get(&jd->tracks, j->id);
  if (!t)
    return;
  t->state = T_RUNNING;
  /* The marker is written before the process exists: after a crash, a job
   * with a marker may have run (part of) its work, one without has not. */
  if (write_attempt_marker(jd, t->file, t->attempt) < 0)
    log_warn("cannot write attempt marker", "file=%s", t->file);

  char *lpath = xasprintf("%s/%s.log", jd->d_logs, t->id);
  t->log_fd = open(lpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (t->log_fd < 0)
    log_error("cannot open job log", "path=%s error=%s", lpath, strerror(errno));
  free(lpath);
  t->logbuf = xmalloc(LOGBUF_CAP);
  if (t->attempt > 1)
    log_sys(jd, t, "attempt %u (the agent restarted while attempt %u was running)", t->attempt,
            t->attempt - 1);
  /* The "queued" status goes; "running" is written on the next tick, so a
   * job shorter than a tick costs no status file at all. */
  remove_status(jd, t->id);
  t->status_dirty = 1;
  log_info("job started", "job=%s pid=%d attempt=%u", t->id, e ? exec_pid(e) : 0, t->attempt);
  if (!uv_is_active((uv_handle_t *)&jd->flush_timer))
    uv_timer_start(&jd->flush_timer, flush_cb, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
}

static void on_line(struct pool *p, void *ud, const struct job *j, enum job_stream s, int64_t ts_us,
                    const char *data, size_t len, int partial)
{
  struct jobsdir *jd = ud;
  struct track *t = track_of(jd, j);
  if (t)
    log_line(jd, t, s, ts_us, data, len);
}

static void on_progress(struct pool *p, void *ud, const struct job *j,
                        const struct job_progress *pr)
{
  struct jobsdir *jd = ud;
  struct track *t = track_of(jd, j);
  if (!t)
    return;
  progress_clear(&t->progress);
  t->progress.percent = pr->percent;
  t->progress.stage = pr->stage ? xstrdup(pr->stage) : NULL;
  t->progress.message = pr->message ? xstrdup(pr->message) : NULL;
  /* Written by the flush timer: a job reporting progress in a tight loop
   * costs one small file write per FLUSH_EVERY_MS, not one per report. */
  t->status_dirty = 1;
}

static void on_done(struct pool *p, void *ud, const struct job *j, const struct job_result *r)
{
  struct jobsdir *jd = ud;
  struct track *t = smap_get(&jd->tracks, j->id);
  if (!t)
    return;
  if (t->returning && t->state == T_QUEUED) {
    /* Shutdown: the job never started; its file goes back for the next agent. */
    char *src = xasprintf("%s/%s", jd->d_running, t->file);
    char *back = move_unique(src, jd->dir, t->file);
    if (back)
      log_info("job returned to the jobs directory", "job=%s file=%s", t->id, back);
    else
      log_error("cannot return job file", "file=%s error=%s", src, strerror(errno));
    free(back);
    free(src);
    remove_status(jd, t->id);
    track_free(jd, t);
    check_idle(jd);
    return;
  }

  /* Our view of attempt and progress completes what exec knows. */
  struct job_result rr = *r;
  rr.attempt = t->attempt;
  if (rr.progress.percent < 0 && !rr.progress.stage && !rr.progress.message)
    rr.progress = t->progress;
  if (t->log_fd >= 0) {
    if (r->error)
      log_sys(jd, t, "error: %s", r->error);
    log_sys(jd, t, "%s, exit code %d%s, %llu ms", job_status_name(r->status), r->exit_code,
            r->signal ? ", killed by a signal" : "", (unsigned long long)(r->duration_us / 1000));
    log_flush(t);
  }
  json_t *extra = NULL;
  if (r->status == JOB_CANCELLED && t->cancel_reason)
    extra = json_pack("{s:s}", "cancel_reason", t->cancel_reason);
  char *file = xstrdup(t->file);
  track_free(jd, t);
  complete(jd, file, j, &rr, extra);
  free(file);
  check_idle(jd);
}

/* ---- timers and watchers ---- */

static void flush_cb(uv_timer_t *h)
{
  struct jobsdir *jd = h->data;
  int running = 0;
  for (struct track *t = jd->list; t; t = t->next) {
    if (t->state != T_RUNNING)
      continue;
    running = 1;
    log_flush(t);
    if (t->status_dirty)
      write_status(jd, t);
  }
  if (!running)
    uv_timer_stop(h); /* idle agents do not wake up */
}

/* inotify drops events when its queue overflows (16,384 by default: a big
 * enough burst of files does it) and libuv does not report the overflow; a
 * slow rescan makes sure such files are still taken. */
#define POLL_EVERY_MS 2000
static void poll_timer_cb(uv_timer_t *h)
{
  struct jobsdir *jd = h->data;
  scan_cancels(jd);
  scan_jobs(jd);
}

static void scan_timer_cb(uv_timer_t *h)
{
  scan_jobs(h->data);
}

/* Any change in DIR may be a new file (or many: events coalesce), so the
 * folder is read again, but at most once per SCAN_GAP_MS: dropping 2,000 files
 * must not cost 2,000 scans of a 2,000-entry folder. Our own claims (renames
 * out of DIR) cause events too; the gap bounds those as well. */
static void dir_event_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
  struct jobsdir *jd = h->data;
  if (jd->shutting)
    return;
  if (name && (name[0] == '.' || !has_suffix(name, ".json")))
    return;
  if (uv_is_active((uv_handle_t *)&jd->scan_timer))
    return;
  int64_t now = (int64_t)uv_now(jd->loop);
  int64_t wait = jd->last_scan_ms + SCAN_GAP_MS - now;
  uv_timer_start(&jd->scan_timer, scan_timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void cancel_event_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
  struct jobsdir *jd = h->data;
  if (!jd->shutting)
    scan_cancels(jd);
}

/* ---- scans ---- */

static void scan_jobs(struct jobsdir *jd)
{
  struct dirent **names;
  jd->last_scan_ms = (int64_t)uv_now(jd->loop);
  if (jd->shutting)
    return;
  int n = scandir(jd->dir, &names, job_name_filter, alphasort);
  if (n < 0) {
    log_error("cannot read jobs directory", "dir=%s error=%s", jd->dir, strerror(errno));
    return;
  }
  for (int i = 0; i < n; i++) {
    const char *file = names[i]->d_name;
    char *from = xasprintf("%s/%s", jd->dir, file);
    char *to = xasprintf("%s/%s", jd->d_running, file);
    int rc = rename_noreplace(from, to);
    free(from);
    free(to);
    if (rc == 0) {
      admit(jd, file, 1);
    } else if (rc == -EEXIST) {
      /* A job file of this name is still in running/: wait for it to leave. */
      log_debug("job file waits for a file of the same name to finish", "file=%s", file);
      jd->busy_skipped = 1;
    } else if (rc != -ENOENT) { /* ENOENT: another agent claimed it first */
      log_error("cannot claim job file", "file=%s error=%s", file, strerror(-rc));
    }
    free(names[i]);
  }
  free(names);
}

static void scan_cancels(struct jobsdir *jd)
{
  struct dirent **names;
  int n = scandir(jd->d_cancel, &names, plain_name_filter, alphasort);
  if (n < 0)
    return;
  for (int i = 0; i < n; i++) {
    const char *id = names[i]->d_name;
    char *cpath = xasprintf("%s/%s", jd->d_cancel, id);
    struct track *t = smap_get(&jd->tracks, id);
    if (t) {
      log_info("cancelling job", "job=%s reason=%s", id, "cancel file");
      t->cancel_reason = "cancel file";
      unlink(cpath);
      /* May complete the job (and free t) before it returns. */
      pool_cancel(jd->pool, id, UINT64_MAX);
    } else {
      char *rpath = xasprintf("%s/%s.json", jd->d_results, id);
      if (access(rpath, F_OK) == 0) {
        log_info("cancel file for a finished job removed", "job=%s", id);
        unlink(cpath);
      }
      /* Else kept: a job with this id claimed later is cancelled at once. */
      free(rpath);
    }
    free(cpath);
    free(names[i]);
  }
  free(names);
}

/* Builds the idempotency index from the results of earlier runs. */
static void load_index(struct jobsdir *jd)
{
  struct dirent **names;
  int n = scandir(jd->d_results, &names, job_name_filter, NULL);
  if (n < 0)
    return;
  for (int i = 0; i < n; i++) {
    char *path = xasprintf("%s/%s", jd->d_results, names[i]->d_name);
    json_t *doc = json_load_file(path, 0, NULL);
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *key = json_string_value(json_object_get(doc, "idempotency_key"));
    const char *id = json_string_value(json_object_get(doc, "duplicate_of"));
    if (!id)
      id = json_string_value(json_object_get(doc, "id"));
    if (status && !strcmp(status, "succeeded") && key && id && !smap_get(&jd->idem, key))
      smap_put(&jd->idem, key, xstrdup(id));
    json_decref(doc);
    free(path);
    free(names[i]);
  }
  free(names);
}

/* Job files a previous agent left in running/. */
static void recover(struct jobsdir *jd)
{
  struct dirent **names;
  int n = scandir(jd->d_running, &names, job_name_filter, alphasort);
  if (n < 0)
    return;
  for (int i = 0; i < n; i++) {
    const char *file = names[i]->d_name;
    char *path = xasprintf("%s/%s", jd->d_running, file);
    unsigned ran = read_attempt_marker(path);
    free(path);
    log_warn("recovering job file left by a previous agent", "file=%s attempts_started=%u", file,
             ran);
    admit(jd, file, ran + 1);
    free(names[i]);
  }
  free(names);
}

/* ---- shutdown ---- */

static void done_timer_cb(uv_timer_t *h)
{
  struct jobsdir *jd = h->data;
  /* Tidy: the shared "queued" status (another agent on this folder makes
   * it again when it needs it). */
  char *shared = xasprintf("%s/.queued", jd->d_status);
  unlink(shared);
  free(shared);
  if (jd->shutdown_cb) {
    jobsdir_shutdown_cb cb = jd->shutdown_cb;
    jd->shutdown_cb = NULL;
    cb(jd, jd->shutdown_ud);
  }
}

static void check_idle(struct jobsdir *jd)
{
  /* The callback runs from its own loop turn: it may free jd, which must not
   * happen inside a pool callback. */
  if (jd->shutting && jd->tracks.n == 0 && jd->writing == 0 && jd->shutdown_cb)
    uv_timer_start(&jd->done_timer, done_timer_cb, 0, 0);
}

static void cancel_running(struct jobsdir *jd, uint64_t grace_ms)
{
  size_t n = 0, cap = jd->tracks.n;
  char **ids = xcalloc(cap ? cap : 1, sizeof(char *));
  for (struct track *t = jd->list; t && n < cap; t = t->next) {
    t->cancel_reason = "agent shutdown";
    ids[n++] = xstrdup(t->id);
  }
  /* Ids, not tracks: a cancel may complete (and free) a track at once. */
  for (size_t i = 0; i < n; i++) {
    pool_cancel(jd->pool, ids[i], grace_ms);
    free(ids[i]);
  }
  free(ids);
}

static void shutdown_timer_cb(uv_timer_t *h)
{
  struct jobsdir *jd = h->data;
  if (jd->shutting < 2)
    jd->shutting = 2;
  log_warn("shutdown timeout: cancelling running jobs", "running=%zu", jd->tracks.n);
  cancel_running(jd, UINT64_MAX);
}

void jobsdir_shutdown(struct jobsdir *jd, jobsdir_shutdown_cb cb, void *ud)
{
  if (!jd->shutting) {
    jd->shutting = 1;
    jd->shutdown_cb = cb;
    jd->shutdown_ud = ud;
    if (jd->watching) {
      uv_fs_event_stop(&jd->dir_ev);
      uv_fs_event_stop(&jd->cancel_ev);
    }
    uv_timer_stop(&jd->scan_timer);
    uv_timer_stop(&jd->poll_timer);
    if (jd->pool) {
      pool_pause(jd->pool, 1);
      size_t n = 0, cap = jd->tracks.n;
      char **ids = xcalloc(cap ? cap : 1, sizeof(char *));
      for (struct track *t = jd->list; t && n < cap; t = t->next) {
        if (t->state == T_QUEUED) {
          t->returning = 1;
          ids[n++] = xstrdup(t->id);
        }
      }
      for (size_t i = 0; i < n; i++) {
        pool_cancel(jd->pool, ids[i], 0);
        free(ids[i]);
      }
      free(ids);
    }
    log_info("shutting down", "running=%zu timeout_ms=%llu", jd->tracks.n,
             (unsigned long long)jd->shutdown_timeout_ms);
    if (jd->tracks.n)
      uv_timer_start(&jd->shutdown_timer, shutdown_timer_cb, jd->shutdown_timeout_ms, 0);
    check_idle(jd);
    return;
  }
  uv_timer_stop(&jd->shutdown_timer);
  if (jd->shutting == 1) {
    jd->shutting = 2;
    log_warn("second signal: cancelling running jobs", "running=%zu", jd->tracks.n);
    cancel_running(jd, UINT64_MAX);
  } else {
    jd->shutting = 3;
    log_warn("killing running jobs", "running=%zu", jd->tracks.n);
    cancel_running(jd, 0);
  }
}

/* ---- lifecycle ---- */

struct jobsdir *jobsdir_new(uv_loop_t *loop, const struct jobsdir_opts *opts)
{
  struct jobsdir *jd = xcalloc(1, sizeof(*jd));
  jd->loop = loop;
  size_t len = strlen(opts->dir);
  while (len > 1 && opts->dir[len - 1] == '/')
    len--;
  jd->dir = xstrndup(opts->dir, len);
  jd->d_running = xasprintf("%s/running", jd->dir);
  jd->d_results = xasprintf("%s/results", jd->dir);
  jd->d_logs = xasprintf("%s/logs", jd->dir);
  jd->d_done = xasprintf("%s/done", jd->dir);
  jd->d_failed = xasprintf("%s/failed", jd->dir);
  jd->d_cancel = xasprintf("%s/cancel", jd->dir);
  jd->d_status = xasprintf("%s/status", jd->dir);
  jd->slots = opts->slots;
  if (!jd->slots) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    jd->slots = n > 0 ? (unsigned)n : 1;
  }
  jd->shutdown_timeout_ms = opts->shutdown_timeout_ms;
  jd->ts_sec = -1;
  jd->ts_last_us = -1;
  jd->lock_fd = -1;
  uv_timer_t *timers[] = {&jd->scan_timer, &jd->flush_timer, &jd->shutdown_timer, &jd->done_timer,
                          &jd->poll_timer};
  for (size_t i = 0; i < ARRAY_SIZE(timers); i++) {
    uv_timer_init(loop, timers[i]);
    timers[i]->data = jd;
  }
  uv_fs_event_init(loop, &jd->dir_ev);
  uv_fs_event_init(loop, &jd->cancel_ev);
  jd->dir_ev.data = jd->cancel_ev.data = jd;
  return jd;
}

int jobsdir_start(struct jobsdir *jd, char *err, size_t errlen)
{
  const char *dirs[] = {jd->dir,    jd->d_running, jd->d_results, jd->d_logs,
                        jd->d_done, jd->d_failed,  jd->d_cancel,  jd->d_status};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
    int rc = mkdir_p(dirs[i], 0755);
    if (rc < 0) {
      snprintf(err, errlen, "jobs directory '%s': cannot create '%s': %s", jd->dir, dirs[i],
               strerror(-rc));
      return rc;
    }
  }
  /* One agent per folder: recovery takes over everything in running/, which
   * must not be another live agent's work. */
  char *lpath = xasprintf("%s/.agent.lock", jd->dir);
  jd->lock_fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  free(lpath);
  if (jd->lock_fd < 0 || flock(jd->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    char pid[32] = "";
    if (jd->lock_fd >= 0) {
      ssize_t n = pread(jd->lock_fd, pid, sizeof(pid) - 1, 0);
      pid[n > 0 ? n : 0] = '\0';
      pid[strcspn(pid, "\n")] = '\0';
    }
    if (e == EWOULDBLOCK)
      snprintf(err, errlen,
               "jobs directory '%s' is in use by another agent (pid %s); "
               "run one agent per folder",
               jd->dir, pid[0] ? pid : "unknown");
    else
      snprintf(err, errlen, "jobs directory '%s': cannot lock '.agent.lock': %s", jd->dir,
               strerror(e));
    return e == EWOULDBLOCK ? -EBUSY : -e;
  }
  char pid[32];
  int pn = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
  if (ftruncate(jd->lock_fd, 0) == 0 && pwrite(jd->lock_fd, pid, (size_t)pn, 0) < 0)
    log_debug("cannot write pid to lock file", "dir=%s", jd->dir);

  int rc = uv_fs_event_start(&jd->dir_ev, dir_event_cb, jd->dir, 0);
  if (rc == 0)
    rc = uv_fs_event_start(&jd->cancel_ev, cancel_event_cb, jd->d_cancel, 0);
  if (rc < 0) {
    snprintf(err, errlen, "jobs directory '%s': cannot watch it: %s", jd->dir, uv_strerror(rc));
    uv_fs_event_stop(&jd->dir_ev);
    return rc;
  }
  jd->watching = 1;

  static const struct pool_ops ops = {on_start, on_line, on_progress, on_done};
  struct exec_opts eo = {0};
  jd->pool = pool_new(jd->loop, jd->slots, &eo, &ops, jd);
  jd->started = 1;
  log_info("agent started", "dir=%s slots=%u", jd->dir, jd->slots);
  load_index(jd);
  recover(jd);
  scan_cancels(jd);
  scan_jobs(jd);
  uv_timer_start(&jd->poll_timer, poll_timer_cb, POLL_EVERY_MS, POLL_EVERY_MS);
  return 0;
}

size_t jobsdir_active(const struct jobsdir *jd)
{
  return jd->tracks.n;
}

static void free_str(void *p)
{
  free(p);
}

static void close_cb(uv_handle_t *h)
{
  struct jobsdir *jd = h->data;
  if (--jd->closing > 0)
    return;
  if (jd->lock_fd >= 0)
    close(jd->lock_fd); /* releases the flock */
  smap_release(&jd->idem, free_str);
  smap_release(&jd->tracks, NULL);
  free(jd->dir);
  free(jd->d_running);
  free(jd->d_results);
  free(jd->d_logs);
  free(jd->d_done);
  free(jd->d_failed);
  free(jd->d_cancel);
  free(jd->d_status);
  free(jd);
}

void jobsdir_free(struct jobsdir *jd)
{
  if (!jd)
    return;
  while (jd->list) /* only when freed without a shutdown; normally empty */
    track_free(jd, jd->list);
  if (jd->pool)
    pool_free(jd->pool);
  jd->pool = NULL;
  uv_handle_t *hs[] = {(uv_handle_t *)&jd->dir_ev,     (uv_handle_t *)&jd->cancel_ev,
                       (uv_handle_t *)&jd->scan_timer, (uv_handle_t *)&jd->flush_timer,
                       (uv_handle_t *)&jd->poll_timer, (uv_handle_t *)&jd->shutdown_timer,
                       (uv_handle_t *)&jd->done_timer};
  jd->closing = (int)ARRAY_SIZE(hs);
  for (size_t i = 0; i < ARRAY_SIZE(hs); i++)
    uv_close(hs[i], close_cb);
}
