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


# Agents the tests kill with SIGKILL and never start again on the same state
# dir leave their (empty) job cgroups and base groups behind: only the next
# life of that agent would sweep them. The suite removes the empty ones it
# made, so a run leaves the machine's cgroup trees as it found them. A group
# that still holds a process is left alone (rmdir refuses it) and reported.
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


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_drover_cgroups_before", set())
    left = []
    for base in sorted(_drover_bases() - before, key=lambda p: -len(p.parts)):
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
    if left:
        print(f"\nconftest: cgroups that still hold processes, left in place: {left[:10]}",
              file=sys.stderr)
