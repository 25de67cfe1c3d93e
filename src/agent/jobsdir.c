/* jobsdir.c - the stand-alone agent's flow: scan DIR, claim job files, run
 * them through the agent core, finish them (result, then the file moves on).
 *
 * The files themselves are handled by jobfiles.c (claims, moves, attempt
 * markers, results), status files by jobstatus.c and each job's log by
 * joblog.c (the jobs' sink); core.c runs the jobs. This file decides what
 * happens when, and owns the folder's loop handles. */
#include "agent/jobsdir.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/core.h"
#include "agent/jobfiles.h"
#include "agent/joblog.h"
#include "agent/jobstatus.h"
#include "base/log.h"
#include "base/proc.h"
#include "base/smap.h"
#include "base/util.h"
#include "container/engine.h"
#include "job/job.h"
#include "job/result.h"

#define MAX_ATTEMPTS 2
#define SCAN_GAP_MS  20 /* at most one folder scan per gap */
/* A result that cannot be written is tried again after RETRY_FIRST_MS,
 * doubling up to RETRY_MAX_MS while it keeps failing. */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   30000
/* How long a restart waits for the SIGKILLed processes of an earlier
 * attempt to be gone before it gives up on running the job again. */
#define LEFTOVER_WAIT_MS 5000

/* ---- state ---- */

enum track_state { T_QUEUED, T_RUNNING };

/* One claimed job, from claim to result. */
struct track {
  struct core_job cj; /* first: a core job is its track */
  char id[129];
  char *file; /* name in DIR (and in running/) */
  enum track_state state;
  unsigned attempt;
  int returning; /* shutdown: put the file back instead of a result */
  const char *cancel_reason;
  struct joblog log; /* open from the job's start */
  struct job_progress progress;
  int status_dirty;          /* the status file is behind: written on the next tick */
  int leftovers_killed;      /* processes of the previous attempt killed at the restart */
  struct track *prev, *next; /* all tracks, for the flush timer */
};

/* A finished job whose result is being written, or waits to be written
 * again after a failure. Holds everything jobfiles_finish needs. */
struct finishing {
  struct jobsdir *jd;
  char *id, *file, *doc;
  size_t len;
  int succeeded;
  unsigned attempt;
  unsigned failures;      /* writes that failed so far */
  struct finishing *next; /* in jd->unwritten while waiting for the retry */
};

struct jobsdir {
  struct sbx *sandbox; /* not owned */
  uv_loop_t *loop;
  const struct tools_policy *tools;
  struct jobfiles files;
  unsigned slots;
  uint64_t shutdown_timeout_ms;
  uint64_t max_job_size, max_log_size;
  /* Container jobs: the engine, and "jobsdir:DIR", the drover.agent label
   * of their containers: the next agent on DIR removes what a crash left. */
  char *docker_host;
  char *docker_node;

  struct agent_core *core;
  struct smap tracks; /* id -> struct track */
  struct smap idem;   /* idempotency key -> id of the succeeded job (char *) */
  struct track *list;
  struct joblog_clock clock; /* time stamp text, shared by all job logs */

  uv_fs_event_t dir_ev, cancel_ev;
  uv_timer_t scan_timer, flush_timer, poll_timer, retry_timer;
  int64_t last_scan_ms;
  int watching;
  int busy_skipped; /* a file waits for a same-named one to leave running/ */
  unsigned writing; /* results being written on the thread pool */
  /* Results whose last write failed: waiting for retry_timer (the list) or
   * being written again (counted in both `writing` and `failing`). While
   * `failing` is not 0 no new file is claimed. */
  struct finishing *unwritten;
  unsigned failing;
  uint64_t retry_ms;

  int started, shutting; /* shutting: the core's phase once it shuts down */
  jobsdir_shutdown_cb shutdown_cb;
  void *shutdown_ud;
  int closing; /* handles left to close in jobsdir_close */
  jobsdir_close_cb close_cb;
  void *close_ud;
};

static void scan_jobs(struct jobsdir *jd);
static void scan_cancels(struct jobsdir *jd);
static void admit(struct jobsdir *jd, const char *file, const struct core_attempt *prev);
static void complete_unrun(struct jobsdir *jd, const char *file, struct job *j, enum job_status st,
                           const char *error, json_t *extra);
static void check_idle(struct jobsdir *jd);

/* ---- tracks ---- */

static void progress_clear(struct job_progress *p)
{
  free(p->stage);
  free(p->message);
  p->stage = p->message = NULL;
  p->percent = -1;
}

static struct track *track_new(struct jobsdir *jd, const struct job *j, const char *file)
{
  struct track *t = xcalloc(1, sizeof(*t));
  snprintf(t->id, sizeof(t->id), "%s", j->id);
  t->file = xstrdup(file);
  t->attempt = j->attempt;
  memcpy(t->cj.id, t->id, sizeof(t->cj.id));
  t->cj.attempt = t->attempt;
  t->cj.stdin_fd = -1;
  joblog_init(&t->log);
  t->progress.percent = -1;
  t->next = jd->list;
  if (jd->list)
    jd->list->prev = t;
  jd->list = t;
  smap_put(&jd->tracks, t->id, t);
  return t;
}

static void track_free(struct jobsdir *jd, struct track *t)
{
  smap_del(&jd->tracks, t->id);
  if (t->prev)
    t->prev->next = t->next;
  else
    jd->list = t->next;
  if (t->next)
    t->next->prev = t->prev;
  joblog_release(&t->log);
  free(t->file);
  progress_clear(&t->progress);
  free(t);
}

static void write_status(struct jobsdir *jd, struct track *t)
{
  jobstatus_write(&jd->files, t->id, t->file, t->state == T_RUNNING ? "running" : "queued",
                  t->attempt, &t->progress, NULL);
  t->status_dirty = 0;
}

/* ---- scan: watching DIR and cancel/, reading the folders ---- */

/* inotify drops events when its queue overflows (16,384 by default: a big
 * enough burst of files does it) and libuv does not report the overflow; a
 * slow rescan makes sure such files are still taken. */
#define POLL_EVERY_MS 2000
static void poll_timer_cb(uv_timer_t *h)
{
  struct jobsdir *jd = h->data;
  scan_cancels(jd);
  scan_jobs(jd);
}

static void scan_timer_cb(uv_timer_t *h)
{
  scan_jobs(h->data);
}

/* Any change in DIR may be a new file (or many: events coalesce), so the
 * folder is read again, but at most once per SCAN_GAP_MS: dropping 2,000 files
 * must not cost 2,000 scans of a 2,000-entry folder. Our own claims (renames
 * out of DIR) cause events too; the gap bounds those as well. */
static void dir_event_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
  struct jobsdir *jd = h->data;
  if (jd->shutting)
    return;
  if (name && !jobfiles_is_job_name(name))
    return;
  if (uv_is_active((uv_handle_t *)&jd->scan_timer))
    return;
  int64_t now = (int64_t)uv_now(jd->loop);
  int64_t wait = jd->last_scan_ms + SCAN_GAP_MS - now;
  uv_timer_start(&jd->scan_timer, scan_timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void cancel_event_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
  struct jobsdir *jd = h->data;
  if (!jd->shutting)
    scan_cancels(jd);
}

static void scan_jobs(struct jobsdir *jd)
{
  struct jobfiles_entry *ents;
  char why[1024];
  jd->last_scan_ms = (int64_t)uv_now(jd->loop);
  /* While a result cannot be written (disk full), no new work is taken:
   * its result could not be kept either. */
  if (jd->shutting || jd->failing)
    return;
  int n = jobfiles_list(jd->files.dir, &ents);
  if (n < 0) {
    log_error("cannot read jobs directory", "dir=%s error=%s", jd->files.dir, strerror(-n));
    return;
  }
  for (int i = 0; i < n; i++) {
    const char *file = ents[i].name;
    /* Judged before the claim, by name and type: a link, FIFO or device is
     * never opened, a name that cannot take the agent's suffixes never
     * enters running/. */
    if (jobfiles_check(&jd->files, jd->files.dir, &ents[i], why, sizeof(why))) {
      jobfiles_refuse(&jd->files, jd->files.dir, file, why);
      continue;
    }
    int rc = jobfiles_claim(&jd->files, file);
    if (rc == 0) {
      admit(jd, file, NULL);
    } else if (rc == -EEXIST) {
      /* A job file of this name is still in running/: wait for it to leave. */
      log_debug("job file waits for a file of the same name to finish", "file=%s", file);
      jd->busy_skipped = 1;
    } else if (rc != -ENOENT) { /* ENOENT: another agent claimed it first */
      log_error("cannot claim job file", "file=%s error=%s", file, strerror(-rc));
    }
  }
  jobfiles_list_free(ents, n);
}

static void scan_cancels(struct jobsdir *jd)
{
  char **names;
  int n = jobfiles_list_cancels(&jd->files, &names);
  if (n < 0)
    return;
  for (int i = 0; i < n; i++) {
    const char *id = names[i];
    char *cpath = xasprintf("%s/%s", jd->files.cancel, id);
    struct track *t = smap_get(&jd->tracks, id);
    if (t) {
      log_info("cancelling job", "job=%s reason=%s", id, "cancel file");
      t->cancel_reason = "cancel file";
      unlink(cpath);
      /* May complete the job (and free t) before it returns. */
      core_cancel(jd->core, &t->cj, UINT64_MAX);
    } else if (jobfiles_has_result(&jd->files, id)) {
      log_info("cancel file for a finished job removed", "job=%s", id);
      unlink(cpath);
    }
    /* Else kept: a job with this id claimed later is cancelled at once. */
    free(cpath);
  }
  jobfiles_names_free(names, n);
}

/* Job files a previous agent left in running/. */
static void recover(struct jobsdir *jd)
{
  struct jobfiles_entry *ents;
  char why[1024];
  int n = jobfiles_list(jd->files.running, &ents);
  if (n < 0)
    return;
  for (int i = 0; i < n; i++) {
    const char *file = ents[i].name;
    /* An older agent may have claimed what this one refuses. */
    if (jobfiles_check(&jd->files, jd->files.running, &ents[i], why, sizeof(why))) {
      jobfiles_fail(&jd->files, file, why);
      continue;
    }
    struct core_attempt prev;
    jobfiles_attempt_read(&jd->files, file, &prev);
    log_warn("recovering job file left by a previous agent", "file=%s attempts_started=%u", file,
             prev.n);
    if (prev.n == 0) {
      /* Never started: the previous agent died while the file was queued,
       * or while it read it. A file it died reading is read here once more,
       * with a marker set first; finding that marker means the agent died
       * on this file twice, and it is not read a third time. */
      if (jobfiles_reads_read(&jd->files, file) > 0) {
        snprintf(why, sizeof(why),
                 "job file '%s/%s': the agent stopped twice while reading it (when it was "
                 "claimed and again at the next start); it is not read again: check its size "
                 "and content",
                 jd->files.dir, file);
        jobfiles_fail(&jd->files, file, why);
        continue;
      }
      if (jobfiles_reads_write(&jd->files, file, 1) < 0)
        log_warn("cannot write read marker", "file=%s", file);
    }
    admit(jd, file, &prev);
  }
  jobfiles_list_free(ents, n);
}

/* ---- claim ---- */

/* Before an unfinished attempt runs again, what is left of it is killed
 * (core_attempt_kill). Returns 0, or -1 when processes of it are still alive
 * after LEFTOVER_WAIT_MS. */
static int kill_leftovers(const struct job *j, const struct core_attempt *prev, int *killed)
{
  int rc = core_attempt_kill(j->id, prev, LEFTOVER_WAIT_MS);
  *killed = rc > 0 ? rc : 0;
  return rc == -ETIMEDOUT ? -1 : 0;
}

/* Takes the file running/<file> (already claimed) into the core. prev is the
 * attempt marker a previous agent left (NULL for a file claimed now). */
static void admit(struct jobsdir *jd, const char *file, const struct core_attempt *prev)
{
  struct job j;
  struct job_error err;
  char buf[1024];
  char *text;
  size_t len;
  memset(&j, 0, sizeof(j));
  memset(&err, 0, sizeof(err));

  if (jobfiles_read(&jd->files, file, jd->max_job_size, &text, &len, buf, sizeof(buf)) < 0) {
    jobfiles_fail(&jd->files, file, buf);
    return;
  }
  int rc = job_parse(&j, text, len, &err);
  free(text);
  if (rc < 0) {
    char *origin = xasprintf("job file '%s/%s'", jd->files.dir, file);
    job_error_format(&err, origin, buf, sizeof(buf));
    free(origin);
    jobfiles_fail(&jd->files, file, buf);
    return;
  }
  unsigned attempt = prev ? prev->n + 1 : 1;
  if (prev && prev->n == 0)
    jobfiles_reads_clear(&jd->files, file); /* read and parsed: it did not kill the agent */
  struct track *other = smap_get(&jd->tracks, j.id);
  if (other) {
    snprintf(buf, sizeof(buf),
             "job file '%s/%s': id \"%s\" is already queued or running (file '%s'); "
             "give each job its own id",
             jd->files.dir, file, j.id, other->file);
    job_release(&j);
    jobfiles_fail(&jd->files, file, buf);
    return;
  }
  int killed = 0;
  if (prev && kill_leftovers(&j, prev, &killed) < 0) {
    j.attempt = prev->n;
    snprintf(buf, sizeof(buf),
             "processes of attempt %u (process group %d) were still alive %d ms after SIGKILL; "
             "the job is not run again beside them",
             prev->n, prev->pgid, LEFTOVER_WAIT_MS);
    complete_unrun(jd, file, &j, JOB_FAILED, buf, NULL);
    return;
  }
  int succeeded;
  if (attempt > 1 && jobfiles_finished_before_restart(&jd->files, j.id, file, &succeeded)) {
    log_info("job had finished before the restart; filing it", "job=%s file=%s status=%s", j.id,
             file, succeeded ? "succeeded" : "not succeeded");
    jobfiles_file_finished(&jd->files, file, succeeded);
    job_release(&j);
    return;
  }
  j.attempt = attempt;
  log_info("job claimed", "job=%s file=%s attempt=%u", j.id, file, attempt);

  if (attempt > MAX_ATTEMPTS) {
    j.attempt = attempt - 1;
    complete_unrun(jd, file, &j, JOB_FAILED, "agent restarted twice while this job was running",
                   NULL);
    return;
  }
  if (jobfiles_take_cancel(&jd->files, j.id)) {
    json_t *extra = json_pack("{s:s}", "cancel_reason", "cancel file");
    complete_unrun(jd, file, &j, JOB_CANCELLED, "cancelled before it started", extra);
    return;
  }
  const char *first = j.idempotency_key ? smap_get(&jd->idem, j.idempotency_key) : NULL;
  if (first) {
    json_t *extra = json_pack("{s:b,s:s}", "deduplicated", 1, "duplicate_of", first);
    log_info("job deduplicated", "job=%s key=%s duplicate_of=%s", j.id, j.idempotency_key, first);
    complete_unrun(jd, file, &j, JOB_SUCCEEDED, NULL, extra);
    return;
  }

  /* exec gives the job DROVER_ATTEMPT and DROVER_JOB_ID from j. */
  struct track *t = track_new(jd, &j, file);
  t->leftovers_killed = killed;
  jobstatus_queued(&jd->files, t->id, t->file, t->attempt);
  /* The core takes j; it may call started or even done before returning,
   * so t must not be used after this. */
  core_submit(jd->core, &t->cj, &j);
}

/* ---- run: the core's callbacks while a job runs ---- */

static void flush_cb(uv_timer_t *h)
{
  struct jobsdir *jd = h->data;
  int running = 0;
  for (struct track *t = jd->list; t; t = t->next) {
    if (t->state != T_RUNNING)
      continue;
    running = 1;
    joblog_flush(&t->log);
    if (t->status_dirty)
      write_status(jd, t);
  }
  if (!running)
    uv_timer_stop(h); /* idle agents do not wake up */
}

/* The attempt marker is written here, before the process is made: after a
 * crash, a job with a marker may have run (part of) its work, one without
 * has not. */
static void on_before_start(struct agent_core *c, void *ud, struct core_job *cj)
{
  struct jobsdir *jd = ud;
  struct track *t = (struct track *)cj;
  struct core_attempt a = {.n = t->attempt};
  if (jobfiles_attempt_write(&jd->files, t->file, &a) < 0)
    log_warn("cannot write attempt marker", "file=%s", t->file);
}

static void on_start(struct agent_core *c, void *ud, struct core_job *cj,
                     const struct core_attempt *a)
{
  struct jobsdir *jd = ud;
  struct track *t = (struct track *)cj;
  t->state = T_RUNNING;
  /* The process exists now: what identifies it after a restart goes next
   * to the attempt number. */
  if (a->pgid > 0 && jobfiles_attempt_write(&jd->files, t->file, a) < 0)
    log_warn("cannot write attempt marker", "file=%s", t->file);
  int pid = cj->pid;

  char *lpath = xasprintf("%s/%s.log", jd->files.logs, t->id);
  int rc = joblog_open(&t->log, lpath, t->id, jd->max_log_size);
  if (rc < 0)
    log_error("cannot open job log", "path=%s error=%s", lpath, strerror(-rc));
  free(lpath);
  joblog_sink(&t->log, &jd->clock, &t->cj.sink);
  if (t->attempt > 1)
    joblog_sys(&t->log, &jd->clock, "attempt %u (the agent restarted while attempt %u was running)",
               t->attempt, t->attempt - 1);
  if (t->leftovers_killed)
    joblog_sys(&t->log, &jd->clock, "killed what was left of attempt %u: %d process%s",
               t->attempt - 1, t->leftovers_killed, t->leftovers_killed == 1 ? "" : "es");
  /* The "queued" status goes; "running" is written on the next tick, so a
   * job shorter than a tick costs no status file at all. */
  jobstatus_remove(&jd->files, t->id);
  t->status_dirty = 1;
  log_info("job started", "job=%s pid=%d attempt=%u", t->id, pid, t->attempt);
  if (!uv_is_active((uv_handle_t *)&jd->flush_timer))
    uv_timer_start(&jd->flush_timer, flush_cb, JOBLOG_FLUSH_MS, JOBLOG_FLUSH_MS);
}

static void on_progress(struct agent_core *c, void *ud, struct core_job *cj,
                        const struct job_progress *pr)
{
  struct track *t = (struct track *)cj;
  progress_clear(&t->progress);
  t->progress.percent = pr->percent;
  t->progress.stage = pr->stage ? xstrdup(pr->stage) : NULL;
  t->progress.message = pr->message ? xstrdup(pr->message) : NULL;
  /* Written by the flush timer: a job reporting progress in a tight loop
   * costs one small file write per JOBLOG_FLUSH_MS, not one per report. */
  t->status_dirty = 1;
}

/* ---- finish: result, then the file moves on ---- */

static void write_result(struct jobsdir *jd, struct finishing *w);

static void finishing_free(struct finishing *w)
{
  free(w->id);
  free(w->file);
  free(w->doc);
  free(w);
}

/* A result written, or given up: shutdown no longer waits for it. */
static void finishing_done(struct jobsdir *jd, struct finishing *w)
{
  finishing_free(w);
  core_unhold(jd->core);
}

/* Writes every result that waits for a retry. */
static void retry_timer_cb(uv_timer_t *h)
{
  struct jobsdir *jd = h->data;
  struct finishing *list = jd->unwritten;
  jd->unwritten = NULL;
  while (list) {
    struct finishing *w = list;
    list = w->next;
    w->next = NULL;
    write_result(jd, w);
  }
}

static void finished_cb(void *ud, int rc)
{
  struct finishing *w = ud;
  struct jobsdir *jd = w->jd;
  jd->writing--;
  if (rc < 0) {
    /* The file stays in running/ with its marker: a crash now reruns the
     * job, nothing is filed without its result. */
    if (w->failures++ == 0) {
      jd->failing++;
      log_error("cannot write result; the job file stays in running/ until it can be written",
                "job=%s file=%s error=%s", w->id, w->file, strerror(-rc));
      if (jd->failing == 1)
        log_warn("not claiming new job files while a result cannot be written", "dir=%s",
                 jd->files.dir);
    }
    char *msg = xasprintf("cannot write result '%s/%s.json': %s; retrying", jd->files.results,
                          w->id, strerror(-rc));
    jobstatus_write(&jd->files, w->id, w->file, "finishing", w->attempt, NULL, msg);
    free(msg);
    w->next = jd->unwritten;
    jd->unwritten = w;
    if (!uv_is_active((uv_handle_t *)&jd->retry_timer)) {
      uv_timer_start(&jd->retry_timer, retry_timer_cb, jd->retry_ms, 0);
      jd->retry_ms = jd->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : jd->retry_ms * 2;
    }
    check_idle(jd);
    return;
  }
  /* Removed only now: on a full disk, the page it frees could take the
   * result and hide the failure; and whoever watches the folder always finds one
   * of the two. */
  jobstatus_remove(&jd->files, w->id);
  if (w->failures) {
    log_info("result written", "job=%s file=%s failed_writes=%u", w->id, w->file, w->failures);
    if (--jd->failing == 0) {
      jd->retry_ms = RETRY_FIRST_MS;
      log_info("results can be written again; claiming job files", "dir=%s", jd->files.dir);
      jd->busy_skipped = 1; /* scan now */
    }
  }
  finishing_done(jd, w);
  if (jd->busy_skipped && !jd->shutting && !jd->failing) {
    jd->busy_skipped = 0;
    scan_jobs(jd);
  }
}

static void write_result(struct jobsdir *jd, struct finishing *w)
{
  jd->writing++;
  jobfiles_finish(&jd->files, jd->loop, w->id, w->file, w->doc, w->len, w->succeeded, finished_cb,
                  w);
}

/* Writes the result, then moves the job file out of running/; updates the
 * index. `extra` (may be NULL) is merged into the result document and
 * consumed. */
static void complete(struct jobsdir *jd, const char *file, const struct job *j,
                     const struct job_result *r, json_t *extra)
{
  if (!extra)
    extra = json_object();
  json_object_set_new(extra, "file", json_string(file));
  if (j->idempotency_key)
    json_object_set_new(extra, "idempotency_key", json_string(j->idempotency_key));
  char *doc = job_result_to_json(j, r, extra);
  json_decref(extra);
  size_t len = strlen(doc);
  doc = xrealloc(doc, len + 2);
  doc[len++] = '\n';

  struct finishing *w = xcalloc(1, sizeof(*w));
  w->jd = jd;
  w->id = xstrdup(j->id);
  w->file = xstrdup(file);
  w->doc = doc;
  w->len = len;
  w->succeeded = r->status == JOB_SUCCEEDED;
  w->attempt = r->attempt;
  core_hold(jd->core);
  write_result(jd, w);

  /* Indexed at once: a job with the same key claimed while the result is
   * being written is a duplicate already. */
  if (r->status == JOB_SUCCEEDED && j->idempotency_key && !smap_get(&jd->idem, j->idempotency_key))
    smap_put(&jd->idem, j->idempotency_key, xstrdup(j->id));

  log_info("job finished", "job=%s file=%s status=%s exit=%d duration_ms=%llu", j->id, file,
           job_status_name(r->status), r->exit_code, (unsigned long long)(r->duration_us / 1000));
}

/* Completes a job that is never run (dedup, cancelled before start, too many
 * attempts). Releases j. */
static void complete_unrun(struct jobsdir *jd, const char *file, struct job *j, enum job_status st,
                           const char *error, json_t *extra)
{
  struct job_result r;
  job_result_init(&r);
  r.status = st;
  r.exit_code = st == JOB_SUCCEEDED ? 0 : -1;
  r.attempt = j->attempt;
  r.error = error ? xstrdup(error) : NULL;
  int64_t now = now_us();
  r.finished_us = now;
  complete(jd, file, j, &r, extra);
  job_result_release(&r);
  job_release(j);
}

/* The final "sys" line says what the result says: "succeeded, exit code 0",
 * "failed, killed by signal 9 (SIGKILL)", "failed, not started". */
static void describe_end(char *buf, size_t len, const struct job_result *r)
{
  const char *status = job_status_name(r->status);
  if (r->exit_code >= 0) {
    snprintf(buf, len, "%s, exit code %d", status, r->exit_code);
  } else if (r->signal > 0) {
    const char *abbrev = sigabbrev_np(r->signal);
    if (abbrev)
      snprintf(buf, len, "%s, killed by signal %d (SIG%s)", status, r->signal, abbrev);
    else
      snprintf(buf, len, "%s, killed by signal %d", status, r->signal);
  } else {
    snprintf(buf, len, "%s, not started", status);
  }
}

static void on_done(struct agent_core *c, void *ud, struct core_job *cj, const struct job *j,
                    const struct job_result *r)
{
  struct jobsdir *jd = ud;
  struct track *t = (struct track *)cj;
  if (t->returning && t->state == T_QUEUED) {
    /* Shutdown: the job never started; its file goes back for the next agent. */
    char *back = jobfiles_return(&jd->files, t->file);
    if (back)
      log_info("job returned to the jobs directory", "job=%s file=%s", t->id, back);
    else
      log_error("cannot return job file", "file=%s/%s error=%s", jd->files.running, t->file,
                strerror(errno));
    free(back);
    jobstatus_remove(&jd->files, t->id);
    track_free(jd, t);
    return;
  }

  /* Our view of attempt and progress completes what exec knows. */
  struct job_result rr = *r;
  rr.attempt = t->attempt;
  if (rr.progress.percent < 0 && !rr.progress.stage && !rr.progress.message)
    rr.progress = t->progress;
  json_t *extra = json_object();
  if (joblog_is_open(&t->log)) {
    char end[128];
    describe_end(end, sizeof(end), r);
    if (r->error)
      joblog_sys(&t->log, &jd->clock, "error: %s", r->error);
    if (t->log.dropped)
      joblog_sys(&t->log, &jd->clock,
                 "%llu output lines were not written: the log reached "
                 "--max-log-size",
                 (unsigned long long)t->log.dropped);
    joblog_sys(&t->log, &jd->clock, "%s, %llu ms", end,
               (unsigned long long)(r->duration_us / 1000));
    joblog_flush(&t->log);
    if (t->log.dropped)
      json_object_set_new(extra, "log_dropped_lines", json_integer((json_int_t)t->log.dropped));
  }
  if (r->status == JOB_CANCELLED && t->cancel_reason)
    json_object_set_new(extra, "cancel_reason", json_string(t->cancel_reason));
  char *file = xstrdup(t->file);
  track_free(jd, t);
  complete(jd, file, j, &rr, extra);
  free(file);
}

/* ---- shutdown ---- */

/* The core has no job left and no result is being written or waits to be. */
static void core_idle(struct agent_core *c, void *ud)
{
  struct jobsdir *jd = ud;
  jobstatus_tidy(&jd->files);
  if (jd->shutdown_cb) {
    jobsdir_shutdown_cb cb = jd->shutdown_cb;
    jd->shutdown_cb = NULL;
    cb(jd, jd->shutdown_ud);
  }
}

/* At shutdown, once the time for running jobs is over: results that still
 * cannot be written are given up. Their files stay in running/ with their
 * markers, so the next agent runs those jobs again. */
static void abandon_unwritten(struct jobsdir *jd)
{
  uv_timer_stop(&jd->retry_timer);
  while (jd->unwritten) {
    struct finishing *w = jd->unwritten;
    jd->unwritten = w->next;
    log_error("shutting down without the result of a job; it stays in running/ and runs again "
              "at the next start",
              "job=%s file=%s", w->id, w->file);
    jd->failing--;
    finishing_done(jd, w);
  }
}

/* Results are retried until --shutdown-timeout or a second signal. */
static void check_idle(struct jobsdir *jd)
{
  if (jd->shutting && jd->unwritten && core_shutdown_phase(jd->core) >= 2)
    abandon_unwritten(jd);
}

static void on_phase(struct agent_core *c, void *ud, int phase)
{
  check_idle(ud);
}

static void cancel_running(struct jobsdir *jd)
{
  for (struct track *t = jd->list; t; t = t->next)
    t->cancel_reason = "agent shutdown";
}

/* Queued jobs are cancelled with their returning flag set: on_done then puts
 * their files back in DIR instead of writing a result. */
static void return_queued(struct jobsdir *jd)
{
  size_t n = 0, cap = jd->tracks.n;
  char **ids = xcalloc(cap ? cap : 1, sizeof(char *));
  for (struct track *t = jd->list; t && n < cap; t = t->next) {
    if (t->state == T_QUEUED) {
      t->returning = 1;
      ids[n++] = xstrdup(t->id);
    }
  }
  /* Ids, not tracks: a cancel completes (and frees) a queued track at once. */
  for (size_t i = 0; i < n; i++) {
    struct track *t = smap_get(&jd->tracks, ids[i]);
    if (t)
      core_cancel(jd->core, &t->cj, 0);
    free(ids[i]);
  }
  free(ids);
}

void jobsdir_shutdown(struct jobsdir *jd, jobsdir_shutdown_cb cb, void *ud)
{
  if (!jd->shutting) {
    jd->shutting = 1;
    jd->shutdown_cb = cb;
    jd->shutdown_ud = ud;
    if (jd->watching) {
      uv_fs_event_stop(&jd->dir_ev);
      uv_fs_event_stop(&jd->cancel_ev);
    }
    uv_timer_stop(&jd->scan_timer);
    uv_timer_stop(&jd->poll_timer);
    if (jd->core)
      return_queued(jd);
    log_info("shutting down", "running=%zu timeout_ms=%llu", jd->tracks.n,
             (unsigned long long)jd->shutdown_timeout_ms);
  }
  /* Whatever the core cancels from here on is cancelled by the shutdown. */
  cancel_running(jd);
  if (jd->core)
    core_shutdown(jd->core, core_idle, jd);
  else
    core_idle(NULL, jd);
}

/* ---- lifecycle ---- */

struct jobsdir *jobsdir_new(uv_loop_t *loop, const struct jobsdir_opts *opts)
{
  struct jobsdir *jd = xcalloc(1, sizeof(*jd));
  jd->loop = loop;
  jobfiles_init(&jd->files, opts->dir);
  jd->slots = opts->slots;
  jd->shutdown_timeout_ms = opts->shutdown_timeout_ms;
  jd->max_job_size = opts->max_job_size ? opts->max_job_size : JOBSDIR_DEFAULT_MAX_JOB_SIZE;
  jd->max_log_size = opts->max_log_size;
  jd->sandbox = opts->sandbox;
  jd->docker_host = opts->docker_host ? xstrdup(opts->docker_host) : NULL;
  jd->retry_ms = RETRY_FIRST_MS;
  smap_init(&jd->tracks);
  smap_init(&jd->idem);
  joblog_clock_init(&jd->clock);
  uv_timer_t *timers[] = {&jd->scan_timer, &jd->flush_timer, &jd->poll_timer, &jd->retry_timer};
  for (size_t i = 0; i < ARRAY_SIZE(timers); i++) {
    uv_timer_init(loop, timers[i]);
    timers[i]->data = jd;
  }
  uv_fs_event_init(loop, &jd->dir_ev);
  uv_fs_event_init(loop, &jd->cancel_ev);
  jd->dir_ev.data = jd->cancel_ev.data = jd;
  return jd;
}

void jobsdir_set_tools(struct jobsdir *jd, const struct tools_policy *p)
{
  jd->tools = p;
}

int jobsdir_start(struct jobsdir *jd, char *err, size_t errlen)
{
  int rc = jobfiles_open(&jd->files, err, errlen);
  if (rc < 0)
    return rc;

  rc = uv_fs_event_start(&jd->dir_ev, dir_event_cb, jd->files.dir, 0);
  if (rc == 0)
    rc = uv_fs_event_start(&jd->cancel_ev, cancel_event_cb, jd->files.cancel, 0);
  if (rc < 0) {
    snprintf(err, errlen, "jobs directory '%s': cannot watch it: %s", jd->files.dir,
             uv_strerror(rc));
    uv_fs_event_stop(&jd->dir_ev);
    return rc;
  }
  jd->watching = 1;

  static const struct core_ops ops = {on_before_start, on_start, on_progress, on_done, on_phase};
  jd->docker_node = xasprintf("jobsdir:%s", jd->files.dir);
  /* Before any job runs: containers of a previous life (killed -9 while a
   * container job ran) are removed, and their jobs run again (recover). */
  container_engine_reap(jd->docker_host, jd->docker_node, 5000);
  struct core_opts co = {jd->slots, jd->shutdown_timeout_ms, jd->sandbox, jd->docker_host,
                         jd->docker_node};
  jd->core = core_new(jd->loop, &co, &ops, jd);
  core_set_tools(jd->core, jd->tools);
  jd->slots = core_slots(jd->core);
  jd->started = 1;
  log_info("agent started", "dir=%s slots=%u", jd->files.dir, jd->slots);
  jobfiles_load_index(&jd->files, &jd->idem);
  recover(jd);
  scan_cancels(jd);
  scan_jobs(jd);
  uv_timer_start(&jd->poll_timer, poll_timer_cb, POLL_EVERY_MS, POLL_EVERY_MS);
  return 0;
}

size_t jobsdir_active(const struct jobsdir *jd)
{
  return jd->tracks.n;
}

static void free_str(void *p)
{
  free(p);
}

static void closed(struct jobsdir *jd)
{
  if (--jd->closing > 0)
    return;
  jobsdir_close_cb cb = jd->close_cb;
  void *ud = jd->close_ud;
  jobfiles_release(&jd->files); /* closing the lock file releases the flock */
  smap_release(&jd->idem, free_str);
  smap_release(&jd->tracks, NULL);
  free(jd->docker_host);
  free(jd->docker_node);
  free(jd);
  if (cb)
    cb(ud);
}

static void close_cb(uv_handle_t *h)
{
  closed(h->data);
}

static void core_closed(void *ud)
{
  closed(ud);
}

void jobsdir_close(struct jobsdir *jd, jobsdir_close_cb cb, void *ud)
{
  while (jd->list) /* only when closed without a shutdown; normally empty */
    track_free(jd, jd->list);
  while (jd->unwritten) {
    struct finishing *w = jd->unwritten;
    jd->unwritten = w->next;
    finishing_free(w);
  }
  jd->close_cb = cb;
  jd->close_ud = ud;
  uv_handle_t *hs[] = {(uv_handle_t *)&jd->dir_ev,     (uv_handle_t *)&jd->cancel_ev,
                       (uv_handle_t *)&jd->scan_timer, (uv_handle_t *)&jd->flush_timer,
                       (uv_handle_t *)&jd->poll_timer, (uv_handle_t *)&jd->retry_timer};
  jd->closing = (int)ARRAY_SIZE(hs) + (jd->core ? 1 : 0);
  for (size_t i = 0; i < ARRAY_SIZE(hs); i++)
    uv_close(hs[i], close_cb);
  if (jd->core)
    core_close(jd->core, core_closed, jd);
  jd->core = NULL;
}
