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
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from ._bind_policy import check_api_binds, check_control_bind
from ._errors import UsageError
from ._events import EventFollower, EventLog
from ._in_force import ListenerInForce, ListenersInForce
from ._profile.model import AcceptMode, CertificateMode, CloseHow, Profile, Rule
from ._reload import Change, ReloadCause, plan_reload
from ._tls.listener import CAFiles, ListenerTLS
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
    event log (`--events FILE`, the fixture's `wait_for`). `source_loader` reads the
    profile's file again (SIGHUP, `--watch`, `POST /reload` without a body; None: it has no file).
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
        ca_dir: str | None = None,
        source_loader: Callable[[], Profile] | None = None,
    ) -> None:
        self.profile = profile
        self.loaded_profile = profile
        self.source_loader = source_loader
        #: when the profile in force was put in force (seconds since the epoch), and by whom
        self.loaded_at = time.time()
        self.loaded_cause = "start"
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
        #: where generated TLS CAs go: `ca_dir`, or a private folder removed when the server stops
        self.ca_files = CAFiles(ca_dir)
        #: the admin API's own TLS (`control.tls`), made when the server starts
        self.control_tls: ListenerTLS | None = None
        self._in_force = ListenersInForce(self.events, self.ca_files)
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

    @property
    def schedule_paused(self) -> bool:
        """Whether the schedules' phase changes are paused (`POST /schedule/pause`)."""
        return self._in_force.paused

    @property
    def listeners_in_force(self) -> ListenersInForce:
        """The listeners' runtimes and schedules (`run --workers N` hooks into them)."""
        return self._in_force

    def in_force(self) -> list[ListenerInForce]:
        """Each listener's mode, rules and schedule, and why (`GET /state`; Trio thread)."""
        return self._in_force.in_force()

    # --- life -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind everything, start serving, report `self` as started, run until `stop()`."""
        if self.with_admin:
            check_control_bind(*self.control_bind, self.token)
            tls = self.profile.control.tls
            if tls is not None:
                # "control.api": a name no listener can have (its CA file cannot be a listener's)
                self.control_tls = ListenerTLS("control.api", self.control_bind[0], self.ca_files)
                self.control_tls.configure(tls)
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
            self.ca_files.remove()
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
        await self._in_force.set_mode(name, mode, "api")

    def set_rules(self, name: str, rules: tuple[Rule, ...]) -> None:
        """Replace a listener's rules now (fresh `times` and random streams)."""
        self._in_force.set_rules(name, rules)

    def pause_schedule(self, cause: str = "api") -> bool:
        """Stop every schedule's phase changes; False when they were paused already.
        Logs a line and emits a `schedule_paused` event (`paused: true`) either way."""
        return self._set_paused(True, cause)

    def resume_schedule(self, cause: str = "api") -> bool:
        """Phase changes again (each phase in force runs out the time it had left)."""
        return self._set_paused(False, cause)

    def _set_paused(self, paused: bool, cause: str) -> bool:
        changed = self._in_force.set_paused(paused)
        log.info("schedule %s cause=%s changed=%s", "paused" if paused else "resumed", cause, changed)
        self.events.emit("schedule_paused", paused=paused, changed=changed, cause=cause)
        return changed

    async def panic(self) -> dict[str, list[str]]:
        """The operator's kill switch: pause the schedules, put the profile's own rules back
        where the API (or a phase) replaced them, and open every listener. Returns the names
        of the listeners whose mode and whose rules changed."""
        paused = self._in_force.set_paused(True)
        rules = self._in_force.clear_api_rules()
        opened = [name for name, rt in self.listeners.items() if rt.mode is not AcceptMode.OPEN]
        for name in list(self.listeners):
            await self._in_force.set_mode(name, AcceptMode.OPEN, "api")
        log.warning(
            "panic opened=%s rules_cleared=%s schedule=paused",
            ",".join(opened) or "-", ",".join(rules) or "-",
        )
        self.events.emit("panic", opened=opened, rules_cleared=rules, paused=True)
        self.events.emit("schedule_paused", paused=True, changed=paused, cause="panic")
        return {"opened": opened, "rules_cleared": rules}

    async def reload_source(self, cause: ReloadCause = ReloadCause.API) -> Profile:
        """Read the profile's file again and put it in force (SIGHUP, `--watch`, `POST
        /reload` without a body). A ProfileError or StartError changes nothing; UsageError when
        the profile has no file to read again."""
        if self.source_loader is None:
            raise UsageError(
                "this server's profile has no file to read again (it came from standard input "
                "or from code): send the profile with PUT /profile"
            )
        profile = self.source_loader()
        await self.load(profile, cause)
        return profile

    async def update_listener(
        self,
        name: str,
        *,
        accept: AcceptMode | None = None,
        rules: tuple[Rule, ...] | None = None,
        certificate: CertificateMode | None = None,
    ) -> None:
        """`PATCH /listeners/NAME`: a certificate, new rules, then the new mode (each checked
        by the caller; a certificate for a listener that cannot switch is a UsageError)."""
        self.listener(name)
        if certificate is not None:
            self.set_certificate(name, certificate)
        if rules is not None:
            self.set_rules(name, rules)
        if accept is not None:
            await self.set_accept(name, accept)

    def set_certificate(self, name: str, mode: CertificateMode) -> None:
        """Show a certificate made for `mode` from the next TLS handshake on (`PATCH
        /listeners/NAME` with `{"tls": {"certificate": ...}}`); UsageError for a listener
        without TLS or with its own certificate."""
        rt = self.listener(name)
        if rt.tls is None or rt.tls.authority is None:
            raise UsageError(
                f"listener {name} cannot switch certificates: only a TLS listener with "
                "generate: true can"
            )
        rt.tls.use_certificate(mode)
        log.info("certificate listener=%s mode=%s", name, mode.value)
        self.events.emit("certificate", name, mode=mode.value, sha256=rt.tls.describe_sha256(), cause="api")

    def drop(self, name: str, how: CloseHow = CloseHow.FIN, idle_only: bool = False) -> int:
        """End a listener's open connections with a FIN or an RST; returns how many."""
        rt = self.listener(name)
        count = rt.drop(how, idle_only)
        self.events.emit("drop", rt.name, how=how.value, idle_only=idle_only, connections=count)
        return count

    async def drop_connections(self, name: str, how: CloseHow = CloseHow.FIN, idle_only: bool = False) -> int:
        """`POST /listeners/NAME/drop`: `drop`, which `run --workers N` does in every worker."""
        return self.drop(name, how, idle_only)

    async def reset(self) -> None:
        """Back to the profile as loaded: modes, rules, times, streams, schedules (running
        again if paused), counters, events."""
        async with self._applying:
            self.events.clear()
            was_paused, self._in_force.paused = self._in_force.paused, False  # new schedules run
            try:
                await self._apply(self.loaded_profile)
            except BaseException:
                self._in_force.paused = was_paused
                raise
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
            self.loaded_at, self.loaded_cause = time.time(), cause.value
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
