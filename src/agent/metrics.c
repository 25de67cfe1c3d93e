/* metrics.c - machine figures from /proc, statvfs and getifaddrs (see
 * metrics.h). Each sample reads a few small files: an agent samples once a
 * second at most, so nothing here is cached. */
#include "agent/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/util.h"
#include "container/engine.h"

typedef Drover__V1__NetInterface pb_NetInterface;

/* The start of a /proc file (at most len - 1 bytes), NUL-terminated; "" when
 * it cannot be read. */
static void read_proc(const char *path, char *buf, size_t len)
{
  buf[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  size_t got = 0;
  while (got < len - 1) {
    ssize_t n = read(fd, buf + got, len - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  buf[got] = '\0';
  close(fd);
}

/* A "Key:   123 kB" line of /proc/meminfo, in bytes; 0 when absent. */
static uint64_t meminfo_field(const char *text, const char *key)
{
  const char *p = strstr(text, key);
  if (!p)
    return 0;
  return strtoull(p + strlen(key), NULL, 10) * 1024;
}

void metrics_init(struct metrics *m, const char *disk_path)
{
  memset(m, 0, sizeof(*m));
  m->disk_path = xstrdup(disk_path);
}

void metrics_release(struct metrics *m)
{
  free(m->disk_path);
  memset(m, 0, sizeof(*m));
}

static void sample_cpu(struct metrics *m, struct metrics_sample *out)
{
  char buf[512];
  read_proc("/proc/stat", buf, sizeof(buf));
  unsigned long long v[10] = {0};
  /* user nice system idle iowait irq softirq steal (guest time is in user) */
  if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
             &v[5], &v[6], &v[7]) < 4)
    return;
  uint64_t total = 0;
  for (int i = 0; i < 8; i++)
    total += v[i];
  uint64_t busy = total - v[3] - v[4];
  if (m->cpu_total && total > m->cpu_total && busy >= m->cpu_busy)
    out->cpu_percent = 100.0 * (double)(busy - m->cpu_busy) / (double)(total - m->cpu_total);
  m->cpu_busy = busy;
  m->cpu_total = total;
}

static void sample_net(struct metrics_sample *out)
{
  char buf[8192];
  read_proc("/proc/net/dev", buf, sizeof(buf));
  /* Two header lines, then "  name: rx_bytes 7 more rx fields tx_bytes ...". */
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char *colon = strchr(line, ':');
    if (!colon)
      continue;
    *colon = '\0';
    char *name = line + strspn(line, " ");
    if (!strcmp(name, "lo"))
      continue;
    unsigned long long rx, tx, skip;
    if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &rx, &skip, &skip, &skip,
               &skip, &skip, &skip, &skip, &tx) == 9) {
      out->net_rx += rx;
      out->net_tx += tx;
    }
  }
}

void metrics_sample(struct metrics *m, struct metrics_sample *out)
{
  memset(out, 0, sizeof(*out));
  sample_cpu(m, out);
  char buf[4096];
  read_proc("/proc/meminfo", buf, sizeof(buf));
  out->mem_total = meminfo_field(buf, "MemTotal:");
  out->mem_available = meminfo_field(buf, "MemAvailable:");
  if (out->mem_total >= out->mem_available)
    out->mem_used = out->mem_total - out->mem_available;
  struct statvfs vfs;
  if (statvfs(m->disk_path, &vfs) == 0) {
    out->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    out->disk_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
  }
  read_proc("/proc/loadavg", buf, sizeof(buf));
  out->load1 = strtod(buf, NULL);
  sample_net(out);
}

/* ---- registration ---- */

static pb_NetInterface *iface_of(pb_NodeResources *r, const char *name)
{
  for (size_t i = 0; i < r->n_interfaces; i++)
    if (!strcmp(r->interfaces[i]->name, name))
      return r->interfaces[i];
  pb_NetInterface *ni = xmalloc(sizeof(*ni));
  drover__v1__net_interface__init(ni);
  ni->name = xstrdup(name);
  r->interfaces = xrealloc(r->interfaces, (r->n_interfaces + 1) * sizeof(*r->interfaces));
  r->interfaces[r->n_interfaces++] = ni;
  return ni;
}

pb_NodeResources *metrics_resources(const char *disk_path)
{
  pb_NodeResources *r = xmalloc(sizeof(*r));
  drover__v1__node_resources__init(r);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  r->cpus = cpus > 0 ? (uint32_t)cpus : 1;
  char buf[4096];
  read_proc("/proc/meminfo", buf, sizeof(buf));
  r->memory_bytes = meminfo_field(buf, "MemTotal:");
  struct statvfs vfs;
  if (statvfs(disk_path, &vfs) == 0)
    r->disk_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
  struct ifaddrs *ifa;
  if (getifaddrs(&ifa) == 0) {
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
      if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK))
        continue;
      int fam = i->ifa_addr->sa_family;
      if (fam != AF_INET && fam != AF_INET6)
        continue;
      char addr[INET6_ADDRSTRLEN] = "";
      const void *src = fam == AF_INET
                            ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
      if (!inet_ntop(fam, src, addr, sizeof(addr)))
        continue;
      pb_NetInterface *ni = iface_of(r, i->ifa_name);
      ni->addresses = xrealloc(ni->addresses, (ni->n_addresses + 1) * sizeof(char *));
      ni->addresses[ni->n_addresses++] = xstrdup(addr);
    }
    freeifaddrs(ifa);
  }
  return r;
}

void metrics_resources_free(pb_NodeResources *r)
{
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* Whether /proc/self/mounts lists a file system of type fstype. */
static int mounted(const char *mounts, const char *fstype)
{
  char pat[64];
  snprintf(pat, sizeof(pat), " %s ", fstype);
  for (const char *p = mounts; (p = strstr(p, pat)); p++) {
    /* "dev mountpoint type options ...": the type is the third field. */
    const char *bol = p;
    while (bol > mounts && bol[-1] != '\n')
      bol--;
    int spaces = 0;
    for (const char *q = bol; q < p; q++)
      spaces += *q == ' ';
    if (spaces == 1)
      return 1;
  }
  return 0;
}

size_t metrics_capabilities(char ***out, const char *docker_host)
{
  enum { MOUNTS_MAX = 256 * 1024, GROUPS_MAX = 16 * 1024 };
  char *mounts = xmalloc(MOUNTS_MAX), *groups = xmalloc(GROUPS_MAX);
  size_t n = 0;
  char **v = xcalloc(8, sizeof(char *));
  read_proc("/proc/self/mounts", mounts, MOUNTS_MAX);
  read_proc("/proc/self/cgroup", groups, GROUPS_MAX);
  /* v2: a "0::/path" line; v1: "N:controllers:/path" lines. */
  int in_v2 = !strncmp(groups, "0::", 3) || strstr(groups, "\n0::") != NULL;
  int in_v1 = 0;
  for (const char *line = groups; *line;) {
    const char *colon = strchr(line, ':');
    if (colon && colon[1] != ':' && strncmp(line, "0:", 2))
      in_v1 = 1;
    const char *nl = strchr(line, '\n');
    if (!nl)
      break;
    line = nl + 1;
  }
  if (in_v1 && mounted(mounts, "cgroup"))
    v[n++] = xstrdup("cgroup.v1");
  if (in_v2 && mounted(mounts, "cgroup2"))
    v[n++] = xstrdup("cgroup.v2");
  free(mounts);
  free(groups);
  static const char *const ns[][2] = {
      {"user", "ns.user"}, {"pid", "ns.pid"}, {"net", "ns.net"}, {"mnt", "ns.mount"}};
  for (size_t i = 0; i < ARRAY_SIZE(ns); i++) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/ns/%s", ns[i][0]);
    if (access(path, F_OK) == 0)
      v[n++] = xstrdup(ns[i][1]);
  }
  /* The engine must answer, not just have a socket file: container jobs
   * go only where they can run. */
  if (container_engine_ping(docker_host, 2000) == 0)
    v[n++] = xstrdup("docker");
  *out = v;
  return n;
}

void metrics_capabilities_free(char **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}
