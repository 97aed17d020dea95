"""What comes before HTTP on an accepted connection: a PROXY protocol header, the TLS
handshake (with the rules `at: handshake`), and the choice of HTTP/1.1 or HTTP/2.

Each step reads what it needs and leaves any bytes it read too many in `conn.first`, for
the next one to read first. Each returns an `Outcome`: KEEP to go on, or how the
connection ends (a missing PROXY header, a handshake fault, a failed handshake).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .._decide.request import Request
from .._profile.model import CloseHow, Protocol, ProxyProtocol
from .._protocol.client_hello import ClientHello
from .._protocol.events import Refusal
from .._protocol.proxy_header import ProxyHeaderError, ProxyVersion
from .._tls.listener import ListenerTLS
from .actions import FIN, GONE, KEEP, Outcome
from .actions.respond import send_refusal
from .h2 import H2Session, sniff_preface
from .h2c import h2c_settings
from .proxy import read_proxy
from .tls import HelloRead, ReplayedSocketStream, TLSTransport, handshake, read_hello
from .transport import SocketTransport, StreamTransport

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["open_tls", "read_proxy_header", "speak"]

_H1, _H2 = Protocol.HTTP1, Protocol.H2


async def read_proxy_header(conn: Connection, expect: ProxyProtocol) -> Outcome:
    """The PROXY protocol header a gateway sends first: who the client really is. A
    missing or broken one ends the connection (FIN), as nginx and HAProxy do."""
    ctx = conn.ctx
    transport = conn.transport
    assert isinstance(transport, SocketTransport)
    deadline = trio.current_time() + ctx.limits.header_timeout_s
    read = await read_proxy(transport, ProxyVersion(expect.value), deadline)
    header = read.header
    if isinstance(header, ProxyHeaderError):
        ctx.events.emit("proxy_error", ctx.name, error=header.reason, **conn.conn_fields())
        return conn.peer_closed(CloseHow.FIN) if read.peer_left else FIN
    if read.peer_left:
        return conn.peer_closed(CloseHow.FIN)
    conn.first = read.rest  # what came with the header: the next reader reads it first
    if header is not None:
        conn.client = header.source
        ctx.events.emit(
            "proxy_header", ctx.name, version=header.version, command=header.command,
            destination=header.destination, **conn.conn_fields(),
        )
    return KEEP

async def speak(conn: Connection) -> Outcome:
    """HTTP/2 or HTTP/1.1, as the listener speaks and the client asks: ALPN over TLS,
    the HTTP/2 preface (prior knowledge) on plain TCP."""
    protocols = conn.ctx.config.protocols
    transport = conn.transport
    if _H2 in protocols:
        if isinstance(transport, TLSTransport):
            if transport.session.selected_alpn_protocol() == "h2":
                return await H2Session(conn, b"").run()
        elif _H1 not in protocols:
            first, conn.first = conn.first, b""
            return await H2Session(conn, first).run()
        else:
            deadline = trio.current_time() + conn.ctx.limits.header_timeout_s
            is_h2, conn.first = await sniff_preface(transport, deadline, conn.first)
            if is_h2:
                first, conn.first = conn.first, b""
                return await H2Session(conn, first).run()
    if conn.first:
        # bytes read before the reader existed (a PROXY header's rest, a sniffed start):
        # the reader reads them first, through a socket stream that gives them back
        assert isinstance(transport, SocketTransport)
        replayed = ReplayedSocketStream(transport.sock, conn.first)
        conn.transport = StreamTransport(replayed, transport.sock)
        conn.first = b""
    return await conn.serve()

async def upgrade_h2c(conn: Connection, request: Request) -> Outcome | None:
    """HTTP/2 from here, when an HTTP/1.1 request asks for h2c and may have it (`h2c.py`);
    None: answer it in HTTP/1.1."""
    settings = h2c_settings(request)
    if settings is None:
        return None
    return await H2Session(conn, b"", (request, settings)).run()

async def open_tls(conn: Connection, tls: ListenerTLS) -> Outcome:
    """Read the client's hello, let a rule `at: handshake` act on it, else shake hands
    and serve the rest over TLS (see `tls.py`). Bounded by `limits.header_timeout`."""
    ctx = conn.ctx
    transport = conn.transport
    assert isinstance(transport, SocketTransport)
    started = trio.current_time()
    deadline = started + ctx.limits.header_timeout_s
    read = await read_hello(transport, deadline, conn.first)
    conn.first = b""
    hello = read.hello
    if not isinstance(hello, ClientHello):
        return await _not_tls(conn, read)
    fields = {**conn.conn_fields(), "sni": hello.sni, "alpn_offered": list(hello.alpn)}
    if ctx.rules.has_handshake_rules:
        decision = ctx.rules.decide_handshake(hello.sni, hello.alpn)
        if decision is not None:
            outcome = await conn.carry_out(decision, None, fields)
            if outcome is not KEEP:
                return outcome
    result = await handshake(tls.context, transport, read.data, deadline)
    if isinstance(result, str):
        ctx.events.emit_fields("tls_error", ctx.name, fields, None, error=result)
        return GONE if "client" in result else FIN
    conn.transport = result
    ctx.events.emit_fields(
        "tls_handshake",
        ctx.name,
        fields,
        None,
        **result.details(),
        client_certificate=result.client_certificate(),
        duration_ms=round((trio.current_time() - started) * 1000, 3),
    )
    return KEEP

async def _not_tls(conn: Connection, read: HelloRead) -> Outcome:
    """No hello: the client left, said nothing in time, or spoke something else. A plain
    HTTP request gets a plain 400 that says why (as nginx does on its TLS ports)."""
    ctx = conn.ctx
    if read.peer_left:
        return conn.peer_closed(CloseHow.FIN)
    hello = read.hello
    assert not isinstance(hello, ClientHello)
    error = "no TLS client hello within limits.header_timeout" if hello is None else hello.reason
    ctx.events.emit("tls_error", ctx.name, error=error, **conn.conn_fields())
    if read.data[:1].isalpha():
        refusal = Refusal(400, "plain HTTP request sent to a TLS listener")
        return await send_refusal(conn.transport, ctx, refusal, conn.conn_fields())
    return FIN
