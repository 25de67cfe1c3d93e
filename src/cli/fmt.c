/* fmt.c - tables, times and colours for people (see fmt.h). */
#include "cli/fmt.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "job/pb.h"

int fmt_color_ok(int fd)
{
  const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
  if (no && *no)
    return 0;
  if (term && !strcmp(term, "dumb"))
    return 0;
  return isatty(fd);
}

const char *fmt_job_state_color(int state)
{
  switch (state) {
  case JS_SUCCEEDED:
    return "32"; /* green */
  case JS_FAILED:
  case JS_TIMED_OUT:
    return "31"; /* red */
  case JS_CANCELLED:
    return "33"; /* yellow */
  case JS_LOST:
    return "35"; /* magenta */
  case JS_RUNNING:
    return "36"; /* cyan */
  case JS_ASSIGNED:
    return "34"; /* blue */
  default:
    return NULL;
  }
}

const char *fmt_node_state_color(int state)
{
  switch (state) {
  case NS_READY:
    return "32";
  case NS_DRAINING:
    return "33";
  case NS_LOST:
    return "31";
  case NS_DOWN:
    return "2"; /* dim */
  default:
    return NULL;
  }
}

void fmt_put_colored(FILE *f, const char *text, const char *color, int on)
{
  if (on && color)
    fprintf(f, "\033[%sm%s\033[0m", color, text);
  else
    fputs(text, f);
}

void fmt_ago(char *buf, size_t len, int64_t us, int64_t now)
{
  if (us <= 0) {
    snprintf(buf, len, "-");
    return;
  }
  if (us > now) {
    /* Another machine's clock a little ahead of ours. */
    snprintf(buf, len, us - now <= 1000000 ? "just now" : "in the future");
    return;
  }
  char d[32];
  uint64_t diff = (uint64_t)(now - us);
  if (diff < 1000000) {
    snprintf(buf, len, "just now");
    return;
  }
  /* One unit is enough for "when": 3m ago, not 3m12s ago. */
  uint64_t s = diff / 1000000;
  if (s < 60)
    snprintf(d, sizeof(d), "%llus", (unsigned long long)s);
  else if (s < 3600)
    snprintf(d, sizeof(d), "%llum", (unsigned long long)(s / 60));
  else if (s < 86400)
    snprintf(d, sizeof(d), "%lluh", (unsigned long long)(s / 3600));
  else
    snprintf(d, sizeof(d), "%llud", (unsigned long long)(s / 86400));
  snprintf(buf, len, "%s ago", d);
}

void fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)bytes;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%llu B", (unsigned long long)bytes);
  else
    snprintf(buf, len, v < 10 && v - (double)(uint64_t)v >= 0.05 ? "%.1f %s" : "%.0f %s", v,
             unit[u]);
}

void fmt_duration(char *buf, size_t len, uint64_t us)
{
  unsigned long long ms = us / 1000, s = us / 1000000;
  if (us < 1000)
    snprintf(buf, len, "%lluus", (unsigned long long)us);
  else if (ms < 1000)
    snprintf(buf, len, "%llums", ms);
  else if (s < 10)
    snprintf(buf, len, "%llu.%llus", s, (ms % 1000) / 100);
  else if (s < 60)
    snprintf(buf, len, "%llus", s);
  else if (s < 3600)
    snprintf(buf, len, s % 60 ? "%llum%llus" : "%llum", s / 60, s % 60);
  else if (s < 86400)
    snprintf(buf, len, (s % 3600) / 60 ? "%lluh%llum" : "%lluh", s / 3600, (s % 3600) / 60);
  else
    snprintf(buf, len, (s % 86400) / 3600 ? "%llud%lluh" : "%llud", s / 86400, (s % 86400) / 3600);
}

/* ---- tables ---- */

struct cell {
  char *text;
  const char *color;
};

struct fmt_table {
  size_t ncols;
  char **headers;
  struct cell *cells; /* rows * ncols */
  size_t rows, cap;
  size_t col; /* next cell of the current row */
};

/* Characters of UTF-8 text (continuation bytes do not count). */
static size_t width(const char *s)
{
  size_t w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80)
      w++;
  return w;
}

struct fmt_table *fmt_table_new(size_t ncols, const char *const *headers)
{
  struct fmt_table *t = xcalloc(1, sizeof(*t));
  t->ncols = ncols;
  t->headers = xcalloc(ncols, sizeof(char *));
  for (size_t i = 0; i < ncols; i++)
    t->headers[i] = xstrdup(headers[i]);
  return t;
}

void fmt_table_row(struct fmt_table *t)
{
  if (t->rows == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(*t->cells));
  }
  memset(&t->cells[t->rows * t->ncols], 0, t->ncols * sizeof(*t->cells));
  t->rows++;
  t->col = 0;
}

void fmt_table_cell(struct fmt_table *t, const char *text, const char *color)
{
  if (!t->rows || t->col >= t->ncols)
    return;
  struct cell *c = &t->cells[(t->rows - 1) * t->ncols + t->col++];
  c->text = xstrdup(text ? text : "-");
  c->color = color;
}

void fmt_table_cellf(struct fmt_table *t, const char *fmt, ...)
{
  va_list ap;
  char buf[1024];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  fmt_table_cell(t, buf, NULL);
}

void fmt_table_print(const struct fmt_table *t, FILE *f, int color)
{
  size_t *w = xcalloc(t->ncols, sizeof(size_t));
  for (size_t c = 0; c < t->ncols; c++)
    w[c] = width(t->headers[c]);
  for (size_t r = 0; r < t->rows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = t->cells[r * t->ncols + c].text;
      size_t n = width(s ? s : "");
      if (n > w[c])
        w[c] = n;
    }
  for (size_t r = 0; r <= t->rows; r++) {
    for (size_t c = 0; c < t->ncols; c++) {
      const struct cell *cell = r ? &t->cells[(r - 1) * t->ncols + c] : NULL;
      const char *s = r ? (cell->text ? cell->text : "") : t->headers[c];
      fmt_put_colored(f, s, r ? cell->color : NULL, color);
      if (c + 1 < t->ncols)
        fprintf(f, "%*s", (int)(w[c] - width(s) + 2), "");
    }
    fputc('\n', f);
  }
  free(w);
}

void fmt_table_free(struct fmt_table *t)
{
  if (!t)
    return;
  for (size_t i = 0; i < t->ncols; i++)
    free(t->headers[i]);
  for (size_t i = 0; i < t->rows * t->ncols; i++)
    free(t->cells[i].text);
  free(t->headers);
  free(t->cells);
  free(t);
}
