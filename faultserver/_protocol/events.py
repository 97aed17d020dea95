"""What a protocol reader hands to the connection loop besides complete requests.

A complete request is the `Request` itself (`faultserver._decide.request`), so the hot path
builds one object per request, not two. Everything else that can happen while reading is one
of the small frozen records below.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._decide.request import Request

__all__ = ["ContinueExpected", "Event", "PeerEnded", "Refusal"]


@dataclass(frozen=True, slots=True)
class ContinueExpected:
    """A request's head asked `Expect: 100-continue`, and its body has not arrived.

    `request` is the request being read (its body not yet there); the same object comes out
    again, complete, once its body has been read. The connection decides first, and sends
    `100 Continue` only when the decided action reads the body and answers.
    """

    request: Request


@dataclass(frozen=True, slots=True)
class Refusal:
    """The connection must be answered with this error and closed: a limit (408, 413, 431),
    a malformed request (400), a method (405) or a version (505) not served here.

    Requests that were complete before it come out first: they are answered in order.
    """

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PeerEnded:
    """The client closed its side (FIN) between requests."""


Event = Request | ContinueExpected | Refusal | PeerEnded
