"""Who may ask the admin API what: checked on each request's head, before any body is read.

Pure: a request head in (method, path, headers, the address it arrived at), a `Refusal`
or None out, so every case is tested without a socket.

In order:

1. `GET /healthz` and `GET /readyz` pass whatever they carry: probes send no token, and a
   Kubernetes probe sends the pod's IP as `Host`. They reveal nothing but "up". The
   dashboard's static files (`pages`: `GET /` and its assets) need no token, since a
   browser cannot send one when it loads a page and they hold no data; checks 2 and 3
   still apply to them.
2. `Host` (403). A page that a browser loaded from `http://attacker.example` can make the
   name `attacker.example` resolve to 127.0.0.1 (DNS rebinding) and then talk to the admin
   API as its own origin; the `Host` it sends still names the attacker. So the host must be
   the address the request arrived at, a loopback form (`localhost`, `127.0.0.1`, `[::1]`:
   a page cannot be served from those names by someone else) or a name configured in
   `control.allowed_hosts`; the port must be the admin API's.
3. `Origin` (403). Browsers send it on every cross-origin write (and `null` from sandboxed
   pages and files): a request that carries one must come from the admin API's own
   origin, `http://` (`https://` over TLS) + an allowed host + its port. Scripts (curl,
   httpx) send none.
4. The token (401), compared in constant time as bytes: a header arrives as Latin-1 text,
   so its bytes are recovered with Latin-1 and compared with the token's UTF-8 bytes.
5. A write with a body must say its type (415): `application/json`, or a YAML type for
   `PUT /profile`. A form or `text/plain` is what a page can send cross-site without a
   preflight, so it never counts as JSON. A write without a body (`curl -X POST .../reset`)
   needs no type.

Every refusal closes the connection (`connection: close`): the body, if any, is unread.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "JSON_TYPES",
    "LOOPBACK_NAMES",
    "PROBES",
    "YAML_TYPES",
    "Refusal",
    "RequestGuard",
    "RequestHead",
]

#: Paths that answer any caller (probes and load balancers).
PROBES = frozenset({"/healthz", "/readyz"})
#: Host names that always mean this machine.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
JSON_TYPES = frozenset({"application/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

MESSAGE_401 = "missing or wrong token: send 'Authorization: Bearer TOKEN'"


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What the guard reads: `headers` with lower-case names; `local` = (address, port)
    the connection arrived at."""

    method: str
    path: str
    headers: Mapping[str, str]
    local: tuple[str, int]


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


class RequestGuard:
    """The checks of the module docstring for one admin API."""

    def __init__(
        self,
        token: str | None,
        allowed_hosts: Collection[str] = (),
        scheme: str = "http",
        pages: Collection[str] = (),
    ) -> None:
        # surrogateescape: FAULTSERVER_TOKEN may hold bytes that are not UTF-8
        self._token = token.encode("utf-8", "surrogateescape") if token else None
        self._allowed_hosts = frozenset(name.lower().rstrip(".") for name in allowed_hosts)
        #: the admin API's own scheme (`https` over `control.tls`): the only one an Origin may have
        self._scheme = scheme
        #: paths of static pages: GET and HEAD pass without a token (Host, Origin checked)
        self._pages = frozenset(pages)

    def check(self, head: RequestHead) -> Refusal | None:
        if head.method in ("GET", "HEAD") and head.path in PROBES:
            return None
        if head.method in ("GET", "HEAD") and head.path in self._pages:
            return self._check_host(head) or self._check_origin(head)
        return (
            self._check_host(head)
            or self._check_origin(head)
            or self._check_token(head)
            or _check_body_type(head)
        )

    def host_allowed(self, host: str, port: int | None, local: tuple[str, int]) -> bool:
        """`host` (lower-case, no brackets) and `port` (None: absent) name this admin API."""
        if (80 if port is None else port) != local[1]:
            return False
        if host in LOOPBACK_NAMES or host in self._allowed_hosts:
            return True
        return _same_address(host, local[0])

    def _check_host(self, head: RequestHead) -> Refusal | None:
        given = head.headers.get("host", "")
        parsed = _split_host(given)
        if parsed is not None and self.host_allowed(*parsed, head.local):
            return None
        return Refusal(
            403,
            f"Host {given!r} does not name this admin API (expected its address, localhost "
            "or a name in control.allowed_hosts, with its port)",
            (("connection", "close"),),
        )

    def _check_origin(self, head: RequestHead) -> Refusal | None:
        origin = head.headers.get("origin")
        if origin is None:
            return None
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is not None
            and parts.scheme == self._scheme
            and parts.hostname is not None
            and self.host_allowed(parts.hostname, port, head.local)
        ):
            return None
        return Refusal(
            403,
            f"Origin {origin!r} is not this admin API's (cross-origin requests are refused)",
            (("connection", "close"),),
        )

    def _check_token(self, head: RequestHead) -> Refusal | None:
        if self._token is None:
            return None
        scheme, _, given = head.headers.get("authorization", "").partition(" ")
        try:
            given_bytes = given.encode("latin-1")  # the header's bytes, as they came
        except UnicodeEncodeError:
            given_bytes = b""
        # the scheme is case-insensitive (RFC 9110); the token is compared in constant time
        ok = hmac.compare_digest(given_bytes, self._token)
        if ok and scheme.lower() == "bearer":
            return None
        return Refusal(
            401,
            MESSAGE_401,
            (("www-authenticate", 'Bearer realm="faultserver"'), ("connection", "close")),
        )


def _check_body_type(head: RequestHead) -> Refusal | None:
    if head.method not in WRITES or not _has_body(head.headers):
        return None
    given = head.headers.get("content-type")
    media = (given or "").split(";", 1)[0].strip().lower()
    allowed = JSON_TYPES | YAML_TYPES if (head.method, head.path) == ("PUT", "/profile") else JSON_TYPES
    if media in allowed:
        return None
    expected = "application/json or application/yaml" if allowed >= YAML_TYPES else "application/json"
    return Refusal(
        415,
        f"expected Content-Type {expected} for a body, got {given!r}" if given else
        f"expected Content-Type {expected} for a body, got none",
        (("connection", "close"),),
    )


def _has_body(headers: Mapping[str, str]) -> bool:
    if "transfer-encoding" in headers:
        return True
    return headers.get("content-length", "0").strip() not in ("", "0")


def _split_host(value: str) -> tuple[str, int | None] | None:
    """`(host, port)` from a Host header (`name`, `name:8474`, `[::1]:8474`), or None."""
    if not value or any(c in value for c in "@/?#\\ \t"):
        return None  # userinfo or a path would let urlsplit find a host that is not there
    try:
        parts = urlsplit("//" + value)
        port = parts.port
    except ValueError:  # a port that is not a number from 0 to 65535, or a broken bracket
        return None
    if not parts.hostname or (parts.netloc.count(":") > 1 and not parts.netloc.startswith("[")):
        return None
    return parts.hostname.rstrip("."), port


def _same_address(host: str, address: str) -> bool:
    try:
        return _plain(ipaddress.ip_address(host)) == _plain(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return False


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _plain(address: _Address) -> _Address:
    """An IPv4 address seen through a dual-stack socket (`::ffff:10.0.0.5`) as itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
