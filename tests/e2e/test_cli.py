"""The drover binary itself: version, usage, unknown commands."""
import subprocess


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


def test_version(drover):
    r = run(drover, "version")
    assert r.returncode == 0
    assert r.stdout.startswith("drover ")


def test_unknown_command_prints_usage(drover):
    r = run(drover, "frobnicate")
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr
    assert "usage: drover" in r.stderr


def test_help_lists_commands(drover):
    r = run(drover, "--help")
    assert r.returncode == 0
    assert "run " in r.stdout and "agent " in r.stdout


def test_agent_without_jobs_dir_names_the_flag(drover):
    r = run(drover, "agent")
    assert r.returncode == 2
    assert "--jobs-dir" in r.stderr


def test_agent_help(drover):
    r = run(drover, "agent", "--help")
    assert r.returncode == 0
    assert "usage: drover agent" in r.stdout
    assert "--shutdown-timeout" in r.stdout and "DROVER_SLOTS" in r.stdout


def test_agent_bad_slots_is_usage_error(drover, tmp_path):
    r = run(drover, "agent", "--jobs-dir", str(tmp_path), "--slots", "0")
    assert r.returncode == 2
    assert '--slots "0"' in r.stderr
    assert "usage: drover agent" in r.stderr


def test_agent_unusable_jobs_dir_is_an_error(drover, tmp_path):
    f = tmp_path / "file"
    f.write_text("not a folder")
    r = run(drover, "agent", "--jobs-dir", str(f))
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and str(f) in r.stderr
