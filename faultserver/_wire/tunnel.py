"""A switched protocol (`101 Switching Protocols`, a WebSocket): bytes both ways, as they
come, until either side ends; then both are ended. No timeout: a WebSocket may be idle."""

from __future__ import annotations

import trio

from .transport import Transport
from .upstream import UpstreamTransport

__all__ = ["tunnel"]


async def tunnel(client: Transport, upstream: UpstreamTransport, to_upstream: bytes, to_client: bytes) -> str:
    """Relay until one side ends (FIN, RST, or a failed write); which side did: `client`
    or `upstream`. `to_upstream` and `to_client` are bytes already read past the heads."""
    ended: list[str] = []

    async def pump(side: str, read_upstream: bool, nursery: trio.Nursery) -> None:
        try:
            while True:
                if read_upstream:
                    data = await upstream.receive()
                else:
                    data = await client.receive()
                if not data:
                    break
                await (client if read_upstream else upstream).send(data)
        except OSError:
            pass
        ended.append(side)
        nursery.cancel_scope.cancel()

    try:
        if to_upstream:
            await upstream.send(to_upstream)
        if to_client:
            await client.send(to_client)
    except OSError:
        return "client" if not ended else ended[0]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, "client", False, nursery)
        nursery.start_soon(pump, "upstream", True, nursery)
    return ended[0] if ended else "client"
