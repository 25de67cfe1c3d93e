/* path.c - tool roots and paths opened beneath them (see path.h). */
#include "tools/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

void tools_roots_init(struct tools_roots *r)
{
  memset(r, 0, sizeof *r);
  /* For tests of the fallback walk on a kernel that has openat2. */
  const char *force = getenv("DROVER_TOOLS_NO_OPENAT2");
  r->no_openat2 = force && *force == '1';
}

void tools_roots_release(struct tools_roots *r)
{
  for (size_t i = 0; i < r->n; i++) {
    free(r->v[i].path);
    free(r->v[i].given);
    if (r->v[i].fd >= 0)
      close(r->v[i].fd);
  }
  free(r->v);
  memset(r, 0, sizeof *r);
}

/* dir made absolute against the working directory, without resolving
 * links: "/tmp/link/x" stays as written, so a user's absolute path that
 * names a root the way it was given still matches it. Trailing slashes go. */
static char *absolute(const char *dir)
{
  char cwd[PATH_MAX];
  char *s;
  if (dir[0] == '/')
    s = xstrdup(dir);
  else if (getcwd(cwd, sizeof cwd))
    s = xasprintf("%s/%s", cwd, dir);
  else
    return NULL;
  size_t n = strlen(s);
  while (n > 1 && s[n - 1] == '/')
    s[--n] = '\0';
  return s;
}

int tools_roots_add(struct tools_roots *r, const char *dir, int write, char *err, size_t errlen)
{
  char *canon = realpath(dir, NULL), *given;
  struct stat st;
  int fd, rc;

  if (!canon) {
    rc = -errno;
    snprintf(err, errlen, "tool root '%s': %s", dir, strerror(-rc));
    return rc;
  }
  fd = open(canon, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) < 0) {
    rc = -errno;
    snprintf(err, errlen, "tool root '%s': %s", dir, strerror(-rc));
    free(canon);
    if (fd >= 0)
      close(fd);
    return rc;
  }
  given = absolute(dir);
  if (!given)
    given = xstrdup(canon);
  r->v = xrealloc(r->v, (r->n + 1) * sizeof *r->v);
  r->v[r->n++] = (struct tools_root){canon, given, fd, write};
  return 0;
}

/* ---- resolution beneath one root --------------------------------------- */

static int openat2_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned)(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
  return fd < 0 ? -errno : (int)fd;
}

/* The walk without openat2: every component opened with O_NOFOLLOW from
 * the directory before it, so a symbolic link anywhere is refused, and ".."
 * is allowed only while it stays below the root (depth > 0). Without links,
 * ".." is the real parent of the folder walked into, so counting is enough
 * (a folder moved out of the root during the walk is the race openat2
 * closes and this cannot; docs/tools.md says so). */
static int walk_beneath(int rootfd, const char *rel, int flags, mode_t mode)
{
  char *copy = xstrdup(rel), *save = NULL, *comp, *next;
  int cur = dup(rootfd), depth = 0, rc;
  struct stat st;

  if (cur < 0) {
    free(copy);
    return -errno;
  }
  comp = strtok_r(copy, "/", &save);
  while (comp && !strcmp(comp, "."))
    comp = strtok_r(NULL, "/", &save);
  if (!comp) { /* the root itself */
    rc = openat(cur, ".", flags | O_CLOEXEC | O_NOFOLLOW, (flags & O_CREAT) ? mode : 0);
    rc = rc < 0 ? -errno : rc;
    goto out;
  }
  for (;;) {
    next = strtok_r(NULL, "/", &save);
    while (next && !strcmp(next, "."))
      next = strtok_r(NULL, "/", &save);
    if (!strcmp(comp, "..")) {
      if (depth == 0) {
        rc = TOOLS_EOUTSIDE;
        goto out;
      }
      depth--;
    } else {
      depth++;
    }
    if (!next) {
      int f = flags | O_CLOEXEC | O_NOFOLLOW;
      rc = openat(cur, comp, f, (flags & O_CREAT) ? mode : 0);
      if (rc < 0)
        rc = -errno;
      /* O_NOFOLLOW: ELOOP for a link (O_PATH opens the link itself). */
      if (rc == -ELOOP ||
          (rc >= 0 && (flags & O_PATH) && fstat(rc, &st) == 0 && S_ISLNK(st.st_mode))) {
        if (rc >= 0)
          close(rc);
        rc = TOOLS_ESYMLINK;
      }
      goto out;
    }
    int fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      rc = -errno;
      if (rc == -ENOTDIR && fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode))
        rc = TOOLS_ESYMLINK;
      goto out;
    }
    close(cur);
    cur = fd;
    comp = next;
  }
out:
  close(cur);
  free(copy);
  return rc;
}

static int open_beneath(const struct tools_roots *r, int rootfd, const char *rel, int flags,
                        mode_t mode)
{
  if (!*rel)
    rel = ".";
  if (!r->no_openat2) {
    int rc = openat2_beneath(rootfd, rel, flags, mode);
    if (rc == -EXDEV)
      return TOOLS_EOUTSIDE;
    if (rc != -ENOSYS && rc != -EPERM)
      return rc;
    /* ENOSYS: a kernel before 5.6; EPERM: a seccomp filter (some container
     * runtimes) that refuses the call. Then the walk below. */
  }
  return walk_beneath(rootfd, rel, flags, mode);
}

/* What follows prefix in abs: "" when abs is prefix, the rest after its '/'
 * when abs is beneath it, NULL otherwise. */
static const char *beneath(const char *abs, const char *prefix)
{
  size_t n = strlen(prefix);
  if (n == 1 && prefix[0] == '/')
    return abs + 1;
  if (strncmp(abs, prefix, n) != 0)
    return NULL;
  if (abs[n] == '\0')
    return abs + n;
  return abs[n] == '/' ? abs + n + 1 : NULL;
}

/* The roots abs is beneath, longest path first, with the rest of abs. */
struct cand {
  size_t root;
  const char *rel;
  size_t len;
};

static size_t candidates(const struct tools_roots *r, const char *abs, int want_write,
                         struct cand *out, int *saw_readonly)
{
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++) {
    const char *rel = beneath(abs, r->v[i].path);
    size_t len = strlen(r->v[i].path);
    if (!rel) {
      rel = beneath(abs, r->v[i].given);
      len = strlen(r->v[i].given);
    }
    if (!rel)
      continue;
    if (want_write && !r->v[i].write) {
      *saw_readonly = 1;
      continue;
    }
    size_t k = n++;
    while (k > 0 && out[k - 1].len < len) {
      out[k] = out[k - 1];
      k--;
    }
    out[k] = (struct cand){i, rel, len};
  }
  return n;
}

/* abs: path itself when absolute, else the first root's path joined to it. */
static char *abs_path(const struct tools_roots *r, const char *path)
{
  if (path[0] == '/')
    return xstrdup(path);
  return xasprintf("%s/%s", r->v[0].path, path);
}

/* Opens path beneath the first candidate root that admits it; a root that
 * refuses it (a ".." or a link leaving it) lets a shorter one try: "/a/w/../x"
 * is outside the write root /a/w but inside the root /a. */
static int resolve(const struct tools_roots *r, const char *path, int flags, mode_t mode,
                   int want_write, size_t *root_out)
{
  int saw_readonly = 0, first = 0;
  struct cand *c;
  char *abs;
  size_t n;

  if (r->n == 0)
    return TOOLS_ENOROOT;
  if (!*path)
    return -ENOENT;
  /* The kernel's own bound; it also bounds tools_path_parent's recursion,
   * one level per component. */
  if (strlen(path) >= PATH_MAX)
    return -ENAMETOOLONG;
  abs = abs_path(r, path);
  c = xcalloc(r->n, sizeof *c);
  n = candidates(r, abs, want_write, c, &saw_readonly);
  for (size_t i = 0; i < n; i++) {
    int rc = open_beneath(r, r->v[c[i].root].fd, c[i].rel, flags, mode);
    if (rc >= 0) {
      if (root_out)
        *root_out = c[i].root;
      first = rc;
      goto out;
    }
    if (!first)
      first = rc;
    if (rc != TOOLS_EOUTSIDE && rc != -ELOOP && rc != TOOLS_ESYMLINK)
      break;
  }
  if (!first || (first == TOOLS_EOUTSIDE && saw_readonly))
    first = saw_readonly ? TOOLS_ENOWRITE : TOOLS_EOUTSIDE;
out:
  free(c);
  free(abs);
  return first;
}

int tools_path_open(const struct tools_roots *r, const char *path, int flags, mode_t mode,
                    int want_write, int type, size_t *root_out)
{
  struct stat st;
  int fd, pre;

  if (flags & O_PATH)
    return resolve(r, path, flags, mode, want_write, root_out);
  flags |= O_NONBLOCK | O_NOCTTY;
  /* The type first, on an O_PATH fd: opening a FIFO for writing, or a
   * device at all, may block or have effects; an O_PATH open has none. */
  pre = resolve(r, path, O_PATH, 0, want_write, root_out);
  if (pre >= 0) {
    int bad = fstat(pre, &st) < 0 ? -errno : 0;
    close(pre);
    if (bad)
      return bad;
    if (type == 'd' && !S_ISDIR(st.st_mode))
      return TOOLS_ENOTDIR;
    if (type == 'f' && S_ISDIR(st.st_mode))
      return -EISDIR;
    if (type == 'f' && !S_ISREG(st.st_mode))
      return TOOLS_ENOTREG;
  } else if (pre != -ENOENT || !(flags & O_CREAT)) {
    return pre;
  }
  fd = resolve(r, path, flags, mode, want_write, root_out);
  if (fd < 0)
    return fd;
  /* Checked again on what was opened: the path may have been replaced. */
  if (fstat(fd, &st) < 0 || (type == 'f' && !S_ISREG(st.st_mode)) ||
      (type == 'd' && !S_ISDIR(st.st_mode))) {
    close(fd);
    return type == 'd' ? TOOLS_ENOTDIR : TOOLS_ENOTREG;
  }
  return fd;
}

int tools_path_parent(const struct tools_roots *r, const char *path, const char **base)
{
  if (strlen(path) >= PATH_MAX)
    return -ENAMETOOLONG;
  char *dir = xstrdup(path);
  size_t len = strlen(dir);
  int fd;

  while (len > 1 && dir[len - 1] == '/')
    dir[--len] = '\0';
  char *slash = strrchr(dir, '/');
  *base = path + (slash ? (size_t)(slash - dir) + 1 : 0);
  if (!slash) {
    free(dir);
    return resolve(r, ".", O_PATH | O_DIRECTORY, 0, 1, NULL);
  }
  if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  /* mkdir -p, each folder created beneath the one before it, which was
   * itself opened beneath a write root. */
  fd = resolve(r, dir, O_PATH | O_DIRECTORY, 0, 1, NULL);
  if (fd == -ENOENT) {
    const char *sub;
    int pfd = tools_path_parent(r, dir, &sub);
    if (pfd < 0) {
      free(dir);
      return pfd;
    }
    if (mkdirat(pfd, sub, 0777) < 0 && errno != EEXIST) {
      fd = -errno;
      close(pfd);
      free(dir);
      return fd;
    }
    close(pfd);
    fd = resolve(r, dir, O_PATH | O_DIRECTORY, 0, 1, NULL);
  }
  free(dir);
  return fd;
}

const char *tools_path_strerror(int err)
{
  switch (err) {
  case TOOLS_EOUTSIDE:
    return "it leaves every tool root";
  case TOOLS_ENOWRITE:
    return "it is not beneath a tool write root";
  case TOOLS_ENOROOT:
    return "no tool root is configured";
  case TOOLS_ESYMLINK:
    return "it goes through a symbolic link, which is not followed without openat2";
  case TOOLS_ENOTREG:
    return "it is not a regular file";
  case TOOLS_ENOTDIR:
    return "it is not a directory";
  case -ELOOP:
    return "too many levels of symbolic links (a loop?)";
  }
  return strerror(-err);
}

const char *tools_path_rule(int err)
{
  switch (err) {
  case TOOLS_EOUTSIDE:
  case TOOLS_ENOROOT:
  case TOOLS_ESYMLINK:
  case -ELOOP:
    return "tool-root";
  case TOOLS_ENOWRITE:
    return "tool-write-root";
  case TOOLS_ENOTREG:
    return "regular-files";
  }
  return NULL;
}
