/* logstore.h - the coordinator's job logs.
 *
 * What readers see: one append-only file per job, DATA/logs/<id>.log, a
 * sequence of frames, each one LogBatch exactly as the agent sent it (its
 * bytes are also a valid drover.v1.LogsResponse, so readers send them on as
 * they are):
 *
 *   u32 magic "DLB1" | u32 payload length | u32 attempt | u64 seq |
 *   u32 CRC-32 of the payload | payload (little-endian integers)
 *
 * What makes them durable: a batch is acknowledged to its agent only after
 * logstore_sync. Fsyncing every job's file would cost a file-system journal
 * commit per job (and the folder's too, for a new file), so a job's batches
 * are also appended to one shared journal, DATA/logs/journal.<n>, and a sync
 * is one fdatasync of it, however many jobs wrote. Once a job's file is past
 * LOGSTORE_DIRECT bytes it leaves the journal: its own file is fdatasynced
 * instead (one big streaming file costs the same either way, and its bytes
 * are not written twice). When the journal passes LOGSTORE_JOURNAL_MAX, a
 * checkpoint fsyncs the job files it covers and the folder, in the
 * background, and removes it. At open, journals left by a crash are replayed
 * into the job files (frames they already have are skipped) before anything
 * else happens.
 *
 * Appends are write(2)s from the loop thread (to the page cache); syncs and
 * checkpoints run on libuv's thread pool, apart from the store's commits, so
 * a job writing 500 MB never delays other jobs' state changes. */
#ifndef DROVER_COORD_LOGSTORE_H
#define DROVER_COORD_LOGSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define LOGSTORE_DIRECT      (4u << 20)  /* a job file this big is synced itself */
#define LOGSTORE_JOURNAL_MAX (32u << 20) /* a journal this big is checkpointed */

struct logstore;
struct logfile;

/* Creates dir if needed, replays journals left by a crash, starts a new
 * journal. Returns 0 and *out, or -errno with a message in err. */
int logstore_open(uv_loop_t *loop, const char *dir, struct logstore **out, char *err,
                  size_t errlen);
/* Syncs what is written, checkpoints (the journal is removed), frees ls, then
 * cb (from the loop; may be NULL). Files must all have been released. */
void logstore_close(struct logstore *ls, void (*cb)(void *ud), void *ud);

/* The job's log file, opened for appending (created when missing, a torn
 * last frame cut off) and scanned for the last seq of each attempt. A
 * reference: release it with logfile_release. NULL with errno set on error. */
struct logfile *logstore_file(struct logstore *ls, const char *job_id);
/* The same for a job whose file exists already; NULL (errno ENOENT) when
 * there is none: nothing is created. */
struct logfile *logstore_existing(struct logstore *ls, const char *job_id);
void logfile_release(struct logfile *f);
/* The highest seq stored for attempt (0: none). */
uint64_t logfile_last_seq(const struct logfile *f, uint32_t attempt);
/* Appends one frame (to the job's file, and to the journal while the file is
 * small). Returns 0 or -errno (then the job's file is as it was). */
int logfile_append(struct logfile *f, uint32_t attempt, uint64_t seq, const void *payload,
                   size_t len);
/* Bytes in the job's file (the offset the next frame will have). */
uint64_t logfile_size(const struct logfile *f);

/* cb(ud, status) on the loop once every frame appended before this call is
 * on disk; status is 0 or -errno of a failed sync (the data may be lost:
 * callers must not acknowledge it). */
void logstore_sync(struct logstore *ls, void (*cb)(void *ud, int status), void *ud);

/* Reading, by path: any number of readers, independent of the writer. */
struct logreader;
/* Opens DATA/logs/<id>.log for reading; -ENOENT when the job has no log. */
int logreader_open(struct logstore *ls, const char *job_id, struct logreader **out);
void logreader_close(struct logreader *r);
/* The next complete frame from the reader's offset: 1 and its attempt, seq
 * and payload (valid until the next call), 0 at the end of what is written,
 * or -errno / -EBADMSG (a damaged frame: treated as the end by callers). */
int logreader_next(struct logreader *r, uint32_t *attempt, uint64_t *seq, const uint8_t **payload,
                   size_t *len);
/* Where the next frame starts; going back there reads it again. */
uint64_t logreader_offset(const struct logreader *r);
void logreader_seek(struct logreader *r, uint64_t off);

#endif
