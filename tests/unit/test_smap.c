/* test_smap.c - the string hash map: growth, deletes in shared buckets, replace, iterate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/smap.h"
#include "base/util.h"

static void test_smap_empty_map_finds_nothing(void **state)
{
  struct smap m;
  smap_init(&m);
  assert_null(smap_get(&m, "a"));
  assert_null(smap_del(&m, "a"));
  assert_int_equal(m.n, 0);
  smap_release(&m, NULL);
}

static void test_smap_growth_keeps_every_entry(void **state)
{
  enum { N = 20000 };
  static int vals[N];
  struct smap m;
  smap_init(&m);
  char key[32];
  for (int i = 0; i < N; i++) {
    vals[i] = i;
    snprintf(key, sizeof(key), "job-%d", i);
    assert_null(smap_put(&m, key, &vals[i]));
  }
  assert_int_equal(m.n, N);
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "job-%d", i);
    int *v = smap_get(&m, key);
    assert_non_null(v);
    assert_int_equal(*v, i);
  }
  assert_null(smap_get(&m, "job-20000"));
  assert_null(smap_get(&m, ""));
  smap_release(&m, NULL);
  assert_int_equal(m.n, 0);
  assert_null(smap_get(&m, "job-1"));
}

/* FNV-1a, as the map hashes: used only to pick keys that share a bucket, so
 * that deletes hit the head, the middle and the tail of one chain. */
static unsigned bucket64(const char *s)
{
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (unsigned)(h & 63);
}

static void test_smap_delete_with_collisions(void **state)
{
  struct smap m;
  smap_init(&m);
  char keys[4][16];
  int found = 0;
  /* Four keys of one bucket; a map of at most 64 entries keeps 64 buckets. */
  for (int i = 0; found < 4 && i < 100000; i++) {
    char k[16];
    snprintf(k, sizeof(k), "k%d", i);
    if (bucket64(k) == 7)
      snprintf(keys[found++], sizeof(keys[0]), "%s", k);
  }
  assert_int_equal(found, 4);
  for (int i = 0; i < 4; i++)
    smap_put(&m, keys[i], keys[i]);
  assert_int_equal(m.n, 4);

  assert_ptr_equal(smap_del(&m, keys[1]), keys[1]); /* middle */
  assert_null(smap_get(&m, keys[1]));
  assert_null(smap_del(&m, keys[1]));
  assert_ptr_equal(smap_get(&m, keys[0]), keys[0]);
  assert_ptr_equal(smap_get(&m, keys[2]), keys[2]);
  assert_ptr_equal(smap_get(&m, keys[3]), keys[3]);

  assert_ptr_equal(smap_del(&m, keys[3]), keys[3]); /* chain head (last inserted) */
  assert_ptr_equal(smap_del(&m, keys[0]), keys[0]); /* chain tail */
  assert_ptr_equal(smap_get(&m, keys[2]), keys[2]);
  assert_int_equal(m.n, 1);

  smap_put(&m, keys[1], keys[1]); /* put again after delete */
  assert_ptr_equal(smap_get(&m, keys[1]), keys[1]);
  assert_int_equal(m.n, 2);
  smap_release(&m, NULL);
}

static void test_smap_delete_half_of_many(void **state)
{
  enum { N = 3000 };
  struct smap m;
  smap_init(&m);
  char key[32];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "%d", i);
    smap_put(&m, key, xstrdup(key));
  }
  for (int i = 0; i < N; i += 2) {
    snprintf(key, sizeof(key), "%d", i);
    char *v = smap_del(&m, key);
    assert_non_null(v);
    assert_string_equal(v, key);
    free(v);
  }
  assert_int_equal(m.n, N / 2);
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "%d", i);
    char *v = smap_get(&m, key);
    if (i % 2)
      assert_string_equal(v, key);
    else
      assert_null(v);
  }
  smap_release(&m, free); /* frees the odd values; a leak fails under ASan */
}

static void test_smap_replace_returns_old_value(void **state)
{
  struct smap m;
  smap_init(&m);
  char *a = xstrdup("first"), *b = xstrdup("second");
  assert_null(smap_put(&m, "key", a));
  assert_ptr_equal(smap_put(&m, "key", b), a);
  assert_int_equal(m.n, 1);
  assert_string_equal(smap_get(&m, "key"), "second");
  free(a);
  smap_release(&m, free);
}

static int count_entry(const char *key, void *val, void *ud)
{
  size_t *seen = ud;
  assert_string_equal(key, (const char *)val);
  (*seen)++;
  return 0;
}

static int stop_at_b(const char *key, void *val, void *ud)
{
  return strcmp(key, "b") == 0 ? 42 : 0;
}

static void test_smap_foreach_visits_all_and_stops(void **state)
{
  struct smap m;
  smap_init(&m);
  size_t seen = 0;
  assert_int_equal(smap_foreach(&m, count_entry, &seen), 0);
  assert_int_equal(seen, 0);
  const char *keys[] = {"a", "b", "c", "d", "e"};
  for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
    smap_put(&m, keys[i], (void *)keys[i]);
  assert_int_equal(smap_foreach(&m, count_entry, &seen), 0);
  assert_int_equal(seen, ARRAY_SIZE(keys));
  assert_int_equal(smap_foreach(&m, stop_at_b, NULL), 42);
  smap_release(&m, NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_smap_empty_map_finds_nothing),
      cmocka_unit_test(test_smap_growth_keeps_every_entry),
      cmocka_unit_test(test_smap_delete_with_collisions),
      cmocka_unit_test(test_smap_delete_half_of_many),
      cmocka_unit_test(test_smap_replace_returns_old_value),
      cmocka_unit_test(test_smap_foreach_visits_all_and_stops),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
