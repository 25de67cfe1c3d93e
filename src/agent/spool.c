/* spool.c - segment files of one attempt's spooled log batches (see spool.h). */
#include "agent/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

void spool_init(struct spool *sp, const char *dir, const char *id, unsigned attempt,
                uint64_t seg_max)
{
  memset(sp, 0, sizeof(*sp));
  sp->prefix = xasprintf("%s/%s.%u", dir, id, attempt);
  sp->next_k = 1;
  sp->seg_max = seg_max;
}

static char *seg_path(const struct spool *sp, unsigned k)
{
  return xasprintf("%s.%u", sp->prefix, k);
}

static struct spool_seg *seg_add(struct spool *sp, unsigned k, int fd, uint64_t size)
{
  struct spool_seg *s = xcalloc(1, sizeof(*s));
  s->k = k;
  s->fd = fd;
  s->size = size;
  if (sp->tail)
    sp->tail->next = s;
  else
    sp->head = s;
  sp->tail = s;
  sp->bytes += size;
  if (k >= sp->next_k)
    sp->next_k = k + 1;
  return s;
}

static int write_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int spool_append(struct spool *sp, uint64_t seq, const void *data, size_t len,
                 struct spool_seg **seg, uint64_t *off)
{
  if (len > UINT32_MAX)
    return -EFBIG;
  struct spool_seg *s = sp->tail;
  if (!s || s->size >= sp->seg_max) {
    char *path = seg_path(sp, sp->next_k);
    /* O_EXCL: a name the agent did not make is never appended to. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    int e = errno;
    free(path);
    if (fd < 0)
      return -e;
    s = seg_add(sp, sp->next_k, fd, 0);
  }
  uint8_t head[SPOOL_FRAME_HEAD];
  uint32_t n32 = (uint32_t)len;
  for (int i = 0; i < 4; i++)
    head[i] = (uint8_t)(n32 >> (8 * i));
  for (int i = 0; i < 8; i++)
    head[4 + i] = (uint8_t)(seq >> (8 * i));
  int rc = write_all(s->fd, head, sizeof(head));
  if (rc == 0)
    rc = write_all(s->fd, data, len);
  if (rc < 0) {
    /* Disk full mid-frame: cut the torn frame off, so that the segment
     * stays a run of whole frames for whatever comes next. */
    if (ftruncate(s->fd, (off_t)s->size) < 0)
      log_warn("cannot cut a torn spool frame", "path=%s.%u error=%s", sp->prefix, s->k,
               strerror(errno));
    return rc;
  }
  *seg = s;
  *off = s->size + SPOOL_FRAME_HEAD;
  s->size += SPOOL_FRAME_HEAD + len;
  sp->bytes += SPOOL_FRAME_HEAD + len;
  if (seq > s->max_seq)
    s->max_seq = seq;
  return 0;
}

int spool_read(const struct spool_seg *seg, uint64_t off, void *out, size_t len)
{
  char *p = out;
  while (len) {
    ssize_t n = pread(seg->fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EIO; /* shorter than it was written: someone cut the file */
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

static void seg_free(struct spool *sp, struct spool_seg *s, int unlink_it)
{
  if (s->fd >= 0)
    close(s->fd);
  if (unlink_it) {
    char *path = seg_path(sp, s->k);
    if (unlink(path) < 0 && errno != ENOENT)
      log_warn("cannot remove spool segment", "path=%s error=%s", path, strerror(errno));
    free(path);
  }
  sp->bytes -= s->size;
  free(s);
}

uint64_t spool_release(struct spool *sp, uint64_t acked)
{
  uint64_t freed = 0;
  struct spool_seg **pp = &sp->head, *prev = NULL;
  while (*pp) {
    struct spool_seg *s = *pp;
    /* The last segment still takes frames: it goes once empty of owed
     * ones too, and the next frame opens a new one. */
    if (s->max_seq && s->max_seq <= acked) {
      *pp = s->next;
      if (sp->tail == s)
        sp->tail = prev;
      freed += s->size;
      seg_free(sp, s, 1);
      continue;
    }
    prev = s;
    pp = &s->next;
  }
  return freed;
}

static int cmp_uint(const void *a, const void *b)
{
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
  return x < y ? -1 : x > y;
}

/* The k of every segment file of sp, sorted. */
static int list_segments(const struct spool *sp, unsigned **out)
{
  const char *slash = strrchr(sp->prefix, '/');
  char *dir = xstrndup(sp->prefix, (size_t)(slash - sp->prefix));
  const char *base = slash + 1;
  size_t blen = strlen(base);
  DIR *d = opendir(dir);
  free(dir);
  *out = NULL;
  if (!d)
    return -errno;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *name = de->d_name;
    if (strncmp(name, base, blen) || name[blen] != '.' || !name[blen + 1])
      continue;
    char *end;
    unsigned long k = strtoul(name + blen + 1, &end, 10);
    if (*end || k == 0 || k > 1000000000)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      *out = xrealloc(*out, cap * sizeof(**out));
    }
    (*out)[n++] = (unsigned)k;
  }
  closedir(d);
  if (n)
    qsort(*out, n, sizeof(**out), cmp_uint);
  return (int)n;
}

int spool_load(struct spool *sp,
               void (*fn)(void *ud, uint64_t seq, struct spool_seg *seg, uint64_t off, size_t len),
               void *ud)
{
  unsigned *ks;
  int n = list_segments(sp, &ks);
  if (n < 0)
    return n;
  int frames = 0;
  for (int i = 0; i < n; i++) {
    char *path = seg_path(sp, ks[i]);
    int fd = open(path, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
      log_warn("cannot open spool segment", "path=%s error=%s", path, strerror(errno));
      if (fd >= 0)
        close(fd);
      free(path);
      continue;
    }
    free(path);
    struct spool_seg *s = seg_add(sp, ks[i], fd, 0);
    uint64_t off = 0, size = (uint64_t)st.st_size;
    uint8_t head[SPOOL_FRAME_HEAD];
    while (off + SPOOL_FRAME_HEAD <= size && spool_read(s, off, head, sizeof(head)) == 0) {
      uint64_t len = 0, seq = 0;
      for (int b = 3; b >= 0; b--)
        len = len << 8 | head[b];
      for (int b = 11; b >= 4; b--)
        seq = seq << 8 | head[b];
      if (off + SPOOL_FRAME_HEAD + len > size || seq == 0)
        break;
      if (fn)
        fn(ud, seq, s, off + SPOOL_FRAME_HEAD, (size_t)len);
      if (seq > s->max_seq)
        s->max_seq = seq;
      off += SPOOL_FRAME_HEAD + len;
      frames++;
    }
    /* A torn frame at the end is cut off: the segment stays whole frames. */
    if (off < size && ftruncate(fd, (off_t)off) < 0)
      log_warn("cannot cut a torn spool frame", "prefix=%s error=%s", sp->prefix, strerror(errno));
    s->size = off;
    sp->bytes += off;
  }
  free(ks);
  return frames;
}

static void free_all(struct spool *sp, int unlink_them)
{
  while (sp->head) {
    struct spool_seg *s = sp->head;
    sp->head = s->next;
    seg_free(sp, s, unlink_them);
  }
  sp->tail = NULL;
}

void spool_close(struct spool *sp)
{
  free_all(sp, 0);
  free(sp->prefix);
  memset(sp, 0, sizeof(*sp));
}

void spool_destroy(struct spool *sp)
{
  if (!sp->prefix)
    return;
  /* Segments of a previous life not loaded here go too. */
  if (!sp->head) {
    unsigned *ks;
    int n = list_segments(sp, &ks);
    for (int i = 0; i < n; i++) {
      char *path = seg_path(sp, ks[i]);
      unlink(path);
      free(path);
    }
    free(ks);
  }
  free_all(sp, 1);
  free(sp->prefix);
  memset(sp, 0, sizeof(*sp));
}
