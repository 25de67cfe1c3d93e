/* node.c - `drover node list` and `drover node drain NAME|ID`: the agents a
 * coordinator knows (NodeService). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonstr.h"
#include "base/units.h"
#include "base/util.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/fmt.h"
#include "cli/jobcmds.h"
#include "job/pb.h"

static const char *state_name(int s)
{
  switch (s) {
  case NS_READY:
    return "ready";
  case NS_DRAINING:
    return "draining";
  case NS_LOST:
    return "lost";
  case NS_DOWN:
    return "down";
  default:
    return "unknown";
  }
}

static json_t *time_json(int64_t us)
{
  char buf[40];
  if (us <= 0)
    return json_null();
  fmt_time_us(buf, sizeof(buf), us);
  return json_string(buf);
}

static json_t *str_json(const char *s)
{
  return s && *s ? jsonstr_new(s) : json_null();
}

/* Total memory: the heartbeat's figure, else the one sent at registration. */
static uint64_t mem_total(const pb_Node *n)
{
  if (n->last_heartbeat && n->last_heartbeat->mem_total_bytes)
    return n->last_heartbeat->mem_total_bytes;
  return n->resources ? n->resources->memory_bytes : 0;
}

static json_t *node_json(const pb_Node *n)
{
  const pb_Heartbeat *hb = n->last_heartbeat;
  json_t *o = json_object();
  json_object_set_new(o, "id", str_json(n->id));
  json_object_set_new(o, "name", str_json(n->name));
  json_object_set_new(o, "state", json_string(state_name((int)n->state)));
  json_object_set_new(o, "connected", json_boolean(n->connected));
  json_t *labels = json_object();
  for (size_t i = 0; i < n->n_labels; i++)
    json_object_set_new(labels, n->labels[i]->key, str_json(n->labels[i]->value));
  json_object_set_new(o, "labels", labels);
  json_t *caps = json_array();
  for (size_t i = 0; i < n->n_capabilities; i++)
    json_array_append_new(caps, str_json(n->capabilities[i]));
  json_object_set_new(o, "capabilities", caps);
  json_object_set_new(o, "slots", json_integer(n->slots));
  json_object_set_new(o, "running", json_integer(n->running));
  json_object_set_new(o, "busy", json_boolean(n->busy));
  json_object_set_new(o, "cpus", n->resources ? json_integer(n->resources->cpus) : json_null());
  json_object_set_new(o, "cpu_percent", hb ? json_real(hb->cpu_percent) : json_null());
  json_object_set_new(o, "load1", hb ? json_real(hb->load1) : json_null());
  uint64_t total = mem_total(n);
  json_object_set_new(o, "memory_bytes", total ? json_integer((json_int_t)total) : json_null());
  json_object_set_new(o, "memory_used_bytes",
                      hb ? json_integer((json_int_t)hb->mem_used_bytes) : json_null());
  json_object_set_new(o, "memory_available_bytes",
                      hb ? json_integer((json_int_t)hb->mem_available_bytes) : json_null());
  json_object_set_new(o, "disk_bytes",
                      n->resources && n->resources->disk_bytes
                          ? json_integer((json_int_t)n->resources->disk_bytes)
                          : json_null());
  json_object_set_new(o, "disk_free_bytes",
                      hb ? json_integer((json_int_t)hb->disk_free_bytes) : json_null());
  json_object_set_new(o, "last_seen", time_json(n->last_seen_us));
  json_object_set_new(o, "registered_at", time_json(n->registered_at_us));
  json_object_set_new(o, "version", str_json(n->version));
  json_object_set_new(o, "address", str_json(n->address));
  return o;
}

/* ---- list ---- */

struct list_opts {
  struct client_opts client;
  int json;
};

static const struct cfg_opt list_table[] = {
    CLIENT_OPTS(struct list_opts),
    {"json", 0, CFG_BOOL, offsetof(struct list_opts, json), NULL, NULL, 0, 0, NULL,
     "print a JSON array of nodes"},
};
static const struct client_cmd list_cmd = {
    "node list",
    "",
    "lists the nodes (agents) the coordinator knows, by name: state (ready, draining, down,\n"
    "lost), running jobs of their slots, CPU, memory, free disk, when last heard of, labels.\n"
    "--json: an array of {\"id\", \"name\", \"state\", \"labels\", \"slots\", \"running\",\n"
    "\"busy\", \"cpus\", \"cpu_percent\", \"memory_bytes\", \"memory_used_bytes\",\n"
    "\"disk_free_bytes\", \"last_seen\", ...}.",
    list_table,
    ARRAY_SIZE(list_table),
    1};

static void print_table(const Drover__V1__ListNodesResponse *r)
{
  static const char *const heads[] = {"NAME",   "ID",   "STATE",     "JOBS",  "CPU",
                                      "MEMORY", "DISK", "LAST SEEN", "LABELS"};
  struct fmt_table *t = fmt_table_new(ARRAY_SIZE(heads), heads);
  int64_t now = now_us();
  char buf[256], a[32], b[32];
  for (size_t i = 0; i < r->n_nodes; i++) {
    const pb_Node *n = r->nodes[i];
    const pb_Heartbeat *hb = n->last_heartbeat;
    fmt_table_row(t);
    fmt_table_cell(t, n->name && *n->name ? n->name : NULL, NULL);
    fmt_table_cell(t, n->id, NULL);
    snprintf(buf, sizeof(buf), "%s%s%s", state_name((int)n->state),
             (int)n->state == NS_READY && !n->connected ? " (disconnected)" : "",
             n->busy && n->connected ? " (busy)" : "");
    fmt_table_cell(t, buf, fmt_node_state_color((int)n->state));
    fmt_table_cellf(t, "%u/%u", n->running, n->slots);
    if (hb && n->resources && n->resources->cpus)
      fmt_table_cellf(t, "%.0f%% of %u", hb->cpu_percent, n->resources->cpus);
    else if (hb)
      fmt_table_cellf(t, "%.0f%%", hb->cpu_percent);
    else
      fmt_table_cell(t, NULL, NULL);
    uint64_t total = mem_total(n);
    if (hb && total) {
      fmt_bytes(a, sizeof(a), hb->mem_used_bytes);
      fmt_bytes(b, sizeof(b), total);
      fmt_table_cellf(t, "%s/%s", a, b);
    } else {
      fmt_table_cell(t, NULL, NULL);
    }
    if (hb && hb->disk_free_bytes) {
      fmt_bytes(a, sizeof(a), hb->disk_free_bytes);
      fmt_table_cellf(t, "%s free", a);
    } else {
      fmt_table_cell(t, NULL, NULL);
    }
    fmt_ago(buf, sizeof(buf), n->last_seen_us, now);
    fmt_table_cell(t, buf, NULL);
    buf[0] = '\0';
    for (size_t k = 0; k < n->n_labels; k++) {
      size_t used = strlen(buf);
      snprintf(buf + used, sizeof(buf) - used, "%s%s=%s", k ? "," : "", n->labels[k]->key,
               n->labels[k]->value ? n->labels[k]->value : "");
    }
    fmt_table_cell(t, buf[0] ? buf : NULL, NULL);
  }
  fmt_table_print(t, stdout, fmt_color_ok(1));
  fmt_table_free(t);
}

static int node_list(int argc, char **argv)
{
  struct list_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&list_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_ERROR;
  if (args.n) {
    code = cli_usage_error(list_cmd.name, list_cmd.args, list_cmd.summary, list_cmd.opts,
                           list_cmd.n, "unexpected argument '%s'", args.v[0]);
    goto out;
  }
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  Drover__V1__ListNodesRequest req = DROVER__V1__LIST_NODES_REQUEST__INIT;
  Drover__V1__ListNodesResponse *r;
  if (client_unary(&cl, CLIENT_NODES "List", &req.base,
                   &drover__v1__list_nodes_response__descriptor, (ProtobufCMessage **)&r) == 0) {
    if (o.json) {
      json_t *a = json_array();
      for (size_t i = 0; i < r->n_nodes; i++)
        json_array_append_new(a, node_json(r->nodes[i]));
      cli_print_json(a);
    } else {
      print_table(r);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    code = CLI_EXIT_OK;
  }
  client_end(&cl);
out:
  client_parse_release(&list_cmd, &o, &res, &args);
  return code;
}

/* ---- drain ---- */

struct drain_opts {
  struct client_opts client;
  int json;
};

static const struct cfg_opt drain_table[] = {
    CLIENT_OPTS(struct drain_opts),
    {"json", 0, CFG_BOOL, offsetof(struct drain_opts, json), NULL, NULL, 0, 0, NULL,
     "print the node as a JSON document (as in node list --json)"},
};
static const struct client_cmd drain_cmd = {
    "node drain",
    "NAME|ID",
    "drains a node: it takes no new jobs; the jobs on it run to their end. The node is named\n"
    "by its name, or by its id when several share a name (drover node list shows both).",
    drain_table,
    ARRAY_SIZE(drain_table),
    1};

static int node_drain(int argc, char **argv)
{
  struct drain_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&drain_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_ERROR;
  if (args.n != 1) {
    code = cli_usage_error(drain_cmd.name, drain_cmd.args, drain_cmd.summary, drain_cmd.opts,
                           drain_cmd.n, "give one node: its name or id");
    goto out;
  }
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  Drover__V1__DrainNodeRequest req = DROVER__V1__DRAIN_NODE_REQUEST__INIT;
  req.id = args.v[0];
  req.reason = "requested with 'drover node drain'";
  Drover__V1__DrainNodeResponse *r;
  if (client_unary(&cl, CLIENT_NODES "Drain", &req.base,
                   &drover__v1__drain_node_response__descriptor, (ProtobufCMessage **)&r) == 0) {
    const pb_Node *n = r->node;
    if (!n) {
      fprintf(stderr, "error: the coordinator at '%s' sent no node back\n", cl.addr);
    } else if (o.json) {
      cli_print_json(node_json(n));
      code = CLI_EXIT_OK;
    } else {
      if ((int)n->state == NS_DRAINING)
        printf("node %s (%s) is draining: it takes no new jobs; the %u job%s on it run to their "
               "end\n",
               n->name, n->id, n->running, n->running == 1 ? "" : "s");
      else
        printf("node %s (%s) is %s: it takes no jobs anyway\n", n->name, n->id,
               state_name((int)n->state));
      code = CLI_EXIT_OK;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  client_end(&cl);
out:
  client_parse_release(&drain_cmd, &o, &res, &args);
  return code;
}

/* ---- the table ---- */

static const struct cli_cmd subcommands[] = {
    {"list", node_list, "list the nodes: state, jobs, CPU, memory, disk, last seen"},
    {"drain", node_drain, "stop giving a node new jobs"},
};

int cli_node(int argc, char **argv)
{
  return cli_subcommands("node",
                         "the nodes (agents) of a coordinator (--addr ADDR or DROVER_ADDR, "
                         "default " CLIENT_DEFAULT_ADDR ").",
                         subcommands, ARRAY_SIZE(subcommands), argc, argv);
}
