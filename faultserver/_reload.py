"""What a reload changes: which listeners keep their socket, which are added, which go.

Pure: the plan is computed from the listeners in force and the new profile, with no
socket and no event loop, so `Server.load` only carries it out. A listener is kept
when the new profile has a listener of the same name on the same address: the same
host, and the same port, or port 0 ("any port", so the one in force will do), or the
port it was configured with.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from ._profile.model import Listener, Profile

__all__ = ["Change", "InForce", "ReloadCause", "ReloadPlan", "plan_reload"]


class ReloadCause(str, enum.Enum):
    """Who asked for a reload (the `cause` of `reload` events and log lines)."""

    API = "api"
    SIGHUP = "sighup"
    RELOAD = "reload"  # the Python handle's load()
    WATCH = "watch"  # `run --watch`: the profile's file changed


class Change(str, enum.Enum):
    """What a reload did to one listener (the `change` field of `reload` events)."""

    KEPT = "kept"
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class InForce:
    """A listener in force, as the plan needs to know it."""

    name: str
    host: str
    port: int  # the port bound (never 0)
    configured_port: int  # the port its profile asked for (0: any)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """`kept` and `added` carry the new profile's configs; `removed` names the listeners that go."""

    kept: tuple[Listener, ...]
    added: tuple[Listener, ...]
    removed: tuple[str, ...]

    def changes(self) -> dict[str, Change]:
        """Each listener's change: removed first, then kept, then added (the order applied)."""
        out = {name: Change.REMOVED for name in self.removed}
        out.update((config.name, Change.KEPT) for config in self.kept)
        out.update((config.name, Change.ADDED) for config in self.added)
        return out


def plan_reload(in_force: Iterable[InForce], profile: Profile) -> ReloadPlan:
    """The plan that puts `profile` in force over the listeners `in_force`."""
    new_configs = {config.name: config for config in profile.listeners}
    kept: list[Listener] = []
    removed: list[str] = []
    for current in in_force:
        config = new_configs.get(current.name)
        if config is not None and _same_address(current, config):
            kept.append(config)
        else:
            removed.append(current.name)
    kept_names = {config.name for config in kept}
    added = tuple(config for config in profile.listeners if config.name not in kept_names)
    return ReloadPlan(tuple(kept), added, tuple(removed))


def _same_address(current: InForce, config: Listener) -> bool:
    return config.host == current.host and config.port in (0, current.port, current.configured_port)
