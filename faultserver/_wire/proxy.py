"""The PROXY protocol header in front of a connection: read it before anything else.

A gateway that sends one (HAProxy `send-proxy`, nginx `proxy_protocol on`, a cloud load
balancer) writes it as the connection's first bytes, often in the same packet as what
follows; the bytes after the header are given back to the next reader (the TLS hello or
the first request). What the header means is `_protocol/proxy_header.py`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from .._protocol.proxy_header import (
    MISSING,
    NEED_MORE,
    TRUNCATED,
    ProxyHeader,
    ProxyHeaderError,
    ProxyVersion,
    read_proxy_header,
)
from .transport import SocketTransport

__all__ = ["ProxyRead", "read_proxy"]


@dataclass(frozen=True, slots=True)
class ProxyRead:
    """The header (None: `optional`, and none came), or why there is none; and the bytes
    read after it."""

    header: ProxyHeader | ProxyHeaderError | None
    rest: bytes = b""
    peer_left: bool = False


async def read_proxy(transport: SocketTransport, expect: ProxyVersion, deadline: float) -> ProxyRead:
    """Read until the header is whole, shown to be missing or broken, or `deadline` passes."""
    data = bytearray()
    with trio.move_on_at(deadline):
        while True:
            chunk = await transport.receive()
            if not chunk:
                if not data:
                    return ProxyRead(None, peer_left=True)
                return ProxyRead(ProxyHeaderError(TRUNCATED), peer_left=True)
            data += chunk
            result = read_proxy_header(data, expect)
            if result is NEED_MORE:
                continue
            if isinstance(result, ProxyHeader):
                return ProxyRead(result, bytes(data[result.size :]))
            if result is None:
                return ProxyRead(None, bytes(data))
            assert isinstance(result, ProxyHeaderError)
            return ProxyRead(result)
    return ProxyRead(ProxyHeaderError(TRUNCATED if data else MISSING))
