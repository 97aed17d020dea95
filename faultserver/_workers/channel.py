"""The parent <-> worker channel: length-prefixed pickled messages over a stream socket.

Pickle, not JSON: a worker forwards every event it emits, tens of thousands a second, and
pickle carries the event log's compact records (tuples sharing one dict of fields per
request, `_events.py`) as they are, where JSON needed a dict built, encoded and decoded per
event (about 5 us on each side, most of a fleet's cost per request). Both ends are this
package, over a socketpair the parent made: nothing else can write to it.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import trio

__all__ = ["Channel"]

#: A message longer than this is a broken worker, not a message.
MAX_MESSAGE = 64 << 20
_LENGTH = struct.Struct("!I")


class Channel:
    """Send and receive messages (dicts) over a Trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._send_lock = trio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        await self._send(_frame(message))

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def receive(self) -> list[dict[str, Any]]:
        """The next whole messages (at least one); [] once the other side has closed."""
        buffer = self._buffer
        while True:
            messages = []
            start = 0
            while len(buffer) - start >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buffer, start)
                if size > MAX_MESSAGE:
                    raise ValueError(f"worker channel: a message of {size} bytes")
                end = start + _LENGTH.size + size
                if end > len(buffer):
                    break
                messages.append(pickle.loads(buffer[start + _LENGTH.size : end]))
                start = end
            if start:
                del buffer[:start]
            if messages:
                return messages
            data = await self.stream.receive_some(1 << 18)
            if not data:
                return []
            buffer += data


def _frame(message: dict[str, Any]) -> bytes:
    body = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body
