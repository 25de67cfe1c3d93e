"""Harness for the control-plane tests: real `drover server`, `drover agent`,
`drover dev` and CLI processes on loopback, a TCP proxy the test controls, and
grpcio stubs built from proto/drover/v1 (an independent gRPC peer: the fake agent
and API clients below are Debian's grpcio, not drover's code).

Every process started here is stopped by the test's fixture, and its exit status
and stderr (sanitizer reports) are checked: see Proc.check().
"""
import asyncio
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("DROVER_BUILD", ROOT / "build-asan"))
DROVER = str(BUILD / "drover")
SANITIZER = re.compile(r"Sanitizer|runtime error|LeakSanitizer")


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    env.update(extra or {})
    return env


def wait_for(pred, timeout=30, what="condition", interval=0.02):
    """Polls pred() until it returns a true value (returned) or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A drover process with its stderr in a file; check() asserts how it ended."""

    def __init__(self, args, logdir, name, env=None, stdin=subprocess.DEVNULL, stdout=None):
        self.name = name
        self.args = args
        self.errpath = pathlib.Path(logdir) / f"{name}.stderr"
        self.outpath = pathlib.Path(logdir) / f"{name}.stdout"
        self.err = open(self.errpath, "ab")
        self.out = open(self.outpath, "ab") if stdout is None else stdout
        self.proc = subprocess.Popen(args, stdin=stdin, stdout=self.out, stderr=self.err,
                                     env=clean_env(env))
        self.expect = {0}
        self.killed = False

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        self.err.flush()
        return self.errpath.read_text(errors="replace")

    def stdout(self):
        if hasattr(self.out, "flush"):
            self.out.flush()
        return self.outpath.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def kill9(self):
        """kill -9 on purpose: the test's subject; the exit is then -9."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def wait_log(self, pattern, timeout=30, start=0):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.stderr(), start), timeout, f"{self.name}: /{pattern}/")

    def check(self):
        """Stops the process if it runs; asserts its exit code and a clean stderr."""
        if self.proc.poll() is None:
            self.stop()
        err = self.stderr()
        self.err.close()
        assert not SANITIZER.search(err), f"{self.name}: sanitizer report:\n{err[-8000:]}"
        if self.killed:
            assert self.proc.returncode == -signal.SIGKILL
        else:
            assert self.proc.returncode in self.expect, \
                f"{self.name} exited {self.proc.returncode}:\n{err[-4000:]}"


class Cluster:
    """Starts and tracks the processes of one test."""

    def __init__(self, tmp):
        self.tmp = pathlib.Path(tmp)
        self.procs = []
        self.proxies = []
        self.n = 0

    def start(self, args, name, **kw):
        self.n += 1
        p = Proc([DROVER, *args], self.tmp, f"{self.n:02d}-{name}", **kw)
        self.procs.append(p)
        return p

    def server(self, *args, data=None, node_timeout="60s", listen="127.0.0.1:0"):
        data = data or self.tmp / "data"
        p = self.start(["server", "--listen", listen, "--data", str(data),
                        "--node-timeout", node_timeout, "--log-level", "debug", *args], "server")
        line = wait_for(lambda: re.search(r"listening on (\S+)", p.stdout()) or
                        (not p.alive() and pytest.fail(f"server died:\n{p.stderr()}")),
                        what="server to listen")
        p.addr = line.group(1)
        p.data = data
        return p

    def cli(self, addr, *args, timeout=60, input=None, env=None, check=None):
        """Runs `drover <args> --addr addr` to completion; returns CompletedProcess
        (text). Sanitizer output fails the test."""
        full = [DROVER, *args[:2], "--addr", addr, *args[2:]] if len(args) >= 2 else \
            [DROVER, *args, "--addr", addr]
        r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input,
                           env=clean_env(env))
        assert not SANITIZER.search(r.stderr), r.stderr
        if check is not None:
            assert r.returncode == check, f"{full} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r

    def token(self, addr, uses=1):
        r = self.cli(addr, "token", "create", "--uses", str(uses), check=0)
        return r.stdout.strip()

    def agent(self, addr, token, name="a1", *args, state=None, slots=2):
        state = state or self.tmp / f"agent-{name}"
        p = self.start(["agent", "--coordinator", addr, "--token", token, "--name", name,
                        "--state-dir", str(state), "--slots", str(slots),
                        "--log-level", "debug", *args], f"agent-{name}")
        p.state = state
        return p

    def proxy(self, target):
        px = Proxy(target)
        self.proxies.append(px)
        return px

    def close(self):
        for px in self.proxies:
            px.close()
        errors = []
        # Agents first, then the server: an agent's graceful exit needs it.
        for p in sorted(self.procs, key=lambda p: "server" in p.name):
            try:
                p.check()
            except AssertionError as e:
                errors.append(str(e))
        assert not errors, "\n\n".join(errors)


class Proxy:
    """A TCP proxy on 127.0.0.1 in a thread. cut() aborts every connection and
    refuses new ones (RST) until restore()."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.loop = asyncio.new_event_loop()
        self.cut_flag = False
        self.conns = set()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)
        self.addr = f"127.0.0.1:{self.port}"

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(main())
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        if self.cut_flag:
            writer.transport.abort()
            return
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, uw)
        self.conns.add(pair)

        async def pipe(r, w):
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))
        self.conns.discard(pair)

    def _call(self, fn):
        done = threading.Event()

        def run():
            fn()
            done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(10)

    def cut(self):
        def do():
            self.cut_flag = True
            for a, b in list(self.conns):
                a.transport.abort()
                b.transport.abort()
        self._call(do)

    def restore(self):
        def do():
            self.cut_flag = False
        self._call(do)

    def close(self):
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ---------------------------------------------------------------- grpcio stubs

def generate_stubs(out):
    """Python modules for proto/drover/v1, made with Debian's grpc_tools."""
    out = pathlib.Path(out)
    from grpc_tools import protoc
    import grpc_tools
    inc = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{inc}", f"--python_out={out}",
            f"--grpc_python_out={out}", "drover/v1/jobs.proto", "drover/v1/agent.proto"]
    assert protoc.main(args) == 0, "protoc failed on proto/drover/v1"
    # drover/ stays a namespace package (no __init__.py), as in the Echo stubs
    # of tests/e2e/rpc: both then import in one pytest session.
    (out / "drover" / "v1" / "__init__.py").touch()
    return out


def load_stubs(out):
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    from drover.v1 import agent_pb2, agent_pb2_grpc, jobs_pb2, jobs_pb2_grpc
    return type("Stubs", (), dict(agent=agent_pb2, agent_grpc=agent_pb2_grpc, jobs=jobs_pb2,
                                  jobs_grpc=jobs_pb2_grpc))
