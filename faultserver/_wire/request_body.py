"""The body of a request being forwarded, pulled from the client while it is sent upstream.

A proxied connection (`forwarding.py`) sets `BODY` once, in its own task; the forward that
runs in that task (for the healthy path, a `forward` rule or a `delay`) finds it there.
"""

from __future__ import annotations

import contextvars
from typing import Protocol

import trio

from .._decide.request import Request
from .._protocol.http1_streaming import BodyStream, StreamingRequestReader
from .transport import Transport

__all__ = ["BODY", "BodyStalledError", "RequestBody"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HasTransport(Protocol):
    @property
    def transport(self) -> Transport: ...


class BodyStalledError(Exception):
    """The client stopped sending a body (no byte within `limits.header_timeout`) or left."""


class RequestBody:
    """The body of the request being forwarded, pulled from the client as it is sent on."""

    __slots__ = ("_conn", "_stream", "reader")

    def __init__(self, conn: HasTransport, reader: StreamingRequestReader) -> None:
        self._conn = conn
        self.reader = reader
        self._stream: BodyStream | None = None

    def stream_of(self, request: Request) -> BodyStream | None:
        """The body of `request` still to be pulled, now pulled by the caller (None: the
        request came whole)."""
        stream = self.reader.current
        if request.body_read or stream is None or stream.request is not request:
            return None
        stream.pulled = True
        self._stream = stream
        return stream

    async def pieces(self, stream: BodyStream) -> list[bytes]:
        """The next pieces of `stream`; `[]` once it is complete."""
        reader = self.reader
        clock = trio.current_time
        while not stream.pieces and not stream.done:
            transport = self._conn.transport
            with trio.move_on_at(reader.deadline(clock)) as waiting:
                try:
                    data = await transport.receive()
                except ConnectionResetError:
                    raise BodyStalledError("the client reset the connection during the body") from None
            if waiting.cancelled_caught:
                raise BodyStalledError("request body stalled (no data within header_timeout)")
            if not data:
                raise BodyStalledError("the client closed the connection during the body")
            reader.feed(data, clock)
        return stream.take()

    async def send_continue(self) -> None:
        await self._conn.transport.send(_CONTINUE)


#: The body source of the connection whose task this is (set once per proxied connection).
BODY: contextvars.ContextVar[RequestBody | None] = contextvars.ContextVar("faultserver_body", default=None)
