/* jobsdir.h - the stand-alone agent: runs the job files dropped into a folder.
 *
 * Layout of the jobs directory DIR (subfolders are created as needed):
 *   DIR/<name>.json         new jobs; dot-files and other names are ignored, so a
 *                           writer can write "x.json.tmp" and rename it to "x.json"
 *   DIR/running/<name>      claimed (queued or running); the attempt marker (the
 *                           attempt number, written just before the job's process is
 *                           made, then with its pid, start time and boot id once it
 *                           exists) is the xattr user.drover.attempt of the file or,
 *                           where there are no user xattrs, a sidecar <name>.attempt
 *   DIR/results/<id>.json   the result document (written atomically)
 *   DIR/logs/<id>.log       "<RFC 3339 time> out|err|sys <text>" per output line
 *   DIR/done/<name>         job files that succeeded (or were deduplicated)
 *   DIR/failed/<name>       everything else; files that are not jobs get
 *                           <name>.error.txt: malformed ones, links, FIFOs, devices,
 *                           folders, files over max_job_size, names too long to take
 *                           the agent's suffixes (filed under a shortened name)
 *   DIR/cancel/<id>         create it to cancel job <id>, queued or running; a cancel
 *                           for an id not seen yet is kept and applies when a job with
 *                           that id is claimed; one for a finished job is removed
 *   DIR/status/<id>.json    {"state":"queued"} while queued; then, from the first tick
 *                           (100 ms) of its run, state "running", attempt and the
 *                           latest progress; removed when the job's result is written
 *                           ("finishing" with the error while it cannot be)
 *
 * New files are noticed through inotify (uv_fs_event) with a rescan of the
 * folder on any event, and a slow rescan every 2 s as a safety net. A log line
 * is one output line; lines over 64 KiB are logged in 64 KiB parts. Logs are
 * buffered (64 KiB, 100 ms): a crash of the agent loses at most that much.
 *
 * One agent per folder (DIR/.agent.lock is flock()ed; a second agent is refused
 * with an error naming the first one's pid). A job file left in
 * running/ by a crashed agent is run again at the next start: as attempt 1 when it
 * never started, attempt 2 when it had (after what is left of attempt 1's process
 * group was killed); a job that was already running as attempt 2 fails with the
 * reason; a file the agent died reading twice goes to failed/. A job file leaves
 * running/ only once its result is on disk: a result that cannot be written is
 * retried (100 ms, doubling to 30 s) and no new file is claimed meanwhile. On
 * shutdown, queued jobs go back to DIR untouched. */
#ifndef DROVER_AGENT_JOBSDIR_H
#define DROVER_AGENT_JOBSDIR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct jobsdir;

#define JOBSDIR_DEFAULT_MAX_JOB_SIZE (1024 * 1024)

struct jobsdir_opts {
  const char *dir;              /* the jobs directory (copied) */
  unsigned slots;               /* jobs at once; 0: number of CPUs */
  uint64_t shutdown_timeout_ms; /* how long shutdown waits for running jobs */
  uint64_t max_job_size;        /* bigger job files are refused; 0: the default, 1 MiB */
  uint64_t max_log_size;        /* per job log: output lines past it are dropped; 0: none */
  struct sbx *sandbox;          /* jobs' cgroups and isolation (core_opts); NULL: none */
  const char *docker_host;      /* container jobs' engine (copied); NULL: the default */
};

typedef void (*jobsdir_shutdown_cb)(struct jobsdir *jd, void *ud);
typedef void (*jobsdir_close_cb)(void *ud);

struct jobsdir *jobsdir_new(uv_loop_t *loop, const struct jobsdir_opts *opts);
struct tools_policy;
/* Before jobsdir_start: what its tool jobs may do (core_set_tools). Not
 * copied: p must outlive jd. */
void jobsdir_set_tools(struct jobsdir *jd, const struct tools_policy *p);

/* Creates the folders, recovers running/, indexes results/, claims the files
 * already there and starts watching. Returns 0, or -errno with a message for the
 * user in err (then jobsdir_close is all that is left to do). */
int jobsdir_start(struct jobsdir *jd, char *err, size_t errlen);
/* Graceful stop: no new claims, queued jobs go back to DIR, running jobs get up
 * to shutdown_timeout_ms, then are cancelled (TERM, their kill grace, KILL) and
 * their results written; then cb is called from the loop. Results that cannot
 * be written are retried until shutdown_timeout_ms or a second call, then
 * given up (their files stay in running/ and run again at the next start).
 * Calling it again hurries: the second call cancels running jobs at once, a
 * third kills them without grace (cb is the one given first). */
void jobsdir_shutdown(struct jobsdir *jd, jobsdir_shutdown_cb cb, void *ud);
/* Number of jobs claimed and not finished (queued + running). */
size_t jobsdir_active(const struct jobsdir *jd);
/* Closes jd's libuv handles and frees it once the last one is closed, then
 * calls cb(ud) (cb may be NULL) from the loop: the loop must run (uv_run) for
 * that. jd must be idle (never started, or shut down) and is not to be used
 * after this call. */
void jobsdir_close(struct jobsdir *jd, jobsdir_close_cb cb, void *ud);

#endif
