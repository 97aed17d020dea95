"""A member of a closed set (an accept mode, how to drop) read from what a user gave.

The admin API (JSON values) and the Python handle (Python values) both come here, so a
wrong value gets the same message shape everywhere; `show` renders the value as the
caller wrote it (`json.dumps` for the API, `repr` for Python).

Case: the words of a closed set are lower case, and are read in any case (`"FIN"` is
`fin`), as the X-Fault header reads its action and `--log-level` its level.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from ._errors import UsageError
from ._profile.model import AcceptMode, CloseHow

__all__ = ["parse_accept", "parse_choice", "parse_how"]

_Choice = TypeVar("_Choice", bound=enum.Enum)


def parse_choice(
    kind: type[_Choice], value: object, what: str, show: Callable[[object], str] = repr
) -> _Choice:
    """`kind(value)`, or a UsageError saying what was expected and what arrived."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        for member in kind:
            if member.value == lowered:
                return member
    names = [str(member.value) for member in kind]
    expected = f"'{names[0]}' or '{names[1]}'" if len(names) == 2 else f"one of: {', '.join(names)}"
    raise UsageError(f"unknown {what} {show(value)} (expected {expected})")


def parse_accept(value: object, show: Callable[[object], str] = repr) -> AcceptMode:
    return parse_choice(AcceptMode, value, "accept mode", show)


def parse_how(value: object, what: str = "drop", show: Callable[[object], str] = repr) -> CloseHow:
    return parse_choice(CloseHow, value, what, show)
