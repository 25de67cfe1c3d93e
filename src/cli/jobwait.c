/* jobwait.c - `drover job wait ID...`: waits for jobs to end, one Wait
 * call each on one connection; one id exits with the job's code, several
 * with 0 when all succeeded. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/fmt.h"
#include "cli/jobcmds.h"
#include "job/states.h"

#define WAIT_WINDOW 1000 /* Wait calls in flight on the one connection */

struct wait_opts {
  struct client_opts client;
  int json;
};

static const struct cfg_opt wait_table[] = {
    CLIENT_OPTS(struct wait_opts),
    {"json", 0, CFG_BOOL, offsetof(struct wait_opts, json), NULL, NULL, 0, 0, NULL,
     "print the ended job (several: an array) as job status --json does"},
};
static const struct client_cmd wait_cmd = {
    "job wait",
    "ID...",
    "waits for jobs to end. One id: exits as drover job run would (the job's code, 128+N,\n"
    "124, 125, 75 for lost) and prints nothing but with --json. Several: a table of their\n"
    "states, exit 0 when all succeeded, else 1. Exit 125 (one id) or 1 (several) when a job\n"
    "is unknown or the coordinator cannot be reached.",
    wait_table,
    ARRAY_SIZE(wait_table),
    1};

struct waiter_ctx {
  struct client *cl;
  char **ids;
  size_t n, next, done;
  pb_Job **jobs; /* NULL where the wait failed */
  char **errs;
};

static void wait_start_more(struct waiter_ctx *w);

static void wait_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct waiter_ctx *w = ud;
  size_t i = (size_t)(uintptr_t)rpc_call_data(call);
  if (!w->jobs[i])
    w->jobs[i] = (pb_Job *)rpc_msg_take(m);
}

static void wait_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct waiter_ctx *w = ud;
  size_t i = (size_t)(uintptr_t)rpc_call_data(call);
  if (st->code != RPC_OK || !w->jobs[i]) {
    /* Kept, printed in order once all are done. */
    char buf[1200];
    struct rpc_status s = *st;
    if (s.code == RPC_OK)
      s.code = RPC_INTERNAL;
    client_status_text(w->cl, &s, NULL, buf, sizeof(buf));
    w->errs[i] = xasprintf("%s\n", buf);
  }
  w->done++;
  wait_start_more(w);
}

static void wait_start_more(struct waiter_ctx *w)
{
  static const struct rpc_handlers h = {.on_message = wait_message, .on_done = wait_done};
  while (w->next < w->n && w->next - w->done < WAIT_WINDOW) {
    size_t i = w->next++;
    Drover__V1__WaitRequest req = DROVER__V1__WAIT_REQUEST__INIT;
    req.id = w->ids[i];
    rpc_call *call;
    if (client_start(w->cl, CLIENT_JOBS "Wait", &drover__v1__job__descriptor, &req.base, &h, w,
                     &call) < 0) {
      w->errs[i] = xstrdup("");
      w->done++;
      continue;
    }
    rpc_call_set_data(call, (void *)(uintptr_t)i);
  }
}

int cli_job_wait(int argc, char **argv)
{
  struct wait_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&wait_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;
  if (args.n < 1) {
    code = cli_usage_error(wait_cmd.name, wait_cmd.args, wait_cmd.summary, wait_cmd.opts,
                           wait_cmd.n, "give one job id or more");
    goto out;
  }
  int one = args.n == 1;
  code = one ? 125 : CLI_EXIT_ERROR;
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  struct waiter_ctx w = {&cl, args.v, (size_t)args.n, 0, 0, NULL, NULL};
  w.jobs = xcalloc(w.n, sizeof(*w.jobs));
  w.errs = xcalloc(w.n, sizeof(*w.errs));
  wait_start_more(&w);
  while (w.done < w.n)
    uv_run(cl.loop, UV_RUN_ONCE);
  int all_ok = 1;
  for (size_t i = 0; i < w.n; i++) {
    if (w.errs[i])
      fputs(w.errs[i], stderr);
    if (!w.jobs[i] || (int)w.jobs[i]->state != JS_SUCCEEDED)
      all_ok = 0;
  }
  if (o.json) {
    json_t *a = json_array();
    for (size_t i = 0; i < w.n; i++)
      if (w.jobs[i])
        json_array_append_new(a, cli_job_json(w.jobs[i]));
    if (one && json_array_size(a) == 1) {
      json_t *x = json_incref(json_array_get(a, 0));
      json_decref(a);
      a = x;
    }
    if (!one || json_is_object(a))
      cli_print_json(a);
    else
      json_decref(a);
  } else if (!one) {
    static const char *const heads[] = {"ID", "STATE", "EXIT"};
    struct fmt_table *t = fmt_table_new(ARRAY_SIZE(heads), heads);
    char buf[64];
    for (size_t i = 0; i < w.n; i++) {
      if (!w.jobs[i])
        continue;
      fmt_table_row(t);
      fmt_table_cell(t, w.ids[i], NULL);
      fmt_table_cell(t, job_state_name((int)w.jobs[i]->state),
                     fmt_job_state_color((int)w.jobs[i]->state));
      cli_job_exit_text(buf, sizeof(buf), w.jobs[i]);
      fmt_table_cell(t, buf, NULL);
    }
    fmt_table_print(t, stdout, fmt_color_ok(1));
    fmt_table_free(t);
  }
  if (one)
    code = w.jobs[0] ? cli_job_exit_code(w.jobs[0]) : 125;
  else
    code = all_ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  for (size_t i = 0; i < w.n; i++) {
    if (w.jobs[i])
      protobuf_c_message_free_unpacked(&w.jobs[i]->base, NULL);
    free(w.errs[i]);
  }
  free(w.jobs);
  free(w.errs);
  client_end(&cl);
out:
  client_parse_release(&wait_cmd, &o, &res, &args);
  return code;
}
