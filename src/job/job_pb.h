/* job_pb.h - struct job and struct job_result to and from their drover.v1
 * protobuf messages (JobSpec, JobResult): the CLI builds specs from options
 * and job documents, the agent runs the specs it is sent, both turn results
 * into the document `drover run --json` prints. */
#ifndef DROVER_JOB_JOB_PB_H
#define DROVER_JOB_JOB_PB_H

#include <stddef.h>

#include "job/job.h"
#include "job/pb.h"
#include "job/result.h"

/* Fills j (job_release it on success) from s, after job_spec_check: 0, or -1
 * with the reason in err (j is then empty). A spec without an id gets a new
 * one; a kill grace of 0 is the default (10 s); a timeout of 0 is none. */
int job_from_pb(struct job *j, const pb_JobSpec *s, char *err, size_t errlen);
/* A heap JobSpec of j's fields (free it with protobuf_c_message_free_unpacked
 * (&spec->base, NULL)). */
pb_JobSpec *job_to_pb(const struct job *j);

/* drover.v1.JobState of a status, and back (JS_LOST <-> JOB_LOST; states that
 * are not ends map to JOB_FAILED). */
int job_status_to_state(enum job_status s);
enum job_status job_status_from_state(int state);
/* A heap JobResult of r (free as above). */
pb_JobResult *job_result_to_pb(const struct job_result *r);
/* Fills r (job_result_init'ed by this call; release it) from p. */
void job_result_from_pb(struct job_result *r, const pb_JobResult *p);

#endif
