"""What the data plane hands to the deciding code: one request, completely read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Request"]

_EMPTY_BODY_HASH = hashlib.blake2b(b"", digest_size=8).hexdigest()


@dataclass(slots=True)
class Request:
    """A parsed request. Header names are lower-case bytes, in arrival order."""

    method: str
    target: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    http_version: str = "1.1"
    keep_alive: bool = True
    #: 1 for the first request on its connection
    number: int = 1
    _header_map: Optional[dict[str, list[str]]] = field(default=None, repr=False)

    def header_values(self, name: str) -> list[str]:
        """All values of header `name` (lower case), decoded as latin-1."""
        if self._header_map is None:
            m: dict[str, list[str]] = {}
            for k, v in self.headers:
                m.setdefault(k.decode("latin-1"), []).append(v.decode("latin-1"))
            self._header_map = m
        return self._header_map.get(name, [])

    def header(self, name: str) -> Optional[bytes]:
        """The first value of header `name` (lower-case bytes), or None; cheap, no decoding."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def fingerprint(self) -> str:
        """Same method, path, body and X-Request-Id: the same request sent again."""
        body_hash = (
            hashlib.blake2b(self.body, digest_size=8).hexdigest() if self.body else _EMPTY_BODY_HASH
        )
        rid = self.header(b"x-request-id")
        tail = f" {rid.decode('latin-1')}" if rid else ""
        return f"{self.method} {self.path} {body_hash}{tail}"
