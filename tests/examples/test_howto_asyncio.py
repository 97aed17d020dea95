"""faultserver in asyncio code: serve() and wait_for_async() work under asyncio as under Trio.

The test runs with pytest-asyncio; with pytest-trio it is `@pytest.mark.trio`, unchanged otherwise.
"""

import aiohttp
import pytest

from faultserver.testing import serve


@pytest.mark.asyncio
async def test_asyncio_client_meets_fin_on_second_request():
    async with serve("fin") as srv:  # the shipped profiles/fin.yaml, on a free port
        async with aiohttp.ClientSession() as session:
            async with session.get(srv.url + "/orders") as first:
                assert first.status == 200
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with session.post(srv.url + "/orders", data=b"{}") as second:
                    await second.read()
        fault = await srv.wait_for_async(type="fault", action="close", timeout=2)
        assert (fault["path"], fault["request_on_connection"]) == ("/orders", 2)
