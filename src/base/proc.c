/* proc.c - /proc readers and the kill of a previous life's process group. */
#include "base/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

#define ENVIRON_MAX (1024 * 1024) /* what is read of a process's environment */
#define POLL_MS     10

/* Reads up to cap - 1 bytes of a small /proc file; ENOENT becomes ESRCH. */
static int read_small(const char *path, char *buf, size_t cap, size_t *len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? -ESRCH : -errno;
  size_t n = 0;
  while (n < cap - 1) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno == ESRCH ? -ESRCH : -errno;
      close(fd);
      return e;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *len = n;
  return 0;
}

int proc_boot_id(char *buf, size_t len)
{
  char text[64];
  size_t n;
  int rc = read_small("/proc/sys/kernel/random/boot_id", text, sizeof(text), &n);
  if (rc < 0)
    return rc;
  if (n < PROC_BOOT_ID_LEN || len < PROC_BOOT_ID_LEN + 1)
    return -EINVAL;
  memcpy(buf, text, PROC_BOOT_ID_LEN);
  buf[PROC_BOOT_ID_LEN] = '\0';
  return 0;
}

int proc_stat_parse(const char *text, size_t len, struct proc_stat *st)
{
  const char *end = text + len, *p = NULL;
  for (const char *q = text; q < end; q++)
    if (*q == ')')
      p = q;
  if (!p)
    return -EINVAL;
  p++; /* " S 1 123 ..." : field 3 comes next */
  int field = 2;
  memset(st, 0, sizeof(*st));
  while (p < end && field < 22) {
    while (p < end && *p == ' ')
      p++;
    if (p >= end)
      break;
    field++;
    const char *tok = p;
    while (p < end && *p != ' ' && *p != '\n')
      p++;
    if (field == 3) {
      st->state = *tok;
    } else if (field == 5 || field == 22) {
      uint64_t v = 0;
      for (const char *d = tok; d < p; d++) {
        if (*d < '0' || *d > '9')
          return -EINVAL;
        v = v * 10 + (uint64_t)(*d - '0');
      }
      if (field == 5)
        st->pgid = (int)v;
      else
        st->start = v;
    }
    if (p < end && *p == '\n')
      break;
  }
  return field == 22 ? 0 : -EINVAL;
}

int proc_stat_read(int pid, struct proc_stat *st)
{
  char path[64], text[1024];
  size_t n;
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  int rc = read_small(path, text, sizeof(text), &n);
  if (rc < 0)
    return rc;
  return proc_stat_parse(text, n, st);
}

int proc_environ_has(int pid, const char *entry)
{
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/environ", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? -ESRCH : -errno;
  size_t cap = 64 * 1024, n = 0, want = strlen(entry) + 1; /* with its NUL */
  char *buf = xmalloc(cap);
  int found = 0, err = 0;
  for (;;) {
    if (n == cap) {
      if (cap >= ENVIRON_MAX)
        break;
      cap *= 2;
      buf = xrealloc(buf, cap);
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      err = -errno;
      break;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  /* Entries are NUL-separated; compare whole entries only. */
  for (size_t i = 0; !err && i < n;) {
    size_t e = i;
    while (e < n && buf[e])
      e++;
    if (e - i + 1 == want && !memcmp(buf + i, entry, want - 1)) {
      found = 1;
      break;
    }
    i = e + 1;
  }
  free(buf);
  return err ? err : found;
}

/* ---- the group kill ---- */

struct member {
  int pid;
  struct proc_stat st;
};

/* Every process whose process group is pgid, zombies included. */
static int group_members(int pgid, struct member **out, size_t *nout)
{
  DIR *d = opendir("/proc");
  if (!d)
    return -errno;
  struct member *m = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *endp;
    long pid = strtol(de->d_name, &endp, 10);
    if (*endp || pid <= 0)
      continue;
    struct proc_stat st;
    if (proc_stat_read((int)pid, &st) < 0 || st.pgid != pgid)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      m = xrealloc(m, cap * sizeof(*m));
    }
    m[n].pid = (int)pid;
    m[n++].st = st;
  }
  closedir(d);
  *out = m;
  *nout = n;
  return 0;
}

static int is_live(const struct proc_stat *st)
{
  return st->state != 'Z' && st->state != 'X';
}

/* SIGKILL to one process that was examined as m, and to no other: the pidfd
 * is taken first, then /proc is read again; the same start time proves that
 * the pid still named m's process after the pidfd was taken, so the pidfd is
 * m's. Returns 1 when sent, 0 when m is gone or changed. */
static int kill_member(const struct member *m)
{
  int fd = (int)syscall(SYS_pidfd_open, m->pid, 0);
  int open_err = fd < 0 ? errno : 0;
  if (open_err == ESRCH)
    return 0;
  struct proc_stat now;
  int same = proc_stat_read(m->pid, &now) == 0 && now.start == m->st.start &&
             now.pgid == m->st.pgid && is_live(&now);
  int sent = 0;
  if (same && fd >= 0)
    sent = syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) == 0;
  else if (same && open_err == ENOSYS) /* kernels before 5.3: the best there is */
    sent = kill(m->pid, SIGKILL) == 0;
  if (fd >= 0)
    close(fd);
  return sent;
}

static int group_is_ours(int pgid, uint64_t leader_start, const char *env_entry,
                         const struct member *m, size_t n)
{
  /* While any process of group pgid exists the kernel does not hand out pid
   * pgid again; so a process that has that pid now either is the leader
   * recorded (same start time) or proves that the recorded group is gone. */
  for (size_t i = 0; i < n; i++)
    if (m[i].pid == pgid)
      return m[i].st.start == leader_start;
  for (size_t i = 0; env_entry && i < n; i++)
    if (is_live(&m[i].st) && m[i].st.start >= leader_start &&
        proc_environ_has(m[i].pid, env_entry) == 1)
      return 1;
  return 0;
}

int proc_group_kill(int pgid, uint64_t leader_start, const char *env_entry, unsigned timeout_ms)
{
  if (pgid <= 1)
    return -EINVAL;
  int64_t deadline = mono_us() + (int64_t)timeout_ms * 1000;
  struct member *killed = NULL;
  size_t nkilled = 0, capkilled = 0;
  int ours = -1, rc = 0;

  for (;;) {
    struct member *m = NULL;
    size_t n = 0;
    rc = group_members(pgid, &m, &n);
    if (rc < 0)
      break;
    if (ours < 0)
      ours = group_is_ours(pgid, leader_start, env_entry, m, n);
    size_t live = 0;
    for (size_t i = 0; ours && i < n; i++) {
      /* A process that started before the leader cannot be of its group
       * (a process joins a group only at or after the group's birth). */
      if (!is_live(&m[i].st) || m[i].st.start < leader_start || m[i].pid == getpid())
        continue;
      live++;
      int seen = 0;
      for (size_t k = 0; k < nkilled; k++)
        seen |= killed[k].pid == m[i].pid && killed[k].st.start == m[i].st.start;
      if (seen || !kill_member(&m[i]))
        continue;
      if (nkilled == capkilled) {
        capkilled = capkilled ? capkilled * 2 : 8;
        killed = xrealloc(killed, capkilled * sizeof(*killed));
      }
      killed[nkilled++] = m[i];
    }
    free(m);
    /* Between two looks the group would have to die out and its number be
     * handed out again (after the kernel went through pid_max others) in
     * POLL_MS for a later look to see a stranger's group. */
    if (!ours || live == 0) {
      rc = (int)nkilled;
      break;
    }
    if (mono_us() >= deadline) {
      rc = -ETIMEDOUT;
      break;
    }
    struct timespec ts = {0, POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
  free(killed);
  return rc;
}
