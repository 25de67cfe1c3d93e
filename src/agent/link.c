/* link.c - the networked agent's Connect stream and its life: Register
 * and Welcome, the messages that come down, reconnects with backoff, and
 * the cut-off (docs/protocol.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/session_int.h"
#include "base/log.h"
#include "base/util.h"

#define METHOD_CONNECT       "/drover.v1.AgentService/Connect"
#define BACKOFF_BASE_MS      100
#define BACKOFF_CAP_MS       30000
#define CONNECT_TIMEOUT_MS   10000
#define DEFAULT_HEARTBEAT    5000
#define DEFAULT_NODE_TIMEOUT 60000

static void connect_now(struct agent_session *s);

/* ---- register ---- */

void agent_session_add_stopped(struct agent_session *s, const char *id, unsigned attempt,
                               int from_restart)
{
  struct stopped *st = xcalloc(1, sizeof(*st));
  snprintf(st->id, sizeof(st->id), "%s", id);
  st->attempt = attempt;
  st->from_restart = from_restart;
  st->next = s->stopped;
  s->stopped = st;
}

static void send_register(struct agent_session *s)
{
  pb_Register r = DROVER__V1__REGISTER__INIT;
  if (s->st.node_secret) {
    r.node_id = s->st.node_id;
    r.node_secret = s->st.node_secret;
  } else {
    r.token = s->token;
  }
  r.name = s->name;
  r.version = DROVER_VERSION;
  r.slots = core_slots(s->core);
  r.prefetch = s->o.prefetch;
  r.n_capabilities = s->ncaps;
  r.capabilities = s->caps;
  r.resources = metrics_resources(s->st.dir);
  Drover__V1__Register__LabelsEntry *ents = xcalloc(s->nlabels + 1, sizeof(*ents));
  Drover__V1__Register__LabelsEntry **eptr = xcalloc(s->nlabels + 1, sizeof(*eptr));
  for (size_t i = 0; i < s->nlabels; i++) {
    drover__v1__register__labels_entry__init(&ents[i]);
    char *eq = strchr(s->labels[i], '=');
    *eq = '\0'; /* split in place for the pack, joined again below */
    ents[i].key = s->labels[i];
    ents[i].value = eq + 1;
    eptr[i] = &ents[i];
  }
  r.n_labels = s->nlabels;
  r.labels = eptr;
  pb_HeldJob **held;
  r.n_jobs = shipper_held(s->ships, &held);
  r.jobs = held;
  size_t ns = 0;
  for (struct stopped *st = s->stopped; st; st = st->next)
    ns++;
  pb_HeldJob *sv = xcalloc(ns + 1, sizeof(*sv)), **sp = xcalloc(ns + 1, sizeof(*sp));
  ns = 0;
  for (struct stopped *st = s->stopped; st; st = st->next, ns++) {
    st->reported = 1;
    drover__v1__held_job__init(&sv[ns]);
    sv[ns].job_id = st->id;
    sv[ns].attempt = st->attempt;
    sp[ns] = &sv[ns];
  }
  r.n_stopped = ns;
  r.stopped = sp;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_REGISTER;
  m.register_ = &r;
  rpc_call_send(s->call, &m.base);
  log_debug("registering", "coordinator=%s held=%zu stopped=%zu", s->coordinator, r.n_jobs, ns);
  for (size_t i = 0; i < s->nlabels; i++)
    ents[i].value[-1] = '=';
  free(ents);
  free(eptr);
  free(sv);
  free(sp);
  shipper_held_free(held, r.n_jobs);
  metrics_resources_free(r.resources);
}

static void on_welcome(struct agent_session *s, const pb_Welcome *w)
{
  if (w->node_secret && *w->node_secret) {
    /* A token was spent for this identity: it is on disk before anything
     * else happens, or the agent could never come back. */
    int rc = w->node_id && *w->node_id ? state_save_identity(&s->st, w->node_id, w->node_secret)
                                       : -EINVAL;
    if (rc < 0) {
      char *msg = xasprintf("cannot keep the node identity in '%s/node.json': %s; the token is "
                            "spent: create a new one with 'drover token create'",
                            s->st.dir, strerror(-rc));
      agent_session_fatal(s, rc, msg);
      free(msg);
      return;
    }
    log_info("registered with the coordinator", "node=%s name=%s", s->st.node_id, s->name);
  }
  s->heartbeat_ms = w->heartbeat_interval_ms ? w->heartbeat_interval_ms : DEFAULT_HEARTBEAT;
  s->node_timeout_ms = w->node_timeout_ms ? w->node_timeout_ms : DEFAULT_NODE_TIMEOUT;
  /* The coordinator has the attempts reported stopped now. */
  for (struct stopped **pp = &s->stopped; *pp;) {
    struct stopped *st = *pp;
    if (!st->reported) {
      pp = &st->next;
      continue;
    }
    *pp = st->next;
    if (st->from_restart)
      state_record_remove(&s->st, st->id, st->attempt);
    free(st);
  }
  for (size_t i = 0; i < w->n_jobs; i++) {
    const pb_HeldJobState *hs = w->jobs[i];
    if (!hs->job_id)
      continue;
    if (hs->stop) {
      runs_stop(s, hs->job_id, hs->attempt, "the coordinator has requeued or ended it");
    } else if (shipper_welcome(s->ships, hs) < 0) {
      runs_stop(s, hs->job_id, hs->attempt, "its output cannot be delivered whole");
      agent_session_add_stopped(s, hs->job_id, hs->attempt, 0);
    }
  }
  s->welcomed = 1;
  s->failures = 0;
  s->cut_since = 0;
  uv_timer_stop(&s->cutoff_timer);
  log_info("connected to the coordinator", "coordinator=%s node=%s jobs=%u held=%zu",
           s->coordinator, s->st.node_id, core_running(s->core), shipper_count(s->ships));
  agent_session_beat_start(s);
  shipper_attach(s->ships, s->call);
  runs_flush_progress(s);
  shipper_pump(s->ships);
}

/* ---- the stream ---- */

static void on_message(rpc_call *call, struct rpc_msg *msg, void *ud)
{
  struct agent_session *s = ud;
  const pb_CoordinatorMessage *m = (const pb_CoordinatorMessage *)msg->msg;
  if (!m || call != s->call)
    return;
  if (!s->welcomed && m->msg_case != DROVER__V1__COORDINATOR_MESSAGE__MSG_WELCOME) {
    log_warn("message before Welcome; ignored", "case=%d", (int)m->msg_case);
    return;
  }
  switch (m->msg_case) {
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_WELCOME:
    if (!s->welcomed)
      on_welcome(s, m->welcome);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_RUN_JOB:
    runs_on_run(s, m->run_job);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_CANCEL_JOB:
    runs_on_cancel(s, m->cancel_job);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_ACK:
    if (m->ack->job_id)
      shipper_ack(s->ships, m->ack->job_id, m->ack->attempt, m->ack->log_seq, m->ack->result);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_DRAIN:
    if (!s->draining)
      log_info("node drained: taking no new jobs", "reason=\"%s\"",
               m->drain->reason ? m->drain->reason : "");
    s->draining = 1;
    runs_give_back(s, "the node is draining");
    agent_session_beat(s);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_STDIN:
    runs_on_stdin(s, m->stdin);
    break;
  default:
    break; /* Ping, and what a newer coordinator may send */
  }
}

static void on_writable(rpc_call *call, void *ud)
{
  struct agent_session *s = ud;
  if (call == s->call)
    shipper_pump(s->ships);
}

/* Full jitter (a uniform delay between 0 and the exponential bound): many
 * agents cut off together do not come back together. */
static uint64_t backoff_ms(struct agent_session *s)
{
  unsigned shift = s->failures < 16 ? s->failures : 16;
  uint64_t cap = (uint64_t)BACKOFF_BASE_MS << shift;
  if (cap > BACKOFF_CAP_MS)
    cap = BACKOFF_CAP_MS;
  s->rng ^= s->rng << 13;
  s->rng ^= s->rng >> 17;
  s->rng ^= s->rng << 5;
  return s->rng % (cap + 1);
}

static void retry_cb(uv_timer_t *t)
{
  connect_now(t->data);
}

/* The keepalive of the next connection: a silent coordinator is noticed
 * within a fraction of its node timeout. */
static void keepalive_of(const struct agent_session *s, unsigned *interval, unsigned *timeout)
{
  uint64_t third = (s->node_timeout_ms ? s->node_timeout_ms : DEFAULT_NODE_TIMEOUT) / 3;
  *interval = (unsigned)(third < 1000 ? 1000 : third > 20000 ? 20000 : third);
  *timeout = (unsigned)(third < 2000 ? 2000 : third > 20000 ? 20000 : third);
}

static void cutoff_cb(uv_timer_t *t)
{
  struct agent_session *s = t->data;
  if (s->welcomed || !s->cut_since)
    return;
  log_warn("cut off from the coordinator for longer than its node timeout; stopping jobs (they are "
           "requeued or lost there)",
           "node_timeout_ms=%llu running=%u held=%zu", (unsigned long long)s->node_timeout_ms,
           core_running(s->core), shipper_count(s->ships));
  /* Reported stopped at the next Register: an attempt the coordinator still
   * thought assigned must not be sent again as if it never ran. */
  struct stopped *mark = s->stopped;
  for (struct core_job *cj = core_jobs(s->core); cj; cj = cj->next)
    agent_session_add_stopped(s, cj->id, cj->attempt, 0);
  /* By id: a stop may end (and free) a job at once. */
  for (struct stopped *st = s->stopped; st != mark; st = st->next)
    runs_stop(s, st->id, st->attempt, "cut off from the coordinator");
  shipper_drop_all(s->ships);
  /* A Register on its way holds these jobs: it must not be the one the
   * coordinator answers, or it would wait for them forever. Start over. */
  if (s->call)
    rpc_call_cancel(s->call);
}

static void arm_cutoff(struct agent_session *s)
{
  if (!s->cut_since || !s->node_timeout_ms || s->shutting >= 3)
    return;
  uint64_t at = s->cut_since + s->node_timeout_ms, now = uv_now(s->loop);
  uv_timer_start(&s->cutoff_timer, cutoff_cb, at > now ? at - now : 0, 0);
}

static void on_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct agent_session *s = ud;
  if (call != s->call)
    return;
  int was = s->welcomed;
  s->call = NULL;
  s->welcomed = 0;
  shipper_detach(s->ships);
  uv_timer_stop(&s->beat_timer);
  uv_timer_stop(&s->progress_timer);
  if (s->shutting >= 3) {
    agent_session_stopped(s);
    return;
  }
  if (st->code == RPC_UNAUTHENTICATED) {
    char *msg = xasprintf("the coordinator at '%s' refused this agent: %s", s->coordinator,
                          st->message ? st->message : "unauthenticated");
    agent_session_fatal(s, -EACCES, msg);
    free(msg);
    return;
  }
  uint64_t now = uv_now(s->loop);
  if (was) {
    s->cut_since = now;
    s->down_at = now;
    arm_cutoff(s);
  } else {
    s->failures++;
  }
  s->old_client = s->client;
  s->client = NULL;
  uint64_t delay = backoff_ms(s);
  log_warn(was ? "disconnected from the coordinator; reconnecting"
               : "cannot reach the coordinator; retrying",
           "coordinator=%s status=%s reason=\"%s\" retry_ms=%llu", s->coordinator,
           rpc_code_name(st->code), st->message ? st->message : "-", (unsigned long long)delay);
  uv_timer_start(&s->retry_timer, retry_cb, delay, 0);
}

/* A keepalive timeout means the coordinator was last heard from a whole
 * keepalive cycle before the disconnect: the cut-off clock starts then. */
static void on_disconnect(rpc_client *c, int err, void *ud)
{
  struct agent_session *s = ud;
  if (err != RPC_E_TIMEOUT || !s->cut_since || s->cut_since != s->down_at)
    return;
  unsigned iv, to;
  keepalive_of(s, &iv, &to);
  s->cut_since = s->cut_since > iv + to ? s->cut_since - iv - to : 1;
  arm_cutoff(s);
}

static void on_rpc_log(void *ud, const char *line)
{
  log_debug("rpc", "event=\"%s\"", line);
}

static void drop_old_client(struct agent_session *s)
{
  if (!s->old_client)
    return;
  rpc_client *c = s->old_client;
  s->old_client = NULL;
  rpc_client_close(c, NULL);
}

int agent_link_open(struct agent_session *s)
{
  unsigned iv, to;
  keepalive_of(s, &iv, &to);
  struct rpc_client_opts co = {
      .target = s->coordinator,
      .keepalive_interval_ms = iv,
      .keepalive_timeout_ms = to,
      .connect_timeout_ms = CONNECT_TIMEOUT_MS,
      .on_disconnect = on_disconnect,
      .on_log = on_rpc_log,
      .ud = s,
  };
  int rc = rpc_client_new(s->loop, &co, NULL, &s->client);
  if (rc < 0)
    return rc;
  struct rpc_call_opts callo = {
      .method = METHOD_CONNECT,
      .response = &drover__v1__coordinator_message__descriptor,
      .h = {.on_message = on_message, .on_writable = on_writable, .on_done = on_done},
      .ud = s,
  };
  rc = rpc_call_start(s->client, &callo, &s->call);
  if (rc < 0) {
    rpc_client_close(s->client, NULL);
    s->client = NULL;
    return rc;
  }
  send_register(s);
  return 0;
}

void agent_link_retry_soon(struct agent_session *s)
{
  if (s->welcomed || !uv_is_active((uv_handle_t *)&s->retry_timer))
    return;
  s->failures = 0;
  uv_timer_start(&s->retry_timer, retry_cb, backoff_ms(s), 0);
}

static void connect_now(struct agent_session *s)
{
  drop_old_client(s);
  if (s->shutting >= 3)
    return;
  int rc = agent_link_open(s);
  if (rc < 0) {
    s->failures++;
    uint64_t delay = backoff_ms(s);
    log_warn("cannot start a connection; retrying", "coordinator=%s error=%s retry_ms=%llu",
             s->coordinator, rpc_strerror(rc), (unsigned long long)delay);
    uv_timer_start(&s->retry_timer, retry_cb, delay, 0);
  }
}
