/* test_config.c - flag > env > file > default, and every bad-value message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/util.h"

struct opts {
  struct cfg_common common;
  char *name;
  int verbose;
  long slots;
  uint64_t timeout;
  uint64_t mem;
  char *mode;
  struct cfg_list labels;
  uint64_t shutdown_timeout;
};

/* Indexes into the table below, for res.source[]. */
enum { O_LEVEL, O_FORMAT, O_NAME, O_VERBOSE, O_SLOTS, O_TIMEOUT, O_MEM, O_MODE, O_LABELS, O_SHUT };

static const struct cfg_opt table[] = {
    CFG_COMMON_OPTS(struct opts),
    {"name", 0, CFG_STRING, offsetof(struct opts, name), "node", NULL, 0, 0, "NAME", "node name"},
    {"verbose", 'v', CFG_BOOL, offsetof(struct opts, verbose), NULL, NULL, 0, 0, NULL, "chatty"},
    {"slots", 'n', CFG_INT, offsetof(struct opts, slots), "4", NULL, 1, 1024, "N", "job slots"},
    {"timeout", 't', CFG_DURATION, offsetof(struct opts, timeout), "30s", NULL, 0, 0, "D",
     "job timeout"},
    {"mem", 0, CFG_SIZE, offsetof(struct opts, mem), "64M", NULL, 0, 0, "SIZE", "memory"},
    {"mode", 0, CFG_ENUM, offsetof(struct opts, mode), "safe", "fast|safe", 0, 0, "MODE", "mode"},
    {"label", 'l', CFG_LIST, offsetof(struct opts, labels), NULL, NULL, 0, 0, "K=V", "a label"},
    {"shutdown-timeout", 0, CFG_DURATION, offsetof(struct opts, shutdown_timeout), "10s", NULL, 0,
     0, "D", "drain bound"},
};
#define NOPTS (sizeof table / sizeof *table)

static char dir[64];

static int setup(void **state)
{
  strcpy(dir, "/tmp/drover-test-cfg-XXXXXX");
  assert_non_null(mkdtemp(dir));
  return 0;
}

static int teardown(void **state)
{
  char *cmd = xasprintf("rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(cmd);
  return 0;
}

static char *yaml_file(const char *text)
{
  char *path = xasprintf("%s/drover.yaml", dir);
  assert_int_equal(write_file_atomic(path, text, strlen(text)), 0);
  return path;
}

/* Loads with argv (NULL-terminated, argv[0] "agent") and env; returns rc. */
static int load(struct opts *o, struct cfg_result *res, char **argv, char **env)
{
  int argc = 0;
  while (argv[argc])
    argc++;
  memset(o, 0xa5, sizeof *o); /* cfg_load must not trust what is there */
  return cfg_load("agent", table, NOPTS, o, argc, argv, env, res);
}

static void test_config_defaults(void **state)
{
  struct opts o;
  struct cfg_result res;
  char *argv[] = {"agent", "rest", NULL}, *env[] = {NULL};

  assert_int_equal(load(&o, &res, argv, env), 0);
  assert_string_equal(o.name, "node");
  assert_int_equal(o.verbose, 0);
  assert_int_equal(o.slots, 4);
  assert_int_equal(o.timeout, 30000);
  assert_int_equal(o.mem, 64u << 20);
  assert_string_equal(o.mode, "safe");
  assert_int_equal(o.labels.n, 0);
  assert_string_equal(o.common.log_level, "info");
  assert_null(res.config_path);
  assert_int_equal(res.argi, 1);
  assert_int_equal(res.source[O_SLOTS], CFG_SRC_DEFAULT);
  cfg_release(table, NOPTS, &o, &res);
}

static void test_config_precedence(void **state)
{
  struct opts o;
  struct cfg_result res;
  char *path = yaml_file("# drover config\n"
                         "slots: 8\n"
                         "timeout: 1m\n"
                         "mode: fast\n"
                         "name: top\n"
                         "mem: 1G\n"
                         "shutdown_timeout: 5s\n"
                         "label: [a=1, b=2]\n"
                         "agent:\n"
                         "  name: section\n"
                         "server:\n"
                         "  whatever: 1\n");
  char *cfg_env = xasprintf("DROVER_CONFIG=%s", path);
  char *argv[] = {"agent", "--slots", "32", "-l", "c=3", "-v", "--", "--slots", NULL};
  char *env[] = {cfg_env, "DROVER_SLOTS=16", "DROVER_TIMEOUT=2m", "DROVER_MEM=2G", "OTHER=1", NULL};

  assert_int_equal(load(&o, &res, argv, env), 0);
  assert_int_equal(o.slots, 32); /* flag over env over file */
  assert_int_equal(res.source[O_SLOTS], CFG_SRC_FLAG);
  assert_int_equal(o.timeout, 120000); /* env over file */
  assert_int_equal(res.source[O_TIMEOUT], CFG_SRC_ENV);
  assert_int_equal(o.mem, 2ull << 30);
  assert_string_equal(o.mode, "fast"); /* file over default */
  assert_int_equal(res.source[O_MODE], CFG_SRC_FILE);
  assert_string_equal(o.name, "section"); /* the command's section over the top level */
  assert_int_equal(o.shutdown_timeout, 5000);
  assert_int_equal(o.labels.n, 1); /* a flag replaces the file's list */
  assert_string_equal(o.labels.items[0], "c=3");
  assert_int_equal(o.verbose, 1);
  assert_int_equal(res.source[O_LEVEL], CFG_SRC_DEFAULT);
  assert_string_equal(res.config_path, path);
  assert_int_equal(res.argi, 7); /* "--" consumed, "--slots" after it is an argument */
  cfg_release(table, NOPTS, &o, &res);

  /* --config wins over DROVER_CONFIG; the file's list and env's list. */
  char *path2 = xasprintf("%s/other.yaml", dir);
  assert_int_equal(write_file_atomic(path2, "slots: 9\nlabel: [x]\n", 20), 0);
  char *argv2[] = {"agent", "--config", path2, "run", "--slots", "1", NULL};
  char *env2[] = {cfg_env, NULL};
  assert_int_equal(load(&o, &res, argv2, env2), 0);
  assert_int_equal(o.slots, 9);
  assert_int_equal(o.labels.n, 1);
  assert_string_equal(o.labels.items[0], "x");
  assert_int_equal(res.argi, 3); /* stops at the first non-option */
  cfg_release(table, NOPTS, &o, &res);

  char *argv3[] = {"agent", "-l", "p", "--label=q", "-n5", "--verbose=false", NULL};
  char *env3[] = {"DROVER_LABEL= a , b,,c", NULL};
  assert_int_equal(load(&o, &res, argv3, env3), 0);
  assert_int_equal(o.labels.n, 2);
  assert_string_equal(o.labels.items[1], "q");
  assert_int_equal(o.slots, 5);
  assert_int_equal(o.verbose, 0);
  cfg_release(table, NOPTS, &o, &res);
  char *argv4[] = {"agent", NULL};
  assert_int_equal(load(&o, &res, argv4, env3), 0);
  assert_int_equal(o.labels.n, 3);
  assert_string_equal(o.labels.items[0], "a");
  assert_string_equal(o.labels.items[2], "c");
  cfg_release(table, NOPTS, &o, &res);

  free(path2);
  free(cfg_env);
  free(path);
}

static void expect_error(char **argv, char **env, const char *msg)
{
  struct opts o;
  struct cfg_result res;
  int rc = load(&o, &res, argv, env);
  if (rc != -1)
    fail_msg("no error for %s %s; wanted: %s", argv[1], env[0] ? env[0] : "", msg);
  assert_string_equal(res.err, msg);
  assert_null(res.config_path);
  cfg_release(table, NOPTS, &o, &res); /* harmless after a failure */
}

static void test_config_bad_values(void **state)
{
  char *noenv[] = {NULL};
  char *a1[] = {"agent", "--timeout", "abc", NULL};
  expect_error(a1, noenv, "--timeout \"abc\": must be a duration like 500ms, 30s, 5m or 1h");
  char *e2[] = {"DROVER_SLOTS=x", NULL}, *a0[] = {"agent", NULL};
  expect_error(a0, e2, "DROVER_SLOTS \"x\": must be a whole number from 1 to 1024");
  char *a3[] = {"agent", "-n", "0", NULL};
  expect_error(a3, noenv, "--slots \"0\": must be a whole number from 1 to 1024");
  char *e4[] = {"DROVER_MEM=lots", NULL};
  expect_error(a0, e4, "DROVER_MEM \"lots\": must be a size like 4096, 64K, 128M or 2G");
  char *a5[] = {"agent", "--mode", "slow", NULL};
  expect_error(a5, noenv, "--mode \"slow\": must be one of fast, safe");
  char *a6[] = {"agent", "--verbose=maybe", NULL};
  expect_error(a6, noenv, "--verbose \"maybe\": must be true or false");
  char *e7[] = {"DROVER_SHUTDOWN_TIMEOUT=-1s", NULL};
  expect_error(a0, e7,
               "DROVER_SHUTDOWN_TIMEOUT \"-1s\": must be a duration like 500ms, 30s, 5m or 1h");
  char *a8[] = {"agent", "--slot", "3", NULL};
  expect_error(a8, noenv, "unknown option \"--slot\" (did you mean \"--slots\"?)");
  char *a11[] = {"agent", "--nope=1", NULL};
  expect_error(a11, noenv, "unknown option \"--nope=1\": 'drover agent --help' lists the options");
  char *a9[] = {"agent", "-x", NULL};
  expect_error(a9, noenv, "unknown option \"-x\": 'drover agent --help' lists the options");
  char *a10[] = {"agent", "--timeout", NULL};
  expect_error(a10, noenv, "option \"--timeout\" needs a value");
}

static void test_config_file_errors(void **state)
{
  char *path = yaml_file("slots: 2\n\nlog-level: loud\n");
  char *argv[] = {"agent", "--config", path, NULL}, *env[] = {NULL}, *want;

  want = xasprintf("config file '%s': line 3: \"log-level\" \"loud\": must be one of debug, info, "
                   "warn, error",
                   path);
  expect_error(argv, env, want);
  free(want);

  free(yaml_file("slots: 2\nslotz: 3\n"));
  want =
      xasprintf("config file '%s': line 2: unknown key \"slotz\" (did you mean \"slots\"?)", path);
  expect_error(argv, env, want);
  free(want);

  free(yaml_file("agent:\n  colour: blue\n"));
  want = xasprintf("config file '%s': line 2: unknown key \"colour\": 'drover agent --help' lists "
                   "the options",
                   path);
  expect_error(argv, env, want);
  free(want);

  free(yaml_file("slots: [1, 2]\n"));
  want = xasprintf("config file '%s': line 1: \"slots\" must be a single value", path);
  expect_error(argv, env, want);
  free(want);

  free(yaml_file("slots: 2\n  bad: [\n"));
  want =
      xasprintf("config file '%s': line 2: mapping values are not allowed in this context", path);
  expect_error(argv, env, want);
  free(want);

  unlink(path);
  want = xasprintf("config file '%s': No such file or directory", path);
  expect_error(argv, env, want);
  free(want);
  free(path);
}

static void test_config_help_usage_and_logging(void **state)
{
  char *h1[] = {"agent", "-n", "3", "--help"}, *h2[] = {"agent", "--", "--help"};
  /* After the first non-option word, --help belongs to the command run. */
  char *h3[] = {"agent", "ls", "--help"}, *h4[] = {"agent", "--name=x", "-h"};
  /* "--name --help": --help is the value of --name, not a request for help. */
  char *h5[] = {"agent", "--name", "--help"}, *h6[] = {"agent", "--config", "f.yaml", "-h"};
  char *h7[] = {"agent", "-v", "--help"}; /* a flag without a value */
  char buf[4096];
  int p[2], saved;
  ssize_t n;

  assert_true(cfg_wants_help(table, NOPTS, 4, h1));
  assert_false(cfg_wants_help(table, NOPTS, 3, h2));
  assert_false(cfg_wants_help(table, NOPTS, 3, h3));
  assert_true(cfg_wants_help(table, NOPTS, 3, h4));
  assert_false(cfg_wants_help(table, NOPTS, 3, h5));
  assert_true(cfg_wants_help(table, NOPTS, 4, h6));
  assert_true(cfg_wants_help(table, NOPTS, 3, h7));

  assert_int_equal(pipe(p), 0);
  fflush(stdout);
  saved = dup(1);
  dup2(p[1], 1);
  cfg_usage(stdout, "agent", "[DIR]", "run jobs on this node", table, NOPTS);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  close(p[1]);
  n = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_non_null(strstr(buf, "usage: drover agent [options] [DIR]\n"));
  assert_non_null(strstr(buf, "-t, --timeout D"));
  assert_non_null(strstr(buf, "default: 30s; env DROVER_TIMEOUT\n"));
  assert_non_null(strstr(buf, "env DROVER_SHUTDOWN_TIMEOUT"));
  assert_non_null(strstr(buf, "--config FILE"));

  struct opts o;
  struct cfg_result res;
  char *argv[] = {"agent", "--log-level", "debug", NULL}, *env[] = {"DROVER_LOG_FORMAT=json", NULL};
  assert_int_equal(load(&o, &res, argv, env), 0);
  cfg_common_apply(&o.common);
  assert_true(log_enabled(LOG_DEBUG));
  cfg_release(table, NOPTS, &o, &res);
  log_setup(LOG_INFO, LOG_TEXT);
}

int main(int argc, char **argv)
{
  /* argv[1]: run only the cases matching this pattern, e.g. "test_exec_timeout*" */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_defaults),
      cmocka_unit_test(test_config_precedence),
      cmocka_unit_test(test_config_bad_values),
      cmocka_unit_test(test_config_file_errors),
      cmocka_unit_test(test_config_help_usage_and_logging),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
