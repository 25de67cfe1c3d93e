/* states.h - the job state machine: drover.v1.JobState names and the one
 * table of allowed transitions (docs/states.md). The coordinator validates
 * every change here; the CLI uses the names. */
#ifndef DROVER_JOB_STATES_H
#define DROVER_JOB_STATES_H

#include <stddef.h>

/* "queued", "timed_out", ...; "unknown" for values out of range. */
const char *job_state_name(int state);
/* The state named s ("running"; also "RUNNING", "timed-out"), or -1. */
int job_state_parse(const char *s);
/* 1 for succeeded, failed, timed_out, cancelled, lost. */
int job_state_terminal(int state);
/* 1 when a job may go from `from` to `to`:
 *   (new) -> queued
 *   queued -> assigned | cancelled
 *   assigned -> running | queued (requeued, rejected) | lost | any end state
 *   running -> queued (requeued) | lost | any end state
 * and nothing out of an end state. */
int job_state_can(int from, int to);
/* The terminal states, for queries (n set to their count). */
const int *job_state_terminals(size_t *n);

#endif
