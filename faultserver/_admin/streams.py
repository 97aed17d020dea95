"""`GET /events` and `GET /events/stream`: any number of readers, one buffer, bounded work.

`GET /events` answers one page: at most `limit` events (default `DEFAULT_LIMIT`), with
`missed`, `next` (the `since` to ask for next) and `more` (whether events were left for
the next page), so a poller pages through the buffer. A page of more than `PIECE` events
is encoded and sent `PIECE` events at a time with a checkpoint between pieces: even the
whole buffer of long events never holds the Trio loop (and with it the data plane) for
more than a few milliseconds at once.

`GET /events/stream` readers each keep a cursor into the one event log and pull from it.
The data plane does no work per reader: a reader is woken at most once per batch of events
(`EventLog.wait_beyond`), and each event's SSE frame is encoded once however many readers
send it (`FrameCache`). What readers cost is bounded whatever their number: each sends at
most one chunk per interval (`SSE_BATCH_S`, 0.1 s, growing past 25 readers so that all
of them together send at most `SSE_CHUNKS_PER_S` chunks a second: 0.26 s for 64), and all
of them together are sent at most `SSE_EVENTS_PER_S` events a second, each its share.
Measured (bench/sse_fanout.py, `wrk -t1 -c50`): with 100 readers the data plane keeps
0.87-0.89x of its throughput without them. A reader that needs every event reads
`--events FILE` or pages through `GET /events` instead.

A reader may ask for less than its share (`?rate=N`: at most N events a second, each
chunk its part of them). With `&burst=M` the rate is a token bucket (`TokenBucket`): N
events a second on average and up to M at once, always the newest (`since` only says where
the count of `missed` starts). The dashboard asks for a low rate and a burst of the rows it
keeps: a burst smaller than that is shown whole, only a sustained flood is sampled, and
an open page costs the data plane little (each event sent is an event encoded). While such a
reader is sampled (its last chunk skipped events), it gets a chunk every `SSE_SAMPLED_S`
(0.5 s) instead of every 0.1 s: as many events a second, in fewer, larger chunks.

A reader first gets the events it asked for (`since`, `Last-Event-ID`) in order;
once it has caught up it gets the newest events, and when more arrived than its share (or
it stopped reading for a while) it skips the older ones and is told how many it missed.
At most `max_subscribers` readers at once; one more gets 503 (`CapacityError`).
"""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import AsyncIterator
from typing import Any

import trio

from .._errors import CapacityError
from .._events import Entry, EventFilter, EventLog, Page, as_event, event_id, select_events
from .bucket import TokenBucket

__all__ = ["DEFAULT_LIMIT", "EventStreams", "FrameCache"]

#: `GET /events` without `limit` answers at most this many events.
DEFAULT_LIMIT = 1000
#: No filter: every event.
_ANY = EventFilter()
#: Events encoded per piece of a streamed `GET /events` answer.
PIECE = 200
#: An SSE reader sends at most one chunk this often (events in between are batched) ...
SSE_BATCH_S = 0.1
#: ... and all readers together at most this many chunks a second (the interval grows).
SSE_CHUNKS_PER_S = 250
#: All readers together are sent at most this many events a second, each reader its share ...
SSE_EVENTS_PER_S = 20_000
#: ... but at least this many per chunk.
SSE_MIN_BATCH = 20
#: A reader with a token bucket that is being sampled gets a chunk at most this often.
SSE_SAMPLED_S = 0.5
#: The SSE stream sends a comment this often so proxies and clients see it is alive.
SSE_KEEPALIVE_S = 15.0


class FrameCache:
    """Each event's SSE frame (`id: N` and `data: JSON`), encoded once for every reader."""

    def __init__(self, keep: int) -> None:
        self._frames: dict[int, bytes] = {}
        self._keep = keep

    def frames(self, entries: list[Entry]) -> bytes:
        frames = self._frames
        out = []
        for entry in entries:
            key = event_id(entry)
            frame = frames.get(key)
            if frame is None:
                frame = frames[key] = sse_frame(None, as_event(entry))
            out.append(frame)
        if len(frames) > 2 * self._keep and entries:
            floor = event_id(entries[-1]) - self._keep
            self._frames = {k: v for k, v in frames.items() if k > floor}
        return b"".join(out)


class EventStreams:
    """The event endpoints' state: the frame cache and the readers streaming now."""

    def __init__(self, log: EventLog, max_subscribers: int) -> None:
        self.log = log
        self.max_subscribers = max_subscribers
        self.cache = FrameCache(log.maxlen)
        self._readers: weakref.WeakSet[AsyncIterator[bytes]] = weakref.WeakSet()

    @property
    def readers(self) -> int:
        return len(self._readers)

    # --- GET /events ------------------------------------------------------------------

    async def page_body(
        self,
        since: int,
        limit: int | None,
        newest: int | None = None,
        wanted: EventFilter = _ANY,
    ) -> bytes | AsyncIterator[bytes]:
        """The answer's body: bytes for a small page, pieces for a large one."""
        if wanted or newest is not None:
            page = await self._filtered_page(since, limit, newest, wanted)
        else:
            page = self.log.page(since, DEFAULT_LIMIT if limit is None else limit)
        if len(page.entries) <= PIECE:
            body = {"events": [as_event(e) for e in page.entries], **_page_fields(page)}
            return (json.dumps(body, default=str) + "\n").encode()
        return _page_pieces(page)

    async def _filtered_page(
        self, since: int, limit: int | None, newest: int | None, wanted: EventFilter
    ) -> Page:
        """The events after `since` that `wanted` matches: the first `limit` (a page, whose
        `next` is where the next page starts), or the newest `newest` (then `more` is false).
        Every event kept may be looked at: a checkpoint every `PIECE` of them."""
        snapshot = self.log.page(since)
        entries = snapshot.entries
        end = snapshot.next_since  # the newest id looked at; since + missed when none
        found: list[Entry] = []
        more = False
        if newest is not None:
            for start in range(len(entries), 0, -PIECE):
                found[:0] = select_events(entries[max(0, start - PIECE) : start], wanted, newest=newest)
                del found[: max(0, len(found) - newest)]
                if len(found) >= newest:
                    break
                await trio.lowlevel.checkpoint()
        elif limit == 0:
            end, more = since + snapshot.missed, bool(entries)
        else:
            cap = DEFAULT_LIMIT if limit is None else limit
            for index, entry in enumerate(entries):
                if len(found) >= cap:  # the page is full, and this event is not looked at
                    end, more = event_id(found[-1]), True
                    break
                event = as_event(entry)
                if wanted.matches(event):
                    found.append(event)
                if index % PIECE == PIECE - 1:
                    await trio.lowlevel.checkpoint()
        return Page(found, snapshot.missed, end, more)

    # --- GET /events/stream -----------------------------------------------------------

    def open(
        self,
        since: int | None,
        wanted: EventFilter = _ANY,
        rate: int | None = None,
        burst: int | None = None,
    ) -> AsyncIterator[bytes]:
        """A new reader's stream from `since` (None: live only), of the events `wanted`
        matches, at most `rate` events a second (None: its share), with `burst` the size of
        its token bucket (None: no bucket, each chunk its part of `rate`); CapacityError when
        full."""
        if len(self._readers) >= self.max_subscribers:
            raise CapacityError(
                f"too many event stream readers: at most {self.max_subscribers} at once "
                "(control.max_subscribers); try again later"
            )
        bucket = None if rate is None or burst is None else TokenBucket(rate, burst, trio.current_time())
        # without `since` a reader asked for nothing already kept: it is live from the start,
        # so a burst that came before its first chunk is sampled like any later one
        start = self.log.last_id if since is None else since
        stream = self._stream(start, wanted, rate, bucket, live=since is None)
        self._readers.add(stream)
        return stream

    async def _stream(
        self, since: int, wanted: EventFilter, rate: int | None, bucket: TokenBucket | None, live: bool
    ) -> AsyncIterator[bytes]:
        """`live`: nothing asked for is left to send in order (or never was), so each chunk
        takes the newest events; it turns true once a replay from `since` has caught up."""
        # counted in `_readers` for as long as the generator object lives (a WeakSet)
        log = self.log
        cursor = since
        sent_at = -math.inf
        sampled = False  # the last chunk skipped events for the bucket (then fewer chunks)
        yield b": faultserver events\n\n"
        while True:
            with trio.move_on_after(SSE_KEEPALIVE_S) as waiting:
                await log.wait_beyond(cursor)
            if waiting.cancelled_caught:
                yield b": keep-alive\n\n"
                continue
            readers = max(1, len(self._readers))
            interval = max(SSE_BATCH_S, readers / SSE_CHUNKS_PER_S)
            await trio.sleep_until(sent_at + (max(interval, SSE_SAMPLED_S) if sampled else interval))
            share = max(SSE_MIN_BATCH, int(SSE_EVENTS_PER_S * interval / readers))
            if bucket is not None:  # the newest of what the bucket holds (the dashboard)
                now = trio.current_time()
                if bucket.available(now) < 1:
                    await trio.sleep_until(bucket.ready_at(now))
                    now = trio.current_time()
                page = log.catch_up(cursor, min(share, bucket.available(now)))
                bucket.take(len(page.entries), now)
                sampled = page.missed > 0
            else:
                if rate is not None:  # a reader that asked for less
                    share = min(share, max(1, int(rate * interval)))
                if live:
                    page = log.catch_up(cursor, share)
                else:
                    page = log.page(cursor, share)
                    live = not page.more
            cursor = page.next_since
            chunk = sse_frame("missed", {"missed": page.missed}) if page.missed else b""
            entries = page.entries
            if wanted:
                entries = [e for e in entries if wanted.matches(as_event(e))]
            chunk += self.cache.frames(entries)
            sent_at = trio.current_time()
            if chunk:
                yield chunk


def _page_fields(page: Page) -> dict[str, Any]:
    return {"missed": page.missed, "next": page.next_since, "more": page.more}


async def _page_pieces(page: Page) -> AsyncIterator[bytes]:
    yield b'{"events": ['
    entries = page.entries
    for start in range(0, len(entries), PIECE):
        piece = ", ".join(json.dumps(as_event(e), default=str) for e in entries[start : start + PIECE])
        yield ((", " if start else "") + piece).encode()
        await trio.lowlevel.checkpoint()
    yield ("], " + json.dumps(_page_fields(page))[1:] + "\n").encode()


#: One encoder for every frame: `json.dumps(data, default=str)` builds a new one per call.
_encode_json = json.JSONEncoder(default=str).encode


def sse_frame(kind: str | None, data: dict[str, Any]) -> bytes:
    """One SSE event: `event: KIND` for notices, `id: N` for events."""
    head = f"event: {kind}\n" if kind else f"id: {data['id']}\n"
    return f"{head}data: {_encode_json(data)}\n\n".encode()
