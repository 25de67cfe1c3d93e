/* child.h - what a job's process does to itself between clone and exec:
 * join its cgroup, raise its OOM score, enter namespaces, mount, drop to
 * the job's user. The parent prepares everything (sbx_child_prepare:
 * resolving the user, reading the mount table, formatting mount options);
 * the child (sbx_child_setup) only makes syscalls on what was prepared, as
 * a CLONE_VM child must (see exec/spawn.c). */
#ifndef DROVER_SANDBOX_CHILD_H
#define DROVER_SANDBOX_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include "job/job.h"

/* argv[0] of the minimal init that is PID 1 of a job's PID namespace: the
 * drover binary, re-executed, sees it and runs sbx_init_main. */
#define SBX_INIT_ARGV0 "drover-sandbox-init"

struct sbx_bind {
  const char *src, *dst;
  unsigned long ro_flags; /* flags for the remount: MS_RDONLY and the mount's own */
};

struct sbx_child {
  const int *join_fd; /* cgroup.procs of the job's groups; njoin of them */
  int njoin;
  /* The v2 group's directory, for clone3's CLONE_INTO_CGROUP (spawn.c), and
   * which join_fd is that group's (not written when clone3 put the child
   * there); -1: none. */
  int cgroup_fd, cgroup_join;
  const char *oom_score_adj; /* written to /proc/self/oom_score_adj; NULL: left */
  int clone_flags;           /* for clone itself: CLONE_NEWPID, CLONE_NEWUSER */
  /* A runner that is not root: a user namespace (made by clone) where the
   * job is uid 0 mapped to the runner's uid, so that it may make the other
   * namespaces and mounts. The maps are written first thing. */
  const char *uid_map, *gid_map;
  int unshare_flags; /* CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC */
  const char *hostname;
  int lo_up; /* new network namespace: bring lo up */
  /* Mount namespace, in this order: the trees to bind in are cloned
   * (open_tree) while the view is still the host's; every mount but /proc
   * and /dev is made read-only (ro_mounts); a tmpfs goes on /tmp
   * (tmp_opts); the directories of mkdirs are made in it; the clones are
   * attached (move_mount) and the read-only ones remounted so; /proc is
   * mounted for a PID namespace; the job enters cwd. binds[0] is the
   * workdir kept writable, when there is one. */
  struct sbx_bind *ro_mounts;
  size_t nro;
  const char *tmp_opts;   /* "size=67108864,mode=1777"; NULL: no private /tmp */
  struct sbx_bind *binds; /* ro_flags 0: writable */
  size_t nbinds;
  int *tree_fd; /* nbinds slots the child fills */
  char **mkdirs;
  size_t nmkdirs;
  const char *cwd; /* absolute; NULL: spawn enters the workdir as usual */
  int mount_proc;
  /* The job's user: setgroups, setresgid, setresuid, after dropping every
   * capability from the bounding set. */
  int set_user;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t ngroups;
  int no_new_privs;
  /* An isolated job that stays root (in the host's user namespace or its
   * own) keeps only the capabilities Docker gives a container by default:
   * no CAP_SYS_ADMIN (it could remount "/" writable, setns out of its
   * network namespace), no CAP_SYS_MODULE, CAP_NET_ADMIN, ... */
  int drop_caps;
  /* PID namespace: exec the init (exe_fd, the drover binary) with init_argv
   * instead of the job's program. */
  int exe_fd;
  char **init_argv;
};

/* Fills c for job j (its isolation, the workdir it runs in). A runner that
 * is not root isolates through a user namespace where the kernel allows one
 * ("isolation.user" then is an error: changing user needs root). The strings
 * and arrays are heap, freed by sbx_child_release. join_fd points into the
 * caller's memory (the cgroup's), which must outlive the spawn. path/argv
 * are the program the init runs in a PID namespace. Returns 0, or -1 with a
 * message for the user in err ("user 'nobdy' does not exist"). */
int sbx_child_prepare(struct sbx_child *c, const struct job *j, const char *path, char *const *argv,
                      int exe_fd, char *err, size_t errlen);
void sbx_child_release(struct sbx_child *c);

/* In the child: does it all (in_cgroup: the child was cloned into the v2
 * group already). Returns 0, or -errno with *what naming the step that
 * failed ("mount a tmpfs on /tmp"). Raw syscalls only. */
int sbx_child_setup(const struct sbx_child *c, int in_cgroup, const char **what);

/* The init's main(): argv = {SBX_INIT_ARGV0, path, argv0, args...}. Forks
 * the job in a process group of its own, forwards the signals it gets to
 * that group, reaps every process of the namespace, and exits with the
 * job's exit code (128 + N when it died of signal N). */
int sbx_init_main(int argc, char **argv);

#endif
