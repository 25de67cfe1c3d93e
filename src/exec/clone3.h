/* clone3.h - clone3(2) running a function on a stack of its own in the
 * child, for what clone(2) cannot do: CLONE_INTO_CGROUP, which starts the
 * child in a cgroup v2 group without a write to cgroup.procs (that write
 * takes the kernel's cgroup_threadgroup_rwsem for writing, which costs an
 * RCU grace period, ~10 ms here, when no migration happened lately). */
#ifndef DROVER_EXEC_CLONE3_H
#define DROVER_EXEC_CLONE3_H

#include <stdint.h>

#define SPAWN_CLONE_INTO_CGROUP 0x200000000ULL

/* The kernel's struct clone_args (linux/sched.h), version 2 (with cgroup). */
struct spawn_clone_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};

/* clone3 with a->stack/stack_size set; the child runs fn(arg) there and
 * exits with its return value. Returns the child's pid to the parent, or
 * -errno (-ENOSYS also on architectures this file has no code for). */
long spawn_clone3(struct spawn_clone_args *a, int (*fn)(void *), void *arg);

#endif
