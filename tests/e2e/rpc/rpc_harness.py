"""Harness and fixtures for the gRPC interop suite: drover-rpc-echo against grpcio,
both ways (conftest.py exports the fixtures; tests import helpers from here).

A `pair` is one server and one client of different makes over one transport:
  srv=ours  drover-rpc-echo serve  <- grpcio client (in this process)
  cli=ours  grpc_echo.py serve (grpc.aio subprocess)  <- drover-rpc-echo call
Both sides implement the same Echo contract and log the same stderr lines, so most
tests run unchanged in both directions. See docs/testing-rpc.md.
"""
import json
import os
import pathlib
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import grpc_echo  # noqa: E402

ROOT = HERE.parents[2]
BUILD = pathlib.Path(os.environ.get("DROVER_BUILD", ROOT / "build-asan"))
PYTHON = "/usr/bin/python3"
GRPC_ECHO = str(HERE / "grpc_echo.py")
MAX_MSG = 16 << 20
SERVICE = "/drover.test.v1.Echo/"
TWIN = os.environ.get("DROVER_RPC_TWIN") == "1"  # development only, see rpc_echo()
STATUS_NAMES = {c.value[0]: c.name for c in grpc_echo.grpc.StatusCode}
SANITIZER_MARKS = ("Sanitizer", "runtime error")


# ---------------------------------------------------------------- session set-up

@pytest.fixture(scope="session")
def rpc_echo():
    """Command of drover's echo test program. Missing binary = build bug: fail."""
    if TWIN:
        # Development only: the grpcio twin stands in for drover, to check the suite.
        return [PYTHON, GRPC_ECHO]
    path = BUILD / "drover-rpc-echo"
    assert path.exists(), f"{path} missing: build it first ('make build-asan' or ninja -C {BUILD})"
    return [str(path)]


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    out = grpc_echo.generate_stubs(tmp_path_factory.mktemp("stubs"))
    os.environ["DROVER_RPC_STUBS"] = str(out)
    return grpc_echo.load_stubs(out)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA, a server cert (SAN localhost, 127.0.0.1), a client cert, and a client
    cert from another CA; EC P-256 keys. Returns {name: path}."""
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "wrong-ca"):
        _openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/O=drover test/CN=drover-test-{ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    leaves = {
        "server": ("ca", "/O=drover test/CN=localhost",
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        "client": ("ca", "/O=drover test/CN=drover-test-client", "extendedKeyUsage=clientAuth\n"),
        "wrong-client": ("wrong-ca", "/O=drover test/CN=drover-test-intruder",
                         "extendedKeyUsage=clientAuth\n"),
    }
    for name, (ca, subj, ext) in leaves.items():
        (d / f"{name}.ext").write_text("basicConstraints=CA:FALSE\n"
                                       "keyUsage=critical,digitalSignature\n" + ext)
        _openssl("req", "-new", *ec, "-subj", subj, "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return {p.stem: str(p) for p in d.glob("*.pem")}


# ---------------------------------------------------------------- transports

class Transport:
    def __init__(self, name):
        self.name = name
        self.tls = name in ("tls", "mtls")
        self.mtls = name == "mtls"

    def __repr__(self):
        return self.name

    def listen(self, sockdir):
        return f"unix:{sockdir}/echo.sock" if self.name == "unix" else "127.0.0.1:0"

    def server_args(self, certs):
        a = []
        if self.tls:
            a += ["--tls-cert", certs["server"], "--tls-key", _key(certs, "server")]
        if self.mtls:
            a += ["--client-ca", certs["ca"]]
        return a

    def client_tls(self, certs):
        """{tls_ca, tls_cert, tls_key} for a client of this transport."""
        if not self.tls:
            return {}
        t = {"tls_ca": certs["ca"]}
        if self.mtls:
            t.update(tls_cert=certs["client"], tls_key=_key(certs, "client"))
        return t


def _key(certs, name):
    return str(pathlib.Path(certs[name]).with_suffix(".key"))


TRANSPORTS = ["tcp", "unix", "tls", "mtls"]
DIRECTIONS = ["srv=ours", "cli=ours"]


def _asan_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


# ---------------------------------------------------------------- processes

class Server:
    """A running echo server (ours or grpcio) with its stderr in a file."""

    def __init__(self, kind, cmd, logpath, timeout=20):
        self.kind, self.cmd, self.logpath = kind, cmd, logpath
        self.checked = False  # stopped and checked by the test
        self.killed_on_purpose = False
        self._log = open(logpath, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log,
                                     env=_asan_env(), start_new_session=True)
        self.pid = self.proc.pid
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if sel.select(0.1):
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    break
                line += ch
        sel.close()
        text = line.decode(errors="replace").strip()
        if not text.startswith("listening "):
            self.kill()
            raise AssertionError(f"{kind} server {cmd} did not print 'listening ADDR' "
                                 f"(got {text!r}); stderr:\n{self.log()[-3000:]}")
        self.addr = text.split(" ", 1)[1]

    def log(self):
        try:
            return pathlib.Path(self.logpath).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self):
        """Position in the log, to look only at what comes after it."""
        return len(self.log())

    def wait_log(self, text, timeout=10, since=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[since:]:
                return True
            time.sleep(0.05)
        return False

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if not self.alive():
            return self.proc.returncode
        os.kill(self.pid, signal.SIGCONT)
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def sanitizer_report(self):
        """Lines of the log where ASan/UBSan/LSan spoke ("" when none)."""
        return "\n".join(ln for ln in self.log().splitlines() if any(m in ln for m in SANITIZER_MARKS))

    def problems(self, rc, how):
        """What is wrong with a server that ended with rc after `how`."""
        out = []
        if rc != 0:
            out.append(f"{self.kind} server {self.cmd} exit code {rc} ({_signame(rc)}) {how}")
        report = self.sanitizer_report()
        if report:
            out.append(f"{self.kind} server {self.cmd}: sanitizer report:\n{report[:2000]}")
        if out:
            out.append(self.tail(3000))
        return out

    def stop_checked(self):
        """Stops the server (SIGTERM) and asserts it exited 0 with no sanitizer report.
        Every test that starts a server of its own ends with this (or kill_on_purpose)."""
        rc = self.stop()
        self.checked = True
        problems = self.problems(rc, "on SIGTERM")
        self.kill()
        assert not problems, "\n".join(problems)

    def wait_exit_checked(self, timeout=20):
        """For a server told to stop by the test: waits for its exit, asserts 0 and no
        sanitizer report."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.kind} server still running {timeout} s after it was "
                                 f"told to stop\n{self.tail()}")
        self.checked = True
        problems = self.problems(rc, "after SIGTERM")
        self.kill()
        assert not problems, "\n".join(problems)

    def kill_on_purpose(self):
        """SIGKILL as the test's subject (a crash the peer must survive). Returns the exit
        code (-9); the log is still checked for sanitizer reports at teardown."""
        assert self.alive(), f"{self.kind} server died before the test killed it\n{self.tail()}"
        os.kill(self.pid, signal.SIGKILL)
        rc = self.proc.wait(10)
        self.killed_on_purpose = True
        assert rc == -signal.SIGKILL, f"{self.kind} server ended with {rc}, not SIGKILL\n{self.tail()}"
        return rc

    def kill(self):
        """Releases the process and its files (SIGKILL if it still runs: cleanup only)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc.stdout.close()
        self._log.close()

    def tail(self, n=2500):
        return f"--- {self.kind} server stderr (tail):\n{self.log()[-n:]}"


class Result:
    """What a client saw: the final JSON line's fields plus the replies."""

    def __init__(self, final, replies, rc=None, stderr="", ctx=""):
        self.final, self.replies, self.rc, self.stderr, self.ctx = final, replies, rc, stderr, ctx
        self.status = final.get("status")
        self.message = final.get("message", "")
        self.headers = final.get("headers") or {}
        self.trailers = final.get("trailers") or {}

    def __repr__(self):
        return (f"Result(status={self.status} {self.final.get('status_name')!r} "
                f"message={self.message!r} rc={self.rc} replies={len(self.replies)} "
                f"final={json.dumps(self.final)[:600]})\n--- client stderr:\n{self.stderr[-2500:]}\n"
                f"{self.ctx}")


def expect(res, status, server=None):
    """Asserts the call status (and, for our client, the matching exit code)."""
    ctx = server.tail() if server else ""
    report = [ln for ln in res.stderr.splitlines() if any(m in ln for m in SANITIZER_MARKS)]
    assert not report, f"sanitizer report from the client:\n" + "\n".join(report[:40]) + f"\n{res!r}"
    assert res.status == status, (f"expected status {status} {STATUS_NAMES.get(status)}, "
                                  f"got {res!r}\n{ctx}")
    if res.rc is not None:
        want = 0 if status == 0 and res.final.get("ok") == res.final.get("calls") else 1
        assert res.rc == want, f"expected exit code {want}, got {res!r}\n{ctx}"


class CliCall:
    """A client call running as a process (drover-rpc-echo call, or the grpcio twin)."""

    def __init__(self, cmd, ctx="", fresh_rss=False):
        self.cmd, self.ctx = cmd, ctx
        if fresh_rss:
            # Linux carries the parent's RSS high-water mark through fork+exec into
            # getrusage(ru_maxrss); a small shell that forks the client resets it.
            cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh"] + list(cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_asan_env(), start_new_session=True)
        self.pid = self.proc.pid
        self.lines, self.times, self.first_reply = [], [], threading.Event()
        self._err = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._te = threading.Thread(target=lambda: self._err.append(self.proc.stderr.read()), daemon=True)
        self._te.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").strip())
            self.times.append(time.monotonic())
            self.first_reply.set()
        self.first_reply.set()

    def result(self, timeout=60):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._t.join(5)
            self._te.join(5)
            err = b"".join(self._err).decode(errors="replace")
            raise AssertionError(f"client {self.cmd} did not finish within {timeout}s; "
                                 f"stdout so far: {self.lines[-5:]}\nstderr:\n{err[-2500:]}\n{self.ctx}")
        self._t.join(10)
        self._te.join(10)
        err = b"".join(self._err).decode(errors="replace")
        final, replies = {}, []
        for ln in self.lines:
            if not ln:
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                raise AssertionError(f"client printed a line that is not JSON: {ln!r}\n"
                                     f"cmd: {self.cmd}\nstderr:\n{err[-2000:]}")
            if "status" in obj:
                final = obj
            else:
                replies.append(obj)
        if not final:
            raise AssertionError(f"client {self.cmd} exited {rc} without a final JSON line; "
                                 f"stdout: {self.lines[-5:]}\nstderr:\n{err[-2500:]}\n{self.ctx}")
        return Result(final, replies, rc, err, self.ctx)

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGCONT)  # its own session: pgid == pid
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


class InprocCall:
    """A grpcio client call run in a thread of this process."""

    def __init__(self, fn, ctx=""):
        self.ctx = ctx
        self.first_reply = threading.Event()
        self._out, self._exc = None, None

        def run():
            try:
                self._out = fn(lambda d: self.first_reply.set())
            except BaseException as e:  # noqa: BLE001 - reported by result()
                self._exc = e
            self.first_reply.set()
        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()

    def result(self, timeout=60):
        self._t.join(timeout)
        assert not self._t.is_alive(), f"grpcio client call did not finish within {timeout}s\n{self.ctx}"
        if self._exc:
            raise self._exc
        replies, final = self._out
        return Result(final, replies, None, "", self.ctx)

    def kill(self):
        pass


def call_args(method, target, tls=None, message="hello", payload_size=0, repeat=0, delay_ms=0,
              fail_code=0, count=1, metadata=(), timeout_ms=None, concurrency=1,
              cancel_after_ms=None, read_delay_ms=0, max_message_size=None,
              keepalive=None, server_name=None, quiet=False, paused_calls=0, connect_timeout=None):
    """The `call` command line of the CLI contract for these options."""
    a = ["call", "--target", target, method, "--message", message]
    tls = tls or {}
    for opt, val in (("--payload-size", payload_size), ("--repeat", repeat), ("--delay-ms", delay_ms),
                     ("--fail-code", fail_code), ("--read-delay-ms", read_delay_ms),
                     ("--paused-calls", paused_calls)):
        if val:
            a += [opt, str(val)]
    if count != 1:
        a += ["--count", str(count)]
    if concurrency != 1:
        a += ["--concurrency", str(concurrency)]
    for k, v in metadata:
        a += ["--metadata", f"{k}={v}"]
    if timeout_ms is not None:
        a += ["--timeout", str(timeout_ms)]
    if cancel_after_ms is not None:
        a += ["--cancel-after-ms", str(cancel_after_ms)]
    if max_message_size:
        a += ["--max-message-size", str(max_message_size)]
    if connect_timeout:
        a += ["--connect-timeout", str(connect_timeout)]
    if keepalive:
        a += ["--keepalive-interval", str(keepalive[0]), "--keepalive-timeout", str(keepalive[1])]
    if tls.get("tls_ca"):
        a += ["--tls-ca", tls["tls_ca"]]
    if tls.get("tls_cert"):
        a += ["--tls-cert", tls["tls_cert"], "--tls-key", tls["tls_key"]]
    if server_name:
        a += ["--server-name", server_name]
    if quiet:
        a.append("--quiet")
    return a


# ---------------------------------------------------------------- the pair

class Env:
    """Starts servers and clients of either make; kills all at teardown."""

    def __init__(self, rpc_echo, stubs, certs, workdir):
        self.rpc_echo, self.pb2, self.certs, self.workdir = rpc_echo, stubs[0], certs, workdir
        self.servers, self.calls, self.cache = [], [], {}
        self.n = 0

    def server_cmd(self, kind):
        return list(self.rpc_echo) if kind == "ours" else [PYTHON, GRPC_ECHO]

    def start_server(self, kind, transport, extra=(), max_message_size=MAX_MSG, listen=None,
                     wrap=()):
        """wrap: a command that runs the server (e.g. in namespaces, ns_wrap())."""
        self.n += 1
        sockdir = tempfile.mkdtemp(prefix="drv-rpc-", dir="/tmp")
        cmd = list(wrap) + self.server_cmd(kind)
        cmd += ["serve", "--listen", listen or transport.listen(sockdir)]
        cmd += transport.server_args(self.certs)
        if max_message_size:
            cmd += ["--max-message-size", str(max_message_size)]
        cmd += list(extra)
        s = Server(kind, cmd, os.path.join(self.workdir, f"server-{self.n}-{kind}-{transport}.log"))
        s.sockdir = sockdir
        self.servers.append(s)
        return s

    def shared_server(self, kind, transport):
        """One long-lived server per (make, transport); restarted if it died."""
        key = (kind, transport.name)
        s = self.cache.get(key)
        if s is None or not s.alive():
            s = self.cache[key] = self.start_server(kind, transport)
        return s

    def close(self):
        """Ends every process; returns what was wrong with our servers and the grpcio
        ones: an exit code other than 0 on SIGTERM, a server that exited on its own,
        a sanitizer report (also in the log of one killed on purpose)."""
        problems = []
        for c in self.calls:
            c.kill()
        for s in self.servers:
            if s.checked:
                pass
            elif s.killed_on_purpose:
                report = s.sanitizer_report()
                if report:
                    problems.append(f"{s.kind} server {s.cmd} (killed by its test): sanitizer "
                                    f"report:\n{report[:2000]}")
            elif s.alive():
                problems += s.problems(s.stop(), "on SIGTERM at the end of the session")
            else:
                problems += s.problems(s.proc.returncode, "on its own (nobody stopped it)") or \
                    [f"{s.kind} server {s.cmd} exited 0 on its own (nobody stopped it)\n{s.tail()}"]
            s.checked = True
            s.kill()
            shutil.rmtree(s.sockdir, ignore_errors=True)
        return problems


class Pair:
    """One server and one client of the other make, over one transport."""

    def __init__(self, env, direction, transport, server=None):
        self.env, self.direction, self.transport = env, direction, transport
        self.ours_server = direction == "srv=ours"
        self.server = server or env.shared_server("ours" if self.ours_server else "grpcio", transport)
        self.target = self.server.addr
        self.tls = transport.client_tls(env.certs)

    def __repr__(self):
        return f"{self.direction}/{self.transport}"

    def start_call(self, method, tls=None, server_name=None, proc_client=False, fresh_rss=False,
                   wrap=(), **kw):
        """Starts a call; .result() gives a Result. The client is grpcio in this process
        when our server is under test, else drover-rpc-echo call (proc_client: the
        grpcio twin as a process, for tests that must stop the client)."""
        tls = self.tls if tls is None else tls
        kw.setdefault("max_message_size", MAX_MSG)
        ctx = self.server.tail()
        if not self.ours_server or proc_client:
            base = self.env.rpc_echo if not self.ours_server else [PYTHON, GRPC_ECHO]
            c = CliCall(list(wrap) + base + call_args(method, self.target, tls, server_name=server_name, **kw), ctx,
                        fresh_rss)
            self.env.calls.append(c)
            return c
        keepalive = kw.pop("keepalive", None) or (None, None)
        mms = kw.pop("max_message_size")
        kw.pop("quiet", None)

        def fn(on_reply):
            ch = grpc_echo.channel_for(self.target, tls.get("tls_ca"), tls.get("tls_cert"),
                                       tls.get("tls_key"), server_name, mms, *keepalive)
            try:
                return grpc_echo.run_call(self.env.pb2, ch, method, on_reply=on_reply, **kw)
            finally:
                ch.close()
        return InprocCall(fn, ctx)

    def wait_replies(self, call, n=2, timeout=20, method="ServerStream"):
        """Waits until the client has been sent n stream replies. Our client's stdout
        may be buffered, so when the server is grpcio ask the server's log instead."""
        if self.ours_server:
            ok = call.first_reply.wait(timeout)
        else:
            ok = self.server.wait_log(f"reply sent method={SERVICE}{method} index={n - 1}", timeout)
        assert ok, f"the client got no stream reply within {timeout} s\n{self.server.tail()}"

    def call(self, method, timeout=60, **kw):
        return self.start_call(method, **kw).result(timeout)

    def channel(self, **kw):
        tls = self.tls
        return grpc_echo.channel_for(self.target, tls.get("tls_ca"), tls.get("tls_cert"),
                                     tls.get("tls_key"), max_message_size=MAX_MSG, **kw)


@pytest.fixture(scope="session")
def rpc_env(rpc_echo, stubs, certs, tmp_path_factory):
    env = Env(rpc_echo, stubs, certs, str(tmp_path_factory.mktemp("rpc-logs")))
    yield env
    problems = env.close()
    assert not problems, "\n".join(problems)


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return Transport(request.param)


@pytest.fixture(params=DIRECTIONS)
def direction(request):
    return request.param


def _died(server):
    return (f"the {server.kind} server died during this test: exit code {server.proc.returncode} "
            f"({_signame(server.proc.returncode)})\n{server.tail()}")


def _signame(rc):
    if rc is not None and rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            pass
    return "exit"


@pytest.fixture
def pair(rpc_env, direction, transport):
    """Shared servers: cheap tests reuse one per (make, transport). A server that dies
    fails the test that was running (the next test gets a new one)."""
    p = Pair(rpc_env, direction, transport)
    yield p
    if not p.server.alive():
        p.server.checked = True  # reported here, not again at the end of the session
        pytest.fail(_died(p.server))


@pytest.fixture
def fresh_pair(rpc_env, direction, transport):
    """A pair with a server of its own, for tests that kill, stop or drain it. Unless
    the test already stopped (or killed) it, it is stopped and checked here."""
    kind = "ours" if direction == "srv=ours" else "grpcio"
    p = Pair(rpc_env, direction, transport, rpc_env.start_server(kind, transport))
    yield p
    if p.server.killed_on_purpose:
        report = p.server.sanitizer_report()
        p.server.checked = True
        assert not report, f"sanitizer report before the kill:\n{report}"
    elif not p.server.checked:
        p.server.stop_checked()
