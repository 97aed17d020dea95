"""The command line: `faultserver run | validate | actions | schema`.

Standard output carries what scripts read (the `listener ...` and `control ...` lines,
validation problems, the schema); logs go to standard error. Every user mistake ends
in one line on standard error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from ._errors import FaultserverError, ProfileError, UsageError

if TYPE_CHECKING:
    from ._run import RunOptions

__all__ = ["main"]

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
    from ._profile.actions import ACCEPT_MODES, ACTIONS

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


def _run_options(args: argparse.Namespace) -> RunOptions:
    from ._run import RunOptions, parse_control, parse_max_duration

    return RunOptions(
        profile=args.profile,
        control=parse_control(args.control) if args.control else None,
        events=args.events,
        log_level=args.log_level,
        max_duration_s=parse_max_duration(args.max_duration) if args.max_duration is not None else None,
        allow_any_bind=args.allow_any_bind,
    )


def _dispatch(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _cmd_validate(args.profiles)
    if args.command == "actions":
        return _cmd_actions()
    if args.command == "schema":
        return _cmd_schema()
    options = _run_options(args)
    from ._run import run

    return run(options)


def open_standard_streams() -> None:
    """Put /dev/null on standard input, output or error where they are closed.

    Otherwise the first socket opened would get descriptor 1 (or 2), and the lines meant
    for standard output (or the log) would be written into a client's connection.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """The `faultserver` command; returns the exit status."""
    open_standard_streams()
    try:
        return _dispatch(argv)
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
