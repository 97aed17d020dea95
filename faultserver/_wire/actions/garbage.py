"""`garbage`: seeded random bytes that are not HTTP, then a FIN.

The bytes are made and sent a piece at a time, so a large `bytes` costs one piece of memory,
not all of it, and a client that does not read holds back the sender, not the server. The
pieces are multiples of four bytes, which `randbytes` draws word by word: the bytes are the
same as one draw of the whole, so a seed gives what it always gave.
"""

from __future__ import annotations

from ..._profile.model import Garbage
from .base import FIN, ActionUnit, Outcome, Turn

__all__ = ["GARBAGE_PIECE_BYTES", "UNIT"]

#: How much garbage is made and sent at a time.
GARBAGE_PIECE_BYTES = 64 * 1024
_H = frozenset(b"Hh")
#: The second byte of every TLS record: the protocol version's major number.
_TLS_MAJOR = 0x03


async def _garbage(action: Garbage, turn: Turn) -> Outcome:
    rng = turn.rng
    left = action.bytes
    first = True
    while left > 0:
        piece = bytearray(rng.randbytes(min(left, GARBAGE_PIECE_BYTES)))
        if first:
            if piece[0] in _H:
                piece[0] ^= 0x80  # never even the start of "HTTP/"
            if len(piece) > 1 and piece[1] == _TLS_MAJOR:
                # nor of a TLS record (type, version 3.x, length): a TLS client then always
                # says "wrong version number", not whatever a random record length makes it say
                piece[1] ^= 0x80
        first = False
        await turn.transport.send(piece)
        left -= len(piece)
    return FIN


UNIT = ActionUnit(Garbage, _garbage, reads_body=False)
