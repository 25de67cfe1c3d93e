/* jobfiles.h - the jobs directory on disk: paths, the agent lock, claiming and
 * moving job files, attempt markers, results and the idempotency index.
 *
 * The layout is described in jobsdir.h and docs/jobs-dir.md. These functions
 * only touch the file system (and libuv's thread pool for result writes);
 * what to do with a job is jobsdir.c's business. */
#ifndef DROVER_AGENT_JOBFILES_H
#define DROVER_AGENT_JOBFILES_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/core.h"
#include "base/proc.h"
#include "base/util.h"

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

/* Creates the folders, takes DIR/.agent.lock (our pid written in it; never
 * through a symbolic link) and removes the temporary files of atomic writes
 * that a crash left in results/, status/, failed/ and running/.
 * Returns 0, or -errno with a message for the user in err: -EBUSY when
 * another agent holds the lock (the message names its pid). */
int jobfiles_open(struct jobfiles *f, char *err, size_t errlen);

/* Whether name is a job file name: "<something>.json", not a dot-file. */
int jobfiles_is_job_name(const char *name);

/* The longest job file name the agent takes: every name it derives from it
 * (".error.txt", the ".attempt" and ".reads" sidecars, the ".N" of a move
 * that must not replace, the atomic writer's temporary suffix) then fits in
 * NAME_MAX. A longer name is refused (see jobfiles_check). */
#define JOBFILES_NAME_MAX (255 - 5 - 10 - WRITE_TMP_SUFFIX_MAX)

/* One directory entry with a job file name. type is the DT_* of the entry
 * (DT_UNKNOWN when the file system does not say). */
struct jobfiles_entry {
  char *name;
  unsigned char type;
};

/* The job file names in folder (DIR or running/), of every type (links,
 * FIFOs and folders too: jobfiles_check sorts them out), sorted, into
 * *entries. Returns the count (free with jobfiles_list_free), or -errno. */
int jobfiles_list(const char *folder, struct jobfiles_entry **entries);
void jobfiles_list_free(struct jobfiles_entry *entries, int n);
/* The names in cancel/ (no dot-files, no folders), sorted. Returns the count
 * (free with jobfiles_names_free), or -errno. */
int jobfiles_list_cancels(struct jobfiles *f, char ***names);
void jobfiles_names_free(char **names, int n);

/* Decides whether the entry e of folder (DIR or running/) may be taken as a
 * job file, from its name and type alone, without opening it: a name longer
 * than JOBFILES_NAME_MAX, a symbolic link, FIFO, socket, device or folder is
 * refused. Returns 0 when it may be taken, or 1 with the reason in why
 * ("job file 'DIR/x.json' is a symbolic link; ..."). */
int jobfiles_check(struct jobfiles *f, const char *folder, const struct jobfiles_entry *e,
                   char *why, size_t len);

/* Claims DIR/file by moving it to running/file, never replacing. Returns 0,
 * -EEXIST (a file of that name is still in running/), -ENOENT (gone: another
 * agent took it), or another -errno. */
int jobfiles_claim(struct jobfiles *f, const char *file);
/* Reads running/file as a job file: a regular file (never through a link,
 * never waiting on a FIFO) of at most max bytes, read with a bounded read.
 * Returns 0 with the text in *text (heap, NUL-terminated, caller frees) and
 * its length in *len, or -errno with a message for the user in why. */
int jobfiles_read(struct jobfiles *f, const char *file, size_t max, char **text, size_t *len,
                  char *why, size_t whylen);
/* Moves running/file back to DIR (a queued job at shutdown), as
 * jobfiles_move_unique names it. Returns the final name (heap) or NULL with
 * errno set. */
char *jobfiles_return(struct jobfiles *f, const char *file);
/* Moves the file at `from` into folder dir_to under name, or "<stem>.N.json"
 * (N = 1, 2, ... 9999) when that is taken. Returns the final name (heap) or
 * NULL with errno set. */
char *jobfiles_move_unique(const char *from, const char *dir_to, const char *name);
/* A file in running/ that is not a job: jobfiles_refuse from running/. */
void jobfiles_fail(struct jobfiles *f, const char *file, const char *why);
/* Refuses folder/name (folder: DIR or running/): the entry itself (a link,
 * not its target) moves to failed/, under a shortened name when name is
 * longer than JOBFILES_NAME_MAX (its first bytes, a hash of the whole name,
 * ".json"), and "error: <why>\n" is written to failed/<final name>.error.txt.
 * Markers are dropped. Failures are logged. */
void jobfiles_refuse(struct jobfiles *f, const char *folder, const char *name, const char *why);

/* Writes dir/name atomically (temporary file and rename) but without fsync:
 * for small advisory files rewritten often. Returns 0 or -errno. */
int jobfiles_write_fast(const char *dir, const char *name, const char *data, size_t len);

/* The attempt marker of a file in running/: how many times the job was
 * started and, once the last attempt's process exists, what identifies its
 * process group after a restart (core.h; pgid 0: not known). Reads it (all
 * zero when there is none). */
void jobfiles_attempt_read(struct jobfiles *f, const char *file, struct core_attempt *a);
/* Sets it (a->pgid 0: the attempt number alone); returns 0 or -errno. */
int jobfiles_attempt_write(struct jobfiles *f, const char *file, const struct core_attempt *a);
/* Drops the attempt and read markers of running/file. */
void jobfiles_attempt_clear(struct jobfiles *f, const char *file);

/* The read marker of a file in running/: how many times a restarted agent
 * began to read it (0 when there is none). Set before such a read, cleared
 * once the file was read and parsed: one that is still there at the next
 * start means the agent died reading it. */
unsigned jobfiles_reads_read(struct jobfiles *f, const char *file);
int jobfiles_reads_write(struct jobfiles *f, const char *file, unsigned reads);
void jobfiles_reads_clear(struct jobfiles *f, const char *file);

/* If cancel/<id> exists, removes it and returns 1; else returns 0. */
int jobfiles_take_cancel(struct jobfiles *f, const char *id);
/* Whether results/<id>.json exists. */
int jobfiles_has_result(struct jobfiles *f, const char *id);

/* Whether running/file (job id) already has its result: results/<id>.json
 * written after the file was claimed, as when the agent died between writing
 * a result and filing the job. Sets *succeeded from the result's status. */
int jobfiles_finished_before_restart(struct jobfiles *f, const char *id, const char *file,
                                     int *succeeded);
/* Moves running/file to done/ (succeeded) or failed/ and drops its markers.
 * Errors are logged. */
void jobfiles_file_finished(struct jobfiles *f, const char *file, int succeeded);

/* rc: 0 when the result is on disk (and the file moved on), else -errno of
 * the result's write (the file is still in running/). */
typedef void (*jobfiles_finish_cb)(void *ud, int rc);
/* Finishes running/file: writes doc (len bytes; the caller keeps it and must
 * not touch it until cb) to results/<id>.json atomically and durably
 * (write_file_atomic) on libuv's thread pool; only when that succeeded, on
 * the loop, moves the file to done/ (succeeded) or failed/ and drops its
 * markers. Then calls cb(ud, rc), from a later loop turn or, if the work
 * cannot be queued, before this returns. A failed write leaves everything
 * as it was: the caller may try again. */
void jobfiles_finish(struct jobfiles *f, uv_loop_t *loop, const char *id, const char *file,
                     const char *doc, size_t len, int succeeded, jobfiles_finish_cb cb, void *ud);

/* Fills idem (idempotency key -> id of the succeeded job, a heap string)
 * from the results already in results/; keys already there are kept. */
void jobfiles_load_index(struct jobfiles *f, struct smap *idem);

#endif
