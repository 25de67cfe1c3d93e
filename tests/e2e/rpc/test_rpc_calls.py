"""The four call types, metadata, status codes and unknown methods, both directions."""
import json
import socket
import subprocess

import grpc
import pytest

from rpc_harness import STATUS_NAMES, TWIN, Pair, expect

SERVICE = "/drover.test.v1.Echo/"


def test_rpc_unary(pair):
    r = pair.call("Unary", message="hi there", payload_size=1000)
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 0, "message": "hi there", "payload_len": 1000}], r
    # An empty request is a zero-length gRPC message; so is its reply.
    r = pair.call("Unary", message="")
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 0, "message": "", "payload_len": 0}], r


def test_rpc_server_stream(pair):
    r = pair.call("ServerStream", message="s", payload_size=10, repeat=5)
    expect(r, 0, pair.server)
    assert r.replies == [{"index": i, "message": "s", "payload_len": 10} for i in range(5)], r
    # repeat 0 means one reply
    r = pair.call("ServerStream", message="one")
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 0, "message": "one", "payload_len": 0}], r


def test_rpc_client_stream(pair):
    r = pair.call("ClientStream", message="a", payload_size=7, count=3)
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 3, "message": "a,a,a", "payload_len": 21}], r


def test_rpc_bidi(pair):
    r = pair.call("Bidi", message="b", payload_size=3, count=4)
    expect(r, 0, pair.server)
    assert r.replies == [{"index": i, "message": "b", "payload_len": 3} for i in range(4)], r


def test_rpc_bidi_many_messages(pair):
    """2,000 messages each way on one stream, in order (deframing across DATA frames)."""
    r = pair.call("Bidi", message="m", payload_size=100, count=2000, quiet=True, timeout=90)
    expect(r, 0, pair.server)
    assert r.final["replies"] == 2000, r
    if pair.ours_server:
        assert [x["index"] for x in r.replies] == list(range(2000)), r


def test_rpc_metadata_round_trip(pair):
    md = [("x-request-id", "r-42"), ("x-trailer-checksum", "abc123"),
          ("authorization", "Bearer tok.en"), ("other-key", "not-echoed")]
    for method in ("Unary", "ServerStream", "Bidi"):
        r = pair.call(method, metadata=md)
        expect(r, 0, pair.server)
        h, t = r.headers, r.trailers
        assert h.get("x-request-id") == "r-42", (method, r)
        assert h.get("x-trailer-checksum") == "abc123", (method, r)
        assert h.get("x-authorization") == "Bearer tok.en", (method, r)
        assert "other-key" not in h and "authorization" not in h, (method, r)
        assert t.get("x-trailer-checksum") == "abc123", (method, r)
        assert "x-request-id" not in t, (method, r)
        if pair.transport.mtls:
            assert "drover-test-client" in h.get("x-peer-subject", ""), (method, r)
        else:
            assert "x-peer-subject" not in h, (method, r)


def test_rpc_metadata_on_failed_call(pair):
    r = pair.call("Unary", fail_code=9, metadata=[("x-trailer-why", "because")])
    expect(r, 9, pair.server)
    assert r.trailers.get("x-trailer-why") == "because", r


def test_rpc_every_status_code(pair):
    wrong = []
    for code in range(1, 17):
        r = pair.call("Unary", fail_code=code)
        if r.status != code or r.message != f"requested failure {code}" or r.replies \
                or (r.rc is not None and r.rc != 1):
            wrong.append(f"fail_code {code} ({STATUS_NAMES[code]}): {r!r}")
    # A failure from a streaming method, before any reply.
    r = pair.call("ServerStream", fail_code=13, repeat=3)
    if r.status != 13 or r.message != "requested failure 13" or r.replies:
        wrong.append(f"ServerStream fail_code 13: {r!r}")
    assert not wrong, "\n".join(wrong) + "\n" + pair.server.tail()


def test_rpc_cancel_me(pair):
    """The server cancels a call whose message is "cancel-me"; the client sees CANCELLED."""
    r = pair.call("Unary", message="cancel-me")
    expect(r, 1, pair.server)
    assert not r.replies, r
    r = pair.call("Bidi", message="cancel-me", count=2)
    expect(r, 1, pair.server)


def test_rpc_long_metadata_value(pair):
    v = "v" * 4000  # echoed in headers with x-trailer-long: under grpcio's 8 KiB limit
    r = pair.call("Unary", metadata=[("x-long", v), ("x-trailer-long", v[:1500])])
    expect(r, 0, pair.server)
    assert r.headers.get("x-long") == v, r
    assert r.trailers.get("x-trailer-long") == v[:1500], r


@pytest.mark.parametrize("direction", ["srv=ours"])
def test_rpc_grpcio_edge_cases(pair):
    """What grpcio clients send that our own client never does: binary (-bin) metadata,
    a ClientStream with no request, per-request messages."""
    blob = bytes(range(256))
    r = pair.call("Unary", metadata=[("x-blob-bin", blob), ("x-trailer-blob-bin", b"\x00\xff")])
    expect(r, 0, pair.server)
    assert r.headers.get("x-blob-bin") == blob.hex(), r
    assert r.trailers.get("x-trailer-blob-bin") == "00ff", r
    r = pair.call("ClientStream", messages=[])
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 0, "message": "", "payload_len": 0}], r
    r = pair.call("ClientStream", messages=["a", "bb", "", "c"])
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 4, "message": "a,bb,,c", "payload_len": 0}], r
    r = pair.call("Bidi", messages=["x", "y", "z"])
    expect(r, 0, pair.server)
    assert [(x["index"], x["message"]) for x in r.replies] == [(0, "x"), (1, "y"), (2, "z")], r


COMPRESSIONS = [("gzip", grpc.Compression.Gzip), ("deflate", grpc.Compression.Deflate)]


@pytest.mark.parametrize("direction", ["srv=ours"])
@pytest.mark.parametrize("name,compression", COMPRESSIONS, ids=[c[0] for c in COMPRESSIONS])
def test_rpc_compressed_request(pair, stubs, name, compression):
    """A grpcio client that compresses its messages: our server inflates them (the
    call succeeds with the right echo) and says in a trailer that they really came
    compressed (x-compressed-requests, counted from the messages' compressed flag)."""
    if TWIN:
        pytest.skip("the grpcio twin cannot tell compressed requests (development mode only)")
    pb2 = stubs[0]
    ch = pair.channel()
    try:
        ser, de = pb2.EchoRequest.SerializeToString, pb2.EchoReply.FromString
        unary = ch.unary_unary(SERVICE + "Unary", request_serializer=ser, response_deserializer=de)
        req = pb2.EchoRequest(message="zip", payload=b"z" * 5000)
        reply, call = unary.with_call(req, timeout=10, compression=compression)
        assert (reply.message, len(reply.payload)) == ("zip", 5000), reply
        assert dict(call.trailing_metadata()).get("x-compressed-requests") == "1", \
            (call.trailing_metadata(), pair.server.tail())
        stream = ch.stream_unary(SERVICE + "ClientStream", request_serializer=ser,
                                 response_deserializer=de)
        reqs = [pb2.EchoRequest(message=f"m{i}", payload=b"z" * 3000) for i in range(3)]
        reply, call = stream.with_call(iter(reqs), timeout=10, compression=compression)
        assert (reply.message, len(reply.payload), reply.index) == ("m0,m1,m2", 9000, 3), reply
        assert dict(call.trailing_metadata()).get("x-compressed-requests") == "3", \
            (call.trailing_metadata(), pair.server.tail())
        # Uncompressed: no such trailer (the count is not made up).
        reply, call = unary.with_call(req, timeout=10)
        assert "x-compressed-requests" not in dict(call.trailing_metadata()), call.trailing_metadata()
    finally:
        ch.close()


@pytest.mark.parametrize("direction", ["srv=ours"])
def test_rpc_unknown_method(pair):
    ch = pair.channel()
    try:
        for path in ("/drover.test.v1.Echo/Nope", "/drover.test.v1.Nope/Unary", "/x/y"):
            call = ch.unary_unary(path)
            with pytest.raises(grpc.RpcError) as e:
                call(b"", timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, \
                (path, e.value.code(), e.value.details(), pair.server.tail())
        # The connection is still good afterwards.
        r = pair.call("Unary")
        expect(r, 0, pair.server)
    finally:
        ch.close()


@pytest.mark.parametrize("transport", ["tcp"], indirect=True)
def test_rpc_client_prints_replies_as_they_arrive(rpc_env, transport):
    """drover-rpc-echo call prints each reply line when it arrives, not at exit
    (a user piping it into another program sees the stream live)."""
    p = Pair(rpc_env, "cli=ours", transport)
    c = p.start_call("ServerStream", repeat=4, delay_ms=700, timeout_ms=30000)
    r = c.result(30)
    expect(r, 0, p.server)
    assert len(c.times) == 5, r
    gap = c.times[-1] - c.times[0]
    # Replies are sent 0.7 s apart: the first line must come well before the last.
    assert gap > 1.0, (
        f"the first reply line reached the pipe only {gap:.3f} s before the final line, "
        f"for replies sent 0.7 s apart (stdout not flushed per reply line): {r!r}")


def test_rpc_cli_usage_and_unreachable_target(rpc_echo):
    """Exit codes a script relies on: 2 for bad usage, 1 with status 14 when nobody
    listens at the target."""
    for args in (["call", "--target", "127.0.0.1:1", "Nope"], ["call", "Unary"],
                 ["serve"], ["nonsense"], ["call", "--target", "127.0.0.1:1", "Unary", "--count", "x"]):
        p = subprocess.run(rpc_echo + args, capture_output=True, timeout=30)
        assert p.returncode == 2, (args, p.returncode, p.stdout[-500:], p.stderr[-1500:])
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    p = subprocess.run(rpc_echo + ["call", "--target", f"127.0.0.1:{port}", "Unary", "--timeout", "5000"],
                       capture_output=True, timeout=30)
    final = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert (p.returncode, final["status"]) == (1, 14), (p.returncode, p.stdout[-800:], p.stderr[-1500:])


@pytest.mark.parametrize("transport", ["tcp"], indirect=True)
def test_rpc_ipv6_loopback(rpc_env, direction, transport):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    kind = "ours" if direction == "srv=ours" else "grpcio"
    p = Pair(rpc_env, direction, transport, rpc_env.start_server(kind, transport, listen="[::1]:0"))
    assert p.target.startswith("[::1]:"), p.target
    r = p.call("ServerStream", repeat=3)
    expect(r, 0, p.server)
    assert [x["index"] for x in r.replies] == [0, 1, 2], r
    p.server.stop_checked()


@pytest.mark.parametrize("direction", ["cli=ours"])
def test_rpc_compressed_replies(pair):
    """A grpcio server that gzips replies (our client announces grpc-accept-encoding
    identity,deflate,gzip): our client inflates them, and they really came compressed
    (compressed_replies counts the messages whose compressed flag was set)."""
    if TWIN:
        pytest.skip("the grpcio twin cannot tell compressed replies (development mode only)")
    for method, kw in (("Unary", {}), ("ServerStream", {"repeat": 3}), ("Bidi", {"count": 2})):
        r = pair.call(method, payload_size=5000, metadata=[("x-compress-replies", "1")], **kw)
        expect(r, 0, pair.server)
        n = kw.get("repeat") or kw.get("count") or 1
        assert r.replies == [{"index": i, "message": "hello", "payload_len": 5000} for i in range(n)], r
        assert r.final.get("compressed_replies") == n, r
    r = pair.call("ServerStream", payload_size=5000, repeat=2)
    expect(r, 0, pair.server)
    assert r.final.get("compressed_replies") == 0, r


def test_rpc_server_fails_while_client_still_sends(pair):
    """The server ends a ClientStream/Bidi with an error at the first request while the
    client still has 12 MiB to send: the client gets that status, nothing hangs."""
    for method in ("ClientStream", "Bidi"):
        r = pair.call(method, count=200, payload_size=64 << 10, fail_code=9, quiet=True, timeout=60)
        expect(r, 9, pair.server)
        assert r.message == "requested failure 9", r
    expect(pair.call("Unary"), 0, pair.server)
