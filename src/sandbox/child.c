/* child.c - a job process's own setup between clone and exec (see child.h). */
#include "sandbox/child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"

/* ---- in the parent ---- */

/* "uid[:gid]" or a name; fills c's user fields. */
static int resolve_user(struct sbx_child *c, const char *spec, char *err, size_t errlen)
{
  char buf[16384], *end;
  struct passwd pw, *res = NULL;
  const char *colon = strchr(spec, ':');
  const char *name = NULL;

  errno = 0;
  unsigned long uid = strtoul(spec, &end, 10);
  if (end != spec && (*end == '\0' || end == colon) && uid < UINT_MAX) {
    c->uid = (uid_t)uid;
    c->gid = (gid_t)uid;
    if (getpwuid_r(c->uid, &pw, buf, sizeof buf, &res) == 0 && res) {
      c->gid = pw.pw_gid;
      name = pw.pw_name;
    }
    if (colon) {
      unsigned long gid = strtoul(colon + 1, &end, 10);
      if (end == colon + 1 || *end || gid >= UINT_MAX) {
        snprintf(err, errlen, "user '%s' must be a name or uid[:gid] with numbers", spec);
        return -1;
      }
      c->gid = (gid_t)gid;
    }
  } else {
    if (colon) {
      snprintf(err, errlen, "user '%s' must be a name or uid[:gid] with numbers", spec);
      return -1;
    }
    if (getpwnam_r(spec, &pw, buf, sizeof buf, &res) != 0 || !res) {
      snprintf(err, errlen, "user '%s' does not exist on this machine", spec);
      return -1;
    }
    c->uid = pw.pw_uid;
    c->gid = pw.pw_gid;
    name = pw.pw_name;
  }
  /* Supplementary groups from the user's entry in the group database. */
  int n = 64;
  c->groups = xcalloc((size_t)n, sizeof *c->groups);
  if (name && getgrouplist(name, c->gid, c->groups, &n) < 0) {
    c->groups = xrealloc(c->groups, (size_t)n * sizeof *c->groups);
    if (getgrouplist(name, c->gid, c->groups, &n) < 0)
      n = 0;
  }
  if (!name) {
    c->groups[0] = c->gid;
    n = 1;
  }
  c->ngroups = (size_t)(n > 0 ? n : 0);
  c->set_user = 1;
  return 0;
}

/* Mount points are written with octal escapes (\040 for a space). */
static void unescape(char *s)
{
  char *w = s;
  for (char *r = s; *r; r++) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
        r[3] <= '7') {
      *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
      r += 3;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

static int under(const char *path, const char *dir)
{
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Every mount but /proc, /dev (device nodes stay usable; /proc is the
 * kernel's interface, remounted for a PID namespace) and what /tmp hides,
 * with the flags a read-only remount must keep. */
static void read_mounts(struct sbx_child *c)
{
  char *text = NULL;
  size_t len, cap = 0;
  if (read_file("/proc/self/mountinfo", &text, &len) < 0)
    return;
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    char mp[4096], opts[1024];
    if (sscanf(line, "%*s %*s %*s %*s %4095s %1023s", mp, opts) == 2) {
      unescape(mp);
      if (!under(mp, "/proc") && !under(mp, "/dev") && !(c->tmp_opts && under(mp, "/tmp"))) {
        unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY;
        for (char *t = strtok(opts, ","); t; t = strtok(NULL, ",")) {
          if (!strcmp(t, "nosuid"))
            fl |= MS_NOSUID;
          else if (!strcmp(t, "nodev"))
            fl |= MS_NODEV;
          else if (!strcmp(t, "noexec"))
            fl |= MS_NOEXEC;
          else if (!strcmp(t, "noatime"))
            fl |= MS_NOATIME;
          else if (!strcmp(t, "nodiratime"))
            fl |= MS_NODIRATIME;
          else if (!strcmp(t, "relatime"))
            fl |= MS_RELATIME;
        }
        if (c->nro == cap) {
          cap = cap ? cap * 2 : 32;
          c->ro_mounts = xrealloc(c->ro_mounts, cap * sizeof *c->ro_mounts);
        }
        c->ro_mounts[c->nro].src = NULL;
        c->ro_mounts[c->nro].dst = xstrdup(mp);
        c->ro_mounts[c->nro].ro_flags = fl;
        c->nro++;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  free(text);
}

int sbx_child_prepare(struct sbx_child *c, const struct job *j, const char *path, char *const *argv,
                      int exe_fd, char *err, size_t errlen)
{
  const struct job_isolation *iso = &j->isolation;
  memset(c, 0, sizeof *c);
  c->exe_fd = -1;
  c->cgroup_fd = c->cgroup_join = -1;

  if (!job_isolation_any(iso))
    return 0;
  if (geteuid() != 0) {
    if (iso->user) {
      snprintf(err, errlen,
               "\"isolation.user\" needs drover to run as root: run the job as the runner's "
               "user or the runner as root");
      return -1;
    }
    /* Without a user namespace the kernel refuses every other namespace
     * to a non-root process; with one, the job is "root" only inside it. */
    c->clone_flags |= CLONE_NEWUSER;
    c->uid_map = xasprintf("0 %u 1", (unsigned)geteuid());
    c->gid_map = xasprintf("0 %u 1", (unsigned)getegid());
  }
  c->no_new_privs = 1;
  if (iso->user && resolve_user(c, iso->user, err, errlen) < 0)
    return -1;
  c->drop_caps = !c->set_user || c->uid == 0;
  if (iso->network == JOB_NET_NONE) {
    c->unshare_flags |= CLONE_NEWNET;
    c->lo_up = 1;
  }
  if (iso->hostname) {
    c->unshare_flags |= CLONE_NEWUTS;
    c->hostname = xstrdup(iso->hostname);
  }
  if (job_isolation_mount_ns(iso))
    c->unshare_flags |= CLONE_NEWNS;
  char *wd = j->workdir ? realpath(j->workdir, NULL) : getcwd(NULL, 0);
  if (c->unshare_flags & CLONE_NEWNS)
    c->cwd = wd ? xstrdup(wd) : NULL; /* NULL: a missing workdir, spawn's chdir says so */
  c->binds = xcalloc(iso->nmounts + 1, sizeof *c->binds);
  c->tree_fd = xcalloc(iso->nmounts + 1, sizeof *c->tree_fd);
  if (iso->read_only) {
    c->tmp_opts =
        xasprintf("size=%llu,mode=1777",
                  (unsigned long long)(iso->tmp_size ? iso->tmp_size : JOB_DEFAULT_TMP_SIZE));
    read_mounts(c);
    if (!iso->read_only_workdir && wd) {
      if (strcmp(wd, "/") == 0) {
        free(wd);
        snprintf(err, errlen,
                 "a read-only job whose workdir is '/' would make all of '/' writable: set "
                 "\"read_only_workdir\" or another workdir");
        return -1;
      }
      c->binds[0].src = xstrdup(wd);
      c->binds[0].dst = xstrdup(wd);
      c->binds[0].ro_flags = 0;
      c->nbinds = 1;
    }
  }
  free(wd);
  for (size_t i = 0; i < iso->nmounts; i++) {
    struct sbx_bind *b = &c->binds[c->nbinds++];
    b->src = xstrdup(iso->mounts[i].src);
    b->dst = xstrdup(iso->mounts[i].dst);
    b->ro_flags =
        iso->mounts[i].read_only ? MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV : 0;
  }
  /* A target inside the private /tmp does not exist there yet: its
   * directories are made, parents first. */
  for (size_t i = 0; c->tmp_opts && i < c->nbinds; i++) {
    const char *d = c->binds[i].dst;
    if (!under(d, "/tmp") || !strcmp(d, "/tmp"))
      continue;
    for (const char *p = d + 5;; p++) {
      if (*p == '/' || *p == '\0') {
        c->mkdirs = xrealloc(c->mkdirs, (c->nmkdirs + 1) * sizeof *c->mkdirs);
        c->mkdirs[c->nmkdirs++] = xstrndup(d, (size_t)(p - d));
      }
      if (!*p)
        break;
    }
  }
  if (iso->pid_namespace) {
    size_t n = 0;
    while (argv[n])
      n++;
    c->clone_flags |= CLONE_NEWPID;
    c->mount_proc = 1;
    c->exe_fd = exe_fd;
    c->init_argv = xcalloc(n + 3, sizeof *c->init_argv);
    c->init_argv[0] = xstrdup(SBX_INIT_ARGV0);
    c->init_argv[1] = xstrdup(path);
    for (size_t i = 0; i < n; i++)
      c->init_argv[2 + i] = xstrdup(argv[i]);
    if (exe_fd < 0) {
      snprintf(err, errlen,
               "a PID namespace needs the drover binary (/proc/self/exe) to run "
               "its init, and it could not be opened");
      return -1;
    }
  }
  return 0;
}

void sbx_child_release(struct sbx_child *c)
{
  for (size_t i = 0; i < c->nro; i++)
    free((char *)c->ro_mounts[i].dst);
  free(c->ro_mounts);
  for (size_t i = 0; i < c->nbinds; i++) {
    free((char *)c->binds[i].src);
    free((char *)c->binds[i].dst);
  }
  free(c->binds);
  free((char *)c->hostname);
  free((char *)c->tmp_opts);
  free((char *)c->cwd);
  free((char *)c->uid_map);
  free((char *)c->gid_map);
  free(c->tree_fd);
  for (size_t i = 0; i < c->nmkdirs; i++)
    free(c->mkdirs[i]);
  free(c->mkdirs);
  free(c->groups);
  if (c->init_argv)
    for (size_t i = 0; c->init_argv[i]; i++)
      free(c->init_argv[i]);
  free(c->init_argv);
  memset(c, 0, sizeof *c);
  c->exe_fd = -1;
  c->cgroup_fd = c->cgroup_join = -1;
}

/* ---- in the child: syscalls on prepared data only ---- */

#define STEP(cond, text)                                                                           \
  do {                                                                                             \
    if (cond) {                                                                                    \
      *what = (text);                                                                              \
      return -errno;                                                                               \
    }                                                                                              \
  } while (0)

__attribute__((no_sanitize_address)) static int write_proc(const char *path, const char *text)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t w = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return w < 0 ? -1 : 0;
}

/* Docker's default capabilities (moby's oci/caps/defaults.go): what a
 * root process in a container may keep. */
static const int kept_caps[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
    CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
    CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    CAP_KILL,    CAP_AUDIT_WRITE,
};

/* Every other capability out of the bounding set and out of the
 * effective, permitted and inheritable sets (so exec cannot bring it
 * back). */
__attribute__((no_sanitize_address)) static int drop_caps(void)
{
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  uint32_t keep[2] = {0, 0};
  for (size_t i = 0; i < sizeof kept_caps / sizeof kept_caps[0]; i++)
    keep[kept_caps[i] / 32] |= 1u << (kept_caps[i] % 32);
  for (int cap = 0; cap < 64; cap++)
    if (!(keep[cap / 32] & (1u << (cap % 32))) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
        errno != EINVAL)
      return -1;
  if (syscall(SYS_capget, &h, d) < 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    d[i].effective &= keep[i];
    d[i].permitted &= keep[i];
    d[i].inheritable &= keep[i];
  }
  return syscall(SYS_capset, &h, d) < 0 ? -1 : 0;
}

__attribute__((no_sanitize_address)) static int lo_up(void)
{
  struct ifreq ifr;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;
  if (s < 0)
    return -1;
  for (size_t i = 0; i < sizeof ifr; i++)
    ((char *)&ifr)[i] = 0;
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    rc = -1;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (rc == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
    rc = -1;
  close(s);
  return rc;
}

__attribute__((no_sanitize_address)) int sbx_child_setup(const struct sbx_child *c, int in_cgroup,
                                                         const char **what)
{
  /* A user namespace's maps before anything else: until they are written
   * the job is nobody inside it and may do nothing. setgroups must be
   * denied before an unprivileged gid_map. */
  if (c->uid_map) {
    STEP(write_proc("/proc/self/uid_map", c->uid_map) < 0, "write the user namespace's uid_map");
    STEP(write_proc("/proc/self/setgroups", "deny") < 0, "deny setgroups in the user namespace");
    STEP(write_proc("/proc/self/gid_map", c->gid_map) < 0, "write the user namespace's gid_map");
  }
  /* First, before anything can fork: every process of the job is in its
   * group from here on. "0" is the writer itself. */
  for (int i = 0; i < c->njoin; i++)
    if (!(in_cgroup && i == c->cgroup_join))
      STEP(write(c->join_fd[i], "0", 1) < 0, "join the job's cgroup");
  if (c->oom_score_adj) {
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    STEP(fd < 0, "open /proc/self/oom_score_adj");
    ssize_t w = write(fd, c->oom_score_adj, strlen(c->oom_score_adj));
    close(fd);
    STEP(w < 0, "set the job's oom_score_adj");
  }
  if (c->unshare_flags)
    STEP(unshare(c->unshare_flags) < 0, "make the job's namespaces (unshare)");
  if (c->hostname)
    STEP(sethostname(c->hostname, strlen(c->hostname)) < 0, "set the job's host name");
  if (c->lo_up)
    STEP(lo_up() < 0, "bring up lo in the job's network namespace");
  if (c->unshare_flags & CLONE_NEWNS) {
    /* Nothing done here may propagate back to the host's mounts. */
    STEP(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0, "make the job's mounts private");
    /* Clones of what is bound in, taken before the view changes: a source
     * under /tmp is hidden by the private /tmp, and a clone keeps its own
     * flags through the read-only pass. */
    for (size_t i = 0; i < c->nbinds; i++) {
      long fd = syscall(SYS_open_tree, AT_FDCWD, c->binds[i].src,
                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
      STEP(fd < 0, "clone a mount to bind in (open_tree; does the source exist?)");
      c->tree_fd[i] = (int)fd;
    }
    for (size_t i = 0; i < c->nro; i++) {
      /* A mount point that is hidden or gone (a race with the host) is
       * skipped: remounting the one that shadows it covers the path. */
      if (mount(NULL, c->ro_mounts[i].dst, NULL, c->ro_mounts[i].ro_flags, NULL) < 0 &&
          errno != ENOENT && errno != EINVAL) {
        *what = "remount the job's file systems read-only";
        return -errno;
      }
    }
    if (c->tmp_opts)
      STEP(mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, c->tmp_opts) < 0,
           "mount a private tmpfs on /tmp");
    for (size_t i = 0; i < c->nmkdirs; i++)
      STEP(mkdir(c->mkdirs[i], 0755) < 0 && errno != EEXIST, "make a mount point in /tmp");
    for (size_t i = 0; i < c->nbinds; i++) {
      STEP(syscall(SYS_move_mount, c->tree_fd[i], "", AT_FDCWD, c->binds[i].dst,
                   MOVE_MOUNT_F_EMPTY_PATH) < 0,
           "attach a bind mount (does its target exist?)");
      close(c->tree_fd[i]);
      if (c->binds[i].ro_flags)
        STEP(mount(NULL, c->binds[i].dst, NULL, c->binds[i].ro_flags, NULL) < 0,
             "remount a --mount path read-only");
    }
    if (c->mount_proc)
      STEP(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0,
           "mount /proc for the job's PID namespace");
  }
  if (c->set_user) {
    if (c->uid != 0)
      for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
          *what = "drop capabilities";
          return -errno;
        }
    STEP(syscall(SYS_setgroups, c->ngroups, c->groups) < 0, "set the job's groups");
    STEP(syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0, "set the job's group id");
    STEP(syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0, "set the job's user id");
  }
  if (c->drop_caps)
    STEP(drop_caps() < 0, "drop capabilities");
  if (c->no_new_privs)
    STEP(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0, "set no_new_privs");
  /* After the user change: the job's user must be able to enter it. */
  if (c->cwd)
    STEP(chdir(c->cwd) < 0, "enter the workdir");
  return 0;
}
