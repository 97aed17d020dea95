"""Profiles that would freeze, wedge or expose the server are problems like any other
(issue 19: ReDoS, huge integers, FIFOs, quoted secrets, names with a trailing newline).

Each test here failed on the code before the fix (a9b1fbb); the ones that would hang there
run the slow part in a subprocess or a thread with a timeout, so they fail instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from faultserver._decide.request import Request
from faultserver._decide.rules import RuleSet
from faultserver._errors import ProfileError
from faultserver._profile.load import load_profile_data, load_profile_file, load_profile_text, load_rules

HEAD = "version: 1\nlisteners:\n  - name: a\n    bind: 127.0.0.1:0\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile_text(text, "p.yaml")
    return [str(p) for p in info.value.problems]


def one(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def request(path: str) -> Request:
    return Request(method="GET", target=path, path=path, headers=[])


# --- 8: ReDoS -------------------------------------------------------------------------------

REDOS = textwrap.dedent(
    """
    import time
    from faultserver._decide.request import Request
    from faultserver._decide.rules import RuleSet
    from faultserver._profile.load import load_rules

    rules = RuleSet(load_rules([{"match": {"path": {"regex": "^/(a+)+$"}}, "action": "close"}], "a"), 1, "a")
    start = time.perf_counter()
    missed = rules.decide_request(Request("GET", "/x", "/" + "a" * 50 + "!", []))
    took = time.perf_counter() - start
    hit = rules.decide_request(Request("GET", "/x", "/aaaa", []))
    print(missed is None, hit is not None, took)
    """
)


def test_path_regex_with_nested_quantifiers_matches_in_linear_time() -> None:
    # in a subprocess: Python's `re` needs about 2**50 steps for this, and holds the GIL
    try:
        result = subprocess.run(
            [sys.executable, "-c", REDOS], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail("matching '/' + 50 a's + '!' against ^/(a+)+$ did not end within 20 s")
    assert result.returncode == 0, result.stderr
    missed, hit, took = result.stdout.split()
    print(f"^/(a+)+$ against 50 a's and '!': {float(took) * 1e6:.0f} us")
    assert (missed, hit) == ("True", "True")
    assert float(took) < 0.1


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        (r"^/(\\w+)/\\1$", "invalid escape sequence: \\1"),
        (r"^/(?=api)", "invalid perl operator: (?="),
        (r"(?<!x)y", "invalid perl operator: (?<!"),
        (r"^/x\\Z", "invalid escape sequence: \\Z"),
        (r"a{1001}", "invalid repetition size: {1001}"),
    ],
)
def test_path_regex_that_needs_backtracking_is_a_located_problem(pattern: str, what: str) -> None:
    text = HEAD + f'    rules: [{{match: {{path: {{regex: "{pattern}"}}}}, action: close}}]\n'
    assert one(text) == (
        "p.yaml:5:36: listeners[0].rules[0].match.path.regex: regex not supported by the "
        f"linear-time engine (RE2): {what}; RE2 has no backreferences, lookaround, possessive "
        "quantifiers, atomic groups, verbose mode or \\Z (use $)"
    )


def test_path_regex_sees_the_first_8_KiB_of_a_path() -> None:
    rules = RuleSet(
        load_rules(
            [
                {"name": "prefix", "match": {"path": {"regex": "^/api/"}}, "action": "close"},
                {"name": "suffix", "match": {"path": {"regex": "\\.json$"}}, "action": "close"},
            ],
            "a",
        ),
        1,
        "a",
    )
    long_tail = "x" * 9000

    def acting(path: str) -> str | None:
        decision = rules.decide_request(request(path))
        return decision.rule if decision is not None else None

    assert acting("/api/" + long_tail) == "prefix"
    assert acting("/v1/" + long_tail + ".json") is None  # the end is past 8 KiB
    assert acting("/v1/x.json") == "suffix"


def test_path_regex_semantics_are_pythons_where_both_engines_agree() -> None:
    rules = RuleSet(
        load_rules([{"match": {"path": {"regex": "^/orders/(?P<id>[0-9]+)$"}}, "action": "reset"}], "a"),
        1,
        "a",
    )
    assert rules.decide_request(request("/orders/42")) is not None
    assert rules.decide_request(request("/orders/42/items")) is None


# --- 9: integers ------------------------------------------------------------------------------


def test_sexagesimal_integer_of_1_MB_is_refused_in_well_under_a_second() -> None:
    text = HEAD + "seed: 1" + ":0" * ((1024 * 1024 - len(HEAD) - 20) // 2) + "\n"
    start = time.perf_counter()
    found = problems(text)
    took = time.perf_counter() - start
    print(f"1 MB sexagesimal seed: refused in {took:.3f} s")
    assert found == ["p.yaml:5:7: seed: number too large, got 1:0:0:0:0:0:0:0:0:0:0:0:0:0:...:0:0:0"]
    assert took < 5.0


def test_profile_of_many_long_numbers_is_checked_in_well_under_a_second() -> None:
    line = "x-n{}: 1" + ":0" * 60 + "\n"  # 120 characters: each is refused before conversion
    lines = [line.format(i) for i in range(1024 * 1024 // (len(line) + 6))]
    text = HEAD + "".join(lines)
    start = time.perf_counter()
    found = problems(text)
    took = time.perf_counter() - start
    print(f"{len(text)} bytes of {len(lines)} long numbers: checked in {took:.3f} s")
    assert len(found) == len(lines)
    assert took < 5.0


def test_hex_seed_of_4000_digits_is_a_problem() -> None:
    assert one(HEAD + "seed: 0x" + "f" * 4000 + "\n") == (
        "p.yaml:5:7: seed: number too large, got 0xffffffffffffffffffffffffff...ffffff"
    )


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ("18446744073709551616", "got 18446744073709551616"),
        ("-9223372036854775809", "got -9223372036854775809"),
    ],
)
def test_seed_is_a_64_bit_integer(seed: str, message: str) -> None:
    assert one(HEAD + f"seed: {seed}\n") == (
        "p.yaml:5:7: seed: expected an integer from -9223372036854775808 to "
        f"18446744073709551615, {message}"
    )
    assert load_profile_text(HEAD + "seed: 18446744073709551615\n").seed == 2**64 - 1
    assert load_profile_text(HEAD + "seed: -1\n").seed == -1


@pytest.mark.parametrize(
    ("key", "written", "column", "path"),
    [
        ("times", "10000000000", 16, "rules[0].times"),
        ("times", "0x" + "f" * 200, 16, "rules[0].times"),
    ],
)
def test_rule_counts_are_bounded(key: str, written: str, column: int, path: str) -> None:
    text = HEAD + f"    rules:\n      - action: close\n        {key}: {written}\n"
    found = one(text)
    assert found.startswith(f"p.yaml:7:{column}: listeners[0].{path}: ")
    assert found.endswith(("expected an integer from 1 to 1000000000, got 10000000000", "...ffffff"))


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["max_connections: 2000000000"],
            "p.yaml:5:22: listeners[0].max_connections: "
            "expected an integer from 1 to 1000000000, got 2000000000",
        ),
        (
            ["keepalive: {max_requests: 99999999999999}"],
            "p.yaml:5:31: listeners[0].keepalive.max_requests: "
            "expected an integer from 1 to 1000000000, got 99999999999999",
        ),
        (
            ["rules: [{action: close, match: {request_on_connection: '>=10000000000'}}]"],
            "p.yaml:5:60: listeners[0].rules[0].match.request_on_connection: "
            "expected a request number of at most 1000000000, got 10000000000",
        ),
        (
            ["rules: [{action: close, match: {request_on_connection: '>=" + "9" * 5000 + "'}}]"],
            "p.yaml:5:60: listeners[0].rules[0].match.request_on_connection: expected an int or "
            "a comparison such as '>=2', '<3', '==1', got '>=99999999999999999999999999'... "
            "(5002 characters)",
        ),
    ],
)
def test_listener_counts_are_bounded(lines: list[str], expected: str) -> None:
    assert one(HEAD + "".join(f"    {line}\n" for line in lines)) == expected


def test_huge_integer_in_data_is_a_problem_anywhere() -> None:
    data = {"version": 1, "x-note": 10**5000, "listeners": [{"name": "a", "bind": "127.0.0.1:0"}]}
    with pytest.raises(ProfileError) as info:
        load_profile_data(data)
    assert [str(p) for p in info.value.problems] == [
        "<data>:0:0: x-note: number too large, got a huge number"
    ]


def test_valid_profile_raw_is_always_json() -> None:
    profile = load_profile_text(HEAD + "x-big: " + "9" * 100 + "\nseed: 0xffffffffffffffff\n")
    assert json.loads(json.dumps(profile.raw))["seed"] == 2**64 - 1


# --- 10: files that are not profiles -------------------------------------------------------------


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "profile.fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_profile_file(str(fifo))
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # the loader waits for a writer: give it one, so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail("load_profile_file blocked on a FIFO")
    [error] = outcome
    assert isinstance(error, ProfileError)
    assert str(error) == f"{fifo}:1:1: cannot read file: not a regular file (a named pipe)"


def test_socket_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profile.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        with pytest.raises(ProfileError) as info:
            load_profile_file(str(path))
    assert str(info.value) == f"{path}:1:1: cannot read file: not a regular file (a socket)"


SECRET = "root:$6$saltsalt$Hh0XyZhashhashhash:19000:0:99999:7:::"
NOT_A_MAPPING = "expected a mapping at the top of the profile, got"
NOT_A_PROFILE = (
    "expected a profile (a mapping of version, seed, fault_header, listeners, control), "
    "got a mapping with none of these keys"
)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (SECRET + "\n", NOT_A_PROFILE),
        (SECRET + "\ndaemon:*:19000:0:99999:7:::\n", NOT_A_PROFILE),
        (SECRET[:-3] + "\n", f"{NOT_A_MAPPING} a string"),
        ("12345\n", f"{NOT_A_MAPPING} a number"),
        (f"- {{password: '{SECRET}', password: 2}}\n", f"{NOT_A_MAPPING} a list"),
        (f"!!python/name:{SECRET}\n", f"{NOT_A_MAPPING} a value that YAML cannot read"),
    ],
)
def test_file_that_is_not_a_profile_is_not_quoted(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "shadow"
    path.write_text(content)
    with pytest.raises(ProfileError) as info:
        load_profile_file(str(path))
    assert str(info.value) == f"{path}:1:1: {expected}"
    assert "$6$" not in str(info.value) and "password" not in str(info.value)


# --- 13: names with a trailing newline ---------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            HEAD.replace("name: a", 'name: "a\\n"'),
            "p.yaml:3:11: listeners[0].name: "
            "expected a name of lower-case letters, digits, '_' and '-', got 'a\\n'",
        ),
        (
            HEAD + 'fault_header: "x-fault\\n"\n',
            "p.yaml:5:15: fault_header: expected a header name (an HTTP token), got 'x-fault\\n'",
        ),
        (
            HEAD + '    response: {headers: {"x-a\\n": b}}\n',
            "p.yaml:5:26: listeners[0].response.headers['x-a\\n']: "
            "expected a header name (an HTTP token), got 'x-a\\n'",
        ),
        (
            HEAD + '    rules: [{action: close, match: {method: "GET\\n"}}]\n',
            "p.yaml:5:45: listeners[0].rules[0].match.method: "
            "expected an HTTP method such as 'GET', got 'GET\\n'",
        ),
        (
            HEAD + '    rules: [{action: close, match: {headers: {"x-t\\n": b}}}]\n',
            "p.yaml:5:47: listeners[0].rules[0].match.headers['x-t\\n']: "
            "expected a header name (an HTTP token), got 'x-t\\n'",
        ),
    ],
    ids=["listener-name", "fault-header", "response-header", "method", "match-header"],
)
def test_names_with_a_trailing_newline_are_problems(yaml_text: str, expected: str) -> None:
    assert one(yaml_text) == expected


def test_mapping_with_a_typo_of_a_profile_key_is_still_checked_as_a_profile() -> None:
    assert problems("verison: 1\nlistener: []\n") == [
        "p.yaml:1:1: verison: unknown key 'verison' (did you mean 'version'?)",
        "p.yaml:1:1: missing required key 'version'",
        "p.yaml:1:1: missing required key 'listeners'",
        "p.yaml:2:1: listener: unknown key 'listener' (did you mean 'listeners'?)",
    ]


def test_long_unknown_key_is_shortened() -> None:
    assert one(HEAD + "k" * 100 + ": 1\n") == (
        "p.yaml:5:1: 'kkkkkkkkkkkkkkkkkkkkkkkkkkkk...kkkkkk': unknown key "
        "'kkkkkkkkkkkkkkkkkkkkkkkkkkkk'... (100 characters) "
        "(expected one of: version, seed, fault_header, listeners, control)"
    )
