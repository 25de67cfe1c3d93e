/* files.c - the file tools: file_read, file_write, file_edit, list, find.
 * Every path goes through tools_path_open (path.c), beneath the roots. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/jsonstr.h"
#include "base/util.h"
#include "tools/tools.h"
#include "tools/walk.h"

/* list and find stop after this many entries ("truncated": true). */
#define MAX_ENTRIES 100000

static int pread_all(int fd, char *buf, size_t len, uint64_t off, size_t *got)
{
  size_t n = 0;
  while (n < len) {
    ssize_t r = pread(fd, buf + n, len - n, (off_t)(off + n));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *got = n;
  return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

static int too_big(struct tools_ctx *t, const char *what, uint64_t n, const char *hint)
{
  return tools_fail(t, TOOLS_EXIT_REFUSED, "tool-max-bytes",
                    "%s: %llu bytes, more than --tool-max-bytes allows (%llu)%s", what,
                    (unsigned long long)n, (unsigned long long)t->max_bytes, hint);
}

int tools_file_read(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"path", "offset", "limit", NULL};
  const char *path = NULL;
  uint64_t offset = 0, limit = UINT64_MAX;
  struct stat st;
  int fd, rc;

  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "path", 1, &path, NULL)) ||
      (rc = tools_arg_uint(t, args, "offset", &offset)) ||
      (rc = tools_arg_uint(t, args, "limit", &limit)))
    return rc;
  fd = tools_path_open(&t->roots, path, O_RDONLY, 0, 0, 'f', NULL);
  if (fd < 0)
    return tools_path_fail(t, path, fd);
  if (fstat(fd, &st) < 0) {
    rc = tools_fail(t, TOOLS_EXIT_FAILED, NULL, "path '%s': %s", path, strerror(errno));
    close(fd);
    return rc;
  }
  uint64_t size = (uint64_t)st.st_size;
  uint64_t rest = offset < size ? size - offset : 0;
  uint64_t want = limit < rest ? limit : rest;
  if (want > t->max_bytes) {
    char what[600];
    snprintf(what, sizeof what, "reading '%s'", path);
    close(fd);
    return too_big(t, what, want, ": read it in parts with \"offset\" and \"limit\"");
  }
  char *buf = xmalloc(want + 1);
  size_t got = 0;
  if ((rc = pread_all(fd, buf, (size_t)want, offset, &got)) < 0) {
    free(buf);
    close(fd);
    return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "path '%s': %s", path, strerror(-rc));
  }
  close(fd);
  json_t *o = json_object();
  tools_set_bytes(o, "content", buf, got);
  json_object_set_new(o, "size", json_integer((json_int_t)size));
  json_object_set_new(o, "truncated", json_boolean(offset + got < size));
  free(buf);
  *out = o;
  return 0;
}

int tools_file_write(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"path", "content", "append", NULL};
  const char *path = NULL, *content = NULL, *base;
  size_t len = 0;
  int append = 0, fd, rc;

  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "path", 1, &path, NULL)) ||
      (rc = tools_arg_str(t, args, "content", 1, &content, &len)) ||
      (rc = tools_arg_bool(t, args, "append", &append)))
    return rc;
  if (len > t->max_bytes)
    return too_big(t, "\"content\"", len, "");
  /* The folders on the way are made beneath a write root first. */
  fd = tools_path_parent(&t->roots, path, &base);
  if (fd < 0)
    return tools_path_fail(t, path, fd);
  close(fd);
  fd = tools_path_open(&t->roots, path, O_WRONLY | O_CREAT | (append ? O_APPEND : 0), 0666, 1, 'f',
                       NULL);
  if (fd < 0)
    return tools_path_fail(t, path, fd);
  /* Truncated only now, once it is known to be a regular file beneath a
   * write root (O_TRUNC would act before that check). */
  if ((!append && ftruncate(fd, 0) < 0) || (rc = write_all(fd, content, len)) < 0) {
    rc = rc < 0 ? rc : -errno;
    close(fd);
    return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "writing '%s': %s", path, strerror(-rc));
  }
  if (close(fd) < 0)
    return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "writing '%s': %s", path, strerror(errno));
  *out = json_pack("{s:I}", "bytes", (json_int_t)len);
  return 0;
}

int tools_file_edit(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"path", "old", "new", "replace_all", NULL};
  const char *path = NULL, *old = NULL, *new = NULL;
  size_t olen = 0, nlen = 0, got = 0, count = 0;
  int all = 0, fd, rc;
  struct stat st;

  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "path", 1, &path, NULL)) ||
      (rc = tools_arg_str(t, args, "old", 1, &old, &olen)) ||
      (rc = tools_arg_str(t, args, "new", 1, &new, &nlen)) ||
      (rc = tools_arg_bool(t, args, "replace_all", &all)))
    return rc;
  if (olen == 0)
    return tools_fail(t, TOOLS_EXIT_USAGE, NULL, "argument \"old\" must not be empty");
  fd = tools_path_open(&t->roots, path, O_RDWR, 0, 1, 'f', NULL);
  if (fd < 0)
    return tools_path_fail(t, path, fd);
  if (fstat(fd, &st) < 0) {
    rc = -errno;
    goto io_fail;
  }
  if ((uint64_t)st.st_size > t->max_bytes) {
    char what[600];
    snprintf(what, sizeof what, "editing '%s'", path);
    close(fd);
    return too_big(t, what, (uint64_t)st.st_size, "");
  }
  char *buf = xmalloc((size_t)st.st_size + 1);
  if ((rc = pread_all(fd, buf, (size_t)st.st_size, 0, &got)) < 0) {
    free(buf);
    goto io_fail;
  }
  for (const char *p = buf; (p = memmem(p, got - (size_t)(p - buf), old, olen)); p += olen)
    count++;
  if (count == 0 || (count > 1 && !all)) {
    free(buf);
    close(fd);
    if (count == 0)
      return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "\"old\" was not found in '%s'", path);
    return tools_fail(t, TOOLS_EXIT_FAILED, NULL,
                      "\"old\" was found %zu times in '%s': give more of the text around it so "
                      "that it is found once, or set \"replace_all\": true",
                      count, path);
  }
  size_t nsize = got - count * olen + count * nlen;
  if (nsize > t->max_bytes) {
    free(buf);
    close(fd);
    return too_big(t, "the edited file", nsize, "");
  }
  char *res = xmalloc(nsize + 1), *w = res;
  const char *p = buf, *q;
  while ((q = memmem(p, got - (size_t)(p - buf), old, olen))) {
    memcpy(w, p, (size_t)(q - p));
    w += q - p;
    memcpy(w, new, nlen);
    w += nlen;
    p = q + olen;
  }
  memcpy(w, p, got - (size_t)(p - buf));
  free(buf);
  rc = 0;
  if (lseek(fd, 0, SEEK_SET) < 0 || ftruncate(fd, 0) < 0)
    rc = -errno;
  if (rc == 0)
    rc = write_all(fd, res, nsize);
  free(res);
  if (rc < 0)
    goto io_fail;
  close(fd);
  *out = json_pack("{s:I}", "replacements", (json_int_t)count);
  return 0;
io_fail:
  close(fd);
  return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "editing '%s': %s", path, strerror(-rc));
}

static const char *type_name(unsigned char type)
{
  switch (type) {
  case DT_REG:
    return "file";
  case DT_DIR:
    return "dir";
  case DT_LNK:
    return "symlink";
  case DT_FIFO:
    return "fifo";
  case DT_SOCK:
    return "socket";
  case DT_CHR:
    return "char";
  case DT_BLK:
    return "block";
  }
  return "other";
}

struct list_ctx {
  json_t *entries;
  size_t n;
  int truncated;
};

static int list_one(void *ud, int dirfd, const char *name, const char *rel, unsigned char type)
{
  struct list_ctx *l = ud;
  struct stat st;
  if (l->n >= MAX_ENTRIES) {
    l->truncated = 1;
    return 1;
  }
  json_t *e = json_object();
  json_object_set_new(e, "name", jsonstr_new(name));
  json_object_set_new(e, "type", json_string(type_name(type)));
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    json_object_set_new(e, "size", json_integer((json_int_t)st.st_size));
  json_array_append_new(l->entries, e);
  l->n++;
  return 0;
}

int tools_list(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"path", NULL};
  const char *path = ".";
  struct list_ctx l = {json_array(), 0, 0};
  int fd, rc;

  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "path", 0, &path, NULL))) {
    json_decref(l.entries);
    return rc;
  }
  fd = tools_path_open(&t->roots, path, O_RDONLY | O_DIRECTORY, 0, 0, 'd', NULL);
  if (fd < 0) {
    json_decref(l.entries);
    return tools_path_fail(t, path, fd);
  }
  walk_tree(fd, 0, list_one, &l);
  close(fd);
  *out = json_pack("{s:o,s:b}", "entries", l.entries, "truncated", l.truncated);
  return 0;
}

struct find_ctx {
  const char *pattern;
  const char *prefix; /* the path as given, "" for "." */
  json_t *paths;
  size_t n, bytes;
  uint64_t max_bytes;
  int truncated;
};

static int find_one(void *ud, int dirfd, const char *name, const char *rel, unsigned char type)
{
  struct find_ctx *f = ud;
  if (fnmatch(f->pattern, name, FNM_PERIOD) != 0)
    return 0;
  char *p = *f->prefix ? xasprintf("%s/%s", f->prefix, rel) : xstrdup(rel);
  size_t len = strlen(p);
  if (f->n >= MAX_ENTRIES || f->bytes + len + 4 > f->max_bytes) {
    free(p);
    f->truncated = 1;
    return 1;
  }
  json_array_append_new(f->paths, jsonstr_new(p));
  f->n++;
  f->bytes += len + 4;
  free(p);
  return 0;
}

/* The path as a prefix for what is below it: "src/" -> "src", "." -> "". */
char *tools_prefix(const char *path)
{
  char *p = xstrdup(path);
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  if (!strcmp(p, "."))
    p[0] = '\0';
  return p;
}

int tools_find(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"path", "name", NULL};
  const char *path = ".", *name = NULL;
  int fd, rc;

  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "path", 0, &path, NULL)) ||
      (rc = tools_arg_str(t, args, "name", 1, &name, NULL)))
    return rc;
  fd = tools_path_open(&t->roots, path, O_RDONLY | O_DIRECTORY, 0, 0, 'd', NULL);
  if (fd < 0)
    return tools_path_fail(t, path, fd);
  char *prefix = tools_prefix(path);
  struct find_ctx f = {name, prefix, json_array(), 0, 0, t->max_bytes, 0};
  walk_tree(fd, WALK_MAX_DEPTH, find_one, &f);
  close(fd);
  free(prefix);
  *out = json_pack("{s:o,s:b}", "paths", f.paths, "truncated", f.truncated);
  return 0;
}
