"""`host:port`, read and written in one place: the profile's binds, `--control`, the admin API's
bind, listener URLs and the `peer` of events.

The rules are the profile format's: the host is an IP literal or `localhost` (which means
127.0.0.1), and an IPv6 host goes in brackets (`[::1]:8080`), both when read and when written.
Names other than `localhost` are refused rather than resolved: a bind is a fact about this
machine, and a name's address can change under a running server.
"""

from __future__ import annotations

import ipaddress

__all__ = ["AddressError", "format_hostport", "is_loopback", "parse_hostport", "url_of"]

#: What a bind looks like, for messages.
EXPECTED = "expected host:port such as '127.0.0.1:8080' or '[::1]:8080'"


class AddressError(ValueError):
    """Text that is not a valid `host:port`. `expected` says what would be; `got` is the
    offending part, as written (the whole text, its host or its port)."""

    def __init__(self, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"{expected}, got {got!r}")


def parse_hostport(text: str) -> tuple[str, int]:
    """`(host, port)` from `127.0.0.1:8080`, `[::1]:8080` or `localhost:8080`.

    The host comes back normalised (`localhost` -> `127.0.0.1`, IPv6 compressed); port 0
    is allowed (a free port). Raises `AddressError`.
    """
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise AddressError(EXPECTED, text)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise AddressError(EXPECTED, text)
        if ":" in host:
            raise AddressError(f"{EXPECTED} (an IPv6 host goes in brackets)", text)
    if not port_text.isascii() or not port_text.isdigit() or int(port_text[:6]) > 65535:
        raise AddressError("expected a port from 0 to 65535", port_text)
    port = int(port_text)
    if host == "localhost" and not text.startswith("["):
        return ("127.0.0.1", port)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise AddressError("expected an IP address or 'localhost' as host", host) from None
    if text.startswith("[") != (address.version == 6):
        raise AddressError(f"{EXPECTED} (brackets go around an IPv6 host only)", text)
    return (str(address), port)


def format_hostport(host: str, port: int) -> str:
    """`127.0.0.1:8080`, or `[::1]:8080` for an IPv6 host: what `parse_hostport` reads."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_of(scheme: str, host: str, port: int) -> str:
    """A base URL such as `http://127.0.0.1:8080` or `http://[::1]:8080`."""
    return f"{scheme}://{format_hostport(host, port)}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
