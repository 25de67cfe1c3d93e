"""Several real agents under one real coordinator, driven with the CLI: labels
and constraints pick the node, a job moves to another node when its own is lost
(and never completes twice), and every end state a user can meet, with its
events and exit code."""
import json
import signal

import pytest

from agentlib import agent, cli, events, nodes, status, submit, wait_state
from cluster import wait_for


@pytest.fixture
def srv(cluster):
    return cluster.server(node_timeout="3s")


def node_of(srv, jid):
    return status(srv, jid)["node"]


def test_cluster_three_agents_labels_and_constraints(cluster, srv):
    agent(cluster, srv, "east", "--label", "zone=east", slots=2)
    agent(cluster, srv, "west", "--label", "zone=west", "--label", "disk=ssd", slots=2)
    agent(cluster, srv, "north", "--label", "zone=north", slots=2)
    ids = {n: nodes(srv)[n]["id"] for n in ("east", "west", "north")}

    west = [submit(srv, "--constraint", "zone=west", "--", "true") for _ in range(4)]
    ssd = submit(srv, "--constraint", "disk=ssd", "--constraint", "zone=west", "--", "true")
    nowhere = submit(srv, "--constraint", "zone=south", "--", "true")
    anywhere = [submit(srv, "--", "true") for _ in range(6)]
    for jid in west + [ssd] + anywhere:
        assert wait_state(srv, jid, "succeeded")["state"] == "succeeded"
    for jid in west + [ssd]:
        assert node_of(srv, jid) == ids["west"]
    # Unconstrained jobs spread: more than one node took some.
    assert len({node_of(srv, jid) for jid in anywhere}) > 1
    # A job no node fits waits in the queue, visibly, until cancelled.
    st = status(srv, nowhere)
    assert st["state"] == "queued" and st["node"] is None
    rc, _, err = cli(srv, "job", "cancel", nowhere)
    assert rc == 0, err
    assert wait_state(srv, nowhere, "cancelled")["state"] == "cancelled"
    # Every assignment named the node that ran the job.
    for jid in west:
        assert [e["node"] for e in events(srv, jid) if e["to"] == "assigned"] == [ids["west"]]


def test_cluster_required_capability(cluster, srv):
    agent(cluster, srv, "a1", slots=1)
    caps = nodes(srv)["a1"]["capabilities"]
    have = caps[0] if caps else None
    if have:
        jid = submit(srv, "--require", have, "--", "true")
        assert wait_state(srv, jid, "succeeded")["state"] == "succeeded"
    jid = submit(srv, "--require", "no-such-capability", "--", "true")
    assert status(srv, jid)["state"] == "queued"
    cli(srv, "job", "cancel", jid)


def test_cluster_lost_node_job_moves_to_another_node_once(cluster, srv, tmp_path):
    """kill -9 of the agent running a job, never restarted: after the node
    timeout the job runs again on the other node as attempt 2; attempt 1 died
    with its agent, so only one copy ever finishes."""
    side = tmp_path / "side"
    first = agent(cluster, srv, "first", slots=1)
    # Only the first node is up: the job goes there.
    jid = submit(srv, "--max-attempts", "2", "--",
                 f'echo "start $DROVER_ATTEMPT" >> {side}; '
                 f'if [ "$DROVER_ATTEMPT" = 1 ]; then sleep 300; fi; '
                 f'echo "end $DROVER_ATTEMPT" >> {side}')
    wait_for(lambda: side.exists() and "start 1" in side.read_text(), what="attempt 1 running")
    wait_state(srv, jid, "running")  # its agent has told the coordinator
    first.kill9()
    second = agent(cluster, srv, "second", slots=1)
    done = wait_state(srv, jid, "succeeded", timeout=60)
    assert done["attempt"] == 2 and done["node"] == nodes(srv)["second"]["id"]
    assert side.read_text().splitlines() == ["start 1", "start 2", "end 2"]
    trail = [(e["from"], e["to"], e["attempt"]) for e in events(srv, jid)]
    assert ("running", "queued", 1) in trail and trail[-1] == ("running", "succeeded", 2)
    assert nodes(srv)["first"]["state"] == "lost"
    assert second.alive()


def test_cluster_lost_with_one_attempt(cluster, srv, tmp_path):
    marker = tmp_path / "m"
    a = agent(cluster, srv, "only", slots=1)
    jid = submit(srv, "--", f"touch {marker}; sleep 300")
    wait_for(marker.exists, what="the job running")
    a.kill9()
    done = wait_state(srv, jid, "lost", timeout=60)
    assert "lost" in done["result"]["error"]
    rc, _, _ = cli(srv, "job", "wait", jid)
    assert rc == 75


@pytest.mark.parametrize("cmd,state,code", [
    ("true", "succeeded", 0),
    ("exit 7", "failed", 7),
    ("kill -TERM $$", "failed", 128 + signal.SIGTERM),
])
def test_cluster_end_states_and_exit_codes(cluster, srv, cmd, state, code):
    agent(cluster, srv, "a1", slots=1)
    rc, _, _ = cli(srv, "job", "run", "--", cmd)
    assert rc == code
    (st,) = json.loads(cli(srv, "job", "list", "--json")[1])
    assert st["state"] == state
    assert [e["to"] for e in events(srv, st["id"])] == ["queued", "assigned", "running", state]


def test_cluster_timed_out_and_cancelled(cluster, srv):
    agent(cluster, srv, "a1", slots=2)
    rc, _, _ = cli(srv, "job", "run", "--timeout", "300ms", "--kill-grace", "1s", "--",
                   "sleep 30")
    assert rc == 124
    jid = submit(srv, "--", "sleep 300")
    wait_state(srv, jid, "running")
    rc, _, err = cli(srv, "job", "cancel", jid, "--grace", "1s")
    assert rc == 0, err
    st = wait_state(srv, jid, "cancelled")
    assert st["result"]["signal"] == signal.SIGTERM
    rc, _, _ = cli(srv, "job", "wait", jid)
    assert rc == 128 + signal.SIGTERM


def test_cluster_idempotency_key_runs_once(cluster, srv, tmp_path):
    side = tmp_path / "side"
    agent(cluster, srv, "a1", slots=2)
    a = submit(srv, "--idempotency-key", "deploy-42", "--", f"echo ran >> {side}")
    b = submit(srv, "--idempotency-key", "deploy-42", "--", f"echo ran >> {side}")
    assert a == b
    wait_state(srv, a, "succeeded")
    c = submit(srv, "--idempotency-key", "deploy-42", "--", f"echo ran >> {side}")
    assert c == a
    assert side.read_text() == "ran\n"
