"""`drover agent --jobs-dir DIR`: job files in, results, logs and moved files out."""
import json
import os
import subprocess
import time

from jobsdir_harness import (LOG_LINE, agent, drop, jobs, result, status,  # noqa: F401
                             wait_for, wait_state)


def test_jobsdir_runs_a_job(agent, jobs):
    agent()
    drop(jobs, "hello.json", {"id": "hello", "command": "echo hello; echo oops >&2"})
    r = result(jobs, "hello")
    assert r["status"] == "succeeded" and r["exit_code"] == 0
    assert r["file"] == "hello.json"
    assert r["stdout"]["lines"] == 1 and r["attempt"] == 1
    wait_for((jobs / "done" / "hello.json").exists, what="file in done/")
    assert not (jobs / "hello.json").exists()
    assert not (jobs / "status" / "hello.json").exists()
    log = (jobs / "logs" / "hello.log").read_text().splitlines()
    assert all(LOG_LINE.match(line) for line in log), log
    texts = [line.split(" ", 1)[1] for line in log]
    assert "out hello" in texts and "err oops" in texts


def test_jobsdir_failed_and_exec_jobs(agent, jobs):
    agent()
    drop(jobs, "f.json", {"id": "f", "command": "exit 4"})
    drop(jobs, "e.json", {"id": "e", "kind": "exec", "argv": ["echo", "$HOME"]})
    assert result(jobs, "f")["exit_code"] == 4
    assert result(jobs, "f")["status"] == "failed"
    assert result(jobs, "e")["status"] == "succeeded"
    wait_for((jobs / "failed" / "f.json").exists, what="f in failed/")
    assert " out $HOME" in (jobs / "logs" / "e.log").read_text()


def test_jobsdir_ignores_temporary_and_dot_files(agent, jobs):
    (jobs / "x.json.tmp").write_text("{")
    (jobs / ".hidden.json").write_text("{")
    (jobs / "notes.txt").write_text("hi")
    agent()
    drop(jobs, "ok.json", {"id": "ok", "command": "true"})
    result(jobs, "ok")
    assert (jobs / "x.json.tmp").exists() and (jobs / ".hidden.json").exists()
    assert not any((jobs / "failed").iterdir())


def test_jobsdir_never_more_than_slots_at_once(agent, jobs, tmp_path):
    """Each job blocks until the test releases it, and notes on start how many
    jobs were live then: a third job started beside two blocked ones would see 3."""
    live, gate = tmp_path / "live", tmp_path / "gate"
    live.mkdir()
    gate.mkdir()
    agent("--slots", "2")
    ids = [f"c{i}" for i in range(6)]
    for i in ids:
        drop(jobs, f"{i}.json", {"id": i, "command":
             f"touch {live}/{i}; ls {live} | wc -l > {tmp_path}/{i}.seen; "
             f"while [ ! -e {gate}/{i} ]; do sleep 0.01; done; rm {live}/{i}"})

    def started():
        return sorted(i for i in ids if (tmp_path / f"{i}.seen").exists())

    released = []
    while len(released) < len(ids):
        # Two run (fewer at the end); every other claimed job is held back.
        running = min(2, len(ids) - len(released))
        wait_for(lambda: len(started()) == len(released) + running, what=f"{running} running")
        waiting = [i for i in ids if i not in started()]
        for i in waiting:
            wait_state(jobs, i, "queued")
        assert len(started()) == len(released) + running
        nxt = next(i for i in started() if i not in released)
        (gate / nxt).touch()
        released.append(nxt)
        result(jobs, nxt)
    seen = [int((tmp_path / f"{i}.seen").read_text()) for i in ids]
    assert max(seen) <= 2, seen
    assert all(result(jobs, i)["status"] == "succeeded" for i in ids)


def blocker(jobs, tmp_path, job_id="blocker"):
    go = tmp_path / f"go-{job_id}"
    drop(jobs, f"{job_id}.json", {"id": job_id, "command":
         f"while [ ! -e {go} ]; do sleep 0.02; done"})
    wait_state(jobs, job_id, "running")
    return go


def test_jobsdir_priority_order(agent, jobs, tmp_path):
    agent("--slots", "1")
    go = blocker(jobs, tmp_path)
    order = tmp_path / "order"
    for name, prio in [("low", 1), ("high", 10), ("zero", 0), ("mid", 5)]:
        drop(jobs, f"{name}.json", {"id": name, "priority": prio,
                                    "command": f"echo {name} >> {order}"})
    for name in ["low", "high", "zero", "mid"]:
        wait_state(jobs, name, "queued")
    go.touch()
    for name in ["low", "high", "zero", "mid"]:
        result(jobs, name)
    assert order.read_text().split() == ["high", "mid", "low", "zero"]


def test_jobsdir_malformed_files_are_explained(agent, jobs):
    agent()
    drop(jobs, "bad.json", '{"command": "true",\n  "timeout": }\n')
    drop(jobs, "typo.json", {"id": "typo", "comand": "true"})
    drop(jobs, "good.json", {"id": "good", "command": "true"})
    result(jobs, "good")
    err = wait_for(lambda: (jobs / "failed" / "bad.json.error.txt").exists() and
                   (jobs / "failed" / "bad.json.error.txt").read_text(), what="error.txt")
    assert f"job file '{jobs}/bad.json'" in err
    assert "line 2" in err and "column" in err
    assert (jobs / "failed" / "bad.json").read_text().startswith('{"command"')
    err = wait_for(lambda: (jobs / "failed" / "typo.json.error.txt").exists() and
                   (jobs / "failed" / "typo.json.error.txt").read_text(), what="error.txt")
    assert "comand" in err
    assert not (jobs / "results" / "typo.json").exists()
    # The result is on disk before the file moves: wait for the move.
    wait_for((jobs / "done" / "good.json").exists, what="good.json in done/")
    assert not any((jobs / "running").iterdir())


def test_jobsdir_cancel_queued_running_and_early(agent, jobs, tmp_path):
    # A cancel file for a job not seen yet waits for it.
    (jobs / "cancel").mkdir()
    (jobs / "cancel" / "early").touch()
    agent("--slots", "1")
    drop(jobs, "early.json", {"id": "early", "command": f"touch {tmp_path}/early-ran"})
    r = result(jobs, "early")
    assert r["status"] == "cancelled" and r["started_at"] is None
    assert not (tmp_path / "early-ran").exists()
    wait_for(lambda: not (jobs / "cancel" / "early").exists(), what="cancel file removed")

    go = blocker(jobs, tmp_path)
    drop(jobs, "queued.json", {"id": "queued", "command": f"touch {tmp_path}/queued-ran"})
    wait_state(jobs, "queued", "queued")
    (jobs / "cancel" / "queued").touch()
    assert result(jobs, "queued")["status"] == "cancelled"
    wait_for((jobs / "failed" / "queued.json").exists, what="queued in failed/")
    go.touch()
    assert result(jobs, "blocker")["status"] == "succeeded"
    assert not (tmp_path / "queued-ran").exists()

    drop(jobs, "long.json", {"id": "long", "command": "sleep 60", "kill_grace": "5s"})
    wait_state(jobs, "long", "running")
    start = time.monotonic()
    (jobs / "cancel" / "long").touch()
    r = result(jobs, "long")
    assert r["status"] == "cancelled" and r["cancel_reason"] == "cancel file"
    assert time.monotonic() - start < 10
    wait_for(lambda: not (jobs / "cancel" / "long").exists(), what="cancel file removed")


def test_jobsdir_idempotency(agent, jobs, tmp_path):
    count = tmp_path / "count"
    a = agent()
    job = {"command": f"echo run >> {count}", "idempotency_key": "deploy-42"}
    drop(jobs, "a.json", dict(job, id="first"))
    assert result(jobs, "first")["status"] == "succeeded"
    drop(jobs, "b.json", dict(job, id="second"))
    r = result(jobs, "second")
    assert r["status"] == "succeeded"
    assert r["deduplicated"] is True and r["duplicate_of"] == "first"
    wait_for((jobs / "done" / "b.json").exists, what="b in done/")
    assert a.stop() == 0
    # A new agent knows the key from results/.
    agent()
    drop(jobs, "c.json", dict(job, id="third"))
    assert result(jobs, "third")["duplicate_of"] == "first"
    assert count.read_text() == "run\n"


def test_jobsdir_progress(agent, jobs, tmp_path):
    agent()
    go = tmp_path / "go"
    drop(jobs, "p.json", {"id": "p", "command":
         f'echo "50 build half way" >&$DROVER_PROGRESS_FD; '
         f'while [ ! -e {go} ]; do sleep 0.02; done; '
         f'echo "90 test nearly there" >&$DROVER_PROGRESS_FD'})
    s = wait_for(lambda: (s := status(jobs, "p")) and s.get("progress") and s, what="progress")
    assert s["state"] == "running"
    assert s["progress"]["percent"] == 50 and s["progress"]["stage"] == "build"
    go.touch()
    r = result(jobs, "p")
    assert r["progress"]["percent"] == 90
    assert r["progress"]["stage"] == "test" and r["progress"]["message"] == "nearly there"
    wait_for(lambda: not (jobs / "status" / "p.json").exists(), what="status removed")


def test_jobsdir_graceful_shutdown(agent, jobs, tmp_path):
    a = agent("--slots", "2", "--shutdown-timeout", "1s")
    drop(jobs, "short.json", {"id": "short", "command": "sleep 0.3; echo done"})
    drop(jobs, "long.json", {"id": "long", "command": "sleep 60", "kill_grace": "2s"})
    wait_state(jobs, "short", "running")
    wait_state(jobs, "long", "running")
    drop(jobs, "later.json", {"id": "later", "command": "true"})
    wait_state(jobs, "later", "queued")
    assert a.stop(timeout=30) == 0
    assert result(jobs, "short", 0)["status"] == "succeeded"
    r = result(jobs, "long", 0)
    assert r["status"] == "cancelled" and r["cancel_reason"] == "agent shutdown"
    # The queued job is handed back untouched for the next agent.
    assert (jobs / "later.json").exists()
    assert not (jobs / "results" / "later.json").exists()
    assert not any((jobs / "running").iterdir())
    assert not os.listdir(jobs / "status")


def test_jobsdir_restart_files_a_job_whose_result_was_written(agent, jobs, tmp_path):
    """The agent died after writing a result but before filing the job: the
    restart files it where its result says and runs nothing twice. A result
    older than the claim belongs to an earlier job with the same id: rerun."""
    running, results = jobs / "running", jobs / "results"
    running.mkdir()
    results.mkdir()
    ran = tmp_path / "ran"
    ran.mkdir()
    for name in ("finished", "again"):
        (running / f"{name}.json").write_text(json.dumps(
            {"id": name, "command": f"touch {ran}/{name}; echo attempt=$DROVER_ATTEMPT"}))
        (running / f"{name}.json.attempt").write_text("1\n")
    # The claim is the job file's last change (its ctime). An old result of an
    # earlier job "again", written before it; the result of "finished",
    # written after it, as the dead agent did. Times are set, not waited for.
    claimed_ns = max(os.stat(running / f"{n}.json").st_ctime_ns for n in ("finished", "again"))
    (results / "again.json").write_text(json.dumps({"id": "again", "status": "failed"}))
    os.utime(results / "again.json", ns=(claimed_ns - 10**10, claimed_ns - 10**10))
    before = json.dumps({"id": "finished", "status": "succeeded", "attempt": 1})
    (results / "finished.json").write_text(before)
    os.utime(results / "finished.json", ns=(claimed_ns + 10**9, claimed_ns + 10**9))

    a = agent()
    wait_for((jobs / "done" / "finished.json").exists, what="finished in done/")
    assert (results / "finished.json").read_text() == before
    wait_for(lambda: result(jobs, "again").get("attempt") == 2, what="again rerun")
    r = result(jobs, "again")
    assert r["status"] == "succeeded" and r["attempt"] == 2
    wait_for((jobs / "done" / "again.json").exists, what="again in done/")
    assert not (ran / "finished").exists()
    assert (ran / "again").exists()
    assert "job had finished before the restart" in a.stderr()
    assert not any(running.iterdir())


def test_jobsdir_restart_reruns_a_job_left_running(agent, jobs):
    running = jobs / "running"
    running.mkdir()
    job = {"command": "echo attempt=$DROVER_ATTEMPT"}
    # Claimed but never started: run as attempt 1.
    (running / "claimed.json").write_text(json.dumps(dict(job, id="claimed")))
    # Started once when the agent died: attempt 2.
    (running / "once.json").write_text(json.dumps(dict(job, id="once")))
    (running / "once.json.attempt").write_text("1\n")
    # Already running as attempt 2 when the agent died again: failed.
    (running / "twice.json").write_text(json.dumps(dict(job, id="twice")))
    (running / "twice.json.attempt").write_text("2\n")
    agent()
    r = result(jobs, "claimed")
    assert r["status"] == "succeeded" and r["attempt"] == 1
    r = result(jobs, "once")
    assert r["status"] == "succeeded" and r["attempt"] == 2
    assert "out attempt=2" in (jobs / "logs" / "once.log").read_text()
    r = result(jobs, "twice")
    assert r["status"] == "failed" and r["attempt"] == 2
    assert "agent restarted twice" in r["error"]
    wait_for((jobs / "failed" / "twice.json").exists, what="twice in failed/")
    wait_for(lambda: not any(running.iterdir()), what="running/ empty")


def test_jobsdir_same_name_again_is_not_overwritten(agent, jobs):
    agent()
    drop(jobs, "same.json", {"id": "one", "command": "true"})
    result(jobs, "one")
    wait_for((jobs / "done" / "same.json").exists, what="first in done/")
    drop(jobs, "same.json", {"id": "two", "command": "true"})
    result(jobs, "two")
    wait_for((jobs / "done" / "same.1.json").exists, what="second in done/")
    assert json.loads((jobs / "done" / "same.json").read_text())["id"] == "one"


def test_jobsdir_json_log_format(agent, jobs):
    a = agent("--log-format", "json")
    drop(jobs, "j.json", {"id": "j", "command": "true"})
    result(jobs, "j")
    assert a.stop() == 0
    lines = [l for l in a.stderr().splitlines() if l.strip()]
    assert lines
    docs = [json.loads(l) for l in lines]
    assert any(d.get("job") == "j" for d in docs)


def test_jobsdir_a_thousand_files_at_once(agent, jobs, tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    n = 1000
    for i in range(n):
        (stage / f"j{i:04}.json").write_text(json.dumps({"id": f"j{i:04}", "command": "exit 0"}))
    agent("--slots", "2").wait_log("agent started")  # its folders exist from here on
    for f in sorted(stage.iterdir()):
        os.rename(f, jobs / f.name)
    results = jobs / "results"

    def count(d):
        return len([f for f in os.listdir(d) if f.endswith(".json")])

    wait_for(lambda: count(results) >= n, timeout=240, what="1000 results")
    wait_for(lambda: count(jobs / "done") >= n, timeout=30, what="1000 files in done/")
    for i in range(n):
        doc = json.loads((results / f"j{i:04}.json").read_text())
        assert doc["status"] == "succeeded", doc
    assert not [f for f in os.listdir(jobs) if f.endswith(".json")]
    assert not any((jobs / "running").iterdir())
    assert not any((jobs / "failed").iterdir())


def test_jobsdir_agent_killed_mid_job_reruns_it_as_attempt_2(agent, jobs, tmp_path):
    """kill -9 of the agent: attempt 1's process dies with it (the kernel
    kills a job's first process with its agent), and attempt 2 runs after
    the restart."""
    pidfile = tmp_path / "pid"
    crashed = agent(expect=-9)
    drop(jobs, "crash.json", {"id": "crash", "command":
         f'echo attempt=$DROVER_ATTEMPT; if [ "$DROVER_ATTEMPT" = 1 ]; then '
         f'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 60; fi'})
    wait_for(pidfile.exists, what="job running")
    # The log of a running job reaches the disk within a flush tick.
    log = jobs / "logs" / "crash.log"
    wait_for(lambda: log.exists() and "out attempt=1" in log.read_text(), what="log flush")
    crashed.proc.kill()
    crashed.proc.wait()
    first = int(pidfile.read_text())
    assert (jobs / "running" / "crash.json").exists()
    agent()
    r = result(jobs, "crash")
    assert r["status"] == "succeeded" and r["attempt"] == 2
    log = (jobs / "logs" / "crash.log").read_text()
    assert "out attempt=1" in log and "out attempt=2" in log
    # Gone (a zombie at most, until its new parent reaps it).
    try:
        state = open(f"/proc/{first}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z"), state


def test_jobsdir_one_agent_per_folder(drover, agent, jobs):
    agent()
    wait_for((jobs / ".agent.lock").exists, what="first agent up")
    wait_for(lambda: (jobs / ".agent.lock").read_text().strip(), what="pid in lock")
    r = subprocess.run([drover, "agent", "--jobs-dir", str(jobs)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert "in use by another agent" in r.stderr
