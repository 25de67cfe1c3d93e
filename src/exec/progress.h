/* progress.h - parses the progress lines a job writes to $DROVER_PROGRESS_FD:
 * "PERCENT [STAGE [MESSAGE...]]", PERCENT an integer or decimal 0..100 with
 * an optional '%' ("42", "42.5%"; decimals are truncated). Pure, fuzzable. */
#ifndef DROVER_EXEC_PROGRESS_H
#define DROVER_EXEC_PROGRESS_H

#include <stddef.h>
#include "job/result.h"

/* Parses one line (len bytes, no '\n'). On success returns 0 and fills *out
 * with heap strings (stage/message NULL when absent); the caller frees them
 * (job_result_release does, for r->progress). Returns -1 on a malformed line,
 * *out untouched. */
int progress_parse(const char *line, size_t len, struct job_progress *out);

#endif
