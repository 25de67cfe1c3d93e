/* session.c - the networked agent's link to its coordinator (see session.h):
 * connect, Register and Welcome, the messages that come down, heartbeats,
 * reconnects and the cut-off, and the graceful shutdown. The jobs themselves
 * are runs.c's. */
#include "agent/session.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
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
#define SAMPLE_MS            1000 /* load figures are read this often ... */
#define MOVED_POINTS         5.0  /* ... and sent at once when CPU or memory moved this much */
#define GOING_AWAY_WAIT_MS   3000 /* after GoingAway, for the coordinator to end the stream */
#define DEFAULT_HEARTBEAT    5000
#define DEFAULT_NODE_TIMEOUT 60000

static void connect_now(struct agent_session *s);
static void going_away(struct agent_session *s);
static void stopped(struct agent_session *s);

/* ---- sending ---- */

int agent_session_send(struct agent_session *s, const pb_AgentMessage *m)
{
  if (!s->call || !s->welcomed)
    return -ENOTCONN;
  return rpc_call_send(s->call, &m->base);
}

static double mem_percent(const struct metrics_sample *ms)
{
  return ms->mem_total ? 100.0 * (double)ms->mem_used / (double)ms->mem_total : 0;
}

static void send_beat(struct agent_session *s, const struct metrics_sample *ms)
{
  pb_Heartbeat h = DROVER__V1__HEARTBEAT__INIT;
  unsigned used = runs_live(s);
  h.cpu_percent = ms->cpu_percent;
  h.mem_used_bytes = ms->mem_used;
  h.mem_available_bytes = ms->mem_available;
  h.mem_total_bytes = ms->mem_total;
  h.disk_free_bytes = ms->disk_free;
  h.net_rx_bytes = ms->net_rx;
  h.net_tx_bytes = ms->net_tx;
  h.load1 = ms->load1;
  h.running = core_running(s->core);
  h.free_slots = used < core_slots(s->core) ? core_slots(s->core) - used : 0;
  h.draining = s->draining || s->shutting;
  h.busy = ms->cpu_percent > s->o.busy_cpu || mem_percent(ms) > s->o.busy_mem;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_HEARTBEAT;
  m.heartbeat = &h;
  if (agent_session_send(s, &m) >= 0) {
    s->last_beat = uv_now(s->loop);
    s->last_cpu = ms->cpu_percent;
    s->last_mem = mem_percent(ms);
  }
}

void agent_session_beat(struct agent_session *s)
{
  struct metrics_sample ms;
  metrics_sample(&s->metrics, &ms);
  send_beat(s, &ms);
}

/* Every SAMPLE_MS: a heartbeat when the interval is over, or at once when
 * CPU or memory use moved by more than MOVED_POINTS (the scheduler's view
 * of `busy` should not lag a whole interval). */
static void beat_cb(uv_timer_t *t)
{
  struct agent_session *s = t->data;
  struct metrics_sample ms;
  metrics_sample(&s->metrics, &ms);
  if (uv_now(s->loop) - s->last_beat + SAMPLE_MS / 2 >= s->heartbeat_ms ||
      fabs(ms.cpu_percent - s->last_cpu) > MOVED_POINTS ||
      fabs(mem_percent(&ms) - s->last_mem) > MOVED_POINTS)
    send_beat(s, &ms);
}

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
  agent_session_beat(s);
  uint64_t every = s->heartbeat_ms < SAMPLE_MS ? s->heartbeat_ms : SAMPLE_MS;
  uv_timer_start(&s->beat_timer, beat_cb, every, every);
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
    stopped(s);
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

static int open_link(struct agent_session *s)
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

static void connect_now(struct agent_session *s)
{
  drop_old_client(s);
  if (s->shutting >= 3)
    return;
  int rc = open_link(s);
  if (rc < 0) {
    s->failures++;
    uint64_t delay = backoff_ms(s);
    log_warn("cannot start a connection; retrying", "coordinator=%s error=%s retry_ms=%llu",
             s->coordinator, rpc_strerror(rc), (unsigned long long)delay);
    uv_timer_start(&s->retry_timer, retry_cb, delay, 0);
  }
}

/* ---- shutdown ---- */

static void stopped(struct agent_session *s)
{
  if (s->shutting == 4)
    return;
  s->shutting = 4;
  uv_timer_t *ts[] = {&s->retry_timer, &s->cutoff_timer, &s->beat_timer, &s->progress_timer,
                      &s->flush_timer};
  for (size_t i = 0; i < ARRAY_SIZE(ts); i++)
    uv_timer_stop(ts[i]);
  if (s->call) {
    rpc_call *c = s->call;
    s->call = NULL;
    rpc_call_cancel(c);
  }
  log_info("agent stopped", "code=%d", s->stop_code);
  if (s->o.on_stopped)
    s->o.on_stopped(s, s->stop_code, s->stop_msg, s->o.ud);
}

static void going_away_timeout(uv_timer_t *t)
{
  stopped(t->data);
}

/* Everything is sent and acknowledged, or waiting is over: goodbye. */
static void going_away(struct agent_session *s)
{
  if (s->shutting >= 3)
    return;
  s->shutting = 3;
  uv_timer_stop(&s->flush_timer);
  uv_timer_stop(&s->retry_timer);
  uv_timer_stop(&s->cutoff_timer);
  if (!s->welcomed || !s->call) {
    stopped(s);
    return;
  }
  Drover__V1__GoingAway g = DROVER__V1__GOING_AWAY__INIT;
  g.reason = s->stop_msg ? s->stop_msg : "agent shutdown";
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_GOING_AWAY;
  m.going_away = &g;
  agent_session_send(s, &m);
  rpc_call_half_close(s->call);
  /* The coordinator ends the stream when it has read everything (on_done). */
  uv_timer_start(&s->flush_timer, going_away_timeout, GOING_AWAY_WAIT_MS, 0);
}

static void flush_timeout(uv_timer_t *t)
{
  struct agent_session *s = t->data;
  log_warn("results not acknowledged in time; they stay in the state dir for the next start",
           "held=%zu dir=%s", shipper_count(s->ships), s->st.dir);
  going_away(s);
}

static void on_ships_empty(void *ud)
{
  struct agent_session *s = ud;
  if (s->shutting == 2) {
    going_away(s);
    return;
  }
#ifdef __GLIBC__
  /* Idle again after a burst of output: give the freed batches back to the
   * system (glibc keeps freed memory in its arenas otherwise; an idle agent
   * would hold its busiest moment's memory for good). */
  if (!core_jobs(s->core))
    malloc_trim(0);
#endif
}

static void jobs_over(struct agent_core *c, void *ud)
{
  struct agent_session *s = ud;
  if (s->shutting >= 2)
    return;
  s->shutting = 2;
  if (!shipper_count(s->ships) || s->hurried) {
    going_away(s);
    return;
  }
  log_info("waiting for the coordinator to acknowledge output and results", "held=%zu",
           shipper_count(s->ships));
  /* Away: try again soon, not after the backoff reached while jobs ran. */
  if (!s->welcomed && uv_is_active((uv_handle_t *)&s->retry_timer)) {
    s->failures = 0;
    uv_timer_start(&s->retry_timer, retry_cb, backoff_ms(s), 0);
  }
  uv_timer_start(&s->flush_timer, flush_timeout, AGENT_SESSION_FLUSH_MS, 0);
}

void agent_session_shutdown(struct agent_session *s)
{
  if (s->shutting >= 3)
    return;
  if (!s->shutting) {
    s->shutting = 1;
    log_info("shutting down: taking no new jobs", "running=%u timeout_ms=%llu",
             core_running(s->core), (unsigned long long)s->o.shutdown_timeout_ms);
    agent_session_beat(s);
    core_shutdown(s->core, jobs_over, s);
    return;
  }
  s->hurried = 1;
  if (s->shutting == 1)
    core_shutdown(s->core, jobs_over, s);
  else
    going_away(s);
}

void agent_session_fatal(struct agent_session *s, int code, const char *msg)
{
  log_error(msg, "code=%d", code);
  if (!s->stop_msg) {
    s->stop_code = code;
    s->stop_msg = xstrdup(msg);
  }
  s->hurried = 1;
  if (s->shutting >= 2) {
    going_away(s);
    return;
  }
  if (!s->shutting) {
    s->shutting = 1;
    core_shutdown(s->core, jobs_over, s);
  }
  core_shutdown(s->core, jobs_over, s); /* cancel at once */
}

/* ---- life ---- */

static int copy_opts(struct agent_session *s, const struct agent_session_opts *o, char *err,
                     size_t errlen)
{
  s->o = *o;
  s->coordinator = xstrdup(o->coordinator ? o->coordinator : "");
  s->token = o->token && *o->token ? xstrdup(o->token) : NULL;
  if (o->name && *o->name) {
    s->name = xstrdup(o->name);
  } else {
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    s->name = xstrdup(host[0] ? host : "agent");
  }
  s->labels = xcalloc(o->nlabels + 1, sizeof(char *));
  for (size_t i = 0; i < o->nlabels; i++) {
    const char *eq = strchr(o->labels[i], '=');
    if (!eq || eq == o->labels[i]) {
      snprintf(err, errlen, "--label '%s': must be KEY=VALUE", o->labels[i]);
      return -EINVAL;
    }
    s->labels[s->nlabels++] = xstrdup(o->labels[i]);
  }
  if (!s->o.busy_cpu)
    s->o.busy_cpu = 90;
  if (!s->o.busy_mem)
    s->o.busy_mem = 90;
  s->o.coordinator = s->o.token = s->o.name = NULL;
  s->o.labels = NULL;
  return 0;
}

int agent_session_start(uv_loop_t *loop, const struct agent_session_opts *o,
                        struct agent_session **out, char *err, size_t errlen)
{
  struct agent_session *s = xcalloc(1, sizeof(*s));
  *out = s;
  s->loop = loop;
  s->st.lock_fd = -1;
  s->rng = (uint32_t)(now_us() ^ ((uint64_t)getpid() << 16)) | 1;
  s->heartbeat_ms = DEFAULT_HEARTBEAT;
  uv_timer_t *ts[] = {&s->retry_timer, &s->cutoff_timer, &s->beat_timer, &s->progress_timer,
                      &s->flush_timer};
  for (size_t i = 0; i < ARRAY_SIZE(ts); i++) {
    uv_timer_init(loop, ts[i]);
    ts[i]->data = s;
  }
  int rc = copy_opts(s, o, err, errlen);
  if (rc < 0)
    return rc;
  const char *dir = o->state_dir && *o->state_dir ? o->state_dir : state_default_dir();
  rc = state_open(&s->st, dir, err, errlen);
  if (rc < 0)
    return rc;
  if (!s->st.node_secret && !s->token) {
    snprintf(err, errlen,
             "this agent has no identity in '%s' yet: give it a token from 'drover token create' "
             "(--token T, or DROVER_TOKEN)",
             s->st.dir);
    return -EINVAL;
  }
  if (s->st.node_secret && s->token)
    log_debug("the state dir holds an identity; --token is not needed", "node=%s", s->st.node_id);
  struct shipper_opts so = {
      o->log_batch_lines, o->log_batch_interval_ms, o->spool_max, 0, on_ships_empty, s};
  s->ships = shipper_new(loop, &so, &s->st);
  struct core_opts co = {o->slots, o->shutdown_timeout_ms};
  s->core = core_new(loop, &co, &runs_core_ops, s);
  metrics_init(&s->metrics, s->st.dir);
  s->ncaps = metrics_capabilities(&s->caps);
  rc = runs_recover(s, err, errlen);
  if (rc < 0)
    return rc;
  rc = open_link(s);
  if (rc < 0) {
    snprintf(err, errlen, "--coordinator '%s': %s", s->coordinator, rpc_strerror(rc));
    return rc;
  }
  log_info("agent started", "coordinator=%s name=%s slots=%u state_dir=%s node=%s", s->coordinator,
           s->name, core_slots(s->core), s->st.dir, s->st.node_id[0] ? s->st.node_id : "-");
  return 0;
}

static void part_closed(void *ud)
{
  struct agent_session *s = ud;
  if (--s->closing > 0)
    return;
  void (*cb)(void *) = s->close_cb;
  void *cud = s->close_ud;
  while (s->stopped) {
    struct stopped *st = s->stopped;
    s->stopped = st->next;
    free(st);
  }
  state_release(&s->st);
  metrics_release(&s->metrics);
  metrics_capabilities_free(s->caps, s->ncaps);
  for (size_t i = 0; i < s->nlabels; i++)
    free(s->labels[i]);
  free(s->labels);
  free(s->coordinator);
  free(s->token);
  free(s->name);
  free(s->stop_msg);
  free(s);
  if (cb)
    cb(cud);
}

static void timer_closed(uv_handle_t *h)
{
  part_closed(h->data);
}

static void rpc_closed(rpc_client *c, void *ud)
{
  part_closed(ud);
}

void agent_session_close(struct agent_session *s, void (*cb)(void *ud), void *ud)
{
  s->close_cb = cb;
  s->close_ud = ud;
  s->shutting = 4;
  uv_timer_t *ts[] = {&s->retry_timer, &s->cutoff_timer, &s->beat_timer, &s->progress_timer,
                      &s->flush_timer};
  s->closing = (int)ARRAY_SIZE(ts) + 1; /* +1: released below, once all is started */
  for (size_t i = 0; i < ARRAY_SIZE(ts); i++)
    uv_close((uv_handle_t *)ts[i], timer_closed);
  if (s->call) {
    rpc_call *c = s->call;
    s->call = NULL;
    rpc_call_cancel(c);
  }
  rpc_client *cs[] = {s->client, s->old_client};
  s->client = s->old_client = NULL;
  for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
    if (!cs[i])
      continue;
    s->closing++;
    rpc_client_close(cs[i], rpc_closed);
  }
  if (s->ships) {
    s->closing++;
    shipper_close(s->ships, part_closed, s);
    s->ships = NULL;
  }
  if (s->core) {
    s->closing++;
    core_close(s->core, part_closed, s);
    s->core = NULL;
  }
  part_closed(s);
}
