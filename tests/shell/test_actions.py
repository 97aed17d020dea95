"""The actions' bytes and pace over an in-memory stream: what each writes, when, and how it ends.

Trio's `MockClock` with autojump makes every delay, interval, rate and hold exact and free:
a piece of a dribble arrives at the very second its interval says. Each answer is compared
with the bytes the healthy response would have been (`respond_bytes`), the date made equal.
What clients report of the same faults on a real socket is in tests/wire/test_actions.py.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import trio

from faultserver._profile.model import CloseHow
from faultserver._wire.actions.garbage import GARBAGE_PIECE_BYTES
from tests.support.memory import (
    OK,
    body_of,
    get,
    listener_context,
    open_connection,
    same_date,
    status_of,
)

pytestmark = pytest.mark.trio

#: A kilobyte of filler: a response long enough to cut in its body.
FILLER: dict[str, Any] = {"response": {"headers": {"content-type": "text/plain"}, "body": {"size": "1KiB"}}}
CLOSE = get("/", "Connection: close")


async def respond_bytes(listener: dict[str, Any], request: bytes) -> bytes:
    """What the listener's healthy response to `request` is, whole (`request` closes)."""
    async with open_connection(listener) as peer:
        await peer.send(request)
        return await peer.receive_all()


def expected_garbage(seed: int, size: int, rule: str = "junk") -> bytes:
    """One draw of the whole from the rule's own stream, never starting like HTTP."""
    expected = bytearray(random.Random(f"{seed}/backend/{rule}").randbytes(size))
    if expected[:1] in (b"H", b"h"):
        expected[0] ^= 0x80
    return bytes(expected)


def gaps(pieces: list[tuple[float, bytes]], start: float) -> list[float]:
    times = [start] + [at for at, _ in pieces]
    return [b - a for a, b in itertools.pairwise(times)]


async def answer_times(rule: dict[str, Any], count: int) -> list[float]:
    """The seconds each of `count` requests on one connection waits for its 503 from `rule`."""
    took = []
    async with open_connection({**OK, "rules": [rule]}) as peer:
        for _ in range(count):
            start = trio.current_time()
            await peer.send(get())
            assert status_of(await peer.receive_response()) == 503
            took.append(round(trio.current_time() - start, 9))
    return took


# --- hang ---------------------------------------------------------------------------------


async def test_hang_holds_silently_and_discards_what_it_reads(autojump_clock):
    async with open_connection({**OK, "rules": [{"match": {"path": "/hang"}, "action": "hang"}]}) as peer:
        await peer.send(get("/hang"))
        assert await peer.silent_for(60)
        await peer.send(get("/more") + b"not even http\r\n\r\n")  # read and thrown away
        assert await peer.silent_for(60)
        assert not peer.done.is_set()
    assert [e["path"] for e in peer.events.select(type="request")] == ["/hang"]


async def test_hang_at_connect_holds_then_fins_without_reading_a_request(autojump_clock):
    async with open_connection({"rules": [{"at": "connect", "action": "hang", "for": "3s"}]}) as peer:
        start = trio.current_time()
        await peer.send(get("/x"))
        assert await peer.receive_all() == b""
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.01)
        assert await peer.ended() is CloseHow.FIN
    assert peer.events.select(type="request") == []


# --- partial ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [5, 200, "1MiB"], ids=["in-the-status-line", "in-the-body", "more-than-all"])
async def test_partial_is_the_start_of_what_respond_sends(autojump_clock, size):
    full = await respond_bytes(FILLER, CLOSE)
    async with open_connection({**FILLER, "rules": [{"action": "partial", "bytes": size}]}) as peer:
        await peer.send(CLOSE)
        data = await peer.receive_all()
        assert await peer.ended() is CloseHow.FIN
    cut = size if isinstance(size, int) else len(full)
    assert same_date(data) == same_date(full)[:cut]
    assert len(full) > 1024 and len(data) == cut


async def test_partial_of_an_http10_request_cuts_the_response_respond_would_send(autojump_clock):
    request = get("/p", version="HTTP/1.0")
    full = await respond_bytes(OK, request)
    async with open_connection({**OK, "rules": [{"action": "partial", "bytes": "1MiB"}]}) as peer:
        await peer.send(request)
        data = await peer.receive_all()
    assert same_date(data) == same_date(full)
    assert b"connection: close\r\n" in data and b"keep-alive" not in data
    assert data.endswith(b"\r\n\r\nok\n")


# --- dribble ------------------------------------------------------------------------------


async def test_dribble_sends_a_chunk_every_interval(autojump_clock):
    full = await respond_bytes(OK, CLOSE)
    async with open_connection(
        {**OK, "rules": [{"action": "dribble", "chunk": 16, "interval": "2s"}]}
    ) as peer:
        start = trio.current_time()
        await peer.send(CLOSE)
        pieces = await peer.receive_pieces()
        assert await peer.ended() is CloseHow.FIN
    data = b"".join(piece for _, piece in pieces)
    assert same_date(data) == same_date(full)
    assert [piece for _, piece in pieces] == [data[i : i + 16] for i in range(0, len(data), 16)]
    assert gaps(pieces, start) == pytest.approx([2.0] * len(pieces), abs=0.001)


async def test_dribble_rate_paces_the_whole_response(autojump_clock):
    full = await respond_bytes(FILLER, CLOSE)
    async with open_connection({**FILLER, "rules": [{"action": "dribble", "rate": "2KiB/s"}]}) as peer:
        start = trio.current_time()
        await peer.send(CLOSE)
        pieces = await peer.receive_pieces()
    assert same_date(b"".join(piece for _, piece in pieces)) == same_date(full)
    sent = 0
    for at, piece in pieces:  # each piece leaves once the rate has paid for it
        sent += len(piece)
        assert at - start == pytest.approx(sent / 2048, abs=0.001)
    assert sent == len(full) and len(pieces) > 20


async def test_dribble_interval_is_drawn_for_each_piece(autojump_clock):
    rule = {"action": "dribble", "chunk": 8, "interval": {"uniform": ["5ms", "15ms"]}}
    async with open_connection({**OK, "rules": [rule]}) as peer:
        start = trio.current_time()
        await peer.send(CLOSE)
        pieces = await peer.receive_pieces()
    assert body_of(b"".join(piece for _, piece in pieces)) == b"ok\n"
    drawn = gaps(pieces, start)
    assert all(0.005 - 1e-9 <= gap <= 0.015 + 1e-9 for gap in drawn), drawn
    assert len(set(drawn)) > len(drawn) // 2  # drawn afresh, not one draw for all


# --- garbage ------------------------------------------------------------------------------


async def test_garbage_is_seeded_streamed_and_never_starts_like_http(autojump_clock):
    size = 3 * GARBAGE_PIECE_BYTES + 7
    async with open_connection(
        {"rules": [{"name": "junk", "action": "garbage", "bytes": size}]}, seed=3
    ) as peer:
        await peer.send(get())
        junk = await peer.receive_all()
        assert await peer.ended() is CloseHow.FIN
    assert junk == expected_garbage(3, size)


@pytest.mark.parametrize("seed", [11, 12])
async def test_garbage_default_is_64_bytes_of_the_seed(autojump_clock, seed):
    async with open_connection({"rules": [{"name": "junk", "action": "garbage"}]}, seed=seed) as peer:
        await peer.send(get())
        junk = await peer.receive_all()
    assert junk == expected_garbage(seed, 64)


async def test_garbage_at_connect_arrives_before_any_request(autojump_clock):
    rule = {"name": "junk", "at": "connect", "action": "garbage", "bytes": 32}
    async with open_connection({"rules": [rule]}) as peer:
        junk = await peer.receive_all()  # nothing sent: the bytes come anyway
        assert await peer.ended() is CloseHow.FIN
    assert junk == expected_garbage(7, 32)
    assert peer.events.select(type="request") == []


# --- delay before an action ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "low_s", "high_s"),
    [
        ("300ms", 0.3, 0.3),
        (0.3, 0.3, 0.3),
        ({"uniform": ["200ms", "300ms"]}, 0.2, 0.3),
        ({"normal": {"mean": "250ms", "stddev": "10ms"}}, 0.15, 0.35),
        ({"lognormal": {"median": "250ms", "sigma": 0.05}}, 0.15, 0.35),
    ],
    ids=["fixed-string", "fixed-number", "uniform", "normal", "lognormal"],
)
async def test_delay_is_waited_before_each_answer(autojump_clock, delay, low_s, high_s):
    took = await answer_times({"action": "respond", "status": 503, "delay": delay}, 3)
    assert all(low_s <= t <= high_s for t in took), took
    assert len(set(took)) == (1 if low_s == high_s else 3)  # a draw per request


async def test_delay_normal_is_clipped_at_zero(autojump_clock):
    rule = {"action": "respond", "status": 503, "delay": {"normal": {"mean": "0ms", "stddev": "100ms"}}}
    took = await answer_times(rule, 20)
    assert min(took) == 0 and max(took) > 0  # negative draws wait nothing


async def test_delay_then_reset_ends_with_rst_after_the_delay(autojump_clock):
    async with open_connection({"rules": [{"action": "reset", "delay": "2s"}]}) as peer:
        start = trio.current_time()
        await peer.send(get())
        assert await peer.receive_all() == b""
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.01)
        assert await peer.ended() is CloseHow.RST


async def test_delay_holds_up_only_its_own_connection(autojump_clock):
    ctx = listener_context(
        {**OK, "rules": [{"match": {"path": "/slow"}, "delay": "10s", "action": "respond"}]}
    )
    async with open_connection(ctx) as slow, open_connection(ctx, conn_id=2) as fast:
        start = trio.current_time()
        await slow.send(get("/slow"))
        await trio.sleep(1)  # /slow is read and waits its delay
        await fast.send(get("/fast"))
        assert body_of(await fast.receive_response()) == b"ok\n"
        assert trio.current_time() - start == pytest.approx(1.0, abs=0.01)
        assert body_of(await slow.receive_response()) == b"ok\n"
        assert trio.current_time() - start == pytest.approx(10.0, abs=0.01)
    assert [(e["path"], e["conn"]) for e in ctx.events.select(type="response")] == [
        ("/fast", 2),
        ("/slow", 1),
    ]


# --- the X-Fault header's timing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "delay_s"),
    [("delay=2s", 200, 2.0), ("respond; status=503; delay=100ms", 503, 0.1)],
    ids=["delay-alone-means-respond", "respond-with-status-and-delay"],
)
async def test_fault_header_respond_waits_its_delay(autojump_clock, fault, status, delay_s):
    async with open_connection(OK) as peer:
        start = trio.current_time()
        await peer.send(get("/", f"X-Fault: {fault}"))
        response = await peer.receive_response()
        assert trio.current_time() - start == pytest.approx(delay_s, abs=0.001)
    assert (status_of(response), body_of(response)) == (status, b"ok\n")
    [event] = peer.events.select(type="fault")
    assert (event["rule"], event["action"]) == ("x-fault", "respond")


async def test_fault_header_hang_for_fins_after_the_time(autojump_clock):
    async with open_connection(OK) as peer:
        start = trio.current_time()
        await peer.send(get("/", "X-Fault: hang; for=3s"))
        assert await peer.receive_all() == b""
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.01)
        assert await peer.ended() is CloseHow.FIN


async def test_fault_header_dribble_sends_its_chunks_at_its_interval(autojump_clock):
    async with open_connection(OK) as peer:
        start = trio.current_time()
        await peer.send(get("/", "X-Fault: dribble; chunk=10; interval=1s", "Connection: close"))
        pieces = await peer.receive_pieces()
    assert body_of(b"".join(piece for _, piece in pieces)) == b"ok\n"
    assert {len(piece) for _, piece in pieces[:-1]} == {10}
    assert gaps(pieces, start) == pytest.approx([1.0] * len(pieces), abs=0.001)
