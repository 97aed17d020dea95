"""Units of the profile format: durations, sizes, rates, comparisons and distributions.

Pure parsing: strings and numbers in, seconds and bytes out. Each parser raises `UnitError`
with a message that says what was expected and what arrived; the loader turns it into a
located problem, the `X-Fault` parser into a 400. Parsed numbers carry their unit in their
name (`seconds`, `bytes`, `bytes_per_s`). The distribution grammar (`uniform`, `normal`,
`lognormal`) is read by the loader alone (`timing.py`): here are only the distributions.
"""

from __future__ import annotations

import enum
import math
import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from .describe import describe_value

__all__ = [
    "MAX_COUNT",
    "MAX_DURATION_S",
    "MAX_NUMBER_CHARS",
    "MAX_SIZE_BYTES",
    "Comparison",
    "Duration",
    "Fixed",
    "LogNormal",
    "Normal",
    "Uniform",
    "UnitError",
    "number_problem",
    "parse_comparison",
    "parse_duration",
    "parse_rate",
    "parse_size",
]


class UnitError(ValueError):
    """A value that is not of the unit it should be."""


#: Sizes beyond this are refused: a profile asking for more is a mistake, not a test.
MAX_SIZE_BYTES = 1024**3
#: Durations beyond a year are refused for the same reason (and they overflow timers).
MAX_DURATION_S = 365 * 24 * 3600.0
#: Counts (`times`, `max_requests`, `max_connections`, request numbers) beyond a billion.
MAX_COUNT = 1_000_000_000
#: A number or a value with a unit is never longer than this; longer text is refused before
#: it is converted (Python's int() is quadratic in the digits, float() gives up on them).
MAX_NUMBER_CHARS = 100
#: Integers above this cannot be a duration, size or count (and float() of them may overflow).
_MAX_PLAIN_INT = 10**18

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_NUMBER_UNIT = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*")
_COMPARISON_TEXT = re.compile(r"\s*(>=|<=|==|!=|>|<|=)?\s*([0-9]+)\s*")

_EXPECTED_DURATION = "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h'"
_EXPECTED_SIZE = "expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB'"
_EXPECTED_RATE = "expected a rate such as '1KiB/s' or '100B/s'"
_EXPECTED_COMPARISON = "expected an int or a comparison such as '>=2', '<3', '==1'"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: object) -> str:
    """Numbers as Python writes them (`1.5`, `nan`); anything else as `describe_value`."""
    if _is_number(value):
        return repr(value)
    return describe_value(value)


def _number_and_unit(value: str, expected: str) -> tuple[float, str]:
    """`(number, unit in lower case)` from text such as `'1.5 KiB'`."""
    m = _NUMBER_UNIT.fullmatch(value) if len(value) <= MAX_NUMBER_CHARS else None
    if m is None:
        raise UnitError(f"{expected}, got {_shown(value)}")
    return float(m.group(1)), m.group(2).lower()


def number_problem(value: object) -> str | None:
    """Why a number cannot stand for a duration, a size or a count at all, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {describe_value(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_PLAIN_INT:
        return f"number too large, got {describe_value(value)}"
    return None


def parse_duration(value: object) -> float:
    """Seconds from `1.5`, `"250ms"`, `"2s"`, `"1m"` or `"1h"`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        number, unit = _number_and_unit(value, _EXPECTED_DURATION)
        if unit not in _DURATION_UNITS:
            raise UnitError(f"{_EXPECTED_DURATION}, got {_shown(value)}")
        seconds = number * _DURATION_UNITS[unit]
    else:
        raise UnitError(f"{_EXPECTED_DURATION}, got {_shown(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise UnitError(f"expected a duration of 0 or more, got {_shown(value)}")
    if seconds > MAX_DURATION_S:
        raise UnitError(f"duration {_shown(value)} is longer than the limit of one year")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from `512`, `"512B"`, `"4KiB"`, `"1MiB"` or `"1KB"` (1000 bytes)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():
            raise UnitError(f"expected a whole number of bytes, got {_shown(value)}")
        size = int(value)
    elif isinstance(value, str):
        number, unit = _number_and_unit(value, _EXPECTED_SIZE)
        unit = unit or "b"
        if unit not in _SIZE_UNITS:
            raise UnitError(f"{_EXPECTED_SIZE}, got {_shown(value)}")
        size_f = number * _SIZE_UNITS[unit]
        if not size_f.is_integer():
            raise UnitError(f"size {_shown(value)} is not a whole number of bytes")
        size = int(size_f)
    else:
        raise UnitError(f"{_EXPECTED_SIZE}, got {_shown(value)}")
    if size < 0:
        raise UnitError(f"expected a size of 0 or more, got {_shown(value)}")
    if size > MAX_SIZE_BYTES:
        raise UnitError(f"size {_shown(value)} is larger than the limit of 1GiB")
    return size


def parse_rate(value: object) -> float:
    """Bytes per second from `"1KiB/s"` or `"100B/s"`."""
    if not isinstance(value, str) or not value.strip().endswith("/s"):
        raise UnitError(f"{_EXPECTED_RATE}, got {_shown(value)}")
    try:
        rate = parse_size(value.strip()[:-2])
    except UnitError:
        raise UnitError(f"{_EXPECTED_RATE}, got {_shown(value)}") from None
    if rate == 0:
        raise UnitError(f"expected a rate above 0, got {_shown(value)}")
    return float(rate)


class Comparison(str, enum.Enum):
    """How `request_on_connection` compares a request's number with the one given."""

    EQ = "=="
    NE = "!="
    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"

    def holds(self, left: int, right: int) -> bool:
        return _OPERATORS[self](left, right)


_OPERATORS: dict[Comparison, Callable[[int, int], bool]] = {
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
    Comparison.GE: operator.ge,
    Comparison.LE: operator.le,
    Comparison.GT: operator.gt,
    Comparison.LT: operator.lt,
}


def parse_comparison(value: object) -> tuple[Comparison, int]:
    """`(op, n)` from an int `2` or a string such as `">=2"`, `"<3"`, `"==1"`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (Comparison.EQ, _request_number(value))
    m = None
    if isinstance(value, str) and len(value) <= MAX_NUMBER_CHARS:
        m = _COMPARISON_TEXT.fullmatch(value)
    if m is None:
        raise UnitError(f"{_EXPECTED_COMPARISON}, got {_shown(value)}")
    op = m.group(1) or "=="
    return (Comparison("==" if op == "=" else op), _request_number(int(m.group(2))))


def _request_number(n: int) -> int:
    if n < 1:
        raise UnitError(f"expected a request number of 1 or more, got {_shown(n)}")
    if n > MAX_COUNT:
        raise UnitError(f"expected a request number of at most {MAX_COUNT}, got {_shown(n)}")
    return n


# --- distributions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixed:
    """A plain duration: every draw gives `seconds`."""

    seconds: float

    def draw(self, rng: random.Random) -> float:
        return self.seconds


@dataclass(frozen=True, slots=True)
class Uniform:
    """Evenly between `low_s` and `high_s`."""

    low_s: float
    high_s: float

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low_s, self.high_s)


@dataclass(frozen=True, slots=True)
class Normal:
    """Gaussian around `mean_s`, clipped at 0 (a delay is never negative)."""

    mean_s: float
    stddev_s: float

    def draw(self, rng: random.Random) -> float:
        return max(0.0, rng.gauss(self.mean_s, self.stddev_s))


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal with the given median and shape `sigma`: the long tail of real latency."""

    median_s: float
    sigma: float

    def draw(self, rng: random.Random) -> float:
        return min(MAX_DURATION_S, rng.lognormvariate(math.log(self.median_s), self.sigma))


#: Wherever the format accepts a duration it also accepts a distribution.
Duration = Fixed | Uniform | Normal | LogNormal
