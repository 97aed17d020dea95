"""What an aiohttp client meets for each D504CO cause, and how to assert that it retried.

The server runs in its own thread, so plain asyncio.run() in a synchronous test is enough.
"""

import asyncio

import aiohttp
import pytest

# One listener per D504CO cause; the fixture moves each to 127.0.0.1 on a free port.
PROFILE = """
version: 1
listeners:
  - name: connect-timeout     # "Timeout connecting to HOST:PORT"
    bind: 127.0.0.1:0
    accept: stall
  - name: fin                 # "Connection is closed"
    bind: 127.0.0.1:0
    rules:
      - {name: fin-on-reuse, match: {request_on_connection: 2}, action: close}
  - name: refused             # "Connection refused"
    bind: 127.0.0.1:0
    accept: refuse
  - name: slow                # "Connection lease request time out"
    bind: 127.0.0.1:0
    rules:
      - {action: respond, delay: 1s}
"""
TIMEOUT = aiohttp.ClientTimeout(total=5.0)


@pytest.fixture
def srv(faultserver):
    return faultserver(PROFILE)


async def status_of(session: aiohttp.ClientSession, method: str, url: str) -> int:
    async with session.request(method, url) as response:
        await response.read()  # the whole body, so the connection goes back to the pool
        return response.status


def test_stall_gives_connection_timeout_error(srv):
    async def main():
        timeout = aiohttp.ClientTimeout(total=5.0, sock_connect=0.5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await status_of(session, "GET", srv["connect-timeout"].url)

    with pytest.raises(aiohttp.ConnectionTimeoutError):
        asyncio.run(main())


def test_fin_on_a_reused_connection_gives_server_disconnected_error(srv):
    url = srv["fin"].url

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            assert await status_of(session, "POST", url + "/warmup") == 200
            await status_of(session, "POST", url + "/orders")  # same connection: FIN, no answer

    with pytest.raises(aiohttp.ServerDisconnectedError, match=r"^Server disconnected$"):
        asyncio.run(main())
    assert srv.retries() == []  # aiohttp does not send a POST again


def test_refuse_gives_client_connector_error(srv):
    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            await status_of(session, "GET", srv["refused"].url)

    with pytest.raises(aiohttp.ClientConnectorError, match=r"Connect call failed") as info:
        asyncio.run(main())
    assert info.value.os_error.strerror.startswith("Connect call failed")
    assert isinstance(info.value.os_error, ConnectionRefusedError)


def test_slow_backend_exhausts_the_pool(srv):
    # aiohttp's `connect` timeout covers the wait for a pooled connection (and the TCP
    # connect): a full pool raises the same ConnectionTimeoutError as a stalled connect.
    async def main():
        connector = aiohttp.TCPConnector(limit=2)
        timeout = aiohttp.ClientTimeout(total=5.0, connect=0.2)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            calls = [status_of(session, "GET", srv["slow"].url) for _ in range(3)]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes if isinstance(o, Exception)] == [aiohttp.ConnectionTimeoutError]
    assert [o for o in outcomes if not isinstance(o, Exception)] == [200, 200]
    assert srv["slow"].peak_connections == 2


def test_aiohttp_retries_get_after_fin_by_itself(srv):
    url = srv["fin"].url

    async def main():
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            await status_of(session, "GET", url + "/warmup")
            return await status_of(session, "GET", url + "/orders")

    assert asyncio.run(main()) == 200  # the client never saw the FIN...
    [retry] = srv.retries()  # ...but the server saw the request twice
    assert (retry["method"], retry["path"], retry["request_on_connection"]) == ("GET", "/orders", 1)
