/* ship.c - log batches and results on their way to the coordinator (see
 * ship.h): batching, memory and spool, sending in order, acks. What goes to
 * disk for the next life of the agent is shipsave.c's. */
#include "agent/ship_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

/* ---- the queue of sealed batches ---- */

static struct ship_entry *entry_at(struct ship *s, uint64_t seq)
{
  if (!s->qn || seq < s->q[s->qhead].seq || seq > s->seq)
    return NULL;
  return &s->q[s->qhead + (seq - s->q[s->qhead].seq)];
}

struct ship_entry *ship_entry_push(struct ship *s)
{
  if (s->qhead + s->qn == s->qcap) {
    if (s->qhead > s->qcap / 2) {
      memmove(s->q, s->q + s->qhead, s->qn * sizeof(*s->q));
      s->qhead = 0;
    } else {
      s->qcap = s->qcap ? s->qcap * 2 : 16;
      s->q = xrealloc(s->q, s->qcap * sizeof(*s->q));
    }
  }
  struct ship_entry *e = &s->q[s->qhead + s->qn++];
  memset(e, 0, sizeof(*e));
  return e;
}

void ship_spool_delta(struct ship *s, uint64_t before)
{
  s->sh->spool_used = s->sh->spool_used + s->spool.bytes - before;
}

/* Forgets batches up to seq: stored by the coordinator. */
static void entries_ack(struct ship *s, uint64_t seq)
{
  while (s->qn && s->q[s->qhead].seq <= seq) {
    struct ship_entry *e = &s->q[s->qhead];
    if (e->mem) {
      s->sh->mem_used -= e->len;
      free(e->mem);
    }
    s->qhead++;
    s->qn--;
  }
  if (!s->qn)
    s->qhead = 0;
  s->sh->spool_used -= spool_release(&s->spool, seq);
}

static void entries_free(struct ship *s)
{
  for (size_t i = 0; i < s->qn; i++) {
    struct ship_entry *e = &s->q[s->qhead + i];
    if (e->mem) {
      s->sh->mem_used -= e->len;
      free(e->mem);
    }
  }
  free(s->q);
  s->q = NULL;
  s->qhead = s->qn = s->qcap = 0;
}

/* Moves an in-memory batch into the spool. */
int ship_entry_to_spool(struct ship *s, struct ship_entry *e)
{
  uint64_t before = s->spool.bytes;
  int rc = spool_append(&s->spool, e->seq, e->mem, e->len, &e->seg, &e->off);
  ship_spool_delta(s, before);
  if (rc < 0)
    return rc;
  s->sh->mem_used -= e->len;
  free(e->mem);
  e->mem = NULL;
  return 0;
}

/* Keeps sealed batch msg (taken) as seq: memory, then spool. Returns 0, or
 * -ENOSPC when neither has room (msg freed). */
static int keep(struct ship *s, uint64_t seq, uint8_t *msg, size_t len)
{
  struct shipper *sh = s->sh;
  if (sh->mem_used + len <= sh->o.mem_max) {
    struct ship_entry *e = ship_entry_push(s);
    e->seq = seq;
    e->len = len;
    e->mem = msg;
    sh->mem_used += len;
    return 0;
  }
  int rc = -ENOSPC;
  if (sh->spool_used + SPOOL_FRAME_HEAD + len <= sh->o.spool_max) {
    struct ship_entry e = {.seq = seq, .len = len};
    uint64_t before = s->spool.bytes;
    rc = spool_append(&s->spool, seq, msg, len, &e.seg, &e.off);
    ship_spool_delta(s, before);
    if (rc == 0)
      *ship_entry_push(s) = e;
    else if (!s->warned)
      log_error("cannot spool log batch; dropping output lines", "job=%s attempt=%u error=%s",
                s->job_id, s->attempt, strerror(-rc));
  } else if (!s->warned) {
    log_warn("spool full: dropping output lines until the coordinator takes some",
             "job=%s attempt=%u spool_max=%llu", s->job_id, s->attempt,
             (unsigned long long)sh->o.spool_max);
  }
  if (rc < 0)
    s->warned = 1;
  free(msg);
  return rc;
}

static void seal(struct ship *s)
{
  if (!s->cur.entries)
    return;
  uint8_t *msg;
  size_t len;
  unsigned lines = s->cur.lines;
  batch_seal(&s->cur, s->job_id, s->attempt, s->seq + 1, s->dropped_pending, &msg, &len);
  s->cur_deadline = 0;
  if (keep(s, s->seq + 1, msg, len) == 0) {
    s->seq++;
    s->dropped_pending = 0;
  } else {
    /* Not numbered: the next batch kept takes this seq, with the count. */
    s->dropped_pending += lines;
    s->dropped_total += lines;
  }
}

/* ---- the sink ---- */

static void sink_line(void *impl, enum job_stream st, int64_t ts_us, const char *data, size_t len,
                      unsigned flags)
{
  struct ship *s = impl;
  struct shipper *sh = s->sh;
  if (!s->running || s->dropped)
    return;
  if (!s->cur.entries) {
    s->cur_deadline = uv_now(sh->loop) + sh->o.batch_interval_ms;
    if (!uv_is_active((uv_handle_t *)&sh->tick) ||
        uv_timer_get_due_in(&sh->tick) > sh->o.batch_interval_ms)
      shipper_schedule(sh);
  }
  batch_add(&s->cur, st, ts_us, data, len, flags);
  if (s->cur.entries >= sh->o.batch_lines || s->cur.len >= BATCH_MAX_BYTES) {
    seal(s);
    shipper_pump(sh);
  }
}

void ship_sink(struct ship *s, struct core_sink *out)
{
  out->line = sink_line;
  out->impl = s;
}

/* ---- ships ---- */

struct ship *ship_alloc(struct shipper *sh, const char *job_id, unsigned attempt)
{
  struct ship *s = xcalloc(1, sizeof(*s));
  s->sh = sh;
  snprintf(s->job_id, sizeof(s->job_id), "%s", job_id);
  s->attempt = attempt;
  s->next_send = 1;
  batch_init(&s->cur);
  spool_init(&s->spool, sh->st->spool, job_id, attempt, sh->seg_max);
  s->next = sh->ships;
  if (sh->ships)
    sh->ships->prev = s;
  sh->ships = s;
  sh->nships++;
  return s;
}

struct ship *ship_new(struct shipper *sh, const char *job_id, unsigned attempt)
{
  struct ship *s = ship_alloc(sh, job_id, attempt);
  s->running = 1;
  return s;
}

int ship_running(const struct ship *s)
{
  return s->running;
}

/* Gone for good: acknowledged, or dropped. Its files go. */
static void ship_free(struct ship *s, int keep_files)
{
  struct shipper *sh = s->sh;
  if (s->prev)
    s->prev->next = s->next;
  else
    sh->ships = s->next;
  if (s->next)
    s->next->prev = s->prev;
  sh->nships--;
  entries_free(s);
  batch_release(&s->cur);
  uint64_t before = s->spool.bytes;
  if (keep_files) {
    spool_close(&s->spool);
  } else {
    spool_destroy(&s->spool);
    char *path = state_result_path(sh->st, s->job_id, s->attempt);
    unlink(path);
    free(path);
    state_record_remove(sh->st, s->job_id, s->attempt);
  }
  sh->spool_used -= before;
  free(s->fin);
  free(s);
  if (!sh->nships && !sh->closing && sh->o.on_empty)
    sh->o.on_empty(sh->o.ud);
}

void ship_maybe_free(struct ship *s)
{
  if (!s->running && !s->persisting && (s->dropped || s->result_acked))
    ship_free(s, 0);
}

void ship_end(struct ship *s, pb_JobResult *r)
{
  struct shipper *sh = s->sh;
  s->running = 0;
  if (s->dropped) {
    protobuf_c_message_free_unpacked(&r->base, NULL);
    ship_maybe_free(s);
    return;
  }
  seal(s);
  r->last_log_seq = s->seq;
  r->lines_dropped = s->dropped_total;
  r->attempt = s->attempt;
  Drover__V1__JobFinished f = DROVER__V1__JOB_FINISHED__INIT;
  f.job_id = s->job_id;
  f.attempt = s->attempt;
  f.result = r;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_JOB_FINISHED;
  m.job_finished = &f;
  s->fin_len = protobuf_c_message_get_packed_size(&m.base);
  s->fin = xmalloc(s->fin_len);
  protobuf_c_message_pack(&m.base, s->fin);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  s->persist_at = uv_now(sh->loop) + SHIP_PERSIST_MS;
  if (!uv_is_active((uv_handle_t *)&sh->tick) || uv_timer_get_due_in(&sh->tick) > SHIP_PERSIST_MS)
    shipper_schedule(sh);
  shipper_pump(sh);
}

void ship_drop(struct ship *s)
{
  s->dropped = 1;
  batch_clear(&s->cur);
  s->cur_deadline = 0;
  s->persist_at = 0;
  ship_maybe_free(s);
}

struct ship *shipper_find(struct shipper *sh, const char *job_id, unsigned attempt)
{
  for (struct ship *s = sh->ships; s; s = s->next)
    if (s->attempt == attempt && !strcmp(s->job_id, job_id))
      return s;
  return NULL;
}

size_t shipper_count(const struct shipper *sh)
{
  return sh->nships;
}

/* ---- deadlines ---- */

static void tick_cb(uv_timer_t *t)
{
  struct shipper *sh = t->data;
  uint64_t now = uv_now(sh->loop);
  for (struct ship *s = sh->ships, *next; s; s = next) {
    next = s->next;
    if (s->cur_deadline && s->cur_deadline <= now)
      seal(s);
    if (s->persist_at && s->persist_at <= now)
      ship_persist(s, 0);
  }
  shipper_pump(sh);
  shipper_schedule(sh);
}

/* Arms the timer for the earliest deadline, if any. */
void shipper_schedule(struct shipper *sh)
{
  uint64_t next = UINT64_MAX;
  for (struct ship *s = sh->ships; s; s = s->next) {
    if (s->cur_deadline && s->cur_deadline < next)
      next = s->cur_deadline;
    if (s->persist_at && s->persist_at < next)
      next = s->persist_at;
  }
  uv_timer_stop(&sh->tick);
  if (next == UINT64_MAX)
    return;
  uint64_t now = uv_now(sh->loop);
  uv_timer_start(&sh->tick, tick_cb, next > now ? next - now : 0, 0);
}

/* ---- the link ---- */

size_t shipper_held(struct shipper *sh, pb_HeldJob ***out)
{
  size_t n = 0;
  *out = xcalloc(sh->nships + 1, sizeof(**out));
  for (struct ship *s = sh->ships; s; s = s->next) {
    if (s->dropped)
      continue;
    pb_HeldJob *h = xmalloc(sizeof(*h));
    drover__v1__held_job__init(h);
    h->job_id = xstrdup(s->job_id);
    h->attempt = s->attempt;
    h->log_seq = s->seq;
    h->finished = s->fin != NULL;
    (*out)[n++] = h;
  }
  return n;
}

void shipper_held_free(pb_HeldJob **v, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(v[i]->job_id);
    free(v[i]);
  }
  free(v);
}

void shipper_attach(struct shipper *sh, rpc_call *call)
{
  sh->call = call;
}

void shipper_detach(struct shipper *sh)
{
  sh->call = NULL;
  for (struct ship *s = sh->ships; s; s = s->next) {
    s->next_send = s->acked + 1;
    s->fin_sent = 0;
  }
}

/* A spooled batch read straight into the stream's queue. */
struct spool_fill {
  const struct ship_entry *e;
  int err;
};

static int fill_from_spool(void *ud, uint8_t *dst, size_t len)
{
  struct spool_fill *f = ud;
  f->err = spool_read(f->e->seg, f->e->off, dst, len);
  return f->err;
}

/* Sends the next thing ship s owes, if any. Returns 0 (sent, go on), 1
 * (sent, but the stream is full: stop), 2 (nothing to send), or < 0 (not
 * sent: stop). */
static int send_next(struct shipper *sh, struct ship *s)
{
  if (s->dropped)
    return 2;
  struct ship_entry *e = entry_at(s, s->next_send);
  if (e) {
    int rc;
    if (e->mem) {
      rc = rpc_call_send_bytes(sh->call, e->mem, e->len);
    } else {
      struct spool_fill f = {e, 0};
      rc = rpc_call_send_fill(sh->call, e->len, fill_from_spool, &f);
      if (f.err < 0) {
        /* The batch is lost: the coordinator would wait for it forever. */
        log_error("cannot read spooled log batch; the attempt is dropped",
                  "job=%s seq=%llu "
                  "error=%s",
                  s->job_id, (unsigned long long)e->seq, strerror(-f.err));
        ship_drop(s);
        return 2;
      }
    }
    if (rc >= 0)
      s->next_send++;
    return rc;
  }
  if (s->fin && !s->fin_sent && s->next_send > s->seq) {
    int rc = rpc_call_send_bytes(sh->call, s->fin, s->fin_len);
    if (rc >= 0)
      s->fin_sent = 1;
    return rc;
  }
  return 2;
}

void shipper_pump(struct shipper *sh)
{
  if (!sh->call || sh->pumping)
    return;
  sh->pumping = 1;
  /* One message per ship per round: a job with a big backlog does not hold
   * up the others' batches. */
  for (int more = 1; more && sh->call;) {
    more = 0;
    for (struct ship *s = sh->ships, *next; s; s = next) {
      next = s->next;
      int rc = send_next(sh, s);
      if (rc == 0) {
        more = 1;
      } else if (rc != 2) {
        more = 0;
        break;
      }
    }
  }
  sh->pumping = 0;
}

int shipper_welcome(struct shipper *sh, const pb_HeldJobState *st)
{
  struct ship *s = shipper_find(sh, st->job_id, st->attempt);
  if (!s || s->dropped)
    return 0;
  uint64_t have = st->log_seq > s->seq ? s->seq : st->log_seq;
  if (have < s->acked) {
    log_error("the coordinator lacks log batches this agent no longer has; dropping the attempt",
              "job=%s attempt=%u coordinator_seq=%llu acked=%llu", s->job_id, s->attempt,
              (unsigned long long)st->log_seq, (unsigned long long)s->acked);
    ship_drop(s);
    return -1;
  }
  s->acked = have;
  entries_ack(s, have);
  s->next_send = have + 1;
  if (st->result_stored && s->fin) {
    s->result_acked = 1;
    ship_maybe_free(s);
  }
  return 0;
}

void shipper_ack(struct shipper *sh, const char *job_id, unsigned attempt, uint64_t log_seq,
                 int result)
{
  struct ship *s = shipper_find(sh, job_id, attempt);
  if (!s || s->dropped)
    return;
  if (log_seq > s->seq)
    log_seq = s->seq;
  if (log_seq > s->acked) {
    s->acked = log_seq;
    entries_ack(s, log_seq);
  }
  if (result && s->fin) {
    s->result_acked = 1;
    s->persist_at = 0;
    ship_maybe_free(s);
  }
}

void shipper_drop_all(struct shipper *sh)
{
  for (struct ship *s = sh->ships, *next; s; s = next) {
    next = s->next;
    ship_drop(s);
  }
}

/* ---- lifecycle ---- */

struct shipper *shipper_new(uv_loop_t *loop, const struct shipper_opts *o, struct agent_state *st)
{
  struct shipper *sh = xcalloc(1, sizeof(*sh));
  sh->loop = loop;
  sh->o = *o;
  if (!sh->o.batch_lines)
    sh->o.batch_lines = SHIP_DEFAULT_BATCH_LINES;
  if (!sh->o.batch_interval_ms)
    sh->o.batch_interval_ms = SHIP_DEFAULT_INTERVAL_MS;
  if (!sh->o.spool_max)
    sh->o.spool_max = SHIP_DEFAULT_SPOOL_MAX;
  if (!sh->o.mem_max)
    sh->o.mem_max = SHIP_DEFAULT_MEM_MAX;
  /* Segments of an eighth of the bound: a segment is freed only once all
   * of it is acknowledged, so this is also how much the bound may be held
   * by batches already stored. */
  sh->seg_max = sh->o.spool_max / 8;
  if (sh->seg_max < 64 * 1024)
    sh->seg_max = 64 * 1024;
  if (sh->seg_max > 8 * 1024 * 1024)
    sh->seg_max = 8 * 1024 * 1024;
  sh->st = st;
  uv_timer_init(loop, &sh->tick);
  sh->tick.data = sh;
  return sh;
}

static void tick_closed(uv_handle_t *h)
{
  struct shipper *sh = h->data;
  void (*cb)(void *) = sh->close_cb;
  void *ud = sh->close_ud;
  free(sh);
  if (cb)
    cb(ud);
}

void shipper_close(struct shipper *sh, void (*cb)(void *ud), void *ud)
{
  if (!sh->closing) {
    sh->closing = 1;
    sh->close_cb = cb;
    sh->close_ud = ud;
    sh->call = NULL;
    for (struct ship *s = sh->ships; s; s = s->next)
      if (!s->dropped)
        ship_persist(s, 1);
  }
  if (sh->writes)
    return; /* persist_done calls again */
  while (sh->ships) {
    struct ship *s = sh->ships;
    ship_free(s, !s->dropped);
  }
  uv_close((uv_handle_t *)&sh->tick, tick_closed);
}
