"""`faultserver run`'s settings from flags and from the environment (containers set the
environment), and the `--bind`/`--port` overrides applied to a profile.

Each setting has a flag and an environment variable (`ENVIRONMENT`, also listed in the
README); a flag given wins over its variable, and an empty variable counts as unset.
`--bind` and `--port` are per listener: `FAULTSERVER_BIND` gives some, the flags may give
others, and for a listener named in both the flag wins.

Everything here is pure: the arguments and a mapping of the environment in, `RunOptions`
or a `UsageError` (one line, naming the flag or the variable) out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._address import AddressError, format_hostport, parse_hostport
from ._errors import UsageError
from ._profile.model import Profile

__all__ = [
    "ENVIRONMENT",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "BindOverride",
    "apply_binds",
    "choice",
    "env_flag",
    "parse_bind",
    "parse_port",
    "resolve_binds",
    "setting",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")

#: flag -> (environment variable, what it holds): the README's table is this one.
ENVIRONMENT: Mapping[str, tuple[str, str]] = {
    "--control": ("FAULTSERVER_CONTROL", "the admin API's HOST:PORT"),
    "--events": ("FAULTSERVER_EVENTS", "a file to append every event to, as JSON lines"),
    "--log-level": ("FAULTSERVER_LOG_LEVEL", "debug, info (default), warning or error"),
    "--log-format": ("FAULTSERVER_LOG_FORMAT", "text (default) or json: one JSON object per line"),
    "--max-duration": ("FAULTSERVER_MAX_DURATION", "stop after this long (10m)"),
    "--watch": ("FAULTSERVER_WATCH", "1/true/yes/on: reload the profile when its file changes"),
    "--bind": ("FAULTSERVER_BIND", "NAME=HOST:PORT overrides, separated by spaces or commas"),
    "--port": ("FAULTSERVER_PORT", "NAME=PORT overrides, separated by spaces or commas"),
    "--allow-any-bind": ("FAULTSERVER_ALLOW_ANY_BIND", "1/true/yes/on: as the flag"),
    "--ca-dir": ("FAULTSERVER_CA_DIR", "where generated TLS CAs are written"),
    "--workers": ("FAULTSERVER_WORKERS", "data-plane processes on the same ports: N or auto (default 1)"),
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def setting(flag: str, given: str | None, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """A setting's text and where it came from (the flag, or its variable; `given` wins)."""
    if given is not None:
        return given, flag
    variable = ENVIRONMENT[flag][0]
    value = environ.get(variable, "").strip()
    return (value or None), variable


def env_flag(flag: str, given: bool, environ: Mapping[str, str]) -> bool:
    """A switch: True when given, else what its variable says (`1`, `true`, `yes`, `on`)."""
    if given:
        return True
    variable = ENVIRONMENT[flag][0]
    value = environ.get(variable, "").strip().lower()
    if not value or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise UsageError(f"{variable}: expected 1, true, yes or on (0, false, no, off), got {value!r}")


def choice(
    flag: str, given: str | None, environ: Mapping[str, str], choices: Sequence[str], default: str
) -> str:
    """A setting from a closed set (any case), flag first, then variable, then `default`."""
    value, where = setting(flag, given, environ)
    if value is None:
        return default
    if value.lower() not in choices:
        raise UsageError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value.lower()


@dataclass(frozen=True, slots=True)
class BindOverride:
    """`--bind NAME=HOST:PORT` (host and port) or `--port NAME=PORT` (host None: as in the profile)."""

    name: str
    host: str | None
    port: int

    def __str__(self) -> str:
        if self.host is None:
            return f"{self.name}={self.port}"
        return f"{self.name}={format_hostport(self.host, self.port)}"


def _split_name(text: str, where: str, expected: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not _NAME.fullmatch(name):
        raise UsageError(f"{where}: expected {expected}, got {text!r}")
    return name, value


def parse_bind(text: str, where: str = "--bind") -> BindOverride:
    """`NAME=HOST:PORT`: the listener NAME binds there instead."""
    name, value = _split_name(text, where, "NAME=HOST:PORT such as backend=0.0.0.0:8080")
    try:
        host, port = parse_hostport(value)
    except AddressError as exc:
        raise UsageError(f"{where}: {name}: {exc}") from None
    return BindOverride(name, host, port)


def parse_port(text: str, where: str = "--port") -> BindOverride:
    """`NAME=PORT`: the listener NAME binds its profile's host on PORT (0: a free port)."""
    name, value = _split_name(text, where, "NAME=PORT such as backend=9090")
    if not value.isascii() or not value.isdigit() or int(value[:6]) > 65535:
        raise UsageError(f"{where}: {name}: expected a port from 0 to 65535, got {value!r}")
    return BindOverride(name, None, int(value))


def resolve_binds(
    binds: Sequence[str], ports: Sequence[str], environ: Mapping[str, str]
) -> tuple[BindOverride, ...]:
    """Every override, from the variables first, then the flags (a flag wins for its listener).
    `--port` after `--bind` for the same listener changes only the port."""
    found: dict[str, BindOverride] = {}

    def add(item: BindOverride) -> None:
        before = found.get(item.name)
        if item.host is None and before is not None and before.host is not None:
            found[item.name] = BindOverride(item.name, before.host, item.port)
        else:
            found[item.name] = item

    for flag, parse, given in (("--bind", parse_bind, binds), ("--port", parse_port, ports)):
        variable = ENVIRONMENT[flag][0]
        named_by_flag = {parse(text, flag).name for text in given}
        for text in re.split(r"[\s,]+", environ.get(variable, "").strip()):
            if text:
                item = parse(text, variable)
                if item.name not in named_by_flag:
                    add(item)
    for text in binds:
        add(parse_bind(text))
    for text in ports:
        add(parse_port(text))
    return tuple(found.values())


def apply_binds(profile: Profile, overrides: Sequence[BindOverride]) -> Profile:
    """`profile` with the overrides' binds (and its document saying so, for `GET /profile`).
    A name that is no listener's is a UsageError naming the listeners."""
    if not overrides:
        return profile
    names = [listener.name for listener in profile.listeners]
    by_name = {item.name: item for item in overrides}
    for item in overrides:
        if item.name not in names:
            raise UsageError(
                f"--bind/--port: no listener named {item.name!r} in {profile.source} "
                f"(listeners: {', '.join(names)})"
            )
    listeners = []
    for listener in profile.listeners:
        override = by_name.get(listener.name)
        if override is not None:
            listener = dataclasses.replace(
                listener, host=override.host or listener.host, port=override.port
            )
        listeners.append(listener)
    raw = profile.raw
    if isinstance(raw, dict) and isinstance(raw.get("listeners"), list):
        binds = {listener.name: listener.bind for listener in listeners}
        raw = {**raw, "listeners": [
            {**entry, "bind": binds[entry["name"]]}
            if isinstance(entry, dict) and entry.get("name") in by_name else entry
            for entry in raw["listeners"]
        ]}
    return dataclasses.replace(profile, listeners=tuple(listeners), raw=raw)
