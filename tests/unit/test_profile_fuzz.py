"""Whatever arrives, the loader answers with a profile or a `ProfileError`, and fast."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultserver._errors import ProfileError
from faultserver._profile.load import load_profile_data, load_profile_file, load_profile_text, load_rules
from faultserver._profile.schema import profile_schema

VALID = Path(__file__).parent.parent / "data" / "valid"
EVERYTHING = yaml.safe_load((VALID / "everything.yaml").read_text())
#: FAULTSERVER_FUZZ_EXAMPLES=20000 for a longer search than the default run's
SETTINGS = settings(
    max_examples=int(os.environ.get("FAULTSERVER_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: pieces of YAML syntax and of the format, so that random text gets far into the loader
YAML_PIECES = [
    "version",
    "listeners",
    "rules",
    "action",
    "name",
    "bind",
    "match",
    "schedule",
    "phases",
    "delay",
    "uniform",
    "normal",
    "lognormal",
    "close",
    "reset",
    "respond",
    "partial",
    "dribble",
    "x-",
    "127.0.0.1:0",
    "[::1]:0",
    "1",
    "0",
    "-1",
    "1.5",
    ".nan",
    ".inf",
    "1e999",
    "9" * 50,
    "true",
    "null",
    "~",
    "250ms",
    "1KiB",
    "1KiB/s",
    ">=2",
    ":",
    ": ",
    " ",
    "  ",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "'",
    '"',
    "#",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: ",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!x ",
    "? ",
    "|",
    ">",
    "---",
    "...",
    "\t",
    "\\",
    "é",
    "\x00",
    "\ufeff",
    "%YAML 1.1\n",
]


def _load_text(text: str) -> None:
    try:
        load_profile_text(text, "fuzz.yaml")
    except ProfileError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert "\n" not in str(problem)
            assert problem.line >= 1 and problem.column >= 1


@SETTINGS
@given(st.binary(max_size=400))
def test_fuzz_file_arbitrary_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_profile_file(str(path))
    except ProfileError as exc:
        assert exc.problems


@SETTINGS
@given(st.text(st.characters(exclude_categories=()), max_size=400))
def test_fuzz_text_arbitrary(text: str) -> None:
    _load_text(text)


@SETTINGS
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=80).map("".join))
def test_fuzz_text_yaml_like(text: str) -> None:
    _load_text(text)


@SETTINGS
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join))
def test_fuzz_text_after_a_valid_head(tail: str) -> None:
    _load_text("version: 1\nlisteners:\n  - name: a\n    bind: 127.0.0.1:0\n    " + tail)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "close",
            "reset",
            "hang",
            "partial",
            "dribble",
            "garbage",
            "respond",
            "connect",
            "request",
            "open",
            "refuse",
            "stall",
            "1s",
            "250ms",
            "1KiB",
            "1B/s",
            ">=2",
            "127.0.0.1:0",
            "[::1]:0",
            "localhost:0",
            "GET",
            "/api/*",
            "x-a",
        ]
    )
)
KEYS = st.text(max_size=8) | st.sampled_from(
    [
        "version",
        "listeners",
        "name",
        "bind",
        "rules",
        "action",
        "match",
        "method",
        "path",
        "headers",
        "delay",
        "uniform",
        "normal",
        "mean",
        "stddev",
        "lognormal",
        "median",
        "sigma",
        "bytes",
        "then",
        "chunk",
        "interval",
        "rate",
        "drain",
        "for",
        "at",
        "schedule",
        "phases",
        "duration",
        "regex",
        "size",
        "body",
        "status",
        "x-note",
    ]
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30,
)


def _load_data(data: object) -> None:
    try:
        load_profile_data(data)
    except ProfileError as exc:
        assert exc.problems


@SETTINGS
@given(DATA)
def test_fuzz_data_arbitrary(data: object) -> None:
    _load_data(data)
    try:
        load_rules(data, "a")
    except ProfileError as exc:
        assert exc.problems


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(EVERYTHING)[1:]
VALIDATOR = jsonschema.Draft202012Validator(profile_schema())


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(PATHS), DATA), min_size=1, max_size=3))
def test_fuzz_data_mutated_profile_loader_accepts_only_what_the_schema_accepts(
    mutations: list[tuple[tuple[Any, ...], object]],
) -> None:
    """Replace parts of a valid profile with random values: the loader either refuses the
    result, or the schema accepts it too (the schema is never stricter than the loader)."""
    data = copy.deepcopy(EVERYTHING)
    for path, value in mutations:
        parent = data
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        load_profile_data(data)
    except ProfileError:
        return
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(data)]
    assert errors == []


def test_fuzz_billion_laughs_fails_fast() -> None:
    lines = ['x-a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"x-{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("version: 1\nlisteners: [{name: a, bind: '127.0.0.1:0', rules: *i}]")
    start = time.perf_counter()
    with pytest.raises(ProfileError, match=r"more than 100000 values"):
        load_profile_text("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 2.0


def test_fuzz_merge_bomb_fails_fast() -> None:
    lines = ["x-0: &m0 {a: 1, b: 2, c: 3, d: 4}"]
    for i in range(1, 40):
        lines.append(f"x-{i}: &m{i} {{<<: [*m{i - 1}], k{i}: [*m{i - 1}, *m{i - 1}, *m{i - 1}]}}")
    start = time.perf_counter()
    with pytest.raises(ProfileError):
        load_profile_text("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "{a: " * 50_000,
        "- " * 50_000 + "x",
        "x:\n" + "".join(" " * i + "- \n" for i in range(1, 3000)),
    ],
    ids=["flow-lists", "flow-maps", "block-lists", "indented-lists"],
)
def test_fuzz_deep_nesting_fails_fast(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ProfileError):
        load_profile_text(text)
    assert time.perf_counter() - start < 2.0


def test_fuzz_largest_document_is_read_in_time() -> None:
    row = "  - {name: l%d, bind: '127.0.0.1:0', rules: [{action: close, drain: 1s}]}\n"
    text = "version: 1\nlisteners:\n"
    i = 0
    while len(text) + len(row) + 10 < 1024 * 1024:
        text += row % i
        i += 1
    start = time.perf_counter()
    with pytest.raises(ProfileError, match=r"more than 100000 values"):
        load_profile_text(text)
    assert time.perf_counter() - start < 5.0
