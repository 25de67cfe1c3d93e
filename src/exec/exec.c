/* exec.c - runs one job as a child process on a libuv loop (see exec.h).
 *
 * Life of an exec: exec_start builds argv, envp and paths, opens the pipes
 * and starts the process (spawn.c: clone + exec). The first loop tick
 * emits drover's own header lines and starts reading, so headers always come
 * before output. The per-loop SIGCHLD watcher (reaper.c) reaps the process
 * group; when the main process is gone its group is SIGKILLed, and on_exit
 * runs once the group is reaped and every pipe is at EOF. Then the handles
 * are closed and the exec freed.
 *
 * Output goes one of two ways: cut into lines (lines.c) for a log, or, in
 * raw mode, handed over as read for a byte-exact passthrough; the counts in
 * the result are the same either way. */
#include "exec/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "container/container.h"
#include "exec/cmd.h"
#include "exec/lines.h"
#include "exec/progress.h"
#include "exec/reaper.h"
#include "exec/spawn.h"
#include "sandbox/sandbox.h"

/* One read buffer per exec, shared by its pipes: libuv reads one stream at a
 * time and our callbacks are done with the bytes before the next read. Big
 * reads are what make capture fast (one syscall per 256 KiB at best). */
#define READ_BUF (256 * 1024)
/* A bigger pipe lets a fast writer run ahead while the loop is busy
 * elsewhere (1 MiB is the unprivileged maximum by default). */
#define PIPE_SIZE    (1024 * 1024)
#define PROGRESS_MAX 4096
/* After the job's main process is gone and its group killed, how long pipes
 * held open by an escaped process (own session) may delay on_exit. */
#define EOF_GUARD_MS 2000

enum { S_OUT = 0, S_ERR = 1, S_PROGRESS = 2, NSTREAMS = 3 };

struct stream {
  struct exec *e;
  uv_pipe_t pipe;
  struct lines lines;
  int id;       /* S_OUT, S_ERR, S_PROGRESS */
  int child_fd; /* write end for the child; -1 once handed over */
  int used;     /* the pipe handle was initialised */
  int open;     /* not at EOF yet */
  int skipping; /* progress: inside an over-long line */
  int64_t ts;   /* wall time of the current read */
  char last;    /* raw mode: the last byte read, for the unterminated tail */
};

struct exec {
  uv_loop_t *loop;
  struct job job; /* our own copy */
  struct exec_ops ops;
  void *ud;
  struct reaper_entry rent;
  int pid; /* also the pgid; 0 when nothing was started */
  struct stream st[NSTREAMS];
  char *rbuf;
  size_t max_line;
  uv_timer_t tick;       /* first tick, then the EOF guard */
  uv_timer_t kill_timer; /* timeout, then TERM->KILL grace */
  int handles;           /* initialised handles whose close callback is pending */
  char *sys_text;        /* header lines, emitted at the first tick */
  char *script_path;
  struct job_result r;
  struct sbx_job *sj; /* the job's sandbox (cgroup, isolation); NULL: none */
  int64_t mono0;
  int wstatus;
  uint64_t kill_at;      /* loop time at which the group gets SIGKILL */
  uint64_t guard_left;   /* ms of the EOF guard left when output was paused */
  uint64_t rss_floor_kb; /* see self_rss_reset */
  unsigned cg_polls;     /* see on_cg_poll */
  unsigned started : 1, reaped : 1, group_gone : 1, killing : 1, timed_out : 1, cancelled : 1,
      failed : 1, finished : 1, guard_armed : 1, raw : 1, paused : 1, pg_gone : 1;
  struct container *ctr; /* a container job: it does the work (see the end of the file) */
};

static int start_container(uv_loop_t *loop, const struct job *j, const struct exec_opts *opts,
                           const struct exec_ops *ops, void *ud, struct exec **out);

static void maybe_finish(struct exec *e);

/* ---- output ---- */

static void on_line(void *ud, const char *data, size_t len, unsigned flags)
{
  struct stream *s = ud;
  struct exec *e = s->e;
  /* A line counts once, at its last part: the count matches `wc -l` plus an
   * unterminated tail. */
  if (!(flags & LINES_PARTIAL))
    e->r.lines[s->id]++;
  if (e->ops.on_line)
    e->ops.on_line(e, e->ud, (enum job_stream)s->id, s->ts, data, len, flags);
}

static void on_progress_line(void *ud, const char *data, size_t len, unsigned flags)
{
  struct stream *s = ud;
  struct exec *e = s->e;
  struct job_progress p;
  int partial = (flags & LINES_PARTIAL) != 0;

  /* An over-long progress line is garbage, not a progress report. */
  if (partial || s->skipping) {
    s->skipping = partial;
    return;
  }
  if (progress_parse(data, len, &p) < 0)
    return;
  free(e->r.progress.stage);
  free(e->r.progress.message);
  e->r.progress = p;
  if (e->ops.on_progress)
    e->ops.on_progress(e, e->ud, &e->r.progress);
}

static void on_sys_line(void *ud, const char *data, size_t len, unsigned flags)
{
  struct exec *e = ud;
  if (e->ops.on_line)
    e->ops.on_line(e, e->ud, JOB_SYSTEM, now_us(), data, len, flags);
}

/* Raw mode: the same line count lines.c would give, without cutting: one
 * per '\n' here, and one for an unterminated tail at the end (stream_end). */
static void on_raw(struct stream *s, const char *data, size_t n)
{
  struct exec *e = s->e;
  const char *p = data, *end = data + n;
  uint64_t nl = 0;

  while ((p = memchr(p, '\n', (size_t)(end - p)))) {
    nl++;
    p++;
  }
  e->r.lines[s->id] += nl;
  s->last = data[n - 1];
  if (e->ops.on_data)
    e->ops.on_data(e, e->ud, (enum job_stream)s->id, data, n);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  struct stream *s = h->data;
  buf->base = s->e->rbuf;
  buf->len = READ_BUF;
}

static void free_exec(struct exec *e)
{
  for (int i = 0; i < NSTREAMS; i++)
    lines_release(&e->st[i].lines);
  free(e->rbuf);
  free(e->sys_text);
  free(e->script_path);
  sbx_job_free(e->sj);
  job_release(&e->job);
  job_result_release(&e->r);
  free(e);
}

static void on_closed(uv_handle_t *h)
{
  struct exec *e = h->data;
  if (h->type == UV_NAMED_PIPE)
    e = ((struct stream *)h->data)->e;
  if (--e->handles == 0 && e->finished)
    free_exec(e);
}

static void stream_end(struct stream *s)
{
  if (!s->open)
    return;
  s->open = 0;
  if (s->e->raw && s->id != S_PROGRESS) {
    if (s->e->r.bytes[s->id] > 0 && s->last != '\n')
      s->e->r.lines[s->id]++;
  } else {
    lines_flush(&s->lines);
  }
  uv_close((uv_handle_t *)&s->pipe, on_closed);
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
  struct stream *s = h->data;
  struct exec *e = s->e;

  if (n > 0) {
    /* One clock read per read(), not per line: every line in it arrived
     * at the same moment as far as anyone can tell. */
    s->ts = now_us();
    if (s->id != S_PROGRESS)
      e->r.bytes[s->id] += (uint64_t)n;
    if (e->raw && s->id != S_PROGRESS)
      on_raw(s, buf->base, (size_t)n);
    else
      lines_feed(&s->lines, buf->base, (size_t)n);
    return;
  }
  if (n == 0)
    return;
  /* EOF, or an error that ends the stream the same way. */
  stream_end(s);
  maybe_finish(e);
}

/* ---- kill, reap, finish ---- */

static void maybe_finish(struct exec *e);
static void on_cg_poll(uv_timer_t *t);

/* Never signals a reaped group: its pgid could be a new process by now. */
static void group_signal(struct exec *e, int sig)
{
  if (e->pid > 0 && !e->reaped)
    kill(-e->pid, sig);
  /* KILL is for everything of the job, wherever its process group. */
  if (sig == SIGKILL && e->sj && e->pid > 0)
    sbx_job_kill(e->sj);
}

/* How long the cgroup of a job whose processes were all killed may stay
 * populated (a process stuck in the kernel, in D state) before the job is
 * reported anyway; its group is then left to the next sweep. */
#define CG_POLL_MAX_MS 10000

/* The job's processes are all gone: its process group is reaped and its
 * cgroup (if any) is empty. An escaped process, killed with the cgroup, may
 * take a moment to exit; the kill timer polls for it then, every ms at
 * first, then every 10 ms. */
static void check_gone(struct exec *e)
{
  if (!e->pg_gone || e->group_gone)
    return;
  if (e->sj && sbx_job_populated(e->sj) && e->cg_polls < 100 + CG_POLL_MAX_MS / 10) {
    if (!uv_is_active((uv_handle_t *)&e->kill_timer))
      uv_timer_start(&e->kill_timer, on_cg_poll, e->cg_polls < 100 ? 1 : 10, 0);
    return;
  }
  if (e->sj && e->cg_polls >= 100 + CG_POLL_MAX_MS / 10)
    log_warn("processes of a finished job do not die; reporting it anyway", "job=%s", e->job.id);
  uv_timer_stop(&e->kill_timer);
  e->group_gone = 1;
}

static void on_kill_timer(uv_timer_t *t);

/* TERM now (first call), KILL in grace_ms; a later call can only bring the
 * KILL closer. */
static void start_kill(struct exec *e, uint64_t grace_ms)
{
  uint64_t at;

  if (e->reaped || e->failed)
    return;
  if (grace_ms > (1ull << 40)) /* "forever" must not overflow the deadline */
    grace_ms = 1ull << 40;
  at = uv_now(e->loop) + grace_ms;
  if (!e->killing) {
    e->killing = 1;
    group_signal(e, SIGTERM);
    group_signal(e, SIGCONT); /* a stopped process must see its TERM */
  } else if (e->kill_at <= at) {
    return;
  }
  e->kill_at = at;
  if (grace_ms == 0) {
    uv_timer_stop(&e->kill_timer);
    group_signal(e, SIGKILL);
    return;
  }
  uv_timer_start(&e->kill_timer, on_kill_timer, grace_ms, 0);
}

/* Polls the killed cgroup (see check_gone); kills again every 50 polls (a
 * process that was forking when the group was killed, on v1). */
static void on_cg_poll(uv_timer_t *t)
{
  struct exec *e = t->data;
  if (++e->cg_polls % 50 == 0)
    sbx_job_kill(e->sj);
  check_gone(e);
  maybe_finish(e);
}

static void on_kill_timer(uv_timer_t *t)
{
  struct exec *e = t->data;
  if (!e->killing) {
    e->timed_out = 1;
    start_kill(e, e->job.kill_grace_ms);
  } else {
    group_signal(e, SIGKILL);
  }
}

static void on_guard(uv_timer_t *t)
{
  struct exec *e = t->data;
  /* Something outside the job's group (it made its own session) still holds
   * a pipe, or a killed process does not die. Do not wait for it forever. */
  log_debug("job pipes still open after its process group was killed; closing them",
            "job=%s pid=%d", e->job.id, e->pid);
  for (int i = 0; i < NSTREAMS; i++)
    stream_end(&e->st[i]);
  if (!e->sj || !sbx_job_populated(e->sj))
    e->group_gone = 1; /* else the cgroup poll decides */
  maybe_finish(e);
}

/* The guard runs only while output is read: a paused job's pipes are full
 * of output the owner still wants, not held by a stray process. Paused
 * time does not count; the rest of the guard runs on resume. */
static void arm_guard(struct exec *e)
{
  if (e->started && e->reaped && !e->guard_armed && e->pid > 0) {
    e->guard_armed = 1;
    e->guard_left = EOF_GUARD_MS;
    if (!e->paused)
      uv_timer_start(&e->tick, on_guard, EOF_GUARD_MS, 0);
  }
}

/* Why a floor: the job's first process is cloned with CLONE_VM, and at
 * execve the kernel copies the high-water mark of the mm it leaves (ours)
 * into the new process's maxrss (fs/exec.c, exec_mmap); fork would do the
 * same. So that process's ru_maxrss is at least our own RSS, whatever the
 * job used. Just before the spawn we reset our high-water mark to our
 * current RSS (clear_refs "5", best effort); right after it we read our
 * maxrss, which then covers our RSS at the child's execve (the spawn's own
 * stack pages included: unmapping them updates the mark). The first
 * process's figure counts only above that floor; its descendants forked
 * from the job's own memory and count always. */
static void self_rss_reset(void)
{
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t w = write(fd, "5", 1);
    (void)w; /* without it the floor is our lifetime peak: higher, still safe */
    close(fd);
  }
}

static uint64_t self_maxrss(void)
{
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) < 0)
    return UINT64_MAX;
  return (uint64_t)ru.ru_maxrss;
}

static void add_rusage(struct exec *e, const struct rusage *ru, int leader)
{
  uint64_t kb = (uint64_t)ru->ru_maxrss;
  if (!leader || kb > e->rss_floor_kb) {
    if (!e->r.max_rss_known || kb > e->r.max_rss_kb)
      e->r.max_rss_kb = kb;
    e->r.max_rss_known = 1;
  }
  e->r.user_us += (uint64_t)ru->ru_utime.tv_sec * 1000000u + (uint64_t)ru->ru_utime.tv_usec;
  e->r.sys_us += (uint64_t)ru->ru_stime.tv_sec * 1000000u + (uint64_t)ru->ru_stime.tv_usec;
}

/* Called on every SIGCHLD (and once right after the spawn). Waits on the whole
 * group, not just the pid: when the runner is a child subreaper (see
 * exec.h), the job's orphans are our children and are reaped here too, so
 * on_exit comes after every process of the group is gone. */
static void on_reap(struct reaper_entry *en)
{
  struct exec *e = (struct exec *)((char *)en - offsetof(struct exec, rent));

  for (;;) {
    struct rusage ru;
    int st;
    pid_t w = wait4(-e->pid, &st, WNOHANG, &ru);
    if (w > 0) {
      add_rusage(e, &ru, w == e->pid);
      if (w == e->pid) {
        e->wstatus = st;
        e->r.finished_us = now_us();
        e->r.duration_us = (uint64_t)(mono_us() - e->mono0);
        /* The main process is gone: whatever is left of its group (a
         * background `sleep &`, a grandchild ignoring TERM) goes too. */
        kill(-e->pid, SIGKILL);
        if (e->sj)
          sbx_job_kill(e->sj);
        e->reaped = 1;
        uv_timer_stop(&e->kill_timer);
        arm_guard(e);
      }
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      /* ECHILD: no child of ours left in the group. */
      if (!e->reaped) {
        /* Someone else waited for our child (a waitpid(-1) elsewhere in
         * the process): the status is lost, but the job is over. */
        e->reaped = 1;
        e->wstatus = -1;
        e->r.finished_us = now_us();
        e->r.duration_us = (uint64_t)(mono_us() - e->mono0);
        e->r.error = xstrdup("exit status lost: the process was reaped elsewhere");
        uv_timer_stop(&e->kill_timer);
        if (e->sj)
          sbx_job_kill(e->sj);
        arm_guard(e);
      }
      e->pg_gone = 1;
      check_gone(e);
    }
    break;
  }
  if (e->group_gone && e->rent.owner)
    reaper_remove(&e->rent);
  maybe_finish(e);
}

static void fill_status(struct exec *e)
{
  struct job_result *r = &e->r;
  int st = e->wstatus;

  if (e->failed || st == -1) {
    r->status = JOB_FAILED;
    r->exit_code = -1;
    return;
  }
  if (WIFEXITED(st)) {
    r->exit_code = WEXITSTATUS(st);
    r->signal = 0;
  } else {
    r->exit_code = -1;
    r->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  }
  if (e->timed_out)
    r->status = JOB_TIMED_OUT;
  else if (e->cancelled)
    r->status = JOB_CANCELLED;
  else
    r->status = r->exit_code == 0 ? JOB_SUCCEEDED : JOB_FAILED;
}

static void finish(struct exec *e)
{
  e->finished = 1;
  if (e->rent.owner)
    reaper_remove(&e->rent);
  uv_timer_stop(&e->tick);
  uv_timer_stop(&e->kill_timer);
  fill_status(e);
  if (e->sj)
    sbx_job_finish(e->sj, &e->r);
  if (e->script_path) {
    unlink(e->script_path);
    free(e->script_path);
    e->script_path = NULL;
  }
  if (e->ops.on_exit)
    e->ops.on_exit(e, e->ud, &e->r);
  uv_close((uv_handle_t *)&e->tick, on_closed);
  uv_close((uv_handle_t *)&e->kill_timer, on_closed);
}

static void maybe_finish(struct exec *e)
{
  if (e->finished || !e->started || !e->reaped || !e->group_gone)
    return;
  for (int i = 0; i < NSTREAMS; i++)
    if (e->st[i].open)
      return;
  finish(e);
}

/* First loop tick after exec_start: headers first, then the output. */
static void on_tick(uv_timer_t *t)
{
  struct exec *e = t->data;
  struct lines sys;

  if (e->sys_text) {
    lines_init(&sys, e->max_line, on_sys_line, e);
    lines_feed(&sys, e->sys_text, strlen(e->sys_text));
    lines_flush(&sys);
    lines_release(&sys);
    free(e->sys_text);
    e->sys_text = NULL;
  }
  for (int i = 0; i < NSTREAMS; i++) {
    struct stream *s = &e->st[i];
    if (e->paused && i != S_PROGRESS)
      continue;
    if (s->open && uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read) < 0)
      stream_end(s);
  }
  e->started = 1;
  if (!e->killing && !e->reaped && !e->failed && e->job.timeout_ms)
    uv_timer_start(&e->kill_timer, on_kill_timer, e->job.timeout_ms, 0);
  arm_guard(e);
  maybe_finish(e);
}

/* ---- start ---- */

static int stream_setup(struct exec *e, int id)
{
  struct stream *s = &e->st[id];
  int p[2], rc;

  s->e = e;
  s->id = id;
  s->child_fd = -1;
  lines_init(&s->lines, id == S_PROGRESS ? PROGRESS_MAX : e->max_line,
             id == S_PROGRESS ? on_progress_line : on_line, s);
  if (pipe2(p, O_CLOEXEC) < 0)
    return -errno;
  if (id != S_PROGRESS)
    fcntl(p[0], F_SETPIPE_SZ, PIPE_SIZE); /* best effort */
  uv_pipe_init(e->loop, &s->pipe, 0);
  s->pipe.data = s;
  s->used = 1;
  e->handles++;
  if ((rc = uv_pipe_open(&s->pipe, p[0])) < 0) {
    close(p[0]);
    close(p[1]);
    return rc;
  }
  s->open = 1;
  s->child_fd = p[1];
  return 0;
}

int exec_start(uv_loop_t *loop, const struct job *j, const struct exec_opts *opts,
               const struct exec_ops *ops, void *ud, struct exec **out)
{
  static const struct exec_opts defaults;
  struct exec *e = xcalloc(1, sizeof *e);
  struct cmd c;
  int devnull = -1, rc;

  if (!opts)
    opts = &defaults;
  if (j->kind == JOB_CONTAINER) {
    free(e);
    return start_container(loop, j, opts, ops, ud, out);
  }
  e->loop = loop;
  e->ops = *ops;
  e->ud = ud;
  e->max_line = opts->max_line ? opts->max_line : LINES_DEFAULT_MAX;
  e->raw = opts->raw_output != 0;
  cmd_job_copy(&e->job, j);
  job_result_init(&e->r);
  e->r.attempt = j->attempt ? j->attempt : 1;
  e->rent.cb = on_reap;
  for (int i = 0; i < NSTREAMS; i++)
    e->st[i].child_fd = -1;
  uv_timer_init(loop, &e->tick);
  uv_timer_init(loop, &e->kill_timer);
  e->tick.data = e->kill_timer.data = e;
  e->handles = 2;

  if ((rc = cmd_build(&c, &e->job, opts->tmpdir)) < 0)
    goto fail;
  /* The sandbox: a cgroup for the job and what its child sets up. A job
   * asking for what the runner cannot give fails here, before any process. */
  if (!c.error && opts->sandbox)
    sbx_job_new(opts->sandbox, &e->job, c.path, c.argv, &e->sj, &c.error);
  else if (!c.error && (j->resources.memory_bytes || j->resources.cpus > 0 || j->resources.pids ||
                        job_isolation_any(&j->isolation)))
    c.error = xstrdup("\"resources\" and \"isolation\" need a runner with a sandbox, and this "
                      "one has none: remove them to run the job without them");
  for (int i = 0; i < NSTREAMS; i++) {
    if (opts->inherit_stdio && i != S_PROGRESS)
      continue;
    if ((rc = stream_setup(e, i)) < 0)
      goto fail;
  }
  e->rbuf = xmalloc(READ_BUF);

  if (!c.error) {
    struct spawn_req req = {
        .path = c.path,
        .argv = c.argv,
        .envp = c.envp,
        .workdir = j->workdir,
        .fd_stdout = e->st[S_OUT].child_fd,
        .fd_stderr = e->st[S_ERR].child_fd,
        .fd_progress = e->st[S_PROGRESS].child_fd,
        .sandbox = e->sj ? sbx_job_child(e->sj) : NULL,
    };
    struct spawn_failure f;
    if (c.stdin_fd >= 0) { /* a tool job's arguments */
      req.fd_stdin = c.stdin_fd;
    } else if (opts->set_stdin && opts->fd_stdin >= 0) {
      req.fd_stdin = opts->fd_stdin;
    } else {
      if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
      }
      req.fd_stdin = devnull;
    }
    /* The watcher is up before the spawn, so the child's SIGCHLD is not lost. */
    if ((rc = reaper_add(loop, &e->rent)) < 0)
      goto fail;
    self_rss_reset();
    e->r.started_us = now_us();
    e->mono0 = mono_us();
    rc = spawn_process(&req, &f);
    e->rss_floor_kb = self_maxrss();
    if (rc < 0 && e->sj && sbx_job_child(e->sj)->clone_flags) {
      /* clone itself makes the PID (and user) namespace: the kernel's
       * refusal is the job's failure to start, said as such. */
      c.error = xasprintf("cannot set up the job's sandbox: make its namespaces (clone): %s",
                          strerror(-rc));
      rc = 0;
    }
    if (rc < 0) {
      reaper_remove(&e->rent);
      goto fail;
    }
    if (rc > 0) {
      e->pid = rc;
      e->rent.pgid = rc;
    } else {
      reaper_remove(&e->rent);
      e->r.started_us = 0;
      if (c.error)
        ; /* the clone's refusal, said above */
      else if (f.step == SPAWN_STEP_SANDBOX)
        c.error = xasprintf("cannot set up the job's sandbox: %s: %s", f.what ? f.what : "setup",
                            strerror(f.err));
      else
        c.error = cmd_spawn_error(&c, j, f.step, f.err);
    }
  }

  if (c.error) {
    /* Did not start: no process, but the same path to on_exit. The pipes
     * see EOF at once since their write ends are closed below. */
    e->r.error = c.error;
    c.error = NULL;
    e->failed = 1;
    e->reaped = 1;
    e->group_gone = 1;
    e->r.finished_us = now_us();
  }
  for (int i = 0; i < NSTREAMS; i++)
    if (e->st[i].child_fd >= 0) {
      close(e->st[i].child_fd);
      e->st[i].child_fd = -1;
    }
  if (devnull >= 0)
    close(devnull);
  e->sys_text = c.header;
  c.header = NULL;
  e->script_path = c.script_path; /* unlinked when the job is over */
  c.script_path = NULL;
  cmd_release(&c);

  /* A fast job may be over already; its SIGCHLD may have come before the
   * watcher saw the pid. */
  if (e->pid > 0)
    on_reap(&e->rent);
  uv_timer_start(&e->tick, on_tick, 0, 0);
  *out = e;
  return 0;

fail:
  for (int i = 0; i < NSTREAMS; i++) {
    struct stream *s = &e->st[i];
    if (s->child_fd >= 0)
      close(s->child_fd);
    s->open = 0;
    if (s->used)
      uv_close((uv_handle_t *)&s->pipe, on_closed);
  }
  if (devnull >= 0)
    close(devnull);
  cmd_release(&c);
  /* No callback will be called: the exec is freed when its handles are. */
  e->finished = 1;
  uv_close((uv_handle_t *)&e->tick, on_closed);
  uv_close((uv_handle_t *)&e->kill_timer, on_closed);
  return rc;
}

void exec_pause_output(struct exec *e, int paused)
{
  if (e->ctr) {
    container_pause_output(e->ctr, paused);
    return;
  }
  paused = paused != 0;
  if (e->finished || (int)e->paused == paused)
    return;
  e->paused = (unsigned)paused;
  if (!e->started)
    return; /* on_tick starts reading, or not */
  for (int i = 0; i < NSTREAMS; i++) {
    struct stream *s = &e->st[i];
    if (i == S_PROGRESS || !s->open)
      continue;
    if (paused)
      uv_read_stop((uv_stream_t *)&s->pipe);
    else if (uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read) < 0)
      stream_end(s);
  }
  /* The EOF guard waits while paused (see arm_guard). */
  if (e->guard_armed) {
    if (paused) {
      uint64_t due = uv_timer_get_due_in(&e->tick);
      e->guard_left = due ? due : 1;
      uv_timer_stop(&e->tick);
    } else {
      uv_timer_start(&e->tick, on_guard, e->guard_left, 0);
    }
  }
  if (!paused)
    maybe_finish(e);
}

void exec_cancel(struct exec *e, uint64_t grace_ms)
{
  if (e->ctr) {
    if (!e->finished)
      container_cancel(e->ctr, grace_ms);
    return;
  }
  if (e->finished || e->reaped || e->failed)
    return;
  if (!e->killing)
    e->cancelled = 1;
  start_kill(e, grace_ms == UINT64_MAX ? e->job.kill_grace_ms : grace_ms);
}

int exec_become_subreaper(void)
{
  return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 0;
}

void exec_loop_done(uv_loop_t *loop)
{
  reaper_loop_done(loop);
}

int exec_pid(const struct exec *e)
{
  return e->pid;
}

const struct job *exec_job(const struct exec *e)
{
  return &e->job;
}

/* ---- container jobs: the same contract, run by src/container ---- */

static void ctr_line(void *ud, enum job_stream s, int64_t ts, const char *data, size_t len,
                     unsigned flags)
{
  struct exec *e = ud;
  if (e->ops.on_line)
    e->ops.on_line(e, e->ud, s, ts, data, len, flags);
}

static void ctr_data(void *ud, enum job_stream s, const char *data, size_t len)
{
  struct exec *e = ud;
  if (e->ops.on_data)
    e->ops.on_data(e, e->ud, s, data, len);
}

static void ctr_exit(void *ud, const struct job_result *r)
{
  struct exec *e = ud;
  e->finished = 1;
  if (e->ops.on_exit)
    e->ops.on_exit(e, e->ud, r);
  job_release(&e->job);
  free(e);
}

static int start_container(uv_loop_t *loop, const struct job *j, const struct exec_opts *opts,
                           const struct exec_ops *ops, void *ud, struct exec **out)
{
  static const struct container_ops cops = {ctr_line, ctr_data, ctr_exit};
  struct container_opts co = {.host = opts->docker_host,
                              .node = opts->docker_node,
                              .max_line = opts->max_line,
                              .raw_output = opts->raw_output};
  struct exec *e = xcalloc(1, sizeof *e);
  int rc;

  /* The container's stdin is empty: opts->fd_stdin is not read (the
   * coordinator refuses a container job that asks for stdin, spec.c). */
  e->loop = loop;
  e->ops = *ops;
  e->ud = ud;
  cmd_job_copy(&e->job, j);
  /* The runner's defaults, maxima and required isolation hold for a
   * container job too; the engine enforces them (dockerjson.c). */
  char *refused = NULL;
  sbx_job_policy(opts->sandbox, &e->job, &refused);
  co.refuse = refused;
  rc = container_start(loop, &e->job, &co, &cops, e, &e->ctr);
  free(refused);
  if (rc < 0) {
    job_release(&e->job);
    free(e);
    return rc;
  }
  *out = e;
  return 0;
}
