"""Per-listener counters, and their rendering in the Prometheus text format.

The counters are plain attributes bumped by the data plane (one Trio thread, so no
locks); the admin API and the fixture read them. Retries are counted by remembering
the fingerprints of recent requests with the connection that sent them: the same
fingerprint on another connection is the client sending the request again. Only a hash
of each fingerprint is kept, so the memory is the same whatever the paths' length.

A request answered before its body was read (`Expect: 100-continue` meeting `close`) has
no body hash; its head (method, path, X-Request-Id) is kept apart, and the next request
with that head on another connection counts as its retry.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._decide.request import Request

__all__ = ["ListenerStats", "render_prometheus"]

#: How many recent request fingerprints each listener remembers for retry detection.
FINGERPRINT_MEMORY = 10_000
#: How many heads of requests whose body was never read are remembered.
UNREAD_MEMORY = 1_000


class ListenerStats:
    __slots__ = (
        "_recent",
        "_unread",
        "connections",
        "faults",
        "in_flight",
        "open_connections",
        "peak_connections",
        "requests",
        "responses",
        "retries",
    )

    def __init__(self) -> None:
        self.open_connections = 0
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Counters back to zero; connections open and requests in flight stay counted."""
        self.connections = 0
        self.peak_connections = self.open_connections
        self.requests = 0
        #: (rule, action) -> count
        self.faults: collections.Counter[tuple[str, str]] = collections.Counter()
        #: status -> count
        self.responses: collections.Counter[int] = collections.Counter()
        self.retries = 0
        #: hash of a fingerprint -> the connection that last sent it
        self._recent: collections.OrderedDict[int, int] = collections.OrderedDict()
        #: hash of a head whose body was never read -> its connection
        self._unread: collections.OrderedDict[int, int] = collections.OrderedDict()

    def opened(self) -> None:
        self.connections += 1
        self.open_connections += 1
        if self.open_connections > self.peak_connections:
            self.peak_connections = self.open_connections

    def closed(self) -> None:
        self.open_connections -= 1

    def saw_request(self, request: Request, fingerprint: str, conn_id: int) -> bool:
        """Count a request; True when it repeats one seen on another connection."""
        self.requests += 1
        key = hash(fingerprint)
        recent = self._recent
        previous = recent.get(key)
        recent[key] = conn_id
        if previous is not None:
            recent.move_to_end(key)
        elif len(recent) > FINGERPRINT_MEMORY:
            recent.popitem(last=False)
        if self._unread or not request.body_read:
            previous = self._head_seen(request, conn_id, previous)
        if previous is not None and previous != conn_id:
            self.retries += 1
            return True
        return False

    def _head_seen(self, request: Request, conn_id: int, previous: int | None) -> int | None:
        head = hash(request.head_key)
        unread = self._unread
        if not request.body_read:
            unread[head] = conn_id
            if len(unread) > UNREAD_MEMORY:
                unread.popitem(last=False)
            return previous
        earlier = unread.pop(head, None)
        if previous is not None and previous != conn_id:
            return previous
        return earlier

    def faults_by_action(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, action), n in self.faults.items():
            out[action] = out.get(action, 0) + n
        return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kv: str) -> str:
    return ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items())


#: (labels, value) samples of one listener's stats
Samples = Callable[[ListenerStats], Iterable[tuple[dict[str, str], int]]]


def _one(attribute: str) -> Samples:
    return lambda s: [({}, getattr(s, attribute))]


#: Every metric family: name, type, help, and its samples for one listener.
_FAMILIES: tuple[tuple[str, str, str, Samples], ...] = (
    ("faultserver_connections_total", "counter", "Connections accepted.", _one("connections")),
    ("faultserver_requests_total", "counter", "Requests read completely.", _one("requests")),
    (
        "faultserver_responses_total", "counter", "Responses sent, by status.",
        lambda s: [({"status": str(st)}, c) for st, c in sorted(s.responses.items())],
    ),
    (
        "faultserver_faults_total", "counter", "Faults acted, by rule and action.",
        lambda s: [({"rule": r, "action": a}, c) for (r, a), c in sorted(s.faults.items())],
    ),
    (
        "faultserver_retries_total", "counter",
        "Requests seen again on a new connection (same method, path, body hash, X-Request-Id).",
        _one("retries"),
    ),
    ("faultserver_open_connections", "gauge", "Connections open now.", _one("open_connections")),
    ("faultserver_peak_connections", "gauge", "Most connections open at once.", _one("peak_connections")),
    ("faultserver_requests_in_flight", "gauge", "Requests read and not yet answered.", _one("in_flight")),
)


def render_prometheus(stats: Iterable[tuple[str, ListenerStats]]) -> str:
    """The metrics page: counters and gauges labelled by listener (and status, rule, action)."""
    rows = list(stats)
    out: list[str] = []
    for name, kind, help_, samples in _FAMILIES:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for listener, s in rows:
            for labels, value in samples(s):
                # ints as ints: `:g` would round a counter above 999,999 to 6 digits
                out.append(f"{name}{{{_labels(listener=listener, **labels)}}} {value}")
    return "\n".join(out) + "\n"
