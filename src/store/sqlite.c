/* sqlite.c - the store's SQLite backend: dir/drover.db in WAL mode, one
 * writer connection for the group commits (thread pool) and one read-only
 * connection for the loop's reads (sqlite_read.c). This file opens, locks,
 * migrates, prepares, commits and closes.
 *
 * WAL lets the loop read while a commit is on the disk: a reader sees the
 * last committed transaction and never waits for the writer.
 * synchronous=FULL makes every COMMIT fsync the log, so a commit that
 * returned survives a power cut, not only a crash of drover: the engine only
 * runs barriers after that. Both connections are opened NOMUTEX: each is
 * used by one thread at a time (the writer by one thread-pool thread per
 * commit, the reader by the loop), so SQLite's own mutexes would be waste.
 *
 * Every statement is prepared once at open and kept (SQLITE_PREPARE_
 * PERSISTENT); the list and start-up queries, whose text depends on how many
 * states and labels they filter on, are prepared on first use and kept per
 * shape. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "store/sqlite_int.h"

#define BUSY_TIMEOUT_MS 5000
/* After a checkpoint, a WAL grown by a large batch is cut back to this. */
#define WAL_SIZE_LIMIT (64 * 1024 * 1024)

/* ---- statements ---------------------------------------------------------- */

/* Steps a statement that returns no rows, then resets it. SQLITE_OK or the
 * error of the step. */
static int run(sqlite3_stmt *st)
{
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void bind_blob(sqlite3_stmt *st, int i, const uint8_t *p, size_t n)
{
  if (p)
    sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

/* ---- opening ------------------------------------------------------------- */

/* The error for a failure of SQLite on the file at open, with its message. */
static int open_error(struct store_backend *b, sqlite3 *db, int rc, const char *doing, char *err,
                      size_t errlen)
{
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
    snprintf(err, errlen,
             "database '%s': not a drover database, or damaged (%s): restore it from a backup "
             "or choose another data directory",
             b->path, msg);
    return STORE_E_CORRUPT;
  case SQLITE_CANTOPEN:
  case SQLITE_PERM:
  case SQLITE_READONLY: {
    int e = db ? sqlite3_system_errno(db) : 0;
    snprintf(err, errlen,
             "database '%s': cannot %s: %s: check the permissions of the file and its directory",
             b->path, doing, e ? strerror(e) : msg);
    return e ? -e : -EACCES;
  }
  default:
    snprintf(err, errlen, "database '%s': cannot %s: %s", b->path, doing, msg);
    return STORE_E_SQL;
  }
}

static int exec(sqlite3 *db, const char *sql)
{
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Turns on WAL; a file system without the shared memory it needs (some
 * network file systems) keeps the old journal, which the store refuses. */
static int set_wal(struct store_backend *b, char *err, size_t errlen)
{
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(b->w, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (rc != SQLITE_OK)
    return open_error(b, b->w, rc, "open it", err, errlen);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    int r = open_error(b, b->w, rc, "open it", err, errlen);
    sqlite3_finalize(st);
    return r;
  }
  const char *mode = (const char *)sqlite3_column_text(st, 0);
  int ok = mode && strcmp(mode, "wal") == 0;
  if (!ok)
    snprintf(err, errlen,
             "database '%s': write-ahead logging is not possible here (journal mode stays '%s'): "
             "choose a data directory on a local file system",
             b->path, mode ? mode : "?");
  sqlite3_finalize(st);
  return ok ? 0 : STORE_E_SQL;
}

/* The highest version in schema_version, 0 on a new file. A file with
 * tables but no schema_version is someone else's database. */
static int read_version(struct store_backend *b, int *version, char *err, size_t errlen)
{
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(b->w,
                              "SELECT count(*), sum(CASE WHEN name = 'schema_version' THEN 1 "
                              "ELSE 0 END) FROM sqlite_master WHERE type = 'table'",
                              -1, &st, NULL);
  if (rc != SQLITE_OK)
    return open_error(b, b->w, rc, "read it", err, errlen);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    int r = open_error(b, b->w, rc, "read it", err, errlen);
    sqlite3_finalize(st);
    return r;
  }
  int64_t tables = sqlite3_column_int64(st, 0), ours = sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  *version = 0;
  if (tables == 0)
    return 0;
  if (!ours) {
    snprintf(err, errlen,
             "database '%s': not a drover database (it has tables but no schema_version): "
             "choose another data directory",
             b->path);
    return STORE_E_CORRUPT;
  }
  rc = sqlite3_prepare_v2(b->w, "SELECT max(version) FROM schema_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *version = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) {
    int r = open_error(b, b->w, rc, "read its schema version", err, errlen);
    sqlite3_finalize(st);
    return r;
  }
  sqlite3_finalize(st);
  return 0;
}

/* The file's schema version, refused when it is newer than this drover's.
 * Called before anything is written (even the switch to WAL), so that a
 * newer drover finds its file as it left it. */
static int check_version(struct store_backend *b, int *version, char *err, size_t errlen)
{
  const int known = store_sqlite_migrations[store_sqlite_nmigrations - 1].version;
  int rc = read_version(b, version, err, errlen);
  if (rc < 0)
    return rc;
  if (*version > known) {
    snprintf(err, errlen,
             "database '%s': made by a newer drover (schema %d, this one knows %d): upgrade drover",
             b->path, *version, known);
    return STORE_E_VERSION;
  }
  return 0;
}

/* Applies the scripts after version, each in its own transaction. */
static int migrate(struct store_backend *b, int version, char *err, size_t errlen)
{
  int rc;
  for (size_t i = 0; i < store_sqlite_nmigrations; i++) {
    const struct store_migration *m = &store_sqlite_migrations[i];
    if (m->version <= version)
      continue;
    sqlite3_stmt *st = NULL;
    rc = exec(b->w, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK)
      rc = exec(b->w, "CREATE TABLE IF NOT EXISTS schema_version (\n"
                      "  version INTEGER PRIMARY KEY,\n"
                      "  applied_us BIGINT NOT NULL\n"
                      ")");
    if (rc == SQLITE_OK)
      rc = exec(b->w, m->sql);
    if (rc == SQLITE_OK)
      rc = sqlite3_prepare_v2(
          b->w, "INSERT INTO schema_version (version, applied_us) VALUES (?, ?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int(st, 1, m->version);
      sqlite3_bind_int64(st, 2, now_us());
      rc = run(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
      rc = exec(b->w, "COMMIT");
    if (rc != SQLITE_OK) {
      char what[64];
      snprintf(what, sizeof what, "apply schema migration %d", m->version);
      int r = open_error(b, b->w, rc, what, err, errlen);
      if (!sqlite3_get_autocommit(b->w))
        exec(b->w, "ROLLBACK");
      return r;
    }
    if (version > 0)
      log_info("store schema migrated", "path=%s from=%d to=%d", b->path, version, m->version);
    version = m->version;
  }
  b->version = version;
  return 0;
}

static int prepare_all(struct store_backend *b, char *err, size_t errlen)
{
  static const char job_set[] =
      "state = ?, attempt = ?, max_attempts = ?, priority = ?, created_us = ?, updated_us = ?, "
      "name = ?, node_id = ?, idempotency_key = ?, reason = ?, spec = ?, result = ?, "
      "cancel_requested = ?, cancel_grace_ms = ?";
  char job_update[512];
  snprintf(job_update, sizeof job_update, "UPDATE jobs SET %s WHERE id = ?", job_set);
  static const char job_change[] =
      "UPDATE jobs SET state = ?, attempt = ?, max_attempts = ?, priority = ?, updated_us = ?, "
      "name = ?, node_id = ?, reason = ?, spec = ?, result = ?, cancel_requested = ?, "
      "cancel_grace_ms = ? WHERE id = ? AND created_us = ? AND idempotency_key IS ?";
  const struct {
    sqlite3 *db;
    sqlite3_stmt **st;
    const char *sql;
  } all[] = {
      {b->w, &b->begin, "BEGIN IMMEDIATE"},
      {b->w, &b->commit, "COMMIT"},
      {b->w, &b->rollback, "ROLLBACK"},
      {b->w, &b->job_change, job_change},
      {b->w, &b->job_update, job_update},
      {b->w, &b->job_insert,
       "INSERT INTO jobs (state, attempt, max_attempts, priority, created_us, updated_us, name, "
       "node_id, idempotency_key, reason, spec, result, cancel_requested, cancel_grace_ms, id) "
       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {b->w, &b->label_insert,
       "INSERT INTO job_labels (job_id, key, value) VALUES (?, ?, ?) "
       "ON CONFLICT (job_id, key) DO NOTHING"},
      {b->w, &b->event_insert,
       "INSERT INTO job_events (job_id, ts_us, from_state, to_state, node_id, attempt, reason) "
       "VALUES (?, ?, ?, ?, ?, ?, ?)"},
      {b->w, &b->node_put,
       "INSERT INTO nodes (id, name, state, registered_us, last_seen_us, secret_hash, info) "
       "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
       "state = excluded.state, registered_us = excluded.registered_us, "
       "last_seen_us = excluded.last_seen_us, secret_hash = excluded.secret_hash, "
       "info = excluded.info"},
      {b->w, &b->token_put,
       "INSERT INTO tokens (id, hash, uses_left, created_us, expires_us, description) "
       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, "
       "uses_left = excluded.uses_left, created_us = excluded.created_us, "
       "expires_us = excluded.expires_us, description = excluded.description"},
      {b->w, &b->token_delete, "DELETE FROM tokens WHERE id = ?"},
      {b->w, &b->log_put, "INSERT INTO job_logs (job_id, attempt, seq, data) VALUES (?, ?, ?, ?)"},
      {b->r, &b->job_get, "SELECT " JOB_COLS " FROM jobs WHERE id = ?"},
      {b->r, &b->job_labels, "SELECT key, value FROM job_labels WHERE job_id = ? ORDER BY key"},
      {b->r, &b->job_key, "SELECT id FROM jobs WHERE idempotency_key = ?"},
      {b->r, &b->event_list,
       "SELECT id, job_id, ts_us, from_state, to_state, node_id, attempt, reason "
       "FROM job_events WHERE job_id = ? ORDER BY id"},
      {b->r, &b->node_load,
       "SELECT id, name, state, registered_us, last_seen_us, secret_hash, info "
       "FROM nodes ORDER BY registered_us, id"},
      {b->r, &b->token_load,
       "SELECT id, hash, uses_left, created_us, expires_us, description "
       "FROM tokens ORDER BY created_us, id"},
      {b->r, &b->log_read,
       "SELECT seq, data FROM job_logs WHERE job_id = ? AND attempt = ? AND seq > ? "
       "ORDER BY seq LIMIT ?"},
      {b->r, &b->log_last, "SELECT max(seq) FROM job_logs WHERE job_id = ? AND attempt = ?"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
    int rc = sq_prepare(all[i].db, all[i].sql, all[i].st);
    if (rc != SQLITE_OK)
      return open_error(b, all[i].db, rc, "prepare its statements", err, errlen);
  }
  return 0;
}

static int sync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

static void sq_close(struct store_backend *b)
{
  sqlite3_stmt *all[] = {b->begin,      b->commit,     b->rollback,     b->job_change,
                         b->job_update, b->job_insert, b->label_insert, b->event_insert,
                         b->node_put,   b->token_put,  b->token_delete, b->job_get,
                         b->job_labels, b->job_key,    b->event_list,   b->node_load,
                         b->token_load, b->log_put,    b->log_read,     b->log_last};
  for (size_t i = 0; i < ARRAY_SIZE(all); i++)
    sqlite3_finalize(all[i]);
  for (size_t i = 0; i < b->nshapes; i++)
    sqlite3_finalize(b->shapes[i].st);
  /* The reader first: closing the last connection checkpoints the WAL into
   * the database and removes it. */
  sqlite3_close(b->r);
  sqlite3_close(b->w);
  /* Only now: closing any descriptor of the file would drop SQLite's POSIX
   * locks on it (they belong to the process, not the descriptor). */
  if (b->lock_fd >= 0)
    close(b->lock_fd);
  free(b->path);
  free(b);
}

static int sq_open(const char *dir, struct store_backend **out, char *err, size_t errlen)
{
  struct store_backend *b = xcalloc(1, sizeof(*b));
  b->lock_fd = -1;
  b->path = xasprintf("%s/drover.db", dir);
  int rc = mkdir_p(dir, 0700);
  if (rc < 0) {
    snprintf(err, errlen, "data directory '%s': cannot create it: %s", dir, strerror(-rc));
    goto fail;
  }
  /* Made here so that it is private from the start (node secrets' hashes,
   * tokens' hashes); SQLite gives its -wal and -shm files the same mode. The
   * descriptor also holds a lock, separate from SQLite's: a second drover on
   * the same data directory would otherwise commit beside this one, each
   * with its own idea of the jobs. */
  int created = 1;
  b->lock_fd = open(b->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (b->lock_fd < 0 && errno == EEXIST) {
    created = 0;
    b->lock_fd = open(b->path, O_RDWR | O_CLOEXEC);
  }
  if (b->lock_fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "database '%s': cannot open it: %s", b->path, strerror(-rc));
    goto fail;
  }
  /* SQLite syncs the directory when it creates the -wal file, not for the
   * database file, made here: without this, a power cut soon after the
   * first start could take the file's name away with what was committed. */
  if (created && (rc = sync_dir(dir)) < 0) {
    snprintf(err, errlen, "data directory '%s': cannot sync it: %s", dir, strerror(-rc));
    goto fail;
  }
  if (flock(b->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
    snprintf(err, errlen,
             "database '%s': in use by another drover process: stop it or choose another data "
             "directory",
             b->path);
    goto fail;
  }

  rc = sqlite3_open_v2(b->path, &b->w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    rc = open_error(b, b->w, rc, "open it", err, errlen);
    goto fail;
  }
  sqlite3_extended_result_codes(b->w, 1);
  sqlite3_busy_timeout(b->w, BUSY_TIMEOUT_MS);
  int version;
  if ((rc = check_version(b, &version, err, errlen)) < 0)
    goto fail;
  if ((rc = set_wal(b, err, errlen)) < 0)
    goto fail;
  char pragmas[160];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = %d",
           WAL_SIZE_LIMIT);
  if ((rc = exec(b->w, pragmas)) != SQLITE_OK) {
    rc = open_error(b, b->w, rc, "set it up", err, errlen);
    goto fail;
  }
  if ((rc = migrate(b, version, err, errlen)) < 0)
    goto fail;

  rc = sqlite3_open_v2(b->path, &b->r, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    rc = open_error(b, b->r, rc, "open it for reading", err, errlen);
    goto fail;
  }
  sqlite3_extended_result_codes(b->r, 1);
  sqlite3_busy_timeout(b->r, BUSY_TIMEOUT_MS);
  if ((rc = prepare_all(b, err, errlen)) < 0)
    goto fail;
  *out = b;
  return 0;

fail:
  sq_close(b);
  return rc;
}

static int sq_schema_version(const struct store_backend *b)
{
  return b->version;
}

/* ---- the group commit (thread pool) -------------------------------------- */

static void bind_job(sqlite3_stmt *st, const struct store_job *j)
{
  sqlite3_bind_int(st, 1, j->state);
  sqlite3_bind_int64(st, 2, j->attempt);
  sqlite3_bind_int64(st, 3, j->max_attempts);
  sqlite3_bind_int(st, 4, j->priority);
  sqlite3_bind_int64(st, 5, j->created_us);
  sqlite3_bind_int64(st, 6, j->updated_us);
  sq_bind_text(st, 7, j->name);
  sq_bind_text(st, 8, j->node_id);
  sq_bind_text(st, 9, j->idempotency_key);
  sq_bind_text(st, 10, j->reason);
  bind_blob(st, 11, j->spec, j->spec_len);
  bind_blob(st, 12, j->result, j->result_len);
  sqlite3_bind_int(st, 13, j->cancel_requested != 0);
  sqlite3_bind_int64(st, 14, (int64_t)j->cancel_grace_ms);
  sq_bind_text(st, 15, j->id);
}

/* Most puts are state changes of a job that exists, with the same
 * created_us and idempotency key: job_change updates it without naming
 * those two columns, so SQLite leaves the entries of jobs_order and the
 * idempotency index alone (an UPDATE rewrites every index whose columns it
 * sets, changed or not: ~12% of the CPU of a change in bench_store). A job
 * whose created_us or key changed takes job_update; a new one job_insert,
 * with its labels, which are written only then. ("IS ?" is a comparison
 * where NULL equals NULL: IS NOT DISTINCT FROM in PostgreSQL.) */
static int apply_job_put(struct store_backend *b, const struct store_job *j)
{
  sqlite3_stmt *st = b->job_change;
  sqlite3_bind_int(st, 1, j->state);
  sqlite3_bind_int64(st, 2, j->attempt);
  sqlite3_bind_int64(st, 3, j->max_attempts);
  sqlite3_bind_int(st, 4, j->priority);
  sqlite3_bind_int64(st, 5, j->updated_us);
  sq_bind_text(st, 6, j->name);
  sq_bind_text(st, 7, j->node_id);
  sq_bind_text(st, 8, j->reason);
  bind_blob(st, 9, j->spec, j->spec_len);
  bind_blob(st, 10, j->result, j->result_len);
  sqlite3_bind_int(st, 11, j->cancel_requested != 0);
  sqlite3_bind_int64(st, 12, (int64_t)j->cancel_grace_ms);
  sq_bind_text(st, 13, j->id);
  sqlite3_bind_int64(st, 14, j->created_us);
  sq_bind_text(st, 15, j->idempotency_key);
  int rc = run(st);
  if (rc != SQLITE_OK || sqlite3_changes(b->w) > 0)
    return rc;
  bind_job(b->job_update, j);
  rc = run(b->job_update);
  if (rc != SQLITE_OK || sqlite3_changes(b->w) > 0)
    return rc;
  bind_job(b->job_insert, j);
  if ((rc = run(b->job_insert)) != SQLITE_OK)
    return rc;
  for (size_t i = 0; i < j->nlabels; i++) {
    if (!j->labels[i].key || !j->labels[i].value)
      continue;
    sq_bind_text(b->label_insert, 1, j->id);
    sq_bind_text(b->label_insert, 2, j->labels[i].key);
    sq_bind_text(b->label_insert, 3, j->labels[i].value);
    if ((rc = run(b->label_insert)) != SQLITE_OK)
      return rc;
  }
  return SQLITE_OK;
}

static int apply(struct store_backend *b, const struct store_op *o)
{
  sqlite3_stmt *st;
  switch (o->kind) {
  case STORE_OP_JOB_PUT:
    return apply_job_put(b, &o->u.job);
  case STORE_OP_EVENT_ADD: {
    const struct store_event *e = &o->u.event;
    st = b->event_insert;
    sq_bind_text(st, 1, e->job_id);
    sqlite3_bind_int64(st, 2, e->ts_us);
    sqlite3_bind_int(st, 3, e->from);
    sqlite3_bind_int(st, 4, e->to);
    sq_bind_text(st, 5, e->node_id);
    sqlite3_bind_int64(st, 6, e->attempt);
    sq_bind_text(st, 7, e->reason);
    return run(st);
  }
  case STORE_OP_NODE_PUT: {
    const struct store_node *n = &o->u.node;
    st = b->node_put;
    sq_bind_text(st, 1, n->id);
    sq_bind_text(st, 2, n->name);
    sqlite3_bind_int(st, 3, n->state);
    sqlite3_bind_int64(st, 4, n->registered_us);
    sqlite3_bind_int64(st, 5, n->last_seen_us);
    sq_bind_text(st, 6, n->secret_hash);
    bind_blob(st, 7, n->info, n->info_len);
    return run(st);
  }
  case STORE_OP_TOKEN_PUT: {
    const struct store_token *t = &o->u.token;
    st = b->token_put;
    sq_bind_text(st, 1, t->id);
    sq_bind_text(st, 2, t->hash);
    sqlite3_bind_int64(st, 3, t->uses_left);
    sqlite3_bind_int64(st, 4, t->created_us);
    sqlite3_bind_int64(st, 5, t->expires_us);
    sq_bind_text(st, 6, t->description);
    return run(st);
  }
  case STORE_OP_TOKEN_DELETE:
    sq_bind_text(b->token_delete, 1, o->u.token_id);
    return run(b->token_delete);
  case STORE_OP_LOG_PUT: {
    const struct store_log_op *l = &o->u.log;
    st = b->log_put;
    sq_bind_text(st, 1, l->job_id);
    sqlite3_bind_int64(st, 2, l->attempt);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)l->seq);
    bind_blob(st, 4, l->data, l->len);
    return run(st);
  }
  }
  return SQLITE_MISUSE;
}

/* An error that belongs to the operation (a retry would meet it again), not
 * to the disk or the database as a whole. In SQLite such a failed statement
 * is undone alone; the transaction goes on. */
static int refused(int rc)
{
  return (rc & 0xff) == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_TOOBIG;
}

static int errno_of(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_IOERR:
    return -EIO;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_NOMEM:
    return -ENOMEM;
  case SQLITE_READONLY:
    return -EROFS;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return STORE_E_CORRUPT;
  default:
    return STORE_E_SQL;
  }
}

static int sq_commit(struct store_backend *b, struct store_op *ops, char *why, size_t whylen)
{
  int rc = run(b->begin);
  if (rc != SQLITE_OK)
    goto fail;
  for (struct store_op *o = ops; o; o = o->next) {
    rc = apply(b, o);
    if (rc == SQLITE_OK)
      continue;
    if (!refused(rc))
      goto fail;
    o->refused = 1;
    o->why = xstrdup(sqlite3_errmsg(b->w));
  }
  if ((rc = run(b->commit)) != SQLITE_OK)
    goto fail;
  return 0;

fail:
  snprintf(why, whylen, "%s (sqlite error %d)", sqlite3_errmsg(b->w), rc);
  /* Some errors (SQLITE_FULL, SQLITE_IOERR) may have rolled the transaction
   * back already; otherwise it is still open. */
  if (!sqlite3_get_autocommit(b->w))
    run(b->rollback);
  return errno_of(rc);
}

const struct store_backend_ops store_sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .commit = sq_commit,
    .job_get = store_sqlite_job_get,
    .job_find_key = store_sqlite_job_find_key,
    .job_list = store_sqlite_job_list,
    .job_load_active = store_sqlite_job_load_active,
    .event_list = store_sqlite_event_list,
    .node_load = store_sqlite_node_load,
    .token_load = store_sqlite_token_load,
    .log_read = store_sqlite_log_read,
    .log_last = store_sqlite_log_last,
};
