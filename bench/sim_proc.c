/* sim_proc.c - the servers bench_sim starts (drover server, drover-rpc-echo
 * serve): start, learn the address, read memory and CPU from /proc, stop with
 * SIGTERM and check the exit status. */
#include "bench/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

int sim_proc_start(struct sim_proc *p, const char *name, char *const argv[], const char *prefix,
                   const char *log_path, int timeout_ms)
{
  memset(p, 0, sizeof(*p));
  p->pid = -1;
  p->out_fd = -1;
  snprintf(p->name, sizeof(p->name), "%s", name);
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) {
    fprintf(stderr, "bench_sim: pipe: %s\n", strerror(errno));
    return -1;
  }
  int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) {
    fprintf(stderr, "bench_sim: cannot open '%s': %s\n", log_path, strerror(errno));
    close(pfd[0]);
    close(pfd[1]);
    return -1;
  }
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "bench_sim: fork: %s\n", strerror(errno));
    close(pfd[0]);
    close(pfd[1]);
    close(logfd);
    return -1;
  }
  if (pid == 0) {
    /* A server must not outlive a benchmark that was interrupted. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    dup2(pfd[1], 1);
    dup2(logfd, 2);
    execv(argv[0], argv);
    fprintf(stderr, "bench_sim: cannot run '%s': %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(pfd[1]);
  close(logfd);
  p->pid = pid;
  p->out_fd = pfd[0];

  /* The first line that starts with prefix; a server prints it once it
   * listens, so nothing else is needed to know it is ready. */
  char buf[1024] = "";
  size_t len = 0;
  int64_t deadline = mono_us() + (int64_t)timeout_ms * 1000;
  for (;;) {
    char *nl;
    while ((nl = memchr(buf, '\n', len))) {
      *nl = 0;
      if (!strncmp(buf, prefix, strlen(prefix))) {
        snprintf(p->addr, sizeof(p->addr), "%s", buf + strlen(prefix));
        return 0;
      }
      len -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, len);
    }
    int64_t left = (deadline - mono_us()) / 1000;
    struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
    int r = left > 0 ? poll(&pf, 1, (int)left) : 0;
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      fprintf(stderr, "bench_sim: %s did not say '%s' within %d ms; see '%s'\n", name, prefix,
              timeout_ms, log_path);
      break;
    }
    ssize_t n = read(p->out_fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0) {
      fprintf(stderr, "bench_sim: %s ended before it listened; see '%s'\n", name, log_path);
      break;
    }
    len += (size_t)n;
    if (len == sizeof(buf) - 1)
      len = 0; /* a line this long is not the one we wait for */
  }
  sim_proc_stop(p, 5000);
  return -1;
}

long sim_proc_status_kb(pid_t pid, const char *key)
{
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t kl = strlen(key);
  long kb = -1;
  while (fgets(line, sizeof(line), f)) {
    if (!strncmp(line, key, kl) && line[kl] == ':') {
      kb = strtol(line + kl + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

long sim_self_rss_kb(void)
{
  return sim_proc_status_kb(getpid(), "VmRSS");
}

/* utime + stime of a /proc/.../stat file, in ms, or -1. */
static long stat_cpu_ms(const char *path)
{
  char buf[1024];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = 0;
  /* Fields after the command name, which may hold spaces: state is the
   * 3rd field, utime the 14th and stime the 15th. */
  char *p = strrchr(buf, ')');
  if (!p)
    return -1;
  unsigned long long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  long hz = sysconf(_SC_CLK_TCK);
  return (long)((ut + st) * 1000 / (unsigned long long)(hz > 0 ? hz : 100));
}

long sim_proc_cpu_ms(pid_t pid)
{
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  return stat_cpu_ms(path);
}

long sim_proc_main_cpu_ms(pid_t pid)
{
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)pid);
  return stat_cpu_ms(path);
}

int sim_proc_main_sched(pid_t pid, int64_t *run_ns, int64_t *wait_ns)
{
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long long r = 0, w = 0;
  int n = fscanf(f, "%lld %lld", &r, &w);
  fclose(f);
  if (n != 2)
    return -1;
  *run_ns = r;
  *wait_ns = w;
  return 0;
}

int sim_proc_stop(struct sim_proc *p, int timeout_ms)
{
  if (p->pid <= 0)
    return -1;
  kill(p->pid, SIGTERM);
  int status = 0, code = -1;
  int64_t deadline = mono_us() + (int64_t)timeout_ms * 1000;
  for (;;) {
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
      code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (r < 0 && errno != EINTR)
      break;
    if (mono_us() >= deadline) {
      fprintf(stderr, "bench_sim: %s did not exit within %d ms of SIGTERM; killing it\n", p->name,
              timeout_ms);
      kill(p->pid, SIGKILL);
      waitpid(p->pid, NULL, 0);
      break;
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (p->out_fd >= 0)
    close(p->out_fd);
  p->out_fd = -1;
  p->pid = -1;
  return code;
}
