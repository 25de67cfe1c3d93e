/* tools.c - `drover tool-exec`: one tool call, its policy from the words
 * before the tool's name, its arguments from stdin, one JSON document out
 * (see tools.h). */
#include "tools/tools.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/units.h"
#include "base/util.h"

const char *const tools_names[] = {"file_read", "file_write", "file_edit",  "list", "find",
                                   "grep",      "fetch_url",  "web_search", NULL};

static const tools_fn tools_fns[] = {
    tools_file_read, tools_file_write, tools_file_edit, tools_list,
    tools_find,      tools_grep,       tools_fetch_url, tools_web_search,
};

int tools_known(const char *name)
{
  for (size_t i = 0; tools_names[i]; i++)
    if (!strcmp(name, tools_names[i]))
      return 1;
  return 0;
}

int tools_fail(struct tools_ctx *t, int code, const char *rule, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->err, sizeof t->err, fmt, ap);
  va_end(ap);
  t->rule = rule;
  return code;
}

int tools_path_fail(struct tools_ctx *t, const char *path, int err)
{
  const char *rule = tools_path_rule(err);
  if (err == TOOLS_ENOROOT)
    return tools_fail(t, TOOLS_EXIT_REFUSED, rule,
                      "path '%.300s': no tool root is configured: start the runner with "
                      "--tool-root DIR",
                      path);
  if (rule)
    return tools_fail(t, TOOLS_EXIT_REFUSED, rule, "path '%.300s' refused by --%s: %s", path, rule,
                      tools_path_strerror(err));
  return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "path '%.300s': %s", path,
                    tools_path_strerror(err));
}

int tools_arg_str(struct tools_ctx *t, json_t *args, const char *key, int required,
                  const char **out, size_t *len)
{
  json_t *v = json_object_get(args, key);
  if (!v) {
    if (required)
      return tools_fail(t, TOOLS_EXIT_USAGE, NULL, "argument \"%s\" is required", key);
    return 0;
  }
  if (!json_is_string(v))
    return tools_fail(t, TOOLS_EXIT_USAGE, NULL, "argument \"%s\" must be a string", key);
  *out = json_string_value(v);
  if (len)
    *len = json_string_length(v);
  return 0;
}

int tools_arg_uint(struct tools_ctx *t, json_t *args, const char *key, uint64_t *out)
{
  json_t *v = json_object_get(args, key);
  if (!v)
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return tools_fail(t, TOOLS_EXIT_USAGE, NULL, "argument \"%s\" must be a whole number >= 0",
                      key);
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

int tools_arg_bool(struct tools_ctx *t, json_t *args, const char *key, int *out)
{
  json_t *v = json_object_get(args, key);
  if (!v)
    return 0;
  if (!json_is_boolean(v))
    return tools_fail(t, TOOLS_EXIT_USAGE, NULL, "argument \"%s\" must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

int tools_args_only(struct tools_ctx *t, json_t *args, const char *const *known)
{
  const char *key;
  json_t *v;
  json_object_foreach(args, key, v)
  {
    int ok = 0;
    for (size_t i = 0; known[i] && !ok; i++)
      ok = !strcmp(key, known[i]);
    if (!ok) {
      char list[256] = "";
      size_t off = 0;
      for (size_t i = 0; known[i] && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", known[i]);
      return tools_fail(t, TOOLS_EXIT_USAGE, NULL, "unknown argument \"%.60s\": known are %s", key,
                        list);
    }
  }
  return 0;
}

static int utf8_valid(const unsigned char *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t k;
    uint32_t cp;
    if (c < 0x80) {
      /* NUL is valid UTF-8, and jansson takes it with a length. */
      i++;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      k = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i <= k) /* the sequence would run past the end */
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    /* overlong forms, surrogates, past U+10FFFF */
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return 0;
    i += k + 1;
  }
  return 1;
}

static char *base64(const unsigned char *p, size_t n)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = tab[v >> 18];
    *o++ = tab[(v >> 12) & 63];
    *o++ = tab[(v >> 6) & 63];
    *o++ = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    *o++ = tab[v >> 18];
    *o++ = tab[(v >> 12) & 63];
    *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o = '\0';
  return out;
}

void tools_set_bytes(json_t *obj, const char *key, const char *data, size_t len)
{
  if (utf8_valid((const unsigned char *)data, len)) {
    json_t *s = json_stringn(data, len);
    if (s) {
      json_object_set_new(obj, key, s);
      return;
    }
  }
  char *b = base64((const unsigned char *)data, len);
  json_object_set_new(obj, key, json_string(b));
  json_object_set_new(obj, "encoding", json_string("base64"));
  free(b);
}

/* ---- tool-exec ---------------------------------------------------------- */

static void emit(json_t *doc)
{
  char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
  if (!s)
    abort();
  fputs(s, stdout);
  fputc('\n', stdout);
  free(s);
  fflush(stdout);
}

static int emit_error(struct tools_ctx *t, const char *tool, int code)
{
  json_t *e = json_object();
  json_object_set_new(e, "error", json_string(t->err));
  if (t->rule)
    json_object_set_new(e, "rule", json_string(t->rule));
  json_object_set_new(e, "exit", json_integer(code));
  emit(e);
  json_decref(e);
  fprintf(stderr, "error: %s%s%s\n", tool ? tool : "", tool ? ": " : "", t->err);
  return code;
}

/* stdin, at most max bytes. */
static int read_stdin(size_t max, char **out, size_t *len)
{
  size_t cap = 4096, n = 0;
  char *buf = xmalloc(cap);
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        free(buf);
        return -EFBIG;
      }
      cap *= 2;
      buf = xrealloc(buf, cap);
    }
    ssize_t r = read(0, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int rc = -errno;
      free(buf);
      return rc;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > max) {
    free(buf);
    return -EFBIG;
  }
  *out = buf;
  *len = n;
  return 0;
}

static int enabled(const char *list, const char *name)
{
  size_t n = strlen(name);
  if (!list || !*list)
    return 1;
  for (const char *p = list; *p;) {
    size_t w = strcspn(p, ",");
    if (w == n && !strncmp(p, name, n))
      return 1;
    p += w;
    p += *p == ',';
  }
  return 0;
}

static const char usage[] =
    "drover tool-exec [--tool-root DIR]... [--tool-write-root DIR]... [--tool-max-bytes N] "
    "[--fetch-allow HOST]... [--tools LIST] [--search-url URL] [--] TOOL < ARGS.json";

int tools_exec_main(int argc, char **argv)
{
  struct tools_ctx t;
  const char *tools = NULL, *name = NULL;
  char *text = NULL;
  size_t len = 0;
  json_t *args = NULL, *out = NULL;
  int i, code = TOOLS_EXIT_USAGE;

  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: %s\n\nwhat a tool job runs (docs/tools.md): one tool call under the policy its "
           "options give,\nthe arguments as a JSON object on stdin, one JSON document on stdout;\n"
           "exit 0 (done), 1 (the tool failed), 2 (bad arguments), 126 (refused by the policy).\n",
           usage);
    return TOOLS_EXIT_OK;
  }
  memset(&t, 0, sizeof t);
  tools_roots_init(&t.roots);
  t.max_bytes = TOOLS_DEFAULT_MAX_BYTES;
  t.fetch_allow = xcalloc((size_t)argc + 1, sizeof *t.fetch_allow);
  /* The policy comes from these words only, never from DROVER_* variables
   * or a config file: the job's environment must not be able to widen it. */
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] != '-')
      break;
    if (!v) {
      code = tools_fail(&t, TOOLS_EXIT_USAGE, NULL, "%s needs a value", a);
      goto fail;
    }
    i++;
    if (!strcmp(a, "--tool-root") || !strcmp(a, "--tool-write-root")) {
      if (tools_roots_add(&t.roots, v, a[7] == 'w', t.err, sizeof t.err) < 0) {
        code = TOOLS_EXIT_USAGE;
        goto fail;
      }
    } else if (!strcmp(a, "--tool-max-bytes")) {
      if (units_parse_size(v, &t.max_bytes) < 0) {
        code = tools_fail(&t, TOOLS_EXIT_USAGE, NULL, "--tool-max-bytes \"%s\": not a size", v);
        goto fail;
      }
    } else if (!strcmp(a, "--fetch-allow")) {
      t.fetch_allow[t.nfetch_allow++] = (char *)v;
    } else if (!strcmp(a, "--tools")) {
      tools = v;
    } else if (!strcmp(a, "--search-url")) {
      t.search_url = *v ? v : NULL;
    } else {
      code = tools_fail(&t, TOOLS_EXIT_USAGE, NULL, "unknown option '%s'", a);
      goto fail;
    }
  }
  if (i != argc - 1) {
    code = tools_fail(&t, TOOLS_EXIT_USAGE, NULL, "usage: %s", usage);
    goto fail;
  }
  name = argv[i];
  if (!tools_known(name)) {
    code = tools_fail(&t, TOOLS_EXIT_USAGE, NULL,
                      "unknown tool \"%.60s\": the tools are file_read, file_write, file_edit, "
                      "list, find, grep, fetch_url, web_search",
                      name);
    goto fail;
  }
  if (!enabled(tools, name)) {
    code = tools_fail(&t, TOOLS_EXIT_REFUSED, "tools",
                      "tool \"%s\" refused by --tools: this runner enables only %s", name, tools);
    goto fail;
  }
  /* Room for a file_write of max_bytes, escaped (\u00XX is 6 bytes). */
  int rc = read_stdin((size_t)t.max_bytes * 6 + 65536, &text, &len);
  if (rc == -EFBIG) {
    code = tools_fail(&t, TOOLS_EXIT_REFUSED, "tool-max-bytes",
                      "the arguments are larger than --tool-max-bytes allows");
    goto fail;
  }
  if (rc < 0) {
    code = tools_fail(&t, TOOLS_EXIT_FAILED, NULL, "cannot read the arguments from stdin: %s",
                      strerror(-rc));
    goto fail;
  }
  json_error_t jerr;
  args = len ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : json_object();
  if (!args || !json_is_object(args)) {
    code = tools_fail(&t, TOOLS_EXIT_USAGE, NULL, "the arguments must be a JSON object%s%s",
                      args ? "" : ": ", args ? "" : jerr.text);
    goto fail;
  }
  for (size_t k = 0; tools_names[k]; k++)
    if (!strcmp(tools_names[k], name)) {
      code = tools_fns[k](&t, args, &out);
      break;
    }
  if (code != TOOLS_EXIT_OK)
    goto fail;
  emit(out);
  goto out;
fail:
  emit_error(&t, name, code);
out:
  json_decref(out);
  json_decref(args);
  free(text);
  free(t.fetch_allow);
  tools_roots_release(&t.roots);
  return code;
}
