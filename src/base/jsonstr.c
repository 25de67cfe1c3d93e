/* jsonstr.c - JSON strings from any C string. */
#include "base/jsonstr.h"

#include <stdlib.h>

#include "base/util.h"

json_t *jsonstr_new(const char *s)
{
  json_t *v = json_string(s);
  if (!v) {
    char *c = xstrdup(s);
    for (char *p = c; *p; p++)
      if ((unsigned char)*p >= 0x80)
        *p = '?';
    v = json_string(c);
    free(c);
  }
  return v ? v : json_string("");
}
