/* jobstatus.c - status files of queued and running jobs. */
#include "agent/jobstatus.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

static void progress_to_json(json_t *o, const struct job_progress *p)
{
  if (p->percent < 0 && !p->stage && !p->message)
    return;
  json_t *pr = json_object();
  if (p->percent >= 0)
    json_object_set_new(pr, "percent", json_integer(p->percent));
  if (p->stage)
    json_object_set_new(pr, "stage", json_string(p->stage));
  if (p->message)
    json_object_set_new(pr, "message", json_string(p->message));
  json_object_set_new(o, "progress", pr);
}

void jobstatus_write(struct jobfiles *f, const char *id, const char *file, const char *state,
                     unsigned attempt, const struct job_progress *p, const char *error)
{
  char ts[40];
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(id));
  json_object_set_new(o, "file", json_string(file));
  json_object_set_new(o, "state", json_string(state));
  json_object_set_new(o, "attempt", json_integer(attempt));
  fmt_time_us(ts, sizeof(ts), now_us());
  json_object_set_new(o, "updated_at", json_string(ts));
  if (p)
    progress_to_json(o, p);
  if (error)
    json_object_set_new(o, "error", json_string(error));
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  char *name = xasprintf("%s.json", id);
  size_t len = strlen(text);
  text = xrealloc(text, len + 2);
  text[len++] = '\n';
  if (jobfiles_write_fast(f->status, name, text, len) < 0)
    log_warn("cannot write status file", "job=%s dir=%s", id, f->status);
  free(name);
  free(text);
}

/* A queued job's status is a hard link to one shared file that says
 * {"state":"queued"}: a link makes no new inode, so claiming 2,000 files at
 * once costs 2,000 directory entries, not 2,000 file writes. */
void jobstatus_queued(struct jobfiles *f, const char *id, const char *file, unsigned attempt)
{
  char *shared = xasprintf("%s/.queued", f->status);
  char *path = xasprintf("%s/%s.json", f->status, id);
  if (link(shared, path) < 0 && errno != EEXIST) {
    static const char doc[] = "{\"state\":\"queued\"}\n";
    if (jobfiles_write_fast(f->status, ".queued", doc, sizeof(doc) - 1) < 0 ||
        (link(shared, path) < 0 && errno != EEXIST)) {
      jobstatus_write(f, id, file, "queued", attempt, NULL, NULL);
    }
  }
  free(shared);
  free(path);
}

void jobstatus_remove(struct jobfiles *f, const char *id)
{
  char *path = xasprintf("%s/%s.json", f->status, id);
  unlink(path);
  free(path);
}

void jobstatus_tidy(struct jobfiles *f)
{
  /* Another agent on this folder makes it again when it needs it. */
  char *shared = xasprintf("%s/.queued", f->status);
  unlink(shared);
  free(shared);
}
