/* fuzz_job.c - libFuzzer target: job_parse on arbitrary bytes, then the
 * round trip for documents it accepts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct job j, back;
  struct job_error err;
  char msg[512];

  if (job_parse(&j, (const char *)data, size, &err) < 0) {
    job_error_format(&err, "job file 'fuzz'", msg, sizeof msg);
    job_release(&j);
    return 0;
  }
  /* What was accepted must serialise to a document that parses back. */
  char *text = job_to_json(&j);
  if (job_parse(&back, text, strlen(text), &err) < 0)
    abort();
  if (strcmp(back.id, j.id) != 0 || back.kind != j.kind || back.timeout_ms != j.timeout_ms ||
      back.argc != j.argc || back.nenv != j.nenv)
    abort();
  job_release(&back);
  free(text);
  job_release(&j);
  return 0;
}
