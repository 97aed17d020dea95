"""Proxy mode's metrics: what the upstreams answered, how fast, and their pools.

Kept apart from `_metrics.py` (whose families are plain counters and gauges) because the
latency is a histogram. A listener's counts live as long as the listener, across reloads
that change its upstream (the pool hands them on).
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable
from typing import Protocol

__all__ = ["LATENCY_BUCKETS_S", "UpstreamStats", "render_upstream_metrics"]

#: A status's class, by its first digit (httptools reads three digits, no more).
_CLASSES = tuple(f"{digit}xx" for digit in range(10))
#: The latency histogram's upper bounds, in seconds (Prometheus's defaults, and 2.5 ms).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class UpstreamStats:
    """Counts of one listener's upstream answers and failures, and their latency."""

    __slots__ = ("errors", "latency_buckets", "latency_count", "latency_sum_s", "responses")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Every count back to zero (`POST /reset`)."""
        #: status class ("2xx"...) -> answers
        self.responses: collections.Counter[str] = collections.Counter()
        #: (reason, phase) -> failures
        self.errors: collections.Counter[tuple[str, str]] = collections.Counter()
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum_s = 0.0
        self.latency_count = 0

    def answered(self, status: int, latency_s: float) -> None:
        """An answer's head arrived `latency_s` after the forward began."""
        self.responses[_CLASSES[status // 100]] += 1
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        self.latency_sum_s += latency_s
        self.latency_count += 1

    def failed(self, reason: str, phase: str) -> None:
        self.errors[(reason, phase)] += 1


class UpstreamSource(Protocol):
    """What the page reads of a listener's upstream pool."""

    @property
    def stats(self) -> UpstreamStats: ...

    @property
    def in_use(self) -> int: ...

    @property
    def idle(self) -> int: ...


def render_upstream_metrics(pools: Iterable[tuple[str, UpstreamSource]]) -> str:
    """The proxy families of the metrics page ("" when no listener has an upstream)."""
    rows = list(pools)
    if not rows:
        return ""
    out = [
        "# HELP faultserver_upstream_responses_total Upstream answers, by status class.",
        "# TYPE faultserver_upstream_responses_total counter",
    ]
    for name, pool in rows:
        for status_class, count in sorted(pool.stats.responses.items()):
            out.append(
                f'faultserver_upstream_responses_total{{listener="{name}",class="{status_class}"}} {count}'
            )
    out += [
        "# HELP faultserver_upstream_errors_total Upstream failures, by reason and phase.",
        "# TYPE faultserver_upstream_errors_total counter",
    ]
    for name, pool in rows:
        for (reason, phase), count in sorted(pool.stats.errors.items()):
            labels = f'listener="{name}",reason="{reason}",phase="{phase}"'
            out.append(f"faultserver_upstream_errors_total{{{labels}}} {count}")
    out += [
        "# HELP faultserver_upstream_latency_seconds "
        "Time from a forward's start to the upstream's answer head.",
        "# TYPE faultserver_upstream_latency_seconds histogram",
    ]
    for name, pool in rows:
        stats = pool.stats
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS_S, None), stats.latency_buckets, strict=True):
            cumulative += count
            le = "+Inf" if bound is None else repr(bound)
            out.append(
                f'faultserver_upstream_latency_seconds_bucket{{listener="{name}",le="{le}"}} {cumulative}'
            )
        out.append(f'faultserver_upstream_latency_seconds_sum{{listener="{name}"}} {stats.latency_sum_s!r}')
        out.append(f'faultserver_upstream_latency_seconds_count{{listener="{name}"}} {stats.latency_count}')
    for family, help_, attribute in (
        ("faultserver_upstream_pool_in_use", "Upstream connections carrying a request now.", "in_use"),
        ("faultserver_upstream_pool_idle", "Upstream connections kept idle for reuse now.", "idle"),
    ):
        out += [f"# HELP {family} {help_}", f"# TYPE {family} gauge"]
        out += [f'{family}{{listener="{name}"}} {getattr(pool, attribute)}' for name, pool in rows]
    return "\n".join(out) + "\n"
