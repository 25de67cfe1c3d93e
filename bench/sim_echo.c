/* sim_echo.c - the transport's floors, measured against drover-rpc-echo
 * (tools/rpc_echo.c) in the same run as the coordinator: the rate of plain
 * unary round trips pipelined on one connection, and the memory a server on
 * src/rpc spends on N connections, then on one open bidi stream on each
 * (what an agent's Connect stream costs before the coordinator adds its own). */
#include "bench/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "drover/test/v1/echo.pb-c.h"

#define ECHO_UNARY "/drover.test.v1.Echo/Unary"
#define ECHO_BIDI  "/drover.test.v1.Echo/Bidi"

static uint8_t *packed_request(size_t *len)
{
  Drover__Test__V1__EchoRequest req = DROVER__TEST__V1__ECHO_REQUEST__INIT;
  req.message = "bench";
  *len = protobuf_c_message_get_packed_size(&req.base);
  uint8_t *p = xmalloc(*len + 1);
  protobuf_c_message_pack(&req.base, p);
  return p;
}

/* ---- unary round trips ---- */

struct urate {
  rpc_client *c;
  long calls, started, ok, failed;
  unsigned in_flight, out;
  uint8_t *req;
  size_t req_len;
  char err[200];
};

static void urate_pump(struct urate *u);

static void urate_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct urate *u = ud;
  (void)call;
  u->out--;
  if (st->code == RPC_OK) {
    u->ok++;
  } else if (u->failed++ == 0) {
    snprintf(u->err, sizeof(u->err), "%s: %s", rpc_code_name(st->code),
             st->message ? st->message : "");
  }
  urate_pump(u);
}

static void urate_pump(struct urate *u)
{
  while (u->started < u->calls && u->out < u->in_flight) {
    struct rpc_call_opts o = {.method = ECHO_UNARY, .h = {.on_done = urate_done}, .ud = u};
    rpc_call *call;
    u->started++;
    if (rpc_call_start(u->c, &o, &call) < 0) {
      u->failed++;
      continue;
    }
    u->out++;
    rpc_call_send_bytes(call, u->req, u->req_len);
    rpc_call_half_close(call);
  }
}

static int urate_over(void *ud)
{
  struct urate *u = ud;
  return u->ok + u->failed >= u->calls;
}

static int urate_over_all(void *ud)
{
  return ((struct urate *)ud)->out == 0;
}

double sim_echo_unary_rate(uv_loop_t *loop, const char *target, long calls, unsigned in_flight)
{
  struct urate u = {.calls = calls, .in_flight = in_flight ? in_flight : 1};
  u.c = sim_client_new(loop, target, NULL);
  if (!u.c)
    return -1;
  u.req = packed_request(&u.req_len);
  /* One call first: the connection is up before the clock starts. */
  u.calls = 1;
  urate_pump(&u);
  sim_run_until(loop, urate_over, &u, 20000);
  u.calls = calls + 1;
  int64_t t0 = mono_us();
  urate_pump(&u);
  int rc = sim_run_until(loop, urate_over, &u, 600000);
  double secs = (double)(mono_us() - t0) / 1e6;
  sim_client_close(u.c);
  u.calls = u.started; /* after a timeout: wait for the cancelled calls to end */
  sim_run_until(loop, urate_over_all, &u, 60000);
  free(u.req);
  if (rc < 0 || u.failed) {
    fprintf(stderr, "bench_sim: echo unary: %ld of %ld calls failed (%s)\n", u.failed, calls,
            u.err[0] ? u.err : "timed out");
    return -1;
  }
  return (double)calls / secs;
}

/* ---- idle connections and streams ---- */

struct econn {
  struct sim_echo_conns *e;
  rpc_client *c;
  rpc_call *bidi;
};

struct sim_echo_conns {
  uv_loop_t *loop;
  const char *target;
  struct econn *v;
  unsigned n, next, connecting, answered, streamed, failed, closed;
  unsigned connecting_max;
  uint8_t *req;
  size_t req_len;
  char err[200];
};

static void econn_fail(struct sim_echo_conns *e, const char *what, int code, const char *msg)
{
  if (e->failed++ == 0)
    snprintf(e->err, sizeof(e->err), "%s: %s: %s", what, rpc_code_name(code), msg ? msg : "");
}

static void connect_more(struct sim_echo_conns *e);

static void first_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct econn *ec = ud;
  struct sim_echo_conns *e = ec->e;
  (void)call;
  e->connecting--;
  if (st->code == RPC_OK)
    e->answered++;
  else
    econn_fail(e, "unary", st->code, st->message);
  connect_more(e);
}

/* Opens the next connections, each with one unary call that proves it up. */
static void connect_more(struct sim_echo_conns *e)
{
  while (e->next < e->n && e->connecting < e->connecting_max) {
    struct econn *ec = &e->v[e->next++];
    ec->e = e;
    ec->c = sim_client_new(e->loop, e->target, e);
    if (!ec->c) {
      econn_fail(e, "client", RPC_UNAVAILABLE, "cannot create");
      continue;
    }
    struct rpc_call_opts o = {.method = ECHO_UNARY, .h = {.on_done = first_done}, .ud = ec};
    rpc_call *call;
    if (rpc_call_start(ec->c, &o, &call) < 0) {
      econn_fail(e, "unary", RPC_UNAVAILABLE, "cannot start");
      continue;
    }
    e->connecting++;
    rpc_call_send_bytes(call, e->req, e->req_len);
    rpc_call_half_close(call);
  }
}

static int conns_ready(void *ud)
{
  struct sim_echo_conns *e = ud;
  return e->answered + e->failed >= e->n;
}

struct sim_echo_conns *sim_echo_conns_open(uv_loop_t *loop, const char *target, unsigned n,
                                           unsigned connecting_max)
{
  struct sim_echo_conns *e = xcalloc(1, sizeof(*e));
  e->loop = loop;
  e->target = target;
  e->n = n;
  e->connecting_max = connecting_max ? connecting_max : 64;
  e->v = xcalloc(n ? n : 1, sizeof(*e->v));
  e->req = packed_request(&e->req_len);
  connect_more(e);
  if (sim_run_until(loop, conns_ready, e, 120000) < 0 || e->failed) {
    fprintf(stderr, "bench_sim: echo connections: %u of %u answered (%s)\n", e->answered, n,
            e->err[0] ? e->err : "timed out");
    sim_echo_conns_close(loop, e);
    return NULL;
  }
  return e;
}

static void bidi_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct econn *ec = ud;
  (void)call;
  (void)m;
  ec->e->streamed++;
}

static void bidi_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct econn *ec = ud;
  (void)call;
  ec->bidi = NULL;
  /* Ended by our close at the end: CANCELLED is expected then. */
  if (st->code != RPC_OK && st->code != RPC_CANCELLED)
    econn_fail(ec->e, "bidi", st->code, st->message);
}

static int streams_ready(void *ud)
{
  struct sim_echo_conns *e = ud;
  return e->streamed + e->failed >= e->n;
}

int sim_echo_conns_streams(uv_loop_t *loop, struct sim_echo_conns *e)
{
  for (unsigned i = 0; i < e->n; i++) {
    struct econn *ec = &e->v[i];
    struct rpc_call_opts o = {
        .method = ECHO_BIDI,
        .h = {.on_message = bidi_message, .on_done = bidi_done},
        .ud = ec,
    };
    if (!ec->c || rpc_call_start(ec->c, &o, &ec->bidi) < 0) {
      ec->bidi = NULL;
      econn_fail(e, "bidi", RPC_UNAVAILABLE, "cannot start");
      continue;
    }
    rpc_call_send_bytes(ec->bidi, e->req, e->req_len);
  }
  if (sim_run_until(loop, streams_ready, e, 120000) < 0 || e->failed) {
    fprintf(stderr, "bench_sim: echo streams: %u of %u echoed (%s)\n", e->streamed, e->n,
            e->err[0] ? e->err : "timed out");
    return -1;
  }
  return 0;
}

static void closed_cb(rpc_client *c, void *ud)
{
  (void)c;
  ((struct sim_echo_conns *)ud)->closed++;
}

static int all_closed(void *ud)
{
  struct sim_echo_conns *e = ud;
  return e->closed >= e->n;
}

void sim_echo_conns_close(uv_loop_t *loop, struct sim_echo_conns *e)
{
  for (unsigned i = 0; i < e->n; i++) {
    if (e->v[i].c)
      rpc_client_close(e->v[i].c, closed_cb);
    else
      e->closed++;
  }
  sim_run_until(loop, all_closed, e, 30000);
  free(e->v);
  free(e->req);
  free(e);
}
