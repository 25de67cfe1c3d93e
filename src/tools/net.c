/* net.c - the network tools: fetch_url (an allowed host, GET, size and time
 * bounds) and web_search (a SearXNG-compatible JSON endpoint named by the
 * runner's --search-url). libcurl, easy interface: tool-exec is a process of
 * its own, so blocking here blocks nothing else.
 *
 * libcurl is loaded with dlopen when one of these tools runs, not linked
 * (base/curlapi.h says why). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/curlapi.h"
#include "base/jsonstr.h"
#include "base/util.h"
#include "tools/tools.h"

/* libcurl, loaded by load_curl (base/curlapi.h). */
static const struct curlapi *api;

/* Returns 0, or TOOLS_EXIT_FAILED with t->err saying what is missing. */
static int load_curl(struct tools_ctx *t)
{
  char why[256];
  if (api)
    return 0;
  if (!(api = curlapi_get(why, sizeof why)))
    return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "the network tools need libcurl: %s", why);
  return 0;
}

/* web_search: at most this many results unless the caller asks for fewer. */
#define SEARCH_MAX_RESULTS     50
#define SEARCH_DEFAULT_RESULTS 10

struct fetch {
  char *body;
  size_t len, max;
  int truncated;
  json_t *headers;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
  struct fetch *f = ud;
  size_t len = size * n, take = len;
  if (f->len + take > f->max) {
    take = f->max - f->len;
    f->truncated = 1;
  }
  memcpy(f->body + f->len, p, take);
  f->len += take;
  /* Past the bound the transfer stops here (CURLE_WRITE_ERROR, expected). */
  return take == len ? len : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
  struct fetch *f = ud;
  size_t len = size * n;
  if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
    json_object_clear(f->headers); /* a new response (after 100 Continue) */
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon || colon == p)
    return len;
  char *name = xstrndup(p, (size_t)(colon - p));
  for (char *c = name; *c; c++)
    *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
  const char *v = colon + 1, *end = p + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  char *val = xstrndup(v, (size_t)(end - v));
  json_t *old = json_object_get(f->headers, name);
  if (old) {
    char *joined = xasprintf("%s, %s", json_string_value(old), val);
    json_object_set_new(f->headers, name, jsonstr_new(joined));
    free(joined);
  } else {
    json_object_set_new(f->headers, name, jsonstr_new(val));
  }
  free(name);
  free(val);
  return len;
}

/* host is allowed by an entry: the same name (case aside), or an entry
 * ".example.com" / "*.example.com" and host below it. */
static int host_allowed(const struct tools_ctx *t, const char *host)
{
  size_t hl = strlen(host);
  for (size_t i = 0; i < t->nfetch_allow; i++) {
    const char *a = t->fetch_allow[i];
    if (!strcasecmp(a, host))
      return 1;
    if (a[0] == '*' && a[1] == '.')
      a++;
    size_t al = strlen(a);
    if (a[0] == '.' && hl > al && !strcasecmp(host + hl - al, a))
      return 1;
  }
  return 0;
}

/* GETs the URL in u: 0 with *status and f filled, or a TOOLS_EXIT_* code. */
static int do_fetch(struct tools_ctx *t, CURLU *u, struct fetch *f, long *status)
{
  char errbuf[CURL_ERROR_SIZE] = "";
  CURL *c = api->easy_init();
  if (!c)
    return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "cannot start libcurl");
  f->body = xmalloc(f->max + 1);
  f->headers = json_object();
  api->easy_setopt(c, CURLOPT_CURLU, u);
  api->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  /* A redirect is returned, not followed: its target may be a host the
   * policy does not allow. */
  api->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  api->easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)TOOLS_FETCH_TIMEOUT_MS);
  api->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  api->easy_setopt(c, CURLOPT_USERAGENT, "drover/" DROVER_VERSION);
  api->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  api->easy_setopt(c, CURLOPT_WRITEDATA, f);
  api->easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  api->easy_setopt(c, CURLOPT_HEADERDATA, f);
  api->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = api->easy_perform(c);
  if (rc == CURLE_WRITE_ERROR && f->truncated)
    rc = CURLE_OK;
  api->easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  api->easy_cleanup(c);
  if (rc != CURLE_OK)
    return tools_fail(t, TOOLS_EXIT_FAILED, NULL, "fetch failed: %s",
                      *errbuf ? errbuf : api->easy_strerror(rc));
  return 0;
}

static void fetch_release(struct fetch *f)
{
  free(f->body);
  json_decref(f->headers);
}

/* Parses url into *u and checks its scheme and host against the policy;
 * the search endpoint (trusted: the runner's own setting) skips the host
 * check. */
static int parse_url(struct tools_ctx *t, const char *url, int check_host, CURLU **u)
{
  char *scheme = NULL, *host = NULL;
  int rc = 0;
  *u = api->url();
  if (api->url_set(*u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      api->url_get(*u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
    rc = tools_fail(t, TOOLS_EXIT_USAGE, NULL,
                    "\"url\" '%.200s' is not a URL like https://host/path", url);
  } else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
    rc = tools_fail(t, TOOLS_EXIT_REFUSED, "fetch-allow",
                    "url '%.200s' refused: only http and https are fetched", url);
  } else if (api->url_get(*u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    rc = tools_fail(t, TOOLS_EXIT_USAGE, NULL, "\"url\" '%.200s' has no host", url);
  } else if (check_host && !host_allowed(t, host)) {
    rc = tools_fail(t, TOOLS_EXIT_REFUSED, "fetch-allow",
                    "host '%s' refused by --fetch-allow: the runner allows %s%s", host,
                    t->nfetch_allow ? "only its --fetch-allow hosts" : "no host",
                    t->nfetch_allow ? "" : " (start it with --fetch-allow HOST)");
  }
  api->free(scheme);
  api->free(host);
  if (rc) {
    api->url_cleanup(*u);
    *u = NULL;
  }
  return rc;
}

int tools_fetch_url(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"url", "max_bytes", NULL};
  const char *url = NULL;
  uint64_t max = t->max_bytes;
  struct fetch f = {0};
  long status = 0;
  CURLU *u;
  int rc;

  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "url", 1, &url, NULL)) ||
      (rc = tools_arg_uint(t, args, "max_bytes", &max)))
    return rc;
  if ((rc = load_curl(t)) || (rc = parse_url(t, url, 1, &u)))
    return rc;
  /* A larger max_bytes than the policy's is cut to it: the body then says
   * "truncated", as for any body past the bound. */
  f.max = max < t->max_bytes ? (size_t)max : (size_t)t->max_bytes;
  rc = do_fetch(t, u, &f, &status);
  if (rc == 0) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_integer(status));
    json_object_set(o, "headers", f.headers);
    tools_set_bytes(o, "body", f.body, f.len);
    json_object_set_new(o, "truncated", json_boolean(f.truncated));
    *out = o;
  }
  fetch_release(&f);
  api->url_cleanup(u);
  return rc;
}

/* The result fields kept from a SearXNG result. */
static const char *const result_fields[] = {"title", "url", "content", "engine", "publishedDate"};

int tools_web_search(struct tools_ctx *t, json_t *args, json_t **out)
{
  static const char *const known[] = {"query", "max_results", NULL};
  const char *query = NULL;
  uint64_t maxr = SEARCH_DEFAULT_RESULTS;
  struct fetch f = {0};
  long status = 0;
  CURLU *u;
  int rc;

  if ((rc = tools_args_only(t, args, known)) ||
      (rc = tools_arg_str(t, args, "query", 1, &query, NULL)) ||
      (rc = tools_arg_uint(t, args, "max_results", &maxr)))
    return rc;
  if (!t->search_url)
    return tools_fail(t, TOOLS_EXIT_REFUSED, "search-url",
                      "web_search is not configured: start the runner with --search-url URL (a "
                      "SearXNG-compatible JSON endpoint, e.g. http://127.0.0.1:8888/search)");
  if (maxr > SEARCH_MAX_RESULTS)
    maxr = SEARCH_MAX_RESULTS;
  if ((rc = load_curl(t)) || (rc = parse_url(t, t->search_url, 0, &u)))
    return rc;
  char *q = xasprintf("q=%s", query);
  api->url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE);
  api->url_set(u, CURLUPART_QUERY, "format=json", CURLU_APPENDQUERY);
  free(q);
  f.max = (size_t)t->max_bytes;
  rc = do_fetch(t, u, &f, &status);
  json_t *doc = NULL;
  if (rc == 0 && status != 200)
    rc = tools_fail(t, TOOLS_EXIT_FAILED, NULL, "the search endpoint answered HTTP %ld", status);
  if (rc == 0 && f.truncated)
    rc = tools_fail(t, TOOLS_EXIT_FAILED, NULL,
                    "the search endpoint's answer is larger than --tool-max-bytes");
  if (rc == 0) {
    doc = json_loadb(f.body, f.len, 0, NULL);
    if (!json_is_array(json_object_get(doc, "results")))
      rc = tools_fail(t, TOOLS_EXIT_FAILED, NULL,
                      "the search endpoint did not answer SearXNG JSON (an object with "
                      "\"results\"): is --search-url its /search URL?");
  }
  if (rc == 0) {
    json_t *res = json_array(), *r;
    size_t i;
    json_array_foreach(json_object_get(doc, "results"), i, r)
    {
      if (i >= maxr)
        break;
      json_t *o = json_object();
      for (size_t k = 0; k < ARRAY_SIZE(result_fields); k++) {
        json_t *v = json_object_get(r, result_fields[k]);
        if (json_is_string(v))
          json_object_set(o, result_fields[k], v);
      }
      json_array_append_new(res, o);
    }
    *out = json_pack("{s:s,s:o}", "query", query, "results", res);
  }
  json_decref(doc);
  fetch_release(&f);
  api->url_cleanup(u);
  return rc;
}
