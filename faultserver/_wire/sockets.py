"""Socket-level moves the faults are made of: FIN, RST, un-listening, send-queue checks.

Kernel facts these rely on (Linux):
- `close()` with unread bytes in the receive queue sends RST, not FIN. A clean FIN is
  `shutdown(SHUT_WR)`, then reading until the peer's EOF (or a deadline), then close.
- `SO_LINGER {1, 0}` then `close()` sends RST and throws away unsent bytes.
- `connect(AF_UNSPEC)` on a listening socket stops it listening (queued, not yet
  accepted connections are reset) and leaves it bound, so the port stays ours and a
  SYN meets RST; `listen()` again re-opens it on the same port.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
import termios
from typing import Optional

import trio

__all__ = [
    "PEER_GONE",
    "abort",
    "bind_listener",
    "drain_and_close",
    "recv_some",
    "send_all",
    "unlisten",
    "unsent_bytes",
]

#: Errors that mean the peer went away; never worth a traceback.
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)

#: The most one read takes (a request's head and more, or a good piece of a body).
RECV_BYTES = 65536

_libc = ctypes.CDLL(None, use_errno=True)
_LINGER_RST = struct.pack("ii", 1, 0)


def unlisten(sock: trio.socket.SocketType) -> None:
    """Stop listening but stay bound (the port is held; SYNs meet RST)."""
    unspec = ctypes.create_string_buffer(16)  # a sockaddr whose family is AF_UNSPEC (0)
    if _libc.connect(sock.fileno(), unspec, len(unspec)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot stop listening: {errno.errorcode.get(err, err)}")


def bind_listener(host: str, port: int) -> trio.socket.SocketType:
    """A bound (not yet listening) socket whose port stays ours across `unlisten`.

    The kernel keeps an explicitly bound port through a disconnect, but gives back one
    it picked itself (port 0). So for port 0 a first socket picks the port and a second
    one binds it explicitly, while the first still holds it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def make(p: int) -> trio.socket.SocketType:
        s = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except BaseException:
            s.close()
            raise

    first = make(port)
    try:
        _bind_now(first, host, port)
        if port != 0:
            return first
        chosen = first.getsockname()[1]
        second = make(chosen)
        try:
            _bind_now(second, host, chosen)
        except BaseException:
            second.close()
            raise
        return second
    finally:
        if port == 0:
            first.close()


def _bind_now(sock: trio.socket.SocketType, host: str, port: int) -> None:
    # trio's bind is async only to resolve names; our hosts are IP literals, so the
    # plain socket call is equivalent and keeps start-up synchronous.
    raw = socket.socket(fileno=sock.fileno())
    try:
        raw.bind((host, port))
    finally:
        raw.detach()


def abort(sock: trio.socket.SocketType) -> None:
    """RST: linger zero, then close."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


async def send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    """Send every byte (trio's `send` may take part of a large buffer).

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
        sent = sock._sock.send(data)  # type: ignore[attr-defined]
    except BlockingIOError:
        sent = 0
    else:
        await trio.lowlevel.cancel_shielded_checkpoint()
    if sent == len(data):
        return
    view = memoryview(data)
    while sent < len(view):
        sent += await sock.send(view[sent:])


async def recv_some(sock: trio.socket.SocketType) -> bytes:
    """`sock.recv(RECV_BYTES)` as trio does it, minus its wrapper's cost and one thing:
    a read that finds data at once does not yield to the scheduler after it.

    The caller yields instead, once per read (the connection loop: in the `send_all`
    of its answer, or explicitly when it answered nothing), which saves a trip through
    the scheduler per request. Cancellation is checked first, as in trio; when nothing
    is there, it waits until the socket is readable (a checkpoint).
    """
    raw = sock._sock  # type: ignore[attr-defined]
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


def unsent_bytes(sock: trio.socket.SocketType) -> int:
    """Bytes the peer has not yet acknowledged (SIOCOUTQ): 0 means all delivered."""
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


async def wait_delivered(sock: trio.socket.SocketType, timeout_s: float = 2.0) -> None:
    """Wait until the send queue is acknowledged, so an RST cannot overtake the data."""
    with trio.move_on_after(timeout_s):
        while unsent_bytes(sock) > 0:
            await trio.sleep(0.001)


async def drain_and_close(
    sock: trio.socket.SocketType, drain_s: float, already_shut: bool = False
) -> Optional[str]:
    """Clean FIN: shut down writing, read and discard for up to `drain_s`, then close.

    Returns `"fin"` or `"rst"` when the peer closed its side during the drain, else None.
    Reading until the peer's EOF empties the receive queue, so the close sends no RST
    even when the client had pipelined or sent more.
    """
    how: Optional[str] = None
    try:
        if not already_shut:
            sock.shutdown(socket.SHUT_WR)
        with trio.move_on_after(drain_s):
            while True:
                data = await sock.recv(65536)
                if not data:
                    how = "fin"
                    break
        if how is None:
            # deadline passed: take what has arrived meanwhile so close() finds nothing
            while True:
                try:
                    data = sock._sock.recv(65536, socket.MSG_DONTWAIT)  # type: ignore[attr-defined]
                except (BlockingIOError, InterruptedError):
                    break
                if not data:
                    how = "fin"
                    break
    except ConnectionResetError:
        how = "rst"
    except OSError:
        pass
    finally:
        sock.close()
    return how
