"""Client processes for bench/run.py (one process holds at most a few thousand sockets).

    python bench/clients.py hold HOST PORT N [PATH]
        open N connections, each sending one GET as soon as it is connected (a `hang`
        rule then holds them), print "held N", keep them open until standard input
        closes, then close them.
    python bench/clients.py burst HOST PORT N [PATH] [SETTLE_S]
        open N connections, wait SETTLE_S, then send one keep-alive GET on every one at
        once; print one JSON object with each request's latency in seconds (send to the
        last byte of the response), measured with a monotonic clock.
    python bench/clients.py fetch HOST PORT [PATH]
        one request; print the response's first line and its length, as JSON.
"""

from __future__ import annotations

import json
import resource
import select
import socket
import sys
import time


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def request(path: str, host: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


def connect_many(host: str, port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    return socks


def hold(host: str, port: int, n: int, path: str) -> None:
    req = request(path, host, port)
    socks = []
    for _ in range(n):  # as HTTP clients do: the request right after the connect
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(req)
        socks.append(s)
    print(f"held {len(socks)}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or exits)
    for s in socks:
        s.close()


def _response_complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True  # no length: a bodiless answer in these benchmarks


def burst(host: str, port: int, n: int, path: str, settle_s: float) -> None:
    socks = connect_many(host, port, n)
    time.sleep(settle_s)  # let the server accept every connection first
    req = request(path, host, port)
    ep = select.epoll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = s
    sent_at: dict[int, float] = {}
    bufs: dict[int, bytes] = {}
    done: dict[int, float] = {}
    clock = time.monotonic
    for s in socks:
        fd = s.fileno()
        sent_at[fd] = clock()
        s.send(req)
    deadline = clock() + 30
    while len(done) < n and clock() < deadline:
        for fd, _ in ep.poll(1.0):
            now = clock()
            try:
                data = by_fd[fd].recv(65536)
            except BlockingIOError:
                continue
            if not data:
                ep.unregister(fd)
                done[fd] = float("nan")
                continue
            buf = bufs.get(fd, b"") + data
            bufs[fd] = buf
            if fd not in done and _response_complete(buf):
                done[fd] = now
                ep.unregister(fd)
    latencies = [done[fd] - sent_at[fd] for fd in sent_at if fd in done]
    statuses = sorted({bufs.get(fd, b"")[:12].decode("latin-1", "replace") for fd in sent_at})
    print(json.dumps({"latencies": latencies, "answered": len(done), "sent": n, "statuses": statuses}))
    for s in socks:
        s.close()


def fetch(host: str, port: int, path: str) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(request(path, host, port))
        buf = b""
        while not _response_complete(buf):
            data = s.recv(65536)
            if not data:
                break
            buf += data
    print(json.dumps({"response": buf.decode("latin-1")}))


def main(argv: list[str]) -> None:
    raise_nofile()
    mode, host, port = argv[0], argv[1], int(argv[2])
    if mode == "hold":
        hold(host, port, int(argv[3]), argv[4] if len(argv) > 4 else "/held")
    elif mode == "burst":
        burst(
            host, port, int(argv[3]), argv[4] if len(argv) > 4 else "/",
            float(argv[5]) if len(argv) > 5 else 1.0,
        )
    elif mode == "fetch":
        fetch(host, port, argv[3] if len(argv) > 3 else "/")
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
