/* cgroup.c - one cgroup per job, on cgroup v2, v1 or both (see cgroup.h). */
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

static const char *const v1_names[SBX_V1_N] = {"memory", "pids", "cpu", "cpuacct", "freezer"};

enum sbx_cg_mode sbx_cg_mode_parse(const char *s)
{
  if (s && !strcmp(s, "v1"))
    return SBX_CG_V1;
  if (s && !strcmp(s, "v2"))
    return SBX_CG_V2;
  if (s && !strcmp(s, "off"))
    return SBX_CG_OFF;
  return SBX_CG_AUTO;
}

/* ---- small file helpers (cgroupfs: no short writes, small reads) ---- */

static int write_str(const char *path, const char *s)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n = write(fd, s, strlen(s));
  int rc = n < 0 ? -errno : 0;
  close(fd);
  return rc;
}

static int write_at(const char *dir, const char *file, const char *s)
{
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
    return -ENAMETOOLONG;
  return write_str(path, s);
}

/* Reads up to len - 1 bytes; NUL-terminated. Returns the length or -errno. */
static ssize_t read_at(const char *dir, const char *file, char *buf, size_t len)
{
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
    return -ENAMETOOLONG;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t off = 0;
  for (;;) {
    ssize_t n = read(fd, buf + off, len - 1 - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    off += (size_t)n;
    if (off == len - 1)
      break;
  }
  close(fd);
  buf[off] = '\0';
  return (ssize_t)off;
}

/* The number after "key " in a flat-keyed file (memory.events, cpu.stat). */
static int read_key(const char *dir, const char *file, const char *key, uint64_t *val)
{
  char buf[4096];
  size_t kl = strlen(key);
  if (read_at(dir, file, buf, sizeof buf) < 0)
    return -1;
  for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
      *val = strtoull(p + kl + 1, NULL, 10);
      return 0;
    }
  return -1;
}

/* Three keys of one flat-keyed file, read once. */
static int read_keys3(const char *dir, const char *file, const char *k1, const char *k2,
                      const char *k3, uint64_t *v1, uint64_t *v2, uint64_t *v3)
{
  char buf[4096];
  const char *keys[3] = {k1, k2, k3};
  uint64_t *vals[3] = {v1, v2, v3};
  int found = 0;
  if (read_at(dir, file, buf, sizeof buf) < 0)
    return -1;
  for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    for (int i = 0; i < 3; i++) {
      size_t kl = strlen(keys[i]);
      if (strncmp(p, keys[i], kl) == 0 && p[kl] == ' ') {
        *vals[i] = strtoull(p + kl + 1, NULL, 10);
        found |= 1 << i;
      }
    }
  return found == 7 ? 0 : -1;
}

static int read_u64(const char *dir, const char *file, uint64_t *val)
{
  char buf[64];
  if (read_at(dir, file, buf, sizeof buf) <= 0)
    return -1;
  *val = strtoull(buf, NULL, 10);
  return 0;
}

/* ---- finding the hierarchies ---- */

int sbx_cgroup_own_path(const char *text, const char *ctl, char *out, size_t outlen)
{
  /* Lines "ID:CONTROLLERS:PATH"; the unified one is "0::PATH". */
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    const char *end = nl ? nl : line + strlen(line);
    const char *c1 = memchr(line, ':', (size_t)(end - line));
    const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
    if (c2) {
      size_t cl = (size_t)(c2 - c1 - 1), want = strlen(ctl);
      int match = 0;
      if (!*ctl) {
        match = cl == 0;
      } else {
        /* "cpu,cpuacct": a list of controllers. */
        for (const char *p = c1 + 1; p < c2;) {
          const char *comma = memchr(p, ',', (size_t)(c2 - p));
          const char *e = comma ? comma : c2;
          if ((size_t)(e - p) == want && strncmp(p, ctl, want) == 0)
            match = 1;
          p = e + 1;
        }
      }
      if (match) {
        snprintf(out, outlen, "%.*s", (int)(end - c2 - 1), c2 + 1);
        return 0;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  return -ENOENT;
}

/* Mount points from /proc/self/mountinfo: the unified hierarchy's and each
 * v1 controller's (a co-mounted "cpu,cpuacct" gives both the same one). */
static void find_mounts(char *v2, size_t v2len, char v1[SBX_V1_N][512])
{
  char *text = NULL;
  size_t len;
  v2[0] = '\0';
  for (int i = 0; i < SBX_V1_N; i++)
    v1[i][0] = '\0';
  if (read_file("/proc/self/mountinfo", &text, &len) < 0)
    return;
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS */
    char root[512], mnt[512], fstype[64], superopts[512];
    const char *dash = strstr(line, " - ");
    if (dash && sscanf(line, "%*s %*s %*s %511s %511s", root, mnt) == 2 &&
        sscanf(dash + 3, "%63s %*s %511s", fstype, superopts) == 2 && strcmp(root, "/") == 0) {
      if (strcmp(fstype, "cgroup2") == 0 && !v2[0]) {
        snprintf(v2, v2len, "%s", mnt);
      } else if (strcmp(fstype, "cgroup") == 0) {
        for (char *tok = strtok(superopts, ","); tok; tok = strtok(NULL, ","))
          for (int i = 0; i < SBX_V1_N; i++)
            if (strcmp(tok, v1_names[i]) == 0 && !v1[i][0])
              snprintf(v1[i], sizeof v1[i], "%s", mnt);
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  free(text);
}

static int has_word(const char *list, const char *w)
{
  size_t n = strlen(w);
  for (const char *p = list; (p = strstr(p, w)); p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
      return 1;
  return 0;
}

/* Makes dir (and its parents within the hierarchy); 1 when it is usable. */
static int make_base(const char *dir)
{
  if (mkdir_p(dir, 0755) < 0)
    return 0;
  /* A read-only or foreign cgroupfs lets mkdir fail, but some only refuse
   * the write: try cgroup.procs for writing (not writing anything). */
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  return access(path, W_OK) == 0;
}

/* v2 limits need the controllers in BASE's subtree_control, which needs them
 * in every ancestor's up to one that has them (the root always may). An
 * ancestor with processes of its own cannot enable them (the "no internal
 * processes" rule): then limits are not available on v2. */
static void v2_enable(struct sbx_cgroot *root, const char *mnt)
{
  static const char *const ctl[] = {"memory", "pids", "cpu"};
  int *flag[] = {&root->v2_mem, &root->v2_pids, &root->v2_cpu};
  char buf[512], *dirs[64];
  int n = 0;

  /* From BASE up to the mount point: the ones to enable in, top first. */
  char *d = xstrdup(root->v2);
  while (n < 64 && strlen(d) > strlen(mnt)) {
    char *slash = strrchr(d, '/');
    *slash = '\0';
    dirs[n++] = xstrdup(strlen(d) >= strlen(mnt) ? d : mnt);
  }
  free(d);
  for (size_t c = 0; c < 3; c++) {
    char plus[32];
    snprintf(plus, sizeof plus, "+%s", ctl[c]);
    int ok = 1;
    for (int i = n - 1; i >= 0 && ok; i--) {
      if (read_at(dirs[i], "cgroup.subtree_control", buf, sizeof buf) >= 0 && has_word(buf, ctl[c]))
        continue;
      ok = write_at(dirs[i], "cgroup.subtree_control", plus) == 0;
    }
    if (ok && write_at(root->v2, "cgroup.subtree_control", plus) == 0)
      *flag[c] = 1;
  }
  for (int i = 0; i < n; i++)
    free(dirs[i]);
}

void sbx_cgroot_init(struct sbx_cgroot *root, enum sbx_cg_mode mode, const char *parent,
                     const char *name)
{
  char v2mnt[512], v1mnt[SBX_V1_N][512], own[1024], *self = NULL;
  size_t len;

  memset(root, 0, sizeof *root);
  root->given_base = parent != NULL;
  if (mode == SBX_CG_OFF) {
    root->why = xstrdup("cgroups are turned off (--cgroups off)");
    return;
  }
  find_mounts(v2mnt, sizeof v2mnt, v1mnt);
  if (read_file("/proc/self/cgroup", &self, &len) < 0) {
    root->why = xasprintf("cannot read /proc/self/cgroup: %s", strerror(errno));
    return;
  }
  if (mode != SBX_CG_V1 && v2mnt[0] && sbx_cgroup_own_path(self, "", own, sizeof own) == 0) {
    root->orig_v2 = xasprintf("%s%s", v2mnt, strcmp(own, "/") ? own : "");
    char *base = parent ? xasprintf("%s%s%s", v2mnt, parent[0] == '/' ? "" : "/", parent)
                        : xasprintf("%s%s/drover-%s", v2mnt, strcmp(own, "/") ? own : "", name);
    if (make_base(base)) {
      root->v2 = base;
      v2_enable(root, v2mnt);
    } else {
      free(base);
    }
  }
  if (mode != SBX_CG_V2) {
    for (int i = 0; i < SBX_V1_N; i++) {
      if (!v1mnt[i][0] || sbx_cgroup_own_path(self, v1_names[i], own, sizeof own) < 0)
        continue;
      root->orig_v1[i] = xasprintf("%s%s", v1mnt[i], strcmp(own, "/") ? own : "");
      char *base = parent
                       ? xasprintf("%s%s%s", v1mnt[i], parent[0] == '/' ? "" : "/", parent)
                       : xasprintf("%s%s/drover-%s", v1mnt[i], strcmp(own, "/") ? own : "", name);
      /* Hybrid: the v2 group tracks and kills, and a job joins a v1 group
       * only for a limit (v1_needed), so BASE is made then, not by every
       * `drover run` (a mkdir and an rmdir in each of five hierarchies). */
      if (root->v2 && mode == SBX_CG_AUTO && !parent && access(root->orig_v1[i], W_OK) == 0) {
        root->v1[i] = base;
        root->v1_lazy[i] = 1;
      } else if (make_base(base)) {
        root->v1[i] = base;
      } else {
        free(base);
      }
    }
  }
  free(self);
  if (!sbx_cgroot_usable(root))
    root->why = xstrdup(v2mnt[0] || v1mnt[SBX_V1_MEMORY][0] ? "no cgroup hierarchy is writable here"
                                                            : "no cgroup hierarchy is mounted");
}

int sbx_cgroot_usable(const struct sbx_cgroot *root)
{
  /* Tracking needs a group every process of the job stays in: v2, or the
   * v1 freezer (to kill without fork races), or at least one v1 group. */
  if (root->v2)
    return 1;
  for (int i = 0; i < SBX_V1_N; i++)
    if (root->v1[i])
      return 1;
  return 0;
}

int sbx_cgroot_can_memory(const struct sbx_cgroot *root)
{
  return root->v2_mem || root->v1[SBX_V1_MEMORY] != NULL;
}

int sbx_cgroot_can_pids(const struct sbx_cgroot *root)
{
  return root->v2_pids || root->v1[SBX_V1_PIDS] != NULL;
}

int sbx_cgroot_can_cpu(const struct sbx_cgroot *root)
{
  return root->v2_cpu || root->v1[SBX_V1_CPU] != NULL;
}

const char *sbx_cgroot_mode_name(const struct sbx_cgroot *root)
{
  int v1 = 0;
  for (int i = 0; i < SBX_V1_N; i++)
    v1 |= root->v1[i] != NULL;
  if (root->v2 && v1)
    return "v2+v1 (hybrid)";
  if (root->v2)
    return "v2";
  return v1 ? "v1" : "none";
}

static void rm_runner_and_base(const char *base, int keep_base)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/runner", base);
  rmdir(path); /* fails while we are in it: fine */
  if (!keep_base)
    rmdir(base); /* fails while jobs' groups are there: fine */
}

void sbx_cgroot_release(struct sbx_cgroot *root)
{
  /* Back where we came from, so that BASE/runner and BASE can go. */
  if (root->entered && root->orig_v2)
    write_at(root->orig_v2, "cgroup.procs", "0");
  for (int i = 0; i < SBX_V1_N; i++)
    if (root->entered && root->orig_v1[i])
      write_at(root->orig_v1[i], "cgroup.procs", "0");
  free(root->orig_v2);
  for (int i = 0; i < SBX_V1_N; i++)
    free(root->orig_v1[i]);
  if (root->v2) {
    rm_runner_and_base(root->v2, root->given_base);
    free(root->v2);
  }
  for (int i = 0; i < SBX_V1_N; i++) {
    if (!root->v1[i])
      continue;
    /* A co-mounted controller has the same path twice: the second rmdir
     * finds nothing, harmless. */
    rm_runner_and_base(root->v1[i], root->given_base);
    free(root->v1[i]);
  }
  free(root->why);
  memset(root, 0, sizeof *root);
}

int sbx_cgroot_reserve(struct sbx_cgroot *root, uint64_t bytes)
{
  char dir[4096], v[32];
  if (!root->v2 || !root->v2_mem)
    return -ENOTSUP;
  snprintf(dir, sizeof dir, "%s/runner", root->v2);
  snprintf(v, sizeof v, "%" PRIu64, bytes);
  return write_at(dir, "memory.min", v);
}

/* Makes v1 BASE i if it was left to be made when needed. */
static int v1_base(struct sbx_cgroot *root, int i)
{
  if (!root->v1_lazy[i])
    return 0;
  errno = 0;
  if (!make_base(root->v1[i]))
    return errno ? -errno : -EACCES;
  root->v1_lazy[i] = 0;
  return 0;
}

int sbx_cgroot_enter(struct sbx_cgroot *root)
{
  for (int i = 0; i < SBX_V1_N; i++)
    if (root->v1[i])
      v1_base(root, i);
  char dir[4096];
  int rc = 0;
  const char *bases[SBX_V1_N + 1];
  int n = 0;
  if (root->v2)
    bases[n++] = root->v2;
  for (int i = 0; i < SBX_V1_N; i++)
    if (root->v1[i])
      bases[n++] = root->v1[i];
  root->entered = 1;
  for (int i = 0; i < n; i++) {
    snprintf(dir, sizeof dir, "%s/runner", bases[i]);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
      rc = -errno;
      continue;
    }
    int w = write_at(dir, "cgroup.procs", "0");
    if (w < 0)
      rc = w;
  }
  return rc;
}

/* ---- one job's group ---- */

/* Which v1 hierarchies a job's group needs. With a v2 group (tracking,
 * cgroup.kill, cpu.stat), only what v2 cannot do here, and only for a limit:
 * joining a v1 group is a write to its cgroup.procs, and the first such
 * write after an idle moment waits for an RCU grace period in the kernel
 * (cgroup_threadgroup_rwsem; 10-15 ms measured here) while the runner's
 * loop waits for the vfork'ed child, whereas the v2 group is entered by
 * clone3 for free. The price: without a memory limit, no memory peak from
 * the cgroup on a hybrid machine. r NULL: all of them (the sweep looks
 * everywhere). */
static int v1_needed(const struct sbx_cgroot *root, const struct job_resources *r, int i)
{
  if (!r || !root->v2)
    return 1;
  switch (i) {
  case SBX_V1_MEMORY:
    return r->memory_bytes && !root->v2_mem;
  case SBX_V1_PIDS:
    return r->pids && !root->v2_pids;
  case SBX_V1_CPU:
    return r->cpus > 0 && !root->v2_cpu;
  default: /* cpuacct, freezer: v2's cpu.stat and cgroup.kill do it */
    return 0;
  }
}

static void cg_paths(struct sbx_cgroup *cg, const struct sbx_cgroot *root, const char *leaf,
                     const struct job_resources *r)
{
  memset(cg, 0, sizeof *cg);
  cg->v2_fd = -1;
  for (int i = 0; i <= SBX_V1_N; i++)
    cg->join_fd[i] = -1;
  if (root->v2)
    cg->v2 = xasprintf("%s/%s", root->v2, leaf);
  for (int i = 0; i < SBX_V1_N; i++)
    if (root->v1[i] && v1_needed(root, r, i))
      cg->v1[i] = xasprintf("%s/%s", root->v1[i], leaf);
  cg->v2_mem = root->v2_mem;
  cg->v2_pids = root->v2_pids;
}

static void cg_free(struct sbx_cgroup *cg)
{
  if (cg->v2_fd >= 0)
    close(cg->v2_fd);
  for (int i = 0; i < cg->njoin; i++)
    if (cg->join_fd[i] >= 0)
      close(cg->join_fd[i]);
  free(cg->v2);
  for (int i = 0; i < SBX_V1_N; i++)
    free(cg->v1[i]);
  memset(cg, 0, sizeof *cg);
}

/* The first directory of the group (for reading its member list). */
static const char *procs_dir(const struct sbx_cgroup *cg)
{
  if (cg->v2)
    return cg->v2;
  if (cg->v1[SBX_V1_FREEZER])
    return cg->v1[SBX_V1_FREEZER];
  for (int i = 0; i < SBX_V1_N; i++)
    if (cg->v1[i])
      return cg->v1[i];
  return NULL;
}

static int set_limits(struct sbx_cgroup *cg, const struct sbx_cgroot *root,
                      const struct job_resources *r, char *msg, size_t msglen)
{
  char v[64];
  int rc;
  if (r->memory_bytes) {
    snprintf(v, sizeof v, "%" PRIu64, r->memory_bytes);
    if (root->v2_mem) {
      rc = write_at(cg->v2, "memory.max", v);
      /* No swap beyond the limit: else "256M" would mean 256M plus swap. */
      if (rc == 0)
        write_at(cg->v2, "memory.swap.max", "0"); /* absent without swap: fine */
    } else {
      rc = write_at(cg->v1[SBX_V1_MEMORY], "memory.limit_in_bytes", v);
      if (rc == 0)
        write_at(cg->v1[SBX_V1_MEMORY], "memory.memsw.limit_in_bytes", v); /* idem */
    }
    if (rc < 0) {
      snprintf(msg, msglen, "cannot set the memory limit of the job's cgroup: %s", strerror(-rc));
      return rc;
    }
  }
  if (r->pids) {
    snprintf(v, sizeof v, "%" PRIu32, r->pids);
    rc = root->v2_pids ? write_at(cg->v2, "pids.max", v)
                       : write_at(cg->v1[SBX_V1_PIDS], "pids.max", v);
    if (rc < 0) {
      snprintf(msg, msglen, "cannot set the pids limit of the job's cgroup: %s", strerror(-rc));
      return rc;
    }
  }
  if (r->cpus > 0) {
    /* A 100 ms period, the kernel's default: the quota is the CPU time the
     * group may use in each. */
    uint64_t quota = (uint64_t)(r->cpus * 100000.0 + 0.5);
    if (root->v2_cpu) {
      snprintf(v, sizeof v, "%" PRIu64 " 100000", quota);
      rc = write_at(cg->v2, "cpu.max", v);
    } else {
      rc = write_at(cg->v1[SBX_V1_CPU], "cpu.cfs_period_us", "100000");
      snprintf(v, sizeof v, "%" PRIu64, quota);
      if (rc == 0)
        rc = write_at(cg->v1[SBX_V1_CPU], "cpu.cfs_quota_us", v);
    }
    if (rc < 0) {
      snprintf(msg, msglen, "cannot set the CPU limit of the job's cgroup: %s", strerror(-rc));
      return rc;
    }
  }
  return 0;
}

int sbx_cgroup_create(struct sbx_cgroup *cg, struct sbx_cgroot *root, const char *id,
                      unsigned attempt, const struct job_resources *r, char *msg, size_t msglen)
{
  char leaf[256], path[4096];
  int rc;

  snprintf(leaf, sizeof leaf, "job-%u-%s", attempt, id);
  cg_paths(cg, root, leaf, r);
  for (int i = 0; i < SBX_V1_N; i++)
    if (cg->v1[i] && (rc = v1_base(root, i)) < 0) {
      snprintf(msg, msglen, "cannot make the cgroup '%s': %s", root->v1[i], strerror(-rc));
      cg_free(cg);
      return rc;
    }
  const char *dirs[SBX_V1_N + 1];
  int n = 0;
  if (cg->v2)
    dirs[n++] = cg->v2;
  for (int i = 0; i < SBX_V1_N; i++) {
    int dup = 0;
    for (int k = 0; k < n; k++)
      dup |= cg->v1[i] && strcmp(dirs[k], cg->v1[i]) == 0;
    if (cg->v1[i] && !dup)
      dirs[n++] = cg->v1[i];
  }
  for (int i = 0; i < n; i++) {
    if (mkdir(dirs[i], 0755) < 0 && errno != EEXIST) {
      rc = -errno;
      snprintf(msg, msglen, "cannot make the job's cgroup '%s': %s", dirs[i], strerror(errno));
      goto fail;
    }
  }
  /* A group of this name left by a crash may still hold processes. */
  if (sbx_cgroup_populated(cg))
    sbx_cgroup_kill(cg);
  if ((rc = set_limits(cg, root, r, msg, msglen)) < 0)
    goto fail;
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/cgroup.procs", dirs[i]);
    if ((cg->join_fd[i] = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
      rc = -errno;
      snprintf(msg, msglen, "cannot open '%s': %s", path, strerror(errno));
      goto fail;
    }
    cg->njoin = i + 1;
  }
  if (cg->v2 && (cg->v2_fd = open(cg->v2, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    rc = -errno;
    snprintf(msg, msglen, "cannot open '%s': %s", cg->v2, strerror(errno));
    goto fail;
  }
  return 0;
fail:
  sbx_cgroup_destroy(cg);
  return rc;
}

int sbx_cgroup_populated(const struct sbx_cgroup *cg)
{
  char buf[4096];
  if (cg->v2) {
    uint64_t v;
    return read_key(cg->v2, "cgroup.events", "populated", &v) < 0 || v != 0;
  }
  const char *d = procs_dir(cg);
  if (!d)
    return 0;
  ssize_t n = read_at(d, "cgroup.procs", buf, sizeof buf);
  return n != 0; /* an error counts as populated: do not remove blindly */
}

/* SIGKILL to every pid listed; returns how many were listed. */
static int kill_listed(const char *dir)
{
  char buf[65536];
  int n = 0;
  if (read_at(dir, "cgroup.procs", buf, sizeof buf) <= 0)
    return 0;
  for (char *p = buf; *p;) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p)
      break;
    if (pid > 0) {
      kill((pid_t)pid, SIGKILL);
      n++;
    }
    p = end;
    while (*p == '\n')
      p++;
  }
  return n;
}

static void pause_us(long us)
{
  struct timespec ts = {0, us * 1000};
  nanosleep(&ts, NULL);
}

/* Why freeze first on v1: between reading cgroup.procs and the kills, a
 * process of the job may fork; the child is not in the list. Frozen, no
 * process can fork; killed while frozen, they die on the thaw. Repeat until
 * a pass lists nobody (the list can hold a pid that is dying already), at
 * most 20 passes here: this blocks the loop, and exec polls the group and
 * calls this again while anything is left. */
static void v1_kill(const struct sbx_cgroup *cg)
{
  const char *fz = cg->v1[SBX_V1_FREEZER], *d = procs_dir(cg);
  char state[32];
  for (int pass = 0; pass < 20; pass++) {
    if (fz) {
      write_at(fz, "freezer.state", "FROZEN");
      /* FREEZING until every task is in the refrigerator; bounded: a task in
       * an uninterruptible sleep may take long, and killing it anyway is
       * still right. */
      for (int w = 0; w < 200; w++) {
        if (read_at(fz, "freezer.state", state, sizeof state) < 0 ||
            strncmp(state, "FROZEN", 6) == 0)
          break;
        pause_us(50);
      }
    }
    int n = kill_listed(d);
    if (fz)
      write_at(fz, "freezer.state", "THAWED");
    if (n == 0)
      return;
    pause_us(pass < 10 ? 100 : 1000);
  }
}

void sbx_cgroup_kill(struct sbx_cgroup *cg)
{
  if (cg->v2 && write_at(cg->v2, "cgroup.kill", "1") == 0)
    return; /* the kernel kills every member, new forks included */
  if (procs_dir(cg))
    v1_kill(cg);
}

void sbx_cgroup_stats(const struct sbx_cgroup *cg, struct job_result *r)
{
  uint64_t v, u, s;
  const char *mem = cg->v2_mem ? cg->v2 : cg->v1[SBX_V1_MEMORY];

  if (mem) {
    if (read_u64(mem, cg->v2_mem ? "memory.peak" : "memory.max_usage_in_bytes", &v) == 0) {
      r->memory_peak_kb = v / 1024;
      r->memory_peak_known = 1;
    }
    if (read_key(mem, cg->v2_mem ? "memory.events" : "memory.oom_control", "oom_kill", &v) == 0)
      r->oom_killed = v > 0;
  }
  /* cpu.stat's usage is there on v2 without the cpu controller. */
  if (cg->v2 &&
      read_keys3(cg->v2, "cpu.stat", "usage_usec", "user_usec", "system_usec", &v, &u, &s) == 0) {
    r->cpu_usage_us = v;
    r->cpu_usage_known = 1;
    r->user_us = u;
    r->sys_us = s;
  } else if (cg->v1[SBX_V1_CPUACCT] && read_u64(cg->v1[SBX_V1_CPUACCT], "cpuacct.usage", &v) == 0) {
    r->cpu_usage_us = v / 1000;
    r->cpu_usage_known = 1;
    /* cpuacct.stat is in USER_HZ ticks; cpuacct.usage_user/_sys in ns. */
    if (read_u64(cg->v1[SBX_V1_CPUACCT], "cpuacct.usage_user", &u) == 0 &&
        read_u64(cg->v1[SBX_V1_CPUACCT], "cpuacct.usage_sys", &s) == 0) {
      r->user_us = u / 1000;
      r->sys_us = s / 1000;
    }
  }
  const char *pids = cg->v2_pids ? cg->v2 : cg->v1[SBX_V1_PIDS];
  if (pids && read_u64(pids, "pids.peak", &v) == 0)
    r->pids_peak = v;
}

int sbx_cgroup_destroy(struct sbx_cgroup *cg)
{
  int rc = 0;
  if (cg->v2_fd >= 0) {
    close(cg->v2_fd);
    cg->v2_fd = -1;
  }
  for (int i = 0; i < cg->njoin; i++)
    if (cg->join_fd[i] >= 0) {
      close(cg->join_fd[i]);
      cg->join_fd[i] = -1;
    }
  if (cg->v2 && rmdir(cg->v2) < 0 && errno != ENOENT)
    rc = -errno;
  for (int i = 0; i < SBX_V1_N; i++)
    if (cg->v1[i] && rmdir(cg->v1[i]) < 0 && errno != ENOENT && rc == 0)
      rc = -errno;
  cg_free(cg);
  return rc;
}

/* ---- the sweep ---- */

static void sweep_dir(const char *base, char ***names, size_t *n)
{
  DIR *d = opendir(base);
  struct dirent *de;
  if (!d)
    return;
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, "job-", 4) != 0 || de->d_type != DT_DIR)
      continue;
    int seen = 0;
    for (size_t i = 0; i < *n && !seen; i++)
      seen = strcmp((*names)[i], de->d_name) == 0;
    if (!seen) {
      *names = xrealloc(*names, (*n + 1) * sizeof **names);
      (*names)[(*n)++] = xstrdup(de->d_name);
    }
  }
  closedir(d);
}

static int sweep_dead_runs(struct sbx_cgroot *root);

int sbx_cgroot_sweep_dead_runs(struct sbx_cgroot *root)
{
  return sweep_dead_runs(root);
}

int sbx_cgroot_sweep(struct sbx_cgroot *root)
{
  char **names = NULL;
  size_t n = 0;
  int removed = 0;

  if (root->v2)
    sweep_dir(root->v2, &names, &n);
  for (int i = 0; i < SBX_V1_N; i++)
    if (root->v1[i])
      sweep_dir(root->v1[i], &names, &n);
  for (size_t i = 0; i < n; i++) {
    struct sbx_cgroup cg;
    cg_paths(&cg, root, names[i], NULL);
    /* Each hierarchy may have kept the group or not (a crash between two
     * mkdirs): use the ones that have it. */
    if (cg.v2 && access(cg.v2, F_OK) < 0) {
      free(cg.v2);
      cg.v2 = NULL;
    }
    for (int k = 0; k < SBX_V1_N; k++)
      if (cg.v1[k] && access(cg.v1[k], F_OK) < 0) {
        free(cg.v1[k]);
        cg.v1[k] = NULL;
      }
    for (int pass = 0; pass < 50 && sbx_cgroup_populated(&cg); pass++) {
      sbx_cgroup_kill(&cg);
      pause_us(1000);
    }
    int rc = sbx_cgroup_destroy(&cg);
    if (rc == 0)
      removed++;
    else
      log_warn("cannot remove a job cgroup left by a previous run", "group=%s err=%s", names[i],
               strerror(-rc));
    free(names[i]);
  }
  free(names);
  return removed;
}

/* The dead runs' bases next to root's (same parent in every hierarchy). */
static int sweep_dead_runs(struct sbx_cgroot *root)
{
  char *first = root->v2;
  for (int i = 0; !first && i < SBX_V1_N; i++)
    first = root->v1[i];
  if (!first)
    return 0;
  char *parent = xstrdup(first);
  *strrchr(parent, '/') = '\0';
  DIR *d = opendir(parent);
  int removed = 0;
  struct dirent *de;
  while (d && (de = readdir(d))) {
    char *end;
    if (strncmp(de->d_name, "drover-run-", 11) != 0)
      continue;
    long pid = strtol(de->d_name + 11, &end, 10);
    if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue;
    struct sbx_cgroot dead;
    memset(&dead, 0, sizeof dead);
    /* Its base in each hierarchy we use: the same name next to ours. */
    if (root->v2) {
      char *p = xstrdup(root->v2);
      *strrchr(p, '/') = '\0';
      dead.v2 = xasprintf("%s/%s", p, de->d_name);
      free(p);
    }
    for (int i = 0; i < SBX_V1_N; i++)
      if (root->v1[i]) {
        char *p = xstrdup(root->v1[i]);
        *strrchr(p, '/') = '\0';
        dead.v1[i] = xasprintf("%s/%s", p, de->d_name);
        free(p);
      }
    sbx_cgroot_sweep(&dead);
    sbx_cgroot_release(&dead); /* removes the empty bases */
    removed++;
  }
  if (d)
    closedir(d);
  free(parent);
  return removed;
}
