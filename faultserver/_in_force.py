"""The listeners in force: each listener's runtime, the cancel scope of its life, its schedule.

`Server` decides what is in force; this module starts, reconfigures and stops listeners
as told, and knows nothing of profiles beyond one listener's config.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import trio

from ._errors import StartError, UnknownListenerError
from ._events import EventLog
from ._profile.model import CloseHow, Listener
from ._reload import InForce
from ._schedule import ScheduleRunner
from ._wire.listener import ListenerRuntime

__all__ = ["SHUTDOWN_DRAIN_S", "ListenersInForce"]

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


class ListenersInForce:
    """The listeners in force, by name, in the order they were started."""

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self._slots: dict[str, _Slot] = {}
        self._conn_ids = 0

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

    def binds(self) -> set[str]:
        return {slot.rt.config.bind for slot in self._slots.values()}

    # --- making ---------------------------------------------------------------------

    def _next_conn_id(self) -> int:
        self._conn_ids += 1
        return self._conn_ids

    def build(self, config: Listener, seed: int, fault_header: str | None) -> ListenerRuntime:
        """A listener's runtime, not bound yet; what cannot be built is a StartError."""
        try:
            return ListenerRuntime(config, self.events, seed, fault_header, self._next_conn_id)
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
                await rt.set_mode(rt.config.accept, "profile")
                _log_listener(rt, "start")
                nursery.start_soon(rt.run, nursery)
                _start_schedule(slot)
                task_status.started()

    async def reconfigure(self, config: Listener, seed: int, fault_header: str | None) -> None:
        """A kept listener gets its new config: rules, streams, mode, a new schedule."""
        slot = self._slots[config.name]
        if slot.schedule is not None:
            slot.schedule.cancel()  # before the mode: the old timeline must not race it
            slot.schedule = None
        slot.rt.configure(config, seed, fault_header)
        await slot.rt.set_mode(config.accept, "profile")
        _start_schedule(slot)

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


def _start_schedule(slot: _Slot) -> None:
    schedule = slot.rt.config.schedule
    if schedule is None or not schedule.phases or slot.nursery is None:
        return
    slot.schedule = ScheduleRunner(slot.rt, schedule)
    slot.schedule.start(slot.nursery)


def _log_listener(rt: ListenerRuntime, what: str) -> None:
    log.info("listener %s listener=%s url=%s accept=%s", what, rt.name, rt.url, rt.mode.value)
