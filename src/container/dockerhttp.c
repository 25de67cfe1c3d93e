/* dockerhttp.c - Docker Engine API requests on curl's multi interface and a
 * libuv loop (see dockerhttp.h).
 *
 * curl tells us which sockets to watch (socket callback) and when to call it
 * back (timer callback); we call curl_multi_socket_action from the loop's
 * poll and timer callbacks, then collect finished transfers. The poll
 * handles are closed when curl says it is done with a socket, which it does
 * before closing it, so a recycled fd number never meets a stale handle. */
#include "container/dockerhttp.h"
#include "base/curlapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct dockerhttp {
  const struct curlapi *c;
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  char *host;          /* as shown to users */
  char *sock;          /* the socket path */
  int handles;         /* loop handles open (the timer and polls) */
  struct sockw *socks; /* the watched sockets */
  int closing;
  void (*close_cb)(void *);
  void *close_ud;
};

/* One socket curl asked us to watch. */
struct sockw {
  uv_poll_t poll;
  struct dockerhttp *h;
  curl_socket_t fd;
  struct sockw *prev, *next;
};

static void sock_unlink(struct sockw *w)
{
  if (w->prev)
    w->prev->next = w->next;
  else
    w->h->socks = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->prev = w->next = NULL;
}

static void maybe_free(struct dockerhttp *h)
{
  if (!h->closing || h->handles > 0)
    return;
  void (*cb)(void *) = h->close_cb;
  void *ud = h->close_ud;
  h->c->multi_cleanup(h->multi);
  free(h->host);
  free(h->sock);
  free(h);
  if (cb)
    cb(ud);
}

static void on_handle_closed(uv_handle_t *hd)
{
  struct dockerhttp *h;
  if (hd->type == UV_POLL) {
    struct sockw *w = hd->data;
    h = w->h;
    free(w);
  } else {
    h = hd->data;
  }
  h->handles--;
  maybe_free(h);
}

/* Hands finished transfers to their owners. */
static void collect(struct dockerhttp *h)
{
  CURLMsg *m;
  int left;
  while ((m = h->c->multi_info_read(h->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *easy = m->easy_handle;
    CURLcode cc = m->data.result;
    struct dockerhttp_req *r = NULL;
    long status = 0;
    h->c->easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    h->c->easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    h->c->multi_remove_handle(h->multi, easy);
    h->c->easy_cleanup(easy);
    h->c->slist_free_all(r->hdrs);
    r->easy = r->hdrs = NULL;
    long oserr = 0;
    h->c->easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
    char msg[384];
    const char *err = NULL;
    if (r->truncated) {
      snprintf(msg, sizeof msg, "the Docker engine at '%s' answered more than %u bytes", h->host,
               DOCKERHTTP_MAX_BODY);
      err = msg;
      status = 0;
    } else if (cc == CURLE_COULDNT_CONNECT) {
      /* curl's own text names "docker port 80", the URL's dummy host. */
      snprintf(msg, sizeof msg, "cannot connect to the Docker engine at '%s': %s", h->host,
               oserr ? strerror((int)oserr) : h->c->easy_strerror(cc));
      err = msg;
      status = 0;
    } else if (cc != CURLE_OK) {
      snprintf(msg, sizeof msg, "the Docker engine at '%s': %s", h->host,
               r->errbuf[0] ? r->errbuf : h->c->easy_strerror(cc));
      err = msg;
      status = 0;
    }
    char *body = r->body;
    size_t len = r->len;
    r->body = NULL;
    r->len = r->cap = 0;
    r->h = NULL;
    r->on_done(r, err, status, body ? body : "", body ? len : 0);
    free(body);
  }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
  struct sockw *w = p->data;
  struct dockerhttp *h = w->h;
  int flags = 0, running;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  h->c->multi_socket_action(h->multi, w->fd, flags, &running);
  collect(h);
}

static void on_timer(uv_timer_t *t)
{
  struct dockerhttp *h = t->data;
  int running;
  h->c->multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  collect(h);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
  struct dockerhttp *h = userp;
  struct sockw *w = socketp;

  if (what == CURL_POLL_REMOVE) {
    if (w) {
      h->c->multi_assign(h->multi, fd, NULL);
      sock_unlink(w);
      uv_close((uv_handle_t *)&w->poll, on_handle_closed);
    }
    return 0;
  }
  if (h->closing)
    return 0;
  if (!w) {
    w = xcalloc(1, sizeof *w);
    w->h = h;
    w->fd = fd;
    if (uv_poll_init_socket(h->loop, &w->poll, fd) < 0) {
      free(w);
      return -1;
    }
    w->poll.data = w;
    h->handles++;
    w->next = h->socks;
    if (h->socks)
      h->socks->prev = w;
    h->socks = w;
    h->c->multi_assign(h->multi, fd, w);
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    ev |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    ev |= UV_WRITABLE;
  uv_poll_start(&w->poll, ev, on_poll);
  return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
  struct dockerhttp *h = userp;
  if (h->closing)
    return 0;
  if (timeout_ms < 0)
    uv_timer_stop(&h->timer);
  else /* 0: "as soon as possible", but not from inside this callback */
    uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

int dockerhttp_socket_path(const char *host, char *buf, size_t len)
{
  if (!host || !*host)
    host = getenv("DOCKER_HOST");
  if (!host || !*host)
    host = DOCKERHTTP_DEFAULT_HOST;
  if (!strncmp(host, "unix://", 7))
    host += 7;
  if (host[0] != '/' || strlen(host) >= len || strlen(host) >= 108)
    return -EINVAL;
  snprintf(buf, len, "%s", host);
  return 0;
}

void dockerhttp_host_error(const char *host, char *buf, size_t len)
{
  if (!host || !*host)
    host = getenv("DOCKER_HOST");
  snprintf(buf, len,
           "docker host '%s': this version of drover talks to the Docker engine over a unix "
           "socket only: give one like unix:///var/run/docker.sock",
           host ? host : "");
}

int dockerhttp_new(uv_loop_t *loop, const char *host, struct dockerhttp **out, char *err,
                   size_t errlen)
{
  char path[256];
  if (dockerhttp_socket_path(host, path, sizeof path) < 0) {
    dockerhttp_host_error(host, err, errlen);
    return -EINVAL;
  }
  const struct curlapi *c = curlapi_get(err, errlen);
  if (!c)
    return -ELIBACC;
  struct dockerhttp *h = xcalloc(1, sizeof *h);
  h->c = c;
  h->loop = loop;
  h->multi = c->multi_init();
  if (!h->multi) {
    free(h);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  h->sock = xstrdup(path);
  h->host = xasprintf("unix://%s", path);
  h->c->multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  h->c->multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  h->c->multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  h->c->multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->handles = 1;
  *out = h;
  return 0;
}

const char *dockerhttp_host(const struct dockerhttp *h)
{
  return h->host;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
  struct dockerhttp_req *r = ud;
  size_t len = size * n;
  /* The blank line ends the headers. An engine answering 100 Continue would
   * send two header blocks; no request here sends Expect, so there is one. */
  if (len <= 2 && (data[0] == '\r' || data[0] == '\n') && !r->headers_seen) {
    r->headers_seen = 1;
    if (r->on_headers) {
      long status = 0;
      r->h->c->easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
      r->on_headers(r, status);
    }
  }
  return len;
}

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
  struct dockerhttp_req *r = ud;
  size_t len = size * n;
  if (r->on_body) {
    r->on_body(r, data, len);
    return len;
  }
  if (r->len + len > DOCKERHTTP_MAX_BODY) {
    r->truncated = 1;
    return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
  }
  if (r->len + len + 1 > r->cap) {
    r->cap = (r->len + len + 1) * 2;
    r->body = xrealloc(r->body, r->cap);
  }
  memcpy(r->body + r->len, data, len);
  r->len += len;
  r->body[r->len] = '\0';
  return len;
}

int dockerhttp_request(struct dockerhttp *h, struct dockerhttp_req *r, const char *method,
                       const char *path, const char *json)
{
  CURL *e = h->c->easy_init();
  if (!e)
    return -ENOMEM;
  char *url = xasprintf("http://docker/" DOCKERHTTP_API "%s", path);
  struct curl_slist *hdrs = NULL;
  r->h = h;
  r->easy = e;
  r->body = NULL;
  r->len = r->cap = 0;
  r->headers_seen = r->truncated = 0;
  r->errbuf[0] = '\0';
  h->c->easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, h->sock);
  h->c->easy_setopt(e, CURLOPT_URL, url);
  h->c->easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  h->c->easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  h->c->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  h->c->easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  h->c->easy_setopt(e, CURLOPT_HEADERDATA, r);
  h->c->easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  h->c->easy_setopt(e, CURLOPT_WRITEDATA, r);
  /* A connect to a unix socket is immediate; a dead engine's socket file
   * refuses at once. The limit is for a listener that never accepts. */
  h->c->easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (r->timeout_ms > 0)
    h->c->easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  hdrs = h->c->slist_append(hdrs, "Expect:");
  if (json) {
    hdrs = h->c->slist_append(hdrs, "Content-Type: application/json");
    h->c->easy_setopt(e, CURLOPT_COPYPOSTFIELDS, json);
  } else if (!strcmp(method, "POST")) {
    h->c->easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    h->c->easy_setopt(e, CURLOPT_POSTFIELDS, "");
  }
  if (strcmp(method, "GET") && strcmp(method, "POST"))
    h->c->easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  h->c->easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
  r->hdrs = hdrs;
  free(url);
  if (h->c->multi_add_handle(h->multi, e) != CURLM_OK) {
    h->c->easy_cleanup(e);
    h->c->slist_free_all(hdrs);
    r->easy = r->hdrs = NULL;
    r->h = NULL;
    return -ENOMEM;
  }
  return 0;
}

void dockerhttp_pause(struct dockerhttp_req *r, int paused)
{
  if (r->easy)
    r->h->c->easy_pause(r->easy, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
}

void dockerhttp_abort(struct dockerhttp_req *r)
{
  if (!r->easy)
    return;
  const struct curlapi *c = r->h->c;
  c->multi_remove_handle(r->h->multi, r->easy);
  c->easy_cleanup(r->easy);
  c->slist_free_all(r->hdrs);
  free(r->body);
  r->easy = r->hdrs = NULL;
  r->body = NULL;
  r->len = r->cap = 0;
  r->h = NULL;
}

void dockerhttp_close(struct dockerhttp *h, void (*cb)(void *ud), void *ud)
{
  /* The owner aborted its requests (it holds them). Idle connections in
   * curl's cache may still be watched: those watches are closed here, and
   * curl closes the sockets themselves in curl_multi_cleanup, once the
   * polls are gone (maybe_free). */
  h->closing = 1;
  while (h->socks) {
    struct sockw *w = h->socks;
    h->c->multi_assign(h->multi, w->fd, NULL);
    sock_unlink(w);
    uv_close((uv_handle_t *)&w->poll, on_handle_closed);
  }
  h->close_cb = cb;
  h->close_ud = ud;
  uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
