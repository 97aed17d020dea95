"""`parse_fault_header` and `decide_fault_header` without sockets: the grammar, the limit and
every error message, pinned."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultserver._decide.fault_header import FaultHeaderError, decide_fault_header, parse_fault_header
from faultserver._decide.rules import Decision
from faultserver._profile.load import load_profile_text
from faultserver._profile.model import (
    ActionName,
    Body,
    Close,
    Dribble,
    Framing,
    Garbage,
    Hang,
    Limits,
    Partial,
    Reset,
    Respond,
)
from faultserver._profile.units import Fixed

ACTIONS = "respond, close, reset, hang, partial, dribble, garbage, delay, goaway, rst_stream, forward"
SIZE = "expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB'"
DURATION = "expected a duration such as 1.5, '250ms', '2s', '1m' or '1h'"
NINES = "9" * 5000
SHOWN = f"'{'9' * 28}'... (5000 characters)"


# --- the spec's examples --------------------------------------------------------------------


def test_fault_header_close():
    rule = parse_fault_header("close")
    assert (rule.name, rule.action, rule.delay) == ("x-fault", Close(drain_s=1.0), None)


def test_fault_header_reset():
    assert parse_fault_header("reset").action == Reset()


def test_fault_header_delay_alone_is_respond():
    rule = parse_fault_header("delay=2s")
    assert rule.action == Respond()
    assert rule.delay == Fixed(2.0)


def test_fault_header_respond_status_delay():
    rule = parse_fault_header("respond; status=503; delay=100ms")
    assert rule.action == Respond(status=503)
    assert rule.delay == Fixed(0.1)


def test_fault_header_partial_then_reset():
    action = parse_fault_header("partial; bytes=20; then=reset").action
    assert action == Partial(bytes=20, then=ActionName.RESET)


# --- the rest of the grammar -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "action"),
    [
        ("CLOSE", Close()),
        ("  close  ;  drain = 250ms ; ", Close(drain_s=0.25)),
        ("close;drain=0", Close(drain_s=0.0)),
        ("hang", Hang()),
        ("hang; for=1.5s", Hang(for_s=Fixed(1.5))),
        ("partial; bytes=1KiB", Partial(bytes=1024)),
        ("partial; bytes=3; then=hang", Partial(bytes=3, then=ActionName.HANG)),
        ("dribble; interval=10ms", Dribble(chunk_bytes=1, interval=Fixed(0.01))),
        ("dribble; chunk=4; interval=1", Dribble(chunk_bytes=4, interval=Fixed(1.0))),
        ("dribble; rate=1KiB/s", Dribble(rate_bytes_per_s=1024.0)),
        ("garbage", Garbage(bytes=64)),
        ("garbage; bytes=16", Garbage(bytes=16)),
        ("respond; body=a=b", Respond(body=Body(data=b"a=b"))),
        ("respond; body=42", Respond(body=Body(data=b"42"))),
        ("respond; framing=chunked", Respond(framing=Framing.CHUNKED)),
        ("status=418", Respond(status=418)),
        ("", Respond()),
        (" ; ", Respond()),
    ],
)
def test_fault_header_grammar(value, action):
    assert parse_fault_header(value).action == action


def test_fault_header_key_names_ignore_case():
    assert parse_fault_header("respond; STATUS=502").action == Respond(status=502)


def test_fault_header_delay_with_any_action():
    rule = parse_fault_header("reset; delay=1m")
    assert (rule.action, rule.delay) == (Reset(), Fixed(60.0))


def test_fault_header_parse_is_cached():
    assert parse_fault_header("close; drain=2s") is parse_fault_header("close; drain=2s")


# --- errors, pinned --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("clse", f"unknown action 'clse' (did you mean 'close'? expected one of: {ACTIONS})"),
        ("explode", f"unknown action 'explode' (expected one of: {ACTIONS})"),
        ("close; drian=1s", "drian: unknown key 'drian' for action 'close' (did you mean 'drain'?)"),
        (
            "reset; drain=1s",
            "drain: key 'drain' does not apply to action 'reset' "
            "(it belongs to close; reset takes no keys of its own)",
        ),
        ("close; soon", "expected KEY=VALUE, got 'soon'"),
        ("close; =1", "expected KEY=VALUE, got '=1'"),
        ("delay=1s; close", "expected KEY=VALUE, got 'close'"),
        ("close; delay=1s; delay=2s", "duplicate key 'delay'"),
        ("respond; times=2", "key 'times' cannot be set in the fault header"),
        ("respond; probability=0.5", "key 'probability' cannot be set in the fault header"),
        ("respond; match=x", "key 'match' cannot be set in the fault header"),
        ("respond; at=connect", "key 'at' cannot be set in the fault header"),
        ("respond; headers=a", "key 'headers' cannot be set in the fault header"),
        ("respond; status=99", "status: expected an integer from 100 to 599, got 99"),
        ("respond; status=abc", "status: expected an integer from 100 to 599, got 'abc'"),
        ("partial", "missing required key 'bytes' for action 'partial'"),
        ("partial; bytes=abc", f"bytes: {SIZE}, got 'abc'"),
        (
            "partial; bytes=2; then=respond",
            "then: unknown 'then' action 'respond' (expected one of: close, reset, hang)",
        ),
        ("dribble; chunk=1", "action 'dribble' needs 'interval' (with an optional 'chunk') or 'rate'"),
        ("dribble; interval=1s; rate=1KiB/s", "rate: action 'dribble' takes 'interval' or 'rate', not both"),
        ("delay=2x", "delay: expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '2x'"),
        ("hang; for=-1s", "for: expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '-1s'"),
    ],
)
def test_fault_header_errors(value, message):
    with pytest.raises(FaultHeaderError) as info:
        parse_fault_header(value)
    assert str(info.value) == message


def test_fault_header_error_is_a_value_error():
    assert issubclass(FaultHeaderError, ValueError)


# --- numbers of any length are a 400, never a traceback (issue 19, item 13) -----------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("respond; status=" + NINES, f"status: expected an integer from 100 to 599, got {SHOWN}"),
        ("partial; bytes=" + NINES, f"bytes: {SIZE}, got {SHOWN}"),
        ("close; drain=" + NINES, f"drain: {DURATION}, got {SHOWN}"),
        ("delay=-" + "9" * 4400, f"delay: {DURATION}, got '-{'9' * 27}'... (4401 characters)"),
        (
            "dribble; chunk=1" + "0" * 30 + "; interval=1s",
            "chunk: number too large, got 1000000000000000000000000000000",
        ),
        ("garbage; bytes=" + "1" * 100, f"bytes: number too large, got {'1' * 28}...111111"),
    ],
    ids=["status", "bytes", "drain", "delay", "chunk", "bytes-100-digits"],
)
def test_fault_header_huge_numbers_are_errors(value, message):
    with pytest.raises(FaultHeaderError) as info:
        parse_fault_header(value)
    assert str(info.value) == message


def test_fault_header_long_part_is_shortened_in_the_message():
    with pytest.raises(FaultHeaderError) as info:
        parse_fault_header("close; " + "x" * 60000)
    assert str(info.value) == "expected KEY=VALUE, got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (60000 characters)"


PIECES = [*"=; 0123456789.-sSmMhHkKiIbB/xX,\t", *ACTIONS.split(", "), "bytes", "chunk", "status"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_fault_header_any_value_is_a_rule_or_a_fault_header_error(value):
    try:
        parse_fault_header(value)
    except FaultHeaderError:
        pass


# --- decide_fault_header: the decision, and the listener's limit (issue 19, item 3) ---------


def test_decide_fault_header_draws_the_delay_from_the_stream():
    decision = decide_fault_header(b"reset; delay=250ms", random.Random(1), Limits())
    assert decision == Decision("x-fault", Reset(), 0.25, decision.rng)
    rng = random.Random(7)
    assert decide_fault_header(b"respond", rng, Limits()).rng is rng


def test_decide_fault_header_decodes_latin_1():
    decision = decide_fault_header(b"respond; body=caf\xe9", random.Random(1), Limits())
    assert decision.action == Respond(body=Body(data="café".encode()))


@pytest.mark.parametrize(
    ("value", "key", "asked"),
    [
        (b"garbage; bytes=1GiB", "bytes", 1024**3),
        (b"garbage; bytes=1048577", "bytes", 1048577),
        (b"partial; bytes=2MiB", "bytes", 2 * 1024**2),
        (b"dribble; chunk=4MiB; interval=1s", "chunk", 4 * 1024**2),
    ],
)
def test_decide_fault_header_refuses_sizes_above_the_limit(value, key, asked):
    with pytest.raises(FaultHeaderError) as info:
        decide_fault_header(value, random.Random(1), Limits())
    assert str(info.value) == (
        f"{key}: expected a size of at most 1048576 bytes (limits.max_fault_header_bytes), got {asked}"
    )


def test_decide_fault_header_limit_is_per_listener():
    small = Limits(max_fault_header_bytes=16)
    assert decide_fault_header(b"garbage; bytes=16", random.Random(1), small).action == Garbage(bytes=16)
    with pytest.raises(FaultHeaderError, match=r"^bytes: expected a size of at most 16 bytes"):
        decide_fault_header(b"garbage; bytes=17", random.Random(1), small)
    decision = decide_fault_header(b"garbage; bytes=1MiB", random.Random(1), Limits())
    assert decision.action == Garbage(bytes=1024**2)


def test_decide_fault_header_limit_is_read_from_the_profile():
    profile = load_profile_text(
        "version: 1\nlisteners:\n  - name: a\n    bind: 127.0.0.1:0\n"
        "    limits: {max_fault_header_bytes: 4KiB}\n"
    )
    assert profile.listeners[0].limits.max_fault_header_bytes == 4096
    assert Limits().max_fault_header_bytes == 1024 * 1024


def test_fault_header_long_key_is_shortened_in_the_message():
    with pytest.raises(FaultHeaderError) as info:
        parse_fault_header("close; " + "k" * 5000 + "=1")
    assert str(info.value) == (
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkk...kkkkkk: unknown key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkk'... "
        "(5000 characters) for action 'close' (expected one of: delay, drain, close_notify)"
    )
