"""A slow reader makes a fast sender pause: memory stays bounded (HTTP/2 flow control),
and a stream that stops reading holds back itself only, not its connection."""
import time

import pytest

from rpc_harness import TWIN, Pair, Transport, expect

SERVICE = "/drover.test.v1.Echo/"
MSG = 64 << 10
COUNT = 16384  # 16384 x 64 KiB = 1 GiB if nobody paused
BOUND_KB = 64 << 10  # 64 MiB


@pytest.mark.parametrize("transport", ["tcp", "tls"], indirect=True)
def test_rpc_slow_reader_pauses_our_server(rpc_env, transport, stubs):
    """Our server streams 1 GiB of 64 KiB replies to a grpcio client that reads 10 a
    second; our server's VmRSS must not grow by more than 64 MiB."""
    p = Pair(rpc_env, "srv=ours", transport, rpc_env.start_server("ours", transport))
    pb2 = stubs[0]
    ch = p.channel()
    try:
        stub = ch.unary_stream(SERVICE + "ServerStream",
                               request_serializer=pb2.EchoRequest.SerializeToString,
                               response_deserializer=pb2.EchoReply.FromString)
        # Warm up (TLS, first allocations) so the baseline is fair.
        list(stub(pb2.EchoRequest(message="warm", payload=b"x" * MSG, repeat=4), timeout=30))
        base = p.server.rss_kb()
        mark = p.server.mark()
        it = stub(pb2.EchoRequest(message="big", payload=b"x" * MSG, repeat=COUNT), timeout=60)
        peak, got, end = base, 0, time.monotonic() + 3.0
        for reply in it:
            got += 1
            assert len(reply.payload) == MSG
            peak = max(peak, p.server.rss_kb())
            if time.monotonic() > end:
                break
            time.sleep(0.1)
        for _ in range(5):  # the sender keeps trying while we stop reading
            peak = max(peak, p.server.rss_kb())
            time.sleep(0.1)
        it.cancel()
        print(f"slow reader: {got} replies read, server VmRSS {base} -> peak {peak} kB")
        assert got >= 5, f"only {got} replies in 3 s\n{p.server.tail()}"
        assert peak - base < BOUND_KB, (
            f"our server's VmRSS grew from {base} kB to {peak} kB (+{(peak - base) >> 10} MiB) "
            f"while a slow reader took {got} of {COUNT} 64 KiB replies\n{p.server.tail()}")
        assert p.server.wait_log(f"call cancelled method={SERVICE}ServerStream", 10, mark), \
            p.server.tail()
        expect(p.call("Unary"), 0, p.server)
    finally:
        ch.close()
    p.server.stop_checked()


@pytest.mark.parametrize("transport", ["tcp", "tls"], indirect=True)
def test_rpc_slow_server_pauses_our_client(rpc_env, transport):
    """Our client streams 1 GiB of 64 KiB requests (ClientStream --count 16384) to a
    grpcio server that reads one every 100 ms, then cancels after 3 s; the client's
    max_rss_kb must stay under 64 MiB."""
    p = Pair(rpc_env, "cli=ours", transport, rpc_env.start_server("grpcio", transport))
    mark = p.server.mark()
    r = p.call("ClientStream", count=COUNT, payload_size=MSG, cancel_after_ms=3000,
               metadata=[("x-read-delay-ms", "100")], quiet=True, timeout=60, fresh_rss=True)
    expect(r, 1, p.server)
    print(f"slow server: client max_rss_kb {r.final['max_rss_kb']}")
    assert r.final["max_rss_kb"] < BOUND_KB, (
        f"our client's max RSS was {r.final['max_rss_kb']} kB sending to a slow reader: {r!r}")
    assert p.server.wait_log(f"call cancelled method={SERVICE}ClientStream", 10, mark), \
        p.server.tail()
    p.server.stop_checked()


@pytest.mark.parametrize("sender", ["grpcio", "ours"])
def test_rpc_paused_streams_do_not_stall_the_connection(rpc_env, sender):
    """Eleven ServerStream calls of 1024 x 64 KiB on ONE connection of our client: ten
    stop reading after their first reply (drover-rpc-echo --paused-calls 10), so their
    senders fill their stream windows (2 MiB each, 20 MiB in all: more than the 16 MiB
    connection window) and wait. The eleventh must still get all its 64 MiB: a paused
    stream gives the connection's window back as its bytes arrive and holds back only
    its own stream. Then the paused ones are cancelled."""
    if TWIN:
        pytest.skip("the grpcio twin has no --paused-calls (development mode only)")
    transport = Transport("tcp")
    server = rpc_env.start_server(sender, transport)
    p = Pair(rpc_env, "cli=ours", transport, server)
    r = p.call("ServerStream", repeat=1024, payload_size=MSG, concurrency=11, paused_calls=10,
               quiet=True, timeout_ms=60000, timeout=90)
    print(f"{sender} sender: the reading call got 64 MiB in {r.final['elapsed_ms']} ms "
          f"beside 10 paused ones")
    assert r.final["codes"] == {"0": 1, "1": 10}, (
        f"the reading call did not finish while 10 others on its connection were paused "
        f"(want codes {{'0': 1, '1': 10}}): {r!r}")
    assert r.final["replies"] >= 1024 + 10, r
    server.stop_checked()
