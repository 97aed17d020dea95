"""Floods: slowloris, a connect flood, running out of file descriptors, held connections.

The floods run against `faultserver run` in a subprocess (its own process, file limit and
CPU share, as in production) and are marked `slow`; the clients are Trio tasks in the test
process, bounded in count and time. Healthy requests on the same listener must be served
throughout.
"""

from __future__ import annotations

import re
import resource
import socket
import time
from collections import Counter

import pytest
import trio
from _hardening import HEALTHY_REQUEST, assert_error_answer, connect, healthy, raise_own_fd_limit

from tests.support.cli import start_cli
from tests.support.net import recv_to_fin
from tests.support.profiles import one_listener
from tests.support.wait import wait_until

FLOOD_PROFILE = """\
version: 1
listeners:
  - name: backend
    bind: 127.0.0.1:0
    limits:
      header_timeout: {header_timeout}
"""


async def _healthy_async(port: int, timeout: float = 10.0) -> float:
    """One healthy request (new connection, Connection: close); returns seconds taken."""
    start = trio.current_time()
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(HEALTHY_REQUEST)
            data = await _until_eof(stream, timeout)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:200]
    return trio.current_time() - start


async def _healthy_meanwhile(port: int, until: trio.Event, latencies: list[float]) -> None:
    while not until.is_set():
        latencies.append(await _healthy_async(port))
        await trio.sleep(0.2)


async def _until_eof(stream: trio.SocketStream, timeout_s: float) -> bytes:
    """What the server sends until it ends the stream (at most `timeout_s` of waiting)."""
    data = b""
    with trio.fail_after(timeout_s):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


async def _connected(port: int, pause_s: float) -> trio.SocketStream | None:
    """A new connection, or None after a pause of `pause_s` when the connect failed (a
    flooded accept queue drops SYNs)."""
    try:
        return await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        await trio.sleep(pause_s)
        return None


def _answer_kind(data: bytes) -> str:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return match.group(1).decode() if match else f"other:{data[:20]!r}"


# --- slowloris --------------------------------------------------------------------------------


@pytest.mark.slow
def test_flood_slowloris_1000_connections_healthy_requests_still_served(tmp_path):
    """1,000 connections each sending a header byte every 1.5 s; header_timeout 2 s.

    Each slow connection is cut off with a 408 once its header deadline passes, and the
    attacker reconnects at once (as slowloris does), keeping ~1,000 open for 8 s. A healthy
    client meanwhile gets every answer.
    """
    raise_own_fd_limit(3000)
    srv = start_cli(tmp_path, FLOOD_PROFILE.format(header_timeout="2s"))
    port = srv.port("backend")
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    connected = [0]
    resets = [0]

    async def slow_client(deadline: float) -> None:
        line = b"GET /slowloris HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        while trio.current_time() < deadline:
            stream = await _connected(port, pause_s=0.1)
            if stream is None:
                continue
            connected[0] += 1
            async with stream:
                got = b""
                for byte in line:
                    with trio.move_on_after(1.5):
                        got = await stream.receive_some(65536)
                    if got or trio.current_time() >= deadline:
                        break
                    await stream.send_all(bytes([byte]))
                if not got:
                    return  # the flood is over
                try:
                    got += await _until_eof(stream, 5)
                except trio.BrokenResourceError:
                    resets[0] += 1
                answers[_answer_kind(got)] += 1
                if _answer_kind(got) == "408":
                    assert_error_answer(got, 408, "Request Timeout", "request headers not received in time")

    async def main() -> None:
        done = trio.Event()
        deadline = trio.current_time() + 8.0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_healthy_meanwhile, port, done, latencies)
            async with trio.open_nursery() as flood:
                for _ in range(1000):
                    flood.start_soon(slow_client, deadline)
            done.set()
        latencies.append(await _healthy_async(port))  # and after

    try:
        start = time.monotonic()
        trio.run(main)
        took = time.monotonic() - start
        rc, _ = srv.terminate()
    finally:
        srv.kill()
    print(
        f"slowloris: {connected[0]} connections, {answers}, "
        f"healthy {len(latencies)} slowest {sorted(latencies)[-5:]}"
    )
    assert rc == 0, srv.log()
    assert took < 60
    assert connected[0] >= 1000
    # every slow connection ended with a 408 (and nothing else), and cleanly
    assert set(answers) == {"408"}, answers
    assert answers["408"] >= 1000
    assert resets[0] == 0
    # healthy requests all answered (each at most a few seconds, even on a busy 2-core box)
    assert len(latencies) >= 10
    assert max(latencies) < 5.0, sorted(latencies)[-5:]
    assert "Traceback" not in srv.log()


# --- connect flood ----------------------------------------------------------------------------


@pytest.mark.slow
def test_flood_connects_healthy_requests_still_served(tmp_path):
    """3,000 connects as fast as 16 workers can make them, half closed with RST, half with FIN,
    and 500 held silent (each gets its 408 at the header deadline). Healthy requests go on.

    `backlog: 1024`: with the default 128 the kernel's accept queue overflows in such a
    burst, and a handshake completed by a SYN cookie while the queue is full is dropped
    without a trace: a client that then sends nothing believes it is connected while the
    server never hears of it (one that sends retransmits and gets in). That is the
    kernel's doing, so the test gives the queue room to see faultserver's own deadline.
    """
    raise_own_fd_limit(3000)
    srv = start_cli(tmp_path, FLOOD_PROFILE.format(header_timeout="2s") + "    backlog: 1024\n")
    port = srv.port("backend")
    latencies: list[float] = []
    silent_answers: Counter[str] = Counter()
    made = [0]
    linger_rst = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")

    async def churn(worker: int, count: int) -> None:
        for i in range(count):
            stream = await _connected(port, pause_s=0.05)
            if stream is None:
                continue
            made[0] += 1
            if (worker + i) % 2:
                stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_rst)
            await stream.aclose()

    async def silent(held: list) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        held.append(stream)
        data = await _until_eof(stream, 10)
        silent_answers[_answer_kind(data)] += 1
        await stream.aclose()

    async def main() -> None:
        done = trio.Event()
        held: list = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_healthy_meanwhile, port, done, latencies)
            async with trio.open_nursery() as flood:
                for _ in range(500):
                    flood.start_soon(silent, held)
                for worker in range(16):
                    flood.start_soon(churn, worker, 3000 // 16)
            done.set()
        latencies.append(await _healthy_async(port))

    try:
        trio.run(main)
        rc, _ = srv.terminate()
    finally:
        srv.kill()
    print(f"connect flood: {made[0]} connects, silent {silent_answers}, healthy max {max(latencies):.3f}s")
    assert rc == 0, srv.log()
    assert made[0] >= 2900
    assert silent_answers == Counter({"408": 500})
    assert len(latencies) >= 5
    assert max(latencies) < 5.0, sorted(latencies)[-5:]
    assert "Traceback" not in srv.log()


# --- running out of file descriptors -----------------------------------------------------------

FD_LIMIT = 64


def _low_fd_limit() -> None:
    # soft AND hard: faultserver raises its soft limit to the hard one at start
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def test_flood_out_of_file_descriptors_is_logged_and_recovered(tmp_path):
    """More connections than the server has file descriptors: EMFILE is logged (once, not per
    retry), nothing crashes, and once the clients go the queued and new ones are served."""
    srv = start_cli(tmp_path, FLOOD_PROFILE.format(header_timeout="60s"), preexec_fn=_low_fd_limit)
    port = srv.port("backend")
    clients = []
    try:
        # the limit held: faultserver could not raise it past the hard limit
        wait_until(lambda: "level=INFO started " in srv.log(), what="start logged")
        assert re.search(rf"level=INFO started seed=\d+ open_file_limit={FD_LIMIT}$", srv.log(), re.M)
        for _ in range(FD_LIMIT + 40):  # the kernel queues those the server cannot accept
            clients.append(connect(port))
        wait_until(lambda: "error=EMFILE" in srv.log(), what="EMFILE logged")
        time.sleep(0.5)  # five more failed retries: still one line
        assert srv.proc.poll() is None, srv.log()
        failures = [line for line in srv.log().splitlines() if "accept failed" in line]
        assert len(failures) == 1, failures
        assert re.search(
            r"level=ERROR accept failed listener=backend error=EMFILE \(Too many open files\) "
            r"in_a_row=1; retrying every 0\.1s$",
            failures[0],
        ), failures
        # a queued client (not accepted yet) is served once descriptors are free again
        last = clients.pop()
        last.sendall(HEALTHY_REQUEST)
        for sock in clients:
            sock.close()
        clients.clear()
        reply = recv_to_fin(last)
        last.close()
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
        healthy(port)
        assert re.search(
            r"level=WARNING accept recovered listener=backend after=\d+ failed accepts", srv.log()
        )
        rc, _took = srv.terminate()
    finally:
        for sock in clients:
            sock.close()
        srv.kill()
    assert rc == 0, srv.log()
    assert "Traceback" not in srv.log()


# --- held connections are bounded by max_connections -----------------------------------------


def test_flood_hang_is_bounded_by_max_connections(faultserver):
    srv = faultserver(one_listener(max_connections=5, rules=[{"match": {"path": "/hang"}, "action": "hang"}]))
    port = srv["backend"].port
    held = []
    try:
        for _ in range(12):  # 5 accepted and held, 7 queued by the kernel (backlog 128)
            sock = connect(port, timeout=0.5)
            sock.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(sock)
        wait_until(lambda: len(srv.events(type="fault", action="hang")) == 5, what="5 hangs")
        time.sleep(0.5)
        assert srv["backend"].open_connections == 5
        assert len(srv.events(type="accept")) == 5
        for sock in held:  # nobody gets an answer
            sock.settimeout(0.05)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        # a healthy client waits in the queue too: the limit holds for everyone
        with connect(port, timeout=0.25) as waiting:  # nothing will come: a short wait tells
            waiting.sendall(HEALTHY_REQUEST)
            with pytest.raises(TimeoutError):
                waiting.recv(1)
        for sock in held:
            sock.close()
        held.clear()
        wait_until(lambda: srv["backend"].open_connections == 0, what="all released")
        healthy(port)
        assert srv["backend"].peak_connections == 5
    finally:
        for sock in held:
            sock.close()


def test_flood_stall_without_file_descriptors_switches_anyway(faultserver, monkeypatch, caplog):
    """`stall` fills the accept queue with placeholder sockets of its own; with no descriptor
    left for them the switch still happens (a queue not quite full), logged, never a crash."""
    import errno as errno_
    import logging

    import trio

    srv = faultserver(one_listener())
    caplog.set_level(logging.WARNING, logger="faultserver")
    monkeypatch.setattr(logging.getLogger("faultserver"), "propagate", True)

    def no_fds(*args, **kwargs):
        raise OSError(errno_.EMFILE, "Too many open files")

    monkeypatch.setattr(trio.socket, "socket", no_fds)
    srv.set_accept("backend", "stall")
    assert srv["backend"].accept == "stall"
    assert [r.getMessage() for r in caplog.records] == [
        "stall placeholder failed listener=backend error=Too many open files"
    ]
    monkeypatch.undo()
    srv.set_accept("backend", "open")
    healthy(srv["backend"].port)
