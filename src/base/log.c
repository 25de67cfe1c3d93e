/* log.c - drover's own messages to stderr, as text or one JSON object a line. */
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

/* Process-wide on purpose: every module logs, and threading a logger through
 * each call would add an argument to everything for one setting. */
static enum log_level cur_level = LOG_INFO;
static enum log_format cur_format = LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_setup(enum log_level level, enum log_format format)
{
  cur_level = level;
  cur_format = format;
}

int log_level_parse(const char *s, enum log_level *out)
{
  for (int i = 0; i <= LOG_OFF; i++) {
    if (s && strcmp(s, level_names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  return -1;
}

int log_format_parse(const char *s, enum log_format *out)
{
  if (s && strcmp(s, "text") == 0)
    *out = LOG_TEXT;
  else if (s && strcmp(s, "json") == 0)
    *out = LOG_JSON;
  else
    return -1;
  return 0;
}

int log_enabled(enum log_level level)
{
  return level < LOG_OFF && level >= cur_level;
}

/* A growable line, written with one write(2) so that lines from several
 * processes sharing stderr do not interleave. */
struct line {
  char *p;
  size_t n, cap;
};

static void put(struct line *l, const char *s, size_t n)
{
  if (l->n + n + 1 > l->cap) {
    l->cap = (l->n + n + 1) * 2;
    l->p = xrealloc(l->p, l->cap);
  }
  memcpy(l->p + l->n, s, n);
  l->n += n;
  l->p[l->n] = '\0';
}

static void puts_(struct line *l, const char *s)
{
  put(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  size_t k;
  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    k = 2;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    k = 3;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    k = 4;
  else
    return 0;
  if (k > n)
    return 0;
  for (size_t i = 1; i < k; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  return k;
}

/* JSON string body: quotes, backslashes and control characters escaped,
 * invalid UTF-8 replaced by U+FFFD so that every line is valid JSON. */
static void put_json_str(struct line *l, const char *s, size_t n)
{
  char esc[8];
  put(l, "\"", 1);
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t k;
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(l, esc, 2);
      i++;
    } else if (c == '\n') {
      puts_(l, "\\n");
      i++;
    } else if (c == '\t') {
      puts_(l, "\\t");
      i++;
    } else if (c == '\r') {
      puts_(l, "\\r");
      i++;
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      puts_(l, esc);
      i++;
    } else if ((k = utf8_len((const unsigned char *)s + i, n - i)) == 0) {
      puts_(l, "\\ufffd");
      i++;
    } else {
      put(l, s + i, k);
      i += k;
    }
  }
  put(l, "\"", 1);
}

/* Text value: bare when it is one plain word, else quoted with C escapes. */
static void put_text_val(struct line *l, const char *s, size_t n, int allow_bare)
{
  char esc[8];
  int plain = allow_bare ? n > 0 : 1;
  for (size_t i = 0; i < n && plain; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f)
      plain = 0;
  }
  if (plain) {
    put(l, s, n);
    return;
  }
  if (allow_bare)
    put(l, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (allow_bare && (c == '"' || c == '\\')) {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(l, esc, 2);
    } else if (c == '\n') {
      puts_(l, "\\n");
    } else if (c == '\t') {
      puts_(l, "\\t");
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\x%02x", c);
      puts_(l, esc);
    } else {
      put(l, s + i, 1);
    }
  }
  if (allow_bare)
    put(l, "\"", 1);
}

static int is_key_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

/* Length of a "word=" key at s, 0 if s does not start with one. */
static size_t key_at(const char *s)
{
  size_t k = 0;
  while (is_key_char(s[k]))
    k++;
  return k > 0 && s[k] == '=' ? k : 0;
}

/* A JSON number as written: -?(0|[1-9][0-9]*)(.[0-9]+)? */
static int looks_numeric(const char *s, size_t n)
{
  size_t i = 0;
  if (i < n && s[i] == '-')
    i++;
  if (i >= n || s[i] < '0' || s[i] > '9' || (s[i] == '0' && i + 1 < n && s[i + 1] != '.'))
    return 0;
  while (i < n && s[i] >= '0' && s[i] <= '9')
    i++;
  if (i < n && s[i] == '.') {
    if (++i >= n)
      return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      i++;
  }
  return i == n && n <= 20;
}

static void put_field(struct line *l, const char *k, size_t kn, const char *v, size_t vn)
{
  if (cur_format == LOG_JSON) {
    put(l, ",", 1);
    put_json_str(l, k, kn);
    put(l, ":", 1);
    if (looks_numeric(v, vn))
      put(l, v, vn);
    else
      put_json_str(l, v, vn);
  } else {
    put(l, " ", 1);
    put(l, k, kn);
    put(l, "=", 1);
    put_text_val(l, v, vn, 1);
  }
}

/* Splits "a=1 b=two words c=3" at the spaces that precede a "word=": each
 * value runs up to the next such key, so values may hold spaces. Text that
 * does not start with a key is kept whole under "fields". */
static void put_fields(struct line *l, const char *s)
{
  while (*s == ' ')
    s++;
  while (*s) {
    size_t kn = key_at(s);
    const char *k = s, *v, *e;
    if (kn == 0) {
      k = "fields";
      kn = 6;
      v = s;
    } else {
      v = s + kn + 1;
    }
    for (e = v; *e; e++)
      if (*e == ' ' && key_at(e + 1))
        break;
    put_field(l, k, kn, v, (size_t)(e - v));
    s = *e ? e + 1 : e;
  }
}

void log_msg(enum log_level level, const char *msg, const char *fields_fmt, ...)
{
  struct line l = {0};
  char ts[40], *fields = NULL;
  va_list ap;
  int saved = errno; /* callers log then test errno */

  if (!log_enabled(level))
    return;
  fmt_time_us(ts, sizeof ts, now_us());
  ts[23] = 'Z'; /* milliseconds are enough for a log line */
  ts[24] = '\0';
  if (fields_fmt && *fields_fmt) {
    va_start(ap, fields_fmt);
    if (vasprintf(&fields, fields_fmt, ap) < 0)
      fields = NULL;
    va_end(ap);
  }
  if (!msg)
    msg = "";
  if (cur_format == LOG_JSON) {
    puts_(&l, "{\"ts\":\"");
    puts_(&l, ts);
    puts_(&l, "\",\"level\":\"");
    puts_(&l, level_names[level]);
    puts_(&l, "\",\"msg\":");
    put_json_str(&l, msg, strlen(msg));
    if (fields)
      put_fields(&l, fields);
    puts_(&l, "}\n");
  } else {
    char head[64];
    snprintf(head, sizeof head, "%s %-5s ", ts, level_names[level]);
    puts_(&l, head);
    put_text_val(&l, msg, strlen(msg), 0);
    if (fields)
      put_fields(&l, fields);
    puts_(&l, "\n");
  }
  for (size_t off = 0; off < l.n;) {
    ssize_t w = write(STDERR_FILENO, l.p + off, l.n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  free(fields);
  free(l.p);
  errno = saved;
}
