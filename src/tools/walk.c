/* walk.c - a folder tree through directory fds (see walk.h). */
#include "tools/walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

struct ent {
  char *name;
  unsigned char type;
};

static int by_name(const void *a, const void *b)
{
  return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

static unsigned char mode_type(mode_t m)
{
  if (S_ISREG(m))
    return DT_REG;
  if (S_ISDIR(m))
    return DT_DIR;
  if (S_ISLNK(m))
    return DT_LNK;
  if (S_ISFIFO(m))
    return DT_FIFO;
  if (S_ISSOCK(m))
    return DT_SOCK;
  if (S_ISCHR(m))
    return DT_CHR;
  if (S_ISBLK(m))
    return DT_BLK;
  return DT_UNKNOWN;
}

/* Reads the folder's entries, sorted. The fd is dup'ed: closedir closes
 * the copy. */
static struct ent *read_dir(int dirfd, size_t *n)
{
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  struct ent *v = NULL;
  size_t cap = 0;
  struct dirent *de;

  *n = 0;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    unsigned char type = de->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      type = mode_type(st.st_mode);
    }
    if (*n == cap) {
      cap = cap ? cap * 2 : 32;
      v = xrealloc(v, cap * sizeof *v);
    }
    v[(*n)++] = (struct ent){xstrdup(de->d_name), type};
  }
  closedir(d);
  if (*n > 1)
    qsort(v, *n, sizeof *v, by_name);
  return v;
}

static int walk(int dirfd, const char *prefix, int depth, int max_depth, walk_fn fn, void *ud)
{
  size_t n, i;
  struct ent *v = read_dir(dirfd, &n);
  int stop = 0;

  for (i = 0; i < n && !stop; i++) {
    char *rel = *prefix ? xasprintf("%s/%s", prefix, v[i].name) : xstrdup(v[i].name);
    stop = fn(ud, dirfd, v[i].name, rel, v[i].type);
    if (!stop && v[i].type == DT_DIR && depth < max_depth) {
      int sub = openat(dirfd, v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        stop = walk(sub, rel, depth + 1, max_depth, fn, ud);
        close(sub);
      }
    }
    free(rel);
  }
  for (i = 0; i < n; i++)
    free(v[i].name);
  free(v);
  return stop;
}

int walk_tree(int dirfd, int max_depth, walk_fn fn, void *ud)
{
  return walk(dirfd, "", 0, max_depth, fn, ud);
}
