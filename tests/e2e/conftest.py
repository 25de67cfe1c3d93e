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
