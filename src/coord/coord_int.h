/* coord_int.h - the coordinator's internals, shared by the files of src/coord.
 *
 * One loop thread owns everything here. Memory holds what is live: every job
 * not yet in an end state (plus ended ones someone still waits on), every
 * node, every agent stream, the tokens. The store (store.h) holds what is
 * durable; a change goes to memory and to the store's queue at once, and is
 * told to anyone (reply, Ack, RunJob, a waiter) only from a "commit action"
 * that runs after the store made it durable (coord_after_commit). */
#ifndef DROVER_COORD_INT_H
#define DROVER_COORD_INT_H

#include <stdint.h>
#include <uv.h>

#include "base/smap.h"
#include "coord/coord.h"
#include "coord/logstore.h"
#include "job/pb.h"
#include "rpc/rpc.h"
#include "store/store.h"

struct coord;
struct cnode;
struct session;
struct follower;
struct waiter;
struct commit_ack;

/* ---- jobs (jobs.c) ---- */

struct cjob {
  char id[129];
  int refs;            /* the map holds one; pending actions hold theirs */
  pb_JobSpec *spec;    /* unpacked, owned */
  uint8_t *spec_bytes; /* packed spec, owned */
  size_t spec_len;
  int state;
  uint32_t attempt, max_attempts;
  int64_t created_us, updated_us;
  struct cnode *node;      /* assigned/running on it; NULL otherwise */
  char node_id[64];        /* the node of the current (or last) attempt; "" while queued */
  struct cnode *last_node; /* that node (nodes live as long as the coordinator) */
  char *reason;
  pb_JobResult *result;  /* set in an end state (owned) */
  pb_Progress *progress; /* latest progress of the current attempt (owned) */
  int cancel_requested;
  uint64_t cancel_grace_ms;
  char *cancel_reason;
  int dispatched;         /* its assignment is durable: RunJob may go (again) */
  int end_committed;      /* its end state is durable: waiters may be told */
  uint64_t live_until_ms; /* ended: kept in memory until then (loop time) */

  /* the queue (sched.c): priority bucket list */
  struct cjob *qprev, *qnext;
  int in_queue;
  /* the node's job list (all jobs assigned/running on it) */
  struct cjob *nprev, *nnext;

  /* logs of the current attempt: its first LOG_SMALL_MAX bytes in the store
   * (session.c), the rest in the job's file (logstore.c) */
  struct logfile *log;            /* the job's file, once opened */
  uint64_t log_seq;               /* last seq stored for log_attempt */
  uint64_t log_seq_acked;         /* last seq acknowledged to the agent */
  uint64_t log_small;             /* bytes of log_attempt in the store */
  uint32_t log_attempt;           /* the attempt log_seq belongs to */
  int log_known;                  /* log_seq was read for log_attempt */
  int log_in_file;                /* log_attempt's batches go to the file now */
  int ack_marked;                 /* in c->ack_jobs (after a log sync) */
  struct commit_ack *ack_pending; /* the Ack this loop turn's commit will send */
  int stale_told;                 /* the node was told once to stop a stale copy */

  /* stdin (jobsvc.c): bytes sent to the agent and acknowledged */
  struct stdin_feed *stdin_feed;

  struct waiter *waiters; /* Wait calls and log followers */
};

struct cjob *cjob_get(struct coord *c, const char *id);
void cjob_ref(struct cjob *j);
void cjob_unref(struct coord *c, struct cjob *j);
/* The one place a job changes state: validates from -> to (job_state_can),
 * updates the job, writes the row and an event to the store's queue, and
 * keeps the node's accounting and the queue in step. reason may be NULL.
 * Returns 0, or -EINVAL (transition not allowed: logged, nothing changed). */
int cjob_set_state(struct coord *c, struct cjob *j, int to, const char *reason);
/* Writes the job's row to the store queue (after a change that is not a
 * state change, e.g. a cancel request). */
void cjob_save(struct coord *c, struct cjob *j);
/* Fills a drover.v1.Job view of j; strings and submessages point into j (do
 * not free them; use the view before j changes). */
void cjob_view(const struct cjob *j, pb_Job *out);
/* A heap drover.v1.Job made from a store row (free it with
 * protobuf_c_message_free_unpacked(&job->base, NULL)), or NULL when the row's
 * blobs do not unpack. */
pb_Job *cjob_view_row(struct coord *c, const struct store_job *row);
/* Assigns queued j to n (the next attempt). */
void cjob_assign(struct coord *c, struct cjob *j, struct cnode *n);
/* A node was lost or went away: its assigned and running jobs go back to the
 * queue when attempts are left, else end lost. */
void cjob_node_gone(struct coord *c, struct cnode *n, const char *reason);
/* The attempt `attempt` of j is over without a result (lost, agent restart):
 * requeue or lost, as for a lost node. */
void cjob_attempt_lost(struct coord *c, struct cjob *j, const char *reason);
/* Ends j with the result (from an agent, or made here). Takes r. */
void cjob_finish(struct coord *c, struct cjob *j, pb_JobResult *r);
/* Loads every active job from the store at start. Returns 0 or an error. */
int jobs_load(struct coord *c);
void jobs_release(struct coord *c);
/* A job ended and its end is durable: wake waiters and followers. */
void jobs_wake(struct coord *c, struct cjob *j);
/* New log batches of j are readable: wake its log followers. */
void jobs_wake_logs(struct coord *c, struct cjob *j);

/* ---- nodes and scheduling (sched.c) ---- */

struct cnode {
  char id[64];
  char *name;
  int state;     /* NS_* */
  pb_Node *info; /* labels, capabilities, resources, last heartbeat (owned) */
  char secret_hash[65];
  uint32_t slots;
  uint32_t prefetch;    /* jobs it takes beyond its slots (queued there) */
  uint32_t running;     /* jobs assigned/running on it (our accounting) */
  uint64_t last_assign; /* c->assigns when it last got a job: ties go to the idlest */
  int busy;
  int64_t registered_us, last_seen_us;
  uint64_t last_seen_ms;       /* loop time of the last message (liveness) */
  struct session *sess;        /* the live Connect stream, or NULL */
  struct cjob *jobs;           /* assigned/running jobs */
  struct cnode *aprev, *anext; /* c->avail: connected, ready, with free slots */
  int in_avail;
};

struct cnode *cnode_get(struct coord *c, const char *id);
/* Writes the node's row to the store queue. */
void cnode_save(struct coord *c, struct cnode *n);
/* Recomputes whether n can take jobs now (connected, ready, not busy, free
 * slots) and moves it in or out of the available list. */
void cnode_update_avail(struct coord *c, struct cnode *n);
int nodes_load(struct coord *c);
void nodes_release(struct coord *c);
void cnode_view(const struct cnode *n, pb_Node *out);

void sched_enqueue(struct coord *c, struct cjob *j);
void sched_dequeue(struct coord *c, struct cjob *j);
/* Assigns queued jobs to nodes while both exist (at most once per loop turn:
 * it is run from the check phase when something asked for it). */
void sched_kick(struct coord *c);
void sched_run(struct coord *c);
size_t sched_queued(const struct coord *c);

/* ---- agent streams (session.c) ---- */

extern const struct rpc_handlers session_handlers;
/* Sends a message on the node's stream if it has one. Returns 0 or < 0. */
int session_send(struct session *s, const pb_CoordinatorMessage *m);
void session_send_run(struct coord *c, struct cjob *j);
void session_send_cancel(struct coord *c, struct cjob *j, const char *reason);
void session_send_drain(struct coord *c, struct cnode *n);
void session_kick(struct session *s, int code, const char *why);

/* ---- client services (jobsvc.c, nodesvc.c) ---- */

extern const struct rpc_handlers jobsvc_submit, jobsvc_get, jobsvc_list, jobsvc_cancel, jobsvc_logs,
    jobsvc_wait, jobsvc_events, jobsvc_stdin;
/* j was dispatched (RunJob sent): stdin that arrived early follows it. */
void jobsvc_stdin_dispatched(struct coord *c, struct cjob *j);
/* j ended (durably): its stdin stream, if any, is finished. */
void jobsvc_job_ended(struct coord *c, struct cjob *j);
void jobsvc_stdin_free(struct stdin_feed *f);
/* The agent wrote `bytes` of stdin into the job so far (StdinAck). */
void jobsvc_stdin_acked(struct coord *c, const char *job_id, uint32_t attempt, uint64_t bytes);
extern const struct rpc_handlers nodesvc_list, nodesvc_drain, tokensvc_create;

/* A waiter on a job: a Wait call or a Logs follower. */
struct waiter {
  struct waiter *next;
  void (*wake)(struct coord *c, struct waiter *w, struct cjob *j); /* the job ended or changed */
  void (*logs)(struct coord *c, struct waiter *w, struct cjob *j); /* new log data */
};
void waiter_add(struct cjob *j, struct waiter *w);
void waiter_del(struct cjob *j, struct waiter *w);

/* tokens and secrets (nodesvc.c) */
struct ctoken {
  struct store_token t;
  int ephemeral; /* made for `drover dev`'s own agent: never stored */
};
/* Spends one use of the token with this text. 0, or -EACCES (unknown, used
 * up, expired). */
int tokens_use(struct coord *c, const char *token);
int tokens_load(struct coord *c);
void tokens_release(struct coord *c);
/* Hex SHA-256 of s into out[65]. */
void coord_sha256_hex(const char *s, char out[65]);
/* A random token of n bytes as hex with a prefix, into a heap string. */
char *coord_random_hex(const char *prefix, size_t n);

/* ---- the coordinator (coord.c) ---- */

typedef void (*coord_action_fn)(struct coord *c, void *arg);

struct action {
  struct action *next;
  coord_action_fn fn;
  void *arg;
  int needs; /* barriers still to pass: ACT_COMMIT | ACT_LOGS */
};
#define ACT_COMMIT 1
#define ACT_LOGS   2

struct coord {
  uv_loop_t *loop;
  struct coord_opts opts;
  char *data_dir;
  struct store *store;
  struct logstore *logs;
  rpc_server *server;
  char address[256]; /* first listen address, for dev mode and logs */

  struct smap jobs;   /* id -> struct cjob (active, and ended ones still watched) */
  struct smap keys;   /* idempotency key -> struct cjob (jobs in memory) */
  struct smap nodes;  /* id -> struct cnode */
  struct smap tokens; /* hash -> struct ctoken */

  /* the queue: one FIFO per priority, buckets sorted by priority descending */
  struct qbucket *buckets;
  size_t nbuckets, capbuckets;
  size_t nqueued;
  struct cnode *avail; /* nodes that can take a job now */
  int sched_wanted;

  /* actions waiting for barriers, and the batches in flight */
  struct action *act_head, *act_tail; /* gathered this loop turn */
  int commit_wanted, logs_wanted;
  struct cjob **ack_jobs; /* jobs with log batches to acknowledge after a log sync */
  size_t nack_jobs, capack_jobs;

  uv_check_t check;
  uv_timer_t liveness;
  uv_timer_t gc;
  int stopping;
  void (*stop_cb)(struct coord *, void *);
  void *stop_ud;
  int closing;
  uint64_t stats_dispatched, stats_finished;
  uint64_t assigns; /* assignments so far (for the scheduler's tie-break) */
  uint64_t turn;    /* check phases so far: which commit an action rides */
};

/* Runs fn(c, arg) after every store operation queued so far is durable
 * (needs = ACT_COMMIT), after every log append so far is fsynced (ACT_LOGS),
 * or both. Never runs before this returns. */
void coord_after(struct coord *c, int needs, coord_action_fn fn, void *arg);
/* Marks j for an Ack of its stored log batches once they are durable: after
 * the next commit (ACT_COMMIT: batches in the store) or log sync (ACT_LOGS:
 * in the job's file). The commit path also wakes the job's log readers,
 * which see store rows only once committed. */
void coord_ack_logs(struct coord *c, struct cjob *j, int needs);
int64_t coord_now_us(void);

#endif
