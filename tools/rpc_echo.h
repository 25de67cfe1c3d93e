/* rpc_echo.h - drover-rpc-echo: the test server and client of src/rpc. */
#ifndef DROVER_TOOLS_RPC_ECHO_H
#define DROVER_TOOLS_RPC_ECHO_H

#include "drover/test/v1/echo.pb-c.h"
#include "rpc/rpc.h"

#define ECHO_SVC "/drover.test.v1.Echo/"

int echo_serve(int argc, char **argv);
int echo_call(int argc, char **argv);
int echo_bench(int argc, char **argv);
void echo_usage(void);
/* Parses a non-negative integer option; exits 2 with usage on error. */
long long echo_num(const char *opt, const char *s);
void echo_log(void *ud, const char *line);
/* rpc_client_new with co->on_log set to echo_log; on failure prints why,
 * naming the target, and returns the error (usage is the caller's call). */
int echo_client_new(uv_loop_t *loop, struct rpc_client_opts *co, struct rpc_client **out);

#endif
