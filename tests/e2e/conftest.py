"""Shared fixtures for drover's end-to-end tests: real binaries, real files."""
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
BUILD = pathlib.Path(os.environ.get("DROVER_BUILD", ROOT / "build-asan"))


@pytest.fixture(scope="session")
def build_dir():
    return BUILD


@pytest.fixture(scope="session")
def drover(build_dir):
    path = build_dir / "drover"
    assert path.exists(), f"{path} missing: run 'make build-asan' first"
    return str(path)


@pytest.fixture
def cluster(tmp_path):
    """Processes of a control-plane test (tests/e2e/cluster.py); all are
    stopped and checked (exit code, sanitizer reports) when the test ends."""
    from cluster import Cluster
    c = Cluster(tmp_path)
    yield c
    c.close()


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """grpcio stubs for proto/drover/v1: pb.jobs, pb.jobs_grpc, pb.agent, pb.agent_grpc."""
    from cluster import generate_stubs, load_stubs
    return load_stubs(generate_stubs(tmp_path_factory.mktemp("stubs")))


# A runner's job groups must be empty once it is gone: its watchdog
# (sbx_watchdog) kills what a runner killed with SIGKILL left in them, and a
# runner whose watchdog was killed too is swept by its next life. At its end
# the suite checks the drover groups it made: a process still in one is a
# bug, which fails the run (after the process is killed, so that it does not
# outlive the suite). Empty groups of agents never started again are removed.
CGROUP_ROOTS = [pathlib.Path("/sys/fs/cgroup/unified")] + [
    pathlib.Path("/sys/fs/cgroup") / h for h in ("memory", "pids", "cpu", "cpuacct", "freezer")]


def _drover_bases():
    found = set()
    for root in CGROUP_ROOTS:
        if root.is_dir():
            for depth in ("drover-*", "*/drover-*", "*/*/drover-*"):
                found.update(p for p in root.glob(depth) if p.is_dir())
    return found


def pytest_sessionstart(session):
    session.config._drover_cgroups_before = _drover_bases()


def _populated(group):
    try:
        return "populated 1" in (group / "cgroup.events").read_text()
    except OSError:
        return False


def pytest_sessionfinish(session, exitstatus):
    import time
    before = getattr(session.config, "_drover_cgroups_before", set())
    new = sorted(_drover_bases() - before, key=lambda p: -len(p.parts))
    killed, left = [], []
    for base in new:
        for child in base.iterdir():
            if child.is_dir() and _populated(child) and (child / "cgroup.kill").exists():
                killed.append(child.name)
                (child / "cgroup.kill").write_text("1")
                deadline = time.monotonic() + 5
                while _populated(child) and time.monotonic() < deadline:
                    time.sleep(0.01)
    for base in new:
        for child in list(base.iterdir()):
            if child.is_dir():
                try:
                    child.rmdir()
                except OSError:
                    left.append(str(child))
        try:
            base.rmdir()
        except OSError:
            left.append(str(base))
    if killed:
        print(f"\nconftest: processes outlived their runner in job cgroups {killed[:10]} "
              "(killed now); a runner's watchdog or its next life should have", file=sys.stderr)
        session.exitstatus = 1
    if left:
        print(f"\nconftest: cgroups that could not be removed: {left[:10]}", file=sys.stderr)
