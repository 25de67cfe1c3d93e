/* spool.h - the on-disk overflow of one job attempt's log batches.
 *
 * Segment files STATE_DIR/spool/<id>.<attempt>.<k> (k = 1, 2, ...), each a
 * run of frames [u32 length][u64 seq][the batch's AgentMessage] (little
 * endian), appended and never rewritten. A segment is deleted as a whole
 * once every frame in it is acknowledged, so disk use follows what is still
 * owed to the coordinator. Frames are written with plain write() and not
 * fsynced: they survive the agent (a kill -9), not necessarily a power cut;
 * what is found at a restart is checked before it is sent (ship.c). */
#ifndef DROVER_AGENT_SPOOL_H
#define DROVER_AGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_FRAME_HEAD 12

struct spool_seg {
  struct spool_seg *next;
  unsigned k;
  int fd;
  uint64_t size;
  uint64_t max_seq; /* the highest seq in it */
};

struct spool {
  char *prefix; /* "STATE_DIR/spool/<id>.<attempt>" */
  struct spool_seg *head, *tail;
  unsigned next_k;
  uint64_t seg_max; /* a segment takes frames until it has this many bytes */
  uint64_t bytes;   /* the size of every segment */
};

/* Sets sp up for attempt `attempt` of job id under dir; touches no file. */
void spool_init(struct spool *sp, const char *dir, const char *id, unsigned attempt,
                uint64_t seg_max);
/* Appends one frame. Returns 0 with its place in *seg and *off (the frame's
 * data, past its head), or -errno (nothing is kept then: a partial frame is
 * cut off again). */
int spool_append(struct spool *sp, uint64_t seq, const void *data, size_t len,
                 struct spool_seg **seg, uint64_t *off);
/* Reads len bytes of a frame's data at off of seg into out. 0 or -errno. */
int spool_read(const struct spool_seg *seg, uint64_t off, void *out, size_t len);
/* Deletes the segments whose every frame has a seq <= acked. Returns the
 * bytes freed. */
uint64_t spool_release(struct spool *sp, uint64_t acked);

/* What a restart finds: calls fn for each whole frame of the attempt's
 * segments (seq, its place and length), in file order; a torn frame at the
 * end of a segment (the agent died writing it) ends that segment. The
 * segments stay open in sp. Returns the number of frames, or -errno. */
int spool_load(struct spool *sp,
               void (*fn)(void *ud, uint64_t seq, struct spool_seg *seg, uint64_t off, size_t len),
               void *ud);

/* Closes the files; destroy also deletes them. sp is empty afterwards. */
void spool_close(struct spool *sp);
void spool_destroy(struct spool *sp);

#endif
