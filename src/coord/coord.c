/* coord.c - the coordinator's life: start (store, logs, load, listen), the
 * commit actions that tell the world only what is durable, the liveness and
 * housekeeping timers, and shutdown.
 *
 * Commit actions: a change is made in memory and queued in the store at once;
 * whatever depends on it being durable (a reply, an Ack, a RunJob) is
 * registered with coord_after. At the end of every loop turn (the check
 * phase) the scheduler runs if asked, then the actions gathered during the
 * turn become one batch behind one store_sync and/or one logstore_sync; each
 * action runs, in registration order, once the barriers it needs are passed.
 * A log sync never waits for a commit and the other way round, so a job
 * writing hundreds of MB does not slow down the state changes of others. */
#include "coord/coord.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"
#include "coord/coord_int.h"
#include "job/states.h"

#define DEFAULT_NODE_TIMEOUT_MS 60000
#define DEFAULT_HEARTBEAT_MS    5000
#define GC_EVERY_MS             2000

int64_t coord_now_us(void)
{
  return now_us();
}

/* ---- commit actions ---- */

struct batch {
  struct coord *c;
  struct action *head;
  int waiting; /* barriers still out */
};

static void run_ready(struct batch *b, int passed)
{
  struct coord *c = b->c;
  for (struct action *a = b->head; a; a = a->next) {
    if (!a->needs)
      continue;
    a->needs &= ~passed;
    if (!a->needs)
      a->fn(c, a->arg);
  }
}

static void batch_done(struct batch *b)
{
  if (--b->waiting > 0)
    return;
  for (struct action *a = b->head, *next; a; a = next) {
    next = a->next;
    free(a);
  }
  free(b);
}

static void commit_cb(void *ud, int status)
{
  struct batch *b = ud;
  /* store_sync retries until it succeeds: status is always 0 here. */
  (void)status;
  run_ready(b, ACT_COMMIT);
  batch_done(b);
}

/* Acknowledgements of stored log batches, gathered over one loop turn. */
struct ackset {
  struct coord *c;
  struct cjob **jobs;
  uint64_t *seqs;
  uint32_t *attempts;
  size_t n;
  struct batch *b; /* the actions of the same turn that wait for this sync */
};

static void send_log_acks(struct ackset *as, int status)
{
  struct coord *c = as->c;
  for (size_t i = 0; i < as->n; i++) {
    struct cjob *j = as->jobs[i];
    if (status == 0 && j->node && j->node->sess && j->attempt == as->attempts[i] &&
        as->seqs[i] > j->log_seq_acked) {
      j->log_seq_acked = as->seqs[i];
      Drover__V1__Ack ack = DROVER__V1__ACK__INIT;
      ack.job_id = j->id;
      ack.attempt = as->attempts[i];
      ack.log_seq = as->seqs[i];
      pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
      m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_ACK;
      m.ack = &ack;
      session_send(j->node->sess, &m);
    }
    cjob_unref(c, j);
  }
}

static void logs_cb(void *ud, int status)
{
  struct ackset *as = ud;
  /* A failed fsync acknowledges nothing: the agent keeps the batches and
   * sends them again after its next reconnect. Not running the actions that
   * needed this sync would leave them waiting forever, so they run, and
   * their own checks see the failure. */
  send_log_acks(as, status);
  if (as->b) {
    run_ready(as->b, ACT_LOGS);
    batch_done(as->b);
  }
  free(as->jobs);
  free(as->seqs);
  free(as->attempts);
  free(as);
}

void coord_after(struct coord *c, int needs, coord_action_fn fn, void *arg)
{
  struct action *a = xcalloc(1, sizeof(*a));
  a->fn = fn;
  a->arg = arg;
  a->needs = needs;
  if (c->act_tail)
    c->act_tail->next = a;
  else
    c->act_head = a;
  c->act_tail = a;
  if (needs & ACT_COMMIT)
    c->commit_wanted = 1;
  if (needs & ACT_LOGS)
    c->logs_wanted = 1;
}

struct commit_ack {
  struct cjob *j;
  uint32_t attempt;
  uint64_t seq;
  uint64_t turn; /* the loop turn whose commit covers it */
};

/* Batches stored in the store are committed: acknowledge them, and let the
 * job's readers see them. */
static void commit_ack_action(struct coord *c, void *arg)
{
  struct commit_ack *a = arg;
  struct cjob *j = a->j;
  if (j->ack_pending == a)
    j->ack_pending = NULL;
  if (j->node && j->node->sess && j->attempt == a->attempt && a->seq > j->log_seq_acked) {
    j->log_seq_acked = a->seq;
    Drover__V1__Ack ack = DROVER__V1__ACK__INIT;
    ack.job_id = j->id;
    ack.attempt = a->attempt;
    ack.log_seq = a->seq;
    pb_CoordinatorMessage m = DROVER__V1__COORDINATOR_MESSAGE__INIT;
    m.msg_case = DROVER__V1__COORDINATOR_MESSAGE__MSG_ACK;
    m.ack = &ack;
    session_send(j->node->sess, &m);
  }
  jobs_wake_logs(c, j);
  cjob_unref(c, j);
  free(a);
}

void coord_ack_logs(struct coord *c, struct cjob *j, int needs)
{
  if (needs == ACT_COMMIT) {
    /* One Ack per job per commit: batches of the same loop turn go into the
     * same commit, so this turn's action just acknowledges more. */
    struct commit_ack *a = j->ack_pending;
    if (a && a->turn == c->turn && a->attempt == j->log_attempt) {
      a->seq = j->log_seq;
      return;
    }
    a = xcalloc(1, sizeof(*a));
    a->j = j;
    cjob_ref(j);
    a->attempt = j->log_attempt;
    a->seq = j->log_seq;
    a->turn = c->turn;
    j->ack_pending = a;
    coord_after(c, ACT_COMMIT, commit_ack_action, a);
    return;
  }
  if (j->ack_marked)
    return;
  if (c->nack_jobs == c->capack_jobs) {
    c->capack_jobs = c->capack_jobs ? c->capack_jobs * 2 : 64;
    c->ack_jobs = xrealloc(c->ack_jobs, c->capack_jobs * sizeof(*c->ack_jobs));
  }
  cjob_ref(j);
  j->ack_marked = 1;
  c->ack_jobs[c->nack_jobs++] = j;
  c->logs_wanted = 1;
}

static void on_check(uv_check_t *h)
{
  struct coord *c = h->data;
  c->turn++; /* what was queued before this belongs to this turn's commit */
  if (c->sched_wanted) {
    c->sched_wanted = 0;
    sched_run(c);
  }
  if (!c->act_head && !c->nack_jobs)
    return;
  struct batch *b = NULL;
  if (c->act_head) {
    b = xcalloc(1, sizeof(*b));
    b->c = c;
    b->head = c->act_head;
    c->act_head = c->act_tail = NULL;
  }
  int want_commit = c->commit_wanted, want_logs = c->logs_wanted || c->nack_jobs;
  c->commit_wanted = c->logs_wanted = 0;
  if (b)
    b->waiting = want_commit + want_logs;
  if (want_logs) {
    struct ackset *as = xcalloc(1, sizeof(*as));
    as->c = c;
    as->b = b;
    as->n = c->nack_jobs;
    as->jobs = c->ack_jobs;
    as->seqs = xcalloc(as->n ? as->n : 1, sizeof(*as->seqs));
    as->attempts = xcalloc(as->n ? as->n : 1, sizeof(*as->attempts));
    /* What is acknowledged is what was appended before the sync starts. */
    for (size_t i = 0; i < as->n; i++) {
      as->seqs[i] = as->jobs[i]->log_seq;
      as->attempts[i] = as->jobs[i]->log_attempt;
      as->jobs[i]->ack_marked = 0;
    }
    c->ack_jobs = NULL;
    c->nack_jobs = c->capack_jobs = 0;
    logstore_sync(c->logs, logs_cb, as);
  }
  if (want_commit)
    store_sync(c->store, commit_cb, b);
  if (b && !want_commit && !want_logs) {
    /* Actions that need no barrier (none are made today): run them now. */
    b->waiting = 1;
    run_ready(b, ACT_COMMIT | ACT_LOGS);
    batch_done(b);
  }
}

/* ---- liveness and housekeeping ---- */

struct lost_ctx {
  struct cnode **v;
  size_t n;
  uint64_t now, limit;
};

static int collect_lost(const char *key, void *val, void *ud)
{
  struct cnode *n = val;
  struct lost_ctx *lc = ud;
  (void)key;
  if ((n->state == NS_READY || n->state == NS_DRAINING) && lc->now - n->last_seen_ms > lc->limit) {
    lc->v = xrealloc(lc->v, (lc->n + 1) * sizeof(*lc->v));
    lc->v[lc->n++] = n;
  }
  return 0;
}

/* A node silent for longer than the node timeout is lost: its jobs are
 * requeued (or end lost) and its stream, if it still has one (a stopped
 * process keeps its TCP connection), is ended. */
static void on_liveness(uv_timer_t *t)
{
  struct coord *c = t->data;
  struct lost_ctx lc = {NULL, 0, uv_now(c->loop), c->opts.node_timeout_ms};
  smap_foreach(&c->nodes, collect_lost, &lc);
  for (size_t i = 0; i < lc.n; i++) {
    struct cnode *n = lc.v[i];
    unsigned long long silent = (unsigned long long)(lc.now - n->last_seen_ms);
    char why[160];
    snprintf(why, sizeof(why), "node '%s' lost: nothing heard from it for %llu ms", n->name,
             silent);
    log_warn("node lost", "node=%s name=%s silent_ms=%llu jobs=%u", n->id, n->name, silent,
             n->running);
    n->state = NS_LOST;
    cnode_update_avail(c, n);
    cnode_save(c, n);
    if (n->sess)
      session_kick(n->sess, RPC_UNAVAILABLE, why);
    cjob_node_gone(c, n, why);
  }
  free(lc.v);
}

struct gc_ctx {
  struct coord *c;
  struct cjob **v;
  size_t n;
};

static int gc_collect(const char *key, void *val, void *ud)
{
  struct gc_ctx *g = ud;
  struct cjob *j = val;
  (void)key;
  if (job_state_terminal(j->state) && j->end_committed && !j->waiters &&
      uv_now(g->c->loop) >= j->live_until_ms) {
    g->v = xrealloc(g->v, (g->n + 1) * sizeof(*g->v));
    g->v[g->n++] = j;
  }
  return 0;
}

/* Ended jobs leave memory once nobody watches them and their linger is
 * over; the store has them. */
static void on_gc(uv_timer_t *t)
{
  struct coord *c = t->data;
  struct gc_ctx g = {c, NULL, 0};
  smap_foreach(&c->jobs, gc_collect, &g);
  for (size_t i = 0; i < g.n; i++) {
    struct cjob *j = g.v[i];
    smap_del(&c->jobs, j->id);
    if (j->spec->idempotency_key && *j->spec->idempotency_key &&
        smap_get(&c->keys, j->spec->idempotency_key) == j)
      smap_del(&c->keys, j->spec->idempotency_key);
    cjob_unref(c, j);
  }
  free(g.v);
}

/* ---- the server ---- */

#define METHOD(svc, name, kind, req, handlers)                                                     \
  {                                                                                                \
    "/drover.v1." svc "/" name, kind, &req, handlers                                               \
  }

static void server_log(void *ud, const char *line)
{
  (void)ud;
  log_info("rpc", "event=\"%s\"", line);
}

static int make_server(struct coord *c, char *err, size_t errlen)
{
  struct rpc_method methods[] = {
      {"/drover.v1.AgentService/Connect", RPC_BIDI, NULL, session_handlers},
      {"/drover.v1.JobService/Submit", RPC_UNARY, &drover__v1__submit_request__descriptor,
       jobsvc_submit},
      {"/drover.v1.JobService/Get", RPC_UNARY, &drover__v1__get_job_request__descriptor,
       jobsvc_get},
      {"/drover.v1.JobService/List", RPC_UNARY, &drover__v1__list_jobs_request__descriptor,
       jobsvc_list},
      {"/drover.v1.JobService/Cancel", RPC_UNARY, &drover__v1__cancel_job_request__descriptor,
       jobsvc_cancel},
      {"/drover.v1.JobService/Logs", RPC_SERVER_STREAM, &drover__v1__logs_request__descriptor,
       jobsvc_logs},
      {"/drover.v1.JobService/Wait", RPC_UNARY, &drover__v1__wait_request__descriptor, jobsvc_wait},
      {"/drover.v1.JobService/Events", RPC_UNARY, &drover__v1__events_request__descriptor,
       jobsvc_events},
      {"/drover.v1.JobService/WriteStdin", RPC_CLIENT_STREAM, &drover__v1__stdin_chunk__descriptor,
       jobsvc_stdin},
      {"/drover.v1.NodeService/List", RPC_UNARY, &drover__v1__list_nodes_request__descriptor,
       nodesvc_list},
      {"/drover.v1.NodeService/Drain", RPC_UNARY, &drover__v1__drain_node_request__descriptor,
       nodesvc_drain},
      {"/drover.v1.TokenService/Create", RPC_UNARY, &drover__v1__create_token_request__descriptor,
       tokensvc_create},
  };
  uint64_t ka = c->opts.keepalive_ms;
  struct rpc_server_opts so = {
      .methods = methods,
      .n_methods = ARRAY_SIZE(methods),
      .max_recv_msg = 16u * 1024 * 1024,
      .keepalive_interval_ms = (unsigned)ka,
      .keepalive_timeout_ms = (unsigned)(ka * 2 > 20000 ? 20000 : ka * 2),
      .on_log = server_log,
      .ud = c,
  };
  int rc = rpc_server_new(c->loop, &so, &c->server);
  if (rc < 0) {
    snprintf(err, errlen, "cannot create the gRPC server: %s", rpc_strerror(rc));
    return rc;
  }
  for (size_t i = 0; i < c->opts.nlisten; i++) {
    rc = rpc_server_listen(c->server, c->opts.listen[i]);
    if (rc < 0) {
      snprintf(err, errlen, "cannot listen on '%s': %s%s", c->opts.listen[i],
               rc == RPC_E_INVAL ? "not an address like HOST:PORT or unix:PATH" : rpc_strerror(rc),
               rc == -EADDRINUSE ? " (is another drover server running? pick a port with --listen)"
                                 : "");
      return rc;
    }
  }
  rpc_server_address(c->server, c->address, sizeof(c->address));
  return 0;
}

/* ---- life ---- */

static void raise_nofile(void)
{
  /* Every agent stream, client and open job log is a descriptor. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int coord_start(uv_loop_t *loop, const struct coord_opts *opts, struct coord **out, char *err,
                size_t errlen)
{
  struct coord *c = xcalloc(1, sizeof(*c));
  int rc;
  c->loop = loop;
  c->opts = *opts;
  c->data_dir = xstrdup(opts->data_dir);
  c->opts.data_dir = c->data_dir;
  if (!c->opts.node_timeout_ms)
    c->opts.node_timeout_ms = DEFAULT_NODE_TIMEOUT_MS;
  if (!c->opts.heartbeat_ms)
    c->opts.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
  if (c->opts.heartbeat_ms * 2 > c->opts.node_timeout_ms)
    c->opts.heartbeat_ms = c->opts.node_timeout_ms / 3 ? c->opts.node_timeout_ms / 3 : 1;
  if (!c->opts.keepalive_ms) {
    /* A silent peer (a stopped process, a cut link) is found well within
     * the node timeout. */
    c->opts.keepalive_ms =
        c->opts.node_timeout_ms / 4 < 10000 ? c->opts.node_timeout_ms / 4 : 10000;
    if (c->opts.keepalive_ms < 200)
      c->opts.keepalive_ms = 200;
  }
  smap_init(&c->jobs);
  smap_init(&c->keys);
  smap_init(&c->nodes);
  smap_init(&c->tokens);
  raise_nofile();

  rc = store_open(loop, c->data_dir, &c->store, err, errlen);
  if (rc < 0)
    goto fail;
  char *ldir = xasprintf("%s/logs", c->data_dir);
  rc = logstore_open(loop, ldir, &c->logs, err, errlen);
  free(ldir);
  if (rc < 0)
    goto fail;
  if ((rc = nodes_load(c)) < 0 || (rc = jobs_load(c)) < 0 || (rc = tokens_load(c)) < 0) {
    snprintf(err, errlen, "cannot load the store in '%s': %s", c->data_dir, store_strerror(rc));
    goto fail;
  }
  uv_check_init(loop, &c->check);
  c->check.data = c;
  uv_check_start(&c->check, on_check);
  uv_unref((uv_handle_t *)&c->check);
  uv_timer_init(loop, &c->liveness);
  c->liveness.data = c;
  uint64_t every = c->opts.node_timeout_ms / 10;
  uv_timer_start(&c->liveness, on_liveness, every ? every : 1, every ? every : 1);
  uv_timer_init(loop, &c->gc);
  c->gc.data = c;
  uv_timer_start(&c->gc, on_gc, GC_EVERY_MS, GC_EVERY_MS);
  c->closing = 3; /* handles to close at free */
  rc = make_server(c, err, errlen);
  if (rc < 0) {
    /* The handles exist: a failed start ends like a shutdown. */
    *out = c;
    return rc;
  }
  log_info("coordinator started", "listen=%s data=%s node_timeout_ms=%llu", c->address, c->data_dir,
           (unsigned long long)c->opts.node_timeout_ms);
  sched_kick(c);
  *out = c;
  return 0;

fail:
  if (c->logs)
    logstore_close(c->logs, NULL, NULL);
  if (c->store)
    store_close(c->store, NULL, NULL);
  jobs_release(c);
  nodes_release(c);
  tokens_release(c);
  free(c->data_dir);
  free(c);
  *out = NULL;
  return rc;
}

const char *coord_address(const struct coord *c)
{
  return c->address;
}

static void closed_logs(void *ud)
{
  struct coord *c = ud;
  c->logs = NULL;
  if (!c->store && c->stop_cb)
    c->stop_cb(c, c->stop_ud);
}

static void closed_store(void *ud)
{
  struct coord *c = ud;
  c->store = NULL;
  if (!c->logs && c->stop_cb)
    c->stop_cb(c, c->stop_ud);
}

static void server_stopped(rpc_server *s, void *ud)
{
  struct coord *c = ud;
  (void)s;
  uv_timer_stop(&c->liveness);
  uv_timer_stop(&c->gc);
  /* Sessions and calls are gone; what they queued is committed by close. */
  on_check(&c->check);
  store_close(c->store, closed_store, c);
  logstore_close(c->logs, closed_logs, c);
}

void coord_shutdown(struct coord *c, unsigned grace_ms, void (*cb)(struct coord *, void *),
                    void *ud)
{
  if (c->stopping)
    return;
  c->stopping = 1;
  c->stop_cb = cb;
  c->stop_ud = ud;
  log_info("coordinator stopping", "grace_ms=%u", grace_ms);
  if (c->server)
    rpc_server_shutdown(c->server, grace_ms, server_stopped, c);
  else
    server_stopped(NULL, c);
}

static void handle_closed(uv_handle_t *h)
{
  struct coord *c = h->data;
  if (--c->closing > 0)
    return;
  jobs_release(c);
  nodes_release(c);
  tokens_release(c);
  free(c->ack_jobs);
  free(c->data_dir);
  free(c);
}

void coord_free(struct coord *c)
{
  if (!c)
    return;
  if (c->server)
    rpc_server_free(c->server);
  c->server = NULL;
  uv_close((uv_handle_t *)&c->check, handle_closed);
  uv_close((uv_handle_t *)&c->liveness, handle_closed);
  uv_close((uv_handle_t *)&c->gc, handle_closed);
}

/* ---- small helpers shared by the services ---- */

void coord_sha256_hex(const char *s, char out[65])
{
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

char *coord_random_hex(const char *prefix, size_t n)
{
  unsigned char buf[64];
  if (n > sizeof(buf))
    n = sizeof(buf);
  if (RAND_bytes(buf, (int)n) != 1)
    abort(); /* no randomness for secrets: not a state to go on in */
  size_t plen = strlen(prefix);
  char *out = xmalloc(plen + 2 * n + 1);
  memcpy(out, prefix, plen);
  for (size_t i = 0; i < n; i++)
    snprintf(out + plen + 2 * i, 3, "%02x", buf[i]);
  return out;
}
