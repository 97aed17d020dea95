"""The command line: `faultserver run | validate | actions | schema`.

Standard output carries what scripts read (the `listener ...` and `control ...` lines,
validation problems, the schema); logs go to standard error. Every user mistake ends
in one line on standard error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
from typing import NoReturn, Optional, Sequence

from ._errors import FaultserverError, ProfileError, StartError, UsageError, find_exception

__all__ = ["main"]

log = logging.getLogger("faultserver")

EXIT_OK = 0
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        # main() puts "faultserver: " in front; a subcommand's parser names itself
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="faultserver", description="A fault-injecting mock backend server.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="serve a profile")
    run.add_argument("profile")
    run.add_argument("--control", metavar="HOST:PORT", help="admin API address (default 127.0.0.1:0)")
    run.add_argument("--events", metavar="FILE", help="append every event to FILE as JSON lines")
    run.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="default: info",
    )
    run.add_argument("--max-duration", metavar="DURATION", help="stop after this long (e.g. 10m)")
    run.add_argument(
        "--allow-any-bind",
        action="store_true",
        help="let PUT /profile bind ports below 1024 and non-loopback addresses",
    )
    validate = sub.add_parser("validate", help="check profiles")
    validate.add_argument("profiles", nargs="+", metavar="PROFILE")
    sub.add_parser("actions", help="list the actions and accept modes")
    sub.add_parser("schema", help="print the profile format's JSON Schema")
    return p


def _parse_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{what}: expected HOST:PORT such as 127.0.0.1:8474, got {value!r}")
    if host == "localhost":
        host = "127.0.0.1"
    return host, int(port)


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


def _cmd_validate(paths: Sequence[str]) -> int:
    from ._profile.load import load_profile_file

    status = EXIT_OK
    for path in paths:
        try:
            load_profile_file(path)
        except ProfileError as exc:
            for problem in exc.problems:
                print(problem)
            status = EXIT_USAGE
        else:
            print(f"{path}: ok")
    return status


def _cmd_actions() -> int:
    from ._actions import ACCEPT_MODES, ACTIONS

    print("actions (a rule's `action`, or the X-Fault header):")
    for name, spec in ACTIONS.items():
        keys = ", ".join(spec.keys) if spec.keys else "no keys"
        where = "request or connect" if spec.at_connect else "request"
        print(f"  {name:<8} {spec.help} [{keys}; at: {where}]")
    print("accept modes (a listener's `accept`):")
    for name, help_ in ACCEPT_MODES.items():
        print(f"  {name:<8} {help_}")
    print(
        "at: connect  a rule checked once per accepted connection, before any byte is read "
        "(close, reset, hang, garbage): the TCP handshake completes, unlike `stall`"
    )
    return EXIT_OK


def _cmd_schema() -> int:
    from ._profile.schema import profile_schema

    print(json.dumps(profile_schema(), indent=2))
    return EXIT_OK


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s level=%(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger("faultserver")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _cmd_run(args: argparse.Namespace) -> int:
    import trio

    from ._events import EventLog, JsonLinesSink
    from ._profile.load import load_profile_file
    from ._profile.units import UnitError, parse_duration
    from ._server import Server, serve_until_signal

    _setup_logging(args.log_level)
    max_duration_s: Optional[float] = None
    if args.max_duration is not None:
        not_positive = UsageError(
            f"--max-duration: expected a duration greater than 0, got {args.max_duration!r}"
        )
        value: object = args.max_duration
        try:
            value = float(args.max_duration)  # a plain number is seconds, as in a profile
        except ValueError:
            pass
        if isinstance(value, float) and not 0 < value < float("inf"):  # also nan
            raise not_positive
        try:
            max_duration_s = parse_duration(value)
        except UnitError as exc:
            raise UsageError(f"--max-duration: {exc}") from None
        if max_duration_s <= 0:
            raise not_positive
    control = _parse_hostport(args.control, "--control") if args.control else None
    limit = raise_open_file_limit()
    profile = load_profile_file(args.profile)
    token = os.environ.get("FAULTSERVER_TOKEN") or None
    events = EventLog()
    sink = None
    if args.events:
        try:
            sink = JsonLinesSink(args.events)
        except OSError as exc:
            raise UsageError(f"--events: cannot open {args.events}: {exc.strerror}") from None
        events.subscribe(sink)
    server = Server(
        profile,
        control=control,
        events=events,
        token=token,
        allow_privileged=args.allow_any_bind,
    )

    async def reload() -> None:
        try:
            new = load_profile_file(args.profile)
        except ProfileError as exc:
            # one line, whatever the number of problems
            log.error(
                "reload failed source=%s cause=sighup problems=%d (the old profile stays): %s",
                args.profile, len(exc.problems), " | ".join(str(p) for p in exc.problems),
            )
            return
        try:
            await server.load(new, cause="sighup")  # logs the reload line itself
        except StartError as exc:
            log.error("reload failed source=%s cause=sighup (the old profile stays): %s", args.profile, exc)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)

            def announce() -> None:  # once SIGTERM is caught (see serve_until_signal)
                for rt in server.listeners.values():
                    print(f"listener {rt.name} {rt.url} accept={rt.mode.value}")
                print(f"control {server.control_url}")
                sys.stdout.flush()
                log.info("started seed=%s open_file_limit=%d", server.seed, limit)

            await serve_until_signal(server, max_duration_s, reload, announce)

    try:
        trio.run(main)
    except BaseException as exc:
        start = find_exception(exc, FaultserverError)
        if start is not None:
            raise start from None
        if find_exception(exc, KeyboardInterrupt) is not None:
            return EXIT_OK
        raise
    finally:
        if sink is not None:
            sink.close()
    log.info("stopped")
    return EXIT_OK



def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "validate":
            return _cmd_validate(args.profiles)
        if args.command == "actions":
            return _cmd_actions()
        if args.command == "schema":
            return _cmd_schema()
        return _cmd_run(args)
    except ProfileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except FaultserverError as exc:
        print(f"faultserver: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"faultserver: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
