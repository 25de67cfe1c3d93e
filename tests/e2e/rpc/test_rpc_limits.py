"""Deadlines, message size limits, cancellation and 1,000 streams on one connection."""
import re

from rpc_harness import MAX_MSG, expect

SERVICE = "/drover.test.v1.Echo/"


def test_rpc_deadline_exceeded(pair):
    mark = pair.server.mark()
    r = pair.call("Unary", delay_ms=5000, timeout_ms=300, timeout=30)
    expect(r, 4, pair.server)
    assert not r.replies, r
    assert pair.server.wait_log(f"deadline exceeded method={SERVICE}Unary", 10, mark), \
        f"server did not log the expired deadline\n{pair.server.tail()}"
    # Mid-stream: some replies, then the deadline.
    mark = pair.server.mark()
    r = pair.call("ServerStream", repeat=40, delay_ms=200, timeout_ms=1500, timeout=30)
    expect(r, 4, pair.server)
    assert 1 <= len(r.replies) <= 8, r
    assert pair.server.wait_log(f"deadline exceeded method={SERVICE}ServerStream", 10, mark), \
        f"server did not log the expired deadline\n{pair.server.tail()}"


def test_rpc_8mib_message(pair):
    size = 8 << 20
    r = pair.call("Unary", payload_size=size, timeout=90)
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 0, "message": "hello", "payload_len": size}], r
    r = pair.call("Bidi", payload_size=size, count=2, timeout=90)
    expect(r, 0, pair.server)
    assert [x["payload_len"] for x in r.replies] == [size, size], r


def test_rpc_message_over_limit(pair):
    """The server's limit is 16 MiB: a 17 MiB request is refused with RESOURCE_EXHAUSTED
    (the client's own limit is higher, so the refusal must come from the server)."""
    r = pair.call("Unary", payload_size=17 << 20, max_message_size=2 * MAX_MSG, timeout=90)
    expect(r, 8, pair.server)
    assert not r.replies, r
    # The server is still serving.
    expect(pair.call("Unary"), 0, pair.server)


def test_rpc_1000_concurrent_streams(pair):
    """1,000 calls at once on one connection; each waits 2 s, so a server or client that
    ran them with little concurrency would miss the 15 s deadline."""
    mark = pair.server.mark()
    r = pair.call("Unary", delay_ms=2000, timeout_ms=15000, concurrency=1000, quiet=True, timeout=90)
    expect(r, 0, pair.server)
    assert r.final["calls"] == 1000 and r.final["ok"] == 1000, r
    assert r.final["codes"] == {"0": 1000}, r
    if not pair.ours_server:
        # The grpcio server logs each call's peer and how many were in flight.
        starts = re.findall(r"call start method=\S+ peer=(\S+) inflight=(\d+)",
                            pair.server.log()[mark:])
        assert len(starts) == 1000, (len(starts), r)
        peers = {p for p, _ in starts}
        assert len(peers) == 1, f"calls came over {len(peers)} connections, want 1: {sorted(peers)[:5]}"
        most = max(int(n) for _, n in starts)
        assert most >= 500, f"at most {most} calls were in flight at once, want >= 500"
    # Streams too: 200 Bidi calls of 5 messages each, at once on one connection.
    r = pair.call("Bidi", count=5, delay_ms=200, timeout_ms=15000, concurrency=200, quiet=True,
                  timeout=90)
    expect(r, 0, pair.server)
    assert r.final["ok"] == 200 and r.final["replies"] == 1000, r


def test_rpc_client_cancels(pair):
    """The client cancels mid-call (RST_STREAM CANCEL): drover-rpc-echo --cancel-after-ms,
    or grpcio's future.cancel(); the server's handler sees it and logs it."""
    mark = pair.server.mark()
    r = pair.call("Unary", delay_ms=10000, cancel_after_ms=300, timeout=30)
    expect(r, 1, pair.server)
    assert pair.server.wait_log(f"call cancelled method={SERVICE}Unary", 10, mark), \
        f"server did not log the cancelled call\n{pair.server.tail()}"
    # Mid-stream: some replies arrive, then the cancel.
    mark = pair.server.mark()
    r = pair.call("ServerStream", repeat=100, delay_ms=100, cancel_after_ms=700, timeout=30)
    expect(r, 1, pair.server)
    assert 1 <= len(r.replies) < 100, r
    assert pair.server.wait_log(f"call cancelled method={SERVICE}ServerStream", 10, mark), \
        f"server did not log the cancelled stream\n{pair.server.tail()}"
    # The connection-level state is fine: a new call works.
    expect(pair.call("Unary"), 0, pair.server)



def test_rpc_reply_over_client_limit(pair):
    """The client's own limit applies to what it receives: 4 requests of 512 KiB are
    fine, their 2 MiB ClientStream reply is over the client's 1 MiB limit."""
    r = pair.call("ClientStream", payload_size=512 << 10, count=4, max_message_size=1 << 20, timeout=60)
    expect(r, 8, pair.server)
    assert not r.replies, r
    r = pair.call("ClientStream", payload_size=100 << 10, count=4, max_message_size=1 << 20, timeout=60)
    expect(r, 0, pair.server)
    assert r.replies == [{"index": 4, "message": "hello,hello,hello,hello", "payload_len": 400 << 10}], r
