/* pbwire.c - protobuf's wire format by hand (see pbwire.h). */
#include "job/pbwire.h"

static int varint(struct pbw *r, uint64_t *out)
{
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (r->p >= r->end)
      return -1;
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

int pbw_next(struct pbw *r, uint32_t *field, uint32_t *wt, uint64_t *v, const uint8_t **data,
             size_t *len)
{
  uint64_t key;
  if (r->p >= r->end)
    return 0;
  if (varint(r, &key) < 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
    return -1;
  *field = (uint32_t)(key >> 3);
  *wt = (uint32_t)(key & 7);
  *v = 0;
  *data = NULL;
  *len = 0;
  switch (*wt) {
  case PBW_VARINT:
    return varint(r, v) < 0 ? -1 : 1;
  case PBW_I64:
  case PBW_I32: {
    size_t n = *wt == PBW_I64 ? 8 : 4;
    if ((size_t)(r->end - r->p) < n)
      return -1;
    for (size_t i = 0; i < n; i++)
      *v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return 1;
  }
  case PBW_LEN: {
    uint64_t n;
    if (varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
      return -1;
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return 1;
  }
  default:
    return -1;
  }
}
