"""Binds (`host:port`): each one read where it stands, then all of them checked together.

A listener's `bind` and `control.bind` are read by `_address.parse_hostport`, the one parser
of `host:port` that the CLI and the admin API use too. Two binds clash when they share a port
(other than 0) and their hosts are equal, or one of them is the wildcard of its family.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .._address import EXPECTED, AddressError, format_hostport, parse_hostport
from .check import Checker
from .describe import describe_value
from .nodes import Node, ScalarNode, describe

__all__ = ["Binds"]


@dataclass(frozen=True, slots=True)
class _Bind:
    host: str
    port: int
    #: the path of what owns it: `listeners[0]`, `control`
    owner: str
    node: Node


@dataclass(slots=True)
class Binds:
    """The valid binds of one document, in the order they were read."""

    _binds: list[_Bind] = field(default_factory=list)

    def read(self, c: Checker, node: Node, owner: str) -> tuple[str, int] | None:
        """`(host, port)` of `owner.bind`, remembered for `check_clashes`; None on a problem."""
        path = f"{owner}.bind" if owner else "bind"
        value = node.value if isinstance(node, ScalarNode) else None
        if not isinstance(value, str):
            c.problem(node, path, f"{EXPECTED}, got {describe(node)}")
            return None
        try:
            host, port = parse_hostport(value)
        except AddressError as exc:
            c.problem(node, path, f"{exc.expected}, got {describe_value(exc.got)}")
            return None
        self._binds.append(_Bind(host, port, owner, node))
        return host, port

    def check_clashes(self, c: Checker) -> None:
        """No two binds on one port, unless the port is 0."""
        for i, bind in enumerate(self._binds):
            if bind.port == 0:
                continue
            for other in self._binds[:i]:
                message = _clash(bind, other)
                if message is not None:
                    c.problem(bind.node, f"{bind.owner}.bind", message)
                    break


def _clash(bind: _Bind, other: _Bind) -> str | None:
    if other.port != bind.port:
        return None
    shown = format_hostport(bind.host, bind.port)
    if bind.host == other.host:
        return f"duplicate bind {shown!r} (also {other.owner})"
    if _overlaps(bind.host, other.host):
        return f"bind {shown!r} overlaps {format_hostport(other.host, other.port)!r} of {other.owner}"
    return None


def _overlaps(host: str, other: str) -> bool:
    """Whether two different hosts on one port clash: one of them is the wildcard."""
    a, b = ipaddress.ip_address(host), ipaddress.ip_address(other)
    return a.version == b.version and (a.is_unspecified or b.is_unspecified)
