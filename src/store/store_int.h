/* store_int.h - what the group-commit engine (store.c) and a backend
 * (sqlite.c; postgres.c can follow) share: the queued operation and the
 * backend's table of functions. Not for callers of the store. */
#ifndef DROVER_STORE_STORE_INT_H
#define DROVER_STORE_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

enum store_op_kind {
  STORE_OP_JOB_PUT,
  STORE_OP_EVENT_ADD,
  STORE_OP_NODE_PUT,
  STORE_OP_TOKEN_PUT,
  STORE_OP_TOKEN_DELETE,
  STORE_OP_LOG_PUT,
};

struct store_log_op {
  char job_id[129];
  uint32_t attempt;
  uint64_t seq;
  const uint8_t *data;
  size_t len;
};

/* One queued write: a deep copy of what the caller passed, in one allocation
 * (every pointer in u points into the same block). */
struct store_op {
  struct store_op *next;
  uint64_t seq; /* 1, 2, 3... in the order the operations were queued */
  enum store_op_kind kind;
  /* Set by the backend's commit when the database refused this operation on
   * its own (a constraint): why is a heap string (freed with the op). */
  int refused;
  char *why;
  union {
    struct store_job job;
    struct store_event event;
    struct store_node node;
    struct store_token token;
    char token_id[64]; /* STORE_OP_TOKEN_DELETE */
    struct store_log_op log;
  } u;
};

struct store_backend; /* the backend's own state */

/* A backend. The engine calls commit from one thread-pool thread at a time
 * (never two at once, never at the same time as open or close); everything
 * else from the loop thread. Read functions have the contracts of the
 * store_* functions of the same names in store.h. */
struct store_backend_ops {
  const char *name;
  /* Opens or creates the database in dir, migrates, prepares. Returns 0 and
   * *out, or the errors of store_open with a message in err. */
  int (*open)(const char *dir, struct store_backend **out, char *err, size_t errlen);
  /* Finalises and closes everything, frees b. */
  void (*close)(struct store_backend *b);
  int (*schema_version)(const struct store_backend *b);
  /* Applies ops (a list, in order) in one transaction and commits it durably.
   * An operation the database refuses by itself (a constraint) is flagged
   * (refused, why) and skipped; the others go on. Returns 0 once committed,
   * or a negative error with a one-line reason in why: then nothing of the
   * transaction is kept and the engine retries the same list later (with
   * the refused flags cleared, and perhaps more operations behind). */
  int (*commit)(struct store_backend *b, struct store_op *ops, char *why, size_t whylen);

  int (*job_get)(struct store_backend *b, const char *id, struct store_job *out);
  int (*job_find_key)(struct store_backend *b, const char *key, char id[129]);
  int (*job_list)(struct store_backend *b, const struct store_job_filter *f,
                  void (*cb)(void *ud, const struct store_job *j), void *ud, char **next);
  int (*job_load_active)(struct store_backend *b, const int *terminal, size_t n,
                         void (*cb)(void *ud, const struct store_job *j), void *ud);
  int (*event_list)(struct store_backend *b, const char *job_id,
                    void (*cb)(void *ud, const struct store_event *e), void *ud);
  int (*node_load)(struct store_backend *b, void (*cb)(void *ud, const struct store_node *n),
                   void *ud);
  int (*token_load)(struct store_backend *b, void (*cb)(void *ud, const struct store_token *t),
                    void *ud);
  int (*log_read)(struct store_backend *b, const char *job_id, uint32_t attempt, uint64_t after_seq,
                  uint32_t limit,
                  int (*cb)(void *ud, uint64_t seq, const uint8_t *data, size_t len), void *ud);
  int (*log_last)(struct store_backend *b, const char *job_id, uint32_t attempt, uint64_t *seq);
};

extern const struct store_backend_ops store_sqlite_backend;

/* The schema, one script per version (1, 2, 3...: index + 1), in order.
 * Written in SQLite's dialect of portable SQL (see migrations.c). */
struct store_migration {
  int version;
  const char *sql;
};
extern const struct store_migration store_sqlite_migrations[];
extern const size_t store_sqlite_nmigrations;

#endif
