"""`faultserver run`: the process around a `Server`.

It prints the `listener ...` and `control ...` lines, stops on SIGINT, SIGTERM or
`--max-duration`, reloads on SIGHUP, appends events to `--events FILE`, and survives
what a shell can do to its standard streams: started with standard output closed
(`>&-`) or piped into a reader that exits (`| true`), it serves all the same, and the
lines it could not print are in its log (`listener start ...`, `control start ...`).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ._address import AddressError, parse_hostport
from ._errors import FaultserverError, ProfileError, StartError, UsageError, find_exception
from ._event_sink import JsonLinesSink
from ._events import EventLog
from ._reload import ReloadCause
from ._server import Server

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


def parse_control(text: str) -> tuple[str, int]:
    """`--control HOST:PORT`, with the profile's rules for an address."""
    try:
        return parse_hostport(text)
    except AddressError as exc:
        raise UsageError(f"--control: {exc}") from None


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


def setup_logging(level: str) -> None:
    stream = sys.stderr if sys.stderr is not None else open(os.devnull, "w")  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(asctime)s level=%(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
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
    setup_logging(options.log_level)
    limit = raise_open_file_limit()
    from ._profile.load import load_profile_file

    profile = load_profile_file(options.profile)
    sink = _open_sink(options.events)
    server = Server(
        profile,
        control=options.control,
        events=EventLog(),
        token=os.environ.get("FAULTSERVER_TOKEN") or None,
        allow_any_bind=options.allow_any_bind,
        followers=[sink.follow] if sink is not None else (),
    )

    def announce() -> None:  # once the signals are caught (see serve_until_signal)
        lines = [f"listener {rt.name} {rt.url} accept={rt.mode.value}" for rt in server.listeners.values()]
        print_lines([*lines, f"control {server.control_url}"])
        log.info("started seed=%s open_file_limit=%d", server.seed, limit)

    try:
        trio.run(_serve, server, _reloader(server, options.profile), options.max_duration_s, announce)
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


def _reloader(server: Server, path: str) -> Callable[[], Awaitable[None]]:
    """SIGHUP: the profile file again; an invalid one, or one that cannot start, changes nothing."""
    from ._profile.load import load_profile_file

    async def reload() -> None:
        try:
            new = load_profile_file(path)
        except ProfileError as exc:
            # one line, whatever the number of problems
            log.error(
                "reload failed source=%s cause=sighup problems=%d (the old profile stays): %s",
                path, len(exc.problems), " | ".join(str(p) for p in exc.problems),
            )
            return
        try:
            await server.load(new, ReloadCause.SIGHUP)  # logs the reload line itself
        except StartError as exc:
            log.error("reload failed source=%s cause=sighup (the old profile stays): %s", path, exc)

    return reload


async def _serve(
    server: Server,
    on_hup: Callable[[], Awaitable[None]],
    max_duration_s: float | None,
    on_ready: Callable[[], None],
) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await serve_until_signal(server, max_duration_s, on_hup, on_ready)


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
