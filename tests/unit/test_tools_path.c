/* test_tools_path.c - tool roots: what resolves beneath them and what is
 * refused, with openat2 and with the fallback walk. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/util.h"
#include "tools/path.h"

struct fx {
  char dir[64];  /* the test's folder */
  char *root;    /* dir/root: read root */
  char *wroot;   /* dir/root/w: write root */
  char *outside; /* dir/outside: never reachable */
  struct tools_roots r;
};

static void put(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup_fx(void **state, int no_openat2)
{
  struct fx *f = xcalloc(1, sizeof *f);
  char err[256], *p;
  snprintf(f->dir, sizeof f->dir, "/tmp/drover-test-tools-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  f->root = xasprintf("%s/root", f->dir);
  f->wroot = xasprintf("%s/root/w", f->dir);
  f->outside = xasprintf("%s/outside", f->dir);
  assert_int_equal(mkdir(f->root, 0755), 0);
  assert_int_equal(mkdir(f->wroot, 0755), 0);
  assert_int_equal(mkdir(f->outside, 0755), 0);
  p = xasprintf("%s/secret", f->outside);
  put(p, "secret\n");
  free(p);
  p = xasprintf("%s/a.txt", f->root);
  put(p, "a\n");
  free(p);
  p = xasprintf("%s/sub", f->root);
  mkdir(p, 0755);
  free(p);
  p = xasprintf("%s/sub/b.txt", f->root);
  put(p, "b\n");
  free(p);
  /* links: one out (absolute), one out (relative), one inside, a loop */
  p = xasprintf("%s/out_abs", f->root);
  char *t = xasprintf("%s/secret", f->outside);
  assert_int_equal(symlink(t, p), 0);
  free(t);
  free(p);
  p = xasprintf("%s/out_rel", f->root);
  assert_int_equal(symlink("../outside/secret", p), 0);
  free(p);
  p = xasprintf("%s/in_link", f->root);
  assert_int_equal(symlink("sub/b.txt", p), 0);
  free(p);
  p = xasprintf("%s/loop", f->root);
  assert_int_equal(symlink("loop", p), 0);
  free(p);
  p = xasprintf("%s/fifo", f->root);
  assert_int_equal(mkfifo(p, 0644), 0);
  free(p);
  tools_roots_init(&f->r);
  f->r.no_openat2 = no_openat2;
  assert_int_equal(tools_roots_add(&f->r, f->root, 0, err, sizeof err), 0);
  assert_int_equal(tools_roots_add(&f->r, f->wroot, 1, err, sizeof err), 0);
  *state = f;
  return 0;
}

static int setup_openat2(void **state)
{
  return setup_fx(state, 0);
}

static int setup_walk(void **state)
{
  return setup_fx(state, 1);
}

static int teardown_fx(void **state)
{
  struct fx *f = *state;
  char *cmd = xasprintf("rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(cmd);
  tools_roots_release(&f->r);
  free(f->root);
  free(f->wroot);
  free(f->outside);
  free(f);
  return 0;
}

static int open_read(struct fx *f, const char *path)
{
  return tools_path_open(&f->r, path, O_RDONLY, 0, 0, 'f', NULL);
}

static void expect_ok(struct fx *f, const char *path)
{
  int fd = open_read(f, path);
  if (fd < 0)
    fail_msg("'%s': %s", path, tools_path_strerror(fd));
  close(fd);
}

static void test_tools_path_inside(void **state)
{
  struct fx *f = *state;
  expect_ok(f, "a.txt");
  expect_ok(f, "sub/b.txt");
  expect_ok(f, "./sub/../a.txt");
  char *abs = xasprintf("%s/sub/b.txt", f->root);
  expect_ok(f, abs);
  free(abs);
  assert_int_equal(open_read(f, "nope.txt"), -ENOENT);
}

static void test_tools_path_escapes(void **state)
{
  struct fx *f = *state;
  char *abs = xasprintf("%s/secret", f->outside);
  assert_int_equal(open_read(f, "../outside/secret"), TOOLS_EOUTSIDE);
  assert_int_equal(open_read(f, abs), TOOLS_EOUTSIDE);
  assert_int_equal(open_read(f, "/etc/passwd"), TOOLS_EOUTSIDE);
  assert_int_equal(open_read(f, "sub/../../outside/secret"), TOOLS_EOUTSIDE);
  free(abs);
  /* A root's name as a prefix of another folder's is not beneath it. */
  char *sib = xasprintf("%s/rootx/a", f->dir);
  assert_int_equal(open_read(f, sib), TOOLS_EOUTSIDE);
  free(sib);
}

static void test_tools_path_symlinks(void **state)
{
  struct fx *f = *state;
  int rc = open_read(f, "out_abs");
  assert_true(rc == TOOLS_EOUTSIDE || rc == TOOLS_ESYMLINK);
  rc = open_read(f, "out_rel");
  assert_true(rc == TOOLS_EOUTSIDE || rc == TOOLS_ESYMLINK);
  rc = open_read(f, "loop");
  assert_true(rc == -ELOOP || rc == TOOLS_ESYMLINK);
  rc = open_read(f, "in_link");
  if (f->r.no_openat2)
    assert_int_equal(rc, TOOLS_ESYMLINK); /* the walk follows no link */
  else {
    assert_true(rc >= 0);
    close(rc);
  }
}

static void test_tools_path_fifo_never_opened(void **state)
{
  struct fx *f = *state;
  /* O_RDONLY without O_NONBLOCK would wait for a writer: it must not. */
  assert_int_equal(open_read(f, "fifo"), TOOLS_ENOTREG);
  assert_int_equal(tools_path_open(&f->r, "fifo", O_WRONLY, 0, 1, 'f', NULL), TOOLS_ENOWRITE);
}

static void test_tools_path_write_roots(void **state)
{
  struct fx *f = *state;
  const char *base;
  int fd = tools_path_open(&f->r, "w/new.txt", O_WRONLY | O_CREAT, 0644, 1, 'f', NULL);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(tools_path_open(&f->r, "a.txt", O_WRONLY, 0, 1, 'f', NULL), TOOLS_ENOWRITE);
  /* a.txt through the write root: still not writable */
  assert_int_equal(tools_path_open(&f->r, "w/../a.txt", O_WRONLY, 0, 1, 'f', NULL), TOOLS_ENOWRITE);
  /* parents made beneath the write root */
  fd = tools_path_parent(&f->r, "w/x/y/z.txt", &base);
  assert_true(fd >= 0);
  assert_string_equal(base, "z.txt");
  close(fd);
  char *p = xasprintf("%s/x/y", f->wroot);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  free(p);
  assert_true(tools_path_parent(&f->r, "sub/q/z.txt", &base) < 0);
  p = xasprintf("%s/sub/q", f->root);
  assert_int_equal(stat(p, &st), -1);
  free(p);
}

static void test_tools_path_no_roots(void **state)
{
  struct tools_roots r;
  tools_roots_init(&r);
  assert_int_equal(tools_path_open(&r, "a", O_RDONLY, 0, 0, 'f', NULL), TOOLS_ENOROOT);
  tools_roots_release(&r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tools_path_inside, setup_openat2, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_escapes, setup_openat2, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_symlinks, setup_openat2, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_fifo_never_opened, setup_openat2,
                                      teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_write_roots, setup_openat2, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_inside, setup_walk, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_escapes, setup_walk, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_symlinks, setup_walk, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_fifo_never_opened, setup_walk, teardown_fx),
      cmocka_unit_test_setup_teardown(test_tools_path_write_roots, setup_walk, teardown_fx),
      cmocka_unit_test(test_tools_path_no_roots),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
