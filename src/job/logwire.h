/* logwire.h - a LogsResponse (proto/drover/v1/jobs.proto) read straight from
 * its wire bytes, without protobuf-c: the entries point into the bytes, so a
 * message of a thousand lines costs no allocation and no copy. A LogBatch
 * (agent.proto) has the same fields 1-5 and reads the same way.
 *
 * The bytes are untrusted (they come from the network): every length is
 * checked, and a message protobuf-c would refuse is refused too (truncated
 * or over-long varints, lengths past the end, groups, field 0, a known field
 * with the wrong wire type). Unknown fields are skipped; a scalar given
 * twice keeps the last value; `job` given twice is merged as protobuf
 * says (the fields set in the later one win; protobuf-c 1.4 lets its zeros
 * win too). One difference on the strict side: a bool (partial, no_eol)
 * must be a varint, where protobuf-c takes any wire type. */
#ifndef DROVER_JOB_LOGWIRE_H
#define DROVER_JOB_LOGWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "job/pb.h"

/* logwire_parse errors. */
enum {
  LOGWIRE_E_MALFORMED = -1, /* not a LogsResponse protobuf-c would read */
};

/* One LogEntry. data points into the parsed bytes. */
struct logwire_entry {
  const uint8_t *data;
  size_t len;
  int64_t ts_us;
  int32_t stream; /* LS_STDOUT, LS_STDERR, LS_SYSTEM, or any other value sent */
  uint8_t partial, no_eol;
};

struct logwire_span {
  const uint8_t *p;
  size_t n;
};

/* A parsed message. Its arrays are kept from one parse to the next. */
struct logwire_msg {
  uint64_t seq, dropped;
  uint32_t attempt;
  struct logwire_entry *entries;
  size_t n_entries, cap;
  pb_Job *job;                    /* the message's job (field 6), unpacked; NULL when absent */
  struct logwire_span *job_parts; /* where field 6 was, each time it came */
  size_t n_job_parts, job_parts_cap;
};

void logwire_init(struct logwire_msg *m);
void logwire_release(struct logwire_msg *m);
/* Parses the n bytes at p into m (what m held before is dropped). The
 * entries point into p: keep p while you use them. Returns 0, or
 * LOGWIRE_E_MALFORMED (m is then empty). */
int logwire_parse(struct logwire_msg *m, const uint8_t *p, size_t n);
/* Takes m's job (free it with protobuf_c_message_free_unpacked); m->job is
 * NULL afterwards. */
pb_Job *logwire_take_job(struct logwire_msg *m);

#endif
