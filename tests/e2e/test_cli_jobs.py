"""`drover job ...` against a real `drover server`, the jobs run by the scripted
grpcio agent (fakeagent.py): what a user sees, stdout and stderr bytes, exit
codes, JSON documents and tables."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from cluster import DROVER, SANITIZER, clean_env, wait_for
from fakeagent import FakeAgent

STDOUT, STDERR, SYSTEM = 1, 2, 3
SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, LOST = 5, 6, 7, 8, 9


@pytest.fixture
def srv(cluster):
    return cluster.server()


def agent(cluster, srv, pb, name="a1", labels=None, slots=4, beat=True):
    tok = cluster.token(srv.addr)
    a = FakeAgent(pb, srv.addr, token=tok, name=name, labels=labels or {}, slots=slots)
    w = a.recv("welcome")
    a.node_id = w.node_id
    a.node_secret = w.node_secret
    if beat:
        a.beat()
    cluster.fakes = getattr(cluster, "fakes", []) + [a]
    return a


@pytest.fixture(autouse=True)
def close_fakes(cluster):
    yield
    for a in getattr(cluster, "fakes", []):
        a.close()


def bg(cluster, srv, *args, stdin=subprocess.DEVNULL, expect=0, env=None):
    """`drover <args>` in the background, --addr after the first two words."""
    p = cluster.start([*args[:2], "--addr", srv.addr, *args[2:]], f"cli-{args[1]}", stdin=stdin,
                      env=env)
    p.expect = {expect}
    return p


def outcome(p, timeout=60):
    """Waits for a background CLI; returns (exit code, stdout bytes, stderr text)."""
    rc = p.proc.wait(timeout=timeout)
    p.out.flush()
    return rc, p.outpath.read_bytes(), p.stderr()


def entry(pb, data, stream=STDOUT, **kw):
    return pb.jobs.LogEntry(stream=stream, ts_us=int(time.time() * 1e6),
                            data=data if isinstance(data, bytes) else data.encode(), **kw)


def play(pb, a, batches=(), state=SUCCEEDED, exit_code=0, signal_=0, error="", run=None,
         started=True):
    """Plays one job on fake agent a: takes its RunJob (or `run`), reports it
    started, sends each batch (a list of LogEntry), then its result."""
    run = run or a.recv("run_job")
    jid, att = run.job.spec.id, run.attempt
    if started:
        a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=att, pid=4242,
                                               started_at_us=int(time.time() * 1e6)))
    seq = 0
    for b in batches:
        seq += 1
        a.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=att, seq=seq, entries=list(b)))
    now = int(time.time() * 1e6)
    a.send(job_finished=pb.agent.JobFinished(job_id=jid, attempt=att, result=pb.jobs.JobResult(
        state=state, exit_code=exit_code, signal=signal_, error=error, last_log_seq=seq,
        started_at_us=now - 1500000, finished_at_us=now, duration_us=1500000,
        stdout_lines=3, stdout_bytes=20)))
    return run


def submit(cluster, srv, *args):
    r = cluster.cli(srv.addr, "job", "submit", *args, check=0)
    return r.stdout.strip()


def status(cluster, srv, jid):
    return json.loads(cluster.cli(srv.addr, "job", "status", jid, "--json", check=0).stdout)


# ------------------------------------------------------------------ job run

def test_cli_job_run_streams_the_jobs_bytes_and_exits_with_its_code(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--", "sh", "-c", "exit 3", expect=3)
    run = play(pb, a, batches=[
        [entry(pb, "hello"), entry(pb, "oops", STDERR), entry(pb, "$ sh -c 'exit 3'", SYSTEM)],
        [entry(pb, b"part one, ", partial=True), entry(pb, "part two"),
         entry(pb, b"\xff\x00binary"), entry(pb, "no newline at the end", no_eol=True),
         entry(pb, "last err", STDERR, no_eol=True)],
    ], state=FAILED, exit_code=3)
    rc, out, err = outcome(p)
    assert rc == 3
    assert out == b"hello\npart one, part two\n\xff\x00binary\nno newline at the end"
    assert err == "oops\nlast err"   # no "$ cmd" (system lines), nothing of drover's own
    # Several words are a program and its arguments; defaults of a remote job.
    spec = run.job.spec
    assert spec.kind == pb.jobs.JOB_KIND_EXEC and list(spec.argv) == ["sh", "-c", "exit 3"]
    assert spec.timeout_ms == 3600 * 1000 and spec.max_attempts == 1 and not spec.stdin


def test_cli_job_run_options_reach_the_spec(cluster, srv, pb):
    a = agent(cluster, srv, pb, labels={"gpu": "yes"})
    p = bg(cluster, srv, "job", "run", "--name", "build", "--priority", "7", "--label", "team=ops",
           "--constraint", "gpu=yes", "--max-attempts", "3",
           "--idempotency-key", "k-1", "-e", "A=1", "-C", "/tmp", "--timeout", "90s",
           "--kill-grace", "2s", "--", "make test")
    run = play(pb, a)
    assert outcome(p)[0] == 0
    s = run.job.spec
    assert s.kind in (pb.jobs.JOB_KIND_UNSPECIFIED, pb.jobs.JOB_KIND_SHELL)
    assert s.command == "make test"     # one word: a shell line
    assert s.name == "build" and s.priority == 7 and dict(s.labels) == {"team": "ops"}
    assert dict(s.constraints) == {"gpu": "yes"}
    assert s.max_attempts == 3 and s.idempotency_key == "k-1"
    assert [(e.name, e.value) for e in s.env] == [("A", "1")]
    assert s.workdir == "/tmp" and s.timeout_ms == 90000 and s.kill_grace_ms == 2000


def test_cli_job_run_require_reaches_the_spec(cluster, srv, pb):
    tok = cluster.token(srv.addr)
    a = FakeAgent(pb, srv.addr, token=tok, name="caps", capabilities=["cgroup.v2"], slots=2)
    a.recv("welcome")
    a.beat()
    cluster.fakes = [a]
    p = bg(cluster, srv, "job", "run", "--require", "cgroup.v2", "--exec", "--", "true")
    run = play(pb, a)
    assert outcome(p)[0] == 0
    assert list(run.job.spec.capabilities) == ["cgroup.v2"]
    assert list(run.job.spec.argv) == ["true"]     # --exec: argv even for one word


@pytest.mark.parametrize("state,exit_code,sig,error,want", [
    (FAILED, -1, 9, "", 128 + 9),
    (TIMED_OUT, -1, 15, "", 124),
    (FAILED, -1, 0, "workdir '/nope': No such file or directory", 125),
    (CANCELLED, -1, 15, "", 128 + 15),
])
def test_cli_job_run_exit_codes_are_drover_runs(cluster, srv, pb, state, exit_code, sig, error,
                                                 want):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--", "x", expect=want)
    play(pb, a, state=state, exit_code=exit_code, signal_=sig, error=error)
    rc, out, err = outcome(p)
    assert rc == want
    assert out == b""
    if error:
        assert err == f"error: {error}\n"
    else:
        assert err == ""


def test_cli_job_run_json_prints_the_result_document_last(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--json", "--name", "n1", "--", "x", expect=4)
    run = play(pb, a, batches=[[entry(pb, "no eol", no_eol=True)]], state=FAILED, exit_code=4)
    rc, out, _ = outcome(p)
    assert rc == 4
    first, doc = out.decode().split("\n")[:2]
    assert first == "no eol"         # the document starts a line of its own
    d = json.loads(doc)
    assert d["id"] == run.job.spec.id and d["name"] == "n1"
    assert d["status"] == "failed" and d["exit_code"] == 4 and d["exit"] == 4
    assert d["duration_ms"] == 1500 and d["attempt"] == 1
    assert out.endswith(b"}\n")


def test_cli_job_run_debug_shows_system_lines(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--log-level", "debug", "--", "x")
    play(pb, a, batches=[[entry(pb, "$ x", SYSTEM), entry(pb, "out")]])
    rc, out, err = outcome(p)
    assert rc == 0 and out == b"out\n"
    assert "$ x\n" in err


def test_cli_job_run_ctrl_c_cancels_the_job_and_waits_for_its_end(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--", "sleep 100", expect=130)
    run = a.recv("run_job")
    jid = run.job.spec.id
    a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    a.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=1, seq=1, entries=[
        entry(pb, "started")]))
    wait_for(lambda: b"started" in p.outpath.read_bytes(), what="the job's first line")
    p.send_signal(signal.SIGINT)
    cancel = a.recv("cancel_job")
    assert cancel.job_id == jid and "SIGINT" in cancel.reason
    # The output goes on until the job ends.
    a.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=1, seq=2, entries=[
        entry(pb, "got SIGTERM, cleaning up")]))
    play(pb, a, run=run, state=CANCELLED, signal_=15, started=False)
    rc, out, err = outcome(p)
    assert rc == 130
    assert out == b"started\ngot SIGTERM, cleaning up\n"
    assert f"drover: cancelling job {jid}" in err
    assert status(cluster, srv, jid)["state"] == "cancelled"


def test_cli_job_run_second_ctrl_c_stops_waiting(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--", "sleep 100", expect=130)
    run = a.recv("run_job")
    jid = run.job.spec.id
    a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    wait_for(lambda: status(cluster, srv, jid)["state"] == "running", what="running")
    p.send_signal(signal.SIGINT)
    a.recv("cancel_job")
    p.send_signal(signal.SIGINT)      # the job does not end: the agent ignores the cancel
    rc, out, err = outcome(p)
    assert rc == 130
    assert f"stopped waiting; job {jid} is being cancelled" in err
    assert status(cluster, srv, jid)["state"] == "running"


def test_cli_job_run_sigterm_cancels_too(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--", "sleep 100", expect=128 + 15)
    run = a.recv("run_job")
    a.send(job_started=pb.agent.JobStarted(job_id=run.job.spec.id, attempt=1, pid=1))
    wait_for(lambda: status(cluster, srv, run.job.spec.id)["state"] == "running", what="running")
    p.send_signal(signal.SIGTERM)
    assert "SIGTERM" in a.recv("cancel_job").reason
    play(pb, a, run=run, state=CANCELLED, signal_=15, started=False)
    assert outcome(p)[0] == 128 + 15


def test_cli_job_run_loop_is_not_held_by_a_stopped_reader(cluster, srv, pb, tmp_path):
    """The job's output fills drover's stdout (a pipe nobody reads): Ctrl-C
    still cancels the job, so the loop is not blocked on the write."""
    a = agent(cluster, srv, pb)
    r, w = os.pipe()
    p = cluster.start(["job", "run", "--addr", srv.addr, "--", "yes"], "cli-run", stdout=w)
    os.close(w)
    p.expect = {130}
    run = a.recv("run_job")
    jid = run.job.spec.id
    a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    line = entry(pb, "y" * 1000)
    for seq in range(1, 201):      # 200 KB a batch, 40 MB in all: far beyond the pipe and queue
        a.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=1, seq=seq, entries=[line] * 200))
    ack = None
    while not ack or ack.log_seq < 200:
        ack = a.recv("ack")
    p.send_signal(signal.SIGINT)
    assert a.recv("cancel_job").job_id == jid
    a.send(job_finished=pb.agent.JobFinished(job_id=jid, attempt=1, result=pb.jobs.JobResult(
        state=CANCELLED, exit_code=-1, signal=15, last_log_seq=200)))
    got = 0
    while True:   # now read it all: every byte arrives, in order
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        assert chunk.count(b"y") + chunk.count(b"\n") == len(chunk)
        got += len(chunk)
    os.close(r)
    assert got == 200 * 200 * 1001
    assert p.proc.wait(timeout=60) == 130


def test_cli_job_run_announces_a_new_attempt(cluster, pb):
    srv = cluster.server(node_timeout="3s")
    first = agent(cluster, srv, pb, name="first", beat=False)
    p = bg(cluster, srv, "job", "run", "--max-attempts", "2", "--", "x")
    run = first.recv("run_job")
    jid = run.job.spec.id
    first.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    first.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=1, seq=1, entries=[
        entry(pb, "attempt one")]))
    # The first agent goes silent: lost after 3 s, the job runs again elsewhere.
    second = agent(cluster, srv, pb, name="second")
    run2 = second.recv("run_job", timeout=30)
    assert run2.attempt == 2
    play(pb, second, run=run2, batches=[[entry(pb, "attempt two")]])
    rc, out, err = outcome(p)
    assert rc == 0
    assert out == b"attempt one\nattempt two\n"
    assert re.search(rf"drover: job {jid}: attempt 2 of 2 \(node 'first' lost: nothing heard from "
                     r"it for \d+ ms\)\n", err), err


def test_cli_job_run_lost_exits_75(cluster, pb):
    srv = cluster.server(node_timeout="3s")
    a = agent(cluster, srv, pb, beat=False)
    p = bg(cluster, srv, "job", "run", "--", "x", expect=75)
    a.recv("run_job")
    rc, out, err = outcome(p)
    assert rc == 75
    assert "error: node 'a1' lost" in err and "(attempt 1 of 1)" in err


def test_cli_job_run_i_streams_stdin(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    data = b"line one\n" + bytes(range(256)) * 1000
    p = bg(cluster, srv, "job", "run", "-i", "--", "cat", stdin=subprocess.PIPE)
    run = a.recv("run_job")
    assert run.job.spec.stdin
    p.proc.stdin.write(data)
    p.proc.stdin.close()
    got = b""
    while True:
        m = a.recv("stdin")
        assert m.offset == len(got)
        got += m.data
        a.send(stdin_ack=pb.agent.StdinAck(job_id=m.job_id, attempt=m.attempt, bytes=len(got)))
        if m.eof:
            break
    assert got == data
    play(pb, a, run=run)
    assert outcome(p)[0] == 0


def test_cli_job_run_without_i_gives_no_stdin(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--", "cat", stdin=subprocess.PIPE)
    run = a.recv("run_job")
    assert not run.job.spec.stdin
    play(pb, a, run=run)
    a.nothing("stdin")
    assert outcome(p)[0] == 0
    p.proc.stdin.close()


def test_cli_job_run_cannot_reach_the_coordinator(cluster):
    r = cluster.cli("127.0.0.1:1", "job", "run", "--", "true")
    assert r.returncode == 125
    assert r.stdout == ""
    assert r.stderr == ("error: cannot reach the coordinator at '127.0.0.1:1': tried 127.0.0.1:1 "
                        "(connection refused); is 'drover server' or 'drover dev' running? "
                        "(--addr / DROVER_ADDR)\n")


def test_cli_addr_comes_from_drover_addr(cluster, srv, pb):
    agent(cluster, srv, pb)
    r = subprocess.run([DROVER, "job", "list", "--json"], capture_output=True, text=True,
                       timeout=60, env=clean_env({"DROVER_ADDR": srv.addr}))
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_cli_job_run_refused_spec_says_why(cluster, srv):
    r = cluster.cli(srv.addr, "job", "run", "-i", "--max-attempts", "2", "--", "x")
    assert r.returncode == 125 and r.stdout == ""
    assert r.stderr == ("error: a job that reads stdin runs once: its input cannot be sent again "
                        "(drop --max-attempts or -i)\n")


def test_cli_job_run_usage_errors(cluster, srv):
    r = cluster.cli(srv.addr, "job", "run")
    assert r.returncode == 2 and "no command given" in r.stderr
    r = cluster.cli(srv.addr, "job", "run", "--exec", "--shell", "--", "x")
    assert r.returncode == 2 and "contradict" in r.stderr
    r = cluster.cli(srv.addr, "job", "run", "--label", "nokey", "--", "x")
    assert r.returncode == 2 and '--label "nokey"' in r.stderr


def test_run_refuses_the_options_of_a_coordinator(drover):
    for flag in (["--priority", "2"], ["--label", "a=b"], ["--constraint", "a=b"],
                 ["--require", "x"], ["--max-attempts", "2"], ["--idempotency-key", "k"]):
        r = subprocess.run([drover, "run", *flag, "--", "true"], capture_output=True, text=True,
                           timeout=60, env=clean_env())
        assert r.returncode == 2, flag
        assert r.stderr.startswith(f"error: {flag[0]} means something only to a coordinator: "
                                   "'drover run' runs the job here; use 'drover job run'")


def test_run_takes_the_shared_name_option(drover):
    r = subprocess.run([drover, "run", "--name", "nightly", "--json", "--", "true"],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 0
    assert json.loads(r.stdout)["name"] == "nightly"


# ------------------------------------------------------------------ submit

def test_cli_job_submit_prints_the_id_only(cluster, srv):
    r = cluster.cli(srv.addr, "job", "submit", "--name", "later", "--", "echo hi", check=0)
    assert re.fullmatch(r"[0-9a-f-]{36}\n", r.stdout)
    assert r.stderr == ""
    st = status(cluster, srv, r.stdout.strip())
    assert st["state"] == "queued" and st["name"] == "later" and st["result"] is None


def test_cli_job_submit_file_forms_print_ids_in_order(cluster, srv, tmp_path):
    docs = [{"name": f"j{i}", "command": f"echo {i}"} for i in range(5)]
    forms = {
        "one.json": json.dumps(docs[0]),
        "array.json": json.dumps(docs, indent=2),
        "lines.jsonl": "".join(json.dumps(d) + "\n" for d in docs),
    }
    for fname, text in forms.items():
        f = tmp_path / fname
        f.write_text(text)
        r = cluster.cli(srv.addr, "job", "submit", "-f", str(f), check=0)
        ids = r.stdout.split()
        want = 1 if fname == "one.json" else 5
        assert len(ids) == want and r.stderr == ""
        assert [status(cluster, srv, i)["name"] for i in ids] == [d["name"] for d in docs[:want]]
    # "-" is stdin, and --max-attempts/--constraint/--require apply to every job.
    r = cluster.cli(srv.addr, "job", "submit", "-f", "-", "--max-attempts", "2",
                    input=forms["lines.jsonl"], check=0)
    ids = r.stdout.split()
    assert len(ids) == 5
    assert all(status(cluster, srv, i)["max_attempts"] == 2 for i in ids)


def test_cli_job_submit_file_errors_name_document_line_and_column(cluster, srv, tmp_path):
    f = tmp_path / "jobs.jsonl"
    f.write_text('{"command": "a"}\n{"command": "b"}\n{"command": "c", "timeout": "soon"}\n')
    r = cluster.cli(srv.addr, "job", "submit", "-f", str(f))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: job file '{f}', document 3: line 3, column 29: \"timeout\" must be a duration "
        "like \"30s\", got \"soon\"",
        "error: nothing was submitted: fix the document, then submit again"]
    f.write_text('[{"command": "a"},\n {"comand": "b"}]')
    r = cluster.cli(srv.addr, "job", "submit", "-f", str(f))
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: job file '{f}', document 2: line 2, column 3: unknown "
                               'field "comand"')
    f.write_text('{"command": "a"}\n{"command": ')
    r = cluster.cli(srv.addr, "job", "submit", "-f", str(f))
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: job file '{f}', document 2: line 2, column 12: "
                               "invalid JSON")
    assert json.loads(cluster.cli(srv.addr, "job", "list", "--json", check=0).stdout) == []


def test_cli_job_submit_refused_job_is_named_and_counted(cluster, srv, tmp_path):
    f = tmp_path / "jobs.json"
    f.write_text(json.dumps([{"id": "dup-1", "command": "a"}, {"id": "dup-1", "command": "b"},
                             {"id": "other", "command": "c"}]))
    r = cluster.cli(srv.addr, "job", "submit", "-f", str(f))
    assert r.returncode == 1
    assert r.stdout.split() == ["dup-1", "other"]
    assert r.stderr.splitlines() == [
        f"error: job file '{f}', document 2: job 'dup-1' already exists: give each job its own "
        "id, or leave it out",
        "error: 2 of 3 jobs submitted (their ids are on stdout), 1 refused"]


def test_cli_job_submit_f_refuses_what_documents_say(cluster, srv, tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"command": "a"}')
    r = cluster.cli(srv.addr, "job", "submit", "-f", str(f), "--timeout", "5s")
    assert r.returncode == 2
    assert "--timeout is for a command after --: with -f, the job documents say it" in r.stderr
    r = cluster.cli(srv.addr, "job", "submit", "-f", str(f), "--", "x")
    assert r.returncode == 2 and "not both" in r.stderr


def test_cli_job_submit_idempotency_key_gives_the_first_job(cluster, srv):
    a = submit(cluster, srv, "--idempotency-key", "nightly-1", "--", "x")
    b = submit(cluster, srv, "--idempotency-key", "nightly-1", "--", "y")
    assert a == b


def test_cli_job_submit_refused_by_the_coordinator(cluster, srv):
    r = cluster.cli(srv.addr, "job", "submit", "--priority", "5000000", "--", "x")
    assert r.returncode == 2 and "--priority" in r.stderr


# ------------------------------------------------------------------ status, wait, logs

def test_cli_job_status_human_and_json(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--name", "st", "--label", "team=ops", "--", "x")
    run = a.recv("run_job")
    a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    wait_for(lambda: status(cluster, srv, jid)["state"] == "running", what="running")
    d = status(cluster, srv, jid)
    assert d["id"] == jid and d["name"] == "st" and d["attempt"] == 1 and d["result"] is None
    assert d["node"] == a.node_id and d["node_name"] == "a1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", d["created_at"])
    assert d["labels"] == {"team": "ops"}
    r = cluster.cli(srv.addr, "job", "status", jid, check=0)
    lines = dict(re.match(r"(\w+):\s+(.*)", l).groups() for l in r.stdout.splitlines())
    assert lines["state"] == "running" and lines["node"] == f"a1 ({a.node_id})"
    assert re.fullmatch(r"(\d+us|\d+ms|\d+\.\ds|\d+s) \(running\)", lines["duration"])
    assert lines["exit"] == "-"
    play(pb, a, run=run, state=FAILED, exit_code=2, started=False)
    cluster.cli(srv.addr, "job", "wait", jid, check=2)
    d = status(cluster, srv, jid)
    assert d["state"] == "failed" and d["attempt"] == 1
    assert d["result"]["status"] == "failed" and d["result"]["exit"] == 2
    assert d["result"]["id"] == jid and d["result"]["duration_ms"] == 1500
    r = cluster.cli(srv.addr, "job", "status", jid, check=0)
    lines = dict(re.match(r"(\w+):\s+(.*)", l).groups() for l in r.stdout.splitlines())
    assert lines["id"] == jid and lines["name"] == "st" and lines["state"] == "failed"
    assert lines["attempt"] == "1/1"
    assert re.fullmatch(r"(just now|\d+s ago) \(.*Z\)", lines["created"])
    assert lines["duration"] == "1.5s" and lines["exit"] == "2"
    assert "\033[" not in r.stdout      # not a terminal: no colour


def test_cli_job_status_unknown_job(cluster, srv):
    r = cluster.cli(srv.addr, "job", "status", "nope")
    assert r.returncode == 1 and r.stdout == "" and r.stderr == "error: no job 'nope'\n"
    for sub in ("wait", "logs", "cancel", "events"):
        r = cluster.cli(srv.addr, "job", sub, "nope")
        assert r.stderr == "error: no job 'nope'\n", sub
        assert r.returncode == (125 if sub == "wait" else 1), sub


def test_cli_job_status_colours_states_on_a_terminal_only(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--", "x")
    play(pb, a)
    cluster.cli(srv.addr, "job", "wait", jid, check=0)

    def on_tty(env):
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(DROVER, [DROVER, "job", "status", jid, "--addr", srv.addr], clean_env(env))
        out = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, st = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(st) == 0
        assert not SANITIZER.search(out.decode(errors="replace"))
        return out.decode()

    assert "\033[32msucceeded\033[0m" in on_tty({"TERM": "xterm"})
    assert "\033[" not in on_tty({"TERM": "xterm", "NO_COLOR": "1"})


def test_cli_job_wait_one_exits_with_the_jobs_code(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--", "x")
    p = bg(cluster, srv, "job", "wait", jid, expect=137)
    play(pb, a, state=FAILED, exit_code=-1, signal_=9)
    rc, out, err = outcome(p)
    assert rc == 137 and out == b"" and err == ""
    r = cluster.cli(srv.addr, "job", "wait", jid, "--json", check=137)
    assert json.loads(r.stdout)["result"]["signal"] == 9


def test_cli_job_wait_several(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    ids = [submit(cluster, srv, "--", f"x{i}") for i in range(3)]
    p = bg(cluster, srv, "job", "wait", *ids, expect=1)
    for code in (0, 0, 3):
        play(pb, a, state=SUCCEEDED if code == 0 else FAILED, exit_code=code)
    rc, out, err = outcome(p)
    assert rc == 1 and err == ""
    rows = [l.split() for l in out.decode().splitlines()]
    assert rows == [["ID", "STATE", "EXIT"], [ids[0], "succeeded", "0"],
                    [ids[1], "succeeded", "0"], [ids[2], "failed", "3"]]
    r = cluster.cli(srv.addr, "job", "wait", *ids[:2], "--json", check=0)
    assert [d["id"] for d in json.loads(r.stdout)] == ids[:2]


def test_cli_job_logs_exact_bytes_and_timestamps(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--", "x")
    play(pb, a, batches=[[entry(pb, "$ x", SYSTEM), entry(pb, "out 1"), entry(pb, "err 1", STDERR),
                          entry(pb, b"tail", no_eol=True)]], state=FAILED, exit_code=3,
         error="something broke")
    cluster.cli(srv.addr, "job", "wait", jid, check=3)
    r = subprocess.run([DROVER, "job", "logs", "--addr", srv.addr, jid], capture_output=True,
                       timeout=60, env=clean_env())
    assert r.returncode == 0
    assert r.stdout == b"out 1\ntail" and r.stderr == b"err 1\n"
    r = cluster.cli(srv.addr, "job", "logs", jid, "--timestamps", check=0)
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    lines = r.stdout.splitlines()
    assert [re.sub(ts, "T", l) for l in lines] == [
        "T sys $ x", "T out out 1", "T err err 1", "T out tail",
        "T sys error: something broke", "T sys failed, exit code 3, 1.5s"]
    assert r.stderr == ""


def test_cli_job_logs_follow_until_the_end(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--", "x")
    run = a.recv("run_job")
    a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    a.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=1, seq=1, entries=[entry(pb, "one")]))
    p = bg(cluster, srv, "job", "logs", jid, "-f")        # -f after the id
    wait_for(lambda: p.outpath.read_bytes() == b"one\n", what="the first line")
    assert p.alive()
    a.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=1, seq=2, entries=[entry(pb, "two")]))
    wait_for(lambda: p.outpath.read_bytes() == b"one\ntwo\n", what="the second line")
    a.send(job_finished=pb.agent.JobFinished(job_id=jid, attempt=1, result=pb.jobs.JobResult(
        state=SUCCEEDED, exit_code=0, last_log_seq=2)))
    rc, out, err = outcome(p)
    assert rc == 0 and out == b"one\ntwo\n" and err == ""
    # A job that has not written yet, then an older attempt asked for.
    r = cluster.cli(srv.addr, "job", "logs", jid, "--attempt", "2")
    assert r.returncode == 1 and "--attempt 2 is not one of them" in r.stderr
    del run


def test_cli_job_logs_into_a_closed_pipe_stops(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--", "x")
    play(pb, a, batches=[[entry(pb, "x" * 100)] * 500] * 20)
    cluster.cli(srv.addr, "job", "wait", jid, check=0)
    r = subprocess.run(f"'{DROVER}' job logs --addr {srv.addr} {jid} | head -c 10; "
                       "echo \" ${PIPESTATUS[0]}\"", shell=True, executable="/bin/bash",
                       capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.stdout == "xxxxxxxxxx 141\n"
    assert not SANITIZER.search(r.stderr) and r.stderr == ""


# ------------------------------------------------------------------ cancel, list, events

def test_cli_job_cancel_queued_and_running(cluster, srv, pb):
    queued = submit(cluster, srv, "--", "x")
    r = cluster.cli(srv.addr, "job", "cancel", queued, check=0)
    assert r.stdout == f"job {queued} cancelled\n"
    assert status(cluster, srv, queued)["state"] == "cancelled"
    r = cluster.cli(srv.addr, "job", "cancel", queued, check=0)
    assert r.stdout == f"job {queued} had ended already: cancelled\n"
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--", "x")
    run = a.recv("run_job")
    a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    wait_for(lambda: status(cluster, srv, jid)["state"] == "running", what="running")
    r = cluster.cli(srv.addr, "job", "cancel", jid, "--grace", "3s", check=0)
    assert r.stdout == (f"job {jid} is being cancelled on node a1 ('drover job wait {jid}' waits "
                        "for its end)\n")
    c = a.recv("cancel_job")
    assert c.grace_ms == 3000 and "drover job cancel" in c.reason
    play(pb, a, run=run, state=CANCELLED, signal_=15, started=False)
    cluster.cli(srv.addr, "job", "wait", jid, check=128 + 15)
    jid2 = submit(cluster, srv, "--", "y")
    a.recv("run_job")
    r = cluster.cli(srv.addr, "job", "cancel", jid2, "--grace", "0", "--json", check=0)
    assert json.loads(r.stdout)["id"] == jid2
    assert a.recv("cancel_job").grace_ms == 1      # 0: at once (0 on the wire is "default")


def test_cli_job_list_table_filters_and_json(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    done = submit(cluster, srv, "--name", "first", "--label", "team=ops", "--", "x")
    play(pb, a, state=FAILED, exit_code=1)
    cluster.cli(srv.addr, "job", "wait", done, check=1)
    a2 = submit(cluster, srv, "--name", "second", "--label", "team=dev", "--", "y")
    a.recv("run_job")
    r = cluster.cli(srv.addr, "job", "list", check=0)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "ATTEMPT", "NODE", "CREATED", "DURATION",
                                "EXIT"]
    # Aligned columns: every row starts each column where its header does.
    cols = [lines[0].index(h) for h in ("NAME", "STATE", "ATTEMPT", "NODE", "CREATED")]
    for l in lines[1:]:
        assert all(l[c - 2:c] == "  " and l[c] != " " for c in cols), l
    assert [l.split()[0] for l in lines[1:]] == [a2, done]      # newest first
    assert lines[1].split()[1:5] == ["second", "assigned", "1/1", "a1"]
    assert lines[2].split()[1:4] == ["first", "failed", "1/1"]
    assert lines[2].split()[-1] == "1"
    d = json.loads(cluster.cli(srv.addr, "job", "list", "--json", "--state", "failed",
                               check=0).stdout)
    assert [x["id"] for x in d] == [done]
    d = json.loads(cluster.cli(srv.addr, "job", "list", "--json", "--label", "team=dev",
                               check=0).stdout)
    assert [x["id"] for x in d] == [a2]
    d = json.loads(cluster.cli(srv.addr, "job", "list", "--json", "--limit", "1",
                               check=0).stdout)
    assert [x["id"] for x in d] == [a2]
    r = cluster.cli(srv.addr, "job", "list", "--limit", "1", check=0)
    assert "more jobs than --limit 1" in r.stderr
    r = cluster.cli(srv.addr, "job", "list", "--state", "done")
    assert r.returncode == 2 and '--state "done": must be one of' in r.stderr
    d = json.loads(cluster.cli(srv.addr, "job", "list", "--json", "--state",
                               "failed,assigned", check=0).stdout)
    assert {x["id"] for x in d} == {a2, done}


def test_cli_job_events_oldest_first(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    jid = submit(cluster, srv, "--", "x")
    play(pb, a)
    cluster.cli(srv.addr, "job", "wait", jid, check=0)
    d = json.loads(cluster.cli(srv.addr, "job", "events", jid, "--json", check=0).stdout)
    assert [(e["from"], e["to"]) for e in d] == [(None, "queued"), ("queued", "assigned"),
                                                 ("assigned", "running"),
                                                 ("running", "succeeded")]
    assert d[0]["reason"] == "submitted" and d[0]["node"] is None
    assert all(e["node"] == a.node_id and e["node_name"] == "a1" for e in d[1:])
    assert all(e["attempt"] == (0 if i == 0 else 1) for i, e in enumerate(d))
    r = cluster.cli(srv.addr, "job", "events", jid, check=0)
    rows = [l.split() for l in r.stdout.splitlines()]
    assert rows[0] == ["TIME", "FROM", "TO", "NODE", "ATTEMPT", "REASON"]
    assert [x[1:5] for x in rows[1:]] == [["-", "queued", "-", "0"],
                                          ["queued", "assigned", "a1", "1"],
                                          ["assigned", "running", "a1", "1"],
                                          ["running", "succeeded", "a1", "1"]]


# ------------------------------------------------------------------ help

@pytest.mark.parametrize("sub", ["run", "submit", "status", "wait", "logs", "cancel", "list",
                                 "events"])
def test_cli_job_help(drover, sub):
    r = subprocess.run([drover, "job", sub, "--help"], capture_output=True, text=True, timeout=30,
                       env=clean_env())
    assert r.returncode == 0 and r.stdout.startswith(f"usage: drover job {sub} [options]")
    assert "--addr ADDR" in r.stdout and "DROVER_ADDR" in r.stdout


def test_cli_job_without_subcommand_is_usage(drover):
    r = subprocess.run([drover, "job"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: drover job <subcommand>" in r.stderr
    r = subprocess.run([drover, "job", "frob"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown subcommand 'drover job frob'" in r.stderr


def test_cli_job_submit_json(cluster, srv, tmp_path):
    first = submit(cluster, srv, "--idempotency-key", "k9", "--", "x")
    f = tmp_path / "jobs.jsonl"
    f.write_text('{"command": "a", "idempotency_key": "k9"}\n{"id": "%s", "command": "b"}\n'
                 '{"command": "c"}\n' % first)
    r = cluster.cli(srv.addr, "job", "submit", "-f", str(f), "--json")
    assert r.returncode == 1
    d = json.loads(r.stdout)
    assert d[0] == {"id": first, "deduplicated": True, "error": None}
    assert d[1]["id"] is None and "already exists" in d[1]["error"]
    assert d[2]["id"] and d[2]["deduplicated"] is False and d[2]["error"] is None


def test_cli_job_run_i_ends_with_the_job_while_stdin_stays_open(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "-i", "--", "head -n 1", stdin=subprocess.PIPE)
    run = a.recv("run_job")
    p.proc.stdin.write(b"first\n")
    p.proc.stdin.flush()
    m = a.recv("stdin")
    while not m.data:
        m = a.recv("stdin")
    assert m.data == b"first\n" and not m.eof
    a.send(stdin_ack=pb.agent.StdinAck(job_id=m.job_id, attempt=1, bytes=6))
    # The job ends; drover's stdin is still open, its reader blocked in read().
    play(pb, a, run=run, batches=[[entry(pb, "first")]])
    rc, out, err = outcome(p)
    assert rc == 0 and out == b"first\n" and err == ""
    p.proc.stdin.close()


def test_cli_job_run_coordinator_gone_mid_job(cluster, srv, pb):
    a = agent(cluster, srv, pb)
    p = bg(cluster, srv, "job", "run", "--", "x", expect=125)
    run = a.recv("run_job")
    jid = run.job.spec.id
    a.send(job_started=pb.agent.JobStarted(job_id=jid, attempt=1, pid=1))
    a.send(log_batch=pb.agent.LogBatch(job_id=jid, attempt=1, seq=1, entries=[entry(pb, "hi")]))
    wait_for(lambda: p.outpath.read_bytes() == b"hi\n", what="the first line")
    srv.kill9()
    rc, out, err = outcome(p)
    assert rc == 125 and out == b"hi\n"
    assert err.startswith(f"error: job '{jid}': lost the connection to the coordinator at "
                          f"'{srv.addr}'")
    assert err.endswith(f"drover: the job may still run: 'drover job status {jid}' tells\n")
