"""The server: one Trio nursery owning the listeners, their schedules and the admin API.

Every way of controlling a running faultserver (the admin API, SIGHUP, the pytest
fixture) calls the methods of `Server`; none of them reaches into the listeners.
"""

from __future__ import annotations

import itertools
import logging
import random
import signal
from typing import Any, Optional

import trio

from ._errors import StartError, UsageError
from ._events import EventLog
from ._profile.model import AcceptMode, Listener, Profile, Rule
from ._wire.listener import ListenerRuntime

__all__ = ["Server"]

log = logging.getLogger("faultserver")


class _Slot:
    """A listener and the cancel scopes of what runs for it."""

    def __init__(self, rt: ListenerRuntime) -> None:
        self.rt = rt
        self.scope = trio.CancelScope()  # the listener's whole life (accept loop + connections)
        self.schedule_scope: Optional[trio.CancelScope] = None
        #: phase index -> rules in force in that phase (kept across cycles: streams go on)
        self.phase_rules: dict[int, Any] = {}
        self.override_mode: Optional[AcceptMode] = None
        self.phase_mode: Optional[AcceptMode] = None


class Server:
    """A running faultserver. Create it, then `await server.run(task_status=...)` in a nursery.

    `with_admin`: serve the admin API (the CLI does; the pytest fixture only when asked).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        control: Optional[tuple[str, int]] = None,
        with_admin: bool = True,
        events: Optional[EventLog] = None,
        allow_privileged: bool = False,
        token: Optional[str] = None,
    ) -> None:
        self.profile = profile
        self.loaded_profile = profile
        self.seed = profile.seed if profile.seed is not None else random.SystemRandom().randrange(2**31)
        self.events = events if events is not None else EventLog()
        self.with_admin = with_admin
        self.control_bind = control or profile.control.bind or ("127.0.0.1", 0)
        self.token = token if token is not None else profile.control.token
        self.allow_privileged = allow_privileged
        self.control_url: Optional[str] = None
        self._conn_ids = itertools.count(1)
        self._slots: dict[str, _Slot] = {}
        self._nursery: Optional[trio.Nursery] = None
        self._stopped = trio.Event()
        self.trio_token: Optional[trio.lowlevel.TrioToken] = None

    # --- reading --------------------------------------------------------------------

    @property
    def listeners(self) -> dict[str, ListenerRuntime]:
        return {name: slot.rt for name, slot in self._slots.items()}

    def listener(self, name: str) -> ListenerRuntime:
        try:
            return self._slots[name].rt
        except KeyError:
            raise UsageError(
                f"no listener named {name!r} (listeners: {', '.join(self._slots) or 'none'})"
            ) from None

    def listener_info(self, rt: ListenerRuntime) -> dict[str, Any]:
        s = rt.stats
        return {
            "name": rt.name,
            "url": rt.url,
            "bind": rt.config.bind,
            "accept": rt.mode.value,
            "open_connections": s.open_connections,
            "peak_connections": s.peak_connections,
            "connections": s.connections,
            "requests": s.requests,
            "in_flight": s.in_flight,
            "faults": s.faults_by_action(),
            "retries": s.retries,
        }

    # --- life -----------------------------------------------------------------------

    def _bind_all(self, listeners: tuple[Listener, ...]) -> list[ListenerRuntime]:
        made: list[ListenerRuntime] = []
        try:
            for config in listeners:
                self._check_bind_allowed(config)
                rt = ListenerRuntime(
                    config, self.events, self.seed, self.profile.fault_header, self._next_conn_id
                )
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

    def _check_bind_allowed(self, config: Listener) -> None:
        """Nothing to check for the profile given at start: its author chose the binds."""

    def check_binds_allowed(self, profile: Profile) -> Optional[str]:
        """Why a profile sent over the admin API may not bind what it asks, or None.

        Ports below 1024 and non-loopback addresses need `allow_privileged` (the CLI's
        `--allow-any-bind`): whoever holds the token should not get to open the machine.
        """
        if self.allow_privileged:
            return None
        from ._admin.app import is_loopback

        in_force = {slot.rt.config.bind for slot in self._slots.values()}
        for config in profile.listeners:
            if config.bind in in_force:
                continue
            if 0 < config.port < 1024:
                return (
                    f"listener {config.name}: port {config.port} is below 1024; start the "
                    "server with --allow-any-bind to allow it"
                )
            if not is_loopback(config.host):
                return (
                    f"listener {config.name}: {config.host} is not a loopback address; start "
                    "the server with --allow-any-bind to allow it"
                )
        return None

    def _next_conn_id(self) -> int:
        return next(self._conn_ids)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind everything, start serving, report `self` as started, run until `stop()`."""
        if self.with_admin and not self.token:
            from ._admin.app import is_loopback, refuse_message

            if not is_loopback(self.control_bind[0]):
                raise StartError(refuse_message(*self.control_bind))
        runtimes = self._bind_all(self.profile.listeners)
        self.trio_token = trio.lowlevel.current_trio_token()
        self.events.emit("start", seed=self.seed, source=self.profile.source)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.with_admin:
                    # the admin API first: if its port is taken, no listener has
                    # started listening (nothing starts, as for a listener's port)
                    from ._admin.app import serve_admin

                    self.control_url = await nursery.start(serve_admin, self)
                for rt in runtimes:
                    await self._start_listener(rt)
                task_status.started(self)
                await self._stopped.wait()
                await self._shutdown()
                nursery.cancel_scope.cancel()
        finally:
            for slot in self._slots.values():
                slot.rt.close()

    async def _start_listener(self, rt: ListenerRuntime) -> None:
        assert self._nursery is not None
        slot = _Slot(rt)
        self._slots[rt.name] = slot
        await self._nursery.start(self._serve_listener, slot)

    async def _serve_listener(self, slot: _Slot, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        rt = slot.rt
        with slot.scope:
            async with trio.open_nursery() as nursery:
                await rt.apply_mode(rt.config.accept)
                self._log_listener(rt, "start")
                self.events.emit("mode", rt.name, accept=rt.mode.value, cause="profile")
                nursery.start_soon(rt.run, nursery)
                self._start_schedule(slot, nursery)
                task_status.started()

    def _log_listener(self, rt: ListenerRuntime, what: str) -> None:
        log.info("listener %s listener=%s url=%s accept=%s", what, rt.name, rt.url, rt.mode.value)

    def stop(self) -> None:
        """Ask the server to stop (thread-unsafe: call from the Trio thread)."""
        self._stopped.set()

    async def _shutdown(self) -> None:
        """Close listeners, then every connection with a FIN, quickly."""
        for slot in self._slots.values():
            slot.rt.close()
            slot.rt.drop("shutdown")
            self._log_listener(slot.rt, "stop")
        with trio.move_on_after(1.5):
            while any(slot.rt.connections for slot in self._slots.values()):
                await trio.sleep(0.01)

    # --- schedule -------------------------------------------------------------------

    def _start_schedule(self, slot: _Slot, nursery: trio.Nursery) -> None:
        if slot.schedule_scope is not None:
            slot.schedule_scope.cancel()
        slot.phase_rules = {}
        schedule = slot.rt.config.schedule
        if schedule is None or not schedule.phases:
            slot.schedule_scope = None
            return
        slot.schedule_scope = trio.CancelScope()
        nursery.start_soon(self._run_schedule, slot, slot.schedule_scope)

    async def _run_schedule(self, slot: _Slot, scope: trio.CancelScope) -> None:
        rt = slot.rt
        schedule = rt.config.schedule
        assert schedule is not None
        with scope:
            cycle = 0
            while True:
                for index, phase in enumerate(schedule.phases):
                    slot.override_mode = None
                    mode = phase.accept or rt.config.accept
                    if phase.rules is not None:
                        ruleset = slot.phase_rules.get(index)
                        if ruleset is None:
                            ruleset = slot.phase_rules[index] = rt.set_rules(
                                phase.rules, scope=f"phase-{index}"
                            )
                        rt.rules = ruleset
                    else:
                        rt.rules = rt.base_rules
                    began = trio.current_time()
                    await self._set_mode(rt, mode, "schedule")
                    # announced once in force: whoever waits for the event meets the phase
                    self.events.emit(
                        "phase", rt.name, phase=index, cycle=cycle, duration=phase.duration_s,
                        accept=mode.value,
                    )
                    await trio.sleep_until(began + phase.duration_s)
                cycle += 1
                if not schedule.repeat:
                    break
            rt.rules = rt.base_rules
            await self._set_mode(rt, rt.config.accept, "schedule")
            self.events.emit("phase", rt.name, phase=None, cycle=cycle, accept=rt.config.accept.value)

    # --- control (the admin API, SIGHUP and the fixture all come here) --------------

    async def _set_mode(self, rt: ListenerRuntime, mode: AcceptMode, cause: str) -> None:
        if rt.mode is mode:
            return
        old = rt.mode
        await rt.apply_mode(mode)
        log.info("mode listener=%s accept=%s was=%s cause=%s", rt.name, mode.value, old.value, cause)
        self.events.emit("mode", rt.name, accept=mode.value, cause=cause)

    async def set_accept(self, name: str, mode: str | AcceptMode) -> None:
        """Switch a listener's accept mode now; it holds until the next schedule phase."""
        rt = self.listener(name)
        try:
            accept = AcceptMode(mode)
        except ValueError:
            raise UsageError(
                f"unknown accept mode {mode!r} (expected one of: open, refuse, stall)"
            ) from None
        self._slots[name].override_mode = accept
        await self._set_mode(rt, accept, "api")

    def set_rules(self, name: str, rules: tuple[Rule, ...]) -> None:
        """Replace a listener's rules now (fresh `times` and random streams)."""
        rt = self.listener(name)
        rt.base_rules = rt.set_rules(rules)

    def drop(self, name: str, how: str = "fin", idle_only: bool = False) -> int:
        rt = self.listener(name)
        if how not in ("fin", "rst"):
            raise UsageError(f"unknown drop {how!r} (expected 'fin' or 'rst')")
        count = rt.drop(how, idle_only)
        self.events.emit("drop", rt.name, how=how, idle_only=idle_only, connections=count)
        return count

    async def reset(self) -> None:
        """Back to the profile as loaded: modes, rules, times, streams, schedules, counters, events."""
        self.events.clear()
        await self._apply_profile(self.loaded_profile)
        from ._metrics import ListenerStats

        for slot in self._slots.values():
            open_now = len(slot.rt.connections)
            slot.rt.stats = ListenerStats()
            slot.rt.stats.open_connections = open_now
            slot.rt.stats.peak_connections = open_now
        log.info("reset source=%s listeners=%s", self.loaded_profile.source, ",".join(self._slots))
        self.events.emit("reset", source=self.loaded_profile.source)

    async def load(self, profile: Profile, cause: str = "reload") -> None:
        """Put a new (valid) profile in force; listeners whose bind is unchanged keep going.

        `cause` (`api`, `sighup`, `reload`) is logged and put in the `reload` events: one
        per listener, with `change` saying whether it was `kept`, `added` or `removed`.
        """
        changes = await self._apply_profile(profile)
        self.loaded_profile = profile
        by_change: dict[str, list[str]] = {"kept": [], "added": [], "removed": []}
        for name, change in changes.items():
            by_change[change].append(name)
        log.info(
            "reload source=%s cause=%s kept=%s added=%s removed=%s",
            profile.source, cause, *(",".join(by_change[c]) or "-" for c in ("kept", "added", "removed")),
        )
        for name, change in changes.items():
            self.events.emit("reload", name, change=change, cause=cause, source=profile.source)

    def _configure(self, rt: ListenerRuntime, config: Listener, profile: Profile) -> None:
        """Give a runtime the profile's seed, fault header and its listener's config."""
        rt.seed = self.seed
        rt.fault_header_name = profile.fault_header or ""
        rt.fault_header = profile.fault_header.lower().encode("latin-1") if profile.fault_header else None
        rt.reset_state(config)

    async def _apply_profile(self, profile: Profile) -> dict[str, str]:
        """Put `profile` in force; returns each listener's change: kept, added or removed."""
        assert self._nursery is not None
        old = self._slots
        new_configs = {l.name: l for l in profile.listeners}
        kept: dict[str, Listener] = {}
        added: list[Listener] = []
        removed: list[str] = []
        for name, slot in old.items():
            config = new_configs.get(name)
            # the same address keeps the socket; port 0 means "any", so the one we have
            # will do, and so does the port in force written out (as GET /listeners says)
            if config is not None and config.host == slot.rt.host and config.port in (
                0, slot.rt.port, slot.rt.config.port
            ):
                kept[name] = config
            else:
                removed.append(name)
        for name, config in new_configs.items():
            if name not in kept:
                added.append(config)
        # bind the new ones first: if that fails, nothing changes
        new_runtimes = self._bind_all(tuple(added)) if added else []
        self.profile = profile
        if profile.seed is not None:
            self.seed = profile.seed
        changes: dict[str, str] = {}
        for name in removed:
            slot = old.pop(name)
            if slot.schedule_scope is not None:
                slot.schedule_scope.cancel()
            slot.rt.close()
            slot.rt.drop("fin")
            self._log_listener(slot.rt, "stop")
            slot.scope.cancel()
            changes[name] = "removed"
        for name, config in kept.items():
            slot = old[name]
            rt = slot.rt
            if slot.schedule_scope is not None:
                slot.schedule_scope.cancel()  # before the mode: the old timeline must not race it
                slot.schedule_scope = None
            self._configure(rt, config, profile)
            slot.override_mode = None
            await self._set_mode(rt, config.accept, "profile")
            self._start_schedule(slot, self._nursery)
            changes[name] = "kept"
        for rt in new_runtimes:
            self._configure(rt, rt.config, profile)
            await self._start_listener(rt)
            changes[rt.name] = "added"
        return changes


async def serve_until_signal(
    server: Server, max_duration_s: Optional[float], on_hup: Any, on_ready: Any = None
) -> None:
    """The CLI's life: SIGINT/SIGTERM stop, SIGHUP reloads, `--max-duration` ends the run.

    `on_ready()` is called once the signals are caught: a script that reads the CLI's
    first lines and sends SIGTERM at once gets a clean stop, not the default death.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        if on_ready is not None:
            on_ready()
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        await on_hup()
                    else:
                        log.info("signal %s: stopping", signal.Signals(signum).name)
                        server.stop()
                        return

            nursery.start_soon(watch)
            if max_duration_s is not None:

                async def deadline() -> None:
                    await trio.sleep(max_duration_s)
                    log.info("--max-duration reached: stopping")
                    server.stop()

                nursery.start_soon(deadline)
            await server._stopped.wait()
            nursery.cancel_scope.cancel()
