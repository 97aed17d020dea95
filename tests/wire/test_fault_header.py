"""The X-Fault request header on the wire: every example of profile-v1.md, errors, naming.

One request asks for one fault; the rules are bypassed for it. An unknown action or key
gets a 400 whose JSON body names the problem. `fault_header: null` switches it off, and
`fault_header: NAME` renames it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from typing import Any, Optional

import httpx
import pytest
import requests

CURL = shutil.which("curl") or "/usr/bin/curl"
ACTIONS = "respond, close, reset, hang, partial, dribble, garbage"


def profile(rules: tuple = (), **top: Any) -> dict:
    return {
        "version": 1,
        "seed": 17,
        **top,
        "listeners": [
            {
                "name": "backend",
                "bind": "127.0.0.1:0",
                "response": {"headers": {"content-type": "text/plain"}, "body": "ok\n"},
                "rules": list(rules),
            }
        ],
    }


def raw(srv: Any, fault: Optional[str], name: str = "X-Fault", timeout: float = 5) -> tuple[bytes, str, float]:
    """Send GET / with the header; return what came back, how it ended and how long it took."""
    header = f"{name}: {fault}\r\n" if fault is not None else ""
    with socket.create_connection(("127.0.0.1", srv["backend"].port), timeout=timeout) as sock:
        start = time.monotonic()
        sock.sendall(f"GET / HTTP/1.1\r\nhost: faultserver\r\n{header}connection: close\r\n\r\n".encode())
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
            how = "eof"
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            how = "timeout"
    return data, how, time.monotonic() - start


def get(srv: Any, fault: Optional[str] = None, name: str = "X-Fault") -> httpx.Response:
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
    data, how, _ = raw(srv, "close")
    assert (data, how) == (b"", "eof")
    fault = srv.wait_for(type="fault", timeout=2)
    assert (fault["rule"], fault["action"]) == ("x-fault", "close")
    assert get(srv).status_code == 200


def test_fault_header_reset(faultserver):
    srv = faultserver(profile())
    data, how, _ = raw(srv, "reset")
    assert (data, how) == (b"", "reset")
    with pytest.raises(httpx.ReadError):
        get(srv, "reset")
    assert get(srv).status_code == 200


def test_fault_header_delay_alone_means_respond_after_the_delay(faultserver):
    srv = faultserver(profile())
    data, how, took = raw(srv, "delay=2s")
    assert how == "eof"
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nok\n")
    assert 1.9 <= took < 10
    assert srv.events(type="fault")[0]["action"] == "respond"


def test_fault_header_respond_with_status_and_delay(faultserver):
    srv = faultserver(profile())
    start = time.monotonic()
    r = get(srv, "respond; status=503; delay=100ms")
    assert time.monotonic() - start >= 0.08
    assert (r.status_code, r.text) == (503, "ok\n")


def test_fault_header_partial_then_reset(faultserver):
    srv = faultserver(profile())
    data, how, _ = raw(srv, "partial; bytes=20; then=reset")
    assert (data, how) == (b"HTTP/1.1 200 OK\r\ndat", "reset")


# --- more of the grammar ----------------------------------------------------------------------


def test_fault_header_name_and_action_ignore_case_and_spaces(faultserver):
    srv = faultserver(profile())
    data, how, _ = raw(srv, "  RESET ;  ", name="x-FAULT")
    assert (data, how) == (b"", "reset")


def test_fault_header_hang_for(faultserver):
    srv = faultserver(profile())
    data, how, took = raw(srv, "hang; for=300ms")
    assert (data, how) == (b"", "eof")
    assert 0.25 <= took < 5


def test_fault_header_garbage_size(faultserver):
    srv = faultserver(profile())
    data, how, _ = raw(srv, "garbage; bytes=16")
    assert how == "eof" and len(data) == 16 and not data.startswith(b"HTTP")


def test_fault_header_dribble(faultserver):
    srv = faultserver(profile())
    data, how, took = raw(srv, "dribble; chunk=10; interval=10ms")
    assert how == "eof" and data.endswith(b"\r\n\r\nok\n")
    assert took >= 0.05


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
    result = subprocess.run(
        [CURL, "-sS", "-m", "5", "-H", "X-Fault: reset", srv.url + "/"], capture_output=True, timeout=30
    )
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
        ("delay=2x", "x-fault: delay: expected a duration such as 1.5, '250ms', '2s', '1m' or '1h', got '2x'"),
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
    data, how, _ = raw(srv, "reset", name="x-chaos")
    assert (data, how) == (b"", "reset")
    message = error_of(get(srv, "clse", name="X-Chaos"))
    assert message.startswith("x-chaos: unknown action 'clse' (did you mean 'close'?")
