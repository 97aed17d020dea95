"""Units of the profile format: durations, sizes, rates and distributions.

Pure parsing: strings and numbers in, seconds and bytes out. Each parser raises
`UnitError` with a message that says what was expected and what arrived; the loader
turns it into a located problem. Parsed numbers carry their unit in their name
(`seconds`, `bytes`, `bytes_per_s`).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Union

__all__ = [
    "Distribution",
    "Duration",
    "Fixed",
    "LogNormal",
    "Normal",
    "Uniform",
    "UnitError",
    "parse_comparison",
    "parse_duration",
    "parse_rate",
    "parse_size",
    "parse_timing",
]


class UnitError(ValueError):
    """A value that is not of the unit it should be."""


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
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")

#: Sizes beyond this are refused: a profile asking for more is a mistake, not a test.
MAX_SIZE_BYTES = 1024**3
#: Durations beyond a year are refused for the same reason (and they overflow timers).
MAX_DURATION_S = 365 * 24 * 3600.0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_duration(value: object) -> float:
    """Seconds from `1.5`, `"250ms"`, `"2s"`, `"1m"` or `"1h"`."""
    if _is_number(value):
        seconds = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        m = _NUMBER_UNIT.match(value)
        unit = m.group(2).lower() if m else ""
        if not m or unit not in _DURATION_UNITS:
            raise UnitError(
                f"expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got {value!r}"
            )
        seconds = float(m.group(1)) * _DURATION_UNITS[unit]
    else:
        raise UnitError(
            f"expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got {_describe(value)}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise UnitError(f"expected a duration of 0 or more, got {value!r}")
    if seconds > MAX_DURATION_S:
        raise UnitError(f"duration {value!r} is longer than the limit of one year")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from `512`, `"512B"`, `"4KiB"`, `"1MiB"` or `"1KB"` (1000 bytes)."""
    if _is_number(value):
        if isinstance(value, float) and not value.is_integer():
            raise UnitError(f"expected a whole number of bytes, got {value!r}")
        size = int(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        m = _NUMBER_UNIT.match(value)
        unit = (m.group(2) or "b").lower() if m else ""
        if not m or unit not in _SIZE_UNITS:
            raise UnitError(
                f"expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB', got {value!r}"
            )
        size_f = float(m.group(1)) * _SIZE_UNITS[unit]
        if not size_f.is_integer():
            raise UnitError(f"size {value!r} is not a whole number of bytes")
        size = int(size_f)
    else:
        raise UnitError(
            f"expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB', got {_describe(value)}"
        )
    if size < 0:
        raise UnitError(f"expected a size of 0 or more, got {value!r}")
    if size > MAX_SIZE_BYTES:
        raise UnitError(f"size {value!r} is larger than the limit of 1GiB")
    return size


def parse_rate(value: object) -> float:
    """Bytes per second from `"1KiB/s"` or `"100B/s"`."""
    if not isinstance(value, str) or not value.strip().endswith("/s"):
        raise UnitError(f"expected a rate such as '1KiB/s' or '100B/s', got {_describe(value)}")
    try:
        rate = parse_size(value.strip()[:-2])
    except UnitError:
        raise UnitError(f"expected a rate such as '1KiB/s' or '100B/s', got {value!r}") from None
    if rate == 0:
        raise UnitError(f"expected a rate above 0, got {value!r}")
    return float(rate)


_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)?\s*([0-9]+)\s*$")


def parse_comparison(value: object) -> tuple[str, int]:
    """`(op, n)` from an int `2` or a string such as `">=2"`, `"<3"`, `"==1"`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UnitError(f"expected a request number of 1 or more, got {value!r}")
        return ("==", value)
    if isinstance(value, str):
        m = _COMPARISON.match(value)
        if m:
            op = m.group(1) or "=="
            return ("==" if op == "=" else op, int(m.group(2)))
    raise UnitError(
        f"expected an int or a comparison such as '>=2', '<3', '==1', got {_describe(value)}"
    )


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


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


Distribution = Union[Uniform, Normal, LogNormal]
#: Wherever the format accepts a duration it also accepts a distribution.
Duration = Union[Fixed, Uniform, Normal, LogNormal]


def parse_timing(value: object) -> Duration:
    """A duration or a distribution mapping, as the format allows wherever a duration goes.

    Raises `UnitError`; for mappings the message names the offending part. The loader
    does finer, located checks of distribution mappings itself and calls this only for
    the admin API and the fault header.
    """
    if isinstance(value, dict):
        if len(value) != 1:
            raise UnitError(
                "expected one of {uniform: [LOW, HIGH]}, {normal: {mean, stddev}}, "
                "{lognormal: {median, sigma}}"
            )
        ((kind, args),) = value.items()
        if kind == "uniform":
            if not isinstance(args, list) or len(args) != 2:
                raise UnitError("uniform: expected a list of two durations [LOW, HIGH]")
            low, high = parse_duration(args[0]), parse_duration(args[1])
            if low > high:
                raise UnitError("uniform: LOW must not be greater than HIGH")
            return Uniform(low, high)
        if kind == "normal":
            if not isinstance(args, dict) or set(args) != {"mean", "stddev"}:
                raise UnitError("normal: expected {mean: DURATION, stddev: DURATION}")
            return Normal(parse_duration(args["mean"]), parse_duration(args["stddev"]))
        if kind == "lognormal":
            if not isinstance(args, dict) or set(args) != {"median", "sigma"}:
                raise UnitError("lognormal: expected {median: DURATION, sigma: NUMBER}")
            median = parse_duration(args["median"])
            sigma = args["sigma"]
            if not _is_number(sigma) or not (0 <= sigma <= 10):
                raise UnitError("lognormal: sigma must be a number from 0 to 10")
            if median <= 0:
                raise UnitError("lognormal: median must be above 0")
            return LogNormal(median, float(sigma))
        raise UnitError(f"unknown distribution {kind!r} (expected uniform, normal or lognormal)")
    return Fixed(parse_duration(value))
