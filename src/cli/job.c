/* job.c - `drover job <subcommand>`: the table of subcommands, and those
 * that read or change one job at a time: status, list, events, cancel.
 * (run is jobrun.c, submit jobsubmit.c, logs joblogs.c, wait jobwait.c.) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonstr.h"
#include "base/util.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/fmt.h"
#include "cli/jobcmds.h"
#include "job/job_pb.h"
#include "job/result.h"
#include "job/states.h"

/* ---- shared ---- */

int cli_job_exit_code(const pb_Job *job)
{
  if (!job || !job->result)
    return 125;
  struct job_result r;
  job_result_from_pb(&r, job->result);
  int code = job_result_exit_code(&r);
  job_result_release(&r);
  return code;
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

void *cli_job_json(const pb_Job *job)
{
  const pb_JobSpec *s = job->spec;
  json_t *o = json_object();
  json_object_set_new(o, "id", str_json(s ? s->id : NULL));
  json_object_set_new(o, "name", str_json(s ? s->name : NULL));
  json_object_set_new(o, "state", json_string(job_state_name((int)job->state)));
  json_object_set_new(o, "attempt", json_integer(job->attempt));
  json_object_set_new(o, "max_attempts", json_integer(s && s->max_attempts ? s->max_attempts : 1));
  json_object_set_new(o, "node", str_json(job->node_id));
  json_object_set_new(o, "node_name", str_json(job->node_name));
  json_object_set_new(o, "created_at", time_json(job->created_at_us));
  json_object_set_new(o, "updated_at", time_json(job->updated_at_us));
  json_object_set_new(o, "reason", str_json(job->reason));
  json_t *labels = json_object();
  for (size_t i = 0; s && i < s->n_labels; i++)
    json_object_set_new(labels, s->labels[i]->key, str_json(s->labels[i]->value));
  json_object_set_new(o, "labels", labels);
  json_t *result = json_null();
  if (job->result) {
    struct job_result r;
    struct job jj;
    memset(&jj, 0, sizeof(jj));
    snprintf(jj.id, sizeof(jj.id), "%s", s && s->id ? s->id : "");
    jj.name = s && s->name && *s->name ? s->name : NULL;
    job_result_from_pb(&r, job->result);
    char *doc = job_result_to_json(&jj, &r, NULL);
    job_result_release(&r);
    json_decref(result);
    result = json_loads(doc, 0, NULL);
    free(doc);
    if (!result)
      result = json_null();
    /* Output the agent could not keep (its spool was full): said, never hidden. */
    if (json_is_object(result) && job->result->lines_dropped)
      json_object_set_new(result, "lines_dropped",
                          json_integer((json_int_t)job->result->lines_dropped));
  }
  json_object_set_new(o, "result", result);
  return o;
}

void cli_print_json(void *json)
{
  char *s = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (s)
    puts(s);
  free(s);
  json_decref(json);
}

void cli_job_exit_text(char *buf, size_t len, const pb_Job *job)
{
  if (!job->result) {
    snprintf(buf, len, "-");
    return;
  }
  struct job_result r;
  job_result_from_pb(&r, job->result);
  int code = job_result_exit_code(&r);
  if (r.status == JOB_FAILED && r.exit_code < 0 && r.signal > 0)
    snprintf(buf, len, "%d (signal %d, SIG%s)", code, r.signal,
             sigabbrev_np(r.signal) ? sigabbrev_np(r.signal) : "?");
  else if (r.status == JOB_FAILED && r.exit_code < 0)
    snprintf(buf, len, "%d (could not start)", code);
  else if (r.status == JOB_TIMED_OUT)
    snprintf(buf, len, "%d (timed out)", code);
  else if (r.status == JOB_CANCELLED)
    snprintf(buf, len, "%d (cancelled)", code);
  else if (r.status == JOB_LOST)
    snprintf(buf, len, "%d (lost)", code);
  else
    snprintf(buf, len, "%d", code);
  job_result_release(&r);
}

/* The run time: the result's, or since the job started running. */
static void duration_text(char *buf, size_t len, const pb_Job *job, int64_t now)
{
  if (job->result && job->result->duration_us) {
    fmt_duration(buf, len, job->result->duration_us);
  } else if ((int)job->state == JS_RUNNING && job->updated_at_us && now > job->updated_at_us) {
    char d[32];
    fmt_duration(d, sizeof(d), (uint64_t)(now - job->updated_at_us));
    snprintf(buf, len, "%s (running)", d);
  } else {
    snprintf(buf, len, "-");
  }
}

static void attempt_text(char *buf, size_t len, const pb_Job *job)
{
  uint32_t max = job->spec && job->spec->max_attempts ? job->spec->max_attempts : 1;
  if (!job->attempt)
    snprintf(buf, len, "-");
  else
    snprintf(buf, len, "%u/%u", job->attempt, max);
}

static const char *node_text(const pb_Job *job)
{
  if (job->node_name && *job->node_name)
    return job->node_name;
  return job->node_id && *job->node_id ? job->node_id : NULL;
}

/* ---- status ---- */

struct status_opts {
  struct client_opts client;
  int json;
};

static const struct cfg_opt status_table[] = {
    CLIENT_OPTS(struct status_opts),
    {"json", 0, CFG_BOOL, offsetof(struct status_opts, json), NULL, NULL, 0, 0, NULL,
     "print the job as a JSON document"},
};
static const struct client_cmd status_cmd = {
    "job status",
    "ID",
    "shows a job: state, attempt, node, when it was created, how long it ran, its exit code.\n"
    "--json: {\"id\", \"state\", \"attempt\", \"node\", \"created_at\", \"result\", ...}, where\n"
    "result is the document drover run --json prints, or null until the job ends.",
    status_table,
    ARRAY_SIZE(status_table),
    1};

static void print_status(const pb_Job *job)
{
  int color = fmt_color_ok(1);
  int64_t now = now_us();
  char buf[256], when[64], ts[40];
  const pb_JobSpec *s = job->spec;
  printf("id:        %s\n", s && s->id ? s->id : "-");
  printf("name:      %s\n", s && s->name && *s->name ? s->name : "-");
  printf("state:     ");
  fmt_put_colored(stdout, job_state_name((int)job->state), fmt_job_state_color((int)job->state),
                  color);
  putchar('\n');
  if (job->reason && *job->reason)
    printf("reason:    %s\n", job->reason);
  attempt_text(buf, sizeof(buf), job);
  printf("attempt:   %s\n", buf);
  if (job->node_id && *job->node_id)
    printf("node:      %s (%s)\n", node_text(job), job->node_id);
  else
    printf("node:      -\n");
  fmt_ago(when, sizeof(when), job->created_at_us, now);
  fmt_time_us(ts, sizeof(ts), job->created_at_us);
  printf("created:   %s (%s)\n", when, ts);
  duration_text(buf, sizeof(buf), job, now);
  printf("duration:  %s\n", buf);
  cli_job_exit_text(buf, sizeof(buf), job);
  printf("exit:      %s\n", buf);
  if (job->result && job->result->error && *job->result->error)
    printf("error:     %s\n", job->result->error);
}

static int job_status(int argc, char **argv)
{
  struct status_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&status_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_ERROR;
  if (args.n != 1) {
    code = cli_usage_error(status_cmd.name, status_cmd.args, status_cmd.summary, status_cmd.opts,
                           status_cmd.n, "give one job id");
    goto out;
  }
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  Drover__V1__GetJobRequest req = DROVER__V1__GET_JOB_REQUEST__INIT;
  req.id = args.v[0];
  pb_Job *job;
  if (client_unary(&cl, CLIENT_JOBS "Get", &req.base, &drover__v1__job__descriptor,
                   (ProtobufCMessage **)&job) == 0) {
    if (o.json)
      cli_print_json(cli_job_json(job));
    else
      print_status(job);
    protobuf_c_message_free_unpacked(&job->base, NULL);
    code = CLI_EXIT_OK;
  }
  client_end(&cl);
out:
  client_parse_release(&status_cmd, &o, &res, &args);
  return code;
}

/* ---- list ---- */

struct list_opts {
  struct client_opts client;
  struct cfg_list states;
  struct cfg_list labels;
  long limit;
  int json;
};

#define LIST_PAGE_MAX 10000 /* the coordinator's largest page */

static const struct cfg_opt list_table[] = {
    CLIENT_OPTS(struct list_opts),
    {"state", 0, CFG_LIST, offsetof(struct list_opts, states), NULL, NULL, 0, 0, "S",
     "only jobs in state S: queued, assigned, running, succeeded, failed, timed_out, cancelled, "
     "lost (repeat or S1,S2 for several)"},
    {"label", 0, CFG_LIST, offsetof(struct list_opts, labels), NULL, NULL, 0, 0, "K=V",
     "only jobs with this label (several: all of them)"},
    {"limit", 0, CFG_INT, offsetof(struct list_opts, limit), "100", NULL, 1, 1000000, "N",
     "at most N jobs, newest first"},
    {"json", 0, CFG_BOOL, offsetof(struct list_opts, json), NULL, NULL, 0, 0, NULL,
     "print a JSON array of job documents (as job status --json)"},
};
static const struct client_cmd list_cmd = {
    "job list",
    "",
    "lists jobs, newest first: a table, or with --json an array of the documents\n"
    "drover job status --json prints.",
    list_table,
    ARRAY_SIZE(list_table),
    1};

/* The states of --state, each may be "a,b". -1 with the message printed. */
static int parse_states(const struct cfg_list *l, Drover__V1__JobState **out, size_t *n)
{
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  for (size_t i = 0; i < l->n; i++) {
    char *copy = xstrdup(l->items[i]), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      int s = job_state_parse(t);
      if (s < 0 || s == JS_PENDING) {
        cli_usage_error(list_cmd.name, list_cmd.args, list_cmd.summary, list_cmd.opts, list_cmd.n,
                        "--state \"%s\": must be one of queued, assigned, running, succeeded, "
                        "failed, timed_out, cancelled, lost",
                        t);
        free(copy);
        free(*out);
        *out = NULL;
        return -1;
      }
      if (*n == cap) {
        cap = cap ? cap * 2 : 8;
        *out = xrealloc(*out, cap * sizeof(**out));
      }
      (*out)[(*n)++] = (Drover__V1__JobState)s;
    }
    free(copy);
  }
  return 0;
}

static void list_table_print(pb_Job **jobs, size_t n)
{
  static const char *const heads[] = {"ID",   "NAME",    "STATE",    "ATTEMPT",
                                      "NODE", "CREATED", "DURATION", "EXIT"};
  struct fmt_table *t = fmt_table_new(ARRAY_SIZE(heads), heads);
  int64_t now = now_us();
  char buf[128];
  for (size_t i = 0; i < n; i++) {
    const pb_Job *j = jobs[i];
    fmt_table_row(t);
    fmt_table_cell(t, j->spec ? j->spec->id : NULL, NULL);
    fmt_table_cell(t, j->spec && j->spec->name && *j->spec->name ? j->spec->name : NULL, NULL);
    fmt_table_cell(t, job_state_name((int)j->state), fmt_job_state_color((int)j->state));
    attempt_text(buf, sizeof(buf), j);
    fmt_table_cell(t, buf, NULL);
    fmt_table_cell(t, node_text(j), NULL);
    fmt_ago(buf, sizeof(buf), j->created_at_us, now);
    fmt_table_cell(t, buf, NULL);
    duration_text(buf, sizeof(buf), j, now);
    fmt_table_cell(t, buf, NULL);
    cli_job_exit_text(buf, sizeof(buf), j);
    fmt_table_cell(t, buf, NULL);
  }
  fmt_table_print(t, stdout, fmt_color_ok(1));
  fmt_table_free(t);
}

static int job_list(int argc, char **argv)
{
  struct list_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&list_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_USAGE;
  Drover__V1__JobState *states = NULL;
  size_t nstates = 0;
  Drover__V1__ListJobsRequest__LabelsEntry *lab = NULL, **labp = NULL;
  if (args.n) {
    cli_usage_error(list_cmd.name, list_cmd.args, list_cmd.summary, list_cmd.opts, list_cmd.n,
                    "unexpected argument '%s'", args.v[0]);
    goto out;
  }
  if (parse_states(&o.states, &states, &nstates) < 0)
    goto out;
  lab = xcalloc(o.labels.n + 1, sizeof(*lab));
  labp = xcalloc(o.labels.n + 1, sizeof(*labp));
  for (size_t i = 0; i < o.labels.n; i++) {
    char *eq = strchr(o.labels.items[i], '=');
    if (!eq || eq == o.labels.items[i]) {
      cli_usage_error(list_cmd.name, list_cmd.args, list_cmd.summary, list_cmd.opts, list_cmd.n,
                      "--label \"%s\": must be KEY=VALUE, like --label team=ops",
                      o.labels.items[i]);
      goto out;
    }
    drover__v1__list_jobs_request__labels_entry__init(&lab[i]);
    *eq = '\0'; /* the list's own copy */
    lab[i].key = o.labels.items[i];
    lab[i].value = eq + 1;
    labp[i] = &lab[i];
  }

  code = CLI_EXIT_ERROR;
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  /* Pages until --limit: the coordinator gives at most LIST_PAGE_MAX. */
  pb_Job **jobs = NULL;
  size_t n = 0;
  Drover__V1__ListJobsResponse **pages = NULL;
  size_t npages = 0;
  char *token = NULL;
  int more = 0, failed = 0;
  for (;;) {
    Drover__V1__ListJobsRequest req = DROVER__V1__LIST_JOBS_REQUEST__INIT;
    req.states = states;
    req.n_states = nstates;
    req.labels = labp;
    req.n_labels = o.labels.n;
    size_t left = (size_t)o.limit - n;
    req.limit = (uint32_t)(left < LIST_PAGE_MAX ? left : LIST_PAGE_MAX);
    req.page_token = token;
    Drover__V1__ListJobsResponse *page;
    if (client_unary(&cl, CLIENT_JOBS "List", &req.base,
                     &drover__v1__list_jobs_response__descriptor, (ProtobufCMessage **)&page) < 0) {
      failed = 1;
      break;
    }
    pages = xrealloc(pages, (npages + 1) * sizeof(*pages));
    pages[npages++] = page;
    jobs = xrealloc(jobs, (n + page->n_jobs + 1) * sizeof(*jobs));
    for (size_t i = 0; i < page->n_jobs; i++)
      jobs[n++] = page->jobs[i];
    token = page->next_page_token && *page->next_page_token ? page->next_page_token : NULL;
    if (!token || n >= (size_t)o.limit || !page->n_jobs) {
      more = token != NULL;
      break;
    }
  }
  if (!failed) {
    if (o.json) {
      json_t *a = json_array();
      for (size_t i = 0; i < n; i++)
        json_array_append_new(a, cli_job_json(jobs[i]));
      cli_print_json(a);
    } else {
      list_table_print(jobs, n);
      if (more) {
        fflush(stdout);
        fprintf(stderr, "(more jobs than --limit %ld: raise it, or narrow with --state, --label)\n",
                o.limit);
      }
    }
    code = CLI_EXIT_OK;
  }
  for (size_t i = 0; i < npages; i++)
    protobuf_c_message_free_unpacked(&pages[i]->base, NULL);
  free(pages);
  free(jobs);
  client_end(&cl);
out:
  free(states);
  free(lab);
  free(labp);
  client_parse_release(&list_cmd, &o, &res, &args);
  return code;
}

/* ---- events ---- */

struct events_opts {
  struct client_opts client;
  int json;
};

static const struct cfg_opt events_table[] = {
    CLIENT_OPTS(struct events_opts),
    {"json", 0, CFG_BOOL, offsetof(struct events_opts, json), NULL, NULL, 0, 0, NULL,
     "print a JSON array of events"},
};
static const struct client_cmd events_cmd = {
    "job events",
    "ID",
    "shows a job's audit trail, oldest first: every change of state with its time, the node,\n"
    "the attempt and the reason. --json: an array of {\"time\", \"from\", \"to\", \"node\",\n"
    "\"node_name\", \"attempt\", \"reason\"}.",
    events_table,
    ARRAY_SIZE(events_table),
    1};

/* The name of node id among the nodes, or NULL. */
static const char *node_name(const Drover__V1__ListNodesResponse *nodes, const char *id)
{
  for (size_t i = 0; nodes && id && i < nodes->n_nodes; i++)
    if (!strcmp(nodes->nodes[i]->id, id))
      return nodes->nodes[i]->name;
  return NULL;
}

static int job_events(int argc, char **argv)
{
  struct events_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&events_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_ERROR;
  if (args.n != 1) {
    code = cli_usage_error(events_cmd.name, events_cmd.args, events_cmd.summary, events_cmd.opts,
                           events_cmd.n, "give one job id");
    goto out;
  }
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  Drover__V1__EventsRequest req = DROVER__V1__EVENTS_REQUEST__INIT;
  req.id = args.v[0];
  Drover__V1__EventsResponse *ev;
  if (client_unary(&cl, CLIENT_JOBS "Events", &req.base, &drover__v1__events_response__descriptor,
                   (ProtobufCMessage **)&ev) == 0) {
    /* Events name nodes by id; people know them by name. Without the
     * list, ids it is. */
    Drover__V1__ListNodesRequest nr = DROVER__V1__LIST_NODES_REQUEST__INIT;
    Drover__V1__ListNodesResponse *nodes = NULL;
    if (client_unary(&cl, CLIENT_NODES "List", &nr.base,
                     &drover__v1__list_nodes_response__descriptor, (ProtobufCMessage **)&nodes) < 0)
      nodes = NULL;
    if (o.json) {
      json_t *a = json_array();
      for (size_t i = 0; i < ev->n_events; i++) {
        const pb_JobEvent *e = ev->events[i];
        json_t *x = json_object();
        json_object_set_new(x, "time", time_json(e->ts_us));
        json_object_set_new(x, "from",
                            (int)e->from == JS_UNSPECIFIED
                                ? json_null()
                                : json_string(job_state_name((int)e->from)));
        json_object_set_new(x, "to", json_string(job_state_name((int)e->to)));
        json_object_set_new(x, "node", str_json(e->node_id));
        json_object_set_new(x, "node_name", str_json(node_name(nodes, e->node_id)));
        json_object_set_new(x, "attempt", json_integer(e->attempt));
        json_object_set_new(x, "reason", str_json(e->reason));
        json_array_append_new(a, x);
      }
      cli_print_json(a);
    } else {
      static const char *const heads[] = {"TIME", "FROM", "TO", "NODE", "ATTEMPT", "REASON"};
      struct fmt_table *t = fmt_table_new(ARRAY_SIZE(heads), heads);
      char ts[40];
      for (size_t i = 0; i < ev->n_events; i++) {
        const pb_JobEvent *e = ev->events[i];
        fmt_table_row(t);
        fmt_time_us(ts, sizeof(ts), e->ts_us);
        fmt_table_cell(t, ts, NULL);
        fmt_table_cell(t, (int)e->from == JS_UNSPECIFIED ? NULL : job_state_name((int)e->from),
                       fmt_job_state_color((int)e->from));
        fmt_table_cell(t, job_state_name((int)e->to), fmt_job_state_color((int)e->to));
        const char *nn = node_name(nodes, e->node_id);
        fmt_table_cell(t, nn && *nn ? nn : e->node_id && *e->node_id ? e->node_id : NULL, NULL);
        fmt_table_cellf(t, "%u", e->attempt);
        fmt_table_cell(t, e->reason && *e->reason ? e->reason : NULL, NULL);
      }
      fmt_table_print(t, stdout, fmt_color_ok(1));
      fmt_table_free(t);
    }
    if (nodes)
      protobuf_c_message_free_unpacked(&nodes->base, NULL);
    protobuf_c_message_free_unpacked(&ev->base, NULL);
    code = CLI_EXIT_OK;
  }
  client_end(&cl);
out:
  client_parse_release(&events_cmd, &o, &res, &args);
  return code;
}

/* ---- cancel ---- */

struct cancel_opts {
  struct client_opts client;
  uint64_t grace_ms;
  int json;
};

static const struct cfg_opt cancel_table[] = {
    CLIENT_OPTS(struct cancel_opts),
    {"grace", 0, CFG_DURATION, offsetof(struct cancel_opts, grace_ms), NULL, NULL, 0, 0, "D",
     "time from SIGTERM to SIGKILL (default: the job's --kill-grace; 0: at once)"},
    {"json", 0, CFG_BOOL, offsetof(struct cancel_opts, json), NULL, NULL, 0, 0, NULL,
     "print the job as a JSON document (as job status --json)"},
};
static const struct client_cmd cancel_cmd = {
    "job cancel",
    "ID",
    "cancels a job: a queued one ends cancelled at once; a running one gets SIGTERM, then\n"
    "SIGKILL after the grace, on its node ('drover job wait ID' waits for its end). A job that\n"
    "has ended already is left as it is (exit 0, said on stdout).",
    cancel_table,
    ARRAY_SIZE(cancel_table),
    1};

static int job_cancel(int argc, char **argv)
{
  struct cancel_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&cancel_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  code = CLI_EXIT_ERROR;
  if (args.n != 1) {
    code = cli_usage_error(cancel_cmd.name, cancel_cmd.args, cancel_cmd.summary, cancel_cmd.opts,
                           cancel_cmd.n, "give one job id");
    goto out;
  }
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  /* Whether it had ended before we asked: the reply to Cancel looks the
   * same for a job cancelled now and one cancelled long ago. */
  Drover__V1__GetJobRequest get = DROVER__V1__GET_JOB_REQUEST__INIT;
  get.id = args.v[0];
  pb_Job *before;
  if (client_unary(&cl, CLIENT_JOBS "Get", &get.base, &drover__v1__job__descriptor,
                   (ProtobufCMessage **)&before) < 0)
    goto end;
  int ended = job_state_terminal((int)before->state);
  if (ended) {
    if (o.json)
      cli_print_json(cli_job_json(before));
    else
      printf("job %s had ended already: %s\n",
             before->spec && before->spec->id ? before->spec->id : args.v[0],
             job_state_name((int)before->state));
    protobuf_c_message_free_unpacked(&before->base, NULL);
    code = CLI_EXIT_OK;
    goto end;
  }
  protobuf_c_message_free_unpacked(&before->base, NULL);
  Drover__V1__CancelJobRequest req = DROVER__V1__CANCEL_JOB_REQUEST__INIT;
  req.id = args.v[0];
  req.reason = "requested with 'drover job cancel'";
  /* The protocol's 0 is "the job's own grace"; --grace 0 means at once,
   * which the agent does as SIGTERM and SIGKILL 1 ms later. */
  for (size_t i = 0; i < cancel_cmd.n; i++)
    if (!strcmp(cancel_table[i].key, "grace") && res.source[i] != CFG_SRC_DEFAULT)
      req.grace_ms = o.grace_ms ? o.grace_ms : 1;
  Drover__V1__CancelJobResponse *resp;
  if (client_unary(&cl, CLIENT_JOBS "Cancel", &req.base,
                   &drover__v1__cancel_job_response__descriptor, (ProtobufCMessage **)&resp) == 0) {
    const pb_Job *job = resp->job;
    if (!job) {
      fprintf(stderr, "error: the coordinator at '%s' sent no job back\n", cl.addr);
    } else if (o.json) {
      cli_print_json(cli_job_json(job));
      code = CLI_EXIT_OK;
    } else {
      const char *id = job->spec && job->spec->id ? job->spec->id : args.v[0];
      if ((int)job->state == JS_CANCELLED)
        printf("job %s cancelled\n", id);
      else if (job_state_terminal((int)job->state))
        printf("job %s had ended already: %s\n", id, job_state_name((int)job->state));
      else
        printf("job %s is being cancelled on node %s ('drover job wait %s' waits for its end)\n",
               id, node_text(job) ? node_text(job) : "-", id);
      code = CLI_EXIT_OK;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
end:
  client_end(&cl);
out:
  client_parse_release(&cancel_cmd, &o, &res, &args);
  return code;
}

/* ---- the table ---- */

static const struct cli_cmd subcommands[] = {
    {"run", cli_job_run, "submit a job and wait for it, its output live, its exit code"},
    {"submit", cli_job_submit, "submit jobs (-- CMD, or -f FILE of job documents); print ids"},
    {"status", job_status, "show a job"},
    {"wait", cli_job_wait, "wait for jobs to end; exit with the job's code"},
    {"logs", cli_job_logs, "print a job's output (-f: follow it)"},
    {"cancel", job_cancel, "cancel a job"},
    {"list", job_list, "list jobs, newest first"},
    {"events", job_events, "show a job's changes of state"},
};

int cli_job(int argc, char **argv)
{
  return cli_subcommands("job",
                         "jobs on a coordinator (drover server or drover dev; --addr ADDR or "
                         "DROVER_ADDR,\ndefault " CLIENT_DEFAULT_ADDR ").",
                         subcommands, ARRAY_SIZE(subcommands), argc, argv);
}
