/* session.c - one agent's Connect stream on the coordinator side: register,
 * welcome, then the job reports; docs/protocol.md is the contract.
 *
 * Reports (JobStarted, LogBatch, Progress, JobFinished) count only for the
 * job's current attempt on the node it is assigned to: anything else is a
 * stale copy, ignored, and its node is told once to stop it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/id.h"
#include "base/log.h"
#include "base/util.h"
#include "coord/coord_int.h"
#include "job/pbwire.h"
#include "job/states.h"

#define LOG_SMALL_MAX (64u * 1024) /* an attempt's first bytes of log: in the store */

struct session;
static void dispatch(struct session *s, rpc_call *call, pb_AgentMessage *am);
static void log_attempt(struct coord *c, struct cjob *j);

struct session {
  struct coord *c;
  rpc_call *call;
  struct cnode *node;
  int registered; /* Register accepted (Welcome may still wait for its commit) */
  int welcomed;   /* Welcome sent */
  int dead;       /* the call is over; actions holding us just drop */
  int refs;
  char peer[96];
};

static void session_unref(struct session *s)
{
  if (--s->refs == 0)
    free(s);
}

int session_send(struct session *s, const pb_CoordinatorMessage *m)
{
  if (!s || s->dead)
    return -ENOTCONN;
  int rc = rpc_call_send(s->call, &m->base);
  if (rc < 0 && rc != RPC_E_STATE && rc != RPC_E_CLOSED) {
    /* The agent does not read what we send (its queue is over the cap): a
     * stuck peer, not one to wait for. */
    log_warn("agent stream over its limit; closing it", "node=%s error=%s",
             s->node ? s->node->id : "-", rpc_strerror(rc));
    session_kick(s, RPC_RESOURCE_EXHAUSTED, "the agent does not read its stream");
  }
  return rc < 0 ? rc : 0;
}

void session_kick(struct session *s, int code, const char *why)
{
  if (!s || s->dead)
    return;
  rpc_call_finish(s->call, code, why);
}

/* ---- messages to the agent ---- */

void session_send_run(struct coord *c, struct cjob *j)
{
  (void)c;
  if (!j->node || !j->node->sess || !j->node->sess->welcomed)
    return; /* sent again when the node is back (Register) */
  pb_Job job;
  cjob_view(j, &job);
  Drover__V1__RunJob run = DROVER__V1__RUN_JOB__INIT;
  run.job = &job;
  run.attempt = j->attempt;
  pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
  m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_RUN_JOB;
  m.run_job = &run;
  session_send(j->node->sess, &m);
}

static void send_cancel_to(struct session *s, const char *job_id, uint32_t attempt,
                           uint64_t grace_ms, const char *reason)
{
  Drover__V1__CancelJob cj = DROVER__V1__CANCEL_JOB__INIT;
  cj.job_id = (char *)job_id;
  cj.attempt = attempt;
  cj.grace_ms = grace_ms;
  cj.reason = (char *)reason;
  pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
  m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_CANCEL_JOB;
  m.cancel_job = &cj;
  session_send(s, &m);
}

void session_send_cancel(struct coord *c, struct cjob *j, const char *reason)
{
  (void)c;
  if (j->node && j->node->sess && j->node->sess->welcomed)
    send_cancel_to(j->node->sess, j->id, j->attempt, j->cancel_grace_ms, reason);
}

void session_send_drain(struct coord *c, struct cnode *n)
{
  (void)c;
  if (!n->sess || !n->sess->welcomed)
    return;
  Drover__V1__Drain d = DROVER__V1__DRAIN__INIT;
  d.reason = "drained by a user";
  pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
  m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_DRAIN;
  m.drain = &d;
  session_send(n->sess, &m);
}

static void tell_stale(struct session *s, struct cjob *j, const char *job_id, uint32_t attempt)
{
  if (j && j->stale_told == (int)attempt)
    return;
  if (j)
    j->stale_told = (int)attempt;
  log_info("stale report from a node; telling it to stop", "node=%s job=%s attempt=%u",
           s->node ? s->node->id : "-", job_id, attempt);
  send_cancel_to(s, job_id, attempt, 0, "stale");
}

/* The job whose current attempt on this node a report is about, or NULL. */
static struct cjob *current(struct session *s, const char *job_id, uint32_t attempt)
{
  struct cjob *j = cjob_get(s->c, job_id);
  if (!j || j->attempt != attempt || j->node != s->node ||
      (j->state != JS_ASSIGNED && j->state != JS_RUNNING))
    return NULL;
  return j;
}

/* ---- register and welcome ---- */

struct welcome {
  struct session *s;
  pb_Welcome w;
  char *secret;
  size_t n;
  pb_HeldJobState *states;
  pb_HeldJobState **ptrs;
};

static void welcome_free(struct welcome *wa)
{
  for (size_t i = 0; i < wa->n; i++)
    free(wa->states[i].job_id);
  free(wa->states);
  free(wa->ptrs);
  free(wa->secret);
  session_unref(wa->s);
  free(wa);
}

/* Runs once the node (and the token it spent) is durable. */
static void welcome_action(struct coord *c, void *arg)
{
  struct welcome *wa = arg;
  struct session *s = wa->s;
  if (!s->dead && s->node && s->node->sess == s) {
    pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
    m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_WELCOME;
    m.welcome = &wa->w;
    session_send(s, &m);
    s->welcomed = 1;
    struct cnode *n = s->node;
    /* What the agent should have and may not: assignments made durable
     * while it was away, cancels, the drain. */
    for (struct cjob *j = n->jobs; j; j = j->nnext) {
      if (j->state == JS_ASSIGNED && j->dispatched)
        session_send_run(c, j);
      if (j->dispatched || j->state == JS_RUNNING)
        jobsvc_stdin_dispatched(c, j);
      if (j->cancel_requested)
        session_send_cancel(c, j, j->cancel_reason ? j->cancel_reason : "cancelled");
    }
    if (n->state == NS_DRAINING)
      session_send_drain(c, n);
    cnode_update_avail(c, n);
    log_info("agent connected", "node=%s name=%s peer=%s slots=%u jobs=%u", n->id, n->name, s->peer,
             n->slots, n->running);
  }
  welcome_free(wa);
}

static void copy_info(struct cnode *n, const pb_Register *r, const char *peer)
{
  if (n->info)
    protobuf_c_message_free_unpacked(&n->info->base, NULL);
  /* A deep copy through pack/unpack: the request is freed after this call. */
  pb_Node tmp = DROVER__V1__NODE__INIT;
  Drover__V1__Node__LabelsEntry *ents = xcalloc(r->n_labels + 1, sizeof(*ents));
  Drover__V1__Node__LabelsEntry **eptr = xcalloc(r->n_labels + 1, sizeof(*eptr));
  for (size_t i = 0; i < r->n_labels; i++) {
    drover__v1__node__labels_entry__init(&ents[i]);
    ents[i].key = r->labels[i]->key;
    ents[i].value = r->labels[i]->value;
    eptr[i] = &ents[i];
  }
  tmp.n_labels = r->n_labels;
  tmp.labels = eptr;
  tmp.n_capabilities = r->n_capabilities;
  tmp.capabilities = r->capabilities;
  tmp.resources = r->resources;
  tmp.version = r->version;
  tmp.slots = r->slots;
  tmp.prefetch = r->prefetch;
  tmp.address = (char *)peer;
  size_t len = protobuf_c_message_get_packed_size(&tmp.base);
  uint8_t *buf = xmalloc(len ? len : 1);
  protobuf_c_message_pack(&tmp.base, buf);
  n->info = (pb_Node *)protobuf_c_message_unpack(&drover__v1__node__descriptor, NULL, len, buf);
  free(buf);
  free(ents);
  free(eptr);
  free(n->name);
  n->name = xstrdup(r->name && *r->name ? r->name : n->id);
  n->slots = r->slots ? r->slots : 1;
  n->prefetch = r->prefetch > n->slots ? n->slots : r->prefetch;
}

static int held_in(const pb_Register *r, const struct cjob *j)
{
  for (size_t i = 0; i < r->n_jobs; i++)
    if (!strcmp(r->jobs[i]->job_id, j->id) && r->jobs[i]->attempt == j->attempt)
      return 1;
  for (size_t i = 0; i < r->n_stopped; i++)
    if (!strcmp(r->stopped[i]->job_id, j->id) && r->stopped[i]->attempt == j->attempt)
      return 1;
  return 0;
}

/* What the coordinator knows of one job attempt the agent holds. */
static void held_state(struct coord *c, struct cnode *n, const pb_HeldJob *h, pb_HeldJobState *out)
{
  drover__v1__held_job_state__init(out);
  out->job_id = xstrdup(h->job_id);
  out->attempt = h->attempt;
  struct cjob *j = cjob_get(c, h->job_id);
  if (j && j->attempt == h->attempt && j->node == n &&
      (j->state == JS_ASSIGNED || j->state == JS_RUNNING)) {
    j->log_known = 0;
    log_attempt(c, j);
    out->log_seq = j->log_seq;
    j->log_seq_acked = out->log_seq;
    if (j->state == JS_ASSIGNED)
      cjob_set_state(c, j, JS_RUNNING, "running on its node after a reconnect");
    return;
  }
  /* Ended (in memory, or only in the store): the agent's result for this
   * attempt is the one stored when the attempts match. */
  int stored_end = 0;
  if (j) {
    stored_end = job_state_terminal(j->state) && j->end_committed && j->result &&
                 j->result->attempt == h->attempt;
  } else {
    struct store_job row;
    if (store_job_get(c->store, h->job_id, &row) == 0) {
      if (job_state_terminal(row.state) && row.attempt == h->attempt && row.result)
        stored_end = 1;
      store_job_release(&row);
    }
  }
  if (stored_end && h->finished)
    out->result_stored = 1;
  else
    out->stop = 1;
}

static int do_register(struct session *s, const pb_Register *r)
{
  struct coord *c = s->c;
  struct cnode *n = NULL;
  char *secret = NULL;
  int fresh = 0;

  if (r->node_id && *r->node_id) {
    n = cnode_get(c, r->node_id);
    char hash[65];
    coord_sha256_hex(r->node_secret ? r->node_secret : "", hash);
    if (!n || strcmp(hash, n->secret_hash)) {
      log_warn("agent refused: unknown node or wrong secret", "node=%s peer=%s", r->node_id,
               s->peer);
      rpc_call_finish(s->call, RPC_UNAUTHENTICATED,
                      "unknown node or wrong node secret: remove the agent's state dir and "
                      "register again with a token from 'drover token create'");
      return -1;
    }
  } else {
    if (!r->token || !*r->token || tokens_use(c, r->token) < 0) {
      log_warn("agent refused: bad token", "peer=%s name=%s", s->peer, r->name ? r->name : "");
      rpc_call_finish(s->call, RPC_UNAUTHENTICATED,
                      "token is not valid (unknown, used up or expired): create one with "
                      "'drover token create'");
      return -1;
    }
    n = xcalloc(1, sizeof(*n));
    id_new(n->id);
    secret = coord_random_hex("", 32);
    coord_sha256_hex(secret, n->secret_hash);
    n->registered_us = coord_now_us();
    n->state = NS_READY;
    smap_put(&c->nodes, n->id, n);
    fresh = 1;
  }

  if (n->sess && n->sess != s) {
    log_info("agent reconnected; ending its old stream", "node=%s", n->id);
    struct session *old = n->sess;
    n->sess = NULL;
    session_kick(old, RPC_ABORTED, "replaced by a newer connection of the same node");
  }
  copy_info(n, r, s->peer);
  s->node = n;
  n->sess = s;
  s->registered = 1;
  n->last_seen_ms = uv_now(c->loop);
  n->last_seen_us = coord_now_us();
  if (n->state != NS_DRAINING)
    n->state = NS_READY;
  n->busy = 0;

  /* A previous life's attempts, killed at its start: over, no result. */
  for (size_t i = 0; i < r->n_stopped; i++) {
    struct cjob *j = current(s, r->stopped[i]->job_id, r->stopped[i]->attempt);
    if (j)
      cjob_attempt_lost(c, j, "its agent restarted and stopped it");
  }

  struct welcome *wa = xcalloc(1, sizeof(*wa));
  wa->s = s;
  s->refs++;
  drover__v1__welcome__init(&wa->w);
  wa->w.node_id = n->id;
  wa->w.heartbeat_interval_ms = c->opts.heartbeat_ms;
  wa->w.node_timeout_ms = c->opts.node_timeout_ms;
  wa->secret = secret;
  wa->w.node_secret = secret;
  wa->n = r->n_jobs;
  wa->states = xcalloc(wa->n + 1, sizeof(*wa->states));
  wa->ptrs = xcalloc(wa->n + 1, sizeof(*wa->ptrs));
  for (size_t i = 0; i < r->n_jobs; i++) {
    held_state(c, n, r->jobs[i], &wa->states[i]);
    wa->ptrs[i] = &wa->states[i];
  }
  wa->w.n_jobs = wa->n;
  wa->w.jobs = wa->ptrs;

  /* Assigned to it here and held neither running nor stopped there: a
   * running one was lost by the agent; an assigned one is sent again after
   * Welcome (welcome_action). */
  for (struct cjob *j = n->jobs, *next; j; j = next) {
    next = j->nnext;
    if (j->state == JS_RUNNING && !held_in(r, j))
      cjob_attempt_lost(c, j, "its agent no longer has it");
  }
  cnode_save(c, n);
  log_info(fresh ? "node registered" : "node back", "node=%s name=%s peer=%s", n->id, n->name,
           s->peer);
  coord_after(c, ACT_COMMIT, welcome_action, wa);
  return 0;
}

/* ---- reports ---- */

static void on_heartbeat(struct session *s, const pb_Heartbeat *h)
{
  struct cnode *n = s->node;
  if (!n->info) {
    n->info = xmalloc(sizeof(*n->info));
    drover__v1__node__init(n->info);
  }
  if (n->info->last_heartbeat)
    protobuf_c_message_free_unpacked(&n->info->last_heartbeat->base, NULL);
  pb_Heartbeat *copy = xmalloc(sizeof(*copy));
  *copy = *h;
  n->info->last_heartbeat = copy;
  int was_busy = n->busy;
  n->busy = h->busy;
  if (h->draining && n->state == NS_READY) {
    n->state = NS_DRAINING;
    cnode_save(s->c, n);
  }
  if (was_busy != n->busy)
    log_info(n->busy ? "node busy" : "node no longer busy", "node=%s cpu=%.0f", n->id,
             h->cpu_percent);
  cnode_update_avail(s->c, n);
}

static void on_started(struct session *s, const Drover__V1__JobStarted *m)
{
  struct cjob *j = current(s, m->job_id, m->attempt);
  if (!j) {
    tell_stale(s, cjob_get(s->c, m->job_id), m->job_id, m->attempt);
    return;
  }
  if (j->state == JS_ASSIGNED)
    cjob_set_state(s->c, j, JS_RUNNING, NULL);
}

/* A LogBatch as far as the coordinator reads it: who it is for, not its
 * entries, which are stored as they came (the payload). */
struct batch_head {
  char job_id[129];
  uint32_t attempt;
  uint64_t seq;
};

/* Reads the head of a packed LogBatch without unpacking its entries (a batch
 * may hold thousands). Returns 0, or -1 for bytes that are not a LogBatch. */
static int batch_head(const uint8_t *p, size_t len, struct batch_head *h)
{
  struct pbw r;
  uint32_t field, wt;
  uint64_t v;
  const uint8_t *data;
  size_t dlen;
  int rc;
  memset(h, 0, sizeof(*h));
  pbw_init(&r, p, len);
  while ((rc = pbw_next(&r, &field, &wt, &v, &data, &dlen)) == 1) {
    if (field == 1 && wt == PBW_LEN) {
      if (dlen >= sizeof(h->job_id) || memchr(data, 0, dlen))
        return -1;
      memcpy(h->job_id, data, dlen);
      h->job_id[dlen] = '\0';
    } else if (field == 2 && wt == PBW_VARINT) {
      h->seq = v;
    } else if (field == 5 && wt == PBW_VARINT) {
      h->attempt = (uint32_t)v;
    }
  }
  return rc == 0 && h->job_id[0] ? 0 : -1;
}

/* The last seq of the attempt stored anywhere: the database (small logs)
 * or the job's file (the rest). */
static uint64_t stored_seq(struct coord *c, struct cjob *j)
{
  uint64_t db = 0, file = 0;
  if (store_log_last(c->store, j->id, j->attempt, &db) < 0)
    db = 0;
  if (!j->log)
    j->log = logstore_existing(c->logs, j->id);
  if (j->log)
    file = logfile_last_seq(j->log, j->attempt);
  j->log_in_file = file > 0;
  return db > file ? db : file;
}

/* Brings j's log bookkeeping to its current attempt. */
static void log_attempt(struct coord *c, struct cjob *j)
{
  if (j->log_attempt == j->attempt && j->log_known)
    return;
  j->log_attempt = j->attempt;
  j->log_small = 0;
  j->log_seq = stored_seq(c, j);
  j->log_known = 1;
}

static void on_log_batch(struct session *s, const uint8_t *payload, size_t plen)
{
  struct coord *c = s->c;
  struct batch_head b;
  if (batch_head(payload, plen, &b) < 0) {
    session_kick(s, RPC_INVALID_ARGUMENT, "malformed log batch");
    return;
  }
  struct cjob *j = current(s, b.job_id, b.attempt);
  if (!j) {
    tell_stale(s, cjob_get(c, b.job_id), b.job_id, b.attempt);
    return;
  }
  log_attempt(c, j);
  if (b.seq <= j->log_seq) {
    coord_ack_logs(c, j, j->log_in_file ? ACT_LOGS : ACT_COMMIT); /* sent again: stored once */
    return;
  }
  if (b.seq != j->log_seq + 1) {
    log_error("log batch out of order", "job=%s attempt=%u seq=%llu expected=%llu", j->id,
              j->attempt, (unsigned long long)b.seq, (unsigned long long)j->log_seq + 1);
    session_kick(s, RPC_INTERNAL, "log batch out of order: reconnect and send from the last ack");
    return;
  }
  /* The first LOG_SMALL_MAX bytes of an attempt go into the store with the
   * job's state changes (a job with a few lines costs no file); the rest to
   * the job's own file. */
  if (!j->log_in_file && j->log_small + plen <= LOG_SMALL_MAX) {
    store_log_put(c->store, j->id, j->attempt, b.seq, payload, plen);
    j->log_small += plen;
    j->log_seq = b.seq;
    coord_ack_logs(c, j, ACT_COMMIT); /* readers are woken once it is committed */
  } else {
    if (!j->log && !(j->log = logstore_file(c->logs, j->id))) {
      log_error("cannot open job log", "job=%s error=%s", j->id, strerror(errno));
      return; /* not acknowledged: the agent keeps the batch */
    }
    int rc = logfile_append(j->log, j->attempt, b.seq, payload, plen);
    if (rc < 0) {
      log_error("cannot store log batch", "job=%s seq=%llu error=%s", j->id,
                (unsigned long long)b.seq, strerror(-rc));
      return; /* not acknowledged: the agent resends after its next reconnect */
    }
    j->log_in_file = 1;
    j->log_seq = b.seq;
    coord_ack_logs(c, j, ACT_LOGS);
    jobs_wake_logs(c, j);
  }
  if (j->state == JS_ASSIGNED)
    cjob_set_state(c, j, JS_RUNNING, NULL);
}

static void on_progress(struct session *s, const pb_Progress *p)
{
  struct cjob *j = current(s, p->job_id, p->attempt);
  if (!j)
    return; /* progress is advisory: no stop message for it */
  if (j->progress)
    protobuf_c_message_free_unpacked(&j->progress->base, NULL);
  pb_Progress *copy = xmalloc(sizeof(*copy));
  drover__v1__progress__init(copy);
  copy->job_id = NULL;
  copy->percent = p->percent;
  copy->stage = p->stage && *p->stage ? xstrdup(p->stage) : NULL;
  copy->message = p->message && *p->message ? xstrdup(p->message) : NULL;
  copy->attempt = p->attempt;
  j->progress = copy;
}

struct result_ack {
  struct session *s;
  struct cjob *j;
  uint32_t attempt;
};

static void result_ack_action(struct coord *c, void *arg)
{
  struct result_ack *ra = arg;
  if (!ra->s->dead) {
    Drover__V1__Ack ack = DROVER__V1__ACK__INIT;
    ack.job_id = ra->j->id;
    ack.attempt = ra->attempt;
    ack.result = 1;
    ack.log_seq = ra->j->result ? ra->j->result->last_log_seq : 0;
    pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
    m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_ACK;
    m.ack = &ack;
    session_send(ra->s, &m);
  }
  cjob_unref(c, ra->j);
  session_unref(ra->s);
  free(ra);
}

static void ack_result_later(struct session *s, struct cjob *j, uint32_t attempt)
{
  struct result_ack *ra = xcalloc(1, sizeof(*ra));
  ra->s = s;
  s->refs++;
  ra->j = j;
  cjob_ref(j);
  ra->attempt = attempt;
  coord_after(s->c, ACT_COMMIT | ACT_LOGS, result_ack_action, ra);
}

static void on_finished(struct session *s, Drover__V1__JobFinished *f)
{
  struct coord *c = s->c;
  struct cjob *j = cjob_get(c, f->job_id);
  if (j && job_state_terminal(j->state) && j->result && j->result->attempt == f->attempt) {
    /* Our Ack was lost: acknowledge again (after its commit, if pending). */
    ack_result_later(s, j, f->attempt);
    return;
  }
  j = current(s, f->job_id, f->attempt);
  if (!j) {
    tell_stale(s, cjob_get(c, f->job_id), f->job_id, f->attempt);
    return;
  }
  if (!f->result) {
    session_kick(s, RPC_INVALID_ARGUMENT, "JobFinished without a result");
    return;
  }
  log_attempt(c, j);
  uint64_t have = j->log_seq;
  if (f->result->last_log_seq > have) {
    log_error("job finished before its logs arrived", "job=%s attempt=%u last_seq=%llu have=%llu",
              j->id, j->attempt, (unsigned long long)f->result->last_log_seq,
              (unsigned long long)have);
    session_kick(s, RPC_INTERNAL, "JobFinished before all its log batches");
    return;
  }
  pb_JobResult *r = f->result;
  f->result = NULL; /* taken */
  log_debug("job finished", "job=%s attempt=%u node=%s state=%s exit=%d", j->id, j->attempt,
            s->node->id, job_state_name((int)r->state), r->exit_code);
  cjob_finish(c, j, r);
  ack_result_later(s, j, f->attempt);
}

static void on_rejected(struct session *s, const Drover__V1__JobRejected *m)
{
  struct cjob *j = current(s, m->job_id, m->attempt);
  if (!j || j->state != JS_ASSIGNED)
    return;
  char *why = xasprintf("rejected by node '%s': %s", s->node->name,
                        m->reason && *m->reason ? m->reason : "no reason given");
  /* Not run: the attempt is not spent. */
  j->attempt--;
  cjob_set_state(s->c, j, JS_QUEUED, why);
  free(why);
}

static void on_going_away(struct session *s, const Drover__V1__GoingAway *g)
{
  struct cnode *n = s->node;
  log_info("agent going away", "node=%s name=%s reason=%s", n->id, n->name,
           g->reason && *g->reason ? g->reason : "-");
  n->state = NS_DOWN;
  cnode_update_avail(s->c, n);
  cnode_save(s->c, n);
  cjob_node_gone(s->c, n, "its node shut down");
}

/* ---- the call ---- */

static void on_start(rpc_call *call, void *ud)
{
  struct session *s = xcalloc(1, sizeof(*s));
  s->c = ud;
  s->call = call;
  s->refs = 1;
  snprintf(s->peer, sizeof(s->peer), "%s", rpc_call_peer(call) ? rpc_call_peer(call) : "?");
  rpc_call_set_data(call, s);
  /* The stream stays open for the agent's life: headers now. */
  rpc_call_send_headers(call);
}

/* The message's oneof field: the last top-level field, as protobuf reads
 * a oneof. Returns its number and bytes, or 0 for bytes that are not an
 * AgentMessage. */
static uint32_t which_msg(const struct rpc_msg *m, const uint8_t **data, size_t *len)
{
  struct pbw r;
  uint32_t field, wt, last = 0;
  uint64_t v;
  const uint8_t *d;
  size_t n;
  int rc;
  pbw_init(&r, m->data, m->len);
  while ((rc = pbw_next(&r, &field, &wt, &v, &d, &n)) == 1) {
    if (wt == PBW_LEN) {
      last = field;
      *data = d;
      *len = n;
    }
  }
  return rc == 0 ? last : 0;
}

static void on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct session *s = rpc_call_data(call);
  (void)ud;
  if (s->dead)
    return;
  const uint8_t *inner = NULL;
  size_t inner_len = 0;
  uint32_t kind = which_msg(m, &inner, &inner_len);
  /* Log batches are most of what comes: they are read by hand and stored
   * as they are, never unpacked (thousands of entries each). */
  if (kind == DROVER__V1__AGENT_MESSAGE__MSG_LOG_BATCH && s->registered && s->node &&
      s->node->sess == s) {
    s->node->last_seen_ms = uv_now(s->c->loop);
    s->node->last_seen_us = coord_now_us();
    on_log_batch(s, inner, inner_len);
    return;
  }
  pb_AgentMessage *am = (pb_AgentMessage *)protobuf_c_message_unpack(
      &drover__v1__agent_message__descriptor, NULL, m->len, m->data);
  if (!am) {
    rpc_call_finish(call, RPC_INVALID_ARGUMENT, "malformed AgentMessage");
    return;
  }
  dispatch(s, call, am);
  protobuf_c_message_free_unpacked(&am->base, NULL);
}

static void dispatch(struct session *s, rpc_call *call, pb_AgentMessage *am)
{
  if (!s->registered) {
    if (am->msg_case != DROVER__V1__AGENT_MESSAGE__MSG_REGISTER) {
      rpc_call_finish(call, RPC_FAILED_PRECONDITION, "the first message must be Register");
      return;
    }
    do_register(s, am->register_);
    return;
  }
  struct cnode *n = s->node;
  if (!n || n->sess != s)
    return; /* replaced by a newer stream: ignore what still comes here */
  n->last_seen_ms = uv_now(s->c->loop);
  n->last_seen_us = coord_now_us();
  switch (am->msg_case) {
  case DROVER__V1__AGENT_MESSAGE__MSG_HEARTBEAT:
    on_heartbeat(s, am->heartbeat);
    break;
  case DROVER__V1__AGENT_MESSAGE__MSG_JOB_STARTED:
    on_started(s, am->job_started);
    break;
  case DROVER__V1__AGENT_MESSAGE__MSG_PROGRESS:
    on_progress(s, am->progress);
    break;
  case DROVER__V1__AGENT_MESSAGE__MSG_JOB_FINISHED:
    on_finished(s, am->job_finished);
    break;
  case DROVER__V1__AGENT_MESSAGE__MSG_GOING_AWAY:
    on_going_away(s, am->going_away);
    break;
  case DROVER__V1__AGENT_MESSAGE__MSG_JOB_REJECTED:
    on_rejected(s, am->job_rejected);
    break;
  case DROVER__V1__AGENT_MESSAGE__MSG_STDIN_ACK:
    jobsvc_stdin_acked(s->c, am->stdin_ack->job_id, am->stdin_ack->attempt, am->stdin_ack->bytes);
    break;
  case DROVER__V1__AGENT_MESSAGE__MSG_REGISTER:
    rpc_call_finish(call, RPC_FAILED_PRECONDITION, "Register sent twice");
    break;
  default:
    /* A newer agent's message: skip it rather than break the stream. */
    break;
  }
}

static void on_half_close(rpc_call *call, void *ud)
{
  struct session *s = rpc_call_data(call);
  (void)ud;
  if (!s->dead)
    rpc_call_finish(call, RPC_OK, NULL);
}

static void on_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct session *s = rpc_call_data(call);
  (void)ud;
  if (!s)
    return;
  s->dead = 1;
  struct cnode *n = s->node;
  if (n && n->sess == s) {
    n->sess = NULL;
    cnode_update_avail(s->c, n);
    log_info("agent disconnected", "node=%s name=%s status=%s reason=%s", n->id, n->name,
             rpc_code_name(st->code), st->message ? st->message : "-");
  }
  session_unref(s);
}

const struct rpc_handlers session_handlers = {
    .on_start = on_start,
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_done = on_done,
};
