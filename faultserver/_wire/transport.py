"""The byte stream under a connection, and the ways it can end.

A connection reads, writes and ends its stream only through a `Transport`. `SocketTransport`
is a TCP socket, with the kernel moves faults are made of (`sockets.py`): a FIN that is a
real half-close followed by a drain, an RST by `SO_LINGER {1, 0}`, a wait for the send queue
to be acknowledged. `StreamTransport` is any Trio stream: an in-memory pair in the tests
(`trio.testing.memory_stream_pair`), and a TLS stream tomorrow; it does what a stream can
(`send_eof`, `aclose`) and does the socket moves when it is told the socket underneath.

Errors: a peer that went away surfaces as one of `PEER_GONE` (`ConnectionResetError` for an
RST), whatever the transport, so the connection catches them at one edge.
"""

from __future__ import annotations

import math
import socket as _socket
from typing import Protocol

import trio

from .._profile.model import CloseHow
from .sockets import arm_rst, drain_and_close, wait_acknowledged

__all__ = ["PEER_GONE", "RECV_BYTES", "SocketTransport", "StreamTransport", "Transport"]

#: Errors that mean the peer went away; never worth a traceback.
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)
#: The most one read takes (a request's head and more, or a good piece of a body).
RECV_BYTES = 65536
#: How long `wait_delivered` waits for the peer to acknowledge what was sent.
DELIVERY_TIMEOUT_S = 2.0

Buffer = bytes | bytearray | memoryview


class Transport(Protocol):
    """What a connection does with its stream. `ended` says how this side ended it."""

    ended: CloseHow | None

    async def receive(self) -> bytes:
        """Some bytes; `b""` once the peer has sent FIN; `ConnectionResetError` on RST."""
        ...

    async def send(self, data: Buffer) -> None:
        """Every byte of `data`, or one of `PEER_GONE`."""
        ...

    async def close(self, drain_s: float, close_notify: bool = True) -> CloseHow | None:
        """FIN, then read and discard for up to `drain_s`, then close. Returns how the peer
        closed its side meanwhile (None: it did not). Reading until the peer's EOF empties
        the receive queue, so the close sends no RST even when the client had sent more.
        Over TLS a `close_notify` alert goes before the FIN, unless `close_notify` is False."""
        ...

    async def reset(self) -> None:
        """RST now, throwing away what was not sent."""
        ...

    async def wait_delivered(self) -> None:
        """Wait (a little) until the peer has acknowledged what was sent, so that an RST
        cannot overtake it."""
        ...

    async def discard_until_eof(self, within_s: float | None) -> CloseHow | None:
        """Read and throw away until the peer leaves (`hang`): how it left; None when
        `within_s` passed first (None: no time limit)."""
        ...

    async def forget(self) -> None:
        """Close at once, without a FIN dance: the peer has gone already."""
        ...


class SocketTransport:
    """A TCP socket accepted by a listener."""

    __slots__ = ("_raw", "ended", "sock")

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self._raw: _socket.socket = sock._sock  # type: ignore[attr-defined]
        self.ended: CloseHow | None = None

    async def receive(self) -> bytes:
        """`sock.recv(RECV_BYTES)` as trio does it, minus its wrapper's cost and one thing:
        a read that finds data at once does not yield to the scheduler after it.

        The connection loop yields instead, once per read (in the `send` of its answer, or
        explicitly when it answered nothing), which saves a trip through the scheduler per
        request. Cancellation is checked first, as in trio; when nothing is there, it waits
        until the socket is readable (a checkpoint).
        """
        raw = self._raw
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            return raw.recv(RECV_BYTES)
        except BlockingIOError:
            pass
        while True:
            await trio.lowlevel.wait_readable(raw)
            try:
                return raw.recv(RECV_BYTES)
            except BlockingIOError:
                pass

    async def send(self, data: Buffer) -> None:
        """Every byte (trio's `send` may take part of a large buffer).

        The first try is trio's `send` without its wrapper's cost (this runs per request):
        the same cancellation check, the socket call, and the same trip through the
        scheduler after it. That trip matters: by the time this task runs again, a client
        that waited for this answer has often sent its next request, so the next read
        finds it at once instead of asking epoll to wait for it.
        """
        if not data:
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        if sent == len(data):
            return
        view = memoryview(data)
        while sent < len(view):
            sent += await self.sock.send(view[sent:])

    async def close(self, drain_s: float, close_notify: bool = True) -> CloseHow | None:
        self.ended = CloseHow.FIN
        how = await drain_and_close(self.sock, drain_s)
        return CloseHow(how) if how else None

    async def reset(self) -> None:
        self.ended = CloseHow.RST
        arm_rst(self.sock)
        self.sock.close()
        await trio.lowlevel.checkpoint()

    async def wait_delivered(self) -> None:
        await wait_acknowledged(self.sock, DELIVERY_TIMEOUT_S)

    async def discard_until_eof(self, within_s: float | None) -> CloseHow | None:
        """Hold with as little as possible: no buffer kept, and no cancel scope without a
        time limit (thousands of connections may be held at once)."""
        if within_s is not None:
            with trio.move_on_after(within_s):
                return await self.discard_until_eof(None)
            return None
        raw = self._raw
        try:
            while True:
                await trio.lowlevel.wait_readable(raw)
                try:
                    if not raw.recv(RECV_BYTES):
                        return CloseHow.FIN
                except BlockingIOError:
                    continue
        except ConnectionResetError:
            return CloseHow.RST

    async def forget(self) -> None:
        self.sock.close()


class StreamTransport:
    """Any Trio stream. `socket`, when given, is the TCP socket under it (for RST and for
    delivery checks); without one (an in-memory stream) an RST is a plain close, and
    `ended` is what tells a test which it was."""

    __slots__ = ("_socket", "ended", "stream")

    def __init__(self, stream: trio.abc.Stream, socket: trio.socket.SocketType | None = None) -> None:
        self.stream = stream
        self._socket = socket
        self.ended: CloseHow | None = None

    async def receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(RECV_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionResetError("stream broken") from exc

    async def send(self, data: Buffer) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise BrokenPipeError("stream broken") from exc

    async def close(self, drain_s: float, close_notify: bool = True) -> CloseHow | None:
        self.ended = CloseHow.FIN
        how: CloseHow | None = None
        try:
            if isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            with trio.move_on_after(drain_s):
                while await self.stream.receive_some(RECV_BYTES):
                    pass
                how = CloseHow.FIN
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            how = CloseHow.RST
        finally:
            await trio.aclose_forcefully(self.stream)
        return how

    async def reset(self) -> None:
        self.ended = CloseHow.RST
        if self._socket is not None:
            arm_rst(self._socket)
        await trio.aclose_forcefully(self.stream)

    async def wait_delivered(self) -> None:
        if self._socket is None:
            await trio.lowlevel.checkpoint()
            return
        await wait_acknowledged(self._socket, DELIVERY_TIMEOUT_S)

    async def discard_until_eof(self, within_s: float | None) -> CloseHow | None:
        with trio.move_on_after(math.inf if within_s is None else within_s):
            try:
                while await self.stream.receive_some(RECV_BYTES):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return CloseHow.RST
            return CloseHow.FIN
        return None

    async def forget(self) -> None:
        await trio.aclose_forcefully(self.stream)

