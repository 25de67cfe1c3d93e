/* spec.h - checks a drover.v1.JobSpec from the network (the coordinator's
 * Submit) the same way a job file is checked: every field this version cannot
 * honour is an error that says so. */
#ifndef DROVER_JOB_SPEC_H
#define DROVER_JOB_SPEC_H

#include <stddef.h>

#include "job/pb.h"

#define SPEC_MAX_ATTEMPTS 100
#define SPEC_MAX_PRIORITY 1000000

/* 0 when s can be run by this version, else -1 with a message for the user
 * in err ("\"argv\" must not be empty for an exec job"). */
int job_spec_check(const pb_JobSpec *s, char *err, size_t errlen);

#endif
