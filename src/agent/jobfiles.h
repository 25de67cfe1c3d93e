/* jobfiles.h - the jobs directory on disk: paths, the agent lock, claiming and
 * moving job files, attempt markers, results and the idempotency index.
 *
 * The layout is described in jobsdir.h and docs/jobs-dir.md. These functions
 * only touch the file system (and libuv's thread pool for result writes);
 * what to do with a job is jobsdir.c's business. */
#ifndef DROVER_AGENT_JOBFILES_H
#define DROVER_AGENT_JOBFILES_H

#include <stddef.h>
#include <uv.h>

struct smap;

/* Paths of one jobs directory. All strings are owned; read them freely. */
struct jobfiles {
  char *dir; /* DIR, without trailing slashes */
  char *running, *results, *logs, *done, *failed, *cancel, *status;
  int lock_fd; /* DIR/.agent.lock, flock()ed while open; -1 before */
};

/* Builds the paths of dir (copied); touches no file. */
void jobfiles_init(struct jobfiles *f, const char *dir);
/* Releases the lock (if taken) and frees the paths. */
void jobfiles_release(struct jobfiles *f);

/* Creates the folders and takes DIR/.agent.lock (our pid written in it).
 * Returns 0, or -errno with a message for the user in err: -EBUSY when
 * another agent holds the lock (the message names its pid). */
int jobfiles_open(struct jobfiles *f, char *err, size_t errlen);

/* Whether name is a job file name: "<something>.json", not a dot-file. */
int jobfiles_is_job_name(const char *name);
/* The job file names in folder (DIR or running/), sorted, into *names.
 * Returns the count (free with jobfiles_list_free), or -errno. */
int jobfiles_list(const char *folder, char ***names);
/* The names in cancel/ (no dot-files, no folders), sorted, as above. */
int jobfiles_list_cancels(struct jobfiles *f, char ***names);
void jobfiles_list_free(char **names, int n);

/* Claims DIR/file by moving it to running/file, never replacing. Returns 0,
 * -EEXIST (a file of that name is still in running/), -ENOENT (gone: another
 * agent took it), or another -errno. */
int jobfiles_claim(struct jobfiles *f, const char *file);
/* Moves running/file back to DIR (a queued job at shutdown), as
 * jobfiles_move_unique names it. Returns the final name (heap) or NULL with
 * errno set. */
char *jobfiles_return(struct jobfiles *f, const char *file);
/* Moves the file at `from` into folder dir_to under name, or "<stem>.N.json"
 * (N = 1, 2, ...) when that is taken. Returns the final name (heap) or NULL
 * with errno set. */
char *jobfiles_move_unique(const char *from, const char *dir_to, const char *name);
/* A file in running/ that is not a job: moves it to failed/ and writes
 * "error: <why>\n" to failed/<final name>.error.txt. Failures are logged. */
void jobfiles_fail(struct jobfiles *f, const char *file, const char *why);

/* Writes dir/name atomically (temporary file and rename) but without fsync:
 * for small advisory files rewritten often. Returns 0 or -errno. */
int jobfiles_write_fast(const char *dir, const char *name, const char *data, size_t len);

/* The attempt marker of running/file: how many times the job was started
 * (0 when there is none). */
unsigned jobfiles_attempt_read(struct jobfiles *f, const char *file);
/* Sets it; returns 0 or -errno. */
int jobfiles_attempt_write(struct jobfiles *f, const char *file, unsigned attempt);
void jobfiles_attempt_clear(struct jobfiles *f, const char *file);

/* If cancel/<id> exists, removes it and returns 1; else returns 0. */
int jobfiles_take_cancel(struct jobfiles *f, const char *id);
/* Whether results/<id>.json exists. */
int jobfiles_has_result(struct jobfiles *f, const char *id);

/* Whether running/file (job id) already has its result: results/<id>.json
 * written after the file was claimed, as when the agent died between writing
 * a result and filing the job. Sets *succeeded from the result's status. */
int jobfiles_finished_before_restart(struct jobfiles *f, const char *id, const char *file,
                                     int *succeeded);
/* Moves running/file to done/ (succeeded) or failed/ and drops its attempt
 * marker. Errors are logged. */
void jobfiles_file_finished(struct jobfiles *f, const char *file, int succeeded);

typedef void (*jobfiles_finish_cb)(void *ud);
/* Finishes running/file: writes doc (len bytes, taken: freed here) to
 * results/<id>.json atomically and fsynced on libuv's thread pool, then (on
 * the loop) moves the file to done/ (succeeded) or failed/ and drops its
 * attempt marker, then calls cb(ud). Errors are logged; cb is always called, from
 * a later loop turn or, if the work cannot be queued, before this returns. */
void jobfiles_finish(struct jobfiles *f, uv_loop_t *loop, const char *id, const char *file,
                     char *doc, size_t len, int succeeded, jobfiles_finish_cb cb, void *ud);

/* Fills idem (idempotency key -> id of the succeeded job, a heap string)
 * from the results already in results/; keys already there are kept. */
void jobfiles_load_index(struct jobfiles *f, struct smap *idem);

#endif
