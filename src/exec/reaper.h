/* reaper.h - one SIGCHLD watcher per loop, shared by every exec on it.
 * Each registered entry is poked on every SIGCHLD and does its own wait4 on
 * its own process group. After the entries, the watcher reaps every other
 * child of the process that has exited (a job's orphan that left its group
 * with setsid and was reparented to us, the subreaper): a zombie whose pid
 * or process group is an entry's group is left to that entry. */
#ifndef DROVER_EXEC_REAPER_H
#define DROVER_EXEC_REAPER_H

#include <uv.h>

struct reaper;
struct reaper_entry;

/* Called on every SIGCHLD of the loop. It may reaper_remove() its own entry
 * (and add new ones); it must not remove other entries. */
typedef void (*reaper_cb)(struct reaper_entry *en);

struct reaper_entry {
  struct reaper_entry *next, *prev;
  struct reaper *owner;
  reaper_cb cb;
  int pgid; /* the group this entry reaps; set by the caller, > 0 */
};

/* Registers en (en->cb and en->pgid set by the caller) on loop, starting the
 * loop's SIGCHLD watcher when there is none. Returns 0 or -errno. */
int reaper_add(uv_loop_t *loop, struct reaper_entry *en);
/* Unregisters en. With the last entry, the exited children that are left
 * are reaped; the watcher is closed when no child is left, and otherwise
 * stays open but unreferenced (it does not keep the loop running) to reap
 * them as they exit, until reaper_loop_done. */
void reaper_remove(struct reaper_entry *en);
/* Closes the loop's watcher if it has no entries (before uv_loop_close). */
void reaper_loop_done(uv_loop_t *loop);

#endif
