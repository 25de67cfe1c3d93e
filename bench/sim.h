/* sim.h - the coordinator benchmarks' simulator (bench/bench_sim.c): child
 * servers it starts and stops, simulated agents on AgentService.Connect, a
 * JobService client that submits and waits, and the echo-server baselines,
 * all on one uv loop. docs/benchmarks.md says what each figure means.
 *
 * Phases are written as straight-line code over the loop: start something
 * asynchronous, then sim_run_until() a condition holds. Errors are printed
 * where they happen ("bench_sim: ..." on stderr); functions return 0 or -1. */
#ifndef DROVER_BENCH_SIM_H
#define DROVER_BENCH_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "job/pb.h"
#include "rpc/rpc.h"

/* ---- the loop (bench_sim.c) ---- */

/* Runs the loop until done(ud) returns non-zero (checked after every loop
 * turn) or timeout_ms passes. Returns 0, or -1 on timeout. */
int sim_run_until(uv_loop_t *loop, int (*done)(void *ud), void *ud, uint64_t timeout_ms);
/* Closes h and runs the loop until its close completed (h may then go:
 * handles on the stack). */
void sim_close(uv_loop_t *loop, uv_handle_t *h);
/* A unary call run to its end: sends req, stores the reply (unpacked with
 * `resp`, caller frees it with protobuf_c_message_free_unpacked) in *out.
 * Returns 0, or -1 with the status printed (what: the call's purpose). */
int sim_unary(uv_loop_t *loop, rpc_client *c, const char *method,
              const ProtobufCMessageDescriptor *resp, const ProtobufCMessage *req,
              ProtobufCMessage **out, const char *what);
/* A client for target (its user data ud: what rpc_client_close's callback
 * gets) that prints its library log lines. NULL on error. */
rpc_client *sim_client_new(uv_loop_t *loop, const char *target, void *ud);
/* Closes c; the loop frees it later. */
void sim_client_close(rpc_client *c);

/* ---- child servers (sim_proc.c) ---- */

struct sim_proc {
  pid_t pid;
  int out_fd;     /* its stdout (kept open: a server may write more) */
  char addr[256]; /* what followed the prefix on its "listening" line */
  char name[32];
};

/* Starts argv[0] (a path) with argv, stdout on a pipe, stderr appended to
 * log_path, killed if this process dies; waits up to timeout_ms for a stdout
 * line starting with `prefix` and keeps the rest of it in p->addr. Returns 0
 * or -1 (the child is then stopped). */
int sim_proc_start(struct sim_proc *p, const char *name, char *const argv[], const char *prefix,
                   const char *log_path, int timeout_ms);
/* A "Key:" figure of /proc/PID/status in KiB (VmRSS, VmHWM), or -1. */
long sim_proc_status_kb(pid_t pid, const char *key);
/* CPU time (user + system) of the process so far, in ms, or -1. */
long sim_proc_cpu_ms(pid_t pid);
/* The same for its main thread alone (the coordinator's loop thread). */
long sim_proc_main_cpu_ms(pid_t pid);
/* The main thread's time on a CPU and waiting for one (runnable, not
 * running: the machine's other load), in ns, from schedstat. 0 or -1. */
int sim_proc_main_sched(pid_t pid, int64_t *run_ns, int64_t *wait_ns);
/* SIGTERM, then waits up to timeout_ms. Returns its exit code, 128 + the
 * signal that ended it, or -1 when it did not end in time (it is then
 * SIGKILLed and reaped). */
int sim_proc_stop(struct sim_proc *p, int timeout_ms);
/* VmRSS of this process in KiB. */
long sim_self_rss_kb(void);

/* ---- simulated agents (sim_agent.c) ---- */

struct sim_agents;

struct sim_agents_opts {
  const char *target;
  const char *token;       /* one token with uses >= n */
  unsigned n;              /* agents, each on its own HTTP/2 connection */
  unsigned first;          /* the first agent's number (names are sim-NNNNN) */
  unsigned slots;          /* announced in Register and heartbeats */
  unsigned connecting_max; /* connections being opened at once (0: 64) */
  int log_batch;           /* send one small LogBatch per job */
};

/* What the agents saw, summed over all of them. */
struct sim_agent_stats {
  unsigned welcomed, failed, ended;
  uint64_t heartbeats, min_heartbeats; /* sent after Welcome; the fewest of one agent */
  uint64_t runs, dup_runs, cancels, other_msgs;
  uint64_t results_acked, logs_acked, unknown_acks;
  uint64_t results_unacked;                        /* JobFinished sent, not acknowledged yet */
  uint64_t heartbeat_interval_ms, node_timeout_ms; /* from Welcome */
  int64_t last_result_ack_us;                      /* mono_us() of the latest result Ack */
  char first_error[256];                           /* why the first stream failed */
};

/* Starts connecting every agent (connecting_max at a time); each registers
 * with the token, then heartbeats and runs jobs on its own. Returns 0 or -1. */
int sim_agents_start(uv_loop_t *loop, const struct sim_agents_opts *o, struct sim_agents **out);
void sim_agents_stats(const struct sim_agents *a, struct sim_agent_stats *st);
/* Every agent sends GoingAway and half-closes, waits (bounded) for the
 * coordinator to end its stream, then closes its connection; frees a.
 * Returns 0, or -1 when a stream did not end cleanly. */
int sim_agents_stop(uv_loop_t *loop, struct sim_agents *a);

/* ---- the JobService client (sim_jobs.c) ---- */

struct sim_jobs_opts {
  const char *target;
  long jobs;
  unsigned in_flight; /* Submit calls outstanding at most */
  unsigned window;    /* jobs submitted and not known ended, at most */
  int wait;           /* a Wait call per job; else ended = result Acks the agents got */
};

struct sim_jobs_result {
  long submitted, ended, not_succeeded, errors;
  double seconds;                             /* first Submit to the last end */
  double submit_seconds;                      /* first Submit to the last Submit reply */
  int64_t lat_p50_us, lat_p99_us, lat_max_us; /* Submit sent to Wait reply (with wait) */
  char first_error[256];
};

/* Submits o->jobs trivial shell jobs ("true") and waits until each has
 * ended; agents (may be NULL with wait) give the end when not waiting.
 * Returns 0 when every job ended succeeded, -1 otherwise (figures in r). */
int sim_jobs_run(uv_loop_t *loop, const struct sim_jobs_opts *o, struct sim_agents *agents,
                 struct sim_jobs_result *r);
/* Checks the store through the API: no job in any state but succeeded, `jobs`
 * succeeded ones, and the event trail of `sample` jobs spread over the run
 * (queued, assigned, running, succeeded, in that order, once each). Prints
 * what it found. Returns 0 when all is as expected, -1 otherwise. */
int sim_jobs_verify(uv_loop_t *loop, const char *target, long jobs, long sample);
/* Creates a registration token for `uses` agents into buf. 0 or -1. */
int sim_token_create(uv_loop_t *loop, const char *target, unsigned uses, char *buf, size_t len);

/* ---- echo-server baselines (sim_echo.c) ---- */

/* `calls` unary Echo calls on one connection, in_flight at a time: the
 * floor of the same number of round trips. Returns calls/s, or -1. */
double sim_echo_unary_rate(uv_loop_t *loop, const char *target, long calls, unsigned in_flight);

struct sim_echo_conns;
/* Opens n connections (connecting_max at a time) and makes one unary call
 * on each; returns once all answered. NULL on failure. */
struct sim_echo_conns *sim_echo_conns_open(uv_loop_t *loop, const char *target, unsigned n,
                                           unsigned connecting_max);
/* Opens a Bidi stream on every connection and echoes one message on it,
 * leaving the streams open (what an agent holds). 0 or -1. */
int sim_echo_conns_streams(uv_loop_t *loop, struct sim_echo_conns *e);
void sim_echo_conns_close(uv_loop_t *loop, struct sim_echo_conns *e);

#endif
