/* spawn.c - clone(CLONE_VM|CLONE_VFORK) + execve of one job process, as
 * glibc's posix_spawn does it, with what posix_spawn cannot give: setsid and
 * a fourth fd together, rusage from wait4, and the sandbox's setup before
 * exec (src/sandbox/child.c: cgroup, namespaces, mounts, user). */
#include "exec/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "exec/clone3.h"
#include "sandbox/child.h"

/* The child's fd layout: 0..3 as the job sees them, nothing above. Every
 * source fd is moved to FIRST_FREE or above in the parent first, so wiring
 * 0..3 in the child never clobbers a source. */
#define FIRST_FREE 4

/* The child runs on a stack of its own inside our address space. It makes a
 * few syscalls through libc wrappers (and, under ASan, their interceptors),
 * never deep calls: 64 KiB is ample and only the touched pages cost. */
#define CHILD_STACK (64 * 1024)

/* Why clone(CLONE_VM|CLONE_VFORK) and not fork: fork copies the page tables
 * of the whole process (and runs the atfork handlers), which costs more the
 * bigger the agent gets; a CLONE_VM child shares our memory and the kernel
 * suspends this thread until the child has exec'ed or exited. So:
 *  - the child may only read what the parent prepared (req, this struct) and
 *    write the failure report below: nothing else of ours, no malloc, no
 *    stdio, no locks (other threads of ours keep running beside it);
 *  - the report needs no pipe: once clone returns, the child is either a
 *    new program or dead, and f says which;
 *  - errno is shared with the calling thread (same TLS), so the parent never
 *    relies on errno across the clone. */
struct child_ctx {
  const struct spawn_req *req;
  int src[4]; /* fds for 0..3, all >= FIRST_FREE or -1 */
  struct sigaction dfl;
  sigset_t empty;
  pid_t parent;           /* our pid, taken before clone */
  int in_cgroup;          /* cloned into the job's v2 group (clone3) */
  struct spawn_failure f; /* written by the child only when it fails */
};

/* Full signal masks for the raw syscall: the kernel's sigset is _NSIG bits,
 * and glibc's sigprocmask would leave its own internal signals unblocked. */
#define KSIGSET_SIZE (_NSIG / 8)

static void child_fail(struct child_ctx *c, enum spawn_step step, int err)
    __attribute__((noreturn));
/* No ASan instrumentation in the child: it would poison shadow memory for
 * frames on a stack that is unmapped without ever returning. */
__attribute__((no_sanitize_address)) static void child_fail(struct child_ctx *c,
                                                            enum spawn_step step, int err)
{
  c->f.step = step;
  c->f.err = err;
  _exit(127);
}

/* Runs in the cloned child, on its own stack, sharing our memory: raw
 * syscalls and async-signal-safe calls only (see struct child_ctx). */
__attribute__((no_sanitize_address)) static int child_run(void *arg)
{
  struct child_ctx *c = arg;
  const struct spawn_req *req = c->req;

  /* Own session and process group: timeouts and cancels signal the whole
   * group, and the job cannot signal ours or read our terminal. */
  if (setsid() < 0)
    child_fail(c, SPAWN_STEP_SETUP, errno);

  /* The job dies with the runner: if drover is killed (kill -9, OOM), the
   * kernel SIGKILLs this process, so a job never runs on unsupervised beside
   * the retry a restarted agent makes. If the runner died before prctl took
   * effect, we have been reparented already and no signal will come: leave
   * now. Only this process is covered; its own children are the group's. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
    child_fail(c, SPAWN_STEP_SETUP, errno);
  /* In a new PID namespace the parent is outside it: getppid() is 0. */
  if (getppid() != c->parent && !(req->sandbox && (req->sandbox->clone_flags & CLONE_NEWPID)))
    _exit(127);

  /* The runner installs handlers (libuv's point into our memory, which this
   * child shares) and ignores SIGPIPE; a job must start with default
   * dispositions and nothing blocked. The parent blocked everything around
   * clone, so no handler of ours can run in here before this reset; the
   * handler table is the child's own copy (no CLONE_SIGHAND). sigaction
   * fails for the signals that cannot be changed; fine. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction(sig, &c->dfl, NULL);
  sigprocmask(SIG_SETMASK, &c->empty, NULL);

  /* The sandbox (cgroup join first, namespaces, mounts, no_new_privs,
   * dropping to the job's user): after setsid, before the fds and the
   * workdir. All of it is syscalls, which is what a CLONE_VM child may
   * make; sandbox/child.c uses syscall(SYS_setresuid/...) rather than
   * glibc's setuid family, whose wrappers signal every thread of the
   * process to change them all, and here that process is ours. */
  if (req->sandbox) {
    int rc = sbx_child_setup(req->sandbox, c->in_cgroup, &c->f.what);
    if (rc < 0)
      child_fail(c, SPAWN_STEP_SANDBOX, -rc);
  }

  for (int fd = 0; fd < 4; fd++) {
    if (c->src[fd] >= 0) {
      if (dup2(c->src[fd], fd) < 0)
        child_fail(c, SPAWN_STEP_SETUP, errno);
    } else if (fd == 0 || fd == 3) {
      close(fd);
    }
  }
  /* Nothing else of ours leaks into the job: other jobs' pipes, sockets,
   * the store. (The sources are close-on-exec or closed here.) The one fd
   * kept is the drover binary for a PID namespace's init: close-on-exec,
   * it is gone once that init runs. */
  int keep = req->sandbox && req->sandbox->init_argv ? req->sandbox->exe_fd : -1;
  int closed = keep >= FIRST_FREE
                   ? (keep == FIRST_FREE || close_range(FIRST_FREE, (unsigned)keep - 1, 0) == 0) &&
                         close_range((unsigned)keep + 1, ~0U, 0) == 0
                   : close_range(FIRST_FREE, ~0U, 0) == 0;
  if (!closed) {
    struct rlimit rl;
    long max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)max)
      max = (long)rl.rlim_cur;
    for (long fd = FIRST_FREE; fd < max; fd++)
      if (fd != keep)
        close((int)fd);
  }

  /* With a mount namespace the sandbox has entered the workdir itself (it
   * may be a new mount there). */
  if (req->workdir && !(req->sandbox && req->sandbox->cwd) && chdir(req->workdir) < 0)
    child_fail(c, SPAWN_STEP_CHDIR, errno);
  if (req->sandbox && req->sandbox->init_argv)
    syscall(SYS_execveat, req->sandbox->exe_fd, "", req->sandbox->init_argv, req->envp,
            AT_EMPTY_PATH);
  else
    execve(req->path, req->argv, req->envp);
  child_fail(c, SPAWN_STEP_EXEC, errno);
  return 127;
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
  int tmp[4], rc = 0, clone_err = 0;
  int src[4] = {req->fd_stdin, req->fd_stdout, req->fd_stderr, req->fd_progress};
  sigset_t all, old;
  void *stack;
  pid_t pid;

  memset(&c, 0, sizeof c);
  c.req = req;
  c.dfl.sa_handler = SIG_DFL;
  sigemptyset(&c.dfl.sa_mask);
  sigemptyset(&c.empty);
  c.parent = getpid();
  c.f.step = SPAWN_OK;
  f->step = SPAWN_OK;
  f->err = 0;
  f->what = NULL;

  for (int i = 0; i < 4; i++)
    tmp[i] = -1;
  for (int i = 0; i < 4; i++) {
    c.src[i] = high_fd(src[i], &tmp[i]);
    if (src[i] >= 0 && c.src[i] < 0) {
      rc = -errno;
      goto out;
    }
  }

  stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED) {
    rc = -errno;
    goto out;
  }

  /* Block every signal, glibc's internal ones too, across clone: the child
   * shares our memory, so a handler of ours running in it before it has
   * reset the dispositions would run on our data (glibc's posix_spawn does
   * the same). The raw syscall, because sigfillset + sigprocmask leave
   * glibc's signals out. */
  sigfillset(&all);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, KSIGSET_SIZE);
  /* The stack grows down on every architecture Linux runs drover on. */
  int flags = CLONE_VM | CLONE_VFORK | (req->sandbox ? req->sandbox->clone_flags : 0);
  pid = -1;
  clone_err = ENOSYS;
  if (req->sandbox && req->sandbox->cgroup_fd >= 0) {
    /* Straight into the job's v2 group: no cgroup.procs write (see
     * clone3.h). When the kernel refuses (before 5.7: ENOSYS, E2BIG or
     * EINVAL; a group it will not take: EBUSY, EACCES...), clone as usual
     * and the child joins by writing, which says what is wrong if that
     * fails too. */
    struct spawn_clone_args a = {
        .flags = (uint64_t)(unsigned)flags | SPAWN_CLONE_INTO_CGROUP,
        .exit_signal = SIGCHLD,
        .stack = (uint64_t)(uintptr_t)stack,
        .stack_size = CHILD_STACK,
        .cgroup = (uint64_t)req->sandbox->cgroup_fd,
    };
    c.in_cgroup = 1;
    long r = spawn_clone3(&a, child_run, &c);
    if (r >= 0)
      pid = (pid_t)r;
    else
      clone_err = (int)-r;
  }
  if (pid < 0) {
    c.in_cgroup = 0;
    pid = clone(child_run, (char *)stack + CHILD_STACK, flags | SIGCHLD, &c);
    if (pid < 0)
      clone_err = errno;
  }
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, KSIGSET_SIZE);
  munmap(stack, CHILD_STACK);

  if (pid < 0) {
    rc = -clone_err;
    goto out;
  }
  /* Here the child has exec'ed, or has exited (reporting in c.f when it
   * failed), or was killed before exec (c.f untouched: treated as started;
   * the reaper collects its status). */
  if (c.f.step != SPAWN_OK) {
    *f = c.f;
    /* Reap it now so it is never seen by the group reaper. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    rc = 0;
  } else {
    rc = pid;
  }

out:
  for (int i = 0; i < 4; i++)
    if (tmp[i] >= 0)
      close(tmp[i]);
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
