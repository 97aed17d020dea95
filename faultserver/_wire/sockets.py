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

import trio

__all__ = [
    "ACCEPT_FAILURES_PER_LOG",
    "ACCEPT_GONE_ERRNOS",
    "ACCEPT_RESOURCE_ERRNOS",
    "ACCEPT_RETRY_S",
    "LINGER_RST",
    "arm_rst",
    "bind_listener",
    "drain_and_close",
    "unlisten",
    "unsent_bytes",
    "wait_acknowledged",
]

#: How much one read of a draining close takes.
DRAIN_READ_BYTES = 65536
_libc = ctypes.CDLL(None, use_errno=True)
#: `SO_LINGER {1, 0}`: a close that sends RST and throws away what was not sent.
LINGER_RST = struct.pack("ii", 1, 0)

# What an accept() can meet, for every accept loop (the listeners', the admin API's):
#: out of descriptors or memory: log, wait `ACCEPT_RETRY_S`, accept again (as trio's
#: serve_listeners does), one log line per `ACCEPT_FAILURES_PER_LOG` failures (about 30 s)
ACCEPT_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_S = 0.1
ACCEPT_FAILURES_PER_LOG = 300
#: a connection that went away between the kernel's accept queue and accept(): take the next
ACCEPT_GONE_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


def unlisten(sock: trio.socket.SocketType) -> None:
    """Stop listening but stay bound (the port is held; SYNs meet RST)."""
    unspec = ctypes.create_string_buffer(16)  # a sockaddr whose family is AF_UNSPEC (0)
    if _libc.connect(sock.fileno(), unspec, len(unspec)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot stop listening: {errno.errorcode.get(err, err)}")


def bind_listener(host: str, port: int, *, reuse_port: bool = False) -> trio.socket.SocketType:
    """A bound (not yet listening) socket whose port stays ours across `unlisten`.

    `reuse_port`: it joins the port's SO_REUSEPORT group, for a `--workers` fleet's parent
    and workers.

    The kernel keeps an explicitly bound port through a disconnect, but gives back one
    it picked itself (port 0). So for port 0 a first socket picks the port and a second
    one binds it explicitly, while the first still holds it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def make(p: int) -> trio.socket.SocketType:
        s = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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


def arm_rst(sock: trio.socket.SocketType) -> None:
    """`SO_LINGER {1, 0}`: the next `close()` sends RST and throws away what was not sent (a
    socket the peer has already torn down is left as it is)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    except OSError:
        pass


async def wait_acknowledged(sock: trio.socket.SocketType, timeout_s: float) -> None:
    """Wait, at most `timeout_s`, until the peer has acknowledged every byte sent, so that an
    RST that follows cannot overtake them."""
    with trio.move_on_after(timeout_s):
        while unsent_bytes(sock) > 0:
            await trio.sleep(0.001)


def unsent_bytes(sock: trio.socket.SocketType) -> int:
    """Bytes the peer has not yet acknowledged (SIOCOUTQ): 0 means all delivered."""
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


async def drain_and_close(sock: trio.socket.SocketType, drain_s: float) -> str | None:
    """Clean FIN: shut down writing, read and discard for up to `drain_s`, then close.

    Returns `"fin"` or `"rst"` when the peer closed its side during the drain, else None.
    Reading until the peer's EOF empties the receive queue, so the close sends no RST
    even when the client had pipelined or sent more.
    """
    how: str | None = None
    try:
        sock.shutdown(socket.SHUT_WR)
        with trio.move_on_after(drain_s):
            while True:
                data = await sock.recv(DRAIN_READ_BYTES)
                if not data:
                    how = "fin"
                    break
        if how is None:
            # deadline passed: take what has arrived meanwhile so close() finds nothing
            while True:
                try:
                    data = sock._sock.recv(DRAIN_READ_BYTES, socket.MSG_DONTWAIT)  # type: ignore[attr-defined]
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
