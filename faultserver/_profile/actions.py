"""The one table of actions, and the accept modes.

Each entry says everything the rest of faultserver needs to know about an action: its model
class, its YAML keys (the kind of value each takes and the model field it fills), which keys
are required or exclusive, its help text, and whether it may run `at: connect`. The loader,
the JSON Schema, the `X-Fault` parser and `faultserver actions` read this table and nothing
else; the data plane runs one unit per action, keyed by the same names. Adding an action is
one model class (`model.py`), one entry here and one unit in the data plane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .describe import describe_value, did_you_mean
from .keys import Key, ValueKind
from .model import (
    AcceptMode,
    Action,
    ActionName,
    Close,
    Delay,
    Dribble,
    Forward,
    Garbage,
    Goaway,
    Hang,
    Partial,
    Reset,
    Respond,
    RstStream,
)

__all__ = [
    "ACCEPT_MODES",
    "ACTIONS",
    "CONNECT_ACTIONS",
    "RULE_KEYS",
    "THEN_ACTIONS",
    "ActionKey",
    "ActionSpec",
    "ValueKind",
    "missing_key_problem",
    "one_of_problem",
    "unknown_action_key",
]

#: An action's key is read like any other key of the format.
ActionKey = Key

#: The keys every rule has, whatever its action; an action's own keys come on top.
RULE_KEYS = ("name", "at", "match", "probability", "times", "delay", "action")

#: What `partial` may do after its bytes.
THEN_ACTIONS = (ActionName.CLOSE, ActionName.RESET, ActionName.HANG)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action: `keys` maps each YAML key, in order, to how it is read."""

    name: ActionName
    model: type[Action]
    keys: Mapping[str, ActionKey]
    help: str
    #: whether it may run before any request is read (`at: connect`, `at: handshake`)
    at_connect: bool
    #: keys that must be given (null counts as given, and is then checked)
    required: tuple[str, ...] = ()
    #: exactly one of these keys must be given (null counts as not given)
    exactly_one_of: tuple[str, ...] = ()


_RESPOND_KEYS = {
    "status": ActionKey(ValueKind.STATUS, "status", nullable=True),
    "headers": ActionKey(ValueKind.HEADERS, "headers", nullable=True),
    "body": ActionKey(ValueKind.BODY, "body", nullable=True),
    "framing": ActionKey(ValueKind.FRAMING, "framing", nullable=True),
    "grpc": ActionKey(ValueKind.GRPC, "grpc", nullable=True),
}

ACTIONS: Mapping[str, ActionSpec] = {
    spec.name.value: spec
    for spec in (
        ActionSpec(
            ActionName.RESPOND,
            Respond,
            _RESPOND_KEYS,
            "answer with the listener's response, with any status/headers/body/framing overridden",
            at_connect=False,
        ),
        ActionSpec(
            ActionName.CLOSE,
            Close,
            {
                "drain": ActionKey(ValueKind.DURATION, "drain_s"),
                "close_notify": ActionKey(ValueKind.BOOLEAN, "close_notify"),
            },
            "FIN without a response (half-close, then read and discard for `drain`, default 1s); "
            "a client that writes again reads EOF, not a reset. Over TLS a close_notify alert "
            "goes first, unless `close_notify: false` (a truncated stream to a strict client)",
            at_connect=True,
        ),
        ActionSpec(
            ActionName.RESET,
            Reset,
            {},
            "RST without a response (SO_LINGER 0, then close); the client gets ECONNRESET",
            at_connect=True,
        ),
        ActionSpec(
            ActionName.HANG,
            Hang,
            {"for": ActionKey(ValueKind.TIMING, "for_s", nullable=True)},
            "accept the request and stay silent on an open connection, discarding what arrives "
            "(a read timeout for the client); `for` closes it after a while",
            at_connect=True,
        ),
        ActionSpec(
            ActionName.PARTIAL,
            Partial,
            {
                "bytes": ActionKey(ValueKind.SIZE, "bytes"),
                "then": ActionKey(ValueKind.THEN, "then"),
            },
            "send the first `bytes` of the full response (status line and headers count), "
            "then close (FIN), reset (RST) or hang",
            at_connect=False,
            required=("bytes",),
        ),
        ActionSpec(
            ActionName.DRIBBLE,
            Dribble,
            {
                "chunk": ActionKey(ValueKind.POSITIVE_SIZE, "chunk_bytes", goes_with="interval"),
                "interval": ActionKey(ValueKind.TIMING, "interval", nullable=True),
                "rate": ActionKey(ValueKind.RATE, "rate_bytes_per_s", nullable=True),
            },
            "send the full response slowly: `chunk` bytes every `interval`, or at `rate`",
            at_connect=False,
            exactly_one_of=("interval", "rate"),
        ),
        ActionSpec(
            ActionName.GARBAGE,
            Garbage,
            {"bytes": ActionKey(ValueKind.SIZE, "bytes")},
            "send `bytes` (default 64B) of seeded random bytes that are not HTTP, then close",
            at_connect=True,
        ),
        ActionSpec(
            ActionName.DELAY,
            Delay,
            {"for": ActionKey(ValueKind.TIMING, "for_s")},
            "wait `for`, then carry on as if no rule had acted: a slow accept (at: connect), a "
            "slow TLS handshake that completes (at: handshake), or a slow answer",
            at_connect=True,
            required=("for",),
        ),
        ActionSpec(
            ActionName.GOAWAY,
            Goaway,
            {
                "error": ActionKey(ValueKind.H2_ERROR, "error"),
                "last_stream_id": ActionKey(ValueKind.LAST_STREAM, "last_stream"),
                "then": ActionKey(ValueKind.GOAWAY_THEN, "then"),
            },
            "HTTP/2: GOAWAY with `error` (default NO_ERROR) naming `last_stream_id` (previous: "
            "this stream is refused too, the GOAWAY race; current; 0), then close (default) or "
            "keep answering the streams it names. On HTTP/1.1: close",
            at_connect=False,
        ),
        ActionSpec(
            ActionName.RST_STREAM,
            RstStream,
            {"error": ActionKey(ValueKind.H2_ERROR, "error")},
            "HTTP/2: RST_STREAM on the request's stream with `error` (default REFUSED_STREAM); "
            "the connection goes on. On HTTP/1.1: reset",
            at_connect=False,
        ),
        ActionSpec(
            ActionName.FORWARD,
            Forward,
            {
                "then": ActionKey(ValueKind.FORWARD_THEN, "then"),
                **{key: _RESPOND_KEYS[key] for key in ("status", "headers", "body")},
            },
            "proxy mode: forward the request to the listener's upstream and relay its answer; "
            "`then` closes (FIN) or resets after it, cuts it after N bytes ({partial: {bytes, "
            "how}}) or dribbles it ({dribble: {rate}}); `status`, `headers`, `body` replace "
            "the upstream's, as respond's do",
            at_connect=False,
        ),
    )
}

CONNECT_ACTIONS = tuple(name for name, spec in ACTIONS.items() if spec.at_connect)

ACCEPT_MODES: Mapping[str, str] = {
    AcceptMode.OPEN.value: "accept connections normally",
    AcceptMode.REFUSE.value: "connect() fails at once with ECONNREFUSED: the port is held by a "
    "bound socket that does not listen, so the kernel answers the SYN with RST",
    AcceptMode.STALL.value: "connect() times out for every new client, the first included: the "
    "listener stops accepting and fills its own accept queue, so the kernel drops SYNs. "
    "Unlike `hang` (the TCP connection is made and the request read, then no answer: a read "
    "timeout) and `at: connect` rules (the connection is accepted, then closed, reset, held "
    "or sent garbage before any byte is read), no handshake completes at all",
}


# --- messages the loader and the X-Fault parser share -----------------------------------


def unknown_action_key(key: str, action: str, common: Sequence[str]) -> str:
    """The message for `key`, which `action` does not take; `common` are the keys allowed
    besides the action's own (a rule's keys, or the fault header's `delay`)."""
    own = tuple(ACTIONS[action].keys)
    owners = [name for name, spec in ACTIONS.items() if key in spec.keys]
    if owners:
        takes = f"{action} takes: {', '.join(own)}" if own else f"{action} takes no keys of its own"
        return (
            f"key {key!r} does not apply to action {action!r} "
            f"(it belongs to {', '.join(owners)}; {takes})"
        )
    allowed = (*common, *own)
    shown = describe_value(key)
    guess = did_you_mean(key, allowed)
    if guess:
        return f"unknown key {shown} for action {action!r} (did you mean {guess!r}?)"
    return f"unknown key {shown} for action {action!r} (expected one of: {', '.join(allowed)})"


def missing_key_problem(spec: ActionSpec, given: Sequence[str]) -> str | None:
    """The message for the first required key of `spec` that is not among `given`, or None."""
    for key in spec.required:
        if key not in given:
            return f"missing required key {key!r} for action {spec.name.value!r}"
    return None


def one_of_problem(spec: ActionSpec, given: Sequence[str]) -> tuple[str, str] | None:
    """`(key, message)` when `given` (the keys given a value) breaks `exactly_one_of`; `key`
    is where to report it ("" for the action as a whole)."""
    if not spec.exactly_one_of:
        return None
    chosen = [key for key in spec.exactly_one_of if key in given]
    if len(chosen) == 1:
        return None
    options = " or ".join(repr(key) for key in spec.exactly_one_of)
    name = spec.name.value
    if chosen:
        at_most = "not both" if len(spec.exactly_one_of) == 2 else "only one of them"
        return chosen[-1], f"action {name!r} takes {options}, {at_most}"
    described = " or ".join(_with_companions(spec, key) for key in spec.exactly_one_of)
    return "", f"action {name!r} needs {described}"


def _with_companions(spec: ActionSpec, key: str) -> str:
    companions = [other for other, k in spec.keys.items() if k.goes_with == key]
    if not companions:
        return repr(key)
    return f"{key!r} (with an optional {' or '.join(repr(c) for c in companions)})"
