"""Proxy mode's answer reader and relayed head, from bytes, with no socket: the head is read
from its own bytes, and a plain forward relays it as it came unless a hop-by-hop header
other than `Connection: keep-alive` is in it. `plain_answer` is the short path's answer:
the same relayed bytes for a whole answer in one read, None for anything else."""

from __future__ import annotations

import httptools
import pytest

from faultserver._protocol.forwarding import (
    MAX_HEAD_BYTES,
    PlainAnswers,
    ResponseBody,
    ResponseEnd,
    ResponseHead,
    ResponseReader,
    plain_answer,
    relayed_head,
)

NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b'Connection: keep-alive\r\nETag: "1-3"\r\n\r\n'
)


def read(data: bytes, head_only: bool = False) -> tuple[ResponseHead, list[object]]:
    reader = ResponseReader(head_only)
    events = reader.feed(data)
    reader.close()
    head = events[0]
    assert isinstance(head, ResponseHead)
    return head, events[1:]


def test_reader_head_is_its_bytes_and_headers_are_read_from_them() -> None:
    head, rest = read(NGINX + b"ok\n")
    assert (head.status, head.reason, head.length, head.keep_alive, head.chunked) == (
        200,
        b"OK",
        3,
        True,
        False,
    )
    assert head.raw == NGINX
    assert head.headers == [
        (b"server", b"nginx"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"3"),
        (b"connection", b"keep-alive"),
        (b"etag", b'"1-3"'),
    ]
    assert rest == [ResponseBody(b"ok\n"), ResponseEnd(reusable=True)]


def test_reader_head_arriving_in_pieces_is_whole() -> None:
    reader = ResponseReader(False)
    assert reader.feed(NGINX[:20]) == []
    assert reader.feed(NGINX[20:-1]) == []
    events = reader.feed(NGINX[-1:] + b"ok\n")
    assert isinstance(events[0], ResponseHead) and events[0].raw == NGINX
    assert events[1:] == [ResponseBody(b"ok\n"), ResponseEnd(reusable=True)]


def test_reader_skips_interim_answers_before_the_head() -> None:
    head, rest = read(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + NGINX + b"ok\n"
    )
    assert (head.status, head.raw) == (200, NGINX)
    assert rest == [ResponseBody(b"ok\n"), ResponseEnd(reusable=True)]


def test_reader_chunked_head_has_no_length() -> None:
    head, rest = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert (head.length, head.chunked) == (None, True)
    assert rest == [ResponseBody(b"abc"), ResponseEnd(reusable=True)]


def test_relayed_head_drops_only_connection_keep_alive() -> None:
    head, _ = read(NGINX)
    assert relayed_head(head, close=False, keep_alive_1_0=False) == NGINX.replace(
        b"Connection: keep-alive\r\n", b""
    )
    assert relayed_head(head, close=True, keep_alive_1_0=False) == NGINX.replace(
        b"Connection: keep-alive\r\n", b""
    ).replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")


HOP_BY_HOP_EXTRAS = [
    b"Connection: close\r\n",
    b"Connection: keep-alive, x-private\r\nX-Private: 1\r\n",
    b"Keep-Alive: timeout=5\r\n",
    b"Proxy-Authenticate: Basic\r\n",
    b"Trailer: x-sum\r\n",
    b"Upgrade: h2c\r\n",
]


@pytest.mark.parametrize("extra", HOP_BY_HOP_EXTRAS)
def test_relayed_head_refuses_other_hop_by_hop_headers(extra: bytes) -> None:
    head, _ = read(NGINX.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n"))
    assert relayed_head(head, close=False, keep_alive_1_0=False) is None


def test_relayed_head_refuses_http_10_upstreams() -> None:
    head, _ = read(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert relayed_head(head, close=False, keep_alive_1_0=False) is None


def test_reader_refuses_a_head_longer_than_its_bound() -> None:
    reader = ResponseReader(False)
    assert reader.feed(b"HTTP/1.1 200 OK\r\n") == []
    line = b"x-filler: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(httptools.HttpParserError, match=r"^the answer's head is over 262144 bytes$"):
        for _ in range(MAX_HEAD_BYTES // len(line) + 1):
            reader.feed(line)


def test_plain_answer_is_the_relayed_head_and_the_body() -> None:
    head, _ = read(NGINX)
    for close, keep_alive_1_0 in ((False, False), (True, False), (False, True)):
        relayed = relayed_head(head, close=close, keep_alive_1_0=keep_alive_1_0)
        assert relayed is not None
        assert plain_answer(NGINX + b"ok\n", close, keep_alive_1_0) == (200, relayed + b"ok\n")


def test_plain_answer_without_connection_header_gets_the_client_connection_s_own() -> None:
    head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-A: b\r\n\r\n"
    assert plain_answer(head + b"no", False, False) == (404, head + b"no")
    assert plain_answer(head + b"no", True, False) == (
        404,
        head.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n") + b"no",
    )


@pytest.mark.parametrize(
    "answer",
    [
        NGINX,  # the body is still to come
        NGINX + b"ok",
        NGINX + b"ok\nHTTP/1.1 200 OK\r\n",  # bytes after the answer: the connection goes
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
        b"HTTP/1.1 100 Continue\r\n\r\n" + NGINX + b"ok\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nok\n",
        b"HTTP/1.1 200 OK\nContent-Length: 3\n\nok\n",
        b"garbage\r\n\r\n",
    ],
)
def test_plain_answer_leaves_any_other_answer_to_the_reader(answer: bytes) -> None:
    assert plain_answer(answer, False, False) is None


@pytest.mark.parametrize("extra", HOP_BY_HOP_EXTRAS)
def test_plain_answer_leaves_other_hop_by_hop_headers_to_the_rebuild(extra: bytes) -> None:
    answer = NGINX.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n") + b"ok\n"
    assert plain_answer(answer, False, False) is None


def test_plain_answers_of_one_connection_share_a_parser_until_one_is_not_plain() -> None:
    answers = PlainAnswers()
    relayed = (200, NGINX.replace(b"Connection: keep-alive\r\n", b"") + b"ok\n")
    assert answers.take(NGINX + b"ok\n", False, False) == relayed
    assert answers.take(NGINX + b"ok\n", False, False) == relayed
    # half an answer: the general reader reads it, and the next answer starts afresh
    assert answers.take(NGINX[:30], False, False) is None
    assert answers.take(NGINX + b"ok\n", False, False) == relayed
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert answers.take(chunked, False, False) is None
    assert answers.take(NGINX + b"ok\n", False, False) == relayed
