"""The sandbox in the jobs-directory agent (issue 8): job documents with
"resources" and "isolation", the agent's defaults, maxima and required
isolation, and a SIGKILLed agent whose next life leaves nothing running."""
import os
import pathlib
import signal

import pytest

from jobsdir_harness import agent, check_clean, drop, gone, jobs, result, wait_for  # noqa: F401

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (os.path.isdir("/sys/fs/cgroup/memory")
                              or os.path.exists("/sys/fs/cgroup/cgroup.controllers")),
    reason="the sandbox tests need root and cgroups")


def test_sandbox_agent_job_document_limits_and_isolation(agent, jobs, tmp_path):
    agent()
    drop(jobs, "oom.json", {"id": "oom", "argv": ["python3", "-c",
                                                 "x=bytearray(300<<20); x[::4096]=b'x'*len(x[::4096])"],
                            "resources": {"memory": "64M", "pids": 20}})
    r = result(jobs, "oom")
    assert r["status"] == "failed" and r["exit"] == 137 and r["oom_killed"] is True
    assert "memory limit (64M)" in r["error"]
    drop(jobs, "iso.json", {"id": "iso", "command": "awk -F: 'NR > 2 {print $1}' /proc/net/dev; "
                            "echo $$; id -u", "workdir": "/",
                            "isolation": {"network": "none", "pid_namespace": True,
                                          "user": "nobody"}})
    r = result(jobs, "iso")
    assert r["status"] == "succeeded", r
    log = (jobs / "logs" / "iso.log").read_text()
    assert [line.split(" ", 2)[2].strip() for line in log.splitlines() if " out " in line] == \
        ["lo", "2", "65534"]


def test_sandbox_agent_maxima_defaults_and_required_isolation(agent, jobs, tmp_path):
    agent("--max-memory", "128M", "--default-memory", "64M", "--default-pids", "30",
          "--require-isolation", "network")
    drop(jobs, "big.json", {"id": "big", "command": "echo ran", "resources": {"memory": "256M"}})
    r = result(jobs, "big")
    assert r["status"] == "failed" and r["exit"] == 125
    assert r["error"] == "\"resources.memory\" 256M is more than this runner's maximum 128M"
    assert " out " not in (jobs / "logs" / "big.log").read_text()
    # A job without limits gets the defaults, and the network it must not have.
    drop(jobs, "dflt.json", {"id": "dflt", "command":
                             "cat /sys/fs/cgroup/pids$(grep :pids: /proc/self/cgroup | cut -d: -f3)"
                             "/pids.max; awk -F: 'NR > 2 {print $1}' /proc/net/dev"})
    r = result(jobs, "dflt")
    assert r["status"] == "succeeded", r
    out = [line.split(" ", 2)[2].strip() for line in (jobs / "logs" / "dflt.log").read_text().splitlines()
           if " out " in line]
    assert out == ["30", "lo"]
    drop(jobs, "oom.json", {"id": "oom", "argv": ["python3", "-c",
                                                 "x=bytearray(100<<20); x[::4096]=b'x'*len(x[::4096])"]})
    r = result(jobs, "oom")
    assert r["oom_killed"] is True and "memory limit (64M)" in r["error"]


def watchdog_of(pid):
    """The pid of the agent's watchdog (sbx_watchdog): its child named drover-watchdog."""
    kids = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    [w] = [int(k) for k in kids
           if pathlib.Path(f"/proc/{k}/comm").read_text().strip() == "drover-watchdog"]
    return w


@pytest.mark.parametrize("watchdog", ["alive", "killed too"])
def test_sandbox_agent_killed_leaves_nothing_running(agent, jobs, tmp_path, watchdog):
    # A job whose processes escape its process group (setsid) or ignore TERM.
    # The agent is killed with SIGKILL: its watchdog kills what is left in the
    # job's cgroup at once. When the watchdog is killed with it (a kill of
    # the whole process group), the next life of the agent sweeps the group
    # before it runs anything.
    a = agent(name="first")
    script = (f"( setsid sh -c 'echo $$ > {tmp_path}/p1; exec sleep 1000' & ) "
              "</dev/null >/dev/null 2>&1; "
              f"sh -c 'trap \"\" TERM; echo $$ > {tmp_path}/p2; exec sleep 1000' "
              "</dev/null >/dev/null 2>&1 & "
              f"echo $$ > {tmp_path}/p0; sleep 1000")
    drop(jobs, "esc.json", {"id": "esc", "command": script, "timeout": "1h"})
    wait_for(lambda: all((tmp_path / f"p{i}").exists() and (tmp_path / f"p{i}").read_text()
                         for i in range(3)), 30, "the job's processes")
    pids = [int((tmp_path / f"p{i}").read_text()) for i in range(3)]
    w = watchdog_of(a.proc.pid)
    if watchdog == "killed too":
        os.kill(w, signal.SIGKILL)
    a.kill(signal.SIGKILL)
    a.proc.wait(timeout=30)
    a.expect = -signal.SIGKILL
    if watchdog == "alive":
        wait_for(lambda: all(gone(p) for p in pids), 10, "the job's processes killed")
        wait_for(lambda: gone(w), 10, "the watchdog done")
    else:
        assert not gone(pids[1])  # the setsid one outlives its agent and watchdog ...
    b = agent(name="second")
    if watchdog == "killed too":  # ... until the next life sweeps the job's cgroup
        b.wait_log("removed job cgroups left by a previous run")
    assert [p for p in pids if not gone(p)] == []
    b.wait_log("job started job=esc")  # the job is run again (its attempt 2) ...
    drop(jobs / "cancel", "esc", "")   # ... and cancelled, so the agent can stop
    assert result(jobs, "esc")["status"] == "cancelled"


# ---- the networked agent: the same executor ----

def test_sandbox_networked_agent_runs_limits_from_the_job_spec(cluster):
    from agentlib import agent as net_agent, logs, submit, wait_state
    srv = cluster.server(node_timeout="30s")
    net_agent(cluster, srv, "a1", "--max-pids", "100", slots=1)
    jid = submit(srv, "--memory", "64M", "--exec", "--", "python3", "-c",
                 "x=bytearray(300<<20); x[::4096]=b'x'*len(x[::4096])")
    st = wait_state(srv, jid, "failed")
    assert st["result"]["oom_killed"] is True and st["result"]["exit_code"] in (None, 137), st
    assert "memory limit (64M)" in st["result"]["error"]
    # Over the agent's maximum: refused by the agent that claims it.
    jid = submit(srv, "--pids", "500", "--", "echo ran")
    st = wait_state(srv, jid, "failed")
    assert "\"resources.pids\" 500 is more than this runner's maximum 100" in st["result"]["error"]
    out, _ = logs(srv, jid)
    assert b"ran" not in out


def test_sandbox_networked_agent_reports_what_the_sandbox_gives(cluster):
    from agentlib import agent as net_agent, nodes
    srv = cluster.server(node_timeout="30s")
    net_agent(cluster, srv, "with")
    net_agent(cluster, srv, "without", "--cgroups", "off")
    caps = {n: set(v["capabilities"]) for n, v in nodes(srv).items()}
    assert "sandbox.isolation" in caps["with"]
    assert {"cgroup.v1", "cgroup.v2"} & caps["with"]   # this machine has both (hybrid)
    assert not {"cgroup.v1", "cgroup.v2"} & caps["without"]


def test_sandbox_agent_options_it_cannot_honour_are_errors(drover, jobs):
    import subprocess
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    cases = [(["--require-isolation", "network,netwrk"], "unknown 'netwrk'"),
             (["--max-cpus", "lots"], "--max-cpus \"lots\"")]
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # no v2 memory controller
        cases.append((["--reserve-memory", "64M"], "--reserve-memory needs the cgroup v2 "
                      "memory controller"))
    for args, text in cases:
        r = subprocess.run([drover, "agent", "--jobs-dir", str(jobs), *args], capture_output=True,
                           text=True, timeout=30, env=env)
        assert r.returncode == 2 and text in r.stderr, r.stderr
        check_clean(r.stderr)


def test_sandbox_networked_agent_killed_leaves_nothing_running(cluster, tmp_path):
    from agentlib import agent as net_agent, restart_agent, submit
    from cluster import wait_for as cwait
    srv = cluster.server(node_timeout="30s")
    a = net_agent(cluster, srv, "a1")
    jid = submit(srv, "--", f"( setsid sh -c 'echo $$ > {tmp_path}/p1; exec sleep 1000' & ) "
                 f"</dev/null >/dev/null 2>&1; echo $$ > {tmp_path}/p0; sleep 1000")
    pids = [int(cwait(lambda: (tmp_path / f"p{i}").exists() and (tmp_path / f"p{i}").read_text()
                      .strip(), what=f"p{i}")) for i in (0, 1)]
    a.kill9()
    # The agent's watchdog kills the setsid one too, without waiting for a restart.
    cwait(lambda: all(gone(p) for p in pids), what="the job's processes killed")
    b = restart_agent(cluster, srv, a)
    b.wait_log("connected to the coordinator")  # its next life starts as usual
    assert jid
