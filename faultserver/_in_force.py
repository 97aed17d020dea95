"""The listeners in force: each listener's runtime, the cancel scope of its life, its schedule.

`Server` decides what is in force; this module starts, reconfigures and stops listeners
as told, and knows nothing of profiles beyond one listener's config.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import trio

from ._decide.rules import RuleSet
from ._errors import StartError, UnknownListenerError
from ._events import EventLog
from ._profile.model import AcceptMode, CloseHow, Listener, Rule
from ._reload import InForce
from ._schedule import ScheduleRunner, ScheduleStatus
from ._tls.listener import CAFiles
from ._wire.listener import ListenerRuntime

__all__ = ["SHUTDOWN_DRAIN_S", "ListenerInForce", "ListenersInForce"]

log = logging.getLogger("faultserver")

#: How long a stop waits for connections to finish their FIN before cancelling them.
SHUTDOWN_DRAIN_S = 1.5


class _Slot:
    """A listener in force, the cancel scope of its whole life and its schedule."""

    def __init__(self, rt: ListenerRuntime) -> None:
        self.rt = rt
        self.scope = trio.CancelScope()  # accept loop, connections, schedule
        self.nursery: trio.Nursery | None = None
        self.schedule: ScheduleRunner | None = None
        #: who put the mode in force: `profile`, `schedule` or `api` (the last switch asked)
        self.mode_cause = "profile"
        #: whether the listener's own rules were replaced through the API (or the handle)
        self.rules_by_api = False


@dataclass(frozen=True, slots=True)
class ListenerInForce:
    """What is in force on one listener and why (`GET /state`).

    `mode_cause`: who asked for the mode in force (`profile`, `schedule`, `api`);
    `rules_cause`: whose rules are in force (`profile`, `api`, or `schedule` for a phase's).
    """

    rt: ListenerRuntime
    mode_cause: str
    rules_cause: str
    schedule: ScheduleStatus | None


class ListenersInForce:
    """The listeners in force, by name, in the order they were started."""

    def __init__(self, events: EventLog, ca_files: CAFiles | None = None) -> None:
        self.events = events
        #: where TLS listeners write their generated CAs
        self.ca_files = ca_files if ca_files is not None else CAFiles()
        self._slots: dict[str, _Slot] = {}
        self._conn_ids = 0
        #: `run --workers N`: every listener's socket joins its port's SO_REUSEPORT group
        self.reuse_port = False
        #: connection ids go up by this much (`run --workers N`: each worker its own residue)
        self.conn_id_step = 1
        #: schedules' phase changes are paused (`POST /schedule/pause`); new ones start paused
        self.paused = False
        #: `run --workers N`: given to each runtime built (see `ListenerRuntime.remote`)
        self.remote: Callable[[str, AcceptMode], Awaitable[None]] | None = None
        #: `run --workers N`, in a worker: called with each runtime bound or reconfigured, at
        #: once (before it serves with its new rules), to give it the fleet's shared state
        self.on_built: Callable[[ListenerRuntime], None] | None = None
        #: `run --workers N`, in the parent: awaited before each schedule phase's mode
        #: switch, so the phase's rules reach every worker before it is announced
        self.before_phase: Callable[[], Awaitable[None]] | None = None

    # --- reading --------------------------------------------------------------------

    def runtimes(self) -> dict[str, ListenerRuntime]:
        return {name: slot.rt for name, slot in self._slots.items()}

    def get(self, name: str) -> ListenerRuntime:
        slot = self._slots.get(name)
        if slot is None:
            raise UnknownListenerError(name, list(self._slots))
        return slot.rt

    def describe(self) -> Iterator[InForce]:
        """Each listener as a reload plan needs to know it."""
        for name, slot in self._slots.items():
            yield InForce(name, slot.rt.host, slot.rt.port, slot.rt.config.port)

    def rulesets(self, name: str) -> list[RuleSet]:
        """Every rule set listener `name` holds: in force, its own, its schedule's phases'."""
        slot = self._slots[name]
        found = [slot.rt.rules, slot.rt.base_rules]
        if slot.schedule is not None:
            found += slot.schedule.rulesets()
        return found

    def binds(self) -> set[str]:
        return {slot.rt.config.bind for slot in self._slots.values()}

    def in_force(self) -> list[ListenerInForce]:
        """Each listener's mode, rules and schedule, and why (call in the server's thread)."""
        out = []
        for slot in self._slots.values():
            rt = slot.rt
            if rt.rules is not rt.base_rules:
                rules_cause = "schedule"
            else:
                rules_cause = "api" if slot.rules_by_api else "profile"
            schedule = slot.schedule.status() if slot.schedule is not None else None
            out.append(ListenerInForce(rt, slot.mode_cause, rules_cause, schedule))
        return out

    # --- making ---------------------------------------------------------------------

    def _next_conn_id(self) -> int:
        self._conn_ids += self.conn_id_step
        return self._conn_ids

    @property
    def last_conn_id(self) -> int:
        """The id of the newest connection (below `first_conn_id`'s first before any)."""
        return self._conn_ids

    def first_conn_id(self, first: int) -> None:
        """The next connection gets id `first` (then `first` + step...)."""
        self._conn_ids = first - self.conn_id_step

    def build(self, config: Listener, seed: int, fault_header: str | None) -> ListenerRuntime:
        """A listener's runtime, not bound yet; what cannot be built is a StartError."""
        try:
            rt = ListenerRuntime(
                config, self.events, seed, fault_header, self._next_conn_id, self.ca_files
            )
            rt.remote = self.remote
            rt.reuse_port = self.reuse_port
            return rt
        except Exception as exc:  # a valid profile this server cannot build (an odd seed...)
            raise StartError(f"listener {config.name}: cannot put it in force: {exc}") from None

    def bind_all(
        self, configs: Sequence[Listener], seed: int, fault_header: str | None
    ) -> list[ListenerRuntime]:
        """Build and bind each listener, or none (those bound are closed again)."""
        made: list[ListenerRuntime] = []
        try:
            for config in configs:
                rt = self.build(config, seed, fault_header)
                try:
                    rt.bind()
                except OSError as exc:
                    raise StartError(
                        f"listener {config.name}: cannot bind {config.bind}: {exc.strerror or exc}"
                    ) from None
                made.append(rt)
                if self.on_built is not None:
                    self.on_built(rt)
        except BaseException:
            for rt in made:
                rt.close()
            raise
        return made

    # --- starting, changing, stopping -------------------------------------------------

    async def start(self, nursery: trio.Nursery, rt: ListenerRuntime) -> None:
        """Serve a bound listener in `nursery`: its mode, its accept loop, its schedule."""
        slot = _Slot(rt)
        self._slots[rt.name] = slot
        await nursery.start(self._serve, slot)

    async def _serve(self, slot: _Slot, task_status: trio.TaskStatus[None]) -> None:
        rt = slot.rt
        with slot.scope:
            async with trio.open_nursery() as nursery:
                slot.nursery = nursery
                await _set_mode(slot, rt.config.accept, "profile")
                _log_listener(rt, "start")
                nursery.start_soon(rt.run, nursery)
                _start_schedule(slot, self.paused, self.before_phase)
                task_status.started()

    async def reconfigure(self, config: Listener, seed: int, fault_header: str | None) -> None:
        """A kept listener gets its new config: rules, streams, mode, a new schedule."""
        slot = self._slots[config.name]
        if slot.schedule is not None:
            slot.schedule.cancel()  # before the mode: the old timeline must not race it
            slot.schedule = None
        slot.rt.configure(config, seed, fault_header)
        if self.on_built is not None:
            self.on_built(slot.rt)
        slot.rules_by_api = False
        await _set_mode(slot, config.accept, "profile")
        _start_schedule(slot, self.paused, self.before_phase)

    # --- what the API changes ----------------------------------------------------------

    async def set_mode(self, name: str, mode: AcceptMode, cause: str) -> None:
        """Switch a listener's accept mode now, and remember who asked."""
        self.get(name)
        await _set_mode(self._slots[name], mode, cause)

    def set_rules(self, name: str, rules: tuple[Rule, ...]) -> None:
        """Replace a listener's own rules now (fresh `times` and random streams)."""
        rt = self.get(name)
        rt.base_rules = rt.set_rules(rules)
        self._slots[name].rules_by_api = True

    def clear_api_rules(self) -> list[str]:
        """Put each listener's profile rules back in force where the API replaced them, or a
        schedule's phase has its own; returns the names of the listeners whose rules changed."""
        changed = []
        for name, slot in self._slots.items():
            rt = slot.rt
            if slot.rules_by_api:
                rt.base_rules = rt.set_rules(rt.config.rules)
                slot.rules_by_api = False
                changed.append(name)
            elif rt.rules is not rt.base_rules:
                rt.rules = rt.base_rules
                changed.append(name)
        return changed

    def set_paused(self, paused: bool) -> bool:
        """Pause (or resume) every schedule's phase changes; False when it was so already."""
        if paused == self.paused:
            return False
        self.paused = paused
        for slot in self._slots.values():
            if slot.schedule is not None:
                if paused:
                    slot.schedule.pause()
                else:
                    slot.schedule.resume()
        return True

    def remove(self, name: str) -> None:
        """Stop a listener: its port closes, its connections get a FIN."""
        slot = self._slots.pop(name)
        if slot.schedule is not None:
            slot.schedule.cancel()
        slot.rt.close()
        slot.rt.drop(CloseHow.FIN)
        _log_listener(slot.rt, "stop")
        slot.scope.cancel()

    def reset_stats(self) -> None:
        for slot in self._slots.values():
            slot.rt.reset_stats()

    async def shutdown(self) -> None:
        """Close every listener, then every connection with a FIN, quickly."""
        for slot in self._slots.values():
            if slot.schedule is not None:
                slot.schedule.cancel()
            slot.rt.close()
            slot.rt.drop_for_shutdown()
            _log_listener(slot.rt, "stop")
        with trio.move_on_after(SHUTDOWN_DRAIN_S):
            while any(slot.rt.connections for slot in self._slots.values()):
                await trio.sleep(0.01)

    def close_all(self) -> None:
        for slot in self._slots.values():
            slot.rt.close()


async def _set_mode(slot: _Slot, mode: AcceptMode, cause: str) -> None:
    """`set_mode`, remembering who asked: switches are serialised in the order asked, and
    nothing runs between the end of one and this assignment, so the last one asked is the
    one remembered."""
    await slot.rt.set_mode(mode, cause)
    slot.mode_cause = cause


def _start_schedule(
    slot: _Slot, paused: bool, before: Callable[[], Awaitable[None]] | None = None
) -> None:
    schedule = slot.rt.config.schedule
    if schedule is None or not schedule.phases or slot.nursery is None:
        return

    async def set_mode(mode: AcceptMode, cause: str) -> bool:
        if before is not None:
            await before()
        await _set_mode(slot, mode, cause)
        return True

    slot.schedule = ScheduleRunner(slot.rt, schedule, set_mode=set_mode, paused=paused)
    slot.schedule.start(slot.nursery)


def _log_listener(rt: ListenerRuntime, what: str) -> None:
    log.info("listener %s listener=%s url=%s accept=%s", what, rt.name, rt.url, rt.mode.value)
