/* state.c - the networked agent's state dir (see state.h). */
#include "agent/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/id.h"
#include "base/log.h"
#include "base/util.h"

#define NODE_JSON_MAX 4096

static int rec_load(struct agent_state *st, char *err, size_t errlen);

const char *state_default_dir(void)
{
  return geteuid() == 0 ? "/var/lib/drover/agent" : "./drover-agent";
}

/* The lock: one agent per state dir. Two agents on one identity would
 * replace each other's stream at the coordinator forever, and each would
 * kill the other's jobs at its start. */
static int take_lock(struct agent_state *st, char *err, size_t errlen)
{
  char *path = xasprintf("%s/.lock", st->dir);
  /* O_NOFOLLOW: a link planted as .lock must not make us truncate some other file. */
  st->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  free(path);
  if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    char pid[32] = "";
    if (st->lock_fd >= 0) {
      ssize_t n = pread(st->lock_fd, pid, sizeof(pid) - 1, 0);
      pid[n > 0 ? n : 0] = '\0';
      pid[strcspn(pid, "\n")] = '\0';
    }
    if (e == EWOULDBLOCK)
      snprintf(err, errlen,
               "state dir '%s' is in use by another agent (pid %s); give each agent its own "
               "--state-dir",
               st->dir, pid[0] ? pid : "unknown");
    else
      snprintf(err, errlen, "state dir '%s': cannot lock '.lock': %s", st->dir, strerror(e));
    return e == EWOULDBLOCK ? -EBUSY : -e;
  }
  char pid[32];
  int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
  if (ftruncate(st->lock_fd, 0) == 0 && pwrite(st->lock_fd, pid, (size_t)n, 0) < 0)
    log_debug("cannot write pid to lock file", "dir=%s", st->dir);
  return 0;
}

static int load_identity(struct agent_state *st, char *err, size_t errlen)
{
  char *path = xasprintf("%s/node.json", st->dir), *text = NULL;
  size_t len;
  int rc = read_file_max(path, NODE_JSON_MAX, &text, &len, NULL);
  if (rc == -ENOENT) {
    free(path);
    return 0;
  }
  if (rc < 0) {
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(-rc));
    free(path);
    return rc;
  }
  json_error_t je;
  json_t *doc = json_loadb(text, len, 0, &je);
  const char *id = json_string_value(json_object_get(doc, "node_id"));
  const char *secret = json_string_value(json_object_get(doc, "node_secret"));
  rc = 0;
  if (!id || !secret || !*id || !*secret || strlen(id) >= sizeof(st->node_id)) {
    snprintf(err, errlen,
             "'%s' does not hold a node id and secret; remove it to register again with a "
             "token from 'drover token create'",
             path);
    rc = -EINVAL;
  } else {
    snprintf(st->node_id, sizeof(st->node_id), "%s", id);
    st->node_secret = xstrdup(secret);
  }
  json_decref(doc);
  free(text);
  free(path);
  return rc;
}

int state_open(struct agent_state *st, const char *dir, char *err, size_t errlen)
{
  memset(st, 0, sizeof(*st));
  st->lock_fd = -1;
  st->dir = xstrdup(dir);
  size_t n = strlen(st->dir);
  while (n > 1 && st->dir[n - 1] == '/')
    st->dir[--n] = '\0';
  st->jobs = xasprintf("%s/jobs", st->dir);
  st->results = xasprintf("%s/results", st->dir);
  st->spool = xasprintf("%s/spool", st->dir);
  /* 0700: node.json holds a secret, results and spooled output are the
   * jobs' and nobody else's. */
  const char *dirs[] = {st->dir, st->jobs, st->results, st->spool};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
    int rc = mkdir_p(dirs[i], 0700);
    if (rc < 0) {
      snprintf(err, errlen, "state dir '%s': cannot create '%s': %s", st->dir, dirs[i],
               strerror(-rc));
      return rc;
    }
  }
  int rc = take_lock(st, err, errlen);
  if (rc == 0)
    rc = load_identity(st, err, errlen);
  if (rc == 0)
    rc = rec_load(st, err, errlen);
  return rc;
}

void state_release(struct agent_state *st)
{
  if (st->lock_fd >= 0)
    close(st->lock_fd); /* releases the flock */
  free(st->dir);
  free(st->jobs);
  free(st->results);
  free(st->spool);
  free(st->node_secret);
  for (size_t k = 0; k < st->nrec; k++) {
    close(st->rec_fds[k]);
    free(st->rec_key[k]);
  }
  free(st->rec_fds);
  free(st->rec_key);
  memset(st, 0, sizeof(*st));
  st->lock_fd = -1;
}

int state_save_identity(struct agent_state *st, const char *node_id, const char *secret)
{
  json_t *doc = json_pack("{s:s,s:s}", "node_id", node_id, "node_secret", secret);
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  char *path = xasprintf("%s/node.json", st->dir);
  char *line = xasprintf("%s\n", text);
  int rc = write_file_atomic_mode(path, line, strlen(line), 0600);
  free(line);
  free(path);
  free(text);
  if (rc == 0) {
    snprintf(st->node_id, sizeof(st->node_id), "%s", node_id);
    free(st->node_secret);
    st->node_secret = xstrdup(secret);
  }
  return rc;
}

/* ---- names ---- */

int state_parse_name(const char *name, struct state_name *n)
{
  const char *dot = strrchr(name, '.');
  if (!dot || dot == name || (size_t)(dot - name) >= sizeof(n->id) || !dot[1])
    return -1;
  char *end;
  errno = 0;
  unsigned long a = strtoul(dot + 1, &end, 10);
  if (*end || errno || a == 0 || a > UINT32_MAX || dot[1] < '1' || dot[1] > '9')
    return -1;
  memcpy(n->id, name, (size_t)(dot - name));
  n->id[dot - name] = '\0';
  if (!id_valid(n->id))
    return -1;
  n->attempt = (unsigned)a;
  return 0;
}

int state_list(const char *folder, struct state_name **out)
{
  *out = NULL;
  DIR *d = opendir(folder);
  if (!d)
    return -errno;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    struct state_name sn;
    if (de->d_name[0] == '.')
      continue;
    if (write_tmp_name(de->d_name)) {
      /* Half a result a crash left, never renamed. */
      unlinkat(dirfd(d), de->d_name, 0);
      continue;
    }
    if (state_parse_name(de->d_name, &sn) < 0)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      *out = xrealloc(*out, cap * sizeof(**out));
    }
    (*out)[n++] = sn;
  }
  closedir(d);
  return (int)n;
}

/* ---- records and results ---- */

/* A record fits in one page write: a job id (128), the attempt record
 * ("N PGID START BOOT_ID"), spaces up to the size. */
#define REC_SIZE 512

static char *rec_key(const char *id, unsigned attempt)
{
  return xasprintf("%s.%u", id, attempt);
}

static long rec_find(struct agent_state *st, const char *key)
{
  for (size_t k = 0; k < st->nrec; k++)
    if (st->rec_key[k] && !strcmp(st->rec_key[k], key))
      return (long)k;
  return -1;
}

/* Reads jobs/rec.<k> files: the records a previous life left. */
static int rec_load(struct agent_state *st, char *err, size_t errlen)
{
  for (size_t k = 0;; k++) {
    char *path = xasprintf("%s/rec.%zu", st->jobs, k);
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    free(path);
    if (fd < 0) {
      if (e == ENOENT)
        return 0;
      snprintf(err, errlen, "state dir '%s': cannot open 'jobs/rec.%zu': %s", st->dir, k,
               strerror(e));
      return -e;
    }
    st->rec_fds = xrealloc(st->rec_fds, (k + 1) * sizeof(*st->rec_fds));
    st->rec_key = xrealloc(st->rec_key, (k + 1) * sizeof(*st->rec_key));
    st->rec_fds[k] = fd;
    st->rec_key[k] = NULL;
    st->nrec = k + 1;
    char buf[REC_SIZE + 1];
    ssize_t n = pread(fd, buf, REC_SIZE, 0);
    buf[n > 0 ? n : 0] = '\0';
    char id[129];
    unsigned attempt;
    int used;
    if (sscanf(buf, "%128s %u%n", id, &attempt, &used) == 2 && attempt > 0)
      st->rec_key[k] = rec_key(id, attempt);
  }
}

static int rec_put(struct agent_state *st, size_t k, const char *text)
{
  char buf[REC_SIZE];
  size_t len = strlen(text);
  if (len >= REC_SIZE)
    return -ENAMETOOLONG;
  memset(buf, ' ', REC_SIZE);
  memcpy(buf, text, len);
  buf[REC_SIZE - 1] = '\n';
  ssize_t n = pwrite(st->rec_fds[k], buf, REC_SIZE, 0);
  return n == REC_SIZE ? 0 : n < 0 ? -errno : -EIO;
}

int state_record_write(struct agent_state *st, const char *id, unsigned attempt,
                       const struct core_attempt *a)
{
  char *key = rec_key(id, attempt);
  long k = rec_find(st, key);
  if (k < 0) {
    for (size_t i = 0; i < st->nrec && k < 0; i++)
      if (!st->rec_key[i])
        k = (long)i;
  }
  if (k < 0) { /* the pool grows: the only time a file is made */
    char *path = xasprintf("%s/rec.%zu", st->jobs, st->nrec);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    int e = errno;
    free(path);
    if (fd < 0) {
      free(key);
      return -e;
    }
    st->rec_fds = xrealloc(st->rec_fds, (st->nrec + 1) * sizeof(*st->rec_fds));
    st->rec_key = xrealloc(st->rec_key, (st->nrec + 1) * sizeof(*st->rec_key));
    st->rec_fds[st->nrec] = fd;
    st->rec_key[st->nrec] = NULL;
    k = (long)st->nrec++;
  }
  char rec[128], text[REC_SIZE];
  struct core_attempt copy = *a;
  copy.n = attempt; /* the record names the attempt it is for */
  core_attempt_format(&copy, rec, sizeof(rec));
  snprintf(text, sizeof(text), "%s %s", id, rec);
  int rc = rec_put(st, (size_t)k, text);
  if (rc < 0) {
    free(key);
    return rc;
  }
  if (!st->rec_key[k])
    st->rec_key[k] = key;
  else
    free(key);
  return 0;
}

int state_record_read(struct agent_state *st, const char *id, unsigned attempt,
                      struct core_attempt *a)
{
  char *key = rec_key(id, attempt);
  long k = rec_find(st, key);
  free(key);
  if (k < 0)
    return -ENOENT;
  char buf[REC_SIZE + 1];
  ssize_t n = pread(st->rec_fds[k], buf, REC_SIZE, 0);
  if (n < 0)
    return -errno;
  buf[n] = '\0';
  const char *rest = buf + strcspn(buf, " ");
  core_attempt_parse(*rest ? rest + 1 : rest, a);
  return 0;
}

void state_record_remove(struct agent_state *st, const char *id, unsigned attempt)
{
  char *key = rec_key(id, attempt);
  long k = rec_find(st, key);
  free(key);
  if (k < 0)
    return;
  int rc = rec_put(st, (size_t)k, "");
  if (rc < 0)
    log_warn("cannot clear attempt record", "dir=%s record=%ld error=%s", st->jobs, k,
             strerror(-rc));
  free(st->rec_key[k]);
  st->rec_key[k] = NULL;
}

int state_records(struct agent_state *st, struct state_name **out)
{
  *out = xcalloc(st->nrec + 1, sizeof(**out));
  int n = 0;
  for (size_t k = 0; k < st->nrec; k++) {
    if (!st->rec_key[k])
      continue;
    if (state_parse_name(st->rec_key[k], &(*out)[n]) == 0)
      n++;
  }
  return n;
}

char *state_result_path(struct agent_state *st, const char *id, unsigned attempt)
{
  return xasprintf("%s/%s.%u", st->results, id, attempt);
}
