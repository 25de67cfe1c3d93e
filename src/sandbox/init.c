/* init.c - PID 1 of a job's PID namespace (see child.h, sbx_init_main).
 *
 * Why an init of our own: PID 1 of a namespace is special. Orphans of the
 * namespace are reparented to it, so it must reap them or they stay zombies;
 * the kernel drops signals to it that it has no handler for, so a job's
 * program (not written to be PID 1) would ignore the TERM of a timeout; and
 * when it exits the kernel kills everything else in the namespace, which is
 * what ends a job here. So: fork the job, pass signals on, reap, and exit
 * the way the job did. */
#include "sandbox/child.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int sbx_init_main(int argc, char **argv)
{
  extern char **environ;
  sigset_t all, none;
  pid_t job;
  int status = 0;

  if (argc < 3) {
    fprintf(stderr, "%s: this is drover's init for a job's PID namespace, not a command\n",
            argv[0]);
    return 125;
  }
  /* Blocked signals are queued for PID 1 even without a handler, and
   * sigwaitinfo takes them one at a time: no handler, no races. */
  sigfillset(&all);
  sigemptyset(&none);
  sigprocmask(SIG_BLOCK, &all, NULL);
  job = fork();
  if (job < 0) {
    fprintf(stderr, "drover: cannot start the job in its PID namespace: %s\n", strerror(errno));
    return 125;
  }
  if (job == 0) {
    /* Its own group: signals from outside reach the init (the leader of
     * the job's session and group) and go on to the whole job from here. */
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(argv[1], argv + 2, environ);
    fprintf(stderr, "drover: cannot run '%s': %s\n", argv[1], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0)
      continue; /* EINTR */
    if (sig != SIGCHLD) {
      if (kill(-job, sig) < 0)
        kill(job, sig);
      continue;
    }
    int done = 0;
    for (;;) {
      int st;
      pid_t w = waitpid(-1, &st, WNOHANG);
      if (w <= 0)
        break;
      if (w == job) {
        status = st;
        done = 1;
      }
    }
    if (done)
      break;
  }
  /* Our exit kills what is left in the namespace. A signal cannot be
   * passed on as such (PID 1 ignores its own default actions): 128 + N. */
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
