/* test_batch.c - LogBatch wire encoding, checked by unpacking it with
 * protobuf-c: streams, times, bytes (binary, empty, long), flags, seq,
 * dropped, attempt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/batch.h"
#include "base/util.h"
#include "exec/lines.h"
#include "job/pb.h"

static pb_AgentMessage *seal_and_unpack(struct batch *b, const char *id, unsigned attempt,
                                        uint64_t seq, uint64_t dropped)
{
  uint8_t *buf;
  size_t len;
  batch_seal(b, id, attempt, seq, dropped, &buf, &len);
  pb_AgentMessage *m = drover__v1__agent_message__unpack(NULL, len, buf);
  free(buf);
  assert_non_null(m);
  assert_int_equal(m->msg_case, DROVER__V1__AGENT_MESSAGE__MSG_LOG_BATCH);
  return m;
}

static void test_batch_fields_round_trip(void **state)
{
  struct batch b;
  batch_init(&b);
  batch_add(&b, JOB_STDOUT, 1764645296123456, "hello", 5, 0);
  batch_add(&b, JOB_STDERR, 1, "\0\xff bin", 6, LINES_NO_EOL);
  batch_add(&b, JOB_SYSTEM, 0, "", 0, 0);
  batch_add(&b, JOB_STDOUT, 2, "part", 4, LINES_PARTIAL);
  assert_int_equal(b.entries, 4);
  assert_int_equal(b.lines, 3); /* the partial part does not end a line */
  pb_AgentMessage *m = seal_and_unpack(&b, "job-1.a", 7, 42, 3);
  pb_LogBatch *lb = m->log_batch;
  assert_string_equal(lb->job_id, "job-1.a");
  assert_int_equal(lb->attempt, 7);
  assert_int_equal(lb->seq, 42);
  assert_int_equal(lb->dropped, 3);
  assert_int_equal(lb->n_entries, 4);
  assert_int_equal(lb->entries[0]->stream, LS_STDOUT);
  assert_int_equal(lb->entries[0]->ts_us, 1764645296123456);
  assert_int_equal(lb->entries[0]->data.len, 5);
  assert_memory_equal(lb->entries[0]->data.data, "hello", 5);
  assert_false(lb->entries[0]->partial || lb->entries[0]->no_eol);
  assert_int_equal(lb->entries[1]->stream, LS_STDERR);
  assert_memory_equal(lb->entries[1]->data.data, "\0\xff bin", 6);
  assert_true(lb->entries[1]->no_eol);
  assert_int_equal(lb->entries[2]->stream, LS_SYSTEM);
  assert_int_equal(lb->entries[2]->data.len, 0);
  assert_true(lb->entries[3]->partial);
  protobuf_c_message_free_unpacked(&m->base, NULL);
  /* Sealing empties it. */
  assert_int_equal(b.entries, 0);
  assert_int_equal(b.len, 0);
  batch_release(&b);
}

/* Lengths that need multi-byte varints (a 64 KiB line, a batch over 2 MiB)
 * and no dropped field when there is nothing to say. */
static void test_batch_big_entries(void **state)
{
  struct batch b;
  batch_init(&b);
  size_t n = 64 * 1024;
  char *line = xmalloc(n);
  for (size_t i = 0; i < n; i++)
    line[i] = (char)('a' + i % 26);
  for (int i = 0; i < 40; i++)
    batch_add(&b, JOB_STDOUT, 1000 + i, line, n, LINES_PARTIAL);
  pb_AgentMessage *m = seal_and_unpack(&b, "x", 1, 300, 0);
  assert_int_equal(m->log_batch->n_entries, 40);
  assert_int_equal(m->log_batch->dropped, 0);
  for (int i = 0; i < 40; i++) {
    assert_int_equal(m->log_batch->entries[i]->data.len, n);
    assert_memory_equal(m->log_batch->entries[i]->data.data, line, n);
    assert_int_equal(m->log_batch->entries[i]->ts_us, 1000 + i);
  }
  protobuf_c_message_free_unpacked(&m->base, NULL);
  free(line);
  batch_release(&b);
}

int main(int argc, char **argv)
{
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_fields_round_trip),
      cmocka_unit_test(test_batch_big_entries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
