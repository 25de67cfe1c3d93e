/* result.c - the result of one run of a job: names, exit codes, JSON. */
#include "job/result.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonstr.h"
#include "base/util.h"

void job_result_init(struct job_result *r)
{
  memset(r, 0, sizeof *r);
  r->status = JOB_FAILED;
  r->exit_code = -1;
  r->progress.percent = -1;
  r->attempt = 1;
}

void job_result_release(struct job_result *r)
{
  free(r->error);
  free(r->progress.stage);
  free(r->progress.message);
  job_result_init(r);
}

const char *job_status_name(enum job_status s)
{
  switch (s) {
  case JOB_SUCCEEDED:
    return "succeeded";
  case JOB_FAILED:
    return "failed";
  case JOB_TIMED_OUT:
    return "timed_out";
  case JOB_CANCELLED:
    return "cancelled";
  case JOB_LOST:
    return "lost";
  }
  return "unknown";
}

int job_result_exit_code(const struct job_result *r)
{
  /* The conventions of timeout(1) and shells, so scripts that wrap drover
   * can tell "the job said no" from "drover stopped it". */
  switch (r->status) {
  case JOB_SUCCEEDED:
    return 0;
  case JOB_TIMED_OUT:
    return 124;
  case JOB_CANCELLED:
    return r->signal > 0 ? 128 + r->signal : 130;
  case JOB_LOST:
    return JOB_EXIT_LOST;
  case JOB_FAILED:
    break;
  }
  if (r->exit_code >= 0)
    return r->exit_code;
  if (r->signal > 0)
    return 128 + r->signal;
  return 125; /* never started */
}

static json_t *time_or_null(int64_t us)
{
  char buf[40];
  if (us <= 0)
    return json_null();
  fmt_time_us(buf, sizeof buf, us);
  return json_string(buf);
}

static json_t *stream_counts(const struct job_result *r, int s)
{
  return json_pack("{s:I,s:I}", "lines", (json_int_t)r->lines[s], "bytes", (json_int_t)r->bytes[s]);
}

char *job_result_to_json(const struct job *j, const struct job_result *r, void *extra)
{
  json_t *o = json_object(), *progress;
  char *out;

  json_object_set_new(o, "id", jsonstr_new(j ? j->id : ""));
  json_object_set_new(o, "name", j && j->name ? jsonstr_new(j->name) : json_null());
  json_object_set_new(o, "status", json_string(job_status_name(r->status)));
  json_object_set_new(o, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
  json_object_set_new(o, "signal", r->signal > 0 ? json_integer(r->signal) : json_null());
  json_object_set_new(o, "started_at", time_or_null(r->started_us));
  json_object_set_new(o, "finished_at", time_or_null(r->finished_us));
  json_object_set_new(o, "duration_ms", json_integer((json_int_t)(r->duration_us / 1000)));
  json_object_set_new(o, "max_rss_kb",
                      r->max_rss_known ? json_integer((json_int_t)r->max_rss_kb) : json_null());
  json_object_set_new(o, "cpu_user_ms", json_integer((json_int_t)(r->user_us / 1000)));
  json_object_set_new(o, "cpu_sys_ms", json_integer((json_int_t)(r->sys_us / 1000)));
  json_object_set_new(o, "stdout", stream_counts(r, JOB_STDOUT));
  json_object_set_new(o, "stderr", stream_counts(r, JOB_STDERR));
  json_object_set_new(o, "error", r->error ? jsonstr_new(r->error) : json_null());
  if (r->progress.percent >= 0) {
    progress = json_object();
    json_object_set_new(progress, "percent", json_integer(r->progress.percent));
    json_object_set_new(progress, "stage",
                        r->progress.stage ? jsonstr_new(r->progress.stage) : json_null());
    json_object_set_new(progress, "message",
                        r->progress.message ? jsonstr_new(r->progress.message) : json_null());
  } else {
    progress = json_null();
  }
  json_object_set_new(o, "progress", progress);
  json_object_set_new(o, "attempt", json_integer(r->attempt));
  json_object_set_new(o, "exit", json_integer(job_result_exit_code(r)));
  json_object_set_new(o, "memory_peak_kb",
                      r->memory_peak_known ? json_integer((json_int_t)r->memory_peak_kb)
                                           : json_null());
  json_object_set_new(o, "cpu_usage_ms",
                      r->cpu_usage_known ? json_integer((json_int_t)(r->cpu_usage_us / 1000))
                                         : json_null());
  json_object_set_new(o, "pids_peak",
                      r->pids_peak ? json_integer((json_int_t)r->pids_peak) : json_null());
  json_object_set_new(o, "oom_killed", json_boolean(r->oom_killed));
  if (extra && json_is_object((json_t *)extra))
    json_object_update(o, (json_t *)extra);
  out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!out)
    abort(); /* only on allocation failure; drover aborts on those */
  return out;
}
