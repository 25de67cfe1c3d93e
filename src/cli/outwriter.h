/* outwriter.h - drover run's own stdout and stderr, written by a thread of
 * their own so that the loop never blocks on a slow or stopped reader.
 *
 * The loop queues copies of the job's bytes; the thread writes them with
 * plain blocking write()s (fds 1 and 2 stay as the user's shell made them:
 * O_NONBLOCK would change the file description the shell shares), in the
 * order they were queued across both fds. The queue is bounded by the
 * caller: outwriter_write says when it is above high water, and on_change
 * tells the loop when it fell below low water again. */
#ifndef DROVER_CLI_OUTWRITER_H
#define DROVER_CLI_OUTWRITER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

struct outwriter;

/* Called on the loop after the writer's state changed: the queue fell below
 * low water, became empty after outwriter_idle returned 0, or a write
 * failed. Check what you need with the getters below; several changes may
 * come as one call. */
typedef void (*outwriter_cb)(struct outwriter *w, void *ud);

/* Starts the thread. high > low > 0 are queue sizes in bytes. Returns 0 and
 * sets *out, or -errno (nothing started). */
int outwriter_new(uv_loop_t *loop, size_t high, size_t low, outwriter_cb on_change, void *ud,
                  struct outwriter **out);
/* Queues a copy of len bytes for fd 1 or 2. Returns 1 when the queue is
 * above high water (stop producing until on_change finds outwriter_full()
 * is 0), else 0. Bytes for an fd whose write failed, and everything after
 * outwriter_discard, are dropped (return 0). */
int outwriter_write(struct outwriter *w, int fd, const void *data, size_t len);
/* outwriter_write of the n pieces one after the other, at the cost of one:
 * one lock, and one chunk the thread writes with one write(). */
int outwriter_writev(struct outwriter *w, int fd, const struct iovec *iov, size_t n);
/* 1 from a write that went above high water until the thread brought the
 * queue below low water. */
int outwriter_full(struct outwriter *w);
/* 1 when nothing is queued or being written (or everything was discarded).
 * After it returned 0, on_change is called once the queue is empty. */
int outwriter_idle(struct outwriter *w);
/* 0, or the -errno of the first write to fd (1 or 2) that failed. */
int outwriter_error(struct outwriter *w, int fd);
/* How long the write in progress has been waiting, in ms; 0 when none is. */
uint64_t outwriter_blocked_ms(struct outwriter *w);
/* Drops what is queued and whatever comes later, and abandons a write that
 * is blocked on a reader that does not read (the thread is cancelled and
 * joined). No on_change call comes after this. */
void outwriter_discard(struct outwriter *w);
/* Discards (see above) and frees w once the loop has run the close of its
 * handle. To have the queue written first, wait for outwriter_idle. */
void outwriter_close(struct outwriter *w);

#endif
