/* nodesvc.c - drover.v1.NodeService (List, Drain) and TokenService (Create),
 * and the registration tokens behind it.
 *
 * A token is shown once, when it is made; the store keeps only its SHA-256.
 * Tokens live in memory (a few) and every use is written through the store
 * before the agent that spent it is welcomed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/id.h"
#include "base/log.h"
#include "base/util.h"
#include "coord/coord_int.h"

#define TOKEN_PREFIX "drv1_"

/* ---- tokens ---- */

static void token_free(void *p)
{
  struct ctoken *t = p;
  store_token_release(&t->t);
  free(t);
}

static void token_loaded(void *ud, const struct store_token *row)
{
  struct coord *c = ud;
  struct ctoken *t = xcalloc(1, sizeof(*t));
  t->t = *row;
  t->t.description = row->description ? xstrdup(row->description) : NULL;
  smap_put(&c->tokens, t->t.hash, t);
}

int tokens_load(struct coord *c)
{
  return store_token_load(c->store, token_loaded, c);
}

void tokens_release(struct coord *c)
{
  smap_release(&c->tokens, token_free);
}

int tokens_use(struct coord *c, const char *token)
{
  char hash[65];
  coord_sha256_hex(token, hash);
  struct ctoken *t = smap_get(&c->tokens, hash);
  if (!t)
    return -EACCES;
  if (t->t.expires_us && coord_now_us() >= t->t.expires_us) {
    log_info("expired token removed", "token=%s", t->t.id);
    if (!t->ephemeral)
      store_token_delete(c->store, t->t.id);
    token_free(smap_del(&c->tokens, hash));
    return -EACCES;
  }
  if (--t->t.uses_left == 0) {
    if (!t->ephemeral)
      store_token_delete(c->store, t->t.id);
    token_free(smap_del(&c->tokens, hash));
  } else if (!t->ephemeral) {
    store_token_put(c->store, &t->t);
  }
  return 0;
}

static struct ctoken *token_make(struct coord *c, unsigned uses, uint64_t ttl_ms,
                                 const char *description, int ephemeral, char **text)
{
  struct ctoken *t = xcalloc(1, sizeof(*t));
  char id[ID_LEN + 1];
  id_new(id);
  snprintf(t->t.id, sizeof(t->t.id), "%s", id);
  *text = coord_random_hex(TOKEN_PREFIX, 24);
  coord_sha256_hex(*text, t->t.hash);
  t->t.uses_left = uses ? uses : 1;
  t->t.created_us = coord_now_us();
  t->t.expires_us = ttl_ms ? t->t.created_us + (int64_t)ttl_ms * 1000 : 0;
  t->t.description = description && *description ? xstrdup(description) : NULL;
  t->ephemeral = ephemeral;
  smap_put(&c->tokens, t->t.hash, t);
  if (!ephemeral)
    store_token_put(c->store, &t->t);
  return t;
}

char *coord_ephemeral_token(struct coord *c, unsigned uses)
{
  char *text;
  token_make(c, uses, 0, "drover dev", 1, &text);
  return text;
}

/* ---- calls ---- */

struct nreq {
  rpc_call *call;
  int refs;
  void *reply; /* a packed-later reply */
  char *token;
  struct ctoken *tok;
  struct cnode *node;
};

static void nreq_unref(struct nreq *r)
{
  if (--r->refs > 0)
    return;
  free(r->token);
  free(r);
}

static struct nreq *nreq_new(rpc_call *call)
{
  struct nreq *r = xcalloc(1, sizeof(*r));
  r->call = call;
  r->refs = 1;
  rpc_call_set_data(call, r);
  return r;
}

static void nreq_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct nreq *r = rpc_call_data(call);
  (void)st;
  (void)ud;
  if (!r)
    return;
  r->call = NULL;
  nreq_unref(r);
}

struct list_ctx {
  pb_Node *views;
  pb_Node **ptrs;
  size_t n;
};

static int list_one(const char *key, void *val, void *ud)
{
  struct list_ctx *lc = ud;
  (void)key;
  cnode_view(val, &lc->views[lc->n]);
  lc->ptrs[lc->n] = &lc->views[lc->n];
  lc->n++;
  return 0;
}

static int by_name(const void *a, const void *b)
{
  const pb_Node *x = *(pb_Node *const *)a, *y = *(pb_Node *const *)b;
  int d = strcmp(x->name ? x->name : "", y->name ? y->name : "");
  return d ? d : strcmp(x->id, y->id);
}

static void list_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  (void)m;
  struct list_ctx lc = {xcalloc(c->nodes.n + 1, sizeof(pb_Node)),
                        xcalloc(c->nodes.n + 1, sizeof(pb_Node *)), 0};
  smap_foreach(&c->nodes, list_one, &lc);
  qsort(lc.ptrs, lc.n, sizeof(*lc.ptrs), by_name);
  Drover__V1__ListNodesResponse resp = DROVER__V1__LIST_NODES_RESPONSE__INIT;
  resp.nodes = lc.ptrs;
  resp.n_nodes = lc.n;
  rpc_call_reply(call, &resp.base);
  free(lc.views);
  free(lc.ptrs);
}

struct find_ctx {
  const char *name;
  struct cnode *found;
  int count;
};

static int find_name(const char *key, void *val, void *ud)
{
  struct find_ctx *fc = ud;
  struct cnode *n = val;
  (void)key;
  if (n->name && !strcmp(n->name, fc->name)) {
    fc->found = n;
    fc->count++;
  }
  return 0;
}

static void drain_reply(struct coord *c, void *arg)
{
  struct nreq *r = arg;
  (void)c;
  if (r->call) {
    pb_Node view;
    cnode_view(r->node, &view);
    Drover__V1__DrainNodeResponse resp = DROVER__V1__DRAIN_NODE_RESPONSE__INIT;
    resp.node = &view;
    rpc_call_reply(r->call, &resp.base);
  }
  nreq_unref(r);
}

static void drain_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct nreq *r = nreq_new(call);
  Drover__V1__DrainNodeRequest *dr = (Drover__V1__DrainNodeRequest *)m->msg;
  const char *key = dr && dr->id ? dr->id : "";
  struct cnode *n = cnode_get(c, key);
  if (!n) {
    struct find_ctx fc = {key, NULL, 0};
    smap_foreach(&c->nodes, find_name, &fc);
    if (fc.count > 1) {
      char msg[256];
      snprintf(msg, sizeof(msg),
               "%d nodes are named '%s': give the node id instead (drover node "
               "list shows them)",
               fc.count, key);
      rpc_call_finish(call, RPC_FAILED_PRECONDITION, msg);
      return;
    }
    n = fc.found;
  }
  if (!n) {
    char msg[256];
    snprintf(msg, sizeof(msg), "no node '%s' (drover node list shows the nodes)", key);
    rpc_call_finish(call, RPC_NOT_FOUND, msg);
    return;
  }
  if (n->state == NS_READY) {
    n->state = NS_DRAINING;
    cnode_update_avail(c, n);
    cnode_save(c, n);
    session_send_drain(c, n);
    log_info("node draining", "node=%s name=%s reason=%s", n->id, n->name,
             dr->reason && *dr->reason ? dr->reason : "-");
  }
  r->node = n;
  r->refs++;
  coord_after(c, ACT_COMMIT, drain_reply, r);
}

static void token_reply(struct coord *c, void *arg)
{
  struct nreq *r = arg;
  (void)c;
  if (r->call) {
    Drover__V1__CreateTokenResponse resp = DROVER__V1__CREATE_TOKEN_RESPONSE__INIT;
    resp.token = r->token;
    resp.id = r->tok->t.id;
    resp.expires_at_us = r->tok->t.expires_us;
    resp.uses = r->tok->t.uses_left;
    rpc_call_reply(r->call, &resp.base);
  }
  nreq_unref(r);
}

static void token_on_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct coord *c = ud;
  struct nreq *r = nreq_new(call);
  Drover__V1__CreateTokenRequest *tr = (Drover__V1__CreateTokenRequest *)m->msg;
  if (tr->uses > 1000000) {
    rpc_call_finish(call, RPC_INVALID_ARGUMENT, "uses must be from 1 to 1000000");
    return;
  }
  r->tok = token_make(c, tr->uses, tr->ttl_ms, tr->description, 0, &r->token);
  log_info("token created", "token=%s uses=%u ttl_ms=%llu", r->tok->t.id, r->tok->t.uses_left,
           (unsigned long long)tr->ttl_ms);
  r->refs++;
  /* Shown only once it is durable: an agent can use it at once. */
  coord_after(c, ACT_COMMIT, token_reply, r);
}

const struct rpc_handlers nodesvc_list = {.on_message = list_on_message};
const struct rpc_handlers nodesvc_drain = {.on_message = drain_on_message, .on_done = nreq_done};
const struct rpc_handlers tokensvc_create = {.on_message = token_on_message, .on_done = nreq_done};
