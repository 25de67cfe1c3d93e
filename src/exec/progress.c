/* progress.c - progress line parser (see progress.h). */
#include "exec/progress.h"

#include "base/util.h"

static int is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int progress_parse(const char *line, size_t len, struct job_progress *out)
{
  const char *p = line, *end = line + len;
  int percent = 0, digits = 0;

  while (p < end && is_space(*p))
    p++;
  while (p < end && *p >= '0' && *p <= '9') {
    if (percent <= 100) /* stops growing past 100: no overflow on long input */
      percent = percent * 10 + (*p - '0');
    digits++;
    p++;
  }
  if (!digits || percent > 100)
    return -1;
  if (p < end && *p == '.') {
    p++;
    if (p == end || *p < '0' || *p > '9')
      return -1;
    while (p < end && *p >= '0' && *p <= '9')
      p++;
  }
  if (p < end && *p == '%')
    p++;
  if (p < end && !is_space(*p))
    return -1;

  /* Trailing blanks (and a '\r' from "\r\n" writers) are not part of the text. */
  while (end > p && is_space(end[-1]))
    end--;
  while (p < end && is_space(*p))
    p++;
  const char *stage = p;
  while (p < end && !is_space(*p))
    p++;
  size_t stage_len = (size_t)(p - stage);
  while (p < end && is_space(*p))
    p++;

  out->percent = percent;
  out->stage = stage_len ? xstrndup(stage, stage_len) : NULL;
  out->message = p < end ? xstrndup(p, (size_t)(end - p)) : NULL;
  return 0;
}
