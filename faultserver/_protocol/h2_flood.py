"""When an HTTP/2 client's frames are a flood: pure bookkeeping, with the clock an argument.

Two patterns cost a server work that no answer pays for:

- the rapid reset (CVE-2023-44487): streams opened and reset by the client before their
  answer began. Each costs the server a header block to decode and a stream to keep, and
  the reset frees the client's stream slot at once, so `max_concurrent_streams` bounds
  nothing. A stream whose answer has begun is not counted: a client whose deadline meets a
  slow or hanging answer (a fault faultserver was asked for) cancels it, and many such
  cancels at once are the fault working, not a flood;
- control frames (PING, SETTINGS, RST_STREAM of a stream whose answer began): each asks
  for an answer or for bookkeeping, and carries no request.

Both are counted in fixed windows of `WINDOW_S`, so that a connection that lives for hours
(gRPC keep-alive PINGs, a gateway's occasional cancel) never adds up to a flood, while a
burst does within its window. The allowances grow with the window's real work: a client
may reset `EARLY_RESETS` streams per window before their answer began, plus one per stream
answered in it, and send `CONTROL_FRAMES` control frames per window, plus
`CONTROL_FRAMES_PER_REQUEST` per stream it opened in it. A normal client, however many
requests it makes and cancels, does not reset streams before their answer begins more often
than it is answered; one that resets everything it opens trips the guard after
`EARLY_RESETS`.
"""

from __future__ import annotations

__all__ = [
    "CONTROL_FRAMES",
    "CONTROL_FRAMES_PER_REQUEST",
    "EARLY_RESETS",
    "WINDOW_S",
    "FloodGuard",
]

#: The length of a counting window.
WINDOW_S = 1.0
#: Streams the client may reset before their answer in one window, beyond those answered.
EARLY_RESETS = 100
#: Control frames a client may send in one window, and more per stream it opened in it.
CONTROL_FRAMES = 1000
CONTROL_FRAMES_PER_REQUEST = 4


class FloodGuard:
    """One connection's counts in the current window. Feed it what happens with the time
    it happened (`opened`, `answered`, `early_reset`, `control`); `flood()` says, in words,
    whether the client is flooding (None: not)."""

    __slots__ = ("_answered", "_control", "_early_resets", "_opened", "_window_end")

    def __init__(self) -> None:
        self._window_end = -1.0
        self._opened = self._answered = self._early_resets = self._control = 0

    def _at(self, now: float) -> None:
        if now >= self._window_end:
            self._window_end = now + WINDOW_S
            self._opened = self._answered = self._early_resets = self._control = 0

    def opened(self, now: float) -> None:
        """The client opened a stream."""
        self._at(now)
        self._opened += 1

    def answered(self, now: float) -> None:
        """A stream's answer is complete."""
        self._at(now)
        self._answered += 1

    def early_reset(self, now: float) -> None:
        """The client reset a stream whose answer had not begun."""
        self._at(now)
        self._early_resets += 1

    def control(self, now: float, frames: int = 1) -> None:
        """The client sent control frames."""
        self._at(now)
        self._control += frames

    def flood(self) -> str | None:
        """Why the current window is a flood, or None."""
        if self._early_resets > EARLY_RESETS + self._answered:
            return (
                f"flood: {self._early_resets} streams reset by the client before their answer began "
                f"within {WINDOW_S:g} s ({self._answered} answered; rapid reset)"
            )
        if self._control > CONTROL_FRAMES + CONTROL_FRAMES_PER_REQUEST * self._opened:
            return (
                f"flood: {self._control} control frames within {WINDOW_S:g} s "
                f"for {self._opened} requests"
            )
        return None
