"""The event log: what every connection and request did, the newest 10,000 kept.

Events are plain dicts with the fields of the README's "Events" (`id`, `time`,
`listener`, `conn`, `peer`, `type`, ...); `listener` is null on the few server-wide
events (`start`, `reset`).

Theory of operation. Only the server's Trio thread writes: `emit` for dict events and
`emit_fields` for the data plane's per-request events, which share one dict of fields.
Both append to one bounded deque and nothing else runs per event: no subscriber is
called. Readers pull instead. Each follower (an SSE stream, `--events FILE`, the
fixture's `wait_for`) keeps a cursor, the id of the last event it handled, and waits
in `wait_beyond(cursor)`; the first event after a wait wakes all the waiters at once
and re-arms nothing until one of them waits again, so a burst of events costs one wake
per batch, and emitting costs the same with no follower or a thousand.

Reads come from any thread (the admin API, the fixture's thread) and take a snapshot:
`list(deque)` and `deque.append` are each one step under the GIL, so no lock is taken.
Ids in the buffer are consecutive, so the first wanted event is found by arithmetic.

Sizes are bounded: a text field longer than `MAX_FIELD_CHARS` (a 58 KB path) is cut to
that length and its key is listed in the event's `truncated` field, so 10,000 events
hold at most a few tens of MB whatever the clients send.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

__all__ = [
    "CLOSED_SET_FIELDS",
    "DEFAULT_MAX_EVENTS",
    "MAX_FIELD_CHARS",
    "Entry",
    "Event",
    "EventFilter",
    "EventFollower",
    "EventLog",
    "Page",
    "as_event",
    "cut_long_fields",
    "event_id",
    "event_type",
    "select_events",
]

Event = dict[str, Any]
#: What the buffer holds: an event dict, or the compact record `emit_fields` keeps
#: (id, time, type, listener, extra fields or None, shared fields, omitted key or None).
Entry = Any
#: A task that follows the log (started in the server's nursery): `await follower(log)`.
EventFollower = Callable[["EventLog"], Awaitable[None]]

DEFAULT_MAX_EVENTS = 10_000
#: `{"status": N}` per status answered: the extra field of every `response` event.
_STATUS_FIELDS: dict[int, dict[str, Any]] = {}
#: Text fields longer than this are cut to this many characters (and listed in `truncated`).
MAX_FIELD_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Page:
    """One read of the log: `entries` (see `as_event`), how many wanted events are gone
    (`missed`), the `since` to ask for next, and whether more events were left for it."""

    entries: list[Entry]
    missed: int
    next_since: int
    more: bool


class EventLog:
    """A bounded log with increasing ids, written by one Trio thread, read from anywhere."""

    def __init__(self, maxlen: int = DEFAULT_MAX_EVENTS) -> None:
        self._events: collections.deque[Entry] = collections.deque(maxlen=maxlen)
        self._next_id = 1
        #: set by the first event after someone started waiting (see the module docstring)
        self._arrived: trio.Event | None = None
        self.maxlen = maxlen

    # --- writing (the server's Trio thread) -------------------------------------------

    def emit(self, type: str, listener: str | None = None, **fields: Any) -> Event:
        """Record one event; `listener` is None for server-wide events (`start`, `reset`)."""
        # built in one go: a dict grown by update() keeps a table twice the size
        event: Event = {
            "id": self._next_id, "time": time.time(), "type": type, "listener": listener, **fields,
        }
        for value in fields.values():
            if value.__class__ is str and len(value) > MAX_FIELD_CHARS:
                cut_long_fields(event)
                break
        self._next_id += 1
        self._events.append(event)
        self._wake()
        return event

    def emit_fields(
        self,
        type: str,
        listener: str | None,
        fields: dict[str, Any],
        omit: str | tuple[str, ...] | None = None,
        /,
        **extra: Any,
    ) -> None:
        """`emit(type, listener, **extra, **fields)`, the same event, for the data plane's
        per-request events, which share one dict of fields: it must not change afterwards.
        `omit`: a key of `fields` this event leaves out, or a tuple of them (a fault event
        has no `retry` nor `repeat`).

        The event is kept as a compact record, a tuple holding that shared dict, and
        becomes a dict only when read: building two dicts of a dozen keys per request
        cost as much as answering the request. The caller keeps `fields` within
        `MAX_FIELD_CHARS` (the data plane cuts a long path itself and says so, in the
        dict); `extra` is checked here, and only an event with a long one is built and cut.
        """
        if extra:
            for value in extra.values():
                if value.__class__ is str and len(value) > MAX_FIELD_CHARS:
                    self._emit_cut(type, listener, fields, omit, extra)
                    return
        event_id = self._next_id
        self._next_id = event_id + 1
        self._events.append((event_id, time.time(), type, listener, extra or None, fields, omit))
        arrived = self._arrived
        if arrived is not None:
            self._arrived = None
            arrived.set()

    def emit_response(self, listener: str, fields: dict[str, Any], status: int) -> None:
        """`emit_fields("response", listener, fields, status=status)`, once per answered
        request: its one extra field comes from a dict kept per status, so a response adds
        a tuple to the log and nothing else (readers copy it, never change it)."""
        extra = _STATUS_FIELDS.get(status)
        if extra is None:
            extra = _STATUS_FIELDS.setdefault(status, {"status": status})
        event_id = self._next_id
        self._next_id = event_id + 1
        self._events.append((event_id, time.time(), "response", listener, extra, fields, None))
        arrived = self._arrived
        if arrived is not None:
            self._arrived = None
            arrived.set()

    def adopt(self, entries: Sequence[Entry], key: str, value: Any) -> None:
        """Take in another log's entries (a worker's, `run --workers N`), oldest first: each
        gets this log's next id and the field `key: value`, and stays in its compact form,
        so a merged event costs a tuple and an append, as it did where it was emitted. The
        entries must be this log's own from now on (copies, such as unpickled ones)."""
        events = self._events
        next_id = self._next_id
        for entry in entries:
            if type(entry) is dict:
                entry["id"] = next_id
                entry[key] = value
                events.append(entry)
            else:
                _, when, kind, listener, extra, fields, omit = entry
                fields[key] = value  # shared by a request's events: set once is enough
                events.append((next_id, when, kind, listener, extra, fields, omit))
            next_id += 1
        if next_id != self._next_id:
            self._next_id = next_id
            self._wake()

    def _emit_cut(
        self,
        type: str,
        listener: str | None,
        fields: dict[str, Any],
        omit: str | tuple[str, ...] | None,
        extra: dict[str, Any],
    ) -> None:
        merged = {**extra, **fields}
        _leave_out(merged, omit)
        self.emit(type, listener, **merged)

    def _wake(self) -> None:
        arrived = self._arrived
        if arrived is not None:
            self._arrived = None
            arrived.set()

    def clear(self) -> None:
        """Forget every event kept (a reset); ids go on from where they were."""
        self._events.clear()

    # --- following (Trio tasks in the server's thread) ----------------------------------

    @property
    def last_id(self) -> int:
        """The id of the newest event emitted (0 before the first)."""
        return self._next_id - 1

    async def wait_beyond(self, last_id: int) -> None:
        """Return once an event newer than `last_id` has been emitted."""
        if self._next_id - 1 > last_id:
            await trio.lowlevel.checkpoint()
            return
        while self._next_id - 1 <= last_id:
            arrived = self._arrived
            if arrived is None:
                arrived = self._arrived = trio.Event()
            await arrived.wait()

    # --- reading (any thread) -----------------------------------------------------------

    def page(self, since_id: int = 0, limit: int | None = None) -> Page:
        """Events with id > `since_id`, oldest first, at most `limit` of them.

        `missed` counts the events after `since_id` that are no longer kept (pushed out of
        the bounded buffer, or cleared by a reset).
        """
        events = list(self._events)
        next_id = self._next_id
        n = len(events)
        oldest = event_id(events[0]) if n else next_id
        first = min(n, max(0, since_id - oldest + 1))
        stop = n if limit is None else min(n, first + limit)
        missed = max(0, oldest - since_id - 1)
        entries = events[first:stop]
        next_since = event_id(entries[-1]) if entries else since_id + missed
        return Page(entries, missed, next_since, stop < n)

    def catch_up(self, since_id: int, limit: int) -> Page:
        """For a follower in the server's Trio thread: the newest `limit` events after
        `since_id`. Older ones it has not seen are skipped, and counted in `missed` with those
        no longer kept; `more` is always False. Costs what it returns, not the buffer's size.
        """
        events = self._events
        n = len(events)
        next_id = self._next_id
        oldest = event_id(events[0]) if n else next_id
        pending = min(n, max(0, next_id - 1 - max(since_id, oldest - 1)))
        count = min(pending, limit)
        missed = max(0, oldest - since_id - 1) + pending - count
        entries = list(itertools.islice(reversed(events), count))
        entries.reverse()
        next_since = event_id(entries[-1]) if entries else max(since_id, next_id - 1)
        return Page(entries, missed, next_since, False)

    def since(self, since_id: int = 0, limit: int | None = None) -> tuple[list[Event], int]:
        """Events with id > `since_id`, oldest first (at most `limit`), and how many missed."""
        page = self.page(since_id, limit)
        return [as_event(e) for e in page.entries], page.missed

    def select(
        self, *, since: int = 0, limit: int | None = None, newest: int | None = None, **filters: Any
    ) -> list[Event]:
        """Events with id > `since` whose fields equal every filter (`type="fault",
        action="close"`), oldest first: the first `limit` of them, or the newest `newest`.
        A filter's value may be a tuple of values (any of them). See `EventFilter`."""
        return select_events(self.page(since).entries, EventFilter.of(filters), limit, newest)


#: Event fields whose values are words of a closed set: a filter on them ignores case.
CLOSED_SET_FIELDS = frozenset({"type", "action", "how", "accept", "cause", "change"})


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a reader wants: for each field, the values it may have (any of them).

    The handle's `events(...)` and the admin API's `GET /events?...` both read events
    through this one filter. Values of fields in `CLOSED_SET_FIELDS` (`type`, `action`,
    `how`...) ignore case, as every closed set does where a user writes it.
    """

    fields: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @classmethod
    def of(cls, filters: Mapping[str, Any]) -> EventFilter:
        """From keyword filters: `type="fault"`, or a tuple of values, `type=("fault", "drop")`."""
        out = []
        for key, value in filters.items():
            values = value if isinstance(value, tuple) else (value,)
            if key in CLOSED_SET_FIELDS:
                values = tuple(v.lower() if isinstance(v, str) else v for v in values)
            out.append((key, values))
        return cls(tuple(out))

    def __bool__(self) -> bool:
        return bool(self.fields)

    def matches(self, event: Event) -> bool:
        for key, values in self.fields:
            value = event.get(key)
            if value not in values:
                return False
        return True


def select_events(
    entries: Sequence[Entry], wanted: EventFilter, limit: int | None = None, newest: int | None = None
) -> list[Event]:
    """The events among `entries` that `wanted` matches: the first `limit`, or the newest `newest`."""
    if newest is not None:
        found: list[Event] = []
        for entry in reversed(entries):
            if len(found) >= newest:
                break
            event = as_event(entry)
            if wanted.matches(event):
                found.append(event)
        found.reverse()
        return found
    out: list[Event] = []
    for entry in entries:
        if limit is not None and len(out) >= limit:
            break
        event = as_event(entry)
        if wanted.matches(event):
            out.append(event)
    return out


def event_id(entry: Entry) -> int:
    """The id of a buffer entry (a dict or a compact record)."""
    return entry["id"] if type(entry) is dict else entry[0]  # type: ignore[no-any-return]


def event_type(entry: Entry) -> str:
    """The type of a buffer entry (a dict or a compact record)."""
    return entry["type"] if type(entry) is dict else entry[2]  # type: ignore[no-any-return]


def as_event(entry: Entry) -> Event:
    """An event as readers see it: a dict (`emit_fields` may have kept a compact record)."""
    if type(entry) is dict:
        return entry
    event_id_, when, kind, listener, extra, fields, omit = entry
    if extra is None:
        event = {"id": event_id_, "time": when, "type": kind, "listener": listener, **fields}
    else:
        event = {"id": event_id_, "time": when, "type": kind, "listener": listener, **extra, **fields}
    if omit is not None:
        _leave_out(event, omit)
    return event


def _leave_out(event: Event, omit: str | tuple[str, ...] | None) -> None:
    if isinstance(omit, str):
        event.pop(omit, None)
    elif omit is not None:
        for key in omit:
            event.pop(key, None)


def cut_long_fields(event: Event) -> None:
    """Cut every text field over `MAX_FIELD_CHARS`, and list the keys cut in `truncated`."""
    cut = [k for k, v in event.items() if isinstance(v, str) and len(v) > MAX_FIELD_CHARS]
    for key in cut:
        event[key] = event[key][:MAX_FIELD_CHARS]
    event["truncated"] = cut
