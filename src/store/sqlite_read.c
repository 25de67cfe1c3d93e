/* sqlite_read.c - the SQLite backend's reads, on the loop thread, through
 * the read-only connection: rows into structs, keyset pages, the queries
 * whose text depends on their filters.
 *
 * Each read resets its statement when done, so the reader never holds a
 * snapshot between calls (which would keep checkpoints from finishing). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "store/sqlite_int.h"

static char *col_text(sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? xstrdup((const char *)t) : NULL;
}

static void col_text_into(sqlite3_stmt *st, int i, char *buf, size_t len)
{
  const unsigned char *t = sqlite3_column_text(st, i);
  snprintf(buf, len, "%s", t ? (const char *)t : "");
}

/* NULL for SQL NULL; an empty blob is a non-NULL pointer with length 0 (a
 * result of zero bytes means the job ended). */
static uint8_t *col_blob(sqlite3_stmt *st, int i, size_t *len)
{
  *len = 0;
  if (sqlite3_column_type(st, i) == SQLITE_NULL)
    return NULL;
  const void *p = sqlite3_column_blob(st, i);
  size_t n = (size_t)sqlite3_column_bytes(st, i);
  uint8_t *r = xmalloc(n ? n : 1);
  if (n)
    memcpy(r, p, n);
  *len = n;
  return r;
}

/* The kept statement, or a new one when the kept one is in the middle of a
 * read (a read's callback is reading too). Give it back with put_stmt. */
static sqlite3_stmt *get_stmt(sqlite3_stmt *kept)
{
  if (!sqlite3_stmt_busy(kept))
    return kept;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(sqlite3_db_handle(kept), sqlite3_sql(kept), -1, &st, NULL) != SQLITE_OK)
    return NULL;
  return st;
}

static void put_stmt(sqlite3_stmt *st, sqlite3_stmt *kept)
{
  if (st == kept)
    sqlite3_reset(st);
  else
    sqlite3_finalize(st);
}

static int read_failed(struct store_backend *b, const char *what)
{
  log_error("store read failed", "path=%s query=%s error=%s", b->path, what, sqlite3_errmsg(b->r));
  return STORE_E_SQL;
}

static void read_job(sqlite3_stmt *st, struct store_job *j)
{
  memset(j, 0, sizeof(*j));
  col_text_into(st, 0, j->id, sizeof j->id);
  j->state = sqlite3_column_int(st, 1);
  j->attempt = (uint32_t)sqlite3_column_int64(st, 2);
  j->max_attempts = (uint32_t)sqlite3_column_int64(st, 3);
  j->priority = sqlite3_column_int(st, 4);
  j->created_us = sqlite3_column_int64(st, 5);
  j->updated_us = sqlite3_column_int64(st, 6);
  j->name = col_text(st, 7);
  j->node_id = col_text(st, 8);
  j->idempotency_key = col_text(st, 9);
  j->reason = col_text(st, 10);
  j->spec = col_blob(st, 11, &j->spec_len);
  j->result = col_blob(st, 12, &j->result_len);
  j->cancel_requested = sqlite3_column_int(st, 13);
  j->cancel_grace_ms = (uint64_t)sqlite3_column_int64(st, 14);
}

static int read_labels(struct store_backend *b, struct store_job *j)
{
  sqlite3_stmt *st = get_stmt(b->job_labels);
  if (!st)
    return read_failed(b, "job_labels");
  size_t cap = 0;
  int rc;
  sq_bind_text(st, 1, j->id);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (j->nlabels == cap) {
      cap = cap ? cap * 2 : 4;
      j->labels = xrealloc(j->labels, cap * sizeof(*j->labels));
    }
    j->labels[j->nlabels].key = col_text(st, 0);
    j->labels[j->nlabels].value = col_text(st, 1);
    j->nlabels++;
  }
  put_stmt(st, b->job_labels);
  return rc == SQLITE_DONE ? 0 : read_failed(b, "job_labels");
}

/* Steps st (bound), giving each job row with its labels to cb. With limit,
 * stops after that many rows and says in *more whether another followed;
 * *last gets the last row's place (for a cursor). */
static int each_job(struct store_backend *b, sqlite3_stmt *st, const char *what, uint64_t limit,
                    void (*cb)(void *ud, const struct store_job *j), void *ud, int *more,
                    int64_t *last_created, char last_id[129])
{
  uint64_t n = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (limit && n == limit) {
      *more = 1;
      rc = SQLITE_DONE;
      break;
    }
    struct store_job j;
    read_job(st, &j);
    if (read_labels(b, &j) < 0) {
      store_job_release(&j);
      return STORE_E_SQL;
    }
    if (last_created) {
      *last_created = j.created_us;
      memcpy(last_id, j.id, sizeof j.id);
    }
    cb(ud, &j);
    store_job_release(&j);
    n++;
  }
  return rc == SQLITE_DONE ? 0 : read_failed(b, what);
}

int store_sqlite_job_get(struct store_backend *b, const char *id, struct store_job *out)
{
  sqlite3_stmt *st = b->job_get; /* no callback: never busy here */
  sq_bind_text(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    read_job(st, out);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE)
    return -ENOENT;
  if (rc != SQLITE_ROW)
    return read_failed(b, "job_get");
  if (read_labels(b, out) < 0) {
    store_job_release(out);
    return STORE_E_SQL;
  }
  return 0;
}

int store_sqlite_job_find_key(struct store_backend *b, const char *key, char id[129])
{
  sqlite3_stmt *st = b->job_key;
  sq_bind_text(st, 1, key);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    col_text_into(st, 0, id, 129);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE)
    return -ENOENT;
  return rc == SQLITE_ROW ? 0 : read_failed(b, "job_find_key");
}

/* A growable string for the queries built by shape. */
struct sql {
  char *p;
  size_t n;
};

static void sql_add(struct sql *q, const char *s)
{
  size_t k = strlen(s);
  q->p = xrealloc(q->p, q->n + k + 1);
  memcpy(q->p + q->n, s, k + 1);
  q->n += k;
}

static void sql_marks(struct sql *q, size_t n)
{
  for (size_t i = 0; i < n; i++)
    sql_add(q, i ? ", ?" : "?");
}

/* The statement of a list or start-up query of this shape: kept, or made
 * (and kept while there is room). *kept says whether to keep it after use. */
static sqlite3_stmt *shape_stmt(struct store_backend *b, enum shape_kind kind, size_t nstates,
                                size_t nlabels, int after, int *kept)
{
  struct shape *sh = NULL;
  for (size_t i = 0; i < b->nshapes && !sh; i++) {
    struct shape *c = &b->shapes[i];
    if (c->kind == kind && c->nstates == nstates && c->nlabels == nlabels && c->after == after)
      sh = c;
  }
  if (sh) {
    sqlite3_stmt *st = get_stmt(sh->st);
    *kept = st == sh->st;
    return st;
  }

  struct sql q = {0};
  sql_add(&q, "SELECT " JOB_COLS " FROM jobs WHERE 1 = 1");
  if (kind == SHAPE_LIST) {
    if (nstates) {
      sql_add(&q, " AND state IN (");
      sql_marks(&q, nstates);
      sql_add(&q, ")");
    }
    for (size_t i = 0; i < nlabels; i++)
      sql_add(&q, " AND id IN (SELECT job_id FROM job_labels WHERE key = ? AND value = ?)");
    if (after)
      sql_add(&q, " AND (created_us, id) < (?, ?)");
    sql_add(&q, " ORDER BY created_us DESC, id DESC LIMIT ?");
  } else {
    if (nstates) {
      sql_add(&q, " AND state NOT IN (");
      sql_marks(&q, nstates);
      sql_add(&q, ")");
    }
    sql_add(&q, " ORDER BY created_us, id");
  }
  sqlite3_stmt *st = NULL;
  *kept = b->nshapes < SHAPE_CACHE;
  int rc = *kept ? sq_prepare(b->r, q.p, &st) : sqlite3_prepare_v2(b->r, q.p, -1, &st, NULL);
  free(q.p);
  if (rc != SQLITE_OK)
    return NULL;
  if (*kept)
    b->shapes[b->nshapes++] = (struct shape){kind, nstates, nlabels, after, st};
  return st;
}

static void shape_done(sqlite3_stmt *st, int kept)
{
  if (kept)
    sqlite3_reset(st);
  else
    sqlite3_finalize(st);
}

/* Cursors are "<created_us>:<id>" of the last row of a page. */
static int parse_cursor(const char *s, int64_t *created, char id[129])
{
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end != ':' || strlen(end + 1) == 0 || strlen(end + 1) > 128)
    return -EINVAL;
  *created = v;
  snprintf(id, 129, "%s", end + 1);
  return 0;
}

int store_sqlite_job_list(struct store_backend *b, const struct store_job_filter *f,
                          void (*cb)(void *ud, const struct store_job *j), void *ud, char **next)
{
  size_t nstates = f->states ? f->nstates : 0, nlabels = f->labels ? f->nlabels : 0;
  uint32_t limit = f->limit ? f->limit : 100;
  int64_t after_created = 0;
  char after_id[129];
  if (next)
    *next = NULL;
  if (f->after && parse_cursor(f->after, &after_created, after_id) < 0)
    return -EINVAL;

  int kept;
  sqlite3_stmt *st = shape_stmt(b, SHAPE_LIST, nstates, nlabels, f->after != NULL, &kept);
  if (!st)
    return read_failed(b, "job_list");
  int i = 1;
  for (size_t k = 0; k < nstates; k++)
    sqlite3_bind_int(st, i++, f->states[k]);
  for (size_t k = 0; k < nlabels; k++) {
    sq_bind_text(st, i++, f->labels[k].key);
    sq_bind_text(st, i++, f->labels[k].value);
  }
  if (f->after) {
    sqlite3_bind_int64(st, i++, after_created);
    sq_bind_text(st, i++, after_id);
  }
  sqlite3_bind_int64(st, i++, (int64_t)limit + 1); /* one more: is there a next page? */

  int more = 0;
  int64_t last_created = 0;
  char last_id[129] = "";
  int rc = each_job(b, st, "job_list", limit, cb, ud, &more, &last_created, last_id);
  shape_done(st, kept);
  if (rc == 0 && more && next)
    *next = xasprintf("%" PRId64 ":%s", last_created, last_id);
  return rc;
}

int store_sqlite_job_load_active(struct store_backend *b, const int *terminal, size_t n,
                                 void (*cb)(void *ud, const struct store_job *j), void *ud)
{
  if (!terminal)
    n = 0;
  int kept;
  sqlite3_stmt *st = shape_stmt(b, SHAPE_ACTIVE, n, 0, 0, &kept);
  if (!st)
    return read_failed(b, "job_load_active");
  for (size_t k = 0; k < n; k++)
    sqlite3_bind_int(st, (int)k + 1, terminal[k]);
  int rc = each_job(b, st, "job_load_active", 0, cb, ud, NULL, NULL, NULL);
  shape_done(st, kept);
  return rc;
}

int store_sqlite_event_list(struct store_backend *b, const char *job_id,
                            void (*cb)(void *ud, const struct store_event *e), void *ud)
{
  sqlite3_stmt *st = get_stmt(b->event_list);
  if (!st)
    return read_failed(b, "event_list");
  sq_bind_text(st, 1, job_id);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct store_event e = {0};
    e.id = (uint64_t)sqlite3_column_int64(st, 0);
    col_text_into(st, 1, e.job_id, sizeof e.job_id);
    e.ts_us = sqlite3_column_int64(st, 2);
    e.from = sqlite3_column_int(st, 3);
    e.to = sqlite3_column_int(st, 4);
    e.node_id = col_text(st, 5);
    e.attempt = (uint32_t)sqlite3_column_int64(st, 6);
    e.reason = col_text(st, 7);
    cb(ud, &e);
    store_event_release(&e);
  }
  put_stmt(st, b->event_list);
  return rc == SQLITE_DONE ? 0 : read_failed(b, "event_list");
}

int store_sqlite_node_load(struct store_backend *b,
                           void (*cb)(void *ud, const struct store_node *n), void *ud)
{
  sqlite3_stmt *st = get_stmt(b->node_load);
  if (!st)
    return read_failed(b, "node_load");
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct store_node n = {0};
    col_text_into(st, 0, n.id, sizeof n.id);
    n.name = col_text(st, 1);
    n.state = sqlite3_column_int(st, 2);
    n.registered_us = sqlite3_column_int64(st, 3);
    n.last_seen_us = sqlite3_column_int64(st, 4);
    col_text_into(st, 5, n.secret_hash, sizeof n.secret_hash);
    n.info = col_blob(st, 6, &n.info_len);
    cb(ud, &n);
    store_node_release(&n);
  }
  put_stmt(st, b->node_load);
  return rc == SQLITE_DONE ? 0 : read_failed(b, "node_load");
}

int store_sqlite_token_load(struct store_backend *b,
                            void (*cb)(void *ud, const struct store_token *t), void *ud)
{
  sqlite3_stmt *st = get_stmt(b->token_load);
  if (!st)
    return read_failed(b, "token_load");
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct store_token t = {0};
    col_text_into(st, 0, t.id, sizeof t.id);
    col_text_into(st, 1, t.hash, sizeof t.hash);
    t.uses_left = (uint32_t)sqlite3_column_int64(st, 2);
    t.created_us = sqlite3_column_int64(st, 3);
    t.expires_us = sqlite3_column_int64(st, 4);
    t.description = col_text(st, 5);
    cb(ud, &t);
    store_token_release(&t);
  }
  put_stmt(st, b->token_load);
  return rc == SQLITE_DONE ? 0 : read_failed(b, "token_load");
}

int store_sqlite_log_read(struct store_backend *b, const char *job_id, uint32_t attempt,
                          uint64_t after_seq, uint32_t limit,
                          int (*cb)(void *ud, uint64_t seq, const uint8_t *data, size_t len),
                          void *ud)
{
  sqlite3_stmt *st = get_stmt(b->log_read);
  if (!st)
    return read_failed(b, "log_read");
  sq_bind_text(st, 1, job_id);
  sqlite3_bind_int64(st, 2, attempt);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)after_seq);
  sqlite3_bind_int64(st, 4, limit ? (sqlite3_int64)limit : -1);
  int rc, n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const void *data = sqlite3_column_blob(st, 1);
    size_t len = (size_t)sqlite3_column_bytes(st, 1);
    n++;
    if (cb(ud, (uint64_t)sqlite3_column_int64(st, 0), data ? data : (const void *)"", len)) {
      rc = SQLITE_DONE;
      break;
    }
  }
  put_stmt(st, b->log_read);
  return rc == SQLITE_DONE ? n : read_failed(b, "log_read");
}

int store_sqlite_log_last(struct store_backend *b, const char *job_id, uint32_t attempt,
                          uint64_t *seq)
{
  sqlite3_stmt *st = get_stmt(b->log_last);
  if (!st)
    return read_failed(b, "log_last");
  sq_bind_text(st, 1, job_id);
  sqlite3_bind_int64(st, 2, attempt);
  int rc = sqlite3_step(st);
  *seq = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
  put_stmt(st, b->log_last);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : read_failed(b, "log_last");
}
