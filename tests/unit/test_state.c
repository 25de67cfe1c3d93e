/* test_state.c - the agent's state dir: names, the lock, the identity
 * (mode 0600, kept across opens), attempt records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/state.h"
#include "base/util.h"

static char root[] = "/tmp/drover-test-state-XXXXXX";

static void test_state_parse_name(void **state)
{
  struct state_name n;
  assert_int_equal(state_parse_name("0193c0c5-7f1e-7abc.2", &n), 0);
  assert_string_equal(n.id, "0193c0c5-7f1e-7abc");
  assert_int_equal(n.attempt, 2);
  assert_int_equal(state_parse_name("a.b.c.17", &n), 0);
  assert_string_equal(n.id, "a.b.c");
  assert_int_equal(n.attempt, 17);
  const char *bad[] = {"x", "x.", ".3", "x.0", "x.01", "x.3a", "x.-1", "bad id.1", "x.99999999999"};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
    assert_int_equal(state_parse_name(bad[i], &n), -1);
}

static void test_state_identity_and_lock(void **state)
{
  char *dir = xasprintf("%s/st", root);
  struct agent_state a, b;
  char err[512];
  assert_int_equal(state_open(&a, dir, err, sizeof(err)), 0);
  assert_null(a.node_secret);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  /* A second agent on the same dir is refused, and told who holds it. */
  assert_int_equal(state_open(&b, dir, err, sizeof(err)), -EBUSY);
  char pid[32];
  snprintf(pid, sizeof(pid), "(pid %d)", (int)getpid());
  assert_non_null(strstr(err, pid));
  state_release(&b);
  assert_int_equal(state_save_identity(&a, "node-1", "s3cret"), 0);
  char *nj = xasprintf("%s/node.json", dir);
  assert_int_equal(stat(nj, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  state_release(&a);
  assert_int_equal(state_open(&b, dir, err, sizeof(err)), 0);
  assert_string_equal(b.node_id, "node-1");
  assert_string_equal(b.node_secret, "s3cret");
  state_release(&b);
  /* A node.json that is not one is an error that says what to do. */
  FILE *f = fopen(nj, "w");
  fputs("{\"node_id\": 3}\n", f);
  fclose(f);
  assert_int_equal(state_open(&b, dir, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "remove it"));
  state_release(&b);
  free(nj);
  free(dir);
}

static void test_state_records(void **state)
{
  char *dir = xasprintf("%s/rec", root);
  struct agent_state a;
  char err[512];
  assert_int_equal(state_open(&a, dir, err, sizeof(err)), 0);
  struct core_attempt w = {.n = 3, .pgid = 4242, .start = 987654321};
  memcpy(w.boot, "25e102b4-9c1f-40b8-8884-75ca26f3bc5a", PROC_BOOT_ID_LEN + 1);
  assert_int_equal(state_record_write(&a, "job-x", 3, &w), 0);
  struct core_attempt only = {.n = 1};
  assert_int_equal(state_record_write(&a, "job-y", 1, &only), 0);
  struct state_name *v;
  int n = state_records(&a, &v);
  assert_int_equal(n, 2);
  free(v);
  struct core_attempt r;
  assert_int_equal(state_record_read(&a, "job-x", 3, &r), 0);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.pgid, 4242);
  assert_int_equal(r.start, 987654321);
  assert_string_equal(r.boot, w.boot);
  assert_int_equal(state_record_read(&a, "job-y", 1, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.pgid, 0);
  state_record_remove(&a, "job-x", 3);
  assert_int_equal(state_record_read(&a, "job-x", 3, &r), -ENOENT);
  /* A freed record file is used again: no file per job. */
  assert_int_equal(state_record_write(&a, "job-z", 2, &only), 0);
  assert_int_equal(a.nrec, 2);
  state_release(&a);
  /* The next life reads what is left. */
  assert_int_equal(state_open(&a, dir, err, sizeof(err)), 0);
  n = state_records(&a, &v);
  assert_int_equal(n, 2);
  int seen = 0;
  for (int i = 0; i < n; i++)
    seen |= (!strcmp(v[i].id, "job-y") && v[i].attempt == 1) |
            (!strcmp(v[i].id, "job-z") && v[i].attempt == 2) << 1;
  assert_int_equal(seen, 3);
  free(v);
  assert_int_equal(state_record_read(&a, "job-y", 1, &r), 0);
  assert_int_equal(r.n, 1);
  state_release(&a);
  free(dir);
}

static int setup(void **state)
{
  return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
  char *cmd = xasprintf("rm -rf '%s'", root);
  int rc = system(cmd);
  free(cmd);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_parse_name),
      cmocka_unit_test(test_state_identity_and_lock),
      cmocka_unit_test(test_state_records),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
