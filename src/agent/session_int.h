/* session_int.h - what session.c (the link: connect, register, heartbeats,
 * shutdown) and runs.c (the jobs the coordinator sent) share. */
#ifndef DROVER_AGENT_SESSION_INT_H
#define DROVER_AGENT_SESSION_INT_H

#include <stdint.h>
#include <uv.h>

#include "agent/core.h"
#include "agent/metrics.h"
#include "agent/session.h"
#include "agent/ship.h"
#include "agent/state.h"
#include "job/pb.h"
#include "rpc/rpc.h"

/* An attempt to report in the next Register.stopped. */
struct stopped {
  struct stopped *next;
  char id[129];
  unsigned attempt;
  int from_restart; /* killed at start: its record goes once the coordinator knows */
  int reported;     /* in the Register sent last */
};

struct agent_session {
  uv_loop_t *loop;
  struct agent_session_opts o; /* strings below are our copies */
  char *coordinator, *token, *name;
  char *docker_host; /* NULL: the default */
  char **labels;
  size_t nlabels;

  struct agent_state st;
  struct agent_core *core;
  struct shipper *ships;
  struct metrics metrics;
  char **caps;
  size_t ncaps;
  struct stopped *stopped;

  /* the link */
  rpc_client *client, *old_client; /* old: closed at the next retry */
  rpc_call *call;
  int welcomed;
  unsigned failures;        /* connections in a row that ended before Welcome */
  uint64_t heartbeat_ms;    /* from Welcome */
  uint64_t node_timeout_ms; /* from Welcome; 0 before the first */
  uint64_t cut_since;       /* loop time the coordinator was last known alive; 0: linked */
  uint64_t down_at;         /* loop time of the last disconnect */
  uint32_t rng;
  uv_timer_t retry_timer, cutoff_timer, beat_timer, progress_timer, flush_timer, start_timer;
  unsigned starts_pending; /* started jobs whose JobStarted waits (runs.c) */

  /* heartbeats */
  uint64_t last_beat;
  double last_cpu, last_mem;
  int draining;

  /* shutdown: 0 running, 1 jobs finishing, 2 flushing, 3 going away, 4 over */
  int shutting;
  int hurried;
  int stop_code;
  char *stop_msg;
  int closing;
  void (*close_cb)(void *);
  void *close_ud;
};

/* session.c */
/* Sends a heartbeat now, then every interval (and when figures move). */
void agent_session_beat_start(struct agent_session *s);
/* The end: timers stopped, the stream cancelled, on_stopped called. */
void agent_session_stopped(struct agent_session *s);
/* Sends a message on the welcomed stream; dropped when there is none.
 * Returns rpc_call_send's value (or -ENOTCONN). */
int agent_session_send(struct agent_session *s, const pb_AgentMessage *m);
/* Sends a heartbeat now. */
void agent_session_beat(struct agent_session *s);
/* Queues an attempt for the next Register.stopped. */
void agent_session_add_stopped(struct agent_session *s, const char *id, unsigned attempt,
                               int from_restart);
/* Ends the session on its own: running jobs are cancelled at once, then
 * on_stopped(code, msg). */
void agent_session_fatal(struct agent_session *s, int code, const char *msg);

/* link.c */
/* Connects, starts the Connect stream and sends Register. 0 or < 0 (a bad
 * target: nothing started). */
int agent_link_open(struct agent_session *s);
/* Disconnected: the next attempt comes soon, backoff reset. */
void agent_link_retry_soon(struct agent_session *s);

/* runs.c */
/* Jobs that hold a slot: running or queued, and not being stopped. */
unsigned runs_live(struct agent_session *s);
extern const struct core_ops runs_core_ops;
void runs_on_run(struct agent_session *s, const Drover__V1__RunJob *m);
void runs_on_cancel(struct agent_session *s, const Drover__V1__CancelJob *m);
void runs_on_stdin(struct agent_session *s, const Drover__V1__StdinData *m);
/* Stops attempt (id, attempt) at once (SIGKILL to its group if it runs) and
 * drops everything held for it. */
void runs_stop(struct agent_session *s, const char *id, unsigned attempt, const char *why);
/* Jobs taken ahead (prefetch) that have not started go back to the
 * coordinator (JobRejected with why): it queues them again, their attempt
 * unspent. */
void runs_give_back(struct agent_session *s, const char *why);
/* The link is welcomed: progress held back is sent. */
void runs_flush_progress(struct agent_session *s);
/* A restart: kills what a previous life left (records in jobs/), takes over
 * its undelivered results. Returns 0 or -errno with err filled. */
int runs_recover(struct agent_session *s, char *err, size_t errlen);

#endif
