"""The profile as frozen, typed objects.

Everything here is already validated and in its final unit (seconds, bytes): the
loader (`load.py`) is the only way in, so nothing half-valid exists. The names follow
the profile format word for word (`refuse`, `stall`, `close`, `reset`...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .._address import format_hostport
from .regex import PathRegex
from .units import Comparison, Duration

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
    """What a TCP connect meets (the profile format's "Accept modes")."""

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
    """The actions of the profile format; `actions.ACTIONS` says what each takes."""

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

    data: bytes | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """The healthy answer. `body=None` means the JSON echo of the request."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: Body | None = None
    framing: Framing = Framing.LENGTH


# --- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer with the listener's response, with any of these overrides applied."""

    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: Body | None = None
    framing: Framing | None = None
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

    for_s: Duration | None = None
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
    interval: Duration | None = None
    rate_bytes_per_s: float | None = None
    name = ActionName.DRIBBLE


@dataclass(frozen=True, slots=True)
class Garbage:
    """`bytes` seeded random bytes that are not HTTP, then close."""

    bytes: int = 64
    name = ActionName.GARBAGE


Action = Respond | Close | Reset | Hang | Partial | Dribble | Garbage


# --- rules ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions that must all hold; `None` means any.

    `path_glob` and `path_regex` are exclusive. Header names are lower case.
    """

    methods: frozenset[str] | None = None
    path_glob: str | None = None
    path_regex: PathRegex | None = None
    headers: tuple[tuple[str, str], ...] = ()
    request_on_connection: tuple[Comparison, int] | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of a listener's `rules`. `name` defaults to `rule-<index>`."""

    name: str
    action: Action
    at: At = At.REQUEST
    match: Match = field(default_factory=Match)
    probability: float = 1.0
    times: int | None = None
    delay: Duration | None = None


# --- listeners ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keepalive:
    """When a kept-alive connection is closed (FIN) without `Connection: close` saying so."""

    idle_close: Duration | None = None
    max_requests: int | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Defences against hostile clients (an extension of the format: `limits`)."""

    header_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    #: the largest size (`bytes`, `chunk`) that the `X-Fault` header may ask for
    max_fault_header_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of a schedule; `None` fields leave the listener as configured."""

    duration_s: float
    accept: AcceptMode | None = None
    rules: tuple[Rule, ...] | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A timeline of phases that starts when the listener opens."""

    phases: tuple[Phase, ...]
    repeat: bool = True


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket and how it misbehaves (the profile format's "A listener")."""

    name: str
    host: str
    port: int
    accept: AcceptMode = AcceptMode.OPEN
    backlog: int = 128
    max_connections: int | None = None
    response: Response = field(default_factory=Response)
    keepalive: Keepalive = field(default_factory=Keepalive)
    rules: tuple[Rule, ...] = ()
    schedule: Schedule | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def bind(self) -> str:
        """`host:port` as written in a profile (`[::1]:8080` for IPv6)."""
        return format_hostport(self.host, self.port)


@dataclass(frozen=True, slots=True)
class Control:
    """The admin API's bind (None: the CLI's `--control`, or a free loopback port) and token.

    `allowed_hosts`: names a `Host` or `Origin` may give for the admin API besides its address
    and `localhost` (lower case, IP literals without brackets); `max_subscribers`: the most
    event-stream readers at once (None: the server's default).
    """

    bind: tuple[str, int] | None = None
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_subscribers: int | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A whole, valid profile. `source` is the file it came from (or `<string>`)."""

    listeners: tuple[Listener, ...]
    version: int = 1
    seed: int | None = None
    fault_header: str | None = "x-fault"
    control: Control = field(default_factory=Control)
    source: str = "<string>"
    #: the parsed document (plain JSON-able data), for GET /profile
    raw: object = field(default=None, compare=False, hash=False, repr=False)

    def listener(self, name: str) -> Listener:
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)
