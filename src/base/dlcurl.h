/* dlcurl.h - libcurl loaded at run time with dlopen, not linked.
 *
 * Linked, libcurl brings some 30 shared libraries (GnuTLS, Kerberos, LDAP,
 * ...) that the dynamic loader maps at every start of drover: `drover run`
 * took ~7 ms longer to start on the reference VM. Only container jobs and
 * the network tools need it, so it is loaded the first time one of them
 * calls curl_global_init.
 *
 * Include this instead of <curl/curl.h>. The curl_* functions drover uses
 * become calls through a table of pointers; curl_global_init loads the
 * library (once) and returns CURLE_FAILED_INIT when it cannot, with the
 * reason in dlcurl_error(). Nothing else may be called before a
 * curl_global_init that returned CURLE_OK. */
#ifndef DROVER_BASE_DLCURL_H
#define DROVER_BASE_DLCURL_H

#include <curl/curl.h>

struct dlcurl_api {
  CURLcode (*global_init)(long flags);
  void (*global_cleanup)(void);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
  CURLcode (*easy_perform)(CURL *c);
  CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
  void (*easy_cleanup)(CURL *c);
  const char *(*easy_strerror)(CURLcode rc);
  char *(*easy_escape)(CURL *c, const char *s, int len);
  CURLcode (*easy_pause)(CURL *c, int bitmask);
  void (*free)(void *p);
  CURLU *(*url)(void);
  CURLUcode (*url_set)(CURLU *u, CURLUPart part, const char *content, unsigned int flags);
  CURLUcode (*url_get)(const CURLU *u, CURLUPart part, char **out, unsigned int flags);
  void (*url_cleanup)(CURLU *u);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_cleanup)(CURLM *m);
  CURLMcode (*multi_add_handle)(CURLM *m, CURL *c);
  CURLMcode (*multi_remove_handle)(CURLM *m, CURL *c);
  CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
  CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *p);
  CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev_bitmask, int *running);
  CURLMsg *(*multi_info_read)(CURLM *m, int *msgs_in_queue);
  struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
  void (*slist_free_all)(struct curl_slist *l);
};

extern struct dlcurl_api dlcurl;

/* Loads libcurl.so.4 (once; it stays loaded), then runs its
 * curl_global_init(flags). CURLE_FAILED_INIT when it cannot be loaded. */
CURLcode dlcurl_global_init(long flags);
/* Why the last load failed ("" when it did not). */
const char *dlcurl_error(void);

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init         dlcurl_global_init
#define curl_global_cleanup      dlcurl.global_cleanup
#define curl_easy_init           dlcurl.easy_init
#define curl_easy_setopt         dlcurl.easy_setopt
#define curl_easy_perform        dlcurl.easy_perform
#define curl_easy_getinfo        dlcurl.easy_getinfo
#define curl_easy_cleanup        dlcurl.easy_cleanup
#define curl_easy_strerror       dlcurl.easy_strerror
#define curl_easy_escape         dlcurl.easy_escape
#define curl_easy_pause          dlcurl.easy_pause
#define curl_free                dlcurl.free
#define curl_url                 dlcurl.url
#define curl_url_set             dlcurl.url_set
#define curl_url_get             dlcurl.url_get
#define curl_url_cleanup         dlcurl.url_cleanup
#define curl_multi_init          dlcurl.multi_init
#define curl_multi_cleanup       dlcurl.multi_cleanup
#define curl_multi_add_handle    dlcurl.multi_add_handle
#define curl_multi_remove_handle dlcurl.multi_remove_handle
#define curl_multi_setopt        dlcurl.multi_setopt
#define curl_multi_assign        dlcurl.multi_assign
#define curl_multi_socket_action dlcurl.multi_socket_action
#define curl_multi_info_read     dlcurl.multi_info_read
#define curl_slist_append        dlcurl.slist_append
#define curl_slist_free_all      dlcurl.slist_free_all

#endif
