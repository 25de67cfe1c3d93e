"""`drover run` (and the executor under the agent) against careless and hostile use:
closed stdio, binary output, stalled readers, signals, a killed drover, escaped orphans.
Every test waits on events (a pid, a file, a full pipe), never on a fixed sleep."""
import fcntl
import json
import os
import select
import signal
import subprocess
import termios
import time

import pytest

F_GETPIPE_SZ = 1032


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DROVER_") or k == "DROVER_BUILD"}
    env.update(extra or {})
    return env


def run(drover, *args, timeout=60, **kw):
    kw.setdefault("capture_output", True)
    return subprocess.run([drover, "run", *args], timeout=timeout, env=clean_env(), **kw)


def check_clean(stderr):
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    assert "Sanitizer" not in text and "runtime error" not in text, text


def proc_state(pid):
    """The state letter of pid from /proc, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def dead(pid):
    """Gone, or a zombie (its parent may be a PID 1 that does not reap)."""
    return proc_state(pid) in (None, "Z", "X")


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def children(pid):
    """(pid, state) of every process whose parent is pid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            out.append((int(name), fields[0]))
    return out


def read_line(f, timeout=30):
    """The first line of pipe f, read without buffering ahead, within timeout."""
    fd, line = f.fileno(), b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], "timed out reading a line"
        c = os.read(fd, 1)
        assert c, f"EOF after {line!r}"
        line += c
    return line


def start(drover, script, *extra, **kw):
    """Starts `drover run -- SCRIPT` whose first stdout line is a pid; returns (proc, pid)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.Popen([drover, "run", *extra, "--", script], env=clean_env(), **kw)
    try:
        pid = int(read_line(p.stdout))
    except BaseException:
        p.kill()
        p.wait()
        raise
    return p, pid


def start_stalled(drover, tmp_path, script, *extra):
    """Starts `drover run -- SCRIPT` with a stdout that nobody reads; the job
    writes its pid to a file first (a line on stderr could wait behind stdout:
    drover writes both in the order it read them). Returns (proc, pid, read end)."""
    pidfile = tmp_path / "pid"
    r, w = os.pipe()
    p = subprocess.Popen([drover, "run", *extra, "--",
                          f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; {script}"],
                         stdout=w, stderr=subprocess.PIPE, env=clean_env())
    os.close(w)
    try:
        wait_for(pidfile.exists, what="the job's pid file")
    except BaseException:
        p.kill()
        p.wait()
        os.close(r)
        raise
    return p, int(pidfile.read_text()), r


def finish(p, timeout=30):
    """Waits for p; returns (exit code, stdout rest, stderr) and checks stderr."""
    out, err = p.communicate(timeout=timeout)
    check_clean(err)
    return p.returncode, out, err


def kill_left(*pids):
    for pid in pids:
        if not dead(pid):
            os.kill(pid, signal.SIGKILL)


# ---- item 5: closed stdio ----

@pytest.mark.parametrize("redir", ["<&-", ">&-", "2>&-", "<&- >&- 2>&-"])
def test_run_with_closed_stdio(drover, tmp_path, redir):
    # Sanitizer reports go to files: stderr itself may be closed.
    env = clean_env({"ASAN_OPTIONS": f"log_path={tmp_path}/asan",
                     "UBSAN_OPTIONS": f"log_path={tmp_path}/ubsan:print_stacktrace=1"})
    r = subprocess.run(f"'{drover}' run -- 'echo out; echo err >&2' {redir}", shell=True,
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    if ">&-" not in redir.replace("2>&-", ""):
        assert r.stdout == "out\n"
    assert "Assertion" not in r.stderr
    assert not list(tmp_path.glob("*san*")), [p.read_text() for p in tmp_path.glob("*san*")]


def test_agent_with_closed_stdio(drover, tmp_path):
    d = tmp_path / "jobs"
    env = clean_env({"ASAN_OPTIONS": f"log_path={tmp_path}/asan",
                     "UBSAN_OPTIONS": f"log_path={tmp_path}/ubsan:print_stacktrace=1"})
    p = subprocess.Popen(f"exec '{drover}' agent --jobs-dir '{d}' <&- >&- 2>&-", shell=True,
                         env=env)
    try:
        wait_for(lambda: (d / "results").is_dir() or p.poll() is not None, what="agent start")
        (d / ".j.tmp").write_text('{"id": "j", "command": "echo hi"}')
        os.rename(d / ".j.tmp", d / "j.json")
        wait_for(lambda: (d / "results" / "j.json").exists() or p.poll() is not None,
                 what="the job's result")
        assert p.poll() is None, f"agent died: {p.returncode}"
        assert json.loads((d / "results" / "j.json").read_text())["status"] == "succeeded"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not list(tmp_path.glob("*san*")), [p.read_text() for p in tmp_path.glob("*san*")]


# ---- items 6 and 21: byte-exact passthrough ----

def test_run_adds_no_newline(drover):
    r = run(drover, "--", "printf abc; printf def >&2")
    assert r.returncode == 0
    assert r.stdout == b"abc"
    assert r.stderr == b"def"


def test_run_binary_output_is_byte_exact(drover, tmp_path):
    data = os.urandom(1_000_000)
    src = tmp_path / "rand.bin"
    src.write_bytes(data)
    with open(tmp_path / "out", "wb") as out:
        r = run(drover, "--exec", "--", "cat", str(src), stdout=out, stderr=subprocess.PIPE,
                capture_output=False)
    check_clean(r.stderr)
    assert r.returncode == 0
    assert (tmp_path / "out").read_bytes() == data
    # The counts: newlines, plus one for an unterminated tail.
    r = run(drover, "--json", "--exec", "--", "cat", str(src))
    doc = json.loads(r.stdout.rsplit(b"\n", 2)[-2])
    want_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    assert doc["stdout"] == {"lines": want_lines, "bytes": len(data)}
    # The document is on a line of its own even after output without a newline.
    assert r.stdout[:len(data)] == data and r.stdout[len(data):len(data) + 1] == b"\n"


def test_run_json_counts_of_a_large_output(drover):
    r = run(drover, "--json", "--", "head -c 10000000 /dev/zero | tr '\\0' x | fold -w 99")
    body, doc = r.stdout[:-1].rsplit(b"\n", 1)
    assert len(body) == 10_000_000 + 101010  # fold: a newline every 99 bytes, none at the end
    doc = json.loads(doc)
    assert doc["stdout"] == {"lines": 101011, "bytes": 10_101_010}


# ---- item 7: every terminating signal stops the job ----

@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGALRM,
                                 signal.SIGRTMIN + 1])
def test_run_signal_stops_the_job_first(drover, sig):
    p, child = start(drover, "echo $$; exec sleep 30")
    try:
        p.send_signal(sig)
        code, _, _ = finish(p)
        assert code == 128 + sig
        assert dead(child), "the job outlived drover"
    finally:
        p.kill()
        kill_left(child)


# ---- item 8: max_rss_kb is the job's own ----

def test_run_max_rss_is_the_jobs(drover):
    r = run(drover, "--json", "--",
            "python3", "-c", "x=bytearray(200<<20); x[::4096]=b'x'*len(x[::4096])")
    doc = json.loads(r.stdout.splitlines()[-1])
    assert doc["max_rss_kb"] >= 200 * 1024
    # /bin/true uses ~1 MB; drover's own pages (tens of MB under ASan) must not show.
    r = run(drover, "--json", "--exec", "--", "true")
    doc = json.loads(r.stdout.splitlines()[-1])
    assert doc["max_rss_kb"] is None or doc["max_rss_kb"] < 4096, doc


# ---- item 10: --json's "exit" is drover's exit code ----

def test_run_json_exit_matches_after_one_ctrl_c(drover):
    p, child = start(drover, "echo $$; exec sleep 30", "--json")
    try:
        p.send_signal(signal.SIGINT)
        code, out, _ = finish(p)
        doc = json.loads(out.splitlines()[-1])
        assert code == 130 and doc["exit"] == 130
        assert doc["status"] == "cancelled"
    finally:
        p.kill()
        kill_left(child)


def test_run_json_exit_matches_after_two_ctrl_c(drover, tmp_path):
    marker = tmp_path / "term"
    p, child = start(drover, f"trap 'echo > {marker}' TERM; echo $$;"
                             " while :; do sleep 0.1; done", "--json", "--kill-grace", "60s")
    try:
        p.send_signal(signal.SIGINT)
        wait_for(marker.exists, what="the job's TERM trap")
        p.send_signal(signal.SIGINT)
        code, out, _ = finish(p)
        doc = json.loads(out.splitlines()[-1])
        assert code == 130 and doc["exit"] == 130
        assert doc["signal"] == signal.SIGKILL
    finally:
        p.kill()
        kill_left(child)


# ---- item 12: stdin ----

def test_run_job_reads_drovers_stdin(drover):
    r = run(drover, "--", "cat", input=b"hi\n")
    assert r.returncode == 0
    assert r.stdout == b"hi\n"


# ---- item 13: a tiny timeout is a timeout ----

def test_run_tiny_timeout_is_not_unlimited(drover):
    r = run(drover, "--timeout", "0.0000001s", "--", "sleep 10", timeout=60)
    assert r.returncode == 124


# ---- item 14: the job dies with drover ----

def test_run_job_dies_when_drover_is_killed(drover):
    p, child = start(drover, "echo $$; exec sleep 300")
    try:
        p.kill()
        p.wait()
        wait_for(lambda: dead(child), timeout=10, what="the job to die with drover")
    finally:
        p.stdout.close()
        p.stderr.close()
        kill_left(child)


# ---- item 16: the "$ cmd" header is capped ----

def test_run_long_command_header_is_capped(drover):
    cmd = ": " + "x" * 100_000
    r = run(drover, "--log-level", "debug", "--", cmd)
    assert r.returncode == 0
    err = r.stderr.decode()
    header = "$ " + cmd[:4096] + "\n... (95,906 more bytes not shown)\n"
    assert header in err
    assert len(err) < 8192


# ---- item 17: a reader that does not read never blocks drover ----

def _pipe_full(r):
    buf = bytearray(4)
    fcntl.ioctl(r, termios.FIONREAD, buf)
    return int.from_bytes(buf, "little") >= fcntl.fcntl(r, F_GETPIPE_SZ)


def test_run_timeout_with_stalled_reader_exits_124(drover, tmp_path):
    p, child, r = start_stalled(drover, tmp_path, "exec yes", "--timeout", "2s")
    try:
        # The timeout fires although drover's stdout is full: the job is gone ...
        wait_for(lambda: dead(child), timeout=30, what="the timed-out job to be killed")
        assert p.poll() is None  # ... while drover still holds its output for the reader
        os.close(r)  # the reader leaves: the rest is dropped
        r = None
        code, _, _ = finish(p)
        assert code == 124
    finally:
        if r is not None:
            os.close(r)
        p.kill()
        kill_left(child)


def test_run_sigterm_with_stalled_reader_acts_at_once(drover, tmp_path):
    p, child, r = start_stalled(drover, tmp_path, "exec yes")
    try:
        wait_for(lambda: _pipe_full(r), what="drover's stdout to fill up")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        code, _, _ = finish(p)
        assert code == 128 + signal.SIGTERM
        assert time.monotonic() - t0 < 5  # a safety net, not a measurement
        assert dead(child)
    finally:
        os.close(r)
        p.kill()
        kill_left(child)


def test_run_stalled_reader_keeps_all_output(drover, tmp_path):
    # The job writes more than the queue holds while nobody reads; then the
    # reader reads it all: nothing lost, nothing added.
    r, w = os.pipe()
    p = subprocess.Popen([drover, "run", "--", "head -c 8000000 /dev/zero | tr '\\0' y"],
                         stdout=w, stderr=subprocess.PIPE, env=clean_env())
    os.close(w)
    with os.fdopen(r, "rb") as f:
        wait_for(lambda: _pipe_full(f.fileno()), what="drover's stdout to fill up")
        data = f.read()
    code, _, _ = finish(p)
    assert code == 0
    assert data == b"y" * 8_000_000


# ---- item 18: escaped orphans are reaped ----

def test_agent_reaps_escaped_orphans(drover, tmp_path):
    d = tmp_path / "jobs"
    errlog = tmp_path / "agent.stderr"
    with open(errlog, "w") as ef:
        agent = subprocess.Popen([drover, "agent", "--jobs-dir", str(d)], stdout=subprocess.DEVNULL,
                                 stderr=ef, env=clean_env())
    pids = []
    try:
        # Three keep the job's stdout open (they end before the job does),
        # three close it (they outlive the job). The job waits until each
        # has left its process group: the group is killed when the job ends.
        script = ("ps=; for i in 1 2 3; do setsid sleep 0.3 & ps=\"$ps $!\"; done;"
                  " for i in 1 2 3; do setsid sleep 0.6 >/dev/null 2>&1 & ps=\"$ps $!\"; done;"
                  " for p in $ps; do echo $p;"
                  " while [ \"$(cut -d' ' -f5 /proc/$p/stat 2>/dev/null)\" = $$ ]; do sleep 0.01;"
                  " done; done")
        wait_for(lambda: (d / "results").is_dir(), what="agent start")
        (d / ".esc.tmp").write_text(json.dumps({"id": "esc", "command": script}))
        os.rename(d / ".esc.tmp", d / "esc.json")
        wait_for((d / "results" / "esc.json").exists, what="the job's result")
        log = (d / "logs" / "esc.log").read_text().splitlines()
        pids = [int(line.split(" ", 2)[2]) for line in log if " out " in line]
        assert len(pids) == 6
        wait_for(lambda: all(dead(pid) for pid in pids), what="the orphans to exit")
        wait_for(lambda: not [c for c in children(agent.pid) if c[1] == "Z"], timeout=10,
                 what=f"no zombie children of the agent (have {children(agent.pid)})")
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            code = agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            code = agent.wait()
        kill_left(*pids)
    check_clean(errlog.read_text())
    assert code == 0
