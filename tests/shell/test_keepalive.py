"""Keep-alive faults over an in-memory stream: `idle_close` and `max_requests`, to the second.

Both end a connection with a silent FIN (no `Connection: close` is ever sent). `idle_close`
counts only while the connection waits for a request: from the accept, and again after each
answer; a connection busy in a delay, a dribble, a hang or a half-read request is not idle.
What pooled clients make of the FIN is tested on real sockets (tests/wire/test_keepalive.py,
tests/clients).
"""

from __future__ import annotations

import pytest
import trio

from faultserver._profile.model import CloseHow
from tests.support.memory import OK, body_of, get, listener_context, open_connection

pytestmark = pytest.mark.trio


def idle_after(seconds: str) -> dict:
    return {**OK, "keepalive": {"idle_close": seconds}}


async def test_idle_close_fins_an_idle_connection_silently(autojump_clock):
    async with open_connection(idle_after("3s")) as peer:
        await peer.send(get())
        response = await peer.receive_response()
        start = trio.current_time()
        assert await peer.receive_all() == b""
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.01)
        assert await peer.ended() is CloseHow.FIN
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection" not in response.lower()  # never announced
    [event] = peer.events.select(type="idle_close")
    assert (event["listener"], event["conn"]) == ("backend", 1)


async def test_idle_close_counts_from_the_accept(autojump_clock):
    async with open_connection(idle_after("3s")) as peer:
        start = trio.current_time()
        assert await peer.receive_all() == b""
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.01)
        assert await peer.ended() is CloseHow.FIN
    assert peer.types() == ["accept", "idle_close"]  # no request was read


async def test_idle_close_draws_each_idle_time_afresh(autojump_clock):
    listener = {**OK, "keepalive": {"idle_close": {"uniform": ["2s", "4s"]}}}
    ctx = listener_context(listener)
    waited = []
    for conn_id in (1, 2):
        async with open_connection(ctx, conn_id=conn_id) as peer:
            if conn_id == 1:
                await peer.send(get())
                await peer.receive_response()
            start = trio.current_time()
            assert await peer.receive_all() == b""
            waited.append(trio.current_time() - start)
            assert await peer.ended() is CloseHow.FIN
    # the listener's keep-alive stream: a draw at each accept and after each answer
    fresh = listener_context(listener)
    draws = [fresh.keepalive.idle_close.draw(fresh.keepalive_rng) for _ in range(3)]
    assert waited == pytest.approx([draws[1], draws[2]], abs=0.01)
    assert all(2.0 <= s <= 4.0 for s in waited) and waited[0] != waited[1]
    assert len(ctx.events.select(type="idle_close")) == 2


async def test_idle_close_waits_for_a_delayed_answer(autojump_clock):
    rules = [{"match": {"path": "/slow"}, "delay": "7s", "action": "respond"}]
    async with open_connection({**idle_after("2s"), "rules": rules}) as peer:
        start = trio.current_time()
        await peer.send(get("/slow"))
        response = await peer.receive_response()
        assert trio.current_time() - start == pytest.approx(7.0, abs=0.01)
        assert await peer.receive_all() == b""  # idle again after the answer: now the FIN
        assert trio.current_time() - start == pytest.approx(9.0, abs=0.01)
    assert body_of(response) == b"ok\n"
    assert len(peer.events.select(type="idle_close")) == 1


async def test_idle_close_waits_for_a_dribbled_answer(autojump_clock):
    rules = [{"action": "dribble", "chunk": 8, "interval": "1s"}]
    async with open_connection({**idle_after("1500ms"), "rules": rules}) as peer:
        start = trio.current_time()
        await peer.send(get())
        response = await peer.receive_response()
        took = trio.current_time() - start
        assert await peer.receive_all() == b""
        assert trio.current_time() - start == pytest.approx(took + 1.5, abs=0.01)
    assert took == pytest.approx(-(-len(response) // 8), abs=0.01)  # a piece a second
    assert body_of(response) == b"ok\n"
    assert len(peer.events.select(type="idle_close")) == 1


async def test_idle_close_waits_for_a_hang_to_end(autojump_clock):
    async with open_connection({**idle_after("1500ms"), "rules": [{"action": "hang", "for": "7s"}]}) as peer:
        start = trio.current_time()
        await peer.send(get())
        assert await peer.receive_all() == b""
        assert trio.current_time() - start == pytest.approx(7.0, abs=0.01)  # the hang's own end
        assert await peer.ended() is CloseHow.FIN
    assert peer.events.select(type="idle_close") == []


async def test_idle_close_waits_for_a_request_being_read(autojump_clock):
    async with open_connection(idle_after("2s")) as peer:
        await peer.send(b"GET /slowly HTTP/1.1\r\n")
        await trio.sleep(6)
        await peer.send(b"Host: t\r\n\r\n")
        assert body_of(await peer.receive_response()) == b"ok\n"
    assert peer.events.select(type="idle_close") == []


async def test_max_requests_fins_right_after_the_last_answer(autojump_clock):
    async with open_connection({**OK, "keepalive": {"max_requests": 2}}) as peer:
        responses = []
        for path in ("/1", "/2"):
            await peer.send(get(path))
            responses.append(await peer.receive_response())
        start = trio.current_time()
        assert await peer.receive_all() == b""
        assert trio.current_time() == start  # right after, not after a drain or a timeout
        assert await peer.ended() is CloseHow.FIN
    for response in responses:
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection" not in response.lower()
    [event] = peer.events.select(type="max_requests_close")
    assert event["requests"] == 2


async def test_max_requests_answers_pipelined_requests_up_to_the_limit(autojump_clock):
    async with open_connection({**OK, "keepalive": {"max_requests": 2}}) as peer:
        await peer.send(get("/1") + get("/2") + get("/3"))
        await peer.receive_response()
        await peer.receive_response()
        assert await peer.receive_all() == b""
    assert [e["path"] for e in peer.events.select(type="request")] == ["/1", "/2"]
