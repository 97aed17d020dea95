"""The admin API's guard, without a socket: Host, Origin, token and Content-Type checks on
request heads (interfaces-v1.md "Admin API"; issue 19 item 1)."""

from __future__ import annotations

import pytest

from faultserver._admin.guard import RequestGuard, RequestHead

LOCAL = ("127.0.0.1", 8474)


def head(method="GET", path="/listeners", local=LOCAL, **headers: str) -> RequestHead:
    fields = {"host": f"{local[0]}:{local[1]}" if ":" not in local[0] else f"[{local[0]}]:{local[1]}"}
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    return RequestHead(method, path, {k: v for k, v in fields.items() if v is not None}, local)


def status(guard: RequestGuard, h: RequestHead) -> int:
    refusal = guard.check(h)
    return 200 if refusal is None else refusal.status


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8474", True),
        ("localhost:8474", True),
        ("LOCALHOST:8474", True),
        ("[::1]:8474", True),
        ("faultserver.internal:8474", True),  # in allowed_hosts
        ("Faultserver.Internal.:8474", True),
        ("attacker.example:8474", False),
        ("127.0.0.1:8475", False),  # another port: another origin
        ("127.0.0.1", False),  # no port means 80
        ("localhost.attacker.example:8474", False),
        ("127.0.0.1:8474:1", False),
        ("[::1:8474", False),
        ("", False),
    ],
)
def test_guard_host_must_name_this_admin_api(host, allowed):
    guard = RequestGuard(None, ["faultserver.internal"])
    assert status(guard, head(host=host)) == (200 if allowed else 403)


def test_guard_host_on_a_wildcard_bind_is_the_address_the_request_arrived_at():
    guard = RequestGuard("t")
    local = ("10.1.2.3", 8474)  # bound 0.0.0.0; the request came in on 10.1.2.3
    auth = "Bearer t"
    assert status(guard, head(local=local, host="10.1.2.3:8474", authorization=auth)) == 200
    assert status(guard, head(local=local, host="10.9.9.9:8474", authorization=auth)) == 403
    mapped = ("::ffff:10.1.2.3", 8474)  # a dual-stack socket
    assert status(guard, head(local=mapped, host="10.1.2.3:8474", authorization=auth)) == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_guard_probes_answer_any_host_and_no_token(path):
    guard = RequestGuard("secret")
    assert guard.check(head(path=path, host="10.0.0.7:8474")) is None
    assert guard.check(head(path=path, host="anything", origin="http://evil.example")) is None
    assert status(guard, head("DELETE", path, host="anything")) == 403  # probes are GETs only


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # scripts send none
        ("http://127.0.0.1:8474", True),
        ("http://localhost:8474", True),
        ("http://evil.example", False),
        ("http://evil.example:8474", False),
        ("https://127.0.0.1:8474", False),
        ("http://127.0.0.1:8475", False),
        ("null", False),
        ("http://127.0.0.1:99999", False),
    ],
)
def test_guard_origin_must_be_this_admin_api(origin, allowed):
    guard = RequestGuard(None)
    h = head("POST", "/reset", origin=origin)
    assert status(guard, h) == (200 if allowed else 403)


def test_guard_refusals_say_what_was_expected_and_close():
    guard = RequestGuard(None)
    refusal = guard.check(head(host="attacker.example"))
    assert refusal is not None
    assert refusal.message == (
        "Host 'attacker.example' does not name this admin API (expected its address, localhost "
        "or a name in control.allowed_hosts, with its port)"
    )
    assert ("connection", "close") in refusal.headers
    refusal = guard.check(head("POST", "/reset", origin="http://evil.example"))
    assert refusal is not None
    assert refusal.message == (
        "Origin 'http://evil.example' is not this admin API's (cross-origin requests are refused)"
    )


@pytest.mark.parametrize(
    ("method", "path", "content_type", "length", "expected"),
    [
        ("POST", "/reset", None, None, 200),  # curl -X POST: no body, no type needed
        ("POST", "/reset", None, "0", 200),
        ("POST", "/listeners/b/drop", "application/json", "13", 200),
        ("POST", "/listeners/b/drop", "application/json; charset=utf-8", "13", 200),
        ("POST", "/listeners/b/drop", "text/plain", "13", 415),
        ("POST", "/listeners/b/drop", "application/x-www-form-urlencoded", "13", 415),
        ("POST", "/listeners/b/drop", "multipart/form-data; boundary=x", "13", 415),
        ("POST", "/listeners/b/drop", None, "13", 415),
        ("PATCH", "/listeners/b", "application/yaml", "13", 415),  # YAML only for a profile
        ("PUT", "/profile", "application/yaml", "13", 200),
        ("PUT", "/profile", "application/x-yaml", "13", 200),
        ("PUT", "/profile", "text/yaml", "13", 200),
        ("PUT", "/profile", "application/json", "13", 200),
        ("PUT", "/profile", "application/x-www-form-urlencoded", "13", 415),  # curl --data-binary
        ("GET", "/events", "text/plain", "13", 200),  # reads are not checked
    ],
)
def test_guard_a_body_must_say_its_type(method, path, content_type, length, expected):
    guard = RequestGuard(None)
    assert status(guard, head(method, path, content_type=content_type, content_length=length)) == expected


def test_guard_chunked_body_counts_as_a_body():
    guard = RequestGuard(None)
    assert status(guard, head("PUT", "/profile", transfer_encoding="chunked")) == 415


def test_guard_415_message():
    guard = RequestGuard(None)
    refusal = guard.check(head("PUT", "/profile", content_type="text/plain", content_length="3"))
    assert refusal is not None
    assert refusal.message == (
        "expected Content-Type application/json or application/yaml for a body, got 'text/plain'"
    )
    refusal = guard.check(head("POST", "/reset", content_length="3"))
    assert refusal is not None
    assert refusal.message == "expected Content-Type application/json for a body, got none"


def test_guard_token_compares_the_header_bytes_with_the_token_utf8():
    guard = RequestGuard("s3crét-ключ")
    # the header arrives as bytes; the server reads them as Latin-1 text
    sent = "Bearer s3crét-ключ".encode().decode("latin-1")
    assert guard.check(head(authorization=sent)) is None
    assert status(guard, head(authorization="Bearer s3crét-ключ")) == 401  # not what a client sends
    assert status(guard, head(authorization="Bearer s3cret-ключ".encode().decode("latin-1"))) == 401


def test_guard_host_is_checked_before_the_token():
    guard = RequestGuard("secret")
    assert status(guard, head(host="attacker.example:8474")) == 403
    assert status(guard, head()) == 401
