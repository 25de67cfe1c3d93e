/* inreader.c - a thread that reads drover's stdin for the loop (see
 * inreader.h).
 *
 * Why a thread and not uv_pipe/uv_tty on fd 0: those set O_NONBLOCK on the
 * file description, which the shell and the other commands of a script
 * share; why not uv_fs_read on the thread pool: a read blocked on a
 * terminal would hold a pool thread that libuv joins at exit. The thread
 * reads only once poll() says fd 0 is readable, and polls a pipe of its own
 * too, which inreader_close writes to: so it is never stuck in a read when
 * it must stop, and needs no pthread_cancel (whose unwinding leaves
 * AddressSanitizer's marks on the thread's stack behind). */
#include "cli/inreader.h"

#include <errno.h>
#include <fcntl.h>
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
  int wake[2]; /* inreader_close writes to wake[1] */
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

/* Waits until fd can be read without blocking, or the loop wants us to
 * stop (1). */
static int wait_readable(struct inreader *r)
{
  for (;;) {
    struct pollfd p[2] = {{r->fd, POLLIN, 0}, {r->wake[0], POLLIN, 0}};
    int n = poll(p, 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 || p[1].revents)
      return 1;
    if (p[0].revents)
      return 0;
  }
}

static void *reader_main(void *arg)
{
  struct inreader *r = arg;

  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->want && !r->quit)
      pthread_cond_wait(&r->cv, &r->mu);
    if (r->quit)
      break;
    r->want = 0;
    pthread_mutex_unlock(&r->mu);

    ssize_t n = 0;
    int err = 0, stop = 0;
    for (;;) {
      if ((stop = wait_readable(r)))
        break;
      n = read(r->fd, r->buf, sizeof(r->buf));
      err = errno;
      /* EAGAIN: another reader of a shared description took it first. */
      if (n < 0 && (err == EINTR || err == EAGAIN))
        continue;
      break;
    }

    pthread_mutex_lock(&r->mu);
    if (stop)
      break;
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
  close(r->wake[0]);
  close(r->wake[1]);
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
  if (pipe2(r->wake, O_CLOEXEC) < 0) {
    rc = -errno;
    free(r);
    return rc;
  }
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  if ((rc = uv_async_init(loop, &r->async, on_async)) < 0) {
    close(r->wake[0]);
    close(r->wake[1]);
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
  if (!r->joined) {
    /* Wakes a poll that waits on fd 0 (a terminal nobody types into). */
    ssize_t w;
    do
      w = write(r->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(r->thread, NULL);
    r->joined = 1;
  }
  uv_close((uv_handle_t *)&r->async, on_closed);
}
