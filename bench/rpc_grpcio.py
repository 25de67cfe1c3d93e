#!/usr/bin/python3
"""grpcio baseline for bench/bench_rpc.sh, with the same commands and JSON as
drover-rpc-echo: `serve --listen ADDR` and `bench --target ADDR --mode unary|stream
[--size B] [--seconds N] [--concurrency N]` (both from tests/e2e/rpc/grpc_echo.py),
plus `idle --target HOST:PORT --pid PID [--conns N]`: opens N idle HTTP/2 (h2c)
connections with raw sockets (preface + SETTINGS, ACKing the server's SETTINGS) and
prints the server's VmRSS before and after as JSON.
Run with /usr/bin/python3 (Debian's python3-grpcio).
"""
import argparse
import json
import pathlib
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests/e2e/rpc"))

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"       # empty SETTINGS
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle_main(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    host, port = args.target.rsplit(":", 1)
    time.sleep(0.3)
    before = rss_kb(args.pid)
    socks, sel = [], selectors.DefaultSelector()
    for _ in range(args.conns):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(PREFACE + SETTINGS)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    # Answer every server SETTINGS with an ACK, then let the server settle.
    acked, end = set(), time.monotonic() + 5
    while len(acked) < len(socks) and time.monotonic() < end:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            if data and s not in acked:
                s.sendall(SETTINGS_ACK)
                acked.add(s)
    time.sleep(1.0)
    after = rss_kb(args.pid)
    alive = 0
    for s in socks:
        try:
            alive += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for s in socks:
        s.close()
    print(json.dumps({"conns": args.conns, "answered": len(acked), "open": alive,
                      "rss_before_kb": before, "rss_after_kb": after,
                      "per_conn_bytes": int((after - before) * 1024 / max(1, args.conns))}))
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "idle":
        p = argparse.ArgumentParser(prog="rpc_grpcio.py idle")
        p.add_argument("--target", required=True)
        p.add_argument("--pid", type=int, required=True)
        p.add_argument("--conns", type=int, default=1000)
        return idle_main(p.parse_args(sys.argv[2:]))
    import grpc_echo
    return grpc_echo.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
