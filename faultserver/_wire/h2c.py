"""HTTP/1.1 `Upgrade: h2c` (RFC 7540 3.2): a plaintext request that asks to go on in HTTP/2.

curl `--http2` on an `http://` URL asks this way (prior knowledge is the other way, see
`preamble.speak`). The request must name `h2c` in `Upgrade`, `Upgrade` and `HTTP2-Settings`
in `Connection`, and carry exactly one `HTTP2-Settings` that h2 takes as settings;
otherwise the upgrade is ignored and the request is answered in HTTP/1.1, as RFC 7540 lets
a server do. Accepted, it gets `101 Switching Protocols`, and its answer comes on HTTP/2
stream 1 (`H2Session`), decided and faulted as any stream's. RFC 9113 deprecates the
upgrade; clients still send it.
"""

from __future__ import annotations

import binascii

import h2.config
import h2.connection
import h2.exceptions
import hyperframe.exceptions

from .._decide.request import Request

__all__ = ["SWITCHING", "h2c_settings"]

#: What the server answers an accepted upgrade, before its first HTTP/2 frame.
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


def _tokens(request: Request, name: str) -> set[str]:
    return {
        token.strip().lower() for value in request.header_values(name) for token in value.split(",")
    }


def h2c_settings(request: Request) -> bytes | None:
    """The `HTTP2-Settings` of a request that asks for h2c and may have it; None: answer it
    in HTTP/1.1."""
    if "h2c" not in _tokens(request, "upgrade"):
        return None
    if not {"upgrade", "http2-settings"} <= _tokens(request, "connection"):
        return None
    values = request.header_values("http2-settings")
    if len(values) != 1:
        return None
    raw = values[0].strip().encode("latin-1")
    padded = raw + b"=" * (-len(raw) % 4)  # sent without padding (token68); decoded with
    try:  # taken as the session will take it, by a connection of its own
        trial = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        trial.initiate_upgrade_connection(padded)
    except (binascii.Error, ValueError, h2.exceptions.ProtocolError, hyperframe.exceptions.HyperframeError):
        return None
    return padded
