/* rpc_int.h - internals shared by the rpc files: connections (conn.c, h2.c),
 * calls (call.c), TLS (tls.c), addresses (addr.c), server and client.
 * Not part of the API (rpc.h): every name here carries the rpc_ / RPC_
 * prefix all the same, so that it can never collide with another module's. */
#ifndef DROVER_RPC_INT_H
#define DROVER_RPC_INT_H

#include "rpc/rpc.h"
#include "rpc/wire.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

/* Backpressure marks. A send above either high mark returns 1; on_writable
 * fires once the call and its connection are both under their low marks.
 * The connection's count only what it could send now (rpc_conn_sendable):
 * not the queue of a stream whose window the peer keeps closed. */
#define RPC_CALL_HIGH_WATER RPC_SEND_HIGH_WATER
#define RPC_CALL_LOW_WATER  (128u * 1024)
#define RPC_CONN_HIGH_WATER (4u * 1024 * 1024)
#define RPC_CONN_LOW_WATER  (1u * 1024 * 1024)
/* Unwritten socket output we let nghttp2 produce ahead of the kernel. */
#define RPC_CONN_OUT_MAX (256u * 1024)
/* Receive windows (call.c, "Flow control"). A stream's is also what a
 * paused reader buffers at most. The connection's is given back as bytes
 * arrive, so it only needs to cover what is in flight on the link; while
 * paused streams buffer more than RPC_CONN_PAUSED_MAX in all, it waits for
 * the readers too. */
#define RPC_CONN_WINDOW        (16 * 1024 * 1024)
#define RPC_STREAM_WINDOW      (2 * 1024 * 1024)
#define RPC_CONN_PAUSED_MAX    (64u * 1024 * 1024)
#define RPC_SERVER_MAX_STREAMS 4096
#define RPC_RBUF_SIZE          (64 * 1024)

struct rpc_conn;

struct rpc_call {
  struct rpc_conn *conn; /* NULL once the connection is gone */
  uv_loop_t *loop;
  struct rpc_call *prev, *next;
  int32_t stream_id; /* 0 when not (or no longer) on a stream */
  unsigned is_server : 1, headers_sent : 1, finished : 1, half_closed : 1, remote_closed : 1,
      stream_closed : 1, done : 1, paused : 1, deferred : 1, want_writable : 1, half_close_told : 1,
      status_set : 1, out_eof : 1, timer_on : 1, started : 1, got_headers : 1, cancelled_by_us : 1,
      deadline_hit : 1, held : 1;
  int refs;
  char *method;
  const ProtobufCMessageDescriptor *desc;
  struct rpc_handlers h;
  void *ud;
  void *data;
  struct rpc_mdlist hdr_in, trl_in, hdr_out, trl_out;
  struct rpc_deframer df;
  struct rpc_buf in;  /* received bytes not yet deframed (while paused) */
  size_t in_owed;     /* of which the connection's window has not had back */
  struct rpc_buf out; /* framed messages not yet taken by nghttp2 */
  int rx_status;      /* client: grpc-status received, -1 none */
  int code;           /* final status */
  char *message;
  int http_status;
  char *content_type; /* request/response content-type as received */
  char *encoding;     /* server: the request's grpc-encoding, if any */
  int64_t deadline;   /* uv_now() ms, 0 = none */
  uv_timer_t timer;
};

struct rpc_conn {
  uv_loop_t *loop;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } io;
  uv_idle_t idle;      /* "flush soon" when output is produced outside a read */
  uv_timer_t ka_timer; /* keepalive: ping interval, then ping timeout */
  uv_timer_t goaway_timer;
  nghttp2_session *ng;
  SSL *ssl;
  BIO *rbio, *wbio;
  unsigned is_server : 1, ready : 1, tls_done : 1, closing : 1, closed : 1, writing : 1,
      idle_on : 1, ping_out : 1, io_init : 1, goaway : 1, dirty : 1, rbuf_shared : 1;
  int busy;                /* depth of our own frames on the stack: defer teardown */
  int handles;             /* open uv handles */
  int err;                 /* why it closed */
  int fail_after_write;    /* close with this error once the last write is done */
  char *rbuf;              /* read buffer, RPC_RBUF_SIZE */
  struct rpc_buf out;      /* bytes for the socket (ciphertext under TLS) */
  struct rpc_buf plain;    /* TLS: plaintext gathered for one SSL_write */
  struct rpc_buf inflight; /* the buffer the current uv_write sends */
  uv_write_t wreq;
  size_t paused_bytes; /* sum of the calls' in buffers (received, not taken) */
  size_t queued;       /* sum of the calls' out buffers */
  size_t queued_held;  /* of which in calls the peer's stream window holds (call->held) */
  int n_want_writable;
  struct rpc_call *calls;
  size_t max_recv_msg;
  unsigned ka_interval, ka_timeout;
  char peer[320];
  char *peer_subject;
  char *authority;
  char *why; /* why it could not be made (client: the addresses tried), or NULL */
  const char *scheme;
  struct rpc_server *srv;                        /* server side: method table, logging */
  struct rpc_conn *prev, *next;                  /* in the server's list */
  void (*on_ready)(struct rpc_conn *, int err);  /* handshake finished */
  void (*on_closed)(struct rpc_conn *, int err); /* all handles closed; then freed */
  void (*on_log)(void *ud, const char *line);
  void *owner;                     /* ud for on_log */
  struct rpc_client *owner_client; /* client side */
};

/* Bytes queued in calls that the connection could send now: a stream the
 * peer paused must not hold back the others. */
static inline size_t rpc_conn_sendable(const struct rpc_conn *c)
{
  return c->queued - c->queued_held;
}

/* conn.c */
struct rpc_conn *rpc_conn_new(uv_loop_t *loop, int is_server, SSL_CTX *tls,
                              const char *server_name);
/* The io handle was uv_*_init'ed: the conn now owns (and closes) it. */
void rpc_conn_attach_io(struct rpc_conn *c);
/* The io handle is connected/accepted: start reading (and TLS). */
int rpc_conn_start(struct rpc_conn *c);
void rpc_conn_ping_acked(struct rpc_conn *c);
/* Sets SIGPIPE to ignored unless the application chose a disposition. */
void rpc_conn_ignore_sigpipe(void);
void rpc_conn_want_flush(struct rpc_conn *c);
/* Tear down: fails every open call with `code`, closes handles. */
void rpc_conn_fail(struct rpc_conn *c, int err, int code);
void rpc_conn_logf(struct rpc_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rpc_conn_goaway(struct rpc_conn *c, int final);

/* h2.c */
int rpc_h2_session_new(struct rpc_conn *c);
/* Feeds plaintext HTTP/2 bytes. Returns 0 or RPC_E_PROTO. */
int rpc_h2_recv(struct rpc_conn *c, const uint8_t *p, size_t n);

/* call.c */
struct rpc_call *rpc_call_new(struct rpc_conn *c, int is_server);
void rpc_call_ref(struct rpc_call *call);
void rpc_call_unref(struct rpc_call *call);
void rpc_call_recv_data(struct rpc_call *call, const uint8_t *p, size_t n);
void rpc_call_remote_end(struct rpc_call *call);
void rpc_call_stream_closed(struct rpc_call *call, uint32_t h2_error);
void rpc_call_conn_lost(struct rpc_call *call, int code);
void rpc_call_set_status(struct rpc_call *call, int code, const char *message);
void rpc_call_start_deadline(struct rpc_call *call, int64_t ms);
void rpc_call_check_writable(struct rpc_call *call);
/* Notes whether the call's queue waits on the peer's stream window (the peer
 * stopped reading that stream) rather than on the connection: such bytes
 * don't count against the connection's marks (rpc_conn_sendable). */
void rpc_call_update_held(struct rpc_call *call);
void rpc_call_fail_local(struct rpc_call *call, int code, const char *message);
nghttp2_data_provider rpc_call_data_provider(struct rpc_call *call);
/* Builds nghttp2 header arrays from a list; values of -bin keys base64. The
 * returned strings live in `keep` (free with rpc_hdrs_release). */
struct rpc_hdrs {
  nghttp2_nv *nv;
  size_t n, cap;
  char **keep;
  size_t nkeep;
};
void rpc_hdrs_add(struct rpc_hdrs *h, const char *k, const char *v);
void rpc_hdrs_add_md(struct rpc_hdrs *h, const struct rpc_mdlist *l);
void rpc_hdrs_release(struct rpc_hdrs *h);
/* Adds a received header to a list (decoding -bin values). */
void rpc_md_add_wire(struct rpc_mdlist *l, const uint8_t *k, size_t kl, const uint8_t *v,
                     size_t vl);

/* server.c */
void rpc_server_dispatch(struct rpc_server *s, struct rpc_call *call);
void rpc_server_call_log(struct rpc_conn *c, const char *what, const struct rpc_call *call);

/* tls.c */
SSL_CTX *rpc_tls_ctx_new(const struct rpc_tls_opts *o, int is_server, char *err, size_t errlen);
/* Steps the handshake; returns 1 when done, 0 when it needs more, <0 error. */
int rpc_tls_handshake(struct rpc_conn *c);
char *rpc_tls_peer_subject(SSL *ssl);
int rpc_tls_setup(struct rpc_conn *c, SSL_CTX *ctx, const char *server_name);
const char *rpc_tls_last_error(void);

/* addr.c: "HOST:PORT", "[V6]:PORT", "unix:PATH". */
struct rpc_addr {
  int is_unix;
  char host[256];
  char port[16];
  char path[108];
};
int rpc_addr_parse(const char *s, struct rpc_addr *a);
void rpc_addr_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
