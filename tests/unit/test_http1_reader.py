"""The HTTP/1.1 reader on its own: bytes in, events out, time as an argument. No socket, no loop."""

from __future__ import annotations

import gc
import math
import weakref

import pytest

from faultserver._decide.request import Request
from faultserver._profile.model import Limits
from faultserver._protocol.events import ContinueExpected, PeerEnded, Refusal
from faultserver._protocol.http1 import HEADER_COST_BYTES, ReaderState, RequestReader


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drain(reader: RequestReader) -> list[object]:
    return list(reader.take_events())


def reader_for(clock: Clock | None = None, **limits: object) -> RequestReader:
    clock = clock or Clock()
    return RequestReader(Limits(**limits), clock.now)  # type: ignore[arg-type]


SPEAKS_1 = "(this listener speaks HTTP/1.1)"
GET = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: r1\r\n\r\n"


def test_reader_gives_one_request_with_its_head():
    reader = reader_for()
    reader.feed(GET, Clock())
    [request] = drain(reader)
    assert isinstance(request, Request)
    assert (request.method, request.target, request.path) == ("GET", "/a?b=1", "/a")
    assert request.headers == [(b"host", b"x"), (b"x-request-id", b"r1")]
    assert (request.http_version, request.keep_alive, request.number, request.body) == ("1.1", True, 1, b"")
    assert reader.state is ReaderState.IDLE


def test_reader_gives_pipelined_requests_in_order_numbered():
    reader = reader_for()
    reader.feed(GET.replace(b"/a", b"/1") + GET.replace(b"/a", b"/2") + GET.replace(b"/a", b"/3"), Clock())
    assert [(r.path, r.number) for r in drain(reader)] == [("/1", 1), ("/2", 2), ("/3", 3)]


def test_reader_needs_more_bytes_for_a_partial_head():
    reader = reader_for()
    reader.feed(GET[:10], Clock())
    assert reader.take_events() == []
    assert reader.state is ReaderState.HEAD
    reader.feed(GET[10:], Clock())
    assert [r.path for r in drain(reader)] == ["/a"]


def test_reader_accumulates_a_chunked_body_in_one_buffer():
    reader = reader_for()
    chunks = b"".join(b"2\r\nab\r\n" for _ in range(1000)) + b"0\r\n\r\n"
    reader.feed(b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks, Clock())
    [request] = drain(reader)
    assert request.body == b"ab" * 1000
    assert type(request.body) is bytearray  # one buffer, not 1000 bytes objects


def test_reader_refuses_a_body_over_the_limit_after_earlier_requests():
    reader = reader_for(max_body_bytes=10)
    reader.feed(GET + b"POST /p HTTP/1.1\r\nContent-Length: 11\r\n\r\n", Clock())
    first, refusal = drain(reader)
    assert isinstance(first, Request)
    assert refusal == Refusal(413, "request body too large")
    assert reader.state is ReaderState.DONE
    reader.feed(GET, Clock())  # nothing more is read
    assert reader.take_events() == []


def test_reader_counts_header_memory_not_only_wire_bytes():
    # 200 tiny headers: 1.2 KB on the wire, but each costs a tuple and two bytes objects
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"a%d: b\r\n" % i for i in range(200)) + b"\r\n"
    limit = 100 * HEADER_COST_BYTES
    reader = reader_for(max_header_bytes=limit)
    reader.feed(head, Clock())
    assert drain(reader) == [Refusal(431, "request headers too large")]


def test_reader_refuses_an_unfinished_head_over_the_limit_on_wire_bytes():
    reader = reader_for(max_header_bytes=1024)
    reader.feed(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 2000, Clock())
    assert drain(reader) == [Refusal(431, "request headers too large")]


@pytest.mark.parametrize(
    ("data", "refusal"),
    [
        (b"GET / HTTP/2.0\r\n\r\n", Refusal(505, f"HTTP/2.0 is not supported {SPEAKS_1}")),
        (b"GET  /x  HTTP/1.1\r\nHost: x\r\n\r\n", Refusal(400, "malformed request")),
        (b"GET /\r\n\r\n", Refusal(400, "HTTP/0.9 requests are not supported")),
        (b"GET /x\r\n", Refusal(400, "HTTP/0.9 requests are not supported")),
        (b"GET / HTTP/1.1\nHost: x\n\n", Refusal(400, "malformed request")),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Refusal(400, f"HTTP/2 is not supported {SPEAKS_1}")),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", Refusal(400, "TLS handshake on a plain HTTP listener")),
    ],
)
def test_reader_refuses_what_is_not_http_1(data, refusal):
    reader = reader_for()
    reader.feed(data, Clock())
    assert drain(reader) == [refusal]


def test_reader_refuses_connect_with_405_and_allow():
    reader = reader_for()
    reader.feed(b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n", Clock())
    [refusal] = drain(reader)
    assert (refusal.status, dict(refusal.headers)["allow"].split(", ")[0]) == (405, "GET")


def test_reader_answers_an_upgrade_as_a_request_that_closes():
    reader = reader_for()
    reader.feed(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nframes", Clock())
    [request] = drain(reader)
    assert request.keep_alive is False


def test_reader_asks_for_continue_only_while_the_body_is_missing():
    reader = reader_for()
    head = b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    reader.feed(head, Clock())
    [cont] = drain(reader)
    assert isinstance(cont, ContinueExpected)
    reader.feed(b"abc", Clock())
    [request] = drain(reader)
    assert request is cont.request and request.body == b"abc"
    # the body came with the head: no interim answer needed
    reader.feed(head + b"xyz", Clock())
    assert [type(e) for e in drain(reader)] == [Request]


def test_reader_asks_for_continue_in_order_after_pipelined_requests():
    reader = reader_for()
    reader.feed(GET + b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", Clock())
    assert [type(e) for e in drain(reader)] == [Request, ContinueExpected]


def test_reader_refuses_a_too_large_content_length_before_continue():
    reader = reader_for(max_body_bytes=10)
    reader.feed(b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n", Clock())
    assert drain(reader) == [Refusal(413, "request body too large")]


def test_reader_at_eof_between_requests_and_inside_one():
    reader = reader_for()
    reader.feed_eof()
    assert drain(reader) == [PeerEnded()]
    reader = reader_for()
    reader.feed(GET[:5], Clock())
    reader.feed_eof()
    assert drain(reader) == [Refusal(400, "request ended before it was complete")]


def test_reader_deadlines_follow_the_request_not_the_connection():
    clock = Clock(100.0)
    reader = reader_for(clock, header_timeout_s=5)
    assert reader.deadline(clock) == 105.0  # the first request's clock starts at the accept
    clock.now = 101.0
    reader.feed(GET, clock)
    drain(reader)
    assert reader.deadline(clock) == math.inf  # kept alive, between requests: no clock
    clock.now = 200.0
    reader.feed(GET[:5], clock)
    assert reader.deadline(clock) == 205.0  # the next request's clock starts at its first byte
    assert reader.timed_out() == Refusal(408, "request headers not received in time")


def test_reader_body_may_be_slow_but_not_stall():
    clock = Clock(100.0)
    reader = reader_for(clock, header_timeout_s=5)
    reader.feed(b"POST /p HTTP/1.1\r\nContent-Length: 100\r\n\r\nab", clock)
    clock.now = 300.0
    assert reader.deadline(clock) == 305.0  # each read of a body gets the full timeout
    assert reader.timed_out() == Refusal(408, "request body stalled (no data within header_timeout)")


def test_reader_close_frees_the_parser_without_the_cycle_collector():
    gc.disable()
    try:
        reader = reader_for()
        reader.feed(b"POST /p HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 50000, Clock())
        gone = weakref.ref(reader)
        reader.close()
        del reader
        assert gone() is None
    finally:
        gc.enable()


def test_reader_refuses_an_unfinished_head_of_tiny_headers_on_what_it_holds():
    reader = reader_for(max_header_bytes=64 * 1024)
    reader.feed(b"GET / HTTP/1.1\r\n" + b"a:b\r\n" * 12000, Clock())  # 60 KB on the wire
    assert drain(reader) == [Refusal(431, "request headers too large")]


def test_reader_names_a_tls_hello_even_with_two_spaces_in_its_random_bytes():
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x20\x20" + bytes(range(32))
    reader = reader_for()
    reader.feed(hello, Clock())
    assert drain(reader) == [Refusal(400, "TLS handshake on a plain HTTP listener")]
