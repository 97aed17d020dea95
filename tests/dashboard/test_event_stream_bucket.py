"""`GET /events/stream?rate=N&burst=M`, the token bucket the dashboard reads the events
through, read by a real SSE client (httpx-sse): a burst up to M is sent whole, a sustained
flood is sampled, and every event after `since` is either sent once or counted in `missed`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from faultserver._admin.bucket import TokenBucket

PROFILE = {"version": 1, "listeners": [{"name": "b", "bind": "127.0.0.1:0"}]}


def requests(srv: Any, n: int, prefix: str) -> int:
    """`n` GETs on one keep-alive connection, then closed; the newest event id after them."""
    with httpx.Client(base_url=srv["b"].url, timeout=5.0) as client:
        for i in range(n):
            assert client.get(f"/{prefix}-{i}").status_code == 200
    # the connection's close is an event too (peer_close): wait for it
    deadline = time.monotonic() + 5.0
    while not srv.events(type="peer_close") or srv.events()[-1]["type"] != "peer_close":
        assert time.monotonic() < deadline, "no peer_close event after the client closed"
        time.sleep(0.01)
    return int(srv.events()[-1]["id"])


def read_to(messages: Iterator[Any], last: int) -> tuple[list[int], int]:
    """The event ids sent, and the events told missed, until the event `last` arrives."""
    sent: list[int] = []
    missed = 0
    for sse in messages:
        if sse.event == "missed":
            missed += json.loads(sse.data)["missed"]
        elif sse.event == "message":
            sent.append(json.loads(sse.data)["id"])
            if sent[-1] >= last:
                break
    return sent, missed


def test_event_stream_bucket_sends_a_burst_whole_and_samples_a_flood(faultserver):
    from httpx_sse import connect_sse

    srv = faultserver(PROFILE, admin=True)
    since = int(srv.events()[-1]["id"])
    burst, rate = 400, 5
    with httpx.Client(base_url=srv.control_url, timeout=5.0) as api:
        opened = time.monotonic()
        query = {"since": since, "rate": rate, "burst": burst}
        with connect_sse(api, "GET", "/events/stream", params=query) as source:
            messages = source.iter_sse()
            # a burst under `burst` events (an accept, 150 requests and responses, a close):
            # every one is sent, though far more than `rate` a second
            first = requests(srv, 150, "burst")
            assert first - since == 302
            sent, missed = read_to(messages, first)
            assert (sent, missed) == (list(range(since + 1, first + 1)), 0)

            # a flood beyond what the bucket holds now: the newest are sent, the rest told missed
            last = requests(srv, 300, "flood")
            more, missed = read_to(messages, last)
            elapsed = time.monotonic() - opened
    assert more == sorted(set(more)) and more[0] > first and more[-1] == last
    assert len(more) + missed == last - first  # each event sent once or counted
    assert missed > 0
    # no more than the bucket held: what the burst left, and `rate` a second since
    assert len(more) <= burst - (first - since) + rate * elapsed + 1, (len(more), elapsed)


def test_event_stream_bucket_from_since_sends_the_newest_and_counts_the_rest(faultserver):
    from httpx_sse import connect_sse

    srv = faultserver(PROFILE, admin=True)
    last = requests(srv, 100, "kept")
    with httpx.Client(base_url=srv.control_url, timeout=5.0) as api:
        query = {"since": 0, "rate": 1, "burst": 50}
        with connect_sse(api, "GET", "/events/stream", params=query) as source:
            sent, missed = read_to(source.iter_sse(), last)
    assert sent == list(range(last - 49, last + 1))
    assert missed == last - 50


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("rate=10&burst=0", "burst must be 1 or more (events at once), got 0"),
        ("burst=10", "burst needs rate (burst: events at once; rate: events a second on average)"),
        ("rate=10&burst=x", "burst must be an integer 0 or more, got 'x'"),
        ("rate=10&burst=-1", "burst must be an integer 0 or more, got '-1'"),
        ("rate=10&burst=5&burst=6", "burst given 2 times (expected it once)"),
    ],
)
def test_event_stream_bucket_bad_values_get_400(faultserver, query, error):
    srv = faultserver(PROFILE, admin=True)
    resp = httpx.get(f"{srv.control_url}/events/stream?{query}", timeout=5.0)
    assert (resp.status_code, resp.json()) == (400, {"error": error})


def test_events_page_takes_no_burst(faultserver):
    srv = faultserver(PROFILE, admin=True)
    resp = httpx.get(f"{srv.control_url}/events?burst=5", timeout=5.0)
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("unknown query parameter 'burst' for GET /events (expected: ")


# --- the bucket itself (pure: the time is an argument) ----------------------------------


def test_token_bucket_starts_full_refills_at_rate_and_holds_at_most_burst():
    bucket = TokenBucket(rate=10, burst=50, now=100.0)
    assert bucket.available(100.0) == 50
    bucket.take(50, 100.0)
    assert bucket.available(100.0) == 0
    assert bucket.ready_at(100.0) == pytest.approx(100.1)
    assert bucket.available(100.55) == 5
    bucket.take(5, 100.55)
    assert bucket.available(1000.0) == 50  # never more than burst, however long it waited
    assert bucket.ready_at(1000.0) == 1000.0


def test_token_bucket_rejects_zero():
    with pytest.raises(ValueError, match=r"^a token bucket needs rate and burst of 1 or more, got 0 and 5$"):
        TokenBucket(rate=0, burst=5, now=0.0)


@pytest.mark.trio
async def test_live_reader_samples_a_burst_that_came_before_its_first_chunk():
    """A reader without `since` asked for nothing already kept: a burst that lands before its
    first chunk is over its rate like any later one, skipped and counted, not paged through
    in order (CI once saw that: a loaded server woke the reader only after the burst). A
    reader with `since` gets what it asked for in order first."""
    from faultserver._admin.streams import EventStreams
    from faultserver._events import EventLog

    log = EventLog()
    log.emit("request", "b", path="/before")
    streams = EventStreams(log, max_subscribers=4)
    live = streams.open(None, rate=50)
    replay = streams.open(0, rate=50)
    assert await live.__anext__() == b": faultserver events\n\n"
    assert await replay.__anext__() == b": faultserver events\n\n"
    for i in range(600):
        log.emit("request", "b", path=f"/r{i}")
    chunk, ids = await next_chunk(live)
    assert chunk.startswith('event: missed\ndata: {"missed": 595}\n\n')
    assert ids == list(range(597, 602))  # the newest 5 (50 a second, 0.1 s a chunk)
    chunk, ids = await next_chunk(replay)
    assert "missed" not in chunk and ids == [1, 2, 3, 4, 5]  # the oldest, in order


async def next_chunk(stream: Any) -> tuple[str, list[int]]:
    """A stream's next chunk as text, and the ids of the events in it."""
    chunk = (await stream.__anext__()).decode()
    return chunk, [int(line[4:]) for line in chunk.splitlines() if line.startswith("id: ")]
