"""What the jobs-directory tests share: an agent process, its fixtures, and
waits on what a user can see (files, states, lines in the agent's log)."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (out|err|sys) ")


class Agent:
    """`drover agent --jobs-dir d ARGS`, optionally behind a wrapper command
    (strace, prlimit, setpriv), with its stderr in a file next to d."""

    def __init__(self, drover, d, *args, prefix=(), name=None, logdir=None):
        self.dir = d
        self.errpath = (logdir or d.parent) / f"agent-{name or d.name}.stderr"
        self.errlog = open(self.errpath, "a")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
        self.traced = bool(prefix) and os.path.basename(prefix[0]) == "strace"
        if self.traced:  # LeakSanitizer cannot work under ptrace; ASan and UBSan still do
            env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
        self.proc = subprocess.Popen([*prefix, drover, "agent", "--jobs-dir", str(d), *args],
                                     stdout=subprocess.DEVNULL, stderr=self.errlog, env=env)

    def kill(self, sig):
        """Sends sig to the agent itself (under strace: strace's child; the
        other wrappers exec it)."""
        pid = self.proc.pid
        if self.traced:
            wait_for(lambda: self.stderr(), what="traced agent up")
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pid = int(f.read().split()[0])
        os.kill(pid, sig)

    def stop(self, timeout=30, sig=signal.SIGTERM):
        self.kill(sig)
        return self.proc.wait(timeout=timeout)

    def close(self):
        """Stops the agent the graceful way; returns what it printed."""
        # A second signal cancels running jobs at once, a third kills them:
        # a failed test leaves no job behind. SIGKILL only as the last resort.
        for wait in (30, 20, 10):
            if self.proc.poll() is not None:
                break
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)
            self.proc.wait()
        if not self.errlog.closed:
            self.errlog.close()
        return self.stderr()

    def stderr(self):
        if not self.errlog.closed:
            self.errlog.flush()
        return self.errpath.read_text()

    def wait_log(self, text, timeout=30):
        """Waits until the agent's own log holds text."""
        wait_for(lambda: text in self.stderr(), timeout, f"agent log line {text!r}")


def check_clean(err):
    # Sanitizer reports (leaks, undefined behaviour) fail the test.
    assert "Sanitizer" not in err and "runtime error" not in err, err


@pytest.fixture
def jobs(tmp_path):
    d = tmp_path / "jobs"
    d.mkdir()
    return d


@pytest.fixture
def agent(drover, jobs, tmp_path):
    """Starts agents; each is stopped with SIGTERM at the end and must exit 0
    with a clean log (unless the test waited for it already and said what
    its exit must be through `expect`)."""
    started = []

    def start(*args, d=None, prefix=(), expect=0, name=None):
        a = Agent(drover, d or jobs, *args, prefix=prefix, name=name, logdir=tmp_path)
        a.expect = expect
        started.append(a)
        return a

    yield start
    for a in started:
        err = a.close()
        check_clean(err)
        assert a.proc.returncode == a.expect, err


def drop(d, name, doc):
    """Writes a job file the way a careful writer does: temporary name, rename."""
    tmp = d / f".{name[:200]}.tmp"
    data = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    os.rename(tmp, d / name)


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def result(d, job_id, timeout=30):
    path = d / "results" / f"{job_id}.json"
    wait_for(path.exists, timeout, f"result of {job_id}")
    return json.loads(path.read_text())


def status(d, job_id):
    try:
        return json.loads((d / "status" / f"{job_id}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wait_state(d, job_id, state, timeout=30):
    return wait_for(lambda: (s := status(d, job_id)) and s["state"] == state and s, timeout,
                    f"{job_id} {state}")


def error_text(d, name, timeout=30):
    """The text of failed/<name>.error.txt, once it is there."""
    path = d / "failed" / f"{name}.error.txt"
    return wait_for(lambda: path.exists() and path.read_text(), timeout, f"{path.name}")


def gone(pid):
    """Whether process pid is dead: gone, or a zombie not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def log_of(d, job_id):
    return (d / "logs" / f"{job_id}.log").read_text()
