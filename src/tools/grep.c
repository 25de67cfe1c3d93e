/* grep.c - the grep tool: a PCRE2 pattern (JIT-compiled, byte mode, ^ and $
 * at line ends) over a file or a tree beneath the roots.
 *
 * Speed (bench/bench_grep.sh compares it with GNU grep): each file is read
 * whole into one reused buffer and the pattern runs over the whole buffer,
 * not line by line, so a file without a match costs one JIT scan (PCRE2
 * looks for a literal first code unit with memchr). Only around a match are
 * its line's bounds and number worked out. A match that spans a newline
 * (a pattern such as "a\sb" can) is tried again within its first line
 * alone, so results are those of a line-by-line search, as grep's. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/jsonstr.h"
#include "base/util.h"
#include "tools/tools.h"
#include "tools/walk.h"

/* A matched line's "text" shows at most this many bytes. */
#define MAX_TEXT 1024
/* Backtracking bound per match attempt: a pathological pattern fails the
 * tool instead of running for hours. */
#define MATCH_LIMIT 10000000u

struct grep {
  struct tools_ctx *t;
  pcre2_code *re;
  pcre2_match_data *md;
  pcre2_match_context *mc;
  const char *glob;
  const char *prefix;
  json_t *matches;
  size_t out_bytes;
  int truncated;
  int error; /* a match failed (PCRE2_ERROR_MATCHLIMIT ...): t->err says so */
  uint64_t binary, large;
  char *buf;
  size_t cap;
  char text[MAX_TEXT + 1];
};

static size_t count_nl(const char *p, size_t n)
{
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += p[i] == '\n';
  return c;
}

static int add_match(struct grep *g, const char *path, size_t line, const char *s, size_t len)
{
  if (len > MAX_TEXT) {
    len = MAX_TEXT;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
      len--; /* not in the middle of a UTF-8 character */
  }
  size_t cost = strlen(path) + len + 48;
  if (g->out_bytes + cost > g->t->max_bytes) {
    g->truncated = 1;
    return 1;
  }
  g->out_bytes += cost;
  memcpy(g->text, s, len);
  g->text[len] = '\0';
  json_t *m = json_object();
  json_object_set_new(m, "path", jsonstr_new(path));
  json_object_set_new(m, "line", json_integer((json_int_t)line));
  json_object_set_new(m, "text", jsonstr_new(g->text));
  json_array_append_new(g->matches, m);
  return 0;
}

/* Searches buf[0..n) (a whole file, no NUL in it). Returns 1 to stop. */
static int search(struct grep *g, const char *path, const char *buf, size_t n)
{
  PCRE2_SPTR subj = (PCRE2_SPTR)buf;
  size_t off = 0, counted = 0, line = 1;

  while (off <= n) {
    int rc = pcre2_match(g->re, subj, n, off, 0, g->md, g->mc);
    if (rc == PCRE2_ERROR_NOMATCH)
      return 0;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      tools_fail(g->t, TOOLS_EXIT_FAILED, NULL, "grep: '%s': %s", path, (const char *)msg);
      g->error = 1;
      return 1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(g->md);
    size_t ms = ov[0], me = ov[1];
    const char *nl = ms > off ? memrchr(buf + off, '\n', ms - off) : NULL;
    size_t ls = nl ? (size_t)(nl - buf) + 1 : off;
    const char *e = memchr(buf + ms, '\n', n - ms);
    size_t le = e ? (size_t)(e - buf) : n;
    if (me > le) {
      /* The match crossed a newline: does the line hold one by itself? */
      rc = pcre2_match(g->re, subj, le, ls, 0, g->md, g->mc);
      if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        tools_fail(g->t, TOOLS_EXIT_FAILED, NULL, "grep: '%s': pattern match failed (%d)", path,
                   rc);
        g->error = 1;
        return 1;
      }
      if (rc == PCRE2_ERROR_NOMATCH) {
        off = le + 1;
        continue;
      }
    }
    if (ls == n && (n == 0 || buf[n - 1] == '\n'))
      return 0; /* the empty "line" after a final newline is not a line */
    line += count_nl(buf + counted, ls - counted);
    counted = ls;
    if (add_match(g, path, line, buf + ls, le - ls))
      return 1;
    off = le + 1;
  }
  return 0;
}

/* Reads the regular file fd whole into g->buf. Returns its length, or -1
 * when it is skipped (too large, a read error). */
static long long slurp(struct grep *g, int fd, const struct stat *st)
{
  if ((uint64_t)st->st_size > g->t->max_bytes) {
    g->large++;
    return -1;
  }
  size_t want = (size_t)st->st_size + 1, n = 0;
  if (g->cap < want + 1) {
    g->cap = want + 1 > 65536 ? want + 1 : 65536;
    free(g->buf);
    g->buf = xmalloc(g->cap);
  }
  /* One byte more than fstat said: a file that grew is read to its size
   * then, and no further. */
  while (n < want) {
    ssize_t r = read(fd, g->buf + n, want - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    n += (size_t)r;
  }
  return (long long)n;
}

static int grep_fd(struct grep *g, int fd, const char *path)
{
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
    return 0;
  long long n = slurp(g, fd, &st);
  if (n < 0)
    return 0;
  if (memchr(g->buf, '\0', (size_t)n)) {
    g->binary++;
    return 0;
  }
  return search(g, path, g->buf, (size_t)n);
}

static int grep_one(void *ud, int dirfd, const char *name, const char *rel, unsigned char type)
{
  struct grep *g = ud;
  if (type != DT_REG || (g->glob && fnmatch(g->glob, name, 0) != 0))
    return 0;
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  char *path = *g->prefix ? xasprintf("%s/%s", g->prefix, rel) : xstrdup(rel);
  int stop = grep_fd(g, fd, path);
  free(path);
  close(fd);
  return stop;
}

int tools_grep(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"pattern", "path", "glob", NULL};
  const char *pattern = NULL, *path = ".";
  size_t plen = 0;
  struct grep g;
  struct stat st;
  int rc, errcode, fd;
  PCRE2_SIZE erroff;

  memset(&g, 0, sizeof g);
  g.t = t;
  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "pattern", 1, &pattern, &plen)) ||
      (rc = tools_arg_str(t, args, "path", 0, &path, NULL)) ||
      (rc = tools_arg_str(t, args, "glob", 0, &g.glob, NULL)))
    return rc;
  g.re = pcre2_compile((PCRE2_SPTR)pattern, plen, PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C,
                       &errcode, &erroff, NULL);
  if (!g.re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(errcode, msg, sizeof msg);
    return tools_fail(t, TOOLS_EXIT_USAGE, NULL, "argument \"pattern\": at offset %zu: %s",
                      (size_t)erroff, (const char *)msg);
  }
  /* Without JIT (a build without it, or W^X memory) the interpreter runs. */
  pcre2_jit_compile(g.re, PCRE2_JIT_COMPLETE);
  g.md = pcre2_match_data_create_from_pattern(g.re, NULL);
  g.mc = pcre2_match_context_create(NULL);
  pcre2_set_match_limit(g.mc, MATCH_LIMIT);

  /* A file or a folder: its type from an O_PATH fd, then opened as that. */
  fd = tools_path_open(&t->roots, path, O_PATH, 0, 0, 0, NULL);
  if (fd >= 0 && fstat(fd, &st) < 0)
    st.st_mode = 0;
  if (fd >= 0)
    close(fd);
  if (fd >= 0)
    fd = S_ISDIR(st.st_mode)
             ? tools_path_open(&t->roots, path, O_RDONLY | O_DIRECTORY, 0, 0, 'd', NULL)
             : tools_path_open(&t->roots, path, O_RDONLY, 0, 0, 'f', NULL);
  if (fd < 0) {
    rc = tools_path_fail(t, path, fd);
    goto out;
  }
  g.matches = json_array();
  char *prefix = tools_prefix(path);
  g.prefix = prefix;
  if (S_ISDIR(st.st_mode)) {
    walk_tree(fd, WALK_MAX_DEPTH, grep_one, &g);
  } else {
    g.prefix = "";
    grep_fd(&g, fd, *prefix ? prefix : path);
  }
  free(prefix);
  close(fd);
  if (g.error) {
    rc = TOOLS_EXIT_FAILED;
    goto out;
  }
  *out = json_pack("{s:O,s:b,s:I,s:I}", "matches", g.matches, "truncated", g.truncated,
                   "binary_skipped", (json_int_t)g.binary, "large_skipped", (json_int_t)g.large);
  rc = 0;
out:
  json_decref(g.matches);
  free(g.buf);
  pcre2_match_context_free(g.mc);
  pcre2_match_data_free(g.md);
  pcre2_code_free(g.re);
  return rc;
}
