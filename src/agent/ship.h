/* ship.h - each job attempt's output and result on their way to the
 * coordinator (docs/protocol.md, "Running jobs"): the coordinator link's sink
 * for the agent core.
 *
 * A ship is one attempt. Its output lines are gathered into LogBatches
 * (batch.h), sealed at `batch_lines` lines or BATCH_MAX_BYTES, or
 * `batch_interval_ms` after the batch's first line, or when the job ends;
 * sealed batches are numbered from 1 without gaps and kept until the
 * coordinator acknowledges them: in memory while all ships together keep
 * less than `mem_max`, else in the ship's spool (spool.h) while all spools
 * together hold less than `spool_max`, else dropped, counted, and the count
 * told in the next batch (`dropped`) and in the result (`lines_dropped`). The
 * job never waits for any of this.
 *
 * While the link is up (shipper_attach) batches are sent in order, each
 * ship's after its last acknowledged one, a round at a time across ships,
 * until the stream's queue is above its high-water mark (rpc_call_send
 * returns 1; shipper_pump again from on_writable). A job's JobFinished goes
 * once every one of its batches has been sent on the stream, with
 * result.last_log_seq its last seq, and is kept until acknowledged; one not
 * acknowledged within SHIP_PERSIST_MS is written to STATE_DIR/results/ with
 * the batches still owed moved to the spool first, so that the disk holds a
 * whole attempt a restart can deliver (ship_restore). The attempt record in
 * STATE_DIR/jobs/ goes once the result is on disk or acknowledged. */
#ifndef DROVER_AGENT_SHIP_H
#define DROVER_AGENT_SHIP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/core.h"
#include "agent/state.h"
#include "job/pb.h"
#include "rpc/rpc.h"

#define SHIP_DEFAULT_BATCH_LINES 1000
#define SHIP_DEFAULT_INTERVAL_MS 20
#define SHIP_DEFAULT_SPOOL_MAX   (1024ull * 1024 * 1024)
#define SHIP_DEFAULT_MEM_MAX     (8u * 1024 * 1024)
#define SHIP_PERSIST_MS          250

struct shipper;
struct ship;

struct shipper_opts {
  unsigned batch_lines;       /* 0: SHIP_DEFAULT_BATCH_LINES */
  uint64_t batch_interval_ms; /* 0: SHIP_DEFAULT_INTERVAL_MS */
  uint64_t spool_max;         /* 0: SHIP_DEFAULT_SPOOL_MAX */
  uint64_t mem_max;           /* 0: SHIP_DEFAULT_MEM_MAX */
  /* Called when the last ship is gone (every result acknowledged or
   * dropped). May be NULL. */
  void (*on_empty)(void *ud);
  void *ud;
};

/* st (the state dir, for results/, spool/ and the records in jobs/) must
 * outlive the shipper. */
struct shipper *shipper_new(uv_loop_t *loop, const struct shipper_opts *o, struct agent_state *st);
/* Writes the results not yet on disk (so the next life of the agent
 * delivers them), waits for writes in flight, closes every ship's files
 * (they stay on disk) and the timer, frees sh and calls cb(ud) from the loop. */
void shipper_close(struct shipper *sh, void (*cb)(void *ud), void *ud);

/* A ship for attempt `attempt` of job_id that starts running now. */
struct ship *ship_new(struct shipper *sh, const char *job_id, unsigned attempt);
/* The ship as the core sink of its job (core.h). */
void ship_sink(struct ship *s, struct core_sink *out);
/* The job is over: the last batch is sealed and r (taken) becomes the
 * JobFinished, with last_log_seq and lines_dropped filled in. */
void ship_end(struct ship *s, pb_JobResult *r);
/* Stop: the coordinator does not want this attempt any more. Everything
 * held for it is dropped (files too) and nothing more is kept or sent; the
 * ship is freed now or, when its job still runs, at ship_end. */
void ship_drop(struct ship *s);
/* Whether the ship's job still runs (ship_end not called yet). */
int ship_running(const struct ship *s);

/* A restart: takes over the finished attempt (job_id, attempt) a previous
 * life left in results/ and spool/. Returns 0, or -1 when what is there
 * cannot be delivered as a whole (unreadable result, batches missing): its
 * files are deleted and the attempt is to be reported stopped. */
int ship_restore(struct shipper *sh, const char *job_id, unsigned attempt);

struct ship *shipper_find(struct shipper *sh, const char *job_id, unsigned attempt);
/* Ships held, running or not. */
size_t shipper_count(const struct shipper *sh);

/* Register.jobs: one HeldJob per ship (heap array of heap messages in
 * *out; free with shipper_held_free). Returns the count. */
size_t shipper_held(struct shipper *sh, pb_HeldJob ***out);
void shipper_held_free(pb_HeldJob **v, size_t n);

/* The stream is up and welcomed: sending may start (shipper_pump). */
void shipper_attach(struct shipper *sh, rpc_call *call);
/* The stream is gone: what was sent and not acknowledged is sent again on
 * the next one. */
void shipper_detach(struct shipper *sh);
/* Sends what can be sent now (also from the stream's on_writable). */
void shipper_pump(struct shipper *sh);
/* Applies Welcome's word on one held attempt (not `stop`: the caller stops
 * those). Returns 0, or -1 when the coordinator lacks batches that are no
 * longer here (a gap it would never fill): the ship is dropped, and its job
 * is to be stopped and reported stopped. */
int shipper_welcome(struct shipper *sh, const pb_HeldJobState *st);
/* An Ack: batches up to log_seq are stored (and the result, with result). */
void shipper_ack(struct shipper *sh, const char *job_id, unsigned attempt, uint64_t log_seq,
                 int result);
/* Drops every ship (see ship_drop): the cut-off. */
void shipper_drop_all(struct shipper *sh);

#endif
