"""`garbage` bytes are random but never the start of HTTP nor of a TLS record: a client's
error is then the same for every seed (its message names what it saw)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import trio

from faultserver._profile.model import Garbage
from faultserver._wire.actions.garbage import UNIT


def garbage_of(rng: random.Random, size: int = 64) -> bytes:
    sent: list[bytes] = []

    async def send(data: Any) -> None:
        sent.append(bytes(data))

    turn = SimpleNamespace(rng=rng, transport=SimpleNamespace(send=send))
    trio.run(UNIT.run, Garbage(bytes=size), turn)
    return b"".join(sent)


def test_no_seed_gives_a_tls_record_header_or_an_http_start() -> None:
    # seeds whose raw draw starts like a TLS record (x, 0x03) or with H: all are changed
    tls_like = [s for s in range(3000) if random.Random(s).randbytes(2)[1] == 0x03]
    h_like = [s for s in range(3000) if random.Random(s).randbytes(1)[0] in b"Hh"]
    assert tls_like and h_like
    for seed in tls_like + h_like:
        data = garbage_of(random.Random(seed))
        assert len(data) == 64
        assert data[1] != 0x03 and data[:1] not in (b"H", b"h")
        assert data[2:] == random.Random(seed).randbytes(64)[2:]  # the rest as drawn


def test_other_seeds_give_the_bytes_as_drawn() -> None:
    seed = next(
        s for s in range(3000)
        if random.Random(s).randbytes(2)[1] != 0x03 and random.Random(s).randbytes(1) not in (b"H", b"h")
    )
    assert garbage_of(random.Random(seed), 200_000) == random.Random(seed).randbytes(200_000)
