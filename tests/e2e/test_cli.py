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
