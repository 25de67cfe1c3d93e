/* curlapi.h - libcurl, loaded (dlopen) the first time a container job, an
 * agent's engine check or a network tool (fetch_url, web_search) needs it,
 * not linked into drover.
 *
 * Why: libcurl brings some 25 shared libraries (TLS, SSH, LDAP, Kerberos,
 * IDN, compressors), and the dynamic loader's work for them made every
 * drover command start about 8 ms slower on the reference VM, `drover run`
 * of a plain process included (bench/bench_run.sh). Loaded on demand, only
 * what talks to a Docker engine or fetches a URL pays for it, once per process.
 *
 * The headers are the system's (libcurl4-openssl-dev); the library is its
 * SONAME, libcurl.so.4. Call through the table: api->easy_setopt(...). */
#ifndef DROVER_BASE_CURLAPI_H
#define DROVER_BASE_CURLAPI_H

#include <curl/curl.h>
#include <stddef.h>

struct curlapi {
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
  CURLMcode (*multi_cleanup)(CURLM *m);
  CURLMcode (*multi_assign)(CURLM *m, curl_socket_t fd, void *p);
  CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t fd, int ev, int *running);
  CURLMsg *(*multi_info_read)(CURLM *m, int *left);
  CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
  CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
  CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
  void (*easy_cleanup)(CURL *e);
  CURLcode (*easy_perform)(CURL *e);
  const char *(*easy_strerror)(CURLcode c);
  CURLcode (*easy_pause)(CURL *e, int bitmask);
  char *(*easy_escape)(CURL *e, const char *s, int len);
  void (*free)(void *p);
  struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
  void (*slist_free_all)(struct curl_slist *l);
  CURLU *(*url)(void);
  CURLUcode (*url_set)(CURLU *u, CURLUPart part, const char *content, unsigned int flags);
  CURLUcode (*url_get)(const CURLU *u, CURLUPart part, char **out, unsigned int flags);
  void (*url_cleanup)(CURLU *u);
};

/* The loaded library, initialised (curl_global_init), or NULL with the
 * reason for a user in err ("cannot load libcurl: ..."). The first
 * call loads it; call from the loop's thread (curl_global_init is not
 * thread-safe), as everything in src/container does (a tool runs in a
 * process of its own). */
const struct curlapi *curlapi_get(char *err, size_t errlen);

#endif
