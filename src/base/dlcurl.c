/* dlcurl.c - libcurl loaded with dlopen (see dlcurl.h). */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/dlcurl.h"
#include "base/util.h"

struct dlcurl_api dlcurl;

static char load_error[256];

const char *dlcurl_error(void)
{
  return load_error;
}

/* Loads the library and every symbol once. Returns 0 or -1 (load_error). */
static int load(void)
{
  static const struct {
    const char *name;
    size_t off;
  } syms[] = {
#define SYM(f) {"curl_" #f, offsetof(struct dlcurl_api, f)}
      SYM(global_init),
      SYM(global_cleanup),
      SYM(easy_init),
      SYM(easy_setopt),
      SYM(easy_perform),
      SYM(easy_getinfo),
      SYM(easy_cleanup),
      SYM(easy_strerror),
      SYM(easy_escape),
      SYM(easy_pause),
      SYM(free),
      SYM(url),
      SYM(url_set),
      SYM(url_get),
      SYM(url_cleanup),
      SYM(multi_init),
      SYM(multi_cleanup),
      SYM(multi_add_handle),
      SYM(multi_remove_handle),
      SYM(multi_setopt),
      SYM(multi_assign),
      SYM(multi_socket_action),
      SYM(multi_info_read),
      SYM(slist_append),
      SYM(slist_free_all),
#undef SYM
  };
  static void *h;
  static int failed;
  if (h)
    return 0;
  if (failed)
    return -1;
  h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(load_error, sizeof(load_error),
             "cannot load libcurl (libcurl.so.4, Debian's libcurl4): %s", dlerror());
    failed = 1;
    return -1;
  }
  struct dlcurl_api api;
  for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
    void *f = dlsym(h, syms[i].name);
    if (!f) {
      snprintf(load_error, sizeof(load_error), "libcurl.so.4 lacks %s: it is too old",
               syms[i].name);
      dlclose(h);
      h = NULL;
      failed = 1;
      return -1;
    }
    memcpy((char *)&api + syms[i].off, &f, sizeof f);
  }
  dlcurl = api;
  return 0;
}

CURLcode dlcurl_global_init(long flags)
{
  if (load() < 0)
    return CURLE_FAILED_INIT;
  return dlcurl.global_init(flags);
}
