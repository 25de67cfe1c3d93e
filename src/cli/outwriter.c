/* outwriter.c - a writer thread for drover run's stdout and stderr (see
 * outwriter.h).
 *
 * Why a thread of our own and not libuv's: uv_fs_write would work the same
 * on libuv's thread pool, but a write blocked on a reader that never reads
 * would hold a pool thread forever, and libuv may join its pool at exit; a
 * thread we own can be cancelled in its write() and joined. Why not
 * uv_pipe/uv_tty on fds 1 and 2: those set O_NONBLOCK on the file
 * description, which is shared with the shell and whatever else writes to
 * the terminal. */
#include "cli/outwriter.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/util.h"

/* Small writes are gathered into chunks of at least this much room, so a
 * job that writes a line at a time costs one write() per chunk, not per
 * line, whenever the reader is behind. */
#define CHUNK_MIN (16 * 1024)
/* Written chunks are kept for the next writes (up to SPARE_MAX of at most
 * SPARE_CAP bytes): fresh memory for every chunk costs a page fault per
 * 4 KiB, which at full speed is as much as copying the bytes in. */
#define SPARE_MAX 8
#define SPARE_CAP (256 * 1024)

struct chunk {
  struct chunk *next;
  int fd;
  size_t len, cap;
  char data[];
};

struct outwriter {
  uv_loop_t *loop;
  uv_async_t async;
  outwriter_cb on_change;
  void *ud;
  size_t high, low;
  pthread_t thread;
  int joined;

  /* Shared with the thread, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct chunk *head, *tail;
  struct chunk *inflight; /* taken by the thread, being written */
  struct chunk *spare;    /* written chunks kept for reuse */
  unsigned nspare;
  size_t queued;    /* bytes in the list and in flight */
  int64_t since_us; /* when the write in flight started; 0: none */
  int err[3];       /* by fd */
  int full, quit, discard, waiting;
  int idle_wanted; /* the loop asked outwriter_idle and got 0: tell it */
};

/* One chunk, whole. Cancellation is enabled only around the calls that
 * block on the reader (write, poll), so the thread never dies holding the
 * mutex or between the queue's updates. */
static int write_chunk(const struct chunk *c)
{
  size_t off = 0;
  int old;

  while (off < c->len) {
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    ssize_t n = write(c->fd, c->data + off, c->len - off);
    int err = errno;
    if (n < 0 && err == EAGAIN) {
      /* Someone else set O_NONBLOCK on a description we share (the
       * terminal): wait for room rather than lose output. */
      struct pollfd p = {c->fd, POLLOUT, 0};
      poll(&p, 1, -1);
    }
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    if (n < 0) {
      if (err == EINTR || err == EAGAIN)
        continue;
      return -err;
    }
    off += (size_t)n;
  }
  return 0;
}

/* Keeps c for reuse, or frees it. Under mu. */
static void chunk_done(struct outwriter *w, struct chunk *c)
{
  if (w->nspare < SPARE_MAX && c->cap <= SPARE_CAP) {
    c->next = w->spare;
    w->spare = c;
    w->nspare++;
  } else {
    free(c);
  }
}

/* A chunk for fd with room for len bytes: a spare one that is big enough,
 * else a new one. Under mu. */
static struct chunk *chunk_get(struct outwriter *w, int fd, size_t len)
{
  struct chunk **pp = &w->spare, *c;
  while ((c = *pp) && c->cap < len)
    pp = &c->next;
  if (c) {
    *pp = c->next;
    w->nspare--;
  } else {
    size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
    c = xmalloc(sizeof *c + cap);
    c->cap = cap;
  }
  c->next = NULL;
  c->fd = fd;
  c->len = 0;
  return c;
}

/* Drops the queued chunks for fd (all fds when fd is 0). Under mu. */
static void drop_queued(struct outwriter *w, int fd)
{
  struct chunk **pp = &w->head, *c;
  w->tail = NULL;
  while ((c = *pp)) {
    if (fd == 0 || c->fd == fd) {
      *pp = c->next;
      w->queued -= c->len;
      free(c);
    } else {
      w->tail = c;
      pp = &c->next;
    }
  }
}

static void *writer_main(void *arg)
{
  struct outwriter *w = arg;
  int old;

  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->quit) {
      w->waiting = 1;
      pthread_cond_wait(&w->cv, &w->mu);
      w->waiting = 0;
    }
    if (w->quit)
      break;
    struct chunk *c = w->head;
    w->head = c->next;
    if (!w->head)
      w->tail = NULL;
    w->inflight = c;
    w->since_us = mono_us();
    pthread_mutex_unlock(&w->mu);

    int rc = write_chunk(c);

    pthread_mutex_lock(&w->mu);
    w->inflight = NULL;
    w->since_us = 0;
    w->queued -= c->len;
    int notify = 0;
    if (rc < 0 && !w->err[c->fd]) {
      w->err[c->fd] = rc;
      drop_queued(w, c->fd);
      notify = 1;
    }
    chunk_done(w, c);
    if (w->full && w->queued <= w->low) {
      w->full = 0;
      notify = 1;
    }
    /* Only a loop that waits for the drain hears of it: at full speed the
     * queue empties after nearly every chunk, and a wakeup each time would
     * cost the loop more than the bytes. */
    if (!w->head && w->idle_wanted) {
      w->idle_wanted = 0;
      notify = 1;
    }
    if (notify)
      uv_async_send(&w->async);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void on_async(uv_async_t *a)
{
  struct outwriter *w = a->data;
  if (!w->discard && w->on_change)
    w->on_change(w, w->ud);
}

static void on_closed(uv_handle_t *h)
{
  struct outwriter *w = h->data;
  while (w->spare) {
    struct chunk *c = w->spare;
    w->spare = c->next;
    free(c);
  }
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}

int outwriter_new(uv_loop_t *loop, size_t high, size_t low, outwriter_cb on_change, void *ud,
                  struct outwriter **out)
{
  struct outwriter *w = xcalloc(1, sizeof *w);
  sigset_t all, old;
  int rc;

  w->loop = loop;
  w->high = high;
  w->low = low;
  w->on_change = on_change;
  w->ud = ud;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  if ((rc = uv_async_init(loop, &w->async, on_async)) < 0)
    goto fail;
  w->async.data = w;
  /* Signals are the loop's business (uv_signal_t): the thread takes none. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = -pthread_create(&w->thread, NULL, writer_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc < 0) {
    w->joined = 1;
    uv_close((uv_handle_t *)&w->async, on_closed); /* frees w */
    return rc;
  }
  *out = w;
  return 0;

fail:
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
  return rc;
}

int outwriter_writev(struct outwriter *w, int fd, const struct iovec *iov, size_t n)
{
  int full;
  size_t len = 0;

  if (fd != 1 && fd != 2)
    return 0;
  for (size_t i = 0; i < n; i++)
    len += iov[i].iov_len;
  pthread_mutex_lock(&w->mu);
  if (w->discard || w->err[fd] || len == 0) {
    full = w->full;
    pthread_mutex_unlock(&w->mu);
    return full;
  }
  /* The pieces go into one chunk: the tail when it has room, else a new
   * one. Copying under the lock is fine: the thread holds it only to take
   * a chunk, never while it writes. */
  struct chunk *c = w->tail;
  if (!c || c->fd != fd || c->cap - c->len < len) {
    c = chunk_get(w, fd, len);
    if (w->tail)
      w->tail->next = c;
    else
      w->head = c;
    w->tail = c;
  }
  for (size_t i = 0; i < n; i++) {
    memcpy(c->data + c->len, iov[i].iov_base, iov[i].iov_len);
    c->len += iov[i].iov_len;
  }
  w->queued += len;
  if (w->queued > w->high)
    w->full = 1;
  full = w->full;
  if (w->waiting)
    pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return full;
}

int outwriter_write(struct outwriter *w, int fd, const void *data, size_t len)
{
  struct iovec iov = {(void *)data, len};
  return outwriter_writev(w, fd, &iov, 1);
}

int outwriter_full(struct outwriter *w)
{
  pthread_mutex_lock(&w->mu);
  int full = w->full;
  pthread_mutex_unlock(&w->mu);
  return full;
}

int outwriter_idle(struct outwriter *w)
{
  pthread_mutex_lock(&w->mu);
  int idle = w->discard || (!w->head && !w->inflight);
  if (!idle)
    w->idle_wanted = 1;
  pthread_mutex_unlock(&w->mu);
  return idle;
}

int outwriter_error(struct outwriter *w, int fd)
{
  if (fd != 1 && fd != 2)
    return 0;
  pthread_mutex_lock(&w->mu);
  int err = w->err[fd];
  pthread_mutex_unlock(&w->mu);
  return err;
}

uint64_t outwriter_blocked_ms(struct outwriter *w)
{
  pthread_mutex_lock(&w->mu);
  int64_t since = w->since_us;
  pthread_mutex_unlock(&w->mu);
  return since ? (uint64_t)(mono_us() - since) / 1000 : 0;
}

void outwriter_discard(struct outwriter *w)
{
  if (w->joined)
    return;
  pthread_mutex_lock(&w->mu);
  w->discard = 1;
  w->quit = 1;
  drop_queued(w, 0);
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  /* A write blocked on a reader that never reads would never return:
   * cancel it (write and poll are cancellation points; elsewhere the
   * thread has cancellation disabled and sees quit). */
  pthread_cancel(w->thread);
  pthread_join(w->thread, NULL);
  w->joined = 1;
  free(w->inflight); /* the chunk a cancelled write left behind */
  w->inflight = NULL;
  w->full = 0;
}

void outwriter_close(struct outwriter *w)
{
  outwriter_discard(w);
  uv_close((uv_handle_t *)&w->async, on_closed);
}
