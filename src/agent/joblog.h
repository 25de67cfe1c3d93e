/* joblog.h - the buffered per-job log file DIR/logs/<id>.log: the jobs
 * folder's sink for a job's output (core.h).
 *
 * One line per output line of the job:
 *   "<time> <stream> <text>\n"
 * with <time> in RFC 3339 UTC with microseconds ("2026-11-23T03:44:56.123456Z",
 * always 27 characters) and <stream> one of "out", "err", "sys" ("sys" lines
 * are the agent's own notes: attempt, error, final status). In <text>,
 * control bytes (0x00-0x1f except TAB, and 0x7f) are written as "\xNN"
 * (lowercase hex) and a backslash as "\\"; every other byte as it is. Lines
 * are buffered and written when the buffer would overflow (JOBLOG_BUF_CAP),
 * on joblog_flush (the agent calls it every JOBLOG_FLUSH_MS and at job end).
 * Short writes are continued until every byte is written or a write fails;
 * a failure is logged once and the rest of the log is dropped. */
#ifndef DROVER_AGENT_JOBLOG_H
#define DROVER_AGENT_JOBLOG_H

#include <stddef.h>
#include <stdint.h>

#include "agent/core.h"
#include "job/result.h"

#define JOBLOG_BUF_CAP  (64 * 1024) /* flush a job's log at this size ... */
#define JOBLOG_FLUSH_MS 100         /* ... or this often, and at job end */

/* Text of recent time stamps, shared by all the logs of one agent: exec
 * stamps every line of one read() alike, and most lines fall in the same
 * second as the one before. Owned by the caller; joblog_clock_init before use. */
struct joblog_clock {
  int64_t sec; /* cached "YYYY-MM-DDTHH:MM:SS" of sec */
  char prefix[64];
  int64_t last_us; /* the last stamp formatted, and its text */
  char last[32];
};

void joblog_clock_init(struct joblog_clock *c);

/* One job's log. Closed (fd -1) until joblog_open; every call on a closed or
 * failed log does nothing. */
struct joblog {
  int fd;
  struct joblog_clock *clock; /* joblog_sink's (not owned) */
  int failed;                 /* a write failed: said once, the rest is dropped */
  const char *id;             /* the job id for messages (not owned) */
  char *buf;                  /* JOBLOG_BUF_CAP bytes while open */
  size_t len;
  uint64_t size;     /* the file's size once the buffer is written */
  uint64_t max_size; /* out and err lines past it are dropped ... */
  uint64_t dropped;  /* ... and counted here */
};

void joblog_init(struct joblog *l);
/* Opens (creates, appends to; never through a symbolic link) path and
 * allocates the buffer. id (for the agent's own messages) must outlive l.
 * max_size (0: none) bounds the file: an out or err line that would make it
 * larger is not written but counted in l->dropped, and the first one dropped
 * adds a "sys" line saying so; "sys" lines are always written. Returns 0 or
 * -errno; on error the log stays closed and the job runs without one. */
int joblog_open(struct joblog *l, const char *path, const char *id, uint64_t max_size);
static inline int joblog_is_open(const struct joblog *l)
{
  return l->fd >= 0;
}
/* Appends one line; data (len bytes, no newline) is copied, escaped. Lines
 * longer than the buffer are written through at once. */
void joblog_line(struct joblog *l, struct joblog_clock *c, enum job_stream s, int64_t ts_us,
                 const char *data, size_t len);
/* Appends a "sys" line stamped now (truncated to 511 bytes). */
void joblog_sys(struct joblog *l, struct joblog_clock *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Makes *out a core sink (core.h) that appends each line to l with the time
 * stamps of c (which must outlive the sink's use): the file implementation
 * of the agent core's per-job sink. */
void joblog_sink(struct joblog *l, struct joblog_clock *c, struct core_sink *out);
/* Writes what is buffered. */
void joblog_flush(struct joblog *l);
/* Closes the file and frees the buffer WITHOUT flushing (call joblog_flush
 * first to keep buffered lines). The log is closed afterwards. */
void joblog_release(struct joblog *l);

#endif
