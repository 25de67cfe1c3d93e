"""`drover agent --coordinator` against a real `drover server`, driven with the
CLI: what a user sees of jobs run by a real agent, of the node it makes, of its
identity, its refusals and its graceful shutdown."""
import json
import os
import re
import signal
import stat

import grpc
import pytest

from agentlib import (agent, cli, events, logs, nodes, restart_agent, status, submit,
                      terminal_events, wait_node, wait_state)
from cluster import wait_for


@pytest.fixture
def srv(cluster):
    return cluster.server(node_timeout="3s")


def test_agent_runs_a_job_with_its_bytes_and_exit_code(cluster, srv, tmp_path):
    a = agent(cluster, srv, "a1")
    long_line = "x" * 100000
    script = tmp_path / "job.sh"
    script.write_text(
        "echo out one\n"
        "echo err one >&2\n"
        f"echo {long_line}\n"
        "printf 'bin\\001\\377\\n'\n"
        'echo "50 halfway" >&$DROVER_PROGRESS_FD\n'
        "printf 'no newline at the end'\n"
        "exit 3\n")
    rc, out, err = cli(srv, "job", "run", "--", "bash", str(script))
    assert rc == 3, err
    assert out == b"out one\n" + long_line.encode() + b"\nbin\x01\xff\nno newline at the end"
    assert err == "err one\n"
    (st,) = json.loads(cli(srv, "job", "list", "--json")[1])
    assert st["state"] == "failed" and st["attempt"] == 1
    node = nodes(srv)["a1"]["id"]
    assert [(e["to"], e["node"]) for e in events(srv, st["id"])][1:] == [
        ("assigned", node), ("running", node), ("failed", node)]
    res = status(srv, st["id"])["result"]
    assert res["exit_code"] == 3 and res["stdout"]["lines"] == 4 and res["stderr"]["lines"] == 1
    assert res["progress"]["percent"] == 50 and res["progress"]["stage"] == "halfway"
    assert "lines_dropped" not in res
    # The store has the same bytes, stdout and stderr apart.
    sout, serr = logs(srv, st["id"])
    assert sout == out and serr == b"err one\n"
    # --timestamps: the agent's "$ cmd" header is in the merged view.
    _, ts, _ = cli(srv, "job", "logs", st["id"], "--timestamps")
    assert re.search(rb"Z sys \$ bash ", ts)
    assert a.alive()


def test_agent_reports_labels_capabilities_resources_and_load(cluster, srv, pb):
    agent(cluster, srv, "gpu-1", "--label", "gpu=yes", "--label", "zone=a", slots=3)
    n = wait_node(srv, "gpu-1", lambda n: n["cpu_percent"] is not None, what="a heartbeat")
    assert n["state"] == "ready" and n["connected"] and not n["busy"]
    assert n["labels"] == {"gpu": "yes", "zone": "a"} and n["slots"] == 3
    caps = set(n["capabilities"])
    assert caps <= {"cgroup.v1", "cgroup.v2", "ns.user", "ns.pid", "ns.net", "ns.mount", "docker",
                    "sandbox.isolation"}
    assert {"ns.pid", "ns.mount"} <= caps  # every Linux this runs on has them
    assert n["cpus"] == os.cpu_count()
    meminfo = open("/proc/meminfo").read()
    total = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) * 1024
    assert n["memory_bytes"] == total
    assert 0 < n["memory_used_bytes"] < total and 0 < n["memory_available_bytes"] <= total
    assert 0 < n["disk_free_bytes"] <= n["disk_bytes"]
    assert 0 <= n["cpu_percent"] <= 100 and n["load1"] >= 0
    assert n["version"] and n["address"]
    # Network interfaces (not in the CLI's view): real ones, with addresses.
    ch = grpc.insecure_channel(srv.addr)
    (node,) = pb.agent_grpc.NodeServiceStub(ch).List(pb.agent.ListNodesRequest()).nodes
    ch.close()
    names = set(os.listdir("/sys/class/net")) - {"lo"}
    for ni in node.resources.interfaces:
        assert ni.name in names and ni.addresses
    with open("/proc/net/if_inet6") as f:
        with_v6 = {line.split()[-1] for line in f} - {"lo"}
    assert with_v6 <= {ni.name for ni in node.resources.interfaces}
    # A job pinned to its label runs there.
    rc, out, _ = cli(srv, "job", "run", "--constraint", "gpu=yes", "--", "echo", "pinned")
    assert rc == 0 and out == b"pinned\n"


def test_agent_busy_node_takes_no_jobs(cluster, srv):
    # Memory use is above 1% on any machine: the node says busy.
    agent(cluster, srv, "full", "--busy-mem", "1")
    wait_node(srv, "full", lambda n: n["busy"], what="the node to say busy")
    jid = submit(srv, "--", "true")
    assert status(srv, jid)["state"] == "queued"
    cli(srv, "job", "cancel", jid)


def test_agent_bad_token_is_refused(cluster, srv):
    a = cluster.agent(srv.addr, "drv1_" + "0" * 48, "intruder")
    a.expect = {1}
    assert a.proc.wait(timeout=60) == 1
    err = a.stderr()
    assert "error: the coordinator at" in err and "refused this agent" in err
    assert "drover token create" in err
    assert "intruder" not in nodes(srv)


def test_agent_needs_a_token_then_keeps_its_identity(cluster, srv, tmp_path):
    state = tmp_path / "fresh"
    p = cluster.start(["agent", "--coordinator", srv.addr, "--state-dir", str(state)], "no-token")
    p.expect = {1}
    assert p.proc.wait(timeout=60) == 1
    assert "has no identity" in p.stderr() and "drover token create" in p.stderr()

    a = agent(cluster, srv, "keeper", state=state)
    node_json = state / "node.json"
    assert stat.S_IMODE(node_json.stat().st_mode) == 0o600
    first = nodes(srv)["keeper"]["id"]
    # One agent per state dir.
    twin = cluster.start(["agent", "--coordinator", srv.addr, "--state-dir", str(state)], "twin")
    twin.expect = {1}
    assert twin.proc.wait(timeout=60) == 1
    assert "in use by another agent (pid %d)" % a.pid in twin.stderr()
    assert a.stop() == 0
    # Back without a token: the same node.
    b = restart_agent(cluster, srv, a)
    b.wait_log("connected to the coordinator")
    assert list(nodes(srv)) == ["keeper"] and nodes(srv)["keeper"]["id"] == first


def test_agent_refuses_two_sources_of_jobs(cluster, srv, tmp_path):
    p = cluster.start(["agent", "--coordinator", srv.addr, "--jobs-dir", str(tmp_path / "j")],
                      "both")
    p.expect = {2}
    assert p.proc.wait(timeout=60) == 2
    assert "cannot be combined" in p.stderr()


def test_agent_sigterm_lets_jobs_finish_and_says_goodbye(cluster, srv, tmp_path):
    a = agent(cluster, srv, "leaving")
    gate = tmp_path / "gate"
    jid = submit(srv, "--", f"echo started; while [ ! -e {gate} ]; do sleep 0.02; done; echo done")
    wait_state(srv, jid, "running")
    a.send_signal(signal.SIGTERM)
    a.wait_log("shutting down: taking no new jobs")
    # Draining: a new job is not given to it.
    wait_node(srv, "leaving", lambda n: n["state"] == "draining", what="draining")
    other = submit(srv, "--", "true")
    gate.touch()
    assert a.proc.wait(timeout=60) == 0
    done = status(srv, jid)
    assert done["state"] == "succeeded" and done["result"]["exit_code"] == 0
    assert logs(srv, jid)[0] == b"started\ndone\n"
    assert nodes(srv)["leaving"]["state"] == "down"
    assert status(srv, other)["state"] == "queued"
    cli(srv, "job", "cancel", other)


def test_agent_shutdown_timeout_cancels_running_jobs(cluster, srv):
    a = agent(cluster, srv, "impatient", "--shutdown-timeout", "500ms")
    jid = submit(srv, "--kill-grace", "200ms", "--", "sleep 600")
    wait_state(srv, jid, "running")
    a.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=60) == 0
    assert status(srv, jid)["state"] == "cancelled"
    assert nodes(srv)["impatient"]["state"] == "down"


def test_agent_second_signal_cancels_at_once(cluster, srv, tmp_path):
    a = agent(cluster, srv, "hasty", "--shutdown-timeout", "10m")
    jid = submit(srv, "--kill-grace", "200ms", "--", "sleep 600")
    wait_state(srv, jid, "running")
    a.send_signal(signal.SIGTERM)
    a.wait_log("shutting down: taking no new jobs")
    a.send_signal(signal.SIGINT)
    assert a.proc.wait(timeout=60) == 0
    assert status(srv, jid)["state"] == "cancelled"
    assert nodes(srv)["hasty"]["state"] == "down"


def test_agent_timeout_cancel_and_stdin(cluster, srv):
    agent(cluster, srv, "worker")
    rc, _, _ = cli(srv, "job", "run", "--timeout", "300ms", "--kill-grace", "100ms", "--",
                   "sleep 600")
    assert rc == 124
    jid = submit(srv, "--", "sleep 600")
    wait_state(srv, jid, "running")
    rc, _, err = cli(srv, "job", "cancel", jid, "--grace", "100ms")
    assert rc == 0, err
    assert wait_state(srv, jid, "cancelled")["result"]["signal"] == signal.SIGTERM
    data = b"".join(b"line %d of the input\n" % i for i in range(20000))
    rc, out, err = cli(srv, "job", "run", "-i", "--", "cat", input=data)
    assert rc == 0, err
    assert out == data


def test_agent_drain_keeps_running_jobs_and_takes_no_new_ones(cluster, srv, tmp_path):
    agent(cluster, srv, "d1")
    gate = tmp_path / "gate"
    jid = submit(srv, "--", f"while [ ! -e {gate} ]; do sleep 0.02; done")
    wait_state(srv, jid, "running")
    rc, out, err = cli(srv, "node", "drain", "d1")
    assert rc == 0, err
    wait_node(srv, "d1", lambda n: n["state"] == "draining", what="draining")
    other = submit(srv, "--", "true")
    gate.touch()
    assert wait_state(srv, jid, "succeeded")
    assert status(srv, other)["state"] == "queued"
    assert [e["to"] for e in events(srv, other)] == ["queued"]
    assert len(terminal_events(events(srv, jid))) == 1
    cli(srv, "job", "cancel", other)
