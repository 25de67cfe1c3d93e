/* test_id.c - UUIDv7 format and order, and the rule for user-given ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/id.h"
#include "base/util.h"

static void test_id_format_is_uuidv7(void **state)
{
  char id[ID_LEN + 1];
  uint64_t before = (uint64_t)now_us() / 1000, ts;

  id_new(id);
  assert_int_equal(strlen(id), 36);
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      assert_int_equal(id[i], '-');
    else
      assert_non_null(strchr("0123456789abcdef", id[i]));
  }
  assert_int_equal(id[14], '7');           /* version */
  assert_non_null(strchr("89ab", id[19])); /* variant 10 */
  char hex[13];
  memcpy(hex, id, 8);
  memcpy(hex + 8, id + 9, 4);
  hex[12] = '\0';
  ts = strtoull(hex, NULL, 16);
  assert_true(ts >= before && ts <= before + 1000);
  assert_true(id_valid(id));
}

static void test_id_strictly_increasing(void **state)
{
  char prev[ID_LEN + 1], cur[ID_LEN + 1];
  id_new(prev);
  /* Far more than 4096 per millisecond would exhaust the counter: the
   * timestamp then moves forward, and order still holds. */
  for (int i = 0; i < 20000; i++) {
    id_new(cur);
    assert_true(strcmp(prev, cur) < 0);
    memcpy(prev, cur, sizeof cur);
  }
}

static void test_id_valid_rules(void **state)
{
  char long_id[130];
  assert_true(id_valid("build-42"));
  assert_true(id_valid("a.b_c-D9"));
  assert_false(id_valid(""));
  assert_false(id_valid(NULL));
  assert_false(id_valid(".hidden"));
  assert_false(id_valid("a/b"));
  assert_false(id_valid("a b"));
  assert_false(id_valid("é"));
  memset(long_id, 'a', 128);
  long_id[128] = '\0';
  assert_true(id_valid(long_id));
  long_id[128] = 'a';
  long_id[129] = '\0';
  assert_false(id_valid(long_id));
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_id_format_is_uuidv7),
      cmocka_unit_test(test_id_strictly_increasing),
      cmocka_unit_test(test_id_valid_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
