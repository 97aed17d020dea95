"""The handle under asyncio (pytest-asyncio) as under Trio (pytest-trio), shipped profiles by
name in the fixture and `running()`, and the fixture's `token=`.

The first test is the asyncio example of the docs: `serve()` and `wait_for_async` in an
asyncio test, with an asyncio client (aiohttp)."""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
import pytest
import trio

from faultserver import UsageError
from faultserver.testing import FROM_ENV, running, serve

FIN_ON_SECOND = {
    "version": 1,
    "listeners": [
        {
            "name": "backend",
            "bind": "127.0.0.1:0",
            "rules": [{"match": {"request_on_connection": 2}, "action": "close"}],
        }
    ],
}


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


@pytest.mark.asyncio
async def test_asyncio_wait_for_async_waits_without_blocking_the_loop():
    async with serve(FIN_ON_SECOND) as srv:
        waiting = asyncio.create_task(srv.wait_for_async(type="request", path="/late", timeout=5))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        async with httpx.AsyncClient() as client:  # the loop runs on while the wait goes on
            assert (await client.get(srv.url + "/late")).status_code == 200
        event = await asyncio.wait_for(waiting, 5)
        assert event["path"] == "/late"
        with pytest.raises(TimeoutError, match=r"^no event matching type='nothing' within 0\.1 s"):
            await srv.wait_for_async(type="nothing", timeout=0.1)


@pytest.mark.asyncio
async def test_asyncio_wait_for_async_can_be_cancelled():
    async with serve(FIN_ON_SECOND) as srv:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(srv.wait_for_async(type="nothing", timeout=30), 0.1)


@pytest.mark.trio
async def test_trio_wait_for_async_still_works():
    async with serve(FIN_ON_SECOND) as srv:
        async with httpx.AsyncClient() as client:
            assert (await client.get(srv.url + "/t")).status_code == 200
        event = await srv.wait_for_async(type="request", timeout=2)
        assert event["path"] == "/t"
        with trio.move_on_after(0.1) as scope:
            await srv.wait_for_async(type="nothing", timeout=30)
        assert scope.cancelled_caught


def test_running_and_the_fixture_take_shipped_names(faultserver):
    with running("fin-rst") as srv:
        assert [e["rule"] for e in srv.events(type="fault")] == []
        assert srv["backend"].port != 8080  # rebound to a free port
    srv = faultserver("fin")
    with httpx.Client() as client:
        assert client.get(srv.url + "/one").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(srv.url + "/two")
    assert [e["action"] for e in srv.events(type="fault")] == ["close"]


def test_fixture_unknown_name_names_the_shipped_profiles(faultserver):
    message = (
        r"^profile not found: fni \(relative to .*\): not a file, nor a shipped "
        r"profile \(did you mean 'fin'\? shipped profiles: .*fin-rst.*\)$"
    )
    with pytest.raises(UsageError, match=message):
        faultserver("fni")


def test_fixture_token(faultserver, monkeypatch):
    monkeypatch.setenv("FAULTSERVER_TOKEN", "from-env")
    srv = faultserver(FIN_ON_SECOND, admin=True, token="s3cret")
    with httpx.Client(base_url=srv.control_url, timeout=5) as api:
        assert api.get("/listeners").status_code == 401
        assert api.get("/listeners", headers={"authorization": "Bearer s3cret"}).status_code == 200
    # FAULTSERVER_TOKEN is read only when asked
    open_ = faultserver(FIN_ON_SECOND, admin=True)
    assert httpx.get(open_.control_url + "/listeners", timeout=5).status_code == 200
    env = faultserver(FIN_ON_SECOND, admin=True, token=FROM_ENV)
    with httpx.Client(base_url=env.control_url, timeout=5) as api:
        assert api.get("/listeners").status_code == 401
        assert api.get("/listeners", headers={"authorization": "Bearer from-env"}).status_code == 200
    monkeypatch.delenv("FAULTSERVER_TOKEN")
    with pytest.raises(UsageError, match=r"^token=FROM_ENV: FAULTSERVER_TOKEN is not set \(or empty\)$"):
        faultserver(FIN_ON_SECOND, admin=True, token=FROM_ENV)
