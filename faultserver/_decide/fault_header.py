"""The `X-Fault` request header: one fault asked for by the request itself.

Grammar (the profile format's "Fault header"): `[ACTION] (; KEY=VALUE)*`, where ACTION is any
action name (default `respond`) and the keys are that action's own plus `delay`. Names and
actions ignore case. Keys are read as the action table (`_profile.actions`) says, with the
profile's units and the same words as the loader; only what a header cannot express (a
rule's `name`, `match`, `times`..., response `headers`) is refused as such.

`decide_fault_header` turns the raw value into a `Decision`, as `RuleSet` does for a rule:
the delay drawn from the listener's header stream, and every size the header asks for
checked against the listener's `limits.max_fault_header_bytes`. Every problem is a
`FaultHeaderError` whose message names it; the data plane answers it with a 400.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TypeVar

from .._profile.actions import (
    ACTIONS,
    RULE_KEYS,
    THEN_ACTIONS,
    ActionSpec,
    ValueKind,
    missing_key_problem,
    one_of_problem,
    unknown_action_key,
)
from .._profile.describe import choice_problem, describe_value, expected_integer, short_text
from .._profile.forward import THEN_WORDS
from .._profile.model import (
    Action,
    ActionName,
    Body,
    ForwardThen,
    Framing,
    GoawayThen,
    H2Error,
    LastStream,
    Limits,
    Rule,
)
from .._profile.units import (
    MAX_COUNT,
    MAX_NUMBER_CHARS,
    Fixed,
    UnitError,
    number_problem,
    parse_duration,
    parse_rate,
    parse_size,
)
from .rules import Decision

__all__ = ["RULE_NAME", "FaultHeaderError", "decide_fault_header", "parse_fault_header"]

#: The rule name of what the header asks for, in events and metrics.
RULE_NAME = "x-fault"
#: Header values up to this long are cached once parsed (a suite repeats a few of them).
MAX_CACHED_CHARS = 1024

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]*\.[0-9]+")
#: Kinds of values that a `KEY=VALUE` cannot spell.
_NOT_IN_HEADER = {ValueKind.HEADERS, ValueKind.GRPC}
#: Keys the header cannot set: a rule's own (but `delay`), and keys of such kinds.
_FIXED_KEYS = (frozenset(RULE_KEYS) - {"delay"}) | {
    key for spec in ACTIONS.values() for key, k in spec.keys.items() if k.kind in _NOT_IN_HEADER
}
_SIZE_KINDS = (ValueKind.SIZE, ValueKind.POSITIVE_SIZE)

T = TypeVar("T")


class FaultHeaderError(ValueError):
    """The header asks for something that does not exist; the message names it (without the
    header's name, which the data plane puts in front)."""


def decide_fault_header(raw: bytes, rng: random.Random, limits: Limits) -> Decision:
    """What the header value `raw` asks for: its action, after a delay drawn from `rng`."""
    rule = parse_fault_header(raw.decode("latin-1"))
    _check_sizes(rule.action, limits)
    delay_s = rule.delay.draw(rng) if rule.delay is not None else 0.0
    return Decision(RULE_NAME, rule.action, delay_s, rng)


def parse_fault_header(value: str) -> Rule:
    """The rule that `value` asks for (named `x-fault`), or `FaultHeaderError`."""
    if len(value) <= MAX_CACHED_CHARS:
        return _parse_cached(value)
    return _parse(value)


@lru_cache(maxsize=256)
def _parse_cached(value: str) -> Rule:
    return _parse(value)


def _parse(value: str) -> Rule:
    parts = [p.strip() for p in value.split(";")]
    parts = [p for p in parts if p]
    name = "respond"
    if parts and "=" not in parts[0]:
        name = parts.pop(0).lower()
    given = _keys_and_values(parts)
    spec = ACTIONS.get(name)
    if spec is None:
        raise FaultHeaderError(choice_problem(name, describe_value(name), list(ACTIONS), "action"))
    for key in given:
        if key != "delay" and key not in spec.keys:
            message = unknown_action_key(key, name, ("delay",))
            raise FaultHeaderError(f"{short_text(key)}: {message}")
    delay = None
    if "delay" in given:
        delay = Fixed(_read("delay", _duration, given["delay"]))
    return Rule(name=RULE_NAME, action=_action(spec, given), delay=delay)


def _keys_and_values(parts: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for part in parts:
        key, sep, text = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise FaultHeaderError(f"expected KEY=VALUE, got {describe_value(part)}")
        if key in _FIXED_KEYS:
            raise FaultHeaderError(f"key {describe_value(key)} cannot be set in the fault header")
        if key in given:
            raise FaultHeaderError(f"duplicate key {describe_value(key)}")
        given[key] = text.strip()
    return given


def _action(spec: ActionSpec, given: Mapping[str, str]) -> Action:
    values = {
        key.field: _read(name, _READERS[key.kind], given[name])
        for name, key in spec.keys.items()
        if name in given
    }
    missing = missing_key_problem(spec, list(given))
    if missing is not None:
        raise FaultHeaderError(missing)
    broken = one_of_problem(spec, list(given))
    if broken is not None:
        key, message = broken
        raise FaultHeaderError(f"{key}: {message}" if key else message)
    build: Callable[..., Action] = spec.model
    return build(**values)


def _check_sizes(action: Action, limits: Limits) -> None:
    """No size in the action above what the listener lets the header ask for."""
    limit = limits.max_fault_header_bytes
    for name, key in ACTIONS[action.name.value].keys.items():
        size = getattr(action, key.field)
        if key.kind in _SIZE_KINDS and isinstance(size, int) and size > limit:
            raise FaultHeaderError(
                f"{name}: expected a size of at most {limit} bytes "
                f"(limits.max_fault_header_bytes), got {size}"
            )


# --- values -------------------------------------------------------------------------------


def _read(key: str, reader: Callable[[str], T], text: str) -> T:
    try:
        return reader(text)
    except UnitError as exc:
        raise FaultHeaderError(f"{key}: {exc}") from None


def _number(text: str) -> int | float | str:
    """An int or a float when the text spells one, as YAML would read it; else the text."""
    if len(text) <= MAX_NUMBER_CHARS:
        if _INT.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
    return text


def _unit(text: str, parse: Callable[[object], T]) -> T:
    value = _number(text)
    problem = number_problem(value)
    if problem is not None:
        raise UnitError(problem)
    return parse(value)


def _duration(text: str) -> float:
    return _unit(text, parse_duration)


def _positive(text: str, parse: Callable[[object], T], what: str) -> T:
    value = _unit(text, parse)
    if value == 0:
        raise UnitError(f"expected {what} above 0, got {describe_value(_number(text))}")
    return value


def _integer(text: str, low: int, high: int) -> int:
    value = _number(text)
    if isinstance(value, int) and low <= value <= high:
        return value
    raise UnitError(f"expected {expected_integer(low, high)}, got {describe_value(value)}")


def _choice(text: str, options: Sequence[str], what: str) -> str:
    value = _number(text)
    if isinstance(value, str) and value.lower() in options:
        return value.lower()
    raise UnitError(choice_problem(value, describe_value(value), options, what))


_THEN_VALUES = [a.value for a in THEN_ACTIONS]
_FRAMINGS = [f.value for f in Framing]
_H2_ERRORS = [e.value.lower() for e in H2Error]
_LAST_STREAMS = [m.value for m in LastStream]
_GOAWAY_THEN = [m.value for m in GoawayThen]

#: How the header reads each kind of value that an action's key may take.
_READERS: Mapping[ValueKind, Callable[[str], object]] = {
    ValueKind.DURATION: _duration,
    ValueKind.POSITIVE_DURATION: lambda text: _positive(text, parse_duration, "a duration"),
    ValueKind.TIMING: lambda text: Fixed(_duration(text)),
    ValueKind.SIZE: lambda text: _unit(text, parse_size),
    ValueKind.POSITIVE_SIZE: lambda text: _positive(text, parse_size, "a size"),
    ValueKind.RATE: lambda text: _unit(text, parse_rate),
    ValueKind.STATUS: lambda text: _integer(text, 100, 599),
    ValueKind.COUNT: lambda text: _integer(text, 1, MAX_COUNT),
    ValueKind.BODY: lambda text: Body(data=text.encode("utf-8", "surrogatepass")),
    ValueKind.FRAMING: lambda text: Framing(_choice(text, _FRAMINGS, "framing")),
    ValueKind.THEN: lambda text: ActionName(_choice(text, _THEN_VALUES, "'then' action")),
    ValueKind.BOOLEAN: lambda text: _choice(text, ["true", "false"], "boolean") == "true",
    ValueKind.H2_ERROR: lambda text: H2Error(_choice(text, _H2_ERRORS, "HTTP/2 error code").upper()),
    ValueKind.LAST_STREAM: lambda text: LastStream(_choice(text, _LAST_STREAMS, "last_stream_id")),
    ValueKind.GOAWAY_THEN: lambda text: GoawayThen(_choice(text, _GOAWAY_THEN, "'then' of goaway")),
    # the header spells the words only: `then=close`, `then=reset`
    ValueKind.FORWARD_THEN: lambda text: ForwardThen(
        end=THEN_WORDS[_choice(text, list(THEN_WORDS), "'then' of forward")]
    ),
}
