/* rpc_echo_bench.c - drover-rpc-echo "bench": sequential unary latency and
 * bidi streaming throughput against an Echo server. */
#include "tools/rpc_echo.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct bench;

struct worker {
  struct bench *b;
  rpc_call *call;
  int64_t t0;
  int done;
};

struct bench {
  uv_loop_t *loop;
  rpc_client *client;
  int stream;
  long long size, seconds, concurrency;
  uint8_t *packed;
  size_t packed_len;
  int64_t start, end;
  int stopping;
  long long running;
  int64_t *lat;
  size_t nlat, caplat;
  int64_t tcp_p50, tcp_p99; /* raw TCP round trip in the same run, -1 none */
  long long replies, replies_at_stop;
  int failed;
  uv_timer_t stop_timer;
  uv_idle_t spin; /* --busy-poll: keeps the loop polling without sleeping */
  int busy_poll;
  struct worker *w;
};

static void unary_next(struct worker *w);

static void u_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct worker *w = ud;
  struct bench *b = w->b;
  if (st->code != RPC_OK) {
    if (!b->failed)
      fprintf(stderr, "error: call failed: %s: %s\n", rpc_code_name(st->code),
              st->message ? st->message : "");
    b->failed = 1;
    b->stopping = 1;
  } else {
    if (b->nlat == b->caplat) {
      b->caplat = b->caplat ? b->caplat * 2 : 65536;
      b->lat = xrealloc(b->lat, b->caplat * sizeof(*b->lat));
    }
    b->lat[b->nlat++] = mono_us() - w->t0;
  }
  w->call = NULL;
  unary_next(w);
}

static void finish(struct bench *b);

static void unary_next(struct worker *w)
{
  struct bench *b = w->b;
  if (b->stopping || mono_us() >= b->end) {
    w->done = 1;
    if (--b->running == 0)
      finish(b);
    return;
  }
  struct rpc_call_opts o = {
      .method = ECHO_SVC "Unary",
      .h = {.on_done = u_done},
      .ud = w,
  };
  w->t0 = mono_us();
  if (rpc_call_start(b->client, &o, &w->call) < 0) {
    b->failed = 1;
    w->done = 1;
    if (--b->running == 0)
      finish(b);
    return;
  }
  rpc_call_send_bytes(w->call, b->packed, b->packed_len);
  rpc_call_half_close(w->call);
}

static int cmp64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* The floor under the unary figures: round trips of `len` bytes over a
 * plain loopback TCP connection to a forked echo child, blocking
 * syscalls, no HTTP/2. On a VM whose idle vCPUs halt, a wakeup on the
 * other CPU costs several times the whole RPC stack, and whether the
 * scheduler puts the two ends on one CPU or two depends on the machine's
 * load: without this number in the same run, a change of placement reads
 * as a regression. With `spin` the parent polls like --busy-poll does. */
static void tcp_baseline(struct bench *b, size_t len, int spin)
{
  b->tcp_p50 = b->tcp_p99 = -1;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0 || listen(ls, 1) < 0) {
    if (ls >= 0)
      close(ls);
    return;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(ls);
    return;
  }
  int one = 1;
  if (pid == 0) {
    close(ls);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
      _exit(1);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char buf[4096];
    for (;;) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0 || write(c, buf, (size_t)n) != n)
        _exit(0);
    }
  }
  int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
  close(ls);
  enum { ROUNDS = 20000, MAX_US = 300000 };
  int64_t *lat = xmalloc(ROUNDS * sizeof(*lat));
  size_t n = 0;
  if (len > 4096)
    len = 4096;
  char *buf = xcalloc(1, len ? len : 1);
  if (s >= 0) {
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int64_t stop = mono_us() + MAX_US;
    while (n < ROUNDS) {
      int64_t t0 = mono_us();
      if (t0 >= stop || write(s, buf, len) != (ssize_t)len)
        break;
      size_t got = 0;
      while (got < len) {
        ssize_t r = recv(s, buf + got, len - got, spin ? MSG_DONTWAIT : 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
          continue;
        if (r <= 0)
          break;
        got += (size_t)r;
      }
      if (got < len)
        break;
      lat[n++] = mono_us() - t0;
    }
    close(s);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  if (n) {
    qsort(lat, n, sizeof(*lat), cmp64);
    b->tcp_p50 = lat[n / 2];
    b->tcp_p99 = lat[(size_t)((double)n * 0.99)];
  }
  free(lat);
  free(buf);
}

static void spin_cb(uv_idle_t *h)
{
  (void)h;
}

static void finish(struct bench *b)
{
  double secs = (double)(mono_us() - b->start) / 1e6;
  if (!b->stream) {
    qsort(b->lat, b->nlat, sizeof(*b->lat), cmp64);
    double sum = 0;
    for (size_t i = 0; i < b->nlat; i++)
      sum += (double)b->lat[i];
    int64_t p50 = b->nlat ? b->lat[b->nlat / 2] : 0;
    int64_t p99 = b->nlat ? b->lat[(size_t)((double)b->nlat * 0.99)] : 0;
    printf("{\"mode\":\"unary\",\"calls\":%zu,\"p50_us\":%lld,\"p99_us\":%lld,\"mean_us\":%.1f,"
           "\"tcp_p50_us\":%lld,\"tcp_p99_us\":%lld,\"busy_poll\":%s}\n",
           b->nlat, (long long)p50, (long long)p99, b->nlat ? sum / (double)b->nlat : 0.0,
           (long long)b->tcp_p50, (long long)b->tcp_p99, b->busy_poll ? "true" : "false");
  } else {
    /* Only what arrived within the measured window counts. */
    secs = (double)(b->end - b->start) / 1e6;
    double mps = secs > 0 ? (double)b->replies_at_stop / secs : 0;
    printf("{\"mode\":\"stream\",\"size\":%lld,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f}\n", b->size,
           mps, mps * (double)b->size / 1e6);
  }
  fflush(stdout);
  uv_close((uv_handle_t *)&b->stop_timer, NULL);
  if (b->busy_poll)
    uv_close((uv_handle_t *)&b->spin, NULL);
  rpc_client_close(b->client, NULL);
}

/* ---- stream ------------------------------------------------------------------ */

static void s_send(struct worker *w)
{
  struct bench *b = w->b;
  while (!w->done && !b->stopping) {
    int r = rpc_call_send_bytes(w->call, b->packed, b->packed_len);
    if (r != 0)
      return; /* 1: above high water, on_writable resumes; <0: ended */
  }
}

static void s_writable(rpc_call *call, void *ud)
{
  s_send(ud);
}

static void s_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct worker *w = ud;
  w->b->replies++;
}

static void s_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct worker *w = ud;
  struct bench *b = w->b;
  if (st->code != RPC_OK) {
    fprintf(stderr, "error: stream failed: %s: %s\n", rpc_code_name(st->code),
            st->message ? st->message : "");
    b->failed = 1;
  }
  w->done = 1;
  if (--b->running == 0)
    finish(b);
}

static void stop_cb(uv_timer_t *t)
{
  struct bench *b = t->data;
  b->stopping = 1;
  if (!b->stream)
    return;
  /* Count replies up to now; then end the streams. */
  b->end = mono_us();
  b->replies_at_stop = b->replies;
  for (long long i = 0; i < b->concurrency; i++)
    if (!b->w[i].done)
      rpc_call_half_close(b->w[i].call);
}

int echo_bench(int argc, char **argv)
{
  static const struct option opts[] = {
      {"target", required_argument, 0, 'T'},
      {"mode", required_argument, 0, 'm'},
      {"size", required_argument, 0, 's'},
      {"seconds", required_argument, 0, 'n'},
      {"concurrency", required_argument, 0, 'c'},
      {"tls-ca", required_argument, 0, 'A'},
      {"server-name", required_argument, 0, 'S'},
      {"busy-poll", no_argument, 0, 'B'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  struct bench b = {0};
  struct rpc_client_opts co = {0};
  struct rpc_tls_opts tls = {0};
  const char *mode = NULL;
  b.seconds = 5;
  b.concurrency = 1;
  b.size = -1;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 'T':
      co.target = optarg;
      break;
    case 'm':
      mode = optarg;
      break;
    case 's':
      b.size = echo_num("size", optarg);
      break;
    case 'n':
      b.seconds = echo_num("seconds", optarg);
      break;
    case 'c':
      b.concurrency = echo_num("concurrency", optarg);
      break;
    case 'A':
      tls.ca = optarg;
      break;
    case 'S':
      tls.server_name = optarg;
      break;
    case 'B':
      b.busy_poll = 1;
      break;
    case 'h':
      echo_usage();
      return 0;
    default:
      echo_usage();
      return 2;
    }
  }
  if (!co.target || !mode || optind != argc || b.concurrency < 1 ||
      (strcmp(mode, "unary") != 0 && strcmp(mode, "stream") != 0)) {
    fprintf(stderr, "error: bench needs --target ADDR and --mode unary|stream\n");
    echo_usage();
    return 2;
  }
  b.stream = strcmp(mode, "stream") == 0;
  if (b.size < 0)
    b.size = b.stream ? 1024 : 0;
  Drover__Test__V1__EchoRequest req = DROVER__TEST__V1__ECHO_REQUEST__INIT;
  uint8_t *pl = xmalloc((size_t)b.size + 1);
  memset(pl, 'x', (size_t)b.size);
  req.message = "bench";
  req.payload.data = pl;
  req.payload.len = (size_t)b.size;
  b.packed_len = protobuf_c_message_get_packed_size(&req.base);
  b.packed = xmalloc(b.packed_len);
  protobuf_c_message_pack(&req.base, b.packed);

  b.tcp_p50 = b.tcp_p99 = -1;
  if (!b.stream)
    tcp_baseline(&b, b.packed_len, b.busy_poll);
  b.loop = uv_default_loop();
  co.tls = tls.ca ? &tls : NULL;
  int r = echo_client_new(b.loop, &co, &b.client);
  if (r < 0) {
    free(pl);
    free(b.packed);
    return 2;
  }
  b.start = mono_us();
  b.end = b.start + b.seconds * 1000000;
  uv_timer_init(b.loop, &b.stop_timer);
  b.stop_timer.data = &b;
  uv_timer_start(&b.stop_timer, stop_cb, (uint64_t)b.seconds * 1000, 0);
  if (b.busy_poll) {
    /* An active idle handle makes every loop turn poll with a zero
     * timeout: this process never sleeps in epoll_wait, so a reply needs
     * no wakeup of a halted CPU. Costs one
     * CPU for the whole run. */
    uv_idle_init(b.loop, &b.spin);
    uv_idle_start(&b.spin, spin_cb);
  }
  b.w = xcalloc((size_t)b.concurrency, sizeof(*b.w));
  b.running = b.concurrency;
  for (long long i = 0; i < b.concurrency; i++) {
    struct worker *w = &b.w[i];
    w->b = &b;
    if (!b.stream) {
      unary_next(w);
      continue;
    }
    struct rpc_call_opts o = {
        .method = ECHO_SVC "Bidi",
        .h = {.on_message = s_message, .on_writable = s_writable, .on_done = s_done},
        .ud = w,
    };
    if (rpc_call_start(b.client, &o, &w->call) < 0) {
      fprintf(stderr, "error: cannot start the stream\n");
      return 1;
    }
    s_send(w);
  }
  uv_run(b.loop, UV_RUN_DEFAULT);
  free(b.lat);
  free(b.w);
  free(b.packed);
  free(pl);
  uv_loop_close(b.loop);
  return b.failed ? 1 : 0;
}
