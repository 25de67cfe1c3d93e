/* jobfiles.c - the jobs directory on disk: lock, claims, moves that never
 * replace, attempt markers, result writes and the index of earlier results.
 *
 * Every file that is claimed ends in exactly one place: DIR/done/, DIR/failed/
 * (with a result or an .error.txt), or back in DIR/ (queued at shutdown). The
 * ordering on completion is: result file (fsynced, atomic) first, then the job
 * file moves out of running/. A crash in between leaves the job file in
 * running/ and the job is run again; a result is never missing for a file in
 * done/ or failed/. */
#include "agent/jobfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/log.h"
#include "base/smap.h"
#include "base/util.h"

/* ---- paths and the lock ---- */

void jobfiles_init(struct jobfiles *f, const char *dir)
{
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/')
    len--;
  f->dir = xstrndup(dir, len);
  f->running = xasprintf("%s/running", f->dir);
  f->results = xasprintf("%s/results", f->dir);
  f->logs = xasprintf("%s/logs", f->dir);
  f->done = xasprintf("%s/done", f->dir);
  f->failed = xasprintf("%s/failed", f->dir);
  f->cancel = xasprintf("%s/cancel", f->dir);
  f->status = xasprintf("%s/status", f->dir);
  f->lock_fd = -1;
}

void jobfiles_release(struct jobfiles *f)
{
  if (f->lock_fd >= 0)
    close(f->lock_fd); /* releases the flock */
  f->lock_fd = -1;
  free(f->dir);
  free(f->running);
  free(f->results);
  free(f->logs);
  free(f->done);
  free(f->failed);
  free(f->cancel);
  free(f->status);
}

int jobfiles_open(struct jobfiles *f, char *err, size_t errlen)
{
  const char *dirs[] = {f->dir,  f->running, f->results, f->logs,
                        f->done, f->failed,  f->cancel,  f->status};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
    int rc = mkdir_p(dirs[i], 0755);
    if (rc < 0) {
      snprintf(err, errlen, "jobs directory '%s': cannot create '%s': %s", f->dir, dirs[i],
               strerror(-rc));
      return rc;
    }
  }
  /* One agent per folder: recovery takes over everything in running/, which
   * must not be another live agent's work. */
  char *lpath = xasprintf("%s/.agent.lock", f->dir);
  f->lock_fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  free(lpath);
  if (f->lock_fd < 0 || flock(f->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    char pid[32] = "";
    if (f->lock_fd >= 0) {
      ssize_t n = pread(f->lock_fd, pid, sizeof(pid) - 1, 0);
      pid[n > 0 ? n : 0] = '\0';
      pid[strcspn(pid, "\n")] = '\0';
    }
    if (e == EWOULDBLOCK)
      snprintf(err, errlen,
               "jobs directory '%s' is in use by another agent (pid %s); "
               "run one agent per folder",
               f->dir, pid[0] ? pid : "unknown");
    else
      snprintf(err, errlen, "jobs directory '%s': cannot lock '.agent.lock': %s", f->dir,
               strerror(e));
    return e == EWOULDBLOCK ? -EBUSY : -e;
  }
  char pid[32];
  int pn = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
  if (ftruncate(f->lock_fd, 0) == 0 && pwrite(f->lock_fd, pid, (size_t)pn, 0) < 0)
    log_debug("cannot write pid to lock file", "dir=%s", f->dir);
  return 0;
}

/* ---- names ---- */

static int has_suffix(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !memcmp(s + n - m, suffix, m);
}

int jobfiles_is_job_name(const char *name)
{
  return name[0] != '.' && has_suffix(name, ".json") && strlen(name) > 5;
}

static int job_name_filter(const struct dirent *d)
{
  return d->d_type != DT_DIR && jobfiles_is_job_name(d->d_name);
}

static int plain_name_filter(const struct dirent *d)
{
  return d->d_name[0] != '.' && d->d_type != DT_DIR;
}

static int list(const char *folder, int (*filter)(const struct dirent *),
                int (*compar)(const struct dirent **, const struct dirent **), char ***out)
{
  struct dirent **ents;
  int n = scandir(folder, &ents, filter, compar);
  if (n < 0)
    return -errno;
  char **names = xcalloc(n ? (size_t)n : 1, sizeof(char *));
  for (int i = 0; i < n; i++) {
    names[i] = xstrdup(ents[i]->d_name);
    free(ents[i]);
  }
  free(ents);
  *out = names;
  return n;
}

int jobfiles_list(const char *folder, char ***names)
{
  return list(folder, job_name_filter, alphasort, names);
}

int jobfiles_list_cancels(struct jobfiles *f, char ***names)
{
  return list(f->cancel, plain_name_filter, alphasort, names);
}

void jobfiles_list_free(char **names, int n)
{
  for (int i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* ---- moves ---- */

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

int jobfiles_claim(struct jobfiles *f, const char *file)
{
  char *from = xasprintf("%s/%s", f->dir, file);
  char *to = xasprintf("%s/%s", f->running, file);
  int rc = rename_noreplace(from, to);
  free(from);
  free(to);
  return rc;
}

char *jobfiles_move_unique(const char *from, const char *dir_to, const char *name)
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

char *jobfiles_return(struct jobfiles *f, const char *file)
{
  char *src = xasprintf("%s/%s", f->running, file);
  char *back = jobfiles_move_unique(src, f->dir, file);
  int e = errno;
  free(src);
  errno = e;
  return back;
}

void jobfiles_fail(struct jobfiles *f, const char *file, const char *why)
{
  jobfiles_attempt_clear(f, file);
  char *src = xasprintf("%s/%s", f->running, file);
  char *moved = jobfiles_move_unique(src, f->failed, file);
  int e = errno;
  log_error("bad job file", "file=%s error=%s", file, why);
  if (moved) {
    char *epath = xasprintf("%s/%s.error.txt", f->failed, moved);
    char *text = xasprintf("error: %s\n", why);
    if (write_file_atomic(epath, text, strlen(text)) < 0)
      log_error("cannot write error file", "path=%s", epath);
    free(text);
    free(epath);
    free(moved);
  } else {
    log_error("cannot move job file", "file=%s error=%s", src, strerror(e));
  }
  free(src);
}

int jobfiles_write_fast(const char *dir, const char *name, const char *data, size_t len)
{
  char *path = xasprintf("%s/%s", dir, name);
  int err = write_file_replace(path, data, len);
  free(path);
  return err;
}

/* ---- attempt markers ----
 *
 * Kept as an extended attribute of the job file itself (no extra file to
 * create and delete per job: creating inodes is what costs most on a busy
 * ext4), or as a sidecar file "<file>.attempt" where the file system has no
 * user xattrs. The sidecar wins when both exist. */
#define ATTEMPT_XATTR "user.drover.attempt"

unsigned jobfiles_attempt_read(struct jobfiles *f, const char *file)
{
  char *path = xasprintf("%s/%s", f->running, file);
  char *side = xasprintf("%s.attempt", path), *text = NULL;
  char buf[16];
  size_t len;
  unsigned n = 0;
  if (read_file(side, &text, &len) == 0) {
    n = (unsigned)strtoul(text, NULL, 10);
  } else {
    ssize_t got = getxattr(path, ATTEMPT_XATTR, buf, sizeof(buf) - 1);
    if (got > 0) {
      buf[got] = '\0';
      n = (unsigned)strtoul(buf, NULL, 10);
    }
  }
  free(text);
  free(side);
  free(path);
  return n;
}

int jobfiles_attempt_write(struct jobfiles *f, const char *file, unsigned attempt)
{
  char *path = xasprintf("%s/%s", f->running, file);
  char num[16];
  int n = snprintf(num, sizeof(num), "%u", attempt), rc = 0;
  if (setxattr(path, ATTEMPT_XATTR, num, (size_t)n, 0) < 0) {
    char *side = xasprintf("%s.attempt", file);
    num[n++] = '\n';
    rc = jobfiles_write_fast(f->running, side, num, (size_t)n);
    free(side);
  }
  free(path);
  return rc;
}

void jobfiles_attempt_clear(struct jobfiles *f, const char *file)
{
  char *path = xasprintf("%s/%s", f->running, file);
  char *side = xasprintf("%s.attempt", path);
  unlink(side);
  free(side);
  removexattr(path, ATTEMPT_XATTR);
  free(path);
}

/* After running/file moved to dir/moved: the xattr travelled with it (a file
 * moved back into DIR must not look started), the sidecar stayed behind. */
static void attempt_clear_moved(struct jobfiles *f, const char *file, const char *dir,
                                const char *moved)
{
  char *side = xasprintf("%s/%s.attempt", f->running, file);
  char *path = xasprintf("%s/%s", dir, moved);
  unlink(side);
  removexattr(path, ATTEMPT_XATTR);
  free(path);
  free(side);
}

/* ---- cancel files and results ---- */

int jobfiles_take_cancel(struct jobfiles *f, const char *id)
{
  char *cpath = xasprintf("%s/%s", f->cancel, id);
  int found = access(cpath, F_OK) == 0;
  if (found)
    unlink(cpath);
  free(cpath);
  return found;
}

int jobfiles_has_result(struct jobfiles *f, const char *id)
{
  char *rpath = xasprintf("%s/%s.json", f->results, id);
  int found = access(rpath, F_OK) == 0;
  free(rpath);
  return found;
}

int jobfiles_finished_before_restart(struct jobfiles *f, const char *id, const char *file,
                                     int *succeeded)
{
  char *rpath = xasprintf("%s/%s.json", f->results, id);
  char *jpath = xasprintf("%s/%s", f->running, file);
  struct stat rs, js;
  int done = 0;
  /* The claim (rename into running/) and the attempt marker set the job
   * file's ctime; nothing touches the file after that until it is filed. A
   * result written later is this claim's result. An older one belongs to an
   * earlier job that had the same id, and does not count. */
  if (stat(rpath, &rs) == 0 && stat(jpath, &js) == 0 &&
      (rs.st_mtim.tv_sec > js.st_ctim.tv_sec ||
       (rs.st_mtim.tv_sec == js.st_ctim.tv_sec && rs.st_mtim.tv_nsec >= js.st_ctim.tv_nsec))) {
    json_t *doc = json_load_file(rpath, 0, NULL);
    const char *status = json_string_value(json_object_get(doc, "status"));
    if (status) {
      done = 1;
      *succeeded = !strcmp(status, "succeeded");
    }
    json_decref(doc);
  }
  free(rpath);
  free(jpath);
  return done;
}

void jobfiles_file_finished(struct jobfiles *f, const char *file, int succeeded)
{
  char *src = xasprintf("%s/%s", f->running, file);
  const char *to = succeeded ? f->done : f->failed;
  char *moved = jobfiles_move_unique(src, to, file);
  if (!moved)
    log_error("cannot move job file", "file=%s to=%s error=%s", src, to, strerror(errno));
  else
    attempt_clear_moved(f, file, to, moved);
  free(moved);
  free(src);
}

/* A result on its way to the disk. The write (with its fdatasync, a few
 * hundred microseconds on a VM disk) runs on libuv's thread pool so that the
 * loop keeps starting jobs meanwhile; the job file leaves running/ only after
 * the result is on disk, so a crash in between finds the result at restart
 * and files the job without running it again. */
struct result_write {
  uv_work_t req;
  struct jobfiles *f;
  char *path, *doc;
  size_t len;
  int rc;
  char *file;
  int succeeded;
  jobfiles_finish_cb cb;
  void *ud;
};

static void result_write_work(uv_work_t *req)
{
  struct result_write *w = req->data;
  w->rc = write_file_atomic(w->path, w->doc, w->len);
}

static void result_write_done(uv_work_t *req, int status)
{
  struct result_write *w = req->data;
  struct jobfiles *f = w->f;
  if (status < 0) /* cancelled: cannot happen, the loop never cancels it */
    w->rc = status;
  if (w->rc < 0)
    log_error("cannot write result", "path=%s error=%s", w->path, strerror(-w->rc));
  /* The attempt marker stays until the file has left running/: a crash
   * before the move finds the marker and the newer result, and files the job
   * instead of running it again (jobfiles_finished_before_restart). */
  jobfiles_file_finished(f, w->file, w->succeeded);
  jobfiles_finish_cb cb = w->cb;
  void *ud = w->ud;
  free(w->path);
  free(w->doc);
  free(w->file);
  free(w);
  cb(ud);
}

void jobfiles_finish(struct jobfiles *f, uv_loop_t *loop, const char *id, const char *file,
                     char *doc, size_t len, int succeeded, jobfiles_finish_cb cb, void *ud)
{
  struct result_write *w = xcalloc(1, sizeof(*w));
  w->req.data = w;
  w->f = f;
  w->doc = doc;
  w->len = len;
  w->path = xasprintf("%s/%s.json", f->results, id);
  w->file = xstrdup(file);
  w->succeeded = succeeded;
  w->cb = cb;
  w->ud = ud;
  int rc = uv_queue_work(loop, &w->req, result_write_work, result_write_done);
  if (rc < 0) { /* only for bad arguments; write here and now */
    result_write_work(&w->req);
    result_write_done(&w->req, 0);
  }
}

/* ---- the idempotency index ---- */

void jobfiles_load_index(struct jobfiles *f, struct smap *idem)
{
  struct dirent **names;
  /* Directory order, as it comes: any succeeded result of a key will do. */
  int n = scandir(f->results, &names, job_name_filter, NULL);
  if (n < 0)
    return;
  for (int i = 0; i < n; i++) {
    char *path = xasprintf("%s/%s", f->results, names[i]->d_name);
    json_t *doc = json_load_file(path, 0, NULL);
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *key = json_string_value(json_object_get(doc, "idempotency_key"));
    const char *id = json_string_value(json_object_get(doc, "duplicate_of"));
    if (!id)
      id = json_string_value(json_object_get(doc, "id"));
    if (status && !strcmp(status, "succeeded") && key && id && !smap_get(idem, key))
      smap_put(idem, key, xstrdup(id));
    json_decref(doc);
    free(path);
    free(names[i]);
  }
  free(names);
}
