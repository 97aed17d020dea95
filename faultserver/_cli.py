"""The command line: `faultserver run | validate | profiles | actions | schema`, `--version`.

Standard output carries what scripts read (the `listener ...` and `control ...` lines,
validation problems, the schema, the shipped profiles); logs go to standard error. Every
user mistake (a bad argument, a file that cannot be read) ends in one line on standard
error and exit status 2, never a traceback.

A profile is a file, the name of a shipped profile (`fin`; a path that exists wins), or
`-`: standard input, whose problems are reported as `<stdin>:LINE:COLUMN`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TypeVar

from ._errors import FaultserverError, ProfileError, UsageError

if TYPE_CHECKING:
    from ._run import RunOptions

__all__ = ["main"]

T = TypeVar("T")

EXIT_OK = 0
EXIT_USAGE = 2
#: How the loader's problem for a file that cannot be read begins.
UNREADABLE = "cannot read file:"
PROFILE_HELP = "a file, a shipped profile's name (see `faultserver profiles`), or - for standard input"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        # main() puts "faultserver: " in front; a subcommand's parser names itself
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="faultserver", description="A fault-injecting mock backend server.")
    p.add_argument("--version", action="version", version=f"faultserver {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="serve a profile")
    run.add_argument("profile", help=PROFILE_HELP)
    run.add_argument("--control", metavar="HOST:PORT", help="admin API address (default 127.0.0.1:0)")
    run.add_argument("--events", metavar="FILE", help="append every event to FILE as JSON lines")
    run.add_argument(
        "--log-level",
        default=None,
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
    run.add_argument(
        "--ca-dir",
        metavar="DIR",
        help="write TLS listeners' generated CAs here, as NAME-ca.pem (default: a private "
        "temporary folder, removed at exit)",
    )
    run.add_argument(
        "--workers",
        metavar="N",
        help="serve with N processes on the same ports (SO_REUSEPORT), one admin API; "
        "auto: one per usable core (default: 1)",
    )
    _add_staging_run_options(run)
    validate = sub.add_parser("validate", help="check profiles")
    validate.add_argument("profiles", nargs="+", metavar="PROFILE", help=PROFILE_HELP)
    sub.add_parser("profiles", help="list the shipped profiles, by name")
    sub.add_parser("actions", help="list the actions and accept modes")
    sub.add_parser("schema", help="print the profile format's JSON Schema")
    from ._ctl import add_ctl_parser

    add_ctl_parser(sub)
    from ._probe.command import add_probe_parser

    add_probe_parser(sub)
    return p


def _cmd_validate(paths: Sequence[str]) -> int:
    """Each profile's problems on standard output (`ok` for a valid one); a file that cannot
    be read, or a name that names nothing, is a one-line error on standard error."""
    from ._shipped import STDIN, STDIN_SOURCE, load_cli_profile

    status = EXIT_OK
    for path in paths:
        try:
            load_cli_profile(path)
        except ProfileError as exc:
            out = sys.stderr if _unreadable(exc) else sys.stdout
            for problem in exc.problems:
                print(problem, file=out)
            status = EXIT_USAGE
        except UsageError as exc:
            print(f"faultserver: {exc}", file=sys.stderr)
            status = EXIT_USAGE
        else:
            print(f"{STDIN_SOURCE if path == STDIN else path}: ok")
    return status


def _unreadable(exc: ProfileError) -> bool:
    """Whether the profile could not be read at all (not a problem of its content)."""
    return len(exc.problems) == 1 and exc.problems[0].message.startswith(UNREADABLE)


def _cmd_profiles() -> int:
    from ._shipped import shipped_names, shipped_summary

    names = shipped_names()
    width = max((len(name) for name in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {shipped_summary(name)}".rstrip())
    return EXIT_OK


def _cmd_actions() -> int:
    from ._profile.actions import ACCEPT_MODES, ACTIONS, CONNECT_ACTIONS

    print("actions (a rule's `action`, or the X-Fault header):")
    for name, spec in ACTIONS.items():
        keys = ", ".join(spec.keys) if spec.keys else "no keys"
        where = "request or connect" if spec.at_connect else "request"
        print(f"  {name:<8} {spec.help} [{keys}; at: {where}]")
    print("accept modes (a listener's `accept`):")
    for name, help_ in ACCEPT_MODES.items():
        print(f"  {name:<8} {help_}")
    before = ", ".join(CONNECT_ACTIONS)
    print(
        "at: connect  a rule checked once per accepted connection, before any byte is read "
        f"({before}): the TCP handshake completes, unlike `stall`"
    )
    print(
        "at: handshake  on a TLS listener, a rule checked once the client's TLS hello has "
        f"arrived, before the server answers it ({before}); it may match on sni and alpn"
    )
    return EXIT_OK


def _cmd_schema() -> int:
    from ._profile.schema import profile_schema

    print(json.dumps(profile_schema(), indent=2))
    return EXIT_OK


def _add_staging_run_options(run: argparse.ArgumentParser) -> None:
    """`run`'s options for containers (each also an environment variable: `_run_config`)."""
    run.add_argument(
        "--log-format",
        type=str.lower,
        choices=["text", "json"],
        help="text (default) or json: one JSON object per line on standard error",
    )
    run.add_argument(
        "--watch", action="store_true", help="reload the profile when its file changes (a ConfigMap too)"
    )
    run.add_argument(
        "--bind", action="append", default=[], metavar="NAME=HOST:PORT",
        help="bind the listener NAME there instead (repeatable)",
    )
    run.add_argument(
        "--port", action="append", default=[], metavar="NAME=PORT",
        help="bind the listener NAME on PORT, its host as in the profile (repeatable)",
    )


def _from(where: str, flag: str, parse: Callable[[str], T], text: str) -> T:
    """`parse(text)`, its message naming the environment variable when the text came from one."""
    try:
        return parse(text)
    except UsageError as exc:
        if where == flag:
            raise
        raise UsageError(str(exc).replace(f"{flag}:", f"{where}:", 1)) from None


def _run_options(args: argparse.Namespace) -> RunOptions:
    """`run`'s arguments, each flag that was not given read from its environment variable."""
    from ._run import RunOptions, parse_control, parse_max_duration, parse_workers
    from ._run_config import LOG_FORMATS, LOG_LEVELS, choice, env_flag, resolve_binds, setting

    env = os.environ
    control, control_from = setting("--control", args.control, env)
    duration, duration_from = setting("--max-duration", args.max_duration, env)
    workers, workers_from = setting("--workers", args.workers, env)
    parsed_control = _from(control_from, "--control", parse_control, control) if control else None
    max_duration_s = (
        _from(duration_from, "--max-duration", parse_max_duration, duration) if duration else None
    )
    return RunOptions(
        profile=args.profile,
        control=parsed_control,
        events=setting("--events", args.events, env)[0],
        log_level=choice("--log-level", args.log_level, env, LOG_LEVELS, "info"),
        max_duration_s=max_duration_s,
        allow_any_bind=env_flag("--allow-any-bind", args.allow_any_bind, env),
        ca_dir=setting("--ca-dir", args.ca_dir, env)[0],
        watch=env_flag("--watch", args.watch, env),
        log_format=choice("--log-format", args.log_format, env, LOG_FORMATS, "text"),
        binds=resolve_binds(args.bind, args.port, env),
        workers=_from(workers_from, "--workers", parse_workers, workers) if workers else 1,
    )


def _dispatch(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _cmd_validate(args.profiles)
    if args.command == "profiles":
        return _cmd_profiles()
    if args.command == "actions":
        return _cmd_actions()
    if args.command == "schema":
        return _cmd_schema()
    if args.command == "ctl":
        from ._ctl import run_ctl

        return run_ctl(args)
    if args.command == "probe":
        from ._probe.command import run_probe_command

        return run_probe_command(args)
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
    except SystemExit as exc:  # --help, --version: printed, and done
        return exc.code if isinstance(exc.code, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
