/* test_logwire.c - LogsResponse read from its wire bytes, checked against
 * protobuf-c: every field, the agent's own LogBatch encoding, unknown
 * fields, repeats and merges, and malformed input (truncations, limits,
 * wire types). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/batch.h"
#include "base/util.h"
#include "exec/lines.h"
#include "job/logwire.h"
#include "job/pb.h"

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = xmalloc(*len ? *len : 1);
  protobuf_c_message_pack(m, buf);
  return buf;
}

/* m as protobuf-c reads the same bytes. */
static void assert_same(const struct logwire_msg *m, const pb_LogsResponse *r)
{
  assert_int_equal(m->seq, r->seq);
  assert_int_equal(m->dropped, r->dropped);
  assert_int_equal(m->attempt, r->attempt);
  assert_int_equal(m->n_entries, r->n_entries);
  for (size_t i = 0; i < r->n_entries; i++) {
    const struct logwire_entry *e = &m->entries[i];
    const pb_LogEntry *x = r->entries[i];
    assert_int_equal(e->stream, (int32_t)x->stream);
    assert_true(e->ts_us == x->ts_us);
    assert_int_equal(e->len, x->data.len);
    if (e->len)
      assert_memory_equal(e->data, x->data.data, e->len);
    assert_int_equal(e->partial, !!x->partial);
    assert_int_equal(e->no_eol, !!x->no_eol);
  }
  assert_int_equal(m->job != NULL, r->job != NULL);
  /* A job given more than once: protobuf-c 1.4 merges proto3 scalars
   * wrongly (a later zero wins); see test_logwire_job_merged. */
  if (m->job && m->n_job_parts == 1) {
    assert_int_equal(m->job->attempt, r->job->attempt);
    assert_int_equal(m->job->state, r->job->state);
    assert_string_equal(m->job->reason, r->job->reason);
  }
}

/* Parses buf both ways: logwire must accept exactly what protobuf-c
 * accepts (for input whose bools are varints) and read the same. */
static void check_bytes(const uint8_t *buf, size_t len)
{
  struct logwire_msg m;
  logwire_init(&m);
  pb_LogsResponse *r = drover__v1__logs_response__unpack(NULL, len, buf);
  int rc = logwire_parse(&m, buf, len);
  if (r) {
    assert_int_equal(rc, 0);
    assert_same(&m, r);
    protobuf_c_message_free_unpacked(&r->base, NULL);
  } else {
    assert_int_equal(rc, LOGWIRE_E_MALFORMED);
    assert_int_equal(m.n_entries, 0);
    assert_null(m.job);
  }
  logwire_release(&m);
}

static void test_logwire_fields(void **state)
{
  pb_LogEntry e[5];
  pb_LogEntry *ep[5];
  for (int i = 0; i < 5; i++) {
    drover__v1__log_entry__init(&e[i]);
    ep[i] = &e[i];
  }
  e[0].stream = (Drover__V1__LogStream)LS_STDOUT;
  e[0].ts_us = 1764645296123456;
  e[0].data = (ProtobufCBinaryData){5, (uint8_t *)"hello"};
  e[1].stream = (Drover__V1__LogStream)LS_STDERR;
  e[1].ts_us = -1; /* a ten-byte varint */
  e[1].data = (ProtobufCBinaryData){6, (uint8_t *)"\0\xff bin"};
  e[1].no_eol = 1;
  e[2].stream = (Drover__V1__LogStream)LS_SYSTEM; /* no data at all */
  e[3].stream = (Drover__V1__LogStream)77;
  e[3].data = (ProtobufCBinaryData){4, (uint8_t *)"part"};
  e[3].partial = 1;
  /* e[4]: every field at its default: an empty message */
  pb_Job job = DROVER__V1__JOB__INIT;
  job.attempt = 3;
  job.state = DROVER__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
  job.reason = "done";
  pb_LogsResponse r = DROVER__V1__LOGS_RESPONSE__INIT;
  r.job_id = "0190-abc";
  r.seq = 1ull << 40;
  r.dropped = 12;
  r.attempt = 0xffffffffu;
  r.n_entries = 5;
  r.entries = ep;
  r.job = &job;
  size_t len;
  uint8_t *buf = pack(&r.base, &len);

  struct logwire_msg m;
  logwire_init(&m);
  assert_int_equal(logwire_parse(&m, buf, len), 0);
  assert_int_equal(m.n_entries, 5);
  assert_int_equal(m.entries[0].stream, LS_STDOUT);
  assert_memory_equal(m.entries[0].data, "hello", 5);
  assert_true(m.entries[1].ts_us == -1);
  assert_true(m.entries[1].no_eol);
  assert_int_equal(m.entries[2].len, 0);
  assert_int_equal(m.entries[3].stream, 77);
  assert_true(m.entries[3].partial);
  assert_int_equal(m.entries[4].stream, 0);
  assert_non_null(m.job);
  assert_int_equal(m.job->attempt, 3);
  /* The entries point into the bytes: nothing was copied. */
  assert_true(m.entries[0].data > buf && m.entries[0].data < buf + len);
  pb_Job *j = logwire_take_job(&m);
  assert_null(m.job);
  protobuf_c_message_free_unpacked(&j->base, NULL);
  logwire_release(&m);
  check_bytes(buf, len);
  free(buf);
}

/* What the agent sends (batch.c) is what the coordinator serves: the
 * LogBatch inside the AgentMessage reads as a LogsResponse. */
static void test_logwire_reads_agent_batches(void **state)
{
  struct batch b;
  batch_init(&b);
  batch_add(&b, JOB_STDOUT, 5, "one", 3, 0);
  batch_add(&b, JOB_STDERR, 6, "two", 3, LINES_NO_EOL);
  char big[70000];
  memset(big, 'x', sizeof(big));
  batch_add(&b, JOB_STDOUT, 7, big, sizeof(big), LINES_PARTIAL);
  uint8_t *msg;
  size_t len;
  batch_seal(&b, "job-1", 2, 9, 4, &msg, &len);
  pb_AgentMessage *am = drover__v1__agent_message__unpack(NULL, len, msg);
  assert_non_null(am);
  size_t blen;
  uint8_t *body = pack(&am->log_batch->base, &blen);
  struct logwire_msg m;
  logwire_init(&m);
  assert_int_equal(logwire_parse(&m, body, blen), 0);
  assert_int_equal(m.seq, 9);
  assert_int_equal(m.dropped, 4);
  assert_int_equal(m.attempt, 2);
  assert_int_equal(m.n_entries, 3);
  assert_int_equal(m.entries[1].stream, LS_STDERR);
  assert_true(m.entries[1].no_eol);
  assert_int_equal(m.entries[2].len, sizeof(big));
  assert_true(m.entries[2].partial);
  logwire_release(&m);
  check_bytes(body, blen);
  free(body);
  protobuf_c_message_free_unpacked(&am->base, NULL);
  free(msg);
  batch_release(&b);
}

/* Unknown fields of every wire type are skipped, inside entries too; a
 * scalar given twice keeps the last value; entries come in between. */
static void test_logwire_unknown_and_repeated(void **state)
{
  static const uint8_t buf[] = {
      0x10, 0x05,                                     /* seq 5 */
      0x1a, 0x08,                                     /* entry, 8 bytes: */
      0x08, 0x01,                                     /*   stream 1 */
      0x1a, 0x02, 'h',  'i',                          /*   data "hi" */
      0x78, 0x07,                                     /*   field 15 varint */
      0x81, 0x01, 0x01, 0x02, 0x03, 0x04,             /* field 16 i64: not 8 bytes yet */
      0x05, 0x06, 0x07, 0x08,                         /* its other 4 */
      0xfd, 0x07, 0x01, 0x02, 0x03, 0x04,             /* field 127, i32 */
      0x3a, 0x03, 'a',  'b',  'c',                    /* field 7, bytes */
      0x10, 0x09,                                     /* seq again: 9 wins */
      0x1a, 0x04, 0x20, 0x01, 0x28, 0x00,             /* entry: partial, no_eol 0 */
      0x28, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, /* attempt: a long */
      0x80, 0x80, 0x01,                               /*   varint, low bits 0 */
  };
  check_bytes(buf, sizeof(buf));
  struct logwire_msg m;
  logwire_init(&m);
  assert_int_equal(logwire_parse(&m, buf, sizeof(buf)), 0);
  assert_int_equal(m.seq, 9);
  assert_int_equal(m.n_entries, 2);
  assert_memory_equal(m.entries[0].data, "hi", 2);
  assert_true(m.entries[1].partial);
  assert_false(m.entries[1].no_eol);
  assert_int_equal(m.attempt, 0);
  logwire_release(&m);
}

/* job given twice is merged as protobuf says (a later message's fields
 * that are set win), not as protobuf-c 1.4 does (its later zeros win). */
static void test_logwire_job_merged(void **state)
{
  pb_Job a = DROVER__V1__JOB__INIT, b = DROVER__V1__JOB__INIT;
  a.attempt = 2;
  a.reason = "first";
  b.state = DROVER__V1__JOB_STATE__JOB_STATE_FAILED;
  size_t la, lb;
  uint8_t *pa = pack(&a.base, &la), *pb = pack(&b.base, &lb);
  uint8_t buf[256], *q = buf;
  *q++ = 0x32;
  *q++ = (uint8_t)la;
  memcpy(q, pa, la);
  q += la;
  *q++ = 0x32;
  *q++ = (uint8_t)lb;
  memcpy(q, pb, lb);
  q += lb;
  *q++ = 0x32; /* and an empty one */
  *q++ = 0;
  check_bytes(buf, (size_t)(q - buf));
  struct logwire_msg m;
  logwire_init(&m);
  assert_int_equal(logwire_parse(&m, buf, (size_t)(q - buf)), 0);
  assert_non_null(m.job);
  assert_int_equal(m.job->attempt, 2);
  assert_string_equal(m.job->reason, "first");
  assert_int_equal(m.job->state, DROVER__V1__JOB_STATE__JOB_STATE_FAILED);
  logwire_release(&m);
  free(pa);
  free(pb);
}

static void expect_bad(const uint8_t *buf, size_t len)
{
  struct logwire_msg m;
  logwire_init(&m);
  assert_int_equal(logwire_parse(&m, buf, len), LOGWIRE_E_MALFORMED);
  assert_int_equal(m.n_entries, 0);
  logwire_release(&m);
}

static void test_logwire_malformed(void **state)
{
  static const uint8_t field0[] = {0x02, 0x00};
  static const uint8_t group[] = {0x0b, 0x0c};
  static const uint8_t wt7[] = {0x0f};
  static const uint8_t long_varint[] = {0x10, 0x80, 0x80, 0x80, 0x80, 0x80,
                                        0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  static const uint8_t past_end[] = {0x1a, 0x05, 0x08, 0x01};
  static const uint8_t inner_past_end[] = {0x1a, 0x03, 0x1a, 0x05, 0x00};
  static const uint8_t seq_as_len[] = {0x12, 0x00};
  static const uint8_t entries_as_varint[] = {0x18, 0x01};
  static const uint8_t long_key[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00};
  static const uint8_t long_len[] = {0x3a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  static const uint8_t huge_len[] = {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f};
  static const uint8_t short_i64[] = {0x39, 1, 2, 3};
  static const uint8_t bad_job[] = {0x32, 0x01, 0x08};
  /* Stricter than protobuf-c: a bool must be a varint. */
  static const uint8_t bool_as_len[] = {0x1a, 0x02, 0x22, 0x00};
  const struct {
    const uint8_t *p;
    size_t n;
  } bad[] = {
      {field0, sizeof(field0)},
      {group, sizeof(group)},
      {wt7, sizeof(wt7)},
      {long_varint, sizeof(long_varint)},
      {past_end, sizeof(past_end)},
      {inner_past_end, sizeof(inner_past_end)},
      {seq_as_len, sizeof(seq_as_len)},
      {entries_as_varint, sizeof(entries_as_varint)},
      {long_key, sizeof(long_key)},
      {long_len, sizeof(long_len)},
      {huge_len, sizeof(huge_len)},
      {short_i64, sizeof(short_i64)},
      {bad_job, sizeof(bad_job)},
      {bool_as_len, sizeof(bool_as_len)},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    expect_bad(bad[i].p, bad[i].n);
    if (bad[i].p != bool_as_len)
      check_bytes(bad[i].p, bad[i].n); /* protobuf-c refuses them too */
  }
  /* Field 0 spelt in two bytes is an unknown field (protobuf-c agrees). */
  static const uint8_t field0_long[] = {0x80, 0x00, 0x05};
  check_bytes(field0_long, sizeof(field0_long));
  /* Empty input: an empty message. */
  check_bytes((const uint8_t *)"", 0);
}

/* Every prefix of a valid message: accepted exactly when protobuf-c
 * accepts it, and read the same. */
static void test_logwire_truncations(void **state)
{
  struct batch b;
  batch_init(&b);
  batch_add(&b, JOB_STDOUT, 1764645296123456, "a line", 6, 0);
  batch_add(&b, JOB_STDERR, -5, "", 0, LINES_NO_EOL);
  char mid[300];
  memset(mid, 'y', sizeof(mid));
  batch_add(&b, JOB_SYSTEM, 1, mid, sizeof(mid), LINES_PARTIAL);
  uint8_t *msg;
  size_t len;
  batch_seal(&b, "job-2", 300, 1u << 20, 1000, &msg, &len);
  /* The LogBatch body: past the AgentMessage key and length. */
  const uint8_t *body = msg + 1;
  while (*body & 0x80)
    body++;
  body++;
  size_t blen = len - (size_t)(body - msg);
  for (size_t n = 0; n <= blen; n++)
    check_bytes(body, n);
  free(msg);
  batch_release(&b);
}

/* A message of many tiny entries does not leave its big array behind. */
static void test_logwire_array_given_back(void **state)
{
  size_t n = 20000;
  uint8_t *buf = xmalloc(2 * n);
  for (size_t i = 0; i < n; i++) {
    buf[2 * i] = 0x1a;
    buf[2 * i + 1] = 0;
  }
  struct logwire_msg m;
  logwire_init(&m);
  assert_int_equal(logwire_parse(&m, buf, 2 * n), 0);
  assert_int_equal(m.n_entries, n);
  assert_int_equal(logwire_parse(&m, buf, 2), 0);
  assert_int_equal(m.n_entries, 1);
  assert_true(m.cap <= 8192);
  logwire_release(&m);
  free(buf);
}

int main(int argc, char **argv)
{
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_logwire_fields),
      cmocka_unit_test(test_logwire_reads_agent_batches),
      cmocka_unit_test(test_logwire_unknown_and_repeated),
      cmocka_unit_test(test_logwire_job_merged),
      cmocka_unit_test(test_logwire_malformed),
      cmocka_unit_test(test_logwire_truncations),
      cmocka_unit_test(test_logwire_array_given_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
