"""One timer for many sleepers: a `delay` that falls due for a thousand connections at once.

`trio.sleep` gives each sleeper a cancel scope with a deadline; when the deadline passes,
trio cancels the scope, and the `Cancelled` it raises is caught again by the scope. That
is an exception per sleeper, and trio first walks every expired deadline before any of
them runs: with a thousand requests due together (a `delay` rule under load), waking
them costs more than answering them, and the last ones answer late.

Here a sleeper parks (`wait_task_rescheduled`) in one heap, and one system task per Trio
run sleeps until the earliest deadline, then wakes every sleeper that is due by
rescheduling it: no exception, no scope per sleeper. A sleeper is never woken early
(only entries whose deadline has passed are woken), and it stays cancellable: when its
scope is cancelled (a drop, a shutdown), its entry is struck out and it gets `Cancelled`
exactly as in `trio.sleep`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

import trio

__all__ = ["sleep", "sleep_until"]


class _Timer:
    """The heap of parked sleepers and the system task that wakes them."""

    def __init__(self) -> None:
        #: (deadline, order, entry); entry[0] is the sleeping task, None once cancelled
        self._heap: list[tuple[float, int, list[Any]]] = []
        self._order = itertools.count()
        self._scope: trio.CancelScope | None = None

    def add(self, deadline: float, entry: list[Any]) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), entry))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline  # wake the timer earlier

    async def run(self) -> None:
        heap = self._heap
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._scope:
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                task = heapq.heappop(heap)[2][0]
                if task is not None:
                    trio.lowlevel.reschedule(task)


_TIMER: trio.lowlevel.RunVar[_Timer] = trio.lowlevel.RunVar("faultserver_timer")


def _timer() -> _Timer:
    try:
        return _TIMER.get()
    except LookupError:
        timer = _Timer()
        _TIMER.set(timer)
        trio.lowlevel.spawn_system_task(timer.run, name="faultserver timer")
        return timer


async def sleep_until(deadline: float) -> None:
    """`trio.sleep_until(deadline)`, through the shared timer."""
    if deadline <= trio.current_time():
        await trio.lowlevel.checkpoint()
        return
    entry: list[Any] = [trio.lowlevel.current_task()]
    _timer().add(deadline, entry)

    def abort(_: Any) -> trio.lowlevel.Abort:
        entry[0] = None  # struck out: the timer skips it
        return trio.lowlevel.Abort.SUCCEEDED

    await trio.lowlevel.wait_task_rescheduled(abort)


async def sleep(seconds: float) -> None:
    """`trio.sleep(seconds)`, through the shared timer."""
    await sleep_until(trio.current_time() + seconds)
