/* reaper.c - the per-loop SIGCHLD watcher (see reaper.h). */
#include "exec/reaper.h"

#include <signal.h>
#include <stdlib.h>

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

static void on_sigchld(uv_signal_t *h, int signum)
{
  struct reaper *rp = h->data;
  struct reaper_entry *en = rp->entries, *next;

  /* next is taken before the call: an entry may remove itself. If it was the
   * last one, rp is closing but still valid until its close callback. */
  for (; en; en = next) {
    next = en->next;
    en->cb(en);
  }
}

static void on_closed(uv_handle_t *h)
{
  free(h->data);
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
    /* The watcher stays referenced: a job that closed all its pipes and has
     * no timeout is still something the loop waits for. It is closed with
     * its last entry. */
    rp->next = registry;
    registry = rp;
  }
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
    for (struct reaper **pp = &registry; *pp; pp = &(*pp)->next)
      if (*pp == rp) {
        *pp = rp->next;
        break;
      }
    uv_close((uv_handle_t *)&rp->sig, on_closed);
  }
}
