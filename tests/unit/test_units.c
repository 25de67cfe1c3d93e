/* test_units.c - durations and sizes: what parses, what is refused, formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "base/units.h"

static uint64_t dur(const char *s)
{
  uint64_t ms = 12345;
  assert_int_equal(units_parse_duration(s, &ms), 0);
  return ms;
}

static uint64_t size(const char *s)
{
  uint64_t b = 12345;
  assert_int_equal(units_parse_size(s, &b), 0);
  return b;
}

static void test_units_duration_good(void **state)
{
  assert_int_equal(dur("500ms"), 500);
  assert_int_equal(dur("30s"), 30000);
  assert_int_equal(dur("5m"), 300000);
  assert_int_equal(dur("1h"), 3600000);
  assert_int_equal(dur("1h30m"), 5400000);
  assert_int_equal(dur("1.5s"), 1500);
  assert_int_equal(dur("0"), 0);
  assert_int_equal(dur("0s"), 0);
  assert_int_equal(dur("2m30s"), 150000);
  assert_int_equal(dur("0.25h"), 900000);
}

/* A positive duration is never 0 ("no limit"): below 1 ms it is 1 ms. Only
 * zeros are zero. */
static void test_units_duration_tiny_rounds_up(void **state)
{
  assert_int_equal(dur("0.0000001s"), 1);
  assert_int_equal(dur("0.5ms"), 1);
  assert_int_equal(dur("0.000000000001h"), 1); /* beyond the digits kept */
  assert_int_equal(dur("0s0.1ms"), 1);
  assert_int_equal(dur("1.5ms"), 1); /* at or above 1 ms: truncated as before */
  assert_int_equal(dur("0.000s"), 0);
  assert_int_equal(dur("0ms"), 0);
  assert_int_equal(dur("0h0m0s"), 0);
}

static void test_units_duration_bad(void **state)
{
  const char *bad[] = {"",
                       "-1s",
                       "soon",
                       "30",
                       "1x",
                       "s",
                       "1.s",
                       "1h 30m",
                       " 1s",
                       "1s ",
                       "0x10s",
                       "99999999999999999999s",
                       "5000000000000000h",
                       "1e3s"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint64_t ms = 7;
    assert_int_equal(units_parse_duration(bad[i], &ms), -1);
    assert_int_equal(ms, 7); /* untouched */
  }
  assert_int_equal(units_parse_duration(NULL, NULL), -1);
}

static void test_units_size_good(void **state)
{
  assert_int_equal(size("64K"), 65536);
  assert_int_equal(size("128M"), 128ull << 20);
  assert_int_equal(size("2G"), 2ull << 30);
  assert_int_equal(size("1.5G"), 3ull << 29);
  assert_int_equal(size("4096"), 4096);
  assert_int_equal(size("64KiB"), 65536);
  assert_int_equal(size("64kb"), 65536);
  assert_int_equal(size("64k"), 65536);
  assert_int_equal(size("1T"), 1ull << 40);
  assert_int_equal(size("0"), 0);
  assert_int_equal(size("100B"), 100);
}

static void test_units_size_bad(void **state)
{
  const char *bad[] = {
      "",       "-1", "64X", "K", "1.5", "12 M", "64KK", "99999999999999999999", "17179869184G",
      "64Kib2", "abc"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint64_t b = 7;
    assert_int_equal(units_parse_size(bad[i], &b), -1);
    assert_int_equal(b, 7);
  }
}

static void test_units_format(void **state)
{
  char buf[32];
  struct {
    uint64_t ms;
    const char *s;
  } d[] = {{0, "0s"},          {250, "250ms"},     {1500, "1.5s"},       {30000, "30s"},
           {5400000, "1h30m"}, {90500, "1m30.5s"}, {3600001, "1h0.001s"}};
  for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
    uint64_t back;
    units_fmt_duration(buf, sizeof buf, d[i].ms);
    assert_string_equal(buf, d[i].s);
    assert_int_equal(units_parse_duration(buf, &back), 0);
    assert_int_equal(back, d[i].ms);
  }
  struct {
    uint64_t b;
    const char *s;
  } z[] = {{0, "0"},
           {1000, "1000"},
           {65536, "64K"},
           {3ull << 29, "1.5G"},
           {128ull << 20, "128M"},
           {1536, "1.5K"},
           {1ull << 40, "1T"}};
  for (size_t i = 0; i < sizeof z / sizeof *z; i++) {
    uint64_t back;
    units_fmt_size(buf, sizeof buf, z[i].b);
    assert_string_equal(buf, z[i].s);
    assert_int_equal(units_parse_size(buf, &back), 0);
    assert_int_equal(back, z[i].b);
  }
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_units_duration_good),
      cmocka_unit_test(test_units_duration_tiny_rounds_up),
      cmocka_unit_test(test_units_duration_bad),
      cmocka_unit_test(test_units_size_good),
      cmocka_unit_test(test_units_size_bad),
      cmocka_unit_test(test_units_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
