/* units.c - parsing and formatting of durations and sizes. */
#include "base/units.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Reads "123" or "12.5" at *p. The fraction is kept as up to 9 digits scaled
 * to nanos so that "1.5" and "1.50" mean the same; further digits are
 * ignored (they cannot change a millisecond or byte count that fits) except
 * for *nonzero, which says whether any digit at all was not 0. */
static int read_number(const char **p, uint64_t *whole, uint64_t *frac_e9, int *has_frac,
                       int *nonzero)
{
  const char *s = *p;
  uint64_t w = 0, f = 0;
  int nd = 0, nf = 0, nz = 0;

  while (isdigit((unsigned char)*s)) {
    unsigned d = (unsigned)(*s - '0');
    nz |= d != 0;
    if (w > (UINT64_MAX - d) / 10)
      return -1;
    w = w * 10 + d;
    s++;
    nd++;
  }
  *has_frac = 0;
  if (*s == '.') {
    s++;
    *has_frac = 1;
    while (isdigit((unsigned char)*s)) {
      nz |= *s != '0';
      if (nf < 9) {
        f = f * 10 + (uint64_t)(*s - '0');
        nf++;
      }
      s++;
      nd++;
    }
    if (s[-1] == '.')
      return -1; /* "1." */
    for (int i = nf; i < 9; i++)
      f *= 10;
  }
  if (nd == 0)
    return -1;
  *whole = w;
  *frac_e9 = f;
  *nonzero = nz;
  *p = s;
  return 0;
}

/* whole.frac * mult, truncated; -1 on overflow. */
static int scale(uint64_t whole, uint64_t frac_e9, uint64_t mult, uint64_t *out)
{
  unsigned __int128 v = (unsigned __int128)whole * mult;
  v += (unsigned __int128)frac_e9 * mult / 1000000000u;
  if (v > UINT64_MAX)
    return -1;
  *out = (uint64_t)v;
  return 0;
}

int units_parse_duration(const char *s, uint64_t *ms)
{
  uint64_t total = 0;
  int any = 0; /* some part was not zero */

  if (!s || !*s)
    return -1;
  if (strcmp(s, "0") == 0) {
    *ms = 0;
    return 0;
  }
  while (*s) {
    uint64_t whole, frac, mult, v;
    int has_frac, nonzero;
    if (read_number(&s, &whole, &frac, &has_frac, &nonzero) < 0)
      return -1;
    any |= nonzero;
    if (s[0] == 'm' && s[1] == 's') {
      mult = 1;
      s += 2;
    } else if (s[0] == 's') {
      mult = 1000;
      s++;
    } else if (s[0] == 'm') {
      mult = 60 * 1000;
      s++;
    } else if (s[0] == 'h') {
      mult = 3600 * 1000;
      s++;
    } else {
      return -1;
    }
    if (scale(whole, frac, mult, &v) < 0 || total > UINT64_MAX - v)
      return -1;
    total += v;
  }
  /* A positive duration never becomes 0, which means "no limit" to a
   * timeout: "0.0000001s" is 1 ms, not forever. */
  if (total == 0 && any)
    total = 1;
  *ms = total;
  return 0;
}

int units_parse_size(const char *s, uint64_t *bytes)
{
  uint64_t whole, frac, mult = 1;
  int has_frac, nonzero;

  if (!s || !*s)
    return -1;
  if (read_number(&s, &whole, &frac, &has_frac, &nonzero) < 0)
    return -1;
  switch (*s) {
  case 'k':
  case 'K':
    mult = 1ull << 10;
    s++;
    break;
  case 'm':
  case 'M':
    mult = 1ull << 20;
    s++;
    break;
  case 'g':
  case 'G':
    mult = 1ull << 30;
    s++;
    break;
  case 't':
  case 'T':
    mult = 1ull << 40;
    s++;
    break;
  default:
    break;
  }
  if (mult > 1 && (strcasecmp(s, "ib") == 0 || strcasecmp(s, "b") == 0))
    s += strlen(s);
  else if (mult == 1 && strcasecmp(s, "b") == 0)
    s++;
  if (*s)
    return -1;
  if (mult == 1 && has_frac && frac != 0)
    return -1; /* a fraction of a byte */
  return scale(whole, frac, mult, bytes);
}

void units_fmt_duration(char *buf, size_t len, uint64_t ms)
{
  uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, rest = ms % 1000;
  size_t off = 0;

  if (len == 0)
    return;
  buf[0] = '\0';
  if (ms == 0) {
    snprintf(buf, len, "0s");
    return;
  }
#define PUT(...)                                                                                   \
  do {                                                                                             \
    int n_ = snprintf(buf + off, len - off, __VA_ARGS__);                                          \
    if (n_ < 0 || (size_t)n_ >= len - off)                                                         \
      return;                                                                                      \
    off += (size_t)n_;                                                                             \
  } while (0)
  if (h)
    PUT("%luh", (unsigned long)h);
  if (m)
    PUT("%lum", (unsigned long)m);
  if (rest == 0) {
    if (s)
      PUT("%lus", (unsigned long)s);
  } else if (s == 0 && !h && !m) {
    PUT("%lums", (unsigned long)rest);
  } else {
    /* "1.5s" is shorter than "1s500ms" and parses back the same. */
    char frac[8];
    snprintf(frac, sizeof frac, "%03lu", (unsigned long)rest);
    for (int i = 2; i > 0 && frac[i] == '0'; i--)
      frac[i] = '\0';
    PUT("%lu.%ss", (unsigned long)s, frac);
  }
#undef PUT
}

void units_fmt_size(char *buf, size_t len, uint64_t bytes)
{
  static const char sfx[] = "TGMK";

  for (int i = 0; i < 4; i++) {
    uint64_t unit = 1ull << (10 * (4 - i));
    unsigned __int128 milli = (unsigned __int128)bytes * 1000;
    if (bytes < unit)
      continue;
    if (bytes % unit == 0) {
      snprintf(buf, len, "%lu%c", (unsigned long)(bytes / unit), sfx[i]);
      return;
    }
    if (milli % unit == 0) {
      /* Exact with at most three decimals: "1.5G", "1.25M". */
      uint64_t frac = (uint64_t)(milli / unit % 1000);
      char f[8];
      snprintf(f, sizeof f, "%03lu", (unsigned long)frac);
      for (int k = 2; k > 0 && f[k] == '0'; k--)
        f[k] = '\0';
      snprintf(buf, len, "%lu.%s%c", (unsigned long)(bytes / unit), f, sfx[i]);
      return;
    }
  }
  snprintf(buf, len, "%lu", (unsigned long)bytes);
}
