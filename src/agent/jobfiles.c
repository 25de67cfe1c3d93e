/* jobfiles.c - the jobs directory on disk: lock, claims, moves that never
 * replace, attempt markers, result writes and the index of earlier results.
 *
 * Every file that is claimed ends in exactly one place: DIR/done/, DIR/failed/
 * (with a result or an .error.txt), or back in DIR/ (queued at shutdown). The
 * ordering on completion is: result file (fsynced, atomic, its folder synced)
 * first, then the job file moves out of running/; a result that cannot be
 * written leaves the file in running/. A crash in between leaves the job file
 * in running/ and the restart files it by its result; a result is never
 * missing for a file in done/ or failed/.
 *
 * Nothing here follows a symbolic link that someone may have put in DIR:
 * entries are judged by lstat/d_type, job files are opened with O_NOFOLLOW,
 * markers are set with lsetxattr, moves rename the entry itself. */
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

/* The temporary files of atomic writes (write_tmp_name) that a crash of an
 * agent left: a result, status or error file half written, never renamed.
 * Only the folders the agent alone writes to are tidied; DIR is the user's. */
static void remove_tmp_files(const char *folder)
{
  DIR *d = opendir(folder);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
      continue;
    if (!write_tmp_name(de->d_name))
      continue;
    if (unlinkat(dirfd(d), de->d_name, 0) == 0)
      log_info("removed a temporary file left by a crash", "path=%s/%s", folder, de->d_name);
  }
  closedir(d);
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
  /* O_NOFOLLOW: a link planted as .agent.lock must not make us truncate
   * and write some other file. */
  f->lock_fd = open(lpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
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
  const char *ours[] = {f->results, f->status, f->failed, f->running};
  for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
    remove_tmp_files(ours[i]);
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
  return jobfiles_is_job_name(d->d_name);
}

static int plain_name_filter(const struct dirent *d)
{
  return d->d_name[0] != '.' && d->d_type != DT_DIR;
}

int jobfiles_list(const char *folder, struct jobfiles_entry **out)
{
  struct dirent **ents;
  int n = scandir(folder, &ents, job_name_filter, alphasort);
  if (n < 0)
    return -errno;
  struct jobfiles_entry *e = xcalloc(n ? (size_t)n : 1, sizeof(*e));
  for (int i = 0; i < n; i++) {
    e[i].name = xstrdup(ents[i]->d_name);
    e[i].type = ents[i]->d_type;
    free(ents[i]);
  }
  free(ents);
  *out = e;
  return n;
}

void jobfiles_list_free(struct jobfiles_entry *entries, int n)
{
  for (int i = 0; i < n; i++)
    free(entries[i].name);
  free(entries);
}

int jobfiles_list_cancels(struct jobfiles *f, char ***out)
{
  struct dirent **ents;
  int n = scandir(f->cancel, &ents, plain_name_filter, alphasort);
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

void jobfiles_names_free(char **names, int n)
{
  for (int i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* What a file that is not a regular one is, for messages. */
static const char *kind_of(mode_t mode)
{
  switch (mode & S_IFMT) {
  case S_IFLNK:
    return "a symbolic link";
  case S_IFIFO:
    return "a FIFO (named pipe)";
  case S_IFSOCK:
    return "a socket";
  case S_IFCHR:
    return "a character device";
  case S_IFBLK:
    return "a block device";
  case S_IFDIR:
    return "a folder";
  }
  return "not a regular file";
}

static mode_t mode_of_dtype(unsigned char t)
{
  switch (t) {
  case DT_REG:
    return S_IFREG;
  case DT_LNK:
    return S_IFLNK;
  case DT_FIFO:
    return S_IFIFO;
  case DT_SOCK:
    return S_IFSOCK;
  case DT_CHR:
    return S_IFCHR;
  case DT_BLK:
    return S_IFBLK;
  case DT_DIR:
    return S_IFDIR;
  }
  return 0;
}

/* The advice that goes with each refusal of a file that is not regular. */
static void describe_not_regular(char *why, size_t len, const char *dir, const char *name,
                                 mode_t mode)
{
  if (S_ISLNK(mode))
    snprintf(why, len,
             "job file '%s/%s' is a symbolic link; job files must be regular files: copy the "
             "file instead",
             dir, name);
  else
    snprintf(why, len,
             "job file '%s/%s' is %s; job files must be regular files: write the job to a file "
             "and rename it into '%s'",
             dir, name, kind_of(mode), dir);
}

int jobfiles_check(struct jobfiles *f, const char *folder, const struct jobfiles_entry *e,
                   char *why, size_t len)
{
  size_t n = strlen(e->name);
  if (n > JOBFILES_NAME_MAX) {
    snprintf(why, len,
             "job file '%s/%s': its name is %zu bytes long, more than the %d bytes a job file "
             "name may have (the agent adds suffixes to it): give the file a shorter name",
             f->dir, e->name, n, JOBFILES_NAME_MAX);
    return 1;
  }
  mode_t mode = mode_of_dtype(e->type);
  if (!mode) { /* the file system did not say: ask, without following a link */
    struct stat st;
    char *path = xasprintf("%s/%s", folder, e->name);
    int rc = lstat(path, &st);
    free(path);
    if (rc < 0)
      return 0; /* gone: the claim will say so */
    mode = st.st_mode & S_IFMT;
  }
  if (S_ISREG(mode))
    return 0;
  describe_not_regular(why, len, f->dir, e->name, mode);
  return 1;
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

int jobfiles_read(struct jobfiles *f, const char *file, size_t max, char **text, size_t *len,
                  char *why, size_t whylen)
{
  char *path = xasprintf("%s/%s", f->running, file);
  struct stat st;
  memset(&st, 0, sizeof(st));
  int rc = read_file_max(path, max, text, len, &st);
  free(path);
  if (rc == 0)
    return 0;
  /* The checks before the claim saw a regular file; these catch one that
   * was swapped for something else in between. */
  if (rc == -ELOOP)
    describe_not_regular(why, whylen, f->dir, file, S_IFLNK);
  else if (rc == -EINVAL && !S_ISREG(st.st_mode))
    describe_not_regular(why, whylen, f->dir, file, st.st_mode);
  else if (rc == -EFBIG)
    snprintf(why, whylen,
             "job file '%s/%s' is %llu bytes, more than --max-job-size (%zu bytes): make it "
             "smaller or raise --max-job-size",
             f->dir, file, (unsigned long long)st.st_size, max);
  else if (rc == -EACCES)
    snprintf(why, whylen,
             "job file '%s/%s' cannot be read: %s; the agent runs as user id %u: make the file "
             "readable by it",
             f->dir, file, strerror(-rc), (unsigned)geteuid());
  else
    snprintf(why, whylen, "job file '%s/%s' cannot be read: %s", f->dir, file, strerror(-rc));
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

/* A name that fits: the name itself, or for one longer than
 * JOBFILES_NAME_MAX its first 64 bytes (not cutting a UTF-8 character), a
 * hash of the whole name (FNV-1a, 64 bits) and ".json". */
static char *fitting_name(const char *name)
{
  size_t n = strlen(name);
  if (n <= JOBFILES_NAME_MAX)
    return xstrdup(name);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)name[i];
    h *= 0x100000001b3ULL;
  }
  size_t keep = 64;
  while (keep > 0 && ((unsigned char)name[keep] & 0xc0) == 0x80)
    keep--;
  return xasprintf("%.*s-%016llx.json", (int)keep, name, (unsigned long long)h);
}

void jobfiles_refuse(struct jobfiles *f, const char *folder, const char *name, const char *why)
{
  if (folder == f->running || !strcmp(folder, f->running))
    jobfiles_attempt_clear(f, name);
  char *src = xasprintf("%s/%s", folder, name);
  char *fit = fitting_name(name);
  char *moved = jobfiles_move_unique(src, f->failed, fit);
  int e = errno;
  log_error("bad job file", "file=%s error=%s", name, why);
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
  free(fit);
  free(src);
}

void jobfiles_fail(struct jobfiles *f, const char *file, const char *why)
{
  jobfiles_refuse(f, f->running, file, why);
}

int jobfiles_write_fast(const char *dir, const char *name, const char *data, size_t len)
{
  char *path = xasprintf("%s/%s", dir, name);
  int err = write_file_replace(path, data, len);
  free(path);
  return err;
}

/* ---- markers ----
 *
 * Kept as extended attributes of the job file itself (no extra file to
 * create and delete per job: creating inodes is what costs most on a busy
 * ext4), or as sidecar files "<file>.attempt", "<file>.reads" where the file
 * system has no user xattrs. The sidecar wins when both exist. The l*xattr
 * calls never follow a link: no marker is ever written outside DIR.
 *
 * The attempt marker is "N" from just before the job's process is made, and
 * "N PGID START BOOT_ID" once it exists. */
struct marker {
  const char *xattr, *suffix;
};
static const struct marker attempt_marker = {"user.drover.attempt", ".attempt"};
static const struct marker reads_marker = {"user.drover.reads", ".reads"};

/* The marker's text (at most len - 1 bytes), or "" when there is none. */
static void marker_get(struct jobfiles *f, const char *file, const struct marker *m, char *buf,
                       size_t len)
{
  char *path = xasprintf("%s/%s", f->running, file);
  char *side = xasprintf("%s%s", path, m->suffix), *text = NULL;
  size_t n;
  buf[0] = '\0';
  if (read_file_max(side, len - 1, &text, &n, NULL) == 0) {
    memcpy(buf, text, n + 1);
  } else {
    ssize_t got = lgetxattr(path, m->xattr, buf, len - 1);
    buf[got > 0 ? got : 0] = '\0';
  }
  free(text);
  free(side);
  free(path);
}

static int marker_set(struct jobfiles *f, const char *file, const struct marker *m,
                      const char *text)
{
  char *path = xasprintf("%s/%s", f->running, file);
  int rc = 0;
  if (lsetxattr(path, m->xattr, text, strlen(text), 0) < 0) {
    char *side = xasprintf("%s%s", file, m->suffix);
    char *line = xasprintf("%s\n", text);
    rc = jobfiles_write_fast(f->running, side, line, strlen(line));
    free(line);
    free(side);
  }
  free(path);
  return rc;
}

/* Drops marker m of the file that was running/file and is now dir/moved
 * (the same when it did not move): the xattr travels with the file (a file
 * moved back into DIR must not look started), the sidecar stays behind. */
static void marker_drop(struct jobfiles *f, const char *file, const char *dir, const char *moved,
                        const struct marker *m)
{
  char *side = xasprintf("%s/%s%s", f->running, file, m->suffix);
  char *path = xasprintf("%s/%s", dir, moved);
  unlink(side);
  lremovexattr(path, m->xattr);
  free(path);
  free(side);
}

void jobfiles_attempt_read(struct jobfiles *f, const char *file, struct core_attempt *a)
{
  char buf[128];
  marker_get(f, file, &attempt_marker, buf, sizeof(buf));
  core_attempt_parse(buf, a);
}

int jobfiles_attempt_write(struct jobfiles *f, const char *file, const struct core_attempt *a)
{
  char text[128];
  core_attempt_format(a, text, sizeof(text));
  return marker_set(f, file, &attempt_marker, text);
}

void jobfiles_attempt_clear(struct jobfiles *f, const char *file)
{
  marker_drop(f, file, f->running, file, &attempt_marker);
  marker_drop(f, file, f->running, file, &reads_marker);
}

unsigned jobfiles_reads_read(struct jobfiles *f, const char *file)
{
  char buf[32];
  marker_get(f, file, &reads_marker, buf, sizeof(buf));
  return (unsigned)strtoul(buf, NULL, 10);
}

int jobfiles_reads_write(struct jobfiles *f, const char *file, unsigned reads)
{
  char text[16];
  snprintf(text, sizeof(text), "%u", reads);
  return marker_set(f, file, &reads_marker, text);
}

void jobfiles_reads_clear(struct jobfiles *f, const char *file)
{
  marker_drop(f, file, f->running, file, &reads_marker);
}

/* ---- cancel files and results ---- */

int jobfiles_take_cancel(struct jobfiles *f, const char *id)
{
  char *cpath = xasprintf("%s/%s", f->cancel, id);
  int found = unlink(cpath) == 0;
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

/* Results are small; anything bigger (or not a regular file: a link someone
 * put in results/) is not ours and is not read. */
#define RESULT_MAX (1024 * 1024)

static json_t *load_result(const char *path)
{
  char *text;
  size_t len;
  if (read_file_max(path, RESULT_MAX, &text, &len, NULL) < 0)
    return NULL;
  json_t *doc = json_loadb(text, len, 0, NULL);
  free(text);
  return doc;
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
  if (lstat(rpath, &rs) == 0 && lstat(jpath, &js) == 0 &&
      (rs.st_mtim.tv_sec > js.st_ctim.tv_sec ||
       (rs.st_mtim.tv_sec == js.st_ctim.tv_sec && rs.st_mtim.tv_nsec >= js.st_ctim.tv_nsec))) {
    json_t *doc = load_result(rpath);
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

char *jobfiles_return(struct jobfiles *f, const char *file)
{
  char *src = xasprintf("%s/%s", f->running, file);
  char *back = jobfiles_move_unique(src, f->dir, file);
  int e = errno;
  if (back) { /* a file back in DIR is a new job again */
    marker_drop(f, file, f->dir, back, &attempt_marker);
    marker_drop(f, file, f->dir, back, &reads_marker);
  }
  free(src);
  errno = e;
  return back;
}

void jobfiles_file_finished(struct jobfiles *f, const char *file, int succeeded)
{
  char *src = xasprintf("%s/%s", f->running, file);
  const char *to = succeeded ? f->done : f->failed;
  char *moved = jobfiles_move_unique(src, to, file);
  if (!moved) {
    log_error("cannot move job file", "file=%s to=%s error=%s", src, to, strerror(errno));
  } else {
    marker_drop(f, file, to, moved, &attempt_marker);
    marker_drop(f, file, to, moved, &reads_marker);
  }
  free(moved);
  free(src);
}

/* A result on its way to the disk. The write (with its fdatasync and the
 * folder's fsync, a few hundred microseconds on a VM disk) runs on libuv's
 * thread pool so that the loop keeps starting jobs meanwhile; the job file
 * leaves running/ only after the result is on disk, so a crash in between
 * finds the result at restart and files the job without running it again,
 * and a write that fails (disk full) leaves the file where it is. */
struct result_write {
  uv_work_t req;
  struct jobfiles *f;
  char *path;
  const char *doc;
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
  if (status < 0) /* cancelled: cannot happen, the loop never cancels it */
    w->rc = status;
  /* The attempt marker stays until the file has left running/: a crash
   * before the move finds the marker and the newer result, and files the job
   * instead of running it again (jobfiles_finished_before_restart). */
  if (w->rc == 0)
    jobfiles_file_finished(w->f, w->file, w->succeeded);
  jobfiles_finish_cb cb = w->cb;
  void *ud = w->ud;
  int rc = w->rc;
  free(w->path);
  free(w->file);
  free(w);
  cb(ud, rc);
}

void jobfiles_finish(struct jobfiles *f, uv_loop_t *loop, const char *id, const char *file,
                     const char *doc, size_t len, int succeeded, jobfiles_finish_cb cb, void *ud)
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
    json_t *doc = load_result(path);
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
