"""The server: one Trio nursery owning the listeners, their schedules and the admin API.

Every way of controlling a running faultserver (the admin API, SIGHUP, the pytest
fixture) calls the methods of `Server`; none of them reaches into the listeners to
change them. Values arrive already parsed (enums, `Rule`s, a `Profile`): the edges
parse, `Server` acts.

Putting a profile in force (`load`, `reset`) is one transaction, and one at a time: the
plan is computed (`_reload.plan_reload`), everything that can fail is tried first
(building each listener's state with the new seed, binding the new ports), and only then
is anything changed, shielded from cancellation, so a failure or a client that goes away
leaves the profile in force exactly as it was.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from ._bind_policy import check_api_binds, check_control_bind
from ._events import EventFollower, EventLog
from ._in_force import ListenersInForce
from ._profile.model import AcceptMode, CloseHow, Profile, Rule
from ._reload import Change, ReloadCause, plan_reload
from ._wire.listener import ListenerRuntime

__all__ = ["DEFAULT_MAX_SUBSCRIBERS", "ReloadCause", "Server", "ServerState"]

log = logging.getLogger("faultserver")

#: At most this many `GET /events/stream` readers at once (`control.max_subscribers`).
DEFAULT_MAX_SUBSCRIBERS = 64
#: The admin API's address when neither `--control` nor `control.bind` gives one.
DEFAULT_CONTROL_BIND = ("127.0.0.1", 0)


class ServerState(str, enum.Enum):
    """Where a server is in its life (`GET /readyz` answers 200 only while RUNNING)."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Server:
    """A running faultserver. Create it, then `await server.run(task_status=...)` in a nursery.

    `with_admin`: serve the admin API (the CLI does; the pytest fixture only when asked).
    `token`, `allowed_hosts` and `max_subscribers` override the profile's `control`
    section; like `control`, they are read at start and stay for the server's life.
    `followers` are tasks started at once in the server's nursery, each following the
    event log (`--events FILE`, the fixture's `wait_for`).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        control: tuple[str, int] | None = None,
        with_admin: bool = True,
        events: EventLog | None = None,
        allow_any_bind: bool = False,
        token: str | None = None,
        allowed_hosts: Sequence[str] | None = None,
        max_subscribers: int | None = None,
        followers: Sequence[EventFollower] = (),
    ) -> None:
        self.profile = profile
        self.loaded_profile = profile
        self.seed = profile.seed if profile.seed is not None else random.SystemRandom().randrange(2**31)
        self.events = events if events is not None else EventLog()
        self.with_admin = with_admin
        self.control_bind = control or profile.control.bind or DEFAULT_CONTROL_BIND
        self.token = token if token is not None else profile.control.token
        if allowed_hosts is None:
            allowed_hosts = profile.control.allowed_hosts
        self.allowed_hosts: tuple[str, ...] = tuple(allowed_hosts)
        if max_subscribers is None:
            max_subscribers = profile.control.max_subscribers
        self.max_subscribers: int = (
            max_subscribers if max_subscribers is not None else DEFAULT_MAX_SUBSCRIBERS
        )
        self.allow_any_bind = allow_any_bind
        self.control_url: str | None = None
        self.state = ServerState.STARTING
        self._followers = tuple(followers)
        self._in_force = ListenersInForce(self.events)
        self._nursery: trio.Nursery | None = None
        self._stopped = trio.Event()
        self._applying = trio.Lock()  # one profile put in force at a time

    # --- reading --------------------------------------------------------------------

    @property
    def listeners(self) -> dict[str, ListenerRuntime]:
        return self._in_force.runtimes()

    @property
    def ready(self) -> bool:
        """True while every listener is serving (not starting, not stopping)."""
        return self.state is ServerState.RUNNING

    def listener(self, name: str) -> ListenerRuntime:
        """The listener named `name` (UnknownListenerError naming the ones there are)."""
        return self._in_force.get(name)

    # --- life -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind everything, start serving, report `self` as started, run until `stop()`."""
        if self.with_admin:
            check_control_bind(*self.control_bind, self.token)
        runtimes = self._in_force.bind_all(self.profile.listeners, self.seed, self.profile.fault_header)
        self.events.emit("start", seed=self.seed, source=self.profile.source)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for follower in self._followers:
                    nursery.start_soon(follower, self.events)
                if self.with_admin:
                    # the admin API first: if its port is taken, no listener has
                    # started listening (nothing starts, as for a listener's port)
                    from ._admin.serve import serve_admin

                    self.control_url = await nursery.start(serve_admin, self)
                for rt in runtimes:
                    await self._in_force.start(nursery, rt)
                self.state = ServerState.RUNNING
                task_status.started(self)
                await self._stopped.wait()
                self.state = ServerState.STOPPING
                await self._in_force.shutdown()
                nursery.cancel_scope.cancel()
        finally:
            for rt in runtimes:
                rt.close()
            self._in_force.close_all()
            self.state = ServerState.STOPPED

    def stop(self) -> None:
        """Ask the server to stop (thread-unsafe: call from the Trio thread)."""
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Return once `stop()` has been called."""
        await self._stopped.wait()

    # --- control (the admin API, SIGHUP and the fixture all come here) --------------

    async def set_accept(self, name: str, mode: AcceptMode) -> None:
        """Switch a listener's accept mode now; it holds until the next schedule phase."""
        await self.listener(name).set_mode(mode, "api")

    def set_rules(self, name: str, rules: tuple[Rule, ...]) -> None:
        """Replace a listener's rules now (fresh `times` and random streams)."""
        rt = self.listener(name)
        rt.base_rules = rt.set_rules(rules)

    async def update_listener(
        self, name: str, *, accept: AcceptMode | None = None, rules: tuple[Rule, ...] | None = None
    ) -> None:
        """`PATCH /listeners/NAME`: new rules, then the new mode (both checked by the caller)."""
        self.listener(name)
        if rules is not None:
            self.set_rules(name, rules)
        if accept is not None:
            await self.set_accept(name, accept)

    def drop(self, name: str, how: CloseHow = CloseHow.FIN, idle_only: bool = False) -> int:
        """End a listener's open connections with a FIN or an RST; returns how many."""
        rt = self.listener(name)
        count = rt.drop(how, idle_only)
        self.events.emit("drop", rt.name, how=how.value, idle_only=idle_only, connections=count)
        return count

    async def reset(self) -> None:
        """Back to the profile as loaded: modes, rules, times, streams, schedules, counters, events."""
        async with self._applying:
            self.events.clear()
            await self._apply(self.loaded_profile)
            self._in_force.reset_stats()
            log.info("reset source=%s listeners=%s", self.loaded_profile.source, ",".join(self.listeners))
            self.events.emit("reset", source=self.loaded_profile.source)

    async def load(
        self, profile: Profile, cause: ReloadCause = ReloadCause.RELOAD, *, check_binds: bool = False
    ) -> None:
        """Put a new (valid) profile in force; listeners whose bind is unchanged keep going.

        `check_binds`: apply the bind policy for profiles sent over the admin API
        (`_bind_policy.check_api_binds`). Logs one `reload` line and emits one `reload`
        event per listener, with `change` saying whether it was kept, added or removed.
        Raises StartError (BindPolicyError) and then nothing has changed.
        """
        async with self._applying:
            if check_binds:
                check_api_binds(profile, self._in_force.binds(), self.allow_any_bind)
            changes = await self._apply(profile)
            self.loaded_profile = profile
        names = {change: [n for n, c in changes.items() if c is change] for change in Change}
        log.info(
            "reload source=%s cause=%s kept=%s added=%s removed=%s",
            profile.source, cause.value,
            *(",".join(names[c]) or "-" for c in (Change.KEPT, Change.ADDED, Change.REMOVED)),
        )
        for name, change in changes.items():
            self.events.emit("reload", name, change=change.value, cause=cause.value, source=profile.source)

    async def _apply(self, profile: Profile) -> dict[str, Change]:
        """Put `profile` in force: try all that can fail, then change, shielded."""
        listeners = self._in_force
        plan = plan_reload(listeners.describe(), profile)
        seed = profile.seed if profile.seed is not None else self.seed
        for config in plan.kept:
            listeners.build(config, seed, profile.fault_header)  # raises what configure() would
        added = listeners.bind_all(plan.added, seed, profile.fault_header)
        assert self._nursery is not None
        with trio.CancelScope(shield=True):
            self.profile, self.seed = profile, seed
            for name in plan.removed:
                listeners.remove(name)
            for config in plan.kept:
                await listeners.reconfigure(config, seed, profile.fault_header)
            for rt in added:
                await listeners.start(self._nursery, rt)
        return plan.changes()


if TYPE_CHECKING:  # mypy checks here that a Server is what the admin API needs
    from ._admin.protocol import AdminServer

    def _is_admin_server(server: Server) -> AdminServer:
        return server
