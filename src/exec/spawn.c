/* spawn.c - fork + execve with a close-on-exec error pipe, as libuv's
 * uv_spawn does it, but with what uv_spawn cannot give: setsid, a fourth fd,
 * rusage from wait4, and (later) cgroup and namespace setup before exec. */
#include "exec/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

/* The child's fd layout: 0..3 as the job sees them, 4 the error pipe (until
 * exec closes it). Every source fd is moved to FIRST_FREE or above in the
 * parent first, so wiring 0..4 in the child never clobbers a source. */
#define ERR_FD     4
#define FIRST_FREE 5

struct child_ctx {
  const struct spawn_req *req;
  int src[4]; /* fds for 0..3, all >= FIRST_FREE or -1 */
  int err_w;
  struct sigaction dfl;
  sigset_t empty;
  long max_fd; /* for the close loop when close_range is missing */
};

static void child_fail(enum spawn_step step, int err) __attribute__((noreturn));
static void child_fail(enum spawn_step step, int err)
{
  struct spawn_failure f = {step, err};
  ssize_t n;
  do
    n = write(ERR_FD, &f, sizeof f);
  while (n < 0 && errno == EINTR);
  _exit(127);
}

/* Runs in the forked child: async-signal-safe calls only (no malloc, no
 * stdio, no locks another thread may have held at fork). */
static void child_run(const struct child_ctx *c) __attribute__((noreturn));
static void child_run(const struct child_ctx *c)
{
  const struct spawn_req *req = c->req;

  /* The error pipe goes to its fixed place first, so every later step can
   * report through it. dup2 clears close-on-exec; set it back. */
  if (dup2(c->err_w, ERR_FD) < 0)
    _exit(127);
  fcntl(ERR_FD, F_SETFD, FD_CLOEXEC);

  /* Own session and process group: timeouts and cancels signal the whole
   * group, and the job cannot signal ours or read our terminal. */
  if (setsid() < 0)
    child_fail(SPAWN_STEP_SETUP, errno);

  /* libuv (and the runner) install handlers and block signals; a job must
   * start with default dispositions and nothing blocked. The parent blocked
   * everything around fork, so no handler of ours can run in here before
   * this reset. sigaction fails for the two signals glibc reserves; fine. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction(sig, &c->dfl, NULL);
  sigprocmask(SIG_SETMASK, &c->empty, NULL);

  /* Isolation (cgroup join, namespaces, rlimits, no_new_privs, dropping to
   * the job user) slots in here: after setsid, before the fds and the
   * workdir, each failure reported with its own spawn_step. */

  for (int fd = 0; fd < 4; fd++) {
    if (c->src[fd] >= 0) {
      if (dup2(c->src[fd], fd) < 0)
        child_fail(SPAWN_STEP_SETUP, errno);
    } else if (fd == 0 || fd == 3) {
      close(fd);
    }
  }
  /* Nothing else of ours leaks into the job: other jobs' pipes, sockets,
   * the store. */
  if (close_range(FIRST_FREE, ~0U, 0) < 0)
    for (long fd = FIRST_FREE; fd < c->max_fd; fd++)
      close((int)fd);

  if (req->workdir && chdir(req->workdir) < 0)
    child_fail(SPAWN_STEP_CHDIR, errno);
  execve(req->path, req->argv, req->envp);
  child_fail(SPAWN_STEP_EXEC, errno);
}

/* Returns fd itself when it is already >= FIRST_FREE, else a close-on-exec
 * duplicate there (recorded in *tmp for closing), or -1. */
static int high_fd(int fd, int *tmp)
{
  *tmp = -1;
  if (fd < 0 || fd >= FIRST_FREE)
    return fd;
  *tmp = fcntl(fd, F_DUPFD_CLOEXEC, FIRST_FREE);
  return *tmp;
}

int spawn_process(const struct spawn_req *req, struct spawn_failure *f)
{
  struct child_ctx c;
  int tmp[5], errp[2], rc = 0;
  int src[4] = {req->fd_stdin, req->fd_stdout, req->fd_stderr, req->fd_progress};
  sigset_t all, old;
  pid_t pid;

  memset(&c, 0, sizeof c);
  c.req = req;
  c.dfl.sa_handler = SIG_DFL;
  sigemptyset(&c.dfl.sa_mask);
  sigemptyset(&c.empty);
  c.max_fd = sysconf(_SC_OPEN_MAX);
  if (c.max_fd < 0 || c.max_fd > 65536)
    c.max_fd = 65536;
  f->step = SPAWN_OK;
  f->err = 0;

  for (int i = 0; i < 5; i++)
    tmp[i] = -1;
  if (pipe2(errp, O_CLOEXEC) < 0)
    return -errno;
  for (int i = 0; i < 4; i++) {
    c.src[i] = high_fd(src[i], &tmp[i]);
    if (src[i] >= 0 && c.src[i] < 0) {
      rc = -errno;
      goto out;
    }
  }
  c.err_w = high_fd(errp[1], &tmp[4]);
  if (c.err_w < 0) {
    rc = -errno;
    goto out;
  }

  /* Block every signal across fork so that no handler runs in the child
   * before it has reset the dispositions (libuv does the same). */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid = fork();
  if (pid == 0)
    child_run(&c);
  rc = pid < 0 ? -errno : 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid < 0)
    goto out;

  /* The write end must be closed here, or the read below would never see
   * EOF. The read returns at exec (close-on-exec closes the child's end:
   * EOF) or with a failure report; the child does little before either. */
  close(errp[1]);
  errp[1] = -1;
  if (tmp[4] >= 0) {
    close(tmp[4]);
    tmp[4] = -1;
  }
  ssize_t n;
  do
    n = read(errp[0], f, sizeof *f);
  while (n < 0 && errno == EINTR);
  if (n == (ssize_t)sizeof *f) {
    /* The child _exits right after writing: reap it now so it is never
     * seen by the group reaper. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    rc = 0;
  } else {
    f->step = SPAWN_OK;
    f->err = 0;
    rc = pid;
  }

out:
  for (int i = 0; i < 5; i++)
    if (tmp[i] >= 0)
      close(tmp[i]);
  close(errp[0]);
  if (errp[1] >= 0)
    close(errp[1]);
  return rc;
}

int spawn_find(const char *name, const char *path_env, char **out)
{
  int rc = -ENOENT;
  struct stat st;

  *out = NULL;
  if (!*name)
    return -ENOENT;
  if (strchr(name, '/')) {
    *out = xstrdup(name);
    return 0;
  }
  if (!path_env)
    path_env = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path_env;; p++) {
    const char *colon = strchrnul(p, ':');
    /* An empty entry means the current directory, as for execvp. */
    char *cand =
        colon == p ? xasprintf("./%s", name) : xasprintf("%.*s/%s", (int)(colon - p), p, name);
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0) {
        *out = cand;
        return 0;
      }
      rc = -EACCES;
    }
    free(cand);
    if (!*colon)
      break;
    p = colon;
  }
  return rc;
}
