"""The data plane over an in-memory stream: a `Connection` without the kernel.

`open_connection(listener)` builds a listener's context from a listener mapping (as in a
profile), joins a `Connection` to a client end through `trio.testing.memory_stream_pair()`,
and runs it in the caller's nursery. Several connections share one listener when they are
given one context (`listener_context(listener)`), as the connections of a real listener do:
one set of rules, random streams, counters and events. The client end reads raw bytes;
`transport.ended` says how the server ended the stream (FIN or RST), which an in-memory
stream cannot show itself.
Run these tests under `trio.testing.MockClock(autojump_threshold=0)` to cover timeouts
without waiting for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio
import trio.testing

from faultserver._events import EventLog
from faultserver._profile.load import load_profile_data
from faultserver._profile.model import CloseHow
from faultserver._wire.connection import Connection
from faultserver._wire.context import ListenerContext
from faultserver._wire.transport import StreamTransport

from .net import same_date
from .profiles import TEXT_OK, one_listener

__all__ = [
    "OK",
    "MemoryPeer",
    "body_of",
    "get",
    "listener_context",
    "open_connection",
    "same_date",
    "status_of",
]

#: A listener's plain-text healthy response (the echo is JSON of varying length).
OK: dict[str, Any] = {"response": TEXT_OK}
def get(path: str = "/", *headers: str, version: str = "HTTP/1.1") -> bytes:
    """A GET request's bytes, with `Host` and `headers` ("Name: value")."""
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} {version}\r\nHost: t\r\n{extra}\r\n".encode()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


@dataclass
class MemoryPeer:
    """The client's end of one in-memory connection, and what the test inspects."""

    stream: trio.abc.HalfCloseableStream
    ctx: ListenerContext
    transport: StreamTransport
    conn: Connection
    events: EventLog
    done: trio.Event
    #: bytes received and not yet taken
    buffer: bytes = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _more(self) -> bytes:
        data = await self.stream.receive_some(65536)
        self.buffer += data
        return data

    async def receive_all(self) -> bytes:
        """Everything the server sends until it ends the stream."""
        while await self._more():
            pass
        data, self.buffer = self.buffer, b""
        return data

    async def receive_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self._more():
                raise EOFError(f"stream ended after {len(self.buffer)} of {size} bytes: {self.buffer!r}")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def receive_response(self) -> bytes:
        """One response with a content-length (head and body), raw."""
        while b"\r\n\r\n" not in self.buffer:
            if not await self._more():
                raise EOFError(f"stream ended in a response head: {self.buffer!r}")
        head = self.buffer.partition(b"\r\n\r\n")[0]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return await self.receive_exactly(len(head) + 4 + length)

    async def receive_pieces(self) -> list[tuple[float, bytes]]:
        """Each read until the server ends the stream, with the (mock) time it arrived."""
        pieces = []
        while data := await self.stream.receive_some(65536):
            pieces.append((trio.current_time(), bytes(data)))
        return pieces

    async def silent_for(self, seconds: float) -> bool:
        """True when nothing arrives, and the stream does not end, for `seconds`."""
        with trio.move_on_after(seconds):
            await self._more()
            return False
        return True

    async def ended(self) -> CloseHow | None:
        """Wait for the connection's task to end; how the server ended the stream."""
        await self.done.wait()
        return self.transport.ended

    def types(self) -> list[str]:
        return [e["type"] for e in self.events.since(0)[0]]


def listener_context(
    listener: dict[str, Any], *, seed: int = 7, fault_header: str | None = "x-fault"
) -> ListenerContext:
    """The context a listener built from `listener` (a profile's listener mapping) gives its
    connections."""
    config = load_profile_data(one_listener(seed, **listener)).listeners[0]
    return ListenerContext(config, EventLog(), seed, fault_header, lambda: None)


@asynccontextmanager
async def open_connection(
    listener: dict[str, Any] | ListenerContext,
    *,
    seed: int = 7,
    fault_header: str | None = "x-fault",
    conn_id: int = 1,
) -> AsyncIterator[MemoryPeer]:
    """A `Connection` for `listener` (a listener mapping, or a context that other connections
    share) over an in-memory stream, served while the block runs."""
    if isinstance(listener, ListenerContext):
        ctx = listener
    else:
        ctx = listener_context(listener, seed=seed, fault_header=fault_header)
    client, server = trio.testing.memory_stream_pair()
    transport = StreamTransport(server)
    conn = Connection(ctx, transport, f"10.0.0.{conn_id}:5000", conn_id)
    done = trio.Event()

    async def serve() -> None:
        try:
            await conn.run()
        finally:
            done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        peer = MemoryPeer(client, ctx, transport, conn, ctx.events, done)
        yield peer
        conn.shutdown(CloseHow.FIN)  # a FIN and a short drain, as at a server's stop
        await done.wait()
