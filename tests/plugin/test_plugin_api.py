"""faultserver.testing outside the fixture: running() for synchronous code, serve() for Trio
(through pytest-trio, and through trio.run directly), and how fast a server starts and stops.
"""

from __future__ import annotations

import errno
import socket
import statistics
import time

import httpx
import pytest
import trio

from faultserver.testing import FaultServer, load_source, running, serve
from tests.support.net import connect_errno
from tests.support.profiles import one_listener

LONG_S = 5.0

PROFILE = one_listener(response={"body": "ok\n"})


def test_running_serves_inside_the_block_and_stops_after() -> None:
    with running(PROFILE) as srv:
        port = srv["backend"].port
        with httpx.Client(timeout=LONG_S) as client:  # a kept-alive connection is open at exit
            assert client.get(srv.url + "/a").text == "ok\n"
            srv.set_accept("backend", "refuse")
            assert connect_errno(port) == errno.ECONNREFUSED
            srv.set_accept("backend", "open")
            assert srv.wait_for(type="request", path="/a", timeout=LONG_S)["method"] == "GET"
    assert connect_errno(port) == errno.ECONNREFUSED


def test_running_stops_when_the_block_raises() -> None:
    with pytest.raises(ValueError, match=r"^inside$"):
        with running(PROFILE) as srv:
            port = srv["backend"].port
            raise ValueError("inside")
    assert connect_errno(port) == errno.ECONNREFUSED


def test_running_keep_binds_and_missing_path() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    profile = one_listener(bind=f"127.0.0.1:{port}")
    with running(profile, keep_binds=True) as srv:
        assert srv["backend"].port == port
    with pytest.raises(Exception, match=r"^profile not found: /no/such/profile\.yaml$"):
        with running("/no/such/profile.yaml"):
            pass


@pytest.mark.trio
async def test_serve_in_pytest_trio_gives_the_same_handle() -> None:
    async with serve(PROFILE) as srv:
        assert isinstance(srv, FaultServer)
        port = srv["backend"].port
        async with httpx.AsyncClient(timeout=LONG_S) as client:
            assert (await client.get(srv.url + "/trio")).text == "ok\n"
            # the control methods work from inside a Trio loop too
            srv.set_rules("backend", [{"action": "respond", "status": 503}])
            assert (await client.get(srv.url + "/trio")).status_code == 503
            srv.set_accept("backend", "refuse")
            with pytest.raises(
                httpx.ConnectError, match=rf"^all attempts to connect to 127\.0\.0\.1:{port} failed$"
            ):
                async with httpx.AsyncClient(timeout=LONG_S) as fresh:
                    await fresh.get(srv.url)
            srv.reset()
            assert (await client.get(srv.url + "/again")).status_code == 200
        event = await srv.wait_for_async(type="response", path="/again", timeout=LONG_S)
        assert event["status"] == 200
        # the blocking wait_for would stall this loop: it says what to use instead
        with pytest.raises(
            RuntimeError,
            match=r"^wait_for\(\) would block this Trio loop; "
            r"in Trio code use `await srv\.wait_for_async\(\.\.\.\)`$",
        ):
            srv.wait_for(type="response")
    assert connect_errno(port) == errno.ECONNREFUSED


def test_serve_with_trio_run_directly() -> None:
    async def main() -> tuple[int, int]:
        async with serve(PROFILE) as srv:
            stream = await trio.open_tcp_stream("127.0.0.1", srv["backend"].port)
            async with stream:
                await stream.send_all(b"GET /raw HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                with trio.fail_after(LONG_S):
                    while chunk := await stream.receive_some():
                        data += chunk
            assert data.startswith(b"HTTP/1.1 200 ")
            assert data.endswith(b"\r\n\r\nok\n")
            await srv.wait_for_async(type="response", path="/raw", timeout=LONG_S)
            return srv["backend"].port, len(srv.requests())

    port, requests = trio.run(main)
    assert requests == 1
    assert connect_errno(port) == errno.ECONNREFUSED


def test_serve_stops_the_server_when_cancelled() -> None:
    ports: list[int] = []

    async def main() -> None:
        with trio.move_on_after(0.2):
            async with serve(PROFILE) as srv:
                ports.append(srv["backend"].port)
                await srv.wait_for_async(type="fault", timeout=30)  # never comes

    started = time.monotonic()
    trio.run(main)
    assert time.monotonic() - started < 5  # generous: the wait was abandoned, not served out
    assert connect_errno(ports[0]) == errno.ECONNREFUSED


def test_start_and_stop_time_over_50_servers(capsys, record_property) -> None:
    """Prints the mean; no timed assert (shared machine). The figure goes in the note."""
    profile = load_source(PROFILE)
    totals = []
    for _ in range(50):
        started = time.perf_counter()
        server = FaultServer(profile).start()
        server.stop()
        totals.append(time.perf_counter() - started)
    mean_ms = statistics.mean(totals) * 1000
    record_property("start_stop_mean_ms", round(mean_ms, 2))
    with capsys.disabled():
        print(
            f"\nfaultserver start+stop (no admin API): mean {mean_ms:.2f} ms, "
            f"median {statistics.median(totals) * 1000:.2f} ms, "
            f"max {max(totals) * 1000:.2f} ms over {len(totals)} servers"
        )


@pytest.mark.trio
async def test_serve_handle_stop_works_inside_trio_code() -> None:
    async with serve(PROFILE) as srv:
        port = srv["backend"].port
        srv.stop()  # from inside the Trio loop; serve()'s own exit then has nothing to do
        assert connect_errno(port) == errno.ECONNREFUSED
