/* rpc.h - gRPC over HTTP/2 (nghttp2 + libuv + OpenSSL): servers, clients, calls.
 *
 * Everything runs on one uv_loop_t; no function is thread-safe. Messages are
 * protobuf-c: you send a `const ProtobufCMessage *` (packed at once, the caller
 * keeps ownership) or raw bytes, and receive a `struct rpc_msg` whose bytes (and
 * unpacked message, when a descriptor was given) live only during the callback.
 *
 * One object, `rpc_call`, is a call on either side. Its life:
 *   client: rpc_call_start() ... on_headers, on_message*, on_done
 *   server: on_start ... on_message*, on_half_close, on_done
 * on_done runs exactly once per call, last; the call is freed when it returns,
 * so never use the pointer afterwards. The rpc_call_* functions may be called
 * from any callback, including on_done (read-only there).
 *
 * Errors: functions return 0 or a negative code: -errno from the system or libuv
 * (libuv's UV_E* are -errno) or one of enum rpc_err; rpc_strerror() names both.
 * A function that takes a callback never calls it when it returns an error. */
#ifndef DROVER_RPC_RPC_H
#define DROVER_RPC_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <protobuf-c/protobuf-c.h>

typedef struct rpc_server rpc_server;
typedef struct rpc_client rpc_client;
typedef struct rpc_call rpc_call;

/* gRPC status codes. */
enum rpc_code {
  RPC_OK = 0,
  RPC_CANCELLED = 1,
  RPC_UNKNOWN = 2,
  RPC_INVALID_ARGUMENT = 3,
  RPC_DEADLINE_EXCEEDED = 4,
  RPC_NOT_FOUND = 5,
  RPC_ALREADY_EXISTS = 6,
  RPC_PERMISSION_DENIED = 7,
  RPC_RESOURCE_EXHAUSTED = 8,
  RPC_FAILED_PRECONDITION = 9,
  RPC_ABORTED = 10,
  RPC_OUT_OF_RANGE = 11,
  RPC_UNIMPLEMENTED = 12,
  RPC_INTERNAL = 13,
  RPC_UNAVAILABLE = 14,
  RPC_DATA_LOSS = 15,
  RPC_UNAUTHENTICATED = 16,
};

/* Library errors (negative, below every -errno). */
enum rpc_err {
  RPC_E_INVAL = -5001,      /* bad argument (address, option, key) */
  RPC_E_STATE = -5002,      /* not allowed now: call finished, half-closed, started */
  RPC_E_TOO_LARGE = -5003,  /* a message over the size limit */
  RPC_E_COMPRESSED = -5004, /* a message with the compressed flag: not supported */
  RPC_E_FRAME = -5005,      /* a bad gRPC length prefix or a truncated message */
  RPC_E_PROTO = -5006,      /* HTTP/2 protocol error (nghttp2) */
  RPC_E_TLS = -5007,        /* TLS setup or handshake failure (see the log text) */
  RPC_E_ALPN = -5008,       /* TLS peer did not agree on "h2" */
  RPC_E_CLOSED = -5009,     /* the connection is closed or closing */
  RPC_E_PACK = -5010,       /* a received message did not unpack with its descriptor */
  RPC_E_TIMEOUT = -5011,    /* keepalive or connect timeout */
  RPC_E_QUEUE_FULL = -5012, /* the call's send queue is above RPC_SEND_QUEUE_MAX */
};

/* Send queues: rpc_call_send returns 1 once a call's queue reaches
 * RPC_SEND_HIGH_WATER (stop producing until on_writable); a caller that goes
 * on regardless gets RPC_E_QUEUE_FULL once the queue holds
 * RPC_SEND_QUEUE_MAX bytes, and the message is not queued. */
#define RPC_SEND_HIGH_WATER (512u * 1024)
#define RPC_SEND_QUEUE_MAX  (8 * RPC_SEND_HIGH_WATER)

/* Name of a status code ("OK", "DEADLINE_EXCEEDED"; "UNKNOWN" when out of range). */
const char *rpc_code_name(int code);
/* Text for a negative error of this library, libuv or errno. */
const char *rpc_strerror(int err);

/* ---- metadata ---------------------------------------------------------- */

/* One header. Keys are lowercase ASCII. For keys ending in "-bin" the value is
 * binary (base64 on the wire, encoded and decoded by the library). */
struct rpc_md {
  char *key;
  char *value; /* NUL-terminated for convenience; may hold NULs for -bin keys */
  size_t value_len;
};
struct rpc_mdlist {
  struct rpc_md *v;
  size_t n, cap;
};
void rpc_md_init(struct rpc_mdlist *l);
void rpc_md_release(struct rpc_mdlist *l);
/* Copies key (lowercased) and value. Returns 0 or RPC_E_INVAL for an invalid key
 * (empty, a pseudo-header, characters outside [0-9a-z_.-]). */
int rpc_md_add(struct rpc_mdlist *l, const char *key, const void *value, size_t len);
int rpc_md_adds(struct rpc_mdlist *l, const char *key, const char *value);
/* First entry with this key, or NULL. */
const struct rpc_md *rpc_md_get(const struct rpc_mdlist *l, const char *key);

/* ---- calls ------------------------------------------------------------- */

enum rpc_kind { RPC_UNARY, RPC_SERVER_STREAM, RPC_CLIENT_STREAM, RPC_BIDI };

/* A received message, valid during the on_message callback only. `msg` is
 * set when the method/call has a descriptor; it is freed after the callback
 * unless you take it with rpc_msg_take(). `compressed` is 1 when the peer
 * sent it compressed (grpc-encoding gzip or deflate): `data` is always the
 * inflated message. */
struct rpc_msg {
  const uint8_t *data;
  size_t len;
  ProtobufCMessage *msg;
  int compressed;
};
/* Takes ownership of m->msg (free it with protobuf_c_message_free_unpacked). */
ProtobufCMessage *rpc_msg_take(struct rpc_msg *m);

/* Final status of a call: code and message (NULL when none). */
struct rpc_status {
  int code;
  const char *message;
};

/* Callbacks of a call; any may be NULL. `ud` is the server's or the call's
 * user data (rpc_call_opts.ud / rpc_server_opts.ud). */
struct rpc_handlers {
  /* server: a new call; request metadata in rpc_call_headers(). */
  void (*on_start)(rpc_call *call, void *ud);
  /* client: response initial metadata arrived (not for trailers-only). */
  void (*on_headers)(rpc_call *call, void *ud);
  void (*on_message)(rpc_call *call, struct rpc_msg *m, void *ud);
  /* the peer will send no more messages (server: client half-closed). */
  void (*on_half_close)(rpc_call *call, void *ud);
  /* the write queue drained below low water after a send returned 1. */
  void (*on_writable)(rpc_call *call, void *ud);
  /* the call ended; st->code is the status sent or received (client: also
   * DEADLINE_EXCEEDED from its own timer, RESOURCE_EXHAUSTED/INTERNAL for bad
   * replies, HTTP statuses mapped), CANCELLED when either side reset the
   * stream, UNAVAILABLE when the connection was lost. */
  void (*on_done)(rpc_call *call, const struct rpc_status *st, void *ud);
};

/* Sends one message (packed now: the caller keeps msg). Returns 0 when
 * queued, 1 when queued but the write queue is above its high-water mark
 * (the call's RPC_SEND_HIGH_WATER or its connection's: stop producing until
 * on_writable), or RPC_E_STATE (call ended, finished or half-closed),
 * RPC_E_CLOSED (connection closing), RPC_E_TOO_LARGE (> 4 GiB),
 * RPC_E_QUEUE_FULL (the call already queues RPC_SEND_QUEUE_MAX bytes: the
 * message was not queued; on_writable follows). A message of any size up to
 * 4 GiB is taken while the queue is under the cap. */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *msg);
int rpc_call_send_bytes(rpc_call *call, const void *data, size_t len);
/* Sends one message of len bytes that fill(ud, dst, len) writes straight
 * into the send queue (a message read from a file costs no copy of its
 * own). fill must not use the call; it returns 0, or a negative error that
 * is returned with nothing sent. Otherwise as rpc_call_send_bytes. */
int rpc_call_send_fill(rpc_call *call, size_t len, int (*fill)(void *ud, uint8_t *dst, size_t len),
                       void *ud);
/* Server: sends the response headers (rpc_call_headers_out) now instead of
 * with the first message, e.g. to open a long-lived stream. 0 or RPC_E_STATE. */
int rpc_call_send_headers(rpc_call *call);
/* Client: no more messages (END_STREAM). Returns 0 or RPC_E_STATE. */
int rpc_call_half_close(rpc_call *call);
/* Server: ends the call with a status and optional message (sent
 * percent-encoded), after queued messages. Trailers come from
 * rpc_call_trailers_out(). Returns 0 or RPC_E_STATE (already finished). */
int rpc_call_finish(rpc_call *call, int code, const char *message);
/* Server: rpc_call_send(msg) then rpc_call_finish(OK) - a unary reply. */
int rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg);
/* Either side: RST_STREAM CANCEL; on_done follows with CANCELLED (server: the
 * client sees CANCELLED). Returns 0 or RPC_E_STATE. */
int rpc_call_cancel(rpc_call *call);
/* Stops / resumes delivering messages; while paused, received bytes are not
 * acknowledged, so HTTP/2 flow control pushes back on the sender. */
void rpc_call_pause_reading(rpc_call *call);
void rpc_call_resume_reading(rpc_call *call);

/* Received metadata: server: request headers; client: response headers. */
const struct rpc_mdlist *rpc_call_headers(const rpc_call *call);
/* Client: received trailers (empty until the end). */
const struct rpc_mdlist *rpc_call_trailers(const rpc_call *call);
/* Server: response headers to send (add before the first send/finish or
 * rpc_call_send_headers). Client: not sent (use rpc_call_opts.metadata). */
struct rpc_mdlist *rpc_call_headers_out(rpc_call *call);
/* Server: trailers to send (add before rpc_call_finish). */
struct rpc_mdlist *rpc_call_trailers_out(rpc_call *call);
/* Method path, e.g. "/drover.test.v1.Echo/Unary". */
const char *rpc_call_method(const rpc_call *call);
/* Peer address "127.0.0.1:5000" / "unix:/path", and with mTLS the verified
 * client certificate's subject "CN=agent-1,O=drover" (RDNs in certificate
 * order) or NULL. Valid while the call lives. */
const char *rpc_call_peer(const rpc_call *call);
const char *rpc_call_peer_subject(const rpc_call *call);
/* Remaining time before the deadline in ms, or -1 when there is none. */
int64_t rpc_call_remaining_ms(const rpc_call *call);
void rpc_call_set_data(rpc_call *call, void *data);
void *rpc_call_data(const rpc_call *call);

/* ---- TLS --------------------------------------------------------------- */

/* PEM files. Server: cert+key required; client_ca makes client certificates
 * mandatory (mutual TLS). Client: ca verifies the server; cert+key give a
 * client certificate; server_name overrides the name checked and sent as SNI
 * (default: the target's host). */
struct rpc_tls_opts {
  const char *cert, *key, *ca, *server_name;
};

/* ---- server ------------------------------------------------------------ */

struct rpc_method {
  const char *path; /* "/package.Service/Method" */
  enum rpc_kind kind;
  const ProtobufCMessageDescriptor *request; /* NULL: raw bytes only */
  struct rpc_handlers h;
};

struct rpc_server_opts {
  const struct rpc_method *methods;
  size_t n_methods;
  const struct rpc_tls_opts *tls; /* NULL: h2c */
  size_t max_recv_msg;            /* 0: 4 MiB */
  unsigned keepalive_interval_ms; /* 0: no pings from the server */
  unsigned keepalive_timeout_ms;  /* 0: 20000 */
  /* Notable events, one line each: "call cancelled method=/x/Y",
   * "deadline exceeded method=/x/Y", "keepalive timeout peer=1.2.3.4:5",
   * connection errors. NULL: silent. */
  void (*on_log)(void *ud, const char *line);
  void *ud;
};

/* Creates a server (copies opts and the method table, not the strings or
 * descriptors it points to, which must outlive the server). Loads TLS files
 * now: returns 0, RPC_E_INVAL or RPC_E_TLS (reason given to on_log). */
int rpc_server_new(uv_loop_t *loop, const struct rpc_server_opts *opts, rpc_server **out);
/* Listens on "HOST:PORT" (port 0 picks one), "[V6]:PORT" or "unix:PATH" (a
 * stale socket file is replaced). A HOST that is a name is resolved now
 * (blocking) and gets a listener on every address it resolves to, all on one
 * port ("localhost": 127.0.0.1 and ::1 when /etc/hosts lists both); an
 * address of a family the machine lacks is skipped (a line to on_log), and
 * the listen fails only when none works or on any other error (then no
 * address listens). "*" is every address (IPv6 and IPv4). May be called
 * several times. Returns 0, RPC_E_INVAL (bad address) or a negative libuv
 * error (UV_EADDRINUSE, UV_EADDRNOTAVAIL, UV_EAI_NONAME, ...). */
int rpc_server_listen(rpc_server *s, const char *addr);
/* The first listener's real address ("127.0.0.1:41234", "unix:/p") into buf;
 * for a name, the first address the resolver gave. */
int rpc_server_address(rpc_server *s, char *buf, size_t len);
/* Graceful shutdown: stops listening, sends GOAWAY, lets in-flight calls
 * finish for up to grace_ms (then cancels them), closes every connection,
 * then calls cb. Afterwards free the server with rpc_server_free(). */
void rpc_server_shutdown(rpc_server *s, unsigned grace_ms, void (*cb)(rpc_server *, void *),
                         void *ud);
/* Frees a server that has been shut down (its cb ran) or never listened. */
void rpc_server_free(rpc_server *s);

/* ---- client ------------------------------------------------------------ */

struct rpc_client_opts {
  const char *target;             /* "HOST:PORT" or "unix:PATH" */
  const struct rpc_tls_opts *tls; /* NULL: h2c */
  const char *authority;          /* default: target ("localhost" for unix) */
  size_t max_recv_msg;            /* 0: 4 MiB */
  unsigned keepalive_interval_ms; /* 0: none */
  unsigned keepalive_timeout_ms;  /* 0: 20000 */
  unsigned connect_timeout_ms;    /* resolve+connect (all addresses)+TLS; 0: 20000 */
  /* The connection ended (err < 0: why) after calls have been failed with
   * UNAVAILABLE. Not called for rpc_client_close(). */
  void (*on_disconnect)(rpc_client *c, int err, void *ud);
  void (*on_log)(void *ud, const char *line);
  void *ud;
};

/* Creates a client and starts connecting (resolving, TCP/unix, TLS). The
 * addresses a name resolves to are tried in turn until one connects, each
 * with an equal share of the connect timeout left. Calls may be started at
 * once; they are sent when the connection is ready and fail with UNAVAILABLE
 * if it cannot be made (the message then names each address tried and why it
 * failed). on_connect (may be NULL) reports the connection outcome: 0 or a
 * negative error. Returns 0, RPC_E_INVAL (bad target) or RPC_E_TLS (files). */
int rpc_client_new(uv_loop_t *loop, const struct rpc_client_opts *opts,
                   void (*on_connect)(rpc_client *, int status, void *ud), rpc_client **out);
/* Closes the connection; open calls end with CANCELLED; then cb(c) and the
 * client is freed (cb may run before this returns when the connection was
 * already gone; cb may be NULL). */
void rpc_client_close(rpc_client *c, void (*cb)(rpc_client *, void *ud));

struct rpc_call_opts {
  const char *method;                         /* path */
  const ProtobufCMessageDescriptor *response; /* NULL: raw bytes only */
  int64_t timeout_ms;                         /* 0: no deadline */
  const struct rpc_md *metadata;              /* copied */
  size_t n_metadata;
  struct rpc_handlers h;
  void *ud;
};
/* Starts a call (HEADERS). Send with rpc_call_send and end with
 * rpc_call_half_close. Returns 0, RPC_E_INVAL (bad metadata key or a method
 * not starting with '/') or RPC_E_CLOSED (the connection is gone, closing, or
 * the server sent GOAWAY: make a new client). */
int rpc_call_start(rpc_client *c, const struct rpc_call_opts *opts, rpc_call **out);
/* A unary or server-streaming call in one step: start, send req, half-close.
 * Same errors as rpc_call_start; `out` may be NULL. */
int rpc_call_unary(rpc_client *c, const struct rpc_call_opts *opts, const ProtobufCMessage *req,
                   rpc_call **out);

#endif
