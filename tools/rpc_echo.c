/* rpc_echo.c - drover-rpc-echo: main, usage and the "serve" side: the
 * drover.test.v1.Echo service on src/rpc (used by interop tests and benches). */
#include "tools/rpc_echo.h"
#include "base/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void echo_usage(void)
{
  fputs("usage: drover-rpc-echo serve --listen ADDR [--tls-cert F --tls-key F [--client-ca F]]\n"
        "           [--max-message-size BYTES] [--keepalive-interval MS --keepalive-timeout MS]\n"
        "       drover-rpc-echo call --target ADDR Unary|ServerStream|ClientStream|Bidi\n"
        "           [--message S] [--payload-size N] [--repeat N] [--delay-ms N] [--fail-code N]\n"
        "           [--count N] [--metadata K=V]... [--timeout MS] [--tls-ca F [--tls-cert F\n"
        "           --tls-key F] [--server-name NAME]] [--max-message-size BYTES]\n"
        "           [--concurrency N] [--cancel-after-ms N] [--keepalive-interval MS\n"
        "           --keepalive-timeout MS] [--read-delay-ms N] [--paused-calls N]\n"
        "           [--connect-timeout MS] [--quiet]\n"
        "       drover-rpc-echo bench --target ADDR --mode unary|stream [--size BYTES]\n"
        "           [--seconds N] [--concurrency N] [--tls-ca F] [--server-name NAME]\n"
        "           [--busy-poll]\n"
        "ADDR is HOST:PORT (port 0 picks a free one when serving) or unix:PATH\n",
        stderr);
}

long long echo_num(const char *opt, const char *s)
{
  char *end;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || v < 0) {
    fprintf(stderr, "error: option '--%s': '%s' is not a non-negative number\n", opt, s);
    echo_usage();
    exit(2);
  }
  return v;
}

void echo_log(void *ud, const char *line)
{
  (void)ud;
  fprintf(stderr, "%s\n", line);
}

int echo_client_new(uv_loop_t *loop, struct rpc_client_opts *co, struct rpc_client **out)
{
  co->on_log = echo_log;
  int r = rpc_client_new(loop, co, NULL, out);
  if (r < 0)
    fprintf(stderr, "error: cannot create a client for '%s': %s\n", co->target,
            r == RPC_E_INVAL ? "the target must look like HOST:PORT or unix:PATH"
                             : rpc_strerror(r));
  return r;
}

/* ---- the service --------------------------------------------------------- */

/* Replies waiting to go out: `count` copies of one reply, numbered from
 * `index`, each after `delay_ms`. ServerStream is one entry with count=repeat,
 * so a million replies never sit in memory at once. */
struct pending {
  struct pending *next;
  char *message;
  uint8_t *payload;
  size_t payload_len;
  uint32_t delay_ms, count, index;
};

struct ecall {
  rpc_call *call;
  enum rpc_kind kind;
  struct pending *head, *tail;
  size_t queued;
  uv_timer_t timer;
  unsigned timer_running : 1, delay_done : 1, blocked : 1, finish_after : 1, done : 1,
      reading_paused : 1;
  uint32_t nreq;        /* requests seen */
  uint32_t ncompressed; /* of which arrived compressed (reported in a trailer) */
  char *joined;         /* ClientStream: messages joined with "," */
  size_t joined_len;
  uint8_t *payload; /* ClientStream: payloads concatenated */
  size_t payload_len;
  uint32_t last_delay;
};

static void pump(struct ecall *e);

static void pending_free(struct pending *p)
{
  free(p->message);
  free(p->payload);
  free(p);
}

static void ecall_closed(uv_handle_t *h)
{
  struct ecall *e = h->data;
  while (e->head) {
    struct pending *p = e->head;
    e->head = p->next;
    pending_free(p);
  }
  free(e->joined);
  free(e->payload);
  free(e);
}

static void push(struct ecall *e, const char *msg, const uint8_t *pl, size_t pll, uint32_t delay,
                 uint32_t count, uint32_t index)
{
  struct pending *p = xcalloc(1, sizeof(*p));
  p->message = xstrdup(msg ? msg : "");
  if (pll) {
    p->payload = xmalloc(pll);
    memcpy(p->payload, pl, pll);
  }
  p->payload_len = pll;
  p->delay_ms = delay;
  p->count = count;
  p->index = index;
  if (e->tail)
    e->tail->next = p;
  else
    e->head = p;
  e->tail = p;
  e->queued++;
}

static void timer_cb(uv_timer_t *t)
{
  struct ecall *e = t->data;
  e->timer_running = 0;
  e->delay_done = 1;
  pump(e);
}

/* Sends queued replies until the queue is empty, a delay starts, or the
 * connection is above its high-water mark (then on_writable resumes us). */
static void pump(struct ecall *e)
{
  while (!e->done && e->head && !e->blocked && !e->timer_running) {
    struct pending *p = e->head;
    if (p->delay_ms && !e->delay_done) {
      e->timer_running = 1;
      uv_timer_start(&e->timer, timer_cb, p->delay_ms, 0);
      return;
    }
    e->delay_done = 0;
    Drover__Test__V1__EchoReply r = DROVER__TEST__V1__ECHO_REPLY__INIT;
    r.message = p->message;
    r.payload.data = p->payload;
    r.payload.len = p->payload_len;
    r.index = p->index++;
    int rc = rpc_call_send(e->call, &r.base);
    if (--p->count == 0) {
      e->head = p->next;
      if (!e->head)
        e->tail = NULL;
      e->queued--;
      pending_free(p);
    }
    if (rc < 0)
      return;
    if (rc == 1)
      e->blocked = 1;
  }
  if (e->done)
    return;
  /* Bidi: reading was paused while too many replies waited. */
  if (e->reading_paused && e->queued < 64) {
    e->reading_paused = 0;
    rpc_call_resume_reading(e->call);
  }
  if (!e->head && e->finish_after && !e->done) {
    if (e->ncompressed) {
      char n[16];
      snprintf(n, sizeof(n), "%u", e->ncompressed);
      rpc_md_adds(rpc_call_trailers_out(e->call), "x-compressed-requests", n);
    }
    rpc_call_finish(e->call, RPC_OK, NULL);
  }
}

static void on_start(rpc_call *call, void *ud)
{
  struct ecall *e = xcalloc(1, sizeof(*e));
  e->call = call;
  const char *m = rpc_call_method(call);
  e->kind = strstr(m, "/ServerStream")   ? RPC_SERVER_STREAM
            : strstr(m, "/ClientStream") ? RPC_CLIENT_STREAM
            : strstr(m, "/Bidi")         ? RPC_BIDI
                                         : RPC_UNARY;
  uv_timer_init(uv_default_loop(), &e->timer);
  e->timer.data = e;
  rpc_call_set_data(call, e);
  const struct rpc_mdlist *in = rpc_call_headers(call);
  struct rpc_mdlist *out = rpc_call_headers_out(call);
  for (size_t i = 0; i < in->n; i++) {
    const struct rpc_md *md = &in->v[i];
    if (strncmp(md->key, "x-", 2) == 0)
      rpc_md_add(out, md->key, md->value, md->value_len);
    if (strncmp(md->key, "x-trailer-", 10) == 0)
      rpc_md_add(rpc_call_trailers_out(call), md->key, md->value, md->value_len);
    if (strcmp(md->key, "authorization") == 0)
      rpc_md_add(out, "x-authorization", md->value, md->value_len);
  }
  const char *subj = rpc_call_peer_subject(call);
  if (subj)
    rpc_md_adds(out, "x-peer-subject", subj);
}

static void on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct ecall *e = rpc_call_data(call);
  Drover__Test__V1__EchoRequest *req = (Drover__Test__V1__EchoRequest *)m->msg;
  if (e->finish_after)
    return;
  e->nreq++;
  e->ncompressed += m->compressed ? 1 : 0;
  if (req->message && strcmp(req->message, "cancel-me") == 0) {
    rpc_call_cancel(call);
    return;
  }
  if (req->fail_code != 0) {
    char msg[64];
    snprintf(msg, sizeof(msg), "requested failure %d", req->fail_code);
    rpc_call_finish(call, req->fail_code, msg);
    return;
  }
  switch (e->kind) {
  case RPC_UNARY:
    push(e, req->message, req->payload.data, req->payload.len, req->delay_ms, 1, 0);
    e->finish_after = 1;
    break;
  case RPC_SERVER_STREAM:
    push(e, req->message, req->payload.data, req->payload.len, req->delay_ms,
         req->repeat ? req->repeat : 1, 0);
    e->finish_after = 1;
    break;
  case RPC_CLIENT_STREAM: {
    size_t ml = strlen(req->message ? req->message : "");
    e->joined = xrealloc(e->joined, e->joined_len + ml + 2);
    if (e->nreq > 1)
      e->joined[e->joined_len++] = ',';
    memcpy(e->joined + e->joined_len, req->message ? req->message : "", ml);
    e->joined_len += ml;
    e->joined[e->joined_len] = 0;
    e->payload = xrealloc(e->payload, e->payload_len + req->payload.len + 1);
    if (req->payload.len)
      memcpy(e->payload + e->payload_len, req->payload.data, req->payload.len);
    e->payload_len += req->payload.len;
    e->last_delay = req->delay_ms;
    return;
  }
  case RPC_BIDI:
    push(e, req->message, req->payload.data, req->payload.len, req->delay_ms, 1, e->nreq - 1);
    if (e->queued >= 256 && !e->reading_paused) {
      /* Bound what a fast sender can make us hold: stop reading. */
      e->reading_paused = 1;
      rpc_call_pause_reading(call);
    }
    break;
  }
  pump(e);
}

static void on_half_close(rpc_call *call, void *ud)
{
  struct ecall *e = rpc_call_data(call);
  if (e->finish_after)
    return;
  if (e->kind == RPC_CLIENT_STREAM)
    push(e, e->joined, e->payload, e->payload_len, e->last_delay, 1, e->nreq);
  else if (e->kind != RPC_BIDI && e->nreq == 0) {
    rpc_call_finish(call, RPC_INTERNAL, "no request message");
    return;
  }
  e->finish_after = 1;
  pump(e);
}

static void on_writable(rpc_call *call, void *ud)
{
  struct ecall *e = rpc_call_data(call);
  e->blocked = 0;
  pump(e);
}

static void on_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct ecall *e = rpc_call_data(call);
  if (!e)
    return;
  e->done = 1;
  uv_close((uv_handle_t *)&e->timer, ecall_closed);
}

static const struct rpc_handlers echo_handlers = {
    .on_start = on_start,
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_writable = on_writable,
    .on_done = on_done,
};

/* ---- serve --------------------------------------------------------------- */

struct serve {
  rpc_server *srv;
  uv_signal_t sigterm, sigint;
  int stopping;
};

static void shut_cb(rpc_server *s, void *ud)
{
  struct serve *sv = ud;
  uv_close((uv_handle_t *)&sv->sigterm, NULL);
  uv_close((uv_handle_t *)&sv->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct serve *sv = h->data;
  if (sv->stopping) {
    fprintf(stderr, "second signal: exiting now\n");
    exit(1);
  }
  sv->stopping = 1;
  fprintf(stderr, "shutting down: finishing in-flight calls\n");
  rpc_server_shutdown(sv->srv, 30000, shut_cb, sv);
}

int echo_serve(int argc, char **argv)
{
  static const struct option opts[] = {
      {"listen", required_argument, 0, 'l'},
      {"tls-cert", required_argument, 0, 'c'},
      {"tls-key", required_argument, 0, 'k'},
      {"client-ca", required_argument, 0, 'a'},
      {"max-message-size", required_argument, 0, 'm'},
      {"keepalive-interval", required_argument, 0, 'i'},
      {"keepalive-timeout", required_argument, 0, 't'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  const char *listen = NULL;
  struct rpc_tls_opts tls = {0};
  struct rpc_server_opts o = {0};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 'l':
      listen = optarg;
      break;
    case 'c':
      tls.cert = optarg;
      break;
    case 'k':
      tls.key = optarg;
      break;
    case 'a':
      tls.ca = optarg;
      break;
    case 'm':
      o.max_recv_msg = (size_t)echo_num("max-message-size", optarg);
      break;
    case 'i':
      o.keepalive_interval_ms = (unsigned)echo_num("keepalive-interval", optarg);
      break;
    case 't':
      o.keepalive_timeout_ms = (unsigned)echo_num("keepalive-timeout", optarg);
      break;
    case 'h':
      echo_usage();
      return 0;
    default:
      echo_usage();
      return 2;
    }
  }
  if (!listen || optind != argc || (!tls.cert != !tls.key) || (tls.ca && !tls.cert)) {
    fprintf(stderr, "error: serve needs --listen ADDR (and --tls-cert with --tls-key)\n");
    echo_usage();
    return 2;
  }
  const char *names[] = {"Unary", "ServerStream", "ClientStream", "Bidi"};
  struct rpc_method methods[4];
  char paths[4][64];
  for (int i = 0; i < 4; i++) {
    snprintf(paths[i], sizeof(paths[i]), ECHO_SVC "%s", names[i]);
    methods[i] = (struct rpc_method){paths[i], (enum rpc_kind)i,
                                     &drover__test__v1__echo_request__descriptor, echo_handlers};
  }
  o.methods = methods;
  o.n_methods = 4;
  o.tls = tls.cert ? &tls : NULL;
  o.on_log = echo_log;
  uv_loop_t *loop = uv_default_loop();
  struct serve sv = {0};
  int r = rpc_server_new(loop, &o, &sv.srv);
  if (r < 0) {
    fprintf(stderr, "error: cannot start the server: %s\n", rpc_strerror(r));
    return 1;
  }
  r = rpc_server_listen(sv.srv, listen);
  if (r < 0) {
    fprintf(stderr, "error: cannot listen on '%s': %s\n", listen,
            r == RPC_E_INVAL ? "the address must look like HOST:PORT or unix:PATH"
                             : rpc_strerror(r));
    rpc_server_free(sv.srv);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 1;
  }
  char addr[320];
  rpc_server_address(sv.srv, addr, sizeof(addr));
  printf("listening %s\n", addr);
  fflush(stdout);
  uv_signal_init(loop, &sv.sigterm);
  uv_signal_init(loop, &sv.sigint);
  sv.sigterm.data = sv.sigint.data = &sv;
  uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
  uv_signal_start(&sv.sigint, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  rpc_server_free(sv.srv);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    echo_usage();
    return 2;
  }
  const char *cmd = argv[1];
  argv[1] = argv[0];
  if (strcmp(cmd, "serve") == 0)
    return echo_serve(argc - 1, argv + 1);
  if (strcmp(cmd, "call") == 0)
    return echo_call(argc - 1, argv + 1);
  if (strcmp(cmd, "bench") == 0)
    return echo_bench(argc - 1, argv + 1);
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    echo_usage();
    return 0;
  }
  fprintf(stderr, "error: unknown command '%s'\n", cmd);
  echo_usage();
  return 2;
}
