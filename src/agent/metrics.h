/* metrics.h - what the agent tells its coordinator about the machine: its
 * resources and capabilities when it registers, load figures in every
 * heartbeat. Linux only (/proc, statvfs, getifaddrs).
 *
 * Capabilities describe the host; the session then narrows them to what
 * jobs really get (sbx_capabilities_adjust, sandbox.h). They are
 *   cgroup.v1, cgroup.v2   such a hierarchy is mounted (/proc/self/mounts) and
 *                          this process is in it (/proc/self/cgroup)
 *   ns.user, ns.pid, ns.net, ns.mount   the kernel has the namespace (/proc/self/ns)
 *   docker                 the engine at --docker-host answers GET /_ping */
#ifndef DROVER_AGENT_METRICS_H
#define DROVER_AGENT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "job/pb.h"

/* The previous CPU counters, for the next sample's percentage. */
struct metrics {
  char *disk_path; /* the file system whose space is reported */
  uint64_t cpu_busy, cpu_total;
};

struct metrics_sample {
  double cpu_percent; /* all CPUs, since the previous sample (0 at the first) */
  uint64_t mem_total, mem_used, mem_available;
  uint64_t disk_free, disk_size;
  double load1;
  uint64_t net_rx, net_tx; /* every interface but loopback, since boot */
};

/* disk_path (copied): where disk figures are taken (the state dir). */
void metrics_init(struct metrics *m, const char *disk_path);
void metrics_release(struct metrics *m);
/* Reads the figures now. What cannot be read is 0. */
void metrics_sample(struct metrics *m, struct metrics_sample *out);

/* Register.resources: CPUs, memory, disk of disk_path, interfaces with
 * their addresses (not loopback). Free with metrics_resources_free. */
pb_NodeResources *metrics_resources(const char *disk_path);
void metrics_resources_free(pb_NodeResources *r);
/* Register.capabilities, as heap strings in a heap array (*out); free with
 * metrics_capabilities_free. Returns the count. */
size_t metrics_capabilities(char ***out, const char *docker_host);
void metrics_capabilities_free(char **v, size_t n);

#endif
