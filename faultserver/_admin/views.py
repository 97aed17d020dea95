"""The JSON shapes of listeners (`GET /listeners`, the handle's `info()`) and of what is in
force (`GET /state`, the handle's `state()`); no Quart here."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from typing import TYPE_CHECKING, Any, Protocol

from .._profile.model import Profile, Rule
from .._wire.listener import ListenerRuntime

if TYPE_CHECKING:
    from .._in_force import ListenerInForce

__all__ = ["StateSource", "listener_view", "plain", "profile_sha256", "rule_view", "state_view"]


class StateSource(Protocol):
    """What `state_view` reads from a server."""

    @property
    def profile(self) -> Profile: ...

    @property
    def loaded_at(self) -> float: ...

    @property
    def loaded_cause(self) -> str: ...

    @property
    def schedule_paused(self) -> bool: ...

    def in_force(self) -> list[ListenerInForce]: ...


def listener_view(rt: ListenerRuntime) -> dict[str, Any]:
    """One listener as `GET /listeners` shows it (the README, plus a few counters)."""
    stats = rt.stats
    return {
        "name": rt.name,
        "url": rt.url,
        "bind": rt.config.bind,
        "accept": rt.mode.value,
        "open_connections": stats.open_connections,
        "peak_connections": stats.peak_connections,
        "connections": stats.connections,
        "requests": stats.requests,
        "in_flight": stats.in_flight,
        "faults": stats.faults_by_action(),
        "delayed": stats.delayed_by_action(),
        "retries": stats.retries,
        "repeats": stats.repeats,
        # a TLS listener's versions, ALPN, CA file and the certificate in force (None: plain TCP)
        "tls": rt.tls.describe() if rt.tls is not None else None,
    }


def plain(value: Any) -> Any:
    """A profile value (dataclasses, enums, tuples) as JSON-able data; a dataclass shows the
    fields that differ from their defaults, so a rule reads as it would be written."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.name.startswith("_"):
                continue
            item = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and item == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and item == f.default_factory():
                continue
            out[f.name] = plain(item)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (frozenset, set)):
        return sorted(plain(v) for v in value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def rule_view(rule: Rule) -> dict[str, Any]:
    """A rule in force: its name, action (with the action's keys) and conditions."""
    view: dict[str, Any] = plain(rule)
    view["name"] = rule.name
    view["action"] = {"name": rule.action.name.value, **plain(rule.action)}
    return view


def state_view(server: StateSource) -> dict[str, Any]:
    """`GET /state`: what is in force now and why (call in the server's Trio thread)."""
    profile = server.profile
    listeners = []
    for item in server.in_force():
        rt = item.rt
        schedule = None
        if item.schedule is not None:
            status = item.schedule
            schedule = {
                "phase": status.phase,
                "phases": status.phases,
                "cycle": status.cycle,
                "next_in_s": None if status.next_in_s is None else round(status.next_in_s, 3),
                "paused": status.paused,
                "ended": status.ended,
                "repeat": status.repeat,
            }
        listeners.append({
            "name": rt.name,
            "url": rt.url,
            "accept": rt.mode.value,
            "accept_cause": item.mode_cause,
            "rules": [rule_view(rule) for rule in rt.rules.rules],
            "rules_cause": item.rules_cause,
            "schedule": schedule,
        })
    return {
        "profile": {
            "source": profile.source,
            "sha256": profile_sha256(profile),
            "loaded_at": server.loaded_at,
            "cause": server.loaded_cause,
        },
        "schedule": {"paused": server.schedule_paused},
        "listeners": listeners,
    }


def profile_sha256(profile: Profile) -> str:
    """A hash of the profile's document (canonical JSON), the same for the same profile
    whatever its file's spacing: replicas given the same ConfigMap show the same hash."""
    text = json.dumps(profile.raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
