"""The event log: what every connection and request did, newest 10,000 kept.

Events are plain dicts with the fields of interfaces-v1.md "Events" (`id`, `time`,
`listener`, `conn`, `peer`, `type`, ...); `listener` is null on the few server-wide
events (`start`, `reset`). The log is written from the server's Trio
thread and read from anywhere (the admin API, the pytest fixture's thread), so reads
and writes take one small lock. Subscribers (the SSE stream, `--events FILE`, the
fixture's `wait_for`) are called synchronously on each event and must be quick.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import Any, Callable, Optional, TextIO

__all__ = ["DEFAULT_MAX_EVENTS", "Event", "EventLog", "EVENT_TYPES", "JsonLinesSink"]

log = logging.getLogger("faultserver")

Event = dict[str, Any]
DEFAULT_MAX_EVENTS = 10_000
EVENT_TYPES = (
    "start",
    "accept",
    "request",
    "response",
    "fault",
    "idle_close",
    "max_requests_close",
    "peer_close",
    "close",
    "mode",
    "phase",
    "drop",
    "reload",
    "reset",
    "error",
)


class EventLog:
    """A bounded, thread-safe log with increasing ids."""

    def __init__(self, maxlen: int = DEFAULT_MAX_EVENTS) -> None:
        self._events: collections.deque[Event] = collections.deque(maxlen=maxlen)
        self._next_id = 1
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], None]] = []
        self.maxlen = maxlen

    def emit(self, type: str, listener: Optional[str] = None, **fields: Any) -> Event:
        """Record one event; `listener` is None for server-wide events (`start`, `reset`)."""
        with self._lock:
            # built in one go: a dict grown by update() keeps a table twice the size
            event: Event = {
                "id": self._next_id, "time": time.time(), "type": type, "listener": listener,
                **fields,
            }
            self._next_id += 1
            self._events.append(event)
        if self._subscribers:
            self._publish(event)
        return event

    def emit_fields(
        self,
        type: str,
        listener: Optional[str],
        fields: dict[str, Any],
        omit: Optional[str] = None,
        /,
        **extra: Any,
    ) -> None:
        """`emit(type, listener, **extra, **fields)`, the same event, for the data plane's
        per-request events, which share one dict of fields: it must not change afterwards.
        `omit`: a key of `fields` this event leaves out (a fault event has no `retry`).

        Without subscribers the event is kept as a compact record, a tuple holding that
        shared dict, and becomes a dict only when read. Only the Trio thread writes, and a
        deque's append and `list(deque)` are each one step under the GIL, so this takes no
        lock (readers take a snapshot). Building two dicts of a dozen keys per request and
        a lock around each cost as much as answering the request.
        """
        event_id = self._next_id
        self._next_id = event_id + 1
        if not self._subscribers:
            self._events.append((event_id, time.time(), type, listener, extra or None, fields, omit))
            return
        event: Event = {
            "id": event_id, "time": time.time(), "type": type, "listener": listener,
            **extra, **fields,
        }
        if omit is not None:
            event.pop(omit, None)
        with self._lock:
            self._events.append(event)
        self._publish(event)

    def _publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                # a broken reader (a full disk under --events) must not break the data plane
                log.exception("event subscriber %r failed; it gets no more events", subscriber)
                self._subscribers = [s for s in self._subscribers if s is not subscriber]

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def since(self, since_id: int = 0, limit: Optional[int] = None) -> tuple[list[Event], int]:
        """Events with id > `since_id`, oldest first (at most `limit`), and how many missed.

        `missed` counts the events after `since_id` that are no longer kept (pushed out of
        the bounded buffer, or cleared by a reset). Ids in the buffer are consecutive, so
        the first wanted one is found by arithmetic, not by a scan.
        """
        with self._lock:
            events = list(self._events)
            next_id = self._next_id
        n = len(events)
        oldest = _id_of(events[0]) if n else next_id
        first = min(n, max(0, since_id - oldest + 1))
        stop = n if limit is None else min(n, first + limit)
        missed = max(0, oldest - since_id - 1)
        return [_as_event(e) for e in events[first:stop]], missed

    def select(self, **filters: Any) -> list[Event]:
        """Events whose fields equal every filter (`type="fault", action="close"`)."""
        with self._lock:
            events = list(self._events)
        events = [_as_event(e) for e in events]
        return [e for e in events if all(e.get(k) == v for k, v in filters.items())]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` on every new event; returns the unsubscribe function."""
        self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe


def _id_of(entry: Any) -> int:
    return entry["id"] if type(entry) is dict else entry[0]


def _as_event(entry: Any) -> Event:
    """An event as readers see it: a dict (`emit_fields` may have kept a compact record)."""
    if type(entry) is dict:
        return entry
    event_id, when, kind, listener, extra, fields, omit = entry
    if extra is None:
        event = {"id": event_id, "time": when, "type": kind, "listener": listener, **fields}
    else:
        event = {"id": event_id, "time": when, "type": kind, "listener": listener, **extra, **fields}
    if omit is not None:
        event.pop(omit, None)
    return event


class JsonLinesSink:
    """`--events FILE`: appends each event as one JSON line."""

    def __init__(self, path: str) -> None:
        self._file: TextIO = open(path, "a", encoding="utf-8", buffering=1)

    def __call__(self, event: Event) -> None:
        self._file.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")

    def close(self) -> None:
        self._file.close()

