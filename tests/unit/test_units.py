"""units.py: durations, sizes, rates, comparisons and distributions (pure)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from faultserver._profile.units import (
    MAX_DURATION_S,
    Comparison,
    Fixed,
    LogNormal,
    Normal,
    Uniform,
    UnitError,
    parse_comparison,
    parse_duration,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (1.5, 1.5),
        (2, 2.0),
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("1m", 60.0),
        ("1h", 3600.0),
        (" 3 S ", 3.0),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("8760h", MAX_DURATION_S),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2", "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '2'"),
        ("2d", "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '2d'"),
        ("-1s", "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '-1s'"),
        (True, "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got true"),
        (None, "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got null"),
        ([1], "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got a list"),
        (-0.5, "expected a duration of 0 or more, got -0.5"),
        (float("nan"), "expected a duration of 0 or more, got nan"),
        ("8761h", "duration '8761h' is longer than the limit of one year"),
    ],
)
def test_parse_duration_errors(value: object, message: str) -> None:
    with pytest.raises(UnitError, match=rf"^{__import__('re').escape(message)}$"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        (512, 512),
        (512.0, 512),
        ("512", 512),
        ("512B", 512),
        ("4KiB", 4096),
        ("1MiB", 1048576),
        ("1GiB", 1073741824),
        ("1KB", 1000),
        ("1.5KB", 1500),
        ("2 mb", 2_000_000),
    ],
)
def test_parse_size(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    ("value", "rate"),
    [("1KiB/s", 1024.0), ("100B/s", 100.0), ("100/s", 100.0), (" 1 MB/s ", 1e6)],
)
def test_parse_rate(value: object, rate: float) -> None:
    assert parse_rate(value) == rate


@pytest.mark.parametrize(
    ("value", "comparison"),
    [
        (2, ("==", 2)),
        ("2", ("==", 2)),
        ("=2", ("==", 2)),
        ("==2", ("==", 2)),
        (">=2", (">=", 2)),
        ("<= 3", ("<=", 3)),
        ("> 1", (">", 1)),
        ("<3", ("<", 3)),
        ("!=1", ("!=", 1)),
    ],
)
def test_parse_comparison(value: object, comparison: tuple[str, int]) -> None:
    assert parse_comparison(value) == comparison


DURATION = "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h'"
SIZE = "expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB'"
RATE = "expected a rate such as '1KiB/s' or '100B/s'"
COMPARISON = "expected an int or a comparison such as '>=2', '<3', '==1'"


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (parse_size, "1KiB/s", f"{SIZE}, got '1KiB/s'"),
        (parse_size, False, f"{SIZE}, got false"),
        (parse_size, 1.5, "expected a whole number of bytes, got 1.5"),
        (parse_size, "1.0001KB", "size '1.0001KB' is not a whole number of bytes"),
        (parse_size, -1, "expected a size of 0 or more, got -1"),
        (parse_size, "1.5GiB", "size '1.5GiB' is larger than the limit of 1GiB"),
        (parse_size, "9" * 5000, f"{SIZE}, got '{'9' * 28}'... (5000 characters)"),
        (parse_rate, 100, f"{RATE}, got 100"),
        (parse_rate, "1KiB", f"{RATE}, got '1KiB'"),
        (parse_rate, "fast/s", f"{RATE}, got 'fast/s'"),
        (parse_rate, "0B/s", "expected a rate above 0, got '0B/s'"),
        (parse_comparison, 0, "expected a request number of 1 or more, got 0"),
        (parse_comparison, True, f"{COMPARISON}, got true"),
        (parse_comparison, "=>2", f"{COMPARISON}, got '=>2'"),
        (parse_comparison, 1.0, f"{COMPARISON}, got 1.0"),
        (parse_comparison, 10**10, "expected a request number of at most 1000000000, got 10000000000"),
        (parse_comparison, ">=" + "9" * 5000, f"{COMPARISON}, got '>={'9' * 26}'... (5002 characters)"),
        (parse_duration, "1" * 101 + "s", f"{DURATION}, got '{'1' * 28}'... (102 characters)"),
    ],
)
def test_units_parse_errors(parse: Callable[[object], object], value: object, message: str) -> None:
    with pytest.raises(UnitError) as info:
        parse(value)
    assert str(info.value) == message


def test_units_comparison_is_an_enum_that_compares_as_its_symbol() -> None:
    op, n = parse_comparison(">=2")
    assert (op, n) == (Comparison.GE, 2) and op == ">="
    assert op.holds(3, 2) and not op.holds(1, 2)


def test_distributions_draw_within_their_bounds() -> None:
    rng = random.Random(1)
    assert Fixed(0.5).draw(rng) == 0.5
    assert all(0.1 <= Uniform(0.1, 0.3).draw(rng) <= 0.3 for _ in range(1000))
    assert all(Normal(0.0, 1.0).draw(rng) >= 0.0 for _ in range(1000))
    assert all(0.0 < LogNormal(0.1, 3.0).draw(rng) <= MAX_DURATION_S for _ in range(1000))


def test_distributions_are_reproducible_from_the_seed() -> None:
    def draws(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [
            d.draw(rng) for d in (Uniform(0, 1), Normal(1, 1), LogNormal(1, 1)) for _ in range(5)
        ]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
