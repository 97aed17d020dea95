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
from .model import (
    TLS,
    AcceptMode,
    H2Settings,
    Keepalive,
    Limits,
    Listener,
    Protocol,
    ProxyProtocol,
    Response,
    Schedule,
)
from .nodes import MapNode, Node, ScalarNode, SeqNode, describe, is_null, non_null
from .rule import check_rules
from .schedule import check_schedule
from .tls import check_tls
from .upstream import UPSTREAM_KEYS, check_forward_rules, check_upstream
from .values import KindCheck, build, check_count, check_keyed

__all__ = [
    "H2_KEYS",
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
    "tls",
    "proxy_protocol",
    "protocols",
    "h2",
    *UPSTREAM_KEYS,
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
    "grpc": Key(ValueKind.GRPC, "grpc", nullable=True),
}
KEEPALIVE_KEYS: Mapping[str, Key] = {
    "idle_close": Key(ValueKind.TIMING, "idle_close", nullable=True),
    "max_requests": Key(ValueKind.COUNT, "max_requests", nullable=True),
}
H2_KEYS: Mapping[str, Key] = {
    "max_concurrent_streams": Key(ValueKind.COUNT, "max_concurrent_streams", nullable=True),
    "initial_window_size": Key(ValueKind.SIZE, "initial_window_size", nullable=True),
    "max_frame_size": Key(ValueKind.POSITIVE_SIZE, "max_frame_size", nullable=True),
    "header_table_size": Key(ValueKind.SIZE, "header_table_size", nullable=True),
    "flow_stall": Key(ValueKind.BOOLEAN, "flow_stall"),
    "ping_ack": Key(ValueKind.BOOLEAN, "ping_ack"),
}
#: What RFC 9113 allows a SETTINGS value to be (section 6.5.2).
H2_LIMITS = {
    "initial_window_size": (0, 2**31 - 1),
    "max_frame_size": (2**14, 2**24 - 1),
    "header_table_size": (0, 2**32 - 1),
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
    if "proxy_protocol" in fields:
        given["proxy_protocol"] = c.member(
            fields["proxy_protocol"], f"{path}.proxy_protocol", list(ProxyProtocol), "proxy_protocol value"
        )
    if "protocols" in fields:
        given["protocols"] = _check_protocols(c, fields["protocols"], f"{path}.protocols")
    if "backlog" in fields:
        given["backlog"] = c.integer(fields["backlog"], f"{path}.backlog", 0, MAX_BACKLOG)
    if (limit := non_null(fields, "max_connections")) is not None:
        given["max_connections"] = check_count(c, limit, f"{path}.max_connections")
    for key, check in _PARTS.items():
        if key in fields:
            given[key] = check(c, fields[key], f"{path}.{key}")
    if given.get("tls") is None and "tls" not in fields:
        _check_no_handshake_rules(c, fields, path)
    given |= check_upstream(c, fields, path)
    if "upstream" not in given and "upstream" not in fields:
        check_forward_rules(c, fields, path)
    tls = given.get("tls")
    _check_alpn_served(c, fields, tls, given.get("protocols"), path)
    schedule = given.get("schedule")
    if isinstance(schedule, Schedule) and not (isinstance(tls, TLS) and tls.generate):
        _check_no_phase_certificates(c, fields, schedule, path)
    if not c.clean_since(mark) or name is None or address is None:
        return None
    host, port = address
    return build(Listener, {"name": name, "host": host, "port": port, **given})


def _check_no_handshake_rules(c: Checker, fields: Mapping[str, Node], path: str) -> None:
    """`at: handshake` belongs to a TLS listener: on any other there is no handshake."""
    places: list[tuple[Node, str]] = []
    if isinstance(fields.get("rules"), SeqNode):
        places += [(fields["rules"], f"{path}.rules")]
    schedule = fields.get("schedule")
    phases = schedule.entries.get("phases") if isinstance(schedule, MapNode) else None
    if phases is not None and isinstance(phases[1], SeqNode):
        for i, phase in enumerate(phases[1].items):
            entry = phase.entries.get("rules") if isinstance(phase, MapNode) else None
            if entry is not None and isinstance(entry[1], SeqNode):
                places.append((entry[1], f"{path}.schedule.phases[{i}].rules"))
    for rules, rules_path in places:
        assert isinstance(rules, SeqNode)
        for i, rule in enumerate(rules.items):
            at = rule.entries.get("at") if isinstance(rule, MapNode) else None
            if at is not None and isinstance(at[1], ScalarNode) and str(at[1].value).lower() == "handshake":
                c.problem(
                    at[1],
                    f"{rules_path}[{i}].at",
                    "at: handshake needs a TLS listener (this listener has no 'tls')",
                )


def _check_protocols(c: Checker, node: Node, path: str) -> tuple[Protocol, ...] | None:
    """`[http/1.1, h2]`: what the listener speaks (h2: by prior knowledge, or ALPN over TLS)."""
    items = node.items if isinstance(node, SeqNode) else None
    if not items:
        c.problem(node, path, f"expected a non-empty list such as [http/1.1, h2], got {describe(node)}")
        return None
    mark = c.mark()
    chosen = [c.member(item, f"{path}[{i}]", list(Protocol), "protocol") for i, item in enumerate(items)]
    if not c.clean_since(mark):
        return None
    return tuple(dict.fromkeys(p for p in chosen if p is not None))


def _check_h2(c: Checker, node: Node, path: str) -> H2Settings | None:
    settings = check_keyed(c, node, path, H2_KEYS, H2Settings)
    if settings is None or not isinstance(node, MapNode):
        return settings
    for key, (low, high) in H2_LIMITS.items():
        value = getattr(settings, key)
        if value is not None and not low <= value <= high:
            message = f"expected {low} to {high} (RFC 9113), got {value}"
            c.problem(node.entries[key][1], f"{path}.{key}", message)
            return None
    return settings


def _check_alpn_served(
    c: Checker, fields: Mapping[str, Node], tls: object, protocols: object, path: str
) -> None:
    """A TLS listener offers by ALPN only what it speaks: `h2` needs `protocols` to have it."""
    if not isinstance(tls, TLS) or Protocol.H2.value not in tls.alpn:
        return
    if isinstance(protocols, tuple) and Protocol.H2 in protocols:
        return
    tls_node = fields["tls"]
    where = tls_node
    if isinstance(tls_node, MapNode) and "alpn" in tls_node.entries:
        where = tls_node.entries["alpn"][1]
    message = "h2 is offered by ALPN only on a listener with protocols: [..., h2]"
    c.problem(where, f"{path}.tls.alpn", message)


def _check_no_phase_certificates(
    c: Checker, fields: Mapping[str, Node], schedule: Schedule, path: str
) -> None:
    """A phase's `tls.certificate` switches a generated certificate: a listener without one
    has nothing to switch."""
    phases = fields["schedule"].entries["phases"][1] if isinstance(fields["schedule"], MapNode) else None
    for i, phase in enumerate(schedule.phases):
        if phase.certificate is None or not isinstance(phases, SeqNode):
            continue
        item = phases.items[i]
        where = item.entries["tls"][0] if isinstance(item, MapNode) and "tls" in item.entries else item
        c.problem(
            where,
            f"{path}.schedule.phases[{i}].tls",
            "a phase can switch certificates only on a listener with tls: {generate: true}",
        )


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
    "tls": check_tls,
    "h2": _check_h2,
}
