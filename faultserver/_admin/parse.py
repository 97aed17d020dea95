"""Request bodies and query parameters, read into the values `Server` takes, once.

Every function raises a `UsageError` (400) or a `ProfileError` (400 with the problems)
saying what was expected and what arrived; the edge turns them into answers. JSON is
parsed with a depth limit: a body of a million `[` would otherwise end in RecursionError.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._choices import parse_accept, parse_how
from .._errors import ProfileError, UsageError
from .._events import EventFilter
from .._profile.model import AcceptMode, CertificateMode, CloseHow, Profile, Rule

__all__ = [
    "EVENT_FIELDS",
    "MAX_JSON_DEPTH",
    "EventQuery",
    "check_query",
    "drop_request",
    "events_query",
    "json_body",
    "listener_update",
    "profile_body",
    "query_count",
    "reload_request",
    "show",
]

#: JSON bodies nested deeper than this are refused (a profile's rules need about 6).
MAX_JSON_DEPTH = 32
#: A value quoted in a message is cut to this many characters.
SHOWN_CHARS = 80


def show(value: object) -> str:
    """A JSON value as the caller wrote it, cut for a one-line message."""
    text = json.dumps(value, default=str)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def json_body(raw: bytes) -> Any:
    """The JSON document in `raw` (an empty body is `{}`)."""
    if not raw.strip():
        return {}
    too_deep = UsageError(f"body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise UsageError(f"body is not valid JSON: {exc}") from None
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise too_deep
    return data


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


@dataclass(frozen=True, slots=True)
class ListenerUpdate:
    """What a `PATCH /listeners/NAME` asks for (None: leave it as it is)."""

    accept: AcceptMode | None = None
    rules: tuple[Rule, ...] | None = None
    certificate: CertificateMode | None = None


def listener_update(body: Any, listener: str) -> ListenerUpdate:
    """`PATCH /listeners/NAME`: `{"accept": MODE}`, `{"rules": [...]}` and/or
    `{"tls": {"certificate": MODE}}`, each checked."""
    if not isinstance(body, dict) or not body:
        raise UsageError("expected a JSON object with 'accept', 'rules' and/or 'tls'")
    unknown = sorted(set(body) - {"accept", "rules", "tls"})
    if unknown:
        raise UsageError(
            f"unknown key {unknown[0][:SHOWN_CHARS]!r} (expected 'accept', 'rules' and/or 'tls')"
        )
    accept = parse_accept(body["accept"], show) if "accept" in body else None
    rules = _rules(body["rules"], listener) if "rules" in body else None
    certificate = _certificate(body["tls"]) if "tls" in body else None
    return ListenerUpdate(accept, rules, certificate)


def _certificate(tls: Any) -> CertificateMode:
    """`{"certificate": MODE}`: the certificate a generated TLS listener shows from now on."""
    if not isinstance(tls, dict) or set(tls) != {"certificate"}:
        raise UsageError('tls: expected {"certificate": MODE}')
    modes = [m.value for m in CertificateMode]
    value = tls["certificate"]
    if not isinstance(value, str) or value.lower() not in modes:
        raise UsageError(f"tls.certificate: expected one of {', '.join(modes)}, got {show(value)}")
    return CertificateMode(value.lower())


def _rules(data: Any, listener: str) -> tuple[Rule, ...]:
    from .._profile.load import load_rules

    try:
        return load_rules(data, listener, source="<request>")
    except ProfileError as exc:
        raise ProfileError(exc.problems, summary="invalid rules") from None


def drop_request(body: Any) -> tuple[CloseHow, bool]:
    """`POST /listeners/NAME/drop`: `{"how": "fin" | "rst", "idle_only": bool}`, both optional."""
    if not isinstance(body, dict):
        raise UsageError('expected a JSON object such as {"how": "fin"}')
    unknown = sorted(set(body) - {"how", "idle_only"})
    if unknown:
        raise UsageError(f"unknown key {unknown[0][:SHOWN_CHARS]!r} (expected 'how' and 'idle_only')")
    how = parse_how(body.get("how", "fin"), "how", show)
    idle_only = body.get("idle_only", False)
    if not isinstance(idle_only, bool):
        raise UsageError(f"idle_only must be true or false, got {show(idle_only)}")
    return how, idle_only


def profile_body(raw: bytes) -> Profile:
    """`PUT /profile`: a profile as YAML or JSON text (JSON is YAML: one loader takes both)."""
    from .._profile.load import load_profile_text

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"profile is not valid UTF-8 (byte {exc.start})") from None
    try:
        return load_profile_text(text, source="<request>")
    except RecursionError:
        raise UsageError("profile is nested too deeply") from None


def query_count(name: str, value: str | None) -> int | None:
    """A query parameter or header that must be an integer 0 or more (None when absent)."""
    if value is None:
        return None
    number = int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else -1
    if number < 0:
        raise UsageError(f"{name} must be an integer 0 or more, got {value[:SHOWN_CHARS]!r}")
    return number


#: The event fields `GET /events` (and `/events/stream`) filter on, and the type of each.
EVENT_FIELDS: Mapping[str, type] = {
    "type": str,
    "listener": str,
    "conn": int,
    "peer": str,
    "method": str,
    "path": str,
    "fingerprint": str,
    "rule": str,
    "action": str,
    "status": int,
    "how": str,
    "accept": str,
    "cause": str,
}


@dataclass(frozen=True, slots=True)
class EventQuery:
    """`GET /events?...`: where to start, how many, and which events."""

    since: int | None
    limit: int | None
    newest: int | None
    wanted: EventFilter
    #: `GET /events/stream` only: at most this many events a second to this reader ...
    rate: int | None = None
    #: ... and up to this many at once (a token bucket; needs `rate`)
    burst: int | None = None


def check_query(endpoint: str, given: Collection[str], allowed: Sequence[str]) -> None:
    """A UsageError naming the first query parameter of `given` that is not `allowed`."""
    for name in given:
        if name not in allowed:
            expected = f"expected: {', '.join(allowed)}" if allowed else "it takes none"
            raise UsageError(f"unknown query parameter {name[:SHOWN_CHARS]!r} for {endpoint} ({expected})")


def events_query(args: Mapping[str, list[str]], *, paging: bool = True) -> EventQuery:
    """The query of `GET /events` (`paging`) or `GET /events/stream` (`since` and filters).

    A filter given several times matches any of its values: `type=fault&type=drop`.
    """
    counts = ("since", "limit", "newest") if paging else ("since", "rate", "burst")
    check_query(
        "GET /events" if paging else "GET /events/stream", list(args), [*counts, *EVENT_FIELDS]
    )
    numbers: dict[str, int | None] = {}
    for name in counts:
        values = args.get(name, [])
        if len(values) > 1:
            raise UsageError(f"{name} given {len(values)} times (expected it once)")
        numbers[name] = query_count(name, values[0]) if values else None
    if numbers.get("limit") is not None and numbers.get("newest") is not None:
        raise UsageError("limit and newest do not go together (limit pages from since; newest: the newest N)")
    if numbers.get("rate") == 0:
        raise UsageError("rate must be 1 or more (events a second), got 0")
    if numbers.get("burst") == 0:
        raise UsageError("burst must be 1 or more (events at once), got 0")
    if numbers.get("burst") is not None and numbers.get("rate") is None:
        raise UsageError("burst needs rate (burst: events at once; rate: events a second on average)")
    filters: dict[str, Any] = {}
    for name, values in args.items():
        kind = EVENT_FIELDS.get(name)
        if kind is not None:
            filters[name] = tuple(query_count(name, v) if kind is int else v for v in values)
    return EventQuery(
        numbers["since"], numbers.get("limit"), numbers.get("newest"), EventFilter.of(filters),
        numbers.get("rate"), numbers.get("burst"),
    )


def reload_request(body: Any) -> Profile:
    """`POST /reload`: `{"profile": NAME}`, a shipped profile by its name.

    Names only: no endpoint reads a file the caller names (a profile's text goes to
    `PUT /profile`)."""
    from .._profile.load import load_profile_file
    from .._shipped import find_shipped, is_name, shipped_names

    if not isinstance(body, dict) or set(body) != {"profile"}:
        raise UsageError('expected a JSON object such as {"profile": "fin"}')
    name = body["profile"]
    if not isinstance(name, str) or not is_name(name):
        raise UsageError(
            f"profile must be a shipped profile's name, got {show(name)} "
            "(to load a profile of your own, PUT /profile with its text)"
        )
    path = find_shipped(name)
    if path is None:
        raise UsageError(f"no shipped profile named {show(name)} (shipped: {', '.join(shipped_names())})")
    return load_profile_file(path)
