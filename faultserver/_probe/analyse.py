"""What a scenario showed: the probe's replies joined with faultserver's own events.

Pure code: replies and event dicts in, an `Observation` out. The backend knows each probe
request by its token (the last segment of its path), so it matters not what prefix the
gateway adds or strips. From the events come, per request, the upstream connections it
arrived on: more than one arrival is a retry (the gateway sent it again on a new
connection), and an arrival with `request_on_connection` above 1 came on a reused
connection.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Reply, Role
from .search import PoolFinding, ReadTimeoutFinding

__all__ = ["Arrival", "Observation", "arrivals_by_token", "observe", "peak_in_flight", "token_of"]

Event = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One arrival of a request at the backend: its connection and its number on it."""

    conn: int
    request_on_connection: int
    time: float


@dataclass(frozen=True, slots=True)
class Observation:
    """One scenario, observed from both ends.

    `outcomes`, `latency_*` and `retried` cover the probe's own requests (not warm-ups);
    `retried` maps a method to whether any of its requests arrived more than once, None
    when none of them reached the backend (a retry there cannot be seen). `opened`: the
    upstream connections the scenario's requests came on that the gateway opened during
    the scenario; `reused`: the requests that arrived on a connection that had carried one
    before. `idle_closes`: kept-alive connections the backend closed for idleness.
    """

    replies: tuple[Reply, ...]
    arrivals: Mapping[str, tuple[Arrival, ...]]
    outcomes: tuple[str, ...]
    latency_p50_s: float | None
    latency_max_s: float | None
    retried: Mapping[str, bool | None]
    opened: int
    reused: int
    idle_closes: int = 0
    read_timeout: ReadTimeoutFinding | None = None
    pool: PoolFinding | None = None
    #: why the scenario stopped early, if it did (its time limit, `--max-duration`)
    cut_short: str | None = None

    @property
    def probes(self) -> tuple[Reply, ...]:
        return tuple(r for r in self.replies if r.role is Role.PROBE)

    def arrivals_of(self, reply: Reply) -> tuple[Arrival, ...]:
        return self.arrivals.get(reply.token, ())


def token_of(path: str) -> str:
    """The last segment of a request path, as the backend saw it (query left out)."""
    return path.partition("?")[0].rstrip("/").rpartition("/")[2]


def arrivals_by_token(events: Iterable[Event], tokens: Iterable[str]) -> dict[str, tuple[Arrival, ...]]:
    """For each token, the `request` events that carried it, in order."""
    wanted = set(tokens)
    found: dict[str, list[Arrival]] = {t: [] for t in wanted}
    for e in events:
        if e.get("type") != "request":
            continue
        token = token_of(str(e.get("path", "")))
        if token in wanted:
            found[token].append(Arrival(int(e["conn"]), int(e["request_on_connection"]), float(e["time"])))
    return {t: tuple(a) for t, a in found.items()}


def observe(
    replies: Sequence[Reply],
    events: Sequence[Event],
    *,
    read_timeout: ReadTimeoutFinding | None = None,
    pool: PoolFinding | None = None,
    cut_short: str | None = None,
) -> Observation:
    """Join a scenario's replies with the events emitted while it ran."""
    arrivals = arrivals_by_token(events, (r.token for r in replies))
    probes = [r for r in replies if r.role is Role.PROBE]
    took = [r.took_s for r in probes]
    retried: dict[str, bool | None] = {}
    for method in dict.fromkeys(r.method for r in probes):
        seen = [arrivals[r.token] for r in probes if r.method == method and arrivals[r.token]]
        retried[method] = any(len(a) > 1 for a in seen) if seen else None
    accepted = {int(e["conn"]) for e in events if e.get("type") == "accept" and "conn" in e}
    conns = {a.conn for arr in arrivals.values() for a in arr}
    firsts = [arr[0] for arr in arrivals.values() if arr]
    return Observation(
        replies=tuple(replies),
        arrivals=arrivals,
        outcomes=tuple(r.outcome for r in probes),
        latency_p50_s=statistics.median(took) if took else None,
        latency_max_s=max(took) if took else None,
        retried=retried,
        opened=len(conns & accepted),
        reused=sum(1 for a in firsts if a.request_on_connection > 1),
        idle_closes=sum(1 for e in events if e.get("type") == "idle_close"),
        read_timeout=read_timeout,
        pool=pool,
        cut_short=cut_short,
    )


#: Actions whose `fault` event comes when they start: the request ends at its `response`.
_ANSWERED_LATER = frozenset({"respond", "delay", "dribble"})


def peak_in_flight(events: Iterable[Event]) -> int:
    """The most requests the backend held at once: each from its `request` event to its
    `response` event, or the `fault` event that ended it (close, reset...), matched by
    connection and number; a request with neither is held to the end."""
    starts: dict[tuple[int, int], float] = {}
    ends: dict[tuple[int, int], float] = {}
    for e in events:
        kind = e.get("type")
        if kind not in ("request", "response", "fault") or "request_on_connection" not in e:
            continue
        key = (int(e["conn"]), int(e["request_on_connection"]))
        if kind == "request":
            starts.setdefault(key, float(e["time"]))
        elif kind == "response" or e.get("action") not in _ANSWERED_LATER:
            ends.setdefault(key, float(e["time"]))
    # an end sorts before a start at the same instant: one request handed over to the next
    points = sorted(
        [(t, 1) for t in starts.values()]
        + [(ends[k], -1) for k in starts if k in ends]
    )
    peak = current = 0
    for _, step in points:
        current += step
        peak = max(peak, current)
    return peak
