/* inreader.h - drover's own stdin, read by a thread of its own for `drover
 * job run -i`, one chunk at a time, so that the loop never blocks on it and
 * the fd stays as the user's shell made it (no O_NONBLOCK on a description
 * shared with others).
 *
 * The thread reads one chunk, hands it to the loop (on_chunk) and waits for
 * inreader_more before it reads the next: the loop reads only as fast as it
 * can send. */
#ifndef DROVER_CLI_INREADER_H
#define DROVER_CLI_INREADER_H

#include <stddef.h>
#include <uv.h>

struct inreader;

/* On the loop: len bytes of input (valid during the call), or len 0 at the
 * end of the input; err is 0, or -errno when the read failed (then also
 * the end). Call inreader_more for the next chunk (none follows the end). */
typedef void (*inreader_cb)(struct inreader *r, const char *data, size_t len, int err, void *ud);

/* Starts the thread on fd; it reads the first chunk at once. Returns 0 and
 * *out, or -errno (nothing started). */
int inreader_new(uv_loop_t *loop, int fd, inreader_cb on_chunk, void *ud, struct inreader **out);
/* The chunk was used: read the next. */
void inreader_more(struct inreader *r);
/* Stops the thread (also one waiting on a terminal or a silent pipe), then
 * frees r once the loop ran its handle's close. No on_chunk after this. */
void inreader_close(struct inreader *r);

#endif
