/* init_main.c - drover-init: PID 1 of a job's PID namespace (init.c) as a
 * program of its own that needs nothing but libc, so that it starts in a
 * fraction of drover's own start-up time. The sandbox looks for it next to
 * the drover binary and falls back to drover itself (main.c's argv[0]
 * dispatch) when it is not there. */
#include "sandbox/child.h"

int main(int argc, char **argv)
{
  return sbx_init_main(argc, argv);
}
