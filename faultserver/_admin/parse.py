"""Request bodies and query parameters, read into the values `Server` takes, once.

Every function raises a `UsageError` (400) or a `ProfileError` (400 with the problems)
saying what was expected and what arrived; the edge turns them into answers. JSON is
parsed with a depth limit: a body of a million `[` would otherwise end in RecursionError.
"""

from __future__ import annotations

import json
from typing import Any

from .._choices import parse_accept, parse_how
from .._errors import ProfileError, UsageError
from .._profile.model import AcceptMode, CloseHow, Profile, Rule

__all__ = [
    "MAX_JSON_DEPTH",
    "drop_request",
    "json_body",
    "listener_update",
    "profile_body",
    "query_count",
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


def listener_update(body: Any, listener: str) -> tuple[AcceptMode | None, tuple[Rule, ...] | None]:
    """`PATCH /listeners/NAME`: `{"accept": MODE}` and/or `{"rules": [...]}`, both checked."""
    if not isinstance(body, dict) or not body:
        raise UsageError("expected a JSON object with 'accept' and/or 'rules'")
    unknown = sorted(set(body) - {"accept", "rules"})
    if unknown:
        raise UsageError(f"unknown key {unknown[0][:SHOWN_CHARS]!r} (expected 'accept' and/or 'rules')")
    accept = parse_accept(body["accept"], show) if "accept" in body else None
    rules = _rules(body["rules"], listener) if "rules" in body else None
    return accept, rules


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
