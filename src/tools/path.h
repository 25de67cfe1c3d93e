/* path.h - the folders a tool may touch (its roots) and paths opened only
 * beneath them.
 *
 * A path is resolved by the kernel beneath a root's directory fd with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): "..", an absolute
 * symbolic link, or a relative one that climbs out are refused there, during
 * the walk, so no check-then-open race lets a path out. Where openat2 is
 * missing (Linux before 5.6, or a seccomp filter that refuses it) the walk
 * is done here one component at a time with O_NOFOLLOW: no symbolic link is
 * followed at all and ".." may not climb above the root. */
#ifndef DROVER_TOOLS_PATH_H
#define DROVER_TOOLS_PATH_H

#include <stddef.h>
#include <sys/types.h>

struct tools_root {
  char *path;  /* canonical absolute path (realpath) */
  char *given; /* absolute path as given (may go through a symbolic link) */
  int fd;      /* O_PATH directory fd */
  int write;   /* files beneath it may be written */
};

struct tools_roots {
  struct tools_root *v;
  size_t n;
  int no_openat2; /* 1: use the component walk (openat2 missing, or forced for tests) */
};

/* Errors of this module besides -errno of open: */
#define TOOLS_EOUTSIDE (-1001) /* the path leaves every root */
#define TOOLS_ENOWRITE (-1002) /* inside a root, but not beneath a write root */
#define TOOLS_ENOROOT  (-1003) /* no root is configured */
#define TOOLS_ESYMLINK (-1004) /* a symbolic link, which the fallback walk never follows */
#define TOOLS_ENOTREG  (-1005) /* not a regular file (a FIFO, device, socket) */
#define TOOLS_ENOTDIR  (-1006) /* not a directory */

void tools_roots_init(struct tools_roots *r);
/* Adds dir (must exist and be a directory; relative to the working
 * directory) as a root, writable when write is 1. A write root is also
 * readable. The first root added is the base of relative paths. Returns 0,
 * or -errno with a message for the user in err. */
int tools_roots_add(struct tools_roots *r, const char *dir, int write, char *err, size_t errlen);
void tools_roots_release(struct tools_roots *r);

/* Opens path beneath a root: relative paths against the first root,
 * absolute ones beneath the roots whose path (canonical or as given) they
 * start with, the longest first. With want_write only write roots count.
 * flags are open(2)'s (O_CLOEXEC is added; mode only with O_CREAT). type
 * 'f' wants a regular file, 'd' a directory, 0 anything; the type is checked
 * on an O_PATH fd before the real open, so a FIFO or device is never
 * opened. Returns the fd, or a negative error: TOOLS_E* above, -ELOOP (a
 * symbolic link loop), -ENOENT, or another -errno. *root_out (may be NULL)
 * gets the index of the root used. */
int tools_path_open(const struct tools_roots *r, const char *path, int flags, mode_t mode,
                    int want_write, int type, size_t *root_out);
/* Opens the folder that will hold path (beneath a write root), creating the
 * missing folders on the way (mode 0777 before the umask), and sets *base
 * to path's last component (pointing into path). Returns a directory fd or
 * a negative error as tools_path_open. */
int tools_path_parent(const struct tools_roots *r, const char *path, const char **base);
/* The error as words for a user: "leaves every tool root". */
const char *tools_path_strerror(int err);
/* The policy rule an error breaks ("tool-root", "tool-write-root"), or
 * NULL when it is an ordinary failure (ENOENT). */
const char *tools_path_rule(int err);

#endif
