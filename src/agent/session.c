/* session.c - the networked agent (see session.h): its start and its end
 * (the graceful shutdown, a fatal refusal), and its heartbeats. The Connect
 * stream is link.c's, the jobs runs.c's. */
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
#include "container/engine.h"
#include "sandbox/sandbox.h"
#include "tools/policy.h"

#define SAMPLE_MS          1000 /* load figures are read this often ... */
#define MOVED_POINTS       5.0  /* ... and sent at once when CPU or memory moved this much */
#define GOING_AWAY_WAIT_MS 3000 /* after GoingAway, for the coordinator to end the stream */
#define DEFAULT_HEARTBEAT  5000

static void going_away(struct agent_session *s);

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

static void beat_cb(uv_timer_t *t);

void agent_session_beat_start(struct agent_session *s)
{
  agent_session_beat(s);
  uint64_t every = s->heartbeat_ms < SAMPLE_MS ? s->heartbeat_ms : SAMPLE_MS;
  uv_timer_start(&s->beat_timer, beat_cb, every, every);
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

/* ---- shutdown ---- */

void agent_session_stopped(struct agent_session *s)
{
  if (s->shutting == 4)
    return;
  s->shutting = 4;
  uv_timer_t *ts[] = {&s->retry_timer,    &s->cutoff_timer, &s->beat_timer,
                      &s->progress_timer, &s->flush_timer,  &s->start_timer};
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
  agent_session_stopped(t->data);
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
    agent_session_stopped(s);
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
  agent_link_retry_soon(s);
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
    runs_give_back(s, "the agent is shutting down");
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
  s->docker_host = o->docker_host && *o->docker_host ? xstrdup(o->docker_host) : NULL;
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
  if (s->o.prefetch > s->o.slots && s->o.slots)
    s->o.prefetch = s->o.slots;
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
  uv_timer_t *ts[] = {&s->retry_timer,    &s->cutoff_timer, &s->beat_timer,
                      &s->progress_timer, &s->flush_timer,  &s->start_timer};
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
  /* Containers of a previous life go before any job runs (runs_recover
   * reports their jobs as it does for processes). node_id is "" before the
   * first registration, when there can be none; it is filled in place
   * then, in time for the first job's label. */
  if (s->st.node_id[0])
    container_engine_reap(s->docker_host, s->st.node_id, 5000);
  struct core_opts co = {o->slots, o->shutdown_timeout_ms, o->sandbox, s->docker_host,
                         s->st.node_id};
  s->core = core_new(loop, &co, &runs_core_ops, s);
  core_set_tools(s->core, o->tools);
  metrics_init(&s->metrics, s->st.dir);
  s->ncaps = metrics_capabilities(&s->caps, s->docker_host);
  sbx_capabilities_adjust(o->sandbox, &s->caps, &s->ncaps); /* what jobs really get */
  if (tools_policy_configured(o->tools)) {
    /* tool jobs can do something here: --require tools finds this node */
    s->caps = xrealloc(s->caps, (s->ncaps + 1) * sizeof(*s->caps));
    s->caps[s->ncaps++] = xstrdup("tools");
  }
  rc = runs_recover(s, err, errlen);
  if (rc < 0)
    return rc;
  rc = agent_link_open(s);
  if (rc < 0) {
    if (rc == RPC_E_INVAL)
      snprintf(err, errlen, "--coordinator '%s': not an address: use HOST:PORT or unix:PATH",
               s->coordinator);
    else
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
  free(s->docker_host);
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
  uv_timer_t *ts[] = {&s->retry_timer,    &s->cutoff_timer, &s->beat_timer,
                      &s->progress_timer, &s->flush_timer,  &s->start_timer};
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
