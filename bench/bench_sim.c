/* bench_sim.c - coordinator benchmarks with simulated agents (no real agent,
 * no process spawned per job); docs/benchmarks.md explains every figure.
 *
 *   bench_sim memory   [OPTIONS]   RSS of `drover server` per connected agent,
 *                                  beside drover-rpc-echo's per connection
 *   bench_sim dispatch [OPTIONS]   jobs/s from the first Submit to the last
 *                                  job's end, beside unary echo round trips
 *
 * Each mode starts its own servers on fresh data dirs, stops them with
 * SIGTERM at the end and checks that they exit 0. Figures are printed as
 * key=value lines (bench/bench_coord.sh makes the table). The exit status is
 * 1 when something went wrong (a job not succeeded, a store check failed, a
 * protocol surprise, a server that did not exit 0), never for a timing. */
#include "bench/sim.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

/* ---- the loop helpers of sim.h ---- */

static void deadline_cb(uv_timer_t *t)
{
  *(int *)t->data = 1;
}

static void handle_closed(uv_handle_t *h)
{
  *(int *)h->data = 1;
}

void sim_close(uv_loop_t *loop, uv_handle_t *h)
{
  int closed = 0;
  /* The flag outlives the handle's use of it: the loop below runs until the
   * close callback has set it. */
  /* cppcheck-suppress autoVariables */
  h->data = &closed;
  uv_close(h, handle_closed);
  while (!closed)
    uv_run(loop, UV_RUN_NOWAIT);
}

int sim_run_until(uv_loop_t *loop, int (*done)(void *ud), void *ud, uint64_t timeout_ms)
{
  if (done(ud))
    return 0;
  int state = 0; /* 1: the deadline passed */
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = &state;
  uv_timer_start(&t, deadline_cb, timeout_ms, 0);
  int rc = -1;
  for (;;) {
    if (done(ud)) {
      rc = 0;
      break;
    }
    if (state == 1)
      break;
    uv_run(loop, UV_RUN_ONCE);
  }
  sim_close(loop, (uv_handle_t *)&t); /* it lives on this stack frame */
  return rc;
}

struct unary {
  int done, code;
  char msg[256];
  ProtobufCMessage *reply;
};

static void unary_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct unary *u = ud;
  (void)call;
  if (!u->reply)
    u->reply = rpc_msg_take(m);
}

static void unary_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct unary *u = ud;
  (void)call;
  u->done = 1;
  u->code = st->code;
  snprintf(u->msg, sizeof(u->msg), "%s", st->message ? st->message : "");
}

static int unary_over(void *ud)
{
  return ((struct unary *)ud)->done;
}

int sim_unary(uv_loop_t *loop, rpc_client *c, const char *method,
              const ProtobufCMessageDescriptor *resp, const ProtobufCMessage *req,
              ProtobufCMessage **out, const char *what)
{
  struct unary u = {0};
  struct rpc_call_opts o = {
      .method = method,
      .response = resp,
      .h = {.on_message = unary_message, .on_done = unary_done},
      .ud = &u,
  };
  rpc_call *call;
  int rc = rpc_call_unary(c, &o, req, &call);
  if (rc < 0) {
    fprintf(stderr, "bench_sim: %s: cannot start the call: %s\n", what, rpc_strerror(rc));
    return -1;
  }
  if (sim_run_until(loop, unary_over, &u, 120000) < 0) {
    /* on_done follows a cancel: u must outlive it. */
    rpc_call_cancel(call);
    while (!u.done)
      uv_run(loop, UV_RUN_ONCE);
  }
  if (u.code != RPC_OK || !u.reply) {
    fprintf(stderr, "bench_sim: %s: %s: %s\n", what, rpc_code_name(u.code),
            u.msg[0] ? u.msg : "no reply");
    if (u.reply)
      protobuf_c_message_free_unpacked(u.reply, NULL);
    return -1;
  }
  *out = u.reply;
  return 0;
}

static void client_log(void *ud, const char *line)
{
  (void)ud;
  fprintf(stderr, "bench_sim: rpc: %s\n", line);
}

rpc_client *sim_client_new(uv_loop_t *loop, const char *target, void *ud)
{
  struct rpc_client_opts co = {
      .target = target,
      .max_recv_msg = 64u * 1024 * 1024, /* a List page of 10,000 jobs */
      .connect_timeout_ms = 60000,
      .on_log = client_log,
      .ud = ud,
  };
  rpc_client *c;
  int rc = rpc_client_new(loop, &co, NULL, &c);
  if (rc < 0) {
    fprintf(stderr, "bench_sim: cannot create a client for '%s': %s\n", target, rpc_strerror(rc));
    return NULL;
  }
  return c;
}

void sim_client_close(rpc_client *c)
{
  rpc_client_close(c, NULL);
}

/* ---- options ---- */

struct opts {
  const char *mode;
  char *drover, *echo, *data;
  unsigned agents, slots, connecting, heartbeats, in_flight, window;
  long jobs, sample;
  int no_wait, log_batch;
  const char *perf;
  const char *server_args[32];
  size_t nserver_args;
};

static void usage(FILE *f)
{
  fputs("usage: bench_sim memory|dispatch [OPTIONS]\n"
        "  --drover PATH      drover binary (default: ../drover beside bench_sim)\n"
        "  --echo PATH        drover-rpc-echo binary (default: ../drover-rpc-echo)\n"
        "  --data DIR         where fresh data dirs and server logs go (default: $TMPDIR\n"
        "                     or /tmp)\n"
        "  --agents N         simulated agents, one HTTP/2 connection each (1000)\n"
        "  --slots N          slots each agent announces (4)\n"
        "  --connecting N     connections being opened at once (64)\n"
        "  --heartbeats N     memory: heartbeats every agent sends before RSS is read (3)\n"
        "  --jobs N           dispatch: jobs to run (50000)\n"
        "  --in-flight N      dispatch: Submit calls outstanding at most (1000)\n"
        "  --window N         dispatch: jobs submitted and not ended at most\n"
        "                     (default: 2 x agents x slots)\n"
        "  --no-wait          dispatch: no Wait calls; a job has ended when its agent\n"
        "                     gets the Ack of its result\n"
        "  --log-batch        dispatch: every job sends one small LogBatch\n"
        "  --sample N         dispatch: jobs whose event trail is checked (200)\n"
        "  --perf FILE        dispatch: perf record -g the coordinator while jobs run\n"
        "  --server-arg ARG   one more argument for drover server (repeatable)\n",
        f);
}

static long num(const char *opt, const char *s, long min)
{
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < min) {
    fprintf(stderr, "error: option '--%s': '%s' must be a number of at least %ld\n", opt, s, min);
    usage(stderr);
    exit(2);
  }
  return v;
}

static char *beside(const char *argv0, const char *name)
{
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0)
    snprintf(self, sizeof(self), "%s", argv0);
  else
    self[n] = 0;
  char *dir = dirname(self); /* BUILD/bench */
  return xasprintf("%s/../%s", dir, name);
}

static int parse(int argc, char **argv, struct opts *o)
{
  static const struct option lo[] = {
      {"drover", required_argument, 0, 'D'},
      {"echo", required_argument, 0, 'E'},
      {"data", required_argument, 0, 'd'},
      {"agents", required_argument, 0, 'a'},
      {"slots", required_argument, 0, 's'},
      {"connecting", required_argument, 0, 'c'},
      {"heartbeats", required_argument, 0, 'b'},
      {"jobs", required_argument, 0, 'j'},
      {"in-flight", required_argument, 0, 'i'},
      {"window", required_argument, 0, 'w'},
      {"no-wait", no_argument, 0, 'W'},
      {"log-batch", no_argument, 0, 'L'},
      {"sample", required_argument, 0, 'S'},
      {"perf", required_argument, 0, 'P'},
      {"server-arg", required_argument, 0, 'A'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  *o = (struct opts){.agents = 1000,
                     .slots = 4,
                     .connecting = 64,
                     .heartbeats = 3,
                     .in_flight = 1000,
                     .jobs = 50000,
                     .sample = 200};
  if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    usage(stdout);
    exit(0);
  }
  if (argc < 2 || (strcmp(argv[1], "memory") && strcmp(argv[1], "dispatch"))) {
    fprintf(stderr, "error: the first argument must be 'memory' or 'dispatch'\n");
    usage(stderr);
    return -1;
  }
  o->mode = argv[1];
  optind = 2;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (ch) {
    case 'D':
      o->drover = xstrdup(optarg);
      break;
    case 'E':
      o->echo = xstrdup(optarg);
      break;
    case 'd':
      o->data = xstrdup(optarg);
      break;
    case 'a':
      o->agents = (unsigned)num("agents", optarg, 1);
      break;
    case 's':
      o->slots = (unsigned)num("slots", optarg, 1);
      break;
    case 'c':
      o->connecting = (unsigned)num("connecting", optarg, 1);
      break;
    case 'b':
      o->heartbeats = (unsigned)num("heartbeats", optarg, 1);
      break;
    case 'j':
      o->jobs = num("jobs", optarg, 1);
      break;
    case 'i':
      o->in_flight = (unsigned)num("in-flight", optarg, 1);
      break;
    case 'w':
      o->window = (unsigned)num("window", optarg, 1);
      break;
    case 'W':
      o->no_wait = 1;
      break;
    case 'L':
      o->log_batch = 1;
      break;
    case 'S':
      o->sample = num("sample", optarg, 0);
      break;
    case 'P':
      o->perf = optarg;
      break;
    case 'A':
      if (o->nserver_args == ARRAY_SIZE(o->server_args)) {
        fprintf(stderr, "error: option '--server-arg': at most %zu\n", ARRAY_SIZE(o->server_args));
        return -1;
      }
      o->server_args[o->nserver_args++] = optarg;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "error: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return -1;
  }
  if (!o->drover)
    o->drover = beside(argv[0], "drover");
  if (!o->echo)
    o->echo = beside(argv[0], "drover-rpc-echo");
  if (!o->data)
    o->data = xstrdup(getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!o->window)
    o->window = 2 * o->agents * o->slots;
  return 0;
}

/* ---- servers ---- */

static int start_echo(const struct opts *o, struct sim_proc *p)
{
  char *log = xasprintf("%s/echo.log", o->data);
  char *argv[] = {o->echo, "serve", "--listen", "127.0.0.1:0", NULL};
  int rc = sim_proc_start(p, "drover-rpc-echo", argv, "listening ", log, 20000);
  free(log);
  return rc;
}

static int stop_server(struct sim_proc *p, const char *key)
{
  int code = sim_proc_stop(p, 60000);
  printf("%s=%d\n", key, code);
  if (code != 0)
    fprintf(stderr, "bench_sim: %s: exit status %d after SIGTERM, not 0\n", key, code);
  return code == 0 ? 0 : -1;
}

/* A fresh data dir under o->data; the server's stderr goes to DIR.log. */
static int start_coord(const struct opts *o, const char *name, struct sim_proc *p, char **dirp)
{
  char *tmpl = xasprintf("%s/coord-%s-XXXXXX", o->data, name);
  if (!mkdtemp(tmpl)) {
    fprintf(stderr, "bench_sim: cannot make a data dir under '%s': %s\n", o->data, strerror(errno));
    free(tmpl);
    return -1;
  }
  char *log = xasprintf("%s.log", tmpl);
  const char *argv[48];
  size_t n = 0;
  argv[n++] = o->drover;
  argv[n++] = "server";
  argv[n++] = "--listen";
  argv[n++] = "127.0.0.1:0";
  argv[n++] = "--data";
  argv[n++] = tmpl;
  for (size_t i = 0; i < o->nserver_args; i++)
    argv[n++] = o->server_args[i];
  argv[n] = NULL;
  int rc = sim_proc_start(p, "drover server", (char *const *)argv, "drover server listening on ",
                          log, 60000);
  if (rc == 0) {
    printf("coord_pid=%d coord_data=%s coord_log=%s\n", (int)p->pid, tmpl, log);
    fflush(stdout);
  }
  free(log);
  *dirp = tmpl;
  return rc;
}

/* ---- agents ---- */

struct agents_wait {
  struct sim_agents *a;
  unsigned n;
  uint64_t heartbeats;
};

static int agents_welcomed(void *ud)
{
  struct agents_wait *w = ud;
  struct sim_agent_stats st;
  sim_agents_stats(w->a, &st);
  return st.welcomed + st.failed >= w->n;
}

static int agents_beat(void *ud)
{
  struct agents_wait *w = ud;
  struct sim_agent_stats st;
  sim_agents_stats(w->a, &st);
  return st.min_heartbeats >= w->heartbeats || st.failed;
}

static int agents_acked(void *ud)
{
  struct agents_wait *w = ud;
  struct sim_agent_stats st;
  sim_agents_stats(w->a, &st);
  return st.results_unacked == 0;
}

/* Connects n agents numbered from `first` with the token; 0 once all are
 * welcomed (*secs: how long that took). */
static int connect_agents(uv_loop_t *loop, const struct opts *o, const char *target,
                          const char *token, unsigned first, unsigned n, struct sim_agents **out,
                          double *secs)
{
  struct sim_agents_opts ao = {
      .target = target,
      .token = token,
      .n = n,
      .first = first,
      .slots = o->slots,
      .connecting_max = o->connecting,
      .log_batch = o->log_batch,
  };
  int64_t t0 = mono_us();
  sim_agents_start(loop, &ao, out);
  struct agents_wait w = {*out, n, 0};
  int rc = sim_run_until(loop, agents_welcomed, &w, 60000 + (uint64_t)n * 100);
  *secs = (double)(mono_us() - t0) / 1e6;
  struct sim_agent_stats st;
  sim_agents_stats(*out, &st);
  if (rc < 0 || st.failed || st.welcomed != n) {
    fprintf(stderr, "bench_sim: %u of %u agents welcomed, %u failed (%s)\n", st.welcomed, n,
            st.failed, st.first_error[0] ? st.first_error : "timed out");
    return -1;
  }
  return 0;
}

/* Waits until every agent of a has sent `heartbeats` heartbeats. */
static int await_heartbeats(uv_loop_t *loop, struct sim_agents *a, unsigned n, unsigned heartbeats)
{
  struct agents_wait w = {a, n, heartbeats};
  struct sim_agent_stats st;
  sim_agents_stats(a, &st);
  uint64_t limit = (uint64_t)heartbeats * (st.heartbeat_interval_ms + 1000) + 60000;
  int rc = sim_run_until(loop, agents_beat, &w, limit);
  sim_agents_stats(a, &st);
  if (rc < 0 || st.failed) {
    fprintf(stderr, "bench_sim: agents did not all send %u heartbeats (%s)\n", heartbeats,
            st.first_error[0] ? st.first_error : "timed out");
    return -1;
  }
  return 0;
}

/* Agents that were only connected got nothing but Welcome and Acks. */
static int idle_agents_ok(struct sim_agents *a)
{
  struct sim_agent_stats st;
  sim_agents_stats(a, &st);
  if (st.runs || st.cancels || st.unknown_acks || st.failed) {
    fprintf(stderr, "bench_sim: unexpected to idle agents: runs=%llu cancels=%llu acks=%llu (%s)\n",
            (unsigned long long)st.runs, (unsigned long long)st.cancels,
            (unsigned long long)st.unknown_acks, st.first_error);
    return -1;
  }
  return 0;
}

/* ---- memory ---- */

/* The figures are taken twice, with half the agents and with all: the
 * difference is the cost of one more agent, without what the first ones
 * bring once (SQLite's page cache filling, malloc arenas of the store's
 * threads), which (RSS - idle) / N spreads over every agent. */
static int run_memory(uv_loop_t *loop, const struct opts *o)
{
  int bad = 0;
  unsigned half = o->agents / 2, rest = o->agents - half;
  if (!half) {
    fprintf(stderr, "error: the memory benchmark needs 2 agents at least\n");
    return 1;
  }
  /* The transport's floor: as many connections to a server on src/rpc
   * that does nothing but echo, each with one open bidi stream. */
  struct sim_proc echo;
  if (start_echo(o, &echo) < 0)
    return 1;
  long e_idle = sim_proc_status_kb(echo.pid, "VmRSS"), e_half = -1, e_bare = -1, e_all = -1;
  struct sim_echo_conns *ea = sim_echo_conns_open(loop, echo.addr, half, o->connecting), *eb = NULL;
  if (ea && sim_echo_conns_streams(loop, ea) == 0) {
    e_half = sim_proc_status_kb(echo.pid, "VmRSS");
    eb = sim_echo_conns_open(loop, echo.addr, rest, o->connecting);
    if (eb) {
      e_bare = sim_proc_status_kb(echo.pid, "VmRSS");
      if (sim_echo_conns_streams(loop, eb) == 0)
        e_all = sim_proc_status_kb(echo.pid, "VmRSS");
    }
  }
  if (e_all < 0)
    bad = 1;
  if (ea)
    sim_echo_conns_close(loop, ea);
  if (eb)
    sim_echo_conns_close(loop, eb);
  printf("echo_idle_rss_kb=%ld echo_conns=%u echo_half_rss_kb=%ld echo_all_bare_rss_kb=%ld "
         "echo_all_rss_kb=%ld\n",
         e_idle, o->agents, e_half, e_bare, e_all);
  if (!bad)
    printf("echo_kib_per_conn_stream=%.2f echo_kib_per_conn_marginal=%.2f "
           "echo_kib_per_conn_stream_marginal=%.2f\n",
           (double)(e_all - e_idle) / o->agents, (double)(e_bare - e_half) / rest,
           (double)(e_all - e_half) / rest);
  if (stop_server(&echo, "echo_exit") < 0)
    bad = 1;
  fflush(stdout);

  struct sim_proc coord;
  char *dir = NULL;
  if (start_coord(o, "memory", &coord, &dir) < 0) {
    free(dir);
    return 1;
  }
  long c_idle = sim_proc_status_kb(coord.pid, "VmRSS");
  long a_idle = sim_proc_status_kb(coord.pid, "RssAnon");
  char token[256];
  struct sim_agents *aa = NULL, *ab = NULL;
  double secs_a = 0, secs_b = 0;
  long self0 = sim_self_rss_kb();
  if (sim_token_create(loop, coord.addr, o->agents, token, sizeof(token)) < 0) {
    bad = 1;
    goto stop;
  }
  long c_token = sim_proc_status_kb(coord.pid, "VmRSS");
  long a_token = sim_proc_status_kb(coord.pid, "RssAnon");
  if (connect_agents(loop, o, coord.addr, token, 0, half, &aa, &secs_a) < 0 ||
      await_heartbeats(loop, aa, half, o->heartbeats) < 0) {
    bad = 1;
    goto stop;
  }
  long c_half = sim_proc_status_kb(coord.pid, "VmRSS");
  if (connect_agents(loop, o, coord.addr, token, half, rest, &ab, &secs_b) < 0 ||
      await_heartbeats(loop, ab, rest, o->heartbeats) < 0) {
    bad = 1;
    goto stop;
  }
  long c_all = sim_proc_status_kb(coord.pid, "VmRSS");
  long a_all = sim_proc_status_kb(coord.pid, "RssAnon");
  long self1 = sim_self_rss_kb();
  struct sim_agent_stats st;
  sim_agents_stats(aa, &st);
  printf("coord_idle_rss_kb=%ld coord_token_rss_kb=%ld coord_agents=%u coord_half_rss_kb=%ld "
         "coord_agents_rss_kb=%ld coord_hwm_kb=%ld heartbeats_min=%u heartbeat_interval_ms=%llu "
         "connect_seconds=%.2f\n",
         c_idle, c_token, o->agents, c_half, c_all, sim_proc_status_kb(coord.pid, "VmHWM"),
         o->heartbeats, (unsigned long long)st.heartbeat_interval_ms, secs_a + secs_b);
  printf("coord_kib_per_agent=%.2f coord_kib_per_agent_marginal=%.2f sim_kib_per_agent=%.2f\n",
         (double)(c_all - c_idle) / o->agents, (double)(c_all - c_half) / rest,
         (double)(self1 - self0) / o->agents);
  /* VmRSS counts the pages of code and libraries run for the first time
   * too (RssFile); RssAnon is the memory the process allocated. */
  printf("coord_idle_anon_kb=%ld coord_token_anon_kb=%ld coord_agents_anon_kb=%ld "
         "coord_anon_kib_per_agent=%.2f\n",
         a_idle, a_token, a_all, (double)(a_all - a_idle) / o->agents);
  if (idle_agents_ok(aa) < 0 || idle_agents_ok(ab) < 0)
    bad = 1;
stop:
  fflush(stdout);
  if (aa && sim_agents_stop(loop, aa) < 0)
    bad = 1;
  if (ab && sim_agents_stop(loop, ab) < 0)
    bad = 1;
  if (stop_server(&coord, "coord_exit") < 0)
    bad = 1;
  free(dir);
  return bad;
}

/* ---- dispatch ---- */

static pid_t perf_start(const struct opts *o, pid_t target)
{
  char pid[16];
  snprintf(pid, sizeof(pid), "%d", (int)target);
  char *log = xasprintf("%s/perf.log", o->data);
  fflush(NULL);
  pid_t p = fork();
  if (p == 0) {
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    if (!freopen("/dev/null", "w", stdout))
      _exit(127);
    execlp("perf", "perf", "record", "-g", "-o", o->perf, "-p", pid, (char *)NULL);
    fprintf(stderr, "bench_sim: cannot run perf: %s\n", strerror(errno));
    _exit(127);
  }
  free(log);
  if (p > 0)
    sleep(1); /* perf needs a moment to attach; this is before the clock starts */
  return p;
}

static void perf_stop(pid_t p)
{
  if (p <= 0)
    return;
  kill(p, SIGINT);
  int st;
  waitpid(p, &st, 0);
}

static int run_dispatch(uv_loop_t *loop, const struct opts *o)
{
  int bad = 0;
  struct sim_proc echo;
  if (start_echo(o, &echo) < 0)
    return 1;
  double echo_rate = sim_echo_unary_rate(loop, echo.addr, o->jobs, o->in_flight);
  if (echo_rate < 0)
    bad = 1;
  printf("echo_unary_calls=%ld echo_unary_in_flight=%u echo_unary_per_s=%.0f\n", o->jobs,
         o->in_flight, echo_rate);
  if (stop_server(&echo, "echo_exit") < 0)
    bad = 1;
  fflush(stdout);

  struct sim_proc coord;
  char *dir = NULL;
  if (start_coord(o, "dispatch", &coord, &dir) < 0) {
    free(dir);
    return 1;
  }
  struct sim_agents *agents = NULL;
  double secs = 0;
  char token[256];
  if (sim_token_create(loop, coord.addr, o->agents, token, sizeof(token)) < 0 ||
      connect_agents(loop, o, coord.addr, token, 0, o->agents, &agents, &secs) < 0) {
    bad = 1;
    goto stop;
  }
  pid_t perf = o->perf ? perf_start(o, coord.pid) : 0;
  long c_cpu0 = sim_proc_cpu_ms(coord.pid), c_loop0 = sim_proc_main_cpu_ms(coord.pid);
  long s_cpu0 = sim_proc_cpu_ms(getpid());
  int64_t run0 = 0, wait0 = 0, run1 = 0, wait1 = 0;
  sim_proc_main_sched(coord.pid, &run0, &wait0);
  struct sim_jobs_opts jo = {
      .target = coord.addr,
      .jobs = o->jobs,
      .in_flight = o->in_flight,
      .window = o->window,
      .wait = !o->no_wait,
  };
  struct sim_jobs_result r;
  int rc = sim_jobs_run(loop, &jo, agents, &r);
  long c_cpu1 = sim_proc_cpu_ms(coord.pid), c_loop1 = sim_proc_main_cpu_ms(coord.pid);
  long s_cpu1 = sim_proc_cpu_ms(getpid());
  sim_proc_main_sched(coord.pid, &run1, &wait1);
  perf_stop(perf);
  if (rc < 0) {
    fprintf(stderr, "bench_sim: dispatch: %s\n", r.first_error[0] ? r.first_error : "failed");
    bad = 1;
  }
  /* Results are acknowledged from the same commit as the Wait replies: let
   * the last Acks arrive before counting what is unacknowledged. */
  struct agents_wait w = {agents, o->agents, 0};
  if (rc == 0)
    sim_run_until(loop, agents_acked, &w, 30000);
  struct sim_agent_stats st;
  sim_agents_stats(agents, &st);
  double rate = r.seconds > 0 ? (double)r.ended / r.seconds : 0;
  printf("dispatch_jobs=%ld agents=%u slots=%u in_flight=%u window=%u wait=%d log_batch=%d\n",
         o->jobs, o->agents, o->slots, o->in_flight, o->window, !o->no_wait, o->log_batch);
  printf("dispatch_submitted=%ld dispatch_ended=%ld dispatch_not_succeeded=%ld "
         "dispatch_errors=%ld\n",
         r.submitted, r.ended, r.not_succeeded, r.errors);
  printf("dispatch_seconds=%.3f dispatch_jobs_per_s=%.0f submit_per_s=%.0f\n", r.seconds, rate,
         r.submit_seconds > 0 ? (double)r.submitted / r.submit_seconds : 0);
  if (!o->no_wait)
    printf("job_latency_p50_ms=%.1f job_latency_p99_ms=%.1f job_latency_max_ms=%.1f\n",
           (double)r.lat_p50_us / 1e3, (double)r.lat_p99_us / 1e3, (double)r.lat_max_us / 1e3);
  double jobs = (double)o->jobs;
  printf("coord_cpu_ms=%ld coord_cpu_us_per_job=%.1f coord_loop_cpu_ms=%ld "
         "coord_loop_us_per_job=%.1f coord_loop_busy=%.2f sim_cpu_ms=%ld sim_cpu_us_per_job=%.1f\n",
         c_cpu1 - c_cpu0, (double)(c_cpu1 - c_cpu0) * 1e3 / jobs, c_loop1 - c_loop0,
         (double)(c_loop1 - c_loop0) * 1e3 / jobs,
         r.seconds > 0 ? (double)(c_loop1 - c_loop0) / 1e3 / r.seconds : 0, s_cpu1 - s_cpu0,
         (double)(s_cpu1 - s_cpu0) * 1e3 / jobs);
  /* The loop thread's share of the run on a CPU, and waiting for one while
   * it had work: when the two add up to nearly 1, the loop is the limit
   * (on a busy machine, partly through no fault of its own). */
  if (r.seconds > 0)
    printf("coord_loop_on_cpu=%.2f coord_loop_waiting_for_cpu=%.2f\n",
           (double)(run1 - run0) / 1e9 / r.seconds, (double)(wait1 - wait0) / 1e9 / r.seconds);
  printf("coord_rss_kb=%ld coord_hwm_kb=%ld\n", sim_proc_status_kb(coord.pid, "VmRSS"),
         sim_proc_status_kb(coord.pid, "VmHWM"));
  printf("agents_runs=%llu agents_dup_runs=%llu agents_cancels=%llu agents_results_acked=%llu "
         "agents_results_unacked=%llu agents_unknown_acks=%llu agents_stream_failures=%u\n",
         (unsigned long long)st.runs, (unsigned long long)st.dup_runs,
         (unsigned long long)st.cancels, (unsigned long long)st.results_acked,
         (unsigned long long)st.results_unacked, (unsigned long long)st.unknown_acks, st.failed);
  fflush(stdout);
  if (st.dup_runs || st.cancels || st.results_unacked || st.unknown_acks || st.failed ||
      st.runs != (uint64_t)o->jobs) {
    fprintf(stderr, "bench_sim: the agents saw something a real agent would not expect%s%s\n",
            st.first_error[0] ? ": " : "", st.first_error);
    bad = 1;
  }
  if (sim_jobs_verify(loop, coord.addr, o->jobs, o->sample) < 0)
    bad = 1;
  fflush(stdout);
stop:
  if (agents && sim_agents_stop(loop, agents) < 0)
    bad = 1;
  if (stop_server(&coord, "coord_exit") < 0)
    bad = 1;
  free(dir);
  return bad;
}

int main(int argc, char **argv)
{
  struct opts o;
  if (parse(argc, argv, &o) < 0)
    return 2;
  /* One descriptor per agent connection, on both sides. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * (rlim_t)o.agents + 64) {
    fprintf(stderr,
            "error: %u agents need %u descriptors; the limit is %llu: raise it with "
            "'ulimit -n'\n",
            o.agents, 2 * o.agents + 64, (unsigned long long)rl.rlim_cur);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* The machine's load when the run starts: other work on the CPUs shows in
   * every rate measured here. */
  char la[64] = "";
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fgets(la, sizeof(la), f))
      la[strcspn(la, " ")] = 0;
    fclose(f);
  }
  printf("mode=%s cpus=%ld loadavg_1m=%s data=%s\n", o.mode, sysconf(_SC_NPROCESSORS_ONLN),
         la[0] ? la : "-", o.data);
  fflush(stdout);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int bad = !strcmp(o.mode, "memory") ? run_memory(&loop, &o) : run_dispatch(&loop, &o);
  /* Let every client closed above finish closing. */
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0)
    fprintf(stderr, "bench_sim: handles left open on the loop\n");
  free(o.drover);
  free(o.echo);
  free(o.data);
  return bad ? 1 : 0;
}
