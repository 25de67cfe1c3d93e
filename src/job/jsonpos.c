/* jsonpos.c - a small JSON scanner that reports line and column of a path. */
#include "job/jsonpos.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct scan {
  const char *p, *end;
  int line, col;
};

/* Columns count characters, not bytes: UTF-8 continuation bytes do not
 * advance the column, matching jansson's syntax-error positions. */
static void adv(struct scan *s)
{
  unsigned char c = (unsigned char)*s->p++;
  if (c == '\n') {
    s->line++;
    s->col = 1;
  } else if ((c & 0xc0) != 0x80) {
    s->col++;
  }
}

static void skip_ws(struct scan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    adv(s);
}

static void put_utf8(char *out, size_t *n, size_t cap, unsigned cp)
{
  char b[4];
  size_t k;
  if (cp < 0x80) {
    b[0] = (char)cp;
    k = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xc0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3f));
    k = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xe0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (char)(0x80 | (cp & 0x3f));
    k = 3;
  } else {
    b[0] = (char)(0xf0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (char)(0x80 | (cp & 0x3f));
    k = 4;
  }
  for (size_t i = 0; i < k; i++)
    if (*n < cap)
      out[(*n)++] = b[i];
}

static unsigned read_hex4(struct scan *s)
{
  unsigned v = 0;
  for (int i = 0; i < 4 && s->p < s->end; i++) {
    int h = hex_value(*s->p);
    v = v * 16 + (unsigned)(h < 0 ? 0 : h);
    adv(s);
  }
  return v;
}

/* Scans a string at s->p (on its opening quote). When out is given, the
 * decoded text is stored there (up to cap bytes) and its length in *outn;
 * a name longer than cap simply never matches. */
static int scan_string(struct scan *s, char *out, size_t cap, size_t *outn)
{
  size_t n = 0;
  if (s->p >= s->end || *s->p != '"')
    return -1;
  adv(s);
  while (s->p < s->end && *s->p != '"') {
    if (*s->p == '\\') {
      adv(s);
      if (s->p >= s->end)
        return -1;
      char c = *s->p;
      adv(s);
      if (c == 'u') {
        unsigned cp = read_hex4(s);
        if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
            s->p[1] == 'u') {
          adv(s);
          adv(s);
          unsigned lo = read_hex4(s);
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (out)
          put_utf8(out, &n, cap, cp);
        continue;
      }
      static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
      const char *m = strchr(from, c);
      c = m && c ? to[m - from] : c;
      if (out && n < cap)
        out[n++] = c;
      continue;
    }
    if (out && n < cap)
      out[n++] = *s->p;
    adv(s);
  }
  if (s->p >= s->end)
    return -1;
  adv(s); /* closing quote */
  if (outn)
    *outn = n;
  return 0;
}

/* Skips one value of any kind. Nesting is tracked with a depth counter and
 * strings are skipped whole, so brackets inside strings do not count. */
static int skip_value(struct scan *s)
{
  int depth = 0;
  skip_ws(s);
  do {
    if (s->p >= s->end)
      return -1;
    char c = *s->p;
    if (c == '"') {
      if (scan_string(s, NULL, 0, NULL) < 0)
        return -1;
    } else {
      if (c == '{' || c == '[')
        depth++;
      else if (c == '}' || c == ']')
        depth--;
      adv(s);
      if (depth == 0 && c != '}' && c != ']' && c != '{' && c != '[') {
        /* a literal or number: up to the next delimiter */
        while (s->p < s->end && !strchr(",]}: \t\r\n", *s->p))
          adv(s);
      }
    }
    skip_ws(s);
  } while (depth > 0);
  return 0;
}

/* Skips one member's value or one array element, and the comma after it. */
static int skip_item(struct scan *s)
{
  if (skip_value(s) < 0)
    return -1;
  if (s->p < s->end && *s->p == ',') {
    adv(s);
    skip_ws(s);
  }
  return 0;
}

int jsonpos_locate(const char *text, size_t len, const struct jsonpos_seg *path, size_t n,
                   int want_key, int *line, int *column)
{
  struct scan s = {text, text + len, 1, 1};
  char name[256];

  *line = *column = 0;
  skip_ws(&s);
  for (size_t i = 0; i < n; i++) {
    const struct jsonpos_seg *seg = &path[i];
    int found = 0;
    if (s.p >= s.end)
      return -1;
    if (seg->key && *s.p == '{') {
      adv(&s);
      skip_ws(&s);
      while (s.p < s.end && *s.p == '"') {
        struct scan at = s;
        size_t nl = 0;
        if (scan_string(&s, name, sizeof name, &nl) < 0)
          return -1;
        skip_ws(&s);
        if (s.p >= s.end || *s.p != ':')
          return -1;
        adv(&s);
        skip_ws(&s);
        if (nl == strlen(seg->key) && nl < sizeof name && memcmp(name, seg->key, nl) == 0) {
          if (want_key && i + 1 == n)
            s = at;
          found = 1;
          break;
        }
        if (skip_item(&s) < 0)
          return -1;
      }
    } else if (!seg->key && *s.p == '[') {
      adv(&s);
      skip_ws(&s);
      for (size_t k = 0; s.p < s.end && *s.p != ']'; k++) {
        if (k == seg->index) {
          found = 1;
          break;
        }
        if (skip_item(&s) < 0)
          return -1;
      }
    }
    if (!found)
      return -1;
  }
  *line = s.line;
  *column = s.col;
  return 0;
}
