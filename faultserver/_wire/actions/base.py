"""What every action unit takes (`Turn`) and gives back (`Outcome`).

An action unit writes what its fault writes and returns what becomes of the connection:
kept open for the next request, ended with a FIN (after a drain) or an RST, or held. The
connection carries the ending out (`connection.py`), so ending a connection is written
once, and no exception is used for control flow.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..._decide.request import Request
from ..._profile.model import Action
from ..context import ListenerContext
from ..transport import Transport

__all__ = [
    "FIN",
    "GONE",
    "GRACEFUL_DRAIN_S",
    "KEEP",
    "RST",
    "ActionUnit",
    "Ending",
    "Outcome",
    "Turn",
]

#: How long a graceful close reads what the client still sends (unless an action says).
GRACEFUL_DRAIN_S = 1.0


class Ending(enum.Enum):
    """What becomes of the connection after an answer (or a fault)."""

    KEEP = "keep"  # read the next request
    FIN = "fin"  # half-close, drain for `drain_s`, close
    RST = "rst"  # reset
    HOLD = "hold"  # say nothing, read and discard, until the client leaves or `hold_s` passes
    GONE = "gone"  # the client has gone already: just let go of the socket


@dataclass(frozen=True, slots=True)
class Outcome:
    ending: Ending
    drain_s: float = GRACEFUL_DRAIN_S
    hold_s: float | None = None
    #: a FIN over TLS: with a `close_notify` alert first (False: a bare, truncating FIN)
    close_notify: bool = True


KEEP = Outcome(Ending.KEEP)
FIN = Outcome(Ending.FIN)
RST = Outcome(Ending.RST)
GONE = Outcome(Ending.GONE)


@dataclass(slots=True)
class Turn:
    """One decided fault being carried out: all an action unit may use.

    `request` is None for a rule `at: connect` (nothing was read); `fields` are the event
    fields of the request (or of the connection); `rng` is the deciding rule's own stream.
    """

    transport: Transport
    ctx: ListenerContext
    conn_id: int
    request: Request | None
    fields: dict[str, Any]
    rng: random.Random


A = TypeVar("A", bound=Action)


@dataclass(frozen=True, slots=True)
class ActionUnit(Generic[A]):
    """An action's data-plane half: the coroutine that carries it out.

    `reads_body`: the action answers, so a request that asked `Expect: 100-continue` gets its
    `100 Continue` and its body is read first; the others act on the head alone, so a client
    that waits for `100 Continue` never sends its body (and may send it again elsewhere).
    """

    model: type[A]
    run: Callable[[A, Turn], Awaitable[Outcome]]
    reads_body: bool
