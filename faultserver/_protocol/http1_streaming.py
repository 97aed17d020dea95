"""Requests whose bodies stream: the reader of a proxied listener.

`RequestReader` hands a request over once its body is complete, held in memory (at most
`limits.max_body_bytes`). A proxy must not hold a 1 GB upload, so this reader hands the
request over as soon as its head is complete (`body_read` False), and its body arrives
in `current` (a `BodyStream`): the forwarder marks it `pulled` and takes its pieces as
they come. Otherwise, when the body is complete in the read that completed its head (small
bodies, pipelined requests), it becomes the request's `body` (`body_read` True), as with
`RequestReader`; and the body of a request answered without it (a fault) is dropped as it
arrives (`discard`). Memory stays about one read. A body has no size limit here; it still
may not stall (`deadline`, as for any body). `Expect: 100-continue` gives no
`ContinueExpected`: the forwarder sends `100 Continue` itself when it wants the body.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools

from .._decide.request import Request
from .._profile.model import Limits
from .http1 import ReaderState, RequestReader

__all__ = ["BodyStream", "StreamingRequestReader"]

#: A body's size has no limit when it streams (the reader's limit is for what it holds).
UNLIMITED_BODY_BYTES = 2**62
_IDLE = ReaderState.IDLE


@dataclass(slots=True)
class BodyStream:
    """The body of `request` as it arrives: `pieces` not yet taken, `done` once complete."""

    request: Request
    pieces: list[bytes] = field(default_factory=list)
    done: bool = False
    #: a forwarder takes the pieces (else they become the request's body when complete)
    pulled: bool = False
    #: the request was answered without its body: what arrives is dropped
    discard: bool = False

    def take(self) -> list[bytes]:
        pieces = self.pieces
        self.pieces = []
        return pieces


class StreamingRequestReader(RequestReader):
    """A `RequestReader` whose requests come out on their head, their bodies in pieces."""

    __slots__ = ("_feeding", "current", "tunnel_start", "upgraded")

    def __init__(self, limits: Limits, now: float) -> None:
        super().__init__(dataclasses.replace(limits, max_body_bytes=UNLIMITED_BODY_BYTES), now)
        #: the body arriving now (None between requests)
        self.current: BodyStream | None = None
        #: a request that asked to switch protocols (`Upgrade:`), and the bytes that came
        #: after its head: the start of the new protocol, for a tunnel (nothing more is read)
        self.upgraded: Request | None = None
        self.tunnel_start = b""
        self._feeding = b""

    def feed(self, data: bytes, clock: Callable[[], float]) -> None:
        self._feeding = data  # for `_upgrade`, which needs what follows the head
        super().feed(data, clock)
        self._feeding = b""

    def _upgrade(self) -> None:
        """An `Upgrade:` request (called while httptools' exception is handled): answered
        like any, then the connection closes; a forward may tunnel it instead."""
        exc = sys.exc_info()[1]
        super()._upgrade()
        events = self._events
        offset = exc.args[0] if isinstance(exc, httptools.HttpParserUpgrade) and exc.args else None
        if self._refusal is None and offset is not None and events and type(events[-1]) is Request:
            self.upgraded = events[-1]
            self.tunnel_start = self._feeding[offset:]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        request = self._request
        if self._refusal is not None or request is None:
            return
        request.body_read = False
        self._expect = False
        self.current = BodyStream(request)
        self._events.append(request)

    def on_body(self, body: bytes) -> None:
        stream = self.current
        if stream is not None and not stream.discard:
            stream.pieces.append(body)

    def on_message_complete(self) -> None:
        self.state = _IDLE
        self._request = None
        stream = self.current
        if stream is None:
            return  # refused: answered with an error, never as a request
        self.current = None
        stream.done = True
        if not stream.pulled and not stream.discard:
            stream.request.body = b"".join(stream.take())
            stream.request.body_read = True

    def drop_body(self, request: Request) -> None:
        """`request` was answered: the rest of its body, if it is still arriving, is dropped."""
        stream = self.current
        if stream is not None and stream.request is request:
            stream.discard = True
            stream.pieces = []
