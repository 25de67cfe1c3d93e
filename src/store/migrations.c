/* migrations.c - the store's schema, one script per version.
 *
 * A script is applied once, in its own transaction together with its row in
 * schema_version, in order; a database at version N gets the scripts after N.
 * Scripts are never edited once released: a change is a new script at the
 * end (ALTER TABLE, CREATE INDEX, a copy into a new table...).
 *
 * The SQL is kept portable so that a PostgreSQL backend can carry the same
 * list with the same versions: TEXT, BIGINT and INTEGER columns, no
 * SQLite-only functions, no INSERT OR REPLACE. The two places where SQLite's
 * text differs from what PostgreSQL needs are BLOB (PostgreSQL: BYTEA) and
 * job_events.id, which is SQLite's rowid alias here ("INTEGER PRIMARY KEY":
 * the next id is one more than the largest, so ids increase as long as the
 * newest events are never deleted) and would be "BIGINT GENERATED ALWAYS AS
 * IDENTITY PRIMARY KEY" there. Both stores hold times as microseconds since
 * the Unix epoch (BIGINT), set by the coordinator, never by the database. */
#include "store/store_int.h"

#include "base/util.h"

/* Version 1: jobs (with labels and events), nodes, tokens.
 *
 * jobs_order serves the list (newest first, keyset on created_us, id) and
 * jobs_state the list filtered by state and the coordinator's start (every job
 * not yet ended); job_labels_kv finds the jobs with one label. No foreign key
 * from job_labels and job_events is ON DELETE CASCADE: jobs are not deleted
 * in this version, and when they are, deleting their events should be a
 * choice of that code, not a side effect. */
static const char v1[] = "CREATE TABLE jobs (\n"
                         "  id TEXT PRIMARY KEY,\n"
                         "  state INTEGER NOT NULL,\n"
                         "  attempt BIGINT NOT NULL,\n"
                         "  max_attempts BIGINT NOT NULL,\n"
                         "  priority INTEGER NOT NULL,\n"
                         "  created_us BIGINT NOT NULL,\n"
                         "  updated_us BIGINT NOT NULL,\n"
                         "  name TEXT,\n"
                         "  node_id TEXT,\n"
                         "  idempotency_key TEXT UNIQUE,\n"
                         "  reason TEXT,\n"
                         "  spec BLOB,\n"
                         "  result BLOB,\n"
                         "  cancel_requested INTEGER NOT NULL,\n"
                         "  cancel_grace_ms BIGINT NOT NULL\n"
                         ");\n"
                         "CREATE INDEX jobs_order ON jobs (created_us, id);\n"
                         "CREATE INDEX jobs_state ON jobs (state, created_us, id);\n"
                         "CREATE TABLE job_labels (\n"
                         "  job_id TEXT NOT NULL REFERENCES jobs (id),\n"
                         "  key TEXT NOT NULL,\n"
                         "  value TEXT NOT NULL,\n"
                         "  PRIMARY KEY (job_id, key)\n"
                         ");\n"
                         "CREATE INDEX job_labels_kv ON job_labels (key, value, job_id);\n"
                         "CREATE TABLE job_events (\n"
                         "  id INTEGER PRIMARY KEY,\n"
                         "  job_id TEXT NOT NULL REFERENCES jobs (id),\n"
                         "  ts_us BIGINT NOT NULL,\n"
                         "  from_state INTEGER NOT NULL,\n"
                         "  to_state INTEGER NOT NULL,\n"
                         "  node_id TEXT,\n"
                         "  attempt BIGINT NOT NULL,\n"
                         "  reason TEXT\n"
                         ");\n"
                         "CREATE INDEX job_events_job ON job_events (job_id, id);\n"
                         "CREATE TABLE nodes (\n"
                         "  id TEXT PRIMARY KEY,\n"
                         "  name TEXT NOT NULL,\n"
                         "  state INTEGER NOT NULL,\n"
                         "  registered_us BIGINT NOT NULL,\n"
                         "  last_seen_us BIGINT NOT NULL,\n"
                         "  secret_hash TEXT NOT NULL,\n"
                         "  info BLOB\n"
                         ");\n"
                         "CREATE TABLE tokens (\n"
                         "  id TEXT PRIMARY KEY,\n"
                         "  hash TEXT NOT NULL UNIQUE,\n"
                         "  uses_left BIGINT NOT NULL,\n"
                         "  created_us BIGINT NOT NULL,\n"
                         "  expires_us BIGINT NOT NULL,\n"
                         "  description TEXT\n"
                         ");\n";

/* Version 2: job logs small enough to live in the database. The
 * coordinator keeps the first batches of an attempt here (up to a size),
 * committed with the job's state changes: a job with a few lines of output
 * costs no file of its own. Bigger logs go on in files (src/coord/logstore). */
static const char v2[] = "CREATE TABLE job_logs (\n"
                         "  job_id TEXT NOT NULL REFERENCES jobs (id),\n"
                         "  attempt BIGINT NOT NULL,\n"
                         "  seq BIGINT NOT NULL,\n"
                         "  data BLOB NOT NULL,\n"
                         "  PRIMARY KEY (job_id, attempt, seq)\n"
                         ");\n";

const struct store_migration store_sqlite_migrations[] = {
    {1, v1},
    {2, v2},
};
const size_t store_sqlite_nmigrations = ARRAY_SIZE(store_sqlite_migrations);
