/* client.h - the CLI's link to the coordinator: options every remote command
 * shares (--addr ADDR / DROVER_ADDR), one gRPC connection on a libuv loop,
 * calls run until they are done, and gRPC statuses turned into messages a
 * user can act on. */
#ifndef DROVER_CLI_CLIENT_H
#define DROVER_CLI_CLIENT_H

#include <stddef.h>
#include <uv.h>

#include "base/config.h"
#include "rpc/rpc.h"

#define CLIENT_DEFAULT_ADDR "127.0.0.1:7700"

/* Methods of proto/drover/v1. */
#define CLIENT_JOBS   "/drover.v1.JobService/"
#define CLIENT_NODES  "/drover.v1.NodeService/"
#define CLIENT_TOKENS "/drover.v1.TokenService/"

/* The options of every command that talks to the coordinator: embed it as
 * `client` and put CLIENT_OPTS(type) in the table. drover's own log is
 * quiet by default (warnings and errors), so that what a command prints is
 * all a user sees. */
struct client_opts {
  struct cfg_common common;
  char *addr;
};
/* clang-format off */
#define CLIENT_OPTS(type)                                                                          \
  {"addr", 0, CFG_STRING, offsetof(type, client.addr), CLIENT_DEFAULT_ADDR, NULL, 0, 0, "ADDR",    \
   "the coordinator: HOST:PORT or unix:PATH"},                                                     \
  {"log-level", 0, CFG_ENUM, offsetof(type, client.common.log_level), "warn",                      \
   "debug|info|warn|error", 0, 0, "LEVEL", "least severe message of drover's own to log"},         \
  {"log-format", 0, CFG_ENUM, offsetof(type, client.common.log_format), "text", "text|json", 0, 0, \
   "FORMAT", "log as text or one JSON object per line"}
/* clang-format on */

/* A command's description, for parsing and usage. */
struct client_cmd {
  const char *name; /* "job status": the usage line and the config file section */
  const char *args; /* "ID" */
  const char *summary;
  const struct cfg_opt *opts;
  size_t n;
  /* Options may follow the arguments (drover job logs ID -f). Not for
   * commands that take a command line after "--". */
  int anywhere;
};

/* The words of a command line that are not options. */
struct client_args {
  char **v; /* strings of argv */
  int n;
  char **own; /* the array, when it had to be made */
};

/* Parses argv (argv[0] is the subcommand's name) into target. Returns 1 to
 * go on, with the other words in *args, or 0 when the command is over:
 * --help printed (*code 0) or a usage error printed (*code 2). On 1 the
 * caller calls client_parse_release when done; logging is set up from the
 * common options. */
int client_parse(const struct client_cmd *cmd, void *target, struct client_opts *co, int argc,
                 char **argv, struct cfg_result *res, struct client_args *args, int *code);
void client_parse_release(const struct client_cmd *cmd, void *target, struct cfg_result *res,
                          struct client_args *args);

/* One connection to the coordinator on a loop. */
struct client {
  uv_loop_t *loop;
  uv_loop_t own; /* the loop client_begin made */
  int own_loop;
  rpc_client *rpc;
  char addr[256];
  int connected; /* the connection was made once */
  int closed;
};

/* Starts connecting to addr on loop (no I/O before the loop runs). Returns
 * 0, or -1 with the error printed (a malformed address). */
int client_open(struct client *cl, uv_loop_t *loop, const char *addr);
/* client_open on a loop of the client's own, for commands that only make
 * calls: end with client_end. */
int client_begin(struct client *cl, const char *addr);
/* Closes the connection (open calls end CANCELLED). With a loop of its own
 * (client_begin), also runs it until everything is closed and closes it. */
void client_close(struct client *cl);
void client_end(struct client *cl);

/* Starts a call of method (a full path) whose replies unpack with resp. With
 * req, sends it and half-closes (a unary or server-streaming call); without,
 * the caller sends. Returns 0, or -1 with the error printed. */
int client_start(struct client *cl, const char *method, const ProtobufCMessageDescriptor *resp,
                 const ProtobufCMessage *req, const struct rpc_handlers *h, void *ud,
                 rpc_call **out);
/* A unary call run to its end (the loop runs meanwhile). Returns 0 and the
 * reply in *out (free with protobuf_c_message_free_unpacked), or -1 with the
 * error printed (client_report). */
int client_unary(struct client *cl, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp, ProtobufCMessage **out);
/* Prints "error: ..." for a call that failed:
 *   UNAVAILABLE: cannot reach the coordinator at 'ADDR': <why>; is 'drover
 *     server' or 'drover dev' running? (--addr / DROVER_ADDR)
 *     (or, once connected: lost the coordinator at 'ADDR': <why>)
 *   NOT_FOUND, INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION: the
 *     coordinator's own message ("no job 'X'")
 *   others: the coordinator at 'ADDR' answered CODE: <message>
 * With prefix ("job 'X'"), the message follows "error: <prefix>: ". */
void client_report(const struct client *cl, const struct rpc_status *st, const char *prefix);
/* The same message ("error: ..." without a newline) into buf. */
void client_status_text(const struct client *cl, const struct rpc_status *st, const char *prefix,
                        char *buf, size_t len);

#endif
