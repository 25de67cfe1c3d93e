"""Container jobs (docs/containers.md) against a real Docker engine
(dockerlib.py starts one when the machine has none): `drover run --image`,
the jobs-directory agent, and `drover dev` with `drover job run --image`.
Every test ends with no container of drover's left on the engine (the
`docker` fixture checks)."""
import json
import os
import signal
import subprocess
import time

import pytest

from dockerlib import IMAGE, docker, docker_engine, registry  # noqa: F401 (fixtures)
from jobsdir_harness import agent, check_clean, drop, jobs, log_of, result, wait_for  # noqa: F401

SANITIZER = ("Sanitizer", "runtime error")


def run(drover, docker, *args, timeout=120):
    """`drover run --docker-host H ARGS`; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    r = subprocess.run([drover, "run", "--docker-host", docker.host, *args], capture_output=True,
                       text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    for s in SANITIZER:
        assert s not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


def test_container_exit_codes_and_streams(drover, docker):
    rc, out, err = run(drover, docker, "--image", IMAGE, "--",
                       "echo out; echo err >&2; echo out2; exit 3")
    assert rc == 3, err
    assert out == "out\nout2\n"
    assert err == "err\n"
    # Several words are argv (no shell); env and workdir apply in the container.
    rc, out, err = run(drover, docker, "--image", IMAGE, "--env", "GREETING=hi there", "-C",
                       "/tmp", "--json", "--", "sh", "-c", 'echo "$GREETING"; pwd')
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:2] == ["hi there", "/tmp"]
    doc = json.loads(lines[-1])
    assert doc["status"] == "succeeded" and doc["exit"] == 0
    assert doc["stdout"] == {"lines": 2, "bytes": len("hi there\n/tmp\n")}
    # A process killed by a signal in the container: its shell says 128+N.
    rc, out, err = run(drover, docker, "--image", IMAGE, "--", "sh -c 'kill -USR1 $$'; exit $?")
    assert rc == 128 + signal.SIGUSR1, err


def test_container_output_is_byte_exact(drover, docker):
    # More than a pipe's worth on both streams, interleaved, no final newline.
    rc, out, err = run(drover, docker, "--image", IMAGE, "--",
                       "i=0; while [ $i -lt 3000 ]; do echo line$i; echo e$i >&2; i=$((i+1)); "
                       "done; printf tail")
    assert rc == 0, err
    assert out == "".join(f"line{i}\n" for i in range(3000)) + "tail"
    assert err == "".join(f"e{i}\n" for i in range(3000))


def test_container_slow_reader_gets_everything(drover, docker):
    # A reader that takes nothing for a while: drover stops reading the
    # attach stream (its queue is full), then takes up again; nothing is lost.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    p = subprocess.Popen([drover, "run", "--docker-host", docker.host, "--image", IMAGE, "--",
                          "head -c 30000000 /dev/zero; echo done >&2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    wait_for(lambda: docker.containers(), 60, "the container")
    time.sleep(3)  # not a wait for an event: the reader's pause is the subject
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert len(out) == 30000000 and out.count(b"\0") == 30000000
    assert err == b"done\n"


def test_container_engine_errors_exit_125(drover, docker, tmp_path):
    rc, out, err = run(drover, docker, "--image", "local/does-not-exist:1", "--", "true")
    assert rc == 125
    assert "image 'local/does-not-exist:1' is not on the Docker engine and cannot be pulled" \
        in err, err
    rc, out, err = run(drover, docker, "--image", "Not A Name", "--", "true")
    assert rc == 125
    assert "invalid reference format" in err, err
    # No words: the image's own command, and this image (an import) has none.
    rc, out, err = run(drover, docker, "--image", IMAGE)
    assert rc == 125
    assert err == f"error: the Docker engine refused the container of image '{IMAGE}': " \
        "No command specified\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    r = subprocess.run([drover, "run", "--docker-host", f"unix://{tmp_path}/none.sock",
                        "--image", IMAGE, "--", "true"], capture_output=True, text=True, env=env)
    assert r.returncode == 125
    assert r.stderr == f"error: cannot connect to the Docker engine at 'unix://{tmp_path}/" \
        "none.sock': No such file or directory: is it running? (--docker-host, DOCKER_HOST)\n"
    r = subprocess.run([drover, "run", "--docker-host", "tcp://127.0.0.1:2375", "--image", IMAGE,
                        "--", "true"], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert "over a unix socket only" in r.stderr


def test_container_timeout_124_leaves_no_container(drover, docker):
    # The container's PID 1 ignores SIGTERM (it has no handler): SIGKILL
    # after the grace.
    rc, out, err = run(drover, docker, "--image", IMAGE, "--timeout", "1s", "--kill-grace",
                       "200ms", "--json", "--", "echo up; sleep 60")
    assert rc == 124, err
    doc = json.loads(out.splitlines()[-1])
    assert doc["status"] == "timed_out" and doc["signal"] == 9


def test_container_cancel_leaves_no_container(drover, docker):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    p = subprocess.Popen([drover, "run", "--docker-host", docker.host, "--image", IMAGE,
                          "--kill-grace", "5s", "--", "trap 'echo bye; exit 7' TERM; echo up; "
                          "while :; do sleep 0.1; done"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline() == "up\n"
    assert len(docker.containers()) == 1
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert out == "bye\n"  # SIGTERM reached the container's process
    for s in SANITIZER:
        assert s not in err, err


def test_container_memory_oom_network_none_read_only(drover, docker, jobs, agent, tmp_path):
    a = agent("--docker-host", docker.host)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from the host\n")
    drop(jobs, "iso.json", {"id": "iso", "image": IMAGE,
                            "command": "cat /data/in.txt; id -u; hostname; "
                                       "touch /data/x 2>/dev/null || echo data-ro; "
                                       "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; "
                                       "echo not-reached",
                            "resources": {"pids": 4, "cpus": 0.5},
                            "isolation": {"mounts": [f"{shared}:/data:ro"], "user": "65534",
                                          "hostname": "boxed"}})
    drop(jobs, "oom.json", {"id": "oom", "image": IMAGE, "command": "echo start; exec tail /dev/zero",
                            "resources": {"memory": "32M"}})
    drop(jobs, "net.json", {"id": "net", "image": IMAGE,
                            "command": "ls /sys/class/net; touch /tmp/ok && echo tmp-ok; "
                                       "touch /x 2>/dev/null || echo root-ro",
                            "isolation": {"network": "none", "read_only": True}})
    r = result(jobs, "oom", timeout=60)
    assert r["status"] == "failed" and r["exit"] == 137 and r["signal"] == 9, r
    assert r["oom_killed"] is True
    assert "out start" in log_of(jobs, "oom")
    r = result(jobs, "net", timeout=60)
    assert r["status"] == "succeeded", r
    outs = [line.split(" ", 2)[2] for line in log_of(jobs, "net").splitlines() if " out " in line]
    assert outs == ["lo", "tmp-ok", "root-ro"]
    r = result(jobs, "iso", timeout=60)
    outs = [line.split(" ", 2)[2] for line in log_of(jobs, "iso").splitlines() if " out " in line]
    assert outs[:4] == ["from the host", "65534", "boxed", "data-ro"], outs
    # pids 4: the shell cannot fork its eighth sleep, and gives up.
    assert "not-reached" not in outs and r["status"] == "failed", r
    assert "err /bin/sh: can't fork" in log_of(jobs, "iso"), log_of(jobs, "iso")


def test_container_agent_kill9_then_restart_removes_it(drover, docker, jobs, agent):
    a = agent("--docker-host", docker.host, "--log-level", "info")
    drop(jobs, "long.json", {"id": "long", "image": IMAGE, "command": "echo up; sleep 300",
                             "kill_grace": "1s"})
    wait_for(lambda: (jobs / "logs" / "long.log").exists() and "out up" in log_of(jobs, "long"),
             60, "the container job's first line")
    [c] = docker.containers("drover.job=long")
    assert c["Labels"]["drover.agent"] == f"jobsdir:{jobs}"
    a.kill(signal.SIGKILL)
    a.proc.wait(timeout=30)
    a.expect = -signal.SIGKILL
    # The engine keeps the container running without its agent ...
    assert [x["Id"] for x in docker.containers("drover.job=long")] == [c["Id"]]
    b = agent("--docker-host", docker.host, "--log-level", "info")
    # ... until the next agent on the same folder removes it, before the job
    # (back from running/) runs again.
    b.wait_log("removed a container left by a previous life of this agent")
    assert c["Id"][:12] in b.stderr()
    wait_for(lambda: [x for x in docker.containers("drover.job=long") if x["Id"] != c["Id"]],
             60, "the job's second run")
    assert c["Id"] not in [x["Id"] for x in docker.containers("drover.job=long")]
    (jobs / "cancel" / "long").write_text("")
    r = result(jobs, "long", timeout=60)
    assert r["status"] == "cancelled"
    wait_for(lambda: not docker.containers("drover.job=long"), 30, "the container removed")


def test_container_through_drover_dev(drover, docker, cluster, tmp_path):
    dev = cluster.start(["dev", "--listen", "127.0.0.1:0", "--data", str(tmp_path / "data"),
                         "--docker-host", docker.host, "--slots", "2"], "dev")
    import re
    line = wait_for(lambda: re.search(r"listening on (\S+)", dev.stdout()) or
                    (not dev.alive() and pytest.fail(f"dev died:\n{dev.stderr()}")),
                    what="dev to listen")
    addr = line.group(1)
    nodes = json.loads(cluster.cli(addr, "node", "list", "--json", check=0).stdout)
    [node] = nodes if isinstance(nodes, list) else nodes["nodes"]
    assert "docker" in node["capabilities"]
    r = cluster.cli(addr, "job", "run", "--image", IMAGE, "--require", "docker", "--",
                    "echo hi; echo oops >&2; exit 4")
    assert r.returncode == 4, r.stderr
    assert r.stdout == "hi\n"
    assert "oops\n" in r.stderr
    r = cluster.cli(addr, "job", "run", "--image", "local/does-not-exist:1", "--", "true")
    assert r.returncode == 125
    assert "cannot be pulled" in r.stderr
    # A job document through the coordinator: resources reach the engine,
    # and the OOM kill comes back in the result (JobResult.oom_killed).
    doc = tmp_path / "oom.json"
    doc.write_text(json.dumps({"image": IMAGE, "command": "exec tail /dev/zero",
                               "resources": {"memory": "32M"}}))
    jid = cluster.cli(addr, "job", "submit", "-f", str(doc), check=0).stdout.strip()
    r = cluster.cli(addr, "job", "wait", jid)
    assert r.returncode == 137, r.stderr
    st = json.loads(cluster.cli(addr, "job", "status", jid, "--json", check=0).stdout)
    assert st["result"]["oom_killed"] is True and st["result"]["signal"] == 9, st
    # Cancel through the coordinator: the container goes.
    jid = cluster.cli(addr, "job", "submit", "--image", IMAGE, "--kill-grace", "1s", "--",
                      "echo up; sleep 300", check=0).stdout.strip()
    wait_for(lambda: "up" in cluster.cli(addr, "job", "logs", jid).stdout, 60, "job output")
    assert len(docker.containers(f"drover.job={jid}")) == 1
    cluster.cli(addr, "job", "cancel", jid, check=0)
    st = json.loads(cluster.cli(addr, "job", "wait", jid, "--json").stdout)
    assert st["state"] in ("cancelled", "CANCELLED") or st.get("status") == "cancelled", st
    wait_for(lambda: not docker.containers(f"drover.job={jid}"), 30, "the container removed")
    # kill -9 of drover dev mid-container: the next dev on the same data
    # removes the container before it runs anything.
    jid = cluster.cli(addr, "job", "submit", "--image", IMAGE, "--", "echo up; sleep 300",
                      check=0).stdout.strip()
    wait_for(lambda: "up" in cluster.cli(addr, "job", "logs", jid).stdout, 60, "job output")
    [c] = docker.containers(f"drover.job={jid}")
    dev.kill9()
    assert [x["Id"] for x in docker.containers(f"drover.job={jid}")] == [c["Id"]]
    dev2 = cluster.start(["dev", "--listen", "127.0.0.1:0", "--data", str(tmp_path / "data"),
                          "--docker-host", docker.host, "--log-level", "info"], "dev2")
    dev2.wait_log("removed a container left by a previous life of this agent")
    assert not docker.containers(f"drover.job={jid}")


def test_container_coordinator_agents_capability_and_kill9(docker, cluster, tmp_path):
    import agentlib
    srv = cluster.server()
    with_docker = agentlib.agent(cluster, srv, "dk", "--docker-host", docker.host)
    agentlib.agent(cluster, srv, "nodk", "--docker-host", f"unix://{tmp_path}/none.sock")
    caps = {n: agentlib.nodes(srv)[n]["capabilities"] for n in ("dk", "nodk")}
    assert "docker" in caps["dk"] and "docker" not in caps["nodk"], caps
    # --require docker: only the node whose engine answers gets it.
    jid = agentlib.submit(srv, "--image", IMAGE, "--require", "docker", "--kill-grace", "1s",
                          "--", "echo up; sleep 300")
    wait_for(lambda: b"up" in agentlib.logs(srv, jid)[0], 60, "the container job's output")
    assert agentlib.status(srv, jid)["node_name"] == "dk"
    [c] = docker.containers(f"drover.job={jid}")
    with_docker.kill9()
    assert [x["Id"] for x in docker.containers(f"drover.job={jid}")] == [c["Id"]]
    again = agentlib.restart_agent(cluster, srv, with_docker, "--docker-host", docker.host)
    again.wait_log("removed a container left by a previous life of this agent")
    wait_for(lambda: not docker.containers(f"drover.job={jid}"), 30, "the container removed")
    # As for a process: the restarted agent stopped it, the job is lost.
    st = agentlib.wait_state(srv, jid, "lost")
    assert "its agent restarted and stopped it" in st["reason"]


def test_container_pulls_a_missing_image(drover, docker, jobs, agent, registry):
    assert not docker.has_image(registry.image)
    agent("--docker-host", docker.host)
    drop(jobs, "p.json", {"id": "p", "image": registry.image, "command": "echo pulled"})
    r = result(jobs, "p", timeout=120)
    assert r["status"] == "succeeded", r
    log = log_of(jobs, "p")
    assert f"sys pulling image '{registry.image}'" in log
    assert "sys pull: " in log and "Pull complete" in log, log
    assert "out pulled" in log
    assert docker.has_image(registry.image)


def test_container_agent_shutdown_cancels_and_removes(drover, docker, jobs, agent):
    a = agent("--docker-host", docker.host, "--shutdown-timeout", "300ms")
    drop(jobs, "s.json", {"id": "s", "image": IMAGE, "command": "echo up; sleep 300",
                          "kill_grace": "500ms"})
    wait_for(lambda: (jobs / "logs" / "s.log").exists() and "out up" in log_of(jobs, "s"),
             60, "the container job's first line")
    assert len(docker.containers("drover.job=s")) == 1
    assert a.stop(timeout=60) == 0
    check_clean(a.stderr())
    assert result(jobs, "s")["status"] == "cancelled"
    assert not docker.containers("drover.job=s")


def test_container_jobs_obey_the_agents_limits_policy(drover, docker, jobs, agent):
    # The agent's maxima, defaults and required isolation hold for container
    # jobs as for processes: over the maximum is refused before any container
    # exists; a job that asks for nothing gets the default, and the required
    # network none, from the engine.
    agent("--docker-host", docker.host, "--max-memory", "64M", "--default-memory", "32M",
          "--require-isolation", "network")
    drop(jobs, "big.json", {"id": "big", "image": IMAGE, "command": "true",
                            "resources": {"memory": "128M"}})
    r = result(jobs, "big", timeout=60)
    assert r["status"] == "failed" and r["exit"] == 125, r
    assert "more than this runner's maximum" in r["error"], r
    drop(jobs, "plain.json", {"id": "plain", "image": IMAGE,
                              "command": "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                         "/sys/fs/cgroup/memory.max 2>/dev/null; ls /sys/class/net"})
    r = result(jobs, "plain", timeout=60)
    assert r["status"] == "succeeded", r
    out = log_of(jobs, "plain")
    assert str(32 << 20) in out, out
    assert "eth0" not in out and "lo" in out, out
