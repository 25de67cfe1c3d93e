/* reaper.h - one SIGCHLD watcher per loop, shared by every exec on it.
 * Each registered entry is poked on every SIGCHLD and does its own wait4 on
 * its own process group: nothing here calls wait on a pid it does not own,
 * so libuv's uv_spawn children are left alone. */
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
};

/* Registers en (en->cb set by the caller) on loop, starting the loop's
 * SIGCHLD watcher when it is the first. Returns 0 or -errno. */
int reaper_add(uv_loop_t *loop, struct reaper_entry *en);
/* Unregisters en; the watcher is closed with the last entry, so an idle loop
 * has no handle of ours left open. */
void reaper_remove(struct reaper_entry *en);

#endif
