/* pbwire.h - reading protobuf's wire format by hand, without unpacking: for
 * the hot paths that only need a few fields of a big message (a LogBatch's
 * job, attempt and seq, not its thousands of entries). Pure, bounds-checked
 * on every read (the bytes come from the network), fuzzed with the rest. */
#ifndef DROVER_JOB_PBWIRE_H
#define DROVER_JOB_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

enum { PBW_VARINT = 0, PBW_I64 = 1, PBW_LEN = 2, PBW_I32 = 5 };

struct pbw {
  const uint8_t *p, *end;
};

static inline void pbw_init(struct pbw *r, const void *data, size_t len)
{
  r->p = data;
  r->end = r->p + len;
}

/* The next field: returns 1 with its number and wire type; a varint's value
 * (and a fixed64/32's) in *v, a length-delimited field's bytes in *data and
 * *len (pointing into the input). Returns 0 at the end of the input, -1 for
 * bytes that are not protobuf (a truncated field, a varint over 10 bytes,
 * field number 0, a group wire type). */
int pbw_next(struct pbw *r, uint32_t *field, uint32_t *wt, uint64_t *v, const uint8_t **data,
             size_t *len);

#endif
