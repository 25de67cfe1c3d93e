/* bench_store.c - job state changes per second through the store, the way
 * the coordinator makes them, against one transaction per change.
 *
 *   bench_store DIR [JOBS [IN_FLIGHT [BASELINE_JOBS]]]
 *
 * A job is four changes, each a store_job_put and a store_event_add followed
 * by a store_sync whose callback makes the job's next change (as the
 * coordinator tells nobody of a change before it is durable): queued (a new
 * row with a ~120-byte spec and two labels), assigned, running, succeeded
 * (with a ~200-byte result). Group commit: IN_FLIGHT jobs go at once, each
 * starting the next when it ends, so the changes of many jobs share each
 * commit. Baseline, in the same run on the same disk: one job at a time, so
 * every change is its own transaction and fsync.
 *
 * Prints key=value figures (rates, commits, barrier latency); nothing
 * passes or fails on them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/util.h"
#include "store/store.h"

enum { QUEUED = 1, ASSIGNED = 2, RUNNING = 3, SUCCEEDED = 4 };

struct run;

struct slot {
  struct run *r;
  char id[64];
  int step; /* 0..3: the change being made */
  int64_t created_us, synced_at;
};

struct run {
  uv_loop_t *loop;
  struct store *s;
  long jobs, started, ended;
  struct slot *slots;
  int64_t *lat_us; /* per change: store_sync to its callback */
  long nlat;
  uint64_t iter, last_fire_iter, commits; /* loop turns in which barriers fired */
  uv_check_t check;
};

static uint8_t spec[120], result[200];
static struct store_kv labels[] = {{"team", "infra"}, {"os", "linux"}};
static const int states[] = {QUEUED, ASSIGNED, RUNNING, SUCCEEDED};

static void on_synced(void *ud, int status);

static void change(struct slot *sl)
{
  struct run *r = sl->r;
  int64_t now = now_us();
  struct store_job j = {0};
  snprintf(j.id, sizeof j.id, "%s", sl->id);
  j.state = states[sl->step];
  j.attempt = 1;
  j.max_attempts = 1;
  j.created_us = sl->created_us;
  j.updated_us = now;
  j.name = "bench";
  j.node_id = sl->step ? "node-0001" : NULL;
  j.labels = labels;
  j.nlabels = 2;
  j.spec = spec;
  j.spec_len = sizeof spec;
  if (j.state == SUCCEEDED) {
    j.result = result;
    j.result_len = sizeof result;
  }
  store_job_put(r->s, &j);
  struct store_event e = {0};
  snprintf(e.job_id, sizeof e.job_id, "%s", sl->id);
  e.ts_us = now;
  e.from = sl->step ? states[sl->step - 1] : 0;
  e.to = states[sl->step];
  e.node_id = (char *)j.node_id;
  e.attempt = 1;
  store_event_add(r->s, &e);
  sl->synced_at = mono_us();
  store_sync(r->s, on_synced, sl);
}

static void start_job(struct slot *sl)
{
  struct run *r = sl->r;
  snprintf(sl->id, sizeof sl->id, "bench-%08ld", r->started++);
  sl->step = 0;
  sl->created_us = now_us();
  change(sl);
}

static void on_synced(void *ud, int status)
{
  struct slot *sl = ud;
  struct run *r = sl->r;
  if (status != 0) {
    fprintf(stderr, "bench_store: store_sync: %s\n", store_strerror(status));
    exit(1);
  }
  r->lat_us[r->nlat++] = mono_us() - sl->synced_at;
  if (r->iter != r->last_fire_iter) {
    r->last_fire_iter = r->iter;
    r->commits++;
  }
  if (++sl->step < 4) {
    change(sl);
    return;
  }
  r->ended++;
  if (r->started < r->jobs)
    start_job(sl);
}

static void on_check(uv_check_t *h)
{
  ((struct run *)h->data)->iter++;
}

/* CPU time of the whole process (loop and thread pool), microseconds. */
static int64_t cpu_us(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void on_closed(void *ud)
{
  *(int *)ud = 1;
}

/* Runs jobs through a store in dir, in_flight at a time; prints one line. */
static double run(uv_loop_t *loop, const char *label, const char *dir, long jobs, long in_flight)
{
  struct run r = {.loop = loop, .jobs = jobs};
  char err[512];
  int rc = store_open(loop, dir, &r.s, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "bench_store: %s\n", err);
    exit(1);
  }
  r.slots = xcalloc((size_t)in_flight, sizeof(*r.slots));
  r.lat_us = xcalloc((size_t)jobs * 4, sizeof(*r.lat_us));
  uv_check_init(loop, &r.check);
  r.check.data = &r;
  uv_check_start(&r.check, on_check);
  uv_unref((uv_handle_t *)&r.check);

  int64_t t0 = mono_us(), c0 = cpu_us();
  for (long i = 0; i < in_flight && r.started < jobs; i++) {
    r.slots[i].r = &r;
    start_job(&r.slots[i]);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  double secs = (double)(mono_us() - t0) / 1e6;
  double cpu_ms = (double)(cpu_us() - c0) / 1e3;
  if (r.ended != jobs) {
    fprintf(stderr, "bench_store: %ld of %ld jobs ended\n", r.ended, jobs);
    exit(1);
  }
  qsort(r.lat_us, (size_t)r.nlat, sizeof(*r.lat_us), cmp_i64);
  printf("%s: jobs=%ld in_flight=%ld changes=%ld seconds=%.3f jobs_per_s=%.0f "
         "changes_per_s=%.0f commits=%" PRIu64 " changes_per_commit=%.1f sync_p50_ms=%.2f "
         "sync_p99_ms=%.2f cpu_us_per_change=%.1f\n",
         label, jobs, in_flight, r.nlat, secs, (double)jobs / secs, (double)r.nlat / secs,
         r.commits, (double)r.nlat / (double)(r.commits ? r.commits : 1),
         (double)r.lat_us[r.nlat / 2] / 1e3, (double)r.lat_us[r.nlat * 99 / 100] / 1e3,
         cpu_ms * 1e3 / (double)r.nlat);
  fflush(stdout);

  int closed = 0;
  uv_close((uv_handle_t *)&r.check, NULL);
  store_close(r.s, on_closed, &closed);
  uv_run(loop, UV_RUN_DEFAULT);
  free(r.slots);
  free(r.lat_us);
  return (double)jobs / secs;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: bench_store DIR [JOBS [IN_FLIGHT [BASELINE_JOBS]]]\n");
    return 2;
  }
  long jobs = argc > 2 ? atol(argv[2]) : 50000;
  long in_flight = argc > 3 ? atol(argv[3]) : 1000;
  long base_jobs = argc > 4 ? atol(argv[4]) : 500;
  if (jobs < 1 || in_flight < 1 || base_jobs < 1) {
    fprintf(stderr, "bench_store: JOBS, IN_FLIGHT and BASELINE_JOBS must be positive\n");
    return 2;
  }
  for (size_t i = 0; i < sizeof spec; i++)
    spec[i] = (uint8_t)(i * 31 + 7);
  for (size_t i = 0; i < sizeof result; i++)
    result[i] = (uint8_t)(i * 17 + 1);

  uv_loop_t loop;
  uv_loop_init(&loop);
  char *gdir = xasprintf("%s/group", argv[1]), *bdir = xasprintf("%s/baseline", argv[1]);
  double base = run(&loop, "baseline (a transaction per change)", bdir, base_jobs, 1);
  double group = run(&loop, "group commit", gdir, jobs, in_flight);
  printf("ratio: group_commit_jobs_per_s / baseline_jobs_per_s = %.1f\n", group / base);
  uv_loop_close(&loop);
  free(gdir);
  free(bdir);
  return 0;
}
