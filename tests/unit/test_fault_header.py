"""`parse_fault_header` without sockets: the grammar and every error message, pinned."""

from __future__ import annotations

import pytest

from faultserver._decide.fault_header import FaultHeaderError, parse_fault_header
from faultserver._profile.model import (
    ActionName,
    Body,
    Close,
    Dribble,
    Framing,
    Garbage,
    Hang,
    Partial,
    Reset,
    Respond,
)
from faultserver._profile.units import Fixed

ACTIONS = "respond, close, reset, hang, partial, dribble, garbage"


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
    assert parse_fault_header("partial; bytes=20; then=reset").action == Partial(bytes=20, then=ActionName.RESET)


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
            "drain: key 'drain' does not apply to action 'reset' (it belongs to close; reset takes no keys of its own)",
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
        ("partial; bytes=abc", "bytes: expected a size such as 512, '512B', '4KiB', '1MiB' or '1KB', got 'abc'"),
        ("partial; bytes=2; then=respond", "then: unknown 'then' action 'respond' (expected one of: close, reset, hang)"),
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
