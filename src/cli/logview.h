/* logview.h - a job's output as a user sees it, read from JobService.Logs,
 * for `drover job run` and `drover job logs`.
 *
 * Two views:
 *   raw (the default): exactly the job's bytes, stdout entries to fd 1 and
 *     stderr entries to fd 2 (each entry's data, then "\n" unless the entry
 *     is `partial` or `no_eol`); drover's own lines only when asked, to fd 2;
 *   timestamps: one line per entry on fd 1, "<RFC 3339 time> out|err|sys
 *     <data>", drover's own lines included, and a final status line.
 * Everything goes through an outwriter (the loop never blocks on our own
 * stdout); while its queue is above high water the Logs stream is paused,
 * so HTTP/2 flow control holds the coordinator back.
 *
 * When the job moves to a later attempt (requeued after its node was lost),
 * the view tells it, before that attempt's output: raw on fd 2 as
 * "drover: job ID: attempt 2 of 3 (<reason>)", timestamps as a sys line.
 * The reason comes from the job's events (JobService.Events), fetched then. */
#ifndef DROVER_CLI_LOGVIEW_H
#define DROVER_CLI_LOGVIEW_H

#include <stdint.h>

#include "cli/client.h"
#include "cli/outwriter.h"
#include "job/pb.h"

struct logview;

struct logview_opts {
  const char *id;
  int follow;       /* Logs(follow): until the job ends, across attempts */
  uint32_t attempt; /* which attempt (0: the latest; with follow, later ones too) */
  /* Attempts above this one are announced; 0: the first attempt seen is
   * not (drover job logs), 1: any but the first (drover job run). */
  uint32_t announced;
  uint32_t max_attempts; /* for "attempt 2 of 3"; 0: unknown ("attempt 2") */
  int timestamps;
  int show_system; /* raw view: drover's own lines ("$ cmd") to fd 2 */
  /* The stream ended: st is its status; job is the ended job when the
   * stream carried it (follow), else NULL; valid until logview_free. */
  void (*on_end)(struct logview *v, const struct rpc_status *st, const pb_Job *job, void *ud);
  void *ud;
};

/* Starts reading the job's log on cl into w. Returns 0, or -1 with the
 * error printed (the call could not start). The view is freed by
 * logview_free only (also after on_end). */
int logview_start(struct client *cl, struct outwriter *w, const struct logview_opts *o,
                  struct logview **out);
/* The writer's queue changed: reading resumes once it is below low water.
 * Call it from the writer's on_change. */
void logview_writer_changed(struct logview *v);
/* Timestamps view: the final status line(s) of an ended job ("error: ...",
 * "failed, exit code 3, 1.2s"), stamped with its end. Raw view: nothing.
 * The view prints them itself for a job that ends while it follows. */
void logview_print_end(struct logview *v, const pb_Job *job);
/* Bytes of the job's stdout written, and the last one (for a document that
 * must start on a line of its own). */
uint64_t logview_out_bytes(const struct logview *v);
char logview_out_last(const struct logview *v);
/* Ends the call if it runs (on_end is not called) and frees v. */
void logview_free(struct logview *v);

#endif
