/* shipsave.c - what of a finished attempt survives the agent: its result
 * and the batches it counts, written to the state dir when the coordinator
 * has not acknowledged them in time (see ship.h), and taken over by the
 * next life of the agent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/ship_int.h"
#include "base/log.h"
#include "base/util.h"

struct persist {
  uv_work_t req;
  struct ship *s;
  char *path;
  uint8_t *data;
  size_t len;
  int rc;
};

static void persist_work(uv_work_t *req)
{
  struct persist *p = req->data;
  p->rc = write_file_atomic(p->path, p->data, p->len);
}

static void persist_done(uv_work_t *req, int status)
{
  struct persist *p = req->data;
  struct ship *s = p->s;
  struct shipper *sh = s->sh;
  sh->writes--;
  s->persisting = 0;
  if (p->rc == 0) {
    s->persisted = 1;
    /* The result is on disk: a restart delivers it, no need to report the
     * attempt stopped. */
    state_record_remove(sh->st, s->job_id, s->attempt);
  } else {
    log_error("cannot write result to the state dir; it is held in memory only", "path=%s error=%s",
              p->path, strerror(-p->rc));
  }
  free(p->path);
  free(p->data);
  free(p);
  if (s->result_acked || s->dropped) {
    s->persisted = 0; /* the file goes with the ship */
    ship_maybe_free(s);
  }
  if (sh->closing && !sh->writes)
    shipper_close(sh, sh->close_cb, sh->close_ud);
}

/* The batches still owed go to the spool first: the result on disk then
 * comes with every batch it counts (last_log_seq). */
static int spool_owed(struct ship *s)
{
  for (size_t i = 0; i < s->qn; i++) {
    struct ship_entry *e = &s->q[s->qhead + i];
    if (e->mem) {
      int rc = ship_entry_to_spool(s, e);
      if (rc < 0)
        return rc;
    }
  }
  return 0;
}

void ship_persist(struct ship *s, int now)
{
  s->persist_at = 0;
  if (!s->fin || s->persisted || s->persisting || s->result_acked || s->dropped)
    return;
  char *path = state_result_path(s->sh->st, s->job_id, s->attempt);
  int rc = spool_owed(s);
  if (rc < 0) {
    log_error("cannot spool the log batches of a finished job; its result is held in memory only",
              "job=%s attempt=%u error=%s", s->job_id, s->attempt, strerror(-rc));
    free(path);
    return;
  }
  if (now) {
    rc = write_file_atomic(path, s->fin, s->fin_len);
    if (rc == 0) {
      s->persisted = 1;
      state_record_remove(s->sh->st, s->job_id, s->attempt);
    } else {
      log_error("cannot write result to the state dir", "path=%s error=%s", path, strerror(-rc));
    }
    free(path);
    return;
  }
  struct persist *p = xcalloc(1, sizeof(*p));
  p->req.data = p;
  p->s = s;
  p->path = path;
  p->data = xmalloc(s->fin_len);
  memcpy(p->data, s->fin, s->fin_len);
  p->len = s->fin_len;
  s->persisting = 1;
  s->sh->writes++;
  if (uv_queue_work(s->sh->loop, &p->req, persist_work, persist_done) < 0) {
    p->rc = -EAGAIN;
    persist_work(&p->req);
    persist_done(&p->req, 0);
  }
}

/* ---- a restart ---- */

struct loaded {
  struct ship_entry *v;
  size_t n, cap;
};

static void on_frame(void *ud, uint64_t seq, struct spool_seg *seg, uint64_t off, size_t len)
{
  struct loaded *l = ud;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = (struct ship_entry){.seq = seq, .len = len, .seg = seg, .off = off};
}

static int cmp_seq(const void *a, const void *b)
{
  uint64_t x = ((const struct ship_entry *)a)->seq, y = ((const struct ship_entry *)b)->seq;
  return x < y ? -1 : x > y;
}

int ship_restore(struct shipper *sh, const char *job_id, unsigned attempt)
{
  char *path = state_result_path(sh->st, job_id, attempt);
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = read_file_max(path, 64 * 1024 * 1024, (char **)&data, &len, NULL);
  free(path);
  pb_AgentMessage *m = rc == 0 ? drover__v1__agent_message__unpack(NULL, len, data) : NULL;
  struct ship *s = ship_alloc(sh, job_id, attempt);
  s->fin = data;
  s->fin_len = len;
  s->persisted = 1;
  if (!m || m->msg_case != DROVER__V1__AGENT_MESSAGE__MSG_JOB_FINISHED ||
      !m->job_finished->result) {
    log_error("result left by a previous life is unreadable; the attempt is reported stopped",
              "job=%s attempt=%u", job_id, attempt);
    goto fail;
  }
  uint64_t last = m->job_finished->result->last_log_seq;
  struct loaded l = {0};
  uint64_t before = s->spool.bytes;
  spool_load(&s->spool, on_frame, &l);
  ship_spool_delta(s, before);
  if (l.n)
    qsort(l.v, l.n, sizeof(*l.v), cmp_seq);
  /* What is there must run without a gap up to the result's last seq:
   * earlier seqs were acknowledged before the result was written. */
  uint64_t first = last + 1;
  size_t kept = 0;
  for (size_t i = 0; i < l.n; i++) {
    if (l.v[i].seq > last || (kept && l.v[i].seq == l.v[kept - 1].seq))
      continue; /* not counted by the result, or written twice */
    if (kept && l.v[i].seq != l.v[kept - 1].seq + 1)
      break;
    if (!kept)
      first = l.v[i].seq;
    l.v[kept++] = l.v[i];
  }
  if (kept && l.v[kept - 1].seq != last) {
    free(l.v);
    log_error("log batches left by a previous life are incomplete; the attempt is reported "
              "stopped",
              "job=%s attempt=%u last_seq=%llu", job_id, attempt, (unsigned long long)last);
    goto fail;
  }
  for (size_t i = 0; i < kept; i++)
    *ship_entry_push(s) = l.v[i];
  free(l.v);
  s->seq = last;
  s->acked = first - 1;
  s->next_send = first;
  protobuf_c_message_free_unpacked(&m->base, NULL);
  log_info("result of a previous life to deliver", "job=%s attempt=%u batches=%zu", job_id, attempt,
           kept);
  return 0;
fail:
  if (m)
    protobuf_c_message_free_unpacked(&m->base, NULL);
  s->dropped = 1;
  s->persisted = 0;
  ship_maybe_free(s);
  return -1;
}
