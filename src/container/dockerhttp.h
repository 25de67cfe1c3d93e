/* dockerhttp.h - HTTP requests to the Docker Engine API over its unix
 * socket, with libcurl's multi interface driven by a libuv loop (sockets
 * watched with uv_poll, curl's timeouts on a uv_timer). Nothing blocks the
 * loop.
 *
 * One struct dockerhttp per user (a container job): it owns the curl multi
 * handle and the loop handles; requests are structs the caller embeds and
 * keeps alive until their on_done, or until dockerhttp_abort. */
#ifndef DROVER_CONTAINER_DOCKERHTTP_H
#define DROVER_CONTAINER_DOCKERHTTP_H

#include <stddef.h>
#include <uv.h>

/* The API version drover speaks: Docker 20.10 (Debian 12's docker.io) and
 * every later engine serve it. */
#define DOCKERHTTP_API          "v1.41"
#define DOCKERHTTP_DEFAULT_HOST "unix:///var/run/docker.sock"
/* Buffered bodies (JSON replies) past this are cut and the request fails. */
#define DOCKERHTTP_MAX_BODY (1u << 20)

struct dockerhttp;
struct dockerhttp_req;

struct dockerhttp_req {
  /* Set by the caller before dockerhttp_request. */
  /* The status line and headers are in (status: 200, 404, ...). May be NULL. */
  void (*on_headers)(struct dockerhttp_req *r, long status);
  /* Body bytes as they come; NULL: the body is gathered and given to
   * on_done (at most DOCKERHTTP_MAX_BODY bytes). */
  void (*on_body)(struct dockerhttp_req *r, const char *data, size_t len);
  /* The request is over. err is 0, or a message for a user when there was no
   * complete HTTP answer ("cannot connect to ..."), then status is 0. body
   * (NUL-terminated, len bytes) is the gathered body when on_body is NULL,
   * else "". Called from the loop, never from within dockerhttp_request. The
   * request may be reused or freed during the call. */
  void (*on_done)(struct dockerhttp_req *r, const char *err, long status, const char *body,
                  size_t len);
  void *ud;
  /* The whole request's time limit; 0: none (a stream: attach, wait, pull). */
  long timeout_ms;

  /* dockerhttp's own */
  struct dockerhttp *h;
  void *easy;
  void *hdrs;
  char *body;
  size_t len, cap;
  int headers_seen, truncated;
  char errbuf[256];
};

/* A client for the engine at host: "unix:///path/docker.sock" or a plain
 * absolute path; NULL or "": $DOCKER_HOST, else DOCKERHTTP_DEFAULT_HOST.
 * Loads libcurl the first time (base/curlapi.h). Returns 0, or with a message
 * for a user in err: -EINVAL for a host that is not a unix socket (tcp://
 * is not supported by this version), -ELIBACC when libcurl cannot be
 * loaded, -ENOMEM. */
int dockerhttp_new(uv_loop_t *loop, const char *host, struct dockerhttp **out, char *err,
                   size_t errlen);
/* The socket path that host (as for dockerhttp_new) names, in buf; 0 or -EINVAL. */
int dockerhttp_socket_path(const char *host, char *buf, size_t len);
/* A message for a user about a host dockerhttp_new refused. */
void dockerhttp_host_error(const char *host, char *buf, size_t len);
/* Sends method (GET, POST, DELETE) to path (after the API version:
 * "/containers/create?name=x"), with json as the body when not NULL. r's
 * callbacks are set by the caller. Returns 0 (then on_done comes exactly
 * once, unless dockerhttp_abort), or -ENOMEM. */
int dockerhttp_request(struct dockerhttp *h, struct dockerhttp_req *r, const char *method,
                       const char *path, const char *json);
/* Stops reading (paused != 0) or reads again a request's body. */
void dockerhttp_pause(struct dockerhttp_req *r, int paused);
/* Ends a request early; its on_done is not called. Safe on a request that is
 * not running. */
void dockerhttp_abort(struct dockerhttp_req *r);
/* Aborts what is left and frees h once its loop handles are closed; cb (may
 * be NULL) is called then. */
void dockerhttp_close(struct dockerhttp *h, void (*cb)(void *ud), void *ud);
/* The host this client talks to, as given to the user ("unix:///..."). */
const char *dockerhttp_host(const struct dockerhttp *h);

#endif
