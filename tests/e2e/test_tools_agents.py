"""Tool jobs on the agents: a tool job file in a jobs directory, and tool
jobs through a coordinator (`drover dev`), their JSON read back with
`drover job logs`. The agent's --tool-* policy is what applies."""
import json
import re

import pytest

from cluster import wait_for
from jobsdir_harness import agent, drop, jobs, result  # noqa: F401


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "w").mkdir(parents=True)
    (root / "notes.txt").write_text("first\nsecond TODO\n")
    (tmp_path / "secret").write_text("top secret\n")
    return tmp_path


def out_lines(log):
    """The job's stdout lines of a jobs-dir log ("TIME out TEXT")."""
    return [line.split(" out ", 1)[1] for line in log.splitlines() if " out " in line]


def test_tools_job_file_in_a_jobs_dir(agent, jobs, tree):
    root = tree / "root"
    agent("--tool-root", str(root), "--tool-write-root", str(root / "w"))
    drop(jobs, "r.json", {"id": "r", "kind": "tool", "tool": "grep",
                          "args": {"pattern": "TODO", "path": "."}})
    drop(jobs, "w.json", {"id": "w", "tool": "file_write",
                          "args": {"path": "w/out.txt", "content": "from a job file\n"}})
    drop(jobs, "x.json", {"id": "x", "tool": "file_read", "args": {"path": "../secret"}})
    r = result(jobs, "r")
    assert r["status"] == "succeeded" and r["exit_code"] == 0
    doc = json.loads(out_lines((jobs / "logs" / "r.log").read_text())[0])
    assert doc["matches"] == [{"path": "notes.txt", "line": 2, "text": "second TODO"}]
    assert result(jobs, "w")["exit_code"] == 0
    assert (root / "w" / "out.txt").read_text() == "from a job file\n"
    x = result(jobs, "x")
    assert x["status"] == "failed" and x["exit_code"] == 126
    log = (jobs / "logs" / "x.log").read_text()
    doc = json.loads(out_lines(log)[0])
    assert doc["rule"] == "tool-root" and "top secret" not in log
    wait_for((jobs / "failed" / "x.json").exists, what="x in failed/")


def test_tools_job_file_errors_are_positioned(agent, jobs, tree):
    agent("--tool-root", str(tree / "root"))
    drop(jobs, "bad.json", {"id": "bad", "tool": "file_read", "env": {"LD_PRELOAD": "/x.so"}})
    path = jobs / "failed" / "bad.json.error.txt"
    text = wait_for(lambda: path.exists() and path.read_text(), what="error file")
    assert "\"env\" is not used by a tool job" in text


def test_tools_agent_without_roots_refuses_path_tools(agent, jobs, tree):
    agent()
    drop(jobs, "n.json", {"id": "n", "tool": "list", "args": {}})
    assert result(jobs, "n")["exit_code"] == 126


def start_dev(cluster, tree, *extra):
    p = cluster.start(["dev", "--listen", "127.0.0.1:0", "--data", str(tree / "data"),
                       "--tool-root", str(tree / "root"), "--tool-write-root",
                       str(tree / "root" / "w"), "--log-level", "debug", *extra], "dev")
    m = wait_for(lambda: re.search(r"listening on (\S+)", p.stdout()) or
                 (not p.alive() and pytest.fail(f"dev died:\n{p.stderr()}")),
                 what="drover dev to listen")
    p.addr = m.group(1)
    return p


def test_tools_job_through_drover_dev_and_job_logs(cluster, tree):
    dev = start_dev(cluster, tree)
    r = cluster.cli(dev.addr, "job", "submit", "--tool", "grep", "--args",
                    json.dumps({"pattern": "TODO", "path": "notes.txt"}), check=0)
    jid = r.stdout.strip()
    cluster.cli(dev.addr, "job", "wait", jid, check=0)
    r = cluster.cli(dev.addr, "job", "logs", jid, check=0)
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["matches"] == [{"path": "notes.txt", "line": 2, "text": "second TODO"}]
    st = json.loads(cluster.cli(dev.addr, "job", "status", jid, "--json", check=0).stdout)
    assert st["state"] == "succeeded"
    # the node says it takes tool jobs: --require tools finds it
    nodes = json.loads(cluster.cli(dev.addr, "node", "list", "--json", check=0).stdout)
    assert "tools" in nodes[0]["capabilities"]
    r = cluster.cli(dev.addr, "job", "run", "--require", "tools", "--tool", "list", check=0)
    assert "notes.txt" in [e["name"] for e in json.loads(r.stdout)["entries"]]


def test_tools_job_run_through_drover_dev_exit_codes(cluster, tree):
    dev = start_dev(cluster, tree)
    r = cluster.cli(dev.addr, "job", "run", "--tool", "file_write", "--args",
                    json.dumps({"path": "w/a.txt", "content": "hi"}), check=0)
    assert json.loads(r.stdout) == {"bytes": 2}
    assert (tree / "root" / "w" / "a.txt").read_text() == "hi"
    r = cluster.cli(dev.addr, "job", "run", "--tool", "file_read", "--args",
                    json.dumps({"path": str(tree / "secret")}), check=126)
    assert json.loads(r.stdout)["rule"] == "tool-root"
    assert "top secret" not in r.stdout + r.stderr
    # what the coordinator refuses for a tool job, it says why
    r = cluster.cli(dev.addr, "job", "run", "--tool", "list", "--env", "A=1", check=2)
    assert "takes no --env" in r.stderr


def test_tools_large_result_read_back_whole_through_job_logs(cluster, tree):
    # A result longer than a log line's 64 KiB part comes back as one line.
    content = "".join(f"line {i:06d} of a long file\n" for i in range(12000))
    (tree / "root" / "long.txt").write_text(content)
    dev = start_dev(cluster, tree)
    r = cluster.cli(dev.addr, "job", "submit", "--tool", "file_read", "--args",
                    json.dumps({"path": "long.txt"}), check=0)
    jid = r.stdout.strip()
    cluster.cli(dev.addr, "job", "wait", jid, check=0)
    out = cluster.cli(dev.addr, "job", "logs", jid, check=0).stdout
    assert len(out.splitlines()) == 1
    assert json.loads(out)["content"] == content


def test_tools_job_document_submitted_with_f(cluster, tree):
    dev = start_dev(cluster, tree)
    doc = tree / "job.json"
    doc.write_text(json.dumps({"id": "tooldoc", "kind": "tool", "tool": "find",
                               "args": {"name": "*.txt"}}))
    r = cluster.cli(dev.addr, "job", "submit", "-f", str(doc), check=0)
    assert r.stdout.strip() == "tooldoc"
    cluster.cli(dev.addr, "job", "wait", "tooldoc", check=0)
    out = cluster.cli(dev.addr, "job", "logs", "tooldoc", check=0).stdout
    assert json.loads(out) == {"paths": ["notes.txt"], "truncated": False}
    # a tool job document that asks for what a tool job cannot take
    doc.write_text(json.dumps({"tool": "find", "workdir": "/"}))
    r = cluster.cli(dev.addr, "job", "submit", "-f", str(doc))
    assert r.returncode != 0 and "not used by a tool job" in r.stderr
