/* test_rpc_call.c - calls between a server and a client of src/rpc on one
 * loop, over a unix socket: the send queue's high-water signal and its hard
 * cap (RPC_E_QUEUE_FULL); what a connection buffers for paused readers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "rpc/rpc.h"
#include "rpc/rpc_int.h" /* struct rpc_conn: what a connection buffers */

#define METHOD  "/drover.test.v1.T/Stream"
#define PAUSED  "/drover.test.v1.T/Paused"
#define NPAUSED 48

struct fixture {
  uv_loop_t loop;
  char dir[64], addr[128];
  rpc_server *srv;
  rpc_client *cli;
  /* server side */
  size_t srv_msgs, srv_bytes;
  /* client side */
  int writable, done, code;
  char reply[64];
  uint8_t *big;
  /* paused streams */
  rpc_call *paused[NPAUSED];
  size_t npaused, ok;
  struct rpc_conn *srv_conn;
};

static void s_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct fixture *f = ud;
  f->srv_msgs++;
  f->srv_bytes += m->len;
}

static void s_half_close(rpc_call *call, void *ud)
{
  struct fixture *f = ud;
  char text[64];
  int n = snprintf(text, sizeof(text), "%zu messages, %zu bytes", f->srv_msgs, f->srv_bytes);
  rpc_call_send_bytes(call, text, (size_t)n);
  rpc_call_finish(call, RPC_OK, NULL);
}

/* A reader that stops at once: the client's bytes wait at the server. */
static void s_paused_start(rpc_call *call, void *ud)
{
  struct fixture *f = ud;
  rpc_call_pause_reading(call);
  assert_true(f->npaused < NPAUSED);
  f->paused[f->npaused++] = call;
  f->srv_conn = call->conn;
}

static void s_paused_half_close(rpc_call *call, void *ud)
{
  rpc_call_finish(call, RPC_OK, NULL);
}

static const struct rpc_method methods[] = {
    {METHOD, RPC_CLIENT_STREAM, NULL, {.on_message = s_message, .on_half_close = s_half_close}},
    {PAUSED,
     RPC_CLIENT_STREAM,
     NULL,
     {.on_start = s_paused_start, .on_message = s_message, .on_half_close = s_paused_half_close}},
};

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  snprintf(f->dir, sizeof(f->dir), "/tmp/drover-test-rpc-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->addr, sizeof(f->addr), "unix:%s/s.sock", f->dir);
  struct rpc_server_opts so = {
      .methods = methods, .n_methods = 2, .max_recv_msg = 16u << 20, .ud = f};
  assert_int_equal(rpc_server_new(&f->loop, &so, &f->srv), 0);
  assert_int_equal(rpc_server_listen(f->srv, f->addr), 0);
  struct rpc_client_opts co = {.target = f->addr, .ud = f};
  assert_int_equal(rpc_client_new(&f->loop, &co, NULL, &f->cli), 0);
  f->big = calloc(1, 5u << 20);
  assert_non_null(f->big);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;
  rpc_client_close(f->cli, NULL);
  rpc_server_shutdown(f->srv, 1000, NULL, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  rpc_server_free(f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char path[128];
  snprintf(path, sizeof(path), "%s/s.sock", f->dir);
  unlink(path);
  rmdir(f->dir);
  free(f->big);
  free(f);
  return 0;
}

static void c_writable(rpc_call *call, void *ud)
{
  struct fixture *f = ud;
  f->writable++;
  /* The queue drained: sending works again. */
  assert_int_equal(rpc_call_send_bytes(call, "tail", 4), 0);
  assert_int_equal(rpc_call_half_close(call), 0);
}

static void c_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct fixture *f = ud;
  snprintf(f->reply, sizeof(f->reply), "%.*s", (int)m->len, (const char *)m->data);
}

static void c_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct fixture *f = ud;
  f->done++;
  f->code = st->code;
  uv_stop(&f->loop); /* the client and the server stay open: return to the test */
}

static rpc_call *start(struct fixture *f)
{
  struct rpc_call_opts o = {
      .method = METHOD,
      .h = {.on_message = c_message, .on_writable = c_writable, .on_done = c_done},
      .ud = f,
  };
  rpc_call *call;
  assert_int_equal(rpc_call_start(f->cli, &o, &call), 0);
  return call;
}

/* A caller that ignores the high-water signal is stopped at the hard cap:
 * the refused message is not queued, on_writable still comes, and every
 * accepted message arrives. Nothing runs the loop while sending, so nothing
 * drains in between. */
static void test_rpc_call_queue_cap(void **state)
{
  struct fixture *f = *state;
  rpc_call *call = start(f);
  const size_t len = 64 * 1024, framed = len + 5;
  size_t accepted = 0, first_high = 0;
  int r;
  while ((r = rpc_call_send_bytes(call, f->big, len)) >= 0) {
    accepted++;
    if (r == 1 && !first_high)
      first_high = accepted;
    if (r == 0)
      assert_int_equal(first_high, 0); /* once above high water, it stays 1 */
    assert_true(accepted < 1000);
  }
  assert_int_equal(r, RPC_E_QUEUE_FULL);
  assert_string_equal(rpc_strerror(r), "send queue full (the sender ignored backpressure)");
  /* 1 from the send that reaches the high-water mark... */
  assert_int_equal(first_high, (RPC_SEND_HIGH_WATER + framed - 1) / framed);
  /* ...refused once the queue holds the cap. */
  assert_int_equal(accepted, (RPC_SEND_QUEUE_MAX + framed - 1) / framed);
  assert_int_equal(rpc_call_send_bytes(call, "x", 1), RPC_E_QUEUE_FULL);
  assert_int_equal(f->writable, 0);

  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->writable, 1);
  assert_int_equal(f->done, 1);
  assert_int_equal(f->code, RPC_OK);
  char want[64];
  snprintf(want, sizeof(want), "%zu messages, %zu bytes", accepted + 1, accepted * len + 4);
  assert_string_equal(f->reply, want);
}

/* The cap bounds the queue, not a message: one larger than the cap is taken
 * on a queue under it, and the next send is refused. */
static void test_rpc_call_queue_cap_big_message(void **state)
{
  struct fixture *f = *state;
  rpc_call *call = start(f);
  assert_int_equal(rpc_call_send_bytes(call, f->big, 5u << 20), 1);
  assert_int_equal(rpc_call_send_bytes(call, "x", 1), RPC_E_QUEUE_FULL);
  assert_int_equal(rpc_call_cancel(call), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->done, 1);
  assert_int_equal(f->code, RPC_CANCELLED);
}

static void p_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct fixture *f = ud;
  f->done++;
  f->ok += st->code == RPC_OK;
}

/* Runs the loop until the server's paused bytes stop changing. One process,
 * non-blocking polls: 2000 turns with nothing new means nothing is moving. */
static size_t settle(struct fixture *f)
{
  size_t last = (size_t)-1;
  for (int still = 0, i = 0; still < 2000 && i < 2000000; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    size_t now = f->srv_conn ? f->srv_conn->paused_bytes : 0;
    still = now == last ? still + 1 : 0;
    last = now;
  }
  return last;
}

/* 48 streams whose server-side reader paused at once, each sent more than a
 * stream window: the connection's window comes back for what they buffer
 * until the connection holds RPC_CONN_PAUSED_MAX for them, then no more, so
 * it never holds more than that plus one connection window (48 full stream
 * windows would be 96 MiB). Resumed, every byte arrives: the credit held
 * back is returned. */
static void test_rpc_call_paused_streams_bounded(void **state)
{
  struct fixture *f = *state;
  const size_t len = (5u << 20) / 2; /* 2.5 MiB: more than a stream window */
  for (int i = 0; i < NPAUSED; i++) {
    struct rpc_call_opts o = {.method = PAUSED, .h = {.on_done = p_done}, .ud = f};
    rpc_call *call;
    assert_int_equal(rpc_call_start(f->cli, &o, &call), 0);
    assert_int_equal(rpc_call_send_bytes(call, f->big, len), 1);
    assert_int_equal(rpc_call_half_close(call), 0);
  }
  size_t held = settle(f);
  assert_int_equal(f->npaused, NPAUSED);
  assert_true(held >= RPC_CONN_PAUSED_MAX);
  assert_true(held <= RPC_CONN_PAUSED_MAX + RPC_CONN_WINDOW);
  assert_int_equal(f->done, 0);

  for (size_t i = 0; i < f->npaused; i++)
    rpc_call_resume_reading(f->paused[i]);
  for (int i = 0; f->done < NPAUSED && i < 2000000; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->done, NPAUSED);
  assert_int_equal(f->ok, NPAUSED);
  assert_int_equal(f->srv_msgs, NPAUSED);
  assert_int_equal(f->srv_bytes, NPAUSED * len);
  assert_int_equal(f->srv_conn->paused_bytes, 0);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_rpc_call_*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_rpc_call_queue_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rpc_call_queue_cap_big_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rpc_call_paused_streams_bounded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
