"""Proxy mode's connections to the upstream: opened with a deadline, kept alive in a pool.

The pool holds at most `pool.max_connections` connections in use; a request beyond that
waits for one to come back (under the connect deadline). Idle connections are reused newest
first and closed when older than `pool.idle_timeout`. A connection comes back only when its
answer was read whole and the upstream said it may carry another.

Errors are translated here, at the edge, into `UpstreamError` with the spec's words: its
`reason` is `refused`, `timeout`, `reset`, `closed` (a FIN where an answer was due) or
`invalid` (bytes that are not HTTP), and its `phase` is `connect`, `send` or `read`.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
from dataclasses import dataclass

import trio

from .._metrics_upstream import UpstreamStats
from .._profile.model import Upstream
from .._protocol.forwarding import PlainAnswers
from .transport import SocketTransport

__all__ = [
    "UPSTREAM_RECV_BYTES",
    "PooledConnection",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamTransport",
    "pool_for",
    "tls_context",
    "translate",
]

#: The most one read of an upstream's answer takes.
UPSTREAM_RECV_BYTES = 256 * 1024
#: The receive buffer of an upstream connection (the kernel caps it at net.core.rmem_max).
UPSTREAM_RCVBUF_BYTES = 4 * 1024 * 1024


class UpstreamError(Exception):
    """The upstream failed: `reason` (refused, timeout, reset, closed, invalid) in `phase`
    (connect, send, read); `data`: what it sent before (for `mirror` of garbage)."""

    def __init__(self, reason: str, phase: str, detail: str = "", data: bytes = b"") -> None:
        super().__init__(f"upstream {reason} ({phase}){': ' + detail if detail else ''}")
        self.reason = reason
        self.phase = phase
        self.data = data


class UpstreamTransport:
    """A connection to the upstream: a TCP socket, or TLS over one (`https://`)."""

    __slots__ = ("_poll", "_raw", "_tls", "sock", "tcp")

    def __init__(self, sock: trio.socket.SocketType, tls: trio.SSLStream[trio.SocketStream] | None) -> None:
        self.sock = sock
        self._raw: socket.socket = sock._sock  # type: ignore[attr-defined]
        #: the TCP socket as a transport (under TLS: what carries the records)
        self.tcp = SocketTransport(sock)
        self._tls = tls
        #: `still_open`'s look at the socket (a poll set holding it alone)
        self._poll = select.poll()
        self._poll.register(self._raw, select.POLLIN)

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        if self._tls is None:
            await self.tcp.send(data)
            return
        try:
            await self._tls.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise BrokenPipeError("TLS stream broken") from exc

    async def receive(self) -> bytes:
        """Up to `UPSTREAM_RECV_BYTES`: a large answer's body arrives in fewer, larger reads."""
        if self._tls is not None:
            try:
                return bytes(await self._tls.receive_some(UPSTREAM_RECV_BYTES))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ConnectionResetError("TLS stream broken") from exc
        raw = self._raw
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                return raw.recv(UPSTREAM_RECV_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(raw)

    async def receive_later(self) -> bytes:
        """`receive`, when `receive_nowait` has just found nothing: it waits first (a
        second `recv` at once would only raise the same `BlockingIOError` again)."""
        if self._tls is not None:
            return await self.receive()
        raw = self._raw
        while True:
            await trio.lowlevel.wait_readable(raw)
            try:
                return raw.recv(UPSTREAM_RECV_BYTES)
            except BlockingIOError:
                pass

    def receive_nowait(self) -> bytes | None:
        """What is there already (`b""`: the upstream closed), or None when nothing is:
        the common case when an answer is read just after a send yielded, with no wait
        and so no deadline to set. Over TLS always None (`receive` reads records)."""
        if self._tls is not None:
            return None
        try:
            return self._raw.recv(UPSTREAM_RECV_BYTES)
        except BlockingIOError:
            return None

    @property
    def plain(self) -> bool:
        """Plain TCP (`http://`): the socket carries the HTTP bytes themselves."""
        return self._tls is None

    def still_open(self) -> bool:
        """Whether an idle connection is still usable: the upstream has not closed it (a FIN
        or an RST waiting) nor, in plain TCP, sent anything unasked (over TLS, a session
        ticket may be waiting). Checked without waiting.

        First a `poll` with no timeout, which says "nothing there" (the usual answer)
        without the exception a `recv` that finds nothing raises: that exception cost more
        than the system call. When something is there, a peek says what."""
        if not self._poll.poll(0):
            return True
        try:
            data = self._raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return bool(data) and self._tls is not None

    def close(self) -> None:
        self.sock.close()


@dataclass(slots=True)
class PooledConnection:
    """One connection to the upstream; `reused`: it carried an answer before."""

    transport: UpstreamTransport
    reused: bool = False
    idle_since: float = 0.0
    #: the short path's reader of its answers (`actions/forward.py`), once it took one
    answers: PlainAnswers | None = None


class UpstreamPool:
    """The keep-alive pool of one listener's upstream (all methods in the server's thread)."""

    def __init__(self, config: Upstream, stats: UpstreamStats | None = None) -> None:
        self.config = config
        #: the listener's upstream counts (handed on to the pool of a reloaded upstream)
        self.stats = stats if stats is not None else UpstreamStats()
        self._idle: list[PooledConnection] = []
        #: connections that may still be taken, and the requests waiting for one (a count
        #: and a parking lot: trio's Semaphore costs a microsecond a request more)
        self._free = config.pool_max_connections
        self._waiting = trio.lowlevel.ParkingLot()
        self._tls_context = tls_context(config) if config.scheme == "https" else None
        #: a plain `http://` upstream with no `Via`: a healthy forward may take the short
        #: path (`actions/forward.py`)
        self.plain = config.scheme == "http" and config.via is None
        self.in_use = 0
        #: closed (a reload replaced it, or the server stops): connections given back close
        self.closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self, now: float | None = None) -> PooledConnection:
        """A connection: an idle one, else a new one; `UpstreamError` if none in time.
        `now`: `trio.current_time()`, when the caller has just read it.

        An idle connection is checked first (`still_open`, one system call), even one idle
        for a moment: an upstream may have answered unasked (a 408) and closed, and those
        bytes must not be taken for the next request's answer. A connection that passes the
        check and still fails before any byte of its answer costs a retry (`forward.py`)."""
        config = self.config
        if self._free:
            self._free -= 1  # the common case: no wait, so no cancel scope
        else:
            with trio.move_on_after(config.connect_timeout_s) as waiting:
                while not self._free:
                    await self._waiting.park()
                self._free -= 1
            if waiting.cancelled_caught:
                raise UpstreamError("timeout", "connect", "the pool is full")
        self.in_use += 1
        try:
            idle = self._idle
            if idle and now is None:
                now = trio.current_time()
            while idle:
                conn = idle.pop()
                assert now is not None
                if now - conn.idle_since < config.pool_idle_timeout_s and conn.transport.still_open():
                    conn.reused = True
                    return conn
                conn.transport.close()
            return PooledConnection(await self._connect())
        except BaseException:
            self._give_back_slot()
            raise

    async def fresh(self) -> PooledConnection:
        """A new connection in the slot of one that failed (a stale pooled one)."""
        return PooledConnection(await self._connect())

    def release(self, conn: PooledConnection, reusable: bool, now: float | None = None) -> None:
        """Give a connection back: kept idle when `reusable`, else closed. `now`: as for
        `acquire`."""
        self._give_back_slot()
        if reusable and not self.closed:
            conn.idle_since = trio.current_time() if now is None else now
            self._idle.append(conn)
        else:
            conn.transport.close()

    def close(self) -> None:
        """Close the idle connections (at reload or stop), and those in use as they come back."""
        self.closed = True
        for conn in self._idle:
            conn.transport.close()
        self._idle.clear()

    def _give_back_slot(self) -> None:
        self.in_use -= 1
        self._free += 1
        if self._waiting:
            self._waiting.unpark()

    async def _connect(self) -> UpstreamTransport:
        config = self.config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            # before the connect, so that the window it announces can grow to it: with the
            # kernel's default, a download through the proxy ran at a quarter of the speed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_RCVBUF_BYTES)
            with trio.move_on_after(config.connect_timeout_s) as waiting:
                await sock.connect((config.host, config.port))
            if waiting.cancelled_caught:
                raise UpstreamError("timeout", "connect", f"no answer within {config.connect_timeout_s}s")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = None
            if self._tls_context is not None:
                tls = await self._handshake(sock, self._tls_context)
        except OSError as exc:
            sock.close()
            raise translate(exc, "connect") from exc
        except BaseException:
            sock.close()
            raise
        return UpstreamTransport(sock, tls)

    async def _handshake(
        self, sock: trio.socket.SocketType, context: ssl.SSLContext
    ) -> trio.SSLStream[trio.SocketStream]:
        """TLS over the new connection, within what is left of the connect timeout."""
        config = self.config
        name = config.tls_sni or config.host
        stream = trio.SSLStream(trio.SocketStream(sock), context, server_hostname=name, https_compatible=True)
        with trio.move_on_after(config.connect_timeout_s) as waiting:
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError as exc:
                cause = exc.__cause__
                detail = getattr(cause, "verify_message", None) or str(cause or exc)
                raise UpstreamError("tls", "connect", f"TLS handshake with {name} failed: {detail}") from exc
        if waiting.cancelled_caught:
            raise UpstreamError("timeout", "connect", f"no TLS handshake within {config.connect_timeout_s}s")
        return stream


def tls_context(config: Upstream) -> ssl.SSLContext:
    """How an `https://` upstream is checked: the system's CAs or `upstream_tls.ca`, and its
    name (`upstream_tls.sni`, else the host), unless `upstream_tls.verify` is false."""
    context = ssl.create_default_context(cafile=config.tls_ca_path)
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def translate(exc: OSError, phase: str) -> UpstreamError:
    """An `OSError` from the upstream's socket, in the spec's words."""
    if exc.errno == errno.ECONNREFUSED:
        return UpstreamError("refused", phase, str(exc))
    if exc.errno == errno.ETIMEDOUT or isinstance(exc, TimeoutError):
        return UpstreamError("timeout", phase, str(exc))
    return UpstreamError("reset", phase, str(exc))


def pool_for(config: Upstream | None, current: UpstreamPool | None) -> UpstreamPool | None:
    """The pool for a listener's (re)loaded `upstream`: the current one when it is unchanged."""
    if current is not None and current.config == config:
        return current
    if current is not None:
        current.close()  # connections in use finish and are closed when given back
    if config is None:
        return None
    return UpstreamPool(config, current.stats if current is not None else None)
