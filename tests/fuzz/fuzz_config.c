/* fuzz_config.c - libFuzzer target: a YAML config file of arbitrary bytes
 * loaded through cfg_load. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct opts {
  struct cfg_common common;
  char *name;
  int flag;
  long n;
  uint64_t d, s;
  struct cfg_list list;
};

static const struct cfg_opt table[] = {
    CFG_COMMON_OPTS(struct opts),
    {"name", 0, CFG_STRING, offsetof(struct opts, name), "x", NULL, 0, 0, "S", ""},
    {"flag", 0, CFG_BOOL, offsetof(struct opts, flag), NULL, NULL, 0, 0, NULL, ""},
    {"n", 0, CFG_INT, offsetof(struct opts, n), "1", NULL, 1, 100, "N", ""},
    {"d", 0, CFG_DURATION, offsetof(struct opts, d), "1s", NULL, 0, 0, "D", ""},
    {"s", 0, CFG_SIZE, offsetof(struct opts, s), "1K", NULL, 0, 0, "S", ""},
    {"list", 0, CFG_LIST, offsetof(struct opts, list), NULL, NULL, 0, 0, "V", ""},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char path[64];
  struct opts o;
  struct cfg_result res;
  char *argv[] = {"agent", "--config", path, NULL}, *env[] = {NULL};

  if (!path[0])
    snprintf(path, sizeof path, "/tmp/drover-fuzz-config-%d.yaml", (int)getpid());
  if (write_file_atomic(path, data, size) < 0)
    return 0;
  if (cfg_load("agent", table, ARRAY_SIZE(table), &o, 3, argv, env, &res) == 0)
    cfg_release(table, ARRAY_SIZE(table), &o, &res);
  return 0;
}
