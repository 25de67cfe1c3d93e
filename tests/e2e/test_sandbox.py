"""The sandbox (issue 8) through `drover run`: every job in its own cgroup, so
that nothing it started outlives it; limits and accounting from the cgroup;
opt-in isolation. Real processes; every wait is on a file or an exit.

Which cgroup code path runs: this machine has v1 controllers and an empty
cgroup2 hierarchy (hybrid). "auto" there tracks and kills with the v2 group
(cgroup.kill) and limits with v1; "v1" uses the v1 groups only (kill by
freeze, SIGKILL every pid, thaw); "v2" the unified hierarchy only (no limits
here: its controllers are bound to v1). The tests that kill run all three and
check from drover's log which one ran."""
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from jobsdir_harness import gone, wait_for


def run(drover, *args, timeout=60, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    return subprocess.run([drover, "run", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def doc(r):
    """The --json result document (the last line of stdout)."""
    return json.loads(r.stdout.splitlines()[-1])


def clean(r):
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr


def have_cgroups():
    return os.path.isdir("/sys/fs/cgroup/memory") or os.path.exists(
        "/sys/fs/cgroup/cgroup.controllers")


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not have_cgroups(),
                                reason="the sandbox tests need root and cgroups")

# Three escapes from a process group, each writing its pid to a file:
# a setsid double-fork, a daemon (double fork, setsid, fds closed, cwd /),
# a grandchild that ignores SIGTERM. The job waits until all three exist.
ESCAPES = r"""
( setsid sh -c 'echo $$ > "$D/p1"; exec sleep 1000' & ) </dev/null >/dev/null 2>&1
python3 -c '
import os, sys
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): sys.exit(0)
os.chdir("/")
open(os.environ["D"] + "/p2.tmp", "w").write(str(os.getpid()))
os.rename(os.environ["D"] + "/p2.tmp", os.environ["D"] + "/p2")
for fd in (0, 1, 2): os.close(fd)
os.execvp("sleep", ["sleep", "1000"])
' </dev/null >/dev/null 2>&1
sh -c 'trap "" TERM; echo $$ > "$D/p3"; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
while [ ! -s "$D/p1" ] || [ ! -s "$D/p2" ] || [ ! -s "$D/p3" ]; do sleep 0.01; done
echo ready > "$D/ready"
"""

MODES = {"auto": 'mode="v2+v1 (hybrid)"', "v1": "mode=v1\n", "v2": "mode=v2\n"}


def pids_of(d):
    return [int((d / f"p{i}").read_text()) for i in (1, 2, 3)]


@pytest.mark.parametrize("mode", ["auto", "v1", "v2"])
@pytest.mark.parametrize("end", ["exit", "timeout", "cancel"])
def test_sandbox_nothing_outlives_its_job(drover, tmp_path, mode, end):
    script = ESCAPES + {"exit": "exit 0", "timeout": "sleep 1000", "cancel": "sleep 1000"}[end]
    args = [drover, "run", "--log-level", "debug", "--cgroups", mode, "--kill-grace", "200ms",
            "--env", f"D={tmp_path}"]
    if end == "timeout":
        args += ["--timeout", "2s"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    p = subprocess.Popen([*args, "--", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        wait_for((tmp_path / "ready").exists, 30, "the escapes to start")
        pids = pids_of(tmp_path)
        if end == "cancel":
            p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == {"exit": 0, "timeout": 124, "cancel": 128 + signal.SIGTERM}[end], err
    assert "job cgroups ready " + MODES[mode] in err
    # drover exits once the job's cgroup is empty: no wait here.
    assert [pid for pid in pids if not gone(pid)] == []
    assert "Sanitizer" not in err and "runtime error" not in err


def test_sandbox_cgroups_off_is_said_once_and_refuses_limits(drover, tmp_path):
    # At info level for drover run (every run of a user without cgroups
    # would say it at warn), at warn for agents.
    r = run(drover, "--log-level", "info", "--cgroups", "off", "--", "true")
    assert r.returncode == 0
    assert r.stderr.count("jobs run without cgroups") == 1
    assert "jobs run without cgroups" not in run(drover, "--cgroups", "off", "--", "true").stderr
    r = run(drover, "--cgroups", "off", "--memory", "64M", "--", "echo ran")
    assert r.returncode == 125
    assert "ran" not in r.stdout
    assert "\"resources.memory\" cannot be enforced here" in r.stderr


def test_sandbox_no_cgroup_is_left_behind(drover):
    before = set(os.listdir("/sys/fs/cgroup/pids")) if os.path.isdir(
        "/sys/fs/cgroup/pids") else set()
    r = run(drover, "--json", "--", "sleep 0.1 & true")
    assert r.returncode == 0
    after = set(os.listdir("/sys/fs/cgroup/pids")) if before else set()
    assert {n for n in after - before if n.startswith("drover-run-")} == set()


# ---- limits and accounting ----

def test_sandbox_memory_limit_oom_kills_with_137(drover):
    alloc = "x=bytearray(300<<20); x[::4096]=b'x'*len(x[::4096])"
    r = run(drover, "--json", "--memory", "64M", "--exec", "--", "python3", "-c", alloc)
    d = doc(r)
    assert r.returncode == 137
    assert d["status"] == "failed" and d["exit"] == 137 and d["oom_killed"] is True
    assert "memory limit (64M)" in d["error"]
    assert d["memory_peak_kb"] <= 64 * 1024
    # Through a shell (the OOM victim is its child): the same.
    r = run(drover, "--json", "--memory", "64M", "--", f'python3 -c "{alloc}"')
    assert r.returncode == 137 and doc(r)["oom_killed"] is True
    # Under the limit: no OOM, and the peak is the job's own.
    r = run(drover, "--json", "--memory", "256M", "--exec", "--", "python3", "-c",
            "x=bytearray(100<<20); x[::4096]=b'x'*len(x[::4096])")
    d = doc(r)
    assert r.returncode == 0 and d["oom_killed"] is False
    assert 100 * 1024 <= d["memory_peak_kb"] <= 256 * 1024
    assert d["max_rss_kb"] == d["memory_peak_kb"]


def test_sandbox_fork_bomb_is_contained_until_timeout(drover):
    r = run(drover, "--json", "--pids", "50", "--timeout", "2s", "--kill-grace", "100ms", "--",
            "b(){ b|b& }; b 2>/dev/null; sleep 1000")
    d = doc(r)
    assert r.returncode == 124 and d["status"] == "timed_out"
    assert 1 < d["pids_peak"] <= 50
    # The machine still forks.
    assert run(drover, "--", "true").returncode == 0


def test_sandbox_cpus_half_holds_a_busy_loop_to_half(drover):
    r = run(drover, "--json", "--cpus", "0.5", "--timeout", "3s", "--kill-grace", "0",
            "--exec", "--", "python3", "-c", "while True: pass")
    d = doc(r)
    assert d["status"] == "timed_out"
    ratio = d["cpu_usage_ms"] / d["duration_ms"]
    # At most half a CPU (one 100 ms period of slack); at least some (the
    # machine is shared, so no tighter lower bound).
    assert 0.1 < ratio <= 0.55, d


def test_sandbox_accounting_fields(drover):
    r = run(drover, "--json", "--", "sleep 0.05 & sleep 0.05 & wait; true")
    d = doc(r)
    assert d["cpu_usage_ms"] is not None    # v2's cpu.stat (or v1's cpuacct)
    assert d["oom_killed"] is False
    # The memory and pids figures come with their controllers, which a job
    # joins for a limit on a hybrid machine (on v2 they are always there).
    r = run(drover, "--json", "--memory", "256M", "--pids", "100", "--",
            "sleep 0.05 & sleep 0.05 & wait; true")
    d = doc(r)
    assert d["pids_peak"] >= 3 and d["memory_peak_kb"] > 0
    assert d["max_rss_kb"] == d["memory_peak_kb"]


def test_sandbox_bad_values_are_usage_errors(drover):
    for args, text in [(["--cpus", "0"], "--cpus \"0\""), (["--memory", "10K"], "--memory"),
                       (["--mount", "rel:/x"], "both paths must be absolute"),
                       (["--read-only-workdir"], "needs --read-only")]:
        r = run(drover, *args, "--", "echo ran")
        assert r.returncode != 0 and "ran" not in r.stdout
        assert text in r.stderr, r.stderr


# ---- isolation ----

def test_sandbox_network_none_cannot_reach_host_loopback(drover):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')"
    try:
        r = run(drover, "--exec", "--", "python3", "-c", probe)
        assert r.returncode == 0 and "connected" in r.stdout   # the control
        r = run(drover, "--network", "none", "--exec", "--", "python3", "-c", probe)
        assert r.returncode != 0 and "connected" not in r.stdout
        assert "refused" in r.stderr.lower()
        # Only lo, and up (/sys is the host's sysfs: ask the kernel instead).
        r = run(drover, "--network", "none", "--", "awk -F: 'NR > 2 {print $1}' /proc/net/dev; "
                "ip -o link show lo")
        lines = r.stdout.splitlines()
        assert lines[0].strip() == "lo" and len(lines) == 2 and ",UP," in lines[1], r.stdout
    finally:
        srv.close()


def test_sandbox_read_only_root_private_tmp_writable_workdir(drover, tmp_path):
    name = f"drover-sbx-{uuid.uuid4().hex}"
    r = run(drover, "--read-only", "--workdir", str(tmp_path), "--",
            f"touch /usr/{name} 2>/dev/null && echo usr-writable; "
            f"echo hi > /tmp/{name} && cat /tmp/{name}; echo w > here && echo wd-ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hi", "wd-ok"]
    assert not os.path.exists(f"/usr/{name}")
    assert not os.path.exists(f"/tmp/{name}")        # the job's /tmp is its own
    assert (tmp_path / "here").read_text() == "w\n"  # its workdir is the real one
    r = run(drover, "--read-only", "--read-only-workdir", "--workdir", str(tmp_path), "--",
            "echo w > here2")
    assert r.returncode != 0 and not (tmp_path / "here2").exists()
    # A root job cannot undo it: no CAP_SYS_ADMIN (nor CAP_NET_ADMIN, which
    # with it could rewire its network), Docker's default set only.
    r = run(drover, "--read-only", "--workdir", str(tmp_path), "--",
            f"mount -o remount,rw / 2>/dev/null; touch /usr/{name} 2>/dev/null && echo writable; "
            "grep CapEff /proc/self/status")
    assert "writable" not in r.stdout and not os.path.exists(f"/usr/{name}")
    cap_eff = int(r.stdout.split()[-1], 16)
    assert cap_eff == 0xa80425fb and not cap_eff & (1 << 21) and not cap_eff & (1 << 12)


def test_sandbox_mount_binds_read_only_and_writable(drover, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data\n")
    target = tmp_path / "target"
    target.mkdir()
    r = run(drover, "--mount", f"{src}:{target}:ro", "--",
            f"cat {target}/f; touch {target}/g 2>/dev/null && echo writable")
    assert r.stdout == "data\n" and not (src / "g").exists()
    r = run(drover, "--mount", f"{src}:{target}", "--", f"touch {target}/g && echo writable")
    assert r.stdout == "writable\n" and (src / "g").exists()


def test_sandbox_user_nobody_runs_as_65534(drover, tmp_path):
    r = run(drover, "--user", "nobody", "--workdir", "/", "--", "id -u; id -g; cat /proc/self/status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "65534"
    status = dict(l.split(":", 1) for l in lines[2:] if ":" in l)
    assert status["NoNewPrivs"].strip() == "1"
    assert int(status["CapEff"].strip(), 16) == 0 and int(status["CapBnd"].strip(), 16) == 0
    r = run(drover, "--user", "no-such-user-here", "--", "echo ran")
    assert r.returncode == 125 and "ran" not in r.stdout
    assert "user 'no-such-user-here' does not exist" in r.stderr


def test_sandbox_pid_namespace_sees_a_handful(drover):
    r = run(drover, "--pid-namespace", "--", "echo $$; ls /proc | grep -c '^[0-9]'")
    assert r.returncode == 0, r.stderr
    pid, count = r.stdout.split()
    assert pid == "2"            # 1 is drover's init
    assert int(count) <= 5
    # Exit codes pass through the init; a timeout still ends it.
    assert run(drover, "--pid-namespace", "--", "exit 7").returncode == 7
    r = run(drover, "--pid-namespace", "--timeout", "500ms", "--", "trap 'exit 9' TERM; sleep 100 & wait")
    assert r.returncode == 124


def test_sandbox_hostname_and_isolate(drover, tmp_path):
    r = run(drover, "--hostname", "box-1", "--", "hostname")
    assert r.stdout == "box-1\n"
    assert socket.gethostname() != "box-1"
    r = run(drover, "--isolate", "--workdir", str(tmp_path), "--",
            "awk -F: 'NR > 2 {print $1}' /proc/net/dev; echo $$; touch /usr/x 2>/dev/null || echo ro; echo t > /tmp/t && echo tmp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["lo", "2", "ro", "tmp"]


# ---- a runner that is not root ----

def test_sandbox_not_root_isolates_in_a_user_namespace(drover):
    """drover run as nobody: no writable cgroup (limits are errors), no
    --user, but the namespaces through a user namespace in which the job is
    uid 0 (mapped to nobody outside)."""
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}

    def run_as_nobody(*args):
        return subprocess.run([*nobody, drover, "run", *args], capture_output=True, text=True,
                              timeout=60, env=env, cwd="/")

    r = run_as_nobody("--isolate", "--workdir", "/var/tmp", "--",
                      "id -u; echo $$; awk -F: 'NR > 2 {print $1}' /proc/net/dev; "
                      "touch /usr/x 2>/dev/null || echo ro; echo t > /tmp/t && echo tmp")
    clean(r)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "2", "lo", "ro", "tmp"]
    r = run_as_nobody("--user", "nobody", "--", "echo ran")
    assert r.returncode == 125 and "needs drover to run as root" in r.stderr
    r = run_as_nobody("--memory", "64M", "--", "echo ran")
    assert r.returncode == 125 and "\"resources.memory\" cannot be enforced here" in r.stderr
    assert "ran" not in r.stdout


def test_sandbox_cgroup_parent_places_the_jobs_group(drover):
    parent = f"/drover-test-{uuid.uuid4().hex[:12]}"
    try:
        r = run(drover, "--cgroup-parent", parent, "--", "cat /proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        paths = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in r.stdout.splitlines()}
        assert paths[""].startswith(parent + "/job-1-")   # the v2 group, by clone3
    finally:
        # The parent is the user's: drover leaves it; the test removes it.
        for h in os.listdir("/sys/fs/cgroup"):
            d = f"/sys/fs/cgroup/{h}{parent}"
            if os.path.isdir(d):
                os.rmdir(d)
