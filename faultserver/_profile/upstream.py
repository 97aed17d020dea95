"""Proxy mode: a listener's `upstream` and the keys that go with it, and `forward`'s `then`.

A listener with `upstream: http://HOST:PORT` forwards the requests that no rule stops. The
keys that tune forwarding (`upstream_timeouts`, `upstream_failure`, `pool`, `host`, `via`)
mean nothing without it, so each of them alone is a problem, as is a rule `action: forward`
on a listener that has no upstream.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from .build import Builder
from .check import Checker
from .keys import Key, ValueKind
from .model import Profile, Protocol, Upstream, UpstreamFailure, UpstreamHost
from .nodes import MapNode, Node, ScalarNode, SeqNode, describe, is_null
from .tls import check_ca_file
from .values import read_keys

__all__ = [
    "POOL_KEYS",
    "UPSTREAM_KEYS",
    "UPSTREAM_TIMEOUT_KEYS",
    "check_forward_rules",
    "check_upstream",
    "with_upstream",
]

#: A listener's keys for proxy mode, `upstream` first: the others need it.
UPSTREAM_KEYS = (
    "upstream",
    "upstream_tls",
    "upstream_timeouts",
    "upstream_failure",
    "pool",
    "host",
    "via",
)
#: `upstream_tls`'s keys (an `https://` upstream only).
UPSTREAM_TLS_KEYS = ("ca", "verify", "sni")
UPSTREAM_TIMEOUT_KEYS: Mapping[str, Key] = {
    "connect": Key(ValueKind.POSITIVE_DURATION, "connect_timeout_s"),
    "read": Key(ValueKind.POSITIVE_DURATION, "read_timeout_s"),
}
POOL_KEYS: Mapping[str, Key] = {
    "max_connections": Key(ValueKind.COUNT, "pool_max_connections"),
    "idle_timeout": Key(ValueKind.DURATION, "pool_idle_timeout_s"),
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_upstream(c: Checker, fields: Mapping[str, Node], path: str) -> dict[str, object]:
    """The listener fields for proxy mode (`{"upstream": Upstream}`, or nothing)."""
    given = [key for key in UPSTREAM_KEYS if key in fields]
    if not given:
        return {}
    if "upstream" not in fields or is_null(fields["upstream"]):
        for key in given:
            if key != "upstream":
                c.problem(fields[key], f"{path}.{key}", f"{key!r} needs 'upstream' on the listener")
        return {}
    mark = c.mark()
    values: dict[str, object] = {}
    address = _check_url(c, fields["upstream"], f"{path}.upstream")
    if "upstream_timeouts" in fields:
        timeouts_path = f"{path}.upstream_timeouts"
        values |= _keyed(c, fields["upstream_timeouts"], timeouts_path, UPSTREAM_TIMEOUT_KEYS)
    if "upstream_tls" in fields and not is_null(fields["upstream_tls"]):
        values |= _check_upstream_tls(c, fields["upstream_tls"], f"{path}.upstream_tls", fields["upstream"])
    if "upstream_failure" in fields:
        failure = c.member(
            fields["upstream_failure"], f"{path}.upstream_failure", list(UpstreamFailure), "upstream_failure"
        )
        values["failure"] = failure
    if "pool" in fields:
        values |= _keyed(c, fields["pool"], f"{path}.pool", POOL_KEYS)
    if "host" in fields:
        values["host_header"] = c.member(fields["host"], f"{path}.host", list(UpstreamHost), "host value")
    if "via" in fields and not is_null(fields["via"]):
        via = c.string(fields["via"], f"{path}.via", "a Via pseudonym (a string)")
        if via is not None and (not via or not all(33 <= ord(ch) < 127 for ch in via)):
            c.problem(fields["via"], f"{path}.via", f"expected a pseudonym of visible ASCII, got {via!r}")
        values["via"] = via
    if "protocols" in fields and isinstance(fields["protocols"], SeqNode):
        spoken = [item.value for item in fields["protocols"].items if isinstance(item, ScalarNode)]
        if Protocol.H2.value in spoken:
            c.problem(
                fields["protocols"], f"{path}.protocols", "a listener with 'upstream' speaks http/1.1 only"
            )
    if not c.clean_since(mark) or address is None:
        return {}
    scheme, host, port = address
    return {"upstream": Upstream(host=host, port=port, scheme=scheme, **values)}  # type: ignore[arg-type]


def _check_upstream_tls(c: Checker, node: Node, path: str, url: Node) -> dict[str, object]:
    """`{ca: PATH, verify: BOOL, sni: NAME}`, for an `https://` upstream only."""
    text = url.value if isinstance(url, ScalarNode) else None
    if not (isinstance(text, str) and text.lower().startswith("https://")):
        c.problem(node, path, "'upstream_tls' needs an https:// upstream")
        return {}
    found = c.fields(node, path, UPSTREAM_TLS_KEYS)
    if found is None:
        return {}
    values: dict[str, object] = {}
    if "ca" in found:
        values["tls_ca_path"] = check_ca_file(c, found["ca"], f"{path}.ca")
    if "verify" in found:
        values["tls_verify"] = c.boolean(found["verify"], f"{path}.verify")
    if "sni" in found and not is_null(found["sni"]):
        sni = c.string(found["sni"], f"{path}.sni", "a server name")
        if sni is not None and (not sni or any(ch.isspace() or not ch.isprintable() for ch in sni)):
            c.problem(found["sni"], f"{path}.sni", f"expected a server name, got {sni!r}")
        values["tls_sni"] = sni
    return values


def _keyed(c: Checker, node: Node, path: str, keys: Mapping[str, Key]) -> dict[str, object]:
    if is_null(node):
        return {}
    found = c.fields(node, path, tuple(keys))
    return {} if found is None else read_keys(c, found, keys, path)


def _check_url(c: Checker, node: Node, path: str) -> tuple[str, str, int] | None:
    """`http://HOST[:PORT]` or `https://...` (a trailing `/` allowed): scheme, host, port."""
    text = node.value if isinstance(node, ScalarNode) else None
    if not isinstance(text, str):
        c.problem(node, path, f"expected a URL such as http://127.0.0.1:8000, got {describe(node)}")
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        c.problem(node, path, f"expected a URL such as http://127.0.0.1:8000, got {text!r} ({exc})")
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        shown = f"{scheme!r}" if scheme else "none"
        message = f"expected a URL with scheme http or https (http://HOST:PORT), got {shown} in {text!r}"
        c.problem(node, path, message)
        return None
    host = parts.hostname
    if not host:
        c.problem(node, path, f"expected a URL with a host (http://HOST:PORT), got {text!r}")
        return None
    if parts.username is not None or parts.query or parts.fragment or parts.path not in ("", "/"):
        c.problem(node, path, f"expected only a scheme, host and port (http://HOST:PORT), got {text!r}")
        return None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            c.problem(node, path, f"expected an IPv6 address in brackets, got {host!r}")
            return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def check_forward_rules(c: Checker, fields: Mapping[str, Node], path: str) -> None:
    """`action: forward` needs somewhere to forward to: the listener's `upstream`."""
    for rules, rules_path in _rule_lists(fields, path):
        for i, rule in enumerate(rules.items):
            action = rule.entries.get("action") if isinstance(rule, MapNode) else None
            if action is None or not isinstance(action[1], ScalarNode):
                continue
            if str(action[1].value).lower() == "forward":
                message = "action 'forward' needs 'upstream' on the listener (http://HOST:PORT)"
                c.problem(action[1], f"{rules_path}[{i}].action", message)


def _rule_lists(fields: Mapping[str, Node], path: str) -> list[tuple[SeqNode, str]]:
    """The listener's `rules`, and each schedule phase's."""
    found: list[tuple[SeqNode, str]] = []
    rules = fields.get("rules")
    if isinstance(rules, SeqNode):
        found.append((rules, f"{path}.rules"))
    schedule = fields.get("schedule")
    phases = schedule.entries.get("phases") if isinstance(schedule, MapNode) else None
    if phases is not None and isinstance(phases[1], SeqNode):
        for i, phase in enumerate(phases[1].items):
            entry = phase.entries.get("rules") if isinstance(phase, MapNode) else None
            if entry is not None and isinstance(entry[1], SeqNode):
                found.append((entry[1], f"{path}.schedule.phases[{i}].rules"))
    return found


def with_upstream(profile: Profile, url: str) -> Profile:
    """`profile` with `url` as the upstream of every listener that has none (the fixture's
    `upstream=`); a bad URL is a `ProfileError` located at `<upstream>`."""
    builder = Builder("<upstream>")
    node = builder.from_data(url)
    checker = Checker("<upstream>", builder.problems)
    address = _check_url(checker, node, "upstream") if node is not None else None
    checker.raise_if_any()
    assert address is not None
    scheme, host, port = address
    upstream = Upstream(host=host, port=port, scheme=scheme)
    listeners = tuple(
        listener if listener.upstream is not None else dataclasses.replace(listener, upstream=upstream)
        for listener in profile.listeners
    )
    raw = profile.raw
    if isinstance(raw, dict) and isinstance(raw.get("listeners"), list):
        # GET /profile shows the profile in force
        items = [
            {**item, "upstream": url} if isinstance(item, dict) and not item.get("upstream") else item
            for item in raw["listeners"]
        ]
        raw = {**raw, "listeners": items}
    return dataclasses.replace(profile, listeners=listeners, raw=raw)
