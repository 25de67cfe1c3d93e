/* walk.h - a folder tree walked through directory fds, beneath a folder
 * already opened safely (tools_path_open): every entry is opened relative
 * to its folder's fd with O_NOFOLLOW, so the walk never leaves the tree and
 * never follows a symbolic link (links are reported, not entered). Names in
 * each folder come sorted, so results are the same from run to run. */
#ifndef DROVER_TOOLS_WALK_H
#define DROVER_TOOLS_WALK_H

#include <stddef.h>

#define WALK_MAX_DEPTH 64

/* An entry: its folder's fd, its name there, its path below the walk's
 * start ("sub/a.c") and its type as dirent's DT_* (never DT_UNKNOWN).
 * Return 0 to go on, 1 to stop the walk (a limit was reached). */
typedef int (*walk_fn)(void *ud, int dirfd, const char *name, const char *rel, unsigned char type);

/* Walks the folder dirfd (not closed here) depth first, calling fn for
 * every entry, folders before their contents. Folders more than max_depth
 * levels below dirfd are not entered (0: dirfd's own entries only), nor are
 * folders that cannot be opened. Returns 1 when fn stopped the walk, else 0. */
int walk_tree(int dirfd, int max_depth, walk_fn fn, void *ud);

#endif
