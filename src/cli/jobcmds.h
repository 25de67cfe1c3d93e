/* jobcmds.h - the subcommands of `drover job`, one function each (argv[0]
 * is the subcommand's name, as for the top-level commands); job.c holds
 * their table and the small ones, jobrun.c and jobsubmit.c the two that
 * send jobs. */
#ifndef DROVER_CLI_JOBCMDS_H
#define DROVER_CLI_JOBCMDS_H

#include "job/pb.h"

int cli_job_run(int argc, char **argv);
int cli_job_submit(int argc, char **argv);
int cli_job_logs(int argc, char **argv);

/* The exit code of a CLI that waited for an ended job (drover job run|wait):
 * job_result_exit_code of its result; 125 when it has none. */
int cli_job_exit_code(const pb_Job *job);

/* A job as the JSON document `drover job status --json` prints (a jansson
 * json_t *, new reference): id, name, state, attempt, max_attempts, node,
 * node_name, created_at, updated_at, reason, labels, result (the document of
 * `drover run --json`, or null until the job ends). */
void *cli_job_json(const pb_Job *job);

/* Prints a jansson value as one line to stdout (compact), and drops it. */
void cli_print_json(void *json);

#endif
