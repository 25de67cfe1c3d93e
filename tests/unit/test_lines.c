/* test_lines.c - cutting output streams into lines, and progress lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "exec/lines.h"
#include "exec/progress.h"

/* Every line or part the cutter emitted, in order. */
struct got {
  size_t n;
  char *data[64];
  size_t len[64];
  unsigned flags[64];
};

static void collect(void *ud, const char *data, size_t len, unsigned flags)
{
  struct got *g = ud;
  assert_true(g->n < 64);
  g->data[g->n] = xmalloc(len + 1);
  memcpy(g->data[g->n], data, len);
  g->data[g->n][len] = '\0';
  g->len[g->n] = len;
  g->flags[g->n] = flags;
  g->n++;
}

static void got_free(struct got *g)
{
  for (size_t i = 0; i < g->n; i++)
    free(g->data[i]);
  g->n = 0;
}

static void feed_str(struct lines *l, const char *s)
{
  lines_feed(l, s, strlen(s));
}

static void test_lines_partial_across_feeds(void **state)
{
  struct got g = {0};
  struct lines l;
  lines_init(&l, 0, collect, &g);
  feed_str(&l, "hel");
  assert_int_equal(g.n, 0);
  feed_str(&l, "lo\nwor");
  feed_str(&l, "ld");
  feed_str(&l, "\nthird\nfou");
  assert_int_equal(g.n, 3);
  assert_string_equal(g.data[0], "hello");
  assert_string_equal(g.data[1], "world");
  assert_string_equal(g.data[2], "third");
  assert_int_equal(g.flags[0] | g.flags[1] | g.flags[2], 0);
  lines_flush(&l);
  assert_int_equal(g.n, 4);
  assert_string_equal(g.data[3], "fou");
  assert_int_equal(g.flags[3], LINES_NO_EOL); /* the stream ended without '\n' */
  lines_flush(&l);                            /* nothing left: no empty line */
  assert_int_equal(g.n, 4);
  got_free(&g);
  lines_release(&l);
}

static void test_lines_empty_lines_and_crlf(void **state)
{
  struct got g = {0};
  struct lines l;
  lines_init(&l, 0, collect, &g);
  feed_str(&l, "\n\na\r\n\r\n");
  lines_flush(&l);
  assert_int_equal(g.n, 4);
  assert_int_equal(g.len[0], 0);
  assert_int_equal(g.len[1], 0);
  assert_string_equal(g.data[2], "a\r");
  assert_string_equal(g.data[3], "\r");
  got_free(&g);
  lines_release(&l);
}

static void test_lines_binary_data(void **state)
{
  struct got g = {0};
  struct lines l;
  const char in[] = "a\0b\xff\n\0\0\n";
  lines_init(&l, 0, collect, &g);
  lines_feed(&l, in, 4); /* "a\0b\xff" pending */
  lines_feed(&l, in + 4, sizeof in - 1 - 4);
  assert_int_equal(g.n, 2);
  assert_int_equal(g.len[0], 4);
  assert_memory_equal(g.data[0], "a\0b\xff", 4);
  assert_int_equal(g.len[1], 2);
  assert_memory_equal(g.data[1], "\0\0", 2);
  got_free(&g);
  lines_release(&l);
}

/* A line of exactly max bytes is one line; one byte more makes two parts. */
static void test_lines_exact_max_boundary(void **state)
{
  struct got g = {0};
  struct lines l;
  size_t max = LINES_DEFAULT_MAX;
  char *big = xmalloc(max + 2);
  memset(big, 'x', max + 1);

  lines_init(&l, 0, collect, &g);
  big[max] = '\n';
  lines_feed(&l, big, max + 1);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.len[0], max);
  assert_int_equal(g.flags[0], 0);
  got_free(&g);

  /* Same line, but its newline arrives in the next read. */
  lines_feed(&l, big, max);
  assert_int_equal(g.n, 0);
  feed_str(&l, "\n");
  assert_int_equal(g.n, 1);
  assert_int_equal(g.len[0], max);
  assert_int_equal(g.flags[0], 0);
  got_free(&g);

  /* max + 1 bytes: a full part, then a one-byte last part. */
  big[max] = 'y';
  big[max + 1] = '\n';
  lines_feed(&l, big, max + 2);
  assert_int_equal(g.n, 2);
  assert_int_equal(g.len[0], max);
  assert_int_equal(g.flags[0], LINES_PARTIAL);
  assert_string_equal(g.data[1], "y");
  assert_int_equal(g.flags[1], 0);
  got_free(&g);
  lines_release(&l);
  free(big);
}

/* A 200 KiB line, fed whole and in odd chunks, comes out as 64+64+64+8 KiB
 * with the same bytes. */
static void test_lines_long_line_split(void **state)
{
  size_t n = 200 * 1024, max = LINES_DEFAULT_MAX;
  char *in = xmalloc(n + 1);
  for (size_t i = 0; i < n; i++)
    in[i] = (char)('a' + i % 26);
  in[n] = '\n';

  for (size_t chunk = 7777; chunk <= n + 1; chunk += n + 1 - 7777) {
    struct got g = {0};
    struct lines l;
    lines_init(&l, 0, collect, &g);
    for (size_t off = 0; off < n + 1; off += chunk)
      lines_feed(&l, in + off, off + chunk <= n + 1 ? chunk : n + 1 - off);
    lines_flush(&l);
    assert_int_equal(g.n, 4);
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
      assert_int_equal(g.len[i], i < 3 ? max : n - 3 * max);
      assert_int_equal(g.flags[i], i < 3 ? LINES_PARTIAL : 0);
      assert_memory_equal(g.data[i], in + off, g.len[i]);
      off += g.len[i];
    }
    got_free(&g);
    lines_release(&l);
  }
  free(in);
}

static void test_lines_small_max_flush(void **state)
{
  struct got g = {0};
  struct lines l;
  lines_init(&l, 4, collect, &g);
  feed_str(&l, "abcdefghij");
  lines_flush(&l);
  assert_int_equal(g.n, 3);
  assert_string_equal(g.data[0], "abcd");
  assert_string_equal(g.data[1], "efgh");
  assert_string_equal(g.data[2], "ij");
  assert_int_equal(g.flags[0], LINES_PARTIAL);
  assert_int_equal(g.flags[1], LINES_PARTIAL);
  assert_int_equal(g.flags[2], LINES_NO_EOL);
  got_free(&g);
  lines_release(&l);
}

/* Rebuilds the stream from the parts: the data, then '\n' unless the part
 * is LINES_PARTIAL or LINES_NO_EOL. */
static char *rebuild(const struct got *g, size_t *len)
{
  size_t n = 0;
  for (size_t i = 0; i < g->n; i++)
    n += g->len[i] + 1;
  char *out = xmalloc(n + 1), *w = out;
  for (size_t i = 0; i < g->n; i++) {
    memcpy(w, g->data[i], g->len[i]);
    w += g->len[i];
    if (!(g->flags[i] & (LINES_PARTIAL | LINES_NO_EOL)))
      *w++ = '\n';
  }
  *len = (size_t)(w - out);
  return out;
}

/* The flags are enough to give back the exact bytes: a last line with or
 * without its newline, an empty last line, splits at every position. */
static void test_lines_flags_rebuild_stream(void **state)
{
  static const char *const in[] = {
      "abc", "abc\n", "a\nbc", "a\n\n", "\n", "abcdefghi", "abcdefgh\n", "abcd\nefghij\n\nk", ""};
  for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
    for (size_t cut = 0; cut <= strlen(in[i]); cut++) {
      struct got g = {0};
      struct lines l;
      size_t len;
      lines_init(&l, 4, collect, &g);
      lines_feed(&l, in[i], cut);
      lines_feed(&l, in[i] + cut, strlen(in[i]) - cut);
      lines_flush(&l);
      char *out = rebuild(&g, &len);
      assert_int_equal(len, strlen(in[i]));
      assert_memory_equal(out, in[i], len);
      for (size_t k = 0; k < g.n; k++) {
        /* never both; NO_EOL only on the last part */
        assert_true(g.flags[k] != (LINES_PARTIAL | LINES_NO_EOL));
        if (g.flags[k] & LINES_NO_EOL)
          assert_int_equal(k, g.n - 1);
      }
      free(out);
      got_free(&g);
      lines_release(&l);
    }
  }
}

static void test_lines_progress_parse(void **state)
{
  struct job_progress p;
  const char *ok = "42% build compiling main.c\r";
  assert_int_equal(progress_parse(ok, strlen(ok), &p), 0);
  assert_int_equal(p.percent, 42);
  assert_string_equal(p.stage, "build");
  assert_string_equal(p.message, "compiling main.c");
  free(p.stage);
  free(p.message);

  assert_int_equal(progress_parse("100", 3, &p), 0);
  assert_int_equal(p.percent, 100);
  assert_null(p.stage);
  assert_null(p.message);

  assert_int_equal(progress_parse("7.5 fetch", 9, &p), 0);
  assert_int_equal(p.percent, 7);
  assert_string_equal(p.stage, "fetch");
  assert_null(p.message);
  free(p.stage);

  p.percent = -5;
  assert_int_equal(progress_parse("101", 3, &p), -1);
  assert_int_equal(progress_parse("abc", 3, &p), -1);
  assert_int_equal(progress_parse("", 0, &p), -1);
  assert_int_equal(progress_parse("50x", 3, &p), -1);
  assert_int_equal(progress_parse("-1", 2, &p), -1);
  assert_int_equal(progress_parse("99999999999999999999", 20, &p), -1);
  assert_int_equal(p.percent, -5); /* untouched on failure */
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lines_partial_across_feeds),
      cmocka_unit_test(test_lines_empty_lines_and_crlf),
      cmocka_unit_test(test_lines_binary_data),
      cmocka_unit_test(test_lines_exact_max_boundary),
      cmocka_unit_test(test_lines_long_line_split),
      cmocka_unit_test(test_lines_small_max_flush),
      cmocka_unit_test(test_lines_flags_rebuild_stream),
      cmocka_unit_test(test_lines_progress_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
