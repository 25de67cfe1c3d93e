/* session.h - the networked agent: runs the jobs a coordinator sends it
 * (`drover agent --coordinator ADDR`, and the agent half of `drover dev`).
 * docs/protocol.md is the contract; this is its agent side.
 *
 * A session holds one Connect stream to the coordinator at a time. It
 * registers (a token the first time; the node id and secret it was given,
 * kept in the state dir, after that), heartbeats, runs the jobs it is sent
 * through the agent core (core.h), ships their output and results (ship.h),
 * and reconnects when the link breaks: exponential backoff with full jitter
 * (100 ms base, 30 s cap), HTTP/2 keepalive. Jobs run on while it is away,
 * and what they write waits; a cut longer than the coordinator's node
 * timeout (it says so in Welcome) stops them, since the coordinator has
 * requeued them by then.
 *
 * At its start the session kills what a previous life of the agent on the
 * same state dir left running (a job dies with its agent), and reports those
 * attempts stopped; results a previous life had not delivered are delivered.
 *
 * Nothing here is process-global: several sessions (or a coordinator) may
 * share one loop. Runs on the loop's thread only. The process must ignore
 * SIGPIPE (a job that closes its stdin makes the write to it fail with
 * EPIPE, not kill the agent), should be a child subreaper
 * (exec_become_subreaper) and must call exec_loop_done before closing the
 * loop, as for any loop that runs jobs (exec.h). */
#ifndef DROVER_AGENT_SESSION_H
#define DROVER_AGENT_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct agent_session;

struct tools_policy;
struct agent_session_opts {
  const char *coordinator;   /* "HOST:PORT" or "unix:PATH" */
  const char *token;         /* for the first registration; NULL once registered */
  const char *name;          /* the node's name; NULL: the host name */
  const char *const *labels; /* "KEY=VALUE" each */
  size_t nlabels;
  unsigned slots; /* jobs at once; 0: the number of CPUs */
  /* Jobs taken beyond the slots, queued here to start the moment a slot
   * frees (the coordinator's next assignment then overlaps the running
   * job); given back to the coordinator (JobRejected) on drain and shutdown.
   * At most `slots`. */
  unsigned prefetch;
  const char *state_dir;          /* NULL: state_default_dir() */
  uint64_t shutdown_timeout_ms;   /* graceful shutdown: how long running jobs may run */
  unsigned log_batch_lines;       /* 0: the default (ship.h) */
  uint64_t log_batch_interval_ms; /* 0: the default */
  uint64_t spool_max;             /* 0: the default */
  double busy_cpu, busy_mem;      /* percent; above either, heartbeats say busy; 0: 90 */
  struct sbx *sandbox;            /* jobs' cgroups and isolation (core_opts); NULL: none */
  /* Container jobs' Docker engine (NULL: $DOCKER_HOST, else the default).
   * Their containers are labelled drover.agent=<node id>; those a previous
   * life left are removed at start, and `docker` is a capability only when
   * the engine answers. */
  const char *docker_host;
  /* for tool jobs (core_opts.tools); not copied: must outlive the session */
  const struct tools_policy *tools;
  /* The session is over: after agent_session_shutdown (code 0, msg NULL),
   * or by itself (code < 0 and msg for the user): the coordinator refused it
   * (-EACCES: a bad token, an unknown node) or its identity could not be
   * kept. Running jobs are stopped before. Then agent_session_close is all
   * that is left to do. */
  void (*on_stopped)(struct agent_session *s, int code, const char *msg, void *ud);
  void *ud;
};

/* Opens the state dir (its lock: one agent per dir), kills and collects what
 * a previous life left, and starts connecting. The strings of opts are
 * copied. Returns 0 and *out, or -errno with a message for the user in err
 * (nothing to close then): a bad address, a state dir in use or unusable, no
 * token for an agent that has no identity yet. */
int agent_session_start(uv_loop_t *loop, const struct agent_session_opts *opts,
                        struct agent_session **out, char *err, size_t errlen);
/* Graceful stop: no new jobs (RunJob is rejected, heartbeats say
 * draining), running jobs get shutdown_timeout_ms, then are cancelled; their
 * output and results are sent and their acknowledgements awaited (at most
 * AGENT_SESSION_FLUSH_MS), then GoingAway, and on_stopped(0). A second call
 * cancels running jobs at once and does not wait for acknowledgements; a
 * third kills them. What is not acknowledged stays in the state dir for the
 * next life. */
void agent_session_shutdown(struct agent_session *s);
#define AGENT_SESSION_FLUSH_MS 10000
/* Frees the session (after on_stopped, or to give up on one whose start
 * failed half way): handles are closed, then cb(ud) (may be NULL) runs from
 * the loop. */
void agent_session_close(struct agent_session *s, void (*cb)(void *ud), void *ud);

#endif
