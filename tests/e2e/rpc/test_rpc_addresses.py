"""Names that resolve to several addresses: our server listens on each, our client
tries each in turn. This machine's /etc/hosts maps localhost to 127.0.0.1 only, so
the processes under test run in a mount namespace (unshare -m) whose /etc/hosts also
maps it to ::1; the resolver then lists [::1] first. Tests that take an address
family away run in a network namespace of their own as well (unshare -n)."""
import json
import re
import socket
import subprocess

import pytest

from rpc_harness import TWIN, Pair, Transport, expect

HOSTS = "127.0.0.1 localhost\n::1 localhost\n"


def _ns_works():
    try:
        p = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


NS = _ns_works()
pytestmark = [
    pytest.mark.skipif(not NS, reason="needs unshare -m -n (root): /etc/hosts is replaced in a "
                                      "mount namespace"),
    pytest.mark.skipif(TWIN, reason="tests drover's address handling (development mode only)"),
]


@pytest.fixture
def hosts(tmp_path):
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    return str(path)


def ns_wrap(hosts, net=False, drop=()):
    """A command prefix that runs a program with `hosts` as /etc/hosts; with net, in a
    network namespace of its own whose loopback lacks the addresses in `drop`."""
    script = 'mount --bind "$0" /etc/hosts'
    if net:
        script += " && ip link set lo up"
        for a in drop:
            script += f" && ip addr del {a} dev lo"
    script += ' && exec "$@"'
    return ["unshare", "-m"] + (["-n"] if net else []) + ["sh", "-c", script, hosts]


def ns_enter(pid):
    """A command prefix that runs a program in the namespaces of process pid."""
    return ["nsenter", "-t", str(pid), "-m", "-n"]


def _port(addr):
    return int(addr.rsplit(":", 1)[1])


# ---------------------------------------------------------------- server


@pytest.mark.parametrize("transport", ["tcp", "tls"], indirect=True)
def test_rpc_server_listens_on_every_address(rpc_env, transport, hosts):
    """--listen localhost:0 where localhost is ::1 and 127.0.0.1: one port, both
    addresses answer; the address printed is the first the resolver gave."""
    server = rpc_env.start_server("ours", transport, listen="localhost:0", wrap=ns_wrap(hosts))
    port = _port(server.addr)
    assert server.addr == f"[::1]:{port}", server.addr
    p = Pair(rpc_env, "srv=ours", transport, server)
    for target in (f"127.0.0.1:{port}", f"[::1]:{port}"):
        p.target = target
        r = p.call("Unary", server_name="localhost" if transport.tls else None, timeout_ms=10000)
        expect(r, 0, server)
    server.stop_checked()


@pytest.mark.parametrize("missing", ["::1/128", "127.0.0.1/8"])
def test_rpc_server_skips_a_missing_address_family(rpc_env, hosts, missing):
    """In a network namespace whose loopback lacks one family, --listen localhost:0
    listens on the other, says in its log which address it skipped, and serves (our
    client in the same namespaces calls it by name)."""
    server = rpc_env.start_server("ours", Transport("tcp"), listen="localhost:0",
                                  wrap=ns_wrap(hosts, net=True, drop=[missing]))
    port = _port(server.addr)
    skipped, kept = ((f"[::1]:{port}", f"127.0.0.1:{port}") if missing.startswith("::")
                     else (f"127.0.0.1:{port}", f"[::1]:{port}"))
    assert server.addr == kept, server.addr
    assert server.wait_log(f"listen 'localhost:0': skipping {skipped}: address not available", 10), \
        server.tail()
    p = Pair(rpc_env, "cli=ours", Transport("tcp"), server)
    p.target = f"localhost:{port}"
    r = p.call("Unary", wrap=ns_enter(server.pid), timeout_ms=10000)
    expect(r, 0, server)
    server.stop_checked()


def test_rpc_server_fails_when_no_address_works(rpc_echo, hosts):
    """No address of the name can be bound (a loopback without addresses): serve fails
    with exit 1 and says why."""
    p = subprocess.run(ns_wrap(hosts, net=True, drop=["::1/128", "127.0.0.1/8"]) + rpc_echo +
                       ["serve", "--listen", "localhost:0"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "listening" not in p.stdout, p.stdout
    assert "error: cannot listen on 'localhost:0': address not available" in p.stderr, p.stderr
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr


# ---------------------------------------------------------------- client


@pytest.mark.parametrize("transport", ["tcp", "tls"], indirect=True)
@pytest.mark.parametrize("where", ["127.0.0.1", "::1"])
def test_rpc_client_tries_every_address(rpc_env, transport, hosts, where):
    """A grpcio server on one address only; our client's target is localhost:PORT,
    which resolves to [::1] then 127.0.0.1: the call succeeds either way."""
    listen = f"[{where}]:0" if ":" in where else f"{where}:0"
    server = rpc_env.start_server("grpcio", transport, listen=listen)
    p = Pair(rpc_env, "cli=ours", transport, server)
    p.target = f"localhost:{_port(server.addr)}"
    r = p.call("ServerStream", repeat=3, wrap=ns_wrap(hosts), timeout_ms=10000)
    expect(r, 0, server)
    assert [x["index"] for x in r.replies] == [0, 1, 2], r
    server.stop_checked()


def _bound_not_listening():
    """A port bound on 127.0.0.1 and ::1 where nobody listens (connects are refused)."""
    for _ in range(20):
        a = socket.socket(socket.AF_INET)
        a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET6)
        try:
            b.bind(("::1", a.getsockname()[1]))
        except OSError:
            a.close()
            b.close()
            continue
        return a.getsockname()[1], [a, b]
    pytest.fail("no port free on both 127.0.0.1 and ::1")


def test_rpc_client_says_what_it_tried(rpc_echo, hosts):
    """Nobody listens on either address: status 14, and the message and the log name
    every address tried and why it failed."""
    port, socks = _bound_not_listening()
    try:
        p = subprocess.run(ns_wrap(hosts) + rpc_echo + ["call", "--target", f"localhost:{port}",
                                                        "Unary", "--timeout", "10000"],
                           capture_output=True, text=True, timeout=60)
    finally:
        for s in socks:
            s.close()
    tried = f"[::1]:{port} (connection refused), 127.0.0.1:{port} (connection refused)"
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    final = json.loads(p.stdout.strip().splitlines()[-1])
    assert final["status"] == 14, final
    assert final["message"] == f"cannot connect to 'localhost:{port}': tried {tried}", final
    assert f'connect failed target=localhost:{port} tried="{tried}"' in p.stderr, p.stderr
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr


def test_rpc_client_gives_up_on_a_silent_address(rpc_env, hosts):
    """[::1]:PORT takes no connection (a listener whose backlog is full: SYNs go
    unanswered, as on a black-holed route); the grpcio server is on 127.0.0.1:PORT.
    With --connect-timeout 4000, our client gives [::1] its share (2 s), then connects
    to 127.0.0.1 within the same 4 s."""
    server = rpc_env.start_server("grpcio", Transport("tcp"), listen="127.0.0.1:0")
    port = _port(server.addr)
    hole = socket.socket(socket.AF_INET6)
    try:
        hole.bind(("::1", port))
    except OSError as e:
        pytest.skip(f"[::1]:{port} is taken: {e}")
    hole.listen(0)
    filler = socket.create_connection(("::1", port), timeout=5)  # fills the backlog
    try:
        p = Pair(rpc_env, "cli=ours", Transport("tcp"), server)
        p.target = f"localhost:{port}"
        c = p.start_call("Unary", wrap=ns_wrap(hosts), connect_timeout=4000)
        r = c.result(60)
    finally:
        filler.close()
        hole.close()
    expect(r, 0, server)
    server.stop_checked()


def _black_hole(family, host, port):
    """A listener on host:port whose backlog is full: further SYNs go unanswered."""
    hole = socket.socket(family)
    hole.bind((host, port))
    hole.listen(0)
    filler = socket.create_connection((host, port), timeout=5)
    return [filler, hole]


def test_rpc_client_connect_timeout_names_silent_addresses(rpc_echo, hosts):
    """Neither address answers: within --connect-timeout 3000 the call fails with
    status 14, naming both addresses and how long each was given."""
    port, socks = _bound_not_listening()
    for s in socks:
        s.close()
    try:
        holes = _black_hole(socket.AF_INET6, "::1", port) + \
            _black_hole(socket.AF_INET, "127.0.0.1", port)
    except OSError as e:
        pytest.skip(f"port {port} was taken meanwhile: {e}")
    try:
        p = subprocess.run(ns_wrap(hosts) + rpc_echo + ["call", "--target", f"localhost:{port}",
                                                        "Unary", "--connect-timeout", "3000"],
                           capture_output=True, text=True, timeout=60)
    finally:
        for s in holes:
            s.close()
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    final = json.loads(p.stdout.strip().splitlines()[-1])
    assert final["status"] == 14, final
    # [::1] had half of what was left once the name was resolved; 127.0.0.1 the rest.
    m = re.fullmatch(rf"cannot connect to 'localhost:{port}' within 3000 ms: tried "
                     rf"\[::1\]:{port} \(no answer within (\d+) ms\), "
                     rf"127\.0\.0\.1:{port} \(no answer\)", final["message"])
    assert m and 1000 <= int(m.group(1)) <= 1500, final
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
