/* policy.h - what tool jobs may do on a runner (`drover run`, `drover agent`
 * in both modes, `drover dev`): the --tool-* options as one table fragment
 * spelled the same on every command, checked once at start
 * (tools_policy_setup), and applied to each tool job the runner starts
 * (tools_job_prepare). The tool itself runs as `drover tool-exec` (tools.h)
 * with the policy as its words. */
#ifndef DROVER_TOOLS_POLICY_H
#define DROVER_TOOLS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "job/job.h"

struct tools_policy {
  /* from the options (cfg_release of the command's table frees them) */
  struct cfg_list roots;
  struct cfg_list write_roots;
  uint64_t max_bytes;
  struct cfg_list fetch_allow;
  char *tools; /* "file_read,grep": the enabled subset; NULL or "": every tool */
  char *search_url;
  int isolate; /* --tool-isolate: tool jobs ask for the sandbox's isolation */
  /* tools_policy_setup's: with isolate, the isolation every tool job gets */
  struct job_isolation isolation;
  /* tools_policy_setup's: [this binary, "tool-exec", the policy as words, NULL] */
  char **argv;
  size_t argc;
};

/* clang-format off */
#define TOOLS_POLICY_TABLE(type, f)                                                                \
  {"tool-root", 0, CFG_LIST, offsetof(type, f.roots), NULL, NULL, 0, 0, "DIR",                     \
   "tool jobs may read beneath DIR (repeat for more; relative paths are under the first)"},        \
  {"tool-write-root", 0, CFG_LIST, offsetof(type, f.write_roots), NULL, NULL, 0, 0, "DIR",         \
   "tool jobs may also write beneath DIR (file_write, file_edit)"},                                \
  {"tool-max-bytes", 0, CFG_SIZE, offsetof(type, f.max_bytes), "16M", NULL, 0, 0, "SIZE",          \
   "the most a tool reads, writes or returns in one call"},                                        \
  {"fetch-allow", 0, CFG_LIST, offsetof(type, f.fetch_allow), NULL, NULL, 0, 0, "HOST",            \
   "fetch_url may get URLs of HOST (.example.com: its subdomains); none by default"},               \
  {"tools", 0, CFG_STRING, offsetof(type, f.tools), NULL, NULL, 0, 0, "LIST",                      \
   "enable only these tools (file_read,grep,...; default: all)"},                                  \
  {"search-url", 0, CFG_STRING, offsetof(type, f.search_url), NULL, NULL, 0, 0, "URL",             \
   "web_search asks this SearXNG-compatible JSON endpoint (http://HOST/search)"},                  \
  {"tool-isolate", 0, CFG_BOOL, offsetof(type, f.isolate), "true", NULL, 0, 0, NULL,               \
   "tool jobs get network none (but fetch_url, web_search), a read-only root and the roots "       \
   "bound in; a tool job fails where the runner cannot isolate (=false: no isolation)"}
/* clang-format on */

/* Checks p (every root an existing folder, made absolute; every name in
 * --tools a tool; max_bytes > 0) and builds p->argv, with this binary's
 * path (/proc/self/exe, resolved now). Returns 0, or -1 with a message for
 * the user in err. tools_policy_release frees what it made. */
int tools_policy_setup(struct tools_policy *p, char *err, size_t errlen);
void tools_policy_release(struct tools_policy *p);

/* 1 when p gives tool jobs something to work on: a root, a fetch host or a
 * search endpoint (an agent then reports the capability "tools"). */
int tools_policy_configured(const struct tools_policy *p);

/* Makes tool job j runnable under p: j->tool_argv = p->argv + the tool's
 * name; with --tool-isolate, j->isolation = network none (host for
 * fetch_url and web_search), a read-only root and workdir, every root bound
 * at its own path (read-only), every write root bound writable, and workdir
 * "/". The
 * executor applies it, or refuses the job when it cannot (it never runs
 * without). A job of another kind is left alone. p NULL: j is left without
 * tool_argv, and fails to start ("this runner cannot run tool jobs"). */
void tools_job_prepare(struct job *j, const struct tools_policy *p);

#endif
