"""A token bucket: at most `rate` events a second on average, and up to `burst` at once.

`GET /events/stream?rate=N&burst=M` paces a reader with one. A reader that shows only the
newest events (the dashboard keeps 500) asks for a low sustained rate and a burst of what it
keeps: a burst of events smaller than that is sent whole, and only a sustained flood is
sampled. Pure and synchronous: the caller passes the time (`trio.current_time()`).
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """`burst` tokens to start with, `rate` more a second, never more than `burst` held."""

    def __init__(self, rate: int, burst: int, now: float) -> None:
        if rate < 1 or burst < 1:
            raise ValueError(f"a token bucket needs rate and burst of 1 or more, got {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now

    def available(self, now: float) -> int:
        """How many events may be sent at `now`."""
        self._refill(now)
        return int(self._tokens)

    def take(self, n: int, now: float) -> None:
        """Spend `n` tokens (at most what `available` said)."""
        self._refill(now)
        self._tokens = max(0.0, self._tokens - n)

    def ready_at(self, now: float) -> float:
        """When one token is there (`now` when one already is)."""
        self._refill(now)
        return now + max(0.0, 1.0 - self._tokens) / self.rate
