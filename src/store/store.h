/* store.h - the coordinator's durable state: jobs, their events, nodes and
 * tokens, behind one interface (SQLite today; PostgreSQL can follow with the
 * same calls: the engine is backend-neutral, the SQL portable).
 *
 * Writes are operations queued on the loop thread and applied in order by a
 * group commit: everything queued while the previous commit was on the disk
 * goes into the next transaction, on libuv's thread pool, so thousands of
 * changes a second cost a few fsyncs. store_sync() is the barrier: its
 * callback runs on the loop once every operation queued before it is durable.
 * Nothing may be told to anyone (a reply, an Ack, a RunJob) before the sync of
 * the change it depends on: that is what makes "a restart loses nothing that
 * was acknowledged" true.
 *
 * A commit that fails (disk full, I/O error) is retried with backoff until it
 * succeeds: its operations are neither lost nor reordered, their barriers just
 * wait; store_degraded() says so meanwhile. An operation the database refuses
 * on its own (it breaks a constraint: a second job with an idempotency key
 * already taken, an event for a job never put) can never succeed, so it is
 * dropped and logged, the rest of its commit goes ahead, and the next barrier
 * reports STORE_E_CONSTRAINT instead of 0 (see store_sync).
 *
 * Reads are synchronous on the loop thread, on a second connection, and see
 * only committed data (callers keep what is in flight in memory).
 *
 * The store knows nothing of protobuf: spec, result and node details are
 * opaque bytes (packed drover.v1 messages, see coord/), states are ints
 * (drover.v1.JobState / NodeState values). Strings are UTF-8, copied in. */
#ifndef DROVER_STORE_STORE_H
#define DROVER_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct store;

/* Errors besides -errno. */
enum store_err {
  STORE_E_CORRUPT = -6001,    /* the database is damaged or not drover's */
  STORE_E_VERSION = -6002,    /* made by a newer drover (schema version too high) */
  STORE_E_SQL = -6003,        /* any other backend error (the message is logged) */
  STORE_E_CONSTRAINT = -6004, /* an operation broke a constraint and was dropped */
};
const char *store_strerror(int err);

struct store_kv {
  char *key, *value;
};

/* One job row. In rows returned by reads, every pointer is owned by the row:
 * free with store_job_release. In rows passed to store_job_put, nothing is
 * taken: the store copies what it needs. */
struct store_job {
  char id[129];
  int state;
  uint32_t attempt;
  uint32_t max_attempts;
  int32_t priority;
  int64_t created_us, updated_us;
  char *name;              /* NULL: none */
  char *node_id;           /* NULL: none */
  char *idempotency_key;   /* NULL: none; unique among jobs */
  char *reason;            /* NULL: none */
  struct store_kv *labels; /* the job's labels, for store_job_list filters */
  size_t nlabels;
  uint8_t *spec; /* packed drover.v1.JobSpec */
  size_t spec_len;
  uint8_t *result; /* packed drover.v1.JobResult; NULL until the job ended */
  size_t result_len;
  int cancel_requested;     /* a cancel waits to be delivered to the node */
  uint64_t cancel_grace_ms; /* its grace */
};
void store_job_release(struct store_job *j);

struct store_event {
  uint64_t id; /* set by the store (reads); ignored by store_event_add */
  char job_id[129];
  int64_t ts_us;
  int from, to;
  char *node_id; /* NULL: none */
  uint32_t attempt;
  char *reason; /* NULL: none */
};
void store_event_release(struct store_event *e);

struct store_node {
  char id[64];
  char *name;
  int state;
  int64_t registered_us, last_seen_us;
  char secret_hash[65]; /* hex SHA-256 of the node secret */
  uint8_t *info;        /* packed drover.v1.Node: labels, capabilities, resources... */
  size_t info_len;
};
void store_node_release(struct store_node *n);

struct store_token {
  char id[64];
  char hash[65]; /* hex SHA-256 of the token: the token itself is never stored */
  uint32_t uses_left;
  int64_t created_us;
  int64_t expires_us; /* 0: never */
  char *description;  /* NULL: none */
};
void store_token_release(struct store_token *t);

/* ---- open, close -------------------------------------------------------- */

/* Opens (creating it and dir as needed) dir/drover.db, applies pending schema
 * migrations (each in its own transaction, recorded in schema_version) and
 * prepares the statements. Returns 0 and *out, or a negative error with a
 * message for the user in err ("database 'd/drover.db': made by a newer drover
 * (schema 7, this one knows 3): upgrade drover"): -errno (the directory or the
 * file cannot be made or opened), -EBUSY (another process has the database
 * open through its own store), STORE_E_CORRUPT, STORE_E_VERSION, STORE_E_SQL. */
int store_open(uv_loop_t *loop, const char *dir, struct store **out, char *err, size_t errlen);
/* Waits for queued operations to commit (retrying as long as it takes), closes
 * the database, frees s, then calls cb (may be NULL) from the loop. */
void store_close(struct store *s, void (*cb)(void *ud), void *ud);
/* The schema version of the open database. */
int store_schema_version(const struct store *s);

/* ---- writes: queued, applied in order by the next group commit ---------- */

/* Inserts or replaces the job row with j->id. Labels are written when the row
 * is first inserted (a job's labels never change). */
void store_job_put(struct store *s, const struct store_job *j);
/* Appends an event row (its id is assigned at commit, increasing). */
void store_event_add(struct store *s, const struct store_event *e);
void store_node_put(struct store *s, const struct store_node *n);
void store_token_put(struct store *s, const struct store_token *t);
void store_token_delete(struct store *s, const char *id);
/* A batch of a job's log (a packed LogBatch, the seq-th of the attempt), for
 * logs small enough to live in the database (the coordinator puts big ones
 * in files). A second put of the same (job, attempt, seq) is refused. */
void store_log_put(struct store *s, const char *job_id, uint32_t attempt, uint64_t seq,
                   const void *data, size_t len);

/* cb(ud, 0) runs on the loop once every operation queued before this call is
 * committed (at once, from the next loop turn, when nothing is queued). With
 * nothing queued and no commit in flight, it still runs from a later loop
 * turn, never before store_sync returns. Barriers run in the order of their
 * store_sync calls. The status is STORE_E_CONSTRAINT instead of 0 when an
 * operation queued since the previous store_sync was refused (and dropped);
 * the others are committed all the same. */
void store_sync(struct store *s, void (*cb)(void *ud, int status), void *ud);
/* 1 while commits are failing and being retried. */
int store_degraded(const struct store *s);
/* Operations queued and not yet committed (for metrics and tests). */
size_t store_pending(const struct store *s);

/* ---- reads: synchronous, committed data only ---------------------------- */

/* A read's callback may call other reads and queue writes (the store then
 * uses a fresh statement for the nested read); it must not close the store. */

/* 0 and *out (release it), -ENOENT, or STORE_E_SQL. */
int store_job_get(struct store *s, const char *id, struct store_job *out);
/* The id of the job with this idempotency key: 0, -ENOENT, STORE_E_SQL. */
int store_job_find_key(struct store *s, const char *key, char id[129]);

struct store_job_filter {
  const int *states; /* any of these; NULL/0: any state */
  size_t nstates;
  const struct store_kv *labels; /* every one must match; NULL/0: none */
  size_t nlabels;
  uint32_t limit;    /* rows at most; 0: 100 */
  const char *after; /* page cursor from a previous call (NULL: first page) */
};
/* Jobs newest first (created_us, then id, descending). cb gets each row (the
 * row is released after cb returns; copy what you keep). When more rows
 * follow, *next is set to a cursor for `after` (heap string, caller frees),
 * else NULL. Returns 0, -EINVAL (after is not a cursor this store made), or
 * STORE_E_SQL. */
int store_job_list(struct store *s, const struct store_job_filter *f,
                   void (*cb)(void *ud, const struct store_job *j), void *ud, char **next);
/* Every job not in a terminal state (states listed in terminal[], n of
 * them), oldest first; for the coordinator's start. */
int store_job_load_active(struct store *s, const int *terminal, size_t n,
                          void (*cb)(void *ud, const struct store_job *j), void *ud);
/* A job's events, oldest first. 0 (also when there are none) or STORE_E_SQL. */
int store_event_list(struct store *s, const char *job_id,
                     void (*cb)(void *ud, const struct store_event *e), void *ud);
int store_node_load(struct store *s, void (*cb)(void *ud, const struct store_node *n), void *ud);
/* A job's log batches of `attempt` after `after_seq`, in seq order, at most
 * limit (0: all). cb gets each (data valid during the call) and returns
 * nonzero to stop. Returns the number given to cb, or STORE_E_SQL. */
int store_log_read(struct store *s, const char *job_id, uint32_t attempt, uint64_t after_seq,
                   uint32_t limit,
                   int (*cb)(void *ud, uint64_t seq, const uint8_t *data, size_t len), void *ud);
/* The last seq stored for the attempt (*seq = 0: none). 0 or STORE_E_SQL. */
int store_log_last(struct store *s, const char *job_id, uint32_t attempt, uint64_t *seq);
int store_token_load(struct store *s, void (*cb)(void *ud, const struct store_token *t), void *ud);

#endif
