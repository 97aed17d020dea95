"""The connection loop and every action unit over an in-memory stream: no kernel, exact bytes.

The clock is Trio's `MockClock` with autojump, so timeouts, delays, dribbles and holds of
seconds take no time (the actions' pace is in test_actions.py, keep-alive in
test_keepalive.py). What a real client sees on a real socket (the RST as ECONNRESET, curl's
exit codes) is tested in tests/wire and tests/clients; here `transport.ended` tells FIN from
RST, and the bytes are compared exactly.
"""

from __future__ import annotations

import json

import pytest
import trio

from faultserver._profile.model import CloseHow
from tests.support.memory import OK, body_of, get, open_connection, status_of

pytestmark = pytest.mark.trio


async def test_healthy_requests_are_answered_on_one_connection(autojump_clock):
    async with open_connection({}) as peer:
        for n in (1, 2):
            await peer.send(get(f"/n{n}"))
            response = await peer.receive_response()
            assert status_of(response) == 200
            echo = json.loads(body_of(response))
            assert (echo["path"], echo["request_on_connection"], echo["connection"]) == (f"/n{n}", n, 1)
        await peer.stream.send_eof()
        assert await peer.ended() is CloseHow.FIN  # the client's FIN is answered with ours
    assert peer.types() == ["accept", "request", "response", "request", "response", "peer_close"]
    assert peer.events.select(type="peer_close")[0]["how"] == "fin"  # once per connection


async def test_pipelined_requests_are_answered_in_order(autojump_clock):
    async with open_connection(OK) as peer:
        await peer.send(get("/1") + get("/2") + get("/3"))
        for _ in range(3):
            assert body_of(await peer.receive_response()) == b"ok\n"
    assert [e["path"] for e in peer.events.select(type="response")] == ["/1", "/2", "/3"]


async def test_close_on_the_second_request_sends_nothing_and_fins(autojump_clock):
    rules = [{"match": {"request_on_connection": 2}, "action": "close", "drain": "50ms"}]
    async with open_connection({**OK, "rules": rules}) as peer:
        await peer.send(get("/1"))
        await peer.receive_response()
        await peer.send(get("/2"))
        assert await peer.receive_all() == b""
        assert await peer.ended() is CloseHow.FIN
    [fault] = peer.events.select(type="fault")
    assert (fault["action"], fault["path"], fault["request_on_connection"]) == ("close", "/2", 2)


async def test_reset_ends_with_rst(autojump_clock):
    async with open_connection({"rules": [{"action": "reset"}]}) as peer:
        await peer.send(get())
        assert await peer.receive_all() == b""
        assert await peer.ended() is CloseHow.RST


async def test_hang_holds_until_for_then_fins(autojump_clock):
    async with open_connection({"rules": [{"action": "hang", "for": "30s"}]}) as peer:
        start = trio.current_time()
        await peer.send(get())
        await peer.send(b"more bytes are read and thrown away")
        assert await peer.receive_all() == b""
        assert await peer.ended() is CloseHow.FIN
        assert trio.current_time() - start == pytest.approx(30.0, abs=1.5)
        assert peer.ctx.stats.in_flight == 0


async def test_hang_counts_the_request_in_flight_while_held(autojump_clock):
    async with open_connection({"rules": [{"action": "hang"}]}) as peer:
        await peer.send(get())
        await trio.sleep(5)
        assert peer.ctx.stats.in_flight == 1
        await peer.stream.send_eof()
        assert await peer.ended() is None  # the client left: nothing to end
    assert peer.events.select(type="peer_close")[0]["how"] == "fin"
    assert peer.ctx.stats.in_flight == 0


@pytest.mark.parametrize(("then", "ended"), [("close", CloseHow.FIN), ("reset", CloseHow.RST)])
async def test_partial_sends_exactly_the_first_bytes(autojump_clock, then, ended):
    rule = {"action": "partial", "bytes": 20, "then": then}
    async with open_connection({**OK, "rules": [rule]}) as peer:
        await peer.send(get())
        assert await peer.receive_all() == b"HTTP/1.1 200 OK\r\ndat"
        assert await peer.ended() is ended


async def test_partial_then_hang_holds_after_the_bytes(autojump_clock):
    rules = [{"action": "partial", "bytes": 9, "then": "hang"}]
    async with open_connection({**OK, "rules": rules}) as peer:
        await peer.send(get())
        assert await peer.receive_exactly(9) == b"HTTP/1.1 "
        assert await peer.silent_for(60)  # nothing more, and no end
        assert not peer.done.is_set()


async def test_connect_rule_acts_before_any_byte_is_read(autojump_clock):
    async with open_connection({"rules": [{"at": "connect", "action": "close", "drain": "10ms"}]}) as peer:
        assert await peer.receive_all() == b""
        assert await peer.ended() is CloseHow.FIN
    [fault] = peer.events.select(type="fault")
    assert "path" not in fault and fault["conn"] == 1


async def test_expect_continue_is_sent_only_for_an_action_that_answers(autojump_clock):
    head = b"POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    async with open_connection(OK) as peer:
        await peer.send(head)
        assert await peer.receive_exactly(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        await peer.send(b"abc")
        assert status_of(await peer.receive_response()) == 200
    [request] = peer.events.select(type="request")
    assert not request["fingerprint"].endswith(" -")


@pytest.mark.parametrize("action", ["close", "reset"])
async def test_expect_continue_meets_a_fault_without_its_body_being_asked_for(autojump_clock, action):
    head = b"POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3000\r\n\r\n"
    async with open_connection({"rules": [{"action": action}]}) as peer:
        await peer.send(head)
        assert await peer.receive_all() == b""  # no 100 Continue: the client keeps its body
    [request] = peer.events.select(type="request")
    assert request["fingerprint"] == "POST /p -"


async def test_expect_continue_waits_for_earlier_pipelined_answers(autojump_clock):
    rules = [{"match": {"path": "/slow"}, "action": "respond", "delay": "1s"}]
    head = b"POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    async with open_connection({**OK, "rules": rules}) as peer:
        await peer.send(get("/slow") + head)
        first = await peer.receive_response()
        assert status_of(first) == 200  # the answer to /slow comes before the 100 Continue
        assert await peer.receive_exactly(25) == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize(
    ("limits", "data", "status"),
    [
        ({"max_header_bytes": "1KiB"}, get("/", "X-Big: " + "a" * 2000), 431),
        ({"max_body_bytes": 10}, b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 413),
        ({}, b"GET / HTTP/2.0\r\n\r\n", 505),
        ({}, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
        ({}, b"GET  /x  HTTP/1.1\r\n\r\n", 400),
    ],
)
async def test_limits_are_answered_with_their_status_and_a_fin(autojump_clock, limits, data, status):
    async with open_connection({"limits": limits}) as peer:
        await peer.send(data)
        assert status_of(await peer.receive_all()) == status
        assert await peer.ended() is CloseHow.FIN


async def test_slow_headers_get_408_at_the_header_timeout(autojump_clock):
    async with open_connection({"limits": {"header_timeout": "5s"}}) as peer:
        await peer.send(b"GET / HT")
        start = trio.current_time()
        response = await peer.receive_response()
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.1)
    assert json.loads(body_of(response)) == {"error": "request headers not received in time"}


async def test_bad_fault_header_is_answered_400_naming_the_problem(autojump_clock):
    async with open_connection({}) as peer:
        await peer.send(get("/", "X-Fault: clse"))
        response = await peer.receive_all()
    assert status_of(response) == 400
    assert json.loads(body_of(response))["error"].startswith("x-fault: unknown action 'clse'")


async def test_drop_with_rst_resets_an_idle_connection(autojump_clock):
    async with open_connection(OK) as peer:
        await peer.send(get())
        await peer.receive_response()
        await trio.sleep(1)
        assert not peer.conn.busy
        peer.conn.shutdown(CloseHow.RST)
        assert await peer.ended() is CloseHow.RST
