/* sqlite_int.h - what the SQLite backend's two files share: its state
 * (struct store_backend) and the helpers both use. sqlite.c opens, migrates
 * and commits; sqlite_read.c reads. Not for callers of the store. */
#ifndef DROVER_STORE_SQLITE_INT_H
#define DROVER_STORE_SQLITE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/store_int.h"

/* Shapes of list and start-up queries kept prepared; past these, a query
 * of a new shape is prepared for its call only. */
#define SHAPE_CACHE 32

#define JOB_COLS                                                                                   \
  "id, state, attempt, max_attempts, priority, created_us, updated_us, name, node_id, "            \
  "idempotency_key, reason, spec, result, cancel_requested, cancel_grace_ms"

enum shape_kind { SHAPE_LIST, SHAPE_ACTIVE };

/* A query whose text depends on the number of its filters. */
struct shape {
  enum shape_kind kind;
  size_t nstates, nlabels;
  int after;
  sqlite3_stmt *st;
};

struct store_backend {
  char *path;
  int lock_fd;
  int version;
  sqlite3 *w, *r;
  /* The writer's statements (thread pool). */
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *job_change, *job_update, *job_insert, *label_insert, *event_insert;
  sqlite3_stmt *node_put, *token_put, *token_delete, *log_put;
  /* The reader's (loop). */
  sqlite3_stmt *job_get, *job_labels, *job_key, *event_list, *node_load, *token_load;
  sqlite3_stmt *log_read, *log_last;
  struct shape shapes[SHAPE_CACHE];
  size_t nshapes;
};

/* Prepared for the life of the store. */
static inline int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

/* A string or SQL NULL; s must live until the statement is reset. */
static inline void sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

/* The reads (sqlite_read.c), with the contracts of store.h's functions of
 * the same names. */
int store_sqlite_job_get(struct store_backend *b, const char *id, struct store_job *out);
int store_sqlite_job_find_key(struct store_backend *b, const char *key, char id[129]);
int store_sqlite_job_list(struct store_backend *b, const struct store_job_filter *f,
                          void (*cb)(void *ud, const struct store_job *j), void *ud, char **next);
int store_sqlite_job_load_active(struct store_backend *b, const int *terminal, size_t n,
                                 void (*cb)(void *ud, const struct store_job *j), void *ud);
int store_sqlite_event_list(struct store_backend *b, const char *job_id,
                            void (*cb)(void *ud, const struct store_event *e), void *ud);
int store_sqlite_node_load(struct store_backend *b,
                           void (*cb)(void *ud, const struct store_node *n), void *ud);
int store_sqlite_token_load(struct store_backend *b,
                            void (*cb)(void *ud, const struct store_token *t), void *ud);
int store_sqlite_log_read(struct store_backend *b, const char *job_id, uint32_t attempt,
                          uint64_t after_seq, uint32_t limit,
                          int (*cb)(void *ud, uint64_t seq, const uint8_t *data, size_t len),
                          void *ud);
int store_sqlite_log_last(struct store_backend *b, const char *job_id, uint32_t attempt,
                          uint64_t *seq);

#endif
