/* engine.c - the agent's start-up questions to the Docker engine (see
 * engine.h). Blocking curl easy requests: they run once, before the agent
 * takes jobs, so the loop has nothing else to do meanwhile. */
#include "container/engine.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/util.h"
#include "base/curlapi.h"
#include "container/dockerhttp.h"

struct buf {
  char *p;
  size_t len;
};

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
  struct buf *b = ud;
  size_t len = size * n;
  if (b->len + len > DOCKERHTTP_MAX_BODY)
    return 0;
  b->p = xrealloc(b->p, b->len + len + 1);
  memcpy(b->p + b->len, data, len);
  b->len += len;
  b->p[b->len] = '\0';
  return len;
}

/* One request; the status, or -1 without an answer. body (may be NULL)
 * gets the answer's body, which the caller frees. */
static long request(const struct curlapi *c, const char *sock, const char *method, const char *path,
                    long timeout_ms, char **body)
{
  CURL *e = c->easy_init();
  struct buf b = {0};
  long status = -1;
  if (!e)
    return -1;
  char *url = xasprintf("http://docker/" DOCKERHTTP_API "%s", path);
  c->easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, sock);
  c->easy_setopt(e, CURLOPT_URL, url);
  c->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  c->easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  c->easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  c->easy_setopt(e, CURLOPT_WRITEDATA, &b);
  if (strcmp(method, "GET"))
    c->easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (c->easy_perform(e) == CURLE_OK)
    c->easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  c->easy_cleanup(e);
  free(url);
  if (body)
    *body = b.p ? b.p : xstrdup("");
  else
    free(b.p);
  return status;
}

/* The socket path of host when something listens there, else NULL: no
 * socket file means no engine, and no reason to load libcurl. */
static const char *engine_socket(const char *host, char *sock, size_t len)
{
  struct stat st;
  if (dockerhttp_socket_path(host, sock, len) < 0 || stat(sock, &st) < 0 || !S_ISSOCK(st.st_mode))
    return NULL;
  return sock;
}

int container_engine_ping(const char *host, long timeout_ms)
{
  char sock[256];
  const struct curlapi *c;
  if (!engine_socket(host, sock, sizeof sock) || !(c = curlapi_get(NULL, 0)))
    return -1;
  return request(c, sock, "GET", "/_ping", timeout_ms, NULL) == 200 ? 0 : -1;
}

int container_engine_reap(const char *host, const char *node, long timeout_ms)
{
  char sock[256];
  char *body = NULL;
  const struct curlapi *c;
  if (!node || !*node || !engine_socket(host, sock, sizeof sock) || !(c = curlapi_get(NULL, 0)))
    return -1;
  /* filters={"label":["drover.agent=NODE"]}, percent-encoded. */
  json_t *f = json_pack("{s:[s+]}", "label", "drover.agent=", node);
  char *fj = json_dumps(f, JSON_COMPACT);
  json_decref(f);
  char *esc = c->easy_escape(NULL, fj, 0);
  char *path = xasprintf("/containers/json?all=1&filters=%s", esc);
  c->free(esc);
  free(fj);
  long st = request(c, sock, "GET", path, timeout_ms, &body);
  free(path);
  if (st != 200) {
    free(body);
    return -1;
  }
  json_t *list = json_loads(body, 0, NULL);
  free(body);
  int n = 0;
  size_t i;
  json_t *ctr;
  json_array_foreach(list, i, ctr)
  {
    const char *id = json_string_value(json_object_get(ctr, "Id"));
    const char *job =
        json_string_value(json_object_get(json_object_get(ctr, "Labels"), "drover.job"));
    if (!id || strspn(id, "0123456789abcdef") != strlen(id))
      continue;
    char *del = xasprintf("/containers/%s?force=1&v=1", id);
    long ds = request(c, sock, "DELETE", del, timeout_ms, NULL);
    free(del);
    if (ds == 204 || ds == 404) {
      n++;
      log_info("removed a container left by a previous life of this agent",
               "container=%.12s job=%s", id, job ? job : "-");
    } else {
      log_warn("cannot remove a container left by a previous life of this agent",
               "container=%.12s job=%s status=%ld", id, job ? job : "-", ds);
    }
  }
  json_decref(list);
  return n;
}
