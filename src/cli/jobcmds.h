/* jobcmds.h - the subcommands of `drover job`, one function each (argv[0]
 * is the subcommand's name, as for the top-level commands); job.c holds
 * their table and the small ones; jobrun.c, jobsubmit.c, joblogs.c and
 * jobwait.c one each. */
#ifndef DROVER_CLI_JOBCMDS_H
#define DROVER_CLI_JOBCMDS_H

#include "job/pb.h"

int cli_job_run(int argc, char **argv);
int cli_job_submit(int argc, char **argv);
int cli_job_logs(int argc, char **argv);
int cli_job_wait(int argc, char **argv);

/* The exit code of a CLI that waited for an ended job (drover job run|wait):
 * job_result_exit_code of its result; 125 when it has none. */
int cli_job_exit_code(const pb_Job *job);

/* The exit code of an ended job for people: "3", "137 (signal 9, SIGKILL)",
 * "124 (timed out)", "75 (lost)"; "-" before it ends. */
void cli_job_exit_text(char *buf, size_t len, const pb_Job *job);

/* A job as the JSON document `drover job status --json` prints (a jansson
 * json_t *, new reference): id, name, state, attempt, max_attempts, node,
 * node_name, created_at, updated_at, reason, labels, result (the document of
 * `drover run --json`, or null until the job ends). */
void *cli_job_json(const pb_Job *job);

/* Prints a jansson value as one line to stdout (compact), and drops it. */
void cli_print_json(void *json);

#endif
