/* fuzz_logwire.c - libFuzzer target: LogsResponse bytes read by hand
 * (src/job/logwire.c) against protobuf-c. Whatever both accept must read
 * the same; whatever protobuf-c accepts, packed again (canonical bytes,
 * bools as varints) and still accepted by protobuf-c, must be accepted and
 * read the same; every entry's
 * bytes are touched so that ASan sees a read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job/logwire.h"
#include "job/pb.h"

static void same(const struct logwire_msg *m, const pb_LogsResponse *r)
{
  if (m->seq != r->seq || m->dropped != r->dropped || m->attempt != r->attempt ||
      m->n_entries != r->n_entries || (m->job != NULL) != (r->job != NULL))
    abort();
  for (size_t i = 0; i < r->n_entries; i++) {
    const struct logwire_entry *e = &m->entries[i];
    const pb_LogEntry *x = r->entries[i];
    if (e->stream != (int32_t)x->stream || e->ts_us != x->ts_us || e->len != x->data.len ||
        (e->len && memcmp(e->data, x->data.data, e->len)) || e->partial != !!x->partial ||
        e->no_eol != !!x->no_eol)
      abort();
  }
  /* protobuf-c merges a repeated job differently (see logwire.h). */
  if (m->job && m->n_job_parts == 1 && m->job->attempt != r->job->attempt)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* A copy of exactly size bytes: a read past it is an ASan error. */
  uint8_t *in = malloc(size ? size : 1);
  memcpy(in, data, size);
  struct logwire_msg m;
  logwire_init(&m);
  int rc = logwire_parse(&m, in, size);
  volatile uint8_t x = 0;
  for (size_t i = 0; rc == 0 && i < m.n_entries; i++)
    for (size_t j = 0; j < m.entries[i].len; j++)
      x ^= m.entries[i].data[j];
  (void)x;

  pb_LogsResponse *r = drover__v1__logs_response__unpack(NULL, size, in);
  if (r && rc == 0)
    same(&m, r);
  if (r) {
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *buf = malloc(len ? len : 1);
    protobuf_c_message_pack(&r->base, buf);
    /* protobuf-c may not read its own output (an unknown field 0 it took
     * from a two-byte key comes out as a one-byte key it refuses). */
    pb_LogsResponse *r2 = drover__v1__logs_response__unpack(NULL, len, buf);
    if (r2) {
      if (logwire_parse(&m, buf, len) != 0)
        abort();
      same(&m, r2);
      protobuf_c_message_free_unpacked(&r2->base, NULL);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    free(buf);
  }
  logwire_release(&m);
  free(in);
  return 0;
}
