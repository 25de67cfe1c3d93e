/* ship_int.h - what ship.c (batches, sending, acks) and shipsave.c
 * (results on disk, a restart) share. */
#ifndef DROVER_AGENT_SHIP_INT_H
#define DROVER_AGENT_SHIP_INT_H

#include "agent/batch.h"
#include "agent/ship.h"
#include "agent/spool.h"

/* One sealed batch still owed to the coordinator: in memory or spooled. */
struct ship_entry {
  uint64_t seq;
  size_t len;
  uint8_t *mem;          /* the AgentMessage, or NULL when spooled */
  struct spool_seg *seg; /* spooled: where */
  uint64_t off;
};

struct ship {
  struct shipper *sh;
  struct ship *prev, *next;
  char job_id[129];
  unsigned attempt;

  struct batch cur;
  uint64_t cur_deadline; /* loop time at which cur is sealed; 0: cur is empty */
  uint64_t seq;          /* the last batch sealed and kept */
  uint64_t acked;        /* batches up to here are stored by the coordinator */
  uint64_t next_send;    /* the next batch to send on the current stream */
  struct ship_entry *q;  /* batches acked+1 .. seq, q[qhead] the oldest */
  size_t qhead, qn, qcap;
  struct spool spool;
  uint64_t dropped_pending, dropped_total;

  uint8_t *fin; /* the JobFinished, once the job ended */
  size_t fin_len;
  uint64_t persist_at; /* loop time at which the result goes to disk; 0: not due */
  unsigned running : 1, dropped : 1, fin_sent : 1, persisting : 1, persisted : 1, result_acked : 1,
      warned : 1;
};

struct shipper {
  uv_loop_t *loop;
  struct shipper_opts o;
  struct agent_state *st;
  struct ship *ships;
  size_t nships;
  uint64_t mem_used, spool_used, seg_max;
  uv_timer_t tick; /* batch deadlines and result persist deadlines */
  rpc_call *call;  /* the welcomed stream, or NULL */
  int pumping;
  unsigned writes; /* results being written on the thread pool */
  int closing;
  void (*close_cb)(void *);
  void *close_ud;
};

/* ship.c */
struct ship *ship_alloc(struct shipper *sh, const char *job_id, unsigned attempt);
/* Frees s when nothing holds it any more (its job ended, no result write in
 * flight, and acknowledged or dropped); its files go with it. */
void ship_maybe_free(struct ship *s);
struct ship_entry *ship_entry_push(struct ship *s);
/* Accounts the change of s's spool size since `before`. */
void ship_spool_delta(struct ship *s, uint64_t before);
/* Moves an in-memory batch into the spool. 0 or -errno. */
int ship_entry_to_spool(struct ship *s, struct ship_entry *e);
/* Arms the shipper's timer for the earliest deadline. */
void shipper_schedule(struct shipper *sh);

/* shipsave.c */
/* Writes s's result (and first the batches it counts that are only in
 * memory) to the state dir: on the thread pool, or now (at close). */
void ship_persist(struct ship *s, int now);

#endif
