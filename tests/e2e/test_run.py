"""`drover run`: one job here and now; output live, the job's exit code."""
import json
import os
import signal
import subprocess
import time

import pytest


def run(drover, *args, env=None, timeout=60, **kw):
    full_env = dict(os.environ)
    for k in list(full_env):
        if k.startswith("DROVER_") and k != "DROVER_BUILD":
            del full_env[k]
    full_env.update(env or {})
    return subprocess.run([drover, "run", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, **kw)


def test_run_exit_code_passes_through(drover):
    assert run(drover, "--", "true").returncode == 0
    assert run(drover, "--", "exit 3").returncode == 3


def test_run_signal_exit_is_128_plus_n(drover):
    r = run(drover, "--", "kill -KILL $$")
    assert r.returncode == 128 + signal.SIGKILL


def test_run_timeout_exits_124_quickly(drover):
    start = time.monotonic()
    r = run(drover, "--timeout", "300ms", "--", "sleep 30")
    assert r.returncode == 124
    assert time.monotonic() - start < 15


def test_run_stdout_and_stderr_are_separate(drover):
    r = run(drover, "--", "echo out; echo err >&2; printf 'no newline'")
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["out", "no newline"]
    assert r.stderr == "err\n"   # no "$ command" header, no log lines


def test_run_output_is_complete_and_in_order(drover):
    r = run(drover, "--", "seq 1 50000")
    assert r.returncode == 0
    assert r.stdout == "".join(f"{i}\n" for i in range(1, 50001))


def test_run_env_is_set(drover):
    r = run(drover, "--env", "FOO=bar baz", "-e", "EMPTY=", "--", 'echo "$FOO|$EMPTY|${EMPTY+set}"')
    assert r.stdout == "bar baz||set\n"


def test_run_bad_env_is_usage_error(drover):
    r = run(drover, "--env", "NOEQUALS", "--", "true")
    assert r.returncode == 2
    assert "NOEQUALS" in r.stderr


def test_run_workdir(drover, tmp_path):
    r = run(drover, "--workdir", str(tmp_path), "--", "pwd")
    assert r.returncode == 0
    assert r.stdout.strip() == str(tmp_path)


def test_run_missing_workdir_exits_125_with_error(drover, tmp_path):
    missing = tmp_path / "nope"
    r = run(drover, "--workdir", str(missing), "--", "true")
    assert r.returncode == 125
    assert r.stderr.startswith("error: ")
    assert str(missing) in r.stderr


def test_run_missing_program_exits_125(drover):
    r = run(drover, "--exec", "--", "/nonexistent/program", "x")
    assert r.returncode == 125
    assert "/nonexistent/program" in r.stderr


def test_run_exec_does_not_use_a_shell(drover):
    r = run(drover, "--exec", "--", "echo", "$HOME", "*", "a;b")
    assert r.returncode == 0
    assert r.stdout == "$HOME * a;b\n"


def test_run_shell_joins_words(drover):
    r = run(drover, "--shell", "--", "echo", "$((1+2))", "|", "tr", "3", "x")
    assert r.stdout == "x\n"


def test_run_one_word_is_a_shell_line(drover):
    r = run(drover, "--", "echo $((1+2)) | tr 3 x; exit 4")
    assert r.returncode == 4
    assert r.stdout == "x\n"


def test_run_several_words_keep_their_meaning(drover):
    # Not joined into one bash line: 'exit 3' stays one argument.
    r = run(drover, "--", "sh", "-c", "exit 3")
    assert r.returncode == 3
    r = run(drover, "--", "printf", "%s|", "a b", "$HOME", "*")
    assert r.stdout == "a b|$HOME|*|"
    # Many words: each one an argument, no shell line to grow.
    words = [str(i) for i in range(1, 30001)]
    r = run(drover, "--", "echo", *words)
    assert r.returncode == 0
    assert r.stdout == " ".join(words) + "\n"


def test_run_exec_forces_argv_for_one_word(drover):
    r = run(drover, "--exec", "--", "echo hi")
    assert r.returncode == 125  # no program called "echo hi"
    assert "'echo hi'" in r.stderr


def test_run_exec_and_shell_together_is_usage_error(drover):
    r = run(drover, "--exec", "--shell", "--", "true")
    assert r.returncode == 2
    assert "--exec" in r.stderr and "--shell" in r.stderr
    assert "usage: drover run" in r.stderr


def test_run_exec_header_is_shell_quoted(drover):
    r = run(drover, "--log-level", "debug", "--", "printf", "%s\\n", "it's", "a b")
    assert r.stdout == "it's\na b\n"
    assert "$ printf '%s\\n' 'it'\\''s' 'a b'\n" in r.stderr


def test_run_json_prints_result_and_keeps_exit_code(drover):
    r = run(drover, "--json", "--", "echo hi; echo oops >&2; exit 3")
    assert r.returncode == 3
    lines = r.stdout.splitlines()
    assert lines[0] == "hi"
    doc = json.loads(lines[-1])
    assert doc["status"] == "failed"
    assert doc["exit_code"] == 3
    assert doc["stdout"] == {"lines": 1, "bytes": 3}
    assert doc["stderr"]["lines"] == 1
    assert doc["started_at"].endswith("Z") and doc["finished_at"]
    assert doc["duration_ms"] >= 0
    assert doc["attempt"] == 1
    assert len(doc["id"]) == 36


def test_run_json_timeout(drover):
    r = run(drover, "--json", "--timeout", "200ms", "--", "sleep 20")
    assert r.returncode == 124
    assert json.loads(r.stdout.splitlines()[-1])["status"] == "timed_out"


def _start_sleeper(drover, extra=(), script="echo $$; exec sleep 30"):
    p = subprocess.Popen([drover, "run", *extra, "--", script], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    return p, pid


def _wait_for(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_run_ctrl_c_stops_the_job(drover):
    p, child = _start_sleeper(drover)
    try:
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=15) == 130
        assert time.monotonic() - start < 15
        assert _gone(child)
    finally:
        p.kill()
        p.wait()


def test_run_sigterm_stops_the_job(drover):
    p, child = _start_sleeper(drover)
    try:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 128 + signal.SIGTERM
        assert _gone(child)
    finally:
        p.kill()
        p.wait()


def test_run_second_signal_kills_without_grace(drover, tmp_path):
    # The job survives SIGTERM (its trap notes it and goes on); the grace is
    # long; the second Ctrl-C ends it.
    marker = tmp_path / "term"
    p, child = _start_sleeper(drover, ("--kill-grace", "60s"),
                              f"trap 'echo > {marker}' TERM; echo $$;"
                              " while :; do sleep 0.1; done; echo survived")
    try:
        p.send_signal(signal.SIGINT)
        _wait_for(marker.exists)  # drover handled the first Ctrl-C: the job got TERM
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=15) == 130
        assert "survived" not in p.stdout.read()
        assert _gone(child)
    finally:
        p.kill()
        p.wait()


def test_run_reader_going_away_stops_the_job(drover):
    r = subprocess.run(["bash", "-c", f"'{drover}' run -- yes | head -n 2; echo ${{PIPESTATUS[0]}}"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "y\ny\n141\n"  # 128 + SIGPIPE, as the job itself would die


def test_run_bad_flag_prints_usage_and_exits_2(drover):
    r = run(drover, "--frobnicate", "--", "true")
    assert r.returncode == 2
    assert "frobnicate" in r.stderr
    assert "usage: drover run" in r.stderr


def test_run_bad_timeout_names_the_flag(drover):
    r = run(drover, "--timeout", "abc", "--", "true")
    assert r.returncode == 2
    assert '--timeout "abc"' in r.stderr


def test_run_without_command_is_usage_error(drover):
    r = run(drover)
    assert r.returncode == 2
    assert "no command" in r.stderr


def test_run_help(drover):
    r = run(drover, "--help")
    assert r.returncode == 0
    assert "usage: drover run" in r.stdout
    assert "--timeout" in r.stdout and "DROVER_TIMEOUT" in r.stdout


def test_run_help_after_the_command_belongs_to_the_command(drover):
    # Options end at the first word of the command, as in `env` or `nice`.
    r = run(drover, "--timeout", "5s", "printf", "%s", "--help")
    assert r.returncode == 0
    assert r.stdout == "--help"


def test_run_options_from_env_and_config_file(drover, tmp_path):
    cfg = tmp_path / "drover.yaml"
    cfg.write_text("run:\n  timeout: 200ms\n")
    job = ("--", "sleep 2")
    # The file alone: times out.
    assert run(drover, "--config", str(cfg), *job).returncode == 124
    assert run(drover, *job, env={"DROVER_CONFIG": str(cfg)}).returncode == 124
    # The environment wins over the file ...
    r = run(drover, "--config", str(cfg), "--", "sleep 0.3", env={"DROVER_TIMEOUT": "30s"})
    assert r.returncode == 0
    # ... and a flag over both.
    r = run(drover, "--config", str(cfg), "--timeout", "100ms", *job,
            env={"DROVER_TIMEOUT": "30s"})
    assert r.returncode == 124


def test_run_bad_env_value_names_the_variable(drover):
    r = run(drover, "--", "true", env={"DROVER_TIMEOUT": "soon"})
    assert r.returncode == 2
    assert "DROVER_TIMEOUT" in r.stderr and "soon" in r.stderr


def test_run_debug_shows_the_command_header(drover):
    r = run(drover, "--log-level", "debug", "--", "echo hi")
    assert r.stdout == "hi\n"
    assert "echo hi" in r.stderr
