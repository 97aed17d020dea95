"""TLS on an accepted connection: the handshake, and the transport it leaves behind.

The client's hello is read from the socket first, by faultserver, not by the TLS library:
that is what lets a rule `at: handshake` act on what the hello says (SNI, ALPN) before the
server has answered, with the kernel moves a handshake fault is made of (silence, FIN,
RST, bytes that are not TLS). When no rule acts, the bytes already read are handed to
`trio.SSLStream` as if they had just arrived, and the handshake goes on as usual.

`TLSTransport` is the `Transport` over the TLS stream: a FIN is a `close_notify` alert, then
the same half-close and drain as in plain TCP (or a bare FIN, without the alert, when a
`close` action says `close_notify: false`); an RST is the socket's, under the TLS session.
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
    """A socket as a Trio stream, giving back first the bytes read before it existed (under
    the TLS stream: the hello; under a plain connection: what came with a PROXY header).

    Reads and writes go to the socket directly, as `SocketTransport`'s do (every TLS record
    passes here, so `trio.SocketStream`'s layer is not worth its cost); a socket error is a
    `trio.BrokenResourceError` from it, as the TLS stream expects. Its `aclose` is the TCP end
    the connection chose: a FIN after a drain (`drain_s`), or a plain close (the TLS stream
    calls it after its `close_notify`).
    """

    def __init__(self, sock: trio.socket.SocketType, first: bytes) -> None:
        self.sock = sock
        self._raw: socket.socket = sock._sock  # type: ignore[attr-defined]
        self._first = first
        #: set before a graceful close: FIN, drain this long, close; and how the peer left
        self.drain_s: float | None = None
        self.peer_closed: CloseHow | None = None

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
        raw = self._raw
        view = memoryview(data)
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            while view:
                try:
                    sent = raw.send(view)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(raw)
                    continue
                view = view[sent:]
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
        if self.drain_s is None:
            self.sock.close()
            await trio.lowlevel.checkpoint()
            return
        how = await drain_and_close(self.sock, self.drain_s)
        self.peer_closed = CloseHow(how) if how else None


async def handshake(
    context: ssl.SSLContext, transport: SocketTransport, first: bytes, deadline: float
) -> TLSTransport | str:
    """The TLS handshake, from the hello already read; the transport, or why it failed."""
    under = ReplayedSocketStream(transport.sock, first)
    stream = trio.SSLStream(under, context, server_side=True)
    with trio.move_on_at(deadline):
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            await _send_alert(stream, transport)
            return _why(exc.__cause__)
        return TLSTransport(stream, under)
    return "handshake timed out (limits.header_timeout)"


async def _send_alert(stream: trio.SSLStream[ReplayedSocketStream], transport: SocketTransport) -> None:
    """Send the alert OpenSSL wrote when it gave up on the handshake (`protocol_version`,
    `handshake_failure`...), as any OpenSSL server does. `trio.SSLStream` drops it on an
    error, so it is taken from the stream's outgoing buffer (a private attribute: if a trio
    release renames it, the close goes out without the alert, and a test says so)."""
    outgoing = getattr(stream, "_outgoing", None)
    if not isinstance(outgoing, ssl.MemoryBIO) or not outgoing.pending:
        return
    try:
        await transport.send(outgoing.read())
    except OSError:
        pass


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
    """A connection after its handshake: requests and answers go through the TLS stream."""

    __slots__ = ("_under", "ended", "stream")

    def __init__(self, stream: trio.SSLStream[ReplayedSocketStream], under: ReplayedSocketStream) -> None:
        self.stream = stream
        self._under = under
        self.ended: CloseHow | None = None

    @property
    def sock(self) -> trio.socket.SocketType:
        return self._under.sock

    def details(self) -> dict[str, object]:
        """The negotiated version, cipher and ALPN protocol, for the `tls_handshake` event."""
        cipher = self.stream.cipher()
        return {
            "version": self.stream.version(),
            "cipher": cipher[0] if cipher else None,
            "alpn": self.stream.selected_alpn_protocol(),
        }

    def client_certificate(self) -> bool:
        """Whether the client showed a certificate (that the listener's CA verified)."""
        try:
            return bool(self.stream.getpeercert(binary_form=True))
        except (ValueError, trio.NeedHandshakeError):
            return False

    async def receive(self) -> bytes:
        """What the client sent; `b""` after its `close_notify`, and after a FIN without one
        (most clients never send the alert)."""
        try:
            return bytes(await self.stream.receive_some(RECV_BYTES))
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            if _is_eof(cause):
                return b""
            if isinstance(cause, ConnectionResetError):
                raise ConnectionResetError("peer reset") from exc
            raise ConnectionAbortedError(f"TLS: {cause}") from exc
        except trio.ClosedResourceError as exc:
            raise ConnectionAbortedError("TLS stream closed") from exc

    async def send(self, data: Buffer) -> None:
        if not data:
            return
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise BrokenPipeError("TLS stream broken") from exc

    async def close(self, drain_s: float, close_notify: bool = True) -> CloseHow | None:
        self.ended = CloseHow.FIN
        under = self._under
        if not close_notify:
            how = await drain_and_close(under.sock, drain_s)
            return CloseHow(how) if how else None
        under.drain_s = drain_s
        try:
            await self.stream.aclose()  # close_notify, then `under.aclose()`: FIN and drain
        except (trio.BrokenResourceError, OSError):
            under.sock.close()
        return under.peer_closed

    async def reset(self) -> None:
        self.ended = CloseHow.RST
        sock = self._under.sock
        arm_rst(sock)
        sock.close()
        await trio.lowlevel.checkpoint()

    async def wait_delivered(self) -> None:
        await wait_acknowledged(self._under.sock, DELIVERY_TIMEOUT_S)

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
        self._under.sock.close()
        await trio.lowlevel.checkpoint()
