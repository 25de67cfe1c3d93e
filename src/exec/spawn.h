/* spawn.h - clone(CLONE_VM|CLONE_VFORK) + execve of one job process, with
 * its own session, fds 0..3 wired as asked (nothing else open), default
 * signal dispositions, a parent-death signal (SIGKILL when the runner dies),
 * and failures before exec reported back to the parent.
 * exec.c builds everything (paths, argv, envp, fds) before calling this;
 * the child shares our memory until exec and only makes syscalls. */
#ifndef DROVER_EXEC_SPAWN_H
#define DROVER_EXEC_SPAWN_H

/* Where a child failed before its program started. */
enum spawn_step {
  SPAWN_OK = 0,
  SPAWN_STEP_SETUP,
  SPAWN_STEP_CHDIR,
  SPAWN_STEP_EXEC,
  SPAWN_STEP_SANDBOX /* sandbox/child.h's setup; spawn_failure.what says which part */
};

struct sbx_child;

struct spawn_req {
  const char *path; /* program to execve: already resolved (see spawn_find) */
  char *const *argv;
  char *const *envp;
  const char *workdir; /* NULL: the parent's */
  /* The child's fds 0..3. -1 for stdout/stderr: inherit the parent's fd 1/2.
   * progress may be -1 (then fd 3 is closed). The parent keeps ownership. */
  int fd_stdin, fd_stdout, fd_stderr, fd_progress;
  /* The job's sandbox (cgroup join, namespaces, mounts, user), applied
   * right after setsid; NULL: none. With a PID namespace the child is
   * PID 1 of it and execs the sandbox's init instead of path. */
  const struct sbx_child *sandbox;
};

struct spawn_failure {
  enum spawn_step step;
  int err;          /* errno of that step */
  const char *what; /* SPAWN_STEP_SANDBOX: the part that failed (static text) */
};

/* Starts the process; the calling thread waits until the child has exec'ed
 * or failed. The child gets PR_SET_PDEATHSIG SIGKILL, which the kernel
 * sends when the calling *thread* exits: call this from a thread that lives
 * as long as the process (the loop thread), never from a worker. Returns its pid (> 0) once it has
 * exec'ed; the child is the leader of a new session and process group (pgid == pid). Returns 0 with
 * *f filled when the child failed before exec (it has been reaped already),
 * or -errno when no child could be made (dup, mmap, clone). Safe to call from
 * any thread; the caller's signal mask is left as it was. */
int spawn_process(const struct spawn_req *req, struct spawn_failure *f);

/* Resolves a program name the way execvp does, with path_env as $PATH (NULL:
 * the default "/usr/local/bin:/usr/bin:/bin"). A name with a '/' is taken as
 * is. Sets *out (heap) and returns 0, or returns -ENOENT / -EACCES. */
int spawn_find(const char *name, const char *path_env, char **out);

#endif
