/* proc.h - facts about processes from Linux's /proc: boot id, a process's
 * start time and process group, its environment, and the kill of what is
 * left of a process group that a previous life of drover started.
 *
 * Process ids are recycled (pid_max is 32768 on many machines), so a pid
 * alone never identifies a process across a restart; a pid together with
 * its start time (in clock ticks since boot) and the boot id does. */
#ifndef DROVER_BASE_PROC_H
#define DROVER_BASE_PROC_H

#include <stddef.h>
#include <stdint.h>

#define PROC_BOOT_ID_LEN 36 /* "25e102b4-9c1f-40b8-8884-75ca26f3bc5a" */

/* The fields of /proc/<pid>/stat that drover uses. */
struct proc_stat {
  char state;     /* 'R', 'S', 'D', 'Z', ... (field 3) */
  int pgid;       /* field 5 */
  uint64_t start; /* field 22: start time, clock ticks after boot */
};

/* Copies this boot's id (/proc/sys/kernel/random/boot_id, PROC_BOOT_ID_LEN
 * characters) into buf (at least PROC_BOOT_ID_LEN + 1 bytes). Returns 0 or
 * -errno. */
int proc_boot_id(char *buf, size_t len);

/* Parses the text of a /proc/<pid>/stat file (len bytes) into st. The
 * command name in parentheses may hold anything, spaces and ')' too: the
 * fields are counted from the last ')'. Returns 0, or -EINVAL when the text
 * does not have the fields. */
int proc_stat_parse(const char *text, size_t len, struct proc_stat *st);
/* Reads /proc/<pid>/stat. Returns 0, -ESRCH when there is no such process,
 * or another -errno. */
int proc_stat_read(int pid, struct proc_stat *st);

/* Whether the environment of process pid (/proc/<pid>/environ, as the
 * process started) holds the entry "NAME=VALUE" exactly. Returns 1, 0, or
 * -errno when it cannot be read (-ESRCH: gone; -EACCES: not ours). */
int proc_environ_has(int pid, const char *entry);

/* What is left of process group pgid, when it is the group a previous life
 * of drover started: its leader (pid pgid) started at clock tick
 * leader_start, and every process of the group started at that tick or later.
 * The group is taken to be that one when its leader is still there (also
 * as a zombie) with that start time, or when a live member's environment
 * holds env_entry (e.g. "DROVER_JOB_ID=<id>"; NULL: no such check).
 * Then every live member is sent SIGKILL through a pidfd (never by number,
 * so a pid recycled in between is not hit), and the call waits, looking at
 * /proc every 10 ms, until the group has no live member or timeout_ms have
 * passed. Zombies are not counted: they are dead, only not reaped.
 * Returns the number of processes killed (0: nothing of the group was alive,
 * or the group is not that one), -ETIMEDOUT when members were still alive
 * at the timeout, or another -errno. */
int proc_group_kill(int pgid, uint64_t leader_start, const char *env_entry, unsigned timeout_ms);

#endif
