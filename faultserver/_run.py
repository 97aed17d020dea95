"""`faultserver run`: the process around a `Server`.

It prints the `listener ...` and `control ...` lines, stops on SIGINT, SIGTERM or
`--max-duration`, reloads on SIGHUP, appends events to `--events FILE`, and survives
what a shell can do to its standard streams: started with standard output closed
(`>&-`) or piped into a reader that exits (`| true`), it serves all the same, and the
lines it could not print are in its log (`listener start ...`, `control start ...`).

With `--watch` it also reloads when the profile's file changes (`_watch.py`: a ConfigMap's
symlink swap included). SIGHUP, `--watch` and `POST /reload` without a body read the file the same
way, with the same `--bind`/`--port` overrides; a file that is not a valid profile changes
nothing, and is reported by one log line and one `reload_failed` event.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ._address import AddressError, parse_hostport
from ._errors import FaultserverError, ProfileError, UsageError, find_exception
from ._event_sink import JsonLinesSink
from ._events import EventLog
from ._logformat import formatter
from ._profile.model import Profile
from ._reload import ReloadCause
from ._run_config import BindOverride, apply_binds
from ._server import Server
from ._watch import DEFAULT_INTERVAL_S, FileWatch

__all__ = ["RunOptions", "parse_control", "parse_max_duration", "raise_open_file_limit", "run"]

log = logging.getLogger("faultserver")

EXIT_OK = 0


@dataclass(frozen=True, slots=True)
class RunOptions:
    """`faultserver run`'s arguments, parsed."""

    profile: str
    control: tuple[str, int] | None = None
    events: str | None = None
    log_level: str = "info"
    max_duration_s: float | None = None
    allow_any_bind: bool = False
    ca_dir: str | None = None
    #: reload when the profile's file changes
    watch: bool = False
    #: `text` or `json`
    log_format: str = "text"
    #: `--bind` and `--port`, applied to the profile at start and at each reload from its file
    binds: tuple[BindOverride, ...] = ()
    #: how often `--watch` looks at the file
    watch_interval_s: float | None = None
    #: `--workers N`: data-plane processes (1: this process serves, as always)
    workers: int = 1


def parse_control(text: str) -> tuple[str, int]:
    """`--control HOST:PORT`, with the profile's rules for an address."""
    try:
        return parse_hostport(text)
    except AddressError as exc:
        raise UsageError(f"--control: {exc}") from None


def parse_workers(text: str) -> int:
    """`--workers`: a whole number from 1, or `auto` (one per usable core)."""
    if text.strip().lower() == "auto":
        return len(os.sched_getaffinity(0))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"--workers: expected a whole number from 1, or auto, got {text!r}")
    return value


def parse_max_duration(text: str) -> float:
    """`--max-duration`: a duration greater than 0 (a plain number is seconds, as in a profile)."""
    from ._profile.units import UnitError, parse_duration

    not_positive = UsageError(f"--max-duration: expected a duration greater than 0, got {text!r}")
    value: object = text
    try:
        value = float(text)
    except ValueError:
        pass
    if isinstance(value, float) and not 0 < value < float("inf"):  # also nan
        raise not_positive
    try:
        seconds = parse_duration(value)
    except UnitError as exc:
        raise UsageError(f"--max-duration: {exc}") from None
    if seconds <= 0:
        raise not_positive
    return seconds


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def setup_logging(level: str, log_format: str = "text") -> None:
    stream = sys.stderr if sys.stderr is not None else open(os.devnull, "w")  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger("faultserver")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def print_lines(lines: list[str]) -> bool:
    """Print `lines` to standard output and flush; False (said once in the log) if it is gone.

    A standard output that is closed or whose reader went away is replaced by /dev/null,
    so nothing written later (nor the flush at exit) raises.
    """
    stream = sys.stdout
    try:
        if stream is None:
            raise OSError("standard output is closed")
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()
    except (OSError, ValueError) as exc:
        log.warning("cannot write to standard output (%s): the lines above are in this log only", exc)
        _silence_stdout()
        return False
    return True


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:  # pragma: no cover - /dev/null is always there
        pass
    sys.stdout = None  # print() then writes nothing, as for >&-


def run(options: RunOptions) -> int:
    """Serve until a signal or `--max-duration`; 0, or raises a FaultserverError."""
    # a SIGHUP before the signal receiver is set up (the profile is still being read) would
    # end the process, SIGHUP's default: ignore it until the receiver takes over
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    setup_logging(options.log_level, options.log_format)
    limit = raise_open_file_limit()
    from ._shipped import STDIN, load_cli_profile, resolve_profile

    watch = None
    if options.watch:
        if options.profile == STDIN:
            raise UsageError("--watch: a profile read from standard input has no file to watch")
        watch = FileWatch(resolve_profile(options.profile))  # before the first read: no change missed
    profile = apply_binds(load_cli_profile(options.profile), options.binds)
    sink = _open_sink(options.events)
    make_server: Callable[..., Server] = Server
    if options.workers > 1:
        from ._workers.fleet import fleet_factory

        make_server = fleet_factory(options.workers, options.log_level)
    server = make_server(
        profile,
        control=options.control,
        events=EventLog(),
        token=os.environ.get("FAULTSERVER_TOKEN") or None,
        allow_any_bind=options.allow_any_bind,
        followers=[sink.follow] if sink is not None else (),
        ca_dir=options.ca_dir,
        source_loader=_source_loader(options),
    )

    def announce() -> None:  # once the signals are caught (see serve_until_signal)
        lines = []
        for rt in server.listeners.values():
            lines.append(f"listener {rt.name} {rt.url} accept={rt.mode.value}")
            if rt.tls is not None and rt.tls.ca_path is not None:
                lines.append(f"ca {rt.name} {rt.tls.ca_path}")  # the CA a client must trust
        if server.control_tls is not None and server.control_tls.ca_path is not None:
            lines.append(f"control-ca {server.control_tls.ca_path}")
        print_lines([*lines, f"control {server.control_url}"])
        log.info("started seed=%s open_file_limit=%d", server.seed, limit)

    async def on_hup() -> None:
        await reload_from_file(server, ReloadCause.SIGHUP)

    tasks = [] if watch is None else [_watcher(server, watch, options.watch_interval_s)]
    # what is loaded by now (modules, the profile) lives as long as the process: out of the
    # collector's sight, a full collection under load walks only what requests made
    gc.freeze()
    try:
        trio.run(_serve, server, on_hup, options.max_duration_s, announce, tasks)
    except BaseException as exc:
        error = find_exception(exc, FaultserverError)
        if error is not None:
            raise error from None
        if find_exception(exc, KeyboardInterrupt) is not None:
            return EXIT_OK
        raise
    finally:
        if sink is not None:
            sink.write_pending(server.events)
            sink.close()
    log.info("stopped")
    return EXIT_OK


def _open_sink(path: str | None) -> JsonLinesSink | None:
    if path is None:
        return None
    try:
        return JsonLinesSink(path)
    except OSError as exc:
        raise UsageError(f"--events: cannot open {path}: {exc.strerror}") from None


def _source_loader(options: RunOptions) -> Callable[[], Profile] | None:
    """How the profile's file is read again (a shipped profile by its name again), with the
    same overrides; None for standard input, which cannot be read twice."""
    from ._shipped import STDIN, load_cli_profile

    if options.profile == STDIN:
        return None
    return lambda: apply_binds(load_cli_profile(options.profile), options.binds)


async def reload_from_file(server: Server, cause: ReloadCause) -> bool:
    """SIGHUP and `--watch`: the profile's file again. An invalid one, or one that cannot be
    put in force, changes nothing: one log line and one `reload_failed` event; False."""
    source = server.loaded_profile.source
    if server.source_loader is None:  # `run -`: standard input cannot be read twice
        from ._shipped import STDIN_SOURCE

        said = "a profile read from standard input cannot be read again; use PUT /profile"
        log.error(
            "reload failed source=%s cause=%s (the old profile stays): %s", STDIN_SOURCE, cause.value, said
        )
        server.events.emit("reload_failed", source=STDIN_SOURCE, cause=cause.value, problems=0, error=said)
        return False
    try:
        await server.reload_source(cause)  # logs the reload line itself
    except ProfileError as exc:
        # one line, whatever the number of problems
        text = " | ".join(str(p) for p in exc.problems)
        log.error(
            "reload failed source=%s cause=%s problems=%d (the old profile stays): %s",
            source, cause.value, len(exc.problems), text,
        )
        server.events.emit(
            "reload_failed", source=source, cause=cause.value, problems=len(exc.problems), error=text
        )
        return False
    except FaultserverError as exc:  # no file (stdin), a name that names nothing, a port taken
        log.error("reload failed source=%s cause=%s (the old profile stays): %s", source, cause.value, exc)
        server.events.emit("reload_failed", source=source, cause=cause.value, problems=0, error=str(exc))
        return False
    return True


def _watcher(
    server: Server, watch: FileWatch, interval_s: float | None
) -> Callable[[], Awaitable[None]]:
    """`--watch`: a task that reloads the profile each time its file's bytes change."""
    interval = interval_s if interval_s is not None else DEFAULT_INTERVAL_S

    async def run_watch() -> None:
        log.info("watch path=%s interval=%gs", watch.path, interval)
        while True:
            await trio.sleep(interval)
            if watch.poll():
                log.info("watch changed path=%s sha256=%s", watch.path, (watch.digest or "-")[:12])
                await reload_from_file(server, ReloadCause.WATCH)

    return run_watch


async def _serve(
    server: Server,
    on_hup: Callable[[], Awaitable[None]],
    max_duration_s: float | None,
    on_ready: Callable[[], None],
    tasks: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with trio.open_nursery() as side:  # `--watch`: ends when the server stops
            for task in tasks:
                side.start_soon(task)
            await serve_until_signal(server, max_duration_s, on_hup, on_ready)
            side.cancel_scope.cancel()


async def serve_until_signal(
    server: Server,
    max_duration_s: float | None,
    on_hup: Callable[[], Awaitable[None]],
    on_ready: Callable[[], None] | None = None,
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

            async def deadline(seconds: float) -> None:
                await trio.sleep(seconds)
                log.info("--max-duration reached: stopping")
                server.stop()

            nursery.start_soon(watch)
            if max_duration_s is not None:
                nursery.start_soon(deadline, max_duration_s)
            await server.wait_stopped()
            nursery.cancel_scope.cancel()
