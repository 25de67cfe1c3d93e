/* test_rpc_status.c - status codes, grpc-timeout, grpc-message percent
 * encoding, base64 and header checks of src/rpc/status.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rpc/rpc.h"
#include "rpc/wire.h"

static int64_t tmo(const char *s)
{
  int64_t ms = -1;
  if (rpc_timeout_parse(s, strlen(s), &ms) < 0)
    return -1;
  return ms;
}

static void test_rpc_status_timeout_parse(void **state)
{
  (void)state;
  assert_int_equal(tmo("100m"), 100);
  assert_int_equal(tmo("2S"), 2000);
  assert_int_equal(tmo("3M"), 180000);
  assert_int_equal(tmo("1H"), 3600000);
  assert_int_equal(tmo("1500u"), 2); /* rounded up */
  assert_int_equal(tmo("1n"), 1);
  assert_int_equal(tmo("99999999H"), 99999999LL * 3600000);
  assert_int_equal(tmo("0m"), 0);
  assert_int_equal(tmo(""), -1);
  assert_int_equal(tmo("m"), -1);
  assert_int_equal(tmo("10"), -1);         /* no unit */
  assert_int_equal(tmo("10s"), -1);        /* lowercase s is not a unit */
  assert_int_equal(tmo("123456789m"), -1); /* 9 digits */
  assert_int_equal(tmo("-5m"), -1);
  assert_int_equal(tmo("1 m"), -1);
}

static void test_rpc_status_timeout_format_roundtrip(void **state)
{
  (void)state;
  int64_t v[] = {0, 1, 999, 100000, 99999999, 100000000, 5000000000LL, 99999999LL * 3600000};
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    char buf[32];
    rpc_timeout_format(v[i], buf, sizeof(buf));
    assert_true(strlen(buf) <= 9);
    int64_t back = tmo(buf);
    assert_true(back >= 0);
    /* coarser units lose precision only downwards, within one unit */
    assert_true(back <= v[i]);
    assert_true(v[i] - back < 3600000);
  }
}

static void test_rpc_status_code_parse_and_names(void **state)
{
  (void)state;
  int code = -1;
  assert_int_equal(rpc_status_parse("0", 1, &code), 0);
  assert_int_equal(code, 0);
  assert_int_equal(rpc_status_parse("16", 2, &code), 0);
  assert_int_equal(code, 16);
  assert_int_equal(rpc_status_parse("", 0, &code), RPC_E_INVAL);
  assert_int_equal(rpc_status_parse("-1", 2, &code), RPC_E_INVAL);
  assert_int_equal(rpc_status_parse("123", 3, &code), RPC_E_INVAL);
  assert_int_equal(rpc_status_parse("1x", 2, &code), RPC_E_INVAL);
  assert_string_equal(rpc_code_name(4), "DEADLINE_EXCEEDED");
  assert_string_equal(rpc_code_name(16), "UNAUTHENTICATED");
  assert_string_equal(rpc_code_name(99), "UNKNOWN");
  assert_string_equal(rpc_strerror(RPC_E_TOO_LARGE), "message larger than the limit");
}

static void test_rpc_status_percent_encoding(void **state)
{
  (void)state;
  char *e = rpc_pct_encode("requested failure 5");
  assert_string_equal(e, "requested failure 5");
  free(e);
  e = rpc_pct_encode("50% off\n\xc3\xa9");
  assert_string_equal(e, "50%25 off%0A%C3%A9");
  char *d = rpc_pct_decode(e, strlen(e));
  assert_string_equal(d, "50% off\n\xc3\xa9");
  free(d);
  free(e);
  /* Bad escapes are kept as they are. */
  d = rpc_pct_decode("a%zz%4", 6);
  assert_string_equal(d, "a%zz%4");
  free(d);
  d = rpc_pct_decode("%", 1);
  assert_string_equal(d, "%");
  free(d);
}

static void test_rpc_status_http_mapping(void **state)
{
  (void)state;
  assert_int_equal(rpc_http_to_code(503), RPC_UNAVAILABLE);
  assert_int_equal(rpc_http_to_code(404), RPC_UNIMPLEMENTED);
  assert_int_equal(rpc_http_to_code(401), RPC_UNAUTHENTICATED);
  assert_int_equal(rpc_http_to_code(403), RPC_PERMISSION_DENIED);
  assert_int_equal(rpc_http_to_code(400), RPC_INTERNAL);
  assert_int_equal(rpc_http_to_code(418), RPC_UNKNOWN);
}

static void test_rpc_status_content_type(void **state)
{
  (void)state;
  const char *ok[] = {"application/grpc", "application/grpc+proto", "application/grpc;x=y",
                      "Application/GRPC"};
  const char *bad[] = {"application/grpcx", "application/json", "application/grp", ""};
  for (size_t i = 0; i < 4; i++)
    assert_true(rpc_content_type_ok(ok[i], strlen(ok[i])));
  for (size_t i = 0; i < 4; i++)
    assert_false(rpc_content_type_ok(bad[i], strlen(bad[i])));
}

static void test_rpc_status_base64(void **state)
{
  (void)state;
  const uint8_t bin[] = {0, 1, 2, 0xfe, 0xff};
  for (size_t n = 0; n <= sizeof(bin); n++) {
    size_t el, dl;
    uint8_t *out;
    char *e = rpc_b64_encode(bin, n, &el);
    assert_int_equal(el, (n + 2) / 3 * 4);
    assert_int_equal(rpc_b64_decode(e, el, &out, &dl), 0);
    assert_int_equal(dl, n);
    assert_memory_equal(out, bin, n);
    free(out);
    /* unpadded, as some peers send it */
    while (el && e[el - 1] == '=')
      el--;
    assert_int_equal(rpc_b64_decode(e, el, &out, &dl), 0);
    assert_int_equal(dl, n);
    free(out);
    free(e);
  }
  uint8_t *out;
  size_t dl;
  assert_int_equal(rpc_b64_decode("a", 1, &out, &dl), RPC_E_INVAL);
  assert_int_equal(rpc_b64_decode("ab!d", 4, &out, &dl), RPC_E_INVAL);
}

static void test_rpc_status_metadata_keys(void **state)
{
  (void)state;
  struct rpc_mdlist l;
  rpc_md_init(&l);
  assert_int_equal(rpc_md_adds(&l, "X-Trace", "1"), 0);
  assert_int_equal(rpc_md_adds(&l, ":path", "/x"), RPC_E_INVAL);
  assert_int_equal(rpc_md_adds(&l, "", "v"), RPC_E_INVAL);
  assert_int_equal(rpc_md_adds(&l, "bad key", "v"), RPC_E_INVAL);
  assert_int_equal(rpc_md_add(&l, "id-bin", "\0\1", 2), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(rpc_md_get(&l, "x-trace")->value, "1");
  assert_int_equal(rpc_md_get(&l, "id-bin")->value_len, 2);
  assert_null(rpc_md_get(&l, "nope"));
  rpc_md_release(&l);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_rpc_frame_*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rpc_status_timeout_parse),
      cmocka_unit_test(test_rpc_status_timeout_format_roundtrip),
      cmocka_unit_test(test_rpc_status_code_parse_and_names),
      cmocka_unit_test(test_rpc_status_percent_encoding),
      cmocka_unit_test(test_rpc_status_http_mapping),
      cmocka_unit_test(test_rpc_status_content_type),
      cmocka_unit_test(test_rpc_status_base64),
      cmocka_unit_test(test_rpc_status_metadata_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
