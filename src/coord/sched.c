/* sched.c - the queue, the nodes, and the push scheduler.
 *
 * The queue is one FIFO per priority (ordered by creation time, so a requeued
 * job keeps its place), the buckets sorted by priority, highest first. Nodes
 * that can take a job right now (connected, ready, not busy, a free slot) sit
 * in c->avail. sched_run walks the queue in order and gives each job the least
 * loaded available node whose labels and capabilities satisfy it; a job no
 * node can take is skipped (it does not block the jobs behind it). It runs at
 * most once per loop turn, from the check phase (coord.c), whenever a job was
 * queued or a node freed up. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "coord/coord_int.h"
#include "job/states.h"

/* Jobs looked at per run that no node could take, before giving up until the
 * next change: bounds the cost of a long queue of jobs nothing fits. */
#define SKIP_LIMIT 4096

struct qbucket {
  int32_t prio;
  struct cjob *head, *tail;
  size_t n;
};

/* ---- the queue ---- */

static struct qbucket *bucket_for(struct coord *c, int32_t prio, int create)
{
  size_t lo = 0, hi = c->nbuckets;
  while (lo < hi) { /* buckets are sorted by priority, descending */
    size_t mid = (lo + hi) / 2;
    if (c->buckets[mid].prio == prio)
      return &c->buckets[mid];
    if (c->buckets[mid].prio > prio)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (!create)
    return NULL;
  if (c->nbuckets == c->capbuckets) {
    c->capbuckets = c->capbuckets ? c->capbuckets * 2 : 8;
    c->buckets = xrealloc(c->buckets, c->capbuckets * sizeof(*c->buckets));
  }
  memmove(&c->buckets[lo + 1], &c->buckets[lo], (c->nbuckets - lo) * sizeof(*c->buckets));
  memset(&c->buckets[lo], 0, sizeof(*c->buckets));
  c->buckets[lo].prio = prio;
  c->nbuckets++;
  return &c->buckets[lo];
}

void sched_enqueue(struct coord *c, struct cjob *j)
{
  if (j->in_queue)
    return;
  struct qbucket *b = bucket_for(c, j->spec->priority, 1);
  /* New jobs are the youngest and go last at once; a requeued job walks back
   * to its place by age. */
  struct cjob *after = b->tail;
  while (after && after->created_us > j->created_us)
    after = after->qprev;
  j->qprev = after;
  j->qnext = after ? after->qnext : b->head;
  if (j->qnext)
    j->qnext->qprev = j;
  else
    b->tail = j;
  if (after)
    after->qnext = j;
  else
    b->head = j;
  b->n++;
  j->in_queue = 1;
  c->nqueued++;
  sched_kick(c);
}

void sched_dequeue(struct coord *c, struct cjob *j)
{
  if (!j->in_queue)
    return;
  struct qbucket *b = bucket_for(c, j->spec->priority, 0);
  if (j->qprev)
    j->qprev->qnext = j->qnext;
  else
    b->head = j->qnext;
  if (j->qnext)
    j->qnext->qprev = j->qprev;
  else
    b->tail = j->qprev;
  j->qprev = j->qnext = NULL;
  j->in_queue = 0;
  c->nqueued--;
  b->n--; /* an empty bucket stays until sched_run compacts: runs never see one move */
}

size_t sched_queued(const struct coord *c)
{
  return c->nqueued;
}

void sched_kick(struct coord *c)
{
  c->sched_wanted = 1;
}

/* ---- matching ---- */

static const char *node_label(const struct cnode *n, const char *key)
{
  for (size_t i = 0; n->info && i < n->info->n_labels; i++)
    if (!strcmp(n->info->labels[i]->key, key))
      return n->info->labels[i]->value;
  return NULL;
}

static int node_has_cap(const struct cnode *n, const char *cap)
{
  for (size_t i = 0; n->info && i < n->info->n_capabilities; i++)
    if (!strcmp(n->info->capabilities[i], cap))
      return 1;
  return 0;
}

static int fits(const struct cnode *n, const struct cjob *j)
{
  for (size_t i = 0; i < j->spec->n_constraints; i++) {
    const char *v = node_label(n, j->spec->constraints[i]->key);
    if (!v || strcmp(v, j->spec->constraints[i]->value))
      return 0;
  }
  for (size_t i = 0; i < j->spec->n_capabilities; i++)
    if (!node_has_cap(n, j->spec->capabilities[i]))
      return 0;
  return 1;
}

/* a less loaded than b: a smaller share of its slots in use, then more free
 * slots (the bigger node), then the one that got a job longest ago (equal
 * nodes take turns), then the older registration (stable). */
static int less_loaded(const struct cnode *a, const struct cnode *b)
{
  uint64_t la = (uint64_t)a->running * b->slots, lb = (uint64_t)b->running * a->slots;
  if (la != lb)
    return la < lb;
  int64_t fa = (int64_t)a->slots - a->running, fb = (int64_t)b->slots - b->running;
  if (fa != fb)
    return fa > fb;
  if (a->last_assign != b->last_assign)
    return a->last_assign < b->last_assign;
  return a->registered_us < b->registered_us;
}

static struct cnode *pick(struct coord *c, const struct cjob *j)
{
  struct cnode *best = NULL;
  for (struct cnode *n = c->avail; n; n = n->anext) {
    if (!fits(n, j))
      continue;
    if (!best || less_loaded(n, best))
      best = n;
    if (best->running == 0 && best->last_assign == 0 && !j->spec->n_constraints &&
        !j->spec->n_capabilities)
      break; /* an idle node that never had a job: nothing beats it */
  }
  return best;
}

void sched_run(struct coord *c)
{
  size_t skipped = 0;
  for (size_t bi = 0; bi < c->nbuckets && c->avail && skipped <= SKIP_LIMIT; bi++) {
    for (struct cjob *j = c->buckets[bi].head, *next; j && c->avail; j = next) {
      next = j->qnext;
      struct cnode *n = pick(c, j);
      if (n)
        cjob_assign(c, j, n);
      else if (++skipped > SKIP_LIMIT)
        break;
    }
  }
  /* Drop the buckets that ran empty. */
  size_t k = 0;
  for (size_t i = 0; i < c->nbuckets; i++)
    if (c->buckets[i].n)
      c->buckets[k++] = c->buckets[i];
  c->nbuckets = k;
}

/* ---- nodes ---- */

struct cnode *cnode_get(struct coord *c, const char *id)
{
  return smap_get(&c->nodes, id);
}

void cnode_update_avail(struct coord *c, struct cnode *n)
{
  int can = n->sess && n->state == NS_READY && !n->busy && n->running < n->slots + n->prefetch;
  if (can == n->in_avail)
    return;
  if (can) {
    n->aprev = NULL;
    n->anext = c->avail;
    if (c->avail)
      c->avail->aprev = n;
    c->avail = n;
    sched_kick(c);
  } else {
    if (n->aprev)
      n->aprev->anext = n->anext;
    else
      c->avail = n->anext;
    if (n->anext)
      n->anext->aprev = n->aprev;
    n->aprev = n->anext = NULL;
  }
  n->in_avail = can;
}

void cnode_view(const struct cnode *n, pb_Node *out)
{
  if (n->info)
    *out = *n->info;
  else
    drover__v1__node__init(out);
  out->id = (char *)n->id;
  out->name = n->name;
  out->state = (Drover__V1__NodeState)n->state;
  out->last_seen_us = n->last_seen_us;
  out->slots = n->slots;
  out->prefetch = n->prefetch;
  out->running = n->running;
  out->busy = n->busy;
  out->registered_at_us = n->registered_us;
  out->connected = n->sess != NULL;
}

void cnode_save(struct coord *c, struct cnode *n)
{
  struct store_node row;
  memset(&row, 0, sizeof(row));
  snprintf(row.id, sizeof(row.id), "%s", n->id);
  row.name = n->name;
  row.state = n->state;
  row.registered_us = n->registered_us;
  row.last_seen_us = n->last_seen_us;
  memcpy(row.secret_hash, n->secret_hash, sizeof(row.secret_hash));
  pb_Node view;
  cnode_view(n, &view);
  view.connected = 0;
  view.running = 0;
  row.info_len = protobuf_c_message_get_packed_size(&view.base);
  row.info = xmalloc(row.info_len ? row.info_len : 1);
  protobuf_c_message_pack(&view.base, row.info);
  store_node_put(c->store, &row);
  free(row.info);
}

static void load_node(void *ud, const struct store_node *row)
{
  struct coord *c = ud;
  struct cnode *n = xcalloc(1, sizeof(*n));
  snprintf(n->id, sizeof(n->id), "%s", row->id);
  n->name = xstrdup(row->name ? row->name : "");
  n->state = row->state;
  n->registered_us = row->registered_us;
  n->last_seen_us = row->last_seen_us;
  memcpy(n->secret_hash, row->secret_hash, sizeof(n->secret_hash));
  n->info = (pb_Node *)protobuf_c_message_unpack(&drover__v1__node__descriptor, NULL, row->info_len,
                                                 row->info);
  if (n->info) {
    n->slots = n->info->slots;
    n->prefetch = n->info->prefetch;
  }
  /* Every agent gets a full node timeout to come back after our restart. */
  n->last_seen_ms = uv_now(c->loop);
  smap_put(&c->nodes, n->id, n);
}

int nodes_load(struct coord *c)
{
  int rc = store_node_load(c->store, load_node, c);
  if (rc == 0)
    log_info("nodes loaded", "nodes=%zu", c->nodes.n);
  return rc;
}

static int free_node(const char *key, void *val, void *ud)
{
  struct cnode *n = val;
  (void)key;
  (void)ud;
  if (n->info)
    protobuf_c_message_free_unpacked(&n->info->base, NULL);
  free(n->name);
  free(n);
  return 0;
}

void nodes_release(struct coord *c)
{
  smap_foreach(&c->nodes, free_node, NULL);
  smap_release(&c->nodes, NULL);
  free(c->buckets);
  c->buckets = NULL;
  c->nbuckets = c->capbuckets = 0;
}
