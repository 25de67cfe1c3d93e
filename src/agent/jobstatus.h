/* jobstatus.h - the status files DIR/status/<id>.json of queued and running jobs.
 *
 * Advisory files for people and scripts that watch the folder: written
 * atomically (rename) but not fsynced, and removed when the job ends. */
#ifndef DROVER_AGENT_JOBSTATUS_H
#define DROVER_AGENT_JOBSTATUS_H

#include "agent/jobfiles.h"
#include "job/result.h"

/* Writes status/<id>.json:
 *   {"id","file","state","attempt","updated_at"[,"progress"][,"error"]}
 * state is "queued", "running" or "finishing" (ended, its result not yet
 * written); "progress" ({"percent","stage","message"}, each only when known)
 * only when p (may be NULL) holds something, "error" when error is not NULL.
 * Failures are logged, not returned. */
void jobstatus_write(struct jobfiles *f, const char *id, const char *file, const char *state,
                     unsigned attempt, const struct job_progress *p, const char *error);
/* Makes status/<id>.json say {"state":"queued"}; falls back to
 * jobstatus_write (state "queued") when the shared file cannot be linked. */
void jobstatus_queued(struct jobfiles *f, const char *id, const char *file, unsigned attempt);
/* Removes status/<id>.json (if any). */
void jobstatus_remove(struct jobfiles *f, const char *id);
/* Removes the shared queued file (at shutdown, when no job is left). */
void jobstatus_tidy(struct jobfiles *f);

#endif
