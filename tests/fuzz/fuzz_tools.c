/* fuzz_tools.c - libFuzzer target: a tool call's arguments (what an AI agent
 * or any client sends) on arbitrary bytes. The first byte picks the tool (its
 * high bit: the walk without openat2), the rest is its JSON arguments, run
 * against a small tree: a root, a write root inside it, links that lead out,
 * a loop and a FIFO, and a folder outside with a secret. The oracle: no call
 * ever returns the secret, and the file outside is never changed. The secret
 * is random per process; libFuzzer still learns it from the comparisons, so
 * an input that holds it is skipped, and the write root is emptied before
 * every input (no secret assembled there by appends over several inputs).
 * grep's two searches (through a required literal, over whole files) must
 * find the same lines. */
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "tools/tools.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[64];
static char secret[64];
static struct tools_ctx ctx;

static void put(const char *rel, const char *text)
{
  char *p = xasprintf("%s/%s", base, rel);
  FILE *f = fopen(p, "w");
  if (!f)
    abort();
  fputs(text, f);
  fclose(f);
  free(p);
}

static void link_to(const char *target, const char *rel)
{
  char *p = xasprintf("%s/%s", base, rel);
  if (symlink(target, p) < 0)
    abort();
  free(p);
}

static void setup(void)
{
  char err[256], *p;
  snprintf(base, sizeof base, "/tmp/drover-fuzz-tools-XXXXXX");
  if (!mkdtemp(base))
    abort();
  static const char *const dirs[] = {"root", "root/w", "root/sub", "out"};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
    p = xasprintf("%s/%s", base, dirs[i]);
    mkdir(p, 0755);
    free(p);
  }
  unsigned char r[12];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, r, sizeof r) != (ssize_t)sizeof r)
    abort();
  close(fd);
  size_t n = (size_t)snprintf(secret, sizeof secret, "secret-");
  for (size_t i = 0; i < sizeof r; i++)
    n += (size_t)snprintf(secret + n, sizeof secret - n, "%02x", r[i]);
  p = xasprintf("%s\n", secret);
  put("out/secret", p);
  free(p);
  put("root/a.txt", "alpha\nbeta\n");
  put("root/sub/b.c", "int b; // TODO\n");
  put("root/sub/text.txt", "the colour and the color\nxxyz a.b aab\nabababc\n\nerror_123 occurred\n"
                           "int x;\n  int y;\nfoo bar\nzztop zzzztop\n1,3yz\n\tTAB\r\n");
  put("root/w/e.txt", "one two two\n");
  p = xasprintf("%s/out/secret", base);
  link_to(p, "root/abs");
  free(p);
  link_to("../out/secret", "root/rel");
  link_to("../../out", "root/sub/up");
  link_to("loop", "root/loop");
  p = xasprintf("%s/root/fifo", base);
  mkfifo(p, 0644);
  free(p);
  tools_roots_init(&ctx.roots);
  p = xasprintf("%s/root", base);
  if (tools_roots_add(&ctx.roots, p, 0, err, sizeof err) < 0)
    abort();
  free(p);
  p = xasprintf("%s/root/w", base);
  if (tools_roots_add(&ctx.roots, p, 1, err, sizeof err) < 0)
    abort();
  free(p);
  ctx.max_bytes = 4096;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
  if (f->level > 0)
    remove(path);
  return 0;
}

static void reset_write_root(void)
{
  char *p = xasprintf("%s/root/w", base);
  nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(p);
  put("root/w/e.txt", "one two two\n");
}

static const tools_fn fns[] = {tools_file_read, tools_list,      tools_find,
                               tools_grep,      tools_file_edit, tools_file_write};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!base[0])
    setup();
  if (size < 1)
    return 0;
  json_t *args = json_loadb((const char *)data + 1, size - 1, 0, NULL);
  char *in = args ? json_dumps(args, JSON_COMPACT) : NULL;
  int holds = in && strstr(in, secret);
  free(in);
  if (!json_is_object(args) || holds) {
    json_decref(args);
    return 0;
  }
  reset_write_root();
  json_t *out = NULL;
  ctx.err[0] = '\0';
  ctx.rule = NULL;
  ctx.roots.no_openat2 = data[0] >> 7; /* the fallback walk too */
  int rc = fns[(data[0] & 0x7f) % ARRAY_SIZE(fns)](&ctx, args, &out);
  if (rc == 0) {
    char *text = json_dumps(out, JSON_COMPACT);
    if (!text || strstr(text, secret))
      abort();
    free(text);
  }
  if (strstr(ctx.err, secret))
    abort();
  /* grep: the search through a required literal finds what the search over
   * whole files finds (DROVER_GREP_NO_LITERAL turns the first off). */
  if (fns[(data[0] & 0x7f) % ARRAY_SIZE(fns)] == tools_grep && rc == 0) {
    json_t *plain = NULL;
    setenv("DROVER_GREP_NO_LITERAL", "1", 1);
    int rc2 = tools_grep(&ctx, args, &plain);
    unsetenv("DROVER_GREP_NO_LITERAL");
    if (rc2 == 0 && !json_equal(out, plain))
      abort();
    json_decref(plain);
  }
  json_decref(out);
  json_decref(args);
  /* Nothing outside the roots was written. */
  char *p = xasprintf("%s/out/secret", base), *text;
  size_t len;
  if (read_file(p, &text, &len) < 0 || strncmp(text, secret, strlen(secret)) != 0 ||
      strcmp(text + strlen(secret), "\n") != 0)
    abort();
  free(text);
  free(p);
  return 0;
}
