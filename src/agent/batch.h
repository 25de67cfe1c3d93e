/* batch.h - one LogBatch being filled with a job's output lines, written
 * straight in protobuf wire format (proto/drover/v1/agent.proto): each line
 * costs a few bytes of header and one copy, not an allocation, and a sealed
 * batch is the AgentMessage the agent sends, as it is.
 *
 * The coordinator stores a LogBatch's bytes as they come and readers unpack
 * them with any protobuf library; tests/unit/test_batch.c checks the
 * encoding against protobuf-c. */
#ifndef DROVER_AGENT_BATCH_H
#define DROVER_AGENT_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "job/result.h"

/* A batch is sealed at its line limit (ship.c) or once its entries reach
 * this many bytes. */
#define BATCH_MAX_BYTES (64 * 1024)

struct batch {
  uint8_t *buf; /* the encoded LogEntry fields (field 3 of LogBatch) */
  size_t len, cap;
  unsigned entries; /* LogEntry count */
  unsigned lines;   /* entries that end a line (not LINES_PARTIAL) */
};

void batch_init(struct batch *b);
void batch_release(struct batch *b);
/* Appends one line or part as a LogEntry: stream (JOB_STDOUT -> STDOUT,
 * JOB_STDERR -> STDERR, JOB_SYSTEM -> SYSTEM), time, bytes, and flags
 * (LINES_PARTIAL -> partial, LINES_NO_EOL -> no_eol). */
void batch_add(struct batch *b, enum job_stream s, int64_t ts_us, const void *data, size_t len,
               unsigned flags);
/* The AgentMessage{log_batch: {job_id, seq, entries, dropped, attempt}} of
 * the batch, as a heap buffer (*out, *outlen); the batch is empty afterwards. */
void batch_seal(struct batch *b, const char *job_id, unsigned attempt, uint64_t seq,
                uint64_t dropped, uint8_t **out, size_t *outlen);
/* Empties the batch without sealing it (its lines are dropped). */
void batch_clear(struct batch *b);

#endif
