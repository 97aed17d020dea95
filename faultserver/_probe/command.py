"""`faultserver probe`: its arguments, the self-test, and where the report goes.

The report's table goes to standard output, one progress line per scenario to standard
error, `--json FILE` and `--markdown FILE` to their files. Bad input (a URL, an address,
a gateway that is down or does not reach the backend, a port taken) is a UsageError that
`_cli.main` prints as one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .._address import AddressError, parse_hostport
from .._errors import UsageError
from .client import parse_gateway_url
from .run import DEFAULT_MAX_WAIT_S, ProbeOptions, run_probe
from .scenarios import SCENARIOS, select_scenarios

__all__ = ["add_probe_parser", "run_probe_command"]

EXIT_OK = 0


def add_probe_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `probe` with the CLI's subcommands."""
    probe = sub.add_parser(
        "probe",
        help="report what a gateway does for each backend fault",
        description="Serve as the backend behind one route of your gateway and report, cause by "
        "cause, what the gateway does: statuses, latency, retries, upstream connections.",
    )
    probe.add_argument("--gateway", metavar="URL", help="the gateway URL whose route reaches --backend")
    probe.add_argument("--backend", metavar="HOST:PORT", help="where the probe serves as the backend")
    probe.add_argument(
        "--scenarios",
        metavar="LIST",
        help=f"comma-separated, among: {', '.join(s.name for s in SCENARIOS)} (default: all)",
    )
    probe.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    probe.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    probe.add_argument("--max-duration", metavar="DURATION", default="3m", help="the whole run (default 3m)")
    probe.add_argument(
        "--max-wait",
        metavar="DURATION",
        default=f"{DEFAULT_MAX_WAIT_S:g}s",
        help=f"the longest wait for one answer (default {DEFAULT_MAX_WAIT_S:g}s)",
    )
    probe.add_argument(
        "--self-test", action="store_true", help="probe an nginx started for the purpose (no --gateway)"
    )


def _duration(option: str, text: str) -> float:
    from .._run import parse_max_duration

    try:
        return parse_max_duration(text)
    except UsageError as exc:
        raise UsageError(f"probe: {str(exc).replace('--max-duration', option)}") from None


def _options(args: argparse.Namespace, gateway: str, backend: str) -> ProbeOptions:
    try:
        address = parse_hostport(backend)
    except AddressError as exc:
        raise UsageError(f"probe: --backend: {exc}") from None
    if address[1] == 0:
        raise UsageError("probe: --backend: expected the port your gateway's route points at, got port 0")
    names = None if args.scenarios is None else [n.strip() for n in args.scenarios.split(",") if n.strip()]
    return ProbeOptions(
        gateway=parse_gateway_url(gateway),
        backend=address,
        scenarios=select_scenarios(names),
        max_duration_s=_duration("--max-duration", args.max_duration),
        max_wait_s=_duration("--max-wait", args.max_wait),
    )


def _progress(line: str) -> None:
    print(f"probe: {line}", file=sys.stderr, flush=True)


def run_probe_command(args: argparse.Namespace) -> int:
    if args.self_test:
        if args.gateway or args.backend:
            raise UsageError("probe: --self-test starts its own nginx: give neither --gateway nor --backend")
        return _self_test(args)
    if not args.gateway or not args.backend:
        given = (("--gateway", args.gateway), ("--backend", args.backend))
        missing = " and ".join(option for option, value in given if not value)
        raise UsageError(f"probe: {missing} required (or --self-test)")
    return _probe(_options(args, args.gateway, args.backend), args)


def _probe(options: ProbeOptions, args: argparse.Namespace) -> int:
    report = run_probe(options, _progress)
    sys.stdout.write(report.to_table())
    sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(report.to_json())
    if args.markdown:
        Path(args.markdown).write_text(report.to_markdown())
    return EXIT_OK


def _self_test(args: argparse.Namespace) -> int:
    from .._processes import free_port
    from .nginx import SELF_TEST, NginxProcess

    backend = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="faultserver-probe-") as folder:
        nginx = NginxProcess(Path(folder), backend, SELF_TEST)
        nginx.start()
        try:
            _progress(f"self-test: nginx on {nginx.url} ({SELF_TEST.describe()}), backend {backend}")
            return _probe(_options(args, nginx.url, backend), args)
        finally:
            nginx.stop()
