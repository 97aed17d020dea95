"""The two searches, as decisions without I/O: the read timeout's bisection and the pool's
step-up. `run.py` asks what to try next, tries it, and hands back what happened.

Read timeout. A request the backend never answers shows roughly when the gateway gives
up, but that time includes the gateway's retries, if any. The bisection then looks for the
backend delay where answers turn into failures: below it, 200; above it, an error. It
stops when the interval is narrow enough (`RESOLUTION_*`) or the scenario's time is up,
and reports the interval it has.

Pool. Requests that each take `POOL_DELAY_S` are sent `concurrency` at a time, for
concurrency 2, 4, 8, ... up to a maximum. A step is limited when some answers fail
(the gateway refuses) or come well after the delay (it queues). The limit reported is the
most requests the backend held at once in that step, which does not depend on the step.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .model import Failure, Reply

__all__ = [
    "MAX_CONCURRENCY",
    "Bisection",
    "PoolFinding",
    "PoolStep",
    "ReadTimeoutFinding",
    "classify_step",
    "first_bound",
    "next_concurrency",
    "pool_finding",
]

#: The bisection stops once its interval is this narrow, in seconds or as a share of its top.
RESOLUTION_S = 0.1
RESOLUTION_SHARE = 0.1
#: The first delay tried is this share of the first failure's time (usually just below it).
FIRST_TRY_SHARE = 0.9
#: The pool's steps; the highest is also the most threads the probe runs at once.
CONCURRENCY_STEPS = (2, 4, 8, 16, 32)
MAX_CONCURRENCY = CONCURRENCY_STEPS[-1]
#: An answer slower than the delay times this (plus `QUEUE_SLACK_S`) waited in a queue.
QUEUED_FACTOR = 1.5
QUEUE_SLACK_S = 0.25


def _answered(reply: Reply) -> bool:
    return reply.failure is None and reply.status is not None and 200 <= reply.status < 300


# --- read timeout -------------------------------------------------------------------------


def first_bound(reply: Reply) -> float | None:
    """The time the gateway took to give up on a request the backend never answered, or
    None when it did not give up within the probe's wait."""
    if reply.failure is Failure.TIMEOUT or _answered(reply):
        return None
    return reply.took_s


@dataclass(frozen=True, slots=True)
class Bisection:
    """The gateway waited for a backend delay of `lo_s`, not for one of `hi_s`."""

    lo_s: float
    hi_s: float
    tried: int = 0

    def next_delay(self) -> float | None:
        """The backend delay to try next, or None when the interval is narrow enough."""
        if self.hi_s - self.lo_s <= max(RESOLUTION_S, RESOLUTION_SHARE * self.hi_s):
            return None
        if self.tried == 0 and self.lo_s == 0:
            return FIRST_TRY_SHARE * self.hi_s
        return (self.lo_s + self.hi_s) / 2

    def after(self, delay_s: float, reply: Reply) -> Bisection:
        """The interval once a request delayed `delay_s` got `reply`."""
        if _answered(reply):
            return replace(self, lo_s=max(self.lo_s, delay_s), tried=self.tried + 1)
        return replace(self, hi_s=min(self.hi_s, delay_s), tried=self.tried + 1)


@dataclass(frozen=True, slots=True)
class ReadTimeoutFinding:
    """`slow-first-byte`'s result. `first`: what the never-answered request got, after
    `first_took_s`. `lo_s`/`hi_s`: the gateway waited for a delay of `lo_s`, not `hi_s`
    (both None when it did not give up within `waited_s`)."""

    first: str
    first_took_s: float
    lo_s: float | None
    hi_s: float | None
    waited_s: float
    steps: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "first_took_s": round(self.first_took_s, 3),
            "read_timeout_between_s": (
                None if self.hi_s is None else [round(self.lo_s or 0, 3), round(self.hi_s, 3)]
            ),
            "waited_s": self.waited_s,
            "steps": self.steps,
        }


# --- pool ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolStep:
    """One step of the pool search: `concurrency` requests at once, and what they got.

    `peak`: the most requests the backend held at once. `refused`: answers that were not
    a 2xx (or no answer); `queued`: 2xx answers that came well after the delay.
    """

    concurrency: int
    peak: int
    ok: int
    queued: int
    refused: int
    refused_outcome: str | None
    refused_wait_s: float | None
    queue_wait_s: float | None

    @property
    def limited(self) -> bool:
        return self.queued > 0 or self.refused > 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "concurrency": self.concurrency, "peak": self.peak, "ok": self.ok,
            "queued": self.queued, "refused": self.refused,
        }
        if self.refused:
            out["refused_outcome"] = self.refused_outcome
            out["refused_wait_s"] = _round(self.refused_wait_s)
        if self.queued:
            out["queue_wait_s"] = _round(self.queue_wait_s)
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def classify_step(concurrency: int, replies: Sequence[Reply], peak: int, delay_s: float) -> PoolStep:
    """Sort a step's answers into served in time, queued, and refused."""
    late = delay_s * QUEUED_FACTOR + QUEUE_SLACK_S
    ok = [r for r in replies if _answered(r) and r.took_s <= late]
    queued = [r for r in replies if _answered(r) and r.took_s > late]
    refused = [r for r in replies if not _answered(r)]
    outcome = Counter(r.outcome for r in refused).most_common(1)[0][0] if refused else None
    return PoolStep(
        concurrency=concurrency,
        peak=peak,
        ok=len(ok),
        queued=len(queued),
        refused=len(refused),
        refused_outcome=outcome,
        refused_wait_s=statistics.median(r.took_s for r in refused) if refused else None,
        queue_wait_s=max(r.took_s for r in queued) - delay_s if queued else None,
    )


def next_concurrency(steps: Sequence[PoolStep]) -> int | None:
    """The next step's concurrency, or None once a step was limited or the last was tried."""
    if steps and steps[-1].limited:
        return None
    done = len(steps)
    return CONCURRENCY_STEPS[done] if done < len(CONCURRENCY_STEPS) else None


@dataclass(frozen=True, slots=True)
class PoolFinding:
    """`pool-exhaustion`'s result: `limit`, the most requests the gateway sent the backend
    at once in the first limited step (None: no step was limited, up to `largest_tried`)."""

    steps: tuple[PoolStep, ...]
    limit: int | None
    largest_tried: int
    peak: int
    delay_s: float | None = None

    @property
    def limiting(self) -> PoolStep | None:
        return next((s for s in self.steps if s.limited), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "largest_tried": self.largest_tried,
            "peak": self.peak,
            "delay_s": self.delay_s,
            "steps": [s.to_json() for s in self.steps],
        }


def pool_finding(steps: Sequence[PoolStep], delay_s: float | None = None) -> PoolFinding:
    limiting = next((s for s in steps if s.limited), None)
    return PoolFinding(
        steps=tuple(steps),
        limit=limiting.peak if limiting is not None else None,
        largest_tried=max((s.concurrency for s in steps), default=0),
        peak=max((s.peak for s in steps), default=0),
        delay_s=delay_s,
    )
