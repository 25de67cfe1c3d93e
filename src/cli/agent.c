/* agent.c - `drover agent`: the networked agent of a coordinator
 * (--coordinator, src/agent/session.c) or the stand-alone agent over a jobs
 * directory (--jobs-dir, src/agent/jobsdir.c); signals turn into a graceful
 * shutdown. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent/jobsdir.h"
#include "agent/session.h"
#include "agent/ship.h"
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "container/dockerhttp.h"
#include "exec/exec.h"
#include "sandbox/sandbox.h"
#include "tools/policy.h"

struct agent_opts {
  struct cfg_common common;
  char *coordinator;
  char *token;
  char *name;
  struct cfg_list labels;
  char *state_dir;
  char *jobs_dir;
  long slots;
  long prefetch;
  uint64_t shutdown_timeout_ms;
  uint64_t max_job_size;
  uint64_t max_log_size;
  long log_batch_lines;
  uint64_t log_batch_interval_ms;
  uint64_t spool_max;
  long busy_cpu, busy_mem;
  /* sandbox (issue 8) */
  char *cgroups, *cgroup_parent, *require_isolation;
  uint64_t default_memory, max_memory, reserve_memory;
  char *default_cpus, *max_cpus;
  long default_pids, max_pids;
  char *docker_host;
  struct tools_policy tools; /* what its tool jobs may do */
};

static const struct cfg_opt agent_opts_table[] = {
    CFG_COMMON_OPTS(struct agent_opts),
    {"coordinator", 0, CFG_STRING, offsetof(struct agent_opts, coordinator), NULL, NULL, 0, 0,
     "ADDR", "run the jobs of the coordinator at ADDR (HOST:PORT or unix:PATH)"},
    {"token", 0, CFG_STRING, offsetof(struct agent_opts, token), NULL, NULL, 0, 0, "T",
     "registration token from 'drover token create' (first start only)"},
    {"name", 0, CFG_STRING, offsetof(struct agent_opts, name), NULL, NULL, 0, 0, "NAME",
     "the node's name (default: the host name)"},
    {"label", 0, CFG_LIST, offsetof(struct agent_opts, labels), NULL, NULL, 0, 0, "K=V",
     "a node label that jobs' --constraint can ask for"},
    {"state-dir", 0, CFG_STRING, offsetof(struct agent_opts, state_dir), NULL, NULL, 0, 0, "DIR",
     "identity and undelivered output (default: /var/lib/drover/agent as root, else "
     "./drover-agent)"},
    {"jobs-dir", 0, CFG_STRING, offsetof(struct agent_opts, jobs_dir), NULL, NULL, 0, 0, "DIR",
     "run the job files dropped into DIR (stand-alone, no coordinator)"},
    {"slots", 0, CFG_INT, offsetof(struct agent_opts, slots), NULL, NULL, 1, 1024, "N",
     "jobs run at once (default: the number of CPUs)"},
    {"prefetch", 0, CFG_INT, offsetof(struct agent_opts, prefetch), "1", NULL, 0, 1024, "N",
     "--coordinator: jobs taken beyond the slots, to start the moment a slot frees"},
    {"shutdown-timeout", 0, CFG_DURATION, offsetof(struct agent_opts, shutdown_timeout_ms), "30s",
     NULL, 0, 0, "D", "on a stop signal (TERM, INT, HUP, ...), how long running jobs may finish"},
    {"max-job-size", 0, CFG_SIZE, offsetof(struct agent_opts, max_job_size), "1M", NULL, 0, 0,
     "SIZE", "refuse job files bigger than SIZE (to failed/, with an error)"},
    {"max-log-size", 0, CFG_SIZE, offsetof(struct agent_opts, max_log_size), "1G", NULL, 0, 0,
     "SIZE", "--jobs-dir: per job log; output lines past it are only counted (0: no limit)"},
    {"log-batch-lines", 0, CFG_INT, offsetof(struct agent_opts, log_batch_lines), "1000", NULL, 1,
     100000, "N", "--coordinator: send a job's output in batches of at most N lines ..."},
    {"log-batch-interval", 0, CFG_DURATION, offsetof(struct agent_opts, log_batch_interval_ms),
     "20ms", NULL, 0, 0, "D", "... or D after the batch's first line"},
    {"spool-max", 0, CFG_SIZE, offsetof(struct agent_opts, spool_max), "1G", NULL, 0, 0, "SIZE",
     "output kept on disk while the coordinator is slow or away; past it lines are dropped "
     "(and counted); 0: no spool"},
    {"busy-cpu", 0, CFG_INT, offsetof(struct agent_opts, busy_cpu), "90", NULL, 1, 100, "PERCENT",
     "above this CPU use the node says busy: no new jobs"},
    {"busy-mem", 0, CFG_INT, offsetof(struct agent_opts, busy_mem), "90", NULL, 1, 100, "PERCENT",
     "above this memory use the node says busy: no new jobs"},
    /* sandbox (issue 8; docs/sandbox.md) */
    {"cgroups", 0, CFG_ENUM, offsetof(struct agent_opts, cgroups), "auto", "auto|v1|v2|off", 0, 0,
     "MODE", "each job's cgroup: auto (v2, v1 or both), only v1, only v2, or off (process groups)"},
    {"cgroup-parent", 0, CFG_STRING, offsetof(struct agent_opts, cgroup_parent), NULL, NULL, 0, 0,
     "PATH", "make jobs' cgroups under PATH (from each hierarchy's root), not under the agent's"},
    {"default-memory", 0, CFG_SIZE, offsetof(struct agent_opts, default_memory), NULL, NULL, 0, 0,
     "SIZE", "memory limit of a job that sets none"},
    {"max-memory", 0, CFG_SIZE, offsetof(struct agent_opts, max_memory), NULL, NULL, 0, 0, "SIZE",
     "refuse a job that asks for more memory; one that asks for none gets the default or this"},
    {"default-cpus", 0, CFG_STRING, offsetof(struct agent_opts, default_cpus), NULL, NULL, 0, 0,
     "N", "CPU limit of a job that sets none"},
    {"max-cpus", 0, CFG_STRING, offsetof(struct agent_opts, max_cpus), NULL, NULL, 0, 0, "N",
     "refuse a job that asks for more CPUs; one that asks for none gets the default or this"},
    {"default-pids", 0, CFG_INT, offsetof(struct agent_opts, default_pids), NULL, NULL, 0, 4194304,
     "N", "process limit of a job that sets none"},
    {"max-pids", 0, CFG_INT, offsetof(struct agent_opts, max_pids), NULL, NULL, 0, 4194304, "N",
     "refuse a job that asks for more processes; one that asks for none gets the default or this"},
    {"reserve-memory", 0, CFG_SIZE, offsetof(struct agent_opts, reserve_memory), NULL, NULL, 0, 0,
     "SIZE", "memory kept for the agent itself (cgroup v2 memory.min; an error on v1)"},
    {"require-isolation", 0, CFG_STRING, offsetof(struct agent_opts, require_isolation), NULL, NULL,
     0, 0, "LIST", "force isolation on every job: network,read-only,pid-namespace or all"},
    {"docker-host", 0, CFG_STRING, offsetof(struct agent_opts, docker_host), NULL, NULL, 0, 0,
     "URL",
     "container jobs' Docker engine socket, unix:///PATH (default: $DOCKER_HOST, else "
     "unix:///var/run/docker.sock)"},
    TOOLS_POLICY_TABLE(struct agent_opts, tools),
};
#define NOPTS ARRAY_SIZE(agent_opts_table)

static const char agent_summary[] =
    "runs jobs on this machine. With --coordinator ADDR it runs the jobs of a coordinator\n"
    "(drover server): it registers with --token T the first time (from 'drover token create';\n"
    "its identity is then kept in --state-dir), heartbeats, streams each job's output as it\n"
    "comes and keeps it (memory, then --spool-max on disk) while the coordinator is away, and\n"
    "reconnects. Each job runs in a cgroup of its own where the machine allows it (limits,\n"
    "figures, nothing outlives the job), with the isolation it asks for (docs/sandbox.md);\n"
    "cgroup.v1 and cgroup.v2 in the capabilities it reports are the hierarchies jobs get\n"
    "groups in; docker means the engine at --docker-host answered, and container jobs\n"
    "(--image, docs/containers.md) run there; containers a crash of the agent left are\n"
    "removed at its next start; \"tools\" says that tool jobs have something to work on\n"
    "here (--tool-root, --fetch-allow or --search-url; docs/tools.md). --name and --label\n"
    "also come from DROVER_NAME and\n"
    "DROVER_LABEL, which 'drover job run' reads for its own --name and --label: set them for\n"
    "one command, not in a shared environment.\n"
    "With --jobs-dir DIR it runs the *.json job files dropped into DIR\n"
    "and writes DIR/results/<id>.json, DIR/logs/<id>.log and, while it runs, "
    "DIR/status/<id>.json;\n"
    "job files end in DIR/done/ or DIR/failed/; creating DIR/cancel/<id> cancels job <id>.\n"
    "Queued jobs go back to DIR on shutdown; a job left in DIR/running/ by a crash runs again.\n"
    "SIGTERM, SIGINT, SIGHUP (or any other signal that would end it): stop taking jobs, let\n"
    "running jobs finish up to --shutdown-timeout, cancel the rest, deliver their results\n"
    "(--coordinator: then say goodbye, the node shows 'down'), exit 0; a second signal\n"
    "cancels running jobs at once.\n"
    "Tool jobs (docs/tools.md) run under the --tool-* options; with a --tool-root,\n"
    "--fetch-allow or --search-url the node also reports the capability \"tools\".";

/* Every signal whose default action would end the agent and that can be
 * caught turns into the graceful shutdown, so that none of them leaves a job
 * running without its agent (a closed terminal sends SIGHUP). Not here: the
 * synchronous faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS,
 * SIGABRT: a handler would return into the fault), and SIGPIPE and SIGXFSZ,
 * which are ignored so that a write to a closed pipe or past RLIMIT_FSIZE
 * fails with EPIPE or EFBIG where it happens. The real-time signals are
 * added at run time (SIGRTMIN is not a constant). */
static const int shutdown_signals[] = {SIGTERM, SIGINT,  SIGHUP,    SIGQUIT, SIGUSR1,
                                       SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU,
                                       SIGIO,   SIGPWR,  SIGSTKFLT};
#define MAX_SIGNALS (ARRAY_SIZE(shutdown_signals) + 33)

struct agent_ctx {
  uv_signal_t sig[MAX_SIGNALS];
  size_t nsig;
  struct jobsdir *jd;
  struct agent_session *sess;
  int code;
};

static void close_signals(struct agent_ctx *ctx)
{
  for (size_t i = 0; i < ctx->nsig; i++)
    uv_close((uv_handle_t *)&ctx->sig[i], NULL);
  ctx->nsig = 0;
}

static void on_shutdown(struct jobsdir *jd, void *ud)
{
  struct agent_ctx *ctx = ud;
  log_info("agent stopped", "code=%d", 0);
  close_signals(ctx);
  jobsdir_close(jd, NULL, NULL);
  ctx->jd = NULL;
}

static void on_session_stopped(struct agent_session *s, int code, const char *msg, void *ud)
{
  struct agent_ctx *ctx = ud;
  if (code < 0) {
    fprintf(stderr, "error: %s\n", msg);
    ctx->code = CLI_EXIT_ERROR;
  }
  close_signals(ctx);
  agent_session_close(s, NULL, NULL);
  ctx->sess = NULL;
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct agent_ctx *ctx = h->data;
  const char *abbrev = sigabbrev_np(signum);
  log_info("signal received", "signal=SIG%s", abbrev ? abbrev : "?");
  if (ctx->jd)
    jobsdir_shutdown(ctx->jd, on_shutdown, ctx);
  if (ctx->sess)
    agent_session_shutdown(ctx->sess);
}

static void watch_signals(uv_loop_t *loop, struct agent_ctx *ctx)
{
  int sigs[MAX_SIGNALS];
  size_t n = 0;
  for (size_t i = 0; i < ARRAY_SIZE(shutdown_signals); i++)
    sigs[n++] = shutdown_signals[i];
  for (int s = SIGRTMIN; s <= SIGRTMAX && n < MAX_SIGNALS; s++)
    sigs[n++] = s;
  for (size_t i = 0; i < n; i++) {
    uv_signal_t *h = &ctx->sig[ctx->nsig];
    uv_signal_init(loop, h);
    h->data = ctx;
    if (uv_signal_start(h, on_signal, sigs[i]) < 0) {
      uv_close((uv_handle_t *)h, NULL);
      continue;
    }
    ctx->nsig++;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
}

/* ---- sandbox (issue 8) ---- */

static int parse_cpus(const char *flag, const char *s, double *out)
{
  char *end;
  *out = 0;
  if (!s || !*s)
    return 0;
  *out = strtod(s, &end);
  if (end == s || *end || !(*out >= 0.01 && *out <= 4096)) {
    fprintf(stderr, "error: --%s \"%s\": must be a number of CPUs from 0.01 to 4096, like 2\n",
            flag, s);
    return -1;
  }
  return 0;
}

/* The agent's sandbox: its groups are named after where its jobs come from
 * (the jobs directory or the state dir), so that its next life finds and
 * sweeps what this one leaves, and two agents on one machine do not touch
 * each other's. */
static int make_sandbox(const struct agent_opts *o, int remote, struct sbx **out)
{
  char err[512], name[32];
  const char *where = remote ? (o->state_dir ? o->state_dir : "state-default") : o->jobs_dir;
  char *real = realpath(where, NULL);
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *p = real ? real : where; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  free(real);
  snprintf(name, sizeof(name), "agent-%08x", h);
  struct sbx_config sc = {
      .cgroups = sbx_cg_mode_parse(o->cgroups),
      .cgroup_parent = o->cgroup_parent && *o->cgroup_parent ? o->cgroup_parent : NULL,
      .name = name,
      .enter = 1,
      .protect = 1,
      .reserve_memory = o->reserve_memory,
      .log_what = "agent",
  };
  sc.defaults.memory_bytes = o->default_memory;
  sc.maxima.memory_bytes = o->max_memory;
  sc.defaults.pids = (uint32_t)o->default_pids;
  sc.maxima.pids = (uint32_t)o->max_pids;
  if (parse_cpus("default-cpus", o->default_cpus, &sc.defaults.cpus) < 0 ||
      parse_cpus("max-cpus", o->max_cpus, &sc.maxima.cpus) < 0)
    return -1;
  if (o->require_isolation && *o->require_isolation &&
      sbx_parse_required(o->require_isolation, &sc.required, err, sizeof(err)) < 0) {
    fprintf(stderr, "error: %s\n", err);
    return -1;
  }
  int rc = sbx_new(&sc, out, err, sizeof(err));
  job_isolation_release(&sc.required);
  if (rc < 0) {
    fprintf(stderr, "error: %s\n", err);
    return -1;
  }
  sbx_sweep(*out);
  if ((rc = sbx_watchdog(*out)) < 0)
    log_warn("cannot start the watchdog that kills jobs' processes if the agent dies", "err=%s",
             strerror(-rc));
  return 0;
}

int cli_agent(int argc, char **argv)
{
  struct agent_opts o;
  struct cfg_result res;
  memset(&o, 0, sizeof(o));
  memset(&res, 0, sizeof(res));

  if (cfg_wants_help(agent_opts_table, NOPTS, argc, argv)) {
    cfg_usage(stdout, "agent", "", agent_summary, agent_opts_table, NOPTS);
    return CLI_EXIT_OK;
  }
  if (cfg_load("agent", agent_opts_table, NOPTS, &o, argc, argv, NULL, &res) < 0) {
    return cli_usage_error("agent", "", agent_summary, agent_opts_table, NOPTS, "%s", res.err);
  }
  int code = CLI_EXIT_OK;
  if (res.argi < argc) {
    code = cli_usage_error("agent", "", agent_summary, agent_opts_table, NOPTS,
                           "unexpected argument '%s'", argv[res.argi]);
    goto out;
  }
  if (o.max_job_size == 0) {
    code = cli_usage_error("agent", "", agent_summary, agent_opts_table, NOPTS,
                           "--max-job-size must be more than 0");
    goto out;
  }
  int remote = o.coordinator && o.coordinator[0];
  if (remote && o.jobs_dir && o.jobs_dir[0]) {
    fprintf(stderr, "error: --coordinator and --jobs-dir cannot be combined yet: run one agent "
                    "for each\n");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if (!remote && (!o.jobs_dir || !o.jobs_dir[0])) {
    fprintf(stderr, "error: say where jobs come from: --coordinator ADDR (a drover server) or "
                    "--jobs-dir DIR (a folder)\n");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if (o.docker_host && *o.docker_host) {
    char path[256], msg[512];
    if (dockerhttp_socket_path(o.docker_host, path, sizeof(path)) < 0) {
      dockerhttp_host_error(o.docker_host, msg, sizeof(msg));
      fprintf(stderr, "error: %s\n", msg);
      code = CLI_EXIT_USAGE;
      goto out;
    }
  }
  cfg_common_apply(&o.common);
  char terr[512];
  if (tools_policy_setup(&o.tools, terr, sizeof(terr)) < 0) {
    code = cli_usage_error("agent", "", agent_summary, agent_opts_table, NOPTS, "%s", terr);
    goto out;
  }

  struct sbx *sbx = NULL;
  if (make_sandbox(&o, remote, &sbx) < 0) {
    code = CLI_EXIT_USAGE;
    goto out;
  }

  uv_loop_t loop;
  /* Orphans of a job (a killed group's grandchildren) must be reaped by us:
   * PID 1 of a container often reaps nothing. */
  if (exec_become_subreaper() < 0)
    log_warn("cannot become child subreaper; orphaned job processes may linger", "pid=%d",
             (int)getpid());
  uv_loop_init(&loop);
  struct agent_ctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  watch_signals(&loop, &ctx);

  char err[512];
  if (remote) {
    struct agent_session_opts so = {
        .coordinator = o.coordinator,
        .token = o.token,
        .name = o.name,
        .labels = (const char *const *)o.labels.items,
        .nlabels = o.labels.n,
        .slots = (unsigned)o.slots,
        .prefetch = (unsigned)o.prefetch,
        .state_dir = o.state_dir,
        .shutdown_timeout_ms = o.shutdown_timeout_ms,
        .log_batch_lines = (unsigned)o.log_batch_lines,
        .log_batch_interval_ms = o.log_batch_interval_ms ? o.log_batch_interval_ms : 1,
        .spool_max = o.spool_max ? o.spool_max : 1,
        .busy_cpu = (double)o.busy_cpu,
        .busy_mem = (double)o.busy_mem,
        .sandbox = sbx,
        .docker_host = o.docker_host,
        .tools = &o.tools,
        .on_stopped = on_session_stopped,
        .ud = &ctx,
    };
    if (agent_session_start(&loop, &so, &ctx.sess, err, sizeof(err)) < 0) {
      fprintf(stderr, "error: %s\n", err);
      code = CLI_EXIT_ERROR;
      close_signals(&ctx);
      if (ctx.sess)
        agent_session_close(ctx.sess, NULL, NULL);
      ctx.sess = NULL;
    }
  } else {
    struct jobsdir_opts jo = {o.jobs_dir,     (unsigned)o.slots, o.shutdown_timeout_ms,
                              o.max_job_size, o.max_log_size,    sbx,
                              o.docker_host};
    ctx.jd = jobsdir_new(&loop, &jo);
    jobsdir_set_tools(ctx.jd, &o.tools);
    if (jobsdir_start(ctx.jd, err, sizeof(err)) < 0) {
      fprintf(stderr, "error: %s\n", err);
      code = CLI_EXIT_ERROR;
      close_signals(&ctx);
      jobsdir_close(ctx.jd, NULL, NULL);
      ctx.jd = NULL;
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  /* The SIGCHLD watcher outlives the last job while escaped orphans live. */
  exec_loop_done(&loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0)
    log_warn("event loop closed with handles still open", "pid=%d", (int)getpid());
  sbx_free(sbx);
  if (ctx.code)
    code = ctx.code;
out:
  tools_policy_release(&o.tools);
  cfg_release(agent_opts_table, NOPTS, &o, &res);
  return code;
}
