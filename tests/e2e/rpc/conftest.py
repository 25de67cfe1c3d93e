"""pytest fixtures of the gRPC interop suite; the harness lives in rpc_harness.py."""
from rpc_harness import (  # noqa: F401 - fixtures are found by name
    certs, direction, fresh_pair, pair, rpc_echo, rpc_env, stubs, transport)
