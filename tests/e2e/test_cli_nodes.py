"""`drover node list|drain` and `drover token create` against a real `drover
server`, with scripted grpcio agents (fakeagent.py) as the nodes."""
import json
import re
import subprocess

import grpc
import pytest

from cluster import clean_env, wait_for
from fakeagent import FakeAgent

GIB = 1 << 30


@pytest.fixture
def srv(cluster):
    return cluster.server()


@pytest.fixture
def fakes():
    made = []
    yield made
    for a in made:
        a.close()


def join(cluster, srv, pb, fakes, name, token=None, **kw):
    a = FakeAgent(pb, srv.addr, token=token or cluster.token(srv.addr), name=name, **kw)
    w = a.recv("welcome")
    a.node_id = w.node_id
    fakes.append(a)
    return a


def heartbeat(pb, a, **kw):
    a.send(heartbeat=pb.agent.Heartbeat(**kw))


def nodes_json(cluster, srv):
    return json.loads(cluster.cli(srv.addr, "node", "list", "--json", check=0).stdout)


# ------------------------------------------------------------------ token create

def test_cli_token_create_prints_the_token_only(cluster, srv, pb, fakes):
    r = cluster.cli(srv.addr, "token", "create", check=0)
    assert re.fullmatch(r"drv1_[0-9a-f]{48}\n", r.stdout), r.stdout
    assert r.stderr == ""
    tok = r.stdout.strip()
    join(cluster, srv, pb, fakes, "first", token=tok)
    # Single use by default: a second agent is refused.
    b = FakeAgent(pb, srv.addr, token=tok, name="second")
    fakes.append(b)
    assert b.ended() == grpc.StatusCode.UNAUTHENTICATED


def test_cli_token_create_uses_and_json(cluster, srv, pb, fakes):
    r = cluster.cli(srv.addr, "token", "create", "--uses", "2", "--json", check=0)
    d = json.loads(r.stdout)
    assert d["uses"] == 2 and d["expires_at"] is None and d["token"].startswith("drv1_")
    assert d["id"]
    join(cluster, srv, pb, fakes, "one", token=d["token"])
    join(cluster, srv, pb, fakes, "two", token=d["token"])
    c = FakeAgent(pb, srv.addr, token=d["token"], name="three")
    fakes.append(c)
    assert c.ended() == grpc.StatusCode.UNAUTHENTICATED


def test_cli_token_create_ttl(cluster, srv, pb, fakes):
    r = cluster.cli(srv.addr, "token", "create", "--ttl", "1h", "--json", check=0)
    d = json.loads(r.stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", d["expires_at"])
    join(cluster, srv, pb, fakes, "in-time", token=d["token"])
    # A token that has expired by the time it is used (1 ms is long gone by
    # the time an agent connects) is refused.
    tok = cluster.cli(srv.addr, "token", "create", "--ttl", "1ms", check=0).stdout.strip()
    late = FakeAgent(pb, srv.addr, token=tok, name="late")
    fakes.append(late)
    assert late.ended() == grpc.StatusCode.UNAUTHENTICATED


def test_cli_token_create_bad_values_are_usage_errors(cluster, srv):
    r = cluster.cli(srv.addr, "token", "create", "--uses", "0")
    assert r.returncode == 2 and '--uses "0"' in r.stderr
    r = cluster.cli(srv.addr, "token", "create", "--ttl", "soon")
    assert r.returncode == 2 and '--ttl "soon"' in r.stderr


def test_cli_token_create_cannot_reach_the_coordinator(cluster):
    r = cluster.cli("127.0.0.1:1", "token", "create")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: cannot reach the coordinator at '127.0.0.1:1'")


# ------------------------------------------------------------------ node list

def test_cli_node_list_json(cluster, srv, pb, fakes):
    a = join(cluster, srv, pb, fakes, "gpu-1", labels={"gpu": "yes", "zone": "a"}, slots=4,
             capabilities=["cgroup.v2", "ns.pid"])
    heartbeat(pb, a, cpu_percent=37.5, mem_used_bytes=3 * GIB, mem_available_bytes=5 * GIB,
              mem_total_bytes=8 * GIB, disk_free_bytes=20 * GIB, load1=0.5, running=0,
              free_slots=4)
    b = join(cluster, srv, pb, fakes, "cpu-1", slots=2)
    wait_for(lambda: [n for n in nodes_json(cluster, srv)
                      if n["name"] == "gpu-1" and n["cpu_percent"] == 37.5], what="heartbeat")
    nodes = {n["name"]: n for n in nodes_json(cluster, srv)}
    assert set(nodes) == {"gpu-1", "cpu-1"}
    g = nodes["gpu-1"]
    assert g["id"] == a.node_id and g["state"] == "ready" and g["connected"] is True
    assert g["labels"] == {"gpu": "yes", "zone": "a"}
    assert g["capabilities"] == ["cgroup.v2", "ns.pid"]
    assert g["slots"] == 4 and g["running"] == 0 and g["busy"] is False
    assert g["memory_bytes"] == 8 * GIB and g["memory_used_bytes"] == 3 * GIB
    assert g["memory_available_bytes"] == 5 * GIB and g["disk_free_bytes"] == 20 * GIB
    assert g["load1"] == 0.5 and g["version"] == "fake"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", g["last_seen"])
    c = nodes["cpu-1"]
    assert c["id"] == b.node_id and c["labels"] == {} and c["cpu_percent"] is None
    assert c["slots"] == 2


def test_cli_node_list_table(cluster, srv, pb, fakes):
    a = join(cluster, srv, pb, fakes, "gpu-1", labels={"gpu": "yes"}, slots=4)
    heartbeat(pb, a, cpu_percent=12.0, mem_used_bytes=2 * GIB, mem_total_bytes=8 * GIB,
              disk_free_bytes=20 * GIB)
    join(cluster, srv, pb, fakes, "cpu-1", slots=2)
    wait_for(lambda: [n for n in nodes_json(cluster, srv) if n["cpu_percent"] == 12.0],
             what="heartbeat")
    r = cluster.cli(srv.addr, "node", "list", check=0)
    lines = r.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["NAME", "ID", "STATE", "JOBS", "CPU", "MEMORY",
                                             "DISK", "LAST SEEN", "LABELS"]
    rows = {l.split()[0]: re.split(r"\s{2,}", l) for l in lines[1:]}
    assert list(rows) == ["cpu-1", "gpu-1"]      # by name
    g = rows["gpu-1"]
    assert g[1] == a.node_id and g[2] == "ready" and g[3] == "0/4"
    assert g[4] == "12%"      # the fake agent sends no CPU count
    assert g[5] == "2 GiB/8 GiB" and g[6] == "20 GiB free"
    assert re.fullmatch(r"just now|\d+s ago", g[7]) and g[8] == "gpu=yes"
    assert rows["cpu-1"][4:7] == ["-", "-", "-"]
    assert "\033[" not in r.stdout


def test_cli_node_list_shows_running_jobs_and_lost_nodes(cluster, pb, fakes):
    srv = cluster.server(node_timeout="3s")
    a = join(cluster, srv, pb, fakes, "silent", slots=2)
    jid = cluster.cli(srv.addr, "job", "submit", "--", "x", check=0).stdout.strip()
    a.recv("run_job")
    n = nodes_json(cluster, srv)[0]
    assert n["running"] == 1 and n["state"] == "ready"
    # Nothing from it for the node timeout: lost, and the job with it.
    wait_for(lambda: nodes_json(cluster, srv)[0]["state"] == "lost", timeout=30, what="lost")
    r = cluster.cli(srv.addr, "node", "list", check=0)
    assert re.split(r"\s{2,}", r.stdout.splitlines()[1])[2] == "lost"
    st = json.loads(cluster.cli(srv.addr, "job", "status", jid, "--json", check=0).stdout)
    assert st["state"] == "lost"


def test_cli_node_list_empty(cluster, srv):
    r = cluster.cli(srv.addr, "node", "list", check=0)
    assert r.stdout.splitlines() == [re.sub(r" +$", "", r.stdout.splitlines()[0])]
    assert r.stdout.split() == ["NAME", "ID", "STATE", "JOBS", "CPU", "MEMORY", "DISK", "LAST",
                                "SEEN", "LABELS"]
    assert json.loads(cluster.cli(srv.addr, "node", "list", "--json", check=0).stdout) == []


# ------------------------------------------------------------------ node drain

def test_cli_node_drain_by_name_takes_no_new_jobs(cluster, srv, pb, fakes):
    a = join(cluster, srv, pb, fakes, "web-1", slots=4)
    a.beat()
    first = cluster.cli(srv.addr, "job", "submit", "--", "x", check=0).stdout.strip()
    assert a.recv("run_job").job.spec.id == first
    r = cluster.cli(srv.addr, "node", "drain", "web-1", check=0)
    assert r.stdout == (f"node web-1 ({a.node_id}) is draining: it takes no new jobs; the 1 job "
                        "on it run to their end\n")
    a.recv("drain")
    assert nodes_json(cluster, srv)[0]["state"] == "draining"
    cluster.cli(srv.addr, "job", "submit", "--", "y", check=0)
    a.nothing("run_job", within=1.0)
    # Draining again, and by id: nothing changes.
    r = cluster.cli(srv.addr, "node", "drain", a.node_id, "--json", check=0)
    d = json.loads(r.stdout)
    assert d["id"] == a.node_id and d["state"] == "draining" and d["running"] == 1


def test_cli_node_drain_unknown_and_ambiguous(cluster, srv, pb, fakes):
    r = cluster.cli(srv.addr, "node", "drain", "nope")
    assert r.returncode == 1
    assert r.stderr == "error: no node 'nope' (drover node list shows the nodes)\n"
    join(cluster, srv, pb, fakes, "twin")
    join(cluster, srv, pb, fakes, "twin")
    r = cluster.cli(srv.addr, "node", "drain", "twin")
    assert r.returncode == 1
    assert r.stderr == ("error: 2 nodes are named 'twin': give the node id instead (drover node "
                        "list shows them)\n")


def test_cli_node_usage(drover):
    r = subprocess.run([drover, "node"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: drover node <subcommand>" in r.stderr
    for sub in ("list", "drain"):
        r = subprocess.run([drover, "node", sub, "--help"], capture_output=True, text=True,
                           timeout=30, env=clean_env())
        assert r.returncode == 0 and r.stdout.startswith(f"usage: drover node {sub} [options]")
    r = subprocess.run([drover, "node", "drain"], capture_output=True, text=True, timeout=30,
                       env=clean_env())
    assert r.returncode == 2 and "give one node" in r.stderr
    r = subprocess.run([drover, "token", "create", "--help"], capture_output=True, text=True,
                       timeout=30, env=clean_env())
    assert r.returncode == 0 and "--uses N" in r.stdout and "--ttl D" in r.stdout
