"""TLS on an accepted connection: the handshake, and the transport it leaves behind.

The client's hello is read from the socket first, by faultserver, not by the TLS library:
that is what lets a rule `at: handshake` act on what the hello says (SNI, ALPN) before the
server has answered, with the kernel moves a handshake fault is made of (silence, FIN,
RST, bytes that are not TLS). When no rule acts, the bytes already read are given to
OpenSSL as if they had just arrived, and the handshake goes on as usual.

`TLSTransport` is the `Transport` over TLS: Python's `ssl.SSLObject` on two memory buffers,
whose bytes it moves to and from the socket itself (see the class for why not
`trio.SSLStream`).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

import trio

from .._profile.model import CloseHow
from .._protocol.client_hello import (
    NEED_MORE,
    ClientHello,
    MalformedHello,
    NeedMore,
    NotTLS,
    read_client_hello,
)
from .sockets import arm_rst, drain_and_close, wait_acknowledged
from .transport import DELIVERY_TIMEOUT_S, RECV_BYTES, Buffer, SocketTransport

__all__ = ["HelloRead", "ReplayedSocketStream", "TLSTransport", "alert_name", "handshake", "read_hello"]


@dataclass(frozen=True, slots=True)
class HelloRead:
    """What came before the handshake: the bytes read, and what they were (None: the client
    left, or the deadline passed, before a whole hello arrived)."""

    data: bytes
    hello: ClientHello | NotTLS | MalformedHello | None
    peer_left: bool = False


async def read_hello(transport: SocketTransport, deadline: float, first: bytes = b"") -> HelloRead:
    """Read until the client's whole hello is in, it shows it is not TLS, or `deadline`;
    `first`: bytes read already (after a PROXY protocol header)."""
    data = bytearray(first)
    with trio.move_on_at(deadline):
        while True:
            result = read_client_hello(data) if data else NEED_MORE
            if result is not NEED_MORE:
                assert not isinstance(result, NeedMore)
                return HelloRead(bytes(data), result)
            chunk = await transport.receive()
            if not chunk:
                return HelloRead(bytes(data), None, peer_left=True)
            data += chunk
    return HelloRead(bytes(data), None)


class ReplayedSocketStream(trio.abc.HalfCloseableStream):
    """A socket as a Trio stream, giving back first the bytes read before it existed (what
    came with a PROXY header, or the start of a connection sniffed for HTTP/2's preface),
    for a plain connection's `StreamTransport`.

    Reads and writes go to the socket directly, as `SocketTransport`'s do; a socket error is
    a `trio.BrokenResourceError` from it, as a Trio stream's is.
    """

    def __init__(self, sock: trio.socket.SocketType, first: bytes) -> None:
        self.sock = sock
        self._raw: socket.socket = sock._sock  # type: ignore[attr-defined]
        self._first = first

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._first:
            first, self._first = self._first, b""
            await trio.lowlevel.checkpoint()
            return first
        raw = self._raw
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            while True:
                try:
                    data = raw.recv(max_bytes or RECV_BYTES)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(raw)
                    continue
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket: {exc}") from exc

    async def send_all(self, data: Buffer) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            await _send_all(self._raw, data)
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket: {exc}") from exc
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self._raw)

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        try:
            self._raw.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket: {exc}") from exc

    async def aclose(self) -> None:
        self.sock.close()
        await trio.lowlevel.checkpoint()


async def handshake(
    context: ssl.SSLContext, transport: SocketTransport, first: bytes, deadline: float
) -> TLSTransport | str:
    """The TLS handshake, from the hello already read; the transport, or why it failed.

    OpenSSL runs over two memory buffers, and this loop moves their bytes to and from the
    socket. When OpenSSL gives up, the alert it wrote (`protocol_version`,
    `handshake_failure`...) goes out before the close, as any OpenSSL server sends it.
    """
    tls = TLSTransport(transport.sock, context)
    tls.incoming.write(first)
    with trio.move_on_at(deadline):
        try:
            while True:
                try:
                    tls.session.do_handshake()
                except ssl.SSLWantReadError:
                    await tls.flush()
                    if not await tls.take_in():
                        tls.incoming.write_eof()  # the client left: OpenSSL says how
                    continue
                except ssl.SSLError as exc:
                    await tls.flush()
                    return _why(exc)
                await tls.flush()  # the last flight (and TLS 1.3's session tickets)
                return tls
        except OSError as exc:
            return _why(exc)
    return "handshake timed out (limits.header_timeout)"


def _why(cause: BaseException | None) -> str:
    """A handshake failure in the words of the TLS alert or error (`alert unknown_ca`)."""
    if isinstance(cause, ssl.SSLError):
        name = alert_name(cause.reason)
        if name is not None:
            return f"alert {name}"
        if cause.reason:
            return str(cause.reason).lower()
        if isinstance(cause, ssl.SSLEOFError):
            return "client closed the connection during the handshake"
    if isinstance(cause, ConnectionResetError):
        return "client reset the connection during the handshake"
    return f"handshake failed: {cause}"


def alert_name(reason: str | None) -> str | None:
    """`TLSV1_ALERT_UNKNOWN_CA` and `SSLV3_ALERT_BAD_CERTIFICATE` (OpenSSL's names for an
    alert the client sent) as the alert's own name: `unknown_ca`, `bad_certificate`."""
    if not reason:
        return None
    for prefix in ("TLSV1_ALERT_", "SSLV3_ALERT_", "TLSV13_ALERT_"):
        if reason.startswith(prefix):
            return reason[len(prefix) :].lower()
    return None


def _is_eof(cause: BaseException | None) -> bool:
    return isinstance(cause, ssl.SSLEOFError) or "UNEXPECTED_EOF" in str(getattr(cause, "reason", ""))


class TLSTransport:
    """A connection over TLS: OpenSSL (`ssl.SSLObject`) between two memory buffers, and the
    socket's bytes moved in and out of them here.

    This is what `trio.SSLStream` does, without its generality: one task uses a
    connection, so there is no lock, and a read or write that OpenSSL can finish at once
    costs one call into it. Every request and answer passes here. As in `SocketTransport`,
    a read that finds data does not yield to the scheduler; an answer's send does.

    A FIN is a `close_notify` alert, then the same half-close and drain as in plain TCP (or a
    bare FIN, without the alert, when a `close` action says `close_notify: false`); an RST is
    the socket's, under the TLS session.
    """

    __slots__ = ("_raw", "ended", "incoming", "outgoing", "session", "sock")

    def __init__(self, sock: trio.socket.SocketType, context: ssl.SSLContext) -> None:
        self.sock = sock
        self._raw: socket.socket = sock._sock  # type: ignore[attr-defined]
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.session = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.ended: CloseHow | None = None

    # --- the socket under the session -------------------------------------------------

    async def take_in(self) -> bool:
        """Read what the socket has (waiting for it) into the session; False at its EOF."""
        raw = self._raw
        while True:
            try:
                data = raw.recv(RECV_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(raw)
                continue
            except ConnectionResetError:
                raise
            except OSError as exc:  # ETIMEDOUT, EHOSTUNREACH...: the peer is gone all the same
                raise ConnectionAbortedError(f"TLS: {exc}") from exc
            if data:
                self.incoming.write(data)
            return bool(data)

    async def flush(self) -> None:
        """Send what the session wrote (records, alerts), all of it."""
        outgoing = self.outgoing
        if outgoing.pending:
            await _send_all(self._raw, outgoing.read())

    # --- Transport ----------------------------------------------------------------------

    def details(self) -> dict[str, object]:
        """The negotiated version, cipher and ALPN protocol, for the `tls_handshake` event."""
        cipher = self.session.cipher()
        return {
            "version": self.session.version(),
            "cipher": cipher[0] if cipher else None,
            "alpn": self.session.selected_alpn_protocol(),
        }

    def client_certificate(self) -> bool:
        """Whether the client showed a certificate (that the listener's CA verified)."""
        try:
            return bool(self.session.getpeercert(binary_form=True))
        except ValueError:
            return False

    async def receive(self) -> bytes:
        """What the client sent; `b""` after its `close_notify`, and after a FIN without one
        (most clients never send the alert)."""
        session = self.session
        await trio.lowlevel.checkpoint_if_cancelled()
        # nothing held, neither bytes for OpenSSL nor text it decrypted: go to the socket
        # first (a read OpenSSL cannot answer raises, and exceptions cost)
        starved = not self.incoming.pending and not session.pending()
        while True:
            if starved:
                if self.outgoing.pending:  # reading wrote something (a key update's answer)
                    await self.flush()
                if not await self.take_in():
                    return b""  # a FIN, with no close_notify before it
            try:
                data = session.read(RECV_BYTES)
            except ssl.SSLWantReadError:
                starved = True  # a record not whole yet
                continue
            except ssl.SSLZeroReturnError:
                return b""  # the client's close_notify
            except ssl.SSLError as exc:
                if _is_eof(exc):
                    return b""
                raise ConnectionAbortedError(f"TLS: {exc}") from exc
            if self.outgoing.pending:
                await self.flush()
            return data

    async def send(self, data: Buffer) -> None:
        """Every byte, encrypted; then a trip through the scheduler, as `SocketTransport.send`."""
        if not data:
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        session = self.session
        view = memoryview(data)
        try:
            while view:
                view = view[session.write(view) :]
        except ssl.SSLError as exc:
            raise BrokenPipeError(f"TLS: {exc}") from exc
        out = self.outgoing.read()
        raw = self._raw
        try:
            sent = raw.send(out)
        except BlockingIOError:
            sent = 0
        if sent < len(out):
            await _send_all(raw, memoryview(out)[sent:])
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def close(self, drain_s: float, close_notify: bool = True) -> CloseHow | None:
        self.ended = CloseHow.FIN
        if close_notify:
            try:
                self.session.unwrap()  # writes the close_notify; the client's is not awaited
            except ssl.SSLError:
                pass  # SSLWantReadError (no close_notify from the client yet), or a broken session
            try:
                await self.flush()
            except OSError:
                self.sock.close()
                return None
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
        with trio.move_on_after(float("inf") if within_s is None else within_s):
            try:
                while await self.receive():
                    pass
            except ConnectionResetError:
                return CloseHow.RST
            except ConnectionAbortedError:
                return CloseHow.FIN
            return CloseHow.FIN
        return None

    async def forget(self) -> None:
        self.sock.close()
        await trio.lowlevel.checkpoint()


async def _send_all(raw: socket.socket, data: Buffer) -> None:
    """`data` on a non-blocking socket, waiting while the socket's buffer is full."""
    view = memoryview(data)
    while view:
        try:
            sent = raw.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(raw)
            continue
        view = view[sent:]
