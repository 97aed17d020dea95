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
    "TLS",
    "AcceptMode",
    "Action",
    "ActionName",
    "At",
    "CertificateMode",
    "ClientAuth",
    "Close",
    "CloseHow",
    "Control",
    "Delay",
    "Dribble",
    "Forward",
    "ForwardThen",
    "Framing",
    "Garbage",
    "Goaway",
    "GoawayThen",
    "Grpc",
    "GrpcStatus",
    "H2Error",
    "H2Settings",
    "Hang",
    "Keepalive",
    "LastStream",
    "Limits",
    "Listener",
    "Match",
    "Partial",
    "Phase",
    "Profile",
    "Protocol",
    "ProxyProtocol",
    "Reset",
    "Respond",
    "Response",
    "RstStream",
    "Rule",
    "Schedule",
    "Upstream",
    "UpstreamFailure",
    "UpstreamHost",
]


class AcceptMode(str, enum.Enum):
    """What a TCP connect meets (the profile format's "Accept modes")."""

    OPEN = "open"
    REFUSE = "refuse"
    STALL = "stall"


class CertificateMode(str, enum.Enum):
    """The certificate a generated TLS listener shows: a good one, or one that fails a
    client's verification for exactly one reason."""

    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_HOST = "wrong_host"
    SELF_SIGNED = "self_signed"
    UNTRUSTED_CA = "untrusted_ca"


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
    """When a rule is checked: per request read, once per accepted connection, or (on a TLS
    listener) once the client's TLS hello has arrived and before the server answers it."""

    REQUEST = "request"
    CONNECT = "connect"
    HANDSHAKE = "handshake"


class ActionName(str, enum.Enum):
    """The actions of the profile format; `actions.ACTIONS` says what each takes."""

    RESPOND = "respond"
    CLOSE = "close"
    RESET = "reset"
    HANG = "hang"
    PARTIAL = "partial"
    DRIBBLE = "dribble"
    GARBAGE = "garbage"
    DELAY = "delay"
    GOAWAY = "goaway"
    RST_STREAM = "rst_stream"
    FORWARD = "forward"


@dataclass(frozen=True, slots=True)
class Body:
    """A response body: literal bytes, or `size` bytes of generated filler."""

    data: bytes | None = None
    size: int | None = None


class GrpcStatus(enum.IntEnum):
    """gRPC status codes (grpc/doc/statuscodes.md), by the names the profile uses."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True)
class Grpc:
    """A gRPC answer: `status` and `message` in `grpc-status` / `grpc-message`. Not OK: a
    trailers-only response; OK: the body as one gRPC message, then the trailers."""

    status: GrpcStatus = GrpcStatus.OK
    message: str = ""


@dataclass(frozen=True, slots=True)
class Response:
    """The healthy answer. `body=None` means the JSON echo of the request."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: Body | None = None
    framing: Framing = Framing.LENGTH
    grpc: Grpc | None = None


# --- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer with the listener's response, with any of these overrides applied."""

    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: Body | None = None
    framing: Framing | None = None
    grpc: Grpc | None = None
    name = ActionName.RESPOND


@dataclass(frozen=True, slots=True)
class Close:
    """Half-close (FIN), then read and discard for `drain_s`, then close."""

    drain_s: float = 1.0
    #: on a TLS connection: a TLS `close_notify` before the FIN (False: a bare FIN, which a
    #: strict client reports as a truncated stream)
    close_notify: bool = True
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


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait `for_s`, then carry on as if no rule had acted (a slow accept, handshake or answer)."""

    for_s: Duration
    name = ActionName.DELAY


class H2Error(str, enum.Enum):
    """HTTP/2 error codes (RFC 9113 section 7), as GOAWAY and RST_STREAM carry them."""

    NO_ERROR = "NO_ERROR"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    FLOW_CONTROL_ERROR = "FLOW_CONTROL_ERROR"
    SETTINGS_TIMEOUT = "SETTINGS_TIMEOUT"
    STREAM_CLOSED = "STREAM_CLOSED"
    FRAME_SIZE_ERROR = "FRAME_SIZE_ERROR"
    REFUSED_STREAM = "REFUSED_STREAM"
    CANCEL = "CANCEL"
    COMPRESSION_ERROR = "COMPRESSION_ERROR"
    CONNECT_ERROR = "CONNECT_ERROR"
    ENHANCE_YOUR_CALM = "ENHANCE_YOUR_CALM"
    INADEQUATE_SECURITY = "INADEQUATE_SECURITY"
    HTTP_1_1_REQUIRED = "HTTP_1_1_REQUIRED"


class LastStream(str, enum.Enum):
    """Which stream a GOAWAY names as the last one the server will answer."""

    CURRENT = "current"  # this stream is answered; later ones are refused
    PREVIOUS = "previous"  # this stream is refused too: the GOAWAY race
    ZERO = "0"  # none


class GoawayThen(str, enum.Enum):
    """What a GOAWAY is followed by: the connection's close, or the streams it still answers."""

    CLOSE = "close"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Goaway:
    """HTTP/2: a GOAWAY frame naming `last_stream`, then close the connection or keep it for
    the streams it still answers. On HTTP/1.1 it is a `close` (FIN)."""

    error: H2Error = H2Error.NO_ERROR
    last_stream: LastStream = LastStream.PREVIOUS
    then: GoawayThen = GoawayThen.CLOSE
    name = ActionName.GOAWAY


@dataclass(frozen=True, slots=True)
class RstStream:
    """HTTP/2: RST_STREAM with `error` on the request's stream. On HTTP/1.1 it is a `reset`."""

    error: H2Error = H2Error.REFUSED_STREAM
    name = ActionName.RST_STREAM


@dataclass(frozen=True, slots=True)
class ForwardThen:
    """What `forward` does to the upstream's answer on its way: relay it all (or its first
    `cut_bytes`, head included), at `rate_bytes_per_s` (None: as fast as it comes), then end
    the connection with `end` (None: keep it, as the answer says)."""

    end: CloseHow | None = None
    cut_bytes: int | None = None
    rate_bytes_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """Proxy mode: forward the request to the listener's upstream and relay its answer, with
    `then` applied, and its status (and headers, body) replaced as `respond` would."""

    then: ForwardThen = ForwardThen()
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: Body | None = None
    name = ActionName.FORWARD


Action = (
    Respond | Close | Reset | Hang | Partial | Dribble | Garbage | Delay | Goaway | RstStream | Forward
)


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
    #: `at: handshake` only: a glob of the TLS server name the client asked for (SNI), and a
    #: protocol its ALPN offer must include
    sni_glob: str | None = None
    alpn: str | None = None


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
    #: a generated TLS listener's certificate in this phase (`tls: {certificate: ...}`)
    certificate: CertificateMode | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A timeline of phases that starts when the listener opens."""

    phases: tuple[Phase, ...]
    repeat: bool = True


class Protocol(str, enum.Enum):
    """What a listener speaks: HTTP/1.1, HTTP/2 (h2c by prior knowledge, or ALPN `h2`)."""

    HTTP1 = "http/1.1"
    H2 = "h2"


@dataclass(frozen=True, slots=True)
class H2Settings:
    """A listener's HTTP/2 behaviour: the SETTINGS it sends, and two faults of the
    connection itself (None: the library's defaults)."""

    max_concurrent_streams: int | None = None
    initial_window_size: int | None = None
    max_frame_size: int | None = None
    header_table_size: int | None = None
    #: never send WINDOW_UPDATE: a client's upload stalls once its window is spent
    flow_stall: bool = False
    #: answer PINGs (False: never, so a client with a ping timeout closes)
    ping_ack: bool = True


class ProxyProtocol(str, enum.Enum):
    """Whether a PROXY protocol header must come before a connection's first byte, and
    which version (`optional`: either, or none)."""

    NONE = "none"
    V1 = "v1"
    V2 = "v2"
    OPTIONAL = "optional"


class ClientAuth(str, enum.Enum):
    """Whether a TLS listener asks for a client certificate (mTLS)."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class TLS:
    """A listener's TLS: the user's PEM pair (`cert_path`, `key_path`), or a generated one
    (`generate`) from a throwaway CA for the listener's host and `names`, showing `certificate`.

    Paths are absolute (the loader resolves them against the profile's folder). Versions are
    "1.2" or "1.3" (None: what the TLS library allows).
    """

    generate: bool = False
    cert_path: str | None = None
    key_path: str | None = None
    names: tuple[str, ...] = ()
    certificate: CertificateMode = CertificateMode.VALID
    min_version: str | None = None
    max_version: str | None = None
    #: the ALPN protocols offered, in the server's order of preference (empty: from the
    #: listener's `protocols`, h2 first)
    alpn: tuple[str, ...] = ()
    client_auth: ClientAuth = ClientAuth.NONE
    client_ca_path: str | None = None


class UpstreamFailure(str, enum.Enum):
    """What a client meets when the upstream fails: a gateway's 502/504, or the same
    failure on its own connection (an RST for an RST, a FIN for a FIN)."""

    GATEWAY = "gateway"
    MIRROR = "mirror"


class UpstreamHost(str, enum.Enum):
    """The `Host` a forwarded request carries: the client's, or the upstream's address."""

    KEEP = "keep"
    UPSTREAM = "upstream"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Proxy mode: where a listener forwards the requests no rule stops, and how."""

    host: str
    port: int
    scheme: str = "http"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    failure: UpstreamFailure = UpstreamFailure.GATEWAY
    #: at most this many connections to the upstream at once (requests beyond wait)
    pool_max_connections: int = 100
    #: an idle pooled connection older than this is closed, not reused
    pool_idle_timeout_s: float = 60.0
    host_header: UpstreamHost = UpstreamHost.KEEP
    #: the pseudonym of a `Via` header added both ways (None: no `Via`)
    via: str | None = None
    #: `https://`: the CA file that signs the upstream's certificate (None: the system's),
    #: whether it is checked at all, and the name asked for (None: the host)
    tls_ca_path: str | None = None
    tls_verify: bool = True
    tls_sni: str | None = None

    @property
    def authority(self) -> str:
        """`host:port` (`[::1]:8080` for IPv6), as a `Host` header names it."""
        return format_hostport(self.host, self.port)


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
    tls: TLS | None = None
    proxy_protocol: ProxyProtocol = ProxyProtocol.NONE
    protocols: tuple[Protocol, ...] = (Protocol.HTTP1,)
    h2: H2Settings = field(default_factory=H2Settings)
    #: proxy mode: requests no rule stops are forwarded here (None: answered with `response`)
    upstream: Upstream | None = None

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
    #: serve the admin API over HTTPS (a token off loopback should not travel in plaintext)
    tls: TLS | None = None


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
