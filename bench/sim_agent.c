/* sim_agent.c - simulated agents: each holds its own HTTP/2 connection and
 * AgentService.Connect stream, as a real agent does, and keeps the agent's
 * side of docs/protocol.md that the coordinator can observe: Register with a
 * token, nothing before Welcome, heartbeats at the interval Welcome gives,
 * and for each RunJob at once JobStarted, optionally one LogBatch (seq 1),
 * and JobFinished with a succeeded result, held until its Ack. No process
 * runs: what is measured is the coordinator, not spawning.
 *
 * Anything the coordinator does that a real agent would not expect (a second
 * RunJob for an attempt it holds, an Ack for nothing it holds, a CancelJob
 * in a run that cancels nothing) is counted, so a run shows it. */
#include "bench/sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define CONNECT_METHOD "/drover.v1.AgentService/Connect"

struct held {
  struct held *next;
  char *job_id;
  uint32_t attempt;
  uint64_t log_seq; /* the last LogBatch seq sent (0: none) */
};

struct sagent {
  struct sim_agents *set;
  unsigned idx;
  rpc_client *client;
  rpc_call *call; /* NULL once the stream ended */
  uv_timer_t hb;
  int welcomed, stopping;
  uint64_t heartbeats;
  struct held *held;
};

struct sim_agents {
  uv_loop_t *loop;
  struct sim_agents_opts o;
  struct sagent *v;
  unsigned next;       /* the next agent to connect */
  unsigned connecting; /* started, not yet welcomed or failed */
  unsigned live;       /* streams not ended */
  unsigned closed;     /* handles and clients closed (2 per agent) */
  unsigned stop_failed;
  struct sim_agent_stats st;
};

static void connect_more(struct sim_agents *a);

/* Keeps the first thing that went wrong, for the report. */
static void fail(struct sagent *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sagent *g, const char *fmt, ...)
{
  struct sim_agents *a = g->set;
  if (a->st.first_error[0])
    return;
  int n = snprintf(a->st.first_error, sizeof(a->st.first_error),
                   "agent sim-%05u: ", a->o.first + g->idx);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->st.first_error + n, sizeof(a->st.first_error) - (size_t)n, fmt, ap);
  va_end(ap);
}

static int send_msg(struct sagent *g, pb_AgentMessage *m)
{
  if (!g->call)
    return -1;
  int rc = rpc_call_send(g->call, &m->base);
  if (rc < 0) {
    fail(g, "cannot send: %s", rpc_strerror(rc));
    return -1;
  }
  return 0;
}

/* ---- heartbeats ---- */

static void send_heartbeat(struct sagent *g)
{
  struct sim_agents *a = g->set;
  Drover__V1__Heartbeat h = DROVER__V1__HEARTBEAT__INIT;
  h.cpu_percent = 2.5;
  h.mem_total_bytes = 8ull << 30;
  h.mem_used_bytes = 1ull << 30;
  h.mem_available_bytes = 7ull << 30;
  h.disk_free_bytes = 100ull << 30;
  h.load1 = 0.1;
  /* Every job ends as it starts: none is running between messages. */
  h.running = 0;
  h.free_slots = a->o.slots;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_HEARTBEAT;
  m.heartbeat = &h;
  if (send_msg(g, &m) == 0) {
    g->heartbeats++;
    a->st.heartbeats++;
  }
}

static void hb_cb(uv_timer_t *t)
{
  struct sagent *g = t->data;
  if (g->call && !g->stopping)
    send_heartbeat(g);
}

/* ---- jobs ---- */

static struct held **find_held(struct sagent *g, const char *id, uint32_t attempt)
{
  for (struct held **p = &g->held; *p; p = &(*p)->next)
    if ((*p)->attempt == attempt && !strcmp((*p)->job_id, id))
      return p;
  return NULL;
}

static void drop_held(struct held **p)
{
  struct held *h = *p;
  *p = h->next;
  free(h->job_id);
  free(h);
}

static void run_job(struct sagent *g, const Drover__V1__RunJob *rj)
{
  struct sim_agents *a = g->set;
  if (!rj->job || !rj->job->spec || !rj->job->spec->id) {
    fail(g, "RunJob without a job id");
    return;
  }
  const char *id = rj->job->spec->id;
  if (find_held(g, id, rj->attempt)) {
    a->st.dup_runs++; /* the protocol says: ignore it */
    return;
  }
  a->st.runs++;
  struct held *h = xcalloc(1, sizeof(*h));
  h->job_id = xstrdup(id);
  h->attempt = rj->attempt;
  h->next = g->held;
  g->held = h;
  a->st.results_unacked++;

  int64_t t = now_us();
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  Drover__V1__JobStarted js = DROVER__V1__JOB_STARTED__INIT;
  js.job_id = (char *)id;
  js.attempt = rj->attempt;
  js.started_at_us = t;
  js.pid = 4242;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_JOB_STARTED;
  m.job_started = &js;
  send_msg(g, &m);

  if (a->o.log_batch) {
    static uint8_t line[] = "ok";
    pb_LogEntry e = DROVER__V1__LOG_ENTRY__INIT;
    pb_LogEntry *ep = &e;
    e.stream = DROVER__V1__LOG_STREAM__LOG_STREAM_STDOUT;
    e.ts_us = t;
    e.data.data = line;
    e.data.len = 2;
    pb_LogBatch b = DROVER__V1__LOG_BATCH__INIT;
    b.job_id = (char *)id;
    b.attempt = rj->attempt;
    b.seq = 1;
    b.entries = &ep;
    b.n_entries = 1;
    m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_LOG_BATCH;
    m.log_batch = &b;
    send_msg(g, &m);
    h->log_seq = 1;
  }

  pb_JobResult r = DROVER__V1__JOB_RESULT__INIT;
  r.state = DROVER__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
  r.exit_code = 0;
  r.started_at_us = t;
  r.finished_at_us = t + 1;
  r.duration_us = 1;
  r.attempt = rj->attempt;
  r.last_log_seq = h->log_seq;
  r.stdout_lines = h->log_seq ? 1 : 0;
  r.stdout_bytes = h->log_seq ? 3 : 0;
  Drover__V1__JobFinished f = DROVER__V1__JOB_FINISHED__INIT;
  f.job_id = (char *)id;
  f.attempt = rj->attempt;
  f.result = &r;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_JOB_FINISHED;
  m.job_finished = &f;
  send_msg(g, &m);
}

static void on_ack(struct sagent *g, const Drover__V1__Ack *ack)
{
  struct sim_agents *a = g->set;
  struct held **p = ack->job_id ? find_held(g, ack->job_id, ack->attempt) : NULL;
  if (!p) {
    a->st.unknown_acks++;
    return;
  }
  if (ack->log_seq && ack->log_seq >= (*p)->log_seq)
    a->st.logs_acked++;
  if (ack->result) {
    a->st.results_acked++;
    a->st.results_unacked--;
    a->st.last_result_ack_us = mono_us();
    drop_held(p);
  }
}

/* ---- the stream ---- */

static void on_welcome(struct sagent *g, const pb_Welcome *w)
{
  struct sim_agents *a = g->set;
  if (g->welcomed) {
    fail(g, "a second Welcome");
    return;
  }
  g->welcomed = 1;
  a->st.welcomed++;
  a->st.heartbeat_interval_ms = w->heartbeat_interval_ms;
  a->st.node_timeout_ms = w->node_timeout_ms;
  if (w->n_jobs)
    fail(g, "Welcome lists jobs a new agent cannot hold");
  a->connecting--;
  connect_more(a);
  send_heartbeat(g);
  uint64_t every = w->heartbeat_interval_ms ? w->heartbeat_interval_ms : 5000;
  uv_timer_start(&g->hb, hb_cb, every, every);
}

static void on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct sagent *g = ud;
  struct sim_agents *a = g->set;
  pb_CoordinatorMessage *cm = (pb_CoordinatorMessage *)m->msg;
  (void)call;
  if (!cm) {
    fail(g, "a CoordinatorMessage that does not unpack");
    return;
  }
  if (!g->welcomed && cm->msg_case != DROVER__V1__COORDINATOR_MESSAGE__MSG_WELCOME) {
    fail(g, "a message before Welcome");
    return;
  }
  switch (cm->msg_case) {
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_WELCOME:
    on_welcome(g, cm->welcome);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_RUN_JOB:
    if (!g->stopping)
      run_job(g, cm->run_job);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_ACK:
    on_ack(g, cm->ack);
    break;
  case DROVER__V1__COORDINATOR_MESSAGE__MSG_CANCEL_JOB: {
    /* Nothing in these runs is cancelled: count it, and stop the attempt
     * as the protocol says. */
    a->st.cancels++;
    struct held **p = find_held(g, cm->cancel_job->job_id, cm->cancel_job->attempt);
    if (p) {
      a->st.results_unacked--;
      drop_held(p);
    }
    break;
  }
  default:
    a->st.other_msgs++;
    break;
  }
}

static void on_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct sagent *g = ud;
  struct sim_agents *a = g->set;
  (void)call;
  g->call = NULL;
  a->live--;
  a->st.ended++;
  uv_timer_stop(&g->hb);
  if (g->stopping) {
    if (st->code != RPC_OK) {
      a->stop_failed++;
      fail(g, "stream ended badly after GoingAway: %s: %s", rpc_code_name(st->code),
           st->message ? st->message : "");
    }
    return;
  }
  a->st.failed++;
  fail(g, "stream ended: %s: %s", rpc_code_name(st->code), st->message ? st->message : "");
  if (!g->welcomed) {
    a->connecting--;
    connect_more(a);
  }
}

static void start_agent(struct sim_agents *a, struct sagent *g)
{
  struct rpc_client_opts co = {
      .target = a->o.target,
      .connect_timeout_ms = 60000,
      .ud = g,
  };
  a->connecting++;
  int rc = rpc_client_new(a->loop, &co, NULL, &g->client);
  if (rc < 0) {
    g->client = NULL;
    a->st.failed++;
    a->connecting--;
    fail(g, "cannot create a client: %s", rpc_strerror(rc));
    return;
  }
  struct rpc_call_opts o = {
      .method = CONNECT_METHOD,
      .response = &drover__v1__coordinator_message__descriptor,
      .h = {.on_message = on_message, .on_done = on_done},
      .ud = g,
  };
  rc = rpc_call_start(g->client, &o, &g->call);
  if (rc < 0) {
    g->call = NULL;
    a->st.failed++;
    a->connecting--;
    fail(g, "cannot start Connect: %s", rpc_strerror(rc));
    return;
  }
  a->live++;

  char name[32];
  snprintf(name, sizeof(name), "sim-%05u", a->o.first + g->idx);
  Drover__V1__Register__LabelsEntry le = DROVER__V1__REGISTER__LABELS_ENTRY__INIT;
  Drover__V1__Register__LabelsEntry *lp = &le;
  le.key = "bench";
  le.value = "sim";
  pb_NodeResources res = DROVER__V1__NODE_RESOURCES__INIT;
  res.cpus = 4;
  res.memory_bytes = 8ull << 30;
  res.disk_bytes = 100ull << 30;
  pb_Register r = DROVER__V1__REGISTER__INIT;
  r.token = (char *)a->o.token;
  r.name = name;
  r.labels = &lp;
  r.n_labels = 1;
  r.resources = &res;
  r.version = "bench-sim";
  r.slots = a->o.slots;
  pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
  m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_REGISTER;
  m.register_ = &r;
  send_msg(g, &m); /* queued until the connection is up */
}

static void connect_more(struct sim_agents *a)
{
  unsigned max = a->o.connecting_max ? a->o.connecting_max : 64;
  while (a->next < a->o.n && a->connecting < max)
    start_agent(a, &a->v[a->next++]);
}

int sim_agents_start(uv_loop_t *loop, const struct sim_agents_opts *o, struct sim_agents **out)
{
  struct sim_agents *a = xcalloc(1, sizeof(*a));
  a->loop = loop;
  a->o = *o;
  a->v = xcalloc(o->n ? o->n : 1, sizeof(*a->v));
  for (unsigned i = 0; i < o->n; i++) {
    struct sagent *g = &a->v[i];
    g->set = a;
    g->idx = i;
    uv_timer_init(loop, &g->hb);
    g->hb.data = g;
  }
  *out = a;
  connect_more(a);
  return 0;
}

void sim_agents_stats(const struct sim_agents *a, struct sim_agent_stats *st)
{
  *st = a->st;
  uint64_t min = UINT64_MAX;
  for (unsigned i = 0; i < a->o.n; i++)
    if (a->v[i].heartbeats < min)
      min = a->v[i].heartbeats;
  st->min_heartbeats = a->o.n ? min : 0;
}

static int all_ended(void *ud)
{
  return ((struct sim_agents *)ud)->live == 0;
}

static int all_closed(void *ud)
{
  struct sim_agents *a = ud;
  return a->closed == 2 * a->o.n;
}

static void handle_closed(uv_handle_t *h)
{
  struct sagent *g = h->data;
  g->set->closed++;
}

static void client_closed(rpc_client *c, void *ud)
{
  struct sagent *g = ud;
  (void)c;
  g->set->closed++;
}

int sim_agents_stop(uv_loop_t *loop, struct sim_agents *a)
{
  for (unsigned i = 0; i < a->o.n; i++) {
    struct sagent *g = &a->v[i];
    g->stopping = 1;
    uv_timer_stop(&g->hb);
    if (!g->call)
      continue;
    Drover__V1__GoingAway ga = DROVER__V1__GOING_AWAY__INIT;
    ga.reason = "benchmark over";
    pb_AgentMessage m = DROVER__V1__AGENT_MESSAGE__INIT;
    m.msg_case = DROVER__V1__AGENT_MESSAGE__MSG_GOING_AWAY;
    m.going_away = &ga;
    send_msg(g, &m);
    rpc_call_half_close(g->call);
  }
  int rc = 0;
  if (sim_run_until(loop, all_ended, a, 30000) < 0) {
    fprintf(stderr, "bench_sim: %u agent streams still open 30 s after GoingAway\n", a->live);
    rc = -1;
  }
  if (a->stop_failed) {
    fprintf(stderr, "bench_sim: %u agent streams did not end with OK after GoingAway (%s)\n",
            a->stop_failed, a->st.first_error);
    rc = -1;
  }
  for (unsigned i = 0; i < a->o.n; i++) {
    struct sagent *g = &a->v[i];
    uv_close((uv_handle_t *)&g->hb, handle_closed);
    if (g->client)
      rpc_client_close(g->client, client_closed);
    else
      a->closed++; /* never connected: nothing to close */
  }
  sim_run_until(loop, all_closed, a, 30000);
  for (unsigned i = 0; i < a->o.n; i++)
    while (a->v[i].held)
      drop_held(&a->v[i].held);
  free(a->v);
  free(a);
  return rc;
}
