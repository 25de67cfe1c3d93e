/* jobs.c - the coordinator's jobs in memory and their one state machine.
 *
 * Every state change goes through cjob_set_state: it checks the transition
 * against the table in job/states.c, keeps the node's accounting and the queue
 * in step, and queues the job's row and an event row in the store in the same
 * group commit, so the audit trail and the state can never disagree. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "coord/coord_int.h"
#include "job/states.h"

#define ENDED_LINGER_MS 10000

/* ---- lifetime ---- */

static void cjob_free(struct cjob *j)
{
  if (j->spec)
    protobuf_c_message_free_unpacked(&j->spec->base, NULL);
  if (j->result)
    protobuf_c_message_free_unpacked(&j->result->base, NULL);
  if (j->progress)
    protobuf_c_message_free_unpacked(&j->progress->base, NULL);
  logfile_release(j->log);
  jobsvc_stdin_free(j->stdin_feed);
  free(j->spec_bytes);
  free(j->reason);
  free(j->cancel_reason);
  free(j);
}

void cjob_ref(struct cjob *j)
{
  j->refs++;
}

void cjob_unref(struct coord *c, struct cjob *j)
{
  (void)c;
  if (--j->refs == 0)
    cjob_free(j);
}

struct cjob *cjob_get(struct coord *c, const char *id)
{
  return smap_get(&c->jobs, id);
}

/* ---- store rows ---- */

static void row_from_job(const struct cjob *j, struct store_job *row, struct store_kv *labels)
{
  memset(row, 0, sizeof(*row));
  snprintf(row->id, sizeof(row->id), "%s", j->id);
  row->state = j->state;
  row->attempt = j->attempt;
  row->max_attempts = j->max_attempts;
  row->priority = j->spec->priority;
  row->created_us = j->created_us;
  row->updated_us = j->updated_us;
  row->name = j->spec->name && *j->spec->name ? j->spec->name : NULL;
  row->node_id = j->node_id[0] ? (char *)j->node_id : NULL;
  row->idempotency_key =
      j->spec->idempotency_key && *j->spec->idempotency_key ? j->spec->idempotency_key : NULL;
  row->reason = j->reason;
  for (size_t i = 0; i < j->spec->n_labels; i++) {
    labels[i].key = j->spec->labels[i]->key;
    labels[i].value = j->spec->labels[i]->value;
  }
  row->labels = labels;
  row->nlabels = j->spec->n_labels;
  row->spec = j->spec_bytes;
  row->spec_len = j->spec_len;
  row->cancel_requested = j->cancel_requested;
  row->cancel_grace_ms = j->cancel_grace_ms;
}

void cjob_save(struct coord *c, struct cjob *j)
{
  struct store_job row;
  struct store_kv *labels = xcalloc(j->spec->n_labels + 1, sizeof(*labels));
  row_from_job(j, &row, labels);
  uint8_t *res = NULL;
  if (j->result) {
    row.result_len = protobuf_c_message_get_packed_size(&j->result->base);
    res = xmalloc(row.result_len ? row.result_len : 1);
    protobuf_c_message_pack(&j->result->base, res);
    row.result = res;
  }
  store_job_put(c->store, &row);
  free(res);
  free(labels);
}

static void add_event(struct coord *c, struct cjob *j, int from, int to, const char *node_id)
{
  struct store_event ev;
  memset(&ev, 0, sizeof(ev));
  snprintf(ev.job_id, sizeof(ev.job_id), "%s", j->id);
  ev.ts_us = j->updated_us;
  ev.from = from;
  ev.to = to;
  ev.node_id = (char *)node_id;
  ev.attempt = j->attempt;
  ev.reason = j->reason;
  store_event_add(c->store, &ev);
}

/* ---- views ---- */

void cjob_view(const struct cjob *j, pb_Job *out)
{
  drover__v1__job__init(out);
  out->spec = j->spec;
  out->state = (Drover__V1__JobState)j->state;
  out->node_id = j->node_id[0] ? (char *)j->node_id : NULL;
  out->node_name = j->node_id[0] && j->last_node ? j->last_node->name : NULL;
  out->created_at_us = j->created_us;
  out->updated_at_us = j->updated_us;
  out->result = j->result;
  out->attempt = j->attempt;
  out->reason = j->reason;
}

pb_Job *cjob_view_row(struct coord *c, const struct store_job *row)
{
  pb_JobSpec *spec = (pb_JobSpec *)protobuf_c_message_unpack(&drover__v1__job_spec__descriptor,
                                                             NULL, row->spec_len, row->spec);
  if (!spec)
    return NULL;
  pb_Job *job = xmalloc(sizeof(*job));
  drover__v1__job__init(job);
  job->spec = spec;
  if (row->result) {
    job->result = (pb_JobResult *)protobuf_c_message_unpack(&drover__v1__job_result__descriptor,
                                                            NULL, row->result_len, row->result);
    if (!job->result) {
      protobuf_c_message_free_unpacked(&job->base, NULL);
      return NULL;
    }
  }
  job->state = (Drover__V1__JobState)row->state;
  job->created_at_us = row->created_us;
  job->updated_at_us = row->updated_us;
  job->attempt = row->attempt;
  if (row->node_id) {
    job->node_id = xstrdup(row->node_id);
    struct cnode *n = cnode_get(c, row->node_id);
    if (n && n->name)
      job->node_name = xstrdup(n->name);
  }
  if (row->reason)
    job->reason = xstrdup(row->reason);
  return job;
}

/* ---- the state machine ---- */

static void changed_action(struct coord *c, void *arg);

static void node_link(struct cjob *j, struct cnode *n)
{
  j->node = n;
  j->last_node = n;
  snprintf(j->node_id, sizeof(j->node_id), "%s", n->id);
  j->nprev = NULL;
  j->nnext = n->jobs;
  if (n->jobs)
    n->jobs->nprev = j;
  n->jobs = j;
  n->running++;
}

static void node_unlink(struct coord *c, struct cjob *j)
{
  struct cnode *n = j->node;
  if (!n)
    return;
  if (j->nprev)
    j->nprev->nnext = j->nnext;
  else
    n->jobs = j->nnext;
  if (j->nnext)
    j->nnext->nprev = j->nprev;
  j->nprev = j->nnext = NULL;
  j->node = NULL;
  n->running--;
  cnode_update_avail(c, n);
  sched_kick(c);
}

int cjob_set_state(struct coord *c, struct cjob *j, int to, const char *reason)
{
  int from = j->state;
  if (!job_state_can(from, to)) {
    log_error("refused job state change", "job=%s from=%s to=%s", j->id, job_state_name(from),
              job_state_name(to));
    return -EINVAL;
  }
  /* The event names the node the change happened on, also when the change
   * takes the job off it. */
  const char *node_id = j->node ? j->node->id : NULL;
  char node_buf[64] = "";
  if (node_id)
    snprintf(node_buf, sizeof(node_buf), "%s", node_id);

  if (from == JS_QUEUED)
    sched_dequeue(c, j);
  if ((from == JS_ASSIGNED || from == JS_RUNNING) && to != JS_RUNNING) {
    node_unlink(c, j);
    j->dispatched = 0;
  }

  j->state = to;
  j->updated_us = coord_now_us();
  free(j->reason);
  j->reason = reason ? xstrdup(reason) : NULL;
  if (to == JS_QUEUED) {
    j->node_id[0] = '\0'; /* queued on no node (the event keeps the last one) */
    sched_enqueue(c, j);
  }
  if (job_state_terminal(to)) {
    j->live_until_ms =
        uv_now(c->loop) + (c->opts.ended_linger_ms ? c->opts.ended_linger_ms : ENDED_LINGER_MS);
    j->cancel_requested = 0;
    c->stats_finished++;
  }
  cjob_save(c, j);
  add_event(c, j, from, to, node_buf[0] ? node_buf : NULL);
  if (to == JS_QUEUED && from != JS_UNSPECIFIED) {
    /* Requeued: log followers announce the next attempt. */
    cjob_ref(j);
    coord_after(c, ACT_COMMIT, changed_action, j);
  }
  log_debug("job state", "job=%s from=%s to=%s attempt=%u node=%s reason=%s", j->id,
            job_state_name(from), job_state_name(to), j->attempt, node_buf[0] ? node_buf : "-",
            reason ? reason : "-");
  return 0;
}

static void changed_action(struct coord *c, void *arg)
{
  struct cjob *j = arg;
  jobs_wake(c, j);
  cjob_unref(c, j);
}

/* RunJob goes only once the assignment is durable (docs/protocol.md). */
static void dispatch_action(struct coord *c, void *arg)
{
  struct cjob *j = arg;
  if (j->state == JS_ASSIGNED && !j->dispatched) {
    j->dispatched = 1;
    session_send_run(c, j);
    jobsvc_stdin_dispatched(c, j);
  }
  cjob_unref(c, j);
}

void cjob_assign(struct coord *c, struct cjob *j, struct cnode *n)
{
  j->attempt++;
  j->log_seq = 0;
  j->log_seq_acked = 0;
  j->log_attempt = j->attempt;
  j->log_small = 0;
  j->log_in_file = 0;
  j->log_known = 1; /* a new attempt has no log yet */
  if (j->progress) {
    protobuf_c_message_free_unpacked(&j->progress->base, NULL);
    j->progress = NULL;
  }
  node_link(j, n);
  n->last_assign = ++c->assigns;
  /* The state change after the link, so that its event names the node. */
  cjob_set_state(c, j, JS_ASSIGNED, NULL);
  cnode_update_avail(c, n);
  c->stats_dispatched++;
  cjob_ref(j);
  coord_after(c, ACT_COMMIT, dispatch_action, j);
}

void cjob_attempt_lost(struct coord *c, struct cjob *j, const char *reason)
{
  if (j->cancel_requested) {
    /* Whoever cancelled it does not want it run again. */
    pb_JobResult *r = xmalloc(sizeof(*r));
    drover__v1__job_result__init(r);
    r->state = DROVER__V1__JOB_STATE__JOB_STATE_CANCELLED;
    r->exit_code = -1;
    r->attempt = j->attempt;
    r->finished_at_us = coord_now_us();
    r->error = xasprintf("cancelled; its node was lost (%s)", reason);
    cjob_finish(c, j, r);
    return;
  }
  if (j->attempt < (j->max_attempts ? j->max_attempts : 1)) {
    char *why =
        xasprintf("%s; attempt %u of %u will follow", reason, j->attempt + 1, j->max_attempts);
    cjob_set_state(c, j, JS_QUEUED, why);
    free(why);
    return;
  }
  pb_JobResult *r = xmalloc(sizeof(*r));
  drover__v1__job_result__init(r);
  r->state = DROVER__V1__JOB_STATE__JOB_STATE_LOST;
  r->exit_code = -1;
  r->attempt = j->attempt;
  r->finished_at_us = coord_now_us();
  r->last_log_seq = j->log_seq;
  r->error =
      xasprintf("%s (attempt %u of %u)", reason, j->attempt, j->max_attempts ? j->max_attempts : 1);
  cjob_finish(c, j, r);
}

void cjob_node_gone(struct coord *c, struct cnode *n, const char *reason)
{
  /* cjob_attempt_lost unlinks each job from n->jobs. */
  while (n->jobs)
    cjob_attempt_lost(c, n->jobs, reason);
}

static void end_action(struct coord *c, void *arg)
{
  struct cjob *j = arg;
  j->end_committed = 1;
  jobsvc_job_ended(c, j);
  jobs_wake(c, j);
  cjob_unref(c, j);
}

void cjob_finish(struct coord *c, struct cjob *j, pb_JobResult *r)
{
  int to = (int)r->state;
  if (!job_state_terminal(to)) {
    free(r->error);
    r->error = xasprintf("the agent reported the job %s as its end", job_state_name(to));
    r->state = DROVER__V1__JOB_STATE__JOB_STATE_FAILED;
    to = JS_FAILED;
  }
  if (j->result)
    protobuf_c_message_free_unpacked(&j->result->base, NULL);
  j->result = r;
  r->attempt = j->attempt;
  const char *why = NULL;
  char buf[160];
  if (to == JS_CANCELLED && j->cancel_reason) {
    snprintf(buf, sizeof(buf), "%s", j->cancel_reason);
    why = buf;
  } else if (r->error && *r->error && (to == JS_LOST || to == JS_FAILED)) {
    snprintf(buf, sizeof(buf), "%.150s", r->error);
    why = buf;
  }
  if (cjob_set_state(c, j, to, why) < 0)
    return;
  logfile_release(j->log);
  j->log = NULL;
  cjob_ref(j);
  coord_after(c, ACT_COMMIT | ACT_LOGS, end_action, j);
}

/* ---- waiters ---- */

void waiter_add(struct cjob *j, struct waiter *w)
{
  w->next = j->waiters;
  j->waiters = w;
}

void waiter_del(struct cjob *j, struct waiter *w)
{
  for (struct waiter **p = &j->waiters; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      w->next = NULL;
      return;
    }
}

void jobs_wake_logs(struct coord *c, struct cjob *j)
{
  cjob_ref(j);
  for (struct waiter *w = j->waiters, *next; w; w = next) {
    next = w->next;
    if (w->logs)
      w->logs(c, w, j);
  }
  cjob_unref(c, j);
}

void jobs_wake(struct coord *c, struct cjob *j)
{
  /* A waker may remove itself (and only itself): take next first. */
  cjob_ref(j);
  for (struct waiter *w = j->waiters, *next; w; w = next) {
    next = w->next;
    if (w->wake)
      w->wake(c, w, j);
  }
  cjob_unref(c, j);
}

/* ---- loading at start ---- */

struct load_ctx {
  struct coord *c;
  int err;
};

static void load_one(void *ud, const struct store_job *row)
{
  struct load_ctx *lc = ud;
  struct coord *c = lc->c;
  struct cjob *j = xcalloc(1, sizeof(*j));
  j->refs = 1;
  snprintf(j->id, sizeof(j->id), "%s", row->id);
  j->spec = (pb_JobSpec *)protobuf_c_message_unpack(&drover__v1__job_spec__descriptor, NULL,
                                                    row->spec_len, row->spec);
  if (!j->spec) {
    log_error("stored job spec does not unpack; job skipped", "job=%s", row->id);
    free(j);
    return;
  }
  j->spec_bytes = xmalloc(row->spec_len ? row->spec_len : 1);
  memcpy(j->spec_bytes, row->spec, row->spec_len);
  j->spec_len = row->spec_len;
  j->state = row->state;
  j->attempt = row->attempt;
  j->max_attempts = row->max_attempts;
  j->created_us = row->created_us;
  j->updated_us = row->updated_us;
  j->reason = row->reason ? xstrdup(row->reason) : NULL;
  j->cancel_requested = row->cancel_requested;
  j->cancel_grace_ms = row->cancel_grace_ms;
  j->log_attempt = j->attempt;
  j->log_known = 0;                        /* read when the agent is back (session.c) */
  j->dispatched = j->state == JS_ASSIGNED; /* committed before we stopped */
  if (row->node_id) {
    snprintf(j->node_id, sizeof(j->node_id), "%s", row->node_id);
    j->last_node = cnode_get(c, row->node_id);
  }
  smap_put(&c->jobs, j->id, j);
  if (j->spec->idempotency_key && *j->spec->idempotency_key)
    smap_put(&c->keys, j->spec->idempotency_key, j);
  if (j->state == JS_QUEUED) {
    sched_enqueue(c, j);
  } else if (j->state == JS_ASSIGNED || j->state == JS_RUNNING) {
    struct cnode *n = row->node_id ? cnode_get(c, row->node_id) : NULL;
    if (n) {
      node_link(j, n);
    } else {
      /* Its node is unknown: as if lost (cannot happen unless the store was
       * edited by hand). */
      log_warn("job's node is unknown; requeueing", "job=%s node=%s", j->id,
               row->node_id ? row->node_id : "-");
      j->state = JS_RUNNING;
      cjob_attempt_lost(c, j, "its node is unknown after a restart");
    }
  }
}

int jobs_load(struct coord *c)
{
  size_t n;
  const int *term = job_state_terminals(&n);
  struct load_ctx lc = {c, 0};
  int rc = store_job_load_active(c->store, term, n, load_one, &lc);
  if (rc < 0)
    return rc;
  log_info("jobs loaded", "active=%zu queued=%zu", c->jobs.n, sched_queued(c));
  return lc.err;
}

static int release_one(const char *key, void *val, void *ud)
{
  struct cjob *j = val;
  struct coord *c = ud;
  (void)key;
  j->in_queue = 0;
  j->node = NULL;
  cjob_unref(c, j);
  return 0;
}

void jobs_release(struct coord *c)
{
  smap_foreach(&c->jobs, release_one, c);
  smap_release(&c->jobs, NULL);
  smap_release(&c->keys, NULL);
}
