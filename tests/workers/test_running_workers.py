"""`running(profile, workers=N)`: the test handle over `run --workers N`'s fleet (real sockets).

The handle drives the fleet's parent in the test's process; the workers are child
processes on the listener's port. Each test judges what a real client sees (answers,
refused connects, a FIN at the stop) and what the handle's events say (which worker).
"""

from __future__ import annotations

import collections
import errno
import os
import re
import select
import shutil
import socket
import subprocess
from typing import Any

import httpx
import pytest
import trio

from faultserver.testing import UsageError, running, serve
from tests.support.wait import wait_until

PROFILE: dict[str, Any] = {
    "version": 1,
    "listeners": [
        {
            "name": "api",
            "bind": "127.0.0.1:0",
            "response": {"body": "ok\n"},
            "rules": [{"match": {"path": "/boom"}, "action": "reset"}],
        }
    ],
}


def children() -> set[int]:
    """The live (not zombie) processes this test process started, from any thread."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found |= {int(p) for p in f.read().split()}
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
    return {p for p in found if not gone(p)}


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split()[:2] == ["State:", "Z"] for line in f)
    except FileNotFoundError:
        return True


def test_running_with_two_workers_spreads_connections_and_stops_with_a_fin() -> None:
    before = children()
    with running(PROFILE, workers=2) as srv:
        workers = children() - before
        assert len(workers) == 2
        for _ in range(40):  # a new connection each: the kernel picks a worker for each
            with httpx.Client(timeout=5.0) as client:
                assert client.get(srv.url + "/orders").text == "ok\n"
        wait_until(lambda: len(srv.events(type="response")) == 40,
                   what=lambda: srv.events_tail())
        assert {e["worker"] for e in srv.events(type="response")} == {0, 1}
        # the counters are the sum of the workers' (each sends them within 0.1 s)
        wait_until(lambda: srv["api"].request_count == 40, what=lambda: str(srv["api"].info()))
        assert srv["api"].connections == 40

        # the profile's rules hold in every worker; wait_for sees a worker's fault
        with pytest.raises(httpx.ReadError):
            httpx.get(srv.url + "/boom", timeout=5.0)
        fault = srv.wait_for(type="fault", action="reset", timeout=5.0)
        assert fault["worker"] in (0, 1)

        # a mode switch is answered once every worker applied it: the next connect is refused
        srv.set_accept("api", "refuse")
        for _ in range(20):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((srv["api"].host, srv["api"].port), timeout=5).close()
        srv.set_accept("api", "open")

        # a connection kept alive through the stop gets a FIN, and every worker has exited
        kept = socket.create_connection((srv["api"].host, srv["api"].port), timeout=5)
        kept.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200 ")
        port = srv["api"].port
    with kept:
        assert kept.recv(65536) == b""  # FIN, not ConnectionResetError
    assert not (workers & children())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_running_with_one_worker_starts_no_process() -> None:
    before = children()
    with running(PROFILE) as srv, running(PROFILE, workers=1) as one:
        assert httpx.get(srv.url, timeout=5.0).text == "ok\n"
        assert httpx.get(one.url, timeout=5.0).text == "ok\n"
        assert children() == before
        assert "worker" not in srv.wait_for(type="response", timeout=5.0)


@pytest.mark.parametrize("workers", [0, -2, "2", 1.5])
def test_running_rejects_a_workers_count_that_is_not_a_whole_number_from_1(workers: Any) -> None:
    with pytest.raises(UsageError, match=rf"^workers: expected a whole number from 1, got {workers!r}$"):
        with running(PROFILE, workers=workers):
            pass


@pytest.mark.trio
async def test_serve_with_two_workers_answers_from_both() -> None:
    async with serve(PROFILE, workers=2) as srv:
        for _ in range(30):
            async with httpx.AsyncClient(timeout=5.0) as client:
                assert (await client.get(srv.url + "/orders")).text == "ok\n"
        with trio.fail_after(10):
            while len(srv.events(type="response")) < 30:
                await trio.sleep(0.02)
        assert {e["worker"] for e in srv.events(type="response")} == {0, 1}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_every_event_of_a_burst_reaches_the_parent() -> None:
    # thousands of events a second from each worker: each sends all that piled up since its
    # last send, oldest first (an earlier fleet sent only the newest 512 and lost the rest)
    with running(PROFILE, workers=2) as srv:
        first = srv.events()[-1]["id"]
        done = subprocess.run(
            ["wrk", "-t1", "-c20", "-d1s", srv.url + "/orders"],
            capture_output=True, text=True, timeout=30, check=True,
        )
        requests = int(re.search(r"(\d+) requests in", done.stdout)[1])  # type: ignore[index]
        assert requests > 2_000, done.stdout
        # every request the workers counted has its request and response events in the
        # parent's log (ids are consecutive: the newest id counts everything logged)
        wait_until(lambda: srv["api"].request_count >= requests, what=lambda: str(srv["api"].info()))
        counted = srv["api"].request_count
        wait_until(lambda: srv.events()[-1]["id"] - first >= 2 * counted, timeout=30,
                   what=lambda: f"{srv.events()[-1]['id'] - first} events for {counted} requests")
        # both workers' events are among them: any kept event of the burst, not the newest
        # 1,000 (a worker that sent its batches last, with both cores busy, filled those alone)
        burst = srv.events(since=first, type="response")
        assert {e["worker"] for e in burst} == {0, 1}, collections.Counter(e["worker"] for e in burst)


def test_the_handles_drop_ends_connections_in_every_worker() -> None:
    with running(PROFILE, workers=2) as srv:
        kept = []
        for _ in range(12):
            sock = socket.create_connection((srv["api"].host, srv["api"].port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            kept.append(sock)
        wait_until(lambda: len({e["worker"] for e in srv.events(type="response")}) == 2,
                   what=lambda: srv.events_tail())
        assert srv.drop(how="rst") == 12
        for sock in kept:
            with sock, pytest.raises(ConnectionResetError):
                sock.recv(65536)


def test_a_retry_that_lands_in_another_worker_is_a_retry() -> None:
    # each request meets a reset (asked for by the fault header) on its own connection, and
    # is sent again on a new one, which the kernel gives to either worker
    with running(PROFILE, workers=2) as srv:
        for i in range(24):
            with pytest.raises(httpx.ReadError):
                httpx.get(f"{srv.url}/r/{i}", headers={"x-fault": "reset"}, timeout=5.0)
            assert httpx.get(f"{srv.url}/r/{i}", timeout=5.0).text == "ok\n"
        wait_until(lambda: len(srv.events(type="response")) == 24, what=lambda: srv.events_tail())
        faults = {e["path"]: e["worker"] for e in srv.events(type="fault")}
        answered = {e["path"]: e["worker"] for e in srv.events(type="response")}
        crossed = [p for p in answered if answered[p] != faults[p]]
        assert crossed  # 24 pairs over two workers: some crossed (all alike: 2 ** -23)
        retried = [e for e in srv.events(type="request") if e.get("retry")]
        assert sorted(e["path"] for e in retried) == sorted(answered)
        assert all(e["conn"] not in {f["conn"] for f in srv.events(type="fault")} for e in retried)
        wait_until(lambda: srv["api"].retry_count == 24, what=lambda: str(srv["api"].info()))


def test_stall_with_two_workers_times_out_every_connect() -> None:
    # both workers' accept queues are full: a SYN to either is dropped, so no handshake
    # completes (a client sees a connect timeout, not a read timeout after a handshake)
    with running(PROFILE, workers=2) as srv:
        srv.set_accept("api", "stall")
        # 24 connects at once, which the kernel hashes over both workers' sockets
        clients = [socket.socket() for _ in range(24)]
        try:
            for sock in clients:
                sock.setblocking(False)
                assert sock.connect_ex((srv["api"].host, srv["api"].port)) == errno.EINPROGRESS
            _, connected, _ = select.select([], clients, [], 1.0)
            assert connected == []  # not one handshake completed within a second
        finally:
            for sock in clients:
                sock.close()
        srv.set_accept("api", "open")
        assert httpx.get(srv.url + "/back", timeout=5.0).text == "ok\n"
