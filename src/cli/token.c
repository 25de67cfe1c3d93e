/* token.c - `drover token create`: a registration token for agents
 * (TokenService). The coordinator keeps only its hash: this is the one time
 * it is shown. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/jobcmds.h"
#include "job/pb.h"

struct create_opts {
  struct client_opts client;
  long uses;
  uint64_t ttl_ms;
  int json;
};

static const struct cfg_opt create_table[] = {
    CLIENT_OPTS(struct create_opts),
    {"uses", 0, CFG_INT, offsetof(struct create_opts, uses), "1", NULL, 1, 1000000, "N",
     "registrations it allows (agents that can join with it)"},
    {"ttl", 0, CFG_DURATION, offsetof(struct create_opts, ttl_ms), "0", NULL, 0, 0, "D",
     "it expires after D (0: never)"},
    {"json", 0, CFG_BOOL, offsetof(struct create_opts, json), NULL, NULL, 0, 0, NULL,
     "print {\"token\", \"id\", \"uses\", \"expires_at\"}"},
};
static const struct client_cmd create_cmd = {
    "token create",
    "",
    "makes a token for agents to register with (drover agent --coordinator ADDR --token T) and\n"
    "prints it, and nothing else. The coordinator keeps only its hash: copy it now.",
    create_table,
    ARRAY_SIZE(create_table),
    1};

static int token_create(int argc, char **argv)
{
  struct create_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&create_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_ERROR;
  if (args.n) {
    code = cli_usage_error(create_cmd.name, create_cmd.args, create_cmd.summary, create_cmd.opts,
                           create_cmd.n, "unexpected argument '%s'", args.v[0]);
    goto out;
  }
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  Drover__V1__CreateTokenRequest req = DROVER__V1__CREATE_TOKEN_REQUEST__INIT;
  req.uses = (uint32_t)o.uses;
  req.ttl_ms = o.ttl_ms;
  req.description = "drover token create";
  Drover__V1__CreateTokenResponse *r;
  if (client_unary(&cl, CLIENT_TOKENS "Create", &req.base,
                   &drover__v1__create_token_response__descriptor, (ProtobufCMessage **)&r) == 0) {
    if (!r->token || !*r->token) {
      fprintf(stderr, "error: the coordinator at '%s' sent no token back\n", cl.addr);
    } else if (o.json) {
      json_t *x = json_object();
      json_object_set_new(x, "token", json_string(r->token));
      json_object_set_new(x, "id", json_string(r->id ? r->id : ""));
      json_object_set_new(x, "uses", json_integer(r->uses));
      char ts[40];
      if (r->expires_at_us > 0) {
        fmt_time_us(ts, sizeof(ts), r->expires_at_us);
        json_object_set_new(x, "expires_at", json_string(ts));
      } else {
        json_object_set_new(x, "expires_at", json_null());
      }
      cli_print_json(x);
      code = CLI_EXIT_OK;
    } else {
      puts(r->token);
      code = CLI_EXIT_OK;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  client_end(&cl);
out:
  client_parse_release(&create_cmd, &o, &res, &args);
  return code;
}

int cli_token(int argc, char **argv)
{
  static const struct cli_cmd subcommands[] = {
      {"create", token_create, "make a registration token for agents and print it"},
  };
  return cli_subcommands("token", "registration tokens of a coordinator, for agents.", subcommands,
                         ARRAY_SIZE(subcommands), argc, argv);
}
