"""Peers that die, stop answering, or shut down gracefully; TLS peers that are refused."""
import signal
import time

import pytest

from rpc_harness import TWIN, Pair, Transport, expect

SERVICE = "/drover.test.v1.Echo/"


def test_rpc_server_killed_mid_stream(fresh_pair):
    """SIGKILL the server during a ServerStream: the client ends with UNAVAILABLE."""
    p = fresh_pair
    c = p.start_call("ServerStream", repeat=200, delay_ms=100, timeout_ms=60000)
    p.wait_replies(c)
    p.server.kill_on_purpose()
    r = c.result(30)
    expect(r, 14, p.server)
    assert 1 <= len(r.replies) < 200, r


def test_rpc_graceful_shutdown(fresh_pair):
    """SIGTERM during a slow ServerStream: the call completes, the server exits 0,
    and a new call then fails with UNAVAILABLE."""
    p = fresh_pair
    c = p.start_call("ServerStream", repeat=5, delay_ms=300, timeout_ms=30000)
    p.wait_replies(c, 1)
    p.server.signal(signal.SIGTERM)
    r = c.result(30)
    expect(r, 0, p.server)
    assert [x["index"] for x in r.replies] == [0, 1, 2, 3, 4], r
    p.server.wait_exit_checked(20)
    r = p.call("Unary", timeout_ms=5000, timeout=30)
    expect(r, 14, p.server)


def _keepalive_server(rpc_env, kind, transport, extra=()):
    return Pair(rpc_env, "srv=ours" if kind == "ours" else "cli=ours", transport,
                rpc_env.start_server(kind, transport, extra))


@pytest.mark.parametrize("transport", ["tcp", "tls"], indirect=True)
def test_rpc_keepalive_healthy_peer(rpc_env, direction, transport):
    """Pings every 500 ms from both ends during a 2 s call: a peer that answers them is
    never dropped (no false keepalive timeout, no GOAWAY for too many pings)."""
    kind = "ours" if direction == "srv=ours" else "grpcio"
    p = _keepalive_server(rpc_env, kind, transport,
                          ["--keepalive-interval", "500", "--keepalive-timeout", "1000"])
    r = p.call("ServerStream", repeat=2, delay_ms=1000, keepalive=(500, 1000), timeout=30)
    expect(r, 0, p.server)
    assert len(r.replies) == 2, r
    assert "keepalive timeout" not in p.server.log(), p.server.tail()
    expect(p.call("Unary", keepalive=(500, 1000)), 0, p.server)
    p.server.stop_checked()


def test_rpc_keepalive_finds_stopped_server(rpc_env, direction, transport):
    """The client pings every 500 ms with a 1 s timeout while waiting on a long call;
    SIGSTOP the server: the call ends with UNAVAILABLE within a few seconds."""
    kind = "ours" if direction == "srv=ours" else "grpcio"
    p = _keepalive_server(rpc_env, kind, transport)
    c = p.start_call("ServerStream", repeat=1000, delay_ms=200, keepalive=(500, 1000))
    p.wait_replies(c)
    p.server.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    r = c.result(20)
    took = time.monotonic() - t0
    expect(r, 14, p.server)
    assert took < 15, f"keepalive took {took:.1f} s to find the stopped server"
    # Woken up (SIGCONT, then SIGTERM), the server finds its client gone and exits 0.
    p.server.stop_checked()


def test_rpc_keepalive_server_finds_stopped_client(rpc_env, transport):
    """Our server pings every 500 ms with a 1 s timeout; a SIGSTOPped grpcio client
    (a process) is found: stderr says "keepalive timeout"."""
    if TWIN:
        pytest.skip("the grpcio twin cannot log keepalive timeouts (development mode only)")
    p = _keepalive_server(rpc_env, "ours", transport,
                          ["--keepalive-interval", "500", "--keepalive-timeout", "1000"])
    c = p.start_call("ServerStream", repeat=1000, delay_ms=200, proc_client=True)
    assert c.first_reply.wait(20) and c.lines, f"no reply within 20 s\n{p.server.tail()}"
    mark = p.server.mark()
    c.proc.send_signal(signal.SIGSTOP)
    assert p.server.wait_log("keepalive timeout", 15, mark), \
        f"our server did not log 'keepalive timeout' within 15 s\n{p.server.tail()}"
    assert p.server.alive(), p.server.tail()
    c.kill()  # the stopped client, the subject of this test: it never ends by itself
    assert c.proc.returncode == -signal.SIGKILL, c.proc.returncode
    expect(p.call("Unary"), 0, p.server)
    p.server.stop_checked()


@pytest.mark.parametrize("transport", ["mtls"], indirect=True)
@pytest.mark.parametrize("who", ["no-cert", "wrong-ca-cert"])
def test_rpc_mtls_refuses_bad_client_cert(pair, rpc_env, who):
    certs = rpc_env.certs
    tls = {"tls_ca": certs["ca"]}
    if who == "wrong-ca-cert":
        key = certs["wrong-client"][:-4] + ".key"
        tls.update(tls_cert=certs["wrong-client"], tls_key=key)
    r = pair.call("Unary", tls=tls, timeout_ms=10000, timeout=30)
    expect(r, 14, pair.server)
    assert not r.replies, r
    # A good client still gets in.
    expect(pair.call("Unary"), 0, pair.server)


@pytest.mark.parametrize("transport", ["tls"], indirect=True)
@pytest.mark.parametrize("case", ["untrusted-ca", "wrong-name", "right-name"])
def test_rpc_tls_server_verification(pair, rpc_env, case):
    certs = rpc_env.certs
    if case == "untrusted-ca":
        r = pair.call("Unary", tls={"tls_ca": certs["wrong-ca"]}, timeout_ms=10000, timeout=30)
        expect(r, 14, pair.server)
    elif case == "wrong-name":
        r = pair.call("Unary", server_name="not-the-server.example", timeout_ms=10000, timeout=30)
        expect(r, 14, pair.server)
    else:
        r = pair.call("Unary", server_name="localhost", timeout_ms=10000, timeout=30)
        expect(r, 0, pair.server)


@pytest.mark.parametrize("transport", ["tcp", "unix"], indirect=True)
def test_rpc_plaintext_client_to_tls_server_fails(rpc_env, direction, transport):
    """A plaintext client against a TLS server fails cleanly (no hang, status 14)."""
    kind = "ours" if direction == "srv=ours" else "grpcio"
    tls_server = rpc_env.shared_server(kind, Transport("tls"))
    p = Pair(rpc_env, direction, transport, tls_server)
    r = p.call("Unary", tls={}, timeout_ms=5000, timeout=30)
    expect(r, 14, p.server)
    expect(p.call("Unary", tls=Transport("tls").client_tls(rpc_env.certs)), 0, p.server)


def test_rpc_server_survives_garbage(rpc_env, transport):
    """Bytes that are not HTTP/2 do not take our server down."""
    import socket
    import ssl
    p = Pair(rpc_env, "srv=ours", transport)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64):
        if transport.name == "unix":
            s = socket.socket(socket.AF_UNIX)
            s.connect(p.target[len("unix:"):])
        else:
            host, port = p.target.rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=5)
        s.settimeout(5)
        try:
            if transport.tls:
                ctx = ssl.create_default_context(cafile=rpc_env.certs["ca"])
                ctx.set_alpn_protocols(["h2"])
                if transport.mtls:
                    ctx.load_cert_chain(rpc_env.certs["client"], rpc_env.certs["client"][:-4] + ".key")
                s = ctx.wrap_socket(s, server_hostname="localhost")
            s.sendall(junk)
            try:
                s.recv(4096)
            except (socket.timeout, OSError):
                pass
        finally:
            s.close()
    expect(p.call("Unary"), 0, p.server)
    assert p.server.alive()


def test_rpc_server_survives_clients_killed_mid_stream(rpc_env, transport):
    """grpcio clients SIGKILLed while our server is writing to them (the server then
    writes into a closed socket: EPIPE, never a fatal SIGPIPE); the server serves on."""
    p = Pair(rpc_env, "srv=ours", transport)
    for _ in range(3):
        c = p.start_call("ServerStream", repeat=1000, payload_size=65536, read_delay_ms=20,
                         proc_client=True, quiet=False)
        assert c.first_reply.wait(20) and c.lines, f"no reply within 20 s\n{p.server.tail()}"
        c.proc.send_signal(signal.SIGKILL)
        assert c.proc.wait(10) == -signal.SIGKILL
        time.sleep(0.2)
        assert p.server.alive(), f"our server died when a client went away\n{p.server.tail()}"
    expect(p.call("Unary"), 0, p.server)


@pytest.mark.parametrize("transport", ["tcp", "unix", "tls"], indirect=True)
def test_rpc_server_connection_churn(rpc_env, transport):
    """100 grpcio channels in a row, one call each, then closed: our server keeps no
    file descriptor or call state from them."""
    import os
    p = Pair(rpc_env, "srv=ours", transport, rpc_env.start_server("ours", transport))
    expect(p.call("Unary"), 0, p.server)
    time.sleep(0.2)
    fds = len(os.listdir(f"/proc/{p.server.pid}/fd"))
    for i in range(100):
        r = p.call("Unary" if i % 2 else "ServerStream", repeat=2)
        expect(r, 0, p.server)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = len(os.listdir(f"/proc/{p.server.pid}/fd"))
        if now <= fds + 2:
            break
        time.sleep(0.1)
    assert now <= fds + 2, f"our server had {fds} fds before 100 closed connections, {now} after"
    p.server.stop_checked()
