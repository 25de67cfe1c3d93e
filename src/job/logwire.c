/* logwire.c - LogsResponse from its wire bytes (see logwire.h).
 *
 * Why by hand: the CLI reads a big job's output as millions of LogEntry
 * messages, and protobuf-c allocates and copies each one (and its bytes)
 * only for the CLI to copy the bytes once more and free it all. Here an
 * entry is a pointer into the received message.
 *
 * The limits below are protobuf-c's (1.4), so that what it refuses is
 * refused here too: a key or a length prefix of at most 5 bytes, a length
 * up to INT_MAX, a varint of at most 10 bytes (bits past 64 dropped). Field
 * numbers of jobs.proto: LogsResponse job_id 1, seq 2, entries 3, dropped 4,
 * attempt 5, job 6; LogEntry stream 1, ts_us 2, data 3, partial 4,
 * no_eol 5. A change there needs one here. */
#include "job/logwire.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Wire types. */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Entries kept allocated between messages: past this the array is given
 * back, so one message of tiny entries does not pin memory. */
#define KEEP_ENTRIES 8192

/* A varint of at most max bytes at *pp (< end). Sets *v (bits past 64
 * dropped) and *nz (some byte carried a set value bit: what protobuf-c
 * reads as a true bool). Returns 0 and advances *pp, or -1. */
static inline int get_varint(const uint8_t **pp, const uint8_t *end, unsigned max, uint64_t *v,
                             int *nz)
{
  const uint8_t *p = *pp;
  if (p < end && p[0] < 0x80) { /* one byte: most are */
    *v = p[0];
    if (nz)
      *nz = p[0] != 0;
    *pp = p + 1;
    return 0;
  }
  uint64_t x = 0;
  unsigned any = 0;
  for (unsigned i = 0; i < max && p + i < end; i++) {
    uint64_t b = p[i];
    x |= (b & 0x7f) << (7 * i); /* i <= 9: the shift stays below 64 */
    any |= (unsigned)(b & 0x7f);
    if (!(b & 0x80)) {
      *pp = p + i + 1;
      *v = x;
      if (nz)
        *nz = any != 0;
      return 0;
    }
  }
  return -1;
}

/* A field's key: its number and wire type. protobuf-c refuses a first byte
 * without field bits (field 0, unless spelt in more bytes). */
static inline int get_key(const uint8_t **pp, const uint8_t *end, uint32_t *field, unsigned *wt)
{
  const uint8_t *p = *pp;
  if (p < end && p[0] < 0x80) { /* the common case: one byte */
    if (!(p[0] & 0xf8))
      return -1;
    *field = p[0] >> 3;
    *wt = p[0] & 7;
    *pp = p + 1;
    return 0;
  }
  uint64_t k;
  if (p >= end || !(p[0] & 0xf8) || get_varint(pp, end, 5, &k, NULL) < 0)
    return -1;
  *field = (uint32_t)(k >> 3);
  *wt = (unsigned)(k & 7);
  return 0;
}

/* The body of a length-delimited field: sets *body and *len. */
static inline int get_len(const uint8_t **pp, const uint8_t *end, const uint8_t **body, size_t *len)
{
  uint64_t n;
  if (get_varint(pp, end, 5, &n, NULL) < 0 || n > INT_MAX || n > (uint64_t)(end - *pp))
    return -1;
  *body = *pp;
  *len = (size_t)n;
  *pp += n;
  return 0;
}

/* Skips the value of a field of wire type wt (unknown fields). */
static int skip(const uint8_t **pp, const uint8_t *end, unsigned wt)
{
  uint64_t v;
  const uint8_t *b;
  size_t n;
  switch (wt) {
  case WT_VARINT:
    return get_varint(pp, end, 10, &v, NULL);
  case WT_I64:
  case WT_I32: {
    size_t w = wt == WT_I64 ? 8 : 4;
    if ((size_t)(end - *pp) < w)
      return -1;
    *pp += w;
    return 0;
  }
  case WT_LEN:
    return get_len(pp, end, &b, &n);
  default: /* groups (3, 4) and 6, 7: protobuf-c refuses them too */
    return -1;
  }
}

static int parse_entry(struct logwire_entry *e, const uint8_t *p, const uint8_t *end)
{
  memset(e, 0, sizeof(*e));
  while (p < end) {
    uint32_t field;
    unsigned wt;
    uint64_t v;
    int nz;
    if (get_key(&p, end, &field, &wt) < 0)
      return -1;
    switch (field) {
    case 1: /* stream */
    case 2: /* ts_us */
    case 4: /* partial */
    case 5: /* no_eol */
      if (wt != WT_VARINT || get_varint(&p, end, 10, &v, &nz) < 0)
        return -1;
      if (field == 1)
        e->stream = (int32_t)(uint32_t)v;
      else if (field == 2)
        e->ts_us = (int64_t)v;
      else if (field == 4)
        e->partial = (uint8_t)nz;
      else
        e->no_eol = (uint8_t)nz;
      break;
    case 3: /* data */
      if (wt != WT_LEN || get_len(&p, end, &e->data, &e->len) < 0)
        return -1;
      break;
    default:
      if (skip(&p, end, wt) < 0)
        return -1;
    }
  }
  return 0;
}

static void clear(struct logwire_msg *m)
{
  m->seq = m->dropped = 0;
  m->attempt = 0;
  m->n_entries = 0;
  m->n_job_parts = 0;
  if (m->job)
    protobuf_c_message_free_unpacked(&m->job->base, NULL);
  m->job = NULL;
}

void logwire_init(struct logwire_msg *m)
{
  memset(m, 0, sizeof(*m));
}

void logwire_release(struct logwire_msg *m)
{
  clear(m);
  free(m->entries);
  free(m->job_parts);
  logwire_init(m);
}

pb_Job *logwire_take_job(struct logwire_msg *m)
{
  pb_Job *j = m->job;
  m->job = NULL;
  return j;
}

static struct logwire_entry *next_entry(struct logwire_msg *m)
{
  if (m->n_entries == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 256;
    m->entries = xrealloc(m->entries, m->cap * sizeof(*m->entries));
  }
  return &m->entries[m->n_entries++];
}

/* Field 6 as protobuf merges it: parsing the bodies one after the other is
 * parsing their merge. */
static int unpack_job(struct logwire_msg *m)
{
  static const uint8_t none[1];
  if (m->n_job_parts == 1) {
    const struct logwire_span *s = &m->job_parts[0];
    m->job = drover__v1__job__unpack(NULL, s->n, s->n ? s->p : none);
    return m->job ? 0 : -1;
  }
  size_t total = 0;
  for (size_t i = 0; i < m->n_job_parts; i++)
    total += m->job_parts[i].n;
  uint8_t *buf = xmalloc(total ? total : 1), *q = buf;
  for (size_t i = 0; i < m->n_job_parts; i++) {
    memcpy(q, m->job_parts[i].p, m->job_parts[i].n);
    q += m->job_parts[i].n;
  }
  m->job = drover__v1__job__unpack(NULL, total, buf);
  free(buf);
  return m->job ? 0 : -1;
}

int logwire_parse(struct logwire_msg *m, const uint8_t *p, size_t n)
{
  const uint8_t *end = p + n;
  clear(m);
  if (m->cap > KEEP_ENTRIES) {
    free(m->entries);
    m->entries = NULL;
    m->cap = 0;
  }
  while (p < end) {
    uint32_t field;
    unsigned wt;
    uint64_t v;
    const uint8_t *body;
    size_t len;
    if (get_key(&p, end, &field, &wt) < 0)
      goto bad;
    switch (field) {
    case 2: /* seq */
    case 4: /* dropped */
    case 5: /* attempt */
      if (wt != WT_VARINT || get_varint(&p, end, 10, &v, NULL) < 0)
        goto bad;
      if (field == 2)
        m->seq = v;
      else if (field == 4)
        m->dropped = v;
      else
        m->attempt = (uint32_t)v;
      break;
    case 1: /* job_id: not needed, but it must be well formed */
    case 3: /* entries */
    case 6: /* job */
      if (wt != WT_LEN || get_len(&p, end, &body, &len) < 0)
        goto bad;
      if (field == 3) {
        if (parse_entry(next_entry(m), body, body + len) < 0)
          goto bad;
      } else if (field == 6) {
        if (m->n_job_parts == m->job_parts_cap) {
          m->job_parts_cap = m->job_parts_cap ? m->job_parts_cap * 2 : 2;
          m->job_parts = xrealloc(m->job_parts, m->job_parts_cap * sizeof(*m->job_parts));
        }
        m->job_parts[m->n_job_parts++] = (struct logwire_span){body, len};
      }
      break;
    default:
      if (skip(&p, end, wt) < 0)
        goto bad;
    }
  }
  if (m->n_job_parts && unpack_job(m) < 0)
    goto bad;
  return 0;
bad:
  clear(m);
  return LOGWIRE_E_MALFORMED;
}
