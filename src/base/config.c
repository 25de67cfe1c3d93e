/* config.c - options from flags, DROVER_* environment, a YAML file, defaults. */
#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/log.h"
#include "base/units.h"
#include "base/util.h"

extern char **environ;

struct loader {
  const char *cmd;
  const struct cfg_opt *opts;
  size_t n;
  void *target;
  struct cfg_result *res;
  char **env;
  /* lists set by a flag: the first flag replaces what lower layers gave,
   * later ones append */
  unsigned char *flag_seen;
};

static void *field(const struct loader *l, size_t i)
{
  return (char *)l->target + l->opts[i].offset;
}

static void env_name(const char *key, char *buf, size_t len)
{
  size_t o = (size_t)snprintf(buf, len, "DROVER_");
  for (; *key && o + 1 < len; key++)
    buf[o++] = *key == '-' ? '_' : (char)toupper((unsigned char)*key);
  buf[o < len ? o : len - 1] = '\0';
}

static const char *env_get(char **env, const char *name)
{
  size_t nl = strlen(name);
  for (char **e = env ? env : environ; e && *e; e++)
    if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=')
      return *e + nl + 1;
  return NULL;
}

/* What a type allows, for error messages. */
static void allowed(const struct cfg_opt *o, char *buf, size_t len)
{
  switch (o->type) {
  case CFG_BOOL:
    snprintf(buf, len, "must be true or false");
    break;
  case CFG_INT:
    snprintf(buf, len, "must be a whole number from %ld to %ld", o->min, o->max);
    break;
  case CFG_DURATION:
    snprintf(buf, len, "must be a duration like 500ms, 30s, 5m or 1h");
    break;
  case CFG_SIZE:
    snprintf(buf, len, "must be a size like 4096, 64K, 128M or 2G");
    break;
  case CFG_ENUM: {
    size_t o2 = (size_t)snprintf(buf, len, "must be one of ");
    for (const char *c = o->choices; *c && o2 + 3 < len; c++) {
      if (*c == '|') {
        buf[o2++] = ',';
        buf[o2++] = ' ';
      } else {
        buf[o2++] = *c;
      }
    }
    buf[o2] = '\0';
    break;
  }
  default:
    snprintf(buf, len, "must be text");
    break;
  }
}

static int parse_bool(const char *s, int *out)
{
  static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no",
                                                                              "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

static int enum_has(const char *choices, const char *s)
{
  size_t n = strlen(s);
  for (const char *c = choices; c && *c;) {
    const char *e = strchr(c, '|');
    size_t k = e ? (size_t)(e - c) : strlen(c);
    if (k == n && strncmp(c, s, n) == 0)
      return 1;
    c = e ? e + 1 : c + k;
  }
  return 0;
}

static void list_clear(struct cfg_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->n = 0;
}

static void list_add(struct cfg_list *l, const char *s, size_t len)
{
  while (len && isspace((unsigned char)*s)) {
    s++;
    len--;
  }
  while (len && isspace((unsigned char)s[len - 1]))
    len--;
  if (!len)
    return;
  l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
  l->items[l->n++] = xstrndup(s, len);
}

/* Sets option i from text. `replace_list` clears a list first; a list value
 * is split at commas. Returns 0, or -1 with the "must be..." reason in why. */
static int set_value(struct loader *l, size_t i, const char *s, int replace_list, char *why,
                     size_t wlen)
{
  const struct cfg_opt *o = &l->opts[i];
  void *f = field(l, i);
  char *end;

  switch (o->type) {
  case CFG_STRING:
  case CFG_ENUM:
    if (o->type == CFG_ENUM && !enum_has(o->choices, s))
      goto bad;
    free(*(char **)f);
    *(char **)f = xstrdup(s);
    return 0;
  case CFG_BOOL:
    if (parse_bool(s, (int *)f) < 0)
      goto bad;
    return 0;
  case CFG_INT: {
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || isspace((unsigned char)*s) || v < o->min || v > o->max)
      goto bad;
    *(long *)f = v;
    return 0;
  }
  case CFG_DURATION:
    if (units_parse_duration(s, (uint64_t *)f) < 0)
      goto bad;
    return 0;
  case CFG_SIZE:
    if (units_parse_size(s, (uint64_t *)f) < 0)
      goto bad;
    return 0;
  case CFG_LIST: {
    struct cfg_list *lst = f;
    if (replace_list)
      list_clear(lst);
    for (const char *c = s;;) {
      const char *e = strchr(c, ',');
      list_add(lst, c, e ? (size_t)(e - c) : strlen(c));
      if (!e)
        break;
      c = e + 1;
    }
    return 0;
  }
  }
bad:
  allowed(o, why, wlen);
  return -1;
}

/* ---- YAML -------------------------------------------------------------- */

/* The option a YAML key names ('_' and '-' are the same), or -1. */
static long find_key(const struct loader *l, const char *key)
{
  for (size_t i = 0; i < l->n; i++) {
    const char *a = l->opts[i].key, *b = key;
    while (*a && (*a == *b || (*a == '-' && *b == '_'))) {
      a++;
      b++;
    }
    if (!*a && !*b)
      return (long)i;
  }
  return -1;
}

static int file_err(struct loader *l, const yaml_node_t *at, const char *fmt, const char *a,
                    const char *b, const char *c)
{
  int k = snprintf(l->res->err, sizeof l->res->err, "config file '%s': ", l->res->config_path);
  if (at && k >= 0 && (size_t)k < sizeof l->res->err)
    k += snprintf(l->res->err + k, sizeof l->res->err - (size_t)k,
                  "line %lu: ", (unsigned long)at->start_mark.line + 1);
  if (k >= 0 && (size_t)k < sizeof l->res->err)
    snprintf(l->res->err + k, sizeof l->res->err - (size_t)k, fmt, a, b, c);
  return -1;
}

static int yaml_option(struct loader *l, yaml_document_t *doc, size_t i, yaml_node_t *v)
{
  char why[256];
  const char *key = l->opts[i].key;

  if (v->type == YAML_SEQUENCE_NODE && l->opts[i].type == CFG_LIST) {
    list_clear(field(l, i));
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
      yaml_node_t *e = yaml_document_get_node(doc, *it);
      if (!e || e->type != YAML_SCALAR_NODE)
        return file_err(l, e ? e : v, "\"%s\" must be a list of values%s%s", key, "", "");
      set_value(l, i, (const char *)e->data.scalar.value, 0, why, sizeof why);
    }
    if (i < CFG_MAX_TRACKED)
      l->res->source[i] = CFG_SRC_FILE;
    return 0;
  }
  if (v->type != YAML_SCALAR_NODE)
    return file_err(l, v, "\"%s\" must be a single value%s%s", key,
                    l->opts[i].type == CFG_LIST ? " or a list" : "", "");
  if (set_value(l, i, (const char *)v->data.scalar.value, 1, why, sizeof why) < 0)
    return file_err(l, v, "\"%s\" \"%.100s\": %s", key, (const char *)v->data.scalar.value, why);
  if (i < CFG_MAX_TRACKED)
    l->res->source[i] = CFG_SRC_FILE;
  return 0;
}

/* Reads one mapping: the top level (top = 1) or the command's section. */
static int yaml_mapping(struct loader *l, yaml_document_t *doc, yaml_node_t *map, int top)
{
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    yaml_node_t *v = yaml_document_get_node(doc, p->value);
    const char *key;
    long i;
    if (!k || !v || k->type != YAML_SCALAR_NODE)
      return file_err(l, k, "keys must be plain names%s%s%s", "", "", "");
    key = (const char *)k->data.scalar.value;
    i = find_key(l, key);
    if (i >= 0) {
      if (yaml_option(l, doc, (size_t)i, v) < 0)
        return -1;
      continue;
    }
    /* A mapping at the top level is a section for some command: ours is read
     * after the top level; others belong to other commands. */
    if (top && v->type == YAML_MAPPING_NODE)
      continue;
    const char *best = NULL;
    for (size_t o = 0; o < l->n; o++)
      if (edit_distance(key, l->opts[o].key) <= 2)
        best = l->opts[o].key;
    if (best)
      return file_err(l, k, "unknown key \"%s\" (did you mean \"%s\"?)%s", key, best, "");
    return file_err(l, k, "unknown key \"%s\": 'drover %s --help' lists the options%s", key, l->cmd,
                    "");
  }
  return 0;
}

static int load_yaml(struct loader *l)
{
  yaml_parser_t parser;
  yaml_document_t doc;
  yaml_node_t *root;
  char *text;
  size_t len;
  int rc = read_file(l->res->config_path, &text, &len);

  if (rc < 0)
    return file_err(l, NULL, "%s%s%s", strerror(-rc), "", "");
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    char line[32];
    snprintf(line, sizeof line, "%lu", (unsigned long)parser.problem_mark.line + 1);
    file_err(l, NULL, "line %s: %s%s", line, parser.problem ? parser.problem : "invalid YAML", "");
    yaml_parser_delete(&parser);
    free(text);
    return -1;
  }
  rc = 0;
  root = yaml_document_get_root_node(&doc);
  if (root && root->type == YAML_MAPPING_NODE) {
    rc = yaml_mapping(l, &doc, root, 1);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++) {
      yaml_node_t *k = yaml_document_get_node(&doc, p->key);
      yaml_node_t *v = yaml_document_get_node(&doc, p->value);
      if (k && v && k->type == YAML_SCALAR_NODE && v->type == YAML_MAPPING_NODE &&
          strcmp((const char *)k->data.scalar.value, l->cmd) == 0)
        rc = yaml_mapping(l, &doc, v, 0);
    }
  } else if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
    rc = file_err(l, root, "must be a mapping of option names to values%s%s%s", "", "", "");
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  free(text);
  return rc;
}

/* ---- flags ------------------------------------------------------------- */

struct flag_val {
  size_t opt;
  char *val;
};

void cfg_release(const struct cfg_opt *opts, size_t n, void *target, struct cfg_result *res)
{
  for (size_t i = 0; target && i < n; i++) {
    void *f = (char *)target + opts[i].offset;
    if (opts[i].type == CFG_STRING || opts[i].type == CFG_ENUM) {
      free(*(char **)f);
      *(char **)f = NULL;
    } else if (opts[i].type == CFG_LIST) {
      list_clear(f);
    }
  }
  if (res) {
    free(res->config_path);
    res->config_path = NULL;
  }
}

static int flag_err(struct loader *l, const char *fmt, const char *a, const char *b)
{
  snprintf(l->res->err, sizeof l->res->err, fmt, a, b);
  return -1;
}

int cfg_load(const char *cmd, const struct cfg_opt *opts, size_t n, void *target, int argc,
             char **argv, char **env, struct cfg_result *res)
{
  struct loader l = {cmd, opts, n, target, res, env, NULL};
  struct option *lo = xcalloc(n + 2, sizeof *lo);
  struct flag_val *flags = xcalloc((size_t)argc + 1, sizeof *flags);
  size_t nflags = 0, so = 0;
  char *shorts = xmalloc(3 * n + 4), why[256], name[160];
  const char *cfg_path = NULL;
  int c, rc = -1;

  memset(res, 0, sizeof *res);
  /* Every field starts empty, so a layer can free what a lower one set. */
  for (size_t i = 0; i < n; i++) {
    void *f = field(&l, i);
    switch (opts[i].type) {
    case CFG_STRING:
    case CFG_ENUM:
      *(char **)f = NULL;
      break;
    case CFG_BOOL:
      *(int *)f = 0;
      break;
    case CFG_INT:
      *(long *)f = 0;
      break;
    case CFG_DURATION:
    case CFG_SIZE:
      *(uint64_t *)f = 0;
      break;
    case CFG_LIST:
      memset(f, 0, sizeof(struct cfg_list));
      break;
    }
  }
  for (size_t i = 0; i < CFG_MAX_TRACKED; i++)
    res->source[i] = CFG_SRC_DEFAULT;
  /* "+": stop at the first non-option, so `drover run cmd --flag` leaves
   * --flag to cmd. ":": report a missing value ourselves. */
  shorts[so++] = '+';
  shorts[so++] = ':';
  for (size_t i = 0; i < n; i++) {
    lo[i].name = opts[i].key;
    lo[i].has_arg = opts[i].type == CFG_BOOL ? optional_argument : required_argument;
    lo[i].val = 256 + (int)i;
    if (opts[i].short_name) {
      shorts[so++] = opts[i].short_name;
      if (opts[i].type != CFG_BOOL)
        shorts[so++] = ':';
    }
  }
  shorts[so] = '\0';
  lo[n].name = "config";
  lo[n].has_arg = required_argument;
  lo[n].val = 256 + (int)n;

  optind = 0; /* GNU: full reset, cfg_load may run more than once */
  opterr = 0;
  for (;;) {
    size_t i = n + 1;
    int li = -1;
    if ((c = getopt_long(argc, argv, shorts, lo, &li)) == -1)
      break;
    if (li >= 0 && c != '?' && c != ':') {
      /* getopt_long takes any unambiguous prefix ("--slot" for "--slots");
       * scripts written that way break when an option is added, so only
       * whole names count. */
      const char *t = argv[optind - 1];
      size_t kl = strlen(lo[li].name);
      if (optarg && optarg == argv[optind - 1] && optind >= 2 &&
          strncmp(argv[optind - 2], "--", 2) == 0)
        t = argv[optind - 2];
      if (strncmp(t + 2, lo[li].name, kl) != 0 || (t[2 + kl] != '\0' && t[2 + kl] != '=')) {
        char shown[64];
        snprintf(shown, sizeof shown, "%.*s", (int)strcspn(t, "="), t);
        snprintf(res->err, sizeof res->err, "unknown option \"%s\" (did you mean \"--%s\"?)", shown,
                 lo[li].name);
        goto out;
      }
    }
    if (c >= 256) {
      i = (size_t)c - 256;
    } else if (c != '?' && c != ':') {
      for (i = 0; i < n && opts[i].short_name != c; i++)
        ;
    }
    if (c == ':') {
      char opt[80];
      if (optopt >= 256 && (size_t)optopt - 256 <= n)
        snprintf(opt, sizeof opt, "--%s", lo[optopt - 256].name);
      else
        snprintf(opt, sizeof opt, "-%c", optopt);
      flag_err(&l, "option \"%s\" needs a value%s", opt, "");
      goto out;
    }
    if (c == '?' || i > n) {
      char opt[3] = {'-', (char)optopt, 0};
      flag_err(&l, "unknown option \"%s\": 'drover %s --help' lists the options",
               optopt ? opt : argv[optind - 1], cmd);
      goto out;
    }
    if (i == n) {
      cfg_path = optarg;
      continue;
    }
    flags[nflags].opt = i;
    flags[nflags].val = optarg ? optarg : (opts[i].type == CFG_BOOL ? "true" : "");
    nflags++;
  }
  res->argi = optind;

  /* Defaults, then the file, then the environment, then flags: each layer
   * overwrites what the one below set. */
  for (size_t i = 0; i < n; i++)
    if (opts[i].def && set_value(&l, i, opts[i].def, 1, why, sizeof why) < 0) {
      flag_err(&l, "default of \"%s\": %s", opts[i].key, why);
      goto out;
    }
  if (!cfg_path)
    cfg_path = env_get(env, "DROVER_CONFIG");
  if (cfg_path && *cfg_path) {
    res->config_path = xstrdup(cfg_path);
    if (load_yaml(&l) < 0)
      goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const char *v;
    env_name(opts[i].key, name, sizeof name);
    if (!(v = env_get(env, name)))
      continue;
    if (set_value(&l, i, v, 1, why, sizeof why) < 0) {
      snprintf(res->err, sizeof res->err, "%.150s \"%.100s\": %.250s", name, v, why);
      goto out;
    }
    if (i < CFG_MAX_TRACKED)
      res->source[i] = CFG_SRC_ENV;
  }
  l.flag_seen = xcalloc(n + 1, 1);
  for (size_t k = 0; k < nflags; k++) {
    size_t i = flags[k].opt;
    if (set_value(&l, i, flags[k].val, !l.flag_seen[i], why, sizeof why) < 0) {
      snprintf(res->err, sizeof res->err, "--%s \"%.100s\": %s", opts[i].key, flags[k].val, why);
      goto out;
    }
    l.flag_seen[i] = 1;
    if (i < CFG_MAX_TRACKED)
      res->source[i] = CFG_SRC_FLAG;
  }
  rc = 0;
out:
  if (rc < 0) {
    cfg_release(opts, n, target, NULL);
    free(res->config_path);
    res->config_path = NULL;
  }
  free(l.flag_seen);
  free(lo);
  free(flags);
  free(shorts);
  return rc;
}

/* Whether argument a (an option as written, without "=value") names an
 * option that takes its value from the next argument. */
static int takes_value(const struct cfg_opt *opts, size_t n, const char *a)
{
  if (!strcmp(a, "--config"))
    return 1;
  for (size_t i = 0; i < n; i++) {
    int match = (a[1] == '-' && !strcmp(a + 2, opts[i].key)) ||
                (a[1] != '-' && a[2] == '\0' && opts[i].short_name == a[1]);
    if (match)
      return opts[i].type != CFG_BOOL;
  }
  return 0;
}

int cfg_wants_help(const struct cfg_opt *opts, size_t n, int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--") || a[0] != '-' || a[1] == '\0')
      return 0;
    if (!strcmp(a, "-h") || !strcmp(a, "--help"))
      return 1;
    if (!strchr(a, '=') && takes_value(opts, n, a))
      i++;
  }
  return 0;
}

void cfg_usage(FILE *out, const char *cmd, const char *args, const char *summary,
               const struct cfg_opt *opts, size_t n)
{
  char left[96], name[160];

  fprintf(out, "usage: drover %s [options]%s%s\n", cmd, args && *args ? " " : "", args ? args : "");
  if (summary && *summary)
    fprintf(out, "\n%s\n", summary);
  fprintf(out, "\noptions:\n");
  for (size_t i = 0; i < n; i++) {
    const struct cfg_opt *o = &opts[i];
    const char *mv = o->metavar ? o->metavar : "VALUE";
    if (o->short_name)
      snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->key,
               o->type == CFG_BOOL ? "" : " ", o->type == CFG_BOOL ? "" : mv);
    else
      snprintf(left, sizeof left, "    --%s%s%s", o->key, o->type == CFG_BOOL ? "" : " ",
               o->type == CFG_BOOL ? "" : mv);
    env_name(o->key, name, sizeof name);
    fprintf(out, "  %-28s %s", left, o->help ? o->help : "");
    if (o->type == CFG_ENUM)
      fprintf(out, " (%s)", o->choices);
    if (o->type == CFG_LIST)
      fprintf(out, " (repeatable)");
    fprintf(out, "\n  %-28s ", "");
    if (o->def)
      fprintf(out, "default: %s; ", o->def);
    fprintf(out, "env %s\n", name);
  }
  fprintf(out, "  %-28s %s\n  %-28s env DROVER_CONFIG\n", "    --config FILE",
          "read options from a YAML file", "");
  fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
}

void cfg_common_apply(const struct cfg_common *c)
{
  enum log_level level = LOG_INFO;
  enum log_format format = LOG_TEXT;
  /* cfg_load has checked both against their choices already. */
  if (c->log_level)
    log_level_parse(c->log_level, &level);
  if (c->log_format)
    log_format_parse(c->log_format, &format);
  log_setup(level, format);
}
