/* tools.h - the built-in tools of tool jobs (docs/tools.md): file_read,
 * file_write, file_edit, list, find, grep, fetch_url, web_search.
 *
 * A tool job runs `drover tool-exec [policy flags] NAME` as its process
 * (tools_exec_main): the arguments, a JSON object, come on stdin; exactly one
 * JSON document goes to stdout, the result or {"error": ..., "rule": ...};
 * the reason of an error goes to stderr as well. Its exit code says which:
 * TOOLS_EXIT_OK, TOOLS_EXIT_FAILED (the tool failed: no such file, an edit
 * whose text is absent, a network error), TOOLS_EXIT_USAGE (bad arguments),
 * TOOLS_EXIT_REFUSED (the policy refused it: a path out of the roots, a host
 * not allowed, a tool not enabled, more than --tool-max-bytes). */
#ifndef DROVER_TOOLS_TOOLS_H
#define DROVER_TOOLS_TOOLS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/path.h"

#define TOOLS_EXIT_OK      0
#define TOOLS_EXIT_FAILED  1
#define TOOLS_EXIT_USAGE   2
#define TOOLS_EXIT_REFUSED 126

#define TOOLS_DEFAULT_MAX_BYTES (16u << 20)
/* fetch_url and web_search: the whole transfer may take this long. */
#define TOOLS_FETCH_TIMEOUT_MS 30000

/* The names of the tools, NULL-terminated. */
extern const char *const tools_names[];
/* 1 when name is a tool of this version. */
int tools_known(const char *name);

/* One tool call: the policy it runs under and where its error goes. */
struct tools_ctx {
  struct tools_roots roots;
  uint64_t max_bytes;
  char **fetch_allow; /* hosts */
  size_t nfetch_allow;
  const char *search_url; /* NULL: web_search is not configured */
  /* the failure: message (no "error: " prefix) and the rule it broke */
  char err[1024];
  const char *rule; /* NULL unless the policy refused */
};

/* Each tool: args is the JSON object from the caller; on success *out gets
 * the result object (the caller decrefs it) and 0 is returned; else a
 * TOOLS_EXIT_* code with t->err (and t->rule when refused) set. */
typedef int (*tools_fn)(struct tools_ctx *t, json_t *args, json_t **out);

int tools_file_read(struct tools_ctx *t, json_t *args, json_t **out);
int tools_file_write(struct tools_ctx *t, json_t *args, json_t **out);
int tools_file_edit(struct tools_ctx *t, json_t *args, json_t **out);
int tools_list(struct tools_ctx *t, json_t *args, json_t **out);
int tools_find(struct tools_ctx *t, json_t *args, json_t **out);
int tools_grep(struct tools_ctx *t, json_t *args, json_t **out);
int tools_fetch_url(struct tools_ctx *t, json_t *args, json_t **out);
int tools_web_search(struct tools_ctx *t, json_t *args, json_t **out);

/* Helpers for the tools. tools_fail sets t->err (printf) and returns code;
 * with a rule it is a refusal. */
int tools_fail(struct tools_ctx *t, int code, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The failure of a tools_path_* call on path, as tools_fail. */
int tools_path_fail(struct tools_ctx *t, const char *path, int err);
/* Argument readers: 0 and *out, or TOOLS_EXIT_USAGE with t->err. A missing
 * optional argument leaves *out as it was. */
int tools_arg_str(struct tools_ctx *t, json_t *args, const char *key, int required,
                  const char **out, size_t *len);
int tools_arg_uint(struct tools_ctx *t, json_t *args, const char *key, uint64_t *out);
int tools_arg_bool(struct tools_ctx *t, json_t *args, const char *key, int *out);
/* Refuses arguments the tool does not know (a typo must not be ignored);
 * known is NULL-terminated. */
int tools_args_only(struct tools_ctx *t, json_t *args, const char *const *known);
/* Bytes as a JSON value set in obj: "key" as a string when they are valid
 * UTF-8, else base64 with "encoding": "base64". */
void tools_set_bytes(json_t *obj, const char *key, const char *data, size_t len);

/* path as the start of the paths found below it: "src/" -> "src", "." -> ""
 * (heap string). */
char *tools_prefix(const char *path);

/* `drover tool-exec`: argv[0] is "tool-exec". Returns the exit code. */
int tools_exec_main(int argc, char **argv);

#endif
