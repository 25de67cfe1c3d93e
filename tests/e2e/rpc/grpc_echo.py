#!/usr/bin/python3
"""grpcio twin of drover-rpc-echo: the same Echo contract, CLI and outputs, on grpcio.

The interop suite uses it as the independent peer: `serve` (a grpc.aio server, run as
a subprocess so it can be killed or stopped), `call` (the sync grpcio client; tests
also call run_call() in-process) and `bench` (the grpcio baseline for bench/).
Run with /usr/bin/python3 (Debian's python3-grpcio).

Test-only extensions of the server (drover's server ignores them): request metadata
"x-read-delay-ms: N" makes ClientStream/Bidi handlers pause N ms before each read;
"x-compress-replies: 1" makes it gzip replies when the client accepts gzip.
The server logs one line per notable event to stderr, like drover's server:
"call start method=M peer=P inflight=N", "reply sent method=M index=I" (ServerStream),
"call cancelled method=M",
"deadline exceeded method=M".
"""
import argparse
import asyncio
import hashlib
import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[3]
PROTO_ROOT = ROOT / "proto"
SERVICE = "/drover.test.v1.Echo/"
METHODS = ("Unary", "ServerStream", "ClientStream", "Bidi")
CODES = {c.value[0]: c for c in grpc.StatusCode}


def generate_stubs(outdir):
    """Runs grpc_tools.protoc on echo.proto into outdir (echo_pb2*.py)."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}",
         f"--python_out={outdir}", f"--grpc_python_out={outdir}",
         str(PROTO_ROOT / "drover/test/v1/echo.proto")],
        check=True, timeout=60)
    return outdir


def load_stubs(outdir=None):
    """Imports (echo_pb2, echo_pb2_grpc) from outdir, $DROVER_RPC_STUBS or a fresh dir."""
    outdir = outdir or os.environ.get("DROVER_RPC_STUBS")
    if not outdir:
        # One cache per user and proto version, so that manual runs leave no litter.
        digest = hashlib.sha256((PROTO_ROOT / "drover/test/v1/echo.proto").read_bytes()).hexdigest()
        outdir = os.path.join(tempfile.gettempdir(), f"drover-stubs-{os.getuid()}-{digest[:12]}")
    if not (pathlib.Path(outdir) / "drover/test/v1/echo_pb2_grpc.py").exists():
        # Generate aside, then rename: a concurrent reader never sees half a file.
        tmp = tempfile.mkdtemp(prefix="drover-stubs-new-", dir=os.path.dirname(str(outdir)) or ".")
        generate_stubs(tmp)
        try:
            os.rename(tmp, outdir)
        except OSError:  # someone else got there first (or outdir exists, empty)
            shutil.rmtree(tmp, ignore_errors=True)
            if not (pathlib.Path(outdir) / "drover/test/v1/echo_pb2_grpc.py").exists():
                generate_stubs(outdir)
    if str(outdir) not in sys.path:
        sys.path.insert(0, str(outdir))
    from drover.test.v1 import echo_pb2, echo_pb2_grpc  # noqa: E402
    return echo_pb2, echo_pb2_grpc


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- server

class EchoServicer:
    """The Echo contract on grpc.aio (see the drover-rpc-echo CLI contract)."""

    def __init__(self, pb2):
        self.pb2 = pb2
        self.inflight = 0

    async def _begin(self, context, name):
        self.inflight += 1
        _log(f"call start method={SERVICE}{name} peer={context.peer()} inflight={self.inflight}")
        headers, trailers = [], []
        read_delay = 0
        for k, v in context.invocation_metadata() or ():
            if k.startswith("x-"):
                headers.append((k, v))
            if k.startswith("x-trailer-"):
                trailers.append((k, v))
            if k == "authorization":
                headers.append(("x-authorization", v))
            if k == "x-read-delay-ms":
                read_delay = int(v)
            if k == "x-compress-replies":
                # gzip replies, if the client's grpc-accept-encoding allows it
                context.set_compression(grpc.Compression.Gzip)
        subject = (context.auth_context() or {}).get("x509_subject")
        if subject:
            headers.append(("x-peer-subject", subject[0].decode()))
        await context.send_initial_metadata(headers)
        context.set_trailing_metadata(trailers)
        return trailers, read_delay / 1000.0

    async def _check(self, req, context, trailers):
        if req.fail_code:
            code = CODES.get(req.fail_code, grpc.StatusCode.UNKNOWN)
            await context.abort(code, f"requested failure {req.fail_code}", tuple(trailers))
        if req.message == "cancel-me":
            # grpc.aio has no server-side cancel(): end the call with CANCELLED.
            await context.abort(grpc.StatusCode.CANCELLED, "cancelled by server", tuple(trailers))

    async def _guard(self, context, name, coro):
        try:
            return await coro
        except asyncio.CancelledError:
            # A client's deadline reaches us as a reset (its timer fired first);
            # our clock started when we read the request headers, later than the
            # client's, by as much as a loaded machine delays them.
            left = context.time_remaining()
            if left is not None and left <= 0.5:
                _log(f"deadline exceeded method={SERVICE}{name}")
            else:
                _log(f"call cancelled method={SERVICE}{name}")
            raise
        except grpc.aio.AbortError:
            raise
        except Exception:
            # A write on a call the peer cancelled fails instead of being cancelled.
            _log(f"call cancelled method={SERVICE}{name}")
            raise
        finally:
            self.inflight -= 1

    def _reply(self, req, index):
        return self.pb2.EchoReply(message=req.message, payload=req.payload, index=index)

    async def Unary(self, req, context):
        async def body():
            trailers, _ = await self._begin(context, "Unary")
            await self._check(req, context, trailers)
            if req.delay_ms:
                await asyncio.sleep(req.delay_ms / 1000.0)
            return self._reply(req, 0)
        return await self._guard(context, "Unary", body())

    async def ServerStream(self, req, context):
        async def body():
            trailers, _ = await self._begin(context, "ServerStream")
            await self._check(req, context, trailers)
            for i in range(req.repeat or 1):
                if req.delay_ms:
                    await asyncio.sleep(req.delay_ms / 1000.0)
                await context.write(self._reply(req, i))
                _log(f"reply sent method={SERVICE}ServerStream index={i}")
        return await self._guard(context, "ServerStream", body())

    async def ClientStream(self, request_iterator, context):
        async def body():
            trailers, read_delay = await self._begin(context, "ClientStream")
            messages, payloads, n, delay = [], [], 0, 0
            while True:
                if read_delay:
                    await asyncio.sleep(read_delay)
                req = await context.read()
                if req is grpc.aio.EOF:
                    break
                await self._check(req, context, trailers)
                messages.append(req.message)
                payloads.append(req.payload)
                delay = req.delay_ms
                n += 1
            if delay:
                await asyncio.sleep(delay / 1000.0)
            return self.pb2.EchoReply(message=",".join(messages), payload=b"".join(payloads), index=n)
        return await self._guard(context, "ClientStream", body())

    async def Bidi(self, request_iterator, context):
        async def body():
            trailers, read_delay = await self._begin(context, "Bidi")
            i = 0
            while True:
                if read_delay:
                    await asyncio.sleep(read_delay)
                req = await context.read()
                if req is grpc.aio.EOF:
                    break
                await self._check(req, context, trailers)
                if req.delay_ms:
                    await asyncio.sleep(req.delay_ms / 1000.0)
                await context.write(self._reply(req, i))
                i += 1
        return await self._guard(context, "Bidi", body())


def server_options(max_message_size=None, keepalive_interval=None, keepalive_timeout=None):
    opts = [
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", 4096),
        # Let peers ping as often as the keepalive tests need.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 100),
        ("grpc.http2.min_time_between_pings_ms", 100),
        ("grpc.http2.max_ping_strikes", 0),
    ]
    if max_message_size:
        opts += [("grpc.max_receive_message_length", max_message_size),
                 ("grpc.max_send_message_length", max_message_size)]
    if keepalive_interval:
        opts.append(("grpc.keepalive_time_ms", keepalive_interval))
    if keepalive_timeout:
        opts.append(("grpc.keepalive_timeout_ms", keepalive_timeout))
    return opts


async def serve(args):
    pb2, pb2_grpc = load_stubs()
    server = grpc.aio.server(options=server_options(
        args.max_message_size, args.keepalive_interval, args.keepalive_timeout))
    pb2_grpc.add_EchoServicer_to_server(EchoServicer(pb2), server)
    if args.tls_cert:
        creds = grpc.ssl_server_credentials(
            [(_read(args.tls_key), _read(args.tls_cert))],
            root_certificates=_read(args.client_ca) if args.client_ca else None,
            require_client_auth=bool(args.client_ca))
        port = server.add_secure_port(args.listen, creds)
    else:
        port = server.add_insecure_port(args.listen)
    if args.listen.startswith("unix:"):
        addr = args.listen
    else:
        if port == 0:
            print(f"error: cannot listen on '{args.listen}'", file=sys.stderr)
            return 1
        addr = f"{args.listen.rsplit(':', 1)[0]}:{port}"
    await server.start()
    print(f"listening {addr}", flush=True)
    loop = asyncio.get_running_loop()
    stopping = []

    def on_signal():
        if not stopping:
            _log("shutting down")
            stopping.append(asyncio.ensure_future(server.stop(30)))
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, on_signal)
    await server.wait_for_termination()
    return 0


# ---------------------------------------------------------------- client

def channel_for(target, tls_ca=None, tls_cert=None, tls_key=None, server_name=None,
                max_message_size=None, keepalive_interval=None, keepalive_timeout=None):
    # Own subchannel pool: every channel makes its own connection (no global sharing).
    opts = [("grpc.enable_retries", 0), ("grpc.use_local_subchannel_pool", 1)]
    if max_message_size:
        opts += [("grpc.max_receive_message_length", max_message_size),
                 ("grpc.max_send_message_length", max_message_size)]
    if keepalive_interval:
        opts += [("grpc.keepalive_time_ms", keepalive_interval),
                 ("grpc.keepalive_permit_without_calls", 1),
                 ("grpc.http2.max_pings_without_data", 0),
                 ("grpc.http2.min_time_between_pings_ms", 100)]
    if keepalive_timeout:
        opts.append(("grpc.keepalive_timeout_ms", keepalive_timeout))
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    if tls_ca:
        creds = grpc.ssl_channel_credentials(
            _read(tls_ca), _read(tls_key) if tls_key else None,
            _read(tls_cert) if tls_cert else None)
        return grpc.secure_channel(target, creds, options=opts)
    return grpc.insecure_channel(target, options=opts)


def _md_dict(md):
    return {k: (v if isinstance(v, str) else v.hex()) for k, v in (md or ())}


def run_call(pb2, channel, method, message="hello", payload_size=0, repeat=0, delay_ms=0,
             fail_code=0, count=1, metadata=(), timeout_ms=None, concurrency=1,
             cancel_after_ms=None, read_delay_ms=0, on_reply=None, messages=None):
    """Runs `concurrency` copies of one call on `channel`, like drover-rpc-echo call.

    Returns (replies, final): replies are dicts {index, message, payload_len} in
    arrival order; final is the summary dict of the CLI's last JSON line.
    `messages` (a list) overrides message/count for ClientStream/Bidi requests.
    """
    start = time.monotonic()
    payload = b"x" * payload_size
    msgs = list(messages) if messages is not None else [message] * count

    def req(m):
        return pb2.EchoRequest(message=m, payload=payload, repeat=repeat,
                               delay_ms=delay_ms, fail_code=fail_code)

    path = SERVICE + method
    ser, de = pb2.EchoRequest.SerializeToString, pb2.EchoReply.FromString
    stub = {
        "Unary": channel.unary_unary, "ServerStream": channel.unary_stream,
        "ClientStream": channel.stream_unary, "Bidi": channel.stream_stream,
    }[method](path, request_serializer=ser, response_deserializer=de)
    timeout = timeout_ms / 1000.0 if timeout_ms else None
    md = list(metadata)
    lock = threading.Lock()
    replies, results, calls = [], [None] * concurrency, [None] * concurrency
    cancelled = threading.Event()

    def got(r):
        d = {"index": r.index, "message": r.message, "payload_len": len(r.payload)}
        with lock:
            replies.append(d)
        if on_reply:
            on_reply(d)

    def finish(i, call):
        try:
            code = call.code()
            results[i] = (code.value[0], code.name, call.details() or "",
                          _md_dict(call.initial_metadata()), _md_dict(call.trailing_metadata()))
        except Exception as e:  # noqa: BLE001 - a cancelled future has no metadata
            results[i] = (1, "CANCELLED", str(e), {}, {})

    def one(i):
        arg = req(message) if method == "ServerStream" else (req(m) for m in msgs)
        it = stub(arg, timeout=timeout, metadata=md)
        calls[i] = it
        if cancelled.is_set():
            it.cancel()
        try:
            for r in it:
                got(r)
                if read_delay_ms:
                    time.sleep(read_delay_ms / 1000.0)
        except grpc.RpcError:
            pass
        finish(i, it)

    timer = None
    if cancel_after_ms is not None:
        def cancel_all():
            cancelled.set()
            for c in list(calls):
                if c is not None:
                    c.cancel()
        timer = threading.Timer(cancel_after_ms / 1000.0, cancel_all)
        timer.start()
    if method in ("Unary", "ClientStream"):
        # Futures need no thread each: start them all on the one channel, then wait.
        for i in range(concurrency):
            arg = req(message) if method == "Unary" else (req(m) for m in msgs)
            calls[i] = stub.future(arg, timeout=timeout, metadata=md)
            if cancelled.is_set():
                calls[i].cancel()
        for i, fut in enumerate(calls):
            try:
                got(fut.result())
            except grpc.FutureCancelledError:
                results[i] = (1, "CANCELLED", "cancelled", {}, {})
                continue
            except grpc.RpcError:
                pass
            finish(i, fut)
    elif concurrency == 1:
        one(0)
    else:
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if timer:
        timer.cancel()
    codes = {}
    for r in results:
        codes[str(r[0])] = codes.get(str(r[0]), 0) + 1
    bad = [r for r in results if r[0] != 0]
    first = bad[0] if bad else results[0]
    final = {
        "status": first[0], "status_name": first[1], "message": first[2],
        "replies": len(replies), "headers": first[3], "trailers": first[4],
        "calls": concurrency, "ok": concurrency - len(bad), "codes": codes,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "elapsed_ms": int((time.monotonic() - start) * 1000),
    }
    return replies, final


def call_main(args):
    pb2, _ = load_stubs()
    md = []
    for kv in args.metadata or ():
        k, _, v = kv.partition("=")
        md.append((k, v))
    ch = channel_for(args.target, args.tls_ca, args.tls_cert, args.tls_key, args.server_name,
                     args.max_message_size, args.keepalive_interval, args.keepalive_timeout)

    def on_reply(d):
        if not args.quiet:
            print(json.dumps(d), flush=True)
    _, final = run_call(pb2, ch, args.method, args.message, args.payload_size, args.repeat,
                        args.delay_ms, args.fail_code, args.count, md, args.timeout,
                        args.concurrency, args.cancel_after_ms, args.read_delay_ms, on_reply)
    print(json.dumps(final), flush=True)
    ch.close()
    return 0 if final["ok"] == final["calls"] else 1


# ---------------------------------------------------------------- bench

def bench_main(args):
    pb2, _ = load_stubs()
    ch = channel_for(args.target, args.tls_ca, max_message_size=64 << 20)
    ser, de = pb2.EchoRequest.SerializeToString, pb2.EchoReply.FromString
    end = time.monotonic() + args.seconds
    if args.mode == "unary":
        stub = ch.unary_unary(SERVICE + "Unary", request_serializer=ser, response_deserializer=de)
        req = pb2.EchoRequest(message="bench", payload=b"x" * args.size)
        stub(req)  # connect and warm up
        lat = []

        def worker():
            mine = []
            while time.monotonic() < end:
                t0 = time.perf_counter_ns()
                stub(req)
                mine.append((time.perf_counter_ns() - t0) // 1000)
            lat.extend(mine)
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lat.sort()
        out = {"mode": "unary", "calls": len(lat), "p50_us": lat[len(lat) // 2],
               "p99_us": lat[min(len(lat) - 1, len(lat) * 99 // 100)],
               "mean_us": sum(lat) // max(1, len(lat))}
    else:
        stub = ch.stream_stream(SERVICE + "Bidi", request_serializer=ser, response_deserializer=de)
        req = pb2.EchoRequest(message="b", payload=b"x" * args.size)
        stub(iter([req])).next()
        counts = []

        def gen():
            while time.monotonic() < end:
                yield req

        def worker():
            n = 0
            for _ in stub(gen()):
                n += 1
            counts.append(n)
        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        el = time.monotonic() - t0
        n = sum(counts)
        out = {"mode": "stream", "size": args.size, "msgs_per_s": round(n / el, 1),
               "mb_per_s": round(n * args.size / el / 1e6, 2)}
    print(json.dumps(out), flush=True)
    ch.close()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="grpc_echo.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--client-ca")
    s.add_argument("--max-message-size", type=int)
    s.add_argument("--keepalive-interval", type=int)
    s.add_argument("--keepalive-timeout", type=int)
    c = sub.add_parser("call")
    c.add_argument("--target", required=True)
    c.add_argument("method", choices=METHODS)
    c.add_argument("--message", default="hello")
    c.add_argument("--payload-size", type=int, default=0)
    c.add_argument("--repeat", type=int, default=0)
    c.add_argument("--delay-ms", type=int, default=0)
    c.add_argument("--fail-code", type=int, default=0)
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--metadata", action="append")
    c.add_argument("--timeout", type=int)
    c.add_argument("--tls-ca")
    c.add_argument("--tls-cert")
    c.add_argument("--tls-key")
    c.add_argument("--server-name")
    c.add_argument("--max-message-size", type=int)
    c.add_argument("--concurrency", type=int, default=1)
    c.add_argument("--cancel-after-ms", type=int)
    c.add_argument("--keepalive-interval", type=int)
    c.add_argument("--keepalive-timeout", type=int)
    c.add_argument("--read-delay-ms", type=int, default=0)
    c.add_argument("--quiet", action="store_true")
    b = sub.add_parser("bench")
    b.add_argument("--target", required=True)
    b.add_argument("--mode", choices=("unary", "stream"), required=True)
    b.add_argument("--size", type=int, default=100)
    b.add_argument("--seconds", type=float, default=3)
    b.add_argument("--concurrency", type=int, default=1)
    b.add_argument("--tls-ca")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return asyncio.run(serve(args))
    if args.cmd == "call":
        return call_main(args)
    return bench_main(args)


if __name__ == "__main__":
    sys.exit(main())
