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
# dir leave their job cgroups and base groups behind: only the next life of
# that agent would sweep them, killing what is in them (a job's grandchild
# outlives a killed agent until then: PR_SET_PDEATHSIG reaches the job's first
# process only). The suite does what that next life would: it kills what is
# left in the groups it made (cgroup.kill) and removes them, so a run leaves
# the machine as it found it, and says which groups still held processes.
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
        print(f"\nconftest: killed what was left in job cgroups of killed agents: {killed[:10]}",
              file=sys.stderr)
    if left:
        print(f"\nconftest: cgroups that could not be removed: {left[:10]}", file=sys.stderr)
