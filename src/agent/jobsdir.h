/* jobsdir.h - the stand-alone agent: runs the job files dropped into a folder.
 *
 * Layout of the jobs directory DIR (subfolders are created as needed):
 *   DIR/<name>.json         new jobs; dot-files and other names are ignored, so a
 *                           writer can write "x.json.tmp" and rename it to "x.json"
 *   DIR/running/<name>      claimed (queued or running); the attempt number is
 *                           written just before the job starts, as the xattr
 *                           user.drover.attempt of the file or, where there are no
 *                           user xattrs, in a sidecar file <name>.attempt
 *   DIR/results/<id>.json   the result document (written atomically)
 *   DIR/logs/<id>.log       "<RFC 3339 time> out|err|sys <text>" per output line
 *   DIR/done/<name>         job files that succeeded (or were deduplicated)
 *   DIR/failed/<name>       everything else; malformed files get <name>.error.txt
 *   DIR/cancel/<id>         create it to cancel job <id>, queued or running; a cancel
 *                           for an id not seen yet is kept and applies when a job with
 *                           that id is claimed; one for a finished job is removed
 *   DIR/status/<id>.json    {"state":"queued"} while queued; then, from the first tick
 *                           (100 ms) of its run, state "running", attempt and the
 *                           latest progress; removed when the job ends
 *
 * New files are noticed through inotify (uv_fs_event) with a rescan of the
 * folder on any event, and a slow rescan every 2 s as a safety net. A log line
 * is one output line; lines over 64 KiB are logged in 64 KiB parts. Logs are
 * buffered (64 KiB, 100 ms): a crash of the agent loses at most that much.
 *
 * One agent per folder (DIR/.agent.lock is flock()ed; a second agent is refused
 * with an error naming the first one's pid). A job file left in
 * running/ by a crashed agent is run again at the next start: as attempt 1 when it
 * never started, attempt 2 when it had; a job that was already running as attempt 2
 * fails with the reason. On shutdown, queued jobs go back to DIR untouched. */
#ifndef DROVER_AGENT_JOBSDIR_H
#define DROVER_AGENT_JOBSDIR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct jobsdir;

struct jobsdir_opts {
  const char *dir;              /* the jobs directory (copied) */
  unsigned slots;               /* jobs at once; 0: number of CPUs */
  uint64_t shutdown_timeout_ms; /* how long shutdown waits for running jobs */
};

typedef void (*jobsdir_shutdown_cb)(struct jobsdir *jd, void *ud);

struct jobsdir *jobsdir_new(uv_loop_t *loop, const struct jobsdir_opts *opts);
/* Creates the folders, recovers running/, indexes results/, claims the files
 * already there and starts watching. Returns 0, or -errno with a message for the
 * user in err (then jobsdir_free is all that is left to do). */
int jobsdir_start(struct jobsdir *jd, char *err, size_t errlen);
/* Graceful stop: no new claims, queued jobs go back to DIR, running jobs get up
 * to shutdown_timeout_ms, then are cancelled (TERM, their kill grace, KILL) and
 * their results written; then cb is called from the loop. Calling it again
 * hurries: the second call cancels running jobs at once, a third kills them
 * without grace (cb is the one given first). */
void jobsdir_shutdown(struct jobsdir *jd, jobsdir_shutdown_cb cb, void *ud);
/* Number of jobs claimed and not finished (queued + running). */
size_t jobsdir_active(const struct jobsdir *jd);
/* Frees jd. It must be idle (never started, or shut down). Its libuv handles
 * are closed: the loop must run once more (uv_run) to finish freeing. */
void jobsdir_free(struct jobsdir *jd);

#endif
