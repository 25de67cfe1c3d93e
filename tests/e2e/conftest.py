"""Shared fixtures for drover's end-to-end tests: real binaries, real files."""
import os
import pathlib
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("DROVER_BUILD", ROOT / "build-asan"))


@pytest.fixture(scope="session")
def build_dir():
    return BUILD


@pytest.fixture(scope="session")
def drover(build_dir):
    path = build_dir / "drover"
    assert path.exists(), f"{path} missing: run 'make build-asan' first"
    return str(path)
