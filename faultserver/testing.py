"""Running faultserver inside a test suite or any Python program.

    with faultserver.testing.running("profiles/fin.yaml") as srv:
        httpx.get(srv.url + "/orders")
        srv.wait_for(type="fault", action="close", timeout=2)

The server runs in a background thread with its own Trio loop, so the calling code
may be synchronous, asyncio or Trio. `running()` and `serve()` (its async twin) and
the pytest fixture all hand out the same `FaultServer` handle, which can do what the
admin API can, without HTTP. Listeners are rebound to 127.0.0.1 on free ports unless
`keep_binds=True`, so tests can run in parallel.

`running(profile, workers=N)` (and `serve`) serves the listeners with N worker processes,
as `faultserver run --workers N`: the handle drives the parent, in this process. The
fixture stays single-process (workers=1, the default, is exactly one in-process server).

A profile is a path, the name of a shipped profile (`"fin"`; a path that exists wins),
YAML text (it has a newline), a dict or a `Profile`. The async parts (`serve()`,
`wait_for_async`) run under asyncio and Trio alike (through anyio).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ._choices import parse_accept, parse_how
from ._errors import FaultserverError, ProfileError, StartError, UsageError
from ._events import Event, EventLog
from ._profile.model import CertificateMode, Profile, Rule

if TYPE_CHECKING:
    from ._server import Server
    from ._wire.listener import ListenerRuntime

__all__ = [
    "FROM_ENV",
    "FaultServer",
    "FaultserverError",
    "ListenerHandle",
    "ProfileError",
    "ProfileSource",
    "StartError",
    "UsageError",
    "load_source",
    "running",
    "serve",
]

ProfileSource = str | os.PathLike[str] | Mapping[str, Any] | Profile

#: How long start-up may take before the handle gives up.
START_TIMEOUT_S = 10.0
#: How long stop() waits for the server's thread to end.
STOP_TIMEOUT_S = 5.0
#: How much longer start-up may take with `workers` > 1 (each worker is a new Python process).
WORKERS_START_TIMEOUT_S = 30.0
#: How much longer stop() waits with `workers` > 1 (the parent gives its workers 10 s to
#: close their connections before SIGKILL).
WORKERS_STOP_TIMEOUT_S = 15.0
#: Where listeners are rebound unless `keep_binds=True`.
LOCAL_HOST = "127.0.0.1"


class _FromEnv:
    def __repr__(self) -> str:
        return "FROM_ENV"


#: `token=FROM_ENV`: the admin API's token is the environment's FAULTSERVER_TOKEN (which is
#: read only when asked this way, so a token set for a CLI run does not leak into tests).
FROM_ENV: Any = _FromEnv()

#: What `token=` takes: a token, None (the profile's `control.token`, if any), or FROM_ENV.
Token = str | None | _FromEnv


def resolve_token(token: Token) -> str | None:
    """The token to hand to the server: `FROM_ENV` reads FAULTSERVER_TOKEN, which must be set."""
    if not isinstance(token, _FromEnv):
        return token
    value = os.environ.get("FAULTSERVER_TOKEN")
    if not value:
        raise UsageError("token=FROM_ENV: FAULTSERVER_TOKEN is not set (or empty)")
    return value


def load_source(source: ProfileSource, keep_binds: bool = False, upstream: str | None = None) -> Profile:
    """A profile from a path, a shipped profile's name, YAML text (it has a newline), a dict
    or a `Profile`; `upstream` (`http://HOST:PORT`) is set on every listener that has none."""
    from ._profile.load import load_profile_data, load_profile_file, load_profile_text
    from ._shipped import find_shipped, not_found_message

    if isinstance(source, Profile):
        profile = source
    elif isinstance(source, Mapping):
        profile = load_profile_data(dict(source), source="<dict>")
    elif isinstance(source, str) and "\n" in source:
        profile = load_profile_text(source, source="<string>")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            shipped = find_shipped(os.fspath(source)) if not path.exists() else None
            if shipped is None:
                raise UsageError(not_found_message(os.fspath(source)))
            path = Path(shipped)
        profile = load_profile_file(os.fspath(path))
    else:
        raise UsageError(
            f"expected a profile path, YAML text, a dict or a Profile, got {type(source).__name__}"
        )
    if upstream is not None:
        from ._profile.upstream import with_upstream

        profile = with_upstream(profile, upstream)
    if keep_binds:
        return profile
    return _rebind(profile)


def _rebind(profile: Profile) -> Profile:
    """Every listener on 127.0.0.1 with a free port, and the admin API too (parallel tests)."""
    listeners = tuple(
        dataclasses.replace(listener, host=LOCAL_HOST, port=0) for listener in profile.listeners
    )
    raw = profile.raw
    if isinstance(raw, dict) and isinstance(raw.get("listeners"), list):
        # GET /profile shows the profile in force: the rebound one
        raw = {**raw, "listeners": [
            {**item, "bind": f"{LOCAL_HOST}:0"} if isinstance(item, dict) else item
            for item in raw["listeners"]
        ]}
        if isinstance(raw.get("control"), dict) and "bind" in raw["control"]:
            raw["control"] = {**raw["control"], "bind": f"{LOCAL_HOST}:0"}
    control = dataclasses.replace(profile.control, bind=None)
    return dataclasses.replace(profile, listeners=listeners, control=control, raw=raw)


class ListenerHandle:
    """One listener of a running server: its address and counters."""

    def __init__(self, server: FaultServer, name: str) -> None:
        self._server = server
        self.name = name

    @property
    def _rt(self) -> ListenerRuntime:
        return self._server._server.listener(self.name)

    @property
    def host(self) -> str:
        return self._rt.host

    @property
    def port(self) -> int:
        return self._rt.port

    @property
    def url(self) -> str:
        return self._rt.url

    @property
    def accept(self) -> str:
        return self._rt.mode.value

    @property
    def open_connections(self) -> int:
        return self._rt.stats.open_connections

    @property
    def peak_connections(self) -> int:
        return self._rt.stats.peak_connections

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._rt.stats.connections

    @property
    def request_count(self) -> int:
        return self._rt.stats.requests

    @property
    def retry_count(self) -> int:
        """Retries (see `FaultServer.retries`)."""
        return self._rt.stats.retries

    @property
    def repeat_count(self) -> int:
        """Requests seen again on another connection, for any reason (`retries(all_repeats=True)`)."""
        return self._rt.stats.repeats

    @property
    def ca_path(self) -> str | None:
        """The PEM file of a TLS listener's generated CA, for clients to trust (None: plain
        TCP, or the listener's own certificate)."""
        tls = self._rt.tls
        return tls.ca_path if tls is not None else None

    def faults(self) -> dict[str, int]:
        """Faults by action; a plain `respond` that only waited is a delay, not a fault."""
        return self._rt.stats.faults_by_action()

    def delayed(self) -> dict[str, int]:
        """Rules that waited before acting (a `delay`, or the `delay` action), by action."""
        return self._rt.stats.delayed_by_action()

    def info(self) -> dict[str, Any]:
        """What GET /listeners says of this listener."""
        from ._admin.views import listener_view

        info: dict[str, Any] = self._server._call_sync(lambda: listener_view(self._rt))
        return info

    def __repr__(self) -> str:
        return f"<ListenerHandle {self.name} {self.url} accept={self.accept}>"


class FaultServer:
    """A handle on a server running in a background thread.

    `admin`, `control`, `token`, `allowed_hosts` and `max_subscribers` are the admin API's
    settings (as `control.*` in a profile, which they override). `workers` > 1: the
    listeners are served by that many worker processes (`run --workers N`), and this
    handle drives their parent.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        admin: bool = False,
        control: tuple[str, int] | None = None,
        token: str | None = None,
        allowed_hosts: Sequence[str] | None = None,
        max_subscribers: int | None = None,
        workers: int = 1,
    ) -> None:
        from ._server import Server

        make: Callable[..., Server] = Server
        if workers != 1:
            make = _fleet(workers)
        self.events_log = EventLog()
        self._cond = threading.Condition()
        self._server = make(
            profile,
            control=control,
            with_admin=admin,
            events=self.events_log,
            token=token,
            allowed_hosts=allowed_hosts,
            max_subscribers=max_subscribers,
            followers=[self._follow_events],
        )
        fleet = workers != 1
        self._start_timeout_s = START_TIMEOUT_S + (WORKERS_START_TIMEOUT_S if fleet else 0.0)
        self._stop_timeout_s = STOP_TIMEOUT_S + (WORKERS_STOP_TIMEOUT_S if fleet else 0.0)
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    # --- life -----------------------------------------------------------------------

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._thread_main, name="faultserver", daemon=True)
        self._thread.start()
        if not self._started.wait(self._start_timeout_s):
            raise FaultserverError(f"faultserver did not start within {self._start_timeout_s:g} s")
        if self._error is not None:
            error, self._error = self._error, None
            self._thread.join()
            raise _unwrap(error)
        return self

    def _thread_main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                await nursery.start(self._server.run)
                self._started.set()

        try:
            trio.run(main)
        except BaseException as exc:  # kept and raised in the caller's thread
            self._error = exc
        finally:
            self._started.set()

    def stop(self) -> None:
        """Stop the server: every listener and connection closes (FIN). Idempotent."""
        if self._thread is None:
            return
        if self._thread.is_alive() and self._token is not None:
            try:
                _blocking(trio.from_thread.run_sync, self._server.stop, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(self._stop_timeout_s)
        if self._thread.is_alive():
            raise FaultserverError(f"faultserver did not stop within {self._stop_timeout_s:g} s")
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise _unwrap(error)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # The server's methods run in its own Trio thread. From a thread that runs Trio itself
    # (code under serve(), pytest-trio) trio.from_thread refuses to block, so the call
    # goes through a short-lived helper thread: the caller's loop pauses for the call
    # (well under a millisecond to switch a mode or replace rules), which a test can afford,
    # and the handle stays the same synchronous handle everywhere.

    def _call(self, afn: Any, *args: Any) -> Any:
        self._check_running()
        return _blocking(trio.from_thread.run, afn, *args, trio_token=self._token)

    def _call_sync(self, fn: Any, *args: Any) -> Any:
        self._check_running()
        return _blocking(trio.from_thread.run_sync, fn, *args, trio_token=self._token)

    def _check_running(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            if self._error is not None:
                error, self._error = self._error, None
                raise _unwrap(error)
            raise FaultserverError("this faultserver is not running (stopped, or it crashed)")

    # --- addresses ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The first listener's base URL."""
        return next(iter(self._server.listeners.values())).url

    @property
    def control_url(self) -> str | None:
        """The admin API's base URL (only when started with `admin=True`)."""
        return self._server.control_url

    @property
    def seed(self) -> int:
        return self._server.seed

    @property
    def listeners(self) -> dict[str, ListenerHandle]:
        return {name: ListenerHandle(self, name) for name in self._server.listeners}

    def __getitem__(self, name: str) -> ListenerHandle:
        self._server.listener(name)  # raises UsageError naming the listeners
        return ListenerHandle(self, name)

    def _name(self, name: str | None) -> str:
        if name is None:
            return next(iter(self._server.listeners))
        return name

    # --- control --------------------------------------------------------------------

    def set_accept(self, listener: str, mode: str) -> None:
        """Switch the accept mode (open, refuse, stall) now, keeping the port."""
        self._server.listener(listener)  # UsageError naming the listeners, before the mode
        self._call(self._server.set_accept, listener, parse_accept(mode))

    def set_rules(self, listener: str, rules: Sequence[Mapping[str, Any] | Rule]) -> None:
        """Replace a listener's rules (dicts as in a profile, or `Rule` objects)."""
        from ._profile.load import load_rules

        objects = tuple(r for r in rules if isinstance(r, Rule))
        if len(objects) == len(rules):
            parsed = objects
        else:
            data = [dict(r) if isinstance(r, Mapping) else r for r in rules]
            parsed = load_rules(data, listener, source="<set_rules>")
        self._call_sync(self._server.set_rules, listener, parsed)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts every TLS listener's generated CA (httpx `verify=`,
        aiohttp `ssl=`; requests takes `verify=srv["NAME"].ca_path`)."""
        context = ssl.create_default_context()
        for handle in self.listeners.values():
            if handle.ca_path is not None:
                context.load_verify_locations(cafile=handle.ca_path)
        return context

    def set_certificate(self, listener: str, mode: str) -> None:
        """Show a certificate made for `mode` (`expired`...) from the next handshake on."""
        # through update_listener: with workers, every worker's certificate before the answer
        switch = functools.partial(self._server.update_listener, certificate=CertificateMode(mode))
        self._call(switch, listener)

    def drop(self, listener: str | None = None, how: str = "fin", idle_only: bool = False) -> int:
        """End open connections with FIN or RST, as a backend restart does."""
        name = self._name(listener)
        self._server.listener(name)
        count: int = self._call(self._server.drop_connections, name, parse_how(how), idle_only)
        return count

    def load(self, profile: ProfileSource, keep_binds: bool = False, upstream: str | None = None) -> None:
        """Put a new profile in force (listeners keep their ports unless their bind changed);
        `upstream` (`http://HOST:PORT`) is set on every listener that has none, as `serve`'s."""
        parsed = load_source(profile, keep_binds=keep_binds, upstream=upstream)
        self._call(self._server.load, parsed)

    def reset(self) -> None:
        """Back to the profile as loaded: modes, rules, times, streams, counters, events."""
        self._call(self._server.reset)

    def state(self) -> dict[str, Any]:
        """What is in force now and why, as `GET /state` answers."""
        from ._admin.views import state_view

        state: dict[str, Any] = self._call_sync(state_view, self._server)
        return state

    def pause_schedule(self) -> bool:
        """Stop every schedule's phase changes (`POST /schedule/pause`); False if paused already."""
        paused: bool = self._call_sync(self._server.pause_schedule)
        return paused

    def resume_schedule(self) -> bool:
        """Phase changes again (`POST /schedule/resume`); False if they were not paused."""
        resumed: bool = self._call_sync(self._server.resume_schedule)
        return resumed

    def panic(self) -> dict[str, list[str]]:
        """Every listener open, the API's rules gone, the schedules paused (`POST /panic`)."""
        done: dict[str, list[str]] = self._call(self._server.panic)
        return done

    # --- observing ------------------------------------------------------------------

    async def _follow_events(self, log: EventLog) -> None:
        """Wake `wait_for` callers once per batch of events (a task in the server's thread)."""
        seen = 0
        while True:
            await log.wait_beyond(seen)
            seen = log.last_id
            with self._cond:
                self._cond.notify_all()

    def events(
        self, *, since: int = 0, limit: int | None = None, newest: int | None = None, **filters: Any
    ) -> list[Event]:
        """Events so far whose fields equal every filter: `events(type="fault", action="close")`.

        A tuple is any of its values (`type=("fault", "drop")`); `type`, `action`, `how`...
        ignore case. `since`: only events with a greater id; `limit`: the first N of them;
        `newest`: the newest N. `GET /events` takes the same filters."""
        return self.events_log.select(since=since, limit=limit, newest=newest, **filters)

    def wait_for(self, timeout: float = 5.0, **filters: Any) -> Event:
        """The first event matching `filters`, waiting up to `timeout` seconds for it.

        Events arrive from the server's thread; this returns as soon as one matches
        (an event that already happened matches at once). In Trio code use
        `await srv.wait_for_async(...)`, which does not block the caller's loop.
        """
        if _in_trio_run():
            raise RuntimeError(
                "wait_for() would block this Trio loop; in Trio code use "
                "`await srv.wait_for_async(...)`"
            )
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.events_log.select(**filters)
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    wanted = ", ".join(f"{k}={v!r}" for k, v in filters.items()) or "(any)"
                    tail = "\n".join(_format_event(e) for e in self.events_log.since(0)[0][-10:])
                    raise TimeoutError(
                        f"no event matching {wanted} within {timeout:g} s; newest events:\n"
                        f"{tail or '(none)'}"
                    )
                self._cond.wait(left)

    async def wait_for_async(self, timeout: float = 5.0, **filters: Any) -> Event:
        """`wait_for` for async code, asyncio or Trio: waits in a worker thread, not blocking
        the caller's loop. Cancelling it stops the wait at once."""
        import anyio.to_thread

        event: Event = await anyio.to_thread.run_sync(
            lambda: self.wait_for(timeout, **filters), abandon_on_cancel=True
        )
        return event

    def requests(self, listener: str | None = None) -> list[Event]:
        """The requests the server read, in order (their `request` events)."""
        filters: dict[str, Any] = {"type": "request"}
        if listener is not None:
            filters["listener"] = listener
        return self.events(**filters)

    def retries(self, listener: str | None = None, *, all_repeats: bool = False) -> list[Event]:
        """Requests sent again on a new connection after a fault, or after their connection
        ended before the answer (same fingerprint), in order. A request answered, then sent
        again (twenty clients asking the same GET), is no retry.

        `all_repeats=True`: every request seen again on another connection than the one that
        last sent it, whatever happened to it (what `retries()` counted before 0.2)."""
        key = "repeat" if all_repeats else "retry"
        return [e for e in self.requests(listener) if e.get(key)]

    def events_tail(self, n: int = 30) -> str:
        """The listeners and the newest `n` events, one line each (a failing test's report)."""
        events, _ = self.events_log.since(0)
        lines = [
            f"listener {name} {rt.url} accept={rt.mode.value}"
            for name, rt in self._server.listeners.items()
        ]
        if not events:
            lines.append("(no events)")
        elif len(events) > n:
            lines.append(f"(newest {n} of {len(events)} events)")
        lines.extend(_format_event(e) for e in events[-n:])
        return "\n".join(lines)

    def __repr__(self) -> str:
        names = ", ".join(f"{h.name}={h.url}" for h in self.listeners.values())
        return f"<FaultServer {names}>"


def _fleet(workers: int) -> Callable[..., Server]:
    """`FleetServer` with `workers` processes (their log: warnings and errors, on stderr)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers: expected a whole number from 1, got {workers!r}")
    from ._workers.fleet import fleet_factory

    return fleet_factory(workers, "warning")


def _in_trio_run() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, from a helper thread when this thread runs a Trio loop."""
    if not _in_trio_run():
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    helper = threading.Thread(target=target, name="faultserver-call", daemon=True)
    helper.start()
    helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _format_event(event: Event) -> str:
    fields = " ".join(
        f"{k}={v}" for k, v in event.items() if k not in ("id", "time", "type") and v is not None
    )
    return f"#{event['id']} {event['type']} {fields}"


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextlib.contextmanager
def running(
    profile: ProfileSource,
    *,
    keep_binds: bool = False,
    admin: bool = False,
    token: Token = None,
    upstream: str | None = None,
    workers: int = 1,
) -> Iterator[FaultServer]:
    """Run a faultserver for the `with` block (any synchronous code).

    `token`: the admin API's token (`FROM_ENV`: FAULTSERVER_TOKEN's value); `upstream`: the
    upstream (`http://HOST:PORT`) of every listener that has none (proxy mode); `workers`:
    worker processes serving the listeners, as `run --workers N` (1: this process serves)."""
    server = FaultServer(
        load_source(profile, keep_binds=keep_binds, upstream=upstream),
        admin=admin,
        token=resolve_token(token),
        workers=workers,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def serve(
    profile: ProfileSource,
    *,
    keep_binds: bool = False,
    admin: bool = False,
    token: Token = None,
    upstream: str | None = None,
    workers: int = 1,
) -> AsyncIterator[FaultServer]:
    """`running()` for async code, asyncio or Trio: starts and stops without blocking the loop."""
    import anyio
    import anyio.to_thread

    server = FaultServer(
        load_source(profile, keep_binds=keep_binds, upstream=upstream),
        admin=admin,
        token=resolve_token(token),
        workers=workers,
    )
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)
