/* jobsubmit.c - `drover job submit [OPTS] -- CMD...` and `drover job submit
 * -f FILE`: sends jobs to the coordinator and prints their ids, one per
 * line, in the order given.
 *
 * A file (or stdin, "-") holds one job document, a JSON array of them, or
 * a sequence of them (JSON Lines, or documents one after another). Every
 * document is parsed before anything is sent, so a typo in the 900th sends
 * none; then all go on one connection, many calls in flight at once. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/jsonstr.h"
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/jobcmds.h"
#include "cli/jobopts.h"
#include "job/job_pb.h"

#define SUBMIT_WINDOW 512 /* Submit calls in flight on the one connection */

struct submit_opts {
  struct client_opts client;
  char *file;
  int json;
  struct jobopts job;
};

static const struct cfg_opt submit_table[] = {
    CLIENT_OPTS(struct submit_opts),
    {"file", 'f', CFG_STRING, offsetof(struct submit_opts, file), NULL, NULL, 0, 0, "FILE",
     "job documents (docs/job-spec.md): one, a JSON array, or JSON Lines; - reads stdin"},
    {"json", 0, CFG_BOOL, offsetof(struct submit_opts, json), NULL, NULL, 0, 0, NULL,
     "print, once all are sent, a JSON array with one {\"id\", \"deduplicated\", \"error\"} "
     "per job, in order"},
    JOBOPTS_TABLE(struct submit_opts, job, "1h"),
};

static const char submit_summary[] =
    "submits jobs to the coordinator and prints the id of each, one per line, in order, and\n"
    "nothing else. Either a command after -- (as drover job run takes it), or -f FILE of job\n"
    "documents; with -f only --constraint, --require and --max-attempts apply (to every job):\n"
    "set the rest in the documents. A refused job is named on stderr, with the number of jobs\n"
    "that were submitted, and the exit code is 1.";

static const struct client_cmd submit_cmd = {
    "job submit", "(-- CMD [ARGS...] | -f FILE)", submit_summary,
    submit_table, ARRAY_SIZE(submit_table),       0,
};

/* Options that a job document says for itself: not with -f. */
static const char *const doc_keys[] = {
    "timeout",  "kill-grace",      "env",   "workdir", "exec", "shell", "name",
    "priority", "idempotency-key", "label", "tool",    "args",
};

struct sub {
  pb_JobSpec *spec;
  char *id;  /* the id the coordinator gave back */
  char *err; /* why it was refused */
  int done;
  int dedup; /* the id is an earlier job's (idempotency key) */
};

struct submitter {
  struct client *cl;
  struct sub *v;
  size_t n, next, done, printed;
  size_t ok, refused;
  int unreachable; /* one message for all */
  char *unreachable_msg;
  const char *origin;
  int numbered; /* name documents by number in messages */
  int json;     /* print the array at the end, not ids as they come */
};

/* ---- reading documents ---- */

/* Line (1-based) and column (characters, 1-based) of byte off in text. */
static void where(const char *text, size_t off, int *line, int *col)
{
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') {
      (*line)++;
      *col = 1;
    } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
      (*col)++;
    }
  }
}

static size_t skip_ws(const char *t, size_t len, size_t p)
{
  while (p < len && (t[p] == ' ' || t[p] == '\t' || t[p] == '\n' || t[p] == '\r'))
    p++;
  return p;
}

/* Moves a position relative to the document at byte base to the whole text. */
static void shift(const char *text, size_t base, int *line, int *col)
{
  int bl, bc;
  if (*line <= 0)
    return;
  where(text, base, &bl, &bc);
  if (*line == 1)
    *col += bc - 1;
  *line += bl - 1;
}

static void doc_error(const struct submitter *s, size_t docno, int line, int col, const char *msg)
{
  char origin[400];
  if (s->numbered)
    snprintf(origin, sizeof(origin), "%s, document %zu", s->origin, docno);
  else
    snprintf(origin, sizeof(origin), "%s", s->origin);
  if (line > 0)
    fprintf(stderr, "error: %s: line %d, column %d: %s\n", origin, line, col, msg);
  else
    fprintf(stderr, "error: %s: %s\n", origin, msg);
}

/* Parses the document at text[off..off+len) as document docno. */
static int add_doc(struct submitter *s, const struct jobopts *o, const char *text, size_t off,
                   size_t len, size_t docno)
{
  struct job j;
  struct job_error e;
  if (job_parse(&j, text + off, len, &e) < 0) {
    shift(text, off, &e.line, &e.column);
    char origin[400];
    if (s->numbered)
      snprintf(origin, sizeof(origin), "%s, document %zu", s->origin, docno);
    else
      snprintf(origin, sizeof(origin), "%s", s->origin);
    char buf[1024];
    job_error_format(&e, origin, buf, sizeof(buf));
    fprintf(stderr, "error: %s\n", buf);
    return -1;
  }
  char err[512];
  pb_JobSpec *spec = jobopts_spec(o, &j, err, sizeof(err));
  job_release(&j);
  if (!spec) {
    fprintf(stderr, "error: %s\n", err);
    return -1;
  }
  s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
  memset(&s->v[s->n], 0, sizeof(*s->v));
  s->v[s->n++].spec = spec;
  return 0;
}

/* One value of JSON at text[p..], as jansson reads it: its length, or 0
 * with the error printed. */
static size_t one_value(struct submitter *s, const char *text, size_t len, size_t p, size_t docno)
{
  json_error_t je;
  json_t *v = json_loadb(text + p, len - p,
                         JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
  if (!v) {
    int line = je.line, col = je.column;
    shift(text, p, &line, &col);
    char msg[300];
    snprintf(msg, sizeof(msg), "invalid JSON: %s", je.text);
    doc_error(s, docno, line, col, msg);
    return 0;
  }
  json_decref(v);
  return (size_t)je.position;
}

/* Splits text into documents and parses each. Returns 0 or -1 (printed). */
static int read_docs(struct submitter *s, const struct jobopts *o, const char *text, size_t len)
{
  size_t p = skip_ws(text, len, 0);
  if (p == len) {
    fprintf(stderr, "error: %s: no job document in it\n", s->origin);
    return -1;
  }
  if (text[p] == '[') {
    s->numbered = 1;
    p = skip_ws(text, len, p + 1);
    size_t docno = 0;
    if (p < len && text[p] == ']')
      p++;
    else
      for (;;) {
        size_t n = one_value(s, text, len, p, ++docno);
        if (!n)
          return -1;
        if (add_doc(s, o, text, p, n, docno) < 0)
          return -1;
        p = skip_ws(text, len, p + n);
        if (p < len && text[p] == ',') {
          p = skip_ws(text, len, p + 1);
          continue;
        }
        if (p < len && text[p] == ']') {
          p++;
          break;
        }
        int line, col;
        where(text, p, &line, &col);
        doc_error(s, docno, line, col,
                  p < len ? "invalid JSON: ',' or ']' expected after a document"
                          : "invalid JSON: the array has no ']'");
        return -1;
      }
    p = skip_ws(text, len, p);
    if (p < len) {
      int line, col;
      where(text, p, &line, &col);
      doc_error(s, docno, line, col, "invalid JSON: text after the array");
      return -1;
    }
    if (!s->n) {
      fprintf(stderr, "error: %s: the array holds no job document\n", s->origin);
      return -1;
    }
    return 0;
  }
  /* One document, or several one after another (JSON Lines). */
  for (size_t docno = 1; p < len; docno++) {
    size_t n = one_value(s, text, len, p, docno);
    if (!n)
      return -1;
    if (docno == 1 && skip_ws(text, len, p + n) < len)
      s->numbered = 1;
    if (add_doc(s, o, text, p, n, docno) < 0)
      return -1;
    p = skip_ws(text, len, p + n);
  }
  return 0;
}

static int read_input(const char *path, char **text, size_t *len)
{
  if (strcmp(path, "-"))
    return read_file(path, text, len);
  size_t cap = 1 << 16, n = 0;
  char *buf = xmalloc(cap + 1);
  for (;;) {
    if (n == cap) {
      cap *= 2;
      buf = xrealloc(buf, cap + 1);
    }
    ssize_t r = read(0, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int err = errno;
      free(buf);
      return -err;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return 0;
}

/* ---- submitting ---- */

static void start_more(struct submitter *s);

/* Prints what is done, in input order: ids on stdout, refusals on stderr. */
static void print_ready(struct submitter *s)
{
  while (s->printed < s->n && s->v[s->printed].done) {
    struct sub *x = &s->v[s->printed++];
    if (x->id) {
      if (!s->json)
        puts(x->id);
    } else if (x->err && *x->err && !s->unreachable) {
      fflush(stdout);
      fprintf(stderr, "%s\n", x->err);
    }
  }
}

static void submit_message(rpc_call *call, struct rpc_msg *m, void *ud)
{
  struct submitter *s = ud;
  struct sub *x = &s->v[(size_t)(uintptr_t)rpc_call_data(call)];
  Drover__V1__SubmitResponse *r = (Drover__V1__SubmitResponse *)m->msg;
  if (!x->id && r && r->job && r->job->spec && r->job->spec->id && *r->job->spec->id) {
    x->id = xstrdup(r->job->spec->id);
    x->dedup = r->deduplicated;
  }
}

static void submit_done(rpc_call *call, const struct rpc_status *st, void *ud)
{
  struct submitter *s = ud;
  size_t i = (size_t)(uintptr_t)rpc_call_data(call);
  struct sub *x = &s->v[i];
  x->done = 1;
  s->done++;
  if (st->code == RPC_OK && x->id) {
    s->ok++;
  } else {
    free(x->id);
    x->id = NULL;
    s->refused++;
    char buf[1200];
    struct rpc_status t = *st;
    if (t.code == RPC_OK)
      t.code = RPC_INTERNAL;
    char pre[400];
    if (s->numbered)
      snprintf(pre, sizeof(pre), "%s, document %zu", s->origin, i + 1);
    else
      snprintf(pre, sizeof(pre), "%s", s->origin);
    client_status_text(s->cl, &t, s->origin ? pre : NULL, buf, sizeof(buf));
    if (st->code == RPC_UNAVAILABLE) {
      if (!s->unreachable) {
        char plain[1200];
        client_status_text(s->cl, &t, NULL, plain, sizeof(plain));
        s->unreachable_msg = xstrdup(plain);
      }
      s->unreachable = 1;
    }
    x->err = xstrdup(buf);
  }
  print_ready(s);
  start_more(s);
}

static void start_more(struct submitter *s)
{
  static const struct rpc_handlers h = {.on_message = submit_message, .on_done = submit_done};
  while (s->next < s->n && s->next - s->done < SUBMIT_WINDOW) {
    size_t i = s->next++;
    Drover__V1__SubmitRequest req = DROVER__V1__SUBMIT_REQUEST__INIT;
    req.spec = s->v[i].spec;
    rpc_call *call;
    if (client_start(s->cl, CLIENT_JOBS "Submit", &drover__v1__submit_response__descriptor,
                     &req.base, &h, s, &call) < 0) {
      s->v[i].done = 1;
      s->v[i].err = xstrdup("");
      s->done++;
      s->refused++;
      continue;
    }
    rpc_call_set_data(call, (void *)(uintptr_t)i);
  }
}

/* A refusal for --json: the message without its "error: ". */
static json_t *err_json(const char *err)
{
  if (!err || !*err)
    return json_null();
  if (!strncmp(err, "error: ", 7))
    err += 7;
  return jsonstr_new(err);
}

int cli_job_submit(int argc, char **argv)
{
  struct submit_opts o;
  struct cfg_result res;
  struct client_args args;
  int code;
  memset(&o, 0, sizeof(o));
  if (!client_parse(&submit_cmd, &o, &o.client, argc, argv, &res, &args, &code))
    return code;

  struct submitter s;
  memset(&s, 0, sizeof(s));
  char *text = NULL, err[512], origin[300];
  code = CLI_EXIT_USAGE;
  if (o.file) {
    if (args.n) {
      cli_usage_error(submit_cmd.name, submit_cmd.args, submit_cmd.summary, submit_cmd.opts,
                      submit_cmd.n, "give -f FILE or a command after --, not both");
      goto out;
    }
    for (size_t i = 0; i < submit_cmd.n && i < CFG_MAX_TRACKED; i++)
      for (size_t k = 0; k < ARRAY_SIZE(doc_keys); k++)
        if (res.source[i] == CFG_SRC_FLAG && !strcmp(submit_table[i].key, doc_keys[k])) {
          cli_usage_error(submit_cmd.name, submit_cmd.args, submit_cmd.summary, submit_cmd.opts,
                          submit_cmd.n,
                          "--%s is for a command after --: with -f, the job documents say it "
                          "(docs/job-spec.md)",
                          submit_table[i].key);
          goto out;
        }
    code = CLI_EXIT_ERROR;
    size_t len;
    int rc = read_input(o.file, &text, &len);
    if (!strcmp(o.file, "-"))
      snprintf(origin, sizeof(origin), "stdin");
    else
      snprintf(origin, sizeof(origin), "job file '%s'", o.file);
    s.origin = origin;
    if (rc < 0) {
      fprintf(stderr, "error: %s: %s\n", origin, strerror(-rc));
      goto out;
    }
    if (read_docs(&s, &o.job, text, len) < 0) {
      fprintf(stderr, "error: nothing was submitted: fix the document, then submit again\n");
      goto out;
    }
  } else {
    struct job j;
    if (jobopts_job(&o.job, args.n, args.v, &j, err, sizeof(err)) < 0) {
      cli_usage_error(submit_cmd.name, submit_cmd.args, submit_cmd.summary, submit_cmd.opts,
                      submit_cmd.n, "%s", err);
      goto out;
    }
    pb_JobSpec *spec = jobopts_spec(&o.job, &j, err, sizeof(err));
    job_release(&j);
    if (!spec) {
      cli_usage_error(submit_cmd.name, submit_cmd.args, submit_cmd.summary, submit_cmd.opts,
                      submit_cmd.n, "%s", err);
      goto out;
    }
    s.v = xcalloc(1, sizeof(*s.v));
    s.v[0].spec = spec;
    s.n = 1;
  }

  code = CLI_EXIT_ERROR;
  struct client cl;
  if (client_begin(&cl, o.client.addr) < 0)
    goto out;
  s.cl = &cl;
  s.json = o.json;
  start_more(&s);
  while (s.done < s.n)
    uv_run(cl.loop, UV_RUN_ONCE);
  if (o.json) {
    json_t *a = json_array();
    for (size_t i = 0; i < s.n; i++)
      json_array_append_new(
          a, json_pack("{s:o,s:b,s:o}", "id", s.v[i].id ? json_string(s.v[i].id) : json_null(),
                       "deduplicated", s.v[i].dedup, "error", err_json(s.v[i].err)));
    cli_print_json(a);
  }
  fflush(stdout);
  if (s.unreachable)
    fprintf(stderr, "%s\n", s.unreachable_msg);
  if (s.refused && s.n > 1)
    fprintf(stderr, "error: %zu of %zu jobs submitted (their ids are on stdout), %zu %s\n", s.ok,
            s.n, s.refused,
            s.unreachable ? "not confirmed: 'drover job list' shows what the coordinator has"
                          : "refused");
  code = s.refused ? CLI_EXIT_ERROR : CLI_EXIT_OK;
  client_end(&cl);
out:
  for (size_t i = 0; i < s.n; i++) {
    protobuf_c_message_free_unpacked(&s.v[i].spec->base, NULL);
    free(s.v[i].id);
    free(s.v[i].err);
  }
  free(s.v);
  free(s.unreachable_msg);
  free(text);
  client_parse_release(&submit_cmd, &o, &res, &args);
  return code;
}
