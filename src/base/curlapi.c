/* curlapi.c - libcurl loaded on first use (see curlapi.h). */
#include "base/curlapi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* One table per process, filled once: like the library itself, it is
 * process-wide, and nothing in it changes after the load. */
static struct curlapi api;
static int loaded;    /* 1: api is usable */
static char why[256]; /* the load's failure, for every later call */

#define SYM(field, name)                                                                           \
  do {                                                                                             \
    *(void **)&api.field = dlsym(h, name);                                                         \
    if (!api.field) {                                                                              \
      snprintf(why, sizeof why, "cannot load libcurl: '%s' has no %s", lib, name);                 \
      return -1;                                                                                   \
    }                                                                                              \
  } while (0)

static int load(void)
{
  static const char lib[] = "libcurl.so.4";
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(why, sizeof why, "cannot load libcurl: %s (apt-get install libcurl4)", dlerror());
    return -1;
  }
  CURLcode (*global_init)(long) = NULL;
  *(void **)&global_init = dlsym(h, "curl_global_init");
  if (!global_init) {
    snprintf(why, sizeof why, "cannot load libcurl: '%s' has no curl_global_init", lib);
    return -1;
  }
  SYM(multi_init, "curl_multi_init");
  SYM(multi_setopt, "curl_multi_setopt");
  SYM(multi_cleanup, "curl_multi_cleanup");
  SYM(multi_assign, "curl_multi_assign");
  SYM(multi_socket_action, "curl_multi_socket_action");
  SYM(multi_info_read, "curl_multi_info_read");
  SYM(multi_add_handle, "curl_multi_add_handle");
  SYM(multi_remove_handle, "curl_multi_remove_handle");
  SYM(easy_init, "curl_easy_init");
  SYM(easy_setopt, "curl_easy_setopt");
  SYM(easy_getinfo, "curl_easy_getinfo");
  SYM(easy_cleanup, "curl_easy_cleanup");
  SYM(easy_perform, "curl_easy_perform");
  SYM(easy_strerror, "curl_easy_strerror");
  SYM(easy_pause, "curl_easy_pause");
  SYM(easy_escape, "curl_easy_escape");
  SYM(free, "curl_free");
  SYM(slist_append, "curl_slist_append");
  SYM(slist_free_all, "curl_slist_free_all");
  SYM(url, "curl_url");
  SYM(url_set, "curl_url_set");
  SYM(url_get, "curl_url_get");
  SYM(url_cleanup, "curl_url_cleanup");
  /* The library stays loaded for the life of the process: handles and
   * the global state refer to it. */
  if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(why, sizeof why, "cannot load libcurl: curl_global_init failed");
    return -1;
  }
  return 0;
}

const struct curlapi *curlapi_get(char *err, size_t errlen)
{
  if (!loaded && !why[0] && load() == 0)
    loaded = 1;
  if (loaded)
    return &api;
  if (err && errlen)
    snprintf(err, errlen, "%s", why);
  return NULL;
}
