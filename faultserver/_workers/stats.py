"""Each worker's listener counters, sent to the parent and summed there (`GET /listeners`,
`/metrics`). Workers send a snapshot when it changed, at most every `STATS_INTERVAL_S`, so
the parent's figures trail the workers' by that much. `peak_connections` is the fleet's
(the most connections open at once in all workers, counted in `counts.py`)."""

from __future__ import annotations

import collections
from typing import Any

from .._metrics import ListenerStats

__all__ = ["STATS_INTERVAL_S", "FleetStats", "snapshot"]

#: How often a worker sends its counters (when they changed).
STATS_INTERVAL_S = 0.1
_COUNTS = ("connections", "requests", "retries", "repeats")
_LIVE = ("open_connections", "in_flight")
_TALLIES = ("faults", "delayed")


def snapshot(stats: ListenerStats) -> dict[str, Any]:
    """One listener's counters as JSON-able data."""
    out: dict[str, Any] = {key: getattr(stats, key) for key in (*_COUNTS, *_LIVE)}
    out["peak_connections"] = stats.peak_connections
    for key in _TALLIES:
        out[key] = [[rule, action, n] for (rule, action), n in getattr(stats, key).items()]
    out["responses"] = [[status, n] for status, n in stats.responses.items()]
    return out


class FleetStats:
    """The workers' latest snapshots, and what workers that exited had counted."""

    def __init__(self) -> None:
        #: worker -> listener -> snapshot
        self.latest: dict[int, dict[str, dict[str, Any]]] = {}
        #: listener -> snapshot of the counts of workers gone (their live figures are 0)
        self.retired: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)

    def update(self, worker: int, listeners: dict[str, dict[str, Any]]) -> None:
        self.latest[worker] = listeners

    def retire(self, worker: int) -> None:
        """`worker` exited: its connections are gone, its counts stay in the totals."""
        for name, snap in self.latest.pop(worker, {}).items():
            self.retired[name].append({**snap, **dict.fromkeys(_LIVE, 0)})

    def apply(self, name: str, stats: ListenerStats) -> None:
        """Write the sum over workers of listener `name` into `stats` (the parent's)."""
        snaps = [*self.retired.get(name, ()), *(w[name] for w in self.latest.values() if name in w)]
        for key in (*_COUNTS, *_LIVE):
            setattr(stats, key, sum(s[key] for s in snaps))
        # each worker sends the fleet's peak (`counts.py`), not its own
        stats.peak_connections = max((s["peak_connections"] for s in snaps), default=0)
        for key in _TALLIES:
            tally: collections.Counter[tuple[str, str]] = collections.Counter()
            for s in snaps:
                for rule, action, n in s[key]:
                    tally[(rule, action)] += n
            setattr(stats, key, tally)
        responses: collections.Counter[int] = collections.Counter()
        for s in snaps:
            for status, n in s["responses"]:
                responses[int(status)] += n
        stats.responses = responses
