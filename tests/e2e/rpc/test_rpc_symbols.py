"""src/rpc exports nothing but rpc_* names (the module prefix of CONVENTIONS.md):
internal helpers shared between its files are rpc_-prefixed too, the rest static."""
import re
import subprocess

import pytest

from rpc_harness import BUILD, TWIN


def test_rpc_exports_only_prefixed_names():
    if TWIN:
        pytest.skip("checks drover's build, not the grpcio twin")
    lib = BUILD / "libdrover_core.a"
    assert lib.exists(), f"{lib} missing: build it first ('make build-asan')"
    out = subprocess.run(["nm", "-g", "--defined-only", str(lib)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    member, seen, bad = None, 0, []
    for line in out.splitlines():
        if line.endswith(":"):
            member = line[:-1]
            continue
        parts = line.split()
        if not member or len(parts) != 3 or not re.search(r"src_rpc_\w+\.c\.o$", member):
            continue
        seen += 1
        if not parts[2].startswith("rpc_"):
            bad.append(f"{member.rsplit('/', 1)[-1]}: {parts[2]}")
    assert seen > 50, f"found only {seen} symbols of src/rpc in {lib}: nm output changed?"
    assert not bad, "global symbols of src/rpc without the rpc_ prefix:\n" + "\n".join(bad)
