"""PreparedResponse without sockets: the exact bytes of each framing, HEAD, HTTP/1.0."""

from __future__ import annotations

import json
import re

import pytest

from faultserver._decide.request import Request
from faultserver._decide.response import PreparedResponse, error_response, filler, merge_response
from faultserver._profile.model import Body, Framing, Respond, Response

DATE = re.compile(rb"date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n")
OK_HEAD = b"HTTP/1.1 200 OK\r\ndate: D\r\ncontent-type: text/plain\r\n"


def plain(framing: Framing = Framing.LENGTH, status: int = 200, **kw: object) -> PreparedResponse:
    headers = kw.pop("headers", (("content-type", "text/plain"),))
    body = kw.pop("body", Body(data=b"ok\n"))
    return PreparedResponse(Response(status=status, headers=headers, body=body, framing=framing), "backend")  # type: ignore[arg-type]


def req(method: str = "GET", version: str = "1.1", keep_alive: bool = True, path: str = "/x") -> Request:
    return Request(
        method=method,
        target=path,
        path=path,
        headers=[(b"host", b"h")],
        http_version=version,
        keep_alive=keep_alive,
    )


def render(prepared: PreparedResponse, request: Request | None = None, close: bool = False) -> bytes:
    request = request or req()
    data = prepared.render(request, 7, close, head_only=request.method == "HEAD")
    assert len(DATE.findall(data)) == 1, data
    return DATE.sub(b"date: D\r\n", data)


# --- framing -----------------------------------------------------------------------------


def test_response_length_framing():
    assert render(plain()) == OK_HEAD + b"content-length: 3\r\n\r\nok\n"


def test_response_length_framing_closing():
    assert render(plain(), close=True) == OK_HEAD + b"content-length: 3\r\nconnection: close\r\n\r\nok\n"


def test_response_chunked_framing():
    chunked = b"transfer-encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n"
    assert render(plain(Framing.CHUNKED)) == OK_HEAD + chunked


def test_response_chunked_empty_body():
    empty_chunked = b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    assert render(plain(Framing.CHUNKED, body=Body(data=b""))) == OK_HEAD + empty_chunked


def test_response_close_framing_has_no_length_and_closes():
    prepared = plain(Framing.CLOSE)
    assert render(prepared) == OK_HEAD + b"connection: close\r\n\r\nok\n"
    assert prepared.closes


def test_response_user_connection_close_header_is_kept_and_closes():
    prepared = plain(headers=(("content-type", "text/plain"), ("Connection", "close")))
    assert render(prepared) == OK_HEAD + b"Connection: close\r\ncontent-length: 3\r\n\r\nok\n"
    assert prepared.closes
    assert not plain().closes


def test_response_head_has_the_headers_of_get_and_no_body():
    assert render(plain(), req("HEAD")) == OK_HEAD + b"content-length: 3\r\n\r\n"
    assert render(plain(Framing.CHUNKED), req("HEAD")) == OK_HEAD + b"transfer-encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("status", [204, 304, 101])
def test_response_no_body_statuses(status):
    data = render(plain(status=status))
    assert data.endswith(b"content-type: text/plain\r\n\r\n")
    assert b"content-length" not in data and b"ok\n" not in data


def test_response_reason_phrases():
    assert render(plain(status=503)).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert render(plain(status=599)).startswith(b"HTTP/1.1 599 Unknown\r\n")


# --- HTTP/1.0 ------------------------------------------------------------------------------------


def test_response_http10_keep_alive_is_announced():
    data = render(plain(), req(version="1.0", keep_alive=True))
    assert data == OK_HEAD + b"content-length: 3\r\nconnection: keep-alive\r\n\r\nok\n"


def test_response_http10_closing():
    data = render(plain(), req(version="1.0", keep_alive=False), close=True)
    assert data == OK_HEAD + b"content-length: 3\r\nconnection: close\r\n\r\nok\n"


def test_response_http10_gets_no_chunked_encoding():
    data = render(plain(Framing.CHUNKED), req(version="1.0", keep_alive=False), close=True)
    assert data == OK_HEAD + b"connection: close\r\n\r\nok\n"


# --- bodies -------------------------------------------------------------------------------------


def test_response_generated_body():
    data = render(plain(body=Body(size=100)))
    assert data.endswith(b"content-length: 100\r\n\r\n" + filler(100))
    assert filler(100) == (b"faultserver filler 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEF\n" * 2)[:100]
    assert filler(0) == b""


def test_response_echo_body_describes_the_request():
    prepared = PreparedResponse(Response(), "backend")
    data = render(prepared, req("POST", path="/orders"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/json\r\n" in head
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body) == {
        "method": "POST",
        "path": "/orders",
        "target": "/orders",
        "headers": {"host": "h"},
        "body_bytes": 0,
        "listener": "backend",
        "connection": 7,
        "request_on_connection": 1,
    }


def test_response_static_body_is_cached_per_second():
    prepared = plain()
    assert prepared.render(req(), 1, False) is prepared.render(req(), 2, False)


# --- merge and errors ----------------------------------------------------------------------------


def test_merge_response_overrides_in_place_of_any_case():
    headers = (("Content-Type", "text/plain"), ("x-a", "1"))
    base = Response(status=200, headers=headers, body=Body(data=b"ok\n"))
    merged = merge_response(base, Respond(status=503, headers=(("content-type", "application/json"),)))
    assert merged == Response(
        status=503,
        headers=(("x-a", "1"), ("content-type", "application/json")),
        body=Body(data=b"ok\n"),
        framing=Framing.LENGTH,
    )
    assert merge_response(base, Respond()) == base


def test_error_response_bytes():
    data = DATE.sub(b"date: D\r\n", error_response(400, "x-fault: unknown action 'clse'"))
    body = b'{"error": "x-fault: unknown action \'clse\'"}\n'
    assert data == (
        b"HTTP/1.1 400 Bad Request\r\ndate: D\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
    )


def test_response_closes_after_http10_chunked_only():
    prepared = plain(Framing.CHUNKED)
    assert prepared.closes_after(req(version="1.0"))  # sent close-delimited: the FIN ends it
    assert not prepared.closes_after(req())
    assert plain(Framing.CLOSE).closes_after(req())
    assert not plain().closes_after(req(version="1.0"))
