/* rpc_echo_call.c - drover-rpc-echo "call" and "bench": the client side of the
 * Echo service, printing JSON lines for tests and benchmarks. */
#include "tools/rpc_echo.h"
#include "base/util.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cli;

struct ccall {
  struct cli *cli;
  int id;
  rpc_call *call;
  uint32_t sent;
  int half_closed, done, paused;
  uv_timer_t read_timer;
};

struct cli {
  uv_loop_t *loop;
  rpc_client *client;
  const char *method;
  enum rpc_kind kind;
  Drover__Test__V1__EchoRequest req;
  uint8_t *packed;
  size_t packed_len;
  long long count, concurrency, cancel_after, read_delay, timeout;
  long long paused_calls, active_done; /* --paused-calls; calls after them that ended */
  int quiet;
  struct rpc_md md[64];
  size_t nmd;
  struct ccall *calls;
  long long done, ok, replies;
  long long compressed_replies; /* replies the server sent compressed */
  long long codes[17], other_codes;
  int status_code;
  char *status_msg;
  int have_status;
  json_t *headers, *trailers;
  uv_timer_t cancel_timer;
  uv_check_t flusher;
  int unflushed;
  int64_t start_us;
};

/* Peak resident memory of this process in kB (VmHWM). Not getrusage's
 * ru_maxrss: Linux keeps that across execve, so a small child of a big
 * parent (python running the tests) would report the parent's peak. */
static long peak_rss_kb(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "VmHWM:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}
static json_t *md_json(const struct rpc_mdlist *l)
{
  json_t *o = json_object();
  for (size_t i = 0; i < l->n; i++) {
    const struct rpc_md *m = &l->v[i];
    size_t kl = strlen(m->key);
    if (kl > 4 && strcmp(m->key + kl - 4, "-bin") == 0) {
      /* binary values print as base64, like on the wire */
      static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const uint8_t *p = (const uint8_t *)m->value;
      size_t n = m->value_len;
      char *s = xmalloc((n + 2) / 3 * 4 + 1), *o2 = s;
      for (size_t i2 = 0; i2 < n; i2 += 3) {
        uint32_t v = (uint32_t)p[i2] << 16 | (i2 + 1 < n ? (uint32_t)p[i2 + 1] << 8 : 0) |
                     (i2 + 2 < n ? p[i2 + 2] : 0);
        *o2++ = b64[v >> 18];
        *o2++ = b64[(v >> 12) & 63];
        *o2++ = i2 + 1 < n ? b64[(v >> 6) & 63] : '=';
        *o2++ = i2 + 2 < n ? b64[v & 63] : '=';
      }
      *o2 = 0;
      json_object_set_new(o, m->key, json_string(s));
      free(s);
    } else {
      json_object_set_new(o, m->key, json_stringn_nocheck(m->value, m->value_len));
    }
  }
  return o;
}

static void print_json(json_t *j)
{
  char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  puts(s);
  free(s);
  json_decref(j);
}

static void send_more(struct ccall *cc)
{
  struct cli *c = cc->cli;
  while (!cc->done && cc->sent < (uint32_t)c->count) {
    cc->sent++;
    int r = rpc_call_send_bytes(cc->call, c->packed, c->packed_len);
    if (r < 0)
      return;
    if (r == 1)
      return; /* on_writable continues */
  }
  if (!cc->done && !cc->half_closed) {
    cc->half_closed = 1;
    rpc_call_half_close(cc->call);
  }
}

static void on_writable(rpc_call *call, void *ud)
{
  send_more(ud);
}

static void read_timer_cb(uv_timer_t *t)
{
  struct ccall *cc = t->data;
  if (!cc->done)
    rpc_call_resume_reading(cc->call);
}

static void on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct ccall *cc = ud;
  struct cli *c = cc->cli;
  Drover__Test__V1__EchoReply *r = (Drover__Test__V1__EchoReply *)m->msg;
  c->replies++;
  c->compressed_replies += m->compressed ? 1 : 0;
  if (!c->quiet) {
    json_t *j = json_object();
    json_object_set_new(j, "index", json_integer(r->index));
    json_object_set_new(j, "message", json_string(r->message ? r->message : ""));
    json_object_set_new(j, "payload_len", json_integer((json_int_t)r->payload.len));
    print_json(j);
    c->unflushed = 1;
  }
  if (cc->id < c->paused_calls && !cc->paused) {
    /* Stops reading for good: the peer fills this stream's window and
     * then waits, while the other calls on the connection go on. */
    cc->paused = 1;
    rpc_call_pause_reading(call);
  } else if (c->read_delay > 0) {
    rpc_call_pause_reading(call);
    uv_timer_start(&cc->read_timer, read_timer_cb, (uint64_t)c->read_delay, 0);
  }
}

/* Reply lines reach a pipe as they arrive, but one flush per loop turn, not
 * per line, so a fast stream still costs one write per batch. */
static void flush_cb(uv_check_t *h)
{
  struct cli *c = h->data;
  if (c->unflushed) {
    c->unflushed = 0;
    fflush(stdout);
  }
}

static void finish(struct cli *c)
{
  json_t *j = json_object();
  json_object_set_new(j, "status", json_integer(c->status_code));
  json_object_set_new(j, "status_name", json_string(rpc_code_name(c->status_code)));
  json_object_set_new(j, "message", json_string(c->status_msg ? c->status_msg : ""));
  json_object_set_new(j, "replies", json_integer(c->replies));
  json_object_set_new(j, "compressed_replies", json_integer(c->compressed_replies));
  json_object_set(j, "headers", c->headers ? c->headers : json_object());
  json_object_set(j, "trailers", c->trailers ? c->trailers : json_object());
  json_object_set_new(j, "calls", json_integer(c->concurrency));
  json_object_set_new(j, "ok", json_integer(c->ok));
  json_t *codes = json_object();
  for (int i = 0; i < 17; i++) {
    if (c->codes[i]) {
      char k[8];
      snprintf(k, sizeof(k), "%d", i);
      json_object_set_new(codes, k, json_integer(c->codes[i]));
    }
  }
  json_object_set_new(j, "codes", codes);
  json_object_set_new(j, "max_rss_kb", json_integer(peak_rss_kb()));
  json_object_set_new(j, "elapsed_ms", json_integer((mono_us() - c->start_us) / 1000));
  print_json(j);
  fflush(stdout);
  uv_close((uv_handle_t *)&c->flusher, NULL);
  if (c->cancel_after > 0)
    uv_close((uv_handle_t *)&c->cancel_timer, NULL);
  rpc_client_close(c->client, NULL);
}

static void on_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct ccall *cc = ud;
  struct cli *c = cc->cli;
  cc->done = 1;
  uv_close((uv_handle_t *)&cc->read_timer, NULL);
  if (cc->id == 0) {
    c->headers = md_json(rpc_call_headers(call));
    c->trailers = md_json(rpc_call_trailers(call));
  }
  if (st->code >= 0 && st->code < 17)
    c->codes[st->code]++;
  if (st->code == RPC_OK)
    c->ok++;
  /* Report the first failure, or OK when every call succeeded. */
  if (!c->have_status || (c->status_code == RPC_OK && st->code != RPC_OK)) {
    c->have_status = 1;
    c->status_code = st->code;
    free(c->status_msg);
    c->status_msg = xstrdup(st->message ? st->message : "");
  }
  if (cc->id >= c->paused_calls && ++c->active_done == c->concurrency - c->paused_calls) {
    for (long long i = 0; i < c->paused_calls; i++)
      if (!c->calls[i].done)
        rpc_call_cancel(c->calls[i].call);
  }
  if (++c->done == c->concurrency)
    finish(c);
}

static void cancel_cb(uv_timer_t *t)
{
  struct cli *c = t->data;
  for (long long i = 0; i < c->concurrency; i++)
    if (!c->calls[i].done)
      rpc_call_cancel(c->calls[i].call);
}

static int parse_method(const char *m, enum rpc_kind *k)
{
  static const char *names[] = {"Unary", "ServerStream", "ClientStream", "Bidi"};
  for (int i = 0; i < 4; i++) {
    if (strcmp(m, names[i]) == 0) {
      *k = (enum rpc_kind)i;
      return 0;
    }
  }
  return -1;
}

int echo_call(int argc, char **argv)
{
  static const struct option opts[] = {
      {"target", required_argument, 0, 'T'},
      {"message", required_argument, 0, 'm'},
      {"payload-size", required_argument, 0, 'p'},
      {"repeat", required_argument, 0, 'r'},
      {"delay-ms", required_argument, 0, 'd'},
      {"fail-code", required_argument, 0, 'f'},
      {"count", required_argument, 0, 'n'},
      {"metadata", required_argument, 0, 'M'},
      {"timeout", required_argument, 0, 't'},
      {"tls-ca", required_argument, 0, 'A'},
      {"tls-cert", required_argument, 0, 'C'},
      {"tls-key", required_argument, 0, 'K'},
      {"server-name", required_argument, 0, 'S'},
      {"max-message-size", required_argument, 0, 'x'},
      {"concurrency", required_argument, 0, 'c'},
      {"cancel-after-ms", required_argument, 0, 'X'},
      {"keepalive-interval", required_argument, 0, 'i'},
      {"keepalive-timeout", required_argument, 0, 'o'},
      {"read-delay-ms", required_argument, 0, 'R'},
      {"paused-calls", required_argument, 0, 'P'},
      {"connect-timeout", required_argument, 0, 'N'},
      {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  struct cli c = {0};
  Drover__Test__V1__EchoRequest init = DROVER__TEST__V1__ECHO_REQUEST__INIT;
  c.req = init;
  c.req.message = "hello";
  c.count = 1;
  c.concurrency = 1;
  struct rpc_tls_opts tls = {0};
  struct rpc_client_opts co = {0};
  long long payload = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
    switch (ch) {
    case 'T':
      co.target = optarg;
      break;
    case 'm':
      c.req.message = optarg;
      break;
    case 'p':
      payload = echo_num("payload-size", optarg);
      break;
    case 'r':
      c.req.repeat = (uint32_t)echo_num("repeat", optarg);
      break;
    case 'd':
      c.req.delay_ms = (uint32_t)echo_num("delay-ms", optarg);
      break;
    case 'f':
      c.req.fail_code = (int32_t)echo_num("fail-code", optarg);
      break;
    case 'n':
      c.count = echo_num("count", optarg);
      break;
    case 'M': {
      char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg || c.nmd == ARRAY_SIZE(c.md)) {
        fprintf(stderr, "error: option '--metadata': '%s' must look like KEY=VALUE\n", optarg);
        echo_usage();
        return 2;
      }
      *eq = 0;
      c.md[c.nmd++] = (struct rpc_md){optarg, eq + 1, strlen(eq + 1)};
      break;
    }
    case 't':
      c.timeout = echo_num("timeout", optarg);
      break;
    case 'A':
      tls.ca = optarg;
      break;
    case 'C':
      tls.cert = optarg;
      break;
    case 'K':
      tls.key = optarg;
      break;
    case 'S':
      tls.server_name = optarg;
      break;
    case 'x':
      co.max_recv_msg = (size_t)echo_num("max-message-size", optarg);
      break;
    case 'c':
      c.concurrency = echo_num("concurrency", optarg);
      break;
    case 'X':
      c.cancel_after = echo_num("cancel-after-ms", optarg);
      break;
    case 'i':
      co.keepalive_interval_ms = (unsigned)echo_num("keepalive-interval", optarg);
      break;
    case 'o':
      co.keepalive_timeout_ms = (unsigned)echo_num("keepalive-timeout", optarg);
      break;
    case 'R':
      c.read_delay = echo_num("read-delay-ms", optarg);
      break;
    case 'P':
      c.paused_calls = echo_num("paused-calls", optarg);
      break;
    case 'N':
      co.connect_timeout_ms = (unsigned)echo_num("connect-timeout", optarg);
      break;
    case 'q':
      c.quiet = 1;
      break;
    case 'h':
      echo_usage();
      return 0;
    default:
      echo_usage();
      return 2;
    }
  }
  if (!co.target || optind != argc - 1 || parse_method(argv[optind], &c.kind) < 0 ||
      c.concurrency < 1 || (!tls.cert != !tls.key)) {
    fprintf(stderr, "error: call needs --target ADDR and one method: Unary, ServerStream, "
                    "ClientStream or Bidi\n");
    echo_usage();
    return 2;
  }
  if (c.paused_calls >= c.concurrency) {
    fprintf(stderr,
            "error: option '--paused-calls': %lld must be below --concurrency (%lld): "
            "one call at least must read\n",
            c.paused_calls, c.concurrency);
    echo_usage();
    return 2;
  }
  char method[128];
  snprintf(method, sizeof(method), ECHO_SVC "%s", argv[optind]);
  if (c.kind == RPC_UNARY || c.kind == RPC_SERVER_STREAM)
    c.count = 1;
  uint8_t *pl = xmalloc((size_t)payload + 1);
  memset(pl, 'x', (size_t)payload);
  c.req.payload.data = pl;
  c.req.payload.len = (size_t)payload;
  c.packed_len = protobuf_c_message_get_packed_size(&c.req.base);
  c.packed = xmalloc(c.packed_len + 1);
  protobuf_c_message_pack(&c.req.base, c.packed);

  c.loop = uv_default_loop();
  co.tls = tls.ca ? &tls : NULL;
  c.start_us = mono_us();
  int r = echo_client_new(c.loop, &co, &c.client);
  if (r < 0) {
    free(pl);
    free(c.packed);
    if (r == RPC_E_INVAL)
      echo_usage();
    return r == RPC_E_INVAL ? 2 : 1;
  }
  uv_check_init(c.loop, &c.flusher);
  c.flusher.data = &c;
  uv_check_start(&c.flusher, flush_cb);
  uv_unref((uv_handle_t *)&c.flusher);
  c.calls = xcalloc((size_t)c.concurrency, sizeof(*c.calls));
  for (long long i = 0; i < c.concurrency; i++) {
    struct ccall *cc = &c.calls[i];
    cc->cli = &c;
    cc->id = (int)i;
    uv_timer_init(c.loop, &cc->read_timer);
    cc->read_timer.data = cc;
    struct rpc_call_opts o = {
        .method = method,
        .response = &drover__test__v1__echo_reply__descriptor,
        .timeout_ms = c.timeout,
        .metadata = c.md,
        .n_metadata = c.nmd,
        .h = {.on_message = on_message, .on_writable = on_writable, .on_done = on_done},
        .ud = cc,
    };
    r = rpc_call_start(c.client, &o, &cc->call);
    if (r < 0) {
      fprintf(stderr, "error: cannot start call: %s\n", rpc_strerror(r));
      return r == RPC_E_INVAL ? 2 : 1;
    }
    send_more(cc);
  }
  if (c.cancel_after > 0) {
    uv_timer_init(c.loop, &c.cancel_timer);
    c.cancel_timer.data = &c;
    uv_timer_start(&c.cancel_timer, cancel_cb, (uint64_t)c.cancel_after, 0);
  }
  uv_run(c.loop, UV_RUN_DEFAULT);
  int rc = c.ok == c.concurrency ? 0 : 1;
  json_decref(c.headers);
  json_decref(c.trailers);
  free(c.status_msg);
  free(c.calls);
  free(c.packed);
  free(pl);
  uv_loop_close(c.loop);
  return rc;
}
