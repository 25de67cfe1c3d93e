/* logstore.h - the coordinator's job logs: one append-only file per job,
 * DATA/logs/<id>.log, a sequence of frames, each one LogBatch exactly as the
 * agent sent it (its bytes are also a valid drover.v1.LogsResponse, so
 * readers send them on as they are):
 *
 *   u32 magic "DLB1" | u32 payload length | u32 attempt | u64 seq |
 *   u32 CRC-32 of the payload | payload (little-endian integers)
 *
 * Appends are write(2)s from the loop thread (to the page cache: fast); an
 * acknowledgement to the agent waits for logstore_sync, which fdatasyncs every
 * file appended since the last sync on libuv's thread pool, apart from the
 * store's commits, so a job writing 500 MB never delays other jobs' state
 * changes. A frame cut short by a crash is cut off when the file is opened
 * again. */
#ifndef DROVER_COORD_LOGSTORE_H
#define DROVER_COORD_LOGSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct logstore;
struct logfile;

/* Creates dir if needed. Returns 0 and *out, or -errno with a message in err. */
int logstore_open(uv_loop_t *loop, const char *dir, struct logstore **out, char *err,
                  size_t errlen);
/* Waits for a sync in flight, closes every file, frees ls, then cb (from the
 * loop). Files must all have been released. */
void logstore_close(struct logstore *ls, void (*cb)(void *ud), void *ud);

/* The job's log file, opened for appending (created when missing, a torn
 * last frame cut off) and scanned for the last seq of each attempt. A
 * reference: release it with logfile_release. NULL with errno set on error. */
struct logfile *logstore_file(struct logstore *ls, const char *job_id);
void logfile_release(struct logfile *f);
/* The highest seq stored for attempt (0: none). */
uint64_t logfile_last_seq(const struct logfile *f, uint32_t attempt);
/* Appends one frame. Returns 0 or -errno (then nothing was appended). */
int logfile_append(struct logfile *f, uint32_t attempt, uint64_t seq, const void *payload,
                   size_t len);
/* Bytes in the file (the offset the next frame will have). */
uint64_t logfile_size(const struct logfile *f);

/* cb(ud, status) on the loop once every frame appended before this call is
 * on disk (fdatasync); status is 0 or -errno of a failed sync (the data may
 * be lost: callers must not acknowledge it). */
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
/* The highest attempt with any frame in the file (0: none); reads it all. */
uint32_t logreader_last_attempt(struct logreader *r);
void logreader_rewind(struct logreader *r);

#endif
