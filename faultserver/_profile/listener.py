"""`listeners`: each listener's own keys, and its `response`, `keepalive` and `limits`.

The three sub-mappings are tables of keys (`RESPONSE_KEYS`, `KEEPALIVE_KEYS`, `LIMITS_KEYS`),
read by `values.check_keyed` and turned into JSON Schema by `schema.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .binds import Binds
from .check import Checker, check_each
from .keys import Key, ValueKind
from .model import AcceptMode, Keepalive, Limits, Listener, Response
from .nodes import MapNode, Node, ScalarNode, SeqNode, describe, is_null, non_null
from .rule import check_rules
from .schedule import check_schedule
from .values import KindCheck, build, check_count, check_keyed

__all__ = [
    "KEEPALIVE_KEYS",
    "LIMITS_KEYS",
    "LISTENER_KEYS",
    "NAME",
    "RESPONSE_KEYS",
    "check_listeners",
]

LISTENER_KEYS = (
    "name",
    "bind",
    "accept",
    "backlog",
    "max_connections",
    "response",
    "keepalive",
    "rules",
    "schedule",
    "limits",
)
#: A listener's name: it appears in URLs of the admin API, events and metrics labels.
NAME = re.compile(r"[a-z0-9_-]+")
#: The kernel's accept queue is at most this long (and capped by net.core.somaxconn).
MAX_BACKLOG = 65535

RESPONSE_KEYS: Mapping[str, Key] = {
    "status": Key(ValueKind.STATUS, "status"),
    "headers": Key(ValueKind.HEADERS, "headers", nullable=True),
    "body": Key(ValueKind.BODY, "body", nullable=True),
    "framing": Key(ValueKind.FRAMING, "framing"),
}
KEEPALIVE_KEYS: Mapping[str, Key] = {
    "idle_close": Key(ValueKind.TIMING, "idle_close", nullable=True),
    "max_requests": Key(ValueKind.COUNT, "max_requests", nullable=True),
}
LIMITS_KEYS: Mapping[str, Key] = {
    "header_timeout": Key(ValueKind.POSITIVE_DURATION, "header_timeout_s"),
    "max_header_bytes": Key(ValueKind.POSITIVE_SIZE, "max_header_bytes"),
    "max_body_bytes": Key(ValueKind.SIZE, "max_body_bytes"),
    "max_fault_header_bytes": Key(ValueKind.SIZE, "max_fault_header_bytes"),
}


def check_listeners(c: Checker, node: Node, path: str, binds: Binds) -> tuple[Listener, ...] | None:
    """One or more listeners, with unique names."""
    if not isinstance(node, SeqNode) or not node.items:
        message = f"expected a list of one or more listeners, got {describe(node)}"
        c.problem(node, path, message)
        return None
    names: dict[str, str] = {}

    def check(item: Node, item_path: str, _: int) -> Listener | None:
        listener = check_listener(c, item, item_path, binds)
        _check_unique_name(c, item, item_path, names)
        return listener

    return check_each(c, node, path, check)


def _check_unique_name(c: Checker, item: Node, path: str, names: dict[str, str]) -> None:
    if not isinstance(item, MapNode) or "name" not in item.entries:
        return
    name_node = item.entries["name"][1]
    name = name_node.value if isinstance(name_node, ScalarNode) else None
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        return
    if name in names:
        message = f"duplicate listener name {name!r} (also {names[name]})"
        c.problem(name_node, f"{path}.name", message)
    else:
        names[name] = path


def check_listener(c: Checker, node: Node, path: str, binds: Binds) -> Listener | None:
    mark = c.mark()
    fields = c.fields(node, path, LISTENER_KEYS, required=("name", "bind"))
    if fields is None:
        return None
    name = _check_name(c, fields["name"], f"{path}.name") if "name" in fields else None
    address = binds.read(c, fields["bind"], path) if "bind" in fields else None
    given: dict[str, object] = {}
    if "accept" in fields:
        accept_path = f"{path}.accept"
        given["accept"] = c.member(fields["accept"], accept_path, list(AcceptMode), "accept mode")
    if "backlog" in fields:
        given["backlog"] = c.integer(fields["backlog"], f"{path}.backlog", 0, MAX_BACKLOG)
    if (limit := non_null(fields, "max_connections")) is not None:
        given["max_connections"] = check_count(c, limit, f"{path}.max_connections")
    for key, check in _PARTS.items():
        if key in fields:
            given[key] = check(c, fields[key], f"{path}.{key}")
    if not c.clean_since(mark) or name is None or address is None:
        return None
    host, port = address
    return build(Listener, {"name": name, "host": host, "port": port, **given})


def _check_name(c: Checker, node: Node, path: str) -> str | None:
    name = c.string(node, path, "a name of [a-z0-9_-]")
    if name is not None and NAME.fullmatch(name) is None:
        c.problem(
            node,
            path,
            "expected a name of lower-case letters, digits, '_' and '-', "
            f"got {describe(node)}",
        )
        return None
    return name


#: The parts of a listener that are sections of their own, in the order they are checked.
_PARTS: Mapping[str, KindCheck] = {
    "response": lambda c, node, path: check_keyed(c, node, path, RESPONSE_KEYS, Response),
    "keepalive": lambda c, node, path: check_keyed(c, node, path, KEEPALIVE_KEYS, Keepalive),
    "rules": check_rules,
    "schedule": lambda c, node, path: None if is_null(node) else check_schedule(c, node, path),
    "limits": lambda c, node, path: check_keyed(c, node, path, LIMITS_KEYS, Limits),
}
