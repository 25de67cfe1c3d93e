/* inreader.c - a thread that reads drover's stdin for the loop (see
 * inreader.h).
 *
 * Why a thread and not uv_pipe/uv_tty on fd 0: those set O_NONBLOCK on the
 * file description, which the shell and the other commands of a script
 * share; why not uv_fs_read on the thread pool: a read blocked on a
 * terminal would hold a pool thread that libuv joins at exit. A thread of
 * our own can be cancelled in its read() and joined (outwriter.c does the
 * same for stdout). */
#include "cli/inreader.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

#define CHUNK (64 * 1024)

struct inreader {
  uv_loop_t *loop;
  uv_async_t async;
  inreader_cb on_chunk;
  void *ud;
  int fd;
  pthread_t thread;
  int joined;

  /* Shared with the thread, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int want;  /* the loop wants a chunk */
  int ready; /* a chunk (or the end) waits for the loop */
  ssize_t len;
  int err;
  int quit;
  int closed; /* inreader_close: no more callbacks */
  char buf[CHUNK];
};

static void *reader_main(void *arg)
{
  struct inreader *r = arg;
  int old;

  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->want && !r->quit)
      pthread_cond_wait(&r->cv, &r->mu);
    if (r->quit)
      break;
    r->want = 0;
    pthread_mutex_unlock(&r->mu);

    ssize_t n;
    int err = 0;
    for (;;) {
      /* Cancellation only here, where the thread holds nothing. */
      pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
      n = read(r->fd, r->buf, sizeof(r->buf));
      err = errno;
      if (n < 0 && err == EAGAIN) {
        /* O_NONBLOCK set by someone sharing the description. */
        struct pollfd p = {r->fd, POLLIN, 0};
        poll(&p, 1, -1);
      }
      pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
      if (n < 0 && (err == EINTR || err == EAGAIN))
        continue;
      break;
    }

    pthread_mutex_lock(&r->mu);
    r->len = n < 0 ? 0 : n;
    r->err = n < 0 ? -err : 0;
    r->ready = 1;
    uv_async_send(&r->async);
    if (n <= 0)
      break; /* the end: nothing more to read */
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static void on_async(uv_async_t *a)
{
  struct inreader *r = a->data;
  pthread_mutex_lock(&r->mu);
  int ready = r->ready && !r->closed;
  r->ready = 0;
  size_t len = (size_t)r->len;
  int err = r->err;
  pthread_mutex_unlock(&r->mu);
  /* The thread waits for `want` before it touches buf again. */
  if (ready)
    r->on_chunk(r, r->buf, len, err, r->ud);
}

static void on_closed(uv_handle_t *h)
{
  struct inreader *r = h->data;
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}

int inreader_new(uv_loop_t *loop, int fd, inreader_cb on_chunk, void *ud, struct inreader **out)
{
  struct inreader *r = xcalloc(1, sizeof(*r));
  sigset_t all, old;
  int rc;

  r->loop = loop;
  r->fd = fd;
  r->on_chunk = on_chunk;
  r->ud = ud;
  r->want = 1;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  if ((rc = uv_async_init(loop, &r->async, on_async)) < 0) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
    return rc;
  }
  r->async.data = r;
  /* Signals are the loop's (uv_signal_t): the thread takes none. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = -pthread_create(&r->thread, NULL, reader_main, r);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc < 0) {
    r->joined = 1;
    uv_close((uv_handle_t *)&r->async, on_closed);
    return rc;
  }
  *out = r;
  return 0;
}

void inreader_more(struct inreader *r)
{
  pthread_mutex_lock(&r->mu);
  r->want = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

void inreader_close(struct inreader *r)
{
  if (!r)
    return;
  pthread_mutex_lock(&r->mu);
  r->quit = 1;
  r->closed = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  /* A read blocked on a terminal nobody types into would never return:
   * cancel it (read and poll are cancellation points; elsewhere the thread
   * has cancellation disabled and sees quit). */
  if (!r->joined) {
    pthread_cancel(r->thread);
    pthread_join(r->thread, NULL);
    r->joined = 1;
  }
  uv_close((uv_handle_t *)&r->async, on_closed);
}
