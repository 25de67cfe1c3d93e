/* sim_jobs.c - the client side of the dispatch benchmark, on JobService and
 * TokenService: trivial jobs submitted through pipelined Submit calls on one
 * connection, a Wait per job, and the check afterwards that the store holds
 * every job succeeded with its whole event trail.
 *
 * Bounds: at most in_flight Submit calls are outstanding (the coordinator
 * answers a Submit after its group commit, so this is how many jobs can
 * share one commit), and at most `window` jobs are submitted and not known
 * ended, which keeps the coordinator's queue full without holding 50,000
 * Wait streams open. Wait streams are spread over connections of at most
 * WAIT_STREAMS_PER_CONN, below the server's 4,096 concurrent streams. */
#include "bench/sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define WAIT_STREAMS_PER_CONN 2000
#define LIST_PAGE             10000

struct jcall {
  struct sub *s;
  long idx;
  int64_t t0; /* mono_us() when its Submit was sent */
};

struct sub {
  uv_loop_t *loop;
  const struct sim_jobs_opts *o;
  struct sim_agents *agents;
  rpc_client *submit_c;
  rpc_client **wait_c;
  unsigned nwait_c;
  uv_check_t check;
  struct jcall *jc;
  char **ids;
  long next;             /* the next job to submit */
  unsigned submits_out;  /* Submit calls outstanding */
  long calls;            /* calls started and not ended (Submit and Wait) */
  long outstanding;      /* submitted (sent) and not known ended */
  long submitted, ended; /* Submit replies, Wait replies (or result Acks) */
  long not_succeeded, errors;
  int64_t t_first, t_last_submit, t_last_end;
  int64_t *lat;
  long nlat;
  uint8_t *req;
  size_t req_len;
  char first_error[256];
};

static void note(struct sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct sub *s, const char *fmt, ...)
{
  if (s->first_error[0])
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->first_error, sizeof(s->first_error), fmt, ap);
  va_end(ap);
}

static void pump(struct sub *s);

/* ---- Wait ---- */

static void wait_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct jcall *jc = ud;
  struct sub *s = jc->s;
  pb_Job *job = (pb_Job *)m->msg;
  (void)call;
  if (!job || job->state != DROVER__V1__JOB_STATE__JOB_STATE_SUCCEEDED) {
    s->not_succeeded++;
    note(s, "job '%s' ended %d (%s)", s->ids[jc->idx], job ? (int)job->state : -1,
         job && job->reason ? job->reason : "-");
  }
}

static void wait_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct jcall *jc = ud;
  struct sub *s = jc->s;
  (void)call;
  s->calls--;
  s->outstanding--;
  if (st->code != RPC_OK) {
    s->errors++;
    note(s, "Wait '%s': %s: %s", s->ids[jc->idx], rpc_code_name(st->code),
         st->message ? st->message : "");
    return;
  }
  s->ended++;
  s->t_last_end = mono_us();
  s->lat[s->nlat++] = s->t_last_end - jc->t0;
}

static void start_wait(struct sub *s, struct jcall *jc)
{
  Drover__V1__WaitRequest w = DROVER__V1__WAIT_REQUEST__INIT;
  w.id = s->ids[jc->idx];
  struct rpc_call_opts o = {
      .method = "/drover.v1.JobService/Wait",
      .response = &drover__v1__job__descriptor,
      .h = {.on_message = wait_message, .on_done = wait_done},
      .ud = jc,
  };
  int rc = rpc_call_unary(s->wait_c[jc->idx % s->nwait_c], &o, &w.base, NULL);
  if (rc == 0) {
    s->calls++;
  } else {
    s->outstanding--;
    s->errors++;
    note(s, "cannot start Wait: %s", rpc_strerror(rc));
  }
}

/* ---- Submit ---- */

static void submit_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct jcall *jc = ud;
  Drover__V1__SubmitResponse *r = (Drover__V1__SubmitResponse *)m->msg;
  (void)call;
  if (r && r->job && r->job->spec && r->job->spec->id)
    jc->s->ids[jc->idx] = xstrdup(r->job->spec->id);
}

static void submit_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct jcall *jc = ud;
  struct sub *s = jc->s;
  (void)call;
  s->calls--;
  s->submits_out--;
  if (st->code != RPC_OK || !s->ids[jc->idx]) {
    s->outstanding--;
    s->errors++;
    note(s, "Submit: %s: %s", rpc_code_name(st->code), st->message ? st->message : "no job id");
    return;
  }
  s->submitted++;
  s->t_last_submit = mono_us();
  if (s->o->wait)
    start_wait(s, jc);
}

static void pump(struct sub *s)
{
  if (!s->o->wait && s->agents) {
    /* Not waiting: a job is known ended when its agent got the result Ack,
     * which the coordinator sends once the end is committed. */
    struct sim_agent_stats st;
    sim_agents_stats(s->agents, &st);
    s->ended = (long)st.results_acked;
    s->t_last_end = st.last_result_ack_us;
    s->outstanding = s->next - s->ended - s->errors;
  }
  while (s->next < s->o->jobs && s->submits_out < s->o->in_flight &&
         s->outstanding < (long)s->o->window) {
    struct jcall *jc = &s->jc[s->next];
    jc->s = s;
    jc->idx = s->next++;
    jc->t0 = mono_us();
    if (!s->t_first)
      s->t_first = jc->t0;
    struct rpc_call_opts o = {
        .method = "/drover.v1.JobService/Submit",
        .response = &drover__v1__submit_response__descriptor,
        .h = {.on_message = submit_message, .on_done = submit_done},
        .ud = jc,
    };
    rpc_call *call;
    int rc = rpc_call_start(s->submit_c, &o, &call);
    if (rc < 0) {
      s->errors++;
      note(s, "cannot start Submit: %s", rpc_strerror(rc));
      continue;
    }
    rpc_call_send_bytes(call, s->req, s->req_len);
    rpc_call_half_close(call);
    s->submits_out++;
    s->calls++;
    s->outstanding++;
  }
}

/* Every loop turn: replies free room in the bounds, so submit more. */
static void check_cb(uv_check_t *h)
{
  pump(h->data);
}

static int all_done(void *ud)
{
  struct sub *s = ud;
  pump(s);
  return s->ended + s->errors >= s->o->jobs && s->submits_out == 0 &&
         (!s->o->wait || s->outstanding == 0);
}

static int calls_over(void *ud)
{
  return ((struct sub *)ud)->calls == 0;
}

static int cmp64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int sim_jobs_run(uv_loop_t *loop, const struct sim_jobs_opts *o, struct sim_agents *agents,
                 struct sim_jobs_result *r)
{
  struct sub s = {.loop = loop, .o = o, .agents = agents};
  memset(r, 0, sizeof(*r));
  pb_JobSpec spec = DROVER__V1__JOB_SPEC__INIT;
  spec.kind = DROVER__V1__JOB_KIND__JOB_KIND_SHELL;
  spec.command = "true";
  spec.name = "bench";
  Drover__V1__SubmitRequest req = DROVER__V1__SUBMIT_REQUEST__INIT;
  req.spec = &spec;
  s.req_len = protobuf_c_message_get_packed_size(&req.base);
  s.req = xmalloc(s.req_len);
  protobuf_c_message_pack(&req.base, s.req);
  s.jc = xcalloc((size_t)o->jobs, sizeof(*s.jc));
  s.ids = xcalloc((size_t)o->jobs, sizeof(*s.ids));
  s.lat = xcalloc((size_t)o->jobs, sizeof(*s.lat));
  s.submit_c = sim_client_new(loop, o->target, NULL);
  s.nwait_c = o->wait ? (o->window + WAIT_STREAMS_PER_CONN - 1) / WAIT_STREAMS_PER_CONN : 0;
  s.wait_c = xcalloc(s.nwait_c + 1, sizeof(*s.wait_c));
  int ok = s.submit_c != NULL;
  for (unsigned i = 0; i < s.nwait_c; i++)
    ok = ok && (s.wait_c[i] = sim_client_new(loop, o->target, NULL)) != NULL;
  int rc = -1;
  if (ok) {
    uv_check_init(loop, &s.check);
    s.check.data = &s;
    uv_check_start(&s.check, check_cb);
    pump(&s);
    uint64_t limit_ms = 120000 + (uint64_t)o->jobs * 10;
    if (sim_run_until(loop, all_done, &s, limit_ms) < 0)
      note(&s, "not every job ended within %llu s: %ld submitted, %ld ended",
           (unsigned long long)limit_ms / 1000, s.submitted, s.ended);
    sim_close(loop, (uv_handle_t *)&s.check);
    r->submitted = s.submitted;
    r->ended = s.ended;
    r->not_succeeded = s.not_succeeded;
    r->errors = s.errors;
    r->seconds = (double)(s.t_last_end - s.t_first) / 1e6;
    r->submit_seconds = (double)(s.t_last_submit - s.t_first) / 1e6;
    if (s.nlat) {
      qsort(s.lat, (size_t)s.nlat, sizeof(*s.lat), cmp64);
      r->lat_p50_us = s.lat[s.nlat / 2];
      r->lat_p99_us = s.lat[(size_t)((double)s.nlat * 0.99)];
      r->lat_max_us = s.lat[s.nlat - 1];
    }
    rc = s.ended == o->jobs && !s.errors && !s.not_succeeded && !s.first_error[0] ? 0 : -1;
  }
  snprintf(r->first_error, sizeof(r->first_error), "%s", s.first_error);
  if (s.submit_c)
    sim_client_close(s.submit_c);
  for (unsigned i = 0; i < s.nwait_c; i++)
    if (s.wait_c[i])
      sim_client_close(s.wait_c[i]);
  /* Calls still open (a run that timed out) end with CANCELLED once their
   * connection is closed; their handlers use s, which lives here. */
  sim_run_until(loop, calls_over, &s, 60000);
  for (long i = 0; i < o->jobs; i++)
    free(s.ids[i]);
  free(s.ids);
  free(s.jc);
  free(s.lat);
  free(s.wait_c);
  free(s.req);
  return rc;
}

/* ---- checking the store ---- */

static const char *state_name(int st)
{
  static const char *const names[] = {"unspecified", "pending", "queued",    "assigned",  "running",
                                      "succeeded",   "failed",  "timed_out", "cancelled", "lost"};
  return st >= 0 && st < (int)(sizeof(names) / sizeof(names[0])) ? names[st] : "?";
}

/* One List call; *out is the response (caller frees). */
static int list_page(uv_loop_t *loop, rpc_client *c, const Drover__V1__JobState *states,
                     size_t nstates, const char *page, Drover__V1__ListJobsResponse **out)
{
  Drover__V1__ListJobsRequest lr = DROVER__V1__LIST_JOBS_REQUEST__INIT;
  lr.states = (Drover__V1__JobState *)states;
  lr.n_states = nstates;
  lr.limit = LIST_PAGE;
  lr.page_token = (char *)(page ? page : "");
  return sim_unary(loop, c, "/drover.v1.JobService/List",
                   &drover__v1__list_jobs_response__descriptor, &lr.base, (ProtobufCMessage **)out,
                   "List");
}

static int check_events(uv_loop_t *loop, rpc_client *c, const char *id, char *why, size_t len)
{
  static const int want_from[] = {0, 2, 3, 4}, want_to[] = {2, 3, 4, 5};
  Drover__V1__EventsRequest er = DROVER__V1__EVENTS_REQUEST__INIT;
  er.id = (char *)id;
  Drover__V1__EventsResponse *resp = NULL;
  if (sim_unary(loop, c, "/drover.v1.JobService/Events", &drover__v1__events_response__descriptor,
                &er.base, (ProtobufCMessage **)&resp, "Events") < 0) {
    snprintf(why, len, "Events call failed");
    return -1;
  }
  int rc = 0;
  if (resp->n_events != 4) {
    snprintf(why, len, "%zu events, not 4", resp->n_events);
    rc = -1;
  }
  for (size_t i = 0; rc == 0 && i < 4; i++) {
    const pb_JobEvent *e = resp->events[i];
    if ((int)e->from != want_from[i] || (int)e->to != want_to[i] ||
        (i > 0 && (e->attempt != 1 || !e->node_id || !*e->node_id))) {
      snprintf(why, len, "event %zu is %s -> %s (attempt %u, node '%s')", i + 1,
               state_name((int)e->from), state_name((int)e->to), e->attempt,
               e->node_id ? e->node_id : "");
      rc = -1;
    }
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

int sim_jobs_verify(uv_loop_t *loop, const char *target, long jobs, long sample)
{
  rpc_client *c = sim_client_new(loop, target, NULL);
  if (!c)
    return -1;
  int rc = 0;
  /* Every state but succeeded: nothing should be left in any of them. */
  static const Drover__V1__JobState others[] = {
      DROVER__V1__JOB_STATE__JOB_STATE_PENDING,   DROVER__V1__JOB_STATE__JOB_STATE_QUEUED,
      DROVER__V1__JOB_STATE__JOB_STATE_ASSIGNED,  DROVER__V1__JOB_STATE__JOB_STATE_RUNNING,
      DROVER__V1__JOB_STATE__JOB_STATE_FAILED,    DROVER__V1__JOB_STATE__JOB_STATE_TIMED_OUT,
      DROVER__V1__JOB_STATE__JOB_STATE_CANCELLED, DROVER__V1__JOB_STATE__JOB_STATE_LOST,
  };
  Drover__V1__ListJobsResponse *resp = NULL;
  if (list_page(loop, c, others, sizeof(others) / sizeof(others[0]), NULL, &resp) < 0) {
    sim_client_close(c);
    return -1;
  }
  printf("verify_not_succeeded=%zu%s\n", resp->n_jobs,
         resp->next_page_token && *resp->next_page_token ? "+" : "");
  for (size_t i = 0; i < resp->n_jobs && i < 5; i++)
    fprintf(stderr, "bench_sim: job '%s' is %s: %s\n", resp->jobs[i]->spec->id,
            state_name((int)resp->jobs[i]->state),
            resp->jobs[i]->reason ? resp->jobs[i]->reason : "-");
  if (resp->n_jobs)
    rc = -1;
  protobuf_c_message_free_unpacked(&resp->base, NULL);

  /* Every succeeded job, page by page, keeping a sample of ids. */
  static const Drover__V1__JobState done[] = {DROVER__V1__JOB_STATE__JOB_STATE_SUCCEEDED};
  long n = 0, bad_result = 0, nsample = 0;
  long every = sample > 0 && jobs > sample ? jobs / sample : 1;
  char **ids = xcalloc((size_t)(sample > 0 ? sample : 1) + 1, sizeof(*ids));
  char *page = NULL;
  do {
    resp = NULL;
    if (list_page(loop, c, done, 1, page, &resp) < 0) {
      rc = -1;
      break;
    }
    for (size_t i = 0; i < resp->n_jobs; i++, n++) {
      const pb_Job *j = resp->jobs[i];
      if (!j->result || j->result->state != DROVER__V1__JOB_STATE__JOB_STATE_SUCCEEDED ||
          j->attempt != 1)
        bad_result++;
      if (n % every == 0 && nsample < sample)
        ids[nsample++] = xstrdup(j->spec->id);
    }
    free(page);
    page = resp->next_page_token && *resp->next_page_token ? xstrdup(resp->next_page_token) : NULL;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  } while (page);
  free(page);
  printf("verify_succeeded=%ld verify_bad_results=%ld\n", n, bad_result);
  if (n != jobs || bad_result)
    rc = -1;

  long events_bad = 0;
  for (long i = 0; i < nsample; i++) {
    char why[200];
    if (check_events(loop, c, ids[i], why, sizeof(why)) < 0) {
      if (events_bad++ < 5)
        fprintf(stderr, "bench_sim: job '%s': %s\n", ids[i], why);
    }
    free(ids[i]);
  }
  free(ids);
  printf("verify_events_checked=%ld verify_events_bad=%ld\n", nsample, events_bad);
  if (events_bad)
    rc = -1;
  sim_client_close(c);
  return rc;
}

int sim_token_create(uv_loop_t *loop, const char *target, unsigned uses, char *buf, size_t len)
{
  rpc_client *c = sim_client_new(loop, target, NULL);
  if (!c)
    return -1;
  Drover__V1__CreateTokenRequest req = DROVER__V1__CREATE_TOKEN_REQUEST__INIT;
  req.uses = uses;
  req.description = "bench_sim";
  Drover__V1__CreateTokenResponse *resp = NULL;
  int rc = sim_unary(loop, c, "/drover.v1.TokenService/Create",
                     &drover__v1__create_token_response__descriptor, &req.base,
                     (ProtobufCMessage **)&resp, "TokenService.Create");
  if (rc == 0) {
    snprintf(buf, len, "%s", resp->token ? resp->token : "");
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  sim_client_close(c);
  return rc;
}
