/* store.c - the store's group-commit engine, the same for every backend.
 *
 * Writes are copied into `pending` on the loop thread. When no commit is in
 * flight, the whole of `pending` becomes one batch, handed to the backend's
 * commit on the thread pool (one transaction); what is queued meanwhile waits
 * in `pending` for the next batch. So the first change after a quiet spell is
 * on its way to the disk at the end of the loop turn that made it (nothing
 * waits for a timer to gather more), and under load every fsync carries all
 * the changes made while the previous one was on the disk.
 *
 * Barriers (store_sync) ride with the operations: a barrier queued behind
 * operations belongs to their batch; one queued when nothing is pending but a
 * batch is in flight joins that batch (everything queued before it is in
 * there); one queued when the store is idle fires from the next loop turn.
 * Barriers fire in the order they were made, after their batch is durable.
 *
 * A batch whose commit fails stays the batch in flight: the backend rolled it
 * back, and after a backoff (10 ms doubling to 5 s) it is tried again with
 * whatever was queued meanwhile appended behind it, so nothing is lost,
 * reordered or acknowledged early however long the disk stays full. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "store/store_int.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 5000

struct barrier {
  struct barrier *next;
  uint64_t seq; /* the operations queued before it are those with seq <= this */
  int status;
  void (*cb)(void *ud, int status);
  void *ud;
};

/* A list of operations and the barriers that wait for them. */
struct batch {
  struct store_op *ops, **ops_tail;
  size_t nops;
  struct barrier *barriers, **barriers_tail;
};

enum commit_state {
  IDLE,    /* no batch in flight */
  RUNNING, /* the batch in flight is being committed on the thread pool */
  BACKOFF, /* its last attempt failed; the timer brings the next one */
};

struct store {
  uv_loop_t *loop;
  const struct store_backend_ops *be_ops;
  struct store_backend *be;

  struct batch pending;  /* queued, not yet part of a commit */
  struct batch inflight; /* being committed or waiting to be retried (not IDLE) */
  enum commit_state state;
  uv_work_t work;
  int work_rc;
  char work_why[256];
  /* Either a kick (0 ms, IDLE: start a commit or fire barriers from the next
   * loop turn) or the retry of a failed commit (BACKOFF). */
  uv_timer_t timer;

  uint64_t last_seq; /* operations queued so far */
  int refused_carry; /* an operation after the last fired barrier was refused */

  /* The current failure streak. */
  int degraded;
  unsigned failed_attempts;
  uint64_t backoff_ms;
  int64_t degraded_since_us;

  int closing, closed;
  void (*close_cb)(void *ud);
  void *close_ud;
};

static void batch_init(struct batch *b)
{
  memset(b, 0, sizeof(*b));
  b->ops_tail = &b->ops;
  b->barriers_tail = &b->barriers;
}

static int batch_empty(const struct batch *b)
{
  return !b->ops && !b->barriers;
}

/* Moves everything src holds behind what dst holds; src is left empty. */
static void batch_append(struct batch *dst, struct batch *src)
{
  if (src->ops) {
    *dst->ops_tail = src->ops;
    dst->ops_tail = src->ops_tail;
    dst->nops += src->nops;
  }
  if (src->barriers) {
    *dst->barriers_tail = src->barriers;
    dst->barriers_tail = src->barriers_tail;
  }
  batch_init(src);
}

const char *store_strerror(int err)
{
  switch (err) {
  case 0:
    return "success";
  case STORE_E_CORRUPT:
    return "the database is damaged or not drover's";
  case STORE_E_VERSION:
    return "the database was made by a newer drover";
  case STORE_E_SQL:
    return "database error";
  case STORE_E_CONSTRAINT:
    return "an operation broke a database constraint";
  default:
    return err < 0 && err > -4096 ? strerror(-err) : "unknown store error";
  }
}

/* ---- releasing rows ------------------------------------------------------ */

void store_job_release(struct store_job *j)
{
  free(j->name);
  free(j->node_id);
  free(j->idempotency_key);
  free(j->reason);
  for (size_t i = 0; i < j->nlabels; i++) {
    free(j->labels[i].key);
    free(j->labels[i].value);
  }
  free(j->labels);
  free(j->spec);
  free(j->result);
  memset(j, 0, sizeof(*j));
}

void store_event_release(struct store_event *e)
{
  free(e->node_id);
  free(e->reason);
  memset(e, 0, sizeof(*e));
}

void store_node_release(struct store_node *n)
{
  free(n->name);
  free(n->info);
  memset(n, 0, sizeof(*n));
}

void store_token_release(struct store_token *t)
{
  free(t->description);
  memset(t, 0, sizeof(*t));
}

/* ---- committing ---------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void commit_work(uv_work_t *req)
{
  struct store *s = req->data;
  s->work_why[0] = '\0';
  s->work_rc = s->be_ops->commit(s->be, s->inflight.ops, s->work_why, sizeof s->work_why);
}

static const char *op_name(const struct store_op *o, const char **key)
{
  switch (o->kind) {
  case STORE_OP_JOB_PUT:
    *key = o->u.job.id;
    return "job_put";
  case STORE_OP_EVENT_ADD:
    *key = o->u.event.job_id;
    return "event_add";
  case STORE_OP_NODE_PUT:
    *key = o->u.node.id;
    return "node_put";
  case STORE_OP_TOKEN_PUT:
    *key = o->u.token.id;
    return "token_put";
  case STORE_OP_TOKEN_DELETE:
    *key = o->u.token_id;
    return "token_delete";
  case STORE_OP_LOG_PUT:
    *key = o->u.log.job_id;
    return "log_put";
  }
  *key = "";
  return "?";
}

/* Ends a batch that is committed (or, for barriers queued on an idle store,
 * that had nothing to commit): logs what the database refused, frees the
 * operations, then runs the barriers in order. A barrier's status says
 * whether an operation between the barrier before it (perhaps in an earlier
 * batch: refused_carry) and itself was refused. Statuses are all worked out
 * before the first callback, which may queue more: those go to later
 * batches, since b is no longer pending nor in flight. */
static void batch_done(struct store *s, struct batch *b)
{
  struct store_op *o = b->ops;
  for (struct barrier *w = b->barriers; w; w = w->next) {
    for (; o && o->seq <= w->seq; o = o->next)
      s->refused_carry |= o->refused;
    w->status = s->refused_carry ? STORE_E_CONSTRAINT : 0;
    s->refused_carry = 0;
  }
  for (; o; o = o->next)
    s->refused_carry |= o->refused;

  for (o = b->ops; o;) {
    struct store_op *next = o->next;
    if (o->refused) {
      const char *key;
      const char *name = op_name(o, &key);
      log_error("store refused an operation and dropped it", "op=%s id=%s error=%s", name, key,
                o->why ? o->why : "?");
    }
    free(o->why);
    free(o);
    o = next;
  }
  for (struct barrier *w = b->barriers; w;) {
    struct barrier *next = w->next;
    w->cb(w->ud, w->status);
    free(w);
    w = next;
  }
}

/* The last step of store_close, once nothing is queued or in flight. */
static void on_closed(uv_handle_t *h)
{
  struct store *s = h->data;
  void (*cb)(void *) = s->close_cb;
  void *ud = s->close_ud;
  s->be_ops->close(s->be);
  free(s);
  if (cb)
    cb(ud);
}

static void maybe_closed(struct store *s)
{
  if (!s->closing || s->closed || s->state != IDLE || !batch_empty(&s->pending))
    return;
  s->closed = 1;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_closed);
}

static void commit_done(uv_work_t *req, int status);

static void queue_commit(struct store *s)
{
  s->state = RUNNING;
  if (uv_queue_work(s->loop, &s->work, commit_work, commit_done) < 0) {
    /* Only for bad arguments, which these are not; commit here and now. */
    commit_work(&s->work);
    commit_done(&s->work, 0);
  }
}

/* IDLE: everything pending becomes the batch in flight. */
static void start_commit(struct store *s)
{
  uv_timer_stop(&s->timer); /* a kick armed meanwhile has nothing left to do */
  batch_append(&s->inflight, &s->pending);
  queue_commit(s);
}

static void commit_done(uv_work_t *req, int status)
{
  struct store *s = req->data;
  int rc = status < 0 ? status : s->work_rc;
  if (rc < 0) {
    /* Rolled back: the same batch goes again after the backoff, with what
     * was queued meanwhile. One log line per streak, not per attempt: the
     * disk may stay full for hours. */
    s->failed_attempts++;
    if (!s->degraded) {
      s->degraded = 1;
      s->degraded_since_us = mono_us();
      log_error("store commit failed: retrying until it succeeds", "backend=%s error=%s ops=%zu",
                s->be_ops->name, s->work_why[0] ? s->work_why : store_strerror(rc),
                s->inflight.nops);
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
      s->backoff_ms = BACKOFF_MAX_MS;
    s->state = BACKOFF;
    uv_timer_start(&s->timer, on_timer, s->backoff_ms, 0);
    return;
  }
  if (s->degraded) {
    log_info("store commits succeed again", "backend=%s failed_attempts=%u seconds=%.3f",
             s->be_ops->name, s->failed_attempts, (double)(mono_us() - s->degraded_since_us) / 1e6);
    s->degraded = 0;
    s->failed_attempts = 0;
    s->backoff_ms = 0;
  }
  struct batch done = s->inflight; /* only walked: its tail pointers are not used */
  batch_init(&s->inflight);
  s->state = IDLE;
  batch_done(s, &done);
  /* What was queued while this batch was on the disk (or by the barriers'
   * callbacks) goes now; start_commit stops the kick those armed. */
  if (s->state == IDLE && s->pending.ops)
    start_commit(s);
  maybe_closed(s);
}

static void on_timer(uv_timer_t *t)
{
  struct store *s = t->data;
  if (s->state == BACKOFF) {
    /* The failed attempt's refusals are found again by this one. */
    for (struct store_op *o = s->inflight.ops; o; o = o->next) {
      o->refused = 0;
      free(o->why);
      o->why = NULL;
    }
    batch_append(&s->inflight, &s->pending);
    queue_commit(s);
  } else if (s->state == IDLE && s->pending.ops) {
    start_commit(s);
  } else if (s->state == IDLE && s->pending.barriers) {
    struct batch b = s->pending;
    batch_init(&s->pending);
    batch_done(s, &b);
    maybe_closed(s);
  }
}

/* Arms the kick when the store is idle: the commit starts once the current
 * loop turn is over, with everything queued during it. */
static void kick(struct store *s)
{
  if (s->state == IDLE && !uv_is_active((uv_handle_t *)&s->timer))
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

/* ---- open, close --------------------------------------------------------- */

int store_open(uv_loop_t *loop, const char *dir, struct store **out, char *err, size_t errlen)
{
  struct store_backend *be;
  if (errlen)
    err[0] = '\0';
  int rc = store_sqlite_backend.open(dir, &be, err, errlen);
  if (rc < 0)
    return rc;
  struct store *s = xcalloc(1, sizeof(*s));
  s->loop = loop;
  s->be_ops = &store_sqlite_backend;
  s->be = be;
  batch_init(&s->pending);
  batch_init(&s->inflight);
  s->work.data = s;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  *out = s;
  return 0;
}

void store_close(struct store *s, void (*cb)(void *ud), void *ud)
{
  s->closing = 1;
  s->close_cb = cb;
  s->close_ud = ud;
  maybe_closed(s);
}

int store_schema_version(const struct store *s)
{
  return s->be_ops->schema_version(s->be);
}

int store_degraded(const struct store *s)
{
  return s->degraded;
}

size_t store_pending(const struct store *s)
{
  return s->pending.nops + (s->state != IDLE ? s->inflight.nops : 0);
}

/* ---- writes -------------------------------------------------------------- */

/* Each operation is one allocation: the op, then the arrays, strings and
 * bytes its pointers point to (struct store_op's size is a multiple of its
 * alignment, so an array of struct store_kv can follow it directly). */
static size_t str_size(const char *str)
{
  return str ? strlen(str) + 1 : 0;
}

static char *copy_str(char **p, const char *str)
{
  if (!str)
    return NULL;
  size_t n = strlen(str) + 1;
  char *r = memcpy(*p, str, n);
  *p += n;
  return r;
}

/* NULL stays NULL; an empty non-NULL blob stays non-NULL (a result of zero
 * bytes is still a result). */
static uint8_t *copy_bytes(char **p, const uint8_t *b, size_t n)
{
  if (!b)
    return NULL;
  uint8_t *r = (uint8_t *)*p;
  if (n)
    memcpy(r, b, n);
  *p += n;
  return r;
}

static struct store_op *op_new(enum store_op_kind kind, size_t extra, char **p)
{
  struct store_op *o = xmalloc(sizeof(*o) + extra);
  memset(o, 0, sizeof(*o));
  o->kind = kind;
  *p = (char *)(o + 1);
  return o;
}

static void op_queue(struct store *s, struct store_op *o)
{
  o->seq = ++s->last_seq;
  *s->pending.ops_tail = o;
  s->pending.ops_tail = &o->next;
  s->pending.nops++;
  kick(s);
}

void store_job_put(struct store *s, const struct store_job *j)
{
  size_t nl = j->labels ? j->nlabels : 0;
  const uint8_t *spec = j->spec_len ? j->spec : NULL, *result = j->result;
  size_t extra = nl * sizeof(struct store_kv) + str_size(j->name) + str_size(j->node_id) +
                 str_size(j->idempotency_key) + str_size(j->reason) + (spec ? j->spec_len : 0) +
                 (result ? j->result_len : 0);
  for (size_t i = 0; i < nl; i++)
    extra += str_size(j->labels[i].key) + str_size(j->labels[i].value);
  char *p;
  struct store_op *o = op_new(STORE_OP_JOB_PUT, extra, &p);
  struct store_job *d = &o->u.job;
  *d = *j;
  d->id[sizeof d->id - 1] = '\0';
  d->nlabels = nl;
  d->labels = nl ? (struct store_kv *)p : NULL;
  p += nl * sizeof(struct store_kv);
  for (size_t i = 0; i < nl; i++) {
    d->labels[i].key = copy_str(&p, j->labels[i].key);
    d->labels[i].value = copy_str(&p, j->labels[i].value);
  }
  d->name = copy_str(&p, j->name);
  d->node_id = copy_str(&p, j->node_id);
  d->idempotency_key = copy_str(&p, j->idempotency_key);
  d->reason = copy_str(&p, j->reason);
  d->spec = copy_bytes(&p, spec, j->spec_len);
  d->spec_len = spec ? j->spec_len : 0;
  d->result = copy_bytes(&p, result, j->result_len);
  d->result_len = result ? j->result_len : 0;
  op_queue(s, o);
}

void store_event_add(struct store *s, const struct store_event *e)
{
  char *p;
  struct store_op *o = op_new(STORE_OP_EVENT_ADD, str_size(e->node_id) + str_size(e->reason), &p);
  struct store_event *d = &o->u.event;
  *d = *e;
  d->id = 0;
  d->job_id[sizeof d->job_id - 1] = '\0';
  d->node_id = copy_str(&p, e->node_id);
  d->reason = copy_str(&p, e->reason);
  op_queue(s, o);
}

void store_node_put(struct store *s, const struct store_node *n)
{
  char *p;
  const uint8_t *info = n->info_len ? n->info : NULL;
  struct store_op *o = op_new(STORE_OP_NODE_PUT, str_size(n->name) + (info ? n->info_len : 0), &p);
  struct store_node *d = &o->u.node;
  *d = *n;
  d->id[sizeof d->id - 1] = '\0';
  d->secret_hash[sizeof d->secret_hash - 1] = '\0';
  d->name = copy_str(&p, n->name);
  d->info = copy_bytes(&p, info, n->info_len);
  d->info_len = info ? n->info_len : 0;
  op_queue(s, o);
}

void store_token_put(struct store *s, const struct store_token *t)
{
  char *p;
  struct store_op *o = op_new(STORE_OP_TOKEN_PUT, str_size(t->description), &p);
  struct store_token *d = &o->u.token;
  *d = *t;
  d->id[sizeof d->id - 1] = '\0';
  d->hash[sizeof d->hash - 1] = '\0';
  d->description = copy_str(&p, t->description);
  op_queue(s, o);
}

void store_token_delete(struct store *s, const char *id)
{
  char *p;
  struct store_op *o = op_new(STORE_OP_TOKEN_DELETE, 0, &p);
  snprintf(o->u.token_id, sizeof o->u.token_id, "%s", id);
  op_queue(s, o);
}

void store_log_put(struct store *s, const char *job_id, uint32_t attempt, uint64_t seq,
                   const void *data, size_t len)
{
  char *p;
  struct store_op *o = op_new(STORE_OP_LOG_PUT, len, &p);
  struct store_log_op *l = &o->u.log;
  snprintf(l->job_id, sizeof l->job_id, "%s", job_id);
  l->attempt = attempt;
  l->seq = seq;
  l->len = len;
  l->data = (const uint8_t *)p;
  if (len)
    memcpy(p, data, len);
  op_queue(s, o);
}

void store_sync(struct store *s, void (*cb)(void *ud, int status), void *ud)
{
  struct barrier *w = xcalloc(1, sizeof(*w));
  w->seq = s->last_seq;
  w->cb = cb;
  w->ud = ud;
  /* Nothing pending but a batch in flight: everything queued before this
   * barrier is in that batch, so the barrier goes with it. */
  struct batch *b = !s->pending.ops && s->state != IDLE ? &s->inflight : &s->pending;
  *b->barriers_tail = w;
  b->barriers_tail = &w->next;
  kick(s);
}

/* ---- reads --------------------------------------------------------------- */

int store_job_get(struct store *s, const char *id, struct store_job *out)
{
  return s->be_ops->job_get(s->be, id, out);
}

int store_job_find_key(struct store *s, const char *key, char id[129])
{
  return s->be_ops->job_find_key(s->be, key, id);
}

int store_job_list(struct store *s, const struct store_job_filter *f,
                   void (*cb)(void *ud, const struct store_job *j), void *ud, char **next)
{
  return s->be_ops->job_list(s->be, f, cb, ud, next);
}

int store_job_load_active(struct store *s, const int *terminal, size_t n,
                          void (*cb)(void *ud, const struct store_job *j), void *ud)
{
  return s->be_ops->job_load_active(s->be, terminal, n, cb, ud);
}

int store_event_list(struct store *s, const char *job_id,
                     void (*cb)(void *ud, const struct store_event *e), void *ud)
{
  return s->be_ops->event_list(s->be, job_id, cb, ud);
}

int store_node_load(struct store *s, void (*cb)(void *ud, const struct store_node *n), void *ud)
{
  return s->be_ops->node_load(s->be, cb, ud);
}

int store_token_load(struct store *s, void (*cb)(void *ud, const struct store_token *t), void *ud)
{
  return s->be_ops->token_load(s->be, cb, ud);
}

int store_log_read(struct store *s, const char *job_id, uint32_t attempt, uint64_t after_seq,
                   uint32_t limit,
                   int (*cb)(void *ud, uint64_t seq, const uint8_t *data, size_t len), void *ud)
{
  return s->be_ops->log_read(s->be, job_id, attempt, after_seq, limit, cb, ud);
}

int store_log_last(struct store *s, const char *job_id, uint32_t attempt, uint64_t *seq)
{
  return s->be_ops->log_last(s->be, job_id, attempt, seq);
}
