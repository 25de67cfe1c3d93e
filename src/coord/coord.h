/* coord.h - the coordinator (`drover server`, and half of `drover dev`): keeps
 * jobs, nodes, events and logs in a store, schedules jobs onto the agents
 * connected to it, and serves AgentService, JobService, NodeService and
 * TokenService over gRPC (proto/drover/v1). docs/protocol.md is the contract
 * with agents; ARCHITECTURE.md follows a job through it. */
#ifndef DROVER_COORD_COORD_H
#define DROVER_COORD_COORD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct coord;

struct coord_opts {
  const char *data_dir;      /* the store and the logs (copied) */
  const char *const *listen; /* addresses: "HOST:PORT", "unix:PATH" (copied) */
  size_t nlisten;
  uint64_t node_timeout_ms; /* silent this long: the node is lost (0: 60 s) */
  uint64_t heartbeat_ms;    /* told to agents (0: 5 s) */
  uint64_t keepalive_ms;    /* HTTP/2 PING interval to agents (0: 10 s) */
  uint64_t ended_linger_ms; /* ended jobs stay in memory this long (0: 10 s) */
};

/* Opens the store (creating data_dir), loads jobs, nodes and tokens, and
 * listens on every address. Returns 0 and *out, or a negative error with a
 * message for the user in err. */
int coord_start(uv_loop_t *loop, const struct coord_opts *opts, struct coord **out, char *err,
                size_t errlen);
/* The first address it listens on ("127.0.0.1:7700", "unix:/run/d.sock"),
 * with a port 0 resolved. */
const char *coord_address(const struct coord *c);
/* A registration token that lives in memory only (never stored), good for
 * `uses` registrations: how `drover dev` registers its own agent. Heap string. */
char *coord_ephemeral_token(struct coord *c, unsigned uses);
/* Graceful stop: no new calls, in-flight ones get grace_ms, then everything
 * queued is committed and the store closed; then cb, from the loop. Free c
 * with coord_free afterwards. */
void coord_shutdown(struct coord *c, unsigned grace_ms, void (*cb)(struct coord *, void *),
                    void *ud);
void coord_free(struct coord *c);

#endif
