"""Per-listener counters, and their rendering in the Prometheus text format.

The counters are plain attributes bumped by the data plane (one Trio thread, so no
locks); the admin API and the fixture read them. Retries are counted by remembering
the fingerprints of recent requests with the connection that sent them: the same
fingerprint on another connection is the client sending the request again.
"""

from __future__ import annotations

import collections
from typing import Iterable

__all__ = ["ListenerStats", "render_prometheus"]

#: How many recent request fingerprints each listener remembers for retry detection.
FINGERPRINT_MEMORY = 10_000


class ListenerStats:
    __slots__ = (
        "connections",
        "open_connections",
        "peak_connections",
        "requests",
        "in_flight",
        "faults",
        "responses",
        "retries",
        "_recent",
    )

    def __init__(self) -> None:
        self.connections = 0
        self.open_connections = 0
        self.peak_connections = 0
        self.requests = 0
        self.in_flight = 0
        #: (rule, action) -> count
        self.faults: collections.Counter[tuple[str, str]] = collections.Counter()
        #: status -> count
        self.responses: collections.Counter[int] = collections.Counter()
        self.retries = 0
        self._recent: collections.OrderedDict[str, int] = collections.OrderedDict()

    def opened(self) -> None:
        self.connections += 1
        self.open_connections += 1
        if self.open_connections > self.peak_connections:
            self.peak_connections = self.open_connections

    def closed(self) -> None:
        self.open_connections -= 1

    def saw_request(self, fingerprint: str, conn_id: int) -> bool:
        """Count a request; True when it repeats one seen on another connection."""
        self.requests += 1
        recent = self._recent
        previous = recent.get(fingerprint)
        recent[fingerprint] = conn_id
        if previous is not None:
            recent.move_to_end(fingerprint)
        elif len(recent) > FINGERPRINT_MEMORY:
            recent.popitem(last=False)
        if previous is not None and previous != conn_id:
            self.retries += 1
            return True
        return False

    def faults_by_action(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, action), n in self.faults.items():
            out[action] = out.get(action, 0) + n
        return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(stats: Iterable[tuple[str, ListenerStats]]) -> str:
    """The metrics page: counters and gauges labelled by listener (and rule, action)."""
    rows = list(stats)
    out: list[str] = []

    def family(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            # ints as ints: `:g` would round a counter above 999,999 to 6 digits
            text = str(value) if isinstance(value, int) else repr(float(value))
            out.append(f"{name}{{{labels}}} {text}" if labels else f"{name} {text}")

    def lab(**kv: str) -> str:
        return ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items())

    family(
        "faultserver_connections_total",
        "counter",
        "Connections accepted.",
        [(lab(listener=n), s.connections) for n, s in rows],
    )
    family(
        "faultserver_requests_total",
        "counter",
        "Requests read completely.",
        [(lab(listener=n), s.requests) for n, s in rows],
    )
    family(
        "faultserver_responses_total",
        "counter",
        "Responses sent, by status.",
        [(lab(listener=n, status=str(st)), c) for n, s in rows for st, c in sorted(s.responses.items())],
    )
    family(
        "faultserver_faults_total",
        "counter",
        "Faults acted, by rule and action.",
        [
            (lab(listener=n, rule=r, action=a), c)
            for n, s in rows
            for (r, a), c in sorted(s.faults.items())
        ],
    )
    family(
        "faultserver_retries_total",
        "counter",
        "Requests seen again on a new connection (same method, path, body hash, X-Request-Id).",
        [(lab(listener=n), s.retries) for n, s in rows],
    )
    family(
        "faultserver_open_connections",
        "gauge",
        "Connections open now.",
        [(lab(listener=n), s.open_connections) for n, s in rows],
    )
    family(
        "faultserver_peak_connections",
        "gauge",
        "Most connections open at once.",
        [(lab(listener=n), s.peak_connections) for n, s in rows],
    )
    family(
        "faultserver_requests_in_flight",
        "gauge",
        "Requests read and not yet answered.",
        [(lab(listener=n), s.in_flight) for n, s in rows],
    )
    return "\n".join(out) + "\n"
