/* pool.c - a bounded set of running execs fed from a priority queue (see
 * pool.h). The queue is a binary heap: higher priority first, then earlier
 * submission (a sequence number makes equal priorities FIFO). */
#include "exec/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

struct pool_job {
  struct pool *p;
  struct job job; /* moved in from pool_submit; released after on_done */
  uint64_t seq;
  int fd_stdin;   /* the job's stdin until its process has it; -1: /dev/null */
  struct exec *e; /* while running */
  struct pool_job *next, *prev;
};

struct pool {
  uv_loop_t *loop;
  unsigned slots;
  struct exec_opts opts;
  char *tmpdir;
  struct pool_ops ops;
  void *ud;
  struct pool_job **heap;
  size_t nheap, capheap;
  struct pool_job *running; /* list */
  unsigned nrunning;
  uint64_t seq;
  int paused, pumping;
};

/* ---- heap ---- */

static int before(const struct pool_job *a, const struct pool_job *b)
{
  if (a->job.priority != b->job.priority)
    return a->job.priority > b->job.priority;
  return a->seq < b->seq;
}

static void swap(struct pool *p, size_t i, size_t k)
{
  struct pool_job *t = p->heap[i];
  p->heap[i] = p->heap[k];
  p->heap[k] = t;
}

static void sift_up(struct pool *p, size_t i)
{
  while (i > 0 && before(p->heap[i], p->heap[(i - 1) / 2])) {
    swap(p, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void sift_down(struct pool *p, size_t i)
{
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < p->nheap && before(p->heap[l], p->heap[m]))
      m = l;
    if (r < p->nheap && before(p->heap[r], p->heap[m]))
      m = r;
    if (m == i)
      return;
    swap(p, i, m);
    i = m;
  }
}

static void heap_push(struct pool *p, struct pool_job *pj)
{
  if (p->nheap == p->capheap) {
    p->capheap = p->capheap ? p->capheap * 2 : 16;
    p->heap = xrealloc(p->heap, p->capheap * sizeof *p->heap);
  }
  p->heap[p->nheap++] = pj;
  sift_up(p, p->nheap - 1);
}

static struct pool_job *heap_take(struct pool *p, size_t i)
{
  struct pool_job *pj = p->heap[i];
  p->heap[i] = p->heap[--p->nheap];
  if (i < p->nheap) {
    sift_down(p, i);
    sift_up(p, i);
  }
  return pj;
}

/* ---- running ---- */

static void pump(struct pool *p);

static void close_stdin(struct pool_job *pj)
{
  if (pj->fd_stdin >= 0)
    close(pj->fd_stdin);
  pj->fd_stdin = -1;
}

static void finish_job(struct pool *p, struct pool_job *pj, const struct job_result *r)
{
  close_stdin(pj);
  if (p->ops.on_done)
    p->ops.on_done(p, p->ud, &pj->job, r);
  job_release(&pj->job);
  free(pj);
}

static void on_exec_line(struct exec *e, void *ud, enum job_stream s, int64_t ts, const char *data,
                         size_t len, unsigned flags)
{
  struct pool_job *pj = ud;
  struct pool *p = pj->p;
  if (p->ops.on_line)
    p->ops.on_line(p, p->ud, &pj->job, s, ts, data, len, (int)flags);
}

static void on_exec_progress(struct exec *e, void *ud, const struct job_progress *pr)
{
  struct pool_job *pj = ud;
  struct pool *p = pj->p;
  if (p->ops.on_progress)
    p->ops.on_progress(p, p->ud, &pj->job, pr);
}

static void on_exec_exit(struct exec *e, void *ud, const struct job_result *r)
{
  struct pool_job *pj = ud;
  struct pool *p = pj->p;

  if (pj->prev)
    pj->prev->next = pj->next;
  else
    p->running = pj->next;
  if (pj->next)
    pj->next->prev = pj->prev;
  p->nrunning--;
  finish_job(p, pj, r);
  pump(p);
}

static const struct exec_ops exec_ops = {
    .on_line = on_exec_line, .on_progress = on_exec_progress, .on_exit = on_exec_exit};

/* Starts queued jobs while slots are free. Callbacks it makes (on_before_start,
 * on_start, or on_done for a job that could not be set up) may submit or cancel; the
 * flag keeps that from nesting a second pump. */
static void pump(struct pool *p)
{
  if (p->pumping)
    return;
  p->pumping = 1;
  while (!p->paused && p->nrunning < p->slots && p->nheap > 0) {
    struct pool_job *pj = heap_take(p, 0);
    if (p->ops.on_before_start)
      p->ops.on_before_start(p, p->ud, &pj->job);
    struct exec_opts eo = p->opts;
    if (pj->fd_stdin >= 0) {
      eo.set_stdin = 1;
      eo.fd_stdin = pj->fd_stdin;
    }
    int rc = exec_start(p->loop, &pj->job, &eo, &exec_ops, pj, &pj->e);
    /* The child has its own copy now (or there is no child). */
    close_stdin(pj);
    if (rc < 0) {
      struct job_result r;
      job_result_init(&r);
      r.attempt = pj->job.attempt ? pj->job.attempt : 1;
      r.finished_us = now_us();
      r.error = xasprintf("could not start the job: %s", strerror(-rc));
      finish_job(p, pj, &r);
      job_result_release(&r);
      continue;
    }
    pj->prev = NULL;
    pj->next = p->running;
    if (p->running)
      p->running->prev = pj;
    p->running = pj;
    p->nrunning++;
    if (p->ops.on_start)
      p->ops.on_start(p, p->ud, pj->e, &pj->job);
  }
  p->pumping = 0;
}

/* ---- API ---- */

struct pool *pool_new(uv_loop_t *loop, unsigned slots, const struct exec_opts *opts,
                      const struct pool_ops *ops, void *ud)
{
  struct pool *p = xcalloc(1, sizeof *p);
  p->loop = loop;
  p->slots = slots ? slots : 1;
  if (opts)
    p->opts = *opts;
  if (p->opts.tmpdir)
    p->opts.tmpdir = p->tmpdir = xstrdup(p->opts.tmpdir);
  p->ops = *ops;
  p->ud = ud;
  return p;
}

void pool_submit(struct pool *p, struct job *j)
{
  pool_submit_stdin(p, j, -1);
}

void pool_submit_stdin(struct pool *p, struct job *j, int fd_stdin)
{
  struct pool_job *pj = xcalloc(1, sizeof *pj);
  pj->p = p;
  pj->fd_stdin = fd_stdin;
  pj->job = *j;
  memset(j, 0, sizeof *j);
  pj->seq = p->seq++;
  heap_push(p, pj);
  pump(p);
}

/* A queued job that is cancelled never ran: no process, started_us 0. */
static void cancel_queued(struct pool *p, struct pool_job *pj)
{
  struct job_result r;
  job_result_init(&r);
  r.status = JOB_CANCELLED;
  r.attempt = pj->job.attempt ? pj->job.attempt : 1;
  r.finished_us = now_us();
  finish_job(p, pj, &r);
  job_result_release(&r);
}

static int is_job(const struct pool_job *pj, const char *id, unsigned attempt)
{
  return strcmp(pj->job.id, id) == 0 && (!attempt || pj->job.attempt == attempt);
}

int pool_cancel(struct pool *p, const char *id, uint64_t grace_ms)
{
  return pool_cancel_attempt(p, id, 0, grace_ms);
}

int pool_cancel_attempt(struct pool *p, const char *id, unsigned attempt, uint64_t grace_ms)
{
  for (struct pool_job *pj = p->running; pj; pj = pj->next)
    if (is_job(pj, id, attempt)) {
      exec_cancel(pj->e, grace_ms);
      return 0;
    }
  for (size_t i = 0; i < p->nheap; i++)
    if (is_job(p->heap[i], id, attempt)) {
      cancel_queued(p, heap_take(p, i));
      return 0;
    }
  return -ENOENT;
}

void pool_pause(struct pool *p, int paused)
{
  p->paused = paused;
  if (!paused)
    pump(p);
}

void pool_cancel_all(struct pool *p, uint64_t grace_ms)
{
  /* Queued first, so that no slot freed by a cancelled run starts one. */
  while (p->nheap > 0)
    cancel_queued(p, heap_take(p, p->nheap - 1));
  /* exec_cancel never completes synchronously, so the list is stable. */
  for (struct pool_job *pj = p->running; pj; pj = pj->next)
    exec_cancel(pj->e, grace_ms);
}

unsigned pool_running(const struct pool *p)
{
  return p->nrunning;
}

size_t pool_queued(const struct pool *p)
{
  return p->nheap;
}

void pool_free(struct pool *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < p->nheap; i++) {
    close_stdin(p->heap[i]);
    job_release(&p->heap[i]->job);
    free(p->heap[i]);
  }
  free(p->heap);
  free(p->tmpdir);
  free(p);
}
