/* reaper.c - the per-loop SIGCHLD watcher (see reaper.h). */
#include "exec/reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

struct reaper {
  struct reaper *next; /* in the registry */
  uv_loop_t *loop;
  uv_signal_t sig;
  struct reaper_entry *entries;
};

/* The registry of watchers by loop. drover runs one loop per process, so this
 * holds one element; keying by loop keeps tests with several loops honest.
 * It is the only process-wide state of the exec module, and it has to be:
 * SIGCHLD is process-wide too. */
static struct reaper *registry;

/* The process group of pid from /proc/<pid>/stat (a zombie still has one),
 * or -1. The command name in parentheses may hold anything, ')' included:
 * the fields start after the last ')'. */
static int pgid_of(pid_t pid)
{
  char path[64], buf[512];
  int fd, pgid = -1;
  ssize_t n;

  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return -1;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  int ppid;
  char state;
  if (!p || sscanf(p + 1, " %c %d %d", &state, &ppid, &pgid) != 3)
    return -1;
  return pgid;
}

static int owned(const struct reaper *rp, pid_t pid)
{
  int pgid = -2;
  for (const struct reaper_entry *en = rp->entries; en; en = en->next) {
    if (en->pgid == pid)
      return 1;
    if (pgid == -2)
      pgid = pgid_of(pid);
    if (en->pgid == pgid)
      return 1;
  }
  return 0;
}

/* Reaps the exited children no entry owns. Returns 1 while the process
 * still has children (alive, or exited and left to an entry), 0 when it has
 * none at all. waitid with WNOWAIT looks without reaping; it always shows
 * the same zombie first, so the sweep stops at one that an entry owns: that
 * one exited after its entry's own pass, and its SIGCHLD brings the next
 * sweep. */
static int sweep(struct reaper *rp)
{
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
      if (errno == EINTR)
        continue;
      return errno == ECHILD ? 0 : 1;
    }
    if (si.si_pid == 0 || owned(rp, si.si_pid))
      return 1;
    while (waitpid(si.si_pid, NULL, WNOHANG) < 0 && errno == EINTR)
      ;
  }
}

static void on_closed(uv_handle_t *h)
{
  free(h->data);
}

static void close_watcher(struct reaper *rp)
{
  for (struct reaper **pp = &registry; *pp; pp = &(*pp)->next)
    if (*pp == rp) {
      *pp = rp->next;
      break;
    }
  uv_close((uv_handle_t *)&rp->sig, on_closed);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
  struct reaper *rp = h->data;
  struct reaper_entry *en = rp->entries, *next;

  /* next is taken before the call: an entry may remove itself. If it was the
   * last one, the watcher may be closing (no child left) but rp is valid
   * until its close callback. */
  for (; en; en = next) {
    next = en->next;
    en->cb(en);
  }
  if (uv_is_closing((uv_handle_t *)h))
    return;
  /* With no entry left, this watcher lives only for orphans: it goes with
   * the last of them. */
  if (!sweep(rp) && !rp->entries)
    close_watcher(rp);
}

int reaper_add(uv_loop_t *loop, struct reaper_entry *en)
{
  struct reaper *rp;
  int rc;

  for (rp = registry; rp && rp->loop != loop; rp = rp->next)
    ;
  if (!rp) {
    rp = xcalloc(1, sizeof *rp);
    rp->loop = loop;
    if ((rc = uv_signal_init(loop, &rp->sig)) < 0) {
      free(rp);
      return rc;
    }
    rp->sig.data = rp;
    if ((rc = uv_signal_start(&rp->sig, on_sigchld, SIGCHLD)) < 0) {
      uv_close((uv_handle_t *)&rp->sig, on_closed);
      return rc;
    }
    rp->next = registry;
    registry = rp;
  }
  /* Referenced while it has entries: a job that closed all its pipes and
   * has no timeout is still something the loop waits for. */
  uv_ref((uv_handle_t *)&rp->sig);
  en->owner = rp;
  en->prev = NULL;
  en->next = rp->entries;
  if (rp->entries)
    rp->entries->prev = en;
  rp->entries = en;
  return 0;
}

void reaper_remove(struct reaper_entry *en)
{
  struct reaper *rp = en->owner;

  if (!rp)
    return;
  if (en->prev)
    en->prev->next = en->next;
  else
    rp->entries = en->next;
  if (en->next)
    en->next->prev = en->prev;
  en->next = en->prev = NULL;
  en->owner = NULL;

  if (!rp->entries) {
    /* Orphans that left the job's group (setsid) outlive it: keep watching
     * for them, without keeping the loop alive, so that they are reaped
     * when they exit instead of piling up as zombies. */
    if (sweep(rp))
      uv_unref((uv_handle_t *)&rp->sig);
    else
      close_watcher(rp);
  }
}

void reaper_loop_done(uv_loop_t *loop)
{
  struct reaper *rp;

  for (rp = registry; rp && rp->loop != loop; rp = rp->next)
    ;
  if (rp && !rp->entries)
    close_watcher(rp);
}
