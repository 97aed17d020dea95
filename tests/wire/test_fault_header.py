"""The X-Fault request header on the wire: every example of the profile format, errors, naming.

One request asks for one fault; the rules are bypassed for it. An unknown action or key
gets a 400 whose JSON body names the problem. `fault_header: null` switches it off, and
`fault_header: NAME` renames it. The timing of the faults a header asks for (a delay, a
hold, a dribble) is tested without the kernel in tests/shell/test_actions.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import requests

from tests.support import net
from tests.support.profiles import TEXT_OK, one_listener

ACTIONS = "respond, close, reset, hang, partial, dribble, garbage, delay, goaway, rst_stream, forward"


def profile(rules: tuple = (), **top: Any) -> dict:
    return {**one_listener(17, response=TEXT_OK, rules=list(rules)), **top}


def raw(srv: Any, fault: str, name: str = "X-Fault") -> tuple[bytes, str]:
    """Send GET / with the header; return what came back and how it ended."""
    with net.connect("127.0.0.1", srv["backend"].port) as sock:
        sock.sendall(
            f"GET / HTTP/1.1\r\nhost: faultserver\r\n{name}: {fault}\r\nconnection: close\r\n\r\n".encode()
        )
        return net.read_to_end(sock)


def get(srv: Any, fault: str | None = None, name: str = "X-Fault") -> httpx.Response:
    headers = {name: fault} if fault is not None else {}
    with httpx.Client(timeout=5, verify=False) as client:
        return client.get(srv.url + "/", headers=headers)


def error_of(response: httpx.Response) -> str:
    assert response.status_code == 400
    assert response.headers["connection"] == "close"
    return json.loads(response.content)["error"]


# --- the spec's examples ------------------------------------------------------------------


def test_fault_header_close(faultserver):
    srv = faultserver(profile())
    data, how = raw(srv, "close")
    assert (data, how) == (b"", "eof")
    fault = srv.wait_for(type="fault", timeout=2)
    assert (fault["rule"], fault["action"]) == ("x-fault", "close")
    assert get(srv).status_code == 200


def test_fault_header_reset(faultserver):
    srv = faultserver(profile())
    data, how = raw(srv, "reset")
    assert (data, how) == (b"", "reset")
    with pytest.raises(httpx.ReadError):
        get(srv, "reset")
    assert get(srv).status_code == 200


def test_fault_header_partial_then_reset(faultserver):
    srv = faultserver(profile())
    data, how = raw(srv, "partial; bytes=20; then=reset")
    assert (data, how) == (b"HTTP/1.1 200 OK\r\ndat", "reset")


# --- more of the grammar ----------------------------------------------------------------------


def test_fault_header_name_and_action_ignore_case_and_spaces(faultserver):
    srv = faultserver(profile())
    data, how = raw(srv, "  RESET ;  ", name="x-FAULT")
    assert (data, how) == (b"", "reset")


def test_fault_header_garbage_size(faultserver):
    srv = faultserver(profile())
    data, how = raw(srv, "garbage; bytes=16")
    assert how == "eof" and len(data) == 16 and not data.startswith(b"HTTP")


def test_fault_header_respond_body_and_framing(faultserver):
    srv = faultserver(profile())
    r = get(srv, "respond; status=418; body=teapot; framing=chunked")
    assert (r.status_code, r.text, r.headers["transfer-encoding"]) == (418, "teapot", "chunked")


def test_fault_header_takes_the_place_of_the_rules(faultserver):
    srv = faultserver(profile(rules=({"action": "close"},)))
    with pytest.raises(httpx.RemoteProtocolError):
        get(srv)
    assert get(srv, "respond").status_code == 200  # the header wins over the rule
    assert get(srv, "respond; status=502").status_code == 502


def test_fault_header_with_curl(faultserver):
    srv = faultserver(profile())
    result = net.curl("-H", "X-Fault: reset", srv.url + "/")
    assert result.returncode == 56, result.stderr


def test_fault_header_with_requests(faultserver):
    srv = faultserver(profile())
    with pytest.raises(requests.ConnectionError, match=r"RemoteDisconnected"):
        requests.get(srv.url + "/", headers={"X-Fault": "close"}, timeout=5)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("clse", f"x-fault: unknown action 'clse' (did you mean 'close'? expected one of: {ACTIONS})"),
        ("explode", f"x-fault: unknown action 'explode' (expected one of: {ACTIONS})"),
        ("close; drian=1s", "x-fault: drian: unknown key 'drian' for action 'close' (did you mean 'drain'?)"),
        ("respond; status=99", "x-fault: status: expected an integer from 100 to 599, got 99"),
        ("partial", "x-fault: missing required key 'bytes' for action 'partial'"),
        ("close; soon", "x-fault: expected KEY=VALUE, got 'soon'"),
        ("respond; times=2", "x-fault: key 'times' cannot be set in the fault header"),
        (
            "delay=2x",
            "x-fault: delay: expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '2x'",
        ),
    ],
)
def test_fault_header_error_is_a_400_naming_the_problem(faultserver, value, message):
    srv = faultserver(profile())
    assert error_of(get(srv, value)) == message
    assert srv.events(type="fault") == []
    assert get(srv).status_code == 200


# --- turning it off, renaming it ----------------------------------------------------------------


def test_fault_header_null_turns_it_off(faultserver):
    srv = faultserver(profile(fault_header=None))
    r = get(srv, "reset")
    assert (r.status_code, r.text) == (200, "ok\n")
    assert get(srv, "clse").status_code == 200  # not even parsed
    assert srv.events(type="fault") == []


def test_fault_header_custom_name(faultserver):
    srv = faultserver(profile(fault_header="X-Chaos"))
    assert get(srv, "reset").status_code == 200  # x-fault is now an ordinary header
    data, how = raw(srv, "reset", name="x-chaos")
    assert (data, how) == (b"", "reset")
    message = error_of(get(srv, "clse", name="X-Chaos"))
    assert message.startswith("x-chaos: unknown action 'clse' (did you mean 'close'?")
