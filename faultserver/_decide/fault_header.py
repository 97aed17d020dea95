"""The `X-Fault` request header: one fault asked for by the request itself.

Grammar (profile-v1.md "Fault header"): `[ACTION] (; KEY=VALUE)*`, where ACTION is
any action name (default `respond`) and the keys are that action's own plus `delay`.
The value is turned into a one-rule list and checked by the same validator as a
profile, so the header accepts exactly what a rule accepts, with the same messages.
Parsed values are cached: a test suite repeats the same few headers many times.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Union

from .._actions import ACTIONS
from .._errors import ProfileError
from .._profile.model import Rule

__all__ = ["FaultHeaderError", "parse_fault_header"]

_INT = re.compile(r"^-?[0-9]+$")
_FLOAT = re.compile(r"^-?[0-9]*\.[0-9]+$")


class FaultHeaderError(ValueError):
    """The header asks for something that does not exist; the message names it."""


def _value(text: str) -> Union[str, int, float, bool]:
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


@lru_cache(maxsize=256)
def parse_fault_header(value: str) -> Rule:
    """The rule that `value` asks for (named `x-fault`), or `FaultHeaderError`."""
    from .._profile.load import load_rules  # the loader is only needed once a header arrives

    parts = [p.strip() for p in value.split(";")]
    parts = [p for p in parts if p]
    rule: dict[str, object] = {"name": "x-fault", "action": "respond"}
    if parts and "=" not in parts[0]:
        rule["action"] = parts.pop(0).lower()
    for part in parts:
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise FaultHeaderError(f"expected KEY=VALUE, got {part!r}")
        if key in ("name", "action", "at", "match", "probability", "times"):
            raise FaultHeaderError(f"key {key!r} cannot be set in the fault header")
        if key == "headers":
            raise FaultHeaderError("key 'headers' cannot be set in the fault header")
        if key in rule:
            raise FaultHeaderError(f"duplicate key {key!r}")
        rule[key] = _value(raw.strip())
    action = rule["action"]
    if action not in ACTIONS:
        import difflib

        close = difflib.get_close_matches(str(action), list(ACTIONS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise FaultHeaderError(
            f"unknown action {action!r} ({hint}expected one of: {', '.join(ACTIONS)})"
        )
    try:
        (parsed,) = load_rules([rule], "x-fault", source="x-fault")
    except ProfileError as exc:
        first = exc.problems[0]
        # "rules[0].bytes" -> "bytes"; "rules[0]" (the rule as a whole) -> no path
        path = first.path.split(".", 1)[1] if "." in first.path else ""
        raise FaultHeaderError(f"{path}: {first.message}" if path else first.message) from None
    return parsed
