"""A listener's schedule (profile-v1.md "Schedules"): phases in order, each with its accept
mode and rules for its duration, repeating unless `repeat: false`.

One `ScheduleRunner` per listener. A phase's rules are built once and kept across cycles,
so their `times` and random streams go on from one cycle to the next; a reload or a reset
starts a new runner (fresh rules). Each phase is announced (`phase` event) once its mode
is in force, so whoever waits for the event meets the phase. Mode switches go through the
listener's serialised `set_mode`, so an API PATCH and a phase change apply in the order
they were asked, the last one winning.
"""

from __future__ import annotations

import trio

from ._decide.rules import RuleSet
from ._profile.model import Phase, Schedule
from ._wire.listener import ListenerRuntime

__all__ = ["CAUSE", "ScheduleRunner"]

#: The `cause` of the mode switches a schedule makes.
CAUSE = "schedule"


class ScheduleRunner:
    """Runs one listener's schedule in a nursery until `cancel()` or its end."""

    def __init__(self, rt: ListenerRuntime, schedule: Schedule) -> None:
        self.rt = rt
        self.schedule = schedule
        self._scope = trio.CancelScope()
        #: phase index -> the rules in force in that phase (kept across cycles)
        self._phase_rules: dict[int, RuleSet] = {}

    def start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._run)

    def cancel(self) -> None:
        self._scope.cancel()

    async def _run(self) -> None:
        rt = self.rt
        with self._scope:
            cycle = 0
            while True:
                for index, phase in enumerate(self.schedule.phases):
                    await self._enter(index, phase, cycle)
                cycle += 1
                if not self.schedule.repeat:
                    break
            # the end of a schedule that does not repeat: the listener as configured
            rt.rules = rt.base_rules
            await rt.set_mode(rt.config.accept, CAUSE)
            rt.events.emit("phase", rt.name, phase=None, cycle=cycle, accept=rt.config.accept.value)

    async def _enter(self, index: int, phase: Phase, cycle: int) -> None:
        """Put one phase in force, announce it, and wait for its end."""
        rt = self.rt
        mode = phase.accept or rt.config.accept
        if phase.rules is None:
            rt.rules = rt.base_rules
        elif index in self._phase_rules:
            rt.rules = self._phase_rules[index]
        else:
            self._phase_rules[index] = rt.set_rules(phase.rules, scope=f"phase-{index}")
        began = trio.current_time()
        await rt.set_mode(mode, CAUSE)
        rt.events.emit(
            "phase", rt.name, phase=index, cycle=cycle, duration=phase.duration_s, accept=mode.value,
        )
        await trio.sleep_until(began + phase.duration_s)
