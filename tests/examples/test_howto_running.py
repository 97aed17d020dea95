"""faultserver without the fixture: running() in any synchronous code, serve() in Trio code."""

import httpx
import pytest
import trio

from faultserver.testing import running, serve

PROFILE = {
    "version": 1,
    "listeners": [{"name": "backend", "bind": "127.0.0.1:0", "response": {"body": "ok\n"}}],
}


def test_running_in_plain_code():
    with running(PROFILE) as srv:
        assert httpx.get(srv.url + "/orders", timeout=5.0).text == "ok\n"
        srv.set_accept("backend", "refuse")
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url + "/orders", timeout=5.0)
    # the block is over: every listener is closed


@pytest.mark.trio
async def test_serve_in_trio_code():
    async with serve(PROFILE) as srv:
        srv.set_rules("backend", [{"match": {"path": "/orders"}, "action": "reset"}])
        async with httpx.AsyncClient(timeout=5.0) as client:
            with pytest.raises(httpx.ReadError):
                await client.get(srv.url + "/orders")
        fault = await srv.wait_for_async(type="fault", timeout=5.0)  # never blocks the loop
        assert fault["action"] == "reset"


def test_serve_with_trio_run():
    async def main():
        async with serve(PROFILE) as srv:
            with trio.fail_after(5):
                stream = await trio.open_tcp_stream(srv["backend"].host, srv["backend"].port)
            await stream.aclose()
            return (await srv.wait_for_async(type="accept", timeout=5.0))["listener"]

    assert trio.run(main) == "backend"
