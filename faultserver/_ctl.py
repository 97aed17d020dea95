"""`faultserver ctl`: the admin API from the command line, for one server or a fleet.

    faultserver ctl --target dns:faultserver-fleet.chaos.svc:8474 accept backend refuse

Targets. `--target URL` (repeatable; or `FAULTSERVER_TARGET`, separated by spaces or
commas) names an admin API. `--target dns:NAME:PORT` names every address of NAME (each
A and AAAA record): a Kubernetes headless Service has one per ready pod, so the command
goes to every replica, and there is no cluster of our own to keep in step. Each target is
asked on its own (in parallel); the output says, per target, what it answered or why it
failed, and the exit status is 1 if any target failed (2 for a usage mistake, before any
target is asked). A name that resolves to nothing is a failed target too.

The token is `FAULTSERVER_TOKEN`, or the first line of `--token-file` (a mounted Secret),
which wins. Output is for people; `--json` gives one JSON document (`events`: one JSON
object per line), each target's answer under its URL.

Only the standard library talks HTTP here (`http.client`): the client adds no dependency
to the server's. `resolve_name` is looked up at each call, so a test can replace it with
a stub resolver; it is `socket.getaddrinfo` otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote, urlencode, urlsplit

from ._errors import UsageError

__all__ = [
    "EXIT_FAILED",
    "Outcome",
    "Target",
    "TargetError",
    "add_ctl_parser",
    "expand_targets",
    "resolve_name",
    "run_ctl",
]

EXIT_OK = 0
#: Some target failed (each is reported).
EXIT_FAILED = 1
#: How long a request to one target may take (`--timeout`).
DEFAULT_TIMEOUT_S = 10.0
#: At most this many targets are asked at once.
MAX_PARALLEL = 32
#: `events` without `--follow`: the newest this many per target (`--limit`).
DEFAULT_EVENTS = 50
DNS_PREFIX = "dns:"
TARGET_ENV = "FAULTSERVER_TARGET"
TOKEN_ENV = "FAULTSERVER_TOKEN"
MODES = ("open", "refuse", "stall")


class TargetError(Exception):
    """One target could not do what was asked: unreachable, refused, or an error answer."""


@dataclass(frozen=True, slots=True)
class Target:
    """An admin API to ask: its base URL, or why there is none (a name that did not resolve)."""

    url: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one target answered (`value`), or why it failed (`error`)."""

    target: str
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        if self.ok:
            return {"target": self.target, "ok": True, "result": self.value}
        return {"target": self.target, "ok": False, "error": self.error}


# --- targets --------------------------------------------------------------------------------


def resolve_name(name: str, port: int) -> list[str]:
    """Every address of `name` (A and AAAA records), IPv4 first, each once."""
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        found.add(ipaddress.ip_address(address))
    return [str(a) for a in sorted(found, key=lambda a: (a.version, a))]


def _split_dns(spec: str) -> tuple[str, int]:
    name, sep, port = spec[len(DNS_PREFIX):].rpartition(":")
    if not sep or not name or not port.isdigit() or not 0 < int(port[:6]) <= 65535:
        raise UsageError(
            f"--target: expected dns:NAME:PORT such as dns:faultserver.chaos.svc:8474, got {spec!r}"
        )
    return name, int(port)


def _check_url(spec: str) -> str:
    try:
        parts = urlsplit(spec)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--target: expected http://HOST:PORT, https://HOST:PORT or dns:NAME:PORT, got {spec!r}"
        )
    del port
    return spec.rstrip("/")


def expand_targets(
    specs: Sequence[str], scheme: str = "http", resolver: Callable[[str, int], list[str]] | None = None
) -> list[Target]:
    """The targets that `--target` names, `dns:NAME:PORT` resolved to one target per address.
    Bad text is a UsageError; a name that does not resolve is a target with an error."""
    resolve = resolver if resolver is not None else resolve_name
    targets: list[Target] = []
    seen: set[str] = set()
    for spec in specs:
        if not spec.startswith(DNS_PREFIX):
            urls = [_check_url(spec)]
        else:
            name, port = _split_dns(spec)
            try:
                addresses = resolve(name, port)
            except (OSError, UnicodeError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                targets.append(Target(spec, f"cannot resolve {name}: {reason}"))
                continue
            if not addresses:
                targets.append(Target(spec, f"{name} has no address"))
                continue
            urls = [f"{scheme}://{_hostport(a, port)}" for a in addresses]
        for url in urls:
            if url not in seen:
                seen.add(url)
                targets.append(Target(url))
    return targets


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- one target ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    """Requests to one admin API (`http.client`, a new connection each time)."""

    base: str
    token: str | None
    timeout_s: float
    context: ssl.SSLContext | None

    def connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.base)
        host, port = parts.hostname or "", parts.port
        if parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout_s, context=self.context)
        return http.client.HTTPConnection(host, port, timeout=self.timeout_s)

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["content-type"] = content_type
        return headers

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> bytes:
        """The answer's body; a TargetError for no answer or a status that is not 2xx."""
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=self.headers(content_type))
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise TargetError(_describe_failure(exc)) from None
        finally:
            conn.close()
        if not 200 <= resp.status < 300:
            raise TargetError(_describe_answer(resp.status, data))
        return data

    def json(self, method: str, path: str, body: Any = None) -> Any:
        raw = None if body is None else json.dumps(body).encode()
        data = self.request(method, path, raw, "application/json" if raw is not None else None)
        try:
            return json.loads(data)
        except ValueError:
            raise TargetError(f"answered {len(data)} bytes that are not JSON") from None


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time (timed out)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot reach: {exc.strerror}"
    return f"cannot reach: {type(exc).__name__}: {exc}".rstrip(": ")


def _describe_answer(status: int, data: bytes) -> str:
    """`401 missing or wrong token: ...`, with a 400's problems after the message."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = f"{status} {body['error']}"
        problems = body.get("problems")
        if isinstance(problems, list) and problems:
            text += ": " + "; ".join(str(p) for p in problems)
        return text
    return f"{status} {data[:200].decode('utf-8', 'replace').strip()}".rstrip()


# --- the fleet ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fleet:
    """The targets of one command, and how to ask them."""

    targets: list[Target]
    token: str | None
    timeout_s: float
    context: ssl.SSLContext | None

    def client(self, target: Target) -> Client:
        return Client(target.url, self.token, self.timeout_s, self.context)

    def each(self, ask: Callable[[Client], Any]) -> list[Outcome]:
        """`ask(client)` for every target in parallel; the outcomes in the targets' order."""

        def one(target: Target) -> Outcome:
            if target.error is not None:
                return Outcome(target.url, error=target.error)
            try:
                return Outcome(target.url, ask(self.client(target)))
            except TargetError as exc:
                return Outcome(target.url, error=str(exc))

        workers = max(1, min(MAX_PARALLEL, len(self.targets)))
        with ThreadPoolExecutor(workers, thread_name_prefix="faultserver-ctl") as pool:
            return list(pool.map(one, self.targets))


# --- the commands -------------------------------------------------------------------------------

Ask = Callable[[Client], Any]


def _listener_path(name: str, suffix: str = "") -> str:
    return f"/listeners/{quote(name, safe='')}{suffix}"


def _read_input(path: str, what: str, stdin: TextIO) -> str:
    if path == "-":
        return stdin.read()
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what}: {path} is not UTF-8 text (byte {exc.start})") from None


def load_rules_file(path: str, stdin: TextIO) -> list[Any]:
    """`ctl rules NAME FILE`: a YAML (or JSON) list of rules, or a mapping with `rules:`."""
    import yaml

    text = _read_input(path, "rules", stdin)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"rules: {path} is not YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    if not isinstance(data, list):
        raise UsageError(f"rules: {path}: expected a list of rules (or a mapping with 'rules:')")
    return data


def _asker(args: argparse.Namespace, stdin: TextIO) -> tuple[Ask, Callable[[Any], str]]:
    """The request each target gets for the command, and how its answer reads for people."""
    cmd = args.ctl_command
    if cmd == "status":
        return (lambda c: c.json("GET", "/state")), lambda v: ""
    if cmd == "accept":
        body = {"accept": args.mode}
        return (
            lambda c: c.json("PATCH", _listener_path(args.listener), body),
            lambda v: f"{v.get('name')} accept={v.get('accept')}",
        )
    if cmd == "rules":
        body = {"rules": load_rules_file(args.file, stdin)}
        return (
            lambda c: c.json("PATCH", _listener_path(args.listener), body),
            lambda v: f"{args.listener} rules={len(body['rules'])}",
        )
    if cmd == "drop":
        body = {"how": "rst" if args.rst else "fin", "idle_only": args.idle_only}
        return (
            lambda c: c.json("POST", _listener_path(args.listener, "/drop"), body),
            lambda v: f"{args.listener} dropped={v.get('dropped')} how={v.get('how')}",
        )
    if cmd == "reload":
        return _reload_asker(args.file, stdin)
    if cmd in ("pause", "resume"):
        return (
            lambda c: c.json("POST", f"/schedule/{cmd}"),
            lambda v: f"schedule paused={_word(v.get('paused'))} changed={_word(v.get('changed'))}",
        )
    if cmd == "panic":
        return (
            lambda c: c.json("POST", "/panic"),
            lambda v: "panic: every listener open, API rules cleared, schedule paused "
            f"(opened: {', '.join(v.get('opened') or []) or '-'})",
        )
    if cmd == "metrics":
        return (lambda c: c.request("GET", "/metrics").decode("utf-8", "replace")), lambda v: ""
    raise UsageError(f"unknown ctl command {cmd!r}")  # pragma: no cover - argparse refuses it


def _word(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _reload_asker(path: str | None, stdin: TextIO) -> tuple[Ask, Callable[[Any], str]]:
    def listed(v: Any) -> str:
        names = [item.get("name") for item in v.get("listeners", [])] if isinstance(v, dict) else []
        return f"reloaded: listeners {', '.join(map(str, names)) or '-'}"

    if path is None:  # each server reads its own file again (as SIGHUP)
        return (lambda c: c.json("POST", "/reload")), listed
    text = _read_input(path, "reload", stdin).encode("utf-8")

    def put(c: Client) -> Any:
        return json.loads(c.request("PUT", "/profile", text, "application/yaml"))

    return put, listed


# --- output ------------------------------------------------------------------------------------


def _print_outcomes(outcomes: list[Outcome], describe: Callable[[Any], str], out: TextIO) -> None:
    width = max(len(o.target) for o in outcomes)
    for o in outcomes:
        if o.ok:
            print(f"{o.target:<{width}}  ok      {describe(o.value)}".rstrip(), file=out)
        else:
            print(f"{o.target:<{width}}  FAILED  {o.error}", file=out)


def status_rows(outcomes: list[Outcome]) -> list[list[str]]:
    """`ctl status`: the fleet in one table, one row per target and listener."""
    rows = [["TARGET", "LISTENER", "ACCEPT", "RULES", "PHASE", "NEXT", "PAUSED", "PROFILE"]]
    for o in outcomes:
        if not o.ok:
            rows.append([o.target, "-", "FAILED", o.error or "", "", "", "", ""])
            continue
        state = o.value if isinstance(o.value, dict) else {}
        profile = state.get("profile") or {}
        paused = "yes" if (state.get("schedule") or {}).get("paused") else "no"
        label = f"{os.path.basename(str(profile.get('source', '-')))}@{str(profile.get('sha256', ''))[:12]}"
        for item in state.get("listeners") or []:
            schedule = item.get("schedule")
            if schedule is None:
                phase, next_in = "-", "-"
            else:
                current = "end" if schedule.get("ended") else schedule.get("phase")
                phase = f"{current}/{schedule.get('phases')} c{schedule.get('cycle')}"
                left = schedule.get("next_in_s")
                next_in = "-" if left is None else f"{left:.1f}s"
            rows.append([
                o.target,
                str(item.get("name")),
                f"{item.get('accept')} ({item.get('accept_cause')})",
                f"{len(item.get('rules') or [])} ({item.get('rules_cause')})",
                phase,
                next_in,
                paused,
                label,
            ])
    return rows


def _print_table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows if len(row) > i) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        print("  ".join(cells).rstrip(), file=out)


def _print_metrics(outcomes: list[Outcome], out: TextIO) -> None:
    for o in outcomes:
        if len(outcomes) > 1 or not o.ok:
            print(f"# target {o.target}" + ("" if o.ok else f" FAILED {o.error}"), file=out)
        if o.ok:
            out.write(o.value)


# --- events ------------------------------------------------------------------------------------


def format_event(target: str | None, event: dict[str, Any]) -> str:
    """One event for people: `12:00:01.250 [TARGET] #17 mode backend accept=refuse cause=api`."""
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("time", 0))))
    millis = int((float(event.get("time", 0)) % 1) * 1000)
    head = [f"{stamp}.{millis:03d}"]
    if target is not None:
        head.append(target)
    head += [f"#{event.get('id')}", str(event.get("type")), str(event.get("listener") or "-")]
    rest = [
        f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
        for k, v in event.items()
        if k not in ("id", "time", "type", "listener")
    ]
    return " ".join(head + rest)


def _events_query(args: argparse.Namespace, follow: bool) -> str:
    query: list[tuple[str, str]] = [("type", t) for t in args.type or []]
    if args.listener_filter:
        query.append(("listener", args.listener_filter))
    if args.since is not None:
        query.append(("since", str(args.since)))
        if not follow:
            query.append(("limit", str(args.limit or DEFAULT_EVENTS)))
    elif not follow:
        query.append(("newest", str(args.limit or DEFAULT_EVENTS)))
    return ("?" + urlencode(query)) if query else ""


def _cmd_events(fleet: Fleet, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.follow:
        return _follow(fleet, args, out, err)
    query = _events_query(args, follow=False)
    outcomes = fleet.each(lambda c: c.json("GET", f"/events{query}"))
    several = len(outcomes) > 1
    failed = False
    for o in outcomes:
        if not o.ok:
            failed = True
            print(f"{o.target}  FAILED  {o.error}", file=err)
            continue
        for event in o.value.get("events", []):
            if args.json:
                print(json.dumps({"target": o.target, **event}), file=out)
            else:
                print(format_event(o.target if several else None, event), file=out)
        if o.value.get("missed"):
            print(f"{o.target}: {o.value['missed']} older events are no longer kept", file=err)
    return EXIT_FAILED if failed else EXIT_OK


def read_sse(lines: Iterator[bytes]) -> Iterator[tuple[str, str]]:
    """(event name, data) for each server-sent event in `lines` (comments skipped)."""
    name, data = "message", list[str]()
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


def _follow(fleet: Fleet, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`events --follow`: every target's stream at once, each event printed as it arrives;
    until Ctrl-C, or `--limit` events from each target, or every stream has ended."""
    query = _events_query(args, follow=True)
    several = len(fleet.targets) > 1
    lock = threading.Lock()
    failures: list[str] = []

    def say(text: str, stream: TextIO) -> None:
        with lock:
            print(text, file=stream, flush=True)

    def follow_one(target: Target) -> None:
        if target.error is not None:
            failures.append(target.url)
            say(f"{target.url}  FAILED  {target.error}", err)
            return
        try:
            _stream_events(fleet.client(target), query, args, several, say, out, err)
        except TargetError as exc:
            failures.append(target.url)
            say(f"{target.url}  FAILED  {exc}", err)

    threads = [threading.Thread(target=follow_one, args=(t,), daemon=True) for t in fleet.targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # short waits: Ctrl-C reaches the main thread
    return EXIT_FAILED if failures else EXIT_OK


def _stream_events(
    client: Client,
    query: str,
    args: argparse.Namespace,
    several: bool,
    say: Callable[[str, TextIO], None],
    out: TextIO,
    err: TextIO,
) -> None:
    conn = client.connect()
    try:
        try:
            conn.request("GET", f"/events/stream{query}", headers=client.headers())
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise TargetError(_describe_failure(exc)) from None
        if resp.status != 200:
            raise TargetError(_describe_answer(resp.status, resp.read()))
        if conn.sock is not None:
            conn.sock.settimeout(None)  # a quiet stream is no failure
        seen = 0
        for name, data in read_sse(iter(resp.readline, b"")):
            if name == "missed":
                say(f"{client.base}: missed {data}", err)
                continue
            event = json.loads(data)
            if args.json:
                say(json.dumps({"target": client.base, **event}), out)
            else:
                say(format_event(client.base if several else None, event), out)
            seen += 1
            if args.limit and seen >= args.limit:
                return
    except (OSError, http.client.HTTPException) as exc:
        raise TargetError(f"stream ended: {_describe_failure(exc)}") from None
    finally:
        conn.close()


# --- the command line --------------------------------------------------------------------------


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """The options every ctl command takes, before or after the command's name."""
    parser.add_argument(
        "--target", dest="targets", action="append", metavar="URL|dns:NAME:PORT", default=default,
        help=f"an admin API; repeatable; dns:NAME:PORT means every address of NAME (default: ${TARGET_ENV})",
    )
    parser.add_argument(
        "--token-file", metavar="FILE", default=default, help=f"the token (default: ${TOKEN_ENV})"
    )
    parser.add_argument("--json", action="store_true", default=default, help="JSON output")
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", default=default,
        help=f"per request and target (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--cacert", metavar="FILE", default=default, help="trust this CA for https targets")
    parser.add_argument(
        "--scheme", choices=["http", "https"], default=default, help="for dns: targets (default http)"
    )


def add_ctl_parser(sub: Any) -> None:
    """`faultserver ctl ...` on the main parser's subcommands (`sub`)."""
    ctl = sub.add_parser("ctl", help="drive running servers' admin APIs (one, many, or a DNS name's)")
    _common_options(ctl, argparse.SUPPRESS)
    commands = ctl.add_subparsers(dest="ctl_command", required=True, parser_class=type(ctl))
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, argparse.SUPPRESS)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_, parents=[common])
        return parser

    add("status", "what is in force on each target, as one table")
    accept = add("accept", "switch a listener's accept mode")
    accept.add_argument("listener", metavar="NAME")
    accept.add_argument("mode", type=str.lower, choices=MODES)
    rules = add("rules", "replace a listener's rules (a YAML or JSON list)")
    rules.add_argument("listener", metavar="NAME")
    rules.add_argument("file", metavar="FILE|-")
    drop = add("drop", "end a listener's open connections (FIN, or RST with --rst)")
    drop.add_argument("listener", metavar="NAME")
    drop.add_argument("--rst", action="store_true", help="reset (RST) instead of FIN")
    drop.add_argument("--idle-only", action="store_true", help="spare connections in a request")
    reload = add("reload", "put FILE in force (PUT /profile), or each server's own file again")
    reload.add_argument("file", nargs="?", metavar="FILE|-")
    add("pause", "stop the schedules' phase changes")
    add("resume", "let the schedules' phases change again")
    add("panic", "every listener open, API rules cleared, schedule paused: end the experiment")
    events = add("events", "the newest events, or --follow them live")
    events.add_argument("--follow", "-f", action="store_true", help="stream events as they happen")
    events.add_argument("--type", action="append", metavar="TYPE", help="only this type (repeatable)")
    events.add_argument("--listener", dest="listener_filter", metavar="NAME", help="only this listener's")
    events.add_argument("--since", type=int, metavar="ID", help="events after this id")
    events.add_argument(
        "--limit", type=int, metavar="N",
        help=f"at most N per target (default {DEFAULT_EVENTS}; with --follow: stop after N)",
    )
    add("metrics", "the Prometheus metrics of each target")


def _token(args: argparse.Namespace, environ: dict[str, str]) -> str | None:
    path = getattr(args, "token_file", None)
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                token = file.readline().strip()
        except OSError as exc:
            raise UsageError(f"--token-file: cannot read {path}: {exc.strerror or exc}") from None
        if not token:
            raise UsageError(f"--token-file: {path} is empty")
        return token
    return environ.get(TOKEN_ENV) or None


def _fleet(args: argparse.Namespace, resolver: Callable[[str, int], list[str]] | None) -> Fleet:
    environ = dict(os.environ)
    specs = list(getattr(args, "targets", None) or [])
    if not specs:
        specs = [s for s in environ.get(TARGET_ENV, "").replace(",", " ").split() if s]
    if not specs:
        raise UsageError(f"ctl: no target: give --target URL (or dns:NAME:PORT), or set {TARGET_ENV}")
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT_S
    if not 0 < timeout < float("inf"):
        raise UsageError(f"--timeout: expected seconds greater than 0, got {timeout!r}")
    context = None
    cacert = getattr(args, "cacert", None)
    if cacert:
        try:
            context = ssl.create_default_context(cafile=cacert)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--cacert: cannot use {cacert}: {exc}") from None
    targets = expand_targets(specs, getattr(args, "scheme", None) or "http", resolver)
    return Fleet(targets, _token(args, environ), timeout, context)


def run_ctl(
    args: argparse.Namespace,
    *,
    resolver: Callable[[str, int], list[str]] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run a parsed `faultserver ctl` command; the exit status (UsageError for mistakes)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    fleet = _fleet(args, resolver)
    as_json = bool(getattr(args, "json", False))
    if args.ctl_command == "events":
        args.json = as_json
        return _cmd_events(fleet, args, out, err)
    ask, describe = _asker(args, stdin if stdin is not None else sys.stdin)
    outcomes = fleet.each(ask)
    failed = any(not o.ok for o in outcomes)
    if as_json:
        document = {"ok": not failed, "targets": [o.as_json() for o in outcomes]}
        print(json.dumps(document, indent=2), file=out)
    elif args.ctl_command == "status":
        _print_table(status_rows(outcomes), out)
    elif args.ctl_command == "metrics":
        _print_metrics(outcomes, out)
    else:
        _print_outcomes(outcomes, describe, out)
    if failed and not as_json:
        bad = [o for o in outcomes if not o.ok]
        print(f"faultserver ctl: {len(bad)} of {len(outcomes)} targets failed", file=err)
    return EXIT_FAILED if failed else EXIT_OK
