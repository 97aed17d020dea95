"""One JSON object per line over a stream socket: the parent <-> worker control channel."""

from __future__ import annotations

import json
from typing import Any

import trio

__all__ = ["Channel"]

#: A line longer than this is a broken worker, not a message.
MAX_LINE = 1 << 20


class Channel:
    """Send and receive JSON objects, one per line, over a Trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._send_lock = trio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        async with self._send_lock:
            await self.stream.send_all(data)

    async def send_many(self, messages: list[dict[str, Any]]) -> None:
        data = b"".join(json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in messages)
        async with self._send_lock:
            await self.stream.send_all(data)

    async def receive(self) -> list[dict[str, Any]]:
        """The next whole lines (at least one); [] once the other side has closed."""
        while True:
            end = self._buffer.rfind(b"\n")
            if end >= 0:
                lines = self._buffer[:end].split(b"\n")
                del self._buffer[: end + 1]
                return [json.loads(line) for line in lines if line]
            if len(self._buffer) > MAX_LINE:
                raise ValueError("control channel: a line longer than 1 MiB")
            data = await self.stream.receive_some(65536)
            if not data:
                return []
            self._buffer += data
