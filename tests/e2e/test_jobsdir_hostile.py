"""The jobs-directory agent against careless and hostile users: files that are
not files, links out of the folder, huge and endless files, long names, a full
disk, a killed agent, control bytes, signals. What is checked is what a user
sees: where files end up, what the error files and logs say, results."""
import ctypes
import errno
import json
import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import tempfile

import pytest

from jobsdir_harness import (LOG_LINE, agent, check_clean, drop, error_text,  # noqa: F401
                             gone, jobs, log_of, result, wait_for, wait_state)


def entries(d):
    return sorted(os.listdir(d))


def no_xattrs(path):
    return os.listxattr(path, follow_symlinks=False) == [] and os.listxattr(path) == []


# ---- files that are not regular files (items 1 and 3) ----

def test_jobsdir_fifo_folder_and_socket_named_json_are_refused_at_once(agent, jobs, tmp_path):
    """A FIFO used to hang the agent in open(): nothing was claimed or reaped
    and SIGTERM did nothing until someone wrote into it."""
    os.mkfifo(jobs / "f.json")
    outside_fifo = tmp_path / "outside.fifo"
    os.mkfifo(outside_fifo)
    os.symlink(outside_fifo, jobs / "g.json")
    (jobs / "d.json").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(jobs / "s.json"))
    try:
        agent()
        drop(jobs, "ok.json", {"id": "ok", "command": "echo fine"})
        assert result(jobs, "ok")["status"] == "succeeded"
        assert "is a FIFO (named pipe); job files must be regular files" in error_text(jobs, "f.json")
        assert "is a symbolic link; job files must be regular files: copy the file instead" in \
            error_text(jobs, "g.json")
        assert "is a folder; job files must be regular files" in error_text(jobs, "d.json")
        assert "is a socket; job files must be regular files" in error_text(jobs, "s.json")
        # The entries themselves moved, as they were.
        assert stat.S_ISFIFO(os.lstat(jobs / "failed" / "f.json").st_mode)
        assert os.readlink(jobs / "failed" / "g.json") == str(outside_fifo)
        assert (jobs / "failed" / "d.json").is_dir()
        wait_for((jobs / "done" / "ok.json").exists, what="ok.json in done/")
        assert not any((jobs / "running").iterdir())
        assert not [n for n in os.listdir(jobs) if n.endswith(".json")]
    finally:
        sock.close()


def test_jobsdir_symbolic_links_are_never_followed(agent, jobs, tmp_path):
    """A link to /etc/shadow used to put its first bytes in the error file; a
    link to a job outside DIR ran it and wrote an xattr onto the target."""
    outside = tmp_path / "outside.json"
    ran = tmp_path / "ran"
    outside.write_text(json.dumps({"id": "outside", "command": f"touch {ran}"}))
    before = outside.read_bytes()
    os.symlink("/etc/shadow", jobs / "s.json")
    os.symlink(outside, jobs / "o.json")
    os.symlink("/dev/zero", jobs / "z.json")
    # Claimed by an agent of the version before, which crashed on it at every start.
    (jobs / "running").mkdir()
    os.symlink("/dev/zero", jobs / "running" / "r.json")
    agent()
    for name in ("s.json", "o.json", "z.json", "r.json"):
        err = error_text(jobs, name)
        assert err == (f"error: job file '{jobs}/{name}' is a symbolic link; job files must be "
                       "regular files: copy the file instead\n")
        assert os.path.islink(jobs / "failed" / name)
    assert not ran.exists() and not (jobs / "results" / "outside.json").exists()
    assert outside.read_bytes() == before and no_xattrs(outside)
    assert not any((jobs / "running").iterdir())


def test_jobsdir_links_planted_in_its_own_folders_are_not_written_through(agent, jobs, tmp_path):
    """The lock file and a job's log are never opened through a link."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (jobs / "logs").mkdir()
    os.symlink(victim, jobs / "logs" / "l.log")
    a = agent()
    drop(jobs, "l.json", {"id": "l", "command": "echo overwrite"})
    assert result(jobs, "l")["status"] == "succeeded"
    assert victim.read_text() == "precious\n"
    assert "cannot open job log" in a.stderr()
    a.stop()
    os.unlink(jobs / ".agent.lock")
    os.symlink(victim, jobs / ".agent.lock")
    r = subprocess.run([a.proc.args[0], "agent", "--jobs-dir", str(jobs)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "cannot lock '.agent.lock'" in r.stderr, r.stderr
    assert victim.read_text() == "precious\n"


def test_jobsdir_unreadable_file_is_explained(drover, tmp_path):
    """Mode 000 as an unprivileged agent: an error file that says what to do."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="drover-nobody-"))
    try:
        os.chmod(base, 0o755)
        d = base / "jobs"
        d.mkdir()
        os.chown(d, 65534, 65534)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
        errpath = tmp_path / "agent.stderr"
        with open(errpath, "w") as errlog:
            proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     drover, "agent", "--jobs-dir", str(d)],
                                    stdout=subprocess.DEVNULL, stderr=errlog, env=env)
            try:
                wait_for(lambda: "agent started" in errpath.read_text(), what="agent up")
                secret = d / ".secret.json.tmp"
                secret.write_text(json.dumps({"id": "secret", "command": "true"}))
                os.chown(secret, 65534, 65534)
                os.chmod(secret, 0)
                os.rename(secret, d / "secret.json")
                err = error_text(d, "secret.json")
                assert err == (f"error: job file '{d}/secret.json' cannot be read: Permission "
                               "denied; the agent runs as user id 65534: make the file readable "
                               "by it\n")
                assert not (d / "running" / "secret.json").exists()
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
        check_clean(errpath.read_text())
    finally:
        shutil.rmtree(base)


# ---- big and endless files (item 2) ----

def test_jobsdir_job_file_size_limit(agent, jobs, tmp_path):
    agent()
    pad = " " * (1024 * 1024)
    drop(jobs, "big.json", '{"id": "big", "command": "true"}' + pad)
    drop(jobs, "ok.json", '{"id": "ok", "command": "true"}' + pad[:1024 * 1024 - 40])
    assert result(jobs, "ok")["status"] == "succeeded"
    size = (jobs / "failed" / "big.json").stat().st_size
    assert error_text(jobs, "big.json") == (
        f"error: job file '{jobs}/big.json' is {size} bytes, more than --max-job-size "
        "(1048576 bytes): make it smaller or raise --max-job-size\n")

    other = tmp_path / "other"
    other.mkdir()
    agent("--max-job-size", "2M", d=other)
    drop(other, "big.json", '{"id": "big", "command": "true"}' + pad)
    assert result(other, "big")["status"] == "succeeded"


def test_jobsdir_a_file_that_kills_the_agent_twice_is_not_read_again(drover, agent, jobs):
    """strace makes every open() of the job file kill the agent (as an OOM
    on a huge file would): once when claimed, once at the restart. The third
    agent files it as failed without reading it."""
    path = jobs / "running" / "k.json"
    kill_on_open = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=openat", "-P",
                    str(path), "-e", "inject=openat:signal=SIGKILL"]
    first = agent(prefix=kill_on_open, expect=-9, name="first")
    first.wait_log("agent started")
    drop(jobs, "k.json", {"id": "k", "command": f"touch {jobs}/ran"})
    assert first.proc.wait(timeout=30) == -9
    assert path.exists()
    second = agent(prefix=kill_on_open, expect=-9, name="second")
    assert second.proc.wait(timeout=30) == -9
    assert path.exists()
    agent()
    err = error_text(jobs, "k.json")
    assert "the agent stopped twice while reading it" in err
    assert not (jobs / "ran").exists() and not (jobs / "results" / "k.json").exists()
    assert not any((jobs / "running").iterdir())


# ---- long names (item 9) ----

def test_jobsdir_names_too_long_for_the_suffixes_are_refused(agent, jobs):
    long_name = "a" * 250 + ".json"        # 255 bytes, the longest a name can be
    bad_name = "b" * 245 + ".json"         # 250 characters, and not even JSON
    running = jobs / "running"
    running.mkdir()
    # Left in running/ by an agent that claimed it before this rule.
    stuck = "c" * 250 + ".json"
    (running / stuck).write_text(json.dumps({"id": "stuck", "command": "true"}))
    agent()
    for _ in range(2):
        (jobs / long_name).write_text(json.dumps({"id": "long", "command": "true"}))
        wait_for(lambda: not (jobs / long_name).exists(), what="long name taken")
    (jobs / bad_name).write_text("{not json")

    def refused():
        return [n for n in entries(jobs / "failed") if n.endswith(".json")]

    wait_for(lambda: len(refused()) == 4, what="four files refused")
    for name in refused():
        assert len(name.encode()) <= 100, name
        text = error_text(jobs, name)
        assert "bytes long, more than the 217 bytes a job file name may have" in text
        assert "give the file a shorter name" in text
    assert sum(1 for n in refused() if n.startswith("a" * 64)) == 2
    assert any(n.startswith("b" * 64) for n in refused())
    assert any(n.startswith("c" * 64) for n in refused())
    assert not any(running.iterdir())
    assert not (jobs / "results" / "long.json").exists()


# ---- disk full (items 4 and 19) ----

@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs, unmounted after the test (and after its agents)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(fs):
    """Fills the file system fs: big writes, then smaller ones for what a big
    one could not take (tmpfs may allocate large folios)."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"x" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_jobsdir_disk_full_keeps_the_job_file_until_its_result_is_written(small_fs, agent,
                                                                          tmp_path):
    jobs = small_fs / "jobs"
    jobs.mkdir()
    go = tmp_path / "go"
    a = agent("--log-level", "debug", d=jobs)
    drop(jobs, "full.json", {"id": "full", "command":
         f"while [ ! -e {go} ]; do sleep 0.01; done; echo done"})
    wait_state(jobs, "full", "running")
    (jobs / ".later.json.tmp").write_text(json.dumps({"id": "later", "command": "true"}))
    fill(small_fs)
    go.touch()
    a.wait_log("cannot write result; the job file stays in running/")
    a.wait_log("not claiming new job files while a result cannot be written")
    os.rename(jobs / ".later.json.tmp", jobs / "later.json")   # a rename needs no space
    assert (jobs / "running" / "full.json").exists()
    assert not (jobs / "done" / "full.json").exists()
    assert not (jobs / "results" / "full.json").exists()
    os.unlink(small_fs / "filler")
    r = result(jobs, "full")
    assert r["status"] == "succeeded"
    wait_for((jobs / "done" / "full.json").exists, what="full.json in done/")
    assert not (jobs / "running" / "full.json").exists()
    a.wait_log("results can be written again; claiming job files")
    assert result(jobs, "later")["status"] == "succeeded"
    wait_for(lambda: not (jobs / "status" / "full.json").exists(), what="status removed")


def test_jobsdir_result_write_syncs_its_folder(drover, agent, jobs, tmp_path):
    trace = tmp_path / "trace"
    a = agent(prefix=["strace", "-f", "-qq", "-y", "-o", str(trace), "-e",
                      "trace=rename,renameat,renameat2,fsync,fdatasync"])
    drop(jobs, "sync.json", {"id": "sync", "command": "true"})
    result(jobs, "sync")
    wait_for((jobs / "done" / "sync.json").exists, what="sync.json in done/")
    assert a.stop() == 0
    lines = trace.read_text().splitlines()
    results = str(jobs / "results")
    renamed = next(i for i, l in enumerate(lines)
                   if "rename(" in l and f'"{results}/sync.json"' in l)
    assert any(f"fdatasync(" in l and "sync.json.tmp." in l for l in lines[:renamed]), lines
    assert any(l.split("(", 1)[0].endswith("fsync") and f"<{results}>" in l
               for l in lines[renamed:]), lines


# ---- the attempt marker and a killed agent's job (item 14) ----

def test_jobsdir_attempt_marker_is_written_before_the_process_exists(agent, jobs, tmp_path):
    trace = tmp_path / "trace"
    a = agent(prefix=["strace", "-f", "-qq", "-o", str(trace), "-e",
                      "trace=setxattr,lsetxattr,clone,clone3,execve"])
    drop(jobs, "m.json", {"id": "m", "command": "true"})
    result(jobs, "m")
    assert a.stop() == 0
    lines = trace.read_text().splitlines()
    marker = next(i for i, l in enumerate(lines) if "user.drover.attempt" in l)
    job = next(i for i, l in enumerate(lines) if 'execve("/bin/bash"' in l)
    assert marker < job, lines
    # Once the process exists, the marker also says which one it is.
    assert any("user.drover.attempt" in l and '"1 ' in l for l in lines[job:]), lines


def set_subreaper(on):
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


@pytest.mark.parametrize("leader", ["killed", "reaped"])
def test_jobsdir_restart_kills_the_previous_attempt_first(agent, jobs, tmp_path, leader):
    """kill -9 of the agent used to leave attempt 1 running beside attempt 2
    (start1, start2, end1, end2). Now the kernel kills the job's first process
    with its agent (PR_SET_PDEATHSIG), and the restart kills the rest of
    attempt 1's process group, a grandchild too, before attempt 2 starts. The
    leader being dead (a zombie under init, or reaped by us), the group is
    recognised by its members' DROVER_JOB_ID."""
    side, pids = tmp_path / "side", tmp_path / "pids"
    if leader == "reaped":
        set_subreaper(True)  # the dead agent's orphans come to us, to be reaped
    try:
        crashed = agent(expect=-9)
        drop(jobs, "twice.json", {"id": "twice", "command": f"""
            if [ "$DROVER_ATTEMPT" = 1 ]; then
              echo start1 >> {side}
              sh -c 'sleep 300; echo end1 >> {side}' &
              echo "$$ $!" > {pids}.tmp; mv {pids}.tmp {pids}
              sleep 300; echo end1 >> {side}
            else
              for p in $(cat {pids}); do
                s=$(cut -d')' -f2 /proc/$p/stat 2>/dev/null | cut -d' ' -f2)
                [ -z "$s" ] || [ "$s" = Z ] || echo "alive $p" >> {side}
              done
              echo start2 >> {side}; echo end2 >> {side}
            fi"""})
        wait_for(pids.exists, what="attempt 1 running")
        leader_pid, child_pid = map(int, pids.read_text().split())
        crashed.proc.kill()
        crashed.proc.wait()
        if leader == "reaped":
            os.waitpid(leader_pid, 0)  # killed by the kernel with its agent
            assert not os.path.exists(f"/proc/{leader_pid}")
        a = agent()
        r = result(jobs, "twice")
        assert r["status"] == "succeeded" and r["attempt"] == 2
        assert side.read_text().split("\n") == ["start1", "start2", "end2", ""]
        assert gone(child_pid)
        assert "killed what was left of the previous attempt" in a.stderr()
        # sh and the two sleeps: bash, the leader, died with the agent.
        assert "killed what was left of attempt 1: 3 processes" in log_of(jobs, "twice")
    finally:
        if leader == "reaped":
            set_subreaper(False)


def test_jobsdir_restart_never_kills_a_recycled_pid(agent, jobs, tmp_path):
    """The marker names a process group whose leader's start time does not
    match (its pid was given to another process): that process lives on."""
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        running = jobs / "running"
        running.mkdir()
        boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        (running / "old.json").write_text(json.dumps({"id": "old", "command": "true"}))
        (running / "old.json.attempt").write_text(f"1 {other.pid} 1 {boot}\n")
        agent()
        assert result(jobs, "old")["attempt"] == 2
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


# ---- the job's log (item 15) ----

def test_jobsdir_log_escapes_control_bytes(agent, jobs):
    agent()
    drop(jobs, "ctl.json", {"id": "ctl", "kind": "exec", "argv": [
        "printf", "nul\\000esc\\033[31mred\\rcr\\ttab\\\\back\\177del\\nnext\\n"]})
    assert result(jobs, "ctl")["status"] == "succeeded"
    raw = (jobs / "logs" / "ctl.log").read_bytes()
    assert b"\x00" not in raw and b"\x1b" not in raw and b"\r" not in raw and b"\x7f" not in raw
    lines = raw.decode().splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    outs = [line.split(" ", 2)[2] for line in lines if " out " in line]
    assert outs == ["nul\\x00esc\\x1b[31mred\\x0dcr\ttab\\\\back\\x7fdel", "next"]


@pytest.mark.parametrize("command,end", [
    ("true", "succeeded, exit code 0, "),
    ("exit 3", "failed, exit code 3, "),
    ("kill -9 $$", "failed, killed by signal 9 (SIGKILL), "),
])
def test_jobsdir_final_log_line_says_what_the_result_says(agent, jobs, command, end):
    agent()
    drop(jobs, "e.json", {"id": "e", "command": command})
    r = result(jobs, "e")
    last = log_of(jobs, "e").splitlines()[-1].split(" ", 2)[2]
    assert last.startswith(end) and "-1" not in last, last
    if "signal" in end:
        assert r["exit_code"] is None and r["signal"] == 9
    else:
        assert f"exit code {r['exit_code']}," in end


def test_jobsdir_log_size_limit(agent, jobs):
    agent("--max-log-size", "16K")
    drop(jobs, "big.json", {"id": "big", "command": "for i in $(seq 1000); do "
                            "echo line-$i-$(printf %080d 0); done"})
    r = result(jobs, "big")
    assert r["status"] == "succeeded" and r["stdout"]["lines"] == 1000
    log = log_of(jobs, "big")
    written = sum(1 for line in log.splitlines() if " out " in line)
    assert 0 < written < 1000
    assert r["log_dropped_lines"] == 1000 - written
    assert len(log.encode()) < 16 * 1024 + 1024
    assert "the log reached its size limit (16384 bytes)" in log
    assert f"{1000 - written} output lines were not written: the log reached --max-log-size" \
        in log
    drop(jobs, "small.json", {"id": "small", "command": "echo hi"})
    assert "log_dropped_lines" not in result(jobs, "small")


def test_jobsdir_log_short_write_is_completed_then_reported(agent, jobs):
    """Past RLIMIT_FSIZE a write is cut short and the next one fails (EFBIG):
    the long line is written up to the limit and the failure said once; the
    agent lives on (it ignores SIGXFSZ) and the result is written."""
    limit = 200000
    a = agent(prefix=["prlimit", f"--fsize={limit}"])
    drop(jobs, "w.json", {"id": "w", "command":
         "head -c 100000 /dev/zero | tr '\\0' x; echo; head -c 150000 /dev/zero | tr '\\0' y; "
         "echo; echo after"})
    r = result(jobs, "w")
    assert r["status"] == "succeeded"
    assert (jobs / "logs" / "w.log").stat().st_size == limit
    err = a.stderr()
    assert err.count("cannot write job log") == 1 and "File too large" in err
    assert "short write" not in err


def test_jobsdir_job_file_errors_say_bom_and_nul_plainly(agent, jobs):
    agent()
    drop(jobs, "bom.json", b'\xef\xbb\xbf{"command": "true"}')
    drop(jobs, "nul.json", b'{"command": "a\\u0000b"}')
    assert error_text(jobs, "bom.json") == (
        f"error: job file '{jobs}/bom.json': line 1, column 1: the file starts with a byte order "
        "mark (BOM): save it as UTF-8 without a BOM\n")
    err = error_text(jobs, "nul.json")
    assert "a NUL byte (\\u0000) is not allowed in a string" in err
    assert "JSON_ALLOW_NUL" not in err


def test_jobsdir_temporary_files_left_by_a_crash_are_removed(agent, jobs):
    for sub in ("results", "status", "failed", "running"):
        (jobs / sub).mkdir()
        (jobs / sub / "x.json.tmp.4242.7").write_text("{half")
    (jobs / "results" / "keep.json.tmp").write_text("not ours")
    (jobs / "mine.json.tmp.1.2").write_text("the user's")
    a = agent()
    a.wait_log("agent started")
    for sub in ("results", "status", "failed", "running"):
        assert not (jobs / sub / "x.json.tmp.4242.7").exists()
    assert (jobs / "results" / "keep.json.tmp").exists()
    assert (jobs / "mine.json.tmp.1.2").exists()


# ---- fields this version cannot honour, tiny durations (items 20 and 13) ----

def test_jobsdir_reserved_fields_are_refused(agent, jobs, tmp_path):
    agent()
    drop(jobs, "iso.json", '{"command": "touch ' + str(tmp_path / "ran") + '",\n'
         ' "secrets": {"name": "x"}}')
    assert error_text(jobs, "iso.json") == (
        f"error: job file '{jobs}/iso.json': line 2, column 2: \"secrets\" is not supported by "
        "this version of drover: remove it to run the job without it\n")
    assert not (tmp_path / "ran").exists()


def test_jobsdir_tiny_timeout_is_a_limit(agent, jobs):
    agent()
    drop(jobs, "tiny.json", {"id": "tiny", "command": "sleep 10", "timeout": 0.0000001,
                             "kill_grace": 0.0000001})
    r = result(jobs, "tiny", timeout=8)
    assert r["status"] == "timed_out"


# ---- signals ----

@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                                 signal.SIGALRM, signal.SIGRTMIN], ids=lambda s: s.name)
def test_jobsdir_any_stop_signal_shuts_down_gracefully(agent, jobs, tmp_path, sig):
    pidfile = tmp_path / "pid"
    a = agent("--shutdown-timeout", "0s")
    drop(jobs, "long.json", {"id": "long", "kill_grace": "100ms", "command":
         f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 60"})
    wait_for(pidfile.exists, what="job running")
    assert a.stop(sig=sig) == 0
    r = result(jobs, "long", timeout=0)
    assert r["status"] == "cancelled" and r["cancel_reason"] == "agent shutdown"
    assert gone(int(pidfile.read_text()))


# ---- memory figures (item 8: the fix is the executor's) ----

def test_jobsdir_max_rss_is_the_jobs_own_after_a_big_job_file(agent, jobs):
    agent("--max-job-size", "64M")
    drop(jobs, "fat.json", '{"id": "fat", "command": "true", "name": "' + "n" * (50 << 20) + '"}')
    assert result(jobs, "fat")["status"] == "succeeded"
    drop(jobs, "echo.json", {"id": "echo", "command": "echo hi"})
    rss = result(jobs, "echo")["max_rss_kb"]
    assert rss is None or rss < 20 * 1024, rss
