"""The networked agent under faults: the coordinator killed and restarted, the
link cut through a proxy the test controls (shorter and longer than the node
timeout), the agent killed with SIGKILL or stopped with SIGSTOP mid-job, a
spool that fills. Nothing acknowledged is lost, nothing is stored twice, and a
job never completes twice."""
import os
import subprocess
import signal
import time

import pytest

from agentlib import (agent, cli, events, logs, nodes, numbered, restart_agent, status, submit,
                      terminal_events, wait_node, wait_state)
from cluster import wait_for


def gated(tmp_path, first, total, gate_name="gate", extra=""):
    """A job that prints numbered lines 1..first, waits for a gate file, then
    prints the rest up to total; it notes its pid per attempt."""
    gate = tmp_path / gate_name
    return gate, (f"echo $$ > {tmp_path}/pid.$DROVER_ATTEMPT; "
                  f"i=1; while [ $i -le {first} ]; do echo line $i; i=$((i+1)); done; "
                  f"while [ ! -e {gate} ]; do sleep 0.02; done; "
                  f"while [ $i -le {total} ]; do echo line $i; i=$((i+1)); done; {extra}")


def stored_lines(srv, jid):
    return logs(srv, jid)[0].count(b"\n")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_agent_survives_a_coordinator_kill9_and_restart(cluster, tmp_path):
    sock = f"unix:{tmp_path}/coord.sock"
    srv = cluster.server(node_timeout="10s", listen=sock)
    a = agent(cluster, srv, "a1")
    gate, cmd = gated(tmp_path, 200, 400)
    jid = submit(srv, "--", cmd)
    wait_for(lambda: stored_lines(srv, jid) == 200, what="the first 200 lines stored")
    srv.kill9()
    a.wait_log("disconnected from the coordinator")
    # The job goes on while the coordinator is away; it finishes meanwhile.
    gate.touch()
    a.wait_log(r"job finished job=%s attempt=1 status=succeeded" % jid)
    srv2 = cluster.server(node_timeout="10s", listen=sock, data=srv.data)
    done = wait_state(srv2, jid, "succeeded")
    assert done["attempt"] == 1
    assert logs(srv2, jid)[0] == numbered("line ", 1, 400)
    assert len(terminal_events(events(srv2, jid))) == 1
    assert a.alive()


def test_agent_link_cut_shorter_than_the_node_timeout(cluster, tmp_path):
    srv = cluster.server(node_timeout="10s")
    px = cluster.proxy(srv.addr)
    a = agent(cluster, srv, "a1", addr=px.addr)
    gate, cmd = gated(tmp_path, 300, 3000)
    jid = submit(srv, "--", cmd)
    wait_for(lambda: stored_lines(srv, jid) == 300, what="300 lines stored")
    px.cut()
    a.wait_log("disconnected from the coordinator")
    gate.touch()
    # Everything after the first 300 lines is written while the link is down.
    a.wait_log(r"job finished job=%s attempt=1 status=succeeded" % jid)
    assert status(srv, jid)["state"] == "running"
    px.restore()
    done = wait_state(srv, jid, "succeeded")
    assert done["attempt"] == 1 and done["result"]["stdout"]["lines"] == 3000
    assert logs(srv, jid)[0] == numbered("line ", 1, 3000)
    assert [e["to"] for e in events(srv, jid)] == ["queued", "assigned", "running", "succeeded"]
    assert len(a.stderr().split("connected to the coordinator")) == 3  # twice


def test_agent_link_cut_longer_than_the_node_timeout(cluster, tmp_path):
    srv = cluster.server(node_timeout="3s")
    px = cluster.proxy(srv.addr)
    a1 = agent(cluster, srv, "a1", addr=px.addr)
    gate, cmd = gated(tmp_path, 10, 20, extra=f"touch {tmp_path}/done.$DROVER_ATTEMPT")
    jid = submit(srv, "--max-attempts", "2", "--", cmd)
    wait_state(srv, jid, "running")
    pid1 = int(wait_for(lambda: (tmp_path / "pid.1").exists() and (tmp_path / "pid.1").read_text()))
    px.cut()
    agent(cluster, srv, "a2")
    # The coordinator loses a1 and requeues; a1 stops its own copy.
    a1.wait_log("cut off from the coordinator for longer than its node timeout")
    wait_for(lambda: not alive(pid1), what="attempt 1 to be killed by its agent")
    wait_for(lambda: (lambda j: j["state"] == "running" and j["attempt"] == 2)(status(srv, jid)),
             what="attempt 2 running on a2")
    assert nodes(srv)["a1"]["state"] == "lost"
    gate.touch()
    done = wait_state(srv, jid, "succeeded")
    assert done["attempt"] == 2 and not (tmp_path / "done.1").exists()
    px.restore()
    a1.wait_log(r"connected to the coordinator.*\n(.*\n)*.*connected to the coordinator")
    wait_node(srv, "a1", lambda n: n["state"] == "ready", what="a1 back")
    evs = events(srv, jid)
    assert len(terminal_events(evs)) == 1
    assert [e["attempt"] for e in evs if e["to"] == "running"] == [1, 2]
    assert logs(srv, jid)[0] == numbered("line ", 1, 20)


@pytest.mark.parametrize("attempts", [1, 2])
def test_agent_kill9_mid_job_then_restart_on_its_state_dir(cluster, tmp_path, attempts):
    srv = cluster.server(node_timeout="30s")
    # The process-group path, what an agent without cgroups does (with them,
    # the cgroup sweep kills first: test_sandbox_agent.py).
    a = agent(cluster, srv, "a1", "--cgroups", "off")
    gate = tmp_path / "gate"
    # The child outlives the shell when the agent dies (only the job's first
    # process gets the kernel's SIGKILL): the restarted agent kills it.
    cmd = (f"sleep 600 & echo $! > {tmp_path}/child.$DROVER_ATTEMPT; echo started; "
           f"while [ ! -e {gate} ]; do sleep 0.02; done")
    jid = submit(srv, "--max-attempts", str(attempts), "--", cmd)
    child = int(wait_for(lambda: (tmp_path / "child.1").exists() and
                         (tmp_path / "child.1").read_text().strip()))
    wait_for(lambda: logs(srv, jid)[0] == b"started\n", what="the job's first line stored")
    a.kill9()
    assert alive(child)
    b = restart_agent(cluster, srv, a, "--cgroups", "off")
    b.wait_log(r"killed what was left of the previous attempt job=%s attempt=1" % jid)
    assert not alive(child)
    if attempts == 1:
        done = wait_state(srv, jid, "lost")
        assert "agent restarted" in done["reason"]
    else:
        wait_for(lambda: (lambda j: j["state"] == "running" and j["attempt"] == 2)(
            status(srv, jid)), what="attempt 2 running")
        gate.touch()
        done = wait_state(srv, jid, "succeeded")
        assert done["attempt"] == 2
    evs = events(srv, jid)
    assert len(terminal_events(evs)) == 1
    assert any("agent restarted" in (e["reason"] or "") for e in evs)
    # No attempt is recorded any more (the record files are kept for reuse).
    assert all(not f.read_text().strip() for f in (b.state / "jobs").iterdir())


def test_agent_sigstop_is_found_and_its_late_report_ignored(cluster, tmp_path):
    srv = cluster.server(node_timeout="3s")
    a1 = agent(cluster, srv, "a1")
    gate = tmp_path / "gate"
    # Attempt 1 would fail with 7, attempt 2 succeeds: which one counted shows.
    cmd = (f"echo attempt $DROVER_ATTEMPT; while [ ! -e {gate} ]; do sleep 0.02; done; "
           f"[ $DROVER_ATTEMPT = 2 ] || exit 7")
    jid = submit(srv, "--max-attempts", "2", "--", cmd)
    wait_state(srv, jid, "running")
    a1.send_signal(signal.SIGSTOP)
    try:
        agent(cluster, srv, "a2")
        wait_node(srv, "a1", lambda n: n["state"] == "lost", what="a1 lost")
        wait_for(lambda: (lambda j: j["state"] == "running" and j["attempt"] == 2)(
            status(srv, jid)), what="attempt 2 running on a2")
        # Both copies end now: attempt 1 with exit 7 while its agent sleeps.
        gate.touch()
        done = wait_state(srv, jid, "succeeded")
    finally:
        a1.send_signal(signal.SIGCONT)
    assert done["attempt"] == 2 and done["result"]["exit_code"] == 0
    # Awake, a1 reports attempt 1: the coordinator tells it the copy is stale.
    a1.wait_log(r"stopping job attempt job=%s attempt=1" % jid)
    wait_node(srv, "a1", lambda n: n["state"] == "ready", what="a1 back")
    after = status(srv, jid)
    assert after["state"] == "succeeded" and after["result"]["exit_code"] == 0
    assert len(terminal_events(events(srv, jid))) == 1
    assert logs(srv, jid)[0] == b"attempt 2\n"


def test_agent_spool_that_fills_drops_and_counts_lines(cluster, tmp_path):
    srv = cluster.server(node_timeout="20s")
    px = cluster.proxy(srv.addr)
    a = agent(cluster, srv, "a1", "--spool-max", "1M", addr=px.addr)
    done_file = tmp_path / "finished"
    gate = tmp_path / "gate"
    # 250,000 lines of 100 bytes (25 MB): more than memory (8 MiB) and spool
    # (1 MiB) hold while the link is cut.
    cmd = (f"while [ ! -e {gate} ]; do sleep 0.02; done; "
           "awk 'BEGIN { pad = sprintf(\"%090d\", 0); "
           "for (i = 1; i <= 250000; i++) printf \"%08d %s\\n\", i, pad }'; "
           f"touch {done_file}")
    jid = submit(srv, "--", cmd)
    wait_state(srv, jid, "running")
    px.cut()
    a.wait_log("disconnected from the coordinator")
    gate.touch()
    # The job is not held back by its output: it ends while the link is down.
    wait_for(lambda: done_file.exists(), timeout=120, what="the job to finish while cut off")
    a.wait_log(r"job finished job=%s" % jid)
    assert "spool full: dropping output lines" in a.stderr()
    px.restore()
    done = wait_state(srv, jid, "succeeded", timeout=120)
    res = done["result"]
    assert res["stdout"]["lines"] == 250000
    dropped = res["lines_dropped"]
    assert 0 < dropped < 250000
    got = [int(line[:8]) for line in logs(srv, jid)[0].splitlines()]
    assert len(got) == 250000 - dropped
    assert all(x < y for x, y in zip(got, got[1:])), "stored lines out of order or doubled"
    assert got[0] == 1  # what came first was kept; what overflowed was dropped


def test_agent_result_on_disk_is_delivered_by_its_next_life(cluster, tmp_path):
    sock = f"unix:{tmp_path}/coord.sock"
    srv = cluster.server(node_timeout="30s", listen=sock)
    a = agent(cluster, srv, "a1")
    gate, cmd = gated(tmp_path, 100, 5000)
    jid = submit(srv, "--", cmd)
    wait_for(lambda: stored_lines(srv, jid) == 100, what="the first 100 lines stored")
    srv.kill9()
    a.wait_log("disconnected from the coordinator")
    gate.touch()
    a.wait_log(r"job finished job=%s attempt=1 status=succeeded" % jid)
    # Not acknowledged: the result goes to the state dir, with the batches
    # it counts; then the agent dies too.
    result = a.state / "results" / f"{jid}.1"
    wait_for(result.exists, what="the result written to the state dir")
    assert os.listdir(a.state / "spool")
    a.kill9()
    srv2 = cluster.server(node_timeout="30s", listen=sock, data=srv.data)
    b = restart_agent(cluster, srv2, a)
    b.wait_log(r"result of a previous life to deliver job=%s attempt=1" % jid)
    done = wait_state(srv2, jid, "succeeded")
    assert done["attempt"] == 1 and done["result"]["stdout"]["lines"] == 5000
    assert logs(srv2, jid)[0] == numbered("line ", 1, 5000)
    wait_for(lambda: not result.exists() and not os.listdir(b.state / "spool"),
             what="the delivered result and batches removed")
    assert len(terminal_events(events(srv2, jid))) == 1


def test_agent_link_flapping_loses_and_doubles_nothing(cluster, tmp_path):
    srv = cluster.server(node_timeout="20s")
    px = cluster.proxy(srv.addr)
    a = agent(cluster, srv, "a1", "--log-batch-lines", "100", addr=px.addr)
    gates = [tmp_path / f"gate{i}" for i in range(4)]
    parts = []
    for i, g in enumerate(gates):
        parts.append(f"while [ ! -e {g} ]; do sleep 0.02; done; "
                     f"seq -f 'line %.0f' {i * 20000 + 1} {(i + 1) * 20000}; "
                     f"touch {g}.printed")
    jid = submit(srv, "--", "; ".join(parts))
    wait_state(srv, jid, "running")
    for i, g in enumerate(gates):
        # Output made while the link is down, then up again: each time, what
        # was in flight is sent again and stored once.
        downs = a.stderr().count("disconnected from the coordinator")
        ups = a.stderr().count("connected to the coordinator coordinator=")
        px.cut()
        wait_for(lambda: a.stderr().count("disconnected from the coordinator") > downs,
                 what="the agent to see the cut")
        g.touch()
        printed = tmp_path / f"{g.name}.printed"
        wait_for(printed.exists, what=f"part {i} printed while the link is down")
        px.restore()
        wait_for(lambda: a.stderr().count("connected to the coordinator coordinator=") > ups,
                 what="the agent back")
    done = wait_state(srv, jid, "succeeded")
    assert done["attempt"] == 1
    assert logs(srv, jid)[0] == numbered("line ", 1, 80000)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs for the agent's state dir: a full disk on demand."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=True)


def test_agent_full_disk_drops_and_counts_lines_and_delivers_the_result(cluster, tmp_path,
                                                                         small_disk):
    srv = cluster.server(node_timeout="20s")
    px = cluster.proxy(srv.addr)
    state = small_disk / "agent"
    a = agent(cluster, srv, "a1", addr=px.addr, state=state)
    gate = tmp_path / "gate"
    cmd = (f"while [ ! -e {gate} ]; do sleep 0.02; done; "
           "awk 'BEGIN { pad = sprintf(\"%090d\", 0); "
           "for (i = 1; i <= 200000; i++) printf \"%08d %s\\n\", i, pad }'")
    jid = submit(srv, "--", cmd)
    wait_state(srv, jid, "running")
    px.cut()
    a.wait_log("disconnected from the coordinator")
    gate.touch()
    # Memory holds 8 MiB, the disk 2 MiB of the 20 MB: the rest is dropped,
    # the result cannot be written to disk either and waits in memory.
    a.wait_log(r"job finished job=%s" % jid)
    a.wait_log("cannot spool log batch; dropping output lines")
    a.wait_log("its result is held in memory only")
    px.restore()
    done = wait_state(srv, jid, "succeeded", timeout=120)
    dropped = done["result"]["lines_dropped"]
    got = [int(line[:8]) for line in logs(srv, jid)[0].splitlines()]
    assert 0 < dropped < 200000 and len(got) == 200000 - dropped
    assert all(x < y for x, y in zip(got, got[1:]))
    # Delivered and acknowledged: nothing is left on the small disk.
    wait_for(lambda: not os.listdir(state / "spool") and not os.listdir(state / "results"),
             what="the spool and results emptied")
    a.stop()
