"""Volume through a real agent: 200,000 numbered lines on each stream of one
job, none lost, doubled or reordered, live (`job run`) and from the store
(`job logs`)."""
import json

import pytest

from agentlib import agent, cli, logs, numbered, status

N = 200000


@pytest.fixture
def srv(cluster):
    return cluster.server(node_timeout="10s")


def test_agent_200k_numbered_lines_on_each_stream(cluster, srv):
    agent(cluster, srv, "a1")
    prog = ("awk 'BEGIN { for (i = 1; i <= %d; i++) { print \"out \" i; "
            "print \"err \" i > \"/dev/stderr\" } }'" % N)
    rc, out, err = cli(srv, "job", "run", "--", prog, timeout=300)
    assert rc == 0, err[-2000:]
    want_out, want_err = numbered("out ", 1, N), numbered("err ", 1, N)
    assert out == want_out, "live stdout differs"
    assert err.encode() == want_err, "live stderr differs"
    (job,) = json.loads(cli(srv, "job", "list", "--json")[1])
    res = status(srv, job["id"])["result"]
    assert res["stdout"]["lines"] == N and res["stderr"]["lines"] == N
    assert "lines_dropped" not in res
    sout, serr = logs(srv, job["id"])
    assert sout == want_out, "stored stdout differs"
    assert serr == want_err, "stored stderr differs"
