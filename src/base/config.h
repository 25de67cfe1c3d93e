/* config.h - command options with one precedence everywhere:
 *   command-line flag > DROVER_* environment variable > YAML file > default.
 *
 * A command describes its options in a table of struct cfg_opt. The key is the
 * flag name ("shutdown-timeout"); the environment variable is DROVER_ plus the
 * key upper-cased with '-' as '_' (DROVER_SHUTDOWN_TIMEOUT); the YAML key is
 * the key with '-' or '_' (shutdown-timeout: 30s or shutdown_timeout: 30s).
 * The YAML file is named by --config FILE or DROVER_CONFIG; only top-level
 * keys that the table knows are read; an unknown key is an error that names
 * it (the YAML file may hold a section per command: a top-level mapping named
 * after the command, e.g. "agent:", is read as well, and wins over the top
 * level).
 *
 * Every bad value is an error that names the key, where it came from, the
 * value and what is allowed:
 *   error: --timeout "abc": must be a duration like 500ms, 30s, 5m or 1h
 *   error: DROVER_SLOTS "x": must be a whole number from 1 to 1024
 *   error: config file 'drover.yaml': line 3: "log-level" "loud": must be one of debug, info, warn,
 * error
 */
#ifndef DROVER_BASE_CONFIG_H
#define DROVER_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
  CFG_STRING,   /* char *            (heap, cfg_release frees)          */
  CFG_BOOL,     /* int 0/1; flag without value sets 1; env/yaml: true/false/1/0/yes/no */
  CFG_INT,      /* long, within [min, max]                               */
  CFG_DURATION, /* uint64_t milliseconds                                 */
  CFG_SIZE,     /* uint64_t bytes                                        */
  CFG_ENUM,     /* char * that must be one of choices "a|b|c"            */
  CFG_LIST,     /* struct cfg_list: repeatable flag; env/yaml: comma list / sequence */
};

struct cfg_list {
  char **items;
  size_t n;
};

struct cfg_opt {
  const char *key; /* flag name without "--" */
  char short_name; /* 0 for none */
  enum cfg_type type;
  size_t offset;       /* offsetof(target struct, field) */
  const char *def;     /* default as text, NULL for none */
  const char *choices; /* CFG_ENUM: "text|json" */
  long min, max;       /* CFG_INT bounds */
  const char *metavar; /* "D", "N", "DIR" in usage */
  const char *help;
};

/* Where each option's value came from, for messages and tests. */
enum cfg_source { CFG_SRC_DEFAULT, CFG_SRC_FILE, CFG_SRC_ENV, CFG_SRC_FLAG };

#define CFG_MAX_TRACKED 64
struct cfg_result {
  int argi;          /* index of the first non-option argument ("--" consumed) */
  char *config_path; /* the YAML file read, or NULL */
  char err[512];     /* the message on failure (no "error: " prefix) */
  enum cfg_source source[CFG_MAX_TRACKED]; /* per option index (the first 64), on success */
};

/* Options every command has. A command's option struct embeds
 * struct cfg_common and puts CFG_COMMON_OPTS(its type) in its table; --config
 * FILE is always recognised by cfg_load itself. */
struct cfg_common {
  char *log_level;  /* debug|info|warn|error */
  char *log_format; /* text|json */
};
#define CFG_COMMON_OPTS(type)                                                                      \
  {"log-level", 0, CFG_ENUM, offsetof(type, common.log_level), "info", "debug|info|warn|error",    \
   0,           0, "LEVEL",  "least severe message to log"},                                       \
  {                                                                                                \
    "log-format", 0, CFG_ENUM, offsetof(type, common.log_format), "text", "text|json", 0, 0,       \
        "FORMAT", "log as text or one JSON object per line"                                        \
  }
/* Sets up logging from the common options. */
void cfg_common_apply(const struct cfg_common *c);

/* Loads every option of `opts` (n entries) into `target`, for the command
 * `cmd` ("agent", "run"; used for the YAML section). `argv[0]` is the command
 * name; options stop at "--" or the first non-option argument (so
 * `drover run -- cmd --flag` works). "--help"/"-h" is not handled here: the
 * caller checks for it first with cfg_wants_help().
 * `env` is the environment to read (NULL: environ), so tests can pass their own.
 * Returns 0, or -1 with res->err filled; on failure target is released. */
int cfg_load(const char *cmd, const struct cfg_opt *opts, size_t n, void *target, int argc,
             char **argv, char **env, struct cfg_result *res);
/* Frees what cfg_load stored in target (strings, lists) and res. */
void cfg_release(const struct cfg_opt *opts, size_t n, void *target, struct cfg_result *res);
/* 1 when the options of argv hold -h or --help. Like cfg_load it stops at
 * "--" or the first non-option argument, and skips the value of an option of
 * the table that takes one ("--timeout 5s"), so `drover run ls --help` runs
 * `ls --help` rather than printing drover's usage. */
int cfg_wants_help(const struct cfg_opt *opts, size_t n, int argc, char **argv);
/* Prints "usage: drover CMD [options] ARGS" and one line per option with its
 * default and environment variable, to out (stdout for --help, stderr after
 * a usage error). */
void cfg_usage(FILE *out, const char *cmd, const char *args, const char *summary,
               const struct cfg_opt *opts, size_t n);

#endif
