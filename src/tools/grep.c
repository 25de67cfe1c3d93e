/* grep.c - the grep tool: a PCRE2 pattern (JIT-compiled, byte mode, ^ and $
 * at line ends) over a file or a tree beneath the roots.
 *
 * Speed (bench/bench_grep.sh compares it with GNU grep): each file is read
 * whole into one reused buffer and the pattern runs over the whole buffer,
 * not line by line, so a file without a match costs one JIT scan (PCRE2
 * looks for a literal first code unit with memchr). Only around a match are
 * its line's bounds and number worked out. A match that spans a newline
 * (a pattern such as "a\sb" can) is tried again within its first line
 * alone, so results are those of a line-by-line search, as grep's.
 *
 * When every match must contain a literal of 3 bytes or more ("occurred" in
 * "error_[0-9]{3} occurred"), find_lit finds the lines that hold it and the
 * pattern runs on those lines only, as GNU grep's must-have strings do: a
 * pattern whose first byte is common would otherwise start a match attempt
 * at nearly every byte. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pcre2.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
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
  char lit[256]; /* a literal every match holds; litlen 0: none known */
  size_t litlen;
  size_t rare_a, rare_b; /* the indexes of its two rarest bytes (find_lit) */
  char text[MAX_TEXT + 1];
};

static void keep_run(const char *run, size_t n, char *best, size_t *bestlen)
{
  if (n > *bestlen) {
    memcpy(best, run, n);
    *bestlen = n;
  }
}

/* Skips the character class that starts at p[i] ('['); returns the index
 * after its ']', or n when it does not end. */
static size_t skip_class(const char *p, size_t n, size_t i)
{
  i++;
  if (i < n && p[i] == '^')
    i++;
  if (i < n && p[i] == ']')
    i++;
  while (i < n && p[i] != ']')
    i += p[i] == '\\' ? 2 : 1;
  return i < n ? i + 1 : n;
}

/* The longest run of bytes every match of pattern p must contain, into
 * out (at most 255 bytes); 0 when none is sure. Only the plain part of the
 * syntax is read: anything that could make the run optional or change its
 * meaning (an alternation, (?...) options and assertions, (*...) verbs such
 * as (*ACCEPT), \Q, \x and other escapes with a letter that are not
 * classes) gives up, and a literal
 * followed by ?, * or {...} does not count. */
static size_t required_literal(const char *p, size_t n, char *out)
{
  char run[256];
  size_t len = 0, best = 0, i = 0;

  while (i < n) {
    char c = p[i], lit;
    size_t w = 1;
    if (c == '|' || c == '\n' || c == '\0' || c == ')' ||
        (c == '(' && i + 1 < n && (p[i + 1] == '?' || p[i + 1] == '*')))
      return 0;
    if (c == '[' || c == '(') {
      keep_run(run, len, out, &best);
      len = 0;
      if (c == '[') {
        if ((i = skip_class(p, n, i)) >= n && p[n - 1] != ']')
          return 0;
        continue;
      }
      int depth = 1;
      for (i++; i < n && depth;) {
        if (p[i] == '\\')
          i += 2;
        else if (p[i] == '[')
          i = skip_class(p, n, i);
        else {
          depth += p[i] == '(' ? 1 : p[i] == ')' ? -1 : 0;
          i++;
        }
      }
      if (depth)
        return 0;
      continue;
    }
    if (c == '\\') {
      if (i + 1 >= n)
        return 0;
      char d = p[i + 1];
      if ((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || (d >= '0' && d <= '9')) {
        if (!strchr("dDwWsSbBhHvV", d))
          return 0;
        keep_run(run, len, out, &best);
        len = 0;
        i += 2;
        continue;
      }
      lit = d;
      w = 2;
    } else if (strchr(".^$*+?{}", c)) {
      keep_run(run, len, out, &best);
      len = 0;
      i++;
      /* A quantifier's body ("{2,3}") is not literal text. */
      if (c == '{')
        while (i < n && p[i - 1] != '}')
          i++;
      continue;
    } else {
      lit = c;
    }
    char q = i + w < n ? p[i + w] : 0;
    if (q == '?' || q == '*' || q == '{') { /* this byte may be absent */
      keep_run(run, len, out, &best);
      len = 0;
      i += w;
      continue;
    }
    if (len < sizeof run)
      run[len++] = lit;
    i += w;
    if (q == '+') { /* at least one: the run ends after it */
      keep_run(run, len, out, &best);
      len = 0;
    }
  }
  keep_run(run, len, out, &best);
  return best;
}

/* Newlines in p[0..n), eight bytes at a time: a byte of x = word ^ "\n\n..."
 * is zero exactly where the word has a newline, and ((x & 0x7f..) + 0x7f..)
 * | x has its high bit clear exactly in those bytes (no carry crosses a
 * byte). The line numbers of matches are counted with it over most of each
 * file that has one. */
static size_t count_nl(const char *p, size_t n)
{
  const uint64_t nl = 0x0a0a0a0a0a0a0a0aull, low7 = 0x7f7f7f7f7f7f7f7full;
  size_t c = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    uint64_t x = w ^ nl;
    uint64_t t = ((x & low7) + low7) | x;
    /* one 0x01 byte per newline, summed by the multiply into the top byte
     * (at most 8: no overflow); no popcount, which x86-64's baseline lacks */
    c += (size_t)((((~t & ~low7) >> 7) * 0x0101010101010101ull) >> 56);
  }
  for (; i < n; i++)
    c += p[i] == '\n';
  return c;
}

/* How common a byte is in text and code, roughly (0 rare .. 9 very common),
 * to choose which two bytes of the literal find_lit looks for. */
static int byte_rank(unsigned char c)
{
  if (c == ' ' || c == 'e' || c == 't' || c == 'a' || c == 'o' || c == 'i' || c == 'n')
    return 9;
  if (c == 's' || c == 'r' || c == 'h' || c == 'l' || c == 'd' || c == 'c' || c == 'u')
    return 7;
  if ((c >= 'a' && c <= 'z') || c == '_' || c == '(' || c == ')' || c == ';' || c == ',' ||
      c == '.' || c == '=' || c == '"' || c == '\t')
    return 5;
  if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return 3;
  return 1;
}

/* The first occurrence of g->lit in p[0..n). With SSE2, 16 positions at a
 * time: where the literal's two chosen bytes (rare_a, rare_b) both sit at
 * their offsets, the whole literal is compared (W. Mula's "SIMD-friendly"
 * search); glibc's memmem is not vectorised and was a quarter of grep's
 * time on a 100 MB tree. The tail, and machines without SSE2, use memmem. */
static const char *find_lit(const struct grep *g, const char *p, size_t n)
{
  size_t len = g->litlen, i = 0;
#ifdef __SSE2__
  size_t a = g->rare_a, b = g->rare_b;
  const __m128i va = _mm_set1_epi8(g->lit[a]), vb = _mm_set1_epi8(g->lit[b]);
  for (; i + len + 16 <= n; i += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i + a));
    __m128i y = _mm_loadu_si128((const __m128i *)(const void *)(p + i + b));
    unsigned mask =
        (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(y, vb)));
    while (mask) {
      size_t at = i + (size_t)__builtin_ctz(mask);
      if (!memcmp(p + at, g->lit, len))
        return p + at;
      mask &= mask - 1;
    }
  }
#endif
  return i < n ? memmem(p + i, n - i, g->lit, len) : NULL;
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

/* search() with a required literal: the lines that hold it, each matched
 * alone (a subject that ends at the line's end, so no match runs past it). */
static int search_lit(struct grep *g, const char *path, const char *buf, size_t n)
{
  PCRE2_SPTR subj = (PCRE2_SPTR)buf;
  size_t off = 0, counted = 0, line = 1;

  while (off < n) {
    const char *p = find_lit(g, buf + off, n - off);
    if (!p)
      return 0;
    size_t pos = (size_t)(p - buf);
    const char *nl = pos > off ? memrchr(buf + off, '\n', pos - off) : NULL;
    size_t ls = nl ? (size_t)(nl - buf) + 1 : off;
    const char *e = memchr(p, '\n', n - pos);
    size_t le = e ? (size_t)(e - buf) : n;
    int rc = pcre2_match(g->re, subj, le, ls, 0, g->md, g->mc);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      tools_fail(g->t, TOOLS_EXIT_FAILED, NULL, "grep: '%s': pattern match failed (%d)", path, rc);
      g->error = 1;
      return 1;
    }
    if (rc >= 0) {
      line += count_nl(buf + counted, ls - counted);
      counted = ls;
      if (add_match(g, path, line, buf + ls, le - ls))
        return 1;
    }
    off = le + 1;
  }
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
    g->cap = g->cap ? g->cap : 65536;
    while (g->cap < want + 1)
      g->cap *= 2;
    free(g->buf);
    /* Page-aligned: the kernel copies file data into it with `rep movsb`,
     * which ran at less than half speed into malloc's 16-byte-aligned
     * block (the copy was 40% of a search's time). */
    if (posix_memalign((void **)&g->buf, 4096, g->cap) != 0)
      abort(); /* allocation failure, as xmalloc */
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
  if (g->litlen)
    return search_lit(g, path, g->buf, (size_t)n);
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
  g.litlen = required_literal(pattern, plen, g.lit);
  if (g.litlen < 3 || getenv("DROVER_GREP_NO_LITERAL"))
    g.litlen = 0;
  /* The two rarest bytes; on a tie the first and the last, far apart. */
  g.rare_a = 0;
  g.rare_b = g.litlen ? g.litlen - 1 : 0;
  for (size_t i = 1; i + 1 < g.litlen; i++) {
    int r = byte_rank((unsigned char)g.lit[i]);
    if (r < byte_rank((unsigned char)g.lit[g.rare_a]) &&
        byte_rank((unsigned char)g.lit[g.rare_a]) >= byte_rank((unsigned char)g.lit[g.rare_b]))
      g.rare_a = i;
    else if (r < byte_rank((unsigned char)g.lit[g.rare_b]))
      g.rare_b = i;
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
