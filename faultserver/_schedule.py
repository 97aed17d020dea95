"""A listener's schedule (profile-v1.md "Schedules"): phases in order, each with its accept
mode and rules for its duration, repeating unless `repeat: false`.

One `ScheduleRunner` per listener. A phase's rules are built once and kept across cycles,
so their `times` and random streams go on from one cycle to the next; a reload or a reset
starts a new runner (fresh rules). Each phase is announced (`phase` event) once its mode
is in force, so whoever waits for the event meets the phase. Mode switches go through the
listener's serialised `set_mode`, so an API PATCH and a phase change apply in the order
they were asked, the last one winning.

Pausing (`POST /schedule/pause`, `/panic`) stops phase changes: the phase in force stays,
and the time left of it is kept; resuming runs that time out, then goes on with the next
phase. A runner started while the server is paused (a reload) waits before its first phase.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ._decide.rules import RuleSet
from ._profile.model import AcceptMode, CertificateMode, Phase, Schedule
from ._wire.listener import ListenerRuntime

__all__ = ["CAUSE", "ScheduleRunner", "ScheduleStatus"]

log = logging.getLogger("faultserver")

#: The `cause` of the mode switches a schedule makes.
CAUSE = "schedule"


#: How a runner switches its listener's mode: `(mode, cause)`, as `ListenerRuntime.set_mode`.
SetMode = Callable[[AcceptMode, str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """Where a schedule is (`GET /state`): the phase in force (None before the first and after
    the end of one that does not repeat), its cycle, the seconds left of it (None: no phase
    running), whether phase changes are paused, and whether the schedule has ended."""

    phase: int | None
    phases: int
    cycle: int
    next_in_s: float | None
    paused: bool
    ended: bool
    repeat: bool


class ScheduleRunner:
    """Runs one listener's schedule in a nursery until `cancel()` or its end.

    `set_mode`: how the runner switches the mode (default: the listener's own `set_mode`;
    the listeners in force pass theirs, which also records why the mode is in force).
    `paused`: start paused (the server is paused when a reload starts this runner).
    """

    def __init__(
        self,
        rt: ListenerRuntime,
        schedule: Schedule,
        *,
        set_mode: SetMode | None = None,
        paused: bool = False,
    ) -> None:
        self.rt = rt
        self.schedule = schedule
        self._set_mode: SetMode = set_mode if set_mode is not None else rt.set_mode
        self._scope = trio.CancelScope()
        #: phase index -> the rules in force in that phase (kept across cycles)
        self._phase_rules: dict[int, RuleSet] = {}
        self._phase: int | None = None
        self._cycle = 0
        self._ended = False
        self._paused = paused
        self._resumed = trio.Event()
        #: while a phase runs: when it ends (Trio's clock); while paused: None
        self._deadline: float | None = None
        #: while paused in a phase: the seconds it has left
        self._left_s: float | None = None
        self._sleep: trio.CancelScope | None = None

    def start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._run)

    def cancel(self) -> None:
        self._scope.cancel()

    def rulesets(self) -> list[RuleSet]:
        """The phases' rule sets built so far (kept across cycles)."""
        return list(self._phase_rules.values())

    # --- pausing (the server's Trio thread) ---------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop phase changes now: the phase in force stays, with the time it has left."""
        if self._paused:
            return
        self._paused = True
        self._resumed = trio.Event()
        if self._deadline is not None:
            self._left_s = max(0.0, self._deadline - trio.current_time())
            self._deadline = None
        if self._sleep is not None:
            self._sleep.cancel()

    def resume(self) -> None:
        """Phase changes again: the phase in force runs out the time it had left."""
        if not self._paused:
            return
        self._paused = False
        self._resumed.set()

    def status(self) -> ScheduleStatus:
        """Where the schedule is now (call from the server's Trio thread)."""
        if self._deadline is not None:
            left: float | None = max(0.0, self._deadline - trio.current_time())
        else:
            left = self._left_s if self._phase is not None else None
        return ScheduleStatus(
            self._phase, len(self.schedule.phases), self._cycle, left, self._paused, self._ended,
            self.schedule.repeat,
        )

    async def _unpaused(self) -> None:
        while self._paused:
            await self._resumed.wait()

    async def _wait_until(self, deadline: float) -> None:
        """Sleep until `deadline`, the clock stopped while paused."""
        while True:
            await self._unpaused()
            if self._left_s is not None:  # resumed: what was left, from now
                deadline = trio.current_time() + self._left_s
                self._left_s = None
            self._deadline = deadline
            with trio.CancelScope() as scope:
                self._sleep = scope
                await trio.sleep_until(deadline)
            self._sleep = None
            if not scope.cancelled_caught:  # the phase ran out (else: paused, `_left_s` kept)
                self._deadline = None
                return

    # --- the timeline ----------------------------------------------------------------------

    async def _run(self) -> None:
        rt = self.rt
        with self._scope:
            cycle = 0
            while True:
                for index, phase in enumerate(self.schedule.phases):
                    await self._unpaused()
                    self._cycle = cycle
                    await self._enter(index, phase, cycle)
                cycle += 1
                if not self.schedule.repeat:
                    break
            await self._unpaused()
            # the end of a schedule that does not repeat: the listener as configured
            self._phase, self._cycle, self._ended = None, cycle, True
            self._put_rules(rt.base_rules, None, cycle)
            self._put_certificate(None, None, cycle)
            await self._set_mode(rt.config.accept, CAUSE)
            rt.events.emit("phase", rt.name, phase=None, cycle=cycle, accept=rt.config.accept.value)

    async def _enter(self, index: int, phase: Phase, cycle: int) -> None:
        """Put one phase in force, announce it, and wait for its end."""
        rt = self.rt
        mode = phase.accept or rt.config.accept
        if phase.rules is None:
            self._put_rules(rt.base_rules, index, cycle)
        elif index in self._phase_rules:
            self._put_rules(self._phase_rules[index], index, cycle)
        else:
            self._phase_rules[index] = rt.set_rules(phase.rules, scope=f"phase-{index}")
            self._log_rules(self._phase_rules[index], index, cycle)
        self._put_certificate(phase.certificate, index, cycle)
        began = trio.current_time()
        self._phase = index
        await self._set_mode(mode, CAUSE)
        rt.events.emit(
            "phase", rt.name, phase=index, cycle=cycle, duration=phase.duration_s, accept=mode.value,
        )
        await self._wait_until(began + phase.duration_s)

    def _put_certificate(self, mode: CertificateMode | None, phase: int | None, cycle: int) -> None:
        """A generated TLS listener's certificate for the phase (None: as configured); one
        log line and one `certificate` event per change."""
        tls = self.rt.tls
        if tls is None or tls.authority is None:
            return
        wanted = mode or tls.config.certificate
        if tls.mode is not wanted:
            tls.use_certificate(wanted)
            where = "end" if phase is None else str(phase)
            log.info(
                "certificate listener=%s mode=%s phase=%s cycle=%d cause=%s",
                self.rt.name, wanted.value, where, cycle, CAUSE,
            )
            self.rt.events.emit(
                "certificate", self.rt.name, mode=wanted.value, sha256=tls.describe_sha256(), cause=CAUSE
            )

    def _put_rules(self, rules: RuleSet, phase: int | None, cycle: int) -> None:
        """Put `rules` in force, and log it when they were not in force already."""
        if self.rt.rules is not rules:
            self.rt.rules = rules
            self._log_rules(rules, phase, cycle)

    def _log_rules(self, rules: RuleSet, phase: int | None, cycle: int) -> None:
        """One line per change of rules, as `set_mode` logs one per change of mode."""
        names = ",".join(rule.name for rule in rules.rules) or "(none)"
        where = "end" if phase is None else str(phase)
        log.info(
            "rules listener=%s rules=%s phase=%s cycle=%d cause=%s", self.rt.name, names, where, cycle, CAUSE
        )
