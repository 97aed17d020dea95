"""The one table of actions and accept modes.

Read by the loader (which keys each action takes), the `X-Fault` header parser,
`faultserver actions`, the JSON Schema and the README. Adding an action starts here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._profile.model import AcceptMode, ActionName

__all__ = ["ACCEPT_MODES", "ACTIONS", "ActionSpec", "CONNECT_ACTIONS", "action_names"]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: ActionName
    #: key -> kind of value: "duration", "timing" (duration or distribution), "size",
    #: "rate", "status", "headers", "body", "framing", "then"
    keys: dict[str, str]
    help: str
    at_connect: bool


ACTIONS: dict[str, ActionSpec] = {
    spec.name.value: spec
    for spec in (
        ActionSpec(
            ActionName.RESPOND,
            {"status": "status", "headers": "headers", "body": "body", "framing": "framing"},
            "answer with the listener's response, with any status/headers/body/framing overridden",
            at_connect=False,
        ),
        ActionSpec(
            ActionName.CLOSE,
            {"drain": "duration"},
            "FIN without a response (half-close, then read and discard for `drain`, default 1s); "
            "a client that writes again reads EOF, not a reset",
            at_connect=True,
        ),
        ActionSpec(
            ActionName.RESET,
            {},
            "RST without a response (SO_LINGER 0, then close); the client gets ECONNRESET",
            at_connect=True,
        ),
        ActionSpec(
            ActionName.HANG,
            {"for": "timing"},
            "accept the request and stay silent on an open connection, discarding what arrives "
            "(a read timeout for the client); `for` closes it after a while",
            at_connect=True,
        ),
        ActionSpec(
            ActionName.PARTIAL,
            {"bytes": "size", "then": "then"},
            "send the first `bytes` of the full response (status line and headers count), "
            "then close (FIN), reset (RST) or hang",
            at_connect=False,
        ),
        ActionSpec(
            ActionName.DRIBBLE,
            {"chunk": "size", "interval": "timing", "rate": "rate"},
            "send the full response slowly: `chunk` bytes every `interval`, or at `rate`",
            at_connect=False,
        ),
        ActionSpec(
            ActionName.GARBAGE,
            {"bytes": "size"},
            "send `bytes` (default 64B) of seeded random bytes that are not HTTP, then close",
            at_connect=True,
        ),
    )
}

CONNECT_ACTIONS = tuple(name for name, spec in ACTIONS.items() if spec.at_connect)

ACCEPT_MODES: dict[str, str] = {
    AcceptMode.OPEN.value: "accept connections normally",
    AcceptMode.REFUSE.value: "connect() fails at once with ECONNREFUSED: the port is held by a "
    "bound socket that does not listen, so the kernel answers the SYN with RST",
    AcceptMode.STALL.value: "connect() times out for every new client, the first included: the "
    "listener stops accepting and fills its own accept queue, so the kernel drops SYNs. "
    "Unlike `hang` (the TCP connection is made and the request read, then no answer: a read "
    "timeout) and `at: connect` rules (the connection is accepted, then closed, reset, held "
    "or sent garbage before any byte is read), no handshake completes at all",
}


def action_names() -> list[str]:
    return list(ACTIONS)
