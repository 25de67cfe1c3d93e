/* state.h - the networked agent's state dir (--state-dir): its identity and
 * what must survive the agent.
 *
 *   STATE_DIR/.lock              flock()ed while an agent uses the dir (our pid in it)
 *   STATE_DIR/node.json          {"node_id","node_secret"} (mode 0600), from the
 *                                first registration on
 *   STATE_DIR/jobs/rec.<k>       attempt records, one per file: "<id> N PGID START
 *                                BOOT_ID" (core.h's record after the job id) while
 *                                attempt N of job <id> may have processes, blank
 *                                when the file is free; a small pool of files
 *                                rewritten in place, never one file per job
 *   STATE_DIR/results/<id>.<n>   its JobFinished (packed AgentMessage) until the
 *                                coordinator acknowledged it
 *   STATE_DIR/spool/<id>.<n>.<k> its log batches that did not fit in memory
 *                                (spool.h)
 *
 * The dir is made mode 0700; every name in it is the agent's. */
#ifndef DROVER_AGENT_STATE_H
#define DROVER_AGENT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "agent/core.h"

struct agent_state {
  char *dir;
  char *jobs, *results, *spool; /* the subfolders' paths */
  /* The record pool: rec_fds[k] is jobs/rec.<k>; rec_key[k] its "id.attempt",
   * or NULL while free. */
  int *rec_fds;
  char **rec_key;
  size_t nrec;
  int lock_fd;       /* -1 before state_open */
  char node_id[64];  /* "" until registered */
  char *node_secret; /* NULL until registered */
};

/* The default --state-dir: /var/lib/drover/agent for root, ./drover-agent
 * for anyone else. */
const char *state_default_dir(void);

/* Creates the folders, takes the lock and reads node.json if there is one.
 * Returns 0, or -errno with a message for the user in err: -EBUSY when
 * another agent holds the dir (the message names its pid), -EINVAL for a
 * node.json that does not parse. st is to be state_release()d either way. */
int state_open(struct agent_state *st, const char *dir, char *err, size_t errlen);
/* Releases the lock and frees the strings. */
void state_release(struct agent_state *st);

/* Keeps the identity a first registration gave: node.json written
 * atomically, mode 0600, fsynced with its folder before this returns (a
 * token is spent: the identity must not be lost). Returns 0 or -errno. */
int state_save_identity(struct agent_state *st, const char *node_id, const char *secret);

/* Attempt records in jobs/. Written in place (one pwrite of a fixed-size
 * record into a file of the pool, a new file only when the pool grows),
 * without fsync: they serve to kill what is left of a job after the agent
 * died, and a power cut ends the jobs as well. Creating and removing a file
 * per job would cost far more than the job itself on a busy ext4. Returns 0
 * or -errno. */
int state_record_write(struct agent_state *st, const char *id, unsigned attempt,
                       const struct core_attempt *a);
/* Reads one; returns 0, or -errno (-ENOENT: none). */
int state_record_read(struct agent_state *st, const char *id, unsigned attempt,
                      struct core_attempt *a);
void state_record_remove(struct agent_state *st, const char *id, unsigned attempt);

/* One "<id>.<attempt>" name in results/, or one record. */
struct state_name {
  char id[129];
  unsigned attempt;
};
/* The well-formed names in folder (st->results; temporary files
 * of atomic writes that a crash left are removed), into *out (free it).
 * Returns the count or -errno. */
int state_list(const char *folder, struct state_name **out);

/* The attempts that have a record (left by a previous life, read at
 * state_open), into *out (free it). Returns the count. */
int state_records(struct agent_state *st, struct state_name **out);

/* results/<id>.<attempt> as a heap path. */
char *state_result_path(struct agent_state *st, const char *id, unsigned attempt);

/* Splits "<id>.<attempt>" (id: 1-128 of [A-Za-z0-9._-]) into n. Returns 0 or
 * -1 for any other name. */
int state_parse_name(const char *name, struct state_name *n);

#endif
