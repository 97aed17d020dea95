"""The profile as frozen, typed objects.

Everything here is already validated and in its final unit (seconds, bytes): the
loader (`load.py`) is the only way in, so nothing half-valid exists. The names follow
profile-v1.md word for word (`refuse`, `stall`, `close`, `reset`...).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Optional, Union

from .units import Duration

__all__ = [
    "AcceptMode",
    "Action",
    "ActionName",
    "At",
    "Close",
    "CloseHow",
    "Control",
    "Dribble",
    "Framing",
    "Garbage",
    "Hang",
    "Keepalive",
    "Limits",
    "Listener",
    "Match",
    "Partial",
    "Phase",
    "Profile",
    "Reset",
    "Respond",
    "Response",
    "Rule",
    "Schedule",
]


class AcceptMode(str, enum.Enum):
    """What a TCP connect meets (profile-v1.md "Accept modes")."""

    OPEN = "open"
    REFUSE = "refuse"
    STALL = "stall"


class CloseHow(str, enum.Enum):
    """How a connection ends: a clean FIN or an RST (`drop`, and `peer_close` events)."""

    FIN = "fin"
    RST = "rst"


class Framing(str, enum.Enum):
    """How a response body's end is marked."""

    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"


class At(str, enum.Enum):
    """When a rule is checked: per request read, or once per accepted connection."""

    REQUEST = "request"
    CONNECT = "connect"


class ActionName(str, enum.Enum):
    RESPOND = "respond"
    CLOSE = "close"
    RESET = "reset"
    HANG = "hang"
    PARTIAL = "partial"
    DRIBBLE = "dribble"
    GARBAGE = "garbage"


@dataclass(frozen=True, slots=True)
class Body:
    """A response body: literal bytes, or `size` bytes of generated filler."""

    data: Optional[bytes] = None
    size: Optional[int] = None


@dataclass(frozen=True, slots=True)
class Response:
    """The healthy answer. `body=None` means the JSON echo of the request."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: Optional[Body] = None
    framing: Framing = Framing.LENGTH


# --- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer with the listener's response, with any of these overrides applied."""

    status: Optional[int] = None
    headers: tuple[tuple[str, str], ...] = ()
    body: Optional[Body] = None
    framing: Optional[Framing] = None
    name = ActionName.RESPOND


@dataclass(frozen=True, slots=True)
class Close:
    """Half-close (FIN), then read and discard for `drain_s`, then close."""

    drain_s: float = 1.0
    name = ActionName.CLOSE


@dataclass(frozen=True, slots=True)
class Reset:
    """SO_LINGER {1, 0} and close: an RST."""

    name = ActionName.RESET


@dataclass(frozen=True, slots=True)
class Hang:
    """Stay silent, discarding what arrives; close after `for_s` (None: until the peer leaves)."""

    for_s: Optional[Duration] = None
    name = ActionName.HANG


@dataclass(frozen=True, slots=True)
class Partial:
    """The first `bytes` of the full response, then `then` (close, reset or hang)."""

    bytes: int
    then: ActionName = ActionName.CLOSE
    name = ActionName.PARTIAL


@dataclass(frozen=True, slots=True)
class Dribble:
    """The full response in pieces: `chunk_bytes` every `interval`, or at `rate_bytes_per_s`."""

    chunk_bytes: int = 1
    interval: Optional[Duration] = None
    rate_bytes_per_s: Optional[float] = None
    name = ActionName.DRIBBLE


@dataclass(frozen=True, slots=True)
class Garbage:
    """`bytes` seeded random bytes that are not HTTP, then close."""

    bytes: int = 64
    name = ActionName.GARBAGE


Action = Union[Respond, Close, Reset, Hang, Partial, Dribble, Garbage]


# --- rules ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions that must all hold; `None` means any.

    `path_glob` and `path_regex` are exclusive. Header names are lower case.
    """

    methods: Optional[frozenset[str]] = None
    path_glob: Optional[str] = None
    path_regex: Optional[re.Pattern[str]] = None
    headers: tuple[tuple[str, str], ...] = ()
    request_on_connection: Optional[tuple[str, int]] = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of a listener's `rules`. `name` defaults to `rule-<index>`."""

    name: str
    action: Action
    at: At = At.REQUEST
    match: Match = field(default_factory=Match)
    probability: float = 1.0
    times: Optional[int] = None
    delay: Optional[Duration] = None


# --- listeners ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keepalive:
    idle_close: Optional[Duration] = None
    max_requests: Optional[int] = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Defences against hostile clients (an extension of the format: `limits`)."""

    header_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of a schedule; `None` fields leave the listener as configured."""

    duration_s: float
    accept: Optional[AcceptMode] = None
    rules: Optional[tuple[Rule, ...]] = None


@dataclass(frozen=True, slots=True)
class Schedule:
    phases: tuple[Phase, ...]
    repeat: bool = True


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    host: str
    port: int
    accept: AcceptMode = AcceptMode.OPEN
    backlog: int = 128
    max_connections: Optional[int] = None
    response: Response = field(default_factory=Response)
    keepalive: Keepalive = field(default_factory=Keepalive)
    rules: tuple[Rule, ...] = ()
    schedule: Optional[Schedule] = None
    limits: Limits = field(default_factory=Limits)

    @property
    def bind(self) -> str:
        """`host:port` as written in a profile (`[::1]:8080` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Control:
    bind: Optional[tuple[str, int]] = None
    token: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A whole, valid profile. `source` is the file it came from (or `<string>`)."""

    listeners: tuple[Listener, ...]
    version: int = 1
    seed: Optional[int] = None
    fault_header: Optional[str] = "x-fault"
    control: Control = field(default_factory=Control)
    source: str = "<string>"
    #: the parsed document (plain JSON-able data), for GET /profile
    raw: object = field(default=None, compare=False, hash=False, repr=False)

    def listener(self, name: str) -> Listener:
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)
