"""How values are shown in messages: briefly, and never more of the input than a reader needs.

Shared by the loader and the `X-Fault` header parser, so that both say the same thing in the
same words. A long string is cut to its first characters and its length: a profile is often
someone's file, and a message must not replay it (`faultserver validate` on a password file says
that it is not a profile, not what its first line was).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence

__all__ = [
    "MAX_SHOWN",
    "choice_problem",
    "describe_value",
    "did_you_mean",
    "expected_integer",
    "short_text",
    "unknown_key",
]

#: At most this many characters of a value appear in a message.
MAX_SHOWN = 40


def short_text(text: str) -> str:
    """`text` itself when short, else its start and end around `...`."""
    if len(text) <= MAX_SHOWN:
        return text
    return text[: MAX_SHOWN - 12] + "..." + text[-6:]


def describe_value(value: object) -> str:
    """A plain value as a message shows it: `null`, `true`, `1.5`, `'text'`, `a mapping`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        # str() of an int above 4300 digits raises; 10,000 bits are about 3,000 digits
        return short_text(str(value)) if value.bit_length() < 10_000 else "a huge number"
    if isinstance(value, str):
        if len(value) > MAX_SHOWN:
            return repr(value[: MAX_SHOWN - 12]) + f"... ({len(value)} characters)"
        return repr(value)
    return type(value).__name__


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """The option closest to `word`, if one is close enough to be a typo of it."""
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key(key: str, allowed: Sequence[str]) -> str:
    shown = describe_value(key)
    guess = did_you_mean(key, allowed)
    if guess:
        return f"unknown key {shown} (did you mean {guess!r}?)"
    return f"unknown key {shown} (expected one of: {', '.join(allowed)})"


def choice_problem(
    value: object, shown: str, options: Sequence[str], what: str, article: str = ""
) -> str:
    """The message for a value outside a closed set; `what` names the set ("accept mode").

    `shown` is the value as the message should show it (see `describe_value`).
    """
    listed = ", ".join(options)
    if isinstance(value, str):
        guess = did_you_mean(value, options)
        hint = f"did you mean {guess!r}? " if guess else ""
        return f"unknown {what} {shown} ({hint}expected one of: {listed})"
    article = article or ("an" if what[0] in "aeiou" else "a")
    return f"expected {article} {what} (one of: {listed}), got {shown}"


def expected_integer(low: int | None, high: int | None) -> str:
    """`an integer from 1 to 5`, `an integer of 1 or more` or `an integer`."""
    if low is not None and high is not None:
        return f"an integer from {low} to {high}"
    if low is not None:
        return f"an integer of {low} or more"
    return "an integer"
