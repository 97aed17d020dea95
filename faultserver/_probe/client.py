"""Requests through the gateway: the only code of the probe that talks to it.

Plain blocking `http.client`, one client connection per `Session`; `run.py` calls it from
worker threads. The probe sends traffic to the gateway URL the user gave and nowhere else:
every request goes to that URL's host and port, its path being the URL's path plus one
token. The client's exceptions become a `Failure` here, in one place (`_failure_of`).
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse
from dataclasses import dataclass

from .._errors import UsageError
from .model import BODY_HEAD_BYTES, Failure, Reply, Role

__all__ = ["GatewayURL", "Session", "parse_gateway_url"]

#: The body of every POST the probe sends.
POST_BODY = b"faultserver-probe=1"
USER_AGENT = "faultserver-probe"


@dataclass(frozen=True, slots=True)
class GatewayURL:
    """The gateway URL the user gave: where every request of the probe goes."""

    scheme: str
    host: str
    port: int
    path: str  # without a trailing slash

    def target(self, token: str) -> str:
        """The request target for `token` (the URL's path, then the token)."""
        return f"{self.path}/{token}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_gateway_url(text: str) -> GatewayURL:
    """`--gateway URL`: http or https, a host, an optional port and path; no query."""
    expected = "expected an http:// or https:// URL such as http://127.0.0.1:8080/api"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"probe: --gateway: {expected}, got {text!r}")
    if parts.query or parts.fragment:
        raise UsageError(f"probe: --gateway: expected a URL without a query or fragment, got {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"probe: --gateway: {expected}, got {text!r}") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return GatewayURL(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


class Session:
    """One client connection to the gateway, kept alive between requests (as a browser or
    an SDK would); it reconnects by itself after the gateway closed it."""

    def __init__(self, url: GatewayURL, timeout_s: float) -> None:
        self.url = url
        conn_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._conn: http.client.HTTPConnection = conn_type(url.host, url.port, timeout=timeout_s)

    def send(
        self,
        method: str,
        token: str,
        role: Role = Role.PROBE,
        *,
        timeout_s: float | None = None,
        note: str = "",
    ) -> Reply:
        """Send one request and read its whole answer; a failure is recorded, not raised."""
        conn = self._conn
        if timeout_s is not None:
            conn.timeout = timeout_s
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
        body = POST_BODY if method == "POST" else None
        headers = {"User-Agent": USER_AGENT}
        status: int | None = None
        head = b""
        size = 0
        start = time.monotonic()
        try:
            conn.request(method, self.url.target(token), body=body, headers=headers)
            response = conn.getresponse()
            status = response.status
            data = response.read()
            head, size = data[:BODY_HEAD_BYTES], len(data)
        except (OSError, http.client.HTTPException) as exc:
            took = time.monotonic() - start
            if isinstance(exc, http.client.IncompleteRead):
                head, size = exc.partial[:BODY_HEAD_BYTES], len(exc.partial)
            conn.close()  # whatever state it is in, the next request starts afresh
            return Reply(
                token, method, role, took, status, head, size, _failure_of(exc), _describe(exc), note
            )
        return Reply(token, method, role, time.monotonic() - start, status, head, size, note=note)

    def close(self) -> None:
        self._conn.close()


def _failure_of(exc: BaseException) -> Failure:
    """The client's exception, as the report names it."""
    if isinstance(exc, http.client.IncompleteRead):
        return Failure.CUT
    if isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError):
        return Failure.CLOSED
    if isinstance(exc, ConnectionResetError):
        return Failure.RESET
    if isinstance(exc, ConnectionRefusedError):
        return Failure.REFUSED
    if isinstance(exc, TimeoutError | socket.timeout):
        return Failure.TIMEOUT
    return Failure.ERROR  # TLS, a malformed answer: `Reply.detail` says which


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        text = f"{len(exc.partial)} bytes read, {exc.expected} more expected"
    else:
        text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
