/* test_spool.c - spool segments: append and read back, segments freed once
 * acknowledged, what a restart finds (and a torn frame cut off). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/spool.h"
#include "base/util.h"

static char dir[] = "/tmp/drover-test-spool-XXXXXX";

static int files_in(const char *d)
{
  DIR *dh = opendir(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dh)))
    n += de->d_name[0] != '.';
  closedir(dh);
  return n;
}

struct found {
  uint64_t seq[64];
  struct spool_seg *seg[64];
  uint64_t off[64];
  size_t len[64];
  int n;
};

static void on_frame(void *ud, uint64_t seq, struct spool_seg *seg, uint64_t off, size_t len)
{
  struct found *f = ud;
  f->seq[f->n] = seq;
  f->seg[f->n] = seg;
  f->off[f->n] = off;
  f->len[f->n++] = len;
}

static void test_spool_append_read_release(void **state)
{
  struct spool sp;
  spool_init(&sp, dir, "job-a", 1, 100); /* tiny segments: one frame each, nearly */
  struct spool_seg *seg[6];
  uint64_t off[6];
  char text[6][32];
  for (int i = 0; i < 6; i++) {
    snprintf(text[i], sizeof(text[i]), "batch number %d", i + 1);
    assert_int_equal(spool_append(&sp, (uint64_t)i + 1, text[i], strlen(text[i]), &seg[i], &off[i]),
                     0);
  }
  assert_true(files_in(dir) >= 2);
  for (int i = 5; i >= 0; i--) {
    char buf[32] = "";
    assert_int_equal(spool_read(seg[i], off[i], buf, strlen(text[i])), 0);
    assert_memory_equal(buf, text[i], strlen(text[i]));
  }
  uint64_t before = sp.bytes;
  uint64_t freed = spool_release(&sp, 4); /* the first segment: frames 1-4 */
  assert_true(freed > 0);
  assert_int_equal(sp.bytes, before - freed);
  /* What is not acknowledged is still readable. */
  char buf[32] = "";
  assert_int_equal(spool_read(seg[5], off[5], buf, strlen(text[5])), 0);
  spool_release(&sp, 6);
  assert_int_equal(sp.bytes, 0);
  assert_int_equal(files_in(dir), 0);
  spool_destroy(&sp);
}

static void test_spool_load_after_restart(void **state)
{
  struct spool sp;
  spool_init(&sp, dir, "job.b", 2, 1 << 20);
  struct spool_seg *seg;
  uint64_t off;
  /* Out of order, as when owed in-memory batches join spooled ones. */
  uint64_t seqs[] = {5, 6, 3, 4};
  for (int i = 0; i < 4; i++)
    assert_int_equal(spool_append(&sp, seqs[i], "abcdef", 6, &seg, &off), 0);
  spool_close(&sp); /* the agent dies: files stay */
  /* A torn frame at the end: a head with no data. */
  char *path = xasprintf("%s/job.b.2.1", dir);
  int fd = open(path, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  uint8_t torn[SPOOL_FRAME_HEAD] = {100, 0, 0, 0, 9};
  assert_int_equal(write(fd, torn, sizeof(torn)), (ssize_t)sizeof(torn));
  close(fd);
  struct stat st;
  stat(path, &st);
  off_t torn_size = st.st_size;

  struct found f = {0};
  spool_init(&sp, dir, "job.b", 2, 1 << 20);
  assert_int_equal(spool_load(&sp, on_frame, &f), 4);
  assert_int_equal(f.n, 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(f.seq[i], seqs[i]);
    char buf[8];
    assert_int_equal(spool_read(f.seg[i], f.off[i], buf, f.len[i]), 0);
    assert_memory_equal(buf, "abcdef", 6);
  }
  stat(path, &st);
  assert_int_equal(st.st_size, torn_size - SPOOL_FRAME_HEAD);
  /* Another attempt of the same job is not mistaken for this one. */
  struct spool other;
  struct found g = {0};
  spool_init(&other, dir, "job.b", 22, 1 << 20);
  assert_int_equal(spool_load(&other, on_frame, &g), 0);
  spool_destroy(&other);
  /* New frames after a load go on in order. */
  assert_int_equal(spool_append(&sp, 7, "xyz", 3, &seg, &off), 0);
  spool_destroy(&sp);
  assert_int_equal(files_in(dir), 0);
  free(path);
}

static int setup(void **state)
{
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
  return rmdir(dir);
}

int main(int argc, char **argv)
{
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spool_append_read_release),
      cmocka_unit_test(test_spool_load_after_restart),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
